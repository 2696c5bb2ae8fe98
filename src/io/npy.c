/* ewald io: NumPy .npy reader and writer (see npy.h). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "io/mrc.h" /* ew_half_to_float */
#include "io/npy.h"

#define MAX_HEADER (1u << 20)

typedef struct {
    char kind;      /* 'f', 'i', 'u', 'b' */
    int size;       /* bytes per item */
    int big_endian;
} dtype_t;

/* ------------------------------------------------------ header parser */

typedef struct {
    const char *p, *end;
    const char *name;
} hp_t;

static void skip_ws(hp_t *h)
{
    while (h->p < h->end && isspace((unsigned char)*h->p)) h->p++;
}

static int expect(hp_t *h, char c)
{
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string into out (size n). */
static int parse_str(hp_t *h, char *out, size_t n)
{
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return 0;
    char q = *h->p++;
    size_t k = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || k + 1 >= n) return 0;
        out[k++] = *h->p++;
    }
    if (h->p >= h->end) return 0;
    h->p++;
    out[k] = '\0';
    return 1;
}

static int parse_word(hp_t *h, const char *w)
{
    skip_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) >= n && !memcmp(h->p, w, n)) {
        h->p += n;
        return 1;
    }
    return 0;
}

static ew_status_t parse_header(const char *hdr, size_t len, const char *name, ew_npy_t *a,
                                dtype_t *dt)
{
    hp_t h = {hdr, hdr + len, name};
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    if (!expect(&h, '{'))
        return ew_fail(EW_ERR_FORMAT, "%s: .npy header does not start with '{'", name);
    for (;;) {
        if (expect(&h, '}')) break;
        char key[32];
        if (!parse_str(&h, key, sizeof key) || !expect(&h, ':'))
            return ew_fail(EW_ERR_FORMAT, "%s: .npy header: expected 'key': at offset %zu", name,
                           (size_t)(h.p - hdr));
        if (!strcmp(key, "descr")) {
            if (!parse_str(&h, a->dtype, sizeof a->dtype))
                return ew_fail(EW_ERR_UNSUPPORTED,
                               "%s: .npy header field 'descr' is not a simple dtype string (structured "
                               "arrays are not supported)", name);
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (parse_word(&h, "True")) fortran = 1;
            else if (parse_word(&h, "False")) fortran = 0;
            else return ew_fail(EW_ERR_FORMAT, "%s: .npy header field 'fortran_order' is not True/False", name);
            have_order = 1;
        } else if (!strcmp(key, "shape")) {
            if (!expect(&h, '('))
                return ew_fail(EW_ERR_FORMAT, "%s: .npy header field 'shape' is not a tuple", name);
            a->ndim = 0;
            for (;;) {
                if (expect(&h, ')')) break;
                skip_ws(&h);
                if (h.p >= h.end || !isdigit((unsigned char)*h.p))
                    return ew_fail(EW_ERR_FORMAT, "%s: .npy header field 'shape' has a non-integer entry", name);
                uint64_t v = 0;
                while (h.p < h.end && isdigit((unsigned char)*h.p)) {
                    if (v > (UINT64_MAX - 9) / 10)
                        return ew_fail(EW_ERR_FORMAT, "%s: .npy shape entry is too large", name);
                    v = v * 10 + (uint64_t)(*h.p++ - '0');
                }
                if (h.p < h.end && *h.p == 'L') h.p++; /* Python 2 long */
                if (a->ndim >= EW_NPY_MAX_DIM)
                    return ew_fail(EW_ERR_UNSUPPORTED, "%s: .npy array has more than %d dimensions",
                                   name, EW_NPY_MAX_DIM);
                if (v > SIZE_MAX) return ew_fail(EW_ERR_FORMAT, "%s: .npy shape entry is too large", name);
                a->shape[a->ndim++] = (size_t)v;
                if (!expect(&h, ',')) {
                    if (!expect(&h, ')'))
                        return ew_fail(EW_ERR_FORMAT, "%s: .npy header field 'shape' is malformed", name);
                    break;
                }
            }
            have_shape = 1;
        } else {
            return ew_fail(EW_ERR_FORMAT, "%s: .npy header has an unknown key '%s'", name, key);
        }
        if (!expect(&h, ',')) {
            if (!expect(&h, '}')) return ew_fail(EW_ERR_FORMAT, "%s: .npy header dictionary is malformed", name);
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return ew_fail(EW_ERR_FORMAT, "%s: .npy header lacks '%s'", name,
                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return ew_fail(EW_ERR_UNSUPPORTED,
                       "%s: .npy array is in Fortran order; save it C-ordered (numpy.ascontiguousarray)",
                       name);
    const char *d = a->dtype;
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return ew_fail(EW_ERR_UNSUPPORTED, "%s: .npy dtype '%s' has no byte-order character", name, d);
    dt->kind = d[1];
    char *end;
    long sz = strtol(d + 2, &end, 10);
    int ok = d[1] && *end == '\0' && end != d + 2;
    if (ok) {
        switch (dt->kind) {
        case 'f': ok = sz == 2 || sz == 4 || sz == 8; break;
        case 'i':
        case 'u': ok = sz == 1 || sz == 2 || sz == 4 || sz == 8; break;
        case 'b': ok = sz == 1; break;
        default: ok = 0;
        }
    }
    if (!ok)
        return ew_fail(EW_ERR_UNSUPPORTED,
                       "%s: .npy dtype '%s' is not supported (float16/32/64, int8..64, uint8..64, bool are)",
                       name, d);
    dt->size = (int)sz;
    dt->big_endian = order == '>' && sz > 1;
    a->count = 1;
    for (int i = 0; i < a->ndim; i++)
        if (ew_size_mul(a->count, a->shape[i], &a->count) != EW_OK)
            return ew_fail(EW_ERR_FORMAT, "%s: .npy shape overflows", name);
    return EW_OK;
}

/* Read the magic, version and header from the first bytes; *data_off is
 * where the data start. avail: bytes available in buf; total: file size. */
static ew_status_t parse_prefix(const uint8_t *buf, size_t avail, uint64_t total, const char *name,
                                ew_npy_t *a, dtype_t *dt, size_t *data_off, size_t *need)
{
    *need = 0;
    if (avail < 10 || memcmp(buf, "\x93NUMPY", 6))
        return ew_fail(EW_ERR_FORMAT, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    int major = buf[6];
    size_t hlen, pre;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        pre = 10;
    } else if (major == 2 || major == 3) {
        if (avail < 12) return ew_fail(EW_ERR_FORMAT, "%s: .npy file truncated in its header", name);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        pre = 12;
    } else {
        return ew_fail(EW_ERR_UNSUPPORTED, "%s: .npy format version %d.%d is not supported", name,
                       major, buf[7]);
    }
    if (hlen > MAX_HEADER || pre + hlen > total)
        return ew_fail(EW_ERR_FORMAT, "%s: .npy header length %zu exceeds the file (%llu bytes)", name,
                       hlen, (unsigned long long)total);
    if (pre + hlen > avail) {
        *need = pre + hlen;
        return EW_OK;
    }
    EW_TRY(parse_header((const char *)buf + pre, hlen, name, a, dt));
    *data_off = pre + hlen;
    size_t bytes;
    if (ew_size_mul(a->count, (size_t)dt->size, &bytes) != EW_OK || bytes > total - *data_off)
        return ew_fail(EW_ERR_FORMAT,
                       "%s: truncated: shape and dtype '%s' need %zu x %d bytes of data, the file has "
                       "%llu after the header",
                       name, a->dtype, a->count, dt->size, (unsigned long long)(total - *data_off));
    return EW_OK;
}

static void convert(const uint8_t *src, size_t n, const dtype_t *dt, double *dst)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = src + i * (size_t)dt->size;
        uint64_t u = 0;
        for (int k = 0; k < dt->size; k++) {
            int byte = dt->big_endian ? dt->size - 1 - k : k;
            u |= (uint64_t)p[byte] << (8 * k);
        }
        double v;
        switch (dt->kind) {
        case 'f':
            if (dt->size == 8) {
                memcpy(&v, &u, 8);
            } else if (dt->size == 4) {
                uint32_t w = (uint32_t)u;
                float f;
                memcpy(&f, &w, 4);
                v = f;
            } else {
                v = ew_half_to_float((uint16_t)u);
            }
            break;
        case 'i': {
            int shift = 64 - 8 * dt->size;
            int64_t s = (int64_t)(u << shift) >> shift; /* sign-extend */
            v = (double)s;
            break;
        }
        case 'b': v = u ? 1.0 : 0.0; break;
        default: v = (double)u; break;
        }
        dst[i] = v;
    }
}

void ew_npy_free(ew_npy_t *a)
{
    if (!a) return;
    ew_free(a->data);
    memset(a, 0, sizeof *a);
}

ew_status_t ew_npy_parse(const void *data, size_t len, const char *name, ew_npy_t *a)
{
    EW_ASSERT(a && (data || len == 0));
    memset(a, 0, sizeof *a);
    if (!name) name = "(memory)";
    dtype_t dt;
    size_t off = 0, need = 0;
    ew_status_t st = parse_prefix(data, len, len, name, a, &dt, &off, &need);
    if (st == EW_OK && need) st = ew_fail(EW_ERR_FORMAT, "%s: .npy header is truncated", name);
    if (st != EW_OK) {
        memset(a, 0, sizeof *a);
        return st;
    }
    a->data = ew_alloc_array(a->count, sizeof(double));
    if (!a->data) {
        memset(a, 0, sizeof *a);
        return ew_fail_context(EW_ERR_NOMEM, "%s", name);
    }
    convert((const uint8_t *)data + off, a->count, &dt, a->data);
    return EW_OK;
}

static ew_status_t read_file(const char *path, ew_npy_t *a, int with_data)
{
    EW_ASSERT(path && a);
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ew_status_t st = EW_OK;
    uint8_t *buf = NULL;
    off_t size = -1;
    if (fseeko(f, 0, SEEK_END) == 0) size = ftello(f);
    if (size < 0 || fseeko(f, 0, SEEK_SET) != 0) {
        st = ew_fail(EW_ERR_IO, "%s: cannot determine the file size: %s", path, strerror(errno));
        goto done;
    }
    uint8_t pre[12];
    size_t got = fread(pre, 1, sizeof pre, f);
    dtype_t dt;
    size_t off = 0, need = 0;
    st = parse_prefix(pre, got, (uint64_t)size, path, a, &dt, &off, &need);
    if (st != EW_OK) goto done;
    if (need) { /* read the whole header (bounded by MAX_HEADER and the file size) */
        buf = malloc(need);
        if (!buf) {
            st = ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        memcpy(buf, pre, got);
        if (fread(buf + got, 1, need - got, f) != need - got) {
            st = ew_fail(EW_ERR_IO, "%s: read error in the .npy header", path);
            goto done;
        }
        st = parse_prefix(buf, need, (uint64_t)size, path, a, &dt, &off, &need);
        if (st != EW_OK) goto done;
    }
    if (!with_data) goto done;
    a->data = ew_alloc_array(a->count, sizeof(double));
    if (!a->data) {
        st = ew_fail_context(EW_ERR_NOMEM, "%s", path);
        goto done;
    }
    if (fseeko(f, (off_t)off, SEEK_SET) != 0) {
        st = ew_fail(EW_ERR_IO, "%s: cannot seek to the data: %s", path, strerror(errno));
        goto done;
    }
    uint8_t chunk[65536];
    size_t per = sizeof chunk / (size_t)dt.size;
    for (size_t i = 0; i < a->count; i += per) {
        size_t k = a->count - i < per ? a->count - i : per;
        if (fread(chunk, (size_t)dt.size, k, f) != k) {
            st = ew_fail(EW_ERR_FORMAT, "%s: file ended at element %zu of %zu", path, i, a->count);
            goto done;
        }
        convert(chunk, k, &dt, a->data + i);
    }
done:
    free(buf);
    fclose(f);
    if (st != EW_OK) ew_npy_free(a);
    return st;
}

ew_status_t ew_npy_read(const char *path, ew_npy_t *a) { return read_file(path, a, 1); }
ew_status_t ew_npy_header_read(const char *path, ew_npy_t *a) { return read_file(path, a, 0); }

static ew_status_t write_any(const char *path, const void *data, int ndim, const size_t *shape,
                             int f64)
{
    EW_ASSERT(path && (shape || ndim == 0));
    if (ndim < 0 || ndim > EW_NPY_MAX_DIM)
        return ew_fail(EW_ERR_ARG, "%s: %d dimensions (0..%d supported)", path, ndim, EW_NPY_MAX_DIM);
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        if (ew_size_mul(count, shape[i], &count) != EW_OK) return ew_fail_context(EW_ERR_ARG, "%s", path);
    EW_ASSERT(data || count == 0);
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     f64 ? "<f8" : "<f4");
    for (int i = 0; i < ndim; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%zu%s", shape[i], ndim == 1 || i < ndim - 1 ? ", " : "");
    if (ndim == 1) n -= 1; /* "(5,)" */
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1, pad = (64 - total % 64) % 64;
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    size_t hl = (size_t)n + pad + 1;
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)hl, (uint8_t)(hl >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    /* little-endian hosts only write directly; others byte-swap */
    const uint8_t *b = data;
    size_t item = f64 ? 8 : 4;
    uint16_t probe = 1;
    int le = *(uint8_t *)&probe == 1;
    if (le) {
        fwrite(b, item, count, f);
    } else {
        for (size_t i = 0; i < count; i++)
            for (size_t k = 0; k < item; k++) fputc(b[i * item + item - 1 - k], f);
    }
    return ew_atomic_commit(f, tmp, path);
}

ew_status_t ew_npy_write_f64(const char *path, const double *data, int ndim, const size_t *shape)
{
    return write_any(path, data, ndim, shape, 1);
}

ew_status_t ew_npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape)
{
    return write_any(path, data, ndim, shape, 0);
}
