/* Blocks built from the layers: a sequential stack (CUT-style generator
 * pieces: reflect-padded conv, instance norm, transposed conv, upsampling,
 * pooling, linear head), the ResNet encoder (batch norm in training mode,
 * projection shortcuts) and the MLP/SIREN. Whole-model gradients (with
 * respect to every parameter and to the input) are checked by directional
 * finite differences in float: for random directions v,
 * (L(p + h v) - L(p - h v)) / 2h must match grad . v. The layer kernels
 * themselves are checked in double in test_nn_grad. */
#include <stdint.h>

#include "core/core.h"
#include "nn/nn.h"
#include "testutil.h"

typedef struct {
    ew_params_t P;
    int kind; /* 0 seq, 1 resnet, 2 mlp */
    ew_seq_t seq;
    ew_resnet_t res;
    ew_mlp_t mlp;
    float *x, *dx, *r, *dy;
    int n, h, w, in_sz, out_sz;
} model_t;

/* L = sum r_i y_i (double); fills P.grad and dx if grad */
static double run(model_t *m, int grad)
{
    const float *y;
    if (m->kind == 0) assert_ok(ew_seq_forward(&m->seq, &m->P, m->x, m->n, m->h, m->w, 1, &y, NULL, NULL, NULL));
    if (m->kind == 1) assert_ok(ew_resnet_forward(&m->res, &m->P, m->x, m->n, m->h, m->w, 1, &y));
    if (m->kind == 2) assert_ok(ew_mlp_forward(&m->mlp, &m->P, m->x, m->n, &y));
    double L = 0;
    for (int i = 0; i < m->out_sz; i++) L += (double)m->r[i] * y[i];
    if (grad) {
        ew_params_zero_grad(&m->P);
        memset(m->dx, 0, sizeof(float) * m->in_sz);
        if (m->kind == 0) assert_ok(ew_seq_backward(&m->seq, &m->P, m->r, m->dx));
        if (m->kind == 1) assert_ok(ew_resnet_backward(&m->res, &m->P, m->r, m->dx));
        if (m->kind == 2) assert_ok(ew_mlp_backward(&m->mlp, &m->P, m->r, m->dx));
    }
    return L;
}

static void check_model(model_t *m, const char *name, double h, double tol)
{
    ew_rng_t rng;
    ew_rng_init(&rng, 77, 0);
    m->dx = calloc((size_t)m->in_sz, sizeof(float));
    m->r = malloc(sizeof(float) * m->out_sz);
    for (int i = 0; i < m->in_sz; i++) m->x[i] = (float)ew_rng_normal(&rng);
    for (int i = 0; i < m->out_sz; i++) m->r[i] = (float)ew_rng_normal(&rng);
    /* snapshot buffers so every evaluation starts from the same running statistics */
    float *keep = malloc(sizeof(float) * m->P.n_total);
    memcpy(keep, m->P.data, sizeof(float) * m->P.n_total);
    run(m, 1);
    float *g = malloc(sizeof(float) * m->P.n_train), *v = malloc(sizeof(float) * m->P.n_train);
    float *vx = malloc(sizeof(float) * m->in_sz), *x0 = malloc(sizeof(float) * m->in_sz);
    memcpy(g, m->P.grad, sizeof(float) * m->P.n_train);
    memcpy(x0, m->x, sizeof(float) * m->in_sz);
    for (int trial = 0; trial < 3; trial++) {
        double gv = 0;
        for (size_t i = 0; i < m->P.n_train; i++) {
            v[i] = (float)ew_rng_normal(&rng) * (fabs(keep[i]) + 0.05f);
            gv += (double)g[i] * v[i];
        }
        for (int i = 0; i < m->in_sz; i++) {
            vx[i] = trial == 2 ? (float)ew_rng_normal(&rng) : 0.0f; /* last trial: input only */
            gv += (double)m->dx[i] * vx[i];
        }
        if (trial == 2)
            for (size_t i = 0; i < m->P.n_train; i++) gv -= (double)g[i] * v[i], v[i] = 0;
        double Lp, Lm;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            memcpy(m->P.data, keep, sizeof(float) * m->P.n_total);
            for (size_t i = 0; i < m->P.n_train; i++) m->P.data[i] = (float)(keep[i] + sgn * h * v[i]);
            for (int i = 0; i < m->in_sz; i++) m->x[i] = (float)(x0[i] + sgn * h * vx[i]);
            double L = run(m, 0);
            if (sgn < 0) Lm = L;
            else Lp = L;
        }
        double fd = (Lp - Lm) / (2 * h);
        printf("%s trial %d: directional derivative %.6g, finite difference %.6g\n", name, trial, gv, fd);
        if (!(fabs(fd - gv) <= tol * fmax(fabs(gv), 1e-3))) fail_msg("%s: gradient mismatch", name);
    }
    memcpy(m->P.data, keep, sizeof(float) * m->P.n_total);
    free(keep);
    free(g);
    free(v);
    free(vx);
    free(x0);
    free(m->dx);
    free(m->r);
}

