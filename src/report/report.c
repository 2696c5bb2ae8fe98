/* ewald report: HTML page builder (see report.h). */
#include "report/report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- text buffer ---------- */

static int sb_reserve(ew_strbuf_t *b, size_t extra)
{
    if (b->failed) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2) {
            b->failed = 1;
            return 0;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void ew_strbuf_append(ew_strbuf_t *b, const char *s, size_t len)
{
    if (!sb_reserve(b, len)) return;
    if (len) memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = 0;
}

void ew_strbuf_puts(ew_strbuf_t *b, const char *s)
{
    if (s) ew_strbuf_append(b, s, strlen(s));
}

static void sb_vprintf(ew_strbuf_t *b, const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0 || !sb_reserve(b, (size_t)n)) return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void ew_strbuf_printf(ew_strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

void ew_strbuf_html(ew_strbuf_t *b, const char *s)
{
    if (!s) return;
    const char *run = s;
    for (; *s; s++) {
        const char *ent = NULL;
        switch (*s) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: break;
        }
        if (ent) {
            ew_strbuf_append(b, run, (size_t)(s - run));
            ew_strbuf_puts(b, ent);
            run = s + 1;
        }
    }
    ew_strbuf_append(b, run, (size_t)(s - run));
}

void ew_strbuf_free(ew_strbuf_t *b)
{
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

void ew_base64_append(ew_strbuf_t *b, const unsigned char *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out = (n + 2) / 3 * 4;
    if (!sb_reserve(b, out)) return;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)d[i] << 16;
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = '=', *o++ = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8;
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = '=';
    }
    b->len += out;
    b->data[b->len] = 0;
}

/* ---------- report ---------- */

typedef struct {
    char *group, *name, *value, *unit;
} param_t;

typedef struct {
    char *step;
    double seconds;
} timing_t;

struct ew_report {
    char *title;
    ew_strbuf_t subtitle;
    ew_strbuf_t toc;   /* <li> entries */
    ew_strbuf_t body;  /* sections */
    int in_section;
    ew_strbuf_t front_toc, front_body; /* sections placed before the others (ew_report_front) */
    int front, front_in_section;
    param_t *params;
    size_t nparams, capparams;
    timing_t *timings;
    size_t ntimings, captimings;
    int failed;
};

static char *dup_or_empty(const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

ew_report_t *ew_report_new(const char *title)
{
    ew_report_t *r = calloc(1, sizeof *r);
    if (!r || !(r->title = dup_or_empty(title))) {
        free(r);
        ew_fail(EW_ERR_NOMEM, "report: out of memory");
        return NULL;
    }
    return r;
}

void ew_report_free(ew_report_t *r)
{
    if (!r) return;
    free(r->title);
    ew_strbuf_free(&r->subtitle);
    ew_strbuf_free(&r->toc);
    ew_strbuf_free(&r->body);
    ew_strbuf_free(&r->front_toc);
    ew_strbuf_free(&r->front_body);
    for (size_t i = 0; i < r->nparams; i++) {
        free(r->params[i].group), free(r->params[i].name);
        free(r->params[i].value), free(r->params[i].unit);
    }
    free(r->params);
    for (size_t i = 0; i < r->ntimings; i++) free(r->timings[i].step);
    free(r->timings);
    free(r);
}

void ew_report_front(ew_report_t *r, int on)
{
    on = on ? 1 : 0;
    if (on == r->front) return;
    ew_strbuf_t t = r->toc, b = r->body;
    int in = r->in_section;
    r->toc = r->front_toc, r->body = r->front_body, r->in_section = r->front_in_section;
    r->front_toc = t, r->front_body = b, r->front_in_section = in;
    r->front = on;
}

void ew_report_subtitle(ew_report_t *r, const char *text)
{
    if (r->subtitle.len) ew_strbuf_puts(&r->subtitle, "<br>");
    ew_strbuf_html(&r->subtitle, text);
}

static void close_section(ew_report_t *r)
{
    if (r->in_section) ew_strbuf_puts(&r->body, "</section>\n");
    r->in_section = 0;
}

static void put_id(ew_strbuf_t *b, const char *id)
{
    for (const char *c = id; *c; c++) {
        char ch = *c;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                 ch == '_';
        ew_strbuf_append(b, ok ? &ch : "_", 1);
    }
}

void ew_report_section(ew_report_t *r, const char *id, const char *title)
{
    close_section(r);
    ew_strbuf_puts(&r->body, "<section id=\"");
    put_id(&r->body, id);
    ew_strbuf_puts(&r->body, "\">\n<h2>");
    ew_strbuf_html(&r->body, title);
    ew_strbuf_puts(&r->body, "</h2>\n");
    ew_strbuf_puts(&r->toc, "<li><a href=\"#");
    put_id(&r->toc, id);
    ew_strbuf_puts(&r->toc, "\">");
    ew_strbuf_html(&r->toc, title);
    ew_strbuf_puts(&r->toc, "</a></li>\n");
    r->in_section = 1;
}

void ew_report_subsection(ew_report_t *r, const char *title)
{
    ew_strbuf_puts(&r->body, "<h3>");
    ew_strbuf_html(&r->body, title);
    ew_strbuf_puts(&r->body, "</h3>\n");
}

static void vtext(ew_strbuf_t *b, const char *fmt, va_list ap)
{
    ew_strbuf_t t = {0};
    sb_vprintf(&t, fmt, ap);
    if (t.failed) b->failed = 1;
    ew_strbuf_html(b, t.data);
    ew_strbuf_free(&t);
}

void ew_report_text(ew_report_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ew_strbuf_puts(&r->body, "<p>");
    vtext(&r->body, fmt, ap);
    ew_strbuf_puts(&r->body, "</p>\n");
    va_end(ap);
}

void ew_report_note(ew_report_t *r, const char *kind, const char *fmt, ...)
{
    const char *k = kind && (!strcmp(kind, "warn") || !strcmp(kind, "skip")) ? kind : "info";
    va_list ap;
    va_start(ap, fmt);
    ew_strbuf_printf(&r->body, "<p class=\"note %s\">", k);
    if (!strcmp(k, "skip")) ew_strbuf_puts(&r->body, "<b>Not run.</b> ");
    vtext(&r->body, fmt, ap);
    ew_strbuf_puts(&r->body, "</p>\n");
    va_end(ap);
}

static ew_status_t read_file(const char *path, unsigned char **data, size_t *n)
{
    *data = NULL, *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open figure: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) break;
        unsigned char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb, cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return ew_fail(EW_ERR_NOMEM, "%s: out of memory reading the figure", path);
    if (err) {
        free(buf);
        return ew_fail(EW_ERR_IO, "%s: read error", path);
    }
    *data = buf, *n = len;
    return EW_OK;
}

