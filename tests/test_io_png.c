/* Tests for PNG figures (io/png.h): writes read back with libpng, colormap
 * values against matplotlib's published tables, percentile clipping, log
 * scaling, masks, montages, the font, plots and histograms. */
#include "testutil.h"

#include "core/core.h"
#include "io/png.h"

static void test_raw_roundtrip(void **state)
{
    (void)state;
    uint8_t g[6 * 4], rgb[5 * 3 * 3];
    for (int i = 0; i < 24; i++) g[i] = (uint8_t)(i * 11);
    for (int i = 0; i < 45; i++) rgb[i] = (uint8_t)(i * 5 + 1);
    const char *pg = ew_test_tmpfile("g.png");
    assert_ok(ew_png_write_gray8(pg, 6, 4, g));
    int w, h, c;
    uint8_t *px;
    assert_ok(ew_png_read(pg, &w, &h, &c, &px));
    assert_int_equal(w, 6);
    assert_int_equal(h, 4);
    assert_int_equal(c, 1);
    assert_memory_equal(px, g, sizeof g);
    free(px);
    const char *pc = ew_test_tmpfile("c.png");
    assert_ok(ew_png_write_rgb8(pc, 5, 3, rgb));
    assert_ok(ew_png_read(pc, &w, &h, &c, &px));
    assert_int_equal(w, 5);
    assert_int_equal(h, 3);
    assert_int_equal(c, 3);
    assert_memory_equal(px, rgb, sizeof rgb);
    free(px);
    /* errors: bad sizes, not a PNG, a truncated PNG */
    assert_int_equal(ew_png_write_gray8(pg, 0, 4, g), EW_ERR_ARG);
    assert_int_equal(ew_test_write_bytes(ew_test_tmpfile("x.png"), "not a png at all", 16), 0);
    assert_int_equal(ew_png_read(ew_test_tmpfile("x.png"), &w, &h, &c, &px), EW_ERR_FORMAT);
    assert_null(px);
    size_t n = 0;
    unsigned char *b = ew_test_read_bytes(pc, &n);
    assert_non_null(b);
    assert_int_equal(ew_test_write_bytes(ew_test_tmpfile("t.png"), b, n / 2), 0);
    assert_int_not_equal(ew_png_read(ew_test_tmpfile("t.png"), &w, &h, &c, &px), EW_OK);
    assert_null(px);
    free(b);
    assert_int_equal(ew_png_write_gray8("/nonexistent-dir/a.png", 2, 2, g), EW_ERR_IO);
}

static void test_colormaps(void **state)
{
    (void)state;
    uint8_t c[3];
    /* matplotlib: viridis(0) = #440154, viridis(1) = #fde725, viridis(0.5) = #21918c;
     * magma(0) = #000004, magma(1) = #fcfdbf */
    ew_colormap_rgb(EW_CMAP_VIRIDIS, 0, c);
    assert_true(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54);
    ew_colormap_rgb(EW_CMAP_VIRIDIS, 1, c);
    assert_true(c[0] == 0xfd && c[1] == 0xe7 && c[2] == 0x25);
    ew_colormap_rgb(EW_CMAP_VIRIDIS, 128.0 / 255.0, c);
    assert_true(c[0] == 0x21 && c[1] == 0x91 && c[2] == 0x8c);
    ew_colormap_rgb(EW_CMAP_MAGMA, 0, c);
    assert_true(c[0] == 0x00 && c[1] == 0x00 && c[2] == 0x04);
    ew_colormap_rgb(EW_CMAP_MAGMA, 2.0, c); /* clamped */
    assert_true(c[0] == 0xfc && c[1] == 0xfd && c[2] == 0xbf);
    ew_colormap_rgb(EW_CMAP_GRAY, 0.5, c);
    assert_true(c[0] == 128 && c[1] == 128 && c[2] == 128);
    ew_colormap_rgb(EW_CMAP_GRAY, NAN, c);
    assert_int_equal(c[0], 0);
    /* perceptual maps get monotonically lighter: sum of channels grows */
    for (int m = EW_CMAP_VIRIDIS; m <= EW_CMAP_MAGMA; m++) {
        int prev = -1;
        for (int i = 0; i < 256; i += 15) {
            ew_colormap_rgb((ew_colormap_t)m, i / 255.0, c);
            int l = 2 * c[0] + 5 * c[1] + c[2]; /* rough luminance */
            assert_true(l > prev);
            prev = l;
        }
    }
}

