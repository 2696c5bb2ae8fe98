/* Tests of recon/em_pick: non-maximum suppression on hand-made score maps,
 * Topaz's AUPRC on a hand-computed example, training a small picker on
 * simulated GenEM micrographs (held-out AUPRC), checkpoint round trip,
 * STAR and Topaz output. */
#include "testutil.h"
#include "test_blob.h"

#include "io/coords.h"
#include "io/star.h"
#include "physics/em_sim.h"
#include "recon/em_pick.h"

/* An asymmetric protein-like blob of n atoms. */
static void test_nms(void **state)
{
    (void)state;
    const int w = 40, h = 30;
    float *s = calloc((size_t)w * h, sizeof(float));
    /* two peaks 3 px apart (the lower is suppressed at r 4), one far away */
    s[10 * w + 10] = 5.0f;
    s[10 * w + 11] = 4.5f; /* shoulder of the first */
    s[10 * w + 13] = 4.0f;
    s[25 * w + 30] = 3.0f;
    ew_pick_t *p;
    size_t n;
    assert_ok(ew_pick_nms(s, w, h, 2, 4.0, 0.5, &p, &n));
    assert_int_equal(n, 2);
    assert_close(p[0].x, 10 * 2 + 0.5, 1e-12, 0);
    assert_close(p[0].y, 10 * 2 + 0.5, 1e-12, 0);
    assert_close(p[0].score, 5.0, 1e-6, 0);
    assert_close(p[1].x, 30 * 2 + 0.5, 1e-12, 0);
    ew_free(p);
    /* radius 2: the peak at distance 3 survives, the shoulder does not */
    assert_ok(ew_pick_nms(s, w, h, 1, 2.0, 0.5, &p, &n));
    assert_int_equal(n, 3);
    assert_close(p[1].x, 13, 1e-12, 0);
    ew_free(p);
    /* threshold above everything */
    assert_ok(ew_pick_nms(s, w, h, 1, 2.0, 10.0, &p, &n));
    assert_int_equal(n, 0);
    assert_null(p);
    free(s);
}

static void test_auprc_known(void **state)
{
    (void)state;
    /* micrograph 0: true (10,10), (50,50); micrograph 1: true (20,20) */
    double t0[] = {10, 10, 50, 50}, t1[] = {20, 20};
    ew_pick_mic_t mics[2] = {{NULL, 0, 0, t0, 2}, {NULL, 0, 0, t1, 1}};
    /* ranks: 0.9 hit (mic 0), 0.8 duplicate of the same particle (FP), 0.7 hit (mic 1), 0.6 far (FP) */
    ew_pick_t p0[] = {{11, 10, 0.9}, {10, 12, 0.8}, {90, 90, 0.6}};
    ew_pick_t p1[] = {{21, 19, 0.7}};
    const ew_pick_t *pp[2] = {p0, p1};
    size_t np[2] = {3, 1};
    double prec, rec;
    double ap = ew_pick_auprc(pp, np, mics, 2, 3.0, &prec, &rec);
    /* AP = (1/1 + 2/3) / 3 */
    assert_close(ap, (1.0 + 2.0 / 3.0) / 3.0, 1e-12, 0);
    assert_close(prec, 2.0 / 3.0, 1e-12, 0);
    assert_close(rec, 2.0 / 3.0, 1e-12, 0);
    /* a radius too small: nothing matches */
    assert_close(ew_pick_auprc(pp, np, mics, 2, 0.5, NULL, NULL), 0.0, 0, 1e-15);
    /* perfect picks */
    ew_pick_t q0[] = {{10, 10, 1}, {50, 50, 1}}, q1[] = {{20, 20, 1}};
    const ew_pick_t *qq[2] = {q0, q1};
    size_t nq[2] = {2, 1};
    assert_close(ew_pick_auprc(qq, nq, mics, 2, 1.0, NULL, NULL), 1.0, 1e-12, 0);
}

typedef struct {
    ew_em_micrograph_t m[8];
    double *xy[8];
    ew_pick_mic_t pm[8];
    int n;
} set_t;

static void make_set(set_t *S, const ew_structure_t *s, int n, uint64_t seed, double snr)
{
    ew_em_config_t c;
    ew_em_config_default(&c);
    c.nx = c.ny = 384;
    c.pixel = 2.0;
    c.mode = EW_EM_GENEM;
    c.snr = snr;
    c.seed = seed;
    c.specimen.count_mean = 40;
    c.specimen.min_gap = 4.0;
    c.defocus_min = 10000;
    c.defocus_max = 20000;
    c.fft_measure = 0;
    ew_em_sim_t *sim;
    assert_ok(ew_em_sim_create(&c, s, 1, &sim));
    S->n = n;
    for (int k = 0; k < n; k++) {
        assert_ok(ew_em_sim_run(sim, (size_t)k, &S->m[k]));
        S->xy[k] = malloc(sizeof(double) * 2 * (S->m[k].n_particles + 1));
        for (size_t p = 0; p < S->m[k].n_particles; p++) {
            S->xy[k][2 * p] = S->m[k].particles[p].x / c.pixel;
            S->xy[k][2 * p + 1] = S->m[k].particles[p].y / c.pixel;
        }
        S->pm[k] = (ew_pick_mic_t){S->m[k].micrograph, c.nx, c.ny, S->xy[k], S->m[k].n_particles};
    }
    ew_em_sim_destroy(sim);
}

