/* Tests of the ewald commands: the binary (EWALD_BIN) run on small files
 * made here with the library's writers (and on ../shared/data when it is
 * there). Each command: outputs exist and parse, --json's last line is one
 * JSON object, bad input gives exactly one line on stderr, a non-zero exit
 * status and no output file. */
#include "testutil.h"

#include <cJSON.h>

#include "core/rng.h"
#include "geom/geom.h"
#include "io/coords.h"
#include "io/cxi.h"
#include "io/emcfile.h"
#include "io/h5vol.h"
#include "io/mrc.h"
#include "eval/align.h"
#include "io/npy.h"
#include "io/png.h"
#include "io/quatfile.h"
#include "io/star.h"
#include "io/volume.h"

static const char *bin(void)
{
    const char *b = getenv("EWALD_BIN");
    return b && access(b, X_OK) == 0 ? b : NULL;
}

static char out_path[600], err_path[600];

/* Run `ewald ARGS` with stdout and stderr to files; returns the exit status. */
static int ewald(const char *fmt, ...)
{
    char args[3000], cmd[5000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(out_path, sizeof out_path, "%s", ew_test_tmpfile("stdout.txt"));
    snprintf(err_path, sizeof err_path, "%s", ew_test_tmpfile("stderr.txt"));
    snprintf(cmd, sizeof cmd, "%s %s >'%s' 2>'%s'", bin(), args, out_path, err_path);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* The last line of the last run's stdout, parsed (caller deletes). */
static cJSON *last_json(void)
{
    size_t n = 0;
    unsigned char *b = ew_test_read_bytes(out_path, &n);
    assert_non_null(b);
    while (n > 0 && b[n - 1] == '\n') n--;
    b[n] = '\0';
    char *line = strrchr((char *)b, '\n');
    cJSON *j = cJSON_Parse(line ? line + 1 : (char *)b);
    free(b);
    if (!cJSON_IsObject(j)) fail_msg("last line of stdout is not a JSON object");
    return j;
}

static double jnum(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    if (!cJSON_IsNumber(v)) fail_msg("JSON key %s missing or not a number", key);
    return v->valuedouble;
}

/* Lines on stderr of the last run. */
static int stderr_lines(void)
{
    size_t n = 0;
    unsigned char *b = ew_test_read_bytes(err_path, &n);
    if (!b) return -1;
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += b[i] == '\n';
    free(b);
    return lines;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* Assert the last run failed with one line on stderr starting "ewald: ". */
static void assert_failed_cleanly(int rc)
{
    assert_int_not_equal(rc, 0);
    assert_int_equal(stderr_lines(), 1);
    size_t n = 0;
    unsigned char *b = ew_test_read_bytes(err_path, &n);
    assert_non_null(b);
    assert_true(n > 7 && !memcmp(b, "ewald: ", 7));
    free(b);
}

/* A small CXI file: n patterns of 24 x 24 Poisson counts (or counts + 0.3 if
 * !integer), truth quaternions, one bad pixel and a 2 x 2 centre not used
 * for orientation. */
#define CW 24
#define CH 20
static void make_cxi(const char *path, int n, int integer, ew_quat_t *quats)
{
    ew_cxi_geometry_t g;
    assert_ok(ew_cxi_geometry_alloc(&g, CW, CH, 1));
    g.distance_m = 0.1;
    g.pixel_x_m = g.pixel_y_m = 200e-6;
    g.center_x = CW / 2 - 0.5;
    g.center_y = CH / 2 - 0.5;
    g.photon_energy_ev = 2000;
    g.wavelength_a = EW_HC_EV_A / 2000;
    assert_ok(ew_cxi_geometry_flat_s(&g));
    g.mask[3] = 2;
    g.mask[(CH / 2) * CW + CW / 2] = g.mask[(CH / 2 - 1) * CW + CW / 2] = 1;
    ew_cxi_write_options_t o = {0};
    o.n_patterns = n;
    o.with_truth = 1;
    ew_cxi_writer_t *w;
    assert_ok(ew_cxi_writer_open(path, &g, &o, &w));
    float *d = malloc(sizeof(float) * CW * CH);
    for (int i = 0; i < n; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 5, ew_rng_stream_id(EW_RNG_TAG_GENERIC, (uint64_t)i));
        for (int p = 0; p < CW * CH; p++) d[p] = (float)ew_rng_poisson(&r, 0.7) + (integer ? 0.0f : 0.3f);
        quats[i] = ew_quat_random(&r);
        double q[4] = {quats[i].w, quats[i].x, quats[i].y, quats[i].z};
        assert_ok(ew_cxi_write_patterns(w, i, 1, d));
        assert_ok(ew_cxi_write_truth(w, i, 1, q, NULL, NULL));
    }
    free(d);
    assert_ok(ew_cxi_writer_close(w));
    ew_cxi_geometry_free(&g);
}

static void test_help_lists_commands(void **state)
{
    (void)state;
    if (!bin()) skip();
    assert_int_equal(ewald("--help"), 0);
    size_t n = 0;
    char *b = (char *)ew_test_read_bytes(out_path, &n);
    assert_non_null(b);
    b[n - 1] = '\0';
    assert_non_null(strstr(b, "info"));
    assert_non_null(strstr(b, "convert"));
    free(b);
    const char *cmds[] = {"info", "convert", "compare", "eval orientations", "xfel simulate", "phase", "xfel emc", "em simulate"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        int rc = ewald("%s --help", cmds[i]);
        assert_int_equal(rc, 0);
        b = (char *)ew_test_read_bytes(out_path, &n);
        b[n - 1] = '\0';
        assert_non_null(strstr(b, "--json keys:"));
        free(b);
    }
}

static void test_info_cxi(void **state)
{
    (void)state;
    if (!bin()) skip();
    char cxi[600];
    snprintf(cxi, sizeof cxi, "%s", ew_test_tmpfile("a.cxi"));
    ew_quat_t q[6];
    make_cxi(cxi, 6, 1, q);
    assert_int_equal(ewald("info '%s' --json", cxi), 0);
    cJSON *j = last_json();
    assert_string_equal(cJSON_GetObjectItem(j, "format")->valuestring, "cxi");
    assert_close(jnum(j, "patterns"), 6, 0, 0);
    assert_close(jnum(j, "width"), CW, 0, 0);
    assert_close(jnum(j, "height"), CH, 0, 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "truth")));
    /* Mean photons: Poisson(0.7) over the unmasked 479 pixels, about 335. */
    assert_close(jnum(j, "mean_photons"), 0.7 * (CW * CH - 1), 0.1, 0);
    /* s at the corner: |s| = 2 sin(theta) / lambda with theta half the scattering angle. */
    double rx = (CW - 1 - (CW / 2 - 0.5)) * 200e-6, ry = (CH - 1 - (CH / 2 - 0.5)) * 200e-6;
    double tth = atan(sqrt(rx * rx + ry * ry) / 0.1);
    assert_close(jnum(j, "s_corner_inv_a"), 2 * sin(tth / 2) / (EW_HC_EV_A / 2000), 1e-5, 0);
    cJSON *m = cJSON_GetObjectItem(j, "mask");
    assert_close(jnum(m, "bad"), 1, 0, 0);
    assert_close(jnum(m, "no_orientation"), 2, 0, 0);
    cJSON_Delete(j);
}

