/* Tests of the self-supervised XFEL model (src/recon/ssl.h): every
 * derivative of the kernels against central finite differences in double,
 * slicing and its adjoint against physics/slice.h, Friedel symmetry,
 * checkpoint round trip and exact resume, and a tiny training run that
 * must beat uniformly random orientations by a wide margin. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/rng.h"
#include "geom/geom.h"
#include "physics/detector.h"
#include "physics/slice.h"
#include "physics/xfel_sim.h"
#include "recon/ssl.h"
#include "recon/ssl_impl.h"
#include "recon/ssl_kernels.h"
#include "eval/orient.h"
#include "testutil.h"


static double urand(ew_rng_t *r, double lo, double hi) { return lo + (hi - lo) * ew_rng_uniform(r); }

/* d6 -> R backward against finite differences of L = sum W_ij R_ij */
static void test_rot6d_backward(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 1, 0);
    for (int trial = 0; trial < 20; trial++) {
        double d6[6], W[9], g[6];
        for (int i = 0; i < 6; i++) d6[i] = urand(&r, -2, 2);
        for (int i = 0; i < 9; i++) W[i] = urand(&r, -1, 1);
        ew_ssl_rot6d_backward(d6, W, g);
        for (int i = 0; i < 6; i++) {
            double h = 1e-6, Lp = 0, Lm = 0, R[9];
            double dp[6], dm[6];
            memcpy(dp, d6, sizeof dp);
            memcpy(dm, d6, sizeof dm);
            dp[i] += h;
            dm[i] -= h;
            ew_rot6d_to_mat(dp, R);
            for (int k = 0; k < 9; k++) Lp += W[k] * R[k];
            ew_rot6d_to_mat(dm, R);
            for (int k = 0; k < 9; k++) Lm += W[k] * R[k];
            assert_close(g[i], (Lp - Lm) / (2 * h), 1e-6, 1e-8);
        }
    }
}

/* a random smooth-ish double grid and its float copy */
static void random_grid(double *gd, float *gf, int n, uint64_t seed)
{
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    size_t N = (size_t)n * n * n;
    for (size_t i = 0; i < N; i++) {
        gd[i] = urand(&r, 0.0, 3.0);
        if (gf) gf[i] = (float)gd[i];
    }
}

/* Trilinear value against ew_slice_trilinear; spatial gradient against
 * finite differences; adjoint against ew_merge_trilinear. */
static void test_trilinear(void **state)
{
    (void)state;
    enum { n = 11, NP = 200 };
    size_t N = (size_t)n * n * n;
    double ds = 0.01;
    double *gd = ew_alloc_array(N, sizeof(double));
    float *gf = ew_alloc_array(N, sizeof(float));
    random_grid(gd, gf, n, 5);
    ew_rvol_t v;
    assert_ok(ew_rvol_alloc(&v, n, ds));
    memcpy(v.data, gf, N * sizeof(float));
    ew_rng_t r;
    ew_rng_init(&r, 2, 0);
    float s[3 * NP], ref[NP], vals[NP];
    for (int p = 0; p < 3 * NP; p++) s[p] = (float)urand(&r, -0.045, 0.045);
    double R[9], RT[9];
    ew_quat_to_mat(ew_quat_random(&r), R);
    ew_mat_transpose(R, RT);
    ew_slice_trilinear(&v, R, s, NP, ref);
    for (int p = 0; p < NP; p++) {
        double sv[3] = {s[3 * p], s[3 * p + 1], s[3 * p + 2]}, u[3];
        ew_mat_apply(RT, sv, u);
        float g[3];
        float val = ew_ssl_trilinear_grad(gf, n, ds, u, g);
        assert_close(val, ref[p], 1e-5, 1e-5);
        vals[p] = (float)urand(&r, -1, 1);
        double gdd[3];
        ew_ssl_trilinear_grad_d(gd, n, ds, u, gdd);
        for (int a = 0; a < 3; a++) {
            double h = 1e-7, up[3], um[3], tmp[3];
            memcpy(up, u, sizeof up);
            memcpy(um, u, sizeof um);
            up[a] += h;
            um[a] -= h;
            double fd = (ew_ssl_trilinear_grad_d(gd, n, ds, up, tmp) - ew_ssl_trilinear_grad_d(gd, n, ds, um, tmp)) /
                        (2 * h);
            assert_close(gdd[a], fd, 1e-6, 1e-6);
            assert_close(g[a], gdd[a], 1e-4, 1e-3);
        }
    }
    /* adjoint: the same accumulation as ew_merge_trilinear */
    ew_rvol_t acc;
    assert_ok(ew_rvol_alloc(&acc, n, ds));
    ew_merge_trilinear(&acc, NULL, R, s, NP, vals, 1.0f);
    float *mine = ew_calloc_array(N, sizeof(float));
    for (int p = 0; p < NP; p++) {
        double sv[3] = {s[3 * p], s[3 * p + 1], s[3 * p + 2]}, u[3];
        ew_mat_apply(RT, sv, u);
        ew_ssl_trilinear_adjoint(mine, n, ds, u, vals[p]);
    }
    for (size_t i = 0; i < N; i++) assert_close(mine[i], acc.data[i], 1e-5, 1e-5);
    /* outside the grid: zero value, gradient and no accumulation */
    double far[3] = {1.0, 0, 0};
    float g[3];
    assert_true(ew_ssl_trilinear_grad(gf, n, ds, far, g) == 0.0f && g[0] == 0.0f);
    ew_free(mine);
    ew_rvol_free(&acc);
    ew_rvol_free(&v);
    ew_free(gd);
    ew_free(gf);
}

