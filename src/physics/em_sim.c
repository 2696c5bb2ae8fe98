/* ewald physics: cryo-EM micrograph formation (see em_sim.h). */
#include "physics/em_sim.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fftw3.h>
#include <omp.h>

#include "geom/geom.h"
#include "io/mrc.h"
#include "io/png.h"
#include "io/star.h"

/* Images smaller than this many pixels are processed by one thread (the
 * fork/join would cost more than the loop). */
#define PAR_MIN ((size_t)1 << 16)

struct ew_em_sim {
    ew_em_config_t cfg;
    size_t n_models;
    ew_em_model_t *models;
    int *box;                      /* (n_models) box size on the simulation grid */
    fftwf_plan *box_fwd, *box_bwd; /* (n_models) c2c in place, one thread each */
    int os, snx, sny;              /* oversampling, simulation grid */
    double spx;                    /* simulation pixel, A */
    fftwf_plan wave_fwd;           /* simulation grid, c2c in place (forward; the inverse by conjugation) */
    fftwf_plan det_fwd, det_bwd;   /* output grid, r2c / c2r */
    ew_ice_synth_t ice;
    int have_ice;
    double lambda, sigma, eta;
    /* work buffers, allocated once (page faults of fresh buffers cost more than clearing) */
    float *w_ts, *w_g, *w_vs, *w_ds; /* simulation grid */
    fftwf_complex *w_u;              /* simulation grid (FULL) */
    fftwf_complex *w_half;           /* output grid, r2c half spectrum */
};

void ew_em_config_default(ew_em_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->nx = c->ny = 4096;
    c->pixel = 1.0;
    c->oversample = 0;
    c->n_micrographs = 1;
    c->seed = 0;
    c->mode = EW_EM_FULL;
    c->phase_grating = 1;
    ew_specimen_params_default(&c->specimen);
    c->b_extra = 0.0;
    ew_ctf_params_default(&c->ctf);
    c->defocus_min = 10000.0;
    c->defocus_max = 25000.0;
    c->astig_max = 500.0;
    ew_ice_params_default(&c->ice);
    c->dose = 40.0;
    c->dqe0 = 0.9;
    c->mtf_analytic = 1;
    c->snr = 0.1;
    c->mask_thickness = 3.0;
    c->fft_measure = 1;
}

ew_status_t ew_em_config_check(const ew_em_config_t *c)
{
    if (c->nx < 8 || c->ny < 8 || c->nx > (1 << 16) || c->ny > (1 << 16))
        return ew_fail(EW_ERR_ARG, "em simulate: micrograph size %d x %d is outside 8..65536", c->nx, c->ny);
    if (!(c->pixel > 0.0) || !isfinite(c->pixel))
        return ew_fail(EW_ERR_ARG, "em simulate: pixel = %g A is not positive", c->pixel);
    if (c->oversample < 0 || c->oversample > 8)
        return ew_fail(EW_ERR_ARG, "em simulate: oversample = %d is outside 0..8", c->oversample);
    if (c->mode != EW_EM_FULL && c->mode != EW_EM_GENEM)
        return ew_fail(EW_ERR_ARG, "em simulate: mode = %d is unknown", (int)c->mode);
    EW_TRY(ew_ctf_params_check(&c->ctf));
    if (!(c->defocus_min <= c->defocus_max) || !isfinite(c->defocus_min) || !isfinite(c->defocus_max))
        return ew_fail(EW_ERR_ARG, "em simulate: defocus range [%g, %g] A is invalid", c->defocus_min,
                       c->defocus_max);
    if (!(c->astig_max >= 0.0)) return ew_fail(EW_ERR_ARG, "em simulate: astig_max = %g A is negative", c->astig_max);
    if (!(c->b_extra >= 0.0)) return ew_fail(EW_ERR_ARG, "em simulate: b_extra = %g A^2 is negative", c->b_extra);
    if (c->mode == EW_EM_FULL) {
        EW_TRY(ew_ice_params_check(&c->ice));
        if (!(c->dose > 0.0) || !isfinite(c->dose))
            return ew_fail(EW_ERR_ARG, "em simulate: dose = %g e/A^2 is not positive", c->dose);
        if (!(c->dqe0 > 0.0 && c->dqe0 <= 1.0))
            return ew_fail(EW_ERR_ARG, "em simulate: DQE(0) = %g is outside (0, 1]", c->dqe0);
        for (size_t i = 0; c->mtf_table && i < c->mtf_n; i++)
            if (!isfinite(c->mtf_table[2 * i]) || !isfinite(c->mtf_table[2 * i + 1]) ||
                (i > 0 && !(c->mtf_table[2 * i] > c->mtf_table[2 * i - 2])))
                return ew_fail(EW_ERR_ARG, "em simulate: MTF table row %zu (%g, %g) is not finite and increasing",
                               i, c->mtf_table[2 * i], c->mtf_table[2 * i + 1]);
        if (c->mtf_table && c->mtf_n == 0) return ew_fail(EW_ERR_ARG, "em simulate: the MTF table is empty");
        if (!isfinite(c->drift[0]) || !isfinite(c->drift[1]))
            return ew_fail(EW_ERR_ARG, "em simulate: drift is not finite");
    } else if (!(c->snr > 0.0) || !isfinite(c->snr)) {
        return ew_fail(EW_ERR_ARG, "em simulate: SNR = %g is not positive", c->snr);
    }
    if (!(c->mask_thickness >= 0.0))
        return ew_fail(EW_ERR_ARG, "em simulate: mask thickness = %g A is negative", c->mask_thickness);
    return EW_OK;
}

/* ---- FFTW planning (serialized: the planner is not thread-safe) ---- */

static void fftw_threads(int n)
{
    static int inited = 0;
    if (!inited) {
        fftwf_init_threads();
        inited = 1;
    }
    fftwf_plan_with_nthreads(n);
}

static fftwf_plan plan_c2c(int ny, int nx, int sign, int nthreads, unsigned flags)
{
    fftwf_plan p = NULL;
    fftwf_complex *tmp = ew_alloc_array((size_t)nx * ny, sizeof(fftwf_complex));
    if (!tmp) return NULL;
#pragma omp critical(ew_fftw_planner)
    {
        fftw_threads(nthreads);
        p = fftwf_plan_dft_2d(ny, nx, tmp, tmp, sign, flags);
    }
    ew_free(tmp);
    return p;
}

ew_status_t ew_em_fftw_wisdom_load(const char *path, int *loaded)
{
    EW_ASSERT(path);
    if (loaded) *loaded = 0;
    if (access(path, F_OK) != 0) return EW_OK;
    int ok = 0;
#pragma omp critical(ew_fftw_planner)
    {
        fftw_threads(omp_get_max_threads()); /* threaded solvers must be registered first */
        ok = fftwf_import_wisdom_from_filename(path);
    }
    if (!ok) return ew_fail(EW_ERR_FORMAT, "%s: not a readable FFTW (single precision) wisdom file", path);
    if (loaded) *loaded = 1;
    return EW_OK;
}

