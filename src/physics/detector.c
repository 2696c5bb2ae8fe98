/* ewald physics: detector geometry, solid angles, polarization, masks. */
#include "physics/detector.h"

#include <math.h>
#include <string.h>

ew_detector_config_t ew_detector_config_reference(void)
{
    ew_detector_config_t c;
    memset(&c, 0, sizeof c);
    c.nx = c.ny = 128;
    c.pixel_m = 0.1 / 128.0;
    c.distance_m = 0.2;
    c.energy_ev = 4600.0;
    c.cx = c.cy = NAN;
    c.polarization = EW_POL_LINEAR;
    return c;
}

ew_detector_config_t ew_detector_config_dragonfly(void)
{
    ew_detector_config_t c = ew_detector_config_reference();
    c.nx = c.ny = 150;
    c.pixel_m = 0.512e-3;
    c.distance_m = 0.3;
    c.energy_ev = EW_HC_EV_A / 6.2;
    return c;
}

/* |s| of a point (x, y) in the detector plane, metres. */
static double s_of(double x, double y, double D, double lambda)
{
    double r = sqrt(x * x + y * y + D * D);
    double kx = x / r, ky = y / r, kz = D / r - 1.0;
    return sqrt(kx * kx + ky * ky + kz * kz) / lambda;
}

/* Solid angle of the rectangle [0, x] x [0, y] (signed) at distance D. */
static double rect_g(double x, double y, double D)
{
    return atan(x * y / (D * sqrt(x * x + y * y + D * D)));
}

static void geometry(const ew_detector_t *d, double cx, double cy, float *s, float *sa, float *pol, float *corr)
{
    const ew_detector_config_t *c = &d->cfg;
    const double p = c->pixel_m, D = c->distance_m, lam = d->wavelength_a;
    const double pa = c->pol_angle_deg * EW_PI / 180.0, ex = cos(pa), ey = sin(pa);
#pragma omp parallel for schedule(static)
    for (int row = 0; row < c->ny; row++) {
        for (int col = 0; col < c->nx; col++) {
            size_t i = (size_t)row * c->nx + col;
            double x = (col - cx) * p, y = (row - cy) * p;
            double r = sqrt(x * x + y * y + D * D);
            double kx = x / r, ky = y / r, kz = D / r;
            if (s) {
                s[3 * i] = (float)(kx / lam);
                s[3 * i + 1] = (float)(ky / lam);
                s[3 * i + 2] = (float)((kz - 1.0) / lam);
            }
            double omega = rect_g(x + p / 2, y + p / 2, D) - rect_g(x - p / 2, y + p / 2, D) -
                           rect_g(x + p / 2, y - p / 2, D) + rect_g(x - p / 2, y - p / 2, D);
            double P;
            if (c->polarization == EW_POL_NONE) P = 0.5 * (1.0 + kz * kz);
            else {
                double e = ex * kx + ey * ky;
                P = 1.0 - e * e;
            }
            if (sa) sa[i] = (float)omega;
            if (pol) pol[i] = (float)P;
            if (corr) corr[i] = (float)(omega * P);
        }
    }
}

void ew_detector_free(ew_detector_t *d)
{
    if (!d) return;
    ew_free(d->s);
    ew_free(d->solid_angle);
    ew_free(d->polarization);
    ew_free(d->corr);
    ew_free(d->mask);
    memset(d, 0, sizeof *d);
}

