/* libFuzzer target: particle coordinate files, Topaz TSV and EMAN .box
 * (ew_coords_parse_topaz, ew_coords_parse_box). The first byte chooses the
 * parser; the parsed particles must have finite coordinates. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/coords.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    ew_log_set_level(EW_LOG_ERROR);
    ew_coords_t c;
    const char *text = (const char *)data + 1;
    ew_status_t st = data[0] & 1 ? ew_coords_parse_box(text, size - 1, "fuzz", &c)
                                 : ew_coords_parse_topaz(text, size - 1, "fuzz", &c);
    if (st == EW_OK) {
        for (size_t i = 0; i < c.n; i++)
            if (!isfinite(c.x[i]) || !isfinite(c.y[i])) abort();
        ew_coords_free(&c);
    }
    return 0;
}
