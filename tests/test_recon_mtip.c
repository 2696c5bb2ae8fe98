/* Tests of src/recon/mtip: M-TIP on noise-free patterns of a known density.
 *
 * Oracle: patterns are slices (physics/slice.h) of the known intensity at
 * random orientations with random fluences on a small Ewald-sphere
 * detector; the reconstruction's intensity must match the known one after
 * the best rotation (a brute-force search over a fine rotation grid, since
 * M-TIP's frame is arbitrary) clearly better than the intensity's own
 * spherical average does (what a reconstruction that learned no
 * orientations would give); started from the true orientations, M-TIP must
 * keep them (to the grid's accuracy, up to the 180-degree twin about the
 * beam that central slices of a centrosymmetric intensity cannot tell).
 */
#include "testutil.h"

#include "core/core.h"
#include "geom/geom.h"
#include "physics/slice.h"
#include "recon/mtip.h"
#include "recon/phase.h"

#define NG 21

static void make_truth(int n, float *rho)
{
    static const double blobs[][4] = {
        {0.0, 0.0, 0.0, 3.0}, {3.0, 1.0, -2.0, 2.0}, {-2.5, 3.0, 1.0, 1.5}, {1.0, -3.5, 2.5, 2.5}, {-1.0, -1.0, -3.5, 1.0},
    };
    int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double v = 0.0;
                for (size_t b = 0; b < sizeof blobs / sizeof blobs[0]; b++) {
                    double dz = z - c - blobs[b][0], dy = y - c - blobs[b][1], dx = x - c - blobs[b][2];
                    v += blobs[b][3] * exp(-(dz * dz + dy * dy + dx * dx) / 2.0);
                }
                rho[((size_t)z * n + y) * n + x] = v > 1e-3 ? (float)v : 0.0f;
            }
}

/* A 15 x 15 pixel Ewald-sphere detector (lambda 2 A): |s| to 6.3 ds along
 * the axes (the fully measured ball), 8.9 ds in the corners. */
static size_t make_detector(double ds, float *s, float *corr)
{
    const double lambda = 2.0, step = 0.9 * ds; /* transverse s step per pixel */
    size_t p = 0;
    for (int v = -7; v <= 7; v++)
        for (int u = -7; u <= 7; u++) {
            /* direction of the pixel whose transverse s is (u, v) step */
            double sx = u * step, sy = v * step;
            double kx = sx * lambda, ky = sy * lambda, kz = sqrt(1.0 - kx * kx - ky * ky);
            s[3 * p] = (float)(kx / lambda);
            s[3 * p + 1] = (float)(ky / lambda);
            s[3 * p + 2] = (float)((kz - 1.0) / lambda);
            corr[p] = (float)(1.0 - 0.2 * (kx * kx)); /* a polarization-like factor */
            p++;
        }
    return p;
}

typedef struct {
    float *rho, *pat, s[225 * 3], corr[225];
    ew_quat_t *truth_q;
    ew_rvol_t W;
    size_t npix, npat;
} data_t;

static void make_data(data_t *d)
{
    const int n = NG;
    size_t nv = (size_t)n * n * n;
    d->rho = malloc(nv * sizeof *d->rho);
    assert_ok(ew_rvol_alloc(&d->W, n, 0.01));
    make_truth(n, d->rho);
    assert_ok(ew_phase_intensity(d->rho, n, 1, d->W.data));
    d->npix = make_detector(0.01, d->s, d->corr);
    d->npat = 400;
    d->pat = malloc(d->npat * d->npix * sizeof *d->pat);
    d->truth_q = malloc(d->npat * sizeof *d->truth_q);
    for (size_t i = 0; i < d->npat; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 42, i);
        ew_quat_t q = ew_quat_random(&r);
        d->truth_q[i] = q;
        double fl = 0.5 + ew_rng_uniform(&r), R[9];
        ew_quat_to_mat(q, R);
        ew_slice_trilinear(&d->W, R, d->s, d->npix, d->pat + i * d->npix);
        for (size_t p = 0; p < d->npix; p++) d->pat[i * d->npix + p] *= (float)(fl * d->corr[p]);
    }
}

static void free_data(data_t *d)
{
    free(d->rho);
    free(d->pat);
    free(d->truth_q);
    ew_rvol_free(&d->W);
}

