/* ewald recon: training, inference and evaluation of the self-supervised
 * XFEL model (ssl.h). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/align.h"
#include "eval/fsc.h"
#include "eval/orient.h"
#include "io/npy.h"
#include "io/png.h"
#include "nn/checkpoint.h"
#include "nn/dist.h"
#include "nn/optim.h"
#include "physics/detector.h"
#include "recon/emc.h"
#include "recon/ssl.h"
#include "recon/ssl_impl.h"
#include "recon/ssl_kernels.h"

void ew_ssl_history_free(ew_ssl_history_t *h)
{
    if (!h) return;
    ew_free(h->log);
    memset(h, 0, sizeof *h);
}

static ew_status_t check_data(const ew_ssl_model_t *m, const ew_ssl_data_t *d)
{
    if (!d->data) return ew_fail(EW_ERR_ARG, "ssl: dataset has no patterns");
    if (d->nx != m->nx || d->ny != m->ny)
        return ew_fail(EW_ERR_ARG, "ssl: dataset detector %dx%d differs from the model's %dx%d", d->nx, d->ny, m->nx,
                       m->ny);
    return EW_OK;
}

/* The value a recorded pixel enters the model with. With the Poisson
 * likelihood: photon counting, the value rounded to the nearest integer
 * (below half a photon: 0), as for EMC; without it the Gaussian readout
 * noise of an integrating detector (sigma 0.1 photons) leaves ~0.04
 * phantom photons in every empty pixel, as many in all as a pattern's real
 * photons at 128 x 128, and the likelihood's optimum drifts by ~10 degrees
 * from the true orientation. With the MSE (the reference): the recorded
 * value clamped at 0. */
static inline float photon_count(float x) { return x >= 0.5f ? floorf(x + 0.5f) : 0.0f; }

static inline float pixel_value(const ew_ssl_model_t *m, float x)
{
    if (!(x > 0)) return 0.0f;
    return m->cfg.loss == EW_SSL_LOSS_POISSON ? photon_count(x) : x;
}

/* Good pixels with |s| <= cut (pixels are sorted by |s|). */
static size_t pixels_within(const ew_ssl_model_t *m, double cut)
{
    size_t lo = 0, hi = m->npix_good;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->pix_s[mid] <= cut)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Work buffers of one step. */
typedef struct {
    int B;           /* local batch */
    float *counts;   /* (B, npix) photons used as the target */
    float *xlog;     /* (B, npix) log(c I + 1) */
    uint8_t *occl;   /* (B, npix) occluded pixels of the encoder input */
    float *encin;    /* (B, es^2) */
    float *dd6;      /* (B, 6) */
    float *dh;       /* (B) */
    double *lossb;   /* (B) */
    double *tgt;     /* (B, 9) pseudo-label rotations of the batch (valid when have_tgt) */
    int have_tgt;
    float *dgt;      /* (threads, gn^3) private grid gradients */
    int nthr;
    /* SIREN per pixel */
    float *xin, *dout, *dx;
} work_t;

static void work_free(work_t *w)
{
    ew_free(w->counts);
    ew_free(w->xlog);
    ew_free(w->occl);
    ew_free(w->encin);
    ew_free(w->dd6);
    ew_free(w->dh);
    ew_free(w->lossb);
    ew_free(w->tgt);
    ew_free(w->dgt);
    ew_free(w->xin);
    ew_free(w->dout);
    ew_free(w->dx);
    memset(w, 0, sizeof *w);
}

static ew_status_t work_alloc(work_t *w, const ew_ssl_model_t *m, int B)
{
    memset(w, 0, sizeof *w);
    w->B = B;
    w->nthr = omp_get_max_threads();
    size_t N = (size_t)m->gn * m->gn * m->gn;
    w->counts = ew_alloc_array((size_t)B * m->npix, sizeof(float));
    w->xlog = ew_alloc_array((size_t)B * m->npix, sizeof(float));
    w->occl = ew_calloc_array((size_t)B * m->npix, 1);
    w->encin = ew_alloc_array((size_t)B * m->es * m->es, sizeof(float));
    w->dd6 = ew_alloc_array((size_t)B * 6, sizeof(float));
    w->dh = ew_alloc_array((size_t)B, sizeof(float));
    w->lossb = ew_alloc_array((size_t)B, sizeof(double));
    w->tgt = ew_alloc_array((size_t)B * 9, sizeof(double));
    w->dgt = ew_alloc_array((size_t)w->nthr * N, sizeof(float));
    int ok = w->counts && w->xlog && w->occl && w->encin && w->dd6 && w->dh && w->lossb && w->tgt && w->dgt;
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_PIXEL) {
        w->xin = ew_alloc_array(6 * m->npix_good, sizeof(float));
        w->dout = ew_alloc_array(2 * m->npix_good, sizeof(float));
        w->dx = ew_alloc_array(6 * m->npix_good, sizeof(float));
        ok = ok && w->xin && w->dout && w->dx;
    }
    if (!ok) {
        work_free(w);
        return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the work buffers (batch %d)", B);
    }
    return EW_OK;
}

/* Per-pattern recorded photon totals over good pixels (the measured
 * fluence distribution for the augmentation). */
static ew_status_t measured_totals(const ew_ssl_model_t *m, const ew_ssl_data_t *d, double **out)
{
    double *t = ew_alloc_array(d->n, sizeof(double));
    if (!t) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu pattern totals", d->n);
    double mean = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : mean)
    for (size_t i = 0; i < d->n; i++) {
        const float *x = d->data + i * m->npix;
        double s = 0.0;
        for (size_t q = 0; q < m->npix_good; q++) s += pixel_value(m, x[m->pix[q]]);
        t[i] = s;
        mean += s;
    }
    (void)mean;
    *out = t;
    return EW_OK;
}

/* Fill the work buffers for pattern item (dataset index i) at global batch
 * position j of step `step`. */
static void prepare_pattern(const ew_ssl_model_t *m, const ew_ssl_data_t *d, const double *totals, size_t i,
                            int64_t step, int j, int b, work_t *w)
{
    const ew_ssl_config_t *c = &m->cfg;
    size_t npix = m->npix;
    float *cnt = w->counts + (size_t)b * npix;
    float *xl = w->xlog + (size_t)b * npix;
    uint8_t *oc = w->occl + (size_t)b * npix;
    ew_rng_t r;
    ew_rng_init(&r, c->seed, ew_rng_stream_id(EW_RNG_TAG_AUGMENT, (uint64_t)step * (uint64_t)c->batch + (uint64_t)j));
    int aug = c->augment && d->expected;
    if (aug) {
        const float *e = d->expected + i * npix;
        double te = 0.0;
        for (size_t q = 0; q < m->npix_good; q++) te += e[m->pix[q]];
        /* rescale the noise-free pattern to the photon total of a random
         * measured pattern (the measured fluence distribution) */
        size_t pick = (size_t)ew_rng_below(&r, d->n);
        double rel = te > 0 ? totals[pick] / te : 1.0;
        for (size_t p = 0; p < npix; p++) {
            if (m->mask[p] == EW_MASK_BAD) {
                cnt[p] = 0.0f;
                continue;
            }
            double lam = (double)e[p] * rel;
            double v = lam > 0 ? (double)ew_rng_poisson(&r, lam) : 0.0;
            if (c->aug_sigma > 0) v += c->aug_sigma * ew_rng_normal(&r);
            cnt[p] = pixel_value(m, (float)v);
        }
    } else {
        const float *x = d->data + i * npix;
        for (size_t p = 0; p < npix; p++) cnt[p] = m->mask[p] == EW_MASK_BAD ? 0.0f : pixel_value(m, x[p]);
    }
    for (size_t p = 0; p < npix; p++) xl[p] = log1pf((float)m->c * cnt[p]);
    memset(oc, 0, npix);
    int npatch = aug ? c->aug_patches : 0;
    double fac = (double)m->nx / 128.0;
    for (int k = 0; k < npatch; k++) {
        int side = (int)lround((4 + (int)ew_rng_below(&r, 3)) * fac);
        if (side < 1) side = 1;
        int x0 = (int)ew_rng_below(&r, (uint64_t)(m->nx - side + 1));
        int y0 = (int)ew_rng_below(&r, (uint64_t)(m->ny - side + 1));
        for (int y = y0; y < y0 + side; y++) memset(oc + (size_t)y * m->nx + x0, 1, (size_t)side);
    }
    ew_ssl_encoder_input(m, cnt, npatch ? oc : NULL, w->encin + (size_t)b * m->es * m->es);
}

