/* ewald nn: layers with parameters, ResNet and MLP/SIREN blocks (see blocks.h). */
#include "nn/blocks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/norm.h"
#include "nn/threads.h"

/* ---- helpers ---- */

static ew_status_t add_named(ew_params_t *P, const char *base, const char *suffix, ew_param_kind_t kind, int ndim,
                             const int64_t *shape, int *index)
{
    char name[EW_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s%s", base, suffix);
    if (len < 0 || (size_t)len >= sizeof name)
        return ew_fail(EW_ERR_ARG, "parameter name '%s%s' is too long", base, suffix);
    return ew_params_add(P, name, kind, ndim, shape, index);
}

static void relu_inplace(float *x, size_t n)
{
    ew_act_forward(EW_ACT_RELU, 0, x, x, n);
}

/* g[i] = y[i] > 0 ? g[i] : 0 (ReLU backward, in place, from the output) */
static void relu_mask(float *g, const float *y, size_t n)
{
    const long nn = (long)n;
    #pragma omp parallel for simd num_threads(ew_nn_team_for(n)) schedule(static)
    for (long i = 0; i < nn; i++) g[i] = y[i] > 0 ? g[i] : 0.0f;
}

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
}

/* ---- layers ---- */

ew_status_t ew_conv_layer_add(ew_conv_layer_t *L, ew_params_t *P, const char *name, int c, int oc, int k,
                              int stride, int pad, ew_pad_mode_t pad_mode, int bias)
{
    memset(L, 0, sizeof *L);
    L->c = c, L->oc = oc, L->k = k, L->stride = stride, L->pad = pad, L->pad_mode = pad_mode;
    L->ib = -1;
    int64_t ws[4] = {oc, c, k, k}, bs[1] = {oc};
    EW_TRY(add_named(P, name, ".weight", EW_PARAM_WEIGHT, 4, ws, &L->iw));
    if (bias) EW_TRY(add_named(P, name, ".bias", EW_PARAM_WEIGHT, 1, bs, &L->ib));
    return EW_OK;
}

ew_status_t ew_convt_layer_add(ew_conv_layer_t *L, ew_params_t *P, const char *name, int c, int oc, int k,
                               int stride, int pad, int out_pad, int bias)
{
    memset(L, 0, sizeof *L);
    L->c = c, L->oc = oc, L->k = k, L->stride = stride, L->pad = pad, L->out_pad = out_pad, L->transposed = 1;
    L->ib = -1;
    int64_t ws[4] = {c, oc, k, k}, bs[1] = {oc};
    EW_TRY(add_named(P, name, ".weight", EW_PARAM_WEIGHT, 4, ws, &L->iw));
    if (bias) EW_TRY(add_named(P, name, ".bias", EW_PARAM_WEIGHT, 1, bs, &L->ib));
    return EW_OK;
}

ew_status_t ew_conv_layer_geom(const ew_conv_layer_t *L, int n, int h, int w, ew_conv2d_t *g)
{
    *g = (ew_conv2d_t){.n = n, .c = L->c, .h = h, .w = w, .oc = L->oc, .kh = L->k, .kw = L->k,
                       .stride = L->stride, .pad = L->pad, .pad_mode = L->pad_mode, .out_pad = L->out_pad};
    return L->transposed ? ew_convt2d_setup(g) : ew_conv2d_setup(g);
}

ew_status_t ew_conv_layer_forward(const ew_conv_layer_t *L, const ew_params_t *P, float *out, const float *x,
                                  const ew_conv2d_t *g)
{
    const float *w = ew_params_data(P, L->iw), *b = L->ib >= 0 ? ew_params_data(P, L->ib) : NULL;
    ew_status_t s = L->transposed ? ew_convt2d_forward(out, x, w, b, g) : ew_conv2d_forward(out, x, w, b, g);
    return s == EW_OK ? s : ew_fail(s, "%s: out of memory for im2col scratch", P->p[L->iw].name);
}

