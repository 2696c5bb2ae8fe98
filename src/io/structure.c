/* ewald io: PDB and mmCIF readers, structure summaries.
 *
 * Both readers collect atom records into one growing array, resolve
 * alternate locations at the end (per chain, residue number, insertion
 * code and atom name: the highest occupancy wins, the first on a tie) and
 * convert to the structure-of-arrays ew_structure_t. Every field read from
 * the file is bounds-checked; a malformed record gives EW_ERR_FORMAT with
 * the file name and line number.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/structure.h"

#include "io/cif_lex.h"

typedef struct {
    float xyz[3];
    float occ, b;
    int32_t res_seq;
    uint8_t z;
    int8_t charge;
    uint8_t het;
    char altloc;           /* 0 when none */
    char icode;
    char chain[5];         /* full chain id (up to 4 characters) for altloc keys */
    char res_name[4];
    char atom_name[5];
    size_t order;          /* index in file order (tie-break) */
    int dropped;
} atom_rec_t;

typedef struct {
    atom_rec_t *a;
    size_t n, cap;
} atom_list_t;

static ew_status_t list_push(atom_list_t *L, const atom_rec_t *r)
{
    EW_TRY(ew_grow((void **)&L->a, &L->cap, L->n + 1, sizeof *L->a));
    L->a[L->n] = *r;
    L->a[L->n].order = L->n;
    L->n++;
    return EW_OK;
}

static void copy_trim(char *dst, size_t dstsize, const char *src, size_t n)
{
    while (n > 0 && isspace((unsigned char)*src)) {
        src++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)src[n - 1])) n--;
    if (n > dstsize - 1) n = dstsize - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int is_water(const char *res)
{
    return !strcmp(res, "HOH") || !strcmp(res, "WAT") || !strcmp(res, "DOD");
}

/* Parse a finite decimal number from n bytes (surrounding blanks allowed).
 * Returns 0 on success. */
