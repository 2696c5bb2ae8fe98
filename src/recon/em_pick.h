/* ewald recon: cryo-EM particle picking (ewald em pick train|run|eval).
 *
 * Model (Topaz-like): micrographs are binned by `bin` (block means) and
 * normalized (zero mean, unit variance); a fully convolutional network
 * -- a k x k convolution (first_k), then layers - 2 3x3 convolutions,
 * each followed by batch norm and ReLU, all `width` channels with "same"
 * zero padding, then a 1x1 convolution to one logit -- gives a per-pixel
 * particle score of the binned micrograph. Names follow nn.Sequential
 * ("net.<i>.weight"), so a PyTorch nn.Sequential of the same layers loads
 * the checkpoint.
 *
 * Training: plain binary cross-entropy with logits against a label map
 * (1 within label_radius binned pixels of a true particle centre, else 0),
 * on random patch x patch crops with random 90-degree rotations and flips,
 * AdamW with cosine decay. Batches come from the RNG stream (seed,
 * EW_RNG_TAG_BATCH, step), so training is reproducible.
 *
 * Picking: greedy non-maximum suppression on the score map (Topaz's
 * non_maximum_suppression): pixels in decreasing score order are accepted
 * when no accepted pick lies within nms_radius (binned pixels); picks
 * below the threshold (logit) are dropped. Coordinates are returned in
 * pixels of the unbinned micrograph (block centre: (i + 1/2) bin - 1/2).
 *
 * Evaluation as Topaz (topaz.metrics average_precision): over all
 * micrographs, predictions sorted by decreasing score are matched to the
 * nearest still-unmatched true centre of their micrograph within
 * match_radius (unbinned pixels) -- each true particle matched at most
 * once; AUPRC = sum over the true positives of precision at that rank /
 * number of true particles (missed particles lower the recall).
 */
#ifndef EW_RECON_EM_PICK_H
#define EW_RECON_EM_PICK_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "io/coords.h"

typedef struct {
    int bin;              /* binning factor of the micrographs (4) */
    int width;            /* channels (16) */
    int layers;           /* convolutions including the 1x1 output (6, >= 2) */
    int first_k;          /* kernel of the first convolution, odd (7) */
    double label_radius;  /* binned pixels (3) */
    int patch;            /* training crop, binned pixels (64) */
    int batch;            /* crops per step (8) */
    int steps;            /* (600) */
    double lr;            /* AdamW (2e-3), cosine decay to lr / 20 */
    double weight_decay;  /* (1e-4) */
    double nms_radius;    /* binned pixels (4) */
    uint64_t seed;        /* (0) */
} ew_pick_config_t;

void ew_pick_config_default(ew_pick_config_t *c);

/* One annotated micrograph (not owned). */
typedef struct {
    const float *img;     /* (ny, nx) */
    int nx, ny;
    const double *xy;     /* (n, 2) true centres, pixels; may be NULL when n = 0 */
    size_t n;
} ew_pick_mic_t;

/* A pick: centre in unbinned pixels and its score (logit). */
typedef struct {
    double x, y, score;
} ew_pick_t;

typedef struct ew_picker ew_picker_t;

/* Build the network for cfg (EW_ERR_ARG naming the field). */
ew_status_t ew_picker_create(const ew_pick_config_t *cfg, ew_picker_t **pk);
void ew_picker_destroy(ew_picker_t *pk);
/* Train on n_mics micrographs (each at least patch * bin pixels a side;
 * EW_ERR_ARG naming the micrograph otherwise). *final_loss (may be NULL):
 * mean BCE of the last 50 steps. */
ew_status_t ew_picker_train(ew_picker_t *pk, const ew_pick_mic_t *mics, size_t n_mics, double *final_loss);
/* Score map (logits) of a micrograph: *score (bny x bnx, allocated with
 * ew_alloc_array; caller frees), bnx = nx / bin, bny = ny / bin. */
ew_status_t ew_picker_score(ew_picker_t *pk, const float *img, int nx, int ny, float **score, int *bnx, int *bny);
/* Score and pick: *picks (ew_alloc_array; NULL when none) sorted by
 * decreasing score, scores above threshold. */
ew_status_t ew_picker_pick(ew_picker_t *pk, const float *img, int nx, int ny, double threshold, ew_pick_t **picks,
                           size_t *n);
/* Greedy non-maximum suppression of a score map (bnx x bny) with radius
 * r (pixels of the map); coordinates scaled to unbinned pixels by bin. */
ew_status_t ew_pick_nms(const float *score, int bnx, int bny, int bin, double r, double threshold, ew_pick_t **picks,
                        size_t *n);
/* Topaz's AUPRC over n_mics micrographs: picks[m] (n_picks[m]) against
 * mics[m].xy, matching within radius (unbinned pixels). Also precision
 * and recall at the best F1 when the pointers are not NULL. */
double ew_pick_auprc(const ew_pick_t *const *picks, const size_t *n_picks, const ew_pick_mic_t *mics, size_t n_mics,
                     double radius, double *best_precision, double *best_recall);
/* Save / load the network (safetensors, atomic); messages name the file. */
ew_status_t ew_picker_save(const ew_picker_t *pk, const char *path);
ew_status_t ew_picker_load(ew_picker_t *pk, const char *path);
/* Append picks of micrograph `image` to coords (Topaz TSV via
 * ew_coords_write_topaz) and write RELION STAR coordinates
 * (data_ with rlnCoordinateX/Y, rlnAutopickFigureOfMerit), atomic. */
ew_status_t ew_pick_to_coords(const ew_pick_t *picks, size_t n, const char *image, ew_coords_t *coords);
ew_status_t ew_pick_write_star(const char *path, const ew_pick_t *picks, size_t n);

#endif
