/* Shared helpers for ewald's cmocka tests (header-only).
 *
 * Tests run from the repository root. Shared data lives in ../shared/data
 * (or $EWALD_DATA); tests that need it call ew_test_data() and skip()
 * when it returns NULL. Scratch files go under ew_test_tmpdir().
 */
#ifndef EW_TESTUTIL_H
#define EW_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *popen(const char *command, const char *type);
int pclose(FILE *stream);

#include <cmocka.h>

/* assert |a - b| <= atol + rtol * |b|, printing both values on failure. */
#define assert_close(a, b, rtol, atol)                                                            \
    do {                                                                                          \
        double ew_a_ = (double)(a), ew_b_ = (double)(b);                                          \
        double ew_tol_ = (double)(atol) + (double)(rtol) * fabs(ew_b_);                           \
        if (!(fabs(ew_a_ - ew_b_) <= ew_tol_))                                                    \
            fail_msg("%s = %.10g, expected %s = %.10g (tolerance %.3g)", #a, ew_a_, #b, ew_b_,    \
                     ew_tol_);                                                                    \
    } while (0)

/* assert a status is EW_OK, printing the library's error message if not. */
#define assert_ok(expr)                                                                           \
    do {                                                                                          \
        ew_status_t ew_st_ = (expr);                                                              \
        if (ew_st_ != EW_OK) fail_msg("%s failed: %s", #expr, ew_error_message());                \
    } while (0)

/* Path of a file in the shared data directory, or NULL if it is absent.
 * Returns a static buffer (one at a time). */
static inline const char *ew_test_data(const char *rel)
{
    static char path[4096];
    const char *root = getenv("EWALD_DATA");
    if (!root) root = "../shared/data";
    snprintf(path, sizeof path, "%s/%s", root, rel);
    return access(path, R_OK) == 0 ? path : NULL;
}

static char ew_test_dir_[256];

/* Remove the scratch directory and its files (registered with atexit;
 * set EWALD_KEEP_TMP=1 to keep them for inspection). */
static inline void ew_test_tmpdir_remove_(void)
{
    if (!ew_test_dir_[0] || getenv("EWALD_KEEP_TMP")) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ew_test_dir_);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", ew_test_dir_);
}

/* A per-process scratch directory (created on first use, removed at exit). */
static inline const char *ew_test_tmpdir(void)
{
    if (!ew_test_dir_[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(ew_test_dir_, sizeof ew_test_dir_, "%s/ewald-test-%ld", base ? base : "/tmp", (long)getpid());
        mkdir(ew_test_dir_, 0755);
        atexit(ew_test_tmpdir_remove_);
    }
    return ew_test_dir_;
}

/* Number of leftover temporaries ("*.tmp.*", see ew_temp_name) in the
 * scratch directory: writers must leave none, on success or failure. */
static inline int ew_test_count_temporaries(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '\\.tmp\\.'", ew_test_tmpdir());
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

/* Join the scratch directory and a file name (static buffer, one at a time). */
static inline const char *ew_test_tmpfile(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", ew_test_tmpdir(), name);
    return path;
}

/* Write bytes to a file (for building malformed inputs). Returns 0 on success. */
static inline int ew_test_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

/* Read a whole file into a malloc'd buffer; *n gets its size. NULL on error. */
static inline unsigned char *ew_test_read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *n = (size_t)sz;
    return buf;
}

#endif