/* Friedel symmetrisation: G(s) = G(-s); smoothness gradient against finite
 * differences. */
static void test_friedel_smooth(void **state)
{
    (void)state;
    enum { n = 7 };
    size_t N = (size_t)n * n * n;
    double *g = ew_alloc_array(N, sizeof(double)), *G = ew_alloc_array(N, sizeof(double));
    double *dg = ew_calloc_array(N, sizeof(double));
    random_grid(g, NULL, n, 9);
    ew_ssl_friedel_d(G, g, n, 0.5);
    int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                size_t j = ((size_t)(2 * c - z) * n + (2 * c - y)) * n + (2 * c - x);
                assert_close(G[i], G[j], 1e-15, 0);
                assert_close(G[i], 0.5 * (g[i] + g[j]), 1e-15, 0);
            }
    double lam = 0.3;
    ew_ssl_smooth_d(g, n, lam, dg);
    for (size_t i = 0; i < N; i += 17) {
        double h = 1e-6, o = g[i];
        g[i] = o + h;
        double Lp = ew_ssl_smooth_d(g, n, lam, NULL);
        g[i] = o - h;
        double Lm = ew_ssl_smooth_d(g, n, lam, NULL);
        g[i] = o;
        assert_close(dg[i], (Lp - Lm) / (2 * h), 1e-6, 1e-10);
    }
    /* a constant grid has no roughness */
    for (size_t i = 0; i < N; i++) g[i] = 2.0;
    assert_close(ew_ssl_smooth_d(g, n, lam, NULL), 0.0, 0, 1e-15);
    ew_free(g);
    ew_free(G);
    ew_free(dg);
}

/* Per-pixel rendering: derivatives in f and m for both losses, and the
 * scale's softplus. */
static void test_render_pixel(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 3, 0);
    for (int poisson = 0; poisson < 2; poisson++)
        for (int t = 0; t < 50; t++) {
            double f = urand(&r, 0.05, 4), m = urand(&r, 0.3, 2), k = urand(&r, 0.5, 1.5);
            double cnt = (double)ew_rng_poisson(&r, 1.0), c = 100, x = log1p(c * cnt);
            double df, dm, a, b, h = 1e-6;
            ew_ssl_render_pixel(poisson, f, m, k, x, cnt, c, &df, &dm);
            double fd_f = (ew_ssl_render_pixel(poisson, f + h, m, k, x, cnt, c, &a, &b) -
                           ew_ssl_render_pixel(poisson, f - h, m, k, x, cnt, c, &a, &b)) /
                          (2 * h);
            double fd_m = (ew_ssl_render_pixel(poisson, f, m + h, k, x, cnt, c, &a, &b) -
                           ew_ssl_render_pixel(poisson, f, m - h, k, x, cnt, c, &a, &b)) /
                          (2 * h);
            assert_close(df, fd_f, 1e-6, 1e-7);
            assert_close(dm, fd_m, 1e-6, 1e-7);
        }
    /* MSE loss is zero at the matching value: y = log(a m + 1) = x */
    double df, dm;
    double f = log1p(3.0);
    assert_close(ew_ssl_render_pixel(0, f, 2.0, 1.0, log1p(6.0), 0, 100, &df, &dm), 0.0, 0, 1e-12);
    assert_close(df, 0.0, 0, 1e-12);
    double dmdh;
    assert_close(ew_ssl_scale_of(0.0, &dmdh), 1.0, 1e-9, 0);
    double h = 1e-6;
    assert_close(dmdh, (ew_ssl_scale_of(h, NULL) - ew_ssl_scale_of(-h, NULL)) / (2 * h), 1e-7, 0);
}

