// check_metrics.c: region masks and HD95 against hand-computed cases (offset cubes, anisotropic
// spacing, single voxels, empty masks) and against a brute-force surface distance.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/metrics.h"

#include "testutil.h"

static void cube(uint8_t *m, const int64_t d[3], int64_t i0, int64_t j0, int64_t k0, int64_t s)
{
    memset(m, 0, (size_t)(d[0] * d[1] * d[2]));
    for (int64_t i = i0; i < i0 + s; i++) {
        for (int64_t j = j0; j < j0 + s; j++) {
            for (int64_t k = k0; k < k0 + s; k++) {
                m[(i * d[1] + j) * d[2] + k] = 1;
            }
        }
    }
}

START_TEST(tc_regions)
{
    float lab[5] = {0, 1, 2, 3, 4};
    uint8_t r[15];
    ss_regions_from_labels(r, lab, 5, SS_LABELS_BRATS);
    uint8_t want[15] = {0, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1};
    ck_assert_mem_eq(r, want, 15);
    ss_regions_from_labels(r, lab, 4, SS_LABELS_BRATS2023);
    uint8_t w23[12] = {0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1};
    ck_assert_mem_eq(r, w23, 12);
    ss_regions_from_labels(r, lab, 4, SS_LABELS_MSD);
    uint8_t wmsd[12] = {0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1};
    ck_assert_mem_eq(r, wmsd, 12);
}
END_TEST

// Brute force: the same definition by nested loops over surface voxels.
static double brute(const uint8_t *a, const uint8_t *b, const int64_t d[3], const double sp[3])
{
    int64_t n = d[0] * d[1] * d[2];
    double *da = malloc((size_t)n * sizeof(double)), *db = malloc((size_t)n * sizeof(double));
    int64_t na = 0, nb = 0;
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *x = pass ? b : a, *y = pass ? a : b;
        double *out = pass ? db : da;
        int64_t *cnt = pass ? &nb : &na;
        for (int64_t v = 0; v < n; v++) {
            int64_t i = v / (d[1] * d[2]), j = v / d[2] % d[1], k = v % d[2];
            int surf_x = x[v] && !(i > 0 && i < d[0] - 1 && j > 0 && j < d[1] - 1 && k > 0 &&
                                   k < d[2] - 1 && x[v - d[1] * d[2]] && x[v + d[1] * d[2]] &&
                                   x[v - d[2]] && x[v + d[2]] && x[v - 1] && x[v + 1]);
            if (!surf_x) {
                continue;
            }
            double best = INFINITY;
            for (int64_t w = 0; w < n; w++) {
                int64_t p = w / (d[1] * d[2]), q = w / d[2] % d[1], r = w % d[2];
                int surf_y = y[w] && !(p > 0 && p < d[0] - 1 && q > 0 && q < d[1] - 1 && r > 0 &&
                                       r < d[2] - 1 && y[w - d[1] * d[2]] && y[w + d[1] * d[2]] &&
                                       y[w - d[2]] && y[w + d[2]] && y[w - 1] && y[w + 1]);
                if (surf_y) {
                    double e = pow((double)(i - p) * sp[0], 2) + pow((double)(j - q) * sp[1], 2) +
                               pow((double)(k - r) * sp[2], 2);
                    best = e < best ? e : best;
                }
            }
            out[(*cnt)++] = sqrt(best);
        }
    }
    double res[2];
    for (int pass = 0; pass < 2; pass++) {
        double *x = pass ? db : da;
        int64_t c = pass ? nb : na;
        for (int64_t s = 1; s < c; s++) { // insertion sort: small sets
            double t = x[s];
            int64_t u = s - 1;
            while (u >= 0 && x[u] > t) {
                x[u + 1] = x[u];
                u--;
            }
            x[u + 1] = t;
        }
        double rr = 0.95 * (double)(c - 1);
        int64_t lo = (int64_t)floor(rr), hi = lo + 1 < c ? lo + 1 : lo;
        res[pass] = x[lo] + (rr - (double)lo) * (x[hi] - x[lo]);
    }
    free(da);
    free(db);
    return res[0] > res[1] ? res[0] : res[1];
}

