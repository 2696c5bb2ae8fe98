/* ewald gen: the CUT networks (generator, PatchGAN discriminator, MLP
 * heads) as small op graphs over activation slots, their forward and
 * backward passes, checkpoints. See gen.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gen/cut_impl.h"
#include "io/safetensors.h"
#include "nn/nn.h"

/* ---- configuration ---- */

void ew_cut_config_default(ew_cut_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->ngf = 16;
    c->n_blocks = 6;
    c->ndf = 16;
    c->n_layers_d = 3;
    const int layers[5] = {0, 4, 8, 12, 16};
    memcpy(c->nce_layers, layers, sizeof(layers));
    c->n_nce_layers = 5;
    c->mlp_dim = 256;
    c->num_patches = 256;
    c->nce_t = 0.07;
    c->lambda_gan = 1.0;
    c->lambda_nce = 1.0;
    c->nce_idt = 0;
    c->sampling = EW_CUT_SAMPLE_MASK;
    c->identity_skip = 1;
    c->lr = 2e-4;
    c->beta1 = 0.5;
    c->beta2 = 0.999;
    c->crop = 64;
    c->batch = 2;
    c->steps = 2000;
    c->flip = 1;
    c->min_particle_fraction = 0.02;
    c->seed = 1;
    c->clip_sd = 3.0;
    c->outdir = NULL;
    c->sample_every = 500;
    c->checkpoint_every = 500;
    c->resume = NULL;
    c->progress = 1;
    c->eval_crops = 48;
    c->eval_size = 128;
    c->lowpass_A = 20.0;
    c->pixel = 1.31;
}

