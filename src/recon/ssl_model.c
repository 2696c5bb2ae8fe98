/* ewald recon: the self-supervised XFEL model: configuration, presets,
 * construction, checkpoints and the decoder grid (ssl.h). */
#include "recon/ssl.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "nn/checkpoint.h"
#include "physics/detector.h"
#include "recon/ssl_impl.h"
#include "recon/ssl_kernels.h"

/* ------------------------------------------------------------ configuration */

void ew_ssl_config_default(ew_ssl_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->log_c = 0.0;
    c->photons_per_pulse = 1e12;
    c->enc_size = 32;
    c->enc_width = 16;
    c->enc_stages = 4;
    c->enc_blocks = 1;
    c->enc_small_stem = 1;
    c->scale_width = 8;
    c->scale_stages = 2;
    c->scale_blocks = 1;
    c->scale_fixed = 0;
    c->decoder = EW_SSL_DEC_GRID;
    c->grid_n = 0;
    c->smooth = 0.02;
    c->siren_hidden = 64;
    c->siren_layers = 3;
    c->siren_omega = 30.0;
    c->loss = EW_SSL_LOSS_POISSON;
    c->lr = 3e-4;
    c->lr_grid = 3e-2;
    c->weight_decay = 1e-4;
    c->warmup_frac = 0.05;
    c->batch = 16;
    c->epochs = 4;
    c->c2f_start = 1.0; /* off: the EMC start already holds the whole resolution range */
    c->c2f_frac = 0.5;
    c->emc_size = 64;
    c->emc_level_lo = 4;
    c->emc_level_hi = 6;
    c->emc_iters = 10;
    c->refine_deg = 4.0;
    c->refine_rounds = 2;
    c->target_frac = 0.7;
    c->target_weight = 1.0;
    c->search_level = 3;
    c->augment = 1;
    c->aug_sigma = 0.05;
    c->aug_patches = 100;
    c->seed = 1;
    c->ckpt_every = 0;
    c->resume = 1;
    c->progress = 1;
}

static void preset_fast(ew_ssl_config_t *c) { (void)c; }

static void preset_paper(ew_ssl_config_t *c)
{
    c->enc_size = 0;
    c->enc_width = 64;
    c->enc_stages = 4;
    c->enc_blocks = 2;
    c->enc_small_stem = 0;
    c->scale_width = 64;
    c->scale_stages = 4;
    c->scale_blocks = 2;
    c->decoder = EW_SSL_DEC_SIREN_PIXEL;
    c->siren_hidden = 256;
    c->siren_layers = 5;
    c->siren_omega = 30.0;
    c->smooth = 0.0;
    c->lr = 3e-4;
    c->batch = 16;
    c->epochs = 20;
    c->c2f_start = 1.0;
    c->loss = EW_SSL_LOSS_MSE;
    c->emc_size = 0;
    c->refine_deg = 0.0;
    c->target_frac = 0.0;
}

static void preset_siren_grid(ew_ssl_config_t *c)
{
    c->decoder = EW_SSL_DEC_SIREN_GRID;
    c->siren_hidden = 64;
    c->siren_layers = 3;
    c->smooth = 0.0;
}

static void preset_mse(ew_ssl_config_t *c) { c->loss = EW_SSL_LOSS_MSE; }

static const ew_ssl_preset_t presets[] = {
    {"fast", "default: EMC-bootstrapped grid decoder and pseudo-labels, slim ResNets on 32x32 binned input, "
             "Poisson loss, local refinement",
     preset_fast},
    {"paper", "reference: ResNet-18 encoders on the full pattern, SIREN 5x256 (omega 30) at every pixel",
     preset_paper},
    {"siren-grid", "the default with a SIREN 3x64 evaluated once per step on the grid, sliced by interpolation",
     preset_siren_grid},
    {"mse", "the default with the reference's log-space MSE instead of the Poisson likelihood", preset_mse},
    {NULL, NULL, NULL}};

const ew_ssl_preset_t *ew_ssl_presets(void) { return presets; }