static int parse_num(const char *p, size_t n, double *out)
{
    char buf[64];
    copy_trim(buf, sizeof buf, p, n);
    if (!buf[0]) return -1;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Element from an atom name when the element column is empty (PDB rules:
 * a name starting in column 13 is a two-letter element, one starting in
 * column 14 a one-letter element; names like "HD21" of ATOM records are
 * hydrogens). name4 is the raw 4-character name field. */
static int element_from_name(const char *name4, int het)
{
    char c0 = name4[0], c1 = name4[1];
    if (c0 == ' ' || isdigit((unsigned char)c0)) {
        char s[2] = {c1, 0};
        return ew_element_z(s);
    }
    if (!het && (c0 == 'H' || c0 == 'D')) return 1;
    if (isalpha((unsigned char)c1)) {
        char s2[3] = {c0, c1, 0};
        int z = ew_element_z(s2);
        if (z) return z;
    }
    char s[2] = {c0, 0};
    return ew_element_z(s);
}

/* Formal charge from "2+", "1-", "+2", "-" or "" (0). Returns 0 on success. */
static int parse_charge(const char *p, size_t n, int *q)
{
    char buf[8];
    copy_trim(buf, sizeof buf, p, n);
    *q = 0;
    if (!buf[0] || !strcmp(buf, ".") || !strcmp(buf, "?")) return 0;
    int sign = 0, mag = -1;
    for (const char *c = buf; *c; c++) {
        if (*c == '+') sign = sign ? 2 : 1;
        else if (*c == '-') sign = sign ? 2 : -1;
        else if (isdigit((unsigned char)*c) && mag < 0) mag = *c - '0';
        else return -1;
    }
    if (sign == 2) return -1;
    if (mag < 0) mag = 1;
    if (sign == 0) sign = 1; /* mmCIF writes plain integers */
    *q = sign * mag;
    return 0;
}

static int cmp_altloc(const void *pa, const void *pb)
{
    const atom_rec_t *a = *(atom_rec_t *const *)pa, *b = *(atom_rec_t *const *)pb;
    int c = strcmp(a->chain, b->chain);
    if (c) return c;
    if (a->res_seq != b->res_seq) return a->res_seq < b->res_seq ? -1 : 1;
    if (a->icode != b->icode) return a->icode < b->icode ? -1 : 1;
    c = strcmp(a->atom_name, b->atom_name);
    if (c) return c;
    return a->order < b->order ? -1 : (a->order > b->order);
}

/* Keep one conformer per atom among records with an altloc. */
static ew_status_t resolve_altlocs(atom_list_t *L)
{
    size_t na = 0;
    for (size_t i = 0; i < L->n; i++) na += L->a[i].altloc != 0;
    if (na < 2) return EW_OK;
    atom_rec_t **p = malloc(na * sizeof *p);
    if (!p) return ew_fail(EW_ERR_NOMEM, "out of memory sorting %zu alternate locations", na);
    na = 0;
    for (size_t i = 0; i < L->n; i++)
        if (L->a[i].altloc) p[na++] = &L->a[i];
    qsort(p, na, sizeof *p, cmp_altloc);
    for (size_t i = 0; i < na;) {
        size_t j = i + 1;
        while (j < na && !strcmp(p[j]->chain, p[i]->chain) && p[j]->res_seq == p[i]->res_seq &&
               p[j]->icode == p[i]->icode && !strcmp(p[j]->atom_name, p[i]->atom_name))
            j++;
        size_t best = i; /* sorted by file order within a group: first wins ties */
        for (size_t k = i + 1; k < j; k++)
            if (p[k]->occ > p[best]->occ) best = k;
        for (size_t k = i; k < j; k++)
            if (k != best) p[k]->dropped = 1;
        i = j;
    }
    free(p);
    return EW_OK;
}

static int keep_record(const atom_rec_t *r, const ew_structure_options_t *o)
{
    if (!o) return 1;
    if (o->drop_hetatm && r->het) return 0;
    if (o->drop_waters && is_water(r->res_name)) return 0;
    if (o->drop_hydrogens && r->z == 1) return 0;
    return 1;
}

void ew_structure_free(ew_structure_t *s)
{
    if (!s) return;
    ew_free(s->xyz);
    ew_free(s->z);
    ew_free(s->charge);
    ew_free(s->occupancy);
    ew_free(s->b_factor);
    ew_free(s->hetatm);
    ew_free(s->chain);
    ew_free(s->res_seq);
    ew_free(s->res_name);
    ew_free(s->atom_name);
    memset(s, 0, sizeof *s);
}

static ew_status_t to_structure(atom_list_t *L, const char *name, ew_structure_t *s)
{
    EW_TRY(resolve_altlocs(L));
    size_t n = 0;
    for (size_t i = 0; i < L->n; i++) n += !L->a[i].dropped;
    s->n_atoms = n;
    snprintf(s->source, sizeof s->source, "%s", name);
    s->xyz = ew_alloc_array(n, 3 * sizeof(float));
    s->z = ew_alloc_array(n, 1);
    s->charge = ew_alloc_array(n, 1);
    s->occupancy = ew_alloc_array(n, sizeof(float));
    s->b_factor = ew_alloc_array(n, sizeof(float));
    s->hetatm = ew_alloc_array(n, 1);
    s->chain = ew_alloc_array(n, 1);
    s->res_seq = ew_alloc_array(n, sizeof(int32_t));
    s->res_name = ew_alloc_array(n, 4);
    s->atom_name = ew_alloc_array(n, 5);
    if (!s->xyz || !s->z || !s->charge || !s->occupancy || !s->b_factor || !s->hetatm ||
        !s->chain || !s->res_seq || !s->res_name || !s->atom_name) {
        ew_structure_free(s);
        return ew_fail(EW_ERR_NOMEM, "%s: out of memory for %zu atoms", name, n);
    }
    size_t k = 0;
    for (size_t i = 0; i < L->n; i++) {
        const atom_rec_t *r = &L->a[i];
        if (r->dropped) continue;
        memcpy(&s->xyz[3 * k], r->xyz, sizeof r->xyz);
        s->z[k] = r->z;
        s->charge[k] = r->charge;
        s->occupancy[k] = r->occ;
        s->b_factor[k] = r->b;
        s->hetatm[k] = r->het;
        s->chain[k] = r->chain[0] ? r->chain[0] : ' ';
        s->res_seq[k] = r->res_seq;
        memcpy(s->res_name[k], r->res_name, 4);
        memcpy(s->atom_name[k], r->atom_name, 5);
        k++;
    }
    return EW_OK;
}

/* ---------------------------------------------------------------- PDB */

/* Columns [a, b) (0-based) of a line of length len, blank-padded. */
static void field(const char *line, size_t len, size_t a, size_t b, char *out)
{
    for (size_t i = a; i < b; i++) out[i - a] = i < len ? line[i] : ' ';
    out[b - a] = '\0';
}

static ew_status_t pdb_atom(const char *line, size_t len, const char *name, size_t lineno,
                            int het, atom_rec_t *r)
{
    char f[16];
    double x[3], v;
    memset(r, 0, sizeof *r);
    r->het = (uint8_t)het;
    for (int d = 0; d < 3; d++) {
        field(line, len, 30 + 8 * d, 38 + 8 * d, f);
        if (parse_num(f, 8, &x[d]))
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: coordinate %c '%s' (columns %d-%d) is not a number",
                           name, lineno, 'x' + d, f, 31 + 8 * d, 38 + 8 * d);
        if (fabs(x[d]) > 1e7)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: coordinate %c = %g is out of range", name,
                           lineno, 'x' + d, x[d]);
        r->xyz[d] = (float)x[d];
    }
    field(line, len, 54, 60, f);
    r->occ = 1.0f;
    if (strspn(f, " ") != strlen(f)) {
        if (parse_num(f, 6, &v) || v < 0 || v > 1.0001)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: occupancy '%s' (columns 55-60) is not in 0..1",
                           name, lineno, f);
        r->occ = (float)v;
    }
    field(line, len, 60, 66, f);
    if (strspn(f, " ") != strlen(f)) {
        if (parse_num(f, 6, &v) || fabs(v) > 1e6)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: B-factor '%s' (columns 61-66) is not a number",
                           name, lineno, f);
        r->b = (float)v;
    }
    char name4[5];
    field(line, len, 12, 16, name4);
    copy_trim(r->atom_name, sizeof r->atom_name, name4, 4);
    field(line, len, 16, 17, f);
    r->altloc = f[0] == ' ' ? 0 : f[0];
    field(line, len, 17, 20, f);
    copy_trim(r->res_name, sizeof r->res_name, f, 3);
    field(line, len, 21, 22, f);
    r->chain[0] = f[0];
    field(line, len, 22, 26, f);
    if (parse_num(f, 4, &v) || v != floor(v))
        return ew_fail(EW_ERR_FORMAT, "%s:%zu: residue number '%s' (columns 23-26) is not an integer",
                       name, lineno, f);
    r->res_seq = (int32_t)v;
    field(line, len, 26, 27, f);
    r->icode = f[0];
    field(line, len, 76, 78, f);
    int z = 0;
    if (strspn(f, " ") != strlen(f)) {
        z = ew_element_z(f);
        if (!z)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: unknown element '%s' (columns 77-78)", name,
                           lineno, f);
    } else {
        z = element_from_name(name4, het);
        if (!z)
            return ew_fail(EW_ERR_FORMAT,
                           "%s:%zu: no element in columns 77-78 and none follows from atom name '%s'",
                           name, lineno, name4);
    }
    r->z = (uint8_t)z;
    field(line, len, 78, 80, f);
    int q;
    if (parse_charge(f, 2, &q) || q > z)
        return ew_fail(EW_ERR_FORMAT, "%s:%zu: charge '%s' (columns 79-80) is not valid", name,
                       lineno, f);
    r->charge = (int8_t)q;
    return EW_OK;
}

