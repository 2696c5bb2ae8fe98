/* ewald eval: volume alignment (coarse 600-cell search on downsampled
 * copies, pattern-search refinement, both hands). See align.h. */
#include "eval/align.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ew_align_opts_default(ew_align_opts_t *o)
{
    o->rmin = 0.05;
    o->rmax = 0.9;
    o->coarse_n = 32;
    o->coarse_level = 5;
    o->ncandidates = 4;
    o->try_hand = 1;
    o->shell_normalize = 1;
    o->tol_deg = 0.05;
}

/* ---- sampling ---- */

static inline double trilinear(const float *v, int n, double x, double y, double z)
{
    if (!(x >= 0.0 && y >= 0.0 && z >= 0.0)) return 0.0;
    int ix = (int)x, iy = (int)y, iz = (int)z;
    if (ix >= n - 1 || iy >= n - 1 || iz >= n - 1) {
        /* exactly on the last plane: allowed when the fraction is 0 */
        if (ix > n - 1 || iy > n - 1 || iz > n - 1) return 0.0;
        if ((ix == n - 1 && x != ix) || (iy == n - 1 && y != iy) || (iz == n - 1 && z != iz)) return 0.0;
        if (ix == n - 1) ix--;
        if (iy == n - 1) iy--;
        if (iz == n - 1) iz--;
    }
    double fx = x - ix, fy = y - iy, fz = z - iz;
    size_t s1 = (size_t)n, s2 = (size_t)n * n;
    const float *p = v + (size_t)iz * s2 + (size_t)iy * s1 + ix;
    double c00 = p[0] + fx * (p[1] - p[0]);
    double c01 = p[s1] + fx * (p[s1 + 1] - p[s1]);
    double c10 = p[s2] + fx * (p[s2 + 1] - p[s2]);
    double c11 = p[s2 + s1] + fx * (p[s2 + s1 + 1] - p[s2 + s1]);
    double c0 = c00 + fy * (c01 - c00), c1 = c10 + fy * (c11 - c10);
    return c0 + fz * (c1 - c0);
}

void ew_vol_transform(const float *in, int n, const double m[9], const double shift[3], float *out)
{
    const double c = n / 2;
    const double t[3] = {shift ? shift[0] : 0.0, shift ? shift[1] : 0.0, shift ? shift[2] : 0.0};
    /* small volumes (the coarse copies) are cheaper on one thread */
#pragma omp parallel for schedule(static) if (n >= 48)
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++) {
            double uz = z - c - t[2], uy = y - c - t[1];
            for (int x = 0; x < n; x++) {
                double ux = x - c - t[0];
                double px = m[0] * ux + m[1] * uy + m[2] * uz + c;
                double py = m[3] * ux + m[4] * uy + m[5] * uz + c;
                double pz = m[6] * ux + m[7] * uy + m[8] * uz + c;
                out[((size_t)z * n + y) * n + x] = (float)trilinear(in, n, px, py, pz);
            }
        }
}

void ew_align_matrix(ew_quat_t q, int hand, double m[9])
{
    double r[9];
    ew_quat_to_mat(q, r);
    ew_mat_transpose(r, m);
    if (hand)
        for (int k = 0; k < 9; k++) m[k] = -m[k];
}

void ew_align_apply(const ew_align_result_t *res, const float *mov, int n, float *out)
{
    double m[9];
    ew_align_matrix(res->q, res->hand, m);
    ew_vol_transform(mov, n, m, res->shift, out);
}

/* ---- centred reciprocal volumes: shells, downsampling ---- */

/* Subtract each shell's mean and (scale = 1) divide by its standard
 * deviation (non-finite voxels are left out of the statistics and stay as
 * they are). */
static ew_status_t shell_normalize(float *v, int n, int scale)
{
    const int c = n / 2;
    int ns = (int)ceil(sqrt(3.0) * c) + 2;
    double *s1 = ew_calloc_array((size_t)ns, sizeof *s1), *s2 = ew_calloc_array((size_t)ns, sizeof *s2);
    double *cnt = ew_calloc_array((size_t)ns, sizeof *cnt);
    if (!s1 || !s2 || !cnt) {
        ew_free(s1);
        ew_free(s2);
        ew_free(cnt);
        return EW_ERR_NOMEM;
    }
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int j = (int)floor(sqrt((double)(x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c)) + 0.5);
                double val = v[((size_t)z * n + y) * n + x];
                if (!isfinite(val)) continue;
                s1[j] += val;
                s2[j] += val * val;
                cnt[j] += 1.0;
            }
    double smax = 0.0;
    for (int j = 0; j < ns; j++) {
        if (cnt[j] <= 0) continue;
        s1[j] /= cnt[j];
        double var = s2[j] / cnt[j] - s1[j] * s1[j];
        s2[j] = var > 0.0 ? sqrt(var) : 0.0;
        if (s2[j] > smax) smax = s2[j];
    }
    /* shells with (almost) no variation carry rounding noise only: zero them */
    for (int j = 0; j < ns; j++) s2[j] = !scale ? 1.0 : s2[j] > 1e-6 * smax ? 1.0 / s2[j] : 0.0;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int j = (int)floor(sqrt((double)(x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c)) + 0.5);
                size_t i = ((size_t)z * n + y) * n + x;
                v[i] = (float)((v[i] - s1[j]) * s2[j]);
            }
    ew_free(s1);
    ew_free(s2);
    ew_free(cnt);
    return EW_OK;
}

