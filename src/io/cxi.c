/* ewald io: CXI (HDF5) diffraction files, streamed writer and reader. */
#define _GNU_SOURCE /* O_DIRECT */
#include "io/cxi.h"

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"

#define EW_EV_J 1.602176634e-19 /* J per eV (exact, SI 2019) */

#define P_DATA "/entry_1/data_1/data"
#define P_MASK "/entry_1/data_1/mask"
#define P_DET "/entry_1/instrument_1/detector_1"
#define P_SRC "/entry_1/instrument_1/source_1"
#define P_GT "/entry_1/ground_truth"

/* ------------------------------------------------------------- geometry */

void ew_cxi_geometry_free(ew_cxi_geometry_t *g)
{
    if (!g) return;
    ew_free(g->s);
    ew_free(g->mask);
    ew_free(g->solid_angle);
    ew_free(g->polarization);
    memset(g, 0, sizeof *g);
}

ew_status_t ew_cxi_geometry_alloc(ew_cxi_geometry_t *g, int width, int height, int with_extras)
{
    memset(g, 0, sizeof *g);
    if (width <= 0 || height <= 0)
        return ew_fail(EW_ERR_ARG, "CXI geometry: detector size %d x %d is not positive", width, height);
    size_t npix;
    EW_TRY(ew_size_mul((size_t)width, (size_t)height, &npix));
    g->width = width;
    g->height = height;
    g->s = ew_calloc_array(npix * 3, sizeof *g->s);
    g->mask = ew_calloc_array(npix, 1);
    if (with_extras) {
        g->solid_angle = ew_calloc_array(npix, sizeof *g->solid_angle);
        g->polarization = ew_calloc_array(npix, sizeof *g->polarization);
    }
    if (!g->s || !g->mask || (with_extras && (!g->solid_angle || !g->polarization))) {
        ew_cxi_geometry_free(g);
        return EW_ERR_NOMEM;
    }
    return EW_OK;
}

ew_status_t ew_cxi_geometry_flat_s(ew_cxi_geometry_t *g)
{
    if (!(g->distance_m > 0) || !(g->pixel_x_m > 0) || !(g->pixel_y_m > 0) || !(g->wavelength_a > 0))
        return ew_fail(EW_ERR_ARG, "CXI geometry: distance %g m, pixel %g x %g m and wavelength %g A must be positive",
                       g->distance_m, g->pixel_x_m, g->pixel_y_m, g->wavelength_a);
    const double D = g->distance_m, inv_l = 1.0 / g->wavelength_a;
    for (int iy = 0; iy < g->height; iy++) {
        for (int ix = 0; ix < g->width; ix++) {
            size_t p = (size_t)iy * (size_t)g->width + (size_t)ix;
            double x = (ix - g->center_x) * g->pixel_x_m, y = (iy - g->center_y) * g->pixel_y_m;
            double rho2 = x * x + y * y, r = sqrt(rho2 + D * D);
            g->s[3 * p + 0] = (float)(x / r * inv_l);
            g->s[3 * p + 1] = (float)(y / r * inv_l);
            g->s[3 * p + 2] = (float)(-rho2 / (r * (r + D)) * inv_l); /* (D/r - 1)/lambda without cancellation */
            if (g->solid_angle) g->solid_angle[p] = (float)(g->pixel_x_m * g->pixel_y_m * D / (r * r * r));
            if (g->polarization) g->polarization[p] = (float)(1.0 - x * x / (r * r));
        }
    }
    return EW_OK;
}

ew_status_t ew_cxi_geometry_copy(ew_cxi_geometry_t *dst, const ew_cxi_geometry_t *src)
{
    EW_TRY(ew_cxi_geometry_alloc(dst, src->width, src->height, 0));
    size_t npix = (size_t)src->width * (size_t)src->height;
    float *s = dst->s;
    uint8_t *m = dst->mask;
    *dst = *src;
    dst->s = s;
    dst->mask = m;
    dst->solid_angle = dst->polarization = NULL;
    memcpy(dst->s, src->s, npix * 3 * sizeof *s);
    memcpy(dst->mask, src->mask, npix);
    if (src->solid_angle) {
        dst->solid_angle = ew_alloc_array(npix, sizeof(float));
        if (!dst->solid_angle) goto nomem;
        memcpy(dst->solid_angle, src->solid_angle, npix * sizeof(float));
    }
    if (src->polarization) {
        dst->polarization = ew_alloc_array(npix, sizeof(float));
        if (!dst->polarization) goto nomem;
        memcpy(dst->polarization, src->polarization, npix * sizeof(float));
    }
    return EW_OK;
nomem:
    ew_cxi_geometry_free(dst);
    return EW_ERR_NOMEM;
}

#define CXI_MASKED_BITS (1u | 2u | 4u | 8u | 16u | 32u | 64u | 128u | 512u)

uint32_t ew_cxi_mask_to_bits(uint8_t code) { return code >= 2 ? 128u : code == 1 ? 256u : 0u; }

uint8_t ew_cxi_mask_from_bits(uint32_t bits)
{
    if (bits & CXI_MASKED_BITS) return 2;
    if (bits & 256u) return 1;
    return 0;
}

/* --------------------------------------------------------------- writer */

enum { DS_DATA, DS_EXPECTED, DS_QUAT, DS_FLUENCE, DS_PHOTONS, DS_COUNT };
static const char *const ds_path[DS_COUNT] = {P_DATA, P_GT "/expected", P_GT "/quaternions", P_GT "/fluence",
                                              P_GT "/photons"};

