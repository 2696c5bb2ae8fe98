/* Tests for src/geom: conversions, Euler angles, 6D, random rotations and
 * the refined 600-cell grid. */
#include "testutil.h"

#include "core/core.h"
#include "geom/geom.h"

static const double PI = EW_PI;

static ew_quat_t rand_q(uint64_t i)
{
    ew_rng_t r;
    ew_rng_init(&r, 12345, ew_rng_stream_id(EW_RNG_TAG_GENERIC, i));
    return ew_quat_random(&r);
}

static void assert_mat_close(const double *a, const double *b, double tol)
{
    for (int i = 0; i < 9; i++) assert_close(a[i], b[i], 0, tol);
}

static double det3(const double m[9])
{
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
           m[2] * (m[3] * m[7] - m[4] * m[6]);
}

static void assert_rotation(const double m[9], double tol)
{
    double t[9], p[9];
    ew_mat_transpose(m, t);
    ew_mat_mul(m, t, p);
    const double id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    assert_mat_close(p, id, tol);
    assert_close(det3(m), 1.0, 0, tol);
}

/* --- quaternion <-> matrix --- */

static void test_quat_mat_hand(void **state)
{
    (void)state;
    /* 90 degrees about z maps x to y (particle -> lab, active rotation) */
    double ax[3] = {0, 0, 2};
    ew_quat_t q = ew_quat_from_axis_angle(ax, PI / 2);
    assert_close(q.w, sqrt(0.5), 0, 1e-15);
    assert_close(q.z, sqrt(0.5), 0, 1e-15);
    double m[9];
    ew_quat_to_mat(q, m);
    const double rz[9] = {0, -1, 0, 1, 0, 0, 0, 0, 1};
    assert_mat_close(m, rz, 1e-15);
    double v[3] = {1, 0, 0}, out[3];
    ew_quat_rotate(q, v, out);
    assert_close(out[0], 0, 0, 1e-15);
    assert_close(out[1], 1, 0, 1e-15);
    /* 90 degrees about x maps y to z */
    double axx[3] = {1, 0, 0};
    ew_quat_to_mat(ew_quat_from_axis_angle(axx, PI / 2), m);
    const double rx[9] = {1, 0, 0, 0, 0, -1, 0, 1, 0};
    assert_mat_close(m, rx, 1e-15);
    /* 180-degree rotations (w = 0) come back from matrices */
    const double flips[3][9] = {{1, 0, 0, 0, -1, 0, 0, 0, -1}, {-1, 0, 0, 0, 1, 0, 0, 0, -1},
                                {-1, 0, 0, 0, -1, 0, 0, 0, 1}};
    for (int k = 0; k < 3; k++) {
        ew_quat_t f = ew_mat_to_quat(flips[k]);
        double comp[4] = {f.w, f.x, f.y, f.z};
        for (int j = 0; j < 4; j++) assert_close(fabs(comp[j]), j == k + 1 ? 1.0 : 0.0, 0, 1e-15);
    }
    /* normalize: zero gives identity */
    ew_quat_t z = ew_quat_normalize((ew_quat_t){0, 0, 0, 0});
    assert_close(z.w, 1, 0, 0);
    ew_quat_t nq = ew_quat_normalize((ew_quat_t){0, 3, 0, 4});
    assert_close(nq.x, 0.6, 0, 1e-15);
    assert_close(nq.z, 0.8, 0, 1e-15);
}

static void test_quat_mat_roundtrip(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 5000; i++) {
        ew_quat_t q = rand_q(i);
        assert_true(q.w >= 0.0);
        assert_close(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z, 1.0, 0, 1e-14);
        double m[9];
        ew_quat_to_mat(q, m);
        assert_rotation(m, 1e-12);
        ew_quat_t p = ew_mat_to_quat(m);
        assert_true(p.w >= 0.0);
        double dot = fabs(p.w * q.w + p.x * q.x + p.y * q.y + p.z * q.z);
        assert_close(dot, 1.0, 0, 1e-12);
        assert_true(ew_quat_angle(p, q) < 1e-6);
        if (q.w > 1e-6) {
            assert_close(p.w, q.w, 0, 1e-9);
            assert_close(p.x, q.x, 0, 1e-9);
            assert_close(p.y, q.y, 0, 1e-9);
            assert_close(p.z, q.z, 0, 1e-9);
        }
        /* rotation of a vector agrees with the matrix */
        double v[3] = {0.3, -1.2, 2.5}, a[3], b[3];
        ew_quat_rotate(q, v, a);
        ew_mat_apply(m, v, b);
        for (int k = 0; k < 3; k++) assert_close(a[k], b[k], 0, 1e-12);
        /* in-place rotate */
        ew_quat_rotate(q, v, v);
        for (int k = 0; k < 3; k++) assert_close(v[k], b[k], 0, 1e-12);
    }
}

