/* Tests for physics/xfel_sim: the XFEL dataset simulator. */
#include "testutil.h"

#include "core/core.h"
#include "geom/geom.h"
#include "physics/xfel_sim.h"
#include "io/cxi.h"
#include "io/emcfile.h"
#include "io/h5vol.h"
#include "io/png.h"

/* ---- fixtures: a small random protein-like particle on a 32 x 32 detector ---- */

typedef struct {
    ew_atoms_t atoms;
    ew_detector_t det;
    ew_rvol_t W;
    ew_xfel_config_t cfg;
} fixture_t;

static void fixture_init(fixture_t *f, double fluence_factor, int volume_n)
{
    enum { NA = 300 };
    static const uint8_t el[4] = {6, 7, 8, 16};
    float xyz[3 * NA];
    uint8_t z[NA];
    ew_rng_t r;
    ew_rng_init(&r, 21, 0);
    for (int j = 0; j < NA; j++) {
        double p[3], d2;
        do {
            d2 = 0;
            for (int k = 0; k < 3; k++) {
                p[k] = (2 * ew_rng_uniform(&r) - 1) * 15.0;
                d2 += p[k] * p[k];
            }
        } while (d2 > 225.0);
        for (int k = 0; k < 3; k++) xyz[3 * j + k] = (float)p[k];
        z[j] = el[j % 4];
    }
    assert_ok(ew_atoms_init(&f->atoms, NA, xyz, z, NULL, NULL, NULL, NULL));
    ew_atoms_center(&f->atoms);
    ew_detector_config_t dc = ew_detector_config_reference();
    dc.nx = dc.ny = 32;
    dc.pixel_m = 0.1 / 32;
    dc.beamstop_radius_px = 2;
    assert_ok(ew_detector_init(&f->det, &dc));
    f->cfg = ew_xfel_config_reference();
    f->cfg.fluence_factor = fluence_factor;
    f->cfg.seed = 77;
    int n;
    double ds;
    ew_detector_volume_grid(&f->det, volume_n, &n, &ds);
    assert_ok(ew_xfel_photon_volume(&f->atoms, n, ds, ew_xfel_fluence(&f->cfg), NULL, &f->W));
}

static void fixture_free(fixture_t *f)
{
    ew_atoms_free(&f->atoms);
    ew_detector_free(&f->det);
    ew_rvol_free(&f->W);
}

/* An in-memory writer. */
typedef struct {
    size_t n, npix;
    float *data, *expected;
    ew_xfel_pattern_t *meta;
    int fail_at; /* return an error at this call (0: never) */
    int calls;
    size_t next;
} sink_t;

static void sink_init(sink_t *s, size_t n, size_t npix)
{
    memset(s, 0, sizeof *s);
    s->n = n, s->npix = npix;
    s->data = calloc(n * npix, sizeof(float));
    s->expected = calloc(n * npix, sizeof(float));
    s->meta = calloc(n, sizeof *s->meta);
}

static void sink_free(sink_t *s)
{
    free(s->data), free(s->expected), free(s->meta);
}

