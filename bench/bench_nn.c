/* Benchmark of the nn engine: sgemm rate, conv layers at ResNet-18 shapes
 * (forward + backward GFLOP/s as a fraction of the sgemm rate, under both
 * thread policies), training steps of a ResNet-18 encoder (1 channel,
 * 128x128, batch 32) and a 5x256 SIREN on 16,384 points, side by side with
 * PyTorch CPU (bench/torch_nn.py through /usr/bin/python3, when torch is
 * importable). All timings are best of --reps repeats after a warm-up.
 *
 * usage: bench_nn [--json] [--reps N] [--batch N] [--size N] [--points N] [--no-torch]
 */
#include <cblas.h>
#include <cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "nn/blocks.h"
#include "nn/conv.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/threads.h"

static int g_reps = 3;

/* Wall and process CPU time. On this shared machine wall time mostly
 * measures the other users' load; CPU time divided by the thread count
 * estimates the wall time on idle cores (valid with OMP_WAIT_POLICY=passive,
 * when idle threads sleep instead of spinning). Both are reported, best of
 * the repeats. */
typedef struct {
    double wall, cpu;
} tm2_t;

static tm2_t tnow(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    tm2_t r = {ew_time_now(), (double)t.tv_sec + 1e-9 * (double)t.tv_nsec};
    return r;
}

static void tbest(tm2_t *best, tm2_t t0, int rep)
{
    tm2_t t1 = tnow();
    double w = t1.wall - t0.wall, c = t1.cpu - t0.cpu;
    if (rep == 0) return; /* warm-up */
    if (rep == 1 || w < best->wall) best->wall = w;
    if (rep == 1 || c < best->cpu) best->cpu = c;
}

static float *randbuf(size_t n, uint64_t seed)
{
    float *p = ew_alloc_array(n, sizeof(float));
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) p[i] = (float)(ew_rng_uniform(&r) * 2 - 1);
    return p;
}

/* GFLOP/s from wall time (rate) and from CPU time (rate_cpu, times threads) */
static void sgemm_rate(int n, int threads, double *rate, double *rate_cpu)
{
    float *a = randbuf((size_t)n * n, 1), *b = randbuf((size_t)n * n, 2), *c = randbuf((size_t)n * n, 3);
    tm2_t best = {0, 0};
    for (int r = 0; r <= g_reps; r++) {
        tm2_t t = tnow();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        tbest(&best, t, r);
    }
    ew_free(a);
    ew_free(b);
    ew_free(c);
    *rate = 2.0 * n * n * (double)n / best.wall / 1e9;
    *rate_cpu = 2.0 * n * n * (double)n / (best.cpu / threads) / 1e9;
}

typedef struct {
    const char *name;
    int c, oc, k, s, p, hw;
} conv_shape_t;

/* fwd + bwd (dx, dw) seconds, best of reps */
static tm2_t time_conv(const conv_shape_t *cs, int n)
{
    ew_conv2d_t g = {.n = n, .c = cs->c, .h = cs->hw, .w = cs->hw, .oc = cs->oc, .kh = cs->k, .kw = cs->k,
                     .stride = cs->s, .pad = cs->p};
    tm2_t best = {-1, -1};
    if (ew_conv2d_setup(&g) != EW_OK) return best;
    size_t nx = (size_t)n * g.c * g.h * g.w, ny = (size_t)n * g.oc * g.oh * g.ow, nw = (size_t)g.oc * g.c * g.kh * g.kw;
    float *x = randbuf(nx, 4), *w = randbuf(nw, 5), *y = randbuf(ny, 6), *dx = randbuf(nx, 7), *dw = randbuf(nw, 8);
    for (int r = 0; r <= g_reps; r++) {
        tm2_t t = tnow();
        if (ew_conv2d_forward(y, x, w, NULL, &g) != EW_OK || ew_conv2d_backward(dx, dw, NULL, y, x, w, &g) != EW_OK)
            break;
        tbest(&best, t, r);
    }
    ew_free(x);
    ew_free(w);
    ew_free(y);
    ew_free(dx);
    ew_free(dw);
    return best;
}