static ew_status_t parse_pdb(const char *data, size_t len, const char *name,
                             const ew_structure_options_t *opts, atom_list_t *L)
{
    size_t lineno = 0;
    int in_model = 0, models_seen = 0;
    size_t records = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl != NULL);
        lineno++;
        if (ll > 0 && line[ll - 1] == '\r') ll--;
        if (ll >= 5 && !memcmp(line, "MODEL", 5)) {
            if (models_seen) break; /* first MODEL only */
            models_seen = 1;
            in_model = 1;
            continue;
        }
        if (ll >= 6 && !memcmp(line, "ENDMDL", 6)) {
            if (in_model) break;
            continue;
        }
        int het = ll >= 6 && !memcmp(line, "HETATM", 6);
        if (!het && !(ll >= 6 && !memcmp(line, "ATOM  ", 6)))
            continue;
        records++;
        atom_rec_t r;
        EW_TRY(pdb_atom(line, ll, name, lineno, het, &r));
        if (!keep_record(&r, opts)) continue;
        if (list_push(L, &r) != EW_OK)
            return ew_fail(EW_ERR_NOMEM, "%s:%zu: out of memory", name, lineno);
    }
    if (records == 0)
        return ew_fail(EW_ERR_FORMAT, "%s: no ATOM or HETATM records", name);
    return EW_OK;
}

/* -------------------------------------------------------------- mmCIF */

static int tok_is(const ew_cif_tok_t *t, const char *kw)
{
    size_t n = strlen(kw);
    if (t->quoted || t->n != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)t->p[i]) != kw[i]) return 0;
    return 1;
}

