// Tests of pool3d: fast float kernels against the double reference (odd sizes, ties, NaN, empty
// outputs, generic windows), finite differences of the reference backward, PyTorch golden values,
// thread-count invariance, slab locality and argument validation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/pool3d.h"

#include "ref/pool3d_ref.h"
#include "testutil.h"

typedef struct {
    int64_t n, c, i, j, k, w[3];
} shape_t;

// Sizes 1, primes, odd extents (floor rule), empty outputs (I or J below the window), a row
// longer than the kernel's 256-voxel chunk, and generic windows.
static const shape_t SHAPES[] = {
    {1, 1, 1, 1, 1, {2, 2, 2}},   {1, 1, 2, 2, 2, {2, 2, 2}},    {2, 3, 5, 4, 7, {2, 2, 2}},
    {1, 2, 9, 13, 11, {2, 2, 2}}, {1, 1, 4, 3, 1025, {2, 2, 2}}, {3, 2, 6, 2, 3, {2, 2, 2}},
    {1, 2, 4, 1, 6, {2, 2, 2}},   {1, 2, 7, 3, 5, {3, 1, 2}},    {2, 1, 5, 5, 5, {1, 1, 1}},
    {1, 1, 9, 8, 10, {4, 4, 4}},  {1, 3, 1, 4, 4, {2, 2, 2}},
};
#define NSHAPES ((int)(sizeof(SHAPES) / sizeof(SHAPES[0])))

typedef struct {
    shape_t d;
    ss_pool3d_params_t p;
    ss_tensor_t x, y, dy, dx;
    uint8_t *am;
    int64_t nx, ny;
} fix_t;

static void make_tensor(ss_tensor_t *t, const int64_t *shape, uint64_t seed)
{
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, 5, shape, NULL, NULL), SS_OK);
    int64_t n = ss_tensor_numel(t);
    t->data = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    ck_assert_ptr_nonnull(t->data);
    if (seed != 0) {
        ss_test_fill(ss_tensor_f32(t), n, seed, -1.0f, 1.0f);
    }
}

// quant > 0 rounds x to multiples of 1/quant, which creates ties inside windows.
static void fix_make(fix_t *f, const shape_t *d, uint64_t seed, float quant)
{
    memset(f, 0, sizeof(*f));
    f->d = *d;
    memcpy(f->p.window, d->w, sizeof(d->w));
    int64_t xs[5] = {d->n, d->c, d->i, d->j, d->k};
    int64_t ys[5] = {d->n, d->c, d->i / d->w[0], d->j / d->w[1], d->k / d->w[2]};
    make_tensor(&f->x, xs, seed);
    make_tensor(&f->dx, xs, seed + 1); // garbage: backward must overwrite all of it
    make_tensor(&f->y, ys, 0);
    make_tensor(&f->dy, ys, seed + 2);
    f->nx = ss_tensor_numel(&f->x);
    f->ny = ss_tensor_numel(&f->y);
    f->am = malloc((size_t)f->ny + 1);
    ck_assert_ptr_nonnull(f->am);
    for (int64_t e = 0; quant > 0 && e < f->nx; e++) {
        ss_tensor_f32(&f->x)[e] = roundf(ss_tensor_f32(&f->x)[e] * quant) / quant;
    }
}

static void fix_free(fix_t *f)
{
    free(f->x.data);
    free(f->y.data);
    free(f->dy.data);
    free(f->dx.data);
    free(f->am);
}

static double *to_f64(const ss_tensor_t *t)
{
    int64_t n = ss_tensor_numel(t);
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(d);
    for (int64_t i = 0; i < n; i++) {
        d[i] = ss_tensor_f32(t)[i];
    }
    return d;
}

static ss_ref_pool3d_dims_t ref_dims(const shape_t *d)
{
    ss_ref_pool3d_dims_t r = {d->n, d->c, d->i, d->j, d->k, {d->w[0], d->w[1], d->w[2]}};
    return r;
}

