/* Tests for src/recon/emc: one iteration against a brute-force double
 * oracle, reconstruction of a simulated Friedel-symmetric intensity from a
 * random start (shell correlation and orientation error after alignment),
 * refinement, checkpoint/resume, guard rails and the sparse helpers. */
#include "testutil.h"

#include "eval/fsc.h"
#include "eval/orient.h"
#include "recon/emc.h"

#define TPI 3.14159265358979323846

/* ---------------- independent helpers (not the library's) ---------------- */

static void q2m(ew_quat_t q, double m[9])
{
    double w = q.w, x = q.x, y = q.y, z = q.z;
    m[0] = w * w + x * x - y * y - z * z, m[1] = 2 * (x * y - w * z), m[2] = 2 * (x * z + w * y);
    m[3] = 2 * (x * y + w * z), m[4] = w * w - x * x + y * y - z * z, m[5] = 2 * (y * z - w * x);
    m[6] = 2 * (x * z - w * y), m[7] = 2 * (y * z + w * x), m[8] = w * w - x * x - y * y + z * z;
}

static double qangle(ew_quat_t a, ew_quat_t b)
{
    double d = fabs(a.w * b.w + a.x * b.x + a.y * b.y + a.z * b.z);
    return 2 * acos(d > 1 ? 1 : d);
}

/* Shoemake's uniform random rotation, w >= 0. */
static ew_quat_t qrand(ew_rng_t *r)
{
    double u1 = ew_rng_uniform(r), u2 = 2 * TPI * ew_rng_uniform(r), u3 = 2 * TPI * ew_rng_uniform(r);
    ew_quat_t q = {sqrt(u1) * cos(u3), sqrt(1 - u1) * sin(u2), sqrt(1 - u1) * cos(u2), sqrt(u1) * sin(u3)};
    if (q.w < 0) q.w = -q.w, q.x = -q.x, q.y = -q.y, q.z = -q.z;
    return q;
}

static void grid_random(ew_rotgrid_t *g, size_t n, uint64_t seed)
{
    g->n = n;
    g->level = 0;
    g->quat = malloc(n * sizeof *g->quat);
    g->weight = malloc(n * sizeof *g->weight);
    ew_rng_t r;
    ew_rng_init(&r, seed, 77);
    for (size_t i = 0; i < n; i++) g->quat[i] = qrand(&r), g->weight[i] = 1.0 / (double)n;
    /* median nearest-neighbour angle */
    double *nn = malloc(n * sizeof *nn);
    for (size_t i = 0; i < n; i++) {
        nn[i] = 10;
        for (size_t j = 0; j < n; j++)
            if (j != i && qangle(g->quat[i], g->quat[j]) < nn[i]) nn[i] = qangle(g->quat[i], g->quat[j]);
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && nn[j - 1] > nn[j]; j--) {
            double t = nn[j];
            nn[j] = nn[j - 1], nn[j - 1] = t;
        }
    g->spacing = nn[n / 2];
    free(nn);
}
static void grid_free(ew_rotgrid_t *g) { free(g->quat), free(g->weight); }

/* Flat W x W detector at distance D (mm), pixel pix (mm), wavelength lam (A):
 * s = (unit(x, y, D) - z) / lam. */
static float *det_flat(int W, double D, double pix, double lam)
{
    float *s = malloc((size_t)W * W * 3 * sizeof *s);
    for (int iy = 0; iy < W; iy++)
        for (int ix = 0; ix < W; ix++) {
            double x = (ix - (W - 1) / 2.0) * pix, y = (iy - (W - 1) / 2.0) * pix;
            double r = sqrt(x * x + y * y + D * D);
            float *o = s + 3 * ((size_t)iy * W + ix);
            o[0] = (float)(x / r / lam), o[1] = (float)(y / r / lam), o[2] = (float)((D / r - 1) / lam);
        }
    return s;
}

/* Truth: Friedel pairs of Gaussian blobs, in units of the voxel spacing. */
typedef struct {
    int nb;
    double c[64][3], a[64], sig, bg;
} truth_t;

static void truth_init(truth_t *t, uint64_t seed, double rmax)
{
    ew_rng_t r;
    ew_rng_init(&r, seed, 5);
    t->nb = 48;
    t->sig = 1.1;
    t->bg = 0.03;
    for (int b = 0; b < t->nb; b++) {
        double v[3], n2;
        do {
            for (int k = 0; k < 3; k++) v[k] = 2 * ew_rng_uniform(&r) - 1;
            n2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        } while (n2 > 1 || n2 < 0.04);
        for (int k = 0; k < 3; k++) t->c[b][k] = v[k] * rmax;
        t->a[b] = 0.5 + ew_rng_uniform(&r);
    }
}

