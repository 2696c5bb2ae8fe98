/* ewald CLI: shared helpers (see cmd_util.h). */
#include "cli/cmd_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ew_cli_progress_end(ew_progress_t *p, ew_status_t st)
{
    if (!p) return;
    if (st == EW_OK)
        ew_progress_finish(p);
    else
        ew_progress_abort(p);
}

int ew_cli_ext_is(const char *path, const char *list)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot) return 0;
    size_t n = strlen(dot + 1);
    for (const char *c = list; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && !strncasecmp(c, dot + 1, n)) return 1;
        if (!bar) break;
        c = bar + 1;
    }
    return 0;
}

void ew_cli_replace_ext(const char *path, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    char *slash = strrchr(out, '/');
    char *dot = strrchr(slash ? slash : out, '.');
    if (dot) *dot = '\0';
    size_t l = strlen(out);
    snprintf(out + l, n - l, "%s", ext);
}
