/* ewald gen: unpaired noise translation of simulated cryo-EM micrographs
 * (ewald em noise train|apply): CUT (Park et al. 2020, contrastive
 * unpaired translation) for 1-channel images, with GenEM's mask-guided
 * PatchNCE sampling. docs/noise-translation.md describes the model, the
 * choices and the measurements.
 *
 * Images. A data set (ew_cut_set_t) holds 2-D images, each z-scored
 * (x - mean) / sd with its own mean and standard deviation; the network
 * sees clamp(z / clip_sd, -1, 1) ("network units", the tanh range).
 * Simulated images carry a particle mask (1 inside particles) and
 * optionally the clean image (for the content metric); real images carry
 * neither. Training crops crop x crop patches at random positions (random
 * horizontal/vertical flips); both domains must have the same pixel size
 * (simulate at the real data's pixel size).
 *
 * Model. Generator: CUT's ResnetGenerator (no antialiasing): reflect-pad 7x7
 * conv, 2 stride-2 convs, n_blocks residual blocks (reflect padding), 2
 * transposed convs, 7x7 conv, tanh; instance norm without affine, ReLU;
 * optionally (identity_skip) the input is added before the final tanh.
 * Discriminator: 70x70 PatchGAN (4x4 convs, n_layers_d stride-2 layers,
 * LeakyReLU 0.2, instance norm), LSGAN loss. PatchNCE on the generator's
 * encoder features at CUT's module indices (0 = input image, 1..3 first
 * conv/norm/ReLU, 4..6 first down-sampling conv/norm/ReLU, 7..9 second,
 * 10 + k = output of residual block k), each through a 2-layer MLP head
 * (Linear, ReLU, Linear, L2 normalisation), temperature nce_t.
 * Tensor names follow PyTorch's CUT: "netG.model.<i>...", "netD.model.<i>...",
 * "netF.mlp_<j>.<0|2>.weight/bias".
 *
 * Sampling. PLAIN: num_patches locations per image and feature layer
 * uniformly without replacement; an anchor's negatives are the other
 * sampled locations of the same image (CUT). MASK (GenEM): up to
 * num_patches / 2 anchors from the particle mask and the rest from the
 * background (mask at a feature pixel = mask at the image pixel at its
 * centre); particle anchors take the background locations as negatives
 * and the reverse; the loss is the mean of the two terms (an image
 * without particle or without background pixels falls back to PLAIN).
 */
#ifndef EW_GEN_GEN_H
#define EW_GEN_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef enum { EW_CUT_SAMPLE_PLAIN = 0, EW_CUT_SAMPLE_MASK = 1 } ew_cut_sampling_t;

#define EW_CUT_MAX_TAPS 8

typedef struct {
    /* architecture */
    int ngf;                 /* generator width (16; CUT 64) */
    int n_blocks;            /* residual blocks (6; CUT resnet_9blocks 9) */
    int ndf;                 /* discriminator width (16; CUT 64) */
    int n_layers_d;          /* PatchGAN stride-2 layers (3: 70x70 receptive field) */
    int nce_layers[EW_CUT_MAX_TAPS]; /* CUT module indices ({0, 4, 8, 12, 16}); an index
                                        beyond the last residual block (9 + n_blocks) is
                                        clamped to it, duplicates dropped */
    int n_nce_layers;        /* (5) */
    int mlp_dim;             /* MLP head width (256) */
    int num_patches;         /* locations per image and layer (256) */
    double nce_t;            /* temperature (0.07) */
    double lambda_gan;       /* (1) */
    double lambda_nce;       /* (1, CUT's; FastCUT and CryoGEM use 10 with nce_idt 0) */
    int nce_idt;             /* 1: CUT's identity PatchNCE on real images too (0: FastCUT) */
    ew_cut_sampling_t sampling; /* (EW_CUT_SAMPLE_MASK) */
    int identity_skip;       /* 1: the generator's output is tanh(h + atanh(0.995 x)), x its
                                input, so training starts from the identity (1; 0: CUT's
                                tanh(h)); see docs/noise-translation.md */
    /* optimisation */
    double lr;               /* Adam learning rate (2e-4; CryoGEM 1e-4) */
    double beta1, beta2;     /* (0.5, 0.999) */
    int crop;                /* training crop side, pixels, multiple of 4 (64) */
    int batch;               /* crops per step per domain (2) */
    int64_t steps;           /* optimizer steps (2000) */
    int flip;                /* random flips (1) */
    double min_particle_fraction; /* a simulated crop must have at least this fraction of
                                     mask pixels (retried up to 50 draws) (0.02) */
    uint64_t seed;           /* (1) */
    double clip_sd;          /* network units = clamp(z / clip_sd, -1, 1) (3) */
    /* output */
    const char *outdir;      /* checkpoint, samples, metrics (NULL: nothing written) */
    int64_t sample_every;    /* sample PNG every so many steps (500; 0: only at the end) */
    int64_t checkpoint_every;/* checkpoint every so many steps (500; 0: only at the end) */
    const char *resume;      /* checkpoint to resume from exactly (NULL: fresh start) */
    int progress;            /* 1: progress bar on stderr (1) */
    /* evaluation */
    int eval_crops;          /* crops per domain for the metrics (48) */
    int eval_size;           /* their side, pixels, multiple of 4 (128) */
    double lowpass_A;        /* content metric low-pass: Gaussian with half power at
                                1 / lowpass_A (20 A) */
    double pixel;            /* A per pixel of both domains (1.31; for frequencies) */
} ew_cut_config_t;