static tm2_t time_resnet(int batch, int size)
{
    ew_params_t P;
    ew_params_init(&P);
    ew_resnet_t R;
    ew_resnet_config_t cfg = ew_resnet18_config(1, 6);
    tm2_t best = {-1, -1};
    if (ew_resnet_create(&R, &P, "", &cfg) != EW_OK || ew_params_alloc(&P) != EW_OK) return best;
    ew_layers_init(&P, 1);
    float *x = randbuf((size_t)batch * size * size, 9), *t = randbuf((size_t)batch * 6, 10);
    float *dy = ew_alloc_array((size_t)batch * 6, sizeof(float));
    ew_optim_t opt = ew_optim_default(EW_OPT_ADAMW);
    for (int r = 0; r <= g_reps; r++) {
        tm2_t t0 = tnow();
        const float *y;
        ew_params_zero_grad(&P);
        if (ew_resnet_forward(&R, &P, x, batch, size, size, 1, &y) != EW_OK) break;
        memset(dy, 0, (size_t)batch * 6 * sizeof(float));
        ew_loss_mse(dy, y, t, (size_t)batch * 6, 1.0);
        if (ew_resnet_backward(&R, &P, dy, NULL) != EW_OK) break;
        ew_optim_step(&P, &opt, 1e-3);
        tbest(&best, t0, r);
    }
    ew_free(x);
    ew_free(t);
    ew_free(dy);
    ew_resnet_free(&R);
    ew_params_free(&P);
    return best;
}

static tm2_t time_siren(int points)
{
    ew_params_t P;
    ew_params_init(&P);
    ew_mlp_t M;
    ew_mlp_config_t cfg = ew_siren_config(3, 256, 5, 1);
    tm2_t best = {-1, -1};
    if (ew_mlp_create(&M, &P, "", &cfg) != EW_OK || ew_params_alloc(&P) != EW_OK) return best;
    ew_layers_init(&P, 1);
    ew_mlp_init(&M, &P, 1);
    float *x = randbuf((size_t)points * 3, 11), *t = randbuf((size_t)points, 12);
    float *dy = ew_alloc_array((size_t)points, sizeof(float));
    ew_optim_t opt = ew_optim_default(EW_OPT_ADAMW);
    for (int r = 0; r <= g_reps; r++) {
        tm2_t t0 = tnow();
        const float *y;
        ew_params_zero_grad(&P);
        if (ew_mlp_forward(&M, &P, x, points, &y) != EW_OK) break;
        memset(dy, 0, (size_t)points * sizeof(float));
        ew_loss_mse(dy, y, t, (size_t)points, 1.0);
        if (ew_mlp_backward(&M, &P, dy, NULL) != EW_OK) break;
        ew_optim_step(&P, &opt, 1e-4);
        tbest(&best, t0, r);
    }
    ew_free(x);
    ew_free(t);
    ew_free(dy);
    ew_mlp_free(&M);
    ew_params_free(&P);
    return best;
}

/* Run bench/torch_nn.py; returns its parsed JSON or NULL (absent torch). */
static cJSON *run_torch(int threads, int batch, int size, int points, const conv_shape_t *cs, int ncs)
{
    if (access("/usr/bin/python3", X_OK) != 0 || access("bench/torch_nn.py", R_OK) != 0) return NULL;
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) return NULL;
    char in[] = "/tmp/ewald-bench-nn-XXXXXX";
    int fd = mkstemp(in);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "w");
    fprintf(f, "[");
    for (int i = 0; i < ncs; i++)
        fprintf(f, "%s[\"%s\", %d, %d, %d, %d, %d, %d]", i ? ", " : "", cs[i].name, cs[i].c, cs[i].oc, cs[i].k, cs[i].s,
                cs[i].p, cs[i].hw);
    fprintf(f, "]");
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 bench/torch_nn.py %d %d %d %d %d < %s", threads, g_reps, batch, size,
             points, in);
    FILE *p = popen(cmd, "r");
    char buf[8192] = {0};
    size_t got = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    if (p) pclose(p);
    unlink(in);
    buf[got] = 0;
    return got ? cJSON_Parse(buf) : NULL;
}

