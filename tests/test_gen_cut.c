/* Noise translation (src/gen, CUT + mask-guided PatchNCE):
 *  - the new ops (patch gather/scatter, PatchNCE loss) against finite
 *    differences in double and the float instance against the double one;
 *  - the op graphs of the generator and discriminator: input and weight
 *    gradients against finite differences;
 *  - the sampler draws particle anchors only from the mask and background
 *    anchors only from outside it, without repeats, in the stated counts;
 *  - the content metric on known cases;
 *  - a tiny training run: losses finite and falling, outputs finite and of
 *    the input's size, checkpoint round trip, exact resume, apply on MRCs. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "gen/cut_impl.h"
#include "gen/gen.h"
#include "io/mrc.h"
#include "nn/gen_ops.h"
#include "nn/nn.h"
#include "testutil.h"

static double urand(ew_rng_t *r, double lo, double hi) { return lo + (hi - lo) * ew_rng_uniform(r); }

/* ---- new ops ---- */

static void test_gather_scatter_adjoint(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 1, 0);
    enum { N = 2, C = 3, HW = 20, NP = 7 };
    double x[N * C * HW], y[N * NP * C], gx[N * NP * C], sx[N * C * HW];
    int32_t idx[N * NP];
    for (int i = 0; i < N * C * HW; i++) x[i] = urand(&r, -1, 1), sx[i] = 0;
    for (int i = 0; i < N * NP * C; i++) y[i] = urand(&r, -1, 1);
    for (int i = 0; i < N * NP; i++) idx[i] = (int32_t)(ew_rng_u32(&r) % HW);
    idx[1] = idx[0]; /* a duplicate must add twice */
    ew_patch_gather_d(gx, x, idx, N, C, HW, NP);
    for (int b = 0; b < N; b++)
        for (int j = 0; j < NP; j++)
            for (int c = 0; c < C; c++)
                assert_true(gx[(b * NP + j) * C + c] == x[(b * C + c) * HW + idx[b * NP + j]]);
    ew_patch_scatter_add_d(sx, y, idx, N, C, HW, NP);
    double a = 0, b = 0;
    for (int i = 0; i < N * NP * C; i++) a += y[i] * gx[i];
    for (int i = 0; i < N * C * HW; i++) b += sx[i] * x[i];
    assert_close(a, b, 1e-12, 1e-12);
}

static void test_patchnce_grad(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 2, 0);
    enum { NA = 5, NK = 9, D = 6 };
    double q[NA * D], k[NK * D], dq[NA * D] = {0};
    int32_t pos[NA], noff[NA + 1], neg[NA * NK];
    for (int i = 0; i < NA * D; i++) q[i] = urand(&r, -1, 1);
    for (int i = 0; i < NK * D; i++) k[i] = urand(&r, -1, 1);
    int m = 0;
    for (int a = 0; a < NA; a++) {
        pos[a] = a;
        noff[a] = m;
        for (int j = 0; j < NK; j++)
            if (j != a && (j + a) % 3 != 0) neg[m++] = j; /* irregular negative sets */
    }
    noff[NA] = m;
    const double tau = 0.3, g = 1.7;
    double L = ew_patchnce_loss_d(dq, q, k, NA, D, pos, noff, neg, tau, g);
    /* independent value: log-sum-exp written out */
    double ref = 0;
    for (int a = 0; a < NA; a++) {
        double lp = 0, z = 0;
        for (int t = 0; t < D; t++) lp += q[a * D + t] * k[pos[a] * D + t];
        z = exp(lp / tau);
        for (int j = noff[a]; j < noff[a + 1]; j++) {
            double s = 0;
            for (int t = 0; t < D; t++) s += q[a * D + t] * k[neg[j] * D + t];
            z += exp(s / tau);
        }
        ref += log(z) - lp / tau;
    }
    assert_close(L, ref / NA, 1e-12, 1e-12);
    for (int i = 0; i < NA * D; i++) {
        const double h = 1e-6, q0 = q[i];
        q[i] = q0 + h;
        double lp = ew_patchnce_loss_d(NULL, q, k, NA, D, pos, noff, neg, tau, g);
        q[i] = q0 - h;
        double lm = ew_patchnce_loss_d(NULL, q, k, NA, D, pos, noff, neg, tau, g);
        q[i] = q0;
        assert_close(dq[i], g * (lp - lm) / (2 * h), 1e-6, 1e-9);
    }
    /* float instance against double */
    float qf[NA * D], kf[NK * D], dqf[NA * D] = {0};
    for (int i = 0; i < NA * D; i++) qf[i] = (float)q[i];
    for (int i = 0; i < NK * D; i++) kf[i] = (float)k[i];
    double Lf = ew_patchnce_loss(dqf, qf, kf, NA, D, pos, noff, neg, tau, g);
    assert_close(Lf, L, 1e-5, 1e-6);
    for (int i = 0; i < NA * D; i++) assert_close(dqf[i], dq[i], 1e-4, 1e-6);
    /* no anchors: zero loss */
    assert_true(ew_patchnce_loss_d(NULL, q, k, 0, D, pos, noff, neg, tau, g) == 0.0);
}

