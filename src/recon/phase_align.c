/* ewald recon: aligning phased densities (translation, hand, sign), the
 * PRTF, and the whole multi-start phasing run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/prtf.h"
#include "recon/phase.h"
#include "recon/phase_internal.h"

/* Forward r2c of a compact n^3 real array into F (n n (n/2+1) complex),
 * through the padded scratch buf, with plan p (in-place on buf). */
static void forward(fftwf_plan p, const float *v, float *buf, int n, float *F)
{
    const int nh = n / 2 + 1, np = 2 * nh;
    for (size_t row = 0; row < (size_t)n * n; row++) memcpy(buf + row * np, v + row * n, (size_t)n * sizeof(float));
    fftwf_execute(p);
    memcpy(F, buf, (size_t)n * n * nh * 2 * sizeof(float));
}

/* buf holds a half-complex array; c2r with plan q and copy the real result
 * (times scale) to a compact n^3 array. */
static void backward(fftwf_plan q, float *buf, int n, float scale, float *v)
{
    const int np = 2 * (n / 2 + 1);
    fftwf_execute(q);
    for (size_t row = 0; row < (size_t)n * n; row++)
        for (int x = 0; x < n; x++) v[row * n + x] = buf[row * np + x] * scale;
}

typedef struct {
    int n, nh, np;
    float *buf;
    fftwf_plan fwd, bwd;
} fft_ctx_t;

static void ctx_free(fft_ctx_t *c)
{
    ew_phase_plan_destroy(c->fwd);
    ew_phase_plan_destroy(c->bwd);
    ew_free(c->buf);
    memset(c, 0, sizeof *c);
}

static ew_status_t ctx_init(fft_ctx_t *c, int n, int nthreads)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->nh = n / 2 + 1;
    c->np = 2 * c->nh;
    c->buf = ew_calloc_array((size_t)n * n * c->np, sizeof(float));
    if (!c->buf) return EW_ERR_NOMEM;
    c->fwd = ew_phase_plan_r2c(n, c->buf, (fftwf_complex *)c->buf, nthreads, FFTW_ESTIMATE);
    c->bwd = ew_phase_plan_c2r(n, (fftwf_complex *)c->buf, c->buf, nthreads, FFTW_ESTIMATE);
    if (!c->fwd || !c->bwd) {
        ctx_free(c);
        return ew_fail(EW_ERR_INTERNAL, "phase: FFTW could not plan a %d^3 transform", n);
    }
    return EW_OK;
}

/* Value of the (periodic) volume v at integer coordinates. */
static inline float at(const float *v, int n, int z, int y, int x)
{
    z = ((z % n) + n) % n;
    y = ((y % n) + n) % n;
    x = ((x % n) + n) % n;
    return v[((size_t)z * n + y) * n + x];
}

static double parabola(double m, double c0, double p)
{
    double den = m - 2.0 * c0 + p;
    if (!(den < 0.0)) return 0.0;
    double d = 0.5 * (m - p) / den;
    return d > 0.5 ? 0.5 : d < -0.5 ? -0.5 : d;
}

