/* Benchmark of src/recon/emc.
 *
 *   bench_emc [--json] [--quick] [--only scaling|dragonfly|recon] [--iters N] [--div 4|6] [--path 0|1|2]
 *             [--levels lo hi] [--recon-patterns N] [--recon-last-iters N]
 *
 * 1. scaling: seconds per iteration (and the split expand / likelihood /
 *    compress) as patterns, rotations and photons per pattern grow.
 * 2. dragonfly: the size of Dragonfly's tutorial run (30,000 patterns of a
 *    150 x 150 detector with 17,104 orientation pixels, 336 photons per
 *    pattern, num_div 4 and 6 = 3,240 and 10,860 rotations), synthesized in
 *    sparse form (timing depends only on sizes), against the 2-core
 *    Dragonfly reference of 46-51 s (num_div 4) and 175-179 s (num_div 6)
 *    per iteration. Also counts the likelihood multiply-adds and compares
 *    their rate with the machine's fp32 FMA peak.
 * 3. recon: simulated 2cex intensities (64 x 64 detector, a few thousand
 *    patterns, ~1000 photons each, fluence jitter): EMC from a random start,
 *    shell-centred intensity FSC against the aligned truth (the done
 *    criterion; the plain FSC is printed beside it, and the centred FSC of
 *    the same patterns merged at their true orientations as the floor) and
 *    the median orientation error against the grid spacing.
 * --quick shrinks everything (for a smoke run). The last line is JSON.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval/fsc.h"
#include "eval/orient.h"
#include "geom/geom.h"
#include "io/structure.h"
#include "physics/detector.h"
#include "physics/scatter.h"
#include "physics/slice.h"
#include "recon/emc.h"

static int g_quick = 0;
static int g_div = 0;  /* --div N: only this num_div in the Dragonfly timing */
static int g_rec_n = 0;     /* --recon-patterns N (default 3000) */
static int g_rec_last = 0;  /* --recon-last-iters N: iterations at the finest level (default 20) */
static int g_path = 0; /* --path N: config.compress_path (0 automatic, 1 pixel-major, 2 photon-major) */

/* ---------- synthetic sparse data of a given size ---------- */

/* n patterns, photons ~ Poisson(mean * phi) with lognormal phi (sigma 0.2),
 * pixels drawn among the good ones with weight 1 / (1 + (r / r0)^2) (r the
 * distance from the beam in pixels), as in real low-angle-heavy data. */
static void synth_sparse(ew_emc_sparse_t *sp, const ew_detector_t *d, size_t n, double mean, uint64_t seed)
{
    size_t npix = d->npix;
    double *w = calloc(npix, sizeof *w);
    for (size_t p = 0; p < npix; p++) {
        if (d->mask[p] != EW_MASK_GOOD) continue;
        double x = (double)(p % (size_t)d->nx) - d->cx, y = (double)(p / (size_t)d->nx) - d->cy;
        double r0 = 0.25 * d->nx;
        w[p] = 1.0 / (1.0 + (x * x + y * y) / (r0 * r0));
    }
    ew_hist_sampler_t h;
    if (ew_hist_sampler_init(&h, w, npix) != EW_OK) abort();
    size_t cap = (size_t)(n * mean * 1.3) + 1024;
    sp->n_patterns = n;
    sp->npix = npix;
    sp->offset = ew_alloc_array(n + 1, sizeof *sp->offset);
    sp->pix = ew_alloc_array(cap, sizeof *sp->pix);
    sp->count = ew_alloc_array(cap, sizeof *sp->count);
    uint32_t *cnt = calloc(npix, sizeof *cnt), *list = malloc(npix * sizeof *list);
    size_t hpos = 0;
    for (size_t i = 0; i < n; i++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, ew_rng_stream_id(EW_RNG_TAG_NOISE, i));
        double phi = ew_rng_lognormal(&r, -0.02, 0.2);
        size_t k = (size_t)ew_rng_poisson(&r, mean * phi), nl = 0;
        for (size_t j = 0; j < k; j++) {
            size_t p = ew_hist_sampler_draw(&h, &r);
            if (cnt[p]++ == 0) list[nl++] = (uint32_t)p;
        }
        sp->offset[i] = hpos;
        if (hpos + nl > cap) {
            cap = 2 * (hpos + nl);
            sp->pix = realloc(sp->pix, cap * sizeof *sp->pix); /* ew_alloc'd blocks are aligned_alloc'd */
            sp->count = realloc(sp->count, cap * sizeof *sp->count);
        }
        for (size_t j = 0; j < nl; j++) {
            sp->pix[hpos] = list[j];
            sp->count[hpos++] = cnt[list[j]];
            cnt[list[j]] = 0;
        }
    }
    sp->offset[n] = hpos;
    free(cnt), free(list), free(w);
    ew_hist_sampler_free(&h);
}

