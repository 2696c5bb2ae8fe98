/* ewald nn: normalisation layers (kernels in norm_impl.h). */
#include "nn/norm.h"

#include <math.h>

#include "nn/threads.h"
#include "nn/tmpl.h"

#define T float
#define SFX
#include "nn/norm_impl.h"
#undef T
#undef SFX

#define T double
#define SFX _d
#include "nn/norm_impl.h"
#undef T
#undef SFX
