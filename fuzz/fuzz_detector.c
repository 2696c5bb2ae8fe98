/* libFuzzer target: Dragonfly ASCII detector files (io/emcfile.h).
 * Run: build-fuzz/fuzz_detector fuzz/corpus/detector */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/emcfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ew_emc_detector_t det;
    ew_status_t st = ew_emc_detector_parse(data, size, "fuzz.dat", &det);
    if (st != EW_OK) {
        if (st != EW_ERR_FORMAT && st != EW_ERR_NOMEM) abort();
        if (det.q || det.mask || det.num_pix) abort();
        return 0;
    }
    if (det.num_pix <= 0 || (size_t)det.num_pix > size) abort();
    for (int t = 0; t < det.num_pix; t++) {
        if (det.mask[t] > 2 || !isfinite(det.corr[t])) abort();
        for (int k = 0; k < 3; k++)
            if (!isfinite(det.q[3 * t + k])) abort();
    }
    if (det.ewald_rad > 0) {
        float *s = malloc((size_t)det.num_pix * 3 * sizeof *s);
        if (s && ew_emc_detector_to_s(&det, 1.5, s) != EW_OK) abort();
        free(s);
    }
    ew_emc_detector_free(&det);
    return 0;
}
