/* ewald gen: data sets of images for the noise model, crops, and the
 * PatchNCE location sampler (plain CUT and GenEM's mask-guided). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gen/gen.h"
#include "io/mrc.h"

void ew_cut_set_init(ew_cut_set_t *s) { memset(s, 0, sizeof(*s)); }

void ew_cut_set_free(ew_cut_set_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        ew_free(s->img[i].z);
        ew_free(s->img[i].mask);
        ew_free(s->img[i].clean);
    }
    free(s->img);
    memset(s, 0, sizeof(*s));
}

ew_status_t ew_cut_set_add(ew_cut_set_t *s, const float *image, const uint8_t *mask, const float *clean, int nx,
                           int ny)
{
    if (nx < 8 || ny < 8) return ew_fail(EW_ERR_ARG, "noise data: image %d x %d is smaller than 8 x 8", nx, ny);
    const size_t n = (size_t)nx * ny;
    double s1 = 0.0;
    for (size_t i = 0; i < n; i++) s1 += image[i];
    const double mean = s1 / (double)n;
    double s2 = 0.0;
    for (size_t i = 0; i < n; i++) s2 += ((double)image[i] - mean) * ((double)image[i] - mean);
    const double sd = sqrt(s2 / (double)n);
    if (!isfinite(mean) || !isfinite(sd) || !(sd > 0))
        return ew_fail(EW_ERR_NUMERIC, "noise data: image %zu is constant or not finite (sd = %g)", s->n, sd);
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        ew_cut_image_t *p = realloc(s->img, sizeof(*p) * cap);
        if (!p) return ew_fail(EW_ERR_NOMEM, "noise data: out of memory for %zu images", cap);
        s->img = p;
        s->cap = cap;
    }
    ew_cut_image_t im = {.nx = nx, .ny = ny, .mean = mean, .sd = sd};
    im.z = ew_alloc_array(n, sizeof(float));
    im.mask = mask ? ew_alloc_array(n, 1) : NULL;
    im.clean = clean ? ew_alloc_array(n, sizeof(float)) : NULL;
    if (!im.z || (mask && !im.mask) || (clean && !im.clean)) {
        ew_free(im.z);
        ew_free(im.mask);
        ew_free(im.clean);
        return ew_fail(EW_ERR_NOMEM, "noise data: out of memory for a %d x %d image", nx, ny);
    }
    for (size_t i = 0; i < n; i++) im.z[i] = (float)(((double)image[i] - mean) / sd);
    if (mask)
        for (size_t i = 0; i < n; i++) im.mask[i] = mask[i] != 0;
    if (clean) memcpy(im.clean, clean, sizeof(float) * n);
    s->img[s->n++] = im;
    return EW_OK;
}

ew_status_t ew_cut_set_add_sim_mrc(ew_cut_set_t *s, const char *mic_path, const char *mask_path,
                                   const char *clean_path)
{
    ew_mrc_t mic = {0}, msk = {0}, cln = {0};
    uint8_t *m8 = NULL;
    ew_status_t st = ew_mrc_read(mic_path, &mic);
    if (st == EW_OK) st = ew_mrc_read(mask_path, &msk);
    if (st == EW_OK && clean_path) st = ew_mrc_read(clean_path, &cln);
    if (st == EW_OK && (msk.nx != mic.nx || msk.ny != mic.ny))
        st = ew_fail(EW_ERR_FORMAT, "%s: mask is %d x %d, the micrograph %s is %d x %d", mask_path, msk.nx, msk.ny,
                     mic_path, mic.nx, mic.ny);
    if (st == EW_OK && clean_path && (cln.nx != mic.nx || cln.ny != mic.ny))
        st = ew_fail(EW_ERR_FORMAT, "%s: clean image is %d x %d, the micrograph %s is %d x %d", clean_path, cln.nx,
                     cln.ny, mic_path, mic.nx, mic.ny);
    if (st == EW_OK) {
        const size_t n = (size_t)mic.nx * mic.ny;
        m8 = ew_alloc_array(n, 1);
        if (!m8) st = ew_fail(EW_ERR_NOMEM, "%s: out of memory", mask_path);
        for (size_t i = 0; m8 && i < n; i++) m8[i] = msk.data[i] != 0.0f;
    }
    if (st == EW_OK) st = ew_cut_set_add(s, mic.data, m8, clean_path ? cln.data : NULL, mic.nx, mic.ny);
    if (st != EW_OK && st != EW_ERR_NOMEM && mic.data && msk.data && m8)
        st = ew_fail_context(st, "%s", mic_path);
    ew_free(m8);
    ew_mrc_free(&mic);
    ew_mrc_free(&msk);
    ew_mrc_free(&cln);
    return st;
}

ew_status_t ew_cut_set_add_real_mrc(ew_cut_set_t *s, const char *path, double *pixel)
{
    ew_mrc_t m = {0};
    EW_TRY(ew_mrc_read(path, &m));
    if (pixel) *pixel = m.pixel_size[0];
    ew_status_t st = EW_OK;
    for (int z = 0; z < m.nz && st == EW_OK; z++) {
        st = ew_cut_set_add(s, m.data + (size_t)z * m.nx * m.ny, NULL, NULL, m.nx, m.ny);
        if (st != EW_OK) st = ew_fail_context(st, "%s: section %d", path, z);
    }
    ew_mrc_free(&m);
    return st;
}

void ew_cut_crop_origin(const ew_cut_image_t *img, int crop, double min_fraction, ew_rng_t *r, int *x0, int *y0)
{
    EW_ASSERT(img->nx >= crop && img->ny >= crop);
    const int tries = img->mask && min_fraction > 0 ? 50 : 1;
    for (int t = 0; t < tries; t++) {
        *x0 = (int)(ew_rng_uniform(r) * (img->nx - crop + 1));
        *y0 = (int)(ew_rng_uniform(r) * (img->ny - crop + 1));
        if (*x0 > img->nx - crop) *x0 = img->nx - crop;
        if (*y0 > img->ny - crop) *y0 = img->ny - crop;
        if (tries == 1) return;
        size_t k = 0;
        for (int y = 0; y < crop; y++) {
            const uint8_t *row = img->mask + (size_t)(*y0 + y) * img->nx + *x0;
            for (int x = 0; x < crop; x++) k += row[x] != 0;
        }
        if ((double)k >= min_fraction * crop * crop) return;
    }
}

/* Partial Fisher-Yates: the first k of list (n) become a uniform sample without replacement. */
static void draw_without_replacement(int32_t *list, int n, int k, ew_rng_t *r)
{
    for (int i = 0; i < k; i++) {
        int j = i + (int)(ew_rng_uniform(r) * (n - i));
        if (j >= n) j = n - 1;
        int32_t t = list[i];
        list[i] = list[j];
        list[j] = t;
    }
}

