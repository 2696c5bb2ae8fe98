/* ewald recon: cryo-EM projection matching and the learned pose encoder
 * (see em_pose.h). */
#include "recon/em_pose.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "geom/geom.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/seq.h"

void ew_empose_config_default(ew_empose_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->pixel = 1.0;
    c->grid_level = 5;
    c->max_shift = 4.0;
    c->min_step_deg = 0.25;
    c->use_ctf = 1;
}

/* The reference: padded half transform (N, N, N/2+1), N = 2n, origin at the map centre. */
typedef struct {
    int n, N, nh;
    fftwf_complex *F;
} ref_t;

static ew_status_t ref_init(ref_t *r, const float *map, int n)
{
    r->n = n;
    r->N = 2 * n;
    r->nh = r->N / 2 + 1;
    int N = r->N;
    size_t nv = (size_t)N * N * r->nh;
    float *vol = fftwf_alloc_real((size_t)N * N * N);
    r->F = fftwf_alloc_complex(nv);
    if (!vol || !r->F) {
        fftwf_free(vol);
        fftwf_free(r->F);
        r->F = NULL;
        return ew_fail(EW_ERR_NOMEM, "em pose: no memory for a %d^3 reference transform", N);
    }
    memset(vol, 0, sizeof(float) * (size_t)N * N * N);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                size_t z = (size_t)((k - n / 2 + N) % N), y = (size_t)((j - n / 2 + N) % N),
                       x = (size_t)((i - n / 2 + N) % N);
                vol[(z * N + y) * N + x] = map[((size_t)k * n + j) * n + i];
            }
    fftwf_plan p;
#pragma omp critical(ew_fftw_planner)
    p = fftwf_plan_dft_r2c_3d(N, N, N, vol, r->F, FFTW_ESTIMATE);
    if (!p) {
        fftwf_free(vol);
        fftwf_free(r->F);
        r->F = NULL;
        return ew_fail(EW_ERR_NOMEM, "em pose: no FFTW plan for %d^3", N);
    }
    fftwf_execute(p);
#pragma omp critical(ew_fftw_planner)
    fftwf_destroy_plan(p);
    fftwf_free(vol);
    return EW_OK;
}

/* Trilinear sample of the reference at padded coordinates (x, y, z). */
static inline void ref_sample(const ref_t *r, double x, double y, double z, float *re, float *im)
{
    double sgn = 1.0;
    if (x < 0.0) {
        x = -x;
        y = -y;
        z = -z;
        sgn = -1.0;
    }
    const int N = r->N, nh = r->nh;
    int x0 = (int)floor(x), y0 = (int)floor(y), z0 = (int)floor(z);
    double fx = x - x0, fy = y - y0, fz = z - z0, ar = 0.0, ai = 0.0;
    for (int dz = 0; dz < 2; dz++) {
        double wz = dz ? fz : 1.0 - fz;
        int zz = ((z0 + dz) % N + N) % N;
        for (int dy = 0; dy < 2; dy++) {
            double w = wz * (dy ? fy : 1.0 - fy);
            int yy = ((y0 + dy) % N + N) % N;
            const fftwf_complex *row = r->F + ((size_t)zz * N + yy) * nh;
            ar += w * ((1.0 - fx) * row[x0][0] + fx * row[x0 + 1][0]);
            ai += w * ((1.0 - fx) * row[x0][1] + fx * row[x0 + 1][1]);
        }
    }
    *re = (float)ar;
    *im = (float)(sgn * ai);
}

/* Half-plane frequencies 0 < |k| < kmax of an n x n image (kx = 0: ky > 0 only). */
typedef struct {
    int L;
    int *kx, *ky; /* frequency indices */
    int *off;     /* offset in the (n, n/2+1) array */
    float *w;     /* 2 for kx > 0, 1 on kx = 0 (the full plane's count) */
} klist_t;