static ew_status_t figure_html(ew_report_t *r, const char *png_path, const char *caption)
{
    unsigned char *d;
    size_t n;
    ew_status_t st = read_file(png_path, &d, &n);
    ew_strbuf_puts(&r->body, "<figure>");
    if (st == EW_OK) {
        ew_strbuf_puts(&r->body, "<img alt=\"");
        ew_strbuf_html(&r->body, caption);
        ew_strbuf_puts(&r->body, "\" src=\"data:image/png;base64,");
        ew_base64_append(&r->body, d, n);
        ew_strbuf_puts(&r->body, "\">");
        free(d);
    } else {
        ew_strbuf_puts(&r->body, "<p class=\"note warn\">Figure missing: ");
        ew_strbuf_html(&r->body, ew_error_message());
        ew_strbuf_puts(&r->body, "</p>");
    }
    ew_strbuf_puts(&r->body, "<figcaption>");
    ew_strbuf_html(&r->body, caption);
    ew_strbuf_puts(&r->body, "</figcaption></figure>\n");
    return st;
}

ew_status_t ew_report_figure(ew_report_t *r, const char *png_path, const char *caption)
{
    return figure_html(r, png_path, caption);
}

ew_status_t ew_report_figure_row(ew_report_t *r, int n, const char *const *png_paths, const char *const *captions)
{
    ew_status_t st = EW_OK;
    ew_strbuf_puts(&r->body, "<div class=\"row\">\n");
    for (int i = 0; i < n; i++) {
        ew_status_t s = figure_html(r, png_paths[i], captions[i]);
        if (st == EW_OK) st = s;
    }
    ew_strbuf_puts(&r->body, "</div>\n");
    return st;
}

static void table_html(ew_strbuf_t *b, const char *caption, int ncols, const char *const *header, int nrows,
                       const char *const *cells, int last_bold)
{
    ew_strbuf_puts(b, "<table>");
    if (caption) {
        ew_strbuf_puts(b, "<caption>");
        ew_strbuf_html(b, caption);
        ew_strbuf_puts(b, "</caption>");
    }
    ew_strbuf_puts(b, "\n<tr>");
    for (int c = 0; c < ncols; c++) {
        ew_strbuf_puts(b, "<th>");
        ew_strbuf_html(b, header ? header[c] : NULL);
        ew_strbuf_puts(b, "</th>");
    }
    ew_strbuf_puts(b, "</tr>\n");
    for (int i = 0; i < nrows; i++) {
        ew_strbuf_puts(b, last_bold && i == nrows - 1 ? "<tr class=\"total\">" : "<tr>");
        for (int c = 0; c < ncols; c++) {
            ew_strbuf_puts(b, "<td>");
            ew_strbuf_html(b, cells[(size_t)i * ncols + c]);
            ew_strbuf_puts(b, "</td>");
        }
        ew_strbuf_puts(b, "</tr>\n");
    }
    ew_strbuf_puts(b, "</table>\n");
}

