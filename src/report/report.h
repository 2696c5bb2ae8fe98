/* ewald report: one self-contained HTML page of sections, figures, tables,
 * the parameters used and a timing table.
 *
 *     ew_report_t *r = ew_report_new("ewald demo");
 *     ew_report_section(r, "xfel", "XFEL: simulated dataset");
 *     ew_report_text(r, "3000 patterns of 2cex ...");
 *     ew_report_figure(r, "out/fig/montage.png", "First 16 patterns, photons per pixel, log scale");
 *     ew_report_param(r, "XFEL", "patterns", "3000", NULL);
 *     ew_report_timing(r, "EMC", 123.4);
 *     ew_report_write(r, "out/report.html");
 *     ew_report_free(r);
 *
 * Figures are PNG files: they are read when added and embedded in the page
 * as base64 data URIs, so the HTML needs nothing beside it (the PNG files
 * stay where they are for other uses). All text given to the report is
 * HTML-escaped; nothing the caller passes can inject markup. The page has
 * a table of contents of the sections, then the sections, then the
 * parameter table (grouped) and the timing table. The report is built in
 * memory and written atomically (temporary name, then rename).
 *
 * Errors: a function that can fail returns ew_status_t; after an
 * allocation failure the report is marked failed and ew_report_write
 * returns EW_ERR_NOMEM (so callers may skip checking every call).
 */
#ifndef EW_REPORT_REPORT_H
#define EW_REPORT_REPORT_H

#include <stddef.h>

#include "core/core.h"

typedef struct ew_report ew_report_t;

/* A growable text buffer (used by the report; public for tests and other
 * writers). The text is always NUL-terminated once anything was appended;
 * on allocation failure `failed` is set and further appends do nothing. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} ew_strbuf_t;

/* Append len bytes / a NUL-terminated string / formatted text. */
void ew_strbuf_append(ew_strbuf_t *b, const char *s, size_t len);
void ew_strbuf_puts(ew_strbuf_t *b, const char *s);
void ew_strbuf_printf(ew_strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s with &, <, >, " and ' replaced by their HTML entities (NULL: nothing). */
void ew_strbuf_html(ew_strbuf_t *b, const char *s);
/* Free the buffer's memory (b may be NULL); b is left empty. */
void ew_strbuf_free(ew_strbuf_t *b);

/* The base64 (RFC 4648, with padding) encoding of n bytes into b. */
void ew_base64_append(ew_strbuf_t *b, const unsigned char *data, size_t n);

/* A new empty report with a page title (escaped). Returns NULL (message
 * set) when out of memory. Free with ew_report_free. */
ew_report_t *ew_report_new(const char *title);
/* Free the report (r may be NULL). */
void ew_report_free(ew_report_t *r);

/* Front mode: with on = 1, the sections, text, figures and tables added
 * next go before everything added with front mode off (for a summary
 * written last but read first); on = 0 returns to the main text. */
void ew_report_front(ew_report_t *r, int on);
/* A line under the title (e.g. the command and the date). */
void ew_report_subtitle(ew_report_t *r, const char *text);
/* Start a section: id (letters, digits, '-', '_'; others are replaced by
 * '_') is its anchor; title appears in the table of contents. */
void ew_report_section(ew_report_t *r, const char *id, const char *title);
/* A subsection heading inside the current section. */
void ew_report_subsection(ew_report_t *r, const char *title);
/* A paragraph of text (escaped). */
void ew_report_text(ew_report_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A highlighted note: kind "info" (blue), "warn" (orange) or "skip"
 * (grey: a step that did not run, and why). */
void ew_report_note(ew_report_t *r, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A figure: the PNG at png_path, embedded as base64, with a caption that
 * says what it shows and its units. Errors (EW_ERR_IO naming the path)
 * when the file cannot be read; the report then shows a note instead
 * of the image and stays usable. */
ew_status_t ew_report_figure(ew_report_t *r, const char *png_path, const char *caption);
/* A row of figures side by side (n PNGs, each with its own caption). Same
 * errors as ew_report_figure; every file is tried. */
ew_status_t ew_report_figure_row(ew_report_t *r, int n, const char *const *png_paths,
                                 const char *const *captions);
/* A table with a caption, ncols header cells and nrows x ncols cells
 * (row-major; NULL cells are empty). All text escaped. */
void ew_report_table(ew_report_t *r, const char *caption, int ncols, const char *const *header, int nrows,
                     const char *const *cells);
/* Record a parameter (group, name, value, unit; unit may be NULL) for the
 * parameter table at the end of the page. */
void ew_report_param(ew_report_t *r, const char *group, const char *name, const char *value, const char *unit);
/* The same with a formatted value. */
void ew_report_paramf(ew_report_t *r, const char *group, const char *name, const char *unit, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Record a step's wall time (seconds) for the timing table (a total row is
 * added when the page is written). */
void ew_report_timing(ew_report_t *r, const char *step, double seconds);
/* The HTML of the page so far, complete (what ew_report_write writes);
 * returned in *out, owned by the caller (free with ew_strbuf_free).
 * EW_ERR_NOMEM when any earlier append failed. */
ew_status_t ew_report_render(const ew_report_t *r, ew_strbuf_t *out);
/* Render and write the page to path atomically. Errors: EW_ERR_NOMEM, or
 * EW_ERR_IO naming the path (no partial file is left). */
ew_status_t ew_report_write(const ew_report_t *r, const char *path);

#endif
