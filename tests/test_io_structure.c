/* Tests for the PDB/mmCIF readers, the element table and summaries. */
#include "testutil.h"

#include "io/structure.h"

static void test_elements(void **state)
{
    (void)state;
    assert_int_equal(ew_element_z("C"), 6);
    assert_int_equal(ew_element_z("fe"), 26);
    assert_int_equal(ew_element_z("FE"), 26);
    assert_int_equal(ew_element_z(" ZN"), 30);
    assert_int_equal(ew_element_z("D"), 1);
    assert_int_equal(ew_element_z("Xx"), 0);
    assert_int_equal(ew_element_z(""), 0);
    assert_int_equal(ew_element_z("Carbon"), 0);
    assert_string_equal(ew_element_symbol(98), "Cf");
    assert_string_equal(ew_element_symbol(99), "?");
    for (int z = 1; z <= 98; z++) {
        assert_int_equal(ew_element_z(ew_element_symbol(z)), z);
        assert_true(ew_element_mass(z) > ew_element_mass(z - 1) - 2.0); /* only small inversions */
        assert_true(ew_element_mass(z) >= z && ew_element_mass(z) < 2.7 * z + 2);
    }
    /* IUPAC standard atomic weights */
    assert_close(ew_element_mass(1), 1.008, 0, 1e-9);
    assert_close(ew_element_mass(6), 12.011, 0, 1e-9);
    assert_close(ew_element_mass(26), 55.845, 0, 1e-9);
    assert_close(ew_element_mass(79), 196.97, 0, 1e-9);
    assert_close(ew_element_mass(92), 238.03, 0, 1e-9);
}

static const char *k_pdb =
    "HEADER    TEST\n"
    "MODEL        1\n"
    "ATOM      1  N   GLY A   1      -1.000   0.000   0.000  1.00 10.00           N\n"
    "ATOM      2  CA  GLY A   1       1.000   0.000   0.000  1.00 11.00\n" /* no element */
    "ATOM      3  CB ASER A   2       0.000   2.000   0.000  0.40  5.00           C\n"
    "ATOM      4  CB BSER A   2       0.000   3.000   0.000  0.60  5.00           C\n"
    "ATOM      5  OG ASER A   2       0.000   4.000   0.000  0.50  5.00           O\n"
    "ATOM      6  OG BSER A   2       0.000   5.000   0.000  0.50  5.00           O\n"
    "ATOM      7 HD21 ASN A   3       0.000   0.000   1.000  1.00  5.00\n"
    "HETATM    8 FE   HEM A   4       0.000   0.000   2.000  1.00  5.00          FE2+\n"
    "HETATM    9  O   HOH A   5       0.000   0.000   3.000  1.00  5.00           O\n"
    "ENDMDL\n"
    "MODEL        2\n"
    "ATOM      1  N   GLY A   1      -9.000   0.000   0.000  1.00 10.00           N\n"
    "ENDMDL\n";

static void test_pdb_synthetic(void **state)
{
    (void)state;
    ew_structure_t s;
    assert_ok(ew_structure_parse(k_pdb, strlen(k_pdb), "syn.pdb", NULL, &s));
    assert_int_equal(s.n_atoms, 7); /* 9 records, two altloc pairs, model 2 ignored */
    assert_int_equal(s.z[0], 7);
    assert_int_equal(s.z[1], 6);    /* " CA " -> C, not Ca */
    assert_string_equal(s.atom_name[1], "CA");
    assert_close(s.xyz[3 * 2 + 1], 3.0, 0, 1e-6); /* CB B has the higher occupancy */
    assert_close(s.occupancy[2], 0.6, 0, 1e-6);
    assert_close(s.xyz[3 * 3 + 1], 4.0, 0, 1e-6); /* OG tie: the first conformer */
    assert_int_equal(s.z[4], 1);                  /* HD21 of an ATOM record */
    assert_int_equal(s.z[5], 26);
    assert_int_equal(s.charge[5], 2);
    assert_int_equal(s.hetatm[5], 1);
    assert_string_equal(s.res_name[6], "HOH");
    assert_int_equal(s.chain[0], 'A');
    assert_int_equal(s.res_seq[5], 4);
    assert_close(s.b_factor[1], 11.0, 0, 1e-6);
    assert_string_equal(s.source, "syn.pdb");

    ew_structure_summary_t sum;
    ew_structure_summarize(&s, &sum);
    /* electrons: N 7 + C 6 + C 6*0.6 + O 8*0.5 + H 1 + Fe2+ 24 + O 8 */
    assert_close(sum.electrons, 7 + 6 + 3.6 + 4 + 1 + 24 + 8, 1e-7, 0); /* float occupancy */
    ew_structure_free(&s);

    ew_structure_options_t o = {.drop_waters = 1};
    assert_ok(ew_structure_parse(k_pdb, strlen(k_pdb), "syn.pdb", &o, &s));
    assert_int_equal(s.n_atoms, 6);
    ew_structure_free(&s);
    o = (ew_structure_options_t){.drop_hydrogens = 1, .drop_hetatm = 1};
    assert_ok(ew_structure_parse(k_pdb, strlen(k_pdb), "syn.pdb", &o, &s));
    assert_int_equal(s.n_atoms, 4);
    ew_structure_free(&s);
    ew_structure_free(NULL);
}