ew_status_t ew_em_fftw_wisdom_save(const char *path)
{
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
#pragma omp critical(ew_fftw_planner)
    fftwf_export_wisdom_to_file(f);
    return ew_atomic_commit(f, tmp, path);
}

static void destroy_plan(fftwf_plan p)
{
    if (!p) return;
#pragma omp critical(ew_fftw_planner)
    fftwf_destroy_plan(p);
}

void ew_em_sim_destroy(ew_em_sim_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_models; i++) {
        ew_em_model_free(&s->models[i]);
        if (s->box_fwd) destroy_plan(s->box_fwd[i]);
        if (s->box_bwd) destroy_plan(s->box_bwd[i]);
    }
    ew_free(s->models);
    ew_free(s->box);
    ew_free(s->box_fwd);
    ew_free(s->box_bwd);
    destroy_plan(s->wave_fwd);
    destroy_plan(s->det_fwd);
    destroy_plan(s->det_bwd);
    ew_ice_synth_free(&s->ice);
    ew_free(s->w_ts);
    ew_free(s->w_g);
    ew_free(s->w_vs);
    ew_free(s->w_ds);
    ew_free(s->w_u);
    ew_free(s->w_half);
    ew_free(s);
}

ew_status_t ew_em_sim_create(const ew_em_config_t *cfg, const ew_structure_t *structures, size_t n_structures,
                             ew_em_sim_t **out)
{
    *out = NULL;
    EW_TRY(ew_em_config_check(cfg));
    if (n_structures == 0) return ew_fail(EW_ERR_ARG, "em simulate: no structures given");
    ew_em_sim_t *s = ew_calloc_array(1, sizeof *s);
    if (!s) return EW_ERR_NOMEM;
    s->cfg = *cfg;
    ew_status_t st = EW_OK;
    s->os = cfg->oversample > 0 ? cfg->oversample : (int)ceil(cfg->pixel / 1.0 - 1e-9);
    if (s->os < 1) s->os = 1;
    if (s->os > 4 && cfg->oversample == 0) s->os = 4;
    s->cfg.oversample = s->os;
    s->snx = cfg->nx * s->os;
    s->sny = cfg->ny * s->os;
    s->spx = cfg->pixel / s->os;
    s->lambda = ew_electron_wavelength(cfg->ctf.voltage_v);
    s->sigma = ew_electron_sigma(cfg->ctf.voltage_v);
    s->eta = cfg->ctf.amp_contrast / sqrt(1.0 - cfg->ctf.amp_contrast * cfg->ctf.amp_contrast);

    s->models = ew_calloc_array(n_structures, sizeof *s->models);
    s->box = ew_calloc_array(n_structures, sizeof(int));
    s->box_fwd = ew_calloc_array(n_structures, sizeof(fftwf_plan));
    s->box_bwd = ew_calloc_array(n_structures, sizeof(fftwf_plan));
    if (!s->models || !s->box || !s->box_fwd || !s->box_bwd) {
        ew_em_sim_destroy(s);
        return EW_ERR_NOMEM;
    }
    int nthreads = omp_get_max_threads();
    const unsigned flags = cfg->fft_measure ? FFTW_MEASURE : FFTW_ESTIMATE;
    for (size_t i = 0; i < n_structures; i++) {
        st = ew_em_model_init(&s->models[i], &structures[i], cfg->b_extra);
        if (st != EW_OK) goto fail;
        s->n_models = i + 1;
        const ew_em_model_t *m = &s->models[i];
        double reach = 0.0;
        for (size_t a = 0; a < m->pot.n; a++) {
            if (m->pot.reach[a] > reach) reach = m->pot.reach[a];
            if (m->vol.reach[a] > reach) reach = m->vol.reach[a];
        }
        double zmax = 0.0;
        if (cfg->mode == EW_EM_FULL && cfg->specimen.random_heights) zmax = 0.5 * cfg->ice.thickness * 1.5;
        double spread = s->lambda * zmax / (2.0 * s->spx) + 2.0;
        int half = (int)ceil((m->radius + reach + spread) / s->spx) + 2;
        int b = 2 * half;
        b = (b + 7) / 8 * 8;
        s->box[i] = b;
        s->box_fwd[i] = plan_c2c(b, b, FFTW_FORWARD, 1, flags);
        s->box_bwd[i] = plan_c2c(b, b, FFTW_BACKWARD, 1, flags);
        if (!s->box_fwd[i] || !s->box_bwd[i]) {
            st = ew_fail(EW_ERR_INTERNAL, "em simulate: FFTW could not plan %d x %d box transforms", b, b);
            goto fail;
        }
    }
    if (cfg->mode == EW_EM_FULL) {
        s->wave_fwd = plan_c2c(s->sny, s->snx, FFTW_FORWARD,
                               (size_t)s->snx * s->sny >= 4 * PAR_MIN ? nthreads : 1, flags);
        if (!s->wave_fwd) {
            st = ew_fail(EW_ERR_INTERNAL, "em simulate: FFTW could not plan %d x %d transforms", s->snx, s->sny);
            goto fail;
        }
        if (cfg->ice.thickness > 0.0) {
            st = ew_ice_synth_init(&s->ice, &cfg->ice, s->snx, s->sny, s->spx, cfg->fft_measure);
            if (st != EW_OK) goto fail;
            s->have_ice = 1;
        }
    }
    {
        size_t n = (size_t)cfg->nx * cfg->ny, nh = (size_t)(cfg->nx / 2 + 1) * cfg->ny;
        float *r = ew_alloc_array(n, sizeof(float));
        fftwf_complex *c = ew_alloc_array(nh, sizeof(fftwf_complex));
        if (r && c) {
#pragma omp critical(ew_fftw_planner)
            {
                fftw_threads(n >= 4 * PAR_MIN ? nthreads : 1);
                s->det_fwd = fftwf_plan_dft_r2c_2d(cfg->ny, cfg->nx, r, c, flags);
                s->det_bwd = fftwf_plan_dft_c2r_2d(cfg->ny, cfg->nx, c, r, flags);
            }
        }
        ew_free(r);
        ew_free(c);
        if (!s->det_fwd || !s->det_bwd) {
            st = ew_fail(EW_ERR_INTERNAL, "em simulate: FFTW could not plan %d x %d transforms", cfg->nx, cfg->ny);
            goto fail;
        }
    }
    {
        size_t sn = (size_t)s->snx * s->sny, nh = (size_t)(cfg->nx / 2 + 1) * cfg->ny;
        s->w_vs = ew_alloc_array(sn, sizeof(float));
        s->w_ds = ew_alloc_array(sn, sizeof(float));
        s->w_half = ew_alloc_array(nh, sizeof(fftwf_complex));
        if (!s->w_vs || !s->w_ds || !s->w_half) st = EW_ERR_NOMEM;
        if (cfg->mode == EW_EM_FULL) {
            s->w_ts = ew_alloc_array(sn, sizeof(float));
            s->w_g = ew_alloc_array(sn, sizeof(float));
            s->w_u = ew_alloc_array(sn, sizeof(fftwf_complex));
            if (!s->w_ts || !s->w_g || !s->w_u) st = EW_ERR_NOMEM;
        }
        if (st != EW_OK) goto fail;
    }
    *out = s;
    return EW_OK;
fail:
    if (s->n_models < n_structures) s->n_models++; /* free the partly built model too */
    ew_em_sim_destroy(s);
    return st;
}

