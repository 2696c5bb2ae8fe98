/* ewald xfel emc: 3D intensity from sparse diffraction patterns by
 * expand-maximize-compress (src/recon/emc.h). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "eval/orient.h"
#include "io/cxi.h"
#include "io/emcfile.h"
#include "io/h5vol.h"
#include "io/volume.h"
#include "io/quatfile.h"
#include "recon/emc.h"

typedef struct {
    float *s, *corr;
    uint8_t *mask;
    size_t npix;
    ew_emc_photons_t ph;
    ew_quat_t *truth; /* CXI ground truth, or NULL */
} emc_input_t;

static void input_free(emc_input_t *in)
{
    ew_free(in->s);
    ew_free(in->corr);
    ew_free(in->mask);
    ew_emc_photons_free(&in->ph);
    ew_free(in->truth);
    memset(in, 0, sizeof *in);
}

static ew_status_t read_cxi(const char *path, int round, emc_input_t *in)
{
    ew_cxi_reader_t *r;
    EW_TRY(ew_cxi_reader_open(path, &r));
    const ew_cxi_geometry_t *g = ew_cxi_reader_geometry(r);
    size_t npix = (size_t)g->width * g->height;
    long long n = ew_cxi_reader_count(r), chunk = 64;
    in->npix = npix;
    in->s = ew_alloc_array(npix * 3, sizeof *in->s);
    in->corr = ew_alloc_array(npix, sizeof *in->corr);
    in->mask = ew_alloc_array(npix, 1);
    float *buf = ew_alloc_array((size_t)chunk * npix, sizeof *buf);
    ew_status_t st = in->s && in->corr && in->mask && buf ? EW_OK : EW_ERR_NOMEM;
    if (st == EW_OK) {
        memcpy(in->s, g->s, npix * 3 * sizeof *in->s);
        memcpy(in->mask, g->mask, npix);
        for (size_t p = 0; p < npix; p++)
            in->corr[p] = (g->solid_angle ? g->solid_angle[p] : 1.0f) * (g->polarization ? g->polarization[p] : 1.0f);
        st = ew_emc_photons_init(&in->ph, (int)npix);
    }
    for (long long i = 0; st == EW_OK && i < n; i += chunk) {
        long long k = n - i < chunk ? n - i : chunk;
        if ((st = ew_cxi_read_patterns(r, i, k, buf)) != EW_OK) break;
        for (long long f = 0; st == EW_OK && f < k; f++) {
            float *fr = buf + (size_t)f * npix;
            for (size_t p = 0; p < npix; p++) {
                if (g->mask[p] == 2 && !(fr[p] >= 0)) fr[p] = 0;
                if (!round && fabsf(fr[p] - nearbyintf(fr[p])) > 1e-3f) {
                    st = ew_fail(EW_ERR_FORMAT, "%s: pattern %lld pixel %zu holds %g, not a photon count (--round rounds)",
                                 path, i + f, p, fr[p]);
                    break;
                }
            }
            if (st == EW_OK && (st = ew_emc_photons_add_frame(&in->ph, fr)) != EW_OK)
                ew_fail_context(st, "%s: pattern %lld", path, i + f);
        }
    }
    if (st == EW_OK && ew_cxi_reader_has_truth(r) && n > 0) {
        double *q = ew_alloc_array((size_t)n, 4 * sizeof *q);
        in->truth = ew_alloc_array((size_t)n, sizeof *in->truth);
        st = q && in->truth ? ew_cxi_read_truth(r, 0, n, q, NULL, NULL) : EW_ERR_NOMEM;
        for (long long i = 0; st == EW_OK && i < n; i++)
            in->truth[i] = (ew_quat_t){q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]};
        ew_free(q);
    }
    ew_free(buf);
    ew_cxi_reader_close(r);
    return st;
}

