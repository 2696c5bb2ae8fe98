/* ewald nn: optimizers and schedules (see optim.h). */
#include "nn/optim.h"

#include <math.h>
#include <string.h>

#include "core/util.h"
#include "nn/threads.h"

ew_optim_t ew_optim_default(ew_opt_kind_t kind)
{
    ew_optim_t o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.momentum = kind == EW_OPT_SGD ? 0.9 : 0.0;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.weight_decay = kind == EW_OPT_ADAMW ? 0.01 : 0.0;
    return o;
}

void ew_optim_step(ew_params_t *P, const ew_optim_t *o, double lr)
{
    EW_ASSERT(P->allocated);
    const long n = (long)P->n_train;
    float *restrict p = P->data, *restrict g = P->grad, *restrict m = P->opt_m, *restrict v = P->opt_v;
    const float wd = (float)o->weight_decay, flr = (float)lr;
    const int nt = ew_nn_team_for((size_t)n);
    P->step++;
    if (o->kind == EW_OPT_SGD) {
        const float mom = (float)o->momentum;
        const int nest = o->nesterov;
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (long i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            if (mom != 0.0f) {
                m[i] = mom * m[i] + gi;
                gi = nest ? gi + mom * m[i] : m[i];
            }
            p[i] -= flr * gi;
        }
        return;
    }
    const double t = (double)P->step;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float step_size = (float)(lr / (1.0 - pow(o->beta1, t)));
    const float bc2s = (float)sqrt(1.0 - pow(o->beta2, t));
    const int decoupled = o->kind == EW_OPT_ADAMW;
    const float decay = decoupled ? 1.0f - flr * wd : 1.0f, l2 = decoupled ? 0.0f : wd;
    #pragma omp parallel for simd num_threads(nt) schedule(static)
    for (long i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float gi = g[i] + l2 * p[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2s + eps);
    }
}

double ew_grad_norm(const ew_params_t *P)
{
    enum { CHUNKS = 64 };
    double part[CHUNKS];
    const size_t n = P->n_train;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)n)) schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        size_t a = n * (size_t)c / CHUNKS, b = n * (size_t)(c + 1) / CHUNKS;
        double s = 0.0;
        for (size_t i = a; i < b; i++) s += (double)P->grad[i] * P->grad[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < CHUNKS; c++) s += part[c];
    return sqrt(s);
}

double ew_grad_clip(ew_params_t *P, double max_norm)
{
    double norm = ew_grad_norm(P);
    if (norm > max_norm) {
        float f = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < P->n_train; i++) P->grad[i] *= f;
    }
    return norm;
}

double ew_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, double base, double min_lr)
{
    if (step < warmup) return base * (double)(step + 1) / (double)warmup;
    if (step >= total || total <= warmup) return min_lr;
    double frac = (double)(step - warmup) / (double)(total - warmup);
    return min_lr + 0.5 * (base - min_lr) * (1.0 + cos(EW_PI * frac));
}
