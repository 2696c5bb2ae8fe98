/* ewald recon: phase retrieval (ER, HIO, DM, RAAR, shrinkwrap, recentering).
 *
 * Layout. Inside the phaser everything lives on FFT-origin grids: the
 * real-space iterate x at index k = (i - c) mod n of the user's centred
 * index i (c = n / 2), stored in FFTW's padded in-place layout (rows of
 * np = 2 (n/2 + 1) floats, the last np - n unused); the Fourier side in
 * the half-complex layout of the in-place r2c transform, n x n x (n/2+1).
 * One iteration is: forward r2c in place, the modulus projection fused
 * with the 1/N normalisation, backward c2r in place, and one fused
 * real-space pass that writes the new iterate both to x and to the FFT
 * buffer (so the next forward transform needs no copy).
 */
#include "recon/phase.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "recon/phase_internal.h"

/* ---- FFTW plans -------------------------------------------------------- */

static int ew_phase_fftw_ready = 0;

static void fftw_setup(void)
{
    if (!ew_phase_fftw_ready) {
        fftwf_make_planner_thread_safe();
        fftwf_init_threads();
        ew_phase_fftw_ready = 1;
    }
}

fftwf_plan ew_phase_plan_r2c(int n, float *in, fftwf_complex *out, int nthreads, unsigned flags)
{
    fftwf_plan p;
#pragma omp critical(ew_fftw_planner)
    {
        fftw_setup();
        fftwf_plan_with_nthreads(nthreads);
        p = fftwf_plan_dft_r2c_3d(n, n, n, in, out, flags);
    }
    return p;
}

fftwf_plan ew_phase_plan_c2r(int n, fftwf_complex *in, float *out, int nthreads, unsigned flags)
{
    fftwf_plan p;
#pragma omp critical(ew_fftw_planner)
    {
        fftw_setup();
        fftwf_plan_with_nthreads(nthreads);
        p = fftwf_plan_dft_c2r_3d(n, n, n, in, out, flags);
    }
    return p;
}

void ew_phase_plan_destroy(fftwf_plan p)
{
    if (!p) return;
#pragma omp critical(ew_fftw_planner)
    fftwf_destroy_plan(p);
}

/* ---- Configuration ----------------------------------------------------- */

const char *ew_phase_algo_name(ew_phase_algo_t a)
{
    switch (a) {
    case EW_PHASE_ER: return "ER";
    case EW_PHASE_HIO: return "HIO";
    case EW_PHASE_DM: return "DM";
    case EW_PHASE_RAAR: return "RAAR";
    }
    return "?";
}

ew_status_t ew_phase_algo_parse(const char *text, ew_phase_algo_t *a)
{
    static const ew_phase_algo_t all[] = {EW_PHASE_ER, EW_PHASE_HIO, EW_PHASE_DM, EW_PHASE_RAAR};
    for (size_t i = 0; text && i < sizeof all / sizeof all[0]; i++)
        if (strcasecmp(text, ew_phase_algo_name(all[i])) == 0) {
            *a = all[i];
            return EW_OK;
        }
    return ew_fail(EW_ERR_ARG, "phase algorithm '%s' is not one of er, hio, dm, raar", text ? text : "(null)");
}

void ew_phase_config_default(ew_phase_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->nsteps = 4;
    c->steps[0] = (ew_phase_step_t){EW_PHASE_ER, 50, 0.0};
    c->steps[1] = (ew_phase_step_t){EW_PHASE_HIO, 25, 0.3};
    c->steps[2] = (ew_phase_step_t){EW_PHASE_DM, 25, 0.3};
    c->steps[3] = (ew_phase_step_t){EW_PHASE_ER, 50, 0.0};
    c->loops = 100;
    c->starts = 10;
    c->seed = 1;
    c->positivity = 1;
    c->shrinkwrap_every = 1;
    c->sw_sigma_start = 1.0;
    c->sw_sigma_end = 1.0;
    c->sw_threshold = 0.04;
    c->recenter = 1;
    c->ac_sigma = 1.0;
    c->ac_threshold = 0.02;
    c->nthreads = 2;
    c->fftw_measure = 1;
}