static ss_exec_t exec_n(int nt)
{
    ss_exec_t ex = {nt, NULL, 0, NULL};
    return ex;
}

// Same value, NaN matching NaN.
static int same(float a, double b)
{
    return (isnan(a) && isnan(b)) || (double)a == b;
}

// Max pooling selects and copies values, so fast == reference exactly; the argmax bytes too.
// Every other shape uses quantised inputs (ties).
START_TEST(test_max_fwd_vs_ref)
{
    fix_t f;
    fix_make(&f, &SHAPES[_i], 10 + (uint64_t)_i, _i % 2 ? 4.0f : 0.0f);
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_pool3d_max_fwd(&f.y, f.am, &f.x, &f.p, &ex, NULL), SS_OK);
    double *x = to_f64(&f.x), *y = malloc(sizeof(double) * (size_t)(f.ny + 1));
    uint8_t *am = malloc((size_t)f.ny + 1);
    ss_ref_pool3d_dims_t rd = ref_dims(&f.d);
    ss_ref_maxpool3d_fwd(y, am, x, &rd);
    for (int64_t e = 0; e < f.ny; e++) {
        ck_assert_msg(same(ss_tensor_f32(&f.y)[e], y[e]), "shape %d y[%lld]", _i, (long long)e);
        ck_assert_msg(f.am[e] == am[e], "shape %d argmax[%lld] %d vs %d", _i, (long long)e, f.am[e],
                      am[e]);
    }
    // Without argmax (inference) the values are the same.
    memset(f.y.data, 0, ss_tensor_nbytes(&f.y));
    ck_assert_int_eq(ss_pool3d_max_fwd(&f.y, NULL, &f.x, &f.p, &ex, NULL), SS_OK);
    for (int64_t e = 0; e < f.ny; e++) {
        ck_assert(same(ss_tensor_f32(&f.y)[e], y[e]));
    }
    free(x);
    free(y);
    free(am);
    fix_free(&f);
}
END_TEST

START_TEST(test_max_bwd_vs_ref)
{
    fix_t f;
    fix_make(&f, &SHAPES[_i], 20 + (uint64_t)_i, _i % 2 ? 0.0f : 4.0f);
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_pool3d_max_fwd(&f.y, f.am, &f.x, &f.p, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_pool3d_max_bwd(&f.dx, &f.dy, f.am, &f.p, &ex, NULL), SS_OK);
    double *x = to_f64(&f.x), *dy = to_f64(&f.dy), *dx = malloc(sizeof(double) * (size_t)f.nx);
    ss_ref_pool3d_dims_t rd = ref_dims(&f.d);
    ss_ref_maxpool3d_bwd(dx, dy, x, &rd);
    for (int64_t e = 0; e < f.nx; e++) {
        ck_assert_msg(same(ss_tensor_f32(&f.dx)[e], dx[e]), "shape %d dx[%lld]: %g vs %g", _i,
                      (long long)e, ss_tensor_f32(&f.dx)[e], dx[e]);
    }
    free(x);
    free(dy);
    free(dx);
    fix_free(&f);
}
END_TEST

