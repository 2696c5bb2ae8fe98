/* ewald nn: element-wise activations, residual add, channel concatenation.
 *
 * ew_act_forward: y = f(x) over n elements (y may equal x, in place).
 * ew_act_backward: dx += f'(x) dy. It reads x (the forward input) and, for
 *   tanh and sigmoid only, y (the forward output; NULL = recomputed); for
 *   an in-place forward pass keep x or use the y-only kinds.
 * Kinds and their parameter p:
 *   IDENTITY, RELU, LEAKY_RELU (p: negative slope, e.g. 0.2), GELU (exact,
 *   erf form), TANH, SIGMOID, SOFTPLUS (PyTorch: beta 1, linear above 20),
 *   SINE (p: frequency omega, y = sin(omega x); SIREN).
 * ew_add_forward: out = a + b (n). Its backward is da += dout, db += dout:
 *   ew_accumulate(da, dout, n).
 * ew_concat_forward: out (n, ca + cb, hw) = [a (n, ca, hw), b (n, cb, hw)];
 *   ew_concat_backward: da += first ca channels of dout, db += the rest
 *   (da or db may be NULL).
 */
#ifndef EW_NN_ACT_H
#define EW_NN_ACT_H

#include <stddef.h>

typedef enum {
    EW_ACT_IDENTITY = 0,
    EW_ACT_RELU,
    EW_ACT_LEAKY_RELU,
    EW_ACT_GELU,
    EW_ACT_TANH,
    EW_ACT_SIGMOID,
    EW_ACT_SOFTPLUS,
    EW_ACT_SINE
} ew_act_t;

#define EW_NN_ACT_DECL(T, SFX)                                                                    \
    void ew_act_forward##SFX(ew_act_t kind, double p, T *y, const T *x, size_t n);                \
    void ew_act_backward##SFX(ew_act_t kind, double p, T *dx, const T *dy, const T *x,           \
                              const T *y, size_t n);                                             \
    void ew_add_forward##SFX(T *out, const T *a, const T *b, size_t n);                           \
    void ew_accumulate##SFX(T *dst, const T *src, size_t n);                                      \
    void ew_concat_forward##SFX(T *out, const T *a, int ca, const T *b, int cb, int n, int hw);   \
    void ew_concat_backward##SFX(T *da, T *db, const T *dout, int ca, int cb, int n, int hw);

EW_NN_ACT_DECL(float, )
EW_NN_ACT_DECL(double, _d)

#endif
