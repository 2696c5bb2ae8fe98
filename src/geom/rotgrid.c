/* ewald geom: rotation grids (the refined 600-cell and random sets).
 *
 * The refined 600-cell follows Loh & Elser, PRE 80, 026705 (2009), as
 * Dragonfly's quat.c builds it:
 *  - the 120 vertices of the 600-cell on the unit 3-sphere (the 24 of
 *    (+-1/2)^4 and +-e_i, and the 96 even permutations of
 *    (+-tau/2, +-1/2, +-1/(2 tau), 0));
 *  - edges join vertices at the minimal distance (720), faces are triangles
 *    of edges (1200), cells tetrahedra (600);
 *  - each cell is divided n times along each edge; every point of the flat
 *    cell sum_i c_i v_i / n (c_i >= 0 integers, sum c_i = n) belongs to
 *    exactly one vertex, edge, face or cell interior (the c_i that are > 0);
 *  - a point v_q (before projection onto the sphere) in an element whose
 *    chosen containing cell has vertex sum v_c gets the weight
 *      f * (v_q . v_c) / (|v_q|^4 |v_c|),   f = 5/6 (vertex), 35/36 (edge),
 *    1 (face, cell interior), which corrects for the projection's Jacobian;
 *  - of each +-q pair one is kept: the one whose first non-zero exact
 *    coordinate digit is positive; it is then stored with w >= 0.
 * Coordinates are held exactly as (a + b tau) / (2 n) with integers a, b,
 * so boundary points shared by several cells are recognised exactly.
 * The rotations are ordered by the cell traversal (not Dragonfly's order).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom.h"

#define NV 120
#define TAU 1.6180339887498948482

typedef struct {
    int a[4], b[4]; /* coordinate k = (a[k] + b[k] tau) / (2 n) */
} exact4_t;

static double ex_val(int a, int b, int n) { return ((double)a + (double)b * TAU) / (2.0 * n); }

/* The 120 vertices at scale 1 (coordinate = (a + b tau) / 2). */
static int make_vertices(exact4_t *v)
{
    int idx = 0;
    for (int h = 0; h < 16; h++) {
        for (int k = 0; k < 4; k++) {
            v[idx].a[k] = (h >> k) & 1 ? 1 : -1;
            v[idx].b[k] = 0;
        }
        idx++;
    }
    for (int s = -1; s <= 1; s += 2)
        for (int i = 0; i < 4; i++) {
            for (int k = 0; k < 4; k++) {
                v[idx].a[k] = k == i ? 2 * s : 0;
                v[idx].b[k] = 0;
            }
            idx++;
        }
    static const int perm[12][4] = {{0, 1, 2, 3}, {0, 2, 3, 1}, {0, 3, 1, 2}, {1, 2, 0, 3},
                                    {1, 0, 3, 2}, {1, 3, 2, 0}, {2, 0, 1, 3}, {2, 3, 0, 1},
                                    {2, 1, 3, 0}, {3, 1, 0, 2}, {3, 0, 2, 1}, {3, 2, 1, 0}};
    for (int sg = 0; sg < 8; sg++) {
        int s0 = sg & 1 ? 1 : -1, s1 = sg & 2 ? 1 : -1, s2 = sg & 4 ? 1 : -1;
        /* base (s0 tau/2, s1/2, s2/(2 tau), 0); 1/tau = tau - 1 */
        int ba[4] = {0, s1, -s2, 0}, bb[4] = {s0, 0, s2, 0};
        for (int p = 0; p < 12; p++) {
            for (int k = 0; k < 4; k++) {
                v[idx].a[k] = ba[perm[p][k]];
                v[idx].b[k] = bb[perm[p][k]];
            }
            idx++;
        }
    }
    return idx;
}

/* +1 if the first non-zero digit of (a0, b0, a1, b1, ...) is positive. */
static int first_positive(const exact4_t *p)
{
    for (int k = 0; k < 4; k++) {
        if (p->a[k] != 0) return p->a[k] > 0;
        if (p->b[k] != 0) return p->b[k] > 0;
    }
    return 0;
}

typedef struct {
    int nsel;        /* points stored so far */
    int cap;
    ew_quat_t *q;
    double *w;
} emit_t;

/* Emit every interior point of the element spanned by vertices vs[0..k-1]
 * (scale-1 exact coordinates) at subdivision n: compositions c_i >= 1 of n. */
