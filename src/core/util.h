/* ewald core: constants, logging, progress reporting, timers, atomic files.
 *
 * Logging goes to stderr and is filtered by one process-wide level that
 * the CLI sets from --quiet / --verbose. Progress bars redraw in place on a
 * terminal and fall back to a plain line every few seconds otherwise, so
 * logs of batch jobs stay readable.
 */
#ifndef EW_CORE_UTIL_H
#define EW_CORE_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#define EW_PI 3.14159265358979323846
#define EW_VERSION "0.1.0"

/* Physical constants (CODATA 2018). */
#define EW_HC_EV_A 12398.419843320026    /* h c in eV * Angstrom: lambda[A] = HC / E[eV] */
#define EW_R_E_A 2.8179403262e-5         /* classical electron radius in Angstrom */

typedef enum {
    EW_LOG_ERROR = 0,
    EW_LOG_WARN = 1,
    EW_LOG_INFO = 2,
    EW_LOG_DEBUG = 3
} ew_log_level_t;

/* Set / get the process-wide level (default EW_LOG_INFO). Messages above
 * the level are dropped. --quiet maps to EW_LOG_WARN, --verbose to DEBUG. */
void ew_log_set_level(ew_log_level_t level);
ew_log_level_t ew_log_get_level(void);

/* Print "ewald: [warning: ]message\n" to stderr if level is enabled. */
void ew_log(ew_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ew_warn(...) ew_log(EW_LOG_WARN, __VA_ARGS__)
#define ew_info(...) ew_log(EW_LOG_INFO, __VA_ARGS__)
#define ew_debug(...) ew_log(EW_LOG_DEBUG, __VA_ARGS__)

/* Monotonic wall-clock time in seconds. */
double ew_time_now(void);

/* A progress reporter for a loop of `total` steps. Drawn on stderr only at
 * EW_LOG_INFO or above: in place with rate and ETA on a terminal, a plain
 * line every 5 s otherwise. Thread-safe to update from inside OpenMP
 * loops (ew_progress_add is atomic; drawing is done by one thread). */
typedef struct ew_progress ew_progress_t;

/* Start a reporter; returns NULL only when out of memory (callers may pass
 * NULL to the other calls, which then do nothing). */
ew_progress_t *ew_progress_start(const char *label, uint64_t total);
/* Add n finished steps. */
void ew_progress_add(ew_progress_t *p, uint64_t n);
/* Set a short status text shown after the bar (e.g. "loss 0.0123"). */
void ew_progress_status(ew_progress_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Draw the final state with the total time, end the line and free. */
void ew_progress_finish(ew_progress_t *p);
/* Free without drawing (the work failed; its error says why). NULL is a no-op. */
void ew_progress_abort(ew_progress_t *p);

/* Atomic file output: write to "<path>.tmp.<pid>.<k>", then rename over path.
 * ew_atomic_open returns the temporary FILE* and its name (caller frees
 * tmpname with free()); ew_atomic_commit closes, checks for write errors
 * and renames (as ew_commit_rename: never over a non-regular file);
 * ew_atomic_abort closes and deletes the temporary. */
ew_status_t ew_atomic_open(const char *path, FILE **fp, char **tmpname);
ew_status_t ew_atomic_commit(FILE *fp, char *tmpname, const char *path);
void ew_atomic_abort(FILE *fp, char *tmpname);

/* Read a whole file into a malloc'd buffer (NUL-terminated one byte past
 * *n_out, so text parsers may treat it as a string). The caller frees *out
 * with free(). On error nothing is allocated and the message names the file. */
ew_status_t ew_file_read_all(const char *path, char **out, size_t *n_out);

/* A temporary name beside path, for writers that create files through
 * other libraries (HDF5, libpng): "<path>.tmp.<pid>.<k>", k counting the
 * names made by this process. Caller frees. */
char *ew_temp_name(const char *path);
/* Rename tmpname to path (removing tmpname on failure); frees tmpname.
 * A path that exists and is not a regular file or a symbolic link (a
 * directory, device, FIFO, socket) is never replaced: EW_ERR_IO naming it. */
ew_status_t ew_commit_rename(char *tmpname, const char *path);

#endif
