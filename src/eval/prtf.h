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
 *
 * This is ewald's one PRTF: phasing (recon/phase.h, ew_phase_prtf) feeds
 * its aligned starts through the accumulator below.
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

/* The same PRTF from volumes given one at a time (memory independent of
 * their number): per voxel the sums of e^{i phi_k} F_k and of |F_k|^2. */
typedef struct {
    int n;
    int count;    /* volumes added */
    double *acc;  /* (n^3, 3): sum re, sum im, sum |F|^2; owned */
} ew_prtf_acc_t;

/* An empty accumulator for n^3 volumes (n >= 4). EW_ERR_ARG naming n,
 * EW_ERR_NOMEM; on error *a is left empty. Free with ew_prtf_acc_free. */
ew_status_t ew_prtf_acc_init(ew_prtf_acc_t *a, int n);
/* Add one centred complex volume (2 n^3 floats) times e^{i phi}. A voxel
 * where any added volume is not finite is skipped by the finish. */
void ew_prtf_acc_add(ew_prtf_acc_t *a, const float *vol, double phi);
/* The shell curve of what was added (at least one volume: EW_ERR_ARG
 * otherwise; one volume gives 1 in every shell with signal). Voxels whose
 * added amplitudes are all zero are skipped (a caller leaves unmeasured
 * voxels at 0 to exclude them); an empty shell has value 0 and count 0.
 * ds, shell_width and errors as ew_prtf; on error out is left empty. */
ew_status_t ew_prtf_acc_finish(const ew_prtf_acc_t *a, double ds, double shell_width, ew_shell_curve_t *out);
/* Free the sums (a may be NULL); a is left empty. */
void ew_prtf_acc_free(ew_prtf_acc_t *a);

#endif