static void emit_element(emit_t *e, const exact4_t *v, const int *vs, int k, int n, double f,
                         const double vc[4])
{
    double nvc = sqrt(vc[0] * vc[0] + vc[1] * vc[1] + vc[2] * vc[2] + vc[3] * vc[3]);
    /* c[0..k-2] >= 1 with c[k-1] = n - sum >= 1; unused loop levels run once */
    int c0max = k > 1 ? n : 1;
    for (int c0 = 1; c0 <= c0max; c0++)
        for (int c1 = 1; c1 <= (k > 2 ? n - c0 : 1); c1++)
            for (int c2 = 1; c2 <= (k > 3 ? n - c0 - c1 : 1); c2++) {
                int cc[4] = {c0, c1, c2, 0};
                int used = 0;
                for (int i = 0; i < k - 1; i++) used += cc[i];
                cc[k - 1] = n - used;
                if (cc[k - 1] < 1) continue;
                exact4_t p;
                for (int d = 0; d < 4; d++) {
                    p.a[d] = 0;
                    p.b[d] = 0;
                    for (int i = 0; i < k; i++) {
                        p.a[d] += cc[i] * v[vs[i]].a[d];
                        p.b[d] += cc[i] * v[vs[i]].b[d];
                    }
                }
                if (!first_positive(&p)) continue;
                double vq[4], n2 = 0.0, dot = 0.0;
                for (int d = 0; d < 4; d++) {
                    vq[d] = ex_val(p.a[d], p.b[d], n);
                    n2 += vq[d] * vq[d];
                    dot += vq[d] * vc[d];
                }
                double nq = sqrt(n2);
                EW_ASSERT(e->nsel < e->cap);
                ew_quat_t q = {vq[0] / nq, vq[1] / nq, vq[2] / nq, vq[3] / nq};
                if (q.w < 0.0) q = (ew_quat_t){-q.w, -q.x, -q.y, -q.z};
                e->q[e->nsel] = q;
                e->w[e->nsel] = f * dot / (n2 * n2 * nvc);
                e->nsel++;
            }
}

static ew_status_t grid_alloc(ew_rotgrid_t *g, size_t n)
{
    g->quat = ew_alloc_array(n, sizeof *g->quat);
    g->weight = ew_alloc_array(n, sizeof *g->weight);
    if (!g->quat || !g->weight) {
        ew_rotgrid_free(g);
        return EW_ERR_NOMEM;
    }
    g->n = n;
    return EW_OK;
}

