/* ewald io: PNG writing/reading (libpng simplified API), colour mapping,
 * montages and plots (see png.h). */
#include "io/png.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* matplotlib's viridis and magma (lib/matplotlib/_cm_listed.py, CC0),
 * 256 RGB entries each, rounded to 8 bits. */
static const uint8_t ew_cmap_viridis[256 * 3] = {
    68, 1, 84, 68, 2, 86, 69, 4, 87, 69, 5, 89, 70, 7, 90, 70, 8, 92, 70, 10, 93, 70, 11, 94,
    71, 13, 96, 71, 14, 97, 71, 16, 99, 71, 17, 100, 71, 19, 101, 72, 20, 103, 72, 22, 104, 72, 23, 105,
    72, 24, 106, 72, 26, 108, 72, 27, 109, 72, 28, 110, 72, 29, 111, 72, 31, 112, 72, 32, 113, 72, 33, 115,
    72, 35, 116, 72, 36, 117, 72, 37, 118, 72, 38, 119, 72, 40, 120, 72, 41, 121, 71, 42, 122, 71, 44, 122,
    71, 45, 123, 71, 46, 124, 71, 47, 125, 70, 48, 126, 70, 50, 126, 70, 51, 127, 70, 52, 128, 69, 53, 129,
    69, 55, 129, 69, 56, 130, 68, 57, 131, 68, 58, 131, 68, 59, 132, 67, 61, 132, 67, 62, 133, 66, 63, 133,
    66, 64, 134, 66, 65, 134, 65, 66, 135, 65, 68, 135, 64, 69, 136, 64, 70, 136, 63, 71, 136, 63, 72, 137,
    62, 73, 137, 62, 74, 137, 62, 76, 138, 61, 77, 138, 61, 78, 138, 60, 79, 138, 60, 80, 139, 59, 81, 139,
    59, 82, 139, 58, 83, 139, 58, 84, 140, 57, 85, 140, 57, 86, 140, 56, 88, 140, 56, 89, 140, 55, 90, 140,
    55, 91, 141, 54, 92, 141, 54, 93, 141, 53, 94, 141, 53, 95, 141, 52, 96, 141, 52, 97, 141, 51, 98, 141,
    51, 99, 141, 50, 100, 142, 50, 101, 142, 49, 102, 142, 49, 103, 142, 49, 104, 142, 48, 105, 142, 48, 106, 142,
    47, 107, 142, 47, 108, 142, 46, 109, 142, 46, 110, 142, 46, 111, 142, 45, 112, 142, 45, 113, 142, 44, 113, 142,
    44, 114, 142, 44, 115, 142, 43, 116, 142, 43, 117, 142, 42, 118, 142, 42, 119, 142, 42, 120, 142, 41, 121, 142,
    41, 122, 142, 41, 123, 142, 40, 124, 142, 40, 125, 142, 39, 126, 142, 39, 127, 142, 39, 128, 142, 38, 129, 142,
    38, 130, 142, 38, 130, 142, 37, 131, 142, 37, 132, 142, 37, 133, 142, 36, 134, 142, 36, 135, 142, 35, 136, 142,
    35, 137, 142, 35, 138, 141, 34, 139, 141, 34, 140, 141, 34, 141, 141, 33, 142, 141, 33, 143, 141, 33, 144, 141,
    33, 145, 140, 32, 146, 140, 32, 146, 140, 32, 147, 140, 31, 148, 140, 31, 149, 139, 31, 150, 139, 31, 151, 139,
    31, 152, 139, 31, 153, 138, 31, 154, 138, 30, 155, 138, 30, 156, 137, 30, 157, 137, 31, 158, 137, 31, 159, 136,
    31, 160, 136, 31, 161, 136, 31, 161, 135, 31, 162, 135, 32, 163, 134, 32, 164, 134, 33, 165, 133, 33, 166, 133,
    34, 167, 133, 34, 168, 132, 35, 169, 131, 36, 170, 131, 37, 171, 130, 37, 172, 130, 38, 173, 129, 39, 173, 129,
    40, 174, 128, 41, 175, 127, 42, 176, 127, 44, 177, 126, 45, 178, 125, 46, 179, 124, 47, 180, 124, 49, 181, 123,
    50, 182, 122, 52, 182, 121, 53, 183, 121, 55, 184, 120, 56, 185, 119, 58, 186, 118, 59, 187, 117, 61, 188, 116,
    63, 188, 115, 64, 189, 114, 66, 190, 113, 68, 191, 112, 70, 192, 111, 72, 193, 110, 74, 193, 109, 76, 194, 108,
    78, 195, 107, 80, 196, 106, 82, 197, 105, 84, 197, 104, 86, 198, 103, 88, 199, 101, 90, 200, 100, 92, 200, 99,
    94, 201, 98, 96, 202, 96, 99, 203, 95, 101, 203, 94, 103, 204, 92, 105, 205, 91, 108, 205, 90, 110, 206, 88,
    112, 207, 87, 115, 208, 86, 117, 208, 84, 119, 209, 83, 122, 209, 81, 124, 210, 80, 127, 211, 78, 129, 211, 77,
    132, 212, 75, 134, 213, 73, 137, 213, 72, 139, 214, 70, 142, 214, 69, 144, 215, 67, 147, 215, 65, 149, 216, 64,
    152, 216, 62, 155, 217, 60, 157, 217, 59, 160, 218, 57, 162, 218, 55, 165, 219, 54, 168, 219, 52, 170, 220, 50,
    173, 220, 48, 176, 221, 47, 178, 221, 45, 181, 222, 43, 184, 222, 41, 186, 222, 40, 189, 223, 38, 192, 223, 37,
    194, 223, 35, 197, 224, 33, 200, 224, 32, 202, 225, 31, 205, 225, 29, 208, 225, 28, 210, 226, 27, 213, 226, 26,
    216, 226, 25, 218, 227, 25, 221, 227, 24, 223, 227, 24, 226, 228, 24, 229, 228, 25, 231, 228, 25, 234, 229, 26,
    236, 229, 27, 239, 229, 28, 241, 229, 29, 244, 230, 30, 246, 230, 32, 248, 230, 33, 251, 231, 35, 253, 231, 37,
};
static const uint8_t ew_cmap_magma[256 * 3] = {
    0, 0, 4, 1, 0, 5, 1, 1, 6, 1, 1, 8, 2, 1, 9, 2, 2, 11, 2, 2, 13, 3, 3, 15,
    3, 3, 18, 4, 4, 20, 5, 4, 22, 6, 5, 24, 6, 5, 26, 7, 6, 28, 8, 7, 30, 9, 7, 32,
    10, 8, 34, 11, 9, 36, 12, 9, 38, 13, 10, 41, 14, 11, 43, 16, 11, 45, 17, 12, 47, 18, 13, 49,
    19, 13, 52, 20, 14, 54, 21, 14, 56, 22, 15, 59, 24, 15, 61, 25, 16, 63, 26, 16, 66, 28, 16, 68,
    29, 17, 71, 30, 17, 73, 32, 17, 75, 33, 17, 78, 34, 17, 80, 36, 18, 83, 37, 18, 85, 39, 18, 88,
    41, 17, 90, 42, 17, 92, 44, 17, 95, 45, 17, 97, 47, 17, 99, 49, 17, 101, 51, 16, 103, 52, 16, 105,
    54, 16, 107, 56, 16, 108, 57, 15, 110, 59, 15, 112, 61, 15, 113, 63, 15, 114, 64, 15, 116, 66, 15, 117,
    68, 15, 118, 69, 16, 119, 71, 16, 120, 73, 16, 120, 74, 16, 121, 76, 17, 122, 78, 17, 123, 79, 18, 123,
    81, 18, 124, 82, 19, 124, 84, 19, 125, 86, 20, 125, 87, 21, 126, 89, 21, 126, 90, 22, 126, 92, 22, 127,
    93, 23, 127, 95, 24, 127, 96, 24, 128, 98, 25, 128, 100, 26, 128, 101, 26, 128, 103, 27, 128, 104, 28, 129,
    106, 28, 129, 107, 29, 129, 109, 29, 129, 110, 30, 129, 112, 31, 129, 114, 31, 129, 115, 32, 129, 117, 33, 129,
    118, 33, 129, 120, 34, 129, 121, 34, 130, 123, 35, 130, 124, 35, 130, 126, 36, 130, 128, 37, 130, 129, 37, 129,
    131, 38, 129, 132, 38, 129, 134, 39, 129, 136, 39, 129, 137, 40, 129, 139, 41, 129, 140, 41, 129, 142, 42, 129,
    144, 42, 129, 145, 43, 129, 147, 43, 128, 148, 44, 128, 150, 44, 128, 152, 45, 128, 153, 45, 128, 155, 46, 127,
    156, 46, 127, 158, 47, 127, 160, 47, 127, 161, 48, 126, 163, 48, 126, 165, 49, 126, 166, 49, 125, 168, 50, 125,
    170, 51, 125, 171, 51, 124, 173, 52, 124, 174, 52, 123, 176, 53, 123, 178, 53, 123, 179, 54, 122, 181, 54, 122,
    183, 55, 121, 184, 55, 121, 186, 56, 120, 188, 57, 120, 189, 57, 119, 191, 58, 119, 192, 58, 118, 194, 59, 117,
    196, 60, 117, 197, 60, 116, 199, 61, 115, 200, 62, 115, 202, 62, 114, 204, 63, 113, 205, 64, 113, 207, 64, 112,
    208, 65, 111, 210, 66, 111, 211, 67, 110, 213, 68, 109, 214, 69, 108, 216, 69, 108, 217, 70, 107, 219, 71, 106,
    220, 72, 105, 222, 73, 104, 223, 74, 104, 224, 76, 103, 226, 77, 102, 227, 78, 101, 228, 79, 100, 229, 80, 100,
    231, 82, 99, 232, 83, 98, 233, 84, 98, 234, 86, 97, 235, 87, 96, 236, 88, 96, 237, 90, 95, 238, 91, 94,
    239, 93, 94, 240, 95, 94, 241, 96, 93, 242, 98, 93, 242, 100, 92, 243, 101, 92, 244, 103, 92, 244, 105, 92,
    245, 107, 92, 246, 108, 92, 246, 110, 92, 247, 112, 92, 247, 114, 92, 248, 116, 92, 248, 118, 92, 249, 120, 93,
    249, 121, 93, 249, 123, 93, 250, 125, 94, 250, 127, 94, 250, 129, 95, 251, 131, 95, 251, 133, 96, 251, 135, 97,
    252, 137, 97, 252, 138, 98, 252, 140, 99, 252, 142, 100, 252, 144, 101, 253, 146, 102, 253, 148, 103, 253, 150, 104,
    253, 152, 105, 253, 154, 106, 253, 155, 107, 254, 157, 108, 254, 159, 109, 254, 161, 110, 254, 163, 111, 254, 165, 113,
    254, 167, 114, 254, 169, 115, 254, 170, 116, 254, 172, 118, 254, 174, 119, 254, 176, 120, 254, 178, 122, 254, 180, 123,
    254, 182, 124, 254, 183, 126, 254, 185, 127, 254, 187, 129, 254, 189, 130, 254, 191, 132, 254, 193, 133, 254, 194, 135,
    254, 196, 136, 254, 198, 138, 254, 200, 140, 254, 202, 141, 254, 204, 143, 254, 205, 144, 254, 207, 146, 254, 209, 148,
    254, 211, 149, 254, 213, 151, 254, 215, 153, 254, 216, 154, 253, 218, 156, 253, 220, 158, 253, 222, 160, 253, 224, 161,
    253, 226, 163, 253, 227, 165, 253, 229, 167, 253, 231, 169, 253, 233, 170, 253, 235, 172, 252, 236, 174, 252, 238, 176,
    252, 240, 178, 252, 242, 180, 252, 244, 182, 252, 246, 184, 252, 247, 185, 252, 249, 187, 252, 251, 189, 252, 253, 191,
};

