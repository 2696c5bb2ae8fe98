/* ewald physics: amorphous-ice potential and thickness fields (see ice.h). */
#include "physics/ice.h"

#include <math.h>
#include <string.h>

#include "physics/peng.h"

void ew_ice_params_default(ew_ice_params_t *p)
{
    p->thickness = 300.0;
    p->thickness_rel_sd = 0.1;
    p->thickness_corr = 2000.0;
    p->density = 0.0314;
    p->inelastic_mfp = 3500.0;
}

ew_status_t ew_ice_params_check(const ew_ice_params_t *p)
{
    if (!(p->thickness >= 0.0) || !isfinite(p->thickness))
        return ew_fail(EW_ERR_ARG, "ice: thickness = %g A is not a non-negative number", p->thickness);
    if (!(p->thickness_rel_sd >= 0.0) || !isfinite(p->thickness_rel_sd))
        return ew_fail(EW_ERR_ARG, "ice: relative thickness spread = %g is not >= 0", p->thickness_rel_sd);
    if (!(p->thickness_corr > 0.0))
        return ew_fail(EW_ERR_ARG, "ice: thickness correlation length = %g A is not positive", p->thickness_corr);
    if (!(p->density > 0.0) || !isfinite(p->density))
        return ew_fail(EW_ERR_ARG, "ice: density = %g molecules/A^3 is not positive", p->density);
    if (!(p->inelastic_mfp >= 0.0))
        return ew_fail(EW_ERR_ARG, "ice: inelastic mean free path = %g A is negative", p->inelastic_mfp);
    return EW_OK;
}

double ew_ice_structure_factor(double s)
{
    const double S0 = 0.03, w0 = 0.12, A1 = 1.38, s1 = 0.269, w1 = 0.02, A2 = 0.2, s2 = 0.477, w2 = 0.06;
    double d1 = s - s1, d2 = s - s2;
    return 1.0 - (1.0 - S0) * exp(-s * s / (2.0 * w0 * w0)) + A1 * exp(-d1 * d1 / (2.0 * w1 * w1)) +
           A2 * exp(-d2 * d2 / (2.0 * w2 * w2));
}

double ew_ice_molecule_potential(double s)
{
    return EW_PENG_C_VA2 * (ew_peng_fe(8, 0.5 * s) + 2.0 * ew_peng_fe(1, 0.5 * s));
}

double ew_ice_mean_potential(const ew_ice_params_t *p)
{
    return p->density * ew_ice_molecule_potential(0.0);
}

double ew_ice_psd(const ew_ice_params_t *p, double s)
{
    double f = ew_ice_molecule_potential(s);
    return p->density * f * f * ew_ice_structure_factor(s);
}

static double sinc(double x)
{
    return fabs(x) < 1e-8 ? 1.0 : sin(x) / x;
}

ew_status_t ew_ice_synth_init(ew_ice_synth_t *g, const ew_ice_params_t *p, int nx, int ny, double pixel,
                              int measure)
{
    memset(g, 0, sizeof *g);
    if (nx < 2 || ny < 2 || !(pixel > 0.0))
        return ew_fail(EW_ERR_ARG, "ice field: size %d x %d, pixel %g A is invalid", nx, ny, pixel);
    int nh = nx / 2 + 1;
    size_t nhalf;
    EW_TRY(ew_size_mul((size_t)nh, (size_t)ny, &nhalf));
    g->nx = nx;
    g->ny = ny;
    g->pixel = pixel;
    g->amp = ew_alloc_array(nhalf, sizeof(float));
    g->buf = ew_alloc_array(nhalf, sizeof(fftwf_complex));
    float *tmp = ew_alloc_array((size_t)nx * ny, sizeof(float));
    if (!g->amp || !g->buf || !tmp) {
        ew_free(tmp);
        ew_ice_synth_free(g);
        return EW_ERR_NOMEM;
    }
#pragma omp critical(ew_fftw_planner)
    g->plan = fftwf_plan_dft_c2r_2d(ny, nx, g->buf, tmp, measure ? FFTW_MEASURE : FFTW_ESTIMATE);
    ew_free(tmp);
    if (!g->plan) {
        ew_ice_synth_free(g);
        return ew_fail(EW_ERR_INTERNAL, "ice field: FFTW could not plan a %d x %d c2r transform", nx, ny);
    }
    double n = (double)nx * ny;
    /* P(s) tabulated on a fine radial grid (it is smooth on the scale of 1e-4 1/A) */
    enum { NT = 8192 };
    double *tab = ew_alloc_array(NT + 2, sizeof(double));
    if (!tab) {
        ew_ice_synth_free(g);
        return EW_ERR_NOMEM;
    }
    double smax = sqrt(0.5) / pixel * 1.001, ds = smax / NT;
    for (int i = 0; i <= NT + 1; i++) tab[i] = ew_ice_psd(p, i * ds);
#pragma omp parallel for schedule(static) if((size_t)nx * ny >= ((size_t)1 << 16))
    for (int iy = 0; iy < ny; iy++) {
        int ky = iy <= ny / 2 ? iy : iy - ny;
        double sy = ky / (ny * pixel);
        for (int ix = 0; ix < nh; ix++) {
            double sx = ix / (nx * pixel);
            double sc = sinc(EW_PI * sx * pixel) * sinc(EW_PI * sy * pixel);
            double u = sqrt(sx * sx + sy * sy) / ds;
            int k = (int)u;
            if (k > NT) k = NT;
            double psd = tab[k] + (u - k) * (tab[k + 1] - tab[k]);
            double v = psd * sc * sc / (n * pixel * pixel);
            g->amp[(size_t)iy * nh + ix] = (float)sqrt(v > 0.0 ? v : 0.0);
        }
    }
    ew_free(tab);
    g->amp[0] = 0.0f;
    return EW_OK;
}