static void test_quat_product(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 2000; i++) {
        ew_quat_t a = rand_q(2 * i), b = rand_q(2 * i + 1);
        double ma[9], mb[9], mab[9], mq[9];
        ew_quat_to_mat(a, ma);
        ew_quat_to_mat(b, mb);
        ew_mat_mul(ma, mb, mab);
        ew_quat_to_mat(ew_quat_mul(a, b), mq);
        assert_mat_close(mq, mab, 1e-12);
        /* conjugate is the inverse / transpose */
        double mc[9], mt[9];
        ew_quat_to_mat(ew_quat_conj(a), mc);
        ew_mat_transpose(ma, mt);
        assert_mat_close(mc, mt, 1e-12);
        /* the angle is a metric invariant under common left/right factors */
        ew_quat_t c = rand_q(100000 + i);
        double ang = ew_quat_angle(a, b);
        assert_close(ew_quat_angle(ew_quat_mul(c, a), ew_quat_mul(c, b)), ang, 0, 1e-7);
        assert_close(ew_quat_angle(ew_quat_mul(a, c), ew_quat_mul(b, c)), ang, 0, 1e-7);
        /* and equals the angle of R_a^T R_b from its trace */
        double mat_t[9], rel[9];
        ew_mat_transpose(ma, mat_t);
        ew_mat_mul(mat_t, mb, rel);
        double ct = 0.5 * (rel[0] + rel[4] + rel[8] - 1.0);
        if (ct > -0.99 && ct < 0.99) assert_close(ang, acos(ct), 0, 1e-9);
        assert_close(ew_quat_angle(a, (ew_quat_t){-a.w, -a.x, -a.y, -a.z}), 0.0, 0, 1e-7);
    }
}

static void test_axis_angle(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 2000; i++) {
        ew_quat_t q = rand_q(i);
        double axis[3], ang;
        ew_quat_to_axis_angle(q, axis, &ang);
        assert_true(ang >= 0.0 && ang <= PI);
        assert_close(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2], 1.0, 0, 1e-12);
        ew_quat_t p = ew_quat_from_axis_angle(axis, ang);
        assert_true(ew_quat_angle(p, q) < 1e-6);
        /* geodesic angle of q vs q * axis-angle(theta) is theta */
        ew_rng_t r;
        ew_rng_init(&r, 7, i);
        double theta = PI * ew_rng_uniform(&r);
        double ax2[3] = {ew_rng_normal(&r), ew_rng_normal(&r), ew_rng_normal(&r)};
        ew_quat_t d = ew_quat_from_axis_angle(ax2, theta);
        assert_close(ew_quat_angle(q, ew_quat_mul(q, d)), theta, 0, 1e-9);
        assert_close(ew_quat_angle(q, ew_quat_mul(d, q)), theta, 0, 1e-9);
        /* the axis is fixed by the rotation */
        double out[3];
        ew_quat_rotate(d, ax2, out);
        for (int k = 0; k < 3; k++) assert_close(out[k], ax2[k], 0, 1e-12);
    }
    double axis[3], ang;
    ew_quat_to_axis_angle((ew_quat_t){1, 0, 0, 0}, axis, &ang);
    assert_close(ang, 0, 0, 0);
    assert_close(axis[2], 1, 0, 0);
    double zero[3] = {0, 0, 0};
    ew_quat_t id = ew_quat_from_axis_angle(zero, 1.0);
    assert_close(id.w, 1, 0, 0);
}

/* --- 6D --- */

