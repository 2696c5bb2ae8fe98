/* Tests of src/recon/phase: phase retrieval, shrinkwrap, alignment, PRTF.
 *
 * Oracles: a known non-centrosymmetric density of Gaussian blobs whose
 * intensity is computed here with double-precision complex FFTW and an
 * explicit fftshift (independent of the library's float r2c path); direct
 * 3D convolution sums for the blur; fixed points (the truth is a fixed
 * point of every algorithm); exact shifts/mirrors for the alignment.
 */
#include "testutil.h"

#include <fftw3.h>

#include "core/core.h"
#include "io/structure.h"
#include "physics/detector.h"
#include "physics/scatter.h"
#include "eval/prtf.h"
#include "recon/phase.h"

#define N 31

/* Blobs (z, y, x offsets from the centre in voxels, weight): no inversion symmetry. */
static const double blobs[][4] = {
    {0.0, 0.0, 0.0, 3.0},  {3.0, 1.0, -2.0, 2.0}, {-2.5, 3.0, 1.0, 1.5}, {1.0, -3.5, 2.5, 2.5},
    {-1.0, -1.0, -4.0, 1.0}, {2.0, 3.5, 3.0, 1.2}, {-3.0, -2.0, 2.0, 1.8},
};

static void make_truth(int n, float *rho, double sigma)
{
    int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double v = 0.0;
                for (size_t b = 0; b < sizeof blobs / sizeof blobs[0]; b++) {
                    double dz = z - c - blobs[b][0], dy = y - c - blobs[b][1], dx = x - c - blobs[b][2];
                    v += blobs[b][3] * exp(-(dz * dz + dy * dy + dx * dx) / (2 * sigma * sigma));
                }
                rho[((size_t)z * n + y) * n + x] = (float)v;
            }
    /* compact support: exactly zero below 1e-3 of the maximum */
    float mx = 0.0f;
    for (size_t i = 0; i < (size_t)n * n * n; i++) mx = rho[i] > mx ? rho[i] : mx;
    for (size_t i = 0; i < (size_t)n * n * n; i++)
        if (rho[i] < 1e-3f * mx) rho[i] = 0.0f;
}

/* I = |DFT(rho)|^2 with rho's r = 0 at voxel c and I's s = 0 at voxel c
 * (double complex FFTW, explicit shifts). */
