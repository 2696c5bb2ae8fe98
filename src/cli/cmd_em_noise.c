/* ewald em noise train|apply: unpaired translation of simulated cryo-EM
 * micrographs toward real ones (CUT with mask-guided PatchNCE,
 * src/gen/gen.h). Also home of the path-list helpers that `ewald em pick`
 * (cmd_em_pick.c) shares. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "gen/gen.h"
#include "io/mrc.h"
#include "io/star.h"

void cli_paths_free(cli_paths_t *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

ew_status_t cli_paths_add(cli_paths_t *p, const char *s)
{
    char *d = strdup(s);
    if (!d) return ew_fail(EW_ERR_NOMEM, "out of memory for a path");
    ew_status_t st = ew_grow((void **)&p->v, &p->cap, p->n + 1, sizeof *p->v);
    if (st != EW_OK) {
        free(d);
        return st;
    }
    p->v[p->n++] = d;
    return EW_OK;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The micrographs of a folder written by `ewald em simulate` (the
 * rlnMicrographName of DIR/micrographs.star, relative to DIR), or else
 * every *.mrc / *.mrcs file directly in DIR (sorted) that is not a
 * simulator by-product (_mask, _clean, _projection, _thickness). */
ew_status_t cli_paths_add_dir(cli_paths_t *p, const char *dir)
{
    char star[1200], path[2400];
    snprintf(star, sizeof star, "%s/micrographs.star", dir);
    if (access(star, R_OK) == 0) {
        ew_star_t s;
        ew_star_col_t col;
        EW_TRY(ew_star_read(star, &s));
        ew_status_t st = ew_star_column(&s, "micrographs", "rlnMicrographName", &col);
        for (size_t r = 0; st == EW_OK && r < ew_star_rows(&col); r++) {
            snprintf(path, sizeof path, "%s/%s", dir, ew_star_get_string(&col, r));
            st = cli_paths_add(p, path);
        }
        ew_star_free(&s);
        return st;
    }
    DIR *d = opendir(dir);
    if (!d) return ew_fail(EW_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    size_t first = p->n;
    ew_status_t st = EW_OK;
    for (struct dirent *e; st == EW_OK && (e = readdir(d));) {
        const char *n = e->d_name;
        if (n[0] == '.' || !ew_cli_ext_is(n, "mrc|mrcs") || strstr(n, "_mask.") || strstr(n, "_clean.") ||
            strstr(n, "_projection.") || strstr(n, "_thickness."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, n);
        st = cli_paths_add(p, path);
    }
    closedir(d);
    if (st == EW_OK && p->n == first) st = ew_fail(EW_ERR_ARG, "%s: no micrographs.star and no .mrc/.mrcs files", dir);
    if (st == EW_OK) qsort(p->v + first, p->n - first, sizeof *p->v, cmp_str);
    return st;
}

/* Add the items of a comma-separated list: folders as cli_paths_add_dir,
 * files as they are. */
ew_status_t cli_paths_add_list(cli_paths_t *p, const char *list)
{
    char *buf = strdup(list);
    if (!buf) return ew_fail(EW_ERR_NOMEM, "out of memory for a path list");
    ew_status_t st = EW_OK;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); st == EW_OK && tok; tok = strtok_r(NULL, ",", &save))
        st = is_dir(tok) ? cli_paths_add_dir(p, tok) : cli_paths_add(p, tok);
    free(buf);
    return st;
}

/* mkdir -p of the folder part of path. */
static ew_status_t make_parent(const char *path)
{
    char buf[2400];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *c = buf + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return ew_fail(EW_ERR_IO, "%s: cannot create: %s", buf, strerror(errno));
        *c = '/';
    }
    return EW_OK;
}

static ew_status_t copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *f;
    if (!in) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", from, strerror(errno));
    char *tmp, buf[65536];
    ew_status_t st = ew_atomic_open(to, &f, &tmp);
    for (size_t k; st == EW_OK && (k = fread(buf, 1, sizeof buf, in)) > 0;) fwrite(buf, 1, k, f);
    fclose(in);
    return st == EW_OK ? ew_atomic_commit(f, tmp, to) : st;
}