int ew_cut_sample_locations(const uint8_t *mask, int fh, int fw, int stride, int num_patches,
                            ew_cut_sampling_t mode, ew_rng_t *r, int32_t *idx, int *n_particle, int *plain)
{
    const int hw = fh * fw;
    const int np = num_patches < hw ? num_patches : hw;
    int32_t *list = malloc(sizeof(int32_t) * (size_t)hw);
    EW_ASSERT(list != NULL);
    int npart = 0;
    if (mode == EW_CUT_SAMPLE_MASK && mask) {
        const int W = fw * stride, off = stride / 2;
        /* particle locations first, then background */
        int nb = 0;
        for (int p = 0; p < hw; p++) {
            const int y = p / fw, x = p % fw;
            if (mask[(size_t)(stride * y + off) * W + stride * x + off]) list[npart++] = p;
        }
        for (int p = 0; p < hw; p++) {
            const int y = p / fw, x = p % fw;
            if (!mask[(size_t)(stride * y + off) * W + stride * x + off]) list[npart + nb++] = p;
        }
        if (npart > 0 && nb > 0) {
            int kp = num_patches / 2 < npart ? num_patches / 2 : npart;
            int kb = np - kp < nb ? np - kp : nb;
            if (kp + kb < np && kp < npart) kp = np - kb < npart ? np - kb : npart;
            draw_without_replacement(list, npart, kp, r);
            draw_without_replacement(list + npart, nb, kb, r);
            memcpy(idx, list, sizeof(int32_t) * (size_t)kp);
            memcpy(idx + kp, list + npart, sizeof(int32_t) * (size_t)kb);
            *n_particle = kp;
            *plain = 0;
            free(list);
            return kp + kb;
        }
    }
    for (int p = 0; p < hw; p++) list[p] = p;
    draw_without_replacement(list, hw, np, r);
    memcpy(idx, list, sizeof(int32_t) * (size_t)np);
    *n_particle = 0;
    *plain = 1;
    free(list);
    return np;
}
