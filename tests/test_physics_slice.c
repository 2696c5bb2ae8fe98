/* Tests for physics/slice: trilinear slicing and its adjoint. */
#include "testutil.h"

#include "core/core.h"
#include "physics/slice.h"

/* Rotation matrix of a unit quaternion (w, x, y, z), written out here so
 * the test does not depend on geom. */
static void quat_mat(double w, double x, double y, double z, double m[9])
{
    double nrm = sqrt(w * w + x * x + y * y + z * z);
    w /= nrm, x /= nrm, y /= nrm, z /= nrm;
    m[0] = 1 - 2 * (y * y + z * z), m[1] = 2 * (x * y - w * z), m[2] = 2 * (x * z + w * y);
    m[3] = 2 * (x * y + w * z), m[4] = 1 - 2 * (x * x + z * z), m[5] = 2 * (y * z - w * x);
    m[6] = 2 * (x * z - w * y), m[7] = 2 * (y * z + w * x), m[8] = 1 - 2 * (x * x + y * y);
}

static void test_alloc_errors(void **state)
{
    (void)state;
    ew_rvol_t v;
    assert_int_equal(ew_rvol_alloc(&v, 1, 0.1), EW_ERR_ARG);
    assert_null(v.data);
    assert_int_equal(ew_rvol_alloc(&v, 8, 0.0), EW_ERR_ARG);
    assert_int_equal(ew_rvol_alloc(&v, 8, NAN), EW_ERR_ARG);
    assert_ok(ew_rvol_alloc(&v, 5, 0.1));
    for (int i = 0; i < 125; i++) assert_true(v.data[i] == 0.0f);
    ew_rvol_free(&v);
    assert_null(v.data);
    ew_rvol_free(NULL);
}

/* Trilinear interpolation reproduces an affine function exactly, at
 * rotated points; points outside the grid give 0. */
static void test_affine_exact(void **state)
{
    (void)state;
    const int n = 17;
    const double ds = 0.01;
    ew_rvol_t v;
    assert_ok(ew_rvol_alloc(&v, n, ds));
    const int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                v.data[((size_t)z * n + y) * n + x] = (float)(1.0 + 2.0 * (x - c) - 0.5 * (y - c) + 0.25 * (z - c));
    double R[9];
    quat_mat(0.8, 0.3, -0.2, 0.4, R);
    ew_rng_t r;
    ew_rng_init(&r, 7, 0);
    enum { NP = 500 };
    float s[3 * NP], out[NP];
    for (int i = 0; i < 3 * NP; i++) s[i] = (float)((ew_rng_uniform(&r) - 0.5) * 2 * 0.04);
    s[0] = 1.0f; /* far outside */
    ew_slice_trilinear(&v, R, s, NP, out);
    assert_true(out[0] == 0.0f);
    int inside = 0;
    for (int p = 1; p < NP; p++) {
        double q[3];
        for (int j = 0; j < 3; j++) q[j] = R[j] * s[3 * p] + R[3 + j] * s[3 * p + 1] + R[6 + j] * s[3 * p + 2];
        double expect = 1.0 + (2.0 * q[0] - 0.5 * q[1] + 0.25 * q[2]) / ds;
        assert_close(out[p], expect, 1e-5, 1e-4);
        inside++;
    }
    assert_int_equal(inside, NP - 1);
    ew_rvol_free(&v);
}

/* <y, slice(V)> == <merge(y), V> for random V, y, rotation and points,
 * and the weight sums are the merge of ones. */
static void test_adjoint(void **state)
{
    (void)state;
    const int n = 12; /* even n: FFT-style centre */
    ew_rvol_t v, acc;
    assert_ok(ew_rvol_alloc(&v, n, 0.02));
    assert_ok(ew_rvol_alloc(&acc, n, 0.02));
    size_t nv = (size_t)n * n * n;
    float *wsum = ew_calloc_array(nv, sizeof(float));
    assert_non_null(wsum);
    ew_rng_t r;
    ew_rng_init(&r, 11, 1);
    for (size_t i = 0; i < nv; i++) v.data[i] = (float)ew_rng_normal(&r);
    enum { NP = 2000 };
    float *s = malloc(sizeof(float) * 3 * NP), *y = malloc(sizeof(float) * NP), *out = malloc(sizeof(float) * NP);
    for (int i = 0; i < 3 * NP; i++) s[i] = (float)((ew_rng_uniform(&r) - 0.5) * 2 * 0.14);
    for (int i = 0; i < NP; i++) y[i] = (float)ew_rng_normal(&r);
    double R[9];
    quat_mat(0.1, -0.7, 0.5, 0.2, R);
    ew_slice_trilinear(&v, R, s, NP, out);
    const float w = 1.5f;
    ew_merge_trilinear(&acc, wsum, R, s, NP, y, w);
    double lhs = 0, rhs = 0, scale = 0;
    int nonzero = 0;
    for (int p = 0; p < NP; p++) {
        lhs += (double)y[p] * out[p];
        scale += fabs((double)y[p] * out[p]);
        nonzero += out[p] != 0.0f;
    }
    for (size_t i = 0; i < nv; i++) rhs += (double)v.data[i] * acc.data[i];
    assert_true(nonzero > NP / 4 && nonzero < NP); /* some points inside, some outside */
    assert_close(w * lhs, rhs, 0, 1e-5 * w * scale);
    /* merging ones gives weight sums equal to wsum / w ... and the total
     * weight equals w times the number of points inside */
    double tot = 0;
    for (size_t i = 0; i < nv; i++) tot += wsum[i];
    assert_close(tot, w * nonzero, 1e-5, 0);
    free(s), free(y), free(out);
    ew_free(wsum);
    ew_rvol_free(&v);
    ew_rvol_free(&acc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_errors),
        cmocka_unit_test(test_affine_exact),
        cmocka_unit_test(test_adjoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
