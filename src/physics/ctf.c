/* ewald physics: electron wavelength, interaction constant and CTF (see ctf.h). */
#include "physics/ctf.h"

#include <math.h>

/* CODATA 2018 */
#define H_PLANCK 6.62607015e-34
#define M_ELECTRON 9.1093837015e-31
#define E_CHARGE 1.602176634e-19
#define C_LIGHT 299792458.0

double ew_electron_wavelength(double voltage_v)
{
    EW_ASSERT(voltage_v > 0.0);
    double eV = E_CHARGE * voltage_v;
    double p = sqrt(2.0 * M_ELECTRON * eV * (1.0 + eV / (2.0 * M_ELECTRON * C_LIGHT * C_LIGHT)));
    return H_PLANCK / p * 1e10;
}

double ew_electron_sigma(double voltage_v)
{
    double lambda_m = ew_electron_wavelength(voltage_v) * 1e-10;
    double m = M_ELECTRON * (1.0 + E_CHARGE * voltage_v / (M_ELECTRON * C_LIGHT * C_LIGHT));
    /* rad / (V m) -> rad / (V A) */
    return 2.0 * EW_PI * m * E_CHARGE * lambda_m / (H_PLANCK * H_PLANCK) * 1e-10;
}

void ew_ctf_params_default(ew_ctf_params_t *p)
{
    p->voltage_v = 300e3;
    p->cs_mm = 2.7;
    p->amp_contrast = 0.07;
    p->defocus_u = 15000.0;
    p->defocus_v = 15000.0;
    p->astig_angle_deg = 0.0;
    p->phase_shift_deg = 0.0;
    p->bfactor = 0.0;
    p->focal_spread = 0.0;
    p->illum_angle = 0.0;
}

ew_status_t ew_ctf_params_check(const ew_ctf_params_t *p)
{
    if (!(p->voltage_v > 0.0) || !isfinite(p->voltage_v))
        return ew_fail(EW_ERR_ARG, "CTF: voltage = %g V is not positive", p->voltage_v);
    if (!(p->cs_mm >= 0.0) || !isfinite(p->cs_mm))
        return ew_fail(EW_ERR_ARG, "CTF: Cs = %g mm is not a non-negative number", p->cs_mm);
    if (!(p->amp_contrast >= 0.0 && p->amp_contrast < 1.0))
        return ew_fail(EW_ERR_ARG, "CTF: amplitude contrast = %g is outside [0, 1)", p->amp_contrast);
    if (!isfinite(p->defocus_u) || !isfinite(p->defocus_v) || !isfinite(p->astig_angle_deg) ||
        !isfinite(p->phase_shift_deg))
        return ew_fail(EW_ERR_ARG, "CTF: defocus U/V, angle or phase shift is not finite");
    if (!(p->bfactor >= 0.0) || !(p->focal_spread >= 0.0) || !(p->illum_angle >= 0.0))
        return ew_fail(EW_ERR_ARG, "CTF: B = %g, focal spread = %g, illumination angle = %g must be >= 0",
                       p->bfactor, p->focal_spread, p->illum_angle);
    return EW_OK;
}

double ew_ctf_defocus_at(const ew_ctf_params_t *p, double theta)
{
    double ang = p->astig_angle_deg * EW_PI / 180.0;
    return 0.5 * (p->defocus_u + p->defocus_v) + 0.5 * (p->defocus_u - p->defocus_v) * cos(2.0 * (theta - ang));
}

double ew_ctf_chi(const ew_ctf_params_t *p, double sx, double sy)
{
    double lam = ew_electron_wavelength(p->voltage_v);
    double s2 = sx * sx + sy * sy;
    double df = ew_ctf_defocus_at(p, atan2(sy, sx));
    double cs = p->cs_mm * 1e7;
    return EW_PI * lam * df * s2 - 0.5 * EW_PI * cs * lam * lam * lam * s2 * s2 + p->phase_shift_deg * EW_PI / 180.0;
}

