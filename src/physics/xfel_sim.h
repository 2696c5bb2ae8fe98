/* ewald physics: single-particle XFEL diffraction datasets with ground truth.
 *
 * Expected photons in pixel p of a pattern with particle orientation R
 * (particle -> lab, geom.h) and fluence Phi (photons per area):
 *   lambda_p = Phi r_e^2 P_p Omega_p |F(R^T s_p)|^2 + background,
 * with r_e the classical electron radius, P_p the polarization factor,
 * Omega_p the pixel's solid angle and F the structure factor in electrons
 * (scatter.h). The ground-truth 3D intensity shared with every
 * reconstruction method is the photon volume
 *   W(s) = Phi_0 r_e^2 |F(s)|^2    (photons per steradian at the nominal
 *                                   fluence Phi_0),
 * so that lambda_p = m W(R^T s_p) corr_p + background, with corr_p =
 * P_p Omega_p (detector.h) and m the pattern's fluence multiplier (mean 1).
 * Patterns sample W by trilinear interpolation (slice.h), or, with `exact`,
 * by direct summation over atoms (slow; for checks).
 *
 * Randomness (core/rng.h), per pattern index i, independent of threads:
 *   orientation  ew_quat_random, stream (ORIENTATION, i)
 *   fluence      multiplier, then beam-centre offset, stream (FLUENCE, i)
 *   noise        Poisson then readout, pixel by pixel, stream (NOISE, i)
 * Patterns are produced in batches, in parallel, and handed in index order
 * to a writer callback, so the output streams and 10^6 patterns never
 * need to fit in memory.
 */
#ifndef EW_PHYSICS_XFEL_SIM_H
#define EW_PHYSICS_XFEL_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "geom/geom.h"
#include "physics/detector.h"
#include "physics/scatter.h"
#include "physics/slice.h"

typedef enum {
    EW_FLUENCE_CONSTANT = 0,  /* every pattern at the nominal fluence */
    EW_FLUENCE_GAMMA,         /* multiplier ~ Gamma(1/r^2, r^2): mean 1, relative spread r */
    EW_FLUENCE_LOGNORMAL,     /* multiplier ~ exp(N(-v/2, v)), v = ln(1 + r^2): mean 1, spread r */
    EW_FLUENCE_HISTOGRAM      /* multiplier ~ a measured histogram, scaled to mean 1 */
} ew_fluence_dist_t;

typedef struct {
    /* beam */
    double photons_per_pulse;   /* photons in the pulse (reference: 1e12) */
    double focus_radius_um;     /* top-hat focus radius, micrometres (reference: 0.5) */
    double fluence_factor;      /* multiplies the fluence (the paper's x10, x100); 0 -> 1 */
    ew_fluence_dist_t fluence_dist;
    double fluence_spread;      /* relative spread r for GAMMA / LOGNORMAL */
    const double *hist_values;  /* HISTOGRAM: bin centres (e.g. photons per pattern), borrowed */
    const double *hist_weights; /* HISTOGRAM: bin counts, borrowed */
    size_t hist_n;              /* HISTOGRAM: number of bins (>= 2) */
    double beam_jitter_px;      /* std of a Gaussian beam-centre offset per pattern, pixels (0: off) */
    /* noise */
    int poisson;                /* Poisson photon noise (1) or expected values (0) */
    double readout_sigma;       /* Gaussian readout noise std, photons (0: off) */
    double background;          /* expected background photons per pixel, before noise (0: off) */
    /* run */
    size_t n_patterns;
    size_t first_index;         /* index of the first pattern (to split one dataset in runs) */
    uint64_t seed;
    int exact;                  /* direct summation per pattern instead of slicing (needs atoms) */
    int keep_expected;          /* also hand noise-free patterns (lambda_p) to the writer */
    size_t batch;               /* patterns per parallel batch (0 -> 256) */
    int threads;                /* 0: OpenMP's default */
} ew_xfel_config_t;

/* The reference beam (neurorient / skopi): 1e12 photons in a 0.5 um
 * radius focus, fluence factor 1, constant fluence, Poisson noise on. */
