/* Benchmark of self-supervised orientation learning (src/recon/ssl.h) on
 * simulated XFEL data: simulate a dataset in memory (xfel_sim.h), train a
 * configuration, and report the wall time, the orientation error (median,
 * 90th percentile), the intensity FSC 0.5 crossing as a fraction of the
 * detector-edge s, and the scale / fluence correlation.
 *
 * Usage: bench_ssl [--json] [--pdb 2cex] [--det 128] [--n 10000]
 *          [--fluence 100] [--spread 0.5] [--readout 0.1] [--beamstop 3]
 *          [--preset fast] [--epochs E] [--batch B] [--grid N] [--enc S]
 *          [--width W] [--smooth L] [--lr X] [--lr-grid X] [--poisson]
 *          [--c2f F] [--noaug] [--seed S] [--threads T] [--png loss.png]
 *          [--emc-size N] [--emc-lo L] [--emc-hi L] [--emc-iters N] [--refine DEG] [--rounds N] [--target-frac F]
 *          [--oracle [--truth-labels]: decoder fixed at the true volume, (and the encoder regressing onto the
 *          true orientations: a check that it can learn them at all)]
 *          [--ckpt PATH (checkpoint; resumed from when it exists)] [--max-steps N]
 * Defaults are the small CI-sized case (2cex, 32x32, 1000 patterns); the
 * issue's acceptance case is --det 128 --n 10000. Needs ../shared/data/pdb
 * (or $EWALD_DATA/pdb); prints "skipped" otherwise. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "eval/orient.h"
#include "physics/xfel_sim.h"
#include "recon/ssl.h"

static const char *data_path(const char *rel)
{
    static char buf[1024];
    const char *root = getenv("EWALD_DATA");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared/data", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

typedef struct {
    size_t npix;
    float *data, *expected;
    ew_quat_t *q;
    double *fl;
} sink_t;

static ew_status_t sink_fn(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    sink_t *s = ctx;
    for (size_t k = 0; k < count; k++) {
        size_t i = p[k].index;
        memcpy(s->data + i * s->npix, p[k].data, s->npix * sizeof(float));
        if (s->expected && p[k].expected) memcpy(s->expected + i * s->npix, p[k].expected, s->npix * sizeof(float));
        s->q[i] = p[k].quat;
        s->fl[i] = p[k].fluence_mult;
    }
    return EW_OK;
}

int main(int argc, char **argv)
{
    int truth_labels = 0;
    int json = 0, det_n = 32, noaug = 0, poisson = 0, threads = 0, oracle = 0;
    size_t n = 1000;
    double fluence = 100, spread = 0.5, readout = 0.1, beamstop = -1;
    const char *pdb = "2cex", *preset = "fast", *png = NULL, *ckpt = NULL;
    long long max_steps = 0;
    double epochs = -1, smooth = -1, lr = -1, lr_grid = -1, c2f = -1;
    int batch = -1, grid = -1, enc = -1, width = -1, eval_every = 0, search_diag = 0, search_level = -1;
    double target_frac = -1, refine = -1, target_weight = -1;
    int rounds = -1, emc_size = -1, emc_lo = -1, emc_hi = -1, emc_iters = -1;
    long long seed = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && ++i)
        if (strcmp(a, "--json") == 0) json = 1;
        else if (strcmp(a, "--noaug") == 0) noaug = 1;
        else if (strcmp(a, "--poisson") == 0) poisson = 1;
        else if (strcmp(a, "--oracle") == 0) oracle = 1;
        else if (strcmp(a, "--truth-labels") == 0) truth_labels = 1;
        else if (strcmp(a, "--check-search") == 0) oracle = 2;
        else if (strcmp(a, "--search-diag") == 0) search_diag = 1;
        else if (ARG("--search-level")) search_level = atoi(v);
        else if (ARG("--target-frac")) target_frac = atof(v);
        else if (ARG("--refine")) refine = atof(v);
        else if (ARG("--rounds")) rounds = atoi(v);
        else if (ARG("--target-weight")) target_weight = atof(v);
        else if (ARG("--ckpt")) ckpt = v;
        else if (ARG("--max-steps")) max_steps = atoll(v);
        else if (ARG("--emc-size")) emc_size = atoi(v);
        else if (ARG("--emc-lo")) emc_lo = atoi(v);
        else if (ARG("--emc-hi")) emc_hi = atoi(v);
        else if (ARG("--emc-iters")) emc_iters = atoi(v);
        else if (ARG("--pdb")) pdb = v;
        else if (ARG("--det")) det_n = atoi(v);
        else if (ARG("--n")) n = (size_t)atol(v);
        else if (ARG("--fluence")) fluence = atof(v);
        else if (ARG("--spread")) spread = atof(v);
        else if (ARG("--readout")) readout = atof(v);
        else if (ARG("--beamstop")) beamstop = atof(v);
        else if (ARG("--preset")) preset = v;
        else if (ARG("--epochs")) epochs = atof(v);
        else if (ARG("--batch")) batch = atoi(v);
        else if (ARG("--grid")) grid = atoi(v);
        else if (ARG("--enc")) enc = atoi(v);
        else if (ARG("--width")) width = atoi(v);
        else if (ARG("--smooth")) smooth = atof(v);
        else if (ARG("--lr")) lr = atof(v);
        else if (ARG("--lr-grid")) lr_grid = atof(v);
        else if (ARG("--c2f")) c2f = atof(v);
        else if (ARG("--seed")) seed = atoll(v);
        else if (ARG("--threads")) threads = atoi(v);
        else if (ARG("--png")) png = v;
        else if (ARG("--eval-every")) eval_every = atoi(v);
        else {
            fprintf(stderr, "bench_ssl: unknown or incomplete option %s\n", a);
            return 2;
        }
#undef ARG
    }
    if (threads > 0) omp_set_num_threads(threads);
    char rel[256];
    snprintf(rel, sizeof rel, "pdb/%s.pdb", pdb);
    const char *path = data_path(rel);
    if (!path) {
        printf("bench_ssl: %s not found, skipped\n", rel);
        if (json) printf("{\"bench\": \"ssl\", \"skipped\": true}\n");
        return 0;
    }
    ew_xfel_setup_t su;
    memset(&su, 0, sizeof su);
    su.structure_path = path;
    su.detector = ew_detector_config_reference();
    su.detector.nx = su.detector.ny = det_n;
    su.detector.pixel_m = 0.1 / det_n;
    su.detector.beamstop_radius_px = beamstop >= 0 ? beamstop : 3.0 * det_n / 128.0 + 0.5;
    su.sim = ew_xfel_config_reference();
    su.sim.fluence_factor = fluence;
    su.sim.fluence_dist = spread > 0 ? EW_FLUENCE_GAMMA : EW_FLUENCE_CONSTANT;
    su.sim.fluence_spread = spread;
    su.sim.readout_sigma = readout;
    su.sim.n_patterns = n;
    su.sim.seed = 2023;
    su.sim.keep_expected = 1;
    ew_xfel_model_t xm;
    double t0 = ew_time_now();
    if (ew_xfel_model_build(&su, &xm) != EW_OK) {
        fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
        return 1;
    }
    size_t npix = xm.det.npix;
    sink_t s = {npix, malloc(n * npix * sizeof(float)), noaug ? NULL : malloc(n * npix * sizeof(float)),
                malloc(n * sizeof(ew_quat_t)), malloc(n * sizeof(double))};
    if (!s.data || !s.q || !s.fl || (!noaug && !s.expected)) {
        fprintf(stderr, "bench_ssl: out of memory\n");
        return 1;
    }
    ew_xfel_stats_t xs;
    if (ew_xfel_simulate(&su.sim, &xm.det, &xm.W, NULL, sink_fn, &s, &xs) != EW_OK) {
        fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
        return 1;
    }
    double t_sim = ew_time_now() - t0;
    ew_ssl_data_t d = {.n = n, .nx = det_n, .ny = det_n, .data = s.data, .expected = s.expected,
                       .s = xm.det.s, .mask = xm.det.mask, .corr = xm.det.corr, .s_max_edge = xm.det.s_max_edge,
                       .q_true = s.q, .fluence_true = s.fl};
    ew_ssl_config_t c;
    if (ew_ssl_config_preset(&c, preset) != EW_OK) {
        fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
        return 2;
    }
    if (epochs > 0) c.epochs = epochs;
    if (batch > 0) c.batch = batch;
    if (grid > 0) c.grid_n = grid;
    if (enc > 0) c.enc_size = enc;
    if (width > 0) c.enc_width = width;
    if (smooth >= 0) c.smooth = smooth;
    if (lr > 0) c.lr = lr;
    if (lr_grid > 0) c.lr_grid = lr_grid;
    if (c2f >= 0) c.c2f_start = c2f;
    if (search_level >= 0) c.search_level = search_level;
    if (target_frac >= 0) c.target_frac = target_frac;
    if (refine >= 0) c.refine_deg = refine;
    if (rounds >= 0) c.refine_rounds = rounds;
    if (target_weight >= 0) c.target_weight = target_weight;
    c.ckpt_path = ckpt;
    c.resume = 1;
    if (emc_size >= 0) c.emc_size = emc_size;
    if (emc_lo > 0) c.emc_level_lo = emc_lo;
    if (emc_hi > 0) c.emc_level_hi = emc_hi;
    if (emc_iters > 0) c.emc_iters = emc_iters;
    if (c.emc_size > det_n) c.emc_size = det_n;
    if (poisson) c.loss = EW_SSL_LOSS_POISSON;
    if (seed >= 0) c.seed = (uint64_t)seed;
    if (c.enc_size > det_n) c.enc_size = det_n;
    c.progress = isatty(2);
    ew_ssl_model_t *m;
    ew_ssl_history_t h;
    ew_ssl_eval_t e;
    if (ew_ssl_model_create(&c, &d, &m) != EW_OK) {
        fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
        return 1;
    }
    if (oracle == 2) {
        /* check of conventions: search against the true volume */
        ew_quat_t *qs = malloc(n * sizeof *qs);
        ew_orient_err_t oe;
        if (ew_ssl_model_set_volume(m, &xm.W) != EW_OK || ew_ssl_search(m, &d, qs) != EW_OK ||
            ew_orient_error(s.q, qs, n, NULL, &oe) != EW_OK) {
            fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
            return 1;
        }
        printf("search against the true volume: median %.2f deg (90%%: %.2f), hand %d\n", oe.median_deg, oe.p90_deg,
               oe.hand);
        return 0;
    }
    if (oracle) {
        /* check: the decoder fixed at the true volume, only the encoders learn */
        ew_ssl_config_t *mc = ew_ssl_model_config(m);
        mc->freeze_decoder = 1;
        if (ew_ssl_model_set_volume(m, &xm.W) != EW_OK ||
            (truth_labels && ew_ssl_set_pseudo_labels(m, s.q, n) != EW_OK)) {
            fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
            return 1;
        }
    }
    double t_train = 0.0;
    int64_t steps = 0;
    for (int64_t upto = eval_every;; upto += eval_every) {
        /* with --eval-every, train in chunks and print the orientation error */
        ew_ssl_config_t *mc = ew_ssl_model_config(m);
        mc->max_steps = eval_every > 0 ? upto : max_steps;
        if (ew_ssl_train(m, &d, &h) != EW_OK) {
            fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
            return 1;
        }
        t_train += h.seconds;
        steps += h.steps;
        if (eval_every <= 0 || h.steps == 0) break;
        ew_ssl_eval_t ei;
        if (ew_ssl_evaluate(m, &d, NULL, 1, &ei) == EW_OK)
            printf("  step %6lld  %7.1f s  loss %.4f  median %.1f deg (twin %.1f), encoder %.1f (twin %.1f), "
                   "encoder + refinement %.1f  scale corr %.3f\n",
                   (long long)ew_ssl_model_step(m), t_train, h.nlog ? h.log[h.nlog - 1].loss : NAN, ei.median_deg,
                   ei.median_twin_deg, ei.enc_median_deg, ei.enc_median_twin_deg, ei.orient_median_deg, ei.scale_corr);
        if (search_diag) {
            ew_quat_t *qs = malloc(n * sizeof *qs);
            ew_orient_err_t oe;
            if (qs && ew_ssl_search(m, &d, qs) == EW_OK && ew_orient_error(s.q, qs, n, NULL, &oe) == EW_OK) {
                printf("           search-assigned orientations: median %.1f deg (90%%: %.1f)\n", oe.median_deg,
                       oe.p90_deg);
                ew_orient_err_free(&oe);
            }
            free(qs);
        }
        fflush(stdout);
        ew_ssl_eval_free(&ei);
        if (ew_ssl_model_step(m) < upto) break; /* training ended before this chunk did */
        ew_ssl_history_free(&h);
    }
    h.steps = steps;
    {
        /* the pseudo-labels of the EMC start */
        ew_quat_t *qs = malloc(n * sizeof *qs);
        ew_orient_err_t oe;
        ew_orient_opts_t oo;
        ew_orient_opts_default(&oo);
        oo.inplane_twin = 1;
        ew_orient_err_t o2;
        if (qs && ew_ssl_pseudo_labels(m, qs, n) == EW_OK && ew_orient_error(s.q, qs, n, &oo, &oe) == EW_OK &&
            ew_orient_error(s.q, qs, n, NULL, &o2) == EW_OK) {
            printf("  pseudo-labels (EMC start, refined): median %.2f deg (90%%: %.2f); twin accepted: %.2f (%.2f)\n",
                   o2.median_deg, o2.p90_deg, oe.median_deg, oe.p90_deg);
            ew_orient_err_free(&oe);
            ew_orient_err_free(&o2);
        } else {
            printf("  pseudo-labels: %s\n", ew_error_message());
        }
        free(qs);
    }
    /* evaluation: truth on the simulator's grid */
    double te0 = ew_time_now();
    if (ew_ssl_evaluate(m, &d, &xm.W, 1, &e) != EW_OK) {
        fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
        return 1;
    }
    double t_eval = ew_time_now() - te0;
    if (getenv("EW_PRINT_LOSS"))
        for (size_t i = 0; i < h.nlog; i += h.nlog / 20 + 1) printf("  loss step %lld: %.5g\n", (long long)h.log[i].step, h.log[i].loss);
    if (png && ew_ssl_history_png(&h, png) != EW_OK) fprintf(stderr, "bench_ssl: %s\n", ew_error_message());
    int gn;
    double gds;
    ew_ssl_model_grid(m, &gn, &gds);
    double l0 = h.nlog ? h.log[0].loss : NAN, l1 = h.nlog ? h.log[h.nlog - 1].loss : NAN;
    printf("ssl benchmark: %s, %dx%d detector, %zu patterns, fluence x%g (%.0f photons/pattern), spread %g, "
           "readout %g\n",
           pdb, det_n, det_n, n, fluence, xs.mean_recorded, spread, readout);
    printf("  preset %s: enc %d^2 width %d, decoder %d grid %d^3, batch %d, epochs %g, %s loss, %d threads\n",
           preset, c.enc_size ? c.enc_size : det_n, c.enc_width, (int)c.decoder, gn, c.batch, c.epochs,
           c.loss == EW_SSL_LOSS_POISSON ? "Poisson" : "MSE", omp_get_max_threads());
    printf("  %-34s %10.1f s\n", "simulation", t_sim);
    printf("  %-34s %10.1f s  (%lld steps, %.1f patterns/s)\n", "training", t_train, (long long)h.steps,
           (double)h.steps * c.batch / t_train);
    printf("  %-34s %10.1f s\n", "evaluation", t_eval);
    printf("  %-34s %10.4g -> %.4g\n", "loss first -> last step", l0, l1);
    printf("  %-34s %10.2f deg (90%%: %.2f, hand %d)\n", "orientation error median", e.median_deg, e.p90_deg,
           e.hand);
    printf("  %-34s %10.2f deg (90%%: %.2f)\n", "  with the in-plane twin accepted", e.median_twin_deg,
           e.p90_twin_deg);
    printf("  %-34s %10.2f deg (90%%: %.2f; twin accepted: median %.2f)\n", "  the encoder alone", e.enc_median_deg,
           e.enc_p90_deg, e.enc_median_twin_deg);
    printf("  %-34s %10.2f deg (90%%: %.2f; first %zu patterns)\n", "  encoder + refinement", e.orient_median_deg,
           e.orient_p90_deg, e.orient_n);
    printf("  %-34s %10.4f 1/A = %.2f of the edge s (align score %.3f)\n", "FSC 0.5 crossing", e.fsc_s05,
           e.fsc_frac_edge, e.align_score);
    printf("  %-34s %10.3f\n", "scale vs true fluence correlation", e.scale_corr);
    printf("{\"bench\": \"ssl\", \"pdb\": \"%s\", \"det\": %d, \"patterns\": %zu, \"fluence\": %g, "
           "\"photons\": %.1f, \"preset\": \"%s\", \"loss\": \"%s\", \"threads\": %d, \"train_s\": %.2f, "
           "\"steps\": %lld, \"median_deg\": %.3f, \"p90_deg\": %.3f, \"median_twin_deg\": %.3f, \"encoder_median_deg\": %.3f, "
           "\"orient_median_deg\": %.3f, \"eval_s\": %.2f, \"fsc05_frac_edge\": %.3f, "
           "\"scale_corr\": %.4f}\n",
           pdb, det_n, n, fluence, xs.mean_recorded, preset, c.loss == EW_SSL_LOSS_POISSON ? "poisson" : "mse",
           omp_get_max_threads(), t_train, (long long)h.steps, e.median_deg, e.p90_deg, e.median_twin_deg, e.enc_median_deg, e.orient_median_deg, t_eval,
           e.fsc_frac_edge, e.scale_corr);
    ew_ssl_eval_free(&e);
    ew_ssl_history_free(&h);
    ew_ssl_model_free(m);
    ew_xfel_model_free(&xm);
    free(s.data);
    free(s.expected);
    free(s.q);
    free(s.fl);
    return 0;
}
