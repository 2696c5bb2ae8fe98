/* ewald nn: normalisation layers (NCHW; float and _d double twins).
 *
 * Caches: forward writes mean and rstd = 1/sqrt(var + eps) per normalised
 * group (batch norm: per channel; group/instance norm: per (sample,
 * group); layer norm: per row); backward reads them with the forward
 * input x. gamma/beta NULL = no affine transform (PyTorch affine=False).
 * Statistics are accumulated in double. Backward ADDS into dx, dgamma,
 * dbeta (each may be NULL).
 *
 * ew_batchnorm_forward: train != 0 normalises with the batch statistics
 *   (biased variance) over (n, h, w) and, if running_mean/var are not
 *   NULL, updates them PyTorch's way: r = (1 - momentum) r + momentum s,
 *   the variance unbiased (times M / (M - 1), M = n h w); train == 0
 *   normalises with the running statistics (mean/rstd caches filled from
 *   them). Caches mean, rstd: (c).
 * ew_batchnorm_backward: gradients of the same mode (train: through the
 *   batch statistics; eval: a per-channel affine map).
 * ew_groupnorm_forward: groups divide c; statistics over (c/groups, h, w)
 *   of each sample; gamma/beta per channel. groups == c is instance norm
 *   (PyTorch InstanceNorm2d without running statistics). Caches (n groups).
 * ew_layernorm_forward: each of `rows` rows of length dim normalised;
 *   gamma/beta per element (dim). For NCHW LayerNorm([c, h, w]) use
 *   rows = n, dim = c h w. Caches (rows).
 * ew_l2norm_forward: y = x / max(|x|, eps) per row (F.normalize); the
 *   cache norm (rows) keeps max(|x|, eps).
 */
#ifndef EW_NN_NORM_H
#define EW_NN_NORM_H

#include <stddef.h>

#define EW_NN_NORM_DECL(T, SFX)                                                                    \
    void ew_batchnorm_forward##SFX(T *out, T *mean, T *rstd, const T *x, const T *gamma,          \
                                   const T *beta, T *running_mean, T *running_var, int n, int c,   \
                                   int hw, int train, double momentum, double eps);               \
    void ew_batchnorm_backward##SFX(T *dx, T *dgamma, T *dbeta, const T *dout, const T *x,        \
                                    const T *mean, const T *rstd, const T *gamma, int n, int c,    \
                                    int hw, int train);                                           \
    void ew_groupnorm_forward##SFX(T *out, T *mean, T *rstd, const T *x, const T *gamma,          \
                                   const T *beta, int n, int c, int hw, int groups, double eps);   \
    void ew_groupnorm_backward##SFX(T *dx, T *dgamma, T *dbeta, const T *dout, const T *x,        \
                                    const T *mean, const T *rstd, const T *gamma, int n, int c,    \
                                    int hw, int groups);                                          \
    void ew_layernorm_forward##SFX(T *out, T *mean, T *rstd, const T *x, const T *gamma,          \
                                   const T *beta, int rows, int dim, double eps);                 \
    void ew_layernorm_backward##SFX(T *dx, T *dgamma, T *dbeta, const T *dout, const T *x,        \
                                    const T *mean, const T *rstd, const T *gamma, int rows,        \
                                    int dim);                                                     \
    void ew_l2norm_forward##SFX(T *y, T *norm, const T *x, int rows, int dim, double eps);        \
    void ew_l2norm_backward##SFX(T *dx, const T *dy, const T *y, const T *norm, int rows, int dim);

EW_NN_NORM_DECL(float, )
EW_NN_NORM_DECL(double, _d)

#endif
