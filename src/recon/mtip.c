/* ewald recon: M-TIP (orientation matching, merging, phasing, cycles). */
#include "recon/mtip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "physics/slice.h"

void ew_mtip_config_default(ew_mtip_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->cycles = 20;
    c->rot_level = 6;
    c->phase_loops = 5;
    ew_phase_config_default(&c->phase);
    c->phase.loops = 20;
    c->phase.starts = 4;
    c->seed = 1;
    c->rot_chunk = 64;
    c->ramp_start = 0.4;
    c->weight_power = 2.0;
}

void ew_mtip_result_free(ew_mtip_result_t *res)
{
    if (!res) return;
    ew_free(res->density);
    ew_free(res->support);
    ew_free(res->intensity);
    ew_free(res->known);
    ew_free(res->quat);
    ew_free(res->scale);
    ew_free(res->error);
    ew_free(res->similarity);
    memset(res, 0, sizeof *res);
}

typedef struct {
    size_t ng, npat;
    float *sg;       /* (ng, 3) good pixels' s */
    float *cg;       /* (ng) their corr */
    float *Y;        /* (npat, ng) patterns on good pixels */
    double *ynorm;   /* (npat) |y| */
    ew_rotgrid_t grid;
    double *R;       /* (grid.n, 9) */
    float *M, *S;    /* (chunk, ng) slices, (npat, chunk) scores */
    size_t *order;   /* (ng) detector index of good pixel g */
    float *smag;     /* (ng) |s| of good pixel g, increasing */
    float *wq;       /* (ng) orientation-matching weight of good pixel g */
    float *Yw;       /* (npat, ng) weighted patterns */
    size_t chunk;
    int nthreads;
} mtip_work_t;

static const float *sort_s; /* qsort context (set under the sort lock) */

static int cmp_s(const void *a, const void *b)
{
    const float *x = sort_s + 3 * *(const size_t *)a, *y = sort_s + 3 * *(const size_t *)b;
    float rx = x[0] * x[0] + x[1] * x[1] + x[2] * x[2], ry = y[0] * y[0] + y[1] * y[1] + y[2] * y[2];
    if (rx != ry) return rx < ry ? -1 : 1;
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    return ia < ib ? -1 : ia > ib;
}

static void sort_by_s(size_t *idx, size_t n, const float *s)
{
#pragma omp critical(ew_mtip_sort)
    {
        sort_s = s;
        qsort(idx, n, sizeof *idx, cmp_s);
    }
}

/* Best grid rotation per pattern for model W: quat, scale, similarity. */
static double orient(mtip_work_t *w, const ew_rvol_t *W, size_t K, ew_quat_t *quat, float *scale)
{
    const size_t ng = w->ng, np = w->npat, B = w->chunk;
    double *best = ew_alloc_array(np, sizeof(double));
    double *mmk = ew_alloc_array(B, sizeof(double));
    if (!best || !mmk) {
        ew_free(best);
        ew_free(mmk);
        return -1.0;
    }
    for (size_t i = 0; i < np; i++) {
        best[i] = -INFINITY;
        scale[i] = 0.0f;
    }
    for (size_t r0 = 0; r0 < w->grid.n; r0 += B) {
        size_t nb = w->grid.n - r0 < B ? w->grid.n - r0 : B;
#pragma omp parallel for num_threads(w->nthreads) schedule(dynamic, 1)
        for (size_t b = 0; b < nb; b++) {
            float *m = w->M + b * ng;
            ew_slice_trilinear(W, w->R + 9 * (r0 + b), w->sg, K, m);
            double mm = 0.0;
            for (size_t p = 0; p < K; p++) {
                m[p] *= w->cg[p] * w->wq[p];
                mm += (double)m[p] * m[p];
            }
            mmk[b] = mm;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)np, (int)nb, (int)K, 1.0f, w->Yw, (int)ng, w->M,
                    (int)ng, 0.0f, w->S, (int)nb);
        for (size_t i = 0; i < np; i++)
            for (size_t b = 0; b < nb; b++) {
                if (!(mmk[b] > 0.0)) continue;
                double dot = w->S[i * nb + b];
                double sc = dot / sqrt(mmk[b]);
                if (sc > best[i]) {
                    best[i] = sc;
                    quat[i] = w->grid.quat[r0 + b];
                    scale[i] = (float)(dot / mmk[b]);
                }
            }
    }
    double mean = 0.0;
    for (size_t i = 0; i < np; i++) {
        double yy = 0.0;
        for (size_t p = 0; p < K; p++) yy += (double)w->Yw[i * ng + p] * w->Yw[i * ng + p];
        mean += yy > 0.0 && isfinite(best[i]) ? best[i] / sqrt(yy) : 0.0;
    }
    ew_free(best);
    ew_free(mmk);
    return mean / (double)np;
}

