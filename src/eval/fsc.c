/* ewald eval: Fourier shell correlation, shell curves and their tables. */
#include "eval/fsc.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

ew_status_t ew_shell_curve_alloc(ew_shell_curve_t *c, int n, double ds, double shell_width)
{
    memset(c, 0, sizeof *c);
    int nshell = (int)floor((n / 2) / shell_width) + 1;
    c->s = ew_calloc_array((size_t)nshell, sizeof *c->s);
    c->value = ew_calloc_array((size_t)nshell, sizeof *c->value);
    c->count = ew_calloc_array((size_t)nshell, sizeof *c->count);
    if (!c->s || !c->value || !c->count) {
        ew_shell_curve_free(c);
        return EW_ERR_NOMEM;
    }
    c->nshell = nshell;
    for (int j = 0; j < nshell; j++) c->s[j] = j * shell_width * ds;
    return EW_OK;
}

int ew_shell_index(double r2, double shell_width, int nshell)
{
    int j = (int)floor(sqrt(r2) / shell_width + 0.5);
    return j < nshell ? j : -1;
}

void ew_shell_curve_free(ew_shell_curve_t *c)
{
    if (!c) return;
    ew_free(c->s);
    ew_free(c->value);
    ew_free(c->count);
    memset(c, 0, sizeof *c);
}

static ew_status_t check_args(const char *what, int n, double spacing, double shell_width)
{
    if (n < 4) return ew_fail(EW_ERR_ARG, "%s: volume size n = %d is below 4", what, n);
    if (!(spacing > 0.0) || !isfinite(spacing))
        return ew_fail(EW_ERR_ARG, "%s: voxel spacing %g is not positive", what, spacing);
    if (!(shell_width >= 1.0) || shell_width > n / 4.0)
        return ew_fail(EW_ERR_ARG, "%s: shell width %g voxels is outside [1, n/4 = %g]", what, shell_width,
                       n / 4.0);
    return EW_OK;
}

/* Accumulators per shell, turned into the FSC. */
typedef struct {
    double *ab, *aa, *bb;
} fsc_acc_t;

static ew_status_t acc_alloc(fsc_acc_t *a, int nshell)
{
    a->ab = ew_calloc_array((size_t)nshell, sizeof(double));
    a->aa = ew_calloc_array((size_t)nshell, sizeof(double));
    a->bb = ew_calloc_array((size_t)nshell, sizeof(double));
    if (!a->ab || !a->aa || !a->bb) {
        ew_free(a->ab);
        ew_free(a->aa);
        ew_free(a->bb);
        return EW_ERR_NOMEM;
    }
    return EW_OK;
}

static void acc_finish(fsc_acc_t *a, ew_shell_curve_t *c)
{
    for (int j = 0; j < c->nshell; j++) {
        double den = sqrt(a->aa[j] * a->bb[j]);
        c->value[j] = den > 0.0 ? a->ab[j] / den : 0.0;
    }
    ew_free(a->ab);
    ew_free(a->aa);
    ew_free(a->bb);
}

static int wrap_freq(int i, int n) { return i <= n / 2 ? i : i - n; }