static void test_rot6d(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 2000; i++) {
        double m[9], d6[6], m2[9];
        ew_quat_to_mat(rand_q(i), m);
        ew_mat_to_rot6d(m, d6);
        ew_rot6d_to_mat(d6, m2);
        assert_mat_close(m2, m, 1e-12);
        /* a non-orthogonal, unnormalised input gives a proper rotation whose
         * first row is a1/|a1| and whose second row lies in span(a1, a2) on
         * a2's side */
        ew_rng_t r;
        ew_rng_init(&r, 99, i);
        double a[6];
        for (int k = 0; k < 6; k++) a[k] = 3.0 * ew_rng_normal(&r);
        ew_rot6d_to_mat(a, m2);
        assert_rotation(m2, 1e-12);
        double n1 = sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
        for (int k = 0; k < 3; k++) assert_close(m2[k], a[k] / n1, 0, 1e-12);
        double dot_a2 = m2[3] * a[3] + m2[4] * a[4] + m2[5] * a[5];
        assert_true(dot_a2 > 0.0);
        /* a2 = (b1.a2) b1 + (b2.a2) b2 exactly (no b3 component) */
        double b3a2 = m2[6] * a[3] + m2[7] * a[4] + m2[8] * a[5];
        assert_close(b3a2, 0.0, 0, 1e-10);
    }
    /* PyTorch3D rows convention: a1 = x, a2 = y gives the identity; a1 = y, a2 = x gives rows y, x, -z */
    double d6[6] = {0, 2, 0, 5, 1, 0}, m[9];
    ew_rot6d_to_mat(d6, m);
    const double ex[9] = {0, 1, 0, 1, 0, 0, 0, 0, -1};
    assert_mat_close(m, ex, 1e-15);
}

/* --- RELION Euler --- */

/* RELION's elementary matrices (euler.cpp): Rz(a) = [[c,s,0],[-s,c,0],[0,0,1]],
 * Ry(b) = [[c,0,-s],[0,1,0],[s,0,c]]; A = Rz(psi) Ry(tilt) Rz(rot). */
static void relion_rz(double deg, double m[9])
{
    double c = cos(deg * PI / 180), s = sin(deg * PI / 180);
    double t[9] = {c, s, 0, -s, c, 0, 0, 0, 1};
    memcpy(m, t, sizeof t);
}
static void relion_ry(double deg, double m[9])
{
    double c = cos(deg * PI / 180), s = sin(deg * PI / 180);
    double t[9] = {c, 0, -s, 0, 1, 0, s, 0, c};
    memcpy(m, t, sizeof t);
}

