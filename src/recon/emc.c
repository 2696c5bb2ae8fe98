/* ewald recon: expand-maximize-compress. See emc.h and docs/emc.md. */
#include "recon/emc.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#ifdef EW_HAVE_MPI
#include <mpi.h>
#endif

#include "recon/emc_internal.h"

#define T EW_EMC_TILE
/* exp(-36) ~ 2e-16: terms this far below the running maximum do not change
 * a double sum. */
#define EMC_EXP_CUT 36.0
/* pixels per block in the expand and merge loops */
#define EMC_PIX_BLOCK 256
#define EMC_PIX_BLOCK_MAX EMC_PIX_BLOCK
/* compress reads a chunk pixel-major when the patterns with some P > 0 in
 * the tile hold at least 1 / EMC_GATHER_RATIO of the chunk's photons
 * (a pixel-major read costs about half a row update per photon) */
#define EMC_GATHER_RATIO 2
/* photons ahead whose ln W rows the likelihood loop prefetches */
#ifndef EMC_PREFETCH
#define EMC_PREFETCH 8
#endif

void ew_emc_config_default(ew_emc_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->beta_start = 1.0;
    c->beta_factor = 1.0;
    c->beta_period = 10;
    c->beta_max = 1.0;
    c->update_scale = 1;
    c->friedel = 1;
    c->p_min = 1e-6;
    c->mem_limit_mb = 2048;
    c->seed = 1;
}

double ew_emc_beta_at(const ew_emc_config_t *c, int it)
{
    int steps = it > 1 ? (it - 1) / c->beta_period : 0;
    double b = c->beta_start * pow(c->beta_factor, steps);
    return b < c->beta_max ? b : c->beta_max;
}

/* Morton (Z-order) key of three 10-bit coordinates: sorting by it keeps
 * points that are close in 3D mostly close in the order. */
static uint64_t emc_morton3(double x, double y, double z)
{
    double c[3] = {x, y, z};
    uint64_t key = 0;
    unsigned q[3];
    for (int k = 0; k < 3; k++) {
        double v = c[k] < 0 ? 0 : c[k] > 1 ? 1 : c[k];
        q[k] = (unsigned)(v * 1023.0 + 0.5);
    }
    for (int b = 9; b >= 0; b--)
        for (int k = 0; k < 3; k++) key = (key << 1) | ((q[k] >> b) & 1u);
    return key;
}

typedef struct {
    uint64_t key;
    uint32_t idx;
} emc_key_t;

