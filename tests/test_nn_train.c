/* nn engine end to end: parameter block layout, initialisers, optimizers
 * against hand-computed updates, schedules, checkpoint round trips, exact
 * resumption of interrupted training, and two learning tasks that must
 * really learn: a CNN regressing the in-plane angle of a rendered shape
 * (median error < 5 degrees) and a SIREN fitting an image (PSNR > 30 dB). */
#include <stdint.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "nn/nn.h"
#include "testutil.h"

static void test_params_layout(void **state)
{
    (void)state;
    ew_params_t P;
    ew_params_init(&P);
    int a, b, c, d;
    int64_t s1[1] = {3}, s2[2] = {5, 7};
    assert_ok(ew_params_add(&P, "bn.running_mean", EW_PARAM_BUFFER, 1, s1, &a));
    assert_ok(ew_params_add(&P, "fc.weight", EW_PARAM_WEIGHT, 2, s2, &b));
    assert_ok(ew_params_add(&P, "bn.num_batches_tracked", EW_PARAM_COUNTER, 0, NULL, &c));
    assert_ok(ew_params_add(&P, "fc.bias", EW_PARAM_WEIGHT, 1, s1, &d));
    assert_int_equal(ew_params_add(&P, "fc.bias", EW_PARAM_WEIGHT, 1, s1, NULL), EW_ERR_ARG);
    int64_t bad[1] = {0};
    assert_int_equal(ew_params_add(&P, "zero", EW_PARAM_WEIGHT, 1, bad, NULL), EW_ERR_ARG);
    assert_ok(ew_params_alloc(&P));
    assert_int_equal(ew_params_add(&P, "late", EW_PARAM_WEIGHT, 1, s1, NULL), EW_ERR_ARG);
    /* learned tensors first, in order, then buffers */
    assert_int_equal(P.n_train, 38);
    assert_int_equal(P.n_total, 42);
    assert_true(ew_params_data(&P, b) == P.data);
    assert_true(ew_params_data(&P, d) == P.data + 35);
    assert_true(ew_params_data(&P, a) == P.data + 38);
    assert_true(ew_params_grad(&P, d) == P.grad + 35);
    assert_int_equal(((uintptr_t)P.grad) % 64, 0);
    assert_int_equal(((uintptr_t)P.opt_m) % 64, 0);
    assert_int_equal(ew_params_find(&P, "fc.weight"), b);
    assert_int_equal(ew_params_find(&P, "nope"), -1);
    assert_int_equal(ew_params_fan_in(&P, b), 7);
    assert_int_equal(ew_params_fan_out(&P, b), 5);
    for (size_t i = 0; i < P.n_train; i++) P.grad[i] = 1;
    ew_params_zero_grad(&P);
    for (size_t i = 0; i < P.n_train; i++) assert_true(P.grad[i] == 0);
    ew_params_free(&P);
    ew_params_free(&P);
}

static void test_init(void **state)
{
    (void)state;
    ew_params_t P;
    ew_params_init(&P);
    int w, s0, s1;
    int64_t shw[4] = {64, 32, 3, 3}, shs[2] = {256, 256};
    assert_ok(ew_params_add(&P, "conv.weight", EW_PARAM_WEIGHT, 4, shw, &w));
    assert_ok(ew_params_add(&P, "s0.weight", EW_PARAM_WEIGHT, 2, shs, &s0));
    assert_ok(ew_params_add(&P, "s1.weight", EW_PARAM_WEIGHT, 2, shs, &s1));
    assert_ok(ew_params_alloc(&P));
    ew_init_kaiming_normal(&P, w, 0.0, 3);
    double s = 0, s2 = 0;
    size_t n = P.p[w].count;
    const float *d = ew_params_data(&P, w);
    for (size_t i = 0; i < n; i++) s += d[i], s2 += (double)d[i] * d[i];
    assert_close(sqrt(s2 / n), sqrt(2.0 / 288), 0.03, 0); /* std = sqrt(2 / fan_in) */
    assert_close(s / n, 0, 0, 0.01);
    ew_init_siren(&P, s0, 1, 30, 4);
    ew_init_siren(&P, s1, 0, 30, 4);
    double m0 = 0, m1 = 0;
    for (size_t i = 0; i < P.p[s0].count; i++) {
        m0 = fmax(m0, fabs(ew_params_data(&P, s0)[i]));
        m1 = fmax(m1, fabs(ew_params_data(&P, s1)[i]));
    }
    assert_true(m0 <= 1.0 / 256 && m0 > 0.99 / 256);
    assert_true(m1 <= sqrt(6.0 / 256) / 30 && m1 > 0.99 * sqrt(6.0 / 256) / 30);
    /* deterministic */
    float keep = ew_params_data(&P, w)[17];
    ew_init_kaiming_normal(&P, w, 0.0, 3);
    assert_true(keep == ew_params_data(&P, w)[17]);
    ew_init_xavier_uniform(&P, w, 1.0, 3);
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ew_params_data(&P, w)[i]));
    assert_true(mx <= sqrt(6.0 / (288 + 576)) && mx > 0.98 * sqrt(6.0 / (288 + 576)));
    ew_params_free(&P);
}