ew_status_t ew_phase_config_check(const ew_phase_config_t *c)
{
    if (c->nsteps < 1 || c->nsteps > EW_PHASE_MAX_STEPS)
        return ew_fail(EW_ERR_ARG, "phase: nsteps = %d is not in 1..%d", c->nsteps, EW_PHASE_MAX_STEPS);
    for (int i = 0; i < c->nsteps; i++) {
        const ew_phase_step_t *s = &c->steps[i];
        if ((int)s->algo < 0 || (int)s->algo > EW_PHASE_RAAR)
            return ew_fail(EW_ERR_ARG, "phase: step %d algorithm = %d is unknown", i, (int)s->algo);
        if (s->iters < 0)
            return ew_fail(EW_ERR_ARG, "phase: step %d iterations = %d is negative", i, s->iters);
        if (s->algo != EW_PHASE_ER && !(s->beta > 0.0 && s->beta <= 1.0))
            return ew_fail(EW_ERR_ARG, "phase: step %d (%s) beta = %g is not in (0, 1]", i,
                           ew_phase_algo_name(s->algo), s->beta);
    }
    if (c->loops < 1) return ew_fail(EW_ERR_ARG, "phase: loops = %d is not positive", c->loops);
    if (c->starts < 1) return ew_fail(EW_ERR_ARG, "phase: starts = %d is not positive", c->starts);
    if (c->shrinkwrap_every < 0)
        return ew_fail(EW_ERR_ARG, "phase: shrinkwrap_every = %d is negative", c->shrinkwrap_every);
    if (c->shrinkwrap_every > 0) {
        if (!(c->sw_sigma_start > 0.0) || !(c->sw_sigma_end > 0.0))
            return ew_fail(EW_ERR_ARG, "phase: shrinkwrap sigma %g -> %g is not positive", c->sw_sigma_start,
                           c->sw_sigma_end);
        if (!(c->sw_threshold > 0.0 && c->sw_threshold < 1.0))
            return ew_fail(EW_ERR_ARG, "phase: shrinkwrap threshold = %g is not in (0, 1)", c->sw_threshold);
    }
    if (!(c->ac_sigma >= 0.0)) return ew_fail(EW_ERR_ARG, "phase: ac_sigma = %g is negative", c->ac_sigma);
    if (!(c->ac_threshold > 0.0 && c->ac_threshold < 1.0))
        return ew_fail(EW_ERR_ARG, "phase: ac_threshold = %g is not in (0, 1)", c->ac_threshold);
    if (c->nthreads < 1) return ew_fail(EW_ERR_ARG, "phase: nthreads = %d is not positive", c->nthreads);
    return EW_OK;
}

/* ---- The phaser ---------------------------------------------------------- */

struct ew_phaser {
    ew_phase_config_t cfg;
    int n, nh, np;       /* grid, complex row length n/2+1, padded real row 2 nh */
    size_t nrows;        /* n * n */
    size_t nvox;         /* n^3 */
    float *x;            /* iterate, padded layout, FFT origin */
    float *w;            /* in-place FFT buffer (padded real / half complex) */
    float *d;            /* scratch, padded layout (DM, blur) */
    float *amp;          /* half-complex amplitudes |F|, < 0 where unknown */
    uint8_t *sup, *sup2; /* support (padded layout, FFT origin) and scratch */
    fftwf_plan fwd, bwd;
    int have_data, have_iter;
    int w_is_x;          /* the real part of w equals x */
    double amp0;         /* amplitude at s = 0, or -1 if unknown */
};

ew_status_t ew_phaser_create(ew_phaser_t **out, int n, const ew_phase_config_t *c)
{
    *out = NULL;
    EW_TRY(ew_phase_config_check(c));
    if (n < 4 || n > 2048) return ew_fail(EW_ERR_ARG, "phase: grid size n = %d is not in 4..2048", n);
    ew_phaser_t *ph = calloc(1, sizeof *ph);
    if (!ph) return ew_fail(EW_ERR_NOMEM, "phase: out of memory for the phaser");
    ph->cfg = *c;
    ph->n = n;
    ph->nh = n / 2 + 1;
    ph->np = 2 * ph->nh;
    ph->nrows = (size_t)n * (size_t)n;
    ph->nvox = ph->nrows * (size_t)n;
    size_t nreal = ph->nrows * (size_t)ph->np;
    ph->x = ew_calloc_array(nreal, sizeof(float));
    ph->w = ew_calloc_array(nreal, sizeof(float));
    ph->d = ew_calloc_array(nreal, sizeof(float));
    ph->amp = ew_alloc_array(ph->nrows * (size_t)ph->nh, sizeof(float));
    ph->sup = ew_calloc_array(nreal, 1);
    ph->sup2 = ew_calloc_array(nreal, 1);
    if (!ph->x || !ph->w || !ph->d || !ph->amp || !ph->sup || !ph->sup2) {
        ew_phaser_free(ph);
        return ew_fail(EW_ERR_NOMEM, "phase: out of memory for %d^3 buffers", n);
    }
    unsigned flags = c->fftw_measure ? FFTW_MEASURE : FFTW_ESTIMATE;
    ph->fwd = ew_phase_plan_r2c(n, ph->w, (fftwf_complex *)ph->w, c->nthreads, flags);
    ph->bwd = ew_phase_plan_c2r(n, (fftwf_complex *)ph->w, ph->w, c->nthreads, flags);
    if (!ph->fwd || !ph->bwd) {
        ew_phaser_free(ph);
        return ew_fail(EW_ERR_INTERNAL, "phase: FFTW could not plan a %d^3 transform", n);
    }
    memset(ph->w, 0, nreal * sizeof(float));
    ph->amp0 = -1.0;
    *out = ph;
    return EW_OK;
}

