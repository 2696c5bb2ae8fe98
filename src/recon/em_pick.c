/* ewald recon: cryo-EM particle picker (see em_pick.h). */
#include "recon/em_pick.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "io/star.h"
#include "nn/checkpoint.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/seq.h"

struct ew_picker {
    ew_pick_config_t cfg;
    ew_params_t P;
    ew_seq_t S;
    int margin; /* receptive-field radius, binned pixels */
};

void ew_pick_config_default(ew_pick_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->bin = 4;
    c->width = 16;
    c->layers = 6;
    c->first_k = 7;
    c->label_radius = 3.0;
    c->patch = 64;
    c->batch = 8;
    c->steps = 600;
    c->lr = 2e-3;
    c->weight_decay = 1e-4;
    c->nms_radius = 4.0;
}

ew_status_t ew_picker_create(const ew_pick_config_t *c, ew_picker_t **out)
{
    *out = NULL;
    if (c->bin < 1 || c->bin > 64) return ew_fail(EW_ERR_ARG, "em pick: bin = %d is not in 1..64", c->bin);
    if (c->width < 1 || c->width > 512) return ew_fail(EW_ERR_ARG, "em pick: width = %d is not in 1..512", c->width);
    if (c->layers < 2 || c->layers > 32) return ew_fail(EW_ERR_ARG, "em pick: layers = %d is not in 2..32", c->layers);
    if (c->first_k < 1 || c->first_k % 2 == 0 || c->first_k > 15)
        return ew_fail(EW_ERR_ARG, "em pick: first_k = %d is not odd in 1..15", c->first_k);
    if (c->patch < 8) return ew_fail(EW_ERR_ARG, "em pick: patch = %d is below 8", c->patch);
    if (c->batch < 1) return ew_fail(EW_ERR_ARG, "em pick: batch = %d is not positive", c->batch);
    if (c->steps < 0) return ew_fail(EW_ERR_ARG, "em pick: steps = %d is negative", c->steps);
    if (!(c->lr > 0.0)) return ew_fail(EW_ERR_ARG, "em pick: lr = %g is not positive", c->lr);
    if (!(c->label_radius >= 0.0) || !(c->nms_radius >= 0.0))
        return ew_fail(EW_ERR_ARG, "em pick: label_radius = %g / nms_radius = %g negative", c->label_radius,
                       c->nms_radius);
    ew_picker_t *pk = ew_calloc_array(1, sizeof *pk);
    if (!pk) return EW_ERR_NOMEM;
    pk->cfg = *c;
    ew_params_init(&pk->P);
    ew_seq_init(&pk->S, "net.", 1);
    ew_status_t st = ew_seq_conv(&pk->S, &pk->P, c->width, c->first_k, 1, c->first_k / 2, EW_PAD_ZERO, 0);
    for (int l = 0; st == EW_OK && l < c->layers - 1; l++) {
        if (l > 0) st = ew_seq_conv(&pk->S, &pk->P, c->width, 3, 1, 1, EW_PAD_ZERO, 0);
        if (st == EW_OK) st = ew_seq_batchnorm(&pk->S, &pk->P);
        if (st == EW_OK) st = ew_seq_act(&pk->S, EW_ACT_RELU, 0.0);
    }
    if (st == EW_OK) st = ew_seq_conv(&pk->S, &pk->P, 1, 1, 1, 0, EW_PAD_ZERO, 1);
    if (st == EW_OK) st = ew_params_alloc(&pk->P);
    if (st != EW_OK) {
        ew_picker_destroy(pk);
        return st;
    }
    ew_layers_init(&pk->P, c->seed);
    pk->margin = c->first_k / 2 + (c->layers - 2) + 2;
    *out = pk;
    return EW_OK;
}

void ew_picker_destroy(ew_picker_t *pk)
{
    if (!pk) return;
    ew_seq_free(&pk->S);
    ew_params_free(&pk->P);
    ew_free(pk);
}

