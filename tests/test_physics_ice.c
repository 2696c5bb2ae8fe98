/* Tests of physics/ice: mean inner potential, the random field's spectrum
 * (Wiener-Khinchin: measured periodogram vs the model), determinism,
 * thickness fields and Icebreaker-style weights. */
#include "testutil.h"

#include <fftw3.h>
#include <omp.h>

#include "physics/ice.h"
#include "physics/peng.h"

static void test_mean_potential(void **state)
{
    (void)state;
    ew_ice_params_t p;
    ew_ice_params_default(&p);
    double v = ew_ice_mean_potential(&p);
    /* rho C (f_O(0) + 2 f_H(0)), and the measured mean inner potential of
     * vitreous ice is 4.5 +- 0.5 V */
    double sum_o = 0.0974 + 0.2921 + 0.6910 + 0.6990 + 0.2039, sum_h = 0.0349 + 0.1201 + 0.1970 + 0.0573 + 0.1195;
    assert_close(v, 0.0314 * EW_PENG_C_VA2 * (sum_o + 2 * sum_h), 1e-5, 0);
    assert_true(v > 4.0 && v < 5.0);
    /* structure factor: small at 0, peak at the 3.7 A ring, 1 at high s */
    assert_true(ew_ice_structure_factor(0.0) < 0.05);
    assert_true(ew_ice_structure_factor(0.269) > 2.0);
    assert_close(ew_ice_structure_factor(1.5), 1.0, 1e-3, 0);
}

static void test_field_spectrum(void **state)
{
    (void)state;
    ew_ice_params_t p;
    ew_ice_params_default(&p);
    int n = 256;
    double px = 1.0;
    ew_ice_synth_t g;
    assert_ok(ew_ice_synth_init(&g, &p, n, n, px, 0));
    int reps = 6;
    float *f = fftwf_malloc(sizeof(float) * n * n);
    fftwf_complex *F = fftwf_malloc(sizeof(fftwf_complex) * n * (n / 2 + 1));
    fftwf_plan pl = fftwf_plan_dft_r2c_2d(n, n, f, F, FFTW_ESTIMATE);
    enum { NS = 20 };
    double meas[NS] = {0}, model[NS] = {0};
    int cnt[NS] = {0};
    double var = 0.0, var_model = 0.0;
    for (int r = 0; r < reps; r++) {
        ew_ice_synth_field(&g, 7, 1000 + 10000 * r, f);
        double m = 0, m2 = 0;
        for (int i = 0; i < n * n; i++) m += f[i], m2 += (double)f[i] * f[i];
        m /= n * n;
        assert_close(m, 0.0, 0, 1e-3);
        var += m2 / (n * n) / reps;
        fftwf_execute(pl);
        for (int iy = 0; iy < n; iy++)
            for (int ix = 1; ix < n / 2; ix++) {
                double sx = ix / (n * px), sy = (iy <= n / 2 ? iy : iy - n) / (n * px), s = sqrt(sx * sx + sy * sy);
                int b = (int)(s / 0.5 * NS);
                if (b >= NS) continue;
                double re = F[iy * (n / 2 + 1) + ix][0], im = F[iy * (n / 2 + 1) + ix][1];
                /* periodogram |F|^2 pixel^2 / N estimates P(s) sinc^2 */
                meas[b] += (re * re + im * im) * px * px / (n * n);
                double sc = (sx > 0 ? sin(EW_PI * sx * px) / (EW_PI * sx * px) : 1) *
                            (sy != 0 ? sin(EW_PI * sy * px) / (EW_PI * sy * px) : 1);
                model[b] += ew_ice_psd(&p, s) * sc * sc;
                cnt[b]++;
            }
    }
    for (int b = 2; b < NS; b++) assert_close(meas[b] / model[b], 1.0, 0.06, 0);
    /* total variance: (1/(N px^2)) sum over all frequencies of P sinc^2 */
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            if (!ix && !iy) continue;
            double sx = (ix <= n / 2 ? ix : ix - n) / (n * px), sy = (iy <= n / 2 ? iy : iy - n) / (n * px);
            double sc = (sx != 0 ? sin(EW_PI * sx * px) / (EW_PI * sx * px) : 1) *
                        (sy != 0 ? sin(EW_PI * sy * px) / (EW_PI * sy * px) : 1);
            var_model += ew_ice_psd(&p, sqrt(sx * sx + sy * sy)) * sc * sc / (n * n * px * px);
        }
    assert_close(var, var_model, 0.02, 0);
    /* the shell with the most power per frequency ring beyond 0.1 1/A is the 3.7 A ring */
    int best = 0;
    for (int b = 4; b < NS; b++)
        if (meas[b] / cnt[b] > meas[best] / cnt[best] || best < 4) best = b;
    double s_best = (best + 0.5) * 0.5 / NS;
    assert_true(fabs(s_best - 0.269) < 0.03);
    printf("ice field: sd %.1f V A per sqrt(A) of ice at 1 A/px (model %.1f); spectral peak at %.2f A\n", sqrt(var),
           sqrt(var_model), 1.0 / s_best);
    fftwf_destroy_plan(pl);
    fftwf_free(f);
    fftwf_free(F);
    ew_ice_synth_free(&g);
}