static ew_status_t read_emc(const char *path, const char *detpath, double lambda, emc_input_t *in)
{
    if (!detpath) return ew_fail(EW_ERR_ARG, "%s: a photon file needs --detector FILE", path);
    if (!(lambda > 0)) return ew_fail(EW_ERR_ARG, "%s: a photon file needs the beam: --energy EV or --wavelength A", path);
    ew_emc_detector_t det;
    EW_TRY(ew_emc_detector_read(detpath, &det));
    in->npix = (size_t)det.num_pix;
    in->s = ew_alloc_array(in->npix * 3, sizeof *in->s);
    in->corr = ew_alloc_array(in->npix, sizeof *in->corr);
    in->mask = ew_alloc_array(in->npix, 1);
    ew_status_t st = in->s && in->corr && in->mask ? EW_OK : EW_ERR_NOMEM;
    if (st == EW_OK) st = ew_emc_detector_to_s(&det, lambda, in->s);
    for (size_t p = 0; st == EW_OK && p < in->npix; p++) {
        in->corr[p] = (float)det.corr[p];
        in->mask[p] = det.mask[p];
    }
    ew_emc_detector_free(&det);
    if (st == EW_OK) st = ew_emc_photons_read(path, &in->ph);
    if (st == EW_OK && (size_t)in->ph.num_pix != in->npix)
        st = ew_fail(EW_ERR_FORMAT, "%s: %d pixels per frame, but the detector %s has %zu", path, in->ph.num_pix,
                     detpath, in->npix);
    return st;
}