void ew_ice_synth_field(ew_ice_synth_t *g, uint64_t seed, uint64_t stream0, float *out)
{
    int nx = g->nx, ny = g->ny, nh = nx / 2 + 1;
    const double rs2 = sqrt(0.5);
#pragma omp parallel for schedule(static) if((size_t)nx * ny >= ((size_t)1 << 16))
    for (int iy = 0; iy < ny; iy++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, stream0 + (uint64_t)iy);
        for (int ix = 0; ix < nh; ix++) {
            size_t i = (size_t)iy * nh + ix;
            double a = g->amp[i] * rs2;
            g->buf[i][0] = (float)(a * ew_rng_normal(&r));
            g->buf[i][1] = (float)(a * ew_rng_normal(&r));
        }
    }
    /* Hermitian symmetry on the columns kx = 0 and kx = nx/2 (even nx). */
    int cols[2] = {0, nx % 2 == 0 ? nx / 2 : -1};
    for (int c = 0; c < 2; c++) {
        int ix = cols[c];
        if (ix < 0) continue;
        for (int iy = ny / 2 + 1; iy < ny; iy++) {
            size_t i = (size_t)iy * nh + ix, j = (size_t)(ny - iy) * nh + ix;
            g->buf[i][0] = g->buf[j][0];
            g->buf[i][1] = -g->buf[j][1];
        }
        int rows[2] = {0, ny % 2 == 0 ? ny / 2 : -1};
        for (int k = 0; k < 2; k++) {
            if (rows[k] < 0) continue;
            size_t i = (size_t)rows[k] * nh + ix;
            g->buf[i][0] = (float)(g->buf[i][0] * sqrt(2.0));
            g->buf[i][1] = 0.0f;
        }
    }
    fftwf_execute_dft_c2r(g->plan, g->buf, out);
}

void ew_ice_synth_free(ew_ice_synth_t *g)
{
    if (!g) return;
    if (g->plan) {
#pragma omp critical(ew_fftw_planner)
        fftwf_destroy_plan(g->plan);
    }
    ew_free(g->amp);
    ew_free(g->buf);
    memset(g, 0, sizeof *g);
}

/* Uniform cubic B-spline weights at fraction f in [0, 1). */
static void bspline_w(double f, double w[4])
{
    double f2 = f * f, f3 = f2 * f;
    w[0] = (1.0 - 3.0 * f + 3.0 * f2 - f3) / 6.0;
    w[1] = (4.0 - 6.0 * f2 + 3.0 * f3) / 6.0;
    w[2] = (1.0 + 3.0 * f + 3.0 * f2 - 3.0 * f3) / 6.0;
    w[3] = f3 / 6.0;
}

