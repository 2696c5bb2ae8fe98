/* Tests of the simulator's compact outputs: integer CXI patterns
 * (ew_cxi_write_options_t.data_type, `ewald xfel simulate --dtype`) and the
 * one-pass rounded .emc path (ew_emc_writer_add_rounded). The oracle for
 * every rounded value is libm's lrintf of max(v, 0) in double-checked
 * ranges, written independently of ew_cxi_round_count. */
#include "testutil.h"

#include <hdf5.h>

#include "io/cxi.h"
#include "io/emcfile.h"

/* Independent rounding oracle: lrint (ties to even in the default rounding
 * mode) of max(v, 0), NaN -> 0, saturated at max, computed in double. */
static uint32_t oracle_count(float v, double max)
{
    if (isnan(v) || v <= 0.0f) return 0;
    double r = (double)v >= max ? max : (double)lrint((double)v);
    return r >= max ? (uint32_t)max : (uint32_t)r;
}

static void small_geometry(ew_cxi_geometry_t *g, int w, int h)
{
    assert_ok(ew_cxi_geometry_alloc(g, w, h, 0));
    g->distance_m = 0.2;
    g->pixel_x_m = g->pixel_y_m = 1e-3;
    g->photon_energy_ev = 4600;
    g->wavelength_a = EW_HC_EV_A / 4600;
    g->center_x = (w - 1) / 2.0;
    g->center_y = (h - 1) / 2.0;
    assert_ok(ew_cxi_geometry_flat_s(g));
}

/* Test values: ties, negatives, NaN, saturation, and noisy counts. */
static void fill_values(float *v, size_t n, uint64_t seed)
{
    static const float special[] = {0.0f, -0.0f, -3.2f, 0.49999997f, 0.5f, 0.50000006f, 1.5f, 2.5f, 3.5f,
                                    65534.5f, 65535.4f, 65535.6f, 70000.0f, 8388607.5f, 16777216.0f,
                                    2147483520.0f, 3e9f, INFINITY, -INFINITY, NAN};
    const size_t ns = sizeof special / sizeof special[0];
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++)
        v[i] = i < ns ? special[i] : (float)(ew_rng_poisson(&r, 0.7) + 0.3 * ew_rng_normal(&r));
}

/* Integer CXI files read back (as float) equal to the oracle's rounding
 * of the float values; the dataset has the asked HDF5 type; the float32
 * file (whole chunks written raw) reads back bit-exact. */
static void test_cxi_integer_types(void **state)
{
    (void)state;
    enum { W = 12, H = 7, N = 9 };
    const size_t npix = (size_t)W * H;
    ew_cxi_geometry_t g;
    small_geometry(&g, W, H);
    float *v = malloc(sizeof(float) * N * npix), *back = malloc(sizeof(float) * N * npix);
    fill_values(v, N * npix, 5);
    static const ew_cxi_dtype_t types[3] = {EW_CXI_FLOAT32, EW_CXI_UINT16, EW_CXI_INT32};
    static const double maxv[3] = {0, 65535.0, 2147483647.0};
    for (int t = 0; t < 3; t++) {
        for (int extendible = 0; extendible < 2; extendible++) {
            char path[512];
            snprintf(path, sizeof path, "%s", ew_test_tmpfile("ints.cxi"));
            ew_cxi_write_options_t o = {.n_patterns = extendible ? 0 : N, .data_type = types[t]};
            ew_cxi_writer_t *w;
            assert_ok(ew_cxi_writer_open(path, &g, &o, &w));
            /* out of order, in uneven slices */
            assert_ok(ew_cxi_write_patterns(w, 4, 5, v + 4 * npix));
            assert_ok(ew_cxi_write_patterns(w, 0, 4, v));
            assert_ok(ew_cxi_writer_close(w));
            ew_cxi_reader_t *r;
            assert_ok(ew_cxi_reader_open(path, &r));
            assert_int_equal(ew_cxi_reader_count(r), N);
            assert_ok(ew_cxi_read_patterns(r, 0, N, back));
            ew_cxi_reader_close(r);
            for (size_t i = 0; i < N * npix; i++) {
                if (types[t] == EW_CXI_FLOAT32) {
                    assert_memory_equal(&back[i], &v[i], sizeof(float));
                } else {
                    uint32_t want = oracle_count(v[i], maxv[t]);
                    if ((double)back[i] != (double)(float)want)
                        fail_msg("type %d: value %.9g stored as %.9g, expected %u", t, (double)v[i],
                                 (double)back[i], want);
                }
            }
            /* the file type: f32, u16 or i32 */
            hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
            assert_true(f >= 0);
            hid_t d = H5Dopen2(f, "/entry_1/data_1/data", H5P_DEFAULT), ty = H5Dget_type(d);
            hid_t want = types[t] == EW_CXI_UINT16 ? H5T_STD_U16LE
                         : types[t] == EW_CXI_INT32 ? H5T_STD_I32LE
                                                    : H5T_IEEE_F32LE;
            assert_true(H5Tequal(ty, want) > 0);
            H5Tclose(ty), H5Dclose(d), H5Fclose(f);
            remove(path);
        }
    }
    /* the bulk rounding itself, against the oracle */
    uint16_t *u = malloc(2 * N * npix);
    int32_t *s = malloc(4 * N * npix);
    ew_cxi_round_counts(v, N * npix, EW_CXI_UINT16, u);
    ew_cxi_round_counts(v, N * npix, EW_CXI_INT32, s);
    for (size_t i = 0; i < N * npix; i++) {
        assert_int_equal(u[i], oracle_count(v[i], 65535.0));
        assert_int_equal((uint32_t)s[i], oracle_count(v[i], 2147483647.0));
        assert_int_equal(ew_cxi_round_count(v[i], 65535u), u[i]);
    }
    /* an invalid type is refused, nothing left behind */
    ew_cxi_write_options_t bad = {.data_type = (ew_cxi_dtype_t)7};
    ew_cxi_writer_t *w = NULL;
    assert_int_equal(ew_cxi_writer_open(ew_test_tmpfile("bad.cxi"), &g, &bad, &w), EW_ERR_ARG);
    assert_null(w);
    assert_int_equal(ew_test_count_temporaries(), 0);
    free(u), free(s), free(v), free(back);
    ew_cxi_geometry_free(&g);
}

