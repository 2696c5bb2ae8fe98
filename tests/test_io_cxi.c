/* Tests for CXI diffraction files (io/cxi.h): round trips, streaming,
 * the flat-detector geometry against analytic formulas, and malformed files. */
#include "testutil.h"

#include <hdf5.h>

#include "core/core.h"
#include "io/cxi.h"
#include "io/h5util.h"

#define W 9
#define H 7

static void make_geom(ew_cxi_geometry_t *g, int extras)
{
    assert_ok(ew_cxi_geometry_alloc(g, W, H, extras));
    g->distance_m = 0.2;
    g->pixel_x_m = 1e-3;
    g->pixel_y_m = 1.5e-3;
    g->center_x = 4.0;
    g->center_y = 2.5;
    g->photon_energy_ev = 6000.0;
    g->wavelength_a = EW_HC_EV_A / g->photon_energy_ev;
    assert_ok(ew_cxi_geometry_flat_s(g));
    for (int p = 0; p < W * H; p++) g->mask[p] = (uint8_t)(p % 11 == 0 ? 2 : p % 7 == 0 ? 1 : 0);
}

static float pattern_value(long long i, int p) { return (float)((i * 31 + p * 7) % 13) * 0.5f; }

static void fill_patterns(long long i0, long long k, float *buf)
{
    for (long long i = 0; i < k; i++)
        for (int p = 0; p < W * H; p++) buf[i * W * H + p] = pattern_value(i0 + i, p);
}

/* No HDF5 object (file, dataset, type, space, attribute) left open. */
static void assert_no_open_handles(void)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (n != 0) fail_msg("%zd HDF5 objects still open", n);
}

static void test_flat_geometry_analytic(void **state)
{
    (void)state;
    ew_cxi_geometry_t g;
    make_geom(&g, 1);
    double lam = g.wavelength_a;
    for (int iy = 0; iy < H; iy++)
        for (int ix = 0; ix < W; ix++) {
            int p = iy * W + ix;
            double x = (ix - g.center_x) * g.pixel_x_m, y = (iy - g.center_y) * g.pixel_y_m, D = g.distance_m;
            double two_theta = atan2(sqrt(x * x + y * y), D);
            const float *s = g.s + 3 * p;
            double sn = sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + (double)s[2] * s[2]);
            assert_close(sn, 2.0 * sin(0.5 * two_theta) / lam, 1e-5, 1e-9); /* Bragg: |s| = 2 sin(theta)/lambda */
            /* s + k_in/lambda lies on the Ewald sphere of radius 1/lambda */
            double kz = s[2] + 1.0 / lam;
            assert_close(sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + kz * kz), 1.0 / lam, 1e-6, 0);
            /* azimuth follows the pixel direction */
            if (x != 0 || y != 0) assert_close(atan2(s[1], s[0]), atan2(y, x), 1e-5, 1e-6);
        }
    /* the beam-centre pixel (4, 2.5) is between rows; pixel (4, 2) has s_x = 0 */
    assert_close(g.s[3 * (2 * W + 4) + 0], 0.0, 0, 1e-12);
    ew_cxi_geometry_free(&g);

    /* solid angles of many small pixels add up to the rectangle's solid
     * angle 4 atan(a b / (D sqrt(D^2 + a^2 + b^2))) (half-widths a, b) */
    ew_cxi_geometry_t big;
    assert_ok(ew_cxi_geometry_alloc(&big, 200, 100, 1));
    big.distance_m = 0.1;
    big.pixel_x_m = big.pixel_y_m = 2e-4;
    big.center_x = 99.5;
    big.center_y = 49.5;
    big.wavelength_a = 2.0;
    assert_ok(ew_cxi_geometry_flat_s(&big));
    double sum = 0, a = 0.02, b = 0.01, D = 0.1;
    for (int p = 0; p < 200 * 100; p++) sum += big.solid_angle[p];
    assert_close(sum, 4.0 * atan(a * b / (D * sqrt(D * D + a * a + b * b))), 1e-4, 0);
    /* polarization for x-polarized light: 1 - sin^2(2theta) cos^2(phi) */
    assert_close(big.polarization[0], 1.0 - pow(99.5 * 2e-4, 2) / (pow(99.5 * 2e-4, 2) + pow(49.5 * 2e-4, 2) + D * D),
                 1e-6, 0);
    ew_cxi_geometry_free(&big);
    assert_int_equal(ew_cxi_geometry_alloc(&big, 0, 3, 0), EW_ERR_ARG);
    /* mask code <-> CXI bits */
    for (uint8_t c = 0; c < 3; c++) assert_int_equal(ew_cxi_mask_from_bits(ew_cxi_mask_to_bits(c)), c);
    assert_int_equal(ew_cxi_mask_from_bits(8), 2);
    assert_int_equal(ew_cxi_mask_from_bits(256 | 2048), 1);
}