void ew_phaser_free(ew_phaser_t *ph)
{
    if (!ph) return;
    ew_phase_plan_destroy(ph->fwd);
    ew_phase_plan_destroy(ph->bwd);
    ew_free(ph->x);
    ew_free(ph->w);
    ew_free(ph->d);
    ew_free(ph->amp);
    ew_free(ph->sup);
    ew_free(ph->sup2);
    free(ph);
}

/* Friedel-symmetrised measured intensity on the half-complex grid:
 * out[(kz n + ky) nh + kx] = mean of the measured ones of I(k), I(-k), or
 * -1 if neither is measured. Negative values count as 0. */
static ew_status_t sym_intensity_half(const ew_rvol_t *I, const uint8_t *known, float *out)
{
    const int n = I->n, c = n / 2, nh = n / 2 + 1;
    for (int kz = 0; kz < n; kz++)
        for (int ky = 0; ky < n; ky++)
            for (int kx = 0; kx < nh; kx++) {
                size_t a = ((size_t)((kz + c) % n) * n + (size_t)((ky + c) % n)) * n + (size_t)((kx + c) % n);
                size_t b = ((size_t)(((n - kz) % n + c) % n) * n + (size_t)(((n - ky) % n + c) % n)) * n +
                           (size_t)(((n - kx) % n + c) % n);
                double sum = 0.0;
                int cnt = 0;
                size_t ab[2] = {a, b};
                for (int t = 0; t < 2; t++) {
                    size_t v = ab[t];
                    if (known && !known[v]) continue;
                    float val = I->data[v];
                    if (!isfinite(val)) {
                        int iz = (int)(v / ((size_t)n * n)), iy = (int)(v / n % n), ix = (int)(v % n);
                        return ew_fail(EW_ERR_NUMERIC, "phase: intensity voxel (z %d, y %d, x %d) is %g", iz, iy,
                                       ix, (double)val);
                    }
                    sum += val > 0.0f ? val : 0.0;
                    cnt++;
                }
                out[((size_t)kz * n + ky) * nh + kx] = cnt ? (float)(sum / cnt) : -1.0f;
            }
    return EW_OK;
}

ew_status_t ew_phaser_set_data(ew_phaser_t *ph, const ew_rvol_t *intensity, const uint8_t *known)
{
    if (!intensity || !intensity->data || intensity->n != ph->n)
        return ew_fail(EW_ERR_ARG, "phase: intensity grid n = %d differs from the phaser's %d",
                       intensity ? intensity->n : 0, ph->n);
    size_t nc = ph->nrows * (size_t)ph->nh;
    float *tmp = ew_alloc_array(nc, sizeof(float));
    if (!tmp) return EW_ERR_NOMEM;
    ew_status_t st = sym_intensity_half(intensity, known, tmp);
    if (st != EW_OK) {
        ew_free(tmp);
        return st;
    }
    size_t nknown = 0;
    for (size_t i = 0; i < nc; i++) {
        if (tmp[i] >= 0.0f) {
            tmp[i] = sqrtf(tmp[i]);
            nknown++;
        }
    }
    if (nknown == 0) {
        ew_free(tmp);
        return ew_fail(EW_ERR_ARG, "phase: no intensity voxel is measured (the mask is empty)");
    }
    memcpy(ph->amp, tmp, nc * sizeof(float));
    ew_free(tmp);
    ph->amp0 = ph->amp[0];
    ph->have_data = 1;
    return EW_OK;
}

/* centred index i -> FFT-origin index */
static inline int to_fft(int i, int n)
{
    return (i - n / 2 + n) % n;
}

static void support_from_centred(ew_phaser_t *ph, const uint8_t *s)
{
    const int n = ph->n, np = ph->np;
    memset(ph->sup, 0, ph->nrows * (size_t)np);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                ph->sup[((size_t)to_fft(z, n) * n + to_fft(y, n)) * np + to_fft(x, n)] =
                    s[((size_t)z * n + y) * n + x] ? 1 : 0;
}

ew_status_t ew_phaser_init(ew_phaser_t *ph, const uint8_t *support, uint64_t start)
{
    const int n = ph->n, np = ph->np;
    size_t cnt = 0;
    for (size_t i = 0; i < ph->nvox; i++) cnt += support[i] != 0;
    if (cnt == 0) return ew_fail(EW_ERR_ARG, "phase: the initial support is empty");
    support_from_centred(ph, support);
    double scale = ph->amp0 > 0.0 ? 2.0 * ph->amp0 / (double)cnt : 1.0;
    ew_rng_t r;
    ew_rng_init(&r, ph->cfg.seed, ew_rng_stream_id(EW_RNG_TAG_PHASE, start));
    memset(ph->x, 0, ph->nrows * (size_t)np * sizeof(float));
    for (size_t row = 0; row < ph->nrows; row++)
        for (int x = 0; x < n; x++) {
            size_t v = row * np + x;
            if (ph->sup[v]) ph->x[v] = (float)(scale * ew_rng_uniform(&r));
        }
    ph->have_iter = 1;
    ph->w_is_x = 0;
    return EW_OK;
}