ew_status_t ew_fsc_density(const float *a, const float *b, int n, double apix, double shell_width,
                           ew_shell_curve_t *out)
{
    memset(out, 0, sizeof *out);
    EW_TRY(check_args("FSC of densities", n, apix, shell_width));
    size_t nreal, nh = (size_t)(n / 2 + 1);
    EW_TRY(ew_size_mul3((size_t)n, (size_t)n, (size_t)n, &nreal));
    size_t ncplx = (size_t)n * n * nh;
    float *buf = ew_alloc_array(nreal, sizeof *buf);
    fftwf_complex *fa = ew_alloc_array(ncplx, sizeof *fa);
    fftwf_complex *fb = ew_alloc_array(ncplx, sizeof *fb);
    fsc_acc_t acc = {0};
    if (!buf || !fa || !fb || acc_alloc(&acc, (int)floor((n / 2) / shell_width) + 1) != EW_OK ||
        ew_shell_curve_alloc(out, n, 1.0 / (n * apix), shell_width) != EW_OK) {
        ew_free(buf);
        ew_free(fa);
        ew_free(fb);
        if (acc.ab) {
            ew_free(acc.ab);
            ew_free(acc.aa);
            ew_free(acc.bb);
        }
        ew_shell_curve_free(out);
        return ew_fail(EW_ERR_NOMEM, "FSC of densities: out of memory for n = %d", n);
    }
    fftwf_plan pa, pb;
#pragma omp critical(ew_fftw_planner)
    {
        pa = fftwf_plan_dft_r2c_3d(n, n, n, buf, fa, FFTW_ESTIMATE);
        pb = fftwf_plan_dft_r2c_3d(n, n, n, buf, fb, FFTW_ESTIMATE);
    }
    memcpy(buf, a, nreal * sizeof *buf);
    fftwf_execute(pa);
    memcpy(buf, b, nreal * sizeof *buf);
    fftwf_execute(pb);
#pragma omp critical(ew_fftw_planner)
    {
        fftwf_destroy_plan(pa);
        fftwf_destroy_plan(pb);
    }
    for (int z = 0; z < n; z++) {
        int kz = wrap_freq(z, n);
        for (int y = 0; y < n; y++) {
            int ky = wrap_freq(y, n);
            for (int x = 0; x < (int)nh; x++) {
                double r2 = (double)x * x + (double)ky * ky + (double)kz * kz;
                int j = ew_shell_index(r2, shell_width, out->nshell);
                if (j < 0) continue;
                double w = (x == 0 || (n % 2 == 0 && x == n / 2)) ? 1.0 : 2.0;
                size_t i = ((size_t)z * n + y) * nh + x;
                double ar = fa[i][0], ai = fa[i][1], br = fb[i][0], bi = fb[i][1];
                acc.ab[j] += w * (ar * br + ai * bi);
                acc.aa[j] += w * (ar * ar + ai * ai);
                acc.bb[j] += w * (br * br + bi * bi);
                out->count[j] += w;
            }
        }
    }
    acc_finish(&acc, out);
    ew_free(buf);
    ew_free(fa);
    ew_free(fb);
    return EW_OK;
}

/* Centred complex grids: voxel values read directly, shells about c. */
ew_status_t ew_fsc_fourier(const float *fa, const float *fb, int n, double ds, double shell_width,
                           ew_shell_curve_t *out)
{
    memset(out, 0, sizeof *out);
    EW_TRY(check_args("FSC of Fourier volumes", n, ds, shell_width));
    fsc_acc_t acc = {0};
    if (ew_shell_curve_alloc(out, n, ds, shell_width) != EW_OK) return EW_ERR_NOMEM;
    if (acc_alloc(&acc, out->nshell) != EW_OK) {
        ew_shell_curve_free(out);
        return EW_ERR_NOMEM;
    }
    const int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double r2 = (double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c);
                int j = ew_shell_index(r2, shell_width, out->nshell);
                if (j < 0) continue;
                size_t i = 2 * (((size_t)z * n + y) * n + x);
                double ar = fa[i], ai = fa[i + 1], br = fb[i], bi = fb[i + 1];
                if (!isfinite(ar + ai + br + bi)) continue;
                acc.ab[j] += ar * br + ai * bi;
                acc.aa[j] += ar * ar + ai * ai;
                acc.bb[j] += br * br + bi * bi;
                out->count[j] += 1.0;
            }
    acc_finish(&acc, out);
    return EW_OK;
}

/* FSC of sqrt(I) over the voxels both volumes measure; with centre, each
 * volume's shell mean of sqrt(I) is removed first (a second pass). */