static double mean_hits(const ew_emc_sparse_t *sp, const uint8_t *mask, double *photons)
{
    double hits = 0, ph = 0;
    for (size_t h = 0; h < sp->offset[sp->n_patterns]; h++)
        if (mask[sp->pix[h]] == EW_MASK_GOOD) hits++, ph += sp->count[h];
    *photons = ph / (double)sp->n_patterns;
    return hits / (double)sp->n_patterns;
}

/* fp32 FMA peak: cores x GHz x 16 (two 256-bit FMA pipes; AVX-512 is
 * double-pumped on Zen 4), from /proc/cpuinfo's MHz. */
static double fma_peak(double *ghz)
{
    double mhz = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7)) {
            mhz = atof(strchr(line, ':') + 1);
            break;
        }
    if (f) fclose(f);
    *ghz = mhz / 1000;
    return omp_get_max_threads() * mhz * 1e6 * 16;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    double t_cpu; /* process CPU seconds of the last iteration / threads: the wall time on an idle machine */
    double t_iter, t_exp, t_like, t_comp, terms, gfma;
    int dense;
} timing_t;

/* Create an EMC run, do `iters` iterations, report the last. */
static timing_t time_emc(const ew_detector_t *d, const ew_emc_sparse_t *sp, int level, int iters, int n_vox)
{
    ew_rotgrid_t g;
    if (ew_rotgrid_600cell(level, &g) != EW_OK) abort();
    ew_emc_config_t cfg;
    ew_emc_config_default(&cfg);
    cfg.n_vox = n_vox;
    cfg.mem_limit_mb = 4096;
    cfg.compress_path = g_path;
    ew_emc_pixels_t px = {d->npix, d->s, d->mask, d->corr};
    ew_emc_t *e;
    if (ew_emc_create(&e, &cfg, &px, sp, &g) != EW_OK) {
        fprintf(stderr, "bench_emc: %s\n", ew_error_message());
        exit(1);
    }
    ew_emc_stats_t st = {0};
    double c0 = 0;
    for (int i = 0; i < iters; i++)
        if ((c0 = cpu_now()), ew_emc_iterate(e, &st) != EW_OK) {
            fprintf(stderr, "bench_emc: %s\n", ew_error_message());
            exit(1);
        }
    double ph;
    double hits = mean_hits(sp, d->mask, &ph);
    size_t Rt = (g.n + EW_EMC_TILE - 1) / EW_EMC_TILE * EW_EMC_TILE;
    timing_t t = {(cpu_now() - c0) / omp_get_max_threads(), st.t_total, st.t_expand, st.t_likelihood, st.t_compress, hits * sp->n_patterns * (double)Rt, 0,
                  st.dense_store};
    t.gfma = t.terms / (st.t_likelihood > 0 ? st.t_likelihood : 1) / 1e9;
    ew_emc_free(e);
    ew_rotgrid_free(&g);
    return t;
}

static ew_detector_t make_det(int nx, double good_radius, double stop_radius)
{
    ew_detector_config_t c = ew_detector_config_dragonfly();
    c.nx = c.ny = nx;
    c.pixel_m = 0.512e-3 * 150.0 / nx;
    c.orient_radius_px = good_radius;
    c.beamstop_radius_px = stop_radius;
    ew_detector_t d;
    if (ew_detector_init(&d, &c) != EW_OK) abort();
    return d;
}

/* ---------- 1. scaling ---------- */

