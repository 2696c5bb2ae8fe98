/* ewald convert: between the formats the library reads and writes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "io/coords.h"
#include "io/cxi.h"
#include "io/emcfile.h"
#include "io/filetype.h"
#include "io/star.h"
#include "io/volume.h"

typedef struct {
    const char *to, *detector, *kind, *micrograph_ext;
    double voxel, voxel_ds, energy_ev, wavelength_a, pixel_um;
    long width, height, box_size, chunk;
    int round;
} conv_opts_t;

/* ---------------------------------------------------------- CXI -> EMC */

static ew_status_t cxi_to_emc(const char *in, const char *out, const conv_opts_t *o, cJSON *js)
{
    char detpath[4096];
    if (o->detector)
        snprintf(detpath, sizeof detpath, "%s", o->detector);
    else
        ew_cli_replace_ext(out, ".dat", detpath, sizeof detpath);
    ew_cxi_reader_t *r;
    EW_TRY(ew_cxi_reader_open(in, &r));
    const ew_cxi_geometry_t *g = ew_cxi_reader_geometry(r);
    size_t npix = (size_t)g->width * g->height;
    long long n = ew_cxi_reader_count(r);
    /* Dragonfly's default: one voxel = one pixel at the centre, ewald_rad = detd. */
    double ds = o->voxel_ds > 0 ? o->voxel_ds : g->pixel_x_m / (g->distance_m * g->wavelength_a);
    ew_emc_detector_t det;
    ew_status_t st = ew_emc_detector_from_geometry(g, ds, &det);
    ew_emc_writer_t *w = NULL;
    float *buf = NULL;
    if (st == EW_OK) st = ew_emc_writer_open(out, (int)npix, &w);
    if (st == EW_OK && !(buf = ew_alloc_array((size_t)o->chunk * npix, sizeof *buf))) st = EW_ERR_NOMEM;
    ew_progress_t *p = st == EW_OK ? ew_progress_start("converting patterns", (uint64_t)n) : NULL;
    double total = 0, worst = 0;
    for (long long i = 0; st == EW_OK && i < n; i += o->chunk) {
        long long k = n - i < o->chunk ? n - i : o->chunk;
        if ((st = ew_cxi_read_patterns(r, i, k, buf)) != EW_OK) break;
        for (long long f = 0; st == EW_OK && f < k; f++) {
            float *fr = buf + (size_t)f * npix;
            for (size_t j = 0; j < npix; j++) {
                if (g->mask[j] == 2 && !(fr[j] >= 0)) fr[j] = 0; /* bad pixels: Dragonfly ignores them */
                double d = fabs(fr[j] - nearbyint(fr[j]));
                if (d > worst) worst = d;
                if (!o->round && d > 1e-3) {
                    st = ew_fail(EW_ERR_FORMAT,
                                 "%s: pattern %lld pixel %zu holds %g, not a photon count (expected photons? "
                                 "--round rounds them)",
                                 in, i + f, j, fr[j]);
                    break;
                }
                total += fr[j];
            }
            if (st == EW_OK && (st = ew_emc_writer_add_frame(w, fr)) != EW_OK)
                ew_fail_context(st, "%s: pattern %lld", in, i + f);
        }
        if (st == EW_OK) ew_progress_add(p, (uint64_t)k);
    }
    ew_cli_progress_end(p, st);
    ew_free(buf);
    ew_cxi_reader_close(r);
    if (st == EW_OK) st = ew_emc_detector_write(detpath, &det);
    if (st == EW_OK) {
        st = ew_emc_writer_close(w);
        if (st != EW_OK) remove(detpath);
    } else
        ew_emc_writer_abort(w);
    if (st == EW_OK) {
        printf("wrote %s (%lld frames of %zu pixels, %.2f photons per frame)\n", out, n, npix, n ? total / n : 0);
        printf("wrote %s (detd %.6g px, ewald_rad %.6g voxels, voxel %.6g 1/A)\n", detpath, det.detd, det.ewald_rad,
               ds);
        cJSON_AddNumberToObject(js, "frames", (double)n);
        cJSON_AddNumberToObject(js, "pixels", (double)npix);
        cJSON_AddNumberToObject(js, "mean_photons", n ? total / n : 0);
        cJSON_AddStringToObject(js, "detector", detpath);
        cJSON_AddNumberToObject(js, "voxel_ds", ds);
        cJSON_AddNumberToObject(js, "ewald_rad", det.ewald_rad);
        cJSON_AddNumberToObject(js, "max_rounding", worst);
    }
    ew_emc_detector_free(&det);
    return st;
}

