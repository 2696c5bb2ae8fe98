/* ewald core: status codes and error messages.
 *
 * Every fallible library function returns an ew_status_t. On failure it
 * also records a one-line message (naming the file, the field and the
 * value where that applies) in a per-thread buffer that the caller reads
 * with ew_error_message(). Only the CLI prints that message and exits.
 *
 *     if (ew_mrc_read(path, &vol) != EW_OK) {
 *         fprintf(stderr, "ewald: %s\n", ew_error_message());
 *         return 1;
 *     }
 *
 * Programmer errors (a NULL where the contract forbids one, an index out
 * of range that no input can cause) are caught by EW_ASSERT, which is
 * always on and aborts with the expression, file and line.
 */
#ifndef EW_CORE_STATUS_H
#define EW_CORE_STATUS_H

#include <stddef.h>

typedef enum {
    EW_OK = 0,
    EW_ERR_NOMEM,       /* allocation failed or a size overflowed */
    EW_ERR_IO,          /* open/read/write/rename failed (errno text in message) */
    EW_ERR_FORMAT,      /* a file's contents are malformed or truncated */
    EW_ERR_ARG,         /* an argument or option value is invalid */
    EW_ERR_RANGE,       /* a value is outside what the computation supports */
    EW_ERR_NUMERIC,     /* NaN/Inf or a failed numerical method */
    EW_ERR_UNSUPPORTED, /* a valid request this build or format cannot do */
    EW_ERR_INTERNAL     /* an invariant broke: a bug in ewald */
} ew_status_t;

/* Record a printf-style message for the calling thread and return code.
 * Meant for `return ew_fail(EW_ERR_FORMAT, "%s: ...", path);`. */
ew_status_t ew_fail(ew_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepend "context: " to the calling thread's current message (used when a
 * caller adds what it was doing, e.g. the file name) and return code. */
ew_status_t ew_fail_context(ew_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The calling thread's last message, or "" if none. The pointer stays
 * valid until the next ew_fail* call on the same thread. */
const char *ew_error_message(void);

/* Forget the calling thread's message. */
void ew_error_clear(void);

/* A short fixed name for a status code, e.g. "format error". */
const char *ew_status_name(ew_status_t code);

/* Always-on assertion for programmer errors: prints and aborts. */
#define EW_ASSERT(cond)                                                     \
    do {                                                                    \
        if (!(cond)) ew_assert_fail(#cond, __FILE__, __LINE__);             \
    } while (0)

_Noreturn void ew_assert_fail(const char *expr, const char *file, int line);

/* Propagate a failing status: `EW_TRY(ew_foo(...));` */
#define EW_TRY(expr)                                                        \
    do {                                                                    \
        ew_status_t ew_try_st_ = (expr);                                    \
        if (ew_try_st_ != EW_OK) return ew_try_st_;                         \
    } while (0)

#endif
