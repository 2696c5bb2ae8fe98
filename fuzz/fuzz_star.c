/* libFuzzer target: STAR parsing (ew_star_parse) and the getters. */
#include <stddef.h>
#include <stdint.h>

#include "io/star.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ew_log_set_level(EW_LOG_ERROR);
    ew_star_t s;
    if (ew_star_parse((const char *)data, size, "fuzz", &s) != EW_OK) return 0;
    char desc[1024];
    ew_star_describe(&s, desc, sizeof desc);
    ew_star_col_t c;
    const char *cols[] = {"rlnImageName", "rlnDefocusU", "rlnVoltage", "rlnImageSize"};
    for (int k = 0; k < 4; k++) {
        if (ew_star_column(&s, NULL, cols[k], &c) != EW_OK) continue;
        for (size_t r = 0; r < ew_star_rows(&c) && r < 64; r++) {
            double d;
            long i, idx;
            char path[64];
            ew_star_get_double(&c, r, &d);
            ew_star_get_int(&c, r, &i);
            ew_star_split_image_name(ew_star_get_string(&c, r), &idx, path, sizeof path);
        }
    }
    ew_star_free(&s);
    return 0;
}
