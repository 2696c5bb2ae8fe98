/* ewald em pick train|run|eval: a fully convolutional particle picker
 * (src/recon/em_pick.h) trained on annotated micrographs, picking into
 * STAR and Topaz files, and Topaz's AUPRC against true coordinates. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_util.h"
#include "io/coords.h"
#include "io/mrc.h"
#include "io/safetensors.h"
#include "io/star.h"
#include "recon/em_pick.h"

/* The micrograph name's stem: basename without extension (Topaz's image_name). */
static void stem_of(const char *path, char *out, size_t n)
{
    const char *b = strrchr(path, '/');
    ew_cli_replace_ext(b ? b + 1 : path, "", out, n);
}

/* Micrographs with their true centres, grouped by stem. */
typedef struct {
    char *stem;
    double *xy;     /* (n, 2) pixels */
    size_t n, cap;
    ew_pick_t *p;   /* (np) picks to evaluate */
    size_t np, pcap;
} tmic_t;

typedef struct {
    tmic_t *m;
    size_t n, cap, total; /* micrographs; true centres in all */
} truth_t;

static void truth_free(truth_t *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->m[i].stem), free(t->m[i].xy), free(t->m[i].p);
    free(t->m);
    memset(t, 0, sizeof *t);
}

/* Index of stem s (added when absent). */
static ew_status_t truth_find(truth_t *t, const char *s, size_t *idx)
{
    for (size_t i = t->n; i-- > 0;)
        if (!strcmp(t->m[i].stem, s)) {
            *idx = i;
            return EW_OK;
        }
    EW_TRY(ew_grow((void **)&t->m, &t->cap, t->n + 1, sizeof *t->m));
    memset(&t->m[t->n], 0, sizeof *t->m);
    if (!(t->m[t->n].stem = strdup(s))) return ew_fail(EW_ERR_NOMEM, "out of memory");
    *idx = t->n++;
    return EW_OK;
}

/* Add the rows of a STAR file with rlnMicrographName, rlnCoordinateX/Y
 * (only: those of these micrographs; NULL: all). */
static ew_status_t truth_read_star(truth_t *t, const char *path, const cli_paths_t *only)
{
    ew_star_t s;
    EW_TRY(ew_star_read(path, &s));
    ew_star_col_t cm, cx, cy;
    ew_status_t st = ew_star_column(&s, NULL, "rlnMicrographName", &cm);
    if (st == EW_OK) st = ew_star_column(&s, cm.block->name, "rlnCoordinateX", &cx);
    if (st == EW_OK) st = ew_star_column(&s, cm.block->name, "rlnCoordinateY", &cy);
    char stem[1024];
    for (size_t r = 0; st == EW_OK && r < ew_star_rows(&cm); r++) {
        size_t i;
        double x, y;
        stem_of(ew_star_get_string(&cm, r), stem, sizeof stem);
        size_t k = 0;
        for (char other[1024]; only && k < only->n; k++) {
            stem_of(only->v[k], other, sizeof other);
            if (!strcmp(other, stem)) break;
        }
        if (only && k == only->n) continue;
        if ((st = ew_star_get_double(&cx, r, &x)) != EW_OK || (st = ew_star_get_double(&cy, r, &y)) != EW_OK) break;
        if ((st = truth_find(t, stem, &i)) != EW_OK) break;
        tmic_t *m = &t->m[i];
        if ((st = ew_grow((void **)&m->xy, &m->cap, 2 * (m->n + 1), sizeof(double))) != EW_OK) break;
        m->xy[2 * m->n] = x, m->xy[2 * m->n + 1] = y, m->n++, t->total++;
    }
    ew_star_free(&s);
    return st;
}

/* Positional items (folders of `em simulate`, or micrographs) -> paths,
 * and the coordinate STAR files they imply (DIR/particles.star). */
static ew_status_t collect(char **items, int n, cli_paths_t *mics, cli_paths_t *stars)
{
    struct stat sb;
    char star[1200];
    for (int i = 0; i < n; i++) {
        int dir = stat(items[i], &sb) == 0 && S_ISDIR(sb.st_mode);
        EW_TRY(dir ? cli_paths_add_dir(mics, items[i]) : cli_paths_add(mics, items[i]));
        snprintf(star, sizeof star, "%s/particles.star", items[i]);
        if (dir && stars && access(star, R_OK) == 0) EW_TRY(cli_paths_add(stars, star));
    }
    return EW_OK;
}

