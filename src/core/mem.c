/* ewald core: overflow-checked, aligned allocation. */
#include "core/mem.h"

#include <stdlib.h>
#include <string.h>

ew_status_t ew_size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return ew_fail(EW_ERR_NOMEM, "size overflow: %zu x %zu does not fit in size_t", a, b);
    *out = a * b;
    return EW_OK;
}

ew_status_t ew_size_mul3(size_t a, size_t b, size_t c, size_t *out)
{
    size_t ab;
    EW_TRY(ew_size_mul(a, b, &ab));
    return ew_size_mul(ab, c, out);
}

void *ew_alloc_array(size_t count, size_t size)
{
    size_t bytes;
    if (ew_size_mul(count, size, &bytes) != EW_OK) return NULL;
    /* aligned_alloc needs a size that is a multiple of the alignment. */
    size_t rounded = (bytes + EW_ALIGN - 1) / EW_ALIGN * EW_ALIGN;
    if (rounded < bytes) {
        ew_fail(EW_ERR_NOMEM, "size overflow rounding %zu bytes", bytes);
        return NULL;
    }
    if (rounded == 0) rounded = EW_ALIGN;
    void *p = aligned_alloc(EW_ALIGN, rounded);
    if (!p) ew_fail(EW_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *ew_calloc_array(size_t count, size_t size)
{
    void *p = ew_alloc_array(count, size);
    if (p) memset(p, 0, count * size);
    return p;
}

void ew_free(void *p) { free(p); }

char *ew_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d) {
        ew_fail(EW_ERR_NOMEM, "out of memory copying a %zu-byte string", n);
        return NULL;
    }
    memcpy(d, s, n);
    return d;
}

ew_status_t ew_grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return EW_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return ew_fail(EW_ERR_NOMEM, "array too large (%zu elements)", need);
        ncap *= 2;
    }
    size_t bytes;
    EW_TRY(ew_size_mul(ncap, elem, &bytes));
    void *p = realloc(*ptr, bytes);
    if (!p) return ew_fail(EW_ERR_NOMEM, "out of memory growing an array to %zu bytes", bytes);
    *ptr = p;
    *cap = ncap;
    return EW_OK;
}
