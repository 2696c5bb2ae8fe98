/* Benchmark of the cryo-EM downstream tasks (issue 12, GenEM's claim at
 * our scale): does the synthetic data train pickers and pose estimators,
 * and does the reconstruction invert the simulator?
 *
 *   bench_em_downstream [--json] [--quick] [--only recon|recon-genem|pose|pick|encoder]
 *                       [--particles N] [--pdb PATH] [--encoder-steps N] [--dose E]
 *
 * Structure: ../shared/data/pdb/2cex.pdb (waters, hydrogens, HETATM
 * dropped), pixel 2 A, box from its radius.
 * 1. recon: N (5000) particles boxed from (a) full-physics micrographs
 *    (ice, Poisson counting noise at a high dose, --dose, 100 e/A^2,
 *    counting-detector MTF) and (b) GenEM micrographs at SNR 10, with
 *    their exact poses and CTFs -> direct Fourier inversion: half-map FSC
 *    0.143 resolution (bar: <= 2.5 pixels) and the FSC of the full map
 *    against the true potential.
 * 2. pose: projection matching (600-cell level 5 + local refinement)
 *    against the true map for particles of GenEM micrographs at SNR 10
 *    ("high") and 0.1 ("realistic"): median angular error after the
 *    handedness-aware global alignment of eval/orient.h (bar: < 5 degrees
 *    at high SNR).
 * 3. pick: the FCN picker trained on (a) GenEM micrographs with white
 *    Gaussian noise at SNR 0.1 and (b) full-physics micrographs (ice,
 *    Poisson noise at 40 e/A^2) -- both evaluated on the same held-out
 *    full-physics set, and on a held-out Gaussian SNR 0.1 set: Topaz
 *    AUPRC (bar: >= 0.8 on held-out synthetic micrographs at SNR 0.1).
 *    (Translated noise -- src/gen, CUT -- slots in as a third training
 *    set once it lands.)
 * 4. encoder: the learned pose encoder trained on simulated particles
 *    (GenEM, SNR 10 and 0.1), median error on held-out particles.
 * The last line is JSON.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "eval/fsc.h"
#include "eval/orient.h"
#include "geom/geom.h"
#include "io/structure.h"
#include "physics/em_sim.h"
#include "recon/em_pick.h"
#include "recon/em_pose.h"
#include "recon/em_recon.h"

static int g_quick = 0;

typedef struct {
    size_t n_mics;
    ew_em_micrograph_t *m;
    double **xy;
    ew_pick_mic_t *pm;
    /* particles boxed (n x box x box), views */
    size_t count;
    int box;
    float *imgs;
    ew_em_view_t *v;
} dataset_t;

static void dataset_free(dataset_t *d)
{
    for (size_t k = 0; k < d->n_mics; k++) {
        ew_em_micrograph_free(&d->m[k]);
        free(d->xy[k]);
    }
    free(d->m);
    free(d->xy);
    free(d->pm);
    free(d->imgs);
    free(d->v);
    memset(d, 0, sizeof *d);
}

static void die(ew_status_t st, const char *what)
{
    fprintf(stderr, "bench_em_downstream: %s: %s\n", what, ew_error_message());
    exit(st == EW_OK ? 1 : (int)st);
}

/* Simulate micrographs index0.. until max_particles are boxed (or n_mics
 * micrographs when max_particles is 0). */