static void test_info_shared_and_errors(void **state)
{
    (void)state;
    if (!bin()) skip();
    const char *junk = ew_test_tmpfile("junk.xyz");
    static const char junk_bytes[] = "\x01\x02\x03 not a format";
    assert_int_equal(ew_test_write_bytes(junk, junk_bytes, sizeof junk_bytes - 1), 0);
    assert_failed_cleanly(ewald("info '%s'", junk));
    assert_failed_cleanly(ewald("info /nonexistent/file.mrc"));
    assert_failed_cleanly(ewald("info"));
    const char *pdb = ew_test_data("pdb/1uao.pdb");
    if (pdb) {
        assert_int_equal(ewald("info '%s' --json", pdb), 0);
        cJSON *j = last_json();
        assert_string_equal(cJSON_GetObjectItem(j, "format")->valuestring, "structure");
        assert_close(jnum(j, "atoms"), 138, 0, 0);
        cJSON_Delete(j);
    }
    const char *star = ew_test_data("cryoem/relion31.star");
    if (star) {
        assert_int_equal(ewald("info '%s' --json", star), 0);
        cJSON *j = last_json();
        cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 1);
        assert_non_null(t);
        assert_close(jnum(t, "rows"), 5, 0, 0);
        cJSON_Delete(j);
    }
    /* safetensors: an 8-byte little-endian header length, then the JSON header, then the data. */
    const char *st = ew_test_tmpfile("m.safetensors");
    static const char hdr[] = "{\"__metadata__\":{\"epoch\":\"3\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                              "\"data_offsets\":[0,24]}}";
    unsigned char stbuf[8 + sizeof hdr - 1 + 24] = {0};
    stbuf[0] = (unsigned char)(sizeof hdr - 1);
    memcpy(stbuf + 8, hdr, sizeof hdr - 1);
    assert_int_equal(ew_test_write_bytes(st, stbuf, sizeof stbuf), 0);
    assert_int_equal(ewald("info '%s' --json", st), 0);
    cJSON *js = last_json();
    assert_string_equal(cJSON_GetObjectItem(js, "format")->valuestring, "safetensors");
    cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(js, "tensors"), 0);
    assert_string_equal(cJSON_GetObjectItem(t0, "dtype")->valuestring, "F32");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t0, "shape")), 2);
    cJSON_Delete(js);
    /* PNG */
    const char *png = ew_test_tmpfile("g.png");
    uint8_t px[6 * 4] = {0};
    assert_ok(ew_png_write_gray8(png, 6, 4, px));
    assert_int_equal(ewald("info '%s' --json", png), 0);
    js = last_json();
    assert_close(jnum(js, "width"), 6, 0, 0);
    assert_close(jnum(js, "height"), 4, 0, 0);
    cJSON_Delete(js);
    /* npy written here */
    const char *npy = ew_test_tmpfile("q.npy");
    double d[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    size_t shape[2] = {2, 4};
    assert_ok(ew_npy_write_f64(npy, d, 2, shape));
    assert_int_equal(ewald("info '%s' --json", npy), 0);
    cJSON *j = last_json();
    assert_string_equal(cJSON_GetObjectItem(j, "dtype")->valuestring, "<f8");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "shape")), 2);
    cJSON_Delete(j);
}

