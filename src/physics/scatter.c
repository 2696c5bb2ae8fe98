/* ewald physics: structure factors by direct summation and by FFT. */
#include "physics/scatter.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* ---------------- scatterers ---------------- */

void ew_atoms_free(ew_atoms_t *a)
{
    if (!a) return;
    ew_free(a->xyz);
    ew_free(a->weight);
    ew_free(a->beta_b);
    ew_free(a->species);
    ew_free(a->ff);
    memset(a, 0, sizeof *a);
}

static ew_status_t atoms_init(ew_atoms_t *a, size_t n, const float *xyz, const uint8_t *z, const int8_t *charge,
                              const float *occ, const float *bfac, const ew_atoms_options_t *opts,
                              const char *source)
{
    EW_ASSERT(a != NULL);
    memset(a, 0, sizeof *a);
    EW_ASSERT(n == 0 || (xyz != NULL && z != NULL));
    ew_atoms_options_t o = {0};
    if (opts) o = *opts;
    size_t n3;
    EW_TRY(ew_size_mul(n, 3, &n3));
    a->xyz = ew_alloc_array(n3, sizeof(double));
    a->weight = ew_alloc_array(n, sizeof(double));
    a->beta_b = ew_alloc_array(n, sizeof(double));
    a->species = ew_alloc_array(n, sizeof(int));
    a->ff = ew_alloc_array(256, sizeof(ew_formfactor_t));
    if (!a->xyz || !a->weight || !a->beta_b || !a->species || !a->ff) {
        ew_atoms_free(a);
        return ew_fail(EW_ERR_NOMEM, "%s: cannot allocate scatterers for %zu atoms", source, n);
    }
    a->n = n;
    int warned = 0;
    for (size_t j = 0; j < n; j++) {
        int zz = z[j], q = (o.use_ions && charge) ? charge[j] : 0;
        int sp = -1;
        for (int k = 0; k < a->n_species; k++)
            if (a->ff[k].z == zz && a->ff[k].charge == q) sp = k;
        if (sp < 0) {
            ew_formfactor_t f;
            ew_status_t st = ew_formfactor_lookup(zz, q, &f);
            if (st != EW_OK && q != 0) {
                if (!warned)
                    ew_warn("%s: no form factor for Z = %d with charge %+d (atom %zu); using the neutral atom",
                            source, zz, q, j);
                warned = 1;
                q = 0;
                for (int k = 0; k < a->n_species; k++)
                    if (a->ff[k].z == zz && a->ff[k].charge == 0) sp = k;
                if (sp < 0) st = ew_formfactor_lookup(zz, 0, &f);
                else st = EW_OK;
            }
            if (st != EW_OK) {
                ew_atoms_free(a);
                return ew_fail_context(st, "%s: atom %zu", source, j);
            }
            if (sp < 0) {
                if (a->n_species == 256) {
                    ew_atoms_free(a);
                    return ew_fail(EW_ERR_RANGE, "%s: more than 256 distinct scatterer species", source);
                }
                sp = a->n_species++;
                a->ff[sp] = f;
            }
        }
        a->species[j] = sp;
        for (int k = 0; k < 3; k++) {
            double v = xyz[3 * j + k];
            if (!isfinite(v)) {
                ew_atoms_free(a);
                return ew_fail(EW_ERR_ARG, "%s: atom %zu has a non-finite coordinate", source, j);
            }
            a->xyz[3 * j + k] = v;
        }
        double w = (occ && !o.ignore_occupancy) ? occ[j] : 1.0;
        double bb = (o.use_bfactor && bfac) ? bfac[j] / 4.0 : 0.0;
        if (!(w >= 0.0 && w <= 1e6) || !(bb >= 0.0 && bb < 1e6)) {
            ew_atoms_free(a);
            return ew_fail(EW_ERR_ARG, "%s: atom %zu has occupancy %g or B %g out of range", source, j, w,
                           bb * 4.0);
        }
        a->weight[j] = w;
        a->beta_b[j] = bb;
        a->electrons += w * ew_formfactor_forward(&a->ff[sp]);
    }
    return EW_OK;
}

