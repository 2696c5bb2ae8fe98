/* Tests for src/eval/align.h: volumes with an analytic form are rotated
 * (and inverted / mirrored, and shifted) by known transforms and recovered. */
#include "testutil.h"

#include "core/core.h"
#include "eval/eval.h"

#define NATOM 24

static void random_points(uint64_t seed, int k, double radius, double (*p)[3])
{
    for (int j = 0; j < k; j++) {
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

/* sum of isotropic Gaussian blobs (width sig voxels) at centre-relative positions */
static float *blob_volume(int n, double (*p)[3], int k, double sig)
{
    float *v = malloc((size_t)n * n * n * sizeof *v);
    const double c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double acc = 0;
                for (int j = 0; j < k; j++) {
                    double dx = x - c - p[j][0], dy = y - c - p[j][1], dz = z - c - p[j][2];
                    acc += exp(-(dx * dx + dy * dy + dz * dz) / (2 * sig * sig));
                }
                v[((size_t)z * n + y) * n + x] = (float)acc;
            }
    return v;
}

/* diffraction intensity of Gaussian atoms at p (voxels, real space of a box
 * of n voxels) on the centred reciprocal grid: I(s) = |sum exp(2 pi i s.r)|^2 f(s)^2 */
static float *intensity_volume(int n, double (*p)[3], int k, double box)
{
    float *v = malloc((size_t)n * n * n * sizeof *v);
    const double c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double s[3] = {(x - c) / box, (y - c) / box, (z - c) / box};
                double re = 0, im = 0;
                for (int j = 0; j < k; j++) {
                    double ph = 2 * EW_PI * (s[0] * p[j][0] + s[1] * p[j][1] + s[2] * p[j][2]);
                    re += cos(ph);
                    im += sin(ph);
                }
                double s2 = s[0] * s[0] + s[1] * s[1] + s[2] * s[2];
                v[((size_t)z * n + y) * n + x] = (float)((re * re + im * im) * exp(-2 * EW_PI * EW_PI * s2));
            }
    return v;
}

/* positions q = H R^T (p - t): the moving object for which the aligned result is (R, hand, t) */
static void transform_points(double (*p)[3], double (*q)[3], int k, ew_quat_t rq, int hand, const double t[3])
{
    double r[9];
    ew_quat_to_mat(rq, r);
    for (int j = 0; j < k; j++) {
        double u[3] = {p[j][0] - t[0], p[j][1] - t[1], p[j][2] - t[2]};
        for (int a = 0; a < 3; a++) {
            q[j][a] = r[a] * u[0] + r[3 + a] * u[1] + r[6 + a] * u[2]; /* R^T u */
            if (hand) q[j][a] = -q[j][a];
        }
    }
}

static void test_transform(void **state)
{
    (void)state;
    const int n = 12;
    size_t nv = (size_t)n * n * n;
    float *in = malloc(nv * sizeof *in), *out = malloc(nv * sizeof *out);
    for (size_t i = 0; i < nv; i++) in[i] = (float)(i % 97) - 40.0f;
    const double id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    ew_vol_transform(in, n, id, NULL, out);
    assert_memory_equal(in, out, nv * sizeof *in);
    /* m = Rz(90)^T: out(x, y, z) = in(c + (y - c), c - (x - c), z) */
    const double m[9] = {0, 1, 0, -1, 0, 0, 0, 0, 1};
    ew_vol_transform(in, n, m, NULL, out);
    const int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int sx = c + (y - c), sy = c - (x - c);
                float expect = (sx >= 0 && sx < n && sy >= 0 && sy < n) ? in[((size_t)z * n + sy) * n + sx] : 0.0f;
                assert_close(out[((size_t)z * n + y) * n + x], expect, 0, 1e-5);
            }
    /* integer shift: out(p) = in(p - t) */
    const double t[3] = {2, -1, 3};
    ew_vol_transform(in, n, id, t, out);
    assert_close(out[((size_t)5 * n + 4) * n + 6], in[((size_t)2 * n + 5) * n + 4], 0, 1e-5);
    /* half-voxel shift: the mean of the two neighbours */
    const double th[3] = {0.5, 0, 0};
    ew_vol_transform(in, n, id, th, out);
    assert_close(out[((size_t)5 * n + 4) * n + 6],
                 0.5 * (in[((size_t)5 * n + 4) * n + 5] + in[((size_t)5 * n + 4) * n + 6]), 0, 1e-5);
    /* inversion through the centre */
    const double inv[9] = {-1, 0, 0, 0, -1, 0, 0, 0, -1};
    ew_vol_transform(in, n, inv, NULL, out);
    assert_close(out[((size_t)3 * n + 4) * n + 5], in[((size_t)9 * n + 8) * n + 7], 0, 1e-5);
    assert_close(out[0], 0.0, 0, 0); /* (0,0,0) maps to (12,12,12): outside */
    free(in);
    free(out);
}

static double angle_deg(ew_quat_t a, ew_quat_t b) { return ew_quat_angle(a, b) * 180 / EW_PI; }