static ew_status_t sink_write(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    sink_t *s = ctx;
    if (++s->calls == s->fail_at) return ew_fail(EW_ERR_IO, "sink: disk full");
    for (size_t k = 0; k < count; k++) {
        size_t i = p[k].index;
        assert_int_equal(i, s->next); /* in order */
        s->next++;
        s->meta[i] = p[k];
        memcpy(s->data + i * s->npix, p[k].data, s->npix * sizeof(float));
        if (p[k].expected) memcpy(s->expected + i * s->npix, p[k].expected, s->npix * sizeof(float));
        s->meta[i].data = s->meta[i].expected = NULL;
    }
    return EW_OK;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_reference_fluence(void **state)
{
    (void)state;
    ew_xfel_config_t c = ew_xfel_config_reference();
    /* 1e12 photons in pi (0.5 um)^2 = 1.2732e12 / um^2 = 1.2732e4 / A^2 */
    assert_close(ew_xfel_fluence(&c), 1e12 / (EW_PI * 0.25) * 1e-8, 1e-12, 0);
    c.fluence_factor = 100;
    assert_close(ew_xfel_fluence(&c), 1.2732395e6, 1e-6, 0);
}

/* Same seed -> identical datasets whatever the thread count and batch;
 * orientations are ew_quat_random of stream (ORIENTATION, i). */
static void test_deterministic(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 10, 0);
    f.cfg.n_patterns = 40;
    f.cfg.readout_sigma = 0.3;
    f.cfg.fluence_dist = EW_FLUENCE_GAMMA;
    f.cfg.fluence_spread = 0.5;
    f.cfg.beam_jitter_px = 0.2;
    sink_t a, b;
    sink_init(&a, 40, f.det.npix);
    sink_init(&b, 40, f.det.npix);
    f.cfg.threads = 1, f.cfg.batch = 7;
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &a, NULL));
    f.cfg.threads = 2, f.cfg.batch = 64;
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &b, NULL));
    assert_int_equal(a.next, 40);
    assert_memory_equal(a.data, b.data, 40 * f.det.npix * sizeof(float));
    for (size_t i = 0; i < 40; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 77, ew_rng_stream_id(EW_RNG_TAG_ORIENTATION, i));
        ew_quat_t q = ew_quat_random(&r);
        assert_true(a.meta[i].quat.w == q.w && a.meta[i].quat.x == q.x);
        assert_true(a.meta[i].fluence_mult == b.meta[i].fluence_mult);
        assert_true(a.meta[i].beam_dx == b.meta[i].beam_dx);
    }
    /* first_index continues the same dataset */
    sink_t c;
    sink_init(&c, 40, f.det.npix);
    f.cfg.first_index = 25, f.cfg.n_patterns = 15;
    c.next = 25;
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &c, NULL));
    assert_memory_equal(a.data + 25 * f.det.npix, c.data + 25 * f.det.npix, 15 * f.det.npix * sizeof(float));
    sink_free(&a), sink_free(&b), sink_free(&c);
    fixture_free(&f);
}

/* Beam-position jitter: a pattern equals the volume sliced on the detector
 * geometry recomputed for its reported beam offset, times corr and m. */
static void test_beam_jitter(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 10, 0);
    enum { N = 5 };
    f.cfg.n_patterns = N;
    f.cfg.poisson = 0;
    f.cfg.keep_expected = 1;
    f.cfg.beam_jitter_px = 0.3;
    f.cfg.fluence_dist = EW_FLUENCE_LOGNORMAL;
    f.cfg.fluence_spread = 0.3;
    sink_t s;
    sink_init(&s, N, f.det.npix);
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL));
    size_t np = f.det.npix;
    float *sv = malloc(sizeof(float) * 3 * np), *sa = malloc(sizeof(float) * np), *po = malloc(sizeof(float) * np),
          *sl = malloc(sizeof(float) * np);
    double moved = 0;
    for (int i = 0; i < N; i++) {
        const ew_xfel_pattern_t *m = &s.meta[i];
        moved += fabs(m->beam_dx) + fabs(m->beam_dy);
        ew_detector_geometry_shifted(&f.det, m->beam_dx, m->beam_dy, sv, sa, po);
        double R[9];
        ew_quat_to_mat(m->quat, R);
        ew_slice_trilinear(&f.W, R, sv, np, sl);
        for (size_t p = 0; p < np; p += 7)
            assert_close(s.expected[(size_t)i * np + p], m->fluence_mult * sl[p] * sa[p] * po[p], 1e-5, 1e-12);
    }
    assert_true(moved > 0.5); /* the beam did move */
    free(sv), free(sa), free(po), free(sl);
    sink_free(&s);
    fixture_free(&f);
}

