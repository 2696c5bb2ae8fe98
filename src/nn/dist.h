/* ewald nn: data parallelism over MPI.
 *
 * Every rank holds the whole model; each takes its share of the global
 * batch, computes the loss as the mean over its local samples, runs the
 * backward pass, then ew_dist_allreduce_grads() replaces every gradient
 * by the mean over ranks: ONE MPI_Allreduce over the flat gradient block
 * (P->grad, n_train floats). With equal local batches this is the
 * gradient of the mean loss over the global batch, so the optimizer step
 * (identical on all ranks) gives the parameters a single process would
 * get with the whole batch, to float rounding. Batch-norm statistics stay
 * per rank (as in PyTorch DDP without SyncBatchNorm).
 *
 * Built with MPI when compiled with -DEW_HAVE_MPI (make MPI=1); otherwise
 * these are single-process no-ops (rank 0 of 1).
 */
#ifndef EW_NN_DIST_H
#define EW_NN_DIST_H

#include <stddef.h>

#include "core/status.h"
#include "nn/params.h"

/* MPI_Init if MPI is present and not yet initialised (argc/argv may be
 * NULL). EW_ERR_INTERNAL if MPI_Init fails. */
ew_status_t ew_dist_init(int *argc, char ***argv);
/* MPI_Finalize if this module initialised MPI. */
void ew_dist_finalize(void);
/* This process's rank and the number of ranks (0 and 1 without MPI). */
int ew_dist_rank(void);
int ew_dist_size(void);

/* P->grad = (sum over ranks of P->grad) / size, in one MPI_Allreduce. */
ew_status_t ew_dist_allreduce_grads(ew_params_t *P);

/* Copy rank 0's parameters and buffers (P->data) and step to every rank,
 * so all start identical. */
ew_status_t ew_dist_broadcast_params(ew_params_t *P);

/* x[i] = sum over ranks of x[i] (for losses and metrics). */
ew_status_t ew_dist_allreduce_sum(double *x, size_t n);

#endif
