/* ewald io: volumes in MRC or HDF5 files (see volume.h). */
#include "io/volume.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "io/mrc.h"

int ew_file_is_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, 8, f);
    fclose(f);
    return n == 8 && !memcmp(b, sig, 8);
}

const char *ew_volume_kind_name(ew_volume_kind_t k)
{
    return k == EW_VOLUME_INTENSITY ? "intensity" : "density";
}

void ew_volume_free(ew_volume_t *v)
{
    if (!v) return;
    ew_free(v->data);
    ew_h5meta_free(&v->meta);
    memset(v, 0, sizeof *v);
}

static const char *ext_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot ? dot + 1 : "";
}

ew_status_t ew_volume_read(const char *path, int want, ew_volume_t *v)
{
    memset(v, 0, sizeof *v);
    if (ew_file_is_hdf5(path)) {
        ew_h5vol_t h;
        EW_TRY(ew_h5vol_read(path, &h));
        ew_volume_kind_t k = h.space == EW_VOL_RECIPROCAL ? EW_VOLUME_INTENSITY : EW_VOLUME_DENSITY;
        if (want >= 0 && (int)k != want) {
            ew_h5vol_free(&h);
            return ew_fail(EW_ERR_FORMAT, "%s: /volume holds a %s volume (space \"%s\"), expected a %s volume", path,
                           ew_volume_kind_name(k), k == EW_VOLUME_INTENSITY ? "reciprocal" : "real",
                           ew_volume_kind_name((ew_volume_kind_t)want));
        }
        v->nx = h.nx;
        v->ny = h.ny;
        v->nz = h.nz;
        v->kind = k;
        v->voxel = h.voxel[0];
        snprintf(v->units, sizeof v->units, "%s", h.units ? h.units : "");
        snprintf(v->format, sizeof v->format, "hdf5");
        v->data = h.data;
        v->meta = h.meta;
        h.data = NULL;
        memset(&h.meta, 0, sizeof h.meta);
        ew_h5vol_free(&h);
        return EW_OK;
    }
    ew_mrc_t m;
    EW_TRY(ew_mrc_read(path, &m));
    if (m.is_stack && m.nz > 1) {
        ew_status_t st = ew_fail(EW_ERR_FORMAT, "%s: an image stack of %d images (ispg 0), not a volume", path, m.nz);
        ew_mrc_free(&m);
        return st;
    }
    v->nx = m.nx;
    v->ny = m.ny;
    v->nz = m.nz;
    v->kind = want == EW_VOLUME_INTENSITY ? EW_VOLUME_INTENSITY : EW_VOLUME_DENSITY;
    v->voxel = m.pixel_size[0];
    snprintf(v->format, sizeof v->format, "mrc");
    v->data = m.data;
    m.data = NULL;
    ew_mrc_free(&m);
    return EW_OK;
}

ew_status_t ew_volume_write(const char *path, const ew_volume_t *v)
{
    const char *e = ext_of(path);
    if (!strcasecmp(e, "h5") || !strcasecmp(e, "hdf5") || !strcasecmp(e, "hdf")) {
        if (!(v->voxel > 0))
            return ew_fail(EW_ERR_ARG, "%s: the volume's voxel size is unknown (give it with --voxel)", path);
        ew_h5vol_t h;
        memset(&h, 0, sizeof h);
        h.nx = v->nx;
        h.ny = v->ny;
        h.nz = v->nz;
        h.space = v->kind == EW_VOLUME_INTENSITY ? EW_VOL_RECIPROCAL : EW_VOL_REAL;
        int dims[3] = {v->nx, v->ny, v->nz};
        for (int a = 0; a < 3; a++) {
            h.voxel[a] = v->voxel;
            h.origin[a] = v->kind == EW_VOLUME_INTENSITY ? -(double)(dims[a] / 2) * v->voxel : 0.0;
        }
        h.units = (char *)(v->units[0] ? v->units
                                        : v->kind == EW_VOLUME_INTENSITY ? "photons" : "electrons/Angstrom^3");
        h.data = v->data;
        h.meta = v->meta;
        return ew_h5vol_write(path, &h);
    }
    if (!strcasecmp(e, "mrc") || !strcasecmp(e, "map") || !strcasecmp(e, "rec")) {
        double origin[3] = {0, 0, 0};
        if (v->kind == EW_VOLUME_INTENSITY) {
            origin[0] = -(double)(v->nx / 2) * v->voxel;
            origin[1] = -(double)(v->ny / 2) * v->voxel;
            origin[2] = -(double)(v->nz / 2) * v->voxel;
        }
        return ew_mrc_write(path, v->data, v->nx, v->ny, v->nz, v->voxel > 0 ? v->voxel : 0, origin, 0,
                            EW_MRC_FLOAT32);
    }
    return ew_fail(EW_ERR_ARG, "%s: unknown volume extension '.%s' (use .mrc, .map, .h5 or .hdf5)", path, e);
}
