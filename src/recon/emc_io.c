/* ewald recon: EMC checkpoints (HDF5) and sparse-data helpers. See emc.h. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recon/emc_internal.h"

/* ---------------- sparse data ---------------- */

void ew_emc_sparse_free(ew_emc_sparse_t *sp)
{
    if (!sp) return;
    ew_free(sp->offset), ew_free(sp->pix), ew_free(sp->count);
    memset(sp, 0, sizeof *sp);
}

static ew_status_t sparse_alloc(ew_emc_sparse_t *sp, size_t n, size_t npix, size_t nhit)
{
    memset(sp, 0, sizeof *sp);
    sp->n_patterns = n;
    sp->npix = npix;
    sp->offset = ew_alloc_array(n + 1, sizeof *sp->offset);
    sp->pix = ew_alloc_array(nhit, sizeof *sp->pix);
    sp->count = ew_alloc_array(nhit, sizeof *sp->count);
    if (!sp->offset || !sp->pix || !sp->count) {
        ew_emc_sparse_free(sp);
        return EW_ERR_NOMEM;
    }
    return EW_OK;
}

ew_status_t ew_emc_sparse_from_dense(ew_emc_sparse_t *sp, const float *frames, size_t n_frames, size_t npix)
{
    EW_ASSERT(sp && (frames || n_frames == 0));
    memset(sp, 0, sizeof *sp);
    if (npix > UINT32_MAX) return ew_fail(EW_ERR_RANGE, "EMC: %zu pixels exceed 2^32", npix);
    size_t total = 0;
    EW_TRY(ew_size_mul(n_frames, npix, &total));
    size_t nhit = 0;
    for (size_t d = 0; d < n_frames; d++)
        for (size_t p = 0; p < npix; p++) {
            float v = frames[d * npix + p];
            if (!(v >= 0) || !isfinite(v) || v > 4e9f)
                return ew_fail(EW_ERR_ARG, "EMC: frame %zu pixel %zu holds %g, not a photon count", d, p, v);
            if (lrintf(v) > 0) nhit++;
        }
    EW_TRY(sparse_alloc(sp, n_frames, npix, nhit));
    size_t h = 0;
    for (size_t d = 0; d < n_frames; d++) {
        sp->offset[d] = h;
        for (size_t p = 0; p < npix; p++) {
            long k = lrintf(frames[d * npix + p]);
            if (k > 0) sp->pix[h] = (uint32_t)p, sp->count[h++] = (uint32_t)k;
        }
    }
    sp->offset[n_frames] = h;
    return EW_OK;
}

ew_status_t ew_emc_sparse_from_photons(ew_emc_sparse_t *sp, const ew_emc_photons_t *ph)
{
    EW_ASSERT(sp && ph);
    memset(sp, 0, sizeof *sp);
    size_t n = ph->num_frames;
    if (ph->num_pix <= 0) return ew_fail(EW_ERR_ARG, "EMC: photon set has num_pix = %d", ph->num_pix);
    size_t nhit = n ? (size_t)(ph->ones_off[n] + ph->multi_off[n]) : 0;
    EW_TRY(sparse_alloc(sp, n, (size_t)ph->num_pix, nhit));
    size_t h = 0;
    for (size_t d = 0; d < n; d++) {
        sp->offset[d] = h;
        for (int64_t i = ph->ones_off[d]; i < ph->ones_off[d + 1]; i++) {
            int32_t p = ph->place_ones[i];
            if (p < 0 || p >= ph->num_pix) {
                ew_emc_sparse_free(sp);
                return ew_fail(EW_ERR_ARG, "EMC: frame %zu has place_ones %d outside [0, %d)", d, p, ph->num_pix);
            }
            sp->pix[h] = (uint32_t)p, sp->count[h++] = 1;
        }
        for (int64_t i = ph->multi_off[d]; i < ph->multi_off[d + 1]; i++) {
            int32_t p = ph->place_multi[i], c = ph->count_multi[i];
            if (p < 0 || p >= ph->num_pix || c < 1) {
                ew_emc_sparse_free(sp);
                return ew_fail(EW_ERR_ARG, "EMC: frame %zu has place_multi %d with count_multi %d", d, p, c);
            }
            sp->pix[h] = (uint32_t)p, sp->count[h++] = (uint32_t)c;
        }
    }
    sp->offset[n] = h;
    return EW_OK;
}

/* ---------------- HDF5 checkpoints ---------------- */

