/* ewald gen: CUT training loop (LSGAN + PatchNCE, plain or mask-guided
 * sampling) and the evaluation figures. See gen.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "eval/imstats.h"
#include "gen/cut_impl.h"
#include "io/png.h"
#include "nn/gen_ops.h"
#include "nn/nn.h"

static ew_status_t make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return EW_OK;
    return ew_fail(EW_ERR_IO, "%s: cannot create the folder (%s)", path, strerror(errno));
}

/* crop x crop network-unit patch of img at (x0, y0), flipped; mask likewise */
static void take_crop(const ew_cut_image_t *img, int x0, int y0, int crop, int fx, int fy, double clip, float *out,
                      uint8_t *mask, float *clean)
{
    for (int j = 0; j < crop; j++)
        for (int i = 0; i < crop; i++) {
            const int sy = y0 + (fy ? crop - 1 - j : j), sx = x0 + (fx ? crop - 1 - i : i);
            const size_t src = (size_t)sy * img->nx + sx, dst = (size_t)j * crop + i;
            double z = img->z[src] / clip;
            out[dst] = (float)(z > 1 ? 1 : z < -1 ? -1 : z);
            if (mask) mask[dst] = img->mask ? img->mask[src] : 0;
            if (clean) clean[dst] = img->clean ? img->clean[src] : 0.0f;
        }
}

static int set_fits(const ew_cut_set_t *s, int crop)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->img[i].nx < crop || s->img[i].ny < crop) return 0;
    return s->n > 0;
}

/* ---- one training step ---- */

typedef struct {
    cut_act_t g, e, d;
    cut_head_act_t hq[EW_CUT_MAX_TAPS], hk[EW_CUT_MAX_TAPS];
    float *x, *fake, *dfake, *dpred, *gq, *gk, *dy;
    uint8_t *mask;
    int32_t *idx, *pos, *noff, *neg;
    int *npart, *plain, *nrow;
    size_t cap_rows;
} cut_work_t;

static void work_free(cut_work_t *w)
{
    cut_act_free(&w->g);
    cut_act_free(&w->e);
    cut_act_free(&w->d);
    for (int t = 0; t < EW_CUT_MAX_TAPS; t++) {
        cut_head_free(&w->hq[t]);
        cut_head_free(&w->hk[t]);
    }
    ew_free(w->x);
    ew_free(w->fake);
    ew_free(w->dfake);
    ew_free(w->dpred);
    ew_free(w->gq);
    ew_free(w->gk);
    ew_free(w->dy);
    ew_free(w->mask);
    free(w->idx);
    free(w->pos);
    free(w->noff);
    free(w->neg);
    free(w->npart);
    free(w->plain);
    free(w->nrow);
}

static ew_status_t work_alloc(cut_work_t *w, const ew_cut_model_t *m)
{
    memset(w, 0, sizeof(*w));
    const ew_cut_config_t *c = &m->cfg;
    const size_t n = (size_t)c->batch * 2, px = (size_t)c->crop * c->crop;
    int cmax = 1;
    for (int t = 0; t < m->ntap; t++) cmax = m->tap_c[t] > cmax ? m->tap_c[t] : cmax;
    const size_t rows = n * (size_t)c->num_patches;
    w->cap_rows = rows;
    w->x = ew_alloc_array(n * px, sizeof(float));
    w->fake = ew_alloc_array(n * px, sizeof(float));
    w->dfake = ew_alloc_array(n * px, sizeof(float));
    w->dpred = ew_alloc_array(n * px, sizeof(float));
    w->gq = ew_alloc_array(rows * (size_t)cmax, sizeof(float));
    w->gk = ew_alloc_array(rows * (size_t)cmax, sizeof(float));
    w->dy = ew_alloc_array(rows * (size_t)c->mlp_dim, sizeof(float));
    w->mask = ew_alloc_array(n * px, 1);
    w->idx = malloc(sizeof(int32_t) * rows);
    w->pos = malloc(sizeof(int32_t) * rows);
    w->noff = malloc(sizeof(int32_t) * (rows + 1));
    w->neg = malloc(sizeof(int32_t) * rows * (size_t)c->num_patches);
    w->npart = malloc(sizeof(int) * n);
    w->plain = malloc(sizeof(int) * n);
    w->nrow = malloc(sizeof(int) * n);
    if (!w->x || !w->fake || !w->dfake || !w->dpred || !w->gq || !w->gk || !w->dy || !w->mask || !w->idx ||
        !w->pos || !w->noff || !w->neg || !w->npart || !w->plain || !w->nrow) {
        work_free(w);
        return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for the training buffers");
    }
    return EW_OK;
}

