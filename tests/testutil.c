#include "testutil.h"

#include <math.h>
#include <stdlib.h>

#include "shardseg/rng.h"

int ss_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

double ss_test_max_rel_err(const float *a, const float *b, int64_t n, double atol, double rtol)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
        }
    }
    return worst;
}

void ss_test_fill(float *x, int64_t n, uint64_t seed, float lo, float hi)
{
    ss_rng_fill_uniform(ss_rng_make(seed, 77), 0, n, lo, hi, x, 1);
}