static void test_euler_relion(void **state)
{
    (void)state;
    double m[9];
    /* hand-computed from RELION's formula */
    ew_euler_relion_to_mat(90, 0, 0, m);
    const double e1[9] = {0, 1, 0, -1, 0, 0, 0, 0, 1};
    assert_mat_close(m, e1, 1e-15);
    ew_euler_relion_to_mat(0, 90, 0, m);
    const double e2[9] = {0, 0, -1, 0, 1, 0, 1, 0, 0};
    assert_mat_close(m, e2, 1e-15);
    ew_euler_relion_to_mat(0, 0, 90, m);
    assert_mat_close(m, e1, 1e-15);
    /* rot = 90, tilt = 90, psi = 0: A = Ry(90) Rz(90) = [[0,0,-1],[-1,0,0],[0,1,0]] */
    ew_euler_relion_to_mat(90, 90, 0, m);
    const double e3[9] = {0, 0, -1, -1, 0, 0, 0, 1, 0};
    assert_mat_close(m, e3, 1e-15);
    /* (30, 40, 50): cos/sin written out */
    {
        double ca = cos(30 * PI / 180), sa = sin(30 * PI / 180);
        double cb = cos(40 * PI / 180), sb = sin(40 * PI / 180);
        double cg = cos(50 * PI / 180), sg = sin(50 * PI / 180);
        double ex[9] = {cg * cb * ca - sg * sa, cg * cb * sa + sg * ca, -cg * sb,
                        -sg * cb * ca - cg * sa, -sg * cb * sa + cg * ca, sg * sb,
                        sb * ca, sb * sa, cb};
        ew_euler_relion_to_mat(30, 40, 50, m);
        assert_mat_close(m, ex, 1e-15);
    }
    for (int i = 0; i < 2000; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 3, (uint64_t)i);
        double rot = 360 * ew_rng_uniform(&r) - 180, tilt = 180 * ew_rng_uniform(&r),
               psi = 360 * ew_rng_uniform(&r) - 180;
        ew_euler_relion_to_mat(rot, tilt, psi, m);
        assert_rotation(m, 1e-12);
        double a[9], b[9], c[9], ab[9];
        relion_rz(psi, a);
        relion_ry(tilt, b);
        relion_rz(rot, c);
        ew_mat_mul(a, b, ab);
        ew_mat_mul(ab, c, a);
        assert_mat_close(m, a, 1e-12);
        double r2, t2, p2, m2[9];
        ew_mat_to_euler_relion(m, &r2, &t2, &p2);
        assert_true(t2 >= 0.0 && t2 <= 180.0);
        assert_close(r2, rot, 0, 1e-7);
        assert_close(t2, tilt, 0, 1e-7);
        assert_close(p2, psi, 0, 1e-7);
        /* random matrices round trip through the angles */
        double mr[9];
        ew_quat_to_mat(rand_q((uint64_t)i), mr);
        ew_mat_to_euler_relion(mr, &r2, &t2, &p2);
        ew_euler_relion_to_mat(r2, t2, p2, m2);
        assert_mat_close(m2, mr, 1e-9);
    }
    /* gimbal lock: tilt 0 and 180 put the in-plane angle into psi */
    double r2, t2, p2, m2[9];
    ew_euler_relion_to_mat(25, 0, 35, m);
    ew_mat_to_euler_relion(m, &r2, &t2, &p2);
    assert_close(r2, 0, 0, 1e-12);
    assert_close(t2, 0, 0, 1e-12);
    assert_close(p2, 60, 0, 1e-9);
    ew_euler_relion_to_mat(25, 180, 35, m);
    ew_mat_to_euler_relion(m, &r2, &t2, &p2);
    assert_close(t2, 180, 0, 1e-12);
    ew_euler_relion_to_mat(r2, t2, p2, m2);
    assert_mat_close(m2, m, 1e-12);
}

/* --- uniform random rotations --- */

/* KS statistic sqrt(N) D of rotation angles against F(t) = (t - sin t) / pi,
 * the CDF of the density (1 - cos t) / pi of a uniform rotation's angle. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double ks_angles(double *t, size_t n)
{
    qsort(t, n, sizeof *t, cmp_double);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double f = (t[i] - sin(t[i])) / PI;
        double lo = fabs(f - (double)i / n), hi = fabs((double)(i + 1) / n - f);
        if (lo > d) d = lo;
        if (hi > d) d = hi;
    }
    return sqrt((double)n) * d;
}

static void test_random_uniform(void **state)
{
    (void)state;
    const size_t n = 20000;
    double *t = malloc(n * sizeof *t);
    double axis_mean[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double axis[3];
        ew_quat_to_axis_angle(rand_q(i), axis, &t[i]);
        for (int k = 0; k < 3; k++) axis_mean[k] += axis[k] / n;
    }
    /* 1% critical value of the Kolmogorov distribution is 1.628 */
    double ks = ks_angles(t, n);
    print_message("uniform rotations: KS sqrt(N) D = %.3f (N = %zu, 1%% critical 1.628)\n", ks, n);
    assert_true(ks < 1.628);
    /* the axis is isotropic: mean of unit vectors within 4 sigma = 4 / sqrt(3 N) */
    for (int k = 0; k < 3; k++) assert_true(fabs(axis_mean[k]) < 4.0 / sqrt(3.0 * n));
    /* the test has power: ZYZ Euler angles drawn uniformly are not uniform
     * rotations, and their angles fail the same test */
    for (size_t i = 0; i < n; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 5, i);
        double m[9], axis[3];
        ew_euler_relion_to_mat(360 * ew_rng_uniform(&r), 180 * ew_rng_uniform(&r),
                               360 * ew_rng_uniform(&r), m);
        ew_quat_to_axis_angle(ew_mat_to_quat(m), axis, &t[i]);
    }
    double ks_bad = ks_angles(t, n);
    print_message("naive Euler sampler: KS sqrt(N) D = %.3f (must fail)\n", ks_bad);
    assert_true(ks_bad > 1.628);
    free(t);
}

