/* ewald io: HDF5 volumes (layout in h5vol.h). */
#include "io/h5vol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"

/* ------------------------------------------------------------- metadata */

void ew_h5meta_free(ew_h5meta_t *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

const char *ew_h5meta_get(const ew_h5meta_t *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0) return m->values[i];
    return NULL;
}

ew_status_t ew_h5meta_set(ew_h5meta_t *m, const char *key, const char *value)
{
    if (!key || !key[0] || strchr(key, '/') || strcmp(key, ".") == 0)
        return ew_fail(EW_ERR_ARG, "metadata key \"%s\" is empty or contains '/'", key ? key : "");
    char *v = ew_strdup(value ? value : "");
    if (!v) return EW_ERR_NOMEM;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0) {
            free(m->values[i]);
            m->values[i] = v;
            return EW_OK;
        }
    char *k = ew_strdup(key);
    char **nk = k ? realloc(m->keys, (m->n + 1) * sizeof *nk) : NULL;
    if (nk) m->keys = nk;
    char **nv = nk ? realloc(m->values, (m->n + 1) * sizeof *nv) : NULL;
    if (nv) m->values = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return ew_fail(EW_ERR_NOMEM, "out of memory for metadata");
    }
    m->keys[m->n] = k;
    m->values[m->n] = v;
    m->n++;
    return EW_OK;
}

/* --------------------------------------------------------------- volumes */

void ew_h5vol_free(ew_h5vol_t *v)
{
    if (!v) return;
    ew_free(v->data);
    free(v->units);
    ew_h5meta_free(&v->meta);
    memset(v, 0, sizeof *v);
}

