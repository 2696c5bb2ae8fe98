/* ewald eval: phase-retrieval transfer function. */
#include "eval/prtf.h"

#include <math.h>
#include <string.h>

ew_status_t ew_prtf_acc_init(ew_prtf_acc_t *a, int n)
{
    memset(a, 0, sizeof *a);
    if (n < 4) return ew_fail(EW_ERR_ARG, "PRTF: volume size n = %d is below 4", n);
    size_t nvox;
    EW_TRY(ew_size_mul3((size_t)n, (size_t)n, (size_t)n, &nvox));
    a->acc = ew_calloc_array(nvox, 3 * sizeof(double));
    if (!a->acc) return EW_ERR_NOMEM;
    a->n = n;
    return EW_OK;
}

void ew_prtf_acc_add(ew_prtf_acc_t *a, const float *vol, double phi)
{
    EW_ASSERT(a && a->acc && vol);
    const size_t nvox = (size_t)a->n * a->n * a->n;
    const double cr = cos(phi), ci = sin(phi);
    double *acc = a->acc;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nvox; i++) {
        double re = vol[2 * i], im = vol[2 * i + 1];
        acc[3 * i] += re * cr - im * ci;
        acc[3 * i + 1] += re * ci + im * cr;
        acc[3 * i + 2] += re * re + im * im;
    }
    a->count++;
}

ew_status_t ew_prtf_acc_finish(const ew_prtf_acc_t *a, double ds, double shell_width, ew_shell_curve_t *out)
{
    memset(out, 0, sizeof *out);
    if (!a->acc || a->count < 1) return ew_fail(EW_ERR_ARG, "PRTF: no reconstruction was added");
    const int n = a->n;
    if (!(ds > 0.0)) return ew_fail(EW_ERR_ARG, "PRTF: voxel spacing %g is not positive", ds);
    if (!(shell_width >= 1.0) || shell_width > n / 4.0)
        return ew_fail(EW_ERR_ARG, "PRTF: shell width %g voxels is outside [1, n/4 = %g]", shell_width, n / 4.0);
    EW_TRY(ew_shell_curve_alloc(out, n, ds, shell_width));
    const int c = n / 2;
    const double K = a->count;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double r2 = (double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c);
                int j = ew_shell_index(r2, shell_width, out->nshell);
                if (j < 0) continue;
                const double *v = a->acc + 3 * (((size_t)z * n + y) * n + x);
                if (!isfinite(v[0] + v[1] + v[2]) || !(v[2] > 0.0)) continue;
                /* |(1/K) sum F e^{i phi}| / sqrt((1/K) sum |F|^2) */
                out->value[j] += hypot(v[0], v[1]) / K / sqrt(v[2] / K);
                out->count[j] += 1.0;
            }
    for (int j = 0; j < out->nshell; j++)
        if (out->count[j] > 0.0) out->value[j] /= out->count[j];
    return EW_OK;
}

void ew_prtf_acc_free(ew_prtf_acc_t *a)
{
    if (!a) return;
    ew_free(a->acc);
    memset(a, 0, sizeof *a);
}

ew_status_t ew_prtf(const float *const *vols, int nvol, int n, double ds, double shell_width,
                    int align_phase, ew_shell_curve_t *out)
{
    memset(out, 0, sizeof *out);
    if (nvol < 2) return ew_fail(EW_ERR_ARG, "PRTF: %d reconstructions given, need at least 2", nvol);
    if (n < 4) return ew_fail(EW_ERR_ARG, "PRTF: volume size n = %d is below 4", n);
    if (!(ds > 0.0)) return ew_fail(EW_ERR_ARG, "PRTF: voxel spacing %g is not positive", ds);
    if (!(shell_width >= 1.0) || shell_width > n / 4.0)
        return ew_fail(EW_ERR_ARG, "PRTF: shell width %g voxels is outside [1, n/4 = %g]", shell_width, n / 4.0);
    ew_prtf_acc_t a;
    EW_TRY(ew_prtf_acc_init(&a, n));
    const size_t nvox = (size_t)n * n * n;
    for (int k = 0; k < nvol; k++) {
        double phi = 0.0; /* phi_k = -arg sum F_k conj(F_0) */
        if (align_phase && k > 0) {
            double re = 0.0, im = 0.0;
            const float *f = vols[k], *g = vols[0];
#pragma omp parallel for reduction(+ : re, im) schedule(static)
            for (size_t i = 0; i < nvox; i++) {
                double p = f[2 * i], q = f[2 * i + 1], u = g[2 * i], w = g[2 * i + 1];
                if (!isfinite(p + q + u + w)) continue;
                re += p * u + q * w;
                im += q * u - p * w;
            }
            if (hypot(re, im) > 0.0) phi = -atan2(im, re);
        }
        ew_prtf_acc_add(&a, vols[k], phi);
    }
    ew_status_t st = ew_prtf_acc_finish(&a, ds, shell_width, out);
    ew_prtf_acc_free(&a);
    return st;
}
