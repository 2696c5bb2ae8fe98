/* ewald compare: align two volumes (rotation, hand, shift) and measure
 * their Fourier shell correlation. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "eval/align.h"
#include "eval/fsc.h"
#include "io/png.h"
#include "io/volume.h"

typedef struct {
    const char *kind, *prefix, *aligned;
    double shell_width, rmin, rmax, voxel, tol_deg;
    long coarse_n, coarse_level, ncandidates;
    int no_align, no_hand, no_shell_norm, no_files;
} cmp_opts_t;

static ew_status_t fsc_plot(const char *path, const ew_shell_curve_t *c, double s05, int c05, double s0143,
                            int c0143, const char *title)
{
    ew_plot_t *p = ew_plot_new(800, 500, title, "spatial frequency s (1/A)", "FSC");
    if (!p) return EW_ERR_NOMEM;
    ew_plot_set_yrange(p, fmin(-0.1, c->value[0] - 0.05), 1.05);
    ew_status_t st = ew_plot_add_series(p, c->s, c->value, (size_t)c->nshell, "FSC");
    if (st == EW_OK) st = ew_plot_hline(p, 0.5, "0.5");
    if (st == EW_OK) st = ew_plot_hline(p, 0.143, "0.143");
    char lab[64];
    if (st == EW_OK && c05 == 1) {
        snprintf(lab, sizeof lab, "0.5: %.1f A", 1 / s05);
        st = ew_plot_vline(p, s05, lab);
    }
    if (st == EW_OK && c0143 == 1) {
        snprintf(lab, sizeof lab, "0.143: %.1f A", 1 / s0143);
        st = ew_plot_vline(p, s0143, lab);
    }
    if (st == EW_OK) st = ew_plot_write_png(p, path);
    ew_plot_free(p);
    return st;
}

static void add_crossing(cJSON *js, const char *key_d, const char *key_s, int crossed, double s)
{
    /* crossed 1: a crossing; 0: never below (grid-limited: the last shell); -1: below at once. */
    if (crossed == -1) {
        cJSON_AddNullToObject(js, key_d);
        cJSON_AddNullToObject(js, key_s);
    } else {
        cJSON_AddNumberToObject(js, key_d, 1 / s);
        cJSON_AddNumberToObject(js, key_s, s);
    }
}

static void print_crossing(const char *thr, int crossed, double s)
{
    if (crossed == 1)
        printf("  FSC = %-5s  at s = %.4f 1/A: resolution %.2f A\n", thr, s, 1 / s);
    else if (crossed == 0)
        printf("  FSC = %-5s  never crossed: better than %.2f A (the grid's edge)\n", thr, 1 / s);
    else
        printf("  FSC = %-5s  below already at the first shell\n", thr);
}

