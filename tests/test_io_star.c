/* Tests for the STAR reader/writer and the RELION particle writer. */
#include "testutil.h"

#include "io/star.h"

static double get_d(const ew_star_t *s, const char *block, const char *col, size_t row)
{
    ew_star_col_t c;
    assert_ok(ew_star_column(s, block, col, &c));
    double v = NAN;
    assert_ok(ew_star_get_double(&c, row, &v));
    return v;
}

static const char *get_s(const ew_star_t *s, const char *block, const char *col, size_t row)
{
    ew_star_col_t c;
    assert_ok(ew_star_column(s, block, col, &c));
    return ew_star_get_string(&c, row);
}

/* Values read off the files with a text editor. */
static void test_relion30(void **state)
{
    (void)state;
    const char *p = ew_test_data("cryoem/empiar_10076_7.star");
    if (!p) skip();
    ew_star_t s;
    assert_ok(ew_star_read(p, &s));
    assert_int_equal(s.n_blocks, 1);
    assert_string_equal(s.blocks[0].name, "");
    assert_int_equal(s.blocks[0].n_tables, 1);
    assert_int_equal(s.blocks[0].tables[0].n_cols, 10);
    assert_int_equal(s.blocks[0].tables[0].n_rows, 7);
    ew_star_col_t c;
    assert_ok(ew_star_column(&s, NULL, "rlnDefocusU", &c));
    assert_int_equal(ew_star_rows(&c), 7);
    assert_close(get_d(&s, NULL, "rlnDefocusU", 0), 15301.1, 0, 1e-9);
    assert_close(get_d(&s, NULL, "_rlnDefocusV", 6), 14792.7, 0, 1e-9);
    assert_close(get_d(&s, "", "rlnVoltage", 3), 300, 0, 0);
    /* pixel size = detector pixel (um) * 1e4 / magnification = 1.31 A */
    double px = get_d(&s, NULL, "rlnDetectorPixelSize", 0) * 1e4 / get_d(&s, NULL, "rlnMagnification", 0);
    assert_close(px, 1.31, 1e-3, 0);
    long k;
    char path[256];
    assert_ok(ew_star_split_image_name(get_s(&s, NULL, "rlnImageName", 2), &k, path, sizeof path));
    assert_int_equal(k, 3);
    assert_string_equal(path, "empiar_10076_7.mrc");
    long mic;
    assert_ok(ew_star_column(&s, NULL, "rlnMicrographName", &c));
    assert_ok(ew_star_get_int(&c, 4, &mic));
    assert_int_equal(mic, 5);
    char desc[256];
    ew_star_describe(&s, desc, sizeof desc);
    assert_string_equal(desc, "data_: loop, 10 columns, 7 rows\n");
    ew_star_free(&s);
}

