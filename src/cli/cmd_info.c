/* ewald info: describe any supported file in a few lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "io/coords.h"
#include "io/cxi.h"
#include "io/emcfile.h"
#include "io/filetype.h"
#include "io/safetensors.h"
#include "io/h5vol.h"
#include "io/mrc.h"
#include "io/npy.h"
#include "io/png.h"
#include "io/star.h"
#include "io/structure.h"

static void add_vec3(cJSON *o, const char *key, const double v[3])
{
    cJSON_AddItemToObject(o, key, cJSON_CreateDoubleArray(v, 3));
}

static ew_status_t info_structure(const char *path, cJSON *o)
{
    ew_structure_t s;
    EW_TRY(ew_structure_read(path, NULL, &s));
    ew_structure_summary_t m;
    ew_structure_summarize(&s, &m);
    printf("  atoms              %zu\n  composition       ", m.n_atoms);
    cJSON *comp = cJSON_AddObjectToObject(o, "atoms_by_element");
    for (int z = 1; z < 99; z++)
        if (m.count_by_z[z]) {
            printf(" %s %zu", ew_element_symbol(z), m.count_by_z[z]);
            cJSON_AddNumberToObject(comp, ew_element_symbol(z), (double)m.count_by_z[z]);
        }
    printf("\n  electrons          %.0f\n  mass               %.2f kDa\n", m.electrons, m.mass_da / 1000);
    printf("  centre of mass     %.2f %.2f %.2f A\n", m.centre[0], m.centre[1], m.centre[2]);
    printf("  radius of gyration %.2f A\n  max extent         %.2f A from the centre (diameter ~%.1f A)\n",
           m.radius_gyration, m.max_extent, 2 * m.max_extent);
    cJSON_AddNumberToObject(o, "atoms", (double)m.n_atoms);
    cJSON_AddNumberToObject(o, "electrons", m.electrons);
    cJSON_AddNumberToObject(o, "mass_kda", m.mass_da / 1000);
    add_vec3(o, "centre_a", m.centre);
    cJSON_AddNumberToObject(o, "radius_gyration_a", m.radius_gyration);
    cJSON_AddNumberToObject(o, "max_extent_a", m.max_extent);
    ew_structure_free(&s);
    return EW_OK;
}

static ew_status_t info_mrc(const char *path, cJSON *o)
{
    ew_mrc_header_t h;
    EW_TRY(ew_mrc_header_read(path, &h));
    char line[512];
    ew_mrc_header_describe(&h, line, sizeof line);
    printf("  %s\n", line);
    cJSON_AddStringToObject(o, "kind", h.is_stack ? (h.nz > 1 ? "stack" : "image") : "volume");
    int size[3] = {h.nx, h.ny, h.nz};
    cJSON_AddItemToObject(o, "size_xyz", cJSON_CreateIntArray(size, 3));
    cJSON_AddNumberToObject(o, "mode", h.mode);
    add_vec3(o, "pixel_size_a", h.pixel_size);
    double origin[3] = {h.origin[0], h.origin[1], h.origin[2]};
    add_vec3(o, "origin_a", origin);
    cJSON_AddNumberToObject(o, "min", h.dmin);
    cJSON_AddNumberToObject(o, "max", h.dmax);
    cJSON_AddNumberToObject(o, "mean", h.dmean);
    cJSON_AddNumberToObject(o, "rms", h.rms);
    return EW_OK;
}

static ew_status_t info_star(const char *path, cJSON *o)
{
    ew_star_t s;
    EW_TRY(ew_star_read(path, &s));
    char text[4096];
    ew_star_describe(&s, text, sizeof text);
    for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) printf("  %s\n", l);
    cJSON *blocks = cJSON_AddArrayToObject(o, "tables");
    for (size_t b = 0; b < s.n_blocks; b++)
        for (size_t t = 0; t < s.blocks[b].n_tables; t++) {
            const ew_star_table_t *tb = &s.blocks[b].tables[t];
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "block", s.blocks[b].name);
            cJSON_AddBoolToObject(j, "loop", tb->is_loop);
            cJSON_AddNumberToObject(j, "columns", (double)tb->n_cols);
            cJSON_AddNumberToObject(j, "rows", (double)tb->n_rows);
            cJSON_AddItemToArray(blocks, j);
        }
    ew_star_free(&s);
    return EW_OK;
}

static double norm3(const float *v) { return sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]); }

static void mask_counts(const uint8_t *mask, size_t n, cJSON *o)
{
    size_t c[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) c[mask[i] < 3 ? mask[i] : 2]++;
    printf("  mask               %zu good, %zu not for orientation, %zu bad\n", c[0], c[1], c[2]);
    cJSON *m = cJSON_AddObjectToObject(o, "mask");
    cJSON_AddNumberToObject(m, "good", (double)c[0]);
    cJSON_AddNumberToObject(m, "no_orientation", (double)c[1]);
    cJSON_AddNumberToObject(m, "bad", (double)c[2]);
}

static void print_s(const char *what, double s, cJSON *o, const char *key)
{
    printf("  %-18s s = %.4f 1/A (d = %.2f A)\n", what, s, s > 0 ? 1 / s : INFINITY);
    cJSON_AddNumberToObject(o, key, s);
}

static ew_status_t info_cxi(const char *path, cJSON *o)
{
    ew_cxi_reader_t *r;
    EW_TRY(ew_cxi_reader_open(path, &r));
    const ew_cxi_geometry_t *g = ew_cxi_reader_geometry(r);
    long long n = ew_cxi_reader_count(r);
    size_t npix = (size_t)g->width * (size_t)g->height;
    printf("  patterns           %lld\n  detector           %d x %d pixels of %.4g x %.4g um at %.4g mm\n", n,
           g->width, g->height, g->pixel_x_m * 1e6, g->pixel_y_m * 1e6, g->distance_m * 1e3);
    printf("  beam               %.1f eV (wavelength %.4f A), centre (%.2f, %.2f) px\n", g->photon_energy_ev,
           g->wavelength_a, g->center_x, g->center_y);
    cJSON_AddNumberToObject(o, "patterns", (double)n);
    cJSON_AddNumberToObject(o, "width", g->width);
    cJSON_AddNumberToObject(o, "height", g->height);
    cJSON_AddNumberToObject(o, "distance_m", g->distance_m);
    cJSON_AddNumberToObject(o, "pixel_m", g->pixel_x_m);
    cJSON_AddNumberToObject(o, "photon_energy_ev", g->photon_energy_ev);
    cJSON_AddNumberToObject(o, "wavelength_a", g->wavelength_a);
    /* s at the nearest edge along the axes through the beam centre, and the largest s (a corner). */
    int cx = (int)lround(g->center_x), cy = (int)lround(g->center_y);
    cx = cx < 0 ? 0 : cx >= g->width ? g->width - 1 : cx;
    cy = cy < 0 ? 0 : cy >= g->height ? g->height - 1 : cy;
    size_t edges[4] = {(size_t)cy * g->width, (size_t)cy * g->width + g->width - 1, (size_t)cx,
                       (size_t)(g->height - 1) * g->width + cx};
    double s_edge = INFINITY, s_max = 0, s_min_good = INFINITY;
    for (int k = 0; k < 4; k++) s_edge = fmin(s_edge, norm3(g->s + 3 * edges[k]));
    for (size_t i = 0; i < npix; i++) {
        double s = norm3(g->s + 3 * i);
        s_max = fmax(s_max, s);
        if (g->mask[i] == 0) s_min_good = fmin(s_min_good, s);
    }
    print_s("edge", s_edge, o, "s_edge_inv_a");
    print_s("corner", s_max, o, "s_corner_inv_a");
    if (isfinite(s_min_good)) print_s("inner (good px)", s_min_good, o, "s_min_good_inv_a");
    mask_counts(g->mask, npix, o);
    int truth = ew_cxi_reader_has_truth(r), expected = ew_cxi_reader_has_expected(r);
    printf("  ground truth       %s%s\n", truth ? "quaternions, fluence, photons" : "none",
           expected ? ", expected patterns" : "");
    cJSON_AddBoolToObject(o, "truth", truth);
    cJSON_AddBoolToObject(o, "expected", expected);
    if (ew_cxi_reader_structure(r)[0]) printf("  structure          %s\n", ew_cxi_reader_structure(r));
    long long m = n < 1000 ? n : 1000, chunk = 16;
    float *buf = m > 0 ? ew_alloc_array((size_t)chunk * npix, sizeof *buf) : NULL;
    if (m > 0 && !buf) {
        ew_cxi_reader_close(r);
        return EW_ERR_NOMEM;
    }
    double total = 0;
    ew_status_t st = EW_OK;
    ew_progress_t *p = m > 64 ? ew_progress_start("reading patterns", (uint64_t)m) : NULL;
    for (long long i = 0; i < m && st == EW_OK; i += chunk) {
        long long k = m - i < chunk ? m - i : chunk;
        st = ew_cxi_read_patterns(r, i, k, buf);
        for (size_t j = 0; st == EW_OK && j < (size_t)k * npix; j++)
            if (g->mask[j % npix] != 2 && buf[j] > 0) total += buf[j];
        if (p) ew_progress_add(p, (uint64_t)k);
    }
    ew_cli_progress_end(p, st);
    if (st == EW_OK && m > 0) {
        printf("  photons/pattern    %.1f (mean of the first %lld, unmasked pixels)\n", total / m, m);
        cJSON_AddNumberToObject(o, "mean_photons", total / m);
        cJSON_AddNumberToObject(o, "mean_photons_over", (double)m);
    }
    ew_free(buf);
    ew_cxi_reader_close(r);
    return st;
}