/* ---------------------------------------------------------- EMC -> CXI */

static ew_status_t emc_to_cxi(const char *in, const char *out, const conv_opts_t *o, cJSON *js)
{
    if (!o->detector) return ew_fail(EW_ERR_ARG, "%s -> %s needs --detector FILE (the Dragonfly detector file)", in, out);
    if (!(o->energy_ev > 0) && !(o->wavelength_a > 0))
        return ew_fail(EW_ERR_ARG, "%s -> %s needs the beam: --energy EV or --wavelength A", in, out);
    if (!(o->pixel_um > 0)) return ew_fail(EW_ERR_ARG, "%s -> %s needs --pixel-um (detector pixel size, um)", in, out);
    double lambda = o->wavelength_a > 0 ? o->wavelength_a : EW_HC_EV_A / o->energy_ev;
    ew_emc_detector_t det;
    EW_TRY(ew_emc_detector_read(o->detector, &det));
    long w = o->width, h = o->height;
    if (w <= 0 && h <= 0) {
        w = h = lround(sqrt((double)det.num_pix));
        if (w * h != det.num_pix) {
            ew_emc_detector_free(&det);
            return ew_fail(EW_ERR_ARG, "%s: %d pixels is not a square detector; give --width and --height",
                           o->detector, det.num_pix);
        }
    } else if (w <= 0)
        w = det.num_pix / h;
    else if (h <= 0)
        h = det.num_pix / w;
    ew_cxi_geometry_t g;
    ew_status_t st = ew_emc_detector_to_geometry(&det, lambda, o->pixel_um * 1e-6, (int)w, (int)h, &g);
    ew_emc_detector_free(&det);
    if (st != EW_OK) return st;
    ew_emc_photons_t ph;
    if ((st = ew_emc_photons_read(in, &ph)) != EW_OK) {
        ew_cxi_geometry_free(&g);
        return st;
    }
    if (ph.num_pix != (int)(w * h)) {
        st = ew_fail(EW_ERR_FORMAT, "%s: %d pixels per frame, but the detector %s has %ld", in, ph.num_pix,
                     o->detector, w * h);
    }
    ew_cxi_write_options_t wo = {0};
    wo.n_patterns = (long long)ph.num_frames;
    wo.deflate = 4;
    ew_cxi_writer_t *cw = NULL;
    if (st == EW_OK && ph.num_frames == 0) st = ew_fail(EW_ERR_FORMAT, "%s: no frames", in);
    if (st == EW_OK) st = ew_cxi_writer_open(out, &g, &wo, &cw);
    size_t npix = (size_t)w * h;
    float *buf = st == EW_OK ? ew_alloc_array((size_t)o->chunk * npix, sizeof *buf) : NULL;
    if (st == EW_OK && !buf) st = EW_ERR_NOMEM;
    ew_progress_t *p = st == EW_OK ? ew_progress_start("converting frames", ph.num_frames) : NULL;
    for (size_t i = 0; st == EW_OK && i < ph.num_frames; i += (size_t)o->chunk) {
        size_t k = ph.num_frames - i < (size_t)o->chunk ? ph.num_frames - i : (size_t)o->chunk;
        for (size_t f = 0; f < k; f++) ew_emc_photons_to_dense(&ph, i + f, buf + f * npix);
        st = ew_cxi_write_patterns(cw, (long long)i, (long long)k, buf);
        if (st == EW_OK) ew_progress_add(p, k);
    }
    ew_cli_progress_end(p, st);
    ew_free(buf);
    if (st == EW_OK)
        st = ew_cxi_writer_close(cw);
    else
        ew_cxi_writer_abort(cw);
    if (st == EW_OK) {
        printf("wrote %s (%zu patterns of %ld x %ld, %.1f eV, distance %.4g mm, centre (%.2f, %.2f) px)\n", out,
               ph.num_frames, w, h, g.photon_energy_ev, g.distance_m * 1e3, g.center_x, g.center_y);
        cJSON_AddNumberToObject(js, "patterns", (double)ph.num_frames);
        cJSON_AddNumberToObject(js, "width", (double)w);
        cJSON_AddNumberToObject(js, "height", (double)h);
        cJSON_AddNumberToObject(js, "distance_m", g.distance_m);
        cJSON_AddNumberToObject(js, "photon_energy_ev", g.photon_energy_ev);
    }
    ew_emc_photons_free(&ph);
    ew_cxi_geometry_free(&g);
    return st;
}

/* ------------------------------------------------------------- volumes */