ew_status_t ew_atoms_init(ew_atoms_t *a, size_t n, const float *xyz, const uint8_t *z, const int8_t *charge,
                          const float *occupancy, const float *bfactor, const ew_atoms_options_t *opts)
{
    return atoms_init(a, n, xyz, z, charge, occupancy, bfactor, opts, "atoms");
}

ew_status_t ew_atoms_from_structure(const ew_structure_t *s, const ew_atoms_options_t *opts, ew_atoms_t *a)
{
    EW_ASSERT(s != NULL);
    const char *src = s->source[0] ? s->source : "structure";
    if (s->n_atoms == 0) {
        memset(a, 0, sizeof *a);
        return ew_fail(EW_ERR_ARG, "%s: the structure has no atoms", src);
    }
    return atoms_init(a, s->n_atoms, s->xyz, s->z, s->charge, s->occupancy, s->b_factor, opts, src);
}

void ew_atoms_center(ew_atoms_t *a)
{
    double c[3] = {0, 0, 0}, wsum = 0;
    for (size_t j = 0; j < a->n; j++) {
        double w = a->weight[j] * ew_formfactor_forward(&a->ff[a->species[j]]);
        for (int k = 0; k < 3; k++) c[k] += w * a->xyz[3 * j + k];
        wsum += w;
    }
    if (!(wsum > 0)) return;
    for (size_t j = 0; j < a->n; j++)
        for (int k = 0; k < 3; k++) a->xyz[3 * j + k] -= c[k] / wsum;
}

double ew_atoms_radius(const ew_atoms_t *a)
{
    double r2 = 0;
    for (size_t j = 0; j < a->n; j++) {
        const double *p = a->xyz + 3 * j;
        double d = p[0] * p[0] + p[1] * p[1] + p[2] * p[2];
        if (d > r2) r2 = d;
    }
    return sqrt(r2);
}

/* ---------------- direct summation ---------------- */

/* cos and sin of 2 pi t for |t| < 2^50, branch-free so loops vectorize:
 * reduce to u in [-1/2, 1/2], Taylor series of the half angle x = pi u in
 * [-pi/2, pi/2] (error < 1e-16), then the double-angle formulas. */
#pragma omp declare simd
static inline void sincos2pi(double t, double *sn, double *cs)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52: rounds to the nearest integer */
    double u = t - ((t + magic) - magic);
    double x = EW_PI * u, x2 = x * x;
    double s = 1.0 / 121645100408832000.0;       /* 1/19! */
    s = s * -x2 + 1.0 / 355687428096000.0;       /* 1/17! */
    s = s * -x2 + 1.0 / 1307674368000.0;         /* 1/15! */
    s = s * -x2 + 1.0 / 6227020800.0;            /* 1/13! */
    s = s * -x2 + 1.0 / 39916800.0;              /* 1/11! */
    s = s * -x2 + 1.0 / 362880.0;
    s = s * -x2 + 1.0 / 5040.0;
    s = s * -x2 + 1.0 / 120.0;
    s = s * -x2 + 1.0 / 6.0;
    s = x - x * x2 * s;
    double c = 1.0 / 6402373705728000.0;         /* 1/18! */
    c = c * -x2 + 1.0 / 20922789888000.0;        /* 1/16! */
    c = c * -x2 + 1.0 / 87178291200.0;           /* 1/14! */
    c = c * -x2 + 1.0 / 479001600.0;             /* 1/12! */
    c = c * -x2 + 1.0 / 3628800.0;
    c = c * -x2 + 1.0 / 40320.0;
    c = c * -x2 + 1.0 / 720.0;
    c = c * -x2 + 1.0 / 24.0;
    c = c * -x2 + 0.5;
    c = 1.0 - x2 * c;
    *sn = 2.0 * s * c;
    *cs = c * c - s * s;
}

