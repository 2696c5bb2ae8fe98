/* ewald io: STAR reader, writer, typed getters, RELION particle writer. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/star.h"

#include "io/cif_lex.h"

/* ------------------------------------------------------- string arena */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    char data[];
} arena_chunk_t;

static char *arena_strndup(ew_star_t *s, const char *p, size_t n)
{
    arena_chunk_t *c = s->arena;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        arena_chunk_t *nc = malloc(sizeof *nc + cap);
        if (!nc) {
            ew_fail(EW_ERR_NOMEM, "%s: out of memory for STAR strings", s->source);
            return NULL;
        }
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        s->arena = c = nc;
    }
    char *d = c->data + c->used;
    memcpy(d, p, n);
    d[n] = '\0';
    c->used += n + 1;
    return d;
}

static char *arena_strdup(ew_star_t *s, const char *p)
{
    return arena_strndup(s, p, strlen(p));
}

void ew_star_free(ew_star_t *s)
{
    if (!s) return;
    for (size_t b = 0; b < s->n_blocks; b++) {
        ew_star_block_t *bl = &s->blocks[b];
        for (size_t t = 0; t < bl->n_tables; t++) {
            free(bl->tables[t].cols);
            free(bl->tables[t].cells);
        }
        free(bl->tables);
    }
    free(s->blocks);
    for (arena_chunk_t *c = s->arena; c;) {
        arena_chunk_t *n = c->next;
        free(c);
        c = n;
    }
    memset(s, 0, sizeof *s);
}

void ew_star_init(ew_star_t *s, const char *source)
{
    EW_ASSERT(s);
    memset(s, 0, sizeof *s);
    snprintf(s->source, sizeof s->source, "%s", source ? source : "(star)");
}

/* ------------------------------------------------------------ builder */

ew_status_t ew_star_add_block(ew_star_t *s, const char *name, size_t *block)
{
    EW_ASSERT(s && name);
    if (ew_grow((void **)&s->blocks, &s->cap_blocks, s->n_blocks + 1, sizeof *s->blocks) != EW_OK)
        return ew_fail_context(EW_ERR_NOMEM, "%s", s->source);
    ew_star_block_t *b = &s->blocks[s->n_blocks];
    memset(b, 0, sizeof *b);
    if (!(b->name = arena_strdup(s, name))) return EW_ERR_NOMEM;
    if (block) *block = s->n_blocks;
    s->n_blocks++;
    return EW_OK;
}

static ew_status_t add_table(ew_star_t *s, size_t block, int is_loop, size_t *table)
{
    EW_ASSERT(block < s->n_blocks);
    ew_star_block_t *b = &s->blocks[block];
    if (ew_grow((void **)&b->tables, &b->cap_tables, b->n_tables + 1, sizeof *b->tables) != EW_OK)
        return ew_fail_context(EW_ERR_NOMEM, "%s", s->source);
    memset(&b->tables[b->n_tables], 0, sizeof *b->tables);
    b->tables[b->n_tables].is_loop = is_loop;
    *table = b->n_tables++;
    return EW_OK;
}

static ew_status_t add_col(ew_star_t *s, ew_star_table_t *t, const char *name, size_t n)
{
    if (n > 0 && name[0] == '_') {
        name++;
        n--;
    }
    size_t cap = t->n_cols; /* grow by one: column lists are short */
    char **c = realloc(t->cols, (cap + 1) * sizeof *c);
    if (!c) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", s->source);
    t->cols = c;
    if (!(t->cols[t->n_cols] = arena_strndup(s, name, n))) return EW_ERR_NOMEM;
    t->n_cols++;
    return EW_OK;
}

ew_status_t ew_star_add_loop(ew_star_t *s, size_t block, size_t n_cols, const char *const *cols,
                             size_t *table)
{
    EW_ASSERT(s && (cols || n_cols == 0));
    size_t ti;
    EW_TRY(add_table(s, block, 1, &ti));
    ew_star_table_t *t = &s->blocks[block].tables[ti];
    for (size_t i = 0; i < n_cols; i++) EW_TRY(add_col(s, t, cols[i], strlen(cols[i])));
    if (table) *table = ti;
    return EW_OK;
}