static int emc_key_cmp(const void *a, const void *b)
{
    const emc_key_t *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sort pixel indices by the Morton key of their s-vectors, so that a block
 * of consecutive pixels is a compact patch of the detector. */
static ew_status_t emc_sort_pixels(const float *s, uint32_t *list, size_t n, double smax)
{
    emc_key_t *k = ew_alloc_array(n ? n : 1, sizeof *k);
    if (!k) return EW_ERR_NOMEM;
    double h = smax > 0 ? 0.5 / smax : 1;
    for (size_t i = 0; i < n; i++) {
        const float *v = s + 3 * (size_t)list[i];
        k[i].key = emc_morton3(v[0] * h + 0.5, v[1] * h + 0.5, v[2] * h + 0.5);
        k[i].idx = list[i];
    }
    qsort(k, n, sizeof *k, emc_key_cmp);
    for (size_t i = 0; i < n; i++) list[i] = k[i].idx;
    ew_free(k);
    return EW_OK;
}

static ew_status_t emc_set_grid(ew_emc_t *e, const ew_rotgrid_t *g)
{
    if (!g || g->n == 0 || !g->quat || !g->weight)
        return ew_fail(EW_ERR_ARG, "EMC: the rotation grid is empty");
    double wsum = 0;
    for (size_t r = 0; r < g->n; r++) {
        if (!(g->weight[r] >= 0) || !isfinite(g->weight[r]))
            return ew_fail(EW_ERR_ARG, "EMC: rotation grid weight[%zu] = %g is not a finite non-negative number",
                           r, g->weight[r]);
        wsum += g->weight[r];
    }
    if (!(wsum > 0)) return ew_fail(EW_ERR_ARG, "EMC: the rotation grid weights sum to %g", wsum);
    ew_quat_t *q = ew_alloc_array(g->n, sizeof *q);
    double *w = ew_alloc_array(g->n, sizeof *w);
    double *rm = ew_alloc_array(g->n, 9 * sizeof *rm);
    double *lw = ew_alloc_array(g->n, sizeof *lw);
    uint32_t *perm = ew_alloc_array(g->n, sizeof *perm);
    emc_key_t *k = ew_alloc_array(g->n, sizeof *k);
    if (!q || !w || !rm || !lw || !perm || !k || g->n > UINT32_MAX) {
        ew_free(q), ew_free(w), ew_free(rm), ew_free(lw), ew_free(perm), ew_free(k);
        return ew_fail(EW_ERR_NOMEM, "EMC: cannot hold a grid of %zu rotations", g->n);
    }
    /* internal order: rotations sorted by the Morton key of the quaternion's
     * (x, y, z) with w >= 0, so a tile of rotations is a compact cluster and
     * its slices touch overlapping voxels (cache reuse in expand / merge) */
    for (size_t r = 0; r < g->n; r++) {
        q[r] = ew_quat_normalize(g->quat[r]);
        w[r] = g->weight[r] / wsum;
        double sg = q[r].w < 0 ? -1 : 1;
        k[r].key = emc_morton3(0.5 + 0.5 * sg * q[r].x, 0.5 + 0.5 * sg * q[r].y, 0.5 + 0.5 * sg * q[r].z);
        k[r].idx = (uint32_t)r;
    }
    qsort(k, g->n, sizeof *k, emc_key_cmp);
    for (size_t ri = 0; ri < g->n; ri++) {
        size_t r = k[ri].idx;
        perm[ri] = (uint32_t)r;
        ew_quat_to_mat(q[r], rm + 9 * ri);
        lw[ri] = w[r] > 0 ? log(w[r]) : -INFINITY;
    }
    ew_free(k);
    ew_free(e->perm);
    e->perm = perm;
    ew_free(e->grid.quat), ew_free(e->grid.weight), ew_free(e->rotmat), ew_free(e->logw);
    e->grid = *g;
    e->grid.quat = q;
    e->grid.weight = w;
    e->rotmat = rm;
    e->logw = lw;
    for (size_t d = 0; d < e->n_total; d++) e->best_rot[d] = -1, e->best_prob[d] = 0;
    return EW_OK;
}

/* Split the rank's hits into orientation (mask 0) and merge (mask 0, 1) lists. */
static ew_status_t emc_take_data(ew_emc_t *e, const ew_emc_sparse_t *data, const uint8_t *mask)
{
    uint64_t h0 = data->offset[e->d0], h1 = data->offset[e->d0 + e->nloc];
    size_t nh = (size_t)(h1 - h0);
    e->o_off = ew_alloc_array(e->nloc + 1, sizeof *e->o_off);
    e->m_off = ew_alloc_array(e->nloc + 1, sizeof *e->m_off);
    e->o_pix = ew_alloc_array(nh, sizeof *e->o_pix);
    e->m_pix = ew_alloc_array(nh, sizeof *e->m_pix);
    e->o_cnt = ew_alloc_array(nh, sizeof *e->o_cnt);
    e->m_cnt = ew_alloc_array(nh, sizeof *e->m_cnt);
    e->K = ew_alloc_array(e->nloc, sizeof *e->K);
    if (!e->o_off || !e->m_off || !e->o_pix || !e->m_pix || !e->o_cnt || !e->m_cnt || !e->K) return EW_ERR_NOMEM;
    size_t no = 0, nm = 0;
    for (size_t i = 0; i < e->nloc; i++) {
        size_t d = e->d0 + i;
        e->o_off[i] = no;
        e->m_off[i] = nm;
        double k = 0;
        for (uint64_t h = data->offset[d]; h < data->offset[d + 1]; h++) {
            uint32_t p = data->pix[h];
            uint8_t mk = mask ? mask[p] : 0;
            if (mk == EW_EMC_PIX_GOOD) {
                e->o_pix[no] = p;
                e->o_cnt[no++] = (float)data->count[h];
                k += data->count[h];
            }
            if (mk <= EW_EMC_PIX_NOORIENT) {
                e->m_pix[nm] = p;
                e->m_cnt[nm++] = (float)data->count[h];
            }
        }
        e->K[i] = k;
    }
    e->o_off[e->nloc] = no;
    e->m_off[e->nloc] = nm;
    return EW_OK;
}

static int emc_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Pixel-major copy of the merge hits within chunks of EW_EMC_CHUNK
 * patterns (see ew_emc_t.ck_run). */
static ew_status_t emc_build_chunks(ew_emc_t *e)
{
    const size_t C = EW_EMC_CHUNK, nck = (e->nloc + C - 1) / C;
    const size_t nh = (size_t)e->m_off[e->nloc];
    uint32_t *stamp = ew_calloc_array(e->npix, sizeof *stamp); /* chunk + 1 that last saw the pixel */
    uint64_t *pos = ew_alloc_array(e->npix, sizeof *pos);
    e->n_chunk = nck;
    e->ck_run = ew_alloc_array(nck + 1, sizeof *e->ck_run);
    e->ent_d = ew_alloc_array(nh ? nh : 1, sizeof *e->ent_d);
    e->ent_k = ew_alloc_array(nh ? nh : 1, sizeof *e->ent_k);
    if (!stamp || !pos || !e->ck_run || !e->ent_d || !e->ent_k || nck >= UINT32_MAX) {
        ew_free(stamp), ew_free(pos);
        return EW_ERR_NOMEM;
    }
    size_t nruns = 0;
    for (size_t c = 0; c < nck; c++) {
        size_t d1 = (c + 1) * C < e->nloc ? (c + 1) * C : e->nloc;
        e->ck_run[c] = nruns;
        for (uint64_t h = e->m_off[c * C]; h < e->m_off[d1]; h++)
            if (stamp[e->m_pix[h]] != (uint32_t)(c + 1)) stamp[e->m_pix[h]] = (uint32_t)(c + 1), nruns++;
    }
    e->ck_run[nck] = nruns;
    e->run_pix = ew_alloc_array(nruns ? nruns : 1, sizeof *e->run_pix);
    e->run_off = ew_alloc_array(nruns + 1, sizeof *e->run_off);
    if (!e->run_pix || !e->run_off) {
        ew_free(stamp), ew_free(pos);
        return EW_ERR_NOMEM;
    }
    memset(stamp, 0, e->npix * sizeof *stamp);
    for (size_t c = 0; c < nck; c++) {
        size_t d0 = c * C, d1 = (c + 1) * C < e->nloc ? (c + 1) * C : e->nloc;
        uint64_t r0 = e->ck_run[c], r1 = e->ck_run[c + 1], nr = 0;
        uint32_t *px = e->run_pix + r0;
        for (uint64_t h = e->m_off[d0]; h < e->m_off[d1]; h++) {
            uint32_t p = e->m_pix[h];
            if (stamp[p] != (uint32_t)(c + 1)) stamp[p] = (uint32_t)(c + 1), px[nr++] = p, pos[p] = 0;
            pos[p]++;
        }
        EW_ASSERT(nr == r1 - r0);
        qsort(px, (size_t)nr, sizeof *px, emc_u32_cmp);
        uint64_t at = e->m_off[d0];
        for (uint64_t r = r0; r < r1; r++) {
            uint64_t cnt = pos[e->run_pix[r]];
            e->run_off[r] = at;
            pos[e->run_pix[r]] = at;
            at += cnt;
        }
        for (size_t d = d0; d < d1; d++)
            for (uint64_t h = e->m_off[d]; h < e->m_off[d + 1]; h++) {
                uint64_t q = pos[e->m_pix[h]]++;
                e->ent_d[q] = (uint16_t)(d - d0);
                e->ent_k[q] = e->m_cnt[h];
            }
    }
    e->run_off[nruns] = nh;
    ew_free(stamp), ew_free(pos);
    return EW_OK;
}

static ew_status_t emc_check_inputs(const ew_emc_config_t *c, const ew_emc_pixels_t *det,
                                    const ew_emc_sparse_t *data)
{
    if (!det || det->npix == 0 || !det->s) return ew_fail(EW_ERR_ARG, "EMC: the detector has no pixels");
    if (!data || data->n_patterns == 0) return ew_fail(EW_ERR_ARG, "EMC: no patterns");
    if (data->npix != det->npix)
        return ew_fail(EW_ERR_ARG, "EMC: the data have npix = %zu but the detector has %zu pixels", data->npix,
                       det->npix);
    if (data->offset[0] != 0) return ew_fail(EW_ERR_ARG, "EMC: sparse offset[0] = %llu is not 0",
                                             (unsigned long long)data->offset[0]);
    for (size_t d = 0; d < data->n_patterns; d++) {
        if (data->offset[d + 1] < data->offset[d])
            return ew_fail(EW_ERR_ARG, "EMC: sparse offsets decrease at pattern %zu", d);
        for (uint64_t h = data->offset[d]; h < data->offset[d + 1]; h++) {
            if (data->pix[h] >= det->npix)
                return ew_fail(EW_ERR_ARG, "EMC: pattern %zu has pixel index %u >= npix = %zu", d, data->pix[h],
                               det->npix);
            if (data->count[h] == 0) return ew_fail(EW_ERR_ARG, "EMC: pattern %zu has a zero photon count", d);
        }
    }
    if (det->mask)
        for (size_t p = 0; p < det->npix; p++)
            if (det->mask[p] > EW_EMC_PIX_BAD)
                return ew_fail(EW_ERR_ARG, "EMC: detector mask[%zu] = %u is not 0, 1 or 2", p, det->mask[p]);
    if (!(c->beta_start > 0 && c->beta_start <= 1) || !(c->beta_factor >= 1) || c->beta_period < 1 ||
        !(c->beta_max > 0 && c->beta_max <= 1))
        return ew_fail(EW_ERR_ARG, "EMC: beta schedule (start %g, factor %g, period %d, max %g) is invalid",
                       c->beta_start, c->beta_factor, c->beta_period, c->beta_max);
    if (!(c->p_min >= 0 && c->p_min < 1)) return ew_fail(EW_ERR_ARG, "EMC: p_min = %g is not in [0, 1)", c->p_min);
    if (c->compress_path < 0 || c->compress_path > 2)
        return ew_fail(EW_ERR_ARG, "EMC: compress_path = %d is not 0, 1 or 2", c->compress_path);
    if (c->n_vox < 0 || (c->n_vox > 0 && c->n_vox < 3) || c->n_vox > 1024)
        return ew_fail(EW_ERR_ARG, "EMC: n_vox = %d is not 0 or in [3, 1024]", c->n_vox);
    if (!(c->ds >= 0) || !isfinite(c->ds)) return ew_fail(EW_ERR_ARG, "EMC: ds = %g is invalid", c->ds);
    return EW_OK;
}

/* Model size from the detector: ds = distance from the pixel nearest s = 0
 * to its nearest neighbour; n = 2 ceil(s_max / ds) + 3 (odd). */
static ew_status_t emc_size_model(ew_emc_t *e, int *n, double *ds)
{
    double smax = 0, smin = INFINITY;
    size_t p0 = 0;
    for (size_t i = 0; i < e->n_merge; i++) {
        const float *s = e->s + 3 * (size_t)e->mergep[i];
        double a = sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + (double)s[2] * s[2]);
        if (a > smax) smax = a;
        if (a < smin) smin = a, p0 = e->mergep[i];
    }
    e->s_max = smax;
    double h = e->cfg.ds;
    if (h <= 0) {
        h = INFINITY;
        const float *a = e->s + 3 * p0;
        for (size_t i = 0; i < e->n_merge; i++) {
            const float *b = e->s + 3 * (size_t)e->mergep[i];
            double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
            double dd = sqrt(dx * dx + dy * dy + dz * dz);
            if (dd > 0 && dd < h) h = dd;
        }
        if (!isfinite(h)) return ew_fail(EW_ERR_ARG, "EMC: cannot find the detector's pixel spacing (one pixel?)");
    }
    int nv = e->cfg.n_vox;
    if (nv == 0) {
        double half = ceil(smax / h);
        if (half > 500) return ew_fail(EW_ERR_RANGE, "EMC: s_max / ds = %g gives a model over 1000 voxels wide", half);
        nv = 2 * (int)half + 3;
    } else if (smax / h > nv / 2 - 1) {
        ew_warn("EMC: the model (n = %d, ds = %g 1/A) does not reach the detector's s_max = %g 1/A; outer pixels see 0",
                nv, h, smax);
    }
    *n = nv;
    *ds = h;
    return EW_OK;
}

