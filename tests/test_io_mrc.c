/* Tests for the MRC2014 reader/writer. */
#include "testutil.h"

#include "io/mrc.h"

static void test_half(void **state)
{
    (void)state;
    /* every finite or infinite half survives half -> float -> half */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ew_half_to_float((uint16_t)h);
        if (isnan(f)) {
            assert_true(isnan(ew_half_to_float(ew_float_to_half(f))));
            continue;
        }
        assert_int_equal(ew_float_to_half(f), h);
    }
    /* known encodings (IEEE 754 binary16) */
    assert_int_equal(ew_float_to_half(1.0f), 0x3c00);
    assert_int_equal(ew_float_to_half(-2.0f), 0xc000);
    assert_int_equal(ew_float_to_half(65504.0f), 0x7bff);
    assert_int_equal(ew_float_to_half(65520.0f), 0x7c00);          /* rounds to inf */
    assert_int_equal(ew_float_to_half(ldexpf(1, -24)), 0x0001);     /* smallest subnormal */
    assert_int_equal(ew_float_to_half(ldexpf(1, -25)), 0x0000);     /* tie -> even (0) */
    assert_int_equal(ew_float_to_half(1.0f + ldexpf(1, -11)), 0x3c00); /* tie -> even */
    assert_int_equal(ew_float_to_half(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    assert_close(ew_half_to_float(0x3555), 0.333251953125, 0, 0);
    assert_close(ew_half_to_float(0x0200), ldexp(1, -15), 0, 0);
}

static float *ramp(size_t n, double scale, double offset)
{
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = (float)(offset + scale * sin(0.37 * (double)i) * (1 + (double)(i % 7)));
    return d;
}

static void stats(const float *d, size_t n, double *mn, double *mx, double *mean, double *rms)
{
    double s = 0, s2 = 0;
    *mn = *mx = d[0];
    for (size_t i = 0; i < n; i++) {
        s += d[i];
        if (d[i] < *mn) *mn = d[i];
        if (d[i] > *mx) *mx = d[i];
    }
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) s2 += (d[i] - *mean) * (d[i] - *mean);
    *rms = sqrt(s2 / (double)n);
}

static void test_roundtrip_modes(void **state)
{
    (void)state;
    const int modes[] = {EW_MRC_INT8, EW_MRC_INT16, EW_MRC_FLOAT32, EW_MRC_UINT16, EW_MRC_FLOAT16};
    const int nx = 9, ny = 7, nz = 5;
    size_t n = (size_t)nx * ny * nz;
    for (int k = 0; k < 5; k++) {
        int mode = modes[k];
        double scale = mode == EW_MRC_INT8 ? 20 : mode == EW_MRC_FLOAT32 ? 1.5 : 300;
        double off = mode == EW_MRC_UINT16 ? 5000 : 0;
        float *d = ramp(n, scale, off);
        /* expected stored values */
        float *e = malloc(n * sizeof *e);
        for (size_t i = 0; i < n; i++)
            e[i] = mode == EW_MRC_FLOAT32   ? d[i]
                   : mode == EW_MRC_FLOAT16 ? ew_half_to_float(ew_float_to_half(d[i]))
                                            : (float)nearbyint(d[i]);
        for (size_t i = 0; i < n; i++) {
            if (mode == EW_MRC_INT8) e[i] = e[i] < -128 ? -128 : e[i] > 127 ? 127 : e[i];
            if (mode == EW_MRC_INT16) e[i] = e[i] < -32768 ? -32768 : e[i] > 32767 ? 32767 : e[i];
            if (mode == EW_MRC_UINT16) e[i] = e[i] < 0 ? 0 : e[i] > 65535 ? 65535 : e[i];
        }
        if (mode == EW_MRC_INT8) d[3] = 1000, e[3] = 127, d[4] = -1000, e[4] = -128; /* clamped */
        for (int stack = 0; stack < 2; stack++) {
            const char *p = ew_test_tmpfile("rt.mrc");
            double origin[3] = {1.5, -2.0, 30.25};
            assert_ok(ew_mrc_write(p, d, nx, ny, nz, 1.25, origin, stack, mode));
            ew_mrc_t m;
            assert_ok(ew_mrc_read(p, &m));
            assert_int_equal(m.nx, nx);
            assert_int_equal(m.ny, ny);
            assert_int_equal(m.nz, nz);
            assert_int_equal(m.header.mode, mode);
            assert_int_equal(m.is_stack, stack);
            assert_int_equal(m.header.ispg, stack ? 0 : 1);
            assert_int_equal(m.header.mz, stack ? 1 : nz);
            assert_int_equal(m.header.has_map_id, 1);
            assert_int_equal(m.header.nversion, 20141);
            assert_close(m.pixel_size[0], 1.25, 1e-6, 0);
            assert_close(m.pixel_size[2], 1.25, 1e-6, 0);
            for (int dd = 0; dd < 3; dd++) assert_close(m.origin[dd], origin[dd], 0, 1e-6);
            for (size_t i = 0; i < n; i++)
                if (m.data[i] != e[i]) fail_msg("mode %d voxel %zu: %g != %g", mode, i, m.data[i], e[i]);
            double mn, mx, mean, rms;
            stats(e, n, &mn, &mx, &mean, &rms);
            assert_close(m.header.dmin, mn, 1e-6, 0);
            assert_close(m.header.dmax, mx, 1e-6, 0);
            assert_close(m.header.dmean, mean, 1e-5, 1e-6);
            assert_close(m.header.rms, rms, 1e-5, 0);
            ew_mrc_free(&m);
            assert_null(m.data);
        }
        free(d);
        free(e);
    }
    ew_mrc_free(NULL);
}

