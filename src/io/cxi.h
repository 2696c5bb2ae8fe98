/* ewald io: diffraction patterns in CXI files (HDF5), streamed in slices.
 *
 * Layout (exact, with units, in docs/formats-cxi.md; CXI: Maia, Nature
 * Methods 9, 854 (2012), cxidb.org):
 *   /cxi_version                                   150
 *   /entry_1/data_1/data            (N, H, W) f32  photon counts (or expected photons); chunk (1, H, W),
 *                                           or contiguous when written with direct_io;
 *                                           i32 or u16 rounded counts when asked (data_type)
 *   /entry_1/data_1/mask            (H, W)    u8   ewald codes: 0 good, 1 not for orientation, 2 bad
 *   /entry_1/instrument_1/detector_1/
 *       distance, x_pixel_size, y_pixel_size  f64  m
 *       corner_position (3) f64 m; basis_vectors (2, 3) f64 m (slow, fast)
 *       beam_center (2) f64 pixels (x = column, y = row) [ewald]
 *       mask (H, W) u32  CXI pixel-mask bits (1 invalid ... 128 bad, 256 out of resolution limits)
 *       data -> soft link to /entry_1/data_1/data
 *       s_vectors (H, W, 3) f32 1/Angstrom, lab frame [ewald]
 *       solid_angle (H, W) f32 sr [optional]; polarization (H, W) f32 [optional]
 *   /entry_1/instrument_1/source_1/
 *       energy f64 J; photon_energy_ev f64 eV; wavelength f64 m; wavelength_A f64 Angstrom
 *   /entry_1/ground_truth/   [simulated data]
 *       quaternions (N, 4) f64 (w, x, y, z) particle -> lab; fluence (N) f64 photons/um^2;
 *       photons (N) f64 photons per pattern; expected (N, H, W) f32 noise-free [optional]
 *   root attributes: creator "ewald", ewald_version, seed (u64), structure.
 *
 * Lab frame: the beam travels along +z; a pixel at lab position r (m, the
 * sample at the origin) scatters with s = (r/|r| - z^) / lambda. Pixel
 * (ix, iy) of a flat detector perpendicular to the beam sits at
 * r = ((ix - cx) px, (iy - cy) py, D) with (cx, cy) the beam centre in
 * pixels; ew_cxi_geometry_flat_s() computes that. Images are row-major,
 * iy (slow) then ix (fast).
 *
 * Threads: the serial HDF5 library is not thread-safe; call the writer and
 * reader functions from one thread at a time (read slices, then process
 * them in parallel).
 */
#ifndef EW_IO_CXI_H
#define EW_IO_CXI_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Detector and beam. Arrays are owned (ew_alloc_array) and freed by
 * ew_cxi_geometry_free; optional ones may be NULL. */
typedef struct {
    int width, height;         /* W (fast, x) and H (slow, y) pixels */
    double distance_m;         /* sample to detector plane, m */
    double pixel_x_m, pixel_y_m; /* pixel pitch, m */
    double center_x, center_y; /* beam centre in pixel coordinates (x = column, y = row) */
    double photon_energy_ev;   /* eV; wavelength_a = EW_HC_EV_A / photon_energy_ev */
    double wavelength_a;       /* Angstrom */
    float *s;                  /* (H, W, 3) lab-frame s = 1/d vectors, 1/Angstrom (required) */
    uint8_t *mask;             /* (H, W) 0 good, 1 not for orientation, 2 bad (required) */
    float *solid_angle;        /* (H, W) sr, optional */
    float *polarization;       /* (H, W) factor in [0, 1], optional */
} ew_cxi_geometry_t;

/* Allocate s and mask (zero) for a W x H detector, other fields zero.
 * with_extras also allocates solid_angle and polarization. On error g is
 * left empty. */
ew_status_t ew_cxi_geometry_alloc(ew_cxi_geometry_t *g, int width, int height, int with_extras);

/* Fill g->s for a flat detector perpendicular to the beam from distance_m,
 * pixel_x_m/pixel_y_m, center_x/center_y and wavelength_a (see the header
 * comment); also solid_angle (if allocated: the exact solid angle of a
 * small pixel, px py D / |r|^3) and polarization (if allocated: for a beam
 * polarized along x, 1 - (r_x/|r|)^2). EW_ERR_ARG on non-positive sizes. */