static int tok_prefix(const ew_cif_tok_t *t, const char *kw)
{
    size_t n = strlen(kw);
    if (t->quoted || t->n < n) return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)t->p[i]) != kw[i]) return 0;
    return 1;
}

/* A token that ends a loop's values. */
static int tok_reserved(const ew_cif_tok_t *t)
{
    return !t->quoted && t->n > 0 &&
           (t->p[0] == '_' || tok_is(t, "loop_") || tok_prefix(t, "data_") ||
            tok_prefix(t, "save_") || tok_is(t, "stop_") || tok_is(t, "global_"));
}

static int tok_missing(const ew_cif_tok_t *t)
{
    return !t->quoted && t->n == 1 && (t->p[0] == '.' || t->p[0] == '?');
}

enum {
    C_GROUP, C_TYPE, C_LATOM, C_AATOM, C_ALT, C_LCOMP, C_ACOMP, C_LASYM, C_AASYM, C_LSEQ,
    C_ASEQ, C_INS, C_X, C_Y, C_Z, C_OCC, C_B, C_CHARGE, C_MODEL, C_NCOLS
};
static const char *const k_cif_cols[C_NCOLS] = {
    "group_pdb", "type_symbol", "label_atom_id", "auth_atom_id", "label_alt_id",
    "label_comp_id", "auth_comp_id", "label_asym_id", "auth_asym_id", "label_seq_id",
    "auth_seq_id", "pdbx_pdb_ins_code", "cartn_x", "cartn_y", "cartn_z", "occupancy",
    "b_iso_or_equiv", "pdbx_formal_charge", "pdbx_pdb_model_num"
};

static int ci_eq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn) return 0;
    for (size_t i = 0; i < an; i++)
        if (tolower((unsigned char)a[i]) != b[i]) return 0;
    return 1;
}

static const ew_cif_tok_t *cif_col(const ew_cif_tok_t *v, const int *col, int c)
{
    return col[c] >= 0 && !tok_missing(&v[col[c]]) ? &v[col[c]] : NULL;
}

static ew_status_t cif_row(const ew_cif_tok_t *v, const int *col, const char *name,
                           const ew_structure_options_t *opts, long *model, atom_list_t *L)
{
    atom_rec_t r;
    memset(&r, 0, sizeof r);
    size_t line = v[0].line;
    char buf[64];
    double x;
#define TOK(c) cif_col(v, col, c)
    const ew_cif_tok_t *t = TOK(C_MODEL);
    if (t) {
        if (parse_num(t->p, t->n, &x) || fabs(x) > 1e9)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: pdbx_PDB_model_num '%.*s' is not a number", name,
                           line, (int)(t->n > 20 ? 20 : t->n), t->p);
        if (*model == LONG_MIN) *model = (long)x;
        else if ((long)x != *model) return EW_OK; /* first model only */
    }
    t = TOK(C_GROUP);
    r.het = t && ci_eq(t->p, t->n, "hetatm");
    static const int xyz_cols[3] = {C_X, C_Y, C_Z};
    for (int d = 0; d < 3; d++) {
        t = TOK(xyz_cols[d]);
        if (!t || parse_num(t->p, t->n, &x) || fabs(x) > 1e7)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: Cartn_%c '%.*s' is not a number", name, line,
                           'x' + d, t ? (int)(t->n > 20 ? 20 : t->n) : 1, t ? t->p : "?");
        r.xyz[d] = (float)x;
    }
    r.occ = 1.0f;
    if ((t = TOK(C_OCC))) {
        if (parse_num(t->p, t->n, &x) || x < 0 || x > 1.0001)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: occupancy '%.*s' is not in 0..1", name, line,
                           (int)(t->n > 20 ? 20 : t->n), t->p);
        r.occ = (float)x;
    }
    if ((t = TOK(C_B))) {
        if (parse_num(t->p, t->n, &x) || fabs(x) > 1e6)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: B_iso_or_equiv '%.*s' is not a number", name,
                           line, (int)(t->n > 20 ? 20 : t->n), t->p);
        r.b = (float)x;
    }
    const ew_cif_tok_t *an = TOK(C_AATOM) ? TOK(C_AATOM) : TOK(C_LATOM);
    if (an) copy_trim(r.atom_name, sizeof r.atom_name, an->p, an->n);
    if ((t = TOK(C_ACOMP) ? TOK(C_ACOMP) : TOK(C_LCOMP)))
        copy_trim(r.res_name, sizeof r.res_name, t->p, t->n);
    if ((t = TOK(C_AASYM) ? TOK(C_AASYM) : TOK(C_LASYM)))
        copy_trim(r.chain, sizeof r.chain, t->p, t->n);
    if ((t = TOK(C_ASEQ) ? TOK(C_ASEQ) : TOK(C_LSEQ))) {
        if (parse_num(t->p, t->n, &x) || x != floor(x) || fabs(x) > 1e9)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: residue number '%.*s' is not an integer", name,
                           line, (int)(t->n > 20 ? 20 : t->n), t->p);
        r.res_seq = (int32_t)x;
    }
    if ((t = TOK(C_ALT))) r.altloc = t->n ? t->p[0] : 0;
    if ((t = TOK(C_INS))) r.icode = t->n ? t->p[0] : 0;
    int z = 0;
    if ((t = TOK(C_TYPE))) {
        copy_trim(buf, 8, t->p, t->n < 8 ? t->n : 8);
        z = ew_element_z(buf);
        if (!z)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: unknown element type_symbol '%.*s'", name, line,
                           (int)(t->n > 20 ? 20 : t->n), t->p);
    } else {
        char name4[5] = "    ";
        size_t nl = strlen(r.atom_name);
        /* right-justify a short name as PDB does for one-letter elements */
        memcpy(name4 + (nl < 4 ? 1 : 0), r.atom_name, nl < 4 ? nl : 4);
        z = element_from_name(name4, r.het);
        if (!z)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: no type_symbol and none follows from atom name '%s'",
                           name, line, r.atom_name);
    }
    r.z = (uint8_t)z;
    int q = 0;
    if ((t = TOK(C_CHARGE))) {
        if (parse_charge(t->p, t->n > 7 ? 7 : t->n, &q) || q > z)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: pdbx_formal_charge '%.*s' is not valid", name,
                           line, (int)(t->n > 20 ? 20 : t->n), t->p);
    }
    r.charge = (int8_t)q;
