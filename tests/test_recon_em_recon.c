/* Tests of recon/em_recon: the voxel-averaged potential map against the
 * pixel-averaged projections (exact oracle), direct Fourier inversion of
 * exact projections at known poses and shifts (FSC against the true map),
 * the CTF-weighted Wiener inversion with noise (half-map FSC), wrong poses
 * as a negative control, and the whole chain through the simulator's
 * files (ew_em_simulate_to_files -> particles.star -> reconstruction). */
#include "testutil.h"
#include "test_blob.h"

#include <fftw3.h>

#include "eval/fsc.h"
#include "geom/geom.h"
#include "physics/em_sim.h"
#include "physics/specimen.h"
#include "recon/em_recon.h"

/* An asymmetric protein-like blob of n atoms. */
/* The map projected along z (times apix) equals ew_peng_project at the
 * identity: both are exact pixel integrals of the same Gaussians. */
static void test_potential_map_projection(void **state)
{
    (void)state;
    ew_structure_t s;
    blob_make(&s, 200, 10.0, 3);
    ew_em_model_t m;
    assert_ok(ew_em_model_init(&m, &s, 0.0));
    const int n = 40;
    const double apix = 1.5;
    float *map = malloc(sizeof(float) * n * n * n), *img = calloc((size_t)n * n, sizeof(float));
    ew_em_potential_map(&m.pot, n, apix, map);
    const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    ew_peng_project(&m.pot, I, n / 2, n / 2, apix, img, n, n);
    double maxd = 0, maxv = 0, tot = 0;
    for (int j = 0; j < n * n; j++) {
        double p = 0;
        for (int k = 0; k < n; k++) p += map[(size_t)k * n * n + j];
        p *= apix;
        tot += p * apix * apix;
        maxd = fmax(maxd, fabs(p - img[j]));
        maxv = fmax(maxv, fabs(img[j]));
    }
    assert_true(maxd < 1e-4 * maxv);
    assert_close(tot, m.potential_integral, 1e-4, 0);
    free(map);
    free(img);
    ew_em_model_free(&m);
    blob_free(&s);
}

/* Simulated particles: projection at pose R, sub-pixel shift, optional
 * CTF (cisTEM sign, as em_sim) and white noise of sd noise. */
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

static double fsc_at(const ew_shell_curve_t *c, double frac_nyquist)
{
    int j = (int)lround(frac_nyquist * (c->nshell - 1));
    return c->value[j];
}

