/* ewald io: NumPy .npy arrays (format versions 1, 2 and 3).
 *
 * Reads C-order arrays of float64, float32, float16, int8..int64,
 * uint8..uint64 and bool in little-endian ('<'), not-applicable ('|') or
 * big-endian ('>') byte order, converting the values to double (integers
 * beyond 2^53 lose precision). Fortran-order arrays, structured, complex,
 * object and string dtypes are rejected with a message naming the file and
 * the header field. The header length and the shape are checked against
 * the file size before anything is allocated.
 *
 * Writes float64 / float32 arrays as format version 1.0 (header padded to
 * a multiple of 64 bytes, as NumPy does), which numpy.load reads.
 */
#ifndef EW_IO_NPY_H
#define EW_IO_NPY_H

#include <stddef.h>

#include "core/core.h"

#define EW_NPY_MAX_DIM 8

typedef struct {
    int ndim;                        /* 0 for a scalar */
    size_t shape[EW_NPY_MAX_DIM];
    size_t count;                    /* product of shape (1 for a scalar) */
    char dtype[16];                  /* the header's descr, e.g. "<f8" */
    double *data;                    /* count values in C order; ew_alloc_array, owned */
} ew_npy_t;

/* Read an .npy file. On error *a is left empty and the message names the
 * file and what is wrong (magic, version, header field, data size). */
ew_status_t ew_npy_read(const char *path, ew_npy_t *a);

/* Parse an .npy file held in memory (fuzzers, tests); name for messages. */
ew_status_t ew_npy_parse(const void *data, size_t len, const char *name, ew_npy_t *a);

/* Read only the header (shape and dtype; data stays NULL), e.g. for
 * `ewald info`. As ew_npy_read otherwise. */
ew_status_t ew_npy_header_read(const char *path, ew_npy_t *a);

/* Free a's data; a may be NULL; a is left empty. */
void ew_npy_free(ew_npy_t *a);

/* Write a C-order array of ndim (0..EW_NPY_MAX_DIM) dimensions as '<f8'
 * or '<f4' (atomically: nothing at path on error). */
ew_status_t ew_npy_write_f64(const char *path, const double *data, int ndim, const size_t *shape);
ew_status_t ew_npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape);

#endif