/* Append one empty row (cells NULL) to t; returns a pointer to its cells. */
static char **table_new_row(ew_star_t *s, ew_star_table_t *t)
{
    size_t need;
    if (ew_size_mul(t->n_rows + 1, t->n_cols ? t->n_cols : 1, &need) != EW_OK) return NULL;
    if (t->n_rows + 1 > t->cap_rows) {
        size_t cap = t->cap_rows ? 2 * t->cap_rows : 16, bytes;
        if (ew_size_mul(cap, (t->n_cols ? t->n_cols : 1) * sizeof(char *), &bytes) != EW_OK) return NULL;
        char **c = realloc(t->cells, bytes);
        if (!c) {
            ew_fail(EW_ERR_NOMEM, "%s: out of memory for %zu rows", s->source, cap);
            return NULL;
        }
        t->cells = c;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->n_rows * t->n_cols;
    for (size_t i = 0; i < t->n_cols; i++) row[i] = NULL;
    t->n_rows++;
    return row;
}

ew_status_t ew_star_add_row(ew_star_t *s, size_t block, size_t table, const char *const *values)
{
    EW_ASSERT(s && block < s->n_blocks && table < s->blocks[block].n_tables);
    ew_star_table_t *t = &s->blocks[block].tables[table];
    EW_ASSERT(t->is_loop && t->n_cols > 0);
    char **row = table_new_row(s, t);
    if (!row) return EW_ERR_NOMEM;
    for (size_t i = 0; i < t->n_cols; i++) {
        if (!(row[i] = arena_strdup(s, values[i] ? values[i] : ""))) {
            t->n_rows--;
            return EW_ERR_NOMEM;
        }
    }
    return EW_OK;
}

/* Key-value table of a block (created on first use). */
static ew_status_t pair_table(ew_star_t *s, size_t block, ew_star_table_t **out)
{
    ew_star_block_t *b = &s->blocks[block];
    for (size_t i = 0; i < b->n_tables; i++)
        if (!b->tables[i].is_loop) {
            *out = &b->tables[i];
            return EW_OK;
        }
    size_t ti;
    EW_TRY(add_table(s, block, 0, &ti));
    *out = &s->blocks[block].tables[ti];
    return EW_OK;
}

/* Add key = value (value length vn) to the block's key-value table. */
static ew_status_t add_pair_n(ew_star_t *s, size_t block, const char *key, size_t kn,
                              const char *value, size_t vn)
{
    ew_star_table_t *t;
    EW_TRY(pair_table(s, block, &t));
    /* the single row is rebuilt with one more column */
    size_t nc = t->n_cols;
    char **cells = realloc(t->cells, (nc + 1) * sizeof *cells);
    if (!cells) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", s->source);
    t->cells = cells;
    t->cap_rows = 1;
    EW_TRY(add_col(s, t, key, kn));
    t->n_rows = 1;
    if (!(t->cells[nc] = arena_strndup(s, value, vn))) return EW_ERR_NOMEM;
    return EW_OK;
}

ew_status_t ew_star_add_pair(ew_star_t *s, size_t block, const char *key, const char *value)
{
    EW_ASSERT(s && key && value && block < s->n_blocks);
    return add_pair_n(s, block, key, strlen(key), value, strlen(value));
}

/* ------------------------------------------------------------ parsing */

static int kw(const ew_cif_tok_t *t, const char *k)
{
    size_t n = strlen(k);
    if (t->quoted || t->n < n) return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)t->p[i]) != k[i]) return 0;
    return 1;
}

static int is_name(const ew_cif_tok_t *t) { return !t->quoted && t->n > 0 && t->p[0] == '_'; }
static int is_data(const ew_cif_tok_t *t) { return kw(t, "data_"); }
static int is_loop(const ew_cif_tok_t *t) { return kw(t, "loop_") && t->n == 5; }
static int is_other_kw(const ew_cif_tok_t *t)
{
    return (kw(t, "stop_") && t->n == 5) || (kw(t, "global_") && t->n == 7) || kw(t, "save_");
}

#define SHOW(t) (int)((t)->n > 40 ? 40 : (t)->n), (t)->p