static void test_convert_cxi_emc_round_trip(void **state)
{
    (void)state;
    if (!bin()) skip();
    char cxi[600], emc[600], det[600], back[600];
    snprintf(cxi, sizeof cxi, "%s", ew_test_tmpfile("c.cxi"));
    snprintf(emc, sizeof emc, "%s", ew_test_tmpfile("c.emc"));
    snprintf(det, sizeof det, "%s", ew_test_tmpfile("c.dat"));
    snprintf(back, sizeof back, "%s", ew_test_tmpfile("back.cxi"));
    ew_quat_t q[5];
    make_cxi(cxi, 5, 1, q);
    assert_int_equal(ewald("convert '%s' '%s' --json", cxi, emc), 0);
    cJSON *j = last_json();
    assert_close(jnum(j, "frames"), 5, 0, 0);
    /* Dragonfly's default voxel: ewald_rad = detd = D / pixel. */
    assert_close(jnum(j, "ewald_rad"), 0.1 / 200e-6, 1e-9, 0);
    cJSON_Delete(j);
    assert_true(exists(det));
    assert_int_equal(ewald("info '%s' --json", det), 0);
    j = last_json();
    assert_string_equal(cJSON_GetObjectItem(j, "format")->valuestring, "detector");
    assert_close(jnum(j, "pixels"), CW * CH, 0, 0);
    cJSON_Delete(j);
    assert_int_equal(ewald("convert '%s' '%s' --detector '%s' --energy 2000 --pixel-um 200 --width %d --height %d",
                           emc, back, det, CW, CH),
                     0);
    ew_cxi_reader_t *a, *b;
    assert_ok(ew_cxi_reader_open(cxi, &a));
    assert_ok(ew_cxi_reader_open(back, &b));
    assert_int_equal(ew_cxi_reader_count(b), 5);
    const ew_cxi_geometry_t *ga = ew_cxi_reader_geometry(a), *gb = ew_cxi_reader_geometry(b);
    assert_close(gb->distance_m, 0.1, 1e-9, 0);
    assert_close(gb->center_x, ga->center_x, 0, 1e-6);
    assert_close(gb->center_y, ga->center_y, 0, 1e-6);
    for (int p = 0; p < CW * CH; p++) {
        assert_int_equal(ga->mask[p], gb->mask[p]);
        for (int k = 0; k < 3; k++) assert_close(gb->s[3 * p + k], ga->s[3 * p + k], 1e-5, 1e-7);
    }
    float pa[CW * CH * 5], pb[CW * CH * 5];
    assert_ok(ew_cxi_read_patterns(a, 0, 5, pa));
    assert_ok(ew_cxi_read_patterns(b, 0, 5, pb));
    assert_memory_equal(pa, pb, sizeof pa);
    ew_cxi_reader_close(a);
    ew_cxi_reader_close(b);

    /* Not counts: a clear error and no output; --round accepts them. */
    char bad[600], emc2[600], det2[600];
    snprintf(bad, sizeof bad, "%s", ew_test_tmpfile("float.cxi"));
    snprintf(emc2, sizeof emc2, "%s", ew_test_tmpfile("f.emc"));
    snprintf(det2, sizeof det2, "%s", ew_test_tmpfile("f.dat"));
    make_cxi(bad, 3, 0, q);
    assert_failed_cleanly(ewald("convert '%s' '%s'", bad, emc2));
    assert_false(exists(emc2));
    assert_false(exists(det2));
    assert_int_equal(ew_test_count_temporaries(), 0);
    assert_int_equal(ewald("convert '%s' '%s' --round", bad, emc2), 0);
    assert_true(exists(emc2));
    /* EMC -> CXI without the beam: error, no file. */
    remove(back);
    assert_failed_cleanly(ewald("convert '%s' '%s' --detector '%s' --pixel-um 200", emc, back, det));
    assert_false(exists(back));
}

