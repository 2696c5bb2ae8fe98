/* Tests for src/eval/orient.h. */
#include "testutil.h"

#include "core/core.h"
#include "eval/eval.h"

static ew_quat_t rq(uint64_t seed, uint64_t i)
{
    ew_rng_t r;
    ew_rng_init(&r, seed, i);
    return ew_quat_random(&r);
}

/* a rotation by a normal rotation vector of sigma (radians) per axis */
static ew_quat_t noise_q(uint64_t i, double sigma)
{
    ew_rng_t r;
    ew_rng_init(&r, 4242, i);
    double v[3] = {sigma * ew_rng_normal(&r), sigma * ew_rng_normal(&r), sigma * ew_rng_normal(&r)};
    return ew_quat_from_axis_angle(v, sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]));
}

static void test_mirror_quat(void **state)
{
    (void)state;
    const double M[9] = {1, 0, 0, 0, 1, 0, 0, 0, -1};
    for (int i = 0; i < 100; i++) {
        ew_quat_t q = rq(1, i);
        double r[9], t[9], mrm[9], m2[9];
        ew_quat_to_mat(q, r);
        ew_mat_mul(M, r, t);
        ew_mat_mul(t, M, mrm);
        ew_quat_to_mat(ew_quat_mirror_z(q), m2);
        for (int k = 0; k < 9; k++) assert_close(m2[k], mrm[k], 0, 1e-12);
    }
    /* quaternion mean: of +-copies of one rotation is that rotation */
    ew_quat_t q = rq(2, 0), arr[4] = {q, {-q.w, -q.x, -q.y, -q.z}, q, {-q.w, -q.x, -q.y, -q.z}};
    ew_quat_t m = ew_quat_mean(arr, NULL, 4);
    assert_true(ew_quat_angle(m, q) < 1e-7);
    /* weighted mean of two rotations about z lies between them */
    double z[3] = {0, 0, 1};
    ew_quat_t two[2] = {ew_quat_from_axis_angle(z, 0.2), ew_quat_from_axis_angle(z, 0.6)};
    double w[2] = {1, 1};
    assert_true(ew_quat_angle(ew_quat_mean(two, w, 2), ew_quat_from_axis_angle(z, 0.4)) < 1e-7);
}

static void test_constant_rotation_zero(void **state)
{
    (void)state;
    const size_t n = 500;
    ew_quat_t *qt = malloc(n * sizeof *qt), *qp = malloc(n * sizeof *qp);
    ew_quat_t g = rq(7, 99);
    for (size_t i = 0; i < n; i++) {
        qt[i] = rq(3, i);
        qp[i] = ew_quat_mul(qt[i], g);
    }
    ew_orient_err_t e;
    assert_ok(ew_orient_error(qt, qp, n, NULL, &e));
    assert_int_equal(e.hand, 0);
    assert_true(e.max_deg < 1e-5);
    assert_true(e.median_deg < 1e-5);
    assert_true(ew_quat_angle(e.g, g) < 1e-7);
    assert_true(e.other_hand_median_deg > 10.0);
    assert_int_equal(e.hist[0], n);
    assert_null(e.twin);
    ew_orient_err_free(&e);
    /* the mirror hand: R_pred = M R_true M G */
    for (size_t i = 0; i < n; i++) qp[i] = ew_quat_mul(ew_quat_mirror_z(qt[i]), g);
    assert_ok(ew_orient_error(qt, qp, n, NULL, &e));
    assert_int_equal(e.hand, 1);
    assert_true(e.max_deg < 1e-5);
    assert_true(ew_quat_angle(e.g, g) < 1e-7);
    ew_orient_err_free(&e);
    /* without trying the mirror, it scores badly */
    ew_orient_opts_t o;
    ew_orient_opts_default(&o);
    o.try_mirror = 0;
    assert_ok(ew_orient_error(qt, qp, n, &o, &e));
    assert_int_equal(e.hand, 0);
    assert_true(e.median_deg > 10.0);
    assert_true(isnan(e.other_hand_median_deg));
    ew_orient_err_free(&e);
    free(qt);
    free(qp);
}

