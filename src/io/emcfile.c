/* ewald io: Dragonfly EMC photon and detector files (layouts in emcfile.h). */
#include "io/emcfile.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- helpers */

static int32_t le32_to_host(int32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (int32_t)__builtin_bswap32((uint32_t)v);
#else
    return v;
#endif
}

static void le32_array(int32_t *a, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) a[i] = le32_to_host(a[i]);
#else
    (void)a;
    (void)n;
#endif
}

static double le64d_to_host(const unsigned char *b)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = (u << 8) | b[i];
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* A byte source: a FILE (read sequentially) or a memory block. */
typedef struct {
    FILE *fp;
    const unsigned char *mem;
    size_t len, pos;
    const char *name;
} src_t;

static ew_status_t src_read(src_t *s, void *dst, size_t n, const char *what)
{
    if (n == 0) return EW_OK;
    if (s->fp) {
        if (fread(dst, 1, n, s->fp) != n)
            return ew_fail(EW_ERR_FORMAT, "%s: truncated while reading %s", s->name, what);
        s->pos += n;
        return EW_OK;
    }
    if (n > s->len - s->pos) return ew_fail(EW_ERR_FORMAT, "%s: truncated while reading %s", s->name, what);
    memcpy(dst, s->mem + s->pos, n);
    s->pos += n;
    return EW_OK;
}

/* ------------------------------------------------------------ photon sets */

void ew_emc_photons_free(ew_emc_photons_t *p)
{
    if (!p) return;
    free(p->ones_off);
    free(p->multi_off);
    free(p->place_ones);
    free(p->place_multi);
    free(p->count_multi);
    memset(p, 0, sizeof *p);
}

ew_status_t ew_emc_photons_init(ew_emc_photons_t *p, int num_pix)
{
    memset(p, 0, sizeof *p);
    if (num_pix <= 0) return ew_fail(EW_ERR_ARG, "EMC photons: num_pix = %d is not positive", num_pix);
    p->num_pix = num_pix;
    p->cap_frames = 16;
    p->ones_off = malloc(p->cap_frames * sizeof *p->ones_off);
    p->multi_off = malloc(p->cap_frames * sizeof *p->multi_off);
    if (!p->ones_off || !p->multi_off) {
        ew_emc_photons_free(p);
        return ew_fail(EW_ERR_NOMEM, "EMC photons: out of memory");
    }
    p->ones_off[0] = p->multi_off[0] = 0;
    return EW_OK;
}

/* Make room for one more frame with up to nones / nmulti entries. */
static ew_status_t photons_reserve(ew_emc_photons_t *p, size_t nones, size_t nmulti)
{
    size_t cf = p->cap_frames;
    EW_TRY(ew_grow((void **)&p->ones_off, &cf, p->num_frames + 2, sizeof *p->ones_off));
    size_t cf2 = p->cap_frames;
    EW_TRY(ew_grow((void **)&p->multi_off, &cf2, p->num_frames + 2, sizeof *p->multi_off));
    p->cap_frames = cf < cf2 ? cf : cf2;
    size_t o = (size_t)p->ones_off[p->num_frames], m = (size_t)p->multi_off[p->num_frames];
    EW_TRY(ew_grow((void **)&p->place_ones, &p->cap_ones, o + nones + 1, sizeof *p->place_ones));
    size_t cm = p->cap_multi;
    EW_TRY(ew_grow((void **)&p->place_multi, &cm, m + nmulti + 1, sizeof *p->place_multi));
    size_t cm2 = p->cap_multi;
    EW_TRY(ew_grow((void **)&p->count_multi, &cm2, m + nmulti + 1, sizeof *p->count_multi));
    p->cap_multi = cm < cm2 ? cm : cm2;
    return EW_OK;
}

ew_status_t ew_emc_photons_add_counts(ew_emc_photons_t *p, const int32_t *counts)
{
    size_t nones = 0, nmulti = 0;
    for (int t = 0; t < p->num_pix; t++) {
        if (counts[t] < 0) return ew_fail(EW_ERR_ARG, "EMC photons: count %d at pixel %d is negative", counts[t], t);
        nones += counts[t] == 1;
        nmulti += counts[t] > 1;
    }
    EW_TRY(photons_reserve(p, nones, nmulti));
    size_t d = p->num_frames;
    int64_t o = p->ones_off[d], m = p->multi_off[d];
    for (int t = 0; t < p->num_pix; t++) {
        if (counts[t] == 1) {
            p->place_ones[o++] = t;
        } else if (counts[t] > 1) {
            p->place_multi[m] = t;
            p->count_multi[m++] = counts[t];
        }
    }
    p->ones_off[d + 1] = o;
    p->multi_off[d + 1] = m;
    p->num_frames++;
    return EW_OK;
}

/* Round a float frame to integer counts, checking each value. */
static ew_status_t round_frame(const float *frame, int num_pix, int32_t *out)
{
    for (int t = 0; t < num_pix; t++) {
        float v = frame[t];
        if (!isfinite(v) || v < -0.5f || v >= 2147483647.0f)
            return ew_fail(EW_ERR_ARG, "EMC photons: value %g at pixel %d is not a photon count", (double)v, t);
        long r = lrintf(v);
        out[t] = r < 0 ? 0 : (int32_t)r;
    }
    return EW_OK;
}

