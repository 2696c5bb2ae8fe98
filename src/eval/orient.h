/* ewald eval: orientation error of predicted against true rotations.
 *
 * Conventions (geom.h): R maps particle -> lab. A reconstruction is only
 * defined up to a rotation of its own (particle) frame: if its frame
 * differs from the truth's by a constant rotation G, i.e. V_rec(u) =
 * V_true(G u), then the pattern taken at R_true is explained by
 * R_pred = R_true G (RIGHT multiplication; V_rec(R_pred^T s) =
 * V_true(G G^T R_true^T s)). So the error of pattern i is the geodesic
 * angle between R_pred_i and R_true_i G, after the G that best fits all
 * patterns, which makes a prediction off by one constant rotation score 0.
 *
 * Hand. For Friedel-symmetric intensities on a flat Ewald sphere (s_z = 0
 * on the detector) the mirror image of the object explains the data
 * equally: with M = diag(1, 1, -1) (mirror through the detector plane),
 * V'(u) = V(M u) and R' = M R M give V'(R'^T s) = V(R^T M s) = V(R^T s).
 * So the mirror solution has R_pred_i = M R_true_i M G; both hands are
 * tried (unless switched off) and the better one (smaller median) is
 * reported. In quaternions M R(w,x,y,z) M = R(w,-x,-y,z).
 *
 * In-plane twin (option, off by default). A centrosymmetric pattern on a
 * flat detector, I(s) = I(-s) with s in the detector plane, is unchanged
 * by turning the detector by 180 degrees about the beam: the patterns at R
 * and Rz(pi) R are identical, so each pattern's orientation is only
 * defined up to that twin. With the option, each pattern's error is the
 * smaller over the two twins (and G is fitted with the chosen twins). It is
 * off by default because curved Ewald spheres, absorption or a
 * non-centrosymmetric detector response break the symmetry, and because it
 * halves the space in which errors are measured (it can hide real errors).
 *
 * Fit of G. G is first the quaternion mean (Markley et al. 2007: principal
 * eigenvector of sum d d^T, insensitive to the sign of each d) of
 * d_i = q_true_i^* q_pred_i, then refined to the geometric median on SO(3)
 * (Weiszfeld iterations in the tangent space, minimising the sum of
 * angles), which is robust to a fraction of wrong predictions, and
 * finally the quaternion mean of the inliers (error below 3x the median).
 */
#ifndef EW_EVAL_ORIENT_H
#define EW_EVAL_ORIENT_H

#include <stddef.h>

#include "geom/geom.h"

typedef struct {
    int try_mirror;    /* also try the mirror hand M R M (default 1) */
    int inplane_twin;  /* accept Rz(pi) R per pattern (default 0) */
    int nbins;         /* histogram bins over [0, 180] degrees (default 90) */
} ew_orient_opts_t;

/* Defaults as above. */
void ew_orient_opts_default(ew_orient_opts_t *o);

typedef struct {
    size_t n;                /* patterns */
    ew_quat_t g;             /* global rotation: R_pred ~ H(R_true) G */
    int hand;                /* 0: direct, 1: mirror (R_pred ~ M R_true M G) */
    double other_hand_median_deg; /* median of the losing hand; NAN if not tried */
    double median_deg, mean_deg, p90_deg, max_deg;
    double *err_deg;         /* (n) per-pattern error, degrees */
    unsigned char *twin;     /* (n) 1 where the Rz(pi) twin was closer; NULL without the option */
    int nbins;
    double bin_deg;          /* bin width: 180 / nbins */
    size_t *hist;            /* (nbins) counts of err_deg; the last bin includes 180 */
} ew_orient_err_t;

/* Orientation error of q_pred[i] against q_true[i], i < n (n >= 1), with
 * the options (NULL: defaults). Owns nothing of the inputs; out's arrays
 * are freed with ew_orient_err_free. On error out is left empty and the
 * message names the argument. */
ew_status_t ew_orient_error(const ew_quat_t *q_true, const ew_quat_t *q_pred, size_t n,
                            const ew_orient_opts_t *opts, ew_orient_err_t *out);

/* Free the arrays (e may be NULL); e is left empty. */
void ew_orient_err_free(ew_orient_err_t *e);

/* Weighted quaternion mean (w NULL: equal weights), sign-insensitive
 * (principal eigenvector of sum w q q^T); w >= 0 in the result. n >= 1. */
ew_quat_t ew_quat_mean(const ew_quat_t *q, const double *w, size_t n);

/* The mirror-hand rotation M R(q) M with M = diag(1, 1, -1). */
ew_quat_t ew_quat_mirror_z(ew_quat_t q);

#endif