ew_status_t ew_scatter_direct(const ew_atoms_t *a, const float *s, size_t npts, double *F)
{
    EW_ASSERT(a != NULL && (npts == 0 || (s != NULL && F != NULL)));
    const size_t n = a->n;
    int nthreads = omp_get_max_threads();
    const size_t per = n + (size_t)a->n_species + 8; /* amplitudes, then species form factors */
    double *scratch = ew_alloc_array((size_t)nthreads * per, sizeof(double));
    if (!scratch) return ew_fail(EW_ERR_NOMEM, "direct structure factors: no scratch for %zu atoms", n);
    const double *xyz = a->xyz;
    int any_b = 0;
    for (size_t j = 0; j < n; j++) any_b |= a->beta_b[j] != 0.0;
#pragma omp parallel num_threads(nthreads)
    {
        double *amp = scratch + (size_t)omp_get_thread_num() * per;
        double *fsp = amp + n;
#pragma omp for schedule(dynamic, 4)
        for (size_t k = 0; k < npts; k++) {
            double sx = s[3 * k], sy = s[3 * k + 1], sz = s[3 * k + 2];
            double s2 = sx * sx + sy * sy + sz * sz;
            for (int t = 0; t < a->n_species; t++) fsp[t] = ew_formfactor_eval(&a->ff[t], sqrt(s2));
            for (size_t j = 0; j < n; j++) amp[j] = fsp[a->species[j]] * a->weight[j];
            if (any_b)
                for (size_t j = 0; j < n; j++) amp[j] *= exp(-a->beta_b[j] * s2);
            double re = 0.0, im = 0.0;
#pragma omp simd reduction(+ : re, im)
            for (size_t j = 0; j < n; j++) {
                double ph = sx * xyz[3 * j] + sy * xyz[3 * j + 1] + sz * xyz[3 * j + 2];
                double sn, cs;
                sincos2pi(ph, &sn, &cs);
                re += amp[j] * cs;
                im += amp[j] * sn;
            }
            F[2 * k] = re;
            F[2 * k + 1] = im;
        }
    }
    ew_free(scratch);
    return EW_OK;
}

ew_status_t ew_scatter_direct_intensity(const ew_atoms_t *a, const float *s, size_t npts, float *I)
{
    enum { CHUNK = 4096 };
    double *F = ew_alloc_array(2 * CHUNK, sizeof(double));
    if (!F) return ew_fail(EW_ERR_NOMEM, "direct intensities: no scratch");
    for (size_t k0 = 0; k0 < npts; k0 += CHUNK) {
        size_t m = npts - k0 < CHUNK ? npts - k0 : CHUNK;
        ew_status_t st = ew_scatter_direct(a, s + 3 * k0, m, F);
        if (st != EW_OK) {
            ew_free(F);
            return st;
        }
        for (size_t k = 0; k < m; k++) I[k0 + k] = (float)(F[2 * k] * F[2 * k] + F[2 * k + 1] * F[2 * k + 1]);
    }
    ew_free(F);
    return EW_OK;
}

ew_status_t ew_scatter_debye(const ew_atoms_t *a, const double *smag, size_t nk, double *out)
{
    const size_t n = a->n;
    double *amp = ew_alloc_array(n, sizeof(double));
    if (!amp) return ew_fail(EW_ERR_NOMEM, "Debye sum: no scratch for %zu atoms", n);
    for (size_t k = 0; k < nk; k++) {
        double sm = smag[k], s2 = sm * sm;
        for (size_t j = 0; j < n; j++)
            amp[j] = ew_formfactor_eval(&a->ff[a->species[j]], sm) * a->weight[j] * exp(-a->beta_b[j] * s2);
        double tot = 0.0;
#pragma omp parallel for reduction(+ : tot) schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            double acc = 0.5 * amp[i]; /* the diagonal, halved as the sum is doubled */
            for (size_t j = i + 1; j < n; j++) {
                double dx = a->xyz[3 * i] - a->xyz[3 * j], dy = a->xyz[3 * i + 1] - a->xyz[3 * j + 1],
                       dz = a->xyz[3 * i + 2] - a->xyz[3 * j + 2];
                double x = 2.0 * EW_PI * sm * sqrt(dx * dx + dy * dy + dz * dz);
                acc += amp[j] * (x > 1e-8 ? sin(x) / x : 1.0);
            }
            tot += 2.0 * amp[i] * acc;
        }
        out[k] = tot;
    }
    ew_free(amp);
    return EW_OK;
}

/* ---------------- the fast volume path ---------------- */

/* Smallest m >= n whose only prime factors are 2, 3, 5, 7 (fast FFTs). */
static int good_fft_size(int n)
{
    for (int m = n;; m++) {
        int r = m;
        while (r % 2 == 0) r /= 2;
        while (r % 3 == 0) r /= 3;
        while (r % 5 == 0) r /= 5;
        while (r % 7 == 0) r /= 7;
        if (r == 1) return m;
    }
}

