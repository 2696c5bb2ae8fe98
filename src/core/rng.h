/* ewald core: counter-based random numbers (Philox4x32-10) and samplers.
 *
 * A stream is keyed by (seed, stream): the seed is the user's --seed, the
 * stream is the index of the item that owns the draws (a pattern, a
 * micrograph, a training step), optionally combined with a purpose tag by
 * ew_rng_stream_id(). Draws within a stream come from an internal 64-bit
 * counter. Because an item's draws depend only on (seed, stream), results
 * are identical whatever the thread count, the MPI rank count, or the
 * order in which items are processed.
 *
 *     ew_rng_t r;
 *     ew_rng_init(&r, seed, ew_rng_stream_id(EW_RNG_TAG_NOISE, pattern_index));
 *     double x = ew_rng_normal(&r);
 *
 * Philox4x32-10: Salmon, Moraes, Dror & Shaw, "Parallel random numbers:
 * as easy as 1, 2, 3", SC11. The implementation is checked against the
 * known-answer vectors of the Random123 distribution in tests.
 */
#ifndef EW_CORE_RNG_H
#define EW_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    uint32_t key[2];   /* from the seed */
    uint32_t ctr[4];   /* ctr[0..1]: 64-bit draw counter, ctr[2..3]: stream */
    uint32_t buf[4];   /* last Philox output block */
    int used;          /* words of buf already handed out (4 = empty) */
    int have_spare;    /* Box-Muller keeps its second normal */
    double spare;
} ew_rng_t;

/* Start the stream (seed, stream) at draw 0. */
void ew_rng_init(ew_rng_t *r, uint64_t seed, uint64_t stream);

/* Combine a small purpose tag (< 2^16) and an item index (< 2^48) into one
 * stream id, so different uses of the same item never share draws. */
static inline uint64_t ew_rng_stream_id(uint32_t tag, uint64_t index)
{
    return ((uint64_t)(tag & 0xffffu) << 48) | (index & 0xffffffffffffull);
}

/* Purpose tags used across ewald (add new ones at the end). */
enum {
    EW_RNG_TAG_GENERIC = 0,
    EW_RNG_TAG_ORIENTATION = 1,
    EW_RNG_TAG_FLUENCE = 2,
    EW_RNG_TAG_NOISE = 3,
    EW_RNG_TAG_INIT = 4,
    EW_RNG_TAG_BATCH = 5,
    EW_RNG_TAG_AUGMENT = 6,
    EW_RNG_TAG_SPECIMEN = 7,
    EW_RNG_TAG_PHASE = 8
};

/* The raw Philox4x32-10 block function: out = Philox(ctr, key). */
void ew_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Bulk Philox: the blocks first .. first + n - 1 of the stream (seed,
 * stream), i.e. ew_philox4x32_10 of counter (block, stream) under the
 * seed's key, exactly the blocks ew_rng_u32 hands out word by word after
 * ew_rng_init(r, seed, stream). Written structure-of-arrays: out0[i] ..
 * out3[i] are the four words of block first + i (each array n long, owned
 * by the caller). Uses AVX-512 when compiled for it (about 0.25 ns per
 * block per core), plain C otherwise; both give the same words. */
void ew_philox_blocks(uint64_t seed, uint64_t stream, uint64_t first, size_t n, uint32_t *out0, uint32_t *out1,
                      uint32_t *out2, uint32_t *out3);

uint32_t ew_rng_u32(ew_rng_t *r);
uint64_t ew_rng_u64(ew_rng_t *r);

/* Uniform double in [0, 1) with 53 random bits. */
double ew_rng_uniform(ew_rng_t *r);
/* Uniform double in (0, 1]: safe to take the log of. */
double ew_rng_uniform_pos(ew_rng_t *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t ew_rng_below(ew_rng_t *r, uint64_t n);

/* Standard normal N(0, 1) (Box-Muller, both values used). */
double ew_rng_normal(ew_rng_t *r);

/* Poisson(mean) for mean >= 0: exact inversion by sequential search for
 * mean < 10, Hörmann's PTRS transformed rejection (exact) above. */
uint64_t ew_rng_poisson(ew_rng_t *r, double mean);

/* Gamma(shape k > 0, scale theta > 0), mean k*theta (Marsaglia-Tsang). */
double ew_rng_gamma(ew_rng_t *r, double shape, double scale);

/* Lognormal: exp(mu + sigma * N(0,1)). */
double ew_rng_lognormal(ew_rng_t *r, double mu, double sigma);

/* Sampler over a histogram of n bins with non-negative weights: draws a
 * bin with probability weight/sum (by binary search on the CDF). */
typedef struct {
    size_t n;
    double *cdf; /* cdf[i] = sum_{j<=i} w_j / sum w, cdf[n-1] = 1 */
} ew_hist_sampler_t;

/* Build from weights[n]. Errors (EW_ERR_ARG) on n == 0, a negative or
 * non-finite weight, or all-zero weights. */
ew_status_t ew_hist_sampler_init(ew_hist_sampler_t *h, const double *weights, size_t n);
/* Draw a bin index in [0, n). */
size_t ew_hist_sampler_draw(const ew_hist_sampler_t *h, ew_rng_t *r);
void ew_hist_sampler_free(ew_hist_sampler_t *h);

#endif