/* PatchNCE over all taps between the encodings of the generator input (w->g,
 * keys) and of its output (w->e, queries) for images [i0, i1); masks of the
 * images in w->mask (NULL rows = plain). Adds g * dL/d(fake) through the
 * encoder into w->e's input gradient (caller runs the encoder backward).
 * Returns the loss (mean over taps). */
static ew_status_t patchnce(ew_cut_model_t *m, cut_work_t *w, int i0, int i1, int use_mask, double g,
                            ew_rng_t *r, double *loss)
{
    const ew_cut_config_t *c = &m->cfg;
    const int nimg = i1 - i0, d = c->mlp_dim;
    double total = 0.0;
    for (int t = 0; t < m->ntap; t++) {
        const int slot = m->tap_slot[t], C = m->tap_c[t];
        const int fh = w->g.sh[slot], fw = w->g.sw[slot], hw = fh * fw;
        const int stride = c->crop / fh;
        /* locations: rows of image b at [rb, rb + nrow[b]) */
        int rows = 0;
        for (int b = 0; b < nimg; b++) {
            const uint8_t *mk = use_mask ? w->mask + (size_t)(i0 + b) * c->crop * c->crop : NULL;
            w->nrow[b] = ew_cut_sample_locations(mk, fh, fw, stride, c->num_patches, c->sampling, r, w->idx + rows,
                                                 &w->npart[b], &w->plain[b]);
            rows += w->nrow[b];
        }
        /* gather (per image: its own flat indices) */
        int rb = 0;
        for (int b = 0; b < nimg; b++) {
            const size_t so = (size_t)(i0 + b) * C * hw;
            ew_patch_gather(w->gk + (size_t)rb * C, cut_slot(&w->g, slot) + so, w->idx + rb, 1, C, hw, w->nrow[b]);
            ew_patch_gather(w->gq + (size_t)rb * C, cut_slot(&w->e, slot) + so, w->idx + rb, 1, C, hw, w->nrow[b]);
            rb += w->nrow[b];
        }
        EW_TRY(cut_head_forward(m, t, &w->hk[t], w->gk, rows));
        EW_TRY(cut_head_forward(m, t, &w->hq[t], w->gq, rows));
        memset(w->dy, 0, sizeof(float) * (size_t)rows * d);
        double lt = 0.0;
        rb = 0;
        for (int b = 0; b < nimg; b++) {
            const int nr = w->nrow[b], kp = w->npart[b];
            /* groups: (anchor range, negative range) */
            int ga[2][2], gn[2][2], ng = 0;
            if (w->plain[b]) {
                ga[0][0] = rb, ga[0][1] = nr, gn[0][0] = rb, gn[0][1] = nr, ng = 1;
            } else {
                ga[0][0] = rb, ga[0][1] = kp, gn[0][0] = rb + kp, gn[0][1] = nr - kp;
                ga[1][0] = rb + kp, ga[1][1] = nr - kp, gn[1][0] = rb, gn[1][1] = kp;
                ng = 2;
            }
            for (int q = 0; q < ng; q++) {
                const int a0 = ga[q][0], na = ga[q][1];
                int k = 0;
                for (int a = 0; a < na; a++) {
                    w->pos[a] = a0 + a;
                    w->noff[a] = k;
                    for (int j = 0; j < gn[q][1]; j++) {
                        const int key = gn[q][0] + j;
                        if (key != a0 + a) w->neg[k++] = key;
                    }
                }
                w->noff[na] = k;
                const double wq = 1.0 / (ng * nimg * m->ntap);
                lt += wq * m->ntap * ew_patchnce_loss(w->dy + (size_t)a0 * d, w->hq[t].y + (size_t)a0 * d,
                                                      w->hk[t].y, na, d, w->pos, w->noff, w->neg, c->nce_t, g * wq);
            }
            rb += nr;
        }
        total += lt / m->ntap;
        EW_TRY(cut_head_backward(m, t, &w->hq[t], w->dy));
        rb = 0;
        for (int b = 0; b < nimg; b++) {
            const size_t so = (size_t)(i0 + b) * C * hw;
            ew_patch_scatter_add(cut_slot_grad(&w->e, slot) + so, w->hq[t].dg + (size_t)rb * C, w->idx + rb, 1, C,
                                 hw, w->nrow[b]);
            rb += w->nrow[b];
        }
    }
    *loss = total;
    return EW_OK;
}

