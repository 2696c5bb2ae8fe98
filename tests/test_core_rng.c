/* Tests for src/core/rng.c: Philox known answers, streams, moments and
 * chi-square goodness of fit of every sampler, thread-count independence.
 * Seeds are fixed and thresholds are the 0.1% critical values: no retries. */
#include "testutil.h"

#include <omp.h>

#include "core/core.h"

/* Chi-square critical value at upper tail 0.001 (Wilson-Hilferty; accurate
 * to about 1% for dof >= 3). */
static double chi2_crit(int dof)
{
    double k = dof, z = 3.0902;
    double t = 1.0 - 2.0 / (9.0 * k) + z * sqrt(2.0 / (9.0 * k));
    return k * t * t * t;
}

/* Pearson chi-square of counts against probabilities p (sum 1) for n draws,
 * merging neighbouring bins until each expects at least 5. *dof gets the
 * degrees of freedom (merged bins - 1). */
static double chi2_stat(const double *count, const double *p, int nbin, double n, int *dof)
{
    double *mo = calloc((size_t)nbin, sizeof *mo), *me = calloc((size_t)nbin, sizeof *me);
    int m = 0;
    double oc = 0.0, ep = 0.0;
    for (int i = 0; i < nbin; i++) {
        oc += count[i];
        ep += p[i] * n;
        if (ep >= 5.0) {
            mo[m] = oc;
            me[m] = ep;
            m++;
            oc = ep = 0.0;
        }
    }
    if (ep > 0.0 || oc > 0.0) { /* a small remainder joins the last group */
        if (m == 0) m = 1;
        mo[m - 1] += oc;
        me[m - 1] += ep;
    }
    double chi = 0.0;
    for (int i = 0; i < m; i++) chi += (mo[i] - me[i]) * (mo[i] - me[i]) / me[i];
    free(mo);
    free(me);
    *dof = m - 1;
    return chi;
}

static void check_chi2(const char *name, const double *count, const double *p, int nbin, double n)
{
    int dof;
    double chi = chi2_stat(count, p, nbin, n, &dof);
    double crit = chi2_crit(dof);
    print_message("%-28s chi2 = %8.2f  dof = %3d  crit(0.1%%) = %7.2f\n", name, chi, dof, crit);
    assert_true(dof >= 2);
    assert_true(chi < crit);
}

/* ---- Philox ---- */

