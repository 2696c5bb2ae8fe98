/* ewald recon: self-supervised orientation learning for XFEL single-particle
 * imaging (after Chen et al. 2023, "Augmenting x-ray single particle imaging
 * reconstruction with self-supervised machine learning"; reference code
 * neurorient), made practical on CPUs.
 *
 * The model. Each pattern I (photons per pixel) enters as
 *     x_p = log(c I_p + 1)     (c = log_c, default 1e14 / photons_per_pulse),
 * zeroed at bad (beam-stop) pixels and average-binned to enc_size^2 pixels.
 *  - the orientation encoder (a ResNet, nn/blocks.h) maps x to 6 numbers,
 *    turned into the rotation R (particle -> lab, geom.h) by Gram-Schmidt
 *    (ew_rot6d_to_mat);
 *  - the photon-count encoder (a second ResNet) maps x to one number h,
 *    the pattern's scale m = softplus(h + 0.5413) (m = 1 at h = 0);
 *  - the decoder represents f(s) = log(1 + c W(s)) in the particle frame,
 *    W the intensity (photons per pixel-correction unit). Friedel symmetry
 *    is built in: f(s) = g(s) + g(-s) (network decoders) or the grid is
 *    symmetrised, G = (V + V(-s)) / 2.
 * Rendering: pixel p of the pattern sees u_p = R^T s_p and is predicted as
 *     y_p = log(a_p m + 1),  a_p = max(exp(f(u_p)) - 1, 0)
 * and the loss is the mean squared error against x_p over the pixels used
 * (not bad, inside the current resolution cut), averaged over the batch;
 * with EW_SSL_LOSS_POISSON it is the Poisson negative log-likelihood of the
 * photon counts, rate_p = a_p m / c + 1e-3, L = mean(rate - I log rate).
 *
 * Decoders:
 *  - EW_SSL_DEC_GRID (default): an explicit n^3 voxel grid of f values
 *    (n odd, spacing ds covering the detector, physics/slice.h layout),
 *    sliced by trilinear interpolation; gradients reach the grid by the
 *    adjoint of slicing and the rotation through the spatial gradient of the
 *    interpolant. A smoothness prior lambda mean |grad G|^2 (finite
 *    differences, per voxel) regularises it. Cost per pattern ~ 60 flops per
 *    pixel, independent of the network.
 *  - EW_SSL_DEC_SIREN_GRID: a SIREN evaluated once per step at the n^3 grid
 *    nodes (inputs s pi / s_max), then sliced as above; grid gradients are
 *    back-propagated into the network.
 *  - EW_SSL_DEC_SIREN_PIXEL (the paper): the SIREN evaluated at every used
 *    pixel of every pattern at +-u_p pi / s_max; gradients with respect to
 *    its inputs give the rotation gradient.
 *
 * Training: AdamW with linear warm-up and cosine decay (nn/optim.h), batch
 * and epochs configurable, deterministic for a seed (batches and
 * augmentations come from Philox streams of (seed, epoch / step / item));
 * a coarse-to-fine schedule on the pixels used (|s| <= s_cut growing from
 * c2f_start to the detector corner over the first c2f_frac of the steps);
 * atomic checkpoints every ckpt_every steps with exact resume; progress on
 * stderr; MPI data parallelism (nn/dist.h) when built with MPI: each rank
 * takes an equal share of every batch and the gradients are averaged.
 *
 * Augmentation (with noise-free patterns, when the dataset has them and
 * augment is on): per pattern and step a fluence multiplier drawn from the
 * dataset's measured per-pattern photon totals (normalised to mean 1),
 * Poisson noise, Gaussian noise (aug_sigma, photons), clamp at 0; then, on
 * the encoder input only, aug_patches square patches of 4..6 full-detector
 * pixels set to 0 (scaled with the pixel count: 100 patches at 128^2).
 * Measured patterns are used as they are.
 */