/* The defaults marked above. */
void ew_cut_config_default(ew_cut_config_t *c);
/* EW_ERR_ARG naming the first bad field and its value. */
ew_status_t ew_cut_config_check(const ew_cut_config_t *c);

/* ---- data ---- */

typedef struct {
    int nx, ny;
    float *z;       /* (ny, nx) (x - mean) / sd */
    uint8_t *mask;  /* (ny, nx) particle mask or NULL */
    float *clean;   /* (ny, nx) clean image (any units) or NULL */
    double mean, sd;
} ew_cut_image_t;

typedef struct {
    ew_cut_image_t *img;
    size_t n, cap;
} ew_cut_set_t;

void ew_cut_set_init(ew_cut_set_t *s);
/* Copy one image (ny, nx >= 8) with its optional mask and clean image
 * into s, z-scored. EW_ERR_NUMERIC if the image is constant or not finite. */
ew_status_t ew_cut_set_add(ew_cut_set_t *s, const float *image, const uint8_t *mask, const float *clean, int nx,
                           int ny);
/* A simulated micrograph from MRC files (mask_path: nonzero = particle;
 * clean_path may be NULL). Sizes must agree (EW_ERR_FORMAT naming the file). */
ew_status_t ew_cut_set_add_sim_mrc(ew_cut_set_t *s, const char *mic_path, const char *mask_path,
                                   const char *clean_path);
/* Every section of a real MRC/MRCS file as one image. *pixel (may be NULL)
 * gets the file's pixel size (0 if unknown). */
ew_status_t ew_cut_set_add_real_mrc(ew_cut_set_t *s, const char *path, double *pixel);
void ew_cut_set_free(ew_cut_set_t *s);

/* Draw a crop origin (x0, y0) of a crop x crop patch of img (the image
 * must be at least crop a side): uniform; with min_fraction > 0 and a
 * mask, redrawn (up to 50 times) until the crop holds that fraction of
 * mask pixels. */
void ew_cut_crop_origin(const ew_cut_image_t *img, int crop, double min_fraction, ew_rng_t *r, int *x0, int *y0);

/* ---- sampling (cut_sample.c) ---- */

/* Locations for one image and one feature map (fh, fw) of a crop with
 * the mask (crop side fh * stride; may be NULL): np = min(num_patches,
 * fh fw) flat indices into idx (capacity num_patches). PLAIN (or no
 * mask, or a region empty): uniform without replacement, *n_particle = 0
 * and *plain = 1. MASK: the first *n_particle indices are particle
 * locations, the rest background, each drawn without replacement,
 * *plain = 0; *n_particle = min(num_patches / 2, particle locations), or
 * more when the background has too few locations to fill np. A location is
 * a particle location when mask[(stride y + stride / 2) * (fw stride) +
 * stride x + stride / 2] != 0. Returns np. */
int ew_cut_sample_locations(const uint8_t *mask, int fh, int fw, int stride, int num_patches,
                            ew_cut_sampling_t mode, ew_rng_t *r, int32_t *idx, int *n_particle, int *plain);

/* ---- model ---- */

typedef struct ew_cut_model ew_cut_model_t;

/* Build and initialise (CUT: Xavier normal, gain 0.02; biases 0) a model
 * for cfg (architecture fields; the config is copied). On error *m is NULL. */
ew_status_t ew_cut_model_create(const ew_cut_config_t *cfg, ew_cut_model_t **m);
/* The model's configuration. */
const ew_cut_config_t *ew_cut_model_config(const ew_cut_model_t *m);
/* Save generator, MLP heads and discriminator (with Adam state and the
 * step when with_optim) to one safetensors file, the architecture in its
 * metadata ("ewald.cut.*"). Atomic. */