int cmd_em_noise_train(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0, plain = 0, no_skip = 0, no_flip = 0, idt = 0;
    char **pos;
    ew_cut_config_t c;
    ew_cut_config_default(&c);
    c.outdir = "noise_model";
    c.pixel = 0;
    long ngf = c.ngf, nblocks = c.n_blocks, ndf = c.ndf, nld = c.n_layers_d, mlp = c.mlp_dim, np_ = c.num_patches,
         crop = c.crop, batch = c.batch, steps = (long)c.steps, sample_every = (long)c.sample_every,
         ckpt_every = (long)c.checkpoint_every, eval_crops = c.eval_crops, eval_size = c.eval_size, threads = 0;
    char layers_def[64] = "";
    for (int i = 0; i < c.n_nce_layers; i++)
        snprintf(layers_def + strlen(layers_def), sizeof layers_def - strlen(layers_def), "%s%d", i ? "," : "", c.nce_layers[i]);
    const char *sim = NULL, *masks = NULL, *real = NULL, *layers = layers_def;
    ew_opt_t opts[] = {
        {"sim", 's', EW_OPT_STRING, &sim, "data", "simulated micrographs: an `em simulate` folder, or MRC files (comma-separated)", NULL, 1, 0, 0},
        {"masks", 0, EW_OPT_STRING, &masks, "data", "their particle masks, comma-separated (default: X_mask.mrc beside each X.mrc)", NULL, 0, 0, 0},
        {"real", 'r', EW_OPT_STRING, &real, "data", "real micrographs/stacks: MRC files or folders, comma-separated (also positional)", NULL, 0, 0, 0},
        {"pixel", 0, EW_OPT_DOUBLE, &c.pixel, "data", "pixel size of both domains, Angstrom (0: the real files' header)", NULL, 0, 0, 100},
        {"ngf", 0, EW_OPT_INT, &ngf, "model", "generator width (CUT: 64)", NULL, 0, 1, 1024},
        {"n-blocks", 0, EW_OPT_INT, &nblocks, "model", "generator residual blocks (CUT: 9)", NULL, 0, 0, 64},
        {"ndf", 0, EW_OPT_INT, &ndf, "model", "discriminator width (CUT: 64)", NULL, 0, 1, 1024},
        {"n-layers-d", 0, EW_OPT_INT, &nld, "model", "PatchGAN stride-2 layers (3: 70x70 receptive field)", NULL, 0, 1, 8},
        {"no-identity-skip", 0, EW_OPT_FLAG, &no_skip, "model", "CUT's plain tanh output instead of starting from the identity", NULL, 0, 0, 0},
        {"nce-layers", 0, EW_OPT_STRING, &layers, "nce", "CUT module indices of the PatchNCE features, comma-separated", NULL, 0, 0, 0},
        {"mlp-dim", 0, EW_OPT_INT, &mlp, "nce", "MLP head width", NULL, 0, 1, 8192},
        {"num-patches", 0, EW_OPT_INT, &np_, "nce", "locations per image and layer", NULL, 0, 2, 65536},
        {"nce-t", 0, EW_OPT_DOUBLE, &c.nce_t, "nce", "PatchNCE temperature", NULL, 0, 1e-6, 100},
        {"plain", 0, EW_OPT_FLAG, &plain, "nce", "CUT's uniform sampling instead of GenEM's particle/background split", NULL, 0, 0, 0},
        {"nce-idt", 0, EW_OPT_FLAG, &idt, "nce", "CUT's identity PatchNCE on real images too", NULL, 0, 0, 0},
        {"lambda-gan", 0, EW_OPT_DOUBLE, &c.lambda_gan, "loss", "GAN loss weight", NULL, 0, 0, 1e6},
        {"lambda-nce", 0, EW_OPT_DOUBLE, &c.lambda_nce, "loss", "PatchNCE loss weight (FastCUT, CryoGEM: 10)", NULL, 0, 0, 1e6},
        {"lr", 0, EW_OPT_DOUBLE, &c.lr, "train", "Adam learning rate", NULL, 0, 1e-12, 10},
        {"beta1", 0, EW_OPT_DOUBLE, &c.beta1, "train", "Adam beta1", NULL, 0, 0, 0.999999},
        {"beta2", 0, EW_OPT_DOUBLE, &c.beta2, "train", "Adam beta2", NULL, 0, 0, 0.999999},
        {"crop", 0, EW_OPT_INT, &crop, "train", "training crop side, pixels (multiple of 4)", NULL, 0, 16, 4096},
        {"batch", 'b', EW_OPT_INT, &batch, "train", "crops per step per domain", NULL, 0, 1, 4096},
        {"steps", 'n', EW_OPT_INT, &steps, "train", "optimizer steps", NULL, 0, 1, 1e12},
        {"no-flip", 0, EW_OPT_FLAG, &no_flip, "train", "no random flips of the crops", NULL, 0, 0, 0},
        {"min-particle-fraction", 0, EW_OPT_DOUBLE, &c.min_particle_fraction, "train", "a simulated crop holds at least this fraction of mask pixels (50 draws)", NULL, 0, 0, 1},
        {"clip-sd", 0, EW_OPT_DOUBLE, &c.clip_sd, "train", "network units = clamp(z / clip-sd, -1, 1), z the z-scored image", NULL, 0, 0.1, 100},
        {"seed", 0, EW_OPT_U64, &c.seed, "train", "random seed (initialisation, crops, sampling)", NULL, 0, 0, 0},
        {"eval-crops", 0, EW_OPT_INT, &eval_crops, "eval", "crops per domain for the metrics", NULL, 0, 1, 1e6},
        {"eval-size", 0, EW_OPT_INT, &eval_size, "eval", "their side, pixels (multiple of 4)", NULL, 0, 16, 8192},
        {"lowpass", 0, EW_OPT_DOUBLE, &c.lowpass_A, "eval", "content metric low-pass: Gaussian with half power at 1 / this, Angstrom", NULL, 0, 0, 1e5},
        {"outdir", 'o', EW_OPT_STRING, &c.outdir, "output", "cut.safetensors, samples/step_N.png, metrics.json, psd_*.txt", NULL, 0, 0, 0},
        {"sample-every", 0, EW_OPT_INT, &sample_every, "output", "sample montage every so many steps (0: only at the end)", NULL, 0, 0, 1e12},
        {"checkpoint-every", 0, EW_OPT_INT, &ckpt_every, "output", "checkpoint every so many steps (0: only at the end)", NULL, 0, 0, 1e12},
        {"resume", 0, EW_OPT_STRING, &c.resume, "run", "continue exactly from this checkpoint (e.g. OUTDIR/cut.safetensors)", NULL, 0, 0, 0},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald em noise train --sim SIM [--real REAL,...] [REAL...] [options]",
        "Trains an unpaired image-to-image translation from simulated to real micrographs (CUT, Park et al. 2020, "
        "with GenEM's mask-guided PatchNCE: particle anchors contrast with background locations; "
        "docs/noise-translation.md). SIM is an `ewald em simulate` output folder (micrographs with their _mask "
        "and _clean maps) or a list of micrographs with masks; REAL are real micrographs or particle stacks at the "
        "same pixel size. Writes under --outdir the checkpoint, sample montages and the noise-realism and content "
        "metrics, which are also printed.",
        "sim_images, real_images, pixel, steps, seconds, seconds_per_step, psd_translated, psd_simulated, "
        "psd_band_translated, psd_band_simulated, "
        "hist_w1_translated, hist_w1_simulated, hist_js_translated, hist_js_simulated, content_translated, "
        "content_simulated, loss_d_first, loss_d_last, loss_gan_first, loss_gan_last, loss_nce_first, loss_nce_last, "
        "params{every option}, outputs{model, outdir}",
        0, -1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (threads > 0) omp_set_num_threads((int)threads);
    c.ngf = (int)ngf, c.n_blocks = (int)nblocks, c.ndf = (int)ndf, c.n_layers_d = (int)nld, c.mlp_dim = (int)mlp;
    c.num_patches = (int)np_, c.crop = (int)crop, c.batch = (int)batch, c.steps = steps, c.flip = !no_flip;
    c.sample_every = sample_every, c.checkpoint_every = ckpt_every, c.eval_crops = (int)eval_crops;
    c.eval_size = (int)eval_size, c.identity_skip = !no_skip, c.nce_idt = idt, c.progress = 1;
    c.sampling = plain ? EW_CUT_SAMPLE_PLAIN : EW_CUT_SAMPLE_MASK;
    ew_status_t st = EW_OK;
    c.n_nce_layers = 0;
    for (const char *p = layers; st == EW_OK && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || c.n_nce_layers == EW_CUT_MAX_TAPS || (*end && *end != ','))
            st = ew_fail(EW_ERR_ARG, "--nce-layers '%s': expected up to %d non-negative integers, comma-separated", layers, EW_CUT_MAX_TAPS);
        else
            c.nce_layers[c.n_nce_layers++] = (int)v, p = *end ? end + 1 : end;
    }
    cli_paths_t sp = {0}, mp = {0}, rp = {0};
    ew_cut_set_t ss, rs;
    ew_cut_set_init(&ss);
    ew_cut_set_init(&rs);
    if (st == EW_OK) st = cli_paths_add_list(&sp, sim);
    if (st == EW_OK && masks) st = cli_paths_add_list(&mp, masks);
    if (st == EW_OK && real) st = cli_paths_add_list(&rp, real);
    for (int i = 0; st == EW_OK && i < npos; i++) st = is_dir(pos[i]) ? cli_paths_add_dir(&rp, pos[i]) : cli_paths_add(&rp, pos[i]);
    if (st == EW_OK && rp.n == 0) st = ew_fail(EW_ERR_ARG, "no real micrographs: give --real FILES or positional files");
    if (st == EW_OK && masks && mp.n != sp.n)
        st = ew_fail(EW_ERR_ARG, "--masks: %zu files for %zu simulated micrographs", mp.n, sp.n);
    for (size_t i = 0; st == EW_OK && i < sp.n; i++) {
        char mask[2400], clean[2400];
        ew_cli_replace_ext(sp.v[i], "_mask.mrc", mask, sizeof mask);
        ew_cli_replace_ext(sp.v[i], "_clean.mrc", clean, sizeof clean);
        st = ew_cut_set_add_sim_mrc(&ss, sp.v[i], masks ? mp.v[i] : mask, access(clean, R_OK) == 0 ? clean : NULL);
    }
    double px_real = 0;
    for (size_t i = 0; st == EW_OK && i < rp.n; i++) {
        double px = 0;
        if ((st = ew_cut_set_add_real_mrc(&rs, rp.v[i], &px)) == EW_OK && px > 0 && px_real <= 0) px_real = px;
    }
    if (st == EW_OK && c.pixel <= 0) c.pixel = px_real;
    if (st == EW_OK && !(c.pixel > 0))
        st = ew_fail(EW_ERR_ARG, "%s: no pixel size in the header: give --pixel (Angstrom)", rp.v[0]);
    ew_mrc_header_t h;
    if (st == EW_OK && ew_mrc_header_read(sp.v[0], &h) == EW_OK && h.pixel_size[0] > 0 &&
        fabs(h.pixel_size[0] - c.pixel) > 0.02 * c.pixel)
        ew_warn("%s: pixel %.4g A, but the real images' is %.4g A: simulate at the real pixel size", sp.v[0],
                h.pixel_size[0], c.pixel);
    if (st == EW_OK) st = ew_cut_config_check(&c);
    ew_cut_metrics_t met;
    memset(&met, 0, sizeof met);
    char model[1200];
    snprintf(model, sizeof model, "%s/cut.safetensors", c.outdir);
    if (st == EW_OK) {
        printf("%zu simulated and %zu real images of %.4g A pixels; %lld steps of %d + %d crops of %d^2\n", ss.n, rs.n,
               c.pixel, (long long)c.steps, c.batch, c.batch, c.crop);
        fflush(stdout);
        st = ew_cut_train(&c, &ss, &rs, NULL, &met);
    }
    if (st == EW_OK) {
        printf("  %lld steps in %.1f s (%.3f s/step); loss D %.4g -> %.4g, GAN %.4g -> %.4g, NCE %.4g -> %.4g\n",
               (long long)met.steps, met.seconds, met.seconds_per_step, met.loss_d_first, met.loss_d_last,
               met.loss_gan_first, met.loss_gan_last, met.loss_nce_first, met.loss_nce_last);
        printf("  vs real: PSD log10 rms %.4f translated / %.4f simulated (above 1/%g A: %.4f / %.4f); histogram W1 "
               "%.4f / %.4f, JS %.4f / %.4f\n", met.psd_translated, met.psd_simulated, c.lowpass_A, met.psd_band_translated,
               met.psd_band_simulated, met.hist_w1_translated, met.hist_w1_simulated, met.hist_js_translated,
               met.hist_js_simulated);
        printf("  content (low-passed corr with the clean image in the mask): %.4f translated / %.4f simulated (%d crops)\n",
               met.content_translated, met.content_simulated, met.content_crops);
        printf("wrote %s/ (cut.safetensors, samples/, metrics.json, psd_*.txt)\n", c.outdir);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "sim_images", (double)ss.n);
            cJSON_AddNumberToObject(js, "real_images", (double)rs.n);
            cJSON_AddNumberToObject(js, "pixel", c.pixel);
            cJSON_AddNumberToObject(js, "steps", (double)met.steps);
            cJSON_AddNumberToObject(js, "seconds", met.seconds);
            cJSON_AddNumberToObject(js, "seconds_per_step", met.seconds_per_step);
            const char *k[] = {"psd_translated", "psd_simulated", "psd_band_translated", "psd_band_simulated",
                               "hist_w1_translated", "hist_w1_simulated", "hist_js_translated", "hist_js_simulated",
                               "content_translated", "content_simulated", "loss_d_first", "loss_d_last",
                               "loss_gan_first", "loss_gan_last", "loss_nce_first", "loss_nce_last"};
            double v[] = {met.psd_translated, met.psd_simulated, met.psd_band_translated, met.psd_band_simulated,
                          met.hist_w1_translated, met.hist_w1_simulated, met.hist_js_translated, met.hist_js_simulated,
                          met.content_translated, met.content_simulated, met.loss_d_first, met.loss_d_last,
                          met.loss_gan_first, met.loss_gan_last, met.loss_nce_first, met.loss_nce_last};
            for (size_t i = 0; i < sizeof v / sizeof *v; i++)
                if (isfinite(v[i])) cJSON_AddNumberToObject(js, k[i], v[i]);
            ew_cli_params_to_json(opts, cJSON_AddObjectToObject(js, "params"));
            cJSON *o = cJSON_AddObjectToObject(js, "outputs");
            cJSON_AddStringToObject(o, "model", model);
            cJSON_AddStringToObject(o, "outdir", c.outdir);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_free(met.history);
    ew_cut_set_free(&ss);
    ew_cut_set_free(&rs);
    cli_paths_free(&sp);
    cli_paths_free(&mp);
    cli_paths_free(&rp);
    return st == EW_OK ? 0 : ew_cli_fail();
}