static void check_relion31(const char *file)
{
    const char *p = ew_test_data(file);
    if (!p) return;
    ew_star_t s;
    assert_ok(ew_star_read(p, &s));
    assert_int_equal(s.n_blocks, 2);
    assert_non_null(ew_star_find_block(&s, "optics"));
    assert_non_null(ew_star_find_block(&s, "data_particles"));
    assert_null(ew_star_find_block(&s, "model"));
    assert_close(get_d(&s, "optics", "rlnImagePixelSize", 0), 2.806, 0, 1e-12);
    assert_close(get_d(&s, "optics", "rlnVoltage", 0), 300, 0, 0);
    assert_close(get_d(&s, "optics", "rlnSphericalAberration", 0), 0.01, 0, 1e-12);
    assert_close(get_d(&s, "optics", "rlnAmplitudeContrast", 0), 0.1, 0, 1e-12);
    ew_star_col_t c;
    long n;
    assert_ok(ew_star_column(&s, "optics", "rlnImageSize", &c));
    assert_ok(ew_star_get_int(&c, 0, &n));
    assert_int_equal(n, 256);
    assert_ok(ew_star_column(&s, "particles", "rlnDefocusU", &c));
    assert_int_equal(ew_star_rows(&c), 5);
    assert_close(get_d(&s, "particles", "rlnDefocusU", 0), 13108.082418, 0, 1e-9);
    assert_close(get_d(&s, "particles", "rlnDefocusAngle", 0), -160.39, 0, 1e-9);
    assert_close(get_d(&s, "particles", "rlnAngleRot", 0), -102.30296, 0, 1e-9);
    assert_close(get_d(&s, "particles", "rlnCoordinateX", 0), 3277, 0, 0);
    assert_string_equal(get_s(&s, "particles", "rlnImageName", 0), "000001@relion31.mrcs");
    long k;
    char path[64];
    assert_ok(ew_star_split_image_name(get_s(&s, "particles", "rlnImageName", 4), &k, path, sizeof path));
    assert_int_equal(k, 5);
    assert_string_equal(path, "relion31.mrcs");
    /* the optics group column exists in both blocks: a block-less lookup finds a loop that has it */
    assert_true(ew_star_has_column(&s, NULL, "rlnOpticsGroup"));
    assert_false(ew_star_has_column(&s, "optics", "rlnDefocusU"));
    /* errors name file, block, column and row */
    assert_int_equal(ew_star_column(&s, "particles", "rlnNoSuchThing", &c), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "rlnNoSuchThing"));
    assert_non_null(strstr(ew_error_message(), "data_particles"));
    assert_non_null(strstr(ew_error_message(), p));
    assert_int_equal(ew_star_column(&s, "nosuchblock", "rlnVoltage", &c), EW_ERR_FORMAT);
    assert_ok(ew_star_column(&s, "particles", "rlnMicrographName", &c));
    double v;
    assert_int_equal(ew_star_get_double(&c, 1, &v), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "row 2"));
    assert_non_null(strstr(ew_error_message(), "rlnMicrographName"));
    assert_int_equal(ew_star_get_double(&c, 5, &v), EW_ERR_RANGE);
    ew_star_free(&s);
}

static void test_relion31(void **state)
{
    (void)state;
    if (!ew_test_data("cryoem/relion31.star") && !ew_test_data("cryoem/relion31.v2.star")) skip();
    check_relion31("cryoem/relion31.star");
    check_relion31("cryoem/relion31.v2.star"); /* blocks in the other order */
}

static const char *k_star =
    "# a comment\n"
    "data_general\n"
    "_rlnFinalResolution   3.5 # trailing comment\n"
    "_rlnName 'two words'\n"
    "\n"
    "data_model\n"
    "loop_\n"
    "_a #1\n_b #2\n_c #3\n"
    "1 \"x y\" 3\n"
    "4 five\n6\n"            /* a row split across lines */
    "loop_\n"
    "_d\n"
    "7\n8\n"
    "data_empty\n"
    "data_emptyloop\n"
    "loop_\n_z\n";

static void test_synthetic(void **state)
{
    (void)state;
    ew_star_t s;
    assert_ok(ew_star_parse(k_star, strlen(k_star), "syn.star", &s));
    assert_int_equal(s.n_blocks, 4);
    const ew_star_block_t *g = ew_star_find_block(&s, "general");
    assert_non_null(g);
    assert_int_equal(g->n_tables, 1);
    assert_int_equal(g->tables[0].is_loop, 0);
    assert_close(get_d(&s, "general", "rlnFinalResolution", 0), 3.5, 0, 0);
    assert_string_equal(get_s(&s, "general", "rlnName", 0), "two words");
    assert_string_equal(get_s(&s, "model", "b", 0), "x y");
    assert_string_equal(get_s(&s, "model", "c", 1), "6");
    assert_close(get_d(&s, "model", "d", 1), 8, 0, 0);
    assert_int_equal(ew_star_find_block(&s, "model")->n_tables, 2);
    assert_int_equal(ew_star_find_block(&s, "emptyloop")->tables[0].n_rows, 0);
    ew_star_col_t c;
    long iv;
    assert_ok(ew_star_column(&s, "model", "b", &c));
    assert_int_equal(ew_star_get_int(&c, 1, &iv), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), "'five'"));
    char desc[512];
    ew_star_describe(&s, desc, sizeof desc);
    assert_non_null(strstr(desc, "data_general: key-value pairs, 2 columns, 1 row\n"));
    assert_non_null(strstr(desc, "data_empty: empty\n"));
    ew_star_free(&s);
    ew_star_free(NULL);
}