#ifndef EW_RECON_SSL_H
#define EW_RECON_SSL_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "geom/geom.h"
#include "physics/slice.h"

typedef enum { EW_SSL_DEC_GRID = 0, EW_SSL_DEC_SIREN_GRID = 1, EW_SSL_DEC_SIREN_PIXEL = 2 } ew_ssl_decoder_t;
typedef enum { EW_SSL_LOSS_MSE = 0, EW_SSL_LOSS_POISSON = 1 } ew_ssl_loss_t;

/* Every option of a training run. */
typedef struct {
    /* input */
    double log_c;           /* c of x = log(c I + 1); <= 0: 1e14 / photons_per_pulse */
    double photons_per_pulse; /* for the default c (1e12 if <= 0) */
    int enc_size;           /* encoder input side after binning (the detector side must be a
                               multiple); 0: the detector side */
    /* orientation encoder (ResNet, nn/blocks.h) */
    int enc_width;          /* channels of the first stage (64: ResNet-18) */
    int enc_stages;         /* 1..4 */
    int enc_blocks;         /* basic blocks per stage (2: ResNet-18) */
    int enc_small_stem;     /* 1: 3x3 stem without pooling; 0: 7x7/2 + max pool */
    /* photon-count encoder */
    int scale_width, scale_stages, scale_blocks;
    int scale_fixed;        /* 1: no scale encoder, m = 1 */
    int freeze_decoder;     /* 1: the decoder is not trained (e.g. after ew_ssl_model_set_volume) */
    /* decoder */
    ew_ssl_decoder_t decoder;
    int grid_n;             /* grid voxels per axis (odd; even -> +1); 0: from the detector: spacing
                               ds = the pixel spacing at s = 0 times the EMC (or encoder) binning,
                               covering the detector corner */
    double smooth;          /* smoothness prior weight lambda (grid decoders) */
    int siren_hidden, siren_layers; /* SIREN width and hidden layers (256, 5 in the paper) */
    double siren_omega;     /* first-layer omega (30) */
    /* loss and optimisation */
    ew_ssl_loss_t loss;
    double lr;              /* AdamW learning rate of the networks (3e-4) */
    double lr_grid;         /* learning rate of explicit grid values (the grid decoder) */
    double weight_decay;    /* AdamW decoupled weight decay (1e-4; never on the grid) */
    double warmup_frac;     /* fraction of the steps in linear warm-up */
    int batch;              /* patterns per step (global over MPI ranks) */
    double epochs;          /* passes over the dataset (may be fractional) */
    double c2f_start;       /* coarse-to-fine: first |s| cut as a fraction of s_max_edge (1: off) */
    double c2f_frac;        /* fraction of the steps over which the cut opens to the corner */
    /* The CPU recipe (docs/ssl.md): before the networks train, EMC
     * (recon/emc.h) runs on the patterns binned to emc_size^2 super-pixels
     * from a random start over 600-cell levels emc_level_lo..emc_level_hi
     * (emc_iters iterations per level, deterministic annealing), and sets
     * the grid decoder; each pattern's most likely EMC rotation, refined
     * locally against that decoder (refine_deg), becomes its pseudo-label;
     * refine_rounds times the decoder is then set to the intensity merged
     * from the full-resolution patterns at the pseudo-labels and these are
     * refined again. During the first target_frac
     * of the steps the orientation encoder regresses onto the pseudo-labels
     * (chordal distance to the nearer in-plane twin, weight target_weight)
     * and the decoder and scale encoder learn from the patterns rendered at
     * them; afterwards everything trains by the self-supervised loss alone.
     * emc_size 0: no EMC (the paper's pure gradient path). */
    int emc_size;           /* EMC super-pixel grid side: the patterns are binned by max(1, nx / emc_size)
                               (which must divide nx); 0: no EMC start. A speckle (1 / particle
                               diameter in s) should span at least ~4 super-pixels: the default 64
                               suits 2cex on the reference 128 x 128 detector (speckles ~10 px), a
                               236 A particle such as 1bxr (3 px) needs 128 (no binning) */
    int emc_level_lo, emc_level_hi; /* 600-cell levels (geom.h) of the EMC rotation grids */
    int emc_iters;          /* EMC iterations per level */
    double refine_deg;      /* first step of the local orientation refinement (compass search on
                               the full-resolution Poisson likelihood, steps halving to 1/16 of
                               this); 0: no refinement */
    int refine_rounds;      /* after EMC: rounds of (refine the pseudo-labels, set the decoder to the
                               merged full-resolution intensity at them) before the networks train */
    double target_frac;     /* fraction of the steps with pseudo-labels */
    double target_weight;   /* weight of the encoder's regression onto them */
    int search_level;       /* 600-cell level of ew_ssl_search (exhaustive search; 0: 3) */
    /* augmentation */
    int augment;            /* use noise-free patterns with fresh noise when available */
    double aug_sigma;       /* Gaussian noise std, photons (0.05) */
    int aug_patches;        /* occluding patches at 128^2 (scaled with the pixel count); 0: off */
    /* run */
    uint64_t seed;
    int threads;            /* OpenMP threads (0: default) */
    const char *ckpt_path;  /* checkpoint file (NULL: none); resumed from if it exists and resume */
    int ckpt_every;         /* steps between checkpoints (0: only at the end) */
    int resume;
    int progress;           /* draw a progress bar (core/util.h) */
    int64_t max_steps;      /* stop after this many steps in total (0: no limit; for tests) */
} ew_ssl_config_t;

