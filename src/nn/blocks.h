/* ewald nn: layers with their parameters, and the building blocks made of
 * them: ResNet basic blocks and a ResNet-18-style encoder, an MLP/SIREN.
 *
 * A layer struct records the indices of its tensors in an ew_params_t
 * (registered under PyTorch's names by *_add before ew_params_alloc) and
 * its hyper-parameters; the math is in conv.h, norm.h, act.h, pool.h.
 * Blocks own their activation buffers (one allocation per block, sized at
 * the first forward pass for the batch and image size and grown when they
 * change) and keep what the backward pass needs. The usual step:
 *
 *     ew_params_zero_grad(&P);
 *     ew_resnet_forward(&net, &P, x, n, h, w, 1, &y);   // y: (n, out_dim)
 *     loss = ew_loss_mse(dy, y, target, n * out_dim, 1.0);
 *     ew_resnet_backward(&net, &P, dy, NULL);           // adds into P.grad
 *     ew_optim_step(&P, &opt, lr);
 *
 * Activation gradients (dy, dx) are the caller's; block-internal gradient
 * buffers are zeroed by the blocks themselves.
 */
#ifndef EW_NN_BLOCKS_H
#define EW_NN_BLOCKS_H

#include <stdint.h>

#include "core/status.h"
#include "nn/act.h"
#include "nn/conv.h"
#include "nn/params.h"
#include "nn/pool.h"

/* ---- single layers ---- */

/* 2-D convolution (or transposed convolution): "<name>.weight", and
 * "<name>.bias" if bias. Initialised by ew_layers_init (PyTorch default). */
typedef struct {
    int c, oc, k, stride, pad, out_pad, transposed;
    ew_pad_mode_t pad_mode;
    int iw, ib; /* tensor indices (ib = -1: no bias) */
} ew_conv_layer_t;

/* Register "<name>.weight" (oc, c, k, k) and optionally "<name>.bias";
 * errors from ew_params_add. */
ew_status_t ew_conv_layer_add(ew_conv_layer_t *L, ew_params_t *P, const char *name, int c, int oc, int k,
                              int stride, int pad, ew_pad_mode_t pad_mode, int bias);
/* Transposed conv: "<name>.weight" (c, oc, k, k), zero padding. */
ew_status_t ew_convt_layer_add(ew_conv_layer_t *L, ew_params_t *P, const char *name, int c, int oc, int k,
                               int stride, int pad, int out_pad, int bias);
/* The geometry for an input (n, c, h, w); EW_ERR_ARG if it does not fit. */
ew_status_t ew_conv_layer_geom(const ew_conv_layer_t *L, int n, int h, int w, ew_conv2d_t *g);
/* out = layer(x) for geometry g (from ew_conv_layer_geom); EW_ERR_NOMEM
 * (naming the tensor) if scratch cannot be allocated. */
ew_status_t ew_conv_layer_forward(const ew_conv_layer_t *L, const ew_params_t *P, float *out, const float *x,
                                  const ew_conv2d_t *g);
/* dx may be NULL; weight/bias gradients go into P->grad. */
ew_status_t ew_conv_layer_backward(const ew_conv_layer_t *L, ew_params_t *P, float *dx, const float *dout,
                                   const float *x, const ew_conv2d_t *g);

/* Batch norm: "<name>.weight", ".bias", ".running_mean", ".running_var",
 * ".num_batches_tracked"; momentum 0.1, eps 1e-5 (PyTorch defaults). */
typedef struct {
    int c;
    double momentum, eps;
    int iw, ib, irm, irv, inb;
} ew_bn_layer_t;

/* Register the five tensors; errors from ew_params_add. */
ew_status_t ew_bn_layer_add(ew_bn_layer_t *L, ew_params_t *P, const char *name, int c);
/* Training mode also updates the running statistics and the counter.
 * mean, rstd: caches of c floats for the backward pass. */
void ew_bn_layer_forward(const ew_bn_layer_t *L, ew_params_t *P, float *out, float *mean, float *rstd,
                         const float *x, int n, int hw, int train);
/* Adds dL/dx into dx (may be NULL) and weight/bias gradients into P->grad,
 * for the mode (train) of the forward call whose caches are given. */
void ew_bn_layer_backward(const ew_bn_layer_t *L, ew_params_t *P, float *dx, const float *dout, const float *x,
                          const float *mean, const float *rstd, int n, int hw, int train);

/* Linear: "<name>.weight" (out, in), "<name>.bias". */
typedef struct {
    int in, out;
    int iw, ib;
} ew_linear_layer_t;

/* Register the tensors (bias optional); errors from ew_params_add. Use
 * ew_linear_forward/backward (conv.h) with the views. */
ew_status_t ew_linear_layer_add(ew_linear_layer_t *L, ew_params_t *P, const char *name, int in, int out,
                                int bias);

/* Initialise every registered tensor whose name ends in .weight/.bias the
 * PyTorch way (conv/linear: kaiming_uniform(a = sqrt 5) and U(+-1/sqrt
 * fan_in); 1-D ".weight" (norms): 1, ".bias": 0), running_var 1, other
 * buffers 0. Blocks with their own scheme (SIREN) re-initialise theirs
 * afterwards. */
void ew_layers_init(ew_params_t *P, uint64_t seed);

/* ---- ResNet ---- */