/* ---- networks ---- */

static ew_cut_config_t tiny_config(void)
{
    ew_cut_config_t c;
    ew_cut_config_default(&c);
    c.ngf = 4;
    c.n_blocks = 2;
    c.ndf = 4;
    c.n_layers_d = 2;
    c.mlp_dim = 16;
    c.num_patches = 24;
    c.crop = 32;
    c.batch = 1;
    c.steps = 40;
    c.eval_crops = 4;
    c.eval_size = 32;
    c.progress = 0;
    c.lr = 1e-3;
    c.pixel = 2.0;
    return c;
}

static double vec_relerr(const double *a, const double *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += a[i] * a[i];
        print_message("  analytic %.6f  finite difference %.6f\n", a[i], b[i]);
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* L = sum r * out of a net; compare dL/dx and dL/dw (a few entries) with central differences */
static void check_net_grad(ew_cut_model_t *m, cut_net_t *net, int n, int h, int w)
{
    ew_rng_t r;
    ew_rng_init(&r, 3, 0);
    const size_t nx = (size_t)n * h * w;
    float *x = ew_alloc_array(nx, sizeof(float)), *dx = ew_calloc_array(nx, sizeof(float));
    assert_non_null(x);
    assert_non_null(dx);
    for (size_t i = 0; i < nx; i++) x[i] = (float)urand(&r, -1, 1);
    /* weights large enough that every layer matters */
    for (size_t i = 0; i < m->P.n_train; i++) m->P.data[i] = (float)urand(&r, -0.5, 0.5);
    cut_act_t a;
    cut_act_init(&a);
    assert_ok(cut_net_forward(net, &m->P, &a, x, n, h, w, -1, 1));
    const int out = cut_net_out(net);
    const size_t no = cut_slot_size(&a, out);
    double *rr = malloc(sizeof(double) * no);
    for (size_t i = 0; i < no; i++) rr[i] = urand(&r, -1, 1);
    cut_act_zero_grad(&a);
    for (size_t i = 0; i < no; i++) cut_slot_grad(&a, out)[i] = (float)rr[i];
    ew_params_zero_grad(&m->P);
    assert_ok(cut_net_backward(net, &m->P, &a, 1, dx));
    cut_act_t b;
    cut_act_init(&b);
#define LOSS(val)                                                                  \
    do {                                                                           \
        assert_ok(cut_net_forward(net, &m->P, &b, x, n, h, w, -1, 0));             \
        double s_ = 0;                                                             \
        for (size_t i_ = 0; i_ < no; i_++) s_ += rr[i_] * cut_slot(&b, out)[i_];   \
        val = s_;                                                                  \
    } while (0)
    /* float central differences with eps 1e-3 (ReLU kinks and float
       rounding make single entries noisy): the relative error of the
       vector of 8 sampled entries must be below 2% */
    const float eps = 1e-3f;
    double an[8], fd[8];
    for (int t = 0; t < 8; t++) {
        size_t i = (size_t)(ew_rng_u32(&r) % nx);
        float x0 = x[i];
        double lp, lm;
        x[i] = x0 + eps;
        LOSS(lp);
        x[i] = x0 - eps;
        LOSS(lm);
        x[i] = x0;
        an[t] = dx[i];
        fd[t] = (lp - lm) / (2 * eps);
    }
    assert_true(vec_relerr(an, fd, 8) < 2e-2);
    for (int t = 0; t < 8; t++) {
        int L = (int)(ew_rng_u32(&r) % (uint32_t)net->nconv);
        int iw = net->conv[L].iw;
        size_t cnt = m->P.p[iw].count, i = (size_t)(ew_rng_u32(&r) % cnt);
        float *wd = ew_params_data(&m->P, iw), w0 = wd[i];
        double lp, lm;
        wd[i] = w0 + eps;
        LOSS(lp);
        wd[i] = w0 - eps;
        LOSS(lm);
        wd[i] = w0;
        an[t] = ew_params_grad(&m->P, iw)[i];
        fd[t] = (lp - lm) / (2 * eps);
    }
    assert_true(vec_relerr(an, fd, 8) < 2e-2);
#undef LOSS
    free(rr);
    cut_act_free(&a);
    cut_act_free(&b);
    ew_free(x);
    ew_free(dx);
}

static void test_network_gradients(void **state)
{
    (void)state;
    ew_cut_config_t c = tiny_config();
    ew_cut_model_t *m;
    assert_ok(ew_cut_model_create(&c, &m));
    /* tensor names follow CUT's modules */
    assert_true(ew_params_find(&m->P, "netG.model.1.weight") >= 0);
    assert_true(ew_params_find(&m->P, "netG.model.10.conv_block.5.weight") >= 0);
    assert_true(ew_params_find(&m->P, "netD.model.0.weight") >= 0);
    assert_true(ew_params_find(&m->P, "netF.mlp_0.2.weight") >= 0);
    /* taps {0,4,8,12,16} with 2 blocks: 12 and 16 clamp to the last block (11) */
    assert_int_equal(m->ntap, 4);
    assert_int_equal(m->tap_c[0], 1);
    assert_int_equal(m->tap_c[1], 8);
    assert_int_equal(m->tap_c[2], 16);
    check_net_grad(m, &m->G, 2, 16, 16);
    check_net_grad(m, &m->D, 2, 32, 32);
    /* generator output: same size, in [-1, 1] (tanh) */
    float x[2 * 16 * 20], y[2 * 16 * 20];
    for (int i = 0; i < 2 * 16 * 20; i++) x[i] = (float)sin(i * 0.37);
    assert_ok(ew_cut_generate(m, x, 2, 16, 20, y));
    for (int i = 0; i < 2 * 16 * 20; i++) assert_true(fabsf(y[i]) <= 1.0f);
    assert_int_equal(ew_cut_generate(m, x, 1, 18, 20, y), EW_ERR_ARG);
    ew_cut_model_free(m);
    /* with the identity skip a fresh model (weights ~ gain 0.02) starts near y = 0.995 x */
    assert_ok(ew_cut_model_create(&c, &m));
    assert_ok(ew_cut_generate(m, x, 2, 16, 20, y));
    double dev = 0;
    for (int i = 0; i < 2 * 16 * 20; i++) {
        assert_close(y[i], 0.995 * x[i], 0, 0.15);
        dev += fabs(y[i] - 0.995 * x[i]) / (2 * 16 * 20);
    }
    assert_true(dev < 0.05);
    ew_cut_model_free(m);
}

/* ---- sampler ---- */

static void test_sampler(void **state)
{
    (void)state;
    enum { H = 32, W = 32 };
    uint8_t mask[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) mask[y * W + x] = (x - 10) * (x - 10) + (y - 12) * (y - 12) < 36;
    for (int stride = 1; stride <= 4; stride *= 2) {
        const int fh = H / stride, fw = W / stride, off = stride / 2;
        int npart_all = 0;
        for (int p = 0; p < fh * fw; p++)
            npart_all += mask[(stride * (p / fw) + off) * W + stride * (p % fw) + off];
        for (int trial = 0; trial < 20; trial++) {
            ew_rng_t r;
            ew_rng_init(&r, 5, (uint64_t)trial);
            int32_t idx[64];
            int kp, plain;
            const int np = ew_cut_sample_locations(mask, fh, fw, stride, 64, EW_CUT_SAMPLE_MASK, &r, idx, &kp, &plain);
            assert_int_equal(plain, 0);
            assert_int_equal(np, 64 < fh * fw ? 64 : fh * fw);
            const int want_kp = 32 < npart_all ? 32 : npart_all;
            assert_true(kp >= want_kp);
            for (int i = 0; i < np; i++) {
                assert_true(idx[i] >= 0 && idx[i] < fh * fw);
                const int in = mask[(stride * (idx[i] / fw) + off) * W + stride * (idx[i] % fw) + off];
                assert_int_equal(in, i < kp ? 1 : 0);
                for (int j = 0; j < i; j++) assert_true(idx[j] != idx[i]);
            }
            /* plain: uniform without replacement over the whole map */
            const int np2 = ew_cut_sample_locations(mask, fh, fw, stride, 64, EW_CUT_SAMPLE_PLAIN, &r, idx, &kp,
                                                    &plain);
            assert_int_equal(plain, 1);
            assert_int_equal(kp, 0);
            assert_int_equal(np2, np);
            for (int i = 0; i < np2; i++)
                for (int j = 0; j < i; j++) assert_true(idx[j] != idx[i]);
        }
    }
    /* the 8x8 map of stride 4 has few particle locations: all of them are taken */
    {
        ew_rng_t r;
        ew_rng_init(&r, 6, 0);
        int32_t idx[64];
        int kp, plain;
        int n = ew_cut_sample_locations(mask, 8, 8, 4, 64, EW_CUT_SAMPLE_MASK, &r, idx, &kp, &plain);
        int npart = 0;
        for (int p = 0; p < 64; p++) npart += mask[(4 * (p / 8) + 2) * W + 4 * (p % 8) + 2];
        assert_int_equal(n, 64);
        assert_int_equal(kp, npart);
    }
    /* an empty mask falls back to plain sampling */
    uint8_t none[H * W] = {0};
    ew_rng_t r;
    ew_rng_init(&r, 7, 0);
    int32_t idx[16];
    int kp, plain;
    ew_cut_sample_locations(none, H, W, 1, 16, EW_CUT_SAMPLE_MASK, &r, idx, &kp, &plain);
    assert_int_equal(plain, 1);
    /* crop origins respect the particle fraction */
    ew_cut_set_t s;
    ew_cut_set_init(&s);
    float img[H * W];
    for (int i = 0; i < H * W; i++) img[i] = (float)sin(i * 0.1) + (float)i * 1e-3f;
    assert_ok(ew_cut_set_add(&s, img, mask, NULL, W, H));
    for (int t = 0; t < 50; t++) {
        int x0, y0;
        ew_cut_crop_origin(&s.img[0], 16, 0.2, &r, &x0, &y0);
        assert_true(x0 >= 0 && y0 >= 0 && x0 <= W - 16 && y0 <= H - 16);
        int k = 0;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) k += mask[(y0 + y) * W + x0 + x];
        assert_true(k >= 0.2 * 256);
    }
    ew_cut_set_free(&s);
}