/* Mean photons per pattern: the Poisson totals match the expected totals
 * within Poisson error; the expected totals match two independent
 * predictions (the volume's spherical average, and the Debye formula on
 * the atoms) within the orientation sampling error. */
static void test_mean_photons(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 1e4, 97); /* half-pixel voxels: trilinear bias ~0.3% */
    enum { N = 600 };
    f.cfg.n_patterns = N;
    sink_t s;
    sink_init(&s, N, f.det.npix);
    ew_xfel_stats_t st;
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, &st));
    double me = 0, mt = 0, var = 0;
    for (int i = 0; i < N; i++) me += s.meta[i].photons_expected / N, mt += s.meta[i].photons_total / N;
    for (int i = 0; i < N; i++) var += pow(s.meta[i].photons_expected - me, 2) / (N - 1);
    assert_close(st.mean_expected, me, 1e-9, 0);
    assert_true(me > 100); /* a real test of counting */
    assert_close(mt, me, 0, 4 * sqrt(me / N));
    for (int i = 0; i < N; i++) assert_true(s.meta[i].photons_recorded <= s.meta[i].photons_total);
    /* BAD pixels hold 0 */
    for (size_t p = 0; p < f.det.npix; p++)
        if (f.det.mask[p] == EW_MASK_BAD)
            for (int i = 0; i < N; i++) assert_true(s.data[(size_t)i * f.det.npix + p] == 0.0f);
    double pred_all, pred_rec;
    assert_ok(ew_xfel_predict_photons(&f.det, &f.W, &pred_all, &pred_rec));
    assert_true(pred_rec < pred_all);
    double sem = sqrt(var / N);
    assert_close(me, pred_all, 0.01, 4 * sem);
    /* Debye: sum_p corr_p Phi r_e^2 <|F|^2>(|s_p|), the Debye curve
     * tabulated at 257 radii (spacing 1/50 of the speckle width) */
    enum { NR = 256 };
    double rad[NR + 1], deb[NR + 1], dr = f.det.s_max_corner / NR;
    for (int k = 0; k <= NR; k++) rad[k] = k * dr;
    assert_ok(ew_scatter_debye(&f.atoms, rad, NR + 1, deb));
    double pd = 0, kf = ew_xfel_fluence(&f.cfg) * EW_R_E_A * EW_R_E_A;
    for (size_t p = 0; p < f.det.npix; p++) {
        const float *v = f.det.s + 3 * p;
        double x = sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]) / dr;
        int k = (int)x;
        double d = deb[k] + (x - k) * (deb[k + 1] - deb[k]);
        pd += kf * d * f.det.corr[p];
    }
    assert_close(me, pd, 0.01, 4 * sem);
    assert_close(pred_all, pd, 0.01, 0);
    sink_free(&s);
    fixture_free(&f);
}

/* Poisson counts pass a chi-square test over the categories 0..4, 5+,
 * with each pixel's own expectation; Gaussian readout residuals pass a
 * Kolmogorov-Smirnov test. */