static void make_dataset(const ew_em_config_t *cfg, const ew_structure_t *s, size_t index0, size_t n_mics,
                         size_t max_particles, int box, int keep_mics, dataset_t *d)
{
    memset(d, 0, sizeof *d);
    ew_em_sim_t *sim;
    ew_status_t st = ew_em_sim_create(cfg, s, 1, &sim);
    if (st != EW_OK) die(st, "simulator");
    size_t cap = max_particles ? max_particles : 100000;
    d->box = box;
    d->m = calloc(n_mics, sizeof *d->m);
    d->xy = calloc(n_mics, sizeof *d->xy);
    d->pm = calloc(n_mics, sizeof *d->pm);
    if (box > 0) {
        d->imgs = malloc(sizeof(float) * cap * box * box);
        d->v = malloc(sizeof *d->v * cap);
    }
    for (size_t k = 0; k < n_mics && (!max_particles || d->count < max_particles); k++) {
        ew_em_micrograph_t *m = &d->m[k];
        st = ew_em_sim_run(sim, index0 + k, m);
        if (st != EW_OK) die(st, "simulate");
        d->n_mics = k + 1;
        d->xy[k] = malloc(sizeof(double) * 2 * (m->n_particles + 1));
        for (size_t p = 0; p < m->n_particles; p++) {
            double cx = m->particles[p].x / m->pixel, cy = m->particles[p].y / m->pixel;
            d->xy[k][2 * p] = cx;
            d->xy[k][2 * p + 1] = cy;
            if (box > 0 && d->count < cap) {
                /* skip particles whose box leaves the micrograph */
                if (cx < box / 2 + 1 || cy < box / 2 + 1 || cx > m->nx - box / 2 - 2 || cy > m->ny - box / 2 - 2)
                    continue;
                ew_em_extract_box(m->micrograph, m->nx, m->ny, cx, cy, box, d->imgs + d->count * (size_t)box * box);
                ew_em_view_t *v = &d->v[d->count];
                memcpy(v->R, m->particles[p].R, sizeof v->R);
                v->shift[0] = round(cx) - cx;
                v->shift[1] = round(cy) - cy;
                v->ctf = m->ctf;
                v->ctf.defocus_u -= m->particles[p].z;
                v->ctf.defocus_v -= m->particles[p].z;
                d->count++;
            }
        }
        d->pm[k] = (ew_pick_mic_t){m->micrograph, m->nx, m->ny, d->xy[k], m->n_particles};
        if (!keep_mics) { /* keep the coordinates, drop the images */
            ew_free(m->clean);
            ew_free(m->projection);
            ew_free(m->thickness);
            ew_free(m->mask);
            m->clean = m->projection = m->thickness = NULL;
            m->mask = NULL;
        }
    }
    ew_em_sim_destroy(sim);
}

static void base_config(ew_em_config_t *c, int nxy, double pixel, uint64_t seed)
{
    ew_em_config_default(c);
    c->nx = c->ny = nxy;
    c->pixel = pixel;
    c->seed = seed;
    c->specimen.count_mean = 1e6; /* as many as fit */
    c->specimen.max_tries = 300;
    c->specimen.min_gap = 8.0;
    c->defocus_min = 10000;
    c->defocus_max = 25000;
    c->fft_measure = 0;
}

static double median_error(const ew_em_view_t *t, const double *Rp, size_t n, double *other)
{
    ew_quat_t *qt = malloc(sizeof *qt * n), *qp = malloc(sizeof *qp * n);
    for (size_t i = 0; i < n; i++) {
        qt[i] = ew_mat_to_quat(t[i].R);
        qp[i] = ew_mat_to_quat(Rp + 9 * i);
    }
    ew_orient_err_t e;
    ew_status_t st = ew_orient_error(qt, qp, n, NULL, &e);
    if (st != EW_OK) die(st, "orient");
    double med = e.median_deg;
    if (other) *other = e.other_hand_median_deg;
    ew_orient_err_free(&e);
    free(qt);
    free(qp);
    return med;
}

