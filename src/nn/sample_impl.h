/* ewald nn: resampling kernels for T (see tmpl.h); no include guard. */

/* bilinear source index along one axis of length n for output index o */
static inline void FN(bil_src)(int o, int s, int n, int *i0, int *i1, T *l1)
{
    T src = ((T)o + (T)0.5) / (T)s - (T)0.5;
    if (src < 0) src = 0;
    int a = (int)src;
    if (a > n - 1) a = n - 1;
    *i0 = a;
    *i1 = a < n - 1 ? a + 1 : a;
    *l1 = src - (T)a;
}

void FN(ew_upsample_forward)(ew_upsample_t mode, T *out, const T *x, int n, int c, int h, int w, int s)
{
    const int OH = h * s, OW = w * s, planes = n * c;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * OH * OW)) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const T *xp = x + (size_t)pl * h * w;
        T *op = out + (size_t)pl * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            if (mode == EW_UPSAMPLE_NEAREST) {
                for (int ox = 0; ox < OW; ox++) op[oy * OW + ox] = xp[(oy / s) * w + ox / s];
            } else {
                int y0, y1, x0, x1;
                T ly, lx;
                FN(bil_src)(oy, s, h, &y0, &y1, &ly);
                for (int ox = 0; ox < OW; ox++) {
                    FN(bil_src)(ox, s, w, &x0, &x1, &lx);
                    op[oy * OW + ox] = ((T)1 - ly) * (((T)1 - lx) * xp[y0 * w + x0] + lx * xp[y0 * w + x1]) +
                                       ly * (((T)1 - lx) * xp[y1 * w + x0] + lx * xp[y1 * w + x1]);
                }
            }
        }
    }
}

void FN(ew_upsample_backward)(ew_upsample_t mode, T *dx, const T *dout, int n, int c, int h, int w, int s)
{
    const int OH = h * s, OW = w * s, planes = n * c;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)planes * OH * OW)) schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        T *dp = dx + (size_t)pl * h * w;
        const T *g = dout + (size_t)pl * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            if (mode == EW_UPSAMPLE_NEAREST) {
                for (int ox = 0; ox < OW; ox++) dp[(oy / s) * w + ox / s] += g[oy * OW + ox];
            } else {
                int y0, y1, x0, x1;
                T ly, lx;
                FN(bil_src)(oy, s, h, &y0, &y1, &ly);
                for (int ox = 0; ox < OW; ox++) {
                    FN(bil_src)(ox, s, w, &x0, &x1, &lx);
                    T v = g[oy * OW + ox];
                    dp[y0 * w + x0] += v * ((T)1 - ly) * ((T)1 - lx);
                    dp[y0 * w + x1] += v * ((T)1 - ly) * lx;
                    dp[y1 * w + x0] += v * ly * ((T)1 - lx);
                    dp[y1 * w + x1] += v * ly * lx;
                }
            }
        }
    }
}

/* grid coordinate -> pixel coordinate and d(pixel)/d(grid) */
static inline T FN(grid_unnorm)(T g, int size, int align, T *scale)
{
    if (align) {
        *scale = (T)(size - 1) / (T)2;
        return (g + (T)1) * *scale;
    }
    *scale = (T)size / (T)2;
    return ((g + (T)1) * (T)size - (T)1) / (T)2;
}

void FN(ew_grid_sample_forward)(T *out, const T *x, const T *grid, int n, int c, int h, int w, int gh, int gw,
                                int align_corners)
{
    const size_t GP = (size_t)gh * gw, HW = (size_t)h * w;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)n * GP * c)) schedule(static)
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < GP; p++) {
            T sx, sy;
            T fx = FN(grid_unnorm)(grid[((size_t)i * GP + p) * 2], w, align_corners, &sx);
            T fy = FN(grid_unnorm)(grid[((size_t)i * GP + p) * 2 + 1], h, align_corners, &sy);
            int x0 = (int)TM(floor)(fx), y0 = (int)TM(floor)(fy);
            T lx = fx - (T)x0, ly = fy - (T)y0;
            T wgt[4] = {((T)1 - lx) * ((T)1 - ly), lx * ((T)1 - ly), ((T)1 - lx) * ly, lx * ly};
            int xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
            for (int ch = 0; ch < c; ch++) {
                const T *xp = x + ((size_t)i * c + ch) * HW;
                T v = 0;
                for (int q = 0; q < 4; q++)
                    if (xs[q] >= 0 && xs[q] < w && ys[q] >= 0 && ys[q] < h) v += wgt[q] * xp[ys[q] * w + xs[q]];
                out[((size_t)i * c + ch) * GP + p] = v;
            }
        }
}

void FN(ew_grid_sample_backward)(T *dx, T *dgrid, const T *dout, const T *x, const T *grid, int n, int c, int h,
                                 int w, int gh, int gw, int align_corners)
{
    const size_t GP = (size_t)gh * gw, HW = (size_t)h * w;
    #pragma omp parallel for num_threads(ew_nn_team_for((size_t)n * GP * c)) schedule(static)
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < GP; p++) {
            T sx, sy;
            T fx = FN(grid_unnorm)(grid[((size_t)i * GP + p) * 2], w, align_corners, &sx);
            T fy = FN(grid_unnorm)(grid[((size_t)i * GP + p) * 2 + 1], h, align_corners, &sy);
            int x0 = (int)TM(floor)(fx), y0 = (int)TM(floor)(fy);
            T lx = fx - (T)x0, ly = fy - (T)y0;
            T wgt[4] = {((T)1 - lx) * ((T)1 - ly), lx * ((T)1 - ly), ((T)1 - lx) * ly, lx * ly};
            /* d wgt / d lx and d wgt / d ly */
            T wx[4] = {-((T)1 - ly), (T)1 - ly, -ly, ly}, wy[4] = {-((T)1 - lx), -lx, (T)1 - lx, lx};
            int xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
            T gx = 0, gy = 0;
            for (int ch = 0; ch < c; ch++) {
                const T *xp = x + ((size_t)i * c + ch) * HW;
                T g = dout[((size_t)i * c + ch) * GP + p];
                for (int q = 0; q < 4; q++) {
                    if (xs[q] < 0 || xs[q] >= w || ys[q] < 0 || ys[q] >= h) continue;
                    size_t k = (size_t)ys[q] * w + xs[q];
                    if (dx) dx[((size_t)i * c + ch) * HW + k] += g * wgt[q];
                    gx += g * wx[q] * xp[k];
                    gy += g * wy[q] * xp[k];
                }
            }
            if (dgrid) {
                dgrid[((size_t)i * GP + p) * 2] += gx * sx;
                dgrid[((size_t)i * GP + p) * 2 + 1] += gy * sy;
            }
        }
}