/* One CUT iteration (D step then G + F step) on the batch in w->x: sim
 * images [0, B), real [B, 2B), masks of the sim crops in w->mask. */
static ew_status_t train_step(ew_cut_model_t *m, cut_work_t *w, ew_rng_t *r, double losses[3])
{
    const ew_cut_config_t *c = &m->cfg;
    const int B = c->batch, h = c->crop, nG = c->nce_idt ? 2 * B : B;
    const size_t px = (size_t)h * h;
    ew_params_t *P = &m->P;
    const size_t nd = P->n_train - m->gf_floats;
    /* generator on sim (and real, for the identity term) */
    EW_TRY(cut_net_forward(&m->G, P, &w->g, w->x, nG, h, h, -1, 1));
    memcpy(w->fake, cut_slot(&w->g, cut_net_out(&m->G)), sizeof(float) * nG * px);
    /* discriminator step */
    ew_params_zero_grad(P);
    EW_TRY(cut_net_forward(&m->D, P, &w->d, w->fake, B, h, h, -1, 1));
    int dout = cut_net_out(&m->D);
    size_t np = cut_slot_size(&w->d, dout);
    cut_act_zero_grad(&w->d);
    double lf = ew_loss_lsgan(cut_slot_grad(&w->d, dout), cut_slot(&w->d, dout), np, 0.0, 0.5);
    EW_TRY(cut_net_backward(&m->D, P, &w->d, 1, NULL));
    EW_TRY(cut_net_forward(&m->D, P, &w->d, w->x + (size_t)B * px, B, h, h, -1, 1));
    cut_act_zero_grad(&w->d);
    double lr_ = ew_loss_lsgan(cut_slot_grad(&w->d, dout), cut_slot(&w->d, dout), np, 1.0, 0.5);
    EW_TRY(cut_net_backward(&m->D, P, &w->d, 1, NULL));
    cut_adam_range(P, m->gf_floats, nd, c->lr, c->beta1, c->beta2, P->step);
    losses[0] = 0.5 * (lf + lr_);
    /* generator step: GAN term */
    ew_params_zero_grad(P);
    memset(w->dfake, 0, sizeof(float) * nG * px);
    EW_TRY(cut_net_forward(&m->D, P, &w->d, w->fake, B, h, h, -1, 1));
    cut_act_zero_grad(&w->d);
    losses[1] = ew_loss_lsgan(cut_slot_grad(&w->d, dout), cut_slot(&w->d, dout), np, 1.0, c->lambda_gan);
    EW_TRY(cut_net_backward(&m->D, P, &w->d, 0, w->dfake));
    /* PatchNCE: encoder on the outputs */
    EW_TRY(cut_net_forward(&m->G, P, &w->e, w->fake, nG, h, h, m->tap_ops, 1));
    cut_act_zero_grad(&w->e);
    double lx = 0.0, ly = 0.0;
    const double gn = c->nce_idt ? 0.5 * c->lambda_nce : c->lambda_nce;
    EW_TRY(patchnce(m, w, 0, B, 1, gn, r, &lx));
    if (c->nce_idt) EW_TRY(patchnce(m, w, B, 2 * B, 0, gn, r, &ly));
    losses[2] = c->nce_idt ? 0.5 * (lx + ly) : lx;
    EW_TRY(cut_net_backward(&m->G, P, &w->e, 1, w->dfake));
    /* through the generator */
    cut_act_zero_grad(&w->g);
    ew_accumulate(cut_slot_grad(&w->g, cut_net_out(&m->G)), w->dfake, nG * px);
    EW_TRY(cut_net_backward(&m->G, P, &w->g, 1, NULL));
    cut_adam_range(P, 0, m->gf_floats, c->lr, c->beta1, c->beta2, P->step);
    P->step++;
    for (int i = 0; i < 3; i++)
        if (!isfinite(losses[i]))
            return ew_fail(EW_ERR_NUMERIC, "noise model: loss %d is %g at step %lld", i, losses[i],
                           (long long)P->step);
    return EW_OK;
}

