/* ewald demo: the end-to-end run behind `ewald demo`, as library calls.
 *
 * On the structure shipped with ewald (data/2cex.pdb) it
 *   XFEL:    simulates a dataset (xfel_sim.h), reconstructs the 3D
 *            intensity with EMC (emc.h) from a random start, aligns it to
 *            the truth (align.h) and compares (shell-centred intensity
 *            FSC, orientation error), phases the reconstruction and the true intensity
 *            (phase.h) and compares the densities with the structure's
 *            density (density FSC); trains the self-supervised model
 *            (ssl.h) briefly and scores its orientations;
 *   cryo-EM: simulates micrographs with full physics and one with the
 *            GenEM preset (em_sim.h), shows them with the true particle
 *            positions, trains the noise translation (gen/gen.h, CUT)
 *            briefly and translates the GenEM micrograph; trains the
 *            particle picker (em_pick.h) on annotated full-physics
 *            micrographs and scores it on held-out ones (AUPRC,
 *            precision-recall); boxes particles from densely packed
 *            micrographs and reconstructs the 3D potential (em_recon.h)
 *            with the simulator's poses and with poses from projection
 *            matching (em_pose.h), with half-map and against-the-truth FSC;
 * and writes out_dir/report.html (figures embedded; the PNGs are kept in
 * out_dir/fig/) with every parameter used and a timing table. A step
 * switched off in the configuration (0 steps, epochs or particles) gets a
 * "not run" section saying so.
 */
#ifndef EW_REPORT_DEMO_H
#define EW_REPORT_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "physics/em_sim.h"
#include "report/report.h"

typedef struct {
    const char *out_dir;        /* output folder, created if missing ("demo-out") */
    const char *structure_path; /* PDB/mmCIF; NULL: ew_demo_find_structure() */
    int quick;                  /* 1: the --quick sizes (set by ew_demo_config_default) */
    uint64_t seed;              /* every random draw derives from it (1) */
    int threads;                /* OpenMP / FFTW threads (0: OpenMP's default) */
    int run_xfel, run_em;       /* which halves run (1, 1) */
    /* XFEL dataset */
    int det_n;                  /* detector pixels per side (64; quick 40) */
    double speckle_px;          /* pixels per speckle: pixel = 1 / (speckle_px * diameter) in s (6) */
    double fluence_factor;      /* x the reference fluence (100) */
    size_t n_patterns;          /* patterns (3000; quick 1000) */
    /* EMC */
    int emc_level_lo, emc_level_hi; /* 600-cell grid levels, coarse to fine (4, 6; quick 4, 5) */
    int emc_iters;              /* iterations per level (10; quick 8); the last level gets 1.5x */
    double emc_beta_start, emc_beta_factor; /* annealing (0.1, 1.5) */
    int emc_beta_period;        /* iterations per beta step (3) */
    /* self-supervised model */
    size_t ssl_patterns;        /* patterns it trains on (3000; quick 1000) */
    double ssl_epochs;          /* epochs (4; quick 2; 0: skip) */
    /* phasing */
    int phase_loops, phase_starts; /* recipe loops and random starts (10, 4; quick 4, 2) */
    /* cryo-EM */
    int em_micrographs;         /* full-physics micrographs (2; quick 1) */
    int em_size;                /* micrograph side, pixels (1024; quick 512) */
    double em_pixel;            /* A per pixel (3) */
    double em_particles;        /* particles per micrograph (40; quick 12) */
    long cut_steps;             /* noise-translation training steps (150; quick 30; 0: skip) */
    /* cryo-EM particle picking (full-physics micrographs as above) */
    int pick_train_micrographs; /* annotated training micrographs, the first em_micrographs reused (4; quick 2) */
    int pick_test_micrographs;  /* held-out micrographs it is scored on (2; quick 1) */
    int pick_steps;             /* picker training steps (300; quick 80; 0: skip) */
    int pick_bin;               /* micrograph binning for the picker (3) */
    int pick_width;             /* picker channels (8) */
    /* cryo-EM 3D reconstruction (separate micrographs, particles packed densely) */
    size_t recon_particles;     /* particles boxed at their true centres (1500; quick 400; 0: skip) */
    int recon_pose_level;       /* 600-cell level of projection matching (4; 0: the simulator's poses only) */
    size_t recon_pose_particles; /* particles whose poses are searched, the first of the set (400; quick 100) */
    double recon_ref_res;       /* A: the true map low-passed to this is projection matching's reference (30) */
} ew_demo_config_t;

/* The defaults above (quick = 0 or 1). */
void ew_demo_config_default(ew_demo_config_t *c, int quick);

