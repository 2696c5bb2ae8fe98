/* Benchmark of src/recon/phase: time per phasing iteration against the time
 * of the FFTs one iteration needs, measured in the same run.
 *
 *   bench_phase [--json] [--sizes 64,128] [--threads 2] [--iters 20]
 *
 * For each grid size n: an intensity volume of a random blob density,
 * FFTW_MEASURE plans, then (interleaved, several rounds, the minimum kept)
 * the time of one forward + backward in-place r2c/c2r pair and the time
 * of one iteration of ER, HIO, RAAR (one FFT pair each) and DM (two FFT
 * pairs). The ratio is iteration time / (pairs x pair time); the target
 * is <= 1.5. The last line is one JSON object with the figures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#include "core/core.h"
#include "recon/phase.h"

/* |F|^2 of a density of random Gaussian blobs, centred layout. */
static int make_intensity(int n, float *I)
{
    const int c = n / 2, nh = n / 2 + 1;
    size_t nv = (size_t)n * n * n;
    float *rho = fftwf_alloc_real(nv);
    fftwf_complex *F = fftwf_alloc_complex((size_t)n * n * nh);
    if (!rho || !F) return -1;
    memset(rho, 0, nv * sizeof *rho);
    ew_rng_t r;
    ew_rng_init(&r, 7, 0);
    for (int b = 0; b < 40; b++) {
        double p[3];
        for (int k = 0; k < 3; k++) p[k] = (ew_rng_uniform(&r) - 0.5) * n / 4.0;
        for (int z = -3; z <= 3; z++)
            for (int y = -3; y <= 3; y++)
                for (int x = -3; x <= 3; x++) {
                    int iz = ((int)p[0] + z + n) % n, iy = ((int)p[1] + y + n) % n, ix = ((int)p[2] + x + n) % n;
                    rho[((size_t)iz * n + iy) * n + ix] += (float)exp(-(x * x + y * y + z * z) / 2.0);
                }
    }
    fftwf_plan p = fftwf_plan_dft_r2c_3d(n, n, n, rho, F, FFTW_ESTIMATE);
    fftwf_execute(p);
    fftwf_destroy_plan(p);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int kz = (z - c + n) % n, ky = (y - c + n) % n, kx = (x - c + n) % n;
                if (kx >= nh) { /* Friedel mate */
                    kz = (n - kz) % n;
                    ky = (n - ky) % n;
                    kx = (n - kx) % n;
                }
                const float *v = F[((size_t)kz * n + ky) * nh + kx];
                I[((size_t)z * n + y) * n + x] = v[0] * v[0] + v[1] * v[1];
            }
    fftwf_free(rho);
    fftwf_free(F);
    return 0;
}

typedef struct {
    int n;
    double fft_pair;    /* s */
    double it[4];       /* s per iteration: ER, HIO, DM, RAAR */
    double ratio[4];
} row_t;