const ew_em_config_t *ew_em_sim_config(const ew_em_sim_t *sim) { return &sim->cfg; }
const ew_em_model_t *ew_em_sim_model(const ew_em_sim_t *sim, size_t i)
{
    EW_ASSERT(i < sim->n_models);
    return &sim->models[i];
}
size_t ew_em_sim_n_models(const ew_em_sim_t *sim) { return sim->n_models; }

void ew_em_micrograph_free(ew_em_micrograph_t *m)
{
    if (!m) return;
    ew_free(m->micrograph);
    ew_free(m->clean);
    ew_free(m->projection);
    ew_free(m->mask);
    ew_free(m->thickness);
    ew_free(m->particles);
    memset(m, 0, sizeof *m);
}

/* Frequency (1/A) of FFT index i of n samples with spacing px. */
static inline double freq(int i, int n, double px)
{
    return (i <= n / 2 ? i : i - n) / (n * px);
}

/* Polynomial pieces of chi and the envelopes at s, without trig (hot loop). */
typedef struct {
    double pl, avg, dev_c, dev_s, cs3, ph, b4, t2, q2, cs;
    double amp_phase; /* asin(A) */
} optics_t;

static void optics_init(optics_t *o, const ew_ctf_params_t *c, double lambda)
{
    double a = 2.0 * c->astig_angle_deg * EW_PI / 180.0, dev = 0.5 * (c->defocus_u - c->defocus_v);
    o->pl = EW_PI * lambda;
    o->avg = 0.5 * (c->defocus_u + c->defocus_v);
    o->dev_c = dev * cos(a);
    o->dev_s = dev * sin(a);
    o->cs = c->cs_mm * 1e7;
    o->cs3 = 0.5 * EW_PI * o->cs * lambda * lambda * lambda;
    o->ph = c->phase_shift_deg * EW_PI / 180.0;
    o->b4 = 0.25 * c->bfactor;
    double t = EW_PI * lambda * c->focal_spread;
    o->t2 = 0.5 * t * t;
    double q = EW_PI * c->illum_angle / lambda;
    o->q2 = q * q;
    o->cs *= lambda * lambda * lambda; /* Cs lambda^3 */
    o->amp_phase = atan2(c->amp_contrast, sqrt(1.0 - c->amp_contrast * c->amp_contrast));
}

/* chi(s) and the envelope; z shifts the defocus by -z. */
static inline void optics_eval(const optics_t *o, double lambda, double sx, double sy, double *chi, double *env)
{
    double s2 = sx * sx + sy * sy;
    double dfs2 = o->avg * s2 + o->dev_c * (sx * sx - sy * sy) + o->dev_s * 2.0 * sx * sy; /* defocus(theta) s^2 */
    *chi = o->pl * dfs2 - o->cs3 * s2 * s2 + o->ph;
    double e = o->b4 * s2 + o->t2 * s2 * s2;
    if (o->q2 > 0.0) {
        double g = lambda * dfs2 - o->cs * s2 * s2; /* s (lambda df s - Cs lambda^3 s^3) */
        e += o->q2 * (s2 > 0.0 ? g * g / s2 : 0.0);
    }
    *env = e > 0.0 ? exp(-e) : 1.0;
}

static double mtf_at(const ew_em_config_t *c, double fx, double fy)
{
    if (c->mtf_table) {
        double f = sqrt(fx * fx + fy * fy);
        const double *t = c->mtf_table;
        size_t n = c->mtf_n;
        if (f <= t[0]) return t[1];
        if (f >= t[2 * (n - 1)]) return t[2 * (n - 1) + 1];
        size_t lo = 0, hi = n - 1;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (t[2 * mid] <= f) lo = mid;
            else hi = mid;
        }
        double w = (f - t[2 * lo]) / (t[2 * hi] - t[2 * lo]);
        return (1 - w) * t[2 * lo + 1] + w * t[2 * hi + 1];
    }
    if (!c->mtf_analytic) return 1.0;
    double ax = EW_PI * fx, ay = EW_PI * fy;
    return (fabs(ax) < 1e-9 ? 1.0 : sin(ax) / ax) * (fabs(ay) < 1e-9 ? 1.0 : sin(ay) / ay);
}

/* Average os x os blocks of a simulation-grid image into the output grid. */
static void bin_image(const float *in, int snx, int os, float *out, int nx, int ny, double scale)
{
    double w = scale / (os * os);
#pragma omp parallel for schedule(static) if((size_t)nx * ny >= PAR_MIN)
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) {
            double acc = 0.0;
            for (int j = 0; j < os; j++)
                for (int i = 0; i < os; i++) acc += in[(size_t)(y * os + j) * snx + x * os + i];
            out[(size_t)y * nx + x] = (float)(acc * w);
        }
}

/* Per-particle boxes on the simulation grid. */
typedef struct {
    size_t *off;       /* (n + 1) offsets into the box arrays */
    float *v, *d;      /* projected potential (V A), thickness (A) */
    fftwf_complex *u;  /* scattered wave (FULL only) */
    int *ox, *oy;      /* box origin on the simulation grid */
} boxes_t;

static void boxes_free(boxes_t *b)
{
    ew_free(b->off);
    ew_free(b->v);
    ew_free(b->d);
    ew_free(b->u);
    ew_free(b->ox);
    ew_free(b->oy);
    memset(b, 0, sizeof *b);
}

