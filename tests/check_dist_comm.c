// MPI smoke test: proves the MPI build and launch path under `make check` (run by run-test.sh
// with SS_TEST_NP ranks, CK_FORK=no).
#include <stdlib.h>

#include "shardseg/comm.h"

#include "testutil.h"

static ss_comm_t *g_world;

START_TEST(test_world_has_ranks)
{
    int size = ss_comm_size(g_world);
    int rank = ss_comm_rank(g_world);
    ck_assert_int_ge(size, 1);
    ck_assert_int_ge(rank, 0);
    ck_assert_int_lt(rank, size);
    const char *np = getenv("SS_TEST_NP");
    ck_assert_int_eq(size, np ? atoi(np) : 2);
}
END_TEST

START_TEST(test_allreduce_and_bcast)
{
    ss_error_t err;
    int size = ss_comm_size(g_world);
    int rank = ss_comm_rank(g_world);
    double v[3] = {1.0, (double)rank, (double)(rank * rank)};
    ck_assert_int_eq(ss_comm_allreduce_sum_f64(g_world, v, 3, &err), SS_OK);
    ck_assert_double_eq(v[0], size);
    ck_assert_double_eq(v[1], size * (size - 1) / 2.0);
    float f = 0.5f;
    ck_assert_int_eq(ss_comm_allreduce_sum_f32(g_world, &f, 1, &err), SS_OK);
    ck_assert_float_eq(f, 0.5f * (float)size);
    double m = (double)rank;
    ck_assert_int_eq(ss_comm_allreduce_max_f64(g_world, &m, &err), SS_OK);
    ck_assert_double_eq(m, size - 1);
    int token = rank == 0 ? 4242 : -1;
    ck_assert_int_eq(ss_comm_bcast(g_world, &token, sizeof(token), 0, &err), SS_OK);
    ck_assert_int_eq(token, 4242);
    ck_assert_int_eq(ss_comm_barrier(g_world, &err), SS_OK);
}
END_TEST

START_TEST(test_self_needs_no_mpi)
{
    ss_comm_t *self = ss_comm_self();
    ck_assert_int_eq(ss_comm_size(self), 1);
    double v = 3;
    ck_assert_int_eq(ss_comm_allreduce_sum_f64(self, &v, 1, NULL), SS_OK);
    ck_assert_double_eq(v, 3);
}
END_TEST

int main(int argc, char **argv)
{
    ss_error_t err;
    if (ss_dist_init(&argc, &argv, &g_world, &err) != SS_OK) {
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("dist_comm");
    TCase *tc = tcase_create("tc_ss_comm");
    tcase_add_test(tc, test_world_has_ranks);
    tcase_add_test(tc, test_allreduce_and_bcast);
    tcase_add_test(tc, test_self_needs_no_mpi);
    suite_add_tcase(s, tc);
    int rc = ss_test_run(s);
    // Every rank must agree on the outcome, or one rank's failure would be hidden by another's
    // pass.
    double failed = rc != 0;
    ss_comm_allreduce_sum_f64(g_world, &failed, 1, &err);
    ss_dist_finalize();
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