/* ------------------------------------------------------------- raw PNG */

static ew_status_t write_png(const char *path, int w, int h, int channels, const uint8_t *px)
{
    if (w <= 0 || h <= 0 || w > (1 << 20) || h > (1 << 20))
        return ew_fail(EW_ERR_ARG, "%s: image size %d x %d is not supported", path, w, h);
    char *tmp = ew_temp_name(path);
    if (!tmp) return EW_ERR_NOMEM;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&img, tmp, 0, px, (png_int_32)(w * channels), NULL)) {
        ew_status_t st = ew_fail(EW_ERR_IO, "%s: PNG write failed: %s", path, img.message);
        png_image_free(&img);
        remove(tmp);
        free(tmp);
        return st;
    }
    return ew_commit_rename(tmp, path);
}

ew_status_t ew_png_write_gray8(const char *path, int w, int h, const uint8_t *px) { return write_png(path, w, h, 1, px); }

ew_status_t ew_png_write_rgb8(const char *path, int w, int h, const uint8_t *rgb) { return write_png(path, w, h, 3, rgb); }

ew_status_t ew_png_read(const char *path, int *w, int *h, int *channels, uint8_t **px)
{
    *px = NULL;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        ew_status_t st = ew_fail(EW_ERR_FORMAT, "%s: cannot read PNG: %s", path, img.message);
        png_image_free(&img);
        return st;
    }
    int color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
    img.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    size_t n;
    if (ew_size_mul3(img.width, img.height, color ? 3 : 1, &n) != EW_OK || img.width > (1u << 20) ||
        img.height > (1u << 20)) {
        png_image_free(&img);
        return ew_fail(EW_ERR_FORMAT, "%s: PNG size %u x %u is not supported", path, img.width, img.height);
    }
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        png_image_free(&img);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    }
    png_color black = {0, 0, 0};
    if (!png_image_finish_read(&img, &black, buf, 0, NULL)) {
        ew_status_t st = ew_fail(EW_ERR_FORMAT, "%s: PNG decode failed: %s", path, img.message);
        png_image_free(&img);
        free(buf);
        return st;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    *channels = color ? 3 : 1;
    *px = buf;
    return EW_OK;
}