static void test_stream_and_sections(void **state)
{
    (void)state;
    const int nx = 16, ny = 12, nimg = 6;
    size_t sec = (size_t)nx * ny;
    float *d = ramp(sec * nimg, 2.0, 0.5);
    const char *p = ew_test_tmpfile("stack.mrcs");
    ew_mrc_writer_t *w;
    assert_ok(ew_mrc_writer_open(&w, p, nx, ny, 2.806, NULL, 1, EW_MRC_FLOAT32));
    assert_int_equal(access(p, F_OK), -1); /* nothing at path until close */
    assert_ok(ew_mrc_writer_append(w, d, 1));
    assert_ok(ew_mrc_writer_append(w, d + sec, 2));
    assert_ok(ew_mrc_writer_append(w, d + 3 * sec, 3));
    assert_ok(ew_mrc_writer_close(w));
    ew_mrc_header_t h;
    assert_ok(ew_mrc_header_read(p, &h));
    assert_int_equal(h.nz, nimg);
    assert_int_equal(h.is_stack, 1);
    double mn, mx, mean, rms;
    stats(d, sec * nimg, &mn, &mx, &mean, &rms);
    assert_close(h.dmean, mean, 1e-5, 1e-7);
    assert_close(h.rms, rms, 1e-5, 0);
    char desc[256];
    ew_mrc_header_describe(&h, desc, sizeof desc);
    assert_non_null(strstr(desc, "image stack 16 x 12 x 6"));
    ew_mrc_t m;
    assert_ok(ew_mrc_read_sections(p, 2, 3, &m));
    assert_int_equal(m.nz, 3);
    assert_int_equal(m.z0, 2);
    assert_memory_equal(m.data, d + 2 * sec, 3 * sec * sizeof(float));
    assert_close(m.pixel_size[0], 2.806, 1e-6, 0);
    ew_mrc_free(&m);
    assert_int_equal(ew_mrc_read_sections(p, 4, 3, &m), EW_ERR_RANGE);
    assert_non_null(strstr(ew_error_message(), p));
    assert_int_equal(ew_mrc_read_sections(p, -1, 1, &m), EW_ERR_RANGE);
    assert_int_equal(ew_mrc_read_sections(p, 0, 0, &m), EW_ERR_RANGE);
    /* abort leaves nothing behind; close with no sections is an error */
    const char *q = ew_test_tmpfile("aborted.mrcs");
    assert_ok(ew_mrc_writer_open(&w, q, nx, ny, 1.0, NULL, 1, EW_MRC_FLOAT32));
    assert_ok(ew_mrc_writer_append(w, d, 1));
    ew_mrc_writer_abort(w);
    assert_int_equal(access(q, F_OK), -1);
    assert_ok(ew_mrc_writer_open(&w, q, nx, ny, 1.0, NULL, 1, EW_MRC_FLOAT32));
    assert_int_equal(ew_mrc_writer_close(w), EW_ERR_ARG);
    assert_int_equal(access(q, F_OK), -1);
    assert_int_equal(ew_mrc_writer_open(&w, q, nx, ny, 1.0, NULL, 1, 3), EW_ERR_ARG);
    assert_null(w);
    /* a non-finite value cannot be stored as an integer: no file */
    d[5] = NAN;
    assert_int_equal(ew_mrc_write(q, d, nx, ny, 1, 1.0, NULL, 1, EW_MRC_INT16), EW_ERR_NUMERIC);
    assert_int_equal(access(q, F_OK), -1);
    free(d);
}