/* A named preset. */
typedef struct {
    const char *name;
    const char *help;
    void (*apply)(ew_ssl_config_t *c);
} ew_ssl_preset_t;

/* The default ("fast") configuration. */
void ew_ssl_config_default(ew_ssl_config_t *c);
/* The table of presets ("fast" = default, "paper" = the reference
 * configuration: ResNet-18 encoders on the full pattern, SIREN 5 x 256 per
 * pixel, no coarse-to-fine, ...), terminated by a NULL name. */
const ew_ssl_preset_t *ew_ssl_presets(void);
/* Start from the default and apply the preset called name; EW_ERR_ARG
 * naming it if unknown. */
ew_status_t ew_ssl_config_preset(ew_ssl_config_t *c, const char *name);

/* A training or inference set (all arrays borrowed, owned by the caller). */
typedef struct {
    size_t n;               /* patterns */
    int nx, ny;             /* detector pixels */
    const float *data;      /* (n, ny, nx) recorded photons */
    const float *expected;  /* (n, ny, nx) noise-free photons, or NULL */
    const float *s;         /* (ny nx, 3) lab-frame s vectors, 1/Angstrom */
    const uint8_t *mask;    /* (ny nx) EW_MASK_* codes (2: bad) */
    const float *corr;      /* (ny nx) polarization x solid angle (detector.h), or NULL (uniform) */
    double s_max_edge;      /* |s| at the middle of the detector edge (0: computed) */
    /* truth (optional, for evaluation only) */
    const ew_quat_t *q_true;
    const double *fluence_true; /* per-pattern fluence (any unit) */
} ew_ssl_data_t;

/* A trained (or training) model. */
typedef struct ew_ssl_model ew_ssl_model_t;

/* Build an initialised model for dataset geometry d (only nx, ny, s, mask,
 * s_max_edge are used) and configuration c (copied). On error *m is NULL
 * and the message names the field. */
ew_status_t ew_ssl_model_create(const ew_ssl_config_t *c, const ew_ssl_data_t *d, ew_ssl_model_t **m);
void ew_ssl_model_free(ew_ssl_model_t *m);

/* The model's configuration (valid while m lives); training options
 * (epochs, max_steps, lr, ...) may be changed between ew_ssl_train calls. */
