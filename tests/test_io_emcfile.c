/* Tests for Dragonfly EMC photon and detector files (io/emcfile.h). */
#include "testutil.h"

#include "core/core.h"
#include "io/emcfile.h"

#define NPIX 37

/* Deterministic test frames: mostly 0, some 1, a few multi-photon pixels. */
static void make_frame(int d, int32_t *c)
{
    ew_rng_t r;
    ew_rng_init(&r, 1234, (uint64_t)d);
    for (int t = 0; t < NPIX; t++) c[t] = (int32_t)ew_rng_poisson(&r, 0.2 + 0.1 * (d % 5));
}

static void assert_photons_equal(const ew_emc_photons_t *a, const ew_emc_photons_t *b)
{
    assert_int_equal(a->num_pix, b->num_pix);
    assert_int_equal(a->num_frames, b->num_frames);
    float fa[NPIX], fb[NPIX];
    for (size_t d = 0; d < a->num_frames; d++) {
        ew_emc_photons_to_dense(a, d, fa);
        ew_emc_photons_to_dense(b, d, fb);
        assert_memory_equal(fa, fb, sizeof fa);
    }
}

/* Build a sparse file by hand, byte by byte, as Dragonfly's writeemc.py does. */
static unsigned char *hand_file(size_t *len)
{
    /* frame 0: [0 1 0 3 1 0 0 0], frame 1: [2 0 0 0 0 0 0 1], frame 2: empty */
    int32_t words[256 + 3 + 3 + 3 + 2 + 2] = {0};
    words[0] = 3;
    words[1] = 8;
    words[2] = 0;
    int32_t *w = words + 256;
    int32_t body[] = {2, 1, 0, /* ones */ 1, 1, 0, /* multi */ 1, 4, 7, /* place_ones */ 3, 0, /* place_multi */
                      3, 2 /* count_multi */};
    memcpy(w, body, sizeof body);
    *len = sizeof words;
    unsigned char *b = malloc(*len);
    memcpy(b, words, *len);
    return b;
}

static void test_hand_layout(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *b = hand_file(&len);
    ew_emc_photons_t p;
    assert_ok(ew_emc_photons_parse(b, len, "hand.emc", &p));
    assert_int_equal(p.num_frames, 3);
    assert_int_equal(p.num_pix, 8);
    float f[8];
    float want0[8] = {0, 1, 0, 3, 1, 0, 0, 0}, want1[8] = {2, 0, 0, 0, 0, 0, 0, 1}, want2[8] = {0};
    ew_emc_photons_to_dense(&p, 0, f);
    assert_memory_equal(f, want0, sizeof f);
    ew_emc_photons_to_dense(&p, 1, f);
    assert_memory_equal(f, want1, sizeof f);
    ew_emc_photons_to_dense(&p, 2, f);
    assert_memory_equal(f, want2, sizeof f);
    assert_int_equal(ew_emc_photons_frame_total(&p, 0), 5);
    assert_int_equal(ew_emc_photons_frame_total(&p, 1), 3);

    /* our writer reproduces the hand-made bytes exactly */
    const char *path = ew_test_tmpfile("hand.emc");
    assert_ok(ew_emc_photons_write(path, &p));
    size_t n2;
    unsigned char *b2 = ew_test_read_bytes(path, &n2);
    assert_non_null(b2);
    assert_int_equal(n2, len);
    assert_memory_equal(b, b2, len);
    free(b2);
    ew_emc_photons_free(&p);
    free(b);
}

