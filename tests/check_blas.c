#include <stdlib.h>

#include <omp.h>

#include "shardseg/blas.h"

#include "testutil.h"

// Naive double-precision product of the row-major operands, as the reference.
static void ref_gemm(int ta,
                     int tb,
                     int m,
                     int n,
                     int k,
                     const float *a,
                     int lda,
                     const float *b,
                     int ldb,
                     double *c)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
            }
            c[i * n + j] = s;
        }
    }
}

START_TEST(test_gemm_matches_reference)
{
    // Odd sizes, all four transpose combinations, padded leading dimensions, alpha and beta.
    static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {37, 3, 64}, {130, 67, 31}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        int pad = 3, lda = (m > k ? m : k) + pad, ldb = (n > k ? n : k) + pad, ldc = n + pad;
        float *a = malloc(sizeof(float) * (size_t)lda * (size_t)(m > k ? m : k));
        float *b = malloc(sizeof(float) * (size_t)ldb * (size_t)(n > k ? n : k));
        float *c = malloc(sizeof(float) * (size_t)ldc * (size_t)m);
        double *r = malloc(sizeof(double) * (size_t)(m * n));
        ss_test_fill(a, (int64_t)lda * (m > k ? m : k), 1, -1, 1);
        ss_test_fill(b, (int64_t)ldb * (n > k ? n : k), 2, -1, 1);
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (int threads = 1; threads <= 2; threads++) {
                    ss_test_fill(c, (int64_t)ldc * m, 3, -1, 1);
                    float *c0 = malloc(sizeof(float) * (size_t)ldc * (size_t)m);
                    for (int i = 0; i < ldc * m; i++) {
                        c0[i] = c[i];
                    }
                    ref_gemm(ta, tb, m, n, k, a, lda, b, ldb, r);
                    ss_exec_t ex = {threads, NULL, 0, NULL};
                    ss_gemm(ta ? SS_TRANS : SS_NO_TRANS, tb ? SS_TRANS : SS_NO_TRANS, m, n, k, 0.5f,
                            a, lda, b, ldb, 2.0f, c, ldc, &ex);
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double want = 0.5 * r[i * n + j] + 2.0 * c0[i * ldc + j];
                            ck_assert_double_eq_tol(c[i * ldc + j], want, 1e-5 * (1 + k));
                        }
                        for (int j = n; j < ldc; j++) {
                            ck_assert_float_eq(c[i * ldc + j], c0[i * ldc + j]); // padding kept
                        }
                    }
                    free(c0);
                }
            }
        }
        free(a);
        free(b);
        free(c);
        free(r);
    }
}
END_TEST

START_TEST(test_gemm_restores_thread_setting)
{
    int before = omp_get_max_threads();
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4];
    ss_exec_t ex = {1, NULL, 0, NULL};
    ss_gemm(SS_NO_TRANS, SS_NO_TRANS, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2, &ex);
    ck_assert_int_eq(omp_get_max_threads(), before);
    ck_assert_float_eq(c[3], 4.0f);
}
END_TEST

START_TEST(test_serial_inside_parallel_region)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 2, 3, 4, 5, 6};
    float c[2][4];
#pragma omp parallel for num_threads(2) default(none) shared(a, b, c)
    for (int t = 0; t < 2; t++) {
        ss_gemm_serial(SS_NO_TRANS, SS_TRANS, 2, 2, 3, 1.0f, a, 3, b, 3, 0.0f, c[t], 2);
    }
    for (int t = 0; t < 2; t++) {
        ck_assert_float_eq(c[t][0], 14.0f);
        ck_assert_float_eq(c[t][1], 32.0f);
        ck_assert_float_eq(c[t][3], 77.0f);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("tc_ss_gemm");
    tcase_add_test(tc, test_gemm_matches_reference);
    tcase_add_test(tc, test_gemm_restores_thread_setting);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_gemm_serial");
    tcase_add_test(tc, test_serial_inside_parallel_region);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
