/* ewald demo, XFEL half: simulate, EMC, compare, phase (see demo.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#include "eval/align.h"
#include "eval/fsc.h"
#include "eval/orient.h"
#include "io/png.h"
#include "physics/xfel_sim.h"
#include "recon/emc.h"
#include "recon/phase.h"
#include "recon/ssl.h"
#include "report/demo.h"

#define FIG(name) (ew_demo_fig_path(c, name, path, sizeof path), path)

/* ---------- simulation writer ---------- */

typedef struct {
    float *frames;      /* (N, npix) */
    ew_quat_t *quat;    /* (N) true orientations */
    double *photons;    /* (N) recorded photons */
    size_t npix;
    ew_progress_t *prog;
} collect_t;

static ew_status_t collect(void *ctx, const ew_xfel_pattern_t *p, size_t count)
{
    collect_t *cl = ctx;
    for (size_t k = 0; k < count; k++) {
        size_t i = p[k].index;
        memcpy(cl->frames + i * cl->npix, p[k].data, cl->npix * sizeof(float));
        cl->quat[i] = p[k].quat;
        cl->photons[i] = p[k].photons_recorded;
    }
    ew_progress_add(cl->prog, count);
    return EW_OK;
}

/* ---------- helpers ---------- */

/* The smallest odd n' >= n whose prime factors are 3, 5 and 7 only (fast
 * FFTs for phasing; the grid must be odd, see ew_detector_volume_grid). */
static int fft_friendly_odd(int n)
{
    for (int m = n | 1;; m += 2) {
        int k = m;
        while (k % 3 == 0) k /= 3;
        while (k % 5 == 0) k /= 5;
        while (k % 7 == 0) k /= 7;
        if (k == 1) return m;
    }
}

/* Central slices (z = c, y = c, x = c) of an n^3 volume, cropped to
 * [c - h, c + h], into out (3 tiles of (2h+1)^2). */
static void central_slices(const float *v, int n, int h, float *out)
{
    int c = n / 2, m = 2 * h + 1;
    for (int a = 0; a < m; a++)
        for (int b = 0; b < m; b++) {
            int i = c - h + a, j = c - h + b;
            out[(size_t)a * m + b] = v[((size_t)c * n + i) * n + j];                     /* z = c: (y, x) */
            out[(size_t)m * m + (size_t)a * m + b] = v[((size_t)i * n + c) * n + j];     /* y = c: (z, x) */
            out[2 * (size_t)m * m + (size_t)a * m + b] = v[((size_t)i * n + j) * n + c]; /* x = c: (z, y) */
        }
}

/* The structure's electron density on the phasing grid: the inverse DFT of
 * F over the measured ball (what an ideal phasing of the measured ball
 * gives), electrons per voxel. */