/* ------------------------------------------------------ colour mapping */

ew_image_options_t ew_image_options_default(void)
{
    ew_image_options_t o;
    memset(&o, 0, sizeof o);
    o.scaling = EW_SCALE_LINEAR;
    o.colormap = EW_CMAP_VIRIDIS;
    o.clip_lo = 0.0;
    o.clip_hi = 100.0;
    o.mask_threshold = 1;
    o.mask_rgb[0] = o.mask_rgb[1] = o.mask_rgb[2] = 128;
    return o;
}

void ew_colormap_rgb(ew_colormap_t cmap, double t, uint8_t rgb[3])
{
    if (!(t > 0)) t = 0; /* also NaN */
    if (t > 1) t = 1;
    int i = (int)(t * 255.0 + 0.5);
    if (cmap == EW_CMAP_VIRIDIS || cmap == EW_CMAP_MAGMA) {
        const uint8_t *tab = cmap == EW_CMAP_VIRIDIS ? ew_cmap_viridis : ew_cmap_magma;
        memcpy(rgb, tab + 3 * i, 3);
    } else {
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)i;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double percentile(const float *sorted, size_t n, double pct)
{
    double pos = pct / 100.0 * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n) return sorted[n - 1];
    double f = pos - (double)i;
    return sorted[i] * (1 - f) + sorted[i + 1] * f;
}

static int pixel_valid(const ew_image_options_t *o, const uint8_t *mask, size_t p, float v)
{
    if (mask && mask[p] >= o->mask_threshold) return 0;
    return isfinite(v);
}

static ew_status_t check_options(const ew_image_options_t *o)
{
    if (o->mask_threshold < 1) return ew_fail(EW_ERR_ARG, "image: mask_threshold %d must be >= 1", o->mask_threshold);
    if (o->fixed_range) {
        if (!(o->vmax > o->vmin) || !isfinite(o->vmin) || !isfinite(o->vmax))
            return ew_fail(EW_ERR_ARG, "image: range [%g, %g] is empty", o->vmin, o->vmax);
        if (o->scaling == EW_SCALE_LOG && !(o->vmin > 0))
            return ew_fail(EW_ERR_ARG, "image: log scaling needs vmin > 0 (got %g)", o->vmin);
    } else if (!(o->clip_lo >= 0 && o->clip_hi <= 100 && o->clip_lo < o->clip_hi)) {
        return ew_fail(EW_ERR_ARG, "image: clip percentiles %g, %g must satisfy 0 <= lo < hi <= 100", o->clip_lo,
                       o->clip_hi);
    }
    if (o->colormap < EW_CMAP_GRAY || o->colormap > EW_CMAP_MAGMA)
        return ew_fail(EW_ERR_ARG, "image: unknown colormap %d", (int)o->colormap);
    return EW_OK;
}

/* The colour range [lo, hi] (log10 units for LOG) of count values; the
 * mask applies to value i as mask[i % mask_period]. */