static void swap4(uint8_t *p)
{
    uint8_t t = p[0];
    p[0] = p[3];
    p[3] = t;
    t = p[1];
    p[1] = p[2];
    p[2] = t;
}

static void test_big_endian_and_exthdr(void **state)
{
    (void)state;
    const int nx = 5, ny = 4, nz = 3;
    size_t n = (size_t)nx * ny * nz;
    float *d = ramp(n, 1.0, 0.0);
    const char *p = ew_test_tmpfile("le.mrc");
    assert_ok(ew_mrc_write(p, d, nx, ny, nz, 3.0, NULL, 0, EW_MRC_FLOAT32));
    size_t len = 0;
    uint8_t *b = ew_test_read_bytes(p, &len);
    assert_int_equal(len, 1024 + 4 * n);
    /* big-endian copy: swap every header word except the id/stamp/labels */
    uint8_t *be = malloc(len);
    memcpy(be, b, len);
    for (int wd = 0; wd < 56; wd++)
        if (wd != 52 && wd != 53 && !(wd >= 26 && wd <= 26)) swap4(be + 4 * wd);
    be[212] = 0x11;
    be[213] = 0x11;
    for (size_t i = 0; i < n; i++) swap4(be + 1024 + 4 * i);
    ew_mrc_t m;
    assert_ok(ew_mrc_parse(be, len, "be.mrc", &m));
    assert_int_equal(m.header.big_endian, 1);
    assert_int_equal(m.nz, nz);
    assert_close(m.pixel_size[0], 3.0, 1e-6, 0);
    assert_memory_equal(m.data, d, n * sizeof(float));
    ew_mrc_free(&m);
    /* the same with a zero machine stamp: the byte order is guessed */
    be[212] = be[213] = 0;
    assert_ok(ew_mrc_parse(be, len, "be0.mrc", &m));
    assert_int_equal(m.header.big_endian, 1);
    assert_memory_equal(m.data, d, n * sizeof(float));
    ew_mrc_free(&m);
    /* extended header of 96 bytes is skipped via nsymbt */
    uint8_t *ext = calloc(1, len + 96);
    memcpy(ext, b, 1024);
    memcpy(ext + 1120, b + 1024, len - 1024);
    ext[92] = 96; /* word 23 little-endian */
    memcpy(ext + 104, "CCP4", 4);
    assert_ok(ew_mrc_parse(ext, len + 96, "ext.mrc", &m));
    assert_int_equal(m.header.nsymbt, 96);
    assert_memory_equal(m.data, d, n * sizeof(float));
    ew_mrc_free(&m);
    free(ext);
    free(be);
    free(b);
    free(d);
}

/* A map stored with columns = Z, rows = X, sections = Y (mapc 3, mapr 1,
 * maps 2) comes back as (Z, Y, X) with X fastest. */
static void test_permuted_axes(void **state)
{
    (void)state;
    const int X = 4, Y = 3, Z = 2;
    float file[24];
    size_t i = 0;
    for (int y = 0; y < Y; y++)         /* sections */
        for (int x = 0; x < X; x++)     /* rows */
            for (int z = 0; z < Z; z++) /* columns */
                file[i++] = (float)(x + 10 * y + 100 * z);
    const char *p = ew_test_tmpfile("perm.mrc");
    assert_ok(ew_mrc_write(p, file, Z, X, Y, 1.0, NULL, 0, EW_MRC_FLOAT32));
    size_t len = 0;
    uint8_t *b = ew_test_read_bytes(p, &len);
    int32_t map[3] = {3, 1, 2};
    memcpy(b + 64, map, sizeof map); /* words 16-18 (little-endian host) */
    assert_int_equal(ew_test_write_bytes(p, b, len), 0);
    ew_mrc_t m;
    assert_ok(ew_mrc_read(p, &m));
    assert_int_equal(m.header.axes_permuted, 1);
    assert_int_equal(m.nx, X);
    assert_int_equal(m.ny, Y);
    assert_int_equal(m.nz, Z);
    for (int z = 0; z < Z; z++)
        for (int y = 0; y < Y; y++)
            for (int x = 0; x < X; x++)
                assert_close(m.data[x + X * (y + Y * z)], x + 10 * y + 100 * z, 0, 0);
    ew_mrc_free(&m);
    assert_ok(ew_mrc_parse(b, len, "perm.mrc", &m));
    assert_close(m.data[3 + X * (2 + Y * 1)], 3 + 20 + 100, 0, 0);
    ew_mrc_free(&m);
    assert_int_equal(ew_mrc_read_sections(p, 0, 1, &m), EW_ERR_UNSUPPORTED);
    assert_non_null(strstr(ew_error_message(), "3, 1, 2"));
    int32_t bad[3] = {1, 1, 2};
    memcpy(b + 64, bad, sizeof bad);
    assert_int_equal(ew_mrc_parse(b, len, "bad.mrc", &m), EW_ERR_FORMAT);
    free(b);
}