/* --- the refined 600-cell --- */

static void test_grid_counts(void **state)
{
    (void)state;
    for (int n = 1; n <= 10; n++) {
        ew_rotgrid_t g;
        assert_ok(ew_rotgrid_600cell(n, &g));
        size_t expect = (size_t)10 * (5 * n * n * n + n);
        assert_int_equal(g.n, expect);
        assert_int_equal(g.level, n);
        double ws = 0.0, wmin = 1e300, wmax = 0.0;
        for (size_t i = 0; i < g.n; i++) {
            ew_quat_t q = g.quat[i];
            assert_true(q.w >= 0.0);
            assert_close(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z, 1.0, 0, 1e-12);
            ws += g.weight[i];
            if (g.weight[i] < wmin) wmin = g.weight[i];
            if (g.weight[i] > wmax) wmax = g.weight[i];
        }
        assert_close(ws, 1.0, 0, 1e-12);
        assert_true(wmin > 0.0);
        assert_true(wmax / wmin < 2.0); /* near-uniform cells */
        /* the spacing is about (2 pi / 5) / n */
        assert_close(g.spacing * n, 2 * PI / 5, 0.1, 0);
        ew_rotgrid_free(&g);
        assert_null(g.quat);
    }
    ew_rotgrid_t g;
    assert_int_equal(ew_rotgrid_600cell(0, &g), EW_ERR_ARG);
    assert_int_equal(ew_rotgrid_600cell(41, &g), EW_ERR_ARG);
    ew_rotgrid_free(NULL);
}

/* level 1: the 120 vertices are the binary icosahedral group, so the 60
 * rotations are closed under composition and at least 72 degrees apart */
static void test_grid_level1_group(void **state)
{
    (void)state;
    ew_rotgrid_t g;
    assert_ok(ew_rotgrid_600cell(1, &g));
    for (size_t i = 0; i < g.n; i++)
        for (size_t j = 0; j < g.n; j++) {
            ew_quat_t p = ew_quat_mul(g.quat[i], g.quat[j]);
            double ang;
            ew_rotgrid_nearest(&g, p, &ang);
            assert_true(ang < 1e-9);
            if (i != j) assert_true(ew_quat_angle(g.quat[i], g.quat[j]) > 72.0 * PI / 180 - 1e-9);
        }
    assert_close(g.spacing, 72.0 * PI / 180, 0, 1e-9);
    ew_rotgrid_free(&g);
}

/* distinct points; the weighted grid integrates smooth functions */
static void test_grid_quadrature(void **state)
{
    (void)state;
    for (int n = 2; n <= 4; n++) {
        ew_rotgrid_t g;
        assert_ok(ew_rotgrid_600cell(n, &g));
        double dmin = 10;
        for (size_t i = 0; i < g.n; i++)
            for (size_t j = i + 1; j < g.n; j++) {
                double d = ew_quat_angle(g.quat[i], g.quat[j]);
                if (d < dmin) dmin = d;
            }
        assert_true(dmin > 0.5 * g.spacing);
        ew_rotgrid_free(&g);
    }
    /* The grid is a spherical design (low-order polynomials are integrated
     * exactly with or without weights), so check the weights on a peaked
     * function, f = exp(k (q.p)^2), k = 8, whose mean over uniform rotations
     * is int exp(k t^2) (2/pi) sqrt(1 - t^2) dt (Simpson on t = cos u). */
    const double kap = 8.0;
    double exact = 0.0;
    {
        const int m = 20000; /* t = cos u, dt sqrt(1-t^2) = sin^2 u du, u in [0, pi] */
        for (int i = 0; i <= m; i++) {
            double u = PI * i / m, su = sin(u);
            double f = exp(kap * cos(u) * cos(u)) * su * su * (2 / PI);
            exact += f * (i == 0 || i == m ? 1 : (i % 2 ? 4 : 2));
        }
        exact *= PI / m / 3;
    }
    for (int n = 2; n <= 8; n += 3) {
        ew_rotgrid_t g;
        assert_ok(ew_rotgrid_600cell(n, &g));
        double ew_sum = 0, eu_sum = 0;
        for (uint64_t trial = 0; trial < 8; trial++) {
            ew_quat_t p = rand_q(900000 + trial);
            double sw = 0, su = 0;
            for (size_t i = 0; i < g.n; i++) {
                ew_quat_t q = g.quat[i];
                double t = q.w * p.w + q.x * p.x + q.y * p.y + q.z * p.z;
                double f = exp(kap * t * t);
                sw += g.weight[i] * f;
                su += f / g.n;
            }
            ew_sum += fabs(sw / exact - 1) / 8;
            eu_sum += fabs(su / exact - 1) / 8;
        }
        print_message("level %d: mean relative error of peaked integral: weighted %.2e, unweighted %.2e\n",
                      n, ew_sum, eu_sum);
        assert_true(ew_sum < eu_sum);
        assert_true(ew_sum < 5e-4);
        ew_rotgrid_free(&g);
    }
}