static void test_image_mapping(void **state)
{
    (void)state;
    /* 101 values 0..100: percentiles 10 and 90 clip to 10 and 90 */
    float d[101];
    for (int i = 0; i < 101; i++) d[i] = (float)i;
    uint8_t rgb[101 * 3], mask[101] = {0};
    ew_image_options_t o = ew_image_options_default();
    o.colormap = EW_CMAP_GRAY;
    o.clip_lo = 10;
    o.clip_hi = 90;
    assert_ok(ew_image_to_rgb(d, 101, 1, NULL, &o, rgb));
    assert_int_equal(rgb[3 * 5], 0);
    assert_int_equal(rgb[3 * 10], 0);
    assert_int_equal(rgb[3 * 30], 64); /* (30-10)/80 * 255 = 63.75 -> 64 */
    assert_int_equal(rgb[3 * 90], 255);
    assert_int_equal(rgb[3 * 99], 255);
    /* masked and NaN pixels get the mask colour; masked values do not move the range */
    mask[0] = 2;
    d[0] = 1e9f;
    d[1] = NAN;
    o.clip_lo = 0;
    o.clip_hi = 100;
    o.mask_rgb[0] = 255;
    o.mask_rgb[1] = 0;
    o.mask_rgb[2] = 255;
    assert_ok(ew_image_to_rgb(d, 101, 1, mask, &o, rgb));
    assert_true(rgb[0] == 255 && rgb[1] == 0 && rgb[2] == 255);
    assert_true(rgb[3] == 255 && rgb[4] == 0);
    assert_int_equal(rgb[3 * 100], 255);
    assert_int_equal(rgb[3 * 40], 99); /* (40 - 2) / 98 * 255 = 98.9 */
    o.mask_threshold = 3; /* code-2 pixel now shown: it is the maximum */
    assert_ok(ew_image_to_rgb(d, 101, 1, mask, &o, rgb));
    assert_int_equal(rgb[0], 255);
    assert_int_equal(rgb[3 * 100], 0); /* 100 << 1e9 */

    /* log scaling: 1, 10, 100, 1000 evenly spaced; 0 goes to the bottom */
    float lg[5] = {1, 10, 100, 1000, 0};
    o = ew_image_options_default();
    o.colormap = EW_CMAP_GRAY;
    o.scaling = EW_SCALE_LOG;
    uint8_t r5[15];
    assert_ok(ew_image_to_rgb(lg, 5, 1, NULL, &o, r5));
    assert_int_equal(r5[0], 0);
    assert_int_equal(r5[3], 85);
    assert_int_equal(r5[6], 170);
    assert_int_equal(r5[9], 255);
    assert_int_equal(r5[12], 0);
    /* fixed range */
    o.fixed_range = 1;
    o.vmin = 10;
    o.vmax = 100;
    assert_ok(ew_image_to_rgb(lg, 5, 1, NULL, &o, r5));
    assert_int_equal(r5[0], 0);
    assert_int_equal(r5[6], 255);
    o.vmin = 0;
    assert_int_equal(ew_image_to_rgb(lg, 5, 1, NULL, &o, r5), EW_ERR_ARG);
    o = ew_image_options_default();
    o.clip_lo = 60;
    o.clip_hi = 50;
    assert_int_equal(ew_image_to_rgb(lg, 5, 1, NULL, &o, r5), EW_ERR_ARG);
    /* constant image: no division by zero */
    float k[4] = {3, 3, 3, 3};
    assert_ok(ew_image_to_rgb(k, 2, 2, NULL, NULL, r5));

    /* written image reads back with the right size and colours */
    float img[6 * 4];
    for (int i = 0; i < 24; i++) img[i] = (float)i;
    const char *path = ew_test_tmpfile("img.png");
    assert_ok(ew_png_write_image(path, img, 6, 4, NULL, NULL));
    int w, h, c;
    uint8_t *px;
    assert_ok(ew_png_read(path, &w, &h, &c, &px));
    assert_true(w == 6 && h == 4 && c == 3);
    assert_true(px[0] == 0x44 && px[1] == 0x01 && px[2] == 0x54);
    assert_true(px[69] == 0xfd && px[70] == 0xe7 && px[71] == 0x25);
    free(px);
}