static const char *k_cif =
    "# comment\n"
    "data_TEST\n"
    "_entry.id TEST\n"
    "loop_\n"
    "_other.a\n_other.b\n"
    "1 'x y'\n2 \"_not a tag\"\n"
    "loop_\n"
    "_atom_site.Cartn_z\n"
    "_atom_site.type_symbol\n"
    "_atom_site.group_PDB\n"
    "_atom_site.label_atom_id\n"
    "_atom_site.label_alt_id\n"
    "_atom_site.auth_comp_id\n"
    "_atom_site.auth_asym_id\n"
    "_atom_site.auth_seq_id\n"
    "_atom_site.Cartn_x\n"
    "_atom_site.Cartn_y\n"
    "_atom_site.occupancy\n"
    "_atom_site.B_iso_or_equiv\n"
    "_atom_site.pdbx_formal_charge\n"
    "_atom_site.pdbx_PDB_model_num\n"
    "1.0 C ATOM \"C1'\" . DA B 7 2.0 3.0 1.00 20.0 ? 1\n"
    "2.0 O ATOM O A SER B 8 0 0 0.30 20.0 ? 1 # comment after a row\n"
    "3.0 O ATOM O B SER B 8 0 0 0.70 20.0 ? 1\n"
    "4.0 Zn HETATM ZN . ZN C 9 0 0 1.00 20.0 2 1\n"
    "5.0 O HETATM O . HOH C 10 0 0 1.00 20.0 ? 1\n"
    "9.0 O HETATM O . HOH C 10 0 0 1.00 20.0 ? 2\n"
    "#\n"
    "loop_\n_x.y\n;\ntext field\n;\n";

static void test_cif_synthetic(void **state)
{
    (void)state;
    ew_structure_t s;
    assert_ok(ew_structure_parse(k_cif, strlen(k_cif), "syn.cif", NULL, &s));
    assert_int_equal(s.n_atoms, 4);
    assert_string_equal(s.atom_name[0], "C1'");
    assert_close(s.xyz[0], 2.0, 0, 1e-6);
    assert_close(s.xyz[1], 3.0, 0, 1e-6);
    assert_close(s.xyz[2], 1.0, 0, 1e-6);
    assert_close(s.xyz[3 * 1 + 2], 3.0, 0, 1e-6); /* altloc B, occupancy 0.7 */
    assert_int_equal(s.z[2], 30);
    assert_int_equal(s.charge[2], 2);
    assert_int_equal(s.hetatm[2], 1);
    assert_int_equal(s.chain[2], 'C');
    assert_int_equal(s.res_seq[3], 10);
    ew_structure_free(&s);
    ew_structure_options_t o = {.drop_hetatm = 1};
    assert_ok(ew_structure_parse(k_cif, strlen(k_cif), "syn.cif", &o, &s));
    assert_int_equal(s.n_atoms, 2);
    ew_structure_free(&s);
}