static ew_status_t info_h5vol(const char *path, cJSON *o)
{
    ew_h5vol_t v;
    EW_TRY(ew_h5vol_read(path, &v));
    const char *vu = v.space == EW_VOL_RECIPROCAL ? "1/A" : "A";
    printf("  kind               %s (%s space)\n", v.space == EW_VOL_RECIPROCAL ? "intensity" : "density",
           v.space == EW_VOL_RECIPROCAL ? "reciprocal" : "real");
    printf("  size               %d x %d x %d\n  voxel              %.5g x %.5g x %.5g %s\n", v.nx, v.ny, v.nz,
           v.voxel[0], v.voxel[1], v.voxel[2], vu);
    printf("  units              %s\n", v.units ? v.units : "");
    size_t nv = (size_t)v.nx * v.ny * v.nz;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (size_t i = 0; i < nv; i++) {
        lo = fmin(lo, v.data[i]);
        hi = fmax(hi, v.data[i]);
        sum += v.data[i];
    }
    printf("  values             min %.4g max %.4g mean %.4g\n", lo, hi, sum / (double)nv);
    cJSON_AddStringToObject(o, "kind", v.space == EW_VOL_RECIPROCAL ? "intensity" : "density");
    int size[3] = {v.nx, v.ny, v.nz};
    cJSON_AddItemToObject(o, "size_xyz", cJSON_CreateIntArray(size, 3));
    add_vec3(o, "voxel", v.voxel);
    cJSON_AddStringToObject(o, "voxel_units", vu);
    cJSON_AddStringToObject(o, "units", v.units ? v.units : "");
    cJSON_AddNumberToObject(o, "min", lo);
    cJSON_AddNumberToObject(o, "max", hi);
    cJSON_AddNumberToObject(o, "mean", sum / (double)nv);
    cJSON *meta = cJSON_AddObjectToObject(o, "metadata");
    for (size_t i = 0; i < v.meta.n; i++) {
        printf("  %-18s %s\n", v.meta.keys[i], v.meta.values[i]);
        cJSON_AddStringToObject(meta, v.meta.keys[i], v.meta.values[i]);
    }
    ew_h5vol_free(&v);
    return EW_OK;
}

