/* ewald nn: normalisation kernels for T (see tmpl.h); no include guard. */

void FN(ew_batchnorm_forward)(T *out, T *mean, T *rstd, const T *x, const T *gamma, const T *beta,
                              T *running_mean, T *running_var, int n, int c, int hw, int train,
                              double momentum, double eps)
{
    const double M = (double)n * hw;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)n * c * hw)) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        double mu, rs;
        if (train) {
            double s = 0.0, s2 = 0.0;
            for (int i = 0; i < n; i++) {
                const T *p = x + ((size_t)i * c + ch) * hw;
                for (int k = 0; k < hw; k++) s += p[k];
            }
            mu = s / M;
            for (int i = 0; i < n; i++) {
                const T *p = x + ((size_t)i * c + ch) * hw;
                for (int k = 0; k < hw; k++) {
                    double dd = p[k] - mu;
                    s2 += dd * dd;
                }
            }
            double var = s2 / M;
            rs = 1.0 / sqrt(var + eps);
            if (running_mean) running_mean[ch] = (T)((1.0 - momentum) * running_mean[ch] + momentum * mu);
            if (running_var)
                running_var[ch] = (T)((1.0 - momentum) * running_var[ch] +
                                      momentum * (M > 1 ? var * M / (M - 1) : var));
        } else {
            mu = running_mean[ch];
            rs = 1.0 / sqrt((double)running_var[ch] + eps);
        }
        mean[ch] = (T)mu;
        rstd[ch] = (T)rs;
        T g = gamma ? gamma[ch] : (T)1, b = beta ? beta[ch] : (T)0;
        T sc = (T)(g * rs), sh = (T)(b - g * rs * mu);
        for (int i = 0; i < n; i++) {
            const T *p = x + ((size_t)i * c + ch) * hw;
            T *o = out + ((size_t)i * c + ch) * hw;
            for (int k = 0; k < hw; k++) o[k] = p[k] * sc + sh;
        }
    }
}

void FN(ew_batchnorm_backward)(T *dx, T *dgamma, T *dbeta, const T *dout, const T *x, const T *mean,
                               const T *rstd, const T *gamma, int n, int c, int hw, int train)
{
    const double M = (double)n * hw;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)n * c * hw)) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        double mu = mean[ch], rs = rstd[ch];
        double sdy = 0.0, sdyx = 0.0; /* sum dout, sum dout * xhat */
        for (int i = 0; i < n; i++) {
            const T *p = x + ((size_t)i * c + ch) * hw;
            const T *g = dout + ((size_t)i * c + ch) * hw;
            for (int k = 0; k < hw; k++) {
                sdy += g[k];
                sdyx += g[k] * ((p[k] - mu) * rs);
            }
        }
        if (dgamma) dgamma[ch] += (T)sdyx;
        if (dbeta) dbeta[ch] += (T)sdy;
        if (!dx) continue;
        double gm = gamma ? gamma[ch] : 1.0;
        for (int i = 0; i < n; i++) {
            const T *p = x + ((size_t)i * c + ch) * hw;
            const T *g = dout + ((size_t)i * c + ch) * hw;
            T *d = dx + ((size_t)i * c + ch) * hw;
            if (train) {
                /* dx = g rs (dy - mean(dy) - xhat mean(dy xhat)) */
                T a = (T)(gm * rs), m1 = (T)(sdy / M), m2 = (T)(sdyx / M), mu_ = (T)mu, rs_ = (T)rs;
                for (int k = 0; k < hw; k++) d[k] += a * (g[k] - m1 - (p[k] - mu_) * rs_ * m2);
            } else {
                T a = (T)(gm * rs);
                for (int k = 0; k < hw; k++) d[k] += a * g[k];
            }
        }
    }
}

/* Rows of length M = cpg * hw; row r uses affine channels goff(r) + k / hw. */
static void FN(rownorm_forward)(T *out, T *mean, T *rstd, const T *x, const T *gamma, const T *beta,
                                int rows, int groups, int cpg, int hw, double eps)
{
    const size_t M = (size_t)cpg * hw;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)rows * M)) schedule(static)
    for (int r = 0; r < rows; r++) {
        const T *p = x + (size_t)r * M;
        T *o = out + (size_t)r * M;
        double s = 0.0, s2 = 0.0;
        for (size_t k = 0; k < M; k++) s += p[k];
        double mu = s / (double)M;
        for (size_t k = 0; k < M; k++) {
            double dd = p[k] - mu;
            s2 += dd * dd;
        }
        double rs = 1.0 / sqrt(s2 / (double)M + eps);
        mean[r] = (T)mu;
        rstd[r] = (T)rs;
        int c0 = (r % groups) * cpg;
        for (int cc = 0; cc < cpg; cc++) {
            T g = gamma ? gamma[c0 + cc] : (T)1, b = beta ? beta[c0 + cc] : (T)0;
            T sc = (T)(g * rs), sh = (T)(b - g * rs * mu);
            for (int k = 0; k < hw; k++) o[(size_t)cc * hw + k] = p[(size_t)cc * hw + k] * sc + sh;
        }
    }
}