ew_status_t ew_ssl_config_preset(ew_ssl_config_t *c, const char *name)
{
    ew_ssl_config_default(c);
    for (const ew_ssl_preset_t *p = presets; p->name; p++)
        if (name && strcmp(p->name, name) == 0) {
            p->apply(c);
            return EW_OK;
        }
    return ew_fail(EW_ERR_ARG, "ssl: unknown preset '%s'", name ? name : "(null)");
}

/* ---------------------------------------------------------------- building */

static const float *g_sort_key; /* only used under the single-threaded qsort below */
static int cmp_pix(const void *a, const void *b)
{
    float x = g_sort_key[*(const int *)a], y = g_sort_key[*(const int *)b];
    if (x < y) return -1;
    if (x > y) return 1;
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static ew_status_t check_config(const ew_ssl_config_t *c, const ew_ssl_data_t *d)
{
    if (d->nx <= 0 || d->ny <= 0 || !d->s || !d->mask)
        return ew_fail(EW_ERR_ARG, "ssl: dataset geometry is missing (nx %d ny %d)", d->nx, d->ny);
    if (d->nx != d->ny) return ew_fail(EW_ERR_ARG, "ssl: detector must be square (nx %d ny %d)", d->nx, d->ny);
    int es = c->enc_size > 0 ? c->enc_size : d->nx;
    if (es > d->nx || d->nx % es != 0)
        return ew_fail(EW_ERR_ARG, "ssl: enc_size = %d does not divide the detector side %d", es, d->nx);
    if (c->enc_width < 1 || c->enc_stages < 1 || c->enc_stages > 4 || c->enc_blocks < 1)
        return ew_fail(EW_ERR_ARG, "ssl: encoder width %d stages %d blocks %d invalid", c->enc_width, c->enc_stages,
                       c->enc_blocks);
    if (!c->scale_fixed && (c->scale_width < 1 || c->scale_stages < 1 || c->scale_stages > 4 || c->scale_blocks < 1))
        return ew_fail(EW_ERR_ARG, "ssl: scale encoder width %d stages %d blocks %d invalid", c->scale_width,
                       c->scale_stages, c->scale_blocks);
    if (c->decoder < EW_SSL_DEC_GRID || c->decoder > EW_SSL_DEC_SIREN_PIXEL)
        return ew_fail(EW_ERR_ARG, "ssl: decoder = %d unknown", (int)c->decoder);
    if (c->decoder != EW_SSL_DEC_SIREN_PIXEL && c->grid_n != 0 && (c->grid_n < 7 || c->grid_n > 257))
        return ew_fail(EW_ERR_ARG, "ssl: grid_n = %d outside [7, 257] (0: from the detector)", c->grid_n);
    if (c->decoder != EW_SSL_DEC_GRID && (c->siren_hidden < 1 || c->siren_layers < 1))
        return ew_fail(EW_ERR_ARG, "ssl: siren hidden %d layers %d invalid", c->siren_hidden, c->siren_layers);
    if (!(c->lr > 0) || !(c->lr_grid > 0) || c->weight_decay < 0)
        return ew_fail(EW_ERR_ARG, "ssl: lr = %g lr_grid = %g weight_decay = %g invalid", c->lr, c->lr_grid,
                       c->weight_decay);
    if (c->batch < 1) return ew_fail(EW_ERR_ARG, "ssl: batch = %d is not positive", c->batch);
    if (!(c->epochs > 0)) return ew_fail(EW_ERR_ARG, "ssl: epochs = %g is not positive", c->epochs);
    if (c->emc_size < 0 || (c->emc_size > 0 && d->nx % (d->nx / c->emc_size > 1 ? d->nx / c->emc_size : 1) != 0))
        return ew_fail(EW_ERR_ARG, "ssl: emc_size = %d: the binning %d does not divide the detector side %d",
                       c->emc_size, d->nx / c->emc_size, d->nx);
    if (c->emc_size > 0 && c->decoder == EW_SSL_DEC_SIREN_PIXEL)
        return ew_fail(EW_ERR_ARG, "ssl: the EMC start (emc_size %d) needs a grid decoder", c->emc_size);
    if (c->emc_size > 0 && (c->emc_level_lo < 1 || c->emc_level_hi < c->emc_level_lo || c->emc_level_hi > 12 ||
                            c->emc_iters < 1))
        return ew_fail(EW_ERR_ARG, "ssl: EMC levels %d..%d (1..12) or iterations %d invalid", c->emc_level_lo,
                       c->emc_level_hi, c->emc_iters);
    if (c->refine_deg < 0 || c->refine_deg > 45 || c->target_frac < 0 || c->target_frac > 1 || c->target_weight < 0)
        return ew_fail(EW_ERR_ARG, "ssl: refine_deg %g (0..45), target_frac %g (0..1) or target_weight %g invalid",
                       c->refine_deg, c->target_frac, c->target_weight);
    if (c->refine_rounds < 0 || c->refine_rounds > 100)
        return ew_fail(EW_ERR_ARG, "ssl: refine_rounds = %d outside 0..100", c->refine_rounds);
    if (c->search_level < 0 || c->search_level > 12)
        return ew_fail(EW_ERR_ARG, "ssl: search_level = %d outside 0..12", c->search_level);
    if (c->smooth < 0 || c->aug_sigma < 0 || c->aug_patches < 0)
        return ew_fail(EW_ERR_ARG, "ssl: smooth %g, aug_sigma %g, aug_patches %d must be >= 0", c->smooth,
                       c->aug_sigma, c->aug_patches);
    return EW_OK;
}

static void model_geometry(ew_ssl_model_t *m, const ew_ssl_data_t *d)
{
    double smax = 0.0, sedge = 0.0;
    size_t ng = 0;
    for (size_t p = 0; p < m->npix; p++) {
        const float *sp = d->s + 3 * p;
        double a = sqrt((double)sp[0] * sp[0] + (double)sp[1] * sp[1] + (double)sp[2] * sp[2]);
        if (a > smax) smax = a;
        if (d->mask[p] != EW_MASK_BAD) m->pix[ng++] = (int)p;
    }
    /* s at the middle of the edges: the largest |s| of the centre row / column */
    if (d->s_max_edge > 0) {
        sedge = d->s_max_edge;
    } else {
        int r = d->ny / 2, col = d->nx / 2;
        for (int x = 0; x < d->nx; x++) {
            const float *sp = d->s + 3 * ((size_t)r * d->nx + x);
            double a = sqrt((double)sp[0] * sp[0] + (double)sp[1] * sp[1] + (double)sp[2] * sp[2]);
            if (a > sedge) sedge = a;
        }
        for (int y = 0; y < d->ny; y++) {
            const float *sp = d->s + 3 * ((size_t)y * d->nx + col);
            double a = sqrt((double)sp[0] * sp[0] + (double)sp[1] * sp[1] + (double)sp[2] * sp[2]);
            if (a > sedge) sedge = a;
        }
    }
    m->npix_good = ng;
    for (size_t q = 0; q < ng; q++) {
        const float *sp = d->s + 3 * (size_t)m->pix[q];
        m->pix_s[q] = (float)sqrt((double)sp[0] * sp[0] + (double)sp[1] * sp[1] + (double)sp[2] * sp[2]);
    }
    /* sort good pixels by |s| (ties by index) for the coarse-to-fine cut */
    float *key = ew_alloc_array(m->npix, sizeof(float));
    if (key) {
        for (size_t p = 0; p < m->npix; p++) {
            const float *sp = d->s + 3 * p;
            key[p] = (float)sqrt((double)sp[0] * sp[0] + (double)sp[1] * sp[1] + (double)sp[2] * sp[2]);
        }
        g_sort_key = key;
        qsort(m->pix, ng, sizeof(int), cmp_pix);
        for (size_t q = 0; q < ng; q++) m->pix_s[q] = key[m->pix[q]];
        ew_free(key);
    }
    m->s_max_corner = smax;
    m->s_max_edge = sedge;
    /* grid: corners of every interpolation inside, two voxels to spare */
    if (m->cfg.decoder != EW_SSL_DEC_SIREN_PIXEL && m->cfg.grid_n > 0) {
        int n = m->cfg.grid_n | 1;
        m->gn = n;
        m->ds = smax / (double)(n / 2 - 2);
    } else if (m->cfg.decoder != EW_SSL_DEC_SIREN_PIXEL) {
        /* from the detector: the pixel spacing at the centre times the
         * binning of the EMC start (else of the encoder input) */
        int r = d->ny / 2, x0 = d->nx / 2 - 1;
        const float *a = d->s + 3 * ((size_t)r * d->nx + x0), *b = a + 3;
        double px = sqrt((double)(b[0] - a[0]) * (b[0] - a[0]) + (double)(b[1] - a[1]) * (b[1] - a[1]) +
                         (double)(b[2] - a[2]) * (b[2] - a[2]));
        int bin = 1;
        if (m->cfg.emc_size > 0)
            bin = d->nx / m->cfg.emc_size > 1 ? d->nx / m->cfg.emc_size : 1;
        else if (m->cfg.enc_size > 0)
            bin = d->nx / m->cfg.enc_size;
        double ds = px * (double)bin;
        int half = ds > 0 ? (int)ceil(smax / ds) + 2 : 18;
        if (half > 128) half = 128;
        if (half < 5) half = 5;
        m->gn = 2 * half + 1;
        m->ds = smax / (double)(half - 2);
    } else {
        m->gn = 33;
        m->ds = smax / (double)(33 / 2 - 2);
    }
}

ew_status_t ew_ssl_model_create(const ew_ssl_config_t *cin, const ew_ssl_data_t *d, ew_ssl_model_t **out)
{
    *out = NULL;
    EW_TRY(check_config(cin, d));
    ew_ssl_model_t *m = calloc(1, sizeof *m);
    if (!m) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the model");
    m->cfg = *cin;
    if (cin->ckpt_path) {
        m->ckpt = strdup(cin->ckpt_path);
        if (!m->ckpt) {
            free(m);
            return ew_fail(EW_ERR_NOMEM, "ssl: out of memory for the checkpoint path");
        }
    }
    m->cfg.ckpt_path = m->ckpt;
    m->i_grid = -1;
    ew_params_init(&m->P);
    ew_status_t st = EW_OK;
    m->nx = d->nx;
    m->ny = d->ny;
    m->npix = (size_t)d->nx * d->ny;
    m->s = ew_alloc_array(3 * m->npix, sizeof(float));
    m->mask = ew_alloc_array(m->npix, 1);
    m->k = ew_alloc_array(m->npix, sizeof(float));
    m->pix = ew_alloc_array(m->npix, sizeof(int));
    m->pix_s = ew_alloc_array(m->npix, sizeof(float));
    if (!m->s || !m->mask || !m->k || !m->pix || !m->pix_s) {
        st = EW_ERR_NOMEM;
        goto fail;
    }
    memcpy(m->s, d->s, 3 * m->npix * sizeof(float));
    memcpy(m->mask, d->mask, m->npix);
    for (size_t p = 0; p < m->npix; p++) m->k[p] = 1.0f;
    model_geometry(m, d);
    m->corr_mean = 1.0;
    if (d->corr && m->npix_good > 0) {
        double cm = 0.0;
        for (size_t q = 0; q < m->npix_good; q++) cm += d->corr[m->pix[q]];
        cm /= (double)m->npix_good;
        if (cm > 0) {
            m->corr_mean = cm;
            for (size_t p = 0; p < m->npix; p++) m->k[p] = (float)(d->corr[p] / cm);
        }
    }
    if (m->npix_good == 0) {
        st = ew_fail(EW_ERR_ARG, "ssl: the mask leaves no good pixel");
        goto fail;
    }
    m->c = m->cfg.log_c > 0 ? m->cfg.log_c
                            : 1e14 / (m->cfg.photons_per_pulse > 0 ? m->cfg.photons_per_pulse : 1e12);
    m->cfg.log_c = m->c;
    m->es = m->cfg.enc_size > 0 ? m->cfg.enc_size : d->nx;
    m->cfg.enc_size = m->es;
    m->bin = d->nx / m->es;
    m->emc_bin = m->cfg.emc_size > 0 && d->nx / m->cfg.emc_size > 1 ? d->nx / m->cfg.emc_size : 1;

    /* networks */
    ew_resnet_config_t rc = {.in_ch = 1, .width = m->cfg.enc_width, .stages = m->cfg.enc_stages, .out_dim = 6,
                             .small_stem = m->cfg.enc_small_stem};
    for (int i = 0; i < 4; i++) rc.blocks[i] = m->cfg.enc_blocks;
    if ((st = ew_resnet_create(&m->enc, &m->P, "orient.", &rc)) != EW_OK) goto fail;
    if (!m->cfg.scale_fixed) {
        ew_resnet_config_t sc = {.in_ch = 1, .width = m->cfg.scale_width, .stages = m->cfg.scale_stages,
                                 .out_dim = 1, .small_stem = m->cfg.enc_small_stem};
        for (int i = 0; i < 4; i++) sc.blocks[i] = m->cfg.scale_blocks;
        if ((st = ew_resnet_create(&m->senc, &m->P, "scale.", &sc)) != EW_OK) goto fail;
        m->has_senc = 1;
    }
    size_t N = (size_t)m->gn * m->gn * m->gn;
    if (m->cfg.decoder == EW_SSL_DEC_GRID) {
        int64_t shape[3] = {m->gn, m->gn, m->gn};
        if ((st = ew_params_add(&m->P, "decoder.grid", EW_PARAM_WEIGHT, 3, shape, &m->i_grid)) != EW_OK) goto fail;
        m->grid_k = m->cfg.lr_grid / m->cfg.lr;
    } else {
        ew_mlp_config_t mc = ew_siren_config(3, m->cfg.siren_hidden, m->cfg.siren_layers, 1);
        mc.first_omega = m->cfg.siren_omega;
        if ((st = ew_mlp_create(&m->mlp, &m->P, "decoder.", &mc)) != EW_OK) goto fail;
        m->has_mlp = 1;
    }
    m->G = ew_alloc_array(N, sizeof(float));
    m->dG = ew_alloc_array(N, sizeof(float));
    if (!m->G || !m->dG) {
        st = EW_ERR_NOMEM;
        goto fail;
    }
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_GRID) {
        m->coords = ew_alloc_array(3 * N, sizeof(float));
        if (!m->coords) {
            st = EW_ERR_NOMEM;
            goto fail;
        }
        int c = m->gn / 2;
        double sc = EW_PI / m->s_max_corner * m->ds;
        for (int z = 0; z < m->gn; z++)
            for (int y = 0; y < m->gn; y++)
                for (int x = 0; x < m->gn; x++) {
                    float *o = m->coords + 3 * (((size_t)z * m->gn + y) * m->gn + x);
                    o[0] = (float)((x - c) * sc);
                    o[1] = (float)((y - c) * sc);
                    o[2] = (float)((z - c) * sc);
                }
    }
    if ((st = ew_params_alloc(&m->P)) != EW_OK) goto fail;
    ew_layers_init(&m->P, m->cfg.seed);
    if (m->has_mlp) ew_mlp_init(&m->mlp, &m->P, m->cfg.seed);
    /* start the rotation head near a well-conditioned 6D output: the fc
     * bias at the identity's first two rows */
    {
        int ib = m->enc.fc.ib;
        if (ib >= 0) {
            float *b = ew_params_data(&m->P, ib);
            const float id6[6] = {1, 0, 0, 0, 1, 0};
            for (int i = 0; i < 6; i++) b[i] = id6[i];
        }
    }
    *out = m;
    return EW_OK;
fail:
    if (st == EW_ERR_NOMEM) ew_fail(EW_ERR_NOMEM, "ssl: out of memory building the model");
    ew_ssl_model_free(m);
    return st;
}

