/* Tests of physics/em_sim: image formation against linear CTF theory,
 * the phase grating in focus, particle heights as defocus, Poisson dose
 * statistics, coordinates and masks, RELION poses, determinism, and Thon
 * rings against real EMPIAR-10076 particles. */
#include "testutil.h"

#include <fftw3.h>
#include <omp.h>

#include "geom/geom.h"
#include "io/mrc.h"
#include "io/png.h"
#include "io/star.h"
#include "physics/em_sim.h"

/* A small synthetic protein-like blob: n atoms (C, N, O, S) in a ball. */
typedef struct {
    ew_structure_t s;
} blob_t;

static void blob_make(blob_t *b, int n, double radius, float occ, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    ew_structure_t *s = &b->s;
    s->n_atoms = (size_t)n;
    s->xyz = calloc((size_t)n * 3, sizeof(float));
    s->z = calloc((size_t)n, 1);
    s->occupancy = calloc((size_t)n, sizeof(float));
    s->b_factor = calloc((size_t)n, sizeof(float));
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    static const uint8_t el[4] = {6, 7, 8, 16};
    for (int i = 0; i < n; i++) {
        double v[3], d2;
        do {
            for (int k = 0; k < 3; k++) v[k] = radius * (2 * ew_rng_uniform(&r) - 1);
            d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        } while (d2 > radius * radius);
        /* elongate along x so that poses matter */
        s->xyz[3 * i] = (float)(v[0] * 1.6 + 20.0);
        s->xyz[3 * i + 1] = (float)(v[1] - 5.0);
        s->xyz[3 * i + 2] = (float)(v[2] * 0.7 + 3.0);
        s->z[i] = el[i % 4];
        s->occupancy[i] = occ;
        s->b_factor[i] = (float)(20 + i % 30);
    }
    snprintf(s->source, sizeof s->source, "blob");
}

static void blob_free(blob_t *b)
{
    free(b->s.xyz);
    free(b->s.z);
    free(b->s.occupancy);
    free(b->s.b_factor);
}

static void quiet_config(ew_em_config_t *c, int n, double pixel)
{
    ew_em_config_default(c);
    c->nx = c->ny = n;
    c->pixel = pixel;
    c->oversample = 1;
    c->ice.thickness = 0.0;
    c->mtf_analytic = 0;
    c->dqe0 = 1.0;
    c->dose = 40.0;
    c->defocus_min = c->defocus_max = 0.0;
    c->ctf.defocus_u = 12000.0;
    c->ctf.defocus_v = 10000.0;
    c->ctf.astig_angle_deg = 25.0;
    c->specimen.count_mean = 1;
    c->seed = 11;
    c->fft_measure = 0; /* fast planning in tests */
}

/* L = IFFT[ 2 CTF(s) / sqrt(1 - A^2) FFT(phi) ] with the given CTF. */
static void linear_image(const float *phi, int n, double pixel, const ew_ctf_params_t *ctf, double *out)
{
    int nh = n / 2 + 1;
    double *in = fftw_malloc(sizeof(double) * n * n);
    fftw_complex *F = fftw_malloc(sizeof(fftw_complex) * n * nh);
    fftw_plan pf = fftw_plan_dft_r2c_2d(n, n, in, F, FFTW_ESTIMATE);
    fftw_plan pb = fftw_plan_dft_c2r_2d(n, n, F, out, FFTW_ESTIMATE);
    for (int i = 0; i < n * n; i++) in[i] = phi[i];
    fftw_execute(pf);
    double A = ctf->amp_contrast;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < nh; ix++) {
            double sx = ix / (n * pixel), sy = (iy <= n / 2 ? iy : iy - n) / (n * pixel);
            double h = 2.0 * ew_ctf_eval(ctf, sx, sy) / sqrt(1 - A * A) / ((double)n * n);
            F[iy * nh + ix][0] *= h;
            F[iy * nh + ix][1] *= h;
        }
    fftw_execute(pb);
    fftw_destroy_plan(pf);
    fftw_destroy_plan(pb);
    fftw_free(in);
    fftw_free(F);
}

/* max |clean/(dose px^2) - 1 - L| relative to max |L| */
static double linear_misfit(const ew_em_micrograph_t *m, double dose, const ew_ctf_params_t *ctf, double *lmax)
{
    int n = m->nx;
    double *L = malloc(sizeof(double) * n * n);
    linear_image(m->projection, n, m->pixel, ctf, L);
    double err = 0, mx = 0;
    for (int i = 0; i < n * n; i++) {
        double v = m->clean[i] / (dose * m->pixel * m->pixel) - 1.0;
        err = fmax(err, fabs(v - L[i]));
        mx = fmax(mx, fabs(L[i]));
    }
    free(L);
    *lmax = mx;
    return err / mx;
}

/* Weak phase object: the simulated image is 1 + 2 CTF phi / sqrt(1-A^2) up
 * to the quadratic term (independent: CTF formula applied by FFT here). */
