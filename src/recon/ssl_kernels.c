/* ewald recon: kernels of the self-supervised XFEL model (ssl_kernels.h). */
#include "recon/ssl_kernels.h"

#include <math.h>
#include <string.h>

static void cross3(const double a[3], const double b[3], double c[3])
{
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
}

static double dot3(const double a[3], const double b[3]) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

void ew_ssl_rot6d_backward(const double d6[6], const double dR[9], double dd6[6])
{
    const double *a1 = d6, *a2 = d6 + 3;
    double n1 = sqrt(dot3(a1, a1));
    if (n1 < 1e-12) n1 = 1e-12;
    double b1[3], v[3], b2[3];
    for (int i = 0; i < 3; i++) b1[i] = a1[i] / n1;
    double p = dot3(b1, a2);
    for (int i = 0; i < 3; i++) v[i] = a2[i] - p * b1[i];
    double nv = sqrt(dot3(v, v));
    if (nv < 1e-12) nv = 1e-12;
    for (int i = 0; i < 3; i++) b2[i] = v[i] / nv;
    double gb1[3], gb2[3], t[3];
    const double *gb3 = dR + 6;
    /* b3 = b1 x b2 */
    cross3(b2, gb3, t);
    for (int i = 0; i < 3; i++) gb1[i] = dR[i] + t[i];
    cross3(gb3, b1, t);
    for (int i = 0; i < 3; i++) gb2[i] = dR[3 + i] + t[i];
    /* b2 = v / |v| */
    double gv[3], q = dot3(b2, gb2);
    for (int i = 0; i < 3; i++) gv[i] = (gb2[i] - b2[i] * q) / nv;
    /* v = a2 - (b1.a2) b1 */
    double bg = dot3(b1, gv);
    for (int i = 0; i < 3; i++) {
        dd6[3 + i] = gv[i] - b1[i] * bg;
        gb1[i] -= p * gv[i] + a2[i] * bg;
    }
    /* b1 = a1 / |a1| */
    double r = dot3(b1, gb1);
    for (int i = 0; i < 3; i++) dd6[i] = (gb1[i] - b1[i] * r) / n1;
}

double ew_ssl_render_pixel(int poisson, double f, double m, double k, double x, double count, double c,
                           double *df, double *dm)
{
    double ef = exp(f);
    double a = ef - 1.0;
    double da_df = ef * k;
    if (a <= 0.0) {
        a = 0.0;
        da_df = 0.0;
    }
    a *= k;
    if (poisson) {
        double r = a * m / c + 1e-3;
        double dr = 1.0 - count / r; /* d(r - I log r)/dr */
        *df = dr * m / c * da_df;
        *dm = dr * a / c;
        return r - count * log(r);
    }
    double am1 = a * m + 1.0;
    double y = log(am1);
    double dy = 2.0 * (y - x);
    *df = dy * m / am1 * da_df;
    *dm = dy * a / am1;
    return (y - x) * (y - x);
}

double ew_ssl_scale_of(double h, double *dm_dh)
{
    double z = h + 0.5413248546129181; /* log(e - 1) */
    double m, sg;
    if (z > 30) {
        m = z;
        sg = 1.0;
    } else {
        m = log1p(exp(z));
        sg = 1.0 / (1.0 + exp(-z));
    }
    if (dm_dh) *dm_dh = sg;
    return m;
}

