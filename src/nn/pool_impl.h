/* ewald nn: pooling kernels for T (see tmpl.h); no include guard. */

void FN(ew_maxpool_forward)(T *out, int32_t *argmax, const T *x, const ew_pool2d_t *d)
{
    const int H = d->h, W = d->w, OH = d->oh, OW = d->ow;
    const int planes = d->n * d->c;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * d->oh * d->ow * d->k * d->k)) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const T *xp = x + (size_t)pl * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0 = oy * d->stride - d->pad, x0 = ox * d->stride - d->pad;
                T best = 0;
                int bi = -1;
                for (int ky = 0; ky < d->k; ky++) {
                    int iy = y0 + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < d->k; kx++) {
                        int ix = x0 + kx;
                        if (ix < 0 || ix >= W) continue;
                        T v = xp[iy * W + ix];
                        if (bi < 0 || v > best || v != v) {
                            best = v;
                            bi = iy * W + ix;
                        }
                    }
                }
                size_t o = ((size_t)pl * OH + oy) * OW + ox;
                out[o] = best;
                argmax[o] = bi;
            }
    }
}

void FN(ew_maxpool_backward)(T *dx, const T *dout, const int32_t *argmax, const ew_pool2d_t *d)
{
    const size_t HW = (size_t)d->h * d->w, OP = (size_t)d->oh * d->ow;
    const int planes = d->n * d->c;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * d->oh * d->ow)) schedule(static)
    for (int pl = 0; pl < planes; pl++)
        for (size_t o = 0; o < OP; o++) {
            int32_t a = argmax[(size_t)pl * OP + o];
            if (a >= 0) dx[(size_t)pl * HW + (size_t)a] += dout[(size_t)pl * OP + o];
        }
}

void FN(ew_avgpool_forward)(T *out, const T *x, const ew_pool2d_t *d)
{
    const int H = d->h, W = d->w, OH = d->oh, OW = d->ow;
    const int planes = d->n * d->c;
    const T inv = (T)1 / (T)(d->k * d->k);
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * d->oh * d->ow * d->k * d->k)) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const T *xp = x + (size_t)pl * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0 = oy * d->stride - d->pad, x0 = ox * d->stride - d->pad;
                T s = 0;
                for (int ky = 0; ky < d->k; ky++) {
                    int iy = y0 + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < d->k; kx++) {
                        int ix = x0 + kx;
                        if (ix >= 0 && ix < W) s += xp[iy * W + ix];
                    }
                }
                out[((size_t)pl * OH + oy) * OW + ox] = s * inv;
            }
    }
}

void FN(ew_avgpool_backward)(T *dx, const T *dout, const ew_pool2d_t *d)
{
    const int H = d->h, W = d->w, OH = d->oh, OW = d->ow;
    const int planes = d->n * d->c;
    const T inv = (T)1 / (T)(d->k * d->k);
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * d->oh * d->ow * d->k * d->k)) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        T *dp = dx + (size_t)pl * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0 = oy * d->stride - d->pad, x0 = ox * d->stride - d->pad;
                T g = dout[((size_t)pl * OH + oy) * OW + ox] * inv;
                for (int ky = 0; ky < d->k; ky++) {
                    int iy = y0 + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < d->k; kx++) {
                        int ix = x0 + kx;
                        if (ix >= 0 && ix < W) dp[iy * W + ix] += g;
                    }
                }
            }
    }
}

void FN(ew_global_avgpool_forward)(T *out, const T *x, int n, int c, int hw)
{
    const int planes = n * c;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * hw)) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        double s = 0.0;
        for (int k = 0; k < hw; k++) s += x[(size_t)pl * hw + k];
        out[pl] = (T)(s / hw);
    }
}

void FN(ew_global_avgpool_backward)(T *dx, const T *dout, int n, int c, int hw)
{
    const int planes = n * c;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * hw)) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        T g = dout[pl] / (T)hw;
        for (int k = 0; k < hw; k++) dx[(size_t)pl * hw + k] += g;
    }
}