static int fftw_threads_ready;
enum { EW_SCATTER_FFT_THREADS = 4 };

ew_status_t ew_scatter_volume(const ew_atoms_t *a, ew_rvol_t *I, float *F_re, float *F_im,
                              const ew_scatter_volume_options_t *opts)
{
    EW_ASSERT(a != NULL && I != NULL && I->data != NULL);
    ew_scatter_volume_options_t o = {0};
    if (opts) o = *opts;
    if (o.oversample == 0) o.oversample = 2;
    if (o.tol == 0.0) o.tol = 1e-8;
    if (o.oversample < 2 || o.oversample > 4)
        return ew_fail(EW_ERR_ARG, "structure-factor volume: oversample = %d is not in 2..4", o.oversample);
    if (!(o.tol > 0.0 && o.tol < 0.1))
        return ew_fail(EW_ERR_ARG, "structure-factor volume: tol = %g is not in (0, 0.1)", o.tol);
    int nthreads = o.threads > 0 ? o.threads : omp_get_max_threads();

    const int n = I->n, c = n / 2;
    const double ds = I->ds;
    const int N = good_fft_size(o.oversample * n);
    const double L = 1.0 / ds, h = L / N;       /* periodic box side and real-space spacing, A */
    const double s_m = (double)c * ds;          /* largest |s component| on the output grid */
    const double s_alias = N * ds - s_m;        /* nearest alias of such a component */
    const double lntol = -log(o.tol);
    /* broadening so that the alias of every output point is suppressed by tol */
    const double beta_x = lntol / (s_alias * s_alias - s_m * s_m);
    const int Nh = N / 2 + 1, Np = 2 * Nh;      /* in-place r2c: padded last axis */

    double beta_max = 0.0;
    for (int t = 0; t < a->n_species; t++)
        for (int g = 0; g < 5; g++)
            if (a->ff[t].beta[g] > beta_max) beta_max = a->ff[t].beta[g];
    double bb_max = 0.0;
    for (size_t j = 0; j < a->n; j++)
        if (a->beta_b[j] > bb_max) bb_max = a->beta_b[j];
    beta_max += bb_max + beta_x;
    if (2 * (int)ceil(sqrt(beta_max * lntol) / EW_PI * N * ds) + 1 > 511)
        return ew_fail(EW_ERR_RANGE,
                       "structure-factor volume: Gaussians of %g A^2 span more than 511 grid points "
                       "(spacing %g A); use a smaller oversample or a coarser tol",
                       beta_max, h);
    size_t total;
    EW_TRY(ew_size_mul3((size_t)N, (size_t)N, (size_t)Np, &total));
    double *grid = fftw_malloc(total * sizeof(double));
    if (!grid) return ew_fail(EW_ERR_NOMEM, "structure-factor volume: cannot allocate the %d^3 FFT grid", N);
    memset(grid, 0, total * sizeof(double));

    /* ---- spread: each thread owns a block of z planes ---- */
    const size_t natoms = a->n;
    const double inv_h = 1.0 / h;
#pragma omp parallel num_threads(nthreads)
    {
        int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        int z0 = (int)((long)N * tid / nt), z1 = (int)((long)N * (tid + 1) / nt);
        enum { MAXW = 512 };
        double ex[MAXW], ey[MAXW], ez[MAXW];
        int ix[MAXW], iy[MAXW], iz[MAXW];
        for (size_t j = 0; j < natoms; j++) {
            const ew_formfactor_t *f = &a->ff[a->species[j]];
            for (int g = 0; g < 6; g++) {
                double amp = (g < 5 ? f->a[g] : f->c) * a->weight[j];
                if (amp == 0.0) continue;
                double beta = (g < 5 ? f->beta[g] : 0.0) + a->beta_b[j] + beta_x;
                double aa = EW_PI * EW_PI / beta;                 /* exp(-aa r^2) */
                double norm = amp * pow(aa / EW_PI, 1.5) * h * h * h; /* times the cell volume */
                double rc = sqrt(beta * lntol) / EW_PI;           /* exp(-aa rc^2) = tol */
                /* a footprint wider than the box wraps onto itself, which
                 * adds the periodic images as it should */
                int w = (int)ceil(rc * inv_h);
                int m = 2 * w + 1;
                double pc[3];
                int base[3];
                for (int k = 0; k < 3; k++) {
                    double p = a->xyz[3 * j + k] * inv_h; /* grid units */
                    base[k] = (int)floor(p) - w;
                    pc[k] = p;
                }
                /* z footprint inside this thread's planes? */
                int any = 0;
                for (int t = 0; t < m; t++) {
                    int zz = ((base[2] + t) % N + N) % N;
                    iz[t] = zz;
                    any |= zz >= z0 && zz < z1;
                }
                if (!any) continue;
                for (int t = 0; t < m; t++) {
                    double dx = (base[0] + t - pc[0]) * h, dy = (base[1] + t - pc[1]) * h,
                           dz = (base[2] + t - pc[2]) * h;
                    ex[t] = exp(-aa * dx * dx);
                    ey[t] = exp(-aa * dy * dy);
                    ez[t] = norm * exp(-aa * dz * dz);
                    ix[t] = ((base[0] + t) % N + N) % N;
                    iy[t] = ((base[1] + t) % N + N) % N;
                }
                for (int tz = 0; tz < m; tz++) {
                    if (iz[tz] < z0 || iz[tz] >= z1) continue;
                    for (int ty = 0; ty < m; ty++) {
                        double wzy = ez[tz] * ey[ty];
                        double *row = grid + ((size_t)iz[tz] * N + (size_t)iy[ty]) * Np;
                        for (int tx = 0; tx < m; tx++) row[ix[tx]] += wzy * ex[tx];
                    }
                }
            }
        }
    }

    /* ---- FFT (planning is not thread-safe: one at a time) ---- */
    fftw_plan plan;
#pragma omp critical(ew_fftw_planner)
    {
        if (!fftw_threads_ready) fftw_threads_ready = fftw_init_threads() ? 1 : -1;
        /* a fixed thread count: the plan, and so every rounding, is the same
         * on every machine and for every OpenMP setting */
        if (fftw_threads_ready > 0) fftw_plan_with_nthreads(EW_SCATTER_FFT_THREADS);
        plan = fftw_plan_dft_r2c_3d(N, N, N, grid, (fftw_complex *)grid, FFTW_ESTIMATE);
    }
    if (!plan) {
        fftw_free(grid);
        return ew_fail(EW_ERR_INTERNAL, "structure-factor volume: FFTW could not plan a %d^3 transform", N);
    }
    fftw_execute(plan);
#pragma omp critical(ew_fftw_planner)
    fftw_destroy_plan(plan);

    /* ---- sample onto the output grid, undoing the broadening ---- */
    const fftw_complex *X = (const fftw_complex *)grid;
#pragma omp parallel for num_threads(nthreads) collapse(2) schedule(static)
    for (int kz = 0; kz < n; kz++) {
        for (int ky = 0; ky < n; ky++) {
            int mz = kz - c, my = ky - c;
            for (int kx = 0; kx < n; kx++) {
                int mx = kx - c;
                /* FFTW's forward sign gives conj(F) of our exp(+2 pi i s.r)
                 * convention; for mx < 0 use F(-s) = conj(F(s)). */
                int sgn = mx < 0 ? -1 : 1;
                int ax = sgn * mx, ay = ((sgn * my) % N + N) % N, az = ((sgn * mz) % N + N) % N;
                const double *v = X[((size_t)az * N + (size_t)ay) * Nh + (size_t)ax];
                double s2 = ((double)mx * mx + (double)my * my + (double)mz * mz) * ds * ds;
                double dec = exp(beta_x * s2);
                double re = v[0] * dec, im = -v[1] * dec; /* conj: our sign convention */
                if (sgn < 0) im = -im;
                size_t idx = ((size_t)kz * n + (size_t)ky) * n + (size_t)kx;
                I->data[idx] = (float)(re * re + im * im);
                if (F_re) F_re[idx] = (float)re;
                if (F_im) F_im[idx] = (float)im;
            }
        }
    }
    fftw_free(grid);
    return EW_OK;
}