/* The fused per-pattern loss: gradients with respect to grid values, the
 * 6D rotation (through R) and the scale, against finite differences. */
static void test_pattern_grid(void **state)
{
    (void)state;
    enum { n = 13, NP = 150 };
    size_t N = (size_t)n * n * n;
    double ds = 0.01;
    double *g = ew_alloc_array(N, sizeof(double)), *dg = ew_alloc_array(N, sizeof(double));
    random_grid(g, NULL, n, 11);
    ew_rng_t r;
    ew_rng_init(&r, 4, 0);
    float s[3 * NP], x[NP], cnt[NP], k[NP];
    int idx[NP];
    for (int p = 0; p < NP; p++) {
        for (int a = 0; a < 3; a++) s[3 * p + a] = (float)urand(&r, -0.05, 0.05);
        cnt[p] = (float)ew_rng_poisson(&r, 2.0);
        x[p] = log1pf(10.0f * cnt[p]);
        k[p] = (float)urand(&r, 0.8, 1.2);
        idx[p] = NP - 1 - p;
    }
    for (int poisson = 0; poisson < 2; poisson++) {
        double d6[6];
        for (int i = 0; i < 6; i++) d6[i] = urand(&r, -1, 1);
        double R[9], dR[9], dm, m = 1.3, c = 10, w = 1.0 / NP;
        ew_rot6d_to_mat(d6, R);
        memset(dg, 0, N * sizeof(double));
        ew_ssl_pattern_grid_d(g, n, ds, R, s, idx, NP, x, cnt, k, m, c, poisson, w, dg, dR, &dm);
        double dd6[6];
        ew_ssl_rot6d_backward(d6, dR, dd6);
        double h = 1e-6, a[9], b;
#define LOSS_AT(D6, M) \
    (ew_rot6d_to_mat(D6, a), ew_ssl_pattern_grid_d(g, n, ds, a, s, idx, NP, x, cnt, k, M, c, poisson, w, NULL, a, &b))
        for (int i = 0; i < 6; i++) {
            double p6[6], m6[6];
            memcpy(p6, d6, sizeof p6);
            memcpy(m6, d6, sizeof m6);
            p6[i] += h;
            m6[i] -= h;
            double Lp = LOSS_AT(p6, m);
            double Lm = LOSS_AT(m6, m);
            assert_close(dd6[i], (Lp - Lm) / (2 * h), 1e-5, 1e-8);
        }
        double Lp = LOSS_AT(d6, m + h), Lm = LOSS_AT(d6, m - h);
        assert_close(dm, (Lp - Lm) / (2 * h), 1e-6, 1e-9);
        int checked = 0;
        for (size_t i = 0; i < N; i += 7) {
            if (dg[i] == 0.0) continue;
            double o = g[i];
            g[i] = o + h;
            Lp = LOSS_AT(d6, m);
            g[i] = o - h;
            Lm = LOSS_AT(d6, m);
            g[i] = o;
            assert_close(dg[i], (Lp - Lm) / (2 * h), 1e-5, 1e-9);
            checked++;
        }
        assert_true(checked > 10);
#undef LOSS_AT
    }
    ew_free(g);
    ew_free(dg);
}

/* ------------------------------------------------ model-level tests */

typedef struct {
    ew_atoms_t atoms;
    ew_detector_t det;
    ew_rvol_t W;
    size_t n, npix;
    float *data, *expected;
    ew_quat_t *q;
    double *fl;
} sim_t;