ew_status_t ew_phase_align(const float *ref, const float *mov, int n, int nthreads, float *out,
                           ew_phase_align_t *info)
{
    if (n < 2) return ew_fail(EW_ERR_ARG, "phase: align grid n = %d is too small", n);
    if (nthreads < 1) nthreads = 1;
    fft_ctx_t c;
    EW_TRY(ctx_init(&c, n, nthreads));
    const size_t nc = (size_t)n * n * c.nh, nv = (size_t)n * n * n;
    float *FA = ew_alloc_array(nc * 2, sizeof(float));
    float *FB = ew_alloc_array(nc * 2, sizeof(float));
    float *cc[2] = {ew_alloc_array(nv, sizeof(float)), ew_alloc_array(nv, sizeof(float))};
    if (!FA || !FB || !cc[0] || !cc[1]) {
        ew_free(FA);
        ew_free(FB);
        ew_free(cc[0]);
        ew_free(cc[1]);
        ctx_free(&c);
        return EW_ERR_NOMEM;
    }
    forward(c.fwd, ref, c.buf, n, FA);
    forward(c.fwd, mov, c.buf, n, FB);
    /* hand 0: FA conj(FB); hand 1 (mirror of mov): FA FB */
    for (int h = 0; h < 2; h++) {
        float sg = h ? 1.0f : -1.0f;
        for (size_t i = 0; i < nc; i++) {
            float ar = FA[2 * i], ai = FA[2 * i + 1], br = FB[2 * i], bi = sg * FB[2 * i + 1];
            c.buf[2 * i] = ar * br - ai * bi;
            c.buf[2 * i + 1] = ar * bi + ai * br;
        }
        backward(c.bwd, c.buf, n, 1.0f, cc[h]);
    }
    int bh = 0;
    size_t bi = 0;
    float best = -1.0f;
    for (int h = 0; h < 2; h++)
        for (size_t i = 0; i < nv; i++)
            if (fabsf(cc[h][i]) > best) {
                best = fabsf(cc[h][i]);
                bh = h;
                bi = i;
            }
    const float *C = cc[bh];
    int sign = C[bi] < 0.0f ? -1 : 1;
    int pz = (int)(bi / ((size_t)n * n)), py = (int)(bi / n % n), px = (int)(bi % n);
    double c0 = sign * C[bi];
    double t[3];
    t[0] = ew_phase_signed(pz, n) + parabola(sign * at(C, n, pz - 1, py, px), c0, sign * at(C, n, pz + 1, py, px));
    t[1] = ew_phase_signed(py, n) + parabola(sign * at(C, n, pz, py - 1, px), c0, sign * at(C, n, pz, py + 1, px));
    t[2] = ew_phase_signed(px, n) + parabola(sign * at(C, n, pz, py, px - 1), c0, sign * at(C, n, pz, py, px + 1));
    /* out = sign * m(r - t): F = sign * Fm(k) exp(-2 pi i k.t / n) */
    const float conj_sg = bh ? -1.0f : 1.0f;
    for (int kz = 0; kz < n; kz++)
        for (int ky = 0; ky < n; ky++)
            for (int kx = 0; kx < c.nh; kx++) {
                size_t i = ((size_t)kz * n + ky) * c.nh + kx;
                double ph = -2.0 * EW_PI *
                            (ew_phase_signed(kz, n) * t[0] + ew_phase_signed(ky, n) * t[1] + kx * t[2]) / n;
                float cr = (float)cos(ph), ci = (float)sin(ph);
                float br = FB[2 * i], bim = conj_sg * FB[2 * i + 1];
                c.buf[2 * i] = sign * (br * cr - bim * ci);
                c.buf[2 * i + 1] = sign * (br * ci + bim * cr);
            }
    backward(c.bwd, c.buf, n, 1.0f / (float)nv, out);
    if (info) {
        double ma = 0, mb = 0;
        for (size_t i = 0; i < nv; i++) {
            ma += ref[i];
            mb += out[i];
        }
        ma /= nv;
        mb /= nv;
        double sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < nv; i++) {
            double a = ref[i] - ma, b = out[i] - mb;
            sab += a * b;
            saa += a * a;
            sbb += b * b;
        }
        info->shift[0] = t[0];
        info->shift[1] = t[1];
        info->shift[2] = t[2];
        info->enantiomer = bh;
        info->sign = sign;
        info->cc = (saa > 0 && sbb > 0) ? sab / sqrt(saa * sbb) : 0.0;
    }
    ew_free(FA);
    ew_free(FB);
    ew_free(cc[0]);
    ew_free(cc[1]);
    ctx_free(&c);
    return EW_OK;
}