struct ew_cxi_writer {
    char *path, *tmp;
    hid_t file;
    hid_t ds[DS_COUNT];
    long long n;          /* fixed N, or -1 when extendible */
    long long extent[DS_COUNT];
    int width, height;
    uint8_t *written;     /* fixed N: which patterns were written */
    int direct[DS_COUNT]; /* whole (1, H, W) chunks written raw (no filter, memory layout = file type) */
    ew_cxi_dtype_t dtype; /* storage type of DS_DATA */
    void *stage;          /* integer staging for DS_DATA (stage_rows rows) */
    size_t stage_rows;
    /* direct_io: DS_DATA is contiguous (allocated at creation, 4096-aligned)
     * and written with O_DIRECT by POSIX AIO from two aligned staging
     * buffers, bypassing the page cache */
    int dio_fd;           /* -1: off */
    haddr_t dio_base;     /* file address of pattern 0 (contiguous dataset) */
    size_t dio_row, dio_cap; /* bytes per pattern; rows per staging buffer */
    void *dio_buf[2];
    struct aiocb dio_cb[2];
    int dio_busy[2], dio_slot;
    long long dio_rows[2][2]; /* patterns [first, end) of each slot's write in flight */
};

#define DIO_ALIGN 4096
#define DIO_ROWS 64 /* patterns per asynchronous write */

/* Wait for slot's write, if any: 0, or the errno of its failure (-1 for
 * a short write). */
static int dio_wait_quiet(ew_cxi_writer_t *w, int slot)
{
    if (!w->dio_busy[slot]) return 0;
    struct aiocb *cb = &w->dio_cb[slot];
    const struct aiocb *list[1] = {cb};
    int e;
    while ((e = aio_error(cb)) == EINPROGRESS) aio_suspend(list, 1, NULL);
    ssize_t r = aio_return(cb);
    w->dio_busy[slot] = 0;
    return e != 0 ? e : r != (ssize_t)cb->aio_nbytes ? -1 : 0;
}

/* The same, EW_ERR_IO naming the file if the write failed. */
static ew_status_t dio_wait(ew_cxi_writer_t *w, int slot)
{
    int e = dio_wait_quiet(w, slot);
    if (e != 0)
        return ew_fail(EW_ERR_IO, "%s: dataset %s: direct write of %zu bytes at %lld failed (%s)", w->path, P_DATA,
                       (size_t)w->dio_cb[slot].aio_nbytes, (long long)w->dio_cb[slot].aio_offset,
                       e > 0 ? strerror(e) : "short write: disk full?");
    return EW_OK;
}

/* Wait for every write (errors ignored: the caller is discarding) and close. */
static void dio_close(ew_cxi_writer_t *w)
{
    if (w->dio_fd < 0) return;
    for (int i = 0; i < 2; i++) (void)dio_wait_quiet(w, i);
    close(w->dio_fd);
    w->dio_fd = -1;
}

static void round_to_u16(const float *in, size_t n, uint16_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint16_t)ew_cxi_round_count(in[i], 65535u);
    }
}

static void round_to_i32(const float *in, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (int32_t)ew_cxi_round_count(in[i], INT32_MAX);
    }
}

void ew_cxi_writer_abort(ew_cxi_writer_t *w)
{
    if (!w) return;
    dio_close(w);
    for (int i = 0; i < DS_COUNT; i++)
        if (w->ds[i] >= 0) H5Dclose(w->ds[i]);
    if (w->file >= 0) H5Fclose(w->file);
    if (w->tmp) remove(w->tmp);
    free(w->tmp);
    free(w->path);
    for (int i = 0; i < 2; i++) free(w->dio_buf[i]);
    free(w->written);
    ew_free(w->stage);
    free(w);
}

