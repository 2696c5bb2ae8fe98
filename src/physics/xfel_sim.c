/* ewald physics: the XFEL single-particle dataset simulator. */
#include "physics/xfel_sim.h"

#include "io/cxi.h"
#include "io/emcfile.h"
#include "io/h5vol.h"
#include "io/npy.h"
#include "io/png.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ew_xfel_config_t ew_xfel_config_reference(void)
{
    ew_xfel_config_t c;
    memset(&c, 0, sizeof c);
    c.photons_per_pulse = 1e12;
    c.focus_radius_um = 0.5;
    c.fluence_factor = 1.0;
    c.fluence_dist = EW_FLUENCE_CONSTANT;
    c.poisson = 1;
    c.n_patterns = 10000;
    return c;
}

/* photons per um^2 */
static double fluence_um2(const ew_xfel_config_t *c)
{
    double f = c->fluence_factor > 0.0 ? c->fluence_factor : 1.0;
    return f * c->photons_per_pulse / (EW_PI * c->focus_radius_um * c->focus_radius_um);
}

double ew_xfel_fluence(const ew_xfel_config_t *cfg)
{
    return fluence_um2(cfg) * 1e-8; /* 1 um^2 = 1e8 A^2 */
}

ew_status_t ew_xfel_photon_volume(const ew_atoms_t *atoms, int n, double ds, double fluence,
                                  const ew_scatter_volume_options_t *vopts, ew_rvol_t *W)
{
    EW_ASSERT(atoms != NULL && W != NULL);
    if (!(fluence > 0.0) || !isfinite(fluence)) {
        memset(W, 0, sizeof *W);
        return ew_fail(EW_ERR_ARG, "photon volume: fluence %g photons/A^2 is not positive", fluence);
    }
    EW_TRY(ew_rvol_alloc(W, n, ds));
    ew_status_t st = ew_scatter_volume(atoms, W, NULL, NULL, vopts);
    if (st != EW_OK) {
        ew_rvol_free(W);
        return st;
    }
    const float k = (float)(fluence * EW_R_E_A * EW_R_E_A);
    size_t nv = (size_t)n * n * n;
    for (size_t i = 0; i < nv; i++) W->data[i] *= k;
    return EW_OK;
}

/* ---- fluence jitter ---- */

typedef struct {
    ew_hist_sampler_t hs;
    double mean;        /* weighted mean of the bin centres */
    int have_hist;
} fluence_model_t;

static ew_status_t fluence_model_init(fluence_model_t *fm, const ew_xfel_config_t *c)
{
    memset(fm, 0, sizeof *fm);
    if (c->fluence_dist != EW_FLUENCE_HISTOGRAM) return EW_OK;
    if (!c->hist_values || !c->hist_weights || c->hist_n < 2)
        return ew_fail(EW_ERR_ARG, "fluence histogram: needs at least 2 bins (got %zu)", c->hist_n);
    double sw = 0, sv = 0;
    for (size_t i = 0; i < c->hist_n; i++) {
        if (!(c->hist_values[i] >= 0.0) || !isfinite(c->hist_values[i]))
            return ew_fail(EW_ERR_ARG, "fluence histogram: bin %zu value %g is not a non-negative number", i,
                           c->hist_values[i]);
        if (i > 0 && !(c->hist_values[i] > c->hist_values[i - 1]))
            return ew_fail(EW_ERR_ARG, "fluence histogram: bin centres are not increasing at bin %zu", i);
        sw += c->hist_weights[i];
        sv += c->hist_weights[i] * c->hist_values[i];
    }
    EW_TRY(ew_hist_sampler_init(&fm->hs, c->hist_weights, c->hist_n));
    fm->have_hist = 1;
    fm->mean = sv / sw;
    if (!(fm->mean > 0.0)) {
        ew_hist_sampler_free(&fm->hs);
        return ew_fail(EW_ERR_ARG, "fluence histogram: mean value %g is not positive", fm->mean);
    }
    return EW_OK;
}

static double fluence_draw(const fluence_model_t *fm, const ew_xfel_config_t *c, ew_rng_t *r)
{
    const double sp = c->fluence_spread;
    switch (c->fluence_dist) {
    case EW_FLUENCE_GAMMA:
        if (sp <= 0.0) return 1.0;
        return ew_rng_gamma(r, 1.0 / (sp * sp), sp * sp);
    case EW_FLUENCE_LOGNORMAL: {
        if (sp <= 0.0) return 1.0;
        double v = log1p(sp * sp);
        return ew_rng_lognormal(r, -0.5 * v, sqrt(v));
    }
    case EW_FLUENCE_HISTOGRAM: {
        size_t b = ew_hist_sampler_draw(&fm->hs, r);
        const double *x = c->hist_values;
        size_t n = c->hist_n;
        /* uniform within the bin: its width from the neighbouring centres */
        double w = b == 0 ? x[1] - x[0] : b == n - 1 ? x[n - 1] - x[n - 2] : 0.5 * (x[b + 1] - x[b - 1]);
        double v = x[b] + (ew_rng_uniform(r) - 0.5) * w;
        return (v > 0.0 ? v : 0.0) / fm->mean;
    }
    default:
        return 1.0;
    }
}

