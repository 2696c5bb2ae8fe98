/* ewald demo, cryo-EM half: simulate micrographs, show them with the true
 * particle positions, translate their noise, train and score the particle
 * picker (see demo.h; the 3D reconstruction is in demo_emrecon.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"
#include "io/structure.h"
#include "physics/em_sim.h"
#include "gen/gen.h"
#include "recon/em_pick.h"
#include "report/demo.h"

/* Bin an image by an integer factor f (mean of f x f blocks). */
static void bin_image(const float *in, int nx, int ny, int f, float *out)
{
    int ox = nx / f, oy = ny / f;
    for (int y = 0; y < oy; y++)
        for (int x = 0; x < ox; x++) {
            double acc = 0;
            for (int a = 0; a < f; a++)
                for (int b = 0; b < f; b++) acc += in[(size_t)(y * f + a) * nx + (x * f + b)];
            out[(size_t)y * ox + x] = (float)(acc / (f * f));
        }
}

/* Low-pass by a Gaussian-ish 3x3 box twice, for display only. */
static void smooth_display(float *img, int w, int h, float *tmp)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0;
                int cnt = 0;
                for (int a = -1; a <= 1; a++)
                    for (int b = -1; b <= 1; b++) {
                        int yy = y + a, xx = x + b;
                        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                        acc += img[(size_t)yy * w + xx], cnt++;
                    }
                tmp[(size_t)y * w + x] = (float)(acc / cnt);
            }
        memcpy(img, tmp, (size_t)w * h * sizeof *img);
    }
}

static void draw_circle(uint8_t *rgb, int w, int h, double cx, double cy, double rad, const uint8_t col[3])
{
    int steps = (int)(2 * EW_PI * rad * 2) + 16;
    for (int t = 0; t < steps; t++) {
        double a = 2 * EW_PI * t / steps;
        for (int k = 0; k < 2; k++) {
            int x = (int)lround(cx + (rad + k) * cos(a)), y = (int)lround(cy + (rad + k) * sin(a));
            if (x < 0 || y < 0 || x >= w || y >= h) continue;
            memcpy(rgb + 3 * ((size_t)y * w + x), col, 3);
        }
    }
}

/* Write a display PNG of an image (nx, ny): binned by f, optionally
 * smoothed, grey (percentile clip), with circles (radius rad_a A) at the
 * n particles when given (particle x, y in A from the centre of pixel
 * (0, 0)). */
static ew_status_t micrograph_png(const char *path, const float *img, int nx, int ny, double pixel, int f,
                                  const ew_particle_t *particles, size_t n, double rad_a, int smooth)
{
    int w = nx / f, h = ny / f;
    float *b = ew_alloc_array((size_t)w * h, sizeof *b), *tmp = ew_alloc_array((size_t)w * h, sizeof *tmp);
    uint8_t *rgb = ew_alloc_array((size_t)w * h * 3, 1);
    ew_status_t st = EW_OK;
    if (!b || !tmp || !rgb) st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (micrograph figure)");
    if (st == EW_OK) {
        bin_image(img, nx, ny, f, b);
        if (smooth) smooth_display(b, w, h, tmp);
        ew_image_options_t o = ew_image_options_default();
        o.colormap = EW_CMAP_GRAY;
        o.clip_lo = 0.5, o.clip_hi = 99.5;
        st = ew_image_to_rgb(b, w, h, NULL, &o, rgb);
    }
    if (st == EW_OK && particles) {
        const uint8_t col[3] = {255, 200, 0};
        for (size_t i = 0; i < n; i++)
            draw_circle(rgb, w, h, particles[i].x / pixel / f, particles[i].y / pixel / f, rad_a / pixel / f, col);
    }
    if (st == EW_OK) st = ew_png_write_rgb8(path, w, h, rgb);
    ew_free(b), ew_free(tmp), ew_free(rgb);
    return st;
}

/* Train the noise translation (GenEM preset -> full physics) briefly and
 * translate the GenEM micrograph; figures and metrics into r. */