static void emc_friedel(double *v, int n)
{
    size_t n3 = (size_t)n * n * n;
    if (n % 2 == 0) {
        /* even n: the centre is c = n/2, the partner of index i is 2c - i,
         * which for i = 0 falls outside; those planes stay as they are. */
        int c = n / 2;
        /* a pair (a, b) is done by the thread of the plane of a < b only */
#pragma omp parallel for schedule(static)
        for (int z = 1; z < n; z++)
            for (int y = 1; y < n; y++)
                for (int x = 1; x < n; x++) {
                    size_t a = ((size_t)z * n + y) * n + x;
                    size_t b = ((size_t)(2 * c - z) * n + (2 * c - y)) * n + (2 * c - x);
                    if (a < b) {
                        double m = 0.5 * (v[a] + v[b]);
                        v[a] = v[b] = m;
                    }
                }
        return;
    }
#pragma omp parallel for schedule(static)
    for (size_t a = 0; a < n3 / 2; a++) {
        size_t b = n3 - 1 - a;
        double m = 0.5 * (v[a] + v[b]);
        v[a] = v[b] = m;
    }
}

static ew_status_t emc_random_model(ew_emc_t *e)
{
    int n = e->model.n;
    int c = n / 2;
    size_t n3 = (size_t)n * n * n;
    double rmax = e->s_max / e->model.ds + 1.5;
    double *tmp = ew_alloc_array(n3, sizeof *tmp);
    if (!tmp) return EW_ERR_NOMEM;
#pragma omp parallel for schedule(static)
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                double r2 = (double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c);
                ew_rng_t rng;
                ew_rng_init(&rng, e->cfg.seed, ew_rng_stream_id(EW_RNG_TAG_INIT, i));
                tmp[i] = r2 <= rmax * rmax ? 2.0 * e->mu * ew_rng_uniform(&rng) : 0.0;
            }
    if (e->cfg.friedel) emc_friedel(tmp, n);
    for (size_t i = 0; i < n3; i++) e->model.data[i] = (float)tmp[i];
    ew_free(tmp);
    return EW_OK;
}

static double emc_allsum(double x, ew_emc_t *e)
{
#ifdef EW_HAVE_MPI
    if (e->nranks > 1) MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)e;
#endif
    return x;
}

