/* libFuzzer target: Dragonfly EMC photon files (io/emcfile.h).
 * Any input must either parse into a consistent structure or fail with a
 * format error; never crash, leak, read out of bounds or allocate beyond
 * what the input's length can justify. Run: build-fuzz/fuzz_emc fuzz/corpus/emc */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/emcfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ew_emc_photons_t p;
    ew_status_t st = ew_emc_photons_parse(data, size, "fuzz.emc", &p);
    if (st != EW_OK) {
        if (st != EW_ERR_FORMAT && st != EW_ERR_NOMEM) abort();
        if (p.ones_off || p.place_ones || p.num_frames) abort(); /* left empty */
        return 0;
    }
    /* invariants of a parsed file */
    for (size_t d = 0; d < p.num_frames; d++) {
        if (p.ones_off[d + 1] < p.ones_off[d] || p.multi_off[d + 1] < p.multi_off[d]) abort();
        for (int64_t i = p.ones_off[d]; i < p.ones_off[d + 1]; i++)
            if (p.place_ones[i] < 0 || p.place_ones[i] >= p.num_pix) abort();
        for (int64_t i = p.multi_off[d]; i < p.multi_off[d + 1]; i++)
            if (p.place_multi[i] < 0 || p.place_multi[i] >= p.num_pix || p.count_multi[i] < 1) abort();
        if (ew_emc_photons_frame_total(&p, d) < 0) abort();
    }
    if (p.num_pix <= (1 << 16) && p.num_frames > 0) {
        float *f = malloc((size_t)p.num_pix * sizeof *f);
        if (f) {
            for (size_t d = 0; d < p.num_frames && d < 64; d++) {
                ew_emc_photons_to_dense(&p, d, f);
                double sum = 0;
                for (int t = 0; t < p.num_pix; t++) sum += f[t];
                /* floats hold counts exactly only up to 2^24: compare relatively */
                double tot = (double)ew_emc_photons_frame_total(&p, d);
                if (fabs(sum - tot) > 1e-6 * tot) abort();
            }
            free(f);
        }
    }
    ew_emc_photons_free(&p);
    return 0;
}
