/* Tests of the learning commands (xfel train/infer, em noise train/apply,
 * em pick train/run/eval, em reconstruct): the binary (EWALD_BIN) run on
 * tiny inputs made here (a CXI file from the library's writer, an
 * `ewald em simulate` folder of a 40-atom structure), in seconds. Each
 * command: exit status, outputs exist and parse, --json's last line is one
 * JSON object with its keys, bad input gives exactly one "ewald: " line on
 * stderr, a non-zero exit status and no output file. */
#include "testutil.h"

#include <cJSON.h>
#include <limits.h>

#include "core/rng.h"
#include "geom/geom.h"
#include "io/coords.h"
#include "io/cxi.h"
#include "io/h5vol.h"
#include "io/mrc.h"
#include "io/png.h"
#include "io/quatfile.h"
#include "io/safetensors.h"
#include "io/star.h"

/* The binary as an absolute path (the commands run in the scratch folder). */
static const char *bin(void)
{
    static char abs[PATH_MAX + 8];
    char cwd[PATH_MAX];
    const char *b = getenv("EWALD_BIN");
    if (!b || access(b, X_OK) != 0) return NULL;
    if (b[0] == '/' || !getcwd(cwd, sizeof cwd)) return b;
    snprintf(abs, sizeof abs, "%s/%s", cwd, b);
    return abs;
}

static char out_path[600], err_path[600], dir[600];

/* Run `ewald ARGS` with stdout and stderr to files; returns the exit status. */
static int ewald(const char *fmt, ...)
{
    char args[4000], cmd[12000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(out_path, sizeof out_path, "%s", ew_test_tmpfile("stdout.txt"));
    snprintf(err_path, sizeof err_path, "%s", ew_test_tmpfile("stderr.txt"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", dir, bin(), args, out_path, err_path);
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

/* The path dir/name (static buffer per slot). */
static const char *at(int slot, const char *name)
{
    static char p[8][700];
    snprintf(p[slot], sizeof p[slot], "%s/%s", dir, name);
    return p[slot];
}

static int exists(const char *name) { return access(at(7, name), F_OK) == 0; }

/* Assert the last run failed with one line on stderr starting "ewald: ". */
static void assert_failed_cleanly(int rc)
{
    assert_int_not_equal(rc, 0);
    size_t n = 0;
    unsigned char *b = ew_test_read_bytes(err_path, &n);
    assert_non_null(b);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += b[i] == '\n';
    assert_int_equal(lines, 1);
    assert_true(n > 7 && !memcmp(b, "ewald: ", 7));
    free(b);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", ew_test_tmpdir());
    return 0;
}

/* ---------------------------------------------------------------- XFEL */

#define NP 16 /* patterns */
#define DW 16 /* detector side */

/* n patterns of a smooth expected intensity with Poisson counts, the
 * noise-free patterns, truth quaternions and fluence; and a truth volume
 * covering the detector. */
static void make_xfel(void)
{
    ew_cxi_geometry_t g;
    assert_ok(ew_cxi_geometry_alloc(&g, DW, DW, 1));
    g.distance_m = 0.1;
    g.pixel_x_m = g.pixel_y_m = 400e-6;
    g.center_x = g.center_y = DW / 2 - 0.5;
    g.photon_energy_ev = 2000;
    g.wavelength_a = EW_HC_EV_A / 2000;
    assert_ok(ew_cxi_geometry_flat_s(&g));
    g.mask[0] = 2;
    double smax = 0;
    for (int p = 0; p < DW * DW; p++) {
        const float *s = g.s + 3 * p;
        smax = fmax(smax, sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]));
    }
    ew_cxi_write_options_t o = {0};
    o.n_patterns = NP;
    o.with_truth = 1;
    o.with_expected = 1;
    ew_cxi_writer_t *w;
    assert_ok(ew_cxi_writer_open(at(0, "x.cxi"), &g, &o, &w));
    float e[DW * DW], d[DW * DW];
    for (int i = 0; i < NP; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 5, ew_rng_stream_id(1, (uint64_t)i));
        double q[4] = {1, ew_rng_uniform(&r) - 0.5, ew_rng_uniform(&r) - 0.5, ew_rng_uniform(&r) - 0.5};
        double qn = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]), fl = 1 + 0.1 * i;
        for (int k = 0; k < 4; k++) q[k] /= qn;
        for (int p = 0; p < DW * DW; p++) {
            const float *s = g.s + 3 * p;
            e[p] = (float)(fl * 3 * exp(-(s[0] + q[1] * s[1]) * (s[0] + q[1] * s[1]) / (0.2 * smax * smax)));
            d[p] = (float)ew_rng_poisson(&r, e[p]);
        }
        assert_ok(ew_cxi_write_patterns(w, i, 1, d));
        assert_ok(ew_cxi_write_expected(w, i, 1, e));
        assert_ok(ew_cxi_write_truth(w, i, 1, q, &fl, NULL));
    }
    assert_ok(ew_cxi_writer_close(w));
    ew_rvol_t v;
    assert_ok(ew_rvol_alloc(&v, 15, 1.3 * smax / 7));
    for (int i = 0; i < 15 * 15 * 15; i++) v.data[i] = (float)(1 + (i % 7));
    assert_ok(ew_h5vol_write_rvol(at(0, "truth.h5"), &v, "photons/sr", NULL));
    ew_rvol_free(&v);
    ew_cxi_geometry_free(&g);
    assert_ok(ew_test_write_bytes(at(0, "junk.cxi"), "not an HDF5 file\n", 17) == 0 ? EW_OK : EW_ERR_IO);
}

