/* Tests for the .npy reader/writer. */
#include "testutil.h"

#include "io/npy.h"

/* Build an .npy file in memory: version 1 or 2, header text as given
 * (padded with blanks and a newline like NumPy), then the data bytes. */
static uint8_t *make_npy(int version, const char *header, const void *data, size_t nbytes, size_t *len)
{
    size_t pre = version == 1 ? 10 : 12, hl = strlen(header) + 1;
    size_t pad = (64 - (pre + hl) % 64) % 64;
    hl += pad;
    *len = pre + hl + nbytes;
    uint8_t *b = calloc(1, *len);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)version;
    b[8] = (uint8_t)hl;
    b[9] = (uint8_t)(hl >> 8);
    memcpy(b + pre, header, strlen(header));
    memset(b + pre + strlen(header), ' ', pad);
    b[pre + hl - 1] = '\n';
    if (nbytes) memcpy(b + pre + hl, data, nbytes);
    return b;
}

static void test_dtypes(void **state)
{
    (void)state;
    size_t len;
    ew_npy_t a;
    /* int16, little-endian, shape (2, 3) */
    int16_t i16[6] = {-3, 0, 7, 32767, -32768, 12};
    uint8_t *b = make_npy(1, "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", i16, sizeof i16, &len);
    assert_ok(ew_npy_parse(b, len, "i16.npy", &a));
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.count, 6);
    for (int i = 0; i < 6; i++) assert_close(a.data[i], i16[i], 0, 0);
    ew_npy_free(&a);
    free(b);
    /* uint8 with '|', 1-D shape "(4,)", version 2 header */
    uint8_t u8[4] = {0, 1, 200, 255};
    b = make_npy(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", u8, 4, &len);
    assert_ok(ew_npy_parse(b, len, "u8.npy", &a));
    assert_int_equal(a.ndim, 1);
    assert_close(a.data[2], 200, 0, 0);
    assert_close(a.data[3], 255, 0, 0);
    ew_npy_free(&a);
    free(b);
    /* int8 negative values, int64, uint32, float32, float16 */
    int8_t i8[3] = {-128, -1, 127};
    b = make_npy(1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }", i8, 3, &len);
    assert_ok(ew_npy_parse(b, len, "i8.npy", &a));
    assert_close(a.data[0], -128, 0, 0);
    assert_close(a.data[1], -1, 0, 0);
    ew_npy_free(&a);
    free(b);
    int64_t i64[2] = {-5000000000LL, 1LL << 52};
    b = make_npy(1, "{'shape': (2,), 'fortran_order': False, 'descr': '<i8'}", i64, 16, &len);
    assert_ok(ew_npy_parse(b, len, "i64.npy", &a)); /* keys in any order, no trailing comma */
    assert_close(a.data[0], -5e9, 0, 0);
    assert_close(a.data[1], 4503599627370496.0, 0, 0);
    ew_npy_free(&a);
    free(b);
    uint32_t u32[2] = {4000000000u, 7};
    b = make_npy(1, "{'descr': '<u4', 'fortran_order': False, 'shape': (1, 2), }", u32, 8, &len);
    assert_ok(ew_npy_parse(b, len, "u32.npy", &a));
    assert_close(a.data[0], 4e9, 0, 0);
    ew_npy_free(&a);
    free(b);
    float f32[2] = {1.5f, -0.1f};
    b = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32, 8, &len);
    assert_ok(ew_npy_parse(b, len, "f32.npy", &a));
    assert_close(a.data[1], -0.1f, 0, 0);
    ew_npy_free(&a);
    free(b);
    uint16_t f16[2] = {0x3c00, 0xc000}; /* 1, -2 */
    b = make_npy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", f16, 4, &len);
    assert_ok(ew_npy_parse(b, len, "f16.npy", &a));
    assert_close(a.data[0], 1, 0, 0);
    assert_close(a.data[1], -2, 0, 0);
    ew_npy_free(&a);
    free(b);
    /* big-endian float64 and int32 */
    uint8_t be[8] = {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}; /* pi */
    b = make_npy(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (), }", be, 8, &len);
    assert_ok(ew_npy_parse(b, len, "be.npy", &a));
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.count, 1);
    assert_close(a.data[0], EW_PI, 0, 0);
    ew_npy_free(&a);
    free(b);
    uint8_t be32[4] = {0xff, 0xff, 0xff, 0xfe};
    b = make_npy(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }", be32, 4, &len);
    assert_ok(ew_npy_parse(b, len, "be32.npy", &a));
    assert_close(a.data[0], -2, 0, 0);
    ew_npy_free(&a);
    free(b);
    /* empty array */
    b = make_npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }", NULL, 0, &len);
    assert_ok(ew_npy_parse(b, len, "empty.npy", &a));
    assert_int_equal(a.count, 0);
    ew_npy_free(&a);
    free(b);
    ew_npy_free(NULL);
}