int main(int argc, char **argv)
{
    ew_nn_tune_environment(argv); /* passive OpenMP waiting, AVX-512 sgemm */
    int json = 0, batch = 32, size = 128, points = 16384, torch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) g_reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--size")) size = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--points")) points = atoi(argv[++i]);
    }
    if (g_reps < 1) g_reps = 1;
    const int nthreads = omp_get_max_threads();
    double rate, rate_c, rate1, rate1_c;
    ew_nn_set_threads(EW_NN_THREADS_BLAS, nthreads);
    sgemm_rate(2048, nthreads, &rate, &rate_c);
    ew_nn_set_threads(EW_NN_THREADS_BLAS, 1);
    sgemm_rate(2048, 1, &rate1, &rate1_c);
    printf("nn benchmark: %d threads, best of %d repeats, OMP_WAIT_POLICY=%s, OpenBLAS %s kernels\n", nthreads, g_reps,
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(default)", openblas_get_corename());
    printf("rates from wall time / from CPU time (CPU seconds / threads: the wall time on idle cores)\n");
    printf("sgemm 2048^3: %.1f / %.1f GFLOP/s (%d threads), %.1f / %.1f GFLOP/s (1 thread)\n\n", rate, rate_c,
           nthreads, rate1, rate1_c);

    /* ResNet-18 conv shapes for 128x128 and 64x64 inputs (spatial size at the layer input) */
    conv_shape_t cs[16];
    int ncs = 0;
    static char names[16][32];
    for (int si = 0; si < 2; si++) {
        int s = si ? 64 : 128, q = s / 4;
        const int spec[8][5] = {{1, 64, 7, 2, 3},    {64, 64, 3, 1, 1},   {64, 128, 3, 2, 1}, {128, 128, 3, 1, 1},
                                {128, 256, 3, 2, 1}, {256, 256, 3, 1, 1}, {256, 512, 3, 2, 1}, {512, 512, 3, 1, 1}};
        const int hw[8] = {s, q, q, q / 2, q / 2, q / 4, q / 4, q / 8};
        for (int j = 0; j < 8; j++) {
            snprintf(names[ncs], sizeof names[ncs], "%d:%dx%d-%d/%d@%d", s, spec[j][0], spec[j][2], spec[j][1],
                     spec[j][3], hw[j]);
            cs[ncs] = (conv_shape_t){names[ncs], spec[j][0], spec[j][1], spec[j][2], spec[j][3], spec[j][4], hw[j]};
            ncs++;
        }
    }
    int cb = batch / 2 > 0 ? batch / 2 : 1;
    tm2_t ct[16][2];
    double gf[16][2], gfc[16][2];
    printf("conv fwd+bwd(dx,dw), batch %-3d   omp policy: ms  GF/s  GF/s(cpu) of-gemm(cpu) | blas policy: ms  GF/s  GF/s(cpu)\n", cb);
    for (int i = 0; i < ncs; i++) {
        ew_conv2d_t g = {.n = cb, .c = cs[i].c, .h = cs[i].hw, .w = cs[i].hw, .oc = cs[i].oc, .kh = cs[i].k,
                         .kw = cs[i].k, .stride = cs[i].s, .pad = cs[i].p};
        ew_conv2d_setup(&g);
        double fl = 3.0 * ew_conv2d_flops(&g);
        for (int m = 0; m < 2; m++) {
            ew_nn_set_threads(m ? EW_NN_THREADS_BLAS : EW_NN_THREADS_OMP, nthreads);
            ct[i][m] = time_conv(&cs[i], cb);
            gf[i][m] = fl / ct[i][m].wall / 1e9;
            gfc[i][m] = fl / (ct[i][m].cpu / nthreads) / 1e9;
        }
        printf("%-26s %17.1f %6.1f %8.1f %9.0f%% | %15.1f %6.1f %8.1f\n", cs[i].name, ct[i][0].wall * 1e3, gf[i][0],
               gfc[i][0], 100 * gfc[i][0] / rate_c, ct[i][1].wall * 1e3, gf[i][1], gfc[i][1]);
    }
    tm2_t res_t[2], sir_t[2];
    for (int m = 0; m < 2; m++) {
        ew_nn_set_threads(m ? EW_NN_THREADS_BLAS : EW_NN_THREADS_OMP, nthreads);
        res_t[m] = time_resnet(batch, size);
        sir_t[m] = time_siren(points);
    }
    ew_nn_set_threads(EW_NN_THREADS_OMP, nthreads);
    printf("\ntraining step (fwd + bwd + AdamW)     omp policy: wall  cpu/threads | blas policy: wall  cpu/threads\n");
    printf("ResNet-18 1x%dx%d, batch %-4d     %14.3f s %9.3f s | %15.3f s %9.3f s\n", size, size, batch,
           res_t[0].wall, res_t[0].cpu / nthreads, res_t[1].wall, res_t[1].cpu / nthreads);
    printf("SIREN 5x256, %d points          %14.3f s %9.3f s | %15.3f s %9.3f s\n", points, sir_t[0].wall,
           sir_t[0].cpu / nthreads, sir_t[1].wall, sir_t[1].cpu / nthreads);

    cJSON *tj = torch ? run_torch(nthreads, batch, size, points, cs, ncs) : NULL;
    double tr = -1, ts = -1, trc = -1, tsc = -1;
    if (tj) {
        cJSON *a = cJSON_GetObjectItem(tj, "resnet_step_s"), *b = cJSON_GetObjectItem(tj, "siren_step_s");
        cJSON *ac = cJSON_GetObjectItem(tj, "resnet_step_cpu_s"), *bc = cJSON_GetObjectItem(tj, "siren_step_cpu_s");
        tr = cJSON_IsNumber(a) ? a->valuedouble : -1;
        ts = cJSON_IsNumber(b) ? b->valuedouble : -1;
        trc = cJSON_IsNumber(ac) ? ac->valuedouble / nthreads : -1;
        tsc = cJSON_IsNumber(bc) ? bc->valuedouble / nthreads : -1;
        cJSON *ver = cJSON_GetObjectItem(tj, "torch");
        printf("\nPyTorch %s CPU, %d threads; ratio = PyTorch time / ewald time (> 1: ewald faster)\n",
               cJSON_IsString(ver) ? ver->valuestring : "?", nthreads);
        printf("ResNet-18 step: wall torch %.3f s, ewald %.3f s, ratio %.2f | cpu/threads torch %.3f s, ewald %.3f s, ratio %.2f\n",
               tr, res_t[0].wall, tr / res_t[0].wall, trc, res_t[0].cpu / nthreads, trc / (res_t[0].cpu / nthreads));
        printf("SIREN step:     wall torch %.3f s, ewald %.3f s, ratio %.2f | cpu/threads torch %.3f s, ewald %.3f s, ratio %.2f\n",
               ts, sir_t[0].wall, ts / sir_t[0].wall, tsc, sir_t[0].cpu / nthreads, tsc / (sir_t[0].cpu / nthreads));
        cJSON *conv = cJSON_GetObjectItem(tj, "conv");
        for (int i = 0; i < ncs; i++) {
            cJSON *c = cJSON_GetObjectItem(conv, cs[i].name);
            if (cJSON_IsNumber(c))
                printf("  conv %-24s wall torch %8.2f ms, ewald %8.2f ms, ratio %.2f\n", cs[i].name, c->valuedouble * 1e3,
                       ct[i][0].wall * 1e3, c->valuedouble / ct[i][0].wall);
        }
    } else {
        printf("\nPyTorch comparison: absent (no importable torch for /usr/bin/python3%s)\n",
               torch ? "" : ", or --no-torch");
    }
    /* last line: JSON */
    (void)json;
    printf("{\"bench\": \"nn\", \"threads\": %d, \"reps\": %d, \"openblas_core\": \"%s\", \"sgemm_gflops\": %.1f, "
           "\"sgemm_gflops_cpu\": %.1f, \"sgemm_gflops_1t\": %.1f",
           nthreads, g_reps, openblas_get_corename(), rate, rate_c, rate1);
    printf(", \"conv\": {");
    for (int i = 0; i < ncs; i++)
        printf("%s\"%s\": {\"omp_gflops\": %.1f, \"omp_gflops_cpu\": %.1f, \"blas_gflops\": %.1f, \"blas_gflops_cpu\": "
               "%.1f, \"frac_of_sgemm_cpu\": %.3f}",
               i ? ", " : "", cs[i].name, gf[i][0], gfc[i][0], gf[i][1], gfc[i][1], gfc[i][0] / rate_c);
    printf("}, \"resnet18_step_s\": %.4f, \"resnet18_step_cpu_s\": %.4f, \"resnet18_step_s_blas\": %.4f, "
           "\"siren_step_s\": %.4f, \"siren_step_cpu_s\": %.4f, \"siren_step_s_blas\": %.4f",
           res_t[0].wall, res_t[0].cpu / nthreads, res_t[1].wall, sir_t[0].wall, sir_t[0].cpu / nthreads, sir_t[1].wall);
    if (tj)
        printf(", \"torch_resnet18_step_s\": %.4f, \"torch_resnet18_step_cpu_s\": %.4f, \"torch_siren_step_s\": %.4f, "
               "\"torch_siren_step_cpu_s\": %.4f, \"resnet_ratio\": %.3f, \"resnet_ratio_cpu\": %.3f, "
               "\"siren_ratio\": %.3f, \"siren_ratio_cpu\": %.3f",
               tr, trc, ts, tsc, tr / res_t[0].wall, trc / (res_t[0].cpu / nthreads), ts / sir_t[0].wall,
               tsc / (sir_t[0].cpu / nthreads));
    else
        printf(", \"torch\": null");
    printf("}\n");
    cJSON_Delete(tj);
    return 0;
}
