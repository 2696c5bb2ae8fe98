/* ewald io: STAR files (RELION metadata).
 *
 * A STAR file is a list of data blocks ("data_NAME"); each block holds
 * loops ("loop_" + column names + rows of values) and key-value pairs
 * ("_name value"). ewald keeps everything as strings: a block is a list of
 * tables; each loop_ is one table, and the key-value pairs of a block are
 * collected into one table with is_loop 0 and a single row. Column names
 * are stored without the leading '_'. Comments ('#' to end of line) are
 * dropped; quoted values ('...' or "...") lose their quotes.
 *
 * RELION 3.0 particle files have one block (often "data_" or
 * "data_images"); RELION 3.1+ files have "data_optics" and
 * "data_particles". ew_star_column() with block NULL finds the first loop
 * that has the column, so callers can read either layout.
 */
#ifndef EW_IO_STAR_H
#define EW_IO_STAR_H

#include <stddef.h>

#include "core/core.h"

typedef struct {
    int is_loop;       /* 1: loop_, 0: the block's key-value pairs (one row) */
    size_t n_cols, n_rows;
    char **cols;       /* n_cols names, without the leading '_' */
    char **cells;      /* n_rows * n_cols values, row-major: cells[r * n_cols + c] */
    size_t cap_rows;
} ew_star_table_t;

typedef struct {
    char *name;        /* the text after "data_" ("" for "data_") */
    size_t n_tables;
    ew_star_table_t *tables;
    size_t cap_tables;
} ew_star_block_t;

typedef struct {
    char source[256];  /* file name (messages) */
    size_t n_blocks;
    ew_star_block_t *blocks;
    size_t cap_blocks;
    void *arena;       /* string storage (internal) */
} ew_star_t;

/* A column found by name, for the typed getters. */
typedef struct {
    const ew_star_t *star;
    const ew_star_block_t *block;
    const ew_star_table_t *table;
    size_t col;
} ew_star_col_t;

/* Read / parse (name used in messages) a STAR file. On error *s is left
 * empty and the message names the file, the line and the problem (a loop
 * whose values do not fill whole rows, an unterminated quote, a value
 * outside any block). Free with ew_star_free. */
ew_status_t ew_star_read(const char *path, ew_star_t *s);
ew_status_t ew_star_parse(const char *data, size_t len, const char *name, ew_star_t *s);
void ew_star_free(ew_star_t *s);

/* Write s to path (atomically). Values with blanks or quotes, empty
 * values and values that look like STAR keywords are quoted. Loops are
 * written with RELION's "_name #n" column lines. */
ew_status_t ew_star_write(const char *path, const ew_star_t *s);

/* The block called name (without "data_"), or NULL. */
const ew_star_block_t *ew_star_find_block(const ew_star_t *s, const char *name);

/* Find column name (without '_'; a leading '_' is ignored) in block
 * (NULL: the first table of any block that has it). On error (no such
 * block or column) c is zeroed and the message names the file, the block
 * and the column. */
ew_status_t ew_star_column(const ew_star_t *s, const char *block, const char *name, ew_star_col_t *c);
/* 1 if the column exists (as ew_star_column, without an error). */
int ew_star_has_column(const ew_star_t *s, const char *block, const char *name);
/* Rows of the column's table. */
size_t ew_star_rows(const ew_star_col_t *c);

/* Typed getters. Errors (row out of range, a value that is not a finite
 * number / integer) name the file, block, column, row (1-based) and value. */
ew_status_t ew_star_get_double(const ew_star_col_t *c, size_t row, double *v);
ew_status_t ew_star_get_int(const ew_star_col_t *c, size_t row, long *v);
/* The string value (owned by the table); row must be < ew_star_rows(c). */
const char *ew_star_get_string(const ew_star_col_t *c, size_t row);

/* Split a RELION image name "N@stack.mrcs" into the 1-based index N and
 * the stack path (copied into path, size n). A name without '@' is a
 * single-image file: *index = 0. Errors: N not a positive integer, or the
 * path does not fit. */
ew_status_t ew_star_split_image_name(const char *image_name, long *index, char *path, size_t n);

/* ----- building (for writers): everything is copied */

/* Start an empty file description (source is used in messages). */
void ew_star_init(ew_star_t *s, const char *source);
/* Append a block; returns its index in *block (may be NULL). */
ew_status_t ew_star_add_block(ew_star_t *s, const char *name, size_t *block);
/* Append a loop with the given columns to block; its table index in *table. */
ew_status_t ew_star_add_loop(ew_star_t *s, size_t block, size_t n_cols, const char *const *cols,
                             size_t *table);
/* Append a row of n_cols values to a loop. */
ew_status_t ew_star_add_row(ew_star_t *s, size_t block, size_t table, const char *const *values);
/* Add a key-value pair to block (to its key-value table, created first). */
ew_status_t ew_star_add_pair(ew_star_t *s, size_t block, const char *key, const char *value);

/* ----- RELION particle files */

typedef struct {
    double voltage_kv;      /* rlnVoltage, kV */
    double cs_mm;           /* rlnSphericalAberration, mm */
    double amp_contrast;    /* rlnAmplitudeContrast, 0..1 */
    double pixel_size;      /* rlnImagePixelSize, Angstrom */
    int image_size;         /* rlnImageSize, pixels (square images) */
} ew_star_optics_t;

typedef struct {
    double x, y;                     /* rlnCoordinateX/Y: centre in the micrograph, pixels */
    double rot, tilt, psi;           /* rlnAngleRot/Tilt/Psi, degrees (RELION ZYZ) */
    double origin_x, origin_y;       /* rlnOriginXAngst/YAngst, Angstrom */
    double defocus_u, defocus_v;     /* rlnDefocusU/V, Angstrom */
    double defocus_angle;            /* rlnDefocusAngle, degrees */
    const char *micrograph;          /* rlnMicrographName */
    const char *stack;               /* image stack file; rlnImageName = "index@stack" */
    long index;                      /* 1-based image index in the stack */
} ew_star_particle_t;

/* Write a RELION 3.1 particle file (data_optics with one optics group and
 * data_particles with the columns above plus rlnOpticsGroup 1), read by
 * RELION and cryoDRGN. Atomic; nothing at path on error. */
ew_status_t ew_star_write_particles(const char *path, const ew_star_optics_t *optics,
                                    const ew_star_particle_t *p, size_t n);

/* Summary for `ewald info`: one line per block/table ("data_optics: loop,
 * 9 columns, 1 row") into out (always NUL-terminated, truncated to n). */
void ew_star_describe(const ew_star_t *s, char *out, size_t n);

#endif
