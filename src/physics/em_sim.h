/* ewald physics: cryo-EM micrograph formation (ewald em simulate).
 *
 * One micrograph, "full" physics (mode EW_EM_FULL), in order:
 *  1. specimen (specimen.h): particles with uniform random rotations at
 *     random non-overlapping positions, optional heights in the ice;
 *  2. projected potential of each particle in its own box (peng.h: Peng
 *     1996 Gaussians with B-factors, integrated exactly over the pixels of
 *     the simulation grid, which is `oversample` times finer than the
 *     output when the pixel is coarse) and its projected thickness;
 *  3. ice (ice.h): smooth thickness t, mean potential and a random field,
 *     displaced by the particles;
 *  4. exit wave: psi = 1 + (i - eta) phi (weak phase, `phase_grating` 0)
 *     or exp((i - eta) phi) (phase grating), phi = sigma(V) V_z in rad,
 *     eta = A / sqrt(1 - A^2) for amplitude contrast A (the mean ice phase
 *     is removed: a constant phase changes nothing). A particle at height
 *     z is Fresnel-propagated in its box so its defocus is defocus - z;
 *  5. optics: Psi(s) *= E(s) exp(i chi(s)) for s != 0 (ctf.h), I = |psi|^2,
 *     which for a weak object gives I(s) = 2 CTF_cisTEM(s) phi(s)/sqrt(1-A^2);
 *  6. binning to the output pixel, zero-loss attenuation exp(-t / mfp);
 *  7. dose: expected counts lambda = dose pixel^2 I, filtered by the
 *     detector MTF (analytic counting-detector sinc(pi fx) sinc(pi fy),
 *     f in cycles/pixel, or a table) and linear motion blur
 *     sinc(pi s . drift): this is the clean image; the micrograph is
 *     Poisson(DQE0 lambda) / DQE0 counts per pixel (white counting noise,
 *     so DQE(f) = DQE0 MTF(f)^2).
 * GenEM preset (mode EW_EM_GENEM): clean = CTF applied to the particles'
 * projected phase phi (no ice, no heights, no detector), micrograph = clean
 * + white Gaussian noise of variance var(clean) / snr.
 *
 * Outputs per micrograph: the micrograph, the clean image, the particles'
 * projected phase phi (rad), a particle mask (projected protein thickness
 * above mask_thickness A; GenEM's mask-guided sampling), the ice thickness,
 * the particles (model, centre, height, pose) and the micrograph's CTF.
 *
 * Coordinates: pixel (i, j) has its centre at x = i pixel, y = j pixel (A);
 * a particle's pixel coordinates x / pixel, y / pixel are what STAR files
 * carry as rlnCoordinateX/Y (RELION rounds them to the centre pixel of the
 * extracted box, whose centre is box/2).
 *
 * Randomness: micrograph m draws its specimen from the RNG stream
 * (seed, ew_rng_stream_id(EW_RNG_TAG_SPECIMEN, m)), its defocus and ice
 * thickness from (EW_RNG_TAG_SPECIMEN, m | 2^47), the rows of its ice
 * field from (EW_RNG_TAG_NOISE, m 2^24 + 2^23 + row) and the rows of its
 * detector noise from (EW_RNG_TAG_NOISE, m 2^24 + row): results depend only
 * on (seed, m), not on the thread count. Loops are OpenMP-parallel; FFTs
 * use FFTW plans made once per shape in ew_em_sim_create.
 */
#ifndef EW_PHYSICS_EM_SIM_H
#define EW_PHYSICS_EM_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "io/structure.h"
#include "physics/ctf.h"
#include "physics/ice.h"
#include "physics/specimen.h"

typedef enum {
    EW_EM_FULL = 0,  /* full physics (ice, wave optics, dose, detector) */
    EW_EM_GENEM = 1  /* GenEM preset: projection, CTF, white Gaussian noise at an SNR */
} ew_em_mode_t;

