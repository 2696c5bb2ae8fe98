/* Gradient checks of every nn layer and loss: the double instance of each
 * kernel against central finite differences (relative error < 1e-6), and
 * the float instance against the double one (< 1e-4). The scalar checked
 * is L = sum_i r_i out_i with random r, so dL/dout = r. */
#include <stdint.h>

#include "core/rng.h"
#include "nn/act.h"
#include "nn/conv.h"
#include "nn/loss.h"
#include "nn/norm.h"
#include "nn/pool.h"
#include "nn/sample.h"
#include "nn/threads.h"
#include "testutil.h"

#define MAXIN 4

typedef struct op op_t;
struct op {
    const char *name;
    int nin;
    size_t insz[MAXIN];
    double lo[MAXIN], hi[MAXIN];
    int nodiff[MAXIN]; /* 1: not differentiated (targets, masks, counts) */
    size_t outsz;
    void (*fd)(op_t *, double **, double *);
    void (*bd)(op_t *, double **, const double *, double **);
    void (*ff)(op_t *, float **, float *);
    void (*bf)(op_t *, float **, const float *, float **);
    ew_conv2d_t cv;
    ew_pool2d_t pl;
    int n, c, h, w, k, groups, train, mode, s, gh, gw, align;
    ew_act_t act;
    double p;
    int32_t tgt[16];
    int alt; /* 1: negate odd-indexed elements of input 0 (mixed signs away from 0) */
};

static double frand(ew_rng_t *r, double lo, double hi)
{
    return lo + (hi - lo) * ew_rng_uniform(r);
}

/* run the three checks for op o */
static void check_op(op_t *o, uint64_t seed)
{
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    double *in[MAXIN], *gin[MAXIN], *gnum[MAXIN];
    float *inf[MAXIN], *ginf[MAXIN];
    for (int k = 0; k < o->nin; k++) {
        in[k] = calloc(o->insz[k], sizeof(double));
        gin[k] = calloc(o->insz[k], sizeof(double));
        gnum[k] = calloc(o->insz[k], sizeof(double));
        inf[k] = calloc(o->insz[k], sizeof(float));
        ginf[k] = calloc(o->insz[k], sizeof(float));
        for (size_t i = 0; i < o->insz[k]; i++) {
            in[k][i] = frand(&r, o->lo[k], o->hi[k]);
            if (k == 0 && o->alt && (i & 1)) in[k][i] = -in[k][i];
            inf[k][i] = (float)in[k][i];
            in[k][i] = inf[k][i]; /* identical inputs for both paths */
        }
    }
    double *out = calloc(o->outsz, sizeof(double)), *rw = calloc(o->outsz, sizeof(double));
    float *outf = calloc(o->outsz, sizeof(float)), *rwf = calloc(o->outsz, sizeof(float));
    for (size_t i = 0; i < o->outsz; i++) {
        rw[i] = frand(&r, -1, 1);
        rwf[i] = (float)rw[i];
        rw[i] = rwf[i];
    }
    o->fd(o, in, out);
    double *gd[MAXIN];
    float *gf[MAXIN];
    for (int k = 0; k < o->nin; k++) {
        gd[k] = o->nodiff[k] ? NULL : gin[k];
        gf[k] = o->nodiff[k] ? NULL : ginf[k];
    }
    o->bd(o, in, rw, gd);
    /* finite differences */
    const double h = 1e-6;
    double num = 0, den = 0;
    for (int k = 0; k < o->nin; k++) {
        if (o->nodiff[k]) continue;
        for (size_t i = 0; i < o->insz[k]; i++) {
            double keep = in[k][i], lp = 0, lm = 0;
            in[k][i] = keep + h;
            o->fd(o, in, out);
            for (size_t j = 0; j < o->outsz; j++) lp += rw[j] * out[j];
            in[k][i] = keep - h;
            o->fd(o, in, out);
            for (size_t j = 0; j < o->outsz; j++) lm += rw[j] * out[j];
            in[k][i] = keep;
            gnum[k][i] = (lp - lm) / (2 * h);
            num += (gnum[k][i] - gin[k][i]) * (gnum[k][i] - gin[k][i]);
            den += gnum[k][i] * gnum[k][i];
        }
    }
    double rel = sqrt(num / (den > 0 ? den : 1e-300));
    if (!(rel < 1e-6)) fail_msg("%s: gradient relative error %.3g (|g| = %.3g)", o->name, rel, sqrt(den));
    if (den == 0) fail_msg("%s: all gradients are zero", o->name);
    /* float path vs double */
    o->fd(o, in, out);
    o->ff(o, inf, outf);
    double emax = 0, omax = 0;
    for (size_t j = 0; j < o->outsz; j++) {
        emax = fmax(emax, fabs(outf[j] - out[j]));
        omax = fmax(omax, fabs(out[j]));
    }
    if (!(emax <= 1e-4 * fmax(omax, 1e-3))) fail_msg("%s: float forward differs by %.3g (max %.3g)", o->name, emax, omax);
    o->bf(o, inf, rwf, gf);
    for (int k = 0; k < o->nin; k++) {
        if (o->nodiff[k]) continue;
        double e = 0, m = 0;
        for (size_t i = 0; i < o->insz[k]; i++) {
            e = fmax(e, fabs(ginf[k][i] - gin[k][i]));
            m = fmax(m, fabs(gin[k][i]));
        }
        if (!(e <= 1e-4 * fmax(m, 1e-3)))
            fail_msg("%s: float gradient of input %d differs by %.3g (max %.3g)", o->name, k, e, m);
    }
    for (int k = 0; k < o->nin; k++) {
        free(in[k]);
        free(gin[k]);
        free(gnum[k]);
        free(inf[k]);
        free(ginf[k]);
    }
    free(out);
    free(rw);
    free(outf);
    free(rwf);
}