ew_status_t ew_ice_thickness_field(const ew_ice_params_t *p, int nx, int ny, double pixel, const float *weight,
                                   int wnx, int wny, ew_rng_t *r, float *t)
{
    EW_TRY(ew_ice_params_check(p));
    if (weight) {
        if (wnx < 1 || wny < 1) return ew_fail(EW_ERR_ARG, "ice weight map size %d x %d is invalid", wnx, wny);
        double sum = 0.0;
        for (size_t i = 0; i < (size_t)wnx * wny; i++) {
            if (!isfinite(weight[i]) || weight[i] < 0.0f)
                return ew_fail(EW_ERR_ARG, "ice weight map: value %g at index %zu is not a non-negative number",
                               weight[i], i);
            sum += weight[i];
        }
        if (!(sum > 0.0)) return ew_fail(EW_ERR_ARG, "ice weight map is all zero");
        double scale = p->thickness * (double)wnx * wny / sum;
#pragma omp parallel for schedule(static) if((size_t)nx * ny >= ((size_t)1 << 16))
        for (int iy = 0; iy < ny; iy++) {
            double v = (iy + 0.5) * wny / ny - 0.5;
            int y0 = (int)floor(v);
            double fy = v - y0;
            int ya = y0 < 0 ? 0 : (y0 >= wny ? wny - 1 : y0), yb = y0 + 1 >= wny ? wny - 1 : (y0 + 1 < 0 ? 0 : y0 + 1);
            for (int ix = 0; ix < nx; ix++) {
                double u = (ix + 0.5) * wnx / nx - 0.5;
                int x0 = (int)floor(u);
                double fx = u - x0;
                int xa = x0 < 0 ? 0 : (x0 >= wnx ? wnx - 1 : x0),
                    xb = x0 + 1 >= wnx ? wnx - 1 : (x0 + 1 < 0 ? 0 : x0 + 1);
                double w = (1 - fy) * ((1 - fx) * weight[(size_t)ya * wnx + xa] + fx * weight[(size_t)ya * wnx + xb]) +
                           fy * ((1 - fx) * weight[(size_t)yb * wnx + xa] + fx * weight[(size_t)yb * wnx + xb]);
                t[(size_t)iy * nx + ix] = (float)(scale * w);
            }
        }
        return EW_OK;
    }
    double lp = p->thickness_corr / pixel; /* knot spacing in pixels */
    int kx = (int)ceil(nx / lp) + 4, ky = (int)ceil(ny / lp) + 4;
    double *knot = ew_alloc_array((size_t)kx * ky, sizeof(double));
    if (!knot) return EW_ERR_NOMEM;
    for (size_t i = 0; i < (size_t)kx * ky; i++) knot[i] = ew_rng_normal(r);
    /* per-column weights, then per row: interpolate the knots along y, then along x */
    int *ci = ew_alloc_array((size_t)nx, sizeof(int));
    double *cw = ew_alloc_array((size_t)nx, 5 * sizeof(double));
    if (!ci || !cw) {
        ew_free(ci);
        ew_free(cw);
        ew_free(knot);
        return EW_ERR_NOMEM;
    }
    for (int ix = 0; ix < nx; ix++) {
        double u = (ix + 0.5) / lp;
        ci[ix] = (int)floor(u);
        bspline_w(u - ci[ix], cw + 5 * ix);
        double vx = 0.0;
        for (int a = 0; a < 4; a++) vx += cw[5 * ix + a] * cw[5 * ix + a];
        cw[5 * ix + 4] = 1.0 / sqrt(vx);
    }
    int fail = 0;
#pragma omp parallel if((size_t)nx * ny >= ((size_t)1 << 16))
    {
        double *row = ew_alloc_array((size_t)kx, sizeof(double));
        if (!row) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int iy = 0; iy < ny; iy++) {
            if (!row) continue;
            double v = (iy + 0.5) / lp;
            int j = (int)floor(v);
            double wy[4], vy = 0.0;
            bspline_w(v - j, wy);
            for (int a = 0; a < 4; a++) vy += wy[a] * wy[a];
            for (int i = 0; i < kx; i++) {
                double acc = 0.0;
                for (int b = 0; b < 4; b++) acc += wy[b] * knot[(size_t)(j + b) * kx + i];
                row[i] = acc / sqrt(vy);
            }
            for (int ix = 0; ix < nx; ix++) {
                const double *w = cw + 5 * ix;
                const double *k = row + ci[ix];
                double z = (w[0] * k[0] + w[1] * k[1] + w[2] * k[2] + w[3] * k[3]) * w[4];
                double th = p->thickness * (1.0 + p->thickness_rel_sd * z);
                t[(size_t)iy * nx + ix] = (float)(th > 0.0 ? th : 0.0);
            }
        }
        ew_free(row);
    }
    ew_free(ci);
    ew_free(cw);
    if (fail) {
        ew_free(knot);
        return ew_fail(EW_ERR_NOMEM, "ice thickness: out of memory for a row of %d knots", kx);
    }
    ew_free(knot);
    return EW_OK;
}

