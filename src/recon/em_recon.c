/* ewald recon: cryo-EM direct Fourier inversion (see em_recon.h). */
#include "recon/em_recon.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "io/mrc.h"
#include "io/star.h"
#include "geom/geom.h"

struct ew_emrec {
    ew_emrec_config_t cfg;
    int n, N, nh;         /* box, padded size, N/2 + 1 */
    size_t nvox;          /* N * N * nh */
    double *num;          /* (nvox, 2) sum w CTF F */
    double *den;          /* (nvox) sum w CTF^2 */
    double r_max;         /* padded-grid radius limit, voxels */
    size_t count;
    fftwf_plan fwd;       /* N x N r2c */
};

void ew_emrec_config_default(ew_emrec_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->pixel = 1.0;
    c->pad = 2;
    c->tau = -1.0;
    c->use_ctf = 1;
    c->fsc_shell = 1.0;
}

static ew_status_t config_check(const ew_emrec_config_t *c)
{
    if (c->box < 8 || c->box % 2 || c->box > 1024)
        return ew_fail(EW_ERR_ARG, "em reconstruct: box = %d is not even in [8, 1024]", c->box);
    if (!(c->pixel > 0.0) || !isfinite(c->pixel))
        return ew_fail(EW_ERR_ARG, "em reconstruct: pixel = %g is not positive", c->pixel);
    if (c->pad < 1 || c->pad > 3) return ew_fail(EW_ERR_ARG, "em reconstruct: pad = %d is not 1..3", c->pad);
    if (!isfinite(c->tau)) return ew_fail(EW_ERR_ARG, "em reconstruct: tau = %g is not finite", c->tau);
    if (c->max_res < 0.0 || !isfinite(c->max_res))
        return ew_fail(EW_ERR_ARG, "em reconstruct: max_res = %g is negative", c->max_res);
    if (!(c->fsc_shell >= 1.0) || c->fsc_shell > c->box / 4)
        return ew_fail(EW_ERR_ARG, "em reconstruct: fsc_shell = %g is not in [1, box/4]", c->fsc_shell);
    return EW_OK;
}

ew_status_t ew_emrec_create(const ew_emrec_config_t *cfg, ew_emrec_t **rec)
{
    *rec = NULL;
    EW_TRY(config_check(cfg));
    ew_emrec_t *r = ew_calloc_array(1, sizeof *r);
    if (!r) return EW_ERR_NOMEM;
    r->cfg = *cfg;
    r->n = cfg->box;
    r->N = cfg->box * cfg->pad;
    r->nh = r->N / 2 + 1;
    r->nvox = (size_t)r->N * r->N * r->nh;
    r->num = ew_calloc_array(r->nvox * 2, sizeof(double));
    r->den = ew_calloc_array(r->nvox, sizeof(double));
    float *tmp = ew_alloc_array((size_t)r->N * r->N + 2 * (size_t)r->N, sizeof(float));
    if (!r->num || !r->den || !tmp) {
        ew_free(tmp);
        ew_emrec_destroy(r);
        return EW_ERR_NOMEM;
    }
    r->r_max = r->N / 2 - 1.0;
    if (cfg->max_res > 0.0) {
        double rm = r->N * cfg->pixel / cfg->max_res;
        if (rm < r->r_max) r->r_max = rm;
    }
#pragma omp critical(ew_fftw_planner)
    r->fwd = fftwf_plan_dft_r2c_2d(r->N, r->N, tmp, (fftwf_complex *)tmp, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
    ew_free(tmp);
    if (!r->fwd) {
        ew_emrec_destroy(r);
        return ew_fail(EW_ERR_NOMEM, "em reconstruct: no FFTW plan for %d x %d", r->N, r->N);
    }
    *rec = r;
    return EW_OK;
}

void ew_emrec_destroy(ew_emrec_t *r)
{
    if (!r) return;
    if (r->fwd) {
#pragma omp critical(ew_fftw_planner)
        fftwf_destroy_plan(r->fwd);
    }
    ew_free(r->num);
    ew_free(r->den);
    ew_free(r);
}

size_t ew_emrec_count(const ew_emrec_t *rec) { return rec->count; }

/* Pad img (n x n) minus its background into buf (N x N, r2c in-place
 * layout: rows of 2 (N/2+1) floats) with the box centre n/2 at index 0
 * (wrapped). */
static void pad_image(const float *img, int n, int N, float *buf)
{
    int ld = 2 * (N / 2 + 1);
    memset(buf, 0, (size_t)N * ld * sizeof(float));
    /* background: the mean outside the inscribed circle (the box edge then does not ring) */
    double mean = 0.0, cnt = 0.0, r2 = 0.25 * n * n;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            double dx = i - n / 2, dy = j - n / 2;
            if (dx * dx + dy * dy < r2) continue;
            mean += img[(size_t)j * n + i];
            cnt += 1.0;
        }
    mean /= cnt;
    for (int j = 0; j < n; j++) {
        int y = ((j - n / 2) % N + N) % N;
        for (int i = 0; i < n; i++) {
            int x = ((i - n / 2) % N + N) % N;
            buf[(size_t)y * ld + x] = (float)(img[(size_t)j * n + i] - mean);
        }
    }
}

