/* ewald io: MRC2014 reader and writer (see mrc.h for the conventions). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "io/mrc.h"

#define HDR 1024
#define CHUNK_BYTES (1u << 20)

/* ----------------------------------------------------- half precision */

float ew_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ew_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 255) /* inf or NaN (quiet, keeps a payload bit) */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {                                     /* subnormal or zero */
        if (e < -10) return sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into inf: correct */
    return (uint16_t)(sign | h);
}

/* ---------------------------------------------------------- decoding */

static uint32_t get_u32(const uint8_t *p, int be)
{
    return be ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3])
              : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]);
}
static int32_t get_i32(const uint8_t *b, int word, int be)
{
    return (int32_t)get_u32(b + 4 * word, be);
}
static float get_f32(const uint8_t *b, int word, int be)
{
    uint32_t u = get_u32(b + 4 * word, be);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static void put_i32(uint8_t *b, int word, int32_t v) { put_u32(b + 4 * word, (uint32_t)v); }
static void put_f32(uint8_t *b, int word, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b + 4 * word, u);
}

static size_t mode_bytes(int mode)
{
    switch (mode) {
    case EW_MRC_INT8: return 1;
    case EW_MRC_INT16:
    case EW_MRC_UINT16:
    case EW_MRC_FLOAT16: return 2;
    case EW_MRC_FLOAT32: return 4;
    default: return 0;
    }
}

static int header_sane(const uint8_t *b, int be)
{
    int32_t nx = get_i32(b, 0, be), ny = get_i32(b, 1, be), nz = get_i32(b, 2, be);
    int32_t mode = get_i32(b, 3, be);
    return nx > 0 && ny > 0 && nz > 0 && nx < (1 << 24) && ny < (1 << 24) && nz < (1 << 28) &&
           mode >= 0 && mode < 200;
}