START_TEST(tc_hd95_cubes)
{
    int64_t d[3] = {12, 11, 10};
    uint8_t *a = malloc(1320), *b = malloc(1320);
    double sp1[3] = {1, 1, 1}, spa[3] = {1.0, 0.5, 2.0}, hd;
    ss_error_t err;
    // Identical masks: 0.
    cube(a, d, 2, 2, 2, 5);
    ck_assert_int_eq(ss_hd95(&hd, a, a, d, sp1, 2, &err), SS_OK);
    ck_assert_double_eq(hd, 0.0);
    // A cube shifted by 3 voxels along i: the far faces are 3 apart; by hand the 95th percentile
    // of the surface distances is 3 (most surface voxels of the shifted faces are exactly 3 away).
    cube(b, d, 5, 2, 2, 5);
    ck_assert_int_eq(ss_hd95(&hd, a, b, d, sp1, 2, &err), SS_OK);
    ck_assert_double_eq_tol(hd, 3.0, 1e-12);
    // Anisotropic spacing: the same shift along i is 3 mm with 1 mm voxels along i, along k 6 mm.
    ck_assert_int_eq(ss_hd95(&hd, a, b, d, spa, 1, &err), SS_OK);
    ck_assert_double_eq_tol(hd, brute(a, b, d, spa), 1e-9);
    cube(b, d, 2, 2, 5, 5);
    ck_assert_int_eq(ss_hd95(&hd, a, b, d, spa, 2, &err), SS_OK);
    ck_assert_double_eq_tol(hd, 6.0, 1e-12);
    // Single voxels: the Euclidean distance.
    memset(a, 0, 1320), memset(b, 0, 1320);
    a[(1 * 11 + 2) * 10 + 3] = 1;
    b[(4 * 11 + 6) * 10 + 3] = 1;
    ck_assert_int_eq(ss_hd95(&hd, a, b, d, sp1, 2, &err), SS_OK);
    ck_assert_double_eq_tol(hd, 5.0, 1e-12);
    // Empty conventions.
    memset(b, 0, 1320);
    ck_assert_int_eq(ss_hd95(&hd, a, b, d, sp1, 2, &err), SS_OK);
    ck_assert_double_eq(hd, SS_HD95_EMPTY);
    memset(a, 0, 1320);
    ck_assert_int_eq(ss_hd95(&hd, a, b, d, sp1, 2, &err), SS_OK);
    ck_assert_double_eq(hd, 0.0);
    free(a);
    free(b);
}
END_TEST

// Random blobs: the transform against brute force, 1 and 2 threads.
START_TEST(tc_hd95_random)
{
    int64_t d[3] = {9, 13, 7};
    int64_t n = d[0] * d[1] * d[2];
    uint8_t *a = malloc((size_t)n), *b = malloc((size_t)n);
    float *u = malloc((size_t)(2 * n) * sizeof(float));
    ss_test_fill(u, 2 * n, 77, 0.0f, 1.0f);
    for (int64_t v = 0; v < n; v++) {
        a[v] = u[v] < 0.3f;
        b[v] = u[n + v] < 0.2f;
    }
    double sp[3] = {1.2, 0.7, 2.5}, h1, h2;
    ss_error_t err;
    ck_assert_int_eq(ss_hd95(&h1, a, b, d, sp, 1, &err), SS_OK);
    ck_assert_int_eq(ss_hd95(&h2, a, b, d, sp, 2, &err), SS_OK);
    ck_assert_double_eq(h1, h2);
    ck_assert_double_eq_tol(h1, brute(a, b, d, sp), 1e-9);
    free(a);
    free(b);
    free(u);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, tc_regions);
    tcase_add_test(tc, tc_hd95_cubes);
    tcase_add_test(tc, tc_hd95_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(metrics_suite());
}
