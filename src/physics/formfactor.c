/* ewald physics: form-factor lookup in the embedded Waasmaier-Kirfel table. */
#include "physics/formfactor.h"

#include <string.h>

/* Element symbols for messages (Z 1..98); kept here so physics does not
 * depend on the structure reader. */
static const char *const symbols[] = {
    "?",  "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",  "S",
    "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho",
    "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po",
    "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf"};

ew_status_t ew_formfactor_lookup(int z, int charge, ew_formfactor_t *f)
{
    EW_ASSERT(f != NULL);
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < ew_wk_table_len; i++) {
        const ew_wk_entry_t *e = &ew_wk_table[i];
        if (e->z != z || e->charge != charge) continue;
        f->z = z;
        f->charge = charge;
        for (int k = 0; k < 5; k++) {
            f->a[k] = e->a[k];
            f->beta[k] = e->b[k] / 4.0;
        }
        f->c = e->c;
        return EW_OK;
    }
    const char *sym = (z >= 1 && z <= 98) ? symbols[z] : "?";
    return ew_fail(EW_ERR_RANGE, "no Waasmaier-Kirfel form factor for %s (Z = %d) with charge %+d", sym, z,
                   charge);
}

double ew_formfactor_forward(const ew_formfactor_t *f)
{
    double v = f->c;
    for (int i = 0; i < 5; i++) v += f->a[i];
    return v;
}