static ew_status_t info_emc(const char *path, cJSON *o)
{
    ew_emc_photons_t p;
    EW_TRY(ew_emc_photons_read(path, &p));
    double total = 0;
    for (size_t d = 0; d < p.num_frames; d++) total += (double)ew_emc_photons_frame_total(&p, d);
    double mean = p.num_frames ? total / (double)p.num_frames : 0;
    printf("  frames             %zu\n  pixels per frame   %d\n  photons/frame      %.2f (mean)\n", p.num_frames,
           p.num_pix, mean);
    cJSON_AddNumberToObject(o, "frames", (double)p.num_frames);
    cJSON_AddNumberToObject(o, "pixels", p.num_pix);
    cJSON_AddNumberToObject(o, "mean_photons", mean);
    ew_emc_photons_free(&p);
    return EW_OK;
}

static ew_status_t info_detector(const char *path, cJSON *o)
{
    ew_emc_detector_t d;
    EW_TRY(ew_emc_detector_read(path, &d));
    double qmax = 0;
    for (int i = 0; i < d.num_pix; i++) {
        const double *q = d.q + 3 * i;
        qmax = fmax(qmax, sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]));
    }
    printf("  pixels             %d\n  detd               %.6g pixels\n  ewald_rad          %.6g voxels\n",
           d.num_pix, d.detd, d.ewald_rad);
    printf("  max |q|            %.4g voxels\n", qmax);
    cJSON_AddNumberToObject(o, "pixels", d.num_pix);
    cJSON_AddNumberToObject(o, "detd", d.detd);
    cJSON_AddNumberToObject(o, "ewald_rad", d.ewald_rad);
    cJSON_AddNumberToObject(o, "qmax_voxels", qmax);
    mask_counts(d.mask, (size_t)d.num_pix, o);
    ew_emc_detector_free(&d);
    return EW_OK;
}