/* Bin by block means and normalize to zero mean, unit variance. */
static float *bin_norm(const float *img, int nx, int ny, int bin, int *bnx, int *bny)
{
    int bx = nx / bin, by = ny / bin;
    *bnx = bx;
    *bny = by;
    float *o = ew_alloc_array((size_t)bx * by, sizeof(float));
    if (!o) return NULL;
    double s = 0.0, s2 = 0.0;
    for (int j = 0; j < by; j++)
        for (int i = 0; i < bx; i++) {
            double a = 0.0;
            for (int v = 0; v < bin; v++)
                for (int u = 0; u < bin; u++) a += img[(size_t)(j * bin + v) * nx + (size_t)(i * bin + u)];
            a /= (double)bin * bin;
            o[(size_t)j * bx + i] = (float)a;
            s += a;
            s2 += a * a;
        }
    double npx = (double)bx * by, mean = s / npx, var = s2 / npx - mean * mean;
    double inv = var > 0.0 ? 1.0 / sqrt(var) : 1.0;
    for (size_t k = 0; k < (size_t)bx * by; k++) o[k] = (float)((o[k] - mean) * inv);
    return o;
}

/* Label map: 1 within r of a centre (binned pixels). */
static void label_map(const ew_pick_mic_t *m, int bin, int bx, int by, double r, float *lab)
{
    memset(lab, 0, sizeof(float) * (size_t)bx * by);
    for (size_t p = 0; p < m->n; p++) {
        double cx = (m->xy[2 * p] + 0.5) / bin - 0.5, cy = (m->xy[2 * p + 1] + 0.5) / bin - 0.5;
        int x0 = (int)floor(cx - r), x1 = (int)ceil(cx + r), y0 = (int)floor(cy - r), y1 = (int)ceil(cy + r);
        for (int y = y0 > 0 ? y0 : 0; y <= y1 && y < by; y++)
            for (int x = x0 > 0 ? x0 : 0; x <= x1 && x < bx; x++)
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) lab[(size_t)y * bx + x] = 1.0f;
    }
}

/* Crop (x0, y0) of size p from a (bx x by) map with rotation rot (0..3) and flip. */
static void crop_aug(const float *src, int bx, int x0, int y0, int p, int rot, int flip, float *dst)
{
    for (int j = 0; j < p; j++)
        for (int i = 0; i < p; i++) {
            int u = flip ? p - 1 - i : i, v = j, t;
            for (int r = 0; r < rot; r++) {
                t = u;
                u = p - 1 - v;
                v = t;
            }
            dst[(size_t)j * p + i] = src[(size_t)(y0 + v) * bx + (x0 + u)];
        }
}