ew_status_t ew_conv_layer_backward(const ew_conv_layer_t *L, ew_params_t *P, float *dx, const float *dout,
                                   const float *x, const ew_conv2d_t *g)
{
    const float *w = ew_params_data(P, L->iw);
    float *dw = ew_params_grad(P, L->iw), *db = L->ib >= 0 ? ew_params_grad(P, L->ib) : NULL;
    ew_status_t s = L->transposed ? ew_convt2d_backward(dx, dw, db, dout, x, w, g)
                                  : ew_conv2d_backward(dx, dw, db, dout, x, w, g);
    return s == EW_OK ? s : ew_fail(s, "%s: out of memory for im2col scratch", P->p[L->iw].name);
}

ew_status_t ew_bn_layer_add(ew_bn_layer_t *L, ew_params_t *P, const char *name, int c)
{
    memset(L, 0, sizeof *L);
    L->c = c, L->momentum = 0.1, L->eps = 1e-5;
    int64_t s[1] = {c};
    EW_TRY(add_named(P, name, ".weight", EW_PARAM_WEIGHT, 1, s, &L->iw));
    EW_TRY(add_named(P, name, ".bias", EW_PARAM_WEIGHT, 1, s, &L->ib));
    EW_TRY(add_named(P, name, ".running_mean", EW_PARAM_BUFFER, 1, s, &L->irm));
    EW_TRY(add_named(P, name, ".running_var", EW_PARAM_BUFFER, 1, s, &L->irv));
    EW_TRY(add_named(P, name, ".num_batches_tracked", EW_PARAM_COUNTER, 0, NULL, &L->inb));
    return EW_OK;
}

void ew_bn_layer_forward(const ew_bn_layer_t *L, ew_params_t *P, float *out, float *mean, float *rstd,
                         const float *x, int n, int hw, int train)
{
    ew_batchnorm_forward(out, mean, rstd, x, ew_params_data(P, L->iw), ew_params_data(P, L->ib),
                         ew_params_data(P, L->irm), ew_params_data(P, L->irv), n, L->c, hw, train, L->momentum,
                         L->eps);
    if (train) ew_params_data(P, L->inb)[0] += 1.0f;
}

void ew_bn_layer_backward(const ew_bn_layer_t *L, ew_params_t *P, float *dx, const float *dout, const float *x,
                          const float *mean, const float *rstd, int n, int hw, int train)
{
    ew_batchnorm_backward(dx, ew_params_grad(P, L->iw), ew_params_grad(P, L->ib), dout, x, mean, rstd,
                          ew_params_data(P, L->iw), n, L->c, hw, train);
}