typedef struct {
    /* micrographs */
    int nx, ny;               /* size, pixels (4096) */
    double pixel;             /* A (1.0) */
    int oversample;           /* simulation grid oversample x finer (>= 1); 0 = auto: ceil(pixel / 1 A), at most 4 */
    size_t n_micrographs;     /* (1) */
    uint64_t seed;            /* (0) */
    ew_em_mode_t mode;        /* (EW_EM_FULL) */
    int phase_grating;        /* 1: exp(i phi); 0: weak phase 1 + i phi (1) */
    /* specimen */
    ew_specimen_params_t specimen;
    double b_extra;           /* A^2 added to every atom's B (0) */
    /* optics: voltage, Cs, amplitude contrast, phase shift, envelopes from ctf;
     * per micrograph the mean defocus is uniform in [defocus_min, defocus_max]
     * and |dU - dV| uniform in [0, astig_max] at a uniform angle; when
     * defocus_min = defocus_max = 0, ctf's dU, dV and angle are used as given. */
    ew_ctf_params_t ctf;
    double defocus_min, defocus_max; /* A (10000, 25000) */
    double astig_max;         /* A (500) */
    /* ice (EW_EM_FULL) */
    ew_ice_params_t ice;
    const float *ice_weight;  /* optional weight map (mean scaled to 1), NULL = random thickness field */
    int ice_weight_nx, ice_weight_ny;
    /* dose and detector (EW_EM_FULL) */
    double dose;              /* electrons / A^2 (40) */
    double dqe0;              /* DQE at zero frequency, (0, 1] (0.9) */
    int mtf_analytic;         /* 1: counting-detector MTF sinc(pi fx) sinc(pi fy) (1) */
    const double *mtf_table;  /* (mtf_n, 2): f (cycles/pixel, increasing), MTF; overrides mtf_analytic */
    size_t mtf_n;
    double drift[2];          /* linear drift over the exposure, A (0, 0) */
    /* GenEM preset */
    double snr;               /* var(clean) / var(noise) (0.1) */
    /* outputs */
    double mask_thickness;    /* A of projected protein for the mask (3) */
    /* speed */
    int fft_measure;          /* 1: FFTW_MEASURE plans (about 10 s to plan at 4096^2, then ~10x faster
                                 transforms than FFTW_ESTIMATE); 0: FFTW_ESTIMATE (1) */
} ew_em_config_t;

/* Defaults as marked above. */
void ew_em_config_default(ew_em_config_t *c);
/* Check a configuration: EW_ERR_ARG naming the field and its value. */
ew_status_t ew_em_config_check(const ew_em_config_t *c);

typedef struct {
    int nx, ny;
    double pixel;               /* A */
    size_t index;               /* micrograph index */
    float *micrograph;          /* (ny, nx) counts per pixel (FULL) or contrast (GENEM) */
    float *clean;               /* (ny, nx) its noise-free expectation */
    float *projection;          /* (ny, nx) sigma V_z of the particles, rad */
    uint8_t *mask;              /* (ny, nx) 1 inside particles */
    float *thickness;           /* (ny, nx) ice thickness, A (zeros in GENEM) */
    size_t n_particles;
    ew_particle_t *particles;   /* x, y in A (see above), R = RELION's A */
    ew_ctf_params_t ctf;        /* this micrograph's CTF */
    double noise_sd;            /* GENEM: the noise's standard deviation; FULL: 0 */
    double seconds;             /* wall time of the simulation */
    double stage_seconds[4];    /* wall time of: specimen + projections, ice fields, exit wave + optics,
                                   detector + noise (the rest is binning and bookkeeping) */
} ew_em_micrograph_t;

typedef struct ew_em_sim ew_em_sim_t;

/* Prepare a simulator: check cfg, build the models of the n structures
 * (copied; the caller keeps ownership of structures and of cfg's arrays,
 * which must outlive the simulator) and the FFTW plans. On error *sim is
 * NULL and the message names the field or the structure. */
ew_status_t ew_em_sim_create(const ew_em_config_t *cfg, const ew_structure_t *structures, size_t n_structures,
                             ew_em_sim_t **sim);
/* The simulator's configuration (oversample resolved) and models. */
const ew_em_config_t *ew_em_sim_config(const ew_em_sim_t *sim);
const ew_em_model_t *ew_em_sim_model(const ew_em_sim_t *sim, size_t i);
size_t ew_em_sim_n_models(const ew_em_sim_t *sim);
/* Simulate micrograph index into *out (allocated here; free with
 * ew_em_micrograph_free). Depends only on (seed, index). On error *out is
 * left empty. Not thread-safe on the same sim (it is parallel inside). */
