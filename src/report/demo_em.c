/* ewald demo, cryo-EM half: simulate micrographs, show them with the true
 * particle positions (see demo.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"
#include "io/structure.h"
#include "physics/em_sim.h"
#include "report/demo.h"

/* Bin an image by an integer factor f (mean of f x f blocks). */
static void bin_image(const float *in, int nx, int ny, int f, float *out)
{
    int ox = nx / f, oy = ny / f;
    for (int y = 0; y < oy; y++)
        for (int x = 0; x < ox; x++) {
            double acc = 0;
            for (int a = 0; a < f; a++)
                for (int b = 0; b < f; b++) acc += in[(size_t)(y * f + a) * nx + (x * f + b)];
            out[(size_t)y * ox + x] = (float)(acc / (f * f));
        }
}

/* Low-pass by a Gaussian-ish 3x3 box twice, for display only. */
static void smooth_display(float *img, int w, int h, float *tmp)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0;
                int cnt = 0;
                for (int a = -1; a <= 1; a++)
                    for (int b = -1; b <= 1; b++) {
                        int yy = y + a, xx = x + b;
                        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                        acc += img[(size_t)yy * w + xx], cnt++;
                    }
                tmp[(size_t)y * w + x] = (float)(acc / cnt);
            }
        memcpy(img, tmp, (size_t)w * h * sizeof *img);
    }
}

static void draw_circle(uint8_t *rgb, int w, int h, double cx, double cy, double rad, const uint8_t col[3])
{
    int steps = (int)(2 * EW_PI * rad * 2) + 16;
    for (int t = 0; t < steps; t++) {
        double a = 2 * EW_PI * t / steps;
        for (int k = 0; k < 2; k++) {
            int x = (int)lround(cx + (rad + k) * cos(a)), y = (int)lround(cy + (rad + k) * sin(a));
            if (x < 0 || y < 0 || x >= w || y >= h) continue;
            memcpy(rgb + 3 * ((size_t)y * w + x), col, 3);
        }
    }
}

/* Write a display PNG of a micrograph: binned by f, smoothed, grey
 * (percentile clip), with circles at the particles when given. */
static ew_status_t micrograph_png(const char *path, const ew_em_micrograph_t *mg, int f, int circles, double rad_a,
                                  int smooth)
{
    int w = mg->nx / f, h = mg->ny / f;
    float *b = ew_alloc_array((size_t)w * h, sizeof *b), *tmp = ew_alloc_array((size_t)w * h, sizeof *tmp);
    uint8_t *rgb = ew_alloc_array((size_t)w * h * 3, 1);
    ew_status_t st = EW_OK;
    if (!b || !tmp || !rgb) st = ew_fail(EW_ERR_NOMEM, "demo: out of memory (micrograph figure)");
    if (st == EW_OK) {
        bin_image(mg->micrograph, mg->nx, mg->ny, f, b);
        if (smooth) smooth_display(b, w, h, tmp);
        ew_image_options_t o = ew_image_options_default();
        o.colormap = EW_CMAP_GRAY;
        o.clip_lo = 0.5, o.clip_hi = 99.5;
        st = ew_image_to_rgb(b, w, h, NULL, &o, rgb);
    }
    if (st == EW_OK && circles) {
        const uint8_t col[3] = {255, 200, 0};
        for (size_t i = 0; i < mg->n_particles; i++) {
            /* particle x, y: A from the centre of pixel (0, 0) */
            double px = mg->particles[i].x / mg->pixel / f, py = mg->particles[i].y / mg->pixel / f;
            draw_circle(rgb, w, h, px, py, rad_a / mg->pixel / f, col);
        }
    }
    if (st == EW_OK) st = ew_png_write_rgb8(path, w, h, rgb);
    ew_free(b), ew_free(tmp), ew_free(rgb);
    return st;
}