#define TINY                                                                                                 \
    "--enc-size 8 --enc-width 4 --enc-stages 1 --scale-width 4 --scale-stages 1 --grid-n 9 --batch 4 -t 1 "               \
    "--emc-level-lo 1 --emc-level-hi 1 --emc-iters 2 --refine-rounds 1"

static void test_xfel_train_infer(void **state)
{
    (void)state;
    if (!bin()) skip();
    make_xfel();
    int rc = ewald("xfel train x.cxi " TINY " --steps 2 --truth truth.h5 -o m --json");
    assert_int_equal(rc, 0);
    cJSON *j = last_json();
    assert_int_equal((int)jnum(j, "steps"), 2);
    assert_int_equal((int)jnum(j, "patterns"), NP);
    double med = jnum(j, "orientation_median_deg");
    assert_true(med >= 0 && med <= 180);
    assert_true(jnum(j, "fsc_s05_inv_a") >= 0);
    assert_true(jnum(j, "n_vox") == 9);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "outputs"), "loss_png"));
    cJSON_Delete(j);
    /* every output parses */
    ew_safetensors_t st;
    assert_ok(ew_safetensors_read(at(0, "m.safetensors"), &st));
    ew_safetensors_free(&st);
    ew_quat_t *q;
    size_t n;
    assert_ok(ew_quat_file_read(at(0, "m_orientations.txt"), &q, &n));
    assert_int_equal(n, NP);
    ew_free(q);
    ew_rvol_t v;
    assert_ok(ew_h5vol_read_rvol(at(0, "m_intensity.h5"), &v, NULL, NULL));
    assert_int_equal(v.n, 9);
    ew_rvol_free(&v);
    int pw, ph, pc;
    uint8_t *px;
    assert_ok(ew_png_read(at(0, "m_loss.png"), &pw, &ph, &pc, &px));
    free(px);
    assert_true(exists("m_fsc.txt"));
    /* resume: continues at step 2 up to 3 */
    rc = ewald("xfel train x.cxi " TINY " --steps 3 --resume -o m --json");
    assert_int_equal(rc, 0);
    j = last_json();
    assert_int_equal((int)jnum(j, "steps"), 3);
    cJSON_Delete(j);
    /* infer on the same patterns */
    rc = ewald("xfel infer m.safetensors x.cxi -o inf.txt --json");
    assert_int_equal(rc, 0);
    j = last_json();
    assert_int_equal((int)jnum(j, "patterns"), NP);
    assert_true(jnum(j, "orientation_median_deg") >= 0);
    assert_true(jnum(j, "mean_scale") > 0);
    cJSON_Delete(j);
    assert_ok(ew_quat_file_read(at(0, "inf.txt"), &q, &n));
    assert_int_equal(n, NP);
    ew_free(q);
    rc = ewald("xfel infer m.safetensors x.cxi --search -o inf2.txt --json");
    assert_int_equal(rc, 0);
    j = last_json();
    assert_true(jnum(j, "orientation_median_deg") >= 0);
    cJSON_Delete(j);
    assert_ok(ew_quat_file_read(at(0, "inf2.txt"), &q, &n));
    assert_int_equal(n, NP);
    ew_free(q);
    /* bad input: one error line, no outputs */
    assert_failed_cleanly(ewald("xfel train junk.cxi " TINY " --steps 1 -o bad"));
    assert_false(exists("bad.safetensors") || exists("bad_orientations.txt") || exists("bad_intensity.h5"));
    assert_failed_cleanly(ewald("xfel train x.cxi " TINY " --steps 1 --resume -o none"));
    assert_false(exists("none_orientations.txt"));
    assert_failed_cleanly(ewald("xfel train x.cxi " TINY " --steps 1 --truth junk.cxi -o bad"));
    assert_false(exists("bad.safetensors") || exists("bad_orientations.txt"));
    assert_failed_cleanly(ewald("xfel infer junk.cxi x.cxi -o bad.txt"));
    assert_false(exists("bad.txt"));
    assert_failed_cleanly(ewald("xfel infer m.safetensors junk.cxi -o bad.txt"));
    assert_false(exists("bad.txt"));
}