/* Insert one padded transform f (N rows x nh) with view v into (num, den). */
static void insert_one(const ew_emrec_t *r, const fftwf_complex *f, const ew_em_view_t *v, double *num, double *den)
{
    const int N = r->N, nh = r->nh;
    const double *A = v->R;
    const double rm2 = r->r_max * r->r_max;
    const double inv_len = 1.0 / (N * r->cfg.pixel);
    const double ox = v->shift[0] * 2.0 * EW_PI / N, oy = v->shift[1] * 2.0 * EW_PI / N;
    for (int iy = 0; iy < N; iy++) {
        int ky = iy <= N / 2 ? iy : iy - N;
        for (int kx = 0; kx < nh; kx++) {
            if (kx == 0 && ky <= 0) continue; /* DC, and the mates of the kx = 0 column */
            double k2 = (double)kx * kx + (double)ky * ky;
            if (k2 > rm2) continue;
            const float *c = f[(size_t)iy * nh + kx];
            /* shift the particle centre (n/2 - shift) to the origin: F exp(-2 pi i k.shift / N) */
            double ph = -(kx * ox + ky * oy);
            double cp = cos(ph), sp = sin(ph);
            double fr = c[0] * cp - c[1] * sp, fi = c[0] * sp + c[1] * cp;
            double ctf = r->cfg.use_ctf ? ew_ctf_eval(&v->ctf, kx * inv_len, ky * inv_len) : 1.0;
            double x = A[0] * kx + A[3] * ky, y = A[1] * kx + A[4] * ky, z = A[2] * kx + A[5] * ky;
            if (x < 0.0) {
                x = -x;
                y = -y;
                z = -z;
                fi = -fi;
            }
            int x0 = (int)floor(x), y0 = (int)floor(y), z0 = (int)floor(z);
            double fx = x - x0, fy = y - y0, fz = z - z0;
            double wr = ctf * fr, wi = ctf * fi, w2 = ctf * ctf;
            for (int dz = 0; dz < 2; dz++) {
                double wz = dz ? fz : 1.0 - fz;
                int zz = ((z0 + dz) % N + N) % N;
                for (int dy = 0; dy < 2; dy++) {
                    double wzy = wz * (dy ? fy : 1.0 - fy);
                    int yy = ((y0 + dy) % N + N) % N;
                    size_t row = ((size_t)zz * N + yy) * nh;
                    for (int dx = 0; dx < 2; dx++) {
                        double w = wzy * (dx ? fx : 1.0 - fx);
                        size_t o = row + (size_t)(x0 + dx);
                        num[2 * o] += w * wr;
                        num[2 * o + 1] += w * wi;
                        den[o] += w * w2;
                    }
                }
            }
        }
    }
}