/* ---- op adapters, written once for both types ---- */
#define OPS(T, SFX)                                                                                 \
    static void conv_f##SFX(op_t *o, T **in, T *out)                                                \
    {                                                                                               \
        assert_ok(ew_conv2d_forward##SFX(out, in[0], in[1], in[2], &o->cv));                        \
    }                                                                                               \
    static void conv_b##SFX(op_t *o, T **in, const T *g, T **d)                                     \
    {                                                                                               \
        assert_ok(ew_conv2d_backward##SFX(d[0], d[1], d[2], g, in[0], in[1], &o->cv));              \
    }                                                                                               \
    static void convt_f##SFX(op_t *o, T **in, T *out)                                               \
    {                                                                                               \
        assert_ok(ew_convt2d_forward##SFX(out, in[0], in[1], in[2], &o->cv));                       \
    }                                                                                               \
    static void convt_b##SFX(op_t *o, T **in, const T *g, T **d)                                    \
    {                                                                                               \
        assert_ok(ew_convt2d_backward##SFX(d[0], d[1], d[2], g, in[0], in[1], &o->cv));             \
    }                                                                                               \
    static void lin_f##SFX(op_t *o, T **in, T *out)                                                 \
    {                                                                                               \
        ew_linear_forward##SFX(out, in[0], in[1], in[2], o->n, o->c, o->k);                         \
    }                                                                                               \
    static void lin_b##SFX(op_t *o, T **in, const T *g, T **d)                                      \
    {                                                                                               \
        assert_ok(ew_linear_backward##SFX(d[0], d[1], d[2], g, in[0], in[1], o->n, o->c, o->k));    \
    }                                                                                               \
    static void bn_f##SFX(op_t *o, T **in, T *out)                                                  \
    {                                                                                               \
        T mean[16], rstd[16], rm[16], rv[16];                                                       \
        for (int i = 0; i < o->c; i++) rm[i] = (T)(0.1 * i), rv[i] = (T)(1 + 0.2 * i);              \
        ew_batchnorm_forward##SFX(out, mean, rstd, in[0], in[1], in[2], rm, rv, o->n, o->c,         \
                                  o->h * o->w, o->train, 0.1, 1e-5);                                \
    }                                                                                               \
    static void bn_b##SFX(op_t *o, T **in, const T *g, T **d)                                       \
    {                                                                                               \
        T mean[16], rstd[16], rm[16], rv[16];                                                       \
        T *tmp = calloc(o->n * o->c * o->h * o->w, sizeof(T));                                      \
        for (int i = 0; i < o->c; i++) rm[i] = (T)(0.1 * i), rv[i] = (T)(1 + 0.2 * i);              \
        ew_batchnorm_forward##SFX(tmp, mean, rstd, in[0], in[1], in[2], rm, rv, o->n, o->c,         \
                                  o->h * o->w, o->train, 0.1, 1e-5);                                \
        ew_batchnorm_backward##SFX(d[0], d[1], d[2], g, in[0], mean, rstd, in[1], o->n, o->c,       \
                                   o->h * o->w, o->train);                                          \
        free(tmp);                                                                                  \
    }                                                                                               \
    static void gn_f##SFX(op_t *o, T **in, T *out)                                                  \
    {                                                                                               \
        T mean[64], rstd[64];                                                                       \
        ew_groupnorm_forward##SFX(out, mean, rstd, in[0], o->nin > 1 ? in[1] : NULL,               \
                                  o->nin > 1 ? in[2] : NULL, o->n, o->c, o->h * o->w, o->groups,    \
                                  1e-5);                                                            \
    }                                                                                               \
    static void gn_b##SFX(op_t *o, T **in, const T *g, T **d)                                       \
    {                                                                                               \
        T mean[64], rstd[64];                                                                       \
        T *tmp = calloc(o->n * o->c * o->h * o->w, sizeof(T));                                      \
        const T *ga = o->nin > 1 ? in[1] : NULL;                                                    \
        ew_groupnorm_forward##SFX(tmp, mean, rstd, in[0], ga, o->nin > 1 ? in[2] : NULL, o->n,      \
                                  o->c, o->h * o->w, o->groups, 1e-5);                              \
        ew_groupnorm_backward##SFX(d[0], o->nin > 1 ? d[1] : NULL, o->nin > 1 ? d[2] : NULL, g,     \
                                   in[0], mean, rstd, ga, o->n, o->c, o->h * o->w, o->groups);      \
        free(tmp);                                                                                  \
    }                                                                                               \
    static void ln_f##SFX(op_t *o, T **in, T *out)                                                  \
    {                                                                                               \
        T mean[64], rstd[64];                                                                       \
        ew_layernorm_forward##SFX(out, mean, rstd, in[0], in[1], in[2], o->n, o->k, 1e-5);          \
    }                                                                                               \
    static void ln_b##SFX(op_t *o, T **in, const T *g, T **d)                                       \
    {                                                                                               \
        T mean[64], rstd[64];                                                                       \
        T *tmp = calloc(o->n * o->k, sizeof(T));                                                    \
        ew_layernorm_forward##SFX(tmp, mean, rstd, in[0], in[1], in[2], o->n, o->k, 1e-5);          \
        ew_layernorm_backward##SFX(d[0], d[1], d[2], g, in[0], mean, rstd, in[1], o->n, o->k);      \
        free(tmp);                                                                                  \
    }                                                                                               \
    static void l2_f##SFX(op_t *o, T **in, T *out)                                                  \
    {                                                                                               \
        T nrm[64];                                                                                  \
        ew_l2norm_forward##SFX(out, nrm, in[0], o->n, o->k, 1e-12);                                 \
    }                                                                                               \
    static void l2_b##SFX(op_t *o, T **in, const T *g, T **d)                                       \
    {                                                                                               \
        T nrm[64];                                                                                  \
        T *tmp = calloc(o->n * o->k, sizeof(T));                                                    \
        ew_l2norm_forward##SFX(tmp, nrm, in[0], o->n, o->k, 1e-12);                                 \
        ew_l2norm_backward##SFX(d[0], g, tmp, nrm, o->n, o->k);                                     \
        free(tmp);                                                                                  \
    }                                                                                               \
    static void act_f##SFX(op_t *o, T **in, T *out)                                                 \
    {                                                                                               \
        ew_act_forward##SFX(o->act, o->p, out, in[0], o->insz[0]);                                  \
    }                                                                                               \
    static void act_b##SFX(op_t *o, T **in, const T *g, T **d)                                      \
    {                                                                                               \
        ew_act_backward##SFX(o->act, o->p, d[0], g, in[0], NULL, o->insz[0]);                       \
    }                                                                                               \
    static void cat_f##SFX(op_t *o, T **in, T *out)                                                 \
    {                                                                                               \
        T *tmp = calloc(o->insz[0], sizeof(T));                                                     \
        ew_add_forward##SFX(tmp, in[0], in[2], o->insz[0]);                                         \
        ew_concat_forward##SFX(out, tmp, o->c, in[1], o->k, o->n, o->h * o->w);                     \
        free(tmp);                                                                                  \
    }                                                                                               \
    static void cat_b##SFX(op_t *o, T **in, const T *g, T **d)                                      \
    {                                                                                               \
        T *tmp = calloc(o->insz[0], sizeof(T));                                                     \
        ew_concat_backward##SFX(tmp, d[1], g, o->c, o->k, o->n, o->h * o->w);                       \
        ew_accumulate##SFX(d[0], tmp, o->insz[0]);                                                  \
        ew_accumulate##SFX(d[2], tmp, o->insz[0]);                                                  \
        free(tmp);                                                                                  \
    }                                                                                               \
    static void pool_f##SFX(op_t *o, T **in, T *out)                                                \
    {                                                                                               \
        int32_t *am = calloc(o->outsz, sizeof(int32_t));                                            \
        if (o->mode == 0) ew_maxpool_forward##SFX(out, am, in[0], &o->pl);                          \
        if (o->mode == 1) ew_avgpool_forward##SFX(out, in[0], &o->pl);                              \
        if (o->mode == 2) ew_global_avgpool_forward##SFX(out, in[0], o->n, o->c, o->h * o->w);      \
        free(am);                                                                                   \
    }                                                                                               \
    static void pool_b##SFX(op_t *o, T **in, const T *g, T **d)                                     \
    {                                                                                               \
        int32_t *am = calloc(o->outsz, sizeof(int32_t));                                            \
        T *tmp = calloc(o->outsz, sizeof(T));                                                       \
        if (o->mode == 0) {                                                                         \
            ew_maxpool_forward##SFX(tmp, am, in[0], &o->pl);                                        \
            ew_maxpool_backward##SFX(d[0], g, am, &o->pl);                                          \
        }                                                                                           \
        if (o->mode == 1) ew_avgpool_backward##SFX(d[0], g, &o->pl);                                \
        if (o->mode == 2) ew_global_avgpool_backward##SFX(d[0], g, o->n, o->c, o->h * o->w);        \
        free(am);                                                                                   \
        free(tmp);                                                                                  \
    }                                                                                               \
    static void up_f##SFX(op_t *o, T **in, T *out)                                                  \
    {                                                                                               \
        ew_upsample_forward##SFX((ew_upsample_t)o->mode, out, in[0], o->n, o->c, o->h, o->w, o->s); \
    }                                                                                               \
    static void up_b##SFX(op_t *o, T **in, const T *g, T **d)                                       \
    {                                                                                               \
        ew_upsample_backward##SFX((ew_upsample_t)o->mode, d[0], g, o->n, o->c, o->h, o->w, o->s);   \
    }                                                                                               \
    static void gs_f##SFX(op_t *o, T **in, T *out)                                                  \
    {                                                                                               \
        ew_grid_sample_forward##SFX(out, in[0], in[1], o->n, o->c, o->h, o->w, o->gh, o->gw,        \
                                    o->align);                                                      \
    }                                                                                               \
    static void gs_b##SFX(op_t *o, T **in, const T *g, T **d)                                       \
    {                                                                                               \
        ew_grid_sample_backward##SFX(d[0], d[1], g, in[0], in[1], o->n, o->c, o->h, o->w, o->gh,    \
                                     o->gw, o->align);                                              \
    }                                                                                               \
    static double loss_run##SFX(op_t *o, T **in, T *d, double gs)                                   \
    {                                                                                               \
        size_t n = o->insz[0];                                                                      \
        switch (o->mode) {                                                                          \
        case 0: return ew_loss_mse##SFX(d, in[0], in[1], n, gs);                                    \
        case 1: return ew_loss_masked_mse##SFX(d, in[0], in[1], in[2], n, gs);                      \
        case 2: return ew_loss_poisson_nll##SFX(d, in[0], in[1], n, gs);                            \
        case 3: return ew_loss_bce_logits##SFX(d, in[0], in[1], n, gs);                             \
        case 4: return ew_loss_lsgan##SFX(d, in[0], n, 1.0, gs);                                    \
        case 5: return ew_loss_softmax_ce##SFX(d, in[0], o->tgt, o->n, o->k, o->p, gs);             \
        default: return ew_loss_infonce##SFX(d, in[0], o->n, o->p, gs);                             \
        }                                                                                           \
    }                                                                                               \
    static void loss_f##SFX(op_t *o, T **in, T *out)                                                \
    {                                                                                               \
        out[0] = (T)loss_run##SFX(o, in, NULL, 1.0);                                                \
    }                                                                                               \
    static void loss_b##SFX(op_t *o, T **in, const T *g, T **d)                                     \
    {                                                                                               \
        (void)loss_run##SFX(o, in, d[0], (double)g[0]);                                             \
    }