static ew_mtip_config_t small_config(int cycles)
{
    ew_mtip_config_t c;
    ew_mtip_config_default(&c);
    c.cycles = cycles;
    c.rot_level = 5;
    c.phase_loops = 3;
    c.phase.nsteps = 3;
    c.phase.steps[0] = (ew_phase_step_t){EW_PHASE_ER, 20, 0.0};
    c.phase.steps[1] = (ew_phase_step_t){EW_PHASE_HIO, 40, 0.9};
    c.phase.steps[2] = (ew_phase_step_t){EW_PHASE_ER, 20, 0.0};
    c.phase.loops = 10;
    c.phase.starts = 1;
    c.phase.nthreads = 1;
    c.phase.fftw_measure = 0;
    return c;
}

/* Best correlation over a fine rotation grid of the truth W and the model
 * (both centred n^3) inside |s| <= 6 voxels: of log(I + eps) if logs. */
static double rotated_cc(const ew_rvol_t *W, const float *model, int logs)
{
    const int n = W->n, c0 = n / 2;
    size_t nv = (size_t)n * n * n, nb = 0;
    ew_rvol_t M = {n, W->ds, (float *)model};
    float *pts = malloc(nv * 3 * sizeof *pts), *tv = malloc(nv * sizeof *tv), *mv = malloc(nv * sizeof *mv);
    float mx = 0.0f;
    for (size_t i = 0; i < nv; i++) mx = W->data[i] > mx ? W->data[i] : mx;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int dz = z - c0, dy = y - c0, dx = x - c0, r2 = dz * dz + dy * dy + dx * dx;
                if (r2 > 6 * 6 || r2 < 1) continue;
                pts[3 * nb] = (float)(dx * W->ds);
                pts[3 * nb + 1] = (float)(dy * W->ds);
                pts[3 * nb + 2] = (float)(dz * W->ds);
                tv[nb++] = W->data[((size_t)z * n + y) * n + x];
            }
    double mm = 0.0;
    for (size_t i = 0; i < nv; i++) mm = model[i] > mm ? model[i] : mm;
    ew_rotgrid_t g;
    assert_ok(ew_rotgrid_600cell(8, &g));
    double best = -1;
    for (size_t r = 0; r < g.n; r++) {
        double R[9];
        ew_quat_to_mat(g.quat[r], R);
        ew_slice_trilinear(&M, R, pts, nb, mv);
        double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
        for (size_t k = 0; k < nb; k++) {
            double a = logs ? log(tv[k] + 1e-4 * mx) : tv[k], b = logs ? log(mv[k] + 1e-4 * mm) : mv[k];
            sa += a;
            sb += b;
            sab += a * b;
            saa += a * a;
            sbb += b * b;
        }
        double cc = (sab - sa * sb / nb) / sqrt((saa - sa * sa / nb) * (sbb - sb * sb / nb));
        if (cc > best) best = cc;
    }
    ew_rotgrid_free(&g);
    free(pts);
    free(tv);
    free(mv);
    return best;
}

/* The spherical (shell) average of W: what a model without orientations gives. */
static void spherical_average(const ew_rvol_t *W, float *out)
{
    const int n = W->n, c0 = n / 2;
    double sum[64] = {0};
    int cnt[64] = {0};
    for (int pass = 0; pass < 2; pass++)
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    int r = (int)lround(sqrt((double)(z - c0) * (z - c0) + (y - c0) * (y - c0) + (x - c0) * (x - c0)));
                    size_t i = ((size_t)z * n + y) * n + x;
                    if (pass == 0) {
                        sum[r] += W->data[i];
                        cnt[r]++;
                    } else {
                        out[i] = (float)(sum[r] / cnt[r]);
                    }
                }
}