static void check_hostile(const uint8_t *data, size_t n, const char *name)
{
    ew_mrc_t m;
    ew_error_clear();
    ew_status_t st = ew_mrc_parse(data, n, name, &m);
    if (st != EW_OK) {
        if (!strstr(ew_error_message(), name)) fail_msg("message does not name the input: '%s'", ew_error_message());
        assert_null(m.data);
    } else {
        assert_true((size_t)m.nx * m.ny * m.nz * m.header.bytes_per_voxel <= n);
    }
    ew_mrc_free(&m);
}

static void test_hostile(void **state)
{
    (void)state;
    ew_log_level_t lv = ew_log_get_level();
    ew_log_set_level(EW_LOG_ERROR); /* the permissive warnings are expected here */
    const int nx = 6, ny = 5, nz = 4;
    float *d = ramp((size_t)nx * ny * nz, 3.0, 0.0);
    const int modes[] = {EW_MRC_FLOAT32, EW_MRC_FLOAT16, EW_MRC_INT8};
    for (int k = 0; k < 3; k++) {
        const char *p = ew_test_tmpfile("h.mrc");
        assert_ok(ew_mrc_write(p, d, nx, ny, nz, 1.0, NULL, 0, modes[k]));
        size_t len = 0;
        uint8_t *b = ew_test_read_bytes(p, &len);
        uint8_t *buf = malloc(len);
        for (int t = 0; t <= 10; t++) { /* truncations, through the file path too */
            size_t l = len * (size_t)t / 10;
            check_hostile(b, l, "trunc.mrc");
            const char *q = ew_test_tmpfile("trunc.mrc");
            assert_int_equal(ew_test_write_bytes(q, b, l), 0);
            ew_mrc_t m;
            ew_status_t st = ew_mrc_read(q, &m);
            if (t < 10) {
                assert_int_equal(st, EW_ERR_FORMAT);
                assert_non_null(strstr(ew_error_message(), q));
            }
            ew_mrc_free(&m);
        }
        for (size_t f = 0; f < 600; f++) { /* bit flips, mostly in the header */
            memcpy(buf, b, len);
            size_t pos = f < 512 ? (f * 2u) % 1024 : 1024 + (f * 37u) % (len - 1024);
            buf[pos] ^= (uint8_t)(1u << (f % 8));
            check_hostile(buf, len, "flip.mrc");
            buf[pos] ^= 0xff; /* and whole-byte corruptions */
            check_hostile(buf, len, "flip.mrc");
        }
        free(buf);
        free(b);
    }
    /* the real EMDB map, truncated and bit-flipped */
    const char *emd = ew_test_data("cryoem/EMD-3197.map");
    if (emd) {
        size_t len = 0;
        uint8_t *b = ew_test_read_bytes(emd, &len);
        uint8_t *buf = malloc(len);
        for (int t = 0; t <= 10; t++) check_hostile(b, len * (size_t)t / 10, "emd-trunc.map");
        for (size_t f = 0; f < 400; f++) {
            memcpy(buf, b, len);
            buf[(f * 5u) % 1024] ^= (uint8_t)(1u << (f % 8));
            check_hostile(buf, len, "emd-flip.map");
        }
        free(buf);
        free(b);
    }
    /* a header that promises a huge volume must not allocate it */
    uint8_t hdr[1024] = {0};
    int32_t big[4] = {1 << 20, 1 << 20, 1 << 20, 2};
    memcpy(hdr, big, sizeof big);
    memcpy(hdr + 208, "MAP ", 4);
    hdr[212] = 0x44;
    ew_mrc_t m;
    assert_int_equal(ew_mrc_parse(hdr, sizeof hdr, "huge.mrc", &m), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "truncated"));
    int32_t neg = -3;
    memcpy(hdr + 8, &neg, 4);
    assert_int_equal(ew_mrc_parse(hdr, sizeof hdr, "neg.mrc", &m), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "nz"));
    assert_int_equal(ew_mrc_read("/nonexistent/a.mrc", &m), EW_ERR_IO);
    free(d);
    ew_log_set_level(lv);
}