static void FN(rownorm_backward)(T *dx, T *dgamma, T *dbeta, const T *dout, const T *x, const T *mean,
                                 const T *rstd, const T *gamma, int rows, int groups, int cpg, int hw)
{
    const size_t M = (size_t)cpg * hw;
    /* dgamma/dbeta: per channel, summed over the rows sharing it (serial over
     * those rows, parallel over channels: deterministic) */
    if (dgamma || dbeta) {
        const int nch = groups * cpg, per = rows / groups;
        #pragma omp parallel for num_threads(ew_nn_team_for((size_t)rows * M)) schedule(static)
        for (int ch = 0; ch < nch; ch++) {
            int gi = ch / cpg, cc = ch % cpg;
            double sg = 0.0, sb = 0.0;
            for (int q = 0; q < per; q++) {
                int r = q * groups + gi;
                const T *p = x + (size_t)r * M + (size_t)cc * hw;
                const T *g = dout + (size_t)r * M + (size_t)cc * hw;
                double mu = mean[r], rs = rstd[r];
                for (int k = 0; k < hw; k++) {
                    sg += g[k] * ((p[k] - mu) * rs);
                    sb += g[k];
                }
            }
            if (dgamma) dgamma[ch] += (T)sg;
            if (dbeta) dbeta[ch] += (T)sb;
        }
    }
    if (!dx) return;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)rows * M)) schedule(static)
    for (int r = 0; r < rows; r++) {
        const T *p = x + (size_t)r * M;
        const T *g = dout + (size_t)r * M;
        T *d = dx + (size_t)r * M;
        double mu = mean[r], rs = rstd[r];
        int c0 = (r % groups) * cpg;
        double s1 = 0.0, s2 = 0.0; /* sum dxhat, sum dxhat xhat */
        for (int cc = 0; cc < cpg; cc++) {
            double gm = gamma ? gamma[c0 + cc] : 1.0;
            for (int k = 0; k < hw; k++) {
                size_t j = (size_t)cc * hw + k;
                double dxh = g[j] * gm;
                s1 += dxh;
                s2 += dxh * (p[j] - mu) * rs;
            }
        }
        T m1 = (T)(s1 / (double)M), m2 = (T)(s2 / (double)M), mu_ = (T)mu, rs_ = (T)rs;
        for (int cc = 0; cc < cpg; cc++) {
            T gm = gamma ? gamma[c0 + cc] : (T)1;
            for (int k = 0; k < hw; k++) {
                size_t j = (size_t)cc * hw + k;
                d[j] += rs_ * (g[j] * gm - m1 - (p[j] - mu_) * rs_ * m2);
            }
        }
    }
}

void FN(ew_groupnorm_forward)(T *out, T *mean, T *rstd, const T *x, const T *gamma, const T *beta, int n,
                              int c, int hw, int groups, double eps)
{
    FN(rownorm_forward)(out, mean, rstd, x, gamma, beta, n * groups, groups, c / groups, hw, eps);
}

void FN(ew_groupnorm_backward)(T *dx, T *dgamma, T *dbeta, const T *dout, const T *x, const T *mean,
                               const T *rstd, const T *gamma, int n, int c, int hw, int groups)
{
    FN(rownorm_backward)(dx, dgamma, dbeta, dout, x, mean, rstd, gamma, n * groups, groups, c / groups, hw);
}

void FN(ew_layernorm_forward)(T *out, T *mean, T *rstd, const T *x, const T *gamma, const T *beta, int rows,
                              int dim, double eps)
{
    FN(rownorm_forward)(out, mean, rstd, x, gamma, beta, rows, 1, dim, 1, eps);
}

void FN(ew_layernorm_backward)(T *dx, T *dgamma, T *dbeta, const T *dout, const T *x, const T *mean,
                               const T *rstd, const T *gamma, int rows, int dim)
{
    FN(rownorm_backward)(dx, dgamma, dbeta, dout, x, mean, rstd, gamma, rows, 1, dim, 1);
}

void FN(ew_l2norm_forward)(T *y, T *norm, const T *x, int rows, int dim, double eps)
{
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)rows * dim)) schedule(static)
    for (int r = 0; r < rows; r++) {
        const T *p = x + (size_t)r * dim;
        double s = 0.0;
        for (int k = 0; k < dim; k++) s += (double)p[k] * p[k];
        double nm = sqrt(s);
        if (nm < eps) nm = eps;
        norm[r] = (T)nm;
        for (int k = 0; k < dim; k++) y[(size_t)r * dim + k] = (T)(p[k] / nm);
    }
}

void FN(ew_l2norm_backward)(T *dx, const T *dy, const T *y, const T *norm, int rows, int dim)
{
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)rows * dim)) schedule(static)
    for (int r = 0; r < rows; r++) {
        const T *yr = y + (size_t)r * dim, *g = dy + (size_t)r * dim;
        T *d = dx + (size_t)r * dim;
        double nm = norm[r], s = 0.0, s2 = 0.0;
        for (int k = 0; k < dim; k++) {
            s += (double)yr[k] * g[k];
            s2 += (double)yr[k] * yr[k];
        }
        /* y = x / |x| when |x| > eps (then |y| = 1); y = x / eps below */
        int clamped = s2 < 1.0 - 1e-3;
        for (int k = 0; k < dim; k++) d[k] += (T)((g[k] - (clamped ? 0.0 : yr[k] * s)) / nm);
    }
}
