/* ewald physics: electron scattering factors and projected atomic potentials.
 *
 * Peng, Ren, Dudarev & Whelan (1996), Acta Cryst. A52, 257-276, Table 1:
 * the elastic electron scattering factor of a neutral atom
 *     f_e(s) = sum_{i<5} a_i exp(-b_i s^2),  s = sin(theta)/lambda (1/A), f_e in A.
 * The table (src/physics/peng_table.c) is generated from
 * data/tables/peng1996_electron.tsv by scripts/gen_peng_table.sh.
 *
 * Potential. With C = h^2 / (2 pi m0 e) = 47.8776 V A^2 the atom's
 * Coulomb potential is V(r) = C * FT^-1[f_e(q/2)](r) (q = 1/d = 2s), so its
 * integral over space is C f_e(0) (V A^3). Projected along the beam, each
 * Gaussian term becomes a 2D Gaussian:
 *     V_z(r) = C sum_i a_i (4 pi / b'_i) exp(-4 pi^2 r^2 / b'_i)   (V A),
 * with b'_i = b_i + B for an isotropic Debye-Waller factor B (A^2), so that
 * the projected potential integrates over the plane to C f_e(0) (V A^3).
 *
 * Pixels. Images here hold the AVERAGE of V_z over each pixel's square
 * (V A): the 2D Gaussians are integrated exactly over the pixel with erf
 * (the limit of "compute on a finer grid, then bin"), so coarse pixels
 * lose nothing and sub-pixel positions are exact. Pixel (i, j) of an image
 * is the square [i - 1/2, i + 1/2] x [j - 1/2, j + 1/2] in pixel units
 * (its centre is at integer coordinates); images are row-major, y slow.
 *
 * Phase: an electron passing through picks up the phase sigma(V) * V_z
 * (radians), with sigma from ew_electron_sigma() in ctf.h.
 */
#ifndef EW_PHYSICS_PENG_H
#define EW_PHYSICS_PENG_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define EW_PENG_ZMAX 98
#define EW_PENG_NG 5
/* h^2 / (2 pi m0 e) in V A^2 (CODATA 2018): potential = C * FT^-1[f_e]. */
#define EW_PENG_C_VA2 47.877647305682395
/* Gaussians are summed out to this many standard deviations. */
#define EW_PENG_CUTOFF_SIGMA 4.5

typedef struct {
    float a[EW_PENG_NG]; /* A */
    float b[EW_PENG_NG]; /* A^2 */
} ew_peng_coef_t;

/* The table, indexed by atomic number (row 0 is zero). */
extern const ew_peng_coef_t ew_peng_table[EW_PENG_ZMAX + 1];

/* Coefficients of element z, or NULL when z is outside 1..98. */
const ew_peng_coef_t *ew_peng_coef(int z);

/* f_e(s) in A at s = sin(theta)/lambda (1/A); z must be in 1..98. */
double ew_peng_fe(int z, double s);

/* Projected potential (V A) at distance r (A) from an atom of element z
 * with Debye-Waller factor b_factor (A^2, >= 0); z must be in 1..98. */
double ew_peng_projected(int z, double b_factor, double r);

/* Integral of the atom's potential over space (= of its projection over
 * the plane), C f_e(0), in V A^3; z must be in 1..98. */
double ew_peng_volume_integral(int z);

/* Approximate standard atomic weight (g/mol) of element z (exact to 0.01
 * for Z <= 30 and the common heavy atoms of biology, 2.5 Z otherwise);
 * used only for excluded volumes. */
double ew_peng_atomic_mass(int z);

/* A set of atoms ready to be projected: each atom is ng 2D Gaussians
 *     amp_g * (k_g^2 / pi) exp(-k_g^2 r^2),  integral amp_g  (units of amp)
 * so one kernel serves potentials (amp in V A^3, ng = 5) and excluded
 * volumes (amp in A^3, ng = 1). */
typedef struct {
    size_t n;     /* atoms */
    int ng;       /* Gaussians per atom, 1..EW_PENG_NG */
    float *xyz;   /* (n, 3) coordinates in the particle frame, A */
    float *k;     /* (n, ng) k = 2 pi / sqrt(b'), 1/A */
    float *amp;   /* (n, ng) integral of each Gaussian over the plane */
    float *reach; /* (n) largest cutoff radius of the atom's Gaussians, A */
} ew_peng_atoms_t;

/* Build the potential Gaussians of n atoms: xyz (n,3) A; z (n) atomic
 * numbers; b_factor (n) A^2 or NULL (0); occupancy (n) or NULL (1);
 * b_extra (A^2, >= 0) is added to every atom's B (blur for a given
 * resolution). Coordinates are shifted by -shift[3] (shift may be NULL).
 * On error (an atomic number outside 1..98, a negative or non-finite B,
 * no memory) *a is left empty and the message names the atom index. */
ew_status_t ew_peng_atoms_init(ew_peng_atoms_t *a, const float *xyz, const uint8_t *z, const float *b_factor,
                               const float *occupancy, size_t n, double b_extra, const double shift[3]);

/* Build the excluded-volume Gaussians of the same atoms: each atom a
 * normalized 2D Gaussian of standard deviation width (A) times its volume
 * volume_per_da * (mass(z) + implicit hydrogens) (A^3); the projection of
 * these is the particle's thickness along the beam (A). Errors as above. */
ew_status_t ew_peng_atoms_init_volume(ew_peng_atoms_t *a, const float *xyz, const uint8_t *z,
                                      const float *occupancy, size_t n, double volume_per_da, double width,
                                      const double shift[3]);

/* Free (a may be NULL); a is left empty. */
void ew_peng_atoms_free(ew_peng_atoms_t *a);

/* Add the pixel-averaged projection of the atoms, rotated by R (row-major,
 * particle -> lab: x_lab = R x) and centred at pixel coordinates (cx, cy)
 * of img, into img (nx x ny, row-major, values in amp units per A^2,
 * i.e. V A for potentials). Projection is along lab z. pixel is the pixel
 * size in A. Parts falling outside img are dropped. Not thread-safe on the
 * same img. */
void ew_peng_project(const ew_peng_atoms_t *a, const double R[9], double cx, double cy, double pixel, float *img,
                     int nx, int ny);

#endif
