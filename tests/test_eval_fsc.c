/* Tests for src/eval/fsc.h and prtf.h. */
#include "testutil.h"

#include "core/core.h"
#include "eval/eval.h"

static float *noise_vol(int n, uint64_t seed, double sigma)
{
    size_t nv = (size_t)n * n * n;
    float *v = malloc(nv * sizeof *v);
    for (size_t i = 0; i < nv; i++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, i);
        v[i] = (float)(sigma * ew_rng_normal(&r));
    }
    return v;
}

static void test_fsc_self(void **state)
{
    (void)state;
    const int n = 32;
    float *a = noise_vol(n, 1, 1.0);
    ew_shell_curve_t c;
    assert_ok(ew_fsc_density(a, a, n, 2.0, 1.0, &c));
    assert_int_equal(c.nshell, 17);
    for (int j = 0; j < c.nshell; j++) assert_close(c.value[j], 1.0, 0, 1e-9);
    assert_close(c.s[16], 16.0 / (32 * 2.0), 1e-12, 0);
    /* scale invariance, and a negated map anti-correlates */
    size_t nv = (size_t)n * n * n;
    float *b = malloc(nv * sizeof *b);
    for (size_t i = 0; i < nv; i++) b[i] = -3.0f * a[i];
    ew_shell_curve_t d;
    assert_ok(ew_fsc_density(a, b, n, 2.0, 1.0, &d));
    for (int j = 0; j < d.nshell; j++) assert_close(d.value[j], -1.0, 0, 1e-9);
    /* voxel counts: Hermitian-weighted half grid = full centred grid */
    float *fa = calloc(2 * nv, sizeof *fa);
    for (size_t i = 0; i < nv; i++) fa[2 * i] = a[i];
    ew_shell_curve_t e;
    assert_ok(ew_fsc_fourier(fa, fa, n, 1.0 / 64, 1.0, &e));
    for (int j = 0; j < e.nshell; j++) {
        assert_close(e.count[j], c.count[j], 0, 0);
        assert_close(e.value[j], 1.0, 0, 1e-9);
        assert_close(e.s[j], c.s[j], 1e-12, 0);
    }
    assert_close(e.count[0], 1, 0, 0);
    assert_close(e.count[1], 6 + 12, 0, 0); /* |k| in [0.5, 1.5): 6 faces, 12 edges (corners are at 1.73) */
    /* intensities: sqrt(I) scaled stays 1 */
    for (size_t i = 0; i < nv; i++) b[i] = a[i] * a[i] * 4.0f;
    float *a2 = malloc(nv * sizeof *a2);
    for (size_t i = 0; i < nv; i++) a2[i] = a[i] * a[i];
    ew_shell_curve_t f;
    assert_ok(ew_fsc_intensity(a2, b, n, 0.01, 2.0, &f));
    assert_int_equal(f.nshell, 9);
    for (int j = 0; j < f.nshell; j++) assert_close(f.value[j], 1.0, 0, 1e-9);
    /* negative (unmeasured) and non-finite voxels are skipped */
    double cnt_before = f.count[3];
    ew_shell_curve_free(&f);
    for (size_t i = 0; i < nv; i += 7) b[i] = -1.0f;
    b[1] = NAN;
    assert_ok(ew_fsc_intensity(a2, b, n, 0.01, 2.0, &f));
    assert_close(f.count[0], 0, 0, 0); /* the centre voxel is one of them: an empty shell reads 0 */
    assert_close(f.value[0], 0, 0, 0);
    for (int j = 1; j < f.nshell; j++) assert_close(f.value[j], 1.0, 0, 1e-9);
    assert_true(f.count[3] < cnt_before);
    ew_shell_curve_free(&c);
    ew_shell_curve_free(&d);
    ew_shell_curve_free(&e);
    ew_shell_curve_free(&f);
    ew_shell_curve_free(NULL);
    free(a);
    free(b);
    free(a2);
    free(fa);
}

/* independent noise: FSC_j sqrt(N_j) has mean 0 and standard deviation 1 */
static void test_fsc_noise(void **state)
{
    (void)state;
    const int n = 48;
    double s1 = 0, s2 = 0;
    int m = 0;
    for (int pair = 0; pair < 4; pair++) {
        float *a = noise_vol(n, 100 + pair, 1.0), *b = noise_vol(n, 200 + pair, 2.0);
        ew_shell_curve_t c;
        assert_ok(ew_fsc_density(a, b, n, 1.0, 1.0, &c));
        for (int j = 1; j < c.nshell; j++) {
            double z = c.value[j] * sqrt(c.count[j]);
            s1 += z;
            s2 += z * z;
            m++;
        }
        ew_shell_curve_free(&c);
        free(a);
        free(b);
    }
    double mean = s1 / m, sd = sqrt(s2 / m - mean * mean);
    print_message("noise FSC: %d shells, mean z = %.3f, sd z = %.3f (expected 0, 1)\n", m, mean, sd);
    assert_true(fabs(mean) < 4.0 / sqrt(m));
    assert_true(sd > 0.75 && sd < 1.25);
}

