/* Tests of physics/peng: the Peng 1996 table, projected atomic potentials,
 * their exact pixel integration, rotations, and the electron wavelength and
 * interaction constant (independent oracles: Mott-Bethe with the X-ray
 * factors, numerical line integrals, fine-grid binning, published values). */
#include "testutil.h"

#include "physics/ctf.h"
#include "physics/peng.h"

/* Mott-Bethe: f_e(s) = (Z - f_x(s)) / (8 pi^2 a0 s^2), a0 = Bohr radius (A). */
static void test_mott_bethe(void **state)
{
    (void)state;
    const char *path = ew_test_data("tables/waasmaier_kirfel.tsv");
    if (!path) skip();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    int checked = 0, last_z = 0;
    const double a0 = 0.529177210903;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        int z, q;
        double a[5], c, b[5];
        if (sscanf(line, "%d %d %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf", &z, &q, &a[0], &a[1], &a[2], &a[3],
                   &a[4], &c, &b[0], &b[1], &b[2], &b[3], &b[4]) != 13)
            continue;
        if (q != 0 || z == last_z || z < 3) continue; /* neutral atoms, first row; H, He are too light for MB */
        last_z = z;
        for (double s = 0.5; s <= 1.01; s += 0.5) {
            double fx = c;
            for (int i = 0; i < 5; i++) fx += a[i] * exp(-b[i] * s * s);
            double mb = (z - fx) / (8.0 * EW_PI * EW_PI * a0 * s * s);
            assert_close(ew_peng_fe(z, s), mb, 0.025, 0.0);
            checked++;
        }
    }
    fclose(f);
    assert_true(checked >= 150);
}

static void test_table_bounds(void **state)
{
    (void)state;
    assert_null(ew_peng_coef(0));
    assert_null(ew_peng_coef(99));
    assert_non_null(ew_peng_coef(98));
    /* carbon: f_e(0) is the sum of the a_i of Peng's Table 1 */
    assert_close(ew_peng_fe(6, 0.0), 0.0893 + 0.2563 + 0.7570 + 1.0487 + 0.3575, 1e-6, 0);
}

/* The projected potential equals the line integral of the 3D potential. */
static void test_projection_line_integral(void **state)
{
    (void)state;
    const int zs[3] = {1, 6, 79};
    for (int k = 0; k < 3; k++) {
        const ew_peng_coef_t *c = ew_peng_coef(zs[k]);
        double B = 15.0;
        for (double r = 0.1; r < 3.0; r += 0.7) {
            double sum = 0.0, dz = 0.001;
            for (double z = -15.0; z <= 15.0; z += dz) {
                double r2 = r * r + z * z, v = 0.0;
                for (int i = 0; i < 5; i++) {
                    double b = c->b[i] + B;
                    v += c->a[i] * pow(4.0 * EW_PI / b, 1.5) * exp(-4.0 * EW_PI * EW_PI * r2 / b);
                }
                sum += EW_PENG_C_VA2 * v * dz;
            }
            assert_close(ew_peng_projected(zs[k], B, r), sum, 1e-6, 1e-9);
        }
    }
}

static void one_atom(int z, double b, float x, float y, ew_peng_atoms_t *a)
{
    float xyz[3] = {x, y, 0.3f};
    uint8_t zz = (uint8_t)z;
    float bf = (float)b, occ = 0.75f;
    assert_ok(ew_peng_atoms_init(a, xyz, &zz, &bf, &occ, 1, 0.0, NULL));
}

/* A single atom's pixel-averaged projection integrates to C f_e(0) occ. */
static void test_atom_integral(void **state)
{
    (void)state;
    const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const double pixels[3] = {0.25, 1.0, 3.0};
    const int zs[4] = {1, 6, 16, 79};
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 4; j++) {
            for (double b = 0.0; b <= 60.0; b += 30.0) {
                ew_peng_atoms_t a;
                one_atom(zs[j], b, 0.37f, -0.21f, &a);
                int n = 128;
                float *img = calloc((size_t)n * n, sizeof(float));
                ew_peng_project(&a, I, 64.3, 63.8, pixels[k], img, n, n);
                double sum = 0.0;
                for (int i = 0; i < n * n; i++) sum += img[i];
                sum *= pixels[k] * pixels[k];
                assert_close(sum, 0.75 * ew_peng_volume_integral(zs[j]), 2e-4, 0);
                free(img);
                ew_peng_atoms_free(&a);
            }
        }
}