static void test_content_metric(void **state)
{
    (void)state;
    enum { W = 24, H = 20 };
    float a[W * H], b[W * H], c[W * H];
    uint8_t m[W * H];
    for (int i = 0; i < W * H; i++) {
        a[i] = (float)sin(0.3 * (i % W)) + (float)cos(0.2 * (i / W));
        b[i] = 3.0f * a[i] + 1.0f;
        c[i] = -a[i];
        m[i] = (i % W) > 5;
    }
    assert_close(ew_cut_masked_lowpass_corr(a, b, m, W, H, 1.5), 1.0, 1e-6, 1e-6);
    assert_close(ew_cut_masked_lowpass_corr(a, c, m, W, H, 1.5), -1.0, 1e-6, 1e-6);
    assert_close(ew_cut_masked_lowpass_corr(a, b, NULL, W, H, 0.0), 1.0, 1e-6, 1e-6);
    /* unblurred: equals the plain Pearson correlation over the mask */
    for (int i = 0; i < W * H; i++) c[i] = (float)cos(0.7 * i);
    double sa = 0, sc = 0, k = 0;
    for (int i = 0; i < W * H; i++)
        if (m[i]) sa += a[i], sc += c[i], k++;
    double ac = 0, aa = 0, cc = 0;
    for (int i = 0; i < W * H; i++)
        if (m[i]) {
            double da = a[i] - sa / k, dc = c[i] - sc / k;
            ac += da * dc, aa += da * da, cc += dc * dc;
        }
    assert_close(ew_cut_masked_lowpass_corr(a, c, m, W, H, 0.0), ac / sqrt(aa * cc), 1e-5, 1e-6);
    memset(m, 0, sizeof(m));
    assert_true(isnan(ew_cut_masked_lowpass_corr(a, b, m, W, H, 1.0)));
}