static ew_status_t klist_init(klist_t *k, int n, double kmax)
{
    int nh = n / 2 + 1, L = 0;
    k->kx = ew_alloc_array((size_t)n * nh, sizeof(int));
    k->ky = ew_alloc_array((size_t)n * nh, sizeof(int));
    k->off = ew_alloc_array((size_t)n * nh, sizeof(int));
    k->w = ew_alloc_array((size_t)n * nh, sizeof(float));
    if (!k->kx || !k->ky || !k->off || !k->w) return EW_ERR_NOMEM;
    for (int iy = 0; iy < n; iy++) {
        int ky = iy <= n / 2 ? iy : iy - n;
        for (int kx = 0; kx < nh; kx++) {
            if (kx == 0 && ky <= 0) continue;
            if ((double)kx * kx + (double)ky * ky >= kmax * kmax) continue;
            k->kx[L] = kx;
            k->ky[L] = ky;
            k->off[L] = iy * nh + kx;
            k->w[L] = kx == 0 ? 1.0f : 2.0f;
            L++;
        }
    }
    k->L = L;
    return EW_OK;
}

static void klist_free(klist_t *k)
{
    ew_free(k->kx);
    ew_free(k->ky);
    ew_free(k->off);
    ew_free(k->w);
}

/* Central slice at A for the listed frequencies into s (2 L floats). */
static void slice_at(const ref_t *r, const klist_t *k, const double A[9], float *s)
{
    for (int l = 0; l < k->L; l++) {
        double kx = 2.0 * k->kx[l], ky = 2.0 * k->ky[l];
        ref_sample(r, A[0] * kx + A[3] * ky, A[1] * kx + A[4] * ky, A[2] * kx + A[5] * ky, &s[2 * l], &s[2 * l + 1]);
    }
}

/* Per-thread workspace for scoring. */
typedef struct {
    int n, nh;
    fftwf_complex *X; /* (n, nh) */
    float *cc;        /* (n, n) */
} work_t;

/* Best shift score of slice s against the image transform f at the listed
 * frequencies, ctf (L) per frequency: CC(o) maximized over |o| <= ms per
 * axis (centred on (c0x, c0y), pixels) -- returns the score, *ox, *oy sub-pixel. */
static double score_shifts(work_t *w, fftwf_plan inv, const klist_t *k, const fftwf_complex *f, const float *ctf,
                           const float *s, double c0x, double c0y, double ms, double *ox, double *oy)
{
    const int n = w->n;
    double norm = 0.0;
    /* the c2r transform destroys its input: refill the whole array */
    memset(w->X, 0, sizeof(fftwf_complex) * (size_t)n * w->nh);
    for (int l = 0; l < k->L; l++) {
        float mr = ctf[l] * s[2 * l], mi = ctf[l] * s[2 * l + 1];
        const float *a = f[k->off[l]];
        /* X = F conj(M) */
        w->X[k->off[l]][0] = a[0] * mr + a[1] * mi;
        w->X[k->off[l]][1] = a[1] * mr - a[0] * mi;
        norm += k->w[l] * ((double)mr * mr + (double)mi * mi);
        if (k->kx[l] == 0) { /* Hermitian mate on the kx = 0 column */
            size_t m = (size_t)((n - k->ky[l]) % n) * w->nh;
            w->X[m][0] = w->X[k->off[l]][0];
            w->X[m][1] = -w->X[k->off[l]][1];
        }
    }
    fftwf_execute_dft_c2r(inv, w->X, w->cc);
    if (norm <= 0.0) {
        *ox = c0x;
        *oy = c0y;
        return 0.0;
    }
    /* CC(o) = cc(-o) (indices wrapped) */
    int lox = (int)ceil(c0x - ms), hix = (int)floor(c0x + ms), loy = (int)ceil(c0y - ms), hiy = (int)floor(c0y + ms);
    double best = -HUGE_VAL;
    int bx = 0, by = 0;
    for (int oy_ = loy; oy_ <= hiy; oy_++)
        for (int ox_ = lox; ox_ <= hix; ox_++) {
            int x = ((-ox_) % n + n) % n, y = ((-oy_) % n + n) % n;
            double v = w->cc[(size_t)y * n + x];
            if (v > best) {
                best = v;
                bx = ox_;
                by = oy_;
            }
        }
#define CCAT(X_, Y_) ((double)w->cc[(size_t)(((-(Y_)) % n + n) % n) * n + (((-(X_)) % n + n) % n)])
    double dx = 0.0, dy = 0.0;
    double xm = CCAT(bx - 1, by), xp = CCAT(bx + 1, by), ym = CCAT(bx, by - 1), yp = CCAT(bx, by + 1);
#undef CCAT
    double cx = xm + xp - 2.0 * best, cy = ym + yp - 2.0 * best;
    if (cx < 0.0) dx = 0.5 * (xm - xp) / cx;
    if (cy < 0.0) dy = 0.5 * (ym - yp) / cy;
    if (fabs(dx) > 0.5) dx = 0.0;
    if (fabs(dy) > 0.5) dy = 0.0;
    *ox = bx + dx;
    *oy = by + dy;
    return best / sqrt(norm);
}