static void test_convert_volumes(void **state)
{
    (void)state;
    if (!bin()) skip();
    enum { N = 12 };
    float v[N * N * N];
    for (int i = 0; i < N * N * N; i++) v[i] = (float)sin(0.37 * i) * (float)(i % 7);
    char mrc[600], h5[600], back[600];
    snprintf(mrc, sizeof mrc, "%s", ew_test_tmpfile("v.mrc"));
    snprintf(h5, sizeof h5, "%s", ew_test_tmpfile("v.h5"));
    snprintf(back, sizeof back, "%s", ew_test_tmpfile("v2.mrc"));
    assert_ok(ew_mrc_write(mrc, v, N, N, N, 1.5, NULL, 0, EW_MRC_FLOAT32));
    assert_int_equal(ewald("convert '%s' '%s' --json", mrc, h5), 0);
    cJSON *j = last_json();
    assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, "density");
    cJSON_Delete(j);
    ew_h5vol_t h;
    assert_ok(ew_h5vol_read(h5, &h));
    assert_int_equal(h.space, EW_VOL_REAL);
    assert_close(h.voxel[2], 1.5, 1e-12, 0);
    assert_memory_equal(h.data, v, sizeof v);
    ew_h5vol_free(&h);
    assert_int_equal(ewald("convert '%s' '%s'", h5, back), 0);
    ew_mrc_t m;
    assert_ok(ew_mrc_read(back, &m));
    assert_memory_equal(m.data, v, sizeof v);
    assert_close(m.pixel_size[0], 1.5, 1e-6, 0);
    ew_mrc_free(&m);
    /* Intensity: the MRC pixel size is ds (1/A); HDF5 says reciprocal. */
    char ih5[600];
    snprintf(ih5, sizeof ih5, "%s", ew_test_tmpfile("i.h5"));
    assert_int_equal(ewald("convert '%s' '%s' --kind intensity --voxel 0.01", mrc, ih5), 0);
    ew_rvol_t r;
    assert_ok(ew_h5vol_read_rvol(ih5, &r, NULL, NULL));
    assert_close(r.ds, 0.01, 1e-12, 0);
    ew_free(r.data);
    /* An intensity file asked for as a density: error, no output. */
    remove(back);
    assert_failed_cleanly(ewald("convert '%s' '%s' --kind density", ih5, back));
    assert_false(exists(back));
    assert_failed_cleanly(ewald("convert '%s' '%s'", mrc, ew_test_tmpfile("v.unknown")));
}

static void test_convert_coordinates(void **state)
{
    (void)state;
    if (!bin()) skip();
    char star[600], tsv[600], star2[600], dir[600];
    snprintf(star, sizeof star, "%s", ew_test_tmpfile("p.star"));
    snprintf(tsv, sizeof tsv, "%s", ew_test_tmpfile("p.txt"));
    snprintf(star2, sizeof star2, "%s", ew_test_tmpfile("p2.star"));
    snprintf(dir, sizeof dir, "%s", ew_test_tmpfile("boxes/"));
    const char *text = "data_particles\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n"
                       "mics/a.mrc 100.5 200.0\nmics/a.mrc 300 40\nmics/b.mrc 10 20\n";
    assert_int_equal(ew_test_write_bytes(star, text, strlen(text)), 0);
    assert_int_equal(ewald("convert '%s' '%s' --json", star, tsv), 0);
    cJSON *j = last_json();
    assert_close(jnum(j, "particles"), 3, 0, 0);
    cJSON_Delete(j);
    ew_coords_t c;
    assert_ok(ew_coords_read_topaz(tsv, &c));
    assert_int_equal(c.n, 3);
    assert_close(c.x[0], 100.5, 0, 1e-9);
    assert_string_equal(c.image[2], "mics/b.mrc");
    ew_coords_free(&c);
    assert_int_equal(ewald("convert '%s' '%s'", tsv, star2), 0);
    assert_int_equal(ewald("info '%s' --json", star2), 0);
    j = last_json();
    assert_close(jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 0), "rows"), 3, 0, 0);
    cJSON_Delete(j);
    assert_int_equal(ewald("convert '%s' '%s' --box-size 64 --json", star, dir), 0);
    j = last_json();
    assert_close(jnum(j, "box_files"), 2, 0, 0);
    cJSON_Delete(j);
    char abox[700];
    snprintf(abox, sizeof abox, "%sa.box", dir);
    assert_ok(ew_coords_read_box(abox, &c));
    assert_int_equal(c.n, 2);
    assert_close(c.y[1], 40, 0, 0.5);
    ew_coords_free(&c);
    /* A .box file back to STAR: micrograph a.mrc. */
    assert_int_equal(ewald("convert '%s' '%s'", abox, star2), 0);
    ew_star_t s;
    assert_ok(ew_star_read(star2, &s));
    ew_star_col_t col;
    assert_ok(ew_star_column(&s, NULL, "rlnMicrographName", &col));
    assert_string_equal(ew_star_get_string(&col, 0), "a.mrc");
    ew_star_free(&s);
    /* Wrong pairing: volume -> STAR. */
    char mrc[600];
    snprintf(mrc, sizeof mrc, "%s", ew_test_tmpfile("x.mrc"));
    float v[512] = {0};
    assert_ok(ew_mrc_write(mrc, v, 8, 8, 8, 1, NULL, 0, EW_MRC_FLOAT32));
    remove(star2);
    assert_failed_cleanly(ewald("convert '%s' '%s'", mrc, star2));
    assert_false(exists(star2));
}