/* AUPRC of coords c against t (micrographs matched by stem; picks of
 * micrographs without truth count as false positives): r = {AUPRC,
 * precision, recall at the best F1}. */
static ew_status_t auprc(const ew_coords_t *c, truth_t *t, double radius, double r[3])
{
    char stem[1024];
    for (size_t k = 0; k < c->n; k++) {
        size_t i;
        stem_of(c->image[k] ? c->image[k] : "", stem, sizeof stem);
        EW_TRY(truth_find(t, stem, &i));
        tmic_t *m = &t->m[i];
        EW_TRY(ew_grow((void **)&m->p, &m->pcap, m->np + 1, sizeof *m->p));
        m->p[m->np++] = (ew_pick_t){c->x[k], c->y[k], c->score[k]};
    }
    size_t nm = t->n ? t->n : 1, *np = calloc(nm, sizeof *np);
    ew_pick_mic_t *mic = calloc(nm, sizeof *mic);
    const ew_pick_t **p = calloc(nm, sizeof *p);
    ew_status_t st = mic && p && np ? EW_OK : ew_fail(EW_ERR_NOMEM, "out of memory for %zu micrographs", nm);
    for (size_t i = 0; st == EW_OK && i < t->n; i++)
        mic[i] = (ew_pick_mic_t){NULL, 0, 0, t->m[i].xy, t->m[i].n}, p[i] = t->m[i].p, np[i] = t->m[i].np;
    if (st == EW_OK) r[0] = ew_pick_auprc(p, np, mic, t->n, radius, &r[1], &r[2]);
    free(mic), free(p), free(np);
    return st;
}

static void json_auprc(cJSON *js, const double r[3], const truth_t *t)
{
    cJSON_AddNumberToObject(js, "auprc", r[0]);
    cJSON_AddNumberToObject(js, "best_precision", r[1]);
    cJSON_AddNumberToObject(js, "best_recall", r[2]);
    cJSON_AddNumberToObject(js, "best_f1", r[1] + r[2] > 0 ? 2 * r[1] * r[2] / (r[1] + r[2]) : 0);
    cJSON_AddNumberToObject(js, "true_particles", (double)t->total);
}

