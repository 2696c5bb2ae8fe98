/* ewald physics: X-ray structure factors of atomic models.
 *
 *   F(s) = sum_j w_j f_j(|s|) exp(-beta_Bj |s|^2) exp(+2 pi i s . r_j)
 *
 * with s = 1/d (1/Angstrom, no 2 pi; q = 2 pi s), r_j in Angstrom, f_j the
 * Waasmaier-Kirfel form factor (formfactor.h; anomalous terms ignored),
 * w_j the occupancy (or 1) and beta_Bj = B_j / 4 when B factors are used
 * (0 otherwise). F is in electrons; the intensity I(s) = |F(s)|^2 is in
 * electrons^2, and I(0) = (sum_j w_j f_j(0))^2.
 *
 * Two paths:
 *   ew_scatter_direct*   exact summation over atoms at arbitrary points
 *                        (OpenMP over points, SIMD over atoms);
 *   ew_scatter_volume    a whole reciprocal volume (slice.h grid) by
 *                        spreading each atom's Gaussian-sum electron
 *                        density, broadened by an extra Gaussian B, on a
 *                        periodic real-space grid of side 1/ds, one real
 *                        FFT, and exact division by the broadening
 *                        Gaussian. The periodic box samples F exactly at
 *                        the grid points, so no interpolation is involved;
 *                        the only errors are the Gaussian truncation and
 *                        aliasing, both set by `tol`.
 */
#ifndef EW_PHYSICS_SCATTER_H
#define EW_PHYSICS_SCATTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "io/structure.h"
#include "physics/formfactor.h"
#include "physics/slice.h"

typedef struct {
    int use_ions;      /* ionic form factors where the table has them (0: neutral atoms, the default) */
    int use_bfactor;   /* multiply by the Debye-Waller factor exp(-B s^2 / 4) (default 0) */
    int ignore_occupancy; /* weight every atom 1 instead of its occupancy (default 0) */
} ew_atoms_options_t;

/* Scatterers ready for structure-factor sums. */
typedef struct {
    size_t n;
    double *xyz;          /* (n, 3) positions, Angstrom */
    double *weight;       /* (n) occupancy (or 1) */
    double *beta_b;       /* (n) B_j / 4 in A^2 (all 0 without B factors) */
    int *species;         /* (n) index into ff */
    int n_species;
    ew_formfactor_t *ff;  /* (n_species) distinct form factors */
    double electrons;     /* sum_j w_j f_j(0): F(0), electrons */
} ew_atoms_t;

/* Build scatterers from arrays: xyz (n, 3) Angstrom, z (n) atomic numbers;
 * charge, occupancy, bfactor may be NULL (0, 1, 0). Every (Z, charge)
 * must have a form factor: an unknown element gives EW_ERR_RANGE naming
 * it and the atom index. With use_ions, an ion the table lacks falls back
 * to the neutral atom (one warning). On error *a is left empty. */
ew_status_t ew_atoms_init(ew_atoms_t *a, size_t n, const float *xyz, const uint8_t *z, const int8_t *charge,
                          const float *occupancy, const float *bfactor, const ew_atoms_options_t *opts);

/* As ew_atoms_init from a structure (io/structure.h); the message of an
 * unknown element names the structure's source file. */
ew_status_t ew_atoms_from_structure(const ew_structure_t *s, const ew_atoms_options_t *opts, ew_atoms_t *a);

/* Translate so the electron-weighted centroid (weights w_j f_j(0)) is at
 * the origin (intensities are unchanged; phases then refer to it). */
void ew_atoms_center(ew_atoms_t *a);

/* Largest distance of an atom from the origin, Angstrom. */
double ew_atoms_radius(const ew_atoms_t *a);

/* Free the arrays (a may be NULL); a is left empty. */
void ew_atoms_free(ew_atoms_t *a);

/* Exact F at npts points s (npts, 3), 1/Angstrom: F[2k] = Re, F[2k+1] = Im
 * (electrons). Threads over points; the result does not depend on the
 * thread count. Returns EW_ERR_NOMEM if scratch space cannot be had. */
ew_status_t ew_scatter_direct(const ew_atoms_t *a, const float *s, size_t npts, double *F);

/* Exact I = |F|^2 (electrons^2) at npts points, as ew_scatter_direct. */
ew_status_t ew_scatter_direct_intensity(const ew_atoms_t *a, const float *s, size_t npts, float *I);

typedef struct {
    int oversample;   /* FFT grid >= oversample * n points per axis (default 0 -> 2; 2..4) */
    double tol;       /* truncation / aliasing level relative to the peak (default 0 -> 1e-8) */
    int threads;      /* spreading threads (0: OpenMP's default); the FFT always runs as 4
                         threads, so the result is bit-identical for any thread count */
} ew_scatter_volume_options_t;

/* Fill the volume I (allocated by the caller with ew_rvol_alloc: n, ds)
 * with |F(s)|^2 (electrons^2) at its grid points, by the fast path.
 * If F_re and F_im are not NULL (n^3 floats each, same layout) they get
 * F's real and imaginary parts (electrons). opts may be NULL. The grid
 * must not reach the FFT grid's Nyquist limit (always true for
 * oversample >= 2). Returns EW_ERR_NOMEM if the FFT grid cannot be
 * allocated; *I is then unchanged. Agrees with ew_scatter_direct to
 * ~1e-6 relative where |F|^2 is not near a zero (tested at 1e-3). */
ew_status_t ew_scatter_volume(const ew_atoms_t *a, ew_rvol_t *I, float *F_re, float *F_im,
                              const ew_scatter_volume_options_t *opts);

/* Orientation-averaged intensity <|F(s)|^2> over all directions of s at
 * |s| = smag[k] (Debye formula, exact; O(n^2) per point: for checks on
 * small structures). out[k] in electrons^2. */
ew_status_t ew_scatter_debye(const ew_atoms_t *a, const double *smag, size_t nk, double *out);

#endif
