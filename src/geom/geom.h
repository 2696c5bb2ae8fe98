/* ewald geom: rotations and rotation sets.
 *
 * Convention (once, for all of ewald): a unit quaternion q = (w, x, y, z)
 * and its matrix R = ew_quat_to_mat(q) map PARTICLE-frame coordinates to
 * LAB-frame coordinates: v_lab = R v_particle. A detector pixel's lab-frame
 * scattering vector s is seen in the particle's frame at R^T s. Matrices
 * are double[9], row-major (m[3*i + j] = R_ij). Composition follows the
 * matrices: ew_quat_mul(a, b) is the rotation "b first, then a", with
 * R(a*b) = R(a) R(b). q and -q are the same rotation: conversions,
 * random rotations and grids return the one with w >= 0; the algebraic
 * operations (ew_quat_mul, ew_quat_conj, ew_quat_normalize) return the
 * plain algebraic result, whose w may be negative.
 *
 * Angles are radians unless a name says deg.
 */
#ifndef EW_GEOM_GEOM_H
#define EW_GEOM_GEOM_H

#include <stddef.h>

#include "core/core.h"

typedef struct {
    double w, x, y, z;
} ew_quat_t;

/* ---- quaternions and matrices ---- */

/* q / |q|; the identity for a zero quaternion. */
ew_quat_t ew_quat_normalize(ew_quat_t q);
/* Hamilton product a*b: rotation b first, then a. */
ew_quat_t ew_quat_mul(ew_quat_t a, ew_quat_t b);
/* Conjugate = inverse for a unit quaternion. */
ew_quat_t ew_quat_conj(ew_quat_t q);
/* Rotation matrix of a unit quaternion (row-major, particle -> lab). */
void ew_quat_to_mat(ew_quat_t q, double m[9]);
/* Unit quaternion (w >= 0) of a rotation matrix (Shepperd's method, stable
 * for every rotation). m must be orthonormal with det +1. */
ew_quat_t ew_mat_to_quat(const double m[9]);
/* Rotate a vector: out = R(q) v (out may alias v). */
void ew_quat_rotate(ew_quat_t q, const double v[3], double out[3]);
/* Quaternion of a rotation by angle (radians) about axis (need not be unit;
 * a zero axis gives the identity). */
ew_quat_t ew_quat_from_axis_angle(const double axis[3], double angle);
/* Axis (unit) and angle in [0, pi] of q. The identity gives axis (0,0,1). */
void ew_quat_to_axis_angle(ew_quat_t q, double axis[3], double *angle);

/* c = a b (3x3, row-major; c may not alias a or b). */
void ew_mat_mul(const double a[9], const double b[9], double c[9]);
/* t = m^T (t may not alias m). */
void ew_mat_transpose(const double m[9], double t[9]);
/* out = m v (out may not alias v). */
void ew_mat_apply(const double m[9], const double v[3], double out[3]);

/* Geodesic angle between two rotations, in [0, pi]: 2 acos(|a.b|). */
double ew_quat_angle(ew_quat_t a, ew_quat_t b);

/* ---- the 6D representation (Zhou et al., CVPR 2019) ----
 * d6 holds two 3-vectors a1 = d6[0..2], a2 = d6[3..5]. Gram-Schmidt gives
 * b1 = a1/|a1|, b2 = normalize(a2 - (b1.a2) b1), b3 = b1 x b2, and the
 * matrix has ROWS b1, b2, b3 (PyTorch3D's rotation_6d_to_matrix, which the
 * self-supervised XFEL reference code uses). */
void ew_rot6d_to_mat(const double d6[6], double m[9]);
/* The inverse on rotations: d6 = first two rows of m. */
void ew_mat_to_rot6d(const double m[9], double d6[6]);

/* ---- RELION Euler angles (ZYZ, degrees) ----
 * As RELION's euler.cpp Euler_angles2matrix(rot, tilt, psi): the matrix
 * A = Rz(psi) Ry(tilt) Rz(rot), which RELION applies to map a 3D reference
 * onto the image (projection) frame. */
void ew_euler_relion_to_mat(double rot_deg, double tilt_deg, double psi_deg, double m[9]);
/* Inverse of the above (RELION's Euler_matrix2angles), with tilt in
 * [0, 180]; at tilt 0 or 180 psi carries the whole in-plane angle. */
void ew_mat_to_euler_relion(const double m[9], double *rot_deg, double *tilt_deg, double *psi_deg);

/* ---- random and gridded rotation sets ---- */

/* A uniformly random rotation (Shoemake 1992, "Uniform random rotations"). */
ew_quat_t ew_quat_random(ew_rng_t *r);

/* A rotation grid: rotations with quadrature weights. */
typedef struct {
    size_t n;          /* number of rotations */
    int level;         /* refinement level n of the 600-cell (0: not a 600-cell grid) */
    ew_quat_t *quat;   /* (n) unit quaternions, w >= 0 */
    double *weight;    /* (n) quadrature weights, sum = 1 */
    double spacing;    /* typical angle between neighbours, radians */
} ew_rotgrid_t;

/* The refined 600-cell grid of level n >= 1, as Dragonfly's make_quaternion
 * builds it: 10 (5 n^3 + n) rotations (one of each +-q pair) with its
 * quadrature weights (normalized to sum 1). Errors on n < 1 or n > 40. */
ew_status_t ew_rotgrid_600cell(int level, ew_rotgrid_t *g);
/* n uniformly random rotations from stream (seed, stream), equal weights. */
ew_status_t ew_rotgrid_random(size_t n, uint64_t seed, ew_rotgrid_t *g);
/* Index of the grid rotation nearest to q; its angle in *angle if not NULL. */
size_t ew_rotgrid_nearest(const ew_rotgrid_t *g, ew_quat_t q, double *angle);
/* Free the arrays (g may be NULL); g is left empty. */
void ew_rotgrid_free(ew_rotgrid_t *g);

#endif
