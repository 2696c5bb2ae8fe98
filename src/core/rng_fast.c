/* ewald core: Philox4x32-10 in bulk (structure-of-arrays output), for
 * samplers that need one or two words per pixel. Same words as
 * ew_philox4x32_10 / ew_rng_u32 on the same (seed, stream); checked against
 * them in tests/test_core_rng_fast.c. */
#include "core/rng.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* Portable: one block per iteration (the compiler may vectorize it, but
 * with 64-bit multiplies: slower than the AVX-512 path below). */
static void blocks_portable(uint32_t k0i, uint32_t k1i, uint32_t s0, uint32_t s1, uint64_t first, size_t n,
                            uint32_t *o0, uint32_t *o1, uint32_t *o2, uint32_t *o3)
{
    for (size_t j = 0; j < n; j++) {
        uint64_t b = first + (uint64_t)j;
        uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = s0, c3 = s1, k0 = k0i, k1 = k1i;
        for (int round = 0; round < 10; round++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint32_t)p1;
            c3 = (uint32_t)p0;
            c0 = n0;
            c2 = n2;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        o0[j] = c0, o1[j] = c1, o2[j] = c2, o3[j] = c3;
    }
}

#if defined(__AVX512F__)
/* hi and lo 32 bits of the 16 products m * c (32 x 32 -> 64 bits) with
 * vpmuludq on the even and the odd lanes. */
static inline void mul16(__m512i c, __m512i m, __m512i *hi, __m512i *lo)
{
    __m512i pe = _mm512_mul_epu32(c, m);                          /* lanes 0, 2, ... as 64-bit */
    __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(c, 32), m);   /* lanes 1, 3, ... */
    *lo = _mm512_mask_blend_epi32((__mmask16)0xAAAA, pe, _mm512_slli_epi64(po, 32));
    *hi = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(pe, 32), po);
}
#endif

void ew_philox_blocks(uint64_t seed, uint64_t stream, uint64_t first, size_t n, uint32_t *out0, uint32_t *out1,
                      uint32_t *out2, uint32_t *out3)
{
    const uint32_t k0i = (uint32_t)seed, k1i = (uint32_t)(seed >> 32);
    const uint32_t s0 = (uint32_t)stream, s1 = (uint32_t)(stream >> 32);
    size_t j = 0;
#if defined(__AVX512F__)
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; j + 16 <= n; j += 16) {
        uint64_t b = first + j;
        /* counters b .. b + 15: the low word may wrap within the vector */
        __m512i lo = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)b), lane);
        __mmask16 carry = _mm512_cmplt_epu32_mask(lo, _mm512_set1_epi32((int)(uint32_t)b));
        __m512i c1 = _mm512_mask_add_epi32(_mm512_set1_epi32((int)(uint32_t)(b >> 32)), carry,
                                           _mm512_set1_epi32((int)(uint32_t)(b >> 32)), _mm512_set1_epi32(1));
        __m512i c0 = lo, c2 = _mm512_set1_epi32((int)s0), c3 = _mm512_set1_epi32((int)s1);
        uint32_t k0 = k0i, k1 = k1i;
        for (int round = 0; round < 10; round++) {
            __m512i h0, l0, h1, l1;
            mul16(c0, m0, &h0, &l0);
            mul16(c2, m1, &h1, &l1);
            __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(h1, c1), _mm512_set1_epi32((int)k0));
            __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(h0, c3), _mm512_set1_epi32((int)k1));
            c1 = l1;
            c3 = l0;
            c0 = n0;
            c2 = n2;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        _mm512_storeu_si512((void *)(out0 + j), c0);
        _mm512_storeu_si512((void *)(out1 + j), c1);
        _mm512_storeu_si512((void *)(out2 + j), c2);
        _mm512_storeu_si512((void *)(out3 + j), c3);
    }
#endif
    if (j < n) blocks_portable(k0i, k1i, s0, s1, first + j, n - j, out0 + j, out1 + j, out2 + j, out3 + j);
}