static ew_status_t write_file(hid_t f, const char *path, const ew_h5vol_t *v)
{
    hsize_t dims[3] = {(hsize_t)v->nz, (hsize_t)v->ny, (hsize_t)v->nx};
    hsize_t chunk[3] = {1, (hsize_t)v->ny, (hsize_t)v->nx};
    hid_t d;
    EW_TRY(ew_h5_attr_set_str(f, path, "/", "creator", "ewald"));
    EW_TRY(ew_h5_attr_set_str(f, path, "/", "ewald_version", EW_VERSION));
    EW_TRY(ew_h5_create_dataset(f, path, "/volume", H5T_IEEE_F32LE, 3, dims, NULL, chunk, 4, H5T_NATIVE_FLOAT,
                                v->data, v->units ? v->units : "", &d));
    const int rec = v->space == EW_VOL_RECIPROCAL;
    ew_status_t st = ew_h5_attr_set_str(d, path, "/volume", "space", rec ? "reciprocal" : "real");
    if (st == EW_OK) st = ew_h5_attr_set_f64(d, path, "/volume", "voxel_size", v->voxel, 3);
    if (st == EW_OK)
        st = ew_h5_attr_set_str(d, path, "/volume", "voxel_size_units", rec ? "1/Angstrom" : "Angstrom");
    if (st == EW_OK) st = ew_h5_attr_set_f64(d, path, "/volume", "origin", v->origin, 3);
    H5Dclose(d);
    EW_TRY(st);
    hid_t g = H5Gcreate2(f, "/metadata", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return ew_fail(EW_ERR_IO, "%s: cannot create group /metadata", path);
    for (size_t i = 0; i < v->meta.n && st == EW_OK; i++)
        st = ew_h5_attr_set_str(g, path, "/metadata", v->meta.keys[i], v->meta.values[i]);
    H5Gclose(g);
    return st;
}

ew_status_t ew_h5vol_write(const char *path, const ew_h5vol_t *v)
{
    if (v->nx <= 0 || v->ny <= 0 || v->nz <= 0 || !v->data)
        return ew_fail(EW_ERR_ARG, "%s: volume size %d x %d x %d is not positive", path, v->nx, v->ny, v->nz);
    for (int k = 0; k < 3; k++)
        if (!(v->voxel[k] > 0) || !isfinite(v->voxel[k]) || !isfinite(v->origin[k]))
            return ew_fail(EW_ERR_ARG, "%s: voxel size %g / origin %g on axis %d is not positive/finite", path,
                           v->voxel[k], v->origin[k], k);
    char *tmp = ew_temp_name(path);
    if (!tmp) return EW_ERR_NOMEM;
    hid_t f;
    ew_status_t st = ew_h5_create(tmp, &f);
    if (st != EW_OK) {
        free(tmp);
        return ew_fail(EW_ERR_IO, "%s: cannot create (temporary file)", path);
    }
    st = write_file(f, path, v);
    if (H5Fclose(f) < 0 && st == EW_OK) st = ew_fail(EW_ERR_IO, "%s: close failed (disk full?)", path);
    if (st != EW_OK) {
        remove(tmp);
        free(tmp);
        return st;
    }
    return ew_commit_rename(tmp, path);
}

/* H5Aiterate callback: copy each string attribute into the metadata. */
typedef struct {
    const char *path;
    ew_h5meta_t *meta;
    ew_status_t st;
} meta_ctx_t;

static herr_t meta_cb(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    meta_ctx_t *c = op;
    char *val = NULL;
    c->st = ew_h5_attr_get_str(loc, c->path, "/metadata", name, &val);
    if (c->st == EW_OK) c->st = ew_h5meta_set(c->meta, name, val);
    free(val);
    return c->st == EW_OK ? 0 : -1;
}

static ew_status_t read_file(hid_t f, const char *path, ew_h5vol_t *v)
{
    int rank = 0;
    hsize_t dims[8];
    H5T_class_t cls;
    EW_TRY(ew_h5_dataset_shape(f, path, "/volume", &rank, dims, &cls));
    if (rank != 3) return ew_fail(EW_ERR_FORMAT, "%s: dataset /volume: rank %d, expected 3 (z, y, x)", path, rank);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
        return ew_fail(EW_ERR_FORMAT, "%s: dataset /volume: type is not numeric", path);
    for (int k = 0; k < 3; k++)
        if (dims[k] == 0 || dims[k] > (1u << 20))
            return ew_fail(EW_ERR_FORMAT, "%s: dataset /volume: dimension %d = %llu is not supported", path, k,
                           (unsigned long long)dims[k]);
    v->nz = (int)dims[0];
    v->ny = (int)dims[1];
    v->nx = (int)dims[2];
    hid_t d = H5Dopen2(f, "/volume", H5P_DEFAULT);
    if (d < 0) return ew_fail(EW_ERR_FORMAT, "%s: dataset /volume: cannot open", path);
    char *space = NULL;
    ew_status_t st = ew_h5_attr_get_str(d, path, "/volume", "space", &space);
    if (st == EW_OK) {
        if (strcmp(space, "real") == 0) v->space = EW_VOL_REAL;
        else if (strcmp(space, "reciprocal") == 0) v->space = EW_VOL_RECIPROCAL;
        else st = ew_fail(EW_ERR_FORMAT, "%s: /volume attribute space = \"%s\" is not real or reciprocal", path, space);
    }
    free(space);
    if (st == EW_OK) st = ew_h5_attr_get_f64(d, path, "/volume", "voxel_size", v->voxel, 3);
    for (int k = 0; k < 3 && st == EW_OK; k++)
        if (!(v->voxel[k] > 0) || !isfinite(v->voxel[k]))
            st = ew_fail(EW_ERR_FORMAT, "%s: /volume attribute voxel_size[%d] = %g is not positive", path, k,
                         v->voxel[k]);
    if (st == EW_OK && H5Aexists(d, "origin") > 0) st = ew_h5_attr_get_f64(d, path, "/volume", "origin", v->origin, 3);
    for (int k = 0; k < 3 && st == EW_OK; k++)
        if (!isfinite(v->origin[k]))
            st = ew_fail(EW_ERR_FORMAT, "%s: /volume attribute origin[%d] is not finite", path, k);
    if (st == EW_OK && H5Aexists(d, "units") > 0) st = ew_h5_attr_get_str(d, path, "/volume", "units", &v->units);
    H5Dclose(d);
    EW_TRY(st);
    size_t n;
    EW_TRY(ew_size_mul3((size_t)v->nx, (size_t)v->ny, (size_t)v->nz, &n));
    v->data = ew_alloc_array(n, sizeof(float));
    if (!v->data) return ew_fail_context(EW_ERR_NOMEM, "%s", path);
    EW_TRY(ew_h5_read_numeric(f, path, "/volume", H5T_NATIVE_FLOAT, 3, dims, v->data, n));
    if (ew_h5_exists(f, "/metadata")) {
        hid_t g = H5Gopen2(f, "/metadata", H5P_DEFAULT);
        if (g < 0) return ew_fail(EW_ERR_FORMAT, "%s: /metadata is not a group", path);
        meta_ctx_t c = {path, &v->meta, EW_OK};
        hsize_t idx = 0;
        herr_t e = H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, meta_cb, &c);
        H5Gclose(g);
        if (c.st != EW_OK) return c.st;
        if (e < 0) return ew_fail(EW_ERR_FORMAT, "%s: cannot list the attributes of /metadata", path);
    }
    return EW_OK;
}

