/* ewald nn: patch gathering and the PatchNCE loss (see gen_ops.h). */
#include "nn/gen_ops.h"

#include <math.h>
#include <stdlib.h>

#include "core/core.h"

#define EW_GEN_OPS_DEFINE(T, SFX)                                                                  \
    void ew_patch_gather##SFX(T *out, const T *x, const int32_t *idx, int n, int c, int hw, int np) \
    {                                                                                              \
        for (int b = 0; b < n; b++)                                                                \
            for (int j = 0; j < np; j++) {                                                         \
                const int32_t p = idx[(size_t)b * np + j];                                         \
                EW_ASSERT(p >= 0 && p < hw);                                                       \
                T *o = out + ((size_t)b * np + j) * c;                                             \
                const T *xb = x + (size_t)b * c * hw + p;                                          \
                for (int ch = 0; ch < c; ch++) o[ch] = xb[(size_t)ch * hw];                        \
            }                                                                                      \
    }                                                                                              \
    void ew_patch_scatter_add##SFX(T *dx, const T *dout, const int32_t *idx, int n, int c, int hw, \
                                   int np)                                                         \
    {                                                                                              \
        for (int b = 0; b < n; b++)                                                                \
            for (int j = 0; j < np; j++) {                                                         \
                const int32_t p = idx[(size_t)b * np + j];                                         \
                EW_ASSERT(p >= 0 && p < hw);                                                       \
                const T *o = dout + ((size_t)b * np + j) * c;                                      \
                T *xb = dx + (size_t)b * c * hw + p;                                               \
                for (int ch = 0; ch < c; ch++) xb[(size_t)ch * hw] += o[ch];                       \
            }                                                                                      \
    }                                                                                              \
    double ew_patchnce_loss##SFX(T *dq, const T *q, const T *k, int na, int d, const int32_t *pos, \
                                 const int32_t *noff, const int32_t *neg, double tau, double g)   \
    {                                                                                              \
        if (na <= 0) return 0.0;                                                                   \
        double total = 0.0;                                                                        \
        _Pragma("omp parallel for reduction(+ : total) schedule(static) if (na > 64)")             \
        for (int a = 0; a < na; a++) {                                                             \
            const T *qa = q + (size_t)a * d;                                                       \
            const int m = noff[a + 1] - noff[a];                                                   \
            /* logits: index 0 positive, 1..m negatives */                                         \
            double lmax = -INFINITY;                                                               \
            double *l = malloc(sizeof(double) * (size_t)(m + 1));                                  \
            EW_ASSERT(l != NULL);                                                                  \
            for (int j = 0; j <= m; j++) {                                                         \
                const int32_t key = j == 0 ? pos[a] : neg[noff[a] + j - 1];                        \
                const T *kk = k + (size_t)key * d;                                                 \
                double s = 0.0;                                                                    \
                for (int t = 0; t < d; t++) s += (double)qa[t] * kk[t];                            \
                l[j] = s / tau;                                                                    \
                if (l[j] > lmax) lmax = l[j];                                                      \
            }                                                                                      \
            double z = 0.0;                                                                        \
            for (int j = 0; j <= m; j++) z += exp(l[j] - lmax);                                    \
            total += lmax + log(z) - l[0];                                                         \
            if (dq) {                                                                              \
                T *da = dq + (size_t)a * d;                                                        \
                for (int j = 0; j <= m; j++) {                                                     \
                    const double p = exp(l[j] - lmax) / z - (j == 0 ? 1.0 : 0.0);                  \
                    const double f = g * p / (tau * na);                                           \
                    const int32_t key = j == 0 ? pos[a] : neg[noff[a] + j - 1];                    \
                    const T *kk = k + (size_t)key * d;                                             \
                    for (int t = 0; t < d; t++) da[t] += (T)(f * kk[t]);                           \
                }                                                                                  \
            }                                                                                      \
            free(l);                                                                               \
        }                                                                                          \
        return total / na;                                                                         \
    }

EW_GEN_OPS_DEFINE(float, )
EW_GEN_OPS_DEFINE(double, _d)
