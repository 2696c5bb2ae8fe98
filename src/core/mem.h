/* ewald core: overflow-checked, SIMD-aligned allocation.
 *
 * All ewald buffers of numbers come from ew_alloc_array / ew_calloc_array,
 * aligned to EW_ALIGN bytes, and go back with ew_free (free(NULL)-safe).
 * Sizes read from file headers are multiplied with ew_size_mul before
 * anything is allocated, so a lying header gives an error, not a huge
 * allocation or a wrapped size.
 */
#ifndef EW_CORE_MEM_H
#define EW_CORE_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define EW_ALIGN 64

/* *out = a * b. Returns EW_ERR_NOMEM (with a message) on overflow. */
ew_status_t ew_size_mul(size_t a, size_t b, size_t *out);

/* *out = a * b * c, overflow-checked as ew_size_mul. */
ew_status_t ew_size_mul3(size_t a, size_t b, size_t c, size_t *out);

/* Allocate count * size bytes aligned to EW_ALIGN; contents undefined.
 * Returns NULL (and sets the error message) on overflow or failure.
 * count * size == 0 returns a valid, freeable minimal block. */
void *ew_alloc_array(size_t count, size_t size);

/* As ew_alloc_array, zero-filled. */
void *ew_calloc_array(size_t count, size_t size);

/* Free memory from ew_alloc_array/ew_calloc_array. NULL is a no-op. */
void ew_free(void *p);

/* strdup that sets the error message on failure (NULL in, NULL out). */
char *ew_strdup(const char *s);

/* Grow a plain malloc'd array to hold at least need elements of size
 * elem, doubling capacity; *cap is updated. Returns EW_ERR_NOMEM on
 * failure (the old block stays valid and owned by the caller). */
ew_status_t ew_grow(void **ptr, size_t *cap, size_t need, size_t elem);

#endif
