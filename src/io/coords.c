/* ewald io: Topaz TSV and EMAN .box coordinate files (see coords.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/coords.h"

void ew_coords_init(ew_coords_t *c)
{
    EW_ASSERT(c);
    memset(c, 0, sizeof *c);
}

void ew_coords_free(ew_coords_t *c)
{
    if (!c) return;
    if (c->image)
        for (size_t i = 0; i < c->n; i++) free(c->image[i]);
    free(c->image);
    free(c->x);
    free(c->y);
    free(c->score);
    free(c->box);
    memset(c, 0, sizeof *c);
}

ew_status_t ew_coords_add(ew_coords_t *c, const char *image, double x, double y, double score, double box)
{
    EW_ASSERT(c);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        void *p[5];
        size_t sz[5] = {sizeof(char *), sizeof(double), sizeof(double), sizeof(double), sizeof(double)};
        void **arr[5] = {(void **)&c->image, (void **)&c->x, (void **)&c->y, (void **)&c->score,
                         (void **)&c->box};
        for (int k = 0; k < 5; k++) {
            size_t bytes;
            if (ew_size_mul(cap, sz[k], &bytes) != EW_OK || !(p[k] = realloc(*arr[k], bytes)))
                return ew_fail(EW_ERR_NOMEM, "out of memory for %zu particles", cap);
            *arr[k] = p[k];
        }
        c->cap = cap;
    }
    char *name = NULL;
    if (image && !(name = ew_strdup(image))) return EW_ERR_NOMEM;
    c->image[c->n] = name;
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->score[c->n] = score;
    c->box[c->n] = box;
    c->n++;
    return EW_OK;
}

/* Split a line (NUL-terminated, modified in place) into at most max fields. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (*p) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        if (n == max) return max + 1;
        f[n++] = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

static int to_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

typedef ew_status_t (*line_fn)(char *line, size_t lineno, const char *name, void *ctx);

/* Call fn for each line of data (copied, NUL-terminated). */
static ew_status_t for_lines(const char *data, size_t len, const char *name, line_fn fn, void *ctx)
{
    char *buf = NULL;
    size_t cap = 0, lineno = 0;
    ew_status_t st = EW_OK;
    for (size_t pos = 0; pos < len && st == EW_OK;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (data + pos)) : len - pos;
        lineno++;
        if (ew_grow((void **)&buf, &cap, ll + 1, 1) != EW_OK) {
            st = ew_fail_context(EW_ERR_NOMEM, "%s", name);
            break;
        }
        memcpy(buf, data + pos, ll);
        buf[ll] = '\0';
        if (memchr(buf, '\0', ll)) {
            st = ew_fail(EW_ERR_FORMAT, "%s:%zu: line contains a NUL byte (binary file?)", name, lineno);
            break;
        }
        pos += ll + (nl != NULL);
        st = fn(buf, lineno, name, ctx);
    }
    free(buf);
    return st;
}

typedef struct {
    ew_coords_t *c;
    int have_header, ncols, ci, cx, cy, cs;
} topaz_ctx_t;

static ew_status_t topaz_line(char *line, size_t lineno, const char *name, void *vctx)
{
    topaz_ctx_t *t = vctx;
    char *f[16];
    int n = split(line, f, 16);
    if (n == 0) return EW_OK;
    if (!t->have_header) {
        if (n > 16) return ew_fail(EW_ERR_FORMAT, "%s:%zu: header has more than 16 columns", name, lineno);
        t->ci = t->cx = t->cy = t->cs = -1;
        for (int i = 0; i < n; i++) {
            if (!strcmp(f[i], "image_name")) t->ci = i;
            else if (!strcmp(f[i], "x_coord")) t->cx = i;
            else if (!strcmp(f[i], "y_coord")) t->cy = i;
            else if (!strcmp(f[i], "score")) t->cs = i;
        }
        if (t->ci < 0 || t->cx < 0 || t->cy < 0)
            return ew_fail(EW_ERR_FORMAT,
                           "%s:%zu: header lacks %s (Topaz files start with image_name x_coord y_coord score)",
                           name, lineno, t->ci < 0 ? "image_name" : t->cx < 0 ? "x_coord" : "y_coord");
        t->ncols = n;
        t->have_header = 1;
        return EW_OK;
    }
    if (n != t->ncols)
        return ew_fail(EW_ERR_FORMAT, "%s:%zu: %d fields, the header has %d", name, lineno,
                       n > 16 ? 17 : n, t->ncols);
    double x, y, s = 0;
    if (to_num(f[t->cx], &x) || to_num(f[t->cy], &y) || (t->cs >= 0 && to_num(f[t->cs], &s)))
        return ew_fail(EW_ERR_FORMAT, "%s:%zu: x_coord '%.30s', y_coord '%.30s'%s%.30s%s: not all numbers",
                       name, lineno, f[t->cx], f[t->cy], t->cs >= 0 ? ", score '" : "",
                       t->cs >= 0 ? f[t->cs] : "", t->cs >= 0 ? "'" : "");
    return ew_coords_add(t->c, f[t->ci], x, y, s, 0);
}

