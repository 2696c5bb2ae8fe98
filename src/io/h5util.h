/* ewald io: small checked helpers over the serial HDF5 library, shared by
 * the CXI and HDF5-volume code (internal to src/io, but usable by others).
 *
 * Every helper checks every H5 call, closes every handle it opens on every
 * path, and on failure returns a status whose one-line message names the
 * file and the object ("f.cxi: dataset /entry_1/data_1/data: rank 2, expected 3").
 * HDF5's own error-stack printing is switched off by ew_h5_quiet().
 */
#ifndef EW_IO_H5UTIL_H
#define EW_IO_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

#include "core/core.h"

/* Silence HDF5's automatic error printing (idempotent; call before use). */
void ew_h5_quiet(void);

/* Open an existing file read-only. On error *file is H5I_INVALID_HID. */
ew_status_t ew_h5_open_read(const char *path, hid_t *file);

/* Create (truncate) a file for writing. On error *file is H5I_INVALID_HID. */
ew_status_t ew_h5_create(const char *path, hid_t *file);

/* 1 if a link path exists and resolves to an object (intermediate groups
 * checked one by one), else 0. */
int ew_h5_exists(hid_t loc, const char *path);

/* Create a contiguous or chunked dataset at path (intermediate groups are
 * created), optionally write data (mem_type, whole extent) and set a
 * "units" string attribute (NULL: none). Dataset type file_type.
 * maxdims may be NULL (fixed); chunk may be NULL (contiguous); deflate
 * 0..9 (0 = none; needs chunk). On success *dset is the open dataset if
 * dset is not NULL (caller closes), else it is closed. */
ew_status_t ew_h5_create_dataset(hid_t loc, const char *fname, const char *path, hid_t file_type, int rank,
                                 const hsize_t *dims, const hsize_t *maxdims, const hsize_t *chunk, int deflate,
                                 hid_t mem_type, const void *data, const char *units, hid_t *dset);

/* Shape of a dataset: *rank (<= 8) and dims[0..rank). Also its type class
 * (H5T_FLOAT, H5T_INTEGER, ...) if cls is not NULL. */
ew_status_t ew_h5_dataset_shape(hid_t loc, const char *fname, const char *path, int *rank, hsize_t dims[8],
                                H5T_class_t *cls);

/* Read a whole numeric dataset into buf converted to mem_type, after
 * checking that it exists, has a numeric (integer or float) type, the given
 * rank and, for each k with want[k] != 0, dims[k] == want[k]. count_max is
 * the number of elements buf holds (checked). */
ew_status_t ew_h5_read_numeric(hid_t loc, const char *fname, const char *path, hid_t mem_type, int rank,
                               const hsize_t *want, void *buf, size_t count_max);

/* Read/write a hyperslab [start, start+count) along dimension 0 of a dataset
 * whose other dimensions are whole; row_elems is the product of the other
 * dimensions (elements per row). */
ew_status_t ew_h5_rows_io(hid_t dset, const char *fname, const char *path, int write, hid_t mem_type,
                          hsize_t start, hsize_t count, void *buf);

/* String attribute on an object (variable-length UTF-8). */
ew_status_t ew_h5_attr_set_str(hid_t obj, const char *fname, const char *objname, const char *name, const char *val);
/* Read a string attribute (fixed or variable length) into a malloc'd
 * string (caller frees). EW_ERR_FORMAT if absent or not a string. */
ew_status_t ew_h5_attr_get_str(hid_t obj, const char *fname, const char *objname, const char *name, char **val);
/* Numeric attribute of n doubles (n == 1: scalar). */
ew_status_t ew_h5_attr_set_f64(hid_t obj, const char *fname, const char *objname, const char *name, const double *v,
                               int n);
/* Read exactly n doubles from a numeric attribute. */
ew_status_t ew_h5_attr_get_f64(hid_t obj, const char *fname, const char *objname, const char *name, double *v, int n);
/* Scalar unsigned 64-bit attribute. */
ew_status_t ew_h5_attr_set_u64(hid_t obj, const char *fname, const char *objname, const char *name, uint64_t v);
ew_status_t ew_h5_attr_get_u64(hid_t obj, const char *fname, const char *objname, const char *name, uint64_t *v);

/* Scalar double dataset (with units), and reading one back. */
ew_status_t ew_h5_write_scalar(hid_t loc, const char *fname, const char *path, double v, const char *units);
ew_status_t ew_h5_read_scalar(hid_t loc, const char *fname, const char *path, double *v);

#endif