/* Super-pixels for pose search and the EMC start: bin x bin pixels (bin
 * divides the detector side), summed photon counts (still Poisson), mean s
 * and summed correction of the good pixels with |s| <= cut in each bin. */
typedef struct {
    size_t n;
    float *s, *k;   /* (n, 3), (n) */
    int *of_pix;    /* (npix) super-pixel of each pixel, -1: none */
    int *idx;       /* (n) 0..n-1 */
} spx_t;

static void spx_free(spx_t *S)
{
    ew_free(S->s);
    ew_free(S->k);
    ew_free(S->of_pix);
    ew_free(S->idx);
    memset(S, 0, sizeof *S);
}

static ew_status_t spx_build(const ew_ssl_model_t *m, double cut, int bin, spx_t *S)
{
    memset(S, 0, sizeof *S);
    int es = m->nx / bin;
    size_t nb = (size_t)es * es;
    S->s = ew_calloc_array(3 * nb, sizeof(float));
    S->k = ew_calloc_array(nb, sizeof(float));
    S->of_pix = ew_alloc_array(m->npix, sizeof(int));
    S->idx = ew_alloc_array(nb, sizeof(int));
    int *cnt = ew_calloc_array(nb, sizeof(int)), *map = ew_alloc_array(nb, sizeof(int));
    if (!S->s || !S->k || !S->of_pix || !S->idx || !cnt || !map) {
        ew_free(cnt);
        ew_free(map);
        spx_free(S);
        return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the search super-pixels");
    }
    double *acc = ew_calloc_array(4 * nb, sizeof(double));
    if (!acc) {
        ew_free(cnt);
        ew_free(map);
        spx_free(S);
        return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the search super-pixels");
    }
    for (size_t p = 0; p < m->npix; p++) S->of_pix[p] = -1;
    for (size_t q = 0; q < m->npix_good && m->pix_s[q] <= cut; q++) {
        int p = m->pix[q];
        int y = p / m->nx, x = p % m->nx;
        size_t b = (size_t)(y / bin) * es + (size_t)(x / bin);
        const float *sp = m->s + 3 * (size_t)p;
        for (int a = 0; a < 3; a++) acc[4 * b + a] += sp[a];
        acc[4 * b + 3] += m->k[p];
        cnt[b]++;
        S->of_pix[p] = (int)b; /* bin for now, remapped below */
    }
    for (size_t b = 0; b < nb; b++) {
        map[b] = -1;
        if (!cnt[b]) continue;
        size_t j = S->n++;
        map[b] = (int)j;
        for (int a = 0; a < 3; a++) S->s[3 * j + a] = (float)(acc[4 * b + a] / cnt[b]);
        S->k[j] = (float)acc[4 * b + 3];
        S->idx[j] = (int)j;
    }
    for (size_t p = 0; p < m->npix; p++)
        if (S->of_pix[p] >= 0) S->of_pix[p] = map[S->of_pix[p]];
    ew_free(acc);
    ew_free(cnt);
    ew_free(map);
    return EW_OK;
}

/* Summed counts of one pattern per super-pixel (cs, n) and their log
 * values (xs). */
static void spx_counts(const ew_ssl_model_t *m, const spx_t *S, const float *counts, float *cs, float *xs)
{
    memset(cs, 0, S->n * sizeof(float));
    for (size_t p = 0; p < m->npix; p++)
        if (S->of_pix[p] >= 0 && counts[p] > 0) cs[S->of_pix[p]] += counts[p];
    for (size_t j = 0; j < S->n; j++) xs[j] = log1pf((float)m->c * cs[j]);
}

/* A recorded pattern x as the model sees it (pixel_value, into cb, npix)
 * and summed on the super-pixels (cs, xs as spx_counts). */
static void spx_load(const ew_ssl_model_t *m, const spx_t *S, const float *x, float *cb, float *cs, float *xs)
{
    for (size_t p = 0; p < m->npix; p++) cb[p] = pixel_value(m, x[p]);
    spx_counts(m, S, cb, cs, xs);
}

/* Index of the rotation of rot (nrot row-major matrices) with the lowest
 * Poisson loss on the super-pixels. */
static long search_best(const ew_ssl_model_t *m, const spx_t *S, const float *cs, const float *xs, double sc,
                        const double *rot, size_t nrot)
{
    double best = INFINITY;
    long kb = -1;
    for (size_t k = 0; k < nrot; k++) {
        double l = ew_ssl_pattern_loss(m->G, m->gn, m->ds, rot + 9 * k, S->s, S->idx, S->n, xs, cs, S->k, sc,
                                       m->c, 1);
        if (l < best) {
            best = l;
            kb = (long)k;
        }
    }
    (void)best;
    return kb;
}

/* Loss of the SIREN-per-pixel decoder for one pattern (fused forward and
 * backward). */
static ew_status_t pattern_siren(ew_ssl_model_t *m, work_t *w, int b, const double R[9], double sc, size_t np,
                                 double wgt, double *loss, double dR[9], double *dm)
{
    const float *x = w->xlog + (size_t)b * m->npix, *cnt = w->counts + (size_t)b * m->npix;
    double a = EW_PI / m->s_max_corner;
    for (size_t q = 0; q < np; q++) {
        const float *sp = m->s + 3 * (size_t)m->pix[q];
        for (int k = 0; k < 3; k++) {
            double u = R[k] * sp[0] + R[3 + k] * sp[1] + R[6 + k] * sp[2];
            w->xin[3 * q + k] = (float)(u * a);
            w->xin[3 * (np + q) + k] = (float)(-u * a);
        }
    }
    const float *o;
    EW_TRY(ew_mlp_forward(&m->mlp, &m->P, w->xin, (int)(2 * np), &o));
    double L = 0.0, gm = 0.0;
    for (size_t q = 0; q < np; q++) {
        int p = m->pix[q];
        double df, dmp;
        L += wgt * ew_ssl_render_pixel(m->cfg.loss == EW_SSL_LOSS_POISSON, (double)o[q] + o[np + q], sc, m->k[p],
                                       x[p], cnt[p], m->c, &df, &dmp);
        gm += wgt * dmp;
        w->dout[q] = w->dout[np + q] = (float)(wgt * df);
    }
    memset(w->dx, 0, 6 * np * sizeof(float));
    EW_TRY(ew_mlp_backward(&m->mlp, &m->P, w->dout, w->dx));
    double gR[9] = {0};
    for (size_t q = 0; q < np; q++) {
        const float *sp = m->s + 3 * (size_t)m->pix[q];
        for (int k = 0; k < 3; k++) {
            double du = ((double)w->dx[3 * q + k] - w->dx[3 * (np + q) + k]) * a;
            for (int j = 0; j < 3; j++) gR[3 * j + k] += du * sp[j];
        }
    }
    memcpy(dR, gR, sizeof gR);
    *loss = L;
    *dm = gm;
    return EW_OK;
}

/* One training step on the local batch already prepared in w: forward,
 * backward (gradients added into m->P.grad, which the caller zeroed).
 * Returns the local mean loss in *loss. */
