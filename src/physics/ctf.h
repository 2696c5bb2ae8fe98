/* ewald physics: electron optics and the contrast transfer function.
 *
 * Wavelength (relativistic): lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))
 * (0.019687 A at 300 kV). Interaction constant sigma = 2 pi m e lambda / h^2
 * with the relativistic mass m = m0 (1 + e V / (m0 c^2)) (6.5262e-4 rad/(V A)
 * at 300 kV): a projected potential V_z (V A) shifts the phase by sigma V_z.
 *
 * Aberration phase, s = (sx, sy) in 1/A (no 2 pi), s = |s|, theta = atan2(sy, sx):
 *   defocus(theta) = (dU + dV)/2 + (dU - dV)/2 cos(2 (theta - angle_ast))
 *   chi(s) = pi lambda defocus(theta) s^2 - (pi/2) Cs lambda^3 s^4 + phase_shift
 * Defocus is positive for UNDERfocus (CTFFIND4, cisTEM and RELION agree on
 * dU, dV, the angle and this sign; the angle is measured from +x towards +y
 * of the image array, y being the row index).
 *
 * Sign convention of the CTF itself (the one place the programs differ):
 *   CTFFIND4 / cisTEM:  CTF(s) = -[ sqrt(1 - A^2) sin chi + A cos chi ]
 *                              = -sin(chi + atan(A / sqrt(1 - A^2)))
 *   RELION (ctf.h):     CTF(s) = +sin(chi + atan(A / sqrt(1 - A^2)))
 * i.e. RELION's CTF is the negative of cisTEM's (RELION stores -defocus
 * internally and returns -sin of a negated argument). ewald's physical image
 * follows cisTEM's sign: for a weak phase object with amplitude contrast A,
 * the intensity is I(s) = delta(s) + 2 CTF_cisTEM(s) sigma V_z(s) / sqrt(1-A^2),
 * so protein is dark at underfocus. STAR files carry the parameters
 * (dU, dV, angle, Cs, A, phase shift in RELION's units), which are the same in
 * both conventions; ew_ctf_eval_relion() gives RELION's sign when a
 * program needs to apply RELION's CTF.
 *
 * Envelopes (multiply the CTF; all 1 when their parameter is 0):
 *   B-factor:          exp(-B s^2 / 4)                      (RELION's convention)
 *   temporal (focal spread Delta, A):   exp(-(pi lambda Delta)^2 s^4 / 2)
 *   spatial (illumination semi-angle alpha, rad):
 *                      exp(-(pi alpha / lambda)^2 (lambda defocus s - Cs lambda^3 s^3)^2)
 */
#ifndef EW_PHYSICS_CTF_H
#define EW_PHYSICS_CTF_H

#include <stddef.h>

#include "core/core.h"

/* Relativistic electron wavelength in A for an accelerating voltage in V. */
double ew_electron_wavelength(double voltage_v);
/* Interaction constant sigma in rad / (V A) for an accelerating voltage in V. */
double ew_electron_sigma(double voltage_v);

typedef struct {
    double voltage_v;       /* accelerating voltage, V (300e3) */
    double cs_mm;           /* spherical aberration, mm (2.7) */
    double amp_contrast;    /* amplitude contrast fraction A, 0..1 (0.07) */
    double defocus_u;       /* A, positive = underfocus */
    double defocus_v;       /* A */
    double astig_angle_deg; /* angle of the U axis from +x, degrees */
    double phase_shift_deg; /* phase plate shift, degrees (0) */
    double bfactor;         /* envelope B-factor, A^2 (0 = none) */
    double focal_spread;    /* temporal coherence: focal spread Delta, A (0 = none) */
    double illum_angle;     /* spatial coherence: illumination semi-angle, rad (0 = none) */
} ew_ctf_params_t;

/* Typical 300 kV Krios values: Cs 2.7 mm, A 0.07, defocus 15000 A, no
 * astigmatism, no envelopes. */
void ew_ctf_params_default(ew_ctf_params_t *p);

/* Check the parameters: EW_ERR_ARG naming the field and value. */
ew_status_t ew_ctf_params_check(const ew_ctf_params_t *p);

/* Defocus (A) along direction theta (radians from +x). */
double ew_ctf_defocus_at(const ew_ctf_params_t *p, double theta);

/* chi(s) in radians (phase shift included, amplitude-contrast phase not). */
double ew_ctf_chi(const ew_ctf_params_t *p, double sx, double sy);

/* Product of the B-factor, temporal and spatial envelopes at s. */
double ew_ctf_envelope(const ew_ctf_params_t *p, double sx, double sy);

/* The CTF at s (1/A), cisTEM/CTFFIND4 sign, envelopes included. */
double ew_ctf_eval(const ew_ctf_params_t *p, double sx, double sy);
/* The same with RELION's sign (= -ew_ctf_eval). */
double ew_ctf_eval_relion(const ew_ctf_params_t *p, double sx, double sy);

/* Spatial frequency (1/A) of the k-th zero (k >= 1) of the CTF (no
 * envelopes) along direction theta, solved in closed form from
 * chi(s) + atan(A/sqrt(1-A^2)) = k pi; returns -1 when there is none. */
double ew_ctf_zero(const ew_ctf_params_t *p, int k, double theta);

/* Fill out (ny rows x (nx/2 + 1), the layout of an r2c FFT of an nx x ny
 * real image with pixel size pixel, A) with the CTF, cisTEM sign. */
void ew_ctf_fill_half(const ew_ctf_params_t *p, int nx, int ny, double pixel, float *out);

#endif