static double truth_at(const truth_t *t, const double y[3])
{
    double v = t->bg;
    for (int b = 0; b < t->nb; b++) {
        double dp = 0, dm = 0;
        for (int k = 0; k < 3; k++) {
            dp += (y[k] - t->c[b][k]) * (y[k] - t->c[b][k]);
            dm += (y[k] + t->c[b][k]) * (y[k] + t->c[b][k]);
        }
        v += t->a[b] * (exp(-dp / (2 * t->sig * t->sig)) + exp(-dm / (2 * t->sig * t->sig)));
    }
    return v;
}

/* Trilinear in double, 0 when a corner is outside (the same convention as
 * the library, written independently). */
static double tri(const float *v, int n, const double x[3])
{
    double f[3];
    int i[3];
    for (int k = 0; k < 3; k++) {
        f[k] = floor(x[k]);
        if (!(f[k] >= 0 && f[k] <= n - 2)) return 0;
        i[k] = (int)f[k];
    }
    double s = 0;
    for (int dz = 0; dz < 2; dz++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
                double w = (dx ? x[0] - f[0] : 1 - x[0] + f[0]) * (dy ? x[1] - f[1] : 1 - x[1] + f[1]) *
                           (dz ? x[2] - f[2] : 1 - x[2] + f[2]);
                s += w * v[((size_t)(i[2] + dz) * n + (i[1] + dy)) * n + (i[0] + dx)];
            }
    return s;
}

/* grid coordinates (x, y, z) of R^T s */
static void to_grid(const double R[9], const float *s, double ds, int n, double x[3])
{
    for (int k = 0; k < 3; k++) x[k] = (R[k] * s[0] + R[3 + k] * s[1] + R[6 + k] * s[2]) / ds + n / 2;
}

/* ---------------- simulated data set ---------------- */

typedef struct {
    int W;
    size_t npix, N;
    float *s;
    ew_quat_t *qtrue;
    double *phitrue;
    ew_emc_sparse_t sp;
    truth_t truth;
    double ds;
    int n;
} sim_t;

/* N patterns at random rotations, ~photons per pattern, lognormal fluence
 * jitter sigma 0.2; the truth is sampled analytically (no voxel grid). */
static void sim_make(sim_t *S, int W, size_t N, double photons, uint64_t seed)
{
    memset(S, 0, sizeof *S);
    S->W = W;
    S->npix = (size_t)W * W;
    S->N = N;
    S->s = det_flat(W, 100.0, 1.0, 1.0);
    S->ds = 0.01; /* the detector's pixel spacing near s = 0, 1/A */
    double smax = 0;
    for (size_t p = 0; p < S->npix; p++) {
        const float *v = S->s + 3 * p;
        double a = sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]);
        if (a > smax) smax = a;
    }
    S->n = 2 * (int)ceil(smax / S->ds * (1 - 1e-6)) + 3;
    truth_init(&S->truth, seed, 0.8 * (W / 2.0));
    S->qtrue = malloc(N * sizeof *S->qtrue);
    S->phitrue = malloc(N * sizeof *S->phitrue);
    double *img = malloc(S->npix * sizeof *img);
    float *frames = malloc(N * S->npix * sizeof *frames);
    /* overall scale: mean photons of the unrotated slice */
    double tot = 0;
    for (size_t p = 0; p < S->npix; p++) {
        double y[3] = {S->s[3 * p] / S->ds, S->s[3 * p + 1] / S->ds, S->s[3 * p + 2] / S->ds};
        tot += truth_at(&S->truth, y);
    }
    double k0 = photons / tot;
    for (size_t d = 0; d < N; d++) {
        ew_rng_t r;
        ew_rng_init(&r, seed, 1000 + d);
        S->qtrue[d] = qrand(&r);
        S->phitrue[d] = exp(0.2 * ew_rng_normal(&r) - 0.02);
        double R[9];
        q2m(S->qtrue[d], R);
        for (size_t p = 0; p < S->npix; p++) {
            const float *sp = S->s + 3 * p;
            double y[3];
            for (int k = 0; k < 3; k++) y[k] = (R[k] * sp[0] + R[3 + k] * sp[1] + R[6 + k] * sp[2]) / S->ds;
            img[p] = k0 * S->phitrue[d] * truth_at(&S->truth, y);
            frames[d * S->npix + p] = (float)ew_rng_poisson(&r, img[p]);
        }
    }
    assert_ok(ew_emc_sparse_from_dense(&S->sp, frames, N, S->npix));
    free(img);
    free(frames);
}

static void sim_free(sim_t *S)
{
    free(S->s), free(S->qtrue), free(S->phitrue);
    ew_emc_sparse_free(&S->sp);
}

/* ---------------- 1. one iteration against a brute-force oracle ---------------- */

/* Compress over several chunks of patterns (EW_EMC_CHUNK each, the last one
 * partial): pixel-major, photon-major and the automatic choice give the same
 * model and scales. Started from the truth, so the probabilities are
 * concentrated and the automatic choice takes both paths (checked while
 * writing the test: 19 and 3 photon-major chunks of 42 in the two
 * iterations). */
