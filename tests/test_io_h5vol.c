/* Tests for HDF5 volumes (io/h5vol.h). */
#include "testutil.h"

#include <hdf5.h>

#include "core/core.h"
#include "io/h5util.h"
#include "io/h5vol.h"

static void assert_no_open_handles(void)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (n != 0) fail_msg("%zd HDF5 objects still open", n);
}

static void test_meta(void **state)
{
    (void)state;
    ew_h5meta_t m = {0};
    assert_ok(ew_h5meta_set(&m, "structure", "2cex"));
    assert_ok(ew_h5meta_set(&m, "seed", "7"));
    assert_ok(ew_h5meta_set(&m, "structure", "1bxr"));
    assert_int_equal(m.n, 2);
    assert_string_equal(ew_h5meta_get(&m, "structure"), "1bxr");
    assert_null(ew_h5meta_get(&m, "nope"));
    assert_int_equal(ew_h5meta_set(&m, "a/b", "x"), EW_ERR_ARG);
    assert_int_equal(ew_h5meta_set(&m, "", "x"), EW_ERR_ARG);
    ew_h5meta_free(&m);
    assert_int_equal(m.n, 0);
}

static void test_rvol_roundtrip(void **state)
{
    (void)state;
    const int n = 9;
    ew_rvol_t v = {n, 0.0125, ew_alloc_array((size_t)n * n * n, sizeof(float))};
    assert_non_null(v.data);
    for (int i = 0; i < n * n * n; i++) v.data[i] = (float)sin(0.1 * i) * 1e3f;
    ew_h5meta_t m = {0};
    assert_ok(ew_h5meta_set(&m, "structure", "2cex"));
    assert_ok(ew_h5meta_set(&m, "iteration", "42"));
    const char *path = ew_test_tmpfile("rv.h5");
    assert_ok(ew_h5vol_write_rvol(path, &v, "photons", &m));
    ew_rvol_t back;
    char *units;
    ew_h5meta_t mb;
    assert_ok(ew_h5vol_read_rvol(path, &back, &units, &mb));
    assert_int_equal(back.n, n);
    assert_true(back.ds == v.ds);
    assert_memory_equal(back.data, v.data, sizeof(float) * n * n * n);
    assert_string_equal(units, "photons");
    assert_int_equal(mb.n, 2);
    assert_string_equal(ew_h5meta_get(&mb, "iteration"), "42");
    assert_string_equal(ew_h5meta_get(&mb, "structure"), "2cex");
    free(units);
    ew_h5meta_free(&mb);
    ew_free(back.data);
    /* NULL outputs and no metadata */
    assert_ok(ew_h5vol_write_rvol(path, &v, NULL, NULL));
    assert_ok(ew_h5vol_read_rvol(path, &back, NULL, NULL));
    ew_free(back.data);

    /* the general reader sees the layout: origin -(n/2) ds, reciprocal */
    ew_h5vol_t g;
    assert_ok(ew_h5vol_read(path, &g));
    assert_int_equal(g.space, EW_VOL_RECIPROCAL);
    assert_close(g.origin[0], -4 * 0.0125, 1e-15, 0);
    ew_h5vol_free(&g);
    ew_free(v.data);
    ew_h5meta_free(&m);
    v.n = 0;
    assert_int_equal(ew_h5vol_write_rvol(path, &v, NULL, NULL), EW_ERR_ARG);
    assert_no_open_handles();
}

static void test_real_volume(void **state)
{
    (void)state;
    ew_h5vol_t v = {0};
    v.nx = 5;
    v.ny = 4;
    v.nz = 3;
    v.space = EW_VOL_REAL;
    v.voxel[0] = 1.1;
    v.voxel[1] = 1.2;
    v.voxel[2] = 1.3;
    v.origin[0] = -10;
    v.origin[2] = 3.5;
    v.units = ew_strdup("electrons/Angstrom^3");
    v.data = ew_alloc_array(60, sizeof(float));
    for (int i = 0; i < 60; i++) v.data[i] = (float)i; /* (z, y, x) = i / 20, (i / 5) % 4, i % 5 */
    assert_ok(ew_h5meta_set(&v.meta, "source", "emd_1234.map"));
    const char *path = ew_test_tmpfile("real.h5");
    assert_ok(ew_h5vol_write(path, &v));
    ew_h5vol_t b;
    assert_ok(ew_h5vol_read(path, &b));
    assert_int_equal(b.nx, 5);
    assert_int_equal(b.ny, 4);
    assert_int_equal(b.nz, 3);
    assert_int_equal(b.space, EW_VOL_REAL);
    for (int k = 0; k < 3; k++) assert_true(b.voxel[k] == v.voxel[k] && b.origin[k] == v.origin[k]);
    assert_memory_equal(b.data, v.data, 60 * sizeof(float));
    assert_string_equal(b.units, "electrons/Angstrom^3");
    assert_string_equal(ew_h5meta_get(&b.meta, "source"), "emd_1234.map");
    ew_h5vol_free(&b);

    /* the file's layout, read with plain HDF5: voxel (z=2, y=1, x=3) */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/volume", H5P_DEFAULT);
    float all[60];
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) >= 0);
    assert_true(all[(2 * 4 + 1) * 5 + 3] == (float)(2 * 20 + 1 * 5 + 3));
    H5Dclose(d);
    H5Fclose(f);

    /* a real volume is not a reciprocal one */
    ew_rvol_t rv;
    assert_int_equal(ew_h5vol_read_rvol(path, &rv, NULL, NULL), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "real-space"));
    assert_null(rv.data);
    /* bad arguments */
    v.voxel[1] = 0;
    assert_int_equal(ew_h5vol_write(path, &v), EW_ERR_ARG);
    ew_h5vol_free(&v);
    assert_no_open_handles();
}