// NaN wins (the last NaN of a window), and a window of -inf keeps index 0, as in PyTorch.
START_TEST(test_max_nan_inf)
{
    const shape_t d = {1, 2, 4, 4, 6, {2, 2, 2}};
    fix_t f;
    fix_make(&f, &d, 30, 0.0f);
    float *x = ss_tensor_f32(&f.x);
    x[1] = NAN;             // window 0, offset 1
    x[6 + 1] = NAN;         // window 0, offset 3 (row j=1): the later NaN wins
    x[2] = x[3] = INFINITY; // window 1: first +inf wins
    const int64_t pl = 4 * 6, w2[8] = {4, 5, 10, 11, 4 + pl, 5 + pl, 10 + pl, 11 + pl};
    for (int t = 0; t < 8; t++) {
        x[w2[t]] = -INFINITY; // window 2: all -inf
    }
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_pool3d_max_fwd(&f.y, f.am, &f.x, &f.p, &ex, NULL), SS_OK);
    ck_assert(isnan(ss_tensor_f32(&f.y)[0]));
    ck_assert_int_eq(f.am[0], 3);
    ck_assert(isinf(ss_tensor_f32(&f.y)[1]) && f.am[1] == 0);
    ck_assert(isinf(ss_tensor_f32(&f.y)[2]) && ss_tensor_f32(&f.y)[2] < 0 && f.am[2] == 0);
    double *xd = to_f64(&f.x), *y = malloc(sizeof(double) * (size_t)f.ny);
    uint8_t *am = malloc((size_t)f.ny);
    ss_ref_pool3d_dims_t rd = ref_dims(&d);
    ss_ref_maxpool3d_fwd(y, am, xd, &rd);
    ck_assert(memcmp(am, f.am, (size_t)f.ny) == 0);
    free(xd);
    free(y);
    free(am);
    fix_free(&f);
}
END_TEST

// Average: tolerance rtol 1e-6, atol 1e-6 (at most 64 float additions of values in [-1, 1]).
START_TEST(test_avg_fwd_vs_ref)
{
    fix_t f;
    fix_make(&f, &SHAPES[_i], 40 + (uint64_t)_i, 0.0f);
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_pool3d_avg_fwd(&f.y, &f.x, &f.p, &ex, NULL), SS_OK);
    double *x = to_f64(&f.x), *y = malloc(sizeof(double) * (size_t)(f.ny + 1));
    ss_ref_pool3d_dims_t rd = ref_dims(&f.d);
    ss_ref_avgpool3d_fwd(y, x, &rd);
    for (int64_t e = 0; e < f.ny; e++) {
        ck_assert_double_eq_tol(ss_tensor_f32(&f.y)[e], y[e], 1e-6 * (1 + fabs(y[e])));
    }
    free(x);
    free(y);
    fix_free(&f);
}
END_TEST

START_TEST(test_avg_bwd_vs_ref)
{
    fix_t f;
    fix_make(&f, &SHAPES[_i], 50 + (uint64_t)_i, 0.0f);
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_pool3d_avg_bwd(&f.dx, &f.dy, &f.p, &ex, NULL), SS_OK);
    double *dy = to_f64(&f.dy), *dx = malloc(sizeof(double) * (size_t)f.nx);
    ss_ref_pool3d_dims_t rd = ref_dims(&f.d);
    ss_ref_avgpool3d_bwd(dx, dy, &rd);
    for (int64_t e = 0; e < f.nx; e++) {
        ck_assert_double_eq_tol(ss_tensor_f32(&f.dx)[e], dx[e], 1e-6 * (1 + fabs(dx[e])));
    }
    free(dy);
    free(dx);
    fix_free(&f);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Finite differences of the double reference, L = sum(y * g). Inputs are distinct random values
// (gaps >> h), so max pooling is locally linear and the central difference exact up to rounding;
// tolerance 1e-7 abs + rel with h = 1e-6.

typedef struct {
    ss_ref_pool3d_dims_t d;
    int max;
    double *x, *g, *y;
    int64_t ny;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    if (c->max) {
        ss_ref_maxpool3d_fwd(c->y, NULL, c->x, &c->d);
    } else {
        ss_ref_avgpool3d_fwd(c->y, c->x, &c->d);
    }
    double l = 0;
    for (int64_t i = 0; i < c->ny; i++) {
        l += c->y[i] * c->g[i];
    }
    return l;
}