static void test_compress_paths_agree(void **state)
{
    (void)state;
    const size_t N = 2 * EW_EMC_CHUNK + 377;
    sim_t S;
    sim_make(&S, 16, N, 400, 21);
    ew_rotgrid_t g;
    assert_ok(ew_rotgrid_600cell(2, &g));
    ew_emc_pixels_t det = {S.npix, S.s, NULL, NULL};
    float *model[3], *scale[3];
    double frac_conf = 0;
    size_t n3 = 0;
    for (int cp = 0; cp < 3; cp++) {
        ew_emc_config_t cfg;
        ew_emc_config_default(&cfg);
        cfg.compress_path = cp;
        ew_emc_t *e = NULL;
        assert_ok(ew_emc_create(&e, &cfg, &det, &S.sp, &g));
        /* start from the truth: concentrated probabilities from iteration 1 */
        int n = ew_emc_model(e)->n, c = n / 2;
        n3 = (size_t)n * n * n;
        float *m0 = malloc(n3 * sizeof *m0);
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    double v[3] = {x - c, y - c, z - c};
                    m0[((size_t)z * n + y) * n + x] = (float)truth_at(&S.truth, v);
                }
        assert_ok(ew_emc_set_model(e, m0, n3));
        free(m0);
        ew_emc_stats_t st;
        for (int it = 0; it < 2; it++) assert_ok(ew_emc_iterate(e, &st));
        frac_conf = st.frac_confident;
        model[cp] = malloc(n3 * sizeof(float));
        scale[cp] = malloc(N * sizeof(float));
        memcpy(model[cp], ew_emc_model(e)->data, n3 * sizeof(float));
        memcpy(scale[cp], ew_emc_scale(e), N * sizeof(float));
        ew_emc_free(e);
    }
    assert_true(frac_conf > 0.3); /* concentrated probabilities: chunks with few merged patterns */
    double mmax = 0;
    for (size_t v = 0; v < n3; v++) mmax = fmax(mmax, model[2][v]);
    for (int cp = 0; cp < 2; cp++) {
        for (size_t v = 0; v < n3; v++) assert_close(model[cp][v], model[2][v], 1e-4, 1e-6 * mmax);
        for (size_t d = 0; d < N; d++) assert_close(scale[cp][d], scale[2][d], 1e-4, 0);
    }
    for (int cp = 0; cp < 3; cp++) free(model[cp]), free(scale[cp]);
    ew_rotgrid_free(&g);
    sim_free(&S);
}