ew_status_t ew_star_parse(const char *data, size_t len, const char *name, ew_star_t *s)
{
    EW_ASSERT(s && (data || len == 0));
    if (!name) name = "(memory)";
    ew_star_init(s, name);
    ew_cif_lex_t x = {data, len, 0, 1};
    ew_cif_tok_t t;
    ew_status_t st = EW_OK;
    int rc = ew_cif_next(&x, &t, name);
    size_t block = 0;
    int have_block = 0;
    while (rc > 0) {
        if (is_data(&t)) {
            if ((st = ew_star_add_block(s, "", &block)) != EW_OK) goto fail;
            if (!(s->blocks[block].name = arena_strndup(s, t.p + 5, t.n - 5))) {
                st = EW_ERR_NOMEM;
                goto fail;
            }
            have_block = 1;
            rc = ew_cif_next(&x, &t, name);
        } else if (is_loop(&t)) {
            if (!have_block) {
                st = ew_fail(EW_ERR_FORMAT, "%s:%zu: loop_ before any data_ block", name, t.line);
                goto fail;
            }
            size_t ti, loop_line = t.line;
            if ((st = add_table(s, block, 1, &ti)) != EW_OK) goto fail;
            ew_star_table_t *tb = &s->blocks[block].tables[ti];
            while ((rc = ew_cif_next(&x, &t, name)) > 0 && is_name(&t))
                if ((st = add_col(s, tb, t.p, t.n)) != EW_OK) goto fail;
            if (tb->n_cols == 0) {
                st = ew_fail(EW_ERR_FORMAT, "%s:%zu: loop_ in block data_%s has no column names", name,
                             loop_line, s->blocks[block].name);
                goto fail;
            }
            size_t k = 0;
            char **row = NULL;
            while (rc > 0 && !is_name(&t) && !is_data(&t) && !is_loop(&t) && !is_other_kw(&t)) {
                if (k == 0 && !(row = table_new_row(s, tb))) {
                    st = EW_ERR_NOMEM;
                    goto fail;
                }
                if (!(row[k] = arena_strndup(s, t.p, t.n))) {
                    st = EW_ERR_NOMEM;
                    goto fail;
                }
                k = (k + 1) % tb->n_cols;
                rc = ew_cif_next(&x, &t, name);
            }
            if (rc < 0) break;
            if (k != 0) {
                st = ew_fail(EW_ERR_FORMAT,
                             "%s:%zu: loop in block data_%s ends inside row %zu (%zu of %zu values)",
                             name, x.line, s->blocks[block].name, tb->n_rows, k, tb->n_cols);
                goto fail;
            }
        } else if (is_name(&t)) {
            if (!have_block) {
                st = ew_fail(EW_ERR_FORMAT, "%s:%zu: '%.*s' before any data_ block", name, t.line, SHOW(&t));
                goto fail;
            }
            ew_cif_tok_t key = t;
            rc = ew_cif_next(&x, &t, name);
            if (rc == 0 || (rc > 0 && (is_name(&t) || is_data(&t) || is_loop(&t)))) {
                st = ew_fail(EW_ERR_FORMAT, "%s:%zu: '%.*s' has no value", name, key.line, SHOW(&key));
                goto fail;
            }
            if (rc < 0) break;
            if ((st = add_pair_n(s, block, key.p, key.n, t.p, t.n)) != EW_OK) goto fail;
            rc = ew_cif_next(&x, &t, name);
        } else if (is_other_kw(&t)) {
            rc = ew_cif_next(&x, &t, name);
        } else {
            st = ew_fail(EW_ERR_FORMAT, "%s:%zu: value '%.*s' outside a loop or key-value pair", name,
                         t.line, SHOW(&t));
            goto fail;
        }
    }
    if (rc < 0) {
        st = EW_ERR_FORMAT;
        goto fail;
    }
    if (s->n_blocks == 0) {
        st = ew_fail(EW_ERR_FORMAT, "%s: no data_ block (not a STAR file)", name);
        goto fail;
    }
    return EW_OK;
fail:
    ew_star_free(s);
    return st;
}

ew_status_t ew_star_read(const char *path, ew_star_t *s)
{
    EW_ASSERT(path && s);
    memset(s, 0, sizeof *s);
    char *buf = NULL;
    size_t n = 0;
    EW_TRY(ew_file_read_all(path, &buf, &n));
    ew_status_t st = ew_star_parse(buf, n, path, s);
    free(buf);
    return st;
}

/* ------------------------------------------------------------ lookups */

const ew_star_block_t *ew_star_find_block(const ew_star_t *s, const char *name)
{
    EW_ASSERT(s && name);
    if (!strncmp(name, "data_", 5)) name += 5;
    for (size_t b = 0; b < s->n_blocks; b++)
        if (!strcmp(s->blocks[b].name, name)) return &s->blocks[b];
    return NULL;
}