static ew_status_t step_grads(ew_ssl_model_t *m, work_t *w, size_t np, int use_targets, double *loss)
{
    int B = w->B, es = m->es;
    const float *d6o, *ho = NULL;
    EW_TRY(ew_resnet_forward(&m->enc, &m->P, w->encin, B, es, es, 1, &d6o));
    if (m->has_senc) EW_TRY(ew_resnet_forward(&m->senc, &m->P, w->encin, B, es, es, 1, &ho));
    int poisson = m->cfg.loss == EW_SSL_LOSS_POISSON;
    double wgt = 1.0 / ((double)np * B);
    int n = m->gn;
    size_t N = (size_t)n * n * n;
    double L = 0.0;
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_PIXEL) {
        for (int b = 0; b < B; b++) {
            double d6[6], R[9], dR[9], dm, dmdh = 0, sc = 1.0, lb;
            for (int k = 0; k < 6; k++) d6[k] = d6o[6 * b + k];
            ew_rot6d_to_mat(d6, R);
            if (ho) sc = ew_ssl_scale_of(ho[b], &dmdh);
            EW_TRY(pattern_siren(m, w, b, R, sc, np, wgt, &lb, dR, &dm));
            double dd[6];
            ew_ssl_rot6d_backward(d6, dR, dd);
            for (int k = 0; k < 6; k++) w->dd6[6 * b + k] = (float)dd[k];
            w->dh[b] = (float)(dm * dmdh);
            L += lb;
        }
    } else {
        EW_TRY(ew_ssl_decoder_grid(m));
        const float *G = m->G;
        int use_tgt = use_targets && w->have_tgt;
        double sw = m->cfg.target_weight / B;
#pragma omp parallel num_threads(w->nthr)
        {
            int t = omp_get_thread_num();
            float *dg = w->dgt + (size_t)t * N;
            memset(dg, 0, N * sizeof(float));
#pragma omp for schedule(static)
            for (int b = 0; b < B; b++) {
                double d6[6], R[9], dR[9], dm, dmdh = 0, sc = 1.0;
                for (int k = 0; k < 6; k++) d6[k] = d6o[6 * b + k];
                ew_rot6d_to_mat(d6, R);
                if (ho) sc = ew_ssl_scale_of(ho[b], &dmdh);
                const float *xb = w->xlog + (size_t)b * m->npix, *cb = w->counts + (size_t)b * m->npix;
                if (use_tgt) {
                    /* render at the pseudo-label; the encoder regresses onto
                     * it or its in-plane twin Rz(pi) Rs (first two rows
                     * negated), whichever is nearer */
                    const double *Rs = w->tgt + 9 * (size_t)b;
                    double Rt[9], dRu[9];
                    memcpy(Rt, Rs, sizeof Rt);
                    for (int k = 0; k < 6; k++) Rt[k] = -Rt[k];
                    double d0 = 0, d1 = 0;
                    for (int k = 0; k < 9; k++) {
                        d0 += (R[k] - Rs[k]) * (R[k] - Rs[k]);
                        d1 += (R[k] - Rt[k]) * (R[k] - Rt[k]);
                    }
                    const double *T = d1 < d0 ? Rt : Rs;
                    w->lossb[b] = ew_ssl_pattern_grid(G, n, m->ds, Rs, m->s, m->pix, np, xb, cb, m->k, sc, m->c,
                                                      poisson, wgt, dg, dRu, &dm);
                    double reg = 0.0;
                    for (int k = 0; k < 9; k++) {
                        reg += (R[k] - T[k]) * (R[k] - T[k]);
                        dR[k] = 2.0 * sw * (R[k] - T[k]);
                    }
                    w->lossb[b] += sw * reg;
                } else {
                    w->lossb[b] = ew_ssl_pattern_grid(G, n, m->ds, R, m->s, m->pix, np, xb, cb, m->k, sc, m->c,
                                                      poisson, wgt, dg, dR, &dm);
                }
                double dd[6];
                ew_ssl_rot6d_backward(d6, dR, dd);
                for (int k = 0; k < 6; k++) w->dd6[6 * b + k] = (float)dd[k];
                w->dh[b] = (float)(dm * dmdh);
            }
        }
        for (int b = 0; b < B; b++) L += w->lossb[b];
        /* sum the private grids in thread order (deterministic) */
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < N; i++) {
            float s = 0.0f;
            for (int t = 0; t < w->nthr; t++) s += w->dgt[(size_t)t * N + i];
            m->dG[i] = s;
        }
        L += ew_ssl_smooth(m->G, n, m->cfg.smooth, m->dG);
        EW_TRY(ew_ssl_decoder_grid_backward(m));
    }
    EW_TRY(ew_resnet_backward(&m->enc, &m->P, w->dd6, NULL));
    if (m->has_senc) EW_TRY(ew_resnet_backward(&m->senc, &m->P, w->dh, NULL));
    *loss = L;
    return EW_OK;
}

ew_status_t ew_ssl_loss_grad(ew_ssl_model_t *m, const ew_ssl_data_t *d, const size_t *items, int count,
                             int64_t step, double *loss)
{
    EW_TRY(check_data(m, d));
    work_t w;
    double *totals = NULL;
    EW_TRY(work_alloc(&w, m, count));
    ew_status_t st = measured_totals(m, d, &totals);
    if (st == EW_OK) {
        for (int b = 0; b < count; b++) prepare_pattern(m, d, totals, items[b], step, b, b, &w);
        ew_params_zero_grad(&m->P);
        st = step_grads(m, &w, m->npix_good, 0, loss);
    }
    ew_free(totals);
    work_free(&w);
    return st;
}

/* The initial decoder: the spherically averaged data (so the model starts
 * with the right radial profile and no orientation preference). */
static ew_status_t init_decoder(ew_ssl_model_t *m, const ew_ssl_data_t *d)
{
    enum { NB = 96 };
    double sum[NB] = {0}, cnt[NB] = {0};
    size_t nuse = d->n < 2000 ? d->n : 2000;
    double smax = m->s_max_corner * 1.0001;
    int poisson = m->cfg.loss == EW_SSL_LOSS_POISSON;
    for (size_t i = 0; i < nuse; i++) {
        const float *x = d->data + i * m->npix;
        for (size_t q = 0; q < m->npix_good; q++) {
            int p = m->pix[q];
            int b = (int)(m->pix_s[q] / smax * NB);
            if (b >= NB) b = NB - 1;
            double v = x[p] > 0 ? x[p] : 0.0;
            sum[b] += poisson ? v / m->k[p] : log1p(m->c * v);
            cnt[b] += 1.0;
        }
    }
    double prof[NB];
    double last = 0.0;
    for (int b = 0; b < NB; b++) {
        if (cnt[b] > 0) last = sum[b] / cnt[b];
        prof[b] = last;
        /* f = log(1 + a): a = exp(E x) - 1 (MSE) or c E[I] (Poisson) */
        prof[b] = poisson ? log1p(m->c * prof[b]) : prof[b];
    }
    for (int b = 0; b < NB; b++)
        if (cnt[b] == 0 && b > 0) prof[b] = prof[b - 1];
    if (m->cfg.decoder == EW_SSL_DEC_GRID) {
        int n = m->gn, c = n / 2;
        float *v = ew_params_data(&m->P, m->i_grid);
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    double r = sqrt((double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c)) *
                               m->ds;
                    double fb = r / smax * NB - 0.5;
                    int b0 = (int)floor(fb);
                    double t = fb - b0;
                    if (b0 < 0) {
                        b0 = 0;
                        t = 0;
                    }
                    if (b0 >= NB - 1) {
                        b0 = NB - 2;
                        t = 1;
                    }
                    double f = prof[b0] + t * (prof[b0 + 1] - prof[b0]);
                    v[((size_t)z * n + y) * n + x] = (float)(f / m->grid_k);
                }
    } else {
        /* SIREN decoders: the output bias at half the mean value (f = g(s) + g(-s)) */
        double mean = 0.0;
        for (int b = 0; b < NB; b++) mean += prof[b];
        mean /= NB;
        int ib = m->mlp.L[m->mlp.cfg.layers].ib;
        if (ib >= 0) ew_params_data(&m->P, ib)[0] = (float)(0.5 * mean);
    }
    return EW_OK;
}

/* ------------------------------------------------ local orientation refinement */

/* Super-pixel binning of the refinement: the EMC start's, else the encoder's. */
static int refine_bin(const ew_ssl_model_t *m) { return m->cfg.emc_size > 0 ? m->emc_bin : m->bin; }