static void run_scaling(FILE *js)
{
    ew_detector_t d = make_det(64, 32, 3);
    size_t mc[3];
    ew_detector_mask_counts(&d, mc);
    int nv, dummy;
    double ds;
    ew_detector_volume_grid(&d, 0, &nv, &ds);
    (void)dummy;
    printf("\n== scaling: 64 x 64 detector (%zu orientation pixels), model %d^3, seconds per iteration\n", mc[0], nv);
    printf("%-10s %7s %7s %9s | %8s %8s | %8s %8s %8s | %9s\n", "vary", "N", "R", "photons", "wall", "cpu/thr",
           "expand", "likeli", "compress", "ns/term");
    struct {
        const char *what;
        size_t n;
        int level;
        double ph;
    } cases[] = {{"base", 2000, 4, 200},     {"patterns", 4000, 4, 200}, {"patterns", 8000, 4, 200},
                 {"rotations", 2000, 5, 200}, {"rotations", 2000, 6, 200}, {"photons", 2000, 4, 400},
                 {"photons", 2000, 4, 800}};
    int nc = (int)(sizeof cases / sizeof cases[0]);
    fprintf(js, "\"scaling\":[");
    for (int i = 0; i < nc; i++) {
        size_t n = g_quick ? cases[i].n / 8 : cases[i].n;
        int lvl = g_quick ? cases[i].level - 2 : cases[i].level;
        ew_emc_sparse_t sp;
        synth_sparse(&sp, &d, n, cases[i].ph, 7 + i);
        timing_t t = time_emc(&d, &sp, lvl, 2, 0);
        double ph;
        mean_hits(&sp, d.mask, &ph);
        size_t R = 10 * (5 * (size_t)lvl * lvl * lvl + lvl);
        printf("%-10s %7zu %7zu %9.0f | %8.3f %8.3f | %8.3f %8.3f %8.3f | %9.3f\n", cases[i].what, n, R, ph, t.t_iter,
               t.t_cpu, t.t_exp, t.t_like, t.t_comp, 1e9 * t.t_like / t.terms);
        fprintf(js, "%s{\"vary\":\"%s\",\"patterns\":%zu,\"rotations\":%zu,\"photons\":%.1f,\"s_iter\":%.4f,"
                    "\"s_cpu_per_thread\":%.4f,\"s_expand\":%.4f,\"s_likelihood\":%.4f,\"s_compress\":%.4f}",
                i ? "," : "", cases[i].what, n, R, ph, t.t_iter, t.t_cpu, t.t_exp, t.t_like, t.t_comp);
        ew_emc_sparse_free(&sp);
    }
    fprintf(js, "],");
    ew_detector_free(&d);
}

/* ---------- 2. Dragonfly's tutorial size ---------- */