ew_status_t ew_emc_photons_add_frame(ew_emc_photons_t *p, const float *frame)
{
    int32_t *tmp = malloc((size_t)p->num_pix * sizeof *tmp);
    if (!tmp) return ew_fail(EW_ERR_NOMEM, "EMC photons: out of memory");
    ew_status_t st = round_frame(frame, p->num_pix, tmp);
    if (st == EW_OK) st = ew_emc_photons_add_counts(p, tmp);
    free(tmp);
    return st;
}

void ew_emc_photons_to_dense(const ew_emc_photons_t *p, size_t d, float *out)
{
    EW_ASSERT(d < p->num_frames);
    memset(out, 0, (size_t)p->num_pix * sizeof *out);
    for (int64_t i = p->ones_off[d]; i < p->ones_off[d + 1]; i++) out[p->place_ones[i]] = 1.0f;
    for (int64_t i = p->multi_off[d]; i < p->multi_off[d + 1]; i++)
        out[p->place_multi[i]] = (float)p->count_multi[i];
}

int64_t ew_emc_photons_frame_total(const ew_emc_photons_t *p, size_t d)
{
    EW_ASSERT(d < p->num_frames);
    int64_t sum = p->ones_off[d + 1] - p->ones_off[d];
    for (int64_t i = p->multi_off[d]; i < p->multi_off[d + 1]; i++) sum += p->count_multi[i];
    return sum;
}

/* --------------------------------------------------------- photon reading */

/* Read the frames of a dense (type 1 or 2) file into p. */
static ew_status_t parse_dense(src_t *s, int type, size_t num_data, ew_emc_photons_t *p)
{
    size_t np = (size_t)p->num_pix, esize = type == 1 ? 4 : 8;
    if (num_data == 0) return EW_OK; /* np * esize is bounded by the file size only if a frame exists */
    unsigned char *raw = malloc(np * esize);
    int32_t *counts = malloc(np * sizeof *counts);
    ew_status_t st = EW_OK;
    if (!raw || !counts) st = ew_fail(EW_ERR_NOMEM, "%s: out of memory", s->name);
    for (size_t d = 0; st == EW_OK && d < num_data; d++) {
        st = src_read(s, raw, np * esize, "dense frames");
        for (size_t t = 0; st == EW_OK && t < np; t++) {
            if (type == 1) {
                int32_t v;
                memcpy(&v, raw + 4 * t, 4);
                v = le32_to_host(v);
                if (v < 0)
                    st = ew_fail(EW_ERR_FORMAT, "%s: frame %zu pixel %zu: count %d is negative", s->name, d, t, v);
                counts[t] = v;
            } else {
                double v = le64d_to_host(raw + 8 * t);
                if (!(v >= 0.0 && v <= 2147483647.0) || v != floor(v))
                    st = ew_fail(EW_ERR_FORMAT, "%s: frame %zu pixel %zu: value %g is not a photon count",
                                 s->name, d, t, v);
                else
                    counts[t] = (int32_t)v;
            }
        }
        if (st == EW_OK) st = ew_emc_photons_add_counts(p, counts);
    }
    free(raw);
    free(counts);
    return st;
}

/* Check one frame's lists: indices in [0, num_pix), strictly increasing in
 * each list (as Dragonfly writes them), no pixel in both lists, counts >= 1.
 * Linear in the list lengths, with no per-pixel scratch (num_pix comes from
 * the header and may be huge). */
static ew_status_t check_frame_lists(const char *nm, size_t d, int num_pix, const int32_t *po, int32_t no,
                                     const int32_t *pm, const int32_t *cm, int32_t nmul)
{
    for (int32_t i = 0; i < no; i++) {
        if (po[i] < 0 || po[i] >= num_pix)
            return ew_fail(EW_ERR_FORMAT, "%s: frame %zu: place_ones = %d is outside [0, %d)", nm, d, po[i], num_pix);
        if (i > 0 && po[i] <= po[i - 1])
            return ew_fail(EW_ERR_FORMAT, "%s: frame %zu: place_ones not increasing (%d after %d; pixel listed twice?)",
                           nm, d, po[i], po[i - 1]);
    }
    for (int32_t i = 0; i < nmul; i++) {
        if (pm[i] < 0 || pm[i] >= num_pix)
            return ew_fail(EW_ERR_FORMAT, "%s: frame %zu: place_multi = %d is outside [0, %d)", nm, d, pm[i], num_pix);
        if (i > 0 && pm[i] <= pm[i - 1])
            return ew_fail(EW_ERR_FORMAT, "%s: frame %zu: place_multi not increasing (%d after %d; pixel listed twice?)",
                           nm, d, pm[i], pm[i - 1]);
        if (cm[i] < 1)
            return ew_fail(EW_ERR_FORMAT, "%s: frame %zu: count_multi = %d at pixel %d is not positive", nm, d, cm[i],
                           pm[i]);
    }
    for (int32_t i = 0, j = 0; i < no && j < nmul;) { /* merge: disjoint? */
        if (po[i] == pm[j])
            return ew_fail(EW_ERR_FORMAT, "%s: frame %zu: pixel %d is listed twice (in place_ones and place_multi)", nm,
                           d, po[i]);
        if (po[i] < pm[j]) i++;
        else j++;
    }
    return EW_OK;
}