ew_ssl_config_t *ew_ssl_model_config(ew_ssl_model_t *m);
/* Learned parameters (floats) and optimizer steps taken. */
size_t ew_ssl_model_nparams(const ew_ssl_model_t *m);
int64_t ew_ssl_model_step(const ew_ssl_model_t *m);

/* Save the model (and with_optim: its optimizer state and the training
 * position) to a safetensors file atomically; the configuration and the
 * geometry needed to rebuild it are in the metadata ("ssl.*"). */
ew_status_t ew_ssl_model_save(const ew_ssl_model_t *m, const char *path, int with_optim);
/* Rebuild a model saved by ew_ssl_model_save for detector geometry d
 * (same nx, ny as at training; else EW_ERR_ARG). On error *m is NULL and
 * the message names the file. */
ew_status_t ew_ssl_model_load(const char *path, const ew_ssl_data_t *d, ew_ssl_model_t **m);

/* One entry of the training history. */
typedef struct {
    int64_t step;
    double epoch, loss, lr, patterns_per_s, seconds;
} ew_ssl_log_t;

typedef struct {
    size_t nlog;
    ew_ssl_log_t *log;      /* (nlog) one entry per logged step (owned) */
    double seconds;         /* wall time of ew_ssl_train */
    int64_t steps;          /* steps taken in this call */
} ew_ssl_history_t;

void ew_ssl_history_free(ew_ssl_history_t *h);

/* Train m on d (n >= batch) as configured; resumes from cfg.ckpt_path if
 * it exists and cfg.resume. hist (may be NULL) gets the loss history.
 * Errors: EW_ERR_ARG for a dataset that does not match the model, I/O
 * errors of the checkpoint, EW_ERR_NOMEM. */
ew_status_t ew_ssl_train(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_ssl_history_t *hist);

/* Predict rotations (quaternions, w >= 0) and scales for every pattern of
 * d (eval mode: batch-norm running statistics). q and scale (n each) are
 * the caller's; scale may be NULL. */
ew_status_t ew_ssl_infer(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q, double *scale);

/* The model's orientations and scales for every pattern of d: the
 * encoder's rotation or its in-plane twin Rz(pi) R, whichever has the lower
 * Poisson loss against the decoder, then refined locally (compass search
 * over small rotations of all good full-resolution pixels, first step
 * cfg.refine_deg, halving to 1/16 of it; scale fitted in closed form).
 * With refine_deg 0 or the SIREN_PIXEL decoder, the encoder's alone
 * (ew_ssl_infer). q and scale (n each, scale may be NULL) are the caller's. */
ew_status_t ew_ssl_orient(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q, double *scale);

/* Refine given orientations q (n, in place; e.g. from EMC or another
 * model) of the patterns of d against the current grid decoder as
 * ew_ssl_orient does (twin: also try each one's in-plane twin first);
 * scale (n, may be NULL) gets the fitted scales. Grid decoders only
 * (EW_ERR_ARG otherwise); step_deg <= 0: only the twin choice and scales. */
ew_status_t ew_ssl_refine(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q, double *scale, int twin,
                          double step_deg);

/* The pseudo-labels of the EMC start (ssl.h config; one per training
 * pattern, after refinement) as quaternions into q (n, the caller's; n
 * must equal the training set's size). EW_ERR_ARG when the model has
 * none (no EMC start, or not trained yet in this process). */
ew_status_t ew_ssl_pseudo_labels(const ew_ssl_model_t *m, ew_quat_t *q, size_t n);

/* Replace the pseudo-labels with the orientations q (n, one per training
 * pattern; e.g. from EMC run separately, or the truth for checks): the
 * orientation encoder then regresses onto them during the first
 * target_frac of the steps (the EMC start must be configured, emc_size >
 * 0, and is skipped when the decoder was set with ew_ssl_model_set_volume).
 * EW_ERR_NOMEM on failure, the labels unchanged. */
ew_status_t ew_ssl_set_pseudo_labels(ew_ssl_model_t *m, const ew_quat_t *q, size_t n);

