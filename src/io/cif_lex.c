/* ewald io (internal): the STAR/CIF tokenizer (see cif_lex.h). */
#include "io/cif_lex.h"

#include <ctype.h>
#include <string.h>

#include "core/status.h"

int ew_cif_next(ew_cif_lex_t *x, ew_cif_tok_t *t, const char *name)
{
    const char *d = x->data;
    for (;;) {
        while (x->pos < x->len && isspace((unsigned char)d[x->pos])) {
            if (d[x->pos] == '\n') x->line++;
            x->pos++;
        }
        if (x->pos >= x->len) return 0;
        if (d[x->pos] == '#') {
            while (x->pos < x->len && d[x->pos] != '\n') x->pos++;
            continue;
        }
        break;
    }
    size_t s = x->pos;
    t->line = x->line;
    t->quoted = 0;
    char c = d[s];
    if (c == ';' && (s == 0 || d[s - 1] == '\n')) {
        size_t e = s + 1;
        for (;;) {
            const char *nl = memchr(d + e, '\n', x->len - e);
            if (!nl) {
                ew_fail(EW_ERR_FORMAT, "%s:%zu: text field starting with ';' is not closed", name, t->line);
                return -1;
            }
            x->line++;
            e = (size_t)(nl - d) + 1;
            if (e < x->len && d[e] == ';') break;
        }
        t->p = d + s + 1;
        t->n = e - 1 - (s + 1);
        t->quoted = 1;
        x->pos = e + 1;
        return 1;
    }
    if (c == '\'' || c == '"') {
        size_t e = s + 1;
        while (e < x->len && d[e] != '\n' &&
               !(d[e] == c && (e + 1 >= x->len || isspace((unsigned char)d[e + 1]))))
            e++;
        if (e >= x->len || d[e] != c) {
            ew_fail(EW_ERR_FORMAT, "%s:%zu: quoted value is not closed on its line", name, t->line);
            return -1;
        }
        t->p = d + s + 1;
        t->n = e - s - 1;
        t->quoted = 1;
        x->pos = e + 1;
        return 1;
    }
    size_t e = s;
    while (e < x->len && !isspace((unsigned char)d[e])) e++;
    t->p = d + s;
    t->n = e - s;
    x->pos = e;
    return 1;
}