ew_status_t ew_emrec_insert(ew_emrec_t *r, const float *imgs, const ew_em_view_t *v, size_t count,
                            const uint8_t *select)
{
    const int n = r->n, N = r->N;
    int nt = omp_get_max_threads();
    if (count < 2) nt = 1;
    /* per-thread grids beyond thread 0, which adds into r directly */
    double **tnum = ew_calloc_array((size_t)nt, sizeof(double *));
    double **tden = ew_calloc_array((size_t)nt, sizeof(double *));
    if (!tnum || !tden) {
        ew_free(tnum);
        ew_free(tden);
        return EW_ERR_NOMEM;
    }
    int fail = 0;
    for (int t = 1; t < nt; t++) {
        tnum[t] = ew_calloc_array(r->nvox * 2, sizeof(double));
        tden[t] = ew_calloc_array(r->nvox, sizeof(double));
        if (!tnum[t] || !tden[t]) fail = 1;
    }
    tnum[0] = r->num;
    tden[0] = r->den;
    size_t done = 0;
    if (!fail) {
#pragma omp parallel num_threads(nt) reduction(+ : done)
        {
            int t = omp_get_thread_num();
            float *buf = ew_alloc_array((size_t)N * 2 * (N / 2 + 1), sizeof(float));
            if (!buf) {
#pragma omp atomic write
                fail = 1;
            } else {
#pragma omp for schedule(static)
                for (size_t i = 0; i < count; i++) {
                    if (select && !select[i]) continue;
                    pad_image(imgs + i * (size_t)n * n, n, N, buf);
                    fftwf_execute_dft_r2c(r->fwd, buf, (fftwf_complex *)buf);
                    insert_one(r, (const fftwf_complex *)buf, &v[i], tnum[t], tden[t]);
                    done++;
                }
            }
            ew_free(buf);
        }
    }
    for (int t = 1; t < nt; t++) {
        if (!fail) {
#pragma omp parallel for schedule(static)
            for (size_t o = 0; o < r->nvox; o++) {
                r->num[2 * o] += tnum[t][2 * o];
                r->num[2 * o + 1] += tnum[t][2 * o + 1];
                r->den[o] += tden[t][o];
            }
        }
        ew_free(tnum[t]);
        ew_free(tden[t]);
    }
    ew_free(tnum);
    ew_free(tden);
    if (fail) return ew_fail(EW_ERR_NOMEM, "em reconstruct: no memory for per-thread grids of %zu voxels", r->nvox);
    r->count += done;
    return EW_OK;
}

void ew_emrec_add(ew_emrec_t *dst, const ew_emrec_t *src)
{
    EW_ASSERT(dst->nvox == src->nvox);
    for (size_t o = 0; o < dst->nvox; o++) {
        dst->num[2 * o] += src->num[2 * o];
        dst->num[2 * o + 1] += src->num[2 * o + 1];
        dst->den[o] += src->den[o];
    }
    dst->count += src->count;
}

static inline int shell_of(int N, int nh, size_t o)
{
    int x = (int)(o % nh), y = (int)((o / nh) % N), z = (int)(o / ((size_t)nh * N));
    if (y > N / 2) y -= N;
    if (z > N / 2) z -= N;
    return (int)lround(sqrt((double)x * x + (double)y * y + (double)z * z));
}

void ew_emrec_shell_den(const ew_emrec_t *r, double *out)
{
    int ns = r->N / 2 + 1;
    double *cnt = ew_calloc_array((size_t)ns, sizeof(double));
    for (int j = 0; j < ns; j++) out[j] = 0.0;
    if (!cnt) return;
    for (size_t o = 0; o < r->nvox; o++) {
        int s = shell_of(r->N, r->nh, o);
        if (s >= ns || r->den[o] <= 0.0) continue;
        out[s] += r->den[o];
        cnt[s] += 1.0;
    }
    for (int j = 0; j < ns; j++) out[j] = cnt[j] > 0 ? out[j] / cnt[j] : 0.0;
    ew_free(cnt);
}

static double sinc(double x) { return fabs(x) < 1e-12 ? 1.0 : sin(x) / x; }