static void ctf_at(const ew_em_view_t *v, const klist_t *k, int n, double pixel, int use, float *out)
{
    double inv = 1.0 / (n * pixel);
    for (int l = 0; l < k->L; l++)
        out[l] = use ? (float)ew_ctf_eval(&v->ctf, k->kx[l] * inv, k->ky[l] * inv) : 1.0f;
}

/* Image transform with the box centre at the origin, background removed. */
static void image_ft(const float *img, int n, fftwf_plan fwd, float *buf, fftwf_complex *f)
{
    double mean = 0.0, cnt = 0.0, r2 = 0.25 * n * n;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            double dx = i - n / 2, dy = j - n / 2;
            if (dx * dx + dy * dy < r2) continue;
            mean += img[(size_t)j * n + i];
            cnt += 1.0;
        }
    mean /= cnt;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++)
            buf[(size_t)((j + n / 2) % n) * n + (size_t)((i + n / 2) % n)] = (float)(img[(size_t)j * n + i] - mean);
    fftwf_execute_dft_r2c(fwd, buf, f);
}

static void rot_about(int axis, double ang, const double R[9], double out[9])
{
    double ax[3] = {0, 0, 0}, D[9];
    ax[axis] = 1.0;
    ew_quat_to_mat(ew_quat_from_axis_angle(ax, ang), D);
    ew_mat_mul(D, R, out);
}