#undef TOK
    if (!keep_record(&r, opts)) return EW_OK;
    if (list_push(L, &r) != EW_OK) return ew_fail(EW_ERR_NOMEM, "%s:%zu: out of memory", name, line);
    return EW_OK;
}

static ew_status_t parse_cif(const char *data, size_t len, const char *name,
                             const ew_structure_options_t *opts, atom_list_t *L)
{
    ew_cif_lex_t x = {data, len, 0, 1};
    ew_cif_tok_t t;
    int rc, found = 0;
    rc = ew_cif_next(&x, &t, name);
    while (rc > 0) {
        if (!tok_is(&t, "loop_")) {
            rc = ew_cif_next(&x, &t, name);
            continue;
        }
        /* loop header */
        size_t ncols = 0;
        int col[C_NCOLS];
        for (int c = 0; c < C_NCOLS; c++) col[c] = -1;
        int atom_site = 0;
        while ((rc = ew_cif_next(&x, &t, name)) > 0 && !t.quoted && t.n > 0 && t.p[0] == '_') {
            if (t.n > 11 && ci_eq(t.p, 11, "_atom_site.")) {
                atom_site = 1;
                for (int c = 0; c < C_NCOLS; c++)
                    if (ci_eq(t.p + 11, t.n - 11, k_cif_cols[c])) col[c] = (int)ncols;
            }
            ncols++;
        }
        if (rc < 0) return EW_ERR_FORMAT;
        if (ncols == 0)
            return ew_fail(EW_ERR_FORMAT, "%s:%zu: loop_ without column names", name, x.line);
        if (!atom_site || found) { /* skip this loop's values */
            while (rc > 0 && !tok_reserved(&t)) rc = ew_cif_next(&x, &t, name);
            continue;
        }
        found = 1;
        if (col[C_X] < 0 || col[C_Y] < 0 || col[C_Z] < 0)
            return ew_fail(EW_ERR_FORMAT, "%s: the _atom_site loop has no Cartn_x/y/z columns", name);
        ew_cif_tok_t *row = malloc(ncols * sizeof *row);
        if (!row) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", name);
        long model = LONG_MIN;
        size_t k = 0;
        while (rc > 0 && !tok_reserved(&t)) {
            row[k++] = t;
            if (k == ncols) {
                ew_status_t st = cif_row(row, col, name, opts, &model, L);
                if (st != EW_OK) {
                    free(row);
                    return st;
                }
                k = 0;
            }
            rc = ew_cif_next(&x, &t, name);
        }
        free(row);
        if (rc < 0) return EW_ERR_FORMAT;
        if (k != 0)
            return ew_fail(EW_ERR_FORMAT,
                           "%s:%zu: the _atom_site loop ends inside a row (%zu of %zu values)", name,
                           x.line, k, ncols);
    }
    if (rc < 0) return EW_ERR_FORMAT;
    if (!found) return ew_fail(EW_ERR_FORMAT, "%s: no _atom_site loop in the mmCIF file", name);
    return EW_OK;
}

