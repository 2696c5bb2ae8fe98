/* ewald recon: phase retrieval of a 3D intensity volume into an electron density.
 *
 * Input: an intensity volume I(s) = |F(s)|^2 on the simulator's reciprocal
 * grid (physics/slice.h: n^3 voxels (z, y, x), spacing ds in 1/Angstrom,
 * s = 0 at voxel c = n / 2), and optionally a mask of the voxels that were
 * measured (inside the detector's s range, outside the beam stop). Unknown
 * voxels "float free": the Fourier constraint leaves them as the current
 * estimate has them.
 *
 * Output: a real density on the real-space grid of the same n, voxel size
 * 1 / (n ds) Angstrom, r = 0 at voxel c = n / 2 (so it can be written as an
 * MRC map as it is). The density is in electrons per voxel when I is in
 * electrons^2: the unnormalised DFT of the density is F.
 *
 * Algorithms (x: the iterate, P_M the Fourier-modulus projection, P_S the
 * support (and positivity) projection, p = P_M x):
 *   ER    x' = P_S p                                   (Fienup 1982)
 *   HIO   x' = p inside S*, x - beta p outside          (Fienup 1982)
 *   DM    x' = x + beta [P_S f_M(x) - P_M f_S(x)],
 *         f_M = (1 + 1/beta) P_M - 1/beta, f_S = (1 - 1/beta) P_S + 1/beta
 *                                                      (Elser 2003)
 *   RAAR  x' = beta/2 (R_S R_M + 1) x + (1 - beta) P_M x, R = 2P - 1
 *                                                      (Luke 2005)
 * Reality holds by construction (real-to-complex transforms); positivity
 * is an option of P_S. Shrinkwrap (Marchesini 2003) replaces the support
 * by the voxels where |x| blurred with a periodic Gaussian of sigma voxels
 * reaches threshold * its maximum; sigma goes geometrically from
 * sw_sigma_start to sw_sigma_end over the loops. Recentering rolls the
 * iterate and support so the density's centre of mass is at the origin.
 *
 * The reference recipe (ew_phase_config_default): 100 loops of ER x50,
 * HIO x25 (beta 0.3), DM x25 (beta 0.3), ER x50, each loop followed by
 * shrinkwrap (sigma 1) and recentering; 10 independent starts, the one
 * with the smallest Fourier error kept; all starts aligned to it
 * (translation, hand, sign) and averaged; the PRTF of the starts and its
 * 1/e resolution.
 *
 * FFTs: single-precision FFTW, in-place r2c/c2r plans made once per phaser
 * (shape), multi-threaded (fftwf threads). No allocation inside the loop.
 */
#ifndef EW_RECON_PHASE_H
#define EW_RECON_PHASE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "physics/slice.h"

typedef enum {
    EW_PHASE_ER = 0,
    EW_PHASE_HIO = 1,
    EW_PHASE_DM = 2,
    EW_PHASE_RAAR = 3
} ew_phase_algo_t;

/* Name of an algorithm ("ER", "HIO", "DM", "RAAR"). */
const char *ew_phase_algo_name(ew_phase_algo_t a);
/* Parse "er", "hio", "dm", "raar" (any case). EW_ERR_ARG naming the text
 * if unknown. */
ew_status_t ew_phase_algo_parse(const char *text, ew_phase_algo_t *a);

typedef struct {
    ew_phase_algo_t algo;
    int iters;   /* iterations of this block (>= 0) */
    double beta; /* feedback (HIO, RAAR) or DM constant; in (0, 1] (ignored by ER) */
} ew_phase_step_t;

#define EW_PHASE_MAX_STEPS 16

typedef struct {
    int nsteps;                                  /* blocks in one loop (1..EW_PHASE_MAX_STEPS) */
    ew_phase_step_t steps[EW_PHASE_MAX_STEPS];   /* one loop of the recipe */
    int loops;                                   /* loops (>= 1) */
    int starts;                                  /* independent random starts (>= 1) */
    uint64_t seed;                               /* start k draws from stream (EW_RNG_TAG_PHASE, k) */
    int positivity;                              /* 1: P_S also zeroes negative density */
    int shrinkwrap_every;                        /* shrinkwrap after every this many loops (0: never) */
    double sw_sigma_start, sw_sigma_end;         /* Gaussian sigma in voxels, first and last loop (> 0) */
    double sw_threshold;                         /* fraction of the blurred maximum kept, (0, 1) */
    int recenter;                                /* 1: recentre after every loop */
    double ac_sigma;                             /* blur of the autocorrelation for the initial support, voxels (>= 0) */
    double ac_threshold;                         /* initial support: blurred autocorrelation >= this * its max, (0, 1) */
    int nthreads;                                /* FFTW and OpenMP threads (>= 1) */
    int fftw_measure;                            /* 1: FFTW_MEASURE plans (slower planning, faster FFTs), 0: ESTIMATE */
} ew_phase_config_t;