static ew_status_t sim_sink(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    sim_t *s = ctx;
    for (size_t k = 0; k < count; k++) {
        size_t i = p[k].index;
        memcpy(s->data + i * s->npix, p[k].data, s->npix * sizeof(float));
        memcpy(s->expected + i * s->npix, p[k].expected, s->npix * sizeof(float));
        s->q[i] = p[k].quat;
        s->fl[i] = p[k].fluence_mult;
    }
    return EW_OK;
}

/* A random compact "protein" of 400 atoms (radius 18 A), 32x32 reference
 * detector with a beam stop, fluence x100 with spread 0.5, Poisson and
 * readout noise: no shared data needed. */
static void sim_init_fluence(sim_t *s, size_t n, double fluence)
{
    memset(s, 0, sizeof *s);
    enum { NA = 400 };
    static const uint8_t el[4] = {6, 7, 8, 16};
    float xyz[3 * NA];
    uint8_t z[NA];
    ew_rng_t r;
    ew_rng_init(&r, 21, 0);
    for (int j = 0; j < NA; j++) {
        double p[3], d2;
        do {
            d2 = 0;
            for (int k = 0; k < 3; k++) {
                p[k] = (2 * ew_rng_uniform(&r) - 1) * 18.0;
                d2 += p[k] * p[k];
            }
            /* an elongated body so orientations are well defined */
            d2 = d2 + 1.5 * p[2] * p[2] - 0.5 * p[0] * p[0];
        } while (d2 > 324.0);
        for (int k = 0; k < 3; k++) xyz[3 * j + k] = (float)p[k];
        z[j] = el[j % 4];
    }
    assert_ok(ew_atoms_init(&s->atoms, NA, xyz, z, NULL, NULL, NULL, NULL));
    ew_atoms_center(&s->atoms);
    ew_detector_config_t dc = ew_detector_config_reference();
    dc.nx = dc.ny = 32;
    dc.pixel_m = 0.1 / 32;
    dc.beamstop_radius_px = 1.5;
    assert_ok(ew_detector_init(&s->det, &dc));
    ew_xfel_config_t cfg = ew_xfel_config_reference();
    cfg.fluence_factor = fluence;
    cfg.fluence_dist = EW_FLUENCE_GAMMA;
    cfg.fluence_spread = 0.5;
    cfg.readout_sigma = 0.1;
    cfg.n_patterns = n;
    cfg.seed = 5;
    cfg.keep_expected = 1;
    int vn;
    double vds;
    ew_detector_volume_grid(&s->det, 0, &vn, &vds);
    assert_ok(ew_xfel_photon_volume(&s->atoms, vn, vds, ew_xfel_fluence(&cfg), NULL, &s->W));
    s->n = n;
    s->npix = s->det.npix;
    s->data = ew_alloc_array(n * s->npix, sizeof(float));
    s->expected = ew_alloc_array(n * s->npix, sizeof(float));
    s->q = ew_alloc_array(n, sizeof(ew_quat_t));
    s->fl = ew_alloc_array(n, sizeof(double));
    assert_non_null(s->data);
    assert_ok(ew_xfel_simulate(&cfg, &s->det, &s->W, NULL, sim_sink, s, NULL));
}

static void sim_init(sim_t *s, size_t n) { sim_init_fluence(s, n, 100); }

static void sim_free(sim_t *s)
{
    ew_atoms_free(&s->atoms);
    ew_detector_free(&s->det);
    ew_rvol_free(&s->W);
    ew_free(s->data);
    ew_free(s->expected);
    ew_free(s->q);
    ew_free(s->fl);
}

static ew_ssl_data_t sim_data(const sim_t *s)
{
    ew_ssl_data_t d = {.n = s->n, .nx = s->det.nx, .ny = s->det.ny, .data = s->data, .expected = s->expected,
                       .s = s->det.s, .mask = s->det.mask, .s_max_edge = s->det.s_max_edge, .q_true = s->q,
                       .fluence_true = s->fl};
    return d;
}

