/* ewald eval: Fourier shell correlation and shell curves.
 *
 * Grids. Volumes are n^3 floats stored (z, y, x).
 *  - Real-space densities: voxel size apix (Angstrom); their DFT has
 *    frequency index k in (-n/2, n/2] per axis and s = |k| / (n apix).
 *  - Reciprocal-space (centred) volumes, as src/physics/slice.h: voxel
 *    (iz, iy, ix) sits at s = (ix - c, iy - c, iz - c) * ds with c = n / 2.
 *    Complex ones are interleaved (re, im) pairs, 2 n^3 floats.
 *
 * Shells. With |k| the distance from the origin in voxels and w the shell
 * width in voxels (w >= 1), a voxel belongs to shell j = round(|k| / w),
 * j = 0 .. K with K = floor((n / 2) / w) (voxels beyond shell K, the
 * corners of the cube, are not used). Shell j is reported at
 * s_j = j w ds (1/Angstrom, ds = 1 / (n apix) for densities), resolution
 * d_j = 1 / s_j in Angstrom.
 *
 * FSC_j = Re sum_{shell j} A conj(B) / sqrt(sum |A|^2 sum |B|^2), sums in
 * double. Two independent noise maps give FSC values scattered about 0
 * with standard deviation 1 / sqrt(N_j) (N_j voxels in the shell; for a
 * real map's Hermitian transform N_j counts both halves of each pair).
 */
#ifndef EW_EVAL_FSC_H
#define EW_EVAL_FSC_H

#include "core/core.h"

/* A curve over Fourier shells (FSC, PRTF). */
typedef struct {
    int nshell;      /* K + 1 shells, j = 0 .. K */
    double *s;       /* (nshell) shell centre |s|, 1/Angstrom */
    double *value;   /* (nshell) FSC or PRTF in the shell; 0 for an empty shell */
    double *count;   /* (nshell) voxels of the full n^3 grid in the shell */
} ew_shell_curve_t;

/* FSC of two real-space density maps a, b (n^3 each, n >= 4, voxel size
 * apix Angstrom > 0), computed from their real-to-complex FFTs (FFTW, plan
 * made once per call). shell_width in voxels, in [1, n/4]. On error out is
 * left empty and the message names the argument. */
ew_status_t ew_fsc_density(const float *a, const float *b, int n, double apix, double shell_width,
                           ew_shell_curve_t *out);

/* FSC of two centred complex reciprocal volumes fa, fb (2 n^3 floats each,
 * interleaved re, im; spacing ds 1/Angstrom > 0). Errors as above. */
ew_status_t ew_fsc_fourier(const float *fa, const float *fb, int n, double ds, double shell_width,
                           ew_shell_curve_t *out);

/* FSC of two centred intensity volumes, computed on sqrt(I) (the
 * self-supervised XFEL reference code's convention); voxels where either
 * volume is negative (the usual flag of an unmeasured voxel) or not finite
 * are skipped. Errors as above. */
ew_status_t ew_fsc_intensity(const float *ia, const float *ib, int n, double ds, double shell_width,
                             ew_shell_curve_t *out);

/* As ew_fsc_intensity, with each volume's shell mean of sqrt(I) removed
 * before correlating: sum (a - <a>)(b - <b>) / sqrt(sum (a - <a>)^2 sum (b - <b>)^2)
 * per shell. Positive amplitudes correlate strongly whatever their
 * structure, so the plain FSC of sqrt(I) stays high even for a spherically
 * symmetric guess; the shell-centred FSC measures only the structure within
 * each shell (a spherically symmetric volume scores 0). ewald reports both. */
ew_status_t ew_fsc_intensity_centred(const float *ia, const float *ib, int n, double ds, double shell_width,
                                     ew_shell_curve_t *out);

/* The first crossing of curve value below threshold beyond shell 0, with
 * linear interpolation in s between the last shell at or above and the first
 * below. Returns 1 and *s_cross if it crosses; returns 0 and *s_cross = the
 * last shell's s if the curve never falls below (the resolution is then
 * limited by the grid); returns -1 (and *s_cross = 0) if shell 1 is already
 * below. Empty shells are skipped. */
int ew_curve_crossing(const ew_shell_curve_t *c, double threshold, double *s_cross);

/* 1 / s_cross of ew_curve_crossing, in Angstrom; INFINITY when it returns -1. */
double ew_curve_resolution(const ew_shell_curve_t *c, double threshold);

/* Write the curve as a text table (atomically): comment lines
 * "# name resolution at <thr>: <d> A" for each threshold, then a header and
 * one row per shell: "shell s_inv_A d_A value n_voxels noise_1sigma"
 * (noise_1sigma = 1/sqrt(n_voxels)). On error no file is left and the
 * message names the path. */
ew_status_t ew_curve_write_table(const char *path, const ew_shell_curve_t *c, const char *name,
                                 const double *thresholds, int nthreshold);

/* Free the arrays (c may be NULL); c is left empty. */
void ew_shell_curve_free(ew_shell_curve_t *c);

/* ---- internal helpers shared by src/eval (not for other modules) ---- */

/* Allocate a curve for n and shell_width with s_j = j w ds, zero values. */
ew_status_t ew_shell_curve_alloc(ew_shell_curve_t *c, int n, double ds, double shell_width);
/* Shell index of a voxel at squared radius r2 (voxels^2), or -1 beyond K. */
int ew_shell_index(double r2, double shell_width, int nshell);

#endif