void ew_report_table(ew_report_t *r, const char *caption, int ncols, const char *const *header, int nrows,
                     const char *const *cells)
{
    table_html(&r->body, caption, ncols, header, nrows, cells, 0);
}

void ew_report_param(ew_report_t *r, const char *group, const char *name, const char *value, const char *unit)
{
    if (r->nparams == r->capparams) {
        size_t cap = r->capparams ? 2 * r->capparams : 64;
        param_t *p = realloc(r->params, cap * sizeof *p);
        if (!p) {
            r->failed = 1;
            return;
        }
        r->params = p, r->capparams = cap;
    }
    param_t *p = &r->params[r->nparams];
    p->group = dup_or_empty(group), p->name = dup_or_empty(name);
    p->value = dup_or_empty(value), p->unit = dup_or_empty(unit);
    if (!p->group || !p->name || !p->value || !p->unit) {
        free(p->group), free(p->name), free(p->value), free(p->unit);
        r->failed = 1;
        return;
    }
    r->nparams++;
}

void ew_report_paramf(ew_report_t *r, const char *group, const char *name, const char *unit, const char *fmt, ...)
{
    ew_strbuf_t t = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&t, fmt, ap);
    va_end(ap);
    if (t.failed) r->failed = 1;
    ew_report_param(r, group, name, t.data ? t.data : "", unit);
    ew_strbuf_free(&t);
}

void ew_report_timing(ew_report_t *r, const char *step, double seconds)
{
    if (r->ntimings == r->captimings) {
        size_t cap = r->captimings ? 2 * r->captimings : 32;
        timing_t *t = realloc(r->timings, cap * sizeof *t);
        if (!t) {
            r->failed = 1;
            return;
        }
        r->timings = t, r->captimings = cap;
    }
    if (!(r->timings[r->ntimings].step = dup_or_empty(step))) {
        r->failed = 1;
        return;
    }
    r->timings[r->ntimings++].seconds = seconds;
}

