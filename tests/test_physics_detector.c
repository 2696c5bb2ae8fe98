/* Tests for physics/detector: Ewald-sphere geometry, solid angles,
 * polarization, masks, volume grids. */
#include "testutil.h"

#include "core/core.h"
#include "physics/detector.h"
#include "physics/slice.h"

/* The numbers for the reference setup: lambda 2.695 A, edge at
 * s = 0.0907 1/A (11.0 A), corner at 8.0 A; every s on the Ewald sphere. */
static void test_reference_geometry(void **state)
{
    (void)state;
    ew_detector_config_t c = ew_detector_config_reference();
    ew_detector_t d;
    assert_ok(ew_detector_init(&d, &c));
    assert_int_equal(d.npix, 128 * 128);
    assert_close(d.wavelength_a, 2.695, 1e-3, 0);
    assert_close(d.s_max_edge, 0.0907, 1e-3, 0);
    assert_close(1.0 / d.s_max_edge, 11.0, 0.01, 0);
    assert_close(1.0 / d.s_max_corner, 8.0, 0.01, 0);
    /* independent: |s| = 2 sin(theta) / lambda, 2 theta = atan(rho / D) */
    double lam = d.wavelength_a, smax = 0;
    for (size_t i = 0; i < d.npix; i += 37) {
        int row = (int)(i / 128), col = (int)(i % 128);
        double x = (col - 63.5) * c.pixel_m, y = (row - 63.5) * c.pixel_m;
        double tth = atan(sqrt(x * x + y * y) / c.distance_m);
        const float *s = d.s + 3 * i;
        double sm = sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + (double)s[2] * s[2]);
        assert_close(sm, 2 * sin(tth / 2) / lam, 1e-5, 0);
        /* on the Ewald sphere: |s + k_in / lambda| = 1 / lambda */
        double sz = s[2] + 1.0 / lam;
        assert_close(sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + sz * sz), 1.0 / lam, 1e-6, 0);
        /* direction in the x-y plane follows the pixel */
        if (x != 0) assert_close(s[1] / s[0], y / x, 1e-4, 1e-6);
        smax = fmax(smax, sm);
    }
    assert_true(smax < d.s_max_corner);
    ew_detector_free(&d);
    ew_detector_free(NULL);
}

/* Exact solid angles: the whole square of half side a subtends
 * 4 arcsin(a^2 / (a^2 + D^2)); small far pixels follow p^2 D / r^3. */
static void test_solid_angle(void **state)
{
    (void)state;
    ew_detector_config_t c = ew_detector_config_reference();
    c.distance_m = 0.03; /* wide angles: the sum is a real test */
    ew_detector_t d;
    assert_ok(ew_detector_init(&d, &c));
    double a = 0.05, D = c.distance_m, tot = 0;
    for (size_t i = 0; i < d.npix; i++) tot += d.solid_angle[i];
    assert_close(tot, 4 * asin(a * a / (a * a + D * D)), 1e-6, 0);
    for (size_t i = 0; i < d.npix; i += 101) {
        int row = (int)(i / 128), col = (int)(i % 128);
        double x = (col - 63.5) * c.pixel_m, y = (row - 63.5) * c.pixel_m, r = sqrt(x * x + y * y + D * D);
        double approx = c.pixel_m * c.pixel_m * D / (r * r * r);
        assert_close(d.solid_angle[i], approx, 2e-3, 0);
        assert_close(d.corr[i], d.solid_angle[i] * d.polarization[i], 1e-6, 0);
    }
    ew_detector_free(&d);
}

static void test_polarization(void **state)
{
    (void)state;
    ew_detector_config_t c = ew_detector_config_reference();
    c.nx = c.ny = 65; /* a pixel on each axis */
    c.distance_m = 0.05;
    ew_detector_t d;
    assert_ok(ew_detector_init(&d, &c));
    size_t on_x = 32 * 65 + 64, on_y = 64 * 65 + 32;
    const float *s = d.s + 3 * on_x;
    double lam = d.wavelength_a, kz = 1.0 + lam * s[2]; /* cos 2theta */
    assert_close(d.polarization[on_x], kz * kz, 1e-5, 0); /* 1 - sin^2 2theta */
    assert_close(d.polarization[on_y], 1.0, 1e-6, 0);
    ew_detector_free(&d);
    c.pol_angle_deg = 90;
    assert_ok(ew_detector_init(&d, &c));
    assert_close(d.polarization[on_x], 1.0, 1e-6, 0);
    assert_close(d.polarization[on_y], kz * kz, 1e-5, 0);
    ew_detector_free(&d);
    c.polarization = EW_POL_NONE;
    assert_ok(ew_detector_init(&d, &c));
    assert_close(d.polarization[on_x], 0.5 * (1 + kz * kz), 1e-5, 0);
    assert_close(d.polarization[on_y], 0.5 * (1 + kz * kz), 1e-5, 0);
    ew_detector_free(&d);
}

