/* Benchmark: seconds per cryo-EM micrograph (issue target: a 4096 x 4096
 * micrograph with 250 particles of 2cex at 1 A/px, full physics, on 2
 * cores, under 5 s).
 *
 *   bench_em_sim [--json] [--size N] [--particles N] [--pixel A] [--threads N]
 *                [--micrographs N] [--pdb path] [--genem] [--weak] [--estimate]
 *                [--wisdom file|none]   (FFTW wisdom loaded before and saved after planning;
 *                default build/bench/em_sim.fftw-wisdom, so only the first run pays for planning)
 *
 * Prints a table (setup, per-micrograph wall and CPU seconds, stages) and,
 * last, one JSON object. CPU seconds (all threads) are reported beside the
 * wall time because the machine may be shared: wall >= CPU / threads. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/structure.h"
#include "physics/em_sim.h"

static double cpu_now(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

static double loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

int main(int argc, char **argv)
{
    int size = 4096, particles = 250, threads = 2, nmic = 2, genem = 0, weak = 0;
    double pixel = 1.0;
    const char *pdb = "../shared/data/pdb/2cex.pdb", *wisdom = "build/bench/em_sim.fftw-wisdom";
    int estimate = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) continue;
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--particles") && i + 1 < argc) particles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pixel") && i + 1 < argc) pixel = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--micrographs") && i + 1 < argc) nmic = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pdb") && i + 1 < argc) pdb = argv[++i];
        else if (!strcmp(argv[i], "--genem")) genem = 1;
        else if (!strcmp(argv[i], "--weak")) weak = 1;
        else if (!strcmp(argv[i], "--estimate")) estimate = 1;
        else if (!strcmp(argv[i], "--wisdom") && i + 1 < argc) wisdom = argv[++i];
        else {
            fprintf(stderr, "bench_em_sim: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nmic < 1) nmic = 1;
    omp_set_num_threads(threads);
    ew_structure_t s;
    if (ew_structure_read(pdb, NULL, &s) != EW_OK) {
        printf("bench_em_sim: %s (skipped)\n", ew_error_message());
        printf("{\"bench\": \"em_sim\", \"skipped\": true}\n");
        return 0;
    }
    ew_em_config_t c;
    ew_em_config_default(&c);
    c.nx = c.ny = size;
    c.pixel = pixel;
    c.specimen.count_mean = particles;
    c.mode = genem ? EW_EM_GENEM : EW_EM_FULL;
    c.phase_grating = !weak;
    c.n_micrographs = (size_t)nmic;
    c.seed = 1;
    c.fft_measure = !estimate;
    if (wisdom && !strcmp(wisdom, "none")) wisdom = NULL;
    int wis_loaded = 0;
    if (wisdom && ew_em_fftw_wisdom_load(wisdom, &wis_loaded) != EW_OK) fprintf(stderr, "bench_em_sim: %s\n", ew_error_message());
    double load0 = loadavg();
    double w0 = ew_time_now(), c0 = cpu_now();
    ew_em_sim_t *sim;
    if (ew_em_sim_create(&c, &s, 1, &sim) != EW_OK) {
        fprintf(stderr, "bench_em_sim: %s\n", ew_error_message());
        return 1;
    }
    double setup_wall = ew_time_now() - w0, setup_cpu = cpu_now() - c0;
    if (wisdom && ew_em_fftw_wisdom_save(wisdom) != EW_OK) fprintf(stderr, "bench_em_sim: %s\n", ew_error_message());
    printf("em_sim: %d x %d px at %.2f A/px, %d particles of %s (%zu atoms), %s, %s, %d threads, oversample %d\n",
           size, size, pixel, particles, pdb, s.n_atoms, genem ? "GenEM preset" : "full physics",
           weak ? "weak phase" : "phase grating", threads, ew_em_sim_config(sim)->oversample);
    printf("setup (models, FFTW %s plans%s, ice spectrum): %.3f s wall, %.3f s CPU\n",
           estimate ? "ESTIMATE" : "MEASURE", wis_loaded ? " from wisdom" : "", setup_wall, setup_cpu);
    printf("%-6s %-10s %-10s %-9s %-9s %-9s %-9s %-9s\n", "mic", "wall s", "CPU s", "particles", "specimen",
           "ice", "optics", "detector");
    double best = 1e30, sum_wall = 0, sum_cpu = 0, st[4] = {0};
    size_t placed = 0;
    for (int k = 0; k < nmic; k++) {
        ew_em_micrograph_t m;
        double cw = cpu_now();
        if (ew_em_sim_run(sim, (size_t)k, &m) != EW_OK) {
            fprintf(stderr, "bench_em_sim: %s\n", ew_error_message());
            return 1;
        }
        double cpu = cpu_now() - cw;
        printf("%-6d %-10.3f %-10.3f %-9zu %-9.3f %-9.3f %-9.3f %-9.3f\n", k, m.seconds, cpu, m.n_particles,
               m.stage_seconds[0], m.stage_seconds[1], m.stage_seconds[2], m.stage_seconds[3]);
        if (m.seconds < best) best = m.seconds;
        sum_wall += m.seconds;
        sum_cpu += cpu;
        for (int i = 0; i < 4; i++) st[i] += m.stage_seconds[i] / nmic;
        placed += m.n_particles;
        ew_em_micrograph_free(&m);
    }
    double load1 = loadavg();
    printf("mean %.3f s wall (best %.3f s), %.3f s CPU per micrograph; load average %.1f -> %.1f on this machine\n",
           sum_wall / nmic, best, sum_cpu / nmic, load0, load1);
    printf("{\"bench\": \"em_sim\", \"size\": %d, \"pixel\": %.3f, \"particles\": %d, \"atoms_per_particle\": %zu, "
           "\"threads\": %d, \"mode\": \"%s\", \"fft\": \"%s\", \"setup_s\": %.3f, \"seconds_per_micrograph\": %.3f, "
           "\"best_seconds\": %.3f, \"cpu_seconds_per_micrograph\": %.3f, \"stage_specimen_s\": %.3f, "
           "\"stage_ice_s\": %.3f, \"stage_optics_s\": %.3f, \"stage_detector_s\": %.3f, \"placed\": %.1f, "
           "\"loadavg\": %.2f, \"target_s\": 5.0}\n",
           size, pixel, particles, s.n_atoms, threads, genem ? "genem" : "full",
           estimate ? "estimate" : (wis_loaded ? "measure+wisdom" : "measure"), setup_wall, sum_wall / nmic, best,
           sum_cpu / nmic, st[0], st[1], st[2], st[3], (double)placed / nmic, 0.5 * (load0 + load1));
    ew_em_sim_destroy(sim);
    ew_structure_free(&s);
    return 0;
}