ew_status_t ew_cut_config_check(const ew_cut_config_t *c)
{
#define BAD_INT(cond, field) \
    if (cond) return ew_fail(EW_ERR_ARG, "noise model: %s = %d is out of range", #field, (int)c->field)
#define BAD_DBL(cond, field) \
    if (cond) return ew_fail(EW_ERR_ARG, "noise model: %s = %g is out of range", #field, (double)c->field)
    BAD_INT(c->ngf < 1 || c->ngf > 1024, ngf);
    BAD_INT(c->n_blocks < 1 || c->n_blocks > 64, n_blocks);
    BAD_INT(c->ndf < 1 || c->ndf > 1024, ndf);
    BAD_INT(c->n_layers_d < 1 || c->n_layers_d > 6, n_layers_d);
    BAD_INT(c->n_nce_layers < 1 || c->n_nce_layers > EW_CUT_MAX_TAPS, n_nce_layers);
    for (int i = 0; i < c->n_nce_layers; i++)
        if (c->nce_layers[i] < 0)
            return ew_fail(EW_ERR_ARG, "noise model: nce_layers[%d] = %d is negative", i, c->nce_layers[i]);
    BAD_INT(c->mlp_dim < 1, mlp_dim);
    BAD_INT(c->identity_skip != 0 && c->identity_skip != 1, identity_skip);
    BAD_INT(c->num_patches < 2, num_patches);
    BAD_DBL(!(c->nce_t > 0), nce_t);
    BAD_DBL(!(c->lambda_gan >= 0), lambda_gan);
    BAD_DBL(!(c->lambda_nce >= 0), lambda_nce);
    BAD_DBL(!(c->lr > 0), lr);
    BAD_DBL(!(c->beta1 >= 0 && c->beta1 < 1), beta1);
    BAD_DBL(!(c->beta2 >= 0 && c->beta2 < 1), beta2);
    BAD_INT(c->crop < 16 || c->crop % 4 != 0, crop);
    BAD_INT(c->batch < 1, batch);
    BAD_INT(c->steps < 0, steps);
    BAD_DBL(!(c->min_particle_fraction >= 0 && c->min_particle_fraction < 1), min_particle_fraction);
    BAD_DBL(!(c->clip_sd > 0), clip_sd);
    BAD_INT(c->eval_crops < 0, eval_crops);
    BAD_INT(c->eval_size < 16 || c->eval_size % 4 != 0, eval_size);
    BAD_DBL(!(c->lowpass_A >= 0), lowpass_A);
    BAD_DBL(!(c->pixel > 0), pixel);
    if (c->sampling != EW_CUT_SAMPLE_PLAIN && c->sampling != EW_CUT_SAMPLE_MASK)
        return ew_fail(EW_ERR_ARG, "noise model: sampling = %d is not PLAIN (0) or MASK (1)", (int)c->sampling);
    return EW_OK;
#undef BAD_INT
#undef BAD_DBL
}

/* ---- op graphs ---- */

static int net_slot(cut_net_t *net) { return net->nslot++; }

static ew_status_t net_op(cut_net_t *net, cut_op_kind_t kind, int in, int in2, int conv, int *out)
{
    if (net->nop == net->cap_op) {
        int cap = net->cap_op ? 2 * net->cap_op : 32;
        cut_op_t *op = realloc(net->op, sizeof(cut_op_t) * (size_t)cap);
        if (!op) return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for %d ops", cap);
        net->op = op;
        net->cap_op = cap;
    }
    *out = net_slot(net);
    net->op[net->nop++] = (cut_op_t){.kind = kind, .in = in, .in2 = in2, .out = *out, .conv = conv};
    return EW_OK;
}

static ew_status_t net_conv(cut_net_t *net, ew_params_t *P, const char *name, int c, int oc, int k, int stride,
                            int pad, ew_pad_mode_t pm, int transposed, int in, int *out)
{
    if (net->nconv == net->cap_conv) {
        int cap = net->cap_conv ? 2 * net->cap_conv : 16;
        ew_conv_layer_t *cv = realloc(net->conv, sizeof(ew_conv_layer_t) * (size_t)cap);
        if (!cv) return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for %d layers", cap);
        net->conv = cv;
        net->cap_conv = cap;
    }
    ew_conv_layer_t *L = &net->conv[net->nconv];
    if (transposed)
        EW_TRY(ew_convt_layer_add(L, P, name, c, oc, k, stride, pad, 1, 1));
    else
        EW_TRY(ew_conv_layer_add(L, P, name, c, oc, k, stride, pad, pm, 1));
    return net_op(net, CUT_CONV, in, -1, net->nconv++, out);
}

int cut_net_out(const cut_net_t *net) { return net->op[net->nop - 1].out; }

static void net_free(cut_net_t *net)
{
    free(net->op);
    free(net->conv);
    memset(net, 0, sizeof(*net));
}

void cut_act_init(cut_act_t *a) { memset(a, 0, sizeof(*a)); }

void cut_act_free(cut_act_t *a)
{
    if (!a) return;
    free(a->sc);
    free(a->sh);
    free(a->sw);
    free(a->off);
    free(a->noff);
    free(a->geom);
    ew_free(a->buf);
    ew_free(a->grad);
    ew_free(a->nbuf);
    memset(a, 0, sizeof(*a));
}

float *cut_slot(const cut_act_t *a, int s) { return a->buf + a->off[s]; }
float *cut_slot_grad(const cut_act_t *a, int s) { return a->grad + a->off[s]; }
size_t cut_slot_size(const cut_act_t *a, int s) { return (size_t)a->n * a->sc[s] * a->sh[s] * a->sw[s]; }

void cut_act_zero_grad(cut_act_t *a)
{
    if (a->grad) memset(a->grad, 0, sizeof(float) * a->cap);
}

ew_status_t cut_net_forward(const cut_net_t *net, const ew_params_t *P, cut_act_t *a, const float *x, int n, int h,
                            int w, int upto, int with_grad)
{
    if (upto < 0 || upto > net->nop) upto = net->nop;
    if (!a->sc) {
        a->sc = calloc((size_t)net->nslot, sizeof(int));
        a->sh = calloc((size_t)net->nslot, sizeof(int));
        a->sw = calloc((size_t)net->nslot, sizeof(int));
        a->off = calloc((size_t)net->nslot + 1, sizeof(size_t));
        a->noff = calloc((size_t)net->nop + 1, sizeof(size_t));
        a->geom = calloc((size_t)net->nop, sizeof(ew_conv2d_t));
        if (!a->sc || !a->sh || !a->sw || !a->off || !a->noff || !a->geom) {
            cut_act_free(a);
            return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for activation tables");
        }
    }
    /* shapes */
    a->n = n;
    a->h = h;
    a->w = w;
    a->upto = upto;
    a->sc[0] = net->op[0].kind == CUT_CONV ? net->conv[net->op[0].conv].c : 1;
    a->sh[0] = h;
    a->sw[0] = w;
    size_t total = (size_t)n * a->sc[0] * h * w, ntot = 0;
    a->off[0] = 0;
    for (int i = 0; i < upto; i++) {
        const cut_op_t *o = &net->op[i];
        int c = a->sc[o->in], oh = a->sh[o->in], ow = a->sw[o->in];
        a->noff[i] = ntot;
        if (o->kind == CUT_CONV) {
            const ew_conv_layer_t *L = &net->conv[o->conv];
            if (L->c != c)
                return ew_fail(EW_ERR_INTERNAL, "noise model: layer %d expects %d channels, gets %d", i, L->c, c);
            EW_TRY(ew_conv_layer_geom(L, n, oh, ow, &a->geom[i]));
            c = L->oc;
            oh = a->geom[i].oh;
            ow = a->geom[i].ow;
        } else if (o->kind == CUT_IN) {
            ntot += 2 * (size_t)n * c;
        }
        a->sc[o->out] = c;
        a->sh[o->out] = oh;
        a->sw[o->out] = ow;
        a->off[o->out] = total;
        total += (size_t)n * c * oh * ow;
    }
    if (total > a->cap || ntot > a->ncap || (with_grad && !a->grad)) {
        ew_free(a->buf);
        ew_free(a->grad);
        ew_free(a->nbuf);
        a->buf = ew_alloc_array(total, sizeof(float));
        a->grad = with_grad ? ew_alloc_array(total, sizeof(float)) : NULL;
        a->nbuf = ew_alloc_array(ntot + 1, sizeof(float));
        if (!a->buf || (with_grad && !a->grad) || !a->nbuf) {
            cut_act_free(a);
            return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for %zu activations", total);
        }
        a->cap = total;
        a->ncap = ntot;
    }
    a->with_grad = with_grad;
    memcpy(a->buf, x, sizeof(float) * (size_t)n * a->sc[0] * h * w);
    for (int i = 0; i < upto; i++) {
        const cut_op_t *o = &net->op[i];
        const float *in = cut_slot(a, o->in);
        float *out = cut_slot(a, o->out);
        const size_t sz = cut_slot_size(a, o->out);
        switch (o->kind) {
        case CUT_CONV: EW_TRY(ew_conv_layer_forward(&net->conv[o->conv], P, out, in, &a->geom[i])); break;
        case CUT_IN: {
            const int c = a->sc[o->in], hw = a->sh[o->in] * a->sw[o->in];
            float *mean = a->nbuf + a->noff[i], *rstd = mean + (size_t)n * c;
            ew_groupnorm_forward(out, mean, rstd, in, NULL, NULL, n, c, hw, c, 1e-5);
            break;
        }
        case CUT_RELU: ew_act_forward(EW_ACT_RELU, 0.0, out, in, sz); break;
        case CUT_LRELU: ew_act_forward(EW_ACT_LEAKY_RELU, 0.2, out, in, sz); break;
        case CUT_TANH: ew_act_forward(EW_ACT_TANH, 0.0, out, in, sz); break;
        case CUT_ADD: ew_add_forward(out, in, cut_slot(a, o->in2), sz); break;
        case CUT_TANH_SKIP: {
            const float *x0 = cut_slot(a, o->in2);
            for (size_t j = 0; j < sz; j++) out[j] = (float)tanh((double)in[j] + atanh(EW_CUT_SKIP_GAIN * x0[j]));
            break;
        }
        }
    }
    return EW_OK;
}

ew_status_t cut_net_backward(const cut_net_t *net, ew_params_t *P, cut_act_t *a, int want_dw, float *dx)
{
    EW_ASSERT(a->grad != NULL);
    for (int i = a->upto - 1; i >= 0; i--) {
        const cut_op_t *o = &net->op[i];
        const float *in = cut_slot(a, o->in), *out = cut_slot(a, o->out);
        const float *gout = cut_slot_grad(a, o->out);
        float *gin = cut_slot_grad(a, o->in);
        const size_t sz = cut_slot_size(a, o->out);
        switch (o->kind) {
        case CUT_CONV: {
            const ew_conv_layer_t *L = &net->conv[o->conv];
            const float *w = ew_params_data(P, L->iw);
            float *dw = want_dw ? ew_params_grad(P, L->iw) : NULL;
            float *db = want_dw && L->ib >= 0 ? ew_params_grad(P, L->ib) : NULL;
            ew_status_t s = L->transposed ? ew_convt2d_backward(gin, dw, db, gout, in, w, &a->geom[i])
                                          : ew_conv2d_backward(gin, dw, db, gout, in, w, &a->geom[i]);
            if (s != EW_OK) return ew_fail(s, "noise model: out of memory in layer %d backward", i);
            break;
        }
        case CUT_IN: {
            const int c = a->sc[o->in], hw = a->sh[o->in] * a->sw[o->in];
            const float *mean = a->nbuf + a->noff[i], *rstd = mean + (size_t)a->n * c;
            ew_groupnorm_backward(gin, NULL, NULL, gout, in, mean, rstd, NULL, a->n, c, hw, c);
            break;
        }
        case CUT_RELU: ew_act_backward(EW_ACT_RELU, 0.0, gin, gout, in, out, sz); break;
        case CUT_LRELU: ew_act_backward(EW_ACT_LEAKY_RELU, 0.2, gin, gout, in, out, sz); break;
        case CUT_TANH: ew_act_backward(EW_ACT_TANH, 0.0, gin, gout, in, out, sz); break;
        case CUT_ADD:
            ew_accumulate(gin, gout, sz);
            ew_accumulate(cut_slot_grad(a, o->in2), gout, sz);
            break;
        case CUT_TANH_SKIP: {
            const float *x0 = cut_slot(a, o->in2);
            float *g2 = cut_slot_grad(a, o->in2);
            for (size_t j = 0; j < sz; j++) {
                const double d = (1.0 - (double)out[j] * out[j]) * gout[j], u = EW_CUT_SKIP_GAIN * x0[j];
                gin[j] += (float)d;
                g2[j] += (float)(d * EW_CUT_SKIP_GAIN / (1.0 - u * u));
            }
            break;
        }
        }
    }
    if (dx) ew_accumulate(dx, a->grad, cut_slot_size(a, 0));
    return EW_OK;
}

/* ---- the networks ---- */

static ew_status_t build_generator(ew_cut_model_t *m, int module_slot[], int *n_modules)
{
    cut_net_t *G = &m->G;
    ew_params_t *P = &m->P;
    const int ngf = m->cfg.ngf;
    char name[EW_PARAM_NAME_MAX];
    int x = net_slot(G), mod = 0;
    module_slot[mod++] = x; /* 0: input (CUT: its reflect-padded copy) */
    EW_TRY(net_conv(G, P, "netG.model.1", 1, ngf, 7, 1, 3, EW_PAD_REFLECT, 0, x, &x));
    module_slot[mod++] = x;
    EW_TRY(net_op(G, CUT_IN, x, -1, -1, &x));
    module_slot[mod++] = x;
    EW_TRY(net_op(G, CUT_RELU, x, -1, -1, &x));
    module_slot[mod++] = x;
    for (int i = 0; i < 2; i++) {
        const int mult = 1 << i;
        snprintf(name, sizeof(name), "netG.model.%d", mod);
        EW_TRY(net_conv(G, P, name, ngf * mult, ngf * mult * 2, 3, 2, 1, EW_PAD_ZERO, 0, x, &x));
        module_slot[mod++] = x;
        EW_TRY(net_op(G, CUT_IN, x, -1, -1, &x));
        module_slot[mod++] = x;
        EW_TRY(net_op(G, CUT_RELU, x, -1, -1, &x));
        module_slot[mod++] = x;
    }
    const int c = ngf * 4;
    for (int b = 0; b < m->cfg.n_blocks; b++) {
        int y = x;
        snprintf(name, sizeof(name), "netG.model.%d.conv_block.1", mod);
        EW_TRY(net_conv(G, P, name, c, c, 3, 1, 1, EW_PAD_REFLECT, 0, y, &y));
        EW_TRY(net_op(G, CUT_IN, y, -1, -1, &y));
        EW_TRY(net_op(G, CUT_RELU, y, -1, -1, &y));
        snprintf(name, sizeof(name), "netG.model.%d.conv_block.5", mod);
        EW_TRY(net_conv(G, P, name, c, c, 3, 1, 1, EW_PAD_REFLECT, 0, y, &y));
        EW_TRY(net_op(G, CUT_IN, y, -1, -1, &y));
        EW_TRY(net_op(G, CUT_ADD, x, y, -1, &x));
        module_slot[mod++] = x;
    }
    *n_modules = mod;
    for (int i = 0; i < 2; i++) {
        const int mult = 1 << (2 - i);
        snprintf(name, sizeof(name), "netG.model.%d", mod);
        EW_TRY(net_conv(G, P, name, ngf * mult, ngf * mult / 2, 3, 2, 1, EW_PAD_ZERO, 1, x, &x));
        EW_TRY(net_op(G, CUT_IN, x, -1, -1, &x));
        EW_TRY(net_op(G, CUT_RELU, x, -1, -1, &x));
        mod += 3;
    }
    snprintf(name, sizeof(name), "netG.model.%d", mod + 1); /* after ReflectionPad2d(3) */
    EW_TRY(net_conv(G, P, name, ngf, 1, 7, 1, 3, EW_PAD_REFLECT, 0, x, &x));
    if (m->cfg.identity_skip)
        EW_TRY(net_op(G, CUT_TANH_SKIP, x, 0, -1, &x));
    else
        EW_TRY(net_op(G, CUT_TANH, x, -1, -1, &x));
    return EW_OK;
}

static ew_status_t build_discriminator(ew_cut_model_t *m)
{
    cut_net_t *D = &m->D;
    ew_params_t *P = &m->P;
    const int ndf = m->cfg.ndf, nl = m->cfg.n_layers_d;
    char name[EW_PARAM_NAME_MAX];
    int x = net_slot(D), mod = 0;
    EW_TRY(net_conv(D, P, "netD.model.0", 1, ndf, 4, 2, 1, EW_PAD_ZERO, 0, x, &x));
    EW_TRY(net_op(D, CUT_LRELU, x, -1, -1, &x));
    mod = 2;
    int mult = 1;
    for (int i = 1; i <= nl; i++) {
        const int prev = mult;
        mult = (1 << i) < 8 ? (1 << i) : 8;
        const int stride = i < nl ? 2 : 1;
        snprintf(name, sizeof(name), "netD.model.%d", mod);
        EW_TRY(net_conv(D, P, name, ndf * prev, ndf * mult, 4, stride, 1, EW_PAD_ZERO, 0, x, &x));
        EW_TRY(net_op(D, CUT_IN, x, -1, -1, &x));
        EW_TRY(net_op(D, CUT_LRELU, x, -1, -1, &x));
        mod += 3;
    }
    snprintf(name, sizeof(name), "netD.model.%d", mod);
    EW_TRY(net_conv(D, P, name, ndf * mult, 1, 4, 1, 1, EW_PAD_ZERO, 0, x, &x));
    return EW_OK;
}

static ew_status_t model_build(ew_cut_model_t *m)
{
    int module_slot[128 + 16], nmod = 0;
    ew_params_init(&m->P);
    EW_TRY(build_generator(m, module_slot, &nmod));
    /* taps: CUT module indices, clamped to the last residual block */
    m->ntap = 0;
    int last_op = 0;
    for (int i = 0; i < m->cfg.n_nce_layers; i++) {
        int mi = m->cfg.nce_layers[i] < nmod ? m->cfg.nce_layers[i] : nmod - 1;
        int dup = 0;
        for (int j = 0; j < m->ntap; j++) dup |= m->tap_module[j] == mi;
        if (dup) continue;
        m->tap_module[m->ntap] = mi;
        m->tap_slot[m->ntap] = module_slot[mi];
        m->ntap++;
    }
    /* encoder ops: up to the op producing the deepest tap */
    for (int t = 0; t < m->ntap; t++)
        for (int i = 0; i < m->G.nop; i++)
            if (m->G.op[i].out == m->tap_slot[t] && i + 1 > last_op) last_op = i + 1;
    m->tap_ops = last_op;
    /* heads: channels of each tap */
    for (int t = 0; t < m->ntap; t++) {
        int c = 1;
        for (int i = 0; i < m->G.nop; i++) {
            const cut_op_t *o = &m->G.op[i];
            if (o->kind == CUT_CONV) c = m->G.conv[o->conv].oc;
            if (o->out == m->tap_slot[t]) break;
        }
        if (m->tap_slot[t] == 0) c = 1;
        m->tap_c[t] = c;
        char name[EW_PARAM_NAME_MAX];
        snprintf(name, sizeof(name), "netF.mlp_%d.0", t);
        EW_TRY(ew_linear_layer_add(&m->f1[t], &m->P, name, c, m->cfg.mlp_dim, 1));
        snprintf(name, sizeof(name), "netF.mlp_%d.2", t);
        EW_TRY(ew_linear_layer_add(&m->f2[t], &m->P, name, m->cfg.mlp_dim, m->cfg.mlp_dim, 1));
    }
    size_t gf = 0;
    for (size_t i = 0; i < m->P.n; i++) gf += m->P.p[i].count;
    m->gf_floats = gf;
    EW_TRY(build_discriminator(m));
    EW_TRY(ew_params_alloc(&m->P));
    return EW_OK;
}

static void model_init_weights(ew_cut_model_t *m)
{
    /* CUT init_type 'xavier', init_gain 0.02 (xavier_normal_; the uniform
       form has the same variance), biases 0 */
    for (size_t i = 0; i < m->P.n; i++) {
        const char *nm = m->P.p[i].name;
        const size_t L = strlen(nm);
        if (L > 5 && strcmp(nm + L - 5, ".bias") == 0)
            ew_params_fill(&m->P, (int)i, 0.0f);
        else
            ew_init_xavier_uniform(&m->P, (int)i, 0.02, m->cfg.seed);
    }
}

ew_status_t ew_cut_model_create(const ew_cut_config_t *cfg, ew_cut_model_t **out)
{
    *out = NULL;
    EW_TRY(ew_cut_config_check(cfg));
    ew_cut_model_t *m = calloc(1, sizeof(*m));
    if (!m) return ew_fail(EW_ERR_NOMEM, "noise model: out of memory");
    m->cfg = *cfg;
    m->cfg.outdir = NULL;
    m->cfg.resume = NULL;
    ew_status_t s = model_build(m);
    if (s != EW_OK) {
        ew_cut_model_free(m);
        return s;
    }
    model_init_weights(m);
    *out = m;
    return EW_OK;
}

const ew_cut_config_t *ew_cut_model_config(const ew_cut_model_t *m) { return &m->cfg; }

void ew_cut_model_counts(const ew_cut_model_t *m, size_t *n_gen, size_t *n_disc, size_t *n_mlp)
{
    size_t g = 0, d = 0, f = 0;
    for (size_t i = 0; i < m->P.n; i++) {
        const char *nm = m->P.p[i].name;
        if (strncmp(nm, "netG.", 5) == 0) g += m->P.p[i].count;
        else if (strncmp(nm, "netD.", 5) == 0) d += m->P.p[i].count;
        else f += m->P.p[i].count;
    }
    if (n_gen) *n_gen = g;
    if (n_disc) *n_disc = d;
    if (n_mlp) *n_mlp = f;
}

void ew_cut_model_free(ew_cut_model_t *m)
{
    if (!m) return;
    net_free(&m->G);
    net_free(&m->D);
    ew_params_free(&m->P);
    free(m);
}

/* ---- checkpoints ---- */

ew_status_t ew_cut_model_save(const ew_cut_model_t *m, const char *path, int with_optim)
{
    const ew_cut_config_t *c = &m->cfg;
    char v[9][64], layers[64] = "";
    for (int i = 0; i < c->n_nce_layers; i++) {
        char b[16];
        snprintf(b, sizeof(b), i ? ",%d" : "%d", c->nce_layers[i]);
        strncat(layers, b, sizeof(layers) - strlen(layers) - 1);
    }
    snprintf(v[0], 64, "%d", c->ngf);
    snprintf(v[1], 64, "%d", c->n_blocks);
    snprintf(v[2], 64, "%d", c->ndf);
    snprintf(v[3], 64, "%d", c->n_layers_d);
    snprintf(v[4], 64, "%d", c->mlp_dim);
    snprintf(v[5], 64, "%.17g", c->clip_sd);
    snprintf(v[6], 64, "%.17g", c->pixel);
    snprintf(v[7], 64, "%d", c->sampling);
    snprintf(v[8], 64, "%d", c->identity_skip);
    const char *meta[] = {"ewald.cut.ngf", v[0], "ewald.cut.n_blocks", v[1], "ewald.cut.ndf", v[2],
                          "ewald.cut.n_layers_d", v[3], "ewald.cut.mlp_dim", v[4], "ewald.cut.clip_sd", v[5],
                          "ewald.cut.pixel", v[6], "ewald.cut.sampling", v[7], "ewald.cut.identity_skip", v[8],
                          "ewald.cut.nce_layers", layers};
    return ew_checkpoint_save(path, &m->P, with_optim, meta, 10);
}

static ew_status_t meta_int(const ew_safetensors_t *st, const char *path, const char *key, int *out)
{
    const char *v = ew_safetensors_meta(st, key);
    if (!v) return ew_fail(EW_ERR_FORMAT, "%s: metadata %s is missing (not a noise model checkpoint)", path, key);
    *out = atoi(v);
    return EW_OK;
}

ew_status_t ew_cut_model_load(const char *path, ew_cut_model_t **out)
{
    *out = NULL;
    ew_safetensors_t st;
    EW_TRY(ew_safetensors_read(path, &st));
    ew_cut_config_t c;
    ew_cut_config_default(&c);
    int sampling = 1;
    ew_status_t s = EW_OK;
    if (s == EW_OK) s = meta_int(&st, path, "ewald.cut.ngf", &c.ngf);
    if (s == EW_OK) s = meta_int(&st, path, "ewald.cut.n_blocks", &c.n_blocks);
    if (s == EW_OK) s = meta_int(&st, path, "ewald.cut.ndf", &c.ndf);
    if (s == EW_OK) s = meta_int(&st, path, "ewald.cut.n_layers_d", &c.n_layers_d);
    if (s == EW_OK) s = meta_int(&st, path, "ewald.cut.mlp_dim", &c.mlp_dim);
    if (s == EW_OK) s = meta_int(&st, path, "ewald.cut.sampling", &sampling);
    if (s == EW_OK) s = meta_int(&st, path, "ewald.cut.identity_skip", &c.identity_skip);
    const char *clip = ew_safetensors_meta(&st, "ewald.cut.clip_sd");
    const char *pix = ew_safetensors_meta(&st, "ewald.cut.pixel");
    const char *layers = ew_safetensors_meta(&st, "ewald.cut.nce_layers");
    if (s == EW_OK && (!clip || !pix || !layers))
        s = ew_fail(EW_ERR_FORMAT, "%s: metadata ewald.cut.clip_sd/pixel/nce_layers is missing", path);
    const int has_optim = ew_safetensors_find(&st, "optim.exp_avg.netG.model.1.weight") != NULL;
    if (s == EW_OK) {
        c.clip_sd = atof(clip);
        c.pixel = atof(pix);
        c.sampling = sampling ? EW_CUT_SAMPLE_MASK : EW_CUT_SAMPLE_PLAIN;
        c.n_nce_layers = 0;
        const char *p = layers;
        while (*p && c.n_nce_layers < EW_CUT_MAX_TAPS) {
            c.nce_layers[c.n_nce_layers++] = atoi(p);
            p = strchr(p, ',');
            if (!p) break;
            p++;
        }
    }
    ew_safetensors_free(&st);
    if (s != EW_OK) return s;
    ew_cut_model_t *m = NULL;
    s = ew_cut_model_create(&c, &m);
    if (s != EW_OK) return s;
    s = ew_checkpoint_load(path, &m->P, has_optim);
    if (s != EW_OK) {
        ew_cut_model_free(m);
        return s;
    }
    *out = m;
    return EW_OK;
}

/* ---- MLP heads ---- */

void cut_head_free(cut_head_act_t *h)
{
    if (!h) return;
    ew_free(h->g);
    memset(h, 0, sizeof(*h));
}

ew_status_t cut_head_forward(const ew_cut_model_t *m, int j, cut_head_act_t *h, const float *g, int rows)
{
    const int c = m->tap_c[j], d = m->cfg.mlp_dim;
    if (rows > h->cap || !h->g) {
        ew_free(h->g);
        size_t per = (size_t)c * 2 + (size_t)d * 7 + 1;
        h->g = ew_alloc_array((size_t)rows * per, sizeof(float));
        if (!h->g) return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for %d MLP rows", rows);
        h->cap = rows;
        float *p = h->g + (size_t)rows * c;
        h->h1 = p, p += (size_t)rows * d;
        h->r1 = p, p += (size_t)rows * d;
        h->h2 = p, p += (size_t)rows * d;
        h->y = p, p += (size_t)rows * d;
        h->dh1 = p, p += (size_t)rows * d;
        h->dh2 = p, p += (size_t)rows * d;
        h->norm = p, p += (size_t)rows * d;
        h->dg = p;
    }
    h->rows = rows;
    memcpy(h->g, g, sizeof(float) * (size_t)rows * c);
    const ew_params_t *P = &m->P;
    ew_linear_forward(h->h1, h->g, ew_params_data(P, m->f1[j].iw), ew_params_data(P, m->f1[j].ib), rows, c, d);
    ew_act_forward(EW_ACT_RELU, 0.0, h->r1, h->h1, (size_t)rows * d);
    ew_linear_forward(h->h2, h->r1, ew_params_data(P, m->f2[j].iw), ew_params_data(P, m->f2[j].ib), rows, d, d);
    ew_l2norm_forward(h->y, h->norm, h->h2, rows, d, 1e-7);
    return EW_OK;
}

ew_status_t cut_head_backward(ew_cut_model_t *m, int j, cut_head_act_t *h, const float *dy)
{
    const int c = m->tap_c[j], d = m->cfg.mlp_dim, rows = h->rows;
    ew_params_t *P = &m->P;
    memset(h->dh2, 0, sizeof(float) * (size_t)rows * d);
    memset(h->dh1, 0, sizeof(float) * (size_t)rows * d);
    memset(h->dg, 0, sizeof(float) * (size_t)rows * c);
    ew_l2norm_backward(h->dh2, dy, h->y, h->norm, rows, d);
    /* dh1 first holds d r1 */
    EW_TRY(ew_linear_backward(h->dh1, ew_params_grad(P, m->f2[j].iw), ew_params_grad(P, m->f2[j].ib), h->dh2,
                              h->r1, ew_params_data(P, m->f2[j].iw), rows, d, d));
    for (size_t i = 0; i < (size_t)rows * d; i++)
        if (h->h1[i] <= 0.0f) h->dh1[i] = 0.0f;
    EW_TRY(ew_linear_backward(h->dg, ew_params_grad(P, m->f1[j].iw), ew_params_grad(P, m->f1[j].ib), h->dh1,
                              h->g, ew_params_data(P, m->f1[j].iw), rows, c, d));
    return EW_OK;
}

/* ---- optimisation ---- */

void cut_adam_range(ew_params_t *P, size_t off, size_t n, double lr, double b1, double b2, int64_t step)
{
    ew_params_t v = *P;
    v.data += off;
    v.grad += off;
    v.opt_m += off;
    v.opt_v += off;
    v.n_train = n;
    v.step = step;
    ew_optim_t o = ew_optim_default(EW_OPT_ADAM);
    o.beta1 = b1;
    o.beta2 = b2;
    ew_optim_step(&v, &o, lr);
}

/* ---- inference ---- */

ew_status_t ew_cut_generate(ew_cut_model_t *m, const float *x, int n, int h, int w, float *out)
{
    if (n < 1 || h < 16 || w < 16 || h % 4 || w % 4)
        return ew_fail(EW_ERR_ARG, "noise model: image %d x %d (n %d) is not a multiple of 4 of at least 16", w, h, n);
    cut_act_t a;
    cut_act_init(&a);
    ew_status_t s = cut_net_forward(&m->G, &m->P, &a, x, n, h, w, -1, 0);
    if (s == EW_OK) memcpy(out, cut_slot(&a, cut_net_out(&m->G)), sizeof(float) * (size_t)n * h * w);
    cut_act_free(&a);
    return s;
}

ew_status_t ew_cut_translate_image(ew_cut_model_t *m, const float *image, int nx, int ny, int tile, int margin,
                                   float *out)
{
    if (nx < 16 || ny < 16) return ew_fail(EW_ERR_ARG, "noise model: image %d x %d is smaller than 16", nx, ny);
    if (tile < 32 || tile % 4) return ew_fail(EW_ERR_ARG, "noise model: tile = %d is not a multiple of 4 >= 32", tile);
    if (margin < 0 || 2 * margin >= tile)
        return ew_fail(EW_ERR_ARG, "noise model: margin = %d does not fit tile %d", margin, tile);
    const size_t npx = (size_t)nx * ny;
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < npx; i++) s1 += image[i];
    const double mean = s1 / (double)npx;
    for (size_t i = 0; i < npx; i++) s2 += (image[i] - mean) * (image[i] - mean);
    const double sd = sqrt(s2 / (double)npx);
    if (!(sd > 0) || !isfinite(sd)) return ew_fail(EW_ERR_NUMERIC, "noise model: image is constant or not finite");
    const double clip = m->cfg.clip_sd;
    /* tile sizes: whole image rounded up to 4 when it fits in a tile */
    const int tw = nx + 3 < tile ? (nx + 3) / 4 * 4 : tile, th = ny + 3 < tile ? (ny + 3) / 4 * 4 : tile;
    const int mx = tw >= nx ? 0 : margin, my = th >= ny ? 0 : margin;
    float *in = ew_alloc_array((size_t)tw * th, sizeof(float)), *res = ew_alloc_array((size_t)tw * th, sizeof(float));
    if (!in || !res) {
        ew_free(in);
        ew_free(res);
        return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for a %d x %d tile", tw, th);
    }
    ew_status_t s = EW_OK;
    const int stepx = tw - 2 * mx, stepy = th - 2 * my;
    for (int ty = 0; ty < ny && s == EW_OK; ty += stepy) {
        for (int tx = 0; tx < nx && s == EW_OK; tx += stepx) {
            /* tile origin so that the kept region [tx, tx + step) lies inside, clamped to the image */
            int x0 = tx - mx, y0 = ty - my;
            if (x0 + tw > nx) x0 = nx - tw;
            if (y0 + th > ny) y0 = ny - th;
            if (x0 < 0) x0 = 0;
            if (y0 < 0) y0 = 0;
            for (int j = 0; j < th; j++)
                for (int i = 0; i < tw; i++) {
                    /* reflect beyond the image (when it is smaller than the tile) */
                    int yy = y0 + j, xx = x0 + i;
                    if (yy >= ny) yy = 2 * ny - 2 - yy;
                    if (xx >= nx) xx = 2 * nx - 2 - xx;
                    if (yy < 0) yy = 0;
                    if (xx < 0) xx = 0;
                    double z = (image[(size_t)yy * nx + xx] - mean) / sd / clip;
                    in[(size_t)j * tw + i] = (float)(z > 1 ? 1 : z < -1 ? -1 : z);
                }
            s = ew_cut_generate(m, in, 1, th, tw, res);
            if (s != EW_OK) break;
            const int ye = ty + stepy < ny ? ty + stepy : ny, xe = tx + stepx < nx ? tx + stepx : nx;
            for (int y = ty; y < ye; y++)
                for (int x = tx; x < xe; x++)
                    out[(size_t)y * nx + x] = (float)(mean + sd * clip * res[(size_t)(y - y0) * tw + (x - x0)]);
        }
    }
    ew_free(in);
    ew_free(res);
    return s;
}