static int find_in_block(const ew_star_block_t *b, const char *name, ew_star_col_t *c)
{
    for (size_t t = 0; t < b->n_tables; t++)
        for (size_t i = 0; i < b->tables[t].n_cols; i++)
            if (!strcmp(b->tables[t].cols[i], name)) {
                c->block = b;
                c->table = &b->tables[t];
                c->col = i;
                return 1;
            }
    return 0;
}

static int find_col(const ew_star_t *s, const char *block, const char *name, ew_star_col_t *c)
{
    memset(c, 0, sizeof *c);
    if (name[0] == '_') name++;
    c->star = s;
    if (block) {
        const ew_star_block_t *b = ew_star_find_block(s, block);
        return b ? find_in_block(b, name, c) : 0;
    }
    for (size_t b = 0; b < s->n_blocks; b++)
        if (find_in_block(&s->blocks[b], name, c)) return 1;
    return 0;
}

int ew_star_has_column(const ew_star_t *s, const char *block, const char *name)
{
    EW_ASSERT(s && name);
    ew_star_col_t c;
    return find_col(s, block, name, &c);
}

ew_status_t ew_star_column(const ew_star_t *s, const char *block, const char *name, ew_star_col_t *c)
{
    EW_ASSERT(s && name && c);
    if (find_col(s, block, name, c)) return EW_OK;
    memset(c, 0, sizeof *c);
    if (block && !ew_star_find_block(s, block))
        return ew_fail(EW_ERR_FORMAT, "%s: no block data_%s", s->source, block);
    if (name[0] == '_') name++;
    if (block) return ew_fail(EW_ERR_FORMAT, "%s: block data_%s has no column _%s", s->source, block, name);
    return ew_fail(EW_ERR_FORMAT, "%s: no block has a column _%s", s->source, name);
}

size_t ew_star_rows(const ew_star_col_t *c)
{
    return c && c->table ? c->table->n_rows : 0;
}

const char *ew_star_get_string(const ew_star_col_t *c, size_t row)
{
    EW_ASSERT(c && c->table && row < c->table->n_rows);
    return c->table->cells[row * c->table->n_cols + c->col];
}

static ew_status_t bad_value(const ew_star_col_t *c, size_t row, const char *what)
{
    return ew_fail(EW_ERR_FORMAT, "%s: block data_%s, column _%s, row %zu: '%.60s' is not %s",
                   c->star ? c->star->source : "(star)", c->block->name, c->table->cols[c->col],
                   row + 1, ew_star_get_string(c, row), what);
}

static ew_status_t check_row(const ew_star_col_t *c, size_t row)
{
    EW_ASSERT(c && c->table);
    if (row >= c->table->n_rows)
        return ew_fail(EW_ERR_RANGE, "%s: block data_%s, column _%s: row %zu requested, %zu rows",
                       c->star ? c->star->source : "(star)", c->block->name, c->table->cols[c->col],
                       row + 1, c->table->n_rows);
    return EW_OK;
}

ew_status_t ew_star_get_double(const ew_star_col_t *c, size_t row, double *v)
{
    EW_TRY(check_row(c, row));
    const char *s = ew_star_get_string(c, row);
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || !isfinite(x) || errno == ERANGE) return bad_value(c, row, "a finite number");
    *v = x;
    return EW_OK;
}

ew_status_t ew_star_get_int(const ew_star_col_t *c, size_t row, long *v)
{
    EW_TRY(check_row(c, row));
    const char *s = ew_star_get_string(c, row);
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end != s && !*end && errno != ERANGE) {
        *v = x;
        return EW_OK;
    }
    double d = strtod(s, &end); /* "3.000000" as RELION sometimes writes */
    if (end != s && !*end && isfinite(d) && d == floor(d) && fabs(d) < 9e15) {
        *v = (long)d;
        return EW_OK;
    }
    return bad_value(c, row, "an integer");
}