ew_status_t ew_cxi_geometry_flat_s(ew_cxi_geometry_t *g);

/* Deep copy (dst is overwritten; on error dst is left empty). */
ew_status_t ew_cxi_geometry_copy(ew_cxi_geometry_t *dst, const ew_cxi_geometry_t *src);

/* Free the arrays (g may be NULL); g is left empty. */
void ew_cxi_geometry_free(ew_cxi_geometry_t *g);

/* ewald mask codes <-> CXI pixel-mask bits: 2 -> 128 (bad), 1 -> 256 (out
 * of resolution limits), 0 -> 0; back: any of the bits CXI counts as
 * masked (1|2|4|8|16|32|64|128|512) -> 2, else 256 -> 1, else 0. */
uint32_t ew_cxi_mask_to_bits(uint8_t code);
uint8_t ew_cxi_mask_from_bits(uint32_t bits);

/* Storage type of /entry_1/data_1/data (the expected patterns stay f32). */
typedef enum {
    EW_CXI_FLOAT32 = 0, /* f32: the values as given (default) */
    EW_CXI_INT32,       /* i32 photon counts: ew_cxi_round_count, saturating at 2^31 - 1 */
    EW_CXI_UINT16       /* u16 photon counts: ew_cxi_round_count, saturating at 65535 */
} ew_cxi_dtype_t;

/* The integer a float photon value is stored as in an integer CXI file
 * (and, with max = 2^31 - 1, in a Dragonfly .emc): the nearest integer to
 * max(v, 0), ties to even (lrintf in the default rounding mode), NaN -> 0,
 * saturated at max. Negative values (readout noise around 0) become 0. */
static inline uint32_t ew_cxi_round_count(float v, uint32_t max)
{
    float r = v > 0.0f ? v : 0.0f;                      /* NaN -> 0 */
    r = r < 0x1p23f ? (r + 0x1p23f) - 0x1p23f : r;      /* ties to even: exact without -ffast-math */
    return r >= (float)max ? max : (uint32_t)r;
}

/* ew_cxi_round_count over n values into out: uint16_t with max 65535 for
 * EW_CXI_UINT16, int32_t with max 2^31 - 1 for EW_CXI_INT32 (vectorized).
 * type must be one of these two (EW_ASSERT). */
void ew_cxi_round_counts(const float *in, size_t n, ew_cxi_dtype_t type, void *out);

typedef struct {
    long long n_patterns;      /* N if known (> 0); <= 0: extendible, N = rows written */
    int deflate;               /* 0 none, 1..9 gzip level */
    const char *data_units;    /* units of data, default "photons" */
    const char *structure;     /* structure name for the root attribute (may be NULL) */
    uint64_t seed;             /* the run's seed, stored as a root attribute */
    int with_truth;            /* create /entry_1/ground_truth quaternions, fluence, photons */
    int with_expected;         /* create /entry_1/ground_truth/expected (N, H, W) */
    ew_cxi_dtype_t data_type;  /* storage type of data_1/data (0: float32) */
    int direct_io;             /* when N is known, deflate is 0 and a pattern is a multiple of 4096
                                  bytes: data_1/data is one contiguous block, allocated at open and
                                  4096-aligned, written with O_DIRECT (no page cache; POSIX AIO from
                                  two staging buffers of 64 patterns, so writes overlap the caller)
                                  where the file system takes it (else with H5Dwrite). Otherwise,
                                  or 0: chunk (1, H, W) through HDF5. */
} ew_cxi_write_options_t;

/* Streaming writer: write patterns in any order in slices [i0, i0 + k);
 * close renames the finished file into place. */
typedef struct ew_cxi_writer ew_cxi_writer_t;

/* Create the file (under a temporary name) with its geometry. opts may be
 * NULL (defaults: extendible, no compression, no truth). On error *w is
 * NULL, nothing is left on disk and the message names the file. */
ew_status_t ew_cxi_writer_open(const char *path, const ew_cxi_geometry_t *g, const ew_cxi_write_options_t *opts,
                               ew_cxi_writer_t **w);