static void test_roundtrip_fixed(void **state)
{
    (void)state;
    ew_cxi_geometry_t g;
    make_geom(&g, 1);
    const char *path = ew_test_tmpfile("rt.cxi");
    ew_cxi_write_options_t o = {.n_patterns = 5, .deflate = 4, .structure = "2cex", .seed = 987654321012345ull,
                                .with_truth = 1, .with_expected = 1};
    ew_cxi_writer_t *w;
    assert_ok(ew_cxi_writer_open(path, &g, &o, &w));
    float buf[5 * W * H];
    fill_patterns(3, 2, buf);
    assert_ok(ew_cxi_write_patterns(w, 3, 2, buf)); /* out of order */
    fill_patterns(0, 3, buf);
    assert_ok(ew_cxi_write_patterns(w, 0, 3, buf));
    for (int i = 0; i < 5 * W * H; i++) buf[i] = 0.25f * i;
    assert_ok(ew_cxi_write_expected(w, 0, 5, buf));
    double quat[20], flu[5], ph[5];
    for (int i = 0; i < 5; i++) {
        double ang = 0.3 * i, axis[3] = {1, 2, 2};
        quat[4 * i] = cos(ang / 2);
        for (int k = 0; k < 3; k++) quat[4 * i + 1 + k] = sin(ang / 2) * axis[k] / 3.0;
        flu[i] = 1e12 * (i + 1);
        ph[i] = 100.0 + i;
    }
    assert_ok(ew_cxi_write_truth(w, 0, 5, quat, flu, ph));
    assert_int_equal(ew_cxi_write_patterns(w, 4, 2, buf), EW_ERR_RANGE);
    assert_int_equal(access(path, F_OK) == 0, 0); /* not there until close */
    assert_ok(ew_cxi_writer_close(w));

    ew_cxi_reader_t *r;
    assert_ok(ew_cxi_reader_open(path, &r));
    assert_int_equal(ew_cxi_reader_count(r), 5);
    assert_true(ew_cxi_reader_has_truth(r) && ew_cxi_reader_has_expected(r));
    assert_true(ew_cxi_reader_seed(r) == 987654321012345ull);
    assert_string_equal(ew_cxi_reader_structure(r), "2cex");
    assert_string_equal(ew_cxi_reader_version(r), EW_VERSION);
    const ew_cxi_geometry_t *rg = ew_cxi_reader_geometry(r);
    assert_int_equal(rg->width, W);
    assert_int_equal(rg->height, H);
    assert_true(rg->distance_m == g.distance_m && rg->pixel_x_m == g.pixel_x_m && rg->pixel_y_m == g.pixel_y_m);
    assert_true(rg->center_x == g.center_x && rg->center_y == g.center_y);
    assert_close(rg->photon_energy_ev, 6000.0, 1e-14, 0);
    assert_close(rg->wavelength_a, g.wavelength_a, 1e-14, 0);
    assert_memory_equal(rg->s, g.s, sizeof(float) * 3 * W * H);
    assert_memory_equal(rg->mask, g.mask, W * H);
    assert_non_null(rg->solid_angle);
    assert_memory_equal(rg->solid_angle, g.solid_angle, sizeof(float) * W * H);
    assert_memory_equal(rg->polarization, g.polarization, sizeof(float) * W * H);
    float got[2 * W * H], want[2 * W * H];
    assert_ok(ew_cxi_read_patterns(r, 2, 2, got));
    fill_patterns(2, 2, want);
    assert_memory_equal(got, want, sizeof got);
    assert_ok(ew_cxi_read_expected(r, 4, 1, got));
    assert_close(got[3], 0.25 * (4 * W * H + 3), 0, 0);
    double q2[8], f2[2], p2[2];
    assert_ok(ew_cxi_read_truth(r, 1, 2, q2, f2, p2));
    assert_memory_equal(q2, quat + 4, sizeof q2);
    assert_true(f2[1] == flu[2] && p2[0] == ph[1]);
    assert_ok(ew_cxi_read_truth(r, 0, 1, NULL, NULL, p2));
    assert_int_equal(ew_cxi_read_patterns(r, 4, 2, got), EW_ERR_RANGE);
    assert_int_equal(ew_cxi_read_patterns(r, -1, 1, got), EW_ERR_RANGE);
    ew_cxi_reader_close(r);

    /* the copy is deep and equal */
    ew_cxi_geometry_t c;
    assert_ok(ew_cxi_geometry_copy(&c, &g));
    assert_memory_equal(c.polarization, g.polarization, sizeof(float) * W * H);
    assert_true(c.polarization != g.polarization);
    ew_cxi_geometry_free(&c);
    ew_cxi_geometry_free(&g);
    assert_no_open_handles();
}

