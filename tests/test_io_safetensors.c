/* safetensors reader/writer: round trips of every dtype, known-value
 * conversions (F16/BF16), hand-built files, and hostile inputs
 * (truncation at every length, bit flips, overlapping or missing data). */
#include <stdint.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "testutil.h"

static const char *write_sample(void)
{
    static float f32[6] = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
    static double f64[3] = {1.0 / 3.0, -1e300, 2.5};
    static int64_t i64[2] = {-5, 1234567890123LL};
    static int32_t i32[3] = {-1, 0, 7};
    static uint8_t u8[4] = {0, 1, 200, 255};
    static uint16_t f16[4] = {0x3C00, 0xC000, 0x3555, 0x0001};  /* 1, -2, 0.33325, 2^-24 */
    static uint16_t bf16[2] = {0x3F80, 0xC0A0};                 /* 1, -5 */
    ew_st_entry_t e[] = {
        {"layer.weight", EW_ST_F32, 2, {2, 3}, f32}, {"d", EW_ST_F64, 1, {3}, f64},
        {"num_batches_tracked", EW_ST_I64, 0, {0}, i64}, {"i64v", EW_ST_I64, 1, {1}, i64 + 1},
        {"i", EW_ST_I32, 1, {3}, i32}, {"u", EW_ST_U8, 2, {2, 2}, u8},
        {"h", EW_ST_F16, 1, {4}, f16}, {"b", EW_ST_BF16, 1, {2}, bf16},
        {"empty", EW_ST_F32, 2, {0, 5}, f32},
    };
    const char *meta[] = {"format", "pt", "step", "42"};
    const char *path = ew_test_tmpfile("sample.safetensors");
    assert_ok(ew_safetensors_write(path, e, sizeof e / sizeof e[0], meta, 2));
    return path;
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *path = write_sample();
    ew_safetensors_t st;
    assert_ok(ew_safetensors_read(path, &st));
    assert_int_equal(st.n, 9);
    assert_string_equal(ew_safetensors_meta(&st, "step"), "42");
    assert_null(ew_safetensors_meta(&st, "nope"));
    const ew_st_tensor_t *t = ew_safetensors_find(&st, "layer.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    float f[6];
    assert_ok(ew_safetensors_get_f32(&st, "layer.weight", f, 6));
    assert_true(f[0] == 1.5f && f[1] == -2.25f && f[4] == 1e-3f && f[5] == -7.0f);
    assert_ok(ew_safetensors_get_f32(&st, "d", f, 3));
    assert_true(f[0] == (float)(1.0 / 3.0) && isinf(f[1]) && f[2] == 2.5f);
    int64_t v[4];
    assert_ok(ew_safetensors_get_i64(&st, "num_batches_tracked", v, 1));
    assert_true(v[0] == -5);
    assert_ok(ew_safetensors_get_i64(&st, "i64v", v, 1));
    assert_true(v[0] == 1234567890123LL);
    assert_ok(ew_safetensors_get_i64(&st, "i", v, 3));
    assert_true(v[0] == -1 && v[1] == 0 && v[2] == 7);
    assert_ok(ew_safetensors_get_i64(&st, "u", v, 4));
    assert_true(v[2] == 200 && v[3] == 255);
    assert_ok(ew_safetensors_get_f32(&st, "h", f, 4));
    assert_true(f[0] == 1.0f && f[1] == -2.0f);
    assert_close(f[2], 0.333251953125, 0, 1e-12);
    assert_close(f[3], ldexp(1.0, -24), 0, 1e-20);
    assert_ok(ew_safetensors_get_f32(&st, "b", f, 2));
    assert_true(f[0] == 1.0f && f[1] == -5.0f);
    t = ew_safetensors_find(&st, "empty");
    assert_non_null(t);
    assert_int_equal(t->count, 0);
    /* wrong count and missing tensors name the file and tensor */
    assert_int_equal(ew_safetensors_get_f32(&st, "layer.weight", f, 5), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "layer.weight"));
    assert_non_null(strstr(ew_error_message(), "sample.safetensors"));
    assert_int_equal(ew_safetensors_get_f32(&st, "missing", f, 1), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "missing"));
    /* header is 8-byte aligned */
    assert_int_equal((st.data - st.buf) % 8, 0);
    ew_safetensors_free(&st);
    ew_safetensors_free(&st); /* idempotent */
}

static ew_status_t parse_str(const char *json, const unsigned char *data, size_t nd, ew_safetensors_t *st)
{
    size_t hl = strlen(json);
    unsigned char *buf = malloc(8 + hl + nd + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    if (nd) memcpy(buf + 8 + hl, data, nd);
    ew_status_t s = ew_safetensors_parse(buf, 8 + hl + nd, "mem.safetensors", st);
    free(buf);
    return s;
}

static void test_hand_built(void **state)
{
    (void)state;
    ew_safetensors_t st;
    unsigned char d[16];
    float one = 1.0f, two = 2.0f;
    memcpy(d, &one, 4);
    memcpy(d + 4, &two, 4);
    /* a valid file in the format's own words (tensors listed out of data order) */
    assert_ok(parse_str("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                        d, 8, &st));
    float f;
    assert_ok(ew_safetensors_get_f32(&st, "b", &f, 1));
    assert_true(f == 2.0f);
    ew_safetensors_free(&st);
    struct {
        const char *json;
        size_t nd;
        const char *expect;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "a"},            /* span */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "cover"},        /* hole at end */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, "b"},              /* overlap */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 4, "a"},            /* beyond data */
        {"{\"a\":{\"dtype\":\"X9\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "X9"},           /* dtype */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape"},      /* negative */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape"},     /* fraction */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "a"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
        {"{\"__metadata__\":{\"k\":5}}", 0, "__metadata__"},
        {"[1,2]", 0, "object"},
        {"{\"a\":", 0, "JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ew_status_t s = parse_str(bad[i].json, d, bad[i].nd, &st);
        if (s != EW_ERR_FORMAT) fail_msg("case %zu accepted: %s", i, bad[i].json);
        if (!strstr(ew_error_message(), bad[i].expect) || !strstr(ew_error_message(), "mem.safetensors"))
            fail_msg("case %zu: message '%s' lacks '%s'", i, ew_error_message(), bad[i].expect);
        assert_null(st.buf);
    }
    /* header length larger than the file */
    unsigned char small[12] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    assert_int_equal(ew_safetensors_parse(small, sizeof small, "x.st", &st), EW_ERR_FORMAT);
    assert_int_equal(ew_safetensors_parse(small, 5, "x.st", &st), EW_ERR_FORMAT);
}

