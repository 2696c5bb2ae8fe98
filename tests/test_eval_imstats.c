/* Tests for src/eval/imstats.h. */
#include "testutil.h"

#include "core/core.h"
#include "eval/eval.h"

static float *noise_images(size_t nimg, int ny, int nx, double mean, double sigma, uint64_t seed)
{
    size_t np = (size_t)nx * ny;
    float *v = malloc(nimg * np * sizeof *v);
    for (size_t k = 0; k < nimg; k++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, k);
        for (size_t i = 0; i < np; i++) v[k * np + i] = (float)(mean + sigma * ew_rng_normal(&r));
    }
    return v;
}

static void test_spectrum_white_noise(void **state)
{
    (void)state;
    const int ny = 48, nx = 64;
    const size_t nimg = 40;
    float *img = noise_images(nimg, ny, nx, 0.0, 2.0, 1);
    ew_spectrum_t s;
    assert_ok(ew_image_power_spectrum(img, nimg, ny, nx, 1.5, &s));
    assert_int_equal(s.nbin, 25);
    assert_close(s.freq[24], 24.0 / (48 * 1.5), 1e-12, 0);
    /* flat at sigma^2 = 4, within 5 standard errors (the power of one
     * frequency is exponential: relative sd 1 per independent value) */
    for (int j = 1; j < s.nbin; j++) {
        double se = 4.0 / sqrt(0.5 * s.count[j] * nimg);
        assert_close(s.power[j], 4.0, 0, 5 * se + 1e-9);
    }
    ew_spectrum_distance_t d;
    assert_ok(ew_spectrum_distance(&s, &s, 0.0, 1.0, &d));
    assert_close(d.rms_log10, 0.0, 0, 0);
    /* 10x the amplitude: 100x the power, 2 decades */
    size_t np = (size_t)nx * ny;
    for (size_t i = 0; i < nimg * np; i++) img[i] *= 10.0f;
    ew_spectrum_t s10;
    assert_ok(ew_image_power_spectrum(img, nimg, ny, nx, 1.5, &s10));
    assert_ok(ew_spectrum_distance(&s10, &s, 0.01, 1.0, &d));
    assert_close(d.rms_log10, 2.0, 1e-6, 0);
    assert_close(d.mean_log10, 2.0, 1e-6, 0);
    assert_int_equal(d.nbin_used, 24);
    const char *path = ew_test_tmpfile("spec.txt");
    assert_ok(ew_spectrum_write_table(path, &s));
    size_t len = 0;
    unsigned char *txt = ew_test_read_bytes(path, &len);
    assert_non_null(txt);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += txt[i] == '\n';
    assert_int_equal(lines, 2 + 25);
    free(txt);
    /* errors */
    ew_spectrum_t t;
    assert_int_equal(ew_image_power_spectrum(img, 0, ny, nx, 1.0, &t), EW_ERR_ARG);
    assert_int_equal(ew_image_power_spectrum(img, 1, 2, nx, 1.0, &t), EW_ERR_ARG);
    assert_int_equal(ew_image_power_spectrum(img, 1, ny, nx, 0.0, &t), EW_ERR_ARG);
    assert_ok(ew_image_power_spectrum(img, 1, 32, 32, 1.0, &t));
    assert_int_equal(ew_spectrum_distance(&s, &t, 0, 1, &d), EW_ERR_ARG);
    ew_spectrum_free(&t);
    ew_spectrum_free(&s);
    ew_spectrum_free(&s10);
    ew_spectrum_free(NULL);
    free(img);
}

/* a cosine along x lands in its ring; Parseval for band-limited content */
static void test_spectrum_cosine_parseval(void **state)
{
    (void)state;
    const int ny = 32, nx = 48, kx = 12; /* 12/48 = 0.25 cycles/px -> ring 0.25 * 32 = 8 */
    float *img = malloc((size_t)nx * ny * sizeof *img);
    double sum2 = 0;
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) {
            double v = 3.0 * cos(2 * EW_PI * kx * x / nx);
            img[y * nx + x] = (float)v;
            sum2 += v * v;
        }
    ew_spectrum_t s;
    assert_ok(ew_image_power_spectrum(img, 1, ny, nx, 1.0, &s));
    double tot = 0;
    for (int j = 0; j < s.nbin; j++) {
        tot += s.power[j] * s.count[j];
        if (j != 8) assert_close(s.power[j], 0.0, 0, 1e-6);
    }
    assert_true(s.power[8] > 1.0);
    assert_close(s.freq[8], 0.25, 1e-12, 0);
    assert_close(tot, sum2, 1e-5, 0); /* sum over frequencies of the power = sum x^2 */
    ew_spectrum_free(&s);
    free(img);
}