static ew_status_t noise_translation(const ew_demo_config_t *c, ew_report_t *r, const ew_em_micrograph_t *mg,
                                     const ew_em_micrograph_t *gm, ew_demo_results_t *res)
{
    const char *G = "noise translation";
    ew_report_section(r, "em-noise", "Cryo-EM: noise translation");
    if (c->cut_steps <= 0) {
        ew_report_note(r, "skip", "The noise translation was switched off (0 training steps).");
        return EW_OK;
    }
    ew_cut_config_t cc;
    ew_cut_config_default(&cc);
    cc.steps = c->cut_steps;
    cc.seed = c->seed;
    cc.pixel = c->em_pixel;
    cc.outdir = NULL;
    cc.sample_every = 0;
    cc.checkpoint_every = 0;
    cc.eval_crops = 16;
    cc.eval_size = c->em_size >= 256 ? 128 : 64;
    ew_cut_set_t sim, real;
    ew_cut_set_init(&sim);
    ew_cut_set_init(&real);
    ew_cut_model_t *model = NULL;
    ew_cut_metrics_t met;
    memset(&met, 0, sizeof met);
    float *out = NULL;
    double *xs = NULL, *ys = NULL;
    char p0[4096], p1[4096], p2[4096], p3[4096];
    double t = ew_time_now();
    ew_status_t st = ew_cut_set_add(&sim, gm->micrograph, gm->mask, gm->clean, gm->nx, gm->ny);
    for (int i = 0; i < c->em_micrographs && st == EW_OK; i++)
        st = ew_cut_set_add(&real, mg[i].micrograph, NULL, NULL, mg[i].nx, mg[i].ny);
    if (st == EW_OK) st = ew_cut_train(&cc, &sim, &real, &model, &met);
    if (st != EW_OK) goto done;
    double t_train = ew_time_now() - t;
    ew_report_timing(r, "cryo-EM: train the noise translation", t_train);
    t = ew_time_now();
    out = ew_alloc_array((size_t)gm->nx * gm->ny, sizeof *out);
    if (!out) {
        st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (translation)");
        goto done;
    }
    st = ew_cut_translate_image(model, gm->micrograph, gm->nx, gm->ny, 256, 16, out);
    if (st != EW_OK) goto done;
    ew_report_timing(r, "cryo-EM: translate a micrograph", ew_time_now() - t);
    res->cut_run = 1;
    res->cut_psd_translated = met.psd_translated;
    res->cut_psd_simulated = met.psd_simulated;
    ew_report_paramf(r, G, "training steps", NULL, "%lld", (long long)cc.steps);
    ew_report_paramf(r, G, "generator", NULL, "%d filters, %d residual blocks (identity skip %s)", cc.ngf,
                     cc.n_blocks, cc.identity_skip ? "on" : "off");
    ew_report_paramf(r, G, "discriminator", NULL, "PatchGAN, %d filters, %d layers", cc.ndf, cc.n_layers_d);
    ew_report_paramf(r, G, "crops", "pixels", "%d x %d, batch %d", cc.crop, cc.crop, cc.batch);
    ew_report_paramf(r, G, "loss weights", NULL, "GAN %.1f, PatchNCE %.1f (temperature %.2f, %d patches)",
                     cc.lambda_gan, cc.lambda_nce, cc.nce_t, cc.num_patches);
    ew_report_paramf(r, G, "Adam", NULL, "lr %.1e, betas %.2f %.3f", cc.lr, cc.beta1, cc.beta2);
    ew_report_paramf(r, G, "domains", NULL, "GenEM preset (1 micrograph) -> full physics (%d)", c->em_micrographs);
    ew_report_paramf(r, G, "evaluation", NULL, "%d crops of %d pixels per domain", cc.eval_crops, cc.eval_size);
    ew_report_text(r,
                   "A CUT model (contrastive unpaired translation) learned to turn the GenEM preset's white noise "
                   "into the full-physics noise, from unpaired micrographs, in %lld steps (%.0f s). This is a short "
                   "demonstration run (the recipe in docs/noise-translation.md trains for 2000 steps): the "
                   "distance of the noise power spectrum to the full-physics one (rms of log10 ratios over "
                   "frequency rings) went from %.3f (GenEM) to %.3f (translated); the particles' low-resolution "
                   "content correlates %.3f with the clean image before and %.3f after translation.",
                   (long long)cc.steps, t_train, met.psd_simulated, met.psd_translated, met.content_simulated,
                   met.content_translated);
    {
        int f = gm->nx >= 1024 ? 2 : 1;
        ew_demo_fig_path(c, "em_translate_before.png", p0, sizeof p0);
        ew_demo_fig_path(c, "em_translate_after.png", p1, sizeof p1);
        st = micrograph_png(p0, gm->micrograph, gm->nx, gm->ny, gm->pixel, f, NULL, 0, 0, 0);
        if (st == EW_OK) st = micrograph_png(p1, out, gm->nx, gm->ny, gm->pixel, f, NULL, 0, 0, 0);
        if (st != EW_OK) goto done;
        const char *paths[2] = {p0, p1};
        const char *caps[2] = {"Before: the GenEM-preset micrograph (contrast, arbitrary units; grey, 0.5-99.5 "
                               "percentile clip).",
                               "After: the same micrograph translated to full-physics noise (same units and "
                               "display rules)."};
        ew_report_figure_row(r, 2, paths, caps);
    }
    if (met.history && met.steps > 0) {
        size_t n = (size_t)met.steps;
        xs = ew_alloc_array(n, sizeof *xs);
        ys = ew_alloc_array(3 * n, sizeof *ys);
        if (!xs || !ys) {
            st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (loss curves)");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            xs[i] = (double)(i + 1);
            for (int k = 0; k < 3; k++) ys[k * n + i] = met.history[3 * i + k];
        }
        ew_plot_t *pl = ew_plot_new(560, 380, "Noise translation: training losses", "step", "loss");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        st = ew_plot_add_series(pl, xs, ys, n, "discriminator");
        if (st == EW_OK) st = ew_plot_add_series(pl, xs, ys + n, n, "generator GAN");
        if (st == EW_OK) st = ew_plot_add_series(pl, xs, ys + 2 * n, n, "PatchNCE");
        ew_demo_fig_path(c, "cut_losses.png", p2, sizeof p2);
        if (st == EW_OK) st = ew_plot_write_png(pl, p2);
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        (void)p3;
        ew_report_figure(r, p2,
                         "Loss curves of the noise-translation training against the optimizer step: discriminator "
                         "(least-squares GAN), the generator's GAN term and the PatchNCE content term "
                         "(dimensionless).");
    }
    {
        char v[6][64];
        snprintf(v[0], 64, "%.3f", met.psd_simulated), snprintf(v[1], 64, "%.3f", met.psd_translated);
        snprintf(v[2], 64, "%.4f", met.hist_w1_simulated), snprintf(v[3], 64, "%.4f", met.hist_w1_translated);
        snprintf(v[4], 64, "%.3f", met.content_simulated), snprintf(v[5], 64, "%.3f", met.content_translated);
        const char *hdr[3] = {"metric", "GenEM (before)", "translated (after)"};
        const char *cells[9] = {"noise power spectrum distance to full physics (rms log10 ratio; lower is closer)",
                                v[0], v[1],
                                "intensity histogram distance to full physics (Wasserstein-1, network units)",
                                v[2], v[3],
                                "content kept: correlation with the clean image, low-passed, inside particles",
                                v[4], v[5]};
        ew_report_table(r, "Noise translation metrics on held-out crops", 3, hdr, 3, cells);
    }
done:
    ew_free(out), ew_free(xs), ew_free(ys);
    ew_free(met.history);
    ew_cut_model_free(model);
    ew_cut_set_free(&sim);
    ew_cut_set_free(&real);
    return st;
}

