/* Benchmark of src/eval: alignment of two 64^3 volumes (intensities and
 * densities, default options), FSC, PRTF and orientation error.
 * Prints a table and, as its last line, one JSON object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "core/core.h"
#include "eval/eval.h"

#define NATOM 40

static void points(uint64_t seed, double radius, double (*p)[3])
{
    for (int j = 0; j < NATOM; j++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, (uint64_t)j);
        double v[3], n2;
        do {
            for (int d = 0; d < 3; d++) v[d] = 2 * ew_rng_uniform(&r) - 1;
            n2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        } while (n2 > 1);
        for (int d = 0; d < 3; d++) p[j][d] = radius * v[d];
    }
}

/* q = H R^T (p - t) */
static void moved(double (*p)[3], double (*q)[3], ew_quat_t rq, int hand, const double t[3])
{
    double r[9];
    ew_quat_to_mat(rq, r);
    for (int j = 0; j < NATOM; j++) {
        double u[3] = {p[j][0] - t[0], p[j][1] - t[1], p[j][2] - t[2]};
        for (int a = 0; a < 3; a++) q[j][a] = (hand ? -1 : 1) * (r[a] * u[0] + r[3 + a] * u[1] + r[6 + a] * u[2]);
    }
}

static float *density(int n, double (*p)[3], double sig)
{
    float *v = malloc((size_t)n * n * n * sizeof *v);
    const double c = n / 2;
#pragma omp parallel for
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double acc = 0;
                for (int j = 0; j < NATOM; j++) {
                    double dx = x - c - p[j][0], dy = y - c - p[j][1], dz = z - c - p[j][2];
                    acc += exp(-(dx * dx + dy * dy + dz * dz) / (2 * sig * sig));
                }
                v[((size_t)z * n + y) * n + x] = (float)acc;
            }
    return v;
}

