/* ewald recon: EMC state shared by emc.c (algorithm) and emc_io.c
 * (checkpoints, sparse-data helpers). Not a public header. */
#ifndef EW_RECON_EMC_INTERNAL_H
#define EW_RECON_EMC_INTERNAL_H

#include "recon/emc.h"

/* work buffers of one iteration, indices into ew_emc_t.wk */
enum {
    EW_EMC_WK_LSTORE, /* (N, R) float likelihood store */
    EW_EMC_WK_LOGW,   /* (threads, npix, T) float ln W tiles */
    EW_EMC_WK_VIEW,   /* (threads, npix, T) float compress tiles */
    EW_EMC_WK_ACC,    /* (threads, N) running log-sum-exp accumulators */
    EW_EMC_WK_U,      /* (R) double u_r */
    EW_EMC_WK_VOL,    /* (threads, 2 n^3) float (num, den) volumes */
    EW_EMC_WK_TMP,    /* (threads, T, n_good) float expand scratch */
    EW_EMC_WK_PHI,    /* (N) double new scales */
    EW_EMC_WK_LSE,    /* (N) double log-sum-exp */
    EW_EMC_WK_RED,    /* (2 n^3 + 3 N_all + 6) double all-reduce buffer */
    EW_EMC_WK_PBLK,   /* (threads, EW_EMC_CHUNK, T) float probabilities of a chunk */
    EW_EMC_WK_COUNT
};

struct ew_emc {
    ew_emc_config_t cfg;
    char *checkpoint;          /* owned copy of cfg.checkpoint */

    /* detector */
    size_t npix;
    float *s;                  /* (npix, 3) */
    float *corr;               /* (npix) c_p, 1 when not given */
    uint32_t *good;            /* mask-0 pixel indices */
    size_t n_good;
    uint32_t *mergep;          /* mask-0 and mask-1 pixel indices */
    size_t n_merge;
    double s_max;              /* largest |s| of a used pixel, 1/A */
    float *g_soa;              /* (4, n_good) s_x, s_y, s_z, corr of good[i] (structure of arrays) */
    float *m_soa;              /* (4, n_merge) the same for mergep[i] */
    size_t g_ld, m_ld;         /* row strides of g_soa, m_soa: padded to a multiple of 8 */

    /* this rank's patterns: global indices d0 .. d0 + nloc - 1 */
    size_t n_total, d0, nloc;
    uint64_t *o_off;           /* (nloc + 1) hits on mask-0 pixels */
    uint32_t *o_pix;
    float *o_cnt;
    uint64_t *m_off;           /* (nloc + 1) hits on mask-0 and mask-1 pixels */
    uint32_t *m_pix;
    float *m_cnt;
    double *K;                 /* (nloc) photons on mask-0 pixels */
    /* the merge hits again, pixel-major within chunks of EW_EMC_CHUNK
     * patterns (the compress product reads a chunk's probabilities per
     * pixel instead of adding every photon into a pixel row): chunk c holds
     * runs ck_run[c] .. ck_run[c+1]-1, run r is pixel run_pix[r] (ascending
     * within a chunk) with entries run_off[r] .. run_off[r+1]-1, each the
     * pattern ent_d (index within the chunk, ascending) and its photons ent_k */
    size_t n_chunk;
    uint64_t *ck_run;          /* (n_chunk + 1) */
    uint32_t *run_pix;         /* (runs) */
    uint64_t *run_off;         /* (runs + 1) */
    uint16_t *ent_d;           /* (merge hits) */
    float *ent_k;              /* (merge hits) */
    double mu;                 /* mean photons per pattern and mask-0 pixel (all ranks) */
    double mean_photons;       /* mean photons per pattern (all ranks) */

    /* rotations */
    ew_rotgrid_t grid;         /* owned copy */
    /* rotmat, logw and all loops use an internal order: internal index ri is
     * grid rotation perm[ri] (sorted for locality, see emc_set_grid) */
    uint32_t *perm;            /* (n_rot) */
    double *rotmat;            /* (n_rot, 9) R, row-major, internal order */
    double *logw;              /* (n_rot) ln w (-inf for w = 0), internal order */

    /* model and per-pattern results (all patterns) */
    ew_rvol_t model;
    float *scale;              /* (n_total) */
    int32_t *best_rot;         /* (n_total) */
    float *best_prob;          /* (n_total) */
    int iteration;

    int rank, nranks;

    /* work buffers of ew_emc_iterate (see emc_work in emc.c): kept between
     * iterations so that the large ones (likelihood store, thread volumes,
     * all-reduce buffer) are not page-faulted in again every iteration;
     * grown when the grid or the thread count grows, freed by ew_emc_free */
    void *wk[EW_EMC_WK_COUNT];
    size_t wk_bytes[EW_EMC_WK_COUNT];
};

/* beta used by iteration number it (1-based) under cfg's schedule. */
double ew_emc_beta_at(const ew_emc_config_t *c, int it);

#endif
