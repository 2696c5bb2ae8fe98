/* libFuzzer target: MRC2014 header and data parsing (ew_mrc_parse). */
#include <stddef.h>
#include <stdint.h>

#include "io/mrc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ew_log_set_level(EW_LOG_ERROR);
    ew_mrc_t m;
    if (ew_mrc_parse(data, size, "fuzz", &m) == EW_OK) {
        char desc[512];
        ew_mrc_header_describe(&m.header, desc, sizeof desc);
        volatile float sink = 0;
        for (size_t i = 0; i < (size_t)m.nx * m.ny * m.nz; i += 97) sink += m.data[i];
        (void)sink;
        ew_mrc_free(&m);
    }
    return 0;
}