void ew_ssl_model_free(ew_ssl_model_t *m)
{
    if (!m) return;
    ew_resnet_free(&m->enc);
    if (m->has_senc) ew_resnet_free(&m->senc);
    if (m->has_mlp) ew_mlp_free(&m->mlp);
    ew_params_free(&m->P);
    ew_free(m->s);
    ew_free(m->mask);
    ew_free(m->k);
    ew_free(m->pix);
    ew_free(m->pix_s);
    ew_free(m->G);
    ew_free(m->dG);
    ew_free(m->coords);
    ew_free(m->tgt);
    free(m->ckpt);
    free(m);
}

ew_ssl_config_t *ew_ssl_model_config(ew_ssl_model_t *m) { return &m->cfg; }
size_t ew_ssl_model_nparams(const ew_ssl_model_t *m) { return m->P.n_train; }
int64_t ew_ssl_model_step(const ew_ssl_model_t *m) { return m->P.step; }

void ew_ssl_model_grid(const ew_ssl_model_t *m, int *n, double *ds)
{
    if (n) *n = m->gn;
    if (ds) *ds = m->ds;
}

/* ----------------------------------------------------------- decoder grid */

ew_status_t ew_ssl_decoder_grid(ew_ssl_model_t *m)
{
    int n = m->gn;
    size_t N = (size_t)n * n * n;
    if (m->cfg.decoder == EW_SSL_DEC_GRID) {
        const float *v = ew_params_data(&m->P, m->i_grid);
        ew_ssl_friedel(m->G, v, n, (float)(0.5 * m->grid_k));
        return EW_OK;
    }
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_GRID) {
        const float *o;
        EW_TRY(ew_mlp_forward(&m->mlp, &m->P, m->coords, (int)N, &o));
        ew_ssl_friedel(m->G, o, n, 1.0f);
        return EW_OK;
    }
    /* SIREN_PIXEL: evaluate at the grid nodes (for export) in chunks */
    enum { CH = 8192 };
    float *xin = ew_alloc_array(3 * CH, sizeof(float));
    float *tmp = ew_alloc_array(N, sizeof(float));
    if (!xin || !tmp) {
        ew_free(xin);
        ew_free(tmp);
        return ew_fail(EW_ERR_NOMEM, "ssl: out of memory evaluating the decoder");
    }
    int c = n / 2;
    double sc = EW_PI / m->s_max_corner * m->ds;
    ew_status_t st = EW_OK;
    for (size_t i0 = 0; i0 < N && st == EW_OK; i0 += CH) {
        size_t cnt = N - i0 < CH ? N - i0 : CH;
        for (size_t j = 0; j < cnt; j++) {
            size_t i = i0 + j;
            int x = (int)(i % n), y = (int)((i / n) % n), z = (int)(i / ((size_t)n * n));
            xin[3 * j] = (float)((x - c) * sc);
            xin[3 * j + 1] = (float)((y - c) * sc);
            xin[3 * j + 2] = (float)((z - c) * sc);
        }
        const float *o;
        st = ew_mlp_forward(&m->mlp, &m->P, xin, (int)cnt, &o);
        if (st == EW_OK) memcpy(tmp + i0, o, cnt * sizeof(float));
    }
    if (st == EW_OK) ew_ssl_friedel(m->G, tmp, n, 1.0f);
    ew_free(xin);
    ew_free(tmp);
    return st;
}

