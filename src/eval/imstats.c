/* ewald eval: image power spectra, histograms and their distances. */
#include "eval/imstats.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void ew_spectrum_free(ew_spectrum_t *s)
{
    if (!s) return;
    ew_free(s->freq);
    ew_free(s->power);
    ew_free(s->count);
    memset(s, 0, sizeof *s);
}

ew_status_t ew_image_power_spectrum(const float *images, size_t nimg, int ny, int nx, double apix,
                                    ew_spectrum_t *out)
{
    memset(out, 0, sizeof *out);
    if (nimg == 0) return ew_fail(EW_ERR_ARG, "power spectrum: no images");
    if (nx < 4 || ny < 4) return ew_fail(EW_ERR_ARG, "power spectrum: image size %d x %d is below 4 x 4", nx, ny);
    if (!(apix > 0.0) || !isfinite(apix))
        return ew_fail(EW_ERR_ARG, "power spectrum: pixel size %g Angstrom is not positive", apix);
    const int L = nx < ny ? nx : ny, nbin = L / 2 + 1, nh = nx / 2 + 1;
    const size_t npix = (size_t)nx * ny, nc = (size_t)ny * nh;
    /* ring index of each half-spectrum frequency and its Hermitian weight */
    int *ring = ew_alloc_array(nc, sizeof *ring);
    double *wt = ew_alloc_array(nc, sizeof *wt);
    out->freq = ew_calloc_array((size_t)nbin, sizeof *out->freq);
    out->power = ew_calloc_array((size_t)nbin, sizeof *out->power);
    out->count = ew_calloc_array((size_t)nbin, sizeof *out->count);
    int nthr = omp_get_max_threads();
    double *acc = ew_calloc_array((size_t)nthr * nbin, sizeof *acc);
    float *rbuf = ew_alloc_array((size_t)nthr * npix, sizeof *rbuf);
    fftwf_complex *cbuf = ew_alloc_array((size_t)nthr * nc, sizeof *cbuf);
    if (!ring || !wt || !out->freq || !out->power || !out->count || !acc || !rbuf || !cbuf) {
        ew_free(ring);
        ew_free(wt);
        ew_free(acc);
        ew_free(rbuf);
        ew_free(cbuf);
        ew_spectrum_free(out);
        return ew_fail(EW_ERR_NOMEM, "power spectrum: out of memory for %d x %d images", ny, nx);
    }
    for (int y = 0; y < ny; y++) {
        int ky = y <= ny / 2 ? y : y - ny;
        for (int x = 0; x < nh; x++) {
            double f = sqrt((double)x * x / ((double)nx * nx) + (double)ky * ky / ((double)ny * ny));
            int j = (int)floor(f * L + 0.5);
            size_t i = (size_t)y * nh + x;
            ring[i] = j < nbin ? j : -1;
            wt[i] = (x == 0 || (nx % 2 == 0 && x == nx / 2)) ? 1.0 : 2.0;
            if (ring[i] >= 0) out->count[j] += wt[i];
        }
    }
    fftwf_plan plan;
#pragma omp critical(ew_fftw_planner)
    plan = fftwf_plan_dft_r2c_2d(ny, nx, rbuf, cbuf, FFTW_ESTIMATE);
    if (!plan) {
        ew_free(ring);
        ew_free(wt);
        ew_free(acc);
        ew_free(rbuf);
        ew_free(cbuf);
        ew_spectrum_free(out);
        return ew_fail(EW_ERR_INTERNAL, "power spectrum: FFTW could not plan a %d x %d transform", ny, nx);
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t k = 0; k < nimg; k++) {
        int t = omp_get_thread_num();
        float *r = rbuf + (size_t)t * npix;
        fftwf_complex *c = cbuf + (size_t)t * nc;
        double *a = acc + (size_t)t * nbin;
        const float *img = images + k * npix;
        for (size_t i = 0; i < npix; i++) r[i] = isfinite(img[i]) ? img[i] : 0.0f;
        fftwf_execute_dft_r2c(plan, r, c);
        for (size_t i = 0; i < nc; i++)
            if (ring[i] >= 0) a[ring[i]] += wt[i] * ((double)c[i][0] * c[i][0] + (double)c[i][1] * c[i][1]);
    }
#pragma omp critical(ew_fftw_planner)
    fftwf_destroy_plan(plan);
    for (int j = 0; j < nbin; j++) {
        double s = 0.0;
        for (int t = 0; t < nthr; t++) s += acc[(size_t)t * nbin + j];
        out->power[j] = out->count[j] > 0 ? s / (out->count[j] * (double)nimg * (double)npix) : 0.0;
        out->freq[j] = j / (L * apix);
    }
    out->nbin = nbin;
    out->nimages = nimg;
    ew_free(ring);
    ew_free(wt);
    ew_free(acc);
    ew_free(rbuf);
    ew_free(cbuf);
    return EW_OK;
}

