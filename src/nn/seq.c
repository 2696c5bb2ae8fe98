/* ewald nn: sequential stacks (see seq.h). */
#include "nn/seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/norm.h"

static ew_status_t seq_push(ew_seq_t *S, ew_seq_kind_t kind, ew_seq_layer_t **out)
{
    size_t cap = (size_t)S->cap;
    EW_TRY(ew_grow((void **)&S->L, &cap, (size_t)S->n_layers + 1, sizeof *S->L));
    S->cap = (int)cap;
    ew_seq_layer_t *L = &S->L[S->n_layers];
    memset(L, 0, sizeof *L);
    L->kind = kind;
    L->cin = L->cout = S->n_layers ? S->L[S->n_layers - 1].cout : S->in_ch;
    L->iw = L->ib = -1;
    *out = L;
    return EW_OK;
}

/* "<prefix><index>" of the layer being added */
static void seq_name(const ew_seq_t *S, char *buf, size_t n)
{
    snprintf(buf, n, "%s%d", S->prefix, S->n_layers);
}

void ew_seq_init(ew_seq_t *S, const char *prefix, int in_ch)
{
    memset(S, 0, sizeof *S);
    snprintf(S->prefix, sizeof S->prefix, "%s", prefix ? prefix : "");
    S->in_ch = in_ch;
}

ew_status_t ew_seq_conv(ew_seq_t *S, ew_params_t *P, int oc, int k, int stride, int pad, ew_pad_mode_t pad_mode,
                        int bias)
{
    ew_seq_layer_t *L;
    char name[EW_PARAM_NAME_MAX];
    seq_name(S, name, sizeof name);
    EW_TRY(seq_push(S, EW_SEQ_CONV, &L));
    EW_TRY(ew_conv_layer_add(&L->conv, P, name, L->cin, oc, k, stride, pad, pad_mode, bias));
    L->cout = oc;
    S->n_layers++;
    return EW_OK;
}

ew_status_t ew_seq_convt(ew_seq_t *S, ew_params_t *P, int oc, int k, int stride, int pad, int out_pad, int bias)
{
    ew_seq_layer_t *L;
    char name[EW_PARAM_NAME_MAX];
    seq_name(S, name, sizeof name);
    EW_TRY(seq_push(S, EW_SEQ_CONVT, &L));
    EW_TRY(ew_convt_layer_add(&L->conv, P, name, L->cin, oc, k, stride, pad, out_pad, bias));
    L->cout = oc;
    S->n_layers++;
    return EW_OK;
}

ew_status_t ew_seq_batchnorm(ew_seq_t *S, ew_params_t *P)
{
    ew_seq_layer_t *L;
    char name[EW_PARAM_NAME_MAX];
    seq_name(S, name, sizeof name);
    EW_TRY(seq_push(S, EW_SEQ_BATCHNORM, &L));
    EW_TRY(ew_bn_layer_add(&L->bn, P, name, L->cin));
    S->n_layers++;
    return EW_OK;
}

ew_status_t ew_seq_groupnorm(ew_seq_t *S, ew_params_t *P, int groups, int affine)
{
    ew_seq_layer_t *L;
    char name[EW_PARAM_NAME_MAX + 16];
    seq_name(S, name, EW_PARAM_NAME_MAX);
    EW_TRY(seq_push(S, EW_SEQ_GROUPNORM, &L));
    if (groups <= 0 || L->cin % groups)
        return ew_fail(EW_ERR_ARG, "%s: %d groups do not divide %d channels", name, groups, L->cin);
    L->groups = groups;
    if (affine) {
        int64_t s[1] = {L->cin};
        size_t len = strlen(name);
        strcpy(name + len, ".weight");
        EW_TRY(ew_params_add(P, name, EW_PARAM_WEIGHT, 1, s, &L->iw));
        strcpy(name + len, ".bias");
        EW_TRY(ew_params_add(P, name, EW_PARAM_WEIGHT, 1, s, &L->ib));
    }
    S->n_layers++;
    return EW_OK;
}

ew_status_t ew_seq_instancenorm(ew_seq_t *S, ew_params_t *P, int affine)
{
    int c = S->n_layers ? S->L[S->n_layers - 1].cout : S->in_ch;
    return ew_seq_groupnorm(S, P, c, affine);
}