ew_status_t ew_picker_train(ew_picker_t *pk, const ew_pick_mic_t *mics, size_t n_mics, double *final_loss)
{
    const ew_pick_config_t *c = &pk->cfg;
    if (n_mics == 0) return ew_fail(EW_ERR_ARG, "em pick train: no micrographs");
    for (size_t m = 0; m < n_mics; m++)
        if (mics[m].nx / c->bin < c->patch || mics[m].ny / c->bin < c->patch)
            return ew_fail(EW_ERR_ARG, "em pick train: micrograph %zu (%d x %d) is smaller than patch %d x bin %d", m,
                           mics[m].nx, mics[m].ny, c->patch, c->bin);
    ew_status_t st = EW_OK;
    float **img = ew_calloc_array(n_mics, sizeof(float *)), **lab = ew_calloc_array(n_mics, sizeof(float *));
    int *bx = ew_calloc_array(n_mics, sizeof(int)), *by = ew_calloc_array(n_mics, sizeof(int));
    const int p = c->patch, B = c->batch;
    float *x = ew_alloc_array((size_t)B * p * p, sizeof(float)), *y = ew_alloc_array((size_t)B * p * p, sizeof(float));
    float *dy = ew_alloc_array((size_t)B * p * p, sizeof(float));
    if (!img || !lab || !bx || !by || !x || !y || !dy) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    for (size_t m = 0; m < n_mics; m++) {
        img[m] = bin_norm(mics[m].img, mics[m].nx, mics[m].ny, c->bin, &bx[m], &by[m]);
        lab[m] = ew_alloc_array((size_t)bx[m] * by[m], sizeof(float));
        if (!img[m] || !lab[m]) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        label_map(&mics[m], c->bin, bx[m], by[m], c->label_radius, lab[m]);
    }
    if (pk->P.step == 0) {
        /* prior initialisation of the output bias: logit of the label fraction (the network starts calibrated) */
        double pos = 0.0, all = 0.0;
        for (size_t m = 0; m < n_mics; m++)
            for (size_t k = 0; k < (size_t)bx[m] * by[m]; k++) {
                pos += lab[m][k];
                all += 1.0;
            }
        double f = (pos + 1.0) / (all + 2.0);
        const ew_seq_layer_t *last = &pk->S.L[pk->S.n_layers - 1];
        ew_params_data(&pk->P, last->conv.ib)[0] = (float)log(f / (1.0 - f));
    }
    ew_optim_t opt = ew_optim_default(EW_OPT_ADAMW);
    opt.weight_decay = c->weight_decay;
    double tail = 0.0;
    int ntail = 0;
    for (int step = 0; step < c->steps; step++) {
        ew_rng_t r;
        ew_rng_init(&r, c->seed, ew_rng_stream_id(EW_RNG_TAG_BATCH, (uint64_t)step));
        for (int b = 0; b < B; b++) {
            size_t m = (size_t)(ew_rng_uniform(&r) * n_mics);
            if (m >= n_mics) m = n_mics - 1;
            int x0 = (int)(ew_rng_uniform(&r) * (bx[m] - p + 1)), y0 = (int)(ew_rng_uniform(&r) * (by[m] - p + 1));
            int rot = (int)(ew_rng_uniform(&r) * 4) & 3, flip = ew_rng_uniform(&r) < 0.5;
            crop_aug(img[m], bx[m], x0, y0, p, rot, flip, x + (size_t)b * p * p);
            crop_aug(lab[m], bx[m], x0, y0, p, rot, flip, y + (size_t)b * p * p);
        }
        const float *out;
        st = ew_seq_forward(&pk->S, &pk->P, x, B, p, p, 1, &out, NULL, NULL, NULL);
        if (st != EW_OK) goto done;
        memset(dy, 0, sizeof(float) * (size_t)B * p * p);
        double loss = ew_loss_bce_logits(dy, out, y, (size_t)B * p * p, 1.0);
        ew_params_zero_grad(&pk->P);
        st = ew_seq_backward(&pk->S, &pk->P, dy, NULL);
        if (st != EW_OK) goto done;
        ew_optim_step(&pk->P, &opt, ew_lr_warmup_cosine(step, 20, c->steps, c->lr, c->lr / 20));
        if (step >= c->steps - 50) {
            tail += loss;
            ntail++;
        }
    }
    if (final_loss) *final_loss = ntail ? tail / ntail : NAN;
done:
    for (size_t m = 0; img && lab && m < n_mics; m++) {
        ew_free(img[m]);
        ew_free(lab[m]);
    }
    ew_free(img);
    ew_free(lab);
    ew_free(bx);
    ew_free(by);
    ew_free(x);
    ew_free(y);
    ew_free(dy);
    return st;
}

ew_status_t ew_picker_score(ew_picker_t *pk, const float *img, int nx, int ny, float **score, int *bnx, int *bny)
{
    *score = NULL;
    const ew_pick_config_t *c = &pk->cfg;
    int bx, by;
    if (nx / c->bin < 8 || ny / c->bin < 8)
        return ew_fail(EW_ERR_ARG, "em pick: micrograph %d x %d is too small for bin %d", nx, ny, c->bin);
    float *b = bin_norm(img, nx, ny, c->bin, &bx, &by);
    float *s = ew_alloc_array((size_t)bx * by, sizeof(float));
    const int T = 256, M = pk->margin;
    float *tile = ew_alloc_array((size_t)(T + 2 * M) * (T + 2 * M), sizeof(float));
    ew_status_t st = EW_OK;
    if (!b || !s || !tile) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    /* tiles of T x T with a margin of the receptive field (zero outside the micrograph, as the padding) */
    for (int ty = 0; ty < by && st == EW_OK; ty += T)
        for (int tx = 0; tx < bx && st == EW_OK; tx += T) {
            int w = (tx + T < bx ? T : bx - tx) + 2 * M, h = (ty + T < by ? T : by - ty) + 2 * M;
            for (int j = 0; j < h; j++)
                for (int i = 0; i < w; i++) {
                    int gx = tx - M + i, gy = ty - M + j;
                    tile[(size_t)j * w + i] = (gx >= 0 && gy >= 0 && gx < bx && gy < by) ? b[(size_t)gy * bx + gx] : 0.0f;
                }
            const float *out;
            st = ew_seq_forward(&pk->S, &pk->P, tile, 1, h, w, 0, &out, NULL, NULL, NULL);
            if (st != EW_OK) break;
            for (int j = M; j < h - M; j++)
                for (int i = M; i < w - M; i++) s[(size_t)(ty - M + j) * bx + (tx - M + i)] = out[(size_t)j * w + i];
        }
done:
    ew_free(b);
    ew_free(tile);
    if (st != EW_OK) {
        ew_free(s);
        return st;
    }
    *score = s;
    *bnx = bx;
    *bny = by;
    return EW_OK;
}

