/* ewald io: particle coordinate files (Topaz TSV, EMAN .box).
 *
 * Coordinates are particle centres in pixels of the micrograph, x along
 * columns, y along rows, whatever the file stores:
 *   - Topaz TSV: a header line naming the columns (image_name, x_coord,
 *     y_coord and optionally score, tab- or blank-separated, any order),
 *     then one particle per line; x_coord/y_coord are centres.
 *   - EMAN .box: "x y w h" per line (blank-separated, further columns
 *     ignored), (x, y) the top-left corner of a w x h box, so the centre
 *     is (x + w/2, y + h/2). Written as integers (corners rounded to the
 *     nearest pixel), as EMAN and RELION expect.
 */
#ifndef EW_IO_COORDS_H
#define EW_IO_COORDS_H

#include <stddef.h>

#include "core/core.h"

typedef struct {
    size_t n, cap;
    char **image;      /* (n) micrograph name per particle (Topaz); NULL entries from .box files */
    double *x, *y;     /* (n) particle centre, pixels */
    double *score;     /* (n) Topaz score; 0 when the file has none */
    double *box;       /* (n) box edge, pixels (.box w; 0 from Topaz) */
} ew_coords_t;

/* Empty list (all NULL). */
void ew_coords_init(ew_coords_t *c);
/* Free all arrays and names; c may be NULL; c is left empty. */
void ew_coords_free(ew_coords_t *c);
/* Append a particle (image copied; may be NULL). */
ew_status_t ew_coords_add(ew_coords_t *c, const char *image, double x, double y, double score, double box);

/* Topaz TSV. On error *c is left empty and the message names the file,
 * the line and the problem (missing column, non-numeric value). */
ew_status_t ew_coords_read_topaz(const char *path, ew_coords_t *c);
ew_status_t ew_coords_parse_topaz(const char *data, size_t len, const char *name, ew_coords_t *c);
/* Write Topaz TSV (atomic). Every particle needs an image name. */
ew_status_t ew_coords_write_topaz(const char *path, const ew_coords_t *c);

/* EMAN .box (one micrograph per file). Non-square boxes keep w in box[]. */
ew_status_t ew_coords_read_box(const char *path, ew_coords_t *c);
ew_status_t ew_coords_parse_box(const char *data, size_t len, const char *name, ew_coords_t *c);
/* Write EMAN .box with box edge box_size (> 0) pixels (atomic). */
ew_status_t ew_coords_write_box(const char *path, const ew_coords_t *c, int box_size);

#endif