/* out = Q_a(t) R: R rotated by angle t (radians) about lab axis a. */
static void rot_about(int a, double t, const double R[9], double out[9])
{
    double Q[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, cs = cos(t), sn = sin(t);
    int i = (a + 1) % 3, j = (a + 2) % 3;
    Q[3 * i + i] = cs;
    Q[3 * i + j] = -sn;
    Q[3 * j + i] = sn;
    Q[3 * j + j] = cs;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) out[3 * r + c] = Q[3 * r] * R[c] + Q[3 * r + 1] * R[3 + c] + Q[3 * r + 2] * R[6 + c];
}

/* Expected photons of one pattern at rotation R and unit scale on the
 * super-pixels: sum_j max(exp(f(R^T s_j)) - 1, 0) k_j / c. */
static double spx_expected(const ew_ssl_model_t *m, const spx_t *S, const double R[9])
{
    double t = 0.0;
    for (size_t j = 0; j < S->n; j++) {
        const float *sp = S->s + 3 * j;
        double u[3];
        float g[3];
        for (int a = 0; a < 3; a++) u[a] = R[a] * sp[0] + R[3 + a] * sp[1] + R[6 + a] * sp[2];
        double f = ew_ssl_trilinear_grad(m->G, m->gn, m->ds, u, g);
        double e = expm1(f);
        if (e > 0) t += e * S->k[j];
    }
    return t / m->c;
}

/* Poisson maximum-likelihood scale of a pattern with cs photons in all at
 * rotation R (the 1e-3 floor of the rate neglected). */
static double fit_scale(const ew_ssl_model_t *m, const spx_t *S, const float *cs, const double R[9])
{
    double tot = 0.0;
    for (size_t j = 0; j < S->n; j++) tot += cs[j];
    double e = spx_expected(m, S, R);
    return e > 0 && tot > 0 ? tot / e : 1.0;
}

/* Compass search around R (updated in place) on the Poisson loss of the
 * super-pixel counts cs: steps of +-h about the three lab axes, first
 * improvement taken, h halved when none improves, from step0 down to
 * step0 / 16 (at most 96 evaluations). *sc: the scale, refitted at the
 * end. Returns the final loss. */
static double refine_one(const ew_ssl_model_t *m, const spx_t *S, const float *cs, const float *xs, double R[9],
                         double *sc, double step0)
{
    double best = ew_ssl_pattern_loss(m->G, m->gn, m->ds, R, S->s, S->idx, S->n, xs, cs, S->k, *sc, m->c, 1);
    double h = step0;
    int evals = 0;
    while (h >= step0 / 16.0 && evals < 96) {
        int moved = 0;
        for (int k = 0; k < 6 && !moved; k++) {
            double Rn[9];
            rot_about(k / 2, (k & 1) ? -h : h, R, Rn);
            double l = ew_ssl_pattern_loss(m->G, m->gn, m->ds, Rn, S->s, S->idx, S->n, xs, cs, S->k, *sc, m->c, 1);
            evals++;
            if (l < best) {
                best = l;
                memcpy(R, Rn, sizeof Rn);
                moved = 1;
            }
        }
        if (!moved) h *= 0.5;
    }
    *sc = fit_scale(m, S, cs, R);
    return best;
}

/* Refine the rotations R (n, 9, in place) of the patterns of d against the
 * current decoder grid m->G on super-pixels of the given binning; with
 * twin, each start is first replaced by its in-plane twin Rz(pi) R when
 * that fits better. sc (n, may be NULL) gets the fitted scales. */
static ew_status_t refine_all(ew_ssl_model_t *m, const ew_ssl_data_t *d, double *R, double *sc, int bin, int twin,
                              double step_deg)
{
    spx_t S;
    EW_TRY(spx_build(m, INFINITY, bin, &S));
    int nthr = omp_get_max_threads();
    float *buf = ew_alloc_array((size_t)nthr * (m->npix + 2 * S.n + 2), sizeof(float));
    if (!buf) {
        spx_free(&S);
        return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the orientation refinement");
    }
    double step = step_deg * EW_PI / 180.0;
#pragma omp parallel
    {
        float *cb = buf + (size_t)omp_get_thread_num() * (m->npix + 2 * S.n + 2), *cs = cb + m->npix,
              *xs = cs + S.n + 1;
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < d->n; i++) {
            const float *x = d->data + i * m->npix;
            spx_load(m, &S, x, cb, cs, xs);
            double *Ri = R + 9 * i, s0 = fit_scale(m, &S, cs, Ri);
            if (twin) {
                double Rt[9];
                memcpy(Rt, Ri, sizeof Rt);
                for (int k = 0; k < 6; k++) Rt[k] = -Rt[k];
                double st = fit_scale(m, &S, cs, Rt);
                double l0 = ew_ssl_pattern_loss(m->G, m->gn, m->ds, Ri, S.s, S.idx, S.n, xs, cs, S.k, s0, m->c, 1);
                double l1 = ew_ssl_pattern_loss(m->G, m->gn, m->ds, Rt, S.s, S.idx, S.n, xs, cs, S.k, st, m->c, 1);
                if (l1 < l0) {
                    memcpy(Ri, Rt, sizeof Rt);
                    s0 = st;
                }
            }
            if (step > 0) refine_one(m, &S, cs, xs, Ri, &s0, step);
            if (sc) sc[i] = s0;
        }
    }
    ew_free(buf);
    spx_free(&S);
    return EW_OK;
}

/* Set the grid decoder to the maximum-likelihood intensity for fixed
 * rotations R (n, 9) and scales sc (n) of the patterns of d: per voxel
 * v, W(v) = sum_ip w_ip(v) I_ip / sum_ip w_ip(v) sc_i k_p over good
 * pixels (w: trilinear weights of the pixel at R_i^T s_p; the EM update of
 * the interpolated Poisson model with hard assignments, Friedel-
 * symmetrised), f = log(1 + c W). Voxels no pixel reaches keep their value. */
static ew_status_t merge_volume(ew_ssl_model_t *m, const ew_ssl_data_t *d, const double *R, const double *sc)
{
    int n = m->gn, nthr = omp_get_max_threads();
    size_t N = (size_t)n * n * n;
    /* one double accumulator pair per thread, patterns split statically:
     * the same sums in the same order for a given thread count, and in
     * double the order changes only the last bits when the count changes */
    double *acc = ew_calloc_array((size_t)nthr * 2 * N, sizeof(double));
    if (!acc) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for merging (%d^3 grid, %d threads)", n, nthr);
#pragma omp parallel num_threads(nthr)
    {
        double *num = acc + (size_t)omp_get_thread_num() * 2 * N, *den = num + N;
#pragma omp for schedule(static)
        for (size_t i = 0; i < d->n; i++) {
            const float *x = d->data + i * m->npix;
            const double *Ri = R + 9 * i;
            for (size_t q = 0; q < m->npix_good; q++) {
                int p = m->pix[q];
                const float *sp = m->s + 3 * (size_t)p;
                double u[3];
                for (int a = 0; a < 3; a++) u[a] = Ri[a] * sp[0] + Ri[3 + a] * sp[1] + Ri[6 + a] * sp[2];
                float v = pixel_value(m, x[p]);
                if (v > 0) ew_ssl_trilinear_adjoint_d(num, n, m->ds, u, v);
                ew_ssl_trilinear_adjoint_d(den, n, m->ds, u, sc[i] * m->k[p]);
            }
        }
    }
    for (int t = 1; t < nthr; t++) {
        const double *a = acc + (size_t)t * 2 * N;
        for (size_t i = 0; i < 2 * N; i++) acc[i] += a[i];
    }
    float *v = ew_params_data(&m->P, m->i_grid);
    const double *num = acc, *den = acc + N;
    /* the stored grid V is Friedel-symmetrised as G = grid_k (V(s) + V(-s)) / 2 */
    for (size_t i = 0; i < N; i++) {
        double dd = den[i] + den[N - 1 - i];
        if (dd > 1e-6) v[i] = (float)(log1p(m->c * (num[i] + num[N - 1 - i]) / dd) / m->grid_k);
    }
    ew_free(acc);
    return ew_ssl_decoder_grid(m);
}