ew_status_t ew_ssl_decoder_grid_backward(ew_ssl_model_t *m)
{
    int n = m->gn;
    size_t N = (size_t)n * n * n;
    if (m->cfg.decoder == EW_SSL_DEC_GRID) {
        float *g = ew_params_grad(&m->P, m->i_grid);
        float a = (float)(0.5 * m->grid_k);
        for (size_t i = 0; i < N; i++) g[i] += a * (m->dG[i] + m->dG[N - 1 - i]);
        return EW_OK;
    }
    if (m->cfg.decoder == EW_SSL_DEC_SIREN_GRID) {
        float *dm = ew_alloc_array(N, sizeof(float));
        if (!dm) return ew_fail(EW_ERR_NOMEM, "ssl: out of memory in the decoder backward pass");
        ew_ssl_friedel(dm, m->dG, n, 1.0f);
        ew_status_t st = ew_mlp_backward(&m->mlp, &m->P, dm, NULL);
        ew_free(dm);
        return st;
    }
    return EW_OK;
}

ew_status_t ew_ssl_volume(ew_ssl_model_t *m, ew_rvol_t *v)
{
    memset(v, 0, sizeof *v);
    EW_TRY(ew_ssl_decoder_grid(m));
    EW_TRY(ew_rvol_alloc(v, m->gn, m->ds));
    size_t N = (size_t)m->gn * m->gn * m->gn;
    for (size_t i = 0; i < N; i++) {
        double a = expm1((double)m->G[i]);
        v->data[i] = (float)(a > 0 ? a / (m->c * m->corr_mean) : 0.0);
    }
    return EW_OK;
}