ew_status_t ew_phaser_set_iterate(ew_phaser_t *ph, const uint8_t *support, const float *density)
{
    const int n = ph->n, np = ph->np;
    size_t cnt = 0;
    for (size_t i = 0; i < ph->nvox; i++) cnt += support[i] != 0;
    if (cnt == 0) return ew_fail(EW_ERR_ARG, "phase: the support is empty");
    support_from_centred(ph, support);
    memset(ph->x, 0, ph->nrows * (size_t)np * sizeof(float));
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                ph->x[((size_t)to_fft(z, n) * n + to_fft(y, n)) * np + to_fft(x, n)] =
                    density[((size_t)z * n + y) * n + x];
    ph->have_iter = 1;
    ph->w_is_x = 0;
    return EW_OK;
}

static void load_w(ew_phaser_t *ph)
{
    if (!ph->w_is_x) {
        memcpy(ph->w, ph->x, ph->nrows * (size_t)ph->np * sizeof(float));
        ph->w_is_x = 1;
    }
}

/* 1/sqrt(x) for x > 0 to float precision (relative error ~1e-7): a bit-level
 * first guess and three Newton steps. Pure arithmetic, so the loop below
 * vectorises (sqrtf does not under the project's flags: it may set errno). */
static inline float rsqrt_newton(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = 0x5f375a86u - (u >> 1);
    float y;
    memcpy(&y, &u, sizeof y);
    const float hx = 0.5f * x;
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    return y;
}

/* The modulus projection on complex elements [lo, hi) of w, branch-free. */
static void project_range(float *restrict w, const float *restrict A, float inv, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) {
        float re = w[2 * i], im = w[2 * i + 1], a = A[i];
        float m2 = re * re + im * im;
        int nz = m2 > 1e-30f;
        float q = a * inv * rsqrt_newton(nz ? m2 : 1.0f);
        float f = a < 0.0f ? inv : (nz ? q : 0.0f);
        float add = (a >= 0.0f && !nz) ? a * inv : 0.0f;
        w[2 * i] = re * f + add;
        w[2 * i + 1] = im * f;
    }
}

/* w holds F = FFT(y); replace it by FFT(P_M y) / N (ready for c2r). */
static void fourier_project(ew_phaser_t *ph)
{
    const size_t nc = ph->nrows * (size_t)ph->nh;
    const int nt = ph->cfg.nthreads;
    const float inv = 1.0f / (float)ph->nvox;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) project_range(ph->w, ph->amp, inv, nc * t / nt, nc * (t + 1) / nt);
}

/* Fourier error of the transform held in w (unnormalised FFT of a density). */
static double fourier_error_w(const ew_phaser_t *ph)
{
    const int n = ph->n, nh = ph->nh;
    const float *w = ph->w, *A = ph->amp;
    double num = 0.0, den = 0.0;
#pragma omp parallel for num_threads(ph->cfg.nthreads) reduction(+ : num, den) schedule(static)
    for (size_t row = 0; row < ph->nrows; row++)
        for (int kx = 0; kx < nh; kx++) {
            size_t i = row * nh + kx;
            float a = A[i];
            if (a < 0.0f) continue;
            double wt = (kx == 0 || (n % 2 == 0 && kx == n / 2)) ? 1.0 : 2.0;
            double m = sqrt((double)w[2 * i] * w[2 * i] + (double)w[2 * i + 1] * w[2 * i + 1]);
            num += wt * (m - a) * (m - a);
            den += wt * (double)a * a;
        }
    return den > 0.0 ? sqrt(num / den) : 0.0;
}

/* w = P_M(w) in real space (w holds a real array on entry and exit). */
static void modulus_projection(ew_phaser_t *ph)
{
    fftwf_execute(ph->fwd);
    fourier_project(ph);
    fftwf_execute(ph->bwd);
}

/* One real-space update after w = p = P_M x. Writes the new x to x and w. */
static void update_er(ew_phaser_t *ph)
{
    const int n = ph->n, np = ph->np, pos = ph->cfg.positivity;
    float *restrict x = ph->x, *restrict w = ph->w;
    const uint8_t *restrict s = ph->sup;
#pragma omp parallel for num_threads(ph->cfg.nthreads) schedule(static)
    for (size_t row = 0; row < ph->nrows; row++) {
        size_t o = row * np;
        for (int i = 0; i < n; i++) {
            float p = w[o + i];
            int in = s[o + i] && (!pos || p > 0.0f);
            float v = in ? p : 0.0f;
            x[o + i] = v;
            w[o + i] = v;
        }
    }
}