static ew_status_t color_range(const float *data, size_t count, const uint8_t *mask, size_t mask_period,
                               const ew_image_options_t *o, double *lo, double *hi)
{
    const int lg = o->scaling == EW_SCALE_LOG;
    if (o->fixed_range) {
        *lo = lg ? log10(o->vmin) : o->vmin;
        *hi = lg ? log10(o->vmax) : o->vmax;
        return EW_OK;
    }
    float *vals = ew_alloc_array(count ? count : 1, sizeof *vals);
    if (!vals) return EW_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        float v = data[i];
        if (!pixel_valid(o, mask, mask ? i % mask_period : 0, v)) continue;
        if (lg) {
            if (!(v > 0)) continue;
            v = log10f(v);
        }
        vals[n++] = v;
    }
    if (n == 0) {
        *lo = 0;
        *hi = 1;
    } else {
        qsort(vals, n, sizeof *vals, cmp_float);
        *lo = percentile(vals, n, o->clip_lo);
        *hi = percentile(vals, n, o->clip_hi);
    }
    if (!(*hi > *lo)) *hi = *lo + 1.0; /* a constant image maps to the low end */
    ew_free(vals);
    return EW_OK;
}

static void map_pixels(const float *data, size_t count, const uint8_t *mask, const ew_image_options_t *o, double lo,
                       double hi, uint8_t *rgb)
{
    const int lg = o->scaling == EW_SCALE_LOG;
    const double inv = 1.0 / (hi - lo);
    for (size_t i = 0; i < count; i++) {
        float v = data[i];
        uint8_t *c = rgb + 3 * i;
        if (!pixel_valid(o, mask, i, v)) {
            memcpy(c, o->mask_rgb, 3);
            continue;
        }
        double t = lg ? (v > 0 ? (log10((double)v) - lo) * inv : 0.0) : ((double)v - lo) * inv;
        ew_colormap_rgb(o->colormap, t, c);
    }
}

ew_status_t ew_image_to_rgb(const float *data, int w, int h, const uint8_t *mask, const ew_image_options_t *opts,
                            uint8_t *rgb)
{
    ew_image_options_t def = ew_image_options_default();
    const ew_image_options_t *o = opts ? opts : &def;
    if (w <= 0 || h <= 0) return ew_fail(EW_ERR_ARG, "image: size %d x %d is not positive", w, h);
    EW_TRY(check_options(o));
    size_t n = (size_t)w * (size_t)h;
    double lo, hi;
    EW_TRY(color_range(data, n, mask, n, o, &lo, &hi));
    map_pixels(data, n, mask, o, lo, hi, rgb);
    return EW_OK;
}

ew_status_t ew_png_write_image(const char *path, const float *data, int w, int h, const uint8_t *mask,
                               const ew_image_options_t *opts)
{
    if (w <= 0 || h <= 0) return ew_fail(EW_ERR_ARG, "%s: image size %d x %d is not positive", path, w, h);
    uint8_t *rgb = ew_alloc_array((size_t)w * (size_t)h, 3);
    if (!rgb) return EW_ERR_NOMEM;
    ew_status_t st = ew_image_to_rgb(data, w, h, mask, opts, rgb);
    if (st == EW_OK) st = ew_png_write_rgb8(path, w, h, rgb);
    else st = ew_fail_context(st, "%s", path);
    ew_free(rgb);
    return st;
}

ew_status_t ew_png_montage(const char *path, const float *images, int n, int w, int h, const uint8_t *mask,
                           int cols, int zoom, const char *const *labels, int shared_scale,
                           const ew_image_options_t *opts)
{
    ew_image_options_t def = ew_image_options_default();
    const ew_image_options_t *o = opts ? opts : &def;
    if (n <= 0 || w <= 0 || h <= 0 || zoom < 1 || zoom > 64)
        return ew_fail(EW_ERR_ARG, "%s: montage of %d images of %d x %d at zoom %d is not valid", path, n, w, h, zoom);
    EW_TRY(check_options(o));
    if (cols <= 0) cols = (int)ceil(sqrt((double)n));
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    const int gap = 2, tw = w * zoom, th = h * zoom;
    long long cw = (long long)cols * (tw + gap) + gap, chh = (long long)rows * (th + gap) + gap;
    if (cw > (1 << 20) || chh > (1 << 20))
        return ew_fail(EW_ERR_ARG, "%s: montage of %lld x %lld pixels is too large", path, cw, chh);
    size_t npix = (size_t)w * (size_t)h;
    uint8_t *canvas = ew_alloc_array((size_t)cw * (size_t)chh, 3);
    uint8_t *tile = ew_alloc_array(npix, 3);
    if (!canvas || !tile) {
        ew_free(canvas);
        ew_free(tile);
        return EW_ERR_NOMEM;
    }
    memset(canvas, 32, (size_t)cw * (size_t)chh * 3);
    double lo = 0, hi = 1;
    ew_status_t st = EW_OK;
    if (shared_scale) st = color_range(images, npix * (size_t)n, mask, npix, o, &lo, &hi);
    const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
    const int fs = tw >= 160 ? 2 : 1;
    for (int k = 0; k < n && st == EW_OK; k++) {
        const float *img = images + (size_t)k * npix;
        if (!shared_scale) st = color_range(img, npix, mask, npix, o, &lo, &hi);
        if (st != EW_OK) break;
        map_pixels(img, npix, mask, o, lo, hi, tile);
        int ox = gap + (k % cols) * (tw + gap), oy = gap + (k / cols) * (th + gap);
        for (int y = 0; y < th; y++)
            for (int x = 0; x < tw; x++)
                memcpy(canvas + 3 * ((size_t)(oy + y) * (size_t)cw + (size_t)(ox + x)),
                       tile + 3 * ((size_t)(y / zoom) * (size_t)w + (size_t)(x / zoom)), 3);
        if (labels && labels[k]) {
            /* white on a black shadow, cut to the characters that fit the tile */
            char buf[256];
            int maxc = (tw - 5) / (6 * fs);
            if (maxc > 255) maxc = 255;
            if (maxc > 0) {
                snprintf(buf, (size_t)maxc + 1, "%s", labels[k]);
                ew_draw_text(canvas, (int)cw, (int)chh, ox + 3, oy + 3, buf, black, fs);
                ew_draw_text(canvas, (int)cw, (int)chh, ox + 2, oy + 2, buf, white, fs);
            }
        }
    }
    if (st == EW_OK) st = ew_png_write_rgb8(path, (int)cw, (int)chh, canvas);
    else st = ew_fail_context(st, "%s", path);
    ew_free(canvas);
    ew_free(tile);
    return st;
}

