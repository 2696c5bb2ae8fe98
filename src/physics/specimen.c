/* ewald physics: particle models and their placement (see specimen.h). */
#include "physics/specimen.h"

#include <math.h>
#include <string.h>

#include "geom/geom.h"

/* Width (A) of each atom's excluded-volume Gaussian. */
#define VOLUME_WIDTH 1.5

ew_status_t ew_em_model_init(ew_em_model_t *m, const ew_structure_t *s, double b_extra)
{
    EW_ASSERT(m && s);
    memset(m, 0, sizeof *m);
    if (s->n_atoms == 0) return ew_fail(EW_ERR_ARG, "%s: the structure has no atoms", s->source);
    double wsum = 0.0, c[3] = {0, 0, 0};
    for (size_t i = 0; i < s->n_atoms; i++) {
        if (s->z[i] < 1 || s->z[i] > EW_PENG_ZMAX)
            return ew_fail(EW_ERR_RANGE, "%s: atom %zu has atomic number %d (outside 1..98)", s->source, i, s->z[i]);
        double w = ew_peng_volume_integral(s->z[i]) * (s->occupancy ? s->occupancy[i] : 1.0);
        wsum += w;
        for (int d = 0; d < 3; d++) c[d] += w * s->xyz[3 * i + d];
    }
    if (!(wsum > 0.0)) return ew_fail(EW_ERR_ARG, "%s: the atoms' total potential is %g", s->source, wsum);
    for (int d = 0; d < 3; d++) m->centre[d] = c[d] / wsum;
    m->potential_integral = wsum;
    ew_status_t st = ew_peng_atoms_init(&m->pot, s->xyz, s->z, s->b_factor, s->occupancy, s->n_atoms, b_extra,
                                        m->centre);
    if (st == EW_OK)
        st = ew_peng_atoms_init_volume(&m->vol, s->xyz, s->z, s->occupancy, s->n_atoms, EW_PROTEIN_A3_PER_DA,
                                       VOLUME_WIDTH, m->centre);
    if (st != EW_OK) {
        ew_em_model_free(m);
        return ew_fail_context(st, "%s", s->source);
    }
    double r2 = 0.0, vol = 0.0;
    for (size_t i = 0; i < s->n_atoms; i++) {
        const float *p = m->pot.xyz + 3 * i;
        double d2 = (double)p[0] * p[0] + (double)p[1] * p[1] + (double)p[2] * p[2];
        if (d2 > r2) r2 = d2;
        vol += m->vol.amp[i];
    }
    m->radius = sqrt(r2);
    m->volume = vol;
    return EW_OK;
}

void ew_em_model_free(ew_em_model_t *m)
{
    if (!m) return;
    ew_peng_atoms_free(&m->pot);
    ew_peng_atoms_free(&m->vol);
    memset(m, 0, sizeof *m);
}

void ew_specimen_params_default(ew_specimen_params_t *p)
{
    memset(p, 0, sizeof *p);
    p->count_mean = 50.0;
    p->count_sd = 0.0;
    p->min_gap = 0.0;
    p->random_heights = 0;
    p->max_tries = 1000;
    p->model_weights = NULL;
}

ew_status_t ew_specimen_place(const ew_specimen_params_t *p, const ew_em_model_t *models, size_t n_models,
                              double width, double height, double ice, ew_rng_t *r, ew_particle_t **out,
                              size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (n_models == 0) return ew_fail(EW_ERR_ARG, "specimen: no structures given");
    if (!(p->count_mean >= 0.0) || !(p->count_sd >= 0.0) || !isfinite(p->count_mean) || !isfinite(p->count_sd))
        return ew_fail(EW_ERR_ARG, "specimen: particle count mean %g / spread %g must be finite and >= 0",
                       p->count_mean, p->count_sd);
    if (!(p->min_gap >= 0.0) || p->max_tries < 1)
        return ew_fail(EW_ERR_ARG, "specimen: min gap %g A / max tries %d invalid", p->min_gap, p->max_tries);
    if (!(width > 0.0) || !(height > 0.0))
        return ew_fail(EW_ERR_ARG, "specimen: field %g x %g A is empty", width, height);
    ew_hist_sampler_t hs = {0, NULL};
    if (p->model_weights) EW_TRY(ew_hist_sampler_init(&hs, p->model_weights, n_models));

    double cnt = p->count_sd > 0.0 ? p->count_mean + p->count_sd * ew_rng_normal(r) : p->count_mean;
    long n = lround(cnt);
    if (n < 0) n = 0;
    if (n > 10000000) {
        ew_hist_sampler_free(&hs);
        return ew_fail(EW_ERR_RANGE, "specimen: %ld particles in one micrograph is too many", n);
    }
    ew_particle_t *pt = ew_alloc_array((size_t)(n > 0 ? n : 1), sizeof *pt);
    if (!pt) {
        ew_hist_sampler_free(&hs);
        return EW_ERR_NOMEM;
    }
    size_t placed = 0;
    for (long k = 0; k < n; k++) {
        int mi = p->model_weights ? (int)ew_hist_sampler_draw(&hs, r) : (int)ew_rng_below(r, n_models);
        double rad = models[mi].radius;
        ew_quat_t q = ew_quat_random(r);
        int ok = 0;
        double x = 0, y = 0;
        if (width > 2 * rad && height > 2 * rad) {
            for (int t = 0; t < p->max_tries && !ok; t++) {
                x = rad + (width - 2 * rad) * ew_rng_uniform(r);
                y = rad + (height - 2 * rad) * ew_rng_uniform(r);
                ok = 1;
                for (size_t j = 0; j < placed && ok; j++) {
                    double dmin = rad + models[pt[j].model].radius + p->min_gap;
                    double dx = x - pt[j].x, dy = y - pt[j].y;
                    if (dx * dx + dy * dy < dmin * dmin) ok = 0;
                }
            }
        }
        if (!ok) {
            ew_warn("specimen: placed %zu of %ld particles (no room for more without overlap)", placed, n);
            break;
        }
        double z = 0.0;
        if (p->random_heights && ice > 0.0) {
            double room = 0.5 * ice - rad;
            if (room > 0.0) z = room * (2.0 * ew_rng_uniform(r) - 1.0);
        }
        ew_particle_t *e = &pt[placed++];
        e->model = mi;
        e->x = x;
        e->y = y;
        e->z = z;
        ew_quat_to_mat(q, e->R);
    }
    ew_hist_sampler_free(&hs);
    if (placed == 0) {
        ew_free(pt);
        pt = NULL;
    }
    *out = pt;
    *n_out = placed;
    return EW_OK;
}
