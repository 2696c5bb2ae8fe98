/* ewald gen: translating simulated MRC files with a trained noise model. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gen/gen.h"
#include "io/mrc.h"
#include "io/png.h"

ew_status_t ew_cut_apply_files(ew_cut_model_t *m, const char *const *in_paths, const char *const *out_paths,
                               const char *const *png_paths, size_t n)
{
    for (size_t f = 0; f < n; f++) {
        ew_mrc_t in = {0};
        EW_TRY(ew_mrc_read(in_paths[f], &in));
        const size_t px = (size_t)in.nx * in.ny;
        float *out = ew_alloc_array(px * (size_t)in.nz, sizeof(float));
        ew_status_t s = out ? EW_OK : ew_fail(EW_ERR_NOMEM, "%s: out of memory", in_paths[f]);
        for (int z = 0; z < in.nz && s == EW_OK; z++) {
            s = ew_cut_translate_image(m, in.data + z * px, in.nx, in.ny, 256, 32, out + z * px);
            if (s != EW_OK) s = ew_fail_context(s, "%s: section %d", in_paths[f], z);
        }
        if (s == EW_OK)
            s = ew_mrc_write(out_paths[f], out, in.nx, in.ny, in.nz, in.pixel_size[0], in.origin, in.is_stack,
                             EW_MRC_FLOAT32);
        if (s == EW_OK && png_paths && png_paths[f]) {
            ew_image_options_t o = ew_image_options_default();
            o.colormap = EW_CMAP_GRAY;
            o.clip_lo = 0.5;
            o.clip_hi = 99.5;
            s = ew_png_write_image(png_paths[f], out, in.nx, in.ny, NULL, &o);
        }
        ew_free(out);
        ew_mrc_free(&in);
        if (s != EW_OK) return s;
    }
    return EW_OK;
}
