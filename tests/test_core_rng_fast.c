/* Bulk Philox (ew_philox_blocks) against the scalar block function and
 * against the word order of ew_rng_u32. */
#include "testutil.h"

#include "core/rng.h"

static void check_range(uint64_t seed, uint64_t stream, uint64_t first, size_t n)
{
    uint32_t *o = malloc(4 * n * sizeof(uint32_t) + 16);
    assert_non_null(o);
    ew_philox_blocks(seed, stream, first, n, o, o + n, o + 2 * n, o + 3 * n);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (size_t i = 0; i < n; i++) {
        uint64_t b = first + i;
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t want[4];
        ew_philox4x32_10(ctr, key, want);
        for (int k = 0; k < 4; k++) assert_int_equal(o[k * n + i], want[k]);
    }
    free(o);
}

static void test_blocks_match_scalar(void **state)
{
    (void)state;
    check_range(77, ew_rng_stream_id(EW_RNG_TAG_NOISE, 12345), 0, 1000);  /* vector body + scalar tail */
    check_range(0xdeadbeefcafef00dull, 3, 0xfffffff5ull, 40);              /* counter carry inside a vector */
    check_range(1, 2, (1ull << 63) - 7, 33);
    check_range(5, 6, 17, 3);                                              /* shorter than one vector */
    check_range(5, 6, 17, 0);
}

static void test_blocks_match_stream(void **state)
{
    (void)state;
    enum { N = 64 };
    uint32_t o[4 * N];
    ew_philox_blocks(42, 9, 0, N, o, o + N, o + 2 * N, o + 3 * N);
    ew_rng_t r;
    ew_rng_init(&r, 42, 9);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 4; k++) assert_int_equal(ew_rng_u32(&r), o[k * N + i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_match_scalar),
        cmocka_unit_test(test_blocks_match_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