/* ---- fast exact samplers for the per-pixel noise ---- */

/* Bulk Philox4x32-10: the words of stream (seed, stream) in the same order
 * as ew_rng_u32 gives them (block j = counter j), generated WB blocks at a
 * time in a loop the compiler vectorizes. The rare slow paths of the
 * samplers draw from an ew_rng_t on the same stream whose block counter
 * starts at 2^63, a range the bulk words never reach. */
enum { WG_BLOCKS = 256 };

typedef struct {
    uint32_t k0, k1, s0, s1;
    uint64_t block;                 /* next block to generate */
    int pos;                        /* next word in w */
    uint32_t w[4 * WG_BLOCKS];
    ew_rng_t slow;                  /* rejection tails, PTRS */
} wordgen_t;

static void wg_init(wordgen_t *g, uint64_t seed, uint64_t stream)
{
    g->k0 = (uint32_t)seed, g->k1 = (uint32_t)(seed >> 32);
    g->s0 = (uint32_t)stream, g->s1 = (uint32_t)(stream >> 32);
    g->block = 0;
    g->pos = 4 * WG_BLOCKS;
    ew_rng_init(&g->slow, seed, stream);
    g->slow.ctr[1] = 0x80000000u;
}

static void wg_fill(wordgen_t *g)
{
    const uint64_t b0 = g->block;
    const uint32_t k0i = g->k0, k1i = g->k1, s0 = g->s0, s1 = g->s1;
    uint32_t *w = g->w;
#pragma omp simd
    for (int j = 0; j < WG_BLOCKS; j++) {
        uint64_t b = b0 + (uint64_t)j;
        uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = s0, c3 = s1, k0 = k0i, k1 = k1i;
        for (int round = 0; round < 10; round++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint32_t)p1;
            c3 = (uint32_t)p0;
            c0 = n0;
            c2 = n2;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        w[4 * j] = c0, w[4 * j + 1] = c1, w[4 * j + 2] = c2, w[4 * j + 3] = c3;
    }
    g->block = b0 + WG_BLOCKS;
    g->pos = 0;
}

static inline uint32_t wg_u32(wordgen_t *g)
{
    if (g->pos == 4 * WG_BLOCKS) wg_fill(g);
    return g->w[g->pos++];
}

/* Poisson(lam) by inversion with one 32-bit uniform U: k = 0 iff
 * U <= exp(-lam), and since exp(-lam) >= 1 - lam the common case U <= 1 - lam
 * needs no exp at all (most pixels have lam << 1). Exact up to the 2^-32
 * resolution of U; lam >= 10 goes to core's exact PTRS sampler. */
static inline double poisson_fast(wordgen_t *g, double lam)
{
    if (!(lam > 0.0)) return 0.0;
    if (lam >= 10.0) return (double)ew_rng_poisson(&g->slow, lam);
    double u = ((double)wg_u32(g) + 0.5) * (1.0 / 4294967296.0);
    if (u <= 1.0 - lam) return 0.0;
    double p = exp(-lam), cum = p;
    int k = 0;
    while (u > cum && k < 200) {
        k++;
        p *= lam / k;
        cum += p;
    }
    return (double)k;
}

/* Standard normal by the ziggurat method (Marsaglia & Tsang 2000, in
 * Doornik's ZIGNOR form, 2005: 128 layers): exact; one 32-bit draw (7 bits
 * pick the layer, 25 the abscissa) in ~99% of calls. */
enum { ZIG_C = 128 };
#define ZIG_R 3.442619855899
#define ZIG_V 9.91256303526217e-3
static double zig_x[ZIG_C + 1], zig_ratio[ZIG_C];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_init(void)
{
    double f = exp(-0.5 * ZIG_R * ZIG_R);
    zig_x[0] = ZIG_V / f;
    zig_x[1] = ZIG_R;
    zig_x[ZIG_C] = 0.0;
    for (int i = 2; i < ZIG_C; i++) {
        zig_x[i] = sqrt(-2.0 * log(ZIG_V / zig_x[i - 1] + f));
        f = exp(-0.5 * zig_x[i] * zig_x[i]);
    }
    for (int i = 0; i < ZIG_C; i++) zig_ratio[i] = zig_x[i + 1] / zig_x[i];
}

static inline double zig_normal(wordgen_t *g)
{
    for (;;) {
        uint32_t w = wg_u32(g);
        int i = (int)(w & 0x7f);
        double u = 2.0 * (((double)(w >> 7) + 0.5) * (1.0 / 33554432.0)) - 1.0;
        if (fabs(u) < zig_ratio[i]) return u * zig_x[i];
        if (i == 0) {
            /* the tail beyond R (Marsaglia 1964) */
            double x, y;
            do {
                x = log(ew_rng_uniform_pos(&g->slow)) / ZIG_R;
                y = log(ew_rng_uniform_pos(&g->slow));
            } while (-2.0 * y < x * x);
            return u < 0 ? x - ZIG_R : ZIG_R - x;
        }
        double x = u * zig_x[i];
        double f0 = exp(-0.5 * (zig_x[i] * zig_x[i] - x * x));
        double f1 = exp(-0.5 * (zig_x[i + 1] * zig_x[i + 1] - x * x));
        if (f1 + ew_rng_uniform(&g->slow) * (f0 - f1) < 1.0) return x;
    }
}