/* An asymmetric density of Gaussian blobs (n^3) and a rotated copy. */
static void blobs(float *v, int n, double amp_noise, uint64_t seed)
{
    const double c[5][4] = {{0, 0, 0, 3.0}, {4, 1, -2, 2.0}, {-3, 3, 1, 1.5}, {1, -4, 3, 1.2}, {2, 2, 4, 1.0}};
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                double sum = 0;
                for (int k = 0; k < 5; k++) {
                    double dx = x - n / 2 - c[k][0], dy = y - n / 2 - c[k][1], dz = z - n / 2 - c[k][2];
                    sum += exp(-(dx * dx + dy * dy + dz * dz) / (2 * 1.6 * 1.6)) * c[k][3];
                }
                size_t i = ((size_t)z * n + y) * n + x;
                ew_rng_t r;
                ew_rng_init(&r, seed, ew_rng_stream_id(EW_RNG_TAG_GENERIC, i));
                v[i] = (float)(sum + amp_noise * ew_rng_normal(&r));
            }
}

static void test_compare_densities(void **state)
{
    (void)state;
    if (!bin()) skip();
    enum { N = 24 };
    static float a[N * N * N], b[N * N * N], rot[N * N * N];
    blobs(a, N, 0, 1);
    blobs(b, N, 0.05, 2);
    double axis[3] = {1, 2, 0.5}, m[9];
    ew_quat_to_mat(ew_quat_from_axis_angle(axis, 40 * EW_PI / 180), m);
    ew_vol_transform(b, N, m, NULL, rot);
    char pa[600], pb[600], prefix[600], txt[700], png[700], al[600];
    snprintf(pa, sizeof pa, "%s", ew_test_tmpfile("A.mrc"));
    snprintf(pb, sizeof pb, "%s", ew_test_tmpfile("B.h5"));
    snprintf(prefix, sizeof prefix, "%s", ew_test_tmpfile("cmp"));
    snprintf(al, sizeof al, "%s", ew_test_tmpfile("aligned.mrc"));
    assert_ok(ew_mrc_write(pa, a, N, N, N, 2.0, NULL, 0, EW_MRC_FLOAT32));
    ew_volume_t v = {0};
    v.nx = v.ny = v.nz = N;
    v.voxel = 2.0;
    v.data = rot;
    assert_ok(ew_volume_write(pb, &v));
    assert_int_equal(ewald("compare '%s' '%s' --out-prefix '%s' --aligned '%s' --json", pa, pb, prefix, al), 0);
    cJSON *j = last_json();
    assert_close(jnum(j, "rotation_deg"), 40, 0, 2.0);
    assert_close(jnum(j, "hand"), 0, 0, 0);
    assert_true(jnum(j, "score") > 0.95);
    /* Resolution: the noise is white, the blobs smooth: FSC 0.5 is crossed between 2 voxels and Nyquist. */
    double d05 = jnum(j, "fsc_05_a");
    assert_true(d05 >= 4.0 && d05 < 20.0);
    cJSON_Delete(j);
    snprintf(txt, sizeof txt, "%s_fsc.txt", prefix);
    snprintf(png, sizeof png, "%s_fsc.png", prefix);
    size_t n = 0;
    char *t = (char *)ew_test_read_bytes(txt, &n);
    assert_non_null(t);
    assert_non_null(strstr(t, "resolution at 0.5"));
    free(t);
    int w, h, ch;
    uint8_t *px;
    assert_ok(ew_png_read(png, &w, &h, &ch, &px));
    free(px);
    ew_mrc_t m2;
    assert_ok(ew_mrc_read(al, &m2));
    double num = 0, da = 0, db = 0;
    for (int i = 0; i < N * N * N; i++) {
        num += (double)a[i] * m2.data[i];
        da += (double)a[i] * a[i];
        db += (double)m2.data[i] * m2.data[i];
    }
    assert_true(num / sqrt(da * db) > 0.95);
    ew_mrc_free(&m2);

    /* The mirror image is found as hand 1. */
    float mir[N * N * N];
    for (int i = 0; i < N * N * N; i++) mir[i] = 0;
    for (int z = 1; z < N; z++)
        for (int y = 1; y < N; y++)
            for (int x = 1; x < N; x++) mir[((size_t)z * N + y) * N + x] = rot[((size_t)(N - z) * N + (N - y)) * N + (N - x)];
    v.data = mir;
    assert_ok(ew_volume_write(pb, &v));
    assert_int_equal(ewald("compare '%s' '%s' --no-files --json", pa, pb), 0);
    j = last_json();
    assert_close(jnum(j, "hand"), 1, 0, 0);
    assert_true(jnum(j, "score") > 0.9);
    cJSON_Delete(j);

    /* Different sizes: one error line, no table. */
    char small[600];
    snprintf(small, sizeof small, "%s", ew_test_tmpfile("small.mrc"));
    assert_ok(ew_mrc_write(small, a, N, N, N / 2, 2.0, NULL, 0, EW_MRC_FLOAT32));
    snprintf(prefix, sizeof prefix, "%s", ew_test_tmpfile("bad"));
    assert_failed_cleanly(ewald("compare '%s' '%s' --out-prefix '%s'", pa, small, prefix));
    snprintf(txt, sizeof txt, "%s_fsc.txt", prefix);
    assert_false(exists(txt));
}