static void test_weak_phase_linear(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 300, 12.0, 0.1f, 1);
    ew_em_config_t c;
    quiet_config(&c, 128, 1.0);
    c.phase_grating = 0;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    ew_em_micrograph_t m;
    assert_ok(ew_em_sim_run(sim, 0, &m));
    assert_int_equal(m.n_particles, 1);
    double lmax, mis = linear_misfit(&m, c.dose, &m.ctf, &lmax);
    assert_true(lmax > 1e-3);
    assert_true(mis < 0.03);
    /* with the astigmatism angle mirrored the prediction is clearly worse */
    ew_ctf_params_t wrong = m.ctf;
    wrong.astig_angle_deg = -25.0;
    double l2, mis2 = linear_misfit(&m, c.dose, &wrong, &l2);
    assert_true(mis2 > 5 * mis);
    /* RELION's sign is wrong for the physical image */
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    /* phase grating: same to first order */
    c.phase_grating = 1;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    assert_ok(ew_em_sim_run(sim, 0, &m));
    assert_true(linear_misfit(&m, c.dose, &m.ctf, &lmax) < 0.03);
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    blob_free(&b);
}

/* A pure phase grating in perfect focus (no Cs, no amplitude contrast)
 * is invisible: |exp(i phi)|^2 = 1 everywhere. */
static void test_grating_in_focus_invisible(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 400, 10.0, 1.0f, 2);
    ew_em_config_t c;
    quiet_config(&c, 96, 1.0);
    c.ctf.defocus_u = c.ctf.defocus_v = 0.0;
    c.ctf.cs_mm = 0.0;
    c.ctf.amp_contrast = 0.0;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    ew_em_micrograph_t m;
    assert_ok(ew_em_sim_run(sim, 0, &m));
    double pmax = 0;
    for (int i = 0; i < 96 * 96; i++) {
        assert_close(m.clean[i], 40.0, 1e-5, 0);
        pmax = fmax(pmax, m.projection[i]);
    }
    assert_true(pmax > 0.05);
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    /* the weak-phase approximation is not invisible: |1 + i phi|^2 = 1 + phi^2 */
    c.phase_grating = 0;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    assert_ok(ew_em_sim_run(sim, 0, &m));
    double dmax = 0;
    for (int i = 0; i < 96 * 96; i++) {
        double phi = m.projection[i];
        dmax = fmax(dmax, fabs(m.clean[i] / 40.0 - 1.0));
        assert_close(m.clean[i] / 40.0, 1.0 + phi * phi, 0, 1e-5);
    }
    assert_true(dmax > 1e-3);
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    blob_free(&b);
}

/* A particle at height z is imaged with defocus dU - z, dV - z. */
static void test_height_is_defocus(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 200, 10.0, 0.1f, 3);
    ew_em_config_t c;
    quiet_config(&c, 128, 1.0);
    c.phase_grating = 0;
    c.ice.thickness = 4000.0;
    c.ice.density = 1e-12; /* a slab without ice potential */
    c.ice.inelastic_mfp = 0.0;
    c.ice.thickness_rel_sd = 0.0;
    c.specimen.random_heights = 1;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    ew_em_micrograph_t m;
    double z = 0;
    for (size_t idx = 0; idx < 20; idx++) {
        assert_ok(ew_em_sim_run(sim, idx, &m));
        z = m.particles[0].z;
        if (fabs(z) > 500.0) break;
        ew_em_micrograph_free(&m);
    }
    assert_true(fabs(z) > 500.0);
    ew_ctf_params_t shifted = m.ctf;
    shifted.defocus_u -= z;
    shifted.defocus_v -= z;
    double lmax;
    double good = linear_misfit(&m, c.dose, &shifted, &lmax);
    double bad = linear_misfit(&m, c.dose, &m.ctf, &lmax);
    printf("height %.0f A: misfit %.4f with defocus - z, %.4f without\n", z, good, bad);
    assert_true(good < 0.03);
    assert_true(bad > 0.2);
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    blob_free(&b);
}

static double log_poisson_pmf(int k, double mu)
{
    return k * log(mu) - mu - lgamma(k + 1.0);
}

/* Empty field: counts are Poisson(dose pixel^2); with DQE(0) = q they are
 * Poisson(q lambda)/q (mean lambda, variance lambda/q). */
static void test_dose_poisson(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 10, 3.0, 1.0f, 4);
    ew_em_config_t c;
    quiet_config(&c, 256, 1.0);
    c.specimen.count_mean = 0;
    c.dose = 5.0;
    for (int pass = 0; pass < 2; pass++) {
        c.dqe0 = pass == 0 ? 1.0 : 0.5;
        ew_em_sim_t *sim;
        assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
        ew_em_micrograph_t m;
        assert_ok(ew_em_sim_run(sim, 3, &m));
        assert_int_equal(m.n_particles, 0);
        size_t n = 256 * 256;
        double s1 = 0, s2 = 0;
        long hist[64] = {0};
        for (size_t i = 0; i < n; i++) {
            double v = m.micrograph[i];
            assert_close(m.clean[i], 5.0, 1e-5, 0);
            s1 += v;
            s2 += v * v;
            double k = v * c.dqe0;
            assert_close(k, round(k), 0, 1e-4);
            if (k < 63) hist[(int)round(k)]++;
        }
        double mean = s1 / n, var = s2 / n - mean * mean;
        assert_close(mean, 5.0, 0.01, 0);
        assert_close(var, 5.0 / c.dqe0, 0.03, 0);
        /* chi-square against the Poisson pmf of mean q lambda */
        double mu = 5.0 * c.dqe0, chi2 = 0;
        int dof = 0;
        for (int k = 0; k < 20; k++) {
            double e = n * exp(log_poisson_pmf(k, mu));
            if (e < 5) continue;
            chi2 += (hist[k] - e) * (hist[k] - e) / e;
            dof++;
        }
        printf("dose statistics (DQE0 %.1f): mean %.4f var %.4f chi2 %.1f on %d bins\n", c.dqe0, mean, var, chi2, dof);
        assert_true(chi2 < 2.0 * dof + 20.0);
        ew_em_micrograph_free(&m);
        ew_em_sim_destroy(sim);
    }
    blob_free(&b);
}

