/* ewald CLI: small helpers shared by the commands (no science). */
#ifndef EW_CLI_CMD_UTIL_H
#define EW_CLI_CMD_UTIL_H

#include "core/core.h"
#include "recon/ssl.h"

/* End a progress display: on success draw the final line
 * (ew_progress_finish); on failure drop it silently, so a failing command
 * prints only its error line. p may be NULL. */
void ew_cli_progress_end(ew_progress_t *p, ew_status_t st);

/* 1 if path's extension (after the last '.' of the last component) is one
 * of the '|'-separated words in list, case-insensitive. */
int ew_cli_ext_is(const char *path, const char *list);

/* Copy path into out (size n) with its extension replaced by ext (e.g.
 * "_fsc.txt" or ".dat"); a path without extension gets ext appended. */
void ew_cli_replace_ext(const char *path, const char *ext, char *out, size_t n);

/* A list of owned path strings (defined in cmd_em_noise.c; used by the
 * em noise and em pick commands). */
typedef struct {
    char **v;
    size_t n, cap;
} cli_paths_t;
void cli_paths_free(cli_paths_t *p);
/* Append a copy of s. */
ew_status_t cli_paths_add(cli_paths_t *p, const char *s);
/* Append the MRC files of a folder (an `ewald em simulate` folder: its
 * micrographs in STAR order), or the folder's .mrc files sorted by name. */
ew_status_t cli_paths_add_dir(cli_paths_t *p, const char *dir);
/* Append the items of a comma-separated list (folders as cli_paths_add_dir). */
ew_status_t cli_paths_add_list(cli_paths_t *p, const char *list);

/* A CXI file in memory as the self-supervised model's data set (defined in
 * cmd_xfel_train.c; used by xfel train and xfel infer). */
typedef struct {
    ew_ssl_data_t d;
    float *data, *expected, *s, *corr;
    uint8_t *mask;
    ew_quat_t *q;      /* ground truth or NULL */
    double *fluence;   /* ground truth or NULL */
} cli_ssl_input_t;
void cli_ssl_input_free(cli_ssl_input_t *in);
/* Read patterns, geometry and (when present) ground truth; with
 * want_expected also the noise-free patterns. On error *in is left empty. */
ew_status_t cli_ssl_input_read(const char *path, int want_expected, cli_ssl_input_t *in);
/* Write "w x y z # scale" per pattern (atomic). */
ew_status_t cli_ssl_write_orientations(const char *path, const ew_quat_t *q, const double *scale, size_t n);

#endif
