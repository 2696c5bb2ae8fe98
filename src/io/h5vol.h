/* ewald io: 3D volumes in HDF5 — reciprocal-space intensities (ew_rvol_t)
 * and real-space densities — with units and string metadata.
 *
 * Layout (docs/formats-cxi.md, section "HDF5 volumes"):
 *   /volume   (nz, ny, nx) float32, attributes
 *       units             string, units of the values ("photons", "electrons^2", "electrons/Angstrom^3")
 *       space             "real" or "reciprocal"
 *       voxel_size        (3) f64 x, y, z spacing: Angstrom (real) or 1/Angstrom (reciprocal, s = 1/d)
 *       voxel_size_units  "Angstrom" or "1/Angstrom"
 *       origin            (3) f64 x, y, z position of voxel (0, 0, 0), same units
 *   /metadata  group; every attribute a string key = value
 *   root attributes: creator "ewald", ewald_version
 * Reciprocal volumes from ew_rvol_t follow physics/slice.h: voxel i sits at
 * (i - n/2) ds, so origin = -(n/2) ds on every axis.
 */
#ifndef EW_IO_H5VOL_H
#define EW_IO_H5VOL_H

#include <stddef.h>

#include "core/core.h"
#include "physics/slice.h"

/* String key/value pairs (owned copies). A zeroed struct is empty. */
typedef struct {
    size_t n;
    char **keys;
    char **values;
} ew_h5meta_t;

/* Set key to value (replacing an existing key). EW_ERR_ARG on an empty
 * key or one containing '/' or '.'-only names HDF5 rejects. */
ew_status_t ew_h5meta_set(ew_h5meta_t *m, const char *key, const char *value);
/* The value of key, or NULL if absent (owned by m). */
const char *ew_h5meta_get(const ew_h5meta_t *m, const char *key);
/* Free all pairs (m may be NULL); m is left empty. */
void ew_h5meta_free(ew_h5meta_t *m);

typedef enum { EW_VOL_REAL = 0, EW_VOL_RECIPROCAL = 1 } ew_vol_space_t;

/* A general volume (owned data and strings). */
typedef struct {
    int nx, ny, nz;
    ew_vol_space_t space;
    double voxel[3];   /* x, y, z spacing: Angstrom (real) or 1/Angstrom (reciprocal) */
    double origin[3];  /* x, y, z of voxel (0, 0, 0), same units */
    char *units;       /* units of the values (may be NULL: written as "") */
    float *data;       /* (nz, ny, nx), ew_alloc_array'd */
    ew_h5meta_t meta;
} ew_h5vol_t;

/* Write a volume atomically (temporary name + rename). EW_ERR_ARG on
 * non-positive sizes or voxel sizes. No file is left behind on error. */
ew_status_t ew_h5vol_write(const char *path, const ew_h5vol_t *v);

/* Read a volume. Checks the dataset's rank (3), numeric type, the
 * attributes' presence, types and values (voxel sizes positive and finite,
 * space "real" or "reciprocal"). On error v is left empty and the message
 * names the file and the dataset or attribute. */
ew_status_t ew_h5vol_read(const char *path, ew_h5vol_t *v);

/* Free data, units and metadata (v may be NULL); v is left empty. */
void ew_h5vol_free(ew_h5vol_t *v);

/* Write a reciprocal-space volume (space "reciprocal", voxel ds on each
 * axis, origin -(n/2) ds) with the units of its values and optional
 * metadata (may be NULL). */
ew_status_t ew_h5vol_write_rvol(const char *path, const ew_rvol_t *v, const char *units, const ew_h5meta_t *meta);

/* Read a reciprocal-space volume written by ew_h5vol_write_rvol (or any
 * file of this layout that is reciprocal, cubic, with equal voxel sizes and
 * origin -(n/2) ds). units and meta may be NULL; else *units receives a
 * malloc'd string and *meta the metadata. On error v (and *units, *meta)
 * are left empty. */
ew_status_t ew_h5vol_read_rvol(const char *path, ew_rvol_t *v, char **units, ew_h5meta_t *meta);

#endif
