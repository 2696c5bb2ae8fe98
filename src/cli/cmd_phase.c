/* ewald phase: phase retrieval of a 3D intensity volume into an electron
 * density (src/recon/phase.h, ew_phase_run). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "io/png.h"
#include "io/volume.h"
#include "recon/phase.h"

/* "er:50,hio:25:0.3,..." -> steps. */
static ew_status_t parse_recipe(const char *text, ew_phase_config_t *c)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    int k = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (k == EW_PHASE_MAX_STEPS)
            return ew_fail(EW_ERR_ARG, "--recipe '%s': more than %d blocks", text, EW_PHASE_MAX_STEPS);
        char *f[3] = {tok, NULL, NULL};
        for (int i = 1; i < 3; i++) {
            char *colon = f[i - 1] ? strchr(f[i - 1], ':') : NULL;
            if (colon) *colon = '\0', f[i] = colon + 1;
        }
        ew_phase_step_t *s = &c->steps[k];
        EW_TRY(ew_phase_algo_parse(f[0], &s->algo));
        char *end;
        long it = f[1] ? strtol(f[1], &end, 10) : -1;
        if (!f[1] || *end || it < 0)
            return ew_fail(EW_ERR_ARG, "--recipe '%s': block %d needs ALGO:ITERATIONS[:BETA]", text, k + 1);
        s->iters = (int)it;
        s->beta = 0.3;
        if (f[2]) {
            s->beta = strtod(f[2], &end);
            if (*end || !(s->beta > 0 && s->beta <= 1))
                return ew_fail(EW_ERR_ARG, "--recipe '%s': block %d beta '%s' is not in (0, 1]", text, k + 1, f[2]);
        }
        k++;
    }
    if (k == 0) return ew_fail(EW_ERR_ARG, "--recipe '%s' has no blocks", text);
    c->nsteps = k;
    return EW_OK;
}

static ew_status_t write_prtf(const char *prefix, const ew_phase_result_t *r, char *txt, char *png, size_t n)
{
    snprintf(txt, n, "%s_prtf.txt", prefix);
    snprintf(png, n, "%s_prtf.png", prefix);
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(txt, &f, &tmp));
    fprintf(f, "# PRTF of %d starts; 1/e resolution %.3f A%s\n# shell s_inv_A d_A prtf\n", r->nstarts, r->resolution,
            r->resolution_reached ? "" : " (never below 1/e: the grid's edge)");
    for (int j = 0; j < r->nshells; j++)
        fprintf(f, "%d %.6g %.6g %.6f\n", j, r->prtf_s[j], r->prtf_s[j] > 0 ? 1 / r->prtf_s[j] : INFINITY, r->prtf[j]);
    EW_TRY(ew_atomic_commit(f, tmp, txt));
    ew_plot_t *p = ew_plot_new(800, 500, "phase-retrieval transfer function", "spatial frequency s (1/A)", "PRTF");
    if (!p) {
        remove(txt);
        return EW_ERR_NOMEM;
    }
    ew_plot_set_yrange(p, 0, 1.05);
    ew_status_t st = ew_plot_add_series(p, r->prtf_s, r->prtf, (size_t)r->nshells, "PRTF");
    if (st == EW_OK) st = ew_plot_hline(p, exp(-1.0), "1/e");
    char lab[64];
    snprintf(lab, sizeof lab, "%.1f A", r->resolution);
    if (st == EW_OK && r->resolution_reached) st = ew_plot_vline(p, 1 / r->resolution, lab);
    if (st == EW_OK) st = ew_plot_write_png(p, png);
    ew_plot_free(p);
    if (st != EW_OK) remove(txt);
    return st;
}