static void test_font(void **state)
{
    (void)state;
    const uint8_t *one = ew_font_glyph('1');
    uint8_t want[7] = {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E};
    assert_memory_equal(one, want, 7);
    assert_ptr_equal(ew_font_glyph('\x01'), ew_font_glyph('?'));
    assert_int_equal(ew_text_width("abc", 2), 36);
    /* draw 'L' at scale 2 and compare with its glyph */
    uint8_t img[20 * 20 * 3];
    memset(img, 0, sizeof img);
    const uint8_t white[3] = {255, 255, 255};
    ew_draw_text(img, 20, 20, 3, 2, "L", white, 2);
    const uint8_t *L = ew_font_glyph('L');
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) {
            int gx = (x - 3) / 2, gy = (y - 2) / 2, on = 0;
            if (x >= 3 && y >= 2 && gx < 5 && gy < 7) on = (L[gy] >> (4 - gx)) & 1;
            assert_int_equal(img[3 * (y * 20 + x)] == 255, on);
        }
    /* vertical text has the same number of lit pixels, rotated: 'L' foot at the right... */
    uint8_t v[20 * 20 * 3];
    memset(v, 0, sizeof v);
    ew_draw_text_vertical(v, 20, 20, 0, 0, "L", white, 1);
    int lit = 0, lit_v = 0;
    for (int i = 0; i < 20 * 20; i++) {
        lit += img[3 * i] == 255;
        lit_v += v[3 * i] == 255;
    }
    assert_int_equal(lit_v * 4, lit);
    /* rotated CCW: glyph (row r, col c) -> (x = r, y = 5 - c); L's vertical bar (col 0) is the bottom row y = 5 */
    for (int r = 0; r < 7; r++) assert_int_equal(v[3 * (5 * 20 + r)], 255);
    /* clipping at the edges does not write outside */
    ew_draw_text(img, 20, 20, 15, 15, "WWW", white, 3);
    ew_draw_text(img, 20, 20, -30, -30, "W", white, 1);
}

static void test_montage(void **state)
{
    (void)state;
    const int n = 5, w = 8, h = 6;
    float imgs[5 * 8 * 6];
    for (int k = 0; k < n; k++)
        for (int i = 0; i < w * h; i++) imgs[k * w * h + i] = (float)(k + 1) * (float)i;
    const char *labels[5] = {"a", "b", NULL, "d", "a very long label that does not fit"};
    const char *path = ew_test_tmpfile("m.png");
    ew_image_options_t o = ew_image_options_default();
    o.colormap = EW_CMAP_GRAY;
    assert_ok(ew_png_montage(path, imgs, n, w, h, NULL, 0, 3, labels, 0, &o));
    int W, H, c;
    uint8_t *px;
    assert_ok(ew_png_read(path, &W, &H, &c, &px));
    /* 5 tiles -> 3 columns, 2 rows of 24 x 18 tiles with 2-pixel gaps */
    assert_int_equal(W, 3 * (24 + 2) + 2);
    assert_int_equal(H, 2 * (18 + 2) + 2);
    /* tile 2 (no label) per-tile scaled: bottom-right pixel is the maximum (255), top-left 0 */
    int ox = 2 + 2 * 26, oy = 2;
    assert_int_equal(px[3 * ((oy + 17) * W + ox + 23)], 255);
    assert_int_equal(px[3 * (oy * W + ox)], 0);
    /* the gap keeps the background */
    assert_int_equal(px[3 * (0 * W + 0)], 32);
    free(px);
    /* shared scale: tile 0's maximum is 1/5 of the global maximum */
    assert_ok(ew_png_montage(path, imgs, n, w, h, NULL, 5, 1, NULL, 1, &o));
    assert_ok(ew_png_read(path, &W, &H, &c, &px));
    assert_int_equal(W, 5 * 10 + 2);
    assert_int_equal(px[3 * ((2 + 5) * W + 2 + 7)], (int)(47.0 / 235.0 * 255.0 + 0.5));
    free(px);
    assert_int_equal(ew_png_montage(path, imgs, 0, w, h, NULL, 0, 1, NULL, 0, NULL), EW_ERR_ARG);
}

static int count_color(const uint8_t *px, int n, const uint8_t col[3])
{
    int k = 0;
    for (int i = 0; i < n; i++) k += px[3 * i] == col[0] && px[3 * i + 1] == col[1] && px[3 * i + 2] == col[2];
    return k;
}

