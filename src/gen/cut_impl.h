/* ewald gen: internals shared by cut_model.c, cut_train.c, cut_apply.c. */
#ifndef EW_GEN_CUT_IMPL_H
#define EW_GEN_CUT_IMPL_H

#include "gen/gen.h"
#include "nn/blocks.h"
#include "nn/params.h"

/* CUT_TANH_SKIP: out = tanh(in + atanh(EW_CUT_SKIP_GAIN in2)) (the generator's
 * identity skip; in2 is the input image in network units, |in2| <= 1). */
#define EW_CUT_SKIP_GAIN 0.995
typedef enum { CUT_CONV, CUT_IN, CUT_RELU, CUT_LRELU, CUT_TANH, CUT_ADD, CUT_TANH_SKIP } cut_op_kind_t;

typedef struct {
    cut_op_kind_t kind;
    int in, in2, out; /* slots (in2: CUT_ADD, CUT_TANH_SKIP) */
    int conv;         /* index into net->conv for CUT_CONV */
} cut_op_t;

/* A feed-forward graph of ops over activation slots (slot 0 = input). */
typedef struct {
    cut_op_t *op;
    int nop, cap_op;
    ew_conv_layer_t *conv;
    int nconv, cap_conv;
    int nslot;
} cut_net_t;

/* Activations of one pass through a net. */
typedef struct {
    int n, h, w, upto;       /* ops run: [0, upto) */
    int *sc, *sh, *sw;       /* per slot shape */
    size_t *off;             /* per slot offset into buf / grad */
    size_t *noff;            /* per op offset into the norm caches */
    ew_conv2d_t *geom;       /* per op */
    float *buf, *grad, *nbuf;
    size_t cap, ncap;
    int with_grad;
} cut_act_t;

/* MLP head activations for one tap and one pass. */
typedef struct {
    int rows, cap;
    float *g, *h1, *r1, *h2, *y, *norm, *dg, *dh1, *dh2;
} cut_head_act_t;

struct ew_cut_model {
    ew_cut_config_t cfg;
    ew_params_t P;          /* netG.*, netF.*, then netD.* (learned, in that order) */
    size_t gf_floats;       /* learned floats of netG + netF (the first part of P) */
    cut_net_t G, D;
    int ntap, tap_slot[EW_CUT_MAX_TAPS], tap_module[EW_CUT_MAX_TAPS], tap_ops; /* encoder ops to run */
    ew_linear_layer_t f1[EW_CUT_MAX_TAPS], f2[EW_CUT_MAX_TAPS];
    int tap_c[EW_CUT_MAX_TAPS];
    int init_seed_used;
};

void cut_act_init(cut_act_t *a);
void cut_act_free(cut_act_t *a);
/* Run ops [0, upto) (upto < 0: all) on x (n, c0, h, w). */
ew_status_t cut_net_forward(const cut_net_t *net, const ew_params_t *P, cut_act_t *a, const float *x, int n, int h,
                            int w, int upto, int with_grad);
float *cut_slot(const cut_act_t *a, int slot);
float *cut_slot_grad(const cut_act_t *a, int slot);
size_t cut_slot_size(const cut_act_t *a, int slot);
/* Zero all slot gradients of a. */
void cut_act_zero_grad(cut_act_t *a);
/* Backward through the ops run; slot gradients must be seeded. want_dw: add
 * weight gradients into P->grad; dx (may be NULL) gets d input ADDED. */
ew_status_t cut_net_backward(const cut_net_t *net, ew_params_t *P, cut_act_t *a, int want_dw, float *dx);
/* Output slot of the net. */
int cut_net_out(const cut_net_t *net);

void cut_head_free(cut_head_act_t *h);
/* MLP head j on gathered rows g (rows, c): y (rows, mlp) L2-normalised. */
ew_status_t cut_head_forward(const ew_cut_model_t *m, int j, cut_head_act_t *h, const float *g, int rows);
/* dy -> dg (h->dg, rows x c, overwritten), weight grads into P. */
ew_status_t cut_head_backward(ew_cut_model_t *m, int j, cut_head_act_t *h, const float *dy);

/* Adam step over P's range [off, off + n) as a view, sharing P->step logic. */
void cut_adam_range(ew_params_t *P, size_t off, size_t n, double lr, double b1, double b2, int64_t step);

#endif