ew_status_t ew_em_pose_match(const ew_empose_config_t *cfg, const float *map, const float *imgs, size_t count,
                             ew_em_view_t *views, double *score)
{
    const int n = cfg->box;
    if (n < 8 || n % 2) return ew_fail(EW_ERR_ARG, "em pose: box = %d is not even and >= 8", n);
    if (!(cfg->pixel > 0.0)) return ew_fail(EW_ERR_ARG, "em pose: pixel = %g is not positive", cfg->pixel);
    if (!(cfg->max_shift >= 0.0) || cfg->max_shift > n / 2 - 1)
        return ew_fail(EW_ERR_ARG, "em pose: max_shift = %g is not in [0, box/2 - 1]", cfg->max_shift);
    if (!(cfg->min_step_deg > 0.0)) return ew_fail(EW_ERR_ARG, "em pose: min_step_deg = %g is not positive", cfg->min_step_deg);
    double ks = n * cfg->pixel / (cfg->search_res > 0.0 ? cfg->search_res : 4.0 * cfg->pixel);
    double kr = n * cfg->pixel / (cfg->refine_res > 0.0 ? cfg->refine_res : 2.5 * cfg->pixel);
    if (kr > n / 2 - 1) kr = n / 2 - 1;
    if (ks > kr) ks = kr;
    ew_rotgrid_t grid;
    EW_TRY(ew_rotgrid_600cell(cfg->grid_level, &grid));
    ref_t ref = {0};
    klist_t kls = {0}, klr = {0};
    float *slices = NULL;
    fftwf_plan fwd = NULL, inv = NULL;
    ew_status_t st = ref_init(&ref, map, n);
    if (st == EW_OK) st = klist_init(&kls, n, ks);
    if (st == EW_OK) st = klist_init(&klr, n, kr);
    size_t tot = 0;
    if (st == EW_OK) st = ew_size_mul(grid.n, 2 * (size_t)kls.L, &tot);
    if (st == EW_OK && !(slices = ew_alloc_array(tot, sizeof(float)))) st = EW_ERR_NOMEM;
    if (st != EW_OK) goto done;
#pragma omp parallel for schedule(static)
    for (size_t g = 0; g < grid.n; g++) {
        double A[9];
        ew_quat_to_mat(grid.quat[g], A);
        slice_at(&ref, &kls, A, slices + g * 2 * (size_t)kls.L);
    }
    {
        const int nh = n / 2 + 1;
        float *tb = fftwf_alloc_real((size_t)n * n);
        fftwf_complex *tc = fftwf_alloc_complex((size_t)n * nh);
        if (tb && tc) {
#pragma omp critical(ew_fftw_planner)
            {
                fwd = fftwf_plan_dft_r2c_2d(n, n, tb, tc, FFTW_ESTIMATE);
                inv = fftwf_plan_dft_c2r_2d(n, n, tc, tb, FFTW_ESTIMATE);
            }
        }
        fftwf_free(tb);
        fftwf_free(tc);
        if (!fwd || !inv) {
            st = ew_fail(EW_ERR_NOMEM, "em pose: no FFTW plans for %d x %d", n, n);
            goto done;
        }
        int fail = 0;
        const double step0 = grid.spacing * 0.5, min_step = cfg->min_step_deg * EW_PI / 180.0;
#pragma omp parallel
        {
            work_t w = {n, nh, fftwf_alloc_complex((size_t)n * nh), fftwf_alloc_real((size_t)n * n)};
            float *buf = fftwf_alloc_real((size_t)n * n);
            fftwf_complex *f = fftwf_alloc_complex((size_t)n * nh);
            float *cs = ew_alloc_array((size_t)kls.L + 1, sizeof(float));
            float *cr = ew_alloc_array((size_t)klr.L + 1, sizeof(float));
            float *sr = ew_alloc_array(2 * (size_t)klr.L + 2, sizeof(float));
            if (!w.X || !w.cc || !buf || !f || !cs || !cr || !sr) {
#pragma omp atomic write
                fail = 1;
            } else {
#pragma omp for schedule(dynamic, 1)
                for (size_t i = 0; i < count; i++) {
                    ew_em_view_t *v = &views[i];
                    image_ft(imgs + i * (size_t)n * n, n, fwd, buf, f);
                    ctf_at(v, &kls, n, cfg->pixel, cfg->use_ctf, cs);
                    ctf_at(v, &klr, n, cfg->pixel, cfg->use_ctf, cr);
                    /* global */
                    double best = -HUGE_VAL, bx = 0, by = 0;
                    size_t bg = 0;
                    for (size_t g = 0; g < grid.n; g++) {
                        double ox, oy;
                        double sc = score_shifts(&w, inv, &kls, f, cs, slices + g * 2 * (size_t)kls.L, 0.0, 0.0,
                                                 cfg->max_shift, &ox, &oy);
                        if (sc > best) {
                            best = sc;
                            bg = g;
                            bx = ox;
                            by = oy;
                        }
                    }
                    /* local */
                    double R[9], T[9];
                    ew_quat_to_mat(grid.quat[bg], R);
                    slice_at(&ref, &klr, R, sr);
                    double cx = round(bx), cy = round(by);
                    best = score_shifts(&w, inv, &klr, f, cr, sr, cx, cy, 2.0, &bx, &by);
                    for (double step = step0; step >= min_step * 0.999; step *= 0.5) {
                        int moved = 1, guard = 0;
                        while (moved && guard++ < 20) {
                            moved = 0;
                            for (int a = 0; a < 6; a++) {
                                rot_about(a / 2, (a % 2 ? -1.0 : 1.0) * step, R, T);
                                slice_at(&ref, &klr, T, sr);
                                double ox, oy;
                                double sc = score_shifts(&w, inv, &klr, f, cr, sr, round(bx), round(by), 2.0, &ox, &oy);
                                if (sc > best) {
                                    best = sc;
                                    memcpy(R, T, sizeof R);
                                    bx = ox;
                                    by = oy;
                                    moved = 1;
                                }
                            }
                        }
                    }
                    memcpy(v->R, R, sizeof R);
                    v->shift[0] = bx;
                    v->shift[1] = by;
                    if (score) score[i] = best;
                }
            }
            fftwf_free(w.X);
            fftwf_free(w.cc);
            fftwf_free(buf);
            fftwf_free(f);
            ew_free(cs);
            ew_free(cr);
            ew_free(sr);
        }
        if (fail) st = ew_fail(EW_ERR_NOMEM, "em pose: no memory for the per-thread workspace");
    }
done:
    if (fwd || inv) {
#pragma omp critical(ew_fftw_planner)
        {
            if (fwd) fftwf_destroy_plan(fwd);
            if (inv) fftwf_destroy_plan(inv);
        }
    }
    ew_free(slices);
    klist_free(&kls);
    klist_free(&klr);
    fftwf_free(ref.F);
    ew_rotgrid_free(&grid);
    return st;
}