/* STAR coordinates (x/pixel) are the centroids of the particles in the
 * clean projection and sit inside the masks; boxes are centred. */
static void test_coordinates_masks(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 500, 14.0, 1.0f, 5);
    ew_em_config_t c;
    quiet_config(&c, 300, 1.7);
    c.mode = EW_EM_GENEM;
    c.specimen.count_mean = 12;
    c.specimen.min_gap = 6.0;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    ew_em_micrograph_t m;
    assert_ok(ew_em_sim_run(sim, 1, &m));
    assert_true(m.n_particles >= 8);
    double rad = ew_em_sim_model(sim, 0)->radius / c.pixel;
    for (size_t p = 0; p < m.n_particles; p++) {
        double cx = m.particles[p].x / c.pixel, cy = m.particles[p].y / c.pixel;
        double w = 0, mx = 0, my = 0;
        int R = (int)(rad + 3 + c.specimen.min_gap / 2 / c.pixel);
        for (int y = (int)cy - R; y <= (int)cy + R + 1; y++)
            for (int x = (int)cx - R; x <= (int)cx + R + 1; x++) {
                if (x < 0 || y < 0 || x >= 300 || y >= 300) continue;
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) > R * R) continue;
                double v = m.projection[y * 300 + x];
                w += v;
                mx += v * x;
                my += v * y;
            }
        assert_close(mx / w, cx, 0, 0.05);
        assert_close(my / w, cy, 0, 0.05);
        assert_int_equal(m.mask[(int)lround(cy) * 300 + (int)lround(cx)], 1);
        /* box extraction: centroid at box/2 + (c - round(c)) */
        int box = 64;
        float out[64 * 64];
        ew_em_extract_box(m.projection, 300, 300, cx, cy, box, out);
        double bw = 0, bx = 0, by = 0;
        for (int y = 0; y < box; y++)
            for (int x = 0; x < box; x++) {
                if ((x - box / 2) * (x - box / 2) + (y - box / 2) * (y - box / 2) > R * R) continue;
                double v = out[y * box + x];
                bw += v, bx += v * x, by += v * y;
            }
        assert_close(bx / bw, box / 2 + (cx - lround(cx)), 0, 0.1);
        assert_close(by / bw, box / 2 + (cy - lround(cy)), 0, 0.1);
    }
    /* the GenEM noise is white at the requested SNR */
    double s = 0, s2 = 0, c1 = 0, c2 = 0;
    for (int i = 0; i < 300 * 300; i++) {
        double d = m.micrograph[i] - m.clean[i];
        s += d, s2 += d * d;
        c1 += m.clean[i], c2 += (double)m.clean[i] * m.clean[i];
    }
    double nv = s2 / 9e4 - (s / 9e4) * (s / 9e4), cv = c2 / 9e4 - (c1 / 9e4) * (c1 / 9e4);
    assert_close(cv / nv, 0.1, 0.03, 0);
    assert_close(sqrt(nv), m.noise_sd, 0.02, 0);
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    blob_free(&b);
}

/* In the clean (CTF-filtered, noise-free) image of a lone particle, the
 * centroid of the image (first moment over the zeroth) is the STAR
 * coordinate: the CTF's point spread h is even, so the centroid of h * phi
 * is that of phi, which is the particle's centre (sum h = CTF(0) = -A != 0). */
static void test_clean_image_centre(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 500, 14.0, 1.0f, 5);
    ew_em_config_t c;
    quiet_config(&c, 160, 1.5);
    c.mode = EW_EM_GENEM;
    c.ctf.defocus_u = 2500.0;
    c.ctf.defocus_v = 2000.0;
    c.ctf.bfactor = 100.0; /* a compact point spread: no wrap-around */
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    for (size_t k = 0; k < 6; k++) {
        ew_em_micrograph_t m;
        assert_ok(ew_em_sim_run(sim, k, &m));
        assert_int_equal(m.n_particles, 1);
        double cx = m.particles[0].x / c.pixel, cy = m.particles[0].y / c.pixel;
        double e = 0, ex = 0, ey = 0;
        for (int y = 0; y < 160; y++)
            for (int x = 0; x < 160; x++) {
                double v = m.clean[y * 160 + x];
                e += v, ex += v * x, ey += v * y;
            }
        printf("clean-image centre - STAR coordinate: (%+.3f, %+.3f) px\n", ex / e - cx, ey / e - cy);
        assert_close(ex / e, cx, 0, 0.05);
        assert_close(ey / e, cy, 0, 0.05);
        ew_em_micrograph_free(&m);
    }
    ew_em_sim_destroy(sim);
    blob_free(&b);
}