static int h5_attr_write(hid_t loc, const char *name, hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, type, v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return ok;
}

static int h5_attr_read(hid_t loc, const char *name, hid_t type, void *v)
{
    if (H5Aexists(loc, name) <= 0) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    int ok = H5Aread(a, type, v) >= 0;
    H5Aclose(a);
    return ok;
}

static int h5_dset_write(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, const void *v)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = d >= 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

ew_status_t ew_emc_save(const ew_emc_t *e, const char *path)
{
    EW_ASSERT(e && path);
    if (e->rank != 0) return EW_OK;
    char *tmp = ew_temp_name(path);
    if (!tmp) return EW_ERR_NOMEM;
    size_t N = e->n_total;
    double *bq = ew_alloc_array(N ? N : 1, 4 * sizeof(double));
    if (!bq) {
        free(tmp);
        return EW_ERR_NOMEM;
    }
    for (size_t d = 0; d < N; d++) {
        int32_t r = e->best_rot[d];
        ew_quat_t q = r >= 0 && (size_t)r < e->grid.n ? e->grid.quat[r] : (ew_quat_t){NAN, NAN, NAN, NAN};
        bq[4 * d] = q.w, bq[4 * d + 1] = q.x, bq[4 * d + 2] = q.y, bq[4 * d + 3] = q.z;
    }
    H5E_auto2_t efn;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efn, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int ok = f >= 0;
    if (ok) {
        hsize_t n = (hsize_t)e->model.n, d3[3] = {n, n, n}, dn[1] = {N}, dq[2] = {N, 4};
        int it = e->iteration, lvl = e->grid.level, nv = e->model.n;
        double beta = ew_emc_beta_at(&e->cfg, e->iteration > 0 ? e->iteration : 1);
        uint64_t nrot = e->grid.n, np = N;
        ok = h5_dset_write(f, "intensity", H5T_NATIVE_FLOAT, 3, d3, e->model.data) &&
             h5_dset_write(f, "scale", H5T_NATIVE_FLOAT, 1, dn, e->scale) &&
             h5_dset_write(f, "best_rot", H5T_NATIVE_INT32, 1, dn, e->best_rot) &&
             h5_dset_write(f, "best_prob", H5T_NATIVE_FLOAT, 1, dn, e->best_prob) &&
             h5_dset_write(f, "best_quat", H5T_NATIVE_DOUBLE, 2, dq, bq) &&
             h5_attr_write(f, "iteration", H5T_NATIVE_INT, &it) && h5_attr_write(f, "beta", H5T_NATIVE_DOUBLE, &beta) &&
             h5_attr_write(f, "grid_level", H5T_NATIVE_INT, &lvl) &&
             h5_attr_write(f, "n_rot", H5T_NATIVE_UINT64, &nrot) &&
             h5_attr_write(f, "n_patterns", H5T_NATIVE_UINT64, &np) &&
             h5_attr_write(f, "n_vox", H5T_NATIVE_INT, &nv) &&
             h5_attr_write(f, "ds", H5T_NATIVE_DOUBLE, &e->model.ds);
        if (H5Fclose(f) < 0) ok = 0;
    }
    H5Eset_auto2(H5E_DEFAULT, efn, edata);
    ew_free(bq);
    if (!ok) {
        remove(tmp);
        free(tmp);
        return ew_fail(EW_ERR_IO, "%s: cannot write the EMC checkpoint (HDF5 error)", path);
    }
    return ew_commit_rename(tmp, path);
}

typedef struct {
    int iteration, level, n_vox;
    uint64_t n_rot, n_patterns;
    double ds;
} ckpt_info_t;

static ew_status_t ckpt_open(const char *path, hid_t *f, ckpt_info_t *ci)
{
    *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*f < 0) return ew_fail(EW_ERR_IO, "%s: cannot open as HDF5", path);
    if (!h5_attr_read(*f, "iteration", H5T_NATIVE_INT, &ci->iteration) ||
        !h5_attr_read(*f, "grid_level", H5T_NATIVE_INT, &ci->level) ||
        !h5_attr_read(*f, "n_rot", H5T_NATIVE_UINT64, &ci->n_rot) ||
        !h5_attr_read(*f, "n_patterns", H5T_NATIVE_UINT64, &ci->n_patterns) ||
        !h5_attr_read(*f, "n_vox", H5T_NATIVE_INT, &ci->n_vox) || !h5_attr_read(*f, "ds", H5T_NATIVE_DOUBLE, &ci->ds)) {
        H5Fclose(*f);
        return ew_fail(EW_ERR_FORMAT, "%s: not an ewald EMC checkpoint (attributes missing)", path);
    }
    return EW_OK;
}