ew_status_t ew_emc_create(ew_emc_t **out, const ew_emc_config_t *cfg, const ew_emc_pixels_t *det,
                          const ew_emc_sparse_t *data, const ew_rotgrid_t *grid)
{
    EW_ASSERT(out && cfg);
    *out = NULL;
    EW_TRY(emc_check_inputs(cfg, det, data));
    ew_emc_t *e = calloc(1, sizeof *e);
    if (!e) return ew_fail(EW_ERR_NOMEM, "EMC: out of memory");
    ew_status_t st = EW_OK;
    e->cfg = *cfg;
    e->cfg.checkpoint = NULL;
    if (cfg->checkpoint && !(e->checkpoint = ew_strdup(cfg->checkpoint))) goto nomem;
    e->cfg.checkpoint = e->checkpoint;
    e->rank = 0, e->nranks = 1;
#ifdef EW_HAVE_MPI
    {
        int init = 0;
        MPI_Initialized(&init);
        if (init && !cfg->no_mpi) {
            MPI_Comm_rank(MPI_COMM_WORLD, &e->rank);
            MPI_Comm_size(MPI_COMM_WORLD, &e->nranks);
        }
    }
#endif
    e->npix = det->npix;
    e->n_total = data->n_patterns;
    e->d0 = e->n_total * (size_t)e->rank / (size_t)e->nranks;
    e->nloc = e->n_total * (size_t)(e->rank + 1) / (size_t)e->nranks - e->d0;
    e->s = ew_alloc_array(e->npix, 3 * sizeof(float));
    e->corr = ew_alloc_array(e->npix, sizeof(float));
    e->good = ew_alloc_array(e->npix, sizeof(uint32_t));
    e->mergep = ew_alloc_array(e->npix, sizeof(uint32_t));
    e->scale = ew_alloc_array(e->n_total, sizeof(float));
    e->best_rot = ew_alloc_array(e->n_total, sizeof(int32_t));
    e->best_prob = ew_alloc_array(e->n_total, sizeof(float));
    if (!e->s || !e->corr || !e->good || !e->mergep || !e->scale || !e->best_rot || !e->best_prob) goto nomem;
    memcpy(e->s, det->s, e->npix * 3 * sizeof(float));
    for (size_t p = 0; p < e->npix; p++) {
        e->corr[p] = det->corr ? det->corr[p] : 1.0f;
        if (!(e->corr[p] >= 0) || !isfinite(e->corr[p])) {
            st = ew_fail(EW_ERR_ARG, "EMC: detector corr[%zu] = %g is not finite and non-negative", p, e->corr[p]);
            goto fail;
        }
        uint8_t mk = det->mask ? det->mask[p] : 0;
        if (mk == EW_EMC_PIX_GOOD) e->good[e->n_good++] = (uint32_t)p;
        if (mk <= EW_EMC_PIX_NOORIENT) e->mergep[e->n_merge++] = (uint32_t)p;
    }
    if (e->n_good == 0) {
        st = ew_fail(EW_ERR_ARG, "EMC: the detector mask leaves no good pixel");
        goto fail;
    }
    {
        double sm = 0;
        for (size_t p = 0; p < e->npix; p++) {
            const float *v = e->s + 3 * p;
            double a = fabs(v[0]) + fabs(v[1]) + fabs(v[2]);
            if (a > sm && isfinite(a)) sm = a;
        }
        if ((st = emc_sort_pixels(e->s, e->good, e->n_good, sm)) != EW_OK ||
            (st = emc_sort_pixels(e->s, e->mergep, e->n_merge, sm)) != EW_OK)
            goto fail;
    }
    e->g_ld = (e->n_good + 7) / 8 * 8;
    e->m_ld = (e->n_merge + 7) / 8 * 8 + 8;
    e->g_soa = ew_calloc_array(e->g_ld, 4 * sizeof(float));
    e->m_soa = ew_calloc_array(e->m_ld, 4 * sizeof(float));
    if (!e->g_soa || !e->m_soa) goto nomem;
    for (size_t i = 0; i < e->n_good; i++)
        for (int k = 0; k < 4; k++)
            e->g_soa[k * e->g_ld + i] = k < 3 ? e->s[3 * (size_t)e->good[i] + k] : e->corr[e->good[i]];
    for (size_t i = 0; i < e->n_merge; i++)
        for (int k = 0; k < 4; k++)
            e->m_soa[k * e->m_ld + i] = k < 3 ? e->s[3 * (size_t)e->mergep[i] + k] : e->corr[e->mergep[i]];
    if ((st = emc_take_data(e, data, det->mask)) != EW_OK || (st = emc_build_chunks(e)) != EW_OK) goto fail;
    if ((st = emc_set_grid(e, grid)) != EW_OK) goto fail;

    double ksum = 0, allsum = 0;
    for (size_t i = 0; i < e->nloc; i++) ksum += e->K[i];
    for (uint64_t h = data->offset[e->d0]; h < data->offset[e->d0 + e->nloc]; h++) allsum += data->count[h];
    ksum = emc_allsum(ksum, e);
    allsum = emc_allsum(allsum, e);
    e->mean_photons = allsum / (double)e->n_total;
    e->mu = ksum / ((double)e->n_total * (double)e->n_good);
    if (!(ksum > 0)) {
        st = ew_fail(EW_ERR_ARG, "EMC: the patterns hold no photon on a good pixel");
        goto fail;
    }
    double kmean = ksum / (double)e->n_total;
    for (size_t d = 0; d < e->n_total; d++) e->scale[d] = 1.0f;
    for (size_t i = 0; i < e->nloc; i++) e->scale[e->d0 + i] = cfg->update_scale ? (float)(e->K[i] / kmean) : 1.0f;
    /* patterns with no photon keep a tiny positive scale so L stays finite */
    for (size_t d = 0; d < e->n_total; d++)
        if (!(e->scale[d] > 1e-3f)) e->scale[d] = 1e-3f;
    if (e->nranks > 1) {
#ifdef EW_HAVE_MPI
        float *tmp = ew_calloc_array(e->n_total, sizeof *tmp);
        if (!tmp) goto nomem;
        for (size_t i = 0; i < e->nloc; i++) tmp[e->d0 + i] = e->scale[e->d0 + i];
        MPI_Allreduce(tmp, e->scale, (int)e->n_total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        ew_free(tmp);
#endif
    }

    int n = 0;
    double ds = 0;
    if ((st = emc_size_model(e, &n, &ds)) != EW_OK) goto fail;
    if ((st = ew_rvol_alloc(&e->model, n, ds)) != EW_OK) goto fail;
    if ((st = emc_random_model(e)) != EW_OK) goto fail;

    if (e->n_total < e->grid.n)
        ew_warn("EMC: %zu patterns for %zu rotations: most rotations will see no pattern and orientations "
                "may come out NaN or random; use a coarser grid or more patterns",
                e->n_total, e->grid.n);
    if (e->mean_photons < 20)
        ew_warn("EMC: %.1f photons per pattern on average is too few to orient patterns reliably (want >= 20)",
                e->mean_photons);
    if (ksum < (double)n * n * n * 0.5)
        ew_warn("EMC: %.3g photons in all for a %d^3 model: fewer than one photon per two voxels", ksum, n);
    *out = e;
    return EW_OK;
nomem:
    st = EW_ERR_NOMEM;
fail:
    ew_emc_free(e);
    return st;
}

void ew_emc_free(ew_emc_t *e)
{
    if (!e) return;
    free(e->checkpoint);
    ew_free(e->s), ew_free(e->corr), ew_free(e->good), ew_free(e->mergep), ew_free(e->g_soa), ew_free(e->m_soa);
    ew_free(e->o_off), ew_free(e->o_pix), ew_free(e->o_cnt);
    ew_free(e->m_off), ew_free(e->m_pix), ew_free(e->m_cnt), ew_free(e->K);
    ew_free(e->ck_run), ew_free(e->run_pix), ew_free(e->run_off), ew_free(e->ent_d);
    ew_free(e->ent_k);
    ew_free(e->grid.quat), ew_free(e->grid.weight), ew_free(e->rotmat), ew_free(e->logw), ew_free(e->perm);
    ew_rvol_free(&e->model);
    ew_free(e->scale), ew_free(e->best_rot), ew_free(e->best_prob);
    for (int k = 0; k < EW_EMC_WK_COUNT; k++) ew_free(e->wk[k]);
    free(e);
}

ew_status_t ew_emc_refine(ew_emc_t *e, const ew_rotgrid_t *grid)
{
    EW_ASSERT(e);
    EW_TRY(emc_set_grid(e, grid));
    if (e->n_total < e->grid.n)
        ew_warn("EMC: %zu patterns for %zu rotations after refinement: orientations may come out NaN or random",
                e->n_total, e->grid.n);
    return EW_OK;
}

ew_status_t ew_emc_set_model(ew_emc_t *e, const float *vol, size_t nvox3)
{
    size_t n3 = (size_t)e->model.n * e->model.n * e->model.n;
    if (nvox3 != n3) return ew_fail(EW_ERR_ARG, "EMC: model of %zu voxels given, %zu expected", nvox3, n3);
    for (size_t i = 0; i < n3; i++)
        if (!(vol[i] >= 0) || !isfinite(vol[i]))
            return ew_fail(EW_ERR_ARG, "EMC: model voxel %zu = %g is not finite and non-negative", i, vol[i]);
    memcpy(e->model.data, vol, n3 * sizeof(float));
    return EW_OK;
}

const ew_rvol_t *ew_emc_model(const ew_emc_t *e) { return &e->model; }
size_t ew_emc_n_patterns(const ew_emc_t *e) { return e->n_total; }
const float *ew_emc_scale(const ew_emc_t *e) { return e->scale; }
const int32_t *ew_emc_best_rot(const ew_emc_t *e) { return e->best_rot; }
const float *ew_emc_best_prob(const ew_emc_t *e) { return e->best_prob; }
const ew_rotgrid_t *ew_emc_grid(const ew_emc_t *e) { return &e->grid; }
int ew_emc_iteration(const ew_emc_t *e) { return e->iteration; }
double ew_emc_beta(const ew_emc_t *e) { return ew_emc_beta_at(&e->cfg, e->iteration + 1); }

/* ------------------------------------------------------------------ */
/* kernels                                                             */

/* Grid coordinates of the particle-frame points R^T s_i / ds + c for a
 * block of pixels (structure-of-arrays input, vectorizable): base[i] is the
 * voxel index of the lower trilinear corner, or -1 when a corner would be
 * outside the grid (or s is NaN); t*[i] are the fractional offsets. */
typedef struct {
    int32_t base[EMC_PIX_BLOCK_MAX];
    float tx[EMC_PIX_BLOCK_MAX], ty[EMC_PIX_BLOCK_MAX], tz[EMC_PIX_BLOCK_MAX];
} emc_coords_t;

typedef float emc_f8 __attribute__((vector_size(32)));
typedef int32_t emc_i8 __attribute__((vector_size(32)));

/* sx, sy, sz are rows of a structure-of-arrays padded to a multiple of 8
 * (the padding is read, its results unused). Written with vector types:
 * GCC does not vectorize the branch-free scalar form under strict FP. */
static void emc_block_coords(const double *R, double inv_ds, int n, const float *sx, const float *sy,
                             const float *sz, size_t cnt, emc_coords_t *o)
{
    float M[9];
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++) M[3 * k + j] = (float)(R[3 * j + k] * inv_ds); /* (R^T / ds)_kj */
    const float c = (float)(n / 2), lim = (float)(n - 1);
    const int32_t n1 = n, n2 = n * n;
    for (size_t i = 0; i < cnt; i += 8) {
        emc_f8 vx, vy, vz;
        memcpy(&vx, sx + i, sizeof vx);
        memcpy(&vy, sy + i, sizeof vy);
        memcpy(&vz, sz + i, sizeof vz);
        emc_f8 x = M[0] * vx + M[1] * vy + M[2] * vz + c;
        emc_f8 y = M[3] * vx + M[4] * vy + M[5] * vz + c;
        emc_f8 z = M[6] * vx + M[7] * vy + M[8] * vz + c;
        emc_i8 ok = (x >= 0) & (x < lim) & (y >= 0) & (y < lim) & (z >= 0) & (z < lim); /* 0 for NaN */
        x = (emc_f8)((emc_i8)x & ok), y = (emc_f8)((emc_i8)y & ok), z = (emc_f8)((emc_i8)z & ok);
        emc_i8 ix = __builtin_convertvector(x, emc_i8), iy = __builtin_convertvector(y, emc_i8),
               iz = __builtin_convertvector(z, emc_i8);
        emc_f8 tx = x - __builtin_convertvector(ix, emc_f8), ty = y - __builtin_convertvector(iy, emc_f8),
               tz = z - __builtin_convertvector(iz, emc_f8);
        emc_i8 b = ((iz * n2 + iy * n1 + ix) & ok) | ~ok;
        memcpy(o->tx + i, &tx, sizeof tx);
        memcpy(o->ty + i, &ty, sizeof ty);
        memcpy(o->tz + i, &tz, sizeof tz);
        memcpy(o->base + i, &b, sizeof b);
    }
}

/* The 8 trilinear weights of one point, corner order (dz, dy, dx) binary. */
static inline void emc_weights(float tx, float ty, float tz, float wt[8])
{
    float ux = 1 - tx, uy = 1 - ty, uz = 1 - tz;
    wt[0] = uz * uy * ux, wt[1] = uz * uy * tx, wt[2] = uz * ty * ux, wt[3] = uz * ty * tx;
    wt[4] = tz * uy * ux, wt[5] = tz * uy * tx, wt[6] = tz * ty * ux, wt[7] = tz * ty * tx;
}

/* Vectors of 8 floats (GCC/Clang vector extension): the tile kernels are
 * written with them so that the compiler cannot turn the loop over photons
 * into gathers; EW_EMC_TILE is a multiple of 8. */