static void test_roundtrip(void **state)
{
    (void)state;
    ew_star_t s;
    ew_star_init(&s, "built");
    size_t b0, b1, t0;
    assert_ok(ew_star_add_block(&s, "general", &b0));
    assert_ok(ew_star_add_pair(&s, b0, "rlnKey", "value with spaces"));
    assert_ok(ew_star_add_pair(&s, b0, "rlnEmpty", ""));
    assert_ok(ew_star_add_block(&s, "things", &b1));
    const char *cols[] = {"rlnA", "rlnB", "rlnC"};
    assert_ok(ew_star_add_loop(&s, b1, 3, cols, &t0));
    const char *rows[][3] = {{"1", "_under", "it's"},   {"2.5e-3", "data_x", "say \"hi\" now"},
                             {"-3", "#hash", "loop_"},  {"x", "'", "plain"}};
    for (int r = 0; r < 4; r++) assert_ok(ew_star_add_row(&s, b1, t0, rows[r]));
    const char *p = ew_test_tmpfile("rt.star");
    assert_ok(ew_star_write(p, &s));
    ew_star_t t;
    assert_ok(ew_star_read(p, &t));
    assert_int_equal(t.n_blocks, 2);
    assert_string_equal(get_s(&t, "general", "rlnKey", 0), "value with spaces");
    assert_string_equal(get_s(&t, "general", "rlnEmpty", 0), "");
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++) assert_string_equal(get_s(&t, "things", cols[k], (size_t)r), rows[r][k]);
    ew_star_free(&t);
    /* a value with a line break cannot be written: no file */
    const char *bad[] = {"a", "b\nc", "d"};
    assert_ok(ew_star_add_row(&s, b1, t0, bad));
    const char *q = ew_test_tmpfile("bad.star");
    assert_int_equal(ew_star_write(q, &s), EW_ERR_ARG);
    assert_int_equal(access(q, F_OK), -1);
    ew_star_free(&s);
}

static void test_particles(void **state)
{
    (void)state;
    ew_star_optics_t o = {300.0, 2.7, 0.07, 1.31, 128};
    ew_star_particle_t p[3];
    for (int i = 0; i < 3; i++)
        p[i] = (ew_star_particle_t){.x = 100.5 + i, .y = 200 - i, .rot = -170 + 10 * i, .tilt = 90.25,
                                    .psi = 45, .origin_x = 1.5, .origin_y = -2.25,
                                    .defocus_u = 15000 + i, .defocus_v = 14500, .defocus_angle = 30,
                                    .micrograph = "mic 1.mrc", .stack = "particles.mrcs", .index = i + 1};
    const char *path = ew_test_tmpfile("particles.star");
    assert_ok(ew_star_write_particles(path, &o, p, 3));
    ew_star_t s;
    assert_ok(ew_star_read(path, &s));
    assert_close(get_d(&s, "optics", "rlnImagePixelSize", 0), 1.31, 0, 1e-9);
    assert_close(get_d(&s, "optics", "rlnVoltage", 0), 300, 0, 0);
    assert_close(get_d(&s, "optics", "rlnSphericalAberration", 0), 2.7, 0, 1e-9);
    assert_close(get_d(&s, "optics", "rlnAmplitudeContrast", 0), 0.07, 0, 1e-9);
    assert_close(get_d(&s, "optics", "rlnImageSize", 0), 128, 0, 0);
    assert_close(get_d(&s, "particles", "rlnAngleRot", 2), -150, 0, 1e-9);
    assert_close(get_d(&s, "particles", "rlnAngleTilt", 1), 90.25, 0, 1e-9);
    assert_close(get_d(&s, "particles", "rlnOriginYAngst", 0), -2.25, 0, 1e-9);
    assert_close(get_d(&s, "particles", "rlnDefocusU", 1), 15001, 0, 1e-9);
    assert_close(get_d(&s, "particles", "rlnCoordinateX", 2), 102.5, 0, 1e-9);
    assert_string_equal(get_s(&s, "particles", "rlnMicrographName", 0), "mic 1.mrc");
    assert_string_equal(get_s(&s, "particles", "rlnImageName", 2), "000003@particles.mrcs");
    assert_close(get_d(&s, "particles", "rlnOpticsGroup", 2), 1, 0, 0);
    ew_star_free(&s);
    p[1].defocus_u = NAN;
    assert_int_equal(ew_star_write_particles(ew_test_tmpfile("bad.star"), &o, p, 3), EW_ERR_ARG);
    o.pixel_size = 0;
    assert_int_equal(ew_star_write_particles(ew_test_tmpfile("bad.star"), &o, p, 3), EW_ERR_ARG);
}