/* ---- evaluation ---- */

static void blur_axis(float *dst, const float *src, int w, int h, const double *k, int rad, int along_x)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0.0;
            for (int t = -rad; t <= rad; t++) {
                int xx = along_x ? x + t : x, yy = along_x ? y : y + t;
                const int n = along_x ? w : h;
                int *v = along_x ? &xx : &yy;
                while (*v < 0 || *v >= n) *v = *v < 0 ? -*v : 2 * n - 2 - *v;
                s += k[t + rad] * src[(size_t)yy * w + xx];
            }
            dst[(size_t)y * w + x] = (float)s;
        }
}

static void gauss_blur(float *img, int w, int h, double sigma, float *tmp)
{
    if (!(sigma > 0)) return;
    int rad = (int)ceil(3 * sigma);
    if (rad > w - 1) rad = w - 1;
    if (rad > h - 1) rad = h - 1;
    double k[2 * 64 + 1], s = 0.0;
    if (rad > 64) rad = 64;
    for (int t = -rad; t <= rad; t++) s += k[t + rad] = exp(-0.5 * t * t / (sigma * sigma));
    for (int t = 0; t <= 2 * rad; t++) k[t] /= s;
    blur_axis(tmp, img, w, h, k, rad, 1);
    blur_axis(img, tmp, w, h, k, rad, 0);
}

double ew_cut_masked_lowpass_corr(const float *a, const float *b, const uint8_t *mask, int w, int h, double sigma)
{
    const size_t n = (size_t)w * h;
    float *A = ew_alloc_array(3 * n, sizeof(float));
    if (!A) return NAN;
    float *Bf = A + n, *T = Bf + n;
    memcpy(A, a, sizeof(float) * n);
    memcpy(Bf, b, sizeof(float) * n);
    gauss_blur(A, w, h, sigma, T);
    gauss_blur(Bf, w, h, sigma, T);
    double sa = 0, sb = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        if (!mask || mask[i]) sa += A[i], sb += Bf[i], k++;
    double r = NAN;
    if (k >= 3) {
        const double ma = sa / k, mb = sb / k;
        double sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < n; i++)
            if (!mask || mask[i]) {
                const double da = A[i] - ma, db = Bf[i] - mb;
                sab += da * db, saa += da * da, sbb += db * db;
            }
        if (saa > 0 && sbb > 0) r = sab / sqrt(saa * sbb);
    }
    ew_free(A);
    return r;
}

typedef struct {
    int n, size;
    float *sim, *real, *out, *clean;
    uint8_t *mask;
} cut_evalset_t;

static void evalset_free(cut_evalset_t *e)
{
    ew_free(e->sim);
    ew_free(e->real);
    ew_free(e->out);
    ew_free(e->clean);
    ew_free(e->mask);
}