/* Exact projections, no CTF: the full map against the truth. */
static void test_exact_projections(void **state)
{
    (void)state;
    ew_structure_t s;
    blob_make(&s, 300, 11.0, 5);
    ew_em_model_t m;
    assert_ok(ew_em_model_init(&m, &s, 0.0));
    const int n = 32;
    const double apix = 2.0;
    const size_t count = 500;
    float *imgs = malloc(sizeof(float) * count * n * n);
    ew_em_view_t *v = malloc(sizeof *v * count);
    make_particles(&m, n, apix, count, 0, 0.0, 11, imgs, v);
    float *truth = malloc(sizeof(float) * n * n * n);
    ew_em_potential_map(&m.pot, n, apix, truth);
    ew_emrec_config_t c;
    ew_emrec_config_default(&c);
    c.box = n;
    c.pixel = apix;
    c.use_ctf = 0;
    c.tau = 1e-3;
    ew_em_recon_t rec;
    assert_ok(ew_em_reconstruct(&c, imgs, v, count, &rec));
    ew_shell_curve_t f;
    assert_ok(ew_fsc_density(rec.map, truth, n, apix, 1.0, &f));
    printf("  FSC vs truth at 0.5/0.8/0.95 Nyquist: %.4f %.4f %.4f; half-map 0.143: %.2f A\n", fsc_at(&f, 0.5),
           fsc_at(&f, 0.8), fsc_at(&f, 0.95), rec.res_0143);
    assert_true(fsc_at(&f, 0.5) > 0.99);
    assert_true(fsc_at(&f, 0.8) > 0.9);
    assert_true(rec.res_0143 < 2.2 * apix);
    /* amplitude: the map is in V; its integral (the lowest frequencies) matches the truth's */
    double sa = 0, sb = 0;
    for (int i = 0; i < n * n * n; i++) {
        sa += rec.map[i];
        sb += truth[i];
    }
    printf("  integral map/truth = %.4f\n", sa / sb);
    assert_close(sa, sb, 0.03, 0);
    ew_shell_curve_free(&f);
    /* negative control: transposed poses give a poor map */
    for (size_t i = 0; i < count; i++) {
        double t[9];
        ew_mat_transpose(v[i].R, t);
        memcpy(v[i].R, t, sizeof t);
    }
    ew_em_recon_t bad;
    assert_ok(ew_em_reconstruct(&c, imgs, v, count, &bad));
    assert_ok(ew_fsc_density(bad.map, truth, n, apix, 1.0, &f));
    printf("  transposed poses: FSC vs truth at 0.5 Nyquist %.3f\n", fsc_at(&f, 0.5));
    assert_true(fsc_at(&f, 0.5) < 0.5);
    ew_shell_curve_free(&f);
    ew_em_recon_free(&bad);
    ew_em_recon_free(&rec);
    free(truth);
    free(imgs);
    free(v);
    ew_em_model_free(&m);
    blob_free(&s);
}

/* CTF and noise: Wiener inversion with the FSC-driven tau. */
static void test_ctf_noise(void **state)
{
    (void)state;
    ew_structure_t s;
    blob_make(&s, 300, 11.0, 5);
    ew_em_model_t m;
    assert_ok(ew_em_model_init(&m, &s, 0.0));
    const int n = 32;
    const double apix = 2.0;
    const size_t count = 600;
    float *imgs = malloc(sizeof(float) * count * n * n);
    ew_em_view_t *v = malloc(sizeof *v * count);
    make_particles(&m, n, apix, count, 1, 0.0, 12, imgs, v);
    double var = 0;
    for (size_t i = 0; i < count * n * n; i++) var += (double)imgs[i] * imgs[i];
    var /= (double)count * n * n;
    make_particles(&m, n, apix, count, 1, sqrt(var / 0.5), 12, imgs, v); /* SNR 0.5 per image */
    float *truth = malloc(sizeof(float) * n * n * n);
    ew_em_potential_map(&m.pot, n, apix, truth);
    ew_emrec_config_t c;
    ew_emrec_config_default(&c);
    c.box = n;
    c.pixel = apix;
    ew_em_recon_t rec;
    assert_ok(ew_em_reconstruct(&c, imgs, v, count, &rec));
    ew_shell_curve_t f, fh;
    assert_ok(ew_fsc_density(rec.map, truth, n, apix, 1.0, &f));
    assert_ok(ew_fsc_density(rec.half[0], truth, n, apix, 1.0, &fh));
    double r_true = ew_curve_resolution(&f, 0.5);
    printf("  SNR 0.5: half-map FSC 0.143 at %.2f A; full map vs truth 0.5 at %.2f A; FSC(0.5 Nyq) full %.3f half %.3f\n",
           rec.res_0143, r_true, fsc_at(&f, 0.5), fsc_at(&fh, 0.5));
    assert_true(rec.res_0143 < 3.0 * apix);
    assert_true(fsc_at(&f, 0.5) > 0.9);
    /* the full map beats a half map against the truth */
    assert_true(fsc_at(&f, 0.7) > fsc_at(&fh, 0.7));
    assert_true(rec.n_half[0] + rec.n_half[1] == count);
    ew_shell_curve_free(&f);
    ew_shell_curve_free(&fh);
    ew_em_recon_free(&rec);
    free(truth);
    free(imgs);
    free(v);
    ew_em_model_free(&m);
    blob_free(&s);
}

