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

/* The trilinear stencil of a lab-frame point s, computed exactly as in
 * ew_slice_trilinear (single precision) so that merging is its adjoint:
 * base voxel offset and fractional parts. Returns 0 if any corner falls
 * outside the grid. */
static inline int stencil(const float a[9], float cen, float lim, int n, const float *s, size_t *base, float *fx,
                          float *fy, float *fz)
{
    float sx = s[0], sy = s[1], sz = s[2];
    float px = a[0] * sx + a[1] * sy + a[2] * sz + cen;
    float py = a[3] * sx + a[4] * sy + a[5] * sz + cen;
    float pz = a[6] * sx + a[7] * sy + a[8] * sz + cen;
    /* The negated comparisons also reject NaN. */
    if (!(px >= 0.0f && py >= 0.0f && pz >= 0.0f && px < lim && py < lim && pz < lim)) return 0;
    int ix = (int)px, iy = (int)py, iz = (int)pz;
    *fx = px - (float)ix;
    *fy = py - (float)iy;
    *fz = pz - (float)iz;
    *base = ((size_t)iz * (size_t)n + (size_t)iy) * (size_t)n + (size_t)ix;
    return 1;
}

__attribute__((optimize("no-trapping-math"))) void ew_slice_trilinear(const ew_rvol_t *v, const double R[9],
                                                                       const float *s, size_t npix, float *out)
{
    EW_ASSERT(v != NULL && v->data != NULL && R != NULL && (npix == 0 || (s != NULL && out != NULL)));
    const int n = v->n;
    const double inv_ds = 1.0 / v->ds;
    /* Branch-free single-precision kernel (vectorizes with gathers):
     * grid coordinate g = R^T s / ds + c; points outside are clamped to a
     * valid stencil and their result replaced by 0. Coordinates are below
     * 2^15, so float keeps them to ~1e-3 of a voxel or better. */
    const float a0 = (float)(R[0] * inv_ds), a1 = (float)(R[3] * inv_ds), a2 = (float)(R[6] * inv_ds);
    const float b0 = (float)(R[1] * inv_ds), b1 = (float)(R[4] * inv_ds), b2 = (float)(R[7] * inv_ds);
    const float c0 = (float)(R[2] * inv_ds), c1 = (float)(R[5] * inv_ds), c2 = (float)(R[8] * inv_ds);
    const float cen = (float)(n / 2);
    const int sy = n, sz = n * n;
    const float *d = v->data;
    EW_ASSERT((size_t)n * n * n < (size_t)1 << 31);
#pragma omp simd
    for (size_t p = 0; p < npix; p++) {
        float sx = s[3 * p], syv = s[3 * p + 1], szv = s[3 * p + 2];
        float px = a0 * sx + a1 * syv + a2 * szv + cen;
        float py = b0 * sx + b1 * syv + b2 * szv + cen;
        float pz = c0 * sx + c1 * syv + c2 * szv + cen;
        /* floor, then an integer range test (no FP compares: these vectorize) */
        float flx = floorf(px), fly = floorf(py), flz = floorf(pz);
        int ix = (int)flx, iy = (int)fly, iz = (int)flz;
        int in = ((unsigned)ix < (unsigned)(n - 1)) & ((unsigned)iy < (unsigned)(n - 1)) &
                 ((unsigned)iz < (unsigned)(n - 1));
        float fx = px - flx, fy = py - fly, fz = pz - flz;
        ix = in ? ix : 0;
        iy = in ? iy : 0;
        iz = in ? iz : 0;
        int b = (iz * sy + iy) * sy + ix;
        float q000 = d[b], q001 = d[b + 1], q010 = d[b + sy], q011 = d[b + sy + 1];
        float q100 = d[b + sz], q101 = d[b + sz + 1], q110 = d[b + sz + sy], q111 = d[b + sz + sy + 1];
        float e00 = q000 + fx * (q001 - q000), e01 = q010 + fx * (q011 - q010);
        float e10 = q100 + fx * (q101 - q100), e11 = q110 + fx * (q111 - q110);
        float e0 = e00 + fy * (e01 - e00), e1 = e10 + fy * (e11 - e10);
        float val = e0 + fz * (e1 - e0);
        out[p] = in ? val : 0.0f;
    }
}

void ew_merge_trilinear(ew_rvol_t *accum, float *wsum, const double R[9], const float *s, size_t npix,
                        const float *values, float w)
{
    EW_ASSERT(accum != NULL && accum->data != NULL && R != NULL);
    EW_ASSERT(npix == 0 || (s != NULL && values != NULL));
    const int n = accum->n;
    const double inv_ds = 1.0 / accum->ds;
    const float a[9] = {(float)(R[0] * inv_ds), (float)(R[3] * inv_ds), (float)(R[6] * inv_ds),
                        (float)(R[1] * inv_ds), (float)(R[4] * inv_ds), (float)(R[7] * inv_ds),
                        (float)(R[2] * inv_ds), (float)(R[5] * inv_ds), (float)(R[8] * inv_ds)};
    const float cen = (float)(n / 2), lim = (float)(n - 1);
    const size_t sy = (size_t)n, sz = (size_t)n * (size_t)n;
    float *d = accum->data;
    for (size_t p = 0; p < npix; p++) {
        size_t b;
        float fx, fy, fz;
        if (!stencil(a, cen, lim, n, s + 3 * p, &b, &fx, &fy, &fz)) continue;
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