/* Predictions = truth x G (a constant frame rotation) with a few degrees of
 * noise: the error is the noise, G is found, for text, .npy and CXI inputs. */
static void test_eval_orientations(void **state)
{
    (void)state;
    if (!bin()) skip();
    enum { NQ = 40 };
    ew_quat_t qt[NQ];
    char cxi[600], txt[600], npy[600], prefix[600], png[700];
    snprintf(cxi, sizeof cxi, "%s", ew_test_tmpfile("truth.cxi"));
    snprintf(txt, sizeof txt, "%s", ew_test_tmpfile("pred.txt"));
    snprintf(npy, sizeof npy, "%s", ew_test_tmpfile("pred.npy"));
    snprintf(prefix, sizeof prefix, "%s", ew_test_tmpfile("or"));
    make_cxi(cxi, NQ, 1, qt);
    double gaxis[3] = {0.3, -1, 0.2}, d[NQ * 4];
    ew_quat_t g = ew_quat_from_axis_angle(gaxis, 70 * EW_PI / 180);
    FILE *f = fopen(txt, "w");
    fprintf(f, "# predicted\n\n");
    for (int i = 0; i < NQ; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 9, ew_rng_stream_id(EW_RNG_TAG_GENERIC, (uint64_t)i));
        double ax[3] = {ew_rng_normal(&r), ew_rng_normal(&r), ew_rng_normal(&r)};
        ew_quat_t noise = ew_quat_from_axis_angle(ax, 2.0 * EW_PI / 180); /* exactly 2 degrees */
        ew_quat_t p = ew_quat_mul(ew_quat_mul(qt[i], g), noise);
        fprintf(f, "%.12f, %.12f, %.12f, %.12f # pattern %d\n", p.w, p.x, p.y, p.z, i);
        d[4 * i] = p.w, d[4 * i + 1] = p.x, d[4 * i + 2] = p.y, d[4 * i + 3] = p.z;
    }
    fclose(f);
    size_t shape[2] = {NQ, 4};
    assert_ok(ew_npy_write_f64(npy, d, 2, shape));
    const char *preds[2] = {txt, npy};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(ewald("eval orientations '%s' '%s' --out-prefix '%s' --json", preds[k], cxi, prefix), 0);
        cJSON *j = last_json();
        assert_close(jnum(j, "n"), NQ, 0, 0);
        assert_close(jnum(j, "median_deg"), 2.0, 0, 0.5);
        assert_true(jnum(j, "max_deg") < 5.0);
        assert_close(jnum(j, "global_rotation_deg"), 70, 0, 1.0);
        assert_close(jnum(j, "hand"), 0, 0, 0);
        cJSON_Delete(j);
    }
    snprintf(png, sizeof png, "%s_orient_hist.png", prefix);
    assert_true(exists(png));
    /* Mismatched counts and a malformed line: one error line each. */
    f = fopen(txt, "w");
    fprintf(f, "1 0 0 0\n0 1 0\n");
    fclose(f);
    assert_failed_cleanly(ewald("eval orientations '%s' '%s'", txt, cxi));
    f = fopen(txt, "w");
    fprintf(f, "1 0 0 0\n");
    fclose(f);
    remove(png);
    assert_failed_cleanly(ewald("eval orientations '%s' '%s' --out-prefix '%s'", txt, cxi, prefix));
    assert_false(exists(png));
}

