/* ewald io: safetensors reader and writer (see safetensors.h). */
#include "io/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/util.h"

static const char *const k_names[EW_ST_NTYPES] = {"F32", "F64", "F16", "BF16", "I64",
                                                  "I32", "I16", "I8",  "U8",   "BOOL"};
static const size_t k_sizes[EW_ST_NTYPES] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};

#define EW_ST_MAX_HEADER ((uint64_t)100 << 20)

size_t ew_st_dtype_size(ew_st_dtype_t d)
{
    return (unsigned)d < EW_ST_NTYPES ? k_sizes[d] : 0;
}

const char *ew_st_dtype_name(ew_st_dtype_t d)
{
    return (unsigned)d < EW_ST_NTYPES ? k_names[d] : "?";
}

int ew_st_dtype_from_name(const char *name)
{
    for (int i = 0; i < EW_ST_NTYPES; i++)
        if (strcmp(name, k_names[i]) == 0) return i;
    return -1;
}

void ew_safetensors_free(ew_safetensors_t *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_key[i]);
        free(st->meta_val[i]);
    }
    free(st->meta_key);
    free(st->meta_val);
    free(st->buf);
    free(st->label);
    memset(st, 0, sizeof *st);
}

static int cmp_begin(const void *a, const void *b)
{
    const ew_st_tensor_t *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* A JSON number that is a non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0) || v > 9007199254740992.0 || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static ew_status_t parse_tensor(ew_safetensors_t *st, const cJSON *item, ew_st_tensor_t *t)
{
    const char *L = st->label, *nm = item->string;
    if (!cJSON_IsObject(item)) return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: entry is not an object", L, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: dtype is missing", L, nm);
    int d = ew_st_dtype_from_name(dt->valuestring);
    if (d < 0) return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: unknown dtype '%s'", L, nm, dt->valuestring);
    t->dtype = (ew_st_dtype_t)d;
    if (!cJSON_IsArray(sh)) return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: shape is missing", L, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > EW_ST_MAX_DIM) return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: %d dimensions (at most %d)", L, nm, nd, EW_ST_MAX_DIM);
    t->ndim = nd;
    size_t count = 1;
    for (int k = 0; k < nd; k++) {
        uint64_t v;
        if (!json_uint(cJSON_GetArrayItem(sh, k), &v))
            return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer", L, nm, k);
        t->shape[k] = (int64_t)v;
        if (ew_size_mul(count, (size_t)v, &count) != EW_OK)
            return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: shape product overflows", L, nm);
    }
    t->count = count;
    uint64_t b, e;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(cJSON_GetArrayItem(of, 0), &b) ||
        !json_uint(cJSON_GetArrayItem(of, 1), &e))
        return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: data_offsets is not [begin, end]", L, nm);
    size_t bytes;
    if (ew_size_mul(count, k_sizes[d], &bytes) != EW_OK)
        return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: size overflows", L, nm);
    if (b > e || e > st->data_size)
        return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] outside the %zu data bytes (truncated file?)",
                       L, nm, (unsigned long long)b, (unsigned long long)e, st->data_size);
    if (e - b != bytes)
        return ew_fail(EW_ERR_FORMAT, "%s: tensor %s: data_offsets span %llu bytes, shape and dtype %s need %zu", L, nm,
                       (unsigned long long)(e - b), k_names[d], bytes);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    t->name = ew_strdup(nm);
    return t->name ? EW_OK : EW_ERR_NOMEM;
}