static void test_masks(void **state)
{
    (void)state;
    ew_detector_config_t c = ew_detector_config_reference();
    c.beamstop_radius_px = 10;
    ew_detector_t d;
    size_t cnt[3];
    assert_ok(ew_detector_init(&d, &c));
    ew_detector_mask_counts(&d, cnt);
    assert_close(cnt[2], EW_PI * 100, 0.05, 0);
    assert_int_equal(cnt[0] + cnt[2], d.npix);
    ew_detector_free(&d);
    /* a bar of width 4 from the centre to the +x edge adds ~4 x 54 pixels */
    c.beamstop_bar = EW_BAR_PX;
    c.bar_width_px = 4;
    assert_ok(ew_detector_init(&d, &c));
    size_t cnt2[3];
    ew_detector_mask_counts(&d, cnt2);
    assert_close((double)cnt2[2] - cnt[2], 4 * 54, 0.1, 0);
    assert_int_equal(d.mask[64 * 128 + 127], EW_MASK_BAD);
    assert_int_equal(d.mask[64 * 128 + 0], EW_MASK_GOOD);
    ew_detector_free(&d);
    /* gaps, corners not for orientation, dead pixels */
    c = ew_detector_config_reference();
    c.gap_x_px = 2;
    c.orient_radius_px = 64;
    c.dead_fraction = 0.01;
    c.dead_seed = 3;
    assert_ok(ew_detector_init(&d, &c));
    ew_detector_mask_counts(&d, cnt);
    assert_int_equal(d.mask[0], EW_MASK_NO_ORIENT);        /* a corner */
    assert_int_equal(d.mask[10 * 128 + 63], EW_MASK_BAD);  /* in the gap */
    double expect_bad = 2 * 128 + 0.01 * (d.npix - 256);
    assert_close(cnt[2], expect_bad, 0, 5 * sqrt(0.01 * d.npix));
    assert_close(cnt[1], (d.npix - EW_PI * 64 * 64) * 0.99, 0.05, 0);
    ew_detector_free(&d);
    /* errors name the field */
    c = ew_detector_config_reference();
    c.distance_m = -1;
    assert_int_equal(ew_detector_init(&d, &c), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "distance"));
    assert_null(d.s);
}

/* A volume grid from ew_detector_volume_grid holds the detector at any
 * orientation: slicing a volume of ones gives ones everywhere. */
static void test_volume_grid(void **state)
{
    (void)state;
    ew_detector_config_t c = ew_detector_config_dragonfly();
    ew_detector_t d;
    assert_ok(ew_detector_init(&d, &c));
    int ns[2] = {0, 64};
    for (int t = 0; t < 2; t++) {
        int n;
        double ds;
        ew_detector_volume_grid(&d, ns[t], &n, &ds);
        assert_true(n % 2 == 1);
        if (ns[t]) assert_int_equal(n, 65);
        ew_rvol_t v;
        assert_ok(ew_rvol_alloc(&v, n, ds));
        for (size_t i = 0; i < (size_t)n * n * n; i++) v.data[i] = 1.0f;
        float *out = malloc(sizeof(float) * d.npix);
        ew_rng_t r;
        ew_rng_init(&r, 1, 0);
        for (int k = 0; k < 20; k++) {
            double q[4], nrm = 0, R[9];
            for (int j = 0; j < 4; j++) {
                q[j] = ew_rng_normal(&r);
                nrm += q[j] * q[j];
            }
            nrm = sqrt(nrm);
            double w = q[0] / nrm, x = q[1] / nrm, y = q[2] / nrm, z = q[3] / nrm;
            R[0] = 1 - 2 * (y * y + z * z), R[1] = 2 * (x * y - w * z), R[2] = 2 * (x * z + w * y);
            R[3] = 2 * (x * y + w * z), R[4] = 1 - 2 * (x * x + z * z), R[5] = 2 * (y * z - w * x);
            R[6] = 2 * (x * z - w * y), R[7] = 2 * (y * z + w * x), R[8] = 1 - 2 * (x * x + y * y);
            ew_slice_trilinear(&v, R, d.s, d.npix, out);
            for (size_t p = 0; p < d.npix; p++) assert_close(out[p], 1.0, 1e-6, 0);
        }
        free(out);
        ew_rvol_free(&v);
    }
    ew_detector_free(&d);
}

/* Shifting the beam centre by whole pixels moves the geometry by pixels. */
static void test_shifted(void **state)
{
    (void)state;
    ew_detector_config_t c = ew_detector_config_reference();
    ew_detector_t d;
    assert_ok(ew_detector_init(&d, &c));
    float *s = malloc(sizeof(float) * 3 * d.npix), *sa = malloc(sizeof(float) * d.npix);
    ew_detector_geometry_shifted(&d, 2.0, -1.0, s, sa, NULL);
    /* pixel (row, col) with the centre moved by (+2, -1) sees what pixel
     * (row + 1, col - 2) saw before */
    for (int row = 5; row < 100; row += 7)
        for (int col = 5; col < 100; col += 9) {
            size_t i = (size_t)row * 128 + col, j = (size_t)(row + 1) * 128 + (col - 2);
            for (int k = 0; k < 3; k++) assert_close(s[3 * i + k], d.s[3 * j + k], 1e-5, 1e-9);
            assert_close(sa[i], d.solid_angle[j], 1e-5, 0);
        }
    free(s), free(sa);
    ew_detector_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_geometry), cmocka_unit_test(test_solid_angle),
        cmocka_unit_test(test_polarization),       cmocka_unit_test(test_masks),
        cmocka_unit_test(test_volume_grid),        cmocka_unit_test(test_shifted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
