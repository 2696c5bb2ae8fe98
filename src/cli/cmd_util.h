/* ewald CLI: small helpers shared by the commands (no science). */
#ifndef EW_CLI_CMD_UTIL_H
#define EW_CLI_CMD_UTIL_H

#include "core/core.h"

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

#endif
