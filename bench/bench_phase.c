/* Benchmark of src/recon/phase: time per phasing iteration against the time
 * of the FFTs one iteration needs, measured in the same run.
 *
 *   bench_phase [--json] [--sizes 64,128] [--threads 2] [--iters 20] [--rounds 5]
 *               [--pdb FILE | --no-structure] [--n 45] [--loops 10] [--starts 2]
 *
 * For each grid size n: an intensity volume of a random blob density,
 * FFTW_MEASURE plans, then rounds x iters interleaved single timings of
 * one forward + backward in-place r2c/c2r pair and of one iteration of
 * ER, HIO, RAAR (one FFT pair each) and DM (two FFT pairs), the minimum of
 * each kept (robust on a shared machine). The ratio is iteration time / (pairs x pair time); the target
 * is <= 1.5.
 *
 * Then the done criterion of the phasing issue: the true intensity of a
 * structure (default ../shared/data/pdb/2cex.pdb; skipped if absent) from
 * the XFEL simulator (physics/scatter.h) on the grid of the reference
 * detector (n voxels, its |s| range measured), phased with the reference
 * recipe's blocks (ER 50, HIO 25, DM 25, ER 50, shrinkwrap, recentering)
 * for --loops loops and --starts starts (the full recipe: 100 and 10),
 * compared with the true density (the inverse DFT of the simulator's F
 * over the measured ball) by FSC: its 0.5 resolution against the
 * detector-edge resolution (target: within 1.25x).
 *
 * The last line is one JSON object with the figures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fftw3.h>

#include "core/core.h"
#include "io/structure.h"
#include "physics/detector.h"
#include "physics/scatter.h"
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

static int bench_size(int n, int threads, int iters, int rounds, row_t *row)
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
    /* interleaved single timings, the minimum of each kept: robust against
     * other processes on a shared machine */
    for (int round = 0; round < rounds * iters; round++) {
        double f = ew_phaser_time_fft_pair(ph, 1);
        if (f < row->fft_pair) row->fft_pair = f;
        for (int a = 0; a < 4; a++) {
            double t0 = ew_time_now();
            ew_phaser_iterate(ph, algos[a], 0.9, 1);
            double t = ew_time_now() - t0;
            if (t < row->it[a]) row->it[a] = t;
        }
    }
    for (int a = 0; a < 4; a++) row->ratio[a] = row->it[a] / (row->fft_pair * (algos[a] == EW_PHASE_DM ? 2 : 1));
    ew_phaser_free(ph);
    ew_free(I);
    ew_free(sup);
    return 0;
}

typedef struct {
    int done, n;
    double voxel, edge, corner, d05, prtf_res, error, seconds;
    int loops, starts;
} struct_row_t;

/* FSC-0.5 resolution (Angstrom) of two centred n^3 densities (float r2c). */
static double fsc05(int n, double ds, const float *a, const float *b)
{
    const int nh = n / 2 + 1, ns = n / 2 + 1;
    size_t nv = (size_t)n * n * n, nc = (size_t)n * n * nh;
    float *ra = fftwf_alloc_real(nv), *rb = fftwf_alloc_real(nv);
    fftwf_complex *A = fftwf_alloc_complex(nc), *B = fftwf_alloc_complex(nc);
    memcpy(ra, a, nv * sizeof *ra);
    memcpy(rb, b, nv * sizeof *rb);
    fftwf_plan pa = fftwf_plan_dft_r2c_3d(n, n, n, ra, A, FFTW_ESTIMATE);
    fftwf_plan pb = fftwf_plan_dft_r2c_3d(n, n, n, rb, B, FFTW_ESTIMATE);
    fftwf_execute(pa);
    fftwf_execute(pb);
    double num[1024] = {0}, da[1024] = {0}, db[1024] = {0};
    for (int kz = 0; kz < n; kz++)
        for (int ky = 0; ky < n; ky++)
            for (int kx = 0; kx < nh; kx++) {
                int fz = kz <= n / 2 ? kz : kz - n, fy = ky <= n / 2 ? ky : ky - n;
                int sh = (int)lround(sqrt((double)fz * fz + (double)fy * fy + (double)kx * kx));
                if (sh >= ns || sh >= 1024) continue;
                size_t i = ((size_t)kz * n + ky) * nh + kx;
                num[sh] += (double)A[i][0] * B[i][0] + (double)A[i][1] * B[i][1];
                da[sh] += (double)A[i][0] * A[i][0] + (double)A[i][1] * A[i][1];
                db[sh] += (double)B[i][0] * B[i][0] + (double)B[i][1] * B[i][1];
            }
    double d = 1.0 / ((ns - 1) * ds), prev = 1.0;
    for (int j = 1; j < ns && j < 1024; j++) {
        double f = num[j] / sqrt(da[j] * db[j]);
        if (f < 0.5) {
            d = 1.0 / ((j - 1 + (prev - 0.5) / (prev - f)) * ds);
            break;
        }
        prev = f;
    }
    fftwf_destroy_plan(pa);
    fftwf_destroy_plan(pb);
    fftwf_free(ra);
    fftwf_free(rb);
    fftwf_free(A);
    fftwf_free(B);
    return d;
}

