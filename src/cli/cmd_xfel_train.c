/* ewald xfel train: the self-supervised orientation model (src/recon/ssl.h)
 * trained on the patterns of a CXI file. Also home of the CXI loader that
 * `ewald xfel infer` (cmd_xfel_infer.c) shares. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "io/cxi.h"
#include "io/h5vol.h"
#include "io/volume.h"
#include "recon/ssl.h"

void cli_ssl_input_free(cli_ssl_input_t *in)
{
    ew_free(in->data);
    ew_free(in->expected);
    ew_free(in->s);
    ew_free(in->corr);
    ew_free(in->mask);
    ew_free(in->q);
    ew_free(in->fluence);
    memset(in, 0, sizeof *in);
}

/* Read every pattern of path (and the noise-free ones if want_expected and
 * present; the ground truth if present) into in. On error in is empty and
 * the message names the file. */
ew_status_t cli_ssl_input_read(const char *path, int want_expected, cli_ssl_input_t *in)
{
    memset(in, 0, sizeof *in);
    ew_cxi_reader_t *r;
    EW_TRY(ew_cxi_reader_open(path, &r));
    const ew_cxi_geometry_t *g = ew_cxi_reader_geometry(r);
    size_t npix = (size_t)g->width * g->height, n = (size_t)ew_cxi_reader_count(r), total = 0;
    int expected = want_expected && ew_cxi_reader_has_expected(r), truth = ew_cxi_reader_has_truth(r);
    ew_status_t st = ew_size_mul(n, npix, &total);
    if (st == EW_OK && n == 0) st = ew_fail(EW_ERR_FORMAT, "%s: no patterns", path);
    if (st == EW_OK) {
        in->data = ew_alloc_array(total, sizeof *in->data);
        in->expected = expected ? ew_alloc_array(total, sizeof *in->expected) : NULL;
        in->s = ew_alloc_array(npix, 3 * sizeof *in->s);
        in->mask = ew_alloc_array(npix, 1);
        in->corr = ew_alloc_array(npix, sizeof *in->corr);
        in->q = truth ? ew_alloc_array(n, sizeof *in->q) : NULL;
        in->fluence = truth ? ew_alloc_array(n, sizeof *in->fluence) : NULL;
        if (!in->data || (expected && !in->expected) || !in->s || !in->mask || !in->corr ||
            (truth && (!in->q || !in->fluence)))
            st = EW_ERR_NOMEM;
    }
    if (st == EW_OK) st = ew_cxi_read_patterns(r, 0, (long long)n, in->data);
    if (st == EW_OK && expected) st = ew_cxi_read_expected(r, 0, (long long)n, in->expected);
    double *qd = NULL;
    if (st == EW_OK && truth) {
        if (!(qd = ew_alloc_array(n, 4 * sizeof *qd))) st = EW_ERR_NOMEM;
        if (st == EW_OK) st = ew_cxi_read_truth(r, 0, (long long)n, qd, NULL, NULL);
        for (size_t i = 0; st == EW_OK && i < n; i++)
            in->q[i] = (ew_quat_t){qd[4 * i], qd[4 * i + 1], qd[4 * i + 2], qd[4 * i + 3]};
        /* fluence is optional in the truth group: without it no scale correlation */
        if (st == EW_OK && ew_cxi_read_truth(r, 0, (long long)n, NULL, in->fluence, NULL) != EW_OK) {
            ew_free(in->fluence);
            in->fluence = NULL;
        }
    }
    ew_free(qd);
    if (st == EW_OK) {
        memcpy(in->s, g->s, npix * 3 * sizeof *in->s);
        memcpy(in->mask, g->mask, npix);
        for (size_t p = 0; p < npix; p++)
            in->corr[p] = (g->solid_angle ? g->solid_angle[p] : 1.0f) * (g->polarization ? g->polarization[p] : 1.0f);
        /* bad pixels may hold flags (negative, NaN): the model ignores them, keep them finite */
        for (size_t i = 0; i < total; i++)
            if (!(in->data[i] >= 0) && in->mask[i % npix] == 2) in->data[i] = 0;
        in->d = (ew_ssl_data_t){.n = n, .nx = g->width, .ny = g->height, .data = in->data, .expected = in->expected,
                                .s = in->s, .mask = in->mask, .corr = g->solid_angle || g->polarization ? in->corr : NULL,
                                .q_true = in->q, .fluence_true = in->fluence};
    }
    ew_cxi_reader_close(r);
    if (st != EW_OK) cli_ssl_input_free(in);
    return st;
}