/* direct_io (O_DIRECT + asynchronous writes, where the file system takes
 * it; the ordinary path elsewhere): patterns written out of order in
 * uneven slices, more than one staging buffer's worth, read back exactly;
 * a missing pattern still gives an error at close and no file. */
static void test_cxi_direct_io(void **state)
{
    (void)state;
    static const int dims[2][2] = {{32, 32}, {64, 32}}; /* f32 and u16: 4096 bytes per pattern */
    static const ew_cxi_dtype_t types[2] = {EW_CXI_FLOAT32, EW_CXI_UINT16};
    enum { N = 150 };
    for (int t = 0; t < 2; t++) {
        const int W = dims[t][0], H = dims[t][1];
        const size_t npix = (size_t)W * H;
        ew_cxi_geometry_t g;
        small_geometry(&g, W, H);
        float *v = malloc(sizeof(float) * N * npix), *back = malloc(sizeof(float) * N * npix);
        fill_values(v, N * npix, 17 + t);
        if (types[t] == EW_CXI_FLOAT32)
            for (size_t i = 0; i < N * npix; i++)
                if (isnan(v[i])) v[i] = 1.25f; /* compare with memcmp below */
        char path[512];
        snprintf(path, sizeof path, "%s", ew_test_tmpfile("dio.cxi"));
        ew_cxi_write_options_t o = {.n_patterns = N, .data_type = types[t], .direct_io = 1, .with_truth = 1};
        ew_cxi_writer_t *w;
        assert_ok(ew_cxi_writer_open(path, &g, &o, &w));
        /* zeros first, then the values over them while the zeros may still be in flight */
        memset(back, 0, sizeof(float) * N * npix);
        assert_ok(ew_cxi_write_patterns(w, 0, N, back));
        static const int cuts[] = {0, 3, 70, 71, 140, N};
        for (int c = 4; c >= 0; c--)
            assert_ok(ew_cxi_write_patterns(w, cuts[c], cuts[c + 1] - cuts[c], v + (size_t)cuts[c] * npix));
        assert_ok(ew_cxi_writer_close(w));
        ew_cxi_reader_t *r;
        assert_ok(ew_cxi_reader_open(path, &r));
        assert_int_equal(ew_cxi_reader_count(r), N);
        assert_ok(ew_cxi_read_patterns(r, 0, N, back));
        ew_cxi_reader_close(r);
        for (size_t i = 0; i < N * npix; i++) {
            if (types[t] == EW_CXI_FLOAT32) assert_memory_equal(&back[i], &v[i], sizeof(float));
            else assert_true(back[i] == (float)oracle_count(v[i], 65535.0));
        }
        /* the documented layout for direct_io: one contiguous, 4096-aligned block */
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t d = H5Dopen2(f, "/entry_1/data_1/data", H5P_DEFAULT), dcpl = H5Dget_create_plist(d);
        assert_int_equal(H5Pget_layout(dcpl), H5D_CONTIGUOUS);
        assert_int_equal(H5Dget_offset(d) % 4096, 0);
        H5Pclose(dcpl), H5Dclose(d), H5Fclose(f);
        remove(path);
        /* one pattern missing: error, no file */
        assert_ok(ew_cxi_writer_open(path, &g, &o, &w));
        assert_ok(ew_cxi_write_patterns(w, 0, N - 1, v));
        assert_int_equal(ew_cxi_writer_close(w), EW_ERR_ARG);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(ew_test_count_temporaries(), 0);
        free(v), free(back);
        ew_cxi_geometry_free(&g);
    }
}

/* ew_emc_writer_add_rounded writes the same file, byte for byte, as
 * ew_emc_writer_add_counts on the oracle's counts; sparse and dense frames,
 * a frame size that is not a multiple of 16. */