static int bench_size(int n, int threads, int iters, row_t *row)
{
    size_t nv = (size_t)n * n * n;
    float *I = ew_alloc_array(nv, sizeof(float));
    uint8_t *sup = ew_alloc_array(nv, 1);
    if (!I || !sup || make_intensity(n, I) != 0) return -1;
    ew_rvol_t vol = {n, 1.0 / (n * 2.0), I};
    ew_phase_config_t c;
    ew_phase_config_default(&c);
    c.nthreads = threads;
    c.fftw_measure = 1;
    ew_phaser_t *ph;
    double tp = ew_time_now();
    if (ew_phaser_create(&ph, n, &c) != EW_OK || ew_phaser_set_data(ph, &vol, NULL) != EW_OK ||
        ew_phase_support_autocorr(&vol, NULL, 1.0, 0.02, threads, sup) != EW_OK ||
        ew_phaser_init(ph, sup, 0) != EW_OK) {
        fprintf(stderr, "bench_phase: %s\n", ew_error_message());
        return -1;
    }
    fprintf(stderr, "n = %d: plans and data in %.2f s\n", n, ew_time_now() - tp);
    row->n = n;
    row->fft_pair = 1e30;
    for (int a = 0; a < 4; a++) row->it[a] = 1e30;
    const ew_phase_algo_t algos[4] = {EW_PHASE_ER, EW_PHASE_HIO, EW_PHASE_DM, EW_PHASE_RAAR};
    ew_phaser_iterate(ph, EW_PHASE_HIO, 0.9, 3); /* warm up */
    for (int round = 0; round < 5; round++) {
        double f = ew_phaser_time_fft_pair(ph, iters);
        if (f < row->fft_pair) row->fft_pair = f;
        for (int a = 0; a < 4; a++) {
            int k = algos[a] == EW_PHASE_DM ? (iters + 1) / 2 : iters;
            double t0 = ew_time_now();
            ew_phaser_iterate(ph, algos[a], 0.9, k);
            double t = (ew_time_now() - t0) / k;
            if (t < row->it[a]) row->it[a] = t;
        }
    }
    for (int a = 0; a < 4; a++) row->ratio[a] = row->it[a] / (row->fft_pair * (algos[a] == EW_PHASE_DM ? 2 : 1));
    ew_phaser_free(ph);
    ew_free(I);
    ew_free(sup);
    return 0;
}

int main(int argc, char **argv)
{
    int sizes[8] = {64, 128}, nsizes = 2, threads = 2, iters = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) continue;
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            nsizes = 0;
            for (char *t = strtok(argv[++i], ","); t && nsizes < 8; t = strtok(NULL, ",")) sizes[nsizes++] = atoi(t);
        } else {
            fprintf(stderr, "usage: bench_phase [--json] [--sizes 64,128] [--threads 2] [--iters 20]\n");
            return 2;
        }
    }
    if (threads < 1 || iters < 1) return 2;
    row_t rows[8];
    printf("phase retrieval: time per iteration vs the FFTs it needs (fftwf, %d threads, FFTW_MEASURE, min of 5 rounds)\n",
           threads);
    printf("%5s %12s | %10s %6s | %10s %6s | %10s %6s | %10s %6s\n", "n", "FFT pair ms", "ER ms", "ratio",
           "HIO ms", "ratio", "RAAR ms", "ratio", "DM ms", "ratio");
    for (int s = 0; s < nsizes; s++) {
        if (bench_size(sizes[s], threads, iters, &rows[s]) != 0) return 1;
        row_t *r = &rows[s];
        printf("%5d %12.3f | %10.3f %6.2f | %10.3f %6.2f | %10.3f %6.2f | %10.3f %6.2f\n", r->n, r->fft_pair * 1e3,
               r->it[0] * 1e3, r->ratio[0], r->it[1] * 1e3, r->ratio[1], r->it[3] * 1e3, r->ratio[3], r->it[2] * 1e3,
               r->ratio[2]);
    }
    printf("(ratio = iteration time / time of its FFTs: 1 pair for ER/HIO/RAAR, 2 pairs for DM; target <= 1.5)\n");
    printf("{\"bench\":\"phase\",\"threads\":%d", threads);
    for (int s = 0; s < nsizes; s++) {
        row_t *r = &rows[s];
        printf(",\"n%d\":{\"fft_pair_ms\":%.4f,\"er_ms\":%.4f,\"hio_ms\":%.4f,\"raar_ms\":%.4f,\"dm_ms\":%.4f,"
               "\"er_ratio\":%.3f,\"hio_ratio\":%.3f,\"raar_ratio\":%.3f,\"dm_ratio\":%.3f}",
               r->n, r->fft_pair * 1e3, r->it[0] * 1e3, r->it[1] * 1e3, r->it[3] * 1e3, r->it[2] * 1e3, r->ratio[0],
               r->ratio[1], r->ratio[3], r->ratio[2]);
    }
    printf("}\n");
    return 0;
}