/* ---- one pattern's noise ---- */

typedef struct {
    double expected, total, recorded;
} sums_t;

/* lam[p] (noise-free, background excluded) -> data[p]; also copies the
 * noise-free values with background into expected_out if not NULL. g is
 * the caller's scratch generator (large: kept off the stack). */
static sums_t add_noise(const ew_xfel_config_t *c, const uint8_t *mask, size_t npix, size_t index,
                        const float *lam, float *data, float *expected_out, wordgen_t *g)
{
    sums_t sm = {0, 0, 0};
    wg_init(g, c->seed, ew_rng_stream_id(EW_RNG_TAG_NOISE, index));
    const float bg = (float)c->background;
    const double sig = c->readout_sigma;
    const int poisson = c->poisson;
    double se = 0.0;
#pragma omp simd reduction(+ : se)
    for (size_t p = 0; p < npix; p++) se += lam[p];
    sm.expected = se;
    if (expected_out)
        for (size_t p = 0; p < npix; p++) expected_out[p] = lam[p] + bg;
    double tot = 0.0, rec = 0.0;
    for (size_t p = 0; p < npix; p++) {
        float l = lam[p] + bg;
        double k = poisson ? poisson_fast(g, l) : l;
        double v = sig > 0.0 ? k + sig * zig_normal(g) : k;
        int bad = mask[p] == EW_MASK_BAD;
        tot += k;
        rec += bad ? 0.0 : k;
        data[p] = bad ? 0.0f : (float)v;
    }
    sm.total = tot;
    sm.recorded = rec;
    return sm;
}

static ew_status_t check_config(const ew_xfel_config_t *c, const ew_detector_t *det, const ew_rvol_t *W,
                                const ew_atoms_t *atoms)
{
    if (!(c->photons_per_pulse > 0.0) || !isfinite(c->photons_per_pulse))
        return ew_fail(EW_ERR_ARG, "xfel: photons per pulse %g is not positive", c->photons_per_pulse);
    if (!(c->focus_radius_um > 0.0) || !isfinite(c->focus_radius_um))
        return ew_fail(EW_ERR_ARG, "xfel: focus radius %g um is not positive", c->focus_radius_um);
    if (!(c->fluence_factor >= 0.0) || !isfinite(c->fluence_factor))
        return ew_fail(EW_ERR_ARG, "xfel: fluence factor %g is negative", c->fluence_factor);
    if (!(c->fluence_spread >= 0.0 && c->fluence_spread <= 10.0))
        return ew_fail(EW_ERR_ARG, "xfel: fluence spread %g is not in [0, 10]", c->fluence_spread);
    if ((int)c->fluence_dist < 0 || (int)c->fluence_dist > EW_FLUENCE_HISTOGRAM)
        return ew_fail(EW_ERR_ARG, "xfel: fluence distribution %d is unknown", (int)c->fluence_dist);
    if (!(c->beam_jitter_px >= 0.0 && c->beam_jitter_px < 1e4))
        return ew_fail(EW_ERR_ARG, "xfel: beam jitter %g px is not in [0, 1e4)", c->beam_jitter_px);
    if (!(c->readout_sigma >= 0.0) || !isfinite(c->readout_sigma))
        return ew_fail(EW_ERR_ARG, "xfel: readout noise %g is negative", c->readout_sigma);
    if (!(c->background >= 0.0) || !isfinite(c->background))
        return ew_fail(EW_ERR_ARG, "xfel: background %g photons/pixel is negative", c->background);
    if (c->exact) {
        if (!atoms) return ew_fail(EW_ERR_ARG, "xfel: exact simulation needs the atoms");
        return EW_OK;
    }
    if (!W || !W->data) return ew_fail(EW_ERR_ARG, "xfel: no photon volume given");
    /* the volume must hold every pixel at every orientation */
    int cidx = W->n / 2;
    double limit = (W->n % 2 ? cidx : cidx - 1) * W->ds;
    double smax = det->s_max_corner + 5.0 * c->beam_jitter_px * det->pixel_m / (det->distance_m * det->wavelength_a);
    if (!(smax < limit))
        return ew_fail(EW_ERR_ARG,
                       "xfel: the photon volume (n = %d, ds = %g 1/A) reaches |s| = %g 1/A but the detector needs %g",
                       W->n, W->ds, limit, smax);
    return EW_OK;
}

