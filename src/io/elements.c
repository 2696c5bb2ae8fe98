/* ewald io: element table (symbols and standard atomic weights, Z 1..98).
 *
 * Weights are the IUPAC standard (conventional, abridged) atomic weights in
 * g/mol; for elements without a stable isotope (Tc, Pm, Po..Ac, Np..Cf) the
 * mass number of the longest-lived isotope is used, as in the IUPAC table.
 */
#include <ctype.h>
#include <string.h>

#include "io/structure.h"

#define EW_N_ELEMENTS 98

static const char *const k_symbols[EW_N_ELEMENTS + 1] = {
    "?",
    "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", /* 1-10 */
    "Na", "Mg", "Al", "Si", "P",  "S",  "Cl", "Ar", "K",  "Ca", /* 11-20 */
    "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", /* 21-30 */
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", /* 31-40 */
    "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", /* 41-50 */
    "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", /* 51-60 */
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", /* 61-70 */
    "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", /* 71-80 */
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", /* 81-90 */
    "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf"              /* 91-98 */
};

static const double k_mass[EW_N_ELEMENTS + 1] = {
    0.0,
    1.008,   4.0026,  6.94,    9.0122,  10.81,   12.011,  14.007,  15.999,  18.998,  20.180,
    22.990,  24.305,  26.982,  28.085,  30.974,  32.06,   35.45,   39.95,   39.098,  40.078,
    44.956,  47.867,  50.942,  51.996,  54.938,  55.845,  58.933,  58.693,  63.546,  65.38,
    69.723,  72.630,  74.922,  78.971,  79.904,  83.798,  85.468,  87.62,   88.906,  91.224,
    92.906,  95.95,   98.0,    101.07,  102.91,  106.42,  107.87,  112.41,  114.82,  118.71,
    121.76,  127.60,  126.90,  131.29,  132.91,  137.33,  138.91,  140.12,  140.91,  144.24,
    145.0,   150.36,  151.96,  157.25,  158.93,  162.50,  164.93,  167.26,  168.93,  173.05,
    174.97,  178.49,  180.95,  183.84,  186.21,  190.23,  192.22,  195.08,  196.97,  200.59,
    204.38,  207.2,   208.98,  209.0,   210.0,   222.0,   223.0,   226.0,   227.0,   232.04,
    231.04,  238.03,  237.0,   244.0,   243.0,   247.0,   247.0,   251.0
};

int ew_element_z(const char *symbol)
{
    if (!symbol) return 0;
    while (*symbol == ' ') symbol++;
    size_t n = 0;
    char s[3] = {0, 0, 0};
    while (symbol[n] && symbol[n] != ' ' && n < 3) n++;
    if (n == 0 || n > 2) return 0;
    s[0] = (char)toupper((unsigned char)symbol[0]);
    if (n == 2) s[1] = (char)tolower((unsigned char)symbol[1]);
    for (size_t i = n; symbol[i]; i++)
        if (symbol[i] != ' ') return 0;
    /* deuterium and tritium are hydrogen */
    if (!strcmp(s, "D") || !strcmp(s, "T")) return 1;
    for (int z = 1; z <= EW_N_ELEMENTS; z++)
        if (!strcmp(k_symbols[z], s)) return z;
    return 0;
}

const char *ew_element_symbol(int z)
{
    return (z >= 1 && z <= EW_N_ELEMENTS) ? k_symbols[z] : "?";
}

double ew_element_mass(int z)
{
    return (z >= 1 && z <= EW_N_ELEMENTS) ? k_mass[z] : 0.0;
}
