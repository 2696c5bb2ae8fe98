/* ewald em simulate: cryo-EM micrographs, particle stacks and STAR files of
 * one or more structures (src/physics/em_sim.h, ew_em_simulate_to_files). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "io/mrc.h"
#include "io/structure.h"
#include "physics/em_sim.h"

/* A text table "f MTF" per line ('#' comments) -> (n, 2) doubles. */
static ew_status_t read_mtf(const char *path, double **tab, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open the MTF table", path);
    char line[512];
    size_t cap = 0, m = 0;
    double *t = NULL;
    long ln = 0;
    ew_status_t st = EW_OK;
    while (st == EW_OK && fgets(line, sizeof line, f)) {
        ln++;
        char *h = strchr(line, '#');
        if (h) *h = '\0';
        double a, b;
        char extra;
        int k = sscanf(line, "%lf %lf %c", &a, &b, &extra);
        if (k <= 0) continue;
        if (k != 2) {
            st = ew_fail(EW_ERR_FORMAT, "%s:%ld: expected two numbers \"f MTF\" (f in cycles/pixel)", path, ln);
            break;
        }
        if ((st = ew_grow((void **)&t, &cap, 2 * (m + 1), sizeof *t)) != EW_OK) break;
        t[2 * m] = a;
        t[2 * m + 1] = b;
        m++;
    }
    fclose(f);
    if (st == EW_OK && m < 2) st = ew_fail(EW_ERR_FORMAT, "%s: an MTF table needs at least two rows", path);
    if (st != EW_OK) {
        free(t);
        return st;
    }
    *tab = t;
    *n = m;
    return EW_OK;
}

static ew_status_t parse_weights(const char *text, size_t n, double *w)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", text);
    size_t k = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(tok, &end);
        if (end == tok || *end || !(v >= 0) || k == n)
            return ew_fail(EW_ERR_ARG, "--weights '%s': expected %zu non-negative numbers, one per structure", text, n);
        w[k++] = v;
    }
    if (k != n) return ew_fail(EW_ERR_ARG, "--weights '%s': %zu numbers for %zu structures", text, k, n);
    return EW_OK;
}

