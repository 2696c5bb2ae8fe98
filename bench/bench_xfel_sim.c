/* Benchmark of the XFEL simulator at the reference setup (neurorient /
 * skopi: 128 x 128 pixels of 0.78 mm at 0.2 m, 4600 eV, 1e12 photons in a
 * 0.5 um focus):
 *   - time to build a 129^3 photon volume of 2cex and of 1bxr;
 *   - patterns per second sliced from it with every kind of noise, written
 *     to disk (raw float32, and through the real writers: CXI float32,
 *     uint16 and int32 counts, sparse .emc; with and without an fsync of
 *     the files), and the same with stages removed (what bounds it);
 *   - predicted mean photons per pattern at fluence x1, x10, x100;
 *   - trilinear interpolation error against exact direct summation.
 * Usage: bench_xfel_sim [--json] [--patterns N] [--threads T] [--out DIR] [--rate-only]
 * (--rate-only: only the 2cex throughput breakdown, no 1bxr or exact sums)
 * Needs ../shared/data/pdb (or $EWALD_DATA/pdb); skips what is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "io/structure.h"
#include "physics/xfel_sim.h"

typedef struct {
    FILE *fp;
    size_t npix;
    double bytes;
    double write_s; /* wall seconds inside fwrite */
} raw_sink_t;

static ew_status_t raw_write(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    raw_sink_t *s = ctx;
    if (!s->fp) return EW_OK;
    /* the batch is one contiguous buffer */
    size_t n = count * s->npix;
    double t0 = ew_time_now();
    int ok = fwrite(p[0].data, sizeof(float), n, s->fp) == n;
    s->write_s += ew_time_now() - t0;
    if (!ok) return ew_fail(EW_ERR_IO, "bench: write failed");
    s->bytes += (double)n * sizeof(float);
    return EW_OK;
}