/* ---------------------------------------------------------------- cryo-EM */

/* A 40-atom compact structure and a 2-micrograph genem simulation. */
static void make_em(void)
{
    FILE *f = fopen(at(0, "blob.pdb"), "w");
    assert_non_null(f);
    for (int i = 0; i < 40; i++) {
        ew_rng_t r;
        ew_rng_init(&r, 3, ew_rng_stream_id(2, (uint64_t)i));
        double x = 12 * (ew_rng_uniform(&r) - 0.5), y = 8 * (ew_rng_uniform(&r) - 0.5), z = 6 * (ew_rng_uniform(&r) - 0.5);
        fprintf(f, "ATOM  %5d  CA  ALA A%4d    %8.3f%8.3f%8.3f  1.00 10.00           %s  \n", i + 1, i + 1, x, y, z,
                i % 3 ? "C" : "O");
    }
    fprintf(f, "END\n");
    fclose(f);
    int rc = ewald("em simulate blob.pdb --preset genem --snr 2 --width 96 --height 96 --pixel 2 -n 2 --particles 8 "
                   "--box 16 --no-png --estimate -o sim");
    assert_int_equal(rc, 0);
    /* "real" micrographs for the noise model: correlated noise, pixel 2 A */
    float img[2 * 64 * 64];
    ew_rng_t r;
    ew_rng_init(&r, 4, 0);
    for (int i = 0; i < 2 * 64 * 64; i++) img[i] = (float)ew_rng_uniform(&r) + (i > 0 ? 0.5f * img[i - 1] : 0);
    assert_ok(ew_mrc_write(at(0, "real.mrcs"), img, 64, 64, 2, 2.0, NULL, 1, 2));
    assert_ok(ew_test_write_bytes(at(0, "junk.star"), "data_\nloop_\n_rlnFoo\n1\n", 22) == 0 ? EW_OK : EW_ERR_IO);
}

static void test_em_reconstruct(void **state)
{
    (void)state;
    if (!bin()) skip();
    make_em();
    int rc = ewald("em reconstruct sim/particles.star -o map.mrc --truth blob.pdb --json");
    assert_int_equal(rc, 0);
    cJSON *j = last_json();
    assert_true(jnum(j, "particles") >= 4);
    assert_int_equal((int)jnum(j, "box"), 16);
    assert_true(jnum(j, "res_0143_a") >= 4 - 1e-9);
    assert_true(jnum(j, "truth_res_05_a") != 0);
    cJSON_Delete(j);
    const char *maps[] = {"map.mrc", "map_half1.mrc", "map_half2.mrc"};
    for (int i = 0; i < 3; i++) {
        ew_mrc_t m;
        assert_ok(ew_mrc_read(at(0, maps[i]), &m));
        assert_int_equal(m.nx, 16);
        assert_int_equal(m.nz, 16);
        ew_mrc_free(&m);
    }
    assert_true(exists("map_fsc.txt") && exists("map_fsc_truth.txt"));
    int pw, ph, pc;
    uint8_t *px;
    assert_ok(ew_png_read(at(0, "map_fsc.png"), &pw, &ph, &pc, &px));
    free(px);
    /* poses by projection matching against the map just made */
    rc = ewald("em reconstruct sim/particles.star -o map2.mrc --reference map.mrc --grid-level 1 --json");
    assert_int_equal(rc, 0);
    j = last_json();
    assert_true(jnum(j, "pose_median_deg") >= 0);
    cJSON_Delete(j);
    assert_failed_cleanly(ewald("em reconstruct junk.star -o bad.mrc"));
    assert_false(exists("bad.mrc") || exists("bad_half1.mrc") || exists("bad_fsc.txt"));
    assert_failed_cleanly(ewald("em reconstruct sim/particles.star -o bad.mrc --truth real.mrcs"));
    assert_false(exists("bad.mrc") || exists("bad_fsc.txt"));
}