static void run_dragonfly(FILE *js, int iters)
{
    /* 150 x 150, orientation disc of radius 75 minus a beam stop: 17,104
     * good pixels as in Dragonfly's tutorial detector. */
    ew_detector_t d = make_det(150, 75.0, 13.45);
    size_t mc[3];
    ew_detector_mask_counts(&d, mc);
    size_t n = g_quick ? 3000 : 30000;
    ew_emc_sparse_t sp;
    double t0 = ew_time_now();
    synth_sparse(&sp, &d, n, 336.0, 11);
    double ph, hits = mean_hits(&sp, d.mask, &ph);
    int nv;
    double ds;
    ew_detector_volume_grid(&d, 0, &nv, &ds);
    double ghz, peak = fma_peak(&ghz);
    printf("\n== Dragonfly tutorial size: %zu patterns, %zu orientation pixels (%zu merge-only, %zu bad), "
           "%.1f photons (%.1f distinct pixels) per pattern, model %d^3; %d threads at %.2f GHz "
           "(synthesized in %.1f s)\n",
           n, mc[0], mc[1], mc[2], ph, hits, nv, omp_get_max_threads(), ghz, ew_time_now() - t0);
    printf("%-8s %7s | %8s %8s | %8s %8s %8s | %10s %9s %7s | %10s %8s\n", "num_div", "R", "wall", "cpu/thr",
           "expand", "likeli", "compress", "terms", "GFMA/s", "%peak", "Dragonfly", "speedup");
    int levels[2] = {4, 6};
    double ref[2] = {48.5, 177.0};
    fprintf(js, "\"dragonfly\":{\"patterns\":%zu,\"good_pixels\":%zu,\"photons\":%.1f,\"threads\":%d,\"runs\":[", n,
            mc[0], ph, omp_get_max_threads());
    int first = 1;
    for (int i = 0; i < 2; i++) {
        int lvl = levels[i];
        if (g_div && lvl != g_div) continue;
        timing_t t = time_emc(&d, &sp, lvl, iters, 0);
        size_t R = 10 * (5 * (size_t)lvl * lvl * lvl + lvl);
        double scale = g_quick ? 10.0 : 1.0; /* quick: 1/10 of the patterns */
        printf("%-8d %7zu | %8.2f %8.2f | %8.2f %8.2f %8.2f | %10.3g %9.1f %6.1f%% | %9.1fs %7.1fx%s\n", lvl, R,
               t.t_iter, t.t_cpu, t.t_exp, t.t_like, t.t_comp, t.terms, t.gfma, 100 * t.gfma * 1e9 / peak, ref[i],
               ref[i] / (t.t_iter * scale), g_quick ? " (x10 patterns)" : "");
        printf("%-8s %7s   (on an idle machine, from CPU time: %.1fx)\n", "", "", ref[i] / (t.t_cpu * scale));
        fprintf(js, "%s{\"num_div\":%d,\"rotations\":%zu,\"s_iter\":%.3f,\"s_cpu_per_thread\":%.3f,\"s_expand\":%.3f,"
                    "\"s_likelihood\":%.3f,\"s_compress\":%.3f,\"terms\":%.4g,\"gfma_per_s\":%.2f,"
                    "\"peak_fraction\":%.3f,\"dragonfly_s\":%.1f,\"speedup\":%.2f,\"speedup_cpu\":%.2f,"
                    "\"dense_store\":%d}",
                first ? "" : ",", lvl, R, t.t_iter, t.t_cpu, t.t_exp, t.t_like, t.t_comp, t.terms, t.gfma,
                t.gfma * 1e9 / peak, ref[i], ref[i] / (t.t_iter * scale), ref[i] / (t.t_cpu * scale), t.dense);
        first = 0;
    }
    fprintf(js, "]},");
    ew_emc_sparse_free(&sp);
    ew_detector_free(&d);
}

/* ---------- 3. reconstruction of simulated 2cex data ---------- */