static ew_status_t evalset_make(const ew_cut_config_t *c, const ew_cut_set_t *sim, const ew_cut_set_t *real,
                                cut_evalset_t *e)
{
    memset(e, 0, sizeof(*e));
    int size = c->eval_size;
    while (size > 16 && (!set_fits(sim, size) || !set_fits(real, size))) size -= 4;
    if (!set_fits(sim, size) || !set_fits(real, size))
        return ew_fail(EW_ERR_ARG, "noise model: images are smaller than the 16-pixel evaluation crop");
    e->n = c->eval_crops > 0 ? c->eval_crops : 1;
    e->size = size;
    const size_t px = (size_t)size * size, n = (size_t)e->n;
    e->sim = ew_alloc_array(n * px, sizeof(float));
    e->real = ew_alloc_array(n * px, sizeof(float));
    e->out = ew_alloc_array(n * px, sizeof(float));
    e->clean = ew_alloc_array(n * px, sizeof(float));
    e->mask = ew_alloc_array(n * px, 1);
    if (!e->sim || !e->real || !e->out || !e->clean || !e->mask) {
        evalset_free(e);
        return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for %d evaluation crops", e->n);
    }
    for (int i = 0; i < e->n; i++) {
        ew_rng_t r;
        ew_rng_init(&r, c->seed ^ 0x5eed5eedULL, ew_rng_stream_id(EW_RNG_TAG_GENERIC, (uint64_t)i));
        int x0, y0;
        const ew_cut_image_t *is = &sim->img[i % sim->n];
        ew_cut_crop_origin(is, size, c->min_particle_fraction, &r, &x0, &y0);
        take_crop(is, x0, y0, size, 0, 0, c->clip_sd, e->sim + i * px, e->mask + i * px, e->clean + i * px);
        const ew_cut_image_t *ir = &real->img[i % real->n];
        ew_cut_crop_origin(ir, size, 0.0, &r, &x0, &y0);
        take_crop(ir, x0, y0, size, 0, 0, c->clip_sd, e->real + i * px, NULL, NULL);
    }
    return EW_OK;
}

/* rms log10 distance of the spectra of a and b; the spectrum of a is
   written to path_a (a table) when not NULL, that of b to path_b */
static ew_status_t spectrum_dist(const float *a, const float *b, int n, int size, double pixel, double fband,
                                 double *out, double *out_band, const char *path_a, const char *path_b)
{
    ew_spectrum_t sa = {0}, sb = {0};
    ew_spectrum_distance_t d;
    ew_status_t s = ew_image_power_spectrum(a, (size_t)n, size, size, pixel, &sa);
    if (s == EW_OK) s = ew_image_power_spectrum(b, (size_t)n, size, size, pixel, &sb);
    if (s == EW_OK && path_a) s = ew_spectrum_write_table(path_a, &sa);
    if (s == EW_OK && path_b) s = ew_spectrum_write_table(path_b, &sb);
    if (s == EW_OK) s = ew_spectrum_distance(&sa, &sb, 0.5 / (size * pixel), 0.5 / pixel, &d);
    if (s == EW_OK) *out = d.rms_log10;
    *out_band = NAN;
    if (s == EW_OK && fband < 0.5 / pixel && ew_spectrum_distance(&sa, &sb, fband, 0.5 / pixel, &d) == EW_OK)
        *out_band = d.rms_log10;
    ew_spectrum_free(&sa);
    ew_spectrum_free(&sb);
    return s;
}

static ew_status_t hist_dist(const float *a, const float *b, size_t n, double *w1, double *js)
{
    double lo, hi;
    EW_TRY(ew_histogram_range(a, n, b, n, &lo, &hi));
    ew_histogram_t ha = {0}, hb = {0};
    ew_hist_distance_t d;
    ew_status_t s = ew_histogram(a, n, lo, hi, 100, &ha);
    if (s == EW_OK) s = ew_histogram(b, n, lo, hi, 100, &hb);
    if (s == EW_OK) s = ew_histogram_distance(&ha, &hb, &d);
    if (s == EW_OK) *w1 = d.w1, *js = d.js;
    ew_histogram_free(&ha);
    ew_histogram_free(&hb);
    return s;
}

