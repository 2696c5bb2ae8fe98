/* Tests of recon/em_pose: projection matching recovers simulated poses and
 * shifts (median angular error after handedness-aware alignment, eval/
 * orient.h) at high SNR with CTF, degrades gracefully with noise; the
 * learned pose encoder learns rotations of simulated particles. */
#include "testutil.h"
#include "test_blob.h"

#include <fftw3.h>

#include "eval/orient.h"
#include "geom/geom.h"
#include "physics/specimen.h"
#include "recon/em_pose.h"
#include "recon/em_recon.h"

/* An asymmetric protein-like blob of n atoms. */
/* Simulated particles: projection at pose R, sub-pixel shift, optional
 * CTF (cisTEM sign, as em_sim) and white noise of sd noise. */
static int inplane_only; /* 1: poses are rotations about z (the encoder test) */

static void make_particles(const ew_em_model_t *m, int n, double apix, size_t count, int ctf, double noise,
                           uint64_t seed, float *imgs, ew_em_view_t *v)
{
    int nh = n / 2 + 1;
    float *buf = fftwf_alloc_real((size_t)n * 2 * nh);
    fftwf_complex *F = (fftwf_complex *)buf;
    fftwf_plan pf = fftwf_plan_dft_r2c_2d(n, n, buf, F, FFTW_ESTIMATE);
    fftwf_plan pb = fftwf_plan_dft_c2r_2d(n, n, F, buf, FFTW_ESTIMATE);
    float *ctfh = malloc(sizeof(float) * n * nh);
    for (size_t i = 0; i < count; i++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, i);
        ew_quat_t q = ew_quat_random(&r);
        if (inplane_only) {
            double ax[3] = {0, 0, 1};
            q = ew_quat_from_axis_angle(ax, 2 * EW_PI * ew_rng_uniform(&r));
        }
        ew_quat_to_mat(q, v[i].R);
        v[i].shift[0] = 3.0 * ew_rng_uniform(&r) - 1.5;
        v[i].shift[1] = 3.0 * ew_rng_uniform(&r) - 1.5;
        ew_ctf_params_default(&v[i].ctf);
        v[i].ctf.defocus_u = 8000 + 12000 * ew_rng_uniform(&r);
        v[i].ctf.defocus_v = v[i].ctf.defocus_u - 300 * ew_rng_uniform(&r);
        v[i].ctf.astig_angle_deg = 180 * ew_rng_uniform(&r);
        float *img = imgs + i * (size_t)n * n;
        memset(img, 0, sizeof(float) * n * n);
        ew_peng_project(&m->pot, v[i].R, n / 2 - v[i].shift[0], n / 2 - v[i].shift[1], apix, img, n, n);
        if (ctf) {
            memcpy(buf, img, sizeof(float) * n * n);
            /* r2c in place needs padded rows: copy row by row */
            for (int y = n - 1; y >= 0; y--) memmove(buf + (size_t)y * 2 * nh, img + (size_t)y * n, sizeof(float) * n);
            fftwf_execute(pf);
            ew_ctf_fill_half(&v[i].ctf, n, n, apix, ctfh);
            for (int k = 0; k < n * nh; k++) {
                F[k][0] *= ctfh[k] / (float)(n * n);
                F[k][1] *= ctfh[k] / (float)(n * n);
            }
            fftwf_execute(pb);
            for (int y = 0; y < n; y++) memmove(img + (size_t)y * n, buf + (size_t)y * 2 * nh, sizeof(float) * n);
        }
        if (noise > 0)
            for (int k = 0; k < n * n; k++) img[k] += (float)(noise * ew_rng_normal(&r));
    }
    free(ctfh);
    fftwf_destroy_plan(pf);
    fftwf_destroy_plan(pb);
    fftwf_free(buf);
}