/* Write a valid cube, then damage one thing with plain HDF5 calls. */
static void valid_cube(const char *path)
{
    ew_rvol_t v = {4, 0.02, ew_calloc_array(64, sizeof(float))};
    assert_ok(ew_h5vol_write_rvol(path, &v, "photons", NULL));
    ew_free(v.data);
}

static hid_t open_rw(const char *path)
{
    ew_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

static void set_attr_f64(const char *path, const char *name, const double *v, int n)
{
    hid_t f = open_rw(path), d = H5Dopen2(f, "/volume", H5P_DEFAULT);
    assert_ok(ew_h5_attr_set_f64(d, path, "/volume", name, v, n));
    H5Dclose(d);
    H5Fclose(f);
}

static void expect_fail(const char *path, const char *needle)
{
    ew_rvol_t rv;
    ew_status_t st = ew_h5vol_read_rvol(path, &rv, NULL, NULL);
    if (st == EW_OK) fail_msg("reading %s succeeded, expected an error about %s", path, needle);
    assert_null(rv.data);
    if (!strstr(ew_error_message(), path) || !strstr(ew_error_message(), needle))
        fail_msg("message \"%s\" does not name %s and %s", ew_error_message(), path, needle);
}

static void test_malformed(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s", ew_test_tmpfile("bad.h5"));

    valid_cube(path);
    hid_t f = open_rw(path);
    assert_true(H5Ldelete(f, "/volume", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_fail(path, "/volume is missing");

    valid_cube(path);
    f = open_rw(path);
    assert_true(H5Ldelete(f, "/volume", H5P_DEFAULT) >= 0);
    hsize_t d2[2] = {4, 4};
    assert_ok(ew_h5_create_dataset(f, path, "/volume", H5T_IEEE_F32LE, 2, d2, NULL, NULL, 0, 0, NULL, NULL, NULL));
    H5Fclose(f);
    expect_fail(path, "rank 2");

    valid_cube(path);
    f = open_rw(path);
    assert_true(H5Ldelete(f, "/volume", H5P_DEFAULT) >= 0);
    hsize_t d3[3] = {4, 4, 4};
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 4);
    assert_ok(ew_h5_create_dataset(f, path, "/volume", str, 3, d3, NULL, NULL, 0, 0, NULL, NULL, NULL));
    H5Tclose(str);
    H5Fclose(f);
    expect_fail(path, "not numeric");

    valid_cube(path);
    f = open_rw(path);
    hid_t d = H5Dopen2(f, "/volume", H5P_DEFAULT);
    assert_true(H5Adelete(d, "voxel_size") >= 0);
    H5Dclose(d);
    H5Fclose(f);
    expect_fail(path, "voxel_size is missing");

    valid_cube(path);
    double vs[3] = {0.02, -1, 0.02};
    set_attr_f64(path, "voxel_size", vs, 3);
    expect_fail(path, "voxel_size[1]");

    valid_cube(path);
    set_attr_f64(path, "voxel_size", vs, 2);
    expect_fail(path, "expected 3");

    valid_cube(path);
    double vs2[3] = {0.02, 0.03, 0.02};
    set_attr_f64(path, "voxel_size", vs2, 3);
    expect_fail(path, "differ");

    valid_cube(path);
    double org[3] = {0, 0, 0};
    set_attr_f64(path, "origin", org, 3);
    expect_fail(path, "centre convention");

    valid_cube(path);
    f = open_rw(path);
    d = H5Dopen2(f, "/volume", H5P_DEFAULT);
    assert_ok(ew_h5_attr_set_str(d, path, "/volume", "space", "fourier"));
    H5Dclose(d);
    H5Fclose(f);
    expect_fail(path, "not real or reciprocal");

    valid_cube(path);
    f = open_rw(path);
    d = H5Dopen2(f, "/volume", H5P_DEFAULT);
    assert_ok(ew_h5_attr_set_f64(d, path, "/volume", "space", vs, 1));
    H5Dclose(d);
    H5Fclose(f);
    expect_fail(path, "not a single string");

    /* non-cubic */
    ew_h5vol_t v = {0};
    v.nx = 4;
    v.ny = 4;
    v.nz = 2;
    v.space = EW_VOL_RECIPROCAL;
    v.voxel[0] = v.voxel[1] = v.voxel[2] = 0.1;
    v.data = ew_calloc_array(32, sizeof(float));
    assert_ok(ew_h5vol_write(path, &v));
    ew_free(v.data);
    expect_fail(path, "expected a cube");

    /* truncated files */
    valid_cube(path);
    size_t len = 0;
    unsigned char *bytes = ew_test_read_bytes(path, &len);
    assert_non_null(bytes);
    int failed = 0;
    for (int frac = 0; frac < 16; frac++) {
        assert_int_equal(ew_test_write_bytes(path, bytes, len * (size_t)frac / 16), 0);
        ew_rvol_t rv;
        ew_status_t st = ew_h5vol_read_rvol(path, &rv, NULL, NULL);
        if (st == EW_OK) ew_free(rv.data);
        else {
            failed++;
            assert_non_null(strstr(ew_error_message(), path));
        }
    }
    assert_int_equal(failed, 16);
    free(bytes);
    assert_no_open_handles();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_rvol_roundtrip),
        cmocka_unit_test(test_real_volume),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