/* a generic (not centrosymmetric) reciprocal volume, both hands */
static void test_align_reciprocal_hands(void **state)
{
    (void)state;
    const int n = 40;
    double p[NATOM][3], q[NATOM][3];
    random_points(11, NATOM, 16.0, p); /* content over the whole q-range */
    float *ref = blob_volume(n, p, NATOM, 2.0);
    ew_align_opts_t o;
    ew_align_opts_default(&o);
    o.coarse_n = 24;
    o.coarse_level = 4;
    for (int hand = 0; hand < 2; hand++) {
        ew_rng_t r;
        ew_rng_init(&r, 500, (uint64_t)hand);
        ew_quat_t rt = ew_quat_random(&r);
        const double t0[3] = {0, 0, 0};
        transform_points(p, q, NATOM, rt, hand, t0);
        float *mov = blob_volume(n, q, NATOM, 2.0);
        ew_align_result_t res;
        assert_ok(ew_align_volumes(EW_ALIGN_INTENSITY, ref, mov, n, &o, &res));
        print_message("reciprocal, hand %d: found hand %d, error %.3f deg (coarse spacing %.1f), score %.4f "
                      "(other hand %.4f), %.2f s\n",
                      hand, res.hand, angle_deg(res.q, rt), res.coarse_spacing_deg, res.score,
                      res.score_other_hand, res.seconds);
        assert_int_equal(res.hand, hand);
        assert_true(angle_deg(res.q, rt) < 1.0);
        assert_true(res.score > 0.98);
        assert_true(res.score_other_hand < res.score - 0.1);
        /* the score at the truth is no better than the optimum found */
        double s;
        assert_ok(ew_align_score(EW_ALIGN_INTENSITY, ref, mov, n, &o, rt, hand, &s, NULL));
        assert_true(s <= res.score + 1e-3);
        /* applying the result reproduces the reference */
        size_t nv = (size_t)n * n * n;
        float *al = malloc(nv * sizeof *al);
        ew_align_apply(&res, mov, n, al);
        double num = 0, den = 0;
        const int c = n / 2;
        for (int z = 4; z < n - 4; z++)
            for (int y = 4; y < n - 4; y++)
                for (int x = 4; x < n - 4; x++) {
                    if ((x - c) * (x - c) + (y - c) * (y - c) + (z - c) * (z - c) > (c - 4) * (c - 4)) continue;
                    size_t i = ((size_t)z * n + y) * n + x;
                    num += (al[i] - ref[i]) * (al[i] - ref[i]);
                    den += ref[i] * ref[i];
                }
        assert_true(sqrt(num / den) < 0.05);
        free(al);
        free(mov);
    }
    free(ref);
}

/* Friedel-symmetric diffraction intensities: the rotation is found; the
 * two hands score the same */
static void test_align_intensity(void **state)
{
    (void)state;
    const int n = 40;
    double p[NATOM][3], q[NATOM][3];
    random_points(12, NATOM, 8.0, p);
    float *ref = intensity_volume(n, p, NATOM, 2.0 * n);
    ew_rng_t r;
    ew_rng_init(&r, 600, 0);
    ew_quat_t rt = ew_quat_random(&r);
    const double t0[3] = {0, 0, 0};
    transform_points(p, q, NATOM, rt, 0, t0);
    float *mov = intensity_volume(n, q, NATOM, 2.0 * n);
    ew_align_opts_t o;
    ew_align_opts_default(&o);
    o.coarse_n = 24;
    o.coarse_level = 4;
    ew_align_result_t res;
    assert_ok(ew_align_volumes(EW_ALIGN_INTENSITY, ref, mov, n, &o, &res));
    print_message("intensities: error %.3f deg, hand %d, score %.4f (other hand %.4f), %.2f s\n",
                  angle_deg(res.q, rt), res.hand, res.score, res.score_other_hand, res.seconds);
    assert_true(angle_deg(res.q, rt) < 1.0);
    assert_int_equal(res.hand, 0);
    assert_close(res.score_other_hand, res.score, 0, 2e-3);
    free(ref);
    free(mov);
}

/* densities: rotation, enantiomer and translation */
static void test_align_density(void **state)
{
    (void)state;
    const int n = 40;
    double p[NATOM][3], q[NATOM][3];
    random_points(13, NATOM, 9.0, p);
    float *ref = blob_volume(n, p, NATOM, 1.3);
    ew_align_opts_t o;
    ew_align_opts_default(&o);
    o.coarse_n = 24;
    o.coarse_level = 4;
    for (int hand = 0; hand < 2; hand++) {
        ew_rng_t r;
        ew_rng_init(&r, 700, (uint64_t)hand);
        ew_quat_t rt = ew_quat_random(&r);
        const double t[3] = {2.5, -1.25, 3.0};
        transform_points(p, q, NATOM, rt, hand, t);
        float *mov = blob_volume(n, q, NATOM, 1.3);
        ew_align_result_t res;
        assert_ok(ew_align_volumes(EW_ALIGN_DENSITY, ref, mov, n, &o, &res));
        print_message("density, hand %d: found hand %d, error %.3f deg, shift (%.2f %.2f %.2f), score %.4f "
                      "(other hand %.4f), %.2f s\n",
                      hand, res.hand, angle_deg(res.q, rt), res.shift[0], res.shift[1], res.shift[2], res.score,
                      res.score_other_hand, res.seconds);
        assert_int_equal(res.hand, hand);
        assert_true(angle_deg(res.q, rt) < 1.0);
        for (int d = 0; d < 3; d++) assert_close(res.shift[d], t[d], 0, 0.2);
        assert_true(res.score > 0.95);
        assert_true(res.score_other_hand < res.score - 0.1);
        free(mov);
    }
    /* argument errors */
    ew_align_result_t res;
    assert_int_equal(ew_align_volumes(EW_ALIGN_DENSITY, ref, ref, 4, NULL, &res), EW_ERR_ARG);
    o.rmax = 2.0;
    assert_int_equal(ew_align_volumes(EW_ALIGN_DENSITY, ref, ref, n, &o, &res), EW_ERR_ARG);
    assert_int_equal(ew_align_volumes(EW_ALIGN_DENSITY, NULL, ref, n, NULL, &res), EW_ERR_ARG);
    free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transform),
        cmocka_unit_test(test_align_reciprocal_hands),
        cmocka_unit_test(test_align_intensity),
        cmocka_unit_test(test_align_density),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