OPS(double, _d)
OPS(float, )

#define SETFN(o, nm)                                                                                \
    do {                                                                                            \
        (o).fd = nm##_f_d;                                                                          \
        (o).bd = nm##_b_d;                                                                          \
        (o).ff = nm##_f;                                                                            \
        (o).bf = nm##_b;                                                                            \
    } while (0)

static void set_in(op_t *o, int k, size_t n, double lo, double hi)
{
    o->insz[k] = n;
    o->lo[k] = lo;
    o->hi[k] = hi;
    if (o->nin < k + 1) o->nin = k + 1;
}

static void conv_case(int n, int c, int h, int w, int oc, int k, int s, int p, ew_pad_mode_t m, int transposed,
                      int outpad, uint64_t seed)
{
    op_t o;
    memset(&o, 0, sizeof o);
    o.name = transposed ? "conv_transpose2d" : "conv2d";
    o.cv = (ew_conv2d_t){.n = n, .c = c, .h = h, .w = w, .oc = oc, .kh = k, .kw = k, .stride = s, .pad = p,
                         .pad_mode = m, .out_pad = outpad};
    if (transposed) {
        assert_ok(ew_convt2d_setup(&o.cv));
        SETFN(o, convt);
    } else {
        assert_ok(ew_conv2d_setup(&o.cv));
        SETFN(o, conv);
    }
    set_in(&o, 0, (size_t)n * c * h * w, -1, 1);
    set_in(&o, 1, (size_t)oc * c * k * k, -1, 1);
    set_in(&o, 2, (size_t)oc, -1, 1);
    o.outsz = (size_t)n * oc * o.cv.oh * o.cv.ow;
    check_op(&o, seed);
}

