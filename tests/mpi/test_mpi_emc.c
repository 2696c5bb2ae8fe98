/* MPI test of src/recon/emc (run under mpirun -np 2 by `make check-mpi`):
 * the patterns split over the ranks (one all-reduce per iteration) give the
 * same model, scale factors and best rotations as one rank running all of
 * them alone (config.no_mpi), to float tolerance. */
#include <mpi.h>

#include "testutil.h"

#include "recon/emc.h"

/* A small, deterministic data set: a smooth positive volume sliced on a flat
 * detector at random rotations, Poisson photons (same on every rank). */
static void make_data(ew_emc_sparse_t *sp, float **s_out, size_t *npix_out, size_t N)
{
    const int W = 14;
    size_t npix = (size_t)W * W;
    float *s = malloc(npix * 3 * sizeof *s);
    for (int iy = 0; iy < W; iy++)
        for (int ix = 0; ix < W; ix++) {
            double x = ix - (W - 1) / 2.0, y = iy - (W - 1) / 2.0, D = 100, r = sqrt(x * x + y * y + D * D);
            float *o = s + 3 * ((size_t)iy * W + ix);
            o[0] = (float)(x / r), o[1] = (float)(y / r), o[2] = (float)(D / r - 1);
        }
    float *fr = malloc(N * npix * sizeof *fr);
    for (size_t d = 0; d < N; d++) {
        ew_rng_t r;
        ew_rng_init(&r, 3, d);
        ew_quat_t q = ew_quat_random(&r);
        double R[9];
        ew_quat_to_mat(q, R);
        for (size_t p = 0; p < npix; p++) {
            const float *v = s + 3 * p;
            double u[3];
            for (int k = 0; k < 3; k++) u[k] = (R[k] * v[0] + R[3 + k] * v[1] + R[6 + k] * v[2]) * 100;
            double I = 0.05 + exp(-((u[0] - 3) * (u[0] - 3) + u[1] * u[1] + (u[2] - 1) * (u[2] - 1)) / 4) +
                       exp(-((u[0] + 3) * (u[0] + 3) + u[1] * u[1] + (u[2] + 1) * (u[2] + 1)) / 4) +
                       0.7 * exp(-(u[0] * u[0] + (u[1] - 4) * (u[1] - 4) + u[2] * u[2]) / 3) +
                       0.7 * exp(-(u[0] * u[0] + (u[1] + 4) * (u[1] + 4) + u[2] * u[2]) / 3);
            fr[d * npix + p] = (float)ew_rng_poisson(&r, 1.5 * I);
        }
    }
    assert_ok(ew_emc_sparse_from_dense(sp, fr, N, npix));
    free(fr);
    *s_out = s;
    *npix_out = npix;
}

static void test_mpi_matches_serial(void **state)
{
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const size_t N = 301; /* odd: unequal shares */
    ew_emc_sparse_t sp;
    float *s;
    size_t npix;
    make_data(&sp, &s, &npix, N);
    ew_rotgrid_t g;
    assert_ok(ew_rotgrid_600cell(2, &g));
    ew_emc_config_t cfg;
    ew_emc_config_default(&cfg);
    cfg.beta_start = 0.5, cfg.beta_factor = 2, cfg.beta_period = 2;
    ew_emc_pixels_t det = {npix, s, NULL, NULL};
    ew_emc_t *dist = NULL, *ser = NULL;
    assert_ok(ew_emc_create(&dist, &cfg, &det, &sp, &g));
    cfg.no_mpi = 1;
    assert_ok(ew_emc_create(&ser, &cfg, &det, &sp, &g));
    for (int it = 0; it < 4; it++) {
        ew_emc_stats_t a, b;
        assert_ok(ew_emc_iterate(dist, &a));
        assert_ok(ew_emc_iterate(ser, &b));
        assert_close(a.avg_loglik, b.avg_loglik, 1e-5, 1e-6);
        assert_close(a.mutual_info, b.mutual_info, 1e-4, 1e-6);
        assert_close(a.frac_confident, b.frac_confident, 0, 1e-12);
    }
    const ew_rvol_t *ma = ew_emc_model(dist), *mb = ew_emc_model(ser);
    size_t n3 = (size_t)ma->n * ma->n * ma->n;
    double mx = 0;
    for (size_t i = 0; i < n3; i++) mx = fmax(mx, mb->data[i]);
    for (size_t i = 0; i < n3; i++) assert_close(ma->data[i], mb->data[i], 1e-4, 1e-5 * mx);
    size_t same = 0;
    for (size_t d = 0; d < N; d++) {
        assert_close(ew_emc_scale(dist)[d], ew_emc_scale(ser)[d], 1e-4, 0);
        same += ew_emc_best_rot(dist)[d] == ew_emc_best_rot(ser)[d];
    }
    assert_true(same >= N - 2); /* ties broken by float noise are allowed, barely */
    if (rank == 0) printf("  %d ranks: model, scales and best rotations match the serial run (%zu/%zu)\n", size, same, N);
    /* rank 0 writes the checkpoint; every rank can read it back */
    const char *path = "/tmp/ewald_test_mpi_emc.h5";
    assert_ok(ew_emc_save(dist, path));
    MPI_Barrier(MPI_COMM_WORLD);
    int it = 0;
    assert_ok(ew_emc_checkpoint_info(path, &it, NULL, NULL));
    assert_int_equal(it, 4);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) remove(path);
    ew_emc_free(dist);
    ew_emc_free(ser);
    ew_rotgrid_free(&g);
    ew_emc_sparse_free(&sp);
    free(s);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    ew_log_set_level(EW_LOG_ERROR);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mpi_matches_serial)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return rc;
}