int cmd_em_noise_apply(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0, png = 0;
    long threads = 0;
    char **pos;
    const char *outdir = NULL;
    ew_opt_t opts[] = {
        {"out", 'o', EW_OPT_STRING, &outdir, "output", "output folder (an `em simulate` folder keeps its layout and STAR files)", NULL, 1, 0, 0},
        {"png", 0, EW_OPT_FLAG, &png, "output", "8-bit PNG preview of each output's first section beside it", NULL, 0, 0, 0},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald em noise apply MODEL.safetensors SIM... --out DIR [options]",
        "Translates simulated micrographs or particle stacks (MRC) with a model from `ewald em noise train`, in "
        "256-pixel tiles with 32-pixel overlap, each image keeping its mean and standard deviation. SIM may be "
        "files or an `ewald em simulate` folder: then its micrographs and particles.mrcs are translated into the "
        "same layout under DIR and its STAR files copied, so DIR can replace it for picking and reconstruction.",
        "files, seconds, outdir, outputs[paths]",
        2, -1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (threads > 0) omp_set_num_threads((int)threads);
    cli_paths_t in = {0}, out = {0}, pngs = {0}, copies = {0};
    ew_status_t st = EW_OK;
    char path[2600], from[2600];
    for (int i = 1; st == EW_OK && i < npos; i++) {
        if (!is_dir(pos[i])) { /* a file: OUT/basename */
            const char *b = strrchr(pos[i], '/');
            snprintf(path, sizeof path, "%s/%s", outdir, b ? b + 1 : pos[i]);
            if ((st = cli_paths_add(&in, pos[i])) == EW_OK) st = cli_paths_add(&out, path);
            continue;
        }
        size_t first = in.n, len = strlen(pos[i]);
        if ((st = cli_paths_add_dir(&in, pos[i])) != EW_OK) break;
        snprintf(from, sizeof from, "%s/particles.mrcs", pos[i]);
        if (access(from, R_OK) == 0) st = cli_paths_add(&in, from);
        for (size_t k = first; st == EW_OK && k < in.n; k++) { /* same relative path under OUT */
            snprintf(path, sizeof path, "%s/%s", outdir, in.v[k] + len + 1);
            st = cli_paths_add(&out, path);
        }
        for (int f = 0; st == EW_OK && f < 2; f++) {
            snprintf(from, sizeof from, "%s/%s", pos[i], f ? "particles.star" : "micrographs.star");
            if (access(from, R_OK) == 0 && (st = cli_paths_add(&copies, from)) == EW_OK)
                snprintf(path, sizeof path, "%s/%s", outdir, f ? "particles.star" : "micrographs.star"),
                    st = cli_paths_add(&copies, path);
        }
    }
    ew_cut_model_t *m = NULL;
    double t0 = ew_time_now();
    if (st == EW_OK) st = ew_cut_model_load(pos[0], &m);
    for (size_t k = 0; st == EW_OK && k < out.n; k++) {
        ew_cli_replace_ext(out.v[k], ".png", path, sizeof path);
        if ((st = make_parent(out.v[k])) == EW_OK && png) st = cli_paths_add(&pngs, path);
    }
    if (st == EW_OK)
        st = ew_cut_apply_files(m, (const char *const *)in.v, (const char *const *)out.v,
                                png ? (const char *const *)pngs.v : NULL, in.n);
    for (size_t k = 0; st == EW_OK && k + 1 < copies.n; k += 2) st = copy_file(copies.v[k], copies.v[k + 1]);
    if (st != EW_OK) /* no partial set of outputs */
        for (size_t k = 0; k < out.n; k++) {
            remove(out.v[k]);
            if (png) remove(pngs.v[k]);
        }
    for (size_t k = 1; st != EW_OK && k < copies.n; k += 2) remove(copies.v[k]);
    double seconds = ew_time_now() - t0;
    if (st == EW_OK) {
        printf("translated %zu file%s with %s in %.1f s into %s/%s\n", in.n, in.n == 1 ? "" : "s", pos[0], seconds,
               outdir, copies.n ? " (STAR files copied)" : "");
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "files", (double)in.n);
            cJSON_AddNumberToObject(js, "seconds", seconds);
            cJSON_AddStringToObject(js, "outdir", outdir);
            cJSON *a = cJSON_AddArrayToObject(js, "outputs");
            for (size_t k = 0; k < out.n; k++) cJSON_AddItemToArray(a, cJSON_CreateString(out.v[k]));
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_cut_model_free(m);
    cli_paths_free(&in);
    cli_paths_free(&out);
    cli_paths_free(&pngs);
    cli_paths_free(&copies);
    return st == EW_OK ? 0 : ew_cli_fail();
}