static void test_sequential(void **state)
{
    (void)state;
    model_t m;
    memset(&m, 0, sizeof m);
    ew_params_init(&m.P);
    ew_seq_t *S = &m.seq;
    ew_seq_init(S, "gen.", 2);
    assert_ok(ew_seq_conv(S, &m.P, 4, 3, 1, 1, EW_PAD_REFLECT, 1));   /* 0 */
    assert_ok(ew_seq_instancenorm(S, &m.P, 1));                       /* 1 */
    assert_ok(ew_seq_act(S, EW_ACT_GELU, 0));                         /* 2 */
    assert_ok(ew_seq_conv(S, &m.P, 6, 3, 2, 1, EW_PAD_ZERO, 0));      /* 3 */
    assert_ok(ew_seq_groupnorm(S, &m.P, 2, 1));                       /* 4 */
    assert_ok(ew_seq_act(S, EW_ACT_TANH, 0));                         /* 5 */
    assert_ok(ew_seq_convt(S, &m.P, 3, 3, 2, 1, 1, 1));               /* 6 */
    assert_ok(ew_seq_batchnorm(S, &m.P));                             /* 7 */
    assert_ok(ew_seq_act(S, EW_ACT_SOFTPLUS, 0));                     /* 8 */
    assert_ok(ew_seq_upsample(S, EW_UPSAMPLE_BILINEAR, 2));           /* 9 */
    assert_ok(ew_seq_avgpool(S, 3, 2, 1));                            /* 10 */
    assert_ok(ew_seq_linear(S, &m.P, 3 * 8 * 8, 5, 1));               /* 11 */
    assert_ok(ew_seq_act(S, EW_ACT_SIGMOID, 0));                      /* 12 */
    assert_int_equal(ew_seq_groupnorm(S, &m.P, 3, 0), EW_ERR_ARG);    /* 5 channels */
    assert_ok(ew_params_alloc(&m.P));
    ew_layers_init(&m.P, 3);
    /* PyTorch nn.Sequential names */
    assert_true(ew_params_find(&m.P, "gen.0.weight") >= 0 && ew_params_find(&m.P, "gen.0.bias") >= 0);
    assert_true(ew_params_find(&m.P, "gen.1.weight") >= 0);
    assert_true(ew_params_find(&m.P, "gen.3.weight") >= 0 && ew_params_find(&m.P, "gen.3.bias") < 0);
    int ct = ew_params_find(&m.P, "gen.6.weight");
    assert_true(ct >= 0 && m.P.p[ct].shape[0] == 6 && m.P.p[ct].shape[1] == 3);
    assert_true(ew_params_find(&m.P, "gen.7.running_var") >= 0);
    assert_true(ew_params_find(&m.P, "gen.11.weight") >= 0);
    m.kind = 0, m.n = 3, m.h = 8, m.w = 8;
    m.in_sz = 3 * 2 * 8 * 8, m.out_sz = 3 * 5;
    m.x = malloc(sizeof(float) * m.in_sz);
    int oc, oh, ow;
    const float *y;
    assert_ok(ew_seq_forward(S, &m.P, m.x, 3, 8, 8, 1, &y, &oc, &oh, &ow));
    assert_true(oc == 5 && oh == 1 && ow == 1);
    /* an input size the linear layer does not accept */
    assert_int_equal(ew_seq_forward(S, &m.P, m.x, 1, 6, 6, 1, &y, NULL, NULL, NULL), EW_ERR_ARG);
    check_model(&m, "sequential", 2e-3, 2e-2);
    free(m.x);
    ew_seq_free(S);
    ew_params_free(&m.P);
}

static void test_resnet(void **state)
{
    (void)state;
    model_t m;
    memset(&m, 0, sizeof m);
    ew_params_init(&m.P);
    ew_resnet_config_t cfg = {.in_ch = 2, .width = 4, .stages = 3, .blocks = {2, 1, 1}, .out_dim = 3, .small_stem = 0};
    assert_ok(ew_resnet_create(&m.res, &m.P, "", &cfg));
    assert_ok(ew_params_alloc(&m.P));
    ew_layers_init(&m.P, 5);
    m.kind = 1, m.n = 4, m.h = 20, m.w = 18;
    m.in_sz = 4 * 2 * 20 * 18, m.out_sz = 4 * 3;
    m.x = malloc(sizeof(float) * m.in_sz);
    check_model(&m, "resnet", 2e-4, 2e-2);
    /* torchvision layout: layer2.0 has a projection, layer1.1 does not */
    assert_true(ew_params_find(&m.P, "layer2.0.downsample.0.weight") >= 0);
    assert_true(ew_params_find(&m.P, "layer2.0.downsample.1.running_mean") >= 0);
    assert_true(ew_params_find(&m.P, "layer1.1.downsample.0.weight") < 0);
    assert_true(ew_params_find(&m.P, "fc.bias") >= 0);
    /* an empty input is refused */
    const float *y;
    assert_int_equal(ew_resnet_forward(&m.res, &m.P, m.x, 1, 0, 2, 1, &y), EW_ERR_ARG);
    free(m.x);
    ew_resnet_free(&m.res);
    ew_params_free(&m.P);
}

