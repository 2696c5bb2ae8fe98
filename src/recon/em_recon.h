/* ewald recon: cryo-EM 3D reconstruction by direct Fourier inversion
 * (ewald em reconstruct).
 *
 * Image formation inverted here (physics/specimen.h, physics/em_sim.h): a
 * particle with pose R (particle -> lab, = RELION's A of rlnAngleRot/Tilt/
 * Psi) gives the image img(x, y) = CTF * integral map(R^T r) dz, so by the
 * central-slice theorem its 2D transform is the slice of the map's 3D
 * transform through the origin, F_img(k) = CTF(k) F_map(R^T (kx, ky, 0)) /
 * apix-units (below). The CTF is cisTEM's sign (physics/ctf.h: ewald's
 * images and GenEM's are +CTF_cisTEM * projected phase).
 *
 * Insertion. Each image (box n, pixel apix) is zero-padded to N = pad n,
 * its origin moved to the particle centre (box centre n/2 minus the
 * shift, pixels: RELION's rlnOriginX/YAngst / apix) by a phase ramp, FFT'd
 * (FFTW, one plan per shape), and every frequency |k| < r_max of its half
 * plane is placed at k3 = R^T (kx, ky, 0) in a 3D half grid (N, N, N/2+1;
 * the Friedel mate of points with k3x < 0), spread by trilinear weights w:
 *     num(v) += w CTF(k) F_img(k),   den(v) += w CTF(k)^2
 * (sums in double). OpenMP over images with per-thread grids reduced in
 * thread order (deterministic for a given thread count).
 *
 * Finishing. The kx = 0 plane is made Hermitian (num(v) + conj num(-v)),
 * F = num / (den + tau) (Wiener-style: tau = 1 / SSNR of one image), the
 * inverse 3D FFT is taken, the central n^3 cropped and divided by the
 * gridding correction of trilinear interpolation, sinc^2(pi x / N) per
 * axis. Units: with images in V A (projected potential) the map is in V
 * (the image values divided by apix; the DC term is not inserted, so maps
 * have mean ~0).
 *
 * Half maps. ew_em_reconstruct splits the particles into two random halves
 * (RNG stream per particle), reconstructs each, computes their FSC
 * (eval/fsc.h) and the 0.143 resolution, and reconstructs the full map
 * with a per-shell tau from the half-map FSC (RELION's approach: the full
 * map's SSNR = 2 FSC / (1 - FSC), tau_shell = mean den / SSNR) or the
 * constant tau of the configuration.
 */
#ifndef EW_RECON_EM_RECON_H
#define EW_RECON_EM_RECON_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "eval/fsc.h"
#include "physics/ctf.h"
#include "physics/peng.h"

typedef struct {
    int box;           /* particle box n, pixels (even, >= 8) */
    double pixel;      /* A (1.0) */
    int pad;           /* Fourier padding factor, 1..3 (2) */
    double tau;        /* Wiener constant added to the CTF^2 sum; < 0: per shell from the half-map FSC
                          (ew_em_reconstruct only; the half maps then use |tau| * 1e-3) (-1) */
    double max_res;    /* A: frequencies finer than this are not inserted; 0 = Nyquist (0) */
    int use_ctf;       /* 1: images carry the CTF of their view (1); 0: CTF = 1 */
    double fsc_shell;  /* FSC shell width, voxels (1) */
    uint64_t seed;     /* half-set split (0) */
} ew_emrec_config_t;

/* Defaults as marked; box must be set by the caller. */
void ew_emrec_config_default(ew_emrec_config_t *c);

/* One particle's view: pose, centre shift and CTF. */
typedef struct {
    double R[9];          /* particle -> lab = RELION's A (row-major) */
    double shift[2];      /* rlnOriginX/YAngst / pixel: particle centre = (n/2 - shift) pixels */
    ew_ctf_params_t ctf;  /* this particle's CTF (defocus at its height) */
} ew_em_view_t;