/* Real files; expected values from python mrcfile (header fields and
 * numpy float64 means of the data). */
static void test_real_files(void **state)
{
    (void)state;
    int any = 0;
    ew_mrc_t m;
    const char *p = ew_test_data("cryoem/empiar_10076_7.mrc");
    if (p) { /* cell size 0: pixel size unknown */
        any = 1;
        assert_ok(ew_mrc_read(p, &m));
        assert_int_equal(m.nx, 320);
        assert_int_equal(m.nz, 7);
        assert_close(m.pixel_size[0], 0.0, 0, 0);
        double mn, mx, mean, rms;
        stats(m.data, (size_t)320 * 320 * 7, &mn, &mx, &mean, &rms);
        assert_close(mean, -0.003434370667618655, 1e-6, 1e-9);
        assert_close(rms, 1.005141858437214, 1e-6, 0);
        assert_close(mx, 5.534544, 1e-6, 0);
        ew_mrc_free(&m);
        assert_ok(ew_mrc_read_sections(p, 6, 1, &m));
        assert_int_equal(m.nz, 1);
        ew_mrc_free(&m);
    }
    p = ew_test_data("cryoem/relion31.mrcs");
    if (p) { /* no "MAP " id, machine stamp 0 */
        any = 1;
        assert_ok(ew_mrc_read(p, &m));
        assert_int_equal(m.header.has_map_id, 0);
        assert_int_equal(m.header.big_endian, 0);
        assert_int_equal(m.nx, 256);
        assert_int_equal(m.nz, 5);
        assert_int_equal(m.is_stack, 1);
        double mn, mx, mean, rms;
        stats(m.data, (size_t)256 * 256 * 5, &mn, &mx, &mean, &rms);
        assert_close(mean, 0.010766173491712498, 1e-6, 1e-9);
        assert_close(rms, 1.0130505612025769, 1e-6, 0);
        assert_close(mn, -4.3833203, 1e-6, 0);
        ew_mrc_free(&m);
    }
    p = ew_test_data("cryoem/EMD-3197.map");
    if (p) { /* stamp 0x44 0x41, cell 228 A over 20 voxels */
        any = 1;
        assert_ok(ew_mrc_read(p, &m));
        assert_int_equal(m.nx, 20);
        assert_int_equal(m.nz, 20);
        assert_int_equal(m.is_stack, 0);
        assert_close(m.pixel_size[2], 11.4, 1e-6, 0);
        double mn, mx, mean, rms;
        stats(m.data, 8000, &mn, &mx, &mean, &rms);
        assert_close(mean, 0.7836120336436434, 1e-6, 0);
        assert_close(rms, 2.39995290849429, 1e-6, 0);
        assert_close(m.header.dmean, 0.783612, 1e-6, 0);
        ew_mrc_free(&m);
    }
    p = ew_test_data("cryoem/hand-vol.mrc");
    if (p) {
        any = 1;
        ew_mrc_header_t h;
        assert_ok(ew_mrc_header_read(p, &h));
        assert_int_equal(h.nx, 64);
        assert_close(h.pixel_size[0], 1.0, 0, 0);
        assert_ok(ew_mrc_read_sections(p, 10, 5, &m));
        ew_mrc_t all;
        assert_ok(ew_mrc_read(p, &all));
        assert_memory_equal(m.data, all.data + (size_t)10 * 64 * 64, (size_t)5 * 64 * 64 * 4);
        double mn, mx, mean, rms;
        stats(all.data, (size_t)64 * 64 * 64, &mn, &mx, &mean, &rms);
        assert_close(mean, 0.0010292882669887468, 1e-6, 1e-9);
        /* rewrite in float16 and read back: within half precision */
        const char *q = ew_test_tmpfile("hand16.mrc");
        assert_ok(ew_mrc_write(q, all.data, 64, 64, 64, 1.0, NULL, 0, EW_MRC_FLOAT16));
        ew_mrc_t h16;
        assert_ok(ew_mrc_read(q, &h16));
        for (size_t i = 0; i < (size_t)64 * 64 * 64; i++)
            assert_close(h16.data[i], all.data[i], 1.0 / 1024, 1e-7);
        ew_mrc_free(&h16);
        ew_mrc_free(&all);
        ew_mrc_free(&m);
    }
    if (!any) skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half),          cmocka_unit_test(test_roundtrip_modes),
        cmocka_unit_test(test_stream_and_sections), cmocka_unit_test(test_big_endian_and_exthdr),
        cmocka_unit_test(test_permuted_axes),
        cmocka_unit_test(test_hostile),       cmocka_unit_test(test_real_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
