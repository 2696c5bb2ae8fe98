/* Tests for Topaz TSV and EMAN .box coordinate files. */
#include "testutil.h"

#include "io/coords.h"

static void test_topaz(void **state)
{
    (void)state;
    const char *txt = "image_name\tx_coord\ty_coord\tscore\n"
                      "mic_001\t100\t250\t3.5\n"
                      "mic_001\t17.5\t4\t-1.25\n"
                      "\n"
                      "mic_002\t0\t0\t0\n";
    ew_coords_t c;
    assert_ok(ew_coords_parse_topaz(txt, strlen(txt), "t.txt", &c));
    assert_int_equal(c.n, 3);
    assert_string_equal(c.image[1], "mic_001");
    assert_close(c.x[1], 17.5, 0, 0);
    assert_close(c.y[0], 250, 0, 0);
    assert_close(c.score[1], -1.25, 0, 0);
    const char *p = ew_test_tmpfile("rt.txt");
    assert_ok(ew_coords_write_topaz(p, &c));
    ew_coords_t d;
    assert_ok(ew_coords_read_topaz(p, &d));
    assert_int_equal(d.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(d.image[i], c.image[i]);
        assert_close(d.x[i], c.x[i], 0, 0);
        assert_close(d.y[i], c.y[i], 0, 0);
        assert_close(d.score[i], c.score[i], 1e-6, 0);
    }
    ew_coords_free(&d);
    ew_coords_free(&c);
    ew_coords_free(NULL);
    /* columns in another order, blank-separated, no score */
    const char *t2 = "y_coord x_coord image_name\n5 6 a\n";
    assert_ok(ew_coords_parse_topaz(t2, strlen(t2), "t2.txt", &c));
    assert_int_equal(c.n, 1);
    assert_close(c.x[0], 6, 0, 0);
    assert_close(c.y[0], 5, 0, 0);
    assert_close(c.score[0], 0, 0, 0);
    ew_coords_free(&c);
}

static void test_box(void **state)
{
    (void)state;
    /* top-left corners; centre = corner + size / 2 */
    const char *txt = "10\t20\t64\t64\n# comment\n\n-5 7 64 64 -3\n";
    ew_coords_t c;
    assert_ok(ew_coords_parse_box(txt, strlen(txt), "b.box", &c));
    assert_int_equal(c.n, 2);
    assert_close(c.x[0], 42, 0, 0);
    assert_close(c.y[0], 52, 0, 0);
    assert_close(c.x[1], 27, 0, 0);
    assert_close(c.box[1], 64, 0, 0);
    assert_null(c.image[0]);
    const char *p = ew_test_tmpfile("rt.box");
    assert_ok(ew_coords_write_box(p, &c, 64));
    size_t n = 0;
    char *raw = (char *)ew_test_read_bytes(p, &n);
    assert_int_equal(strncmp(raw, "10\t20\t64\t64\n-5\t7\t64\t64\n", n), 0);
    free(raw);
    ew_coords_t d;
    assert_ok(ew_coords_read_box(p, &d));
    assert_int_equal(d.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_close(d.x[i], c.x[i], 0, 0);
        assert_close(d.y[i], c.y[i], 0, 0);
    }
    ew_coords_free(&d);
    /* Topaz centres -> .box corners -> centres again (odd box: corner rounds) */
    ew_coords_free(&c);
    ew_coords_init(&c);
    assert_ok(ew_coords_add(&c, "m", 100, 200, 1, 0));
    assert_ok(ew_coords_add(&c, "m", 0.4, 3, 1, 0));
    assert_ok(ew_coords_write_box(p, &c, 50));
    assert_ok(ew_coords_read_box(p, &d));
    assert_close(d.x[0], 100, 0, 0);
    assert_close(d.y[0], 200, 0, 0);
    assert_close(d.x[1], 0, 0, 0); /* 0.4 - 25 rounds to corner -25 */
    ew_coords_free(&d);
    assert_int_equal(ew_coords_write_box(p, &c, 0), EW_ERR_ARG);
    ew_coords_free(&c);
}

static void test_errors(void **state)
{
    (void)state;
    struct {
        int topaz;
        const char *txt, *msg;
    } bad[] = {
        {1, "image_name x_coord score\na 1 2\n", "y_coord"},
        {1, "image_name\tx_coord\ty_coord\tscore\nm 1 2\n", ":2:"},
        {1, "image_name\tx_coord\ty_coord\tscore\nm 1 zz 3\n", "zz"},
        {1, "", "empty"},
        {0, "1 2 3\n", "x y w h"},
        {0, "1 2 abc 4\n", "abc"},
        {0, "1 2 0 4\n", "not positive"},
        {0, "1 2 nan 4\n", "nan"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ew_coords_t c;
        ew_status_t st = bad[i].topaz ? ew_coords_parse_topaz(bad[i].txt, strlen(bad[i].txt), "bad.x", &c)
                                      : ew_coords_parse_box(bad[i].txt, strlen(bad[i].txt), "bad.x", &c);
        assert_int_equal(st, EW_ERR_FORMAT);
        if (!strstr(ew_error_message(), bad[i].msg) || !strstr(ew_error_message(), "bad.x"))
            fail_msg("case %zu: '%s' lacks '%s'", i, ew_error_message(), bad[i].msg);
        assert_int_equal(c.n, 0);
    }
    ew_coords_t c;
    ew_coords_init(&c);
    assert_ok(ew_coords_add(&c, NULL, 1, 2, 0, 0));
    assert_int_equal(ew_coords_write_topaz(ew_test_tmpfile("x.txt"), &c), EW_ERR_ARG);
    ew_coords_free(&c);
    assert_int_equal(ew_coords_read_box("/nonexistent/a.box", &c), EW_ERR_IO);
    /* truncations and bit flips never crash */
    const char *txt = "image_name\tx_coord\ty_coord\tscore\nmic_001\t100\t250\t3.5\nmic_002\t1\t2\t0.5\n";
    size_t n = strlen(txt);
    char buf[256];
    for (size_t k = 0; k < 300; k++) {
        memcpy(buf, txt, n);
        size_t len = k < 11 ? n * k / 10 : n;
        if (k >= 11) buf[(k * 31u) % n] ^= (char)(1u << (k % 8));
        ew_coords_t d;
        if (ew_coords_parse_topaz(buf, len, "flip.txt", &d) != EW_OK)
            assert_non_null(strstr(ew_error_message(), "flip.txt"));
        ew_coords_free(&d);
        if (ew_coords_parse_box(buf, len, "flip.box", &d) != EW_OK)
            assert_non_null(strstr(ew_error_message(), "flip.box"));
        ew_coords_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topaz),
        cmocka_unit_test(test_box),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
