/* Benchmark: the noise-translation demo (ewald em noise train) on CPUs.
 * Simulates GenEM-preset micrographs (projection + CTF + white Gaussian
 * noise) of 2cex at the real data's pixel size (1.31 A), takes the 7 real
 * EMPIAR-10076 particle images as the real domain, trains CUT with
 * mask-guided sampling and, as the ablation, with plain CUT sampling at the
 * same budget, and prints the noise-realism and content figures.
 *
 *   bench_cut [--json] [--steps N] [--lambda-nce X] [--lr X] [--snr X] [--layers 0,4,8,12,16] [--no-skip] [--plain] [--mics N] [--size N] [--particles N] [--crop N] [--batch N]
 *             [--ngf N] [--blocks N] [--threads N] [--no-ablation] [--out DIR] [--pdb P] [--real P]
 *
 * Prints a table and, last, one JSON object. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen/gen.h"
#include "io/structure.h"
#include "nn/threads.h"
#include "physics/em_sim.h"

static void prefer_passive_wait(char **argv)
{
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
}

static void row(const char *name, const ew_cut_metrics_t *m)
{
    printf("%-12s %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f %8.3f %8.3f %9.3f %9.2f\n", name,
           m->psd_translated, m->psd_simulated, m->psd_band_translated, m->psd_band_simulated, m->hist_w1_translated, m->hist_w1_simulated, m->hist_js_translated,
           m->hist_js_simulated, m->content_translated, m->content_simulated, m->seconds_per_step, m->seconds);
}

int main(int argc, char **argv)
{
    prefer_passive_wait(argv);
    int steps = 1200, mics = 8, size = 512, particles = 12, crop = 64, batch = 2, ngf = 16, blocks = 6, threads = 2;
    int ablation = 1, skip = 1;
    double lambda_nce = 1.0, lr = 2e-4, snr = 0.1;
    int plain_only = 0;
    const char *layers = NULL;
    const char *out = NULL, *pdb = "../shared/data/pdb/2cex.pdb", *real = "../shared/data/cryoem/empiar_10076_7.mrc";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) continue;
        else if (!strcmp(argv[i], "--no-ablation")) ablation = 0;
        else if (!strcmp(argv[i], "--no-skip")) skip = 0;
        else if (!strcmp(argv[i], "--plain")) plain_only = 1, ablation = 0;
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--lambda-nce")) lambda_nce = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--lr")) lr = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--layers")) layers = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--snr")) snr = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--mics")) mics = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--size")) size = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--particles")) particles = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--crop")) crop = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--ngf")) ngf = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--blocks")) blocks = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--out")) out = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--pdb")) pdb = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--real")) real = argv[++i];
        else {
            fprintf(stderr, "bench_cut: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    omp_set_num_threads(threads);
    ew_nn_set_threads(EW_NN_THREADS_OMP, threads);
    ew_structure_t st;
    ew_cut_set_t sim, rl;
    ew_cut_set_init(&sim);
    ew_cut_set_init(&rl);
    double pixel = 0.0;
    if (ew_structure_read(pdb, NULL, &st) != EW_OK || ew_cut_set_add_real_mrc(&rl, real, &pixel) != EW_OK) {
        printf("bench_cut: %s (skipped)\n", ew_error_message());
        printf("{\"bench\": \"cut\", \"skipped\": true}\n");
        return 0;
    }
    if (!(pixel > 0.5)) pixel = 1.31; /* EMPIAR-10076 file has cell 0: 5 um / 38168 */
    /* simulated domain */
    ew_em_config_t c;
    ew_em_config_default(&c);
    c.nx = c.ny = size;
    c.pixel = pixel;
    c.mode = EW_EM_GENEM;
    c.specimen.count_mean = particles;
    c.n_micrographs = (size_t)mics;
    c.seed = 7;
    c.snr = snr;
    double t0 = ew_time_now();
    ew_em_sim_t *es;
    if (ew_em_sim_create(&c, &st, 1, &es) != EW_OK) {
        fprintf(stderr, "bench_cut: %s\n", ew_error_message());
        return 1;
    }
    size_t nparts = 0;
    for (int k = 0; k < mics; k++) {
        ew_em_micrograph_t m;
        if (ew_em_sim_run(es, (size_t)k, &m) != EW_OK ||
            ew_cut_set_add(&sim, m.micrograph, m.mask, m.clean, m.nx, m.ny) != EW_OK) {
            fprintf(stderr, "bench_cut: %s\n", ew_error_message());
            return 1;
        }
        nparts += m.n_particles;
        ew_em_micrograph_free(&m);
    }
    ew_em_sim_destroy(es);
    const double sim_s = ew_time_now() - t0;
    ew_cut_config_t cfg;
    ew_cut_config_default(&cfg);
    cfg.steps = steps;
    cfg.crop = crop;
    cfg.batch = batch;
    cfg.ngf = ngf;
    cfg.ndf = ngf;
    cfg.n_blocks = blocks;
    cfg.pixel = pixel;
    cfg.lambda_nce = lambda_nce;
    cfg.lr = lr;
    cfg.identity_skip = skip;
    if (layers) {
        cfg.n_nce_layers = 0;
        for (const char *p = layers; p && *p && cfg.n_nce_layers < EW_CUT_MAX_TAPS; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
            cfg.nce_layers[cfg.n_nce_layers++] = atoi(p);
    }
    cfg.outdir = out;
    cfg.sample_every = steps / 4 > 0 ? steps / 4 : 0;
    cfg.checkpoint_every = 0;
    ew_cut_model_t *model = NULL;
    size_t ng = 0, nd = 0, nf = 0;
    if (ew_cut_model_create(&cfg, &model) == EW_OK) ew_cut_model_counts(model, &ng, &nd, &nf);
    ew_cut_model_free(model);
    printf("cut: %d GenEM micrographs %d x %d of %s at %.3f A/px (%zu particles, simulated in %.1f s); real: %s "
           "(%zu images)\n", mics, size, size, pdb, pixel, nparts, sim_s, real, rl.n);
    printf("model: ngf %d, %d blocks, ndf %d, params G %zu D %zu F %zu; crop %d, batch %d, %d steps, %d threads, "
           "lambda_NCE %g, nce_idt %d, identity skip %d, lr %g, sim SNR %g\n", ngf, blocks, ngf, ng, nd, nf, crop,
           batch, steps, threads, cfg.lambda_nce, cfg.nce_idt, cfg.identity_skip, cfg.lr, snr);
    ew_cut_metrics_t mm = {0}, mp = {0};
    if (plain_only) cfg.sampling = EW_CUT_SAMPLE_PLAIN;
    if (ew_cut_train(&cfg, &sim, &rl, NULL, &mm) != EW_OK) {
        fprintf(stderr, "bench_cut: %s\n", ew_error_message());
        return 1;
    }
    if (ablation) {
        cfg.sampling = EW_CUT_SAMPLE_PLAIN;
        cfg.outdir = NULL;
        if (ew_cut_train(&cfg, &sim, &rl, NULL, &mp) != EW_OK) {
            fprintf(stderr, "bench_cut: %s\n", ew_error_message());
            return 1;
        }
    }
    printf("\n%-12s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %9s %9s\n", "sampling", "PSD tr", "PSD sim", "band tr",
           "band sim", "W1 tr", "W1 sim",
           "JS tr", "JS sim", "corr tr", "corr sim", "s/step", "train s");
    row(plain_only ? "plain CUT" : "mask-guided", &mm);
    if (ablation) row("plain CUT", &mp);
    printf("PSD: rms log10 ratio of radially averaged power spectra to the real images' (%d crops %d px), all rings "
           "and (band) f >= 1/20 A only; "
           "W1/JS: histogram distances to real; corr: low-passed (20 A) image vs clean, inside particle masks\n",
           cfg.eval_crops, cfg.eval_size);
    printf("losses (first 10%% -> last 10%%): D %.3f -> %.3f, G_GAN %.3f -> %.3f, NCE %.3f -> %.3f\n",
           mm.loss_d_first, mm.loss_d_last, mm.loss_gan_first, mm.loss_gan_last, mm.loss_nce_first,
           mm.loss_nce_last);
    printf("{\"bench\": \"cut\", \"steps\": %d, \"crop\": %d, \"batch\": %d, \"ngf\": %d, \"blocks\": %d, "
           "\"threads\": %d, \"train_s\": %.1f, \"s_per_step\": %.4f, \"psd_translated\": %.4f, "
           "\"psd_simulated\": %.4f, \"psd_ratio\": %.2f, \"psd_band_translated\": %.4f, "
           "\"psd_band_simulated\": %.4f, \"hist_w1_translated\": %.4f, \"hist_w1_simulated\": %.4f, "
           "\"content_translated\": %.3f, \"content_simulated\": %.3f, \"plain_psd_translated\": %.4f, "
           "\"plain_content_translated\": %.3f, \"plain_train_s\": %.1f}\n",
           steps, crop, batch, ngf, blocks, threads, mm.seconds, mm.seconds_per_step, mm.psd_translated,
           mm.psd_simulated, mm.psd_simulated / mm.psd_translated, mm.psd_band_translated, mm.psd_band_simulated,
           mm.hist_w1_translated, mm.hist_w1_simulated,
           mm.content_translated, mm.content_simulated, ablation ? mp.psd_translated : -1.0,
           ablation ? mp.content_translated : -1.0, ablation ? mp.seconds : -1.0);
    ew_free(mm.history);
    ew_free(mp.history);
    ew_cut_set_free(&sim);
    ew_cut_set_free(&rl);
    ew_structure_free(&st);
    return 0;
}