static void test_noise_goodness_of_fit(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 1000, 0);
    enum { N = 60 };
    f.cfg.n_patterns = N;
    f.cfg.keep_expected = 1;
    f.cfg.background = 0.2;
    sink_t s;
    sink_init(&s, N, f.det.npix);
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL));
    enum { K = 6 };
    double obs[K] = {0}, expc[K] = {0};
    for (size_t i = 0; i < (size_t)N * f.det.npix; i++) {
        size_t p = i % f.det.npix;
        if (f.det.mask[p] == EW_MASK_BAD) continue;
        double l = s.expected[i], pk = exp(-l), cum = 0;
        assert_true(s.expected[i] >= 0.2f * 0.999f);
        for (int k = 0; k < K - 1; k++) {
            expc[k] += pk;
            cum += pk;
            pk *= l / (k + 1);
        }
        expc[K - 1] += 1 - cum;
        double v = s.data[i];
        assert_true(v == floor(v));
        obs[v < K - 1 ? (int)v : K - 1] += 1;
    }
    double chi2 = 0;
    for (int k = 0; k < K; k++) {
        assert_true(expc[k] > 50);
        chi2 += pow(obs[k] - expc[k], 2) / expc[k];
    }
    assert_true(chi2 < 20.5); /* chi^2(5) at p = 0.001 */
    sink_free(&s);

    /* readout noise alone: (data - expected) / sigma ~ N(0, 1) */
    f.cfg.poisson = 0;
    f.cfg.readout_sigma = 0.7;
    sink_init(&s, N, f.det.npix);
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL));
    size_t m = 0, tot = (size_t)N * f.det.npix;
    double *z = malloc(sizeof(double) * tot);
    for (size_t i = 0; i < tot; i++)
        if (f.det.mask[i % f.det.npix] != EW_MASK_BAD) z[m++] = (s.data[i] - s.expected[i]) / 0.7;
    qsort(z, m, sizeof(double), cmp);
    double dmax = 0;
    for (size_t i = 0; i < m; i++) {
        double F = 0.5 * erfc(-z[i] / sqrt(2.0));
        dmax = fmax(dmax, fmax(fabs(F - (double)i / m), fabs(F - (double)(i + 1) / m)));
    }
    assert_true(dmax * sqrt((double)m) < 1.95); /* KS at p = 0.001 */
    /* the tails (the ziggurat's slow paths): P(|z| > 3) = 0.0026998, P(|z| > 3.6) = 3.18e-4 */
    size_t t3 = 0, t36 = 0;
    for (size_t i = 0; i < m; i++) t3 += fabs(z[i]) > 3.0, t36 += fabs(z[i]) > 3.6;
    assert_close(t3, 0.0026998 * m, 0, 4 * sqrt(0.0026998 * m));
    assert_close(t36, 3.18e-4 * m, 0, 4 * sqrt(3.18e-4 * m) + 1);
    free(z);
    sink_free(&s);
    fixture_free(&f);
}

/* Poisson counts at one constant mean per run (fluence factor 0, the
 * background alone): a chi-square test over bins of k with exact Poisson
 * probabilities, at each of the sampler's paths. Counts at a fixed
 * (seed, pattern, pixel) do not depend on the thread count. */
static void test_poisson_constant_means(void **state)
{
    (void)state;
    /* 0.01: mean per pixel below 0.02, the k = 0 test without exp; 0.05 and
     * 3: exp and counts up to 3 in the vector pass, sequential search
     * above; 30: PTRS */
    static const double means[4] = {0.01, 0.05, 3.0, 30.0};
    /* bin upper edges (inclusive), the last bin open */
    static const int edges[4][8] = {
        {0, -1}, {0, 1, -1}, {0, 1, 2, 3, 4, 5, 6, -1}, {23, 26, 28, 30, 32, 35, 38, -1}};
    enum { N = 150 };
    for (int t = 0; t < 4; t++) {
        fixture_t f;
        fixture_init(&f, 0.0, 0);
        f.cfg.n_patterns = N;
        f.cfg.background = means[t];
        f.cfg.threads = 2;
        sink_t s;
        sink_init(&s, N, f.det.npix);
        assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL));
        int nb = 0;
        while (edges[t][nb] >= 0) nb++;
        nb++; /* the open bin */
        double obs[9] = {0}, pb[9] = {0};
        size_t m = 0;
        for (size_t i = 0; i < (size_t)N * f.det.npix; i++) {
            if (f.det.mask[i % f.det.npix] == EW_MASK_BAD) continue;
            double v = s.data[i];
            assert_true(v == floor(v) && v >= 0);
            int b = 0;
            while (b < nb - 1 && v > edges[t][b]) b++;
            obs[b] += 1;
            m++;
        }
        /* exact bin probabilities, pmf in log space */
        double cum = 0;
        for (int b = 0, k = 0; b < nb - 1; b++)
            for (; k <= edges[t][b]; k++) {
                double pk = exp(k * log(means[t]) - means[t] - lgamma(k + 1.0));
                pb[b] += pk;
                cum += pk;
            }
        pb[nb - 1] = 1 - cum;
        double chi2 = 0;
        for (int b = 0; b < nb; b++) {
            double e = pb[b] * m;
            assert_true(e > 50);
            chi2 += pow(obs[b] - e, 2) / e;
        }
        /* chi^2 at p = 0.001 for nb - 1 = 1, 2, 7, 7 degrees of freedom */
        assert_true(chi2 < (nb == 2 ? 10.83 : nb == 3 ? 13.82 : 24.32));
        /* the same counts with one thread */
        sink_t s1;
        sink_init(&s1, N, f.det.npix);
        f.cfg.threads = 1;
        f.cfg.n_patterns = 5;
        assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s1, NULL));
        assert_memory_equal(s.data, s1.data, 5 * f.det.npix * sizeof(float));
        sink_free(&s1);
        sink_free(&s);
        fixture_free(&f);
    }
}

