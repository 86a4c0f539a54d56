#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

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

void ss_test_data_path(const char *file, char *buf, size_t len)
{
    const char *src = getenv("SS_SRCDIR");
    snprintf(buf, len, "%s/tests/data/%s", src ? src : ".", file);
}

static void *golden_read(
    const char *file, const char *name, hid_t mem_type, size_t elem, int64_t *shape, int *ndim)
{
    char path[4096];
    ss_test_data_path(file, path, sizeof(path));
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open golden file %s (regenerate with tests/golden/)", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "golden file %s has no dataset %s", path, name);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(sp);
    ck_assert_msg(nd >= 0 && nd <= 8, "dataset %s: rank %d", name, nd);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t n = 1;
    for (int i = 0; i < nd; i++) {
        shape[i] = (int64_t)dims[i];
        n *= dims[i];
    }
    *ndim = nd;
    void *buf = malloc((n ? n : 1) * elem);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_ge(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

float *ss_test_golden(const char *file, const char *name, int64_t *shape, int *ndim)
{
    return golden_read(file, name, H5T_NATIVE_FLOAT, sizeof(float), shape, ndim);
}

double *ss_test_golden_f64(const char *file, const char *name, int64_t *shape, int *ndim)
{
    return golden_read(file, name, H5T_NATIVE_DOUBLE, sizeof(double), shape, ndim);
}

double ss_test_golden_attr(const char *file, const char *attr)
{
    char path[4096];
    ss_test_data_path(file, path, sizeof(path));
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open golden file %s", path);
    // "group/name" names an attribute of /group.
    char obj[256] = ".";
    const char *slash = strrchr(attr, '/'), *name = attr;
    if (slash != NULL) {
        snprintf(obj, sizeof(obj), "%.*s", (int)(slash - attr), attr);
        name = slash + 1;
    }
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "golden file %s has no attribute %s", path, attr);
    double v = 0;
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_DOUBLE, &v), 0);
    H5Aclose(a);
    H5Fclose(f);
    return v;
}

double ss_test_fd(double (*f)(void *ctx), void *ctx, double *x, int64_t i, double h)
{
    double keep = x[i];
    x[i] = keep + h;
    double fp = f(ctx);
    x[i] = keep - h;
    double fm = f(ctx);
    x[i] = keep;
    return (fp - fm) / (2 * h);
}

void ss_test_tensor(
    ss_tensor_t *t, int ndim, const int64_t *shape, uint64_t seed, float lo, float hi)
{
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, ndim, shape, NULL, NULL), SS_OK);
    int64_t n = ss_tensor_numel(t);
    t->data = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    ck_assert_ptr_nonnull(t->data);
    if (seed != 0) {
        ss_test_fill(ss_tensor_f32(t), n, seed, lo, hi);
    }
}

double *ss_test_to_f64(const ss_tensor_t *t)
{
    int64_t n = ss_tensor_numel(t);
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(d);
    for (int64_t i = 0; i < n; i++) {
        d[i] = ss_tensor_f32(t)[i];
    }
    return d;
}

double *ss_test_dalloc(int64_t n)
{
    double *d = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    ck_assert_ptr_nonnull(d);
    return d;
}

double ss_test_err_f64(const float *a, const double *b, int64_t n, double atol, double rtol)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        worst = isnan(e) ? INFINITY : (e > worst ? e : worst);
    }
    return worst;
}

void ss_test_tmpdir_make(char *dir, size_t len, const char *tag)
{
    int n = snprintf(dir, len, "/tmp/ss_%s_XXXXXX", tag);
    ck_assert_msg(n > 0 && (size_t)n < len, "ss_test_tmpdir_make: buffer too short for %s", tag);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s failed", dir);
}

void ss_test_tmpdir_remove(const char *dir)
{
    char cmd[512];
    int n = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert(n > 0 && (size_t)n < sizeof(cmd));
    ck_assert_int_eq(system(cmd), 0);
}