static void test_one_iteration_oracle(void **state)
{
    (void)state;
    const int W = 10;
    const size_t npix = (size_t)W * W, N = 23, Rn = 45; /* 45: a partial rotation tile */
    float *s = det_flat(W, 100.0, 1.0, 1.0);
    uint8_t mask[100];
    float corr[100];
    for (size_t p = 0; p < npix; p++) {
        mask[p] = p % 17 == 3 ? EW_EMC_PIX_NOORIENT : p % 23 == 5 ? EW_EMC_PIX_BAD : EW_EMC_PIX_GOOD;
        corr[p] = (float)(0.8 + 0.4 * (double)(p % 7) / 6);
    }
    ew_rotgrid_t g;
    grid_random(&g, Rn, 3);
    for (size_t r = 0; r < Rn; r++) g.weight[r] = (1.0 + (double)(r % 5)) / (3.0 * Rn); /* unequal, unnormalized */
    ew_rng_t rng;
    ew_rng_init(&rng, 9, 1);
    float *frames = calloc(N * npix, sizeof *frames);
    for (size_t i = 0; i < N * npix; i++) frames[i] = (float)ew_rng_poisson(&rng, 0.4 + 0.3 * (double)(i % 3));
    ew_emc_sparse_t sp;
    assert_ok(ew_emc_sparse_from_dense(&sp, frames, N, npix));
    ew_emc_config_t cfg;
    ew_emc_config_default(&cfg);
    cfg.friedel = 0;
    cfg.p_min = 0;
    cfg.beta_start = 0.5;
    cfg.beta_max = 0.5;
    ew_emc_pixels_t det = {npix, s, mask, corr};
    ew_emc_t *e = NULL;
    assert_ok(ew_emc_create(&e, &cfg, &det, &sp, &g));
    const ew_rvol_t *mv = ew_emc_model(e);
    int n = mv->n;
    double ds = mv->ds;
    size_t n3 = (size_t)n * n * n;
    assert_int_equal(n, 17); /* corner |s| = 0.06353 1/A, ds 0.01: 2 ceil(6.35) + 3 */
    assert_close(ds, 0.01, 2e-3, 0);
    /* a smooth, strictly positive start model */
    float *m0 = malloc(n3 * sizeof *m0);
    for (size_t i = 0; i < n3; i++) m0[i] = (float)(0.5 + 0.4 * sin(0.37 * (double)i) * cos(0.011 * (double)i));
    assert_ok(ew_emc_set_model(e, m0, n3));
    float sc0[64];
    memcpy(sc0, ew_emc_scale(e), N * sizeof(float));

    /* oracle in double */
    double wsum = 0;
    for (size_t r = 0; r < Rn; r++) wsum += g.weight[r];
    double *Wv = malloc(Rn * npix * sizeof *Wv), *u = calloc(Rn, sizeof *u), *L = malloc(N * Rn * sizeof *L);
    double *P = malloc(N * Rn * sizeof *P), *K = calloc(N, sizeof *K), *phi = malloc(N * sizeof *phi);
    double Rm[64][9];
    for (size_t r = 0; r < Rn; r++) {
        q2m(g.quat[r], Rm[r]);
        for (size_t p = 0; p < npix; p++) {
            double x[3];
            to_grid(Rm[r], s + 3 * p, ds, n, x);
            Wv[r * npix + p] = corr[p] * tri(m0, n, x);
            if (mask[p] == 0) u[r] += Wv[r * npix + p];
        }
    }
    double beta = 0.5, mi = 0, ll = 0, conf = 0;
    for (size_t d = 0; d < N; d++) {
        double mx = -INFINITY;
        for (size_t r = 0; r < Rn; r++) {
            double l = -(double)sc0[d] * u[r];
            for (size_t p = 0; p < npix; p++) {
                double k = rintf(frames[d * npix + p]);
                if (mask[p] == 0 && k > 0) l += k * log(Wv[r * npix + p]);
            }
            L[d * Rn + r] = l;
            double x = beta * l + log(g.weight[r] / wsum);
            if (x > mx) mx = x;
        }
        double z = 0;
        for (size_t r = 0; r < Rn; r++) z += exp(beta * L[d * Rn + r] + log(g.weight[r] / wsum) - mx);
        double lse = mx + log(z), Pu = 0, pb = 0, ml = 0;
        for (size_t r = 0; r < Rn; r++) {
            P[d * Rn + r] = exp(beta * L[d * Rn + r] + log(g.weight[r] / wsum) - lse);
            Pu += P[d * Rn + r] * u[r];
            ml += P[d * Rn + r] * L[d * Rn + r];
            mi += P[d * Rn + r] * log(P[d * Rn + r] / (g.weight[r] / wsum));
            if (P[d * Rn + r] > pb) pb = P[d * Rn + r];
        }
        ll += ml;
        conf += pb > 0.5;
        for (size_t p = 0; p < npix; p++)
            if (mask[p] == 0) K[d] += rintf(frames[d * npix + p]);
        phi[d] = K[d] / Pu;
    }
    double *num = calloc(n3, sizeof *num), *den = calloc(n3, sizeof *den);
    for (size_t r = 0; r < Rn; r++)
        for (size_t p = 0; p < npix; p++) {
            if (mask[p] == 2) continue;
            double vn = 0, vd = 0;
            for (size_t d = 0; d < N; d++) {
                vn += P[d * Rn + r] * rintf(frames[d * npix + p]);
                vd += P[d * Rn + r] * phi[d] * corr[p];
            }
            double x[3], f[3];
            to_grid(Rm[r], s + 3 * p, ds, n, x);
            int ok = 1;
            for (int k = 0; k < 3; k++) f[k] = floor(x[k]), ok &= f[k] >= 0 && f[k] <= n - 2;
            if (!ok) continue;
            for (int c = 0; c < 8; c++) {
                int dx = c & 1, dy = (c >> 1) & 1, dz = c >> 2;
                double w = (dx ? x[0] - f[0] : 1 - x[0] + f[0]) * (dy ? x[1] - f[1] : 1 - x[1] + f[1]) *
                           (dz ? x[2] - f[2] : 1 - x[2] + f[2]);
                size_t v = ((size_t)(f[2] + dz) * n + (size_t)(f[1] + dy)) * n + (size_t)(f[0] + dx);
                num[v] += w * vn;
                den[v] += w * vd;
            }
        }
    double mphi = 0;
    for (size_t d = 0; d < N; d++) mphi += phi[d] / N;

    ew_emc_stats_t st;
    assert_ok(ew_emc_iterate(e, &st));
    assert_int_equal(st.iteration, 1);
    assert_close(st.beta, 0.5, 0, 1e-15);
    assert_close(st.avg_loglik, ll / N, 1e-5, 1e-4);
    assert_close(st.mutual_info, mi / N, 1e-4, 1e-5);
    assert_close(st.frac_confident, conf / N, 0, 1e-12);
    assert_close(st.mean_scale, mphi, 1e-5, 0);
    const float *mm = ew_emc_model(e)->data;
    double rms = 0, maxv = 0;
    size_t nset = 0;
    for (size_t v = 0; v < n3; v++) {
        double ref = den[v] > 0 ? num[v] / den[v] * mphi : m0[v];
        if (den[v] > 1e-3) {
            assert_close(mm[v], ref, 2e-4, 1e-6);
            nset++;
        } else {
            assert_close(mm[v], ref, 2e-3, 1e-3);
        }
        rms += (ref - m0[v]) * (ref - m0[v]);
        if (ref > maxv) maxv = ref;
    }
    assert_true(nset > 100);
    float *m1 = malloc(n3 * sizeof *m1);
    memcpy(m1, mm, n3 * sizeof *m1);
    assert_close(st.rms_change, sqrt(rms / n3), 1e-4, 0);
    for (size_t d = 0; d < N; d++) {
        assert_close(ew_emc_scale(e)[d], phi[d] / mphi, 1e-5, 0);
        size_t rb = 0;
        for (size_t r = 1; r < Rn; r++)
            if (P[d * Rn + r] > P[d * Rn + rb]) rb = r;
        assert_int_equal(ew_emc_best_rot(e)[d], (int)rb);
        assert_close(ew_emc_best_prob(e)[d], P[d * Rn + rb], 1e-4, 0);
    }
    ew_emc_free(e);

    /* the same iteration without the dense likelihood store (recompute path) */
    cfg.mem_limit_mb = 0;
    assert_ok(ew_emc_create(&e, &cfg, &det, &sp, &g));
    assert_ok(ew_emc_set_model(e, m0, n3));
    ew_emc_stats_t st2;
    assert_ok(ew_emc_iterate(e, &st2));
    assert_int_equal(st2.dense_store, 0);
    assert_int_equal(st.dense_store, 1);
    for (size_t v = 0; v < n3; v++) assert_close(ew_emc_model(e)->data[v], m1[v], 1e-6, 1e-9);
    ew_emc_free(e);

    /* compress forced pixel by pixel (1) and photon by photon (2): the same
     * sums in another order */
    cfg.mem_limit_mb = 2048;
    for (int cp = 1; cp <= 2; cp++) {
        cfg.compress_path = cp;
        assert_ok(ew_emc_create(&e, &cfg, &det, &sp, &g));
        assert_ok(ew_emc_set_model(e, m0, n3));
        assert_ok(ew_emc_iterate(e, &st2));
        for (size_t v = 0; v < n3; v++) assert_close(ew_emc_model(e)->data[v], m1[v], 1e-5, 1e-8);
        for (size_t d = 0; d < N; d++) assert_close(ew_emc_scale(e)[d], phi[d] / mphi, 1e-5, 0);
        ew_emc_free(e);
    }
    cfg.compress_path = 3;
    assert_int_equal(ew_emc_create(&e, &cfg, &det, &sp, &g), EW_ERR_ARG);
    assert_null(e);

    free(Wv), free(u), free(L), free(P), free(K), free(phi), free(num), free(den), free(m0), free(m1);
    free(frames), free(s);
    ew_emc_sparse_free(&sp);
    grid_free(&g);
}