ew_status_t ew_seq_act(ew_seq_t *S, ew_act_t act, double param)
{
    ew_seq_layer_t *L;
    EW_TRY(seq_push(S, EW_SEQ_ACT, &L));
    L->act = act;
    L->act_param = param;
    S->n_layers++;
    return EW_OK;
}

static ew_status_t seq_pool(ew_seq_t *S, ew_seq_kind_t kind, int k, int stride, int pad)
{
    if (k <= 0 || stride <= 0 || pad < 0 || pad > k / 2)
        return ew_fail(EW_ERR_ARG, "%s%d: pool k %d stride %d pad %d is invalid", S->prefix, S->n_layers, k, stride, pad);
    ew_seq_layer_t *L;
    EW_TRY(seq_push(S, kind, &L));
    L->k = k, L->stride = stride, L->pad = pad;
    S->n_layers++;
    return EW_OK;
}

ew_status_t ew_seq_maxpool(ew_seq_t *S, int k, int stride, int pad)
{
    return seq_pool(S, EW_SEQ_MAXPOOL, k, stride, pad);
}

ew_status_t ew_seq_avgpool(ew_seq_t *S, int k, int stride, int pad)
{
    return seq_pool(S, EW_SEQ_AVGPOOL, k, stride, pad);
}

ew_status_t ew_seq_upsample(ew_seq_t *S, ew_upsample_t mode, int scale)
{
    if (scale < 1) return ew_fail(EW_ERR_ARG, "%s%d: upsampling scale %d is not positive", S->prefix, S->n_layers, scale);
    ew_seq_layer_t *L;
    EW_TRY(seq_push(S, EW_SEQ_UPSAMPLE, &L));
    L->up = mode, L->scale = scale;
    S->n_layers++;
    return EW_OK;
}

ew_status_t ew_seq_global_avgpool(ew_seq_t *S)
{
    ew_seq_layer_t *L;
    EW_TRY(seq_push(S, EW_SEQ_GLOBAL_AVGPOOL, &L));
    S->n_layers++;
    return EW_OK;
}

ew_status_t ew_seq_linear(ew_seq_t *S, ew_params_t *P, int in_features, int out_features, int bias)
{
    ew_seq_layer_t *L;
    char name[EW_PARAM_NAME_MAX];
    seq_name(S, name, sizeof name);
    EW_TRY(seq_push(S, EW_SEQ_LINEAR, &L));
    EW_TRY(ew_linear_layer_add(&L->lin, P, name, in_features, out_features, bias));
    L->cout = out_features;
    S->n_layers++;
    return EW_OK;
}

/* Output size of layer L (index idx) for an input (n, cin, h, w). */
static ew_status_t layer_shape(const ew_seq_t *S, ew_seq_layer_t *L, int n, int h, int w, int idx)
{
    L->h = h, L->w = w;
    ew_conv2d_t g;
    ew_pool2d_t pd;
    switch (L->kind) {
    case EW_SEQ_CONV:
    case EW_SEQ_CONVT:
        EW_TRY(ew_conv_layer_geom(&L->conv, n, h, w, &g));
        L->oh = g.oh, L->ow = g.ow;
        break;
    case EW_SEQ_MAXPOOL:
    case EW_SEQ_AVGPOOL:
        pd = (ew_pool2d_t){.n = n, .c = L->cin, .h = h, .w = w, .k = L->k, .stride = L->stride, .pad = L->pad};
        EW_TRY(ew_pool2d_setup(&pd));
        L->oh = pd.oh, L->ow = pd.ow;
        break;
    case EW_SEQ_UPSAMPLE:
        L->oh = h * L->scale, L->ow = w * L->scale;
        break;
    case EW_SEQ_GLOBAL_AVGPOOL:
        L->oh = L->ow = 1;
        break;
    case EW_SEQ_LINEAR:
        if ((size_t)L->cin * h * w != (size_t)L->lin.in)
            return ew_fail(EW_ERR_ARG, "%s%d: linear layer expects %d features, input has %d x %d x %d", S->prefix, idx,
                           L->lin.in, L->cin, h, w);
        L->oh = L->ow = 1;
        break;
    default:
        L->oh = h, L->ow = w;
        break;
    }
    return EW_OK;
}