/* Fill c with the reference recipe above (positivity on, ac_sigma 1,
 * ac_threshold 0.02, sw_threshold 0.04, nthreads 2, FFTW_MEASURE, seed 1). */
void ew_phase_config_default(ew_phase_config_t *c);

/* EW_OK if c is usable; EW_ERR_ARG naming the first bad field and value. */
ew_status_t ew_phase_config_check(const ew_phase_config_t *c);

/* ---- The phaser: plans and buffers for one grid size ---------------- */

typedef struct ew_phaser ew_phaser_t;

/* Make a phaser for n^3 grids (n >= 4): FFTW plans (threads and effort
 * from c) and all buffers. *out is NULL on error (EW_ERR_NOMEM, or
 * EW_ERR_ARG naming the bad config field). The phaser keeps a copy of c. */
ew_status_t ew_phaser_create(ew_phaser_t **out, int n, const ew_phase_config_t *c);
/* Free everything (NULL is a no-op). */
void ew_phaser_free(ew_phaser_t *ph);

/* Load the data: intensity->data is I(s) (n^3, centred), known is NULL
 * (all measured) or n^3 bytes, nonzero where measured. The amplitudes are
 * sqrt of I made Friedel-symmetric (mean of I(s), I(-s) over the measured
 * ones; negative values count as 0). EW_ERR_ARG if the size differs from
 * the phaser's or nothing is measured; EW_ERR_NUMERIC naming the voxel if a
 * measured value is not finite. On error the phaser keeps its old data. */
ew_status_t ew_phaser_set_data(ew_phaser_t *ph, const ew_rvol_t *intensity, const uint8_t *known);

/* Set the support (n^3 bytes, centred layout, nonzero inside) and fill the
 * iterate with uniform random values in [0, scale) inside it, drawn from
 * stream (EW_RNG_TAG_PHASE, start) of the config's seed; scale is chosen so
 * the density's sum matches the zero-frequency amplitude if it is known, 1
 * otherwise. EW_ERR_ARG if the support is empty. */
ew_status_t ew_phaser_init(ew_phaser_t *ph, const uint8_t *support, uint64_t start);

/* Set the support (as ew_phaser_init, may not be empty: EW_ERR_ARG) and
 * the iterate to density (n^3, centred layout), e.g. to continue from an
 * earlier result. */
ew_status_t ew_phaser_set_iterate(ew_phaser_t *ph, const uint8_t *support, const float *density);

/* Run iters iterations of algo (beta as in ew_phase_step_t) on the
 * current iterate. Needs set_data and init first (EW_ASSERT). */
void ew_phaser_iterate(ew_phaser_t *ph, ew_phase_algo_t algo, double beta, int iters);

/* Shrinkwrap the support with the given sigma (voxels) and threshold
 * (fraction of the blurred maximum). If the new support would be empty
 * the old one is kept and EW_ERR_NUMERIC is returned. */
ew_status_t ew_phaser_shrinkwrap(ew_phaser_t *ph, double sigma, double threshold);

/* Roll the iterate and support so the centre of mass of the density
 * inside the support is at the origin (integer voxels, up to 10 rounds). */
void ew_phaser_recenter(ew_phaser_t *ph);

/* Project the iterate onto the constraints once (one ER iteration), copy
 * the density to density (n^3, centred layout) and support to support
 * (may be NULL), and return its Fourier error
 *   sqrt( sum_known (|F| - A)^2 / sum_known A^2 ). */
double ew_phaser_finish(ew_phaser_t *ph, float *density, uint8_t *support);

/* Fourier error (as above) of any density (n^3, centred layout). */
double ew_phaser_error(ew_phaser_t *ph, const float *density);

/* One complete start: initial support (copied), random iterate from
 * stream `start`, the config's loops with shrinkwrap and recentering, and
 * ew_phaser_finish. Returns the Fourier error in *error. */
ew_status_t ew_phaser_run(ew_phaser_t *ph, const uint8_t *support0, uint64_t start, float *density,
                          uint8_t *support, double *error);

/* Run `loops` loops of the config's recipe (its steps, then shrinkwrap and
 * recentering as configured, with the sigma schedule spread over these
 * loops) on the current iterate, e.g. after ew_phaser_set_iterate with new
 * data (M-TIP). Needs set_data and init/set_iterate first (EW_ASSERT). */
void ew_phaser_loops(ew_phaser_t *ph, int loops);

/* Time of one forward + one backward FFT of this phaser (seconds, the
 * mean of reps pairs on scratch buffers; the iterate is not touched). */
double ew_phaser_time_fft_pair(ew_phaser_t *ph, int reps);

/* ---- Support, alignment, PRTF ---------------------------------------- */

/* Initial support from the autocorrelation: the inverse FFT of the measured
 * intensities (an unmeasured voxel takes the mean measured intensity of its
 * shell, inside the beam stop that of the innermost measured shell, beyond
 * the outermost measured shell 0), blurred by a periodic Gaussian of
 * sigma voxels (0: none), thresholded at threshold * its maximum. support
 * is n^3 bytes in centred layout (the autocorrelation's origin at c).
 * EW_ERR_ARG on bad n, sigma or threshold; EW_ERR_NOMEM. */
