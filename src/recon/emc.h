/* ewald recon: expand-maximize-compress (EMC) for sparse XFEL photon data.
 *
 * Loh & Elser, Phys. Rev. E 80, 026705 (2009); Dragonfly (Ayyer et al.,
 * J. Appl. Cryst. 49, 1320 (2016)). One iteration:
 *
 *   expand    W_rp = c_p * trilinear(model, R_r^T s_p)   for every rotation r
 *             of the grid and every detector pixel p (c_p: optional
 *             per-pixel correction, solid angle x polarization).
 *   maximize  L_dr = sum_{p hit in d, mask 0} k_dp log W_rp - phi_d u_r,
 *             u_r = sum_{p, mask 0} W_rp  (Poisson log-likelihood without
 *             the constant terms), and
 *             P_dr = w_r exp(beta L_dr) / sum_r' w_r' exp(beta L_dr')
 *             (w_r: quadrature weights of the grid, beta: annealing),
 *             normalized per pattern with log-sum-exp in double.
 *             phi_d = K_d / sum_r P_dr u_r  (K_d: photons of d on mask-0 pixels).
 *   compress  model(v) = sum_{r,p} f_rp(v) sum_d P_dr k_dp
 *                      / sum_{r,p} f_rp(v) c_p sum_d P_dr phi_d
 *             over pixels of mask 0 and 1, f_rp(v) the trilinear weight of
 *             voxel v for pixel p at rotation r (the exact EM update of
 *             the interpolated Poisson model); optional Friedel
 *             symmetrization of numerator and denominator; then
 *             phi is divided by its mean and the model multiplied by it.
 *
 * Mask values per pixel (Dragonfly's): 0 good, 1 merged but not used for
 * orientation, 2 bad (ignored).
 *
 * Layout of the work (see docs/emc.md): rotations are processed in tiles of
 * EW_EMC_TILE; a tile is expanded into a pixel-major buffer logW[p][j] so that
 * every photon adds one contiguous vector of EW_EMC_TILE log-intensities to
 * its pattern's likelihood row. Compress is the transposed product, read
 * pixel-major within chunks of patterns where most of them have P > 0. OpenMP
 * threads take tiles of rotations; with EW_HAVE_MPI the patterns are split
 * over MPI_COMM_WORLD ranks and each iteration does one MPI_Allreduce.
 *
 * Memory: the likelihoods L (float, 4 N R bytes on a rank with N patterns,
 * R rounded up to a multiple of EW_EMC_TILE)
 * are kept when they fit in config.mem_limit_mb; otherwise they are computed
 * twice per iteration (once for the per-pattern normalization, once for
 * compress) and never stored. The work buffers of an iteration (likelihood
 * store, per-thread volumes and tiles, all-reduce buffer) are kept from one
 * iteration to the next and freed by ew_emc_free.
 */
#ifndef EW_RECON_EMC_H
#define EW_RECON_EMC_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "geom/geom.h"
#include "io/emcfile.h"
#include "physics/slice.h"

/* Rotations per tile of the expand / likelihood / compress kernels. */
#ifndef EW_EMC_TILE
#define EW_EMC_TILE 32
#endif

/* Patterns per chunk in compress: a chunk's probabilities for one tile
 * (EW_EMC_CHUNK x EW_EMC_TILE floats, 128 KB) stay in L2 while its photons
 * are read pixel by pixel. At most 65536. */
#ifndef EW_EMC_CHUNK
#define EW_EMC_CHUNK 1024
#endif

/* Pixel mask values (Dragonfly's convention). */
enum { EW_EMC_PIX_GOOD = 0, EW_EMC_PIX_NOORIENT = 1, EW_EMC_PIX_BAD = 2 };

/* The detector as EMC sees it. Not owned by ew_emc_t (copied at create). */
typedef struct {
    size_t npix;
    const float *s;        /* (npix, 3) lab-frame scattering vectors s = 1/d, 1/Angstrom */
    const uint8_t *mask;   /* (npix) EW_EMC_PIX_*; NULL: all good */
    const float *corr;     /* (npix) relative pixel response c_p (solid angle x polarization); NULL: 1 */
} ew_emc_pixels_t;

/* Sparse photon data in compressed-row form: pattern d has hits
 * offset[d] .. offset[d+1]-1, each a pixel index pix[i] < npix with
 * count[i] >= 1 photons. Arrays owned by the creator (ew_emc_sparse_free
 * for those made by the ew_emc_sparse_from_* helpers). */
