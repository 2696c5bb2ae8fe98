/* ewald recon: internals shared by ssl_model.c and ssl_train.c (not public). */
#ifndef EW_RECON_SSL_IMPL_H
#define EW_RECON_SSL_IMPL_H

#include "nn/blocks.h"
#include "nn/params.h"
#include "recon/ssl.h"

struct ew_ssl_model {
    ew_ssl_config_t cfg;
    int nx, ny;
    size_t npix;
    float *s;            /* (npix, 3) lab-frame s, 1/Angstrom (copy) */
    uint8_t *mask;       /* (npix) copy */
    float *k;            /* (npix) corr / mean corr over good pixels (1 without corr) */
    int *pix;            /* (npix_good) good pixels sorted by |s| */
    float *pix_s;        /* (npix_good) their |s| */
    size_t npix_good;
    double s_max_edge, s_max_corner;
    int gn;              /* grid voxels per axis */
    double ds;           /* grid spacing */
    double c;            /* log transform constant */
    int decoder_set;     /* ew_ssl_model_set_volume was called: no data-based init */
    double corr_mean;    /* mean corr over good pixels (1 without corr) */
    int es, bin;         /* encoder input side, binning factor */
    int emc_bin;         /* binning of the EMC start and the refinement: max(1, nx / emc_size) */
    ew_params_t P;
    ew_resnet_t enc, senc;
    int has_senc;
    ew_mlp_t mlp;
    int has_mlp;
    int i_grid;          /* explicit grid tensor index (-1: none) */
    double grid_k;       /* f = grid_k * stored grid (lr_grid / lr) */
    float *G, *dG;       /* (gn^3) symmetrised decoder values and their gradient */
    char *ckpt;          /* copy of cfg.ckpt_path (cfg.ckpt_path points here) */
    double *tgt;         /* (ntgt, 9) pseudo-label rotations of the training patterns (row-major
                            matrices, particle -> lab), NULL: none */
    size_t ntgt;
    float *coords;       /* SIREN_GRID: (gn^3, 3) network inputs at the grid nodes */
};

/* Build the symmetrised decoder grid m->G (grid decoders; SIREN_GRID runs
 * the network forward). */
ew_status_t ew_ssl_decoder_grid(ew_ssl_model_t *m);
/* Back-propagate m->dG into the decoder parameters' gradients. */
ew_status_t ew_ssl_decoder_grid_backward(ew_ssl_model_t *m);
/* Encoder input of one pattern: log transform, mask, optional patches,
 * binning into out (es^2). */
void ew_ssl_encoder_input(const ew_ssl_model_t *m, const float *counts, const uint8_t *occlude, float *out);

/* Loss of the patterns items[0..count) (prepared as at training step
 * `step`, all good pixels) and its gradient in m->P.grad (zeroed first).
 * For the end-to-end gradient check. */
ew_status_t ew_ssl_loss_grad(ew_ssl_model_t *m, const ew_ssl_data_t *d, const size_t *items, int count,
                             int64_t step, double *loss);

#endif