static ew_status_t parse_sparse(src_t *s, size_t num_data, size_t file_len, ew_emc_photons_t *p)
{
    const char *nm = s->name;
    int num_pix = p->num_pix;
    size_t need = EW_EMC_HEADER_BYTES + 8 * num_data;
    if (need > file_len)
        return ew_fail(EW_ERR_FORMAT, "%s: num_data = %zu needs %zu bytes of per-frame counts but the file has %zu",
                       nm, num_data, need, file_len);
    int32_t *ones = malloc((num_data ? num_data : 1) * sizeof *ones);
    int32_t *multi = malloc((num_data ? num_data : 1) * sizeof *multi);
    ew_status_t st = EW_OK;
    if (!ones || !multi) st = ew_fail(EW_ERR_NOMEM, "%s: out of memory", nm);
    if (st == EW_OK) st = src_read(s, ones, 4 * num_data, "ones");
    if (st == EW_OK) st = src_read(s, multi, 4 * num_data, "multi");
    int64_t ones_total = 0, multi_total = 0;
    if (st == EW_OK) {
        le32_array(ones, num_data);
        le32_array(multi, num_data);
        for (size_t d = 0; d < num_data; d++) {
            if (ones[d] < 0 || ones[d] > num_pix) {
                st = ew_fail(EW_ERR_FORMAT, "%s: ones[%zu] = %d is outside [0, num_pix = %d]", nm, d, ones[d], num_pix);
                break;
            }
            if (multi[d] < 0 || multi[d] > num_pix - ones[d]) {
                st = ew_fail(EW_ERR_FORMAT, "%s: multi[%zu] = %d is outside [0, num_pix - ones = %d]", nm, d,
                             multi[d], num_pix - ones[d]);
                break;
            }
            ones_total += ones[d];
            multi_total += multi[d];
        }
    }
    if (st == EW_OK) {
        /* ones_total, multi_total <= num_data * num_pix < 2^62: no overflow */
        uint64_t expect = (uint64_t)need + 4u * ((uint64_t)ones_total + 2u * (uint64_t)multi_total);
        if (expect != (uint64_t)file_len)
            st = ew_fail(EW_ERR_FORMAT,
                         "%s: file is %zu bytes but the header and per-frame counts imply %llu "
                         "(sum ones = %lld, sum multi = %lld)",
                         nm, file_len, (unsigned long long)expect, (long long)ones_total, (long long)multi_total);
    }
    if (st == EW_OK) {
        int64_t *oo = realloc(p->ones_off, (num_data + 1) * sizeof *p->ones_off);
        if (oo) p->ones_off = oo;
        int64_t *mo = realloc(p->multi_off, (num_data + 1) * sizeof *p->multi_off);
        if (mo) p->multi_off = mo;
        p->place_ones = malloc((size_t)(ones_total ? ones_total : 1) * sizeof(int32_t));
        p->place_multi = malloc((size_t)(multi_total ? multi_total : 1) * sizeof(int32_t));
        p->count_multi = malloc((size_t)(multi_total ? multi_total : 1) * sizeof(int32_t));
        if (!oo || !mo || !p->place_ones || !p->place_multi || !p->count_multi)
            st = ew_fail(EW_ERR_NOMEM, "%s: out of memory for %lld + %lld photon entries", nm,
                         (long long)ones_total, (long long)multi_total);
        else {
            p->cap_frames = num_data + 1;
            p->cap_ones = (size_t)(ones_total ? ones_total : 1);
            p->cap_multi = (size_t)(multi_total ? multi_total : 1);
        }
    }
    if (st == EW_OK) st = src_read(s, p->place_ones, 4 * (size_t)ones_total, "place_ones");
    if (st == EW_OK) st = src_read(s, p->place_multi, 4 * (size_t)multi_total, "place_multi");
    if (st == EW_OK) st = src_read(s, p->count_multi, 4 * (size_t)multi_total, "count_multi");
    if (st == EW_OK) {
        le32_array(p->place_ones, (size_t)ones_total);
        le32_array(p->place_multi, (size_t)multi_total);
        le32_array(p->count_multi, (size_t)multi_total);
        int64_t o = 0, m = 0;
        p->ones_off[0] = p->multi_off[0] = 0;
        for (size_t d = 0; st == EW_OK && d < num_data; d++) {
            st = check_frame_lists(nm, d, num_pix, p->place_ones + o, ones[d], p->place_multi + m,
                                   p->count_multi + m, multi[d]);
            o += ones[d];
            m += multi[d];
            p->ones_off[d + 1] = o;
            p->multi_off[d + 1] = m;
        }
        if (st == EW_OK) p->num_frames = num_data;
    }
    free(ones);
    free(multi);
    return st;
}