ew_status_t ew_ssl_model_set_volume(ew_ssl_model_t *m, const ew_rvol_t *W)
{
    if (m->cfg.decoder != EW_SSL_DEC_GRID)
        return ew_fail(EW_ERR_ARG, "ssl: set_volume needs the grid decoder (decoder = %d)", (int)m->cfg.decoder);
    int n = m->gn, c = n / 2;
    float *v = ew_params_data(&m->P, m->i_grid);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double u[3] = {(x - c) * m->ds, (y - c) * m->ds, (z - c) * m->ds};
                float g[3];
                double w = ew_ssl_trilinear_grad(W->data, W->n, W->ds, u, g);
                double f = log1p((w > 0 ? w : 0.0) * m->c * m->corr_mean);
                v[((size_t)z * n + y) * n + x] = (float)(f / m->grid_k);
            }
    m->decoder_set = 1;
    return EW_OK;
}

/* --------------------------------------------------------------- encoder input */

void ew_ssl_encoder_input(const ew_ssl_model_t *m, const float *counts, const uint8_t *occlude, float *out)
{
    int es = m->es, b = m->bin, nx = m->nx;
    float inv = 1.0f / (float)(b * b);
    for (int Y = 0; Y < es; Y++)
        for (int X = 0; X < es; X++) {
            float acc = 0.0f;
            for (int y = Y * b; y < (Y + 1) * b; y++)
                for (int x = X * b; x < (X + 1) * b; x++) {
                    size_t p = (size_t)y * nx + x;
                    if (m->mask[p] == EW_MASK_BAD || (occlude && occlude[p])) continue;
                    float cI = counts[p] > 0 ? counts[p] * (float)m->c : 0.0f;
                    acc += log1pf(cI);
                }
            out[(size_t)Y * es + X] = acc * inv;
        }
}