ew_status_t ew_xfel_simulate(const ew_xfel_config_t *cfg, const ew_detector_t *det, const ew_rvol_t *W,
                             const ew_atoms_t *atoms, ew_xfel_write_fn write, void *ctx, ew_xfel_stats_t *stats)
{
    EW_ASSERT(cfg != NULL && det != NULL && write != NULL);
    double t0 = ew_time_now();
    if (stats) memset(stats, 0, sizeof *stats);
    EW_TRY(check_config(cfg, det, W, atoms));
    pthread_once(&zig_once, zig_init);
    fluence_model_t fm;
    EW_TRY(fluence_model_init(&fm, cfg));

    const size_t npix = det->npix, B = cfg->batch ? cfg->batch : 256;
    const int nthreads = cfg->threads > 0 ? cfg->threads : omp_get_max_threads();
    const double flu_um2 = fluence_um2(cfg), flu_a2 = flu_um2 * 1e-8;
    const int jitter = cfg->beam_jitter_px > 0.0;
    size_t bufn;
    ew_status_t st = ew_size_mul(B, npix, &bufn);
    ew_xfel_pattern_t *pats = NULL;
    float *data = NULL, *expd = NULL, *lam = NULL, *geo = NULL, *rot = NULL;
    wordgen_t *wgs = NULL;
    if (st == EW_OK) {
        pats = ew_calloc_array(B, sizeof *pats);
        data = ew_alloc_array(bufn, sizeof(float));
        expd = cfg->keep_expected ? ew_alloc_array(bufn, sizeof(float)) : NULL;
        /* per thread: lambda (npix) and, with jitter, shifted s (3 npix) + corr parts (2 npix);
         * in exact mode lambda holds a whole batch */
        lam = ew_alloc_array(cfg->exact ? bufn : (size_t)nthreads * npix, sizeof(float));
        geo = (jitter || cfg->exact) ? ew_alloc_array((size_t)nthreads * 5 * npix, sizeof(float)) : NULL;
        rot = cfg->exact ? ew_alloc_array(3 * npix, sizeof(float)) : NULL;
        wgs = ew_alloc_array((size_t)nthreads, sizeof(wordgen_t));
        if (!wgs || !pats || !data || (cfg->keep_expected && !expd) || !lam || ((jitter || cfg->exact) && !geo) ||
            (cfg->exact && !rot))
            st = ew_fail(EW_ERR_NOMEM, "xfel: cannot allocate a batch of %zu patterns of %zu pixels", B, npix);
    }
    ew_progress_t *prog = st == EW_OK ? ew_progress_start("simulating patterns", cfg->n_patterns) : NULL;
    double sum_e = 0, sum_t = 0, sum_r = 0;
    const double re2 = EW_R_E_A * EW_R_E_A;

    for (size_t b0 = 0; st == EW_OK && b0 < cfg->n_patterns; b0 += B) {
        const size_t nb = cfg->n_patterns - b0 < B ? cfg->n_patterns - b0 : B;
        /* draws that set up each pattern */
        for (size_t k = 0; k < nb; k++) {
            ew_xfel_pattern_t *pt = &pats[k];
            size_t idx = cfg->first_index + b0 + k;
            memset(pt, 0, sizeof *pt);
            pt->index = idx;
            ew_rng_t r;
            ew_rng_init(&r, cfg->seed, ew_rng_stream_id(EW_RNG_TAG_ORIENTATION, idx));
            pt->quat = ew_quat_random(&r);
            ew_rng_init(&r, cfg->seed, ew_rng_stream_id(EW_RNG_TAG_FLUENCE, idx));
            pt->fluence_mult = fluence_draw(&fm, cfg, &r);
            pt->fluence = pt->fluence_mult * flu_um2;
            if (jitter) {
                pt->beam_dx = cfg->beam_jitter_px * ew_rng_normal(&r);
                pt->beam_dy = cfg->beam_jitter_px * ew_rng_normal(&r);
            }
            pt->data = data + k * npix;
            pt->expected = expd ? expd + k * npix : NULL;
        }
        if (cfg->exact) {
            /* direct sums, each parallel over pixels */
            float *sp = geo, *sa = geo + 3 * npix, *pol = geo + 4 * npix;
            for (size_t k = 0; k < nb && st == EW_OK; k++) {
                double R[9];
                ew_quat_to_mat(pats[k].quat, R);
                const float *s = det->s;
                const float *so = det->solid_angle, *po = det->polarization;
                if (jitter) {
                    ew_detector_geometry_shifted(det, pats[k].beam_dx, pats[k].beam_dy, sp, sa, pol);
                    s = sp, so = sa, po = pol;
                }
                for (size_t p = 0; p < npix; p++)
                    for (int j = 0; j < 3; j++)
                        rot[3 * p + j] = (float)(R[j] * s[3 * p] + R[3 + j] * s[3 * p + 1] + R[6 + j] * s[3 * p + 2]);
                st = ew_scatter_direct_intensity(atoms, rot, npix, lam + k * npix);
                const double scale = pats[k].fluence_mult * flu_a2 * re2;
                for (size_t p = 0; p < npix; p++) lam[k * npix + p] *= (float)(scale * so[p] * po[p]);
            }
            if (st != EW_OK) break;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
            for (size_t k = 0; k < nb; k++) {
                sums_t sm = add_noise(cfg, det->mask, npix, pats[k].index, lam + k * npix, data + k * npix,
                                      expd ? expd + k * npix : NULL, &wgs[omp_get_thread_num()]);
                pats[k].photons_expected = sm.expected;
                pats[k].photons_total = sm.total;
                pats[k].photons_recorded = sm.recorded;
            }
        } else {
#pragma omp parallel num_threads(nthreads)
            {
                int tid = omp_get_thread_num();
                float *l = lam + (size_t)tid * npix;
                float *sp = geo ? geo + (size_t)tid * 5 * npix : NULL;
#pragma omp for schedule(dynamic, 1)
                for (size_t k = 0; k < nb; k++) {
                    double R[9];
                    ew_quat_to_mat(pats[k].quat, R);
                    const float *s = det->s, *corr = det->corr;
                    float *cj = NULL;
                    if (jitter) {
                        float *sa = sp + 3 * npix, *pol = sp + 4 * npix;
                        ew_detector_geometry_shifted(det, pats[k].beam_dx, pats[k].beam_dy, sp, sa, pol);
                        for (size_t p = 0; p < npix; p++) sa[p] *= pol[p];
                        s = sp, cj = sa;
                        corr = cj;
                    }
                    ew_slice_trilinear(W, R, s, npix, l);
                    const float m = (float)pats[k].fluence_mult;
                    for (size_t p = 0; p < npix; p++) l[p] *= m * corr[p];
                    sums_t sm = add_noise(cfg, det->mask, npix, pats[k].index, l, data + k * npix,
                                          expd ? expd + k * npix : NULL, &wgs[tid]);
                    pats[k].photons_expected = sm.expected;
                    pats[k].photons_total = sm.total;
                    pats[k].photons_recorded = sm.recorded;
                }
            }
        }
        for (size_t k = 0; k < nb; k++) {
            sum_e += pats[k].photons_expected;
            sum_t += pats[k].photons_total;
            sum_r += pats[k].photons_recorded;
        }
        st = write(ctx, pats, nb);
        ew_progress_add(prog, nb);
    }
    ew_progress_finish(prog);
    if (st == EW_OK && stats && cfg->n_patterns > 0) {
        stats->n = cfg->n_patterns;
        stats->mean_expected = sum_e / cfg->n_patterns;
        stats->mean_total = sum_t / cfg->n_patterns;
        stats->mean_recorded = sum_r / cfg->n_patterns;
        stats->seconds = ew_time_now() - t0;
    }
    if (fm.have_hist) ew_hist_sampler_free(&fm.hs);
    ew_free(pats);
    ew_free(data);
    ew_free(expd);
    ew_free(lam);
    ew_free(geo);
    ew_free(rot);
    ew_free(wgs);
    return st;
}