static ew_status_t fsc_sqrt_intensity(const float *ia, const float *ib, int n, double ds, double shell_width,
                                      int centre, ew_shell_curve_t *out)
{
    memset(out, 0, sizeof *out);
    EW_TRY(check_args(centre ? "shell-centred FSC of intensities" : "FSC of intensities", n, ds, shell_width));
    fsc_acc_t acc = {0};
    if (ew_shell_curve_alloc(out, n, ds, shell_width) != EW_OK) return EW_ERR_NOMEM;
    double *mean = ew_calloc_array(2 * (size_t)out->nshell, sizeof *mean);
    if (!mean || acc_alloc(&acc, out->nshell) != EW_OK) {
        ew_free(mean);
        ew_shell_curve_free(out);
        return EW_ERR_NOMEM;
    }
    const int c = n / 2;
    /* pass 0 (centre only): shell means; last pass: the sums */
    for (int pass = centre ? 0 : 1; pass < 2; pass++) {
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    double r2 = (double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c);
                    int j = ew_shell_index(r2, shell_width, out->nshell);
                    if (j < 0) continue;
                    size_t i = ((size_t)z * n + y) * n + x;
                    if (!isfinite(ia[i]) || !isfinite(ib[i]) || ia[i] < 0.0f || ib[i] < 0.0f) continue;
                    double a = sqrt((double)ia[i]), b = sqrt((double)ib[i]);
                    if (pass == 0) {
                        mean[2 * j] += a;
                        mean[2 * j + 1] += b;
                        out->count[j] += 1.0;
                        continue;
                    }
                    a -= mean[2 * j];
                    b -= mean[2 * j + 1];
                    acc.ab[j] += a * b;
                    acc.aa[j] += a * a;
                    acc.bb[j] += b * b;
                    if (!centre) out->count[j] += 1.0;
                }
        if (pass == 0)
            for (int j = 0; j < out->nshell; j++)
                if (out->count[j] > 0) {
                    mean[2 * j] /= out->count[j];
                    mean[2 * j + 1] /= out->count[j];
                }
    }
    ew_free(mean);
    acc_finish(&acc, out);
    return EW_OK;
}

ew_status_t ew_fsc_intensity(const float *ia, const float *ib, int n, double ds, double shell_width,
                             ew_shell_curve_t *out)
{
    return fsc_sqrt_intensity(ia, ib, n, ds, shell_width, 0, out);
}

ew_status_t ew_fsc_intensity_centred(const float *ia, const float *ib, int n, double ds, double shell_width,
                                     ew_shell_curve_t *out)
{
    return fsc_sqrt_intensity(ia, ib, n, ds, shell_width, 1, out);
}

int ew_curve_crossing(const ew_shell_curve_t *c, double threshold, double *s_cross)
{
    int prev = -1;
    for (int j = 1; j < c->nshell; j++) {
        if (!(c->count[j] > 0.0)) continue;
        if (c->value[j] < threshold) {
            if (prev < 0) {
                *s_cross = 0.0;
                return -1;
            }
            double v0 = c->value[prev], v1 = c->value[j];
            double f = (v0 - threshold) / (v0 - v1);
            *s_cross = c->s[prev] + f * (c->s[j] - c->s[prev]);
            return 1;
        }
        prev = j;
    }
    *s_cross = prev >= 0 ? c->s[prev] : 0.0;
    return 0;
}

double ew_curve_resolution(const ew_shell_curve_t *c, double threshold)
{
    double s;
    int k = ew_curve_crossing(c, threshold, &s);
    return (k < 0 || !(s > 0.0)) ? INFINITY : 1.0 / s;
}

ew_status_t ew_curve_write_table(const char *path, const ew_shell_curve_t *c, const char *name,
                                 const double *thresholds, int nthreshold)
{
    FILE *fp;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &fp, &tmp));
    const char *nm = name ? name : "curve";
    for (int t = 0; t < nthreshold; t++) {
        double s;
        int k = ew_curve_crossing(c, thresholds[t], &s);
        if (k > 0)
            fprintf(fp, "# %s resolution at %g: %.4f A\n", nm, thresholds[t], 1.0 / s);
        else if (k == 0)
            fprintf(fp, "# %s resolution at %g: better than %.4f A (never crosses)\n", nm, thresholds[t],
                    s > 0 ? 1.0 / s : INFINITY);
        else
            fprintf(fp, "# %s resolution at %g: none (below from the first shell)\n", nm, thresholds[t]);
    }
    fprintf(fp, "# shell s_inv_A d_A %s n_voxels noise_1sigma\n", nm);
    for (int j = 0; j < c->nshell; j++) {
        double d = c->s[j] > 0 ? 1.0 / c->s[j] : INFINITY;
        double sig = c->count[j] > 0 ? 1.0 / sqrt(c->count[j]) : INFINITY;
        fprintf(fp, "%d %.6g %.6g %.6f %.0f %.6g\n", j, c->s[j], d, c->value[j], c->count[j], sig);
    }
    return ew_atomic_commit(fp, tmp, path);
}
