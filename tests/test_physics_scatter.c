/* Tests for physics/scatter: direct sums, the FFT volume path, Debye. */
#include "testutil.h"

#include "core/core.h"
#include "physics/scatter.h"

/* Random protein-like atoms (C, N, O, S) in a ball of radius rad. */
static void random_atoms(size_t n, double rad, uint64_t seed, float *xyz, uint8_t *z, float *bfac)
{
    static const uint8_t el[4] = {6, 7, 8, 16};
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    for (size_t j = 0; j < n; j++) {
        double p[3], d2;
        do {
            d2 = 0;
            for (int k = 0; k < 3; k++) {
                p[k] = (2 * ew_rng_uniform(&r) - 1) * rad;
                d2 += p[k] * p[k];
            }
        } while (d2 > rad * rad);
        for (int k = 0; k < 3; k++) xyz[3 * j + k] = (float)p[k];
        z[j] = el[j % 4];
        if (bfac) bfac[j] = (float)(5.0 + 30.0 * ew_rng_uniform(&r));
    }
}

static void test_unknown_element(void **state)
{
    (void)state;
    float xyz[6] = {0};
    uint8_t z[2] = {6, 99};
    ew_atoms_t a;
    assert_int_equal(ew_atoms_init(&a, 2, xyz, z, NULL, NULL, NULL, NULL), EW_ERR_RANGE);
    assert_non_null(strstr(ew_error_message(), "atom 1"));
    assert_null(a.xyz);
    /* an ion the table lacks falls back to the neutral atom */
    int8_t q[2] = {3, 0};
    z[1] = 8;
    ew_atoms_options_t o = {.use_ions = 1};
    ew_log_set_level(EW_LOG_ERROR);
    assert_ok(ew_atoms_init(&a, 2, xyz, z, q, NULL, NULL, &o));
    ew_log_set_level(EW_LOG_INFO);
    assert_close(a.electrons, 14.0, 0, 0.05);
    ew_atoms_free(&a);
}

/* Two identical atoms a distance d apart along x: I(s) = 4 f(s)^2
 * cos^2(pi s_x d): fringes of period 1/d in s_x. */
static void test_two_atoms_fringes(void **state)
{
    (void)state;
    const double d = 7.3;
    float xyz[6] = {(float)(-d / 2), 0, 0, (float)(d / 2), 0, 0};
    uint8_t z[2] = {8, 8};
    ew_atoms_t a;
    assert_ok(ew_atoms_init(&a, 2, xyz, z, NULL, NULL, NULL, NULL));
    ew_formfactor_t f;
    assert_ok(ew_formfactor_lookup(8, 0, &f));
    enum { NP = 200 };
    float s[3 * NP], I[NP];
    for (int k = 0; k < NP; k++) {
        s[3 * k] = (float)(k * 0.004);
        s[3 * k + 1] = (float)(0.01 * sin(k));
        s[3 * k + 2] = (float)(0.02 * cos(k));
    }
    assert_ok(ew_scatter_direct_intensity(&a, s, NP, I));
    for (int k = 0; k < NP; k++) {
        double sm = sqrt((double)s[3 * k] * s[3 * k] + (double)s[3 * k + 1] * s[3 * k + 1] +
                         (double)s[3 * k + 2] * s[3 * k + 2]);
        double fs = ew_formfactor_eval(&f, sm), c = cos(EW_PI * s[3 * k] * d);
        assert_close(I[k], 4 * fs * fs * c * c, 1e-5, 1e-4);
    }
    /* the fringe minimum sits at s_x = 1/(2d), the next maximum at 1/d */
    float s2[6] = {(float)(0.5 / d), 0, 0, (float)(1.0 / d), 0, 0};
    float I2[2];
    assert_ok(ew_scatter_direct_intensity(&a, s2, 2, I2));
    assert_true(I2[0] < 1e-6 * I2[1]);
    ew_atoms_free(&a);
}