ew_status_t ew_xfel_predict_photons(const ew_detector_t *det, const ew_rvol_t *W, double *all_pixels,
                                    double *recorded)
{
    EW_ASSERT(det != NULL && W != NULL && W->data != NULL);
    const int n = W->n, c = n / 2;
    const double ds = W->ds;
    double limit = (n % 2 ? c : c - 1) * ds;
    if (!(det->s_max_corner < limit))
        return ew_fail(EW_ERR_ARG, "photon prediction: the volume reaches |s| = %g 1/A, the detector %g", limit,
                       det->s_max_corner);
    /* Radial profile from the voxels themselves (exact samples of W, no
     * interpolation): shells of width ds/2, each represented by its mean
     * radius and mean value. */
    const double dr = 0.5 * ds, rmax = det->s_max_corner + 2.0 * ds;
    const int nb = (int)(rmax / dr) + 2;
    double *sw = ew_calloc_array((size_t)nb, sizeof(double)), *sr = ew_calloc_array((size_t)nb, sizeof(double));
    double *cnt = ew_calloc_array((size_t)nb, sizeof(double));
    if (!sw || !sr || !cnt) {
        ew_free(sw), ew_free(sr), ew_free(cnt);
        return ew_fail(EW_ERR_NOMEM, "photon prediction: no scratch");
    }
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double r = sqrt((double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c)) * ds;
                int k = (int)(r / dr);
                if (k >= nb) continue;
                sw[k] += W->data[((size_t)z * n + y) * n + x];
                sr[k] += r;
                cnt[k] += 1;
            }
    int m = 0; /* compact the non-empty shells: (sr, sw) = (mean radius, mean W) */
    for (int k = 0; k < nb; k++)
        if (cnt[k] > 0) {
            sr[m] = sr[k] / cnt[k];
            sw[m] = sw[k] / cnt[k];
            m++;
        }
    double all = 0, rec = 0;
    int j = 0;
    for (size_t p = 0; p < det->npix; p++) {
        const float *s = det->s + 3 * p;
        double sm = sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + (double)s[2] * s[2]);
        /* bracket sm between shells j and j+1 (pixels are not sorted: search) */
        if (j >= m - 1 || sm < sr[j]) j = 0;
        while (j < m - 2 && sr[j + 1] < sm) j++;
        double f = (sm - sr[j]) / (sr[j + 1] - sr[j]);
        double w = sw[j] + f * (sw[j + 1] - sw[j]);
        double e = w * det->corr[p];
        all += e;
        if (det->mask[p] != EW_MASK_BAD) rec += e;
    }
    if (all_pixels) *all_pixels = all;
    if (recorded) *recorded = rec;
    ew_free(sw), ew_free(sr), ew_free(cnt);
    return EW_OK;
}