static size_t cache_floats(const ew_seq_layer_t *L, int n)
{
    switch (L->kind) {
    case EW_SEQ_BATCHNORM: return 2 * (size_t)L->cin;
    case EW_SEQ_GROUPNORM: return 2 * (size_t)n * L->groups;
    case EW_SEQ_MAXPOOL: return (size_t)n * L->cout * L->oh * L->ow; /* int32 argmax */
    default: return 0;
    }
}

static ew_status_t seq_prepare(ew_seq_t *S, int n, int h, int w)
{
    S->n = S->h = S->w = 0; /* shapes are overwritten below: redo them next time unless this completes */
    size_t total = 0, gmax = (size_t)n * S->in_ch * h * w;
    int ch = h, cw = w;
    for (int i = 0; i < S->n_layers; i++) {
        ew_seq_layer_t *L = &S->L[i];
        EW_TRY(layer_shape(S, L, n, ch, cw, i));
        size_t so = (size_t)n * L->cout * L->oh * L->ow;
        total += ((so + 15) & ~(size_t)15) + ((cache_floats(L, n) + 15) & ~(size_t)15);
        if (so > gmax) gmax = so;
        ch = L->oh, cw = L->ow;
    }
    gmax = (gmax + 15) & ~(size_t)15;
    total += 2 * gmax;
    if (total > S->arena_size) {
        ew_free(S->arena);
        S->arena = ew_alloc_array(total, sizeof(float));
        S->arena_size = S->arena ? total : 0;
        if (!S->arena) {
            S->n = 0;
            return ew_fail(EW_ERR_NOMEM, "%ssequential: out of memory for activations of batch %d at %dx%d", S->prefix,
                           n, h, w);
        }
    }
    float *p = S->arena;
    for (int i = 0; i < S->n_layers; i++) {
        ew_seq_layer_t *L = &S->L[i];
        size_t so = (size_t)n * L->cout * L->oh * L->ow;
        L->out = p;
        p += (so + 15) & ~(size_t)15;
        L->cache = p;
        p += (cache_floats(L, n) + 15) & ~(size_t)15;
    }
    S->g0 = p;
    S->g1 = p + gmax;
    S->n = n, S->h = h, S->w = w;
    return EW_OK;
}

ew_status_t ew_seq_forward(ew_seq_t *S, ew_params_t *P, const float *x, int n, int h, int w, int train,
                           const float **out, int *oc, int *oh, int *ow)
{
    EW_ASSERT(S->n_layers > 0);
    if (n != S->n || h != S->h || w != S->w) EW_TRY(seq_prepare(S, n, h, w));
    S->train = train;
    const float *cur = x;
    for (int i = 0; i < S->n_layers; i++) {
        ew_seq_layer_t *L = &S->L[i];
        L->in = cur;
        const int hw = L->h * L->w;
        const size_t cnt = (size_t)n * L->cin * hw;
        ew_conv2d_t g;
        ew_pool2d_t pd = {.n = n, .c = L->cin, .h = L->h, .w = L->w, .k = L->k, .stride = L->stride, .pad = L->pad,
                          .oh = L->oh, .ow = L->ow};
        switch (L->kind) {
        case EW_SEQ_CONV:
        case EW_SEQ_CONVT:
            EW_TRY(ew_conv_layer_geom(&L->conv, n, L->h, L->w, &g));
            EW_TRY(ew_conv_layer_forward(&L->conv, P, L->out, cur, &g));
            break;
        case EW_SEQ_BATCHNORM:
            ew_bn_layer_forward(&L->bn, P, L->out, L->cache, L->cache + L->cin, cur, n, hw, train);
            break;
        case EW_SEQ_GROUPNORM:
            ew_groupnorm_forward(L->out, L->cache, L->cache + (size_t)n * L->groups, cur,
                                 L->iw >= 0 ? ew_params_data(P, L->iw) : NULL,
                                 L->ib >= 0 ? ew_params_data(P, L->ib) : NULL, n, L->cin, hw, L->groups, 1e-5);
            break;
        case EW_SEQ_ACT:
            ew_act_forward(L->act, L->act_param, L->out, cur, cnt);
            break;
        case EW_SEQ_MAXPOOL:
            ew_maxpool_forward(L->out, (int32_t *)L->cache, cur, &pd);
            break;
        case EW_SEQ_AVGPOOL:
            ew_avgpool_forward(L->out, cur, &pd);
            break;
        case EW_SEQ_UPSAMPLE:
            ew_upsample_forward(L->up, L->out, cur, n, L->cin, L->h, L->w, L->scale);
            break;
        case EW_SEQ_GLOBAL_AVGPOOL:
            ew_global_avgpool_forward(L->out, cur, n, L->cin, hw);
            break;
        case EW_SEQ_LINEAR:
            ew_linear_forward(L->out, cur, ew_params_data(P, L->lin.iw),
                              L->lin.ib >= 0 ? ew_params_data(P, L->lin.ib) : NULL, n, L->lin.in, L->lin.out);
            break;
        }
        cur = L->out;
    }
    const ew_seq_layer_t *last = &S->L[S->n_layers - 1];
    *out = cur;
    if (oc) *oc = last->cout;
    if (oh) *oh = last->oh;
    if (ow) *ow = last->ow;
    return EW_OK;
}