/* A Fourier accumulation grid. */
typedef struct ew_emrec ew_emrec_t;

/* Make an empty grid for cfg (checked: EW_ERR_ARG naming the field) and
 * the FFTW plans. On error *rec is NULL. */
ew_status_t ew_emrec_create(const ew_emrec_config_t *cfg, ew_emrec_t **rec);
void ew_emrec_destroy(ew_emrec_t *rec);
/* Insert the images imgs (count x n x n, row-major) with views v where
 * select is NULL or select[i] != 0. OpenMP over images. Not thread-safe on
 * the same rec. Errors: EW_ERR_NOMEM. */
ew_status_t ew_emrec_insert(ew_emrec_t *rec, const float *imgs, const ew_em_view_t *v, size_t count,
                            const uint8_t *select);
/* Add the sums of src into dst (same configuration). */
void ew_emrec_add(ew_emrec_t *dst, const ew_emrec_t *src);
/* The map (n^3, (z, y, x), centre voxel n/2) from the sums with the
 * constant tau (>= 0), or with a per-shell tau (tau_shell[j], j < nshell,
 * shells of width 1 voxel of the PADDED grid, |k| rounded; NULL: constant).
 * The grid is not changed. Errors: EW_ERR_NOMEM. */
ew_status_t ew_emrec_finish(const ew_emrec_t *rec, double tau, const double *tau_shell, int nshell, float *map);
/* Mean den over the shells of the padded grid (out: N/2 + 1 values). */
void ew_emrec_shell_den(const ew_emrec_t *rec, double *out);
/* Images inserted so far. */
size_t ew_emrec_count(const ew_emrec_t *rec);

/* Result of a reconstruction. */
typedef struct {
    int n;                 /* box */
    double pixel;          /* A */
    float *map;            /* (n^3) full map */
    float *half[2];        /* (n^3) half maps */
    size_t n_half[2];      /* particles in each half */
    ew_shell_curve_t fsc;  /* half-map FSC */
    double res_0143;       /* A, FSC = 0.143 (2 pixel when it never falls below) */
    double seconds;
} ew_em_recon_t;

/* Reconstruct count particles imgs (count x n x n) with views v: random
 * halves, half maps, FSC and resolution, full map. On error *out is left
 * empty and the message names the argument. Free with ew_em_recon_free. */
ew_status_t ew_em_reconstruct(const ew_emrec_config_t *cfg, const float *imgs, const ew_em_view_t *v, size_t count,
                              ew_em_recon_t *out);
void ew_em_recon_free(ew_em_recon_t *r);

/* The 3D potential (V) of atoms (peng.h; coordinates in A about the centre
 * voxel n/2 of every axis) averaged over each voxel of an n^3 grid of
 * spacing apix: the 3D Gaussians amp (k^2/pi)^(3/2) exp(-k^2 r^2), whose
 * projection along any axis is what ew_peng_project draws, integrated
 * exactly over the voxel (products of erf differences). The ground truth
 * for FSC against the simulator's particles. */
void ew_em_potential_map(const ew_peng_atoms_t *atoms, int n, double apix, float *map);

/* Particle images and views from a RELION particles STAR file (the
 * simulator's particles.star: rlnImageName "k@stack.mrcs" relative to the
 * STAR file's folder, rlnAngleRot/Tilt/Psi, rlnOriginX/YAngst (0 when
 * absent), rlnDefocusU/V, rlnDefocusAngle, rlnPhaseShift, rlnCtfBfactor,
 * and rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast,
 * rlnImagePixelSize from data_optics (first optics group)). *imgs (count x
 * box x box) and *views are allocated with ew_alloc_array (caller frees
 * with ew_free). On error nothing is allocated and the message names the
 * file, the column and the row. */
ew_status_t ew_em_particles_read(const char *star_path, float **imgs, ew_em_view_t **views, size_t *count,
                                 int *box, double *pixel);

#endif
