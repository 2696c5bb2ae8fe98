/* ewald demo: the end-to-end run on the structure shipped with ewald,
 * ending in an HTML report (library: src/report/demo.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <omp.h>

#include "cli/cli.h"
#include "report/demo.h"

static void add_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

int cmd_demo(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0, quick = 0;
    char **pos;
    const char *out = "demo-out", *structure = NULL;
    uint64_t seed = 1;
    long threads = 0;
    ew_opt_t opts[] = {
        {"out", 'o', EW_OPT_STRING, &out, NULL, "output folder (report.html, fig/*.png)", NULL, 0, 0, 0},
        {"quick", 0, EW_OPT_FLAG, &quick, NULL, "small sizes: finishes in under a minute", NULL, 0, 0, 0},
        {"seed", 0, EW_OPT_U64, &seed, NULL, "seed of every random draw", NULL, 0, 0, 0},
        {"threads", 0, EW_OPT_INT, &threads, NULL, "threads (0: OpenMP's default)", NULL, 0, 0, 4096},
        {"structure", 0, EW_OPT_STRING, &structure, NULL,
         "structure file (default: data/2cex.pdb shipped with ewald)", NULL, 0, 0, 0},
        {0}};
    ew_cmd_info_t info = {
        "ewald demo [--quick] [--out DIR] [--seed N] [--threads N] [--json]",
        "Runs the whole pipeline on the structure shipped with ewald (PDB 2cex): simulates an XFEL dataset, "
        "reconstructs the 3D intensity with EMC from a random start and trains the self-supervised model briefly, compares it with the truth (orientation "
        "error, intensity FSC), phases it and the true intensity and compares the densities with the structure "
        "(density FSC); then simulates cryo-EM micrographs, trains a short noise translation (GenEM preset to full physics), "
        "trains a particle picker and scores it on held-out micrographs (AUPRC), and reconstructs the 3D potential from "
        "simulated particles (half-map FSC, FSC against the truth, projection matching). Writes DIR/report.html, one self-contained page with "
        "every figure, the timing of each step and every parameter. About 10 minutes on 2 cores; --quick under a minute.",
        "report, seconds, photons_per_pattern, edge_resolution_a, emc_orient_median_deg, emc_orient_p90_deg, "
        "emc_grid_spacing_deg, emc_intensity_fsc_centred_frac_ge_0.9, emc_intensity_fsc_centred05_a, emc_density_fsc05_a, "
        "emc_density_fsc0143_a, truth_density_fsc05_a, ssl_run, ssl_orient_median_deg, em_micrographs, em_particles, cut_run, "
        "cut_psd_distance_before, cut_psd_distance_after, pick_run, pick_auprc, pick_precision, pick_recall, "
        "em_recon_run, em_recon_particles, em_recon_fsc0143_a, em_recon_truth_fsc05_a, em_pose_median_deg, "
        "em_pose_fsc0143_a, em_pose_truth_fsc05_a (null: not run)",
        0, 0};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (threads > 0) omp_set_num_threads((int)threads);

    ew_demo_config_t c;
    ew_demo_config_default(&c, quick);
    c.out_dir = out;
    c.seed = seed;
    c.threads = (int)threads;
    c.structure_path = structure;
    ew_demo_results_t res;
    if (ew_demo_run(&c, &res) != EW_OK) {
        ew_demo_results_free(&res);
        return ew_cli_fail();
    }
    printf("report: %s (%.0f s)\n", res.report_path, res.seconds_total);
    printf("  XFEL: %.0f photons per pattern; EMC orientation error median %.1f deg; intensity FSC >= 0.9 in %.0f%% "
           "of shells; density FSC 0.5 %.1f A (phasing the true intensity: %.1f A)\n",
           res.photons_per_pattern, res.emc_orient_median_deg, 100 * res.emc_ifsc_frac09, res.emc_dfsc_res05,
           res.truth_dfsc_res05);
    printf("  cryo-EM: %zu micrograph(s), %zu particles; picker AUPRC %.3f on held-out micrographs; map from %zu "
           "particles: half-map FSC 0.143 %.1f A, FSC 0.5 vs truth %.1f A\n",
           res.em_micrographs, res.em_particles, res.pick_auprc, res.recon_particles, res.recon_res0143,
           res.recon_truth_res05);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "report", res.report_path);
        add_num(o, "seconds", res.seconds_total);
        add_num(o, "photons_per_pattern", res.photons_per_pattern);
        add_num(o, "edge_resolution_a", res.edge_res);
        add_num(o, "emc_orient_median_deg", res.emc_orient_median_deg);
        add_num(o, "emc_orient_p90_deg", res.emc_orient_p90_deg);
        add_num(o, "emc_grid_spacing_deg", res.emc_grid_spacing_deg);
        add_num(o, "emc_intensity_fsc_centred_frac_ge_0.9", res.emc_ifsc_frac09);
        add_num(o, "emc_intensity_fsc_centred05_a", res.emc_ifsc_res05);
        add_num(o, "emc_density_fsc05_a", res.emc_dfsc_res05);
        add_num(o, "emc_density_fsc0143_a", res.emc_dfsc_res0143);
        add_num(o, "truth_density_fsc05_a", res.truth_dfsc_res05);
        cJSON_AddBoolToObject(o, "ssl_run", res.ssl_run);
        add_num(o, "ssl_orient_median_deg", res.ssl_orient_median_deg);
        cJSON_AddNumberToObject(o, "em_micrographs", (double)res.em_micrographs);
        cJSON_AddNumberToObject(o, "em_particles", (double)res.em_particles);
        cJSON_AddBoolToObject(o, "cut_run", res.cut_run);
        add_num(o, "cut_psd_distance_before", res.cut_psd_simulated);
        add_num(o, "cut_psd_distance_after", res.cut_psd_translated);
        cJSON_AddBoolToObject(o, "pick_run", res.pick_run);
        add_num(o, "pick_auprc", res.pick_auprc);
        add_num(o, "pick_precision", res.pick_precision);
        add_num(o, "pick_recall", res.pick_recall);
        cJSON_AddBoolToObject(o, "em_recon_run", res.emrecon_run);
        cJSON_AddNumberToObject(o, "em_recon_particles", (double)res.recon_particles);
        add_num(o, "em_recon_fsc0143_a", res.recon_res0143);
        add_num(o, "em_recon_truth_fsc05_a", res.recon_truth_res05);
        add_num(o, "em_pose_median_deg", res.recon_pose_median_deg);
        add_num(o, "em_pose_fsc0143_a", res.recon_pose_res0143);
        add_num(o, "em_pose_truth_fsc05_a", res.recon_pose_truth_res05);
        cJSON *p = cJSON_AddObjectToObject(o, "params");
        ew_cli_params_to_json(opts, p);
        ew_cli_json_print(o);
        cJSON_Delete(o);
    }
    ew_demo_results_free(&res);
    return 0;
}