/* --------------------------------------------------------------- checkpoints */

typedef enum { F_INT, F_DBL, F_U64, F_I64 } ftype_t;
typedef struct {
    const char *name;
    ftype_t t;
    size_t off;
} field_t;

#define FI(x) {#x, F_INT, offsetof(ew_ssl_config_t, x)}
#define FD(x) {#x, F_DBL, offsetof(ew_ssl_config_t, x)}
static const field_t fields[] = {
    FD(log_c), FD(photons_per_pulse), FI(enc_size), FI(enc_width), FI(enc_stages), FI(enc_blocks),
    FI(enc_small_stem), FI(scale_width), FI(scale_stages), FI(scale_blocks), FI(scale_fixed), FI(freeze_decoder),
    FI(decoder), FI(grid_n), FD(smooth), FI(siren_hidden), FI(siren_layers), FD(siren_omega), FI(loss),
    FD(lr), FD(lr_grid), FD(weight_decay), FD(warmup_frac), FI(batch), FD(epochs), FD(c2f_start),
    FD(c2f_frac), FI(emc_size), FI(emc_level_lo), FI(emc_level_hi), FI(emc_iters), FD(refine_deg), FI(refine_rounds),
    FD(target_frac), FD(target_weight), FI(search_level), FI(augment), FD(aug_sigma), FI(aug_patches), {"seed", F_U64, offsetof(ew_ssl_config_t, seed)},
    {"max_steps", F_I64, offsetof(ew_ssl_config_t, max_steps)}};