static void test_grid_covering(void **state)
{
    (void)state;
    double rad[7] = {0};
    print_message(" level  rotations  spacing(deg)  covering radius(deg)  radius*level(deg)\n");
    for (int n = 1; n <= 6; n++) {
        ew_rotgrid_t g;
        assert_ok(ew_rotgrid_600cell(n, &g));
        double worst = 0.0;
        for (uint64_t i = 0; i < 2000; i++) {
            ew_quat_t q = rand_q(500000 + i);
            double ang;
            size_t k = ew_rotgrid_nearest(&g, q, &ang);
            assert_true(k < g.n);
            if (ang > worst) worst = ang;
            if (i < 20) { /* brute-force oracle */
                double best = 10;
                for (size_t j = 0; j < g.n; j++) {
                    double a = ew_quat_angle(g.quat[j], q);
                    if (a < best) best = a;
                }
                assert_close(ang, best, 0, 1e-12);
            }
        }
        rad[n] = worst;
        print_message(" %5d  %9zu  %12.3f  %20.3f  %17.2f\n", n, g.n, g.spacing * 180 / PI,
                      worst * 180 / PI, worst * n * 180 / PI);
        /* nearest of a grid point is itself */
        for (size_t j = 0; j < g.n; j += 97) assert_int_equal(ew_rotgrid_nearest(&g, g.quat[j], NULL), j);
        ew_rotgrid_free(&g);
    }
    for (int n = 2; n <= 6; n++) {
        assert_true(rad[n] < rad[n - 1]);
        double ratio = rad[n] * n / rad[1];
        assert_true(ratio > 0.6 && ratio < 1.4);
    }
}

static void test_grid_random(void **state)
{
    (void)state;
    ew_rotgrid_t g, h;
    assert_ok(ew_rotgrid_random(1000, 42, &g));
    assert_ok(ew_rotgrid_random(1000, 42, &h));
    assert_int_equal(g.n, 1000);
    assert_int_equal(g.level, 0);
    for (size_t i = 0; i < g.n; i++) {
        assert_close(g.weight[i], 1e-3, 0, 1e-15);
        assert_memory_equal(&g.quat[i], &h.quat[i], sizeof g.quat[i]);
    }
    assert_true(g.spacing > 0.0);
    ew_rotgrid_free(&g);
    ew_rotgrid_free(&h);
    assert_int_equal(ew_rotgrid_random(0, 1, &g), EW_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quat_mat_hand),     cmocka_unit_test(test_quat_mat_roundtrip),
        cmocka_unit_test(test_quat_product),      cmocka_unit_test(test_axis_angle),
        cmocka_unit_test(test_rot6d),             cmocka_unit_test(test_euler_relion),
        cmocka_unit_test(test_random_uniform),    cmocka_unit_test(test_grid_counts),
        cmocka_unit_test(test_grid_level1_group), cmocka_unit_test(test_grid_quadrature),
        cmocka_unit_test(test_grid_covering),     cmocka_unit_test(test_grid_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
