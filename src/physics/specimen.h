/* ewald physics: the specimen of a cryo-EM micrograph -- particle models,
 * their poses, positions and heights.
 *
 * Frames. The lab frame has x along the image columns, y along the rows
 * (both in A from the centre of pixel (0, 0)) and z along the beam axis,
 * positive towards the electron source ("up"); heights are measured from
 * the middle plane of the ice slab. A particle's rotation R maps model
 * (particle-frame) coordinates to the lab frame, x_lab = R x + centre
 * (geom.h's convention), and the image is the projection along z. This R
 * is exactly RELION's matrix A of (rlnAngleRot, rlnAngleTilt, rlnAnglePsi)
 * (geom.h: ew_euler_relion_to_mat): RELION projects a reference as
 * P(A applied to the map), i.e. image(x, y) = integral of map(A^T r) dz.
 *
 * Models are centred on their potential-weighted centroid (each atom
 * weighted by C f_e(0) occupancy), so the centroid of a particle's
 * projected potential is exactly its (x, y) centre.
 */
#ifndef EW_PHYSICS_SPECIMEN_H
#define EW_PHYSICS_SPECIMEN_H

#include <stddef.h>

#include "core/core.h"
#include "io/structure.h"
#include "physics/peng.h"

typedef struct {
    ew_peng_atoms_t pot;       /* potential Gaussians (V A^3), centred */
    ew_peng_atoms_t vol;       /* excluded-volume Gaussians (A^3), centred */
    double centre[3];          /* centroid removed from the file's coordinates, A */
    double radius;             /* largest atom distance from the centroid, A */
    double potential_integral; /* sum of C f_e(0) occupancy, V A^3 */
    double volume;             /* excluded volume, A^3 */
} ew_em_model_t;

/* Protein partial specific volume 0.73 cm^3/g in A^3 per Da. */
#define EW_PROTEIN_A3_PER_DA 1.2122

/* Prepare a structure (atoms with Z in 1..98; waters/hydrogens as the
 * caller selected) for projection: b_extra (A^2) is added to every B.
 * On error *m is left empty and the message names the structure's source
 * and the atom. */
ew_status_t ew_em_model_init(ew_em_model_t *m, const ew_structure_t *s, double b_extra);
void ew_em_model_free(ew_em_model_t *m);

typedef struct {
    int model;      /* index of the model (structure) */
    double x, y;    /* centre, A from the centre of pixel (0, 0) of the micrograph */
    double z;       /* height above the middle of the ice, A (towards the source) */
    double R[9];    /* particle -> lab rotation = RELION's A (row-major) */
} ew_particle_t;

typedef struct {
    double count_mean;      /* particles per micrograph */
    double count_sd;        /* > 0: count ~ round(N(mean, sd)) per micrograph (GenEM), clamped >= 0 */
    double min_gap;         /* extra clearance between particle surfaces, A (0) */
    int random_heights;     /* 1: z uniform in the ice slab (particle inside), 0: z = 0 */
    int max_tries;          /* placement attempts per particle (1000) */
    const double *model_weights; /* (n_models) relative frequencies, or NULL (equal) */
} ew_specimen_params_t;

void ew_specimen_params_default(ew_specimen_params_t *p);

/* Draw the particles of one micrograph of width x height A with ice of
 * thickness ice (A; 0 = no slab, heights 0): the count, then for each
 * particle a model, a uniformly random rotation (Shoemake) and a uniformly
 * random position whose whole disc (model radius) lies inside the field
 * and which is at least r_i + r_j + min_gap from every other particle
 * (random sequential adsorption). When a particle cannot be placed in
 * max_tries attempts the micrograph gets fewer particles (ew_warn says
 * how many). *out is allocated with ew_alloc_array (caller frees with
 * ew_free; NULL when *n_out is 0). Errors: EW_ERR_ARG for bad parameters. */
ew_status_t ew_specimen_place(const ew_specimen_params_t *p, const ew_em_model_t *models, size_t n_models,
                              double width, double height, double ice, ew_rng_t *r, ew_particle_t **out,
                              size_t *n_out);

#endif