static void intensity_of(int n, const float *rho, float *I)
{
    int c = n / 2;
    size_t nv = (size_t)n * n * n;
    fftw_complex *a = fftw_malloc(nv * sizeof *a);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
            {
                size_t k = ((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n + (size_t)((x - c + n) % n);
                a[k][0] = rho[((size_t)z * n + y) * n + x];
                a[k][1] = 0.0;
            }
    fftw_plan p = fftw_plan_dft_3d(n, n, n, a, a, FFTW_FORWARD, FFTW_ESTIMATE);
    fftw_execute(p);
    fftw_destroy_plan(p);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                const double *v =
                    a[((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n + (size_t)((x - c + n) % n)];
                I[((size_t)z * n + y) * n + x] = (float)(v[0] * v[0] + v[1] * v[1]);
            }
    fftw_free(a);
}

/* Zero every Fourier component of v (centred real-space layout) with
 * |k| > rmax voxels (double complex FFTW). */
static void lowpass(int n, float *v, double rmax)
{
    size_t nv = (size_t)n * n * n;
    fftw_complex *a = fftw_malloc(nv * sizeof *a);
    for (size_t i = 0; i < nv; i++) {
        a[i][0] = v[i];
        a[i][1] = 0.0;
    }
    fftw_plan p = fftw_plan_dft_3d(n, n, n, a, a, FFTW_FORWARD, FFTW_ESTIMATE);
    fftw_plan q = fftw_plan_dft_3d(n, n, n, a, a, FFTW_BACKWARD, FFTW_ESTIMATE);
    fftw_execute(p);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int fz = z <= n / 2 ? z : z - n, fy = y <= n / 2 ? y : y - n, fx = x <= n / 2 ? x : x - n;
                if (sqrt((double)fz * fz + fy * fy + fx * fx) > rmax) {
                    size_t i = ((size_t)z * n + y) * n + x;
                    a[i][0] = a[i][1] = 0.0;
                }
            }
    fftw_execute(q);
    for (size_t i = 0; i < nv; i++) v[i] = (float)(a[i][0] / nv);
    fftw_destroy_plan(p);
    fftw_destroy_plan(q);
    fftw_free(a);
}

static double pearson(size_t nv, const float *a, const float *b)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < nv; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= nv;
    mb /= nv;
    for (size_t i = 0; i < nv; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

/* Known-voxel mask: inside |s| <= rmax voxels, outside |s| < rstop. */
static uint8_t *make_mask(int n, double rstop, double rmax)
{
    uint8_t *m = malloc((size_t)n * n * n);
    int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double r = sqrt((double)(z - c) * (z - c) + (y - c) * (y - c) + (x - c) * (x - c));
                m[((size_t)z * n + y) * n + x] = r >= rstop && r <= rmax;
            }
    return m;
}

static ew_phase_config_t small_config(void)
{
    ew_phase_config_t c;
    ew_phase_config_default(&c);
    c.nsteps = 3;
    c.steps[0] = (ew_phase_step_t){EW_PHASE_ER, 20, 0.0};
    c.steps[1] = (ew_phase_step_t){EW_PHASE_HIO, 40, 0.9};
    c.steps[2] = (ew_phase_step_t){EW_PHASE_ER, 20, 0.0};
    c.loops = 15;
    c.starts = 2;
    c.fftw_measure = 0;
    c.nthreads = 1; /* tests share a small machine */
    c.sw_threshold = 0.02;
    return c;
}

static void test_config(void **state)
{
    (void)state;
    ew_phase_config_t c;
    ew_phase_config_default(&c);
    assert_ok(ew_phase_config_check(&c));
    assert_int_equal(c.loops, 100);
    assert_int_equal(c.starts, 10);
    assert_int_equal(c.nsteps, 4);
    assert_int_equal(c.steps[2].algo, EW_PHASE_DM);
    assert_close(c.steps[1].beta, 0.3, 0, 0);
    ew_phase_config_t b = c;
    b.steps[1].beta = 1.5;
    assert_int_equal(ew_phase_config_check(&b), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "beta"));
    b = c;
    b.starts = 0;
    assert_int_equal(ew_phase_config_check(&b), EW_ERR_ARG);
    b = c;
    b.sw_threshold = 1.0;
    assert_int_equal(ew_phase_config_check(&b), EW_ERR_ARG);
    ew_phase_algo_t a;
    assert_ok(ew_phase_algo_parse("raar", &a));
    assert_int_equal(a, EW_PHASE_RAAR);
    assert_ok(ew_phase_algo_parse("HIO", &a));
    assert_int_equal(a, EW_PHASE_HIO);
    assert_int_equal(ew_phase_algo_parse("xyz", &a), EW_ERR_ARG);
}

static void test_blur_matches_direct_convolution(void **state)
{
    (void)state;
    const int n = 9;
    const double sigma = 0.8;
    size_t nv = (size_t)n * n * n;
    float *v = malloc(nv * sizeof *v), *orig = malloc(nv * sizeof *orig);
    ew_rng_t r;
    ew_rng_init(&r, 5, 0);
    double sum0 = 0;
    for (size_t i = 0; i < nv; i++) {
        orig[i] = v[i] = (float)ew_rng_uniform(&r);
        sum0 += v[i];
    }
    assert_ok(ew_phase_blur(v, n, sigma, 2));
    int rad = (int)ceil(4 * sigma);
    double norm = 0;
    for (int a = -rad; a <= rad; a++)
        for (int b = -rad; b <= rad; b++)
            for (int d = -rad; d <= rad; d++) norm += exp(-(a * a + b * b + d * d) / (2 * sigma * sigma));
    double sum1 = 0;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double acc = 0;
                for (int a = -rad; a <= rad; a++)
                    for (int b = -rad; b <= rad; b++)
                        for (int d = -rad; d <= rad; d++) {
                            int zz = ((z + a) % n + n) % n, yy = ((y + b) % n + n) % n, xx = ((x + d) % n + n) % n;
                            acc += exp(-(a * a + b * b + d * d) / (2 * sigma * sigma)) *
                                   orig[((size_t)zz * n + yy) * n + xx];
                        }
                size_t i = ((size_t)z * n + y) * n + x;
                assert_close(v[i], acc / norm, 1e-5, 1e-6);
                sum1 += v[i];
            }
    assert_close(sum1, sum0, 1e-5, 0); /* a normalised periodic blur conserves the sum */
    free(v);
    free(orig);
}

