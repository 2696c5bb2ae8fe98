/* ewald nn: activation kernels for T (see tmpl.h); no include guard. */

void FN(ew_act_forward)(ew_act_t kind, double p, T *y, const T *x, size_t n)
{
    const T pp = (T)p;
    const long nn = (long)n;
    const int nt = ew_nn_team_for(n);
    switch (kind) {
    case EW_ACT_IDENTITY:
        if (y != x) memcpy(y, x, n * sizeof(T));
        break;
    case EW_ACT_RELU:
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) y[i] = x[i] > 0 ? x[i] : (T)0;
        break;
    case EW_ACT_LEAKY_RELU:
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) y[i] = x[i] > 0 ? x[i] : pp * x[i];
        break;
    case EW_ACT_GELU:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) y[i] = (T)0.5 * x[i] * ((T)1 + TM(erf)(x[i] * (T)0.70710678118654752440));
        break;
    case EW_ACT_TANH:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) y[i] = TM(tanh)(x[i]);
        break;
    case EW_ACT_SIGMOID:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) y[i] = FN(sigm)(x[i]);
        break;
    case EW_ACT_SOFTPLUS:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) y[i] = x[i] > (T)20 ? x[i] : TM(log1p)(TM(exp)(x[i]));
        break;
    case EW_ACT_SINE:
        FN(ew_nn_sin_scaled)(y, x, pp, n);
        break;
    }
}

void FN(ew_act_backward)(ew_act_t kind, double p, T *dx, const T *dy, const T *x, const T *y, size_t n)
{
    const T pp = (T)p;
    const long nn = (long)n;
    const int nt = ew_nn_team_for(n);
    switch (kind) {
    case EW_ACT_IDENTITY:
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) dx[i] += dy[i];
        break;
    case EW_ACT_RELU:
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) dx[i] += x[i] > 0 ? dy[i] : (T)0;
        break;
    case EW_ACT_LEAKY_RELU:
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) dx[i] += x[i] > 0 ? dy[i] : pp * dy[i];
        break;
    case EW_ACT_GELU:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) {
            T cdf = (T)0.5 * ((T)1 + TM(erf)(x[i] * (T)0.70710678118654752440));
            T pdf = (T)0.39894228040143267794 * TM(exp)((T)-0.5 * x[i] * x[i]);
            dx[i] += dy[i] * (cdf + x[i] * pdf);
        }
        break;
    case EW_ACT_TANH:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) {
            T t = y ? y[i] : TM(tanh)(x[i]);
            dx[i] += dy[i] * ((T)1 - t * t);
        }
        break;
    case EW_ACT_SIGMOID:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) {
            T s = y ? y[i] : FN(sigm)(x[i]);
            dx[i] += dy[i] * s * ((T)1 - s);
        }
        break;
    case EW_ACT_SOFTPLUS:
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (long i = 0; i < nn; i++) dx[i] += x[i] > (T)20 ? dy[i] : dy[i] * FN(sigm)(x[i]);
        break;
    case EW_ACT_SINE:
        FN(ew_nn_sine_backward)(dx, dy, x, pp, n);
        break;
    }
}

void FN(ew_add_forward)(T *out, const T *a, const T *b, size_t n)
{
    const long nn = (long)n;
    #pragma omp parallel for simd num_threads(ew_nn_team_for(n)) schedule(static)
    for (long i = 0; i < nn; i++) out[i] = a[i] + b[i];
}

void FN(ew_accumulate)(T *dst, const T *src, size_t n)
{
    const long nn = (long)n;
    #pragma omp parallel for simd num_threads(ew_nn_team_for(n)) schedule(static)
    for (long i = 0; i < nn; i++) dst[i] += src[i];
}

void FN(ew_concat_forward)(T *out, const T *a, int ca, const T *b, int cb, int n, int hw)
{
    const size_t sa = (size_t)ca * hw, sb = (size_t)cb * hw;
    for (int i = 0; i < n; i++) {
        memcpy(out + (size_t)i * (sa + sb), a + (size_t)i * sa, sa * sizeof(T));
        memcpy(out + (size_t)i * (sa + sb) + sa, b + (size_t)i * sb, sb * sizeof(T));
    }
}

void FN(ew_concat_backward)(T *da, T *db, const T *dout, int ca, int cb, int n, int hw)
{
    const size_t sa = (size_t)ca * hw, sb = (size_t)cb * hw;
    for (int i = 0; i < n; i++) {
        const T *g = dout + (size_t)i * (sa + sb);
        if (da)
            for (size_t k = 0; k < sa; k++) da[(size_t)i * sa + k] += g[k];
        if (db)
            for (size_t k = 0; k < sb; k++) db[(size_t)i * sb + k] += g[sa + k];
    }
}