/* Fluence jitter: gamma and lognormal have mean 1 and the relative spread
 * asked for; a histogram's multiplier has mean 1. */
static void test_fluence_jitter(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 1, 0);
    enum { N = 3000 };
    f.cfg.n_patterns = N;
    f.cfg.poisson = 0;
    f.cfg.fluence_spread = 0.5;
    ew_fluence_dist_t d[2] = {EW_FLUENCE_GAMMA, EW_FLUENCE_LOGNORMAL};
    for (int t = 0; t < 3; t++) {
        double hv[4] = {1e6, 2e6, 3e6, 4e6}, hw[4] = {1, 2, 3, 0};
        if (t < 2) f.cfg.fluence_dist = d[t];
        else {
            f.cfg.fluence_dist = EW_FLUENCE_HISTOGRAM;
            f.cfg.hist_values = hv, f.cfg.hist_weights = hw, f.cfg.hist_n = 4;
        }
        sink_t s;
        sink_init(&s, N, f.det.npix);
        assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL));
        double m = 0, v = 0;
        for (int i = 0; i < N; i++) m += s.meta[i].fluence_mult / N;
        for (int i = 0; i < N; i++) v += pow(s.meta[i].fluence_mult - m, 2) / (N - 1);
        if (t < 2) {
            assert_close(m, 1.0, 0, 4 * 0.5 / sqrt(N));
            assert_close(sqrt(v), 0.5, 0.08, 0);
        } else {
            /* bins at 1, 2, 3 (x 1e6) with weights 1, 2, 3, each uniform over its width 1:
             * mean 14/6, variance 36/6 - (14/6)^2 + 1/12 (in 1e6 units) */
            double mu = 14.0 / 6.0, sd = sqrt(36.0 / 6.0 - mu * mu + 1.0 / 12.0) / mu;
            assert_close(m, 1.0, 0, 4 * sd / sqrt(N));
            assert_close(sqrt(v), sd, 0.08, 0);
        }
        sink_free(&s);
    }
    /* invalid histograms and settings name the field */
    double bad_v[2] = {2, 1}, w2[2] = {1, 1};
    f.cfg.hist_values = bad_v, f.cfg.hist_weights = w2, f.cfg.hist_n = 2;
    sink_t s;
    sink_init(&s, 1, f.det.npix);
    assert_int_equal(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "increasing"));
    f.cfg.fluence_dist = EW_FLUENCE_CONSTANT;
    f.cfg.readout_sigma = -1;
    assert_int_equal(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "readout"));
    sink_free(&s);
    fixture_free(&f);
}

/* Interpolated patterns against exact direct summation: same orientations,
 * the trilinear error measured and bounded; a volume too small for the
 * detector is refused; a writer error stops the run. */
