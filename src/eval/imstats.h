/* ewald eval: image statistics and distances between two sets of images
 * (radially averaged power spectra, pixel-value histograms).
 *
 * Images are float (ny, nx), row-major (slow axis y), stacked contiguously:
 * image k starts at images + k nx ny.
 *
 * Power spectrum. With F the 2D DFT of an image (FFTW, unnormalised), the
 * power at frequency (kx/nx, ky/ny) cycles per pixel is |F|^2 / (nx ny), so
 * white noise of variance sigma^2 has power sigma^2 at every frequency and
 * sum over all frequencies of the power = sum of x^2 (Parseval). With
 * L = min(nx, ny), frequency f = sqrt((kx/nx)^2 + (ky/ny)^2) goes to ring
 * j = round(f L), j = 0 .. L/2 (the corners beyond L/2 are not used), and
 * ring j is reported at j / (L apix) (1/Angstrom; cycles per pixel when
 * apix = 1). The ring value is the mean power over its frequencies and over
 * the images.
 */
#ifndef EW_EVAL_IMSTATS_H
#define EW_EVAL_IMSTATS_H

#include <stddef.h>

#include "core/core.h"

typedef struct {
    int nbin;        /* L/2 + 1 rings */
    double *freq;    /* (nbin) ring frequency, 1/Angstrom */
    double *power;   /* (nbin) mean power in the ring */
    double *count;   /* (nbin) frequencies per image in the ring */
    size_t nimages;
} ew_spectrum_t;

/* Radially averaged power spectrum of nimg >= 1 images (ny, nx >= 4),
 * pixel size apix > 0 Angstrom. Non-finite pixels count as 0. Parallel over
 * images (OpenMP), one FFTW plan. On error out is left empty and the
 * message names the argument. */
ew_status_t ew_image_power_spectrum(const float *images, size_t nimg, int ny, int nx, double apix,
                                    ew_spectrum_t *out);
void ew_spectrum_free(ew_spectrum_t *s);

typedef struct {
    double rms_log10;     /* sqrt(mean over rings of log10(Pa / Pb)^2) */
    double max_abs_log10; /* max over rings of |log10(Pa / Pb)| */
    double mean_log10;    /* mean of log10(Pa / Pb): an overall scale difference */
    int nbin_used;        /* rings with fmin <= f <= fmax and both powers > 0 */
} ew_spectrum_distance_t;

/* Distance between two spectra on the same rings (same nbin and freq)
 * over fmin <= freq <= fmax (1/Angstrom). Errors (EW_ERR_ARG) if the rings
 * differ or no ring is usable. */
ew_status_t ew_spectrum_distance(const ew_spectrum_t *a, const ew_spectrum_t *b, double fmin, double fmax,
                                 ew_spectrum_distance_t *d);

/* Write "freq_inv_A power count" rows (atomically); a comment line names
 * the number of images. On error no file is left. */
ew_status_t ew_spectrum_write_table(const char *path, const ew_spectrum_t *s);

/* A histogram of values on [lo, hi) in nbins equal bins; values below lo
 * and at or above hi are counted in below / above, non-finite ones in
 * nonfinite (none of these in count[]). */
typedef struct {
    int nbins;
    double lo, hi;
    double *count;     /* (nbins) */
    double below, above, nonfinite;
    double total;      /* all finite values (count + below + above) */
} ew_histogram_t;

/* Histogram of n values (nbins in [1, 1e7], lo < hi, both finite). On
 * error h is left empty and the message names the argument. */
ew_status_t ew_histogram(const float *values, size_t n, double lo, double hi, int nbins, ew_histogram_t *h);
/* The common range [min, max] of the finite values of two sets (either may
 * be empty, not both); hi is nudged above the maximum so that it falls in
 * the last bin. Errors (EW_ERR_ARG) if no finite value exists. */
ew_status_t ew_histogram_range(const float *a, size_t na, const float *b, size_t nb, double *lo, double *hi);
void ew_histogram_free(ew_histogram_t *h);

typedef struct {
    double tv;  /* total variation 0.5 sum |p - q| (0..1) */
    double js;  /* Jensen-Shannon divergence in bits (0..1) */
    double ks;  /* Kolmogorov-Smirnov: max |P - Q| of the cumulative distributions */
    double w1;  /* Wasserstein-1 (earth mover's) distance in value units */
} ew_hist_distance_t;

/* Distances between the normalised histograms a and b (same lo, hi,
 * nbins). below and above take part as two extra bins at lo and hi (for w1:
 * mass at lo and at hi). Errors (EW_ERR_ARG) if the binning differs or a
 * histogram is empty. */
ew_status_t ew_histogram_distance(const ew_histogram_t *a, const ew_histogram_t *b, ew_hist_distance_t *d);

/* Write "bin_lo bin_hi count density" rows (density = count / (total *
 * width)), with comment lines for below / above / non-finite (atomically). */
ew_status_t ew_histogram_write_table(const char *path, const ew_histogram_t *h);

#endif