static int run_recon(FILE *js, int levels_lo, int levels_hi)
{
    const char *pdb = getenv("EWALD_DATA") ? NULL : "../shared/data/pdb/2cex.pdb";
    char buf[1024];
    if (!pdb) {
        snprintf(buf, sizeof buf, "%s/pdb/2cex.pdb", getenv("EWALD_DATA"));
        pdb = buf;
    }
    ew_structure_t st;
    ew_structure_options_t so = {1, 0, 1};
    if (ew_structure_read(pdb, &so, &st) != EW_OK) {
        printf("\n== recon: skipped (%s)\n", ew_error_message());
        fprintf(js, "\"recon\":null,");
        return 0;
    }
    ew_atoms_t at;
    if (ew_atoms_from_structure(&st, NULL, &at) != EW_OK) abort();
    ew_atoms_center(&at);
    double rad = ew_atoms_radius(&at);
    /* 64 x 64 detector; pixel so that one pixel is 1 / (6 x diameter) in s
     * (speckles about 3 pixels wide at the centre, |s| D ~ 5 at the edge). */
    ew_detector_config_t c = ew_detector_config_reference();
    c.nx = c.ny = g_quick ? 40 : 64;
    double lam = EW_HC_EV_A / c.energy_ev;
    c.pixel_m = c.distance_m * lam / (6.0 * 2.0 * rad);
    c.orient_radius_px = c.nx / 2.0;
    c.beamstop_radius_px = 1.5;
    ew_detector_t d;
    if (ew_detector_init(&d, &c) != EW_OK) abort();
    int n;
    double ds;
    ew_detector_volume_grid(&d, 0, &n, &ds);
    ew_rvol_t truth;
    if (ew_rvol_alloc(&truth, n, ds) != EW_OK || ew_scatter_volume(&at, &truth, NULL, NULL, NULL) != EW_OK) abort();
    size_t N = g_rec_n > 0 ? (size_t)g_rec_n : g_quick ? 1500 : 3000;
    double photons = 1000;
    /* photons per pattern: k I(R^T s) corr, k from the unrotated slice */
    float *img = malloc(d.npix * sizeof *img);
    double id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, tot = 0;
    ew_slice_trilinear(&truth, id, d.s, d.npix, img);
    for (size_t p = 0; p < d.npix; p++)
        if (d.mask[p] != EW_MASK_BAD) tot += img[p] * d.corr[p];
    double k0 = photons / tot;
    ew_quat_t *qt = malloc(N * sizeof *qt);
    double *phit = malloc(N * sizeof *phit);
    float *frames = malloc(N * d.npix * sizeof *frames);
    double t0 = ew_time_now();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 2024, ew_rng_stream_id(EW_RNG_TAG_ORIENTATION, i));
        qt[i] = ew_quat_random(&r);
        double phi = ew_rng_lognormal(&r, -0.02, 0.2), R[9];
        phit[i] = phi;
        ew_quat_to_mat(qt[i], R);
        float *f = frames + i * d.npix;
        ew_slice_trilinear(&truth, R, d.s, d.npix, f);
        for (size_t p = 0; p < d.npix; p++)
            f[p] = d.mask[p] == EW_MASK_BAD ? 0.0f : (float)ew_rng_poisson(&r, k0 * phi * f[p] * d.corr[p]);
    }
    ew_emc_sparse_t sp;
    if (ew_emc_sparse_from_dense(&sp, frames, N, d.npix) != EW_OK) abort();
    free(frames);
    double ph;
    mean_hits(&sp, d.mask, &ph);
    printf("\n== recon: 2cex (radius %.1f A), %d x %d detector, %zu patterns, %.0f photons per pattern "
           "(all pixels %.0f), fluence jitter 20%%, model %d^3 (simulated in %.1f s)\n",
           rad, c.nx, c.ny, N, ph, (double)sp.offset[N] > 0 ? photons : 0, n, ew_time_now() - t0);

    /* the floor: the same patterns merged at their true orientations and
     * fluences (what EMC would give with perfect orientations), same grid
     * and trilinear weights */
    ew_shell_curve_t fk;
    {
        size_t n3 = (size_t)n * n * n;
        double *num = calloc(n3, sizeof *num), *den = calloc(n3, sizeof *den);
        int cm = n / 2;
        double *kd = calloc(d.npix, sizeof *kd);
        for (size_t i = 0; i < N; i++) {
            double R[9];
            ew_quat_to_mat(qt[i], R);
            for (uint64_t h = sp.offset[i]; h < sp.offset[i + 1]; h++) kd[sp.pix[h]] = sp.count[h];
            for (size_t p = 0; p < d.npix; p++) {
                if (d.mask[p] == EW_MASK_BAD) continue;
                double k = kd[p];
                kd[p] = 0;
                const float *sv = d.s + 3 * p;
                double x[3], f[3];
                int ok = 1;
                for (int a = 0; a < 3; a++) {
                    x[a] = (R[a] * sv[0] + R[3 + a] * sv[1] + R[6 + a] * sv[2]) / ds + cm; /* R^T s */
                    f[a] = floor(x[a]);
                    ok &= f[a] >= 0 && f[a] <= n - 2;
                }
                if (!ok) continue;
                for (int c8 = 0; c8 < 8; c8++) {
                    int dx = c8 & 1, dy = (c8 >> 1) & 1, dz = c8 >> 2;
                    double w = (dx ? x[0] - f[0] : 1 - x[0] + f[0]) * (dy ? x[1] - f[1] : 1 - x[1] + f[1]) *
                               (dz ? x[2] - f[2] : 1 - x[2] + f[2]);
                    size_t v = ((size_t)(f[2] + dz) * n + (size_t)(f[1] + dy)) * n + (size_t)(f[0] + dx);
                    num[v] += w * k;
                    den[v] += w * phit[i] * d.corr[p];
                }
            }
        }
        free(kd);
        float *km = malloc(n3 * sizeof *km);
        for (size_t v = 0; v < n3; v++) {
            size_t u = n3 - 1 - v; /* Friedel partner (odd n), as EMC symmetrizes */
            double a = num[v] + num[u], b = den[v] + den[u];
            km[v] = b > 0 ? (float)(a / b) : 0.0f;
        }
        if (ew_fsc_intensity_centred(km, truth.data, n, ds, 1.0, &fk) != EW_OK) abort();
        free(num), free(den), free(km);
    }

    ew_emc_config_t cfg;
    ew_emc_config_default(&cfg);
    cfg.n_vox = n;
    cfg.ds = ds;
    cfg.beta_start = 0.1;
    cfg.beta_factor = 1.5;
    cfg.beta_period = 3;
    cfg.seed = 5;
    ew_emc_pixels_t px = {d.npix, d.s, d.mask, d.corr};
    ew_rotgrid_t g;
    if (ew_rotgrid_600cell(levels_lo, &g) != EW_OK) abort();
    ew_emc_t *e;
    if (ew_emc_create(&e, &cfg, &px, &sp, &g) != EW_OK) {
        fprintf(stderr, "bench_emc: %s\n", ew_error_message());
        exit(1);
    }
    printf("%5s %5s %6s %7s | %10s %8s %10s %7s | %6s\n", "iter", "level", "beta", "s/iter", "rms change", "MI",
           "<log L>", "conf", "");
    double t_all = ew_time_now();
    int iters_per_level = g_quick ? 8 : 12;
    ew_emc_stats_t s;
    for (int lvl = levels_lo; lvl <= levels_hi; lvl++) {
        if (lvl > levels_lo) {
            ew_rotgrid_free(&g);
            if (ew_rotgrid_600cell(lvl, &g) != EW_OK || ew_emc_refine(e, &g) != EW_OK) abort();
        }
        int its = lvl == levels_hi ? (g_rec_last > 0 ? g_rec_last : iters_per_level + 8) : iters_per_level;
        for (int i = 0; i < its; i++) {
            if (ew_emc_iterate(e, &s) != EW_OK) {
                fprintf(stderr, "bench_emc: %s\n", ew_error_message());
                exit(1);
            }
            printf("%5d %5d %6.3f %7.2f | %10.3g %8.3f %10.1f %7.3f |\n", s.iteration, lvl, s.beta, s.t_total,
                   s.rms_change, s.mutual_info, s.avg_loglik, s.frac_confident);
        }
    }
    t_all = ew_time_now() - t_all;
    /* orientation error */
    ew_quat_t *qp = malloc(N * sizeof *qp);
    for (size_t i = 0; i < N; i++) qp[i] = g.quat[ew_emc_best_rot(e)[i] >= 0 ? ew_emc_best_rot(e)[i] : 0];
    ew_orient_opts_t oo;
    ew_orient_opts_default(&oo);
    oo.inplane_twin = 1;
    ew_orient_err_t oe;
    if (ew_orient_error(qt, qp, N, &oo, &oe) != EW_OK) abort();
    /* aligned truth: V_true(G u) (mirror hand: V_true(M G u)) */
    double G[9];
    ew_quat_to_mat(oe.g, G);
    ew_rvol_t al;
    if (ew_rvol_alloc(&al, n, ds) != EW_OK) abort();
    int cc = n / 2;
    float *pts = malloc((size_t)n * n * 3 * sizeof *pts);
    double I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int z = 0; z < n; z++) {
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double u[3] = {(x - cc) * ds, (y - cc) * ds, (z - cc) * ds}, v[3];
                ew_mat_apply(G, u, v);
                if (oe.hand == 1) v[2] = -v[2];
                float *o = pts + 3 * ((size_t)y * n + x);
                o[0] = (float)v[0], o[1] = (float)v[1], o[2] = (float)v[2];
            }
        ew_slice_trilinear(&truth, I3, pts, (size_t)n * n, al.data + (size_t)z * n * n);
    }
    free(pts);
    /* the done-criterion uses the shell-centred intensity FSC (sqrt(I) minus
     * its shell mean in each volume): the plain FSC of positive amplitudes
     * stays high even for a featureless guess; it is printed for reference */
    ew_shell_curve_t fc, fp;
    if (ew_fsc_intensity_centred(ew_emc_model(e)->data, al.data, n, ds, 1.0, &fc) != EW_OK ||
        ew_fsc_intensity(ew_emc_model(e)->data, al.data, n, ds, 1.0, &fp) != EW_OK)
        abort();
    double smax = d.s_max_edge;
    int good = 0, good_p = 0, tot_sh = 0;
    double fmin = 1, fmin_p = 1;
    int good_k = 0;
    printf("shell  s (1/A)  FSC centred  FSC plain  voxels  | centred FSC of the merge at the true orientations\n");
    for (int j = 1; j < fc.nshell && fc.s[j] <= smax; j++) {
        tot_sh++;
        good += fc.value[j] >= 0.9;
        good_p += fp.value[j] >= 0.9;
        if (fc.value[j] < fmin) fmin = fc.value[j];
        if (fp.value[j] < fmin_p) fmin_p = fp.value[j];
        good_k += fk.value[j] >= 0.9;
        printf("%5d %8.4f %12.3f %10.3f %7zu  | %6.3f\n", j, fc.s[j], fc.value[j], fp.value[j], (size_t)fc.count[j],
               fk.value[j]);
    }
    double frac = (double)good / tot_sh, frac_p = (double)good_p / tot_sh, spacing = g.spacing * 180 / EW_PI;
    int pass = frac >= 0.9 && oe.median_deg < spacing;
    double frac_k = (double)good_k / tot_sh;
    printf("result: shell-centred intensity FSC >= 0.9 in %.0f%% of shells up to |s| = %.4f 1/A (min %.3f) "
           "[plain FSC: %.0f%%, min %.3f; merge at the true orientations: %.0f%%]; median orientation error %.2f "
           "deg (hand %d, 90th pct %.1f) vs grid spacing %.2f deg (level %d); %.0f s in all: %s\n",
           100 * frac, smax, fmin, 100 * frac_p, fmin_p, 100 * frac_k, oe.median_deg, oe.hand, oe.p90_deg, spacing,
           levels_hi, t_all, pass ? "PASS" : "FAIL");
    fprintf(js, "\"recon\":{\"patterns\":%zu,\"photons\":%.1f,\"n_vox\":%d,\"level\":%d,\"fsc_frac_ge_0.9\":%.3f,"
                "\"fsc_min\":%.3f,\"fsc_plain_frac_ge_0.9\":%.3f,\"fsc_plain_min\":%.3f,\"fsc_true_orient_frac_ge_0.9\":%.3f,"
                "\"median_orient_err_deg\":%.3f,\"grid_spacing_deg\":%.3f,\"seconds\":%.1f,\"pass\":%s},",
            N, ph, n, levels_hi, frac, fmin, frac_p, fmin_p, frac_k, oe.median_deg, spacing, t_all, pass ? "true" : "false");
    ew_shell_curve_free(&fc);
    ew_shell_curve_free(&fp);
    ew_shell_curve_free(&fk);
    free(phit);
    ew_orient_err_free(&oe);
    free(qp), free(qt), free(img);
    ew_rvol_free(&al);
    ew_rvol_free(&truth);
    ew_emc_free(e);
    ew_rotgrid_free(&g);
    ew_emc_sparse_free(&sp);
    ew_detector_free(&d);
    ew_atoms_free(&at);
    ew_structure_free(&st);
    return pass;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int iters = 2, lo = 4, hi = 6;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) g_quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--div") && i + 1 < argc) g_div = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--path") && i + 1 < argc) g_path = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recon-patterns") && i + 1 < argc) g_rec_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recon-last-iters") && i + 1 < argc) g_rec_last = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--levels") && i + 2 < argc) lo = atoi(argv[++i]), hi = atoi(argv[++i]);
    }
    if (g_quick) lo = 3, hi = 4;
    setvbuf(stdout, NULL, _IOLBF, 0);
    ew_log_set_level(EW_LOG_WARN);
    char *jbuf = NULL;
    size_t jlen = 0;
    FILE *js = open_memstream(&jbuf, &jlen);
    fprintf(js, "{\"bench\":\"emc\",\"threads\":%d,\"tile\":%d,", omp_get_max_threads(), EW_EMC_TILE);
    if (!only || !strcmp(only, "scaling")) run_scaling(js);
    if (!only || !strcmp(only, "dragonfly")) run_dragonfly(js, iters);
    if (!only || !strcmp(only, "recon")) run_recon(js, lo, hi);
    fprintf(js, "\"quick\":%s}", g_quick ? "true" : "false");
    fclose(js);
    printf("%s\n", jbuf);
    free(jbuf);
    return 0;
}