static double median_error(const ew_em_view_t *t, const ew_em_view_t *p, size_t count, int *hand)
{
    ew_quat_t *qt = malloc(sizeof *qt * count), *qp = malloc(sizeof *qp * count);
    for (size_t i = 0; i < count; i++) {
        qt[i] = ew_mat_to_quat(t[i].R);
        qp[i] = ew_mat_to_quat(p[i].R);
    }
    ew_orient_err_t e;
    assert_ok(ew_orient_error(qt, qp, count, NULL, &e));
    double med = e.median_deg;
    if (hand) *hand = e.hand;
    ew_orient_err_free(&e);
    free(qt);
    free(qp);
    return med;
}

static void run_match(double snr, size_t count, double *med, double *shift_err, int *hand)
{
    ew_structure_t s;
    blob_make(&s, 300, 11.0, 5);
    ew_em_model_t m;
    assert_ok(ew_em_model_init(&m, &s, 0.0));
    const int n = 32;
    const double apix = 2.0;
    float *imgs = malloc(sizeof(float) * count * n * n);
    ew_em_view_t *v = malloc(sizeof *v * count), *p = malloc(sizeof *p * count);
    make_particles(&m, n, apix, count, 1, 0.0, 21, imgs, v);
    if (snr > 0) {
        double var = 0;
        for (size_t i = 0; i < count * n * n; i++) var += (double)imgs[i] * imgs[i];
        var /= (double)count * n * n;
        make_particles(&m, n, apix, count, 1, sqrt(var / snr), 21, imgs, v);
    }
    float *map = malloc(sizeof(float) * n * n * n);
    ew_em_potential_map(&m.pot, n, apix, map);
    for (size_t i = 0; i < count; i++) {
        p[i] = v[i];
        memset(p[i].R, 0, sizeof p[i].R);
        p[i].shift[0] = p[i].shift[1] = 0;
    }
    ew_empose_config_t c;
    ew_empose_config_default(&c);
    c.box = n;
    c.pixel = apix;
    c.grid_level = 4;
    double *sc = malloc(sizeof(double) * count);
    assert_ok(ew_em_pose_match(&c, map, imgs, count, p, sc));
    *med = median_error(v, p, count, hand);
    double se = 0;
    for (size_t i = 0; i < count; i++) se += hypot(p[i].shift[0] - v[i].shift[0], p[i].shift[1] - v[i].shift[1]);
    *shift_err = se / count;
    free(sc);
    free(map);
    free(imgs);
    free(v);
    free(p);
    ew_em_model_free(&m);
    blob_free(&s);
}

static void test_match_high_snr(void **state)
{
    (void)state;
    double med, se;
    int hand;
    run_match(0.0, 24, &med, &se, &hand);
    printf("  noise-free: median angular error %.2f deg (hand %d), mean shift error %.3f px\n", med, hand, se);
    assert_true(med < 3.0);
    assert_int_equal(hand, 0);
    assert_true(se < 0.3);
}

static void test_match_noisy(void **state)
{
    (void)state;
    double med, se;
    int hand;
    run_match(1.0, 24, &med, &se, &hand);
    printf("  SNR 1: median angular error %.2f deg, mean shift error %.3f px\n", med, se);
    assert_true(med < 5.0);
}

/* The hand-written Gram-Schmidt gradient against central differences. */
static void test_rot6d_loss_grad(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 4, 0);
    for (int t = 0; t < 20; t++) {
        double d6[6], Rt[9], g[6];
        for (int k = 0; k < 6; k++) d6[k] = ew_rng_normal(&r);
        ew_quat_to_mat(ew_quat_random(&r), Rt);
        ew_rot6d_frobenius_loss(d6, Rt, g);
        for (int k = 0; k < 6; k++) {
            double h = 1e-6, a[6], b[6];
            memcpy(a, d6, sizeof a);
            memcpy(b, d6, sizeof b);
            a[k] += h;
            b[k] -= h;
            double fd = (ew_rot6d_frobenius_loss(a, Rt, NULL) - ew_rot6d_frobenius_loss(b, Rt, NULL)) / (2 * h);
            assert_close(g[k], fd, 1e-5, 1e-7);
        }
    }
    /* zero at the truth */
    double Rt[9], d6[6], g[6];
    ew_quat_to_mat(ew_quat_random(&r), Rt);
    ew_mat_to_rot6d(Rt, d6);
    assert_close(ew_rot6d_frobenius_loss(d6, Rt, g), 0.0, 0, 1e-20);
}