/* The headline figures of a run (NAN where a step did not run). */
typedef struct {
    char *report_path;          /* out_dir/report.html (owned; free with ew_demo_results_free) */
    double photons_per_pattern; /* mean recorded photons per XFEL pattern */
    int vol_n;                  /* intensity grid, voxels per axis */
    double edge_res;            /* detector edge resolution, A */
    double emc_orient_median_deg, emc_orient_p90_deg; /* EMC orientation error vs the truth */
    double emc_grid_spacing_deg; /* spacing of the finest rotation grid */
    double emc_ifsc_frac09;     /* fraction of shells up to the edge with shell-centred intensity FSC >= 0.9
                                   (ew_fsc_intensity_centred: sqrt(I), shell means removed) */
    double emc_ifsc_res05;      /* shell-centred intensity FSC 0.5 resolution, A */
    double emc_dfsc_res05, emc_dfsc_res0143; /* density FSC of the phased EMC intensity vs the truth, A */
    double truth_dfsc_res05;    /* density FSC of the phased TRUE intensity vs the truth, A (phasing alone) */
    double emc_phase_error;     /* Fourier error of the best phasing start */
    double ssl_orient_median_deg; /* self-supervised model's orientation error median (after the best global
                                     rotation and hand) */
    int ssl_vol_ok;             /* the learned intensity was resampled and aligned for phasing */
    double ssl_dfsc_res05;      /* density FSC 0.5 of the phased self-supervised intensity vs the truth, A */
    int ssl_run, cut_run, pick_run, emrecon_run; /* 0: step not in this build */
    size_t em_micrographs, em_particles; /* simulated micrographs and particles in them */
    double cut_psd_simulated, cut_psd_translated; /* noise PSD distance to full physics, before / after */
    double pick_auprc;          /* picker on the held-out micrographs: Topaz AUPRC */
    double pick_precision, pick_recall; /* ... at the best F1 */
    size_t recon_particles;     /* particles reconstructed */
    double recon_res0143;       /* half-map FSC 0.143 resolution with the simulator's poses, A */
    double recon_truth_res05;   /* FSC 0.5 of that map against the true potential, A */
    double recon_pose_median_deg; /* projection matching: orientation error median, deg */
    double recon_pose_res0143;  /* half-map FSC 0.143 with the matched poses, A */
    double recon_pose_truth_res05; /* FSC 0.5 of that map against the true potential, A */
    double seconds_xfel, seconds_em, seconds_total;
} ew_demo_results_t;

/* The default structure: data/2cex.pdb relative to the working folder,
 * else beside the executable (../data/2cex.pdb, ../share/ewald/2cex.pdb),
 * else $EWALD_DATA/pdb/2cex.pdb. Returns a static string, or NULL when
 * none exists (message set). */
const char *ew_demo_find_structure(void);

/* Run the demo with configuration c; fills *res (which the caller frees
 * with ew_demo_results_free). Progress goes to stderr through
 * ew_progress_* / ew_info. Errors: the failing step's status and message
 * (a missing structure names the paths tried, an unwritable out_dir names
 * it); the report is written only when every step succeeded. */
ew_status_t ew_demo_run(const ew_demo_config_t *c, ew_demo_results_t *res);

/* Free what ew_demo_run allocated in res (res may be NULL). */
void ew_demo_results_free(ew_demo_results_t *res);

/* ---- the two halves, for ew_demo_run (and tests) ---- */

/* Build a path "out_dir/fig/name" into buf (size n). */
void ew_demo_fig_path(const ew_demo_config_t *c, const char *name, char *buf, size_t n);

/* The XFEL half: sections, figures, parameters and timings go into r. */
ew_status_t ew_demo_xfel(const ew_demo_config_t *c, ew_report_t *r, ew_demo_results_t *res);
/* The cryo-EM half (calls the two below). */
ew_status_t ew_demo_em(const ew_demo_config_t *c, ew_report_t *r, ew_demo_results_t *res);
/* Cryo-EM particle picking: train the picker on the annotated micrographs
 * 0 .. c->pick_train_micrographs - 1 of sim (the first n_have of them are
 * mg, already simulated), score it on the held-out micrographs that follow
 * mg and the training set; section, figures, parameters into r. rad: the
 * particle radius, A. */
ew_status_t ew_demo_em_pick(const ew_demo_config_t *c, ew_report_t *r, ew_em_sim_t *sim, const ew_em_micrograph_t *mg,
                            int n_have, double rad, ew_demo_results_t *res);
/* Cryo-EM 3D reconstruction: micrographs simulated with base (full
 * physics; its particle count and seed are replaced) until
 * c->recon_particles particles are boxed; direct Fourier inversion with the
 * simulator's poses and with poses from projection matching; half-map and
 * against-the-truth FSC; section, figures, parameters into r. */
ew_status_t ew_demo_em_recon(const ew_demo_config_t *c, ew_report_t *r, const ew_structure_t *s,
                             const ew_em_config_t *base, ew_demo_results_t *res);

/* A scatter plot (each point a small '+') of n points (x, y) with the
 * diagonal y = x drawn, written to path as PNG; ranges [lo, hi] on both
 * axes. */
ew_status_t ew_demo_scatter_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                                const double *x, const double *y, size_t n, double lo, double hi);

#endif