static void test_interpolation_vs_exact(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 1, 0);
    enum { N = 8 };
    f.cfg.n_patterns = N;
    f.cfg.poisson = 0;
    f.cfg.keep_expected = 1;
    sink_t a, b;
    sink_init(&a, N, f.det.npix);
    sink_init(&b, N, f.det.npix);
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &a, NULL));
    f.cfg.exact = 1;
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, NULL, &f.atoms, sink_write, &b, NULL));
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)N * f.det.npix; i++) {
        num += pow(a.expected[i] - b.expected[i], 2);
        den += pow(b.expected[i], 2);
    }
    double rel = sqrt(num / den);
    print_message("trilinear vs exact: relative rms error %.4f (volume n = %d, one pixel step)\n", rel, f.W.n);
    assert_true(rel < 0.05);
    for (int i = 0; i < N; i++) assert_close(a.meta[i].photons_expected, b.meta[i].photons_expected, 0.02, 0);
    sink_free(&a), sink_free(&b);

    f.cfg.exact = 0;
    ew_rvol_t small;
    assert_ok(ew_rvol_alloc(&small, 9, f.W.ds));
    sink_init(&a, N, f.det.npix);
    assert_int_equal(ew_xfel_simulate(&f.cfg, &f.det, &small, NULL, sink_write, &a, NULL), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "photon volume"));
    a.fail_at = 2;
    f.cfg.batch = 3;
    assert_int_equal(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &a, NULL), EW_ERR_IO);
    assert_int_equal(a.calls, 2);
    sink_free(&a);
    ew_rvol_free(&small);
    fixture_free(&f);
}

/* Streaming to files: the CXI patterns, truth and mask, the .emc counts,
 * the Dragonfly detector and the volume read back as simulated in memory;
 * a failing output leaves no file behind. */
