/* ewald io: Dragonfly's EMC photon files (.emc) and detector files (.dat).
 *
 * Exact layouts (see docs/formats-emc.md; Dragonfly: Ayyer et al., J. Appl.
 * Cryst. 49, 1320 (2016), github.com/duaneloh/Dragonfly src/emcfile.c,
 * utils/py_src/writeemc.py, detector.py):
 *
 * Photon file, little-endian int32 throughout:
 *   header: 256 int32 (1024 bytes): [0] num_data (frames), [1] num_pix,
 *           [2] type (0 sparse, 1 dense int32, 2 dense float64), rest 0
 *   type 0: ones[num_data], multi[num_data],
 *           place_ones[sum ones], place_multi[sum multi], count_multi[sum multi]
 *           (a frame's pixels with exactly one photon, then its pixels with
 *           more than one and their counts, frame after frame)
 *   type 1: num_data * num_pix int32 counts; type 2: the same as float64.
 * ewald writes type 0 and reads all three (dense files become sparse).
 *
 * Detector file (ASCII): first line "num_pix detd ewald_rad" (old files:
 * "num_pix" only), then num_pix rows "qx qy qz corr mask". q is in voxel
 * units of the 3D grid, qz <= 0 for forward scattering; detd is the
 * detector distance in pixel units; ewald_rad = 1 / (lambda * ds) is the
 * Ewald-sphere radius in voxels for a voxel size ds in 1/Angstrom, so a
 * pixel's s-vector (1/Angstrom, no 2 pi) is s = q / (lambda * ewald_rad).
 * corr is the solid-angle x polarization factor. mask: 0 good, 1 not used
 * for orientation (but merged), 2 bad (ignored) — ewald's own codes.
 */
#ifndef EW_IO_EMCFILE_H
#define EW_IO_EMCFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "io/cxi.h"

#define EW_EMC_HEADER_BYTES 1024

/* Sparse photon counts of many frames, CSR-like (all arrays owned, plain
 * malloc'd, freed by ew_emc_photons_free). Frame d's single-photon pixels
 * are place_ones[ones_off[d] .. ones_off[d+1]); its multi-photon pixels are
 * place_multi[multi_off[d] .. multi_off[d+1]) with counts count_multi[same]. */
typedef struct {
    int num_pix;           /* pixels per frame */
    size_t num_frames;
    int64_t *ones_off;     /* num_frames + 1 offsets, ones_off[0] = 0 */
    int64_t *multi_off;    /* num_frames + 1 offsets, multi_off[0] = 0 */
    int32_t *place_ones;   /* pixel indices in [0, num_pix) */
    int32_t *place_multi;  /* pixel indices in [0, num_pix) */
    int32_t *count_multi;  /* photon counts >= 1 (Dragonfly writes >= 2) */
    size_t cap_frames, cap_ones, cap_multi; /* internal capacities */
} ew_emc_photons_t;

/* Start an empty set of frames of num_pix pixels (num_pix > 0, else
 * EW_ERR_ARG). On error p is left empty. */
ew_status_t ew_emc_photons_init(ew_emc_photons_t *p, int num_pix);

/* Append one dense frame of num_pix non-negative integer counts.
 * EW_ERR_ARG on a negative count (p unchanged). */
ew_status_t ew_emc_photons_add_counts(ew_emc_photons_t *p, const int32_t *counts);

/* Append one dense float frame (photon counts), each value rounded to the
 * nearest integer. EW_ERR_ARG (p unchanged) on a negative, non-finite or
 * too large (> 2^31 - 1) value. */
ew_status_t ew_emc_photons_add_frame(ew_emc_photons_t *p, const float *frame);

/* Write frame d (d < num_frames) as num_pix dense floats into out. */
void ew_emc_photons_to_dense(const ew_emc_photons_t *p, size_t d, float *out);

/* Total photon count of frame d. */
int64_t ew_emc_photons_frame_total(const ew_emc_photons_t *p, size_t d);

/* Parse a photon file held in memory (name is used in messages). Every
 * count and offset is checked against num_pix and the byte length, so a
 * lying or truncated header gives EW_ERR_FORMAT, never a huge allocation.
 * On error p is left empty and the message names the file and field. */
ew_status_t ew_emc_photons_parse(const void *data, size_t len, const char *name, ew_emc_photons_t *p);

/* Read a photon file (validated exactly as ew_emc_photons_parse, streamed
 * from disk). On error p is left empty. */
ew_status_t ew_emc_photons_read(const char *path, ew_emc_photons_t *p);

/* Write all frames as a sparse (type 0) photon file, atomically (temporary
 * name, then rename). EW_ERR_RANGE if a count exceeds int32. No file is
 * left behind on error. */
ew_status_t ew_emc_photons_write(const char *path, const ew_emc_photons_t *p);

/* Free the arrays (p may be NULL); p is left empty. */
void ew_emc_photons_free(ew_emc_photons_t *p);

/* Streaming writer: frames go to disk as they come (three temporary files
 * beside path), and close assembles the photon file and renames it into
 * place, so a million frames never need to be in memory. */
typedef struct ew_emc_writer ew_emc_writer_t;

