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
 * with a 3-part constant and minimax polynomials (|error| < 2 ulp for
 * |w x| < 1e4, checked against sin() in the tests); vectorises, unlike
 * sinf without -ffast-math. Outside that range falls back to sinf. */
static inline float ew_sinf_poly(float a, float *cosv)
{
    const float two_over_pi = 0.636619772367581343f;
    const float p1 = 1.5703125f, p2 = 4.837512969970703125e-4f, p3 = 7.549789948768648e-8f;
    float kf = nearbyintf(a * two_over_pi);
    float r = ((a - kf * p1) - kf * p2) - kf * p3;
    int q = (int)kf;
    float r2 = r * r;
    float s = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
    float c = 1.0f - 0.5f * r2 + r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
    float sv, cv;
    switch (q & 3) {
    case 0: sv = s; cv = c; break;
    case 1: sv = c; cv = -s; break;
    case 2: sv = -s; cv = -c; break;
    default: sv = -c; cv = s; break;
    }
    if (cosv) *cosv = cv;
    return sv;
}

static void ew_nn_sin_scaled(float *y, const float *x, float w, size_t n)
{
    const long nn = (long)n;
    #pragma omp parallel for num_threads(n < 16384 ? 1 : ew_nn_team()) schedule(static)
    for (long i = 0; i < nn; i++) {
        float a = w * x[i];
        y[i] = fabsf(a) < 1e4f ? ew_sinf_poly(a, NULL) : sinf(a);
    }
}

static void ew_nn_sine_backward(float *dx, const float *dy, const float *x, float w, size_t n)
{
    const long nn = (long)n;
    #pragma omp parallel for num_threads(n < 16384 ? 1 : ew_nn_team()) schedule(static)
    for (long i = 0; i < nn; i++) {
        float a = w * x[i], c;
        if (fabsf(a) < 1e4f)
            (void)ew_sinf_poly(a, &c);
        else
            c = cosf(a);
        dx[i] += dy[i] * w * c;
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
    return ew_sinf_poly(a, NULL);
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