typedef float emc_v8 __attribute__((vector_size(32)));
#define NV (T / 8)
_Static_assert(T % 8 == 0, "EW_EMC_TILE must be a multiple of 8");
_Static_assert(EW_EMC_CHUNK >= 1 && EW_EMC_CHUNK <= 65536, "EW_EMC_CHUNK must be in [1, 65536]");

/* Expand rotations r0 .. r0+nt-1 into logw[p*T + j] = ln max(W_rp, wfloor)
 * for the good pixels p, and u[j] = sum_p W_rp. Unused tile slots get 0.
 * Rotation by rotation into tmp (T x n_good, pixel-contiguous, so the model
 * reads of neighbouring pixels are neighbouring voxels), then transposed. */
static void emc_expand_tile(const ew_emc_t *e, size_t r0, int nt, float wfloor, float *logw, double *u,
                            float *tmp)
{
    int n = e->model.n;
    double inv_ds = 1.0 / e->model.ds;
    const float *m = e->model.data;
    const size_t ng = e->n_good;
    double us[T] = {0};
    const size_t o2 = (size_t)n, o4 = (size_t)n * n;
    emc_coords_t cob, *co = &cob;
    /* a compact block of pixels for every rotation of the (compact) tile:
     * the model reads of the block stay in cache */
    for (size_t i0 = 0; i0 < ng; i0 += EMC_PIX_BLOCK) {
        size_t i1 = i0 + EMC_PIX_BLOCK < ng ? i0 + EMC_PIX_BLOCK : ng;
        for (int j = 0; j < nt; j++) {
            const double *R = e->rotmat + 9 * (r0 + j);
            float *w = tmp + (size_t)j * ng;
            emc_block_coords(R, inv_ds, n, e->g_soa + i0, e->g_soa + e->g_ld + i0, e->g_soa + 2 * e->g_ld + i0, i1 - i0,
                             co);
            const float *corr = e->g_soa + 3 * e->g_ld;
            double acc = 0;
            for (size_t i = i0; i < i1; i++) {
                int32_t b = co->base[i - i0];
                float v = 0;
                if (b >= 0) {
                    float wt[8];
                    emc_weights(co->tx[i - i0], co->ty[i - i0], co->tz[i - i0], wt);
                    const float *q = m + b;
                    v = wt[0] * q[0] + wt[1] * q[1] + wt[2] * q[o2] + wt[3] * q[o2 + 1] + wt[4] * q[o4] +
                        wt[5] * q[o4 + 1] + wt[6] * q[o4 + o2] + wt[7] * q[o4 + o2 + 1];
                    v *= corr[i];
                }
                w[i] = v;
                acc += v;
            }
            us[j] += acc;
        }
    }
    for (int j = 0; j < T; j++) u[j] = us[j];
    for (size_t i = 0; i < ng; i++) {
        float *row = logw + (size_t)e->good[i] * T;
        for (int j = 0; j < nt; j++) {
            float v = tmp[(size_t)j * ng + i];
            row[j] = logf(v > wfloor ? v : wfloor);
        }
        for (int j = nt; j < T; j++) row[j] = 0;
    }
}

/* acc[j] = sum over pattern hits of k * logw[p][j]: the hot loop. One
 * photon adds a contiguous row of T log-intensities (rows 32-byte aligned). */
static inline void emc_like_row(const float *restrict logw, const uint32_t *restrict pix,
                                const float *restrict cnt, uint64_t h0, uint64_t h1, float *restrict acc)
{
    emc_v8 a[NV], b[NV];
    for (int v = 0; v < NV; v++) a[v] = b[v] = (emc_v8){0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t h = h0;
    for (; h + 1 < h1; h += 2) { /* two sums: half the FMA dependency chain */
        if (h + EMC_PREFETCH + 1 < h1) { /* rows beyond L2: ask for them early */
            __builtin_prefetch(logw + (size_t)pix[h + EMC_PREFETCH] * T);
            __builtin_prefetch(logw + (size_t)pix[h + EMC_PREFETCH] * T + 16);
            __builtin_prefetch(logw + (size_t)pix[h + EMC_PREFETCH + 1] * T);
            __builtin_prefetch(logw + (size_t)pix[h + EMC_PREFETCH + 1] * T + 16);
        }
        const emc_v8 *ra = (const emc_v8 *)(logw + (size_t)pix[h] * T);
        const emc_v8 *rb = (const emc_v8 *)(logw + (size_t)pix[h + 1] * T);
        float ka = cnt[h], kb = cnt[h + 1];
        for (int v = 0; v < NV; v++) a[v] += ka * ra[v], b[v] += kb * rb[v];
    }
    if (h < h1) {
        const emc_v8 *ra = (const emc_v8 *)(logw + (size_t)pix[h] * T);
        float ka = cnt[h];
        for (int v = 0; v < NV; v++) a[v] += ka * ra[v];
    }
    for (int v = 0; v < NV; v++) a[v] += b[v];
    memcpy(acc, a, sizeof a);
}

/* Vectors of 4 doubles for the probabilities. */
typedef double emc_d4 __attribute__((vector_size(32)));
typedef int64_t emc_l4 __attribute__((vector_size(32)));
typedef float emc_f4 __attribute__((vector_size(16)));
#define ND (T / 4)

/* exp of 4 doubles, relative error below 1e-14 (range reduction
 * x = n ln 2 + r, |r| <= ln 2 / 2, Taylor series of degree 11 for e^r,
 * 2^n from the exponent bits); x < -700 gives 0, NaN gives NaN, +Inf gives
 * NaN. Vector code: libm's scalar exp, called ~2e8 times per iteration at
 * Dragonfly's size, was 6% of the profile. */
static inline void emc_exp4(const emc_d4 *xp, emc_d4 *out) /* pointers: no vector-ABI arguments */
{
    emc_d4 x = *xp;
    const emc_d4 magic = {0x1.8p52, 0x1.8p52, 0x1.8p52, 0x1.8p52}; /* adds and rounds to an integer */
    const emc_d4 lo = {-700.0, -700.0, -700.0, -700.0};
    emc_l4 small = x < lo;
    x = (emc_d4)(((emc_l4)x & ~small) | ((emc_l4)lo & small));
    emc_d4 t = x * 1.4426950408889634 + magic; /* x / ln 2 rounded, in the low mantissa bits */
    emc_d4 n = t - magic;
    emc_l4 ni = (emc_l4)t - (emc_l4)magic;
    emc_d4 r = (x - n * 0x1.62e42fefa3800p-1) - n * 0x1.ef35793c76730p-45; /* ln 2 in two parts */
    emc_d4 p = 1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800));
    p = 1.0 / 40320 + r * p;
    p = 1.0 / 5040 + r * p;
    p = 1.0 / 720 + r * p;
    p = 1.0 / 120 + r * p;
    p = 1.0 / 24 + r * p;
    p = 1.0 / 6 + r * p;
    p = 0.5 + r * p;
    p = 1.0 + r * p;
    p = 1.0 + r * p;
    emc_d4 sc = (emc_d4)((ni + 1023) << 52); /* 2^n, n >= -1010 */
    *out = (emc_d4)((emc_l4)(p * sc) & ~small);
}

static inline double emc_hsum4(const emc_d4 *v) { return ((*v)[0] + (*v)[1]) + ((*v)[2] + (*v)[3]); }

/* Per-thread, per-pattern running log-sum-exp and moments. */
typedef struct {
    double m;      /* running max of x = beta L + ln w */
    double S;      /* sum exp(x - m) */
    double U;      /* sum exp(x - m) u_r */
    double TL;     /* sum exp(x - m) L */
    double bx;     /* max x */
    int32_t br;    /* its rotation */
} emc_acc_t;

/* Add one tile's x = beta L + ln w to the pattern's accumulator; lwt is
 * ln w of the tile, -inf in unused slots (L is finite there). Vector code;
 * the maximum ignores NaN, which then reaches S and flags the pattern. */