static int bench_structure(const char *path, int nreq, int loops, int starts, int threads, struct_row_t *row)
{
    ew_structure_options_t so = {1, 1, 0};
    ew_structure_t st;
    ew_atoms_t at;
    ew_atoms_options_t ao = {0};
    if (ew_structure_read(path, &so, &st) != EW_OK) goto fail;
    if (ew_atoms_from_structure(&st, &ao, &at) != EW_OK) {
        ew_structure_free(&st);
        goto fail;
    }
    ew_structure_free(&st);
    ew_atoms_center(&at);
    ew_detector_config_t dc = ew_detector_config_reference();
    ew_detector_t det;
    if (ew_detector_init(&det, &dc) != EW_OK) goto fail;
    int n;
    double ds;
    ew_detector_volume_grid(&det, nreq, &n, &ds);
    ew_rvol_t I;
    if (ew_rvol_alloc(&I, n, ds) != EW_OK) goto fail;
    size_t nv = (size_t)n * n * n;
    float *Fr = malloc(nv * sizeof *Fr), *Fi = malloc(nv * sizeof *Fi), *truth = malloc(nv * sizeof *truth);
    float *al = malloc(nv * sizeof *al);
    uint8_t *known = malloc(nv);
    fftwf_complex *a = fftwf_alloc_complex(nv);
    if (!Fr || !Fi || !truth || !al || !known || !a) return -1;
    if (ew_scatter_volume(&at, &I, Fr, Fi, NULL) != EW_OK) goto fail;
    const int c = n / 2;
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                double r = sqrt((double)(z - c) * (z - c) + (y - c) * (y - c) + (x - c) * (x - c)) * ds;
                known[i] = r <= det.s_max_corner;
                size_t k = ((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n + (size_t)((x - c + n) % n);
                a[k][0] = known[i] ? Fr[i] : 0.0f;
                a[k][1] = known[i] ? Fi[i] : 0.0f;
            }
    fftwf_plan p = fftwf_plan_dft_3d(n, n, n, a, a, FFTW_BACKWARD, FFTW_ESTIMATE);
    fftwf_execute(p);
    fftwf_destroy_plan(p);
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                truth[((size_t)z * n + y) * n + x] =
                    a[((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n + (size_t)((x - c + n) % n)][0] /
                    (float)nv;
    ew_phase_config_t cfg;
    ew_phase_config_default(&cfg);
    cfg.loops = loops;
    cfg.starts = starts;
    cfg.nthreads = threads;
    ew_phase_result_t res;
    if (ew_phase_run(&I, known, &cfg, &res) != EW_OK) goto fail;
    ew_phase_align_t ai;
    if (ew_phase_align(truth, res.density, n, threads, al, &ai) != EW_OK) goto fail;
    row->done = 1;
    row->n = n;
    row->voxel = res.voxel;
    row->edge = 1.0 / det.s_max_edge;
    row->corner = 1.0 / det.s_max_corner;
    row->d05 = fsc05(n, ds, truth, al);
    row->prtf_res = res.resolution;
    row->error = res.error;
    row->seconds = res.seconds;
    row->loops = loops;
    row->starts = starts;
    ew_phase_result_free(&res);
    ew_rvol_free(&I);
    ew_atoms_free(&at);
    ew_detector_free(&det);
    fftwf_free(a);
    free(Fr);
    free(Fi);
    free(truth);
    free(al);
    free(known);
    return 0;
fail:
    fprintf(stderr, "bench_phase: %s\n", ew_error_message());
    return -1;
}

int main(int argc, char **argv)
{
    int sizes[8] = {64, 128}, nsizes = 2, threads = 2, iters = 20, rounds = 5, nreq = 45, loops = 10, starts = 2;
    const char *pdb = "../shared/data/pdb/2cex.pdb";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) continue;
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--pdb") == 0 && i + 1 < argc) pdb = argv[++i];
        else if (strcmp(argv[i], "--no-structure") == 0) pdb = NULL;
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) nreq = atoi(argv[++i]);
        else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc) loops = atoi(argv[++i]);
        else if (strcmp(argv[i], "--starts") == 0 && i + 1 < argc) starts = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            nsizes = 0;
            for (char *t = strtok(argv[++i], ","); t && nsizes < 8; t = strtok(NULL, ",")) sizes[nsizes++] = atoi(t);
        } else {
            fprintf(stderr, "usage: bench_phase [--json] [--sizes 64,128] [--threads 2] [--iters 20] [--rounds 5] [--pdb FILE | "
                            "--no-structure] [--n 45] [--loops 10] [--starts 2]\n");
            return 2;
        }
    }
    if (threads < 1 || iters < 1 || rounds < 1) return 2;
    row_t rows[8];
    printf("phase retrieval: time per iteration vs the FFTs it needs (fftwf, %d threads, FFTW_MEASURE, min of %d single timings)\n",
           threads, rounds * iters);
    printf("%5s %12s | %10s %6s | %10s %6s | %10s %6s | %10s %6s\n", "n", "FFT pair ms", "ER ms", "ratio",
           "HIO ms", "ratio", "RAAR ms", "ratio", "DM ms", "ratio");
    for (int s = 0; s < nsizes; s++) {
        if (bench_size(sizes[s], threads, iters, rounds, &rows[s]) != 0) return 1;
        row_t *r = &rows[s];
        printf("%5d %12.3f | %10.3f %6.2f | %10.3f %6.2f | %10.3f %6.2f | %10.3f %6.2f\n", r->n, r->fft_pair * 1e3,
               r->it[0] * 1e3, r->ratio[0], r->it[1] * 1e3, r->ratio[1], r->it[3] * 1e3, r->ratio[3], r->it[2] * 1e3,
               r->ratio[2]);
        fflush(stdout);
    }
    printf("(ratio = iteration time / time of its FFTs: 1 pair for ER/HIO/RAAR, 2 pairs for DM; target <= 1.5)\n");
    struct_row_t sr = {0};
    if (pdb && access(pdb, R_OK) == 0) {
        if (bench_structure(pdb, nreq, loops, starts, threads, &sr) != 0) return 1;
        printf("\n%s: true intensity on the reference detector's grid (n %d, voxel %.2f A, measured to the corner, "
               "%.2f A)\n",
               pdb, sr.n, sr.voxel, sr.corner);
        printf("  %d starts x %d loops of ER 50 / HIO 25 / DM 25 / ER 50 + shrinkwrap: %.1f s, Fourier error %.4f\n",
               sr.starts, sr.loops, sr.seconds, sr.error);
        printf("  FSC-0.5 with the true density %.2f A; detector edge %.2f A; ratio %.3f (target <= 1.25); PRTF 1/e "
               "%.2f A\n",
               sr.d05, sr.edge, sr.d05 / sr.edge, sr.prtf_res);
    } else if (pdb) {
        printf("\n(%s not found: structure phasing skipped)\n", pdb);
    }
    printf("{\"bench\":\"phase\",\"threads\":%d", threads);
    for (int s = 0; s < nsizes; s++) {
        row_t *r = &rows[s];
        printf(",\"n%d\":{\"fft_pair_ms\":%.4f,\"er_ms\":%.4f,\"hio_ms\":%.4f,\"raar_ms\":%.4f,\"dm_ms\":%.4f,"
               "\"er_ratio\":%.3f,\"hio_ratio\":%.3f,\"raar_ratio\":%.3f,\"dm_ratio\":%.3f}",
               r->n, r->fft_pair * 1e3, r->it[0] * 1e3, r->it[1] * 1e3, r->it[3] * 1e3, r->it[2] * 1e3, r->ratio[0],
               r->ratio[1], r->ratio[3], r->ratio[2]);
    }
    if (sr.done)
        printf(",\"structure\":{\"n\":%d,\"voxel_a\":%.4f,\"loops\":%d,\"starts\":%d,\"seconds\":%.2f,\"error\":%.5f,"
               "\"fsc05_a\":%.3f,\"edge_a\":%.3f,\"ratio\":%.4f,\"prtf_a\":%.3f}",
               sr.n, sr.voxel, sr.loops, sr.starts, sr.seconds, sr.error, sr.d05, sr.edge, sr.d05 / sr.edge,
               sr.prtf_res);
    printf("}\n");
    return 0;
}
