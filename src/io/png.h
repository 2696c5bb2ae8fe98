/* ewald io: figures as PNG (libpng) — images with perceptual colormaps,
 * montages of many patterns with labels, line plots and histograms.
 *
 *     ew_image_options_t o = ew_image_options_default();
 *     o.scaling = EW_SCALE_LOG;  o.clip_hi = 99.5;
 *     ew_png_write_image("pattern.png", data, w, h, mask, &o);
 *
 *     ew_plot_t *p = ew_plot_new(800, 500, "FSC", "resolution (1/A)", "FSC");
 *     ew_plot_add_series(p, s, fsc, n, "half maps");
 *     ew_plot_hline(p, 0.143, "0.143");
 *     ew_plot_write_png(p, "fsc.png");
 *     ew_plot_free(p);
 *
 * Colormaps: viridis and magma are matplotlib's 256-entry tables (van der
 * Walt & Smith, CC0; matplotlib lib/matplotlib/_cm_listed.py), rounded to
 * 8 bits. Text uses a built-in 5x7 pixel font (printable ASCII).
 * All writers write to a temporary name and rename; on error no file is
 * left and the message names the file.
 */
#ifndef EW_IO_PNG_H
#define EW_IO_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ------------------------------------------------------------ raw PNG */

/* Write 8-bit grayscale (w * h bytes, row-major) / RGB (w * h * 3 bytes). */
ew_status_t ew_png_write_gray8(const char *path, int w, int h, const uint8_t *px);
ew_status_t ew_png_write_rgb8(const char *path, int w, int h, const uint8_t *rgb);

/* Read a PNG as 8-bit gray (*channels = 1) or RGB (*channels = 3; alpha is
 * composited onto black). *px is malloc'd (caller frees with free()).
 * On error *px is NULL. */
ew_status_t ew_png_read(const char *path, int *w, int *h, int *channels, uint8_t **px);

/* ------------------------------------------------------ colour mapping */

typedef enum { EW_CMAP_GRAY = 0, EW_CMAP_VIRIDIS, EW_CMAP_MAGMA } ew_colormap_t;
typedef enum { EW_SCALE_LINEAR = 0, EW_SCALE_LOG } ew_scaling_t;

typedef struct {
    ew_scaling_t scaling;   /* LOG maps log10(v); v <= 0 goes to the low end */
    ew_colormap_t colormap;
    double clip_lo, clip_hi; /* percentiles (0..100) of the unmasked (positive, for LOG)
                                values that map to the two ends of the colormap */
    int fixed_range;        /* 1: use vmin/vmax (data units) instead of percentiles */
    double vmin, vmax;
    int mask_threshold;     /* pixels with mask >= this (>= 1) are drawn in mask_rgb */
    uint8_t mask_rgb[3];
} ew_image_options_t;

/* Linear, viridis, 0..100 percentiles, mask >= 1 drawn grey (128,128,128). */
ew_image_options_t ew_image_options_default(void);

/* The RGB colour of t in [0, 1] (clamped; NaN gives 0) in a colormap. */
void ew_colormap_rgb(ew_colormap_t cmap, double t, uint8_t rgb[3]);

/* Map a float image (w * h, row-major) to RGB (w * h * 3) with opts (NULL:
 * defaults). mask (may be NULL) marks pixels drawn in the mask colour;
 * NaN/Inf pixels are drawn in it too. EW_ERR_ARG on bad sizes/options. */
ew_status_t ew_image_to_rgb(const float *data, int w, int h, const uint8_t *mask, const ew_image_options_t *opts,
                            uint8_t *rgb);

/* ew_image_to_rgb then ew_png_write_rgb8. */
ew_status_t ew_png_write_image(const char *path, const float *data, int w, int h, const uint8_t *mask,
                               const ew_image_options_t *opts);

/* A grid of n images (n, h, w) — cols per row (<= 0: about sqrt(n)),
 * each tile zoom x zoom pixels per image pixel (zoom >= 1), 2-pixel gaps.
 * labels (n strings, may be NULL; a NULL entry is skipped) are drawn at
 * each tile's top-left. shared_scale: one colour range for all tiles
 * (percentiles over all), else per tile. mask (h * w, may be NULL) applies
 * to every tile. */
ew_status_t ew_png_montage(const char *path, const float *images, int n, int w, int h, const uint8_t *mask,
                           int cols, int zoom, const char *const *labels, int shared_scale,
                           const ew_image_options_t *opts);

/* ---------------------------------------------------------------- text */

/* Draw text (printable ASCII; others drawn as '?') into an RGB image with
 * its top-left at (x, y), each font pixel scale x scale, clipped to the
 * image. The font cell is 6 x 8 pixels (5 x 7 glyph + spacing). */
void ew_draw_text(uint8_t *rgb, int w, int h, int x, int y, const char *text, const uint8_t col[3], int scale);
/* The same, rotated 90 degrees counter-clockwise (reads bottom to top);
 * (x, y) is the top-left of the rotated text's bounding box. */
void ew_draw_text_vertical(uint8_t *rgb, int w, int h, int x, int y, const char *text, const uint8_t col[3],
                           int scale);
/* Width in pixels of text drawn at scale (6 * scale per character). */
int ew_text_width(const char *text, int scale);
/* The 7 rows of a character's glyph, low 5 bits, bit 4 = leftmost. */
const uint8_t *ew_font_glyph(char c);

/* --------------------------------------------------------------- plots */

typedef struct ew_plot ew_plot_t;

/* A new plot of width x height pixels (>= 160 x 120) with title and axis
 * labels (each may be NULL). Returns NULL (message set) on bad sizes or
 * out of memory. */
ew_plot_t *ew_plot_new(int width, int height, const char *title, const char *xlabel, const char *ylabel);
/* Logarithmic y axis (non-positive y values break the line). */
void ew_plot_set_logy(ew_plot_t *p, int on);
/* Fix an axis range (xmin < xmax); by default ranges fit the data. */
void ew_plot_set_xrange(ew_plot_t *p, double xmin, double xmax);
void ew_plot_set_yrange(ew_plot_t *p, double ymin, double ymax);
/* Add a curve of n points (x may be NULL: 0, 1, ..., n-1); data copied.
 * Non-finite points break the line. label may be NULL (not in legend). */
ew_status_t ew_plot_add_series(ew_plot_t *p, const double *x, const double *y, size_t n, const char *label);
/* Add a histogram of n values in nbins bins over [lo, hi) (lo >= hi: the
 * data's range) drawn as a step curve of counts. */
ew_status_t ew_plot_add_histogram(ew_plot_t *p, const double *values, size_t n, int nbins, double lo, double hi,
                                  const char *label);
/* Vertical / horizontal reference lines (dashed), optionally labelled. */
ew_status_t ew_plot_vline(ew_plot_t *p, double x, const char *label);
ew_status_t ew_plot_hline(ew_plot_t *p, double y, const char *label);
/* Render to RGB (width * height * 3, caller-provided) or to a PNG file.
 * EW_ERR_ARG if there is nothing to plot or a range is empty. */
ew_status_t ew_plot_render(const ew_plot_t *p, uint8_t *rgb);
ew_status_t ew_plot_write_png(const ew_plot_t *p, const char *path);
/* Free (NULL is a no-op). */
void ew_plot_free(ew_plot_t *p);

#endif