/* ---- tiny training ---- */

static void make_sets(ew_cut_set_t *sim, ew_cut_set_t *real)
{
    enum { N = 48 };
    ew_cut_set_init(sim);
    ew_cut_set_init(real);
    ew_rng_t r;
    for (int k = 0; k < 3; k++) {
        float img[N * N], cln[N * N];
        uint8_t mk[N * N];
        ew_rng_init(&r, 11, (uint64_t)k);
        const double cx = urand(&r, 14, 34), cy = urand(&r, 14, 34);
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++) {
                const double r2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
                cln[y * N + x] = (float)exp(-r2 / 50.0);
                mk[y * N + x] = r2 < 100;
                img[y * N + x] = cln[y * N + x] + 0.3f * (float)ew_rng_normal(&r);
            }
        assert_ok(ew_cut_set_add(sim, img, mk, cln, N, N));
        /* "real": smoother, correlated noise */
        float rl[N * N];
        for (int i = 0; i < N * N; i++) rl[i] = (float)ew_rng_normal(&r);
        for (int y = 0; y < N; y++)
            for (int x = N - 1; x > 0; x--) rl[y * N + x] = 0.6f * rl[y * N + x] + 0.8f * rl[y * N + x - 1];
        assert_ok(ew_cut_set_add(real, rl, NULL, NULL, N, N));
    }
}