/* signal + independent noise of equal power: FSC = S / (S + N) = 0.5 */
static void test_fsc_snr(void **state)
{
    (void)state;
    const int n = 40;
    size_t nv = (size_t)n * n * n;
    float *s = noise_vol(n, 7, 1.0), *na = noise_vol(n, 8, 1.0), *nb = noise_vol(n, 9, 1.0);
    for (size_t i = 0; i < nv; i++) {
        na[i] += s[i];
        nb[i] += s[i];
    }
    ew_shell_curve_t c;
    assert_ok(ew_fsc_density(na, nb, n, 1.5, 1.0, &c));
    for (int j = 3; j < c.nshell; j++) assert_close(c.value[j], 0.5, 0, 5.0 / sqrt(c.count[j]));
    ew_shell_curve_free(&c);
    free(s);
    free(na);
    free(nb);
}

static void test_crossing_and_table(void **state)
{
    (void)state;
    ew_shell_curve_t c;
    assert_ok(ew_shell_curve_alloc(&c, 40, 0.01, 1.0));
    assert_int_equal(c.nshell, 21);
    for (int j = 0; j < c.nshell; j++) {
        c.value[j] = 1.0 - j / 10.0;
        c.count[j] = 10;
    }
    double s;
    assert_int_equal(ew_curve_crossing(&c, 0.5, &s), 1);
    assert_close(s, 0.05, 1e-12, 0);
    assert_close(ew_curve_resolution(&c, 0.143), 1.0 / (0.01 * 8.57), 1e-9, 0);
    assert_int_equal(ew_curve_crossing(&c, -5.0, &s), 0);
    assert_close(s, 0.2, 1e-12, 0);
    assert_int_equal(ew_curve_crossing(&c, 0.95, &s), -1);
    assert_true(isinf(ew_curve_resolution(&c, 0.95)));
    const double thr[2] = {0.5, 0.143};
    const char *path = ew_test_tmpfile("fsc.txt");
    assert_ok(ew_curve_write_table(path, &c, "FSC", thr, 2));
    size_t len = 0;
    char *txt = (char *)ew_test_read_bytes(path, &len);
    assert_non_null(txt);
    txt = realloc(txt, len + 1);
    txt[len] = 0;
    assert_non_null(strstr(txt, "# FSC resolution at 0.5: 20.0000 A"));
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += txt[i] == '\n';
    assert_int_equal(lines, 2 + 1 + 21);
    free(txt);
    assert_int_not_equal(ew_curve_write_table("/nonexistent-dir/x.txt", &c, "FSC", thr, 2), EW_OK);
    ew_shell_curve_free(&c);
    /* argument errors */
    float v[64] = {0};
    assert_int_equal(ew_fsc_density(v, v, 2, 1.0, 1.0, &c), EW_ERR_ARG);
    assert_int_equal(ew_fsc_intensity(v, v, 4, 0.0, 1.0, &c), EW_ERR_ARG);
    assert_int_equal(ew_fsc_fourier(v, v, 4, 1.0, 0.5, &c), EW_ERR_ARG);
    assert_null(c.value);
}

/* PRTF: identical and constant-phase-shifted copies give 1; random phases
 * beyond radius r0 give about sqrt(pi / 4K), so the 1/e crossing sits near r0 */
