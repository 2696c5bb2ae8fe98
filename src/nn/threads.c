/* ewald nn: core ownership policy (see threads.h). */
#include "nn/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"

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

void ew_nn_tune_environment(char **argv)
{
    if (!argv || !argv[0] || getenv("EWALD_NO_REEXEC")) return;
    int change = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        change = 1;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && (!strcmp(core, "Haswell") || !strcmp(core, "Zen")) &&
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        change = 1;
    }
#endif
    if (!change) return;
    setenv("EWALD_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}

static _Thread_local void *tl_scratch = NULL;
static _Thread_local size_t tl_scratch_size = 0;

void *ew_nn_scratch(size_t bytes)
{
    if (bytes > tl_scratch_size || !tl_scratch) {
        ew_free(tl_scratch);
        size_t want = bytes + bytes / 4 + 64;
        tl_scratch = ew_alloc_array(want, 1);
        tl_scratch_size = tl_scratch ? want : 0;
    }
    return tl_scratch;
}

void ew_nn_scratch_release(void)
{
    ew_free(tl_scratch);
    tl_scratch = NULL;
    tl_scratch_size = 0;
}