/* ------------------------------------------------------------ the EMC start */

/* Photon counts of pattern x on the super-pixels: each pixel rounded to
 * the nearest integer (photon counting; readout noise below half a photon
 * vanishes), then summed. */
static void spx_photons(const ew_ssl_model_t *m, const spx_t *S, const float *x, uint32_t *cnt)
{
    memset(cnt, 0, S->n * sizeof(uint32_t));
    for (size_t p = 0; p < m->npix; p++)
        if (S->of_pix[p] >= 0) cnt[S->of_pix[p]] += (uint32_t)photon_count(x[p]);
}

/* EMC (recon/emc.h) on the patterns binned to emc_size^2 from a random
 * start; sets the grid decoder to its model and m->tgt to every pattern's
 * most likely rotation, refined on the full model (ssl.h). */
static ew_status_t emc_bootstrap(ew_ssl_model_t *m, const ew_ssl_data_t *d)
{
    const ew_ssl_config_t *c = &m->cfg;
    int bin = m->emc_bin;
    size_t n = d->n;
    spx_t S;
    EW_TRY(spx_build(m, INFINITY, bin, &S));
    ew_emc_sparse_t sp;
    memset(&sp, 0, sizeof sp);
    ew_emc_t *e = NULL;
    ew_rotgrid_t g;
    memset(&g, 0, sizeof g);
    ew_rvol_t W;
    memset(&W, 0, sizeof W);
    ew_progress_t *pb = NULL;
    ew_status_t st = EW_OK;
    double *sc = NULL;
    int nthr = omp_get_max_threads();
    uint32_t *cbuf = ew_alloc_array((size_t)nthr * S.n, sizeof(uint32_t));
    sp.n_patterns = n;
    sp.npix = S.n;
    sp.offset = ew_alloc_array(n + 1, sizeof(uint64_t));
    if (!cbuf || !sp.offset) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the EMC photons");
        goto done;
    }
    /* two passes: hits per pattern, then the compressed rows */
#pragma omp parallel
    {
        uint32_t *cnt = cbuf + (size_t)omp_get_thread_num() * S.n;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            spx_photons(m, &S, d->data + i * m->npix, cnt);
            uint64_t h = 0;
            for (size_t j = 0; j < S.n; j++) h += cnt[j] > 0;
            sp.offset[i + 1] = h;
        }
    }
    sp.offset[0] = 0;
    for (size_t i = 0; i < n; i++) sp.offset[i + 1] += sp.offset[i];
    sp.pix = ew_alloc_array(sp.offset[n] ? sp.offset[n] : 1, sizeof(uint32_t));
    sp.count = ew_alloc_array(sp.offset[n] ? sp.offset[n] : 1, sizeof(uint32_t));
    if (!sp.pix || !sp.count) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the EMC photons");
        goto done;
    }
#pragma omp parallel
    {
        uint32_t *cnt = cbuf + (size_t)omp_get_thread_num() * S.n;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            spx_photons(m, &S, d->data + i * m->npix, cnt);
            uint64_t o = sp.offset[i];
            for (size_t j = 0; j < S.n; j++)
                if (cnt[j] > 0) {
                    sp.pix[o] = (uint32_t)j;
                    sp.count[o++] = cnt[j];
                }
        }
    }
    ew_emc_config_t ec;
    ew_emc_config_default(&ec);
    ec.n_vox = m->gn;
    ec.ds = m->ds;
    /* annealing: the log-likelihood differences between rotations grow
     * with the photons, so the first beta shrinks with them (0.1 at 1,000
     * photons per pattern, as in bench/README-emc.md; at most 0.1) */
    double mean_ph = 0.0;
    for (uint64_t i = 0; i < sp.offset[n]; i++) mean_ph += sp.count[i];
    mean_ph /= (double)n;
    ec.beta_start = mean_ph > 1000.0 ? 100.0 / mean_ph : 0.1;
    ec.beta_factor = 1.5;
    ec.beta_period = 3;
    ec.seed = c->seed;
    ew_emc_pixels_t det = {.npix = S.n, .s = S.s, .mask = NULL, .corr = S.k};
    if ((st = ew_rotgrid_600cell(c->emc_level_lo, &g)) != EW_OK) goto done;
    if ((st = ew_emc_create(&e, &ec, &det, &sp, &g)) != EW_OK) goto done;
    int total = (c->emc_level_hi - c->emc_level_lo + 1) * c->emc_iters;
    if (c->progress && ew_dist_rank() == 0) pb = ew_progress_start("ssl emc start", (uint64_t)total);
    for (int lvl = c->emc_level_lo; lvl <= c->emc_level_hi; lvl++) {
        if (lvl > c->emc_level_lo) {
            ew_rotgrid_free(&g);
            if ((st = ew_rotgrid_600cell(lvl, &g)) != EW_OK) goto done;
            if ((st = ew_emc_refine(e, &g)) != EW_OK) goto done;
        }
        for (int it = 0; it < c->emc_iters; it++) {
            ew_emc_stats_t es;
            if ((st = ew_emc_iterate(e, &es)) != EW_OK) goto done;
            if (pb) {
                ew_progress_status(pb, "level %d, mutual info %.3g, confident %.2f", lvl, es.mutual_info,
                                   es.frac_confident);
                ew_progress_add(pb, 1);
            }
        }
    }
    /* the decoder: f = log(1 + c M), M the EMC model (photons per unit of
     * the relative pixel response k at scale 1) */
    const ew_rvol_t *M = ew_emc_model(e);
    if ((st = ew_rvol_alloc(&W, M->n, M->ds)) != EW_OK) goto done;
    size_t N = (size_t)M->n * M->n * M->n;
    for (size_t v = 0; v < N; v++) W.data[v] = (float)(M->data[v] / m->corr_mean);
    if ((st = ew_ssl_model_set_volume(m, &W)) != EW_OK) goto done;
    if ((st = ew_ssl_decoder_grid(m)) != EW_OK) goto done;
    /* pseudo-labels: EMC's most likely rotations, refined */
    ew_free(m->tgt);
    m->tgt = ew_alloc_array(9 * n, sizeof(double));
    if (!m->tgt) {
        m->ntgt = 0;
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu pseudo-labels", n);
        goto done;
    }
    m->ntgt = n;
    const int32_t *best = ew_emc_best_rot(e);
    const ew_rotgrid_t *eg = ew_emc_grid(e);
    for (size_t i = 0; i < n; i++) ew_quat_to_mat(eg->quat[best[i] >= 0 ? best[i] : 0], m->tgt + 9 * i);
    sc = ew_alloc_array(n, sizeof(double));
    if (!sc) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu scales", n);
        goto done;
    }
    for (int r = 0; r <= c->refine_rounds; r++) {
        double t0 = ew_time_now();
        /* later rounds start nearer: smaller first steps */
        double step = c->refine_deg / (double)(1 << (r < 2 ? r : 2));
        if ((st = refine_all(m, d, m->tgt, sc, bin, 0, step)) != EW_OK) goto done;
        if (r == c->refine_rounds) break;
        if ((st = merge_volume(m, d, m->tgt, sc)) != EW_OK) goto done;
        ew_info("ssl: refinement round %d/%d (%.1f s)", r + 1, c->refine_rounds, ew_time_now() - t0);
    }
done:
    if (pb) ew_progress_finish(pb);
    ew_free(sc);
    ew_rvol_free(&W);
    ew_emc_free(e);
    ew_rotgrid_free(&g);
    ew_emc_sparse_free(&sp);
    ew_free(cbuf);
    spx_free(&S);
    return st;
}

static ew_status_t orient_mats(ew_ssl_model_t *m, const ew_ssl_data_t *d, double *R, double *scale);

static int file_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0;
}

/* The pseudo-labels travel beside the checkpoint, in CKPT.labels.npy
 * ((n, 9) rotation matrices), so that a resumed run continues exactly. */
