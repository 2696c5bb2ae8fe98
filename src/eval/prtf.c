/* ewald eval: phase-retrieval transfer function. */
#include "eval/prtf.h"

#include <math.h>
#include <string.h>

ew_status_t ew_prtf(const float *const *vols, int nvol, int n, double ds, double shell_width,
                    int align_phase, ew_shell_curve_t *out)
{
    memset(out, 0, sizeof *out);
    if (nvol < 2) return ew_fail(EW_ERR_ARG, "PRTF: %d reconstructions given, need at least 2", nvol);
    if (n < 4) return ew_fail(EW_ERR_ARG, "PRTF: volume size n = %d is below 4", n);
    if (!(ds > 0.0)) return ew_fail(EW_ERR_ARG, "PRTF: voxel spacing %g is not positive", ds);
    if (!(shell_width >= 1.0) || shell_width > n / 4.0)
        return ew_fail(EW_ERR_ARG, "PRTF: shell width %g voxels is outside [1, n/4 = %g]", shell_width, n / 4.0);
    size_t nvox;
    EW_TRY(ew_size_mul3((size_t)n, (size_t)n, (size_t)n, &nvox));
    double *cph = ew_alloc_array((size_t)nvol, 2 * sizeof *cph); /* e^{i phi_k}: (cos, sin) */
    if (!cph) return EW_ERR_NOMEM;
    for (int k = 0; k < nvol; k++) {
        cph[2 * k] = 1.0;
        cph[2 * k + 1] = 0.0;
        if (!align_phase || k == 0) continue;
        double re = 0.0, im = 0.0; /* sum F_k conj(F_0) */
        const float *f = vols[k], *g = vols[0];
#pragma omp parallel for reduction(+ : re, im) schedule(static)
        for (size_t i = 0; i < nvox; i++) {
            double a = f[2 * i], b = f[2 * i + 1], c = g[2 * i], d = g[2 * i + 1];
            if (!isfinite(a + b + c + d)) continue;
            re += a * c + b * d;
            im += b * c - a * d;
        }
        double m = hypot(re, im);
        if (m > 0.0) {
            cph[2 * k] = re / m;
            cph[2 * k + 1] = -im / m;
        }
    }
    ew_status_t st = ew_shell_curve_alloc(out, n, ds, shell_width);
    if (st != EW_OK) {
        ew_free(cph);
        return st;
    }
    const int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double r2 = (double)(x - c) * (x - c) + (double)(y - c) * (y - c) + (double)(z - c) * (z - c);
                int j = ew_shell_index(r2, shell_width, out->nshell);
                if (j < 0) continue;
                size_t i = ((size_t)z * n + y) * n + x;
                double sr = 0.0, si = 0.0, p = 0.0;
                int bad = 0;
                for (int k = 0; k < nvol; k++) {
                    double a = vols[k][2 * i], b = vols[k][2 * i + 1];
                    if (!isfinite(a + b)) bad = 1;
                    sr += a * cph[2 * k] - b * cph[2 * k + 1];
                    si += a * cph[2 * k + 1] + b * cph[2 * k];
                    p += a * a + b * b;
                }
                if (bad || !(p > 0.0)) continue;
                out->value[j] += hypot(sr, si) / nvol / sqrt(p / nvol);
                out->count[j] += 1.0;
            }
    for (int j = 0; j < out->nshell; j++)
        if (out->count[j] > 0.0) out->value[j] /= out->count[j];
    ew_free(cph);
    return EW_OK;
}