int cmd_phase(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_phase_config_t c;
    ew_phase_config_default(&c);
    const char *recipe = "er:50,hio:25:0.3,dm:25:0.3,er:50", *out = "phased.mrc", *average = NULL, *support = NULL,
               *prefix = NULL, *mask = NULL;
    long loops = c.loops, starts = c.starts, sw_every = c.shrinkwrap_every, threads = c.nthreads;
    int no_pos = !c.positivity, no_recenter = !c.recenter, estimate = !c.fftw_measure;
    double smin = 0, smax = 0;
    ew_opt_t opts[] = {
        {"recipe", 'r', EW_OPT_STRING, &recipe, "phase", "one loop: comma-separated ALGO:ITERATIONS[:BETA] blocks, ALGO er|hio|dm|raar", NULL, 0, 0, 0},
        {"loops", 'l', EW_OPT_INT, &loops, "phase", "loops of the recipe", NULL, 0, 1, 1e6},
        {"starts", 0, EW_OPT_INT, &starts, "phase", "independent random starts (the best by Fourier error is kept)", NULL, 0, 1, 10000},
        {"seed", 0, EW_OPT_U64, &c.seed, "phase", "random seed of the starts", NULL, 0, 0, 0},
        {"no-positivity", 0, EW_OPT_FLAG, &no_pos, "phase", "allow negative density", NULL, 0, 0, 0},
        {"no-recenter", 0, EW_OPT_FLAG, &no_recenter, "phase", "do not recentre the density after each loop", NULL, 0, 0, 0},
        {"shrinkwrap-every", 0, EW_OPT_INT, &sw_every, "support", "shrinkwrap after every N loops (0: never)", NULL, 0, 0, 1e6},
        {"sw-sigma-start", 0, EW_OPT_DOUBLE, &c.sw_sigma_start, "support", "shrinkwrap Gaussian sigma at the first loop, voxels", NULL, 0, 1e-3, 100},
        {"sw-sigma-end", 0, EW_OPT_DOUBLE, &c.sw_sigma_end, "support", "shrinkwrap Gaussian sigma at the last loop, voxels", NULL, 0, 1e-3, 100},
        {"sw-threshold", 0, EW_OPT_DOUBLE, &c.sw_threshold, "support", "shrinkwrap keeps voxels above this fraction of the blurred maximum", NULL, 0, 1e-6, 0.999999},
        {"ac-sigma", 0, EW_OPT_DOUBLE, &c.ac_sigma, "support", "blur of the autocorrelation for the initial support, voxels", NULL, 0, 0, 100},
        {"ac-threshold", 0, EW_OPT_DOUBLE, &c.ac_threshold, "support", "initial support: blurred autocorrelation above this fraction of its maximum", NULL, 0, 1e-6, 0.999999},
        {"mask", 'm', EW_OPT_STRING, &mask, "data", "volume (MRC/HDF5, same grid) nonzero where the intensity was measured (default: every finite, non-negative voxel)", NULL, 0, 0, 0},
        {"smin", 0, EW_OPT_DOUBLE, &smin, "data", "voxels with |s| below this are unmeasured (beam stop), 1/A", NULL, 0, 0, 100},
        {"smax", 0, EW_OPT_DOUBLE, &smax, "data", "voxels with |s| above this are unmeasured (detector corner), 1/A (0: no limit)", NULL, 0, 0, 100},
        {"threads", 't', EW_OPT_INT, &threads, "run", "FFTW and OpenMP threads", NULL, 0, 1, 4096},
        {"estimate", 0, EW_OPT_FLAG, &estimate, "run", "FFTW_ESTIMATE plans (faster planning, slower FFTs) instead of FFTW_MEASURE", NULL, 0, 0, 0},
        {"out", 'o', EW_OPT_STRING, &out, "output", "the best start's density (.mrc/.map/.h5), electrons per voxel, voxel 1/(n ds) A", NULL, 0, 0, 0},
        {"average", 0, EW_OPT_STRING, &average, "output", "all starts aligned to the best and averaged", NULL, 0, 0, 0},
        {"support", 0, EW_OPT_STRING, &support, "output", "the best start's support (1 inside, 0 outside)", NULL, 0, 0, 0},
        {"prtf-prefix", 0, EW_OPT_STRING, &prefix, "output", "write PREFIX_prtf.txt and PREFIX_prtf.png", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald phase INTENSITY [options]",
        "Phase retrieval: turns a 3D intensity volume I(s) = |F(s)|^2 (an HDF5 reciprocal volume, e.g. from "
        "`ewald xfel simulate --volume` or a reconstruction, or an MRC file holding ds in 1/A) into an electron "
        "density by iterative projections (ER, HIO, DM, RAAR) with shrinkwrap support and positivity, from several "
        "random starts; keeps the best by Fourier error, averages the aligned starts and reports the phase-retrieval "
        "transfer function (PRTF) and its 1/e resolution. Unmeasured voxels float free. See docs/phasing.md.",
        "n, voxel_a, error, best, errors [per start], prtf_resolution_a, prtf_reached, iterations, seconds, "
        "measured_voxels, outputs{density, average, support, prtf_txt, prtf_png}",
        1, 1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (parse_recipe(recipe, &c) != EW_OK) return ew_cli_fail();
    c.loops = (int)loops;
    c.starts = (int)starts;
    c.shrinkwrap_every = (int)sw_every;
    c.nthreads = (int)threads;
    c.positivity = !no_pos;
    c.recenter = !no_recenter;
    c.fftw_measure = !estimate;
    if (ew_phase_config_check(&c) != EW_OK) return ew_cli_fail();
    ew_volume_t v, mv = {0};
    if (ew_volume_read(pos[0], EW_VOLUME_INTENSITY, &v) != EW_OK) return ew_cli_fail();
    ew_status_t st = EW_OK;
    int n = v.nx;
    if (v.ny != n || v.nz != n) st = ew_fail(EW_ERR_ARG, "%s: %d x %d x %d is not a cube", pos[0], v.nx, v.ny, v.nz);
    if (st == EW_OK && !(v.voxel > 0)) st = ew_fail(EW_ERR_ARG, "%s: the voxel size ds is unknown", pos[0]);
    if (st == EW_OK && mask) {
        st = ew_volume_read(mask, -1, &mv);
        if (st == EW_OK && (mv.nx != n || mv.ny != n || mv.nz != n))
            st = ew_fail(EW_ERR_ARG, "%s: %d x %d x %d, but the intensity is %d^3", mask, mv.nx, mv.ny, mv.nz, n);
    }
    size_t nv = (size_t)n * n * n, measured = 0;
    uint8_t *known = st == EW_OK ? ew_alloc_array(nv, 1) : NULL;
    if (st == EW_OK && !known) st = EW_ERR_NOMEM;
    for (size_t i = 0; st == EW_OK && i < nv; i++) {
        int x = (int)(i % n) - n / 2, y = (int)(i / n % n) - n / 2, z = (int)(i / ((size_t)n * n)) - n / 2;
        double s = sqrt((double)x * x + (double)y * y + (double)z * z) * v.voxel;
        known[i] = isfinite(v.data[i]) && v.data[i] >= 0 && (!mv.data || mv.data[i] != 0) && s >= smin &&
                   (smax <= 0 || s <= smax);
        if (!known[i]) v.data[i] = 0;
        measured += known[i];
    }
    ew_phase_result_t res;
    memset(&res, 0, sizeof res);
    if (st == EW_OK) {
        ew_rvol_t I = {n, v.voxel, v.data};
        ew_info("phasing %s: %d^3 voxels of %.5g 1/A, %zu measured; %d starts x %d loops", pos[0], n, v.voxel,
                measured, c.starts, c.loops);
        st = ew_phase_run(&I, known, &c, &res);
    }
    char txt[4200] = "", png[4200] = "";
    ew_volume_t o = {0};
    o.nx = o.ny = o.nz = n;
    o.kind = EW_VOLUME_DENSITY;
    o.voxel = res.voxel;
    snprintf(o.units, sizeof o.units, "electrons/voxel");
    const char *written[3] = {NULL, NULL, NULL};
    if (st == EW_OK) {
        o.data = res.density;
        if ((st = ew_volume_write(out, &o)) == EW_OK) written[0] = out;
    }
    if (st == EW_OK && average) {
        o.data = res.average;
        if ((st = ew_volume_write(average, &o)) == EW_OK) written[1] = average;
    }
    float *sup = NULL;
    if (st == EW_OK && support) {
        if (!(sup = ew_alloc_array(nv, sizeof *sup))) st = EW_ERR_NOMEM;
        for (size_t i = 0; st == EW_OK && i < nv; i++) sup[i] = res.support[i] ? 1.0f : 0.0f;
        o.data = sup;
        if (st == EW_OK && (st = ew_volume_write(support, &o)) == EW_OK) written[2] = support;
    }
    if (st == EW_OK && prefix) st = write_prtf(prefix, &res, txt, png, sizeof txt);
    if (st != EW_OK)
        for (int i = 0; i < 3; i++)
            if (written[i]) remove(written[i]);
    if (st == EW_OK) {
        printf("%s: %d^3, %zu measured voxels; density voxel %.4g A\n", pos[0], n, measured, res.voxel);
        printf("  starts    %d x %ld iterations, %.1f s; Fourier error per start:", res.nstarts, res.iterations,
               res.seconds);
        for (int k = 0; k < res.nstarts; k++) printf(" %.4f", res.errors[k]);
        printf("\n  best      start %d, Fourier error %.5f\n", res.best, res.error);
        printf("  PRTF      1/e at %.2f A%s\n", res.resolution, res.resolution_reached ? "" : " (never below: the grid's edge)");
        for (int i = 0; i < 3; i++)
            if (written[i]) printf("wrote %s\n", written[i]);
        if (prefix) printf("wrote %s, %s\n", txt, png);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "n", n);
            cJSON_AddNumberToObject(js, "voxel_a", res.voxel);
            cJSON_AddNumberToObject(js, "error", res.error);
            cJSON_AddNumberToObject(js, "best", res.best);
            cJSON_AddItemToObject(js, "errors", cJSON_CreateDoubleArray(res.errors, res.nstarts));
            cJSON_AddNumberToObject(js, "prtf_resolution_a", res.resolution);
            cJSON_AddBoolToObject(js, "prtf_reached", res.resolution_reached);
            cJSON_AddNumberToObject(js, "iterations", (double)res.iterations);
            cJSON_AddNumberToObject(js, "seconds", res.seconds);
            cJSON_AddNumberToObject(js, "measured_voxels", (double)measured);
            cJSON *oj = cJSON_AddObjectToObject(js, "outputs");
            const char *keys[3] = {"density", "average", "support"};
            for (int i = 0; i < 3; i++)
                if (written[i]) cJSON_AddStringToObject(oj, keys[i], written[i]);
            if (prefix) {
                cJSON_AddStringToObject(oj, "prtf_txt", txt);
                cJSON_AddStringToObject(oj, "prtf_png", png);
            }
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_free(sup);
    ew_free(known);
    ew_phase_result_free(&res);
    ew_volume_free(&v);
    ew_volume_free(&mv);
    return st == EW_OK ? 0 : ew_cli_fail();
}