static void update_hio(ew_phaser_t *ph, float beta)
{
    const int n = ph->n, np = ph->np, pos = ph->cfg.positivity;
    float *restrict x = ph->x, *restrict w = ph->w;
    const uint8_t *restrict s = ph->sup;
#pragma omp parallel for num_threads(ph->cfg.nthreads) schedule(static)
    for (size_t row = 0; row < ph->nrows; row++) {
        size_t o = row * np;
        for (int i = 0; i < n; i++) {
            float p = w[o + i], xo = x[o + i];
            int in = s[o + i] && (!pos || p > 0.0f);
            float v = in ? p : xo - beta * p;
            x[o + i] = v;
            w[o + i] = v;
        }
    }
}

static void update_raar(ew_phaser_t *ph, float beta)
{
    const int n = ph->n, np = ph->np, pos = ph->cfg.positivity;
    float *restrict x = ph->x, *restrict w = ph->w;
    const uint8_t *restrict s = ph->sup;
    const float c2 = 1.0f - 2.0f * beta;
#pragma omp parallel for num_threads(ph->cfg.nthreads) schedule(static)
    for (size_t row = 0; row < ph->nrows; row++) {
        size_t o = row * np;
        for (int i = 0; i < n; i++) {
            float p = w[o + i], xo = x[o + i];
            int in = s[o + i] && (!pos || 2.0f * p - xo > 0.0f);
            float v = in ? p : beta * xo + c2 * p;
            x[o + i] = v;
            w[o + i] = v;
        }
    }
}

/* DM, first half: w = p1 = P_M x on entry. d = P_S f_M(x), w = f_S(x). */
static void dm_mid(ew_phaser_t *ph, float beta)
{
    const int n = ph->n, np = ph->np, pos = ph->cfg.positivity;
    float *restrict x = ph->x, *restrict w = ph->w, *restrict d = ph->d;
    const uint8_t *restrict s = ph->sup;
    const float ib = 1.0f / beta, am = 1.0f + ib, as = 1.0f - ib;
#pragma omp parallel for num_threads(ph->cfg.nthreads) schedule(static)
    for (size_t row = 0; row < ph->nrows; row++) {
        size_t o = row * np;
        for (int i = 0; i < n; i++) {
            float p = w[o + i], xo = x[o + i];
            float fm = am * p - ib * xo;
            int inm = s[o + i] && (!pos || fm > 0.0f);
            d[o + i] = inm ? fm : 0.0f;
            int inx = s[o + i] && (!pos || xo > 0.0f);
            w[o + i] = as * (inx ? xo : 0.0f) + ib * xo;
        }
    }
}

/* DM, second half: w = P_M f_S(x). x += beta (d - w); w = x. */
static void dm_end(ew_phaser_t *ph, float beta)
{
    const int n = ph->n, np = ph->np;
    float *restrict x = ph->x, *restrict w = ph->w;
    const float *restrict d = ph->d;
#pragma omp parallel for num_threads(ph->cfg.nthreads) schedule(static)
    for (size_t row = 0; row < ph->nrows; row++) {
        size_t o = row * np;
        for (int i = 0; i < n; i++) {
            float v = x[o + i] + beta * (d[o + i] - w[o + i]);
            x[o + i] = v;
            w[o + i] = v;
        }
    }
}

void ew_phaser_iterate(ew_phaser_t *ph, ew_phase_algo_t algo, double beta, int iters)
{
    EW_ASSERT(ph->have_data && ph->have_iter);
    float b = (float)beta;
    for (int it = 0; it < iters; it++) {
        load_w(ph);
        modulus_projection(ph);
        switch (algo) {
        case EW_PHASE_ER: update_er(ph); break;
        case EW_PHASE_HIO: update_hio(ph, b); break;
        case EW_PHASE_RAAR: update_raar(ph, b); break;
        case EW_PHASE_DM:
            dm_mid(ph, b);
            modulus_projection(ph);
            dm_end(ph, b);
            break;
        }
        ph->w_is_x = 1;
    }
}

/* ---- Blur, shrinkwrap, recentering ------------------------------------- */

/* One periodic 1D convolution pass along axis (0 z, 1 y, 2 x) of a volume
 * with rows of np floats: out = kernel * in. */
static void blur_pass(const float *in, float *out, int n, int np, int axis, const float *k, int rad, int nthreads)
{
    const size_t stride = axis == 2 ? 1 : axis == 1 ? (size_t)np : (size_t)n * np;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (size_t row = 0; row < (size_t)n * n; row++) {
        int z = (int)(row / n), y = (int)(row % n);
        size_t o = row * np;
        for (int x = 0; x < n; x++) {
            int coord = axis == 2 ? x : axis == 1 ? y : z;
            size_t base = o + x - (size_t)coord * stride;
            double acc = 0.0;
            for (int j = -rad; j <= rad; j++) {
                int cc = ((coord + j) % n + n) % n;
                acc += (double)k[j + rad] * in[base + (size_t)cc * stride];
            }
            out[o + x] = (float)acc;
        }
    }
}

