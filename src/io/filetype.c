/* ewald io: file format detection (see filetype.h). */
#include "io/filetype.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/h5util.h"

const char *ew_filetype_name(ew_filetype_t t)
{
    static const char *names[] = {"unknown",  "structure (PDB/mmCIF)", "MRC",         "STAR",
                                  "CXI",      "HDF5 volume",           "HDF5",        "Dragonfly photons (.emc)",
                                  "Dragonfly detector", "safetensors", "NumPy .npy", "PNG",
                                  "EMAN .box", "Topaz TSV"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "unknown";
}

static int ext_is(const char *path, const char *list)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot) return 0;
    size_t n = strlen(dot + 1);
    for (const char *c = list; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && !strncasecmp(c, dot + 1, n)) return 1;
        if (!bar) break;
        c = bar + 1;
    }
    return 0;
}

static uint32_t le32(const unsigned char *b) { return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }

/* A line of exactly `want` numbers (want 0: any count), returns the count. */
static int count_numbers(const char *line)
{
    int n = 0;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '\n' || *p == '\r') return n;
        char *end;
        strtod(p, &end);
        if (end == p) return -1;
        n++;
        p = end;
    }
}

static int text_starts_line(const char *buf, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = buf; p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (!strncmp(p, word, n)) return 1;
    }
    return 0;
}

ew_status_t ew_file_detect(const char *path, ew_filetype_t *type)
{
    *type = EW_FILE_UNKNOWN;
    FILE *f = fopen(path, "rb");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    enum { HEAD = 8192 };
    unsigned char *b = calloc(HEAD + 1, 1);
    if (!b) {
        fclose(f);
        return ew_fail(EW_ERR_NOMEM, "out of memory");
    }
    size_t n = fread(b, 1, HEAD, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    static const unsigned char h5sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    static const unsigned char pngsig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ew_filetype_t t = EW_FILE_UNKNOWN;
    if (n >= 8 && !memcmp(b, h5sig, 8)) {
        hid_t file;
        ew_status_t st = ew_h5_open_read(path, &file);
        if (st != EW_OK) {
            free(b);
            return st;
        }
        t = ew_h5_exists(file, "/entry_1/data_1/data") ? EW_FILE_CXI
            : ew_h5_exists(file, "/volume")             ? EW_FILE_H5VOL
                                                        : EW_FILE_HDF5_OTHER;
        H5Fclose(file);
    } else if (n >= 8 && !memcmp(b, pngsig, 8)) {
        t = EW_FILE_PNG;
    } else if (n >= 6 && !memcmp(b, "\x93NUMPY", 6)) {
        t = EW_FILE_NPY;
    } else if (n >= 9 && b[8] == '{' && le32(b + 4) == 0 && le32(b) > 1 && (long)le32(b) + 8 <= size) {
        t = EW_FILE_SAFETENSORS;
    } else if ((n >= 212 && !memcmp(b + 208, "MAP ", 4)) || ext_is(path, "mrc|mrcs|map|rec|st")) {
        t = EW_FILE_MRC;
    } else if (ext_is(path, "emc")) {
        t = EW_FILE_EMC;
    } else {
        int emc = n >= 1024 && (int32_t)le32(b) > 0 && (int32_t)le32(b + 4) > 0 && le32(b + 8) <= 2;
        for (int i = 3; emc && i < 256; i++)
            if (le32(b + 4 * i)) emc = 0;
        const char *s = (const char *)b;
        int text = 1;
        for (size_t i = 0; i < n && text; i++)
            if (!b[i] || (b[i] < 32 && !isspace(b[i]))) text = 0;
        while (*s && isspace((unsigned char)*s)) s++;
        if (emc) {
            t = EW_FILE_EMC;
        } else if (!text) {
            t = EW_FILE_UNKNOWN;
        } else if (!strncmp(s, "data_", 5) || text_starts_line(s, "data_")) {
            t = strstr(s, "_atom_site.") ? EW_FILE_STRUCTURE : ext_is(path, "cif|mmcif") ? EW_FILE_STRUCTURE
                                                                                         : EW_FILE_STAR;
        } else if (ext_is(path, "star")) {
            t = EW_FILE_STAR;
        } else if (ext_is(path, "pdb|ent|cif|mmcif") || text_starts_line(s, "ATOM  ") ||
                   text_starts_line(s, "HETATM") || text_starts_line(s, "HEADER") || text_starts_line(s, "CRYST1")) {
            t = EW_FILE_STRUCTURE;
        } else if (ext_is(path, "box")) {
            t = EW_FILE_BOX;
        } else if (strstr(s, "image_name") && strstr(s, "x_coord") && strstr(s, "y_coord")) {
            t = EW_FILE_TOPAZ;
        } else {
            int first = count_numbers(s);
            const char *nl = strchr(s, '\n');
            int second = nl ? count_numbers(nl + 1) : -1;
            if ((first == 1 || first == 3) && second == 5) t = EW_FILE_DETECTOR;
        }
    }
    free(b);
    *type = t;
    return EW_OK;
}