ew_status_t ew_emrec_finish(const ew_emrec_t *r, double tau, const double *tau_shell, int nshell, float *map)
{
    const int N = r->N, nh = r->nh, n = r->n;
    fftw_complex *F = fftw_alloc_complex(r->nvox);
    double *vol = fftw_alloc_real((size_t)N * N * N);
    if (!F || !vol) {
        fftw_free(F);
        fftw_free(vol);
        return ew_fail(EW_ERR_NOMEM, "em reconstruct: no memory for a %d^3 map", N);
    }
    fftw_plan p;
#pragma omp critical(ew_fftw_planner)
    p = fftw_plan_dft_c2r_3d(N, N, N, F, vol, FFTW_ESTIMATE);
    if (!p) {
        fftw_free(F);
        fftw_free(vol);
        return ew_fail(EW_ERR_NOMEM, "em reconstruct: no FFTW plan for %d^3", N);
    }
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < r->nvox; o++) {
        double nr = r->num[2 * o], ni = r->num[2 * o + 1], d = r->den[o];
        int x = (int)(o % nh);
        if (x == 0) { /* Hermitian kx = 0 plane: combine with the mate (0, -y, -z) */
            int y = (int)((o / nh) % N), z = (int)(o / ((size_t)nh * N));
            size_t m = ((size_t)((N - z) % N) * N + (size_t)((N - y) % N)) * nh;
            nr += r->num[2 * m];
            ni -= r->num[2 * m + 1];
            d += r->den[m];
        }
        double t = tau;
        if (tau_shell) {
            int s = shell_of(N, nh, o);
            t = s < nshell ? tau_shell[s] : tau_shell[nshell - 1];
        }
        double den = d + t;
        if (d > 0.0 && den > 0.0) {
            F[o][0] = nr / den;
            F[o][1] = ni / den;
        } else {
            F[o][0] = F[o][1] = 0.0;
        }
    }
    fftw_execute(p);
#pragma omp critical(ew_fftw_planner)
    fftw_destroy_plan(p);
    /* crop the central n^3 (origin at index 0 of the padded grid), gridding correction, units */
    double scale = 1.0 / ((double)N * N * N * r->cfg.pixel);
    double *corr = ew_alloc_array((size_t)n, sizeof(double));
    if (!corr) {
        fftw_free(F);
        fftw_free(vol);
        return EW_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        double s = sinc(EW_PI * (i - n / 2) / N);
        corr[i] = 1.0 / (s * s);
    }
#pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++) {
        size_t zz = (size_t)(((k - n / 2) % N + N) % N);
        for (int j = 0; j < n; j++) {
            size_t yy = (size_t)(((j - n / 2) % N + N) % N);
            for (int i = 0; i < n; i++) {
                size_t xx = (size_t)(((i - n / 2) % N + N) % N);
                map[((size_t)k * n + j) * n + i] =
                    (float)(vol[(zz * N + yy) * N + xx] * scale * corr[i] * corr[j] * corr[k]);
            }
        }
    }
    ew_free(corr);
    fftw_free(F);
    fftw_free(vol);
    return EW_OK;
}

void ew_em_recon_free(ew_em_recon_t *r)
{
    if (!r) return;
    ew_free(r->map);
    ew_free(r->half[0]);
    ew_free(r->half[1]);
    ew_shell_curve_free(&r->fsc);
    memset(r, 0, sizeof *r);
}

