/* ewald nn: activations (kernels in act_impl.h). */
#include "nn/act.h"

#include <math.h>
#include <string.h>

#include "nn/threads.h"
#include "nn/tmpl.h"

static inline float sigmf_(float x)
{
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}
static inline double sigm_d(double x)
{
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
#define sigm sigmf_

/* sin(w x) for float: Cody-Waite reduction by pi/2 in float arithmetic
 * with a 3-part constant and the Cephes minimax polynomials on
 * [-pi/4, pi/4] (|error| < 3e-7 absolute for |w x| < 1e4, checked against
 * sin() in the tests). Branch-free so that it vectorises, unlike sinf
 * without -ffast-math; arguments beyond 1e4 are redone with sinf/cosf. */
#define EW_SIN_BIG 1e4f
static inline void ew_sincosf_poly(float a, float *sinv, float *cosv)
{
    const float two_over_pi = 0.636619772367581343f;
    const float p1 = 1.5703125f, p2 = 4.837512969970703125e-4f, p3 = 7.549789948768648e-8f;
    float kf = nearbyintf(a * two_over_pi);
    float r = ((a - kf * p1) - kf * p2) - kf * p3;
    int q = (int)kf;
    float r2 = r * r;
    float s = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
    float c = 1.0f - 0.5f * r2 +
              r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
    int swap = q & 1;
    float sv = swap ? c : s, cv = swap ? s : c;
    *sinv = (q & 2) ? -sv : sv;
    *cosv = ((q + 1) & 2) ? -cv : cv;
}

#define EW_SIN_BLOCK 4096

static void ew_nn_sin_scaled(float *y, const float *x, float w, size_t n)
{
    const long nb = (long)((n + EW_SIN_BLOCK - 1) / EW_SIN_BLOCK);
    #pragma omp parallel for num_threads(ew_nn_team_for(n)) schedule(static)
    for (long b = 0; b < nb; b++) {
        const size_t i0 = (size_t)b * EW_SIN_BLOCK, i1 = i0 + EW_SIN_BLOCK < n ? i0 + EW_SIN_BLOCK : n;
        #pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            float sv, cv;
            ew_sincosf_poly(w * x[i], &sv, &cv);
            y[i] = sv;
        }
        for (size_t i = i0; i < i1; i++)
            if (!(fabsf(w * x[i]) < EW_SIN_BIG)) y[i] = sinf(w * x[i]);
    }
}

static void ew_nn_sine_backward(float *dx, const float *dy, const float *x, float w, size_t n)
{
    const long nb = (long)((n + EW_SIN_BLOCK - 1) / EW_SIN_BLOCK);
    #pragma omp parallel for num_threads(ew_nn_team_for(n)) schedule(static)
    for (long b = 0; b < nb; b++) {
        const size_t i0 = (size_t)b * EW_SIN_BLOCK, i1 = i0 + EW_SIN_BLOCK < n ? i0 + EW_SIN_BLOCK : n;
        float keep[EW_SIN_BLOCK];
        #pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            float sv, cv;
            keep[i - i0] = dx[i];
            ew_sincosf_poly(w * x[i], &sv, &cv);
            dx[i] += dy[i] * w * cv;
        }
        for (size_t i = i0; i < i1; i++)
            if (!(fabsf(w * x[i]) < EW_SIN_BIG)) dx[i] = keep[i - i0] + dy[i] * w * cosf(w * x[i]);
    }
}

static void ew_nn_sin_scaled_d(double *y, const double *x, double w, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = sin(w * x[i]);
}

static void ew_nn_sine_backward_d(double *dx, const double *dy, const double *x, double w, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * w * cos(w * x[i]);
}

/* exposed for the tests of the polynomial */
float ew_nn_sinf(float a);
float ew_nn_sinf(float a)
{
    float sv, cv;
    ew_sincosf_poly(a, &sv, &cv);
    return sv;
}

#define T float
#define SFX
#define TM(fn) fn##f
#include "nn/act_impl.h"
#undef T
#undef SFX
#undef TM
#undef sigm

#define T double
#define SFX _d
#define TM(fn) fn
#include "nn/act_impl.h"
#undef T
#undef SFX
#undef TM