static void test_conv(void **state)
{
    (void)state;
    conv_case(2, 3, 6, 5, 4, 3, 1, 1, EW_PAD_ZERO, 0, 0, 1);
    conv_case(3, 2, 7, 7, 3, 3, 2, 1, EW_PAD_ZERO, 0, 0, 2);
    conv_case(2, 2, 6, 6, 3, 3, 1, 1, EW_PAD_REFLECT, 0, 0, 3);
    conv_case(1, 2, 8, 7, 2, 7, 1, 3, EW_PAD_REFLECT, 0, 0, 4);
    conv_case(2, 3, 5, 5, 4, 1, 1, 0, EW_PAD_ZERO, 0, 0, 5); /* 1x1 direct path */
    conv_case(2, 3, 6, 6, 4, 1, 2, 0, EW_PAD_ZERO, 0, 0, 6); /* 1x1 stride-2 projection */
    conv_case(2, 1, 9, 9, 3, 7, 2, 3, EW_PAD_ZERO, 0, 0, 7); /* ResNet stem */
}

static void test_conv_transpose(void **state)
{
    (void)state;
    conv_case(2, 3, 4, 5, 2, 3, 2, 1, EW_PAD_ZERO, 1, 1, 11);
    conv_case(1, 2, 3, 3, 3, 4, 2, 1, EW_PAD_ZERO, 1, 0, 12);
    conv_case(2, 2, 4, 4, 2, 3, 1, 1, EW_PAD_ZERO, 1, 0, 13);
}