static ew_status_t write_geometry(ew_cxi_writer_t *w, const ew_cxi_geometry_t *g, const ew_cxi_write_options_t *o)
{
    const char *fn = w->path;
    hid_t f = w->file;
    size_t npix = (size_t)g->width * (size_t)g->height;
    hsize_t hw[2] = {(hsize_t)g->height, (hsize_t)g->width}, hw3[3] = {hw[0], hw[1], 3};
    /* /cxi_version */
    {
        int v = 150;
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t d = sp >= 0 ? H5Dcreate2(f, "/cxi_version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
        int bad = d < 0 || H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0 ||
                  ew_h5_attr_set_str(d, fn, "/cxi_version", "units", "1") != EW_OK;
        if (d >= 0) H5Dclose(d);
        if (sp >= 0) H5Sclose(sp);
        if (bad) return ew_fail(EW_ERR_IO, "%s: dataset /cxi_version: cannot write", fn);
    }
    EW_TRY(ew_h5_attr_set_str(f, fn, "/", "creator", "ewald"));
    EW_TRY(ew_h5_attr_set_str(f, fn, "/", "ewald_version", EW_VERSION));
    EW_TRY(ew_h5_attr_set_u64(f, fn, "/", "seed", o->seed));
    EW_TRY(ew_h5_attr_set_str(f, fn, "/", "structure", o->structure ? o->structure : ""));

    EW_TRY(ew_h5_create_dataset(f, fn, P_MASK, H5T_STD_U8LE, 2, hw, NULL, NULL, 0, H5T_NATIVE_UINT8, g->mask, "1",
                                NULL));
    {
        hid_t d = H5Dopen2(f, P_MASK, H5P_DEFAULT);
        ew_status_t st = d < 0 ? ew_fail(EW_ERR_IO, "%s: dataset %s: cannot open", fn, P_MASK)
                               : ew_h5_attr_set_str(d, fn, P_MASK, "description",
                                                    "ewald mask: 0 good, 1 not used for orientation, 2 bad");
        if (d >= 0) H5Dclose(d);
        EW_TRY(st);
    }
    uint32_t *bits = ew_alloc_array(npix, sizeof *bits);
    if (!bits) return EW_ERR_NOMEM;
    for (size_t p = 0; p < npix; p++) bits[p] = ew_cxi_mask_to_bits(g->mask[p]);
    ew_status_t st = ew_h5_create_dataset(f, fn, P_DET "/mask", H5T_STD_U32LE, 2, hw, NULL, NULL, 0,
                                          H5T_NATIVE_UINT32, bits, "1", NULL);
    ew_free(bits);
    EW_TRY(st);

    EW_TRY(ew_h5_write_scalar(f, fn, P_DET "/distance", g->distance_m, "m"));
    EW_TRY(ew_h5_write_scalar(f, fn, P_DET "/x_pixel_size", g->pixel_x_m, "m"));
    EW_TRY(ew_h5_write_scalar(f, fn, P_DET "/y_pixel_size", g->pixel_y_m, "m"));
    double corner[3] = {-(g->center_x + 0.5) * g->pixel_x_m, -(g->center_y + 0.5) * g->pixel_y_m, g->distance_m};
    hsize_t three = 3, two3[2] = {2, 3}, two = 2;
    EW_TRY(ew_h5_create_dataset(f, fn, P_DET "/corner_position", H5T_IEEE_F64LE, 1, &three, NULL, NULL, 0,
                                H5T_NATIVE_DOUBLE, corner, "m", NULL));
    double basis[6] = {0, g->pixel_y_m, 0, g->pixel_x_m, 0, 0};
    EW_TRY(ew_h5_create_dataset(f, fn, P_DET "/basis_vectors", H5T_IEEE_F64LE, 2, two3, NULL, NULL, 0,
                                H5T_NATIVE_DOUBLE, basis, "m", NULL));
    double bc[2] = {g->center_x, g->center_y};
    EW_TRY(ew_h5_create_dataset(f, fn, P_DET "/beam_center", H5T_IEEE_F64LE, 1, &two, NULL, NULL, 0,
                                H5T_NATIVE_DOUBLE, bc, "pixel", NULL));
    EW_TRY(ew_h5_create_dataset(f, fn, P_DET "/s_vectors", H5T_IEEE_F32LE, 3, hw3, NULL, NULL, 0, H5T_NATIVE_FLOAT,
                                g->s, "1/Angstrom", NULL));
    if (g->solid_angle)
        EW_TRY(ew_h5_create_dataset(f, fn, P_DET "/solid_angle", H5T_IEEE_F32LE, 2, hw, NULL, NULL, 0,
                                    H5T_NATIVE_FLOAT, g->solid_angle, "sr", NULL));
    if (g->polarization)
        EW_TRY(ew_h5_create_dataset(f, fn, P_DET "/polarization", H5T_IEEE_F32LE, 2, hw, NULL, NULL, 0,
                                    H5T_NATIVE_FLOAT, g->polarization, "1", NULL));
    EW_TRY(ew_h5_write_scalar(f, fn, P_SRC "/energy", g->photon_energy_ev * EW_EV_J, "J"));
    EW_TRY(ew_h5_write_scalar(f, fn, P_SRC "/photon_energy_ev", g->photon_energy_ev, "eV"));
    EW_TRY(ew_h5_write_scalar(f, fn, P_SRC "/wavelength", g->wavelength_a * 1e-10, "m"));
    EW_TRY(ew_h5_write_scalar(f, fn, P_SRC "/wavelength_A", g->wavelength_a, "Angstrom"));
    return EW_OK;
}

/* DS_DATA for direct_io: one contiguous block, allocated now (4096-aligned
 * by the file's alignment property) and never filled: every pattern is
 * written. */
static ew_status_t create_rows_contiguous(ew_cxi_writer_t *w, const hsize_t *img, hid_t ftype, const char *units)
{
    hsize_t dims[3] = {(hsize_t)w->n, img[0], img[1]};
    hid_t space = H5Screate_simple(3, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE),
          dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int ok = space >= 0 && lcpl >= 0 && dcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
             H5Pset_layout(dcpl, H5D_CONTIGUOUS) >= 0 && H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0 &&
             H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0;
    if (ok) w->ds[DS_DATA] = H5Dcreate2(w->file, P_DATA, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    if (space >= 0) H5Sclose(space);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (w->ds[DS_DATA] < 0) return ew_fail(EW_ERR_IO, "%s: dataset %s: cannot create", w->path, P_DATA);
    w->extent[DS_DATA] = w->n;
    return ew_h5_attr_set_str(w->ds[DS_DATA], w->path, P_DATA, "units", units);
}

/* Turn the O_DIRECT path on if the data block is 4096-aligned, the
 * in-memory bytes are the file type's and the file system takes an
 * O_DIRECT write (probed on pattern 0, which is written again later);
 * otherwise leave it off (dio_fd = -1: H5Dwrite). */
static void dio_setup(ew_cxi_writer_t *w, hid_t ftype, size_t row)
{
    hid_t mem = ftype == H5T_STD_U16LE ? H5T_NATIVE_UINT16 : ftype == H5T_STD_I32LE ? H5T_NATIVE_INT32
                                                                                    : H5T_NATIVE_FLOAT;
    haddr_t base = H5Dget_offset(w->ds[DS_DATA]);
    if (H5Tequal(mem, ftype) <= 0 || base == HADDR_UNDEF || base % DIO_ALIGN != 0) return;
    for (int i = 0; i < 2; i++)
        if (posix_memalign(&w->dio_buf[i], DIO_ALIGN, DIO_ROWS * row) != 0) {
            w->dio_buf[i] = NULL;
            return;
        }
    int fd = open(w->tmp, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) return;
    memset(w->dio_buf[0], 0, row);
    if (pwrite(fd, w->dio_buf[0], row, (off_t)base) != (ssize_t)row) {
        close(fd);
        return;
    }
    w->dio_fd = fd;
    w->dio_base = base;
    w->dio_row = row;
    w->dio_cap = DIO_ROWS;
}

static ew_status_t create_rows(ew_cxi_writer_t *w, int which, int rank, const hsize_t *row_dims, hid_t ftype,
                               const char *units, int deflate)
{
    hsize_t dims[4], maxd[4], chunk[4];
    long long n0 = w->n > 0 ? w->n : 0;
    dims[0] = (hsize_t)n0;
    maxd[0] = w->n > 0 ? (hsize_t)w->n : H5S_UNLIMITED;
    size_t row = 1;
    for (int k = 1; k < rank; k++) {
        dims[k] = maxd[k] = chunk[k] = row_dims[k - 1];
        row *= (size_t)row_dims[k - 1];
    }
    /* one pattern per chunk for images; ~64 KiB chunks for small rows */
    hsize_t per = row >= 4096 ? 1 : (hsize_t)(8192 / row);
    if (w->n > 0 && per > (hsize_t)w->n) per = (hsize_t)w->n;
    chunk[0] = per > 0 ? per : 1;
    EW_TRY(ew_h5_create_dataset(w->file, w->path, ds_path[which], ftype, rank, dims, maxd, chunk, deflate,
                                H5T_NATIVE_FLOAT, NULL, units, &w->ds[which]));
    w->extent[which] = n0;
    /* images without a filter: each pattern is one whole chunk, written raw
     * when the in-memory type is the file type (true on little-endian hosts) */
    hid_t mem = ftype == H5T_STD_U16LE ? H5T_NATIVE_UINT16 : ftype == H5T_STD_I32LE ? H5T_NATIVE_INT32
                                                                                    : H5T_NATIVE_FLOAT;
    w->direct[which] = rank == 3 && chunk[0] == 1 && deflate == 0 && H5Tequal(mem, ftype) > 0;
    return EW_OK;
}

ew_status_t ew_cxi_writer_open(const char *path, const ew_cxi_geometry_t *g, const ew_cxi_write_options_t *opts,
                               ew_cxi_writer_t **out)
{
    *out = NULL;
    ew_cxi_write_options_t def = {0};
    const ew_cxi_write_options_t *o = opts ? opts : &def;
    if (g->width <= 0 || g->height <= 0 || !g->s || !g->mask)
        return ew_fail(EW_ERR_ARG, "%s: geometry needs a positive size, s-vectors and a mask", path);
    if (o->deflate < 0 || o->deflate > 9)
        return ew_fail(EW_ERR_ARG, "%s: deflate level %d is not in 0..9", path, o->deflate);
    if (o->data_type != EW_CXI_FLOAT32 && o->data_type != EW_CXI_INT32 && o->data_type != EW_CXI_UINT16)
        return ew_fail(EW_ERR_ARG, "%s: data_type %d is not float32, int32 or uint16", path, (int)o->data_type);
    ew_cxi_writer_t *w = calloc(1, sizeof *w);
    if (!w) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    w->file = H5I_INVALID_HID;
    w->dio_fd = -1;
    for (int i = 0; i < DS_COUNT; i++) w->ds[i] = H5I_INVALID_HID;
    w->n = o->n_patterns > 0 ? o->n_patterns : -1;
    w->width = g->width;
    w->height = g->height;
    w->path = ew_strdup(path);
    w->tmp = ew_temp_name(path);
    if (w->n > 0) w->written = calloc((size_t)w->n, 1);
    ew_status_t st = EW_OK;
    if (!w->path || !w->tmp || (w->n > 0 && !w->written)) {
        st = ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* direct_io: fixed N, no filter, whole patterns in multiples of 4096 bytes */
    const size_t esz = o->data_type == EW_CXI_UINT16 ? 2 : 4, row = (size_t)g->width * (size_t)g->height * esz;
    const int dio = o->direct_io && w->n > 0 && o->deflate == 0 && row % DIO_ALIGN == 0;
    if (dio) {
        ew_h5_quiet();
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl >= 0 && H5Pset_alignment(fapl, row, DIO_ALIGN) >= 0)
            w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        if (fapl >= 0) H5Pclose(fapl);
        st = w->file >= 0 ? EW_OK : EW_ERR_IO;
    } else {
        st = ew_h5_create(w->tmp, &w->file);
    }
    if (st != EW_OK) {
        st = ew_fail(EW_ERR_IO, "%s: cannot create (temporary %s)", path, w->tmp);
        free(w->tmp); /* nothing was created */
        w->tmp = NULL;
        goto fail;
    }
    if ((st = write_geometry(w, g, o)) != EW_OK) goto fail;
    hsize_t img[2] = {(hsize_t)g->height, (hsize_t)g->width}, q4 = 4;
    w->dtype = o->data_type;
    hid_t ftype = o->data_type == EW_CXI_UINT16 ? H5T_STD_U16LE : o->data_type == EW_CXI_INT32 ? H5T_STD_I32LE
                                                                                              : H5T_IEEE_F32LE;
    if (dio) {
        if ((st = create_rows_contiguous(w, img, ftype, o->data_units ? o->data_units : "photons")) != EW_OK)
            goto fail;
        dio_setup(w, ftype, row);
    } else if ((st = create_rows(w, DS_DATA, 3, img, ftype, o->data_units ? o->data_units : "photons",
                                 o->deflate)) != EW_OK) {
        goto fail;
    }
    if (o->data_type != EW_CXI_FLOAT32 &&
        (st = ew_h5_attr_set_str(w->ds[DS_DATA], path, P_DATA, "ewald_rounding",
                                 "nearest integer to max(value, 0), ties to even, saturated at the type's "
                                 "maximum")) != EW_OK)
        goto fail;
    if (H5Lcreate_soft(P_DATA, w->file, P_DET "/data", H5P_DEFAULT, H5P_DEFAULT) < 0) {
        st = ew_fail(EW_ERR_IO, "%s: cannot link %s/data", path, P_DET);
        goto fail;
    }
    if (o->with_expected &&
        (st = create_rows(w, DS_EXPECTED, 3, img, H5T_IEEE_F32LE, "photons", o->deflate)) != EW_OK)
        goto fail;
    if (o->with_truth) {
        if ((st = create_rows(w, DS_QUAT, 2, &q4, H5T_IEEE_F64LE, "1", 0)) != EW_OK) goto fail;
        if ((st = ew_h5_attr_set_str(w->ds[DS_QUAT], path, ds_path[DS_QUAT], "convention",
                                     "w, x, y, z; rotates particle -> lab frame: v_lab = R v_particle")) != EW_OK)
            goto fail;
        if ((st = create_rows(w, DS_FLUENCE, 1, NULL, H5T_IEEE_F64LE, "photons/um^2", 0)) != EW_OK) goto fail;
        if ((st = create_rows(w, DS_PHOTONS, 1, NULL, H5T_IEEE_F64LE, "photons", 0)) != EW_OK) goto fail;
    }
    *out = w;
    return EW_OK;
fail:
    ew_cxi_writer_abort(w);
    return st;
}

static ew_status_t write_rows(ew_cxi_writer_t *w, int which, long long i0, long long k, hid_t mtype, const void *buf)
{
    if (w->ds[which] < 0)
        return ew_fail(EW_ERR_ARG, "%s: dataset %s was not requested when the writer was opened", w->path,
                       ds_path[which]);
    if (i0 < 0 || k < 0 || (w->n > 0 && i0 + k > w->n))
        return ew_fail(EW_ERR_RANGE, "%s: dataset %s: rows [%lld, %lld) outside [0, %lld)", w->path, ds_path[which],
                       i0, i0 + k, w->n);
    if (k == 0) return EW_OK;
    if (w->n <= 0 && i0 + k > w->extent[which]) {
        hsize_t dims[4];
        hid_t sp = H5Dget_space(w->ds[which]);
        int r = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
        if (sp >= 0) H5Sclose(sp);
        dims[0] = (hsize_t)(i0 + k);
        if (r < 1 || H5Dset_extent(w->ds[which], dims) < 0)
            return ew_fail(EW_ERR_IO, "%s: dataset %s: cannot extend to %lld rows", w->path, ds_path[which], i0 + k);
        w->extent[which] = i0 + k;
    }
    if (w->direct[which]) {
        /* one whole (1, H, W) chunk per pattern, bytes as they are in memory */
        size_t row = (size_t)w->width * (size_t)w->height * H5Tget_size(mtype);
        for (long long j = 0; j < k; j++) {
            hsize_t off[3] = {(hsize_t)(i0 + j), 0, 0};
            if (H5Dwrite_chunk(w->ds[which], H5P_DEFAULT, 0, off, row, (const char *)buf + (size_t)j * row) < 0)
                return ew_fail(EW_ERR_IO, "%s: dataset %s: write of row %lld failed (disk full?)", w->path,
                               ds_path[which], i0 + j);
        }
        return EW_OK;
    }
    return ew_h5_rows_io(w->ds[which], w->path, ds_path[which], 1, mtype, (hsize_t)i0, (hsize_t)k, (void *)buf);
}

void ew_cxi_round_counts(const float *in, size_t n, ew_cxi_dtype_t type, void *out)
{
    EW_ASSERT(type == EW_CXI_UINT16 || type == EW_CXI_INT32);
    if (type == EW_CXI_UINT16) round_to_u16(in, n, out);
    else round_to_i32(in, n, out);
}

ew_status_t ew_cxi_write_patterns(ew_cxi_writer_t *w, long long i0, long long k, const float *data)
{
    if (i0 < 0 || k < 0 || (w->n > 0 && i0 + k > w->n))
        return ew_fail(EW_ERR_RANGE, "%s: dataset %s: rows [%lld, %lld) outside [0, %lld)", w->path, P_DATA, i0,
                       i0 + k, w->n);
    const size_t npix = (size_t)w->width * (size_t)w->height;
    if (w->dio_fd >= 0) {
        /* O_DIRECT: stage (converting if integer) into the free buffer, post it */
        for (long long j0 = 0; j0 < k; j0 += (long long)w->dio_cap) {
            size_t kb = (size_t)(k - j0 < (long long)w->dio_cap ? k - j0 : (long long)w->dio_cap);
            int sl = w->dio_slot;
            EW_TRY(dio_wait(w, sl));
            /* rewriting rows still in flight in the other slot: let that write land first */
            const long long r0 = i0 + j0, r1 = r0 + (long long)kb;
            if (w->dio_busy[1 - sl] && r0 < w->dio_rows[1 - sl][1] && w->dio_rows[1 - sl][0] < r1)
                EW_TRY(dio_wait(w, 1 - sl));
            w->dio_rows[sl][0] = r0;
            w->dio_rows[sl][1] = r1;
            const float *src = data + (size_t)j0 * npix;
            if (w->dtype == EW_CXI_FLOAT32) memcpy(w->dio_buf[sl], src, kb * npix * sizeof(float));
            else ew_cxi_round_counts(src, kb * npix, w->dtype, w->dio_buf[sl]);
            struct aiocb *cb = &w->dio_cb[sl];
            memset(cb, 0, sizeof *cb);
            cb->aio_fildes = w->dio_fd;
            cb->aio_offset = (off_t)(w->dio_base + (haddr_t)(i0 + j0) * w->dio_row);
            cb->aio_buf = w->dio_buf[sl];
            cb->aio_nbytes = kb * w->dio_row;
            cb->aio_sigevent.sigev_notify = SIGEV_NONE;
            if (aio_write(cb) != 0)
                return ew_fail(EW_ERR_IO, "%s: dataset %s: cannot queue a direct write: %s", w->path, P_DATA,
                               strerror(errno));
            w->dio_busy[sl] = 1;
            w->dio_slot = 1 - sl;
        }
    } else if (w->dtype == EW_CXI_FLOAT32) {
        EW_TRY(write_rows(w, DS_DATA, i0, k, H5T_NATIVE_FLOAT, data));
    } else {
        /* rounded counts, converted in blocks of at most 256 patterns */
        const size_t es = w->dtype == EW_CXI_UINT16 ? 2 : 4;
        for (long long j0 = 0; j0 < k; j0 += 256) {
            size_t kb = (size_t)(k - j0 < 256 ? k - j0 : 256);
            if (kb > w->stage_rows) {
                size_t n;
                EW_TRY(ew_size_mul3(kb, npix, es, &n));
                ew_free(w->stage);
                w->stage = ew_alloc_array(n, 1);
                w->stage_rows = w->stage ? kb : 0;
                if (!w->stage) return ew_fail(EW_ERR_NOMEM, "%s: no staging for %zu patterns", w->path, kb);
            }
            const float *src = data + (size_t)j0 * npix;
            ew_cxi_round_counts(src, kb * npix, w->dtype, w->stage);
            EW_TRY(write_rows(w, DS_DATA, i0 + j0, (long long)kb,
                              w->dtype == EW_CXI_UINT16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_INT32, w->stage));
        }
    }
    if (w->written) memset(w->written + i0, 1, (size_t)k);
    return EW_OK;
}

ew_status_t ew_cxi_write_expected(ew_cxi_writer_t *w, long long i0, long long k, const float *expected)
{
    return write_rows(w, DS_EXPECTED, i0, k, H5T_NATIVE_FLOAT, expected);
}

ew_status_t ew_cxi_write_truth(ew_cxi_writer_t *w, long long i0, long long k, const double *quat,
                               const double *fluence, const double *photons)
{
    if (quat) EW_TRY(write_rows(w, DS_QUAT, i0, k, H5T_NATIVE_DOUBLE, quat));
    if (fluence) EW_TRY(write_rows(w, DS_FLUENCE, i0, k, H5T_NATIVE_DOUBLE, fluence));
    if (photons) EW_TRY(write_rows(w, DS_PHOTONS, i0, k, H5T_NATIVE_DOUBLE, photons));
    return EW_OK;
}

ew_status_t ew_cxi_writer_close(ew_cxi_writer_t *w)
{
    ew_status_t st = EW_OK;
    if (w->dio_fd >= 0) {
        for (int i = 0; i < 2; i++) {
            ew_status_t s2 = dio_wait(w, i);
            if (st == EW_OK) st = s2;
        }
        close(w->dio_fd);
        w->dio_fd = -1;
    }
    if (st == EW_OK && w->n > 0) {
        long long done = 0;
        for (long long i = 0; i < w->n; i++) done += w->written[i];
        if (done != w->n)
            st = ew_fail(EW_ERR_ARG, "%s: only %lld of the %lld announced patterns were written", w->path, done, w->n);
    } else {
        long long nmax = 0; /* make every per-pattern dataset N rows */
        for (int i = 0; i < DS_COUNT; i++)
            if (w->ds[i] >= 0 && w->extent[i] > nmax) nmax = w->extent[i];
        for (int i = 0; i < DS_COUNT && st == EW_OK; i++) {
            if (w->ds[i] < 0 || w->extent[i] == nmax) continue;
            hsize_t dims[4];
            hid_t sp = H5Dget_space(w->ds[i]);
            int r = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
            if (sp >= 0) H5Sclose(sp);
            dims[0] = (hsize_t)nmax;
            if (r < 1 || H5Dset_extent(w->ds[i], dims) < 0)
                st = ew_fail(EW_ERR_IO, "%s: dataset %s: cannot extend to %lld rows", w->path, ds_path[i], nmax);
        }
    }
    for (int i = 0; i < DS_COUNT; i++) {
        if (w->ds[i] >= 0 && H5Dclose(w->ds[i]) < 0 && st == EW_OK)
            st = ew_fail(EW_ERR_IO, "%s: dataset %s: close failed", w->path, ds_path[i]);
        w->ds[i] = H5I_INVALID_HID;
    }
    if (st == EW_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        st = ew_fail(EW_ERR_IO, "%s: flush failed (disk full?)", w->path);
    if (H5Fclose(w->file) < 0 && st == EW_OK) st = ew_fail(EW_ERR_IO, "%s: close failed (disk full?)", w->path);
    w->file = H5I_INVALID_HID;
    if (st == EW_OK) {
        st = ew_commit_rename(w->tmp, w->path);
        w->tmp = NULL; /* freed (and removed on failure) by ew_commit_rename */
    }
    ew_cxi_writer_abort(w);
    return st;
}

/* --------------------------------------------------------------- reader */

struct ew_cxi_reader {
    char *path;
    hid_t file;
    hid_t ds[DS_COUNT];
    long long n;
    ew_cxi_geometry_t geom;
    uint64_t seed;
    char *structure, *version;
};

void ew_cxi_reader_close(ew_cxi_reader_t *r)
{
    if (!r) return;
    for (int i = 0; i < DS_COUNT; i++)
        if (r->ds[i] >= 0) H5Dclose(r->ds[i]);
    if (r->file >= 0) H5Fclose(r->file);
    ew_cxi_geometry_free(&r->geom);
    free(r->path);
    free(r->structure);
    free(r->version);
    free(r);
}

/* Open a per-pattern dataset if present, checking rank/shape/type. */
static ew_status_t open_rows(ew_cxi_reader_t *r, int which, int rank, const hsize_t *row_dims, int required)
{
    const char *fn = r->path, *p = ds_path[which];
    if (!ew_h5_exists(r->file, p)) {
        if (required) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s is missing", fn, p);
        return EW_OK;
    }
    int rk = 0;
    hsize_t dims[8];
    H5T_class_t cls;
    EW_TRY(ew_h5_dataset_shape(r->file, fn, p, &rk, dims, &cls));
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
        return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: type is not numeric", fn, p);
    if (rk != rank) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: rank %d, expected %d", fn, p, rk, rank);
    for (int k = 1; k < rank; k++)
        if (dims[k] != row_dims[k - 1])
            return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: dimension %d is %llu, expected %llu", fn, p, k,
                           (unsigned long long)dims[k], (unsigned long long)row_dims[k - 1]);
    if (which != DS_DATA && (long long)dims[0] != r->n)
        return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: %llu rows but %s has %lld patterns", fn, p,
                       (unsigned long long)dims[0], P_DATA, r->n);
    r->ds[which] = H5Dopen2(r->file, p, H5P_DEFAULT);
    if (r->ds[which] < 0) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: cannot open", fn, p);
    return EW_OK;
}

static ew_status_t read_geometry(ew_cxi_reader_t *r, int width, int height)
{
    const char *fn = r->path;
    hid_t f = r->file;
    ew_cxi_geometry_t *g = &r->geom;
    size_t npix = (size_t)width * (size_t)height;
    int extras = ew_h5_exists(f, P_DET "/solid_angle") || ew_h5_exists(f, P_DET "/polarization");
    EW_TRY(ew_cxi_geometry_alloc(g, width, height, extras));
    hsize_t hw[2] = {(hsize_t)height, (hsize_t)width}, hw3[3] = {hw[0], hw[1], 3};
    EW_TRY(ew_h5_read_scalar(f, fn, P_DET "/distance", &g->distance_m));
    EW_TRY(ew_h5_read_scalar(f, fn, P_DET "/x_pixel_size", &g->pixel_x_m));
    EW_TRY(ew_h5_read_scalar(f, fn, P_DET "/y_pixel_size", &g->pixel_y_m));
    if (!(g->distance_m > 0) || !(g->pixel_x_m > 0) || !(g->pixel_y_m > 0))
        return ew_fail(EW_ERR_FORMAT, "%s: detector distance %g m and pixel size %g x %g m must be positive", fn,
                       g->distance_m, g->pixel_x_m, g->pixel_y_m);
    /* photon energy: ours in eV, else CXI's energy in J */
    if (ew_h5_exists(f, P_SRC "/photon_energy_ev")) {
        EW_TRY(ew_h5_read_scalar(f, fn, P_SRC "/photon_energy_ev", &g->photon_energy_ev));
    } else {
        double ej;
        EW_TRY(ew_h5_read_scalar(f, fn, P_SRC "/energy", &ej));
        g->photon_energy_ev = ej / EW_EV_J;
    }
    if (!(g->photon_energy_ev > 0) || !isfinite(g->photon_energy_ev))
        return ew_fail(EW_ERR_FORMAT, "%s: dataset %s/energy: photon energy %g eV is not positive", fn, P_SRC,
                       g->photon_energy_ev);
    g->wavelength_a = EW_HC_EV_A / g->photon_energy_ev;
    /* beam centre: ours, else from corner_position, else the image centre */
    if (ew_h5_exists(f, P_DET "/beam_center")) {
        double bc[2];
        hsize_t two = 2;
        EW_TRY(ew_h5_read_numeric(f, fn, P_DET "/beam_center", H5T_NATIVE_DOUBLE, 1, &two, bc, 2));
        g->center_x = bc[0];
        g->center_y = bc[1];
    } else if (ew_h5_exists(f, P_DET "/corner_position")) {
        double c[3];
        hsize_t three = 3;
        EW_TRY(ew_h5_read_numeric(f, fn, P_DET "/corner_position", H5T_NATIVE_DOUBLE, 1, &three, c, 3));
        g->center_x = -c[0] / g->pixel_x_m - 0.5;
        g->center_y = -c[1] / g->pixel_y_m - 0.5;
    } else {
        g->center_x = 0.5 * (width - 1);
        g->center_y = 0.5 * (height - 1);
    }
    if (!isfinite(g->center_x) || !isfinite(g->center_y))
        return ew_fail(EW_ERR_FORMAT, "%s: beam centre (%g, %g) is not finite", fn, g->center_x, g->center_y);
    /* mask: ours, else CXI bits, else all good */
    if (ew_h5_exists(f, P_MASK)) {
        EW_TRY(ew_h5_read_numeric(f, fn, P_MASK, H5T_NATIVE_UINT8, 2, hw, g->mask, npix));
        for (size_t p = 0; p < npix; p++)
            if (g->mask[p] > 2)
                return ew_fail(EW_ERR_FORMAT, "%s: dataset %s: value %d at pixel %zu is not 0, 1 or 2", fn, P_MASK,
                               g->mask[p], p);
    } else if (ew_h5_exists(f, P_DET "/mask")) {
        uint32_t *bits = ew_alloc_array(npix, sizeof *bits);
        if (!bits) return EW_ERR_NOMEM;
        ew_status_t st = ew_h5_read_numeric(f, fn, P_DET "/mask", H5T_NATIVE_UINT32, 2, hw, bits, npix);
        for (size_t p = 0; st == EW_OK && p < npix; p++) g->mask[p] = ew_cxi_mask_from_bits(bits[p]);
        ew_free(bits);
        EW_TRY(st);
    }
    if (ew_h5_exists(f, P_DET "/s_vectors")) {
        EW_TRY(ew_h5_read_numeric(f, fn, P_DET "/s_vectors", H5T_NATIVE_FLOAT, 3, hw3, g->s, npix * 3));
        for (size_t i = 0; i < 3 * npix; i++)
            if (!isfinite(g->s[i]))
                return ew_fail(EW_ERR_FORMAT, "%s: dataset %s/s_vectors: non-finite value at pixel %zu", fn, P_DET,
                               i / 3);
        if (g->solid_angle && ew_h5_exists(f, P_DET "/solid_angle"))
            EW_TRY(ew_h5_read_numeric(f, fn, P_DET "/solid_angle", H5T_NATIVE_FLOAT, 2, hw, g->solid_angle, npix));
        if (g->polarization && ew_h5_exists(f, P_DET "/polarization"))
            EW_TRY(ew_h5_read_numeric(f, fn, P_DET "/polarization", H5T_NATIVE_FLOAT, 2, hw, g->polarization, npix));
    } else {
        EW_TRY(ew_cxi_geometry_flat_s(g));
    }
    return EW_OK;
}

ew_status_t ew_cxi_reader_open(const char *path, ew_cxi_reader_t **out)
{
    *out = NULL;
    ew_cxi_reader_t *r = calloc(1, sizeof *r);
    if (!r) return ew_fail(EW_ERR_NOMEM, "%s: out of memory", path);
    r->file = H5I_INVALID_HID;
    for (int i = 0; i < DS_COUNT; i++) r->ds[i] = H5I_INVALID_HID;
    r->path = ew_strdup(path);
    ew_status_t st = r->path ? EW_OK : EW_ERR_NOMEM;
    if (st == EW_OK) st = ew_h5_open_read(path, &r->file);
    int rank = 0;
    hsize_t dims[8];
    if (st == EW_OK) st = ew_h5_dataset_shape(r->file, path, P_DATA, &rank, dims, NULL);
    if (st == EW_OK && rank != 3)
        st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: rank %d, expected 3 (N, H, W)", path, P_DATA, rank);
    if (st == EW_OK && (dims[1] == 0 || dims[2] == 0 || dims[1] > (1u << 20) || dims[2] > (1u << 20)))
        st = ew_fail(EW_ERR_FORMAT, "%s: dataset %s: image size %llu x %llu is not supported", path, P_DATA,
                     (unsigned long long)dims[2], (unsigned long long)dims[1]);
    if (st == EW_OK) {
        r->n = (long long)dims[0];
        hsize_t img[2] = {dims[1], dims[2]}, q4 = 4;
        st = open_rows(r, DS_DATA, 3, img, 1);
        if (st == EW_OK) st = read_geometry(r, (int)dims[2], (int)dims[1]);
        if (st == EW_OK) st = open_rows(r, DS_EXPECTED, 3, img, 0);
        if (st == EW_OK) st = open_rows(r, DS_QUAT, 2, &q4, 0);
        if (st == EW_OK) st = open_rows(r, DS_FLUENCE, 1, NULL, 0);
        if (st == EW_OK) st = open_rows(r, DS_PHOTONS, 1, NULL, 0);
    }
    if (st == EW_OK) {
        /* optional root metadata: absent is fine, present-but-malformed is not */
        if (H5Aexists(r->file, "seed") > 0) st = ew_h5_attr_get_u64(r->file, path, "/", "seed", &r->seed);
        if (st == EW_OK && H5Aexists(r->file, "structure") > 0)
            st = ew_h5_attr_get_str(r->file, path, "/", "structure", &r->structure);
        if (st == EW_OK && H5Aexists(r->file, "ewald_version") > 0)
            st = ew_h5_attr_get_str(r->file, path, "/", "ewald_version", &r->version);
    }
    if (st != EW_OK) {
        ew_cxi_reader_close(r);
        return st;
    }
    *out = r;
    return EW_OK;
}

long long ew_cxi_reader_count(const ew_cxi_reader_t *r) { return r->n; }
const ew_cxi_geometry_t *ew_cxi_reader_geometry(const ew_cxi_reader_t *r) { return &r->geom; }
int ew_cxi_reader_has_truth(const ew_cxi_reader_t *r) { return r->ds[DS_QUAT] >= 0; }
int ew_cxi_reader_has_expected(const ew_cxi_reader_t *r) { return r->ds[DS_EXPECTED] >= 0; }
uint64_t ew_cxi_reader_seed(const ew_cxi_reader_t *r) { return r->seed; }
const char *ew_cxi_reader_structure(const ew_cxi_reader_t *r) { return r->structure ? r->structure : ""; }
const char *ew_cxi_reader_version(const ew_cxi_reader_t *r) { return r->version ? r->version : ""; }

static ew_status_t read_rows(ew_cxi_reader_t *r, int which, long long i0, long long k, hid_t mtype, void *out)
{
    if (r->ds[which] < 0) return ew_fail(EW_ERR_FORMAT, "%s: dataset %s is missing", r->path, ds_path[which]);
    if (i0 < 0 || k < 0 || i0 + k > r->n)
        return ew_fail(EW_ERR_RANGE, "%s: dataset %s: rows [%lld, %lld) outside [0, %lld)", r->path, ds_path[which],
                       i0, i0 + k, r->n);
    return ew_h5_rows_io(r->ds[which], r->path, ds_path[which], 0, mtype, (hsize_t)i0, (hsize_t)k, out);
}

ew_status_t ew_cxi_read_patterns(ew_cxi_reader_t *r, long long i0, long long k, float *out)
{
    return read_rows(r, DS_DATA, i0, k, H5T_NATIVE_FLOAT, out);
}

ew_status_t ew_cxi_read_expected(ew_cxi_reader_t *r, long long i0, long long k, float *out)
{
    return read_rows(r, DS_EXPECTED, i0, k, H5T_NATIVE_FLOAT, out);
}

ew_status_t ew_cxi_read_truth(ew_cxi_reader_t *r, long long i0, long long k, double *quat, double *fluence,
                              double *photons)
{
    if (quat) EW_TRY(read_rows(r, DS_QUAT, i0, k, H5T_NATIVE_DOUBLE, quat));
    if (fluence) EW_TRY(read_rows(r, DS_FLUENCE, i0, k, H5T_NATIVE_DOUBLE, fluence));
    if (photons) EW_TRY(read_rows(r, DS_PHOTONS, i0, k, H5T_NATIVE_DOUBLE, photons));
    return EW_OK;
}