int cmd_xfel_emc(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_emc_config_t c;
    ew_emc_config_default(&c);
    long beta_period = c.beta_period, level = 4, final_level = 0, iters = 20, n_vox = 0, mem_mb = (long)c.mem_limit_mb, threads = 0;
    int no_scale = !c.update_scale, no_friedel = !c.friedel, round = 0, resume = 0;
    double energy = 0, wavelength = 0;
    const char *detector = NULL, *out = "emc_intensity.h5", *orient = NULL;
    ew_opt_t opts[] = {
        {"detector", 'd', EW_OPT_STRING, &detector, "data", "Dragonfly detector file (with a .emc photon file)", NULL, 0, 0, 0},
        {"energy", 'e', EW_OPT_DOUBLE, &energy, "data", "photon energy, eV (with a .emc photon file)", NULL, 0, 0, 1e7},
        {"wavelength", 0, EW_OPT_DOUBLE, &wavelength, "data", "wavelength, Angstrom (instead of --energy)", NULL, 0, 0, 1e4},
        {"round", 0, EW_OPT_FLAG, &round, "data", "CXI: round non-integer patterns to photon counts instead of failing", NULL, 0, 0, 0},
        {"level", 'l', EW_OPT_INT, &level, "grid", "600-cell level of the first rotation grid (10 (5 n^3 + n) rotations)", NULL, 0, 1, 40},
        {"final-level", 0, EW_OPT_INT, &final_level, "grid", "refine level by level up to this one (0: stay at --level)", NULL, 0, 0, 40},
        {"iterations", 'n', EW_OPT_INT, &iters, "grid", "iterations at each level", NULL, 0, 1, 100000},
        {"n-vox", 0, EW_OPT_INT, &n_vox, "model", "model voxels per axis (0: from the detector's s range)", NULL, 0, 0, 2048},
        {"ds", 0, EW_OPT_DOUBLE, &c.ds, "model", "model voxel spacing, 1/A (0: the detector's pixel spacing near s = 0)", NULL, 0, 0, 10},
        {"beta-start", 0, EW_OPT_DOUBLE, &c.beta_start, "model", "annealing beta of the first iteration, (0, 1]", NULL, 0, 1e-9, 1},
        {"beta-factor", 0, EW_OPT_DOUBLE, &c.beta_factor, "model", "beta is multiplied by this every --beta-period iterations", NULL, 0, 1, 100},
        {"beta-period", 0, EW_OPT_INT, &beta_period, "model", "iterations between beta steps", NULL, 0, 1, 100000},
        {"beta-max", 0, EW_OPT_DOUBLE, &c.beta_max, "model", "beta never exceeds this", NULL, 0, 1e-9, 1},
        {"no-scale", 0, EW_OPT_FLAG, &no_scale, "model", "do not estimate per-pattern scale (fluence) factors", NULL, 0, 0, 0},
        {"no-friedel", 0, EW_OPT_FLAG, &no_friedel, "model", "do not symmetrize the model I(s) = I(-s)", NULL, 0, 0, 0},
        {"p-min", 0, EW_OPT_DOUBLE, &c.p_min, "model", "probabilities below this are not merged", NULL, 0, 0, 1},
        {"seed", 0, EW_OPT_U64, &c.seed, "model", "seed of the random start model", NULL, 0, 0, 0},
        {"mem-limit-mb", 0, EW_OPT_INT, &mem_mb, "run", "keep the likelihood matrix (4 N R bytes) when it fits in this, MB", NULL, 0, 0, 1e9},
        {"no-mpi", 0, EW_OPT_FLAG, &c.no_mpi, "run", "run all patterns on this rank even in an MPI build", NULL, 0, 0, 0},
        {"checkpoint", 0, EW_OPT_STRING, &c.checkpoint, "run", "HDF5 state rewritten after every iteration", NULL, 0, 0, 0},
        {"resume", 0, EW_OPT_FLAG, &resume, "run", "continue from --checkpoint (at its grid level, then --iterations more)", NULL, 0, 0, 0},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {"out", 'o', EW_OPT_STRING, &out, "output", "the reconstructed intensity (HDF5 reciprocal volume, photons per pixel at unit scale)", NULL, 0, 0, 0},
        {"orientations", 0, EW_OPT_STRING, &orient, "output", "text table of each pattern's most likely orientation (w x y z)", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald xfel emc DATA [options]",
        "Reconstructs the 3D intensity from diffraction patterns of unknown orientation by expand-maximize-compress "
        "(Loh & Elser 2009; Dragonfly): Poisson likelihoods over a 600-cell rotation grid, per-pattern scale "
        "factors, annealing, Friedel symmetry, refinement to finer grids. DATA is a CXI file (patterns, geometry, "
        "mask, corr = solid angle x polarization) or a Dragonfly .emc photon file with --detector and the beam. "
        "With CXI ground truth the orientation error of the most likely rotations is reported. See docs/emc.md.",
        "patterns, pixels, mean_photons, rotations, level, iterations, n_vox, ds, rms_change, mutual_info, "
        "avg_loglik, frac_confident, beta, seconds, orientation_median_deg (with ground truth), "
        "orientation_hand, outputs{intensity, orientations, checkpoint}",
        1, 1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    c.n_vox = (int)n_vox;
    c.beta_period = (int)beta_period;
    c.update_scale = !no_scale;
    c.friedel = !no_friedel;
    c.mem_limit_mb = (size_t)mem_mb;
    if (final_level <= 0) final_level = level;
    if (resume && !c.checkpoint) {
        ew_fail(EW_ERR_ARG, "--resume needs --checkpoint FILE");
        return ew_cli_fail();
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    emc_input_t in;
    memset(&in, 0, sizeof in);
    ew_status_t st = ew_file_is_hdf5(pos[0])
                         ? read_cxi(pos[0], round, &in)
                         : read_emc(pos[0], detector, wavelength > 0 ? wavelength : energy > 0 ? EW_HC_EV_A / energy : 0,
                                    &in);
    ew_emc_sparse_t sp = {0};
    if (st == EW_OK) st = ew_emc_sparse_from_photons(&sp, &in.ph);
    double photons = 0;
    for (size_t d = 0; st == EW_OK && d < in.ph.num_frames; d++) photons += (double)ew_emc_photons_frame_total(&in.ph, d);
    size_t npat = in.ph.num_frames;
    int it_done = 0, grid_level = (int)level;
    if (st == EW_OK && resume) {
        size_t nrot;
        st = ew_emc_checkpoint_info(c.checkpoint, &it_done, &grid_level, &nrot);
    }
    ew_rotgrid_t grid = {0};
    ew_emc_t *e = NULL;
    if (st == EW_OK) st = ew_rotgrid_600cell(grid_level, &grid);
    ew_emc_pixels_t px = {in.npix, in.s, in.mask, in.corr};
    if (st == EW_OK) st = ew_emc_create(&e, &c, &px, &sp, &grid);
    if (st == EW_OK && resume) st = ew_emc_resume(e, c.checkpoint);
    ew_emc_stats_t stats = {0};
    double t0 = ew_time_now();
    if (st == EW_OK)
        printf("%s: %zu patterns of %zu pixels, %.1f photons per pattern; model %d^3 voxels of %.5g 1/A\n", pos[0],
               npat, in.npix, npat ? photons / npat : 0, ew_emc_model(e)->n, ew_emc_model(e)->ds);
    for (int lv = grid_level; st == EW_OK && lv <= final_level; lv++) {
        if (lv > grid_level) {
            ew_rotgrid_free(&grid);
            if ((st = ew_rotgrid_600cell(lv, &grid)) != EW_OK || (st = ew_emc_refine(e, &grid)) != EW_OK) break;
        }
        ew_info("EMC level %d: %zu rotations, %ld iterations", lv, grid.n, iters);
        for (long i = 0; st == EW_OK && i < iters; i++) {
            st = ew_emc_iterate(e, &stats); /* logs its figures (ew_info) */
        }
    }
    double seconds = ew_time_now() - t0;
    ew_quat_t *best = NULL;
    if (st == EW_OK && (orient || in.truth)) {
        const int32_t *br = ew_emc_best_rot(e);
        const ew_rotgrid_t *gg = ew_emc_grid(e);
        if (!(best = ew_alloc_array(npat, sizeof *best))) st = EW_ERR_NOMEM;
        for (size_t d = 0; st == EW_OK && d < npat; d++) best[d] = br[d] >= 0 ? gg->quat[br[d]] : (ew_quat_t){1, 0, 0, 0};
    }
    ew_orient_err_t oe = {0};
    if (st == EW_OK && in.truth) {
        ew_orient_opts_t oo;
        ew_orient_opts_default(&oo);
        oo.inplane_twin = 1;
        st = ew_orient_error(in.truth, best, npat, &oo, &oe);
    }
    if (st == EW_OK) st = ew_h5vol_write_rvol(out, ew_emc_model(e), "photons", NULL);
    if (st == EW_OK && orient && (st = ew_quat_file_write_text(orient, best, npat)) != EW_OK) remove(out);
    if (st == EW_OK) {
        if (in.truth)
            printf("  orientation error vs ground truth: median %.2f, p90 %.2f degrees (hand %d, in-plane twin allowed)\n",
                   oe.median_deg, oe.p90_deg, oe.hand);
        printf("  %d iterations in %.1f s, last: beta %.3g, rms change %.4g, mutual info %.3f, confident %.2f\n",
               ew_emc_iteration(e), seconds, stats.beta, stats.rms_change, stats.mutual_info, stats.frac_confident);
        printf("wrote %s\n", out);
        if (orient) printf("wrote %s\n", orient);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "patterns", (double)npat);
            cJSON_AddNumberToObject(js, "pixels", (double)in.npix);
            cJSON_AddNumberToObject(js, "mean_photons", npat ? photons / npat : 0);
            cJSON_AddNumberToObject(js, "rotations", (double)grid.n);
            cJSON_AddNumberToObject(js, "level", (double)(final_level > grid_level ? final_level : grid_level));
            cJSON_AddNumberToObject(js, "iterations", ew_emc_iteration(e));
            cJSON_AddNumberToObject(js, "n_vox", ew_emc_model(e)->n);
            cJSON_AddNumberToObject(js, "ds", ew_emc_model(e)->ds);
            cJSON_AddNumberToObject(js, "rms_change", stats.rms_change);
            cJSON_AddNumberToObject(js, "mutual_info", stats.mutual_info);
            cJSON_AddNumberToObject(js, "avg_loglik", stats.avg_loglik);
            cJSON_AddNumberToObject(js, "frac_confident", stats.frac_confident);
            cJSON_AddNumberToObject(js, "beta", stats.beta);
            cJSON_AddNumberToObject(js, "seconds", seconds);
            if (in.truth) {
                cJSON_AddNumberToObject(js, "orientation_median_deg", oe.median_deg);
                cJSON_AddNumberToObject(js, "orientation_hand", oe.hand);
            }
            cJSON *o = cJSON_AddObjectToObject(js, "outputs");
            cJSON_AddStringToObject(o, "intensity", out);
            if (orient) cJSON_AddStringToObject(o, "orientations", orient);
            if (c.checkpoint) cJSON_AddStringToObject(o, "checkpoint", c.checkpoint);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_orient_err_free(&oe);
    ew_free(best);
    ew_emc_free(e);
    ew_rotgrid_free(&grid);
    ew_emc_sparse_free(&sp);
    input_free(&in);
    return st == EW_OK ? 0 : ew_cli_fail();
}
