/* ewald physics: reciprocal-space volumes, trilinear slicing and merging. */
#include "physics/slice.h"

#include <math.h>
#include <string.h>

ew_status_t ew_rvol_alloc(ew_rvol_t *v, int n, double ds)
{
    EW_ASSERT(v != NULL);
    memset(v, 0, sizeof *v);
    if (n < 2) return ew_fail(EW_ERR_ARG, "reciprocal volume: n = %d is below 2", n);
    if (!(ds > 0.0) || !isfinite(ds))
        return ew_fail(EW_ERR_ARG, "reciprocal volume: spacing ds = %g 1/A is not positive", ds);
    size_t count;
    EW_TRY(ew_size_mul3((size_t)n, (size_t)n, (size_t)n, &count));
    v->data = ew_calloc_array(count, sizeof(float));
    if (!v->data) return ew_fail(EW_ERR_NOMEM, "reciprocal volume: cannot allocate %d^3 floats", n);
    v->n = n;
    v->ds = ds;
    return EW_OK;
}

void ew_rvol_free(ew_rvol_t *v)
{
    if (!v) return;
    ew_free(v->data);
    memset(v, 0, sizeof *v);
}

/* The trilinear stencil of particle-frame point p: base voxel offset and
 * the fractional parts. Returns 0 if any corner falls outside the grid. */
static inline int stencil(int n, double inv_ds, double c, const double R[9], const float *s, size_t *base,
                          float *fx, float *fy, float *fz)
{
    double sx = s[0], sy = s[1], sz = s[2];
    /* p = R^T s: p_j = sum_i R_ij s_i */
    double px = (R[0] * sx + R[3] * sy + R[6] * sz) * inv_ds + c;
    double py = (R[1] * sx + R[4] * sy + R[7] * sz) * inv_ds + c;
    double pz = (R[2] * sx + R[5] * sy + R[8] * sz) * inv_ds + c;
    double lim = (double)(n - 1);
    /* The negated comparisons also reject NaN. */
    if (!(px >= 0.0 && py >= 0.0 && pz >= 0.0 && px < lim && py < lim && pz < lim)) return 0;
    int ix = (int)px, iy = (int)py, iz = (int)pz;
    *fx = (float)(px - ix);
    *fy = (float)(py - iy);
    *fz = (float)(pz - iz);
    *base = ((size_t)iz * (size_t)n + (size_t)iy) * (size_t)n + (size_t)ix;
    return 1;
}

void ew_slice_trilinear(const ew_rvol_t *v, const double R[9], const float *s, size_t npix, float *out)
{
    EW_ASSERT(v != NULL && v->data != NULL && R != NULL && (npix == 0 || (s != NULL && out != NULL)));
    const int n = v->n;
    const double inv_ds = 1.0 / v->ds, c = (double)(n / 2);
    const size_t sy = (size_t)n, sz = (size_t)n * (size_t)n;
    const float *d = v->data;
    for (size_t p = 0; p < npix; p++) {
        size_t b;
        float fx, fy, fz;
        if (!stencil(n, inv_ds, c, R, s + 3 * p, &b, &fx, &fy, &fz)) {
            out[p] = 0.0f;
            continue;
        }
        const float *q = d + b;
        float c00 = q[0] + fx * (q[1] - q[0]);
        float c01 = q[sy] + fx * (q[sy + 1] - q[sy]);
        float c10 = q[sz] + fx * (q[sz + 1] - q[sz]);
        float c11 = q[sz + sy] + fx * (q[sz + sy + 1] - q[sz + sy]);
        float c0 = c00 + fy * (c01 - c00);
        float c1 = c10 + fy * (c11 - c10);
        out[p] = c0 + fz * (c1 - c0);
    }
}

void ew_merge_trilinear(ew_rvol_t *accum, float *wsum, const double R[9], const float *s, size_t npix,
                        const float *values, float w)
{
    EW_ASSERT(accum != NULL && accum->data != NULL && R != NULL);
    EW_ASSERT(npix == 0 || (s != NULL && values != NULL));
    const int n = accum->n;
    const double inv_ds = 1.0 / accum->ds, c = (double)(n / 2);
    const size_t sy = (size_t)n, sz = (size_t)n * (size_t)n;
    float *d = accum->data;
    for (size_t p = 0; p < npix; p++) {
        size_t b;
        float fx, fy, fz;
        if (!stencil(n, inv_ds, c, R, s + 3 * p, &b, &fx, &fy, &fz)) continue;
        /* weights in the same order as the slice's corners */
        float gx = 1.0f - fx, gy = 1.0f - fy, gz = 1.0f - fz;
        float wt[8] = {gx * gy * gz, fx * gy * gz, gx * fy * gz, fx * fy * gz,
                       gx * gy * fz, fx * gy * fz, gx * fy * fz, fx * fy * fz};
        size_t off[8] = {0, 1, sy, sy + 1, sz, sz + 1, sz + sy, sz + sy + 1};
        float val = w * values[p];
        for (int k = 0; k < 8; k++) {
            d[b + off[k]] += wt[k] * val;
            if (wsum) wsum[b + off[k]] += wt[k] * w;
        }
    }
}