/* Presets and argument errors. */
static void test_config(void **state)
{
    (void)state;
    ew_ssl_config_t c;
    for (const ew_ssl_preset_t *p = ew_ssl_presets(); p->name; p++) assert_ok(ew_ssl_config_preset(&c, p->name));
    assert_int_equal(ew_ssl_config_preset(&c, "nonsense"), EW_ERR_ARG);
    assert_ok(ew_ssl_config_preset(&c, "paper"));
    assert_int_equal(c.decoder, EW_SSL_DEC_SIREN_PIXEL);
    assert_int_equal(c.siren_hidden, 256);
    assert_int_equal(c.siren_layers, 5);
    sim_t s;
    sim_init(&s, 64);
    ew_ssl_data_t d = sim_data(&s);
    ew_ssl_model_t *m;
    ew_ssl_config_default(&c);
    c.enc_size = 12; /* does not divide 32 */
    assert_int_equal(ew_ssl_model_create(&c, &d, &m), EW_ERR_ARG);
    assert_null(m);
    ew_ssl_config_default(&c);
    c.batch = 128; /* more than the patterns */
    assert_ok(ew_ssl_model_create(&c, &d, &m));
    ew_ssl_history_t h;
    assert_int_equal(ew_ssl_train(m, &d, &h), EW_ERR_ARG);
    ew_ssl_model_free(m);
    sim_free(&s);
}

/* Training k steps in one go equals k/2 steps, a checkpoint, and k/2 more
 * from it; a saved model reloads and predicts the same rotations. */
static void test_resume_and_reload(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 96);
    ew_ssl_data_t d = sim_data(&s);
    char ck[512], mp[512];
    snprintf(ck, sizeof ck, "%s", ew_test_tmpfile("ssl_ckpt.safetensors"));
    snprintf(mp, sizeof mp, "%s", ew_test_tmpfile("ssl_model.safetensors"));
    ew_ssl_config_t c;
    ew_ssl_config_default(&c);
    c.enc_width = 8;
    c.scale_width = 4;
    c.enc_size = 16;
    c.grid_n = 15;
    c.batch = 8;
    c.epochs = 1; /* 12 steps */
    /* the EMC start, shrunk: 16 x 16 super-pixels, 600-cell level 1 (60
     * rotations), 2 iterations, one merge round; the pseudo-labels travel
     * with the checkpoint so the resumed run continues exactly */
    c.emc_size = 16;
    c.emc_level_lo = c.emc_level_hi = 1;
    c.emc_iters = 2;
    c.refine_rounds = 1;
    c.progress = 0;
    ew_ssl_model_t *a, *b;
    assert_ok(ew_ssl_model_create(&c, &d, &a));
    assert_ok(ew_ssl_train(a, &d, NULL));
    assert_int_equal(ew_ssl_model_step(a), 12);
    c.ckpt_path = ck;
    c.max_steps = 5;
    assert_ok(ew_ssl_model_create(&c, &d, &b));
    assert_ok(ew_ssl_train(b, &d, NULL));
    assert_int_equal(ew_ssl_model_step(b), 5);
    ew_ssl_model_free(b);
    c.max_steps = 0;
    assert_ok(ew_ssl_model_create(&c, &d, &b));
    assert_ok(ew_ssl_train(b, &d, NULL)); /* resumes at step 5 */
    assert_int_equal(ew_ssl_model_step(b), 12);
    ew_quat_t qa[96], qb[96];
    assert_ok(ew_ssl_pseudo_labels(a, qa, 96));
    assert_ok(ew_ssl_pseudo_labels(b, qb, 96));
    for (int i = 0; i < 96; i++) assert_true(ew_quat_angle(qa[i], qb[i]) < 1e-9);
    double sa[96], sb[96];
    assert_ok(ew_ssl_infer(a, &d, qa, sa));
    assert_ok(ew_ssl_infer(b, &d, qb, sb));
    for (int i = 0; i < 96; i++) {
        assert_true(ew_quat_angle(qa[i], qb[i]) < 1e-6);
        assert_close(sa[i], sb[i], 1e-6, 0);
    }
    assert_ok(ew_ssl_model_save(a, mp, 0));
    ew_ssl_model_t *l;
    assert_ok(ew_ssl_model_load(mp, &d, &l));
    assert_ok(ew_ssl_infer(l, &d, qb, sb));
    for (int i = 0; i < 96; i++) {
        assert_true(ew_quat_angle(qa[i], qb[i]) < 1e-6);
        assert_close(sa[i], sb[i], 1e-6, 0);
    }
    ew_rvol_t va, vl;
    assert_ok(ew_ssl_volume(a, &va));
    assert_ok(ew_ssl_volume(l, &vl));
    for (size_t i = 0; i < (size_t)va.n * va.n * va.n; i++) assert_close(va.data[i], vl.data[i], 1e-6, 1e-12);
    ew_rvol_free(&va);
    ew_rvol_free(&vl);
    ew_ssl_model_free(l);
    assert_int_equal(ew_ssl_model_load("/nonexistent/m.safetensors", &d, &l), EW_ERR_IO);
    assert_null(l);
    ew_ssl_model_free(a);
    ew_ssl_model_free(b);
    assert_int_equal(ew_test_count_temporaries(), 0);
    sim_free(&s);
}