static ew_status_t make_boxes(ew_em_sim_t *s, const ew_particle_t *pt, size_t n, int full, boxes_t *b)
{
    memset(b, 0, sizeof *b);
    b->off = ew_alloc_array(n + 1, sizeof(size_t));
    b->ox = ew_alloc_array(n + 1, sizeof(int));
    b->oy = ew_alloc_array(n + 1, sizeof(int));
    if (!b->off || !b->ox || !b->oy) return EW_ERR_NOMEM;
    b->off[0] = 0;
    for (size_t p = 0; p < n; p++) {
        size_t bb = (size_t)s->box[pt[p].model];
        b->off[p + 1] = b->off[p] + bb * bb;
    }
    size_t tot = b->off[n];
    b->v = ew_calloc_array(tot, sizeof(float));
    b->d = ew_calloc_array(tot, sizeof(float));
    if (full) b->u = ew_alloc_array(tot, sizeof(fftwf_complex));
    if (!b->v || !b->d || (full && !b->u)) return EW_ERR_NOMEM;
    const double sigma = s->sigma, eta = s->eta, lam = s->lambda;
    const int grating = s->cfg.phase_grating;
#pragma omp parallel for schedule(dynamic, 1) if(n > 1)
    for (size_t p = 0; p < n; p++) {
        const ew_em_model_t *m = &s->models[pt[p].model];
        int bs = s->box[pt[p].model];
        double cx = pt[p].x / s->spx, cy = pt[p].y / s->spx;
        int ox = (int)floor(cx) - bs / 2, oy = (int)floor(cy) - bs / 2;
        b->ox[p] = ox;
        b->oy[p] = oy;
        float *v = b->v + b->off[p], *d = b->d + b->off[p];
        ew_peng_project(&m->pot, pt[p].R, cx - ox, cy - oy, s->spx, v, bs, bs);
        ew_peng_project(&m->vol, pt[p].R, cx - ox, cy - oy, s->spx, d, bs, bs);
        if (!full) continue;
        fftwf_complex *u = b->u + b->off[p];
        size_t nb = (size_t)bs * bs;
        for (size_t i = 0; i < nb; i++) {
            double ph = sigma * v[i];
            if (grating) {
                double a = exp(-eta * ph);
                u[i][0] = (float)(a * cos(ph) - 1.0);
                u[i][1] = (float)(a * sin(ph));
            } else {
                u[i][0] = (float)(-eta * ph);
                u[i][1] = (float)ph;
            }
        }
        double z = pt[p].z;
        if (z != 0.0) {
            /* defocus - z: multiply by exp(-i pi lambda z s^2) */
            fftwf_execute_dft(s->box_fwd[pt[p].model], u, u);
            for (int iy = 0; iy < bs; iy++) {
                double sy = freq(iy, bs, s->spx);
                for (int ix = 0; ix < bs; ix++) {
                    double sx = freq(ix, bs, s->spx);
                    double a = -EW_PI * lam * z * (sx * sx + sy * sy);
                    double c = cos(a) / nb, sn = sin(a) / nb;
                    fftwf_complex *w = &u[(size_t)iy * bs + ix];
                    double re = (*w)[0], im = (*w)[1];
                    (*w)[0] = (float)(re * c - im * sn);
                    (*w)[1] = (float)(re * sn + im * c);
                }
            }
            fftwf_execute_dft(s->box_bwd[pt[p].model], u, u);
        }
    }
    return EW_OK;
}

/* Add the boxes into simulation-grid images (in particle order: the sums
 * do not depend on the thread count). Rows are split between threads. */
static void add_boxes(const ew_em_sim_t *s, const ew_particle_t *pt, size_t n, const boxes_t *b, float *v, float *d,
                      fftwf_complex *u)
{
    int snx = s->snx, sny = s->sny;
#pragma omp parallel for schedule(static) if((size_t)snx * sny >= PAR_MIN)
    for (int y = 0; y < sny; y++) {
        for (size_t p = 0; p < n; p++) {
            int bs = s->box[pt[p].model], j = y - b->oy[p];
            if (j < 0 || j >= bs) continue;
            int i0 = b->ox[p] < 0 ? -b->ox[p] : 0;
            int i1 = b->ox[p] + bs > snx ? snx - b->ox[p] : bs;
            size_t src = b->off[p] + (size_t)j * bs, dst = (size_t)y * snx + b->ox[p];
            for (int i = i0; i < i1; i++) {
                v[dst + i] += b->v[src + i];
                d[dst + i] += b->d[src + i];
                if (u) {
                    u[dst + i][0] += b->u[src + i][0];
                    u[dst + i][1] += b->u[src + i][1];
                }
            }
        }
    }
}

static ew_status_t alloc_outputs(ew_em_micrograph_t *o, int nx, int ny)
{
    size_t n = (size_t)nx * ny;
    o->micrograph = ew_alloc_array(n, sizeof(float));
    o->clean = ew_alloc_array(n, sizeof(float));
    o->projection = ew_alloc_array(n, sizeof(float));
    o->mask = ew_alloc_array(n, 1);
    o->thickness = ew_calloc_array(n, sizeof(float));
    if (!o->micrograph || !o->clean || !o->projection || !o->mask || !o->thickness) return EW_ERR_NOMEM;
    return EW_OK;
}

/* Filter an output-grid image in place by H(fx, fy) (det plans). */
typedef double (*filter_fn)(const ew_em_sim_t *s, const optics_t *o, double fx, double fy);

static double detector_filter(const ew_em_sim_t *s, const optics_t *o, double fx, double fy)
{
    (void)o;
    double h = mtf_at(&s->cfg, fx, fy);
    double a = EW_PI * (fx * s->cfg.drift[0] + fy * s->cfg.drift[1]) / s->cfg.pixel;
    if (fabs(a) > 1e-9) h *= sin(a) / a;
    return h;
}

static double ctf_filter(const ew_em_sim_t *s, const optics_t *o, double fx, double fy)
{
    double chi, env;
    optics_eval(o, s->lambda, fx / s->cfg.pixel, fy / s->cfg.pixel, &chi, &env);
    return -sin(chi + o->amp_phase) * env;
}