/* Uniform sphere of radius R: |F(s)|^2 / |F(0)|^2 = [3 (sin x - x cos x) / x^3]^2
 * f(s)^2 / f(0)^2, x = 2 pi s R. The sphere is a quadrature of scatterers
 * (Gauss-Legendre in r and cos(theta), uniform in phi; weights carried as
 * occupancies) whose angular degree exceeds the plane wave's significant
 * multipoles, so the sum reproduces the continuous sphere to ~1e-6. */
static void gauss_legendre(int n, double *x, double *w)
{
    for (int i = 0; i < n; i++) {
        double t = cos(EW_PI * (i + 0.75) / (n + 0.5)), p0, p1, dp;
        for (int it = 0; it < 100; it++) {
            p0 = 1, p1 = t;
            for (int k = 2; k <= n; k++) {
                double p2 = ((2 * k - 1) * t * p1 - (k - 1) * p0) / k;
                p0 = p1, p1 = p2;
            }
            dp = n * (t * p1 - p0) / (t * t - 1);
            double dt = p1 / dp;
            t -= dt;
            if (fabs(dt) < 1e-15) break;
        }
        p0 = 1, p1 = t;
        for (int k = 2; k <= n; k++) {
            double p2 = ((2 * k - 1) * t * p1 - (k - 1) * p0) / k;
            p0 = p1, p1 = p2;
        }
        dp = n * (t * p1 - p0) / (t * t - 1);
        x[i] = t;
        w[i] = 2 / ((1 - t * t) * dp * dp);
    }
}

static void test_uniform_sphere(void **state)
{
    (void)state;
    const double R = 30.0;
    enum { NR = 24, NT = 30, NPHI = 60 };
    double xr[NR], wr[NR], xt[NT], wt[NT];
    gauss_legendre(NR, xr, wr);
    gauss_legendre(NT, xt, wt);
    size_t n = (size_t)NR * NT * NPHI;
    float *xyz = malloc(sizeof(float) * 3 * n), *occ = malloc(sizeof(float) * n);
    uint8_t *z = malloc(n);
    size_t j = 0;
    for (int ir = 0; ir < NR; ir++)
        for (int it = 0; it < NT; it++)
            for (int ip = 0; ip < NPHI; ip++, j++) {
                double r = R * (xr[ir] + 1) / 2, ct = xt[it], st = sqrt(1 - ct * ct);
                double ph = 2 * EW_PI * (ip + 0.37 * it) / NPHI;
                xyz[3 * j] = (float)(r * st * cos(ph));
                xyz[3 * j + 1] = (float)(r * st * sin(ph));
                xyz[3 * j + 2] = (float)(r * ct);
                occ[j] = (float)(wr[ir] * r * r * wt[it] / NPHI); /* relative weights */
                z[j] = 1;
            }
    ew_atoms_t a;
    assert_ok(ew_atoms_init(&a, n, xyz, z, NULL, occ, NULL, NULL));
    /* float coordinates limit the phases to ~1e-7 relative: fine here */
    ew_formfactor_t fh;
    assert_ok(ew_formfactor_lookup(1, 0, &fh));
    enum { NP = 120 };
    float s[3 * NP];
    double F[2 * NP], F0[2];
    float origin[3] = {0, 0, 0};
    assert_ok(ew_scatter_direct(&a, origin, 1, F0));
    ew_rng_t rng;
    ew_rng_init(&rng, 5, 0);
    for (int k = 0; k < NP; k++) {
        double x = 0.3 + 19.0 * k / NP, sm = x / (2 * EW_PI * R);
        double u = 2 * ew_rng_uniform(&rng) - 1, ph = 2 * EW_PI * ew_rng_uniform(&rng);
        s[3 * k] = (float)(sm * sqrt(1 - u * u) * cos(ph));
        s[3 * k + 1] = (float)(sm * sqrt(1 - u * u) * sin(ph));
        s[3 * k + 2] = (float)(sm * u);
    }
    assert_ok(ew_scatter_direct(&a, s, NP, F));
    static const double zeros[] = {4.4934, 7.7253, 10.9041, 14.0662, 17.2208, 20.3713};
    int checked = 0;
    for (int k = 0; k < NP; k++) {
        double sm = sqrt((double)s[3 * k] * s[3 * k] + (double)s[3 * k + 1] * s[3 * k + 1] +
                         (double)s[3 * k + 2] * s[3 * k + 2]);
        double x = 2 * EW_PI * sm * R;
        double near = 1e9;
        for (int q = 0; q < 6; q++) near = fmin(near, fabs(x - zeros[q]));
        if (near < 0.3) continue;
        double amp = 3 * (sin(x) - x * cos(x)) / (x * x * x);
        double fr = ew_formfactor_eval(&fh, sm) / ew_formfactor_eval(&fh, 0);
        double expect = amp * amp * fr * fr;
        double got = (F[2 * k] * F[2 * k] + F[2 * k + 1] * F[2 * k + 1]) / (F0[0] * F0[0]);
        assert_close(got, expect, 1e-3, 0);
        checked++;
    }
    assert_true(checked > 80);
    assert_close(F0[1], 0.0, 0, 1e-9 * F0[0]);
    free(xyz), free(occ), free(z);
    ew_atoms_free(&a);
}