static void test_truncation_and_flips(void **state)
{
    (void)state;
    const char *path = write_sample();
    size_t n = 0;
    unsigned char *img = ew_test_read_bytes(path, &n);
    assert_non_null(img);
    ew_safetensors_t st;
    for (size_t len = 0; len < n; len++) {
        ew_status_t s = ew_safetensors_parse(img, len, "trunc.safetensors", &st);
        if (s == EW_OK) fail_msg("truncated to %zu of %zu bytes accepted", len, n);
        assert_non_null(strstr(ew_error_message(), "trunc.safetensors"));
    }
    /* a truncated file on disk names the file */
    const char *tp = ew_test_tmpfile("cut.safetensors");
    assert_int_equal(ew_test_write_bytes(tp, img, n - 3), 0);
    assert_int_equal(ew_safetensors_read(tp, &st), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "cut.safetensors"));
    /* random bit flips: reject cleanly, or accept a file whose tensors all read back */
    ew_rng_t r;
    ew_rng_init(&r, 5, 0);
    unsigned char *cp = malloc(n);
    int rejected = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(cp, img, n);
        int flips = 1 + (int)ew_rng_below(&r, 3);
        for (int k = 0; k < flips; k++) {
            size_t pos = ew_rng_below(&r, n); /* whole file */
            if (it % 2 == 0) pos = ew_rng_below(&r, 8 + 300 < n ? 8 + 300 : n); /* header region */
            cp[pos] ^= (unsigned char)(1u << ew_rng_below(&r, 8));
        }
        if (ew_safetensors_parse(cp, n, "flip.safetensors", &st) != EW_OK) {
            rejected++;
            continue;
        }
        for (size_t i = 0; i < st.n; i++) {
            float *tmp = malloc((st.t[i].count + 1) * sizeof(float));
            assert_ok(ew_safetensors_get_f32(&st, st.t[i].name, tmp, st.t[i].count));
            free(tmp);
        }
        ew_safetensors_free(&st);
    }
    assert_true(rejected > 100);
    free(cp);
    free(img);
}

static void test_writer_errors(void **state)
{
    (void)state;
    float x = 1;
    ew_st_entry_t e[2] = {{"a", EW_ST_F32, 1, {1}, &x}, {"a", EW_ST_F32, 1, {1}, &x}};
    const char *p = ew_test_tmpfile("dup.safetensors");
    assert_int_equal(ew_safetensors_write(p, e, 2, NULL, 0), EW_ERR_ARG);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_not_equal(ew_safetensors_write("/nonexistent-dir/x.safetensors", e, 1, NULL, 0), EW_OK);
    assert_non_null(strstr(ew_error_message(), "/nonexistent-dir/x.safetensors"));
    ew_safetensors_t st;
    assert_int_equal(ew_safetensors_read(ew_test_tmpfile("absent.safetensors"), &st), EW_ERR_IO);
}

/* Reading a float tensor as int64: integers convert, a value outside the
 * int64 range or with a fraction is an error, not undefined behaviour
 * (regression: found by fuzz_safetensors). */
static void test_i64_from_float(void **state)
{
    (void)state;
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    size_t hl = strlen(hdr);
    unsigned char buf[256];
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    float v[3] = {3.0f, -7.0f, 42.0f};
    memcpy(buf + 8 + hl, v, sizeof v);
    ew_safetensors_t st;
    int64_t out[3];
    assert_ok(ew_safetensors_parse(buf, 8 + hl + sizeof v, "mem", &st));
    assert_ok(ew_safetensors_get_i64(&st, "a", out, 3));
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], -7);
    assert_int_equal(out[2], 42);
    ew_safetensors_free(&st);
    const float bad[2] = {7.0975e22f, 2.5f};
    for (int k = 0; k < 2; k++) {
        v[1] = bad[k];
        memcpy(buf + 8 + hl, v, sizeof v);
        assert_ok(ew_safetensors_parse(buf, 8 + hl + sizeof v, "mem", &st));
        assert_int_equal(ew_safetensors_get_i64(&st, "a", out, 3), EW_ERR_FORMAT);
        assert_non_null(strstr(ew_error_message(), "element 1"));
        ew_safetensors_free(&st);
    }
}

/* A header with two __metadata__ objects is refused (regression: the
 * first one leaked; found by fuzz_safetensors under LeakSanitizer). */
static void test_duplicate_metadata(void **state)
{
    (void)state;
    const char *hdr = "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\"}}";
    size_t hl = strlen(hdr);
    unsigned char buf[128];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    ew_safetensors_t st;
    assert_int_equal(ew_safetensors_parse(buf, 8 + hl, "mem", &st), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "__metadata__ appears twice"));
    ew_safetensors_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_truncation_and_flips),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_i64_from_float),
        cmocka_unit_test(test_duplicate_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
