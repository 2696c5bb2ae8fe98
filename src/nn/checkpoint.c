/* ewald nn: safetensors checkpoints (see checkpoint.h). */
#include "nn/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "io/safetensors.h"

#define OPT_PREFIX_M "optim.exp_avg."
#define OPT_PREFIX_V "optim.exp_avg_sq."

ew_status_t ew_checkpoint_save(const char *path, const ew_params_t *P, int with_optim, const char *const *meta,
                               size_t n_meta)
{
    EW_ASSERT(P->allocated);
    size_t ne = P->n * (with_optim ? 3 : 1);
    ew_st_entry_t *e = calloc(ne ? ne : 1, sizeof *e);
    int64_t *counters = calloc(P->n ? P->n : 1, sizeof *counters);
    char **names = calloc(ne ? ne : 1, sizeof *names);
    const char **mkv = calloc(2 * n_meta + 4, sizeof *mkv);
    if (!e || !counters || !names || !mkv) {
        free(e);
        free(counters);
        free(names);
        free(mkv);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t k = 0;
    ew_status_t s = EW_OK;
    for (size_t i = 0; i < P->n; i++) {
        const ew_param_t *t = &P->p[i];
        e[k].name = t->name;
        e[k].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e[k].shape[d] = t->shape[d];
        if (t->kind == EW_PARAM_COUNTER) {
            EW_ASSERT(t->count == 1);
            counters[i] = (int64_t)P->data[t->offset];
            e[k].dtype = EW_ST_I64;
            e[k].data = &counters[i];
        } else {
            e[k].dtype = EW_ST_F32;
            e[k].data = P->data + t->offset;
        }
        k++;
    }
    if (with_optim)
        for (size_t i = 0; i < P->n && s == EW_OK; i++) {
            const ew_param_t *t = &P->p[i];
            if (t->kind != EW_PARAM_WEIGHT) continue;
            for (int w = 0; w < 2; w++) {
                size_t len = strlen(t->name) + 32;
                names[k] = malloc(len);
                if (!names[k]) {
                    s = ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                snprintf(names[k], len, "%s%s", w ? OPT_PREFIX_V : OPT_PREFIX_M, t->name);
                e[k] = e[i];
                e[k].name = names[k];
                e[k].data = (w ? P->opt_v : P->opt_m) + t->offset;
                k++;
            }
        }
    char step[32];
    snprintf(step, sizeof step, "%" PRId64, P->step);
    size_t nm = 0;
    for (size_t i = 0; i < 2 * n_meta; i++) mkv[nm++] = meta[i];
    mkv[nm++] = "format";
    mkv[nm++] = "pt";
    if (with_optim) {
        mkv[nm++] = "ewald.step";
        mkv[nm++] = step;
    }
    if (s == EW_OK) s = ew_safetensors_write(path, e, k, mkv, nm / 2);
    for (size_t i = 0; i < ne; i++) free(names[i]);
    free(names);
    free(e);
    free(counters);
    free(mkv);
    return s;
}

ew_status_t ew_checkpoint_load(const char *path, ew_params_t *P, int with_optim)
{
    EW_ASSERT(P->allocated);
    ew_safetensors_t st;
    EW_TRY(ew_safetensors_read(path, &st));
    ew_status_t s = EW_OK;
    char name[EW_PARAM_NAME_MAX + 32];
    for (size_t i = 0; i < P->n && s == EW_OK; i++) {
        const ew_param_t *t = &P->p[i];
        if (t->kind == EW_PARAM_COUNTER) {
            int64_t v = 0;
            s = ew_safetensors_get_i64(&st, t->name, &v, 1);
            P->data[t->offset] = (float)v;
        } else {
            s = ew_safetensors_get_f32(&st, t->name, P->data + t->offset, t->count);
        }
        if (s == EW_OK && with_optim && t->kind == EW_PARAM_WEIGHT) {
            snprintf(name, sizeof name, OPT_PREFIX_M "%s", t->name);
            s = ew_safetensors_get_f32(&st, name, P->opt_m + t->offset, t->count);
            snprintf(name, sizeof name, OPT_PREFIX_V "%s", t->name);
            if (s == EW_OK) s = ew_safetensors_get_f32(&st, name, P->opt_v + t->offset, t->count);
        }
    }
    if (s == EW_OK && with_optim) {
        const char *v = ew_safetensors_meta(&st, "ewald.step");
        char *end = NULL;
        long long stp = v ? strtoll(v, &end, 10) : -1;
        if (!v || *end || stp < 0)
            s = ew_fail(EW_ERR_FORMAT, "%s: metadata ewald.step is missing or invalid", path);
        else
            P->step = stp;
    }
    ew_safetensors_free(&st);
    return s;
}
