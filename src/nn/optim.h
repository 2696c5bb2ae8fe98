/* ewald nn: optimizers, gradient clipping and learning-rate schedules.
 *
 * All act on a whole ew_params_t as flat loops over its learned part
 * (data[0, n_train), grad, opt_m, opt_v share one layout); buffers are
 * never touched. Each step increments P->step (the bias-correction step
 * of Adam), which checkpoints save. Updates are element-wise, so the
 * result does not depend on the thread count.
 *
 * ew_optim_step, per element with g = grad:
 *   SGD   (PyTorch, dampening 0): g += wd p; m = momentum m + g;
 *         p -= lr (nesterov ? g + momentum m : m)  (momentum 0: plain SGD)
 *   ADAM  (coupled L2 decay): g += wd p; m = b1 m + (1 - b1) g;
 *         v = b2 v + (1 - b2) g^2; p -= lr/(1 - b1^t) m / (sqrt(v)/sqrt(1 - b2^t) + eps)
 *   ADAMW (decoupled decay, Loshchilov & Hutter): p *= 1 - lr wd, then ADAM
 *         without the L2 term.
 */
#ifndef EW_NN_OPTIM_H
#define EW_NN_OPTIM_H

#include <stdint.h>

#include "nn/params.h"

typedef enum { EW_OPT_SGD = 0, EW_OPT_ADAM = 1, EW_OPT_ADAMW = 2 } ew_opt_kind_t;

typedef struct {
    ew_opt_kind_t kind;
    double momentum;      /* SGD */
    int nesterov;         /* SGD */
    double beta1, beta2;  /* Adam(W), e.g. 0.9, 0.999 */
    double eps;           /* Adam(W), e.g. 1e-8 */
    double weight_decay;  /* L2 (SGD, ADAM) or decoupled (ADAMW) */
} ew_optim_t;

/* Defaults as PyTorch: Adam/AdamW betas (0.9, 0.999), eps 1e-8, weight
 * decay 0 (Adam) / 0.01 (AdamW); SGD momentum 0.9. */
ew_optim_t ew_optim_default(ew_opt_kind_t kind);

/* One update of every learned parameter with learning rate lr; P->step++. */
void ew_optim_step(ew_params_t *P, const ew_optim_t *o, double lr);

/* Global L2 norm of all gradients (summed in double in a fixed order). */
double ew_grad_norm(const ew_params_t *P);

/* Scale all gradients so their global norm is at most max_norm (PyTorch
 * clip_grad_norm_: factor max_norm / (norm + 1e-6) when above). Returns
 * the norm before clipping. */
double ew_grad_clip(ew_params_t *P, double max_norm);

/* Linear warm-up from 0 to base over `warmup` steps (lr = base (step+1) /
 * warmup), then cosine decay to min_lr at step `total`; min_lr after. */
double ew_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, double base, double min_lr);

#endif