/* The projection of the structure rotated by the matrix of the written
 * RELION angles reproduces the particle image; the transpose does not. */
static void test_pose_relion(void **state)
{
    (void)state;
    ew_structure_t st;
    int own = 0;
    blob_t b;
    const char *path = ew_test_data("pdb/2lyz.pdb");
    if (path && ew_structure_read(path, NULL, &st) == EW_OK) {
        own = 1;
    } else {
        blob_make(&b, 500, 14.0, 1.0f, 6);
        st = b.s;
    }
    ew_em_config_t c;
    quiet_config(&c, 200, 1.0);
    c.mode = EW_EM_GENEM;
    c.specimen.count_mean = 4;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &st, 1, &sim));
    const ew_em_model_t *mod = ew_em_sim_model(sim, 0);
    ew_em_micrograph_t m;
    assert_ok(ew_em_sim_run(sim, 2, &m));
    assert_true(m.n_particles >= 2);
    double sigma = ew_electron_sigma(c.ctf.voltage_v);
    float *img = calloc(200 * 200, sizeof(float)), *img_t = calloc(200 * 200, sizeof(float));
    float *xyz = malloc(sizeof(float) * 3 * st.n_atoms);
    const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (size_t p = 0; p < m.n_particles; p++) {
        double rot, tilt, psi, A[9], At[9];
        ew_mat_to_euler_relion(m.particles[p].R, &rot, &tilt, &psi);
        ew_euler_relion_to_mat(rot, tilt, psi, A);
        ew_mat_transpose(A, At);
        double cx = m.particles[p].x / c.pixel, cy = m.particles[p].y / c.pixel;
        for (int pass = 0; pass < 2; pass++) {
            const double *M = pass == 0 ? A : At;
            for (size_t i = 0; i < st.n_atoms; i++) {
                double v[3], o[3];
                for (int d = 0; d < 3; d++) v[d] = st.xyz[3 * i + d] - mod->centre[d];
                ew_mat_apply(M, v, o);
                for (int d = 0; d < 3; d++) xyz[3 * i + d] = (float)o[d];
            }
            ew_peng_atoms_t at;
            assert_ok(ew_peng_atoms_init(&at, xyz, st.z, st.b_factor, st.occupancy, st.n_atoms, 0.0, NULL));
            float *dst = pass == 0 ? img : img_t;
            memset(dst, 0, sizeof(float) * 200 * 200);
            ew_peng_project(&at, I, cx, cy, c.pixel, dst, 200, 200);
            ew_peng_atoms_free(&at);
        }
        double err = 0, err_t = 0, mx = 0;
        int R = (int)(mod->radius / c.pixel) + 2;
        for (int y = (int)cy - R; y <= (int)cy + R; y++)
            for (int x = (int)cx - R; x <= (int)cx + R; x++) {
                if (x < 0 || y < 0 || x >= 200 || y >= 200) continue;
                double ref = m.projection[y * 200 + x];
                err = fmax(err, fabs(sigma * img[y * 200 + x] - ref));
                err_t = fmax(err_t, fabs(sigma * img_t[y * 200 + x] - ref));
                mx = fmax(mx, ref);
            }
        assert_true(err < 2e-3 * mx);
        assert_true(err_t > 0.1 * mx);
    }
    free(img);
    free(img_t);
    free(xyz);
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    if (own) ew_structure_free(&st);
    else blob_free(&b);
}

/* Same (seed, index) -> bit-identical results for 1 and 2 threads. */
static void test_deterministic(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 300, 12.0, 1.0f, 7);
    ew_em_config_t c;
    ew_em_config_default(&c);
    c.nx = c.ny = 160;
    c.fft_measure = 0;
    c.pixel = 1.3; /* oversample 2 */
    c.specimen.count_mean = 4;
    c.specimen.count_sd = 1.5;
    c.specimen.random_heights = 1;
    c.drift[0] = 3.0;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    assert_int_equal(ew_em_sim_config(sim)->oversample, 2);
    ew_em_micrograph_t m1, m2, m3;
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    assert_ok(ew_em_sim_run(sim, 5, &m1));
    omp_set_num_threads(2);
    assert_ok(ew_em_sim_run(sim, 5, &m2));
    omp_set_num_threads(nt);
    assert_ok(ew_em_sim_run(sim, 6, &m3));
    size_t n = 160 * 160;
    assert_memory_equal(m1.micrograph, m2.micrograph, n * sizeof(float));
    assert_memory_equal(m1.clean, m2.clean, n * sizeof(float));
    assert_memory_equal(m1.mask, m2.mask, n);
    assert_true(memcmp(m1.micrograph, m3.micrograph, n * sizeof(float)) != 0);
    /* on the 2x finer simulation grid, binned: centroids still at the coordinates */
    assert_true(m1.n_particles >= 2);
    double rad = ew_em_sim_model(sim, 0)->radius / c.pixel + 1.0;
    for (size_t p = 0; p < m1.n_particles; p++) {
        double cx = m1.particles[p].x / c.pixel, cy = m1.particles[p].y / c.pixel, w = 0, mx = 0, my = 0;
        for (int y = 0; y < 160; y++)
            for (int x = 0; x < 160; x++) {
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) > rad * rad) continue;
                double v = m1.projection[y * 160 + x];
                w += v, mx += v * x, my += v * y;
            }
        assert_close(mx / w, cx, 0, 0.1);
        assert_close(my / w, cy, 0, 0.1);
    }
    /* the ice is there: thickness near 300 A, displaced nowhere below 0 */
    double t = 0;
    for (size_t i = 0; i < n; i++) t += m1.thickness[i];
    assert_close(t / n, 300.0, 0.25, 0);
    ew_em_micrograph_free(&m1);
    ew_em_micrograph_free(&m2);
    ew_em_micrograph_free(&m3);
    ew_em_sim_destroy(sim);
    blob_free(&b);
}