/* ---- templated on the grid type ---- */
#define EW_SSL_KERNELS(T, SFX)                                                                        \
    static inline int corner_setup##SFX(int n, double ds, const double u[3], int i0[3], double t[3])   \
    {                                                                                                 \
        int c = n / 2;                                                                                \
        for (int a = 0; a < 3; a++) {                                                                 \
            double f = u[a] / ds + c;                                                                 \
            double fl = floor(f);                                                                     \
            if (!(fl >= 0.0 && fl + 1.0 <= (double)(n - 1))) return 0;                               \
            i0[a] = (int)fl;                                                                          \
            t[a] = f - fl;                                                                            \
        }                                                                                             \
        return 1;                                                                                     \
    }                                                                                                 \
                                                                                                      \
    T ew_ssl_trilinear_grad##SFX(const T *g, int n, double ds, const double u[3], T grad[3])           \
    {                                                                                                 \
        int i0[3];                                                                                    \
        double t[3];                                                                                  \
        grad[0] = grad[1] = grad[2] = 0;                                                              \
        if (!corner_setup##SFX(n, ds, u, i0, t)) return 0;                                            \
        size_t nn = (size_t)n * n;                                                                    \
        const T *b = g + (size_t)i0[2] * nn + (size_t)i0[1] * n + i0[0];                              \
        double v000 = b[0], v001 = b[1], v010 = b[n], v011 = b[n + 1];                                \
        double v100 = b[nn], v101 = b[nn + 1], v110 = b[nn + n], v111 = b[nn + n + 1];                \
        double tx = t[0], ty = t[1], tz = t[2];                                                       \
        /* along x */                                                                                 \
        double c00 = v000 + tx * (v001 - v000), c01 = v010 + tx * (v011 - v010);                      \
        double c10 = v100 + tx * (v101 - v100), c11 = v110 + tx * (v111 - v110);                      \
        double c0 = c00 + ty * (c01 - c00), c1 = c10 + ty * (c11 - c10);                               \
        double val = c0 + tz * (c1 - c0);                                                             \
        double gx0 = (v001 - v000) + ty * ((v011 - v010) - (v001 - v000));                             \
        double gx1 = (v101 - v100) + ty * ((v111 - v110) - (v101 - v100));                             \
        grad[0] = (T)((gx0 + tz * (gx1 - gx0)) / ds);                                                 \
        grad[1] = (T)(((c01 - c00) + tz * ((c11 - c10) - (c01 - c00))) / ds);                          \
        grad[2] = (T)((c1 - c0) / ds);                                                                \
        return (T)val;                                                                                \
    }                                                                                                 \
                                                                                                      \
    void ew_ssl_trilinear_adjoint##SFX(T *dg, int n, double ds, const double u[3], T v)               \
    {                                                                                                 \
        int i0[3];                                                                                    \
        double t[3];                                                                                  \
        if (!corner_setup##SFX(n, ds, u, i0, t)) return;                                              \
        size_t nn = (size_t)n * n;                                                                    \
        T *b = dg + (size_t)i0[2] * nn + (size_t)i0[1] * n + i0[0];                                   \
        double tx = t[0], ty = t[1], tz = t[2];                                                       \
        double wz0 = (1 - tz) * v, wz1 = tz * v;                                                      \
        double w00 = wz0 * (1 - ty), w01 = wz0 * ty, w10 = wz1 * (1 - ty), w11 = wz1 * ty;             \
        b[0] += (T)(w00 * (1 - tx));                                                                  \
        b[1] += (T)(w00 * tx);                                                                        \
        b[n] += (T)(w01 * (1 - tx));                                                                  \
        b[n + 1] += (T)(w01 * tx);                                                                    \
        b[nn] += (T)(w10 * (1 - tx));                                                                 \
        b[nn + 1] += (T)(w10 * tx);                                                                   \
        b[nn + n] += (T)(w11 * (1 - tx));                                                             \
        b[nn + n + 1] += (T)(w11 * tx);                                                               \
    }                                                                                                 \
                                                                                                      \
    void ew_ssl_friedel##SFX(T *out, const T *v, int n, T a)                                          \
    {                                                                                                 \
        size_t N = (size_t)n * n * n;                                                                 \
        for (size_t i = 0; i < N; i++) out[i] = a * (v[i] + v[N - 1 - i]);                            \
    }                                                                                                 \
                                                                                                      \
    double ew_ssl_smooth##SFX(const T *g, int n, double lambda, T *dg)                                \
    {                                                                                                 \
        if (lambda == 0.0) return 0.0;                                                                \
        size_t nn = (size_t)n * n, N = nn * n;                                                        \
        double sc = lambda / (double)N, sum = 0.0;                                                    \
        const size_t step[3] = {1, (size_t)n, nn};                                                    \
        for (int ax = 0; ax < 3; ax++) {                                                              \
            size_t st = step[ax];                                                                     \
            for (size_t z = 0; z < (size_t)n; z++)                                                    \
                for (size_t y = 0; y < (size_t)n; y++)                                                \
                    for (size_t x = 0; x < (size_t)n; x++) {                                          \
                        size_t crd = ax == 0 ? x : ax == 1 ? y : z;                                   \
                        if (crd + 1 >= (size_t)n) continue;                                           \
                        size_t i = z * nn + y * n + x;                                                \
                        double d = (double)g[i + st] - (double)g[i];                                  \
                        sum += d * d;                                                                 \
                        if (dg) {                                                                     \
                            dg[i + st] += (T)(2.0 * sc * d);                                          \
                            dg[i] -= (T)(2.0 * sc * d);                                               \
                        }                                                                             \
                    }                                                                                 \
        }                                                                                             \
        return sc * sum;                                                                              \
    }                                                                                                 \
                                                                                                      \
    double ew_ssl_pattern_grid##SFX(const T *g, int n, double ds, const double R[9], const float *s,   \
                                    const int *idx, size_t npix, const float *x, const float *count,  \
                                    const float *k, double m, double c, int poisson, double w, T *dg, \
                                    double dR[9], double *dm)                                         \
    {                                                                                                 \
        double loss = 0.0, gm = 0.0;                                                                  \
        double gR[9] = {0};                                                                           \
        for (size_t q = 0; q < npix; q++) {                                                           \
            int p = idx[q];                                                                           \
            const float *sp = s + 3 * (size_t)p;                                                      \
            double sv[3] = {sp[0], sp[1], sp[2]};                                                     \
            double u[3];                                                                              \
            for (int a = 0; a < 3; a++) u[a] = R[a] * sv[0] + R[3 + a] * sv[1] + R[6 + a] * sv[2];    \
            T gr[3];                                                                                  \
            double f = ew_ssl_trilinear_grad##SFX(g, n, ds, u, gr);                                   \
            double df, dmp;                                                                           \
            loss += w * ew_ssl_render_pixel(poisson, f, m, k ? k[p] : 1.0, x[p], count[p], c, &df,    \
                                            &dmp);                                                    \
            gm += w * dmp;                                                                            \
            df *= w;                                                                                  \
            if (df == 0.0) continue;                                                                  \
            if (dg) ew_ssl_trilinear_adjoint##SFX(dg, n, ds, u, (T)df);                               \
            /* u_a = sum_j R_ja s_j: dL/dR_ja = df grad_a s_j */                                      \
            for (int j = 0; j < 3; j++)                                                               \
                for (int a = 0; a < 3; a++) gR[3 * j + a] += df * gr[a] * sv[j];                      \
        }                                                                                             \
        memcpy(dR, gR, sizeof gR);                                                                    \
        *dm = gm;                                                                                     \
        return loss;                                                                                  \
    }

EW_SSL_KERNELS(float, )
EW_SSL_KERNELS(double, _d)

double ew_ssl_pattern_loss(const float *g, int n, double ds, const double R[9], const float *s, const int *idx,
                           size_t npix, const float *x, const float *count, const float *k, double m, double c,
                           int poisson)
{
    double loss = 0.0;
    for (size_t q = 0; q < npix; q++) {
        int p = idx[q];
        const float *sp = s + 3 * (size_t)p;
        double u[3];
        for (int a = 0; a < 3; a++) u[a] = R[a] * sp[0] + R[3 + a] * sp[1] + R[6 + a] * sp[2];
        float gr[3];
        double f = ew_ssl_trilinear_grad(g, n, ds, u, gr);
        double df, dm;
        loss += ew_ssl_render_pixel(poisson, f, m, k ? k[p] : 1.0, x[p], count[p], c, &df, &dm);
    }
    return loss;
}