static void test_mtip_ab_initio(void **state)
{
    (void)state;
    data_t d;
    make_data(&d);
    const int n = NG;
    size_t nv = (size_t)n * n * n;
    ew_mtip_config_t c = small_config(20);
    ew_mtip_detector_t det = {d.npix, d.s, d.corr, NULL};
    ew_mtip_result_t res;
    ew_log_level_t lv = ew_log_get_level();
    ew_log_set_level(EW_LOG_WARN);
    assert_ok(ew_mtip_run(d.pat, d.npat, &det, n, 0.01, &c, &res));
    ew_log_set_level(lv);
    assert_int_equal(res.cycles, 20);
    assert_int_equal(res.npat, d.npat);
    assert_close(res.voxel, 1.0 / (n * 0.01), 1e-12, 0);
    /* the patterns are explained better at the end than after the first orientation step */
    if (!(res.similarity[19] > 0.94 && res.similarity[19] > res.similarity[1]))
        fail_msg("similarity %.4f (cycle 1: %.4f)", res.similarity[19], res.similarity[1]);
    float *model = malloc(nv * sizeof *model), *avg = malloc(nv * sizeof *avg);
    assert_ok(ew_phase_intensity(res.density, n, 1, model));
    spherical_average(&d.W, avg);
    double cc_log = rotated_cc(&d.W, model, 1), base_log = rotated_cc(&d.W, avg, 1);
    double cc_lin = rotated_cc(&d.W, model, 0), base_lin = rotated_cc(&d.W, avg, 0);
    print_message("M-TIP ab initio: similarity %.4f, rotated cc log %.3f (spherical %.3f), linear %.3f (%.3f)\n",
                  res.similarity[19], cc_log, base_log, cc_lin, base_lin);
    if (!(cc_log > base_log + 0.08 && cc_lin > base_lin + 0.02))
        fail_msg("rotated cc log %.3f (spherical average %.3f), linear %.3f (%.3f)", cc_log, base_log, cc_lin,
                 base_lin);
    ew_mtip_result_free(&res);
    ew_mtip_result_free(&res);
    free(model);
    free(avg);
    free_data(&d);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_mtip_keeps_true_orientations(void **state)
{
    (void)state;
    data_t d;
    make_data(&d);
    const int n = NG;
    ew_mtip_config_t c = small_config(4);
    c.init_quat = d.truth_q;
    c.ramp_start = 1.0;
    ew_mtip_detector_t det = {d.npix, d.s, d.corr, NULL};
    ew_mtip_result_t res;
    ew_log_level_t lv = ew_log_get_level();
    ew_log_set_level(EW_LOG_WARN);
    assert_ok(ew_mtip_run(d.pat, d.npat, &det, n, 0.01, &c, &res));
    ew_log_set_level(lv);
    double *ang = malloc(d.npat * sizeof *ang);
    for (size_t i = 0; i < d.npat; i++) {
        ew_quat_t twin = ew_quat_mul((ew_quat_t){0.0, 0.0, 0.0, 1.0}, d.truth_q[i]); /* 180 deg about the beam */
        ang[i] = fmin(ew_quat_angle(res.quat[i], d.truth_q[i]), ew_quat_angle(res.quat[i], twin)) * 180.0 / EW_PI;
    }
    qsort(ang, d.npat, sizeof *ang, cmp_double);
    print_message("M-TIP from the truth: orientation error median %.1f deg, 75%% %.1f deg\n", ang[d.npat / 2],
                  ang[d.npat * 3 / 4]);
    if (!(ang[d.npat / 2] < 12.0 && ang[d.npat * 3 / 4] < 20.0))
        fail_msg("orientation error median %.1f, 75%% %.1f deg", ang[d.npat / 2], ang[d.npat * 3 / 4]);
    free(ang);
    ew_mtip_result_free(&res);
    free_data(&d);
}

static void test_mtip_bad_input(void **state)
{
    (void)state;
    float s[6] = {0, 0, 0, 0.5f, 0, 0}, pat[2] = {1, 1};
    ew_mtip_detector_t det = {2, s, NULL, NULL};
    ew_mtip_config_t c;
    ew_mtip_config_default(&c);
    ew_mtip_result_t res;
    /* pixel 1 at |s| = 0.5 is outside a grid of 11 voxels of 0.01 */
    assert_int_equal(ew_mtip_run(pat, 1, &det, 11, 0.01, &c, &res), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "pixel 1"));
    assert_null(res.density);
    uint8_t mask[2] = {0, 2}; /* masked: now fine as far as the pixels go */
    det.mask = mask;
    c.cycles = 0;
    assert_int_equal(ew_mtip_run(pat, 1, &det, 11, 0.01, &c, &res), EW_ERR_ARG);
    assert_int_equal(ew_mtip_run(pat, 0, &det, 11, 0.01, &c, &res), EW_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mtip_ab_initio),
        cmocka_unit_test(test_mtip_keeps_true_orientations),
        cmocka_unit_test(test_mtip_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