/* outdir (may be NULL): where psd_{translated,simulated,real}.txt go */
static ew_status_t evaluate_on(ew_cut_model_t *m, const ew_cut_config_t *c, cut_evalset_t *e, ew_cut_metrics_t *met,
                               const char *outdir)
{
    const size_t px = (size_t)e->size * e->size;
    char pt[4096], ps[4096], pr[4096];
    if (outdir) {
        snprintf(pt, sizeof(pt), "%s/psd_translated.txt", outdir);
        snprintf(ps, sizeof(ps), "%s/psd_simulated.txt", outdir);
        snprintf(pr, sizeof(pr), "%s/psd_real.txt", outdir);
    }
    for (int i = 0; i < e->n; i++) EW_TRY(ew_cut_generate(m, e->sim + i * px, 1, e->size, e->size, e->out + i * px));
    const double fband = c->lowpass_A > 0 ? 1.0 / c->lowpass_A : 0.0;
    EW_TRY(spectrum_dist(e->out, e->real, e->n, e->size, c->pixel, fband, &met->psd_translated,
                         &met->psd_band_translated, outdir ? pt : NULL, outdir ? pr : NULL));
    EW_TRY(spectrum_dist(e->sim, e->real, e->n, e->size, c->pixel, fband, &met->psd_simulated,
                         &met->psd_band_simulated, outdir ? ps : NULL, NULL));
    EW_TRY(hist_dist(e->out, e->real, e->n * px, &met->hist_w1_translated, &met->hist_js_translated));
    EW_TRY(hist_dist(e->sim, e->real, e->n * px, &met->hist_w1_simulated, &met->hist_js_simulated));
    /* half power at 1 / lowpass: exp(-2 pi^2 sigma^2 f^2) = 1/2 */
    const double sigma = c->lowpass_A > 0 ? sqrt(log(2.0) / 2.0) / EW_PI * c->lowpass_A / c->pixel : 0.0;
    double st = 0, ss = 0;
    int k = 0;
    for (int i = 0; i < e->n; i++) {
        size_t nm = 0;
        for (size_t j = 0; j < px; j++) nm += e->mask[i * px + j];
        if (nm < 20) continue;
        const double rt = ew_cut_masked_lowpass_corr(e->out + i * px, e->clean + i * px, e->mask + i * px, e->size,
                                                      e->size, sigma);
        const double rs = ew_cut_masked_lowpass_corr(e->sim + i * px, e->clean + i * px, e->mask + i * px, e->size,
                                                      e->size, sigma);
        if (!isfinite(rt) || !isfinite(rs)) continue;
        st += rt, ss += rs, k++;
    }
    met->content_crops = k;
    met->content_translated = k ? st / k : NAN;
    met->content_simulated = k ? ss / k : NAN;
    return EW_OK;
}

ew_status_t ew_cut_evaluate(ew_cut_model_t *m, const ew_cut_config_t *cfg, const ew_cut_set_t *sim,
                            const ew_cut_set_t *real, ew_cut_metrics_t *met)
{
    cut_evalset_t e;
    EW_TRY(evalset_make(cfg, sim, real, &e));
    ew_status_t s = evaluate_on(m, cfg, &e, met, NULL);
    evalset_free(&e);
    return s;
}