static ew_status_t parse_header(ew_safetensors_t *st, const char *json, size_t len)
{
    const char *L = st->label;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return ew_fail(EW_ERR_FORMAT, "%s: header is not valid JSON", L);
    ew_status_t s = EW_OK;
    if (!cJSON_IsObject(root)) {
        s = ew_fail(EW_ERR_FORMAT, "%s: header is not a JSON object", L);
        goto done;
    }
    size_t nitems = (size_t)cJSON_GetArraySize(root);
    st->t = calloc(nitems ? nitems : 1, sizeof *st->t);
    if (!st->t) {
        s = ew_fail(EW_ERR_NOMEM, "%s: out of memory for %zu tensors", L, nitems);
        goto done;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (!item->string) {
            s = ew_fail(EW_ERR_FORMAT, "%s: header entry without a name", L);
            goto done;
        }
        if (strcmp(item->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(item)) {
                s = ew_fail(EW_ERR_FORMAT, "%s: __metadata__ is not an object", L);
                goto done;
            }
            if (st->meta_key) { /* a second __metadata__ (found by fuzz_safetensors: it leaked the first) */
                s = ew_fail(EW_ERR_FORMAT, "%s: __metadata__ appears twice", L);
                goto done;
            }
            size_t nm = (size_t)cJSON_GetArraySize(item);
            st->meta_key = calloc(nm ? nm : 1, sizeof(char *));
            st->meta_val = calloc(nm ? nm : 1, sizeof(char *));
            if (!st->meta_key || !st->meta_val) {
                s = ew_fail(EW_ERR_NOMEM, "%s: out of memory for metadata", L);
                goto done;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, item)
            {
                if (!cJSON_IsString(m) || !m->string) {
                    s = ew_fail(EW_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", L,
                                m->string ? m->string : "?");
                    goto done;
                }
                st->meta_key[st->n_meta] = ew_strdup(m->string);
                st->meta_val[st->n_meta] = ew_strdup(m->valuestring);
                st->n_meta++;
                if (!st->meta_key[st->n_meta - 1] || !st->meta_val[st->n_meta - 1]) {
                    s = EW_ERR_NOMEM;
                    goto done;
                }
            }
            continue;
        }
        for (size_t i = 0; i < st->n; i++)
            if (strcmp(st->t[i].name, item->string) == 0) {
                s = ew_fail(EW_ERR_FORMAT, "%s: tensor %s appears twice", L, item->string);
                goto done;
            }
        s = parse_tensor(st, item, &st->t[st->n]);
        if (s != EW_OK) goto done;
        st->n++;
    }
    /* the tensors must tile the data exactly */
    qsort(st->t, st->n, sizeof *st->t, cmp_begin);
    size_t pos = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->t[i].begin != pos) {
            s = ew_fail(EW_ERR_FORMAT, "%s: tensor %s: data starts at %zu, expected %zu (overlap or hole)", L,
                        st->t[i].name, st->t[i].begin, pos);
            goto done;
        }
        pos = st->t[i].end;
    }
    if (pos != st->data_size)
        s = ew_fail(EW_ERR_FORMAT, "%s: tensors cover %zu of %zu data bytes", L, pos, st->data_size);
done:
    cJSON_Delete(root);
    return s;
}

static ew_status_t parse_owned(ew_safetensors_t *st)
{
    const char *L = st->label;
    if (st->size < 8) return ew_fail(EW_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header", L, st->size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | st->buf[i];
    if (hl > EW_ST_MAX_HEADER || hl > st->size - 8)
        return ew_fail(EW_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes)", L, (unsigned long long)hl,
                       st->size);
    st->data = st->buf + 8 + hl;
    st->data_size = st->size - 8 - (size_t)hl;
    return parse_header(st, (const char *)st->buf + 8, (size_t)hl);
}

ew_status_t ew_safetensors_parse(const void *bytes, size_t size, const char *label, ew_safetensors_t *st)
{
    memset(st, 0, sizeof *st);
    st->label = ew_strdup(label ? label : "(memory)");
    st->buf = malloc(size ? size : 1);
    if (!st->label || !st->buf) {
        ew_safetensors_free(st);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory for %zu bytes", label ? label : "(memory)", size);
    }
    if (size) memcpy(st->buf, bytes, size);
    st->size = size;
    ew_status_t s = parse_owned(st);
    if (s != EW_OK) ew_safetensors_free(st);
    return s;
}

ew_status_t ew_safetensors_read(const char *path, ew_safetensors_t *st)
{
    memset(st, 0, sizeof *st);
    FILE *f = fopen(path, "rb");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return ew_fail(EW_ERR_IO, "%s: cannot determine the size", path);
    }
    st->label = ew_strdup(path);
    st->buf = malloc(sz ? (size_t)sz : 1);
    if (!st->label || !st->buf) {
        fclose(f);
        ew_safetensors_free(st);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory for %ld bytes", path, sz);
    }
    st->size = (size_t)sz;
    if (fread(st->buf, 1, st->size, f) != st->size) {
        fclose(f);
        ew_safetensors_free(st);
        return ew_fail(EW_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    ew_status_t s = parse_owned(st);
    if (s != EW_OK) ew_safetensors_free(st);
    return s;
}

const ew_st_tensor_t *ew_safetensors_find(const ew_safetensors_t *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

const char *ew_safetensors_meta(const ew_safetensors_t *st, const char *key)
{
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_key[i], key) == 0) return st->meta_val[i];
    return NULL;
}