static void test_xfel_simulate(void **state)
{
    (void)state;
    if (!bin()) skip();
    const char *pdb = ew_test_data("pdb/1uao.pdb");
    if (!pdb) skip();
    char cxi[600], emc[600], det[600], vol[600];
    snprintf(cxi, sizeof cxi, "%s", ew_test_tmpfile("sim.cxi"));
    snprintf(emc, sizeof emc, "%s", ew_test_tmpfile("sim.emc"));
    snprintf(det, sizeof det, "%s", ew_test_tmpfile("sim.dat"));
    snprintf(vol, sizeof vol, "%s", ew_test_tmpfile("W.h5"));
    assert_int_equal(ewald("xfel simulate '%s' -n 12 --width 32 --height 24 --pixel-um 3125 --beamstop 2 "
                           "--fluence-factor 1000 -o '%s' --emc '%s' --volume '%s' --seed 3 --json",
                           pdb, cxi, emc, vol),
                     0);
    cJSON *j = last_json();
    assert_close(jnum(j, "patterns"), 12, 0, 0);
    double pred = jnum(j, "predicted_photons_recorded"), got = jnum(j, "mean_photons_recorded");
    assert_true(pred > 0);
    assert_close(got, pred, 0.3, 0); /* 12 random orientations of a small peptide */
    cJSON_Delete(j);
    assert_true(exists(det));
    assert_int_equal(ewald("info '%s' --json", cxi), 0);
    j = last_json();
    assert_close(jnum(j, "patterns"), 12, 0, 0);
    assert_close(jnum(j, "width"), 32, 0, 0);
    assert_close(jnum(j, "height"), 24, 0, 0);
    assert_true(jnum(cJSON_GetObjectItem(j, "mask"), "bad") > 0);
    cJSON_Delete(j);
    assert_int_equal(ewald("info '%s' --json", vol), 0);
    j = last_json();
    assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, "intensity");
    cJSON_Delete(j);
    assert_int_equal(ewald("info '%s' --json", emc), 0);
    j = last_json();
    assert_close(jnum(j, "frames"), 12, 0, 0);
    cJSON_Delete(j);
    /* Orientations of the simulation against themselves: zero error. */
    assert_int_equal(ewald("eval orientations '%s' '%s' --json", cxi, cxi), 0);
    j = last_json();
    assert_close(jnum(j, "max_deg"), 0, 0, 1e-3);
    cJSON_Delete(j);
    /* Bad input: no file left. */
    remove(cxi);
    assert_failed_cleanly(ewald("xfel simulate /nonexistent.pdb -n 2 -o '%s'", cxi));
    assert_false(exists(cxi));
    assert_failed_cleanly(ewald("xfel simulate '%s' -n 2 -o '%s' --energy -5", pdb, cxi));
    assert_false(exists(cxi));
    assert_int_equal(ew_test_count_temporaries(), 0);
}

static void test_phase(void **state)
{
    (void)state;
    if (!bin()) skip();
    const char *pdb = ew_test_data("pdb/1uao.pdb");
    if (!pdb) skip();
    char vol[600], cxi[600], dens[600], avg[600], prefix[600], png[700];
    snprintf(vol, sizeof vol, "%s", ew_test_tmpfile("Wp.h5"));
    snprintf(cxi, sizeof cxi, "%s", ew_test_tmpfile("p.cxi"));
    snprintf(dens, sizeof dens, "%s", ew_test_tmpfile("dens.mrc"));
    snprintf(avg, sizeof avg, "%s", ew_test_tmpfile("avg.h5"));
    snprintf(prefix, sizeof prefix, "%s", ew_test_tmpfile("ph"));
    assert_int_equal(ewald("xfel simulate '%s' -n 1 --width 32 --height 32 --pixel-um 3125 --volume-n 17 -o '%s' "
                           "--volume '%s'",
                           pdb, cxi, vol),
                     0);
    assert_int_equal(ewald("phase '%s' --recipe er:5,hio:10:0.5,er:5 --loops 3 --starts 2 --estimate --threads 1 "
                           "-o '%s' --average '%s' --prtf-prefix '%s' --json",
                           vol, dens, avg, prefix),
                     0);
    cJSON *j = last_json();
    assert_close(jnum(j, "n"), 17, 0, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "errors")), 2);
    double err = jnum(j, "error");
    assert_true(err >= 0 && err < 1);
    double voxel = jnum(j, "voxel_a");
    cJSON_Delete(j);
    ew_mrc_t m;
    assert_ok(ew_mrc_read(dens, &m));
    assert_int_equal(m.nx, 17);
    assert_close(m.pixel_size[0], voxel, 1e-5, 0);
    ew_mrc_free(&m);
    ew_h5vol_t h;
    assert_ok(ew_h5vol_read(avg, &h));
    assert_int_equal(h.space, EW_VOL_REAL);
    ew_h5vol_free(&h);
    snprintf(png, sizeof png, "%s_prtf.png", prefix);
    assert_true(exists(png));
    /* A density is not an intensity; a bad recipe; no output either time. */
    remove(dens);
    assert_failed_cleanly(ewald("phase '%s' -o '%s'", avg, dens));
    assert_false(exists(dens));
    assert_failed_cleanly(ewald("phase '%s' -o '%s' --recipe er:5,xx:3", vol, dens));
    assert_false(exists(dens));
}