/* Resample a centred n^3 volume to m^3 over the same q-range: each coarse
 * voxel is the mean of 8 trilinear samples at +-1/4 coarse voxel. */
static void downsample(const float *v, int n, int m, float *out)
{
    const double c = n / 2, cm = m / 2, f = (double)n / m;
#pragma omp parallel for schedule(static)
    for (int z = 0; z < m; z++)
        for (int y = 0; y < m; y++)
            for (int x = 0; x < m; x++) {
                double acc = 0.0;
                for (int k = 0; k < 8; k++) {
                    double dx = k & 1 ? 0.25 : -0.25, dy = k & 2 ? 0.25 : -0.25, dz = k & 4 ? 0.25 : -0.25;
                    acc += trilinear(v, n, c + f * (x - cm + dx), c + f * (y - cm + dy), c + f * (z - cm + dz));
                }
                out[((size_t)z * m + y) * m + x] = (float)(acc / 8.0);
            }
}

/* ---- intensity matcher: Pearson over a shell range of the reference ----
 * The shell range is symmetric about the centre, so its voxels are kept in
 * pairs (u, -u): one pass of samples b(+-u) = B(+-M u) gives the scores of
 * both hands (M and -M). A centrosymmetric moving volume (amplitudes) has
 * b(-u) = b(u) on the symmetric grid, and only b(u) is sampled. */

typedef struct {
    int n;
    int symmetric;  /* the moving volume is centrosymmetric */
    const float *mov;
    size_t np;      /* pairs */
    float *u;       /* (np, 3) offsets (x, y, z) of the first voxel of each pair */
    float *a;       /* (np, 2) reference values at +u and -u, zero mean, unit norm */
} matcher_t;

static void matcher_free(matcher_t *mt)
{
    ew_free(mt->u);
    ew_free(mt->a);
    memset(mt, 0, sizeof *mt);
}

/* Pairs of voxels with r0 <= r <= r1 (r0 >= 0.5 leaves the centre out)
 * where the reference is finite at both. */
static ew_status_t matcher_init(matcher_t *mt, const float *ref, const float *mov, int n, double r0, double r1,
                                int symmetric)
{
    memset(mt, 0, sizeof *mt);
    const int c = n / 2;
    if (r0 < 0.5) r0 = 0.5;
    if (r1 > c - 1.01) r1 = c - 1.01; /* rotated samples stay inside the grid */
    size_t cnt = 0;
    for (int pass = 0; pass < 2; pass++) {
        double sum = 0.0;
        cnt = 0;
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    int ux = x - c, uy = y - c, uz = z - c;
                    /* the first of each pair: z > 0, or z = 0 and y > 0, or z = y = 0 and x > 0 */
                    if (!(uz > 0 || (uz == 0 && (uy > 0 || (uy == 0 && ux > 0))))) continue;
                    double r = sqrt((double)ux * ux + (double)uy * uy + (double)uz * uz);
                    if (r < r0 || r > r1 || c - ux < 0 || c - uy < 0 || c - uz < 0) continue;
                    float vp = ref[((size_t)z * n + y) * n + x];
                    float vm = ref[((size_t)(c - uz) * n + (size_t)(c - uy)) * n + (size_t)(c - ux)];
                    if (!isfinite(vp) || !isfinite(vm)) continue;
                    if (pass == 1) {
                        mt->u[3 * cnt] = (float)ux;
                        mt->u[3 * cnt + 1] = (float)uy;
                        mt->u[3 * cnt + 2] = (float)uz;
                        mt->a[2 * cnt] = vp;
                        mt->a[2 * cnt + 1] = vm;
                        sum += (double)vp + vm;
                    }
                    cnt++;
                }
        if (pass == 0) {
            if (cnt < 8)
                return ew_fail(EW_ERR_ARG, "volume alignment: only %zu voxel pairs in the q-range [%g, %g] voxels",
                               cnt, r0, r1);
            mt->u = ew_alloc_array(cnt, 3 * sizeof *mt->u);
            mt->a = ew_alloc_array(cnt, 2 * sizeof *mt->a);
            if (!mt->u || !mt->a) {
                matcher_free(mt);
                return EW_ERR_NOMEM;
            }
        } else {
            double mean = sum / (2.0 * cnt), ss = 0.0;
            for (size_t i = 0; i < 2 * cnt; i++) ss += (mt->a[i] - mean) * (mt->a[i] - mean);
            double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
            for (size_t i = 0; i < 2 * cnt; i++) mt->a[i] = (float)((mt->a[i] - mean) * inv);
        }
    }
    mt->np = cnt;
    mt->n = n;
    mt->mov = mov;
    mt->symmetric = symmetric;
    return EW_OK;
}

/* Trilinear interpolation at a point known to lie in [0, n - 1)^3. */
static inline float trilinear_in(const float *v, int n, float x, float y, float z)
{
    int ix = (int)x, iy = (int)y, iz = (int)z;
    float fx = x - ix, fy = y - iy, fz = z - iz;
    size_t s1 = (size_t)n, s2 = (size_t)n * n;
    const float *p = v + (size_t)iz * s2 + (size_t)iy * s1 + ix;
    float c00 = p[0] + fx * (p[1] - p[0]);
    float c01 = p[s1] + fx * (p[s1 + 1] - p[s1]);
    float c10 = p[s2] + fx * (p[s2 + 1] - p[s2]);
    float c11 = p[s2 + s1] + fx * (p[s2 + s1 + 1] - p[s2 + s1]);
    float c0 = c00 + fy * (c01 - c00), c1 = c10 + fy * (c11 - c10);
    return c0 + fz * (c1 - c0);
}

