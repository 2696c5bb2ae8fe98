/* ewald nn: losses. Each returns the loss (a mean, in double) and, when its
 * gradient buffer is not NULL, ADDS g * dLoss/dinput into it (g: the
 * upstream factor, 1 for a loss used alone, a weight when losses are
 * summed).
 *
 * ew_loss_mse:         mean (p - t)^2 over n.
 * ew_loss_masked_mse:  sum m (p - t)^2 / sum m (m >= 0 weights; 0 if sum m = 0).
 * ew_loss_poisson_nll: PyTorch PoissonNLLLoss(log_input=True, full=False):
 *                      mean exp(l) - y l, l = log rate, y = counts.
 * ew_loss_bce_logits:  mean max(x, 0) - x y + log(1 + exp(-|x|)) (y in [0, 1]).
 * ew_loss_lsgan:       mean (p - target)^2 (least-squares GAN; target 1 for
 *                      real, 0 for fake).
 * ew_loss_softmax_ce:  mean over rows of -log softmax(z_r / tau)[target_r],
 *                      z (rows, k), target int32 in [0, k).
 * ew_loss_infonce:     ew_loss_softmax_ce with target_r = r over a square
 *                      similarity matrix s (n, n) (positives on the diagonal).
 */
#ifndef EW_NN_LOSS_H
#define EW_NN_LOSS_H

#include <stddef.h>
#include <stdint.h>

#define EW_NN_LOSS_DECL(T, SFX)                                                                    \
    double ew_loss_mse##SFX(T *dp, const T *p, const T *t, size_t n, double g);                   \
    double ew_loss_masked_mse##SFX(T *dp, const T *p, const T *t, const T *m, size_t n, double g); \
    double ew_loss_poisson_nll##SFX(T *dl, const T *l, const T *y, size_t n, double g);           \
    double ew_loss_bce_logits##SFX(T *dx, const T *x, const T *y, size_t n, double g);            \
    double ew_loss_lsgan##SFX(T *dp, const T *p, size_t n, double target, double g);              \
    double ew_loss_softmax_ce##SFX(T *dz, const T *z, const int32_t *target, int rows, int k,     \
                                   double tau, double g);                                         \
    double ew_loss_infonce##SFX(T *ds, const T *s, int n, double tau, double g);

EW_NN_LOSS_DECL(float, )
EW_NN_LOSS_DECL(double, _d)

#endif