static ew_status_t write_samples(ew_cut_model_t *m, const ew_cut_config_t *c, cut_evalset_t *e, int64_t step)
{
    const int k = e->n < 6 ? e->n : 6;
    const size_t px = (size_t)e->size * e->size;
    float *tiles = ew_alloc_array(3 * (size_t)k * px, sizeof(float));
    if (!tiles) return ew_fail(EW_ERR_NOMEM, "noise model: out of memory for the sample montage");
    ew_status_t s = EW_OK;
    for (int i = 0; i < k && s == EW_OK; i++) {
        memcpy(tiles + i * px, e->sim + i * px, sizeof(float) * px);
        s = ew_cut_generate(m, e->sim + i * px, 1, e->size, e->size, tiles + (k + i) * px);
        memcpy(tiles + (2 * k + i) * px, e->real + i * px, sizeof(float) * px);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/samples/step_%07lld.png", c->outdir, (long long)step);
    ew_image_options_t o = ew_image_options_default();
    o.colormap = EW_CMAP_GRAY;
    o.fixed_range = 1;
    o.vmin = -1.0;
    o.vmax = 1.0;
    if (s == EW_OK) s = ew_png_montage(path, tiles, 3 * k, e->size, e->size, NULL, k, 1, NULL, 1, &o);
    ew_free(tiles);
    return s;
}

static ew_status_t write_metrics_json(const char *outdir, const ew_cut_metrics_t *m)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/metrics.json", outdir);
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    fprintf(f,
            "{\"steps\": %lld, \"seconds\": %.3f, \"seconds_per_step\": %.4f, \"psd_rms_log10_translated\": %.5f, "
            "\"psd_rms_log10_simulated\": %.5f, \"psd_band_translated\": %.5f, \"psd_band_simulated\": %.5f, "
            "\"hist_w1_translated\": %.5f, \"hist_w1_simulated\": %.5f, "
            "\"hist_js_translated\": %.5f, \"hist_js_simulated\": %.5f, \"content_corr_translated\": %.5f, "
            "\"content_corr_simulated\": %.5f, \"content_crops\": %d, \"loss_D\": [%.5f, %.5f], "
            "\"loss_G_GAN\": [%.5f, %.5f], \"loss_NCE\": [%.5f, %.5f]}\n",
            (long long)m->steps, m->seconds, m->seconds_per_step, m->psd_translated, m->psd_simulated,
            m->psd_band_translated, m->psd_band_simulated,
            m->hist_w1_translated, m->hist_w1_simulated, m->hist_js_translated, m->hist_js_simulated,
            m->content_translated, m->content_simulated, m->content_crops, m->loss_d_first, m->loss_d_last,
            m->loss_gan_first, m->loss_gan_last, m->loss_nce_first, m->loss_nce_last);
    return ew_atomic_commit(f, tmp, path);
}