static ew_status_t save_checkpoint(const ew_ssl_model_t *m)
{
    EW_TRY(ew_ssl_model_save(m, m->cfg.ckpt_path, 1));
    if (!m->tgt) return EW_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s.labels.npy", m->cfg.ckpt_path);
    size_t shape[2] = {m->ntgt, 9};
    return ew_npy_write_f64(path, m->tgt, 2, shape);
}

/* Pseudo-labels from CKPT.labels.npy when it holds n of them (returns 1). */
static int load_labels(ew_ssl_model_t *m, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.labels.npy", m->cfg.ckpt_path);
    if (!file_exists(path)) return 0;
    ew_npy_t a;
    if (ew_npy_read(path, &a) != EW_OK) return 0;
    int ok = a.ndim == 2 && a.shape[0] == n && a.shape[1] == 9;
    if (ok) {
        ew_free(m->tgt);
        m->tgt = a.data;
        m->ntgt = n;
        a.data = NULL;
    } else {
        ew_warn("%s: %zu x %zu values, not the %zu x 9 pseudo-labels of this data set; recomputed", path, a.shape[0],
                a.ndim == 2 ? a.shape[1] : 0, n);
    }
    ew_npy_free(&a);
    return ok;
}

ew_status_t ew_ssl_train(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_ssl_history_t *hist)
{
    const ew_ssl_config_t *c = &m->cfg;
    if (hist) memset(hist, 0, sizeof *hist);
    EW_TRY(check_data(m, d));
    int nr = ew_dist_size(), rank = ew_dist_rank();
    if (c->batch % nr != 0)
        return ew_fail(EW_ERR_ARG, "ssl: batch = %d is not a multiple of the %d MPI ranks", c->batch, nr);
    if (d->n < (size_t)c->batch)
        return ew_fail(EW_ERR_ARG, "ssl: %zu patterns are fewer than one batch (%d)", d->n, c->batch);
    int B = c->batch / nr;
    int64_t spe = (int64_t)(d->n / (size_t)c->batch);
    int64_t total = (int64_t)ceil(c->epochs * (double)spe);
    if (total < 1) total = 1;
    int64_t warm = (int64_t)(c->warmup_frac * (double)total);
    if (warm < 1) warm = 1;
    const char *ckpt = c->ckpt_path;
    double t0 = ew_time_now();
    ew_status_t st = EW_OK;
    work_t w;
    double *totals = NULL;
    size_t *perm = NULL;
    int64_t perm_epoch = -1;
    ew_progress_t *pb = NULL;
    size_t nlog_cap = 0;
    int64_t steps_here = 0;
    EW_TRY(work_alloc(&w, m, B));
    if ((st = measured_totals(m, d, &totals)) != EW_OK) goto done;
    perm = ew_alloc_array(d->n, sizeof(size_t));
    if (!perm) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the permutation");
        goto done;
    }
    if (ckpt && c->resume && file_exists(ckpt)) {
        if ((st = ew_checkpoint_load(ckpt, &m->P, 1)) != EW_OK) goto done;
        load_labels(m, d->n);
        ew_info("ssl: resumed from %s at step %lld", ckpt, (long long)m->P.step);
    } else if (m->P.step == 0 && !m->decoder_set) {
        if ((st = init_decoder(m, d)) != EW_OK) goto done;
        if (c->emc_size > 0 && (st = emc_bootstrap(m, d)) != EW_OK) goto done;
    }
    if (c->emc_size > 0 && c->target_frac > 0 && (double)m->P.step < c->target_frac * (double)total &&
        (!m->tgt || m->ntgt != d->n)) {
        /* resumed, or the decoder was set: pseudo-labels from the model */
        ew_free(m->tgt);
        m->ntgt = 0;
        m->tgt = ew_alloc_array(9 * d->n, sizeof(double));
        if (!m->tgt) {
            st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu pseudo-labels", d->n);
            goto done;
        }
        if ((st = orient_mats(m, d, m->tgt, NULL)) != EW_OK) goto done;
        m->ntgt = d->n;
    }
    w.have_tgt = m->tgt && m->ntgt == d->n;
    if ((st = ew_dist_broadcast_params(&m->P)) != EW_OK) goto done;
    ew_optim_t opt = ew_optim_default(EW_OPT_ADAMW);
    opt.weight_decay = c->weight_decay;
    int64_t stop = total;
    if (c->max_steps > 0 && c->max_steps < stop) stop = c->max_steps;
    if (c->progress && rank == 0 && m->P.step < stop) pb = ew_progress_start("ssl train", (uint64_t)(stop - m->P.step));
    double s_edge = m->s_max_edge, s_corner = m->s_max_corner;
    double tl = ew_time_now();
    while (m->P.step < stop) {
        int64_t step = m->P.step;
        int64_t epoch = step / spe;
        if (epoch != perm_epoch) {
            ew_rng_t r;
            ew_rng_init(&r, c->seed, ew_rng_stream_id(EW_RNG_TAG_BATCH, (uint64_t)epoch));
            for (size_t i = 0; i < d->n; i++) perm[i] = i;
            for (size_t i = d->n - 1; i > 0; i--) {
                size_t j = (size_t)ew_rng_below(&r, i + 1);
                size_t t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            perm_epoch = epoch;
        }
        size_t base = (size_t)(step % spe) * (size_t)c->batch;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            int j = rank * B + b;
            prepare_pattern(m, d, totals, perm[base + (size_t)j], step, j, b, &w);
            if (w.have_tgt) memcpy(w.tgt + 9 * (size_t)b, m->tgt + 9 * perm[base + (size_t)j], 9 * sizeof(double));
        }
        /* coarse-to-fine pixel cut */
        size_t np = m->npix_good;
        if (c->c2f_start < 1.0) {
            double fr = c->c2f_frac > 0 ? (double)step / (c->c2f_frac * (double)total) : 1.0;
            if (fr > 1.0) fr = 1.0;
            double cut = c->c2f_start * s_edge + fr * (s_corner - c->c2f_start * s_edge);
            np = pixels_within(m, cut);
            if (np < 16) np = m->npix_good < 16 ? m->npix_good : 16;
        }
        ew_params_zero_grad(&m->P);
        double loss;
        int use_tgt = w.have_tgt && (double)step < c->target_frac * (double)total;
        if ((st = step_grads(m, &w, np, use_tgt, &loss)) != EW_OK) goto done;
        if ((st = ew_dist_allreduce_grads(&m->P)) != EW_OK) goto done;
        if (c->freeze_decoder) {
            if (m->i_grid >= 0) memset(ew_params_grad(&m->P, m->i_grid), 0, (size_t)m->gn * m->gn * m->gn * sizeof(float));
            if (m->has_mlp)
                for (int l = 0; l <= m->mlp.cfg.layers; l++) {
                    int iw = m->mlp.L[l].iw, ib = m->mlp.L[l].ib;
                    memset(ew_params_grad(&m->P, iw), 0, m->P.p[iw].count * sizeof(float));
                    if (ib >= 0) memset(ew_params_grad(&m->P, ib), 0, m->P.p[ib].count * sizeof(float));
                }
        }
        double lsum = loss;
        if ((st = ew_dist_allreduce_sum(&lsum, 1)) != EW_OK) goto done;
        lsum /= nr;
        if (!isfinite(lsum)) {
            st = ew_fail(EW_ERR_NUMERIC, "ssl: loss is %g at step %lld", lsum, (long long)step);
            goto done;
        }
        double lr = ew_lr_warmup_cosine(step, warm, total, c->lr, 0.01 * c->lr);
        ew_optim_step(&m->P, &opt, lr);
        steps_here++;
        double now = ew_time_now();
        double pps = (double)c->batch / (now - tl > 1e-9 ? now - tl : 1e-9);
        tl = now;
        if (hist) {
            if (hist->nlog == nlog_cap) {
                size_t nc = nlog_cap ? 2 * nlog_cap : 256;
                ew_ssl_log_t *nl = ew_alloc_array(nc, sizeof *nl);
                if (!nl) {
                    st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the history");
                    goto done;
                }
                if (hist->log) memcpy(nl, hist->log, hist->nlog * sizeof *nl);
                ew_free(hist->log);
                hist->log = nl;
                nlog_cap = nc;
            }
            ew_ssl_log_t *e = &hist->log[hist->nlog++];
            e->step = step;
            e->epoch = (double)(step + 1) / (double)spe;
            e->loss = lsum;
            e->lr = lr;
            e->patterns_per_s = pps;
            e->seconds = now - t0;
        }
        if (pb) {
            ew_progress_status(pb, "loss %.4g lr %.2e %.0f pat/s", lsum, lr, pps);
            ew_progress_add(pb, 1);
        }
        if (ckpt && c->ckpt_every > 0 && m->P.step % c->ckpt_every == 0 && rank == 0)
            if ((st = save_checkpoint(m)) != EW_OK) goto done;
    }
    if (ckpt && rank == 0 && steps_here > 0) st = save_checkpoint(m);