static void test_tiny_training(void **state)
{
    (void)state;
    ew_cut_set_t sim, real;
    make_sets(&sim, &real);
    ew_cut_config_t c = tiny_config();
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", ew_test_tmpfile("cut_run"));
    c.outdir = dir;
    c.sample_every = 20;
    c.checkpoint_every = 20;
    ew_cut_model_t *m = NULL;
    ew_cut_metrics_t met;
    assert_ok(ew_cut_train(&c, &sim, &real, &m, &met));
    assert_non_null(m);
    assert_non_null(met.history);
    for (int i = 0; i < 3 * 40; i++) assert_true(isfinite(met.history[i]));
    /* the losses fall: NCE (the content term) and the discriminator's */
    print_message("  loss D %.4f -> %.4f, G_GAN %.4f -> %.4f, NCE %.4f -> %.4f\n", met.loss_d_first, met.loss_d_last,
                  met.loss_gan_first, met.loss_gan_last, met.loss_nce_first, met.loss_nce_last);
    assert_true(met.loss_nce_last < met.loss_nce_first);
    assert_true(met.loss_d_last < met.loss_d_first);
    assert_true(met.loss_gan_last < met.loss_gan_first);
    assert_true(isfinite(met.psd_translated) && isfinite(met.content_translated));
    assert_true(met.content_crops > 0);
    /* outputs: finite, the input's size */
    float x[40 * 36], y[40 * 36];
    for (int i = 0; i < 40 * 36; i++) x[i] = sim.img[0].z[i] * 5.0f + 2.0f;
    assert_ok(ew_cut_translate_image(m, x, 40, 36, 32, 4, y));
    for (int i = 0; i < 40 * 36; i++) assert_true(isfinite(y[i]));
    /* checkpoint round trip: same translation */
    char path[4096];
    snprintf(path, sizeof(path), "%s/cut.safetensors", dir);
    ew_cut_model_t *m2;
    assert_ok(ew_cut_model_load(path, &m2));
    float y2[40 * 36];
    assert_ok(ew_cut_translate_image(m2, x, 40, 36, 32, 4, y2));
    assert_memory_equal(y, y2, sizeof(y));
    ew_cut_model_free(m2);
    /* sample PNGs and metrics were written */
    char f[4200];
    snprintf(f, sizeof(f), "%s/samples/step_0000020.png", dir);
    assert_true(access(f, 0) == 0);
    snprintf(f, sizeof(f), "%s/samples/step_0000040.png", dir);
    assert_true(access(f, 0) == 0);
    snprintf(f, sizeof(f), "%s/metrics.json", dir);
    assert_true(access(f, 0) == 0);
    /* apply on an MRC file */
    char in[4200], out[4200], png[4200];
    snprintf(in, sizeof(in), "%s/in.mrc", dir);
    snprintf(out, sizeof(out), "%s/out.mrc", dir);
    snprintf(png, sizeof(png), "%s/out.png", dir);
    assert_ok(ew_mrc_write(in, x, 40, 36, 1, 2.0, NULL, 1, EW_MRC_FLOAT32));
    const char *ins[1] = {in}, *outs[1] = {out}, *pngs[1] = {png};
    assert_ok(ew_cut_apply_files(m, ins, outs, pngs, 1));
    assert_ok(ew_cut_translate_image(m, x, 40, 36, 256, 32, y)); /* apply's tiling */
    ew_mrc_t o;
    assert_ok(ew_mrc_read(out, &o));
    assert_int_equal(o.nx, 40);
    assert_int_equal(o.ny, 36);
    assert_close(o.pixel_size[0], 2.0, 1e-6, 1e-6);
    for (int i = 0; i < 40 * 36; i++) assert_true(o.data[i] == y[i]);
    ew_mrc_free(&o);
    ew_free(met.history);
    ew_cut_model_free(m);
    ew_cut_set_free(&sim);
    ew_cut_set_free(&real);
}

