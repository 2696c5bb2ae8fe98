/* ewald nn: all parameters of a model in one block, with named views.
 *
 * Layout (llm.c style). Parameters are registered first, each with its
 * PyTorch name and shape (e.g. "layer1.0.conv1.weight", (64, 64, 3, 3));
 * ew_params_alloc() then makes ONE allocation that holds
 *
 *     data  = [ learned parameters (n_train floats) | buffers (n_total - n_train) ]
 *     grad  = [ gradients, same layout as data[0, n_train) ]
 *     opt_m = [ first moment / momentum, same layout ]
 *     opt_v = [ second moment, same layout ]
 *
 * so zero_grad, AdamW, global-norm clipping, checkpointing and the MPI
 * all-reduce are single flat loops or calls. Buffers (batch-norm running
 * statistics, num_batches_tracked) live after the learned parameters and
 * have no gradient or optimizer state. A parameter's view is
 * ew_params_data(P, i) / ew_params_grad(P, i), i the index returned at
 * registration (stable; offsets are fixed at allocation).
 */
#ifndef EW_NN_PARAMS_H
#define EW_NN_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define EW_PARAM_NAME_MAX 96
#define EW_PARAM_MAX_DIM 4

typedef enum {
    EW_PARAM_WEIGHT = 0,  /* learned: has gradient and optimizer state */
    EW_PARAM_BUFFER = 1,  /* state that is saved but not learned (running mean/var) */
    EW_PARAM_COUNTER = 2  /* a buffer holding an integer count, saved as I64 (num_batches_tracked) */
} ew_param_kind_t;

typedef struct {
    char name[EW_PARAM_NAME_MAX];
    int ndim;                         /* 0 (scalar) .. 4 */
    int64_t shape[EW_PARAM_MAX_DIM];  /* PyTorch's layout, e.g. conv (out, in, kh, kw) */
    size_t count;                     /* product of shape */
    size_t offset;                    /* floats from the start of data (and of grad for weights) */
    ew_param_kind_t kind;
} ew_param_t;

typedef struct {
    ew_param_t *p;       /* registered tensors, in registration order */
    size_t n, cap;
    size_t n_train;      /* floats of learned parameters */
    size_t n_total;      /* floats of parameters + buffers */
    float *data;         /* n_total */
    float *grad;         /* n_train */
    float *opt_m;        /* n_train */
    float *opt_v;        /* n_train */
    int64_t step;        /* optimizer steps taken (saved in checkpoints) */
    int allocated;
} ew_params_t;

/* Start an empty registry. */
void ew_params_init(ew_params_t *P);

/* Register a tensor before ew_params_alloc. *index (may be NULL) gets its
 * index. Errors (EW_ERR_ARG): after allocation, ndim > 4, a non-positive
 * dimension, a name that is empty, too long or already registered. */
ew_status_t ew_params_add(ew_params_t *P, const char *name, ew_param_kind_t kind, int ndim,
                          const int64_t *shape, int *index);

/* Allocate the single zero-filled block and fix every offset (learned
 * parameters first, in registration order, then buffers). EW_ERR_NOMEM on
 * failure (the registry stays usable for ew_params_free). */
ew_status_t ew_params_alloc(ew_params_t *P);

/* Views into the block (valid after ew_params_alloc). ew_params_grad on a
 * buffer is a programmer error (EW_ASSERT). */
float *ew_params_data(const ew_params_t *P, int index);
float *ew_params_grad(const ew_params_t *P, int index);

/* Index of the tensor called name, or -1. */
int ew_params_find(const ew_params_t *P, const char *name);

/* grad = 0 (one memset). */
void ew_params_zero_grad(ew_params_t *P);

/* Free the block and the registry; P is left empty (NULL-safe). */
void ew_params_free(ew_params_t *P);

/* ---- initialisation (deterministic: draws of tensor i come from the
 * Philox stream (seed, ew_rng_stream_id(EW_RNG_TAG_INIT, i))). fan_in and
 * fan_out follow PyTorch: fan_in = shape[1] * prod(shape[2:]),
 * fan_out = shape[0] * prod(shape[2:]); for a 1-D tensor both are shape[0]. */

/* Set every element of tensor i to value. */
void ew_params_fill(ew_params_t *P, int i, float value);
/* Uniform(-bound, bound). */
void ew_init_uniform(ew_params_t *P, int i, double bound, uint64_t seed);
/* Normal(0, std). */
void ew_init_normal(ew_params_t *P, int i, double std, uint64_t seed);
/* He/Kaiming normal, fan_in mode: std = gain / sqrt(fan_in), gain =
 * sqrt(2 / (1 + a^2)) (a: LeakyReLU slope, 0 for ReLU). */
void ew_init_kaiming_normal(ew_params_t *P, int i, double a, uint64_t seed);
/* He/Kaiming uniform, fan_in mode: bound = gain * sqrt(3 / fan_in). */
void ew_init_kaiming_uniform(ew_params_t *P, int i, double a, uint64_t seed);
/* Xavier/Glorot uniform: bound = gain * sqrt(6 / (fan_in + fan_out)). */
void ew_init_xavier_uniform(ew_params_t *P, int i, double gain, uint64_t seed);
/* PyTorch's default for Linear/Conv: weight kaiming_uniform(a = sqrt 5),
 * i.e. U(+-1/sqrt(fan_in)); bias (bias_index >= 0) U(+-1/sqrt(fan_in)). */
void ew_init_torch_default(ew_params_t *P, int weight_index, int bias_index, uint64_t seed);
/* SIREN (Sitzmann et al. 2020): first layer U(+-1/fan_in), later layers
 * U(+-sqrt(6/fan_in)/omega). */
void ew_init_siren(ew_params_t *P, int i, int first_layer, double omega, uint64_t seed);

/* fan_in / fan_out of tensor i as defined above. */
size_t ew_params_fan_in(const ew_params_t *P, int i);
size_t ew_params_fan_out(const ew_params_t *P, int i);

#endif
