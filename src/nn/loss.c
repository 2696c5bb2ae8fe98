/* ewald nn: losses (kernels in loss_impl.h). */
#include "nn/loss.h"

#include <math.h>

#include "nn/tmpl.h"

#define T float
#define SFX
#include "nn/loss_impl.h"
#undef T
#undef SFX

#define T double
#define SFX _d
#include "nn/loss_impl.h"
#undef T
#undef SFX