static void free_set(set_t *S)
{
    for (int k = 0; k < S->n; k++) {
        ew_em_micrograph_free(&S->m[k]);
        free(S->xy[k]);
    }
}

static double eval_set(ew_picker_t *pk, set_t *S, double radius)
{
    ew_pick_t *p[8];
    size_t np[8];
    for (int k = 0; k < S->n; k++) assert_ok(ew_picker_pick(pk, S->pm[k].img, S->pm[k].nx, S->pm[k].ny, -6.0, &p[k], &np[k]));
    double ap = ew_pick_auprc((const ew_pick_t *const *)p, np, S->pm, (size_t)S->n, radius, NULL, NULL);
    for (int k = 0; k < S->n; k++) ew_free(p[k]);
    return ap;
}

static void test_train_pick(void **state)
{
    (void)state;
    ew_structure_t s;
    blob_make(&s, 300, 11.0, 5);
    set_t tr, te;
    make_set(&tr, &s, 4, 1, 0.1);
    make_set(&te, &s, 2, 2, 0.1);
    te.m[0].index = 0;
    ew_pick_config_t c;
    ew_pick_config_default(&c);
    c.bin = 2;
    c.width = 8;
    c.layers = 4;
    c.first_k = 5;
    c.patch = 48;
    c.batch = 4;
    c.steps = 150;
    c.nms_radius = 3;
    ew_picker_t *pk;
    assert_ok(ew_picker_create(&c, &pk));
    double ap0 = eval_set(pk, &te, 6.0);
    double loss;
    assert_ok(ew_picker_train(pk, tr.pm, (size_t)tr.n, &loss));
    double ap = eval_set(pk, &te, 6.0);
    printf("  held-out AUPRC (SNR 0.1): untrained %.3f, trained %.3f (final BCE %.3f)\n", ap0, ap, loss);
    /* (a random network already smooths: the untrained figure is not low) */
    assert_true(ap > 0.9);
    assert_true(ap >= ap0);
    assert_true(loss < 0.1);
    /* checkpoint round trip: identical scores */
    const char *path = ew_test_tmpfile("picker.safetensors");
    assert_ok(ew_picker_save(pk, path));
    ew_picker_t *pk2;
    c.seed = 99;
    assert_ok(ew_picker_create(&c, &pk2));
    assert_ok(ew_picker_load(pk2, path));
    float *s1, *s2;
    int bx, by;
    assert_ok(ew_picker_score(pk, te.pm[0].img, te.pm[0].nx, te.pm[0].ny, &s1, &bx, &by));
    assert_ok(ew_picker_score(pk2, te.pm[0].img, te.pm[0].nx, te.pm[0].ny, &s2, &bx, &by));
    assert_int_equal(bx, 192);
    assert_memory_equal(s1, s2, sizeof(float) * bx * by);
    /* outputs: STAR and Topaz TSV */
    ew_pick_t *p;
    size_t np;
    assert_ok(ew_pick_nms(s1, bx, by, c.bin, c.nms_radius, 0.0, &p, &np));
    assert_true(np > 0);
    const char *sp = ew_test_tmpfile("picks.star");
    assert_ok(ew_pick_write_star(sp, p, np));
    ew_star_t st;
    assert_ok(ew_star_read(sp, &st));
    ew_star_col_t col;
    assert_ok(ew_star_column(&st, NULL, "rlnCoordinateX", &col));
    assert_int_equal(ew_star_rows(&col), np);
    double x0;
    assert_ok(ew_star_get_double(&col, 0, &x0));
    assert_close(x0, p[0].x, 0, 0.01);
    ew_star_free(&st);
    ew_coords_t co;
    ew_coords_init(&co);
    assert_ok(ew_pick_to_coords(p, np, "mic_000000.mrc", &co));
    const char *tp = ew_test_tmpfile("picks.txt");
    assert_ok(ew_coords_write_topaz(tp, &co));
    ew_coords_t back;
    assert_ok(ew_coords_read_topaz(tp, &back));
    assert_int_equal(back.n, np);
    assert_close(back.score[0], p[0].score, 1e-4, 1e-4);
    ew_coords_free(&back);
    ew_coords_free(&co);
    ew_free(p);
    ew_free(s1);
    ew_free(s2);
    ew_picker_destroy(pk2);
    ew_picker_destroy(pk);
    free_set(&tr);
    free_set(&te);
    blob_free(&s);
}

static void test_bad_config(void **state)
{
    (void)state;
    ew_pick_config_t c;
    ew_pick_config_default(&c);
    ew_picker_t *pk;
    c.first_k = 4;
    assert_int_equal(ew_picker_create(&c, &pk), EW_ERR_ARG);
    assert_null(pk);
    ew_pick_config_default(&c);
    c.layers = 1;
    assert_int_equal(ew_picker_create(&c, &pk), EW_ERR_ARG);
    ew_pick_config_default(&c);
    assert_ok(ew_picker_create(&c, &pk));
    float img[64 * 64] = {0};
    ew_pick_mic_t m = {img, 64, 64, NULL, 0};
    assert_int_equal(ew_picker_train(pk, &m, 1, NULL), EW_ERR_ARG); /* 64 / 4 < patch 64 */
    ew_picker_destroy(pk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nms),
        cmocka_unit_test(test_auprc_known),
        cmocka_unit_test(test_train_pick),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