/* FFTW_MEASURE and FFTW_ESTIMATE plans give the same images to float rounding. */
static void test_measure_plans(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 200, 8.0, 1.0f, 12);
    ew_em_micrograph_t m[2];
    for (int k = 0; k < 2; k++) {
        ew_em_config_t c;
        ew_em_config_default(&c);
        c.nx = c.ny = 48;
        c.specimen.count_mean = 1;
        c.fft_measure = k;
        ew_em_sim_t *sim;
        assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
        assert_ok(ew_em_sim_run(sim, 0, &m[k]));
        ew_em_sim_destroy(sim);
    }
    for (int i = 0; i < 48 * 48; i++) assert_close(m[1].clean[i], m[0].clean[i], 1e-4, 0);
    ew_em_micrograph_free(&m[0]);
    ew_em_micrograph_free(&m[1]);
    blob_free(&b);
}

static void test_wisdom_files(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s", ew_test_tmpfile("wisdom.txt"));
    int loaded = 1;
    unlink(path);
    assert_ok(ew_em_fftw_wisdom_load(path, &loaded));
    assert_int_equal(loaded, 0);
    assert_ok(ew_em_fftw_wisdom_save(path));
    assert_ok(ew_em_fftw_wisdom_load(path, &loaded));
    assert_int_equal(loaded, 1);
    assert_int_equal(ew_test_write_bytes(path, "not wisdom", 10), 0);
    assert_int_equal(ew_em_fftw_wisdom_load(path, &loaded), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "wisdom.txt"));
}

static void test_bad_config(void **state)
{
    (void)state;
    ew_em_config_t c;
    ew_em_config_default(&c);
    c.dqe0 = 1.5;
    assert_int_equal(ew_em_config_check(&c), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "DQE"));
    ew_em_config_default(&c);
    c.pixel = -1;
    blob_t b;
    blob_make(&b, 10, 3.0, 1.0f, 8);
    ew_em_sim_t *sim = (ew_em_sim_t *)&c;
    assert_int_equal(ew_em_sim_create(&c, &b.s, 1, &sim), EW_ERR_ARG);
    assert_null(sim);
    blob_free(&b);
}


/* The written data set: STAR rows match the stack and the micrographs, and
 * the projection of the structure rotated by the matrix of the WRITTEN
 * angles at the WRITTEN coordinates reproduces the written projection. */