/* Pearson scores of sampling matrices m (out[0]) and -m (out[1]); m must be
 * orthogonal (|m u| = |u| keeps every sample inside the grid). */
static void matcher_score2(const matcher_t *mt, const double m[9], double out[2])
{
    const float c = (float)(mt->n / 2);
    double sb = 0.0, sbb = 0.0, s0 = 0.0, s1 = 0.0;
    for (size_t i = 0; i < mt->np; i++) {
        double ux = mt->u[3 * i], uy = mt->u[3 * i + 1], uz = mt->u[3 * i + 2];
        float px = (float)(m[0] * ux + m[1] * uy + m[2] * uz), py = (float)(m[3] * ux + m[4] * uy + m[5] * uz),
              pz = (float)(m[6] * ux + m[7] * uy + m[8] * uz);
        double bp = trilinear_in(mt->mov, mt->n, c + px, c + py, c + pz);
        double bm = mt->symmetric ? bp : trilinear_in(mt->mov, mt->n, c - px, c - py, c - pz);
        double ap = mt->a[2 * i], am = mt->a[2 * i + 1];
        sb += bp + bm;
        sbb += bp * bp + bm * bm;
        s0 += ap * bp + am * bm;
        s1 += ap * bm + am * bp;
    }
    double var = sbb - sb * sb / (2.0 * (double)mt->np);
    double inv = var > 0.0 ? 1.0 / sqrt(var) : 0.0;
    out[0] = s0 * inv;
    out[1] = s1 * inv;
}

static double matcher_score(const matcher_t *mt, const double m[9])
{
    double s[2];
    matcher_score2(mt, m, s);
    return s[0];
}

/* ---- density scorer: band-passed Pearson maximised over translations ---- */

typedef struct {
    int n;
    size_t nh;            /* n / 2 + 1 */
    const float *mov;     /* real-space moving map, n^3 */
    float *rbuf;          /* n^3 */
    fftwf_complex *fa;    /* reference spectrum, zero outside the band */
    fftwf_complex *cbuf;
    fftwf_complex *prod;  /* FA conj(FB) in the band, kept for the sub-voxel fit */
    unsigned char *band;  /* (n n nh) 1 inside the band */
    double *trig;         /* (2 nh) scratch for xcorr_at */
    double na;            /* sum over the full spectrum of |FA|^2 in the band */
    fftwf_plan r2c, c2r;
} dscorer_t;

static int wrapi(int i, int n) { return i <= n / 2 ? i : i - n; }

static void dscorer_free(dscorer_t *d)
{
#pragma omp critical(ew_fftw_planner)
    {
        if (d->r2c) fftwf_destroy_plan(d->r2c);
        if (d->c2r) fftwf_destroy_plan(d->c2r);
    }
    ew_free(d->rbuf);
    ew_free(d->fa);
    ew_free(d->cbuf);
    ew_free(d->prod);
    ew_free(d->band);
    ew_free(d->trig);
    memset(d, 0, sizeof *d);
}

static ew_status_t dscorer_init(dscorer_t *d, const float *ref, const float *mov, int n, double r0, double r1)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->nh = (size_t)(n / 2 + 1);
    size_t nr = (size_t)n * n * n, nc = (size_t)n * n * d->nh;
    d->rbuf = ew_alloc_array(nr, sizeof *d->rbuf);
    d->fa = ew_alloc_array(nc, sizeof *d->fa);
    d->cbuf = ew_alloc_array(nc, sizeof *d->cbuf);
    d->band = ew_alloc_array(nc, 1);
    d->prod = ew_alloc_array(nc, sizeof *d->prod);
    d->trig = ew_alloc_array(2 * d->nh, sizeof *d->trig);
    if (!d->rbuf || !d->fa || !d->cbuf || !d->band || !d->prod || !d->trig) {
        dscorer_free(d);
        return ew_fail(EW_ERR_NOMEM, "volume alignment: out of memory for %d^3 FFT buffers", n);
    }
#pragma omp critical(ew_fftw_planner)
    {
        d->r2c = fftwf_plan_dft_r2c_3d(n, n, n, d->rbuf, d->cbuf, FFTW_ESTIMATE);
        d->c2r = fftwf_plan_dft_c2r_3d(n, n, n, d->cbuf, d->rbuf, FFTW_ESTIMATE);
    }
    if (!d->r2c || !d->c2r) {
        dscorer_free(d);
        return ew_fail(EW_ERR_INTERNAL, "volume alignment: FFTW could not plan a %d^3 transform", n);
    }
    d->mov = mov;
    for (size_t i = 0; i < nr; i++) d->rbuf[i] = isfinite(ref[i]) ? ref[i] : 0.0f;
    fftwf_execute(d->r2c);
    double na = 0.0;
    size_t cnt = 0;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (size_t x = 0; x < d->nh; x++) {
                int kz = wrapi(z, n), ky = wrapi(y, n);
                double r = sqrt((double)x * x + (double)ky * ky + (double)kz * kz);
                size_t i = ((size_t)z * n + y) * d->nh + x;
                int in = r >= r0 && r <= r1;
                d->band[i] = (unsigned char)in;
                if (in) {
                    double w = (x == 0 || (n % 2 == 0 && (int)x == n / 2)) ? 1.0 : 2.0;
                    d->fa[i][0] = d->cbuf[i][0];
                    d->fa[i][1] = d->cbuf[i][1];
                    na += w * ((double)d->cbuf[i][0] * d->cbuf[i][0] + (double)d->cbuf[i][1] * d->cbuf[i][1]);
                    cnt++;
                } else {
                    d->fa[i][0] = d->fa[i][1] = 0.0f;
                }
            }
    if (cnt < 8) {
        dscorer_free(d);
        return ew_fail(EW_ERR_ARG, "volume alignment: only %zu Fourier coefficients in the band [%g, %g]", cnt, r0,
                       r1);
    }
    d->na = na;
    return EW_OK;
}