void ew_xfel_model_free(ew_xfel_model_t *m)
{
    if (!m) return;
    ew_atoms_free(&m->atoms);
    ew_detector_free(&m->det);
    ew_rvol_free(&m->W);
    memset(m, 0, sizeof *m);
}

ew_status_t ew_xfel_model_build(const ew_xfel_setup_t *setup, ew_xfel_model_t *m)
{
    EW_ASSERT(setup != NULL && m != NULL);
    memset(m, 0, sizeof *m);
    if (!setup->structure_path) return ew_fail(EW_ERR_ARG, "xfel: no structure file given");
    ew_structure_t s;
    EW_TRY(ew_structure_read(setup->structure_path, &setup->read, &s));
    ew_status_t st = ew_atoms_from_structure(&s, &setup->atoms, &m->atoms);
    ew_structure_free(&s);
    if (st == EW_OK) {
        ew_atoms_center(&m->atoms);
        st = ew_detector_init(&m->det, &setup->detector);
    }
    if (st == EW_OK) {
        int n;
        double ds;
        ew_detector_volume_grid(&m->det, setup->volume_n, &n, &ds);
        m->fluence = ew_xfel_fluence(&setup->sim);
        double t0 = ew_time_now();
        st = ew_xfel_photon_volume(&m->atoms, n, ds, m->fluence, &setup->volume, &m->W);
        m->build_seconds = ew_time_now() - t0;
    }
    if (st != EW_OK) ew_xfel_model_free(m);
    return st;
}

/* ---- streaming to files ---- */

typedef struct {
    ew_cxi_writer_t *cxi;
    ew_emc_writer_t *emc;
    size_t first, npix;
    int with_expected;
    double *quat, *flu, *phot; /* (batch) staging for ground truth */
    int32_t *counts;           /* (npix) staging for the .emc */
    size_t cap;
    float *preview;            /* (preview_n, npix) first patterns for the montage, or NULL */
    size_t preview_n, preview_have;
    double *photons;           /* (n_patterns) photons_total, for the histogram, or NULL */
} file_sink_t;

static ew_status_t file_sink_write(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    file_sink_t *fs = ctx;
    if (count == 0) return EW_OK;
    if (count > fs->cap) {
        ew_free(fs->quat), ew_free(fs->flu), ew_free(fs->phot);
        fs->quat = ew_alloc_array(4 * count, sizeof(double));
        fs->flu = ew_alloc_array(count, sizeof(double));
        fs->phot = ew_alloc_array(count, sizeof(double));
        fs->cap = count;
        if (!fs->quat || !fs->flu || !fs->phot) {
            fs->cap = 0;
            return ew_fail(EW_ERR_NOMEM, "xfel output: no staging for %zu patterns", count);
        }
    }
    long long i0 = (long long)(p[0].index - fs->first);
    for (size_t k = 0; k < count; k++) {
        if (fs->photons) fs->photons[(size_t)i0 + k] = p[k].photons_total;
        if (fs->preview && fs->preview_have < fs->preview_n)
            memcpy(fs->preview + fs->preview_have++ * fs->npix, p[k].data, fs->npix * sizeof(float));
    }
    if (fs->cxi) {
        /* the batch's patterns are contiguous in one buffer (ew_xfel_simulate) */
        EW_TRY(ew_cxi_write_patterns(fs->cxi, i0, (long long)count, p[0].data));
        if (fs->with_expected) EW_TRY(ew_cxi_write_expected(fs->cxi, i0, (long long)count, p[0].expected));
        for (size_t k = 0; k < count; k++) {
            fs->quat[4 * k] = p[k].quat.w, fs->quat[4 * k + 1] = p[k].quat.x;
            fs->quat[4 * k + 2] = p[k].quat.y, fs->quat[4 * k + 3] = p[k].quat.z;
            fs->flu[k] = p[k].fluence;
            fs->phot[k] = p[k].photons_total;
        }
        EW_TRY(ew_cxi_write_truth(fs->cxi, i0, (long long)count, fs->quat, fs->flu, fs->phot));
    }
    if (fs->emc) {
        for (size_t k = 0; k < count; k++) {
            const float *d = p[k].data;
            for (size_t q = 0; q < fs->npix; q++) {
                float v = d[q] > 0.0f ? d[q] : 0.0f;
                fs->counts[q] = v < 2147483647.0f ? (int32_t)lrintf(v) : 2147483647;
            }
            EW_TRY(ew_emc_writer_add_counts(fs->emc, fs->counts));
        }
    }
    return EW_OK;
}