#define NFIELDS (sizeof fields / sizeof fields[0])

ew_status_t ew_ssl_model_save(const ew_ssl_model_t *m, const char *path, int with_optim)
{
    enum { NEXTRA = 4 };
    char keys[NFIELDS + NEXTRA][64], vals[NFIELDS + NEXTRA][64];
    const char *meta[2 * (NFIELDS + NEXTRA)];
    size_t k = 0;
    for (size_t i = 0; i < NFIELDS; i++, k++) {
        const char *base = (const char *)&m->cfg + fields[i].off;
        snprintf(keys[k], sizeof keys[k], "ssl.%s", fields[i].name);
        switch (fields[i].t) {
        case F_INT: snprintf(vals[k], sizeof vals[k], "%d", *(const int *)base); break;
        case F_DBL: snprintf(vals[k], sizeof vals[k], "%.17g", *(const double *)base); break;
        case F_U64: snprintf(vals[k], sizeof vals[k], "%llu", (unsigned long long)*(const uint64_t *)base); break;
        case F_I64: snprintf(vals[k], sizeof vals[k], "%lld", (long long)*(const int64_t *)base); break;
        }
    }
    snprintf(keys[k], 64, "ssl.nx");
    snprintf(vals[k++], 64, "%d", m->nx);
    snprintf(keys[k], 64, "ssl.ny");
    snprintf(vals[k++], 64, "%d", m->ny);
    snprintf(keys[k], 64, "ssl.ds");
    snprintf(vals[k++], 64, "%.17g", m->ds);
    snprintf(keys[k], 64, "ssl.format");
    snprintf(vals[k++], 64, "ewald-ssl-2");
    for (size_t i = 0; i < k; i++) {
        meta[2 * i] = keys[i];
        meta[2 * i + 1] = vals[i];
    }
    return ew_checkpoint_save(path, &m->P, with_optim, meta, k);
}