/* --------------------------------------------------------------- plots */

enum { K_LINE, K_VLINE, K_HLINE };

typedef struct {
    int kind;
    double *x, *y;
    size_t n;
    double v; /* position of a reference line */
    char *label;
    uint8_t col[3];
} series_t;

struct ew_plot {
    int w, h;
    char *title, *xlabel, *ylabel;
    int logy;
    int fixx, fixy;
    double xr[2], yr[2];
    series_t *s;
    size_t ns, ncolor;
};

/* matplotlib's "tab10" categorical colours */
static const uint8_t tab10[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                                     {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

ew_plot_t *ew_plot_new(int width, int height, const char *title, const char *xlabel, const char *ylabel)
{
    if (width < 160 || height < 120 || width > 16384 || height > 16384) {
        ew_fail(EW_ERR_ARG, "plot: size %d x %d must be between 160 x 120 and 16384 x 16384", width, height);
        return NULL;
    }
    ew_plot_t *p = calloc(1, sizeof *p);
    if (!p) {
        ew_fail(EW_ERR_NOMEM, "plot: out of memory");
        return NULL;
    }
    p->w = width;
    p->h = height;
    p->title = title ? ew_strdup(title) : NULL;
    p->xlabel = xlabel ? ew_strdup(xlabel) : NULL;
    p->ylabel = ylabel ? ew_strdup(ylabel) : NULL;
    if ((title && !p->title) || (xlabel && !p->xlabel) || (ylabel && !p->ylabel)) {
        ew_plot_free(p);
        return NULL;
    }
    return p;
}

void ew_plot_free(ew_plot_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->ns; i++) {
        free(p->s[i].x);
        free(p->s[i].y);
        free(p->s[i].label);
    }
    free(p->s);
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    free(p);
}

void ew_plot_set_logy(ew_plot_t *p, int on) { p->logy = on != 0; }

void ew_plot_set_xrange(ew_plot_t *p, double xmin, double xmax)
{
    p->fixx = xmax > xmin && isfinite(xmin) && isfinite(xmax);
    p->xr[0] = xmin;
    p->xr[1] = xmax;
}

void ew_plot_set_yrange(ew_plot_t *p, double ymin, double ymax)
{
    p->fixy = ymax > ymin && isfinite(ymin) && isfinite(ymax);
    p->yr[0] = ymin;
    p->yr[1] = ymax;
}

static series_t *add_item(ew_plot_t *p, int kind, const char *label)
{
    series_t *ns = realloc(p->s, (p->ns + 1) * sizeof *ns);
    if (!ns) {
        ew_fail(EW_ERR_NOMEM, "plot: out of memory");
        return NULL;
    }
    p->s = ns;
    series_t *s = &p->s[p->ns];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    if (label) {
        s->label = ew_strdup(label);
        if (!s->label) return NULL;
    }
    memcpy(s->col, kind == K_LINE ? tab10[p->ncolor % 10] : (const uint8_t[3]){90, 90, 90}, 3);
    if (kind == K_LINE) p->ncolor++;
    p->ns++;
    return s;
}

ew_status_t ew_plot_add_series(ew_plot_t *p, const double *x, const double *y, size_t n, const char *label)
{
    if (n == 0) return ew_fail(EW_ERR_ARG, "plot: series \"%s\" has no points", label ? label : "");
    double *cx = malloc(n * sizeof *cx), *cy = malloc(n * sizeof *cy);
    if (!cx || !cy) {
        free(cx);
        free(cy);
        return ew_fail(EW_ERR_NOMEM, "plot: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cx[i] = x ? x[i] : (double)i;
        cy[i] = y[i];
    }
    series_t *s = add_item(p, K_LINE, label);
    if (!s) {
        free(cx);
        free(cy);
        return EW_ERR_NOMEM;
    }
    s->x = cx;
    s->y = cy;
    s->n = n;
    return EW_OK;
}

ew_status_t ew_plot_add_histogram(ew_plot_t *p, const double *values, size_t n, int nbins, double lo, double hi,
                                  const char *label)
{
    if (nbins < 1 || nbins > 100000) return ew_fail(EW_ERR_ARG, "plot: histogram bins %d not in 1..100000", nbins);
    if (!(lo < hi)) {
        lo = INFINITY;
        hi = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (isfinite(values[i])) {
                if (values[i] < lo) lo = values[i];
                if (values[i] > hi) hi = values[i];
            }
        if (!(lo <= hi)) return ew_fail(EW_ERR_ARG, "plot: histogram \"%s\" has no finite values", label ? label : "");
        if (hi == lo) {
            lo -= 0.5;
            hi += 0.5;
        }
    }
    double *cnt = calloc((size_t)nbins, sizeof *cnt);
    if (!cnt) return ew_fail(EW_ERR_NOMEM, "plot: out of memory");
    const double width = (hi - lo) / nbins;
    for (size_t i = 0; i < n; i++) {
        double v = values[i];
        if (!(v >= lo && v <= hi)) continue;
        int b = (int)((v - lo) / width);
        if (b >= nbins) b = nbins - 1; /* v == hi goes into the last bin */
        cnt[b] += 1;
    }
    size_t np = 2 * (size_t)nbins + 2;
    double *x = malloc(np * sizeof *x), *y = malloc(np * sizeof *y);
    ew_status_t st = EW_OK;
    if (!x || !y) st = ew_fail(EW_ERR_NOMEM, "plot: out of memory");
    if (st == EW_OK) {
        x[0] = lo;
        y[0] = 0;
        for (int b = 0; b < nbins; b++) {
            x[1 + 2 * b] = lo + b * width;
            x[2 + 2 * b] = lo + (b + 1) * width;
            y[1 + 2 * b] = y[2 + 2 * b] = cnt[b];
        }
        x[np - 1] = hi;
        y[np - 1] = 0;
        st = ew_plot_add_series(p, x, y, np, label);
    }
    free(cnt);
    free(x);
    free(y);
    return st;
}

static ew_status_t add_ref(ew_plot_t *p, int kind, double v, const char *label)
{
    if (!isfinite(v)) return ew_fail(EW_ERR_ARG, "plot: reference line at %g is not finite", v);
    series_t *s = add_item(p, kind, label);
    if (!s) return EW_ERR_NOMEM;
    s->v = v;
    return EW_OK;
}

ew_status_t ew_plot_vline(ew_plot_t *p, double x, const char *label) { return add_ref(p, K_VLINE, x, label); }
ew_status_t ew_plot_hline(ew_plot_t *p, double y, const char *label) { return add_ref(p, K_HLINE, y, label); }

/* ---- rendering ---- */

typedef struct {
    uint8_t *rgb;
    int w, h;
    int x0, x1, y0, y1; /* plot area, inclusive pixel bounds, y0 top */
    double xa, xb, ya, yb; /* data ranges (y in log10 units when logy) */
} canvas_t;

static void set_px(const canvas_t *c, int x, int y, const uint8_t col[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->rgb + 3 * ((size_t)y * (size_t)c->w + (size_t)x), col, 3);
}

static void fill_rect(const canvas_t *c, int x0, int y0, int x1, int y1, const uint8_t col[3])
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) set_px(c, x, y, col);
}

