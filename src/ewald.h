/* ewald: the whole public API in one include.
 *
 *     #include <ewald.h>      // cc prog.c $(pkg-config --cflags --libs ewald)
 *
 * Modules (each also usable alone through its umbrella header):
 *   core/core.h    status, allocation, RNG, logging, progress
 *   geom/geom.h    rotations and rotation grids
 *   io/...         file formats (one header per format)
 *   physics/...    X-ray and electron scattering, detectors, simulators
 *   nn/nn.h        neural-network engine
 *   recon/...      EMC, phase retrieval, M-TIP, self-supervised XFEL model,
 *                  cryo-EM picking, poses and reconstruction
 *   gen/gen.h      contrastive unpaired noise translation (CUT)
 *   eval/eval.h    FSC, alignment, orientation error, image statistics
 */
#ifndef EWALD_H
#define EWALD_H

#include "core/core.h"
#include "eval/eval.h"
#include "gen/gen.h"
#include "geom/geom.h"
#include "io/coords.h"
#include "io/cxi.h"
#include "io/emcfile.h"
#include "io/filetype.h"
#include "io/h5vol.h"
#include "io/mrc.h"
#include "io/npy.h"
#include "io/png.h"
#include "io/quatfile.h"
#include "io/safetensors.h"
#include "io/star.h"
#include "io/structure.h"
#include "io/volume.h"
#include "nn/nn.h"
#include "physics/ctf.h"
#include "physics/detector.h"
#include "physics/em_sim.h"
#include "physics/formfactor.h"
#include "physics/ice.h"
#include "physics/peng.h"
#include "physics/scatter.h"
#include "physics/slice.h"
#include "physics/specimen.h"
#include "physics/xfel_sim.h"
#include "recon/em_pick.h"
#include "recon/em_pose.h"
#include "recon/em_recon.h"
#include "recon/emc.h"
#include "recon/mtip.h"
#include "recon/phase.h"
#include "recon/ssl.h"

#endif
