/* ewald nn: parameter block (see params.h). */
#include "nn/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/rng.h"

void ew_params_init(ew_params_t *P)
{
    memset(P, 0, sizeof *P);
}

ew_status_t ew_params_add(ew_params_t *P, const char *name, ew_param_kind_t kind, int ndim,
                          const int64_t *shape, int *index)
{
    if (P->allocated) return ew_fail(EW_ERR_ARG, "parameter %s: registered after allocation", name);
    if (!name || !name[0] || strlen(name) >= EW_PARAM_NAME_MAX)
        return ew_fail(EW_ERR_ARG, "parameter name '%s' is empty or longer than %d", name ? name : "",
                       EW_PARAM_NAME_MAX - 1);
    if (ndim < 0 || ndim > EW_PARAM_MAX_DIM)
        return ew_fail(EW_ERR_ARG, "parameter %s: ndim = %d is not in 0..4", name, ndim);
    if (ew_params_find(P, name) >= 0)
        return ew_fail(EW_ERR_ARG, "parameter %s: registered twice", name);
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) return ew_fail(EW_ERR_ARG, "parameter %s: shape[%d] = %lld is not positive",
                                          name, d, (long long)shape[d]);
        EW_TRY(ew_size_mul(count, (size_t)shape[d], &count));
    }
    EW_TRY(ew_grow((void **)&P->p, &P->cap, P->n + 1, sizeof *P->p));
    ew_param_t *t = &P->p[P->n];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->count = count;
    t->kind = kind;
    if (index) *index = (int)P->n;
    P->n++;
    return EW_OK;
}

ew_status_t ew_params_alloc(ew_params_t *P)
{
    EW_ASSERT(!P->allocated);
    size_t off = 0;
    for (size_t i = 0; i < P->n; i++)
        if (P->p[i].kind == EW_PARAM_WEIGHT) {
            P->p[i].offset = off;
            off += P->p[i].count;
        }
    P->n_train = off;
    for (size_t i = 0; i < P->n; i++)
        if (P->p[i].kind != EW_PARAM_WEIGHT) {
            P->p[i].offset = off;
            off += P->p[i].count;
        }
    P->n_total = off;
    /* pad each region to 16 floats so every region stays 64-byte aligned */
    size_t tot = (P->n_total + 15) & ~(size_t)15, tr = (P->n_train + 15) & ~(size_t)15;
    float *block = ew_calloc_array(tot + 3 * tr, sizeof(float));
    if (!block) return EW_ERR_NOMEM;
    P->data = block;
    P->grad = block + tot;
    P->opt_m = P->grad + tr;
    P->opt_v = P->opt_m + tr;
    P->step = 0;
    P->allocated = 1;
    return EW_OK;
}

float *ew_params_data(const ew_params_t *P, int index)
{
    EW_ASSERT(P->allocated && index >= 0 && (size_t)index < P->n);
    return P->data + P->p[index].offset;
}

float *ew_params_grad(const ew_params_t *P, int index)
{
    EW_ASSERT(P->allocated && index >= 0 && (size_t)index < P->n);
    EW_ASSERT(P->p[index].kind == EW_PARAM_WEIGHT);
    return P->grad + P->p[index].offset;
}

int ew_params_find(const ew_params_t *P, const char *name)
{
    for (size_t i = 0; i < P->n; i++)
        if (strcmp(P->p[i].name, name) == 0) return (int)i;
    return -1;
}

void ew_params_zero_grad(ew_params_t *P)
{
    if (P->allocated && P->n_train) memset(P->grad, 0, P->n_train * sizeof(float));
}

void ew_params_free(ew_params_t *P)
{
    if (!P) return;
    ew_free(P->data);
    free(P->p);
    memset(P, 0, sizeof *P);
}

size_t ew_params_fan_in(const ew_params_t *P, int i)
{
    const ew_param_t *t = &P->p[i];
    if (t->ndim < 2) return t->ndim ? (size_t)t->shape[0] : 1;
    return t->count / (size_t)t->shape[0];
}

size_t ew_params_fan_out(const ew_params_t *P, int i)
{
    const ew_param_t *t = &P->p[i];
    if (t->ndim < 2) return t->ndim ? (size_t)t->shape[0] : 1;
    return t->count / (size_t)t->shape[1];
}

void ew_params_fill(ew_params_t *P, int i, float value)
{
    float *d = ew_params_data(P, i);
    for (size_t k = 0; k < P->p[i].count; k++) d[k] = value;
}

void ew_init_uniform(ew_params_t *P, int i, double bound, uint64_t seed)
{
    float *d = ew_params_data(P, i);
    ew_rng_t r;
    ew_rng_init(&r, seed, ew_rng_stream_id(EW_RNG_TAG_INIT, (uint64_t)i));
    for (size_t k = 0; k < P->p[i].count; k++) d[k] = (float)((2.0 * ew_rng_uniform(&r) - 1.0) * bound);
}

void ew_init_normal(ew_params_t *P, int i, double std, uint64_t seed)
{
    float *d = ew_params_data(P, i);
    ew_rng_t r;
    ew_rng_init(&r, seed, ew_rng_stream_id(EW_RNG_TAG_INIT, (uint64_t)i));
    for (size_t k = 0; k < P->p[i].count; k++) d[k] = (float)(std * ew_rng_normal(&r));
}

void ew_init_kaiming_normal(ew_params_t *P, int i, double a, uint64_t seed)
{
    double gain = sqrt(2.0 / (1.0 + a * a));
    ew_init_normal(P, i, gain / sqrt((double)ew_params_fan_in(P, i)), seed);
}

void ew_init_kaiming_uniform(ew_params_t *P, int i, double a, uint64_t seed)
{
    double gain = sqrt(2.0 / (1.0 + a * a));
    ew_init_uniform(P, i, gain * sqrt(3.0 / (double)ew_params_fan_in(P, i)), seed);
}

void ew_init_xavier_uniform(ew_params_t *P, int i, double gain, uint64_t seed)
{
    double fi = (double)ew_params_fan_in(P, i), fo = (double)ew_params_fan_out(P, i);
    ew_init_uniform(P, i, gain * sqrt(6.0 / (fi + fo)), seed);
}

void ew_init_torch_default(ew_params_t *P, int weight_index, int bias_index, uint64_t seed)
{
    double bound = 1.0 / sqrt((double)ew_params_fan_in(P, weight_index));
    ew_init_uniform(P, weight_index, bound, seed);
    if (bias_index >= 0) ew_init_uniform(P, bias_index, bound, seed);
}

void ew_init_siren(ew_params_t *P, int i, int first_layer, double omega, uint64_t seed)
{
    double n = (double)ew_params_fan_in(P, i);
    ew_init_uniform(P, i, first_layer ? 1.0 / n : sqrt(6.0 / n) / omega, seed);
}