ew_xfel_config_t ew_xfel_config_reference(void);

/* Nominal fluence of a configuration, photons per Angstrom^2:
 * fluence_factor x photons / (pi r^2), converted from um^2. */
double ew_xfel_fluence(const ew_xfel_config_t *cfg);

/* One simulated pattern as handed to the writer. */
typedef struct {
    size_t index;              /* pattern index */
    ew_quat_t quat;            /* true orientation (particle -> lab), w >= 0 */
    double fluence_mult;       /* fluence multiplier m (mean 1) */
    double fluence;            /* fluence at the particle, photons per um^2 */
    double beam_dx, beam_dy;   /* beam-centre offset, pixels */
    double photons_expected;   /* sum of the noise-free particle photons over ALL pixels */
    double photons_total;      /* photons (after noise) over all pixels, masked ones included:
                                  what reached the detector plane */
    double photons_recorded;   /* photons in pixels not marked EW_MASK_BAD: what was recorded */
    const float *data;         /* (npix) recorded photons (readout noise makes them
                                  non-integer); EW_MASK_BAD pixels hold 0 */
    const float *expected;     /* (npix) lambda_p without noise, or NULL (keep_expected = 0) */
} ew_xfel_pattern_t;

/* Writer callback: `count` consecutive patterns in index order, called
 * from the thread that called ew_xfel_simulate, while the other threads
 * already compute the next batch (the caller's thread joins them when the
 * callback returns; the callback need not be thread-safe, and one OpenMP
 * thread fewer is computing while it runs). Their data (and expected)
 * arrays are one contiguous buffer: patterns[k].data == patterns[0].data +
 * k * npix. The pointers are valid only during the call. Returning an
 * error stops the simulation with it. */
typedef ew_status_t (*ew_xfel_write_fn)(void *ctx, const ew_xfel_pattern_t *patterns, size_t count);

/* Running totals over a simulation. */
typedef struct {
    size_t n;                    /* patterns */
    double mean_expected;        /* mean photons_expected */
    double mean_total;           /* mean photons_total */
    double mean_recorded;        /* mean photons_recorded */
    double seconds;              /* wall time of ew_xfel_simulate */
} ew_xfel_stats_t;

/* The photon volume W(s) = fluence r_e^2 |F(s)|^2 (photons / sr) on the
 * grid (n, ds) (see ew_detector_volume_grid), by the fast FFT path of
 * scatter.h; fluence in photons / A^2 (ew_xfel_fluence). On error *W is
 * left empty. */
ew_status_t ew_xfel_photon_volume(const ew_atoms_t *atoms, int n, double ds, double fluence,
                                  const ew_scatter_volume_options_t *vopts, ew_rvol_t *W);

/* Simulate cfg->n_patterns patterns on detector det from the photon
 * volume W (photons / sr at the nominal fluence of cfg), or with
 * cfg->exact from atoms (W may then be NULL; atoms must not be NULL). Each
 * batch is handed to write(ctx, ...) in order; stats (may be NULL) gets
 * the totals. Errors: EW_ERR_ARG naming the field for an invalid
 * configuration (negative noise, a spread outside [0, 10], a bad
 * histogram, a volume grid that does not hold the detector), EW_ERR_NOMEM,
 * or the writer's error. */
ew_status_t ew_xfel_simulate(const ew_xfel_config_t *cfg, const ew_detector_t *det, const ew_rvol_t *W,
                             const ew_atoms_t *atoms, ew_xfel_write_fn write, void *ctx, ew_xfel_stats_t *stats);

/* Predicted mean particle photons per pattern over uniformly random
 * orientations (no background, fluence multiplier 1): sum_p corr_p
 * <W>(|s_p|), with <W> the spherical average of W estimated from the
 * voxels themselves (shells of width ds/2, mean radius and mean value,
 * interpolated linearly in |s|: no trilinear smoothing). *all_pixels
 * counts every pixel, *recorded only those not EW_MASK_BAD (either may be
 * NULL). EW_ERR_ARG if the volume does not reach the detector's corners. */
