/* ewald recon: helpers shared by the phase-retrieval sources (not public). */
#ifndef EW_RECON_PHASE_INTERNAL_H
#define EW_RECON_PHASE_INTERNAL_H

#include <fftw3.h>

/* Make FFTW's planner thread-safe and multi-threaded (once per process),
 * then create a plan with nthreads threads under a lock. Each returns NULL
 * when FFTW cannot plan. */
fftwf_plan ew_phase_plan_r2c(int n, float *in, fftwf_complex *out, int nthreads, unsigned flags);
fftwf_plan ew_phase_plan_c2r(int n, fftwf_complex *in, float *out, int nthreads, unsigned flags);
/* Destroy a plan under the same lock (NULL is a no-op). */
void ew_phase_plan_destroy(fftwf_plan p);

/* ew_phaser_run, adding 1 to progress (may be NULL) after every loop. */
#include "recon/phase.h"
ew_status_t ew_phaser_run_progress(ew_phaser_t *ph, const uint8_t *support0, uint64_t start, float *density,
                                   uint8_t *support, double *error, ew_progress_t *progress);

/* Signed frequency / coordinate of FFT index k on an n grid. */
static inline int ew_phase_signed(int k, int n)
{
    return k <= n / 2 ? k : k - n;
}

#endif