/* S(t) = sum_k w Re(X(k) e^{2 pi i k.t / n}) over the half spectrum (w = 2
 * for the planes that stand for a Hermitian pair), with its gradient and
 * Hessian in t: the cross-correlation at a sub-voxel shift. */
static double xcorr_at(dscorer_t *d, const double t[3], double g[3], double h[6])
{
    const int n = d->n;
    const size_t nh = d->nh;
    const double w0 = 2.0 * EW_PI / n;
    double s = 0.0;
    for (int a = 0; a < 3; a++) g[a] = 0.0;
    for (int a = 0; a < 6; a++) h[a] = 0.0;
    double *cx = d->trig, *sx = cx + nh; /* e^{i w0 x t0}, x < nh */
    for (size_t x = 0; x < nh; x++) {
        cx[x] = cos(w0 * (double)x * t[0]);
        sx[x] = sin(w0 * (double)x * t[0]);
    }
    for (int z = 0; z < n; z++) {
        int kz = wrapi(z, n);
        double cz = cos(w0 * kz * t[2]), sz = sin(w0 * kz * t[2]);
        for (int y = 0; y < n; y++) {
            int ky = wrapi(y, n);
            double ty = w0 * ky * t[1];
            double cy = cos(ty), sy = sin(ty);
            double cyz = cy * cz - sy * sz, syz = sy * cz + cy * sz;
            for (size_t x = 0; x < nh; x++) {
                size_t i = ((size_t)z * n + y) * nh + x;
                if (!d->band[i]) continue;
                double ce = cx[x] * cyz - sx[x] * syz, se = sx[x] * cyz + cx[x] * syz;
                double xr = d->prod[i][0], xi = d->prod[i][1];
                double re = xr * ce - xi * se, im = xr * se + xi * ce; /* X e^{i theta} */
                double w = (x == 0 || (n % 2 == 0 && (int)x == n / 2)) ? 1.0 : 2.0;
                double k[3] = {w0 * (double)x, w0 * ky, w0 * kz};
                s += w * re;
                for (int a = 0; a < 3; a++) g[a] -= w * k[a] * im;
                h[0] -= w * k[0] * k[0] * re;
                h[1] -= w * k[0] * k[1] * re;
                h[2] -= w * k[0] * k[2] * re;
                h[3] -= w * k[1] * k[1] * re;
                h[4] -= w * k[1] * k[2] * re;
                h[5] -= w * k[2] * k[2] * re;
            }
        }
    }
    return s;
}

/* Solve the 3x3 symmetric system h x = b (h packed xx xy xz yy yz zz). */
static int solve3(const double h[6], const double b[3], double x[3])
{
    double a[9] = {h[0], h[1], h[2], h[1], h[3], h[4], h[2], h[4], h[5]};
    double det = a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) +
                 a[2] * (a[3] * a[7] - a[4] * a[6]);
    if (!(fabs(det) > 0.0)) return 0;
    for (int c = 0; c < 3; c++) {
        double m[9];
        memcpy(m, a, sizeof m);
        for (int r = 0; r < 3; r++) m[3 * r + c] = b[r];
        x[c] = (m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                m[2] * (m[3] * m[7] - m[4] * m[6])) / det;
    }
    return 1;
}

/* Score of sampling matrix m; the best translation (voxels of this size):
 * the integer peak of the FFT cross-correlation, then Newton steps on the
 * exact sub-voxel cross-correlation. */