int main(int argc, char **argv)
{
    int json = 0;
    const char *only = NULL, *pdb = "../shared/data/pdb/2cex.pdb";
    size_t n_particles = 5000;
    int enc_steps = 300;
    double dose = 100.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--quick")) g_quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--particles") && i + 1 < argc) n_particles = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--pdb") && i + 1 < argc) pdb = argv[++i];
        else if (!strcmp(argv[i], "--encoder-steps") && i + 1 < argc) enc_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dose") && i + 1 < argc) dose = atof(argv[++i]);
    }
    (void)json;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (g_quick) {
        n_particles = 600;
        enc_steps = 200;
    }
    ew_structure_options_t so = {1, 1, 1};
    ew_structure_t s;
    ew_status_t st = ew_structure_read(pdb, &so, &s);
    if (st != EW_OK) {
        printf("bench_em_downstream: %s not readable (%s); nothing measured\n{}\n", pdb, ew_error_message());
        return 0;
    }
    const double pixel = 2.0;
    ew_em_model_t model;
    if ((st = ew_em_model_init(&model, &s, 0.0)) != EW_OK) die(st, "model");
    int box = (int)ceil(2.4 * model.radius / pixel);
    box += box % 2;
    if (box < 32) box = 32;
    float *truth = malloc(sizeof(float) * box * box * box);
    ew_em_potential_map(&model.pot, box, pixel, truth);
    printf("structure %s: %zu atoms, radius %.1f A; pixel %.1f A, box %d; threads %d\n", pdb, s.n_atoms, model.radius,
           pixel, box, omp_get_max_threads());
    char js[4096];
    int jl = snprintf(js, sizeof js, "{\"bench\":\"em_downstream\",\"pixel_A\":%.2f,\"box\":%d", pixel, box);

    if (!only || !strncmp(only, "recon", 5)) {
        for (int mode = only && !strcmp(only, "recon-genem") ? 1 : 0; mode < 2; mode++) {
            ew_em_config_t c;
            base_config(&c, 1024, pixel, 11);
            const char *tag = mode == 0 ? "physics" : "genem";
            if (mode == 0) {
                c.dose = dose;
            } else {
                c.mode = EW_EM_GENEM;
                c.snr = 10.0;
            }
            double t0 = ew_time_now();
            dataset_t d;
            make_dataset(&c, &s, 0, 1000, n_particles, box, 0, &d);
            double tsim = ew_time_now() - t0;
            ew_emrec_config_t rc;
            ew_emrec_config_default(&rc);
            rc.box = box;
            rc.pixel = pixel;
            ew_em_recon_t r;
            if ((st = ew_em_reconstruct(&rc, d.imgs, d.v, d.count, &r)) != EW_OK) die(st, "reconstruct");
            ew_shell_curve_t ft;
            if ((st = ew_fsc_density(r.map, truth, box, pixel, 1.0, &ft)) != EW_OK) die(st, "fsc");
            double rt = ew_curve_resolution(&ft, 0.5), rt143 = ew_curve_resolution(&ft, 0.143);
            if (mode == 0)
                printf("\n1a. reconstruction: %zu particles from %zu full-physics micrographs (1024^2, ice, %g e/A^2,"
                       " counting MTF), exact poses\n", d.count, d.n_mics, dose);
            else
                printf("\n1b. reconstruction: %zu particles from %zu GenEM micrographs (1024^2, SNR 10), exact poses\n",
                       d.count, d.n_mics);
            printf("   simulate %.1f s, reconstruct (2 halves + full) %.1f s\n", tsim, r.seconds);
            printf("   half-map FSC 0.143: %.2f A = %.2f pixels (bar <= 2.5, Nyquist 2.0)\n", r.res_0143,
                   r.res_0143 / pixel);
            printf("   full map vs true potential: FSC 0.5 at %.2f A, 0.143 at %.2f A\n", rt, rt143);
            printf("   shell  d(A)   FSC_half  FSC_true\n");
            for (int j = 2; j < r.fsc.nshell; j += 2)
                printf("   %3d  %6.2f   %6.3f    %6.3f\n", j, 1.0 / r.fsc.s[j], r.fsc.value[j], ft.value[j]);
            jl += snprintf(js + jl, sizeof js - jl,
                           ",\"recon_%s_particles\":%zu,\"recon_%s_res0143_px\":%.3f,\"recon_%s_true_fsc05_A\":%.3f,"
                           "\"recon_%s_seconds\":%.2f",
                           tag, d.count, tag, r.res_0143 / pixel, tag, rt, tag, r.seconds);
            ew_shell_curve_free(&ft);
            ew_em_recon_free(&r);
            dataset_free(&d);
        }
    }

    if (!only || !strcmp(only, "pose")) {
        const double snrs[2] = {10.0, 0.1};
        const char *names[2] = {"high", "realistic"};
        printf("\n2. projection matching against the true map (GenEM micrographs; 600-cell level 5 + local)\n");
        for (int k = 0; k < 2; k++) {
            ew_em_config_t c;
            base_config(&c, 1024, pixel, 21 + k);
            c.mode = EW_EM_GENEM;
            c.snr = snrs[k];
            dataset_t d;
            make_dataset(&c, &s, 0, 100, g_quick ? 40 : 200, box, 0, &d);
            ew_empose_config_t pc;
            ew_empose_config_default(&pc);
            pc.box = box;
            pc.pixel = pixel;
            ew_em_view_t *p = malloc(sizeof *p * d.count);
            memcpy(p, d.v, sizeof *p * d.count);
            double t0 = ew_time_now();
            if ((st = ew_em_pose_match(&pc, truth, d.imgs, d.count, p, NULL)) != EW_OK) die(st, "pose");
            double tp = ew_time_now() - t0;
            double *R = malloc(sizeof(double) * 9 * d.count), other;
            double sh = 0;
            for (size_t i = 0; i < d.count; i++) {
                memcpy(R + 9 * i, p[i].R, sizeof p[i].R);
                sh += hypot(p[i].shift[0] - d.v[i].shift[0], p[i].shift[1] - d.v[i].shift[1]);
            }
            double med = median_error(d.v, R, d.count, &other);
            printf("   SNR %-5g (%s): %zu particles, median error %.2f deg (other hand %.1f), mean shift error %.2f px,"
                   " %.2f s/particle\n",
                   snrs[k], names[k], d.count, med, other, sh / d.count, tp / d.count);
            jl += snprintf(js + jl, sizeof js - jl, ",\"pose_median_deg_%s\":%.3f,\"pose_s_per_particle_%s\":%.3f",
                           names[k], med, names[k], tp / d.count);
            free(R);
            free(p);
            dataset_free(&d);
        }
    }

    if (!only || !strcmp(only, "pick")) {
        size_t ntr = g_quick ? 3 : 10, nte = g_quick ? 2 : 5;
        ew_em_config_t cg, cf;
        base_config(&cg, 1024, pixel, 31);
        cg.mode = EW_EM_GENEM;
        cg.snr = 0.1;
        cg.specimen.count_mean = 60;
        base_config(&cf, 1024, pixel, 32);
        cf.specimen.count_mean = 60;
        dataset_t tg, tf, eg, ef;
        make_dataset(&cg, &s, 0, ntr, 0, 0, 0, &tg);
        make_dataset(&cf, &s, 0, ntr, 0, 0, 0, &tf);
        make_dataset(&cg, &s, 1000, nte, 0, 0, 0, &eg);
        make_dataset(&cf, &s, 1000, nte, 0, 0, 0, &ef);
        ew_pick_config_t pc;
        ew_pick_config_default(&pc);
        pc.bin = 4;
        pc.steps = g_quick ? 150 : 400;
        double radius = 0.5 * model.radius / pixel;
        printf("\n3. picker (bin %d, %d layers x %d channels, %d steps); AUPRC matching within %.1f px\n", pc.bin,
               pc.layers, pc.width, pc.steps, radius);
        dataset_t *train[2] = {&tg, &tf};
        const char *tn[2] = {"gaussian", "physics"};
        for (int k = 0; k < 2; k++) {
            ew_picker_t *pk;
            if ((st = ew_picker_create(&pc, &pk)) != EW_OK) die(st, "picker");
            double loss, t0 = ew_time_now();
            if ((st = ew_picker_train(pk, train[k]->pm, train[k]->n_mics, &loss)) != EW_OK) die(st, "train");
            double tt = ew_time_now() - t0;
            dataset_t *ev[2] = {&ef, &eg};
            double ap[2], pr[2], rc[2];
            for (int e = 0; e < 2; e++) {
                ew_pick_t **p = calloc(ev[e]->n_mics, sizeof *p);
                size_t *np = calloc(ev[e]->n_mics, sizeof *np);
                for (size_t m = 0; m < ev[e]->n_mics; m++)
                    if ((st = ew_picker_pick(pk, ev[e]->pm[m].img, ev[e]->pm[m].nx, ev[e]->pm[m].ny, -8.0, &p[m],
                                             &np[m])) != EW_OK)
                        die(st, "pick");
                ap[e] = ew_pick_auprc((const ew_pick_t *const *)p, np, ev[e]->pm, ev[e]->n_mics, radius, &pr[e], &rc[e]);
                for (size_t m = 0; m < ev[e]->n_mics; m++) ew_free(p[m]);
                free(p);
                free(np);
            }
            printf("   trained on %-8s (%zu mics, %.0f s, BCE %.3f): AUPRC held-out physics %.3f (P %.2f R %.2f),"
                   " held-out gaussian SNR 0.1 %.3f (P %.2f R %.2f)\n",
                   tn[k], train[k]->n_mics, tt, loss, ap[0], pr[0], rc[0], ap[1], pr[1], rc[1]);
            jl += snprintf(js + jl, sizeof js - jl, ",\"pick_%s_auprc_physics\":%.4f,\"pick_%s_auprc_gaussian\":%.4f",
                           tn[k], ap[0], tn[k], ap[1]);
            ew_picker_destroy(pk);
        }
        dataset_free(&tg);
        dataset_free(&tf);
        dataset_free(&eg);
        dataset_free(&ef);
    }

    if (!only || !strcmp(only, "encoder")) {
        const double snrs[2] = {10.0, 0.1};
        const char *names[2] = {"high", "realistic"};
        int ebox = 32;
        printf("\n4. pose encoder (CNN -> 6D), particles binned to %d px, %d steps\n", ebox, enc_steps);
        for (int k = 0; k < 2; k++) {
            ew_em_config_t c;
            base_config(&c, 1024, pixel, 41 + k);
            c.mode = EW_EM_GENEM;
            c.snr = snrs[k];
            dataset_t d;
            make_dataset(&c, &s, 0, 1000, g_quick ? 1200 : 3000, box, 0, &d);
            /* Fourier-free 2x2-style rebinning to ebox by block means of the central region */
            size_t n = d.count;
            int f = box / ebox > 0 ? box / ebox : 1, off = (box - f * ebox) / 2;
            float *im = malloc(sizeof(float) * n * ebox * ebox);
            for (size_t i = 0; i < n; i++)
                for (int y = 0; y < ebox; y++)
                    for (int x = 0; x < ebox; x++) {
                        double a = 0;
                        for (int v = 0; v < f; v++)
                            for (int u = 0; u < f; u++)
                                a += d.imgs[i * (size_t)box * box + (size_t)(off + y * f + v) * box + (off + x * f + u)];
                        im[(i * ebox + y) * ebox + x] = (float)(a / (f * f));
                    }
            size_t nte = n / 6, ntr = n - nte;
            double *R = malloc(sizeof(double) * 9 * n);
            for (size_t i = 0; i < n; i++) memcpy(R + 9 * i, d.v[i].R, sizeof d.v[i].R);
            ew_poseenc_config_t ec;
            ew_poseenc_config_default(&ec);
            ec.box = ebox;
            ec.steps = enc_steps;
            ew_poseenc_t *e;
            if ((st = ew_poseenc_create(&ec, &e)) != EW_OK) die(st, "encoder");
            double loss, t0 = ew_time_now();
            if ((st = ew_poseenc_train(e, im, R, ntr, &loss)) != EW_OK) die(st, "encoder train");
            double tt = ew_time_now() - t0;
            double *P = malloc(sizeof(double) * 9 * nte), other;
            if ((st = ew_poseenc_predict(e, im + ntr * ebox * ebox, nte, P)) != EW_OK) die(st, "encoder predict");
            double med = median_error(d.v + ntr, P, nte, &other);
            printf("   SNR %-5g (%s): train %zu, held-out %zu: median error %.1f deg (other hand %.1f), loss %.3f, %.0f s\n",
                   snrs[k], names[k], ntr, nte, med, other, loss, tt);
            jl += snprintf(js + jl, sizeof js - jl, ",\"encoder_median_deg_%s\":%.2f", names[k], med);
            ew_poseenc_destroy(e);
            free(P);
            free(R);
            free(im);
            dataset_free(&d);
        }
    }
    snprintf(js + jl, sizeof js - jl, "}");
    printf("%s\n", js);
    free(truth);
    ew_em_model_free(&model);
    ew_structure_free(&s);
    return 0;
}