ew_status_t ew_coords_parse_topaz(const char *data, size_t len, const char *name, ew_coords_t *c)
{
    EW_ASSERT(c && (data || len == 0));
    ew_coords_init(c);
    if (!name) name = "(memory)";
    topaz_ctx_t t = {c, 0, 0, -1, -1, -1, -1};
    ew_status_t st = for_lines(data, len, name, topaz_line, &t);
    if (st == EW_OK && !t.have_header)
        st = ew_fail(EW_ERR_FORMAT, "%s: empty file (no Topaz header line)", name);
    if (st != EW_OK) ew_coords_free(c);
    return st;
}

static ew_status_t box_line(char *line, size_t lineno, const char *name, void *vctx)
{
    ew_coords_t *c = vctx;
    char *f[8];
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    int n = split(line, f, 8);
    if (n == 0) return EW_OK;
    double v[4];
    if (n < 4)
        return ew_fail(EW_ERR_FORMAT, "%s:%zu: %d fields, a .box line has x y w h", name, lineno, n);
    for (int i = 0; i < 4; i++)
        if (to_num(f[i], &v[i]))
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: field %d '%.30s' is not a number", name, lineno,
                           i + 1, f[i]);
    if (!(v[2] > 0) || !(v[3] > 0))
        return ew_fail(EW_ERR_FORMAT, "%s:%zu: box size %g x %g is not positive", name, lineno, v[2], v[3]);
    return ew_coords_add(c, NULL, v[0] + v[2] / 2, v[1] + v[3] / 2, 0, v[2]);
}

ew_status_t ew_coords_parse_box(const char *data, size_t len, const char *name, ew_coords_t *c)
{
    EW_ASSERT(c && (data || len == 0));
    ew_coords_init(c);
    if (!name) name = "(memory)";
    ew_status_t st = for_lines(data, len, name, box_line, c);
    if (st != EW_OK) ew_coords_free(c);
    return st;
}

ew_status_t ew_coords_read_topaz(const char *path, ew_coords_t *c)
{
    EW_ASSERT(path && c);
    ew_coords_init(c);
    char *buf = NULL;
    size_t n = 0;
    EW_TRY(ew_file_read_all(path, &buf, &n));
    ew_status_t st = ew_coords_parse_topaz(buf, n, path, c);
    free(buf);
    return st;
}

ew_status_t ew_coords_read_box(const char *path, ew_coords_t *c)
{
    EW_ASSERT(path && c);
    ew_coords_init(c);
    char *buf = NULL;
    size_t n = 0;
    EW_TRY(ew_file_read_all(path, &buf, &n));
    ew_status_t st = ew_coords_parse_box(buf, n, path, c);
    free(buf);
    return st;
}

ew_status_t ew_coords_write_topaz(const char *path, const ew_coords_t *c)
{
    EW_ASSERT(path && c);
    for (size_t i = 0; i < c->n; i++) {
        if (!c->image[i] || !c->image[i][0] || strpbrk(c->image[i], " \t\r\n"))
            return ew_fail(EW_ERR_ARG, "%s: particle %zu has no image name or one with blanks", path, i + 1);
        if (!isfinite(c->x[i]) || !isfinite(c->y[i]) || !isfinite(c->score[i]))
            return ew_fail(EW_ERR_ARG, "%s: particle %zu has a non-finite coordinate or score", path, i + 1);
    }
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    fputs("image_name\tx_coord\ty_coord\tscore\n", f);
    for (size_t i = 0; i < c->n; i++)
        fprintf(f, "%s\t%.10g\t%.10g\t%.6g\n", c->image[i], c->x[i], c->y[i], c->score[i]);
    return ew_atomic_commit(f, tmp, path);
}

ew_status_t ew_coords_write_box(const char *path, const ew_coords_t *c, int box_size)
{
    EW_ASSERT(path && c);
    if (box_size <= 0) return ew_fail(EW_ERR_ARG, "%s: box size %d is not positive", path, box_size);
    for (size_t i = 0; i < c->n; i++)
        if (!isfinite(c->x[i]) || !isfinite(c->y[i]) || fabs(c->x[i]) > 1e9 || fabs(c->y[i]) > 1e9)
            return ew_fail(EW_ERR_ARG, "%s: particle %zu has an invalid centre (%g, %g)", path, i + 1,
                           c->x[i], c->y[i]);
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    for (size_t i = 0; i < c->n; i++)
        fprintf(f, "%.0f\t%.0f\t%d\t%d\n", floor(c->x[i] - box_size / 2.0 + 0.5) + 0.0,
                floor(c->y[i] - box_size / 2.0 + 0.5) + 0.0, box_size, box_size); /* no "-0" */
    return ew_atomic_commit(f, tmp, path);
}
