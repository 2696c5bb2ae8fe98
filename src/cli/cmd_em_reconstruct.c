/* ewald em reconstruct: a 3D map from a particles STAR file by direct
 * Fourier inversion with half maps and FSC (src/recon/em_recon.h), poses
 * optionally re-estimated by projection matching (src/recon/em_pose.h). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "eval/orient.h"
#include "io/mrc.h"
#include "io/png.h"
#include "io/structure.h"
#include "io/volume.h"
#include "physics/specimen.h"
#include "recon/em_pose.h"
#include "recon/em_recon.h"

/* The truth map (n^3, voxel pixel): a PDB/mmCIF structure's potential
 * (ew_em_potential_map, centred as the simulator centres particles) or a
 * density map of the same size. */
static ew_status_t read_truth(const char *path, int n, double pixel, float *out)
{
    if (ew_cli_ext_is(path, "pdb|ent|cif|mmcif")) {
        ew_structure_t s;
        ew_structure_options_t ro = {0};
        EW_TRY(ew_structure_read(path, &ro, &s));
        ew_em_model_t m;
        ew_status_t st = ew_em_model_init(&m, &s, 0.0);
        ew_structure_free(&s);
        EW_TRY(st);
        ew_em_potential_map(&m.pot, n, pixel, out);
        ew_em_model_free(&m);
        return EW_OK;
    }
    ew_volume_t v;
    EW_TRY(ew_volume_read(path, EW_VOLUME_DENSITY, &v));
    ew_status_t st = EW_OK;
    if (v.nx != n || v.ny != n || v.nz != n)
        st = ew_fail(EW_ERR_FORMAT, "%s: %d x %d x %d voxels, but the particles' box is %d", path, v.nx, v.ny, v.nz, n);
    else if (v.voxel > 0 && fabs(v.voxel - pixel) > 1e-3 * pixel)
        st = ew_fail(EW_ERR_FORMAT, "%s: voxel size %.4g A, but the particles' pixel is %.4g A", path, v.voxel, pixel);
    else
        memcpy(out, v.data, (size_t)n * n * n * sizeof *out);
    ew_volume_free(&v);
    return st;
}

static ew_status_t write_png(const char *path, const ew_shell_curve_t *half, const ew_shell_curve_t *truth, double res)
{
    ew_plot_t *p = ew_plot_new(800, 500, "Fourier shell correlation", "spatial frequency s (1/A)", "FSC");
    if (!p) return ew_fail(EW_ERR_NOMEM, "%s: out of memory for the plot", path);
    ew_plot_set_yrange(p, -0.1, 1.05);
    ew_status_t st = ew_plot_add_series(p, half->s, half->value, (size_t)half->nshell, "half maps");
    if (st == EW_OK && truth) st = ew_plot_add_series(p, truth->s, truth->value, (size_t)truth->nshell, "map vs truth");
    if (st == EW_OK) st = ew_plot_hline(p, 0.143, "0.143");
    if (st == EW_OK && truth) st = ew_plot_hline(p, 0.5, "0.5");
    char lab[64];
    snprintf(lab, sizeof lab, "%.2f A", res);
    if (st == EW_OK && isfinite(res) && res > 0) st = ew_plot_vline(p, 1 / res, lab);
    if (st == EW_OK) st = ew_plot_write_png(p, path);
    ew_plot_free(p);
    return st;
}