ew_status_t ew_star_split_image_name(const char *image_name, long *index, char *path, size_t n)
{
    EW_ASSERT(image_name && index && path && n > 0);
    const char *at = strchr(image_name, '@');
    const char *file = image_name;
    *index = 0;
    if (at) {
        char *end;
        errno = 0;
        long k = strtol(image_name, &end, 10);
        if (end != at || end == image_name || errno == ERANGE || k < 1)
            return ew_fail(EW_ERR_FORMAT, "image name '%.200s': '%.*s' before '@' is not a positive index",
                           image_name, (int)(at - image_name > 40 ? 40 : at - image_name), image_name);
        *index = k;
        file = at + 1;
    }
    size_t len = strlen(file);
    if (len == 0) return ew_fail(EW_ERR_FORMAT, "image name '%.200s' has no file name", image_name);
    if (len >= n)
        return ew_fail(EW_ERR_RANGE, "image name '%.200s': the path is longer than %zu characters",
                       image_name, n - 1);
    memcpy(path, file, len + 1);
    return EW_OK;
}

void ew_star_describe(const ew_star_t *s, char *out, size_t n)
{
    EW_ASSERT(s && out && n > 0);
    size_t used = 0;
    out[0] = '\0';
    for (size_t b = 0; b < s->n_blocks && used < n; b++) {
        const ew_star_block_t *bl = &s->blocks[b];
        if (bl->n_tables == 0)
            used += (size_t)snprintf(out + used, n - used, "data_%s: empty\n", bl->name);
        for (size_t t = 0; t < bl->n_tables && used < n; t++) {
            const ew_star_table_t *tb = &bl->tables[t];
            used += (size_t)snprintf(out + used, n - used, "data_%s: %s, %zu column%s, %zu row%s\n",
                                     bl->name, tb->is_loop ? "loop" : "key-value pairs", tb->n_cols,
                                     tb->n_cols == 1 ? "" : "s", tb->n_rows, tb->n_rows == 1 ? "" : "s");
        }
    }
}

/* ------------------------------------------------------------ writing */

static int prefix_ci(const char *v, const char *k)
{
    for (; *k; k++, v++)
        if (tolower((unsigned char)*v) != *k) return 0;
    return 1;
}

/* Write one value, quoted where needed. */
static ew_status_t put_value(FILE *f, const char *v, const char *path)
{
    int q = !*v || strpbrk(v, " \t\r\n\"'") || v[0] == '_' || v[0] == '#' || v[0] == ';' ||
            v[0] == '$' || prefix_ci(v, "data_") || prefix_ci(v, "loop_") || prefix_ci(v, "save_") ||
            prefix_ci(v, "stop_") || prefix_ci(v, "global_");
    if (!q) {
        fputs(v, f);
        return EW_OK;
    }
    if (strpbrk(v, "\r\n"))
        return ew_fail(EW_ERR_ARG, "%s: value '%.40s' contains a line break", path, v);
    /* a quote character ends a quoted value only when a blank follows it */
    const char *qs = "\"'";
    for (int k = 0; k < 2; k++) {
        char c = qs[k];
        int ok = 1;
        for (const char *p = v; *p; p++)
            if (*p == c && (p[1] == '\0' || isspace((unsigned char)p[1]))) ok = 0;
        if (ok) {
            fprintf(f, "%c%s%c", c, v, c);
            return EW_OK;
        }
    }
    return ew_fail(EW_ERR_ARG, "%s: value '%.40s' cannot be quoted in STAR", path, v);
}

static ew_status_t write_table(FILE *f, const ew_star_table_t *t, const char *path)
{
    if (!t->is_loop) {
        size_t w = 0;
        for (size_t c = 0; c < t->n_cols; c++)
            if (strlen(t->cols[c]) > w) w = strlen(t->cols[c]);
        for (size_t c = 0; c < t->n_cols && t->n_rows > 0; c++) {
            fprintf(f, "_%-*s ", (int)w, t->cols[c]);
            EW_TRY(put_value(f, t->cells[c], path));
            fputc('\n', f);
        }
        fputc('\n', f);
        return EW_OK;
    }
    fputs("loop_ \n", f);
    for (size_t c = 0; c < t->n_cols; c++) fprintf(f, "_%s #%zu \n", t->cols[c], c + 1);
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            if (c) fputc(' ', f);
            EW_TRY(put_value(f, t->cells[r * t->n_cols + c], path));
        }
        fputc('\n', f);
    }
    fputs(" \n", f);
    return EW_OK;
}