static const char *k_style =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1180px;"
    "margin:0 auto;padding:1.2em 2em;color:#222;line-height:1.45;background:#fff}\n"
    "h1{font-size:1.9em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}\n"
    "h3{margin-top:1.4em;color:#333}.sub{color:#666;margin-top:0}\n"
    "nav{background:#f6f8fa;border:1px solid #e1e4e8;padding:.6em 1.2em;border-radius:6px}\n"
    "nav ol{margin:.3em 0;columns:2}\n"
    "figure{margin:1em 0;display:inline-block;vertical-align:top;max-width:100%}\n"
    "figure img{max-width:100%;border:1px solid #ddd;image-rendering:pixelated}\n"
    "figcaption{font-size:.9em;color:#444;max-width:620px}\n"
    ".row{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}\n"
    ".row figure{flex:1 1 300px;max-width:560px}\n"
    "table{border-collapse:collapse;margin:1em 0;font-size:.92em}\n"
    "caption{text-align:left;font-weight:600;padding-bottom:.3em}\n"
    "th,td{border:1px solid #ddd;padding:.25em .7em;text-align:left}th{background:#f0f3f6}\n"
    "tr.total td{font-weight:700;background:#fafafa}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    ".note{padding:.5em .9em;border-left:4px solid #4a90d9;background:#eef5fc}\n"
    ".note.warn{border-color:#e8a33d;background:#fdf5e8}.note.skip{border-color:#999;background:#f3f3f3;color:#444}\n"
    "footer{margin-top:3em;color:#888;font-size:.85em}\n";

ew_status_t ew_report_render(const ew_report_t *r, ew_strbuf_t *out)
{
    memset(out, 0, sizeof *out);
    ew_strbuf_t *b = out;
    ew_strbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    ew_strbuf_html(b, r->title);
    ew_strbuf_puts(b, "</title>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>\n");
    ew_strbuf_puts(b, k_style);
    ew_strbuf_puts(b, "</style>\n</head>\n<body>\n<h1>");
    ew_strbuf_html(b, r->title);
    ew_strbuf_puts(b, "</h1>\n");
    if (r->subtitle.len) {
        ew_strbuf_puts(b, "<p class=\"sub\">");
        ew_strbuf_append(b, r->subtitle.data, r->subtitle.len);
        ew_strbuf_puts(b, "</p>\n");
    }
    /* with front mode on, the main text sits in front_* (swapped) */
    const ew_strbuf_t *ftoc = r->front ? &r->toc : &r->front_toc, *fbody = r->front ? &r->body : &r->front_body;
    const ew_strbuf_t *mtoc = r->front ? &r->front_toc : &r->toc, *mbody = r->front ? &r->front_body : &r->body;
    int fin = r->front ? r->in_section : r->front_in_section, min = r->front ? r->front_in_section : r->in_section;
    ew_strbuf_puts(b, "<nav><b>Contents</b><ol>\n");
    if (ftoc->len) ew_strbuf_append(b, ftoc->data, ftoc->len);
    if (mtoc->len) ew_strbuf_append(b, mtoc->data, mtoc->len);
    if (r->ntimings) ew_strbuf_puts(b, "<li><a href=\"#timing\">Timing</a></li>\n");
    if (r->nparams) ew_strbuf_puts(b, "<li><a href=\"#parameters\">Parameters</a></li>\n");
    ew_strbuf_puts(b, "</ol></nav>\n");
    if (fbody->len) ew_strbuf_append(b, fbody->data, fbody->len);
    if (fin) ew_strbuf_puts(b, "</section>\n");
    if (mbody->len) ew_strbuf_append(b, mbody->data, mbody->len);
    if (min) ew_strbuf_puts(b, "</section>\n");
    if (r->ntimings) {
        ew_strbuf_puts(b, "<section id=\"timing\">\n<h2>Timing</h2>\n<table><caption>Wall-clock time of each step, "
                          "seconds</caption>\n<tr><th>step</th><th>seconds</th><th>share</th></tr>\n");
        double tot = 0;
        for (size_t i = 0; i < r->ntimings; i++) tot += r->timings[i].seconds;
        for (size_t i = 0; i < r->ntimings; i++) {
            ew_strbuf_puts(b, "<tr><td>");
            ew_strbuf_html(b, r->timings[i].step);
            ew_strbuf_printf(b, "</td><td class=\"num\">%.2f</td><td class=\"num\">%.1f%%</td></tr>\n",
                             r->timings[i].seconds, tot > 0 ? 100 * r->timings[i].seconds / tot : 0.0);
        }
        ew_strbuf_printf(b, "<tr class=\"total\"><td>total</td><td class=\"num\">%.2f</td><td class=\"num\">"
                            "100%%</td></tr>\n</table>\n</section>\n", tot);
    }
    if (r->nparams) {
        ew_strbuf_puts(b, "<section id=\"parameters\">\n<h2>Parameters</h2>\n<p>Every parameter the run used, "
                          "by step.</p>\n<table>\n<tr><th>step</th><th>parameter</th><th>value</th><th>unit</th></tr>\n");
        for (size_t i = 0; i < r->nparams; i++) {
            const param_t *p = &r->params[i];
            ew_strbuf_puts(b, "<tr><td>");
            if (i == 0 || strcmp(p->group, r->params[i - 1].group)) ew_strbuf_html(b, p->group);
            ew_strbuf_puts(b, "</td><td>");
            ew_strbuf_html(b, p->name);
            ew_strbuf_puts(b, "</td><td>");
            ew_strbuf_html(b, p->value);
            ew_strbuf_puts(b, "</td><td>");
            ew_strbuf_html(b, p->unit);
            ew_strbuf_puts(b, "</td></tr>\n");
        }
        ew_strbuf_puts(b, "</table>\n</section>\n");
    }
    ew_strbuf_printf(b, "<footer>Written by ewald %s.</footer>\n</body>\n</html>\n", EW_VERSION);
    if (b->failed || r->failed || r->body.failed || r->toc.failed || r->subtitle.failed || r->front_body.failed ||
        r->front_toc.failed) {
        ew_strbuf_free(b);
        return ew_fail(EW_ERR_NOMEM, "report: out of memory building the page");
    }
    return EW_OK;
}

ew_status_t ew_report_write(const ew_report_t *r, const char *path)
{
    ew_strbuf_t page;
    EW_TRY(ew_report_render(r, &page));
    FILE *f;
    char *tmp;
    ew_status_t st = ew_atomic_open(path, &f, &tmp);
    if (st != EW_OK) {
        ew_strbuf_free(&page);
        return st;
    }
    if (fwrite(page.data, 1, page.len, f) != page.len) {
        ew_atomic_abort(f, tmp);
        ew_strbuf_free(&page);
        return ew_fail(EW_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    ew_strbuf_free(&page);
    return ew_atomic_commit(f, tmp, path);
}