ew_status_t ew_linear_layer_add(ew_linear_layer_t *L, ew_params_t *P, const char *name, int in, int out, int bias)
{
    memset(L, 0, sizeof *L);
    L->in = in, L->out = out, L->ib = -1;
    int64_t ws[2] = {out, in}, bs[1] = {out};
    EW_TRY(add_named(P, name, ".weight", EW_PARAM_WEIGHT, 2, ws, &L->iw));
    if (bias) EW_TRY(add_named(P, name, ".bias", EW_PARAM_WEIGHT, 1, bs, &L->ib));
    return EW_OK;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

void ew_layers_init(ew_params_t *P, uint64_t seed)
{
    for (size_t i = 0; i < P->n; i++) {
        const ew_param_t *t = &P->p[i];
        if (ends_with(t->name, ".running_var")) {
            ew_params_fill(P, (int)i, 1.0f);
        } else if (t->kind != EW_PARAM_WEIGHT) {
            ew_params_fill(P, (int)i, 0.0f);
        } else if (ends_with(t->name, ".weight")) {
            if (t->ndim >= 2)
                ew_init_uniform(P, (int)i, 1.0 / sqrt((double)ew_params_fan_in(P, (int)i)), seed);
            else
                ew_params_fill(P, (int)i, 1.0f);
        } else if (ends_with(t->name, ".bias")) {
            /* the weight registered just before: its fan_in bounds the bias */
            int wi = (int)i - 1;
            if (wi >= 0 && P->p[wi].ndim >= 2)
                ew_init_uniform(P, (int)i, 1.0 / sqrt((double)ew_params_fan_in(P, wi)), seed);
            else
                ew_params_fill(P, (int)i, 0.0f);
        }
    }
}

/* ---- ResNet ---- */

ew_resnet_config_t ew_resnet18_config(int in_ch, int out_dim)
{
    ew_resnet_config_t c = {.in_ch = in_ch, .width = 64, .stages = 4, .blocks = {2, 2, 2, 2}, .out_dim = out_dim,
                            .small_stem = 0};
    return c;
}

ew_status_t ew_resnet_create(ew_resnet_t *R, ew_params_t *P, const char *prefix, const ew_resnet_config_t *cfg)
{
    memset(R, 0, sizeof *R);
    if (cfg->in_ch <= 0 || cfg->width <= 0 || cfg->stages < 1 || cfg->stages > 4 || cfg->out_dim < 0)
        return ew_fail(EW_ERR_ARG, "resnet: invalid configuration (in %d width %d stages %d out %d)", cfg->in_ch,
                       cfg->width, cfg->stages, cfg->out_dim);
    R->cfg = *cfg;
    char name[EW_PARAM_NAME_MAX];
    const char *pf = prefix ? prefix : "";
    int k = cfg->small_stem ? 3 : 7, st = cfg->small_stem ? 1 : 2, pd = cfg->small_stem ? 1 : 3;
    snprintf(name, sizeof name, "%sconv1", pf);
    EW_TRY(ew_conv_layer_add(&R->conv1, P, name, cfg->in_ch, cfg->width, k, st, pd, EW_PAD_ZERO, 0));
    snprintf(name, sizeof name, "%sbn1", pf);
    EW_TRY(ew_bn_layer_add(&R->bn1, P, name, cfg->width));
    int nb = 0;
    for (int s = 0; s < cfg->stages; s++) {
        if (cfg->blocks[s] < 1) return ew_fail(EW_ERR_ARG, "resnet: stage %d has %d blocks", s + 1, cfg->blocks[s]);
        nb += cfg->blocks[s];
    }
    R->blk = calloc((size_t)nb, sizeof *R->blk);
    if (!R->blk) return ew_fail(EW_ERR_NOMEM, "resnet: out of memory");
    R->nblk = nb;
    int cin = cfg->width, b = 0;
    for (int s = 0; s < cfg->stages; s++) {
        int cout = cfg->width << s;
        for (int j = 0; j < cfg->blocks[s]; j++, b++) {
            ew_basic_block_t *B = &R->blk[b];
            B->cin = cin, B->cout = cout, B->stride = (s > 0 && j == 0) ? 2 : 1;
            B->has_down = B->stride != 1 || cin != cout;
            snprintf(name, sizeof name, "%slayer%d.%d.conv1", pf, s + 1, j);
            EW_TRY(ew_conv_layer_add(&B->conv1, P, name, cin, cout, 3, B->stride, 1, EW_PAD_ZERO, 0));
            snprintf(name, sizeof name, "%slayer%d.%d.bn1", pf, s + 1, j);
            EW_TRY(ew_bn_layer_add(&B->bn1, P, name, cout));
            snprintf(name, sizeof name, "%slayer%d.%d.conv2", pf, s + 1, j);
            EW_TRY(ew_conv_layer_add(&B->conv2, P, name, cout, cout, 3, 1, 1, EW_PAD_ZERO, 0));
            snprintf(name, sizeof name, "%slayer%d.%d.bn2", pf, s + 1, j);
            EW_TRY(ew_bn_layer_add(&B->bn2, P, name, cout));
            if (B->has_down) {
                snprintf(name, sizeof name, "%slayer%d.%d.downsample.0", pf, s + 1, j);
                EW_TRY(ew_conv_layer_add(&B->down, P, name, cin, cout, 1, B->stride, 0, EW_PAD_ZERO, 0));
                snprintf(name, sizeof name, "%slayer%d.%d.downsample.1", pf, s + 1, j);
                EW_TRY(ew_bn_layer_add(&B->down_bn, P, name, cout));
            }
            cin = cout;
        }
    }
    R->feat = cin;
    if (cfg->out_dim > 0) {
        snprintf(name, sizeof name, "%sfc", pf);
        EW_TRY(ew_linear_layer_add(&R->fc, P, name, cin, cfg->out_dim, 1));
    }
    return EW_OK;
}

/* Lay out every activation buffer for (n, h, w) from base (NULL: count).
 * Returns the number of floats, or 0 if a geometry does not fit. */
static size_t resnet_layout(ew_resnet_t *R, float *base, int n, int h, int w)
{
    size_t off = 0, scratch = 0;
#define TAKE(ptr, cnt)                                                                                             \
    do {                                                                                                           \
        size_t c_ = (size_t)(cnt);                                                                                 \
        if (base) (ptr) = base + off;                                                                              \
        off += (c_ + 15) & ~(size_t)15;                                                                            \
    } while (0)
    if (ew_conv_layer_geom(&R->conv1, n, h, w, &R->g1) != EW_OK) return 0;
    size_t s0 = (size_t)n * R->cfg.width * R->g1.oh * R->g1.ow;
    TAKE(R->c0, s0);
    TAKE(R->r0, s0);
    TAKE(R->gr0, s0);
    TAKE(R->m0, R->cfg.width);
    TAKE(R->s0, R->cfg.width);
    scratch = s0;
    int ch = R->g1.oh, cw = R->g1.ow;
    if (!R->cfg.small_stem) {
        R->gp = (ew_pool2d_t){.n = n, .c = R->cfg.width, .h = ch, .w = cw, .k = 3, .stride = 2, .pad = 1};
        if (ew_pool2d_setup(&R->gp) != EW_OK) return 0;
        size_t sp = (size_t)n * R->cfg.width * R->gp.oh * R->gp.ow;
        TAKE(R->p0, sp);
        TAKE(R->gp0, sp);
        ch = R->gp.oh, cw = R->gp.ow;
    } else if (base) {
        R->p0 = R->r0;
        R->gp0 = R->gr0;
    }
    for (int b = 0; b < R->nblk; b++) {
        ew_basic_block_t *B = &R->blk[b];
        B->n = n, B->h = ch, B->w = cw;
        B->oh = (ch + 2 - 3) / B->stride + 1;
        B->ow = (cw + 2 - 3) / B->stride + 1;
        if (B->oh <= 0 || B->ow <= 0) return 0;
        size_t so = (size_t)n * B->cout * B->oh * B->ow;
        TAKE(B->c1, so);
        TAKE(B->r1, so);
        TAKE(B->c2, so);
        TAKE(B->out, so);
        TAKE(B->gout, so);
        if (B->has_down) {
            TAKE(B->dc, so);
            TAKE(B->tmp, so);
        }
        TAKE(B->m1, B->cout);
        TAKE(B->s1, B->cout);
        TAKE(B->m2, B->cout);
        TAKE(B->s2, B->cout);
        TAKE(B->md, B->cout);
        TAKE(B->sd, B->cout);
        if (so > scratch) scratch = so;
        ch = B->oh, cw = B->ow;
    }
    TAKE(R->pooled, (size_t)n * R->feat);
    TAKE(R->gpooled, (size_t)n * R->feat);
    if (R->cfg.out_dim > 0) TAKE(R->out, (size_t)n * R->cfg.out_dim);
    for (int i = 0; i < 4; i++) TAKE(R->scratch[i], scratch);
#undef TAKE
    return off;
}

ew_status_t ew_resnet_forward(ew_resnet_t *R, ew_params_t *P, const float *x, int n, int h, int w, int train,
                              const float **out)
{
    if (n != R->n || h != R->h || w != R->w) {
        R->n = R->h = R->w = 0; /* the layout pass overwrites shapes: redo it next time unless it completes */
        size_t need = resnet_layout(R, NULL, n, h, w);
        if (!need) return ew_fail(EW_ERR_ARG, "resnet: input %dx%d (batch %d) is too small for the network", h, w, n);
        if (need > R->arena_size) {
            ew_free(R->arena);
            ew_free(R->argmax);
            R->arena = ew_alloc_array(need, sizeof(float));
            R->argmax = ew_alloc_array(need / 4 + 1, sizeof(int32_t));
            R->arena_size = R->arena && R->argmax ? need : 0;
            if (!R->arena_size) {
                R->n = 0;
                return ew_fail(EW_ERR_NOMEM, "resnet: out of memory for activations of batch %d at %dx%d", n, h, w);
            }
        }
        resnet_layout(R, R->arena, n, h, w);
        R->n = n, R->h = h, R->w = w;
    }
    R->x = x;
    R->train = train;
    /* stem */
    EW_TRY(ew_conv_layer_forward(&R->conv1, P, R->c0, x, &R->g1));
    int hw0 = R->g1.oh * R->g1.ow;
    ew_bn_layer_forward(&R->bn1, P, R->r0, R->m0, R->s0, R->c0, n, hw0, train);
    relu_inplace(R->r0, (size_t)n * R->cfg.width * hw0);
    if (!R->cfg.small_stem) ew_maxpool_forward(R->p0, R->argmax, R->r0, &R->gp);
    const float *cur = R->p0;
    for (int b = 0; b < R->nblk; b++) {
        ew_basic_block_t *B = &R->blk[b];
        ew_conv2d_t g;
        size_t so = (size_t)n * B->cout * B->oh * B->ow;
        int ohw = B->oh * B->ow;
        B->in = cur;
        EW_TRY(ew_conv_layer_geom(&B->conv1, n, B->h, B->w, &g));
        EW_TRY(ew_conv_layer_forward(&B->conv1, P, B->c1, cur, &g));
        ew_bn_layer_forward(&B->bn1, P, B->r1, B->m1, B->s1, B->c1, n, ohw, train);
        relu_inplace(B->r1, so);
        EW_TRY(ew_conv_layer_geom(&B->conv2, n, B->oh, B->ow, &g));
        EW_TRY(ew_conv_layer_forward(&B->conv2, P, B->c2, B->r1, &g));
        ew_bn_layer_forward(&B->bn2, P, B->out, B->m2, B->s2, B->c2, n, ohw, train);
        if (B->has_down) {
            EW_TRY(ew_conv_layer_geom(&B->down, n, B->h, B->w, &g));
            EW_TRY(ew_conv_layer_forward(&B->down, P, B->dc, cur, &g));
            ew_bn_layer_forward(&B->down_bn, P, B->tmp, B->md, B->sd, B->dc, n, ohw, train);
            ew_accumulate(B->out, B->tmp, so);
        } else {
            ew_accumulate(B->out, cur, so);
        }
        relu_inplace(B->out, so);
        cur = B->out;
    }
    const ew_basic_block_t *last = &R->blk[R->nblk - 1];
    ew_global_avgpool_forward(R->pooled, cur, n, R->feat, last->oh * last->ow);
    if (R->cfg.out_dim > 0) {
        ew_linear_forward(R->out, R->pooled, ew_params_data(P, R->fc.iw), ew_params_data(P, R->fc.ib), n, R->feat,
                          R->cfg.out_dim);
        *out = R->out;
    } else {
        *out = R->pooled;
    }
    return EW_OK;
}

ew_status_t ew_resnet_backward(ew_resnet_t *R, ew_params_t *P, const float *dout, float *dx)
{
    EW_ASSERT(R->n > 0);
    const int n = R->n;
    float *gc2 = R->scratch[0], *gr1 = R->scratch[1], *gc1 = R->scratch[2], *gdc = R->scratch[3];
    zero(R->gpooled, (size_t)n * R->feat);
    if (R->cfg.out_dim > 0) {
        EW_TRY(ew_linear_backward(R->gpooled, ew_params_grad(P, R->fc.iw), ew_params_grad(P, R->fc.ib), dout,
                                  R->pooled, ew_params_data(P, R->fc.iw), n, R->feat, R->cfg.out_dim));
    } else {
        ew_accumulate(R->gpooled, dout, (size_t)n * R->feat);
    }
    ew_basic_block_t *last = &R->blk[R->nblk - 1];
    zero(last->gout, (size_t)n * last->cout * last->oh * last->ow);
    ew_global_avgpool_backward(last->gout, R->gpooled, n, R->feat, last->oh * last->ow);
    for (int b = R->nblk - 1; b >= 0; b--) {
        ew_basic_block_t *B = &R->blk[b];
        float *gin = b > 0 ? R->blk[b - 1].gout : R->gp0;
        size_t so = (size_t)n * B->cout * B->oh * B->ow, si = (size_t)n * B->cin * B->h * B->w;
        int ohw = B->oh * B->ow;
        ew_conv2d_t g;
        float *gs = B->gout;
        relu_mask(gs, B->out, so);
        zero(gc2, so);
        ew_bn_layer_backward(&B->bn2, P, gc2, gs, B->c2, B->m2, B->s2, n, ohw, R->train);
        zero(gr1, so);
        EW_TRY(ew_conv_layer_geom(&B->conv2, n, B->oh, B->ow, &g));
        EW_TRY(ew_conv_layer_backward(&B->conv2, P, gr1, gc2, B->r1, &g));
        relu_mask(gr1, B->r1, so);
        zero(gc1, so);
        ew_bn_layer_backward(&B->bn1, P, gc1, gr1, B->c1, B->m1, B->s1, n, ohw, R->train);
        zero(gin, si);
        EW_TRY(ew_conv_layer_geom(&B->conv1, n, B->h, B->w, &g));
        EW_TRY(ew_conv_layer_backward(&B->conv1, P, gin, gc1, B->in, &g));
        if (B->has_down) {
            zero(gdc, so);
            ew_bn_layer_backward(&B->down_bn, P, gdc, gs, B->dc, B->md, B->sd, n, ohw, R->train);
            EW_TRY(ew_conv_layer_geom(&B->down, n, B->h, B->w, &g));
            EW_TRY(ew_conv_layer_backward(&B->down, P, gin, gdc, B->in, &g));
        } else {
            ew_accumulate(gin, gs, si);
        }
    }
    size_t s0 = (size_t)n * R->cfg.width * R->g1.oh * R->g1.ow;
    if (!R->cfg.small_stem) {
        zero(R->gr0, s0);
        ew_maxpool_backward(R->gr0, R->gp0, R->argmax, &R->gp);
    }
    relu_mask(R->gr0, R->r0, s0);
    zero(gc1, s0);
    ew_bn_layer_backward(&R->bn1, P, gc1, R->gr0, R->c0, R->m0, R->s0, n, R->g1.oh * R->g1.ow, R->train);
    EW_TRY(ew_conv_layer_backward(&R->conv1, P, dx, gc1, R->x, &R->g1));
    return EW_OK;
}

void ew_resnet_free(ew_resnet_t *R)
{
    if (!R) return;
    ew_free(R->arena);
    ew_free(R->argmax);
    free(R->blk);
    memset(R, 0, sizeof *R);
}

/* ---- MLP / SIREN ---- */

ew_mlp_config_t ew_siren_config(int in_dim, int hidden, int layers, int out_dim)
{
    ew_mlp_config_t c = {.in_dim = in_dim, .hidden = hidden, .layers = layers, .out_dim = out_dim,
                         .act = EW_ACT_SINE, .act_param = 30.0, .first_omega = 30.0, .siren_init = 1};
    return c;
}

ew_status_t ew_mlp_create(ew_mlp_t *M, ew_params_t *P, const char *prefix, const ew_mlp_config_t *cfg)
{
    memset(M, 0, sizeof *M);
    if (cfg->in_dim <= 0 || cfg->hidden <= 0 || cfg->layers < 0 || cfg->out_dim <= 0)
        return ew_fail(EW_ERR_ARG, "mlp: invalid configuration (in %d hidden %d layers %d out %d)", cfg->in_dim,
                       cfg->hidden, cfg->layers, cfg->out_dim);
    M->cfg = *cfg;
    M->L = calloc((size_t)cfg->layers + 1, sizeof *M->L);
    M->z = calloc((size_t)cfg->layers + 1, sizeof *M->z);
    M->a = calloc((size_t)cfg->layers + 1, sizeof *M->a);
    if (!M->L || !M->z || !M->a) return ew_fail(EW_ERR_NOMEM, "mlp: out of memory");
    char name[EW_PARAM_NAME_MAX];
    for (int i = 0; i <= cfg->layers; i++) {
        int in = i == 0 ? cfg->in_dim : cfg->hidden, out = i == cfg->layers ? cfg->out_dim : cfg->hidden;
        snprintf(name, sizeof name, "%slayers.%d", prefix ? prefix : "", i);
        EW_TRY(ew_linear_layer_add(&M->L[i], P, name, in, out, 1));
    }
    return EW_OK;
}

void ew_mlp_init(const ew_mlp_t *M, ew_params_t *P, uint64_t seed)
{
    if (!M->cfg.siren_init) return;
    for (int i = 0; i <= M->cfg.layers; i++) {
        double om = M->cfg.act_param > 0 ? M->cfg.act_param : 30.0;
        ew_init_siren(P, M->L[i].iw, i == 0, om, seed);
        /* biases: PyTorch default U(+-1/sqrt(fan_in)) as in the SIREN reference code */
        ew_init_uniform(P, M->L[i].ib, 1.0 / sqrt((double)M->L[i].in), seed);
    }
}

static double layer_param(const ew_mlp_t *M, int i)
{
    return (M->cfg.act == EW_ACT_SINE && i == 0) ? M->cfg.first_omega : M->cfg.act_param;
}

ew_status_t ew_mlp_forward(ew_mlp_t *M, const ew_params_t *P, const float *x, int rows, const float **out)
{
    const int nl = M->cfg.layers, hid = M->cfg.hidden, od = M->cfg.out_dim;
    if (rows > M->cap_rows) {
        int wmax = hid > od ? hid : od;
        if (M->cfg.in_dim > wmax) wmax = M->cfg.in_dim;
        size_t per = ((size_t)rows * wmax + 15) & ~(size_t)15;
        ew_free(M->arena);
        M->arena = ew_alloc_array(per * (2 * (size_t)nl + 3), sizeof(float));
        if (!M->arena) {
            M->cap_rows = 0;
            return ew_fail(EW_ERR_NOMEM, "mlp: out of memory for %d rows", rows);
        }
        for (int i = 0; i < nl; i++) {
            M->z[i] = M->arena + (2 * (size_t)i) * per;
            M->a[i] = M->z[i] + per;
        }
        M->z[nl] = M->arena + 2 * (size_t)nl * per;
        M->g0 = M->z[nl] + per;
        M->g1 = M->g0 + per;
        M->cap_rows = rows;
    }
    M->rows = rows;
    M->x = x;
    const float *in = x;
    for (int i = 0; i <= nl; i++) {
        const ew_linear_layer_t *L = &M->L[i];
        ew_linear_forward(M->z[i], in, ew_params_data(P, L->iw), ew_params_data(P, L->ib), rows, L->in, L->out);
        if (i < nl) {
            ew_act_forward(M->cfg.act, layer_param(M, i), M->a[i], M->z[i], (size_t)rows * L->out);
            in = M->a[i];
        }
    }
    *out = M->z[nl];
    return EW_OK;
}

ew_status_t ew_mlp_backward(ew_mlp_t *M, ew_params_t *P, const float *dout, float *dx)
{
    EW_ASSERT(M->rows > 0);
    const int nl = M->cfg.layers, rows = M->rows;
    const float *g = dout;
    for (int i = nl; i >= 0; i--) {
        const ew_linear_layer_t *L = &M->L[i];
        const float *in = i == 0 ? M->x : M->a[i - 1];
        float *gin = NULL;
        if (i > 0) {
            gin = (g == M->g0) ? M->g1 : M->g0;
            zero(gin, (size_t)rows * L->in);
        } else {
            gin = dx;
        }
        EW_TRY(ew_linear_backward(gin, ew_params_grad(P, L->iw), ew_params_grad(P, L->ib), g, in,
                                  ew_params_data(P, L->iw), rows, L->in, L->out));
        if (i > 0) {
            /* through the activation of layer i - 1: dz = f'(z) da */
            float *gz = (gin == M->g0) ? M->g1 : M->g0;
            zero(gz, (size_t)rows * L->in);
            ew_act_backward(M->cfg.act, layer_param(M, i - 1), gz, gin, M->z[i - 1], M->a[i - 1],
                            (size_t)rows * L->in);
            g = gz;
        }
    }
    return EW_OK;
}

void ew_mlp_free(ew_mlp_t *M)
{
    if (!M) return;
    ew_free(M->arena);
    free(M->L);
    free(M->z);
    free(M->a);
    memset(M, 0, sizeof *M);
}