ew_status_t ew_star_write(const char *path, const ew_star_t *s)
{
    EW_ASSERT(path && s);
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(path, &f, &tmp));
    for (size_t b = 0; b < s->n_blocks; b++) {
        const ew_star_block_t *bl = &s->blocks[b];
        fprintf(f, "\n# version 30001\n\ndata_%s\n\n", bl->name);
        for (size_t t = 0; t < bl->n_tables; t++) {
            ew_status_t st = write_table(f, &bl->tables[t], path);
            if (st != EW_OK) {
                ew_atomic_abort(f, tmp);
                return st;
            }
        }
    }
    return ew_atomic_commit(f, tmp, path);
}

/* ------------------------------------------------- RELION particle files */

ew_status_t ew_star_write_particles(const char *path, const ew_star_optics_t *o,
                                    const ew_star_particle_t *p, size_t n)
{
    EW_ASSERT(path && o && (p || n == 0));
    if (!(o->pixel_size > 0) || o->image_size <= 0 || !(o->voltage_kv > 0))
        return ew_fail(EW_ERR_ARG, "%s: optics need a positive pixel size (%g), image size (%d) and "
                       "voltage (%g)", path, o->pixel_size, o->image_size, o->voltage_kv);
    ew_star_t s;
    ew_star_init(&s, path);
    ew_status_t st;
    size_t bo, bp, to, tp;
    static const char *const ocols[] = {
        "rlnOpticsGroup", "rlnOpticsGroupName", "rlnAmplitudeContrast", "rlnSphericalAberration",
        "rlnVoltage", "rlnImagePixelSize", "rlnImageSize", "rlnImageDimensionality"};
    static const char *const pcols[] = {
        "rlnCoordinateX", "rlnCoordinateY", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
        "rlnOriginXAngst", "rlnOriginYAngst", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle",
        "rlnMicrographName", "rlnImageName", "rlnOpticsGroup"};
    enum { NO = sizeof ocols / sizeof *ocols, NP = sizeof pcols / sizeof *pcols };
    char ov[NO][64];
    snprintf(ov[0], 64, "1");
    snprintf(ov[1], 64, "opticsGroup1");
    snprintf(ov[2], 64, "%.6f", o->amp_contrast);
    snprintf(ov[3], 64, "%.6f", o->cs_mm);
    snprintf(ov[4], 64, "%.6f", o->voltage_kv);
    snprintf(ov[5], 64, "%.6f", o->pixel_size);
    snprintf(ov[6], 64, "%d", o->image_size);
    snprintf(ov[7], 64, "2");
    const char *ovp[NO];
    for (int i = 0; i < NO; i++) ovp[i] = ov[i];
    if ((st = ew_star_add_block(&s, "optics", &bo)) != EW_OK ||
        (st = ew_star_add_loop(&s, bo, NO, ocols, &to)) != EW_OK ||
        (st = ew_star_add_row(&s, bo, to, ovp)) != EW_OK ||
        (st = ew_star_add_block(&s, "particles", &bp)) != EW_OK ||
        (st = ew_star_add_loop(&s, bp, NP, pcols, &tp)) != EW_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const ew_star_particle_t *q = &p[i];
        double num[10] = {q->x, q->y, q->rot, q->tilt, q->psi, q->origin_x, q->origin_y,
                          q->defocus_u, q->defocus_v, q->defocus_angle};
        char v[NP][64], img[4096];
        const char *vp[NP];
        for (int k = 0; k < 10; k++) {
            if (!isfinite(num[k])) {
                st = ew_fail(EW_ERR_ARG, "%s: particle %zu: %s is not finite", path, i + 1, pcols[k]);
                goto done;
            }
            snprintf(v[k], 64, "%.6f", num[k]);
            vp[k] = v[k];
        }
        if (!q->stack || q->index < 1) {
            st = ew_fail(EW_ERR_ARG, "%s: particle %zu has no image stack or index (%ld)", path, i + 1,
                         q->index);
            goto done;
        }
        if ((size_t)snprintf(img, sizeof img, "%06ld@%s", q->index, q->stack) >= sizeof img) {
            st = ew_fail(EW_ERR_ARG, "%s: particle %zu: image name too long", path, i + 1);
            goto done;
        }
        vp[10] = q->micrograph && q->micrograph[0] ? q->micrograph : "None";
        vp[11] = img;
        vp[12] = "1";
        if ((st = ew_star_add_row(&s, bp, tp, vp)) != EW_OK) goto done;
    }
    st = ew_star_write(path, &s);
done:
    ew_star_free(&s);
    return st;
}
