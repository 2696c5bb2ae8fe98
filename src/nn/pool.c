/* ewald nn: pooling (kernels in pool_impl.h). */
#include "nn/pool.h"

#include "nn/threads.h"
#include "nn/tmpl.h"

ew_status_t ew_pool2d_setup(ew_pool2d_t *d)
{
    if (d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0 || d->k <= 0 || d->stride <= 0 || d->pad < 0 ||
        d->pad > d->k / 2)
        return ew_fail(EW_ERR_ARG, "pool2d: invalid geometry (n %d c %d h %d w %d k %d stride %d pad %d)", d->n,
                       d->c, d->h, d->w, d->k, d->stride, d->pad);
    d->oh = (d->h + 2 * d->pad - d->k) / d->stride + 1;
    d->ow = (d->w + 2 * d->pad - d->k) / d->stride + 1;
    if (d->oh <= 0 || d->ow <= 0 || d->h + 2 * d->pad < d->k || d->w + 2 * d->pad < d->k)
        return ew_fail(EW_ERR_ARG, "pool2d: window %d larger than the padded input %dx%d", d->k, d->h, d->w);
    return EW_OK;
}

#define T float
#define SFX
#include "nn/pool_impl.h"
#undef T
#undef SFX

#define T double
#define SFX _d
#include "nn/pool_impl.h"
#undef T
#undef SFX
