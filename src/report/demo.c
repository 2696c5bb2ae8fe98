/* ewald demo: configuration, orchestration, summary (see demo.h). */
#include "report/demo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/png.h"

void ew_demo_config_default(ew_demo_config_t *c, int quick)
{
    memset(c, 0, sizeof *c);
    c->out_dir = "demo-out";
    c->quick = quick ? 1 : 0;
    c->seed = 1;
    c->run_xfel = c->run_em = 1;
    c->det_n = quick ? 40 : 64;
    c->speckle_px = 6.0;
    c->fluence_factor = 100.0;
    c->n_patterns = quick ? 1000 : 3000;
    c->emc_level_lo = 4;
    c->emc_level_hi = quick ? 5 : 6;
    c->emc_iters = quick ? 8 : 10;
    c->emc_beta_start = 0.1;
    c->emc_beta_factor = 1.5;
    c->emc_beta_period = 3;
    c->ssl_patterns = quick ? 1000 : 3000;
    c->ssl_epochs = quick ? 2 : 4;
    c->phase_loops = quick ? 4 : 10;
    c->phase_starts = quick ? 2 : 4;
    c->em_micrographs = quick ? 1 : 2;
    c->em_size = quick ? 512 : 1024;
    c->em_pixel = 3.0;
    c->em_particles = quick ? 12 : 40;
    c->cut_steps = quick ? 30 : 150;
    c->pick_train_micrographs = quick ? 2 : 4;
    c->pick_test_micrographs = quick ? 1 : 2;
    c->pick_steps = quick ? 80 : 300;
    c->pick_bin = 3;
    c->pick_width = 8;
    c->recon_particles = quick ? 400 : 1500;
    c->recon_pose_level = 4;
    c->recon_pose_particles = quick ? 100 : 400;
    c->recon_ref_res = 15.0;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

const char *ew_demo_find_structure(void)
{
    static char buf[4096];
    if (file_exists("data/2cex.pdb")) return "data/2cex.pdb";
    char exe[3000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, sizeof buf, "%s/../data/2cex.pdb", exe);
            if (file_exists(buf)) return buf;
            snprintf(buf, sizeof buf, "%s/../share/ewald/2cex.pdb", exe);
            if (file_exists(buf)) return buf;
        }
    }
    const char *env = getenv("EWALD_DATA");
    if (env) {
        snprintf(buf, sizeof buf, "%s/pdb/2cex.pdb", env);
        if (file_exists(buf)) return buf;
    }
    ew_fail(EW_ERR_IO, "data/2cex.pdb: the demo structure was not found (tried ./data/, beside the executable "
                       "and $EWALD_DATA/pdb/); run from the ewald folder or give --structure");
    return NULL;
}

void ew_demo_fig_path(const ew_demo_config_t *c, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/fig/%s", c->out_dir, name);
}

static ew_status_t make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return EW_OK;
        return ew_fail(EW_ERR_IO, "%s: exists and is not a folder", path);
    }
    return ew_fail(EW_ERR_IO, "%s: cannot create the output folder: %s", path, strerror(errno));
}

ew_status_t ew_demo_scatter_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                                const double *x, const double *y, size_t n, double lo, double hi)
{
    ew_plot_t *p = ew_plot_new(560, 480, title, xlabel, ylabel);
    if (!p) return EW_ERR_NOMEM;
    size_t m = 6 * n;
    double *px = ew_alloc_array(m ? m : 1, sizeof *px), *py = ew_alloc_array(m ? m : 1, sizeof *py);
    ew_status_t st = EW_ERR_NOMEM;
    if (px && py) {
        double d = 0.008 * (hi - lo);
        for (size_t i = 0; i < n; i++) {
            double *a = px + 6 * i, *b = py + 6 * i;
            a[0] = x[i] - d, b[0] = y[i];
            a[1] = x[i] + d, b[1] = y[i];
            a[2] = NAN, b[2] = NAN;
            a[3] = x[i], b[3] = y[i] - d;
            a[4] = x[i], b[4] = y[i] + d;
            a[5] = NAN, b[5] = NAN;
        }
        double dx[2] = {lo, hi};
        ew_plot_set_xrange(p, lo, hi);
        ew_plot_set_yrange(p, lo, hi);
        st = ew_plot_add_series(p, px, py, m, "patterns");
        if (st == EW_OK) st = ew_plot_add_series(p, dx, dx, 2, "y = x (perfect)");
        if (st == EW_OK) st = ew_plot_write_png(p, path);
    }
    ew_free(px), ew_free(py);
    ew_plot_free(p);
    return st;
}

