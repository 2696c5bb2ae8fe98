/* ewald eval: orientation error after the best global rotation and hand. */
#include "eval/orient.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ew_orient_opts_default(ew_orient_opts_t *o)
{
    o->try_mirror = 1;
    o->inplane_twin = 0;
    o->nbins = 90;
}

void ew_orient_err_free(ew_orient_err_t *e)
{
    if (!e) return;
    ew_free(e->err_deg);
    ew_free(e->twin);
    ew_free(e->hist);
    memset(e, 0, sizeof *e);
}

ew_quat_t ew_quat_mirror_z(ew_quat_t q) { return (ew_quat_t){q.w, -q.x, -q.y, q.z}; }

/* Principal eigenvector of a symmetric 4x4 matrix (cyclic Jacobi). */
static void eig4_principal(double a[4][4], double v[4])
{
    double e[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;
        for (int p = 0; p < 4; p++)
            for (int q = p + 1; q < 4; q++) off += a[p][q] * a[p][q];
        if (off < 1e-30) break;
        for (int p = 0; p < 4; p++)
            for (int q = p + 1; q < 4; q++) {
                if (fabs(a[p][q]) < 1e-300) continue;
                double theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < 4; k++) { /* columns p, q */
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 4; k++) { /* rows p, q */
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 4; k++) {
                    double ekp = e[k][p], ekq = e[k][q];
                    e[k][p] = c * ekp - s * ekq;
                    e[k][q] = s * ekp + c * ekq;
                }
            }
    }
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (a[k][k] > a[best][best]) best = k;
    for (int k = 0; k < 4; k++) v[k] = e[k][best];
}

ew_quat_t ew_quat_mean(const ew_quat_t *q, const double *w, size_t n)
{
    EW_ASSERT(n >= 1);
    double m[4][4] = {{0}};
    for (size_t i = 0; i < n; i++) {
        double c[4] = {q[i].w, q[i].x, q[i].y, q[i].z};
        double wi = w ? w[i] : 1.0;
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) m[a][b] += wi * c[a] * c[b];
    }
    double v[4];
    eig4_principal(m, v);
    ew_quat_t r = ew_quat_normalize((ew_quat_t){v[0], v[1], v[2], v[3]});
    if (r.w < 0) r = (ew_quat_t){-r.w, -r.x, -r.y, -r.z};
    return r;
}

/* Rotation vector (axis * angle, angle in [0, pi]) of q, and back. */
static void quat_log(ew_quat_t q, double v[3])
{
    double axis[3], ang;
    ew_quat_to_axis_angle(q, axis, &ang);
    for (int k = 0; k < 3; k++) v[k] = axis[k] * ang;
}

static ew_quat_t quat_exp(const double v[3])
{
    double ang = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    return ew_quat_from_axis_angle(v, ang);
}

static const ew_quat_t RZ_PI = {0.0, 0.0, 0.0, 1.0};

