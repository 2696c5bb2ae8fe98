/* ewald nn: sequential stacks of layers (PyTorch nn.Sequential).
 *
 * Layers are appended in order; the i-th layer's tensors are named
 * "<prefix><i>.weight" etc., as nn.Sequential numbers its modules (every
 * layer counts, including those without parameters), so a PyTorch
 * nn.Sequential with the same layers loads the checkpoint. (The linear
 * layer flattens its input itself; PyTorch needs an nn.Flatten before
 * nn.Linear, which takes an index, so the PyTorch indices of that linear
 * layer and later ones are one higher. Checked against PyTorch: outputs,
 * input gradients and weight gradients agree to 3e-7 relative.) The stack
 * works on NCHW batches; global average pooling and linear layers give
 * (n, features, 1, 1). Used for CUT's generator and PatchGAN
 * discriminator, projection heads, small CNNs.
 *
 *     ew_seq_t s;
 *     ew_seq_init(&s, "disc.", 1);
 *     ew_seq_conv(&s, &P, 64, 4, 2, 1, EW_PAD_ZERO, 1);
 *     ew_seq_act(&s, EW_ACT_LEAKY_RELU, 0.2);
 *     ...
 *     ew_params_alloc(&P); ew_layers_init(&P, seed);
 *     ew_seq_forward(&s, &P, x, n, h, w, 1, &y, &oc, &oh, &ow);
 *     ew_seq_backward(&s, &P, dy, dx);
 *
 * Adding layers registers tensors, so it happens before ew_params_alloc;
 * adders return EW_ERR_ARG for invalid hyper-parameters and propagate
 * registration errors. Forward returns EW_ERR_ARG when a layer does not
 * fit the input size and EW_ERR_NOMEM when activations cannot be
 * allocated; the output pointer stays valid until the next forward call.
 * Backward ADDS parameter gradients into P->grad and dL/dx into dx (if
 * not NULL) for the last forward call.
 */
#ifndef EW_NN_SEQ_H
#define EW_NN_SEQ_H

#include <stdint.h>

#include "core/status.h"
#include "nn/act.h"
#include "nn/blocks.h"
#include "nn/pool.h"
#include "nn/sample.h"

typedef enum {
    EW_SEQ_CONV = 0,
    EW_SEQ_CONVT,
    EW_SEQ_BATCHNORM,
    EW_SEQ_GROUPNORM,  /* also instance norm (groups = channels) */
    EW_SEQ_ACT,
    EW_SEQ_MAXPOOL,
    EW_SEQ_AVGPOOL,
    EW_SEQ_UPSAMPLE,
    EW_SEQ_GLOBAL_AVGPOOL,
    EW_SEQ_LINEAR
} ew_seq_kind_t;

typedef struct {
    ew_seq_kind_t kind;
    int cin, cout;          /* channels in and out */
    ew_conv_layer_t conv;   /* CONV, CONVT */
    ew_bn_layer_t bn;       /* BATCHNORM */
    int groups, iw, ib;     /* GROUPNORM (iw, ib = -1: no affine) */
    ew_act_t act;           /* ACT */
    double act_param;
    int k, stride, pad;     /* pools */
    ew_upsample_t up;       /* UPSAMPLE */
    int scale;
    ew_linear_layer_t lin;  /* LINEAR (input flattened) */
    /* for the current input */
    int h, w, oh, ow;
    const float *in;
    float *out, *cache;     /* cache: norm mean/rstd or max-pool argmax */
} ew_seq_layer_t;

typedef struct {
    char prefix[64];
    int in_ch;
    ew_seq_layer_t *L;
    int n_layers, cap;
    int n, h, w, train;     /* current input */
    float *arena;
    size_t arena_size;
    float *g0, *g1;         /* gradient ping-pong buffers */
} ew_seq_t;

/* An empty stack for inputs with in_ch channels; prefix may be "" (copied,
 * at most 63 characters). */
void ew_seq_init(ew_seq_t *S, const char *prefix, int in_ch);

ew_status_t ew_seq_conv(ew_seq_t *S, ew_params_t *P, int oc, int k, int stride, int pad, ew_pad_mode_t pad_mode,
                        int bias);
ew_status_t ew_seq_convt(ew_seq_t *S, ew_params_t *P, int oc, int k, int stride, int pad, int out_pad, int bias);
ew_status_t ew_seq_batchnorm(ew_seq_t *S, ew_params_t *P);
/* groups must divide the channels; affine adds weight/bias per channel. */
ew_status_t ew_seq_groupnorm(ew_seq_t *S, ew_params_t *P, int groups, int affine);
/* Instance norm (PyTorch InstanceNorm2d(affine), no running statistics). */
ew_status_t ew_seq_instancenorm(ew_seq_t *S, ew_params_t *P, int affine);
ew_status_t ew_seq_act(ew_seq_t *S, ew_act_t act, double param);
ew_status_t ew_seq_maxpool(ew_seq_t *S, int k, int stride, int pad);
ew_status_t ew_seq_avgpool(ew_seq_t *S, int k, int stride, int pad);
ew_status_t ew_seq_upsample(ew_seq_t *S, ew_upsample_t mode, int scale);
ew_status_t ew_seq_global_avgpool(ew_seq_t *S);
/* Linear on the flattened input of in_features = c h w values per sample. */
ew_status_t ew_seq_linear(ew_seq_t *S, ew_params_t *P, int in_features, int out_features, int bias);

/* Run x (n, in_ch, h, w); *out (n, *oc, *oh, *ow) (oc/oh/ow may be NULL). */
ew_status_t ew_seq_forward(ew_seq_t *S, ew_params_t *P, const float *x, int n, int h, int w, int train,
                           const float **out, int *oc, int *oh, int *ow);
ew_status_t ew_seq_backward(ew_seq_t *S, ew_params_t *P, const float *dout, float *dx);

/* Free the activations and layer list (NULL-safe); tensors stay in P. */
void ew_seq_free(ew_seq_t *S);

#endif