done:
    if (pb) ew_progress_finish(pb);
    if (hist) {
        hist->seconds = ew_time_now() - t0;
        hist->steps = steps_here;
        if (st != EW_OK) ew_ssl_history_free(hist);
    }
    ew_free(perm);
    ew_free(totals);
    work_free(&w);
    return st;
}

ew_status_t ew_ssl_infer(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q, double *scale)
{
    EW_TRY(check_data(m, d));
    enum { CH = 64 };
    size_t es2 = (size_t)m->es * m->es;
    float *in = ew_alloc_array(CH * es2, sizeof(float));
    float *cnt = ew_alloc_array(m->npix, sizeof(float));
    if (!in || !cnt) {
        ew_free(in);
        ew_free(cnt);
        return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for inference");
    }
    ew_status_t st = EW_OK;
    for (size_t i0 = 0; i0 < d->n && st == EW_OK; i0 += CH) {
        int k = (int)(d->n - i0 < CH ? d->n - i0 : CH);
        for (int b = 0; b < k; b++) {
            const float *x = d->data + (i0 + (size_t)b) * m->npix;
            for (size_t p = 0; p < m->npix; p++) cnt[p] = pixel_value(m, x[p]);
            ew_ssl_encoder_input(m, cnt, NULL, in + (size_t)b * es2);
        }
        const float *d6o, *ho = NULL;
        if ((st = ew_resnet_forward(&m->enc, &m->P, in, k, m->es, m->es, 0, &d6o)) != EW_OK) break;
        for (int b = 0; b < k; b++) {
            double d6[6], R[9];
            for (int j = 0; j < 6; j++) d6[j] = d6o[6 * b + j];
            ew_rot6d_to_mat(d6, R);
            q[i0 + (size_t)b] = ew_mat_to_quat(R);
        }
        if (scale) {
            if (m->has_senc) {
                if ((st = ew_resnet_forward(&m->senc, &m->P, in, k, m->es, m->es, 0, &ho)) != EW_OK) break;
                for (int b = 0; b < k; b++) scale[i0 + (size_t)b] = ew_ssl_scale_of(ho[b], NULL);
            } else {
                for (int b = 0; b < k; b++) scale[i0 + (size_t)b] = 1.0;
            }
        }
    }
    ew_free(in);
    ew_free(cnt);
    return st;
}

ew_status_t ew_ssl_search(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q)
{
    EW_TRY(check_data(m, d));
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_PIXEL)
        return ew_fail(EW_ERR_ARG, "ssl: search needs a grid decoder (decoder = %d)", (int)m->cfg.decoder);
    ew_rotgrid_t rg;
    EW_TRY(ew_rotgrid_600cell(m->cfg.search_level > 0 ? m->cfg.search_level : 3, &rg));
    double *rot = ew_alloc_array(rg.n * 9, sizeof(double));
    double *sc = ew_alloc_array(d->n, sizeof(double));
    spx_t S;
    memset(&S, 0, sizeof S);
    float *buf = NULL;
    ew_status_t st = EW_OK;
    if (!rot || !sc) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the search");
        goto done;
    }
    if ((st = spx_build(m, INFINITY, m->bin, &S)) != EW_OK) goto done;
    buf = ew_alloc_array((size_t)omp_get_max_threads() * (m->npix + 2 * S.n + 2), sizeof(float));
    if (!buf) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the search");
        goto done;
    }
    for (size_t i = 0; i < rg.n; i++) ew_quat_to_mat(rg.quat[i], rot + 9 * i);
    if ((st = ew_ssl_infer(m, d, q, sc)) != EW_OK) goto done;
    if ((st = ew_ssl_decoder_grid(m)) != EW_OK) goto done;
#pragma omp parallel
    {
        float *cb = buf + (size_t)omp_get_thread_num() * (m->npix + 2 * S.n + 2), *cs = cb + m->npix,
              *xs = cs + S.n + 1;
#pragma omp for schedule(dynamic, 4)
        for (size_t i = 0; i < d->n; i++) {
            const float *x = d->data + i * m->npix;
            spx_load(m, &S, x, cb, cs, xs);
            long kb = search_best(m, &S, cs, xs, sc[i], rot, rg.n);
            q[i] = rg.quat[kb < 0 ? 0 : kb];
        }
    }
done:
    ew_rotgrid_free(&rg);
    spx_free(&S);
    ew_free(rot);
    ew_free(sc);
    ew_free(buf);
    return st;
}

/* Rotation matrices (n, 9) and scales of ew_ssl_orient. */
static ew_status_t orient_mats(ew_ssl_model_t *m, const ew_ssl_data_t *d, double *R, double *scale)
{
    ew_quat_t *q = ew_alloc_array(d->n, sizeof *q);
    if (!q) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu orientations", d->n);
    ew_status_t st = ew_ssl_infer(m, d, q, scale);
    for (size_t i = 0; st == EW_OK && i < d->n; i++) ew_quat_to_mat(q[i], R + 9 * i);
    ew_free(q);
    EW_TRY(st);
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_PIXEL || !(m->cfg.refine_deg > 0)) return EW_OK;
    EW_TRY(ew_ssl_decoder_grid(m));
    int bin = refine_bin(m);
    return refine_all(m, d, R, scale, bin, 1, m->cfg.refine_deg);
}

ew_status_t ew_ssl_refine(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q, double *scale, int twin,
                          double step_deg)
{
    EW_TRY(check_data(m, d));
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_PIXEL)
        return ew_fail(EW_ERR_ARG, "ssl: refinement needs a grid decoder (decoder = %d)", (int)m->cfg.decoder);
    double *R = ew_alloc_array(9 * d->n, sizeof(double));
    if (!R) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu orientations", d->n);
    for (size_t i = 0; i < d->n; i++) ew_quat_to_mat(q[i], R + 9 * i);
    ew_status_t st = ew_ssl_decoder_grid(m);
    int bin = refine_bin(m);
    if (st == EW_OK) st = refine_all(m, d, R, scale, bin, twin, step_deg);
    for (size_t i = 0; st == EW_OK && i < d->n; i++) q[i] = ew_mat_to_quat(R + 9 * i);
    ew_free(R);
    return st;
}

ew_status_t ew_ssl_set_pseudo_labels(ew_ssl_model_t *m, const ew_quat_t *q, size_t n)
{
    double *t = ew_alloc_array(9 * (n ? n : 1), sizeof(double));
    if (!t) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu pseudo-labels", n);
    for (size_t i = 0; i < n; i++) ew_quat_to_mat(q[i], t + 9 * i);
    ew_free(m->tgt);
    m->tgt = t;
    m->ntgt = n;
    return EW_OK;
}

ew_status_t ew_ssl_pseudo_labels(const ew_ssl_model_t *m, ew_quat_t *q, size_t n)
{
    if (!m->tgt || m->ntgt != n)
        return ew_fail(EW_ERR_ARG, "ssl: the model holds %zu pseudo-labels, not %zu", m->tgt ? m->ntgt : 0, n);
    for (size_t i = 0; i < n; i++) q[i] = ew_mat_to_quat(m->tgt + 9 * i);
    return EW_OK;
}

