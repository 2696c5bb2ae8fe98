/* libFuzzer target: PDB / mmCIF parsing (ew_structure_parse). */
#include <stddef.h>
#include <stdint.h>

#include "io/structure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ew_log_set_level(EW_LOG_ERROR);
    ew_structure_t s;
    if (ew_structure_parse((const char *)data, size, "fuzz", NULL, &s) == EW_OK) {
        ew_structure_summary_t sum;
        ew_structure_summarize(&s, &sum);
        ew_structure_center(&s);
        ew_structure_free(&s);
    }
    ew_structure_options_t o = {1, 1, 1};
    if (ew_structure_parse((const char *)data, size, "fuzz", &o, &s) == EW_OK) ew_structure_free(&s);
    return 0;
}
