/* Tests for physics/formfactor: the embedded Waasmaier-Kirfel table. */
#include "testutil.h"

#include "core/core.h"
#include "physics/formfactor.h"

/* f0(0) = Z - charge for every entry, to the fit's accuracy. */
static void test_forward_is_electron_count(void **state)
{
    (void)state;
    assert_true(ew_wk_table_len >= 200);
    int seen_neutral[99] = {0};
    for (size_t i = 0; i < ew_wk_table_len; i++) {
        const ew_wk_entry_t *e = &ew_wk_table[i];
        ew_formfactor_t f;
        assert_ok(ew_formfactor_lookup(e->z, e->charge, &f));
        assert_close(ew_formfactor_forward(&f), e->z - e->charge, 0, 0.04);
        assert_close(ew_formfactor_eval(&f, 0.0), e->z - e->charge, 0, 0.04);
        if (e->charge == 0) seen_neutral[e->z] = 1;
    }
    for (int z = 1; z <= 98; z++) assert_true(seen_neutral[z]);
}

/* Against the independent Cromer-Mann 4-Gaussian fits of International
 * Tables Vol. C, Table 6.1.1.4 (to relativistic Hartree-Fock values), at
 * x = sin(theta)/lambda = 0 .. 1, i.e. our s = 1/d = 2x. The two fits agree
 * to ~0.004 electrons for C and O. */
static double cromer_mann(const double a[4], const double b[4], double c, double x)
{
    double v = c;
    for (int i = 0; i < 4; i++) v += a[i] * exp(-b[i] * x * x);
    return v;
}

static void test_published_values(void **state)
{
    (void)state;
    static const double ca[4] = {2.31, 1.02, 1.5886, 0.865}, cb[4] = {20.8439, 10.2075, 0.5687, 51.6512};
    static const double oa[4] = {3.0485, 2.2868, 1.5463, 0.867}, ob[4] = {13.2771, 5.7011, 0.3239, 32.9089};
    ew_formfactor_t c, o;
    assert_ok(ew_formfactor_lookup(6, 0, &c));
    assert_ok(ew_formfactor_lookup(8, 0, &o));
    for (double x = 0; x <= 1.0; x += 0.05) {
        assert_close(ew_formfactor_eval(&c, 2.0 * x), cromer_mann(ca, cb, 0.2156, x), 0, 0.01);
        assert_close(ew_formfactor_eval(&o, 2.0 * x), cromer_mann(oa, ob, 0.2508, x), 0, 0.01);
    }
    /* monotone decrease for a neutral light atom */
    double prev = 1e9;
    for (double s = 0; s < 2.0; s += 0.05) {
        double v = ew_formfactor_eval(&c, s);
        assert_true(v < prev);
        prev = v;
    }
}

static void test_unknown_is_error(void **state)
{
    (void)state;
    ew_formfactor_t f;
    assert_int_equal(ew_formfactor_lookup(99, 0, &f), EW_ERR_RANGE);
    assert_non_null(strstr(ew_error_message(), "Z = 99"));
    assert_int_equal(f.z, 0);
    assert_int_equal(ew_formfactor_lookup(6, 3, &f), EW_ERR_RANGE);
    assert_non_null(strstr(ew_error_message(), "C (Z = 6) with charge +3"));
    assert_ok(ew_formfactor_lookup(26, 2, &f)); /* Fe2+ exists */
    assert_close(ew_formfactor_forward(&f), 24.0, 0, 0.04);
}

/* The first of a duplicated (Z, charge) pair is the free atom. */
static void test_valence_rows_dropped(void **state)
{
    (void)state;
    int count_c = 0;
    for (size_t i = 0; i < ew_wk_table_len; i++) count_c += ew_wk_table[i].z == 6 && ew_wk_table[i].charge == 0;
    assert_int_equal(count_c, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_is_electron_count),
        cmocka_unit_test(test_published_values),
        cmocka_unit_test(test_unknown_is_error),
        cmocka_unit_test(test_valence_rows_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
