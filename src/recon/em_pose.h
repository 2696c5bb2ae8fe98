/* ewald recon: cryo-EM pose estimation -- projection matching against a
 * reference map, and a learned pose encoder (CNN to the 6D rotation
 * representation).
 *
 * Projection matching. The reference map (n^3, centre voxel n/2, the
 * frame of em_recon.h) is zero-padded 2x and Fourier transformed once;
 * the model of a particle with pose R (particle -> lab = RELION's A),
 * shift o (pixels: particle centre = n/2 - o) and CTF is
 *     M(k) = CTF(k) S_R(k) exp(+2 pi i k.o / n),  S_R(k) = F_map(R^T (kx, ky, 0))
 * (central slice, trilinear interpolation in the padded transform). The
 * score of (R, o) is the normalized cross-correlation
 *     CC = Re sum_k F_img(k) conj M(k) / sqrt(sum_k |M(k)|^2)
 * over 0 < |k| < k_max (the likelihood score for white Gaussian noise up
 * to constants), evaluated for every integer shift at once by one inverse
 * FFT of F_img conj(CTF S_R) (shifts within max_shift), peak refined to
 * sub-pixel by a parabola.
 *  1. global: every rotation of a 600-cell grid (geom.h) at frequencies
 *     up to search_res, slices computed once and shared by all particles;
 *  2. local: from the best grid rotation, rotations R' = exp(d) R about
 *     the lab axes, d = +-step, moved to while the score improves, step
 *     halved down to min_step, at frequencies up to refine_res.
 * OpenMP over particles; results do not depend on the thread count.
 *
 * Angular error is measured with eval/orient.h (global alignment G and
 * the mirror hand tried: the reported error is handedness-aware).
 */
#ifndef EW_RECON_EM_POSE_H
#define EW_RECON_EM_POSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "recon/em_recon.h"

typedef struct {
    int box;              /* n, pixels (even, >= 8) */
    double pixel;         /* A (1) */
    int grid_level;       /* 600-cell level of the global search (5: 6300 rotations, ~11 degrees) */
    double search_res;    /* A: highest frequency of the global search; 0 = 4 pixels (0) */
    double refine_res;    /* A: highest frequency of the refinement; 0 = 2.5 pixels (0) */
    double max_shift;     /* pixels: largest |o| per axis searched (4) */
    double min_step_deg;  /* last refinement step, degrees (0.25) */
    int use_ctf;          /* 1: the model carries each view's CTF (1) */
} ew_empose_config_t;

void ew_empose_config_default(ew_empose_config_t *c);

/* Projection matching of count images (count x n x n) against map (n^3):
 * views[i].ctf is read, views[i].R and .shift are written; score (may be
 * NULL) gets each particle's final CC. On error the views are unchanged
 * where not yet processed and the message names the argument. */
ew_status_t ew_em_pose_match(const ew_empose_config_t *cfg, const float *map, const float *imgs, size_t count,
                             ew_em_view_t *views, double *score);

/* ---- learned pose encoder ----
 * A small CNN (conv 3x3 / batch norm / ReLU / max-pool stages, channels
 * doubling per stage, then a linear layer on the flattened features to 6
 * values; names "enc.<i>.weight") maps a particle image (normalized to
 * zero mean, unit variance) to the 6D representation, turned into R by
 * Gram-Schmidt (geom.h ew_rot6d_to_mat). Trained with AdamW on the squared
 * Frobenius distance |R_pred - R_true|^2 (gradient through Gram-Schmidt
 * written out in em_pose.c). */
typedef struct {
    int box;             /* input size, pixels (power-of-two multiple of 8) */
    int width;           /* channels of the first stage (16) */
    int stages;          /* conv stages, each halving the size (3) */
    int batch;           /* (32) */
    int steps;           /* training steps (2000) */
    double lr;           /* AdamW learning rate (2e-3), cosine decay */
    double weight_decay; /* (1e-4) */
    uint64_t seed;       /* initialisation and batches (0) */
} ew_poseenc_config_t;

void ew_poseenc_config_default(ew_poseenc_config_t *c);

typedef struct ew_poseenc ew_poseenc_t;

/* Build an encoder for cfg (EW_ERR_ARG naming the field). */
ew_status_t ew_poseenc_create(const ew_poseenc_config_t *cfg, ew_poseenc_t **enc);
void ew_poseenc_destroy(ew_poseenc_t *enc);
/* Train on count images (box x box) with true rotations R (count x 9,
 * particle -> lab). *final_loss (may be NULL): mean loss of the last 50
 * steps. Errors: EW_ERR_NOMEM, EW_ERR_ARG for a size mismatch. */
ew_status_t ew_poseenc_train(ew_poseenc_t *enc, const float *imgs, const double *R, size_t count, double *final_loss);
/* Predict rotations (count x 9) for count images. */
ew_status_t ew_poseenc_predict(ew_poseenc_t *enc, const float *imgs, size_t count, double *R);
/* The training loss of one sample and its gradient: L = |R(d6) - Rt|_F^2
 * with R(d6) = ew_rot6d_to_mat(d6); g (6) = dL/dd6 (back-propagated
 * through Gram-Schmidt, written out by hand). Returns L. */
double ew_rot6d_frobenius_loss(const double d6[6], const double Rt[9], double g[6]);
/* Save / load the weights (safetensors, PyTorch names) atomically; the
 * message names the file on error. */
ew_status_t ew_poseenc_save(const ew_poseenc_t *enc, const char *path);
ew_status_t ew_poseenc_load(ew_poseenc_t *enc, const char *path);

#endif