ew_status_t ew_h5vol_read(const char *path, ew_h5vol_t *v)
{
    memset(v, 0, sizeof *v);
    hid_t f;
    EW_TRY(ew_h5_open_read(path, &f));
    ew_status_t st = read_file(f, path, v);
    H5Fclose(f);
    if (st != EW_OK) ew_h5vol_free(v);
    return st;
}

ew_status_t ew_h5vol_write_rvol(const char *path, const ew_rvol_t *rv, const char *units, const ew_h5meta_t *meta)
{
    if (rv->n < 1 || !(rv->ds > 0))
        return ew_fail(EW_ERR_ARG, "%s: reciprocal volume n = %d, ds = %g is not valid", path, rv->n, rv->ds);
    ew_h5vol_t v = {0};
    v.nx = v.ny = v.nz = rv->n;
    v.space = EW_VOL_RECIPROCAL;
    for (int k = 0; k < 3; k++) {
        v.voxel[k] = rv->ds;
        v.origin[k] = -(double)(rv->n / 2) * rv->ds;
    }
    v.units = (char *)units;
    v.data = rv->data;
    if (meta) v.meta = *meta;
    return ew_h5vol_write(path, &v);
}

ew_status_t ew_h5vol_read_rvol(const char *path, ew_rvol_t *rv, char **units, ew_h5meta_t *meta)
{
    memset(rv, 0, sizeof *rv);
    if (units) *units = NULL;
    if (meta) memset(meta, 0, sizeof *meta);
    ew_h5vol_t v;
    EW_TRY(ew_h5vol_read(path, &v));
    ew_status_t st = EW_OK;
    double ds = v.voxel[0];
    if (v.space != EW_VOL_RECIPROCAL)
        st = ew_fail(EW_ERR_FORMAT, "%s: /volume is a real-space volume, expected reciprocal", path);
    else if (v.nx != v.ny || v.nx != v.nz)
        st = ew_fail(EW_ERR_FORMAT, "%s: /volume is %d x %d x %d, expected a cube", path, v.nx, v.ny, v.nz);
    else if (fabs(v.voxel[1] - ds) > 1e-9 * ds || fabs(v.voxel[2] - ds) > 1e-9 * ds)
        st = ew_fail(EW_ERR_FORMAT, "%s: /volume voxel sizes %g, %g, %g differ", path, v.voxel[0], v.voxel[1],
                     v.voxel[2]);
    for (int k = 0; k < 3 && st == EW_OK; k++)
        if (fabs(v.origin[k] + (double)(v.nx / 2) * ds) > 1e-6 * ds)
            st = ew_fail(EW_ERR_FORMAT, "%s: /volume origin[%d] = %g is not -(n/2) ds = %g (ewald's centre convention)",
                         path, k, v.origin[k], -(double)(v.nx / 2) * ds);
    if (st != EW_OK) {
        ew_h5vol_free(&v);
        return st;
    }
    rv->n = v.nx;
    rv->ds = ds;
    rv->data = v.data;
    v.data = NULL;
    if (units) {
        *units = v.units ? v.units : ew_strdup("");
        v.units = NULL;
    }
    if (meta) {
        *meta = v.meta;
        memset(&v.meta, 0, sizeof v.meta);
    }
    ew_h5vol_free(&v);
    return EW_OK;
}