static void test_truth_is_fixed_point(void **state)
{
    (void)state;
    const int n = 21;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *I = malloc(nv * sizeof *I), *out = malloc(nv * sizeof *out);
    uint8_t *sup = malloc(nv);
    make_truth(n, rho, 1.0);
    intensity_of(n, rho, I);
    for (size_t i = 0; i < nv; i++) sup[i] = rho[i] > 0.0f;
    ew_rvol_t vol = {n, 0.01, I};
    ew_phase_config_t c = small_config();
    ew_phaser_t *ph;
    assert_ok(ew_phaser_create(&ph, n, &c));
    assert_ok(ew_phaser_set_data(ph, &vol, NULL));
    assert_true(ew_phaser_error(ph, rho) < 1e-5);
    double scale = 0;
    for (size_t i = 0; i < nv; i++) scale = fmax(scale, rho[i]);
    const ew_phase_algo_t algos[] = {EW_PHASE_ER, EW_PHASE_HIO, EW_PHASE_DM, EW_PHASE_RAAR};
    for (int a = 0; a < 4; a++) {
        /* the truth lies in both constraint sets, so every algorithm leaves it there */
        assert_ok(ew_phaser_set_iterate(ph, sup, rho));
        ew_phaser_iterate(ph, algos[a], 0.7, 5);
        double err = ew_phaser_finish(ph, out, NULL);
        if (!(err < 1e-4)) fail_msg("%s: error %g", ew_phase_algo_name(algos[a]), err);
        for (size_t i = 0; i < nv; i++) {
            float truth = sup[i] ? rho[i] : 0.0f;
            assert_close(out[i], truth, 0, 1e-4 * scale);
        }
    }
    ew_phaser_free(ph);
    free(rho);
    free(I);
    free(out);
    free(sup);
}

static void test_algorithms_converge_with_true_support(void **state)
{
    (void)state;
    const int n = 21;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *I = malloc(nv * sizeof *I), *out = malloc(nv * sizeof *out);
    uint8_t *sup = malloc(nv);
    make_truth(n, rho, 1.0);
    intensity_of(n, rho, I);
    double mx = 0;
    for (size_t i = 0; i < nv; i++) mx = fmax(mx, rho[i]);
    for (size_t i = 0; i < nv; i++) sup[i] = rho[i] > 1e-3 * mx;
    ew_rvol_t vol = {n, 0.01, I};
    ew_phase_config_t c = small_config();
    ew_phaser_t *ph;
    assert_ok(ew_phaser_create(&ph, n, &c));
    assert_ok(ew_phaser_set_data(ph, &vol, NULL));
    const ew_phase_algo_t algos[] = {EW_PHASE_HIO, EW_PHASE_DM, EW_PHASE_RAAR};
    const double betas[] = {0.9, 0.7, 0.8};
    for (int a = 0; a < 3; a++) {
        assert_ok(ew_phaser_init(ph, sup, 3));
        ew_phaser_iterate(ph, EW_PHASE_ER, 0, 5);
        double e0 = ew_phaser_finish(ph, out, NULL);
        ew_phaser_iterate(ph, algos[a], betas[a], 300);
        ew_phaser_iterate(ph, EW_PHASE_ER, 0, 50);
        double e1 = ew_phaser_finish(ph, out, NULL);
        ew_phase_align_t al;
        assert_ok(ew_phase_align(rho, out, n, 1, out, &al));
        if (!(al.cc > 0.99 && e1 < 0.05 && e1 < e0))
            fail_msg("%s: error %.4f -> %.4f, cc %.4f", ew_phase_algo_name(algos[a]), e0, e1, al.cc);
    }
    ew_phaser_free(ph);
    free(rho);
    free(I);
    free(out);
    free(sup);
}

static void test_support_from_autocorrelation_contains_truth(void **state)
{
    (void)state;
    const int n = N;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *I = malloc(nv * sizeof *I);
    uint8_t *sup = malloc(nv), *mask = make_mask(n, 2.0, n / 2);
    make_truth(n, rho, 1.0);
    intensity_of(n, rho, I);
    double mx = 0;
    for (size_t i = 0; i < nv; i++) mx = fmax(mx, rho[i]);
    ew_rvol_t vol = {n, 0.01, I};
    for (int masked = 0; masked < 2; masked++) {
        assert_ok(ew_phase_support_autocorr(&vol, masked ? mask : NULL, 1.0, 0.02, 1, sup));
        size_t in_true = 0, in_sup = 0, missed = 0;
        for (size_t i = 0; i < nv; i++) {
            int t = rho[i] > 0.05 * mx;
            in_true += t;
            in_sup += sup[i];
            missed += t && !sup[i];
        }
        if (missed) fail_msg("masked %d: %zu of %zu true voxels missed (support %zu)", masked, missed, in_true, in_sup);
        assert_true(in_sup > in_true);
        assert_true(in_sup < nv / 2); /* it is a support, not the whole box */
    }
    free(rho);
    free(I);
    free(sup);
    free(mask);
}

