// testutil.h: helpers shared by the Check suites.
#ifndef SS_TESTUTIL_H
#define SS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "shardseg/tensor.h"

// Runs the suite, prints Check's summary and returns the process exit status (0 if all passed).
int ss_test_run(Suite *s);

// Largest |a[i] - b[i]| / (atol + rtol * |b[i]|) over n elements: <= 1 means within tolerance.
double ss_test_max_rel_err(const float *a, const float *b, int64_t n, double atol, double rtol);

// Deterministic pseudo-random floats in [lo, hi) from (seed, stream) for fixtures.
void ss_test_fill(float *x, int64_t n, uint64_t seed, float lo, float hi);

// A contiguous float tensor of the given shape with calloc'd data (free t->data), filled from
// (seed, lo, hi) by ss_test_fill unless seed is 0 (zeros).
void ss_test_tensor(
    ss_tensor_t *t, int ndim, const int64_t *shape, uint64_t seed, float lo, float hi);
// A malloc'd double copy of t's elements (t contiguous), for the double-precision references.
double *ss_test_to_f64(const ss_tensor_t *t);
// n zeroed doubles (calloc; at least one element).
double *ss_test_dalloc(int64_t n);
// Largest |a[i] - b[i]| / (atol + rtol * |b[i]|) of float results against a double reference:
// <= 1 means within tolerance; NaN counts as infinitely wrong.
double ss_test_err_f64(const float *a, const double *b, int64_t n, double atol, double rtol);

// Reads float dataset `name` of the HDF5 file tests/data/<file> (under SS_SRCDIR) into a
// malloc'd buffer (caller frees). Fills shape (up to 8 dims) and *ndim. Dataset values of any
// float type are converted to float32. Returns NULL (after a Check failure message) if absent.
float *ss_test_golden(const char *file, const char *name, int64_t *shape, int *ndim);
// As ss_test_golden, converting to double.
double *ss_test_golden_f64(const char *file, const char *name, int64_t *shape, int *ndim);
// Reads a scalar attribute (int or float) of the root group of tests/data/<file>, or of a group
// when attr is "group/name".
double ss_test_golden_attr(const char *file, const char *attr);
// Path of tests/data/<file> in the source tree.
void ss_test_data_path(const char *file, char *buf, size_t len);

// Makes a fresh directory /tmp/ss_<tag>_XXXXXX into dir (len >= 32 + strlen(tag)); a Check
// failure if it cannot. ss_test_tmpdir_remove deletes it with everything inside.
void ss_test_tmpdir_make(char *dir, size_t len, const char *tag);
void ss_test_tmpdir_remove(const char *dir);

// Central finite difference of a double-precision scalar function with respect to x[i]:
// (f(x + h e_i) - f(x - h e_i)) / 2h, restoring x[i]. f receives ctx.
double ss_test_fd(double (*f)(void *ctx), void *ctx, double *x, int64_t i, double h);

#endif