static ew_status_t filter_image(const ew_em_sim_t *s, const optics_t *o, float *img, filter_fn fn)
{
    int nx = s->cfg.nx, ny = s->cfg.ny, nh = nx / 2 + 1;
    fftwf_complex *f = s->w_half;
    fftwf_execute_dft_r2c(s->det_fwd, img, f);
    double inv = 1.0 / ((double)nx * ny);
    const ew_em_config_t *c = &s->cfg;
    if (fn == detector_filter && !c->mtf_table && c->drift[0] == 0.0 && c->drift[1] == 0.0) {
        /* separable: MTF = sinc(pi fx) sinc(pi fy) (or 1) */
        float *tx = ew_alloc_array((size_t)nh, sizeof(float)), *ty = ew_alloc_array((size_t)ny, sizeof(float));
        if (!tx || !ty) {
            ew_free(tx);
            ew_free(ty);
            return EW_ERR_NOMEM;
        }
        for (int ix = 0; ix < nh; ix++) tx[ix] = (float)(mtf_at(c, ix / (double)nx, 0.0) * inv);
        for (int iy = 0; iy < ny; iy++) ty[iy] = (float)mtf_at(c, 0.0, (iy <= ny / 2 ? iy : iy - ny) / (double)ny);
#pragma omp parallel for schedule(static) if((size_t)nh * ny >= PAR_MIN)
        for (int iy = 0; iy < ny; iy++)
            for (int ix = 0; ix < nh; ix++) {
                float h = tx[ix] * ty[iy];
                f[(size_t)iy * nh + ix][0] *= h;
                f[(size_t)iy * nh + ix][1] *= h;
            }
        ew_free(tx);
        ew_free(ty);
        fftwf_execute_dft_c2r(s->det_bwd, f, img);
        return EW_OK;
    }
#pragma omp parallel for schedule(static) if((size_t)nh * ny >= PAR_MIN)
    for (int iy = 0; iy < ny; iy++) {
        double fy = (iy <= ny / 2 ? iy : iy - ny) / (double)ny;
        for (int ix = 0; ix < nh; ix++) {
            double h = fn(s, o, ix / (double)nx, fy) * inv;
            f[(size_t)iy * nh + ix][0] *= (float)h;
            f[(size_t)iy * nh + ix][1] *= (float)h;
        }
    }
    fftwf_execute_dft_c2r(s->det_bwd, f, img);
    return EW_OK;
}

static void draw_ctf(const ew_em_config_t *c, ew_rng_t *r, ew_ctf_params_t *ctf)
{
    *ctf = c->ctf;
    if (c->defocus_min == 0.0 && c->defocus_max == 0.0) return;
    double mean = c->defocus_min + (c->defocus_max - c->defocus_min) * ew_rng_uniform(r);
    double ast = c->astig_max * ew_rng_uniform(r);
    ctf->defocus_u = mean + 0.5 * ast;
    ctf->defocus_v = mean - 0.5 * ast;
    ctf->astig_angle_deg = 180.0 * ew_rng_uniform(r);
}

static ew_status_t run_full(ew_em_sim_t *s, const boxes_t *bx, ew_em_micrograph_t *o, ew_rng_t *rc, float *vs,
                            float *ds)
{
    const ew_em_config_t *c = &s->cfg;
    int snx = s->snx, sny = s->sny, nx = c->nx, ny = c->ny;
    size_t sn = (size_t)snx * sny, n = (size_t)nx * ny;
    ew_status_t st = EW_OK;
    float *ts = s->w_ts, *g = s->w_g;
    fftwf_complex *u = s->w_u;
    memset(u, 0, sn * sizeof *u);
    if (!s->have_ice) {
        memset(ts, 0, sn * sizeof *ts);
        memset(g, 0, sn * sizeof *g);
    }
    add_boxes(s, o->particles, o->n_particles, bx, vs, ds, u);
    double t1 = ew_time_now();
    if (s->have_ice) {
        st = ew_ice_thickness_field(&c->ice, snx, sny, s->spx, c->ice_weight, c->ice_weight_nx, c->ice_weight_ny, rc,
                                    ts);
        if (st != EW_OK) goto done;
        ew_ice_synth_field(&s->ice, c->seed,
                           ew_rng_stream_id(EW_RNG_TAG_NOISE, ((uint64_t)o->index << 24) | (1u << 23)), g);
    }
    double t2 = ew_time_now();
    o->stage_seconds[1] = t2 - t1;
    const double vbar = s->have_ice ? ew_ice_mean_potential(&c->ice) : 0.0, tmean = c->ice.thickness;
    const double sigma = s->sigma, eta = s->eta;
    const int grating = c->phase_grating;
#pragma omp parallel for schedule(static) if(sn >= PAR_MIN)
    for (size_t i = 0; i < sn; i++) {
        double phi = 0.0;
        if (s->have_ice) {
            double te = ts[i] - ds[i];
            if (te < 0.0) te = 0.0;
            phi = sigma * (vbar * (te - tmean) + sqrt(te) * g[i]);
        }
        double ur = u[i][0], ui = u[i][1], pr, pi;
        if (grating) {
            float fp = (float)phi, a = expf((float)(-eta) * fp);
            double br = a * cosf(fp), bi = a * sinf(fp);
            pr = br * (1.0 + ur) - bi * ui;
            pi = br * ui + bi * (1.0 + ur);
        } else {
            pr = 1.0 - eta * phi + ur;
            pi = phi + ui;
        }
        u[i][0] = (float)pr;
        u[i][1] = (float)pi;
    }
    fftwf_execute_dft(s->wave_fwd, u, u);
    optics_t op;
    optics_init(&op, &o->ctf, s->lambda);
    const double inv = 1.0 / (double)sn;
#pragma omp parallel for schedule(static) if(sn >= PAR_MIN)
    for (int iy = 0; iy < sny; iy++) {
        double sy = freq(iy, sny, s->spx);
        for (int ix = 0; ix < snx; ix++) {
            if (ix == 0 && iy == 0) {
                u[0][0] *= (float)inv;
                u[0][1] *= (float)inv;
                continue;
            }
            double chi, env;
            optics_eval(&op, s->lambda, freq(ix, snx, s->spx), sy, &chi, &env);
            /* reduce in double, evaluate in float (|chi| reaches hundreds of rad) */
            float cr = (float)(chi - 2.0 * EW_PI * nearbyint(chi / (2.0 * EW_PI)));
            double hr = env * cosf(cr) * inv, hi = env * sinf(cr) * inv;
            fftwf_complex *w = &u[(size_t)iy * snx + ix];
            double re = (*w)[0], im = (*w)[1];
            /* store the conjugate: |IFFT(W)| = |FFT(conj W)|, so one plan serves both ways */
            (*w)[0] = (float)(re * hr - im * hi);
            (*w)[1] = (float)-(re * hi + im * hr);
        }
    }
    u[0][1] = -u[0][1];
    fftwf_execute_dft(s->wave_fwd, u, u);
    const double mfp = c->ice.inelastic_mfp;
#pragma omp parallel for schedule(static) if(sn >= PAR_MIN)
    for (size_t i = 0; i < sn; i++) {
        double in = (double)u[i][0] * u[i][0] + (double)u[i][1] * u[i][1];
        if (s->have_ice && mfp > 0.0) in *= exp(-ts[i] / mfp);
        g[i] = (float)in;
    }
    double t3 = ew_time_now();
    o->stage_seconds[2] = t3 - t2;
    bin_image(g, snx, s->os, o->clean, nx, ny, c->dose * c->pixel * c->pixel);
    bin_image(ts, snx, s->os, o->thickness, nx, ny, 1.0);
    if (c->mtf_table || c->mtf_analytic || c->drift[0] != 0.0 || c->drift[1] != 0.0) {
        memcpy(o->micrograph, o->clean, n * sizeof(float)); /* c2r input is destroyed: filter a copy */
        st = filter_image(s, NULL, o->micrograph, detector_filter);
        if (st != EW_OK) goto done;
        memcpy(o->clean, o->micrograph, n * sizeof(float));
    }
    const double q = c->dqe0;
#pragma omp parallel for schedule(static) if(n >= PAR_MIN)
    for (int y = 0; y < ny; y++) {
        ew_rng_t r;
        ew_rng_init(&r, c->seed, ew_rng_stream_id(EW_RNG_TAG_NOISE, ((uint64_t)o->index << 24) | (uint64_t)y));
        for (int x = 0; x < nx; x++) {
            size_t i = (size_t)y * nx + x;
            double lam = o->clean[i] > 0.0f ? q * o->clean[i] : 0.0;
            o->micrograph[i] = (float)(ew_rng_poisson(&r, lam) / q);
        }
    }
    o->stage_seconds[3] = ew_time_now() - t3;
done:
    return st;
}