/* ----------------------------------------------------------- dispatch */

static int looks_like_cif(const char *d, size_t len)
{
    size_t i = 0;
    for (;;) {
        while (i < len && isspace((unsigned char)d[i])) i++;
        if (i < len && d[i] == '#') {
            while (i < len && d[i] != '\n') i++;
            continue;
        }
        break;
    }
    return len - i >= 5 && !strncmp(d + i, "data_", 5);
}

ew_status_t ew_structure_parse(const char *data, size_t len, const char *name,
                               const ew_structure_options_t *opts, ew_structure_t *s)
{
    EW_ASSERT(s && (data || len == 0));
    memset(s, 0, sizeof *s);
    if (!name) name = "(memory)";
    atom_list_t L = {0};
    ew_status_t st = looks_like_cif(data, len) ? parse_cif(data, len, name, opts, &L)
                                               : parse_pdb(data, len, name, opts, &L);
    if (st == EW_OK) st = to_structure(&L, name, s);
    free(L.a);
    if (st != EW_OK) memset(s, 0, sizeof *s);
    return st;
}

ew_status_t ew_structure_read(const char *path, const ew_structure_options_t *opts, ew_structure_t *s)
{
    EW_ASSERT(path && s);
    memset(s, 0, sizeof *s);
    char *buf = NULL;
    size_t n = 0;
    EW_TRY(ew_file_read_all(path, &buf, &n));
    ew_status_t st = ew_structure_parse(buf, n, path, opts, s);
    free(buf);
    return st;
}

/* ------------------------------------------------------------ summary */

void ew_structure_summarize(const ew_structure_t *s, ew_structure_summary_t *sum)
{
    EW_ASSERT(s && sum);
    memset(sum, 0, sizeof *sum);
    sum->n_atoms = s->n_atoms;
    double w_tot = 0, c[3] = {0, 0, 0};
    for (size_t i = 0; i < s->n_atoms; i++) {
        int z = s->z[i];
        if (z < 99) sum->count_by_z[z]++;
        double occ = s->occupancy[i];
        double m = ew_element_mass(z) * occ;
        sum->electrons += (z - s->charge[i]) * occ;
        sum->mass_da += m;
        w_tot += m;
        for (int d = 0; d < 3; d++) {
            double x = s->xyz[3 * i + d];
            c[d] += m * x;
            if (i == 0 || x < sum->bbox_min[d]) sum->bbox_min[d] = x;
            if (i == 0 || x > sum->bbox_max[d]) sum->bbox_max[d] = x;
        }
    }
    int unweighted = !(w_tot > 0);
    if (unweighted) { /* all occupancies zero: geometric centre */
        w_tot = (double)s->n_atoms;
        for (size_t i = 0; i < s->n_atoms; i++)
            for (int d = 0; d < 3; d++) c[d] += s->xyz[3 * i + d];
    }
    if (s->n_atoms == 0) return;
    for (int d = 0; d < 3; d++) sum->centre[d] = c[d] / w_tot;
    double r2w = 0, rmax = 0;
    for (size_t i = 0; i < s->n_atoms; i++) {
        double w = unweighted ? 1.0 : ew_element_mass(s->z[i]) * s->occupancy[i];
        double r2 = 0;
        for (int d = 0; d < 3; d++) {
            double dx = s->xyz[3 * i + d] - sum->centre[d];
            r2 += dx * dx;
        }
        r2w += w * r2;
        if (r2 > rmax) rmax = r2;
    }
    sum->radius_gyration = sqrt(r2w / w_tot);
    sum->max_extent = sqrt(rmax);
}

void ew_structure_center(ew_structure_t *s)
{
    EW_ASSERT(s);
    ew_structure_summary_t sum;
    ew_structure_summarize(s, &sum);
    for (size_t i = 0; i < s->n_atoms; i++)
        for (int d = 0; d < 3; d++) s->xyz[3 * i + d] = (float)(s->xyz[3 * i + d] - sum.centre[d]);
}