static void test_linear(void **state)
{
    (void)state;
    op_t o;
    memset(&o, 0, sizeof o);
    o.name = "linear";
    o.n = 5, o.c = 4, o.k = 3;
    SETFN(o, lin);
    set_in(&o, 0, 20, -1, 1);
    set_in(&o, 1, 12, -1, 1);
    set_in(&o, 2, 3, -1, 1);
    o.outsz = 15;
    check_op(&o, 21);
}

static void test_norms(void **state)
{
    (void)state;
    for (int train = 0; train < 2; train++) {
        op_t o;
        memset(&o, 0, sizeof o);
        o.name = train ? "batchnorm(train)" : "batchnorm(eval)";
        o.n = 3, o.c = 4, o.h = 3, o.w = 2, o.train = train;
        SETFN(o, bn);
        set_in(&o, 0, 72, -2, 2);
        set_in(&o, 1, 4, 0.5, 1.5);
        set_in(&o, 2, 4, -1, 1);
        o.outsz = 72;
        check_op(&o, 31 + train);
    }
    for (int affine = 0; affine < 2; affine++)
        for (int groups = 1; groups <= 6; groups *= 6) { /* group norm (2 groups of 3) and instance norm */
            op_t o;
            memset(&o, 0, sizeof o);
            o.name = groups == 6 ? "instancenorm" : "groupnorm";
            o.n = 2, o.c = 6, o.h = 2, o.w = 3, o.groups = groups == 1 ? 2 : 6;
            SETFN(o, gn);
            set_in(&o, 0, 72, -2, 2);
            if (affine) {
                set_in(&o, 1, 6, 0.5, 1.5);
                set_in(&o, 2, 6, -1, 1);
            }
            o.outsz = 72;
            check_op(&o, 33 + affine * 2 + groups);
        }
    op_t o;
    memset(&o, 0, sizeof o);
    o.name = "layernorm";
    o.n = 3, o.k = 7;
    SETFN(o, ln);
    set_in(&o, 0, 21, -2, 2);
    set_in(&o, 1, 7, 0.5, 1.5);
    set_in(&o, 2, 7, -1, 1);
    o.outsz = 21;
    check_op(&o, 41);
    memset(&o, 0, sizeof o);
    o.name = "l2normalize";
    o.n = 3, o.k = 5;
    SETFN(o, l2);
    set_in(&o, 0, 15, -2, 2);
    o.outsz = 15;
    check_op(&o, 42);
}