static ew_status_t photons_parse_src(src_t *s, size_t file_len, ew_emc_photons_t *p)
{
    memset(p, 0, sizeof *p);
    if (file_len < EW_EMC_HEADER_BYTES)
        return ew_fail(EW_ERR_FORMAT, "%s: file is %zu bytes, shorter than the %d-byte EMC header", s->name, file_len,
                       EW_EMC_HEADER_BYTES);
    int32_t hdr[EW_EMC_HEADER_BYTES / 4];
    EW_TRY(src_read(s, hdr, sizeof hdr, "header"));
    int32_t num_data = le32_to_host(hdr[0]), num_pix = le32_to_host(hdr[1]), type = le32_to_host(hdr[2]);
    if (num_data < 0) return ew_fail(EW_ERR_FORMAT, "%s: header field num_data = %d is negative", s->name, num_data);
    if (num_pix <= 0) return ew_fail(EW_ERR_FORMAT, "%s: header field num_pix = %d is not positive", s->name, num_pix);
    if (type < 0 || type > 2)
        return ew_fail(EW_ERR_FORMAT, "%s: header field type = %d is not 0 (sparse), 1 or 2 (dense)", s->name, type);
    if (type != 0) {
        uint64_t expect = EW_EMC_HEADER_BYTES + (uint64_t)num_data * (uint64_t)num_pix * (type == 1 ? 4u : 8u);
        if (expect != (uint64_t)file_len)
            return ew_fail(EW_ERR_FORMAT, "%s: dense file (type %d) is %zu bytes but num_data = %d, num_pix = %d imply %llu",
                           s->name, type, file_len, num_data, num_pix, (unsigned long long)expect);
    }
    ew_status_t st = ew_emc_photons_init(p, num_pix);
    if (st != EW_OK) return ew_fail_context(st, "%s", s->name);
    if (type == 0)
        st = parse_sparse(s, (size_t)num_data, file_len, p);
    else
        st = parse_dense(s, type, (size_t)num_data, p);
    if (st != EW_OK) ew_emc_photons_free(p);
    return st;
}

ew_status_t ew_emc_photons_parse(const void *data, size_t len, const char *name, ew_emc_photons_t *p)
{
    src_t s = {NULL, data, len, 0, name ? name : "(memory)"};
    return photons_parse_src(&s, len, p);
}

ew_status_t ew_emc_photons_read(const char *path, ew_emc_photons_t *p)
{
    memset(p, 0, sizeof *p);
    FILE *fp = fopen(path, "rb");
    if (!fp) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || sb.st_size < 0) {
        int e = errno;
        fclose(fp);
        return ew_fail(EW_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    src_t s = {fp, NULL, 0, 0, path};
    ew_status_t st = photons_parse_src(&s, (size_t)sb.st_size, p);
    fclose(fp);
    return st;
}

/* --------------------------------------------------------- photon writing */

static int write_i32(FILE *fp, const int32_t *a, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) {
        int32_t v = le32_to_host(a[i]);
        if (fwrite(&v, 4, 1, fp) != 1) return -1;
    }
    return 0;
#else
    return n == 0 || fwrite(a, 4, n, fp) == n ? 0 : -1;
#endif
}

static int write_header(FILE *fp, size_t num_data, int num_pix)
{
    int32_t hdr[EW_EMC_HEADER_BYTES / 4] = {0};
    hdr[0] = (int32_t)num_data;
    hdr[1] = num_pix;
    hdr[2] = 0;
    return write_i32(fp, hdr, EW_EMC_HEADER_BYTES / 4);
}