static double dscorer_score(dscorer_t *d, const double m[9], double t[3])
{
    const int n = d->n;
    const size_t nh = d->nh, nc = (size_t)n * n * nh, nr = (size_t)n * n * n;
    ew_vol_transform(d->mov, n, m, NULL, d->rbuf);
    fftwf_execute(d->r2c);
    double nb = 0.0;
    for (size_t i = 0; i < nc; i++) {
        if (!d->band[i]) {
            d->cbuf[i][0] = d->cbuf[i][1] = 0.0f;
            d->prod[i][0] = d->prod[i][1] = 0.0f;
            continue;
        }
        size_t x = i % nh;
        double w = (x == 0 || (n % 2 == 0 && (int)x == n / 2)) ? 1.0 : 2.0;
        double br = d->cbuf[i][0], bi = d->cbuf[i][1], ar = d->fa[i][0], ai = d->fa[i][1];
        nb += w * (br * br + bi * bi);
        d->prod[i][0] = d->cbuf[i][0] = (float)(ar * br + ai * bi); /* FA conj(FB) */
        d->prod[i][1] = d->cbuf[i][1] = (float)(ai * br - ar * bi);
    }
    fftwf_execute(d->c2r);
    size_t best = 0;
    for (size_t i = 1; i < nr; i++)
        if (d->rbuf[i] > d->rbuf[best]) best = i;
    int bx = (int)(best % n), by = (int)((best / n) % n), bz = (int)(best / ((size_t)n * n));
    int b[3] = {bx, by, bz};
    for (int ax = 0; ax < 3; ax++) {
        int lo[3] = {bx, by, bz}, hi[3] = {bx, by, bz};
        lo[ax] = (b[ax] + n - 1) % n;
        hi[ax] = (b[ax] + 1) % n;
        double c0 = d->rbuf[best];
        double cl = d->rbuf[((size_t)lo[2] * n + lo[1]) * n + lo[0]];
        double ch = d->rbuf[((size_t)hi[2] * n + hi[1]) * n + hi[0]];
        double den = cl - 2.0 * c0 + ch, delta = 0.0;
        if (den < 0.0) delta = 0.5 * (cl - ch) / den;
        if (delta > 0.5) delta = 0.5;
        if (delta < -0.5) delta = -0.5;
        t[ax] = wrapi(b[ax], n) + delta;
    }
    double g[3], h[6];
    double s = xcorr_at(d, t, g, h);
    for (int it = 0; it < 4; it++) {
        double step[3], mg[3] = {-g[0], -g[1], -g[2]};
        if (!solve3(h, mg, step)) break;
        double len = sqrt(step[0] * step[0] + step[1] * step[1] + step[2] * step[2]);
        if (len > 0.5)
            for (int a = 0; a < 3; a++) step[a] *= 0.5 / len;
        double tn[3] = {t[0] + step[0], t[1] + step[1], t[2] + step[2]}, g2[3], h2[6];
        double s2 = xcorr_at(d, tn, g2, h2);
        if (!(s2 > s)) break;
        s = s2;
        memcpy(t, tn, sizeof tn);
        memcpy(g, g2, sizeof g2);
        memcpy(h, h2, sizeof h2);
        if (len < 1e-4) break;
    }
    double den = sqrt(d->na * nb);
    return den > 0.0 ? s / den : 0.0;
}

/* ---- search ---- */

typedef double (*score_fn)(void *ctx, const double m[9], double t[3]);

static double score_matcher_cb(void *ctx, const double m[9], double t[3])
{
    t[0] = t[1] = t[2] = 0.0;
    return matcher_score((const matcher_t *)ctx, m);
}

static double score_dens_cb(void *ctx, const double m[9], double t[3]) { return dscorer_score(ctx, m, t); }

/* Greedy pattern search over small lab-frame rotations exp(d) R. */
static double refine(score_fn f, void *ctx, ew_quat_t *q, int hand, double step, double tol, double t[3])
{
    double m[9], tt[3];
    ew_align_matrix(*q, hand, m);
    double best = f(ctx, m, t);
    while (step >= tol) {
        int improved = 0;
        for (int dir = 0; dir < 6; dir++) {
            double ax[3] = {0, 0, 0};
            ax[dir / 2] = dir % 2 ? -1.0 : 1.0;
            ew_quat_t cand = ew_quat_normalize(ew_quat_mul(ew_quat_from_axis_angle(ax, step), *q));
            ew_align_matrix(cand, hand, m);
            double s = f(ctx, m, tt);
            if (s > best) {
                best = s;
                *q = cand;
                memcpy(t, tt, sizeof tt);
                improved = 1;
            }
        }
        if (!improved) step *= 0.5;
    }
    if (q->w < 0) *q = (ew_quat_t){-q->w, -q->x, -q->y, -q->z};
    return best;
}

/* Up to k best rotations of scores[], at least 2 spacings apart. */
static int top_candidates(const ew_rotgrid_t *g, const double *scores, int k, double sep, size_t *idx)
{
    unsigned char *dead = calloc(g->n, 1);
    if (!dead) return 0;
    int found = 0;
    while (found < k) {
        size_t best = g->n;
        for (size_t i = 0; i < g->n; i++)
            if (!dead[i] && (best == g->n || scores[i] > scores[best])) best = i;
        if (best == g->n) break;
        idx[found++] = best;
        for (size_t i = 0; i < g->n; i++)
            if (!dead[i] && ew_quat_angle(g->quat[i], g->quat[best]) < sep) dead[i] = 1;
    }
    free(dead);
    return found;
}

/* Coarse search of one matcher over the grid for hands [0, nhand). */
static void coarse_scores(const matcher_t *mt, const ew_rotgrid_t *g, int nhand, double *scores)
{
#pragma omp parallel for schedule(dynamic, 8)
    for (size_t i = 0; i < g->n; i++) {
        double m[9], sc[2];
        ew_align_matrix(g->quat[i], 0, m);
        matcher_score2(mt, m, sc);
        for (int h = 0; h < nhand; h++) scores[(size_t)h * g->n + i] = sc[h];
    }
}

/* A centred amplitude volume |F| (n^3) from a real-to-complex spectrum. */
static void amplitude_volume(const fftwf_complex *f, int n, float *out)
{
    const int c = n / 2;
    const size_t nh = (size_t)(n / 2 + 1);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int kx = x - c, ky = y - c, kz = z - c;
                if (kx < 0) {
                    kx = -kx;
                    ky = -ky;
                    kz = -kz;
                }
                size_t i = ((size_t)((kz + n) % n) * n + (size_t)((ky + n) % n)) * nh + (size_t)kx;
                out[((size_t)z * n + y) * n + x] = (float)hypot(f[i][0], f[i][1]);
            }
}