ew_status_t ew_rotgrid_600cell(int level, ew_rotgrid_t *g)
{
    memset(g, 0, sizeof *g);
    if (level < 1 || level > 40)
        return ew_fail(EW_ERR_ARG, "600-cell rotation grid: level %d is outside [1, 40]", level);
    const int n = level;
    exact4_t v[NV];
    int nv = make_vertices(v);
    EW_ASSERT(nv == NV);
    double vd[NV][4];
    for (int i = 0; i < NV; i++)
        for (int d = 0; d < 4; d++) vd[i][d] = ex_val(v[i].a[d], v[i].b[d], 1);

    /* adjacency at the minimal distance (edge length 1/tau on the unit sphere) */
    double min2 = 1e300;
    for (int j = 1; j < NV; j++) {
        double d2 = 0.0;
        for (int d = 0; d < 4; d++) d2 += (vd[0][d] - vd[j][d]) * (vd[0][d] - vd[j][d]);
        if (d2 < min2) min2 = d2;
    }
    int nedge = 0;
    unsigned char(*A)[NV] = calloc(NV, sizeof *A);
    if (!A) return ew_fail(EW_ERR_NOMEM, "600-cell rotation grid: out of memory");
    for (int i = 0; i < NV; i++)
        for (int j = i + 1; j < NV; j++) {
            double d2 = 0.0;
            for (int d = 0; d < 4; d++) d2 += (vd[i][d] - vd[j][d]) * (vd[i][d] - vd[j][d]);
            if (d2 < min2 + 1e-6) {
                A[i][j] = A[j][i] = 1;
                nedge++;
            }
        }

    size_t total = (size_t)10 * (5 * (size_t)n * n * n + (size_t)n);
    ew_status_t st = grid_alloc(g, total);
    /* faces are keyed i*NV*NV + j*NV + k (i<j<k) in a visited bitmap */
    unsigned char *seen_face = calloc((size_t)NV * NV * NV, 1);
    unsigned char *seen_edge = calloc((size_t)NV * NV, 1);
    unsigned char seen_vert[NV] = {0};
    if (st != EW_OK || !seen_face || !seen_edge) {
        free(A);
        free(seen_face);
        free(seen_edge);
        ew_rotgrid_free(g);
        return ew_fail(EW_ERR_NOMEM, "600-cell rotation grid: out of memory for level %d", level);
    }
    emit_t e = {0, (int)total, g->quat, g->weight};
    int ncell = 0, nface = 0, nedge_seen = 0;
    for (int i = 0; i < NV; i++)
        for (int j = i + 1; j < NV; j++) {
            if (!A[i][j]) continue;
            for (int k = j + 1; k < NV; k++) {
                if (!A[i][k] || !A[j][k]) continue;
                for (int l = k + 1; l < NV; l++) {
                    if (!A[i][l] || !A[j][l] || !A[k][l]) continue;
                    int cell[4] = {i, j, k, l};
                    double vc[4];
                    for (int d = 0; d < 4; d++) vc[d] = vd[i][d] + vd[j][d] + vd[k][d] + vd[l][d];
                    ncell++;
                    for (int a = 0; a < 4; a++) {
                        int va = cell[a];
                        if (!seen_vert[va]) {
                            seen_vert[va] = 1;
                            emit_element(&e, v, &va, 1, n, 5.0 / 6.0, vc);
                        }
                        for (int b = a + 1; b < 4; b++) {
                            int vs2[2] = {cell[a], cell[b]};
                            size_t ek = (size_t)vs2[0] * NV + (size_t)vs2[1];
                            if (!seen_edge[ek]) {
                                seen_edge[ek] = 1;
                                nedge_seen++;
                                emit_element(&e, v, vs2, 2, n, 35.0 / 36.0, vc);
                            }
                            for (int c = b + 1; c < 4; c++) {
                                int vs3[3] = {cell[a], cell[b], cell[c]};
                                size_t fk = ((size_t)vs3[0] * NV + (size_t)vs3[1]) * NV + (size_t)vs3[2];
                                if (!seen_face[fk]) {
                                    seen_face[fk] = 1;
                                    nface++;
                                    emit_element(&e, v, vs3, 3, n, 1.0, vc);
                                }
                            }
                        }
                    }
                    emit_element(&e, v, cell, 4, n, 1.0, vc);
                }
            }
        }
    free(A);
    free(seen_face);
    free(seen_edge);
    if (nedge != 720 || nedge_seen != 720 || nface != 1200 || ncell != 600 || (size_t)e.nsel != total) {
        ew_rotgrid_free(g);
        return ew_fail(EW_ERR_INTERNAL,
                       "600-cell rotation grid: built %d edges, %d faces, %d cells, %d rotations "
                       "(expected 720, 1200, 600, %zu)",
                       nedge, nface, ncell, e.nsel, total);
    }
    double wsum = 0.0;
    for (size_t r = 0; r < total; r++) wsum += g->weight[r];
    for (size_t r = 0; r < total; r++) g->weight[r] /= wsum;
    g->level = n;
    /* rotation angle between a vertex and its neighbour one step along an edge */
    double p[4], pn = 0.0, dot = 0.0;
    int j0;
    for (j0 = 1; j0 < NV; j0++) {
        double d2 = 0.0;
        for (int d = 0; d < 4; d++) d2 += (vd[0][d] - vd[j0][d]) * (vd[0][d] - vd[j0][d]);
        if (d2 < min2 + 1e-6) break;
    }
    for (int d = 0; d < 4; d++) {
        p[d] = vd[0][d] + (vd[j0][d] - vd[0][d]) / n;
        pn += p[d] * p[d];
        dot += p[d] * vd[0][d];
    }
    double c = dot / sqrt(pn);
    if (c > 1.0) c = 1.0;
    g->spacing = 2.0 * acos(c);
    return EW_OK;
}

ew_status_t ew_rotgrid_random(size_t n, uint64_t seed, ew_rotgrid_t *g)
{
    memset(g, 0, sizeof *g);
    if (n == 0) return ew_fail(EW_ERR_ARG, "random rotation grid: n = 0 rotations");
    EW_TRY(grid_alloc(g, n));
    for (size_t i = 0; i < n; i++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, ew_rng_stream_id(EW_RNG_TAG_ORIENTATION, i));
        g->quat[i] = ew_quat_random(&r);
        g->weight[i] = 1.0 / (double)n;
    }
    g->level = 0;
    /* the spacing of a 600-cell grid of the same size: about (2 pi / 5) / level
     * with 50 level^3 rotations */
    g->spacing = (2.0 * EW_PI / 5.0) * cbrt(50.0 / (double)n);
    return EW_OK;
}

size_t ew_rotgrid_nearest(const ew_rotgrid_t *g, ew_quat_t q, double *angle)
{
    EW_ASSERT(g && g->n > 0);
    size_t best = 0;
    double bd = -1.0;
    const ew_quat_t *p = g->quat;
    for (size_t i = 0; i < g->n; i++) {
        double d = fabs(p[i].w * q.w + p[i].x * q.x + p[i].y * q.y + p[i].z * q.z);
        if (d > bd) {
            bd = d;
            best = i;
        }
    }
    if (angle) *angle = ew_quat_angle(g->quat[best], q);
    return best;
}

void ew_rotgrid_free(ew_rotgrid_t *g)
{
    if (!g) return;
    ew_free(g->quat);
    ew_free(g->weight);
    g->quat = NULL;
    g->weight = NULL;
    g->n = 0;
    g->level = 0;
    g->spacing = 0.0;
}