static void test_noise_and_outliers(void **state)
{
    (void)state;
    const size_t n = 4000;
    const double sigma = 2.0 * EW_PI / 180;
    ew_quat_t *qt = malloc(n * sizeof *qt), *qp = malloc(n * sizeof *qp);
    ew_quat_t g = rq(8, 1);
    for (size_t i = 0; i < n; i++) {
        qt[i] = rq(4, i);
        qp[i] = ew_quat_mul(ew_quat_mul(qt[i], g), noise_q(i, sigma));
    }
    ew_orient_err_t e;
    assert_ok(ew_orient_error(qt, qp, n, NULL, &e));
    /* the angle is |N(0, sigma^2 I_3)|: median 1.5382 sigma, mean 2 sqrt(2/pi) sigma,
     * 90th percentile 2.5003 sigma */
    print_message("noise 2 deg: median %.3f mean %.3f p90 %.3f (expected 3.076 3.192 5.001)\n", e.median_deg,
                  e.mean_deg, e.p90_deg);
    assert_close(e.median_deg, 1.5382 * 2.0, 0.04, 0);
    assert_close(e.mean_deg, 2.0 * sqrt(2.0 / EW_PI) * 2.0, 0.04, 0);
    assert_close(e.p90_deg, 2.5003 * 2.0, 0.05, 0);
    assert_true(ew_quat_angle(e.g, g) < 0.1 * EW_PI / 180);
    size_t tot = 0;
    for (int b = 0; b < e.nbins; b++) tot += e.hist[b];
    assert_int_equal(tot, n);
    ew_orient_err_free(&e);
    /* 25% of the predictions are random: G is still found, the median is the inliers' */
    for (size_t i = 0; i < n; i += 4) qp[i] = rq(5, i);
    assert_ok(ew_orient_error(qt, qp, n, NULL, &e));
    print_message("with 25%% outliers: G off by %.3f deg, median %.3f deg\n",
                  ew_quat_angle(e.g, g) * 180 / EW_PI, e.median_deg);
    assert_true(ew_quat_angle(e.g, g) < 0.1 * EW_PI / 180);
    assert_int_equal(e.hand, 0);
    ew_orient_err_free(&e);
    free(qt);
    free(qp);
}

static void test_inplane_twin(void **state)
{
    (void)state;
    const size_t n = 300;
    ew_quat_t *qt = malloc(n * sizeof *qt), *qp = malloc(n * sizeof *qp);
    ew_quat_t g = rq(9, 2), rz = {0, 0, 0, 1};
    for (size_t i = 0; i < n; i++) {
        qt[i] = rq(6, i);
        qp[i] = ew_quat_mul(qt[i], g);
        if (i % 3 == 0) qp[i] = ew_quat_mul(rz, qp[i]);
    }
    ew_orient_err_t e;
    assert_ok(ew_orient_error(qt, qp, n, NULL, &e));
    assert_true(e.max_deg > 90.0); /* the twins are counted as errors by default */
    ew_orient_err_free(&e);
    ew_orient_opts_t o;
    ew_orient_opts_default(&o);
    o.inplane_twin = 1;
    assert_ok(ew_orient_error(qt, qp, n, &o, &e));
    assert_true(e.max_deg < 1e-5);
    assert_int_equal(e.hand, 0);
    for (size_t i = 0; i < n; i++) assert_int_equal(e.twin[i], i % 3 == 0);
    ew_orient_err_free(&e);
    /* errors */
    assert_int_equal(ew_orient_error(qt, qp, 0, NULL, &e), EW_ERR_ARG);
    qp[5].w = 3;
    assert_int_equal(ew_orient_error(qt, qp, n, NULL, &e), EW_ERR_ARG);
    assert_null(e.err_deg);
    ew_orient_err_free(NULL);
    free(qt);
    free(qp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mirror_quat),
        cmocka_unit_test(test_constant_rotation_zero),
        cmocka_unit_test(test_noise_and_outliers),
        cmocka_unit_test(test_inplane_twin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