/* End to end: the directional derivative of the whole loss (encoders, 6D
 * head, Gram-Schmidt, slicing, rendering, decoder) along the gradient of
 * each parameter group against a central difference, for every decoder. */
static void test_end_to_end_gradient(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 16);
    ew_ssl_data_t d = sim_data(&s);
    size_t items[4] = {3, 7, 11, 2};
    for (int dec = 0; dec < 3; dec++)
        for (int poisson = 0; poisson < 2; poisson++) {
            ew_ssl_config_t c;
            ew_ssl_config_default(&c);
            c.enc_width = 8;
            c.scale_width = 4;
            c.enc_size = 16;
            c.grid_n = 15;
            c.decoder = (ew_ssl_decoder_t)dec;
            c.siren_hidden = 16;
            c.siren_layers = 2;
            c.loss = poisson ? EW_SSL_LOSS_POISSON : EW_SSL_LOSS_MSE;
            c.smooth = 0.05;
            c.emc_size = 0;
            ew_ssl_model_t *m;
            assert_ok(ew_ssl_model_create(&c, &d, &m));
            if (dec == 0) { /* a structured grid (not the radial init) */
                float *g = ew_params_data(&m->P, m->i_grid);
                ew_rng_t r;
                ew_rng_init(&r, 8, 0);
                for (size_t i = 0; i < m->P.p[m->i_grid].count; i++) g[i] = (float)(urand(&r, 0.5, 3.0) / m->grid_k);
            }
            double L0;
            assert_ok(ew_ssl_loss_grad(m, &d, items, 4, 0, &L0));
            size_t nt = m->P.n_train;
            float *g = ew_alloc_array(nt, sizeof(float)), *p0 = ew_alloc_array(nt, sizeof(float));
            memcpy(g, m->P.grad, nt * sizeof(float));
            memcpy(p0, m->P.data, nt * sizeof(float));
            /* parameter groups: orientation encoder, scale encoder, decoder */
            const char *pref[3] = {"orient.", "scale.", "decoder."};
            for (int grp = 0; grp < 3; grp++) {
                double gg = 0.0;
                for (size_t t = 0; t < m->P.n; t++) {
                    const ew_param_t *pp = &m->P.p[t];
                    if (pp->kind != EW_PARAM_WEIGHT || strncmp(pp->name, pref[grp], strlen(pref[grp])) != 0) continue;
                    for (size_t i = 0; i < pp->count; i++) gg += (double)g[pp->offset + i] * g[pp->offset + i];
                }
                if (gg == 0.0) continue;
                double nrm = sqrt(gg), h = 2e-4, Lpm[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    memcpy(m->P.data, p0, nt * sizeof(float));
                    for (size_t t = 0; t < m->P.n; t++) {
                        const ew_param_t *pp = &m->P.p[t];
                        if (pp->kind != EW_PARAM_WEIGHT || strncmp(pp->name, pref[grp], strlen(pref[grp])) != 0)
                            continue;
                        for (size_t i = 0; i < pp->count; i++)
                            m->P.data[pp->offset + i] += (float)((sgn ? -h : h) * g[pp->offset + i] / nrm);
                    }
                    assert_ok(ew_ssl_loss_grad(m, &d, items, 4, 0, &Lpm[sgn]));
                }
                double fd = (Lpm[0] - Lpm[1]) / (2 * h);
                if (fabs(nrm - fd) > 0.03 * fabs(fd) + 1e-7)
                    fprintf(stderr, "decoder %d loss %d group %s: analytic %.6g, difference %.6g\n", dec, poisson,
                            pref[grp], nrm, fd);
                assert_close(nrm, fd, 0.03, 1e-7);
            }
            memcpy(m->P.data, p0, nt * sizeof(float));
            ew_free(g);
            ew_free(p0);
            ew_ssl_model_free(m);
        }
    sim_free(&s);
}

