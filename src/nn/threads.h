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

typedef enum { EW_NN_THREADS_OMP = 0, EW_NN_THREADS_BLAS = 1 } ew_nn_threads_t;

/* Select the policy and the thread count (nthreads <= 0: omp_get_max_threads()).
 * Calls openblas_set_num_threads(1) for OMP, (nthreads) for BLAS. */
void ew_nn_set_threads(ew_nn_threads_t mode, int nthreads);

/* Number of OpenMP threads the layers use now (1 in BLAS mode). The first
 * call applies the default policy if none was selected. */
int ew_nn_team(void);

/* The current policy. */
ew_nn_threads_t ew_nn_threads_mode(void);

#endif
