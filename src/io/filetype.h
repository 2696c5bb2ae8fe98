/* ewald io: which supported format a file holds, by content first and by
 * extension where the content does not decide (for `ewald info` and the
 * converters).
 *
 * Rules, in order: HDF5 signature -> CXI (has /entry_1/data_1/data) or HDF5
 * volume (has /volume) or EW_FILE_HDF5_OTHER; PNG signature; NumPy magic
 * "\x93NUMPY"; safetensors (8-byte little-endian header length, then '{');
 * "MAP " at byte 208 or extension .mrc/.mrcs/.map/.rec/.st -> MRC;
 * extension .emc, or a 1024-byte header whose words are frames > 0,
 * pixels > 0, type 0..2 and 253 zeros -> Dragonfly photons; text starting
 * with "data_" -> mmCIF if it has "_atom_site." else STAR; extension
 * .star -> STAR; .pdb/.ent/.cif/.mmcif or a line starting ATOM/HETATM/
 * HEADER/CRYST1 -> structure; .box -> EMAN box; a first line that starts
 * with image_name (any column order) -> Topaz; a first line of one or three
 * numbers followed by rows of five numbers -> Dragonfly detector.
 */
#ifndef EW_IO_FILETYPE_H
#define EW_IO_FILETYPE_H

#include "core/core.h"

typedef enum {
    EW_FILE_UNKNOWN = 0,
    EW_FILE_STRUCTURE,   /* PDB or mmCIF */
    EW_FILE_MRC,
    EW_FILE_STAR,
    EW_FILE_CXI,
    EW_FILE_H5VOL,
    EW_FILE_HDF5_OTHER,
    EW_FILE_EMC,         /* Dragonfly photon file */
    EW_FILE_DETECTOR,    /* Dragonfly detector file */
    EW_FILE_SAFETENSORS,
    EW_FILE_NPY,
    EW_FILE_PNG,
    EW_FILE_BOX,         /* EMAN .box */
    EW_FILE_TOPAZ        /* Topaz TSV */
} ew_filetype_t;

/* Detect the format of path (rules above). EW_ERR_IO (message names the
 * file) if it cannot be opened; an unrecognised file is EW_OK with
 * EW_FILE_UNKNOWN. */
ew_status_t ew_file_detect(const char *path, ew_filetype_t *type);

/* Short name of a type ("CXI", "MRC", ...). */
const char *ew_filetype_name(ew_filetype_t t);

#endif