/* Orientations by exhaustive search instead of the encoder: for each
 * pattern of d, the rotation of the 600-cell grid of the model's
 * search_level (3 if 0) with the lowest Poisson loss against the current
 * decoder on super-pixels (scale from the scale encoder). Grid
 * decoders only (EW_ERR_ARG otherwise). q (n) is the caller's. */
ew_status_t ew_ssl_search(ew_ssl_model_t *m, const ew_ssl_data_t *d, ew_quat_t *q);

/* The learned intensity on the model's grid (n, ds of the model):
 * W = (exp(f) - 1) / (c corr_mean), photons / sr at unit pattern scale
 * (the scale encoder fixes the global scale only up to a constant); v is allocated here (free with ew_rvol_free). */
ew_status_t ew_ssl_volume(ew_ssl_model_t *m, ew_rvol_t *v);
/* Set the grid decoder (EW_SSL_DEC_GRID only, else EW_ERR_ARG) to the
 * intensity W (photons / sr at unit pattern scale, any grid holding the
 * model's; trilinear resampling): f = log(1 + c W corr_mean), corr_mean
 * the mean pixel correction of the data the model was built for (1
 * without corr). For warm starts from another method and for checks. */
ew_status_t ew_ssl_model_set_volume(ew_ssl_model_t *m, const ew_rvol_t *W);
/* The model's grid (n voxels per axis, spacing ds in 1/Angstrom). */
void ew_ssl_model_grid(const ew_ssl_model_t *m, int *n, double *ds);

/* Evaluation against the truth (see eval/orient.h, eval/fsc.h). */
typedef struct {
    /* the model's orientations for d: its pseudo-labels when d is the
     * training set and the model holds them (from_labels = 1), else
     * ew_ssl_orient's (encoder + refinement); error after the best global
     * rotation and hand */
    double median_deg, p90_deg;
    int hand, from_labels;
    double median_twin_deg, p90_twin_deg; /* the same with the in-plane twin Rz(pi) R accepted per
                                             pattern (orient.h option) */
    double enc_median_deg, enc_p90_deg, enc_median_twin_deg; /* the encoder alone (ew_ssl_infer) */
    double orient_median_deg, orient_p90_deg; /* ew_ssl_orient (encoder + refinement, what new
                                                 patterns get) on the first orient_n patterns */
    size_t orient_n;
    double scale_corr;           /* Pearson correlation of the scale encoder's scales with the true
                                    fluence (NAN: none) */
    double fsc_s05;              /* s where the shell-centred intensity FSC (eval/fsc.h) falls
                                    below 0.5 (1/Angstrom) */
    double fsc_frac_edge;        /* fsc_s05 / s_max_edge */
    double align_score;          /* correlation of the aligned volumes */
    int fsc_n;                   /* shells in fsc_s/fsc */
    double *fsc_s, *fsc;         /* (fsc_n) the FSC curve (owned) */
} ew_ssl_eval_t;

/* Score the model on d (which must have q_true): orientations as described
 * in ew_ssl_eval_t (training_set: d is the set the model was trained on, so
 * its pseudo-labels are d's orientations; ew_ssl_orient is scored on at
 * most the first 1,000 patterns, as it costs ~10 ms per pattern), and if
 * W_true (photon volume on ANY grid holding the model's; NULL: skipped) is
 * given, resample it onto the model's grid, align the learned volume to it
 * (eval/align.h, both hands) and compute the shell-centred intensity FSC.
 * On error *e is zeroed. */
ew_status_t ew_ssl_evaluate(ew_ssl_model_t *m, const ew_ssl_data_t *d, const ew_rvol_t *W_true, int training_set,
                            ew_ssl_eval_t *e);
void ew_ssl_eval_free(ew_ssl_eval_t *e);

/* Write the loss curve of h as a PNG (atomically). */
ew_status_t ew_ssl_history_png(const ew_ssl_history_t *h, const char *path);

#endif