ew_status_t ew_spectrum_distance(const ew_spectrum_t *a, const ew_spectrum_t *b, double fmin, double fmax,
                                 ew_spectrum_distance_t *d)
{
    memset(d, 0, sizeof *d);
    if (a->nbin != b->nbin)
        return ew_fail(EW_ERR_ARG, "spectrum distance: %d rings against %d", a->nbin, b->nbin);
    double s2 = 0.0, s1 = 0.0, mx = 0.0;
    int used = 0;
    for (int j = 0; j < a->nbin; j++) {
        if (fabs(a->freq[j] - b->freq[j]) > 1e-9 * fabs(a->freq[j]) + 1e-15)
            return ew_fail(EW_ERR_ARG, "spectrum distance: ring %d is at %g and %g 1/A", j, a->freq[j], b->freq[j]);
        if (a->freq[j] < fmin || a->freq[j] > fmax || !(a->power[j] > 0) || !(b->power[j] > 0)) continue;
        double l = log10(a->power[j] / b->power[j]);
        s1 += l;
        s2 += l * l;
        if (fabs(l) > mx) mx = fabs(l);
        used++;
    }
    if (used == 0)
        return ew_fail(EW_ERR_ARG, "spectrum distance: no ring with positive power in [%g, %g] 1/A", fmin, fmax);
    d->rms_log10 = sqrt(s2 / used);
    d->mean_log10 = s1 / used;
    d->max_abs_log10 = mx;
    d->nbin_used = used;
    return EW_OK;
}

ew_status_t ew_spectrum_write_table(const char *path, const ew_spectrum_t *s)
{
    FILE *fp;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &fp, &tmp));
    fprintf(fp, "# radially averaged power spectrum of %zu images\n# freq_inv_A power count\n", s->nimages);
    for (int j = 0; j < s->nbin; j++) fprintf(fp, "%.6g %.8g %.0f\n", s->freq[j], s->power[j], s->count[j]);
    return ew_atomic_commit(fp, tmp, path);
}

void ew_histogram_free(ew_histogram_t *h)
{
    if (!h) return;
    ew_free(h->count);
    memset(h, 0, sizeof *h);
}

ew_status_t ew_histogram(const float *values, size_t n, double lo, double hi, int nbins, ew_histogram_t *h)
{
    memset(h, 0, sizeof *h);
    if (nbins < 1 || nbins > 10000000) return ew_fail(EW_ERR_ARG, "histogram: %d bins is outside [1, 1e7]", nbins);
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return ew_fail(EW_ERR_ARG, "histogram: range [%g, %g] is empty or not finite", lo, hi);
    h->count = ew_calloc_array((size_t)nbins, sizeof *h->count);
    if (!h->count) return EW_ERR_NOMEM;
    h->nbins = nbins;
    h->lo = lo;
    h->hi = hi;
    const double scale = nbins / (hi - lo);
    for (size_t i = 0; i < n; i++) {
        double v = values[i];
        if (!isfinite(v)) {
            h->nonfinite += 1;
            continue;
        }
        h->total += 1;
        if (v < lo) {
            h->below += 1;
        } else if (v >= hi) {
            h->above += 1;
        } else {
            int b = (int)((v - lo) * scale);
            if (b >= nbins) b = nbins - 1;
            h->count[b] += 1;
        }
    }
    return EW_OK;
}