/* Real-space map of size m from the n-spectrum, keeping |k| < m/2 per axis. */
static void fourier_crop(const fftwf_complex *f, int n, int m, fftwf_complex *cm, float *out, fftwf_plan c2r)
{
    const size_t nh = (size_t)(n / 2 + 1), mh = (size_t)(m / 2 + 1);
    for (int z = 0; z < m; z++)
        for (int y = 0; y < m; y++)
            for (size_t x = 0; x < mh; x++) {
                int kz = wrapi(z, m), ky = wrapi(y, m);
                size_t o = ((size_t)z * m + y) * mh + x;
                if (2 * abs(kz) >= m || 2 * abs(ky) >= m || 2 * (int)x >= m) {
                    cm[o][0] = cm[o][1] = 0.0f;
                    continue;
                }
                size_t i = ((size_t)((kz + n) % n) * n + (size_t)((ky + n) % n)) * nh + x;
                cm[o][0] = f[i][0];
                cm[o][1] = f[i][1];
            }
    fftwf_execute_dft_c2r(c2r, cm, out);
}

static ew_status_t check_inputs(const float *ref, const float *mov, int n, const ew_align_opts_t *o)
{
    if (!ref || !mov) return ew_fail(EW_ERR_ARG, "volume alignment: a volume is NULL");
    if (n < 8 || n > 1024) return ew_fail(EW_ERR_ARG, "volume alignment: size n = %d is outside [8, 1024]", n);
    if (!(o->rmin >= 0.0 && o->rmax > o->rmin && o->rmax <= 1.0))
        return ew_fail(EW_ERR_ARG, "volume alignment: q-range [%g, %g] (fractions of Nyquist) is not within [0, 1]",
                       o->rmin, o->rmax);
    if (o->coarse_n < 8) return ew_fail(EW_ERR_ARG, "volume alignment: coarse size %d is below 8", o->coarse_n);
    if (o->coarse_level < 1 || o->coarse_level > 12)
        return ew_fail(EW_ERR_ARG, "volume alignment: coarse level %d is outside [1, 12]", o->coarse_level);
    if (o->ncandidates < 1 || o->ncandidates > 64)
        return ew_fail(EW_ERR_ARG, "volume alignment: %d candidates is outside [1, 64]", o->ncandidates);
    if (!(o->tol_deg > 0.0))
        return ew_fail(EW_ERR_ARG, "volume alignment: tolerance %g degrees is not positive", o->tol_deg);
    return EW_OK;
}

/* Copy with non-finite voxels as 0. */
static float *sanitized_copy(const float *v, size_t nv)
{
    float *o = ew_alloc_array(nv, sizeof *o);
    if (!o) return NULL;
    for (size_t i = 0; i < nv; i++) o[i] = isfinite(v[i]) ? v[i] : 0.0f;
    return o;
}

/* Intensity alignment. */
static ew_status_t align_intensity(const float *ref, const float *mov, int n, const ew_align_opts_t *o,
                                   const ew_rotgrid_t *g, ew_align_result_t *res)
{
    const size_t nv = (size_t)n * n * n;
    const int m = o->coarse_n < n ? o->coarse_n : n;
    const size_t mv = (size_t)m * m * m;
    const int nhand = o->try_hand ? 2 : 1;
    const double c = n / 2, cm = m / 2;
    ew_status_t st = EW_OK;
    float *a = sanitized_copy(ref, nv), *b = sanitized_copy(mov, nv);
    float *ac = ew_alloc_array(mv, sizeof *ac), *bc = ew_alloc_array(mv, sizeof *bc);
    double *scores = ew_alloc_array(g->n * (size_t)nhand, sizeof *scores);
    size_t *cand = ew_alloc_array((size_t)o->ncandidates, sizeof *cand);
    matcher_t mc = {0}, mf = {0};
    if (!a || !b || !ac || !bc || !scores || !cand) {
        st = ew_fail(EW_ERR_NOMEM, "volume alignment: out of memory for n = %d", n);
        goto done;
    }
    /* the reference's non-finite voxels are NaN: left out of the shell
     * statistics and of the score (downsampling spreads them to the coarse
     * voxels that touch them) */
    for (size_t i = 0; i < nv; i++)
        if (!isfinite(ref[i])) a[i] = NAN;
    if (o->shell_normalize && ((st = shell_normalize(a, n, 1)) != EW_OK || (st = shell_normalize(b, n, 1)) != EW_OK))
        goto done;
    if (m < n) {
        downsample(a, n, m, ac);
        downsample(b, n, m, bc);
        if (o->shell_normalize &&
            ((st = shell_normalize(ac, m, 1)) != EW_OK || (st = shell_normalize(bc, m, 1)) != EW_OK))
            goto done;
    } else {
        memcpy(ac, a, nv * sizeof *a);
        memcpy(bc, b, nv * sizeof *b);
    }
    double r0c = o->rmin * cm, r1c = fmin(o->rmax * cm, cm - 1.0);
    if ((st = matcher_init(&mc, ac, bc, m, r0c, r1c, 0)) != EW_OK) goto done;
    coarse_scores(&mc, g, nhand, scores);
    double r0 = o->rmin * c, r1 = fmin(o->rmax * c, c - 1.0);
    if ((st = matcher_init(&mf, a, b, n, r0, r1, 0)) != EW_OK) goto done;
    double best_score[2] = {-INFINITY, -INFINITY};
    ew_quat_t best_q[2] = {{1, 0, 0, 0}, {1, 0, 0, 0}};
    for (int h = 0; h < nhand; h++) {
        int nc = top_candidates(g, scores + (size_t)h * g->n, o->ncandidates, 2.0 * g->spacing, cand);
        double bs = -INFINITY;
        ew_quat_t bq = {1, 0, 0, 0};
        for (int k = 0; k < nc; k++) {
            ew_quat_t q = g->quat[cand[k]];
            double t[3];
            double s = refine(score_matcher_cb, &mc, &q, h, 0.5 * g->spacing, 0.5 * EW_PI / 180, t);
            if (s > bs) {
                bs = s;
                bq = q;
            }
        }
        double t[3];
        best_score[h] = refine(score_matcher_cb, &mf, &bq, h, EW_PI / 180, o->tol_deg * EW_PI / 180, t);
        best_q[h] = bq;
    }
    int win = nhand == 2 && best_score[1] > best_score[0] + EW_ALIGN_HAND_TIE ? 1 : 0;
    res->q = best_q[win];
    res->hand = win;
    res->score = best_score[win];
    res->score_other_hand = nhand == 2 ? best_score[1 - win] : NAN;
done:
    matcher_free(&mc);
    matcher_free(&mf);
    ew_free(a);
    ew_free(b);
    ew_free(ac);
    ew_free(bc);
    ew_free(scores);
    ew_free(cand);
    return st;
}

