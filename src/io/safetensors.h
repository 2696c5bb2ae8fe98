/* ewald io: safetensors files (the format of Hugging Face / PyTorch
 * checkpoints).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the raw little-endian data; offsets are relative to the data start.
 *
 * The reader checks everything against the file size before use: header
 * length, JSON syntax, dtype names, shapes (non-negative, product
 * overflow-checked), data_offsets (within the data, end - begin = bytes
 * of the shape, no overlaps or holes, as the format requires). A
 * truncated or corrupted file gives EW_ERR_FORMAT with a message naming
 * the file and the tensor. The writer is atomic (temporary file + rename).
 */
#ifndef EW_IO_SAFETENSORS_H
#define EW_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum {
    EW_ST_F32 = 0,
    EW_ST_F64,
    EW_ST_F16,
    EW_ST_BF16,
    EW_ST_I64,
    EW_ST_I32,
    EW_ST_I16,
    EW_ST_I8,
    EW_ST_U8,
    EW_ST_BOOL,
    EW_ST_NTYPES
} ew_st_dtype_t;

#define EW_ST_MAX_DIM 8

typedef struct {
    char *name;
    ew_st_dtype_t dtype;
    int ndim;
    int64_t shape[EW_ST_MAX_DIM];
    size_t count;        /* product of shape */
    size_t begin, end;   /* byte offsets into data */
} ew_st_tensor_t;

typedef struct {
    ew_st_tensor_t *t;   /* in file order of data_offsets */
    size_t n;
    char **meta_key, **meta_val; /* __metadata__ pairs */
    size_t n_meta;
    unsigned char *buf;  /* the whole file (owned) */
    size_t size;
    const unsigned char *data; /* buf + 8 + header length */
    size_t data_size;
    char *label;         /* file name used in messages */
} ew_safetensors_t;

/* Bytes per element of a dtype; its name ("F32"...) and the reverse. */
size_t ew_st_dtype_size(ew_st_dtype_t d);
const char *ew_st_dtype_name(ew_st_dtype_t d);
/* Returns -1 for an unknown name. */
int ew_st_dtype_from_name(const char *name);

/* Read and validate a file. On error st is left empty and the message
 * names the file (and the tensor where one is at fault). */
ew_status_t ew_safetensors_read(const char *path, ew_safetensors_t *st);

/* Validate a file image in memory (copied; label names it in messages).
 * Same contract as ew_safetensors_read. */
ew_status_t ew_safetensors_parse(const void *bytes, size_t size, const char *label, ew_safetensors_t *st);

/* The tensor called name, or NULL. */
const ew_st_tensor_t *ew_safetensors_find(const ew_safetensors_t *st, const char *name);

/* The __metadata__ value for key, or NULL. */
const char *ew_safetensors_meta(const ew_safetensors_t *st, const char *key);

/* Copy tensor name converted to float (from F32, F64, F16, BF16, integers)
 * into out[count]. EW_ERR_FORMAT if it is missing ("file: tensor X is
 * missing") or holds a different number of elements. */
ew_status_t ew_safetensors_get_f32(const ew_safetensors_t *st, const char *name, float *out, size_t count);

/* Copy an integer (or float) tensor converted to int64 into out[count];
 * same errors as ew_safetensors_get_f32. */
ew_status_t ew_safetensors_get_i64(const ew_safetensors_t *st, const char *name, int64_t *out, size_t count);

/* Free everything; st is left empty (NULL-safe). */
void ew_safetensors_free(ew_safetensors_t *st);

/* One tensor to write: data holds count(shape) elements of dtype in the
 * machine's (little-endian) order; it is not copied. */
typedef struct {
    const char *name;
    ew_st_dtype_t dtype;
    int ndim;
    int64_t shape[EW_ST_MAX_DIM];
    const void *data;
} ew_st_entry_t;

/* Write n tensors (in this order) and n_meta metadata pairs
 * (meta[2i] = key, meta[2i+1] = value; may be NULL when n_meta = 0) to
 * path atomically; the header is padded with spaces to a multiple of 8
 * bytes so the data stays aligned. EW_ERR_ARG on a duplicate or empty
 * name, EW_ERR_IO on a write failure (no file is left behind). */
ew_status_t ew_safetensors_write(const char *path, const ew_st_entry_t *e, size_t n, const char *const *meta,
                                 size_t n_meta);

#endif
