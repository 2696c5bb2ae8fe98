/* ewald nn: upsampling and grid sampling (kernels in sample_impl.h). */
#include "nn/sample.h"

#include <math.h>
#include <stddef.h>

#include "nn/threads.h"
#include "nn/tmpl.h"

#define T float
#define SFX
#define TM(fn) fn##f
#include "nn/sample_impl.h"
#undef T
#undef SFX
#undef TM

#define T double
#define SFX _d
#define TM(fn) fn
#include "nn/sample_impl.h"
#undef T
#undef SFX
#undef TM