int cmd_compare(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_align_opts_t ao;
    ew_align_opts_default(&ao);
    cmp_opts_t o = {"auto", NULL, NULL, 1, ao.rmin, ao.rmax, 0, ao.tol_deg, ao.coarse_n, ao.coarse_level,
                    ao.ncandidates, 0, 0, 0, 0};
    ew_opt_t opts[] = {
        {"kind", 'k', EW_OPT_CHOICE, &o.kind, NULL, "intensity (centred reciprocal volumes; FSC of sqrt(I)) or density (real-space maps; complex FSC); auto: HDF5 says, MRC is density", "auto|intensity|density", 0, 0, 0},
        {"shell-width", 'w', EW_OPT_DOUBLE, &o.shell_width, NULL, "FSC shell width, voxels", NULL, 0, 1, 64},
        {"voxel", 0, EW_OPT_DOUBLE, &o.voxel, NULL, "voxel size when the files lack it: Angstrom (density) or 1/A (intensity); 0: from A", NULL, 0, 0, 1e6},
        {"out-prefix", 'o', EW_OPT_STRING, &o.prefix, "output", "write PREFIX_fsc.txt and PREFIX_fsc.png (default: B's path without extension)", NULL, 0, 0, 0},
        {"no-files", 0, EW_OPT_FLAG, &o.no_files, "output", "write no FSC table or plot", NULL, 0, 0, 0},
        {"aligned", 'a', EW_OPT_STRING, &o.aligned, "output", "write B aligned onto A to this file (.mrc, .map, .h5)", NULL, 0, 0, 0},
        {"no-align", 0, EW_OPT_FLAG, &o.no_align, "align", "compare as given (no rotation, hand or shift search)", NULL, 0, 0, 0},
        {"rmin", 0, EW_OPT_DOUBLE, &o.rmin, "align", "alignment score q-range start, fraction of Nyquist", NULL, 0, 0, 1},
        {"rmax", 0, EW_OPT_DOUBLE, &o.rmax, "align", "alignment score q-range end, fraction of Nyquist", NULL, 0, 0.01, 1},
        {"no-hand", 0, EW_OPT_FLAG, &o.no_hand, "align", "do not try the other hand (mirror / enantiomer)", NULL, 0, 0, 0},
        {"no-shell-normalize", 0, EW_OPT_FLAG, &o.no_shell_norm, "align", "intensities: do not normalise each Fourier shell before scoring", NULL, 0, 0, 0},
        {"coarse-n", 0, EW_OPT_INT, &o.coarse_n, "align", "size of the downsampled copies of the coarse search, voxels", NULL, 0, 8, 256},
        {"coarse-level", 0, EW_OPT_INT, &o.coarse_level, "align", "600-cell level of the coarse rotation set (5: 6300 rotations)", NULL, 0, 1, 12},
        {"candidates", 0, EW_OPT_INT, &o.ncandidates, "align", "coarse optima refined per hand", NULL, 0, 1, 64},
        {"tol", 0, EW_OPT_DOUBLE, &o.tol_deg, "align", "final rotation step of the refinement, degrees", NULL, 0, 1e-4, 10},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald compare A B [options]",
        "Aligns volume B onto volume A (rotation over all of SO(3), both hands, and for densities the "
        "translation; src/eval/align.h), then computes their Fourier shell correlation: for intensities on "
        "sqrt(I), for densities on the complex transforms. Prints the rotation, hand, alignment score and the "
        "resolution where the FSC falls below 0.5 and 0.143, and writes the FSC table (PREFIX_fsc.txt) and plot "
        "(PREFIX_fsc.png), and the aligned B if asked. A and B are MRC or HDF5 volume files of the same cubic "
        "size.",
        "a, b, kind, n, voxel, rotation_quat [w,x,y,z], rotation_deg, rotation_axis, hand, shift_voxels, score, "
        "score_other_hand, align_seconds, fsc_05_a, s_05, fsc_0143_a, s_0143 (null if below at the first shell), centred_fsc_05_a, centred_s_05 (intensities: shell-centred FSC), "
        "crossed_05, crossed_0143 (1 crossed, 0 never below: grid-limited, -1 below at once), shells, fsc_table, "
        "fsc_png, aligned",
        2, 2};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    int want = !strcmp(o.kind, "auto") ? -1 : !strcmp(o.kind, "intensity") ? EW_VOLUME_INTENSITY : EW_VOLUME_DENSITY;
    ew_volume_t a = {0}, b = {0};
    if (ew_volume_read(pos[0], want, &a) != EW_OK) return ew_cli_fail();
    if (ew_volume_read(pos[1], want < 0 ? (int)a.kind : want, &b) != EW_OK) {
        ew_volume_free(&a);
        return ew_cli_fail();
    }
    ew_status_t st = EW_OK;
    int n = a.nx;
    if (a.nx != a.ny || a.nx != a.nz || b.nx != a.nx || b.ny != a.nx || b.nz != a.nx)
        st = ew_fail(EW_ERR_ARG, "%s is %d x %d x %d and %s is %d x %d x %d: compare needs two cubes of one size",
                     pos[0], a.nx, a.ny, a.nz, pos[1], b.nx, b.ny, b.nz);
    double voxel = o.voxel > 0 ? o.voxel : a.voxel > 0 ? a.voxel : b.voxel;
    const char *vu = a.kind == EW_VOLUME_INTENSITY ? "1/A" : "A";
    if (st == EW_OK && !(voxel > 0))
        st = ew_fail(EW_ERR_ARG, "%s: the voxel size is unknown; give it with --voxel (%s)", pos[0], vu);
    if (st == EW_OK && o.voxel <= 0 && a.voxel > 0 && b.voxel > 0 && fabs(a.voxel - b.voxel) > 1e-3 * a.voxel)
        ew_warn("voxel sizes differ: %s %.5g %s, %s %.5g %s; using A's", pos[0], a.voxel, vu, pos[1], b.voxel, vu);
    ew_align_kind_t ak = a.kind == EW_VOLUME_INTENSITY ? EW_ALIGN_INTENSITY : EW_ALIGN_DENSITY;
    ew_align_result_t res;
    memset(&res, 0, sizeof res);
    res.q.w = 1;
    res.score_other_hand = NAN;
    float *moved = NULL;
    size_t nv = (size_t)n * n * n;
    if (st == EW_OK && !(moved = ew_alloc_array(nv, sizeof *moved))) st = EW_ERR_NOMEM;
    if (st == EW_OK && !o.no_align) {
        ao.rmin = o.rmin;
        ao.rmax = o.rmax;
        ao.coarse_n = (int)o.coarse_n;
        ao.coarse_level = (int)o.coarse_level;
        ao.ncandidates = (int)o.ncandidates;
        ao.try_hand = !o.no_hand;
        ao.shell_normalize = !o.no_shell_norm;
        ao.tol_deg = o.tol_deg;
        ew_info("aligning %s onto %s (%d^3 %s volumes)", pos[1], pos[0], n, ew_volume_kind_name(a.kind));
        st = ew_align_volumes(ak, a.data, b.data, n, &ao, &res);
        if (st == EW_OK) ew_align_apply(&res, b.data, n, moved);
    } else if (st == EW_OK) {
        memcpy(moved, b.data, nv * sizeof *moved);
        st = ew_align_score(ak, a.data, b.data, n, &ao, res.q, 0, &res.score, NULL);
    }
    ew_shell_curve_t curve = {0};
    if (st == EW_OK)
        st = ak == EW_ALIGN_INTENSITY ? ew_fsc_intensity(a.data, moved, n, voxel, o.shell_width, &curve)
                                      : ew_fsc_density(a.data, moved, n, voxel, o.shell_width, &curve);
    /* Intensities: also the shell-centred FSC, which the spherical average
     * of positive amplitudes cannot inflate (eval/fsc.h). */
    ew_shell_curve_t centred = {0};
    double sc05 = 0;
    int cc05 = 0;
    if (st == EW_OK && ak == EW_ALIGN_INTENSITY) {
        st = ew_fsc_intensity_centred(a.data, moved, n, voxel, o.shell_width, &centred);
        if (st == EW_OK) cc05 = ew_curve_crossing(&centred, 0.5, &sc05);
    }
    char table[4096] = "", png[4096] = "";
    double s05 = 0, s0143 = 0;
    int c05 = 0, c0143 = 0;
    if (st == EW_OK) {
        c05 = ew_curve_crossing(&curve, 0.5, &s05);
        c0143 = ew_curve_crossing(&curve, 0.143, &s0143);
    }
    if (st == EW_OK && !o.no_files) {
        char prefix[4000];
        if (o.prefix)
            snprintf(prefix, sizeof prefix, "%s", o.prefix);
        else
            ew_cli_replace_ext(pos[1], "", prefix, sizeof prefix);
        snprintf(table, sizeof table, "%s_fsc.txt", prefix);
        snprintf(png, sizeof png, "%s_fsc.png", prefix);
        const double thr[2] = {0.5, 0.143};
        st = ew_curve_write_table(table, &curve, "FSC", thr, 2);
        if (st == EW_OK) st = fsc_plot(png, &curve, s05, c05, s0143, c0143, "Fourier shell correlation");
        if (st != EW_OK) remove(table);
    }
    if (st == EW_OK && o.aligned) {
        ew_volume_t out = b;
        out.data = moved;
        out.voxel = voxel;
        st = ew_volume_write(o.aligned, &out);
    }
    if (st == EW_OK) {
        double axis[3], angle;
        ew_quat_to_axis_angle(res.q, axis, &angle);
        printf("%s vs %s: %d^3 %s volumes, voxel %.5g %s\n", pos[0], pos[1], n, ew_volume_kind_name(a.kind), voxel,
               vu);
        if (!o.no_align) {
            printf("  rotation  %.2f deg about (%.3f, %.3f, %.3f); quaternion (%.5f, %.5f, %.5f, %.5f)\n",
                   angle * 180 / EW_PI, axis[0], axis[1], axis[2], res.q.w, res.q.x, res.q.y, res.q.z);
            printf("  hand      %d (%s)%s\n", res.hand, res.hand ? "mirrored" : "as given",
                   ao.try_hand ? "" : ", other hand not tried");
            if (ak == EW_ALIGN_DENSITY)
                printf("  shift     (%.2f, %.2f, %.2f) voxels\n", res.shift[0], res.shift[1], res.shift[2]);
            printf("  score     %.4f (other hand %.4f), %.1f s\n", res.score, res.score_other_hand, res.seconds);
        } else
            printf("  score     %.4f (not aligned)\n", res.score);
        print_crossing("0.5", c05, s05);
        print_crossing("0.143", c0143, s0143);
        if (ak == EW_ALIGN_INTENSITY) {
            printf("  shell-centred FSC of sqrt(I) (the spherical average removed):\n");
            print_crossing("0.5", cc05, sc05);
        }
        if (table[0]) printf("wrote %s, %s\n", table, png);
        if (o.aligned) printf("wrote %s\n", o.aligned);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddStringToObject(js, "a", pos[0]);
            cJSON_AddStringToObject(js, "b", pos[1]);
            cJSON_AddStringToObject(js, "kind", ew_volume_kind_name(a.kind));
            cJSON_AddNumberToObject(js, "n", n);
            cJSON_AddNumberToObject(js, "voxel", voxel);
            double q[4] = {res.q.w, res.q.x, res.q.y, res.q.z};
            cJSON_AddItemToObject(js, "rotation_quat", cJSON_CreateDoubleArray(q, 4));
            cJSON_AddNumberToObject(js, "rotation_deg", angle * 180 / EW_PI);
            cJSON_AddItemToObject(js, "rotation_axis", cJSON_CreateDoubleArray(axis, 3));
            cJSON_AddNumberToObject(js, "hand", res.hand);
            cJSON_AddItemToObject(js, "shift_voxels", cJSON_CreateDoubleArray(res.shift, 3));
            cJSON_AddNumberToObject(js, "score", res.score);
            if (isfinite(res.score_other_hand))
                cJSON_AddNumberToObject(js, "score_other_hand", res.score_other_hand);
            else
                cJSON_AddNullToObject(js, "score_other_hand");
            cJSON_AddNumberToObject(js, "align_seconds", res.seconds);
            add_crossing(js, "fsc_05_a", "s_05", c05, s05);
            add_crossing(js, "fsc_0143_a", "s_0143", c0143, s0143);
            if (ak == EW_ALIGN_INTENSITY) add_crossing(js, "centred_fsc_05_a", "centred_s_05", cc05, sc05);
            cJSON_AddNumberToObject(js, "crossed_05", c05);
            cJSON_AddNumberToObject(js, "crossed_0143", c0143);
            cJSON_AddNumberToObject(js, "shells", curve.nshell);
            if (table[0]) {
                cJSON_AddStringToObject(js, "fsc_table", table);
                cJSON_AddStringToObject(js, "fsc_png", png);
            }
            if (o.aligned) cJSON_AddStringToObject(js, "aligned", o.aligned);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_shell_curve_free(&curve);
    ew_shell_curve_free(&centred);
    ew_free(moved);
    ew_volume_free(&a);
    ew_volume_free(&b);
    return st == EW_OK ? 0 : ew_cli_fail();
}