/* One basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut
 * (identity, or conv1x1(stride)-BN "downsample" when shapes change), ReLU. */
typedef struct {
    int cin, cout, stride, has_down;
    ew_conv_layer_t conv1, conv2, down;
    ew_bn_layer_t bn1, bn2, down_bn;
    /* activations (owned by the encoder's arena) */
    int n, h, w, oh, ow;
    const float *in;
    float *c1, *r1, *c2, *out, *dc, *tmp, *gout;
    float *m1, *s1, *m2, *s2, *md, *sd;
} ew_basic_block_t;

typedef struct {
    int in_ch;        /* input channels (1 for diffraction patterns) */
    int width;        /* channels of the first stage (64 in ResNet-18) */
    int stages;       /* 1..4; stage s has width << s channels */
    int blocks[4];    /* basic blocks per stage (2, 2, 2, 2 in ResNet-18) */
    int out_dim;      /* fc outputs; 0: no fc, the output is the pooled features */
    int small_stem;   /* 0: 7x7/2 conv + 3x3/2 max pool (torchvision); 1: 3x3/1 conv, no pool */
} ew_resnet_config_t;

typedef struct {
    ew_resnet_config_t cfg;
    ew_conv_layer_t conv1;
    ew_bn_layer_t bn1;
    ew_basic_block_t *blk;
    int nblk;
    ew_linear_layer_t fc;
    int feat;         /* channels of the last stage */
    /* activations for the current (n, h, w) */
    int n, h, w, train;
    float *arena;     /* one allocation: activations, their gradients, scratch */
    size_t arena_size;
    int32_t *argmax;
    const float *x;
    ew_conv2d_t g1;
    ew_pool2d_t gp;
    float *c0, *r0, *p0, *m0, *s0, *pooled, *out;
    float *gr0, *gp0, *gpooled, *scratch[4];
} ew_resnet_t;

/* ResNet-18 defaults: in 1 channel, width 64, 4 stages of 2 blocks, out_dim. */
ew_resnet_config_t ew_resnet18_config(int in_ch, int out_dim);

/* Register the encoder's tensors in P under prefix (e.g. "" or "encoder.")
 * with torchvision's names (conv1, bn1, layer1.0.conv1, ...,
 * layerS.0.downsample.0/1, fc). EW_ERR_ARG on a bad configuration. */
ew_status_t ew_resnet_create(ew_resnet_t *R, ew_params_t *P, const char *prefix, const ew_resnet_config_t *cfg);

/* Forward pass of x (n, in_ch, h, w); *out points to the encoder's
 * (n, out_dim) output (or (n, feat) pooled features), valid until the next
 * forward call. train selects batch-norm mode. EW_ERR_NOMEM / EW_ERR_ARG. */
ew_status_t ew_resnet_forward(ew_resnet_t *R, ew_params_t *P, const float *x, int n, int h, int w, int train,
                              const float **out);

/* Backward pass for the last forward call: parameter gradients are ADDED
 * to P->grad; dx (n, in_ch, h, w) gets dL/dx ADDED if not NULL. */
ew_status_t ew_resnet_backward(ew_resnet_t *R, ew_params_t *P, const float *dout, float *dx);

/* Free the activations and layer lists (NULL-safe). */
void ew_resnet_free(ew_resnet_t *R);

/* ---- MLP / SIREN ---- */

typedef struct {
    int in_dim, hidden, layers, out_dim; /* `layers` hidden layers of width `hidden`, then a linear output */
    ew_act_t act;                        /* hidden activation (EW_ACT_SINE for SIREN) */
    double act_param;                    /* omega for SINE (30 in SIREN), slope for LEAKY_RELU */
    double first_omega;                  /* SINE: omega of the first layer (30) */
    int siren_init;                      /* 1: SIREN initialisation (else PyTorch default) */
} ew_mlp_config_t;

typedef struct {
    ew_mlp_config_t cfg;
    ew_linear_layer_t *L; /* layers + 1 */
    int rows, cap_rows;
    float *arena;         /* z (pre-activations) and a (activations) per layer, gradient scratch */
    float **z, **a;
    float *g0, *g1;
    const float *x;
} ew_mlp_t;

/* SIREN(in, hidden, layers, out) with omega 30 for all sine layers and
 * SIREN initialisation. */
ew_mlp_config_t ew_siren_config(int in_dim, int hidden, int layers, int out_dim);

/* Register "<prefix>layers.<i>.weight/bias", i = 0..layers. */
ew_status_t ew_mlp_create(ew_mlp_t *M, ew_params_t *P, const char *prefix, const ew_mlp_config_t *cfg);

/* SIREN initialisation of M's tensors (call after ew_layers_init). */
void ew_mlp_init(const ew_mlp_t *M, ew_params_t *P, uint64_t seed);

/* out -> (rows, out_dim), valid until the next forward call. */
ew_status_t ew_mlp_forward(ew_mlp_t *M, const ew_params_t *P, const float *x, int rows, const float **out);

/* Gradients of the last forward call added to P->grad (and dx if not NULL). */
ew_status_t ew_mlp_backward(ew_mlp_t *M, ew_params_t *P, const float *dout, float *dx);

/* Free the activations and layer list (NULL-safe). */
void ew_mlp_free(ew_mlp_t *M);

#endif
