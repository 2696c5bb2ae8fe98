/* ewald nn: conv/linear kernels, instantiated for T = float and double by
 * conv.c (see tmpl.h). No include guard on purpose. */

/* Geometry of one im2col: an image (c, h, w) read by a (kh, kw) window at
 * stride s with padding p into columns (c kh kw, oh ow). */

/* col[(ci kh + ki) kw + kj][oy ow + ox] = x[ci][oy s - p + ki][ox s - p + kj] */
static void FN(im2col)(T *restrict col, size_t ld, const T *restrict x, const ew_conv2d_t *g)
{
    const int C = g->c, H = g->h, W = g->w, KH = g->kh, KW = g->kw, S = g->stride, PD = g->pad;
    const int OH = g->oh, OW = g->ow, refl = g->pad_mode == EW_PAD_REFLECT;
    for (int ci = 0; ci < C; ci++)
        for (int ki = 0; ki < KH; ki++)
            for (int kj = 0; kj < KW; kj++) {
                T *dst = col + ((size_t)(ci * KH + ki) * KW + kj) * ld;
                /* valid ox range where the x index lies inside the row */
                int lo = 0, hi = OW;
                if (S == 1) {
                    lo = PD - kj > 0 ? PD - kj : 0;
                    hi = W + PD - kj < OW ? W + PD - kj : OW;
                    if (hi < lo) hi = lo;
                }
                for (int oy = 0; oy < OH; oy++) {
                    T *d = dst + (size_t)oy * OW;
                    int iy = oy * S - PD + ki;
                    if (iy < 0 || iy >= H) {
                        if (!refl) {
                            memset(d, 0, (size_t)OW * sizeof(T));
                            continue;
                        }
                        iy = ew_nn_reflect(iy, H);
                    }
                    const T *src = x + ((size_t)ci * H + iy) * W;
                    if (S == 1) {
                        for (int ox = 0; ox < lo; ox++) {
                            int ix = ox - PD + kj;
                            d[ox] = refl ? src[ew_nn_reflect(ix, W)] : (T)0;
                        }
                        if (hi > lo) memcpy(d + lo, src + lo - PD + kj, (size_t)(hi - lo) * sizeof(T));
                        for (int ox = hi; ox < OW; ox++) {
                            int ix = ox - PD + kj;
                            d[ox] = refl ? src[ew_nn_reflect(ix, W)] : (T)0;
                        }
                    } else {
                        for (int ox = 0; ox < OW; ox++) {
                            int ix = ox * S - PD + kj;
                            if (ix < 0 || ix >= W)
                                d[ox] = refl ? src[ew_nn_reflect(ix, W)] : (T)0;
                            else
                                d[ox] = src[ix];
                        }
                    }
                }
            }
}

/* The adjoint of im2col: x[...] += col[...] (reflected positions add to
 * the pixel they were read from). */
static void FN(col2im_add)(T *restrict x, const T *restrict col, size_t ld, const ew_conv2d_t *g)
{
    const int C = g->c, H = g->h, W = g->w, KH = g->kh, KW = g->kw, S = g->stride, PD = g->pad;
    const int OH = g->oh, OW = g->ow, refl = g->pad_mode == EW_PAD_REFLECT;
    for (int ci = 0; ci < C; ci++)
        for (int ki = 0; ki < KH; ki++)
            for (int kj = 0; kj < KW; kj++) {
                const T *srcc = col + ((size_t)(ci * KH + ki) * KW + kj) * ld;
                for (int oy = 0; oy < OH; oy++) {
                    const T *s = srcc + (size_t)oy * OW;
                    int iy = oy * S - PD + ki;
                    if (iy < 0 || iy >= H) {
                        if (!refl) continue;
                        iy = ew_nn_reflect(iy, H);
                    }
                    T *dr = x + ((size_t)ci * H + iy) * W;
                    if (S == 1 && !refl) {
                        int lo = PD - kj > 0 ? PD - kj : 0;
                        int hi = W + PD - kj < OW ? W + PD - kj : OW;
                        T *dd = dr - PD + kj;
                        for (int ox = lo; ox < hi; ox++) dd[ox] += s[ox];
                    } else {
                        for (int ox = 0; ox < OW; ox++) {
                            int ix = ox * S - PD + kj;
                            if (ix < 0 || ix >= W) {
                                if (!refl) continue;
                                ix = ew_nn_reflect(ix, W);
                            }
                            dr[ix] += s[ox];
                        }
                    }
                }
            }
}

/* dst[k] += sum_{t=1}^{nt-1} part[t-1][k], over k split by the enclosing
 * team (called by every thread of a parallel region). */