static ew_status_t true_density(const ew_atoms_t *at, int n, double ds, const uint8_t *known, float *rho)
{
    size_t nv = (size_t)n * n * n;
    ew_rvol_t I = {0};
    float *Fr = ew_alloc_array(nv, sizeof *Fr), *Fi = ew_alloc_array(nv, sizeof *Fi);
    fftwf_complex *a = fftwf_alloc_complex(nv);
    ew_status_t st = (!Fr || !Fi || !a) ? ew_fail(EW_ERR_NOMEM, "demo: out of memory (true density)") : EW_OK;
    if (st == EW_OK) st = ew_rvol_alloc(&I, n, ds);
    if (st == EW_OK) st = ew_scatter_volume(at, &I, Fr, Fi, NULL);
    if (st == EW_OK) {
        const int c = n / 2;
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    size_t i = ((size_t)z * n + y) * n + x;
                    size_t k = ((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n +
                               (size_t)((x - c + n) % n);
                    a[k][0] = known[i] ? Fr[i] : 0.0f;
                    a[k][1] = known[i] ? Fi[i] : 0.0f;
                }
        fftwf_plan p = fftwf_plan_dft_3d(n, n, n, a, a, FFTW_BACKWARD, FFTW_ESTIMATE);
        if (!p) st = ew_fail(EW_ERR_NOMEM, "demo: FFTW plan failed (true density)");
        else {
            fftwf_execute(p);
            fftwf_destroy_plan(p);
            for (int z = 0; z < n; z++)
                for (int y = 0; y < n; y++)
                    for (int x = 0; x < n; x++)
                        rho[((size_t)z * n + y) * n + x] =
                            a[((size_t)((z - c + n) % n) * n + (size_t)((y - c + n) % n)) * n +
                              (size_t)((x - c + n) % n)][0] /
                            (float)nv;
        }
    }
    ew_rvol_free(&I);
    ew_free(Fr), ew_free(Fi);
    if (a) fftwf_free(a);
    return st;
}

/* Phase intensity I (known ball) with the demo's shrunken recipe, align
 * the best density to truth and return the FSC curve. */
static ew_status_t phase_and_compare(const ew_demo_config_t *c, const ew_rvol_t *I, const uint8_t *known,
                                     const float *truth, int start_seed, float *aligned, ew_phase_result_t *res,
                                     ew_shell_curve_t *fsc, ew_phase_align_t *ai)
{
    ew_phase_config_t pc;
    ew_phase_config_default(&pc);
    pc.loops = c->phase_loops;
    pc.starts = c->phase_starts;
    pc.seed = c->seed * 1000 + (uint64_t)start_seed;
    pc.nthreads = c->threads > 0 ? c->threads : 2;
    EW_TRY(ew_phase_run(I, known, &pc, res));
    ew_status_t st = ew_phase_align(truth, res->density, I->n, pc.nthreads, aligned, ai);
    if (st == EW_OK) st = ew_fsc_density(truth, aligned, I->n, res->voxel, 1.0, fsc);
    if (st != EW_OK) ew_phase_result_free(res);
    return st;
}

static double curve_res(const ew_shell_curve_t *fc, double thr)
{
    return ew_curve_resolution(fc, thr);
}

/* Train the self-supervised model briefly on (up to) the first
 * c->ssl_patterns patterns and score it against the truth. */
static ew_status_t ssl_section(const ew_demo_config_t *c, ew_report_t *r, const collect_t *cl,
                               const ew_detector_t *d, const ew_rvol_t *W, ew_demo_results_t *res, float *ssl_al)
{
    char path[4096];
    ew_report_section(r, "xfel-ssl", "XFEL: self-supervised orientation model");
    if (c->ssl_epochs <= 0) {
        ew_report_note(r, "skip", "The self-supervised model was switched off (0 epochs).");
        return EW_OK;
    }
    size_t n = c->n_patterns < c->ssl_patterns ? c->n_patterns : c->ssl_patterns;
    ew_ssl_config_t sc;
    ew_ssl_config_default(&sc);
    sc.seed = c->seed;
    sc.threads = c->threads;
    sc.enc_size = d->nx % 32 == 0 ? 32 : d->nx / 2;
    sc.epochs = c->ssl_epochs;
    /* the default recipe (docs/ssl.md), shrunk to the demo: EMC start over
     * the demo's EMC levels, binned so that a speckle (speckle_px detector
     * pixels, the demo's geometry) spans at least 4 super-pixels */
    int bin = (int)(c->speckle_px / 4.0);
    while (bin > 1 && d->nx % bin) bin--;
    if (bin < 1) bin = 1;
    sc.emc_size = d->nx / bin;
    sc.emc_level_lo = c->emc_level_lo;
    sc.emc_level_hi = c->emc_level_hi;
    sc.emc_iters = c->emc_iters;
    sc.batch = n >= 16 ? 16 : (int)n;
    sc.progress = 1;
    ew_ssl_data_t sd;
    memset(&sd, 0, sizeof sd);
    sd.n = n, sd.nx = d->nx, sd.ny = d->ny, sd.data = cl->frames, sd.s = d->s, sd.mask = d->mask;
    sd.corr = d->corr, sd.s_max_edge = d->s_max_edge, sd.q_true = cl->quat;
    ew_ssl_model_t *sm = NULL;
    ew_ssl_history_t hist;
    memset(&hist, 0, sizeof hist);
    ew_ssl_eval_t ev;
    memset(&ev, 0, sizeof ev);
    double t = ew_time_now();
    ew_status_t st = ew_ssl_model_create(&sc, &sd, &sm);
    if (st == EW_OK) st = ew_ssl_train(sm, &sd, &hist);
    if (st == EW_OK) st = ew_ssl_evaluate(sm, &sd, W, 1, &ev);
    if (st != EW_OK) goto done;
    double secs = ew_time_now() - t;
    ew_report_timing(r, "XFEL: self-supervised model (train + evaluate)", secs);
    res->ssl_run = 1;
    res->ssl_orient_median_deg = ev.median_deg;
    {
        /* the learned intensity on the truth's grid (trilinear), rotated onto the truth, for phasing */
        ew_rvol_t V = {0};
        int wn = W->n, wc = W->n / 2;
        size_t wnv = (size_t)wn * wn * wn;
        float *pts = ew_alloc_array(3 * wnv, sizeof(float)), *vr = ew_alloc_array(wnv, sizeof(float));
        st = pts && vr ? ew_ssl_volume(sm, &V) : ew_fail(EW_ERR_NOMEM, "demo: out of memory (learned intensity)");
        if (st == EW_OK) {
            for (int z = 0; z < wn; z++)
                for (int y = 0; y < wn; y++)
                    for (int x = 0; x < wn; x++) {
                        float *o = pts + 3 * (((size_t)z * wn + y) * wn + x);
                        o[0] = (float)((x - wc) * W->ds), o[1] = (float)((y - wc) * W->ds), o[2] = (float)((z - wc) * W->ds);
                    }
            const double I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
            ew_slice_trilinear(&V, I3, pts, wnv, vr);
            ew_align_result_t ar;
            st = ew_align_volumes(EW_ALIGN_INTENSITY, W->data, vr, wn, NULL, &ar);
            if (st == EW_OK) ew_align_apply(&ar, vr, wn, ssl_al);
            res->ssl_vol_ok = st == EW_OK;
        }
        ew_rvol_free(&V);
        ew_free(pts);
        ew_free(vr);
        if (st != EW_OK) goto done;
    }
    int gn;
    double gds;
    ew_ssl_model_grid(sm, &gn, &gds);
    ew_report_paramf(r, "self-supervised", "patterns", NULL, "%zu", n);
    ew_report_paramf(r, "self-supervised", "EMC start", NULL, "%d x %d super-pixels, 600-cell levels %d..%d, %d iterations "
                     "each, %d merge rounds", sc.emc_size, sc.emc_size, sc.emc_level_lo, sc.emc_level_hi, sc.emc_iters,
                     sc.refine_rounds);
    ew_report_paramf(r, "self-supervised", "epochs", NULL, "%.1f (%lld steps of %d patterns)", sc.epochs,
                     (long long)hist.steps, sc.batch);
    ew_report_paramf(r, "self-supervised", "encoder", NULL, "ResNet, width %d, %d stages, input %d x %d",
                     sc.enc_width, sc.enc_stages, sc.enc_size, sc.enc_size);
    ew_report_paramf(r, "self-supervised", "decoder", NULL, "3D grid %d^3 of %.4g 1/A, smoothness %.3f", gn, gds,
                     sc.smooth);
    ew_report_paramf(r, "self-supervised", "loss / optimizer", NULL, "%s, AdamW lr %.1e (grid %.1e)",
                     sc.loss == EW_SSL_LOSS_POISSON ? "Poisson" : "MSE", sc.lr, sc.lr_grid);
    ew_report_text(r,
                   "The self-supervised model (docs/ssl.md) starts from EMC on the patterns (binned so that a speckle spans "
                   "at least 4 super-pixels), refines each "
                   "pattern's orientation continuously against the full-resolution intensity merged at them, and "
                   "trains its encoders on these pseudo-labels for %.1f epochs on %zu patterns (%lld steps; %.0f s "
                   "in all). Orientation error of the model's orientations against the truth (after the best "
                   "global rotation and hand): median %.1f deg, 90th percentile %.1f deg; the orientation encoder "
                   "alone: median %.1f deg, and refined against the decoder: %.1f deg (uniformly random "
                   "orientations: about 128 deg); intensity correlation after alignment %.3f, shell-centred FSC "
                   "0.5 at %.2f of the detector edge.",
                   sc.epochs, n, (long long)hist.steps, secs, ev.median_deg, ev.p90_deg, ev.enc_median_deg,
                   ev.orient_median_deg, ev.align_score, ev.fsc_frac_edge);
    ew_demo_fig_path(c, "ssl_loss.png", path, sizeof path);
    {
        size_t nl = hist.nlog ? hist.nlog : 1;
        double *hx = ew_alloc_array(nl, sizeof *hx), *hy = ew_alloc_array(nl, sizeof *hy);
        ew_plot_t *pl = ew_plot_new(560, 380, "Self-supervised model: training loss", "step", "loss");
        if (!hx || !hy || !pl) st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (loss curve)");
        for (size_t i = 0; st == EW_OK && i < hist.nlog; i++) hx[i] = (double)hist.log[i].step, hy[i] = hist.log[i].loss;
        if (st == EW_OK) st = ew_plot_add_series(pl, hx, hy, hist.nlog, NULL);
        if (st == EW_OK) st = ew_plot_write_png(pl, path);
        ew_plot_free(pl);
        ew_free(hx), ew_free(hy);
        if (st != EW_OK) goto done;
    }
    ew_report_figure(r, path,
                     "Loss curve of the self-supervised model against the training step (Poisson negative "
                     "log-likelihood with the constants dropped, plus the encoder's regression onto the pseudo-labels; "
                     "dimensionless).");
done:
    ew_ssl_eval_free(&ev);
    ew_ssl_history_free(&hist);
    ew_ssl_model_free(sm);
    return st;
}

/* ---------- the XFEL half ---------- */

ew_status_t ew_demo_xfel(const ew_demo_config_t *c, ew_report_t *r, ew_demo_results_t *res)
{
    char path[4096], cap[1024];
    ew_status_t st = EW_OK;
    double t;
    const char *G = "XFEL";

    /* -- structure -> radius -> detector -- */
    ew_structure_options_t so = {1, 1, 1};
    ew_structure_t s0;
    ew_atoms_t a0;
    EW_TRY(ew_structure_read(c->structure_path, &so, &s0));
    st = ew_atoms_from_structure(&s0, NULL, &a0);
    size_t n_atoms = s0.n_atoms;
    ew_structure_free(&s0);
    EW_TRY(st);
    ew_atoms_center(&a0);
    double rad = ew_atoms_radius(&a0);
    ew_atoms_free(&a0);

    ew_xfel_setup_t setup;
    memset(&setup, 0, sizeof setup);
    setup.structure_path = c->structure_path;
    setup.read = so;
    setup.detector = ew_detector_config_reference();
    setup.detector.nx = setup.detector.ny = c->det_n;
    double lam = EW_HC_EV_A / setup.detector.energy_ev;
    setup.detector.pixel_m = setup.detector.distance_m * lam / (c->speckle_px * 2.0 * rad);
    setup.detector.orient_radius_px = c->det_n / 2.0;
    setup.detector.beamstop_radius_px = 1.5;
    setup.sim = ew_xfel_config_reference();
    setup.sim.fluence_factor = c->fluence_factor;
    setup.sim.n_patterns = c->n_patterns;
    setup.sim.seed = c->seed;
    setup.sim.threads = c->threads;

    {
        ew_detector_t dt;
        EW_TRY(ew_detector_init(&dt, &setup.detector));
        int n0;
        double ds0;
        ew_detector_volume_grid(&dt, 0, &n0, &ds0);
        ew_detector_free(&dt);
        setup.volume_n = fft_friendly_odd(n0);
    }

    ew_report_section(r, "xfel-data", "XFEL: simulated diffraction patterns");
    t = ew_time_now();
    ew_info("demo: building the photon volume of %s", c->structure_path);
    ew_xfel_model_t m;
    EW_TRY(ew_xfel_model_build(&setup, &m));
    ew_report_timing(r, "XFEL: structure + true 3D intensity", ew_time_now() - t);
    const ew_detector_t *d = &m.det;
    const int n = m.W.n;
    const double ds = m.W.ds;
    const size_t N = c->n_patterns, npix = d->npix, nv = (size_t)n * n * n;
    res->vol_n = n;
    res->edge_res = 1.0 / d->s_max_edge;

    ew_report_param(r, G, "structure", c->structure_path, NULL);
    ew_report_paramf(r, G, "atoms (waters, hydrogens, HETATM dropped)", NULL, "%zu", n_atoms);
    ew_report_paramf(r, G, "particle radius", "A", "%.1f", rad);
    ew_report_paramf(r, G, "photon energy", "eV", "%.0f", setup.detector.energy_ev);
    ew_report_paramf(r, G, "wavelength", "A", "%.3f", lam);
    ew_report_paramf(r, G, "detector", "pixels", "%d x %d", c->det_n, c->det_n);
    ew_report_paramf(r, G, "pixel size", "mm", "%.3f", setup.detector.pixel_m * 1e3);
    ew_report_paramf(r, G, "detector distance", "m", "%.3f", setup.detector.distance_m);
    ew_report_paramf(r, G, "speckle size", "pixels", "%.1f", c->speckle_px);
    ew_report_paramf(r, G, "beam-stop radius", "pixels", "%.1f", setup.detector.beamstop_radius_px);
    ew_report_paramf(r, G, "edge / corner resolution", "A", "%.2f / %.2f", 1 / d->s_max_edge, 1 / d->s_max_corner);
    ew_report_paramf(r, G, "pulse", "photons", "%.3g", setup.sim.photons_per_pulse);
    ew_report_paramf(r, G, "focus radius", "um", "%.2f", setup.sim.focus_radius_um);
    ew_report_paramf(r, G, "fluence factor", "x reference", "%.0f", c->fluence_factor);
    ew_report_paramf(r, G, "fluence", "photons / A^2", "%.4g", m.fluence);
    ew_report_param(r, G, "noise", setup.sim.poisson ? "Poisson" : "none", NULL);
    ew_report_paramf(r, G, "patterns", NULL, "%zu", N);
    ew_report_paramf(r, G, "intensity grid", "voxels", "%d^3, ds = %.5f 1/A", n, ds);

    /* -- simulate -- */
    collect_t cl = {0};
    cl.npix = npix;
    size_t nf = 0;
    float *model_al = NULL, *rho_true = NULL, *rho_t_al = NULL, *rho_e_al = NULL, *tiles = NULL, *ssl_al = NULL;
    float *rho_s_al = NULL;
    uint8_t *known = NULL;
    ew_emc_sparse_t sp = {0};
    ew_emc_t *e = NULL;
    ew_rotgrid_t g = {0};
    ew_quat_t *qp = NULL;
    ew_orient_err_t oe = {0};
    ew_shell_curve_t ifsc = {0}, dfsc_t = {0}, dfsc_e = {0}, dfsc_s = {0};
    ew_phase_result_t ph_t = {0}, ph_e = {0}, ph_s = {0};
    ew_rvol_t Ie = {0}, Is = {0};
    double *it_x = NULL, *it_ll = NULL, *it_mi = NULL, *it_rms = NULL, *it_conf = NULL, *sx = NULL, *sy = NULL;
    char **labels = NULL;
    int total_iters = 0;
    if (ew_size_mul(N, npix, &nf) != EW_OK) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    cl.frames = ew_alloc_array(nf, sizeof *cl.frames);
    cl.quat = ew_alloc_array(N, sizeof *cl.quat);
    cl.photons = ew_alloc_array(N, sizeof *cl.photons);
    if (!cl.frames || !cl.quat || !cl.photons) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    t = ew_time_now();
    cl.prog = ew_progress_start("XFEL simulate", N);
    ew_xfel_stats_t xs;
    st = ew_xfel_simulate(&setup.sim, d, &m.W, NULL, collect, &cl, &xs);
    ew_progress_finish(cl.prog);
    if (st != EW_OK) goto done;
    ew_report_timing(r, "XFEL: simulate patterns", ew_time_now() - t);
    res->photons_per_pattern = xs.mean_recorded;
    ew_report_text(r,
                   "%zu diffraction patterns of single 2cex molecules in random orientations, %d x %d pixels, at %.0f x "
                   "the reference fluence (%.3g photons in a %.2f um focus), with Poisson photon noise. A pattern "
                   "holds %.0f photons on average (%.0f expected before noise); the detector reaches %.1f A at its "
                   "edge and %.1f A in its corners. Pixels are sized so that a speckle is about %.0f pixels wide.",
                   N, c->det_n, c->det_n, c->fluence_factor, setup.sim.photons_per_pulse, setup.sim.focus_radius_um,
                   xs.mean_recorded, xs.mean_expected, 1 / d->s_max_edge, 1 / d->s_max_corner, c->speckle_px);
    {
        int nm = N < 16 ? (int)N : 16;
        labels = calloc((size_t)nm, sizeof *labels);
        if (!labels) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        for (int i = 0; i < nm; i++) {
            labels[i] = malloc(32);
            if (labels[i]) snprintf(labels[i], 32, "#%d %.0f ph", i, cl.photons[i]);
        }
        ew_image_options_t o = ew_image_options_default();
        o.scaling = EW_SCALE_LOG;
        o.colormap = EW_CMAP_MAGMA;
        o.fixed_range = 1;
        o.vmin = 0.5, o.vmax = 30;
        o.mask_threshold = EW_MASK_BAD;
        o.mask_rgb[0] = 40, o.mask_rgb[1] = 90, o.mask_rgb[2] = 160;
        int zoom = c->det_n >= 64 ? 3 : 4;
        st = ew_png_montage(FIG("xfel_patterns.png"), cl.frames, nm, d->nx, d->ny, d->mask, 4, zoom,
                            (const char *const *)labels, 1, &o);
        if (st != EW_OK) goto done;
        snprintf(cap, sizeof cap,
                 "The first %d simulated patterns (photons per pixel, log colour scale from 0.5 to 30 photons; black: "
                 "no photon; blue: beam stop). Label: pattern number and its photon count.", nm);
        ew_report_figure(r, path, cap);
    }

    /* -- EMC -- */
    ew_report_section(r, "xfel-emc", "XFEL: EMC reconstruction of the 3D intensity");
    t = ew_time_now();
    st = ew_emc_sparse_from_dense(&sp, cl.frames, N, npix);
    if (st != EW_OK) goto done;
    ew_emc_config_t ec;
    ew_emc_config_default(&ec);
    ec.n_vox = n;
    ec.ds = ds;
    ec.beta_start = c->emc_beta_start;
    ec.beta_factor = c->emc_beta_factor;
    ec.beta_period = c->emc_beta_period;
    ec.seed = c->seed + 4;
    uint8_t *emask = ew_alloc_array(npix, 1);
    if (!emask) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    for (size_t p = 0; p < npix; p++)
        emask[p] = d->mask[p] == EW_MASK_BAD ? EW_EMC_PIX_BAD
                                             : d->mask[p] == EW_MASK_NO_ORIENT ? EW_EMC_PIX_NOORIENT : EW_EMC_PIX_GOOD;
    ew_emc_pixels_t px = {npix, d->s, emask, d->corr};
    st = ew_rotgrid_600cell(c->emc_level_lo, &g);
    if (st == EW_OK) st = ew_emc_create(&e, &ec, &px, &sp, &g);
    ew_free(emask);
    if (st != EW_OK) goto done;
    int nlev = c->emc_level_hi - c->emc_level_lo + 1;
    int last_iters = (c->emc_iters * 3 + 1) / 2;
    total_iters = c->emc_iters * (nlev - 1) + last_iters;
    it_x = ew_alloc_array((size_t)total_iters, sizeof(double));
    it_ll = ew_alloc_array((size_t)total_iters, sizeof(double));
    it_mi = ew_alloc_array((size_t)total_iters, sizeof(double));
    it_rms = ew_alloc_array((size_t)total_iters, sizeof(double));
    it_conf = ew_alloc_array((size_t)total_iters, sizeof(double));
    if (!it_x || !it_ll || !it_mi || !it_rms || !it_conf) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    {
        ew_progress_t *pr = ew_progress_start("XFEL EMC", (uint64_t)total_iters);
        int k = 0;
        for (int lvl = c->emc_level_lo; lvl <= c->emc_level_hi && st == EW_OK; lvl++) {
            if (lvl > c->emc_level_lo) {
                ew_rotgrid_free(&g);
                st = ew_rotgrid_600cell(lvl, &g);
                if (st == EW_OK) st = ew_emc_refine(e, &g);
            }
            int its = lvl == c->emc_level_hi ? last_iters : c->emc_iters;
            for (int i = 0; i < its && st == EW_OK; i++) {
                ew_emc_stats_t es;
                st = ew_emc_iterate(e, &es);
                if (st != EW_OK) break;
                it_x[k] = es.iteration, it_ll[k] = es.avg_loglik, it_mi[k] = es.mutual_info;
                it_rms[k] = es.rms_change, it_conf[k] = es.frac_confident;
                k++;
                ew_progress_status(pr, "level %d (%zu rotations), beta %.2f, MI %.2f", lvl, g.n, es.beta,
                                   es.mutual_info);
                ew_progress_add(pr, 1);
            }
        }
        ew_progress_finish(pr);
        if (st != EW_OK) goto done;
    }
    double t_emc = ew_time_now() - t;
    ew_report_timing(r, "XFEL: EMC", t_emc);
    ew_report_paramf(r, "EMC", "rotation grid", NULL, "600-cell levels %d to %d (%zu rotations at the finest)",
                     c->emc_level_lo, c->emc_level_hi, g.n);
    ew_report_paramf(r, "EMC", "iterations", NULL, "%d per level, %d at the finest (%d in all)", c->emc_iters,
                     last_iters, total_iters);
    ew_report_paramf(r, "EMC", "annealing beta", NULL, "%.2f x %.2f every %d iterations, at most 1",
                     c->emc_beta_start, c->emc_beta_factor, c->emc_beta_period);
    ew_report_paramf(r, "EMC", "model", "voxels", "%d^3", n);
    ew_report_param(r, "EMC", "start", "random (uniform in [0, 2 mean])", NULL);
    ew_report_param(r, "EMC", "per-pattern scale factors", "estimated", NULL);
    ew_report_param(r, "EMC", "Friedel symmetry", "imposed", NULL);
    ew_report_text(r,
                   "EMC recovered the 3D intensity from the %zu patterns alone, starting from random noise: each "
                   "iteration finds every pattern's orientation probabilities on a rotation grid (expand, maximize) "
                   "and merges the patterns into a new model (compress). %d iterations on 600-cell grids of levels "
                   "%d to %d (finest: %zu rotations, %.1f deg apart) took %.0f s.",
                   N, total_iters, c->emc_level_lo, c->emc_level_hi, g.n, g.spacing * 180 / EW_PI, t_emc);
    {
        const char *paths[3];
        char p0[4096], p1[4096], p2[4096];
        ew_demo_fig_path(c, "emc_loglik.png", p0, sizeof p0);
        ew_demo_fig_path(c, "emc_mutual_info.png", p1, sizeof p1);
        ew_demo_fig_path(c, "emc_rms_change.png", p2, sizeof p2);
        ew_plot_t *pl = ew_plot_new(420, 320, "EMC log-likelihood", "iteration", "mean log L per pattern (nats)");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        if (total_iters > 3) {
            /* the random start's first likelihoods are far below the rest: scale to iterations 3 on */
            double lo = it_ll[2], hi = it_ll[2];
            for (int k = 2; k < total_iters; k++) lo = fmin(lo, it_ll[k]), hi = fmax(hi, it_ll[k]);
            if (hi > lo) ew_plot_set_yrange(pl, lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo));
        }
        st = ew_plot_add_series(pl, it_x, it_ll, (size_t)total_iters, NULL);
        if (st == EW_OK) st = ew_plot_write_png(pl, p0);
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        pl = ew_plot_new(420, 320, "EMC orientation information", "iteration", "nats per pattern");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        st = ew_plot_add_series(pl, it_x, it_mi, (size_t)total_iters, "mutual information");
        if (st == EW_OK) st = ew_plot_write_png(pl, p1);
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        pl = ew_plot_new(420, 320, "EMC model change", "iteration", "rms change (photons/sr)");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        ew_plot_set_logy(pl, 1);
        st = ew_plot_add_series(pl, it_x, it_rms, (size_t)total_iters, NULL);
        if (st == EW_OK) st = ew_plot_write_png(pl, p2);
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        paths[0] = p0, paths[1] = p1, paths[2] = p2;
        const char *caps[3] = {
            "Loss curve: mean Poisson log-likelihood of a pattern under its orientation probabilities "
            "(nats, constant terms dropped; higher is better; the vertical range starts at iteration 3, the "
            "random start's first values lie far below). Steps: annealing (beta) and grid refinement.",
            "Mutual information between patterns and orientations (nats per pattern): how sharply each "
            "pattern's orientation is determined; ln(rotations) is the most it can be.",
            "Root-mean-square change of the model per iteration (photons per steradian, log scale)."};
        ew_report_figure_row(r, 3, paths, caps);
    }

    /* -- compare: orientations -- */
    ew_report_section(r, "xfel-compare", "XFEL: EMC against the truth");
    t = ew_time_now();
    qp = ew_alloc_array(N, sizeof *qp);
    sx = ew_alloc_array(2 * N, sizeof *sx);
    sy = ew_alloc_array(2 * N, sizeof *sy);
    if (!qp || !sx || !sy) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    const int32_t *best = ew_emc_best_rot(e);
    for (size_t i = 0; i < N; i++) qp[i] = g.quat[best[i] >= 0 ? best[i] : 0];
    ew_orient_opts_t oo;
    ew_orient_opts_default(&oo);
    oo.inplane_twin = 1;
    st = ew_orient_error(cl.quat, qp, N, &oo, &oe);
    if (st != EW_OK) goto done;
    res->emc_orient_median_deg = oe.median_deg;
    res->emc_orient_p90_deg = oe.p90_deg;
    res->emc_grid_spacing_deg = g.spacing * 180 / EW_PI;
    {
        /* beam direction in the particle frame, R^T e_z, true vs recovered (recovered mapped back by G) */
        double Gm[9], M[9] = {1, 0, 0, 0, 1, 0, 0, 0, -1};
        ew_quat_to_mat(oe.g, Gm);
        for (size_t i = 0; i < N; i++) {
            double Rt[9], Rp[9], A[9], B[9];
            ew_quat_to_mat(cl.quat[i], Rt);
            ew_quat_to_mat(qp[i], Rp);
            /* R_pred ~ H(R_true) G  ->  H^-1(R_pred G^T) ~ R_true */
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    double acc = 0;
                    for (int k = 0; k < 3; k++) acc += Rp[3 * a + k] * Gm[3 * b + k];
                    A[3 * a + b] = acc;
                }
            if (oe.hand) {
                for (int k = 0; k < 9; k++) B[k] = A[k] * M[3 * (k / 3) + k / 3] * M[3 * (k % 3) + k % 3];
                memcpy(A, B, sizeof A);
            }
            /* particle-frame beam direction = third row of R */
            double vt[3] = {Rt[6], Rt[7], Rt[8]}, vp[3] = {A[6], A[7], A[8]};
            sx[i] = acos(fmax(-1, fmin(1, vt[2]))) * 180 / EW_PI;
            sy[i] = acos(fmax(-1, fmin(1, vp[2]))) * 180 / EW_PI;
            sx[N + i] = atan2(vt[1], vt[0]) * 180 / EW_PI;
            sy[N + i] = atan2(vp[1], vp[0]) * 180 / EW_PI;
        }
        char p0[4096], p1[4096], p2[4096];
        ew_demo_fig_path(c, "orient_polar.png", p0, sizeof p0);
        ew_demo_fig_path(c, "orient_azimuth.png", p1, sizeof p1);
        ew_demo_fig_path(c, "orient_error.png", p2, sizeof p2);
        st = ew_demo_scatter_png(p0, "Beam direction: polar angle", "true (deg)", "EMC (deg)", sx, sy, N, 0, 180);
        if (st == EW_OK)
            st = ew_demo_scatter_png(p1, "Beam direction: azimuth", "true (deg)", "EMC (deg)", sx + N, sy + N, N,
                                     -180, 180);
        if (st != EW_OK) goto done;
        ew_plot_t *pl = ew_plot_new(480, 400, "Orientation error", "error (deg)", "patterns");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        double hi = fmax(30, ceil(oe.p90_deg * 2 / 10) * 10);
        st = ew_plot_add_histogram(pl, oe.err_deg, N, 60, 0, hi, "EMC");
        if (st == EW_OK) st = ew_plot_vline(pl, oe.median_deg, "median");
        if (st == EW_OK) st = ew_plot_vline(pl, res->emc_grid_spacing_deg, "grid spacing");
        if (st == EW_OK) st = ew_plot_write_png(pl, p2);
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        ew_report_text(r,
                       "Each pattern's most probable rotation is compared with the rotation it was simulated in, "
                       "after removing the one global rotation (and hand) that the data cannot determine. Median "
                       "error %.1f deg, 90th percentile %.1f deg, against a grid spacing of %.1f deg (hand %s; each "
                       "pattern may also be the 180 deg in-plane twin, which a centrosymmetric pattern cannot tell "
                       "apart).",
                       oe.median_deg, oe.p90_deg, res->emc_grid_spacing_deg, oe.hand ? "mirrored" : "direct");
        const char *paths[3] = {p0, p1, p2};
        const char *caps[3] = {
            "Predicted against true orientation: the polar angle of the X-ray beam in the molecule's frame, "
            "degrees. Points on the diagonal are right.",
            "Predicted against true orientation: the azimuth of the beam in the molecule's frame, degrees "
            "(wraps at +-180).",
            "Histogram of the per-pattern orientation error, degrees; lines at the median and at the rotation "
            "grid's spacing."};
        ew_report_figure_row(r, 3, paths, caps);
    }

    /* -- compare: intensities -- */
    model_al = ew_alloc_array(nv, sizeof *model_al);
    if (!model_al) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    ew_align_result_t ar;
    st = ew_align_volumes(EW_ALIGN_INTENSITY, m.W.data, ew_emc_model(e)->data, n, NULL, &ar);
    if (st != EW_OK) goto done;
    ew_align_apply(&ar, ew_emc_model(e)->data, n, model_al);
    st = ew_fsc_intensity_centred(model_al, m.W.data, n, ds, 1.0, &ifsc);
    if (st != EW_OK) goto done;
    double s_bs = 0; /* smallest |s| the detector measures: shells inside the beam stop are left out */
    {
        s_bs = INFINITY;
        for (size_t p = 0; p < npix; p++)
            if (d->mask[p] != EW_MASK_BAD) {
                const float *q = d->s + 3 * p;
                s_bs = fmin(s_bs, sqrt((double)q[0] * q[0] + (double)q[1] * q[1] + (double)q[2] * q[2]));
            }
        if (!isfinite(s_bs)) s_bs = 0;
        for (int j = 0; j < ifsc.nshell; j++)
            if (ifsc.s[j] < s_bs) ifsc.count[j] = 0, ifsc.value[j] = NAN;
    }
    {
        int good = 0, tot = 0;
        for (int j = 1; j < ifsc.nshell && ifsc.s[j] <= d->s_max_edge; j++)
            if (ifsc.count[j] > 0) tot++, good += ifsc.value[j] >= 0.9;
        res->emc_ifsc_frac09 = tot ? (double)good / tot : NAN;
        double sc;
        int cr = ew_curve_crossing(&ifsc, 0.5, &sc);
        res->emc_ifsc_res05 = cr == 1 && sc <= d->s_max_corner ? 1 / sc : cr == -1 ? INFINITY : 1 / d->s_max_corner;
        ew_plot_t *pl = ew_plot_new(560, 400, "Shell-centred intensity FSC: EMC vs truth", "s = 1/d (1/A)",
                                   "FSC of sqrt(I), shell means removed");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        ew_plot_set_xrange(pl, 0, d->s_max_corner);
        ew_plot_set_yrange(pl, -0.1, 1.05);
        char lab[64];
        snprintf(lab, sizeof lab, "FSC 0.5: %.1f A", res->emc_ifsc_res05);
        st = ew_plot_add_series(pl, ifsc.s, ifsc.value, (size_t)ifsc.nshell, "EMC (shell-centred)");
        if (st == EW_OK) st = ew_plot_hline(pl, 0.5, NULL);
        if (st == EW_OK && cr == 1) st = ew_plot_vline(pl, 1 / res->emc_ifsc_res05, lab);
        if (st == EW_OK) st = ew_plot_vline(pl, d->s_max_edge, "detector edge");
        if (st == EW_OK) st = ew_plot_write_png(pl, FIG("fsc_intensity.png"));
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        char p0[4096];
        strcpy(p0, path);
        int h = n / 2;
        tiles = ew_alloc_array(6 * (size_t)n * n, sizeof *tiles);
        if (!tiles) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        central_slices(m.W.data, n, h, tiles);
        central_slices(model_al, n, h, tiles + 3 * (size_t)n * n);
        const char *lb[6] = {"truth z=0", "truth y=0", "truth x=0", "EMC z=0", "EMC y=0", "EMC x=0"};
        ew_image_options_t o = ew_image_options_default();
        o.scaling = EW_SCALE_LOG;
        o.colormap = EW_CMAP_VIRIDIS;
        o.clip_lo = 1, o.clip_hi = 99.8;
        st = ew_png_montage(FIG("slices_intensity.png"), tiles, 6, 2 * h + 1, 2 * h + 1, NULL, 3, 3, lb, 1, &o);
        if (st != EW_OK) goto done;
        ew_report_text(r,
                       "The EMC intensity, rotated onto the truth (best rotation found by a search over the "
                       "600-cell and refined; correlation %.3f), agrees with the true intensity with a shell-centred "
                       "FSC >= 0.9 in %.0f%% of the shells up to the detector edge. The intensity FSC here is "
                       "computed on sqrt(I) with each shell's mean removed from both volumes before correlating: "
                       "the plain FSC of sqrt(I) (without that) is inflated by the positive amplitudes, so that even "
                       "a spherically symmetric guess scores above 0.5, while the shell-centred one gives such a "
                       "guess 0 and measures only the structure within each shell.",
                       ar.score, 100 * res->emc_ifsc_frac09);
        const char *paths[2] = {p0, path};
        char cap2[512];
        snprintf(cap2, sizeof cap2,
                 "Central slices through the 3D intensity, truth (top) and EMC (bottom), planes through s = 0, "
                 "%d x %d voxels of %.5f 1/A (edge of each tile: |s| = %.3f 1/A); photons per steradian at the "
                 "nominal fluence, one log colour scale (viridis) for all tiles.",
                 n, n, ds, h * ds);
        const char *caps[2] = {
            "Shell-centred Fourier shell correlation of the EMC intensity with the true intensity (computed on "
            "sqrt(I) with each shell's mean removed; dimensionless) against s = 1/resolution, 1/A, from the beam "
            "stop's edge on (the shells inside it are not measured); the vertical lines mark the resolution "
            "where it falls below 0.5 and the detector's edge.",
            cap2};
        ew_report_figure_row(r, 2, paths, caps);
    }
    ew_report_timing(r, "XFEL: compare with the truth", ew_time_now() - t);

    /* -- self-supervised model -- */
    ssl_al = ew_alloc_array(nv, sizeof(float));
    if (!ssl_al) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    st = ssl_section(c, r, &cl, d, &m.W, res, ssl_al);
    if (st != EW_OK) goto done;

    /* -- phasing -- */
    ew_report_section(r, "xfel-phase", "XFEL: phasing into an electron density");
    if (res->ssl_run && res->ssl_vol_ok && res->ssl_orient_median_deg <= 45)
        ew_report_note(r, "info",
                       "Intensities phased: (1) the true 3D intensity, as a reference for what phasing alone reaches, "
                       "(2) the EMC intensity and (3) the self-supervised model's intensity (both rotated onto the "
                       "truth first).");
    else if (res->ssl_run)
        ew_report_note(r, "info",
                       "Intensities phased: (1) the true 3D intensity, as a reference for what phasing alone reaches, "
                       "and (2) the EMC intensity. Not phased: the self-supervised model's intensity -- its "
                       "orientations are too far from the truth here (median error %.0f deg) for its intensity to be "
                       "the molecule's.",
                       res->ssl_orient_median_deg);
    else
        ew_report_note(r, "info",
                       "Intensities phased: (1) the true 3D intensity, as a reference for what phasing alone reaches, "
                       "and (2) the EMC intensity (the self-supervised model was not run).");
    ew_report_param(r, "phasing", "intensities phased",
                    res->ssl_run && res->ssl_vol_ok && res->ssl_orient_median_deg <= 45
                        ? "true intensity; EMC and self-supervised intensities (rotated onto the truth)"
                        : "true intensity; EMC intensity (rotated onto the truth)",
                    NULL);
    t = ew_time_now();
    known = ew_alloc_array(nv, 1);
    rho_true = ew_alloc_array(nv, sizeof(float));
    rho_t_al = ew_alloc_array(nv, sizeof(float));
    rho_e_al = ew_alloc_array(nv, sizeof(float));
    if (!known || !rho_true || !rho_t_al || !rho_e_al) {
        st = EW_ERR_NOMEM;
        goto done;
    }
    {
        const int cc = n / 2;
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    double rr = sqrt((double)(z - cc) * (z - cc) + (y - cc) * (y - cc) + (x - cc) * (x - cc)) * ds;
                    known[((size_t)z * n + y) * n + x] = rr <= d->s_max_corner;
                }
    }
    st = true_density(&m.atoms, n, ds, known, rho_true);
    if (st != EW_OK) goto done;
    ew_phase_align_t ai_t, ai_e;
    st = phase_and_compare(c, &m.W, known, rho_true, 1, rho_t_al, &ph_t, &dfsc_t, &ai_t);
    if (st != EW_OK) goto done;
    st = ew_rvol_alloc(&Ie, n, ds);
    if (st != EW_OK) goto done;
    for (size_t i = 0; i < nv; i++) Ie.data[i] = model_al[i] > 0 ? model_al[i] : 0.0f;
    st = phase_and_compare(c, &Ie, known, rho_true, 2, rho_e_al, &ph_e, &dfsc_e, &ai_e);
    if (st != EW_OK) goto done;
    int phase_ssl = res->ssl_run && res->ssl_vol_ok && res->ssl_orient_median_deg <= 45;
    if (phase_ssl) {
        ew_phase_align_t ai_s;
        rho_s_al = ew_alloc_array(nv, sizeof(float));
        st = rho_s_al ? ew_rvol_alloc(&Is, n, ds) : EW_ERR_NOMEM;
        if (st != EW_OK) goto done;
        for (size_t i = 0; i < nv; i++) Is.data[i] = ssl_al[i] > 0 ? ssl_al[i] : 0.0f;
        st = phase_and_compare(c, &Is, known, rho_true, 3, rho_s_al, &ph_s, &dfsc_s, &ai_s);
        if (st != EW_OK) goto done;
        res->ssl_dfsc_res05 = curve_res(&dfsc_s, 0.5);
    }
    double t_ph = ew_time_now() - t;
    ew_report_timing(r, phase_ssl ? "XFEL: phasing (truth, EMC, self-supervised)" : "XFEL: phasing (truth and EMC)",
                     t_ph);
    res->truth_dfsc_res05 = curve_res(&dfsc_t, 0.5);
    res->emc_dfsc_res05 = curve_res(&dfsc_e, 0.5);
    res->emc_dfsc_res0143 = curve_res(&dfsc_e, 0.143);
    res->emc_phase_error = ph_e.error;
    {
        ew_phase_config_t pc;
        ew_phase_config_default(&pc);
        char rec[512] = "";
        for (int k = 0; k < pc.nsteps; k++) {
            char one[64];
            snprintf(one, sizeof one, "%s%d %s (beta %.2f)", k ? ", " : "", pc.steps[k].iters,
                     ew_phase_algo_name(pc.steps[k].algo), pc.steps[k].beta);
            strncat(rec, one, sizeof rec - strlen(rec) - 1);
        }
        ew_report_param(r, "phasing", "recipe (one loop)", rec, "iterations");
        ew_report_paramf(r, "phasing", "loops", NULL, "%d", c->phase_loops);
        ew_report_paramf(r, "phasing", "random starts", NULL, "%d", c->phase_starts);
        ew_report_paramf(r, "phasing", "shrinkwrap", NULL, "every %d loops, sigma %.1f -> %.1f voxels, threshold %.2f",
                         pc.shrinkwrap_every, pc.sw_sigma_start, pc.sw_sigma_end, pc.sw_threshold);
        ew_report_param(r, "phasing", "positivity", pc.positivity ? "yes" : "no", NULL);
        ew_report_paramf(r, "phasing", "measured region", "1/A", "|s| <= %.4f (detector corner)", d->s_max_corner);
        ew_report_paramf(r, "phasing", "voxel", "A", "%.2f", ph_e.voxel);
    }
    ew_report_text(r,
                   "Both the true intensity and the EMC intensity were phased by iterative projection (%d loops of "
                   "the default recipe, %d random starts, shrinkwrap support), and the best density was aligned to "
                   "the structure's density (shift, hand and sign). Density FSC 0.5: %.1f A from the true intensity "
                   "(what phasing alone reaches) and %.1f A from the EMC intensity (0.143: %.1f A); the voxel is "
                   "%.1f A and the detector edge %.1f A. Fourier error of the best start: %.3f (truth), %.3f (EMC). "
                   "%.0f s.",
                   c->phase_loops, c->phase_starts, res->truth_dfsc_res05, res->emc_dfsc_res05, res->emc_dfsc_res0143,
                   ph_e.voxel, 1 / d->s_max_edge, ph_t.error, ph_e.error, t_ph);
    {
        ew_plot_t *pl = ew_plot_new(560, 400, "Density FSC vs the structure", "s = 1/d (1/A)", "FSC");
        if (!pl) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        ew_plot_set_yrange(pl, -0.1, 1.05);
        ew_plot_set_xrange(pl, 0, d->s_max_corner);
        char lab[64];
        snprintf(lab, sizeof lab, "EMC FSC 0.5: %.1f A", res->emc_dfsc_res05);
        st = ew_plot_add_series(pl, dfsc_t.s, dfsc_t.value, (size_t)dfsc_t.nshell, "phased true intensity");
        if (st == EW_OK) st = ew_plot_add_series(pl, dfsc_e.s, dfsc_e.value, (size_t)dfsc_e.nshell, "phased EMC");
        if (st == EW_OK && phase_ssl)
            st = ew_plot_add_series(pl, dfsc_s.s, dfsc_s.value, (size_t)dfsc_s.nshell, "phased self-supervised");
        if (st == EW_OK) st = ew_plot_hline(pl, 0.5, "0.5");
        if (st == EW_OK) st = ew_plot_hline(pl, 0.143, "0.143");
        if (st == EW_OK && isfinite(res->emc_dfsc_res05)) st = ew_plot_vline(pl, 1 / res->emc_dfsc_res05, lab);
        if (st == EW_OK) st = ew_plot_write_png(pl, FIG("fsc_density.png"));
        ew_plot_free(pl);
        if (st != EW_OK) goto done;
        char p0[4096];
        strcpy(p0, path);
        int h = (int)ceil(1.5 * rad / ph_e.voxel);
        if (h > n / 2) h = n / 2;
        int mm = 2 * h + 1;
        ew_free(tiles);
        tiles = ew_alloc_array(9 * (size_t)mm * mm, sizeof *tiles);
        if (!tiles) {
            st = EW_ERR_NOMEM;
            goto done;
        }
        central_slices(rho_true, n, h, tiles);
        central_slices(rho_t_al, n, h, tiles + 3 * (size_t)mm * mm);
        central_slices(rho_e_al, n, h, tiles + 6 * (size_t)mm * mm);
        const char *lb[9] = {"true z", "true y", "true x", "ph.truth z", "ph.truth y", "ph.truth x",
                             "ph.EMC z",   "ph.EMC y",  "ph.EMC x"};
        ew_image_options_t o = ew_image_options_default();
        o.colormap = EW_CMAP_GRAY;
        o.clip_lo = 1, o.clip_hi = 99.9;
        int zoom = mm < 40 ? 8 : 4;
        st = ew_png_montage(FIG("slices_density.png"), tiles, 9, mm, mm, NULL, 3, zoom, lb, 0, &o);
        if (st != EW_OK) goto done;
        const char *paths[2] = {p0, path};
        snprintf(cap, sizeof cap,
                 "Central slices (planes z, y, x through the centre, %d x %d voxels of %.1f A, i.e. %.0f A across) of "
                 "the structure's electron density limited to the measured resolution (top), the density phased from "
                 "the true intensity (middle) and from the EMC intensity (bottom); electrons per voxel, linear grey "
                 "scale per tile.",
                 mm, mm, ph_e.voxel, mm * ph_e.voxel);
        const char *caps[2] = {
            "Fourier shell correlation of the phased densities with the structure's density against s = "
            "1/resolution, 1/A; horizontal lines at 0.5 and 0.143, vertical line at the EMC density's 0.5 "
            "resolution.",
            cap};
        ew_report_figure_row(r, 2, paths, caps);
    }

