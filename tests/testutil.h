// testutil.h: helpers shared by the Check suites.
#ifndef SS_TESTUTIL_H
#define SS_TESTUTIL_H

#include <check.h>
#include <stdint.h>

// Runs the suite, prints Check's summary and returns the process exit status (0 if all passed).
int ss_test_run(Suite *s);

// Largest |a[i] - b[i]| / (atol + rtol * |b[i]|) over n elements: <= 1 means within tolerance.
double ss_test_max_rel_err(const float *a, const float *b, int64_t n, double atol, double rtol);

// Deterministic pseudo-random floats in [lo, hi) from (seed, stream) for fixtures.
void ss_test_fill(float *x, int64_t n, uint64_t seed, float lo, float hi);

#endif