ew_status_t ew_emc_photons_write(const char *path, const ew_emc_photons_t *p)
{
    if (p->num_frames > INT32_MAX)
        return ew_fail(EW_ERR_RANGE, "%s: %zu frames do not fit the int32 num_data field", path, p->num_frames);
    FILE *fp;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &fp, &tmp));
    size_t n = p->num_frames;
    int32_t *cnt = malloc((n ? n : 1) * sizeof *cnt);
    int bad = !cnt || write_header(fp, n, p->num_pix);
    for (size_t d = 0; !bad && d < n; d++) cnt[d] = (int32_t)(p->ones_off[d + 1] - p->ones_off[d]);
    if (!bad) bad = write_i32(fp, cnt, n);
    for (size_t d = 0; !bad && d < n; d++) cnt[d] = (int32_t)(p->multi_off[d + 1] - p->multi_off[d]);
    if (!bad) bad = write_i32(fp, cnt, n);
    free(cnt);
    if (!bad) bad = write_i32(fp, p->place_ones, (size_t)p->ones_off[n]);
    if (!bad) bad = write_i32(fp, p->place_multi, (size_t)p->multi_off[n]);
    if (!bad) bad = write_i32(fp, p->count_multi, (size_t)p->multi_off[n]);
    if (bad) {
        ew_atomic_abort(fp, tmp);
        return ew_fail(EW_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return ew_atomic_commit(fp, tmp, path);
}

/* ------------------------------------------------------- streaming writer */

struct ew_emc_writer {
    char *path;
    char *tmp[3];      /* place_ones, place_multi, count_multi */
    FILE *fp[3];
    int num_pix;
    size_t num_frames, cap;
    int32_t *ones, *multi;
    int32_t *buf;      /* num_pix scratch */
};

void ew_emc_writer_abort(ew_emc_writer_t *w)
{
    if (!w) return;
    for (int i = 0; i < 3; i++) {
        if (w->fp[i]) fclose(w->fp[i]);
        if (w->tmp[i]) remove(w->tmp[i]);
        free(w->tmp[i]);
    }
    free(w->path);
    free(w->ones);
    free(w->multi);
    free(w->buf);
    free(w);
}

ew_status_t ew_emc_writer_open(const char *path, int num_pix, ew_emc_writer_t **out)
{
    *out = NULL;
    if (num_pix <= 0) return ew_fail(EW_ERR_ARG, "%s: num_pix = %d is not positive", path, num_pix);
    ew_emc_writer_t *w = calloc(1, sizeof *w);
    if (!w) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    w->num_pix = num_pix;
    w->path = ew_strdup(path);
    w->buf = malloc((size_t)num_pix * 3 * sizeof *w->buf); /* ones | multi places | multi counts */
    char *base = ew_temp_name(path);
    if (!w->path || !w->buf || !base) {
        free(base);
        ew_emc_writer_abort(w);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    }
    static const char *sfx[3] = {".po", ".pm", ".cm"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(base) + 4;
        w->tmp[i] = malloc(n);
        if (!w->tmp[i]) {
            free(base);
            ew_emc_writer_abort(w);
            return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
        }
        snprintf(w->tmp[i], n, "%s%s", base, sfx[i]);
        w->fp[i] = fopen(w->tmp[i], "wb");
        if (!w->fp[i]) {
            int e = errno;
            free(w->tmp[i]);
            w->tmp[i] = NULL;
            free(base);
            ew_emc_writer_abort(w);
            return ew_fail(EW_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(e));
        }
    }
    free(base);
    *out = w;
    return EW_OK;
}

ew_status_t ew_emc_writer_add_counts(ew_emc_writer_t *w, const int32_t *counts)
{
    if (w->num_frames >= INT32_MAX)
        return ew_fail(EW_ERR_RANGE, "%s: more than 2^31 - 1 frames do not fit the format", w->path);
    int32_t nones = 0, nmulti = 0;
    for (int t = 0; t < w->num_pix; t++) {
        if (counts[t] < 0) return ew_fail(EW_ERR_ARG, "%s: count %d at pixel %d is negative", w->path, counts[t], t);
        nones += counts[t] == 1;
        nmulti += counts[t] > 1;
    }
    size_t c1 = w->cap, c2 = w->cap;
    EW_TRY(ew_grow((void **)&w->ones, &c1, w->num_frames + 1, sizeof *w->ones));
    EW_TRY(ew_grow((void **)&w->multi, &c2, w->num_frames + 1, sizeof *w->multi));
    w->cap = c1 < c2 ? c1 : c2;
    int bad = 0;
    int32_t k = 0;
    for (int t = 0; t < w->num_pix; t++)
        if (counts[t] == 1) w->buf[k++] = t;
    bad |= write_i32(w->fp[0], w->buf, (size_t)k);
    k = 0;
    for (int t = 0; t < w->num_pix; t++)
        if (counts[t] > 1) w->buf[k++] = t;
    bad |= write_i32(w->fp[1], w->buf, (size_t)k);
    k = 0;
    for (int t = 0; t < w->num_pix; t++)
        if (counts[t] > 1) w->buf[k++] = counts[t];
    bad |= write_i32(w->fp[2], w->buf, (size_t)k);
    if (bad) return ew_fail(EW_ERR_IO, "%s: writing temporary file failed: %s", w->path, strerror(errno));
    w->ones[w->num_frames] = nones;
    w->multi[w->num_frames] = nmulti;
    w->num_frames++;
    return EW_OK;
}

ew_status_t ew_emc_writer_add_frame(ew_emc_writer_t *w, const float *frame)
{
    int32_t *tmp = malloc((size_t)w->num_pix * sizeof *tmp);
    if (!tmp) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", w->path);
    ew_status_t st = round_frame(frame, w->num_pix, tmp);
    if (st == EW_OK) st = ew_emc_writer_add_counts(w, tmp);
    else st = ew_fail_context(st, "%s", w->path);
    free(tmp);
    return st;
}

ew_status_t ew_emc_writer_add_rounded(ew_emc_writer_t *w, const float *frame)
{
    if (w->num_frames >= INT32_MAX)
        return ew_fail(EW_ERR_RANGE, "%s: more than 2^31 - 1 frames do not fit the format", w->path);
    size_t c1 = w->cap, c2 = w->cap;
    EW_TRY(ew_grow((void **)&w->ones, &c1, w->num_frames + 1, sizeof *w->ones));
    EW_TRY(ew_grow((void **)&w->multi, &c2, w->num_frames + 1, sizeof *w->multi));
    w->cap = c1 < c2 ? c1 : c2;
    const int np = w->num_pix;
    int32_t *po = w->buf, *pm = w->buf + np, *cm = w->buf + 2 * (size_t)np;
    int32_t nones = 0, nmulti = 0;
    /* blocks of 16 whose largest value is below 0.5 round to all zeros
     * (NaN compares false and stays out of the maximum) */
    for (int t0 = 0; t0 < np; t0 += 16) {
        const int t1 = np - t0 < 16 ? np : t0 + 16;
        float mx = 0.0f;
        for (int t = t0; t < t1; t++) mx = frame[t] > mx ? frame[t] : mx;
        if (!(mx >= 0.5f)) continue;
        uint32_t c[16];
        for (int t = t0; t < t1; t++) c[t - t0] = ew_cxi_round_count(frame[t], INT32_MAX);
        for (int t = t0; t < t1; t++) {
            if (c[t - t0] == 1) po[nones++] = t;
            else if (c[t - t0] > 1) {
                pm[nmulti] = t;
                cm[nmulti++] = (int32_t)c[t - t0];
            }
        }
    }
    if (write_i32(w->fp[0], po, (size_t)nones) || write_i32(w->fp[1], pm, (size_t)nmulti) ||
        write_i32(w->fp[2], cm, (size_t)nmulti))
        return ew_fail(EW_ERR_IO, "%s: writing temporary file failed: %s", w->path, strerror(errno));
    w->ones[w->num_frames] = nones;
    w->multi[w->num_frames] = nmulti;
    w->num_frames++;
    return EW_OK;
}

size_t ew_emc_writer_count(const ew_emc_writer_t *w) { return w->num_frames; }

ew_status_t ew_emc_writer_close(ew_emc_writer_t *w)
{
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        if (ferror(w->fp[i])) bad = 1;
        if (fclose(w->fp[i]) != 0) bad = 1;
        w->fp[i] = NULL;
    }
    if (bad) {
        ew_status_t st = ew_fail(EW_ERR_IO, "%s: writing temporary files failed", w->path);
        ew_emc_writer_abort(w);
        return st;
    }
    FILE *fp;
    char *tmp;
    ew_status_t st = ew_atomic_open(w->path, &fp, &tmp);
    if (st != EW_OK) {
        ew_emc_writer_abort(w);
        return st;
    }
    bad = write_header(fp, w->num_frames, w->num_pix) || write_i32(fp, w->ones, w->num_frames) ||
          write_i32(fp, w->multi, w->num_frames);
    char *chunk = malloc(1 << 16);
    if (!chunk) bad = 1;
    for (int i = 0; i < 3 && !bad; i++) {
        FILE *in = fopen(w->tmp[i], "rb");
        if (!in) {
            bad = 1;
            break;
        }
        size_t n;
        while ((n = fread(chunk, 1, 1 << 16, in)) > 0)
            if (fwrite(chunk, 1, n, fp) != n) {
                bad = 1;
                break;
            }
        if (ferror(in)) bad = 1;
        fclose(in);
    }
    free(chunk);
    if (bad) {
        st = ew_fail(EW_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
        ew_atomic_abort(fp, tmp);
    } else {
        st = ew_atomic_commit(fp, tmp, w->path);
    }
    ew_emc_writer_abort(w); /* removes the temporaries, frees w */
    return st;
}

/* ---------------------------------------------------------------- detector */

void ew_emc_detector_free(ew_emc_detector_t *det)
{
    if (!det) return;
    ew_free(det->q);
    ew_free(det->corr);
    ew_free(det->mask);
    memset(det, 0, sizeof *det);
}

ew_status_t ew_emc_detector_alloc(ew_emc_detector_t *det, int num_pix)
{
    memset(det, 0, sizeof *det);
    if (num_pix <= 0) return ew_fail(EW_ERR_ARG, "EMC detector: num_pix = %d is not positive", num_pix);
    det->num_pix = num_pix;
    det->q = ew_calloc_array((size_t)num_pix * 3, sizeof *det->q);
    det->corr = ew_calloc_array((size_t)num_pix, sizeof *det->corr);
    det->mask = ew_calloc_array((size_t)num_pix, sizeof *det->mask);
    if (!det->q || !det->corr || !det->mask) {
        ew_emc_detector_free(det);
        return EW_ERR_NOMEM;
    }
    return EW_OK;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\v' || *p == '\f')) p++;
    return p;
}

/* Parse one finite double at *pp (leading whitespace skipped). */
static int parse_double(const char **pp, const char *end, double *v)
{
    const char *p = skip_ws(*pp, end);
    if (p >= end) return -1;
    char *e;
    errno = 0;
    *v = strtod(p, &e);
    if (e == p || e > end || !isfinite(*v)) return -1;
    if (e < end && !(*e == ' ' || *e == '\t' || *e == '\r' || *e == '\n' || *e == '\v' || *e == '\f')) return -1;
    *pp = e;
    return 0;
}

static int parse_long(const char **pp, const char *end, long *v)
{
    const char *p = skip_ws(*pp, end);
    if (p >= end) return -1;
    char *e;
    errno = 0;
    *v = strtol(p, &e, 10);
    if (e == p || e > end || errno == ERANGE) return -1;
    if (e < end && !(*e == ' ' || *e == '\t' || *e == '\r' || *e == '\n' || *e == '\v' || *e == '\f')) return -1;
    *pp = e;
    return 0;
}

ew_status_t ew_emc_detector_parse(const void *data, size_t len, const char *name, ew_emc_detector_t *det)
{
    memset(det, 0, sizeof *det);
    if (!name) name = "(memory)";
    /* A NUL-terminated copy: strtod needs one, and an embedded NUL ends the text. */
    char *buf = malloc(len + 1);
    if (!buf) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", name);
    memcpy(buf, data, len);
    buf[len] = '\0';
    const char *end = buf + strlen(buf);
    const char *nl = memchr(buf, '\n', (size_t)(end - buf));
    const char *line_end = nl ? nl : end;
    ew_status_t st = EW_OK;
    long np = 0;
    double detd = 0.0, erad = 0.0;
    const char *p = buf;
    if (parse_long(&p, line_end, &np) != 0 || np <= 0 || np > INT_MAX) {
        free(buf);
        return ew_fail(EW_ERR_FORMAT, "%s: first line does not start with a positive pixel count", name);
    }
    /* "num_pix", "num_pix detd" (old C make_detector) or "num_pix detd ewald_rad" */
    if (skip_ws(p, line_end) < line_end) {
        int bad = parse_double(&p, line_end, &detd) != 0;
        if (!bad && skip_ws(p, line_end) < line_end) bad = parse_double(&p, line_end, &erad) != 0;
        if (bad || skip_ws(p, line_end) != line_end) {
            free(buf);
            return ew_fail(EW_ERR_FORMAT, "%s: first line is not \"num_pix detd ewald_rad\"", name);
        }
        if (detd < 0 || erad < 0) {
            free(buf);
            return ew_fail(EW_ERR_FORMAT, "%s: header detd = %g, ewald_rad = %g must not be negative", name, detd,
                           erad);
        }
    }
    p = line_end;
    /* Each pixel row needs at least 10 bytes ("0 0 0 0 0\n"). */
    if ((size_t)np > (size_t)(end - p) / 10 + 1) {
        free(buf);
        return ew_fail(EW_ERR_FORMAT, "%s: header num_pix = %ld but the file has only %zu bytes of pixel rows", name,
                       np, (size_t)(end - p));
    }
    st = ew_emc_detector_alloc(det, (int)np);
    if (st != EW_OK) {
        free(buf);
        return ew_fail_context(st, "%s", name);
    }
    det->detd = detd;
    det->ewald_rad = erad;
    for (long t = 0; t < np; t++) {
        double *qt = det->q + 3 * t;
        long m;
        if (parse_double(&p, end, &qt[0]) || parse_double(&p, end, &qt[1]) || parse_double(&p, end, &qt[2]) ||
            parse_double(&p, end, &det->corr[t]) || parse_long(&p, end, &m)) {
            st = ew_fail(EW_ERR_FORMAT, "%s: pixel row %ld of %ld is missing or not \"qx qy qz corr mask\"", name,
                         t, np);
            break;
        }
        if (m < 0 || m > 2) {
            st = ew_fail(EW_ERR_FORMAT, "%s: pixel %ld: mask = %ld is not 0, 1 or 2", name, t, m);
            break;
        }
        det->mask[t] = (uint8_t)m;
    }
    if (st == EW_OK && skip_ws(p, end) != end)
        st = ew_fail(EW_ERR_FORMAT, "%s: unexpected text after the %ld pixel rows", name, np);
    free(buf);
    if (st != EW_OK) ew_emc_detector_free(det);
    return st;
}

ew_status_t ew_emc_detector_read(const char *path, ew_emc_detector_t *det)
{
    memset(det, 0, sizeof *det);
    FILE *fp = fopen(path, "rb");
    if (!fp) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || sb.st_size < 0) {
        int e = errno;
        fclose(fp);
        return ew_fail(EW_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(fp);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    if (fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return ew_fail(EW_ERR_IO, "%s: read failed", path);
    }
    fclose(fp);
    ew_status_t st = ew_emc_detector_parse(buf, n, path, det);
    free(buf);
    return st;
}

ew_status_t ew_emc_detector_write(const char *path, const ew_emc_detector_t *det)
{
    FILE *fp;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &fp, &tmp));
    fprintf(fp, "%d %.17g %.17g\n", det->num_pix, det->detd, det->ewald_rad);
    for (int t = 0; t < det->num_pix; t++) {
        const double *q = det->q + 3 * (size_t)t;
        fprintf(fp, "%.16e %.16e %.16e %.16e %d\n", q[0], q[1], q[2], det->corr[t], det->mask[t]);
    }
    return ew_atomic_commit(fp, tmp, path);
}

