/* Data-parallel training under MPI (run: mpirun -np 2 with make MPI=1).
 * A conv + MLP model trained for 10 AdamW steps on a global batch of 16,
 * each rank on its 16/size samples with ew_dist_allreduce_grads, must end
 * with the parameters one process gets on the whole batch (computed here
 * on every rank as the reference), to float tolerance. Also checks
 * ew_dist_broadcast_params and ew_dist_allreduce_sum. Prints
 * "N passed, N failed" and exits non-zero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nn/blocks.h"
#include "nn/dist.h"
#include "nn/loss.h"
#include "nn/optim.h"

enum { GB = 16, C = 1, H = 8, W = 8, OC = 4, HID = 16, OUT = 3, STEPS = 10 };

typedef struct {
    ew_params_t P;
    ew_conv_layer_t conv;
    ew_mlp_t mlp;
    ew_conv2d_t g;
    float *c, *a, *dc, *da, *dy;
} model_t;

static int passed = 0, failed = 0;
static void check(int ok, const char *what)
{
    if (ok) passed++;
    else {
        failed++;
        fprintf(stderr, "rank %d: FAILED %s\n", ew_dist_rank(), what);
    }
}

static void model_init(model_t *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    ew_params_init(&m->P);
    ew_mlp_config_t cfg = {.in_dim = OC * H * W, .hidden = HID, .layers = 2, .out_dim = OUT, .act = EW_ACT_TANH};
    if (ew_conv_layer_add(&m->conv, &m->P, "conv", C, OC, 3, 1, 1, EW_PAD_REFLECT, 1) != EW_OK ||
        ew_mlp_create(&m->mlp, &m->P, "head.", &cfg) != EW_OK || ew_params_alloc(&m->P) != EW_OK) {
        fprintf(stderr, "setup: %s\n", ew_error_message());
        exit(2);
    }
    ew_layers_init(&m->P, seed);
    size_t na = (size_t)GB * OC * H * W;
    m->c = calloc(na, 4), m->a = calloc(na, 4), m->dc = calloc(na, 4), m->da = calloc(na, 4);
    m->dy = calloc((size_t)GB * OUT, 4);
}

/* one step on samples [i0, i0 + n) of the global batch x, t */
static void model_step(model_t *m, const float *x, const float *t, int i0, int n, const ew_optim_t *o, int dist)
{
    size_t per = (size_t)OC * H * W;
    m->g = (ew_conv2d_t){.n = n, .c = C, .h = H, .w = W, .oc = OC, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                         .pad_mode = EW_PAD_REFLECT};
    ew_conv2d_setup(&m->g);
    const float *xi = x + (size_t)i0 * C * H * W;
    ew_params_zero_grad(&m->P);
    ew_conv_layer_forward(&m->conv, &m->P, m->c, xi, &m->g);
    ew_act_forward(EW_ACT_GELU, 0, m->a, m->c, per * n);
    const float *y;
    ew_mlp_forward(&m->mlp, &m->P, m->a, n, &y);
    memset(m->dy, 0, (size_t)n * OUT * 4);
    ew_loss_mse(m->dy, y, t + (size_t)i0 * OUT, (size_t)n * OUT, 1.0);
    memset(m->da, 0, per * n * 4);
    memset(m->dc, 0, per * n * 4);
    ew_mlp_backward(&m->mlp, &m->P, m->dy, m->da);
    ew_act_backward(EW_ACT_GELU, 0, m->dc, m->da, m->c, NULL, per * n);
    ew_conv_layer_backward(&m->conv, &m->P, NULL, m->dc, xi, &m->g);
    if (dist && ew_dist_allreduce_grads(&m->P) != EW_OK) fprintf(stderr, "%s\n", ew_error_message());
    ew_optim_step(&m->P, o, 1e-2);
}

int main(int argc, char **argv)
{
    if (ew_dist_init(&argc, &argv) != EW_OK) {
        fprintf(stderr, "%s\n", ew_error_message());
        return 2;
    }
    int rank = ew_dist_rank(), size = ew_dist_size();
    float *x = malloc(sizeof(float) * GB * C * H * W), *t = malloc(sizeof(float) * GB * OUT);
    ew_rng_t r;
    ew_rng_init(&r, 99, 0);
    for (int i = 0; i < GB * C * H * W; i++) x[i] = (float)ew_rng_normal(&r);
    for (int i = 0; i < GB * OUT; i++) t[i] = (float)ew_rng_normal(&r);
    ew_optim_t o = ew_optim_default(EW_OPT_ADAMW);

    /* reference: one process, whole batch */
    model_t ref, par;
    model_init(&ref, 7);
    for (int s = 0; s < STEPS; s++) model_step(&ref, x, t, 0, GB, &o, 0);

    /* data parallel: rank r initialised differently, then synchronised by broadcast */
    model_init(&par, 7 + (uint64_t)rank);
    check(ew_dist_broadcast_params(&par.P) == EW_OK, "broadcast");
    model_t same;
    model_init(&same, 7);
    check(memcmp(same.P.data, par.P.data, par.P.n_total * sizeof(float)) == 0, "broadcast gives rank 0's parameters");
    check(GB % size == 0, "global batch divisible by the rank count");
    int local = GB / size;
    for (int s = 0; s < STEPS; s++) model_step(&par, x, t, rank * local, local, &o, 1);

    double maxd = 0, maxv = 0;
    for (size_t i = 0; i < ref.P.n_total; i++) {
        maxd = fmax(maxd, fabs((double)ref.P.data[i] - par.P.data[i]));
        maxv = fmax(maxv, fabs((double)ref.P.data[i]));
    }
    double moved = 0;
    for (size_t i = 0; i < ref.P.n_total; i++) moved = fmax(moved, fabs((double)ref.P.data[i] - same.P.data[i]));
    check(moved > 1e-3, "training moved the parameters");
    check(maxd < 1e-5 * fmax(maxv, 1.0), "parameters equal the single-process run to float tolerance");
    fprintf(stderr, "rank %d of %d: max |param difference| = %.3g (max |param| %.3g, moved %.3g)\n", rank, size, maxd,
            maxv, moved);
    double v[2] = {1.0, (double)rank};
    check(ew_dist_allreduce_sum(v, 2) == EW_OK && v[0] == size && v[1] == size * (size - 1) / 2.0, "allreduce_sum");

    int fails = failed;
    if (rank == 0) printf("%d passed, %d failed\n", passed, failed);
    ew_dist_finalize();
    return fails ? 1 : 0;
}