static void test_roundtrip_and_stream(void **state)
{
    (void)state;
    const int nf = 50;
    ew_emc_photons_t p, q;
    assert_ok(ew_emc_photons_init(&p, NPIX));
    const char *spath = "stream.emc";
    char stream_path[512];
    snprintf(stream_path, sizeof stream_path, "%s", ew_test_tmpfile(spath));
    ew_emc_writer_t *w;
    assert_ok(ew_emc_writer_open(stream_path, NPIX, &w));
    int32_t c[NPIX];
    float fl[NPIX];
    for (int d = 0; d < nf; d++) {
        make_frame(d, c);
        if (d % 2) {
            assert_ok(ew_emc_photons_add_counts(&p, c));
            assert_ok(ew_emc_writer_add_counts(w, c));
        } else {
            for (int t = 0; t < NPIX; t++) fl[t] = (float)c[t] + 0.3f * ((t % 3) - 1); /* rounds back */
            assert_ok(ew_emc_photons_add_frame(&p, fl));
            assert_ok(ew_emc_writer_add_frame(w, fl));
        }
    }
    assert_int_equal(ew_emc_writer_count(w), nf);
    assert_ok(ew_emc_writer_close(w));
    for (int d = 0; d < nf; d++) {
        make_frame(d, c);
        ew_emc_photons_to_dense(&p, (size_t)d, fl);
        for (int t = 0; t < NPIX; t++) assert_true(fl[t] == (float)c[t]);
    }
    const char *path = ew_test_tmpfile("rt.emc");
    assert_ok(ew_emc_photons_write(path, &p));
    assert_ok(ew_emc_photons_read(path, &q));
    assert_photons_equal(&p, &q);
    ew_emc_photons_free(&q);

    /* the streaming writer's file is byte-identical to the in-memory one */
    size_t n1 = 0, n2 = 0;
    unsigned char *b1 = ew_test_read_bytes(path, &n1);
    unsigned char *b2 = ew_test_read_bytes(stream_path, &n2);
    assert_non_null(b1);
    assert_non_null(b2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    /* parse from memory equals read from disk */
    assert_ok(ew_emc_photons_parse(b1, n1, "mem", &q));
    assert_photons_equal(&p, &q);
    ew_emc_photons_free(&q);
    free(b1);
    free(b2);
    /* no temporaries left behind */
    char tmpn[600];
    snprintf(tmpn, sizeof tmpn, "%s.tmp.%ld.po", stream_path, (long)getpid());
    assert_int_not_equal(access(tmpn, F_OK), 0);
    ew_emc_photons_free(&p);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ew_emc_photons_t p;
    assert_int_equal(ew_emc_photons_init(&p, 0), EW_ERR_ARG);
    assert_ok(ew_emc_photons_init(&p, 4));
    int32_t neg[4] = {0, 1, -1, 0};
    assert_int_equal(ew_emc_photons_add_counts(&p, neg), EW_ERR_ARG);
    float nan4[4] = {0, NAN, 0, 0}, negf[4] = {0, 0, -3, 0};
    assert_int_equal(ew_emc_photons_add_frame(&p, nan4), EW_ERR_ARG);
    assert_int_equal(ew_emc_photons_add_frame(&p, negf), EW_ERR_ARG);
    assert_int_equal(p.num_frames, 0);
    ew_emc_photons_free(&p);
    ew_emc_writer_t *w;
    assert_int_equal(ew_emc_writer_open(ew_test_tmpfile("x.emc"), -2, &w), EW_ERR_ARG);
    assert_null(w);
    /* abort leaves nothing */
    assert_ok(ew_emc_writer_open(ew_test_tmpfile("ab.emc"), 4, &w));
    int32_t ok4[4] = {1, 0, 2, 0};
    assert_ok(ew_emc_writer_add_counts(w, ok4));
    ew_emc_writer_abort(w);
    assert_int_not_equal(access(ew_test_tmpfile("ab.emc"), F_OK), 0);
    assert_int_equal(ew_emc_photons_read(ew_test_tmpfile("does-not-exist.emc"), &p), EW_ERR_IO);
}

static void test_dense_types(void **state)
{
    (void)state;
    /* type 1: 2 frames x 3 pixels of int32; type 2: the same in float64 */
    int32_t h1[256 + 6] = {0};
    h1[0] = 2;
    h1[1] = 3;
    h1[2] = 1;
    int32_t v[6] = {0, 2, 1, 5, 0, 0};
    memcpy(h1 + 256, v, sizeof v);
    ew_emc_photons_t p;
    assert_ok(ew_emc_photons_parse(h1, sizeof h1, "dense1", &p));
    float f[3];
    ew_emc_photons_to_dense(&p, 1, f);
    assert_true(f[0] == 5 && f[1] == 0 && f[2] == 0);
    ew_emc_photons_free(&p);

    unsigned char b2[1024 + 48] = {0};
    int32_t hd[3] = {2, 3, 2};
    memcpy(b2, hd, sizeof hd);
    double dv[6] = {0, 2, 1, 5, 0, 0};
    memcpy(b2 + 1024, dv, sizeof dv);
    assert_ok(ew_emc_photons_parse(b2, sizeof b2, "dense2", &p));
    ew_emc_photons_to_dense(&p, 0, f);
    assert_true(f[0] == 0 && f[1] == 2 && f[2] == 1);
    ew_emc_photons_free(&p);
    dv[4] = 0.5; /* not a count */
    memcpy(b2 + 1024, dv, sizeof dv);
    assert_int_equal(ew_emc_photons_parse(b2, sizeof b2, "dense2", &p), EW_ERR_FORMAT);
    assert_null(p.ones_off);
    v[3] = -1;
    memcpy(h1 + 256, v, sizeof v);
    assert_int_equal(ew_emc_photons_parse(h1, sizeof h1, "dense1", &p), EW_ERR_FORMAT);
}

static void test_lying_headers(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *b = hand_file(&len);
    ew_emc_photons_t p;
    int32_t *h = (int32_t *)b;
    h[0] = 1000000000; /* num_data far beyond the file */
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "lie.emc"));
    assert_non_null(strstr(ew_error_message(), "num_data"));
    h[0] = 3;
    h[1] = 0;
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "num_pix"));
    h[1] = 4; /* place_ones 4 and 7 now out of range */
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "place_ones"));
    h[1] = 8;
    h[2] = 7;
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    h[2] = 0;
    h[256] = -1; /* ones[0] negative */
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    h[256] = 2;
    h[256 + 7] = 1; /* place_ones of frame 0 = {1, 1}: duplicate pixel */
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "twice"));
    h[256 + 7] = 4;
    h[256 + 8] = 2; /* place_ones of frame 1 = {2}... frame 0 = {1, 4}, frame 1 = {2}: fine */
    assert_ok(ew_emc_photons_parse(b, len, "lie.emc", &p));
    ew_emc_photons_free(&p);
    h[256 + 8] = 7;
    h[256 + 6] = 5; h[256 + 7] = 4; /* frame 0 place_ones {5, 4}: not increasing */
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    h[256 + 6] = 1;
    h[256 + 9] = 1; /* place_multi of frame 0 = pixel 1, also in place_ones */
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    h[256 + 9] = 3;
    h[256 + 11] = 0; /* count_multi 0 */
    assert_int_equal(ew_emc_photons_parse(b, len, "lie.emc", &p), EW_ERR_FORMAT);
    h[256 + 11] = 3;
    assert_ok(ew_emc_photons_parse(b, len, "lie.emc", &p));
    ew_emc_photons_free(&p);
    free(b);
}

