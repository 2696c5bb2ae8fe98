/* ewald recon: M-TIP, multi-tiered iterative phasing (Donatelli, Spence &
 * Zwart, PNAS 114, 7222 (2017); spinifel): the conventional reconstruction
 * of a density from unoriented diffraction patterns, beside the ML one.
 *
 * One cycle, from a density rho (real space, phase.h conventions):
 *   1. model      W = |DFT(rho)|^2 on the reciprocal grid (n, ds);
 *   2. orient     every pattern y gets the rotation R of a 600-cell grid
 *                 that maximises the cosine similarity of y with the model
 *                 slice m_p = corr_p W(R^T s_p) over its good pixels with
 *                 |s| below a resolution that ramps up over the cycles
 *                 (slice.h, trilinear), and the scale a = (y.m) / (m.m);
 *   3. merge      I = sum_i merge(y_i / (a_i corr)) / sum_i merge(1), the
 *                 trilinear adjoint (slice.h); voxels no pixel reached are
 *                 unmeasured;
 *   4. phase      `phase_loops` loops of the phasing recipe on I, from the
 *                 current density and support (phase.h), ending with ER.
 * Cycle 0 starts from random orientations (seed, or init_quat) and phases
 * from the autocorrelation support with the recipe's full `loops`, the best
 * of its `starts` by Fourier error.
 *
 * Orientations are found on a fixed grid (no refinement between grid
 * points), so their accuracy is the grid's spacing; the intensity of a
 * centrosymmetric object's central slice cannot tell a pattern's
 * orientation from the one turned by 180 degrees about the beam (only the
 * Ewald curvature can), which is harmless to the merge.
 */
#ifndef EW_RECON_MTIP_H
#define EW_RECON_MTIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "geom/geom.h"
#include "recon/phase.h"

typedef struct {
    int cycles;               /* M-TIP cycles (>= 1) */
    int rot_level;            /* 600-cell refinement level of the orientation grid (1..40) */
    int phase_loops;          /* recipe loops per cycle after the first (>= 1) */
    ew_phase_config_t phase;  /* phasing recipe (steps, shrinkwrap, threads); its loops are cycle 0's */
    uint64_t seed;            /* cycle 0's random orientations: stream (EW_RNG_TAG_ORIENTATION, pattern) */
    size_t rot_chunk;         /* rotations sliced at once (memory: rot_chunk x good pixels floats); 0 -> 64 */
    double ramp_start;        /* orientation matching uses the pixels with |s| <= f s_max, f going linearly
                                 from ramp_start (cycle 1) to 1 (the last cycle); (0, 1], default 0.4 */
    double weight_power;      /* orientation matching weights pixel p by (|s_p| / s_max)^weight_power (>= 0;
                                 default 2: flattens the steep fall of I with |s|) */
    const ew_quat_t *init_quat; /* (npat) cycle 0's orientations instead of random ones (e.g. from EMC), or NULL; borrowed */
} ew_mtip_config_t;

/* Defaults: 20 cycles, level 6 (10 (5 6^3 + 6) = 10860 rotations, ~6
 * degrees), 5 loops per cycle of the reference phasing recipe, 20 loops and
 * 4 starts in cycle 0, resolution ramp from 0.4, weight power 2, seed 1. */
void ew_mtip_config_default(ew_mtip_config_t *c);

/* The detector as M-TIP needs it (borrowed arrays). */
typedef struct {
    size_t npix;
    const float *s;        /* (npix, 3) lab-frame s, 1/Angstrom */
    const float *corr;     /* (npix) polarization x solid angle (any positive scale), or NULL for 1 */
    const uint8_t *mask;   /* (npix) pixels with value 2 (EW_MASK_BAD) are not used, or NULL */
} ew_mtip_detector_t;

typedef struct {
    int n;
    double ds;            /* reciprocal grid spacing, 1/Angstrom */
    double voxel;         /* real-space voxel, Angstrom: 1 / (n ds) */
    float *density;       /* n^3 centred, electrons per voxel on the merged scale; owned */
    uint8_t *support;     /* n^3; owned */
    float *intensity;     /* the last merged intensity, n^3 centred (0 where unmeasured); owned */
    uint8_t *known;       /* n^3: 1 where the last merge reached; owned */
    size_t npat;
    ew_quat_t *quat;      /* (npat) the orientation of each pattern (particle -> lab); owned */
    float *scale;         /* (npat) the fitted scale a of each pattern; owned */
    int cycles;
    double *error;        /* (cycles) Fourier error of the phased density against the merge; owned */
    double *similarity;   /* (cycles) mean best cosine similarity of the patterns; owned */
    double seconds;
} ew_mtip_result_t;

/* Reconstruct a density on the grid (n, ds) from npat patterns
 * (patterns[i * det->npix + p], photons, row-major as the detector) with
 * the config c. The grid must hold every good pixel at any orientation
 * (|s| <= (n/2 - 1) ds), else EW_ERR_ARG naming the pixel. Progress is
 * reported per cycle. On error *res is left empty and the message names
 * the bad argument. Free with ew_mtip_result_free. */
ew_status_t ew_mtip_run(const float *patterns, size_t npat, const ew_mtip_detector_t *det, int n, double ds,
                        const ew_mtip_config_t *c, ew_mtip_result_t *res);

/* Free the result's arrays (NULL-safe); res is left empty. */
void ew_mtip_result_free(ew_mtip_result_t *res);

#endif