/* ---------------- 2. reconstruction from a random start ---------------- */

/* Fraction of shells 1 .. K (K: the shell of the detector's s_max) where the
 * intensity FSC (eval/fsc.h) of the model against the aligned truth is
 * >= thr; *cfrac, *cmin: the same for the shell-centred FSC. Aligned truth:
 * V_true(G u), or V_true(M G u) for the mirror hand. */
static double fsc_fraction(const sim_t *S, const ew_rvol_t *m, const ew_orient_err_t *oe, double smax, double thr,
                           double *fsc_min, double *pearson, double *cfrac, double *cmin)
{
    double A = 0, B = 0, AB = 0, AA = 0, BB = 0, C = 0, rlim = smax / m->ds;
    int n = m->n, c = n / 2;
    size_t n3 = (size_t)n * n * n;
    float *tv = malloc(n3 * sizeof *tv);
    double Gm[9];
    q2m(oe->g, Gm);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double v[3] = {x - c, y - c, z - c}, gv[3];
                for (int k = 0; k < 3; k++) gv[k] = Gm[3 * k] * v[0] + Gm[3 * k + 1] * v[1] + Gm[3 * k + 2] * v[2];
                if (oe->hand == 1) gv[2] = -gv[2];
                size_t i = ((size_t)z * n + y) * n + x;
                tv[i] = (float)truth_at(&S->truth, gv);
                if (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] <= rlim * rlim) {
                    double a = m->data[i], b = tv[i];
                    A += a, B += b, AB += a * b, AA += a * a, BB += b * b, C++;
                }
            }
    *pearson = (AB - A * B / C) / sqrt((AA - A * A / C) * (BB - B * B / C));
    ew_shell_curve_t cv;
    assert_ok(ew_fsc_intensity(m->data, tv, n, m->ds, 1.0, &cv));
    int good = 0, tot = 0;
    *fsc_min = 1;
    for (int j = 1; j < cv.nshell; j++) {
        if (cv.s[j] > smax) break;
        tot++;
        good += cv.value[j] >= thr;
        if (cv.value[j] < *fsc_min) *fsc_min = cv.value[j];
    }
    ew_shell_curve_free(&cv);
    assert_ok(ew_fsc_intensity_centred(m->data, tv, n, m->ds, 1.0, &cv));
    int cgood = 0;
    *cmin = 1;
    for (int j = 1; j < cv.nshell && cv.s[j] <= smax; j++) {
        cgood += cv.value[j] >= thr;
        if (cv.value[j] < *cmin) *cmin = cv.value[j];
    }
    *cfrac = (double)cgood / tot;
    ew_shell_curve_free(&cv);
    free(tv);
    return (double)good / tot;
}