static void test_summary(void **state)
{
    (void)state;
    /* two carbons and an oxygen on a line: centre of mass and Rg by hand */
    const char *pdb =
        "ATOM      1  C   GLY A   1       0.000   0.000   0.000  1.00  0.00           C\n"
        "ATOM      2  C   GLY A   1       2.000   0.000   0.000  1.00  0.00           C\n"
        "ATOM      3  O   GLY A   1       0.000   4.000   0.000  0.50  0.00           O\n";
    ew_structure_t s;
    assert_ok(ew_structure_parse(pdb, strlen(pdb), "sum.pdb", NULL, &s));
    ew_structure_summary_t sum;
    ew_structure_summarize(&s, &sum);
    double mc = 12.011, mo = 15.999 * 0.5, M = 2 * mc + mo;
    double cx = 2 * mc / M, cy = 4 * mo / M;
    assert_close(sum.mass_da, M, 1e-12, 0);
    assert_close(sum.centre[0], cx, 1e-9, 1e-9);
    assert_close(sum.centre[1], cy, 1e-9, 1e-9);
    double rg2 = (mc * (cx * cx + cy * cy) + mc * ((2 - cx) * (2 - cx) + cy * cy) +
                  mo * (cx * cx + (4 - cy) * (4 - cy))) / M;
    assert_close(sum.radius_gyration, sqrt(rg2), 1e-9, 0);
    assert_close(sum.max_extent, sqrt(cx * cx + (4 - cy) * (4 - cy)), 1e-6, 0);
    assert_close(sum.bbox_max[0], 2.0, 0, 0);
    assert_close(sum.bbox_max[1], 4.0, 0, 0);
    assert_int_equal(sum.count_by_z[6], 2);
    assert_close(sum.electrons, 12 + 4, 0, 1e-12);
    ew_structure_center(&s);
    ew_structure_summarize(&s, &sum);
    for (int d = 0; d < 3; d++) assert_close(sum.centre[d], 0, 0, 1e-6);
    assert_close(sum.radius_gyration, sqrt(rg2), 1e-6, 0);
    ew_structure_free(&s);
}

/* 1uao (chignolin, 10 residues) is small enough to check by hand: 11 N,
 * 48 C, 18 O, 61 H (element columns), all occupancies 1, so electrons =
 * 77 + 288 + 144 + 61 = 570. Mass, centre and Rg computed with python from
 * the ATOM lines of MODEL 1 and the same weights. */
static void test_1uao(void **state)
{
    (void)state;
    const char *p = ew_test_data("pdb/1uao.pdb");
    if (!p) skip();
    ew_structure_t s;
    assert_ok(ew_structure_read(p, NULL, &s));
    assert_int_equal(s.n_atoms, 138);
    ew_structure_summary_t sum;
    ew_structure_summarize(&s, &sum);
    assert_int_equal(sum.count_by_z[1], 61);
    assert_int_equal(sum.count_by_z[6], 48);
    assert_int_equal(sum.count_by_z[7], 11);
    assert_int_equal(sum.count_by_z[8], 18);
    assert_close(sum.electrons, 570, 0, 1e-9);
    assert_close(sum.mass_da, 11 * 14.007 + 48 * 12.011 + 18 * 15.999 + 61 * 1.008, 1e-12, 1e-9);
    assert_close(sum.centre[0], -0.3565562909983098, 1e-6, 1e-6);
    assert_close(sum.centre[1], -0.6161378848691058, 1e-6, 1e-6);
    assert_close(sum.centre[2], 0.5403796782630834, 1e-6, 1e-6);
    assert_close(sum.radius_gyration, 5.291983869328908, 1e-6, 0);
    /* first atom: "ATOM      1  N   GLY A   1      -6.778  -1.424   4.200  1.00  0.00  N" */
    assert_close(s.xyz[0], -6.778, 0, 1e-5);
    assert_close(s.xyz[1], -1.424, 0, 1e-5);
    assert_close(s.xyz[2], 4.200, 0, 1e-5);
    assert_string_equal(s.res_name[0], "GLY");
    ew_structure_free(&s);
}

/* Expected counts, computed once with a python script (see docs/formats.md):
 * ATOM/HETATM lines up to the first ENDMDL; records with an altloc grouped
 * by (chain, residue number + insertion code, atom name), one kept per group;
 * waters = HOH/WAT/DOD, hydrogens = element column H/D, het = HETATM, all
 * counted among the kept atoms. */
typedef struct {
    const char *file;
    size_t raw, kept, waters, hydrogens, het;
} pdb_count_t;