ew_status_t ew_em_reconstruct(const ew_emrec_config_t *cfg, const float *imgs, const ew_em_view_t *v, size_t count,
                              ew_em_recon_t *out)
{
    memset(out, 0, sizeof *out);
    EW_TRY(config_check(cfg));
    if (count < 2) return ew_fail(EW_ERR_ARG, "em reconstruct: %zu particles (need >= 2 for half maps)", count);
    double t0 = ew_time_now();
    const int n = cfg->box;
    size_t nv = (size_t)n * n * n;
    ew_status_t st = EW_OK;
    ew_emrec_t *h[2] = {NULL, NULL};
    uint8_t *sel = ew_alloc_array(count, 1);
    double *sden = NULL, *tsh = NULL;
    out->n = n;
    out->pixel = cfg->pixel;
    out->map = ew_alloc_array(nv, sizeof(float));
    out->half[0] = ew_alloc_array(nv, sizeof(float));
    out->half[1] = ew_alloc_array(nv, sizeof(float));
    if (!sel || !out->map || !out->half[0] || !out->half[1]) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    /* random halves, balanced: a random permutation's first half is set 0 */
    {
        size_t *perm = ew_alloc_array(count, sizeof(size_t));
        if (!perm) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        ew_rng_t rng;
        ew_rng_init(&rng, cfg->seed, ew_rng_stream_id(EW_RNG_TAG_SPECIMEN, 0x4841u));
        for (size_t i = 0; i < count; i++) perm[i] = i;
        for (size_t i = count - 1; i > 0; i--) {
            size_t j = (size_t)(ew_rng_uniform(&rng) * (double)(i + 1));
            if (j > i) j = i;
            size_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (size_t i = 0; i < count; i++) sel[perm[i]] = i < count / 2 ? 1 : 2;
        ew_free(perm);
    }
    double tau_h = cfg->tau >= 0.0 ? cfg->tau : -cfg->tau * 1e-3;
    for (int k = 0; k < 2; k++) {
        st = ew_emrec_create(cfg, &h[k]);
        if (st != EW_OK) goto done;
        uint8_t *s = ew_alloc_array(count, 1);
        if (!s) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        for (size_t i = 0; i < count; i++) s[i] = sel[i] == k + 1;
        st = ew_emrec_insert(h[k], imgs, v, count, s);
        ew_free(s);
        if (st != EW_OK) goto done;
        out->n_half[k] = ew_emrec_count(h[k]);
        st = ew_emrec_finish(h[k], tau_h, NULL, 0, out->half[k]);
        if (st != EW_OK) goto done;
    }
    st = ew_fsc_density(out->half[0], out->half[1], n, cfg->pixel, cfg->fsc_shell, &out->fsc);
    if (st != EW_OK) goto done;
    out->res_0143 = ew_curve_resolution(&out->fsc, 0.143);
    ew_emrec_add(h[0], h[1]);
    if (cfg->tau >= 0.0) {
        st = ew_emrec_finish(h[0], cfg->tau, NULL, 0, out->map);
    } else {
        /* per-shell tau: SSNR_full = 2 FSC / (1 - FSC) at the padded shell's frequency */
        int N = cfg->box * cfg->pad, ns = N / 2 + 1;
        sden = ew_alloc_array((size_t)ns, sizeof(double));
        tsh = ew_alloc_array((size_t)ns, sizeof(double));
        if (!sden || !tsh) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        ew_emrec_shell_den(h[0], sden);
        for (int j = 0; j < ns; j++) {
            double s = (double)j / (N * cfg->pixel); /* 1/A */
            /* the FSC curve at s: shells j' with s_j' = j' w / (n pixel) */
            double fsc = 0.0;
            const ew_shell_curve_t *c = &out->fsc;
            for (int q = 0; q + 1 < c->nshell; q++)
                if (s >= c->s[q] && s <= c->s[q + 1]) {
                    double u = (s - c->s[q]) / (c->s[q + 1] - c->s[q]);
                    fsc = (1.0 - u) * c->value[q] + u * c->value[q + 1];
                    break;
                }
            if (fsc > 0.999) fsc = 0.999;
            if (fsc < 1e-3) fsc = 1e-3;
            double ssnr = 2.0 * fsc / (1.0 - fsc);
            tsh[j] = sden[j] / ssnr;
        }
        st = ew_emrec_finish(h[0], 0.0, tsh, ns, out->map);
    }
done:
    ew_free(sel);
    ew_free(sden);
    ew_free(tsh);
    ew_emrec_destroy(h[0]);
    ew_emrec_destroy(h[1]);
    if (st != EW_OK) {
        ew_em_recon_free(out);
        return st;
    }
    out->seconds = ew_time_now() - t0;
    return EW_OK;
}

void ew_em_potential_map(const ew_peng_atoms_t *a, int n, double apix, float *map)
{
    const int ng = a->ng;
    const double inv_vol = 1.0 / (apix * apix * apix);
#pragma omp parallel
    {
        double *wx = ew_alloc_array((size_t)n, sizeof(double));
        double *wy = ew_alloc_array((size_t)n, sizeof(double));
#pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n; k++) {
            float *slice = map + (size_t)k * n * n;
            memset(slice, 0, (size_t)n * n * sizeof(float));
            if (!wx || !wy) continue;
            double z0 = (k - n / 2 - 0.5) * apix, z1 = z0 + apix;
            for (size_t i = 0; i < a->n; i++) {
                const float *p = a->xyz + 3 * i;
                double reach = a->reach[i];
                if (p[2] + reach < z0 || p[2] - reach > z1) continue;
                int xlo = (int)floor(p[0] / apix - reach / apix) + n / 2, xhi = (int)ceil(p[0] / apix + reach / apix) + n / 2;
                int ylo = (int)floor(p[1] / apix - reach / apix) + n / 2, yhi = (int)ceil(p[1] / apix + reach / apix) + n / 2;
                if (xlo < 0) xlo = 0;
                if (ylo < 0) ylo = 0;
                if (xhi > n - 1) xhi = n - 1;
                if (yhi > n - 1) yhi = n - 1;
                if (xlo > xhi || ylo > yhi) continue;
                for (int g = 0; g < ng; g++) {
                    double kk = a->k[i * ng + g], amp = a->amp[i * ng + g];
                    double wz = 0.5 * (erf(kk * (z1 - p[2])) - erf(kk * (z0 - p[2])));
                    if (wz == 0.0) continue;
                    for (int x = xlo; x <= xhi; x++) {
                        double x0 = (x - n / 2 - 0.5) * apix;
                        wx[x] = 0.5 * (erf(kk * (x0 + apix - p[0])) - erf(kk * (x0 - p[0])));
                    }
                    for (int y = ylo; y <= yhi; y++) {
                        double y0 = (y - n / 2 - 0.5) * apix;
                        wy[y] = 0.5 * (erf(kk * (y0 + apix - p[1])) - erf(kk * (y0 - p[1])));
                    }
                    double c = amp * wz * inv_vol;
                    for (int y = ylo; y <= yhi; y++) {
                        double cy = c * wy[y];
                        float *row = slice + (size_t)y * n;
                        for (int x = xlo; x <= xhi; x++) row[x] += (float)(cy * wx[x]);
                    }
                }
            }
        }
        ew_free(wx);
        ew_free(wy);
    }
}