/* ---------- particle picking ---------- */

typedef struct {
    double score;
    size_t mic, k;
} pick_ref_t;

static int pick_ref_cmp(const void *a, const void *b)
{
    double x = ((const pick_ref_t *)a)->score, y = ((const pick_ref_t *)b)->score;
    return x > y ? -1 : x < y ? 1 : 0;
}

/* Precision-recall curve of picks pooled over n_mics micrographs in
 * decreasing score, matched as ew_pick_auprc does (each pick to the
 * nearest still unmatched true centre of its micrograph within radius):
 * prec[i], rec[i] after the first i + 1 picks (*n of them, allocated
 * here); tp[m][k] = 1 where pick k of micrograph m was matched (arrays
 * given, n_picks[m] each); *thr = the score at the best F1; returns the
 * average precision (the AUPRC) or NAN when out of memory. */
static double pr_curve(ew_pick_t *const *picks, const size_t *n_picks, const ew_pick_mic_t *mics, size_t n_mics,
                       double radius, double **prec, double **rec, size_t *n, uint8_t *const *tp, double *thr)
{
    size_t total = 0, ntrue = 0;
    for (size_t m = 0; m < n_mics; m++) total += n_picks[m], ntrue += mics[m].n;
    *n = 0, *prec = *rec = NULL, *thr = INFINITY;
    pick_ref_t *all = ew_alloc_array(total + 1, sizeof *all);
    uint8_t **used = ew_calloc_array(n_mics, sizeof *used);
    double *p = ew_alloc_array(total + 1, sizeof *p), *q = ew_alloc_array(total + 1, sizeof *q);
    double ap = NAN;
    int fail = !all || !used || !p || !q;
    for (size_t m = 0; !fail && m < n_mics; m++)
        if (!(used[m] = ew_calloc_array(mics[m].n + 1, 1))) fail = 1;
    if (!fail) {
        size_t i = 0;
        for (size_t m = 0; m < n_mics; m++)
            for (size_t k = 0; k < n_picks[m]; k++) all[i++] = (pick_ref_t){picks[m][k].score, m, k}, tp[m][k] = 0;
        qsort(all, total, sizeof *all, pick_ref_cmp);
        double hits = 0, best = -1;
        ap = 0;
        for (size_t j = 0; j < total; j++) {
            const ew_pick_mic_t *mc = &mics[all[j].mic];
            const ew_pick_t *pp = &picks[all[j].mic][all[j].k];
            double bd = radius * radius;
            size_t bj = (size_t)-1;
            for (size_t t = 0; t < mc->n; t++) {
                if (used[all[j].mic][t]) continue;
                double dx = mc->xy[2 * t] - pp->x, dy = mc->xy[2 * t + 1] - pp->y;
                if (dx * dx + dy * dy <= bd) bd = dx * dx + dy * dy, bj = t;
            }
            if (bj != (size_t)-1) {
                used[all[j].mic][bj] = 1;
                tp[all[j].mic][all[j].k] = 1;
                hits += 1;
                ap += hits / (double)(j + 1);
            }
            p[j] = hits / (double)(j + 1);
            q[j] = ntrue ? hits / (double)ntrue : 0;
            double f1 = p[j] + q[j] > 0 ? 2 * p[j] * q[j] / (p[j] + q[j]) : 0;
            if (f1 > best) best = f1, *thr = all[j].score;
        }
        ap = ntrue ? ap / (double)ntrue : 0;
        *prec = p, *rec = q, *n = total;
        p = q = NULL;
    }
    for (size_t m = 0; used && m < n_mics; m++) ew_free(used[m]);
    ew_free(used), ew_free(all), ew_free(p), ew_free(q);
    return ap;
}