typedef struct {
    float v;
    int i;
} sv_t;

static int sv_cmp(const void *a, const void *b)
{
    const sv_t *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->i - y->i;
}

ew_status_t ew_pick_nms(const float *score, int bnx, int bny, int bin, double r, double threshold, ew_pick_t **picks,
                        size_t *n)
{
    *picks = NULL;
    *n = 0;
    size_t np = (size_t)bnx * bny, cnt = 0;
    for (size_t k = 0; k < np; k++) cnt += score[k] > threshold;
    if (cnt == 0) return EW_OK;
    sv_t *sv = ew_alloc_array(cnt, sizeof(sv_t));
    uint8_t *sup = ew_calloc_array(np, 1);
    ew_pick_t *out = ew_alloc_array(cnt, sizeof(ew_pick_t));
    if (!sv || !sup || !out) {
        ew_free(sv);
        ew_free(sup);
        ew_free(out);
        return EW_ERR_NOMEM;
    }
    cnt = 0;
    for (size_t k = 0; k < np; k++)
        if (score[k] > threshold) sv[cnt++] = (sv_t){score[k], (int)k};
    qsort(sv, cnt, sizeof(sv_t), sv_cmp);
    size_t m = 0;
    int ri = (int)ceil(r);
    for (size_t k = 0; k < cnt; k++) {
        int i = sv[k].i % bnx, j = sv[k].i / bnx;
        if (sup[sv[k].i]) continue;
        out[m++] = (ew_pick_t){(i + 0.5) * bin - 0.5, (j + 0.5) * bin - 0.5, sv[k].v};
        for (int v = -ri; v <= ri; v++)
            for (int u = -ri; u <= ri; u++) {
                int x = i + u, y = j + v;
                if (x < 0 || y < 0 || x >= bnx || y >= bny || u * u + v * v > r * r) continue;
                sup[(size_t)y * bnx + x] = 1;
            }
    }
    ew_free(sv);
    ew_free(sup);
    *picks = out;
    *n = m;
    return EW_OK;
}

ew_status_t ew_picker_pick(ew_picker_t *pk, const float *img, int nx, int ny, double threshold, ew_pick_t **picks,
                           size_t *n)
{
    float *s;
    int bx, by;
    *picks = NULL;
    *n = 0;
    EW_TRY(ew_picker_score(pk, img, nx, ny, &s, &bx, &by));
    ew_status_t st = ew_pick_nms(s, bx, by, pk->cfg.bin, pk->cfg.nms_radius, threshold, picks, n);
    ew_free(s);
    return st;
}

typedef struct {
    double score;
    size_t mic, k;
} ref_t;