ew_status_t ew_em_sim_run(ew_em_sim_t *sim, size_t index, ew_em_micrograph_t *out);
void ew_em_sim_destroy(ew_em_sim_t *sim);
void ew_em_micrograph_free(ew_em_micrograph_t *m);

/* FFTW wisdom (the measured plans) from / to a file, so that FFTW_MEASURE
 * planning (seconds at 4096^2) is paid once per machine and size. Load: a
 * missing file is not an error (*loaded = 0); an unreadable or corrupt one
 * is (EW_ERR_FORMAT naming it). Save: atomic. Both serialize with the
 * planner. */
ew_status_t ew_em_fftw_wisdom_load(const char *path, int *loaded);
ew_status_t ew_em_fftw_wisdom_save(const char *path);

/* Cut a box x box image centred on pixel (round(cx), round(cy)) (pixel
 * units) of img (nx x ny) into out (box*box): out[j][i] = img[round(cy) -
 * box/2 + j][round(cx) - box/2 + i]; pixels outside img get the mean of
 * the pixels inside the box. */
void ew_em_extract_box(const float *img, int nx, int ny, double cx, double cy, int box, float *out);

/* ---- writing a data set (ewald em simulate) ----
 *
 * Layout under outdir (created if missing; paths inside STAR files are
 * relative to outdir, as RELION's project-relative names):
 *   micrographs/mic_NNNNNN.mrc             the micrograph (float32, pixel size set)
 *   micrographs/mic_NNNNNN_clean.mrc       its noise-free expectation
 *   micrographs/mic_NNNNNN_projection.mrc  the particles' projected phase, rad
 *   micrographs/mic_NNNNNN_mask.mrc        particle mask (int8 0/1)
 *   micrographs/mic_NNNNNN_thickness.mrc   ice thickness, A (EW_EM_FULL)
 *   micrographs.star   data_optics + data_micrographs (CTF per micrograph)
 *   particles.star     data_optics + data_particles: rlnMicrographName,
 *                      rlnCoordinateX/Y (pixels, pixel (0,0) centre = 0),
 *                      rlnAngleRot/Tilt/Psi (RELION's A = the particle's
 *                      R), rlnDefocusU/V (the micrograph's minus the
 *                      particle's height), rlnDefocusAngle, rlnPhaseShift,
 *                      rlnCtfBfactor, rlnClassNumber (structure index + 1)
 *                      and, with stacks, rlnImageName and
 *                      rlnOriginXAngst/YAngst = (round(c) - c) pixel, so that
 *                      the particle centre is the box centre minus the origin
 *   particles.mrcs     box x box particle images cut from the micrographs
 *                      (box > 0), in particles.star's order
 *   previews/mic_NNNNNN.png, mic_NNNNNN_clean.png   8-bit gray previews
 *                      (binned to at most png_max pixels a side, 0.5-99.5
 *                      percentile range) when png is set
 * Every file is written atomically; on error the files of the micrographs
 * already finished stay, the stack and STAR files are not written, and the
 * message names the file. */
typedef struct {
    const char *outdir;   /* output folder */
    int box;              /* particle box, pixels (even, > 0) or 0 for no stacks */
    int write_clean;      /* 1: *_clean.mrc (1) */
    int write_projection; /* 1: *_projection.mrc (1) */
    int write_mask;       /* 1: *_mask.mrc (1) */
    int write_thickness;  /* 1: *_thickness.mrc (0) */
    int png;              /* 1: PNG previews (1) */
    int png_max;          /* largest preview side, pixels (1024) */
} ew_em_output_t;

/* Defaults: box 0, clean, projection and mask on, thickness off, PNG
 * previews of at most 1024 pixels. */
void ew_em_output_default(ew_em_output_t *o);

/* Simulate cfg->n_micrographs micrographs of the structures and write them
 * as above (progress on stderr at info level). Returns the first error. */
ew_status_t ew_em_simulate_to_files(const ew_em_config_t *cfg, const ew_structure_t *structures,
                                    size_t n_structures, const ew_em_output_t *out);

#endif
