/* ewald nn: data parallelism over MPI (see dist.h). */
#include "nn/dist.h"

#include <limits.h>

#ifdef EW_HAVE_MPI
#include <mpi.h>
#endif

#ifdef EW_HAVE_MPI
static int g_we_initialised = 0;

static ew_status_t mpi_ready(void)
{
    int init = 0;
    MPI_Initialized(&init);
    if (!init) return ew_fail(EW_ERR_ARG, "dist: MPI is not initialised (call ew_dist_init first)");
    return EW_OK;
}
#endif

ew_status_t ew_dist_init(int *argc, char ***argv)
{
#ifdef EW_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
        if (MPI_Init(argc, argv) != MPI_SUCCESS) return ew_fail(EW_ERR_INTERNAL, "dist: MPI_Init failed");
        g_we_initialised = 1;
    }
#else
    (void)argc;
    (void)argv;
#endif
    return EW_OK;
}

void ew_dist_finalize(void)
{
#ifdef EW_HAVE_MPI
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_we_initialised && !fin) MPI_Finalize();
    g_we_initialised = 0;
#endif
}

int ew_dist_rank(void)
{
#ifdef EW_HAVE_MPI
    int init = 0, r = 0;
    MPI_Initialized(&init);
    if (init) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
#else
    return 0;
#endif
}

int ew_dist_size(void)
{
#ifdef EW_HAVE_MPI
    int init = 0, s = 1;
    MPI_Initialized(&init);
    if (init) MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
#else
    return 1;
#endif
}

ew_status_t ew_dist_allreduce_grads(ew_params_t *P)
{
#ifdef EW_HAVE_MPI
    EW_TRY(mpi_ready());
    int size = ew_dist_size();
    if (size == 1) return EW_OK;
    if (P->n_train > INT_MAX) return ew_fail(EW_ERR_RANGE, "dist: %zu gradients exceed one MPI call", P->n_train);
    if (MPI_Allreduce(MPI_IN_PLACE, P->grad, (int)P->n_train, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return ew_fail(EW_ERR_INTERNAL, "dist: MPI_Allreduce of %zu gradients failed", P->n_train);
    const float inv = 1.0f / (float)size;
    for (size_t i = 0; i < P->n_train; i++) P->grad[i] *= inv;
#else
    (void)P;
#endif
    return EW_OK;
}

ew_status_t ew_dist_broadcast_params(ew_params_t *P)
{
#ifdef EW_HAVE_MPI
    EW_TRY(mpi_ready());
    if (ew_dist_size() == 1) return EW_OK;
    if (P->n_total > INT_MAX) return ew_fail(EW_ERR_RANGE, "dist: %zu parameters exceed one MPI call", P->n_total);
    long long step = P->step;
    if (MPI_Bcast(P->data, (int)P->n_total, MPI_FLOAT, 0, MPI_COMM_WORLD) != MPI_SUCCESS ||
        MPI_Bcast(&step, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return ew_fail(EW_ERR_INTERNAL, "dist: MPI_Bcast of the parameters failed");
    P->step = step;
#else
    (void)P;
#endif
    return EW_OK;
}

ew_status_t ew_dist_allreduce_sum(double *x, size_t n)
{
#ifdef EW_HAVE_MPI
    EW_TRY(mpi_ready());
    if (ew_dist_size() == 1 || n == 0) return EW_OK;
    if (n > INT_MAX) return ew_fail(EW_ERR_RANGE, "dist: %zu values exceed one MPI call", n);
    if (MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return ew_fail(EW_ERR_INTERNAL, "dist: MPI_Allreduce of %zu values failed", n);
#else
    (void)x;
    (void)n;
#endif
    return EW_OK;
}