static void test_prtf(void **state)
{
    (void)state;
    const int n = 32, K = 16, r0 = 8, c = n / 2;
    size_t nv = (size_t)n * n * n;
    float *vol[16];
    float *base = noise_vol(n, 3, 1.0);
    for (int k = 0; k < K; k++) {
        vol[k] = malloc(2 * nv * sizeof(float));
        double ph0 = 2 * EW_PI * k / K; /* a global phase offset */
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    size_t i = ((size_t)z * n + y) * n + x;
                    double r = sqrt((double)(x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c));
                    double amp = 1.0 + fabs(base[i]), ph = ph0;
                    if (r > r0 + 0.5) {
                        ew_rng_t rg;
                        ew_rng_init(&rg, 77 + k, i);
                        ph = 2 * EW_PI * ew_rng_uniform(&rg);
                    }
                    vol[k][2 * i] = (float)(amp * cos(ph));
                    vol[k][2 * i + 1] = (float)(amp * sin(ph));
                }
    }
    ew_shell_curve_t p;
    assert_ok(ew_prtf((const float *const *)vol, K, n, 0.02, 1.0, 1, &p));
    /* (the incoherent shells perturb the global phase estimate slightly) */
    for (int j = 0; j <= r0; j++) assert_close(p.value[j], 1.0, 0, 1e-2);
    for (int j = r0 + 1; j < p.nshell; j++) assert_close(p.value[j], sqrt(EW_PI / (4.0 * K)), 0.15, 0);
    double res = ew_curve_resolution(&p, EW_PRTF_THRESHOLD);
    print_message("PRTF 1/e resolution %.3f A (coherent to shell %d = %.3f A)\n", res, r0, 1 / (r0 * 0.02));
    assert_true(res < 1 / (r0 * 0.02) && res > 1 / ((r0 + 1) * 0.02));
    ew_shell_curve_free(&p);
    /* without phase alignment the constant offsets wash out the coherent part */
    assert_ok(ew_prtf((const float *const *)vol, K, n, 0.02, 1.0, 0, &p));
    assert_true(p.value[2] < 0.1);
    ew_shell_curve_free(&p);
    /* fully coherent copies with global phase offsets: exactly 1 */
    for (int k = 0; k < K; k++) {
        double ph0 = 2 * EW_PI * k / K;
        for (size_t i = 0; i < nv; i++) {
            double amp = 1.0 + fabs(base[i]);
            vol[k][2 * i] = (float)(amp * cos(ph0 + 0.1 * base[i]));
            vol[k][2 * i + 1] = (float)(amp * sin(ph0 + 0.1 * base[i]));
        }
    }
    assert_ok(ew_prtf((const float *const *)vol, K, n, 0.02, 1.0, 1, &p));
    for (int j = 0; j < p.nshell; j++) assert_close(p.value[j], 1.0, 0, 1e-5);
    ew_shell_curve_free(&p);
    assert_int_equal(ew_prtf((const float *const *)vol, 1, n, 0.02, 1.0, 1, &p), EW_ERR_ARG);
    for (int k = 0; k < K; k++) free(vol[k]);
    free(base);
}

/* Shell-centred intensity FSC. Oracle: I_k = (m(r) + g_k)^2 with m a radial
 * profile shared by both volumes and g_1, g_2 independent zero-mean noise
 * fields. The plain FSC of sqrt(I) is dominated by m and stays near 1; the
 * centred FSC sees only g_1 against g_2 and scatters around 0; with
 * g_2 = g_1 it is exactly 1; a spherically symmetric volume scores 0. */
static void test_fsc_intensity_centred(void **state)
{
    (void)state;
    const int n = 33, c = n / 2;
    size_t nv = (size_t)n * n * n;
    float *a = malloc(nv * sizeof *a), *b = malloc(nv * sizeof *b), *sph = malloc(nv * sizeof *sph);
    ew_rng_t r;
    ew_rng_init(&r, 5, 0);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                double r2 = (double)(x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c);
                int sh = ew_shell_index(r2, 1.0, n); /* the profile is constant within a shell */
                double m = 10.0 * exp(-(sh < 0 ? n : sh) / 8.0) + 2.0;
                double g1 = 0.5 * ew_rng_normal(&r), g2 = 0.5 * ew_rng_normal(&r);
                a[i] = (float)((m + g1) * (m + g1));
                b[i] = (float)((m + g2) * (m + g2));
                sph[i] = (float)(m * m);
            }
    ew_shell_curve_t plain, cen, self, flat;
    assert_ok(ew_fsc_intensity(a, b, n, 0.01, 1.0, &plain));
    assert_ok(ew_fsc_intensity_centred(a, b, n, 0.01, 1.0, &cen));
    assert_ok(ew_fsc_intensity_centred(a, a, n, 0.01, 1.0, &self));
    assert_ok(ew_fsc_intensity_centred(a, sph, n, 0.01, 1.0, &flat));
    double pmin = 1, csum = 0, csq = 0;
    int k = 0;
    for (int j = 2; j < plain.nshell; j++) {
        if (!(plain.count[j] > 50)) continue;
        if (plain.value[j] < pmin) pmin = plain.value[j];
        double z = cen.value[j] * sqrt(cen.count[j]);
        csum += z;
        csq += z * z;
        k++;
        assert_close(self.value[j], 1.0, 0, 1e-9);
        assert_close(flat.value[j], 0.0, 0, 1e-9);
    }
    assert_true(k > 8);
    double mean = csum / k, sd = sqrt(csq / k - mean * mean);
    print_message("plain FSC(sqrt I) min %.3f; centred FSC x sqrt(N): mean %.2f sd %.2f over %d shells\n", pmin,
                  mean, sd, k);
    assert_true(pmin > 0.95);        /* the plain FSC cannot tell the noise apart */
    assert_true(fabs(mean) < 0.6);   /* the centred one sees none of it */
    assert_true(sd > 0.5 && sd < 1.6);
    ew_shell_curve_free(&plain);
    ew_shell_curve_free(&cen);
    ew_shell_curve_free(&self);
    ew_shell_curve_free(&flat);
    free(a);
    free(b);
    free(sph);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsc_self),           cmocka_unit_test(test_fsc_noise),
        cmocka_unit_test(test_fsc_snr),            cmocka_unit_test(test_crossing_and_table),
        cmocka_unit_test(test_prtf),               cmocka_unit_test(test_fsc_intensity_centred),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
