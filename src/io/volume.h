/* ewald io: read and write a volume in any supported file (MRC or HDF5),
 * so commands need not care which one they were given.
 *
 * Two kinds of volume:
 *  - density: real space, voxel size in Angstrom (MRC maps, HDF5 volumes
 *    with space "real");
 *  - intensity: centred reciprocal space (physics/slice.h: voxel i sits at
 *    (i - n/2) ds), voxel size ds in 1/Angstrom (HDF5 volumes with space
 *    "reciprocal").
 * HDF5 files say which they hold. An MRC file does not: it is a density
 * unless the caller asks for an intensity, and then its pixel-size field
 * holds ds in 1/Angstrom (ewald writes intensity MRC files that way, with
 * the origin at -(n/2) ds; documented in docs/commands/convert.md).
 * The format is chosen by content when reading (HDF5 signature, else MRC)
 * and by extension when writing (.h5/.hdf5/.hdf -> HDF5, .mrc/.map/.rec ->
 * MRC float32).
 */
#ifndef EW_IO_VOLUME_H
#define EW_IO_VOLUME_H

#include "core/core.h"
#include "io/h5vol.h"

typedef enum { EW_VOLUME_DENSITY = 0, EW_VOLUME_INTENSITY = 1 } ew_volume_kind_t;

typedef struct {
    int nx, ny, nz;
    ew_volume_kind_t kind;
    double voxel;       /* voxel size along x: Angstrom (density) or 1/Angstrom (intensity); 0 = unknown */
    char units[64];     /* units of the values ("" if unknown) */
    char format[8];     /* "mrc" or "hdf5": the file it came from */
    float *data;        /* (nz, ny, nx), ew_alloc_array'd, owned */
    ew_h5meta_t meta;   /* HDF5 metadata (empty for MRC) */
} ew_volume_t;

/* 1 if path is (by content) an HDF5 file, 0 otherwise (also if unreadable). */
int ew_file_is_hdf5(const char *path);

/* Read a volume from an MRC or HDF5 file. want: EW_VOLUME_DENSITY or
 * EW_VOLUME_INTENSITY to require a kind (an HDF5 file of the other space is
 * EW_ERR_FORMAT naming the file; an MRC file is taken as that kind), or -1
 * for "whatever the file holds" (MRC: density). MRC image stacks are
 * refused (EW_ERR_FORMAT). On error v is left empty and the message names
 * the file. Free with ew_volume_free. */
ew_status_t ew_volume_read(const char *path, int want, ew_volume_t *v);

/* Write v to path, format by extension (see above; another extension is
 * EW_ERR_ARG naming it). Atomic: nothing at path on error. */
ew_status_t ew_volume_write(const char *path, const ew_volume_t *v);

/* Free data and metadata (v may be NULL); v is left empty. */
void ew_volume_free(ew_volume_t *v);

/* "density" or "intensity". */
const char *ew_volume_kind_name(ew_volume_kind_t k);

#endif