static void test_to_files(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 400, 12.0, 1.0f, 9);
    ew_em_config_t c;
    quiet_config(&c, 160, 1.2);
    c.mode = EW_EM_GENEM;
    c.n_micrographs = 2;
    c.specimen.count_mean = 5;
    ew_em_output_t o;
    ew_em_output_default(&o);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", ew_test_tmpfile("emsim"));
    o.outdir = dir;
    o.box = 48;
    o.png_max = 64;
    assert_ok(ew_em_simulate_to_files(&c, &b.s, 1, &o));
    char path[1024];
    /* previews: 160 px binned by 3 to 53 px */
    snprintf(path, sizeof path, "%s/previews/mic_000001_clean.png", dir);
    int pw, ph, pc;
    uint8_t *px;
    assert_ok(ew_png_read(path, &pw, &ph, &pc, &px));
    assert_int_equal(pw, 53);
    assert_int_equal(ph, 53);
    free(px);
    snprintf(path, sizeof path, "%s/particles.star", dir);
    ew_star_t st;
    assert_ok(ew_star_read(path, &st));
    ew_star_col_t cx, cy, cr, ct, cp, cm, ci, ca, cu;
    assert_ok(ew_star_column(&st, "particles", "rlnCoordinateX", &cx));
    assert_ok(ew_star_column(&st, "particles", "rlnCoordinateY", &cy));
    assert_ok(ew_star_column(&st, "particles", "rlnAngleRot", &cr));
    assert_ok(ew_star_column(&st, "particles", "rlnAngleTilt", &ct));
    assert_ok(ew_star_column(&st, "particles", "rlnAnglePsi", &cp));
    assert_ok(ew_star_column(&st, "particles", "rlnMicrographName", &cm));
    assert_ok(ew_star_column(&st, "particles", "rlnImageName", &ci));
    assert_ok(ew_star_column(&st, "optics", "rlnImageSize", &ca));
    assert_ok(ew_star_column(&st, "particles", "rlnDefocusU", &cu));
    size_t np = ew_star_rows(&cx);
    assert_true(np >= 6);
    long isz;
    assert_ok(ew_star_get_int(&ca, 0, &isz));
    assert_int_equal(isz, 48);
    snprintf(path, sizeof path, "%s/particles.mrcs", dir);
    ew_mrc_t stack, mic, proj;
    assert_ok(ew_mrc_read(path, &stack));
    assert_int_equal(stack.nz, (int)np);
    assert_close(stack.pixel_size[0], 1.2, 1e-5, 0);
    snprintf(path, sizeof path, "%s/micrographs/mic_000000.mrc", dir);
    assert_ok(ew_mrc_read(path, &mic));
    snprintf(path, sizeof path, "%s/micrographs/mic_000000_projection.mrc", dir);
    assert_ok(ew_mrc_read(path, &proj));
    assert_close(mic.pixel_size[0], 1.2, 1e-5, 0);
    /* the model's centre, as the simulator computes it */
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
    const ew_em_model_t *mod = ew_em_sim_model(sim, 0);
    double sigma = ew_electron_sigma(c.ctf.voltage_v);
    float *img = calloc(160 * 160, sizeof(float)), *xyz = malloc(sizeof(float) * 3 * b.s.n_atoms);
    float boxv[48 * 48];
    const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    int checked = 0;
    for (size_t r = 0; r < np; r++) {
        if (strcmp(ew_star_get_string(&cm, r), "micrographs/mic_000000.mrc") != 0) continue;
        double x, y, rot, tilt, psi, A[9];
        assert_ok(ew_star_get_double(&cx, r, &x));
        assert_ok(ew_star_get_double(&cy, r, &y));
        assert_ok(ew_star_get_double(&cr, r, &rot));
        assert_ok(ew_star_get_double(&ct, r, &tilt));
        assert_ok(ew_star_get_double(&cp, r, &psi));
        long idx;
        char sp[256];
        assert_ok(ew_star_split_image_name(ew_star_get_string(&ci, r), &idx, sp, sizeof sp));
        assert_int_equal(idx, (long)r + 1);
        /* the stack image is the micrograph's box */
        ew_em_extract_box(mic.data, 160, 160, x, y, 48, boxv);
        assert_memory_equal(boxv, stack.data + (size_t)r * 48 * 48, sizeof boxv);
        ew_euler_relion_to_mat(rot, tilt, psi, A);
        for (size_t i = 0; i < b.s.n_atoms; i++) {
            double v[3], w[3];
            for (int d = 0; d < 3; d++) v[d] = b.s.xyz[3 * i + d] - mod->centre[d];
            ew_mat_apply(A, v, w);
            for (int d = 0; d < 3; d++) xyz[3 * i + d] = (float)w[d];
        }
        ew_peng_atoms_t at;
        assert_ok(ew_peng_atoms_init(&at, xyz, b.s.z, b.s.b_factor, b.s.occupancy, b.s.n_atoms, 0.0, NULL));
        memset(img, 0, sizeof(float) * 160 * 160);
        ew_peng_project(&at, I, x, y, c.pixel, img, 160, 160);
        ew_peng_atoms_free(&at);
        double err = 0, mx = 0;
        int R = (int)(mod->radius / c.pixel) + 2;
        for (int yy = (int)y - R; yy <= (int)y + R; yy++)
            for (int xx = (int)x - R; xx <= (int)x + R; xx++) {
                if (xx < 0 || yy < 0 || xx >= 160 || yy >= 160) continue;
                double ref = proj.data[yy * 160 + xx];
                err = fmax(err, fabs(sigma * img[yy * 160 + xx] - ref));
                mx = fmax(mx, ref);
            }
        assert_true(err < 2e-3 * mx);
        checked++;
    }
    assert_true(checked >= 3);
    free(img);
    free(xyz);
    ew_em_sim_destroy(sim);
    ew_mrc_free(&stack);
    ew_mrc_free(&mic);
    ew_mrc_free(&proj);
    ew_star_free(&st);
    blob_free(&b);
}


/* Detector: the clean image's spectrum is the MTF (sinc(pi fx) sinc(pi fy))
 * times the motion-blur sinc(pi s.d) times the spectrum without them. */