static void test_em_pick(void **state)
{
    (void)state;
    if (!bin()) skip();
    if (!exists("sim/particles.star")) make_em();
    int rc = ewald("em pick train sim --steps 4 --batch 2 --patch 16 --width 4 --layers 3 --bin 2 -t 1 -o pk.safetensors --json");
    assert_int_equal(rc, 0);
    cJSON *j = last_json();
    assert_int_equal((int)jnum(j, "micrographs"), 2);
    assert_true(jnum(j, "particles") >= 4);
    cJSON_Delete(j);
    rc = ewald("em pick run pk.safetensors sim -o picks --truth sim/particles.star --json");
    assert_int_equal(rc, 0);
    j = last_json();
    double ap = jnum(j, "auprc");
    assert_true(ap >= 0 && ap <= 1);
    cJSON_Delete(j);
    ew_coords_t c;
    assert_ok(ew_coords_read_topaz(at(0, "picks/picks.txt"), &c));
    ew_star_t s;
    assert_ok(ew_star_read(at(0, "picks/mic_000000_pick.star"), &s));
    assert_true(ew_star_has_column(&s, NULL, "rlnAutopickFigureOfMerit"));
    ew_star_free(&s);
    ew_coords_free(&c);
    rc = ewald("em pick eval picks/picks.txt sim/particles.star --json");
    assert_int_equal(rc, 0);
    j = last_json();
    assert_close(jnum(j, "auprc"), ap, 1e-12, 1e-12);
    assert_true(jnum(j, "best_f1") >= 0);
    cJSON_Delete(j);
    assert_failed_cleanly(ewald("em pick run junk.star sim -o badpicks"));
    assert_false(exists("badpicks/picks.txt"));
    assert_failed_cleanly(ewald("em pick eval junk.star sim/particles.star"));
    assert_failed_cleanly(ewald("em pick train sim --coords junk.star --steps 1 -o bad.safetensors"));
    assert_false(exists("bad.safetensors"));
}

static void test_em_noise(void **state)
{
    (void)state;
    if (!bin()) skip();
    if (!exists("sim/particles.star")) make_em();
    int rc = ewald("em noise train --sim sim real.mrcs --steps 2 --crop 32 --batch 1 --eval-crops 2 --eval-size 32 "
                   "--num-patches 8 --mlp-dim 8 --ngf 4 --ndf 4 --n-blocks 1 -t 1 -o nm --json");
    assert_int_equal(rc, 0);
    cJSON *j = last_json();
    assert_int_equal((int)jnum(j, "sim_images"), 2);
    assert_int_equal((int)jnum(j, "real_images"), 2);
    assert_int_equal((int)jnum(j, "steps"), 2);
    assert_close(jnum(j, "pixel"), 2.0, 1e-6, 0);
    assert_true(jnum(j, "psd_translated") >= 0);
    cJSON_Delete(j);
    assert_true(exists("nm/cut.safetensors"));
    rc = ewald("em noise apply nm/cut.safetensors sim --out tr --png --json");
    assert_int_equal(rc, 0);
    j = last_json();
    assert_int_equal((int)jnum(j, "files"), 3); /* 2 micrographs + particles.mrcs */
    cJSON_Delete(j);
    ew_mrc_t a, b;
    assert_ok(ew_mrc_read(at(0, "sim/micrographs/mic_000001.mrc"), &a));
    assert_ok(ew_mrc_read(at(0, "tr/micrographs/mic_000001.mrc"), &b));
    assert_int_equal(a.nx, b.nx);
    assert_int_equal(a.ny, b.ny);
    ew_mrc_free(&a);
    ew_mrc_free(&b);
    assert_true(exists("tr/particles.star") && exists("tr/micrographs.star") && exists("tr/micrographs/mic_000000.png"));
    assert_failed_cleanly(ewald("em noise apply junk.star sim --out tr2"));
    assert_false(exists("tr2"));
    assert_failed_cleanly(ewald("em noise train --sim sim junk.star --steps 1 -o nm2"));
    assert_false(exists("nm2/cut.safetensors"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xfel_train_infer),
        cmocka_unit_test(test_em_reconstruct),
        cmocka_unit_test(test_em_pick),
        cmocka_unit_test(test_em_noise),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