/* The simulator's files: GenEM micrographs at high SNR, particles.star and
 * the stack, read back and reconstructed with the written poses and CTFs. */
static void test_from_simulator_files(void **state)
{
    (void)state;
    ew_structure_t s;
    blob_make(&s, 300, 11.0, 7);
    ew_em_config_t c;
    ew_em_config_default(&c);
    c.nx = c.ny = 384;
    c.pixel = 2.0;
    c.n_micrographs = 6;
    c.mode = EW_EM_GENEM;
    c.snr = 1e4;
    c.seed = 3;
    c.specimen.count_mean = 60;
    c.specimen.min_gap = 2.0;
    c.defocus_min = 8000;
    c.defocus_max = 20000;
    c.fft_measure = 0;
    ew_em_output_t o;
    ew_em_output_default(&o);
    o.outdir = ew_test_tmpfile("sim");
    o.box = 32;
    o.png = 0;
    o.write_clean = o.write_projection = o.write_mask = 0;
    assert_ok(ew_em_simulate_to_files(&c, &s, 1, &o));
    char star[600];
    snprintf(star, sizeof star, "%s/particles.star", o.outdir);
    float *imgs;
    ew_em_view_t *v;
    size_t count;
    int box;
    double pixel;
    assert_ok(ew_em_particles_read(star, &imgs, &v, &count, &box, &pixel));
    printf("  %zu particles, box %d, pixel %.2f\n", count, box, pixel);
    assert_int_equal(box, 32);
    assert_close(pixel, 2.0, 1e-6, 0);
    assert_true(count > 150);
    ew_em_model_t m;
    assert_ok(ew_em_model_init(&m, &s, 0.0));
    float *truth = malloc(sizeof(float) * box * box * box);
    ew_em_potential_map(&m.pot, box, pixel, truth);
    ew_emrec_config_t rc;
    ew_emrec_config_default(&rc);
    rc.box = box;
    rc.pixel = pixel;
    ew_em_recon_t rec;
    assert_ok(ew_em_reconstruct(&rc, imgs, v, count, &rec));
    ew_shell_curve_t f;
    assert_ok(ew_fsc_density(rec.map, truth, box, pixel, 1.0, &f));
    printf("  simulator files: FSC vs truth at 0.5/0.8 Nyquist %.3f %.3f; half-map 0.143 %.2f A\n", fsc_at(&f, 0.5),
           fsc_at(&f, 0.8), rec.res_0143);
    assert_true(fsc_at(&f, 0.5) > 0.9);
    assert_true(rec.res_0143 < 2.5 * pixel);
    ew_shell_curve_free(&f);
    /* a missing file names itself */
    float *i2;
    ew_em_view_t *v2;
    assert_int_not_equal(ew_em_particles_read(ew_test_tmpfile("none.star"), &i2, &v2, &count, &box, &pixel), EW_OK);
    ew_em_recon_free(&rec);
    free(truth);
    ew_free(imgs);
    ew_free(v);
    ew_em_model_free(&m);
    blob_free(&s);
}

static void test_bad_config(void **state)
{
    (void)state;
    ew_emrec_config_t c;
    ew_emrec_config_default(&c);
    ew_emrec_t *r;
    c.box = 7;
    assert_int_equal(ew_emrec_create(&c, &r), EW_ERR_ARG);
    assert_null(r);
    c.box = 16;
    c.pad = 5;
    assert_int_equal(ew_emrec_create(&c, &r), EW_ERR_ARG);
    c.pad = 2;
    c.pixel = -1;
    assert_int_equal(ew_emrec_create(&c, &r), EW_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_potential_map_projection), cmocka_unit_test(test_exact_projections),
        cmocka_unit_test(test_ctf_noise),                cmocka_unit_test(test_from_simulator_files),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