ew_status_t ew_mrc_header_parse(const void *buf, size_t len, uint64_t file_size, const char *name,
                                ew_mrc_header_t *h)
{
    EW_ASSERT(h && (buf || len == 0));
    memset(h, 0, sizeof *h);
    if (!name) name = "(memory)";
    if (len < HDR || file_size < HDR)
        return ew_fail(EW_ERR_FORMAT, "%s: file is %llu bytes, shorter than the 1024-byte MRC header",
                       name, (unsigned long long)(file_size < len ? file_size : len));
    const uint8_t *b = buf;
    memcpy(h->machst, b + 212, 4);
    int be;
    if (b[212] == 0x44 || b[212] == 0x41) {
        be = 0;
    } else if (b[212] == 0x11) {
        be = 1;
    } else {
        be = !header_sane(b, 0) && header_sane(b, 1);
        ew_warn("%s: unrecognised machine stamp 0x%02x 0x%02x 0x%02x 0x%02x; reading as %s-endian",
                name, b[212], b[213], b[214], b[215], be ? "big" : "little");
    }
    h->big_endian = be;
    h->nx = get_i32(b, 0, be);
    h->ny = get_i32(b, 1, be);
    h->nz = get_i32(b, 2, be);
    h->mode = get_i32(b, 3, be);
    h->nxstart = get_i32(b, 4, be);
    h->nystart = get_i32(b, 5, be);
    h->nzstart = get_i32(b, 6, be);
    h->mx = get_i32(b, 7, be);
    h->my = get_i32(b, 8, be);
    h->mz = get_i32(b, 9, be);
    for (int d = 0; d < 3; d++) {
        h->cella[d] = get_f32(b, 10 + d, be);
        h->cellb[d] = get_f32(b, 13 + d, be);
        h->origin[d] = get_f32(b, 49 + d, be);
    }
    h->mapc = get_i32(b, 16, be);
    h->mapr = get_i32(b, 17, be);
    h->maps = get_i32(b, 18, be);
    h->dmin = get_f32(b, 19, be);
    h->dmax = get_f32(b, 20, be);
    h->dmean = get_f32(b, 21, be);
    h->ispg = get_i32(b, 22, be);
    h->nsymbt = get_i32(b, 23, be);
    memcpy(h->exttyp, b + 104, 4);
    for (int i = 0; i < 4; i++)
        if ((unsigned char)h->exttyp[i] < 32 || (unsigned char)h->exttyp[i] > 126) h->exttyp[i] = ' ';
    h->nversion = get_i32(b, 27, be);
    h->has_map_id = !memcmp(b + 208, "MAP ", 4);
    h->rms = get_f32(b, 54, be);
    h->nlabl = get_i32(b, 55, be);
    if (h->nlabl < 0 || h->nlabl > 10) h->nlabl = 10;
    for (int i = 0; i < h->nlabl; i++) {
        for (int k = 0; k < 80; k++) {
            char c = (char)b[224 + 80 * i + k];
            h->labels[i][k] = (c >= 32 && c <= 126) ? c : (c == 0 ? 0 : '?');
        }
        h->labels[i][80] = 0;
        size_t n = strlen(h->labels[i]);
        while (n > 0 && h->labels[i][n - 1] == ' ') h->labels[i][--n] = 0;
    }
    h->file_size = file_size;

    if (h->nx <= 0 || h->ny <= 0 || h->nz <= 0)
        return ew_fail(EW_ERR_FORMAT, "%s: header size nx, ny, nz = %d, %d, %d is not positive", name,
                       h->nx, h->ny, h->nz);
    h->bytes_per_voxel = mode_bytes(h->mode);
    if (!h->bytes_per_voxel)
        return ew_fail(h->mode == 3 || h->mode == 4 || h->mode == 101 ? EW_ERR_UNSUPPORTED
                                                                       : EW_ERR_FORMAT,
                       "%s: header field mode = %d is not supported (0, 1, 2, 6, 12 are)", name,
                       h->mode);
    if (!(h->mapc == 1 && h->mapr == 2 && h->maps == 3)) {
        if (h->mapc == 0 && h->mapr == 0 && h->maps == 0) {
            ew_warn("%s: axis order mapc, mapr, maps is 0, 0, 0; assuming 1, 2, 3", name);
        } else {
            int perm = h->mapc >= 1 && h->mapc <= 3 && h->mapr >= 1 && h->mapr <= 3 &&
                       h->maps >= 1 && h->maps <= 3 && h->mapc != h->mapr && h->mapc != h->maps &&
                       h->mapr != h->maps;
            if (!perm)
                return ew_fail(EW_ERR_FORMAT,
                               "%s: axis order mapc, mapr, maps = %d, %d, %d is not a permutation of 1, 2, 3",
                               name, h->mapc, h->mapr, h->maps);
            h->axes_permuted = 1;
        }
    }
    if (h->nsymbt < 0)
        return ew_fail(EW_ERR_FORMAT, "%s: header field nsymbt = %d is negative", name, h->nsymbt);
    h->data_offset = (size_t)HDR + (size_t)h->nsymbt;
    size_t data_bytes;
    if (ew_size_mul3((size_t)h->nx, (size_t)h->ny, h->bytes_per_voxel, &h->section_bytes) != EW_OK ||
        ew_size_mul(h->section_bytes, (size_t)h->nz, &data_bytes) != EW_OK)
        return ew_fail(EW_ERR_FORMAT, "%s: data size %d x %d x %d overflows", name, h->nx, h->ny, h->nz);
    if (h->data_offset > file_size || data_bytes > file_size - h->data_offset)
        return ew_fail(EW_ERR_FORMAT,
                       "%s: truncated: header says %d x %d x %d mode %d (%zu bytes of data after %zu "
                       "header bytes), the file has %llu bytes",
                       name, h->nx, h->ny, h->nz, h->mode, data_bytes, h->data_offset,
                       (unsigned long long)file_size);
    if (file_size - h->data_offset > data_bytes)
        ew_warn("%s: %llu bytes beyond the data the header describes are ignored", name,
                (unsigned long long)(file_size - h->data_offset - data_bytes));
    if (!h->has_map_id) ew_warn("%s: no \"MAP \" id string (not strictly MRC2014); reading anyway", name);
    int m[3] = {h->mx, h->my, h->mz};
    int unknown = 0;
    for (int d = 0; d < 3; d++) {
        double c = h->cella[d];
        h->pixel_size[d] = (m[d] > 0 && isfinite(c) && c > 0) ? c / m[d] : 0.0;
        if (h->pixel_size[d] == 0.0 && (d < 2 || h->nz > 1)) unknown = 1;
        if (!isfinite(h->origin[d])) h->origin[d] = 0.0f;
    }
    if (unknown)
        ew_warn("%s: cell size %g x %g x %g A with sampling %d, %d, %d gives no pixel size; it is "
                "unknown (0)",
                name, h->cella[0], h->cella[1], h->cella[2], h->mx, h->my, h->mz);
    h->is_stack = h->ispg == 0;
    return EW_OK;
}

