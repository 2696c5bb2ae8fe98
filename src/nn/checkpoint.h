/* ewald nn: checkpoints in safetensors with PyTorch's names and layouts.
 *
 * A model's tensors are saved under their registered names and shapes
 * (conv weight (out, in, kh, kw), linear weight (out, in), batch norm
 * weight/bias/running_mean/running_var as F32, num_batches_tracked as I64
 * scalar), so a PyTorch model with the same structure loads them with
 * load_state_dict(safetensors.torch.load_file(path)) (after dropping the
 * "optim." entries). With the optimizer state, each learned tensor X also
 * gets "optim.exp_avg.X" and "optim.exp_avg_sq.X" (Adam moments; SGD
 * momentum in exp_avg), and the metadata holds "ewald.step" = P->step.
 * Values are stored bit-exactly, so loading a checkpoint and continuing
 * gives exactly the same training as never stopping.
 */
#ifndef EW_NN_CHECKPOINT_H
#define EW_NN_CHECKPOINT_H

#include <stddef.h>

#include "core/status.h"
#include "nn/params.h"

/* Write P (and, if with_optim, its optimizer state and step) to path
 * atomically, with n_meta extra metadata pairs (meta[2i] key, meta[2i+1]
 * value). Errors from ew_safetensors_write. */
ew_status_t ew_checkpoint_save(const char *path, const ew_params_t *P, int with_optim, const char *const *meta,
                               size_t n_meta);

/* Fill the allocated P from path: every registered tensor must be present
 * with the same number of elements (EW_ERR_FORMAT naming the file and
 * tensor otherwise; extra tensors in the file are ignored). with_optim
 * also restores the optimizer moments and the step (EW_ERR_FORMAT if the
 * file has none). On error P's contents are unspecified. */
ew_status_t ew_checkpoint_load(const char *path, ew_params_t *P, int with_optim);

#endif
