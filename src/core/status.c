/* ewald core: status codes and per-thread error messages. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EW_ERRMSG_CAP 1024

static _Thread_local char errmsg[EW_ERRMSG_CAP];

ew_status_t ew_fail(ew_status_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

ew_status_t ew_fail_context(ew_status_t code, const char *fmt, ...)
{
    char old[EW_ERRMSG_CAP];
    memcpy(old, errmsg, sizeof old);
    if (!old[0]) snprintf(old, sizeof old, "%s", ew_status_name(code));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t used = (size_t)n < sizeof errmsg ? (size_t)n : sizeof errmsg - 1;
    /* Append ": old", truncating silently at the buffer's end. */
    const char *sep = ": ";
    for (const char *q = sep; *q && used + 1 < sizeof errmsg; q++) errmsg[used++] = *q;
    for (const char *q = old; *q && used + 1 < sizeof errmsg; q++) errmsg[used++] = *q;
    errmsg[used] = '\0';
    return code;
}

const char *ew_error_message(void) { return errmsg; }

void ew_error_clear(void) { errmsg[0] = '\0'; }

const char *ew_status_name(ew_status_t code)
{
    switch (code) {
    case EW_OK: return "ok";
    case EW_ERR_NOMEM: return "out of memory";
    case EW_ERR_IO: return "input/output error";
    case EW_ERR_FORMAT: return "format error";
    case EW_ERR_ARG: return "invalid argument";
    case EW_ERR_RANGE: return "value out of range";
    case EW_ERR_NUMERIC: return "numerical failure";
    case EW_ERR_UNSUPPORTED: return "unsupported";
    case EW_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

_Noreturn void ew_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ewald: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}