static ew_status_t run_genem(ew_em_sim_t *s, ew_em_micrograph_t *o)
{
    const ew_em_config_t *c = &s->cfg;
    int nx = c->nx, ny = c->ny;
    size_t n = (size_t)nx * ny;
    memcpy(o->clean, o->projection, n * sizeof(float));
    optics_t op;
    optics_init(&op, &o->ctf, s->lambda);
    EW_TRY(filter_image(s, &op, o->clean, ctf_filter));
    double sum = 0.0, sum2 = 0.0;
#pragma omp parallel for reduction(+ : sum, sum2) schedule(static) if(n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        sum += o->clean[i];
        sum2 += (double)o->clean[i] * o->clean[i];
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    o->noise_sd = sqrt((var > 0.0 ? var : 0.0) / c->snr);
    const double sd = o->noise_sd;
#pragma omp parallel for schedule(static) if(n >= PAR_MIN)
    for (int y = 0; y < ny; y++) {
        ew_rng_t r;
        ew_rng_init(&r, c->seed, ew_rng_stream_id(EW_RNG_TAG_NOISE, ((uint64_t)o->index << 24) | (uint64_t)y));
        for (int x = 0; x < nx; x++) {
            size_t i = (size_t)y * nx + x;
            o->micrograph[i] = (float)(o->clean[i] + sd * ew_rng_normal(&r));
        }
    }
    return EW_OK;
}

ew_status_t ew_em_sim_run(ew_em_sim_t *s, size_t index, ew_em_micrograph_t *o)
{
    double t0 = ew_time_now();
    const ew_em_config_t *c = &s->cfg;
    memset(o, 0, sizeof *o);
    if (index >= ((uint64_t)1 << 24))
        return ew_fail(EW_ERR_RANGE, "em simulate: micrograph index %zu is beyond 2^24", index);
    o->nx = c->nx;
    o->ny = c->ny;
    o->pixel = c->pixel;
    o->index = index;
    ew_status_t st = alloc_outputs(o, c->nx, c->ny);
    boxes_t bx;
    memset(&bx, 0, sizeof bx);
    float *vs = NULL, *ds = NULL;
    if (st != EW_OK) goto fail;
    ew_rng_t rs, rc;
    ew_rng_init(&rs, c->seed, ew_rng_stream_id(EW_RNG_TAG_SPECIMEN, index));
    ew_rng_init(&rc, c->seed, ew_rng_stream_id(EW_RNG_TAG_SPECIMEN, (uint64_t)index | ((uint64_t)1 << 47)));
    double ice = c->mode == EW_EM_FULL ? c->ice.thickness : 0.0;
    st = ew_specimen_place(&c->specimen, s->models, s->n_models, c->nx * c->pixel, c->ny * c->pixel, ice, &rs,
                           &o->particles, &o->n_particles);
    if (st != EW_OK) goto fail;
    /* pixel-(0,0)-centre coordinates: shift by half a pixel from the field's corner */
    for (size_t p = 0; p < o->n_particles; p++) {
        o->particles[p].x -= 0.5 * c->pixel;
        o->particles[p].y -= 0.5 * c->pixel;
        if (c->mode != EW_EM_FULL) o->particles[p].z = 0.0;
    }
    draw_ctf(c, &rc, &o->ctf);
    /* simulation-grid coordinates: pixel centres at (i + 1/2) spx - pixel/2 */
    ew_particle_t *sp = ew_alloc_array(o->n_particles + 1, sizeof *sp);
    if (!sp) {
        st = EW_ERR_NOMEM;
        goto fail;
    }
    for (size_t p = 0; p < o->n_particles; p++) {
        sp[p] = o->particles[p];
        sp[p].x += 0.5 * c->pixel - 0.5 * s->spx;
        sp[p].y += 0.5 * c->pixel - 0.5 * s->spx;
    }
    st = make_boxes(s, sp, o->n_particles, c->mode == EW_EM_FULL, &bx);
    o->stage_seconds[0] = ew_time_now() - t0;
    size_t sn = (size_t)s->snx * s->sny;
    if (st == EW_OK) {
        vs = s->w_vs;
        ds = s->w_ds;
        memset(vs, 0, sn * sizeof *vs);
        memset(ds, 0, sn * sizeof *ds);
    }
    if (st == EW_OK) {
        if (c->mode == EW_EM_FULL) st = run_full(s, &bx, o, &rc, vs, ds);
        else add_boxes(s, sp, o->n_particles, &bx, vs, ds, NULL);
    }
    ew_free(sp);
    boxes_free(&bx);
    if (st != EW_OK) goto fail;
    bin_image(vs, s->snx, s->os, o->projection, c->nx, c->ny, s->sigma);
    /* the micrograph buffer holds the binned particle thickness until it is filled */
    float *dbin = c->mode == EW_EM_FULL ? vs : o->micrograph;
    bin_image(ds, s->snx, s->os, dbin, c->nx, c->ny, 1.0);
    for (size_t i = 0; i < (size_t)c->nx * c->ny; i++) o->mask[i] = dbin[i] > c->mask_thickness;
    if (c->mode == EW_EM_GENEM) {
        st = run_genem(s, o);
        if (st != EW_OK) goto fail;
    }
    o->seconds = ew_time_now() - t0;
    return EW_OK;
fail:
    boxes_free(&bx);
    ew_em_micrograph_free(o);
    return st;
}