/* The FFT volume equals the direct sum at grid points (B factors on, so the
 * per-atom broadening is exercised), is Friedel-symmetric, and I(0) is
 * (sum_j f_j(0))^2 = (electron count)^2. */
static void check_volume_vs_direct(int n, int oversample)
{
    enum { NA = 400 };
    float xyz[3 * NA], bfac[NA];
    uint8_t z[NA];
    random_atoms(NA, 18.0, 3, xyz, z, bfac);
    for (int k = 0; k < 3; k++) xyz[k] += 40.0f; /* one atom far off: the periodic box must not matter */
    ew_atoms_options_t ao = {.use_bfactor = 1};
    ew_atoms_t a;
    assert_ok(ew_atoms_init(&a, NA, xyz, z, NULL, NULL, bfac, &ao));
    ew_rvol_t I;
    const double ds = 0.25 / (n / 2);
    assert_ok(ew_rvol_alloc(&I, n, ds));
    size_t nv = (size_t)n * n * n;
    float *Fr = ew_alloc_array(nv, sizeof(float)), *Fi = ew_alloc_array(nv, sizeof(float));
    ew_scatter_volume_options_t vo = {.oversample = oversample};
    assert_ok(ew_scatter_volume(&a, &I, Fr, Fi, &vo));
    const int c = n / 2;
    enum { NP = 300 };
    float s[3 * NP];
    size_t idx[NP];
    ew_rng_t r;
    ew_rng_init(&r, 9, 0);
    for (int k = 0; k < NP; k++) {
        int m[3];
        for (int q = 0; q < 3; q++) m[q] = (int)ew_rng_below(&r, (uint64_t)n) - c;
        if (k == 0) m[0] = m[1] = m[2] = -c; /* a corner */
        if (k == 1) m[0] = m[1] = m[2] = 0;
        for (int q = 0; q < 3; q++) s[3 * k + q] = (float)(m[q] * ds);
        idx[k] = ((size_t)(m[2] + c) * n + (size_t)(m[1] + c)) * n + (size_t)(m[0] + c);
    }
    double F[2 * NP];
    assert_ok(ew_scatter_direct(&a, s, NP, F));
    double mean = 0;
    for (int k = 0; k < NP; k++) mean += (F[2 * k] * F[2 * k] + F[2 * k + 1] * F[2 * k + 1]) / NP;
    double worst = 0;
    for (int k = 0; k < NP; k++) {
        double Id = F[2 * k] * F[2 * k] + F[2 * k + 1] * F[2 * k + 1];
        double amp = sqrt(Id);
        /* complex F to 1e-4 of |F| (or of the rms |F|), I to 1e-3 */
        assert_close(Fr[idx[k]], F[2 * k], 0, 1e-4 * amp + 1e-6 * sqrt(mean));
        assert_close(Fi[idx[k]], F[2 * k + 1], 0, 1e-4 * amp + 1e-6 * sqrt(mean));
        assert_close(I.data[idx[k]], Id, 1e-3, 1e-6 * mean);
        double e = fabs(I.data[idx[k]] - Id) / (Id + 1e-6 * mean);
        if (e > worst) worst = e;
    }
    /* Friedel pairs (odd n: voxel pairs) */
    if (n % 2 == 1)
        for (size_t v = 0; v < nv; v += 97) assert_close(I.data[nv - 1 - v], I.data[v], 1e-6, 0);
    double ne = 0;
    for (int j = 0; j < NA; j++) ne += z[j];
    size_t centre = ((size_t)c * n + c) * n + c;
    assert_close(sqrt(I.data[centre]), a.electrons, 1e-6, 0);
    assert_close(a.electrons, ne, 0, 0.01 * NA);
    ew_free(Fr), ew_free(Fi);
    ew_rvol_free(&I);
    ew_atoms_free(&a);
}