/* ---- learned pose encoder ---- */

struct ew_poseenc {
    ew_poseenc_config_t cfg;
    ew_params_t P;
    ew_seq_t S;
};

void ew_poseenc_config_default(ew_poseenc_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->box = 32;
    c->width = 16;
    c->stages = 3;
    c->batch = 32;
    c->steps = 2000;
    c->lr = 2e-3;
    c->weight_decay = 1e-4;
}

ew_status_t ew_poseenc_create(const ew_poseenc_config_t *c, ew_poseenc_t **out)
{
    *out = NULL;
    if (c->stages < 1 || c->stages > 6) return ew_fail(EW_ERR_ARG, "em pose encoder: stages = %d is not 1..6", c->stages);
    if (c->box < 8 || c->box % (1 << c->stages) || c->box > 1024)
        return ew_fail(EW_ERR_ARG, "em pose encoder: box = %d is not a multiple of 2^stages = %d in [8, 1024]", c->box,
                       1 << c->stages);
    if (c->width < 1 || c->width > 256) return ew_fail(EW_ERR_ARG, "em pose encoder: width = %d is not 1..256", c->width);
    if (c->batch < 1 || c->steps < 0 || !(c->lr > 0.0))
        return ew_fail(EW_ERR_ARG, "em pose encoder: batch = %d, steps = %d, lr = %g out of range", c->batch, c->steps,
                       c->lr);
    ew_poseenc_t *e = ew_calloc_array(1, sizeof *e);
    if (!e) return EW_ERR_NOMEM;
    e->cfg = *c;
    ew_params_init(&e->P);
    ew_seq_init(&e->S, "enc.", 1);
    ew_status_t st = EW_OK;
    int ch = c->width;
    for (int s = 0; st == EW_OK && s < c->stages; s++, ch *= 2) {
        st = ew_seq_conv(&e->S, &e->P, ch, 3, 1, 1, EW_PAD_ZERO, 0);
        if (st == EW_OK) st = ew_seq_batchnorm(&e->S, &e->P);
        if (st == EW_OK) st = ew_seq_act(&e->S, EW_ACT_RELU, 0.0);
        if (st == EW_OK) st = ew_seq_conv(&e->S, &e->P, ch, 3, 1, 1, EW_PAD_ZERO, 0);
        if (st == EW_OK) st = ew_seq_batchnorm(&e->S, &e->P);
        if (st == EW_OK) st = ew_seq_act(&e->S, EW_ACT_RELU, 0.0);
        if (st == EW_OK) st = ew_seq_maxpool(&e->S, 2, 2, 0);
    }
    int side = c->box >> c->stages;
    if (st == EW_OK) st = ew_seq_linear(&e->S, &e->P, (ch / 2) * side * side, 6, 1);
    if (st == EW_OK) st = ew_params_alloc(&e->P);
    if (st != EW_OK) {
        ew_poseenc_destroy(e);
        return st;
    }
    ew_layers_init(&e->P, c->seed);
    *out = e;
    return EW_OK;
}

