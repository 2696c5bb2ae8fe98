/* ewald nn: pooling (NCHW; float and _d double twins).
 *
 * ew_pool2d_setup fills oh, ow = (h + 2 pad - k) / stride + 1 (floor, as
 * PyTorch) and fails with EW_ERR_ARG on a non-positive size or
 * pad > k / 2.
 * ew_maxpool_forward: out = max over each window (padding never wins);
 *   argmax (n c oh ow int32) keeps the flat h w index of the winner for
 *   the backward pass (dx[argmax] += dout).
 * ew_avgpool_forward: mean over the window counting padding as zeros
 *   (PyTorch count_include_pad=True).
 * ew_global_avgpool_forward: out (n, c) = mean over h w.
 * Backward functions ADD into dx.
 */
#ifndef EW_NN_POOL_H
#define EW_NN_POOL_H

#include <stdint.h>

#include "core/status.h"

typedef struct {
    int n, c, h, w;
    int k, stride, pad;
    int oh, ow; /* set by ew_pool2d_setup */
} ew_pool2d_t;

/* Fill oh, ow (see above); EW_ERR_ARG naming the geometry otherwise. */
ew_status_t ew_pool2d_setup(ew_pool2d_t *d);

#define EW_NN_POOL_DECL(T, SFX)                                                                    \
    void ew_maxpool_forward##SFX(T *out, int32_t *argmax, const T *x, const ew_pool2d_t *d);      \
    void ew_maxpool_backward##SFX(T *dx, const T *dout, const int32_t *argmax,                    \
                                  const ew_pool2d_t *d);                                          \
    void ew_avgpool_forward##SFX(T *out, const T *x, const ew_pool2d_t *d);                       \
    void ew_avgpool_backward##SFX(T *dx, const T *dout, const ew_pool2d_t *d);                    \
    void ew_global_avgpool_forward##SFX(T *out, const T *x, int n, int c, int hw);                \
    void ew_global_avgpool_backward##SFX(T *dx, const T *dout, int n, int c, int hw);

EW_NN_POOL_DECL(float, )
EW_NN_POOL_DECL(double, _d)

#endif