static void test_field_deterministic(void **state)
{
    (void)state;
    ew_ice_params_t p;
    ew_ice_params_default(&p);
    ew_ice_synth_t g;
    int nx = 96, ny = 70;
    assert_ok(ew_ice_synth_init(&g, &p, nx, ny, 1.3, 1));
    float *a = ew_alloc_array((size_t)nx * ny, 4), *b = ew_alloc_array((size_t)nx * ny, 4);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    ew_ice_synth_field(&g, 3, 55, a);
    omp_set_num_threads(nt > 1 ? nt : 2);
    ew_ice_synth_field(&g, 3, 55, b);
    omp_set_num_threads(nt);
    assert_memory_equal(a, b, sizeof(float) * nx * ny);
    ew_ice_synth_field(&g, 3, 56, b);
    assert_true(memcmp(a, b, sizeof(float) * nx * ny) != 0);
    ew_free(a);
    ew_free(b);
    ew_ice_synth_free(&g);
}

static void test_thickness(void **state)
{
    (void)state;
    ew_ice_params_t p;
    ew_ice_params_default(&p);
    p.thickness = 400.0;
    p.thickness_rel_sd = 0.15;
    p.thickness_corr = 40.0;
    int n = 1024;
    float *t = ew_alloc_array((size_t)n * n, 4);
    ew_rng_t r;
    ew_rng_init(&r, 1, 2);
    assert_ok(ew_ice_thickness_field(&p, n, n, 2.0, NULL, 0, 0, &r, t));
    double m = 0, m2 = 0, dmax = 0;
    for (int i = 0; i < n * n; i++) {
        m += t[i];
        m2 += (double)t[i] * t[i];
        if (i % n) dmax = fmax(dmax, fabs(t[i] - t[i - 1]));
    }
    m /= n * n;
    double sd = sqrt(m2 / (n * n) - m * m);
    assert_close(m, 400.0, 0.03, 0);
    assert_close(sd / 400.0, 0.15, 0.12, 0);
    /* smooth: neighbouring pixels (1/20 of a knot spacing) differ little */
    assert_true(dmax < 0.2 * 400.0 * 0.15 * 2);
    /* a weight map: resampled and scaled to mean thickness */
    float w[4] = {1, 3, 1, 3};
    assert_ok(ew_ice_thickness_field(&p, 64, 32, 2.0, w, 2, 2, &r, t));
    m = 0;
    for (int i = 0; i < 64 * 32; i++) m += t[i];
    assert_close(m / (64 * 32), 400.0, 1e-5, 0);
    assert_close(t[5 * 64 + 0], 200.0, 1e-5, 0);
    assert_close(t[5 * 64 + 63], 600.0, 1e-5, 0);
    float bad[1] = {-1};
    assert_int_equal(ew_ice_thickness_field(&p, 8, 8, 1.0, bad, 1, 1, &r, t), EW_ERR_ARG);
    ew_free(t);
}

static void test_icebreaker_weights(void **state)
{
    (void)state;
    int nx = 256, ny = 128;
    float *img = ew_alloc_array((size_t)nx * ny, 4), *w = ew_alloc_array((size_t)nx * ny, 4);
    ew_rng_t r;
    ew_rng_init(&r, 9, 9);
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++)
            img[y * nx + x] = (float)((x < nx / 2 ? 30.0 : 40.0) + 3.0 * ew_rng_normal(&r));
    assert_ok(ew_ice_weight_from_micrograph(img, nx, ny, 1.0, 8.0, 8, 0.5, w));
    double m = 0, left = 0, right = 0, lo = 1e9, hi = -1e9;
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) {
            double v = w[y * nx + x];
            m += v;
            if (x > 16 && x < nx / 2 - 16) left += v;
            if (x > nx / 2 + 16 && x < nx - 16) right += v;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    assert_close(m / (nx * ny), 1.0, 1e-4, 0);
    assert_true(left > right * 1.2); /* darker = thicker */
    assert_close(hi - lo, 0.5, 1e-4, 0);
    ew_free(img);
    ew_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mean_potential), cmocka_unit_test(test_field_spectrum),
        cmocka_unit_test(test_field_deterministic), cmocka_unit_test(test_thickness),
        cmocka_unit_test(test_icebreaker_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