void ew_poseenc_destroy(ew_poseenc_t *e)
{
    if (!e) return;
    ew_seq_free(&e->S);
    ew_params_free(&e->P);
    ew_free(e);
}

static void cross3(const double a[3], const double b[3], double c[3])
{
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
}

static double dot3(const double a[3], const double b[3]) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

double ew_rot6d_frobenius_loss(const double d6[6], const double Rt[9], double g[6])
{
    const double *a1 = d6, *a2 = d6 + 3;
    double n1 = sqrt(dot3(a1, a1)), b1[3], u[3], b2[3], b3[3];
    for (int k = 0; k < 3; k++) b1[k] = a1[k] / n1;
    double p = dot3(b1, a2);
    for (int k = 0; k < 3; k++) u[k] = a2[k] - p * b1[k];
    double nu = sqrt(dot3(u, u));
    for (int k = 0; k < 3; k++) b2[k] = u[k] / nu;
    cross3(b1, b2, b3);
    const double *b[3] = {b1, b2, b3};
    double L = 0.0, gb[3][3];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++) {
            double d = b[r][k] - Rt[3 * r + k];
            L += d * d;
            gb[r][k] = 2.0 * d;
        }
    if (!g) return L;
    /* b3 = b1 x b2 */
    double t[3];
    cross3(b2, gb[2], t);
    for (int k = 0; k < 3; k++) gb[0][k] += t[k];
    cross3(gb[2], b1, t);
    for (int k = 0; k < 3; k++) gb[1][k] += t[k];
    /* b2 = u / |u| */
    double gu[3], q = dot3(gb[1], b2);
    for (int k = 0; k < 3; k++) gu[k] = (gb[1][k] - q * b2[k]) / nu;
    /* u = a2 - (b1.a2) b1 */
    double ub = dot3(gu, b1);
    for (int k = 0; k < 3; k++) {
        g[3 + k] = gu[k] - ub * b1[k];
        gb[0][k] += -ub * a2[k] - p * gu[k];
    }
    /* b1 = a1 / |a1| */
    double w = dot3(gb[0], b1);
    for (int k = 0; k < 3; k++) g[k] = (gb[0][k] - w * b1[k]) / n1;
    return L;
}

/* Copy image i normalized (zero mean, unit variance) into dst. */
static void norm_image(const float *src, size_t npx, float *dst)
{
    double s = 0.0, s2 = 0.0;
    for (size_t k = 0; k < npx; k++) {
        s += src[k];
        s2 += (double)src[k] * src[k];
    }
    double mean = s / npx, var = s2 / npx - mean * mean, inv = var > 0.0 ? 1.0 / sqrt(var) : 1.0;
    for (size_t k = 0; k < npx; k++) dst[k] = (float)((src[k] - mean) * inv);
}