START_TEST(test_ref_fd)
{
    const ss_ref_pool3d_dims_t d = {1, 2, 5, 4, 3, {2, 2, 2}};
    const ss_ref_pool3d_dims_t d2 = {1, 1, 4, 3, 5, {3, 1, 2}};
    const ss_ref_pool3d_dims_t *dd = _i < 2 ? &d : &d2;
    int64_t nx = dd->n * dd->c * dd->i * dd->j * dd->k;
    int64_t ny = dd->n * dd->c * (dd->i / dd->w[0]) * (dd->j / dd->w[1]) * (dd->k / dd->w[2]);
    float *fx = malloc(sizeof(float) * (size_t)nx), *fg = malloc(sizeof(float) * (size_t)ny);
    ss_test_fill(fx, nx, 60, -1.0f, 1.0f);
    ss_test_fill(fg, ny, 61, -1.0f, 1.0f);
    fd_ctx_t c = {*dd,
                  _i % 2 == 0,
                  malloc(sizeof(double) * (size_t)nx),
                  malloc(sizeof(double) * (size_t)ny),
                  malloc(sizeof(double) * (size_t)ny),
                  ny};
    for (int64_t e = 0; e < nx; e++) {
        c.x[e] = fx[e];
    }
    for (int64_t e = 0; e < ny; e++) {
        c.g[e] = fg[e];
    }
    double *dx = malloc(sizeof(double) * (size_t)nx);
    if (c.max) {
        ss_ref_maxpool3d_bwd(dx, c.g, c.x, dd);
    } else {
        ss_ref_avgpool3d_bwd(dx, c.g, dd);
    }
    for (int64_t e = 0; e < nx; e++) {
        double fd = ss_test_fd(fd_loss, &c, c.x, e, 1e-6);
        ck_assert_msg(fabs(fd - dx[e]) <= 1e-7 * (1 + fabs(dx[e])), "case %d dx[%lld]: %g vs %g",
                      _i, (long long)e, fd, dx[e]);
    }
    free(fx);
    free(fg);
    free(c.x);
    free(c.g);
    free(c.y);
    free(dx);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// PyTorch golden values (tests/golden/make_golden_pool3d.py): rtol 1e-5, atol 1e-5.

static void golden_tensor(ss_tensor_t *t, const char *cas, const char *key)
{
    char name[64];
    int64_t shape[8];
    int nd;
    snprintf(name, sizeof(name), "%s_%s", cas, key);
    float *data = ss_test_golden("golden_pool3d.h5", name, shape, &nd);
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, nd, shape, data, NULL), SS_OK);
}

static void golden_expect(const ss_tensor_t *got, const char *cas, const char *key)
{
    ss_tensor_t want;
    golden_tensor(&want, cas, key);
    ck_assert(ss_tensor_same_shape(got, &want));
    double e = ss_test_max_rel_err(ss_tensor_f32(got), ss_tensor_f32(&want), ss_tensor_numel(got),
                                   1e-5, 1e-5);
    ck_assert_msg(e <= 1.0, "golden %s_%s: error %g of tolerance", cas, key, e);
    free(want.data);
}