/* Blur v (rows of np) in place using scratch t (same size). */
static void blur_padded(float *v, float *t, int n, int np, double sigma, int nthreads)
{
    if (!(sigma > 0.0)) return;
    int rad = (int)ceil(4.0 * sigma);
    if (rad < 1) rad = 1;
    float k[2 * 4 * 64 + 1];
    if (rad > 4 * 64) rad = 4 * 64;
    double sum = 0.0;
    for (int j = -rad; j <= rad; j++) sum += exp(-0.5 * j * j / (sigma * sigma));
    for (int j = -rad; j <= rad; j++) k[j + rad] = (float)(exp(-0.5 * j * j / (sigma * sigma)) / sum);
    blur_pass(v, t, n, np, 2, k, rad, nthreads);
    blur_pass(t, v, n, np, 1, k, rad, nthreads);
    blur_pass(v, t, n, np, 0, k, rad, nthreads);
    for (size_t row = 0; row < (size_t)n * n; row++) memcpy(v + row * np, t + row * np, (size_t)n * sizeof(float));
}

ew_status_t ew_phase_blur(float *vol, int n, double sigma, int nthreads)
{
    if (!(sigma > 0.0)) return EW_OK;
    if (sigma > 64.0) return ew_fail(EW_ERR_ARG, "phase: blur sigma = %g voxels is above 64", sigma);
    size_t nv;
    EW_TRY(ew_size_mul3((size_t)n, (size_t)n, (size_t)n, &nv));
    float *t = ew_alloc_array(nv, sizeof(float));
    if (!t) return EW_ERR_NOMEM;
    blur_padded(vol, t, n, n, sigma, nthreads < 1 ? 1 : nthreads);
    ew_free(t);
    return EW_OK;
}

ew_status_t ew_phaser_shrinkwrap(ew_phaser_t *ph, double sigma, double threshold)
{
    EW_ASSERT(ph->have_iter);
    if (!(sigma > 0.0 && sigma <= 64.0))
        return ew_fail(EW_ERR_ARG, "phase: shrinkwrap sigma = %g is not in (0, 64]", sigma);
    const int n = ph->n, np = ph->np;
    const size_t nreal = ph->nrows * (size_t)np;
    for (size_t i = 0; i < nreal; i++) ph->w[i] = fabsf(ph->x[i]);
    for (size_t row = 0; row < ph->nrows; row++)
        for (int i = n; i < np; i++) ph->w[row * np + i] = 0.0f;
    ph->w_is_x = 0;
    blur_padded(ph->w, ph->d, n, np, sigma, ph->cfg.nthreads);
    float mx = 0.0f;
    for (size_t i = 0; i < nreal; i++) mx = ph->w[i] > mx ? ph->w[i] : mx;
    if (!(mx > 0.0f)) return ew_fail(EW_ERR_NUMERIC, "phase: shrinkwrap found a zero density; support kept");
    float thr = (float)(threshold * mx);
    size_t cnt = 0;
    for (size_t row = 0; row < ph->nrows; row++)
        for (int i = 0; i < n; i++) {
            size_t v = row * np + i;
            ph->sup2[v] = ph->w[v] >= thr;
            cnt += ph->sup2[v];
        }
    if (cnt == 0) return ew_fail(EW_ERR_NUMERIC, "phase: shrinkwrap gave an empty support; support kept");
    uint8_t *t = ph->sup;
    ph->sup = ph->sup2;
    ph->sup2 = t;
    return EW_OK;
}

void ew_phaser_recenter(ew_phaser_t *ph)
{
    EW_ASSERT(ph->have_iter);
    const int n = ph->n, np = ph->np;
    for (int round = 0; round < 10; round++) {
        double m = 0.0, c[3] = {0.0, 0.0, 0.0};
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    size_t v = ((size_t)z * n + y) * np + x;
                    if (!ph->sup[v]) continue;
                    double a = ph->cfg.positivity ? (ph->x[v] > 0.0f ? ph->x[v] : 0.0) : fabs(ph->x[v]);
                    m += a;
                    c[0] += a * ew_phase_signed(z, n);
                    c[1] += a * ew_phase_signed(y, n);
                    c[2] += a * ew_phase_signed(x, n);
                }
        if (!(m > 0.0)) return;
        int sh[3];
        for (int a = 0; a < 3; a++) sh[a] = -(int)lround(c[a] / m);
        if (sh[0] == 0 && sh[1] == 0 && sh[2] == 0) return;
        for (int a = 0; a < 3; a++) sh[a] = ((sh[a] % n) + n) % n;
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++) {
                size_t src = ((size_t)z * n + y) * np;
                size_t dst = ((size_t)((z + sh[0]) % n) * n + (size_t)((y + sh[1]) % n)) * np;
                for (int x = 0; x < n; x++) {
                    int xd = (x + sh[2]) % n;
                    ph->w[dst + xd] = ph->x[src + x];
                    ph->sup2[dst + xd] = ph->sup[src + x];
                }
            }
        memcpy(ph->x, ph->w, ph->nrows * (size_t)np * sizeof(float));
        uint8_t *t = ph->sup;
        ph->sup = ph->sup2;
        ph->sup2 = t;
        ph->w_is_x = 1;
    }
}