/* A small encoder learns the poses of simulated particles (in-plane
 * rotations here, to stay fast; the benchmark trains on all of SO(3)). */
static void test_encoder_learns(void **state)
{
    (void)state;
    ew_structure_t s;
    blob_make(&s, 300, 11.0, 5);
    ew_em_model_t m;
    assert_ok(ew_em_model_init(&m, &s, 0.0));
    const int n = 32;
    const double apix = 2.0;
    const size_t ntr = 600, nte = 100;
    inplane_only = 1;
    float *imgs = malloc(sizeof(float) * (ntr + nte) * n * n);
    ew_em_view_t *v = malloc(sizeof *v * (ntr + nte));
    make_particles(&m, n, apix, ntr + nte, 0, 0.0, 33, imgs, v);
    inplane_only = 0;
    double *R = malloc(sizeof(double) * 9 * (ntr + nte)), *P = malloc(sizeof(double) * 9 * nte);
    for (size_t i = 0; i < ntr + nte; i++) memcpy(R + 9 * i, v[i].R, sizeof v[i].R);
    ew_poseenc_config_t c;
    ew_poseenc_config_default(&c);
    c.box = n;
    c.width = 8;
    c.batch = 16;
    c.steps = 120;
    ew_poseenc_t *e;
    assert_ok(ew_poseenc_create(&c, &e));
    ew_em_view_t *pv = malloc(sizeof *pv * nte);
    assert_ok(ew_poseenc_predict(e, imgs + ntr * n * n, nte, P));
    for (size_t i = 0; i < nte; i++) memcpy(pv[i].R, P + 9 * i, sizeof pv[i].R);
    double med0 = median_error(v + ntr, pv, nte, NULL);
    double loss;
    assert_ok(ew_poseenc_train(e, imgs, R, ntr, &loss));
    assert_ok(ew_poseenc_predict(e, imgs + ntr * n * n, nte, P));
    for (size_t i = 0; i < nte; i++) memcpy(pv[i].R, P + 9 * i, sizeof pv[i].R);
    double med = median_error(v + ntr, pv, nte, NULL);
    printf("  encoder: held-out median error untrained %.1f deg, trained %.1f deg (loss %.3f)\n", med0, med, loss);
    assert_true(med < 0.5 * med0);
    /* checkpoint round trip */
    const char *path = ew_test_tmpfile("poseenc.safetensors");
    assert_ok(ew_poseenc_save(e, path));
    ew_poseenc_t *e2;
    c.seed = 5;
    assert_ok(ew_poseenc_create(&c, &e2));
    assert_ok(ew_poseenc_load(e2, path));
    double *P2 = malloc(sizeof(double) * 9 * nte);
    assert_ok(ew_poseenc_predict(e2, imgs + ntr * n * n, nte, P2));
    assert_memory_equal(P, P2, sizeof(double) * 9 * nte);
    free(P2);
    ew_poseenc_destroy(e2);
    ew_poseenc_destroy(e);
    free(pv);
    free(R);
    free(P);
    free(imgs);
    free(v);
    ew_em_model_free(&m);
    blob_free(&s);
}

static void test_match_bad_args(void **state)
{
    (void)state;
    ew_empose_config_t c;
    ew_empose_config_default(&c);
    c.box = 7;
    float x = 0;
    ew_em_view_t v;
    assert_int_equal(ew_em_pose_match(&c, &x, &x, 1, &v, NULL), EW_ERR_ARG);
    c.box = 16;
    c.max_shift = 20;
    assert_int_equal(ew_em_pose_match(&c, &x, &x, 1, &v, NULL), EW_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_high_snr),
        cmocka_unit_test(test_match_noisy),
        cmocka_unit_test(test_match_bad_args),
        cmocka_unit_test(test_rot6d_loss_grad),
        cmocka_unit_test(test_encoder_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