static void FN(reduce_parts)(T *dst, const T *parts, int nparts, size_t n)
{
    #pragma omp for schedule(static)
    for (size_t k = 0; k < n; k++) {
        T s = dst[k];
        for (int t = 0; t < nparts; t++) s += parts[(size_t)t * n + k];
        dst[k] = s;
    }
}

/* out rows of (oc, P): out[o][p] += b[o] */
static void FN(add_bias)(T *out, const T *b, int oc, size_t P)
{
    for (int o = 0; o < oc; o++) {
        T bo = b[o];
        T *r = out + (size_t)o * P;
        for (size_t p = 0; p < P; p++) r[p] += bo;
    }
}

static void FN(bias_grad)(T *db, const T *dout, int oc, size_t P)
{
    for (int o = 0; o < oc; o++) {
        const T *r = dout + (size_t)o * P;
        double s = 0.0;
        for (size_t p = 0; p < P; p++) s += r[p];
        db[o] += (T)s;
    }
}

/* Samples per GEMM: a thread im2col's nb samples side by side into a
 * (K, nb P) matrix so that deep layers with small images still give
 * sgemm wide matrices; nb is capped so the column buffer stays below
 * EW_NN_COL_CAP floats. Layers with P >= EW_NN_SAMPLE_P output pixels
 * per sample run one sample per GEMM, which needs no copies between the
 * grouped and the NCHW layouts. */
#ifndef EW_NN_COL_CAP
#define EW_NN_COL_CAP ((size_t)1 << 21)
#endif
#ifndef EW_NN_SAMPLE_P
#define EW_NN_SAMPLE_P 64
#endif
static int FN(conv_chunk)(size_t K, size_t P, int per_thread)
{
    if (P >= EW_NN_SAMPLE_P) return 1; /* wide enough alone: no gather/scatter copies */
    size_t nb = EW_NN_COL_CAP / (K * P);
    if (nb < 1) nb = 1;
    if (nb > (size_t)per_thread) nb = (size_t)per_thread;
    return (int)nb;
}

ew_status_t FN(ew_conv2d_forward)(T *out, const T *x, const T *w, const T *b, const ew_conv2d_t *d)
{
    const size_t K = (size_t)d->c * d->kh * d->kw, P = (size_t)d->oh * d->ow;
    const size_t in_sz = (size_t)d->c * d->h * d->w, out_sz = (size_t)d->oc * P;
    int nt = ew_nn_team_for((size_t)(ew_conv2d_flops(d) / 64));
    if (nt > d->n) nt = d->n;
    if (nt < 1) nt = 1;
    const int nb = FN(conv_chunk)(K, P, (d->n + nt - 1) / nt);
    const size_t per = (size_t)nb * P * (K + (nb > 1 ? (size_t)d->oc : 0));
    T *work = ew_nn_scratch((size_t)nt * per * sizeof(T));
    if (!work) return EW_ERR_NOMEM;
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num();
        const int i0 = (int)((long)d->n * t / nt), i1 = (int)((long)d->n * (t + 1) / nt);
        T *col = work + (size_t)t * per, *tmp = col + (size_t)nb * P * K;
        for (int i = i0; i < i1; i += nb) {
            const int m = i + nb <= i1 ? nb : i1 - i;
            const size_t ld = (size_t)m * P;
            for (int j = 0; j < m; j++) FN(im2col)(col + (size_t)j * P, ld, x + (size_t)(i + j) * in_sz, d);
            T *dst = m == 1 ? out + (size_t)i * out_sz : tmp;
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->oc, (int)ld, (int)K, 1, w, (int)K, col, (int)ld, 0,
                 dst, (int)ld);
            if (m > 1)
                for (int j = 0; j < m; j++)
                    for (int o = 0; o < d->oc; o++)
                        memcpy(out + (size_t)(i + j) * out_sz + (size_t)o * P, tmp + (size_t)o * ld + (size_t)j * P,
                               P * sizeof(T));
            if (b)
                for (int j = 0; j < m; j++) FN(add_bias)(out + (size_t)(i + j) * out_sz, b, d->oc, P);
        }
    }
    return EW_OK;
}