/* "w x y z # scale" per pattern: quaternion readers (io/quatfile.h) see four
 * numbers, the scale follows as a comment. Atomic. */
ew_status_t cli_ssl_write_orientations(const char *path, const ew_quat_t *q, const double *scale, size_t n)
{
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    fprintf(f, "# w x y z (particle -> lab) # scale m (pattern photons / model photons at unit scale)\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.9f %.9f %.9f %.9f # %.6g\n", q[i].w, q[i].x, q[i].y, q[i].z, scale[i]);
    return ew_atomic_commit(f, tmp, path);
}

/* The preset named on the command line ("fast" if none). */
static const char *prescan_preset(int argc, char **argv)
{
    const char *p = "fast";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if ((!strcmp(argv[i], "--preset") || !strcmp(argv[i], "-p")) && i + 1 < argc) p = argv[i + 1];
        if (!strncmp(argv[i], "--preset=", 9)) p = argv[i] + 9;
    }
    return p;
}

static ew_status_t write_fsc(const char *path, const ew_ssl_eval_t *e)
{
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    fprintf(f, "# intensity FSC (on sqrt I) of the learned volume vs the truth after alignment; FSC 0.5 at s = %.5g 1/A\n"
               "# s_inv_A d_A fsc\n", e->fsc_s05);
    for (int j = 0; j < e->fsc_n; j++)
        fprintf(f, "%.6g %.6g %.6f\n", e->fsc_s[j], e->fsc_s[j] > 0 ? 1 / e->fsc_s[j] : INFINITY, e->fsc[j]);
    return ew_atomic_commit(f, tmp, path);
}

static const char *const dec_names[] = {"grid", "siren-grid", "siren-pixel", NULL};