void ew_mrc_header_describe(const ew_mrc_header_t *h, char *out, size_t n)
{
    static const char *names[] = {"int8", "int16", "float32", "?", "?", "?", "uint16"};
    const char *mn = h->mode == 12 ? "float16" : (h->mode >= 0 && h->mode <= 6 ? names[h->mode] : "?");
    snprintf(out, n,
             "%s %d x %d x %d, mode %d (%s), pixel %.4g x %.4g x %.4g A, origin %.4g %.4g %.4g A, "
             "min %.4g max %.4g mean %.4g rms %.4g, %s-endian, ispg %d",
             h->is_stack ? (h->nz > 1 ? "image stack" : "image") : "volume", h->nx, h->ny, h->nz,
             h->mode, mn, h->pixel_size[0], h->pixel_size[1], h->pixel_size[2], h->origin[0],
             h->origin[1], h->origin[2], h->dmin, h->dmax, h->dmean, h->rms,
             h->big_endian ? "big" : "little", h->ispg);
}

/* Convert n voxels of raw file bytes to float. */
static void convert(const uint8_t *src, size_t n, int mode, int be, float *dst)
{
    switch (mode) {
    case EW_MRC_INT8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i];
        break;
    case EW_MRC_INT16:
    case EW_MRC_UINT16:
    case EW_MRC_FLOAT16:
        for (size_t i = 0; i < n; i++) {
            uint16_t u = be ? (uint16_t)(src[2 * i] << 8 | src[2 * i + 1])
                            : (uint16_t)(src[2 * i + 1] << 8 | src[2 * i]);
            dst[i] = mode == EW_MRC_INT16 ? (float)(int16_t)u
                     : mode == EW_MRC_UINT16 ? (float)u : ew_half_to_float(u);
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = get_u32(src + 4 * i, be);
            memcpy(&dst[i], &u, 4);
        }
        break;
    }
}

/* Set m's geometry; for a whole read of a file with permuted axes,
 * reorder data (file order: sections, rows, columns) to (Z, Y, X). */
static ew_status_t fill_from_header(ew_mrc_t *m, int z0, int count, float *data, const char *name)
{
    const ew_mrc_header_t *h = &m->header;
    m->nx = h->nx;
    m->ny = h->ny;
    m->nz = count;
    m->z0 = z0;
    m->is_stack = h->is_stack;
    for (int d = 0; d < 3; d++) {
        m->pixel_size[d] = h->pixel_size[d];
        m->origin[d] = h->origin[d];
    }
    m->data = data;
    if (!h->axes_permuted) return EW_OK;
    size_t nf[3] = {(size_t)h->nx, (size_t)h->ny, (size_t)h->nz}; /* columns, rows, sections */
    int ax[3] = {h->mapc - 1, h->mapr - 1, h->maps - 1};           /* X/Y/Z index of each */
    size_t n[3];
    for (int k = 0; k < 3; k++) n[ax[k]] = nf[k];
    size_t total = nf[0] * nf[1] * nf[2];
    float *out = ew_alloc_array(total, sizeof(float));
    if (!out) {
        ew_free(data);
        m->data = NULL;
        return ew_fail_context(EW_ERR_NOMEM, "%s", name);
    }
    size_t stride[3] = {1, n[0], n[0] * n[1]}; /* of X, Y, Z in the output */
    size_t sc = stride[ax[0]], sr = stride[ax[1]], ss = stride[ax[2]];
    size_t i = 0;
    for (size_t s = 0; s < nf[2]; s++)
        for (size_t r = 0; r < nf[1]; r++)
            for (size_t c = 0; c < nf[0]; c++) out[c * sc + r * sr + s * ss] = data[i++];
    ew_free(data);
    m->data = out;
    m->nx = (int)n[0];
    m->ny = (int)n[1];
    m->nz = (int)n[2];
    return EW_OK;
}

void ew_mrc_free(ew_mrc_t *m)
{
    if (!m) return;
    ew_free(m->data);
    memset(m, 0, sizeof *m);
}

ew_status_t ew_mrc_parse(const void *data, size_t len, const char *name, ew_mrc_t *m)
{
    EW_ASSERT(m);
    memset(m, 0, sizeof *m);
    if (!name) name = "(memory)";
    EW_TRY(ew_mrc_header_parse(data, len, len, name, &m->header));
    size_t nvox = m->header.section_bytes / m->header.bytes_per_voxel * (size_t)m->header.nz;
    float *out = ew_alloc_array(nvox, sizeof(float));
    if (!out) {
        memset(m, 0, sizeof *m);
        return ew_fail_context(EW_ERR_NOMEM, "%s", name);
    }
    convert((const uint8_t *)data + m->header.data_offset, nvox, m->header.mode,
            m->header.big_endian, out);
    ew_status_t st = fill_from_header(m, 0, m->header.nz, out, name);
    if (st != EW_OK) memset(m, 0, sizeof *m);
    return st;
}

