/* ewald geom: quaternions, matrices, the 6D representation, RELION Euler
 * angles and uniformly random rotations. The rotation grids are in
 * rotgrid.c. Conventions are stated once in geom.h. */
#include "geom/geom.h"

#include <float.h>
#include <math.h>

#include "core/util.h"

static ew_quat_t canon(ew_quat_t q)
{
    if (q.w < 0.0) {
        q.w = -q.w;
        q.x = -q.x;
        q.y = -q.y;
        q.z = -q.z;
    }
    return q;
}

ew_quat_t ew_quat_normalize(ew_quat_t q)
{
    double n = sqrt(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z);
    if (!(n > 0.0) || !isfinite(n)) return (ew_quat_t){1.0, 0.0, 0.0, 0.0};
    return (ew_quat_t){q.w / n, q.x / n, q.y / n, q.z / n};
}

ew_quat_t ew_quat_mul(ew_quat_t a, ew_quat_t b)
{
    ew_quat_t c;
    c.w = a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z;
    c.x = a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y;
    c.y = a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x;
    c.z = a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w;
    return c;
}

ew_quat_t ew_quat_conj(ew_quat_t q) { return (ew_quat_t){q.w, -q.x, -q.y, -q.z}; }

void ew_quat_to_mat(ew_quat_t q, double m[9])
{
    double w = q.w, x = q.x, y = q.y, z = q.z;
    m[0] = 1.0 - 2.0 * (y * y + z * z);
    m[1] = 2.0 * (x * y - w * z);
    m[2] = 2.0 * (x * z + w * y);
    m[3] = 2.0 * (x * y + w * z);
    m[4] = 1.0 - 2.0 * (x * x + z * z);
    m[5] = 2.0 * (y * z - w * x);
    m[6] = 2.0 * (x * z - w * y);
    m[7] = 2.0 * (y * z + w * x);
    m[8] = 1.0 - 2.0 * (x * x + y * y);
}

/* Shepperd (1978): pick the largest of 4w^2, 4x^2, 4y^2, 4z^2 (read off the
 * trace and the diagonal) as the pivot, so no division by a small number. */
ew_quat_t ew_mat_to_quat(const double m[9])
{
    double tr = m[0] + m[4] + m[8];
    double d[4] = {tr, m[0], m[4], m[8]};
    int k = 0;
    for (int i = 1; i < 4; i++)
        if (d[i] > d[k]) k = i;
    ew_quat_t q;
    if (k == 0) {
        double s = 2.0 * sqrt(1.0 + tr); /* 4w */
        q.w = 0.25 * s;
        q.x = (m[7] - m[5]) / s;
        q.y = (m[2] - m[6]) / s;
        q.z = (m[3] - m[1]) / s;
    } else if (k == 1) {
        double s = 2.0 * sqrt(1.0 + m[0] - m[4] - m[8]); /* 4x */
        q.w = (m[7] - m[5]) / s;
        q.x = 0.25 * s;
        q.y = (m[1] + m[3]) / s;
        q.z = (m[2] + m[6]) / s;
    } else if (k == 2) {
        double s = 2.0 * sqrt(1.0 - m[0] + m[4] - m[8]); /* 4y */
        q.w = (m[2] - m[6]) / s;
        q.x = (m[1] + m[3]) / s;
        q.y = 0.25 * s;
        q.z = (m[5] + m[7]) / s;
    } else {
        double s = 2.0 * sqrt(1.0 - m[0] - m[4] + m[8]); /* 4z */
        q.w = (m[3] - m[1]) / s;
        q.x = (m[2] + m[6]) / s;
        q.y = (m[5] + m[7]) / s;
        q.z = 0.25 * s;
    }
    return canon(ew_quat_normalize(q));
}

void ew_quat_rotate(ew_quat_t q, const double v[3], double out[3])
{
    double m[9], t[3];
    ew_quat_to_mat(q, m);
    ew_mat_apply(m, v, t);
    out[0] = t[0];
    out[1] = t[1];
    out[2] = t[2];
}

ew_quat_t ew_quat_from_axis_angle(const double axis[3], double angle)
{
    double n = sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]);
    if (!(n > 0.0)) return (ew_quat_t){1.0, 0.0, 0.0, 0.0};
    double s = sin(0.5 * angle) / n;
    return canon((ew_quat_t){cos(0.5 * angle), axis[0] * s, axis[1] * s, axis[2] * s});
}

void ew_quat_to_axis_angle(ew_quat_t q, double axis[3], double *angle)
{
    q = canon(q);
    double s = sqrt(q.x * q.x + q.y * q.y + q.z * q.z);
    *angle = 2.0 * atan2(s, q.w);
    if (s > 0.0) {
        axis[0] = q.x / s;
        axis[1] = q.y / s;
        axis[2] = q.z / s;
    } else {
        axis[0] = 0.0;
        axis[1] = 0.0;
        axis[2] = 1.0;
    }
}

void ew_mat_mul(const double a[9], const double b[9], double c[9])
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            c[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
}

void ew_mat_transpose(const double m[9], double t[9])
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) t[3 * j + i] = m[3 * i + j];
}