ew_status_t ew_emc_detector_to_s(const ew_emc_detector_t *det, double wavelength_a, float *s)
{
    if (!(det->ewald_rad > 0))
        return ew_fail(EW_ERR_ARG, "EMC detector: ewald_rad = %g (an old-style file needs it supplied)",
                       det->ewald_rad);
    if (!(wavelength_a > 0)) return ew_fail(EW_ERR_ARG, "EMC detector: wavelength %g A is not positive", wavelength_a);
    double f = 1.0 / (wavelength_a * det->ewald_rad);
    for (size_t i = 0; i < 3 * (size_t)det->num_pix; i++) s[i] = (float)(det->q[i] * f);
    return EW_OK;
}

ew_status_t ew_emc_detector_from_s(const float *s, const uint8_t *mask, const float *corr, int npix,
                                   double wavelength_a, double detd_pix, double voxel_ds, ew_emc_detector_t *det)
{
    memset(det, 0, sizeof *det);
    if (!(wavelength_a > 0) || !(voxel_ds > 0) || !(detd_pix > 0))
        return ew_fail(EW_ERR_ARG, "EMC detector: wavelength %g A, voxel size %g 1/A and detd %g px must be positive",
                       wavelength_a, voxel_ds, detd_pix);
    EW_TRY(ew_emc_detector_alloc(det, npix));
    det->detd = detd_pix;
    det->ewald_rad = 1.0 / (wavelength_a * voxel_ds);
    for (int t = 0; t < npix; t++) {
        for (int k = 0; k < 3; k++) det->q[3 * (size_t)t + k] = (double)s[3 * (size_t)t + k] / voxel_ds;
        det->corr[t] = corr ? corr[t] : 1.0;
        det->mask[t] = mask ? (mask[t] > 2 ? 2 : mask[t]) : 0;
    }
    return EW_OK;
}