ew_status_t FN(ew_conv2d_backward)(T *dx, T *dw, T *db, const T *dout, const T *x, const T *w,
                                   const ew_conv2d_t *d)
{
    const size_t K = (size_t)d->c * d->kh * d->kw, P = (size_t)d->oh * d->ow;
    const size_t in_sz = (size_t)d->c * d->h * d->w, out_sz = (size_t)d->oc * P;
    const size_t nw = (size_t)d->oc * K;
    int nt = ew_nn_team_for((size_t)(ew_conv2d_flops(d) / 64));
    if (nt > d->n) nt = d->n;
    if (nt < 1) nt = 1;
    const int nb = FN(conv_chunk)(K, P, (d->n + nt - 1) / nt);
    /* per thread: col (K, nb P), dcol (K, nb P), gathered dout (oc, nb P) */
    const size_t per = (size_t)nb * P * (2 * K + (size_t)d->oc);
    const size_t np = (size_t)(nt - 1) * (nw + (size_t)d->oc);
    T *work = ew_nn_scratch(((size_t)nt * per + np) * sizeof(T));
    if (!work) return EW_ERR_NOMEM;
    T *parts = work + (size_t)nt * per;
    memset(parts, 0, np * sizeof(T));
    T *pw = parts, *pb = parts + (size_t)(nt - 1) * nw;
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num();
        const int i0 = (int)((long)d->n * t / nt), i1 = (int)((long)d->n * (t + 1) / nt);
        T *col = work + (size_t)t * per, *dcol = col + (size_t)nb * P * K, *gt = dcol + (size_t)nb * P * K;
        T *mydw = t == 0 ? dw : pw + (size_t)(t - 1) * nw;
        T *mydb = t == 0 ? db : pb + (size_t)(t - 1) * d->oc;
        for (int i = i0; i < i1; i += nb) {
            const int m = i + nb <= i1 ? nb : i1 - i;
            const size_t ld = (size_t)m * P;
            const T *g = dout + (size_t)i * out_sz;
            if (m > 1) {
                for (int j = 0; j < m; j++)
                    for (int o = 0; o < d->oc; o++)
                        memcpy(gt + (size_t)o * ld + (size_t)j * P, dout + (size_t)(i + j) * out_sz + (size_t)o * P,
                               P * sizeof(T));
                g = gt;
            }
            if (db) FN(bias_grad)(mydb, g, d->oc, ld);
            if (dw) {
                for (int j = 0; j < m; j++) FN(im2col)(col + (size_t)j * P, ld, x + (size_t)(i + j) * in_sz, d);
                GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, d->oc, (int)K, (int)ld, 1, g, (int)ld, col, (int)ld,
                     1, mydw, (int)K);
            }
            if (dx) {
                GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)ld, d->oc, 1, w, (int)K, g, (int)ld, 0,
                     dcol, (int)ld);
                for (int j = 0; j < m; j++) FN(col2im_add)(dx + (size_t)(i + j) * in_sz, dcol + (size_t)j * P, ld, d);
            }
        }
        if (nt > 1) {
            #pragma omp barrier
            if (dw) FN(reduce_parts)(dw, pw, nt - 1, nw);
            if (db) FN(reduce_parts)(db, pb, nt - 1, (size_t)d->oc);
        }
    }
    return EW_OK;
}

/* The col2im geometry of a transposed convolution: the output image
 * (oc, oh, ow) is the "input" of a convolution whose "output" is (h, w). */
static ew_conv2d_t FN(convt_geom)(const ew_conv2d_t *d)
{
    ew_conv2d_t g = *d;
    g.c = d->oc;
    g.h = d->oh;
    g.w = d->ow;
    g.oh = d->h;
    g.ow = d->w;
    g.pad_mode = EW_PAD_ZERO;
    return g;
}

ew_status_t FN(ew_convt2d_forward)(T *out, const T *x, const T *w, const T *b, const ew_conv2d_t *d)
{
    const ew_conv2d_t g = FN(convt_geom)(d);
    const size_t K = (size_t)d->oc * d->kh * d->kw, HW = (size_t)d->h * d->w;
    const size_t in_sz = (size_t)d->c * HW, OP = (size_t)d->oh * d->ow, out_sz = (size_t)d->oc * OP;
    int nt = ew_nn_team_for((size_t)(ew_conv2d_flops(d) / 64));
    if (nt > d->n) nt = d->n;
    if (nt < 1) nt = 1;
    T *work = ew_alloc_array((size_t)nt * K * HW, sizeof(T));
    if (!work) return EW_ERR_NOMEM;
    #pragma omp parallel num_threads(nt)
    {
        T *col = work + (size_t)omp_get_thread_num() * K * HW;
        #pragma omp for schedule(static)
        for (int i = 0; i < d->n; i++) {
            T *oi = out + (size_t)i * out_sz;
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)HW, d->c, 1, w, (int)K,
                 x + (size_t)i * in_sz, (int)HW, 0, col, (int)HW);
            memset(oi, 0, out_sz * sizeof(T));
            FN(col2im_add)(oi, col, HW, &g);
            if (b) FN(add_bias)(oi, b, d->oc, OP);
        }
    }
    ew_free(work);
    return EW_OK;
}

