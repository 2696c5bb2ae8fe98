/* ewald recon: the numerical kernels of the self-supervised XFEL model
 * (ssl.h), exposed for the gradient checks in tests/test_recon_ssl.c.
 *
 * Grids are n^3 values stored (z, y, x) with voxel (iz, iy, ix) at
 * s = (ix - c, iy - c, iz - c) ds, c = n / 2 (physics/slice.h). Float
 * versions are used in training; the _d twins (double) exist so that every
 * derivative can be checked against finite differences in double.
 */
#ifndef EW_RECON_SSL_KERNELS_H
#define EW_RECON_SSL_KERNELS_H

#include <stddef.h>

/* Backward of ew_rot6d_to_mat (geom.h): given d6 and dL/dR (row-major
 * 3x3), dd6 = dL/dd6 (overwritten). */
void ew_ssl_rot6d_backward(const double d6[6], const double dR[9], double dd6[6]);

/* Trilinear value and spatial gradient of grid g (n^3, spacing ds) at the
 * particle-frame point u (1/Angstrom): returns the value and sets
 * grad[0..2] = d value / d u (x, y, z), per 1/Angstrom. Points with any
 * corner outside the grid give 0 and a zero gradient (as
 * ew_slice_trilinear). */
float ew_ssl_trilinear_grad(const float *g, int n, double ds, const double u[3], float grad[3]);
double ew_ssl_trilinear_grad_d(const double *g, int n, double ds, const double u[3], double grad[3]);

/* Adjoint of the interpolation at u: dg[corners] += w_corner * v. */
void ew_ssl_trilinear_adjoint(float *dg, int n, double ds, const double u[3], float v);
void ew_ssl_trilinear_adjoint_d(double *dg, int n, double ds, const double u[3], double v);

/* Friedel symmetrisation G(s) = a (V(s) + V(-s)) (n odd: V(-s) is the
 * voxel mirrored through the centre). out may not alias v. The backward
 * pass is the same map applied to dG: dV = a (dG(s) + dG(-s)). */
void ew_ssl_friedel(float *out, const float *v, int n, float a);
void ew_ssl_friedel_d(double *out, const double *v, int n, double a);

/* Smoothness prior: returns lambda * sum over the 3 axes and all adjacent
 * voxel pairs of (g_i - g_j)^2 / n^3 and ADDS its gradient into dg (may be
 * NULL). */
double ew_ssl_smooth(const float *g, int n, double lambda, float *dg);
double ew_ssl_smooth_d(const double *g, int n, double lambda, double *dg);

/* Rendering of one pixel: given the decoder value f at the pixel, the
 * pattern's scale m, the pixel's correction k (corr / mean corr), the
 * observed log value x = log(c I + 1), the photon count I and c, returns
 * the pixel's loss and sets *df = dloss/df, *dm = dloss/dm.
 *   a = max(exp(f) - 1, 0) k;
 *   MSE:     y = log(a m + 1), loss (y - x)^2
 *   Poisson: r = a m / c + 1e-3, loss r - I log r   */
double ew_ssl_render_pixel(int poisson, double f, double m, double k, double x, double count, double c,
                           double *df, double *dm);

/* One pattern through the grid decoder, fused forward and backward:
 * rotation R (particle -> lab), pixel list idx (npix indices into s (.., 3)
 * and the per-pixel arrays), grid g (n, ds), scale m; x, count: the
 * pattern's log values and photons; k per-pixel corrections (NULL: 1).
 * Each pixel's loss is multiplied by w (1 / (pixels * batch)). Returns the
 * weighted loss sum; ADDS w dloss/dg into dg (NULL: skipped), and sets
 * dR (row-major, overwritten) and *dm. */
double ew_ssl_pattern_grid(const float *g, int n, double ds, const double R[9], const float *s,
                           const int *idx, size_t npix, const float *x, const float *count, const float *k,
                           double m, double c, int poisson, double w, float *dg, double dR[9], double *dm);
double ew_ssl_pattern_grid_d(const double *g, int n, double ds, const double R[9], const float *s,
                             const int *idx, size_t npix, const float *x, const float *count, const float *k,
                             double m, double c, int poisson, double w, double *dg, double dR[9], double *dm);

/* The loss of ew_ssl_pattern_grid without any gradient (w = 1), for pose
 * search: sum over the pixels of the per-pixel loss. */
double ew_ssl_pattern_loss(const float *g, int n, double ds, const double R[9], const float *s, const int *idx,
                           size_t npix, const float *x, const float *count, const float *k, double m, double c,
                           int poisson);

/* Softplus scale m = log(1 + exp(h + 0.5413248546)) (m(0) = 1) and its
 * derivative. */
double ew_ssl_scale_of(double h, double *dm_dh);

#endif