static const char *data_path(const char *rel)
{
    static char buf[1024];
    const char *root = getenv("EWALD_DATA");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared/data", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

typedef struct {
    float *buf;
    size_t npix;
} cp_t;

static ew_status_t copy_fn(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    cp_t *c = ctx;
    for (size_t k = 0; k < count; k++)
        memcpy(c->buf + p[k].index * c->npix, p[k].expected, c->npix * sizeof(float));
    return EW_OK;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Runs the simulation; returns patterns per wall second and, in *per_cpu,
 * patterns per CPU second (what one unshared core would do: the machine
 * this runs on is shared, so wall time overstates the cost). */
static double run_patterns(const ew_xfel_model_t *m, ew_xfel_config_t cfg, const char *path, double *mbps,
                           double *per_cpu)
{
    raw_sink_t s = {NULL, m->det.npix, 0, 0};
    if (path) s.fp = fopen(path, "wb");
    ew_xfel_stats_t st;
    double t0 = ew_time_now(), c0 = cpu_now();
    ew_status_t rc = ew_xfel_simulate(&cfg, &m->det, &m->W, NULL, raw_write, &s, &st);
    if (s.fp) {
        double t1 = ew_time_now();
        fflush(s.fp);
        fsync(fileno(s.fp));
        s.write_s += ew_time_now() - t1;
        fclose(s.fp);
        remove(path);
    }
    double dt = ew_time_now() - t0, dc = cpu_now() - c0;
    if (per_cpu) *per_cpu = cfg.n_patterns / dc;
    if (rc != EW_OK) {
        fprintf(stderr, "bench: %s\n", ew_error_message());
        return 0;
    }
    if (mbps) *mbps = s.write_s > 0 ? s.bytes / s.write_s / 1e6 : 0;
    return cfg.n_patterns / dt;
}

/* One run through the real file writers (ew_xfel_simulate_to_cxi): CXI
 * with the given pattern type (dtype < 0: no CXI) and/or a sparse .emc.
 * Returns patterns per wall second until the writers returned; *fsync_s
 * gets the extra wall seconds of an fsync of the files afterwards (to the
 * disk itself), *cpu the process CPU seconds, *bytes the files' size. */
static double run_files(const ew_xfel_model_t *m, ew_xfel_config_t cfg, const char *dir, int dtype, int emc,
                        double *fsync_s, double *cpu, double *bytes)
{
    char cxi[1024], emcp[1024];
    snprintf(cxi, sizeof cxi, "%s/bench_xfel_%d.cxi", dir, (int)getpid());
    snprintf(emcp, sizeof emcp, "%s/bench_xfel_%d.emc", dir, (int)getpid());
    ew_xfel_output_t out;
    memset(&out, 0, sizeof out);
    out.cxi_path = dtype >= 0 ? cxi : NULL;
    out.cxi_dtype = dtype >= 0 ? dtype : 0;
    out.emc_path = emc ? emcp : NULL;
    ew_xfel_stats_t st;
    double t0 = ew_time_now(), c0 = cpu_now();
    ew_status_t rc = ew_xfel_simulate_to_cxi(m, &cfg, &out, &st);
    double t1 = ew_time_now();
    *bytes = 0;
    const char *paths[2] = {out.cxi_path, out.emc_path};
    for (int i = 0; i < 2; i++) {
        if (!paths[i]) continue;
        FILE *fp = fopen(paths[i], "rb");
        if (fp) {
            fseek(fp, 0, SEEK_END);
            *bytes += (double)ftell(fp);
            fsync(fileno(fp));
            fclose(fp);
        }
    }
    *fsync_s = ew_time_now() - t1;
    *cpu = cpu_now() - c0;
    for (int i = 0; i < 2; i++)
        if (paths[i]) remove(paths[i]);
    if (rc != EW_OK) {
        fprintf(stderr, "bench: %s\n", ew_error_message());
        return 0;
    }
    return cfg.n_patterns / (t1 - t0);
}

int main(int argc, char **argv)
{
    int json = 0, threads = 2, rate_only = 0;
    size_t npat = 20000;
    const char *outdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--patterns") && i + 1 < argc) npat = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) outdir = argv[++i];
        else if (!strcmp(argv[i], "--rate-only")) rate_only = 1;
    }
    (void)json;
    ew_log_set_level(EW_LOG_WARN);
    const char *names[2] = {"2cex", "1bxr"};
    double build_s[2] = {0, 0}, photons[2][3] = {{0}}, recorded[2][3] = {{0}};
    double rate_full = 0, rate_nowrite = 0, rate_slice = 0, rate_poisson = 0, rate_jitter = 0, mbps = 0;
    double cpu_full = 0, cpu_nowrite = 0, cpu_slice = 0, cpu_poisson = 0, cpu_jitter = 0;
    double rate_fluence = 0, cpu_fluence = 0, rate_shm = 0, cpu_shm = 0, mbps_shm = 0, rate_x100 = 0, cpu_x100 = 0;
    char shmpath[1024];
    /* real writers: float32 CXI, uint16 CXI, int32 CXI, sparse .emc */
    enum { NF = 4 };
    static const char *const fname[NF] = {"CXI float32", "CXI uint16", "CXI int32", "sparse .emc"};
    static const int fdtype[NF] = {0, 2, 1, -1}, femc[NF] = {0, 0, 0, 1};
    double frate[NF] = {0}, ffs[NF] = {0}, fcpu[NF] = {0}, fbytes[NF] = {0}, cpu_s_nowrite = 0, wall_s_nowrite = 0;
    double interp_rms[2] = {0, 0}, interp_tot[2] = {0, 0};
    int have[2] = {0, 0}, nvox = 0, nvox_fine = 0;
    double interp_rms_fine[2] = {0, 0}, build_fine[2] = {0, 0};
    char rawpath[1024];
    snprintf(rawpath, sizeof rawpath, "%s/bench_xfel_%d.raw", outdir, (int)getpid());

    double load = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load) != 1) load = 0;
        fclose(la);
    }
    printf("XFEL simulator benchmark, reference setup (128 x 128, 4600 eV, 0.2 m), %d threads\n", threads);
    for (int k = 0; k < 2; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "pdb/%s.pdb", names[k]);
        const char *path = data_path(rel);
        if (!path) {
            printf("  %s: absent, skipped\n", names[k]);
            continue;
        }
        ew_xfel_setup_t su;
        memset(&su, 0, sizeof su);
        su.structure_path = path;
        su.detector = ew_detector_config_reference();
        su.volume_n = 129;
        su.volume.threads = threads;
        su.sim = ew_xfel_config_reference();
        ew_xfel_model_t m;
        if (ew_xfel_model_build(&su, &m) != EW_OK) {
            fprintf(stderr, "bench: %s\n", ew_error_message());
            return 1;
        }
        have[k] = 1;
        nvox = m.W.n;
        build_s[k] = m.build_seconds;
        printf("  %s: %zu atoms, %.0f electrons; photon volume %d^3 (ds %.5f 1/A) built in %.2f s\n", names[k],
               m.atoms.n, m.atoms.electrons, m.W.n, m.W.ds, m.build_seconds);
        static const double fx[3] = {1, 10, 100};
        for (int f = 0; f < 3; f++) {
            double all, rec;
            ew_xfel_predict_photons(&m.det, &m.W, &all, &rec);
            photons[k][f] = all * fx[f];
            recorded[k][f] = rec * fx[f];
        }
        printf("    mean photons per pattern (all pixels): x1 %.1f, x10 %.1f, x100 %.1f\n", photons[k][0],
               photons[k][1], photons[k][2]);

        /* interpolation error against exact sums: 2 patterns at x1 */
        if (!rate_only) {
            enum { NE = 2 };
            ew_xfel_config_t c = su.sim;
            c.n_patterns = NE;
            c.poisson = 0;
            c.keep_expected = 1;
            c.threads = threads;
            size_t np = m.det.npix;
            float *a = malloc(sizeof(float) * NE * np), *b = malloc(sizeof(float) * NE * np);
            cp_t ca = {a, np}, cb = {b, np};
            ew_xfel_simulate(&c, &m.det, &m.W, NULL, copy_fn, &ca, NULL);
            c.exact = 1;
            double t0 = ew_time_now();
            ew_xfel_simulate(&c, &m.det, NULL, &m.atoms, copy_fn, &cb, NULL);
            double texact = (ew_time_now() - t0) / NE;
            double num = 0, den = 0, ta = 0, tb = 0;
            for (size_t i = 0; i < NE * np; i++) {
                num += pow((double)a[i] - b[i], 2);
                den += (double)b[i] * b[i];
                ta += a[i];
                tb += b[i];
            }
            interp_rms[k] = sqrt(num / den);
            interp_tot[k] = ta / tb - 1;
            printf("    trilinear vs exact (%d patterns): relative rms %.4f, total photons %+.4f; exact %.2f s/pattern\n",
                   NE, interp_rms[k], interp_tot[k], texact);
            free(a), free(b);
        }

        /* the same at the default grid (one pixel step per voxel) */
        if (!rate_only) {
            ew_xfel_setup_t su2 = su;
            su2.volume_n = 0;
            ew_xfel_model_t m2;
            if (ew_xfel_model_build(&su2, &m2) == EW_OK) {
                enum { NE = 2 };
                ew_xfel_config_t c = su.sim;
                c.n_patterns = NE;
                c.poisson = 0;
                c.keep_expected = 1;
                c.threads = threads;
                size_t np = m2.det.npix;
                float *a = malloc(sizeof(float) * NE * np), *b = malloc(sizeof(float) * NE * np);
                cp_t ca = {a, np}, cb = {b, np};
                ew_xfel_simulate(&c, &m2.det, &m2.W, NULL, copy_fn, &ca, NULL);
                c.exact = 1;
                ew_xfel_simulate(&c, &m2.det, NULL, &m2.atoms, copy_fn, &cb, NULL);
                double num = 0, den = 0;
                for (size_t i = 0; i < NE * np; i++) {
                    num += pow((double)a[i] - b[i], 2);
                    den += (double)b[i] * b[i];
                }
                interp_rms_fine[k] = sqrt(num / den);
                nvox_fine = m2.W.n;
                build_fine[k] = m2.build_seconds;
                printf("    default grid %d^3 (one pixel step) built in %.2f s: trilinear vs exact relative rms %.4f\n",
                       m2.W.n, m2.build_seconds, interp_rms_fine[k]);
                free(a), free(b);
                ew_xfel_model_free(&m2);
            }
        }

        if (k == 0) {
            /* throughput: stages added one at a time (differences of CPU
             * time per pattern give each stage's cost) */
            ew_xfel_config_t c = su.sim;
            c.n_patterns = npat;
            c.threads = threads;
            c.poisson = 0;
            c.readout_sigma = 0;
            c.background = 0;
            rate_slice = run_patterns(&m, c, NULL, NULL, &cpu_slice);
            c.fluence_dist = EW_FLUENCE_GAMMA;
            c.fluence_spread = 0.5;
            rate_fluence = run_patterns(&m, c, NULL, NULL, &cpu_fluence);
            c.poisson = 1;
            c.background = 0.01;
            rate_poisson = run_patterns(&m, c, NULL, NULL, &cpu_poisson);
            c.readout_sigma = 0.1;
            rate_nowrite = run_patterns(&m, c, NULL, NULL, &cpu_nowrite);
            cpu_s_nowrite = npat / cpu_nowrite;
            wall_s_nowrite = npat / rate_nowrite;
            for (int f = 0; f < NF; f++)
                frate[f] = run_files(&m, c, outdir, fdtype[f], femc[f], &ffs[f], &fcpu[f], &fbytes[f]);
            rate_full = run_patterns(&m, c, rawpath, &mbps, &cpu_full);
            char shmdir[] = "/dev/shm";
            if (access(shmdir, W_OK) == 0) {
                snprintf(shmpath, sizeof shmpath, "%s/bench_xfel_%d.raw", shmdir, (int)getpid());
                rate_shm = run_patterns(&m, c, shmpath, &mbps_shm, &cpu_shm);
            }
            ew_xfel_config_t c3 = c;
            c3.beam_jitter_px = 0.2;
            c3.n_patterns = npat / 4;
            rate_jitter = run_patterns(&m, c3, NULL, NULL, &cpu_jitter);
            ew_xfel_config_t c4 = c;
            c4.fluence_factor = 100.0; /* ~1,300 photons per pattern: many pixels with k >= 1 */
            rate_x100 = run_patterns(&m, c4, NULL, NULL, &cpu_x100);
            const double npx = (double)m.det.npix, ns = 1e9 / npx;
            printf("  patterns/s (2cex, %zu patterns, 129^3 volume): wall clock | per CPU-second | CPU ns per pixel\n",
                   npat);
            printf("    slicing + scaling (no noise):          %7.0f | %7.0f | %5.2f\n", rate_slice, cpu_slice,
                   ns / cpu_slice);
            printf("    + gamma fluence jitter 0.5:            %7.0f | %7.0f | %5.2f\n", rate_fluence, cpu_fluence,
                   ns / cpu_fluence);
            printf("    + Poisson, background 0.01:            %7.0f | %7.0f | %5.2f\n", rate_poisson, cpu_poisson,
                   ns / cpu_poisson);
            printf("    + Gaussian readout 0.1 (all noise):    %7.0f | %7.0f | %5.2f\n", rate_nowrite, cpu_nowrite,
                   ns / cpu_nowrite);
            printf("    all noise, float32 written to %-8s %7.0f | %7.0f | %5.2f  (%.0f MB/s in write)\n", outdir,
                   rate_full, cpu_full, ns / cpu_full, mbps);
            if (rate_shm > 0)
                printf("    all noise, float32 written to /dev/shm: %6.0f | %7.0f | %5.2f  (%.0f MB/s in write)\n",
                       rate_shm, cpu_shm, ns / cpu_shm, mbps_shm);
            printf("    all noise + beam-position jitter 0.2:  %7.0f | %7.0f | %5.2f\n", rate_jitter, cpu_jitter,
                   ns / cpu_jitter);
            printf("    all noise at fluence x100, not written: %6.0f | %7.0f | %5.2f\n", rate_x100, cpu_x100,
                   ns / cpu_x100);
            printf("  written by the real writers to %s (all noise; CPU s per thread = process CPU / %d):\n", outdir,
                   threads);
            printf("    %-12s  patterns/s to return | incl. fsync | wall s | CPU s per thread | CPU ns/px (write "
                   "part) | MB | MB/s incl. fsync\n", "");
            printf("    %-12s  %8.0f             |             | %6.2f | %6.2f           | %5.2f\n", "not written",
                   rate_nowrite, wall_s_nowrite, cpu_s_nowrite / threads, ns / cpu_nowrite);
            for (int f = 0; f < NF; f++) {
                double wall = npat / frate[f];
                printf("    %-12s  %8.0f             | %8.0f    | %6.2f | %6.2f           | %5.2f (%5.2f)    | %6.0f | "
                       "%5.0f\n",
                       fname[f], frate[f], npat / (wall + ffs[f]), wall, fcpu[f] / threads, fcpu[f] * 1e9 / npat / npx,
                       fcpu[f] * 1e9 / npat / npx - ns / cpu_nowrite, fbytes[f] / 1e6, fbytes[f] / 1e6 / (wall + ffs[f]));
            }
            printf("  breakdown, CPU ns per pixel: slice+scale %.2f, fluence %.2f, Poisson+background %.2f, "
                   "readout %.2f, write to %s %.2f (to /dev/shm %.2f)\n",
                   ns / cpu_slice, ns / cpu_fluence - ns / cpu_slice, ns / cpu_poisson - ns / cpu_fluence,
                   ns / cpu_nowrite - ns / cpu_poisson, outdir, ns / cpu_full - ns / cpu_nowrite,
                   rate_shm > 0 ? ns / cpu_shm - ns / cpu_nowrite : 0.0);
            printf("  2-core estimate (2 x per-CPU-second, all noise): %.0f patterns/s not written, %.0f written to "
                   "/dev/shm; writing float32 at 10,000/s needs %.0f MB/s\n",
                   2 * cpu_nowrite, 2 * cpu_shm, 1e4 * npx * 4 / 1e6);
        }
        if (rate_only) {
            ew_xfel_model_free(&m);
            break;
        }
        ew_xfel_model_free(&m);
    }
    printf("{\"bench\":\"xfel_sim\",\"threads\":%d,\"volume_n\":%d,\"build_s_2cex\":%.3f,\"build_s_1bxr\":%.3f,"
           "\"patterns_per_s_full_written\":%.1f,\"patterns_per_s_full\":%.1f,\"patterns_per_s_poisson\":%.1f,"
           "\"patterns_per_s_slice\":%.1f,\"patterns_per_s_beam_jitter\":%.1f,\"write_MBps\":%.1f,"
           "\"patterns_per_s_fluence\":%.1f,\"patterns_per_cpu_s_fluence\":%.1f,\"patterns_per_s_full_shm\":%.1f,"
           "\"patterns_per_cpu_s_full_shm\":%.1f,\"write_MBps_shm\":%.1f,"
           "\"patterns_per_s_full_x100\":%.1f,\"patterns_per_cpu_s_full_x100\":%.1f,"
           "\"patterns_per_cpu_s_full_written\":%.1f,\"patterns_per_cpu_s_full\":%.1f,\"patterns_per_cpu_s_poisson\":%.1f,"
           "\"patterns_per_cpu_s_slice\":%.1f,\"patterns_per_cpu_s_beam_jitter\":%.1f,\"load_avg\":%.2f,"
           "\"photons_2cex\":[%.2f,%.2f,%.2f],\"photons_1bxr\":[%.2f,%.2f,%.2f],"
           "\"recorded_2cex\":[%.2f,%.2f,%.2f],\"recorded_1bxr\":[%.2f,%.2f,%.2f],"
           "\"interp_rms_2cex\":%.5f,\"interp_rms_1bxr\":%.5f,\"interp_total_2cex\":%.5f,\"interp_total_1bxr\":%.5f,"
           "\"default_grid_n\":%d,\"default_grid_build_s\":[%.3f,%.3f],\"interp_rms_default_grid\":[%.5f,%.5f],"
           "\"have_2cex\":%d,\"have_1bxr\":%d,"
           "\"files\":{\"cxi_f32\":[%.1f,%.1f,%.3f,%.0f],\"cxi_u16\":[%.1f,%.1f,%.3f,%.0f],"
           "\"cxi_i32\":[%.1f,%.1f,%.3f,%.0f],\"emc\":[%.1f,%.1f,%.3f,%.0f]},"
           "\"files_fields\":\"patterns/s to return, patterns/s incl. fsync, CPU s, bytes\"}\n",
           threads, nvox, build_s[0], build_s[1], rate_full, rate_nowrite, rate_poisson, rate_slice, rate_jitter, mbps,
           rate_fluence, cpu_fluence, rate_shm, cpu_shm, mbps_shm, rate_x100, cpu_x100,
           cpu_full, cpu_nowrite, cpu_poisson, cpu_slice, cpu_jitter, load,
           photons[0][0], photons[0][1], photons[0][2], photons[1][0], photons[1][1], photons[1][2], recorded[0][0],
           recorded[0][1], recorded[0][2], recorded[1][0], recorded[1][1], recorded[1][2], interp_rms[0],
           interp_rms[1], interp_tot[0], interp_tot[1], nvox_fine, build_fine[0], build_fine[1], interp_rms_fine[0],
           interp_rms_fine[1], have[0], have[1], frate[0], frate[0] > 0 ? npat / (npat / frate[0] + ffs[0]) : 0,
           fcpu[0], fbytes[0], frate[1], frate[1] > 0 ? npat / (npat / frate[1] + ffs[1]) : 0, fcpu[1], fbytes[1],
           frate[2], frate[2] > 0 ? npat / (npat / frate[2] + ffs[2]) : 0, fcpu[2], fbytes[2], frate[3],
           frate[3] > 0 ? npat / (npat / frate[3] + ffs[3]) : 0, fcpu[3], fbytes[3]);
    return 0;
}