ew_status_t FN(ew_convt2d_backward)(T *dx, T *dw, T *db, const T *dout, const T *x, const T *w,
                                    const ew_conv2d_t *d)
{
    const ew_conv2d_t g = FN(convt_geom)(d);
    const size_t K = (size_t)d->oc * d->kh * d->kw, HW = (size_t)d->h * d->w;
    const size_t in_sz = (size_t)d->c * HW, OP = (size_t)d->oh * d->ow, out_sz = (size_t)d->oc * OP;
    const size_t nw = (size_t)d->c * K;
    int nt = ew_nn_team_for((size_t)(ew_conv2d_flops(d) / 64));
    if (nt > d->n) nt = d->n;
    if (nt < 1) nt = 1;
    T *work = ew_alloc_array((size_t)nt * K * HW, sizeof(T));
    T *parts = ew_calloc_array((size_t)(nt - 1) * (nw + (size_t)d->oc) + 1, sizeof(T));
    if (!work || !parts) {
        ew_free(work);
        ew_free(parts);
        return EW_ERR_NOMEM;
    }
    T *pw = parts, *pb = parts + (size_t)(nt - 1) * nw;
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        T *col = work + (size_t)t * K * HW;
        T *mydw = t == 0 ? dw : pw + (size_t)(t - 1) * nw;
        T *mydb = t == 0 ? db : pb + (size_t)(t - 1) * d->oc;
        #pragma omp for schedule(static)
        for (int i = 0; i < d->n; i++) {
            const T *gi = dout + (size_t)i * out_sz;
            if (db) FN(bias_grad)(mydb, gi, d->oc, OP);
            if (!dx && !dw) continue;
            FN(im2col)(col, HW, gi, &g);
            if (dx)
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->c, (int)HW, (int)K, 1, w, (int)K, col,
                     (int)HW, 1, dx + (size_t)i * in_sz, (int)HW);
            if (dw)
                GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, d->c, (int)K, (int)HW, 1,
                     x + (size_t)i * in_sz, (int)HW, col, (int)HW, 1, mydw, (int)K);
        }
        if (nt > 1) {
            if (dw) FN(reduce_parts)(dw, pw, nt - 1, nw);
            if (db) FN(reduce_parts)(db, pb, nt - 1, (size_t)d->oc);
        }
    }
    ew_free(work);
    ew_free(parts);
    return EW_OK;
}

/* Rows are split into nt contiguous blocks, one per thread. */
void FN(ew_linear_forward)(T *out, const T *x, const T *w, const T *b, int rows, int in, int out_dim)
{
    int nt = ew_nn_team_for((size_t)rows * in * out_dim / 32);
    if (nt > rows) nt = rows;
    if (nt < 1) nt = 1;
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        int r0 = (int)((long)rows * t / nt), r1 = (int)((long)rows * (t + 1) / nt);
        if (r1 > r0) {
            T *o = out + (size_t)r0 * out_dim;
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, out_dim, in, 1, x + (size_t)r0 * in, in,
                 w, in, 0, o, out_dim);
            if (b)
                for (int r = 0; r < r1 - r0; r++)
                    for (int j = 0; j < out_dim; j++) o[(size_t)r * out_dim + j] += b[j];
        }
    }
}

ew_status_t FN(ew_linear_backward)(T *dx, T *dw, T *db, const T *dout, const T *x, const T *w, int rows,
                                   int in, int out_dim)
{
    int nt = ew_nn_team_for((size_t)rows * in * out_dim / 32);
    if (nt > rows) nt = rows;
    if (nt < 1) nt = 1;
    const size_t nw = (size_t)out_dim * in;
    T *parts = ew_calloc_array((size_t)(nt - 1) * (nw + (size_t)out_dim) + 1, sizeof(T));
    if (!parts) return EW_ERR_NOMEM;
    T *pw = parts, *pb = parts + (size_t)(nt - 1) * nw;
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        int r0 = (int)((long)rows * t / nt), r1 = (int)((long)rows * (t + 1) / nt), nr = r1 - r0;
        T *mydw = t == 0 ? dw : pw + (size_t)(t - 1) * nw;
        T *mydb = t == 0 ? db : pb + (size_t)(t - 1) * out_dim;
        const T *g = dout + (size_t)r0 * out_dim;
        if (nr > 0) {
            if (dx)
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, in, out_dim, 1, g, out_dim, w, in, 1,
                     dx + (size_t)r0 * in, in);
            if (dw)
                GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in, nr, 1, g, out_dim,
                     x + (size_t)r0 * in, in, 1, mydw, in);
            if (db)
                for (int r = 0; r < nr; r++)
                    for (int j = 0; j < out_dim; j++) mydb[j] += g[(size_t)r * out_dim + j];
        }
        if (nt > 1) {
            #pragma omp barrier
            if (dw) FN(reduce_parts)(dw, pw, nt - 1, nw);
            if (db) FN(reduce_parts)(db, pb, nt - 1, (size_t)out_dim);
        }
    }
    ew_free(parts);
    return EW_OK;
}