static void test_plots(void **state)
{
    (void)state;
    double x[100], y1[100], y2[100];
    for (int i = 0; i < 100; i++) {
        x[i] = 0.005 * i;
        y1[i] = exp(-x[i] * x[i] * 40);
        y2[i] = 0.5 * cos(10 * x[i]) + 0.5;
    }
    ew_plot_t *p = ew_plot_new(640, 480, "Fourier shell correlation", "resolution (1/A)", "FSC");
    assert_non_null(p);
    assert_ok(ew_plot_add_series(p, x, y1, 100, "half maps"));
    assert_ok(ew_plot_add_series(p, x, y2, 100, "model"));
    assert_ok(ew_plot_hline(p, 0.143, "0.143"));
    assert_ok(ew_plot_vline(p, 0.25, "4 A"));
    const char *path = ew_test_tmpfile("fsc.png");
    assert_ok(ew_plot_write_png(p, path));
    int W, H, c;
    uint8_t *px;
    assert_ok(ew_png_read(path, &W, &H, &c, &px));
    assert_true(W == 640 && H == 480 && c == 3);
    /* both series colours (tab10 blue and orange) are drawn, plus black text/axes */
    const uint8_t blue[3] = {31, 119, 180}, orange[3] = {255, 127, 14}, black[3] = {0, 0, 0};
    assert_true(count_color(px, W * H, blue) > 300);
    assert_true(count_color(px, W * H, orange) > 300);
    assert_true(count_color(px, W * H, black) > 1000);
    free(px);
    ew_plot_free(p);

    /* log y: a decaying curve spans the decades; zeros and NaN break it without harm */
    p = ew_plot_new(400, 300, "loss", "epoch", NULL);
    double l[50];
    for (int i = 0; i < 50; i++) l[i] = 100.0 * pow(0.8, i);
    l[10] = 0;
    l[11] = NAN;
    ew_plot_set_logy(p, 1);
    assert_ok(ew_plot_add_series(p, NULL, l, 50, "train"));
    uint8_t *rgb = malloc(400 * 300 * 3);
    assert_ok(ew_plot_render(p, rgb));
    assert_true(count_color(rgb, 400 * 300, blue) > 100);
    /* a y range that excludes everything still renders (clipped) */
    ew_plot_set_yrange(p, 1e6, 1e7);
    assert_ok(ew_plot_render(p, rgb));
    assert_int_equal(count_color(rgb, 400 * 300, blue), 15 * 2); /* only the legend swatch */
    ew_plot_set_yrange(p, -1, 1); /* log axis with ymin <= 0 */
    assert_int_equal(ew_plot_render(p, rgb), EW_ERR_ARG);
    ew_plot_free(p);

    /* histogram: counts of a known sample; the plot shows its colour */
    double v[1000];
    for (int i = 0; i < 1000; i++) v[i] = (i % 10) + 0.5;
    p = ew_plot_new(320, 240, "histogram", "value", "count");
    assert_ok(ew_plot_add_histogram(p, v, 1000, 10, 0, 10, "data"));
    /* the step curve's y values are the bin counts, 100 each */
    assert_ok(ew_plot_render(p, rgb));
    assert_true(count_color(rgb, 320 * 240, blue) > 100);
    assert_int_equal(ew_plot_add_histogram(p, v, 1000, 0, 0, 10, NULL), EW_ERR_ARG);
    ew_plot_free(p);

    /* empty plot, bad sizes, huge values */
    p = ew_plot_new(320, 240, NULL, NULL, NULL);
    assert_int_equal(ew_plot_render(p, rgb), EW_ERR_ARG);
    double hx[3] = {0, 1, 2}, hy[3] = {1e300, -1e300, 1e300};
    assert_ok(ew_plot_add_series(p, hx, hy, 3, NULL));
    assert_ok(ew_plot_render(p, rgb));
    ew_plot_set_yrange(p, 0, 1); /* lines far outside get clipped, not walked */
    assert_ok(ew_plot_render(p, rgb));
    ew_plot_free(p);
    assert_null(ew_plot_new(10, 10, NULL, NULL, NULL));
    free(rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_roundtrip), cmocka_unit_test(test_colormaps), cmocka_unit_test(test_image_mapping),
        cmocka_unit_test(test_font),          cmocka_unit_test(test_montage),   cmocka_unit_test(test_plots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