static void test_image_names(void **state)
{
    (void)state;
    long k;
    char path[16];
    assert_ok(ew_star_split_image_name("12@a/b.mrcs", &k, path, sizeof path));
    assert_int_equal(k, 12);
    assert_string_equal(path, "a/b.mrcs");
    assert_ok(ew_star_split_image_name("single.mrc", &k, path, sizeof path));
    assert_int_equal(k, 0);
    assert_int_equal(ew_star_split_image_name("0@a.mrcs", &k, path, sizeof path), EW_ERR_FORMAT);
    assert_int_equal(ew_star_split_image_name("x@a.mrcs", &k, path, sizeof path), EW_ERR_FORMAT);
    assert_int_equal(ew_star_split_image_name("3@", &k, path, sizeof path), EW_ERR_FORMAT);
    assert_int_equal(ew_star_split_image_name("1@a_very_long_name.mrcs", &k, path, sizeof path), EW_ERR_RANGE);
}

static void check_hostile(const char *d, size_t n, const char *name)
{
    ew_star_t s;
    ew_error_clear();
    if (ew_star_parse(d, n, name, &s) != EW_OK) {
        if (!strstr(ew_error_message(), name)) fail_msg("message does not name the input: '%s'", ew_error_message());
        assert_int_equal(s.n_blocks, 0);
    } else {
        for (size_t b = 0; b < s.n_blocks; b++)
            for (size_t t = 0; t < s.blocks[b].n_tables; t++) {
                const ew_star_table_t *tb = &s.blocks[b].tables[t];
                for (size_t i = 0; i < tb->n_rows * tb->n_cols; i++) assert_non_null(tb->cells[i]);
            }
        char desc[128];
        ew_star_describe(&s, desc, sizeof desc);
    }
    ew_star_free(&s);
}

static void hostile_variants(const char *d, size_t n, const char *name)
{
    char *buf = malloc(n + 1);
    for (int k = 0; k <= 10; k++) {
        size_t l = n * (size_t)k / 10;
        memcpy(buf, d, l);
        check_hostile(buf, l, name);
    }
    for (size_t k = 0; k < 300; k++) {
        memcpy(buf, d, n);
        buf[(k * 7919u) % n] ^= (char)(1u << (k % 8));
        check_hostile(buf, n, name);
    }
    free(buf);
}

static void test_hostile(void **state)
{
    (void)state;
    hostile_variants(k_star, strlen(k_star), "hostile.star");
    const char *p = ew_test_data("cryoem/relion31.star");
    if (p) {
        size_t n = 0;
        unsigned char *d = ew_test_read_bytes(p, &n);
        hostile_variants((const char *)d, n, "relion31-mutated.star");
        free(d);
    }
    const char *bad[] = {"loop_\n_a\n1\n", "data_\nloop_\n_a\n_b\n1 2 3\n", "data_\n_a\n",
                         "data_\nvalue\n", "data_\nloop_\n1 2\n", "data_\n_a 'open\n", "", "# only\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ew_star_t s;
        assert_int_equal(ew_star_parse(bad[i], strlen(bad[i]), "bad.star", &s), EW_ERR_FORMAT);
        assert_non_null(strstr(ew_error_message(), "bad.star"));
    }
    ew_star_t s;
    assert_int_equal(ew_star_read("/nonexistent/x.star", &s), EW_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relion30),  cmocka_unit_test(test_relion31),
        cmocka_unit_test(test_synthetic), cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_particles), cmocka_unit_test(test_image_names),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