/* The picks of one micrograph on its display: true centres in yellow
 * (radius rad_a A), picks scoring at least thr as smaller circles, green
 * when matched to a true particle and red when not. */
static ew_status_t picks_png(const char *path, const ew_em_micrograph_t *m, int f, double rad_a, const ew_pick_t *pk,
                             size_t npk, const uint8_t *tp, double thr)
{
    int w = m->nx / f, h = m->ny / f;
    float *b = ew_alloc_array((size_t)w * h, sizeof *b), *tmp = ew_alloc_array((size_t)w * h, sizeof *tmp);
    uint8_t *rgb = ew_alloc_array((size_t)w * h * 3, 1);
    ew_status_t st = EW_OK;
    if (!b || !tmp || !rgb) st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (picks figure)");
    if (st == EW_OK) {
        bin_image(m->micrograph, m->nx, m->ny, f, b);
        smooth_display(b, w, h, tmp);
        ew_image_options_t o = ew_image_options_default();
        o.colormap = EW_CMAP_GRAY;
        o.clip_lo = 0.5, o.clip_hi = 99.5;
        st = ew_image_to_rgb(b, w, h, NULL, &o, rgb);
    }
    if (st == EW_OK) {
        const uint8_t yellow[3] = {255, 200, 0}, green[3] = {40, 230, 60}, red[3] = {255, 40, 40};
        double rp = rad_a / m->pixel / f;
        for (size_t i = 0; i < m->n_particles; i++)
            draw_circle(rgb, w, h, m->particles[i].x / m->pixel / f, m->particles[i].y / m->pixel / f, rp, yellow);
        for (size_t k = 0; k < npk; k++)
            if (pk[k].score >= thr) draw_circle(rgb, w, h, pk[k].x / f, pk[k].y / f, 0.6 * rp, tp[k] ? green : red);
        st = ew_png_write_rgb8(path, w, h, rgb);
    }
    ew_free(b), ew_free(tmp), ew_free(rgb);
    return st;
}

