/* ewald eval module: the public header.
 *
 * fsc.h      Fourier shell correlation (densities, complex volumes,
 *            intensities via sqrt(I)), shell curves, resolution crossings,
 *            text tables
 * orient.h   orientation error after the best global rotation and hand
 * prtf.h     phase-retrieval transfer function and its 1/e resolution
 */
#ifndef EW_EVAL_EVAL_H
#define EW_EVAL_EVAL_H

#include "eval/fsc.h"
#include "eval/orient.h"
#include "eval/prtf.h"

#endif
