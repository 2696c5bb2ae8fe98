/* ewald io: MRC2014 maps, images and image stacks (.mrc, .mrcs, .map).
 *
 * Data are held as float32 (nz, ny, nx), x fastest, whatever the mode on
 * disk: 0 (int8), 1 (int16), 2 (float32), 6 (uint16) and 12 (float16) are
 * read and written. The byte order comes from the machine stamp (0x44 0x44
 * or 0x44 0x41 little-endian, 0x11 0x11 big-endian); a file with an unknown
 * stamp is read in the byte order that gives a sane header, with a warning.
 * The reader is permissive with real files: a missing "MAP " id, a zero
 * machine stamp or a zero cell size give a warning (ew_warn), not an error;
 * pixel_size 0 then means "unknown" and the caller takes it from elsewhere
 * (e.g. the STAR file). Every size in the header is checked against the
 * file size before anything is allocated. Files whose axis order (mapc,
 * mapr, maps) is not 1 2 3 are reordered on whole reads so that data are
 * always (Z, Y, X) with X fastest; nx, ny, nz of ew_mrc_t then are the X, Y,
 * Z sizes (the header keeps the file's column/row/section counts).
 *
 * Files ewald writes: MRC2014 ("MAP ", stamp 0x44 0x44, nversion 20141),
 * little-endian, no extended header, axes 1 2 3; image stacks ispg 0 and
 * mz 1, volumes ispg 1 and mz = nz; cella = m x pixel size; origin in
 * Angstrom; dmin/dmax/dmean/rms of the values as stored (rms = standard
 * deviation from the mean). They pass `mrcfile.validate`.
 */
#ifndef EW_IO_MRC_H
#define EW_IO_MRC_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

enum {
    EW_MRC_INT8 = 0,
    EW_MRC_INT16 = 1,
    EW_MRC_FLOAT32 = 2,
    EW_MRC_UINT16 = 6,
    EW_MRC_FLOAT16 = 12
};

/* The 1024-byte header, decoded, plus what follows from it. */
typedef struct {
    int nx, ny, nz;            /* columns, rows, sections */
    int mode;                  /* EW_MRC_* */
    int nxstart, nystart, nzstart;
    int mx, my, mz;            /* sampling of the unit cell */
    float cella[3];            /* cell size, Angstrom */
    float cellb[3];            /* cell angles, degrees */
    int mapc, mapr, maps;      /* axes (1 = X, 2 = Y, 3 = Z) along columns, rows, sections */
    float dmin, dmax, dmean, rms;
    int ispg;                  /* 0 image/stack, 1 volume, 401.. volume stack */
    int nsymbt;                /* extended header bytes (skipped) */
    char exttyp[5];
    int nversion;
    float origin[3];           /* Angstrom */
    uint8_t machst[4];
    int nlabl;
    char labels[10][81];
    /* derived */
    int big_endian;            /* 1 if the data are big-endian */
    int has_map_id;            /* "MAP " present */
    double pixel_size[3];      /* cella / (mx, my, mz), Angstrom; 0 = unknown */
    int is_stack;              /* ispg == 0: a stack of 2-D images (or one image) */
    int axes_permuted;         /* mapc, mapr, maps is a permutation other than 1 2 3: whole
                                  reads reorder the data to (Z, Y, X); section reads refuse */
    size_t bytes_per_voxel;
    size_t data_offset;        /* 1024 + nsymbt */
    size_t section_bytes;      /* nx * ny * bytes_per_voxel */
    uint64_t file_size;
} ew_mrc_header_t;

/* A map or a range of sections of one, as float32. */
typedef struct {
    ew_mrc_header_t header;    /* of the file it came from */
    int nx, ny, nz;            /* nz = sections held */
    int z0;                    /* index of the first section held in the file */
    float *data;               /* (nz, ny, nx), ew_alloc_array; owned */
    double pixel_size[3];      /* Angstrom, 0 = unknown */
    double origin[3];          /* Angstrom */
    int is_stack;
} ew_mrc_t;

/* Read and check the header of path without reading the data (for `ewald
 * info` and for planning streamed reads). Warnings for permissive fixes go
 * to ew_warn. On error *h is zeroed and the message names the file, the
 * field and its value (or the size mismatch). */
ew_status_t ew_mrc_header_read(const char *path, ew_mrc_header_t *h);

/* Decode a header from the first len bytes of a file of file_size bytes
 * (len >= 1024 needed). name is used in messages. As ew_mrc_header_read. */
ew_status_t ew_mrc_header_parse(const void *buf, size_t len, uint64_t file_size, const char *name,
                                ew_mrc_header_t *h);

/* One line describing h (size, mode, pixel size, stack/volume, stats) into
 * out (always NUL-terminated). */
void ew_mrc_header_describe(const ew_mrc_header_t *h, char *out, size_t n);

/* Read a whole file into m (float32). On error m is left empty (data NULL)
 * and the message names the file. Free with ew_mrc_free. */
ew_status_t ew_mrc_read(const char *path, ew_mrc_t *m);

/* Read sections [z0, z0 + count) only (z slices of a volume, images of a
 * stack), seeking past the rest: memory is count * nx * ny floats. count
 * must be >= 1 and z0 + count <= nz, else EW_ERR_RANGE naming the file.
 * A file with permuted axes gives EW_ERR_UNSUPPORTED unless all sections
 * are requested. */
ew_status_t ew_mrc_read_sections(const char *path, int z0, int count, ew_mrc_t *m);

/* Parse a whole MRC file held in memory (fuzzers, tests); name is used in
 * messages. As ew_mrc_read. */
ew_status_t ew_mrc_parse(const void *data, size_t len, const char *name, ew_mrc_t *m);

/* Free m's data; m may be NULL; m is left empty. */
void ew_mrc_free(ew_mrc_t *m);

/* Write data (nz, ny, nx) to path in the given mode (atomically: nothing
 * at path on error). pixel: Angstrom per pixel (0 allowed: unknown);
 * origin: Angstrom, may be NULL (0, 0, 0); is_stack: 1 for images (ispg 0,
 * mz 1), 0 for a volume (ispg 1, mz nz). Integer modes round to nearest
 * and clamp to the type's range; a non-finite value then is EW_ERR_NUMERIC.
 * Mode 12 converts to IEEE half precision (round to nearest even). */
ew_status_t ew_mrc_write(const char *path, const float *data, int nx, int ny, int nz, double pixel,
                         const double origin[3], int is_stack, int mode);

/* Streaming writer for stacks (and volumes written section by section):
 * open, append images in order, close. The header (nz, stats) is fixed up
 * at close and the file renamed into place; abort removes the temporary. */
typedef struct ew_mrc_writer ew_mrc_writer_t;

/* Start writing path. Returns the writer in *w (NULL on error). */
ew_status_t ew_mrc_writer_open(ew_mrc_writer_t **w, const char *path, int nx, int ny, double pixel,
                               const double origin[3], int is_stack, int mode);
/* Append count sections of nx * ny floats each. */
ew_status_t ew_mrc_writer_append(ew_mrc_writer_t *w, const float *sections, int count);
/* Finish: write the header with nz and the statistics, rename into place,
 * free w. At least one section must have been appended. On error the
 * temporary is removed and w freed. */
ew_status_t ew_mrc_writer_close(ew_mrc_writer_t *w);
/* Give up: remove the temporary file and free w (NULL-safe). */
void ew_mrc_writer_abort(ew_mrc_writer_t *w);

/* IEEE 754 binary16 <-> binary32 conversions (round to nearest even). */
float ew_half_to_float(uint16_t h);
uint16_t ew_float_to_half(float f);

#endif