int cmd_xfel_train(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    const char *preset = prescan_preset(argc, argv), *preset_opt = preset;
    ew_ssl_config_t c;
    if (ew_ssl_config_preset(&c, preset) != EW_OK) return ew_cli_fail();
    char choices[256] = "";
    for (const ew_ssl_preset_t *p = ew_ssl_presets(); p->name; p++)
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s%s", p == ew_ssl_presets() ? "" : "|", p->name);
    long enc_size = c.enc_size, enc_width = c.enc_width, enc_stages = c.enc_stages, enc_blocks = c.enc_blocks,
         small_stem = c.enc_small_stem, sc_width = c.scale_width, sc_stages = c.scale_stages, sc_blocks = c.scale_blocks,
         grid_n = c.grid_n, s_hidden = c.siren_hidden, s_layers = c.siren_layers, batch = c.batch,
         patches = c.aug_patches, threads = c.threads, ckpt_every = c.ckpt_every, max_steps = (long)c.max_steps,
         scale_fixed = c.scale_fixed, freeze = c.freeze_decoder, search_level = c.search_level, emc_size = c.emc_size,
         emc_lo = c.emc_level_lo, emc_hi = c.emc_level_hi, emc_iters = c.emc_iters, rounds = c.refine_rounds;
    int no_aug = !c.augment, resume = 0;
    const char *decoder = dec_names[c.decoder], *loss = c.loss == EW_SSL_LOSS_POISSON ? "poisson" : "mse";
    const char *prefix = "ssl", *truth = NULL, *init = NULL;
    ew_opt_t opts[] = {
        {"preset", 'p', EW_OPT_CHOICE, &preset_opt, NULL, "starting values of every option below (fast: the default; paper: Chen et al. 2023); command line only", choices, 0, 0, 0},
        {"log-c", 0, EW_OPT_DOUBLE, &c.log_c, "input", "c of the input x = log(c I + 1) (0: 1e14 / photons-per-pulse)", NULL, 0, 0, 1e30},
        {"photons-per-pulse", 0, EW_OPT_DOUBLE, &c.photons_per_pulse, "input", "incident photons per pulse, for the default c", NULL, 0, 0, 1e30},
        {"enc-size", 0, EW_OPT_INT, &enc_size, "input", "encoder input side after average binning, pixels (divides the detector side; 0: unbinned)", NULL, 0, 0, 65536},
        {"no-augment", 0, EW_OPT_FLAG, &no_aug, "input", "train on the recorded patterns even when the CXI file holds noise-free ones", NULL, 0, 0, 0},
        {"aug-sigma", 0, EW_OPT_DOUBLE, &c.aug_sigma, "input", "augmentation: Gaussian noise std added after Poisson noise, photons", NULL, 0, 0, 1e6},
        {"aug-patches", 0, EW_OPT_INT, &patches, "input", "augmentation: occluding patches per 128^2 pixels on the encoder input (0: off)", NULL, 0, 0, 100000},
        {"enc-width", 0, EW_OPT_INT, &enc_width, "encoder", "orientation ResNet: channels of the first stage (64: ResNet-18)", NULL, 0, 1, 4096},
        {"enc-stages", 0, EW_OPT_INT, &enc_stages, "encoder", "orientation ResNet: stages, 1..4", NULL, 0, 1, 4},
        {"enc-blocks", 0, EW_OPT_INT, &enc_blocks, "encoder", "orientation ResNet: basic blocks per stage (2: ResNet-18)", NULL, 0, 1, 64},
        {"enc-small-stem", 0, EW_OPT_INT, &small_stem, "encoder", "1: 3x3 stem without pooling; 0: 7x7/2 + max pool", NULL, 0, 0, 1},
        {"scale-width", 0, EW_OPT_INT, &sc_width, "encoder", "photon-count ResNet: channels of the first stage", NULL, 0, 1, 4096},
        {"scale-stages", 0, EW_OPT_INT, &sc_stages, "encoder", "photon-count ResNet: stages, 1..4", NULL, 0, 1, 4},
        {"scale-blocks", 0, EW_OPT_INT, &sc_blocks, "encoder", "photon-count ResNet: basic blocks per stage", NULL, 0, 1, 64},
        {"scale-fixed", 0, EW_OPT_INT, &scale_fixed, "encoder", "1: no photon-count encoder, every scale m = 1", NULL, 0, 0, 1},
        {"decoder", 0, EW_OPT_CHOICE, &decoder, "decoder", "grid: explicit voxel grid; siren-grid: SIREN on the grid nodes; siren-pixel: SIREN at every pixel (paper)", "grid|siren-grid|siren-pixel", 0, 0, 0},
        {"grid-n", 0, EW_OPT_INT, &grid_n, "decoder", "grid voxels per axis (odd; even -> +1; 0: from the detector's pixel spacing and the EMC binning)", NULL, 0, 0, 257},
        {"smooth", 0, EW_OPT_DOUBLE, &c.smooth, "decoder", "grid smoothness prior weight lambda (mean |grad G|^2)", NULL, 0, 0, 1e6},
        {"siren-hidden", 0, EW_OPT_INT, &s_hidden, "decoder", "SIREN width", NULL, 0, 1, 4096},
        {"siren-layers", 0, EW_OPT_INT, &s_layers, "decoder", "SIREN hidden layers", NULL, 0, 1, 64},
        {"siren-omega", 0, EW_OPT_DOUBLE, &c.siren_omega, "decoder", "SIREN first-layer omega", NULL, 0, 1e-3, 1e4},
        {"freeze-decoder", 0, EW_OPT_INT, &freeze, "decoder", "1: do not train the decoder (with --init-volume: learn orientations only)", NULL, 0, 0, 1},
        {"init-volume", 0, EW_OPT_STRING, &init, "decoder", "start the grid decoder from this intensity (HDF5 reciprocal volume, photons/sr)", NULL, 0, 0, 0},
        {"loss", 0, EW_OPT_CHOICE, &loss, "train", "mse on log(c I + 1), or the Poisson likelihood of the counts", "mse|poisson", 0, 0, 0},
        {"lr", 0, EW_OPT_DOUBLE, &c.lr, "train", "AdamW learning rate of the networks", NULL, 0, 1e-12, 10},
        {"lr-grid", 0, EW_OPT_DOUBLE, &c.lr_grid, "train", "learning rate of the explicit grid values", NULL, 0, 0, 100},
        {"weight-decay", 0, EW_OPT_DOUBLE, &c.weight_decay, "train", "AdamW decoupled weight decay (never on the grid)", NULL, 0, 0, 10},
        {"warmup-frac", 0, EW_OPT_DOUBLE, &c.warmup_frac, "train", "fraction of the steps in linear warm-up (then cosine decay)", NULL, 0, 0, 1},
        {"batch", 'b', EW_OPT_INT, &batch, "train", "patterns per step", NULL, 0, 1, 1e6},
        {"epochs", 'e', EW_OPT_DOUBLE, &c.epochs, "train", "passes over the data set (may be fractional)", NULL, 0, 1e-9, 1e6},
        {"steps", 0, EW_OPT_INT, &max_steps, "train", "stop after this many steps in total (0: no limit)", NULL, 0, 0, 1e12},
        {"c2f-start", 0, EW_OPT_DOUBLE, &c.c2f_start, "train", "coarse-to-fine: first |s| cut as a fraction of the detector edge's |s| (1: off)", NULL, 0, 0, 10},
        {"c2f-frac", 0, EW_OPT_DOUBLE, &c.c2f_frac, "train", "fraction of the steps over which the cut opens to the corner", NULL, 0, 0, 1},
        {"emc-size", 0, EW_OPT_INT, &emc_size, "start", "EMC start: super-pixel grid side; the patterns are binned by max(1, side / this), which must divide the detector side (0: no EMC start, the paper's pure gradient path)", NULL, 0, 0, 65536},
        {"emc-level-lo", 0, EW_OPT_INT, &emc_lo, "start", "EMC start: first 600-cell level of the rotation grid (geom.h; level n has 10 (5 n^3 + n) rotations)", NULL, 0, 1, 12},
        {"emc-level-hi", 0, EW_OPT_INT, &emc_hi, "start", "EMC start: last 600-cell level (covering radius about 50/n degrees at level n)", NULL, 0, 1, 12},
        {"emc-iters", 0, EW_OPT_INT, &emc_iters, "start", "EMC start: iterations per level", NULL, 0, 1, 10000},
        {"refine-deg", 0, EW_OPT_DOUBLE, &c.refine_deg, "start", "first step of the local orientation refinement of pseudo-labels and final orientations, degrees (0: off)", NULL, 0, 0, 45},
        {"refine-rounds", 0, EW_OPT_INT, &rounds, "start", "after EMC: rounds of (refine the pseudo-labels, merge the full-resolution intensity at them)", NULL, 0, 0, 100},
        {"target-frac", 0, EW_OPT_DOUBLE, &c.target_frac, "start", "the orientation encoder regresses onto the pseudo-labels during this first fraction of the steps", NULL, 0, 0, 1},
        {"target-weight", 0, EW_OPT_DOUBLE, &c.target_weight, "start", "weight of that regression (chordal distance)", NULL, 0, 0, 1e6},
        {"search-level", 0, EW_OPT_INT, &search_level, "start", "600-cell level of the exhaustive search used by diagnostics (0: 3)", NULL, 0, 0, 12},
        {"seed", 0, EW_OPT_U64, &c.seed, "train", "random seed (initialisation, batches, augmentation)", NULL, 0, 0, 0},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {"checkpoint-every", 0, EW_OPT_INT, &ckpt_every, "run", "rewrite PREFIX.safetensors every so many steps (0: only at the end)", NULL, 0, 0, 1e12},
        {"resume", 0, EW_OPT_FLAG, &resume, "run", "continue from PREFIX.safetensors (architecture from the file; training options from here)", NULL, 0, 0, 0},
        {"out-prefix", 'o', EW_OPT_STRING, &prefix, "output", "writes PREFIX.safetensors, PREFIX_orientations.txt, PREFIX_intensity.h5, PREFIX_loss.png", NULL, 0, 0, 0},
        {"truth", 0, EW_OPT_STRING, &truth, "output", "true intensity (HDF5 reciprocal volume, e.g. xfel simulate --volume): FSC, PREFIX_fsc.txt", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald xfel train PATTERNS.cxi [options]",
        "Trains the self-supervised orientation model (after Chen et al. 2023; docs/ssl.md): ResNet encoders map "
        "each pattern to a rotation and a photon scale, a decoder holds the 3D intensity in the particle frame, and "
        "the loss compares each pattern with the decoder's slice at the predicted rotation. By default EMC on binned "
        "patterns starts the decoder and gives each pattern a pseudo-label, refined continuously against the "
        "full-resolution intensity, that the orientation encoder learns from. When the CXI file holds "
        "noise-free patterns they are re-noised on the fly (Poisson, Gaussian, occluding patches) unless "
        "--no-augment. Writes the checkpoint (resumable with --resume), each pattern's orientation and scale, the "
        "learned intensity and the loss curve. With ground truth in the CXI file the orientation error is "
        "reported, and with --truth the intensity FSC.",
        "patterns, pixels, preset, params, steps, epochs_done, final_loss, seconds, patterns_per_s, n_vox, ds, "
        "orientation_median_deg, orientation_p90_deg, orientation_hand, orientation_median_twin_deg, "
        "encoder_median_deg, encoder_p90_deg, "
        "scale_corr (with ground truth), fsc_s05_inv_a, fsc_d05_a, fsc_frac_edge, align_score (with --truth), "
        "outputs{model, orientations, intensity, loss_png, fsc}",
        1, 1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (strcmp(preset, preset_opt)) {
        ew_fail(EW_ERR_ARG, "--preset %s: give the preset on the command line (it sets the other defaults)", preset_opt);
        return ew_cli_fail();
    }
    c.enc_size = (int)enc_size, c.enc_width = (int)enc_width, c.enc_stages = (int)enc_stages;
    c.enc_blocks = (int)enc_blocks, c.enc_small_stem = (int)small_stem, c.scale_width = (int)sc_width;
    c.scale_stages = (int)sc_stages, c.scale_blocks = (int)sc_blocks, c.scale_fixed = (int)scale_fixed;
    c.freeze_decoder = (int)freeze, c.grid_n = (int)grid_n, c.siren_hidden = (int)s_hidden, c.siren_layers = (int)s_layers;
    c.batch = (int)batch, c.aug_patches = (int)patches, c.augment = !no_aug, c.threads = (int)threads;
    c.ckpt_every = (int)ckpt_every, c.max_steps = max_steps, c.progress = 1;
    c.search_level = (int)search_level, c.emc_size = (int)emc_size, c.emc_level_lo = (int)emc_lo;
    c.emc_level_hi = (int)emc_hi, c.emc_iters = (int)emc_iters, c.refine_rounds = (int)rounds;
    c.loss = !strcmp(loss, "poisson") ? EW_SSL_LOSS_POISSON : EW_SSL_LOSS_MSE;
    for (int i = 0; dec_names[i]; i++)
        if (!strcmp(decoder, dec_names[i])) c.decoder = (ew_ssl_decoder_t)i;
    char model[1024], orient[1024], vol[1024], png[1024], fsc[1024];
    snprintf(model, sizeof model, "%s.safetensors", prefix);
    snprintf(orient, sizeof orient, "%s_orientations.txt", prefix);
    snprintf(vol, sizeof vol, "%s_intensity.h5", prefix);
    snprintf(png, sizeof png, "%s_loss.png", prefix);
    snprintf(fsc, sizeof fsc, "%s_fsc.txt", prefix);
    c.ckpt_path = model;
    c.resume = resume;

    cli_ssl_input_t in;
    ew_rvol_t wt = {0}, w0 = {0}, learned = {0};
    ew_ssl_model_t *m = NULL;
    ew_ssl_history_t h = {0};
    ew_ssl_eval_t e = {0};
    ew_quat_t *q = NULL;
    double *scale = NULL;
    int written = 0;
    ew_status_t st = cli_ssl_input_read(pos[0], c.augment, &in);
    if (st == EW_OK && truth && !in.q)
        st = ew_fail(EW_ERR_ARG, "--truth %s: the FSC needs the aligned model, but %s has no ground-truth orientations", truth, pos[0]);
    if (st == EW_OK && truth) st = ew_h5vol_read_rvol(truth, &wt, NULL, NULL);
    if (st == EW_OK && init) st = ew_h5vol_read_rvol(init, &w0, NULL, NULL);
    if (st == EW_OK && resume && access(model, R_OK) != 0)
        st = ew_fail(EW_ERR_IO, "--resume: %s: cannot read the checkpoint", model);
    if (st == EW_OK && resume) {
        if ((st = ew_ssl_model_load(model, &in.d, &m)) == EW_OK) {
            ew_ssl_config_t *mc = ew_ssl_model_config(m); /* training options from the command line */
            mc->lr = c.lr, mc->lr_grid = c.lr_grid, mc->weight_decay = c.weight_decay, mc->warmup_frac = c.warmup_frac;
            mc->batch = c.batch, mc->epochs = c.epochs, mc->max_steps = c.max_steps, mc->c2f_start = c.c2f_start;
            mc->c2f_frac = c.c2f_frac, mc->augment = c.augment, mc->aug_sigma = c.aug_sigma, mc->aug_patches = c.aug_patches;
            mc->threads = c.threads, mc->ckpt_path = model, mc->ckpt_every = c.ckpt_every, mc->resume = 1, mc->progress = 1;
            mc->freeze_decoder = c.freeze_decoder, mc->target_frac = c.target_frac, mc->target_weight = c.target_weight;
            mc->refine_deg = c.refine_deg;
        }
    } else if (st == EW_OK) {
        st = ew_ssl_model_create(&c, &in.d, &m);
        if (st == EW_OK && init) st = ew_ssl_model_set_volume(m, &w0);
    }
    size_t n = in.d.n;
    if (st == EW_OK) {
        int gn;
        double gds;
        ew_ssl_model_grid(m, &gn, &gds);
        printf("%s: %zu patterns of %d x %d pixels%s; model (%s%s) %zu parameters, grid %d^3 of %.5g 1/A\n", pos[0],
               n, in.d.nx, in.d.ny, in.expected ? ", noise-free patterns for augmentation" : "",
               resume ? "resumed from " : "preset ", resume ? model : preset, ew_ssl_model_nparams(m), gn, gds);
        fflush(stdout);
        st = ew_ssl_train(m, &in.d, &h);
    }
    if (st == EW_OK) {
        q = ew_alloc_array(n, sizeof *q);
        scale = ew_alloc_array(n, sizeof *scale);
        st = q && scale ? ew_ssl_orient(m, &in.d, q, scale) : EW_ERR_NOMEM;
    }
    if (st == EW_OK && in.q) st = ew_ssl_evaluate(m, &in.d, truth ? &wt : NULL, 1, &e);
    if (st == EW_OK) st = ew_ssl_volume(m, &learned);
    if (st == EW_OK && (st = cli_ssl_write_orientations(orient, q, scale, n)) == EW_OK) written = 1;
    if (st == EW_OK && (st = ew_h5vol_write_rvol(vol, &learned, "photons/sr", NULL)) == EW_OK) written = 2;
    if (st == EW_OK && h.nlog > 0 && (st = ew_ssl_history_png(&h, png)) == EW_OK) written = 3;
    if (st == EW_OK && truth) st = write_fsc(fsc, &e);
    if (st != EW_OK) { /* no partial set of outputs (the checkpoint stays: it is for --resume) */
        if (written >= 1) remove(orient);
        if (written >= 2) remove(vol);
        if (written >= 3) remove(png);
    }
    if (st == EW_OK) {
        double last = h.nlog ? h.log[h.nlog - 1].loss : NAN;
        double pps = h.seconds > 0 ? (double)h.steps * ew_ssl_model_config(m)->batch / h.seconds : 0;
        printf("  %lld steps in %.1f s (%.0f patterns/s), total %lld, last loss %.5g\n", (long long)h.steps,
               h.seconds, pps, (long long)ew_ssl_model_step(m), last);
        if (in.q)
            printf("  orientation error vs ground truth: median %.2f, p90 %.2f degrees (hand %d); with in-plane twin: "
                   "median %.2f degrees; scale corr %.3f\n  (the encoder alone, before refinement: median %.2f, p90 %.2f "
                   "degrees)\n", e.median_deg, e.p90_deg, e.hand, e.median_twin_deg, e.scale_corr, e.enc_median_deg, e.enc_p90_deg);
        if (truth)
            printf("  intensity FSC vs %s: 0.5 at s = %.4g 1/A (%.3g of the detector edge), %.2f A\n", truth, e.fsc_s05,
                   e.fsc_frac_edge, e.fsc_s05 > 0 ? 1 / e.fsc_s05 : INFINITY);
        printf("wrote %s, %s, %s%s%s%s%s\n", model, orient, vol, h.nlog ? ", " : "", h.nlog ? png : "",
               truth ? ", " : "", truth ? fsc : "");
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "patterns", (double)n);
            cJSON_AddNumberToObject(js, "pixels", (double)in.d.nx * in.d.ny);
            cJSON_AddStringToObject(js, "preset", preset);
            ew_cli_params_to_json(opts, cJSON_AddObjectToObject(js, "params"));
            cJSON_AddNumberToObject(js, "steps", (double)ew_ssl_model_step(m));
            cJSON_AddNumberToObject(js, "epochs_done", h.nlog ? h.log[h.nlog - 1].epoch : 0);
            cJSON_AddNumberToObject(js, "final_loss", isfinite(last) ? last : 0);
            cJSON_AddNumberToObject(js, "seconds", h.seconds);
            cJSON_AddNumberToObject(js, "patterns_per_s", pps);
            cJSON_AddNumberToObject(js, "n_vox", learned.n);
            cJSON_AddNumberToObject(js, "ds", learned.ds);
            if (in.q) {
                cJSON_AddNumberToObject(js, "orientation_median_deg", e.median_deg);
                cJSON_AddNumberToObject(js, "orientation_p90_deg", e.p90_deg);
                cJSON_AddNumberToObject(js, "orientation_hand", e.hand);
                cJSON_AddNumberToObject(js, "orientation_median_twin_deg", e.median_twin_deg);
                cJSON_AddNumberToObject(js, "encoder_median_deg", e.enc_median_deg);
                cJSON_AddNumberToObject(js, "encoder_p90_deg", e.enc_p90_deg);
                if (isfinite(e.scale_corr)) cJSON_AddNumberToObject(js, "scale_corr", e.scale_corr);
            }
            if (truth) {
                cJSON_AddNumberToObject(js, "fsc_s05_inv_a", e.fsc_s05);
                cJSON_AddNumberToObject(js, "fsc_d05_a", e.fsc_s05 > 0 ? 1 / e.fsc_s05 : 0);
                cJSON_AddNumberToObject(js, "fsc_frac_edge", e.fsc_frac_edge);
                cJSON_AddNumberToObject(js, "align_score", e.align_score);
            }
            cJSON *o = cJSON_AddObjectToObject(js, "outputs");
            cJSON_AddStringToObject(o, "model", model);
            cJSON_AddStringToObject(o, "orientations", orient);
            cJSON_AddStringToObject(o, "intensity", vol);
            if (h.nlog) cJSON_AddStringToObject(o, "loss_png", png);
            if (truth) cJSON_AddStringToObject(o, "fsc", fsc);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_ssl_eval_free(&e);
    ew_ssl_history_free(&h);
    ew_rvol_free(&learned);
    ew_rvol_free(&wt);
    ew_rvol_free(&w0);
    ew_free(q);
    ew_free(scale);
    ew_ssl_model_free(m);
    cli_ssl_input_free(&in);
    return st == EW_OK ? 0 : ew_cli_fail();
}