/* Density alignment. */
static ew_status_t align_density(const float *ref, const float *mov, int n, const ew_align_opts_t *o,
                                 const ew_rotgrid_t *g, ew_align_result_t *res)
{
    const size_t nv = (size_t)n * n * n, nc = (size_t)n * n * (size_t)(n / 2 + 1);
    const int m = o->coarse_n < n ? o->coarse_n : n;
    const size_t mv = (size_t)m * m * m, mc = (size_t)m * m * (size_t)(m / 2 + 1);
    const double cm = m / 2;
    const int nhand = o->try_hand ? 2 : 1;
    ew_status_t st = EW_OK;
    float *a = sanitized_copy(ref, nv), *b = sanitized_copy(mov, nv);
    float *amp_a = ew_alloc_array(nv, sizeof *amp_a), *amp_b = ew_alloc_array(nv, sizeof *amp_b);
    float *ac = ew_alloc_array(mv, sizeof *ac), *bc = ew_alloc_array(mv, sizeof *bc);
    float *ma = ew_alloc_array(mv, sizeof *ma), *mb = ew_alloc_array(mv, sizeof *mb);
    fftwf_complex *fa = ew_alloc_array(nc, sizeof *fa), *fb = ew_alloc_array(nc, sizeof *fb);
    fftwf_complex *cmb = ew_alloc_array(mc, sizeof *cmb);
    double *scores = ew_alloc_array(g->n, sizeof *scores);
    size_t *cand = ew_alloc_array((size_t)o->ncandidates, sizeof *cand);
    matcher_t mt = {0};
    dscorer_t dc = {0}, df = {0};
    fftwf_plan pf = NULL, pcm = NULL;
    if (!a || !b || !amp_a || !amp_b || !ac || !bc || !ma || !mb || !fa || !fb || !cmb || !scores || !cand) {
        st = ew_fail(EW_ERR_NOMEM, "volume alignment: out of memory for n = %d", n);
        goto done;
    }
#pragma omp critical(ew_fftw_planner)
    {
        pf = fftwf_plan_dft_r2c_3d(n, n, n, a, fa, FFTW_ESTIMATE);
        pcm = fftwf_plan_dft_c2r_3d(m, m, m, cmb, ma, FFTW_ESTIMATE);
    }
    if (!pf || !pcm) {
        st = ew_fail(EW_ERR_INTERNAL, "volume alignment: FFTW could not plan %d^3 / %d^3 transforms", n, m);
        goto done;
    }
    fftwf_execute_dft_r2c(pf, a, fa);
    fftwf_execute_dft_r2c(pf, b, fb);
    /* (1) coarse rotation search on the amplitudes (hand-blind) */
    amplitude_volume(fa, n, amp_a);
    amplitude_volume(fb, n, amp_b);
    if (m < n) {
        downsample(amp_a, n, m, ac);
        downsample(amp_b, n, m, bc);
    } else {
        memcpy(ac, amp_a, nv * sizeof *ac);
        memcpy(bc, amp_b, nv * sizeof *bc);
    }
    if (o->shell_normalize && ((st = shell_normalize(ac, m, 0)) != EW_OK || (st = shell_normalize(bc, m, 0)) != EW_OK))
        goto done;
    if ((st = matcher_init(&mt, ac, bc, m, o->rmin * cm, fmin(o->rmax * cm, cm - 1.0), 1)) != EW_OK) goto done;
    coarse_scores(&mt, g, 1, scores);
    int ncand = top_candidates(g, scores, o->ncandidates, 2.0 * g->spacing, cand);
    /* (2) both hands of each candidate on Fourier-cropped maps, with translation */
    fourier_crop(fa, n, m, cmb, ma, pcm);
    fourier_crop(fb, n, m, cmb, mb, pcm);
    const double half = n / 2.0;
    double r0c = o->rmin * half, r1c = fmin(o->rmax * half, m / 2.0 - 1.0);
    if (r1c <= r0c + 1.0) { /* the q-range lies above the coarse maps' band: use their whole band */
        r0c = 0.5;
        r1c = m / 2.0 - 1.0;
    }
    if ((st = dscorer_init(&dc, ma, mb, m, r0c, r1c)) != EW_OK) goto done;
    if ((st = dscorer_init(&df, a, b, n, o->rmin * half, o->rmax * half)) != EW_OK) goto done;
    double best_score[2] = {-INFINITY, -INFINITY}, best_t[2][3] = {{0}};
    ew_quat_t best_q[2] = {{1, 0, 0, 0}, {1, 0, 0, 0}};
    for (int h = 0; h < nhand; h++) {
        double bs = -INFINITY;
        ew_quat_t bq = {1, 0, 0, 0};
        for (int k = 0; k < ncand; k++) {
            ew_quat_t q = g->quat[cand[k]];
            double t[3];
            double s = refine(score_dens_cb, &dc, &q, h, 0.5 * g->spacing, 0.5 * EW_PI / 180, t);
            if (s > bs) {
                bs = s;
                bq = q;
            }
        }
        /* (3) full size */
        double t[3];
        best_score[h] = refine(score_dens_cb, &df, &bq, h, EW_PI / 180, o->tol_deg * EW_PI / 180, t);
        best_q[h] = bq;
        memcpy(best_t[h], t, sizeof t);
    }
    int win = nhand == 2 && best_score[1] > best_score[0] + EW_ALIGN_HAND_TIE ? 1 : 0;
    res->q = best_q[win];
    res->hand = win;
    memcpy(res->shift, best_t[win], sizeof res->shift);
    res->score = best_score[win];
    res->score_other_hand = nhand == 2 ? best_score[1 - win] : NAN;
done:
#pragma omp critical(ew_fftw_planner)
    {
        if (pf) fftwf_destroy_plan(pf);
        if (pcm) fftwf_destroy_plan(pcm);
    }
    matcher_free(&mt);
    dscorer_free(&dc);
    dscorer_free(&df);
    ew_free(a);
    ew_free(b);
    ew_free(amp_a);
    ew_free(amp_b);
    ew_free(ac);
    ew_free(bc);
    ew_free(ma);
    ew_free(mb);
    ew_free(fa);
    ew_free(fb);
    ew_free(cmb);
    ew_free(scores);
    ew_free(cand);
    return st;
}