void ew_mat_apply(const double m[9], const double v[3], double out[3])
{
    for (int i = 0; i < 3; i++) out[i] = m[3 * i] * v[0] + m[3 * i + 1] * v[1] + m[3 * i + 2] * v[2];
}

/* 2 atan2(|vec(a* b)|, |scalar(a* b)|) equals 2 acos(|a.b|) for unit
 * quaternions but keeps full precision for small angles. */
double ew_quat_angle(ew_quat_t a, ew_quat_t b)
{
    ew_quat_t d = ew_quat_mul(ew_quat_conj(a), b);
    double s = sqrt(d.x * d.x + d.y * d.y + d.z * d.z);
    return 2.0 * atan2(s, fabs(d.w));
}

/* ---- 6D ---- */

void ew_rot6d_to_mat(const double d6[6], double m[9])
{
    double b1[3], b2[3], b3[3];
    double n1 = sqrt(d6[0] * d6[0] + d6[1] * d6[1] + d6[2] * d6[2]);
    EW_ASSERT(n1 > 0.0);
    for (int i = 0; i < 3; i++) b1[i] = d6[i] / n1;
    double dot = b1[0] * d6[3] + b1[1] * d6[4] + b1[2] * d6[5];
    for (int i = 0; i < 3; i++) b2[i] = d6[3 + i] - dot * b1[i];
    double n2 = sqrt(b2[0] * b2[0] + b2[1] * b2[1] + b2[2] * b2[2]);
    EW_ASSERT(n2 > 0.0);
    for (int i = 0; i < 3; i++) b2[i] /= n2;
    b3[0] = b1[1] * b2[2] - b1[2] * b2[1];
    b3[1] = b1[2] * b2[0] - b1[0] * b2[2];
    b3[2] = b1[0] * b2[1] - b1[1] * b2[0];
    for (int i = 0; i < 3; i++) {
        m[i] = b1[i];
        m[3 + i] = b2[i];
        m[6 + i] = b3[i];
    }
}

void ew_mat_to_rot6d(const double m[9], double d6[6])
{
    for (int i = 0; i < 6; i++) d6[i] = m[i];
}

/* ---- RELION Euler angles ----
 * RELION's euler.cpp writes, with alpha = rot, beta = tilt, gamma = psi,
 *   A = [ cg cb ca - sg sa,   cg cb sa + sg ca,  -cg sb ]
 *       [-sg cb ca - cg sa,  -sg cb sa + cg ca,   sg sb ]
 *       [ sb ca,              sb sa,              cb    ]
 * i.e. Rz(psi) Ry(tilt) Rz(rot) with RELION's rotation matrices
 * Rz(a) = [[c, s, 0], [-s, c, 0], [0, 0, 1]], Ry(b) = [[c, 0, -s], [0, 1, 0], [s, 0, c]]. */
void ew_euler_relion_to_mat(double rot_deg, double tilt_deg, double psi_deg, double m[9])
{
    const double d2r = EW_PI / 180.0;
    double ca = cos(rot_deg * d2r), sa = sin(rot_deg * d2r);
    double cb = cos(tilt_deg * d2r), sb = sin(tilt_deg * d2r);
    double cg = cos(psi_deg * d2r), sg = sin(psi_deg * d2r);
    m[0] = cg * cb * ca - sg * sa;
    m[1] = cg * cb * sa + sg * ca;
    m[2] = -cg * sb;
    m[3] = -sg * cb * ca - cg * sa;
    m[4] = -sg * cb * sa + cg * ca;
    m[5] = sg * sb;
    m[6] = sb * ca;
    m[7] = sb * sa;
    m[8] = cb;
}

/* Inverse as RELION's Euler_matrix2angles, taking sin(tilt) >= 0: from the
 * third column psi, from the third row rot, tilt from |sb| and cb. */
void ew_mat_to_euler_relion(const double m[9], double *rot_deg, double *tilt_deg, double *psi_deg)
{
    const double r2d = 180.0 / EW_PI;
    double abs_sb = sqrt(m[2] * m[2] + m[5] * m[5]);
    double rot, tilt, psi;
    if (abs_sb > 16.0 * FLT_EPSILON) {
        psi = atan2(m[5], -m[2]);
        rot = atan2(m[7], m[6]);
        tilt = atan2(abs_sb, m[8]);
    } else if (m[8] > 0.0) {
        rot = 0.0;
        tilt = 0.0;
        psi = atan2(-m[3], m[0]);
    } else {
        rot = 0.0;
        tilt = EW_PI;
        psi = atan2(m[3], -m[0]);
    }
    *rot_deg = rot * r2d;
    *tilt_deg = tilt * r2d;
    *psi_deg = psi * r2d;
}

/* ---- random rotations ---- */

ew_quat_t ew_quat_random(ew_rng_t *r)
{
    double u1 = ew_rng_uniform(r), u2 = ew_rng_uniform(r), u3 = ew_rng_uniform(r);
    double a = sqrt(1.0 - u1), b = sqrt(u1);
    double t2 = 2.0 * EW_PI * u2, t3 = 2.0 * EW_PI * u3;
    ew_quat_t q = {b * cos(t3), a * sin(t2), a * cos(t2), b * sin(t3)};
    return canon(q);
}