static inline void emc_acc_add(emc_acc_t *a, const float *L, const double *lwt, const double *u, double beta,
                               size_t r0)
{
    emc_d4 x[ND], mv = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (int v = 0; v < ND; v++) {
        emc_f4 lf;
        emc_d4 lw;
        memcpy(&lf, L + 4 * v, sizeof lf);
        memcpy(&lw, lwt + 4 * v, sizeof lw);
        x[v] = beta * __builtin_convertvector(lf, emc_d4) + lw;
        emc_l4 gt = x[v] > mv;
        mv = (emc_d4)(((emc_l4)x[v] & gt) | ((emc_l4)mv & ~gt));
    }
    double tm = mv[0];
    for (int k = 1; k < 4; k++)
        if (mv[k] > tm) tm = mv[k];
    if (!(tm > -INFINITY)) return; /* every slot -inf or NaN */
    int tb = 0;
    while (!(x[tb / 4][tb % 4] == tm)) tb++; /* first slot holding the maximum */
    if (tm > a->bx) a->bx = tm, a->br = (int32_t)(r0 + (size_t)tb);
    if (tm > a->m) {
        double f = isfinite(a->m) ? exp(a->m - tm) : 0.0;
        a->S *= f, a->U *= f, a->TL *= f;
        a->m = tm;
    }
    /* terms below e^-36 of the running maximum are dropped (NaN is kept) */
    const emc_d4 cut = {-EMC_EXP_CUT, -EMC_EXP_CUT, -EMC_EXP_CUT, -EMC_EXP_CUT};
    emc_d4 S = {0, 0, 0, 0}, U = S, TL = S;
    for (int v = 0; v < ND; v++) {
        emc_d4 t = x[v] - a->m, uv;
        memcpy(&uv, u + 4 * v, sizeof uv);
        emc_f4 lf;
        memcpy(&lf, L + 4 * v, sizeof lf);
        emc_d4 p;
        emc_exp4(&t, &p);
        p = (emc_d4)((emc_l4)p & ~(t < cut));
        S += p;
        U += p * uv;
        TL += p * __builtin_convertvector(lf, emc_d4);
    }
    a->S += emc_hsum4(&S);
    a->U += emc_hsum4(&U);
    a->TL += emc_hsum4(&TL);
}

static void emc_acc_merge(emc_acc_t *a, const emc_acc_t *b)
{
    if (b->bx > a->bx || (b->bx == a->bx && b->br < a->br && b->br >= 0)) a->bx = b->bx, a->br = b->br;
    if (!isfinite(b->m)) return;
    if (!isfinite(a->m)) {
        a->m = b->m, a->S = b->S, a->U = b->U, a->TL = b->TL;
        return;
    }
    double m = a->m > b->m ? a->m : b->m;
    double fa = exp(a->m - m), fb = exp(b->m - m);
    a->S = a->S * fa + b->S * fb;
    a->U = a->U * fa + b->U * fb;
    a->TL = a->TL * fa + b->TL * fb;
    a->m = m;
}

/* Add the merge pixels of the tile's rotations (those with a[j] > 0) to the
 * interleaved accumulator nd[2 v] (numerator: sum_d P_dr k_dp) and
 * nd[2 v + 1] (denominator: a_r c_p, a_r = sum_d P_dr phi_d), both spread
 * with the trilinear weights; pixel block by pixel block for cache reuse. */
static void emc_merge_tile(const ew_emc_t *e, size_t r0, int nt, const float *view, const double *a, float *nd)
{
    int n = e->model.n;
    double inv_ds = 1.0 / e->model.ds;
    const size_t o2 = (size_t)n, o4 = (size_t)n * n;
    emc_coords_t cob, *co = &cob;
    for (size_t i0 = 0; i0 < e->n_merge; i0 += EMC_PIX_BLOCK) {
        size_t i1 = i0 + EMC_PIX_BLOCK < e->n_merge ? i0 + EMC_PIX_BLOCK : e->n_merge;
        for (int j = 0; j < nt; j++) {
            if (!(a[j] > 0)) continue;
            const double *R = e->rotmat + 9 * (r0 + j);
            float aj = (float)a[j];
            const size_t nm = e->m_ld;
            emc_block_coords(R, inv_ds, n, e->m_soa + i0, e->m_soa + nm + i0, e->m_soa + 2 * nm + i0, i1 - i0, co);
            const float *corr = e->m_soa + 3 * nm;
            for (size_t i = i0; i < i1; i++) {
                int32_t b = co->base[i - i0];
                if (b < 0) continue;
                float wt[8];
                emc_weights(co->tx[i - i0], co->ty[i - i0], co->tz[i - i0], wt);
                float v = view[(size_t)e->mergep[i] * T + j];
                float dv = aj * corr[i];
                /* corners x and x+1 are 4 adjacent floats (num, den, num, den):
                 * one 16-byte update per (y, z) corner pair, the same
                 * products and sums as 16 scalar updates */
                const emc_f4 vd = {v, dv, v, dv};
                const size_t off[4] = {0, 2 * o2, 2 * o4, 2 * (o4 + o2)};
                float *q = nd + 2 * (size_t)b;
                for (int k = 0; k < 4; k++) {
                    emc_f4 acc, w = {wt[2 * k], wt[2 * k], wt[2 * k + 1], wt[2 * k + 1]};
                    memcpy(&acc, q + off[k], sizeof acc);
                    acc += w * vd;
                    memcpy(q + off[k], &acc, sizeof acc);
                }
            }
        }
    }
}

/* Work buffer k of at least count * size bytes, kept in e between
 * iterations (contents undefined); grown (old contents dropped) when too
 * small. NULL with a message when it cannot be allocated. */
static void *emc_work(ew_emc_t *e, int k, size_t count, size_t size)
{
    size_t b = 0;
    if (count == 0) count = 1;
    if (ew_size_mul(count, size, &b) != EW_OK) return NULL;
    if (e->wk[k] && e->wk_bytes[k] >= b) return e->wk[k];
    ew_free(e->wk[k]);
    e->wk[k] = ew_alloc_array(count, size);
    e->wk_bytes[k] = e->wk[k] ? b : 0;
    return e->wk[k];
}

static void emc_work_free(ew_emc_t *e, int k)
{
    ew_free(e->wk[k]);
    e->wk[k] = NULL;
    e->wk_bytes[k] = 0;
}

/* view[p][0..T-1] += sum over the entries of each pixel run of chunk c of
 * k * P[d][0..T-1] (P: the chunk's probabilities, EW_EMC_CHUNK x T): the
 * compress product read pixel-major, the chunk's P rows (128 KB) staying
 * in L2, one read-modify-write of the view row per run. */
static void emc_gather_chunk(const ew_emc_t *e, size_t c, const float *P, float *view)
{
    for (uint64_t r = e->ck_run[c]; r < e->ck_run[c + 1]; r++) {
        emc_v8 a[NV], b[NV];
        for (int v = 0; v < NV; v++) a[v] = b[v] = (emc_v8){0, 0, 0, 0, 0, 0, 0, 0};
        uint64_t h = e->run_off[r];
        const uint64_t h1 = e->run_off[r + 1];
        for (; h + 1 < h1; h += 2) { /* two sums: half the FMA dependency chain */
            const emc_v8 *pa = (const emc_v8 *)(P + (size_t)e->ent_d[h] * T);
            const emc_v8 *pb = (const emc_v8 *)(P + (size_t)e->ent_d[h + 1] * T);
            float ka = e->ent_k[h], kb = e->ent_k[h + 1];
            for (int v = 0; v < NV; v++) a[v] += ka * pa[v], b[v] += kb * pb[v];
        }
        if (h < h1) {
            const emc_v8 *pa = (const emc_v8 *)(P + (size_t)e->ent_d[h] * T);
            float ka = e->ent_k[h];
            for (int v = 0; v < NV; v++) a[v] += ka * pa[v];
        }
        emc_v8 *row = (emc_v8 *)(view + (size_t)e->run_pix[r] * T);
        for (int v = 0; v < NV; v++) row[v] += a[v] + b[v];
    }
}

static double emc_elapsed(double *t0)
{
    double t = ew_time_now(), d = t - *t0;
    *t0 = t;
    return d;
}

