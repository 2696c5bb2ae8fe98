/* ewald eval: phase-retrieval transfer function (PRTF).
 *
 * Given K independently phased reconstructions F_k of the same object as
 * centred complex reciprocal volumes (fsc.h conventions), the PRTF of a
 * voxel is
 *     |(1/K) sum_k F_k e^{i phi_k}| / sqrt((1/K) sum_k |F_k|^2),
 * (Chapman et al., JOSA A 23, 1179 (2006)), averaged over the voxels of each
 * Fourier shell. phi_k removes the global phase offset of reconstruction k
 * relative to the first: phi_k = -arg sum_s F_k conj(F_0) (phi_0 = 0).
 * Translations (phase ramps) and the enantiomer (complex conjugate) must
 * already be aligned (align.h). The resolution is where the shell PRTF
 * first falls below 1/e (EW_PRTF_THRESHOLD).
 */
#ifndef EW_EVAL_PRTF_H
#define EW_EVAL_PRTF_H

#include "eval/fsc.h"

#define EW_PRTF_THRESHOLD 0.36787944117144233 /* 1/e */

/* PRTF of nvol >= 2 volumes vols[k] (2 n^3 floats each, interleaved re, im;
 * n >= 4, spacing ds 1/Angstrom > 0, shell_width in [1, n/4] voxels). With
 * align_phase = 0 the phases are used as given. Voxels with all-zero
 * amplitude are skipped. On error out is left empty and the message names
 * the argument. Resolution: ew_curve_resolution(out, EW_PRTF_THRESHOLD). */
ew_status_t ew_prtf(const float *const *vols, int nvol, int n, double ds, double shell_width,
                    int align_phase, ew_shell_curve_t *out);

#endif