ew_status_t ew_demo_em_pick(const ew_demo_config_t *c, ew_report_t *r, ew_em_sim_t *sim, const ew_em_micrograph_t *mg,
                            int n_have, double rad, ew_demo_results_t *res)
{
    const char *G = "particle picking";
    ew_report_section(r, "em-pick", "Cryo-EM: particle picking");
    if (c->pick_steps <= 0 || c->pick_train_micrographs <= 0 || c->pick_test_micrographs <= 0) {
        ew_report_note(r, "skip", "The particle picker was switched off (0 training steps or micrographs).");
        return EW_OK;
    }
    const int ntr = c->pick_train_micrographs, nte = c->pick_test_micrographs;
    const int own = (ntr > n_have ? ntr - n_have : 0) + nte; /* micrographs simulated here */
    const int test0 = ntr > n_have ? ntr : n_have;           /* index of the first held-out micrograph */
    ew_em_micrograph_t *sm = calloc((size_t)own, sizeof *sm);
    const ew_em_micrograph_t **all = calloc((size_t)(ntr + nte), sizeof *all);
    ew_pick_mic_t *pm = calloc((size_t)(ntr + nte), sizeof *pm);
    double **xy = calloc((size_t)(ntr + nte), sizeof *xy);
    ew_pick_t **picks = calloc((size_t)nte, sizeof *picks);
    size_t *np = calloc((size_t)nte, sizeof *np);
    uint8_t **tp = calloc((size_t)nte, sizeof *tp);
    double *prec = NULL, *rec = NULL;
    float *score = NULL;
    ew_picker_t *pk = NULL;
    ew_status_t st = (sm || !own) && all && pm && xy && picks && np && tp ? EW_OK
                                                                        : ew_fail(EW_ERR_NOMEM, "demo: out of memory (picking)");
    double t = ew_time_now();
    if (st == EW_OK) {
        ew_progress_t *pr = ew_progress_start("cryo-EM simulate (picking)", (uint64_t)own);
        int j = 0;
        for (int i = 0; i < ntr + nte && st == EW_OK; i++) {
            int idx = i < ntr ? i : test0 + (i - ntr);
            if (idx < n_have) {
                all[i] = &mg[idx];
                continue;
            }
            st = ew_em_sim_run(sim, (size_t)idx, &sm[j]);
            all[i] = &sm[j++];
            ew_progress_add(pr, 1);
        }
        ew_progress_finish(pr);
    }
    for (int i = 0; i < ntr + nte && st == EW_OK; i++) {
        const ew_em_micrograph_t *m = all[i];
        if (!(xy[i] = ew_alloc_array(2 * m->n_particles + 2, sizeof **xy))) {
            st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (picking)");
            break;
        }
        for (size_t k = 0; k < m->n_particles; k++)
            xy[i][2 * k] = m->particles[k].x / m->pixel, xy[i][2 * k + 1] = m->particles[k].y / m->pixel;
        pm[i] = (ew_pick_mic_t){m->micrograph, m->nx, m->ny, xy[i], m->n_particles};
    }
    if (st != EW_OK) goto done;
    double t_sim = ew_time_now() - t;
    ew_pick_config_t pc;
    ew_pick_config_default(&pc);
    pc.bin = c->pick_bin;
    pc.width = c->pick_width;
    pc.steps = c->pick_steps;
    pc.seed = c->seed;
    const double bpix = c->em_pixel * pc.bin, radb = rad / bpix; /* A per binned pixel, particle radius in them */
    pc.label_radius = fmax(1.0, 0.75 * radb);
    pc.nms_radius = fmax(1.0, radb);
    int side = c->em_size / pc.bin;
    pc.patch = side < 64 ? side : 64;
    const double match = 0.5 * rad / c->em_pixel; /* unbinned pixels */
    const double edge = rad / c->em_pixel;         /* picks closer to the edge are dropped */
    double loss = NAN;
    t = ew_time_now();
    ew_info("demo: training the particle picker (%d steps on %d micrographs)", pc.steps, ntr);
    st = ew_picker_create(&pc, &pk);
    if (st == EW_OK) st = ew_picker_train(pk, pm, (size_t)ntr, &loss);
    if (st != EW_OK) goto done;
    double t_train = ew_time_now() - t;
    ew_report_timing(r, "cryo-EM: simulate picking micrographs", t_sim);
    ew_report_timing(r, "cryo-EM: train the picker", t_train);
    t = ew_time_now();
    size_t ntrue = 0;
    for (int i = 0; i < nte && st == EW_OK; i++) {
        st = ew_picker_pick(pk, pm[ntr + i].img, pm[ntr + i].nx, pm[ntr + i].ny, -8.0, &picks[i], &np[i]);
        ntrue += pm[ntr + i].n;
        /* no particle is centred closer to the edge than its radius (the simulator keeps whole particles
           inside), and the network's zero padding lights the edges up: drop such picks */
        size_t kept = 0;
        for (size_t k = 0; st == EW_OK && k < np[i]; k++) {
            const ew_pick_t *q = &picks[i][k];
            if (q->x >= edge && q->y >= edge && q->x <= pm[ntr + i].nx - 1 - edge && q->y <= pm[ntr + i].ny - 1 - edge)
                picks[i][kept++] = *q;
        }
        np[i] = kept;
        if (st == EW_OK && !(tp[i] = ew_calloc_array(np[i] + 1, 1))) st = ew_fail(EW_ERR_NOMEM, "demo: out of memory");
    }
    int bnx = 0, bny = 0;
    if (st == EW_OK) st = ew_picker_score(pk, pm[ntr].img, pm[ntr].nx, pm[ntr].ny, &score, &bnx, &bny);
    if (st != EW_OK) goto done;
    ew_report_timing(r, "cryo-EM: pick the held-out micrographs", ew_time_now() - t);
    res->pick_auprc = ew_pick_auprc((const ew_pick_t *const *)picks, np, pm + ntr, (size_t)nte, match,
                                    &res->pick_precision, &res->pick_recall);
    size_t npr = 0;
    double thr = 0, ap = pr_curve(picks, np, pm + ntr, (size_t)nte, match, &prec, &rec, &npr, tp, &thr);
    if (isnan(ap)) {
        st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (precision-recall curve)");
        goto done;
    }
    res->pick_run = 1;
    size_t ntrain = 0, nabove = 0;
    for (int i = 0; i < ntr; i++) ntrain += pm[i].n;
    for (int i = 0; i < nte; i++)
        for (size_t k = 0; k < np[i]; k++) nabove += picks[i][k].score >= thr;

    ew_report_paramf(r, G, "training micrographs", NULL, "%d (%zu particles; full physics, as above)", ntr, ntrain);
    ew_report_paramf(r, G, "held-out micrographs", NULL, "%d (%zu particles)", nte, ntrue);
    ew_report_paramf(r, G, "network", NULL, "fully convolutional: %dx%d then %d 3x3 convolutions, %d channels, batch "
                     "norm + ReLU, 1x1 logit", pc.first_k, pc.first_k, pc.layers - 2, pc.width);
    ew_report_paramf(r, G, "binning", NULL, "%d (%.0f A per binned pixel)", pc.bin, bpix);
    ew_report_paramf(r, G, "training", NULL, "%d steps of %d crops of %d x %d binned pixels, AdamW lr %.0e, cosine",
                     pc.steps, pc.batch, pc.patch, pc.patch, pc.lr);
    ew_report_paramf(r, G, "label / NMS radius", "binned pixels", "%.1f / %.1f", pc.label_radius, pc.nms_radius);
    ew_report_paramf(r, G, "match radius (scoring)", "A", "%.0f (half the particle radius)", match * c->em_pixel);
    ew_report_paramf(r, G, "edge exclusion", "A", "%.0f (picks closer to the edge are dropped)", edge * c->em_pixel);
    ew_report_text(r,
                   "A Topaz-like fully convolutional picker was trained on %d annotated full-physics micrographs "
                   "(%zu particles, the simulator's positions as labels; %d steps, %.0f s, final training loss %.3f) "
                   "and run on %d held-out micrograph(s) with %zu particles; picks closer to the micrograph's edge "
                   "than a particle radius are dropped (no particle is centred there, and the network's zero "
                   "padding makes the edges score high). A pick counts as right when it lies "
                   "within %.0f A of a true centre not already taken by a better pick. Average precision over the "
                   "ranked picks (AUPRC, Topaz's metric): %.3f; at the best F1 (score threshold %.2f, %zu picks) the "
                   "precision is %.2f and the recall %.2f. A short demonstration training on a few micrographs, "
                   "not a tuned picker: with so few held-out particles the figure varies from run to run and with "
                   "each micrograph's defocus (docs/cryoem-downstream.md and bench/README-emdown.md have longer "
                   "runs).",
                   ntr, ntrain, pc.steps, t_train, loss, nte, ntrue, match * c->em_pixel, res->pick_auprc, thr, nabove,
                   res->pick_precision, res->pick_recall);
    {
        char p0[4096], p1[4096], p2[4096], cap0[512], cap1[512], cap2[512];
        ew_demo_fig_path(c, "em_picks.png", p0, sizeof p0);
        ew_demo_fig_path(c, "em_pick_score.png", p1, sizeof p1);
        ew_demo_fig_path(c, "em_pick_pr.png", p2, sizeof p2);
        int f = all[ntr]->nx >= 1024 ? 2 : 1;
        st = picks_png(p0, all[ntr], f, rad, picks[0], np[0], tp[0], thr);
        if (st != EW_OK) goto done;
        for (size_t i = 0; i < (size_t)bnx * bny; i++) score[i] = (float)(1 / (1 + exp(-(double)score[i])));
        ew_image_options_t o = ew_image_options_default();
        o.colormap = EW_CMAP_VIRIDIS;
        o.fixed_range = 1, o.vmin = 0, o.vmax = 1;
        st = ew_png_write_image(p1, score, bnx, bny, NULL, &o);
        if (st != EW_OK) goto done;
        ew_plot_t *pl = ew_plot_new(480, 400, "Picker: precision-recall (held out)", "recall", "precision");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        ew_plot_set_xrange(pl, 0, 1);
        ew_plot_set_yrange(pl, 0, 1.02);
        char lab[64];
        snprintf(lab, sizeof lab, "AUPRC %.3f", res->pick_auprc);
        const double zero = 0; /* no picks at all: one point at the origin */
        st = npr ? ew_plot_add_series(pl, rec, prec, npr, lab) : ew_plot_add_series(pl, &zero, &zero, 1, lab);
        if (st == EW_OK) st = ew_plot_vline(pl, res->pick_recall, "best F1");
        if (st == EW_OK) st = ew_plot_write_png(pl, p2);
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        snprintf(cap0, sizeof cap0,
                 "Held-out micrograph (full physics, low-pass filtered for display%s; grey, 0.5-99.5 percentile "
                 "clip): true particles in yellow (radius %.0f A), the picker's picks above the best-F1 threshold "
                 "as smaller circles, green when right and red when not.",
                 f > 1 ? ", 2 x 2 binned" : "", rad);
        snprintf(cap1, sizeof cap1,
                 "The picker's output on the same micrograph: particle probability per binned pixel (%.0f A), "
                 "sigmoid of the logit, viridis from 0 to 1. Picks are its local maxima (non-maximum "
                 "suppression within %.0f A).",
                 bpix, pc.nms_radius * bpix);
        snprintf(cap2, sizeof cap2,
                 "Precision against recall over the picks of the %d held-out micrograph(s), ranked by score "
                 "(dimensionless); the area under it is the AUPRC. The vertical line marks the best F1.",
                 nte);
        const char *paths[3] = {p0, p1, p2}, *caps[3] = {cap0, cap1, cap2};
        ew_report_figure_row(r, 3, paths, caps);
    }
done:
    for (int i = 0; i < own && sm; i++) ew_em_micrograph_free(&sm[i]);
    for (int i = 0; i < ntr + nte && xy; i++) ew_free(xy[i]);
    for (int i = 0; i < nte && picks; i++) ew_free(picks[i]);
    for (int i = 0; i < nte && tp; i++) ew_free(tp[i]);
    free(sm), free(all), free(pm), free(xy), free(picks), free(np), free(tp);
    ew_free(prec), ew_free(rec), ew_free(score);
    ew_picker_destroy(pk);
    return st;
}