static void test_align_shift_hand_sign(void **state)
{
    (void)state;
    const int n = N;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *mov = malloc(nv * sizeof *mov), *out = malloc(nv * sizeof *out);
    make_truth(n, rho, 1.2);
    const int t[3] = {3, -2, 5};
    for (int hand = 0; hand < 2; hand++)
        for (int sg = -1; sg <= 1; sg += 2) {
            /* mov(r) = sg * rho(hand ? -(r - t) : r - t) on the periodic grid (index frame) */
            for (int z = 0; z < n; z++)
                for (int y = 0; y < n; y++)
                    for (int x = 0; x < n; x++) {
                        int a[3] = {z - t[0], y - t[1], x - t[2]};
                        for (int k = 0; k < 3; k++) a[k] = (((hand ? -a[k] : a[k]) % n) + n) % n;
                        mov[((size_t)z * n + y) * n + x] = sg * rho[((size_t)a[0] * n + a[1]) * n + a[2]];
                    }
            ew_phase_align_t al;
            assert_ok(ew_phase_align(rho, mov, n, 1, out, &al));
            assert_int_equal(al.enantiomer, hand);
            assert_int_equal(al.sign, sg);
            assert_true(al.cc > 0.9999);
            for (size_t i = 0; i < nv; i++) assert_close(out[i], rho[i], 0, 1e-4);
        }
    /* a fractional shift (applied as a Fourier phase ramp) is found to ~0.05 voxel */
    ew_phase_align_t al;
    assert_ok(ew_phase_align(rho, rho, n, 1, out, &al));
    for (int k = 0; k < 3; k++) assert_close(al.shift[k], 0.0, 0, 1e-6);
    free(rho);
    free(mov);
    free(out);
}

static void test_prtf(void **state)
{
    (void)state;
    const int n = N;
    size_t nv = (size_t)n * n * n;
    float *a = malloc(nv * sizeof *a), *b = malloc(nv * sizeof *b);
    make_truth(n, a, 1.0);
    memcpy(b, a, nv * sizeof *a);
    const float *two[2] = {a, b};
    double prtf[N / 2 + 1], s[N / 2 + 1], res;
    int reached;
    assert_ok(ew_phase_prtf(two, 2, n, 0.01, NULL, 2, prtf, s, &res, &reached));
    for (int j = 0; j <= n / 2; j++) {
        assert_close(prtf[j], 1.0, 0, 1e-6);
        assert_close(s[j], 0.01 * j, 1e-12, 0);
    }
    assert_int_equal(reached, 0);
    assert_close(res, 1.0 / (0.01 * (n / 2)), 1e-12, 0);
    /* a and -a: the mean is 0 everywhere, so the PRTF is 0 and falls below 1/e at once */
    for (size_t i = 0; i < nv; i++) b[i] = -a[i];
    assert_ok(ew_phase_prtf(two, 2, n, 0.01, NULL, 2, prtf, s, &res, &reached));
    assert_true(prtf[3] < 1e-3);
    assert_int_equal(reached, 1);
    /* a and a + independent noise: the PRTF is 1 at low s and falls where the noise dominates */
    ew_rng_t r;
    ew_rng_init(&r, 9, 1);
    for (size_t i = 0; i < nv; i++) b[i] = a[i] + 0.05f * (float)ew_rng_normal(&r);
    assert_ok(ew_phase_prtf(two, 2, n, 0.01, NULL, 2, prtf, s, &res, &reached));
    assert_true(prtf[1] > 0.99);
    assert_true(prtf[n / 2] < prtf[1]);
    assert_int_equal(ew_phase_prtf(two, 0, n, 0.01, NULL, 2, prtf, s, &res, &reached), EW_ERR_ARG);
    free(a);
    free(b);
}

/* Phasing's PRTF is eval/prtf.h's (Chapman 2006: per voxel |mean F| /
 * sqrt(mean |F|^2), averaged over the shell), checked against that
 * function fed with transforms computed here by a direct DFT in double
 * (no FFTW), with and without a measured-voxel mask. (Until 2026-11-21
 * phasing had its own ratio of shell sums, sqrt(sum |mean F|^2 / sum mean
 * |F|^2); test_prtf's cases, 1 for identical and 0 for opposite starts,
 * hold for both, so only this test pins the definition: it also checks
 * that the two differ on these data.) */
