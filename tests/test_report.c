/* Tests for the HTML report (report/report.h) and the demo pipeline
 * (report/demo.h): escaping, base64 against RFC 4648's vectors, page
 * structure, embedded figures, tables, parameter and timing tables, front
 * mode, atomic writes; and a shrunken demo run end to end. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "core/core.h"
#include "io/png.h"
#include "report/demo.h"
#include "report/report.h"

static char *read_text(const char *path)
{
    size_t n;
    unsigned char *b = ew_test_read_bytes(path, &n);
    if (!b) return NULL;
    char *s = realloc(b, n + 1);
    s[n] = 0;
    return s;
}

static void test_escape(void **state)
{
    (void)state;
    ew_strbuf_t b = {0};
    ew_strbuf_html(&b, "<a href=\"x\">&'y'</a>");
    assert_string_equal(b.data, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;y&#39;&lt;/a&gt;");
    ew_strbuf_free(&b);
    ew_strbuf_html(&b, "plain text");
    ew_strbuf_html(&b, NULL);
    ew_strbuf_printf(&b, " %d%%", 42);
    assert_string_equal(b.data, "plain text 42%");
    assert_int_equal(b.len, strlen("plain text 42%"));
    ew_strbuf_free(&b);
    /* growth over many appends keeps every byte */
    for (int i = 0; i < 5000; i++) ew_strbuf_puts(&b, "0123456789");
    assert_int_equal(b.len, 50000);
    assert_int_equal(b.data[49999], '9');
    assert_int_equal(b.failed, 0);
    ew_strbuf_free(&b);
}