static void test_activations(void **state)
{
    (void)state;
    const ew_act_t kinds[] = {EW_ACT_IDENTITY, EW_ACT_RELU, EW_ACT_LEAKY_RELU, EW_ACT_GELU,
                              EW_ACT_TANH, EW_ACT_SIGMOID, EW_ACT_SOFTPLUS, EW_ACT_SINE};
    const char *names[] = {"identity", "relu", "leaky_relu", "gelu", "tanh", "sigmoid", "softplus", "sine"};
    for (int i = 0; i < 8; i++) {
        op_t o;
        memset(&o, 0, sizeof o);
        o.name = names[i];
        o.act = kinds[i];
        o.p = kinds[i] == EW_ACT_SINE ? 30.0 : 0.2;
        SETFN(o, act);
        /* magnitudes in [0.01, 3], alternating signs: away from the kink at 0 */
        set_in(&o, 0, 40, 0.01, 3);
        o.alt = 1;
        o.outsz = 40;
        if (kinds[i] == EW_ACT_SINE) o.lo[0] = 0.001, o.hi[0] = 0.1;
        check_op(&o, 50 + i);
        o.alt = 0;
        o.lo[0] = -25, o.hi[0] = 25; /* softplus: both branches; others: wide range */
        if (kinds[i] == EW_ACT_RELU || kinds[i] == EW_ACT_LEAKY_RELU) o.lo[0] = 0.5, o.hi[0] = 3;
        if (kinds[i] == EW_ACT_SINE) o.lo[0] = -0.2, o.hi[0] = 0.2;
        if (kinds[i] == EW_ACT_GELU || kinds[i] == EW_ACT_TANH) o.lo[0] = -4, o.hi[0] = 4;
        check_op(&o, 60 + i);
    }
}

static void test_add_concat(void **state)
{
    (void)state;
    op_t o;
    memset(&o, 0, sizeof o);
    o.name = "add+concat";
    o.n = 2, o.c = 3, o.k = 2, o.h = 2, o.w = 3;
    SETFN(o, cat);
    set_in(&o, 0, 36, -1, 1);
    set_in(&o, 1, 24, -1, 1);
    set_in(&o, 2, 36, -1, 1);
    o.outsz = 60;
    check_op(&o, 70);
}