/* ---- Results ------------------------------------------------------------ */

static void copy_out(const ew_phaser_t *ph, float *density, uint8_t *support)
{
    const int n = ph->n, np = ph->np;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t v = ((size_t)to_fft(z, n) * n + to_fft(y, n)) * np + to_fft(x, n);
                size_t o = ((size_t)z * n + y) * n + x;
                if (density) density[o] = ph->x[v];
                if (support) support[o] = ph->sup[v];
            }
}

double ew_phaser_error(ew_phaser_t *ph, const float *density)
{
    EW_ASSERT(ph->have_data);
    const int n = ph->n, np = ph->np;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                ph->w[((size_t)to_fft(z, n) * n + to_fft(y, n)) * np + to_fft(x, n)] =
                    density[((size_t)z * n + y) * n + x];
    ph->w_is_x = 0;
    fftwf_execute(ph->fwd);
    return fourier_error_w(ph);
}

double ew_phaser_finish(ew_phaser_t *ph, float *density, uint8_t *support)
{
    ew_phaser_iterate(ph, EW_PHASE_ER, 0.0, 1);
    fftwf_execute(ph->fwd); /* w == x after ER */
    ph->w_is_x = 0;
    double err = fourier_error_w(ph);
    copy_out(ph, density, support);
    return err;
}

ew_status_t ew_phaser_run(ew_phaser_t *ph, const uint8_t *support0, uint64_t start, float *density,
                          uint8_t *support, double *error)
{
    return ew_phaser_run_progress(ph, support0, start, density, support, error, NULL);
}

static void run_loops(ew_phaser_t *ph, int loops, ew_progress_t *progress)
{
    const ew_phase_config_t *c = &ph->cfg;
    for (int loop = 0; loop < loops; loop++) {
        for (int s = 0; s < c->nsteps; s++) ew_phaser_iterate(ph, c->steps[s].algo, c->steps[s].beta, c->steps[s].iters);
        if (c->shrinkwrap_every > 0 && (loop + 1) % c->shrinkwrap_every == 0) {
            double t = loops > 1 ? (double)loop / (double)(loops - 1) : 1.0;
            double sigma = c->sw_sigma_start * pow(c->sw_sigma_end / c->sw_sigma_start, t);
            if (ew_phaser_shrinkwrap(ph, sigma, c->sw_threshold) != EW_OK) ew_error_clear();
        }
        if (c->recenter) ew_phaser_recenter(ph);
        ew_progress_add(progress, 1);
    }
}

void ew_phaser_loops(ew_phaser_t *ph, int loops)
{
    EW_ASSERT(ph->have_data && ph->have_iter);
    run_loops(ph, loops, NULL);
}

ew_status_t ew_phaser_run_progress(ew_phaser_t *ph, const uint8_t *support0, uint64_t start, float *density,
                                   uint8_t *support, double *error, ew_progress_t *progress)
{
    if (!ph->have_data) return ew_fail(EW_ERR_ARG, "phase: no intensity data loaded");
    EW_TRY(ew_phaser_init(ph, support0, start));
    run_loops(ph, ph->cfg.loops, progress);
    double e = ew_phaser_finish(ph, density, support);
    if (error) *error = e;
    if (!isfinite(e))
        return ew_fail(EW_ERR_NUMERIC, "phase: start %llu diverged (Fourier error %g)", (unsigned long long)start, e);
    return EW_OK;
}

double ew_phaser_time_fft_pair(ew_phaser_t *ph, int reps)
{
    if (reps < 1) reps = 1;
    double total = 0.0;
    for (int r = 0; r < reps; r++) {
        memcpy(ph->w, ph->x, ph->nrows * (size_t)ph->np * sizeof(float));
        double t0 = ew_time_now();
        fftwf_execute(ph->fwd);
        fftwf_execute(ph->bwd);
        total += ew_time_now() - t0;
    }
    ph->w_is_x = 0;
    return total / reps;
}

/* ---- Initial support from the autocorrelation --------------------------- */

