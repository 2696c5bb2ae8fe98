/* ewald physics: vitreous ice around the particles.
 *
 * The ice's projected potential at a pixel is
 *     V_ice(x, y) = Vbar t_eff(x, y) + sqrt(t_eff(x, y)) G(x, y)        (V A)
 * where t_eff = max(t - d, 0) is the ice thickness t (A, a smooth field)
 * minus the thickness d of protein in the way (particles displace ice),
 * Vbar = rho F(0) is the mean inner potential of amorphous ice (4.6 V), and
 * G is a Gaussian random field for 1 A of ice (variances add over slabs of
 * independent ice, hence sqrt(t)). G's power spectrum, per A of thickness,
 *     P(s) = rho |F(s)|^2 S(s)           ((V A)^2 A^2 per A of thickness)
 * is that of rho = 0.0314 molecules / A^3 (0.94 g/cm^3, low-density
 * amorphous ice) of water molecules with the spherical scattering potential
 * F(s) = C (f_O(s/2) + 2 f_H(s/2)) (Peng 1996 factors, s = 1/d) and a
 * two-Gaussian structure factor in the spirit of Parakeet's amorphous-ice
 * model (Parkhurst et al.):
 *     S(s) = 1 - (1 - S0) exp(-s^2 / (2 w0^2))
 *            + A1 exp(-(s - s1)^2 / (2 w1^2)) + A2 exp(-(s - s2)^2 / (2 w2^2)),
 * with the two peaks at the diffraction rings of LDA ice, 3.7 A (s1 = 0.269,
 * Q = 1.69 1/A) and 2.1 A (s2 = 0.477), S0 = 0.03 (nearly incompressible),
 * w0 = 0.12, A1 = 1.38, w1 = 0.02, A2 = 0.2, w2 = 0.06 (1/A): the ring of
 * vitreous ice appears at 3.7 A in simulated power spectra as in real ones.
 * The field is pixel-averaged (its spectrum carries the pixel's sinc^2).
 *
 * Thickness: t(x, y) = t_mean (1 + rel_sd z(x, y)) with z a smooth unit-
 * variance field (cubic B-spline through N(0,1) knots spaced by the
 * correlation length, normalized pointwise to unit variance), or
 * t = t_mean w(x, y) from a weight map w (mean 1), e.g. one derived from a
 * real micrograph Icebreaker-style (ew_ice_weight_from_micrograph).
 */
#ifndef EW_PHYSICS_ICE_H
#define EW_PHYSICS_ICE_H

#include <stddef.h>
#include <stdint.h>

#include <fftw3.h>

#include "core/core.h"

typedef struct {
    double thickness;        /* mean thickness, A (300); 0 = no ice */
    double thickness_rel_sd; /* relative spread of the smooth thickness field (0.1) */
    double thickness_corr;   /* its correlation length (B-spline knot spacing), A (2000) */
    double density;          /* water molecules per A^3 (0.0314) */
    double inelastic_mfp;    /* inelastic mean free path for zero-loss attenuation, A (3500 at 300 kV; 0 = off) */
} ew_ice_params_t;

void ew_ice_params_default(ew_ice_params_t *p);
/* EW_ERR_ARG naming the field and value. */
ew_status_t ew_ice_params_check(const ew_ice_params_t *p);

/* Structure factor S(s) of the model (s = 1/d, 1/A). */
double ew_ice_structure_factor(double s);
/* Spherical water-molecule potential F(s), V A^3. */
double ew_ice_molecule_potential(double s);
/* Mean inner potential rho F(0), V. */
double ew_ice_mean_potential(const ew_ice_params_t *p);
/* P(s) per A of thickness, (V A)^2 A^2 / A (no pixel factor). */
double ew_ice_psd(const ew_ice_params_t *p, double s);

/* A generator of G fields of one shape, made once (FFTW plan, spectrum). */
typedef struct {
    int nx, ny;
    double pixel;       /* A */
    float *amp;         /* (ny, nx/2+1) sqrt(P(s) sinc^2 / (N pixel^2)) */
    fftwf_complex *buf; /* (ny, nx/2+1) */
    fftwf_plan plan;    /* c2r, buf -> a float array of nx*ny (new-array execute) */
} ew_ice_synth_t;

/* Prepare for nx x ny images of pixel size pixel (A); measure = 1 plans
 * with FFTW_MEASURE (slow to plan, up to 10x faster to run at 4096^2),
 * 0 with FFTW_ESTIMATE. On error *g is left empty. Planning is serialized
 * (FFTW's planner is not thread-safe). */
ew_status_t ew_ice_synth_init(ew_ice_synth_t *g, const ew_ice_params_t *p, int nx, int ny, double pixel,
                              int measure);
/* Draw one field G (V A for 1 A of ice, zero mean) into out (nx*ny floats,
 * 64-byte aligned as from ew_alloc_array). Row iy of the spectrum uses the
 * RNG stream (seed, stream0 + iy), so the result does not depend on the
 * thread count. Not thread-safe on the same g. */
void ew_ice_synth_field(ew_ice_synth_t *g, uint64_t seed, uint64_t stream0, float *out);
void ew_ice_synth_free(ew_ice_synth_t *g);

/* Fill t (nx*ny, A) with a smooth thickness field for images of pixel
 * size pixel: from weight (wnx x wny, any size, bilinearly resampled and
 * scaled to mean 1) when weight is not NULL, else from the random model
 * with r. Values are clamped at 0. */
ew_status_t ew_ice_thickness_field(const ew_ice_params_t *p, int nx, int ny, double pixel, const float *weight,
                                   int wnx, int wny, ew_rng_t *r, float *t);

/* Icebreaker-style weight map from a real micrograph (nx x ny, pixel A):
 * low-pass with a Gaussian of standard deviation lowpass (A), group the
 * pixels into `levels` equal-count intensity levels (as Icebreaker's
 * K-means groups) and give each level its mean smoothed intensity L; then
 * weight = 1 + span (mean(L) - L) / (max L - min L): darker (fewer
 * zero-loss electrons) means thicker ice; the mean weight is 1 and its
 * range is span. On error weight is left unchanged. */
ew_status_t ew_ice_weight_from_micrograph(const float *img, int nx, int ny, double pixel, double lowpass,
                                          int levels, double span, float *weight);

#endif