static void fmt_res(char *buf, size_t n, double a)
{
    if (isnan(a)) snprintf(buf, n, "not run");
    else if (isinf(a)) snprintf(buf, n, "below threshold at the first shell");
    else snprintf(buf, n, "%.1f A", a);
}

static void summary(ew_report_t *r, const ew_demo_config_t *c, const ew_demo_results_t *res)
{
    ew_report_front(r, 1);
    ew_report_section(r, "summary", "Summary");
    ew_report_text(r,
                   "Headline figures of this run. Resolutions are in Angstrom (A); an FSC resolution is 1/s where "
                   "the Fourier shell correlation first falls below the threshold. Orientation errors are the angle "
                   "between the recovered and the true rotation of each pattern after the best global rotation "
                   "(and hand) is removed.");
    char v[24][112];
    const char *cells[48];
    int k = 0, row = 0;
#define ROW(name, ...)                                    \
    do {                                                  \
        snprintf(v[row], sizeof v[row], __VA_ARGS__);     \
        cells[k++] = name;                                \
        cells[k++] = v[row++];                            \
    } while (0)
    if (c->run_xfel) {
        ROW("XFEL photons per pattern (mean, recorded)", "%.0f", res->photons_per_pattern);
        ROW("detector edge resolution", "%.1f A", res->edge_res);
        ROW("EMC orientation error, median / 90th percentile", "%.1f / %.1f deg (finest grid spacing %.1f deg)",
            res->emc_orient_median_deg, res->emc_orient_p90_deg, res->emc_grid_spacing_deg);
        ROW("EMC intensity FSC (shell-centred) >= 0.9, fraction of shells to the edge", "%.0f %%",
            100 * res->emc_ifsc_frac09);
        fmt_res(v[row], sizeof v[row], res->emc_ifsc_res05);
        cells[k++] = "EMC intensity FSC (shell-centred) 0.5 resolution", cells[k++] = v[row++];
        fmt_res(v[row], sizeof v[row], res->emc_dfsc_res05);
        cells[k++] = "EMC + phasing: density FSC 0.5 vs the structure", cells[k++] = v[row++];
        fmt_res(v[row], sizeof v[row], res->truth_dfsc_res05);
        cells[k++] = "true intensity + phasing: density FSC 0.5 (phasing alone)", cells[k++] = v[row++];
        if (res->ssl_run) {
            ROW("self-supervised model: orientation error median", "%.1f deg", res->ssl_orient_median_deg);
            fmt_res(v[row], sizeof v[row], res->ssl_dfsc_res05);
            cells[k++] = "self-supervised + phasing: density FSC 0.5 vs the structure", cells[k++] = v[row++];
        }
        else
            ROW("self-supervised model", "%s", "not run");
    }
    if (c->run_em) {
        ROW("cryo-EM micrographs / particles simulated", "%zu / %zu", res->em_micrographs, res->em_particles);
        if (res->cut_run)
            ROW("noise translation: noise spectrum distance to full physics", "%.3f before, %.3f after",
                res->cut_psd_simulated, res->cut_psd_translated);
        else
            ROW("noise translation", "%s", "not run");
        if (res->pick_run)
            ROW("particle picker on held-out micrographs: AUPRC", "%.3f (precision %.2f, recall %.2f at the best F1)",
                res->pick_auprc, res->pick_precision, res->pick_recall);
        else
            ROW("particle picking", "%s", "not run");
        if (res->emrecon_run) {
            char a[48], b[48];
            fmt_res(a, sizeof a, res->recon_res0143), fmt_res(b, sizeof b, res->recon_truth_res05);
            ROW("cryo-EM map, simulator's poses: half-map FSC 0.143 / FSC 0.5 vs truth", "%s / %s (%zu particles)", a,
                b, res->recon_particles);
            if (isfinite(res->recon_pose_median_deg)) {
                fmt_res(a, sizeof a, res->recon_pose_res0143);
                ROW("projection matching: orientation error median; map half-map FSC 0.143", "%.1f deg; %s",
                    res->recon_pose_median_deg, a);
            }
        } else
            ROW("cryo-EM reconstruction", "%s", "not run");
    }
#undef ROW
    const char *hdr[2] = {"figure", "value"};
    ew_report_table(r, "Headline figures", 2, hdr, row, cells);
    ew_report_front(r, 0);
}