ew_status_t ew_detector_init(ew_detector_t *d, const ew_detector_config_t *cfg)
{
    EW_ASSERT(d != NULL && cfg != NULL);
    memset(d, 0, sizeof *d);
    const ew_detector_config_t *c = cfg;
    if (c->nx <= 0 || c->ny <= 0 || c->nx > 1 << 16 || c->ny > 1 << 16)
        return ew_fail(EW_ERR_ARG, "detector: size %d x %d pixels is not in 1..65536", c->nx, c->ny);
    if (!(c->pixel_m > 0.0 && c->pixel_m < 1.0))
        return ew_fail(EW_ERR_ARG, "detector: pixel size %g m is not in (0, 1)", c->pixel_m);
    if (!(c->distance_m > 0.0 && c->distance_m < 1e3))
        return ew_fail(EW_ERR_ARG, "detector: distance %g m is not positive", c->distance_m);
    if (!(c->energy_ev > 10.0 && c->energy_ev < 1e7))
        return ew_fail(EW_ERR_ARG, "detector: photon energy %g eV is not in (10, 1e7)", c->energy_ev);
    if (!(c->dead_fraction >= 0.0 && c->dead_fraction < 1.0))
        return ew_fail(EW_ERR_ARG, "detector: dead fraction %g is not in [0, 1)", c->dead_fraction);
    if (!isfinite(c->pol_angle_deg) || (c->polarization != EW_POL_LINEAR && c->polarization != EW_POL_NONE))
        return ew_fail(EW_ERR_ARG, "detector: polarization (mode %d, angle %g deg) is invalid", (int)c->polarization,
                       c->pol_angle_deg);
    if (!(c->beamstop_radius_px >= 0.0) || !(c->bar_width_px >= 0.0) || c->gap_x_px < 0 || c->gap_y_px < 0 ||
        !(c->orient_radius_px >= 0.0) || (int)c->beamstop_bar < 0 || (int)c->beamstop_bar > EW_BAR_MY)
        return ew_fail(EW_ERR_ARG, "detector: a mask size (beam stop %g, bar %g, gaps %d %d, orient radius %g) is invalid",
                       c->beamstop_radius_px, c->bar_width_px, c->gap_x_px, c->gap_y_px, c->orient_radius_px);
    d->cfg = *c;
    d->cfg.cx = isfinite(c->cx) ? c->cx : (c->nx - 1) / 2.0;
    d->cfg.cy = isfinite(c->cy) ? c->cy : (c->ny - 1) / 2.0;
    d->nx = c->nx;
    d->ny = c->ny;
    d->npix = (size_t)c->nx * (size_t)c->ny;
    d->wavelength_a = EW_HC_EV_A / c->energy_ev;
    d->pixel_m = c->pixel_m;
    d->distance_m = c->distance_m;
    d->cx = d->cfg.cx;
    d->cy = d->cfg.cy;
    d->s = ew_alloc_array(3 * d->npix, sizeof(float));
    d->solid_angle = ew_alloc_array(d->npix, sizeof(float));
    d->polarization = ew_alloc_array(d->npix, sizeof(float));
    d->corr = ew_alloc_array(d->npix, sizeof(float));
    d->mask = ew_calloc_array(d->npix, 1);
    if (!d->s || !d->solid_angle || !d->polarization || !d->corr || !d->mask) {
        ew_detector_free(d);
        return ew_fail(EW_ERR_NOMEM, "detector: cannot allocate %d x %d pixels", c->nx, c->ny);
    }
    geometry(d, d->cx, d->cy, d->s, d->solid_angle, d->polarization, d->corr);

    /* extent in s */
    const double p = c->pixel_m, D = c->distance_m, lam = d->wavelength_a;
    double x0 = (-0.5 - d->cx) * p, x1 = (c->nx - 0.5 - d->cx) * p;
    double y0 = (-0.5 - d->cy) * p, y1 = (c->ny - 0.5 - d->cy) * p;
    d->s_max_edge = fmax(fmax(s_of(x0, 0, D, lam), s_of(x1, 0, D, lam)), fmax(s_of(0, y0, D, lam), s_of(0, y1, D, lam)));
    d->s_max_corner = fmax(fmax(s_of(x0, y0, D, lam), s_of(x1, y0, D, lam)), fmax(s_of(x0, y1, D, lam), s_of(x1, y1, D, lam)));

    /* mask */
    ew_rng_t rng;
    ew_rng_init(&rng, c->dead_seed, ew_rng_stream_id(EW_RNG_TAG_GENERIC, 0));
    const double hb = c->bar_width_px / 2.0;
    for (int row = 0; row < c->ny; row++) {
        for (int col = 0; col < c->nx; col++) {
            size_t i = (size_t)row * c->nx + col;
            double dx = col - d->cx, dy = row - d->cy, r = sqrt(dx * dx + dy * dy);
            uint8_t m = EW_MASK_GOOD;
            if (c->orient_radius_px > 0.0 && r > c->orient_radius_px) m = EW_MASK_NO_ORIENT;
            if (c->beamstop_radius_px > 0.0 && r <= c->beamstop_radius_px) m = EW_MASK_BAD;
            if (c->beamstop_bar != EW_BAR_NONE && hb > 0.0) {
                double along = 0, across = 0;
                switch (c->beamstop_bar) {
                case EW_BAR_PX: along = dx, across = dy; break;
                case EW_BAR_MX: along = -dx, across = dy; break;
                case EW_BAR_PY: along = dy, across = dx; break;
                case EW_BAR_MY: along = -dy, across = dx; break;
                default: break;
                }
                if (along >= 0.0 && fabs(across) <= hb) m = EW_MASK_BAD;
            }
            if (c->gap_x_px > 0 && fabs(dx) < c->gap_x_px / 2.0) m = EW_MASK_BAD;
            if (c->gap_y_px > 0 && fabs(dy) < c->gap_y_px / 2.0) m = EW_MASK_BAD;
            if (c->dead_fraction > 0.0 && ew_rng_uniform(&rng) < c->dead_fraction) m = EW_MASK_BAD;
            d->mask[i] = m;
        }
    }
    return EW_OK;
}

void ew_detector_geometry_shifted(const ew_detector_t *d, double dx, double dy, float *s, float *solid_angle,
                                  float *polarization)
{
    EW_ASSERT(d != NULL && d->s != NULL);
    geometry(d, d->cx + dx, d->cy + dy, s, solid_angle, polarization, NULL);
}

void ew_detector_mask_counts(const ew_detector_t *d, size_t counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    for (size_t i = 0; i < d->npix; i++) counts[d->mask[i] <= 2 ? d->mask[i] : 2]++;
}

void ew_detector_volume_grid(const ew_detector_t *d, int n_req, int *n, double *ds)
{
    const double smax = d->s_max_corner;
    if (n_req > 0) {
        int m = n_req < 7 ? 7 : n_req;
        if (m % 2 == 0) m++;
        *n = m;
        *ds = smax / (m / 2 - 2);
        return;
    }
    double step = d->pixel_m / (d->distance_m * d->wavelength_a);
    int c = (int)ceil(smax / step) + 2;
    if (c < 2) c = 2;
    *n = 2 * c + 1;
    *ds = step;
}