void ew_em_extract_box(const float *img, int nx, int ny, double cx, double cy, int box, float *out)
{
    EW_ASSERT(img && out && box > 0);
    long ox = lround(cx) - box / 2, oy = lround(cy) - box / 2;
    double sum = 0.0;
    size_t cnt = 0;
    for (int j = 0; j < box; j++)
        for (int i = 0; i < box; i++) {
            long x = ox + i, y = oy + j;
            if (x >= 0 && y >= 0 && x < nx && y < ny) {
                float v = img[(size_t)y * nx + x];
                out[(size_t)j * box + i] = v;
                sum += v;
                cnt++;
            }
        }
    float fill = cnt ? (float)(sum / cnt) : 0.0f;
    for (int j = 0; j < box; j++)
        for (int i = 0; i < box; i++) {
            long x = ox + i, y = oy + j;
            if (!(x >= 0 && y >= 0 && x < nx && y < ny)) out[(size_t)j * box + i] = fill;
        }
}

/* ---- writing a data set ---- */

void ew_em_output_default(ew_em_output_t *o)
{
    memset(o, 0, sizeof *o);
    o->write_clean = 1;
    o->write_projection = 1;
    o->write_mask = 1;
    o->png = 1;
    o->png_max = 1024;
}

/* Bin img by the smallest integer factor that fits max_side and write a gray PNG. */
static ew_status_t write_preview(const char *path, const float *img, int nx, int ny, int max_side)
{
    int f = 1;
    while ((nx + f - 1) / f > max_side || (ny + f - 1) / f > max_side) f++;
    int bx = nx / f, by = ny / f;
    if (bx < 1 || by < 1) return ew_fail(EW_ERR_ARG, "%s: a %d x %d preview is empty", path, bx, by);
    float *b = ew_alloc_array((size_t)bx * by, sizeof(float));
    if (!b) return EW_ERR_NOMEM;
    for (int y = 0; y < by; y++)
        for (int x = 0; x < bx; x++) {
            double acc = 0;
            for (int j = 0; j < f; j++)
                for (int i = 0; i < f; i++) acc += img[(size_t)(y * f + j) * nx + x * f + i];
            b[(size_t)y * bx + x] = (float)(acc / (f * f));
        }
    ew_image_options_t o = ew_image_options_default();
    o.colormap = EW_CMAP_GRAY;
    o.clip_lo = 0.5;
    o.clip_hi = 99.5;
    ew_status_t st = ew_png_write_image(path, b, bx, by, NULL, &o);
    ew_free(b);
    return st;
}

static ew_status_t make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return EW_OK;
        return ew_fail(EW_ERR_IO, "%s: exists and is not a folder", path);
    }
    return ew_fail(EW_ERR_IO, "%s: cannot create the folder: %s", path, strerror(errno));
}

static ew_status_t join(char *buf, size_t n, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
        return ew_fail(EW_ERR_ARG, "%s/%s: path too long", dir, name);
    return EW_OK;
}

/* add a row of printf-formatted doubles/strings: values prepared by the caller */
static ew_status_t star_row(ew_star_t *s, size_t block, size_t table, char vals[][64], size_t n)
{
    const char *ptr[32];
    EW_ASSERT(n <= 32);
    for (size_t i = 0; i < n; i++) ptr[i] = vals[i];
    return ew_star_add_row(s, block, table, ptr);
}

static ew_status_t optics_block(ew_star_t *s, const ew_em_config_t *c, int box)
{
    size_t b, t;
    EW_TRY(ew_star_add_block(s, "optics", &b));
    const char *cols_mic[] = {"rlnOpticsGroupName", "rlnOpticsGroup", "rlnMicrographOriginalPixelSize",
                              "rlnMicrographPixelSize", "rlnVoltage", "rlnSphericalAberration",
                              "rlnAmplitudeContrast"};
    const char *cols_img[] = {"rlnOpticsGroupName", "rlnOpticsGroup", "rlnMicrographOriginalPixelSize",
                              "rlnMicrographPixelSize", "rlnVoltage", "rlnSphericalAberration",
                              "rlnAmplitudeContrast", "rlnImagePixelSize", "rlnImageSize",
                              "rlnImageDimensionality"};
    size_t nc = box > 0 ? 10 : 7;
    EW_TRY(ew_star_add_loop(s, b, nc, box > 0 ? cols_img : cols_mic, &t));
    char v[10][64];
    snprintf(v[0], 64, "opticsGroup1");
    snprintf(v[1], 64, "1");
    snprintf(v[2], 64, "%.6f", c->pixel);
    snprintf(v[3], 64, "%.6f", c->pixel);
    snprintf(v[4], 64, "%.6f", c->ctf.voltage_v / 1000.0);
    snprintf(v[5], 64, "%.6f", c->ctf.cs_mm);
    snprintf(v[6], 64, "%.6f", c->ctf.amp_contrast);
    snprintf(v[7], 64, "%.6f", c->pixel);
    snprintf(v[8], 64, "%d", box);
    snprintf(v[9], 64, "2");
    return star_row(s, b, t, v, nc);
}

static ew_status_t write_image(const char *path, const float *data, int nx, int ny, double pixel, int mode)
{
    return ew_mrc_write(path, data, nx, ny, 1, pixel, NULL, 0, mode);
}