ew_status_t ew_xfel_predict_photons(const ew_detector_t *det, const ew_rvol_t *W, double *all_pixels,
                                    double *recorded);

/* Everything the CLI needs for one dataset. */
typedef struct {
    const char *structure_path;     /* PDB / mmCIF */
    ew_structure_options_t read;    /* reader selection (waters, hydrogens, HETATM) */
    ew_atoms_options_t atoms;       /* ions, B factors, occupancy */
    ew_detector_config_t detector;
    int volume_n;                   /* photon-volume voxels per axis (0: one pixel step) */
    ew_scatter_volume_options_t volume;
    ew_xfel_config_t sim;
} ew_xfel_setup_t;

/* A prepared dataset: the structure's scatterers (centred), the detector
 * and the photon volume. */
typedef struct {
    ew_atoms_t atoms;
    ew_detector_t det;
    ew_rvol_t W;                    /* photons / sr at the nominal fluence */
    double fluence;                 /* nominal fluence, photons / A^2 */
    double build_seconds;           /* time to build W */
} ew_xfel_model_t;

/* Read the structure, centre it, build the detector and the photon volume.
 * On error *m is left empty and the message names the file or field. */
ew_status_t ew_xfel_model_build(const ew_xfel_setup_t *setup, ew_xfel_model_t *m);
/* Free everything in m (m may be NULL); m is left empty. */
void ew_xfel_model_free(ew_xfel_model_t *m);

/* Where a simulation goes on disk (NULL paths: not written). */
typedef struct {
    const char *cxi_path;         /* CXI file (io/cxi.h): patterns, mask, geometry, ground truth
                                     (quaternions, fluence in photons/um^2, photons per pattern =
                                     photons_total: masked pixels included) */
    int cxi_deflate;              /* gzip level 0..9 */
    int with_expected;            /* also the noise-free patterns (ground_truth/expected) */
    const char *emc_path;         /* Dragonfly sparse photon file (io/emcfile.h); values are rounded
                                     by ew_cxi_round_count (nearest non-negative integer; readout noise) */
    const char *emc_detector_path;/* Dragonfly detector file (q in voxels of the photon volume) */
    const char *volume_path;      /* the true photon volume W, HDF5 (io/h5vol.h), photons/sr */
    const char *montage_path;     /* PNG: log-scale montage of the first patterns */
    int montage_count;            /* patterns in the montage (0 -> 16) */
    const char *histogram_path;   /* PNG: histogram of photons per pattern (photons_total) */
    const char *structure_name;   /* stored as metadata (may be NULL) */
    int cxi_dtype;                /* ew_cxi_dtype_t (io/cxi.h): float32 (0, the values as simulated), or
                                     int32 / uint16 photon counts rounded by ew_cxi_round_count */
} ew_xfel_output_t;

/* Load a measured photons-per-pattern histogram from a .npy file of shape
 * (2, nbins): row 0 the bin centres, row 1 the counts (as
 * ../shared/data/photon_counts_amo86615.npy), for EW_FLUENCE_HISTOGRAM.
 * *values and *weights are ew_alloc_array'd (caller frees with ew_free).
 * On error they are NULL and the message names the file and the shape. */
ew_status_t ew_xfel_load_photon_histogram(const char *path, double **values, double **weights, size_t *n);

/* Simulate cfg->n_patterns patterns of model m (cfg->exact uses the atoms)
 * and stream them to the files of out (at least one path, else
 * EW_ERR_ARG). The CXI patterns are written with direct_io (io/cxi.h:
 * O_DIRECT, asynchronous, where the pattern size and file system allow),
 * overlapping the computation of the next batch. Every file is written under a temporary name and renamed
 * when complete: on error no output file is left. stats may be NULL. */
ew_status_t ew_xfel_simulate_to_cxi(const ew_xfel_model_t *m, const ew_xfel_config_t *cfg,
                                    const ew_xfel_output_t *out, ew_xfel_stats_t *stats);

#endif