ew_status_t ew_phase_support_autocorr(const ew_rvol_t *intensity, const uint8_t *known, double sigma,
                                      double threshold, int nthreads, uint8_t *support)
{
    if (!intensity || !intensity->data || intensity->n < 4)
        return ew_fail(EW_ERR_ARG, "phase: autocorrelation needs an intensity volume with n >= 4");
    if (!(threshold > 0.0 && threshold < 1.0))
        return ew_fail(EW_ERR_ARG, "phase: autocorrelation threshold = %g is not in (0, 1)", threshold);
    if (!(sigma >= 0.0 && sigma <= 64.0))
        return ew_fail(EW_ERR_ARG, "phase: autocorrelation sigma = %g is not in [0, 64]", sigma);
    if (nthreads < 1) nthreads = 1;
    const int n = intensity->n, nh = n / 2 + 1, np = 2 * nh, c = n / 2;
    const size_t nrows = (size_t)n * n, nc = nrows * nh;
    float *half = ew_alloc_array(nc, sizeof(float));
    float *w = ew_calloc_array(nrows * np, sizeof(float));
    float *t = ew_alloc_array(nrows * np, sizeof(float));
    if (!half || !w || !t) {
        ew_free(half);
        ew_free(w);
        ew_free(t);
        return EW_ERR_NOMEM;
    }
    ew_status_t st = sym_intensity_half(intensity, known, half);
    fftwf_plan p = NULL;
    if (st == EW_OK) {
        p = ew_phase_plan_c2r(n, (fftwf_complex *)w, w, nthreads, FFTW_ESTIMATE);
        if (!p) st = ew_fail(EW_ERR_INTERNAL, "phase: FFTW could not plan a %d^3 transform", n);
    }
    if (st == EW_OK) {
        /* Fill unmeasured voxels with the mean measured intensity of their
         * shell (rounded |k|), below the innermost measured shell with that
         * shell's mean (flat extrapolation into the beam stop), beyond the
         * outermost with 0: without the low-q pedestal the autocorrelation
         * of beam-stopped data has a negative halo that cuts the support. */
        const int nsh = (int)ceil(sqrt(3.0) * (n / 2)) + 2;
        double *ssum = ew_calloc_array((size_t)nsh, sizeof(double));
        size_t *scnt = ew_calloc_array((size_t)nsh, sizeof(size_t));
        if (!ssum || !scnt) {
            ew_free(ssum);
            ew_free(scnt);
            ew_phase_plan_destroy(p);
            ew_free(half);
            ew_free(w);
            ew_free(t);
            return EW_ERR_NOMEM;
        }
        for (int kz = 0; kz < n; kz++)
            for (int ky = 0; ky < n; ky++)
                for (int kx = 0; kx < nh; kx++) {
                    size_t i = ((size_t)kz * n + ky) * nh + kx;
                    if (half[i] < 0.0f) continue;
                    int fz = ew_phase_signed(kz, n), fy = ew_phase_signed(ky, n);
                    int sh = (int)lround(sqrt((double)fz * fz + (double)fy * fy + (double)kx * kx));
                    ssum[sh] += half[i];
                    scnt[sh]++;
                }
        int inner = -1;
        for (int j = 0; j < nsh && inner < 0; j++)
            if (scnt[j]) inner = j;
        for (int kz = 0; kz < n; kz++)
            for (int ky = 0; ky < n; ky++)
                for (int kx = 0; kx < nh; kx++) {
                    size_t i = ((size_t)kz * n + ky) * nh + kx;
                    float v = half[i];
                    if (v < 0.0f) {
                        int fz = ew_phase_signed(kz, n), fy = ew_phase_signed(ky, n);
                        int sh = (int)lround(sqrt((double)fz * fz + (double)fy * fy + (double)kx * kx));
                        if (inner >= 0 && sh < inner) sh = inner;
                        v = scnt[sh] ? (float)(ssum[sh] / (double)scnt[sh]) : 0.0f;
                    }
                    w[2 * i] = v;
                    w[2 * i + 1] = 0.0f;
                }
        ew_free(ssum);
        ew_free(scnt);
        fftwf_execute(p);
        /* centred, compact layout in t */
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++)
                    t[((size_t)z * n + y) * n + x] =
                        w[((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * np + (size_t)((x - c + n) % n)];
        blur_padded(t, w, n, n, sigma, nthreads);
        float mx = -INFINITY;
        for (size_t i = 0; i < nrows * n; i++) mx = t[i] > mx ? t[i] : mx;
        if (!(mx > 0.0f)) {
            st = ew_fail(EW_ERR_NUMERIC, "phase: the autocorrelation has no positive maximum (all intensities 0?)");
        } else {
            float thr = (float)(threshold * mx);
            for (size_t i = 0; i < nrows * n; i++) support[i] = t[i] >= thr;
        }
    }
    ew_phase_plan_destroy(p);
    ew_free(half);
    ew_free(w);
    ew_free(t);
    return st;
}
