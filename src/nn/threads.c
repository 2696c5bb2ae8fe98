/* ewald nn: core ownership policy (see threads.h). */
#include "nn/threads.h"

#include <cblas.h>
#include <omp.h>

static int g_init = 0;
static ew_nn_threads_t g_mode = EW_NN_THREADS_OMP;
static int g_nthreads = 1;

void ew_nn_set_threads(ew_nn_threads_t mode, int nthreads)
{
    if (nthreads <= 0) nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
    g_mode = mode;
    g_nthreads = nthreads;
    openblas_set_num_threads(mode == EW_NN_THREADS_OMP ? 1 : nthreads);
    g_init = 1;
}

int ew_nn_team(void)
{
    if (!g_init) {
        #pragma omp critical(ew_nn_threads_init)
        {
            if (!g_init) ew_nn_set_threads(EW_NN_THREADS_OMP, 0);
        }
    }
    return g_mode == EW_NN_THREADS_OMP ? g_nthreads : 1;
}

ew_nn_threads_t ew_nn_threads_mode(void)
{
    (void)ew_nn_team();
    return g_mode;
}