static void test_extendible_and_incomplete(void **state)
{
    (void)state;
    ew_cxi_geometry_t g;
    make_geom(&g, 0);
    const char *path = ew_test_tmpfile("ext.cxi");
    ew_cxi_write_options_t o = {.n_patterns = 0, .with_truth = 1, .data_units = "expected photons"};
    ew_cxi_writer_t *w;
    assert_ok(ew_cxi_writer_open(path, &g, &o, &w));
    float buf[4 * W * H];
    long long i0 = 0;
    for (int chunk = 1; chunk <= 3; chunk++) {
        fill_patterns(i0, chunk, buf);
        assert_ok(ew_cxi_write_patterns(w, i0, chunk, buf));
        i0 += chunk;
    }
    double ph[2] = {7, 8};
    assert_ok(ew_cxi_write_truth(w, 0, 2, NULL, NULL, ph)); /* truth shorter than data: grown at close */
    assert_int_equal(ew_cxi_write_expected(w, 0, 1, buf), EW_ERR_ARG); /* not requested */
    assert_ok(ew_cxi_writer_close(w));
    ew_cxi_reader_t *r;
    assert_ok(ew_cxi_reader_open(path, &r));
    assert_int_equal(ew_cxi_reader_count(r), 6);
    assert_false(ew_cxi_reader_has_expected(r));
    assert_int_equal(ew_cxi_read_expected(r, 0, 1, buf), EW_ERR_FORMAT);
    float got[W * H], want[W * H];
    for (long long i = 0; i < 6; i++) {
        assert_ok(ew_cxi_read_patterns(r, i, 1, got));
        fill_patterns(i, 1, want);
        assert_memory_equal(got, want, sizeof got);
    }
    double p6[6];
    assert_ok(ew_cxi_read_truth(r, 0, 6, NULL, NULL, p6));
    assert_true(p6[1] == 8 && p6[5] == 0);
    assert_null(ew_cxi_reader_geometry(r)->solid_angle);
    ew_cxi_reader_close(r);

    /* a fixed N with a missing pattern fails at close and leaves no file */
    const char *p2 = ew_test_tmpfile("incomplete.cxi");
    o.n_patterns = 3;
    assert_ok(ew_cxi_writer_open(p2, &g, &o, &w));
    assert_ok(ew_cxi_write_patterns(w, 0, 2, buf));
    assert_int_equal(ew_cxi_writer_close(w), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "2 of the 3"));
    assert_int_not_equal(access(p2, F_OK), 0);
    /* abort leaves nothing either */
    assert_ok(ew_cxi_writer_open(p2, &g, &o, &w));
    ew_cxi_writer_abort(w);
    assert_int_not_equal(access(p2, F_OK), 0);
    char tmpn[600];
    snprintf(tmpn, sizeof tmpn, "%s.tmp.%ld", p2, (long)getpid());
    assert_int_not_equal(access(tmpn, F_OK), 0);
    /* bad arguments */
    o.deflate = 12;
    assert_int_equal(ew_cxi_writer_open(p2, &g, &o, &w), EW_ERR_ARG);
    assert_null(w);
    assert_int_equal(ew_cxi_writer_open("/nonexistent-dir/x.cxi", &g, NULL, &w), EW_ERR_IO);
    ew_cxi_geometry_free(&g);
    assert_no_open_handles();
}

/* A foreign, minimal CXI: data, distance, pixel sizes, energy in J, corner
 * position and CXI mask bits; no s-vectors and no ewald mask. */