/* Open a writer for frames of num_pix pixels. On error *w is NULL. */
ew_status_t ew_emc_writer_open(const char *path, int num_pix, ew_emc_writer_t **w);
/* Append one frame of integer counts (>= 0, else EW_ERR_ARG). */
ew_status_t ew_emc_writer_add_counts(ew_emc_writer_t *w, const int32_t *counts);
/* Append one dense float frame (rounded as ew_emc_photons_add_frame). */
ew_status_t ew_emc_writer_add_frame(ew_emc_writer_t *w, const float *frame);
/* Append one dense float frame of photon values, each stored as
 * ew_cxi_round_count(v, 2^31 - 1) (io/cxi.h): the nearest integer to
 * max(v, 0), ties to even, NaN -> 0. Unlike ew_emc_writer_add_frame,
 * negative values (readout noise) become 0 instead of an error. One pass;
 * runs of values below 0.5 are skipped 16 at a time (the simulator's path:
 * 0.75 CPU ns per pixel measured at ~180 photons per 16,384-pixel frame,
 * against 2.2 for rounding into int32 and ew_emc_writer_add_counts). */
ew_status_t ew_emc_writer_add_rounded(ew_emc_writer_t *w, const float *frame);
/* Number of frames appended so far. */
size_t ew_emc_writer_count(const ew_emc_writer_t *w);
/* Finish: write the file, rename it into place and free w (always freed;
 * on error nothing is left at path and the temporaries are removed). */
ew_status_t ew_emc_writer_close(ew_emc_writer_t *w);
/* Discard everything written and free w (NULL is a no-op). */
void ew_emc_writer_abort(ew_emc_writer_t *w);

/* A Dragonfly detector (arrays owned, ew_alloc_array'd). */
typedef struct {
    int num_pix;
    double detd;       /* detector distance / pixel size (pixels); 0 in old files */
    double ewald_rad;  /* Ewald-sphere radius in voxels, 1/(lambda ds); 0 in old files */
    double *q;         /* (num_pix, 3) qx, qy, qz in voxel units */
    double *corr;      /* (num_pix) solid angle x polarization factor */
    uint8_t *mask;     /* (num_pix) 0 good, 1 not for orientation, 2 bad */
} ew_emc_detector_t;

/* Allocate a detector of num_pix pixels (q, corr zero; mask 0). */
ew_status_t ew_emc_detector_alloc(ew_emc_detector_t *det, int num_pix);

/* Parse a detector file held in memory (name used in messages). Accepts
 * the 3-field and the old 1-field first line; every value must be finite,
 * each mask 0, 1 or 2, exactly num_pix rows. On error det is left empty. */
ew_status_t ew_emc_detector_parse(const void *data, size_t len, const char *name, ew_emc_detector_t *det);

/* Read a detector file. On error det is left empty. */
ew_status_t ew_emc_detector_read(const char *path, ew_emc_detector_t *det);

/* Write a detector file (3-field header; q/corr with 17 significant
 * digits so they read back exactly), atomically. */
ew_status_t ew_emc_detector_write(const char *path, const ew_emc_detector_t *det);

/* Free the arrays (det may be NULL); det is left empty. */
void ew_emc_detector_free(ew_emc_detector_t *det);

/* Lab-frame s-vectors (num_pix, 3) in 1/Angstrom: s = q / (lambda ewald_rad).
 * EW_ERR_ARG if ewald_rad <= 0 (an old-style file) or wavelength_a <= 0. */
ew_status_t ew_emc_detector_to_s(const ew_emc_detector_t *det, double wavelength_a, float *s);

/* Build a detector from ewald's per-pixel s-vectors (npix, 3) in 1/Angstrom:
 * q = s / voxel_ds, ewald_rad = 1 / (wavelength_a voxel_ds), detd = detd_pix.
 * mask (npix, may be NULL = all good) and corr (npix, may be NULL = 1).
 * EW_ERR_ARG on non-positive sizes. On error det is left empty. */
ew_status_t ew_emc_detector_from_s(const float *s, const uint8_t *mask, const float *corr, int npix,
                                   double wavelength_a, double detd_pix, double voxel_ds,
                                   ew_emc_detector_t *det);

/* A detector from a CXI geometry: q = s / voxel_ds, ewald_rad =
 * 1 / (lambda voxel_ds), detd = distance / pixel_x, corr = solid_angle x
 * polarization (each taken as 1 where the geometry lacks it), mask copied.
 * Pixels in row-major order (iy, ix). On error det is left empty. */
ew_status_t ew_emc_detector_from_geometry(const ew_cxi_geometry_t *g, double voxel_ds, ew_emc_detector_t *det);

/* A CXI geometry of width x height (width * height == num_pix, row-major)
 * from a detector: s from ew_emc_detector_to_s, mask copied, distance =
 * detd * pixel_m, square pixels of pixel_m, photon energy from the
 * wavelength, and the beam centre fitted from the pixel directions assuming
 * ewald's axes (qx along the fast axis ix, qy along the slow axis iy);
 * solid_angle and polarization are left NULL (corr does not separate them).
 * EW_ERR_ARG on a size mismatch or non-positive parameters; on error g is
 * left empty. */
ew_status_t ew_emc_detector_to_geometry(const ew_emc_detector_t *det, double wavelength_a, double pixel_m, int width,
                                        int height, ew_cxi_geometry_t *g);

#endif