static void test_base64(void **state)
{
    (void)state;
    /* RFC 4648 section 10 test vectors */
    const char *in[7] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[7] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        ew_strbuf_t b = {0};
        ew_base64_append(&b, (const unsigned char *)in[i], strlen(in[i]));
        assert_string_equal(b.data ? b.data : "", out[i]);
        ew_strbuf_free(&b);
    }
    /* all byte values: 0xff 0x00 0x80 */
    const unsigned char bytes[3] = {0xff, 0x00, 0x80};
    ew_strbuf_t b = {0};
    ew_base64_append(&b, bytes, 3);
    assert_string_equal(b.data, "/wCA");
    ew_strbuf_free(&b);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_page(void **state)
{
    (void)state;
    /* a small PNG to embed */
    const char *png = ew_test_tmpfile("f.png");
    uint8_t g[4 * 3] = {0, 50, 100, 150, 200, 250, 0, 50, 100, 150, 200, 250};
    assert_ok(ew_png_write_gray8(png, 4, 3, g));
    char pngpath[512];
    snprintf(pngpath, sizeof pngpath, "%s", png);

    ew_report_t *r = ew_report_new("Title <script>alert(1)</script>");
    assert_non_null(r);
    ew_report_subtitle(r, "sub & line");
    ew_report_section(r, "sec one", "First <section>");
    ew_report_text(r, "value %d < %d", 1, 2);
    ew_report_note(r, "skip", "step %s is absent", "X");
    ew_report_subsection(r, "detail");
    assert_ok(ew_report_figure(r, pngpath, "a figure, photons"));
    assert_int_equal(ew_report_figure(r, "/nonexistent/x.png", "missing"), EW_ERR_IO);
    const char *hdr[2] = {"a", "b"}, *cells[4] = {"1", "<2>", NULL, "4"};
    ew_report_table(r, "tab", 2, hdr, 2, cells);
    ew_report_section(r, "two", "Second");
    const char *paths[2] = {pngpath, pngpath}, *caps[2] = {"left", "right"};
    assert_ok(ew_report_figure_row(r, 2, paths, caps));
    ew_report_front(r, 1);
    ew_report_section(r, "summary", "Summary first");
    ew_report_text(r, "front text");
    ew_report_front(r, 0);
    ew_report_text(r, "after front");
    ew_report_param(r, "g1", "alpha", "1", "A");
    ew_report_paramf(r, "g1", "beta", NULL, "%.2f", 0.5);
    ew_report_param(r, "g2", "gamma", "<x>", NULL);
    ew_report_timing(r, "step one", 1.5);
    ew_report_timing(r, "step two", 0.5);

    const char *out = ew_test_tmpfile("report.html");
    char outpath[512];
    snprintf(outpath, sizeof outpath, "%s", out);
    assert_ok(ew_report_write(r, outpath));
    assert_int_equal(ew_test_count_temporaries(), 0);
    char *s = read_text(outpath);
    assert_non_null(s);
    /* structure */
    assert_non_null(strstr(s, "<!DOCTYPE html>"));
    assert_non_null(strstr(s, "</html>"));
    assert_int_equal(count(s, "<section"), count(s, "</section>"));
    assert_int_equal(count(s, "<section"), 5); /* 3 sections + timing + parameters */
    /* escaping: nothing the caller gave becomes markup */
    assert_null(strstr(s, "<script>"));
    assert_non_null(strstr(s, "Title &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(s, "value 1 &lt; 2"));
    assert_non_null(strstr(s, "<td>&lt;2&gt;</td>"));
    assert_non_null(strstr(s, "id=\"sec_one\""));
    assert_non_null(strstr(s, "href=\"#sec_one\""));
    assert_non_null(strstr(s, "sub &amp; line"));
    /* figures: embedded PNG (base64 of the 8-byte signature starts iVBORw0KGgo) */
    assert_int_equal(count(s, "src=\"data:image/png;base64,iVBORw0KGgo"), 3);
    assert_non_null(strstr(s, "Figure missing"));
    assert_non_null(strstr(s, "<b>Not run.</b> step X is absent"));
    /* front mode: the summary comes first in the page and in the contents */
    char *sum = strstr(s, "id=\"summary\""), *one = strstr(s, "id=\"sec_one\"");
    assert_true(sum && one && sum < one);
    assert_true(strstr(s, "href=\"#summary\"") < strstr(s, "href=\"#sec_one\""));
    assert_true(strstr(s, "after front") > strstr(s, "id=\"two\""));
    /* timing: total row; parameters with units, escaped */
    assert_non_null(strstr(s, "<td>step one</td><td class=\"num\">1.50</td><td class=\"num\">75.0%</td>"));
    assert_non_null(strstr(s, "<td>total</td><td class=\"num\">2.00</td>"));
    assert_non_null(strstr(s, "<td>g1</td><td>alpha</td><td>1</td><td>A</td>"));
    assert_non_null(strstr(s, "<td></td><td>beta</td><td>0.50</td><td></td>"));
    assert_non_null(strstr(s, "<td>&lt;x&gt;</td>"));
    free(s);

    /* an unwritable path: error naming it, no file, no temporary */
    assert_int_equal(ew_report_write(r, "/nonexistent-dir/r.html"), EW_ERR_IO);
    assert_non_null(strstr(ew_error_message(), "/nonexistent-dir/r.html"));
    ew_report_free(r);
    ew_report_free(NULL);
}

static void test_demo_tiny(void **state)
{
    (void)state;
    if (access("data/2cex.pdb", R_OK) != 0) skip();
    ew_log_set_level(EW_LOG_WARN);
    ew_demo_config_t c;
    ew_demo_config_default(&c, 1);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/demo", ew_test_tmpdir());
    c.out_dir = dir;
    c.threads = 2;
    c.det_n = 24;
    c.n_patterns = 80;
    c.emc_level_lo = c.emc_level_hi = 1;
    c.emc_iters = 2;
    c.phase_loops = 1;
    c.phase_starts = 1;
    c.em_size = 128;
    c.em_particles = 2;
    c.em_micrographs = 1;
    c.cut_steps = 3;
    c.ssl_patterns = 32;
    c.ssl_epochs = 1;
    c.pick_train_micrographs = 1;
    c.pick_test_micrographs = 1;
    c.pick_steps = 3;
    c.recon_particles = 24;
    c.recon_pose_particles = 8;
    c.recon_pose_level = 1;
    ew_demo_results_t res;
    double t = ew_time_now();
    assert_ok(ew_demo_run(&c, &res));
    t = ew_time_now() - t;
    assert_non_null(res.report_path);
    char *s = read_text(res.report_path);
    assert_non_null(s);
    const char *need[] = {"id=\"about\"",     "id=\"summary\"",  "id=\"xfel-data\"", "id=\"xfel-emc\"",
                          "id=\"xfel-compare\"", "id=\"xfel-ssl\"", "id=\"xfel-phase\"", "id=\"em-sim\"",
                          "id=\"em-noise\"",  "id=\"em-pick\"",  "id=\"em-recon\"",  "id=\"timing\"",
                          "id=\"parameters\"", "Headline figures", "intensity", "FSC"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (!strstr(s, need[i])) fail_msg("report lacks %s", need[i]);
    /* 23 figures, all embedded */
    assert_int_equal(count(s, "src=\"data:image/png;base64,"), 23);
    assert_null(strstr(s, "Figure missing"));
    free(s);
    /* figures beside it, headline figures filled */
    char p[600];
    snprintf(p, sizeof p, "%s/fig/fsc_density.png", dir);
    assert_int_equal(access(p, R_OK), 0);
    assert_true(res.photons_per_pattern > 10);
    assert_true(isfinite(res.emc_orient_median_deg) && res.emc_orient_median_deg >= 0 &&
                res.emc_orient_median_deg <= 180);
    assert_true(res.emc_ifsc_frac09 >= 0 && res.emc_ifsc_frac09 <= 1);
    assert_true(res.truth_dfsc_res05 > 0);
    assert_int_equal(res.em_micrographs, 1);
    assert_int_equal(res.ssl_run, 1);
    assert_true(res.ssl_orient_median_deg >= 0 && res.ssl_orient_median_deg <= 180);
    assert_int_equal(res.cut_run, 1);
    assert_true(res.cut_psd_simulated > 0 && res.cut_psd_translated > 0);
    assert_int_equal(res.pick_run, 1);
    assert_true(res.pick_auprc >= 0 && res.pick_auprc <= 1);
    assert_int_equal(res.emrecon_run, 1);
    assert_int_equal(res.recon_particles, 24);
    assert_true(res.recon_res0143 >= 2 * 3.0 - 1e-9 && isfinite(res.recon_truth_res05));
    assert_true(res.recon_pose_median_deg >= 0 && res.recon_pose_median_deg <= 180);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/fig/%s", dir, i ? "em_fsc.png" : "em_picks.png");
        assert_int_equal(access(p, R_OK), 0);
    }
    print_message("tiny demo: %.1f s, %.0f photons/pattern, orientation median %.1f deg\n", t,
                  res.photons_per_pattern, res.emc_orient_median_deg);
    ew_demo_results_free(&res);

    /* an output folder that cannot be made: error naming it, no report */
    c.out_dir = "/nonexistent-dir/demo";
    assert_int_equal(ew_demo_run(&c, &res), EW_ERR_IO);
    assert_non_null(strstr(ew_error_message(), "/nonexistent-dir/demo"));
    assert_null(res.report_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_demo_tiny),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