/* Bresenham with a square brush of side thick; dash > 0 draws dash on, dash off. */
static void draw_line(const canvas_t *c, int xa, int ya, int xb, int yb, const uint8_t col[3], int thick, int dash)
{
    int dx = abs(xb - xa), dy = -abs(yb - ya), sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1, err = dx + dy;
    int step = 0, off = (thick - 1) / 2;
    for (;;) {
        if (!dash || (step / dash) % 2 == 0)
            for (int u = 0; u < thick; u++)
                for (int v = 0; v < thick; v++) {
                    int px = xa + u - off, py = ya + v - off;
                    if (px >= c->x0 && px <= c->x1 && py >= c->y0 && py <= c->y1) set_px(c, px, py, col);
                }
        if (xa == xb && ya == yb) break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            xa += sx;
        }
        if (e2 <= dx) {
            err += dx;
            ya += sy;
        }
        step++;
    }
}

/* Liang-Barsky: clip the segment to [x0, x1] x [y0, y1]; 0 if outside. */
static int clip_segment(double *ax, double *ay, double *bx, double *by, double x0, double x1, double y0, double y1)
{
    double t0 = 0, t1 = 1, dx = *bx - *ax, dy = *by - *ay;
    double pq[4][2] = {{-dx, *ax - x0}, {dx, x1 - *ax}, {-dy, *ay - y0}, {dy, y1 - *ay}};
    for (int i = 0; i < 4; i++) {
        double pp = pq[i][0], q = pq[i][1];
        if (pp == 0) {
            if (q < 0) return 0;
        } else {
            double r = q / pp;
            if (pp < 0) {
                if (r > t1) return 0;
                if (r > t0) t0 = r;
            } else {
                if (r < t0) return 0;
                if (r < t1) t1 = r;
            }
        }
    }
    double nax = *ax + t0 * dx, nay = *ay + t0 * dy;
    *bx = *ax + t1 * dx;
    *by = *ay + t1 * dy;
    *ax = nax;
    *ay = nay;
    return 1;
}

static double map_x(const canvas_t *c, double x) { return c->x0 + (x - c->xa) / (c->xb - c->xa) * (c->x1 - c->x0); }
static double map_y(const canvas_t *c, double y) { return c->y1 - (y - c->ya) / (c->yb - c->ya) * (c->y1 - c->y0); }

static double nice_step(double range, int target)
{
    double raw = range / (target > 1 ? target : 1), mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void fmt_tick(double v, double step, char *buf, size_t n)
{
    if (fabs(v) < 1e-12 * step) v = 0;
    double a = fabs(v);
    if (v == 0) snprintf(buf, n, "0");
    else if (a >= 1e5 || a < 1e-3) snprintf(buf, n, "%.2g", v);
    else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        if (dec > 6) dec = 6;
        snprintf(buf, n, "%.*f", dec, v);
    }
}

/* Tick values (data units; log10 units for logy) of an axis. */
static int make_ticks(double a, double b, int logy, int target, double *t, int maxn, double *step)
{
    int n = 0;
    if (logy) {
        for (double k = ceil(a - 1e-9); k <= b + 1e-9 && n < maxn; k++) t[n++] = k;
        *step = 1;
        if (n < 2) { /* less than a decade: 1-2-5 ticks */
            n = 0;
            for (double k = floor(a) - 1; k <= b + 1 && n < maxn; k++)
                for (int m = 0; m < 3 && n < maxn; m++) {
                    double v = k + log10(m == 0 ? 1 : m == 1 ? 2 : 5);
                    if (v >= a - 1e-9 && v <= b + 1e-9) t[n++] = v;
                }
            *step = 0; /* labels use the value's own precision */
        }
        return n;
    }
    double s = nice_step(b - a, target);
    *step = s;
    for (double k = ceil(a / s - 1e-9); k * s <= b + 1e-9 * s && n < maxn; k++) t[n++] = k * s;
    return n;
}