static void test_to_files(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 1000, 0);
    enum { N = 23 };
    f.cfg.n_patterns = N;
    f.cfg.batch = 10;
    f.cfg.readout_sigma = 0.2;
    f.cfg.keep_expected = 1;
    sink_t s;
    sink_init(&s, N, f.det.npix);
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL));
    ew_xfel_model_t m;
    memset(&m, 0, sizeof m);
    m.atoms = f.atoms, m.det = f.det, m.W = f.W;
    m.fluence = ew_xfel_fluence(&f.cfg);
    char cxi[512], emc[512], dfile[512], vol[512], mon[512], hist[512];
    snprintf(mon, sizeof mon, "%s", ew_test_tmpfile("montage.png"));
    snprintf(hist, sizeof hist, "%s", ew_test_tmpfile("hist.png"));
    snprintf(cxi, sizeof cxi, "%s", ew_test_tmpfile("sim.cxi"));
    snprintf(emc, sizeof emc, "%s", ew_test_tmpfile("sim.emc"));
    snprintf(dfile, sizeof dfile, "%s", ew_test_tmpfile("det.dat"));
    snprintf(vol, sizeof vol, "%s", ew_test_tmpfile("vol.h5"));
    ew_xfel_output_t out = {.cxi_path = cxi, .with_expected = 1, .emc_path = emc, .emc_detector_path = dfile,
                            .volume_path = vol, .montage_path = mon, .montage_count = 9,
                            .histogram_path = hist, .structure_name = "random300"};
    ew_xfel_stats_t st;
    assert_ok(ew_xfel_simulate_to_cxi(&m, &f.cfg, &out, &st));
    assert_int_equal(st.n, N);
    ew_cxi_reader_t *r;
    assert_ok(ew_cxi_reader_open(cxi, &r));
    assert_int_equal(ew_cxi_reader_count(r), N);
    const ew_cxi_geometry_t *g = ew_cxi_reader_geometry(r);
    assert_memory_equal(g->mask, f.det.mask, f.det.npix);
    assert_memory_equal(g->s, f.det.s, 3 * f.det.npix * sizeof(float));
    float *buf = malloc(sizeof(float) * N * f.det.npix);
    assert_ok(ew_cxi_read_patterns(r, 0, N, buf));
    assert_memory_equal(buf, s.data, N * f.det.npix * sizeof(float));
    assert_ok(ew_cxi_read_expected(r, 0, N, buf));
    assert_memory_equal(buf, s.expected, N * f.det.npix * sizeof(float));
    double q[4 * N], fl[N], ph[N];
    assert_ok(ew_cxi_read_truth(r, 0, N, q, fl, ph));
    for (int i = 0; i < N; i++) {
        assert_true(q[4 * i] == s.meta[i].quat.w && q[4 * i + 3] == s.meta[i].quat.z);
        assert_true(fl[i] == s.meta[i].fluence && ph[i] == s.meta[i].photons_total);
    }
    assert_int_equal(ew_cxi_reader_seed(r), 77);
    ew_cxi_reader_close(r);
    ew_emc_photons_t ep;
    assert_ok(ew_emc_photons_read(emc, &ep));
    assert_int_equal(ep.num_frames, N);
    /* frame 5's photons: ones and multis against the rounded data */
    const float *d5 = s.data + 5 * f.det.npix;
    double want = 0, got = 0;
    for (size_t p = 0; p < f.det.npix; p++) want += d5[p] > 0 ? (double)lrintf(d5[p]) : 0;
    got = (double)(ep.ones_off[6] - ep.ones_off[5]);
    for (int64_t k = ep.multi_off[5]; k < ep.multi_off[6]; k++) got += ep.count_multi[k];
    assert_close(got, want, 0, 0.5);
    ew_emc_photons_free(&ep);
    ew_emc_detector_t ed;
    assert_ok(ew_emc_detector_read(dfile, &ed));
    float *s2 = malloc(sizeof(float) * 3 * f.det.npix);
    assert_ok(ew_emc_detector_to_s(&ed, f.det.wavelength_a, s2));
    for (size_t p = 0; p < 3 * f.det.npix; p++) assert_close(s2[p], f.det.s[p], 1e-5, 1e-7);
    ew_emc_detector_free(&ed);
    ew_rvol_t W2;
    assert_ok(ew_h5vol_read_rvol(vol, &W2, NULL, NULL));
    assert_int_equal(W2.n, f.W.n);
    assert_memory_equal(W2.data, f.W.data, (size_t)W2.n * W2.n * W2.n * sizeof(float));
    ew_rvol_free(&W2);
    int pw, ph2, pc;
    uint8_t *px;
    assert_ok(ew_png_read(mon, &pw, &ph2, &pc, &px));
    assert_true(pw >= 3 * 64 && ph2 >= 3 * 64); /* 3 x 3 tiles of 32 px at zoom 2 */
    ew_free(px);
    assert_ok(ew_png_read(hist, &pw, &ph2, &pc, &px));
    assert_int_equal(pw, 640);
    ew_free(px);
    remove(mon), remove(hist);
    free(s2), free(buf);
    /* an unwritable CXI path: an error, and no other file left either */
    remove(emc), remove(vol), remove(dfile);
    out.cxi_path = "/nonexistent-dir/x.cxi";
    assert_int_not_equal(ew_xfel_simulate_to_cxi(&m, &f.cfg, &out, NULL), EW_OK);
    assert_int_not_equal(access(emc, F_OK), 0);
    assert_int_not_equal(access(vol, F_OK), 0);
    assert_int_not_equal(access(dfile, F_OK), 0);
    assert_int_not_equal(access(mon, F_OK), 0);
    assert_int_not_equal(access(hist, F_OK), 0);
    remove(cxi);
    sink_free(&s);
    fixture_free(&f);
}

/* The measured AMO86615 photons-per-pattern histogram drives the fluence
 * multiplier: mean 1, relative spread that of the histogram (~0.5). */