static void test_optimizers(void **state)
{
    (void)state;
    ew_params_t P;
    ew_params_init(&P);
    int64_t sh[1] = {2};
    assert_ok(ew_params_add(&P, "p", EW_PARAM_WEIGHT, 1, sh, NULL));
    assert_ok(ew_params_alloc(&P));
    /* AdamW against the formulas in double */
    ew_optim_t o = ew_optim_default(EW_OPT_ADAMW);
    o.weight_decay = 0.1;
    double p[2] = {1.0, -0.5}, m[2] = {0, 0}, v[2] = {0, 0}, lr = 0.01;
    P.data[0] = 1.0f, P.data[1] = -0.5f;
    for (int t = 1; t <= 5; t++) {
        double g[2] = {0.3 * t - 1.0, 0.2};
        P.grad[0] = (float)g[0], P.grad[1] = (float)g[1];
        ew_optim_step(&P, &o, lr);
        for (int k = 0; k < 2; k++) {
            p[k] *= 1 - lr * 0.1;
            m[k] = 0.9 * m[k] + 0.1 * g[k];
            v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
            double mh = m[k] / (1 - pow(0.9, t)), vh = v[k] / (1 - pow(0.999, t));
            p[k] -= lr * mh / (sqrt(vh) + 1e-8);
        }
    }
    assert_int_equal(P.step, 5);
    assert_close(P.data[0], p[0], 1e-5, 1e-7);
    assert_close(P.data[1], p[1], 1e-5, 1e-7);
    /* SGD with momentum (PyTorch's buffer convention) */
    o = ew_optim_default(EW_OPT_SGD);
    P.data[0] = 1.0f;
    memset(P.opt_m, 0, 2 * sizeof(float));
    double q = 1.0, buf = 0;
    for (int t = 0; t < 4; t++) {
        P.grad[0] = 0.5f;
        ew_optim_step(&P, &o, 0.1);
        buf = 0.9 * buf + 0.5;
        q -= 0.1 * buf;
    }
    assert_close(P.data[0], q, 1e-6, 0);
    /* plain Adam with L2 decay differs from AdamW */
    o = ew_optim_default(EW_OPT_ADAM);
    assert_true(o.weight_decay == 0 && o.beta2 == 0.999);
    /* clipping by the global norm */
    P.grad[0] = 3, P.grad[1] = 4;
    assert_close(ew_grad_norm(&P), 5, 1e-12, 0);
    assert_close(ew_grad_clip(&P, 1.0), 5, 1e-12, 0);
    assert_close(ew_grad_norm(&P), 1.0, 1e-5, 0);
    assert_close(ew_grad_clip(&P, 10.0), 1.0, 1e-5, 0); /* below: unchanged */
    assert_close(ew_grad_norm(&P), 1.0, 1e-5, 0);
    /* warm-up + cosine */
    assert_close(ew_lr_warmup_cosine(0, 10, 110, 1.0, 0.0), 0.1, 1e-12, 0);
    assert_close(ew_lr_warmup_cosine(9, 10, 110, 1.0, 0.0), 1.0, 1e-12, 0);
    assert_close(ew_lr_warmup_cosine(60, 10, 110, 1.0, 0.0), 0.5, 1e-12, 0);
    assert_close(ew_lr_warmup_cosine(110, 10, 110, 1.0, 0.1), 0.1, 1e-12, 0);
    assert_close(ew_lr_warmup_cosine(35, 10, 110, 2.0, 0.0), 1.0 + cos(EW_PI * 0.25), 1e-12, 0);
    ew_params_free(&P);
}

