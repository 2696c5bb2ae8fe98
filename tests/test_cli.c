/* Tests of the CLI option/config framework and of the ewald binary's
 * handling of bad input. */
#include "testutil.h"

#include "cli/cli.h"

typedef struct {
    long n;
    double energy;
    const char *name;
    const char *mode;
    int flag;
    uint64_t seed;
} vals_t;

static void opts_for(vals_t *v, ew_opt_t *o)
{
    ew_opt_t t[] = {
        {"count", 'n', EW_OPT_INT, &v->n, NULL, "patterns", NULL, 0, 1, 1000},
        {"energy", 0, EW_OPT_DOUBLE, &v->energy, "beam", "photon energy, eV", NULL, 0, 1, 1e6},
        {"name", 0, EW_OPT_STRING, &v->name, NULL, "a name", NULL, 0, 0, 0},
        {"mode", 0, EW_OPT_CHOICE, &v->mode, NULL, "a mode", "fast|exact", 0, 0, 0},
        {"flag", 0, EW_OPT_FLAG, &v->flag, NULL, "a flag", NULL, 0, 0, 0},
        {"seed", 0, EW_OPT_U64, &v->seed, NULL, "seed", NULL, 0, 0, 0},
        {0},
    };
    memcpy(o, t, sizeof t);
}

static ew_status_t run(vals_t *v, int argc, char **argv, int *npos)
{
    ew_opt_t o[7];
    opts_for(v, o);
    char **pos;
    int exit_now, json = 0;
    ew_cmd_info_t info = {"test", NULL, NULL, 0, 2};
    return ew_cli_parse(argc, argv, &info, o, &json, &pos, npos, &exit_now);
}

static const char *write_cfg(const char *text)
{
    const char *p = ew_test_tmpfile("t.ini");
    assert_int_equal(ew_test_write_bytes(p, text, strlen(text)), 0);
    return p;
}

static void test_defaults_and_overrides(void **state)
{
    (void)state;
    vals_t v = {5, 4600, "x", "fast", 0, 7};
    const char *cfg = write_cfg("# comment\ncount = 20\nname = \"two words\"\n[beam]\nenergy = 9000 # eV\n");
    char *argv[] = {"cmd", "-c", (char *)cfg, "--count", "30", "pos1", "--flag", NULL};
    int npos;
    assert_ok(run(&v, 7, argv, &npos));
    assert_int_equal(v.n, 30); /* command line beats the file */
    assert_close(v.energy, 9000, 0, 0);
    assert_string_equal(v.name, "two words");
    assert_int_equal(v.flag, 1);
    assert_int_equal(npos, 1);
}

static void test_unknown_key_names_line(void **state)
{
    (void)state;
    vals_t v = {5, 4600, "x", "fast", 0, 7};
    const char *cfg = write_cfg("count = 20\n\n[beam]\nenergie = 9000\n");
    char *argv[] = {"cmd", "-c", (char *)cfg, NULL};
    int npos;
    assert_int_equal(run(&v, 3, argv, &npos), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), ":4: unknown key 'energie' in section [beam]"));
}

static void test_section_must_match(void **state)
{
    (void)state;
    vals_t v = {5, 4600, "x", "fast", 0, 7};
    const char *cfg = write_cfg("energy = 9000\n"); /* energy lives in [beam] */
    char *argv[] = {"cmd", "-c", (char *)cfg, NULL};
    int npos;
    assert_int_equal(run(&v, 3, argv, &npos), EW_ERR_ARG);
}

static void test_bad_values(void **state)
{
    (void)state;
    vals_t v = {5, 4600, "x", "fast", 0, 7};
    int npos;
    char *a1[] = {"cmd", "--count", "12x", NULL};
    assert_int_equal(run(&v, 3, a1, &npos), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "--count"));
    char *a2[] = {"cmd", "--count", "5000", NULL};
    assert_int_equal(run(&v, 3, a2, &npos), EW_ERR_ARG);
    assert_non_null(strstr(ew_error_message(), "outside"));
    char *a3[] = {"cmd", "--mode", "slow", NULL};
    assert_int_equal(run(&v, 3, a3, &npos), EW_ERR_ARG);
    char *a4[] = {"cmd", "--energy", "-5", NULL};
    assert_int_equal(run(&v, 3, a4, &npos), EW_ERR_ARG);
    char *a5[] = {"cmd", "--seed", "-1", NULL};
    assert_int_equal(run(&v, 3, a5, &npos), EW_ERR_ARG);
    char *a6[] = {"cmd", "--nonsense", NULL};
    assert_int_equal(run(&v, 2, a6, &npos), EW_ERR_ARG);
    char *a7[] = {"cmd", "a", "b", "c", NULL};
    assert_int_equal(run(&v, 4, a7, &npos), EW_ERR_ARG);
    const char *cfg = write_cfg("count = 3\nthis line has no equals sign\n");
    char *a8[] = {"cmd", "-c", (char *)cfg, NULL};
    assert_int_equal(run(&v, 3, a8, &npos), EW_ERR_FORMAT);
    assert_non_null(strstr(ew_error_message(), ":2:"));
}

static void test_missing_config_file(void **state)
{
    (void)state;
    vals_t v = {5, 4600, "x", "fast", 0, 7};
    int npos;
    char *argv[] = {"cmd", "--config", "/nonexistent/x.ini", NULL};
    assert_int_equal(run(&v, 3, argv, &npos), EW_ERR_IO);
    assert_non_null(strstr(ew_error_message(), "/nonexistent/x.ini"));
}

/* The binary: unknown commands and options fail with one line, exit != 0. */
static void test_binary_errors(void **state)
{
    (void)state;
    const char *bin = getenv("EWALD_BIN");
    if (!bin || access(bin, X_OK) != 0) skip();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s no-such-command 2>/dev/null", bin);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s selftest --no-such-option 2>/dev/null", bin);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --version >/dev/null", bin);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s selftest --json >/dev/null", bin);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_overrides), cmocka_unit_test(test_unknown_key_names_line),
        cmocka_unit_test(test_section_must_match),     cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_missing_config_file),    cmocka_unit_test(test_binary_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
