/* ewald io: quaternion lists (see quatfile.h). */
#include "io/quatfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/cxi.h"
#include "io/npy.h"
#include "io/volume.h"

static ew_status_t check_norm(const char *path, const char *what, size_t i, double v[4], ew_quat_t *out)
{
    double nn = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]);
    if (!isfinite(nn) || nn < 1e-12)
        return ew_fail(EW_ERR_FORMAT, "%s: %s %zu: (%g, %g, %g, %g) is not a rotation quaternion", path, what, i + 1,
                       v[0], v[1], v[2], v[3]);
    out->w = v[0] / nn;
    out->x = v[1] / nn;
    out->y = v[2] / nn;
    out->z = v[3] / nn;
    return EW_OK;
}

static ew_status_t read_cxi(const char *path, ew_quat_t **q, size_t *n)
{
    ew_cxi_reader_t *r;
    EW_TRY(ew_cxi_reader_open(path, &r));
    if (!ew_cxi_reader_has_truth(r)) {
        ew_cxi_reader_close(r);
        return ew_fail(EW_ERR_FORMAT, "%s: no /entry_1/ground_truth/quaternions", path);
    }
    long long m = ew_cxi_reader_count(r);
    double *d = ew_alloc_array((size_t)(m > 0 ? m : 1), 4 * sizeof *d);
    ew_quat_t *out = ew_alloc_array((size_t)(m > 0 ? m : 1), sizeof *out);
    ew_status_t st = d && out ? EW_OK : EW_ERR_NOMEM;
    if (st == EW_OK && m > 0) st = ew_cxi_read_truth(r, 0, m, d, NULL, NULL);
    for (long long i = 0; st == EW_OK && i < m; i++) st = check_norm(path, "quaternion", (size_t)i, d + 4 * i, out + i);
    ew_free(d);
    ew_cxi_reader_close(r);
    if (st != EW_OK) {
        ew_free(out);
        return st;
    }
    *q = out;
    *n = (size_t)m;
    return EW_OK;
}

static ew_status_t read_npy(const char *path, ew_quat_t **q, size_t *n)
{
    ew_npy_t a;
    EW_TRY(ew_npy_read(path, &a));
    if (a.ndim != 2 || a.shape[1] != 4) {
        ew_status_t st = ew_fail(EW_ERR_FORMAT, "%s: shape has %d dimensions%s; quaternions need (N, 4)", path,
                                 a.ndim, a.ndim == 2 ? " and a second one that is not 4" : "");
        ew_npy_free(&a);
        return st;
    }
    ew_quat_t *out = ew_alloc_array(a.shape[0] ? a.shape[0] : 1, sizeof *out);
    ew_status_t st = out ? EW_OK : EW_ERR_NOMEM;
    for (size_t i = 0; st == EW_OK && i < a.shape[0]; i++) st = check_norm(path, "row", i, a.data + 4 * i, out + i);
    size_t m = a.shape[0];
    ew_npy_free(&a);
    if (st != EW_OK) {
        ew_free(out);
        return st;
    }
    *q = out;
    *n = m;
    return EW_OK;
}

static ew_status_t read_text(const char *path, ew_quat_t **q, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, m = 0, qcap = 0;
    ew_quat_t *out = NULL;
    ew_status_t st = EW_OK;
    long lineno = 0;
    while (st == EW_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        for (char *c = line; *c; c++)
            if (*c == ',') *c = ' ';
        double v[4];
        int k = 0;
        char *p = line, *end;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
            if (!*p) break;
            double x = strtod(p, &end);
            if (end == p || k == 4) {
                k = -1;
                break;
            }
            v[k++] = x;
            p = end;
        }
        if (k == 0) continue;
        if (k != 4) {
            st = ew_fail(EW_ERR_FORMAT, "%s:%ld: expected four numbers \"w x y z\"", path, lineno);
            break;
        }
        if ((st = ew_grow((void **)&out, &qcap, m + 1, sizeof *out)) != EW_OK) break;
        st = check_norm(path, "line", (size_t)lineno - 1, v, out + m);
        m++;
    }
    free(line);
    fclose(f);
    if (st == EW_OK && m == 0) st = ew_fail(EW_ERR_FORMAT, "%s: no quaternions (expected lines \"w x y z\")", path);
    if (st != EW_OK) {
        free(out);
        return st;
    }
    /* ew_grow uses realloc; hand back an ew_alloc_array'd copy so callers use ew_free. */
    ew_quat_t *copy = ew_alloc_array(m, sizeof *copy);
    if (!copy) {
        free(out);
        return EW_ERR_NOMEM;
    }
    memcpy(copy, out, m * sizeof *copy);
    free(out);
    *q = copy;
    *n = m;
    return EW_OK;
}

ew_status_t ew_quat_file_read(const char *path, ew_quat_t **q, size_t *n)
{
    *q = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char b[8] = {0};
    size_t got = fread(b, 1, 8, f);
    fclose(f);
    if (ew_file_is_hdf5(path)) return read_cxi(path, q, n);
    if (got >= 6 && !memcmp(b, "\x93NUMPY", 6)) return read_npy(path, q, n);
    return read_text(path, q, n);
}

ew_status_t ew_quat_file_write_text(const char *path, const ew_quat_t *q, size_t n)
{
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    fprintf(f, "# w x y z (unit quaternion, particle -> lab)\n");
    for (size_t i = 0; i < n; i++) fprintf(f, "%.9f %.9f %.9f %.9f\n", q[i].w, q[i].x, q[i].y, q[i].z);
    return ew_atomic_commit(f, tmp, path);
}