static void test_pooling(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++) {
        op_t o;
        memset(&o, 0, sizeof o);
        o.name = mode == 0 ? "maxpool" : mode == 1 ? "avgpool" : "global_avgpool";
        o.mode = mode;
        o.n = 2, o.c = 3, o.h = 7, o.w = 6;
        o.pl = (ew_pool2d_t){.n = 2, .c = 3, .h = 7, .w = 6, .k = 3, .stride = 2, .pad = 1};
        assert_ok(ew_pool2d_setup(&o.pl));
        SETFN(o, pool);
        set_in(&o, 0, 2 * 3 * 7 * 6, -1, 1);
        o.outsz = mode == 2 ? 6 : (size_t)6 * o.pl.oh * o.pl.ow;
        check_op(&o, 80 + mode);
    }
}

static void test_upsample_gridsample(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        op_t o;
        memset(&o, 0, sizeof o);
        o.name = mode ? "upsample_bilinear" : "upsample_nearest";
        o.mode = mode, o.n = 2, o.c = 2, o.h = 3, o.w = 4, o.s = 2;
        SETFN(o, up);
        set_in(&o, 0, 48, -1, 1);
        o.outsz = 48 * 4;
        check_op(&o, 90 + mode);
    }
    for (int align = 0; align < 2; align++) {
        op_t o;
        memset(&o, 0, sizeof o);
        o.name = "grid_sample";
        o.n = 2, o.c = 3, o.h = 5, o.w = 6, o.gh = 3, o.gw = 4, o.align = align;
        SETFN(o, gs);
        set_in(&o, 0, 180, -1, 1);
        set_in(&o, 1, 2 * 12 * 2, -1.1, 1.1); /* some samples fall partly outside */
        o.outsz = 2 * 3 * 12;
        check_op(&o, 95 + align);
    }
}

static void test_losses(void **state)
{
    (void)state;
    const char *names[] = {"mse", "masked_mse", "poisson_nll", "bce_logits", "lsgan", "softmax_ce", "infonce"};
    for (int mode = 0; mode < 7; mode++) {
        op_t o;
        memset(&o, 0, sizeof o);
        o.name = names[mode];
        o.mode = mode;
        SETFN(o, loss);
        o.outsz = 1;
        set_in(&o, 0, 12, -2, 2);
        if (mode <= 3) {
            set_in(&o, 1, 12, mode == 2 ? 0 : -1, mode == 2 ? 5 : 1);
            if (mode == 3) o.lo[1] = 0;
            o.nodiff[1] = 1;
        }
        if (mode == 1) {
            set_in(&o, 2, 12, 0, 1);
            o.nodiff[2] = 1;
        }
        if (mode == 5) {
            o.n = 3, o.k = 4, o.p = 0.07;
            o.tgt[0] = 2, o.tgt[1] = 0, o.tgt[2] = 3;
        }
        if (mode == 6) {
            o.insz[0] = 16;
            o.n = 4, o.p = 0.1;
        }
        o.lo[0] = mode >= 5 ? -0.3 : o.lo[0];
        o.hi[0] = mode >= 5 ? 0.3 : o.hi[0];
        check_op(&o, 100 + mode);
    }
}

float ew_nn_sinf(float a);

static void test_fast_sine(void **state)
{
    (void)state;
    double emax = 0;
    for (int i = -2000000; i <= 2000000; i += 7) {
        float a = (float)i * 0.0049f;
        emax = fmax(emax, fabs((double)ew_nn_sinf(a) - sin((double)a)));
    }
    assert_true(emax < 3e-7);
}

int main(int argc, char **argv)
{
    (void)argc;
    ew_nn_tune_environment(argv); /* passive OpenMP waiting, AVX-512 sgemm */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),         cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_linear),       cmocka_unit_test(test_norms),
        cmocka_unit_test(test_activations),  cmocka_unit_test(test_add_concat),
        cmocka_unit_test(test_pooling),      cmocka_unit_test(test_upsample_gridsample),
        cmocka_unit_test(test_losses),       cmocka_unit_test(test_fast_sine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