ew_status_t ew_emc_detector_from_geometry(const ew_cxi_geometry_t *g, double voxel_ds, ew_emc_detector_t *det)
{
    memset(det, 0, sizeof *det);
    size_t npix = (size_t)g->width * (size_t)g->height;
    if (g->width <= 0 || g->height <= 0 || npix > INT_MAX || !g->s || !g->mask)
        return ew_fail(EW_ERR_ARG, "EMC detector: geometry %d x %d without s-vectors or mask", g->width, g->height);
    if (!(g->pixel_x_m > 0) || !(g->distance_m > 0))
        return ew_fail(EW_ERR_ARG, "EMC detector: distance %g m and pixel %g m must be positive", g->distance_m,
                       g->pixel_x_m);
    float *corr = ew_alloc_array(npix, sizeof *corr);
    if (!corr) return EW_ERR_NOMEM;
    for (size_t p = 0; p < npix; p++)
        corr[p] = (g->solid_angle ? g->solid_angle[p] : 1.0f) * (g->polarization ? g->polarization[p] : 1.0f);
    ew_status_t st = ew_emc_detector_from_s(g->s, g->mask, corr, (int)npix, g->wavelength_a,
                                            g->distance_m / g->pixel_x_m, voxel_ds, det);
    ew_free(corr);
    return st;
}