ew_status_t ew_seq_backward(ew_seq_t *S, ew_params_t *P, const float *dout, float *dx)
{
    EW_ASSERT(S->n > 0);
    const int n = S->n;
    const float *g = dout;
    for (int i = S->n_layers - 1; i >= 0; i--) {
        ew_seq_layer_t *L = &S->L[i];
        const int hw = L->h * L->w;
        const size_t cnt = (size_t)n * L->cin * hw;
        float *gin;
        if (i > 0) {
            gin = (g == S->g0) ? S->g1 : S->g0;
            memset(gin, 0, cnt * sizeof(float));
        } else {
            gin = dx;
        }
        ew_conv2d_t geo;
        ew_pool2d_t pd = {.n = n, .c = L->cin, .h = L->h, .w = L->w, .k = L->k, .stride = L->stride, .pad = L->pad,
                          .oh = L->oh, .ow = L->ow};
        switch (L->kind) {
        case EW_SEQ_CONV:
        case EW_SEQ_CONVT:
            EW_TRY(ew_conv_layer_geom(&L->conv, n, L->h, L->w, &geo));
            EW_TRY(ew_conv_layer_backward(&L->conv, P, gin, g, L->in, &geo));
            break;
        case EW_SEQ_BATCHNORM:
            ew_bn_layer_backward(&L->bn, P, gin, g, L->in, L->cache, L->cache + L->cin, n, hw, S->train);
            break;
        case EW_SEQ_GROUPNORM:
            ew_groupnorm_backward(gin, L->iw >= 0 ? ew_params_grad(P, L->iw) : NULL,
                                  L->ib >= 0 ? ew_params_grad(P, L->ib) : NULL, g, L->in, L->cache,
                                  L->cache + (size_t)n * L->groups, L->iw >= 0 ? ew_params_data(P, L->iw) : NULL, n,
                                  L->cin, hw, L->groups);
            break;
        case EW_SEQ_ACT:
            if (gin) ew_act_backward(L->act, L->act_param, gin, g, L->in, L->out, cnt);
            break;
        case EW_SEQ_MAXPOOL:
            if (gin) ew_maxpool_backward(gin, g, (const int32_t *)L->cache, &pd);
            break;
        case EW_SEQ_AVGPOOL:
            if (gin) ew_avgpool_backward(gin, g, &pd);
            break;
        case EW_SEQ_UPSAMPLE:
            if (gin) ew_upsample_backward(L->up, gin, g, n, L->cin, L->h, L->w, L->scale);
            break;
        case EW_SEQ_GLOBAL_AVGPOOL:
            if (gin) ew_global_avgpool_backward(gin, g, n, L->cin, hw);
            break;
        case EW_SEQ_LINEAR:
            EW_TRY(ew_linear_backward(gin, ew_params_grad(P, L->lin.iw),
                                      L->lin.ib >= 0 ? ew_params_grad(P, L->lin.ib) : NULL, g, L->in,
                                      ew_params_data(P, L->lin.iw), n, L->lin.in, L->lin.out));
            break;
        }
        g = gin;
    }
    return EW_OK;
}

void ew_seq_free(ew_seq_t *S)
{
    if (!S) return;
    ew_free(S->arena);
    free(S->L);
    memset(S, 0, sizeof *S);
}