typedef struct {
    size_t npix;
    float *data;
    ew_quat_t *q;
} pdb_sink_t;

static ew_status_t pdb_sink(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    pdb_sink_t *s = ctx;
    for (size_t k = 0; k < count; k++) {
        memcpy(s->data + p[k].index * s->npix, p[k].data, s->npix * sizeof(float));
        s->q[p[k].index] = p[k].quat;
    }
    return EW_OK;
}

/* Conventions of rendering and search end to end: with the decoder set to
 * the true volume of 2cex (shared data; skipped if absent), 32 x 32
 * pixels at fluence x100 with Poisson noise, the exhaustive search
 * (600-cell level 5, Poisson likelihood on all pixels) recovers the
 * simulator's orientations (random: median ~132 degrees). */
static void test_search_true_volume(void **state)
{
    (void)state;
    const char *path = ew_test_data("pdb/2cex.pdb");
    if (!path) skip();
    enum { NP = 30 };
    ew_xfel_setup_t su;
    memset(&su, 0, sizeof su);
    su.structure_path = path;
    su.detector = ew_detector_config_reference();
    su.detector.nx = su.detector.ny = 32;
    su.detector.pixel_m = 0.1 / 32;
    su.detector.beamstop_radius_px = 1.2;
    su.sim = ew_xfel_config_reference();
    su.sim.fluence_factor = 100;
    su.sim.n_patterns = NP;
    su.sim.seed = 9;
    ew_xfel_model_t xm;
    assert_ok(ew_xfel_model_build(&su, &xm));
    static float data[NP * 32 * 32];
    ew_quat_t qt[NP], q[NP];
    pdb_sink_t ps = {xm.det.npix, data, qt};
    assert_ok(ew_xfel_simulate(&su.sim, &xm.det, &xm.W, NULL, pdb_sink, &ps, NULL));
    ew_ssl_data_t d = {.n = NP, .nx = 32, .ny = 32, .data = data, .s = xm.det.s, .mask = xm.det.mask,
                       .corr = xm.det.corr};
    ew_ssl_config_t c;
    ew_ssl_config_default(&c);
    c.enc_size = 32;
    c.enc_width = 4;
    c.scale_width = 4;
    c.search_level = 5;
    ew_ssl_model_t *m;
    assert_ok(ew_ssl_model_create(&c, &d, &m));
    assert_ok(ew_ssl_model_set_volume(m, &xm.W));
    /* the volume comes back as set (up to the grid resampling) */
    ew_rvol_t v;
    assert_ok(ew_ssl_volume(m, &v));
    double u[3] = {0.01, -0.02, 0.015};
    float g[3];
    assert_close(ew_ssl_trilinear_grad(v.data, v.n, v.ds, u, g),
                 ew_ssl_trilinear_grad(xm.W.data, xm.W.n, xm.W.ds, u, g), 0.15, 0);
    ew_rvol_free(&v);
    assert_ok(ew_ssl_search(m, &d, q));
    ew_orient_err_t oe;
    assert_ok(ew_orient_error(qt, q, NP, NULL, &oe));
    fprintf(stderr, "search against the true volume: median %.1f deg, 90%% %.1f deg\n", oe.median_deg, oe.p90_deg);
    assert_true(oe.median_deg < 30.0);
    ew_orient_err_free(&oe);
    /* local refinement from the truth turned by 8 degrees about random
     * axes comes back near the truth (photon-counted Poisson likelihood;
     * without the counting, readout noise pulls it ~10 degrees away) */
    ew_rng_t r;
    ew_rng_init(&r, 77, 0);
    for (int i = 0; i < NP; i++) {
        double ax[3] = {ew_rng_normal(&r), ew_rng_normal(&r), ew_rng_normal(&r)};
        double nn = sqrt(ax[0] * ax[0] + ax[1] * ax[1] + ax[2] * ax[2]), h = 4.0 * EW_PI / 180.0;
        ew_quat_t dq = {cos(h), sin(h) * ax[0] / nn, sin(h) * ax[1] / nn, sin(h) * ax[2] / nn};
        q[i] = ew_quat_mul(dq, qt[i]);
    }
    double sc[NP];
    assert_ok(ew_ssl_refine(m, &d, q, sc, 0, 4.0));
    assert_ok(ew_orient_error(qt, q, NP, NULL, &oe));
    fprintf(stderr, "refinement from 8 degrees off, true volume: median %.1f deg, 90%% %.1f deg\n", oe.median_deg,
            oe.p90_deg);
    assert_true(oe.median_deg < 4.0);
    for (int i = 0; i < NP; i++) assert_true(sc[i] > 0.2 && sc[i] < 5.0);
    ew_orient_err_free(&oe);
    ew_ssl_model_free(m);
    ew_xfel_model_free(&xm);
}