static void test_measured_histogram(void **state)
{
    (void)state;
    const char *path = ew_test_data("photon_counts_amo86615.npy");
    if (!path) skip();
    double *v, *w;
    size_t nb;
    assert_ok(ew_xfel_load_photon_histogram(path, &v, &w, &nb));
    assert_int_equal(nb, 100);
    double sw = 0, m1 = 0, m2 = 0;
    for (size_t i = 0; i < nb; i++) sw += w[i], m1 += w[i] * v[i], m2 += w[i] * v[i] * v[i];
    m1 /= sw, m2 /= sw;
    double rel = sqrt(m2 - m1 * m1) / m1;
    assert_true(m1 > 1e6 && m1 < 1e8);
    fixture_t f;
    fixture_init(&f, 1, 0);
    enum { N = 3000 };
    f.cfg.n_patterns = N;
    f.cfg.poisson = 0;
    f.cfg.fluence_dist = EW_FLUENCE_HISTOGRAM;
    f.cfg.hist_values = v, f.cfg.hist_weights = w, f.cfg.hist_n = nb;
    sink_t s;
    sink_init(&s, N, f.det.npix);
    assert_ok(ew_xfel_simulate(&f.cfg, &f.det, &f.W, NULL, sink_write, &s, NULL));
    double m = 0, var = 0;
    for (int i = 0; i < N; i++) m += s.meta[i].fluence_mult / N;
    for (int i = 0; i < N; i++) var += pow(s.meta[i].fluence_mult - m, 2) / (N - 1);
    assert_close(m, 1.0, 0, 4 * rel / sqrt(N));
    assert_close(sqrt(var), rel, 0.1, 0); /* within-bin spreading adds a little */
    sink_free(&s);
    fixture_free(&f);
    ew_free(v), ew_free(w);
    /* a file of the wrong shape names the file */
    assert_int_not_equal(ew_xfel_load_photon_histogram("/nonexistent.npy", &v, &w, &nb), EW_OK);
    assert_null(v);
}

/* The whole pipeline from a PDB file (shared data; skipped if absent). */
static void test_model_from_pdb(void **state)
{
    (void)state;
    const char *path = ew_test_data("pdb/2lyz.pdb");
    if (!path) skip();
    ew_xfel_setup_t su;
    memset(&su, 0, sizeof su);
    su.structure_path = path;
    su.detector = ew_detector_config_reference();
    su.detector.nx = su.detector.ny = 32;
    su.detector.pixel_m = 0.1 / 32;
    su.sim = ew_xfel_config_reference();
    ew_xfel_model_t m;
    assert_ok(ew_xfel_model_build(&su, &m));
    /* I(0) = (electron count)^2: lysozyme's 1001 non-H atoms of 2lyz */
    int c = m.W.n / 2;
    double I0 = m.W.data[((size_t)c * m.W.n + c) * m.W.n + c] / (m.fluence * EW_R_E_A * EW_R_E_A);
    assert_close(sqrt(I0), m.atoms.electrons, 1e-5, 0);
    ew_xfel_model_free(&m);
    su.structure_path = "/nonexistent/x.pdb";
    assert_int_not_equal(ew_xfel_model_build(&su, &m), EW_OK);
    assert_non_null(strstr(ew_error_message(), "/nonexistent/x.pdb"));
}

int main(void)
{
    ew_log_set_level(EW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poisson_constant_means),
        cmocka_unit_test(test_reference_fluence),      cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_mean_photons),           cmocka_unit_test(test_noise_goodness_of_fit),
        cmocka_unit_test(test_fluence_jitter),         cmocka_unit_test(test_interpolation_vs_exact),
        cmocka_unit_test(test_model_from_pdb),          cmocka_unit_test(test_to_files),
        cmocka_unit_test(test_measured_histogram),
        cmocka_unit_test(test_beam_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