double ew_ctf_envelope(const ew_ctf_params_t *p, double sx, double sy)
{
    double s2 = sx * sx + sy * sy, e = 1.0;
    double lam = ew_electron_wavelength(p->voltage_v);
    if (p->bfactor > 0.0) e *= exp(-0.25 * p->bfactor * s2);
    if (p->focal_spread > 0.0) {
        double t = EW_PI * lam * p->focal_spread;
        e *= exp(-0.5 * t * t * s2 * s2);
    }
    if (p->illum_angle > 0.0) {
        double s = sqrt(s2), cs = p->cs_mm * 1e7;
        double g = lam * ew_ctf_defocus_at(p, atan2(sy, sx)) * s - cs * lam * lam * lam * s2 * s;
        double q = EW_PI * p->illum_angle / lam;
        e *= exp(-q * q * g * g);
    }
    return e;
}

static double amp_phase(double a)
{
    return atan2(a, sqrt(1.0 - a * a));
}

double ew_ctf_eval(const ew_ctf_params_t *p, double sx, double sy)
{
    return -sin(ew_ctf_chi(p, sx, sy) + amp_phase(p->amp_contrast)) * ew_ctf_envelope(p, sx, sy);
}

double ew_ctf_eval_relion(const ew_ctf_params_t *p, double sx, double sy)
{
    return -ew_ctf_eval(p, sx, sy);
}

double ew_ctf_zero(const ew_ctf_params_t *p, int k, double theta)
{
    EW_ASSERT(k >= 1);
    double lam = ew_electron_wavelength(p->voltage_v);
    double df = ew_ctf_defocus_at(p, theta), cs = p->cs_mm * 1e7;
    double c0 = p->phase_shift_deg * EW_PI / 180.0 + amp_phase(p->amp_contrast);
    /* f(u) = a u^2 + b u + c0 with u = s^2; zeros where f(u) = n pi, u > 0. */
    double a = -0.5 * EW_PI * cs * lam * lam * lam, b = EW_PI * lam * df;
    int found = 0;
    if (a == 0.0) {
        if (b == 0.0) return -1.0;
        /* monotonic: the k-th multiple of pi beyond c0 in the direction of b */
        int n = b > 0.0 ? (int)floor(c0 / EW_PI) + k : (int)ceil(c0 / EW_PI) - k;
        return sqrt((n * EW_PI - c0) / b);
    }
    /* a < 0: f rises on [0, umax] (if b > 0) to fmax, then falls for ever */
    double umax = b > 0.0 ? -b / (2.0 * a) : 0.0;
    double fmax = a * umax * umax + b * umax + c0;
    for (int n = (int)floor(c0 / EW_PI) + 1; n * EW_PI <= fmax; n++) {
        double disc = b * b - 4.0 * a * (c0 - n * EW_PI);
        double u = (-b + sqrt(disc > 0.0 ? disc : 0.0)) / (2.0 * a);
        if (u > 0.0 && ++found == k) return sqrt(u);
    }
    for (int n = (int)floor(fmax / EW_PI);; n--) {
        double disc = b * b - 4.0 * a * (c0 - n * EW_PI);
        double u = (-b - sqrt(disc > 0.0 ? disc : 0.0)) / (2.0 * a);
        if (u > umax && ++found == k) return sqrt(u);
    }
}

void ew_ctf_fill_half(const ew_ctf_params_t *p, int nx, int ny, double pixel, float *out)
{
    int nh = nx / 2 + 1;
#pragma omp parallel for schedule(static)
    for (int iy = 0; iy < ny; iy++) {
        int ky = iy <= ny / 2 ? iy : iy - ny;
        double sy = ky / (ny * pixel);
        for (int ix = 0; ix < nh; ix++) {
            double sx = ix / (nx * pixel);
            out[(size_t)iy * nh + ix] = (float)ew_ctf_eval(p, sx, sy);
        }
    }
}
