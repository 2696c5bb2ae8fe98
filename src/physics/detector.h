/* ewald physics: a flat pixel detector for X-ray diffraction.
 *
 * Lab frame: the beam travels along +z and hits the particle at the
 * origin; the detector plane is z = distance, its x axis along increasing
 * pixel column, its y axis along increasing row (images row-major, slow
 * axis y). Pixel (row, col) has its centre at
 *   x = (col - cx) * pixel, y = (row - cy) * pixel, z = D,
 * with (cx, cy) the beam centre in pixel units (default the detector's
 * middle, (nx - 1) / 2, (ny - 1) / 2). The scattering vector (s = 1/d, no
 * 2 pi, 1/Angstrom) of a pixel is on the Ewald sphere, curvature included:
 *   s = (k_out - k_in) / lambda,  k_out = r / |r|,  k_in = (0, 0, 1),
 * so |s| = 2 sin(theta) / lambda with 2 theta the scattering angle.
 *
 * Per pixel the detector also holds the exact solid angle of the pixel
 * (a rectangle seen from the origin), the polarization factor, their
 * product `corr`, and a mask: EW_MASK_GOOD (0), EW_MASK_NO_ORIENT (1:
 * recorded and merged but not used to find orientations, e.g. the
 * corners beyond the inscribed circle) and EW_MASK_BAD (2: beam stop,
 * gaps, dead pixels: no data).
 */
#ifndef EW_PHYSICS_DETECTOR_H
#define EW_PHYSICS_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

enum { EW_MASK_GOOD = 0, EW_MASK_NO_ORIENT = 1, EW_MASK_BAD = 2 };

typedef enum {
    EW_POL_LINEAR = 0, /* linear polarization along pol_angle_deg in the x-y plane (0: along x) */
    EW_POL_NONE = 1    /* unpolarized: (1 + cos^2 2theta) / 2 */
} ew_polarization_t;

typedef enum { EW_BAR_NONE = 0, EW_BAR_PX, EW_BAR_MX, EW_BAR_PY, EW_BAR_MY } ew_bar_dir_t;

typedef struct {
    int nx, ny;                 /* pixels per row (x) and rows (y) */
    double pixel_m;             /* square pixel side, metres */
    double distance_m;          /* particle -> detector plane, metres */
    double energy_ev;           /* photon energy, eV (lambda = 12398.42 / E Angstrom) */
    double cx, cy;              /* beam centre, pixels; NAN: the middle */
    ew_polarization_t polarization;
    double pol_angle_deg;       /* linear polarization direction, degrees from +x toward +y */
    double beamstop_radius_px;  /* disc of bad pixels around the beam centre (0: none) */
    ew_bar_dir_t beamstop_bar;  /* optional holder bar from the disc to one edge */
    double bar_width_px;        /* its full width, pixels */
    int gap_x_px, gap_y_px;     /* central gaps: a vertical band gap_x wide through cx, a
                                   horizontal band gap_y tall through cy (0: none) */
    double dead_fraction;       /* fraction of pixels marked dead at random (0: none) */
    uint64_t dead_seed;         /* seed for the dead pixels */
    double orient_radius_px;    /* pixels farther than this from the centre are NO_ORIENT
                                   (0: none; the corners of a square detector, say) */
} ew_detector_config_t;

/* The reference setup of the self-supervised XFEL paper (neurorient,
 * skopi): 128 x 128 pixels, 0.78125 mm, 0.2 m, 4600 eV, polarization
 * along x, no mask. */
ew_detector_config_t ew_detector_config_reference(void);
/* Dragonfly's default geometry: 150 x 150 pixels of 0.512 mm at 300 mm,
 * lambda = 6.2 Angstrom (1999.7 eV), polarization along x, no mask. */
ew_detector_config_t ew_detector_config_dragonfly(void);

typedef struct {
    int nx, ny;
    size_t npix;              /* nx * ny */
    double wavelength_a;      /* Angstrom */
    double pixel_m, distance_m, cx, cy;
    float *s;                 /* (npix, 3) lab-frame s = 1/d, 1/Angstrom */
    float *solid_angle;       /* (npix) steradians */
    float *polarization;      /* (npix) 0..1 */
    float *corr;              /* (npix) polarization x solid angle, sr */
    uint8_t *mask;            /* (npix) EW_MASK_* */
    double s_max_edge;        /* largest |s| where the x or y axis through the beam centre
                                 meets the detector's outer edge, 1/Angstrom */
    double s_max_corner;      /* largest |s| at the detector's outer corners, 1/Angstrom
                                 (>= every pixel centre's |s|) */
    ew_detector_config_t cfg; /* the configuration it was built from */
} ew_detector_t;

/* Build a detector from a configuration. Errors (EW_ERR_ARG, naming the
 * field and value) on non-positive sizes, distance, pixel or energy, a
 * dead fraction outside [0, 1) or a pol_angle that is not finite. On
 * error *d is left empty. */
ew_status_t ew_detector_init(ew_detector_t *d, const ew_detector_config_t *cfg);

/* Recompute s, solid angle, polarization and corr for a beam centre moved
 * by (dx, dy) pixels (beam-position jitter) into caller arrays of npix
 * (s: 3 npix); the mask stays with the pixels. Any output may be NULL. */
void ew_detector_geometry_shifted(const ew_detector_t *d, double dx, double dy, float *s, float *solid_angle,
                                  float *polarization);

/* Free the arrays (d may be NULL); d is left empty. */
void ew_detector_free(ew_detector_t *d);

/* Count pixels with each mask code: counts[0..2]. */
void ew_detector_mask_counts(const ew_detector_t *d, size_t counts[3]);

/* A reciprocal-volume grid (slice.h) that holds every pixel of the
 * detector at any orientation, with all trilinear corners inside: n odd
 * (>= 5) and ds such that s_max_corner <= (n/2 - 2) ds (two voxels to spare,
 * room for a beam-centre jitter of ~0.4 pixel rms). If n_req > 0, n is
 * n_req (plus 1 if even; at least 7) and ds follows; otherwise ds is the s
 * step of one pixel at the beam centre (pixel / (distance lambda)) and n
 * follows. */
void ew_detector_volume_grid(const ew_detector_t *d, int n_req, int *n, double *ds);

#endif
