/* ewald io (internal): the tokenizer shared by the STAR and mmCIF readers.
 *
 * STAR (RELION's metadata) and CIF (mmCIF structures) share one lexical
 * syntax: whitespace-separated tokens, '#' comments, values quoted with '
 * or " (a quote closes only before whitespace or the end), and text fields
 * from a ';' at the start of a line to the next line starting with ';'.
 */
#ifndef EW_IO_CIF_LEX_H
#define EW_IO_CIF_LEX_H

#include <stddef.h>

typedef struct {
    const char *data;   /* the text (need not be NUL-terminated) */
    size_t len, pos;    /* its length and the read position */
    size_t line;        /* 1-based line of pos, for messages */
} ew_cif_lex_t;

typedef struct {
    const char *p;      /* token text (quotes and ';' delimiters removed) */
    size_t n;           /* its length */
    int quoted;         /* 1 if quoted or a text field (never a keyword) */
    size_t line;        /* line where it starts */
} ew_cif_tok_t;

/* Next token of x into t. Returns 1 for a token, 0 at the end of input,
 * -1 for an unterminated quote or text field (message set, naming `name`
 * and the line). */
int ew_cif_next(ew_cif_lex_t *x, ew_cif_tok_t *t, const char *name);

#endif