/* Every truncation fails; every single-bit flip either fails with a format
 * error or gives a consistent structure (ASan checks the rest). */
static void test_truncated_and_flipped_photons(void **state)
{
    (void)state;
    ew_emc_photons_t p;
    assert_ok(ew_emc_photons_init(&p, NPIX));
    int32_t c[NPIX];
    for (int d = 0; d < 6; d++) {
        make_frame(d, c);
        assert_ok(ew_emc_photons_add_counts(&p, c));
    }
    const char *path = ew_test_tmpfile("tf.emc");
    assert_ok(ew_emc_photons_write(path, &p));
    size_t len = 0;
    unsigned char *b = ew_test_read_bytes(path, &len);
    assert_non_null(b);
    ew_emc_photons_t q;
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(ew_emc_photons_parse(b, n, "trunc.emc", &q), EW_ERR_FORMAT);
        assert_null(q.ones_off);
    }
    /* a truncated file on disk, too */
    const char *tpath = ew_test_tmpfile("trunc.emc");
    assert_int_equal(ew_test_write_bytes(tpath, b, len - 4), 0);
    assert_int_equal(ew_emc_photons_read(tpath, &q), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "trunc.emc"));

    int failed = 0, passed = 0;
    for (size_t i = 0; i < len; i++) {
        /* header words past [2] are unused, flipping them changes nothing */
        if (i >= 12 && i < 1024 && i % 97 != 0) continue;
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            ew_status_t st = ew_emc_photons_parse(b, len, "flip.emc", &q);
            assert_true(st == EW_OK || st == EW_ERR_FORMAT);
            if (st == EW_OK) {
                passed++;
                for (size_t d = 0; d < q.num_frames; d++) assert_true(ew_emc_photons_frame_total(&q, d) >= 0);
                ew_emc_photons_free(&q);
            } else {
                failed++;
            }
            /* flips in the per-frame ones/multi counts always break the size check */
            if (i >= 1024 && i < 1024 + 8 * 6) assert_int_equal(st, EW_ERR_FORMAT);
            b[i] ^= (unsigned char)(1u << bit);
        }
    }
    assert_true(failed > 0);
    assert_true(passed > 0); /* e.g. a pixel index flipped to another valid pixel */
    free(b);
    ew_emc_photons_free(&p);
}

