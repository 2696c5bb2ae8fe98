/* libFuzzer target: the safetensors parser on arbitrary bytes (parse from
 * memory, then read every tensor back through the converting getters). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ew_safetensors_t st;
    if (ew_safetensors_parse(data, size, "fuzz.safetensors", &st) != EW_OK) return 0;
    for (size_t i = 0; i < st.n; i++) {
        size_t c = st.t[i].count;
        float *f = malloc((c + 1) * sizeof(float));
        int64_t *v = malloc((c + 1) * sizeof(int64_t));
        if (f && v) {
            (void)ew_safetensors_get_f32(&st, st.t[i].name, f, c);
            (void)ew_safetensors_get_i64(&st, st.t[i].name, v, c);
        }
        free(f);
        free(v);
    }
    (void)ew_safetensors_meta(&st, "format");
    ew_safetensors_free(&st);
    return 0;
}
