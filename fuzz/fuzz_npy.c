/* libFuzzer target: NumPy .npy parsing (ew_npy_parse). */
#include <stddef.h>
#include <stdint.h>

#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ew_log_set_level(EW_LOG_ERROR);
    ew_npy_t a;
    if (ew_npy_parse(data, size, "fuzz", &a) == EW_OK) {
        volatile double sink = 0;
        for (size_t i = 0; i < a.count; i += 31) sink += a.data[i];
        (void)sink;
        ew_npy_free(&a);
    }
    return 0;
}