done:
    if (labels)
        for (int i = 0; i < 16 && (size_t)i < N; i++) free(labels[i]);
    free(labels);
    ew_free(cl.frames), ew_free(cl.quat), ew_free(cl.photons);
    ew_free(model_al), ew_free(rho_true), ew_free(rho_t_al), ew_free(rho_e_al), ew_free(tiles), ew_free(known);
    ew_free(it_x), ew_free(it_ll), ew_free(it_mi), ew_free(it_rms), ew_free(it_conf), ew_free(qp);
    ew_free(sx), ew_free(sy);
    ew_shell_curve_free(&ifsc), ew_shell_curve_free(&dfsc_t), ew_shell_curve_free(&dfsc_e);
    ew_shell_curve_free(&dfsc_s);
    ew_phase_result_free(&ph_t), ew_phase_result_free(&ph_e), ew_phase_result_free(&ph_s);
    ew_rvol_free(&Ie), ew_rvol_free(&Is);
    ew_free(ssl_al), ew_free(rho_s_al);
    ew_orient_err_free(&oe);
    ew_emc_free(e);
    ew_rotgrid_free(&g);
    ew_emc_sparse_free(&sp);
    ew_xfel_model_free(&m);
    if (st == EW_ERR_NOMEM && !strstr(ew_error_message(), "memory")) ew_fail(EW_ERR_NOMEM, "demo: out of memory");
    return st;
}