static int ref_cmp(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    if (x->mic != y->mic) return x->mic < y->mic ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

double ew_pick_auprc(const ew_pick_t *const *picks, const size_t *n_picks, const ew_pick_mic_t *mics, size_t n_mics,
                     double radius, double *best_precision, double *best_recall)
{
    size_t total = 0, ntrue = 0;
    for (size_t m = 0; m < n_mics; m++) {
        total += n_picks[m];
        ntrue += mics[m].n;
    }
    if (best_precision) *best_precision = 0.0;
    if (best_recall) *best_recall = 0.0;
    if (ntrue == 0) return 0.0;
    ref_t *all = ew_alloc_array(total + 1, sizeof(ref_t));
    uint8_t **used = ew_calloc_array(n_mics, sizeof(uint8_t *));
    if (!all || !used) {
        ew_free(all);
        ew_free(used);
        return NAN;
    }
    size_t q = 0;
    int fail = 0;
    for (size_t m = 0; m < n_mics; m++) {
        used[m] = ew_calloc_array(mics[m].n + 1, 1);
        if (!used[m]) fail = 1;
        for (size_t k = 0; k < n_picks[m]; k++) all[q++] = (ref_t){picks[m][k].score, m, k};
    }
    double ap = NAN;
    if (!fail) {
        qsort(all, total, sizeof(ref_t), ref_cmp);
        double tp = 0.0, best_f1 = -1.0;
        ap = 0.0;
        for (size_t r = 0; r < total; r++) {
            const ew_pick_mic_t *mc = &mics[all[r].mic];
            const ew_pick_t *pp = &picks[all[r].mic][all[r].k];
            double bd = radius * radius;
            size_t bj = (size_t)-1;
            for (size_t j = 0; j < mc->n; j++) {
                if (used[all[r].mic][j]) continue;
                double dx = mc->xy[2 * j] - pp->x, dy = mc->xy[2 * j + 1] - pp->y, d2 = dx * dx + dy * dy;
                if (d2 <= bd) {
                    bd = d2;
                    bj = j;
                }
            }
            if (bj != (size_t)-1) {
                used[all[r].mic][bj] = 1;
                tp += 1.0;
                ap += tp / (double)(r + 1);
            }
            double prec = tp / (double)(r + 1), rec = tp / (double)ntrue;
            double f1 = prec + rec > 0.0 ? 2.0 * prec * rec / (prec + rec) : 0.0;
            if (f1 > best_f1) {
                best_f1 = f1;
                if (best_precision) *best_precision = prec;
                if (best_recall) *best_recall = rec;
            }
        }
        ap /= (double)ntrue;
    }
    for (size_t m = 0; m < n_mics; m++) ew_free(used[m]);
    ew_free(used);
    ew_free(all);
    return ap;
}

ew_status_t ew_picker_save(const ew_picker_t *pk, const char *path)
{
    char bin[32], layers[32], width[32], k[32];
    snprintf(bin, sizeof bin, "%d", pk->cfg.bin);
    snprintf(layers, sizeof layers, "%d", pk->cfg.layers);
    snprintf(width, sizeof width, "%d", pk->cfg.width);
    snprintf(k, sizeof k, "%d", pk->cfg.first_k);
    const char *meta[] = {"model", "ewald-em-picker", "bin", bin, "layers", layers, "width", width, "first_k", k};
    return ew_checkpoint_save(path, &pk->P, 0, meta, 5);
}

ew_status_t ew_picker_load(ew_picker_t *pk, const char *path) { return ew_checkpoint_load(path, &pk->P, 0); }

ew_status_t ew_pick_to_coords(const ew_pick_t *picks, size_t n, const char *image, ew_coords_t *coords)
{
    for (size_t k = 0; k < n; k++) EW_TRY(ew_coords_add(coords, image, picks[k].x, picks[k].y, picks[k].score, 0.0));
    return EW_OK;
}

ew_status_t ew_pick_write_star(const char *path, const ew_pick_t *picks, size_t n)
{
    ew_star_t s;
    ew_star_init(&s, path);
    size_t blk, tab;
    const char *cols[] = {"rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit"};
    ew_status_t st = ew_star_add_block(&s, "", &blk);
    if (st == EW_OK) st = ew_star_add_loop(&s, blk, 3, cols, &tab);
    for (size_t k = 0; st == EW_OK && k < n; k++) {
        char a[32], b[32], c[32];
        snprintf(a, sizeof a, "%.2f", picks[k].x);
        snprintf(b, sizeof b, "%.2f", picks[k].y);
        snprintf(c, sizeof c, "%.5f", picks[k].score);
        const char *row[] = {a, b, c};
        st = ew_star_add_row(&s, blk, tab, row);
    }
    if (st == EW_OK) st = ew_star_write(path, &s);
    ew_star_free(&s);
    return st;
}
