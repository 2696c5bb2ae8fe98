/* ewald io: atomic structures (PDB and mmCIF).
 *
 * A structure is a flat list of atoms (structure-of-arrays). Coordinates
 * are Cartesian Angstrom as in the file. Selection rules applied by the
 * readers (documented in docs/formats.md):
 *   - first MODEL only;
 *   - alternate locations: per residue atom, the conformer with the highest
 *     occupancy is kept (the first one on a tie), its occupancy kept as read;
 *   - waters (HOH/WAT/DOD), hydrogens (H, D) and HETATM records are kept
 *     unless the options drop them.
 */
#ifndef EW_IO_STRUCTURE_H
#define EW_IO_STRUCTURE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct {
    size_t n_atoms;
    float *xyz;          /* (n_atoms, 3) Cartesian coordinates, Angstrom */
    uint8_t *z;          /* (n_atoms) atomic number, 1..98 */
    int8_t *charge;      /* (n_atoms) formal charge (e.g. +2 for Fe2+), 0 if absent */
    float *occupancy;    /* (n_atoms) 0..1 */
    float *b_factor;     /* (n_atoms) isotropic B, Angstrom^2 (B = 8 pi^2 <u^2>) */
    uint8_t *hetatm;     /* (n_atoms) 1 for HETATM records */
    char *chain;         /* (n_atoms) chain id, first character (auth_asym_id in mmCIF) */
    int32_t *res_seq;    /* (n_atoms) residue number */
    char (*res_name)[4]; /* (n_atoms) residue name, NUL-terminated */
    char (*atom_name)[5];/* (n_atoms) atom name, NUL-terminated */
    char source[256];    /* file the structure was read from (for messages, metadata) */
} ew_structure_t;

typedef struct {
    int drop_waters;     /* drop HOH, WAT, DOD residues */
    int drop_hydrogens;  /* drop H and D atoms */
    int drop_hetatm;     /* drop all HETATM records (waters included) */
} ew_structure_options_t;

/* Read a PDB or mmCIF file (chosen by content: "data_" block => mmCIF).
 * opts may be NULL (keep everything). On error *s is left empty and the
 * message names the file, the line and the problem. */
ew_status_t ew_structure_read(const char *path, const ew_structure_options_t *opts, ew_structure_t *s);

/* Read from memory (used by fuzzers and tests); name is used in messages. */
ew_status_t ew_structure_parse(const char *data, size_t len, const char *name,
                               const ew_structure_options_t *opts, ew_structure_t *s);

/* Free all arrays; s may be NULL; s is left empty. */
void ew_structure_free(ew_structure_t *s);

/* Atomic number of an element symbol ("C", "Fe", case-insensitive), or 0. */
int ew_element_z(const char *symbol);
/* Element symbol of an atomic number 1..98 ("?" otherwise). */
const char *ew_element_symbol(int z);
/* Standard atomic weight in g/mol (Daltons) of element z (0 if unknown). */
double ew_element_mass(int z);

/* Composition summary of a structure. */
typedef struct {
    size_t n_atoms;
    size_t count_by_z[99];  /* atoms per atomic number */
    double electrons;       /* sum of (Z - charge) x occupancy */
    double mass_da;         /* sum of atomic masses x occupancy, Daltons */
    double centre[3];       /* centre of mass, Angstrom */
    double radius_gyration; /* mass-weighted, Angstrom */
    double max_extent;      /* largest distance of an atom from the centre of mass, Angstrom */
    double bbox_min[3], bbox_max[3];
} ew_structure_summary_t;

void ew_structure_summarize(const ew_structure_t *s, ew_structure_summary_t *sum);

/* Translate so the centre of mass is at the origin. */
void ew_structure_center(ew_structure_t *s);

#endif