ew_status_t ew_align_volumes(ew_align_kind_t kind, const float *ref, const float *mov, int n,
                             const ew_align_opts_t *opts, ew_align_result_t *res)
{
    memset(res, 0, sizeof *res);
    ew_align_opts_t o;
    if (opts)
        o = *opts;
    else
        ew_align_opts_default(&o);
    EW_TRY(check_inputs(ref, mov, n, &o));
    if (kind != EW_ALIGN_INTENSITY && kind != EW_ALIGN_DENSITY)
        return ew_fail(EW_ERR_ARG, "volume alignment: unknown kind %d", (int)kind);
    double t0 = ew_time_now();
    ew_rotgrid_t g;
    EW_TRY(ew_rotgrid_600cell(o.coarse_level, &g));
    ew_status_t st = kind == EW_ALIGN_INTENSITY ? align_intensity(ref, mov, n, &o, &g, res)
                                                : align_density(ref, mov, n, &o, &g, res);
    double spacing = g.spacing;
    ew_rotgrid_free(&g);
    if (st != EW_OK) {
        memset(res, 0, sizeof *res);
        return st;
    }
    res->coarse_spacing_deg = spacing * 180.0 / EW_PI;
    res->seconds = ew_time_now() - t0;
    return EW_OK;
}

ew_status_t ew_align_score(ew_align_kind_t kind, const float *ref, const float *mov, int n,
                           const ew_align_opts_t *opts, ew_quat_t q, int hand, double *score, double shift[3])
{
    ew_align_opts_t o;
    if (opts)
        o = *opts;
    else
        ew_align_opts_default(&o);
    EW_TRY(check_inputs(ref, mov, n, &o));
    const size_t nv = (size_t)n * n * n;
    double m[9], t[3] = {0, 0, 0};
    ew_align_matrix(q, hand, m);
    ew_status_t st = EW_OK;
    float *a = sanitized_copy(ref, nv), *b = sanitized_copy(mov, nv);
    if (!a || !b) {
        st = ew_fail(EW_ERR_NOMEM, "volume alignment: out of memory for n = %d", n);
    } else if (kind == EW_ALIGN_INTENSITY) {
        for (size_t i = 0; i < nv; i++)
            if (!isfinite(ref[i])) a[i] = NAN;
        if (o.shell_normalize) {
            if ((st = shell_normalize(a, n, 1)) == EW_OK) st = shell_normalize(b, n, 1);
        }
        matcher_t mt;
        const double c = n / 2;
        if (st == EW_OK && (st = matcher_init(&mt, a, b, n, o.rmin * c, fmin(o.rmax * c, c - 1.0), 0)) == EW_OK) {
            *score = matcher_score(&mt, m);
            matcher_free(&mt);
        }
    } else {
        dscorer_t d;
        if ((st = dscorer_init(&d, a, b, n, o.rmin * n / 2.0, o.rmax * n / 2.0)) == EW_OK) {
            *score = dscorer_score(&d, m, t);
            dscorer_free(&d);
        }
    }
    if (shift) memcpy(shift, t, sizeof t);
    ew_free(a);
    ew_free(b);
    return st;
}