typedef struct {
    size_t n_patterns;
    size_t npix;
    uint64_t *offset;  /* (n_patterns + 1) */
    uint32_t *pix;     /* (offset[n_patterns]) */
    uint32_t *count;   /* (offset[n_patterns]) photons, >= 1 */
} ew_emc_sparse_t;

/* Build sparse data from dense frames (n_frames, npix) of photon counts (as
 * CXI stores them): negative or non-finite values are rejected, values are
 * rounded to the nearest integer, zeros dropped. On error sp is left empty
 * and the message names the frame and pixel. */
ew_status_t ew_emc_sparse_from_dense(ew_emc_sparse_t *sp, const float *frames, size_t n_frames, size_t npix);

/* Build sparse data from a Dragonfly photon set as io/emcfile.h reads it
 * (ones then multi-photon pixels of each frame). Errors (EW_ERR_ARG) on a
 * pixel index outside [0, num_pix) or a count < 1, naming the frame; on
 * error sp is left empty. */
ew_status_t ew_emc_sparse_from_photons(ew_emc_sparse_t *sp, const ew_emc_photons_t *ph);

/* Free arrays made by the ew_emc_sparse_from_* helpers (sp may be NULL). */
void ew_emc_sparse_free(ew_emc_sparse_t *sp);

typedef struct {
    int n_vox;            /* model voxels per axis; 0: from the detector's s range (odd) */
    double ds;            /* voxel spacing, 1/Angstrom; 0: the detector's pixel spacing near s = 0 */
    double beta_start;    /* annealing: beta of the first iteration (0 < beta <= 1) */
    double beta_factor;   /* beta *= beta_factor every beta_period iterations (>= 1) */
    int beta_period;      /* iterations between beta steps (>= 1) */
    double beta_max;      /* beta never exceeds this (usually 1) */
    int update_scale;     /* 1: re-estimate the per-pattern scale factors phi_d each iteration */
    int friedel;          /* 1: symmetrize the model, I(s) = I(-s), after each compress */
    double p_min;         /* probabilities below this are not merged (Dragonfly: 1e-6) */
    size_t mem_limit_mb;  /* keep the float likelihood matrix when its 4 N R bytes fit in this */
    uint64_t seed;        /* random start model: stream (seed, EW_RNG_TAG_INIT, voxel) */
    const char *checkpoint; /* HDF5 path rewritten atomically after each iteration; NULL: none */
    int no_mpi;           /* 1: ignore MPI even when built with it and initialized (this rank runs all
                             patterns alone; used to compare against the distributed run) */
    int compress_path;    /* how compress reads a chunk of patterns: 0 (default) chooses per chunk and
                             tile, 1 always pixel by pixel, 2 always photon by photon; the three agree
                             to float rounding (1 and 2 exist for tests and timing) */
} ew_emc_config_t;

/* Defaults: n_vox 0, ds 0, beta_start 1, beta_factor 1, beta_period 10,
 * beta_max 1, update_scale 1, friedel 1, p_min 1e-6, mem_limit_mb 2048,
 * seed 1, checkpoint NULL, no_mpi 0, compress_path 0. */
void ew_emc_config_default(ew_emc_config_t *c);

/* Figures of one iteration. */
typedef struct {
    int iteration;        /* 1-based number of the iteration just done */
    double beta;          /* annealing factor used */
    double rms_change;    /* sqrt(mean over voxels of (new - old)^2) of the model */
    double mutual_info;   /* (1/N) sum_d sum_r P_dr ln(P_dr / w_r), nats */
    double avg_loglik;    /* (1/N) sum_d sum_r P_dr L_dr (constants of Poisson dropped) */
    double frac_confident;/* fraction of patterns whose best rotation has P > 0.5 */
    double mean_scale;    /* mean phi before normalization (1 when scales are off) */
    double t_expand, t_likelihood, t_compress, t_total; /* wall seconds (rank 0's) */
    int dense_store;      /* 1: the likelihood matrix was kept; 0: recomputed */
} ew_emc_stats_t;

typedef struct ew_emc ew_emc_t;