int cmd_em_simulate(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_em_config_t c;
    ew_em_config_default(&c);
    ew_em_output_t o;
    ew_em_output_default(&o);
    o.outdir = "em_sim";
    ew_structure_options_t ro = {0};
    const char *preset = "full", *weights = NULL, *mtf = NULL, *ice_weight = NULL, *wisdom = NULL;
    long nx = c.nx, ny = c.ny, oversample = c.oversample, max_tries = c.specimen.max_tries, box = o.box,
         png_max = o.png_max, iw_levels = 16;
    uint64_t count = c.n_micrographs;
    double kv = c.ctf.voltage_v / 1e3, iw_lowpass = 500, iw_span = 0.5;
    int weak = !c.phase_grating, no_mtf = !c.mtf_analytic, estimate = !c.fft_measure, no_clean = !o.write_clean,
        no_proj = !o.write_projection, no_mask = !o.write_mask, no_png = !o.png;
    ew_opt_t opts[] = {
        {"preset", 'p', EW_OPT_CHOICE, &preset, NULL, "full: ice, wave optics, dose, detector; genem: projection x CTF + white Gaussian noise at --snr", "full|genem", 0, 0, 0},
        {"width", 0, EW_OPT_INT, &nx, "micrograph", "micrograph width, pixels", NULL, 0, 8, 65536},
        {"height", 0, EW_OPT_INT, &ny, "micrograph", "micrograph height, pixels", NULL, 0, 8, 65536},
        {"pixel", 0, EW_OPT_DOUBLE, &c.pixel, "micrograph", "pixel size, Angstrom", NULL, 0, 1e-3, 100},
        {"oversample", 0, EW_OPT_INT, &oversample, "micrograph", "simulation grid this many times finer (0: ceil(pixel / 1 A), at most 4)", NULL, 0, 0, 8},
        {"count", 'n', EW_OPT_U64, &count, "micrograph", "number of micrographs", NULL, 0, 1, 1e7},
        {"seed", 0, EW_OPT_U64, &c.seed, "micrograph", "random seed (micrograph m depends only on seed and m)", NULL, 0, 0, 0},
        {"weak-phase", 0, EW_OPT_FLAG, &weak, "micrograph", "weak-phase exit wave 1 + i phi instead of the phase grating exp(i phi)", NULL, 0, 0, 0},
        {"particles", 0, EW_OPT_DOUBLE, &c.specimen.count_mean, "specimen", "particles per micrograph (mean)", NULL, 0, 0, 1e6},
        {"particles-sd", 0, EW_OPT_DOUBLE, &c.specimen.count_sd, "specimen", "> 0: particles per micrograph ~ round(N(mean, sd))", NULL, 0, 0, 1e6},
        {"min-gap", 0, EW_OPT_DOUBLE, &c.specimen.min_gap, "specimen", "extra clearance between particle surfaces, Angstrom", NULL, 0, 0, 1e5},
        {"heights", 0, EW_OPT_FLAG, &c.specimen.random_heights, "specimen", "random particle heights in the ice (per-particle defocus)", NULL, 0, 0, 0},
        {"max-tries", 0, EW_OPT_INT, &max_tries, "specimen", "placement attempts per particle", NULL, 0, 1, 1e7},
        {"weights", 0, EW_OPT_STRING, &weights, "specimen", "relative frequency of each structure, comma-separated (default equal)", NULL, 0, 0, 0},
        {"b-extra", 0, EW_OPT_DOUBLE, &c.b_extra, "specimen", "B-factor added to every atom, Angstrom^2", NULL, 0, 0, 1e4},
        {"drop-waters", 0, EW_OPT_FLAG, &ro.drop_waters, "specimen", "drop HOH/WAT/DOD residues", NULL, 0, 0, 0},
        {"drop-hydrogens", 0, EW_OPT_FLAG, &ro.drop_hydrogens, "specimen", "drop H and D atoms", NULL, 0, 0, 0},
        {"drop-hetatm", 0, EW_OPT_FLAG, &ro.drop_hetatm, "specimen", "drop all HETATM records", NULL, 0, 0, 0},
        {"voltage", 0, EW_OPT_DOUBLE, &kv, "optics", "accelerating voltage, kV", NULL, 0, 1, 5000},
        {"cs", 0, EW_OPT_DOUBLE, &c.ctf.cs_mm, "optics", "spherical aberration, mm", NULL, 0, 0, 100},
        {"amp-contrast", 0, EW_OPT_DOUBLE, &c.ctf.amp_contrast, "optics", "amplitude contrast fraction", NULL, 0, 0, 0.999},
        {"phase-shift", 0, EW_OPT_DOUBLE, &c.ctf.phase_shift_deg, "optics", "phase-plate shift, degrees", NULL, 0, -360, 360},
        {"bfactor", 0, EW_OPT_DOUBLE, &c.ctf.bfactor, "optics", "CTF envelope B-factor, Angstrom^2 (0: none)", NULL, 0, 0, 1e4},
        {"focal-spread", 0, EW_OPT_DOUBLE, &c.ctf.focal_spread, "optics", "temporal coherence: focal spread, Angstrom (0: none)", NULL, 0, 0, 1e5},
        {"illum-angle", 0, EW_OPT_DOUBLE, &c.ctf.illum_angle, "optics", "spatial coherence: illumination semi-angle, rad (0: none)", NULL, 0, 0, 0.1},
        {"defocus-min", 0, EW_OPT_DOUBLE, &c.defocus_min, "optics", "per micrograph the mean defocus is uniform in [min, max], Angstrom (underfocus > 0)", NULL, 0, -1e6, 1e6},
        {"defocus-max", 0, EW_OPT_DOUBLE, &c.defocus_max, "optics", "upper end of the defocus range, Angstrom", NULL, 0, -1e6, 1e6},
        {"astig-max", 0, EW_OPT_DOUBLE, &c.astig_max, "optics", "|dU - dV| uniform in [0, this], Angstrom", NULL, 0, 0, 1e5},
        {"defocus-u", 0, EW_OPT_DOUBLE, &c.ctf.defocus_u, "optics", "fixed defocus U, Angstrom (used when defocus-min = defocus-max = 0)", NULL, 0, -1e6, 1e6},
        {"defocus-v", 0, EW_OPT_DOUBLE, &c.ctf.defocus_v, "optics", "fixed defocus V, Angstrom (idem)", NULL, 0, -1e6, 1e6},
        {"astig-angle", 0, EW_OPT_DOUBLE, &c.ctf.astig_angle_deg, "optics", "fixed astigmatism angle of U from +x, degrees (idem)", NULL, 0, -360, 360},
        {"ice-thickness", 0, EW_OPT_DOUBLE, &c.ice.thickness, "ice", "mean ice thickness, Angstrom (0: no ice)", NULL, 0, 0, 1e5},
        {"ice-rel-sd", 0, EW_OPT_DOUBLE, &c.ice.thickness_rel_sd, "ice", "relative spread of the smooth thickness field", NULL, 0, 0, 10},
        {"ice-corr", 0, EW_OPT_DOUBLE, &c.ice.thickness_corr, "ice", "correlation length of the thickness field, Angstrom", NULL, 0, 1, 1e7},
        {"ice-density", 0, EW_OPT_DOUBLE, &c.ice.density, "ice", "water molecules per Angstrom^3", NULL, 0, 0, 1},
        {"mfp", 0, EW_OPT_DOUBLE, &c.ice.inelastic_mfp, "ice", "inelastic mean free path for zero-loss attenuation, Angstrom (0: off)", NULL, 0, 0, 1e6},
        {"ice-weight", 0, EW_OPT_STRING, &ice_weight, "ice", "real micrograph (MRC) whose Icebreaker-style weight map sets the thickness pattern", NULL, 0, 0, 0},
        {"ice-weight-lowpass", 0, EW_OPT_DOUBLE, &iw_lowpass, "ice", "Gaussian low-pass of that micrograph, Angstrom", NULL, 0, 0, 1e6},
        {"ice-weight-levels", 0, EW_OPT_INT, &iw_levels, "ice", "equal-count intensity levels", NULL, 0, 2, 1000},
        {"ice-weight-span", 0, EW_OPT_DOUBLE, &iw_span, "ice", "range of the weight (mean 1)", NULL, 0, 0, 1.9},
        {"dose", 0, EW_OPT_DOUBLE, &c.dose, "detector", "electrons per Angstrom^2", NULL, 0, 1e-6, 1e6},
        {"dqe0", 0, EW_OPT_DOUBLE, &c.dqe0, "detector", "DQE at zero frequency, (0, 1]", NULL, 0, 1e-6, 1},
        {"no-mtf", 0, EW_OPT_FLAG, &no_mtf, "detector", "no counting-detector MTF sinc(pi fx) sinc(pi fy)", NULL, 0, 0, 0},
        {"mtf-table", 0, EW_OPT_STRING, &mtf, "detector", "text table \"f MTF\" (f in cycles/pixel, increasing) replacing the analytic MTF", NULL, 0, 0, 0},
        {"drift-x", 0, EW_OPT_DOUBLE, &c.drift[0], "detector", "linear drift over the exposure along x, Angstrom", NULL, 0, -1e5, 1e5},
        {"drift-y", 0, EW_OPT_DOUBLE, &c.drift[1], "detector", "linear drift along y, Angstrom", NULL, 0, -1e5, 1e5},
        {"snr", 0, EW_OPT_DOUBLE, &c.snr, "genem", "genem: var(clean) / var(noise)", NULL, 0, 1e-9, 1e9},
        {"outdir", 'o', EW_OPT_STRING, &o.outdir, "output", "output folder (micrographs/, STAR files, particles.mrcs, previews/)", NULL, 0, 0, 0},
        {"box", 'b', EW_OPT_INT, &box, "output", "particle box, pixels (even; 0: no particle stack)", NULL, 0, 0, 8192},
        {"no-clean", 0, EW_OPT_FLAG, &no_clean, "output", "do not write the noise-free images", NULL, 0, 0, 0},
        {"no-projection", 0, EW_OPT_FLAG, &no_proj, "output", "do not write the projected phase", NULL, 0, 0, 0},
        {"no-mask", 0, EW_OPT_FLAG, &no_mask, "output", "do not write the particle masks", NULL, 0, 0, 0},
        {"thickness", 0, EW_OPT_FLAG, &o.write_thickness, "output", "write the ice thickness maps", NULL, 0, 0, 0},
        {"mask-thickness", 0, EW_OPT_DOUBLE, &c.mask_thickness, "output", "mask = projected protein thicker than this, Angstrom", NULL, 0, 0, 1e4},
        {"no-png", 0, EW_OPT_FLAG, &no_png, "output", "no PNG previews", NULL, 0, 0, 0},
        {"png-max", 0, EW_OPT_INT, &png_max, "output", "largest preview side, pixels", NULL, 0, 16, 65536},
        {"estimate", 0, EW_OPT_FLAG, &estimate, "run", "FFTW_ESTIMATE plans (no planning time, slower transforms)", NULL, 0, 0, 0},
        {"wisdom", 0, EW_OPT_STRING, &wisdom, "run", "FFTW wisdom file: read before (if present), saved after", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald em simulate [options] STRUCTURE...",
        "Simulates cryo-EM micrographs of one or more structures: particles at random poses and positions in "
        "vitreous ice, Peng projected potentials, phase-grating exit wave, CTF with envelopes, dose with "
        "Poisson counting noise and a detector MTF (preset full), or the GenEM preset (projection x CTF + white "
        "Gaussian noise at an SNR). Writes under --outdir the micrographs and their noise-free, projection, mask "
        "and thickness maps (MRC), micrographs.star and particles.star (RELION 3.1: CTF, coordinates, poses), a "
        "particle stack with --box, and PNG previews. See docs/cryoem-simulator.md.",
        "micrographs, structures, outdir, seconds, params{every option}",
        1, -1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    c.nx = (int)nx;
    c.ny = (int)ny;
    c.oversample = (int)oversample;
    c.n_micrographs = (size_t)count;
    c.mode = !strcmp(preset, "genem") ? EW_EM_GENEM : EW_EM_FULL;
    c.phase_grating = !weak;
    c.specimen.max_tries = (int)max_tries;
    c.ctf.voltage_v = kv * 1e3;
    c.mtf_analytic = !no_mtf;
    c.fft_measure = !estimate;
    o.box = (int)box;
    o.png_max = (int)png_max;
    o.write_clean = !no_clean;
    o.write_projection = !no_proj;
    o.write_mask = !no_mask;
    o.png = !no_png;
    size_t ns = (size_t)npos;
    ew_structure_t *s = ew_calloc_array(ns, sizeof *s);
    double *w = ew_calloc_array(ns, sizeof *w), *mtab = NULL;
    float *iw = NULL;
    ew_status_t st = s && w ? EW_OK : EW_ERR_NOMEM;
    size_t nread = 0;
    for (; st == EW_OK && nread < ns; nread++)
        if ((st = ew_structure_read(pos[nread], &ro, &s[nread])) != EW_OK) break;
    if (st == EW_OK && weights && (st = parse_weights(weights, ns, w)) == EW_OK) c.specimen.model_weights = w;
    if (st == EW_OK && mtf && (st = read_mtf(mtf, &mtab, &c.mtf_n)) == EW_OK) c.mtf_table = mtab;
    if (st == EW_OK && ice_weight) {
        ew_mrc_t m;
        if ((st = ew_mrc_read_sections(ice_weight, 0, 1, &m)) == EW_OK) {
            double px = m.pixel_size[0] > 0 ? m.pixel_size[0] : c.pixel;
            if (!(iw = ew_alloc_array((size_t)m.nx * m.ny, sizeof *iw))) st = EW_ERR_NOMEM;
            if (st == EW_OK)
                st = ew_ice_weight_from_micrograph(m.data, m.nx, m.ny, px, iw_lowpass, (int)iw_levels, iw_span, iw);
            c.ice_weight = iw;
            c.ice_weight_nx = m.nx;
            c.ice_weight_ny = m.ny;
            ew_mrc_free(&m);
        }
    }
    int loaded = 0;
    if (st == EW_OK && wisdom) st = ew_em_fftw_wisdom_load(wisdom, &loaded);
    double t0 = ew_time_now();
    if (st == EW_OK) st = ew_em_simulate_to_files(&c, s, ns, &o);
    double seconds = ew_time_now() - t0;
    if (st == EW_OK && wisdom) st = ew_em_fftw_wisdom_save(wisdom);
    if (st == EW_OK) {
        printf("simulated %zu micrograph%s of %d x %d pixels of %.4g A (%s) from %zu structure%s in %.1f s\n",
               c.n_micrographs, c.n_micrographs == 1 ? "" : "s", c.nx, c.ny, c.pixel, preset, ns, ns == 1 ? "" : "s",
               seconds);
        printf("wrote %s/ (micrographs/, micrographs.star, particles.star%s%s)\n", o.outdir,
               o.box > 0 ? ", particles.mrcs" : "", o.png ? ", previews/" : "");
        if (wisdom) printf("%s FFTW wisdom %s\n", loaded ? "updated" : "saved", wisdom);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "micrographs", (double)c.n_micrographs);
            cJSON_AddNumberToObject(js, "structures", (double)ns);
            cJSON_AddStringToObject(js, "outdir", o.outdir);
            cJSON_AddNumberToObject(js, "seconds", seconds);
            ew_cli_params_to_json(opts, cJSON_AddObjectToObject(js, "params"));
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    for (size_t i = 0; s && i < ns; i++) ew_structure_free(&s[i]);
    ew_free(s);
    ew_free(w);
    free(mtab);
    ew_free(iw);
    return st == EW_OK ? 0 : ew_cli_fail();
}