static ew_status_t info_npy(const char *path, cJSON *o)
{
    ew_npy_t a;
    EW_TRY(ew_npy_header_read(path, &a));
    char shape[256] = "(";
    int shp[EW_NPY_MAX_DIM];
    for (int i = 0; i < a.ndim; i++) {
        size_t l = strlen(shape);
        snprintf(shape + l, sizeof shape - l, "%zu%s", a.shape[i], a.ndim == 1 ? ",)" : i + 1 < a.ndim ? ", " : ")");
        shp[i] = (int)a.shape[i];
    }
    if (a.ndim == 0) strcat(shape, ")");
    printf("  dtype              %s\n  shape              %s\n", a.dtype, shape);
    cJSON_AddStringToObject(o, "dtype", a.dtype);
    cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(shp, a.ndim));
    ew_npy_free(&a);
    return EW_OK;
}

static ew_status_t info_png(const char *path, cJSON *o)
{
    int w, h, ch;
    uint8_t *px;
    EW_TRY(ew_png_read(path, &w, &h, &ch, &px));
    free(px);
    printf("  size               %d x %d pixels, %s\n", w, h, ch == 1 ? "gray" : "RGB");
    cJSON_AddNumberToObject(o, "width", w);
    cJSON_AddNumberToObject(o, "height", h);
    cJSON_AddNumberToObject(o, "channels", ch);
    return EW_OK;
}

static ew_status_t info_coords(const char *path, int box, cJSON *o)
{
    ew_coords_t c;
    EW_TRY(box ? ew_coords_read_box(path, &c) : ew_coords_read_topaz(path, &c));
    size_t nimg = 0;
    for (size_t i = 0; i < c.n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen && c.image[i]; j++) seen = c.image[j] && !strcmp(c.image[i], c.image[j]);
        if (c.image[i] && !seen) nimg++;
    }
    printf("  particles          %zu\n", c.n);
    if (!box) printf("  micrographs        %zu\n", nimg);
    if (box && c.n) printf("  box                %.0f pixels\n", c.box[0]);
    cJSON_AddNumberToObject(o, "particles", (double)c.n);
    if (!box) cJSON_AddNumberToObject(o, "micrographs", (double)nimg);
    ew_coords_free(&c);
    return EW_OK;
}