ew_status_t ew_histogram_range(const float *a, size_t na, const float *b, size_t nb, double *lo, double *hi)
{
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < na; i++)
        if (isfinite(a[i])) {
            if (a[i] < mn) mn = a[i];
            if (a[i] > mx) mx = a[i];
        }
    for (size_t i = 0; i < nb; i++)
        if (isfinite(b[i])) {
            if (b[i] < mn) mn = b[i];
            if (b[i] > mx) mx = b[i];
        }
    if (!(mn <= mx)) return ew_fail(EW_ERR_ARG, "histogram range: no finite value in %zu + %zu values", na, nb);
    double pad = (mx - mn) * 1e-9 + fabs(mx) * 1e-12 + 1e-300;
    if (mx == mn) pad = fabs(mx) * 1e-6 + 1e-6;
    *lo = mn;
    *hi = mx + pad;
    return EW_OK;
}

ew_status_t ew_histogram_distance(const ew_histogram_t *a, const ew_histogram_t *b, ew_hist_distance_t *d)
{
    memset(d, 0, sizeof *d);
    if (a->nbins != b->nbins || a->lo != b->lo || a->hi != b->hi)
        return ew_fail(EW_ERR_ARG, "histogram distance: binnings differ (%d bins on [%g, %g] vs %d on [%g, %g])",
                       a->nbins, a->lo, a->hi, b->nbins, b->lo, b->hi);
    if (!(a->total > 0) || !(b->total > 0))
        return ew_fail(EW_ERR_ARG, "histogram distance: a histogram holds no finite value");
    const int nb = a->nbins;
    const double width = (a->hi - a->lo) / nb;
    double tv = 0.0, js = 0.0, ks = 0.0, w1 = 0.0, ca = 0.0, cb = 0.0;
    /* categories: below, bins 0 .. nb-1, above */
    for (int k = -1; k <= nb; k++) {
        double pa = (k < 0 ? a->below : k == nb ? a->above : a->count[k]) / a->total;
        double pb = (k < 0 ? b->below : k == nb ? b->above : b->count[k]) / b->total;
        tv += 0.5 * fabs(pa - pb);
        double m = 0.5 * (pa + pb);
        if (pa > 0) js += 0.5 * pa * log2(pa / m);
        if (pb > 0) js += 0.5 * pb * log2(pb / m);
        ca += pa;
        cb += pb;
        if (fabs(ca - cb) > ks) ks = fabs(ca - cb);
        /* earth mover's distance: category positions x(-1) = lo (below),
         * x(k) = bin centre, x(nb) = hi (above); the CDF difference after
         * category k holds over [x(k), x(k + 1)] */
        if (k < nb) {
            double x0 = k < 0 ? a->lo : a->lo + (k + 0.5) * width;
            double x1 = k + 1 == nb ? a->hi : a->lo + (k + 1.5) * width;
            w1 += fabs(ca - cb) * (x1 - x0);
        }
    }
    d->tv = tv;
    d->js = js < 0 ? 0 : js;
    d->ks = ks;
    d->w1 = w1;
    return EW_OK;
}

ew_status_t ew_histogram_write_table(const char *path, const ew_histogram_t *h)
{
    FILE *fp;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &fp, &tmp));
    const double width = (h->hi - h->lo) / h->nbins;
    fprintf(fp, "# below %.0f above %.0f nonfinite %.0f total %.0f\n# bin_lo bin_hi count density\n", h->below,
            h->above, h->nonfinite, h->total);
    for (int k = 0; k < h->nbins; k++)
        fprintf(fp, "%.8g %.8g %.0f %.8g\n", h->lo + k * width, h->lo + (k + 1) * width, h->count[k],
                h->total > 0 ? h->count[k] / (h->total * width) : 0.0);
    return ew_atomic_commit(fp, tmp, path);
}
