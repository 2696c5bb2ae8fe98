/* ewald xfel simulate: single-particle diffraction patterns of a structure
 * with ground truth (src/physics/xfel_sim.h, ew_xfel_simulate_to_cxi). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "physics/xfel_sim.h"

/* The preset named on the command line ("neurorient" if none). */
static const char *prescan_preset(int argc, char **argv)
{
    const char *p = "neurorient";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) p = argv[i + 1];
        if (!strncmp(argv[i], "--preset=", 9)) p = argv[i] + 9;
    }
    return p;
}

static int choice_index(const char *v, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(v, names[i])) return i;
    return 0;
}

int cmd_xfel_simulate(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    const char *preset = prescan_preset(argc, argv), *preset_opt = preset;
    ew_xfel_setup_t su;
    memset(&su, 0, sizeof su);
    su.detector = !strcmp(preset, "dragonfly") ? ew_detector_config_dragonfly() : ew_detector_config_reference();
    su.sim = ew_xfel_config_reference();
    su.sim.n_patterns = 1000;
    /* Option values in the units of the command line. */
    double pixel_um = su.detector.pixel_m * 1e6, distance_mm = su.detector.distance_m * 1e3, cx = -1, cy = -1;
    long nx = su.detector.nx, ny = su.detector.ny, gap_x = 0, gap_y = 0, volume_n = 0, oversample = 0, batch = 0,
         threads = 0, deflate = 0, montage_count = 16;
    uint64_t count = su.sim.n_patterns, first = 0, seed = 1, dead_seed = 7;
    int no_poisson = 0, exact = 0, expected = 0;
    const char *structure = NULL, *pol = "linear", *bar = "none", *fdist = "constant", *fhist = NULL,
               *dtype = "float32";
    const char *cxi = "simulated.cxi", *emc = NULL, *emc_det = NULL, *volume = NULL, *montage = NULL, *histogram = NULL;
    double scatter_tol = 0;
    ew_opt_t opts[] = {
        {"preset", 'p', EW_OPT_CHOICE, &preset_opt, NULL, "starting values: neurorient (128 x 128 px of 781.25 um at 200 mm, 4600 eV, 1e12 photons in a 0.5 um focus) or dragonfly (150 x 150 px of 512 um at 300 mm, 6.2 A); command line only", "neurorient|dragonfly", 0, 0, 0},
        {"structure", 's', EW_OPT_STRING, &structure, "structure", "PDB or mmCIF file (or the positional argument)", NULL, 0, 0, 0},
        {"drop-waters", 0, EW_OPT_FLAG, &su.read.drop_waters, "structure", "drop HOH/WAT/DOD residues", NULL, 0, 0, 0},
        {"drop-hydrogens", 0, EW_OPT_FLAG, &su.read.drop_hydrogens, "structure", "drop H and D atoms", NULL, 0, 0, 0},
        {"drop-hetatm", 0, EW_OPT_FLAG, &su.read.drop_hetatm, "structure", "drop all HETATM records", NULL, 0, 0, 0},
        {"ions", 0, EW_OPT_FLAG, &su.atoms.use_ions, "structure", "ionic form factors where the table has them", NULL, 0, 0, 0},
        {"bfactor", 0, EW_OPT_FLAG, &su.atoms.use_bfactor, "structure", "apply Debye-Waller factors exp(-B s^2 / 4)", NULL, 0, 0, 0},
        {"ignore-occupancy", 0, EW_OPT_FLAG, &su.atoms.ignore_occupancy, "structure", "weight every atom 1", NULL, 0, 0, 0},
        {"energy", 'e', EW_OPT_DOUBLE, &su.detector.energy_ev, "beam", "photon energy, eV", NULL, 0, 10, 1e6},
        {"photons", 0, EW_OPT_DOUBLE, &su.sim.photons_per_pulse, "beam", "photons per pulse", NULL, 0, 1, 1e20},
        {"focus-radius", 0, EW_OPT_DOUBLE, &su.sim.focus_radius_um, "beam", "top-hat focus radius, micrometres", NULL, 0, 1e-6, 1e6},
        {"fluence-factor", 'f', EW_OPT_DOUBLE, &su.sim.fluence_factor, "beam", "multiplies the fluence (the paper's x10, x100)", NULL, 0, 1e-9, 1e9},
        {"fluence-dist", 0, EW_OPT_CHOICE, &fdist, "beam", "shot-to-shot fluence multiplier (mean 1)", "constant|gamma|lognormal|histogram", 0, 0, 0},
        {"fluence-spread", 0, EW_OPT_DOUBLE, &su.sim.fluence_spread, "beam", "relative spread of the multiplier (gamma, lognormal)", NULL, 0, 0, 10},
        {"fluence-histogram", 0, EW_OPT_STRING, &fhist, "beam", "measured photons-per-pattern histogram .npy (2, nbins) for --fluence-dist histogram", NULL, 0, 0, 0},
        {"beam-jitter", 0, EW_OPT_DOUBLE, &su.sim.beam_jitter_px, "beam", "std of the beam-centre offset per pattern, pixels", NULL, 0, 0, 100},
        {"width", 0, EW_OPT_INT, &nx, "detector", "pixels per row", NULL, 0, 1, 1e5},
        {"height", 0, EW_OPT_INT, &ny, "detector", "rows", NULL, 0, 1, 1e5},
        {"pixel-um", 0, EW_OPT_DOUBLE, &pixel_um, "detector", "square pixel side, micrometres", NULL, 0, 1e-3, 1e6},
        {"distance-mm", 0, EW_OPT_DOUBLE, &distance_mm, "detector", "particle to detector distance, mm", NULL, 0, 1e-3, 1e7},
        {"cx", 0, EW_OPT_DOUBLE, &cx, "detector", "beam centre column, pixels (-1: the middle)", NULL, 0, -1, 1e5},
        {"cy", 0, EW_OPT_DOUBLE, &cy, "detector", "beam centre row, pixels (-1: the middle)", NULL, 0, -1, 1e5},
        {"polarization", 0, EW_OPT_CHOICE, &pol, "detector", "beam polarization", "linear|none", 0, 0, 0},
        {"pol-angle", 0, EW_OPT_DOUBLE, &su.detector.pol_angle_deg, "detector", "linear polarization direction, degrees from +x toward +y", NULL, 0, -360, 360},
        {"beamstop", 0, EW_OPT_DOUBLE, &su.detector.beamstop_radius_px, "detector", "beam-stop disc radius, pixels (bad pixels)", NULL, 0, 0, 1e5},
        {"bar", 0, EW_OPT_CHOICE, &bar, "detector", "beam-stop holder bar from the disc to one edge", "none|+x|-x|+y|-y", 0, 0, 0},
        {"bar-width", 0, EW_OPT_DOUBLE, &su.detector.bar_width_px, "detector", "holder bar full width, pixels", NULL, 0, 0, 1e5},
        {"gap-x", 0, EW_OPT_INT, &gap_x, "detector", "vertical central gap width, pixels", NULL, 0, 0, 1e5},
        {"gap-y", 0, EW_OPT_INT, &gap_y, "detector", "horizontal central gap height, pixels", NULL, 0, 0, 1e5},
        {"dead-fraction", 0, EW_OPT_DOUBLE, &su.detector.dead_fraction, "detector", "fraction of pixels dead at random", NULL, 0, 0, 0.999},
        {"dead-seed", 0, EW_OPT_U64, &dead_seed, "detector", "seed of the dead pixels", NULL, 0, 0, 0},
        {"orient-radius", 0, EW_OPT_DOUBLE, &su.detector.orient_radius_px, "detector", "pixels beyond this radius are not used for orientation, pixels (0: none)", NULL, 0, 0, 1e5},
        {"no-poisson", 0, EW_OPT_FLAG, &no_poisson, "noise", "write expected photons instead of Poisson draws", NULL, 0, 0, 0},
        {"readout-sigma", 0, EW_OPT_DOUBLE, &su.sim.readout_sigma, "noise", "Gaussian readout noise std, photons", NULL, 0, 0, 1e6},
        {"background", 0, EW_OPT_DOUBLE, &su.sim.background, "noise", "expected background photons per pixel", NULL, 0, 0, 1e6},
        {"count", 'n', EW_OPT_U64, &count, "run", "number of patterns", NULL, 0, 1, 1e9},
        {"first-index", 0, EW_OPT_U64, &first, "run", "index of the first pattern (to split a dataset into runs)", NULL, 0, 0, 0},
        {"seed", 0, EW_OPT_U64, &seed, "run", "random seed (orientations, fluence, noise)", NULL, 0, 0, 0},
        {"exact", 0, EW_OPT_FLAG, &exact, "run", "direct summation over atoms per pattern (slow; for checks)", NULL, 0, 0, 0},
        {"batch", 0, EW_OPT_INT, &batch, "run", "patterns per parallel batch (0: 256)", NULL, 0, 0, 1e6},
        {"threads", 0, EW_OPT_INT, &threads, "run", "threads (0: OpenMP's default)", NULL, 0, 0, 4096},
        {"volume-n", 0, EW_OPT_INT, &volume_n, "run", "photon-volume voxels per axis (0: one pixel step per voxel)", NULL, 0, 0, 2048},
        {"oversample", 0, EW_OPT_INT, &oversample, "run", "structure-factor FFT oversampling 2..4 (0: 2)", NULL, 0, 0, 4},
        {"scatter-tol", 0, EW_OPT_DOUBLE, &scatter_tol, "run", "structure-factor truncation level relative to the peak (0: 1e-8)", NULL, 0, 0, 1},
        {"out", 'o', EW_OPT_STRING, &cxi, "output", "CXI file: patterns, geometry, mask, ground truth", NULL, 0, 0, 0},
        {"deflate", 0, EW_OPT_INT, &deflate, "output", "CXI gzip level 0..9 (float32 with readout noise: 1.07x at level 1, costly)", NULL, 0, 0, 9},
        {"dtype", 0, EW_OPT_CHOICE, &dtype, "output", "CXI pattern type: float32 (as simulated) or int32 / uint16 photon counts (nearest integer >= 0; uint16 saturates)", "float32|int32|uint16", 0, 0, 0},
        {"expected", 0, EW_OPT_FLAG, &expected, "output", "also store the noise-free patterns in the CXI file", NULL, 0, 0, 0},
        {"emc", 0, EW_OPT_STRING, &emc, "output", "also write a Dragonfly photon file (.emc; counts rounded)", NULL, 0, 0, 0},
        {"emc-detector", 0, EW_OPT_STRING, &emc_det, "output", "Dragonfly detector file (default: the .emc path with .dat)", NULL, 0, 0, 0},
        {"volume", 0, EW_OPT_STRING, &volume, "output", "true photon volume W (HDF5, photons/sr)", NULL, 0, 0, 0},
        {"montage", 0, EW_OPT_STRING, &montage, "output", "PNG: log-scale montage of the first patterns", NULL, 0, 0, 0},
        {"montage-count", 0, EW_OPT_INT, &montage_count, "output", "patterns in the montage", NULL, 0, 1, 1024},
        {"histogram", 0, EW_OPT_STRING, &histogram, "output", "PNG: histogram of photons per pattern", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald xfel simulate [options] [STRUCTURE]",
        "Simulates single-particle X-ray diffraction patterns of a structure: the photon volume W(s) = fluence "
        "r_e^2 |F(s)|^2 from Waasmaier-Kirfel form factors, sliced along the Ewald sphere at random orientations, "
        "times the pixels' solid angle and polarization, with shot-to-shot fluence, beam jitter, Poisson, readout "
        "and background noise, and a masked detector (beam stop, bar, gaps, dead pixels). Writes a CXI file with "
        "the ground truth (orientations, fluence, photons), and optionally a Dragonfly .emc + detector file, the "
        "true volume (HDF5) and PNG previews. Presets: neurorient (the self-supervised XFEL paper's setup) and "
        "dragonfly (Dragonfly's default geometry). See docs/xfel-simulator.md.",
        "patterns, electrons, fluence_photons_per_a2, fluence_photons_per_um2, volume_n, volume_ds, s_edge_inv_a, "
        "s_corner_inv_a, mask{good, no_orientation, bad}, predicted_photons, predicted_photons_recorded, "
        "mean_photons_expected, mean_photons_total, mean_photons_recorded, build_seconds, seconds, "
        "patterns_per_second, outputs{cxi, emc, emc_detector, volume, montage, histogram}, params{every option}",
        0, 1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (strcmp(preset, preset_opt)) {
        ew_fail(EW_ERR_ARG, "--preset %s: give the preset on the command line (it sets the other defaults)", preset_opt);
        return ew_cli_fail();
    }
    if (npos == 1) structure = pos[0];
    if (!structure) {
        ew_fail(EW_ERR_ARG, "no structure: give a PDB/mmCIF file (ewald xfel simulate FILE or --structure FILE)");
        return ew_cli_fail();
    }
    su.structure_path = structure;
    su.detector.nx = (int)nx;
    su.detector.ny = (int)ny;
    su.detector.pixel_m = pixel_um * 1e-6;
    su.detector.distance_m = distance_mm * 1e-3;
    su.detector.cx = cx < 0 ? NAN : cx;
    su.detector.cy = cy < 0 ? NAN : cy;
    static const char *const pols[] = {"linear", "none", NULL}, *const bars[] = {"none", "+x", "-x", "+y", "-y", NULL},
                             *const fd[] = {"constant", "gamma", "lognormal", "histogram", NULL};
    su.detector.polarization = (ew_polarization_t)choice_index(pol, pols);
    su.detector.beamstop_bar = (ew_bar_dir_t)choice_index(bar, bars);
    su.detector.gap_x_px = (int)gap_x;
    su.detector.gap_y_px = (int)gap_y;
    su.detector.dead_seed = dead_seed;
    su.volume_n = (int)volume_n;
    su.volume.oversample = (int)oversample;
    su.volume.tol = scatter_tol;
    su.volume.threads = (int)threads;
    su.sim.fluence_dist = (ew_fluence_dist_t)choice_index(fdist, fd);
    su.sim.poisson = !no_poisson;
    su.sim.n_patterns = (size_t)count;
    su.sim.first_index = (size_t)first;
    su.sim.seed = seed;
    su.sim.exact = exact;
    su.sim.keep_expected = expected;
    su.sim.batch = (size_t)batch;
    su.sim.threads = (int)threads;
    double *hv = NULL, *hw = NULL;
    size_t hn = 0;
    if (su.sim.fluence_dist == EW_FLUENCE_HISTOGRAM) {
        if (!fhist) {
            ew_fail(EW_ERR_ARG, "--fluence-dist histogram needs --fluence-histogram FILE.npy");
            return ew_cli_fail();
        }
        if (ew_xfel_load_photon_histogram(fhist, &hv, &hw, &hn) != EW_OK) return ew_cli_fail();
        su.sim.hist_values = hv;
        su.sim.hist_weights = hw;
        su.sim.hist_n = hn;
    }
    char detpath[4096];
    if (emc && !emc_det) {
        ew_cli_replace_ext(emc, ".dat", detpath, sizeof detpath);
        emc_det = detpath;
    }
    const char *name = strrchr(structure, '/') ? strrchr(structure, '/') + 1 : structure;
    static const char *const dtypes[] = {"float32", "int32", "uint16", NULL};
    ew_xfel_output_t out = {cxi, (int)deflate, expected, emc, emc ? emc_det : NULL, volume, montage,
                            (int)montage_count, histogram, name, choice_index(dtype, dtypes)};
    ew_xfel_model_t m;
    ew_xfel_stats_t stats = {0};
    double pred_all = 0, pred_rec = 0;
    ew_status_t st = ew_xfel_model_build(&su, &m);
    if (st == EW_OK) {
        size_t mc[3];
        ew_detector_mask_counts(&m.det, mc);
        st = ew_xfel_predict_photons(&m.det, &m.W, &pred_all, &pred_rec);
        printf("%s: %zu atoms, %.0f electrons; fluence %.4g photons/A^2 (%.4g photons/um^2)\n", structure,
               m.atoms.n, m.atoms.electrons, m.fluence, m.fluence * 1e8);
        printf("  detector  %d x %d px of %.4g um at %.4g mm, %.1f eV (%.4f A); s edge %.4f 1/A (%.2f A), corner "
               "%.4f 1/A (%.2f A)\n",
               m.det.nx, m.det.ny, pixel_um, distance_mm, su.detector.energy_ev, m.det.wavelength_a,
               m.det.s_max_edge, 1 / m.det.s_max_edge, m.det.s_max_corner, 1 / m.det.s_max_corner);
        printf("  mask      %zu good, %zu not for orientation, %zu bad\n", mc[0], mc[1], mc[2]);
        printf("  volume    %d^3 voxels of %.5g 1/A, built in %.1f s\n", m.W.n, m.W.ds, m.build_seconds);
        if (st == EW_OK)
            printf("  predicted %.1f photons per pattern (%.1f recorded)\n", pred_all, pred_rec);
        if (st == EW_OK) st = ew_xfel_simulate_to_cxi(&m, &su.sim, &out, &stats);
        if (st == EW_OK) {
            printf("simulated %zu patterns in %.1f s (%.0f per second): photons per pattern %.1f expected, %.1f "
                   "total, %.1f recorded\n",
                   stats.n, stats.seconds, stats.seconds > 0 ? stats.n / stats.seconds : 0, stats.mean_expected,
                   stats.mean_total, stats.mean_recorded);
            const char *files[6] = {cxi, emc, emc ? emc_det : NULL, volume, montage, histogram};
            for (int i = 0; i < 6; i++)
                if (files[i]) printf("wrote %s\n", files[i]);
        }
        if (st == EW_OK && json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "patterns", (double)stats.n);
            cJSON_AddNumberToObject(js, "electrons", m.atoms.electrons);
            cJSON_AddNumberToObject(js, "fluence_photons_per_a2", m.fluence);
            cJSON_AddNumberToObject(js, "fluence_photons_per_um2", m.fluence * 1e8);
            cJSON_AddNumberToObject(js, "volume_n", m.W.n);
            cJSON_AddNumberToObject(js, "volume_ds", m.W.ds);
            cJSON_AddNumberToObject(js, "s_edge_inv_a", m.det.s_max_edge);
            cJSON_AddNumberToObject(js, "s_corner_inv_a", m.det.s_max_corner);
            cJSON *mk = cJSON_AddObjectToObject(js, "mask");
            cJSON_AddNumberToObject(mk, "good", (double)mc[0]);
            cJSON_AddNumberToObject(mk, "no_orientation", (double)mc[1]);
            cJSON_AddNumberToObject(mk, "bad", (double)mc[2]);
            cJSON_AddNumberToObject(js, "predicted_photons", pred_all);
            cJSON_AddNumberToObject(js, "predicted_photons_recorded", pred_rec);
            cJSON_AddNumberToObject(js, "mean_photons_expected", stats.mean_expected);
            cJSON_AddNumberToObject(js, "mean_photons_total", stats.mean_total);
            cJSON_AddNumberToObject(js, "mean_photons_recorded", stats.mean_recorded);
            cJSON_AddNumberToObject(js, "build_seconds", m.build_seconds);
            cJSON_AddNumberToObject(js, "seconds", stats.seconds);
            cJSON_AddNumberToObject(js, "patterns_per_second", stats.seconds > 0 ? stats.n / stats.seconds : 0);
            cJSON *o = cJSON_AddObjectToObject(js, "outputs");
            const char *keys[6] = {"cxi", "emc", "emc_detector", "volume", "montage", "histogram"};
            const char *files[6] = {cxi, emc, emc ? emc_det : NULL, volume, montage, histogram};
            for (int i = 0; i < 6; i++)
                if (files[i]) cJSON_AddStringToObject(o, keys[i], files[i]);
            ew_cli_params_to_json(opts, cJSON_AddObjectToObject(js, "params"));
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
        ew_xfel_model_free(&m);
    }
    ew_free(hv);
    ew_free(hw);
    return st == EW_OK ? 0 : ew_cli_fail();
}