static const pdb_count_t k_counts[] = {
    {"pdb/1uao.pdb", 138, 138, 0, 61, 0},       {"pdb/2cex.pdb", 2452, 2452, 89, 0, 90},
    {"pdb/1bxr.pdb", 48307, 48260, 3242, 0, 3608}, {"pdb/5g3x.pdb", 3911, 3791, 119, 1801, 119},
    {"pdb/2lyz.pdb", 1102, 1102, 101, 0, 101},  {"pdb/4et8.pdb", 1090, 1090, 87, 0, 89},
};

static void test_pdb_counts(void **state)
{
    (void)state;
    int any = 0;
    for (size_t i = 0; i < sizeof k_counts / sizeof *k_counts; i++) {
        const pdb_count_t *c = &k_counts[i];
        const char *p = ew_test_data(c->file);
        if (!p) continue;
        any = 1;
        char path[4096];
        snprintf(path, sizeof path, "%s", p);
        ew_structure_t s;
        assert_ok(ew_structure_read(path, NULL, &s));
        if (s.n_atoms != c->kept) fail_msg("%s: %zu atoms, expected %zu", path, s.n_atoms, c->kept);
        ew_structure_free(&s);
        ew_structure_options_t o = {.drop_waters = 1};
        assert_ok(ew_structure_read(path, &o, &s));
        assert_int_equal(s.n_atoms, c->kept - c->waters);
        ew_structure_free(&s);
        o = (ew_structure_options_t){.drop_hydrogens = 1};
        assert_ok(ew_structure_read(path, &o, &s));
        assert_int_equal(s.n_atoms, c->kept - c->hydrogens);
        ew_structure_free(&s);
        o = (ew_structure_options_t){.drop_hetatm = 1};
        assert_ok(ew_structure_read(path, &o, &s));
        assert_int_equal(s.n_atoms, c->kept - c->het);
        ew_structure_free(&s);
    }
    if (!any) skip();
}

static ssize_t find_atom(const ew_structure_t *s, char chain, int res, const char *name)
{
    for (size_t i = 0; i < s->n_atoms; i++)
        if (s->chain[i] == chain && s->res_seq[i] == res && !strcmp(s->atom_name[i], name))
            return (ssize_t)i;
    return -1;
}

static void test_altlocs(void **state)
{
    (void)state;
    const char *p = ew_test_data("pdb/1bxr.pdb");
    if (!p) skip();
    ew_structure_t s;
    assert_ok(ew_structure_read(p, NULL, &s));
    /* ASP A 757 CB: A and B both 0.50 -> the first (A, x = 43.445) */
    ssize_t i = find_atom(&s, 'A', 757, "CB");
    assert_true(i >= 0);
    assert_close(s.xyz[3 * i], 43.445, 0, 1e-4);
    assert_close(s.occupancy[i], 0.5, 0, 1e-6);
    assert_int_equal(find_atom(&s, 'A', 757, "OD1") >= 0, 1);
    ew_structure_free(&s);
    p = ew_test_data("pdb/5g3x.pdb");
    if (!p) return;
    assert_ok(ew_structure_read(p, NULL, &s));
    /* SER A 16 N: A 0.47 (x 29.203), B 0.53 (x 29.217) -> B */
    i = find_atom(&s, 'A', 16, "N");
    assert_true(i >= 0);
    assert_close(s.xyz[3 * i], 29.217, 0, 1e-4);
    assert_close(s.occupancy[i], 0.53, 0, 1e-6);
    ew_structure_free(&s);
}

/* 4v1w.cif: 32,736 atom_site rows (awk over ATOM/HETATM lines), one model,
 * no altlocs, 24 chains; composition C 20640, N 5736, O 6240, S 120. */