int cmd_em_reconstruct(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0, no_ctf = 0, no_halves = 0;
    char **pos;
    ew_emrec_config_t c;
    ew_emrec_config_default(&c);
    ew_empose_config_t pc;
    ew_empose_config_default(&pc);
    long pad = c.pad, level = pc.grid_level, threads = 0;
    double pixel = 0;
    const char *out = "map.mrc", *truth = NULL, *reference = NULL;
    ew_opt_t opts[] = {
        {"pixel", 0, EW_OPT_DOUBLE, &pixel, "data", "pixel size, Angstrom (0: rlnImagePixelSize of the STAR file)", NULL, 0, 0, 100},
        {"no-ctf", 0, EW_OPT_FLAG, &no_ctf, "data", "the images carry no CTF (CTF = 1)", NULL, 0, 0, 0},
        {"pad", 0, EW_OPT_INT, &pad, "recon", "Fourier padding factor", NULL, 0, 1, 3},
        {"tau", 0, EW_OPT_DOUBLE, &c.tau, "recon", "Wiener constant added to the CTF^2 sums (< 0: per shell from the half-map FSC)", NULL, 0, -1e30, 1e30},
        {"max-res", 0, EW_OPT_DOUBLE, &c.max_res, "recon", "frequencies finer than this are not inserted, Angstrom (0: Nyquist)", NULL, 0, 0, 1e4},
        {"fsc-shell", 0, EW_OPT_DOUBLE, &c.fsc_shell, "recon", "FSC shell width, voxels", NULL, 0, 1, 64},
        {"seed", 0, EW_OPT_U64, &c.seed, "recon", "seed of the random half-set split", NULL, 0, 0, 0},
        {"reference", 0, EW_OPT_STRING, &reference, "pose", "re-estimate every pose by projection matching against this map (MRC, same box) instead of the STAR angles", NULL, 0, 0, 0},
        {"grid-level", 0, EW_OPT_INT, &level, "pose", "600-cell level of the global search (5: 6300 rotations, ~11 degrees)", NULL, 0, 1, 40},
        {"search-res", 0, EW_OPT_DOUBLE, &pc.search_res, "pose", "highest frequency of the global search, Angstrom (0: 4 pixels)", NULL, 0, 0, 1e4},
        {"refine-res", 0, EW_OPT_DOUBLE, &pc.refine_res, "pose", "highest frequency of the local refinement, Angstrom (0: 2.5 pixels)", NULL, 0, 0, 1e4},
        {"max-shift", 0, EW_OPT_DOUBLE, &pc.max_shift, "pose", "largest shift searched per axis, pixels", NULL, 0, 0, 1e4},
        {"min-step", 0, EW_OPT_DOUBLE, &pc.min_step_deg, "pose", "last refinement step, degrees", NULL, 0, 1e-6, 90},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {"out", 'o', EW_OPT_STRING, &out, "output", "the map (MRC, V); also OUT_half1/2.mrc, OUT_fsc.txt, OUT_fsc.png (OUT_fsc_truth.txt with --truth)", NULL, 0, 0, 0},
        {"no-halves", 0, EW_OPT_FLAG, &no_halves, "output", "do not write the half maps", NULL, 0, 0, 0},
        {"truth", 0, EW_OPT_STRING, &truth, "output", "true map (MRC) or structure (PDB/mmCIF: its potential): FSC of the map against it", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald em reconstruct PARTICLES.star [options]",
        "Reconstructs a 3D map from particle images and their poses and CTFs (RELION particles STAR file, e.g. "
        "`ewald em simulate --box N`'s particles.star) by direct Fourier inversion: CTF-weighted trilinear "
        "insertion, Wiener filter, gridding correction. The particles are split into random halves; the half "
        "maps' FSC gives the 0.143 resolution and the per-shell Wiener constant of the full map. With --reference "
        "the poses are first re-estimated by projection matching (the error against the STAR's angles is "
        "reported); with --truth the map's FSC against the true map or structure.",
        "particles, box, pixel, res_0143_a, n_half[2], seconds, pose_median_deg, pose_p90_deg, pose_mean_cc "
        "(with --reference), truth_res_05_a, truth_res_0143_a (with --truth), "
        "outputs{map, half1, half2, fsc, png, fsc_truth}",
        1, 1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (threads > 0) omp_set_num_threads((int)threads);
    char half1[1024], half2[1024], fsc[1024], png[1024], tfsc[1024];
    ew_cli_replace_ext(out, "_half1.mrc", half1, sizeof half1);
    ew_cli_replace_ext(out, "_half2.mrc", half2, sizeof half2);
    ew_cli_replace_ext(out, "_fsc.txt", fsc, sizeof fsc);
    ew_cli_replace_ext(out, "_fsc.png", png, sizeof png);
    ew_cli_replace_ext(out, "_fsc_truth.txt", tfsc, sizeof tfsc);
    float *imgs = NULL, *tmap = NULL;
    ew_em_view_t *views = NULL;
    size_t count = 0, nvox = 0;
    int box = 0;
    double file_pixel = 0, pose_t = 0, cc_mean = 0;
    ew_em_recon_t rec = {0};
    ew_shell_curve_t tf = {0};
    ew_orient_err_t oe = {0};
    ew_status_t st = ew_em_particles_read(pos[0], &imgs, &views, &count, &box, &file_pixel);
    if (st == EW_OK && pixel <= 0) pixel = file_pixel;
    if (st == EW_OK && !(pixel > 0))
        st = ew_fail(EW_ERR_FORMAT, "%s: no rlnImagePixelSize in data_optics: give --pixel", pos[0]);
    if (st == EW_OK) st = ew_size_mul3((size_t)box, (size_t)box, (size_t)box, &nvox);
    if (st == EW_OK && truth) {
        if (!(tmap = ew_alloc_array(nvox, sizeof *tmap))) st = EW_ERR_NOMEM;
        if (st == EW_OK) st = read_truth(truth, box, pixel, tmap);
    }
    if (st == EW_OK && reference) {
        float *ref = ew_alloc_array(nvox, sizeof *ref);
        ew_em_view_t *given = ew_alloc_array(count, sizeof *given);
        double *score = ew_alloc_array(count, sizeof *score);
        ew_quat_t *qa = ew_alloc_array(count, sizeof *qa), *qb = ew_alloc_array(count, sizeof *qb);
        st = ref && given && score && qa && qb ? read_truth(reference, box, pixel, ref) : EW_ERR_NOMEM;
        pc.box = box, pc.pixel = pixel, pc.grid_level = (int)level, pc.use_ctf = !no_ctf;
        if (st == EW_OK) {
            memcpy(given, views, count * sizeof *views);
            double t0 = ew_time_now();
            st = ew_em_pose_match(&pc, ref, imgs, count, views, score);
            pose_t = ew_time_now() - t0;
        }
        for (size_t i = 0; st == EW_OK && i < count; i++) {
            qa[i] = ew_mat_to_quat(given[i].R);
            qb[i] = ew_mat_to_quat(views[i].R);
            cc_mean += score[i] / (double)count;
        }
        if (st == EW_OK && count > 0) st = ew_orient_error(qa, qb, count, NULL, &oe);
        ew_free(ref), ew_free(given), ew_free(score), ew_free(qa), ew_free(qb);
    }
    c.box = box, c.pixel = pixel, c.pad = (int)pad, c.use_ctf = !no_ctf;
    if (st == EW_OK) st = ew_em_reconstruct(&c, imgs, views, count, &rec);
    if (st == EW_OK && truth) st = ew_fsc_density(rec.map, tmap, box, pixel, c.fsc_shell, &tf);
    int written = 0;
    const double thr[2] = {0.143, 0.5};
    if (st == EW_OK && (st = ew_mrc_write(out, rec.map, box, box, box, pixel, NULL, 0, 2)) == EW_OK) written = 1;
    if (st == EW_OK && !no_halves && (st = ew_mrc_write(half1, rec.half[0], box, box, box, pixel, NULL, 0, 2)) == EW_OK)
        written = 2;
    if (st == EW_OK && !no_halves && (st = ew_mrc_write(half2, rec.half[1], box, box, box, pixel, NULL, 0, 2)) == EW_OK)
        written = 3;
    if (st == EW_OK && (st = ew_curve_write_table(fsc, &rec.fsc, "half-map FSC", thr, 1)) == EW_OK) written = 4;
    if (st == EW_OK && truth && (st = ew_curve_write_table(tfsc, &tf, "FSC vs truth", thr, 2)) == EW_OK) written = 5;
    if (st == EW_OK) st = write_png(png, &rec.fsc, truth ? &tf : NULL, rec.res_0143);
    if (st != EW_OK) { /* no partial set of outputs */
        const char *paths[5] = {out, half1, half2, fsc, tfsc};
        for (int i = 0; i < written; i++) remove(paths[i]);
    }
    double t05 = truth && st == EW_OK ? ew_curve_resolution(&tf, 0.5) : 0;
    double t0143 = truth && st == EW_OK ? ew_curve_resolution(&tf, 0.143) : 0;
    if (st == EW_OK) {
        printf("%s: %zu particles of %d x %d pixels of %.4g A%s\n", pos[0], count, box, box, pixel,
               no_ctf ? " (no CTF)" : "");
        if (reference)
            printf("  poses by projection matching against %s in %.1f s: mean CC %.4g; vs the STAR's angles median "
                   "%.2f, p90 %.2f degrees (hand %d)\n", reference, pose_t, cc_mean, oe.median_deg, oe.p90_deg, oe.hand);
        printf("  halves of %zu and %zu particles: FSC 0.143 at %.2f A (Nyquist %.2f A); %.1f s\n", rec.n_half[0],
               rec.n_half[1], rec.res_0143, 2 * pixel, rec.seconds);
        if (truth) printf("  map vs %s: FSC 0.5 at %.2f A, 0.143 at %.2f A\n", truth, t05, t0143);
        printf("wrote %s%s%s%s%s, %s, %s%s%s\n", out, no_halves ? "" : ", ", no_halves ? "" : half1,
               no_halves ? "" : ", ", no_halves ? "" : half2, fsc, png, truth ? ", " : "", truth ? tfsc : "");
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "particles", (double)count);
            cJSON_AddNumberToObject(js, "box", box);
            cJSON_AddNumberToObject(js, "pixel", pixel);
            cJSON_AddNumberToObject(js, "res_0143_a", rec.res_0143);
            double nh[2] = {(double)rec.n_half[0], (double)rec.n_half[1]};
            cJSON_AddItemToObject(js, "n_half", cJSON_CreateDoubleArray(nh, 2));
            cJSON_AddNumberToObject(js, "seconds", rec.seconds + pose_t);
            if (reference) {
                cJSON_AddNumberToObject(js, "pose_median_deg", oe.median_deg);
                cJSON_AddNumberToObject(js, "pose_p90_deg", oe.p90_deg);
                cJSON_AddNumberToObject(js, "pose_mean_cc", cc_mean);
            }
            if (truth) {
                cJSON_AddNumberToObject(js, "truth_res_05_a", isfinite(t05) ? t05 : -1);
                cJSON_AddNumberToObject(js, "truth_res_0143_a", isfinite(t0143) ? t0143 : -1);
            }
            cJSON *o = cJSON_AddObjectToObject(js, "outputs");
            cJSON_AddStringToObject(o, "map", out);
            if (!no_halves) cJSON_AddStringToObject(o, "half1", half1), cJSON_AddStringToObject(o, "half2", half2);
            cJSON_AddStringToObject(o, "fsc", fsc);
            cJSON_AddStringToObject(o, "png", png);
            if (truth) cJSON_AddStringToObject(o, "fsc_truth", tfsc);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_orient_err_free(&oe);
    ew_shell_curve_free(&tf);
    ew_em_recon_free(&rec);
    ew_free(tmap);
    ew_free(imgs);
    ew_free(views);
    return st == EW_OK ? 0 : ew_cli_fail();
}