/* ---- reading particles ---- */

static ew_status_t get_d(const ew_star_t *s, const char *blk, const char *col, size_t row, double dflt, int required,
                         double *v)
{
    if (!ew_star_has_column(s, blk, col)) {
        if (required) return ew_fail(EW_ERR_FORMAT, "%s: no column %s in data_%s", s->source, col, blk);
        *v = dflt;
        return EW_OK;
    }
    ew_star_col_t c;
    EW_TRY(ew_star_column(s, blk, col, &c));
    if (row >= ew_star_rows(&c)) row = 0;
    return ew_star_get_double(&c, row, v);
}

ew_status_t ew_em_particles_read(const char *star_path, float **imgs_out, ew_em_view_t **views_out, size_t *count_out,
                                 int *box_out, double *pixel_out)
{
    *imgs_out = NULL;
    *views_out = NULL;
    *count_out = 0;
    ew_star_t s;
    EW_TRY(ew_star_read(star_path, &s));
    ew_status_t st = EW_OK;
    float *imgs = NULL;
    ew_em_view_t *views = NULL;
    ew_mrc_t stack;
    memset(&stack, 0, sizeof stack);
    char cur[2100] = "";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", star_path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = '\0';
    else dir[0] = '\0';
    ew_star_col_t cname;
    st = ew_star_column(&s, "particles", "rlnImageName", &cname);
    if (st != EW_OK) goto fail;
    size_t count = ew_star_rows(&cname);
    if (count == 0) {
        st = ew_fail(EW_ERR_FORMAT, "%s: data_particles has no rows", star_path);
        goto fail;
    }
    double pixel, volt, cs, ac;
    if ((st = get_d(&s, "optics", "rlnImagePixelSize", 0, 0, 1, &pixel)) != EW_OK ||
        (st = get_d(&s, "optics", "rlnVoltage", 0, 300, 0, &volt)) != EW_OK ||
        (st = get_d(&s, "optics", "rlnSphericalAberration", 0, 2.7, 0, &cs)) != EW_OK ||
        (st = get_d(&s, "optics", "rlnAmplitudeContrast", 0, 0.07, 0, &ac)) != EW_OK)
        goto fail;
    views = ew_calloc_array(count, sizeof *views);
    if (!views) {
        st = EW_ERR_NOMEM;
        goto fail;
    }
    int box = 0;
    for (size_t i = 0; i < count; i++) {
        double rot, tilt, psi, ox, oy, du, dv, da, ps, bf;
        if ((st = get_d(&s, "particles", "rlnAngleRot", i, 0, 1, &rot)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnAngleTilt", i, 0, 1, &tilt)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnAnglePsi", i, 0, 1, &psi)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnOriginXAngst", i, 0, 0, &ox)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnOriginYAngst", i, 0, 0, &oy)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnDefocusU", i, 0, 1, &du)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnDefocusV", i, 0, 1, &dv)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnDefocusAngle", i, 0, 0, &da)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnPhaseShift", i, 0, 0, &ps)) != EW_OK ||
            (st = get_d(&s, "particles", "rlnCtfBfactor", i, 0, 0, &bf)) != EW_OK)
            goto fail;
        ew_em_view_t *v = &views[i];
        ew_euler_relion_to_mat(rot, tilt, psi, v->R);
        v->shift[0] = ox / pixel;
        v->shift[1] = oy / pixel;
        ew_ctf_params_default(&v->ctf);
        v->ctf.voltage_v = volt * 1e3;
        v->ctf.cs_mm = cs;
        v->ctf.amp_contrast = ac;
        v->ctf.defocus_u = du;
        v->ctf.defocus_v = dv;
        v->ctf.astig_angle_deg = da;
        v->ctf.phase_shift_deg = ps;
        v->ctf.bfactor = bf;
        long idx;
        char rel[1024], path[2100];
        st = ew_star_split_image_name(ew_star_get_string(&cname, i), &idx, rel, sizeof rel);
        if (st != EW_OK) goto fail;
        if (rel[0] == '/') snprintf(path, sizeof path, "%s", rel);
        else snprintf(path, sizeof path, "%s%s", dir, rel);
        if (strcmp(path, cur) != 0) {
            ew_mrc_free(&stack);
            st = ew_mrc_read(path, &stack);
            if (st != EW_OK) goto fail;
            snprintf(cur, sizeof cur, "%s", path);
            if (box == 0) {
                box = stack.nx;
                size_t tot;
                if (stack.nx != stack.ny || ew_size_mul3(count, (size_t)box, (size_t)box, &tot) != EW_OK) {
                    st = ew_fail(EW_ERR_FORMAT, "%s: images of %d x %d are not square", path, stack.nx, stack.ny);
                    goto fail;
                }
                imgs = ew_alloc_array(tot, sizeof(float));
                if (!imgs) {
                    st = EW_ERR_NOMEM;
                    goto fail;
                }
            } else if (stack.nx != box || stack.ny != box) {
                st = ew_fail(EW_ERR_FORMAT, "%s: images of %d x %d differ from the first stack's %d", path, stack.nx,
                             stack.ny, box);
                goto fail;
            }
        }
        if (idx < 1 || idx > stack.nz) {
            st = ew_fail(EW_ERR_FORMAT, "%s: row %zu: image %ld is outside the stack of %d", star_path, i + 1, idx,
                         stack.nz);
            goto fail;
        }
        memcpy(imgs + i * (size_t)box * box, stack.data + (size_t)(idx - 1) * box * box,
               (size_t)box * box * sizeof(float));
    }
    ew_mrc_free(&stack);
    ew_star_free(&s);
    *imgs_out = imgs;
    *views_out = views;
    *count_out = count;
    *box_out = box;
    *pixel_out = pixel;
    return EW_OK;
fail:
    ew_mrc_free(&stack);
    ew_star_free(&s);
    ew_free(imgs);
    ew_free(views);
    return st;
}
