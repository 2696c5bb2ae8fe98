/* ewald nn: convolution, transposed convolution and linear layers.
 *
 * Tensors are float32 (or double for the _d twins, used by the gradient
 * checks), NCHW, contiguous. Weights are laid out as PyTorch stores them:
 * conv (oc, c, kh, kw), transposed conv (c, oc, kh, kw), linear (out, in).
 * Convolutions are im2col + sgemm per sample (1x1 stride-1 unpadded
 * convolutions skip im2col), parallel over samples (threads.h).
 *
 * Forward functions overwrite their output. Backward functions ADD into
 * every gradient buffer they are given (dx, dw, db; NULL = not wanted),
 * so a caller zeroes gradients once per step (ew_params_zero_grad) and
 * activations' gradients once per use.
 *
 * Functions returning ew_status_t allocate per-thread scratch (im2col
 * columns, private weight-gradient partial sums) and fail only with
 * EW_ERR_NOMEM, leaving outputs unspecified.
 */
#ifndef EW_NN_CONV_H
#define EW_NN_CONV_H

#include "core/status.h"

typedef enum { EW_PAD_ZERO = 0, EW_PAD_REFLECT = 1 } ew_pad_mode_t;

/* Geometry of a 2-D convolution (square stride and padding). */
typedef struct {
    int n, c, h, w;         /* input: batch, channels, height, width */
    int oc, kh, kw;         /* output channels, kernel height and width */
    int stride, pad;        /* same in y and x */
    ew_pad_mode_t pad_mode; /* zero or reflect (reflect needs pad < h, w) */
    int out_pad;            /* transposed conv only: PyTorch's output_padding */
    int oh, ow;             /* output size, set by ew_conv2d_setup / ew_convt2d_setup */
} ew_conv2d_t;

/* Fill oh, ow: oh = (h + 2 pad - kh) / stride + 1. EW_ERR_ARG (naming the
 * field) if a size is not positive, the output would be empty, or reflect
 * padding is not smaller than the input. */
ew_status_t ew_conv2d_setup(ew_conv2d_t *d);
/* Transposed conv: oh = (h - 1) stride - 2 pad + kh + out_pad (zero padding
 * only; out_pad < stride). EW_ERR_ARG as ew_conv2d_setup. */
ew_status_t ew_convt2d_setup(ew_conv2d_t *d);

/* FLOPs of one forward pass (2 per multiply-add, bias ignored). */
double ew_conv2d_flops(const ew_conv2d_t *d);

#define EW_NN_CONV_DECL(T, SFX)                                                                  \
    ew_status_t ew_conv2d_forward##SFX(T *out, const T *x, const T *w, const T *b,              \
                                       const ew_conv2d_t *d);                                   \
    ew_status_t ew_conv2d_backward##SFX(T *dx, T *dw, T *db, const T *dout, const T *x,         \
                                        const T *w, const ew_conv2d_t *d);                      \
    ew_status_t ew_convt2d_forward##SFX(T *out, const T *x, const T *w, const T *b,             \
                                        const ew_conv2d_t *d);                                  \
    ew_status_t ew_convt2d_backward##SFX(T *dx, T *dw, T *db, const T *dout, const T *x,        \
                                         const T *w, const ew_conv2d_t *d);                     \
    void ew_linear_forward##SFX(T *out, const T *x, const T *w, const T *b, int rows, int in,   \
                                int out_dim);                                                   \
    ew_status_t ew_linear_backward##SFX(T *dx, T *dw, T *db, const T *dout, const T *x,         \
                                        const T *w, int rows, int in, int out_dim);

/* ew_conv2d_forward:  out (n, oc, oh, ow) = conv(x (n, c, h, w), w (oc, c, kh, kw)) + b (oc; NULL: none).
 * ew_conv2d_backward: dx += dL/dx, dw += dL/dw, db += dL/db given dout = dL/dout.
 * ew_convt2d_forward: out (n, oc, oh, ow) = conv_transpose(x (n, c, h, w), w (c, oc, kh, kw)) + b.
 * ew_convt2d_backward: its gradients, adding as above.
 * ew_linear_forward:  out (rows, out_dim) = x (rows, in) w^T + b, w (out_dim, in), b (out_dim; NULL: none).
 * ew_linear_backward: dx += dout w, dw += dout^T x, db += column sums of dout. */
EW_NN_CONV_DECL(float, )
EW_NN_CONV_DECL(double, _d)

#endif