static void test_minimal_foreign_file(void **state)
{
    (void)state;
    const char *path = ew_test_tmpfile("foreign.cxi");
    hid_t f;
    assert_ok(ew_h5_create(path, &f));
    hsize_t d3[3] = {2, H, W}, hw[2] = {H, W}, three = 3;
    int32_t data[2 * W * H];
    for (int i = 0; i < 2 * W * H; i++) data[i] = i % 5;
    assert_ok(ew_h5_create_dataset(f, path, "/entry_1/data_1/data", H5T_STD_I32LE, 3, d3, NULL, NULL, 0,
                                   H5T_NATIVE_INT32, data, NULL, NULL));
    uint16_t bits[W * H] = {0};
    bits[3] = 8;   /* dead */
    bits[5] = 256; /* out of resolution limits */
    bits[6] = 2048; /* artifact corrected: fine */
    assert_ok(ew_h5_create_dataset(f, path, "/entry_1/instrument_1/detector_1/mask", H5T_STD_U16LE, 2, hw, NULL,
                                   NULL, 0, H5T_NATIVE_UINT16, bits, NULL, NULL));
    assert_ok(ew_h5_write_scalar(f, path, "/entry_1/instrument_1/detector_1/distance", 0.15, "m"));
    assert_ok(ew_h5_write_scalar(f, path, "/entry_1/instrument_1/detector_1/x_pixel_size", 2e-4, "m"));
    assert_ok(ew_h5_write_scalar(f, path, "/entry_1/instrument_1/detector_1/y_pixel_size", 2e-4, "m"));
    double corner[3] = {-(3.0 + 0.5) * 2e-4, -(2.0 + 0.5) * 2e-4, 0.15};
    assert_ok(ew_h5_create_dataset(f, path, "/entry_1/instrument_1/detector_1/corner_position", H5T_IEEE_F64LE, 1,
                                   &three, NULL, NULL, 0, H5T_NATIVE_DOUBLE, corner, "m", NULL));
    assert_ok(ew_h5_write_scalar(f, path, "/entry_1/instrument_1/source_1/energy", 8000.0 * 1.602176634e-19, "J"));
    H5Fclose(f);

    ew_cxi_reader_t *r;
    assert_ok(ew_cxi_reader_open(path, &r));
    const ew_cxi_geometry_t *g = ew_cxi_reader_geometry(r);
    assert_close(g->photon_energy_ev, 8000.0, 1e-12, 0);
    assert_close(g->wavelength_a, EW_HC_EV_A / 8000.0, 1e-12, 0);
    assert_close(g->center_x, 3.0, 1e-12, 1e-12);
    assert_close(g->center_y, 2.0, 1e-12, 1e-12);
    assert_int_equal(g->mask[3], 2);
    assert_int_equal(g->mask[5], 1);
    assert_int_equal(g->mask[6], 0);
    assert_int_equal(g->mask[0], 0);
    /* pixel (3, 2) is the beam centre: s = 0; the rest follows flat_s */
    assert_close(g->s[3 * (2 * W + 3) + 0], 0.0, 0, 1e-12);
    assert_close(g->s[3 * (2 * W + 3) + 2], 0.0, 0, 1e-12);
    double x = (8 - 3) * 2e-4, y = (6 - 2) * 2e-4, D = 0.15, r3 = sqrt(x * x + y * y + D * D);
    assert_close(g->s[3 * (6 * W + 8) + 0], x / r3 / g->wavelength_a, 1e-5, 0);
    float got[W * H];
    assert_ok(ew_cxi_read_patterns(r, 1, 1, got));
    assert_close(got[4], (float)((W * H + 4) % 5), 0, 0);
    assert_int_equal(ew_cxi_reader_has_truth(r), 0);
    assert_string_equal(ew_cxi_reader_structure(r), "");
    ew_cxi_reader_close(r);
}

/* ------------------------------------------------------ malformed files */

static void write_valid(const char *path)
{
    ew_cxi_geometry_t g;
    make_geom(&g, 0);
    ew_cxi_write_options_t o = {.n_patterns = 3, .with_truth = 1};
    ew_cxi_writer_t *w;
    assert_ok(ew_cxi_writer_open(path, &g, &o, &w));
    float buf[3 * W * H];
    fill_patterns(0, 3, buf);
    assert_ok(ew_cxi_write_patterns(w, 0, 3, buf));
    assert_ok(ew_cxi_writer_close(w));
    ew_cxi_geometry_free(&g);
}

/* Replace the dataset at dpath by one of the given type/shape (or delete it
 * if rank < 0). */
static void replace_dataset(const char *path, const char *dpath, hid_t type, int rank, const hsize_t *dims)
{
    ew_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, dpath, H5P_DEFAULT) >= 0);
    if (rank >= 0) {
        hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
        hid_t d = H5Dcreate2(f, dpath, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(d >= 0);
        H5Dclose(d);
        H5Sclose(sp);
    }
    H5Fclose(f);
}