static ew_status_t volume_convert(const char *in, const char *out, const conv_opts_t *o, cJSON *js)
{
    int want = !strcmp(o->kind, "auto") ? -1 : !strcmp(o->kind, "intensity") ? EW_VOLUME_INTENSITY : EW_VOLUME_DENSITY;
    ew_volume_t v;
    EW_TRY(ew_volume_read(in, want, &v));
    if (o->voxel > 0) v.voxel = o->voxel;
    ew_status_t st = ew_volume_write(out, &v);
    if (st == EW_OK) {
        printf("wrote %s (%s volume %d x %d x %d, voxel %.5g %s)\n", out, ew_volume_kind_name(v.kind), v.nx, v.ny,
               v.nz, v.voxel, v.kind == EW_VOLUME_INTENSITY ? "1/A" : "A");
        cJSON_AddStringToObject(js, "kind", ew_volume_kind_name(v.kind));
        int size[3] = {v.nx, v.ny, v.nz};
        cJSON_AddItemToObject(js, "size_xyz", cJSON_CreateIntArray(size, 3));
        cJSON_AddNumberToObject(js, "voxel", v.voxel);
    }
    ew_volume_free(&v);
    return st;
}

/* --------------------------------------------------------- coordinates */

static ew_status_t star_read_coords(const char *path, ew_coords_t *c)
{
    ew_star_t s;
    EW_TRY(ew_star_read(path, &s));
    ew_star_col_t cx, cy, cm, cs;
    ew_status_t st = ew_star_column(&s, NULL, "rlnCoordinateX", &cx);
    if (st == EW_OK) st = ew_star_column(&s, NULL, "rlnCoordinateY", &cy);
    if (st == EW_OK) st = ew_star_column(&s, NULL, "rlnMicrographName", &cm);
    int has_score = ew_star_has_column(&s, NULL, "rlnAutopickFigureOfMerit");
    if (st == EW_OK && has_score) st = ew_star_column(&s, NULL, "rlnAutopickFigureOfMerit", &cs);
    ew_coords_init(c);
    for (size_t i = 0; st == EW_OK && i < ew_star_rows(&cx); i++) {
        double x, y, sc = 0;
        if ((st = ew_star_get_double(&cx, i, &x)) != EW_OK || (st = ew_star_get_double(&cy, i, &y)) != EW_OK) break;
        if (has_score && (st = ew_star_get_double(&cs, i, &sc)) != EW_OK) break;
        st = ew_coords_add(c, ew_star_get_string(&cm, i), x, y, sc, 0);
    }
    if (st != EW_OK) ew_coords_free(c);
    ew_star_free(&s);
    return st;
}

static ew_status_t star_write_coords(const char *path, const ew_coords_t *c)
{
    ew_star_t s;
    ew_star_init(&s, path);
    static const char *const cols[] = {"rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY",
                                       "rlnAutopickFigureOfMerit"};
    size_t b, t;
    ew_status_t st = ew_star_add_block(&s, "particles", &b);
    if (st == EW_OK) st = ew_star_add_loop(&s, b, 4, cols, &t);
    for (size_t i = 0; st == EW_OK && i < c->n; i++) {
        char x[32], y[32], sc[32];
        snprintf(x, sizeof x, "%.2f", c->x[i]);
        snprintf(y, sizeof y, "%.2f", c->y[i]);
        snprintf(sc, sizeof sc, "%.6g", c->score[i]);
        const char *row[4] = {c->image[i] ? c->image[i] : "micrograph.mrc", x, y, sc};
        st = ew_star_add_row(&s, b, t, row);
    }
    if (st == EW_OK) st = ew_star_write(path, &s);
    ew_star_free(&s);
    return st;
}

/* The micrograph name of a .box file: its base name with micrograph_ext. */
static ew_status_t box_read_named(const char *path, const char *ext, ew_coords_t *c)
{
    ew_coords_t raw;
    EW_TRY(ew_coords_read_box(path, &raw));
    char name[4096];
    const char *base = strrchr(path, '/');
    snprintf(name, sizeof name, "%s", base ? base + 1 : path);
    char *dot = strrchr(name, '.');
    if (dot) *dot = '\0';
    strncat(name, ext, sizeof name - strlen(name) - 1);
    ew_coords_init(c);
    ew_status_t st = EW_OK;
    for (size_t i = 0; i < raw.n && st == EW_OK; i++) st = ew_coords_add(c, name, raw.x[i], raw.y[i], 0, raw.box[i]);
    ew_coords_free(&raw);
    if (st != EW_OK) ew_coords_free(c);
    return st;
}