ew_status_t ew_emc_checkpoint_info(const char *path, int *iteration, int *grid_level, size_t *n_rot)
{
    H5E_auto2_t efn;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efn, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f;
    ckpt_info_t ci;
    ew_status_t st = ckpt_open(path, &f, &ci);
    if (st == EW_OK) {
        H5Fclose(f);
        if (iteration) *iteration = ci.iteration;
        if (grid_level) *grid_level = ci.level;
        if (n_rot) *n_rot = (size_t)ci.n_rot;
    }
    H5Eset_auto2(H5E_DEFAULT, efn, edata);
    return st;
}

static int h5_dset_read(hid_t f, const char *name, hid_t type, size_t count, void *v)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return 0;
    hid_t sp = H5Dget_space(d);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    int ok = np == (hssize_t)count && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    H5Sclose(sp);
    H5Dclose(d);
    return ok;
}

ew_status_t ew_emc_resume(ew_emc_t *e, const char *path)
{
    EW_ASSERT(e && path);
    H5E_auto2_t efn;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efn, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f;
    ckpt_info_t ci;
    ew_status_t st = ckpt_open(path, &f, &ci);
    if (st != EW_OK) goto out;
    size_t N = e->n_total, n3 = (size_t)e->model.n * e->model.n * e->model.n;
    float *vol = NULL, *sc = NULL, *bp = NULL;
    int32_t *br = NULL;
    if (ci.n_vox != e->model.n)
        st = ew_fail(EW_ERR_FORMAT, "%s: n_vox = %d, this run's model has %d", path, ci.n_vox, e->model.n);
    else if (ci.n_patterns != N)
        st = ew_fail(EW_ERR_FORMAT, "%s: n_patterns = %llu, this run has %zu", path,
                     (unsigned long long)ci.n_patterns, N);
    else if (ci.n_rot != e->grid.n)
        st = ew_fail(EW_ERR_FORMAT, "%s: n_rot = %llu, this run's grid has %zu (level %d)", path,
                     (unsigned long long)ci.n_rot, e->grid.n, e->grid.level);
    else if (ci.iteration < 0)
        st = ew_fail(EW_ERR_FORMAT, "%s: iteration = %d is negative", path, ci.iteration);
    if (st == EW_OK) {
        vol = ew_alloc_array(n3, sizeof *vol);
        sc = ew_alloc_array(N, sizeof *sc);
        bp = ew_alloc_array(N, sizeof *bp);
        br = ew_alloc_array(N, sizeof *br);
        if (!vol || !sc || !bp || !br) st = EW_ERR_NOMEM;
    }
    if (st == EW_OK && (!h5_dset_read(f, "intensity", H5T_NATIVE_FLOAT, n3, vol) ||
                        !h5_dset_read(f, "scale", H5T_NATIVE_FLOAT, N, sc) ||
                        !h5_dset_read(f, "best_prob", H5T_NATIVE_FLOAT, N, bp) ||
                        !h5_dset_read(f, "best_rot", H5T_NATIVE_INT32, N, br)))
        st = ew_fail(EW_ERR_FORMAT, "%s: a dataset (intensity, scale, best_prob, best_rot) is missing or misshapen",
                     path);
    for (size_t d = 0; st == EW_OK && d < N; d++)
        if (!(sc[d] > 0) || !isfinite(sc[d]) || br[d] < -1 || (br[d] >= 0 && (size_t)br[d] >= e->grid.n))
            st = ew_fail(EW_ERR_FORMAT, "%s: pattern %zu has scale %g, best_rot %d", path, d, sc[d], br[d]);
    if (st == EW_OK && (st = ew_emc_set_model(e, vol, n3)) != EW_OK)
        st = ew_fail_context(st, "%s", path);
    if (st == EW_OK) {
        memcpy(e->scale, sc, N * sizeof *sc);
        memcpy(e->best_prob, bp, N * sizeof *bp);
        memcpy(e->best_rot, br, N * sizeof *br);
        e->iteration = ci.iteration;
    }
    ew_free(vol), ew_free(sc), ew_free(bp), ew_free(br);
    H5Fclose(f);
out:
    H5Eset_auto2(H5E_DEFAULT, efn, edata);
    return st;
}
