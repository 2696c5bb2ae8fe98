/* ewald nn: convolution and linear layers (kernels in conv_impl.h). */
#include "nn/conv.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "core/mem.h"
#include "nn/threads.h"
#include "nn/tmpl.h"

/* Reflect an out-of-range index into [0, n) (PyTorch's reflect: no edge
 * repeat), valid for -n < i < 2n - 1. */
static inline int ew_nn_reflect(int i, int n)
{
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
    return i;
}

ew_status_t ew_conv2d_setup(ew_conv2d_t *d)
{
    if (d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0 || d->oc <= 0 || d->kh <= 0 || d->kw <= 0 ||
        d->stride <= 0 || d->pad < 0)
        return ew_fail(EW_ERR_ARG, "conv2d: a size is not positive (n %d c %d h %d w %d oc %d k %dx%d stride %d pad %d)",
                       d->n, d->c, d->h, d->w, d->oc, d->kh, d->kw, d->stride, d->pad);
    if (d->pad_mode == EW_PAD_REFLECT && (d->pad >= d->h || d->pad >= d->w))
        return ew_fail(EW_ERR_ARG, "conv2d: reflect padding %d is not smaller than the input %dx%d", d->pad,
                       d->h, d->w);
    d->oh = (d->h + 2 * d->pad - d->kh) / d->stride + 1;
    d->ow = (d->w + 2 * d->pad - d->kw) / d->stride + 1;
    if (d->h + 2 * d->pad < d->kh || d->w + 2 * d->pad < d->kw || d->oh <= 0 || d->ow <= 0)
        return ew_fail(EW_ERR_ARG, "conv2d: kernel %dx%d larger than the padded input %dx%d", d->kh, d->kw,
                       d->h + 2 * d->pad, d->w + 2 * d->pad);
    return EW_OK;
}

ew_status_t ew_convt2d_setup(ew_conv2d_t *d)
{
    if (d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0 || d->oc <= 0 || d->kh <= 0 || d->kw <= 0 ||
        d->stride <= 0 || d->pad < 0 || d->out_pad < 0 || d->out_pad >= d->stride)
        return ew_fail(EW_ERR_ARG, "conv_transpose2d: invalid geometry (n %d c %d h %d w %d oc %d k %dx%d stride %d pad %d output_padding %d)",
                       d->n, d->c, d->h, d->w, d->oc, d->kh, d->kw, d->stride, d->pad, d->out_pad);
    if (d->pad_mode != EW_PAD_ZERO)
        return ew_fail(EW_ERR_UNSUPPORTED, "conv_transpose2d: only zero padding is supported");
    d->oh = (d->h - 1) * d->stride - 2 * d->pad + d->kh + d->out_pad;
    d->ow = (d->w - 1) * d->stride - 2 * d->pad + d->kw + d->out_pad;
    if (d->oh <= 0 || d->ow <= 0)
        return ew_fail(EW_ERR_ARG, "conv_transpose2d: output %dx%d is empty", d->oh, d->ow);
    return EW_OK;
}

double ew_conv2d_flops(const ew_conv2d_t *d)
{
    return 2.0 * d->n * d->oc * d->oh * d->ow * (double)d->c * d->kh * d->kw;
}

#define T float
#define SFX
#define GEMM cblas_sgemm
#include "nn/conv_impl.h"
#undef T
#undef SFX
#undef GEMM

#define T double
#define SFX _d
#define GEMM cblas_dgemm
#include "nn/conv_impl.h"
#undef T
#undef SFX
#undef GEMM
