/* ewald nn: loss kernels for T (see tmpl.h); no include guard. */

double FN(ew_loss_mse)(T *dp, const T *p, const T *t, size_t n, double g)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)p[i] - t[i];
        s += d * d;
        if (dp) dp[i] += (T)(g * 2.0 * d / (double)n);
    }
    return s / (double)n;
}

double FN(ew_loss_masked_mse)(T *dp, const T *p, const T *t, const T *m, size_t n, double g)
{
    double s = 0.0, sm = 0.0;
    for (size_t i = 0; i < n; i++) sm += m[i];
    if (sm <= 0.0) return 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)p[i] - t[i];
        s += m[i] * d * d;
        if (dp) dp[i] += (T)(g * 2.0 * m[i] * d / sm);
    }
    return s / sm;
}

double FN(ew_loss_poisson_nll)(T *dl, const T *l, const T *y, size_t n, double g)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = exp((double)l[i]);
        s += e - (double)y[i] * l[i];
        if (dl) dl[i] += (T)(g * (e - y[i]) / (double)n);
    }
    return s / (double)n;
}

double FN(ew_loss_bce_logits)(T *dx, const T *x, const T *y, size_t n, double g)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i], a = fabs(v);
        s += (v > 0 ? v : 0.0) - v * y[i] + log1p(exp(-a));
        if (dx) {
            double sg = v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
            dx[i] += (T)(g * (sg - y[i]) / (double)n);
        }
    }
    return s / (double)n;
}

double FN(ew_loss_lsgan)(T *dp, const T *p, size_t n, double target, double g)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)p[i] - target;
        s += d * d;
        if (dp) dp[i] += (T)(g * 2.0 * d / (double)n);
    }
    return s / (double)n;
}

double FN(ew_loss_softmax_ce)(T *dz, const T *z, const int32_t *target, int rows, int k, double tau, double g)
{
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        const T *zr = z + (size_t)r * k;
        double mx = -HUGE_VAL;
        for (int j = 0; j < k; j++)
            if (zr[j] / tau > mx) mx = zr[j] / tau;
        double se = 0.0;
        for (int j = 0; j < k; j++) se += exp(zr[j] / tau - mx);
        double lse = mx + log(se);
        int tg = target[r];
        total += lse - zr[tg] / tau;
        if (dz) {
            double f = g / ((double)rows * tau);
            for (int j = 0; j < k; j++) {
                double pj = exp(zr[j] / tau - lse);
                dz[(size_t)r * k + j] += (T)(f * (pj - (j == tg ? 1.0 : 0.0)));
            }
        }
    }
    return total / rows;
}

double FN(ew_loss_infonce)(T *ds, const T *s, int n, double tau, double g)
{
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        int32_t t = r;
        total += FN(ew_loss_softmax_ce)(ds ? ds + (size_t)r * n : NULL, s + (size_t)r * n, &t, 1, n, tau,
                                        g / n);
    }
    return total / n;
}