static void expect_open_fails(const char *path, const char *needle)
{
    ew_cxi_reader_t *r = (ew_cxi_reader_t *)1;
    ew_status_t st = ew_cxi_reader_open(path, &r);
    if (st == EW_OK) fail_msg("opening %s succeeded, expected an error mentioning %s", path, needle);
    assert_null(r);
    const char *msg = ew_error_message();
    if (!strstr(msg, path) || (needle && !strstr(msg, needle)))
        fail_msg("message \"%s\" does not name %s and %s", msg, path, needle ? needle : "");
}

static void test_malformed(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s", ew_test_tmpfile("bad.cxi"));
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 8);
    hsize_t d2[2] = {H, W}, d3[3] = {3, H, W}, dbad[3] = {H, W, 2}, dq[2] = {2, 4}, d1 = 4;
    struct {
        const char *ds;
        hid_t type;
        int rank;
        const hsize_t *dims;
        const char *needle;
    } cases[] = {
        {"/entry_1/data_1/data", 0, -1, NULL, "/entry_1/data_1/data is missing"},
        {"/entry_1/data_1/data", H5T_IEEE_F32LE, 2, d2, "rank 2"},
        {"/entry_1/data_1/data", str, 3, d3, "not numeric"},
        {"/entry_1/data_1/mask", H5T_STD_U8LE, 2, (hsize_t[]){H + 1, W}, "/entry_1/data_1/mask"},
        {"/entry_1/instrument_1/detector_1/s_vectors", H5T_IEEE_F32LE, 3, dbad, "s_vectors"},
        {"/entry_1/instrument_1/detector_1/distance", 0, -1, NULL, "distance is missing"},
        {"/entry_1/instrument_1/detector_1/distance", H5T_IEEE_F64LE, 1, &d1, "single value"},
        {"/entry_1/instrument_1/detector_1/x_pixel_size", str, 0, NULL, "x_pixel_size"},
        {"/entry_1/instrument_1/source_1/photon_energy_ev", H5T_IEEE_F64LE, 0, NULL, "photon energy 0"},
        {"/entry_1/ground_truth/quaternions", H5T_IEEE_F64LE, 2, dq, "2 rows but"},
        {"/entry_1/ground_truth/photons", H5T_IEEE_F64LE, 2, dq, "rank 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_valid(path);
        replace_dataset(path, cases[i].ds, cases[i].type, cases[i].rank, cases[i].dims);
        expect_open_fails(path, cases[i].needle);
    }
    H5Tclose(str);

    /* a mask value outside 0..2 */
    write_valid(path);
    {
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t d = H5Dopen2(f, "/entry_1/data_1/mask", H5P_DEFAULT);
        uint8_t m[W * H] = {0};
        m[10] = 5;
        assert_true(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) >= 0);
        H5Dclose(d);
        H5Fclose(f);
    }
    expect_open_fails(path, "not 0, 1 or 2");

    /* truncated files: every cut fails cleanly (in open or in the reads) */
    write_valid(path);
    size_t len = 0;
    unsigned char *bytes = ew_test_read_bytes(path, &len);
    assert_non_null(bytes);
    char tpath[512];
    snprintf(tpath, sizeof tpath, "%s", ew_test_tmpfile("trunc.cxi"));
    int open_failed = 0;
    for (int frac = 1; frac < 16; frac++) {
        size_t n = len * (size_t)frac / 16;
        assert_int_equal(ew_test_write_bytes(tpath, bytes, n), 0);
        ew_cxi_reader_t *r;
        ew_status_t st = ew_cxi_reader_open(tpath, &r);
        if (st != EW_OK) {
            assert_true(st == EW_ERR_FORMAT || st == EW_ERR_IO);
            assert_non_null(strstr(ew_error_message(), tpath));
            open_failed++;
            continue;
        }
        float buf[3 * W * H];
        st = ew_cxi_read_patterns(r, 0, 3, buf); /* may fail: data past the cut */
        assert_true(st == EW_OK || st == EW_ERR_FORMAT);
        ew_cxi_reader_close(r);
    }
    assert_true(open_failed > 0);
    free(bytes);

    /* not HDF5 at all, and absent */
    assert_int_equal(ew_test_write_bytes(tpath, "hello, not hdf5", 15), 0);
    expect_open_fails(tpath, "not an HDF5 file");
    ew_cxi_reader_t *r;
    assert_int_not_equal(ew_cxi_reader_open(ew_test_tmpfile("absent.cxi"), &r), EW_OK);
    assert_no_open_handles();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_geometry_analytic),
        cmocka_unit_test(test_roundtrip_fixed),
        cmocka_unit_test(test_extendible_and_incomplete),
        cmocka_unit_test(test_minimal_foreign_file),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