/* ------------------------------------------------------------- detector */

/* Dragonfly's own formula (utils/py_src/detector.py calc_from_coords):
 *   q = (cx, cy, detd - |r|... ) scaled by ewald_rad / |r|. */
static void dragonfly_q(double cx, double cy, double detd, double erad, double q[3])
{
    double fac = sqrt(cx * cx + cy * cy + detd * detd);
    q[0] = cx * erad / fac;
    q[1] = cy * erad / fac;
    q[2] = erad * (detd / fac - 1.0);
}

static void test_detector_text_and_units(void **state)
{
    (void)state;
    const char *txt =
        "3 500.0 250.0\n"
        "0.000000000000000e+00 0.000000000000000e+00 0.000000000000000e+00 1.0 2\n"
        "  1.5 -2.25e0 -0.125 0.9 0\n"
        "4 5 6 0.5 1";
    ew_emc_detector_t det;
    assert_ok(ew_emc_detector_parse(txt, strlen(txt), "t.dat", &det));
    assert_int_equal(det.num_pix, 3);
    assert_close(det.detd, 500.0, 0, 0);
    assert_close(det.ewald_rad, 250.0, 0, 0);
    assert_close(det.q[3], 1.5, 0, 0);
    assert_close(det.q[4], -2.25, 0, 0);
    assert_close(det.corr[1], 0.9, 0, 0);
    assert_int_equal(det.mask[0], 2);
    assert_int_equal(det.mask[2], 1);
    ew_emc_detector_free(&det);

    /* old 1-field and 2-field headers */
    const char *old = "1\n0.1 0.2 0.3 1 0\n";
    assert_ok(ew_emc_detector_parse(old, strlen(old), "old.dat", &det));
    assert_close(det.ewald_rad, 0.0, 0, 0);
    float s3[3];
    assert_int_equal(ew_emc_detector_to_s(&det, 1.0, s3), EW_ERR_ARG);
    ew_emc_detector_free(&det);
    const char *old2 = "1 123.5\n0.1 0.2 0.3 1 0\n";
    assert_ok(ew_emc_detector_parse(old2, strlen(old2), "old2.dat", &det));
    assert_close(det.detd, 123.5, 0, 0);
    ew_emc_detector_free(&det);

    /* unit conversion against the analytic Ewald sphere: a pixel at (cx, cy)
     * pixels, distance D pixels, wavelength lambda, voxel ds gives
     * s = (cx/r, cy/r, D/r - 1) / lambda, whatever ds is. */
    const double lambda = 2.5, ds = 0.004, detd = 300.0, erad = 1.0 / (lambda * ds);
    assert_ok(ew_emc_detector_alloc(&det, 2));
    det.detd = detd;
    det.ewald_rad = erad;
    double cxy[2][2] = {{12.0, -40.0}, {-150.0, 7.5}};
    for (int t = 0; t < 2; t++) dragonfly_q(cxy[t][0], cxy[t][1], detd, erad, det.q + 3 * t);
    float s[6];
    assert_ok(ew_emc_detector_to_s(&det, lambda, s));
    for (int t = 0; t < 2; t++) {
        double r = sqrt(cxy[t][0] * cxy[t][0] + cxy[t][1] * cxy[t][1] + detd * detd);
        assert_close(s[3 * t + 0], cxy[t][0] / r / lambda, 1e-6, 1e-9);
        assert_close(s[3 * t + 1], cxy[t][1] / r / lambda, 1e-6, 1e-9);
        assert_close(s[3 * t + 2], (detd / r - 1.0) / lambda, 1e-5, 1e-9);
        /* |s| = 2 sin(theta) / lambda, the Bragg condition */
        double th = 0.5 * acos(detd / r);
        double sn = sqrt((double)s[3 * t] * s[3 * t] + (double)s[3 * t + 1] * s[3 * t + 1] +
                         (double)s[3 * t + 2] * s[3 * t + 2]);
        assert_close(sn, 2 * sin(th) / lambda, 1e-5, 1e-9);
    }
    /* from_s inverts to_s */
    ew_emc_detector_t d2;
    uint8_t m2[2] = {0, 2};
    float corr[2] = {0.5f, 0.25f};
    assert_ok(ew_emc_detector_from_s(s, m2, corr, 2, lambda, detd, ds, &d2));
    assert_close(d2.ewald_rad, erad, 1e-12, 0);
    for (int i = 0; i < 6; i++) assert_close(d2.q[i], det.q[i], 1e-5, 1e-6);
    assert_int_equal(d2.mask[1], 2);
    assert_close(d2.corr[1], 0.25, 0, 0);
    ew_emc_detector_free(&d2);
    assert_int_equal(ew_emc_detector_from_s(s, NULL, NULL, 2, lambda, detd, 0.0, &d2), EW_ERR_ARG);
    ew_emc_detector_free(&d2);
    ew_emc_detector_free(&det);
}