static void orient_check(const sim_t *S, const ew_emc_t *e, ew_orient_err_t *oe)
{
    const ew_rotgrid_t *g = ew_emc_grid(e);
    ew_quat_t *qp = malloc(S->N * sizeof *qp);
    for (size_t d = 0; d < S->N; d++) {
        int32_t r = ew_emc_best_rot(e)[d];
        assert_true(r >= 0 && (size_t)r < g->n);
        qp[d] = g->quat[r];
    }
    ew_orient_opts_t o;
    ew_orient_opts_default(&o);
    o.inplane_twin = 1; /* centrosymmetric intensity on a nearly flat detector */
    assert_ok(ew_orient_error(S->qtrue, qp, S->N, &o, oe));
    free(qp);
}

/* Shrunken version of the benchmark's check (bench/bench_emc.c): EMC from
 * a random start on a 600-cell grid, intensity FSC against the aligned
 * truth and the median orientation error against the grid's spacing. */
static void test_reconstruct_random_start(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    /* sanitizer builds run ~15x slower: a smaller problem, same checks */
    const int dW = 16, dN = 500, dL = 3, dI = 10, refine = 0;
    const double cfrac_min = 0.3; /* shell-centred FSC >= 0.9: 43% seen */
#else
    const int dW = 16, dN = 700, dL = 3, dI = 15, refine = 1;
    const double cfrac_min = 0.8; /* shell-centred FSC >= 0.9: 100% seen (min 0.906) */
#endif
    const int eW = dW, eN = dN, eL = dL, eI = dI;
    const double eP = 400;
    sim_t S;
    sim_make(&S, eW, (size_t)eN, eP, 11);
    ew_rotgrid_t g;
    assert_ok(ew_rotgrid_600cell(eL, &g));
    ew_emc_config_t cfg;
    ew_emc_config_default(&cfg);
    cfg.beta_start = 0.3;
    cfg.beta_factor = 1.5;
    cfg.beta_period = 3;
    cfg.seed = 4;
    ew_emc_pixels_t det = {S.npix, S.s, NULL, NULL};
    ew_emc_t *e = NULL;
    assert_ok(ew_emc_create(&e, &cfg, &det, &S.sp, &g));
    assert_int_equal(ew_emc_model(e)->n, S.n);
    ew_emc_stats_t st;
    double t0 = ew_time_now();
    for (int it = 0; it < eI; it++) {
        assert_ok(ew_emc_iterate(e, &st));
        assert_true(isfinite(st.rms_change) && isfinite(st.mutual_info) && isfinite(st.avg_loglik));
    }
    ew_orient_err_t oe;
    orient_check(&S, e, &oe);
    double smax = 0.0101 * (eW - 1) / 2.0; /* the detector's edge along x: the q-range compared */
    double fmin, cc, cfrac, cmin, frac = fsc_fraction(&S, ew_emc_model(e), &oe, smax, 0.9, &fmin, &cc, &cfrac, &cmin);
    double a = 0, b = 0, ab = 0, aa = 0, bb = 0;
    for (size_t d = 0; d < S.N; d++) {
        double x = ew_emc_scale(e)[d], y = S.phitrue[d];
        a += x, b += y, ab += x * y, aa += x * x, bb += y * y;
    }
    double cphi = (ab - a * b / S.N) / sqrt((aa - a * a / S.N) * (bb - b * b / S.N));
    printf("  recon (%zu rotations, %zu patterns): %.1f s, median orientation error %.2f deg (hand %d; grid spacing "
           "%.2f deg), FSC >= 0.9 in %.0f%% of shells (min %.3f; shell-centred FSC: %.0f%%, min %.3f), intensity CC "
           "%.3f, scale CC %.3f, MI %.2f, confident %.2f\n",
           g.n, S.N, ew_time_now() - t0, oe.median_deg, oe.hand, g.spacing * 180 / TPI, 100 * frac, fmin,
           100 * cfrac, cmin, cc, cphi, st.mutual_info, st.frac_confident);
    assert_true(oe.median_deg < 1.5 * g.spacing * 180 / TPI); /* bench: < 1 spacing */
    assert_true(frac >= 0.8);                                  /* plain FSC */
    assert_true(cfrac >= cfrac_min && cmin >= 0.7);            /* bench: centred FSC >= 0.9 in >= 90% */
    assert_true(cc >= 0.9);
    assert_true(cphi >= 0.8);
    ew_orient_err_free(&oe);

    /* refinement: the next level continues from the model */
    if (!refine) {
        ew_emc_free(e);
        ew_rotgrid_free(&g);
        sim_free(&S);
        return;
    }
    ew_rotgrid_t g2;
    assert_ok(ew_rotgrid_600cell(eL + 1, &g2));
    assert_ok(ew_emc_refine(e, &g2));
    assert_int_equal(ew_emc_best_rot(e)[0], -1);
    assert_ok(ew_emc_iterate(e, &st));
    assert_int_equal(ew_emc_iteration(e), eI + 1);
    orient_check(&S, e, &oe);
    printf("  refined to level %d: median orientation error %.2f deg (grid spacing %.2f deg)\n", eL + 1,
           oe.median_deg, g2.spacing * 180 / TPI);
    assert_true(oe.median_deg < 1.5 * g2.spacing * 180 / TPI);
    ew_orient_err_free(&oe);
    ew_emc_free(e);
    ew_rotgrid_free(&g);
    ew_rotgrid_free(&g2);
    sim_free(&S);
}