ew_status_t ew_demo_em(const ew_demo_config_t *c, ew_report_t *r, ew_demo_results_t *res)
{
    char cap[1024];
    const char *G = "cryo-EM";
    ew_structure_options_t so = {1, 1, 1};
    ew_structure_t s;
    EW_TRY(ew_structure_read(c->structure_path, &so, &s));

    ew_em_config_t ec;
    ew_em_config_default(&ec);
    ec.nx = ec.ny = c->em_size;
    ec.pixel = c->em_pixel;
    ec.oversample = c->quick ? 1 : 2;
    ec.n_micrographs = (size_t)c->em_micrographs;
    ec.seed = c->seed;
    ec.specimen.count_mean = c->em_particles;
    ec.fft_measure = 0;
    ew_em_sim_t *sim = NULL, *gsim = NULL;
    ew_em_micrograph_t *mg = calloc((size_t)c->em_micrographs, sizeof *mg), gm;
    memset(&gm, 0, sizeof gm);
    ew_status_t st = mg ? EW_OK : ew_fail(EW_ERR_NOMEM, "demo: out of memory");
    ew_report_section(r, "em-sim", "Cryo-EM: simulated micrographs");
    double t = ew_time_now();
    if (st == EW_OK) st = ew_em_sim_create(&ec, &s, 1, &sim);
    double rad = st == EW_OK ? ew_em_sim_model(sim, 0)->radius : 0;
    if (st == EW_OK) {
        ew_progress_t *pr = ew_progress_start("cryo-EM simulate", (uint64_t)c->em_micrographs + 1);
        for (int i = 0; i < c->em_micrographs && st == EW_OK; i++) {
            st = ew_em_sim_run(sim, (size_t)i, &mg[i]);
            if (st == EW_OK) res->em_particles += mg[i].n_particles, res->em_micrographs++;
            ew_progress_add(pr, 1);
        }
        if (st == EW_OK) {
            ew_em_config_t gc = ec;
            gc.mode = EW_EM_GENEM;
            gc.n_micrographs = 1;
            gc.seed = c->seed + 100;
            st = ew_em_sim_create(&gc, &s, 1, &gsim);
            if (st == EW_OK) st = ew_em_sim_run(gsim, 0, &gm);
            ew_progress_add(pr, 1);
        }
        ew_progress_finish(pr);
    }
    if (st != EW_OK) goto done;
    double t_sim = ew_time_now() - t;
    ew_report_timing(r, "cryo-EM: simulate micrographs", t_sim);
    ew_report_paramf(r, G, "micrographs (full physics)", NULL, "%d", c->em_micrographs);
    ew_report_param(r, G, "micrographs (GenEM preset)", "1", NULL);
    ew_report_paramf(r, G, "size", "pixels", "%d x %d", ec.nx, ec.ny);
    ew_report_paramf(r, G, "pixel", "A", "%.2f", ec.pixel);
    ew_report_paramf(r, G, "simulation oversampling", NULL, "%d", ec.oversample);
    ew_report_paramf(r, G, "particles per micrograph (mean)", NULL, "%.0f", c->em_particles);
    ew_report_paramf(r, G, "voltage", "kV", "%.0f", ec.ctf.voltage_v * 1e-3);
    ew_report_paramf(r, G, "spherical aberration Cs", "mm", "%.2f", ec.ctf.cs_mm);
    ew_report_paramf(r, G, "amplitude contrast", NULL, "%.3f", ec.ctf.amp_contrast);
    ew_report_paramf(r, G, "defocus range", "A", "%.0f to %.0f (astigmatism up to %.0f)", ec.defocus_min,
                     ec.defocus_max, ec.astig_max);
    ew_report_paramf(r, G, "ice thickness", "A", "%.0f", ec.ice.thickness);
    ew_report_paramf(r, G, "dose", "e/A^2", "%.0f", ec.dose);
    ew_report_paramf(r, G, "detector DQE(0)", NULL, "%.2f", ec.dqe0);
    ew_report_paramf(r, G, "GenEM SNR", NULL, "%.3f", ec.snr);
    ew_report_text(r,
                   "%zu micrograph(s) of %d x %d pixels at %.1f A per pixel (%.0f A across) with %zu particles of 2cex "
                   "(radius %.0f A) in random orientations: full physics (atomic potential, %.0f A of amorphous "
                   "ice, phase-grating exit wave, CTF at %.0f kV, %.0f e/A^2 dose, detector DQE and MTF, "
                   "Poisson counting), and one micrograph with the GenEM preset (projection, CTF, white Gaussian "
                   "noise at SNR %.2f). %.1f s.",
                   res->em_micrographs, ec.nx, ec.ny, ec.pixel, ec.nx * ec.pixel, res->em_particles, rad,
                   ec.ice.thickness, ec.ctf.voltage_v * 1e-3, ec.dose, ec.snr, t_sim);
    {
        int f = c->em_size >= 1024 ? 2 : 1;
        char p0[4096], p1[4096], p2[4096];
        ew_demo_fig_path(c, "em_micrograph_raw.png", p0, sizeof p0);
        ew_demo_fig_path(c, "em_micrograph_truth.png", p1, sizeof p1);
        ew_demo_fig_path(c, "em_micrograph_genem.png", p2, sizeof p2);
        st = micrograph_png(p0, &mg[0], f, 0, rad, 0);
        if (st == EW_OK) st = micrograph_png(p1, &mg[0], f, 1, rad, 1);
        if (st == EW_OK) st = micrograph_png(p2, &gm, f, 0, rad, 0);
        if (st != EW_OK) goto done;
        snprintf(cap, sizeof cap,
                 "Micrograph 0 as simulated (full physics), electron counts per pixel, grey scale clipped at the "
                 "0.5 and 99.5 percentiles; %d x %d pixels shown%s, %.0f A across; defocus %.0f A.",
                 c->em_size / f, c->em_size / f, f > 1 ? " (2 x 2 binned)" : "", ec.nx * ec.pixel,
                 0.5 * (mg[0].ctf.defocus_u + mg[0].ctf.defocus_v));
        char cap1[512], cap2[512];
        snprintf(cap1, sizeof cap1,
                 "The same micrograph low-pass filtered for display, with the %zu true particle positions circled "
                 "(radius %.0f A): the picks a perfect picker would make.",
                 mg[0].n_particles, rad);
        snprintf(cap2, sizeof cap2,
                 "A GenEM-preset micrograph (projection, CTF, white Gaussian noise at SNR %.2f), contrast in "
                 "arbitrary units, same scale rules.",
                 ec.snr);
        const char *paths[3] = {p0, p1, p2}, *caps[3] = {cap, cap1, cap2};
        ew_report_figure_row(r, 3, paths, caps);
    }
    ew_report_section(r, "em-noise", "Cryo-EM: noise translation");
    ew_report_note(r, "skip",
                   "The noise translation (GenEM noise to realistic detector noise) is not in this build, so the "
                   "micrographs before and after translation cannot be shown yet.");
    res->cut_run = 0;
    ew_report_section(r, "em-pick", "Cryo-EM: particle picking");
    ew_report_note(r, "skip",
                   "The particle picker is not in this build; the circles on the micrograph above are the true "
                   "positions, which a picker's output will be scored against (AUPRC).");
    res->pick_run = 0;
    ew_report_section(r, "em-recon", "Cryo-EM: 3D reconstruction");
    ew_report_note(r, "skip",
                   "Pose estimation and cryo-EM 3D reconstruction are not in this build, so there is no map or "
                   "FSC for the cryo-EM half yet.");
    res->emrecon_run = 0;

done:
    if (mg)
        for (int i = 0; i < c->em_micrographs; i++) ew_em_micrograph_free(&mg[i]);
    free(mg);
    ew_em_micrograph_free(&gm);
    ew_em_sim_destroy(sim);
    ew_em_sim_destroy(gsim);
    ew_structure_free(&s);
    return st;
}