static void test_detector_mtf(void **state)
{
    (void)state;
    blob_t b;
    blob_make(&b, 300, 10.0, 1.0f, 10);
    int n = 64;
    float *cl[3];
    for (int pass = 0; pass < 3; pass++) {
        ew_em_config_t c;
        quiet_config(&c, n, 1.0);
        c.specimen.count_mean = 3;
        c.mtf_analytic = pass >= 1;
        if (pass == 2) c.drift[0] = 2.5, c.drift[1] = -1.0;
        ew_em_sim_t *sim;
        assert_ok(ew_em_sim_create(&c, &b.s, 1, &sim));
        ew_em_micrograph_t m;
        assert_ok(ew_em_sim_run(sim, 0, &m));
        cl[pass] = malloc(sizeof(float) * n * n);
        memcpy(cl[pass], m.clean, sizeof(float) * n * n);
        ew_em_micrograph_free(&m);
        ew_em_sim_destroy(sim);
    }
    int nh = n / 2 + 1;
    double *in = fftw_malloc(sizeof(double) * n * n);
    fftw_complex *F[3];
    for (int k = 0; k < 3; k++) {
        F[k] = fftw_malloc(sizeof(fftw_complex) * n * nh);
        fftw_plan pl = fftw_plan_dft_r2c_2d(n, n, in, F[k], FFTW_ESTIMATE);
        for (int i = 0; i < n * n; i++) in[i] = cl[k][i];
        fftw_execute(pl);
        fftw_destroy_plan(pl);
    }
    int checked = 0;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < nh; ix++) {
            double fx = ix / (double)n, fy = (iy <= n / 2 ? iy : iy - n) / (double)n;
            double a0 = hypot(F[0][iy * nh + ix][0], F[0][iy * nh + ix][1]);
            if (a0 < 20.0 || ix == n / 2 || iy == n / 2) continue; /* Nyquist: the blur is not even there */
            double mtf = (fx ? sin(EW_PI * fx) / (EW_PI * fx) : 1) * (fy ? sin(EW_PI * fy) / (EW_PI * fy) : 1);
            double arg = EW_PI * (fx * 2.5 + fy * -1.0), blur = fabs(arg) > 1e-12 ? sin(arg) / arg : 1;
            for (int c2 = 0; c2 < 2; c2++) {
                assert_close(F[1][iy * nh + ix][c2], mtf * F[0][iy * nh + ix][c2], 0, 1e-3 * a0);
                assert_close(F[2][iy * nh + ix][c2], blur * mtf * F[0][iy * nh + ix][c2], 0, 1e-3 * a0);
            }
            checked++;
        }
    assert_true(checked > 100);
    for (int k = 0; k < 3; k++) {
        fftw_free(F[k]);
        free(cl[k]);
    }
    fftw_free(in);
    blob_free(&b);
}

/* ---- Thon rings: simulated vs real EMPIAR-10076 particles ---- */

enum { TBOX = 320, NBIN = TBOX / 2 };

/* Radially averaged power spectrum of square images (mean removed). */
static void radial_ps(const float *imgs, int count, int box, double *ps)
{
    int nh = box / 2 + 1;
    double *in = fftw_malloc(sizeof(double) * box * box);
    fftw_complex *F = fftw_malloc(sizeof(fftw_complex) * box * nh);
    fftw_plan pl = fftw_plan_dft_r2c_2d(box, box, in, F, FFTW_ESTIMATE);
    double cnt[NBIN] = {0};
    for (int b = 0; b < NBIN; b++) ps[b] = 0;
    for (int k = 0; k < count; k++) {
        const float *im = imgs + (size_t)k * box * box;
        double mean = 0;
        for (int i = 0; i < box * box; i++) mean += im[i];
        mean /= box * box;
        for (int i = 0; i < box * box; i++) in[i] = im[i] - mean;
        fftw_execute(pl);
        for (int iy = 0; iy < box; iy++)
            for (int ix = 0; ix < nh; ix++) {
                int ky = iy <= box / 2 ? iy : iy - box;
                int r = (int)lround(sqrt((double)ix * ix + (double)ky * ky));
                if (r >= NBIN) continue;
                double re = F[iy * nh + ix][0], im2 = F[iy * nh + ix][1];
                ps[r] += re * re + im2 * im2;
                cnt[r] += 1;
            }
    }
    for (int b = 0; b < NBIN; b++) ps[b] = cnt[b] > 0 ? ps[b] / cnt[b] : 0;
    fftw_destroy_plan(pl);
    fftw_free(in);
    fftw_free(F);
}

/* Local minima of log(ps) after removing a smooth background, between
 * bins lo and hi, refined by a parabola; returns their count. */
static int ps_minima(const double *ps, int lo, int hi, double *minima, int nmax)
{
    double l[NBIN], d[NBIN];
    for (int b = 0; b < NBIN; b++) l[b] = log(ps[b] > 0 ? ps[b] : 1e-30);
    for (int b = 0; b < NBIN; b++) {
        double acc = 0;
        int c = 0;
        for (int k = b - 6; k <= b + 6; k++)
            if (k >= 1 && k < NBIN) acc += l[k], c++;
        d[b] = l[b] - acc / c;
    }
    double sm[NBIN];
    for (int b = 1; b < NBIN - 1; b++) sm[b] = 0.25 * d[b - 1] + 0.5 * d[b] + 0.25 * d[b + 1];
    int n = 0;
    for (int b = lo; b < hi && n < nmax; b++)
        if (sm[b] < sm[b - 1] && sm[b] < sm[b + 1] && sm[b] < 0) {
            double den = sm[b - 1] - 2 * sm[b] + sm[b + 1];
            minima[n++] = b + (den > 0 ? 0.5 * (sm[b - 1] - sm[b + 1]) / den : 0);
        }
    return n;
}