ew_status_t ew_phase_support_autocorr(const ew_rvol_t *intensity, const uint8_t *known, double sigma,
                                      double threshold, int nthreads, uint8_t *support);

/* Periodic Gaussian blur (kernel exp(-d^2 / (2 sigma^2)) normalised,
 * truncated at 4 sigma, separable) of an n^3 volume, in place. sigma <= 0
 * leaves vol unchanged. EW_ERR_NOMEM on failure (vol unchanged). */
ew_status_t ew_phase_blur(float *vol, int n, double sigma, int nthreads);

typedef struct {
    double shift[3];  /* (z, y, x) voxels t: out(r) = sign * m(r - t), m = mov or its mirror */
    int enantiomer;   /* 1: the mirror image m(r) = mov(-r) (index i -> (n - i) % n) matched */
    int sign;         /* +1 or -1: the global phase of a real density */
    double cc;        /* Pearson correlation of ref and the aligned mov */
} ew_phase_align_t;

/* Align mov to ref (both n^3 real densities, periodic, same layout):
 * search all integer translations of mov and of its mirror image by FFT
 * cross-correlation, take the peak of largest |correlation| (its sign is
 * the global phase), refine the translation to a fraction of a voxel with
 * a parabola through the peak, and write
 *   out = sign * T_shift(mov or mirror(mov))
 * (shift applied as a Fourier phase ramp) to out (n^3, may equal mov).
 * info may be NULL. EW_ERR_NOMEM on failure (out untouched). */
ew_status_t ew_phase_align(const float *ref, const float *mov, int n, int nthreads, float *out,
                           ew_phase_align_t *info);

/* Phase-retrieval transfer function of k aligned densities (each n^3),
 * ewald's one PRTF (eval/prtf.h, Chapman et al. 2006): per voxel of the
 * densities' transforms |mean_i F_i| / sqrt(mean_i |F_i|^2), averaged over
 * the voxels of Fourier shell j (|k| rounded to j voxels, j = 0..n/2,
 * s_j = j ds); measured voxels only if known (centred n^3) is not NULL.
 * Identical densities give 1, opposite ones 0; a shell with no measured
 * voxel is NaN. prtf and s get n/2 + 1 values. *resolution is 1/s where
 * prtf first falls below 1/e (ew_curve_crossing: linear between shells,
 * from shell 1 on; 1/s_1 when shell 1 is already below) or 1/s_(n/2) if
 * it never does (then *reached = 0). EW_ERR_ARG if k < 1 or n < 4;
 * EW_ERR_NOMEM. */
ew_status_t ew_phase_prtf(const float *const *dens, int k, int n, double ds, const uint8_t *known,
                          int nthreads, double *prtf, double *s, double *resolution, int *reached);

/* The intensity of a density: I = |DFT(density)|^2 (n^3, centred layouts
 * in and out: r = 0 and s = 0 at voxel n / 2), electrons^2 for a density
 * in electrons per voxel. EW_ERR_NOMEM / EW_ERR_INTERNAL (FFTW) on
 * failure, I untouched. */
ew_status_t ew_phase_intensity(const float *density, int n, int nthreads, float *I);

/* ---- Everything: the `ewald phase` entry point ------------------------ */

typedef struct {
    int n;
    double voxel;         /* Angstrom: 1 / (n ds) */
    float *density;       /* best start, n^3 (z, y, x), centred, electrons per voxel; owned */
    uint8_t *support;     /* its support, n^3; owned */
    float *average;       /* all starts aligned to the best and averaged, n^3; owned */
    double error;         /* Fourier error of the best start */
    int best;             /* index of the best start */
    int nstarts;
    double *errors;       /* Fourier error per start (nstarts); owned */
    ew_phase_align_t *align; /* per start, its alignment to the best (nstarts); owned */
    int nshells;          /* n/2 + 1 */
    double *prtf, *prtf_s;/* PRTF per shell and the shell's s (1/Angstrom); owned */
    double resolution;    /* PRTF 1/e resolution, Angstrom */
    int resolution_reached; /* 0: the PRTF never fell below 1/e (resolution = edge) */
    double seconds;       /* wall time */
    long iterations;      /* iterations per start */
} ew_phase_result_t;

/* Phase intensity (with known as in ew_phaser_set_data) with the recipe c:
 * initial support from the autocorrelation, c->starts runs, the best by
 * Fourier error, alignment + average + PRTF. Progress (one step per loop
 * of each start) is reported with ew_progress. On error *res is left empty
 * and the message (starting "phase: ") names the bad field or value. Free
 * with ew_phase_result_free. */
ew_status_t ew_phase_run(const ew_rvol_t *intensity, const uint8_t *known, const ew_phase_config_t *c,
                         ew_phase_result_t *res);
/* Free the result's arrays (NULL-safe); res is left empty. */
void ew_phase_result_free(ew_phase_result_t *res);

#endif