ew_status_t ew_emc_detector_to_geometry(const ew_emc_detector_t *det, double wavelength_a, double pixel_m, int width,
                                        int height, ew_cxi_geometry_t *g)
{
    memset(g, 0, sizeof *g);
    if (width <= 0 || height <= 0 || (long long)width * height != det->num_pix)
        return ew_fail(EW_ERR_ARG, "EMC detector: %d x %d pixels do not match num_pix = %d", width, height,
                       det->num_pix);
    if (!(pixel_m > 0) || !(det->detd > 0))
        return ew_fail(EW_ERR_ARG, "EMC detector: pixel size %g m and detd %g must be positive", pixel_m, det->detd);
    EW_TRY(ew_cxi_geometry_alloc(g, width, height, 0));
    ew_status_t st = ew_emc_detector_to_s(det, wavelength_a, g->s);
    if (st != EW_OK) {
        ew_cxi_geometry_free(g);
        return st;
    }
    memcpy(g->mask, det->mask, (size_t)det->num_pix);
    g->wavelength_a = wavelength_a;
    g->photon_energy_ev = EW_HC_EV_A / wavelength_a;
    g->pixel_x_m = g->pixel_y_m = pixel_m;
    g->distance_m = det->detd * pixel_m;
    /* each pixel's offset from the beam in pixels: (cx, cy) = q_xy detd / (R + qz)
     * (Dragonfly's Detector._process_det); the centre is index - offset, averaged */
    double sx = 0, sy = 0;
    long long n = 0;
    for (int iy = 0; iy < height; iy++)
        for (int ix = 0; ix < width; ix++) {
            const double *q = det->q + 3 * ((size_t)iy * (size_t)width + (size_t)ix);
            double den = det->ewald_rad + q[2];
            if (!(den > 0)) continue;
            sx += ix - q[0] * det->detd / den;
            sy += iy - q[1] * det->detd / den;
            n++;
        }
    g->center_x = n ? sx / (double)n : 0.5 * (width - 1);
    g->center_y = n ? sy / (double)n : 0.5 * (height - 1);
    return EW_OK;
}