ew_status_t ew_phase_prtf(const float *const *dens, int k, int n, double ds, const uint8_t *known,
                          int nthreads, double *prtf, double *s, double *resolution, int *reached)
{
    if (k < 1) return ew_fail(EW_ERR_ARG, "phase: PRTF needs at least one density (k = %d)", k);
    if (n < 4 || !(ds > 0.0)) return ew_fail(EW_ERR_ARG, "phase: PRTF grid n = %d, ds = %g is invalid", n, ds);
    if (nthreads < 1) nthreads = 1;
    fft_ctx_t c;
    EW_TRY(ctx_init(&c, n, nthreads));
    const int nh = c.nh, cen = n / 2, ns = n / 2 + 1;
    const size_t nc = (size_t)n * n * nh, nv = (size_t)n * n * n;
    float *F = ew_alloc_array(nc * 2, sizeof(float)), *V = ew_alloc_array(nv * 2, sizeof(float));
    ew_prtf_acc_t acc = {0};
    ew_shell_curve_t cv = {0};
    ew_status_t st = F && V ? ew_prtf_acc_init(&acc, n) : EW_ERR_NOMEM;
    for (int j = 0; j < k && st == EW_OK; j++) {
        forward(c.fwd, dens[j], c.buf, n, F);
        /* the centred full transform (eval/fsc.h layout), unmeasured voxels 0 so that the PRTF skips them */
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    size_t v = ((size_t)z * n + y) * n + x;
                    float re = 0.0f, im = 0.0f;
                    if (!known || known[v]) {
                        int fz = z - cen, fy = y - cen, fx = x - cen, sg = 1;
                        if (fx < 0) fz = -fz, fy = -fy, fx = -fx, sg = -1; /* Friedel mate on the stored half */
                        size_t i = ((size_t)((fz + n) % n) * n + (size_t)((fy + n) % n)) * nh + (size_t)fx;
                        re = F[2 * i], im = sg * F[2 * i + 1];
                    }
                    V[2 * v] = re, V[2 * v + 1] = im;
                }
        ew_prtf_acc_add(&acc, V, 0.0);
    }
    if (st == EW_OK) st = ew_prtf_acc_finish(&acc, ds, 1.0, &cv);
    if (st == EW_OK) {
        for (int j = 0; j < ns; j++) {
            prtf[j] = j < cv.nshell && cv.count[j] > 0.0 ? cv.value[j] : NAN;
            if (s) s[j] = j * ds;
        }
        double sx;
        int cr = ew_curve_crossing(&cv, EW_PRTF_THRESHOLD, &sx);
        if (cr == -1) sx = ds; /* below 1/e from shell 1 on */
        if (!(sx > 0.0)) sx = ds;
        if (resolution) *resolution = 1.0 / sx;
        if (reached) *reached = cr != 0;
    }
    ew_shell_curve_free(&cv);
    ew_prtf_acc_free(&acc);
    ew_free(F);
    ew_free(V);
    ctx_free(&c);
    return st;
}

ew_status_t ew_phase_intensity(const float *density, int n, int nthreads, float *I)
{
    if (n < 2) return ew_fail(EW_ERR_ARG, "phase: intensity grid n = %d is too small", n);
    fft_ctx_t c;
    EW_TRY(ctx_init(&c, n, nthreads < 1 ? 1 : nthreads));
    const int nh = c.nh, np = c.np, cen = n / 2;
    memset(c.buf, 0, (size_t)n * n * np * sizeof(float));
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                c.buf[((size_t)((z - cen + n) % n) * n + (size_t)((y - cen + n) % n)) * np + (size_t)((x - cen + n) % n)] =
                    density[((size_t)z * n + y) * n + x];
    fftwf_execute(c.fwd);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int kz = (z - cen + n) % n, ky = (y - cen + n) % n, kx = (x - cen + n) % n;
                if (kx >= nh) { /* Friedel mate on the stored half */
                    kz = (n - kz) % n;
                    ky = (n - ky) % n;
                    kx = (n - kx) % n;
                }
                size_t i = ((size_t)kz * n + ky) * nh + kx;
                float re = c.buf[2 * i], im = c.buf[2 * i + 1];
                I[((size_t)z * n + y) * n + x] = re * re + im * im;
            }
    ctx_free(&c);
    return EW_OK;
}

void ew_phase_result_free(ew_phase_result_t *res)
{
    if (!res) return;
    ew_free(res->density);
    ew_free(res->support);
    ew_free(res->average);
    ew_free(res->errors);
    ew_free(res->align);
    ew_free(res->prtf);
    ew_free(res->prtf_s);
    memset(res, 0, sizeof *res);
}