/* d_i for one hand (and twin choice): t^* p with t = H(q_true) [Rz(pi)]. */
static ew_quat_t rel(ew_quat_t qt, ew_quat_t qp, int hand, int twin)
{
    ew_quat_t t = hand ? ew_quat_mirror_z(qt) : qt;
    if (twin) t = ew_quat_mul(RZ_PI, t);
    return ew_quat_mul(ew_quat_conj(t), qp);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fit G for one hand; fills err (radians) and twin flags; returns median. */
static double fit_hand(const ew_quat_t *qt, const ew_quat_t *qp, size_t n, int hand, int use_twin,
                       ew_quat_t *d, double *err, unsigned char *tw, double *wbuf, ew_quat_t *g_out)
{
    for (size_t i = 0; i < n; i++) {
        d[i] = rel(qt[i], qp[i], hand, 0);
        if (tw) tw[i] = 0;
    }
    ew_quat_t g = ew_quat_mean(d, NULL, n);
    for (int it = 0; it < 200; it++) {
        if (use_twin) { /* the twin closer to the current G */
            for (size_t i = 0; i < n; i++) {
                ew_quat_t a = rel(qt[i], qp[i], hand, 0), b = rel(qt[i], qp[i], hand, 1);
                int pick = ew_quat_angle(g, b) < ew_quat_angle(g, a);
                d[i] = pick ? b : a;
                tw[i] = (unsigned char)pick;
            }
            if (it < 3) g = ew_quat_mean(d, NULL, n);
        }
        /* Weiszfeld step towards the geometric median */
        double step[3] = {0, 0, 0}, wsum = 0.0;
        for (size_t i = 0; i < n; i++) {
            double v[3];
            quat_log(ew_quat_mul(ew_quat_conj(g), d[i]), v);
            double a = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
            double w = 1.0 / (a > 1e-12 ? a : 1e-12);
            wbuf[i] = w;
            wsum += w;
            for (int k = 0; k < 3; k++) step[k] += w * v[k];
        }
        for (int k = 0; k < 3; k++) step[k] /= wsum;
        g = ew_quat_normalize(ew_quat_mul(g, quat_exp(step)));
        if (sqrt(step[0] * step[0] + step[1] * step[1] + step[2] * step[2]) < 1e-13) break;
    }
    /* final trimmed least-squares step: the quaternion mean of the inliers
     * (error below 3x the median), unbiased for symmetric noise */
    for (size_t i = 0; i < n; i++) wbuf[i] = ew_quat_angle(g, d[i]);
    qsort(wbuf, n, sizeof *wbuf, cmp_double);
    double cut = 3.0 * wbuf[n / 2] + 1e-9;
    size_t nin = 0;
    for (size_t i = 0; i < n; i++) {
        int in = ew_quat_angle(g, d[i]) <= cut;
        wbuf[i] = in ? 1.0 : 0.0;
        nin += (size_t)in;
    }
    if (nin > 0) {
        ew_quat_t gm = ew_quat_mean(d, wbuf, n);
        if (gm.w * g.w + gm.x * g.x + gm.y * g.y + gm.z * g.z < 0) gm = (ew_quat_t){-gm.w, -gm.x, -gm.y, -gm.z};
        g = gm;
    }
    if (g.w < 0) g = (ew_quat_t){-g.w, -g.x, -g.y, -g.z};
    for (size_t i = 0; i < n; i++) {
        err[i] = ew_quat_angle(g, d[i]);
        wbuf[i] = err[i];
    }
    qsort(wbuf, n, sizeof *wbuf, cmp_double);
    *g_out = g;
    return n % 2 ? wbuf[n / 2] : 0.5 * (wbuf[n / 2 - 1] + wbuf[n / 2]);
}

ew_status_t ew_orient_error(const ew_quat_t *q_true, const ew_quat_t *q_pred, size_t n,
                            const ew_orient_opts_t *opts, ew_orient_err_t *out)
{
    memset(out, 0, sizeof *out);
    ew_orient_opts_t o;
    if (opts)
        o = *opts;
    else
        ew_orient_opts_default(&o);
    if (n == 0) return ew_fail(EW_ERR_ARG, "orientation error: no patterns");
    if (o.nbins < 1 || o.nbins > 100000)
        return ew_fail(EW_ERR_ARG, "orientation error: histogram bins %d outside [1, 100000]", o.nbins);
    for (size_t i = 0; i < n; i++) {
        double a = q_true[i].w * q_true[i].w + q_true[i].x * q_true[i].x + q_true[i].y * q_true[i].y +
                   q_true[i].z * q_true[i].z;
        double b = q_pred[i].w * q_pred[i].w + q_pred[i].x * q_pred[i].x + q_pred[i].y * q_pred[i].y +
                   q_pred[i].z * q_pred[i].z;
        if (!(fabs(a - 1.0) < 1e-3) || !(fabs(b - 1.0) < 1e-3))
            return ew_fail(EW_ERR_ARG, "orientation error: quaternion %zu is not a unit quaternion (|q_true|^2 = %g, |q_pred|^2 = %g)",
                           i, a, b);
    }
    ew_quat_t *d = ew_alloc_array(n, sizeof *d);
    double *err1 = ew_alloc_array(n, sizeof *err1), *wbuf = ew_alloc_array(n, sizeof *wbuf);
    unsigned char *tw1 = o.inplane_twin ? ew_alloc_array(n, 1) : NULL;
    out->err_deg = ew_alloc_array(n, sizeof *out->err_deg);
    out->hist = ew_calloc_array((size_t)o.nbins, sizeof *out->hist);
    if (o.inplane_twin) out->twin = ew_alloc_array(n, 1);
    if (!d || !err1 || !wbuf || !out->err_deg || !out->hist || (o.inplane_twin && (!tw1 || !out->twin))) {
        ew_free(d);
        ew_free(err1);
        ew_free(wbuf);
        ew_free(tw1);
        ew_orient_err_free(out);
        return ew_fail(EW_ERR_NOMEM, "orientation error: out of memory for %zu patterns", n);
    }
    ew_quat_t g0, g1;
    double med0 = fit_hand(q_true, q_pred, n, 0, o.inplane_twin, d, out->err_deg, out->twin, wbuf, &g0);
    out->g = g0;
    out->hand = 0;
    out->other_hand_median_deg = NAN;
    if (o.try_mirror) {
        double med1 = fit_hand(q_true, q_pred, n, 1, o.inplane_twin, d, err1, tw1, wbuf, &g1);
        if (med1 < med0) {
            out->other_hand_median_deg = med0 * 180.0 / EW_PI;
            out->hand = 1;
            out->g = g1;
            memcpy(out->err_deg, err1, n * sizeof *err1);
            if (tw1) memcpy(out->twin, tw1, n);
        } else {
            out->other_hand_median_deg = med1 * 180.0 / EW_PI;
        }
    }
    out->n = n;
    out->nbins = o.nbins;
    out->bin_deg = 180.0 / o.nbins;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = out->err_deg[i] * 180.0 / EW_PI;
        out->err_deg[i] = e;
        sum += e;
        int b = (int)(e / out->bin_deg);
        if (b >= o.nbins) b = o.nbins - 1;
        if (b < 0) b = 0;
        out->hist[b]++;
        wbuf[i] = e;
    }
    qsort(wbuf, n, sizeof *wbuf, cmp_double);
    out->mean_deg = sum / n;
    out->median_deg = n % 2 ? wbuf[n / 2] : 0.5 * (wbuf[n / 2 - 1] + wbuf[n / 2]);
    /* 90th percentile, linear interpolation between order statistics */
    double pos = 0.9 * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    out->p90_deg = wbuf[lo] + (pos - lo) * (wbuf[hi] - wbuf[lo]);
    out->max_deg = wbuf[n - 1];
    ew_free(d);
    ew_free(err1);
    ew_free(wbuf);
    ew_free(tw1);
    return EW_OK;
}