/* One .box file per micrograph in directory dir (created if absent). */
static ew_status_t box_write_dir(const char *dir, const ew_coords_t *c, int box, size_t *nfiles)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return ew_fail(EW_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    *nfiles = 0;
    char *done = calloc(c->n ? c->n : 1, 1);
    if (!done) return ew_fail(EW_ERR_NOMEM, "out of memory");
    ew_status_t st = EW_OK;
    for (size_t i = 0; i < c->n && st == EW_OK; i++) {
        if (done[i]) continue;
        const char *img = c->image[i] ? c->image[i] : "micrograph";
        ew_coords_t one;
        ew_coords_init(&one);
        for (size_t j = i; j < c->n && st == EW_OK; j++) {
            const char *im2 = c->image[j] ? c->image[j] : "micrograph";
            if (done[j] || strcmp(img, im2)) continue;
            done[j] = 1;
            st = ew_coords_add(&one, NULL, c->x[j], c->y[j], c->score[j], box);
        }
        char path[4096], base[1024];
        const char *sl = strrchr(img, '/');
        snprintf(base, sizeof base, "%s", sl ? sl + 1 : img);
        char *dot = strrchr(base, '.');
        if (dot) *dot = '\0';
        snprintf(path, sizeof path, "%s/%s.box", dir, base);
        if (st == EW_OK) st = ew_coords_write_box(path, &one, box);
        if (st == EW_OK) (*nfiles)++;
        ew_coords_free(&one);
    }
    free(done);
    return st;
}

static ew_status_t coords_convert(const char *in, ew_filetype_t tin, const char *out, const char *to,
                                  const conv_opts_t *o, cJSON *js)
{
    ew_coords_t c;
    if (tin == EW_FILE_STAR)
        EW_TRY(star_read_coords(in, &c));
    else if (tin == EW_FILE_TOPAZ)
        EW_TRY(ew_coords_read_topaz(in, &c));
    else
        EW_TRY(box_read_named(in, o->micrograph_ext, &c));
    ew_status_t st;
    size_t nfiles = 1;
    if (!strcmp(to, "star"))
        st = star_write_coords(out, &c);
    else if (!strcmp(to, "topaz"))
        st = ew_coords_write_topaz(out, &c);
    else
        st = box_write_dir(out, &c, (int)o->box_size, &nfiles);
    if (st == EW_OK) {
        printf("wrote %s (%zu particles%s)\n", out, c.n, !strcmp(to, "box") ? "" : "");
        if (!strcmp(to, "box")) printf("  %zu .box file%s, box %ld px\n", nfiles, nfiles == 1 ? "" : "s", o->box_size);
        cJSON_AddNumberToObject(js, "particles", (double)c.n);
        if (!strcmp(to, "box")) cJSON_AddNumberToObject(js, "box_files", (double)nfiles);
    }
    ew_coords_free(&c);
    return st;
}

