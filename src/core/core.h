/* ewald core module: the public header.
 *
 * status.h  status codes, per-thread error messages, EW_ASSERT, EW_TRY
 * mem.h     overflow-checked aligned allocation
 * rng.h     Philox4x32-10 counter-based RNG and samplers
 * util.h    constants, logging, progress, timers, atomic file output
 */
#ifndef EW_CORE_CORE_H
#define EW_CORE_CORE_H

#include "core/mem.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/util.h"

#endif
