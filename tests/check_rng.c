#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/rng.h"
#include "shardseg/tensor.h"

#include "testutil.h"

enum { N = 10007 }; // prime, so rank splits are uneven

// Philox4x32-10 known-answer vectors from the Random123 distribution (kat_vectors), with counter
// = (index, stream) and key = seed split into 32-bit words as ss_rng_block does.
START_TEST(test_philox_known_answers)
{
    uint32_t out[4];
    ss_rng_block(ss_rng_make(0, 0), 0, out);
    ck_assert_uint_eq(out[0], 0x6627e8d5u);
    ck_assert_uint_eq(out[1], 0xe169c58du);
    ck_assert_uint_eq(out[2], 0xbc57ac4cu);
    ck_assert_uint_eq(out[3], 0x9b00dbd8u);
    ss_rng_block(ss_rng_make(0xffffffffffffffffull, 0xffffffffffffffffull), 0xffffffffffffffffull,
                 out);
    ck_assert_uint_eq(out[0], 0x408f276du);
    ck_assert_uint_eq(out[1], 0x41c83b0eu);
    ck_assert_uint_eq(out[2], 0xa20bc7c6u);
    ck_assert_uint_eq(out[3], 0x6d5451fdu);
    // counter = {243f6a88, 85a308d3, 13198a2e, 03707344}, key = {a4093822, 299f31d0}
    ss_rng_block(ss_rng_make(0x299f31d0a4093822ull, 0x0370734413198a2eull), 0x85a308d3243f6a88ull,
                 out);
    ck_assert_uint_eq(out[0], 0xd16cfe09u);
    ck_assert_uint_eq(out[1], 0x94fdccebu);
    ck_assert_uint_eq(out[2], 0x5001e420u);
    ck_assert_uint_eq(out[3], 0x24126ea1u);
}
END_TEST

typedef void (*fill_fn)(ss_rng_t, uint64_t, int64_t, float *, int);

static void fill_u(ss_rng_t r, uint64_t first, int64_t n, float *out, int threads)
{
    ss_rng_fill_uniform(r, first, n, -2, 3, out, threads);
}

static void fill_n(ss_rng_t r, uint64_t first, int64_t n, float *out, int threads)
{
    ss_rng_fill_normal(r, first, n, 0.5f, 2, out, threads);
}

static void fill_t(ss_rng_t r, uint64_t first, int64_t n, float *out, int threads)
{
    ss_rng_fill_trunc_normal(r, first, n, 0, 0.02f, -2, 2, out, threads);
}

// The same stream split over 1, 2 and 3 "ranks" (each filling its own range) and 1 or 2 threads
// must give the very same bits as one fill of the whole range.
START_TEST(test_split_invariance)
{
    fill_fn fills[] = {fill_u, fill_n, fill_t};
    float *whole = malloc(N * sizeof(float));
    float *parts = malloc(N * sizeof(float));
    ss_rng_t r = ss_rng_make(1234, 99);
    for (size_t f = 0; f < sizeof(fills) / sizeof(fills[0]); f++) {
        fills[f](r, 0, N, whole, 1);
        for (int ranks = 1; ranks <= 3; ranks++) {
            for (int threads = 1; threads <= 2; threads++) {
                memset(parts, 0, N * sizeof(float));
                for (int rank = 0; rank < ranks; rank++) {
                    int64_t start, len;
                    ss_split_range(N, ranks, rank, &start, &len);
                    fills[f](r, (uint64_t)start, len, parts + start, threads);
                }
                ck_assert_mem_eq(parts, whole, N * sizeof(float));
            }
        }
    }
    free(whole);
    free(parts);
}
END_TEST

START_TEST(test_streams_and_seeds_differ)
{
    ck_assert_uint_ne(ss_rng_u32(ss_rng_make(1, 0), 5), ss_rng_u32(ss_rng_make(2, 0), 5));
    ck_assert_uint_ne(ss_rng_u32(ss_rng_make(1, 0), 5), ss_rng_u32(ss_rng_make(1, 1), 5));
    uint64_t a[3] = {1, 2, 3}, b[3] = {1, 3, 2};
    ck_assert_uint_ne(ss_rng_stream(a, 3), ss_rng_stream(b, 3));
    ck_assert_uint_eq(ss_rng_stream(a, 3), ss_rng_stream(a, 3));
}
END_TEST

// Moments of 200k draws. The tolerances are ~5 standard errors, so a correct generator fails
// with probability well below 1e-5, while a wrong scale or offset fails for sure.
START_TEST(test_distributions)
{
    enum { M = 200000 };
    float *x = malloc(M * sizeof(float));
    ss_rng_t r = ss_rng_make(7, 3);

    ss_rng_fill_uniform(r, 0, M, 0, 1, x, 2);
    double s = 0, s2 = 0;
    for (int i = 0; i < M; i++) {
        ck_assert(x[i] >= 0 && x[i] < 1);
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    ck_assert_double_eq_tol(s / M, 0.5, 5 * sqrt(1.0 / 12 / M));
    ck_assert_double_eq_tol(s2 / M - (s / M) * (s / M), 1.0 / 12, 0.002);

    ss_rng_fill_normal(r, 0, M, 0, 1, x, 2);
    s = s2 = 0;
    double s4 = 0;
    for (int i = 0; i < M; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        s4 += (double)x[i] * x[i] * x[i] * x[i];
    }
    ck_assert_double_eq_tol(s / M, 0, 5 / sqrt(M));
    ck_assert_double_eq_tol(s2 / M, 1, 5 * sqrt(2.0 / M));
    ck_assert_double_eq_tol(s4 / M, 3, 0.1);

    // Truncated at +-2 sigma: variance 1 - 2*2*phi(2)/(Phi(2)-Phi(-2)) = 0.7737.
    ss_rng_fill_trunc_normal(r, 0, M, 0, 1, -2, 2, x, 2);
    s = s2 = 0;
    for (int i = 0; i < M; i++) {
        ck_assert(x[i] >= -2 && x[i] <= 2);
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    ck_assert_double_eq_tol(s / M, 0, 5 * sqrt(0.7737 / M));
    ck_assert_double_eq_tol(s2 / M, 0.7737, 0.01);

    int ones = 0;
    for (int i = 0; i < M; i++) {
        ones += ss_rng_bernoulli(r, (uint64_t)i, 0.3f);
    }
    ck_assert_double_eq_tol((double)ones / M, 0.3, 5 * sqrt(0.21 / M));

    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t v = ss_rng_below(r, (uint64_t)i, 7);
        ck_assert_uint_lt(v, 7);
        counts[v]++;
    }
    for (int k = 0; k < 7; k++) {
        ck_assert_int_lt(abs(counts[k] - 10000), 500);
    }
    free(x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("tc_ss_rng_block");
    tcase_add_test(tc, test_philox_known_answers);
    tcase_add_test(tc, test_streams_and_seeds_differ);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_rng_fill");
    tcase_add_test(tc, test_split_invariance);
    tcase_add_test(tc, test_distributions);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