int cmd_convert(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    conv_opts_t o = {"auto", NULL, "auto", ".mrc", 0, 0, 0, 0, 0, 0, 0, 100, 64, 0};
    ew_opt_t opts[] = {
        {"to", 't', EW_OPT_CHOICE, &o.to, NULL, "output format; auto: from OUT's extension", "auto|emc|cxi|mrc|hdf5|star|topaz|box", 0, 0, 0},
        {"detector", 'd', EW_OPT_STRING, &o.detector, "emc", "Dragonfly detector file: written (CXI -> EMC; default OUT with .dat) or read (EMC -> CXI)", NULL, 0, 0, 0},
        {"voxel-ds", 0, EW_OPT_DOUBLE, &o.voxel_ds, "emc", "CXI -> EMC: 3D voxel size in 1/A for the detector's q (0: pixel / (lambda D), Dragonfly's ewald_rad = detd)", NULL, 0, 0, 1e3},
        {"round", 0, EW_OPT_FLAG, &o.round, "emc", "CXI -> EMC: round non-integer patterns (expected photons) to counts instead of failing", NULL, 0, 0, 0},
        {"energy", 'e', EW_OPT_DOUBLE, &o.energy_ev, "emc", "EMC -> CXI: photon energy, eV", NULL, 0, 0, 1e7},
        {"wavelength", 0, EW_OPT_DOUBLE, &o.wavelength_a, "emc", "EMC -> CXI: wavelength, Angstrom (instead of --energy)", NULL, 0, 0, 1e4},
        {"pixel-um", 0, EW_OPT_DOUBLE, &o.pixel_um, "emc", "EMC -> CXI: detector pixel size, micrometres", NULL, 0, 0, 1e6},
        {"width", 0, EW_OPT_INT, &o.width, "emc", "EMC -> CXI: detector width in pixels (0: square detector)", NULL, 0, 0, 1e6},
        {"height", 0, EW_OPT_INT, &o.height, "emc", "EMC -> CXI: detector height in pixels (0: square detector)", NULL, 0, 0, 1e6},
        {"chunk", 0, EW_OPT_INT, &o.chunk, "emc", "patterns per read/write block", NULL, 0, 1, 1e5},
        {"kind", 'k', EW_OPT_CHOICE, &o.kind, "volume", "volume kind; auto: HDF5 says, MRC is density", "auto|density|intensity", 0, 0, 0},
        {"voxel", 0, EW_OPT_DOUBLE, &o.voxel, "volume", "override the voxel size: Angstrom (density) or 1/A (intensity); 0 keeps the file's", NULL, 0, 0, 1e6},
        {"box-size", 'b', EW_OPT_INT, &o.box_size, "coords", "box edge written to .box files, pixels", NULL, 0, 1, 1e5},
        {"micrograph-ext", 0, EW_OPT_STRING, &o.micrograph_ext, "coords", ".box input: micrograph name = file base name + this", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald convert IN OUT [options]",
        "Converts between formats: CXI patterns -> Dragonfly photon file (.emc) + detector file, and back (.emc + "
        "--detector + --energy/--wavelength + --pixel-um -> .cxi); volumes MRC <-> HDF5 (density, or intensity with "
        "--kind intensity: an MRC intensity file holds ds in 1/A as its pixel size); particle coordinates RELION "
        "STAR <-> Topaz TSV (.txt/.tsv) <-> EMAN .box (OUT a directory: one .box per micrograph). The input format "
        "is detected from its content, the output from OUT's extension (a directory or --to box for .box files).",
        "input, output, from, to, and per conversion: CXI->EMC: frames, pixels, mean_photons, detector, voxel_ds, "
        "ewald_rad, max_rounding; EMC->CXI: patterns, width, height, distance_m, photon_energy_ev; volumes: kind, "
        "size_xyz, voxel; coordinates: particles, box_files",
        2, 2};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    const char *in = pos[0], *out = pos[1];
    ew_filetype_t tin;
    if (ew_file_detect(in, &tin) != EW_OK) return ew_cli_fail();
    const char *to = o.to;
    struct stat sb;
    size_t lo = strlen(out);
    if (!strcmp(to, "auto")) {
        to = ew_cli_ext_is(out, "emc")                           ? "emc"
             : ew_cli_ext_is(out, "cxi")                         ? "cxi"
             : ew_cli_ext_is(out, "mrc|map|rec")                 ? "mrc"
             : ew_cli_ext_is(out, "h5|hdf5|hdf")                 ? (tin == EW_FILE_EMC ? "cxi" : "hdf5")
             : ew_cli_ext_is(out, "star")                        ? "star"
             : ew_cli_ext_is(out, "txt|tsv")                     ? "topaz"
             : (lo && out[lo - 1] == '/') || (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) ? "box"
                                                                                            : NULL;
        if (!to) {
            ew_fail(EW_ERR_ARG, "%s: cannot tell the output format from the name (use --to)", out);
            return ew_cli_fail();
        }
    }
    cJSON *js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "input", in);
    cJSON_AddStringToObject(js, "output", out);
    cJSON_AddStringToObject(js, "from", ew_filetype_name(tin));
    cJSON_AddStringToObject(js, "to", to);
    ew_status_t st;
    int coords_in = tin == EW_FILE_STAR || tin == EW_FILE_TOPAZ || tin == EW_FILE_BOX;
    if (tin == EW_FILE_CXI && !strcmp(to, "emc"))
        st = cxi_to_emc(in, out, &o, js);
    else if (tin == EW_FILE_EMC && !strcmp(to, "cxi"))
        st = emc_to_cxi(in, out, &o, js);
    else if ((tin == EW_FILE_MRC || tin == EW_FILE_H5VOL) && (!strcmp(to, "mrc") || !strcmp(to, "hdf5")))
        st = volume_convert(in, out, &o, js);
    else if (coords_in && (!strcmp(to, "star") || !strcmp(to, "topaz") || !strcmp(to, "box")))
        st = coords_convert(in, tin, out, to, &o, js);
    else
        st = ew_fail(EW_ERR_UNSUPPORTED,
                     "%s (%s) -> %s: no such conversion (CXI<->EMC, MRC<->HDF5 volume, STAR/Topaz/box coordinates)",
                     in, ew_filetype_name(tin), to);
    if (st == EW_OK && json) ew_cli_json_print(js);
    cJSON_Delete(js);
    return st == EW_OK ? 0 : ew_cli_fail();
}