static ew_status_t open_and_header(const char *path, FILE **fp, ew_mrc_header_t *h)
{
    memset(h, 0, sizeof *h);
    FILE *f = fopen(path, "rb");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t buf[HDR];
    size_t got = fread(buf, 1, HDR, f);
    off_t size = -1;
    if (fseeko(f, 0, SEEK_END) == 0) size = ftello(f);
    if (size < 0) {
        fclose(f);
        return ew_fail(EW_ERR_IO, "%s: cannot determine the file size: %s", path, strerror(errno));
    }
    ew_status_t st = ew_mrc_header_parse(buf, got, (uint64_t)size, path, h);
    if (st != EW_OK) {
        fclose(f);
        return st;
    }
    *fp = f;
    return EW_OK;
}

ew_status_t ew_mrc_header_read(const char *path, ew_mrc_header_t *h)
{
    EW_ASSERT(path && h);
    FILE *f = NULL;
    EW_TRY(open_and_header(path, &f, h));
    fclose(f);
    return EW_OK;
}

/* Read sections [z0, z0 + count) (count < 0: all) of path into m. */
static ew_status_t read_range(const char *path, int z0, int count, ew_mrc_t *m)
{
    EW_ASSERT(path && m);
    memset(m, 0, sizeof *m);
    FILE *f = NULL;
    EW_TRY(open_and_header(path, &f, &m->header));
    const ew_mrc_header_t *h = &m->header;
    if (count < 0) count = h->nz;
    if (h->axes_permuted && (z0 != 0 || count != h->nz)) {
        int c = h->mapc, r = h->mapr, sct = h->maps;
        fclose(f);
        memset(m, 0, sizeof *m);
        return ew_fail(EW_ERR_UNSUPPORTED,
                       "%s: axis order mapc, mapr, maps = %d, %d, %d: sections cannot be read "
                       "separately; read the whole map", path, c, r, sct);
    }
    if (z0 < 0 || count < 1 || count > h->nz || z0 > h->nz - count) {
        int nz = h->nz;
        fclose(f);
        memset(m, 0, sizeof *m);
        return ew_fail(EW_ERR_RANGE, "%s: sections %d..%d requested, the file has 0..%d", path, z0,
                       z0 + count - 1, nz - 1);
    }
    size_t nvox_sec = (size_t)h->nx * (size_t)h->ny;
    size_t nvox = nvox_sec * (size_t)count; /* <= file size / bytes: no overflow */
    float *out = ew_alloc_array(nvox, sizeof(float));
    uint8_t *chunk = malloc(CHUNK_BYTES);
    ew_status_t st = EW_OK;
    if (!out || !chunk) {
        st = ew_fail(EW_ERR_NOMEM, "%s: out of memory for %zu voxels", path, nvox);
        goto done;
    }
    off_t off = (off_t)h->data_offset + (off_t)z0 * (off_t)h->section_bytes;
    if (fseeko(f, off, SEEK_SET) != 0) {
        st = ew_fail(EW_ERR_IO, "%s: cannot seek to section %d: %s", path, z0, strerror(errno));
        goto done;
    }
    size_t bpv = h->bytes_per_voxel, per_chunk = CHUNK_BYTES / bpv;
    for (size_t done_v = 0; done_v < nvox;) {
        size_t nv = nvox - done_v < per_chunk ? nvox - done_v : per_chunk;
        if (fread(chunk, bpv, nv, f) != nv) {
            st = ew_fail(EW_ERR_FORMAT, "%s: file ended while reading voxel %zu of section %d", path,
                         done_v % nvox_sec, z0 + (int)(done_v / nvox_sec));
            goto done;
        }
        convert(chunk, nv, h->mode, h->big_endian, out + done_v);
        done_v += nv;
    }
done:
    free(chunk);
    fclose(f);
    if (st != EW_OK) {
        ew_free(out);
        memset(m, 0, sizeof *m);
        return st;
    }
    st = fill_from_header(m, z0, count, out, path);
    if (st != EW_OK) memset(m, 0, sizeof *m);
    return st;
}