/* ---------------- 3. checkpoint and resume ---------------- */

static void test_checkpoint_resume(void **state)
{
    (void)state;
    sim_t S;
    sim_make(&S, 12, 120, 200.0, 21);
    ew_rotgrid_t g;
    grid_random(&g, 60, 8);
    ew_emc_config_t cfg;
    ew_emc_config_default(&cfg);
    cfg.beta_start = 0.5, cfg.beta_factor = 2, cfg.beta_period = 1;
    char path[512];
    snprintf(path, sizeof path, "%s", ew_test_tmpfile("emc_ckpt.h5"));
    cfg.checkpoint = path;
    ew_emc_pixels_t det = {S.npix, S.s, NULL, NULL};
    ew_emc_t *a = NULL, *b = NULL;
    assert_ok(ew_emc_create(&a, &cfg, &det, &S.sp, &g));
    assert_ok(ew_emc_iterate(a, NULL));
    assert_ok(ew_emc_iterate(a, NULL));
    int it = 0, lvl = -1;
    size_t nr = 0;
    assert_ok(ew_emc_checkpoint_info(path, &it, &lvl, &nr));
    assert_int_equal(it, 2);
    assert_int_equal(lvl, 0);
    assert_int_equal(nr, 60);
    /* a "killed" run resumes from the file and continues identically */
    cfg.seed = 99; /* a different random start, overwritten by resume */
    assert_ok(ew_emc_create(&b, &cfg, &det, &S.sp, &g));
    assert_ok(ew_emc_resume(b, path));
    assert_int_equal(ew_emc_iteration(b), 2);
    assert_close(ew_emc_beta(b), ew_emc_beta(a), 0, 0);
    size_t n3 = (size_t)S.n * S.n * S.n;
    assert_memory_equal(ew_emc_model(a)->data, ew_emc_model(b)->data, n3 * sizeof(float));
    assert_memory_equal(ew_emc_scale(a), ew_emc_scale(b), S.N * sizeof(float));
    assert_memory_equal(ew_emc_best_rot(a), ew_emc_best_rot(b), S.N * sizeof(int32_t));
    assert_ok(ew_emc_iterate(a, NULL));
    assert_ok(ew_emc_iterate(b, NULL));
    assert_memory_equal(ew_emc_model(a)->data, ew_emc_model(b)->data, n3 * sizeof(float));
    assert_close(ew_emc_beta(b), 1.0, 0, 0);
    /* no temporary left beside the checkpoint */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    ew_emc_free(b);

    /* a checkpoint of another grid is refused, naming the field */
    ew_rotgrid_t g3;
    grid_random(&g3, 61, 8);
    assert_ok(ew_emc_create(&b, &cfg, &det, &S.sp, &g3));
    assert_int_equal(ew_emc_resume(b, path), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "n_rot"));
    assert_int_equal(ew_emc_resume(b, ew_test_tmpfile("missing.h5")), EW_ERR_IO);
    ew_emc_free(b);
    ew_emc_free(a);
    grid_free(&g);
    grid_free(&g3);
    sim_free(&S);
}

/* ---------------- 4. guard rails and argument errors ---------------- */