ew_status_t ew_ice_weight_from_micrograph(const float *img, int nx, int ny, double pixel, double lowpass,
                                          int levels, double span, float *weight)
{
    if (nx < 2 || ny < 2 || !(pixel > 0.0) || !(lowpass >= 0.0) || levels < 2 || !(span >= 0.0))
        return ew_fail(EW_ERR_ARG,
                       "ice weights: size %d x %d, pixel %g A, low-pass %g A, levels %d, span %g: invalid", nx, ny,
                       pixel, lowpass, levels, span);
    size_t n = (size_t)nx * ny, nh = (size_t)(nx / 2 + 1) * ny;
    float *sm = ew_alloc_array(n, sizeof(float));
    fftwf_complex *f = ew_alloc_array(nh, sizeof(fftwf_complex));
    double *lsum = ew_calloc_array((size_t)levels, sizeof(double));
    size_t *lcnt = ew_calloc_array((size_t)levels, sizeof(size_t));
    enum { NB = 65536 };
    size_t *hist = ew_calloc_array(NB, sizeof(size_t));
    int *lev_of_bin = ew_alloc_array(NB, sizeof(int));
    ew_status_t st = EW_OK;
    fftwf_plan pf = NULL, pb = NULL;
    if (!sm || !f || !lsum || !lcnt || !hist || !lev_of_bin) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(img[i])) {
            st = ew_fail(EW_ERR_ARG, "ice weights: micrograph value at index %zu is not finite", i);
            goto done;
        }
        sm[i] = img[i];
    }
#pragma omp critical(ew_fftw_planner)
    {
        pf = fftwf_plan_dft_r2c_2d(ny, nx, sm, f, FFTW_ESTIMATE);
        pb = fftwf_plan_dft_c2r_2d(ny, nx, f, sm, FFTW_ESTIMATE);
    }
    if (!pf || !pb) {
        st = ew_fail(EW_ERR_INTERNAL, "ice weights: FFTW could not plan %d x %d transforms", nx, ny);
        goto done;
    }
    fftwf_execute(pf);
    int nhx = nx / 2 + 1;
    for (int iy = 0; iy < ny; iy++) {
        int ky = iy <= ny / 2 ? iy : iy - ny;
        double sy = ky / (ny * pixel);
        for (int ix = 0; ix < nhx; ix++) {
            double sx = ix / (nx * pixel);
            double g = exp(-2.0 * EW_PI * EW_PI * lowpass * lowpass * (sx * sx + sy * sy)) / (double)n;
            f[(size_t)iy * nhx + ix][0] *= (float)g;
            f[(size_t)iy * nhx + ix][1] *= (float)g;
        }
    }
    fftwf_execute(pb);
    float lo = sm[0], hi = sm[0];
    for (size_t i = 0; i < n; i++) {
        if (sm[i] < lo) lo = sm[i];
        if (sm[i] > hi) hi = sm[i];
    }
    if (!(hi > lo)) {
        for (size_t i = 0; i < n; i++) weight[i] = 1.0f;
        goto done;
    }
    double scale = (NB - 1) / ((double)hi - lo);
    for (size_t i = 0; i < n; i++) hist[(int)((sm[i] - lo) * scale)]++;
    size_t cum = 0;
    for (int b = 0; b < NB; b++) {
        int l = (int)((double)(cum + hist[b] / 2) * levels / n);
        lev_of_bin[b] = l >= levels ? levels - 1 : l;
        cum += hist[b];
    }
    for (size_t i = 0; i < n; i++) {
        int l = lev_of_bin[(int)((sm[i] - lo) * scale)];
        lsum[l] += sm[i];
        lcnt[l]++;
    }
    double lmin = INFINITY, lmax = -INFINITY, lmean = 0.0;
    for (int l = 0; l < levels; l++) {
        if (!lcnt[l]) continue;
        lsum[l] /= (double)lcnt[l];
        if (lsum[l] < lmin) lmin = lsum[l];
        if (lsum[l] > lmax) lmax = lsum[l];
        lmean += lsum[l] * (double)lcnt[l];
    }
    lmean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double L = lsum[lev_of_bin[(int)((sm[i] - lo) * scale)]];
        weight[i] = (float)(lmax > lmin ? 1.0 + span * (lmean - L) / (lmax - lmin) : 1.0);
    }
done:
    if (pf || pb) {
#pragma omp critical(ew_fftw_planner)
        {
            if (pf) fftwf_destroy_plan(pf);
            if (pb) fftwf_destroy_plan(pb);
        }
    }
    ew_free(sm);
    ew_free(f);
    ew_free(lsum);
    ew_free(lcnt);
    ew_free(hist);
    ew_free(lev_of_bin);
    return st;
}