/* Set up a reconstruction: copies the detector, takes this rank's share of
 * data (all patterns without MPI; a contiguous block of patterns per rank
 * with EW_HAVE_MPI, data being the whole set on every rank), copies the
 * grid, sizes the model (cfg n_vox / ds or from the detector) and fills it
 * with a random start (uniform in [0, 2 mu) with mu = mean photons per good
 * pixel). Warns (ew_warn) when there are fewer patterns than rotations or
 * fewer than 20 photons per pattern on average. Errors (EW_ERR_ARG) on an
 * empty data set, a pixel index >= npix, a zero count, npix mismatch, an
 * invalid config value or an empty grid. On success *out owns copies of
 * everything; on error *out is NULL. */
ew_status_t ew_emc_create(ew_emc_t **out, const ew_emc_config_t *cfg, const ew_emc_pixels_t *det,
                          const ew_emc_sparse_t *data, const ew_rotgrid_t *grid);

/* Replace the model (e.g. a known start or a checkpoint): vol must have the
 * model's n_vox (ew_emc_model) and finite, non-negative values.
 * Errors (EW_ERR_ARG) otherwise, leaving the model as it was. */
ew_status_t ew_emc_set_model(ew_emc_t *e, const float *vol, size_t nvox3);

/* One EMC iteration (expand, maximize, compress, scale update); fills
 * *stats when not NULL (and then logs them with ew_info on rank 0) and,
 * when cfg.checkpoint was set, saves the state there. Errors: EW_ERR_NUMERIC naming the iteration when a likelihood,
 * scale factor or model value becomes NaN or Inf (the model is then left at
 * the previous iteration's); EW_ERR_IO from the checkpoint; EW_ERR_NOMEM
 * when the work buffers (allocated at the first iteration, kept for the
 * next ones) cannot be had, the model unchanged. */
ew_status_t ew_emc_iterate(ew_emc_t *e, ew_emc_stats_t *stats);

/* Continue on another rotation grid (usually the next finer 600-cell
 * level): the model, scale factors and iteration count are kept; the
 * per-pattern best rotations are reset. Errors on an empty grid. */
ew_status_t ew_emc_refine(ew_emc_t *e, const ew_rotgrid_t *grid);

/* Write the state to an HDF5 file atomically (temporary name, then rename):
 * /intensity (n,n,n float, z y x; attribute ds), /scale (N), /best_rot (N,
 * int32 grid index, -1 before the first iteration), /best_quat (N,4 w x y z),
 * /best_prob (N), attributes iteration, beta, grid_level, n_rot, n_patterns.
 * With MPI every rank holds all per-pattern arrays and only rank 0 writes.
 * On error no file is left and the message names path. */
ew_status_t ew_emc_save(const ew_emc_t *e, const char *path);

/* Read what ew_emc_save wrote into e: the model, the scale factors, the
 * iteration count and beta. Errors (EW_ERR_FORMAT) when the file's model
 * size, pattern count or grid size (n_rot) differ from e's, naming path and
 * the field; e is then unchanged. */
ew_status_t ew_emc_resume(ew_emc_t *e, const char *path);

/* The iteration count and grid of a checkpoint, so a caller can rebuild the
 * right grid before ew_emc_resume. Errors (EW_ERR_IO / EW_ERR_FORMAT)
 * naming path. */
ew_status_t ew_emc_checkpoint_info(const char *path, int *iteration, int *grid_level, size_t *n_rot);

/* Read access. The model is an ew_rvol_t owned by e (valid until the next
 * iterate/set_model/free). Per-pattern arrays cover all patterns (every
 * rank's, after an iteration) and are owned by e. */
const ew_rvol_t *ew_emc_model(const ew_emc_t *e);
size_t ew_emc_n_patterns(const ew_emc_t *e);
const float *ew_emc_scale(const ew_emc_t *e);     /* (N) phi_d, mean 1 */
const int32_t *ew_emc_best_rot(const ew_emc_t *e); /* (N) grid index of max P_dr, -1 unknown */
const float *ew_emc_best_prob(const ew_emc_t *e);  /* (N) that max P_dr */
const ew_rotgrid_t *ew_emc_grid(const ew_emc_t *e);
int ew_emc_iteration(const ew_emc_t *e);          /* iterations done */
double ew_emc_beta(const ew_emc_t *e);           /* beta the next iteration uses */

/* Free everything (e may be NULL). */
void ew_emc_free(ew_emc_t *e);

#endif