static void test_prtf_is_chapman(void **state)
{
    (void)state;
    const int n = 8, c = n / 2, K = 3;
    const size_t nv = (size_t)n * n * n;
    float *d[3], *F[3];
    ew_rng_t r;
    ew_rng_init(&r, 21, 0);
    for (int k = 0; k < K; k++) {
        d[k] = malloc(nv * sizeof(float));
        F[k] = malloc(2 * nv * sizeof(float));
    }
    for (size_t i = 0; i < nv; i++) {
        double base = ew_rng_uniform(&r);
        for (int k = 0; k < K; k++) d[k][i] = (float)(base + 0.6 * ew_rng_normal(&r));
    }
    /* centred transforms: voxel (z, y, x) holds k = (z - c, y - c, x - c) of the array as stored */
    for (int k = 0; k < K; k++)
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    double re = 0, im = 0;
                    for (size_t j = 0; j < nv; j++) {
                        int rz = (int)(j / (size_t)(n * n)), ry = (int)(j / (size_t)n % (size_t)n), rx = (int)(j % (size_t)n);
                        double ph = -2 * EW_PI * ((z - c) * rz + (y - c) * ry + (x - c) * rx) / (double)n;
                        re += d[k][j] * cos(ph);
                        im += d[k][j] * sin(ph);
                    }
                    size_t v = ((size_t)z * n + y) * n + x;
                    F[k][2 * v] = (float)re, F[k][2 * v + 1] = (float)im;
                }
    uint8_t *known = malloc(nv);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 1: only |k| <= 2.6 measured; the rest zeroed for ew_prtf, masked for phasing */
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    size_t v = ((size_t)z * n + y) * n + x;
                    double rr = sqrt((double)(z - c) * (z - c) + (y - c) * (y - c) + (x - c) * (x - c));
                    known[v] = pass == 0 || rr <= 2.6;
                    if (!known[v])
                        for (int k = 0; k < K; k++) F[k][2 * v] = F[k][2 * v + 1] = 0.0f;
                }
        double prtf[8 / 2 + 1], sv[8 / 2 + 1], res;
        int reached;
        assert_ok(ew_phase_prtf((const float *const *)d, K, n, 0.01, pass ? known : NULL, 1, prtf, sv, &res, &reached));
        ew_shell_curve_t cv;
        assert_ok(ew_prtf((const float *const *)F, K, n, 0.01, 1.0, 0, &cv));
        assert_int_equal(cv.nshell, n / 2 + 1);
        int differ = 0;
        for (int j = 0; j <= n / 2; j++) {
            if (cv.count[j] == 0) {
                assert_true(pass == 1 && j >= 3 && isnan(prtf[j]));
                continue;
            }
            assert_close(prtf[j], cv.value[j], 1e-4, 1e-6);
            assert_close(sv[j], 0.01 * j, 1e-12, 0);
            /* the former definition, a ratio of shell sums */
            double num = 0, den = 0;
            for (int z = 0; z < n; z++)
                for (int y = 0; y < n; y++)
                    for (int x = 0; x < n; x++) {
                        double rr = sqrt((double)(z - c) * (z - c) + (y - c) * (y - c) + (x - c) * (x - c));
                        size_t v = ((size_t)z * n + y) * n + x;
                        if ((int)lround(rr) != j || !known[v]) continue;
                        double mr = 0, mi = 0, p = 0;
                        for (int k = 0; k < K; k++) {
                            mr += F[k][2 * v] / (double)K, mi += F[k][2 * v + 1] / (double)K;
                            p += ((double)F[k][2 * v] * F[k][2 * v] + (double)F[k][2 * v + 1] * F[k][2 * v + 1]) / K;
                        }
                        num += mr * mr + mi * mi, den += p;
                    }
            if (j > 0 && fabs(sqrt(num / den) - prtf[j]) > 1e-3) differ = 1;
        }
        assert_true(differ);
        ew_shell_curve_free(&cv);
    }
    for (int k = 0; k < K; k++) free(d[k]), free(F[k]);
    free(known);
}

/* Phase the blobs' intensity (measured where mask, NULL: everywhere) and
 * check the best and the average against the truth, both restricted to
 * the measured resolution sphere |k| <= rmax (beyond it nothing was
 * measured, so nothing can be recovered). */
static void run_blobs_with(const uint8_t *mask, double rmax, double min_cc, const ew_phase_config_t *cfg);

static void run_blobs(const uint8_t *mask, double rmax, double min_cc)
{
    ew_phase_config_t c = small_config();
    run_blobs_with(mask, rmax, min_cc, &c);
}

static void run_blobs_with(const uint8_t *mask, double rmax, double min_cc, const ew_phase_config_t *cfg)
{
    const int n = N;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *I = malloc(nv * sizeof *I), *out = malloc(nv * sizeof *out);
    make_truth(n, rho, 1.0);
    intensity_of(n, rho, I);
    ew_rvol_t vol = {n, 0.004, I};
    ew_phase_config_t c = *cfg;
    ew_phase_result_t res;
    ew_log_level_t lv = ew_log_get_level();
    ew_log_set_level(EW_LOG_WARN);
    assert_ok(ew_phase_run(&vol, mask, &c, &res));
    ew_log_set_level(lv);
    assert_int_equal(res.n, n);
    assert_close(res.voxel, 1.0 / (n * 0.004), 1e-12, 0);
    assert_int_equal(res.nstarts, 2);
    assert_true(res.error < 0.1);
    assert_true(res.error <= res.errors[0] && res.error <= res.errors[1]);
    ew_phase_align_t al;
    lowpass(n, rho, rmax);
    assert_ok(ew_phase_align(rho, res.density, n, 1, out, &al));
    lowpass(n, out, rmax);
    double cc = pearson(nv, rho, out);
    if (!(cc > min_cc)) fail_msg("cc with the truth %.5f (error %.4f)", cc, res.error);
    assert_ok(ew_phase_align(rho, res.average, n, 1, out, &al));
    lowpass(n, out, rmax);
    cc = pearson(nv, rho, out);
    if (!(cc > min_cc)) fail_msg("average: cc with the truth %.5f", cc);
    assert_true(res.prtf[3] > 0.9);
    assert_true(res.resolution > 0);
    ew_phase_result_free(&res);
    ew_phase_result_free(&res); /* idempotent */
    free(rho);
    free(I);
    free(out);
}

