/* ewald physics: Peng 1996 electron scattering factors and exact
 * pixel-integrated projections of atoms (see peng.h). */
#include "physics/peng.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

const ew_peng_coef_t *ew_peng_coef(int z)
{
    if (z < 1 || z > EW_PENG_ZMAX) return NULL;
    return &ew_peng_table[z];
}

double ew_peng_fe(int z, double s)
{
    const ew_peng_coef_t *c = ew_peng_coef(z);
    EW_ASSERT(c != NULL);
    double f = 0.0;
    for (int i = 0; i < EW_PENG_NG; i++) f += c->a[i] * exp(-(double)c->b[i] * s * s);
    return f;
}

double ew_peng_projected(int z, double b_factor, double r)
{
    const ew_peng_coef_t *c = ew_peng_coef(z);
    EW_ASSERT(c != NULL && b_factor >= 0.0);
    double v = 0.0;
    for (int i = 0; i < EW_PENG_NG; i++) {
        double bp = c->b[i] + b_factor;
        v += c->a[i] * (4.0 * EW_PI / bp) * exp(-4.0 * EW_PI * EW_PI * r * r / bp);
    }
    return EW_PENG_C_VA2 * v;
}

double ew_peng_volume_integral(int z)
{
    return EW_PENG_C_VA2 * ew_peng_fe(z, 0.0);
}

double ew_peng_atomic_mass(int z)
{
    static const double m[31] = {0.0,    1.008,  4.0026, 6.94,   9.0122, 10.81,  12.011, 14.007,
                                 15.999, 18.998, 20.180, 22.990, 24.305, 26.982, 28.085, 30.974,
                                 32.06,  35.45,  39.948, 39.098, 40.078, 44.956, 47.867, 50.942,
                                 51.996, 54.938, 55.845, 58.933, 58.693, 63.546, 65.38};
    if (z >= 1 && z <= 30) return m[z];
    switch (z) {
    case 34: return 78.971;  /* Se */
    case 35: return 79.904;  /* Br */
    case 53: return 126.904; /* I */
    case 78: return 195.084; /* Pt */
    case 79: return 196.967; /* Au */
    case 80: return 200.592; /* Hg */
    case 82: return 207.2;   /* Pb */
    case 92: return 238.029; /* U */
    default: return z > 0 ? 2.5 * z : 0.0;
    }
}

static ew_status_t atoms_alloc(ew_peng_atoms_t *a, size_t n, int ng)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->ng = ng;
    a->xyz = ew_alloc_array(n, 3 * sizeof(float));
    a->k = ew_alloc_array(n, (size_t)ng * sizeof(float));
    a->amp = ew_alloc_array(n, (size_t)ng * sizeof(float));
    a->reach = ew_alloc_array(n, sizeof(float));
    if (!a->xyz || !a->k || !a->amp || !a->reach) {
        ew_peng_atoms_free(a);
        return EW_ERR_NOMEM;
    }
    return EW_OK;
}

static void set_xyz(ew_peng_atoms_t *a, const float *xyz, const double shift[3])
{
    for (size_t i = 0; i < a->n; i++)
        for (int d = 0; d < 3; d++) a->xyz[3 * i + d] = (float)(xyz[3 * i + d] - (shift ? shift[d] : 0.0));
}

ew_status_t ew_peng_atoms_init(ew_peng_atoms_t *a, const float *xyz, const uint8_t *z, const float *b_factor,
                               const float *occupancy, size_t n, double b_extra, const double shift[3])
{
    EW_ASSERT(a && (n == 0 || (xyz && z)));
    memset(a, 0, sizeof *a);
    if (!(b_extra >= 0.0) || !isfinite(b_extra))
        return ew_fail(EW_ERR_ARG, "extra B-factor = %g A^2 is not a finite non-negative number", b_extra);
    for (size_t i = 0; i < n; i++) {
        if (z[i] < 1 || z[i] > EW_PENG_ZMAX)
            return ew_fail(EW_ERR_RANGE, "atom %zu: atomic number %d has no Peng 1996 coefficients", i, z[i]);
        double b = b_factor ? b_factor[i] : 0.0;
        if (!(b >= 0.0) || !isfinite(b))
            return ew_fail(EW_ERR_RANGE, "atom %zu: B-factor = %g A^2 is not a finite non-negative number", i, b);
    }
    EW_TRY(atoms_alloc(a, n, EW_PENG_NG));
    set_xyz(a, xyz, shift);
    for (size_t i = 0; i < n; i++) {
        const ew_peng_coef_t *c = &ew_peng_table[z[i]];
        double occ = occupancy ? occupancy[i] : 1.0;
        double bb = (b_factor ? b_factor[i] : 0.0) + b_extra, reach = 0.0;
        for (int g = 0; g < EW_PENG_NG; g++) {
            double k = 2.0 * EW_PI / sqrt(c->b[g] + bb);
            a->k[EW_PENG_NG * i + g] = (float)k;
            a->amp[EW_PENG_NG * i + g] = (float)(EW_PENG_C_VA2 * c->a[g] * occ);
            double r = EW_PENG_CUTOFF_SIGMA / (sqrt(2.0) * k);
            if (r > reach) reach = r;
        }
        a->reach[i] = (float)reach;
    }
    return EW_OK;
}