static double norm_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static void test_histograms(void **state)
{
    (void)state;
    const size_t n = 200000;
    float *a = noise_images(1, 1, (int)n, 0.0, 1.0, 5), *b = noise_images(1, 1, (int)n, 0.5, 1.0, 6);
    double lo, hi;
    assert_ok(ew_histogram_range(a, n, b, n, &lo, &hi));
    ew_histogram_t ha, hb, hc;
    assert_ok(ew_histogram(a, n, -4, 4.5, 170, &ha));
    assert_ok(ew_histogram(b, n, -4, 4.5, 170, &hb));
    assert_close(ha.total, n, 0, 0);
    double sum = ha.below + ha.above;
    for (int k = 0; k < ha.nbins; k++) sum += ha.count[k];
    assert_close(sum, n, 0, 0);
    /* bin contents follow the normal distribution */
    for (int k = 40; k < 130; k += 10) {
        double x0 = -4 + k * 0.05, x1 = x0 + 0.05;
        double e = n * (norm_cdf(x1) - norm_cdf(x0));
        assert_close(ha.count[k], e, 0, 5 * sqrt(e));
    }
    ew_hist_distance_t d;
    assert_ok(ew_histogram_distance(&ha, &ha, &d));
    assert_close(d.tv + d.js + d.ks + d.w1, 0.0, 0, 1e-12);
    /* N(0,1) vs N(0.5,1): W1 = 0.5, TV = KS = 2 Phi(0.25) - 1 */
    assert_ok(ew_histogram_distance(&ha, &hb, &d));
    double tvx = 2 * norm_cdf(0.25) - 1;
    print_message("N(0,1) vs N(0.5,1): W1 %.4f (0.5), TV %.4f, KS %.4f (%.4f), JS %.4f bits\n", d.w1, d.tv, d.ks,
                  tvx, d.js);
    assert_close(d.w1, 0.5, 0, 0.01);
    assert_close(d.ks, tvx, 0, 0.01);
    assert_close(d.tv, tvx, 0, 0.02);
    /* JS of the two continuous densities (numerical integration): 0.04373 bits */
    assert_close(d.js, 0.04373, 0, 0.003);
    /* disjoint point masses: TV = KS = JS = 1, W1 = the distance */
    float p0[3] = {1.0f, 1.0f, NAN}, p1[2] = {3.0f, 3.0f};
    assert_ok(ew_histogram(p0, 3, 0, 4, 4, &hc));
    assert_close(hc.nonfinite, 1, 0, 0);
    ew_histogram_t hd;
    assert_ok(ew_histogram(p1, 2, 0, 4, 4, &hd));
    assert_ok(ew_histogram_distance(&hc, &hd, &d));
    assert_close(d.tv, 1, 0, 1e-12);
    assert_close(d.ks, 1, 0, 1e-12);
    assert_close(d.js, 1, 0, 1e-12);
    assert_close(d.w1, 2, 0, 1e-12);
    const char *path = ew_test_tmpfile("hist.txt");
    assert_ok(ew_histogram_write_table(path, &hc));
    /* errors */
    ew_histogram_t he;
    assert_int_equal(ew_histogram(p0, 3, 1, 1, 4, &he), EW_ERR_ARG);
    assert_int_equal(ew_histogram(p0, 3, 0, 1, 0, &he), EW_ERR_ARG);
    assert_int_equal(ew_histogram_distance(&ha, &hc, &d), EW_ERR_ARG);
    float nn[1] = {NAN};
    assert_int_equal(ew_histogram_range(nn, 1, nn, 0, &lo, &hi), EW_ERR_ARG);
    ew_histogram_free(&ha);
    ew_histogram_free(&hb);
    ew_histogram_free(&hc);
    ew_histogram_free(&hd);
    ew_histogram_free(NULL);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spectrum_white_noise),
        cmocka_unit_test(test_spectrum_cosine_parseval),
        cmocka_unit_test(test_histograms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