ew_status_t ew_cut_train(const ew_cut_config_t *cfg, const ew_cut_set_t *sim, const ew_cut_set_t *real,
                         ew_cut_model_t **model, ew_cut_metrics_t *met)
{
    if (model) *model = NULL;
    EW_TRY(ew_cut_config_check(cfg));
    if (!set_fits(sim, cfg->crop))
        return ew_fail(EW_ERR_ARG, "noise model: no simulated images, or one smaller than crop = %d", cfg->crop);
    if (!set_fits(real, cfg->crop))
        return ew_fail(EW_ERR_ARG, "noise model: no real images, or one smaller than crop = %d", cfg->crop);
    for (size_t i = 0; i < sim->n; i++)
        if (!sim->img[i].mask) return ew_fail(EW_ERR_ARG, "noise model: simulated image %zu has no mask", i);
    ew_cut_model_t *m = NULL;
    ew_status_t s;
    if (cfg->resume) {
        EW_TRY(ew_cut_model_load(cfg->resume, &m));
        ew_cut_config_t keep = m->cfg;
        m->cfg = *cfg;
        /* the architecture comes from the checkpoint */
        m->cfg.ngf = keep.ngf, m->cfg.n_blocks = keep.n_blocks, m->cfg.ndf = keep.ndf;
        m->cfg.n_layers_d = keep.n_layers_d, m->cfg.mlp_dim = keep.mlp_dim;
        m->cfg.identity_skip = keep.identity_skip;
        m->cfg.outdir = NULL, m->cfg.resume = NULL;
    } else {
        EW_TRY(ew_cut_model_create(cfg, &m));
    }
    ew_cut_metrics_t local = {0};
    ew_cut_metrics_t *M = met ? met : &local;
    memset(M, 0, sizeof(*M));
    const int64_t start = m->P.step, steps = cfg->steps;
    double *hist = steps > 0 ? ew_calloc_array((size_t)steps * 3, sizeof(double)) : NULL;
    cut_work_t w;
    cut_evalset_t e;
    memset(&e, 0, sizeof(e));
    s = work_alloc(&w, m);
    if (s == EW_OK && steps > 0 && !hist) s = ew_fail(EW_ERR_NOMEM, "noise model: out of memory for the history");
    if (s != EW_OK) {
        ew_free(hist);
        ew_cut_model_free(m);
        return s;
    }
    if (cfg->outdir) {
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/samples", cfg->outdir);
        s = make_dir(cfg->outdir);
        if (s == EW_OK) s = make_dir(sub);
    }
    if (s == EW_OK) s = evalset_make(cfg, sim, real, &e);
    const int B = cfg->batch, h = cfg->crop;
    const size_t px = (size_t)h * h;
    char ckpt[4096];
    if (cfg->outdir) snprintf(ckpt, sizeof(ckpt), "%s/cut.safetensors", cfg->outdir);
    ew_progress_t *prog = cfg->progress ? ew_progress_start("noise model", (uint64_t)steps) : NULL;
    if (start > 0 && start < steps) ew_progress_add(prog, (uint64_t)start);
    const double t0 = ew_time_now();
    int64_t done = 0;
    for (int64_t it = start; it < steps && s == EW_OK; it++) {
        ew_rng_t r;
        ew_rng_init(&r, cfg->seed, ew_rng_stream_id(EW_RNG_TAG_BATCH, (uint64_t)it));
        for (int b = 0; b < 2 * B; b++) {
            const ew_cut_set_t *set = b < B ? sim : real;
            const ew_cut_image_t *im = &set->img[(size_t)(ew_rng_uniform(&r) * set->n) % set->n];
            int x0, y0;
            ew_cut_crop_origin(im, h, b < B ? cfg->min_particle_fraction : 0.0, &r, &x0, &y0);
            const int fx = cfg->flip && ew_rng_uniform(&r) < 0.5, fy = cfg->flip && ew_rng_uniform(&r) < 0.5;
            take_crop(im, x0, y0, h, fx, fy, cfg->clip_sd, w.x + b * px, w.mask + b * px, NULL);
        }
        ew_rng_t rs;
        ew_rng_init(&rs, cfg->seed, ew_rng_stream_id(EW_RNG_TAG_AUGMENT, (uint64_t)it));
        double l[3];
        s = train_step(m, &w, &rs, l);
        if (s != EW_OK) break;
        memcpy(hist + 3 * it, l, sizeof(l));
        done++;
        ew_progress_add(prog, 1);
        ew_progress_status(prog, "D %.3f G %.3f NCE %.3f", l[0], l[1], l[2]);
        const int64_t k = it + 1;
        if (cfg->outdir && cfg->sample_every > 0 && k % cfg->sample_every == 0 && k < steps)
            s = write_samples(m, cfg, &e, k);
        if (s == EW_OK && cfg->outdir && cfg->checkpoint_every > 0 && k % cfg->checkpoint_every == 0 && k < steps)
            s = ew_cut_model_save(m, ckpt, 1);
    }
    ew_progress_finish(prog);
    M->seconds = ew_time_now() - t0;
    M->steps = steps;
    M->seconds_per_step = done > 0 ? M->seconds / done : 0.0;
    if (s == EW_OK && cfg->outdir) s = ew_cut_model_save(m, ckpt, 1);
    if (s == EW_OK && cfg->outdir) s = write_samples(m, cfg, &e, steps);
    if (s == EW_OK) s = evaluate_on(m, cfg, &e, M, cfg->outdir);
    if (s == EW_OK && steps > 0) {
        const int64_t win = steps / 10 > 0 ? steps / 10 : 1, a0 = start, n = steps - start;
        double f[3] = {0}, g[3] = {0};
        const int64_t wn = win < n ? win : n;
        for (int64_t i = 0; i < wn; i++)
            for (int j = 0; j < 3; j++) f[j] += hist[3 * (a0 + i) + j] / wn, g[j] += hist[3 * (steps - 1 - i) + j] / wn;
        M->loss_d_first = f[0], M->loss_gan_first = f[1], M->loss_nce_first = f[2];
        M->loss_d_last = g[0], M->loss_gan_last = g[1], M->loss_nce_last = g[2];
    }
    if (s == EW_OK && cfg->outdir) s = write_metrics_json(cfg->outdir, M);
    evalset_free(&e);
    work_free(&w);
    if (met && s == EW_OK) met->history = hist;
    else ew_free(hist);
    if (s == EW_OK && model) *model = m;
    else ew_cut_model_free(m);
    return s;
}
