/* A synthetic test structure shared by the cryo-EM reconstruction, pose
 * and picker tests (header-only): n atoms (C, N, O, S in turn) filling a
 * lumpy, elongated ball of the given radius (Angstrom), so that its
 * projections have no symmetry; deterministic for a seed. */
#ifndef EW_TEST_BLOB_H
#define EW_TEST_BLOB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/structure.h"

static inline void blob_make(ew_structure_t *s, int n, double radius, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->n_atoms = (size_t)n;
    s->xyz = calloc((size_t)n * 3, sizeof(float));
    s->z = calloc((size_t)n, 1);
    s->occupancy = calloc((size_t)n, sizeof(float));
    s->b_factor = calloc((size_t)n, sizeof(float));
    ew_rng_t r;
    ew_rng_init(&r, seed, 0);
    static const uint8_t el[4] = {6, 7, 8, 16};
    for (int i = 0; i < n; i++) {
        double v[3], d2;
        do {
            for (int k = 0; k < 3; k++) v[k] = radius * (2 * ew_rng_uniform(&r) - 1);
            d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        } while (d2 > radius * radius);
        /* a lumpy elongated ball: more atoms on one side */
        if (v[0] < 0 && i % 3 == 0) v[0] = -v[0];
        s->xyz[3 * i] = (float)(v[0] * 1.4);
        s->xyz[3 * i + 1] = (float)(v[1]);
        s->xyz[3 * i + 2] = (float)(v[2] * 0.8);
        s->z[i] = el[i % 4];
        s->occupancy[i] = 1.0f;
        s->b_factor[i] = 10.0f;
    }
    snprintf(s->source, sizeof s->source, "blob");
}

static inline void blob_free(ew_structure_t *s)
{
    free(s->xyz);
    free(s->z);
    free(s->occupancy);
    free(s->b_factor);
}

#endif