/* The CI version of the default recipe (the issue: a tiny run must beat
 * uniformly random rotations, median ~132 degrees, by a wide margin): 400
 * patterns of the synthetic body (400 atoms, fluence x1000) at 32 x 32 with fluence jitter, Poisson
 * and readout noise and a beam stop; the EMC start at 600-cell levels
 * 2..3, one merge round, 2 epochs of the networks. The model's
 * orientations (its refined pseudo-labels) must be far better than random,
 * the loss must fall, the scale encoder must follow the fluence, and the
 * shell-centred intensity FSC must reach past half the detector edge. */
static void test_tiny_training(void **state)
{
    (void)state;
    sim_t s;
    sim_init_fluence(&s, 400, 1000);
    ew_ssl_data_t d = sim_data(&s);
    d.corr = s.det.corr;
    double ph = 0;
    for (size_t i = 0; i < d.n * s.npix; i++) ph += d.data[i] > 0.5f ? d.data[i] : 0;
    fprintf(stderr, "tiny training data: %.0f photons per pattern\n", ph / d.n);
    ew_ssl_config_t c;
    ew_ssl_config_default(&c);
    c.enc_size = 16;
    c.enc_width = 8;
    c.scale_width = 4;
    c.emc_size = 32;
    c.emc_level_lo = 2;
    c.emc_level_hi = 3;
    c.emc_iters = 6;
    c.refine_rounds = 1;
    c.epochs = 2;
    c.lr = 1e-3;
    c.progress = 0;
    ew_ssl_model_t *m;
    assert_ok(ew_ssl_model_create(&c, &d, &m));
    ew_ssl_history_t h;
    assert_ok(ew_ssl_train(m, &d, &h));
    ew_ssl_eval_t e;
    assert_ok(ew_ssl_evaluate(m, &d, &s.W, 1, &e));
    double l0 = 0, l1 = 0;
    for (int i = 0; i < 5; i++) {
        l0 += h.log[i].loss;
        l1 += h.log[h.nlog - 1 - i].loss;
    }
    fprintf(stderr, "tiny training: %lld steps in %.1f s, loss %.4g -> %.4g, median %.1f deg (90%% %.1f; twin %.1f; "
                    "from labels %d), encoder %.1f deg, encoder + refinement %.1f deg, scale corr %.3f, "
                    "FSC 0.5 at %.2f of the edge\n",
            (long long)h.steps, h.seconds, l0 / 5, l1 / 5, e.median_deg, e.p90_deg, e.median_twin_deg,
            e.from_labels, e.enc_median_deg, e.orient_median_deg, e.scale_corr, e.fsc_frac_edge);
    assert_true(e.from_labels);
    assert_true(l1 < l0);
    assert_true(e.median_deg < 30.0);
    assert_true(e.scale_corr > 0.5);
    assert_true(e.fsc_frac_edge > 0.5);
    ew_ssl_eval_free(&e);
    ew_ssl_history_free(&h);
    ew_ssl_model_free(m);
    sim_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rot6d_backward), cmocka_unit_test(test_trilinear),
        cmocka_unit_test(test_friedel_smooth), cmocka_unit_test(test_render_pixel),
        cmocka_unit_test(test_pattern_grid),   cmocka_unit_test(test_config),
        cmocka_unit_test(test_resume_and_reload), cmocka_unit_test(test_end_to_end_gradient),
        cmocka_unit_test(test_search_true_volume), cmocka_unit_test(test_tiny_training),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