ew_status_t ew_em_simulate_to_files(const ew_em_config_t *cfg, const ew_structure_t *structures,
                                    size_t n_structures, const ew_em_output_t *out)
{
    EW_ASSERT(cfg && out);
    if (!out->outdir || !out->outdir[0]) return ew_fail(EW_ERR_ARG, "em simulate: no output folder given");
    if (out->box < 0 || out->box % 2 || out->box > 8192)
        return ew_fail(EW_ERR_ARG, "em simulate: box = %d pixels must be even, 0..8192", out->box);
    if (out->png && out->png_max < 16)
        return ew_fail(EW_ERR_ARG, "em simulate: PNG preview size %d pixels is below 16", out->png_max);
    char path[4096], micdir[4096], pngdir[4096], name[128];
    EW_TRY(make_dir(out->outdir));
    EW_TRY(join(micdir, sizeof micdir, out->outdir, "micrographs"));
    EW_TRY(make_dir(micdir));
    EW_TRY(join(pngdir, sizeof pngdir, out->outdir, "previews"));
    if (out->png) EW_TRY(make_dir(pngdir));
    ew_em_sim_t *sim = NULL;
    EW_TRY(ew_em_sim_create(cfg, structures, n_structures, &sim));
    const ew_em_config_t *c = ew_em_sim_config(sim);
    ew_status_t st = EW_OK;
    ew_mrc_writer_t *stack = NULL;
    ew_star_t mics, parts;
    ew_star_init(&mics, "micrographs.star");
    ew_star_init(&parts, "particles.star");
    size_t mb = 0, mt = 0, pb = 0, pt = 0;
    float *boxbuf = NULL, *maskf = NULL;
    ew_progress_t *prog = NULL;
    long n_img = 0;
    const int box = out->box;
    st = optics_block(&mics, c, 0);
    if (st == EW_OK) st = optics_block(&parts, c, box);
    if (st == EW_OK) st = ew_star_add_block(&mics, "micrographs", &mb);
    const char *mcols[] = {"rlnMicrographName", "rlnOpticsGroup", "rlnDefocusU", "rlnDefocusV",
                           "rlnDefocusAngle", "rlnPhaseShift", "rlnCtfBfactor"};
    if (st == EW_OK) st = ew_star_add_loop(&mics, mb, 7, mcols, &mt);
    if (st == EW_OK) st = ew_star_add_block(&parts, "particles", &pb);
    const char *pcols[] = {"rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY", "rlnAngleRot",
                           "rlnAngleTilt", "rlnAnglePsi", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle",
                           "rlnPhaseShift", "rlnCtfBfactor", "rlnClassNumber", "rlnOpticsGroup",
                           "rlnImageName", "rlnOriginXAngst", "rlnOriginYAngst"};
    size_t npc = box > 0 ? 16 : 13;
    if (st == EW_OK) st = ew_star_add_loop(&parts, pb, npc, pcols, &pt);
    if (st != EW_OK) goto done;
    size_t n = (size_t)c->nx * c->ny;
    maskf = ew_alloc_array(n, sizeof(float));
    if (box > 0) boxbuf = ew_alloc_array((size_t)box * box, sizeof(float));
    if (!maskf || (box > 0 && !boxbuf)) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    if (box > 0) {
        st = join(path, sizeof path, out->outdir, "particles.mrcs");
        if (st == EW_OK) st = ew_mrc_writer_open(&stack, path, box, box, c->pixel, NULL, 1, EW_MRC_FLOAT32);
        if (st != EW_OK) goto done;
    }
    prog = ew_progress_start("em simulate", c->n_micrographs);
    for (size_t k = 0; k < c->n_micrographs && st == EW_OK; k++) {
        ew_em_micrograph_t m;
        st = ew_em_sim_run(sim, k, &m);
        if (st != EW_OK) break;
        char mname[64];
        snprintf(mname, sizeof mname, "micrographs/mic_%06zu.mrc", k);
        struct {
            int on;
            const char *suffix;
            const float *data;
            int mode;
        } files[5] = {{1, "", m.micrograph, EW_MRC_FLOAT32},
                      {out->write_clean, "_clean", m.clean, EW_MRC_FLOAT32},
                      {out->write_projection, "_projection", m.projection, EW_MRC_FLOAT32},
                      {out->write_mask, "_mask", maskf, EW_MRC_INT8},
                      {out->write_thickness && c->mode == EW_EM_FULL, "_thickness", m.thickness, EW_MRC_FLOAT32}};
        for (size_t i = 0; i < n; i++) maskf[i] = m.mask[i];
        for (int f = 0; f < 5 && st == EW_OK; f++) {
            if (!files[f].on) continue;
            snprintf(name, sizeof name, "mic_%06zu%s.mrc", k, files[f].suffix);
            st = join(path, sizeof path, micdir, name);
            if (st == EW_OK) st = write_image(path, files[f].data, c->nx, c->ny, c->pixel, files[f].mode);
        }
        for (int f = 0; f < 2 && st == EW_OK && out->png; f++) {
            snprintf(name, sizeof name, "mic_%06zu%s.png", k, f ? "_clean" : "");
            st = join(path, sizeof path, pngdir, name);
            if (st == EW_OK) st = write_preview(path, f ? m.clean : m.micrograph, c->nx, c->ny, out->png_max);
        }
        char v[16][64];
        if (st == EW_OK) {
            snprintf(v[0], 64, "%s", mname);
            snprintf(v[1], 64, "1");
            snprintf(v[2], 64, "%.2f", m.ctf.defocus_u);
            snprintf(v[3], 64, "%.2f", m.ctf.defocus_v);
            snprintf(v[4], 64, "%.4f", m.ctf.astig_angle_deg);
            snprintf(v[5], 64, "%.4f", m.ctf.phase_shift_deg);
            snprintf(v[6], 64, "%.4f", m.ctf.bfactor);
            st = star_row(&mics, mb, mt, v, 7);
        }
        for (size_t p = 0; p < m.n_particles && st == EW_OK; p++) {
            const ew_particle_t *q = &m.particles[p];
            double rot, tilt, psi, cx = q->x / c->pixel, cy = q->y / c->pixel;
            ew_mat_to_euler_relion(q->R, &rot, &tilt, &psi);
            snprintf(v[0], 64, "%s", mname);
            snprintf(v[1], 64, "%.4f", cx);
            snprintf(v[2], 64, "%.4f", cy);
            snprintf(v[3], 64, "%.6f", rot);
            snprintf(v[4], 64, "%.6f", tilt);
            snprintf(v[5], 64, "%.6f", psi);
            snprintf(v[6], 64, "%.2f", m.ctf.defocus_u - q->z);
            snprintf(v[7], 64, "%.2f", m.ctf.defocus_v - q->z);
            snprintf(v[8], 64, "%.4f", m.ctf.astig_angle_deg);
            snprintf(v[9], 64, "%.4f", m.ctf.phase_shift_deg);
            snprintf(v[10], 64, "%.4f", m.ctf.bfactor);
            snprintf(v[11], 64, "%d", q->model + 1);
            snprintf(v[12], 64, "1");
            if (box > 0) {
                n_img++;
                snprintf(v[13], 64, "%06ld@particles.mrcs", n_img);
                snprintf(v[14], 64, "%.4f", (lround(cx) - cx) * c->pixel);
                snprintf(v[15], 64, "%.4f", (lround(cy) - cy) * c->pixel);
                ew_em_extract_box(m.micrograph, c->nx, c->ny, cx, cy, box, boxbuf);
                st = ew_mrc_writer_append(stack, boxbuf, 1);
            }
            if (st == EW_OK) st = star_row(&parts, pb, pt, v, npc);
        }
        ew_progress_status(prog, "%zu particles", m.n_particles);
        ew_progress_add(prog, 1);
        ew_em_micrograph_free(&m);
    }
    ew_progress_finish(prog);
    if (st != EW_OK) goto done;
    if (stack) {
        st = ew_mrc_writer_close(stack);
        stack = NULL;
        if (st != EW_OK) goto done;
    }
    st = join(path, sizeof path, out->outdir, "micrographs.star");
    if (st == EW_OK) st = ew_star_write(path, &mics);
    if (st == EW_OK) st = join(path, sizeof path, out->outdir, "particles.star");
    if (st == EW_OK) st = ew_star_write(path, &parts);
done:
    ew_mrc_writer_abort(stack);
    ew_star_free(&mics);
    ew_star_free(&parts);
    ew_free(boxbuf);
    ew_free(maskf);
    ew_em_sim_destroy(sim);
    return st;
}