/* Exact pixel integration = the limit of a fine grid binned to the pixel. */
static void test_fine_grid_binning(void **state)
{
    (void)state;
    const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    ew_peng_atoms_t a;
    one_atom(8, 5.0, 0.0f, 0.0f, &a);
    int n = 16, f = 40, nf = n * f;
    double px = 1.5;
    float *coarse = calloc((size_t)n * n, sizeof(float)), *fine = calloc((size_t)nf * nf, sizeof(float));
    /* atom at coarse pixel coordinates (7.3, 8.45); fine pixel centre j maps to coarse (j + 1/2)/f - 1/2 */
    double cx = 7.3, cy = 8.45;
    ew_peng_project(&a, I, cx, cy, px, coarse, n, n);
    ew_peng_project(&a, I, (cx + 0.5) * f - 0.5, (cy + 0.5) * f - 0.5, px / f, fine, nf, nf);
    double peak = 0.0;
    for (int i = 0; i < n * n; i++) peak = fmax(peak, coarse[i]);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double acc = 0.0;
            for (int j = 0; j < f; j++)
                for (int i = 0; i < f; i++) acc += fine[(size_t)(y * f + j) * nf + x * f + i];
            acc /= f * f;
            assert_close(coarse[y * n + x], acc, 2e-3, 2e-5 * peak);
        }
    /* and the fine grid's centre value approaches the analytic projected potential */
    free(coarse);
    free(fine);
    ew_peng_atoms_free(&a);
}

static void rotz_y(double az, double ay, double R[9])
{
    double ca = cos(az), sa = sin(az), cb = cos(ay), sb = sin(ay);
    double Rz[9] = {ca, -sa, 0, sa, ca, 0, 0, 0, 1}, Ry[9] = {cb, 0, sb, 0, 1, 0, -sb, 0, cb};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            R[3 * i + j] = 0;
            for (int k = 0; k < 3; k++) R[3 * i + j] += Ry[3 * i + k] * Rz[3 * k + j];
        }
}

/* Projecting with R equals projecting the rotated coordinates. */
static void test_rotation(void **state)
{
    (void)state;
    enum { N = 50 };
    float xyz[3 * N], rxyz[3 * N], b[N];
    uint8_t z[N];
    for (int i = 0; i < N; i++) {
        for (int d = 0; d < 3; d++) xyz[3 * i + d] = (float)(8.0 * sin(1.7 * i + 2.3 * d + 0.1 * i * d));
        z[i] = (uint8_t)(i % 3 == 0 ? 6 : (i % 3 == 1 ? 7 : 8));
        b[i] = (float)(10 + i % 7);
    }
    double R[9], I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    rotz_y(0.7, 1.1, R);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < 3; d++)
            rxyz[3 * i + d] =
                (float)(R[3 * d] * xyz[3 * i] + R[3 * d + 1] * xyz[3 * i + 1] + R[3 * d + 2] * xyz[3 * i + 2]);
    ew_peng_atoms_t a, ar;
    assert_ok(ew_peng_atoms_init(&a, xyz, z, b, NULL, N, 0.0, NULL));
    assert_ok(ew_peng_atoms_init(&ar, rxyz, z, b, NULL, N, 0.0, NULL));
    int n = 48;
    float *i1 = calloc((size_t)n * n, 4), *i2 = calloc((size_t)n * n, 4);
    ew_peng_project(&a, R, 23.6, 24.2, 1.0, i1, n, n);
    ew_peng_project(&ar, I, 23.6, 24.2, 1.0, i2, n, n);
    double mx = 0;
    for (int i = 0; i < n * n; i++) mx = fmax(mx, i2[i]);
    assert_true(mx > 10.0);
    for (int i = 0; i < n * n; i++) assert_close(i1[i], i2[i], 0, 1e-4 * mx);
    free(i1);
    free(i2);
    ew_peng_atoms_free(&a);
    ew_peng_atoms_free(&ar);
}

static void test_bad_atoms(void **state)
{
    (void)state;
    float xyz[3] = {0, 0, 0}, b = -1.0f;
    uint8_t z = 99;
    ew_peng_atoms_t a;
    assert_int_equal(ew_peng_atoms_init(&a, xyz, &z, NULL, NULL, 1, 0.0, NULL), EW_ERR_RANGE);
    assert_null(a.xyz);
    z = 6;
    assert_int_equal(ew_peng_atoms_init(&a, xyz, &z, &b, NULL, 1, 0.0, NULL), EW_ERR_RANGE);
    assert_non_null(strstr(ew_error_message(), "atom 0"));
}

/* Published values: lambda(300 kV) = 0.019688 A, lambda(200 kV) = 0.025079 A,
 * lambda(100 kV) = 0.037014 A; sigma(300 kV) = 6.526e-4, sigma(200 kV) = 7.288e-4 rad/(V A). */
static void test_wavelength_sigma(void **state)
{
    (void)state;
    assert_close(ew_electron_wavelength(300e3), 0.019688, 5e-5, 0);
    assert_close(ew_electron_wavelength(200e3), 0.025079, 5e-5, 0);
    assert_close(ew_electron_wavelength(100e3), 0.037014, 5e-5, 0);
    assert_close(ew_electron_sigma(300e3), 6.526e-4, 2e-4, 0);
    assert_close(ew_electron_sigma(200e3), 7.288e-4, 3e-4, 0);
    /* non-relativistic limit: sigma -> pi / (lambda V) */
    double v = 10.0;
    assert_close(ew_electron_sigma(v), EW_PI / (ew_electron_wavelength(v) * v), 5e-5, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mott_bethe),       cmocka_unit_test(test_table_bounds),
        cmocka_unit_test(test_projection_line_integral), cmocka_unit_test(test_atom_integral),
        cmocka_unit_test(test_fine_grid_binning), cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_bad_atoms),        cmocka_unit_test(test_wavelength_sigma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