/* Merge the patterns at quat with scale into inten (n^3) and known. */
static ew_status_t merge(mtip_work_t *w, const ew_quat_t *quat, const float *scale, int n, double ds, float *inten,
                         uint8_t *known)
{
    ew_rvol_t acc;
    EW_TRY(ew_rvol_alloc(&acc, n, ds));
    size_t nv = (size_t)n * n * n;
    float *wsum = ew_calloc_array(nv, sizeof(float));
    float *val = ew_alloc_array(w->ng, sizeof(float));
    if (!wsum || !val) {
        ew_rvol_free(&acc);
        ew_free(wsum);
        ew_free(val);
        return EW_ERR_NOMEM;
    }
    for (size_t i = 0; i < w->npat; i++) {
        if (!(scale[i] > 0.0f)) continue;
        const float *y = w->Y + i * w->ng;
        for (size_t p = 0; p < w->ng; p++) val[p] = y[p] / (scale[i] * w->cg[p]);
        double R[9];
        ew_quat_to_mat(quat[i], R);
        ew_merge_trilinear(&acc, wsum, R, w->sg, w->ng, val, 1.0f);
    }
    for (size_t v = 0; v < nv; v++) {
        known[v] = wsum[v] > 1e-3f;
        inten[v] = known[v] ? acc.data[v] / wsum[v] : 0.0f;
    }
    ew_rvol_free(&acc);
    ew_free(wsum);
    ew_free(val);
    return EW_OK;
}

static ew_status_t check_args(const float *patterns, size_t npat, const ew_mtip_detector_t *det, int n, double ds,
                              const ew_mtip_config_t *c)
{
    if (!patterns || npat == 0) return ew_fail(EW_ERR_ARG, "mtip: no patterns (npat = %zu)", npat);
    if (!det || !det->s || det->npix == 0) return ew_fail(EW_ERR_ARG, "mtip: the detector has no pixels");
    if (n < 5 || n > 2048 || !(ds > 0.0)) return ew_fail(EW_ERR_ARG, "mtip: grid n = %d, ds = %g is invalid", n, ds);
    if (c->cycles < 1) return ew_fail(EW_ERR_ARG, "mtip: cycles = %d is not positive", c->cycles);
    if (c->rot_level < 1 || c->rot_level > 40)
        return ew_fail(EW_ERR_ARG, "mtip: rot_level = %d is not in 1..40", c->rot_level);
    if (!(c->ramp_start > 0.0 && c->ramp_start <= 1.0))
        return ew_fail(EW_ERR_ARG, "mtip: ramp_start = %g is not in (0, 1]", c->ramp_start);
    if (c->phase_loops < 1) return ew_fail(EW_ERR_ARG, "mtip: phase_loops = %d is not positive", c->phase_loops);
    EW_TRY(ew_phase_config_check(&c->phase));
    double smax = (n / 2 - 1) * ds;
    for (size_t p = 0; p < det->npix; p++) {
        if (det->mask && det->mask[p] == 2) continue;
        const float *s = det->s + 3 * p;
        double r = sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + (double)s[2] * s[2]);
        if (!(r <= smax))
            return ew_fail(EW_ERR_ARG, "mtip: pixel %zu has |s| = %g 1/A beyond the grid's %g (n = %d, ds = %g)", p, r,
                           smax, n, ds);
        if (det->corr && !(det->corr[p] > 0.0f))
            return ew_fail(EW_ERR_ARG, "mtip: pixel %zu has corr = %g (not positive)", p, (double)det->corr[p]);
    }
    return EW_OK;
}