ew_status_t ew_mrc_read_sections(const char *path, int z0, int count, ew_mrc_t *m)
{
    if (count < 1) {
        memset(m, 0, sizeof *m);
        return ew_fail(EW_ERR_RANGE, "%s: %d sections requested (at least 1 needed)", path, count);
    }
    return read_range(path, z0, count, m);
}

ew_status_t ew_mrc_read(const char *path, ew_mrc_t *m)
{
    return read_range(path, 0, -1, m);
}

/* ------------------------------------------------------------ writing */

struct ew_mrc_writer {
    FILE *f;
    char *tmp;
    char *path;
    int nx, ny, nz, mode, is_stack;
    double pixel, origin[3];
    /* statistics of stored values, shifted by the first value for accuracy */
    double shift, sum, sumsq, vmin, vmax;
    size_t count;
    uint8_t *buf;
};

static void build_header(const ew_mrc_writer_t *w, uint8_t *b)
{
    memset(b, 0, HDR);
    put_i32(b, 0, w->nx);
    put_i32(b, 1, w->ny);
    put_i32(b, 2, w->nz);
    put_i32(b, 3, w->mode);
    int mz = w->is_stack ? 1 : w->nz;
    put_i32(b, 7, w->nx);
    put_i32(b, 8, w->ny);
    put_i32(b, 9, mz);
    put_f32(b, 10, (float)(w->nx * w->pixel));
    put_f32(b, 11, (float)(w->ny * w->pixel));
    put_f32(b, 12, (float)(mz * w->pixel));
    for (int d = 0; d < 3; d++) {
        put_f32(b, 13 + d, 90.0f);
        put_f32(b, 49 + d, (float)w->origin[d]);
    }
    put_i32(b, 16, 1);
    put_i32(b, 17, 2);
    put_i32(b, 18, 3);
    double n = (double)(w->count ? w->count : 1);
    double mean = w->shift + w->sum / n;
    double var = w->sumsq / n - (w->sum / n) * (w->sum / n);
    put_f32(b, 19, (float)w->vmin);
    put_f32(b, 20, (float)w->vmax);
    put_f32(b, 21, (float)mean);
    put_i32(b, 22, w->is_stack ? 0 : 1);
    put_i32(b, 23, 0);
    put_i32(b, 27, 20141);
    memcpy(b + 208, "MAP ", 4);
    b[212] = 0x44;
    b[213] = 0x44;
    put_f32(b, 54, (float)sqrt(var > 0 ? var : 0));
    put_i32(b, 55, 1);
    char label[81];
    snprintf(label, sizeof label, "ewald %s", EW_VERSION);
    memset(b + 224, ' ', 80);
    memcpy(b + 224, label, strlen(label));
}

void ew_mrc_writer_abort(ew_mrc_writer_t *w)
{
    if (!w) return;
    ew_atomic_abort(w->f, w->tmp);
    free(w->path);
    free(w->buf);
    free(w);
}