/* ---- a small CNN: ResNet (small stem, 2 stages) regressing cos/sin of an angle ---- */

enum { IMG = 24 };

/* an arrow: a bar from the centre along theta with a blob at its tip */
static void render(float *img, double th, double jx, double jy)
{
    double cx = IMG / 2.0 - 0.5 + jx, cy = IMG / 2.0 - 0.5 + jy;
    for (int y = 0; y < IMG; y++)
        for (int x = 0; x < IMG; x++) {
            double v = 0;
            for (int k = 0; k <= 8; k++) {
                double px = cx + k * cos(th), py = cy + k * sin(th);
                double d2 = (x - px) * (x - px) + (y - py) * (y - py);
                v += exp(-d2 / (2 * 0.8 * 0.8)) * 0.5;
            }
            double tx = cx + 8 * cos(th), ty = cy + 8 * sin(th);
            v += exp(-((x - tx) * (x - tx) + (y - ty) * (y - ty)) / (2 * 1.5 * 1.5));
            img[y * IMG + x] = (float)v;
        }
}

static void make_batch(float *x, float *t, double *th, int n, uint64_t seed, uint64_t step)
{
    for (int i = 0; i < n; i++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, ew_rng_stream_id(EW_RNG_TAG_BATCH, step * 1000 + (uint64_t)i));
        double a = 2 * EW_PI * ew_rng_uniform(&r);
        render(x + (size_t)i * IMG * IMG, a, ew_rng_uniform(&r) - 0.5, ew_rng_uniform(&r) - 0.5);
        t[2 * i] = (float)cos(a), t[2 * i + 1] = (float)sin(a);
        if (th) th[i] = a;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_cnn_learns_angle(void **state)
{
    (void)state;
    ew_params_t P;
    ew_params_init(&P);
    ew_resnet_t R;
    ew_resnet_config_t cfg = {.in_ch = 1, .width = 8, .stages = 3, .blocks = {1, 1, 1}, .out_dim = 2, .small_stem = 1};
    assert_ok(ew_resnet_create(&R, &P, "", &cfg));
    assert_ok(ew_params_alloc(&P));
    ew_layers_init(&P, 11);
    enum { B = 32, STEPS = 150, NT = 200 };
    float *x = malloc(sizeof(float) * NT * IMG * IMG), *t = malloc(sizeof(float) * NT * 2), dy[B * 2];
    double th[NT];
    ew_optim_t o = ew_optim_default(EW_OPT_ADAMW);
    o.weight_decay = 1e-4;
    double t0 = ew_time_now();
    for (int s = 0; s < STEPS; s++) {
        make_batch(x, t, NULL, B, 1, (uint64_t)s);
        const float *y;
        ew_params_zero_grad(&P);
        assert_ok(ew_resnet_forward(&R, &P, x, B, IMG, IMG, 1, &y));
        memset(dy, 0, sizeof dy);
        ew_loss_mse(dy, y, t, B * 2, 1.0);
        assert_ok(ew_resnet_backward(&R, &P, dy, NULL));
        ew_optim_step(&P, &o, ew_lr_warmup_cosine(s, 10, STEPS, 4e-3, 1e-4));
    }
    /* held-out images, eval mode (running statistics) */
    make_batch(x, t, th, NT, 2, 0);
    const float *y;
    assert_ok(ew_resnet_forward(&R, &P, x, NT, IMG, IMG, 0, &y));
    double err[NT];
    for (int i = 0; i < NT; i++) {
        double a = atan2(y[2 * i + 1], y[2 * i]), d = fabs(a - th[i]);
        d = fmod(d, 2 * EW_PI);
        err[i] = fmin(d, 2 * EW_PI - d) * 180 / EW_PI;
    }
    qsort(err, NT, sizeof(double), cmp_double);
    printf("cnn angle regression: median error %.2f deg, 90%% %.2f deg, %d steps in %.1f s\n", err[NT / 2],
           err[NT * 9 / 10], STEPS, ew_time_now() - t0);
    assert_true(err[NT / 2] < 5.0);
    free(x);
    free(t);
    ew_resnet_free(&R);
    ew_params_free(&P);
}

/* ---- SIREN fitting an image ---- */

enum { SI = 48 };

static void test_siren_fits_image(void **state)
{
    (void)state;
    ew_params_t P;
    ew_params_init(&P);
    ew_mlp_t M;
    ew_mlp_config_t cfg = ew_siren_config(2, 96, 3, 1);
    assert_ok(ew_mlp_create(&M, &P, "", &cfg));
    assert_ok(ew_params_alloc(&P));
    ew_layers_init(&P, 5);
    ew_mlp_init(&M, &P, 5);
    enum { N = SI * SI };
    float *x = malloc(sizeof(float) * N * 2), *img = malloc(sizeof(float) * N), *dy = malloc(sizeof(float) * N);
    /* a smooth but detailed image in [0, 1]: blobs and a ring */
    for (int iy = 0; iy < SI; iy++)
        for (int ix = 0; ix < SI; ix++) {
            double u = -1 + 2.0 * (ix + 0.5) / SI, v = -1 + 2.0 * (iy + 0.5) / SI;
            double r = sqrt(u * u + v * v);
            double val = 0.4 * exp(-((u - 0.3) * (u - 0.3) + v * v) / 0.05) + 0.3 * exp(-(u * u + (v + 0.4) * (v + 0.4)) / 0.02) +
                         0.3 * exp(-(r - 0.7) * (r - 0.7) / 0.004) + 0.1 * sin(14 * u) * cos(11 * v) + 0.15 * (u > 0.1 && v < -0.2) + 0.1;
            img[iy * SI + ix] = (float)val;
            x[2 * (iy * SI + ix)] = (float)u, x[2 * (iy * SI + ix) + 1] = (float)v;
        }
    ew_optim_t o = ew_optim_default(EW_OPT_ADAM);
    double mse = 1, t0 = ew_time_now(), psnr0 = -1;
    int s;
    for (s = 0; s < 1500; s++) {
        const float *y;
        ew_params_zero_grad(&P);
        assert_ok(ew_mlp_forward(&M, &P, x, N, &y));
        memset(dy, 0, sizeof(float) * N);
        mse = ew_loss_mse(dy, y, img, N, 1.0);
        if (s == 0) psnr0 = 10 * log10(1.0 / mse);
        if (10 * log10(1.0 / mse) > 32) break;
        assert_ok(ew_mlp_backward(&M, &P, dy, NULL));
        ew_optim_step(&P, &o, 1e-3);
    }
    double psnr = 10 * log10(1.0 / mse);
    printf("siren image fit: PSNR %.1f dB at start, %.1f dB after %d steps, %.1f s\n", psnr0, psnr, s,
           ew_time_now() - t0);
    assert_true(psnr0 < 20);
    assert_true(psnr > 30);
    free(x);
    free(img);
    free(dy);
    ew_mlp_free(&M);
    ew_params_free(&P);
}

/* ---- checkpoints and exact resumption ---- */

typedef struct {
    ew_params_t P;
    ew_resnet_t R;
} small_net_t;

static void small_net(small_net_t *n)
{
    ew_params_init(&n->P);
    ew_resnet_config_t cfg = {.in_ch = 1, .width = 4, .stages = 2, .blocks = {1, 1}, .out_dim = 2, .small_stem = 0};
    assert_ok(ew_resnet_create(&n->R, &n->P, "enc.", &cfg));
    assert_ok(ew_params_alloc(&n->P));
    ew_layers_init(&n->P, 21);
}

static void train_steps(small_net_t *n, int s0, int s1)
{
    enum { B = 8 };
    float x[B * IMG * IMG], t[B * 2], dy[B * 2];
    ew_optim_t o = ew_optim_default(EW_OPT_ADAMW);
    for (int s = s0; s < s1; s++) {
        make_batch(x, t, NULL, B, 3, (uint64_t)s);
        const float *y;
        ew_params_zero_grad(&n->P);
        assert_ok(ew_resnet_forward(&n->R, &n->P, x, B, IMG, IMG, 1, &y));
        memset(dy, 0, sizeof dy);
        ew_loss_mse(dy, y, t, B * 2, 1.0);
        assert_ok(ew_resnet_backward(&n->R, &n->P, dy, NULL));
        ew_grad_clip(&n->P, 1.0);
        ew_optim_step(&n->P, &o, ew_lr_warmup_cosine(s, 3, 12, 1e-2, 1e-4));
    }
}

static void test_checkpoint_resume_exact(void **state)
{
    (void)state;
    const char *path = ew_test_tmpfile("ckpt.safetensors");
    small_net_t a, b;
    small_net(&a);
    train_steps(&a, 0, 5);
    const char *meta[] = {"model", "small resnet"};
    assert_ok(ew_checkpoint_save(path, &a.P, 1, meta, 1));
    train_steps(&a, 5, 12);
    /* a fresh model resumed from the checkpoint */
    small_net(&b);
    assert_ok(ew_checkpoint_load(path, &b.P, 1));
    assert_int_equal(b.P.step, 5);
    train_steps(&b, 5, 12);
    assert_int_equal(a.P.step, b.P.step);
    assert_memory_equal(a.P.data, b.P.data, a.P.n_total * sizeof(float));
    assert_memory_equal(a.P.opt_m, b.P.opt_m, a.P.n_train * sizeof(float));
    assert_memory_equal(a.P.opt_v, b.P.opt_v, a.P.n_train * sizeof(float));
    /* the file holds PyTorch names, shapes and dtypes */
    ew_safetensors_t st;
    assert_ok(ew_safetensors_read(path, &st));
    const ew_st_tensor_t *t = ew_safetensors_find(&st, "enc.layer2.0.downsample.0.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->shape[0], 8);
    assert_int_equal(t->shape[1], 4);
    assert_int_equal(t->shape[2], 1);
    t = ew_safetensors_find(&st, "enc.bn1.num_batches_tracked");
    assert_non_null(t);
    assert_int_equal(t->dtype, EW_ST_I64);
    assert_int_equal(t->ndim, 0);
    int64_t nbt;
    assert_ok(ew_safetensors_get_i64(&st, "enc.bn1.num_batches_tracked", &nbt, 1));
    assert_int_equal(nbt, 5);
    assert_non_null(ew_safetensors_find(&st, "optim.exp_avg_sq.enc.fc.weight"));
    assert_string_equal(ew_safetensors_meta(&st, "model"), "small resnet");
    assert_string_equal(ew_safetensors_meta(&st, "ewald.step"), "5");
    ew_safetensors_free(&st);
    /* weights only, and a mismatched model is refused with the tensor named */
    const char *p2 = ew_test_tmpfile("weights.safetensors");
    assert_ok(ew_checkpoint_save(p2, &a.P, 0, NULL, 0));
    assert_ok(ew_checkpoint_load(p2, &b.P, 0));
    assert_int_equal(ew_checkpoint_load(p2, &b.P, 1), EW_ERR_FORMAT);
    ew_params_t other;
    ew_params_init(&other);
    int64_t sh[2] = {3, 3};
    assert_ok(ew_params_add(&other, "enc.fc.weight", EW_PARAM_WEIGHT, 2, sh, NULL));
    assert_ok(ew_params_alloc(&other));
    assert_int_equal(ew_checkpoint_load(p2, &other, 0), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "enc.fc.weight"));
    ew_params_free(&other);
    ew_resnet_free(&a.R);
    ew_resnet_free(&b.R);
    ew_params_free(&a.P);
    ew_params_free(&b.P);
}

int main(int argc, char **argv)
{
    (void)argc;
    ew_nn_tune_environment(argv); /* passive OpenMP waiting, AVX-512 sgemm */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_layout),      cmocka_unit_test(test_init),
        cmocka_unit_test(test_optimizers),         cmocka_unit_test(test_checkpoint_resume_exact),
        cmocka_unit_test(test_siren_fits_image),   cmocka_unit_test(test_cnn_learns_angle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