static void test_4v1w(void **state)
{
    (void)state;
    const char *p = ew_test_data("pdb/4v1w.cif");
    if (!p) skip();
    ew_structure_t s;
    assert_ok(ew_structure_read(p, NULL, &s));
    assert_int_equal(s.n_atoms, 32736);
    ew_structure_summary_t sum;
    ew_structure_summarize(&s, &sum);
    assert_int_equal(sum.count_by_z[6], 20640);
    assert_int_equal(sum.count_by_z[7], 5736);
    assert_int_equal(sum.count_by_z[8], 6240);
    assert_int_equal(sum.count_by_z[16], 120);
    int chains[256] = {0}, nch = 0;
    for (size_t i = 0; i < s.n_atoms; i++)
        if (!chains[(unsigned char)s.chain[i]]++) nch++;
    assert_int_equal(nch, 24);
    /* first row: ATOM 1 N N . SER A 1 2 ? 106.801 35.728 111.280 1.00 145.47 ? 2 SER A N 1 */
    assert_close(s.xyz[0], 106.801, 0, 1e-4);
    assert_close(s.xyz[2], 111.280, 0, 1e-4);
    assert_close(s.b_factor[0], 145.47, 0, 1e-4);
    assert_int_equal(s.res_seq[0], 2);
    assert_string_equal(s.res_name[0], "SER");
    assert_string_equal(s.atom_name[1], "CA");
    ew_structure_free(&s);
}

static void check_hostile(const char *data, size_t n, const char *name)
{
    ew_structure_t s;
    ew_error_clear();
    ew_status_t st = ew_structure_parse(data, n, name, NULL, &s);
    if (st != EW_OK) {
        const char *m = ew_error_message();
        if (!strstr(m, name)) fail_msg("message does not name the input: '%s'", m);
        assert_int_equal(s.n_atoms, 0);
        assert_null(s.xyz);
    } else {
        for (size_t i = 0; i < s.n_atoms; i++) assert_true(s.z[i] >= 1 && s.z[i] <= 98);
    }
    ew_structure_free(&s);
}

static void hostile_variants(const char *data, size_t n, const char *name)
{
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    for (int k = 0; k <= 10; k++) { /* truncations at 11 lengths */
        size_t len = n * (size_t)k / 10;
        memcpy(buf, data, len);
        check_hostile(buf, len, name);
    }
    for (size_t k = 0; k < 200; k++) { /* single bit flips at fixed positions */
        memcpy(buf, data, n);
        size_t pos = (k * 7919u) % n;
        buf[pos] ^= (char)(1u << (k % 8));
        check_hostile(buf, n, name);
    }
    free(buf);
}

static void test_hostile(void **state)
{
    (void)state;
    hostile_variants(k_pdb, strlen(k_pdb), "hostile.pdb");
    hostile_variants(k_cif, strlen(k_cif), "hostile.cif");
    const char *p = ew_test_data("pdb/1uao.pdb");
    if (p) {
        size_t n = 0;
        unsigned char *d = ew_test_read_bytes(p, &n);
        assert_non_null(d);
        hostile_variants((const char *)d, n, "1uao-mutated.pdb");
        free(d);
    }
    /* specific malformed inputs */
    const char *bad[] = {
        "ATOM      1  N   GLY A   1      -1.0x0   0.000   0.000  1.00 10.00           N\n",
        "ATOM      1  N   GLY A   1      -1.000   0.000   0.000  7.00 10.00           N\n",
        "ATOM      1  N   GLY A   1      -1.000   0.000   0.000  1.00 10.00           Qq\n",
        "ATOM      1  N   GLY A   1      -1.000   0.000      nan  1.00 10.00           N\n",
        "HEADER only\n",
        "data_x\nloop_\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n_atom_site.Cartn_z\n1 2\n",
        "data_x\nloop_\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n_atom_site.Cartn_z\n'1 2 3\n",
        "data_x\n_cell.a 3\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ew_structure_t s;
        assert_int_equal(ew_structure_parse(bad[i], strlen(bad[i]), "bad.x", NULL, &s), EW_ERR_FORMAT);
        assert_non_null(strstr(ew_error_message(), "bad.x"));
    }
    ew_structure_t s;
    assert_int_equal(ew_structure_read("/nonexistent/x.pdb", NULL, &s), EW_ERR_IO);
    assert_non_null(strstr(ew_error_message(), "/nonexistent/x.pdb"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elements),   cmocka_unit_test(test_pdb_synthetic),
        cmocka_unit_test(test_cif_synthetic), cmocka_unit_test(test_summary),
        cmocka_unit_test(test_1uao),       cmocka_unit_test(test_pdb_counts),
        cmocka_unit_test(test_altlocs),    cmocka_unit_test(test_4v1w),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