/* Write patterns i0 .. i0+k-1 from data (k, H, W). With a known N,
 * i0 + k <= N (else EW_ERR_RANGE); extendible files grow as needed. With
 * an integer data_type each value is stored as ew_cxi_round_count(v, max
 * of the type). Unfiltered chunked patterns go to the file as whole
 * (1, H, W) chunks (H5Dwrite_chunk: no chunk cache, hyperslab or type
 * conversion). With direct_io the write may still be in flight when this
 * returns (data has been copied); its error, if any, is returned by the
 * next call or by ew_cxi_writer_close. */
ew_status_t ew_cxi_write_patterns(ew_cxi_writer_t *w, long long i0, long long k, const float *data);

/* Write noise-free expected patterns i0 .. i0+k-1 (needs with_expected). */
ew_status_t ew_cxi_write_expected(ew_cxi_writer_t *w, long long i0, long long k, const float *expected);

/* Write ground truth for patterns i0 .. i0+k-1 (needs with_truth): quat
 * (k, 4) w, x, y, z particle -> lab; fluence (k) photons/um^2; photons (k)
 * total photons. Any of the three may be NULL (left as written before / 0). */
ew_status_t ew_cxi_write_truth(ew_cxi_writer_t *w, long long i0, long long k, const double *quat,
                               const double *fluence, const double *photons);

/* Finish: with a known N every pattern must have been written (else
 * EW_ERR_ARG and no file); set extendible datasets to the final N; close
 * and rename into place. w is always freed. */
ew_status_t ew_cxi_writer_close(ew_cxi_writer_t *w);

/* Discard the file being written and free w (NULL is a no-op). */
void ew_cxi_writer_abort(ew_cxi_writer_t *w);

/* Reader: opens the file, checks shapes and types, loads the geometry. */
typedef struct ew_cxi_reader ew_cxi_reader_t;

/* Open a CXI file. Needs /entry_1/data_1/data (N, H, W) numeric and the
 * detector distance/pixel sizes and source energy; the ewald mask, or else
 * CXI's detector mask, or else all good; s_vectors, or else computed with
 * ew_cxi_geometry_flat_s (beam centre from beam_center, or else from
 * corner_position, or else the image centre). Every dataset's rank, shape
 * and type is checked. On error *r is NULL and the message names the file
 * and the dataset. */
ew_status_t ew_cxi_reader_open(const char *path, ew_cxi_reader_t **r);

/* Number of patterns N. */
long long ew_cxi_reader_count(const ew_cxi_reader_t *r);
/* The geometry (owned by the reader, valid until close). */
const ew_cxi_geometry_t *ew_cxi_reader_geometry(const ew_cxi_reader_t *r);
/* 1 if ground-truth quaternions / expected patterns are present. */
int ew_cxi_reader_has_truth(const ew_cxi_reader_t *r);
int ew_cxi_reader_has_expected(const ew_cxi_reader_t *r);
/* Root metadata: seed (0 if absent), structure and ewald_version ("" if
 * absent; owned by the reader). */
uint64_t ew_cxi_reader_seed(const ew_cxi_reader_t *r);
const char *ew_cxi_reader_structure(const ew_cxi_reader_t *r);
const char *ew_cxi_reader_version(const ew_cxi_reader_t *r);

/* Read patterns i0 .. i0+k-1 into out (k, H, W) as float. EW_ERR_RANGE if
 * outside [0, N). */
ew_status_t ew_cxi_read_patterns(ew_cxi_reader_t *r, long long i0, long long k, float *out);
/* The same for the expected patterns (EW_ERR_FORMAT if absent). */
ew_status_t ew_cxi_read_expected(ew_cxi_reader_t *r, long long i0, long long k, float *out);
/* Ground truth for i0 .. i0+k-1; NULL outputs are skipped; EW_ERR_FORMAT
 * if a requested dataset is absent. */
ew_status_t ew_cxi_read_truth(ew_cxi_reader_t *r, long long i0, long long k, double *quat, double *fluence,
                              double *photons);

/* Close the file and free r (NULL is a no-op). */
void ew_cxi_reader_close(ew_cxi_reader_t *r);

#endif
