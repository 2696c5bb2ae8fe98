/* ewald eval: aligning two volumes (rotation, hand and, for densities,
 * translation).
 *
 * Volumes are n^3 floats stored (z, y, x) with centre c = n / 2 (as
 * src/physics/slice.h). Positions are voxel coordinates p = (x, y, z).
 *
 * The result maps the MOVING volume B onto the REFERENCE A:
 *     B'(p) = B(H R^T (p - c - t) + c),
 * with R = R(q) the rotation (particle -> lab convention of geom.h: B' is
 * B turned by R), H = I (hand 0) or -I (hand 1), and t the translation in
 * voxels (zero for intensities). ew_align_apply computes B'.
 *
 * Hands. For intensities (centred reciprocal volumes) the other hand is
 * the inversion s -> -s of B composed with a rotation. Friedel's law makes
 * that trivial for centrosymmetric volumes: both hands then score the same
 * and hand 0 is reported (hand 1 wins only by more than EW_ALIGN_HAND_TIE). For densities (real-space maps) the other hand
 * is the enantiomer B(-x) (in Fourier space the complex conjugate).
 *
 * Score: the Pearson correlation over the q-range rmin <= |k| <= rmax
 * (fractions of the Nyquist radius n/2):
 *  - intensities: over the reference's voxels in that shell range, of A
 *    against B sampled (trilinear) at H R^T s. With shell_normalize, each
 *    volume first has every Fourier shell's mean subtracted and is divided
 *    by the shell's standard deviation, so the isotropic fall-off carries no
 *    weight and only the anisotropy decides the orientation; shell
 *    statistics do not change under rotation, so normalising B before
 *    turning it is exact up to interpolation. (Shells that hold only the
 *    faint tails of the signal are amplified as much as any other: choose
 *    rmax inside the signal, or switch the option off.)
 *  - densities: of the band-passed maps (Fourier coefficients in the
 *    q-range), maximised over the translation t by an FFT cross-correlation
 *    (integer shift, then a parabolic sub-voxel fit per axis).
 *
 * Search. (1) A coarse search over the refined 600-cell at level
 * coarse_level on downsampled copies (coarse_n^3): intensities are
 * resampled over the same q-range (average of 8 trilinear samples per coarse
 * voxel); densities are searched on their Fourier amplitudes |F| (which do
 * not depend on the translation, and which cannot tell the hands apart),
 * resampled the same way (with shell_normalize, only each shell's mean is
 * subtracted there: dividing by the shell's spread would give the faint,
 * rounding-limited high-q amplitudes of a smooth map full weight). (2) The ncandidates best coarse rotations per
 * hand (suppressing neighbours within 2 grid spacings) are refined by a
 * pattern search on the coarse copies (densities: with the translation, on
 * Fourier-cropped maps, for both hands), (3) the best of each hand is
 * refined at full size until the step is below tol_deg. OpenMP runs the
 * coarse search and the resampling; FFTW plans are made once per size.
 */
#ifndef EW_EVAL_ALIGN_H
#define EW_EVAL_ALIGN_H

#include "geom/geom.h"

/* Score margin by which hand 1 must beat hand 0 to be reported. */
#define EW_ALIGN_HAND_TIE 1e-4

typedef enum {
    EW_ALIGN_INTENSITY = 0, /* centred reciprocal-space volumes (I or |F|) */
    EW_ALIGN_DENSITY = 1    /* real-space density maps */
} ew_align_kind_t;

typedef struct {
    double rmin, rmax;   /* q-range as fractions of the Nyquist radius n/2 (0.05, 0.9) */
    int coarse_n;        /* size of the downsampled copies (32; n if n is smaller) */
    int coarse_level;    /* 600-cell level of the coarse rotation set (5: 6300 rotations) */
    int ncandidates;     /* coarse optima refined per hand (4) */
    int try_hand;        /* also try the other hand (1) */
    int shell_normalize; /* intensities: normalise each Fourier shell (1) */
    double tol_deg;      /* final pattern-search step, degrees (0.05) */
} ew_align_opts_t;

void ew_align_opts_default(ew_align_opts_t *o);

typedef struct {
    ew_quat_t q;              /* rotation R (w >= 0) */
    int hand;                 /* 0 or 1 (see above) */
    double shift[3];          /* t = (x, y, z) in voxels; 0 for intensities */
    double score;             /* Pearson correlation of the winner */
    double score_other_hand;  /* best score of the other hand; NAN if not tried */
    double coarse_spacing_deg;/* neighbour spacing of the coarse rotation set */
    double seconds;           /* wall time of the alignment */
} ew_align_result_t;

/* Align mov onto ref (both n^3, n >= 8) with opts (NULL: defaults). Non-
 * finite voxels count as 0 (intensities: non-finite reference voxels are
 * left out of the score). The inputs are not modified. On error res is
 * zeroed and the message names the argument. */
ew_status_t ew_align_volumes(ew_align_kind_t kind, const float *ref, const float *mov, int n,
                             const ew_align_opts_t *opts, ew_align_result_t *res);

/* out(p) = trilinear in(m (p - c - shift) + c) for every voxel p of the n^3
 * grid (0 where any trilinear corner is outside); m any 3x3 row-major
 * matrix (improper allowed), shift NULL for zero. out must not alias in. */
void ew_vol_transform(const float *in, int n, const double m[9], const double shift[3], float *out);

/* B' of the header comment for a result: out = mov transformed. */
void ew_align_apply(const ew_align_result_t *res, const float *mov, int n, float *out);

/* The sampling matrix H R^T of a rotation and hand. */
void ew_align_matrix(ew_quat_t q, int hand, double m[9]);

/* Score of one rotation and hand with the rules above, at full size
 * (densities: maximised over the translation, returned in shift if not
 * NULL). For checks and for reporting; errors as ew_align_volumes. */
ew_status_t ew_align_score(ew_align_kind_t kind, const float *ref, const float *mov, int n,
                           const ew_align_opts_t *opts, ew_quat_t q, int hand, double *score,
                           double shift[3]);

#endif