static void test_detector_roundtrip(void **state)
{
    (void)state;
    ew_emc_detector_t det, back;
    assert_ok(ew_emc_detector_alloc(&det, 64));
    det.detd = 123.456789012345;
    det.ewald_rad = 987.654321;
    for (int t = 0; t < 64; t++) {
        dragonfly_q(t % 8 - 3.5, t / 8 - 3.5, det.detd, det.ewald_rad, det.q + 3 * t);
        det.corr[t] = 1.0 / (1.0 + t);
        det.mask[t] = (uint8_t)(t % 3);
    }
    const char *path = ew_test_tmpfile("det.dat");
    assert_ok(ew_emc_detector_write(path, &det));
    assert_ok(ew_emc_detector_read(path, &back));
    assert_int_equal(back.num_pix, 64);
    assert_true(back.detd == det.detd && back.ewald_rad == det.ewald_rad);
    assert_memory_equal(back.q, det.q, 64 * 3 * sizeof(double)); /* 17 digits: exact */
    assert_memory_equal(back.corr, det.corr, 64 * sizeof(double));
    assert_memory_equal(back.mask, det.mask, 64);
    ew_emc_detector_free(&back);

    /* malformed variants */
    const char *bad[] = {"", "x\n", "-3 1 1\n", "2 1 1\n0 0 0 1 0\n", "1 1 1\n0 0 0 1 3\n", "1 1 1\n0 0 nan 1 0\n",
                         "1 1 1\n0 0 0 1 0\n5\n", "1 1 1 1\n0 0 0 1 0\n", "99999999 1 1\n0 0 0 1 0\n",
                         "1 -1 1\n0 0 0 1 0\n", "1 1 1\n0 0 0 1 0x\n", "1 1 1\n0 0 0 1 1e3\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(ew_emc_detector_parse(bad[i], strlen(bad[i]), "bad.dat", &back), EW_ERR_FORMAT);
        assert_null(back.q);
        assert_non_null(strstr(ew_error_message(), "bad.dat"));
    }

    /* truncations that cut into the last row's mask or earlier all fail */
    det.num_pix = 6; /* a shorter file for the exhaustive loops */
    assert_ok(ew_emc_detector_write(path, &det));
    det.num_pix = 64;
    size_t len = 0;
    unsigned char *b = ew_test_read_bytes(path, &len);
    assert_non_null(b);
    size_t last_mask = len - 2; /* "...<mask>\n" */
    for (size_t n = 0; n <= last_mask; n++)
        assert_int_equal(ew_emc_detector_parse(b, n, "trunc.dat", &back), EW_ERR_FORMAT);
    /* single-bit flips: clean failure or a valid detector */
    int failed = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            ew_status_t st = ew_emc_detector_parse(b, len, "flip.dat", &back);
            assert_true(st == EW_OK || st == EW_ERR_FORMAT);
            if (st == EW_OK) {
                for (int t = 0; t < back.num_pix; t++) assert_true(back.mask[t] <= 2 && isfinite(back.corr[t]));
                ew_emc_detector_free(&back);
            } else {
                failed++;
            }
            b[i] ^= (unsigned char)(1u << bit);
        }
    }
    assert_true(failed > 0);
    free(b);
    ew_emc_detector_free(&det);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_layout),
        cmocka_unit_test(test_roundtrip_and_stream),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_dense_types),
        cmocka_unit_test(test_lying_headers),
        cmocka_unit_test(test_truncated_and_flipped_photons),
        cmocka_unit_test(test_detector_text_and_units),
        cmocka_unit_test(test_detector_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