static void test_phase_blobs_full_data(void **state)
{
    (void)state;
    run_blobs(NULL, 1e9, 0.99);
}

static void test_phase_blobs_missing_centre_and_corners(void **state)
{
    (void)state;
    uint8_t *mask = make_mask(N, 1.5, N / 2); /* beam stop r < 1.5 voxels, nothing beyond the inscribed sphere */
    run_blobs(mask, N / 2, 0.99);
    free(mask);
}

/* The reference recipe's blocks (ER 50, HIO 25 (0.3), DM 25 (0.3), ER 50,
 * shrinkwrap sigma 1, recentering), fewer loops, with a beam stop. */
static void test_phase_blobs_reference_recipe(void **state)
{
    (void)state;
    ew_phase_config_t c;
    ew_phase_config_default(&c);
    c.loops = 8;
    c.starts = 2;
    c.nthreads = 1;
    c.fftw_measure = 0;
    uint8_t *mask = make_mask(N, 1.5, N / 2);
    run_blobs_with(mask, N / 2, 0.99, &c);
    free(mask);
}

static void test_recenter(void **state)
{
    (void)state;
    const int n = N;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *I = malloc(nv * sizeof *I), *mov = malloc(nv * sizeof *mov);
    uint8_t *sup = malloc(nv);
    make_truth(n, rho, 1.0);
    intensity_of(n, rho, I);
    /* shift the truth by (4, -3, 5) voxels: recentering must bring its centre of mass back */
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                mov[((size_t)((z + 4) % n) * n + (size_t)((y - 3 + n) % n)) * n + (size_t)((x + 5) % n)] =
                    rho[((size_t)z * n + y) * n + x];
    for (size_t i = 0; i < nv; i++) sup[i] = mov[i] > 1e-4f;
    ew_rvol_t vol = {n, 0.01, I};
    ew_phase_config_t c = small_config();
    ew_phaser_t *ph;
    assert_ok(ew_phaser_create(&ph, n, &c));
    assert_ok(ew_phaser_set_data(ph, &vol, NULL));
    assert_ok(ew_phaser_set_iterate(ph, sup, mov));
    ew_phaser_recenter(ph);
    ew_phaser_finish(ph, mov, sup);
    double m = 0, cm[3] = {0, 0, 0}, ct[3] = {0, 0, 0}, mt = 0;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                m += mov[i];
                cm[0] += mov[i] * z;
                cm[1] += mov[i] * y;
                cm[2] += mov[i] * x;
                mt += rho[i];
                ct[0] += rho[i] * z;
                ct[1] += rho[i] * y;
                ct[2] += rho[i] * x;
            }
    for (int k = 0; k < 3; k++) {
        assert_close(cm[k] / m, n / 2, 0, 0.5);
        assert_close(ct[k] / mt, n / 2, 0, 1.0); /* the truth itself was not centred exactly */
    }
    ew_phaser_free(ph);
    free(rho);
    free(I);
    free(mov);
    free(sup);
}

/* Fourier shell correlation of two centred densities (double FFTW), shells
 * of rounded |k|; fsc gets n/2 + 1 values. */
static void fsc_of(int n, const float *a, const float *b, double *fsc)
{
    size_t nv = (size_t)n * n * n;
    fftw_complex *A = fftw_malloc(nv * sizeof *A), *B = fftw_malloc(nv * sizeof *B);
    for (size_t i = 0; i < nv; i++) {
        A[i][0] = a[i];
        B[i][0] = b[i];
        A[i][1] = B[i][1] = 0.0;
    }
    fftw_plan pa = fftw_plan_dft_3d(n, n, n, A, A, FFTW_FORWARD, FFTW_ESTIMATE);
    fftw_plan pb = fftw_plan_dft_3d(n, n, n, B, B, FFTW_FORWARD, FFTW_ESTIMATE);
    fftw_execute(pa);
    fftw_execute(pb);
    int ns = n / 2 + 1;
    double *num = calloc(ns, sizeof *num), *da = calloc(ns, sizeof *da), *db = calloc(ns, sizeof *db);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int fz = z <= n / 2 ? z : z - n, fy = y <= n / 2 ? y : y - n, fx = x <= n / 2 ? x : x - n;
                int sh = (int)lround(sqrt((double)fz * fz + fy * fy + fx * fx));
                if (sh >= ns) continue;
                size_t i = ((size_t)z * n + y) * n + x;
                num[sh] += A[i][0] * B[i][0] + A[i][1] * B[i][1];
                da[sh] += A[i][0] * A[i][0] + A[i][1] * A[i][1];
                db[sh] += B[i][0] * B[i][0] + B[i][1] * B[i][1];
            }
    for (int j = 0; j < ns; j++) fsc[j] = num[j] / sqrt(da[j] * db[j]);
    free(num);
    free(da);
    free(db);
    fftw_destroy_plan(pa);
    fftw_destroy_plan(pb);
    fftw_free(A);
    fftw_free(B);
}