ew_status_t ew_peng_atoms_init_volume(ew_peng_atoms_t *a, const float *xyz, const uint8_t *z,
                                      const float *occupancy, size_t n, double volume_per_da, double width,
                                      const double shift[3])
{
    EW_ASSERT(a && (n == 0 || (xyz && z)));
    memset(a, 0, sizeof *a);
    if (!(volume_per_da > 0.0) || !(width > 0.0))
        return ew_fail(EW_ERR_ARG, "excluded volume: volume per Da = %g A^3 and width = %g A must be positive",
                       volume_per_da, width);
    for (size_t i = 0; i < n; i++)
        if (z[i] < 1 || z[i] > EW_PENG_ZMAX)
            return ew_fail(EW_ERR_RANGE, "atom %zu: atomic number %d is outside 1..98", i, z[i]);
    EW_TRY(atoms_alloc(a, n, 1));
    set_xyz(a, xyz, shift);
    double k = 1.0 / (sqrt(2.0) * width);
    for (size_t i = 0; i < n; i++) {
        double occ = occupancy ? occupancy[i] : 1.0;
        /* 1.08: implicit hydrogens, about 8% of a protein's mass. */
        a->amp[i] = (float)(volume_per_da * 1.08 * ew_peng_atomic_mass(z[i]) * occ);
        a->k[i] = (float)k;
        a->reach[i] = (float)(EW_PENG_CUTOFF_SIGMA * width);
    }
    return EW_OK;
}

void ew_peng_atoms_free(ew_peng_atoms_t *a)
{
    if (!a) return;
    ew_free(a->xyz);
    ew_free(a->k);
    ew_free(a->amp);
    ew_free(a->reach);
    memset(a, 0, sizeof *a);
}

#define WMAX 1024

/* erf by linear interpolation in a table over [-ERF_X, ERF_X] (beyond: +-1).
 * Spacing 12/16384: interpolation error below 2e-7, the float rounding of
 * erff itself. Pixel sums telescope, so integrals are exact whatever the
 * error of erf. */
#define ERF_X 6.0f
#define ERF_N 16384
static float erf_tab[ERF_N + 2];
static atomic_int erf_ready;

static void erf_table_init(void)
{
    if (atomic_load_explicit(&erf_ready, memory_order_acquire)) return;
#pragma omp critical(ew_peng_erf_table)
    {
        if (!atomic_load_explicit(&erf_ready, memory_order_relaxed)) {
            for (int i = 0; i <= ERF_N + 1; i++) erf_tab[i] = (float)erf(-ERF_X + 2.0 * ERF_X * i / ERF_N);
            atomic_store_explicit(&erf_ready, 1, memory_order_release);
        }
    }
}

static inline float erf_fast(float x)
{
    float t = (x + ERF_X) * (ERF_N / (2.0f * ERF_X));
    if (t <= 0.0f) return -1.0f;
    if (t >= (float)ERF_N) return 1.0f;
    int i = (int)t;
    float f = t - (float)i;
    return erf_tab[i] + f * (erf_tab[i + 1] - erf_tab[i]);
}

/* Pixel-integrated 1D profile: d[j] = erf(kp (i0 + j + 1/2 - u)) - erf(kp (i0 + j - 1/2 - u)). */
static void profile(float kp, double u, int i0, int ni, float *d)
{
    float prev = erf_fast(kp * (float)(i0 - 0.5 - u));
    for (int j = 0; j < ni; j++) {
        float cur = erf_fast(kp * (float)(i0 + j + 0.5 - u));
        d[j] = cur - prev;
        prev = cur;
    }
}

void ew_peng_project(const ew_peng_atoms_t *a, const double R[9], double cx, double cy, double pixel, float *img,
                     int nx, int ny)
{
    EW_ASSERT(a && R && img && pixel > 0.0 && nx > 0 && ny > 0);
    erf_table_init();
    float dx[WMAX], dy[WMAX];
    const double inv = 1.0 / pixel;
    const float norm = (float)(0.25 * inv * inv);
    for (size_t i = 0; i < a->n; i++) {
        const float *p = a->xyz + 3 * i;
        double u = cx + (R[0] * p[0] + R[1] * p[1] + R[2] * p[2]) * inv;
        double v = cy + (R[3] * p[0] + R[4] * p[1] + R[5] * p[2]) * inv;
        double reach_px = a->reach[i] * inv;
        if (u + reach_px < -0.5 || v + reach_px < -0.5 || u - reach_px > nx - 0.5 || v - reach_px > ny - 0.5)
            continue;
        for (int g = 0; g < a->ng; g++) {
            float k = a->k[(size_t)a->ng * i + g];
            float amp = a->amp[(size_t)a->ng * i + g] * norm;
            double r = EW_PENG_CUTOFF_SIGMA / (sqrt(2.0) * k) * inv;
            int x0 = (int)ceil(u - r - 0.5), x1 = (int)floor(u + r + 0.5);
            int y0 = (int)ceil(v - r - 0.5), y1 = (int)floor(v + r + 0.5);
            if (x0 < 0) x0 = 0;
            if (y0 < 0) y0 = 0;
            if (x1 > nx - 1) x1 = nx - 1;
            if (y1 > ny - 1) y1 = ny - 1;
            if (x1 - x0 + 1 > WMAX) x1 = x0 + WMAX - 1;
            if (y1 - y0 + 1 > WMAX) y1 = y0 + WMAX - 1;
            if (x1 < x0 || y1 < y0) continue;
            float kp = (float)(k * pixel);
            int wx = x1 - x0 + 1, wy = y1 - y0 + 1;
            profile(kp, u, x0, wx, dx);
            profile(kp, v, y0, wy, dy);
            for (int jy = 0; jy < wy; jy++) {
                float s = amp * dy[jy];
                float *row = img + (size_t)(y0 + jy) * nx + x0;
                for (int jx = 0; jx < wx; jx++) row[jx] += s * dx[jx];
            }
        }
    }
}