static void tick_label(double t, int logy, double step, char *buf, size_t n)
{
    if (!logy) {
        fmt_tick(t, step, buf, n);
        return;
    }
    double v = pow(10.0, t);
    if (fabs(t - round(t)) < 1e-9 && (t >= 4 || t <= -4)) snprintf(buf, n, "1e%d", (int)round(t));
    else fmt_tick(v, v, buf, n); /* 1, 0.1, 0.02, 500 */
}

/* Data ranges over all series (y in log10 units when logy). */
static ew_status_t data_ranges(const ew_plot_t *p, double *xa, double *xb, double *ya, double *yb)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < p->ns; i++) {
        const series_t *s = &p->s[i];
        if (s->kind == K_VLINE) {
            x0 = fmin(x0, s->v);
            x1 = fmax(x1, s->v);
        } else if (s->kind == K_HLINE) {
            if (p->logy && !(s->v > 0)) continue;
            double v = p->logy ? log10(s->v) : s->v;
            y0 = fmin(y0, v);
            y1 = fmax(y1, v);
        } else {
            for (size_t k = 0; k < s->n; k++) {
                double x = s->x[k], y = s->y[k];
                if (!isfinite(x) || !isfinite(y) || (p->logy && !(y > 0))) continue;
                if (p->logy) y = log10(y);
                x0 = fmin(x0, x);
                x1 = fmax(x1, x);
                y0 = fmin(y0, y);
                y1 = fmax(y1, y);
            }
        }
    }
    if (p->fixx) {
        x0 = p->xr[0];
        x1 = p->xr[1];
    }
    if (p->fixy) {
        if (p->logy && !(p->yr[0] > 0)) return ew_fail(EW_ERR_ARG, "plot: log y range needs ymin > 0 (got %g)", p->yr[0]);
        y0 = p->logy ? log10(p->yr[0]) : p->yr[0];
        y1 = p->logy ? log10(p->yr[1]) : p->yr[1];
    }
    if (!(x0 <= x1) || !(y0 <= y1)) return ew_fail(EW_ERR_ARG, "plot: nothing to plot (no finite points)");
    if (x1 == x0) {
        double d = x0 != 0 ? 0.05 * fabs(x0) : 0.5;
        x0 -= d;
        x1 += d;
    }
    if (y1 == y0) {
        double d = p->logy ? 0.5 : (y0 != 0 ? 0.05 * fabs(y0) : 0.5);
        y0 -= d;
        y1 += d;
    } else if (!p->fixy) {
        double d = 0.04 * (y1 - y0);
        y0 -= d;
        y1 += d;
    }
    *xa = x0;
    *xb = x1;
    *ya = y0;
    *yb = y1;
    return EW_OK;
}