static ew_status_t cxi_geometry_of(const ew_detector_t *d, ew_cxi_geometry_t *g)
{
    EW_TRY(ew_cxi_geometry_alloc(g, d->nx, d->ny, 1));
    g->distance_m = d->distance_m;
    g->pixel_x_m = g->pixel_y_m = d->pixel_m;
    g->center_x = d->cx;
    g->center_y = d->cy;
    g->photon_energy_ev = d->cfg.energy_ev;
    g->wavelength_a = d->wavelength_a;
    memcpy(g->s, d->s, 3 * d->npix * sizeof(float));
    memcpy(g->mask, d->mask, d->npix);
    memcpy(g->solid_angle, d->solid_angle, d->npix * sizeof(float));
    memcpy(g->polarization, d->polarization, d->npix * sizeof(float));
    return EW_OK;
}

ew_status_t ew_xfel_simulate_to_cxi(const ew_xfel_model_t *m, const ew_xfel_config_t *cfg,
                                    const ew_xfel_output_t *out, ew_xfel_stats_t *stats)
{
    EW_ASSERT(m != NULL && cfg != NULL && out != NULL);
    if (!out->cxi_path && !out->emc_path && !out->emc_detector_path && !out->volume_path && !out->montage_path &&
        !out->histogram_path)
        return ew_fail(EW_ERR_ARG, "xfel output: no output file given");
    if (out->cxi_deflate < 0 || out->cxi_deflate > 9)
        return ew_fail(EW_ERR_ARG, "xfel output: deflate level %d is not in 0..9", out->cxi_deflate);
    const ew_detector_t *det = &m->det;
    ew_status_t st = EW_OK;
    /* small files first: the volume and the Dragonfly detector */
    char *vol_tmp = NULL, *det_tmp = NULL;
    if (out->volume_path) {
        ew_h5meta_t meta = {0};
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", m->fluence);
        st = ew_h5meta_set(&meta, "fluence_photons_per_A2", buf);
        if (st == EW_OK) st = ew_h5meta_set(&meta, "quantity", "W(s) = fluence r_e^2 |F(s)|^2");
        if (st == EW_OK && out->structure_name) st = ew_h5meta_set(&meta, "structure", out->structure_name);
        /* written under a temporary name; renamed at the end with the others */
        vol_tmp = ew_temp_name(out->volume_path);
        if (st == EW_OK && !vol_tmp) st = ew_fail(EW_ERR_NOMEM, "%s: no temporary name", out->volume_path);
        if (st == EW_OK) st = ew_h5vol_write_rvol(vol_tmp, &m->W, "photons/sr", &meta);
        ew_h5meta_free(&meta);
    }
    if (st == EW_OK && out->emc_detector_path) {
        ew_emc_detector_t ed;
        st = ew_emc_detector_from_s(det->s, det->mask, det->corr, (int)det->npix, det->wavelength_a,
                                    det->distance_m / det->pixel_m, m->W.ds, &ed);
        det_tmp = st == EW_OK ? ew_temp_name(out->emc_detector_path) : NULL;
        if (st == EW_OK && !det_tmp) st = ew_fail(EW_ERR_NOMEM, "%s: no temporary name", out->emc_detector_path);
        if (st == EW_OK) st = ew_emc_detector_write(det_tmp, &ed);
        if (st == EW_OK || det_tmp) ew_emc_detector_free(&ed);
    }
    file_sink_t fs;
    memset(&fs, 0, sizeof fs);
    fs.first = cfg->first_index;
    fs.npix = det->npix;
    fs.with_expected = out->with_expected && out->cxi_path;
    ew_cxi_geometry_t g;
    memset(&g, 0, sizeof g);
    if (st == EW_OK && out->cxi_path) {
        st = cxi_geometry_of(det, &g);
        ew_cxi_write_options_t wo;
        memset(&wo, 0, sizeof wo);
        wo.n_patterns = (long long)cfg->n_patterns;
        wo.deflate = out->cxi_deflate;
        wo.structure = out->structure_name;
        wo.seed = cfg->seed;
        wo.with_truth = 1;
        wo.with_expected = fs.with_expected;
        if (st == EW_OK) st = ew_cxi_writer_open(out->cxi_path, &g, &wo, &fs.cxi);
    }
    if (st == EW_OK && out->emc_path) {
        fs.counts = ew_alloc_array(det->npix, sizeof(int32_t));
        if (!fs.counts) st = ew_fail(EW_ERR_NOMEM, "%s: no staging buffer", out->emc_path);
        if (st == EW_OK) st = ew_emc_writer_open(out->emc_path, (int)det->npix, &fs.emc);
    }
    if (st == EW_OK && out->montage_path) {
        fs.preview_n = out->montage_count > 0 ? (size_t)out->montage_count : 16;
        if (fs.preview_n > cfg->n_patterns) fs.preview_n = cfg->n_patterns;
        fs.preview = ew_alloc_array(fs.preview_n * det->npix + 1, sizeof(float));
        if (!fs.preview) st = ew_fail(EW_ERR_NOMEM, "%s: no buffer for the montage", out->montage_path);
    }
    if (st == EW_OK && out->histogram_path) {
        fs.photons = ew_alloc_array(cfg->n_patterns + 1, sizeof(double));
        if (!fs.photons) st = ew_fail(EW_ERR_NOMEM, "%s: no buffer for %zu totals", out->histogram_path, cfg->n_patterns);
    }
    if (st == EW_OK && (out->cxi_path || out->emc_path || fs.preview || fs.photons)) {
        ew_xfel_config_t c = *cfg;
        c.keep_expected = fs.with_expected;
        st = ew_xfel_simulate(&c, det, c.exact ? NULL : &m->W, &m->atoms, file_sink_write, &fs, stats);
    }
    /* finish, or discard everything: all files or none */
    int done_cxi = 0, done_emc = 0, done_vol = 0, done_det = 0, done_mon = 0, done_hist = 0;
    if (st == EW_OK && fs.preview && fs.preview_have > 0) {
        ew_image_options_t io = ew_image_options_default();
        io.scaling = EW_SCALE_LOG;
        io.mask_threshold = EW_MASK_BAD;
        io.clip_lo = 0.0;
        io.clip_hi = 100.0;
        st = ew_png_montage(out->montage_path, fs.preview, (int)fs.preview_have, det->nx, det->ny, det->mask, 0,
                            det->nx < 128 ? 2 : 1, NULL, 1, &io);
        done_mon = st == EW_OK;
    }
    if (st == EW_OK && fs.photons && cfg->n_patterns > 0) {
        ew_plot_t *pl = ew_plot_new(640, 420, "photons per pattern", "photons (all pixels)", "patterns");
        if (!pl) st = EW_ERR_NOMEM;
        double mean = 0;
        for (size_t i = 0; i < cfg->n_patterns; i++) mean += fs.photons[i] / (double)cfg->n_patterns;
        if (st == EW_OK) st = ew_plot_add_histogram(pl, fs.photons, cfg->n_patterns, 50, 0, 0, NULL);
        if (st == EW_OK) st = ew_plot_vline(pl, mean, "mean");
        if (st == EW_OK) st = ew_plot_write_png(pl, out->histogram_path);
        ew_plot_free(pl);
        done_hist = st == EW_OK;
    }
    if (st == EW_OK && fs.cxi) {
        st = ew_cxi_writer_close(fs.cxi);
        fs.cxi = NULL;
        done_cxi = st == EW_OK;
    }
    if (st == EW_OK && fs.emc) {
        st = ew_emc_writer_close(fs.emc);
        fs.emc = NULL;
        done_emc = st == EW_OK;
    }
    if (st == EW_OK && vol_tmp) {
        st = ew_commit_rename(vol_tmp, out->volume_path);
        vol_tmp = NULL;
        done_vol = st == EW_OK;
    }
    if (st == EW_OK && det_tmp) {
        st = ew_commit_rename(det_tmp, out->emc_detector_path);
        det_tmp = NULL;
        done_det = st == EW_OK;
    }
    if (st != EW_OK) {
        ew_cxi_writer_abort(fs.cxi);
        ew_emc_writer_abort(fs.emc);
        if (vol_tmp) remove(vol_tmp);
        if (det_tmp) remove(det_tmp);
        if (done_cxi) remove(out->cxi_path);
        if (done_emc) remove(out->emc_path);
        if (done_vol) remove(out->volume_path);
        if (done_det) remove(out->emc_detector_path);
        if (done_mon) remove(out->montage_path);
        if (done_hist) remove(out->histogram_path);
    }
    free(vol_tmp);
    free(det_tmp);
    ew_cxi_geometry_free(&g);
    ew_free(fs.quat), ew_free(fs.flu), ew_free(fs.phot), ew_free(fs.counts);
    ew_free(fs.preview), ew_free(fs.photons);
    return st;
}

