/* ewald eval orientations: orientation error of predicted against true
 * rotations (src/eval/orient.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "eval/orient.h"
#include "io/png.h"
#include "io/quatfile.h"

static ew_status_t write_outputs(const char *prefix, const ew_orient_err_t *e, char *png, char *txt, size_t n)
{
    snprintf(png, n, "%s_orient_hist.png", prefix);
    snprintf(txt, n, "%s_orient_err.txt", prefix);
    FILE *f;
    char *tmp;
    EW_TRY(ew_atomic_open(txt, &f, &tmp));
    fprintf(f, "# orientation error per pattern, degrees (hand %d; median %.4f)\n# index error_deg%s\n", e->hand,
            e->median_deg, e->twin ? " inplane_twin" : "");
    for (size_t i = 0; i < e->n; i++) {
        fprintf(f, "%zu %.6f", i, e->err_deg[i]);
        if (e->twin) fprintf(f, " %d", e->twin[i]);
        fputc('\n', f);
    }
    EW_TRY(ew_atomic_commit(f, tmp, txt));
    ew_plot_t *p = ew_plot_new(800, 500, "orientation error", "error (degrees)", "patterns");
    if (!p) {
        remove(txt);
        return EW_ERR_NOMEM;
    }
    ew_plot_set_xrange(p, 0, 180);
    char lab[64];
    snprintf(lab, sizeof lab, "median %.2f deg", e->median_deg);
    ew_status_t st = ew_plot_add_histogram(p, e->err_deg, e->n, e->nbins, 0, 180, "patterns");
    if (st == EW_OK) st = ew_plot_vline(p, e->median_deg, lab);
    if (st == EW_OK) st = ew_plot_write_png(p, png);
    ew_plot_free(p);
    if (st != EW_OK) remove(txt);
    return st;
}

int cmd_eval_orient(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_orient_opts_t oo;
    ew_orient_opts_default(&oo);
    int no_mirror = !oo.try_mirror, twin = oo.inplane_twin;
    long nbins = oo.nbins;
    const char *prefix = NULL;
    ew_opt_t opts[] = {
        {"no-mirror", 0, EW_OPT_FLAG, &no_mirror, NULL, "do not try the mirror hand M R M (M = diag(1, 1, -1))", NULL, 0, 0, 0},
        {"inplane-twin", 0, EW_OPT_FLAG, &twin, NULL, "accept the 180-degree in-plane twin Rz(pi) R per pattern (flat-detector Friedel ambiguity)", NULL, 0, 0, 0},
        {"bins", 0, EW_OPT_INT, &nbins, NULL, "histogram bins over 0..180 degrees", NULL, 0, 1, 1800},
        {"out-prefix", 'o', EW_OPT_STRING, &prefix, "output", "write PREFIX_orient_hist.png and PREFIX_orient_err.txt (per-pattern errors)", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald eval orientations PRED TRUE [options]",
        "Measures the error of predicted orientations against the true ones, pattern by pattern, after the one "
        "global rotation G that best relates the two frames (a reconstruction is defined only up to a rotation), "
        "for both hands (src/eval/orient.h). PRED and TRUE are quaternion lists (w, x, y, z; particle -> lab) in a "
        "CXI file (its ground truth), a .npy array (N, 4), or a text table (one \"w x y z\" per line, '#' "
        "comments). Both must list the same patterns in the same order.",
        "n, median_deg, mean_deg, p90_deg, max_deg, hand, other_hand_median_deg, global_rotation_quat [w,x,y,z], "
        "global_rotation_deg, twins (with --inplane-twin), histogram [counts per bin], bin_deg, hist_png, errors_txt",
        2, 2};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    ew_quat_t *qp = NULL, *qt = NULL;
    size_t np = 0, nt = 0;
    if (ew_quat_file_read(pos[0], &qp, &np) != EW_OK) return ew_cli_fail();
    if (ew_quat_file_read(pos[1], &qt, &nt) != EW_OK) {
        ew_free(qp);
        return ew_cli_fail();
    }
    ew_status_t st = EW_OK;
    if (np != nt)
        st = ew_fail(EW_ERR_ARG, "%s has %zu orientations but %s has %zu", pos[0], np, pos[1], nt);
    oo.try_mirror = !no_mirror;
    oo.inplane_twin = twin;
    oo.nbins = (int)nbins;
    ew_orient_err_t e = {0};
    if (st == EW_OK) st = ew_orient_error(qt, qp, np, &oo, &e);
    char png[4200] = "", txt[4200] = "";
    if (st == EW_OK && prefix) st = write_outputs(prefix, &e, png, txt, sizeof png);
    if (st == EW_OK) {
        double axis[3], angle;
        ew_quat_to_axis_angle(e.g, axis, &angle);
        size_t ntwin = 0;
        for (size_t i = 0; e.twin && i < e.n; i++) ntwin += e.twin[i];
        printf("%zu orientations: %s vs %s\n", e.n, pos[0], pos[1]);
        printf("  error     median %.3f, mean %.3f, p90 %.3f, max %.3f degrees\n", e.median_deg, e.mean_deg,
               e.p90_deg, e.max_deg);
        printf("  hand      %d (%s)", e.hand, e.hand ? "mirror M R M" : "direct");
        if (isfinite(e.other_hand_median_deg)) printf(", other hand median %.3f degrees", e.other_hand_median_deg);
        printf("\n  global G  %.3f deg about (%.3f, %.3f, %.3f)\n", angle * 180 / EW_PI, axis[0], axis[1], axis[2]);
        if (e.twin) printf("  twins     %zu patterns closer with the in-plane twin\n", ntwin);
        if (prefix) printf("wrote %s, %s\n", png, txt);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "n", (double)e.n);
            cJSON_AddNumberToObject(js, "median_deg", e.median_deg);
            cJSON_AddNumberToObject(js, "mean_deg", e.mean_deg);
            cJSON_AddNumberToObject(js, "p90_deg", e.p90_deg);
            cJSON_AddNumberToObject(js, "max_deg", e.max_deg);
            cJSON_AddNumberToObject(js, "hand", e.hand);
            if (isfinite(e.other_hand_median_deg))
                cJSON_AddNumberToObject(js, "other_hand_median_deg", e.other_hand_median_deg);
            else
                cJSON_AddNullToObject(js, "other_hand_median_deg");
            double g[4] = {e.g.w, e.g.x, e.g.y, e.g.z};
            cJSON_AddItemToObject(js, "global_rotation_quat", cJSON_CreateDoubleArray(g, 4));
            cJSON_AddNumberToObject(js, "global_rotation_deg", angle * 180 / EW_PI);
            if (e.twin) cJSON_AddNumberToObject(js, "twins", (double)ntwin);
            cJSON *h = cJSON_AddArrayToObject(js, "histogram");
            for (int b = 0; b < e.nbins; b++) cJSON_AddItemToArray(h, cJSON_CreateNumber((double)e.hist[b]));
            cJSON_AddNumberToObject(js, "bin_deg", e.bin_deg);
            if (prefix) {
                cJSON_AddStringToObject(js, "hist_png", png);
                cJSON_AddStringToObject(js, "errors_txt", txt);
            }
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_orient_err_free(&e);
    ew_free(qp);
    ew_free(qt);
    return st == EW_OK ? 0 : ew_cli_fail();
}