START_TEST(test_golden)
{
    static const char *CASES[] = {"max222", "max312", "avg222", "avg312"};
    static const int64_t WIN[][3] = {{2, 2, 2}, {3, 1, 2}, {2, 2, 2}, {3, 1, 2}};
    const char *cas = CASES[_i];
    int max = _i < 2;
    ss_tensor_t x, gy, y, gx;
    golden_tensor(&x, cas, "x");
    golden_tensor(&gy, cas, "gy");
    make_tensor(&y, gy.shape, 0);
    make_tensor(&gx, x.shape, 0);
    ss_pool3d_params_t p = {{WIN[_i][0], WIN[_i][1], WIN[_i][2]}};
    ss_exec_t ex = exec_n(2);
    uint8_t *am = malloc((size_t)ss_tensor_numel(&y));
    if (max) {
        ck_assert_int_eq(ss_pool3d_max_fwd(&y, am, &x, &p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_pool3d_max_bwd(&gx, &gy, am, &p, &ex, NULL), SS_OK);
    } else {
        ck_assert_int_eq(ss_pool3d_avg_fwd(&y, &x, &p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_pool3d_avg_bwd(&gx, &gy, &p, &ex, NULL), SS_OK);
    }
    golden_expect(&y, cas, "y");
    golden_expect(&gx, cas, "gx");
    free(x.data);
    free(gy.data);
    free(y.data);
    free(gx.data);
    free(am);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Thread-count invariance (no reductions: bitwise) and slab locality.

START_TEST(test_threads_bitwise)
{
    fix_t f;
    fix_make(&f, &SHAPES[_i], 70 + (uint64_t)_i, 8.0f);
    size_t yb = ss_tensor_nbytes(&f.y) + 1, xb = ss_tensor_nbytes(&f.x) + 1;
    char *want = malloc(4 * (xb + yb) + (size_t)f.ny + 1);
    for (int nt = 1; nt <= 3; nt++) {
        ss_exec_t ex = exec_n(nt);
        char *w = want;
        ck_assert_int_eq(ss_pool3d_max_fwd(&f.y, f.am, &f.x, &f.p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_pool3d_max_bwd(&f.dx, &f.dy, f.am, &f.p, &ex, NULL), SS_OK);
        const void *outs[3] = {f.y.data, f.dx.data, f.am};
        size_t sizes[3] = {yb - 1, xb - 1, (size_t)f.ny};
        for (int pass = 0; pass < 2; pass++) {
            for (int o = 0; o < 3; o++) {
                if (nt == 1) {
                    memcpy(w, outs[o], sizes[o]);
                } else {
                    ck_assert_msg(memcmp(w, outs[o], sizes[o]) == 0,
                                  "shape %d pass %d out %d, %d "
                                  "threads",
                                  _i, pass, o, nt);
                }
                w += sizes[o];
            }
            ck_assert_int_eq(ss_pool3d_avg_fwd(&f.y, &f.x, &f.p, &ex, NULL), SS_OK);
            ck_assert_int_eq(ss_pool3d_avg_bwd(&f.dx, &f.dy, &f.p, &ex, NULL), SS_OK);
            sizes[2] = 0;
        }
    }
    free(want);
    fix_free(&f);
}
END_TEST

START_TEST(test_slab_local)
{
    const shape_t d = {2, 3, 8, 5, 7, {2, 2, 2}};
    fix_t f;
    fix_make(&f, &d, 80, 0.0f);
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_pool3d_max_fwd(&f.y, f.am, &f.x, &f.p, &ex, NULL), SS_OK);
    // Input planes [2, 6) of the full volume -> output planes [1, 3).
    int64_t xs[5] = {2, 3, 4, 5, 7}, ys[5] = {2, 3, 2, 2, 3};
    ss_tensor_t xv, xslab, yslab;
    ck_assert_int_eq(ss_tensor_view_slab(&xv, &f.x, 2, 2, 4, NULL), SS_OK);
    make_tensor(&xslab, xs, 0);
    make_tensor(&yslab, ys, 0);
    for (int64_t nc = 0; nc < 6; nc++) {
        memcpy(ss_tensor_f32(&xslab) + nc * 4 * 35, ss_tensor_f32(&xv) + nc * 8 * 35,
               sizeof(float) * 4 * 35);
    }
    ck_assert_int_eq(ss_pool3d_max_fwd(&yslab, NULL, &xslab, &f.p, &ex, NULL), SS_OK);
    for (int64_t nc = 0; nc < 6; nc++) {
        ck_assert(memcmp(ss_tensor_f32(&yslab) + nc * 2 * 6, ss_tensor_f32(&f.y) + (nc * 4 + 1) * 6,
                         sizeof(float) * 2 * 6) == 0);
    }
    free(xslab.data);
    free(yslab.data);
    fix_free(&f);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Validation.

static void expect_fail(ss_status_t got, ss_status_t want, const ss_error_t *err, const char *word)
{
    ck_assert_int_eq(got, want);
    ck_assert_int_eq(err->code, want);
    ck_assert_msg(strstr(err->msg, word) != NULL, "message '%s' lacks '%s'", err->msg, word);
}

START_TEST(test_bad_args)
{
    const shape_t d = {1, 2, 4, 4, 5, {2, 2, 2}};
    fix_t f;
    fix_make(&f, &d, 90, 0.0f);
    ss_exec_t ex = exec_n(2);
    ss_error_t err;
    ss_tensor_t t;
    // y not floor(x / window): wrong K.
    int64_t bad[5] = {1, 2, 2, 2, 3};
    make_tensor(&t, bad, 0);
    expect_fail(ss_pool3d_max_fwd(&t, f.am, &f.x, &f.p, &ex, &err), SS_ESHAPE, &err, "y");
    expect_fail(ss_pool3d_avg_bwd(&f.dx, &t, &f.p, &ex, &err), SS_ESHAPE, &err, "dy");
    free(t.data);
    // Windows: zero, and too large for a one-byte argmax.
    ss_pool3d_params_t p0 = {{2, 0, 2}}, pbig = {{8, 8, 8}};
    expect_fail(ss_pool3d_avg_fwd(&f.y, &f.x, &p0, &ex, &err), SS_EINVAL, &err, "window");
    expect_fail(ss_pool3d_max_fwd(&f.y, f.am, &f.x, &pbig, &ex, &err), SS_EINVAL, &err, "256");
    // Backward without the saved argmax.
    expect_fail(ss_pool3d_max_bwd(&f.dx, &f.dy, NULL, &f.p, &ex, &err), SS_EINVAL, &err, "argmax");
    // Wrong rank, non-contiguous, aliasing, bad thread count.
    ss_tensor_view_reshape(&t, &f.x, 4, (int64_t[]){2, 4, 4, 5}, NULL);
    expect_fail(ss_pool3d_avg_fwd(&f.y, &t, &f.p, &ex, &err), SS_ESHAPE, &err, "x");
    ss_tensor_view_slab(&t, &f.x, 4, 0, 4, NULL);
    expect_fail(ss_pool3d_max_fwd(&f.y, f.am, &t, &f.p, &ex, &err), SS_EINVAL, &err, "contiguous");
    t = f.y;
    t.data = f.x.data;
    expect_fail(ss_pool3d_avg_fwd(&t, &f.x, &f.p, &ex, &err), SS_EINVAL, &err, "overlap");
    expect_fail(ss_pool3d_max_fwd(&f.y, (uint8_t *)f.y.data, &f.x, &f.p, &ex, &err), SS_EINVAL,
                &err, "argmax");
    ss_exec_t bad_ex = exec_n(0);
    expect_fail(ss_pool3d_max_fwd(&f.y, f.am, &f.x, &f.p, &bad_ex, &err), SS_EINVAL, &err,
                "nthreads");
    fix_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool3d");
    TCase *tc = tcase_create("tc_ss_pool3d_max_fwd");
    tcase_add_loop_test(tc, test_max_fwd_vs_ref, 0, NSHAPES);
    tcase_add_test(tc, test_max_nan_inf);
    tcase_add_loop_test(tc, test_golden, 0, 2);
    tcase_add_loop_test(tc, test_threads_bitwise, 0, NSHAPES);
    tcase_add_test(tc, test_slab_local);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_pool3d_max_bwd");
    tcase_add_loop_test(tc, test_max_bwd_vs_ref, 0, NSHAPES);
    tcase_add_loop_test(tc, test_ref_fd, 0, 4);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_pool3d_avg_fwd");
    tcase_add_loop_test(tc, test_avg_fwd_vs_ref, 0, NSHAPES);
    tcase_add_loop_test(tc, test_golden, 2, 4);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_pool3d_avg_bwd");
    tcase_add_loop_test(tc, test_avg_bwd_vs_ref, 0, NSHAPES);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