int cmd_em_pick_train(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_pick_config_t c;
    ew_pick_config_default(&c);
    long bin = c.bin, width = c.width, layers = c.layers, first_k = c.first_k, patch = c.patch, batch = c.batch,
         steps = c.steps, threads = 0;
    const char *coords = NULL, *out = "picker.safetensors";
    ew_opt_t opts[] = {
        {"coords", 0, EW_OPT_STRING, &coords, "data", "STAR file of true centres (rlnMicrographName, rlnCoordinateX/Y, pixels); default DIR/particles.star of each folder", NULL, 0, 0, 0},
        {"bin", 0, EW_OPT_INT, &bin, "model", "binning factor of the micrographs (block means)", NULL, 0, 1, 64},
        {"width", 0, EW_OPT_INT, &width, "model", "channels of every convolution", NULL, 0, 1, 1024},
        {"layers", 0, EW_OPT_INT, &layers, "model", "convolutions including the 1x1 output (>= 2)", NULL, 0, 2, 64},
        {"first-k", 0, EW_OPT_INT, &first_k, "model", "kernel of the first convolution (odd)", NULL, 0, 1, 63},
        {"label-radius", 0, EW_OPT_DOUBLE, &c.label_radius, "train", "positive labels within this distance of a true centre, binned pixels", NULL, 0, 0, 1000},
        {"patch", 0, EW_OPT_INT, &patch, "train", "training crop side, binned pixels", NULL, 0, 4, 8192},
        {"batch", 'b', EW_OPT_INT, &batch, "train", "crops per step", NULL, 0, 1, 4096},
        {"steps", 'n', EW_OPT_INT, &steps, "train", "optimizer steps", NULL, 0, 1, 1e9},
        {"lr", 0, EW_OPT_DOUBLE, &c.lr, "train", "AdamW learning rate (cosine decay to lr / 20)", NULL, 0, 1e-12, 10},
        {"weight-decay", 0, EW_OPT_DOUBLE, &c.weight_decay, "train", "AdamW decoupled weight decay", NULL, 0, 0, 10},
        {"seed", 0, EW_OPT_U64, &c.seed, "train", "random seed (initialisation, crops)", NULL, 0, 0, 0},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {"out", 'o', EW_OPT_STRING, &out, "output", "the trained picker (safetensors; architecture in its metadata)", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald em pick train MICROGRAPHS... [options]",
        "Trains the particle picker (a Topaz-like fully convolutional network on binned micrographs, binary "
        "cross-entropy against discs around the true centres) on annotated micrographs: `ewald em simulate` "
        "folders (their micrographs and particles.star) or MRC micrographs with --coords STAR.",
        "micrographs, particles, steps, final_loss, seconds, params{every option}, outputs{model}",
        1, -1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (threads > 0) omp_set_num_threads((int)threads);
    c.bin = (int)bin, c.width = (int)width, c.layers = (int)layers, c.first_k = (int)first_k, c.patch = (int)patch;
    c.batch = (int)batch, c.steps = (int)steps;
    cli_paths_t mics = {0}, stars = {0};
    truth_t t = {0};
    ew_picker_t *pk = NULL;
    ew_status_t st = collect(pos, npos, &mics, coords ? NULL : &stars);
    if (st == EW_OK && coords) st = cli_paths_add(&stars, coords);
    if (st == EW_OK && stars.n == 0) st = ew_fail(EW_ERR_ARG, "no coordinates: give --coords STAR or `em simulate` folders");
    for (size_t i = 0; st == EW_OK && i < stars.n; i++) st = truth_read_star(&t, stars.v[i], NULL);
    ew_pick_mic_t *pm = calloc(mics.n + 1, sizeof *pm);
    ew_mrc_t *mr = calloc(mics.n + 1, sizeof *mr);
    size_t nparticles = 0;
    if (st == EW_OK && (!pm || !mr)) st = ew_fail(EW_ERR_NOMEM, "out of memory");
    for (size_t k = 0; st == EW_OK && k < mics.n; k++) {
        char stem[1024];
        size_t i;
        stem_of(mics.v[k], stem, sizeof stem);
        if ((st = ew_mrc_read_sections(mics.v[k], 0, 1, &mr[k])) != EW_OK) break;
        pm[k] = (ew_pick_mic_t){mr[k].data, mr[k].nx, mr[k].ny, NULL, 0};
        for (i = 0; i < t.n && strcmp(t.m[i].stem, stem); i++) {}
        if (i < t.n) pm[k].xy = t.m[i].xy, pm[k].n = t.m[i].n, nparticles += t.m[i].n;
    }
    if (st == EW_OK && nparticles == 0) st = ew_fail(EW_ERR_ARG, "%s: no true centres for these micrographs (names are matched without folder and extension)", stars.v[0]);
    double loss = NAN, t0 = ew_time_now();
    if (st == EW_OK) st = ew_picker_create(&c, &pk);
    if (st == EW_OK) st = ew_picker_train(pk, pm, mics.n, &loss);
    double seconds = ew_time_now() - t0;
    if (st == EW_OK) st = ew_picker_save(pk, out);
    if (st == EW_OK) {
        printf("trained on %zu micrographs with %zu particles: %d steps in %.1f s, final loss %.4g\nwrote %s\n", mics.n,
               nparticles, c.steps, seconds, loss, out);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "micrographs", (double)mics.n);
            cJSON_AddNumberToObject(js, "particles", (double)nparticles);
            cJSON_AddNumberToObject(js, "steps", c.steps);
            cJSON_AddNumberToObject(js, "final_loss", isfinite(loss) ? loss : -1);
            cJSON_AddNumberToObject(js, "seconds", seconds);
            ew_cli_params_to_json(opts, cJSON_AddObjectToObject(js, "params"));
            cJSON_AddStringToObject(cJSON_AddObjectToObject(js, "outputs"), "model", out);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    for (size_t k = 0; mr && k < mics.n; k++) ew_mrc_free(&mr[k]);
    free(mr), free(pm);
    ew_picker_destroy(pk);
    truth_free(&t);
    cli_paths_free(&mics), cli_paths_free(&stars);
    return st == EW_OK ? 0 : ew_cli_fail();
}

/* The picker saved at path, built with the architecture in its metadata. */
static ew_status_t load_picker(const char *path, ew_pick_config_t *c, ew_picker_t **pk)
{
    ew_safetensors_t s;
    EW_TRY(ew_safetensors_read(path, &s));
    const char *keys[] = {"bin", "layers", "width", "first_k"};
    int *dst[] = {&c->bin, &c->layers, &c->width, &c->first_k};
    ew_status_t st = EW_OK;
    const char *model = ew_safetensors_meta(&s, "model");
    if (!model || strcmp(model, "ewald-em-picker"))
        st = ew_fail(EW_ERR_FORMAT, "%s: not a picker (metadata model = '%s')", path, model ? model : "");
    for (int i = 0; st == EW_OK && i < 4; i++) {
        const char *v = ew_safetensors_meta(&s, keys[i]);
        char *end;
        long x = v ? strtol(v, &end, 10) : 0;
        if (!v || *end || x <= 0)
            st = ew_fail(EW_ERR_FORMAT, "%s: metadata %s = '%s' is not a positive integer", path, keys[i], v ? v : "");
        else
            *dst[i] = (int)x;
    }
    ew_safetensors_free(&s);
    if (st == EW_OK) st = ew_picker_create(c, pk);
    if (st == EW_OK && (st = ew_picker_load(*pk, path)) != EW_OK) ew_picker_destroy(*pk), *pk = NULL;
    return st;
}

int cmd_em_pick_run(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    ew_pick_config_t c;
    ew_pick_config_default(&c);
    long threads = 0;
    double threshold = -6, radius = 10;
    const char *outdir = "picks", *truth = NULL;
    ew_opt_t opts[] = {
        {"threshold", 0, EW_OPT_DOUBLE, &threshold, "pick", "keep picks whose score (logit, log p / (1 - p)) is above this (Topaz: -6)", NULL, 0, -1e9, 1e9},
        {"nms-radius", 0, EW_OPT_DOUBLE, &c.nms_radius, "pick", "non-maximum suppression radius, binned pixels", NULL, 0, 0, 1e5},
        {"truth", 0, EW_OPT_STRING, &truth, "eval", "STAR file of true centres: report the AUPRC", NULL, 0, 0, 0},
        {"radius", 0, EW_OPT_DOUBLE, &radius, "eval", "a pick matches a true centre within this distance, pixels", NULL, 0, 0, 1e5},
        {"threads", 't', EW_OPT_INT, &threads, "run", "OpenMP threads (0: default)", NULL, 0, 0, 4096},
        {"outdir", 'o', EW_OPT_STRING, &outdir, "output", "OUTDIR/picks.txt (Topaz TSV, all micrographs) and OUTDIR/STEM_pick.star each", NULL, 0, 0, 0},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald em pick run MODEL.safetensors MICROGRAPHS... [options]",
        "Picks particles with a trained picker: per-pixel scores of the binned micrograph, greedy non-maximum "
        "suppression, centres in pixels of the micrograph. MICROGRAPHS are MRC files or folders (an `em simulate` "
        "folder: the micrographs of its micrographs.star). Writes one RELION STAR file per micrograph "
        "(rlnCoordinateX/Y, rlnAutopickFigureOfMerit) and one Topaz TSV with scores; with --truth the AUPRC.",
        "micrographs, picks, seconds, auprc, best_precision, best_recall, best_f1, true_particles (with --truth), "
        "outputs{topaz, star[paths]}",
        2, -1};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    if (threads > 0) omp_set_num_threads((int)threads);
    cli_paths_t mics = {0}, outs = {0};
    ew_coords_t co;
    ew_coords_init(&co);
    truth_t t = {0};
    ew_picker_t *pk = NULL;
    char path[2400], stem[1024], topaz[1200];
    snprintf(topaz, sizeof topaz, "%s/picks.txt", outdir);
    ew_status_t st = collect(pos + 1, npos - 1, &mics, NULL);
    if (st == EW_OK && truth) st = truth_read_star(&t, truth, &mics);
    if (st == EW_OK) st = load_picker(pos[0], &c, &pk);
    if (st == EW_OK && mkdir(outdir, 0777) != 0 && errno != EEXIST)
        st = ew_fail(EW_ERR_IO, "%s: cannot create the folder", outdir);
    double t0 = ew_time_now();
    for (size_t k = 0; st == EW_OK && k < mics.n; k++) {
        ew_mrc_t m;
        ew_pick_t *p = NULL;
        size_t n = 0;
        if ((st = ew_mrc_read_sections(mics.v[k], 0, 1, &m)) != EW_OK) break;
        st = ew_picker_pick(pk, m.data, m.nx, m.ny, threshold, &p, &n);
        ew_mrc_free(&m);
        stem_of(mics.v[k], stem, sizeof stem);
        snprintf(path, sizeof path, "%s/%s_pick.star", outdir, stem);
        size_t i; /* with --truth, micrographs without picks count too */
        if (st == EW_OK && truth) st = truth_find(&t, stem, &i);
        if (st == EW_OK) st = ew_pick_to_coords(p, n, stem, &co);
        if (st == EW_OK && (st = ew_pick_write_star(path, p, n)) == EW_OK) st = cli_paths_add(&outs, path);
        ew_free(p);
    }
    double seconds = ew_time_now() - t0, r[3] = {0, 0, 0};
    if (st == EW_OK) st = ew_coords_write_topaz(topaz, &co);
    if (st == EW_OK && truth && (st = auprc(&co, &t, radius, r)) != EW_OK) remove(topaz);
    if (st != EW_OK)
        for (size_t k = 0; k < outs.n; k++) remove(outs.v[k]);
    if (st == EW_OK) {
        printf("picked %zu particles on %zu micrographs in %.1f s (threshold %g)\n", co.n, mics.n, seconds, threshold);
        if (truth) printf("  vs %s: AUPRC %.4f; at the best F1 precision %.3f, recall %.3f\n", truth, r[0], r[1], r[2]);
        printf("wrote %s and %zu STAR files in %s/\n", topaz, outs.n, outdir);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "micrographs", (double)mics.n);
            cJSON_AddNumberToObject(js, "picks", (double)co.n);
            cJSON_AddNumberToObject(js, "seconds", seconds);
            if (truth) json_auprc(js, r, &t);
            cJSON *o = cJSON_AddObjectToObject(js, "outputs");
            cJSON_AddStringToObject(o, "topaz", topaz);
            cJSON *a = cJSON_AddArrayToObject(o, "star");
            for (size_t k = 0; k < outs.n; k++) cJSON_AddItemToArray(a, cJSON_CreateString(outs.v[k]));
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_picker_destroy(pk);
    ew_coords_free(&co);
    truth_free(&t);
    cli_paths_free(&mics), cli_paths_free(&outs);
    return st == EW_OK ? 0 : ew_cli_fail();
}

int cmd_em_pick_eval(int argc, char **argv)
{
    int json = 0, exit_now = 0, npos = 0;
    char **pos;
    double radius = 10;
    ew_opt_t opts[] = {
        {"radius", 'r', EW_OPT_DOUBLE, &radius, "eval", "a pick matches a true centre within this distance, pixels", NULL, 0, 0, 1e5},
        {0},
    };
    ew_cmd_info_t info = {
        "ewald em pick eval PICKS.txt TRUTH.star [options]",
        "Average precision (area under the precision-recall curve, as Topaz computes it) of scored picks (Topaz "
        "TSV: image_name, x_coord, y_coord, score) against true centres (STAR: rlnMicrographName, "
        "rlnCoordinateX/Y). Micrographs are matched by name without folder and extension; picks are taken in "
        "decreasing score and matched to the nearest unmatched true centre within --radius.",
        "picks, micrographs, true_particles, auprc, best_precision, best_recall, best_f1",
        2, 2};
    if (ew_cli_parse(argc, argv, &info, opts, &json, &pos, &npos, &exit_now) != EW_OK) return ew_cli_fail();
    if (exit_now) return 0;
    ew_coords_t co;
    ew_coords_init(&co);
    truth_t t = {0};
    double r[3] = {0, 0, 0};
    ew_status_t st = ew_coords_read_topaz(pos[0], &co);
    if (st == EW_OK) st = truth_read_star(&t, pos[1], NULL);
    if (st == EW_OK) st = auprc(&co, &t, radius, r);
    if (st == EW_OK) {
        printf("%zu picks on %zu micrographs vs %zu true particles (radius %g px): AUPRC %.4f; at the best F1 "
               "precision %.3f, recall %.3f\n", co.n, t.n, t.total, radius, r[0], r[1], r[2]);
        if (json) {
            cJSON *js = cJSON_CreateObject();
            cJSON_AddNumberToObject(js, "picks", (double)co.n);
            cJSON_AddNumberToObject(js, "micrographs", (double)t.n);
            json_auprc(js, r, &t);
            ew_cli_json_print(js);
            cJSON_Delete(js);
        }
    }
    ew_coords_free(&co);
    truth_free(&t);
    return st == EW_OK ? 0 : ew_cli_fail();
}