static void test_xfel_emc(void **state)
{
    (void)state;
    if (!bin()) skip();
    const char *pdb = ew_test_data("pdb/1uao.pdb");
    if (!pdb) skip();
    char cxi[600], emc[600], det[600], out[600], out2[600], ori[600];
    snprintf(cxi, sizeof cxi, "%s", ew_test_tmpfile("e.cxi"));
    snprintf(emc, sizeof emc, "%s", ew_test_tmpfile("e.emc"));
    snprintf(det, sizeof det, "%s", ew_test_tmpfile("e.dat"));
    snprintf(out, sizeof out, "%s", ew_test_tmpfile("emc_out.h5"));
    snprintf(out2, sizeof out2, "%s", ew_test_tmpfile("emc_out2.h5"));
    snprintf(ori, sizeof ori, "%s", ew_test_tmpfile("emc_q.txt"));
    assert_int_equal(ewald("xfel simulate '%s' -n 60 --width 16 --height 16 --pixel-um 6250 -f 1000 -o '%s' "
                           "--emc '%s'",
                           pdb, cxi, emc),
                     0);
    assert_int_equal(ewald("xfel emc '%s' -l 1 -n 3 -o '%s' --orientations '%s' --json", cxi, out, ori), 0);
    cJSON *j = last_json();
    assert_close(jnum(j, "patterns"), 60, 0, 0);
    assert_close(jnum(j, "iterations"), 3, 0, 0);
    assert_close(jnum(j, "rotations"), 60, 0, 0); /* level 1: 10 (5 + 1) */
    double med = jnum(j, "orientation_median_deg");
    assert_true(med >= 0 && med <= 180);
    cJSON_Delete(j);
    ew_rvol_t r;
    assert_ok(ew_h5vol_read_rvol(out, &r, NULL, NULL));
    ew_free(r.data);
    ew_quat_t *q;
    size_t nq;
    assert_ok(ew_quat_file_read(ori, &q, &nq));
    assert_int_equal(nq, 60);
    ew_free(q);
    /* The same data from the Dragonfly files. */
    assert_int_equal(ewald("xfel emc '%s' --detector '%s' --energy 4600 -l 1 -n 2 -o '%s' --json", emc, det, out2), 0);
    j = last_json();
    assert_close(jnum(j, "patterns"), 60, 0, 0);
    cJSON_Delete(j);
    remove(out2);
    assert_failed_cleanly(ewald("xfel emc '%s' -l 1 -n 2 -o '%s'", emc, out2));
    assert_false(exists(out2));
}

static void test_em_simulate(void **state)
{
    (void)state;
    if (!bin()) skip();
    const char *pdb = ew_test_data("pdb/1uao.pdb");
    if (!pdb) skip();
    char dir[600], star[700], mrcs[700], mic[700], tsv[600];
    snprintf(dir, sizeof dir, "%s", ew_test_tmpfile("em"));
    snprintf(tsv, sizeof tsv, "%s", ew_test_tmpfile("em_picks.txt"));
    assert_int_equal(ewald("em simulate '%s' --width 128 --height 96 --particles 3 -n 2 --box 32 --estimate "
                           "--no-png -o '%s' --seed 4 --json",
                           pdb, dir),
                     0);
    cJSON *j = last_json();
    assert_close(jnum(j, "micrographs"), 2, 0, 0);
    cJSON_Delete(j);
    snprintf(star, sizeof star, "%s/particles.star", dir);
    snprintf(mrcs, sizeof mrcs, "%s/particles.mrcs", dir);
    snprintf(mic, sizeof mic, "%s/micrographs/mic_000001.mrc", dir);
    ew_mrc_header_t h;
    assert_ok(ew_mrc_header_read(mic, &h));
    assert_int_equal(h.nx, 128);
    assert_int_equal(h.ny, 96);
    assert_ok(ew_mrc_header_read(mrcs, &h));
    assert_int_equal(h.nx, 32);
    /* The particle STAR file converts to Topaz picks, one per stack image. */
    assert_int_equal(ewald("convert '%s' '%s' --json", star, tsv), 0);
    j = last_json();
    assert_close(jnum(j, "particles"), h.nz, 0, 0);
    cJSON_Delete(j);
    /* Bad option values and missing structures: one line, nothing written. */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s", ew_test_tmpfile("em2"));
    assert_failed_cleanly(ewald("em simulate '%s' --width 64 --height 64 -o '%s' --weights 1,2", pdb, dir2));
    assert_false(exists(dir2));
    assert_failed_cleanly(ewald("em simulate /nonexistent.pdb -o '%s'", dir2));
    assert_false(exists(dir2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_commands),
        cmocka_unit_test(test_info_cxi),
        cmocka_unit_test(test_info_shared_and_errors),
        cmocka_unit_test(test_convert_cxi_emc_round_trip),
        cmocka_unit_test(test_convert_volumes),
        cmocka_unit_test(test_convert_coordinates),
        cmocka_unit_test(test_compare_densities),
        cmocka_unit_test(test_eval_orientations),
        cmocka_unit_test(test_xfel_simulate),
        cmocka_unit_test(test_phase),
        cmocka_unit_test(test_xfel_emc),
        cmocka_unit_test(test_em_simulate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
