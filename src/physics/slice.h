/* ewald physics: reciprocal-space volumes and slicing them along Ewald spheres.
 *
 * A reciprocal-space volume is a cubic grid of n^3 voxels stored (z, y, x)
 * with spacing ds in s = 1/d (1/Angstrom, no 2 pi). Voxel (iz, iy, ix)
 * sits at s = ((ix - c), (iy - c), (iz - c)) * ds with c = n / 2 (integer
 * division): for odd n the grid is symmetric about the origin (Friedel
 * pairs are voxel pairs), for even n it follows the FFT convention.
 *
 * Slicing: a detector pixel with lab-frame scattering vector s_lab sees the
 * particle-frame point R^T s_lab (geom.h: R maps particle -> lab). Slices
 * are trilinear interpolations of the volume at those points; merging is
 * the exact adjoint (transpose) of slicing, so that
 *   sum_p y_p * slice(V)_p == sum_v V_v * merge(y)_v
 * (tested), which makes it also the gradient of slicing with respect to V.
 */
#ifndef EW_PHYSICS_SLICE_H
#define EW_PHYSICS_SLICE_H

#include <stddef.h>

#include "core/core.h"

typedef struct {
    int n;          /* voxels per axis */
    double ds;      /* voxel spacing, 1/Angstrom */
    float *data;    /* (n, n, n) values, (z, y, x) order; owned */
} ew_rvol_t;

/* Allocate a zero-filled n^3 volume with spacing ds (n >= 2, ds > 0).
 * On error v is left empty. */
ew_status_t ew_rvol_alloc(ew_rvol_t *v, int n, double ds);
/* Free the data (v may be NULL); v is left empty. */
void ew_rvol_free(ew_rvol_t *v);

/* Sample a volume on one rotated detector:
 *   out[p] = trilinear(V, R^T s[p]) for p < npix,
 * with s[] the lab-frame s-vectors (npix, 3) in 1/Angstrom and R the
 * particle -> lab rotation (row-major double[9]). Points outside the grid
 * (any trilinear corner outside) give 0. */
void ew_slice_trilinear(const ew_rvol_t *v, const double R[9], const float *s, size_t npix, float *out);

/* The adjoint of ew_slice_trilinear: for each p, add w * values[p] spread
 * with the trilinear weights into accum->data, and (if wsum is not NULL) the
 * trilinear weights times w into wsum (n^3, same layout). Not thread-safe
 * on the same accumulators. */
void ew_merge_trilinear(ew_rvol_t *accum, float *wsum, const double R[9], const float *s, size_t npix,
                        const float *values, float w);

#endif
