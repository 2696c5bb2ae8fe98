/* ewald nn: operations added for the noise-translation model (src/gen):
 * gathering feature vectors at sampled locations of NCHW maps, and the
 * PatchNCE loss (Park et al. 2020, CUT) with arbitrary negative sets
 * (mask-guided sampling draws negatives from the other region).
 *
 * ew_patch_gather: out (n * np, c) row (b np + j) = x[b, :, idx[b np + j]]
 *   with idx a flat index y w + x into the h w plane of sample b; x is
 *   (n, c, hw). ew_patch_scatter_add is its backward: dx[b, :, idx] +=
 *   dout row (duplicates add).
 * ew_patchnce_loss: anchors q (na, d) and keys k (nk, d). Anchor a has
 *   the positive key pos[a] and the negatives neg[noff[a] .. noff[a+1])
 *   (key indices). Logits l_a = (q_a . k_pos, q_a . k_neg...) / tau; the
 *   loss is the mean over anchors of -log softmax(l_a)[0] (cross-entropy
 *   with target 0, CUT's PatchNCELoss). Keys are constants (CUT detaches
 *   them); dq (may be NULL) gets g * dLoss/dq ADDED. Returns the loss
 *   (0 when na = 0). Log-sum-exp in double.
 */
#ifndef EW_NN_GEN_OPS_H
#define EW_NN_GEN_OPS_H

#include <stdint.h>

#define EW_NN_GEN_OPS_DECL(T, SFX)                                                                 \
    void ew_patch_gather##SFX(T *out, const T *x, const int32_t *idx, int n, int c, int hw,       \
                              int np);                                                            \
    void ew_patch_scatter_add##SFX(T *dx, const T *dout, const int32_t *idx, int n, int c,       \
                                   int hw, int np);                                               \
    double ew_patchnce_loss##SFX(T *dq, const T *q, const T *k, int na, int d,                    \
                                 const int32_t *pos, const int32_t *noff, const int32_t *neg,     \
                                 double tau, double g);

EW_NN_GEN_OPS_DECL(float, )
EW_NN_GEN_OPS_DECL(double, _d)

#endif