static void test_guard_rails(void **state)
{
    (void)state;
    sim_t S;
    sim_make(&S, 8, 10, 50.0, 31);
    ew_rotgrid_t g;
    grid_random(&g, 40, 8); /* more rotations than patterns: a warning */
    ew_emc_config_t cfg;
    ew_emc_config_default(&cfg);
    ew_emc_pixels_t det = {S.npix, S.s, NULL, NULL};
    ew_emc_t *e = NULL;
    assert_ok(ew_emc_create(&e, &cfg, &det, &S.sp, &g));
    size_t n3 = (size_t)S.n * S.n * S.n;
    float *big = malloc(n3 * sizeof *big);
    for (size_t i = 0; i < n3; i++) big[i] = 3e38f;
    assert_ok(ew_emc_set_model(e, big, n3));
    float *keep = malloc(n3 * sizeof *keep);
    memcpy(keep, ew_emc_model(e)->data, n3 * sizeof *keep);
    assert_int_equal(ew_emc_iterate(e, NULL), EW_ERR_NUMERIC);
    assert_non_null(strstr(ew_error_message(), "iteration 1"));
    assert_memory_equal(ew_emc_model(e)->data, keep, n3 * sizeof *keep);
    assert_int_equal(ew_emc_iteration(e), 0);
    big[5] = NAN;
    assert_int_equal(ew_emc_set_model(e, big, n3), EW_ERR_ARG);
    assert_int_equal(ew_emc_set_model(e, big, n3 - 1), EW_ERR_ARG);
    ew_emc_free(e);

    /* argument errors leave *out NULL */
    ew_emc_sparse_t bad = S.sp;
    bad.npix = S.npix + 1;
    e = (ew_emc_t *)1;
    assert_int_equal(ew_emc_create(&e, &cfg, &det, &bad, &g), EW_ERR_ARG);
    assert_null(e);
    uint32_t p0 = S.sp.pix[0];
    S.sp.pix[0] = (uint32_t)S.npix;
    assert_int_equal(ew_emc_create(&e, &cfg, &det, &S.sp, &g), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "pixel index"));
    S.sp.pix[0] = p0;
    cfg.beta_start = 0;
    assert_int_equal(ew_emc_create(&e, &cfg, &det, &S.sp, &g), EW_ERR_ARG);
    cfg.beta_start = 1;
    uint8_t *mask = malloc(S.npix);
    memset(mask, EW_EMC_PIX_BAD, S.npix);
    det.mask = mask;
    assert_int_equal(ew_emc_create(&e, &cfg, &det, &S.sp, &g), EW_ERR_ARG);
    ew_rotgrid_t empty = {0};
    det.mask = NULL;
    assert_int_equal(ew_emc_create(&e, &cfg, &det, &S.sp, &empty), EW_ERR_ARG);
    free(mask), free(big), free(keep);
    grid_free(&g);
    sim_free(&S);
}

/* ---------------- 5. sparse helpers ---------------- */

static void test_sparse_helpers(void **state)
{
    (void)state;
    float fr[2 * 5] = {0, 1, 0, 3, 0, 2, 0, 0, 1, 1};
    ew_emc_sparse_t a, b;
    assert_ok(ew_emc_sparse_from_dense(&a, fr, 2, 5));
    assert_int_equal(a.offset[2], 5);
    assert_int_equal(a.offset[1], 2);
    assert_int_equal(a.pix[1], 3);
    assert_int_equal(a.count[1], 3);
    /* the same data through io/emcfile's Dragonfly photon set */
    ew_emc_photons_t ph;
    assert_ok(ew_emc_photons_init(&ph, 5));
    for (size_t d = 0; d < 2; d++) assert_ok(ew_emc_photons_add_frame(&ph, fr + 5 * d));
    assert_ok(ew_emc_sparse_from_photons(&b, &ph));
    assert_int_equal(b.offset[2], 5);
    /* per-pattern dense images agree */
    for (size_t d = 0; d < 2; d++) {
        float ia[5] = {0}, ib[5] = {0};
        for (uint64_t h = a.offset[d]; h < a.offset[d + 1]; h++) ia[a.pix[h]] += a.count[h];
        for (uint64_t h = b.offset[d]; h < b.offset[d + 1]; h++) ib[b.pix[h]] += b.count[h];
        assert_memory_equal(ia, ib, sizeof ia);
        assert_memory_equal(ia, fr + 5 * d, sizeof ia);
    }
    ew_emc_sparse_free(&a);
    ew_emc_sparse_free(&b);
    ph.place_multi[0] = 5;
    assert_int_equal(ew_emc_sparse_from_photons(&b, &ph), EW_ERR_ARG);
    assert_null(b.offset);
    assert_non_null(strstr(ew_error_message(), "frame 0"));
    ew_emc_photons_free(&ph);
    fr[3] = -1;
    assert_int_equal(ew_emc_sparse_from_dense(&a, fr, 2, 5), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "pixel 3"));
    ew_emc_sparse_free(NULL);
}

int main(void)
{
    ew_log_set_level(EW_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_iteration_oracle),   cmocka_unit_test(test_reconstruct_random_start),
        cmocka_unit_test(test_checkpoint_resume),      cmocka_unit_test(test_guard_rails),
        cmocka_unit_test(test_sparse_helpers),         cmocka_unit_test(test_compress_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