static void test_exact_resume(void **state)
{
    (void)state;
    ew_cut_set_t sim, real;
    make_sets(&sim, &real);
    ew_cut_config_t c = tiny_config();
    c.steps = 8;
    c.sampling = EW_CUT_SAMPLE_PLAIN;
    c.nce_idt = 1; /* CUT mode and CUT's plain tanh output also exercised */
    c.identity_skip = 0;
    c.lambda_nce = 1.0;
    ew_cut_model_t *full, *part, *res;
    assert_ok(ew_cut_train(&c, &sim, &real, &full, NULL));
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", ew_test_tmpfile("cut_resume"));
    c.outdir = dir;
    c.steps = 5;
    assert_ok(ew_cut_train(&c, &sim, &real, &part, NULL));
    char path[4200];
    snprintf(path, sizeof(path), "%s/cut.safetensors", dir);
    c.outdir = NULL;
    c.steps = 8;
    c.resume = path;
    assert_ok(ew_cut_train(&c, &sim, &real, &res, NULL));
    assert_int_equal(res->P.step, 8);
    assert_int_equal(full->P.n_total, res->P.n_total);
    assert_memory_equal(full->P.data, res->P.data, sizeof(float) * full->P.n_total);
    ew_cut_model_free(full);
    ew_cut_model_free(part);
    ew_cut_model_free(res);
    /* bad arguments name the field */
    c.resume = NULL;
    c.crop = 30;
    assert_int_equal(ew_cut_train(&c, &sim, &real, NULL, NULL), EW_ERR_ARG);
    c.crop = 64; /* larger than the 48-pixel images */
    assert_int_equal(ew_cut_train(&c, &sim, &real, NULL, NULL), EW_ERR_ARG);
    ew_cut_set_free(&sim);
    ew_cut_set_free(&real);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_scatter_adjoint), cmocka_unit_test(test_patchnce_grad),
        cmocka_unit_test(test_network_gradients),      cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_content_metric),         cmocka_unit_test(test_tiny_training),
        cmocka_unit_test(test_exact_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