ew_status_t ew_demo_em(const ew_demo_config_t *c, ew_report_t *r, ew_demo_results_t *res)
{
    char cap[1024];
    const char *G = "cryo-EM";
    ew_structure_options_t so = {1, 1, 1};
    ew_structure_t s;
    EW_TRY(ew_structure_read(c->structure_path, &so, &s));

    ew_em_config_t ec;
    ew_em_config_default(&ec);
    ec.nx = ec.ny = c->em_size;
    ec.pixel = c->em_pixel;
    ec.oversample = c->quick ? 1 : 2;
    ec.n_micrographs = (size_t)c->em_micrographs;
    ec.seed = c->seed;
    ec.specimen.count_mean = c->em_particles;
    ec.fft_measure = 0;
    ew_em_sim_t *sim = NULL, *gsim = NULL;
    ew_em_micrograph_t *mg = calloc((size_t)c->em_micrographs, sizeof *mg), gm;
    memset(&gm, 0, sizeof gm);
    ew_status_t st = mg ? EW_OK : ew_fail(EW_ERR_NOMEM, "demo: out of memory");
    ew_report_section(r, "em-sim", "Cryo-EM: simulated micrographs");
    double t = ew_time_now();
    if (st == EW_OK) st = ew_em_sim_create(&ec, &s, 1, &sim);
    double rad = st == EW_OK ? ew_em_sim_model(sim, 0)->radius : 0;
    if (st == EW_OK) {
        ew_progress_t *pr = ew_progress_start("cryo-EM simulate", (uint64_t)c->em_micrographs + 1);
        for (int i = 0; i < c->em_micrographs && st == EW_OK; i++) {
            st = ew_em_sim_run(sim, (size_t)i, &mg[i]);
            if (st == EW_OK) res->em_particles += mg[i].n_particles, res->em_micrographs++;
            ew_progress_add(pr, 1);
        }
        if (st == EW_OK) {
            ew_em_config_t gc = ec;
            gc.mode = EW_EM_GENEM;
            gc.n_micrographs = 1;
            gc.seed = c->seed + 100;
            st = ew_em_sim_create(&gc, &s, 1, &gsim);
            if (st == EW_OK) st = ew_em_sim_run(gsim, 0, &gm);
            ew_progress_add(pr, 1);
        }
        ew_progress_finish(pr);
    }
    if (st != EW_OK) goto done;
    double t_sim = ew_time_now() - t;
    ew_report_timing(r, "cryo-EM: simulate micrographs", t_sim);
    ew_report_paramf(r, G, "micrographs (full physics)", NULL, "%d", c->em_micrographs);
    ew_report_param(r, G, "micrographs (GenEM preset)", "1", NULL);
    ew_report_paramf(r, G, "size", "pixels", "%d x %d", ec.nx, ec.ny);
    ew_report_paramf(r, G, "pixel", "A", "%.2f", ec.pixel);
    ew_report_paramf(r, G, "simulation oversampling", NULL, "%d", ec.oversample);
    ew_report_paramf(r, G, "particles per micrograph (mean)", NULL, "%.0f", c->em_particles);
    ew_report_paramf(r, G, "voltage", "kV", "%.0f", ec.ctf.voltage_v * 1e-3);
    ew_report_paramf(r, G, "spherical aberration Cs", "mm", "%.2f", ec.ctf.cs_mm);
    ew_report_paramf(r, G, "amplitude contrast", NULL, "%.3f", ec.ctf.amp_contrast);
    ew_report_paramf(r, G, "defocus range", "A", "%.0f to %.0f (astigmatism up to %.0f)", ec.defocus_min,
                     ec.defocus_max, ec.astig_max);
    ew_report_paramf(r, G, "ice thickness", "A", "%.0f", ec.ice.thickness);
    ew_report_paramf(r, G, "dose", "e/A^2", "%.0f", ec.dose);
    ew_report_paramf(r, G, "detector DQE(0)", NULL, "%.2f", ec.dqe0);
    ew_report_paramf(r, G, "GenEM SNR", NULL, "%.3f", ec.snr);
    ew_report_text(r,
                   "%zu micrograph(s) of %d x %d pixels at %.1f A per pixel (%.0f A across) with %zu particles of 2cex "
                   "(radius %.0f A) in random orientations: full physics (atomic potential, %.0f A of amorphous "
                   "ice, phase-grating exit wave, CTF at %.0f kV, %.0f e/A^2 dose, detector DQE and MTF, "
                   "Poisson counting), and one micrograph with the GenEM preset (projection, CTF, white Gaussian "
                   "noise at SNR %.2f). %.1f s.",
                   res->em_micrographs, ec.nx, ec.ny, ec.pixel, ec.nx * ec.pixel, res->em_particles, rad,
                   ec.ice.thickness, ec.ctf.voltage_v * 1e-3, ec.dose, ec.snr, t_sim);
    {
        int f = c->em_size >= 1024 ? 2 : 1;
        char p0[4096], p1[4096], p2[4096];
        ew_demo_fig_path(c, "em_micrograph_raw.png", p0, sizeof p0);
        ew_demo_fig_path(c, "em_micrograph_truth.png", p1, sizeof p1);
        ew_demo_fig_path(c, "em_micrograph_genem.png", p2, sizeof p2);
        st = micrograph_png(p0, mg[0].micrograph, mg[0].nx, mg[0].ny, mg[0].pixel, f, NULL, 0, rad, 0);
        if (st == EW_OK)
            st = micrograph_png(p1, mg[0].micrograph, mg[0].nx, mg[0].ny, mg[0].pixel, f, mg[0].particles,
                                mg[0].n_particles, rad, 1);
        if (st == EW_OK)
            st = micrograph_png(p2, gm.micrograph, gm.nx, gm.ny, gm.pixel, f, gm.particles, gm.n_particles, rad, 0);
        if (st != EW_OK) goto done;
        snprintf(cap, sizeof cap,
                 "Micrograph 0 as simulated (full physics), electron counts per pixel, grey scale clipped at the "
                 "0.5 and 99.5 percentiles; %d x %d pixels shown%s, %.0f A across; defocus %.0f A.",
                 c->em_size / f, c->em_size / f, f > 1 ? " (2 x 2 binned)" : "", ec.nx * ec.pixel,
                 0.5 * (mg[0].ctf.defocus_u + mg[0].ctf.defocus_v));
        char cap1[512], cap2[512];
        snprintf(cap1, sizeof cap1,
                 "The same micrograph low-pass filtered for display, with the %zu true particle positions circled "
                 "(radius %.0f A): the picks a perfect picker would make.",
                 mg[0].n_particles, rad);
        snprintf(cap2, sizeof cap2,
                 "A GenEM-preset micrograph (projection, CTF, white Gaussian noise at SNR %.2f), contrast in "
                 "arbitrary units, same scale rules, true particle positions circled.",
                 ec.snr);
        const char *paths[3] = {p0, p1, p2}, *caps[3] = {cap, cap1, cap2};
        ew_report_figure_row(r, 3, paths, caps);
    }
    st = noise_translation(c, r, mg, &gm, res);
    if (st != EW_OK) goto done;
    st = ew_demo_em_pick(c, r, sim, mg, c->em_micrographs, rad, res);
    if (st == EW_OK) st = ew_demo_em_recon(c, r, &s, &ec, res);

done:
    if (mg)
        for (int i = 0; i < c->em_micrographs; i++) ew_em_micrograph_free(&mg[i]);
    free(mg);
    ew_em_micrograph_free(&gm);
    ew_em_sim_destroy(sim);
    ew_em_sim_destroy(gsim);
    ew_structure_free(&s);
    return st;
}
