/* ewald xfel infer: orientations and scales of new patterns from a model
 * trained by `ewald xfel train` (src/recon/ssl.h, ew_ssl_orient: the encoder, refined against the decoder). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "eval/orient.h"
#include "recon/ssl.h"

/* Pearson correlation of a and b (n); NAN below 2 values or without spread. */
static double pearson(const double *a, const double *b, size_t n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    if (n < 2) return NAN;
    ma /= (double)n, mb /= (double)n;
    for (size_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

int cmd_xfel_infer(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0, twin = 0, search = 0;
    char **pos;
    long threads = 0;
    const char *out = "ssl_inferred_orientations.txt";
    ew_opt_t opts[] = {
        {"out", 'o', EW_OPT_STRING, &out, "output", "text table, one \"w x y z # scale\" line per pattern", NULL, 0, 0, 0},
        {"search", 0, EW_OPT_FLAG, &search, "infer", "orientations by exhaustive search of the model's rotation grid (its search level) against its decoder instead of the encoder, then refined locally (grid decoders)", NULL, 0, 0, 0},
        {"twin", 0, EW_OPT_FLAG, &twin, "eval", "with ground truth: accept the in-plane twin Rz(pi) R per pattern in the reported error", NULL, 0, 0, 0},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald xfel infer MODEL.safetensors PATTERNS.cxi [options]",
        "Predicts the orientation (quaternion, particle -> lab) and the photon scale of every pattern of a CXI file "
        "with a model trained by `ewald xfel train` (same detector size). The patterns need not be the training "
        "set. With ground truth in the CXI file the orientation error (global rotation and hand fitted, "
        "eval/orient.h) and the correlation of the scales with the true fluence are reported.",
        "patterns, seconds, patterns_per_s, mean_scale, orientation_median_deg, orientation_p90_deg, "
        "orientation_hand, scale_corr (with ground truth), outputs{orientations}",
        2, 2};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    cli_ssl_input_t in;
    ew_ssl_model_t *m = NULL;
    ew_quat_t *q = NULL;
    double *scale = NULL, seconds = 0, mean_scale = 0, corr = NAN;
    ew_orient_err_t oe = {0};
    ew_status_t st = cli_ssl_input_read(pos[1], 0, &in);
    if (st == EW_OK) st = ew_ssl_model_load(pos[0], &in.d, &m);
    if (threads > 0) omp_set_num_threads((int)threads);
    size_t n = in.d.n;
    if (st == EW_OK) {
        q = ew_alloc_array(n, sizeof *q);
        scale = ew_alloc_array(n, sizeof *scale);
        double t0 = ew_time_now();
        if (!q || !scale)
            st = EW_ERR_NOMEM;
        else if (search) { /* exhaustive search against the decoder, then the local refinement */
            st = ew_ssl_search(m, &in.d, q);
            if (st == EW_OK) st = ew_ssl_refine(m, &in.d, q, scale, 0, ew_ssl_model_config(m)->refine_deg);
        } else {
            st = ew_ssl_orient(m, &in.d, q, scale);
        }
        seconds = ew_time_now() - t0;
    }
    for (size_t i = 0; st == EW_OK && i < n; i++) mean_scale += scale[i] / (double)n;
    if (st == EW_OK && in.q) {
        ew_orient_opts_t oo;
        ew_orient_opts_default(&oo);
        oo.inplane_twin = twin;
        st = ew_orient_error(in.q, q, n, &oo, &oe);
        if (in.fluence) corr = pearson(scale, in.fluence, n);
    }
    if (st == EW_OK) st = cli_ssl_write_orientations(out, q, scale, n);
    if (st == EW_OK) {
        printf("%s: %zu patterns of %d x %d pixels, model %s (%zu parameters)\n", pos[1], n, in.d.nx, in.d.ny, pos[0],
               ew_ssl_model_nparams(m));
        printf("  inferred%s in %.2f s (%.0f patterns/s); mean scale %.4g\n", search ? " by search" : "", seconds,
               seconds > 0 ? n / seconds : 0, mean_scale);
        if (in.q)
            printf("  orientation error vs ground truth: median %.2f, p90 %.2f degrees (hand %d%s); scale corr %.3f\n",
                   oe.median_deg, oe.p90_deg, oe.hand, twin ? ", in-plane twin allowed" : "", corr);
        printf("wrote %s\n", out);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "patterns", (double)n);
            cJSON_AddNumberToObject(js, "seconds", seconds);
            cJSON_AddNumberToObject(js, "patterns_per_s", seconds > 0 ? n / seconds : 0);
            cJSON_AddNumberToObject(js, "mean_scale", mean_scale);
            if (in.q) {
                cJSON_AddNumberToObject(js, "orientation_median_deg", oe.median_deg);
                cJSON_AddNumberToObject(js, "orientation_p90_deg", oe.p90_deg);
                cJSON_AddNumberToObject(js, "orientation_hand", oe.hand);
                if (isfinite(corr)) cJSON_AddNumberToObject(js, "scale_corr", corr);
            }
            cJSON_AddStringToObject(cJSON_AddObjectToObject(js, "outputs"), "orientations", out);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_orient_err_free(&oe);
    ew_free(q);
    ew_free(scale);
    ew_ssl_model_free(m);
    cli_ssl_input_free(&in);
    return st == EW_OK ? 0 : ew_cli_fail();
}