ew_status_t ew_cut_model_save(const ew_cut_model_t *m, const char *path, int with_optim);
/* Rebuild a model from a checkpoint written by ew_cut_model_save (weights
 * and, if present, the optimizer state). On error *m is NULL and the
 * message names the file. */
ew_status_t ew_cut_model_load(const char *path, ew_cut_model_t **m);
/* Parameter counts (generator, discriminator, MLP heads). */
void ew_cut_model_counts(const ew_cut_model_t *m, size_t *n_gen, size_t *n_disc, size_t *n_mlp);
void ew_cut_model_free(ew_cut_model_t *m);

/* Translate n images (n, h, w) in network units with the generator;
 * h, w multiples of 4 (EW_ERR_ARG otherwise); EW_ERR_NOMEM. */
ew_status_t ew_cut_generate(ew_cut_model_t *m, const float *x, int n, int h, int w, float *out);

/* Translate a whole image of any size (ny, nx >= 16) in its own units:
 * z-scored, to network units, generated in tiles of at most tile pixels
 * (multiple of 4, >= 32; 256 recommended) with margin pixels of overlap
 * (the tile centres are kept), and mapped back with the input's mean and
 * standard deviation: out = mean + sd clip_sd y. */
ew_status_t ew_cut_translate_image(ew_cut_model_t *m, const float *image, int nx, int ny, int tile, int margin,
                                   float *out);

/* ---- training and evaluation (cut_train.c) ---- */

typedef struct {
    /* noise realism (network units): rms of log10 power-spectrum ratios over
       rings 1 .. Nyquist, and histogram distances */
    double psd_translated, psd_simulated;   /* vs real */
    double psd_band_translated, psd_band_simulated; /* the same over f >= 1 / lowpass_A only (the
                                                       noise band above the content metric's band;
                                                       NAN when empty) */
    double hist_w1_translated, hist_w1_simulated;
    double hist_js_translated, hist_js_simulated;
    /* content: mean over crops of the Pearson correlation, inside the mask,
       of the low-passed image and the low-passed clean image */
    double content_translated, content_simulated;
    int content_crops;
    /* training */
    int64_t steps;
    double seconds, seconds_per_step;
    double loss_d_first, loss_d_last;      /* means over the first / last 10% of steps */
    double loss_gan_first, loss_gan_last;
    double loss_nce_first, loss_nce_last;
    double *history;   /* (steps, 3): loss_D, loss_G_GAN, loss_NCE per step (ew_free); may be NULL */
} ew_cut_metrics_t;

/* Train a new model (or resume cfg->resume) on simulated images (with
 * masks) and real images; writes to cfg->outdir (if set): cut.safetensors
 * (with optimizer state), samples/step_NNNNNNN.png (montage rows: simulated
 * input, translated, real crops), metrics.json, psd_{translated,simulated,
 * real}.txt (ew_spectrum_write_table of the evaluation crops); evaluates (as
 * ew_cut_evaluate). *model (may be NULL) gets the trained model (caller
 * frees); met (may be NULL) the figures (free history with ew_free). */
ew_status_t ew_cut_train(const ew_cut_config_t *cfg, const ew_cut_set_t *sim, const ew_cut_set_t *real,
                         ew_cut_model_t **model, ew_cut_metrics_t *met);

/* The metrics above for a model on eval_crops crops of each set (fixed by
 * cfg->seed); training fields are left untouched. */
ew_status_t ew_cut_evaluate(ew_cut_model_t *m, const ew_cut_config_t *cfg, const ew_cut_set_t *sim,
                            const ew_cut_set_t *real, ew_cut_metrics_t *met);

/* Pearson correlation of a and b (n) over the pixels where mask != 0
 * (all when mask is NULL), after a separable Gaussian blur of std sigma
 * pixels (reflect boundary; sigma <= 0: none) of both (w, h) images.
 * Returns NAN with fewer than 3 pixels or a constant image. */
double ew_cut_masked_lowpass_corr(const float *a, const float *b, const uint8_t *mask, int w, int h, double sigma);

/* ---- use (cut_apply.c) ---- */

/* Translate the MRC images in_paths[i] (micrographs or stacks) to
 * out_paths[i] (float32, same pixel size) and, if png_paths (may be NULL
 * or hold NULL entries), 8-bit previews of the first section. Tiles as
 * ew_cut_translate_image (tile 256, margin 32). Stops at the first error,
 * naming the file. */
ew_status_t ew_cut_apply_files(ew_cut_model_t *m, const char *const *in_paths, const char *const *out_paths,
                               const char *const *png_paths, size_t n);

#endif