static void test_rejects(void **state)
{
    (void)state;
    struct {
        const char *hdr;
        ew_status_t st;
        const char *msg;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", EW_ERR_UNSUPPORTED, "Fortran"},
        {"{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", EW_ERR_UNSUPPORTED, "c16"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", EW_ERR_UNSUPPORTED, "|O"},
        {"{'descr': '<U5', 'fortran_order': False, 'shape': (2,), }", EW_ERR_UNSUPPORTED, "U5"},
        {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", EW_ERR_UNSUPPORTED, "structured"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", EW_ERR_FORMAT, "truncated"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", EW_ERR_FORMAT, "large"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", EW_ERR_FORMAT, "shape"},
        {"{'descr': '<f8', 'shape': (2,), }", EW_ERR_FORMAT, "fortran_order"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}", EW_ERR_FORMAT, "'x'"},
        {"['descr']", EW_ERR_FORMAT, "{"},
    };
    double payload[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len;
        uint8_t *b = make_npy(1, cases[i].hdr, payload, sizeof payload, &len);
        ew_npy_t a;
        ew_status_t st = ew_npy_parse(b, len, "bad.npy", &a);
        if (st != cases[i].st) fail_msg("case %zu: status %d (%s)", i, st, ew_error_message());
        if (!strstr(ew_error_message(), cases[i].msg) || !strstr(ew_error_message(), "bad.npy"))
            fail_msg("case %zu: message '%s' lacks '%s'", i, ew_error_message(), cases[i].msg);
        assert_null(a.data);
        free(b);
    }
    ew_npy_t a;
    assert_int_equal(ew_npy_parse("\x93NUMPX\x01\x00\x00\x00", 10, "magic.npy", &a), EW_ERR_FORMAT);
    assert_int_equal(ew_npy_parse("\x93NUMPY\x04\x00\x00\x00", 10, "v4.npy", &a), EW_ERR_UNSUPPORTED);
    assert_int_equal(ew_npy_read("/nonexistent/x.npy", &a), EW_ERR_IO);
}

static void test_roundtrip(void **state)
{
    (void)state;
    double d[24];
    float f[24];
    for (int i = 0; i < 24; i++) d[i] = f[i] = (float)(i * 0.25 - 3);
    size_t shape[3] = {2, 3, 4};
    const char *p = ew_test_tmpfile("rt64.npy");
    assert_ok(ew_npy_write_f64(p, d, 3, shape));
    ew_npy_t a;
    assert_ok(ew_npy_read(p, &a));
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[2], 4);
    assert_string_equal(a.dtype, "<f8");
    assert_memory_equal(a.data, d, sizeof d);
    ew_npy_free(&a);
    size_t len = 0;
    uint8_t *raw = ew_test_read_bytes(p, &len);
    assert_int_equal((len - 24 * 8) % 64, 0); /* header aligned to 64 as NumPy writes it */
    free(raw);
    size_t s1[1] = {24};
    p = ew_test_tmpfile("rt32.npy");
    assert_ok(ew_npy_write_f32(p, f, 1, s1));
    assert_ok(ew_npy_header_read(p, &a));
    assert_null(a.data);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.shape[0], 24);
    ew_npy_free(&a);
    assert_ok(ew_npy_read(p, &a));
    for (int i = 0; i < 24; i++) assert_close(a.data[i], f[i], 0, 0);
    ew_npy_free(&a);
    p = ew_test_tmpfile("rt0.npy");
    assert_ok(ew_npy_write_f64(p, d, 0, NULL));
    assert_ok(ew_npy_read(p, &a));
    assert_int_equal(a.ndim, 0);
    assert_close(a.data[0], d[0], 0, 0);
    ew_npy_free(&a);
}

/* The AMO86615 photon-count histogram: (2, 100) float64, bin centres and
 * counts; the count-weighted mean of the centres is 1.0100e7 photons
 * (numpy: (d[0] * d[1]).sum() / d[1].sum() = 10100319.56). */
static void test_photon_counts(void **state)
{
    (void)state;
    const char *p = ew_test_data("photon_counts_amo86615.npy");
    if (!p) skip();
    ew_npy_t a;
    assert_ok(ew_npy_read(p, &a));
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 100);
    double sw = 0, swx = 0;
    for (int i = 0; i < 100; i++) {
        assert_true(a.data[100 + i] >= 0);
        sw += a.data[100 + i];
        swx += a.data[100 + i] * a.data[i];
    }
    assert_close(swx / sw, 10100319.561746987, 1e-9, 0);
    assert_close(swx / sw, 1e7, 0.05, 0);
    ew_npy_free(&a);
}

static void test_hostile(void **state)
{
    (void)state;
    double d[12];
    for (int i = 0; i < 12; i++) d[i] = i;
    size_t shape[2] = {3, 4};
    const char *p = ew_test_tmpfile("h.npy");
    assert_ok(ew_npy_write_f64(p, d, 2, shape));
    size_t len = 0;
    uint8_t *b = ew_test_read_bytes(p, &len);
    uint8_t *buf = malloc(len);
    for (int k = 0; k <= 10; k++) {
        size_t l = len * (size_t)k / 10;
        ew_npy_t a;
        ew_status_t st = ew_npy_parse(b, l, "trunc.npy", &a);
        if (k < 10) {
            assert_int_equal(st, EW_ERR_FORMAT);
            assert_non_null(strstr(ew_error_message(), "trunc.npy"));
        }
        ew_npy_free(&a);
        /* through the file path as well */
        const char *q = ew_test_tmpfile("trunc.npy");
        assert_int_equal(ew_test_write_bytes(q, b, l), 0);
        st = ew_npy_read(q, &a);
        if (k < 10) assert_int_equal(st, EW_ERR_FORMAT);
        ew_npy_free(&a);
    }
    for (size_t k = 0; k < 400; k++) {
        memcpy(buf, b, len);
        buf[(k * 13u) % len] ^= (uint8_t)(1u << (k % 8));
        ew_npy_t a;
        ew_error_clear();
        if (ew_npy_parse(buf, len, "flip.npy", &a) != EW_OK) {
            assert_non_null(strstr(ew_error_message(), "flip.npy"));
            assert_null(a.data);
        } else {
            assert_true(a.count * 1 <= len);
        }
        ew_npy_free(&a);
    }
    free(buf);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes),        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_photon_counts),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