static float *intensity(int n, double (*p)[3])
{
    float *v = malloc((size_t)n * n * n * sizeof *v);
    const double c = n / 2, box = 2.0 * n;
#pragma omp parallel for
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double s[3] = {(x - c) / box, (y - c) / box, (z - c) / box}, re = 0, im = 0;
                for (int j = 0; j < NATOM; j++) {
                    double ph = 2 * EW_PI * (s[0] * p[j][0] + s[1] * p[j][1] + s[2] * p[j][2]);
                    re += cos(ph);
                    im += sin(ph);
                }
                double s2 = s[0] * s[0] + s[1] * s[1] + s[2] * s[2];
                v[((size_t)z * n + y) * n + x] = (float)((re * re + im * im) * exp(-2 * EW_PI * EW_PI * s2));
            }
    return v;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const int n = 64;
    double p[NATOM][3], q[NATOM][3];
    ew_rng_t r;
    ew_rng_init(&r, 2026, 0);
    ew_quat_t rt = ew_quat_random(&r);
    ew_align_opts_t o;
    ew_align_opts_default(&o);
    printf("eval benchmark: %d threads, n = %d, coarse %d^3, 600-cell level %d\n", omp_get_max_threads(), n,
           o.coarse_n, o.coarse_level);
    printf("%-34s %10s %12s %10s %6s\n", "task", "seconds", "error(deg)", "score", "hand");

    /* intensities */
    points(1, 12.0, p);
    const double t0[3] = {0, 0, 0};
    moved(p, q, rt, 0, t0);
    float *ia = intensity(n, p), *ib = intensity(n, q);
    ew_align_result_t ri;
    if (ew_align_volumes(EW_ALIGN_INTENSITY, ia, ib, n, &o, &ri) != EW_OK) {
        fprintf(stderr, "bench_eval: %s\n", ew_error_message());
        return 1;
    }
    double ei = ew_quat_angle(ri.q, rt) * 180 / EW_PI;
    printf("%-34s %10.3f %12.4f %10.5f %6d\n", "align intensities 64^3", ri.seconds, ei, ri.score, ri.hand);

    /* densities, enantiomer + shift */
    points(2, 16.0, p);
    const double t1[3] = {3.3, -2.1, 1.7};
    moved(p, q, rt, 1, t1);
    float *da = density(n, p, 1.5), *db = density(n, q, 1.5);
    ew_align_result_t rd;
    if (ew_align_volumes(EW_ALIGN_DENSITY, da, db, n, &o, &rd) != EW_OK) {
        fprintf(stderr, "bench_eval: %s\n", ew_error_message());
        return 1;
    }
    double ed = ew_quat_angle(rd.q, rt) * 180 / EW_PI;
    double terr = sqrt((rd.shift[0] - t1[0]) * (rd.shift[0] - t1[0]) + (rd.shift[1] - t1[1]) * (rd.shift[1] - t1[1]) +
                       (rd.shift[2] - t1[2]) * (rd.shift[2] - t1[2]));
    printf("%-34s %10.3f %12.4f %10.5f %6d   (shift error %.3f voxels)\n", "align densities 64^3 (mirrored)",
           rd.seconds, ed, rd.score, rd.hand, terr);

    /* FSC and PRTF */
    ew_shell_curve_t c;
    double t = ew_time_now();
    ew_fsc_density(da, db, n, 1.0, 1.0, &c);
    double t_fsc = ew_time_now() - t;
    ew_shell_curve_free(&c);
    printf("%-34s %10.4f\n", "FSC of densities 64^3", t_fsc);
    size_t nv = (size_t)n * n * n;
    float *vols[4];
    for (int k = 0; k < 4; k++) {
        vols[k] = malloc(2 * nv * sizeof(float));
        for (size_t i = 0; i < nv; i++) {
            vols[k][2 * i] = ia[i];
            vols[k][2 * i + 1] = (float)k;
        }
    }
    t = ew_time_now();
    ew_prtf((const float *const *)vols, 4, n, 0.01, 1.0, 1, &c);
    double t_prtf = ew_time_now() - t;
    ew_shell_curve_free(&c);
    printf("%-34s %10.4f\n", "PRTF of 4 volumes 64^3", t_prtf);

    /* orientation error of 100000 patterns */
    const size_t np = 100000;
    ew_quat_t *qt = malloc(np * sizeof *qt), *qp = malloc(np * sizeof *qp);
    for (size_t i = 0; i < np; i++) {
        ew_rng_init(&r, 9, i);
        qt[i] = ew_quat_random(&r);
        double v[3] = {0.02 * ew_rng_normal(&r), 0.02 * ew_rng_normal(&r), 0.02 * ew_rng_normal(&r)};
        qp[i] = ew_quat_mul(ew_quat_mul(ew_quat_mirror_z(qt[i]), rt),
                            ew_quat_from_axis_angle(v, sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])));
    }
    ew_orient_err_t oe;
    t = ew_time_now();
    ew_orient_error(qt, qp, np, NULL, &oe);
    double t_or = ew_time_now() - t;
    printf("%-34s %10.3f %12.4f %10s %6d   (median error)\n", "orientation error 1e5 patterns", t_or, oe.median_deg,
           "", oe.hand);
    printf("{\"bench\": \"eval\", \"n\": %d, \"threads\": %d, \"align_intensity_s\": %.4f, "
           "\"align_intensity_err_deg\": %.4f, \"align_density_s\": %.4f, \"align_density_err_deg\": %.4f, "
           "\"align_density_shift_err_vox\": %.4f, \"align_density_hand\": %d, \"fsc_s\": %.5f, \"prtf_s\": %.5f, "
           "\"orient_1e5_s\": %.4f, \"orient_median_deg\": %.4f}\n",
           n, omp_get_max_threads(), ri.seconds, ei, rd.seconds, ed, terr, rd.hand, t_fsc, t_prtf, t_or,
           oe.median_deg);
    ew_orient_err_free(&oe);
    for (int k = 0; k < 4; k++) free(vols[k]);
    free(qt);
    free(qp);
    free(ia);
    free(ib);
    free(da);
    free(db);
    return 0;
}