ew_status_t ew_xfel_load_photon_histogram(const char *path, double **values, double **weights, size_t *n)
{
    EW_ASSERT(path != NULL && values != NULL && weights != NULL && n != NULL);
    *values = *weights = NULL;
    *n = 0;
    ew_npy_t a;
    EW_TRY(ew_npy_read(path, &a));
    if (a.ndim != 2 || a.shape[0] != 2 || a.shape[1] < 2) {
        ew_status_t st = ew_fail(EW_ERR_FORMAT, "%s: shape (%zu%s%zu) is not (2, nbins >= 2): bin centres and counts",
                                 path, a.ndim > 0 ? a.shape[0] : 0, a.ndim > 1 ? ", " : ", ?", a.ndim > 1 ? a.shape[1] : 0);
        ew_npy_free(&a);
        return st;
    }
    size_t nb = a.shape[1];
    double *v = ew_alloc_array(nb, sizeof(double)), *w = ew_alloc_array(nb, sizeof(double));
    if (!v || !w) {
        ew_free(v), ew_free(w);
        ew_npy_free(&a);
        return ew_fail(EW_ERR_NOMEM, "%s: no memory for %zu bins", path, nb);
    }
    memcpy(v, a.data, nb * sizeof(double));
    memcpy(w, a.data + nb, nb * sizeof(double));
    ew_npy_free(&a);
    *values = v, *weights = w, *n = nb;
    return EW_OK;
}