/* The done criterion on 2cex: phase the simulator's true intensity
 * (scatter.h, reference detector, measured inside the detector's |s| range)
 * and compare with the true density (the inverse DFT of the simulator's
 * F over the measured ball): the FSC-0.5 resolution must be within 1.25x
 * of the detector-edge resolution. A shortened recipe keeps it quick. */
static void test_phase_2cex_true_intensity(void **state)
{
    (void)state;
    const char *path = ew_test_data("pdb/2cex.pdb");
    if (!path) skip();
    ew_structure_options_t so = {1, 1, 0};
    ew_structure_t st;
    assert_ok(ew_structure_read(path, &so, &st));
    ew_atoms_t at;
    ew_atoms_options_t ao = {0};
    assert_ok(ew_atoms_from_structure(&st, &ao, &at));
    ew_structure_free(&st);
    ew_atoms_center(&at);
    ew_detector_config_t dc = ew_detector_config_reference();
    ew_detector_t det;
    assert_ok(ew_detector_init(&det, &dc));
    int n;
    double ds;
    ew_detector_volume_grid(&det, 45, &n, &ds);
    ew_rvol_t I;
    assert_ok(ew_rvol_alloc(&I, n, ds));
    size_t nv = (size_t)n * n * n;
    float *Fr = malloc(nv * sizeof *Fr), *Fi = malloc(nv * sizeof *Fi);
    assert_ok(ew_scatter_volume(&at, &I, Fr, Fi, NULL));
    int c = n / 2;
    uint8_t *known = malloc(nv);
    fftw_complex *a = fftw_malloc(nv * sizeof *a);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                double r = sqrt((double)(z - c) * (z - c) + (y - c) * (y - c) + (x - c) * (x - c)) * ds;
                known[i] = r <= det.s_max_corner;
                size_t k = ((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n + (size_t)((x - c + n) % n);
                a[k][0] = known[i] ? Fr[i] : 0.0;
                a[k][1] = known[i] ? Fi[i] : 0.0;
            }
    fftw_plan p = fftw_plan_dft_3d(n, n, n, a, a, FFTW_BACKWARD, FFTW_ESTIMATE);
    fftw_execute(p);
    fftw_destroy_plan(p);
    float *truth = malloc(nv * sizeof *truth), *out = malloc(nv * sizeof *out);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                truth[((size_t)z * n + y) * n + x] =
                    (float)(a[((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n + (size_t)((x - c + n) % n)][0] / nv);
    ew_phase_config_t cfg = small_config();
    cfg.sw_threshold = 0.04;
    cfg.loops = 10;
    cfg.starts = 1;
    ew_phase_result_t res;
    ew_log_level_t lv = ew_log_get_level();
    ew_log_set_level(EW_LOG_WARN);
    assert_ok(ew_phase_run(&I, known, &cfg, &res));
    ew_log_set_level(lv);
    assert_close(res.voxel, 1.0 / (n * ds), 1e-12, 0);
    ew_phase_align_t al;
    assert_ok(ew_phase_align(truth, res.density, n, 1, out, &al));
    double fsc[64];
    fsc_of(n, truth, out, fsc);
    double d05 = 1.0 / ((n / 2) * ds); /* the grid's edge if the FSC never falls below 0.5 */
    for (int j = 1; j <= n / 2; j++)
        if (fsc[j] < 0.5) {
            double f = (fsc[j - 1] - 0.5) / (fsc[j - 1] - fsc[j]);
            d05 = 1.0 / ((j - 1 + f) * ds);
            break;
        }
    double edge = 1.0 / det.s_max_edge;
    if (!(d05 <= 1.25 * edge))
        fail_msg("FSC-0.5 resolution %.2f A, edge %.2f A (error %.4f)", d05, edge, res.error);
    print_message("2cex: n %d, voxel %.2f A, FSC-0.5 %.2f A, edge %.2f A, Fourier error %.4f\n", n, res.voxel, d05,
                  edge, res.error);
    ew_phase_result_free(&res);
    ew_rvol_free(&I);
    ew_atoms_free(&at);
    ew_detector_free(&det);
    fftw_free(a);
    free(Fr);
    free(Fi);
    free(known);
    free(truth);
    free(out);
}

static void test_intensity_of_density(void **state)
{
    (void)state;
    const int n = 15;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *I = malloc(nv * sizeof *I), *ref = malloc(nv * sizeof *ref);
    make_truth(n, rho, 1.0);
    intensity_of(n, rho, ref);
    assert_ok(ew_phase_intensity(rho, n, 1, I));
    double mx = 0;
    for (size_t i = 0; i < nv; i++) mx = fmax(mx, ref[i]);
    for (size_t i = 0; i < nv; i++) assert_close(I[i], ref[i], 1e-4, 1e-6 * mx);
    /* Friedel: I(s) = I(-s), voxel i <-> n - 1 - i for odd n */
    for (size_t i = 0; i < nv; i++) assert_close(I[i], I[nv - 1 - i], 1e-4, 1e-6 * mx);
    free(rho);
    free(I);
    free(ref);
}

static void test_phaser_loops_continue(void **state)
{
    (void)state;
    const int n = 21;
    size_t nv = (size_t)n * n * n;
    float *rho = malloc(nv * sizeof *rho), *I = malloc(nv * sizeof *I), *out = malloc(nv * sizeof *out);
    uint8_t *sup = malloc(nv);
    make_truth(n, rho, 1.0);
    intensity_of(n, rho, I);
    ew_rvol_t vol = {n, 0.01, I};
    assert_ok(ew_phase_support_autocorr(&vol, NULL, 1.0, 0.02, 1, sup));
    ew_phase_config_t c = small_config();
    c.loops = 2;
    ew_phaser_t *ph;
    assert_ok(ew_phaser_create(&ph, n, &c));
    assert_ok(ew_phaser_set_data(ph, &vol, NULL));
    double e0;
    assert_ok(ew_phaser_run(ph, sup, 0, out, sup, &e0));
    /* continue from that result with more loops: the error goes down */
    assert_ok(ew_phaser_set_iterate(ph, sup, out));
    ew_phaser_loops(ph, 10);
    double e1 = ew_phaser_finish(ph, out, sup);
    if (!(e1 < e0 && e1 < 0.05)) fail_msg("error %.4f -> %.4f", e0, e1);
    assert_close(ew_phaser_error(ph, out), e1, 1e-3, 1e-6);
    ew_phaser_free(ph);
    free(rho);
    free(I);
    free(out);
    free(sup);
}

static void test_bad_input(void **state)
{
    (void)state;
    const int n = 9;
    size_t nv = (size_t)n * n * n;
    float *I = calloc(nv, sizeof *I);
    uint8_t *mask = calloc(nv, 1);
    ew_phase_config_t c = small_config();
    ew_phaser_t *ph;
    assert_int_equal(ew_phaser_create(&ph, 2, &c), EW_ERR_ARG);
    assert_null(ph);
    assert_ok(ew_phaser_create(&ph, n, &c));
    ew_rvol_t wrong = {7, 0.01, I};
    assert_int_equal(ew_phaser_set_data(ph, &wrong, NULL), EW_ERR_ARG);
    ew_rvol_t vol = {n, 0.01, I};
    assert_int_equal(ew_phaser_set_data(ph, &vol, mask), EW_ERR_ARG); /* nothing measured */
    I[100] = NAN;
    assert_int_equal(ew_phaser_set_data(ph, &vol, NULL), EW_ERR_NUMERIC);
    assert_non_null(strstr(ew_error_message(), "voxel"));
    I[100] = 0;
    assert_ok(ew_phaser_set_data(ph, &vol, NULL));
    assert_int_equal(ew_phaser_init(ph, mask, 0), EW_ERR_ARG); /* empty support */
    ew_phaser_free(ph);
    ew_phaser_free(NULL);
    ew_phase_result_t res;
    c.starts = 0;
    assert_int_equal(ew_phase_run(&vol, NULL, &c, &res), EW_ERR_ARG);
    assert_null(res.density);
    free(I);
    free(mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_blur_matches_direct_convolution),
        cmocka_unit_test(test_truth_is_fixed_point),
        cmocka_unit_test(test_algorithms_converge_with_true_support),
        cmocka_unit_test(test_support_from_autocorrelation_contains_truth),
        cmocka_unit_test(test_align_shift_hand_sign),
        cmocka_unit_test(test_prtf),
        cmocka_unit_test(test_prtf_is_chapman),
        cmocka_unit_test(test_phase_blobs_full_data),
        cmocka_unit_test(test_phase_blobs_missing_centre_and_corners),
        cmocka_unit_test(test_phase_blobs_reference_recipe),
        cmocka_unit_test(test_recenter),
        cmocka_unit_test(test_intensity_of_density),
        cmocka_unit_test(test_phaser_loops_continue),
        cmocka_unit_test(test_phase_2cex_true_intensity),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