static void test_philox_kat(void **state)
{
    (void)state;
    /* Random123 kat_vectors, philox4x32 10 rounds */
    const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    const uint32_t key[3][2] = {{0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
    const uint32_t out[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                                {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                                {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    for (int k = 0; k < 3; k++) {
        uint32_t got[4];
        ew_philox4x32_10(ctr[k], key[k], got);
        for (int i = 0; i < 4; i++) assert_int_equal(got[i], out[k][i]);
    }
    /* the stream hands out Philox(ctr = (draw, 0, stream), key = seed) words in order */
    ew_rng_t r;
    uint64_t seed = 0x299f31d0a4093822ull, stream = 0x0370734413198a2eull;
    ew_rng_init(&r, seed, stream);
    uint32_t c[4] = {0, 0, 0x13198a2eu, 0x03707344u}, kk[2] = {0xa4093822u, 0x299f31d0u}, blk[4];
    for (uint32_t b = 0; b < 3; b++) {
        c[0] = b;
        ew_philox4x32_10(c, kk, blk);
        for (int i = 0; i < 4; i++) assert_int_equal(ew_rng_u32(&r), blk[i]);
    }
}

static void test_streams(void **state)
{
    (void)state;
    ew_rng_t a, b, c;
    ew_rng_init(&a, 1, 5);
    ew_rng_init(&b, 1, 5);
    ew_rng_init(&c, 1, 6);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ew_rng_u64(&a);
        assert_true(x == ew_rng_u64(&b));
        same += x == ew_rng_u64(&c);
    }
    assert_int_equal(same, 0);
    /* u64 is two u32 words, high first */
    ew_rng_init(&a, 9, 9);
    ew_rng_init(&b, 9, 9);
    uint64_t hi = ew_rng_u32(&b), lo = ew_rng_u32(&b);
    assert_true(ew_rng_u64(&a) == ((hi << 32) | lo));
    /* stream ids keep tag and index apart */
    assert_true(ew_rng_stream_id(1, 0) != ew_rng_stream_id(0, 1));
    assert_true(ew_rng_stream_id(3, 7) == ((3ull << 48) | 7ull));
}

/* ---- uniform and normal ---- */

static void test_uniform(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 2024, 0);
    const int n = 1000000, nb = 100;
    double s = 0, s2 = 0, cnt[100] = {0}, p[100];
    for (int i = 0; i < n; i++) {
        double u = ew_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        s += u;
        s2 += u * u;
        cnt[(int)(u * nb)] += 1;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    assert_close(mean, 0.5, 0, 5 * sqrt(1.0 / 12 / n));
    assert_close(var, 1.0 / 12, 0, 5 * sqrt(1.0 / 180 / n));
    for (int i = 0; i < nb; i++) p[i] = 1.0 / nb;
    check_chi2("uniform 100 bins", cnt, p, nb, n);
    double upmin = 1;
    for (int i = 0; i < 100000; i++) {
        double u = ew_rng_uniform_pos(&r);
        assert_true(u > 0.0 && u <= 1.0);
        if (u < upmin) upmin = u;
    }
    assert_true(upmin > 0.0);
    /* below: unbiased over 7 values */
    double c7[7] = {0}, p7[7];
    for (int i = 0; i < 70000; i++) c7[ew_rng_below(&r, 7)] += 1;
    for (int i = 0; i < 7; i++) p7[i] = 1.0 / 7;
    check_chi2("below(7)", c7, p7, 7, 70000);
    assert_true(ew_rng_below(&r, 1) == 0);
}

static double norm_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static void test_normal(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 77, 3);
    const int n = 1000000;
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    double cnt[62] = {0}, p[62];
    /* bins: (-inf, -3), [-3 + 0.1 k, ...) for k < 60, [3, inf) */
    for (int i = 0; i < n; i++) {
        double x = ew_rng_normal(&r);
        s1 += x;
        s2 += x * x;
        s3 += x * x * x;
        s4 += x * x * x * x;
        int b = x < -3 ? 0 : 1 + (int)floor((x + 3) / 0.1);
        if (x >= 3) b = 61;
        else if (b > 60) b = 60; /* rounding just below 3 */
        cnt[b] += 1;
    }
    assert_close(s1 / n, 0, 0, 5 / sqrt(n));
    assert_close(s2 / n, 1, 0, 5 * sqrt(2.0 / n));
    assert_close(s3 / n, 0, 0, 5 * sqrt(15.0 / n));
    assert_close(s4 / n, 3, 0, 5 * sqrt(96.0 / n));
    p[0] = norm_cdf(-3);
    p[61] = 1 - norm_cdf(3);
    for (int k = 0; k < 60; k++) p[1 + k] = norm_cdf(-3 + 0.1 * (k + 1)) - norm_cdf(-3 + 0.1 * k);
    check_chi2("normal 62 bins", cnt, p, 62, n);
}

/* ---- Poisson ---- */

static void poisson_gof(double mean, int n, uint64_t seed)
{
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    /* bins k in [lo, hi] plus two tails */
    int lo = (int)fmax(0, floor(mean - 7 * sqrt(mean) - 2));
    int hi = (int)ceil(mean + 8 * sqrt(mean) + 8);
    int nb = hi - lo + 3;
    double *cnt = calloc(nb, sizeof *cnt), *p = calloc(nb, sizeof *p);
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        uint64_t k = ew_rng_poisson(&r, mean);
        s += (double)k;
        s2 += (double)k * (double)k;
        int b = (int)k < lo ? 0 : (int)k > hi ? nb - 1 : 1 + (int)k - lo;
        cnt[b] += 1;
    }
    double below = 0, inside = 0;
    for (int k = 0; k < lo; k++) below += exp(k * log(mean) - mean - lgamma(k + 1.0));
    for (int k = lo; k <= hi; k++) {
        p[1 + k - lo] = exp(k * log(mean) - mean - lgamma(k + 1.0));
        inside += p[1 + k - lo];
    }
    p[0] = below;
    p[nb - 1] = fmax(0.0, 1.0 - below - inside);
    char name[64];
    snprintf(name, sizeof name, "poisson mean %g", mean);
    check_chi2(name, cnt, p, nb, n);
    double m = s / n, v = s2 / n - m * m;
    assert_close(m, mean, 0, 5 * sqrt(mean / n));
    assert_close(v, mean, 0, 6 * mean * sqrt(2.0 / n) + 5 * sqrt(mean / n));
    free(cnt);
    free(p);
}

static void test_poisson(void **state)
{
    (void)state;
    poisson_gof(0.5, 200000, 11);   /* inversion */
    poisson_gof(5.0, 200000, 12);   /* inversion */
    poisson_gof(9.99, 200000, 15);  /* inversion, at the switch */
    poisson_gof(10.0, 200000, 16);  /* PTRS, at the switch */
    poisson_gof(30.0, 200000, 13);  /* PTRS */
    poisson_gof(1e4, 200000, 14);   /* PTRS */
    ew_rng_t r;
    ew_rng_init(&r, 1, 1);
    assert_true(ew_rng_poisson(&r, 0.0) == 0);
    assert_true(ew_rng_poisson(&r, -1.0) == 0);
    assert_true(ew_rng_poisson(&r, NAN) == 0);
}

/* ---- gamma and lognormal ---- */

/* CDF of Gamma(k, 1) in closed form for k = 1/2 and k = 4. */
static double gamma_cdf(double k, double x)
{
    if (x <= 0) return 0;
    if (k == 0.5) return erf(sqrt(x));
    return 1 - exp(-x) * (1 + x + x * x / 2 + x * x * x / 6); /* k = 4 */
}

static void gamma_gof(double shape, double scale, uint64_t seed)
{
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    const int n = 300000, nb = 60;
    /* bins on x / scale: [0, xmax) in nb - 1 equal bins + tail */
    double xmax = shape == 0.5 ? 6.0 : 16.0;
    double cnt[60] = {0}, p[60];
    double s = 0;
    for (int i = 0; i < n; i++) {
        double x = ew_rng_gamma(&r, shape, scale);
        assert_true(x >= 0.0);
        s += x;
        double t = x / scale;
        int b = t >= xmax ? nb - 1 : (int)(t / xmax * (nb - 1));
        cnt[b] += 1;
    }
    for (int b = 0; b < nb - 1; b++)
        p[b] = gamma_cdf(shape, xmax * (b + 1) / (nb - 1)) - gamma_cdf(shape, xmax * b / (nb - 1));
    p[nb - 1] = 1 - gamma_cdf(shape, xmax);
    char name[64];
    snprintf(name, sizeof name, "gamma shape %g scale %g", shape, scale);
    check_chi2(name, cnt, p, nb, n);
    assert_close(s / n, shape * scale, 0, 5 * sqrt(shape) * scale / sqrt(n));
}

static void test_gamma(void **state)
{
    (void)state;
    gamma_gof(0.5, 2.0, 21);
    gamma_gof(4.0, 0.5, 22);
}

static void test_lognormal(void **state)
{
    (void)state;
    ew_rng_t r;
    ew_rng_init(&r, 31, 0);
    const double mu = 0.3, sigma = 0.7;
    const int n = 300000, nb = 50;
    double cnt[50] = {0}, p[50];
    /* bins in x: [0, 8) in 49 equal bins + tail */
    for (int i = 0; i < n; i++) {
        double x = ew_rng_lognormal(&r, mu, sigma);
        assert_true(x > 0.0);
        int b = x >= 8.0 ? nb - 1 : (int)(x / 8.0 * (nb - 1));
        cnt[b] += 1;
    }
    for (int b = 0; b < nb; b++) {
        double x0 = 8.0 * b / (nb - 1), x1 = 8.0 * (b + 1) / (nb - 1);
        double c0 = b == 0 ? 0 : norm_cdf((log(x0) - mu) / sigma);
        double c1 = b == nb - 1 ? 1 : norm_cdf((log(x1) - mu) / sigma);
        p[b] = c1 - c0;
    }
    check_chi2("lognormal mu 0.3 sigma 0.7", cnt, p, nb, n);
}

/* ---- histogram sampler ---- */

static void test_hist(void **state)
{
    (void)state;
    const double w[8] = {1.0, 0.0, 3.0, 2.0, 0.5, 0.0, 7.0, 0.25};
    ew_hist_sampler_t h;
    assert_ok(ew_hist_sampler_init(&h, w, 8));
    assert_close(h.cdf[7], 1.0, 0, 0);
    ew_rng_t r;
    ew_rng_init(&r, 41, 0);
    const int n = 200000;
    double cnt[8] = {0}, p[6], c6[6];
    for (int i = 0; i < n; i++) {
        size_t b = ew_hist_sampler_draw(&h, &r);
        assert_true(b < 8);
        cnt[b] += 1;
    }
    assert_true(cnt[1] == 0 && cnt[5] == 0);
    const int nz[6] = {0, 2, 3, 4, 6, 7};
    for (int i = 0; i < 6; i++) {
        p[i] = w[nz[i]] / 13.75;
        c6[i] = cnt[nz[i]];
    }
    check_chi2("histogram sampler", c6, p, 6, n);
    ew_hist_sampler_free(&h);
    ew_hist_sampler_free(NULL);
    /* one bin; errors */
    double one = 2.0;
    assert_ok(ew_hist_sampler_init(&h, &one, 1));
    assert_int_equal(ew_hist_sampler_draw(&h, &r), 0);
    ew_hist_sampler_free(&h);
    const double bad1[2] = {1.0, -1.0}, bad2[2] = {0.0, 0.0}, bad3[2] = {1.0, INFINITY};
    assert_int_equal(ew_hist_sampler_init(&h, bad1, 2), EW_ERR_ARG);
    assert_int_equal(ew_hist_sampler_init(&h, bad2, 2), EW_ERR_ARG);
    assert_int_equal(ew_hist_sampler_init(&h, bad3, 2), EW_ERR_ARG);
    assert_int_equal(ew_hist_sampler_init(&h, &one, 0), EW_ERR_ARG);
    assert_null(h.cdf);
}

/* ---- thread-count independence ---- */

static void draw_items(double *out, int nitem, int nthread)
{
    omp_set_num_threads(nthread);
#pragma omp parallel for schedule(dynamic, 3)
    for (int i = 0; i < nitem; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 555, ew_rng_stream_id(EW_RNG_TAG_NOISE, (uint64_t)i));
        double acc = ew_rng_normal(&r);
        acc += 1e-3 * (double)ew_rng_poisson(&r, 3.0 + i % 20);
        acc += 1e-6 * ew_rng_gamma(&r, 0.5 + i % 3, 1.0);
        out[4 * i] = acc;
        out[4 * i + 1] = ew_rng_uniform(&r);
        out[4 * i + 2] = ew_rng_lognormal(&r, 0, 1);
        out[4 * i + 3] = (double)ew_rng_poisson(&r, 50.0);
    }
}

static void test_threads(void **state)
{
    (void)state;
    const int n = 4000;
    double *a = malloc(4 * n * sizeof *a), *b = malloc(4 * n * sizeof *b);
    int saved = omp_get_max_threads();
    draw_items(a, n, 1);
    draw_items(b, n, 2);
    omp_set_num_threads(saved);
    assert_memory_equal(a, b, 4 * n * sizeof *a);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat), cmocka_unit_test(test_streams),
        cmocka_unit_test(test_uniform),    cmocka_unit_test(test_normal),
        cmocka_unit_test(test_poisson),    cmocka_unit_test(test_gamma),
        cmocka_unit_test(test_lognormal),  cmocka_unit_test(test_hist),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
