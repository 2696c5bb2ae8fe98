/* Tests of physics/ctf: zeros at the analytic frequencies, astigmatism
 * direction, sign conventions (cisTEM vs RELION), envelopes. */
#include "testutil.h"

#include "physics/ctf.h"

static ew_ctf_params_t base(void)
{
    ew_ctf_params_t p;
    ew_ctf_params_default(&p);
    p.voltage_v = 300e3;
    p.cs_mm = 2.7;
    p.amp_contrast = 0.07;
    p.defocus_u = p.defocus_v = 15000.0;
    return p;
}

/* The k-th zero from first principles: chi(s) + asin(A) = k pi with
 * chi = pi lambda df s^2 - pi/2 Cs lambda^3 s^4, on the rising branch. */
static double zero_formula(double df, double cs_mm, double A, double lambda, int k)
{
    double cs = cs_mm * 1e7, a = 0.5 * EW_PI * cs * pow(lambda, 3), b = EW_PI * lambda * df;
    double c = asin(A) - k * EW_PI;
    double u = (b - sqrt(b * b + 4.0 * a * c)) / (2.0 * a);
    return sqrt(u);
}

/* Zero crossings of the CTF along direction theta found by bisection. */
static int numeric_zeros(const ew_ctf_params_t *p, double theta, double smax, double *z, int nmax)
{
    int n = 0;
    double ds = 1e-4, c = cos(theta), s = sin(theta);
    double prev = ew_ctf_eval(p, ds * c, ds * s);
    for (double q = 2 * ds; q < smax && n < nmax; q += ds) {
        double v = ew_ctf_eval(p, q * c, q * s);
        if ((v > 0) != (prev > 0)) {
            double lo = q - ds, hi = q;
            for (int it = 0; it < 60; it++) {
                double mid = 0.5 * (lo + hi);
                double vm = ew_ctf_eval(p, mid * c, mid * s);
                if ((vm > 0) == (prev > 0)) lo = mid;
                else hi = mid;
            }
            z[n++] = 0.5 * (lo + hi);
        }
        prev = v;
    }
    return n;
}

static void test_zeros(void **state)
{
    (void)state;
    ew_ctf_params_t p = base();
    double lam = ew_electron_wavelength(p.voltage_v);
    double z[16];
    int n = numeric_zeros(&p, 0.3, 0.4, z, 16);
    assert_true(n >= 10);
    for (int k = 1; k <= n; k++) {
        double f = zero_formula(15000.0, 2.7, 0.07, lam, k);
        assert_close(z[k - 1], f, 1e-7, 0);
        assert_close(ew_ctf_zero(&p, k, 0.3), f, 1e-9, 0);
    }
    /* first zero of a 15000 A underfocus at 300 kV: near 1/sqrt(lambda df) = 1/17.2 A
     * (A = 0.07 moves it out by about 1%) */
    assert_close(1.0 / z[0], sqrt(lam * 15000.0), 0.02, 0);
}

/* Beyond the maximum of chi (large s, large Cs), zeros come back down. */
static void test_zeros_falling_branch(void **state)
{
    (void)state;
    ew_ctf_params_t p = base();
    p.defocus_u = p.defocus_v = 2000.0;
    p.amp_contrast = 0.1;
    p.phase_shift_deg = 30.0;
    double z[64];
    int n = numeric_zeros(&p, 1.0, 0.9, z, 64);
    assert_true(n >= 8);
    for (int k = 1; k <= n; k++) assert_close(ew_ctf_zero(&p, k, 1.0), z[k - 1], 1e-6, 0);
    /* overfocus (negative defocus): chi decreases monotonically */
    p.defocus_u = p.defocus_v = -5000.0;
    n = numeric_zeros(&p, 2.0, 0.6, z, 64);
    assert_true(n >= 5);
    for (int k = 1; k <= n; k++) assert_close(ew_ctf_zero(&p, k, 2.0), z[k - 1], 1e-6, 0);
}

