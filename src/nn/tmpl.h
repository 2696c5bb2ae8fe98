/* ewald nn: helpers for kernels written once and instantiated for float
 * and double (the double instance, suffix _d, is what the gradient checks
 * run against finite differences; the float instance is what trains).
 * A *_impl.h file is included twice by its .c file with
 *     T    the element type        SFX   the name suffix ( or _d)
 *     GEMM cblas_sgemm / cblas_dgemm
 * and names its functions FN(name). */
#ifndef EW_NN_TMPL_H
#define EW_NN_TMPL_H

#define EW_NN_CAT_(a, b) a##b
#define EW_NN_CAT(a, b) EW_NN_CAT_(a, b)
#define FN(name) EW_NN_CAT(name, SFX)

#endif