static void test_emc_rounded(void **state)
{
    (void)state;
    enum { NPIX = 1000 + 7, N = 6 };
    float *v = malloc(sizeof(float) * N * NPIX);
    int32_t *c = malloc(sizeof(int32_t) * NPIX);
    fill_values(v, N * NPIX, 9);
    for (size_t i = 0; i < N * NPIX; i++)
        if (v[i] > 1e6f) v[i] = 7.0f; /* keep counts small: the file stores int32 */
    for (size_t p = 0; p < NPIX; p++) v[2 * NPIX + p] = 0.2f * (float)((int)p % 3) - 0.2f; /* an empty frame */
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s", ew_test_tmpfile("a.emc"));
    snprintf(pb, sizeof pb, "%s", ew_test_tmpfile("b.emc"));
    ew_emc_writer_t *wa, *wb;
    assert_ok(ew_emc_writer_open(pa, NPIX, &wa));
    assert_ok(ew_emc_writer_open(pb, NPIX, &wb));
    for (int k = 0; k < N; k++) {
        assert_ok(ew_emc_writer_add_rounded(wa, v + (size_t)k * NPIX));
        for (size_t p = 0; p < NPIX; p++) c[p] = (int32_t)oracle_count(v[(size_t)k * NPIX + p], 2147483647.0);
        assert_ok(ew_emc_writer_add_counts(wb, c));
    }
    assert_ok(ew_emc_writer_close(wa));
    assert_ok(ew_emc_writer_close(wb));
    size_t na, nb;
    unsigned char *ba = ew_test_read_bytes(pa, &na), *bb = ew_test_read_bytes(pb, &nb);
    assert_non_null(ba);
    assert_non_null(bb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    ew_emc_photons_t ph;
    assert_ok(ew_emc_photons_read(pa, &ph));
    assert_int_equal(ph.num_frames, N);
    assert_int_equal(ew_emc_photons_frame_total(&ph, 2), 0);
    ew_emc_photons_free(&ph);
    free(ba), free(bb), free(v), free(c);
    remove(pa), remove(pb);
}

/* `ewald xfel simulate --dtype uint16|int32`: the file reads back, and its
 * values are the float32 run's (same seed) rounded. */
static void test_cli_dtype(void **state)
{
    (void)state;
    const char *b = getenv("EWALD_BIN");
    const char *pdb = ew_test_data("pdb/1uao.pdb");
    if (!b || access(b, X_OK) != 0 || !pdb) skip();
    static const char *const names[3] = {"float32", "uint16", "int32"};
    char paths[3][512];
    enum { N = 5, NPIX = 24 * 16 };
    float *vals[3];
    for (int t = 0; t < 3; t++) {
        char name[32], cmd[12000];
        snprintf(name, sizeof name, "dt_%s.cxi", names[t]);
        snprintf(paths[t], sizeof paths[t], "%s", ew_test_tmpfile(name));
        snprintf(cmd, sizeof cmd,
                 "%s xfel simulate '%s' -n %d --width 24 --height 16 --pixel-um 4000 --fluence-factor 3000 "
                 "--readout-sigma 0.3 --background 0.05 --volume-n 33 --seed 11 --dtype %s -o '%s' >/dev/null",
                 b, pdb, N, names[t], paths[t]);
        assert_int_equal(system(cmd), 0);
        ew_cxi_reader_t *r;
        assert_ok(ew_cxi_reader_open(paths[t], &r));
        assert_int_equal(ew_cxi_reader_count(r), N);
        vals[t] = malloc(sizeof(float) * N * NPIX);
        assert_ok(ew_cxi_read_patterns(r, 0, N, vals[t]));
        ew_cxi_reader_close(r);
    }
    size_t nonzero = 0, negative = 0;
    for (size_t i = 0; i < (size_t)N * NPIX; i++) {
        float v = vals[0][i];
        assert_true(vals[1][i] == (float)oracle_count(v, 65535.0));
        assert_true(vals[2][i] == (float)oracle_count(v, 2147483647.0));
        nonzero += vals[1][i] > 0;
        negative += v < 0;
    }
    assert_true(nonzero > 10);  /* photons were there ... */
    assert_true(negative > 10); /* ... and readout noise below zero, rounded to 0 */
    /* a bad type is refused with nothing written */
    char cmd[12000], bad[512];
    snprintf(bad, sizeof bad, "%s", ew_test_tmpfile("dt_bad.cxi"));
    snprintf(cmd, sizeof cmd, "%s xfel simulate '%s' -n 1 --dtype float16 -o '%s' >/dev/null 2>&1", b, pdb, bad);
    assert_true(system(cmd) != 0);
    assert_true(access(bad, F_OK) != 0);
    for (int t = 0; t < 3; t++) {
        free(vals[t]);
        remove(paths[t]);
    }
    assert_int_equal(ew_test_count_temporaries(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxi_integer_types),
        cmocka_unit_test(test_cxi_direct_io),
        cmocka_unit_test(test_emc_rounded),
        cmocka_unit_test(test_cli_dtype),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