/* safetensors: read and validated by io/safetensors (offsets, shapes). */
static ew_status_t info_safetensors(const char *path, cJSON *o)
{
    ew_safetensors_t st;
    EW_TRY(ew_safetensors_read(path, &st));
    size_t bytes = 0;
    cJSON *tensors = cJSON_AddArrayToObject(o, "tensors");
    for (size_t i = 0; i < st.n; i++) {
        const ew_st_tensor_t *t = &st.t[i];
        char shape[128] = "";
        for (int d = 0; d < t->ndim; d++) {
            size_t l = strlen(shape);
            snprintf(shape + l, sizeof shape - l, "%s%lld", l ? " x " : "", (long long)t->shape[d]);
        }
        if (i < 40) printf("  %-30s %-5s %s\n", t->name, ew_st_dtype_name(t->dtype), shape);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON_AddStringToObject(e, "dtype", ew_st_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToArray(tensors, e);
        bytes += t->end - t->begin;
    }
    if (st.n > 40) printf("  ... %zu tensors in all\n", st.n);
    printf("  %zu tensors, %.3g MB of data\n", st.n, (double)bytes / 1e6);
    cJSON *meta = cJSON_AddObjectToObject(o, "metadata");
    for (size_t i = 0; i < st.n_meta; i++) {
        printf("  metadata %-9s %s\n", st.meta_key[i], st.meta_val[i]);
        cJSON_AddStringToObject(meta, st.meta_key[i], st.meta_val[i]);
    }
    ew_safetensors_free(&st);
    return EW_OK;
}

int cmd_info(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_opt_t opts[] = {{0}};
    ew_cmd_info_t info = {
        "ewald info FILE [--json]",
        "Describes a file in a few lines. The format is detected from the content (and the extension where the "
        "content does not decide): PDB/mmCIF structures (composition, electrons, mass, centre, radius of gyration, "
        "extent), MRC maps and stacks (size, mode, pixel size, origin, statistics), STAR files (blocks, loops, "
        "columns, rows), CXI diffraction files (patterns, detector, beam, s at the detector edge and corner, mask, "
        "ground truth, mean photons per pattern over the first 1000 patterns), HDF5 volumes (kind, size, voxel "
        "size, units, metadata), Dragonfly photon (.emc) and detector files, safetensors, NumPy .npy, PNG, EMAN "
        ".box and Topaz coordinate files.",
        "file, format, and per format: structure: atoms, atoms_by_element, electrons, mass_kda, centre_a, "
        "radius_gyration_a, max_extent_a; MRC: kind, size_xyz, mode, pixel_size_a, origin_a, min, max, mean, rms; "
        "STAR: tables[{block, loop, columns, rows}]; CXI: patterns, width, height, distance_m, pixel_m, "
        "photon_energy_ev, wavelength_a, s_edge_inv_a, s_corner_inv_a, s_min_good_inv_a, mask{good, "
        "no_orientation, bad}, truth, expected, mean_photons, mean_photons_over; HDF5 volume: kind, size_xyz, "
        "voxel, voxel_units, units, min, max, mean, metadata; EMC: frames, pixels, mean_photons; detector: pixels, "
        "detd, ewald_rad, qmax_voxels, mask; safetensors: tensors[{name, dtype, shape}], metadata; npy: dtype, "
        "shape; PNG: width, height, channels; box/Topaz: particles, micrographs",
        1, 1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    const char *path = pos[0];
    ew_filetype_t t;
    if (ew_file_detect(path, &t) != EW_OK) return ew_cli_fail();
    if (t == EW_FILE_UNKNOWN || t == EW_FILE_HDF5_OTHER) {
        ew_fail(EW_ERR_FORMAT,
                "%s: %s (supported: PDB/mmCIF, MRC, STAR, CXI, HDF5 volume, Dragonfly .emc and detector, "
                "safetensors, .npy, PNG, .box, Topaz TSV)",
                path, t == EW_FILE_HDF5_OTHER ? "an HDF5 file with neither /entry_1/data_1/data (CXI) nor /volume"
                                              : "unknown file format");
        return ew_cli_fail();
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    static const char *keys[] = {"unknown", "structure", "mrc", "star", "cxi", "hdf5_volume", "hdf5",
                                 "emc", "detector", "safetensors", "npy", "png", "box", "topaz"};
    cJSON_AddStringToObject(o, "format", keys[t]);
    printf("%s: %s\n", path, ew_filetype_name(t));
    ew_status_t st = EW_ERR_INTERNAL;
    switch (t) {
    case EW_FILE_STRUCTURE: st = info_structure(path, o); break;
    case EW_FILE_MRC: st = info_mrc(path, o); break;
    case EW_FILE_STAR: st = info_star(path, o); break;
    case EW_FILE_CXI: st = info_cxi(path, o); break;
    case EW_FILE_H5VOL: st = info_h5vol(path, o); break;
    case EW_FILE_EMC: st = info_emc(path, o); break;
    case EW_FILE_DETECTOR: st = info_detector(path, o); break;
    case EW_FILE_SAFETENSORS: st = info_safetensors(path, o); break;
    case EW_FILE_NPY: st = info_npy(path, o); break;
    case EW_FILE_PNG: st = info_png(path, o); break;
    case EW_FILE_BOX: st = info_coords(path, 1, o); break;
    case EW_FILE_TOPAZ: st = info_coords(path, 0, o); break;
    default: break;
    }
    if (st == EW_OK && json) ew_cli_json_print(o);
    cJSON_Delete(o);
    return st == EW_OK ? 0 : ew_cli_fail();
}