ew_status_t ew_mtip_run(const float *patterns, size_t npat, const ew_mtip_detector_t *det, int n, double ds,
                        const ew_mtip_config_t *c, ew_mtip_result_t *res)
{
    memset(res, 0, sizeof *res);
    EW_TRY(check_args(patterns, npat, det, n, ds, c));
    const double t0 = ew_time_now();
    mtip_work_t w;
    memset(&w, 0, sizeof w);
    w.npat = npat;
    w.nthreads = c->phase.nthreads;
    w.chunk = c->rot_chunk ? c->rot_chunk : 64;
    for (size_t p = 0; p < det->npix; p++) w.ng += !(det->mask && det->mask[p] == 2);
    const size_t nv = (size_t)n * n * n;
    ew_status_t st = EW_OK;
    size_t ny;
    ew_rvol_t W = {0, 0.0, NULL};
    ew_phaser_t *ph = NULL;
    uint8_t *sup0 = NULL, *sup_tmp = NULL;
    float *dens_tmp = NULL;
    if (w.ng == 0) st = ew_fail(EW_ERR_ARG, "mtip: every detector pixel is masked");
    if (st == EW_OK) st = ew_size_mul(npat, w.ng, &ny);
    if (st == EW_OK) st = ew_rotgrid_600cell(c->rot_level, &w.grid);
    if (st == EW_OK) {
        w.sg = ew_alloc_array(w.ng * 3, sizeof(float));
        w.cg = ew_alloc_array(w.ng, sizeof(float));
        w.Y = ew_alloc_array(ny, sizeof(float));
        w.ynorm = ew_alloc_array(npat, sizeof(double));
        w.R = ew_alloc_array(w.grid.n * 9, sizeof(double));
        w.M = ew_alloc_array(w.chunk * w.ng, sizeof(float));
        w.S = ew_alloc_array(npat * w.chunk, sizeof(float));
        w.order = ew_alloc_array(w.ng, sizeof(size_t));
        w.smag = ew_alloc_array(w.ng, sizeof(float));
        w.wq = ew_alloc_array(w.ng, sizeof(float));
        w.Yw = ew_alloc_array(ny, sizeof(float));
        sup0 = ew_alloc_array(nv, 1);
        sup_tmp = ew_alloc_array(nv, 1);
        dens_tmp = ew_alloc_array(nv, sizeof(float));
        res->density = ew_alloc_array(nv, sizeof(float));
        res->support = ew_alloc_array(nv, 1);
        res->intensity = ew_alloc_array(nv, sizeof(float));
        res->known = ew_alloc_array(nv, 1);
        res->quat = ew_alloc_array(npat, sizeof(ew_quat_t));
        res->scale = ew_alloc_array(npat, sizeof(float));
        res->error = ew_calloc_array((size_t)c->cycles, sizeof(double));
        res->similarity = ew_calloc_array((size_t)c->cycles, sizeof(double));
        if (!w.sg || !w.cg || !w.order || !w.smag || !w.wq || !w.Yw || !w.Y || !w.ynorm || !w.R || !w.M || !w.S || !sup0 || !sup_tmp || !dens_tmp || !res->density ||
            !res->support || !res->intensity || !res->known || !res->quat || !res->scale || !res->error ||
            !res->similarity)
            st = ew_fail(EW_ERR_NOMEM, "mtip: out of memory for %zu patterns of %zu pixels", npat, w.ng);
    }
    if (st == EW_OK) st = ew_rvol_alloc(&W, n, ds);
    if (st == EW_OK) st = ew_phaser_create(&ph, n, &c->phase);
    if (st == EW_OK) {
        /* good pixels in order of increasing |s|, so a resolution limit is a prefix */
        size_t g = 0;
        for (size_t p = 0; p < det->npix; p++)
            if (!(det->mask && det->mask[p] == 2)) w.order[g++] = p;
        sort_by_s(w.order, w.ng, det->s);
        for (g = 0; g < w.ng; g++) {
            size_t p = w.order[g];
            memcpy(w.sg + 3 * g, det->s + 3 * p, 3 * sizeof(float));
            w.cg[g] = det->corr ? det->corr[p] : 1.0f;
            w.smag[g] = sqrtf(w.sg[3 * g] * w.sg[3 * g] + w.sg[3 * g + 1] * w.sg[3 * g + 1] +
                              w.sg[3 * g + 2] * w.sg[3 * g + 2]);
        }
        for (g = 0; g < w.ng; g++) {
            float r = w.smag[g] / w.smag[w.ng - 1];
            w.wq[g] = powf(r, (float)c->weight_power);
        }
        for (size_t i = 0; i < npat; i++) {
            double yy = 0.0;
            for (g = 0; g < w.ng; g++) {
                float v = patterns[i * det->npix + w.order[g]];
                w.Y[i * w.ng + g] = v;
                w.Yw[i * w.ng + g] = v * w.wq[g];
                yy += (double)v * v;
            }
            w.ynorm[i] = sqrt(yy);
        }
        for (size_t r = 0; r < w.grid.n; r++) ew_quat_to_mat(w.grid.quat[r], w.R + 9 * r);
        for (size_t i = 0; i < npat; i++) {
            ew_rng_t rng;
            ew_rng_init(&rng, c->seed, ew_rng_stream_id(EW_RNG_TAG_ORIENTATION, i));
            res->quat[i] = c->init_quat ? c->init_quat[i] : ew_quat_random(&rng);
            res->scale[i] = 1.0f;
        }
    }
    res->n = n;
    res->ds = ds;
    res->voxel = 1.0 / (n * ds);
    res->npat = npat;
    res->cycles = c->cycles;
    ew_progress_t *pr = st == EW_OK ? ew_progress_start("M-TIP", (uint64_t)c->cycles) : NULL;
    for (int cyc = 0; cyc < c->cycles && st == EW_OK; cyc++) {
        if (cyc > 0) {
            double f = c->cycles > 2 ? c->ramp_start + (1.0 - c->ramp_start) * (cyc - 1) / (double)(c->cycles - 2) : 1.0;
            float slim = (float)(f * w.smag[w.ng - 1]);
            size_t K = 0;
            while (K < w.ng && w.smag[K] <= slim) K++;
            if (K < 8) K = w.ng < 8 ? w.ng : 8;
            double sim = orient(&w, &W, K, res->quat, res->scale);
            if (sim < -0.5) {
                st = EW_ERR_NOMEM;
                break;
            }
            res->similarity[cyc] = sim;
        }
        st = merge(&w, res->quat, res->scale, n, ds, res->intensity, res->known);
        if (st == EW_OK) st = ew_phaser_set_data(ph, &(ew_rvol_t){n, ds, res->intensity}, res->known);
        if (st != EW_OK) break;
        if (cyc == 0) {
            st = ew_phase_support_autocorr(&(ew_rvol_t){n, ds, res->intensity}, res->known, c->phase.ac_sigma,
                                           c->phase.ac_threshold, c->phase.nthreads, sup0);
            /* the best of the recipe's starts */
            double be = INFINITY;
            for (int k = 0; k < c->phase.starts && st == EW_OK; k++) {
                double e = 0.0;
                st = ew_phaser_run(ph, sup0, (uint64_t)k, dens_tmp, sup_tmp, &e);
                if (st == EW_OK && (k == 0 || e < be)) {
                    be = e;
                    memcpy(res->density, dens_tmp, nv * sizeof(float));
                    memcpy(res->support, sup_tmp, nv);
                }
            }
            res->error[cyc] = be;
        } else {
            st = ew_phaser_set_iterate(ph, res->support, res->density);
            if (st == EW_OK) {
                ew_phaser_loops(ph, c->phase_loops);
                res->error[cyc] = ew_phaser_finish(ph, res->density, res->support);
            }
        }
        if (st == EW_OK) st = ew_phase_intensity(res->density, n, c->phase.nthreads, W.data);
        ew_progress_status(pr, "similarity %.4f, Fourier error %.4f", res->similarity[cyc], res->error[cyc]);
        ew_progress_add(pr, 1);
    }
    ew_progress_finish(pr);
    ew_phaser_free(ph);
    ew_rvol_free(&W);
    ew_rotgrid_free(&w.grid);
    ew_free(w.sg);
    ew_free(w.cg);
    ew_free(w.Y);
    ew_free(w.ynorm);
    ew_free(w.R);
    ew_free(w.M);
    ew_free(w.S);
    ew_free(w.order);
    ew_free(w.smag);
    ew_free(w.wq);
    ew_free(w.Yw);
    ew_free(sup0);
    ew_free(sup_tmp);
    ew_free(dens_tmp);
    if (st != EW_OK) {
        ew_mtip_result_free(res);
        return st;
    }
    res->seconds = ew_time_now() - t0;
    return EW_OK;
}