ew_status_t ew_ssl_model_load(const char *path, const ew_ssl_data_t *d, ew_ssl_model_t **out)
{
    *out = NULL;
    ew_safetensors_t st;
    EW_TRY(ew_safetensors_read(path, &st));
    ew_ssl_config_t c;
    ew_ssl_config_default(&c);
    ew_status_t s = EW_OK;
    const char *fmt = ew_safetensors_meta(&st, "ssl.format");
    if (!fmt || strcmp(fmt, "ewald-ssl-2") != 0) {
        s = ew_fail(EW_ERR_FORMAT, "%s: metadata ssl.format is missing or not ewald-ssl-2", path);
        goto done;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        char key[64];
        snprintf(key, sizeof key, "ssl.%s", fields[i].name);
        const char *v = ew_safetensors_meta(&st, key);
        if (!v) {
            s = ew_fail(EW_ERR_FORMAT, "%s: metadata %s is missing", path, key);
            goto done;
        }
        char *base = (char *)&c + fields[i].off;
        switch (fields[i].t) {
        case F_INT: *(int *)base = atoi(v); break;
        case F_DBL: *(double *)base = strtod(v, NULL); break;
        case F_U64: *(uint64_t *)base = strtoull(v, NULL, 10); break;
        case F_I64: *(int64_t *)base = strtoll(v, NULL, 10); break;
        }
    }
    const char *snx = ew_safetensors_meta(&st, "ssl.nx"), *sny = ew_safetensors_meta(&st, "ssl.ny");
    if (!snx || !sny || atoi(snx) != d->nx || atoi(sny) != d->ny) {
        s = ew_fail(EW_ERR_ARG, "%s: model detector %sx%s differs from the data's %dx%d", path, snx ? snx : "?",
                    sny ? sny : "?", d->nx, d->ny);
        goto done;
    }
done:
    ew_safetensors_free(&st);
    if (s != EW_OK) return s;
    ew_ssl_model_t *m;
    EW_TRY(ew_ssl_model_create(&c, d, &m));
    s = ew_checkpoint_load(path, &m->P, 0);
    if (s != EW_OK) {
        ew_ssl_model_free(m);
        return s;
    }
    *out = m;
    return EW_OK;
}