static void test_mlp_siren(void **state)
{
    (void)state;
    for (int siren = 0; siren < 2; siren++) {
        model_t m;
        memset(&m, 0, sizeof m);
        ew_params_init(&m.P);
        ew_mlp_config_t cfg = siren ? ew_siren_config(3, 16, 3, 2)
                                    : (ew_mlp_config_t){.in_dim = 3, .hidden = 16, .layers = 2, .out_dim = 2,
                                                        .act = EW_ACT_GELU};
        if (siren) cfg.act_param = cfg.first_omega = 3.0; /* moderate frequency for float differences */
        assert_ok(ew_mlp_create(&m.mlp, &m.P, "net.", &cfg));
        assert_ok(ew_params_alloc(&m.P));
        ew_layers_init(&m.P, 9);
        ew_mlp_init(&m.mlp, &m.P, 9);
        m.kind = 2, m.n = 10, m.in_sz = 30, m.out_sz = 20;
        m.x = malloc(sizeof(float) * m.in_sz);
        check_model(&m, siren ? "siren" : "mlp", 2e-3, 2e-2);
        assert_true(ew_params_find(&m.P, siren ? "net.3.weight" : "net.2.weight") < 0);
        assert_true(ew_params_find(&m.P, siren ? "net.layers.3.weight" : "net.layers.2.bias") >= 0);
        free(m.x);
        ew_mlp_free(&m.mlp);
        ew_params_free(&m.P);
    }
}

/* the same model gives the same result with 1 and 2 threads, and in both thread policies */
static void test_thread_policies_agree(void **state)
{
    (void)state;
    ew_params_t P;
    ew_params_init(&P);
    ew_resnet_t R;
    ew_resnet_config_t cfg = {.in_ch = 1, .width = 8, .stages = 2, .blocks = {1, 1}, .out_dim = 4, .small_stem = 0};
    assert_ok(ew_resnet_create(&R, &P, "", &cfg));
    assert_ok(ew_params_alloc(&P));
    ew_layers_init(&P, 1);
    enum { N = 6, S = 32 };
    float *x = malloc(sizeof(float) * N * S * S), y0[N * 4], dy[N * 4];
    float *g0 = malloc(sizeof(float) * P.n_train);
    ew_rng_t r;
    ew_rng_init(&r, 3, 0);
    for (int i = 0; i < N * S * S; i++) x[i] = (float)ew_rng_normal(&r);
    for (int i = 0; i < N * 4; i++) dy[i] = (float)ew_rng_normal(&r);
    for (int mode = 0; mode < 3; mode++) {
        ew_nn_set_threads(mode == 2 ? EW_NN_THREADS_BLAS : EW_NN_THREADS_OMP, mode == 0 ? 1 : 2);
        const float *y;
        ew_params_zero_grad(&P);
        assert_ok(ew_resnet_forward(&R, &P, x, N, S, S, 0, &y));
        assert_ok(ew_resnet_backward(&R, &P, dy, NULL));
        if (mode == 0) {
            memcpy(y0, y, sizeof y0);
            memcpy(g0, P.grad, sizeof(float) * P.n_train);
            continue;
        }
        for (int i = 0; i < N * 4; i++) assert_close(y[i], y0[i], 1e-5, 1e-6);
        double e = 0, m = 0;
        for (size_t i = 0; i < P.n_train; i++) e = fmax(e, fabs(P.grad[i] - g0[i])), m = fmax(m, fabs(g0[i]));
        assert_true(e <= 1e-5 * m);
    }
    ew_nn_set_threads(EW_NN_THREADS_OMP, 0);
    free(x);
    free(g0);
    ew_resnet_free(&R);
    ew_params_free(&P);
}

int main(int argc, char **argv)
{
    (void)argc;
    ew_nn_tune_environment(argv); /* passive OpenMP waiting, AVX-512 sgemm */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential),
        cmocka_unit_test(test_resnet),
        cmocka_unit_test(test_mlp_siren),
        cmocka_unit_test(test_thread_policies_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