/* Astigmatism: along the angle the defocus is dU, perpendicular dV. */
static void test_astigmatism(void **state)
{
    (void)state;
    ew_ctf_params_t p = base();
    p.defocus_u = 16000.0;
    p.defocus_v = 14000.0;
    p.astig_angle_deg = 30.0;
    double lam = ew_electron_wavelength(p.voltage_v), z[4];
    double th = 30.0 * EW_PI / 180.0;
    assert_true(numeric_zeros(&p, th, 0.1, z, 4) >= 2);
    assert_close(z[0], zero_formula(16000.0, 2.7, 0.07, lam, 1), 1e-7, 0);
    assert_close(z[1], zero_formula(16000.0, 2.7, 0.07, lam, 2), 1e-7, 0);
    assert_true(numeric_zeros(&p, th + EW_PI / 2, 0.1, z, 4) >= 2);
    assert_close(z[0], zero_formula(14000.0, 2.7, 0.07, lam, 1), 1e-7, 0);
    assert_true(numeric_zeros(&p, th + EW_PI, 0.1, z, 4) >= 1);
    assert_close(z[0], zero_formula(16000.0, 2.7, 0.07, lam, 1), 1e-7, 0);
    /* the first zero is lowest (largest defocus) exactly along the angle */
    double best = 1e9, best_th = 0;
    for (int i = 0; i < 180; i++) {
        double t = i * EW_PI / 180.0, f = ew_ctf_zero(&p, 1, t);
        if (f < best) best = f, best_th = t;
    }
    assert_close(best_th, th, 0, 1e-9);
    assert_close(ew_ctf_defocus_at(&p, th + EW_PI / 4), 15000.0, 1e-12, 0);
}

/* Conventions: cisTEM's CTF is -A at s = 0 (protein dark at underfocus),
 * RELION's the negative; a phase plate of 90 degrees gives -1. */
static void test_signs(void **state)
{
    (void)state;
    ew_ctf_params_t p = base();
    assert_close(ew_ctf_eval(&p, 0, 0), -0.07, 1e-12, 0);
    assert_close(ew_ctf_eval_relion(&p, 0, 0), 0.07, 1e-12, 0);
    double sx = 0.013, sy = -0.02;
    assert_close(ew_ctf_eval_relion(&p, sx, sy), -ew_ctf_eval(&p, sx, sy), 0, 1e-15);
    /* cisTEM's formula: -(sqrt(1 - A^2) sin chi + A cos chi) */
    double chi = ew_ctf_chi(&p, sx, sy);
    assert_close(ew_ctf_eval(&p, sx, sy), -(sqrt(1 - 0.0049) * sin(chi) + 0.07 * cos(chi)), 0, 1e-12);
    p.amp_contrast = 0.0;
    p.phase_shift_deg = 90.0;
    assert_close(ew_ctf_eval(&p, 0, 0), -1.0, 1e-12, 0);
}

static void test_envelopes(void **state)
{
    (void)state;
    ew_ctf_params_t p = base(), q = base();
    q.bfactor = 80.0;
    double s = 0.2;
    assert_close(ew_ctf_eval(&q, s, 0) / ew_ctf_eval(&p, s, 0), exp(-80.0 * s * s / 4), 1e-12, 0);
    q.bfactor = 0;
    q.focal_spread = 40.0;
    double lam = ew_electron_wavelength(300e3);
    assert_close(ew_ctf_envelope(&q, 0, s), exp(-0.5 * pow(EW_PI * lam * 40.0 * s * s, 2)), 1e-12, 0);
    q.focal_spread = 0;
    q.illum_angle = 1e-5;
    /* spatial envelope: exp(-(pi alpha/lambda)^2 (d chi/ds / 2 pi)^2), derivative by central difference */
    double h = 1e-6;
    double dchi = (ew_ctf_chi(&q, s + h, 0) - ew_ctf_chi(&q, s - h, 0)) / (2 * h) / (2 * EW_PI);
    assert_close(ew_ctf_envelope(&q, s, 0), exp(-pow(EW_PI * 1e-5 / lam * dchi, 2)), 1e-6, 0);
    /* the half-spectrum fill agrees with pointwise evaluation */
    int nx = 10, ny = 8;
    float out[8 * 6];
    ew_ctf_fill_half(&q, nx, ny, 1.5, out);
    assert_close(out[3 * 6 + 4], ew_ctf_eval(&q, 4 / (10 * 1.5), 3 / (8 * 1.5)), 1e-6, 1e-7);
    assert_close(out[6 * 6 + 2], ew_ctf_eval(&q, 2 / (10 * 1.5), -2 / (8 * 1.5)), 1e-6, 1e-7);
    ew_ctf_params_t bad = base();
    bad.amp_contrast = 1.0;
    assert_int_equal(ew_ctf_params_check(&bad), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "amplitude contrast"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeros),    cmocka_unit_test(test_zeros_falling_branch),
        cmocka_unit_test(test_astigmatism), cmocka_unit_test(test_signs),
        cmocka_unit_test(test_envelopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
