/* ewald nn: who owns the cores.
 *
 * Two policies, never mixed (the pthread OpenBLAS must not be called with
 * more than one thread from inside an OpenMP region):
 *
 *   EW_NN_THREADS_OMP  (default) OpenMP owns the cores. Layers split their
 *                      work (samples of a batch, row blocks of a matrix)
 *                      over nthreads OpenMP threads and each calls sgemm
 *                      with ONE BLAS thread. Reductions over the split
 *                      (weight gradients) go through per-thread buffers
 *                      summed in thread order, so results are
 *                      deterministic for a fixed thread count.
 *   EW_NN_THREADS_BLAS OpenBLAS owns the cores: layer loops run on one
 *                      thread and every sgemm uses nthreads BLAS threads.
 *
 * docs/nn.md records the measurements behind the default. Selecting a
 * policy calls openblas_set_num_threads(), which is process-wide.
 */
#ifndef EW_NN_THREADS_H
#define EW_NN_THREADS_H

#include <stddef.h>

typedef enum { EW_NN_THREADS_OMP = 0, EW_NN_THREADS_BLAS = 1 } ew_nn_threads_t;

/* Select the policy and the thread count (nthreads <= 0: omp_get_max_threads()).
 * Calls openblas_set_num_threads(1) for OMP, (nthreads) for BLAS. */
void ew_nn_set_threads(ew_nn_threads_t mode, int nthreads);

/* Number of OpenMP threads the layers use now (1 in BLAS mode). The first
 * call applies the default policy if none was selected. */
int ew_nn_team(void);

/* ew_nn_team(), or 1 when `work` (elements touched, or FLOPs / 64) is
 * below EW_NN_PAR_MIN: small layers run on one thread, since a parallel
 * region costs a fork/join that, on a shared machine, can wait for a
 * descheduled partner thread. */
#define EW_NN_PAR_MIN ((size_t)1 << 16)
static inline int ew_nn_team_for(size_t work)
{
    return work < EW_NN_PAR_MIN ? 1 : ew_nn_team();
}

/* Opt-in start-up tuning, to call first thing in main(): re-executes the
 * program (execv of /proc/self/exe with the same argv) once with
 *   OMP_WAIT_POLICY=passive   unless set: idle OpenMP threads sleep instead
 *                             of spinning (on a shared, oversubscribed
 *                             machine spinning made training steps 6-10x
 *                             slower; see docs/nn.md);
 *   OPENBLAS_CORETYPE=SkylakeX unless set, when the CPU has AVX-512
 *                             (F, BW, DQ, VL) and OpenBLAS picked its
 *                             Haswell or Zen kernels (OpenBLAS 0.3.21 does
 *                             so on AMD Zen 4): twice the sgemm rate here.
 * Both are read by libgomp / OpenBLAS only at load time, hence the
 * re-execution. Returns without doing anything when nothing needs to
 * change, when EWALD_NO_REEXEC is set (it is set for the re-executed
 * process), or when execv fails. */
void ew_nn_tune_environment(char **argv);

/* Scratch memory of the calling thread for the layer kernels (im2col
 * columns, per-thread partial gradients): grow-only, 64-byte aligned,
 * kept between calls so that large buffers are not mapped and faulted in
 * again at every layer (that cost ~8% of a ResNet step). Valid until the
 * next call on the same thread. NULL (with a message) when out of memory. */
void *ew_nn_scratch(size_t bytes);
/* Free the calling thread's scratch memory. */
void ew_nn_scratch_release(void);

/* The current policy. */
ew_nn_threads_t ew_nn_threads_mode(void);

#endif