ew_status_t ew_demo_run(const ew_demo_config_t *c, ew_demo_results_t *res)
{
    memset(res, 0, sizeof *res);
    res->emc_orient_median_deg = res->emc_orient_p90_deg = res->emc_grid_spacing_deg = NAN;
    res->emc_ifsc_frac09 = res->emc_ifsc_res05 = NAN;
    res->emc_dfsc_res05 = res->emc_dfsc_res0143 = res->truth_dfsc_res05 = res->emc_phase_error = NAN;
    res->ssl_dfsc_res05 = NAN;
    res->photons_per_pattern = res->edge_res = NAN;
    res->cut_psd_simulated = res->cut_psd_translated = NAN;
    res->ssl_orient_median_deg = NAN;
    res->pick_auprc = res->pick_precision = res->pick_recall = NAN;
    res->recon_res0143 = res->recon_truth_res05 = res->recon_pose_median_deg = NAN;
    res->recon_pose_res0143 = res->recon_pose_truth_res05 = NAN;
    double t0 = ew_time_now();
    EW_TRY(make_dir(c->out_dir));
    char fig[4096];
    snprintf(fig, sizeof fig, "%s/fig", c->out_dir);
    EW_TRY(make_dir(fig));
    ew_demo_config_t cc = *c;
    if (!cc.structure_path && !(cc.structure_path = ew_demo_find_structure())) return EW_ERR_IO;

    ew_report_t *r = ew_report_new("ewald demo: XFEL and cryo-EM single-particle imaging of 2cex");
    if (!r) return EW_ERR_NOMEM;
    char line[512];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(line, sizeof line, "Run on %Y-%m-%d %H:%M UTC", &tmv);
    ew_report_subtitle(r, line);
    snprintf(line, sizeof line, "ewald demo%s --seed %llu, structure %s", cc.quick ? " --quick" : "",
             (unsigned long long)cc.seed, cc.structure_path);
    ew_report_subtitle(r, line);
    ew_report_param(r, "run", "structure", cc.structure_path, NULL);
    ew_report_param(r, "run", "quick", cc.quick ? "yes" : "no", NULL);
    ew_report_paramf(r, "run", "seed", NULL, "%llu", (unsigned long long)cc.seed);
    ew_report_paramf(r, "run", "threads", NULL, "%d%s", cc.threads, cc.threads ? "" : " (OpenMP default)");
    ew_report_param(r, "run", "output folder", cc.out_dir, NULL);

    ew_report_front(r, 1);
    ew_report_section(r, "about", "What this run did");
    ew_report_text(r,
                   "This report comes from one command, `ewald demo`. On the structure shipped with ewald "
                   "(PDB 2cex, a 36 kDa sialic-acid binding protein) it simulated an X-ray free-electron laser (XFEL) "
                   "single-particle dataset, recovered the 3D diffraction intensity from the noisy patterns with "
                   "expand-maximize-compress (EMC) from a random start and with the self-supervised model (EMC start, continuous orientation refinement, encoders), phased both into electron densities, and "
                   "compared every result with the known truth. It then simulated cryo-EM micrographs of the same "
                   "protein, with full physics and with the simpler GenEM preset, trained a short noise translation from the one to the other, "
                   "trained a particle picker on annotated micrographs and scored it on held-out ones, and reconstructed "
                   "the protein's 3D potential from simulated particles. Each figure's caption says what it shows and its units; the timing and parameter tables "
                   "are at the end.");
    ew_report_front(r, 0);
    ew_status_t st = EW_OK;
    if (cc.run_xfel) {
        double t = ew_time_now();
        st = ew_demo_xfel(&cc, r, res);
        res->seconds_xfel = ew_time_now() - t;
    }
    if (st == EW_OK && cc.run_em) {
        double t = ew_time_now();
        st = ew_demo_em(&cc, r, res);
        res->seconds_em = ew_time_now() - t;
    }
    if (st == EW_OK) {
        summary(r, &cc, res);
        res->seconds_total = ew_time_now() - t0;
        size_t n = strlen(cc.out_dir) + 16;
        res->report_path = malloc(n);
        if (!res->report_path) st = ew_fail(EW_ERR_NOMEM, "demo: out of memory");
        else {
            snprintf(res->report_path, n, "%s/report.html", cc.out_dir);
            st = ew_report_write(r, res->report_path);
        }
    }
    ew_report_free(r);
    if (st != EW_OK) {
        free(res->report_path);
        res->report_path = NULL;
    }
    return st;
}

void ew_demo_results_free(ew_demo_results_t *res)
{
    if (!res) return;
    free(res->report_path);
    res->report_path = NULL;
}
