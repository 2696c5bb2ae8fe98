/* ewald core: Philox4x32-10 counter-based RNG and samplers. */
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>

#include "core/mem.h"
#include "core/util.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void ew_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void ew_rng_init(ew_rng_t *r, uint64_t seed, uint64_t stream)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)stream;
    r->ctr[3] = (uint32_t)(stream >> 32);
    r->used = 4;
    r->have_spare = 0;
    r->spare = 0.0;
}

static void refill(ew_rng_t *r)
{
    ew_philox4x32_10(r->ctr, r->key, r->buf);
    if (++r->ctr[0] == 0) ++r->ctr[1];
    r->used = 0;
}

uint32_t ew_rng_u32(ew_rng_t *r)
{
    if (r->used >= 4) refill(r);
    return r->buf[r->used++];
}

uint64_t ew_rng_u64(ew_rng_t *r)
{
    uint64_t hi = ew_rng_u32(r);
    return (hi << 32) | ew_rng_u32(r);
}

double ew_rng_uniform(ew_rng_t *r)
{
    return (double)(ew_rng_u64(r) >> 11) * 0x1.0p-53;
}

double ew_rng_uniform_pos(ew_rng_t *r)
{
    return ((double)(ew_rng_u64(r) >> 11) + 1.0) * 0x1.0p-53;
}

uint64_t ew_rng_below(ew_rng_t *r, uint64_t n)
{
    EW_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t x;
    do {
        x = ew_rng_u64(r);
    } while (x >= limit);
    return x % n;
}

double ew_rng_normal(ew_rng_t *r)
{
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u1 = ew_rng_uniform_pos(r);
    double u2 = ew_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double ang = 2.0 * EW_PI * u2;
    r->spare = rad * sin(ang);
    r->have_spare = 1;
    return rad * cos(ang);
}

/* Inversion by sequential search: exact, fast for small means. */
static uint64_t poisson_small(ew_rng_t *r, double mean)
{
    double u = ew_rng_uniform(r);
    double p = exp(-mean);
    double s = p;
    uint64_t k = 0;
    /* The tail beyond k = 200 has probability < 1e-150 for mean < 10; the
     * cap only guards against u rounding above the summed CDF. */
    while (u > s && k < 200) {
        k++;
        p *= mean / (double)k;
        s += p;
    }
    return k;
}

/* Hörmann (1993), "The transformed rejection method for generating
 * Poisson random variables", algorithm PTRS; exact for mean >= 10. */
static uint64_t poisson_ptrs(ew_rng_t *r, double lam)
{
    double slam = sqrt(lam);
    double loglam = log(lam);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        double u = ew_rng_uniform(r) - 0.5;
        double v = ew_rng_uniform_pos(r);
        double us = 0.5 - fabs(u);
        double k = floor((2.0 * a / us + b) * u + lam + 0.43);
        if (us >= 0.07 && v <= vr) return (uint64_t)k;
        if (k < 0.0 || (us < 0.013 && v > us)) continue;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <= -lam + k * loglam - lgamma(k + 1.0))
            return (uint64_t)k;
    }
}

uint64_t ew_rng_poisson(ew_rng_t *r, double mean)
{
    if (!(mean > 0.0)) return 0; /* also maps NaN to 0 */
    return mean < 10.0 ? poisson_small(r, mean) : poisson_ptrs(r, mean);
}

double ew_rng_gamma(ew_rng_t *r, double shape, double scale)
{
    EW_ASSERT(shape > 0.0 && scale > 0.0);
    if (shape < 1.0) {
        /* Gamma(k) = Gamma(k + 1) * U^(1/k) */
        double u = ew_rng_uniform_pos(r);
        return ew_rng_gamma(r, shape + 1.0, scale) * pow(u, 1.0 / shape);
    }
    /* Marsaglia & Tsang (2000), "A simple method for generating gamma
     * variables", ACM TOMS 26(3). */
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = ew_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = ew_rng_uniform_pos(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v * scale;
    }
}

double ew_rng_lognormal(ew_rng_t *r, double mu, double sigma)
{
    return exp(mu + sigma * ew_rng_normal(r));
}

ew_status_t ew_hist_sampler_init(ew_hist_sampler_t *h, const double *weights, size_t n)
{
    h->n = 0;
    h->cdf = NULL;
    if (n == 0) return ew_fail(EW_ERR_ARG, "histogram sampler: no bins");
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(weights[i] >= 0.0) || !isfinite(weights[i]))
            return ew_fail(EW_ERR_ARG, "histogram sampler: bin %zu has weight %g (must be finite and >= 0)",
                           i, weights[i]);
        total += weights[i];
    }
    if (!(total > 0.0)) return ew_fail(EW_ERR_ARG, "histogram sampler: all %zu weights are zero", n);
    h->cdf = ew_alloc_array(n, sizeof *h->cdf);
    if (!h->cdf) return EW_ERR_NOMEM;
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        acc += weights[i];
        h->cdf[i] = acc / total;
    }
    h->cdf[n - 1] = 1.0;
    h->n = n;
    return EW_OK;
}

size_t ew_hist_sampler_draw(const ew_hist_sampler_t *h, ew_rng_t *r)
{
    double u = ew_rng_uniform(r);
    size_t lo = 0, hi = h->n - 1;
    while (lo < hi) { /* first index with cdf > u */
        size_t mid = lo + (hi - lo) / 2;
        if (h->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void ew_hist_sampler_free(ew_hist_sampler_t *h)
{
    if (!h) return;
    ew_free(h->cdf);
    h->cdf = NULL;
    h->n = 0;
}