ew_status_t ew_plot_render(const ew_plot_t *p, uint8_t *rgb)
{
    if (p->ns == 0) return ew_fail(EW_ERR_ARG, "plot: nothing to plot");
    canvas_t c = {rgb, p->w, p->h, 0, 0, 0, 0, 0, 0, 0, 0};
    EW_TRY(data_ranges(p, &c.xa, &c.xb, &c.ya, &c.yb));
    const int fs = (p->w >= 600 && p->h >= 400) ? 2 : 1, ch = 8 * fs;
    const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255}, grid[3] = {225, 225, 225};
    memset(rgb, 255, (size_t)p->w * (size_t)p->h * 3);

    double yt[64], xt[64], ystep, xstep;
    int nyt = make_ticks(c.ya, c.yb, p->logy, (p->h - 4 * ch) / (3 * ch), yt, 64, &ystep);
    char buf[64];
    int maxw = 0;
    for (int i = 0; i < nyt; i++) {
        tick_label(yt[i], p->logy, ystep, buf, sizeof buf);
        int tw = ew_text_width(buf, fs);
        if (tw > maxw) maxw = tw;
    }
    c.x0 = maxw + (p->ylabel ? 20 : 10) * fs; /* [ylabel 3..10 fs] gap [tick labels] 6 fs [axis] */
    c.x1 = p->w - 1 - 8 * fs;
    c.y0 = p->title ? 2 * ch + 4 : ch;
    c.y1 = p->h - 1 - (2 * ch + 10 + (p->xlabel ? ch : 0));
    if (c.x1 - c.x0 < 20 || c.y1 - c.y0 < 20) return ew_fail(EW_ERR_ARG, "plot: %d x %d is too small", p->w, p->h);
    int nxt = make_ticks(c.xa, c.xb, 0, (c.x1 - c.x0) / (ew_text_width("-0.000", fs) + 4 * fs), xt, 64, &xstep);

    /* grid, ticks and tick labels */
    for (int i = 0; i < nyt; i++) {
        int y = (int)lround(map_y(&c, yt[i]));
        for (int x = c.x0; x <= c.x1; x++) set_px(&c, x, y, grid);
        fill_rect(&c, c.x0 - 4 * fs, y, c.x0 - 1, y + fs - 1, black);
        tick_label(yt[i], p->logy, ystep, buf, sizeof buf);
        ew_draw_text(rgb, p->w, p->h, c.x0 - 6 * fs - ew_text_width(buf, fs), y - 3 * fs, buf, black, fs);
    }
    for (int i = 0; i < nxt; i++) {
        int x = (int)lround(map_x(&c, xt[i]));
        for (int y = c.y0; y <= c.y1; y++) set_px(&c, x, y, grid);
        fill_rect(&c, x, c.y1 + 1, x + fs - 1, c.y1 + 4 * fs, black);
        fmt_tick(xt[i], xstep, buf, sizeof buf);
        ew_draw_text(rgb, p->w, p->h, x - ew_text_width(buf, fs) / 2, c.y1 + 6 * fs, buf, black, fs);
    }
    /* curves and reference lines, clipped to the plot area */
    for (size_t i = 0; i < p->ns; i++) {
        const series_t *s = &p->s[i];
        if (s->kind == K_VLINE || s->kind == K_HLINE) {
            double v = s->kind == K_HLINE && p->logy ? (s->v > 0 ? log10(s->v) : -INFINITY) : s->v;
            double pos = s->kind == K_VLINE ? map_x(&c, v) : map_y(&c, v);
            if (!isfinite(pos) || pos < (s->kind == K_VLINE ? c.x0 : c.y0) || pos > (s->kind == K_VLINE ? c.x1 : c.y1))
                continue;
            int q = (int)lround(pos);
            if (s->kind == K_VLINE) draw_line(&c, q, c.y0, q, c.y1, s->col, fs, 6 * fs);
            else draw_line(&c, c.x0, q, c.x1, q, s->col, fs, 6 * fs);
            if (s->label) {
                if (s->kind == K_VLINE) /* near the bottom: the legend sits top right */
                    ew_draw_text(rgb, p->w, p->h, q + 3 * fs, c.y1 - ch - 2 * fs, s->label, s->col, fs);
                else
                    ew_draw_text(rgb, p->w, p->h, c.x1 - ew_text_width(s->label, fs) - 3 * fs, q - ch - fs, s->label,
                                 s->col, fs);
            }
            continue;
        }
        for (size_t k = 0; k + 1 < s->n; k++) {
            double x0 = s->x[k], y0 = s->y[k], x1 = s->x[k + 1], y1 = s->y[k + 1];
            if (p->logy) {
                y0 = y0 > 0 ? log10(y0) : NAN;
                y1 = y1 > 0 ? log10(y1) : NAN;
            }
            double ax = map_x(&c, x0), ay = map_y(&c, y0), bx = map_x(&c, x1), by = map_y(&c, y1);
            if (!isfinite(ax) || !isfinite(ay) || !isfinite(bx) || !isfinite(by)) continue;
            if (!clip_segment(&ax, &ay, &bx, &by, c.x0, c.x1, c.y0, c.y1)) continue;
            draw_line(&c, (int)lround(ax), (int)lround(ay), (int)lround(bx), (int)lround(by), s->col, fs, 0);
        }
        if (s->n == 1) { /* a single point: a small square */
            double x = map_x(&c, s->x[0]), y = map_y(&c, p->logy ? (s->y[0] > 0 ? log10(s->y[0]) : NAN) : s->y[0]);
            if (isfinite(x) && isfinite(y) && x >= c.x0 && x <= c.x1 && y >= c.y0 && y <= c.y1)
                fill_rect(&c, (int)x - 2 * fs, (int)y - 2 * fs, (int)x + 2 * fs, (int)y + 2 * fs, s->col);
        }
    }
    /* axes box */
    for (int t = 0; t < fs; t++) {
        for (int x = c.x0 - fs; x <= c.x1 + fs; x++) {
            set_px(&c, x, c.y0 - 1 - t, black);
            set_px(&c, x, c.y1 + 1 + t, black);
        }
        for (int y = c.y0 - fs; y <= c.y1 + fs; y++) {
            set_px(&c, c.x0 - 1 - t, y, black);
            set_px(&c, c.x1 + 1 + t, y, black);
        }
    }
    /* title and axis labels */
    if (p->title) ew_draw_text(rgb, p->w, p->h, (p->w - ew_text_width(p->title, fs)) / 2, ch / 2, p->title, black, fs);
    if (p->xlabel)
        ew_draw_text(rgb, p->w, p->h, c.x0 + (c.x1 - c.x0 - ew_text_width(p->xlabel, fs)) / 2, p->h - 1 - ch - 2 * fs,
                     p->xlabel, black, fs);
    if (p->ylabel)
        ew_draw_text_vertical(rgb, p->w, p->h, 3 * fs, c.y0 + (c.y1 - c.y0 - ew_text_width(p->ylabel, fs)) / 2,
                              p->ylabel, black, fs);
    /* legend: top right inside the plot area */
    int nl = 0, lw = 0;
    for (size_t i = 0; i < p->ns; i++)
        if (p->s[i].kind == K_LINE && p->s[i].label) {
            nl++;
            int tw = ew_text_width(p->s[i].label, fs);
            if (tw > lw) lw = tw;
        }
    if (nl > 0) {
        int bw = lw + 20 * fs + 12 * fs, bh = nl * (ch + 2 * fs) + 6 * fs;
        int bx0 = c.x1 - bw - 4 * fs, by0 = c.y0 + 4 * fs;
        fill_rect(&c, bx0, by0, bx0 + bw, by0 + bh, black);
        fill_rect(&c, bx0 + 1, by0 + 1, bx0 + bw - 1, by0 + bh - 1, white);
        int k = 0;
        for (size_t i = 0; i < p->ns; i++) {
            const series_t *s = &p->s[i];
            if (s->kind != K_LINE || !s->label) continue;
            int ly = by0 + 4 * fs + k * (ch + 2 * fs);
            fill_rect(&c, bx0 + 4 * fs, ly + 3 * fs, bx0 + 18 * fs, ly + 4 * fs, s->col);
            ew_draw_text(rgb, p->w, p->h, bx0 + 22 * fs, ly, s->label, black, fs);
            k++;
        }
    }
    return EW_OK;
}

ew_status_t ew_plot_write_png(const ew_plot_t *p, const char *path)
{
    uint8_t *rgb = ew_alloc_array((size_t)p->w * (size_t)p->h, 3);
    if (!rgb) return EW_ERR_NOMEM;
    ew_status_t st = ew_plot_render(p, rgb);
    if (st == EW_OK) st = ew_png_write_rgb8(path, p->w, p->h, rgb);
    else st = ew_fail_context(st, "%s", path);
    ew_free(rgb);
    return st;
}