static float half_to_float(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

/* element i of t as double */
static double elem(const ew_safetensors_t *st, const ew_st_tensor_t *t, size_t i)
{
    const unsigned char *p = st->data + t->begin + i * k_sizes[t->dtype];
    switch (t->dtype) {
    case EW_ST_F32: { float v; memcpy(&v, p, 4); return v; }
    case EW_ST_F64: { double v; memcpy(&v, p, 8); return v; }
    case EW_ST_F16: { uint16_t v; memcpy(&v, p, 2); return half_to_float(v); }
    case EW_ST_BF16: { uint16_t v; memcpy(&v, p, 2); uint32_t u = (uint32_t)v << 16; float f; memcpy(&f, &u, 4); return f; }
    case EW_ST_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case EW_ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case EW_ST_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case EW_ST_I8: return (int8_t)p[0];
    case EW_ST_U8: case EW_ST_BOOL: return p[0];
    default: return 0;
    }
}

static ew_status_t lookup(const ew_safetensors_t *st, const char *name, size_t count, const ew_st_tensor_t **t)
{
    *t = ew_safetensors_find(st, name);
    if (!*t) return ew_fail(EW_ERR_FORMAT, "%s: tensor %s is missing", st->label, name);
    if ((*t)->count != count)
        return ew_fail(EW_ERR_FORMAT, "%s: tensor %s has %zu elements, expected %zu", st->label, name, (*t)->count,
                       count);
    return EW_OK;
}

ew_status_t ew_safetensors_get_f32(const ew_safetensors_t *st, const char *name, float *out, size_t count)
{
    const ew_st_tensor_t *t;
    EW_TRY(lookup(st, name, count, &t));
    if (t->dtype == EW_ST_F32) {
        memcpy(out, st->data + t->begin, count * 4);
        return EW_OK;
    }
    for (size_t i = 0; i < count; i++) out[i] = (float)elem(st, t, i);
    return EW_OK;
}

ew_status_t ew_safetensors_get_i64(const ew_safetensors_t *st, const char *name, int64_t *out, size_t count)
{
    const ew_st_tensor_t *t;
    EW_TRY(lookup(st, name, count, &t));
    if (t->dtype == EW_ST_I64) {
        memcpy(out, st->data + t->begin, count * 8);
        return EW_OK;
    }
    for (size_t i = 0; i < count; i++) {
        double v = elem(st, t, i);
        /* Converting a non-integer or out-of-range float is undefined
         * behaviour: refuse it (found by fuzz_safetensors). */
        if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != floor(v))
            return ew_fail(EW_ERR_FORMAT, "%s: tensor %s element %zu = %g is not a 64-bit integer", st->label, name,
                           i, v);
        out[i] = (int64_t)v;
    }
    return EW_OK;
}

ew_status_t ew_safetensors_write(const char *path, const ew_st_entry_t *e, size_t n, const char *const *meta,
                                 size_t n_meta)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return ew_fail(EW_ERR_NOMEM, "%s: out of memory building the header", path);
    ew_status_t s = EW_OK;
    size_t off = 0;
    size_t *bytes = calloc(n ? n : 1, sizeof *bytes);
    if (!bytes) {
        cJSON_Delete(root);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    }
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; m && i < n_meta; i++) cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]);
    }
    for (size_t i = 0; i < n && s == EW_OK; i++) {
        if (!e[i].name || !e[i].name[0] || cJSON_GetObjectItemCaseSensitive(root, e[i].name) ||
            (unsigned)e[i].dtype >= EW_ST_NTYPES || e[i].ndim < 0 || e[i].ndim > EW_ST_MAX_DIM) {
            s = ew_fail(EW_ERR_ARG, "%s: tensor '%s' has an empty or duplicate name or a bad dtype/ndim", path,
                        e[i].name ? e[i].name : "");
            break;
        }
        size_t cnt = 1;
        for (int k = 0; k < e[i].ndim; k++) cnt *= (size_t)e[i].shape[k];
        bytes[i] = cnt * k_sizes[e[i].dtype];
        cJSON *t = cJSON_AddObjectToObject(root, e[i].name);
        cJSON_AddStringToObject(t, "dtype", k_names[e[i].dtype]);
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int k = 0; k < e[i].ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e[i].shape[k]));
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + bytes[i])));
        off += bytes[i];
    }
    char *json = s == EW_OK ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (s == EW_OK && !json) s = ew_fail(EW_ERR_NOMEM, "%s: out of memory printing the header", path);
    if (s != EW_OK) {
        free(json);
        free(bytes);
        return s;
    }
    size_t hl = strlen(json), padded = (hl + 7) & ~(size_t)7;
    FILE *f;
    char *tmp;
    s = ew_atomic_open(path, &f, &tmp);
    if (s != EW_OK) {
        free(json);
        free(bytes);
        return s;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (size_t i = 0; ok && i < n; i++) ok = bytes[i] == 0 || fwrite(e[i].data, 1, bytes[i], f) == bytes[i];
    free(json);
    free(bytes);
    if (!ok) {
        ew_atomic_abort(f, tmp);
        return ew_fail(EW_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return ew_atomic_commit(f, tmp, path);
}
