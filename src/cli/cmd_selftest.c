/* ewald selftest: a quick check that this build works on this machine. */
#include <stdio.h>
#include <string.h>

#include <cblas.h>
#include <fftw3.h>
#include <hdf5.h>
#include <omp.h>
#include <png.h>

#include "cli/cli.h"

int cmd_selftest(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_opt_t opts[] = {{0}};
    ew_cmd_info_t info = {"ewald selftest [--json]",
                          "Checks the counter-based RNG against the Philox4x32-10 known-answer vector, that "
                          "draws do not depend on the thread count, and reports the libraries and threads "
                          "this build uses.",
                          "ok, threads, openblas, fftw, hdf5, libpng, rng_known_answer, rng_thread_invariant",
                          0, 0};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;

    /* Random123 kat_vectors: philox4x32-10, ctr = key = 0. */
    const uint32_t zero4[4] = {0, 0, 0, 0}, zero2[2] = {0, 0};
    const uint32_t expect[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    uint32_t out[4];
    ew_philox4x32_10(zero4, zero2, out);
    int kat = !memcmp(out, expect, sizeof out);

    /* Per-item streams: the same values with 1 thread and with all threads. */
    enum { N = 4096 };
    static double a[N], b[N];
    for (int t = 0; t < 2; t++) {
        double *dst = t ? b : a;
        int threads = t ? omp_get_max_threads() : 1;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 7)
        for (int i = 0; i < N; i++) {
            ew_rng_t r;
            ew_rng_init(&r, 12345, ew_rng_stream_id(EW_RNG_TAG_GENERIC, (uint64_t)i));
            dst[i] = ew_rng_normal(&r) + (double)ew_rng_poisson(&r, 3.5 + i % 50);
        }
    }
    int inv = !memcmp(a, b, sizeof a);

    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    char h5[32];
    snprintf(h5, sizeof h5, "%u.%u.%u", maj, min, rel);
    printf("ewald %s\n", EW_VERSION);
    printf("  OpenMP threads     %d\n", omp_get_max_threads());
    printf("  OpenBLAS           %s", openblas_get_config());
    printf(" (%d threads)\n", openblas_get_num_threads());
    printf("  FFTW               %s\n", fftw_version);
    printf("  HDF5               %s\n", h5);
    printf("  libpng             %s\n", PNG_LIBPNG_VER_STRING);
    printf("  Philox known answer  %s\n", kat ? "ok" : "FAILED");
    printf("  thread-invariant RNG %s\n", inv ? "ok" : "FAILED");
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", kat && inv);
        cJSON_AddNumberToObject(o, "threads", omp_get_max_threads());
        cJSON_AddStringToObject(o, "openblas", openblas_get_config());
        cJSON_AddStringToObject(o, "fftw", fftw_version);
        cJSON_AddStringToObject(o, "hdf5", h5);
        cJSON_AddStringToObject(o, "libpng", PNG_LIBPNG_VER_STRING);
        cJSON_AddBoolToObject(o, "rng_known_answer", kat);
        cJSON_AddBoolToObject(o, "rng_thread_invariant", inv);
        ew_cli_json_print(o);
        cJSON_Delete(o);
    }
    return kat && inv ? 0 : 1;
}