static void test_thon_rings_empiar(void **state)
{
    (void)state;
    const char *mrc = ew_test_data("cryoem/empiar_10076_7.mrc");
    if (!mrc) skip();
    ew_mrc_t real;
    assert_ok(ew_mrc_read(mrc, &real));
    assert_int_equal(real.nx, TBOX);
    const char *starp = ew_test_data("cryoem/empiar_10076_7.star");
    if (!starp) skip();
    ew_star_t star;
    assert_ok(ew_star_read(starp, &star));
    ew_star_col_t cu, cv, ca, cmag, cdet;
    assert_ok(ew_star_column(&star, NULL, "rlnDefocusU", &cu));
    assert_ok(ew_star_column(&star, NULL, "rlnDefocusV", &cv));
    assert_ok(ew_star_column(&star, NULL, "rlnDefocusAngle", &ca));
    assert_ok(ew_star_column(&star, NULL, "rlnMagnification", &cmag));
    assert_ok(ew_star_column(&star, NULL, "rlnDetectorPixelSize", &cdet));
    double du = 0, dv = 0, ang = 0, mag, det;
    size_t nr = ew_star_rows(&cu);
    for (size_t r = 0; r < nr; r++) {
        double a, b2, c2;
        assert_ok(ew_star_get_double(&cu, r, &a));
        assert_ok(ew_star_get_double(&cv, r, &b2));
        assert_ok(ew_star_get_double(&ca, r, &c2));
        du += a / nr, dv += b2 / nr, ang += c2 / nr;
    }
    assert_ok(ew_star_get_double(&cmag, 0, &mag));
    assert_ok(ew_star_get_double(&cdet, 0, &det));
    double pixel = det * 1e4 / mag;
    ew_star_free(&star);

    double ps_real[NBIN], ps_sim[NBIN];
    radial_ps(real.data, real.nz, TBOX, ps_real);

    ew_structure_t st;
    const char *pdb = ew_test_data("pdb/2cex.pdb");
    if (!pdb) skip();
    assert_ok(ew_structure_read(pdb, NULL, &st));
    ew_em_config_t c;
    ew_em_config_default(&c);
    c.nx = c.ny = 3 * TBOX;
    c.fft_measure = 0;
    c.pixel = pixel;
    c.oversample = 1;
    c.defocus_min = c.defocus_max = 0.0;
    c.ctf.defocus_u = du;
    c.ctf.defocus_v = dv;
    c.ctf.astig_angle_deg = ang;
    c.specimen.count_mean = 30;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, &st, 1, &sim));
    ew_em_micrograph_t m;
    assert_ok(ew_em_sim_run(sim, 0, &m));
    float *tiles = malloc(sizeof(float) * 9 * TBOX * TBOX);
    for (int t = 0; t < 9; t++)
        for (int y = 0; y < TBOX; y++)
            for (int x = 0; x < TBOX; x++)
                tiles[(size_t)t * TBOX * TBOX + y * TBOX + x] =
                    m.micrograph[(size_t)((t / 3) * TBOX + y) * c.nx + (t % 3) * TBOX + x];
    radial_ps(tiles, 9, TBOX, ps_sim);

    /* compare minima between 1/30 A and 1/6 A */
    int lo = (int)(TBOX * pixel / 30.0), hi = (int)(TBOX * pixel / 6.0);
    double mr[32], ms[32];
    int nreal = ps_minima(ps_real, lo, hi, mr, 32), nsim = ps_minima(ps_sim, lo, hi, ms, 32);
    ew_ctf_params_t cp = c.ctf;
    cp.defocus_u = cp.defocus_v = 0.5 * (du + dv);
    printf("Thon-ring minima (1/A): pixel %.4f A, defocus %.0f/%.0f A at %.2f deg, 300 kV\n", pixel, du, dv, ang);
    printf("  k   real       simulated  analytic zero\n");
    int matched = 0, nk = nreal < 6 ? nreal : 6;
    for (int k = 0; k < nk; k++) {
        double sr = mr[k] / (TBOX * pixel), best = 1e9;
        for (int j = 0; j < nsim; j++) {
            double ss = ms[j] / (TBOX * pixel);
            if (fabs(ss - sr) < fabs(best - sr)) best = ss;
        }
        double za = 1e9;
        for (int z = 1; z < 40; z++) {
            double v = ew_ctf_zero(&cp, z, 0.0);
            if (v > 0 && fabs(v - sr) < fabs(za - sr)) za = v;
        }
        printf("  %d   %.5f    %.5f    %.5f\n", k + 1, sr, best, za);
        if (fabs(best - sr) < 0.03 * sr) matched++;
    }
    assert_true(nreal >= 4);
    assert_true(nsim >= 4);
    assert_true(matched >= nk - 1);
    free(tiles);
    ew_em_micrograph_free(&m);
    ew_em_sim_destroy(sim);
    ew_structure_free(&st);
    ew_mrc_free(&real);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weak_phase_linear), cmocka_unit_test(test_grating_in_focus_invisible),
        cmocka_unit_test(test_height_is_defocus), cmocka_unit_test(test_dose_poisson),
        cmocka_unit_test(test_coordinates_masks), cmocka_unit_test(test_clean_image_centre),
        cmocka_unit_test(test_pose_relion),
        cmocka_unit_test(test_deterministic),     cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_wisdom_files),      cmocka_unit_test(test_measure_plans),
        cmocka_unit_test(test_detector_mtf),      cmocka_unit_test(test_to_files),          cmocka_unit_test(test_thon_rings_empiar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