ew_status_t ew_poseenc_train(ew_poseenc_t *e, const float *imgs, const double *R, size_t count, double *final_loss)
{
    const ew_poseenc_config_t *c = &e->cfg;
    if (count == 0) return ew_fail(EW_ERR_ARG, "em pose encoder: no training images");
    const int B = c->batch, n = c->box;
    const size_t npx = (size_t)n * n;
    float *x = ew_alloc_array((size_t)B * npx, sizeof(float)), *dy = ew_alloc_array((size_t)B * 6, sizeof(float));
    size_t *idx = ew_alloc_array((size_t)B, sizeof(size_t));
    if (!x || !dy || !idx) {
        ew_free(x);
        ew_free(dy);
        ew_free(idx);
        return EW_ERR_NOMEM;
    }
    ew_optim_t opt = ew_optim_default(EW_OPT_ADAMW);
    opt.weight_decay = c->weight_decay;
    ew_status_t st = EW_OK;
    double tail = 0.0;
    int ntail = 0;
    for (int step = 0; step < c->steps; step++) {
        ew_rng_t r;
        ew_rng_init(&r, c->seed, ew_rng_stream_id(EW_RNG_TAG_BATCH, (uint64_t)step));
        for (int b = 0; b < B; b++) {
            idx[b] = (size_t)(ew_rng_uniform(&r) * count);
            if (idx[b] >= count) idx[b] = count - 1;
            norm_image(imgs + idx[b] * npx, npx, x + (size_t)b * npx);
        }
        const float *out;
        st = ew_seq_forward(&e->S, &e->P, x, B, n, n, 1, &out, NULL, NULL, NULL);
        if (st != EW_OK) break;
        double loss = 0.0;
        for (int b = 0; b < B; b++) {
            double d6[6], g[6];
            for (int k = 0; k < 6; k++) d6[k] = out[(size_t)b * 6 + k];
            loss += ew_rot6d_frobenius_loss(d6, R + 9 * idx[b], g) / B;
            for (int k = 0; k < 6; k++) dy[(size_t)b * 6 + k] = (float)(g[k] / B);
        }
        ew_params_zero_grad(&e->P);
        st = ew_seq_backward(&e->S, &e->P, dy, NULL);
        if (st != EW_OK) break;
        ew_grad_clip(&e->P, 5.0);
        ew_optim_step(&e->P, &opt, ew_lr_warmup_cosine(step, 50, c->steps, c->lr, c->lr / 50));
        if (step >= c->steps - 50) {
            tail += loss;
            ntail++;
        }
    }
    if (final_loss) *final_loss = ntail ? tail / ntail : NAN;
    ew_free(x);
    ew_free(dy);
    ew_free(idx);
    return st;
}

ew_status_t ew_poseenc_predict(ew_poseenc_t *e, const float *imgs, size_t count, double *R)
{
    const int n = e->cfg.box, B = 64;
    const size_t npx = (size_t)n * n;
    float *x = ew_alloc_array((size_t)B * npx, sizeof(float));
    if (!x) return EW_ERR_NOMEM;
    ew_status_t st = EW_OK;
    for (size_t i0 = 0; i0 < count && st == EW_OK; i0 += B) {
        int nb = (int)(count - i0 < (size_t)B ? count - i0 : (size_t)B);
        for (int b = 0; b < nb; b++) norm_image(imgs + (i0 + b) * npx, npx, x + (size_t)b * npx);
        const float *out;
        st = ew_seq_forward(&e->S, &e->P, x, nb, n, n, 0, &out, NULL, NULL, NULL);
        if (st != EW_OK) break;
        for (int b = 0; b < nb; b++) {
            double d6[6];
            for (int k = 0; k < 6; k++) d6[k] = out[(size_t)b * 6 + k];
            ew_rot6d_to_mat(d6, R + 9 * (i0 + b));
        }
    }
    ew_free(x);
    return st;
}

ew_status_t ew_poseenc_save(const ew_poseenc_t *e, const char *path)
{
    char box[32], width[32], stages[32];
    snprintf(box, sizeof box, "%d", e->cfg.box);
    snprintf(width, sizeof width, "%d", e->cfg.width);
    snprintf(stages, sizeof stages, "%d", e->cfg.stages);
    const char *meta[] = {"model", "ewald-em-pose-encoder", "box", box, "width", width, "stages", stages};
    return ew_checkpoint_save(path, &e->P, 0, meta, 4);
}

ew_status_t ew_poseenc_load(ew_poseenc_t *e, const char *path) { return ew_checkpoint_load(path, &e->P, 0); }