/* The volume is bit-identical whatever the number of spreading threads. */
static void test_volume_thread_independent(void **state)
{
    (void)state;
    enum { NA = 200 };
    float xyz[3 * NA];
    uint8_t z[NA];
    random_atoms(NA, 12.0, 8, xyz, z, NULL);
    ew_atoms_t a;
    assert_ok(ew_atoms_init(&a, NA, xyz, z, NULL, NULL, NULL, NULL));
    ew_rvol_t v1, v2;
    assert_ok(ew_rvol_alloc(&v1, 25, 0.01));
    assert_ok(ew_rvol_alloc(&v2, 25, 0.01));
    ew_scatter_volume_options_t o1 = {.threads = 1}, o3 = {.threads = 3};
    assert_ok(ew_scatter_volume(&a, &v1, NULL, NULL, &o1));
    assert_ok(ew_scatter_volume(&a, &v2, NULL, NULL, &o3));
    assert_memory_equal(v1.data, v2.data, 25 * 25 * 25 * sizeof(float));
    ew_scatter_volume_options_t bad = {.oversample = 7};
    assert_int_equal(ew_scatter_volume(&a, &v1, NULL, NULL, &bad), EW_ERR_ARG);
    ew_rvol_free(&v1), ew_rvol_free(&v2);
    ew_atoms_free(&a);
}

static void test_volume_vs_direct_odd(void **state)
{
    (void)state;
    check_volume_vs_direct(41, 2);
}

static void test_volume_vs_direct_even(void **state)
{
    (void)state;
    check_volume_vs_direct(32, 3);
}

/* The orientation average of direct sums (Lebedev-free: a fine Fibonacci
 * sphere) matches the Debye formula. */
static void test_debye(void **state)
{
    (void)state;
    enum { NA = 60, ND = 4000 };
    float xyz[3 * NA];
    uint8_t z[NA];
    random_atoms(NA, 10.0, 4, xyz, z, NULL);
    ew_atoms_t a;
    assert_ok(ew_atoms_init(&a, NA, xyz, z, NULL, NULL, NULL, NULL));
    const double smag[3] = {0.0, 0.05, 0.15};
    double deb[3];
    assert_ok(ew_scatter_debye(&a, smag, 3, deb));
    assert_close(deb[0], a.electrons * a.electrons, 1e-12, 0);
    float *s = malloc(sizeof(float) * 3 * ND), *I = malloc(sizeof(float) * ND);
    for (int q = 1; q < 3; q++) {
        for (int k = 0; k < ND; k++) {
            double u = 1 - (2 * k + 1.0) / ND, ph = k * EW_PI * (3 - sqrt(5.0));
            s[3 * k] = (float)(smag[q] * sqrt(1 - u * u) * cos(ph));
            s[3 * k + 1] = (float)(smag[q] * sqrt(1 - u * u) * sin(ph));
            s[3 * k + 2] = (float)(smag[q] * u);
        }
        assert_ok(ew_scatter_direct_intensity(&a, s, ND, I));
        double avg = 0;
        for (int k = 0; k < ND; k++) avg += I[k] / (double)ND;
        assert_close(avg, deb[q], 2e-3, 0);
    }
    free(s), free(I);
    ew_atoms_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_element),     cmocka_unit_test(test_two_atoms_fringes),
        cmocka_unit_test(test_uniform_sphere),      cmocka_unit_test(test_volume_vs_direct_odd),
        cmocka_unit_test(test_volume_vs_direct_even), cmocka_unit_test(test_debye),
        cmocka_unit_test(test_volume_thread_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