ew_status_t ew_phase_run(const ew_rvol_t *intensity, const uint8_t *known, const ew_phase_config_t *c,
                         ew_phase_result_t *res)
{
    memset(res, 0, sizeof *res);
    EW_TRY(ew_phase_config_check(c));
    if (!intensity || !intensity->data || intensity->n < 4 || !(intensity->ds > 0.0))
        return ew_fail(EW_ERR_ARG, "phase: the intensity volume needs n >= 4 and ds > 0 (n = %d)",
                       intensity ? intensity->n : 0);
    const double t0 = ew_time_now();
    const int n = intensity->n, K = c->starts;
    const size_t nv = (size_t)n * n * n;
    ew_phaser_t *ph = NULL;
    uint8_t *sup0 = NULL;
    float *runs = NULL;
    uint8_t *sups = NULL;
    const float **ptrs = NULL;
    ew_status_t st = ew_phaser_create(&ph, n, c);
    if (st == EW_OK) st = ew_phaser_set_data(ph, intensity, known);
    res->n = n;
    res->voxel = 1.0 / (n * intensity->ds);
    res->nstarts = K;
    res->nshells = n / 2 + 1;
    if (st == EW_OK) {
        sup0 = ew_alloc_array(nv, 1);
        runs = ew_alloc_array(nv * (size_t)K, sizeof(float));
        sups = ew_alloc_array(nv * (size_t)K, 1);
        ptrs = malloc((size_t)K * sizeof *ptrs);
        res->density = ew_alloc_array(nv, sizeof(float));
        res->support = ew_alloc_array(nv, 1);
        res->average = ew_calloc_array(nv, sizeof(float));
        res->errors = ew_alloc_array((size_t)K, sizeof(double));
        res->align = ew_calloc_array((size_t)K, sizeof(ew_phase_align_t));
        res->prtf = ew_alloc_array((size_t)res->nshells, sizeof(double));
        res->prtf_s = ew_alloc_array((size_t)res->nshells, sizeof(double));
        if (!sup0 || !runs || !sups || !ptrs || !res->density || !res->support || !res->average || !res->errors ||
            !res->align || !res->prtf || !res->prtf_s)
            st = ew_fail(EW_ERR_NOMEM, "phase: out of memory for %d starts of %d^3", K, n);
    }
    if (st == EW_OK)
        st = ew_phase_support_autocorr(intensity, known, c->ac_sigma, c->ac_threshold, c->nthreads, sup0);
    long per_start = 0;
    for (int s = 0; s < c->nsteps; s++) per_start += c->steps[s].iters;
    res->iterations = per_start * c->loops + 1;
    if (st == EW_OK) {
        ew_progress_t *pr = ew_progress_start("phasing", (uint64_t)K * (uint64_t)c->loops);
        res->best = 0;
        for (int k = 0; k < K && st == EW_OK; k++) {
            double e = 0.0;
            st = ew_phaser_run_progress(ph, sup0, (uint64_t)k, runs + (size_t)k * nv, sups + (size_t)k * nv, &e, pr);
            if (st != EW_OK) break;
            res->errors[k] = e;
            if (k == 0 || e < res->errors[res->best]) res->best = k;
            ew_progress_status(pr, "start %d error %.4f, best %.4f", k, e, res->errors[res->best]);
        }
        ew_progress_finish(pr);
    }
    if (st == EW_OK) {
        memcpy(res->density, runs + (size_t)res->best * nv, nv * sizeof(float));
        memcpy(res->support, sups + (size_t)res->best * nv, nv);
        res->error = res->errors[res->best];
        for (int k = 0; k < K && st == EW_OK; k++) {
            float *r = runs + (size_t)k * nv;
            if (k != res->best) st = ew_phase_align(res->density, r, n, c->nthreads, r, &res->align[k]);
            else res->align[k] = (ew_phase_align_t){{0, 0, 0}, 0, 1, 1.0};
            ptrs[k] = r;
        }
    }
    if (st == EW_OK) {
        for (int k = 0; k < K; k++)
            for (size_t i = 0; i < nv; i++) res->average[i] += ptrs[k][i] / (float)K;
        st = ew_phase_prtf(ptrs, K, n, intensity->ds, known, c->nthreads, res->prtf, res->prtf_s, &res->resolution,
                           &res->resolution_reached);
    }
    ew_phaser_free(ph);
    ew_free(sup0);
    ew_free(runs);
    ew_free(sups);
    free(ptrs);
    if (st != EW_OK) {
        ew_phase_result_free(res);
        return st;
    }
    res->seconds = ew_time_now() - t0;
    return EW_OK;
}