ew_status_t ew_mrc_writer_open(ew_mrc_writer_t **wp, const char *path, int nx, int ny, double pixel,
                               const double origin[3], int is_stack, int mode)
{
    EW_ASSERT(wp && path);
    *wp = NULL;
    if (nx <= 0 || ny <= 0)
        return ew_fail(EW_ERR_ARG, "%s: image size %d x %d is not positive", path, nx, ny);
    if (!mode_bytes(mode))
        return ew_fail(EW_ERR_ARG, "%s: MRC mode %d cannot be written (0, 1, 2, 6, 12 can)", path, mode);
    if (!(pixel >= 0) || !isfinite(pixel))
        return ew_fail(EW_ERR_ARG, "%s: pixel size %g is not a non-negative number", path, pixel);
    size_t sec;
    if (ew_size_mul3((size_t)nx, (size_t)ny, 4, &sec) != EW_OK)
        return ew_fail_context(EW_ERR_ARG, "%s", path);
    ew_mrc_writer_t *w = calloc(1, sizeof *w);
    if (!w) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    w->nx = nx;
    w->ny = ny;
    w->mode = mode;
    w->is_stack = is_stack ? 1 : 0;
    w->pixel = pixel;
    for (int d = 0; d < 3; d++) w->origin[d] = origin ? origin[d] : 0.0;
    w->path = ew_strdup(path);
    w->buf = malloc(CHUNK_BYTES);
    if (!w->path || !w->buf) {
        ew_mrc_writer_abort(w);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    }
    ew_status_t st = ew_atomic_open(path, &w->f, &w->tmp);
    if (st != EW_OK) {
        ew_mrc_writer_abort(w);
        return st;
    }
    uint8_t hdr[HDR] = {0};
    if (fwrite(hdr, 1, HDR, w->f) != HDR) {
        ew_mrc_writer_abort(w);
        return ew_fail(EW_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    *wp = w;
    return EW_OK;
}

/* Convert to the stored type, accumulate statistics of the stored values. */
static ew_status_t encode(ew_mrc_writer_t *w, const float *src, size_t n, uint8_t *dst)
{
    static const double lo[] = {-128, -32768, 0, 0, 0, 0, 0}, hi[] = {127, 32767, 0, 0, 0, 0, 65535};
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        double s;
        if (w->mode == EW_MRC_FLOAT32) {
            s = v;
            uint32_t u;
            memcpy(&u, &v, 4);
            put_u32(dst + 4 * i, u);
        } else if (w->mode == EW_MRC_FLOAT16) {
            uint16_t h = ew_float_to_half(v);
            s = ew_half_to_float(h);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        } else {
            if (!isfinite(v))
                return ew_fail(EW_ERR_NUMERIC, "%s: value %g at index %zu cannot be stored in mode %d",
                               w->path, v, w->count + i, w->mode);
            s = nearbyint(v);
            if (s < lo[w->mode]) s = lo[w->mode];
            if (s > hi[w->mode]) s = hi[w->mode];
            if (w->mode == EW_MRC_INT8) {
                dst[i] = (uint8_t)(int8_t)s;
            } else {
                uint16_t u = w->mode == EW_MRC_INT16 ? (uint16_t)(int16_t)s : (uint16_t)s;
                dst[2 * i] = (uint8_t)u;
                dst[2 * i + 1] = (uint8_t)(u >> 8);
            }
        }
        if (w->count + i == 0) {
            w->shift = s;
            w->vmin = w->vmax = s;
        }
        double d = s - w->shift;
        w->sum += d;
        w->sumsq += d * d;
        if (s < w->vmin) w->vmin = s;
        if (s > w->vmax) w->vmax = s;
    }
    return EW_OK;
}

ew_status_t ew_mrc_writer_append(ew_mrc_writer_t *w, const float *sections, int count)
{
    EW_ASSERT(w && (sections || count == 0) && count >= 0);
    if (count > (1 << 28) - w->nz)
        return ew_fail(EW_ERR_RANGE, "%s: too many sections (%d + %d)", w->path, w->nz, count);
    size_t n = (size_t)w->nx * (size_t)w->ny * (size_t)count;
    size_t bpv = mode_bytes(w->mode), per = CHUNK_BYTES / bpv;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        EW_TRY(encode(w, sections + i, k, w->buf));
        w->count += k;
        if (fwrite(w->buf, bpv, k, w->f) != k)
            return ew_fail(EW_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    }
    w->nz += count;
    return EW_OK;
}

ew_status_t ew_mrc_writer_close(ew_mrc_writer_t *w)
{
    EW_ASSERT(w);
    if (w->nz == 0) {
        ew_status_t st = ew_fail(EW_ERR_ARG, "%s: no sections were written", w->path);
        ew_mrc_writer_abort(w);
        return st;
    }
    uint8_t hdr[HDR];
    build_header(w, hdr);
    if (fseeko(w->f, 0, SEEK_SET) != 0 || fwrite(hdr, 1, HDR, w->f) != HDR) {
        ew_status_t st = ew_fail(EW_ERR_IO, "%s: cannot write the header: %s", w->path, strerror(errno));
        ew_mrc_writer_abort(w);
        return st;
    }
    ew_status_t st = ew_atomic_commit(w->f, w->tmp, w->path);
    free(w->path);
    free(w->buf);
    free(w);
    return st;
}

ew_status_t ew_mrc_write(const char *path, const float *data, int nx, int ny, int nz, double pixel,
                         const double origin[3], int is_stack, int mode)
{
    EW_ASSERT(path && data);
    if (nz <= 0) return ew_fail(EW_ERR_ARG, "%s: number of sections %d is not positive", path, nz);
    ew_mrc_writer_t *w;
    EW_TRY(ew_mrc_writer_open(&w, path, nx, ny, pixel, origin, is_stack, mode));
    ew_status_t st = ew_mrc_writer_append(w, data, nz);
    if (st != EW_OK) {
        ew_mrc_writer_abort(w);
        return st;
    }
    return ew_mrc_writer_close(w);
}