ew_status_t ew_emc_iterate(ew_emc_t *e, ew_emc_stats_t *stats)
{
    EW_ASSERT(e);
    const int it = e->iteration + 1;
    const double beta = ew_emc_beta_at(&e->cfg, it);
    const size_t R = e->grid.n, N = e->nloc, npix = e->npix;
    const size_t ntile = (R + T - 1) / T;
    const int n = e->model.n;
    const size_t n3 = (size_t)n * n * n;
    const float wfloor = (float)(1e-8 * e->mu);
    const double lpmin = e->cfg.p_min > 0 ? log(e->cfg.p_min) : -INFINITY;
    const int nth = omp_get_max_threads();
    double t_start = ew_time_now();
    ew_status_t st = EW_OK;

    /* dense float store of L when it fits, tile-major: L[d][r0 + j] at
     * Lst[(r0 / T * N + d) * T + j], so both passes stream it */
    size_t lbytes = 0;
    int dense = ew_size_mul3(N, ntile * T, sizeof(float), &lbytes) == EW_OK &&
                lbytes <= e->cfg.mem_limit_mb * (size_t)1048576;
    ew_error_clear();
    float *Lst = dense ? emc_work(e, EW_EMC_WK_LSTORE, N * ntile, T * sizeof(float)) : NULL;
    if (dense && !Lst) dense = 0, ew_error_clear();
    if (!dense) emc_work_free(e, EW_EMC_WK_LSTORE);

    size_t buf_sz = npix * T;
    float *logw_all = emc_work(e, EW_EMC_WK_LOGW, (size_t)nth, buf_sz * sizeof(float));
    float *view_all = emc_work(e, EW_EMC_WK_VIEW, (size_t)nth, buf_sz * sizeof(float));
    emc_acc_t *acc_all = emc_work(e, EW_EMC_WK_ACC, (size_t)nth * N, sizeof(emc_acc_t));
    double *u = emc_work(e, EW_EMC_WK_U, R, sizeof(double));
    float *vol_all = emc_work(e, EW_EMC_WK_VOL, (size_t)nth, 2 * n3 * sizeof(float));
    float *tmp_all = emc_work(e, EW_EMC_WK_TMP, (size_t)nth, (size_t)T * e->n_good * sizeof(float));
    double *phi = emc_work(e, EW_EMC_WK_PHI, N, sizeof(double));
    double *lse = emc_work(e, EW_EMC_WK_LSE, N, sizeof(double));
    /* all-reduce buffer: num, den (n3 each), scale, best_prob, best_rot (n_total each), scalars */
    size_t nsc = 6, nred = 2 * n3 + 3 * e->n_total + nsc;
    double *red = emc_work(e, EW_EMC_WK_RED, nred, sizeof(double));
    float *pblk_all = emc_work(e, EW_EMC_WK_PBLK, (size_t)nth * EW_EMC_CHUNK, T * sizeof(float));
    if (!logw_all || !view_all || !acc_all || !u || !vol_all || !tmp_all || !phi || !lse || !red || !pblk_all) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    /* num and den are overwritten by the thread reduction below; the
     * per-pattern part must be 0 outside this rank's patterns */
    memset(red + 2 * n3, 0, (nred - 2 * n3) * sizeof(double));
    for (size_t i = 0; i < (size_t)nth * N; i++)
        acc_all[i] = (emc_acc_t){.m = -INFINITY, .S = 0, .U = 0, .TL = 0, .bx = -INFINITY, .br = -1};
    for (size_t i = 0; i < N; i++) phi[i] = e->scale[e->d0 + i];

    double t_exp = 0, t_like = 0, t_comp = 0;
    /* ---- pass A: expand, likelihood, per-pattern log-sum-exp ---- */
#pragma omp parallel reduction(+ : t_exp, t_like)
    {
        int tid = omp_get_thread_num();
        float *logw = logw_all + (size_t)tid * buf_sz;
        emc_acc_t *acc = acc_all + (size_t)tid * N;
        float *tmp = tmp_all + (size_t)tid * T * e->n_good;
        float Lt[T] __attribute__((aligned(32)));
        double ut[T] __attribute__((aligned(32))), lwt[T] __attribute__((aligned(32)));
        double t0 = ew_time_now();
#pragma omp for schedule(static)
        for (size_t t = 0; t < ntile; t++) {
            size_t r0 = t * T;
            int nt = (int)(R - r0 < T ? R - r0 : T);
            emc_expand_tile(e, r0, nt, wfloor, logw, ut, tmp); /* ut[j] = 0 for j >= nt */
            for (int j = 0; j < nt; j++) u[r0 + j] = ut[j];
            for (int j = 0; j < T; j++) lwt[j] = j < nt ? e->logw[r0 + j] : -INFINITY;
            t_exp += emc_elapsed(&t0);
            for (size_t d = 0; d < N; d++) {
                emc_like_row(logw, e->o_pix, e->o_cnt, e->o_off[d], e->o_off[d + 1], Lt);
                for (int v = 0; v < ND; v++) { /* L -= phi u */
                    emc_f4 lf;
                    emc_d4 uv;
                    memcpy(&lf, Lt + 4 * v, sizeof lf);
                    memcpy(&uv, ut + 4 * v, sizeof uv);
                    lf -= __builtin_convertvector(phi[d] * uv, emc_f4);
                    memcpy(Lt + 4 * v, &lf, sizeof lf);
                }
                if (dense) memcpy(Lst + (t * N + d) * T, Lt, (size_t)nt * sizeof(float));
                emc_acc_add(&acc[d], Lt, lwt, ut, beta, r0);
            }
            t_like += emc_elapsed(&t0);
        }
    }
    /* combine threads in order; normalize; new scale factors */
    double s_mi = 0, s_ll = 0, s_conf = 0, s_phi = 0;
    int bad_d = -1;
    for (size_t d = 0; d < N; d++) {
        emc_acc_t a = acc_all[d];
        for (int k = 1; k < nth; k++) emc_acc_merge(&a, &acc_all[(size_t)k * N + d]);
        double l = a.m + log(a.S);
        double meanL = a.TL / a.S, meanU = a.U / a.S;
        if (!isfinite(l) || !isfinite(meanL) || !isfinite(meanU)) {
            bad_d = (int)(e->d0 + d);
            break;
        }
        lse[d] = l;
        double pbest = exp(a.bx - l);
        s_mi += beta * meanL - l;
        s_ll += meanL;
        s_conf += pbest > 0.5;
        if (e->cfg.update_scale && meanU > 0) phi[d] = e->K[d] / meanU;
        if (!e->cfg.update_scale) phi[d] = 1.0;
        if (!(phi[d] > 1e-3)) phi[d] = 1e-3;
        s_phi += phi[d];
        size_t g = e->d0 + d;
        red[2 * n3 + g] = phi[d];
        red[2 * n3 + e->n_total + g] = pbest;
        red[2 * n3 + 2 * e->n_total + g] = a.br >= 0 ? (double)e->perm[a.br] : -1.0;
    }
    /* ---- pass C: probabilities, compress (skipped after a NaN, but every
     * rank still joins the all-reduce so that all of them stop together) ---- */
    const size_t ntile_c = bad_d < 0 ? ntile : 0;
#pragma omp parallel reduction(+ : t_exp, t_like, t_comp)
    {
        int tid = omp_get_thread_num();
        float *logw = logw_all + (size_t)tid * buf_sz;
        float *view = view_all + (size_t)tid * buf_sz;
        float *nd = vol_all + (size_t)tid * 2 * n3;
        float *tmp = tmp_all + (size_t)tid * T * e->n_good;
        float *pblk = pblk_all + (size_t)tid * EW_EMC_CHUNK * T;
        uint16_t hitd[EW_EMC_CHUNK];
        memset(nd, 0, 2 * n3 * sizeof(float)); /* first touch by its thread */
        float Lt[T] __attribute__((aligned(32)));
        double ut[T], at[T] __attribute__((aligned(32)));
        double t0 = ew_time_now();
#pragma omp for schedule(static)
        for (size_t t = 0; t < ntile_c; t++) {
            size_t r0 = t * T;
            int nt = (int)(R - r0 < T ? R - r0 : T);
            if (!dense) {
                emc_expand_tile(e, r0, nt, wfloor, logw, ut, tmp);
                t_exp += emc_elapsed(&t0);
            }
            memset(view, 0, buf_sz * sizeof(float));
            /* ln w of the tile (unused slots: -inf, masked out by okt) */
            double lwt[T] __attribute__((aligned(32)));
            emc_l4 okt[ND];
            memset(okt, 0, sizeof okt);
            for (int j = 0; j < T; j++) {
                at[j] = 0, Lt[j] = 0;
                lwt[j] = j < nt ? e->logw[r0 + j] : -INFINITY;
                okt[j / 4][j % 4] = j < nt ? -1 : 0;
            }
            int any = 0;
            double tl_tile = 0; /* likelihood time inside this tile (recompute mode) */
            for (size_t c = 0; c < e->n_chunk; c++) {
                const size_t dc0 = c * EW_EMC_CHUNK;
                const size_t dc1 = dc0 + EW_EMC_CHUNK < N ? dc0 + EW_EMC_CHUNK : N;
                size_t nhit = 0;
                uint64_t hits_of_hit = 0; /* merge hits of the patterns with some P > 0 */
                for (size_t d = dc0; d < dc1; d++) {
                    if (dense) {
                        memcpy(Lt, Lst + (t * N + d) * T, (size_t)nt * sizeof(float));
                    } else {
                        double tl = ew_time_now();
                        emc_like_row(logw, e->o_pix, e->o_cnt, e->o_off[d], e->o_off[d + 1], Lt);
                        for (int j = 0; j < nt; j++) Lt[j] -= (float)((double)e->scale[e->d0 + d] * ut[j]);
                        tl_tile += ew_time_now() - tl;
                    }
                    /* P = exp(x) where x >= ln p_min, else 0; vector code */
                    float *Pd = pblk + (d - dc0) * T;
                    emc_l4 hitv = {0, 0, 0, 0};
                    const emc_d4 lmin = {lpmin, lpmin, lpmin, lpmin};
                    for (int v = 0; v < ND; v++) {
                        emc_f4 lf;
                        emc_d4 lwv, atv;
                        memcpy(&lf, Lt + 4 * v, sizeof lf);
                        memcpy(&lwv, lwt + 4 * v, sizeof lwv);
                        memcpy(&atv, at + 4 * v, sizeof atv);
                        emc_d4 x = beta * __builtin_convertvector(lf, emc_d4) + lwv - lse[d];
                        emc_l4 ok = (x >= lmin) & okt[v];
                        emc_d4 ex;
                        emc_exp4(&x, &ex);
                        emc_f4 pf = __builtin_convertvector((emc_d4)((emc_l4)ex & ok), emc_f4);
                        atv += __builtin_convertvector(pf, emc_d4) * phi[d];
                        memcpy(Pd + 4 * v, &pf, sizeof pf);
                        memcpy(at + 4 * v, &atv, sizeof atv);
                        hitv |= ok;
                    }
                    if (hitv[0] | hitv[1] | hitv[2] | hitv[3]) {
                        hitd[nhit++] = (uint16_t)(d - dc0);
                        hits_of_hit += e->m_off[d + 1] - e->m_off[d];
                    }
                }
                if (nhit == 0) continue;
                any = 1;
                int gather = e->cfg.compress_path == 1 ||
                             (e->cfg.compress_path == 0 &&
                              EMC_GATHER_RATIO * hits_of_hit >= e->m_off[dc1] - e->m_off[dc0]);
                if (gather) {
                    /* most photons belong to patterns with P > 0: pixel by
                     * pixel, the sum of k P over the chunk's patterns */
                    emc_gather_chunk(e, c, pblk, view);
                } else {
                    /* few: every photon of those patterns adds k P to its pixel row */
                    for (size_t i = 0; i < nhit; i++) {
                        size_t d = dc0 + hitd[i];
                        emc_v8 pv[NV];
                        memcpy(pv, pblk + (size_t)hitd[i] * T, sizeof pv);
                        for (uint64_t h = e->m_off[d]; h < e->m_off[d + 1]; h++) {
                            emc_v8 *row = (emc_v8 *)(view + (size_t)e->m_pix[h] * T);
                            float k = e->m_cnt[h];
                            for (int v = 0; v < NV; v++) row[v] += k * pv[v];
                        }
                    }
                }
            }
            if (any) emc_merge_tile(e, r0, nt, view, at, nd);
            t_comp += emc_elapsed(&t0) - tl_tile;
            t_like += tl_tile;
        }
    }
    /* reduce the thread volumes (in thread order: deterministic) */
    {
        double t0 = ew_time_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < 2 * n3; i++) {
            /* i < n3: numerator of voxel i; else denominator of voxel i - n3 */
            size_t src = i < n3 ? 2 * i : 2 * (i - n3) + 1;
            double s = 0;
            for (int k = 0; k < nth; k++) s += vol_all[(size_t)k * 2 * n3 + src];
            red[i] = s;
        }
        double *sc = red + 2 * n3 + 3 * e->n_total;
        sc[0] = s_mi, sc[1] = s_ll, sc[2] = s_conf, sc[3] = s_phi, sc[4] = bad_d >= 0;
#ifdef EW_HAVE_MPI
        /* one logical all-reduce, in chunks below 2^31 elements for MPI's int counts */
        for (size_t off = 0; e->nranks > 1 && off < nred; off += (size_t)1 << 28) {
            size_t cnt = nred - off < ((size_t)1 << 28) ? nred - off : ((size_t)1 << 28);
            MPI_Allreduce(MPI_IN_PLACE, red + off, (int)cnt, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        }
#endif
        t_comp += (ew_time_now() - t0) * nth;
    }
    {
        double *num = red, *den = red + n3;
        double *sc = red + 2 * n3 + 3 * e->n_total;
        double Nt = (double)e->n_total;
        if (sc[4] > 0) {
            if (bad_d >= 0)
                st = ew_fail(EW_ERR_NUMERIC,
                             "EMC iteration %d: the log-likelihood of pattern %d is NaN or Inf (model values or "
                             "photon counts out of range)", it, bad_d);
            else
                st = ew_fail(EW_ERR_NUMERIC, "EMC iteration %d: a log-likelihood on another MPI rank is NaN or Inf",
                             it);
            goto done;
        }
        double mean_phi = sc[3] / Nt;
        if (e->cfg.friedel) emc_friedel(num, n), emc_friedel(den, n);
        double sq = 0;
        size_t badv = (size_t)-1; /* the first bad voxel */
#pragma omp parallel for schedule(static) reduction(+ : sq) reduction(min : badv)
        for (size_t i = 0; i < n3; i++) {
            double old = e->model.data[i];
            double v = den[i] > 0 ? num[i] / den[i] * mean_phi : old;
            if (!isfinite(v) || v > FLT_MAX) {
                if (i < badv) badv = i;
                continue;
            }
            num[i] = v;
            sq += (v - old) * (v - old);
        }
        if (badv != (size_t)-1 || !isfinite(mean_phi) || !(mean_phi > 0)) {
            st = ew_fail(EW_ERR_NUMERIC, "EMC iteration %d: the model became NaN or Inf (voxel %zu, mean scale %g)",
                         it, badv == (size_t)-1 ? (size_t)0 : badv, mean_phi);
            goto done;
        }
        for (size_t i = 0; i < n3; i++) e->model.data[i] = (float)num[i];
        const double *ps = red + 2 * n3;
        for (size_t g = 0; g < e->n_total; g++) {
            e->scale[g] = (float)(ps[g] / mean_phi);
            e->best_prob[g] = (float)ps[e->n_total + g];
            e->best_rot[g] = (int32_t)ps[2 * e->n_total + g];
        }
        e->iteration = it;
        if (stats) {
            memset(stats, 0, sizeof *stats);
            stats->iteration = it;
            stats->beta = beta;
            stats->rms_change = sqrt(sq / (double)n3);
            stats->mutual_info = sc[0] / Nt;
            stats->avg_loglik = sc[1] / Nt;
            stats->frac_confident = sc[2] / Nt;
            stats->mean_scale = mean_phi;
            stats->t_expand = t_exp / nth;
            stats->t_likelihood = t_like / nth;
            stats->t_compress = t_comp / nth;
            stats->dense_store = dense;
        }
    }
    if (e->checkpoint) st = ew_emc_save(e, e->checkpoint);
    if (stats) stats->t_total = ew_time_now() - t_start;
    if (stats && e->rank == 0)
        ew_info("EMC iteration %d: beta %.3g, rms change %.4g, mutual info %.4f, <log L> %.2f, confident %.3f, "
                "%.2f s (expand %.2f, likelihood %.2f, compress %.2f)",
                it, beta, stats->rms_change, stats->mutual_info, stats->avg_loglik, stats->frac_confident,
                stats->t_total, stats->t_expand, stats->t_likelihood, stats->t_compress);
done:
    return st;
}