ew_status_t ew_ssl_orient(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q, double *scale)
{
    EW_TRY(check_data(m, d));
    double *R = ew_alloc_array(9 * d->n, sizeof(double));
    if (!R) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu orientations", d->n);
    ew_status_t st = orient_mats(m, d, R, scale);
    for (size_t i = 0; st == EW_OK && i < d->n; i++) q[i] = ew_mat_to_quat(R + 9 * i);
    ew_free(R);
    return st;
}

void ew_ssl_eval_free(ew_ssl_eval_t *e)
{
    if (!e) return;
    ew_free(e->fsc_s);
    ew_free(e->fsc);
    memset(e, 0, sizeof *e);
}

static double pearson(const double *a, const double *b, size_t n)
{
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

/* FSC part of the evaluation: truth resampled on the model grid, learned
 * volume aligned to it, FSC on voxels inside the detector's reach. */
static ew_status_t eval_volume(ew_ssl_model_t *m, const ew_rvol_t *W, ew_ssl_eval_t *e)
{
    ew_rvol_t V;
    EW_TRY(ew_ssl_volume(m, &V));
    int n = m->gn, c = n / 2;
    size_t N = (size_t)n * n * n;
    float *ref = ew_alloc_array(N, sizeof(float));
    float *al = ew_alloc_array(N, sizeof(float));
    ew_status_t st = EW_OK;
    ew_shell_curve_t cv;
    memset(&cv, 0, sizeof cv);
    if (!ref || !al) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the evaluation volumes");
        goto done;
    }
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double u[3] = {(x - c) * m->ds, (y - c) * m->ds, (z - c) * m->ds};
                float g[3];
                ref[((size_t)z * n + y) * n + x] = ew_ssl_trilinear_grad(W->data, W->n, W->ds, u, g);
            }
    ew_align_opts_t ao;
    ew_align_opts_default(&ao);
    ew_align_result_t ar;
    if ((st = ew_align_volumes(EW_ALIGN_INTENSITY, ref, V.data, n, &ao, &ar)) != EW_OK) goto done;
    ew_align_apply(&ar, V.data, n, al);
    e->align_score = ar.score;
    /* voxels beyond the detector corner, or inside the beam stop (the
     * smallest |s| of a good pixel), were never measured */
    double r2max = (m->s_max_corner / m->ds) * (m->s_max_corner / m->ds);
    double r0 = m->pix_s[0] / m->ds + 1.0; /* one voxel past the beam stop's edge: partial shells */
    double r2min = r0 * r0;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double r2 = (double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c);
                if (r2 > r2max || r2 < r2min) {
                    size_t i = ((size_t)z * n + y) * n + x;
                    ref[i] = -1.0f;
                    al[i] = -1.0f;
                }
            }
    if ((st = ew_fsc_intensity_centred(ref, al, n, m->ds, 1.0, &cv)) != EW_OK) goto done;
    double sx;
    ew_curve_crossing(&cv, 0.5, &sx);
    e->fsc_s05 = sx;
    e->fsc_frac_edge = sx / m->s_max_edge;
    e->fsc_n = cv.nshell;
    e->fsc_s = ew_alloc_array((size_t)cv.nshell, sizeof(double));
    e->fsc = ew_alloc_array((size_t)cv.nshell, sizeof(double));
    if (!e->fsc_s || !e->fsc) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the FSC curve");
        goto done;
    }
    memcpy(e->fsc_s, cv.s, (size_t)cv.nshell * sizeof(double));
    memcpy(e->fsc, cv.value, (size_t)cv.nshell * sizeof(double));
done:
    ew_shell_curve_free(&cv);
    ew_free(ref);
    ew_free(al);
    ew_rvol_free(&V);
    return st;
}

ew_status_t ew_ssl_evaluate(ew_ssl_model_t *m, const ew_ssl_data_t *d, const ew_rvol_t *W_true, int training_set,
                            ew_ssl_eval_t *e)
{
    memset(e, 0, sizeof *e);
    e->scale_corr = NAN;
    e->fsc_s05 = NAN;
    e->fsc_frac_edge = NAN;
    if (!d->q_true) return ew_fail(EW_ERR_ARG, "ssl: evaluation needs the true orientations (q_true)");
    EW_TRY(check_data(m, d));
    ew_quat_t *q = ew_alloc_array(d->n, sizeof(ew_quat_t));
    double *sc = ew_alloc_array(d->n, sizeof(double));
    ew_status_t st = EW_OK;
    ew_orient_err_t oe;
    memset(&oe, 0, sizeof oe);
    if (!q || !sc) {
        st = ew_fail(EW_ERR_NOMEM, "ssl: out of memory for %zu predictions", d->n);
        goto done;
    }
    ew_orient_opts_t oo;
    ew_orient_opts_default(&oo);
    oo.inplane_twin = 1;
    /* the encoder alone */
    if ((st = ew_ssl_infer(m, d, q, sc)) != EW_OK) goto done;
    if (d->fluence_true && m->has_senc) e->scale_corr = pearson(sc, d->fluence_true, d->n);
    if ((st = ew_orient_error(d->q_true, q, d->n, NULL, &oe)) != EW_OK) goto done;
    e->enc_median_deg = oe.median_deg;
    e->enc_p90_deg = oe.p90_deg;
    ew_orient_err_free(&oe);
    if ((st = ew_orient_error(d->q_true, q, d->n, &oo, &oe)) != EW_OK) goto done;
    e->enc_median_twin_deg = oe.median_deg;
    ew_orient_err_free(&oe);
    /* encoder + refinement on (a prefix of) d */
    ew_ssl_data_t sub = *d;
    sub.n = d->n < 1000 ? d->n : 1000;
    e->orient_n = sub.n;
    if ((st = ew_ssl_orient(m, &sub, q, NULL)) != EW_OK) goto done;
    if ((st = ew_orient_error(d->q_true, q, sub.n, NULL, &oe)) != EW_OK) goto done;
    e->orient_median_deg = oe.median_deg;
    e->orient_p90_deg = oe.p90_deg;
    ew_orient_err_free(&oe);
    /* the model's orientations for d */
    e->from_labels = training_set && m->tgt && m->ntgt == d->n;
    if (e->from_labels) {
        for (size_t i = 0; i < d->n; i++) q[i] = ew_mat_to_quat(m->tgt + 9 * i);
    } else if (sub.n < d->n) {
        if ((st = ew_ssl_orient(m, d, q, NULL)) != EW_OK) goto done;
    }
    if ((st = ew_orient_error(d->q_true, q, d->n, NULL, &oe)) != EW_OK) goto done;
    e->median_deg = oe.median_deg;
    e->p90_deg = oe.p90_deg;
    e->hand = oe.hand;
    ew_orient_err_free(&oe);
    if ((st = ew_orient_error(d->q_true, q, d->n, &oo, &oe)) != EW_OK) goto done;
    e->median_twin_deg = oe.median_deg;
    e->p90_twin_deg = oe.p90_deg;
    if (W_true) st = eval_volume(m, W_true, e);
done:
    ew_orient_err_free(&oe);
    ew_free(q);
    ew_free(sc);
    if (st != EW_OK) ew_ssl_eval_free(e);
    return st;
}

ew_status_t ew_ssl_history_png(const ew_ssl_history_t *h, const char *path)
{
    if (!h || h->nlog == 0) return ew_fail(EW_ERR_ARG, "%s: no training history to plot", path);
    double *x = ew_alloc_array(h->nlog, sizeof(double)), *y = ew_alloc_array(h->nlog, sizeof(double));
    ew_plot_t *p = ew_plot_new(800, 500, "self-supervised training", "step", "loss");
    ew_status_t st = EW_OK;
    if (!x || !y || !p) {
        st = ew_fail(EW_ERR_NOMEM, "%s: out of memory for the plot", path);
        goto done;
    }
    for (size_t i = 0; i < h->nlog; i++) {
        x[i] = (double)h->log[i].step;
        y[i] = h->log[i].loss;
    }
    ew_plot_set_logy(p, 1);
    if ((st = ew_plot_add_series(p, x, y, h->nlog, "loss")) != EW_OK) goto done;
    st = ew_plot_write_png(p, path);
done:
    ew_plot_free(p);
    ew_free(x);
    ew_free(y);
    return st;
}
