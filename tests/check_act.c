// Tests of act: GELU (erf, tanh), ReLU, LeakyReLU, dropout and channel softmax. Fast float
// kernels against the double reference (odd sizes crossing the 16384-element blocks), accuracy in
// ulps over a dense sweep, finite differences of the reference backward, PyTorch golden values,
// thread-count invariance, sharding (dropout masks, softmax slabs) and argument validation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/act.h"

#include "ref/act_ref.h"
#include "testutil.h"

#define MAX_THREADS 3

// Sizes 1, primes, exactly one block, one past a block, several blocks.
static const int64_t SIZES[] = {1, 7, 16384, 16385, 100003};
#define NSIZES ((int)(sizeof(SIZES) / sizeof(SIZES[0])))

static void expect_close(
    const float *got, const double *want, int64_t n, double atol, double rtol, const char *what)
{
    double e = ss_test_err_f64(got, want, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "%s: error %g of tolerance (atol %g rtol %g)", what, e, atol, rtol);
}

static ss_exec_t exec_nt(int nt)
{
    ss_exec_t ex = {nt, NULL, 0, NULL};
    return ex;
}

// ---- GELU -------------------------------------------------------------------------------------

// Both kernels evaluate in double and round once, so against the double reference they are within
// 1 float ulp: rtol 2^-23 (1.19e-7), plus atol 1e-38 for results in the float denormal range. The
// derivative Phi + x phi has a root near x = -0.75 where the 5e-10 relative error of the erfc
// fit is absolute, not relative: dx gets atol 1e-9 (|dy| <= 1).
START_TEST(test_gelu_vs_ref)
{
    int64_t n = SIZES[_i];
    for (int approx = 0; approx <= 1; approx++) {
        ss_tensor_t x, y, dy, dx;
        ss_test_tensor(&x, 1, &n, 11 + (uint64_t)_i, -12.0f, 12.0f);
        ss_test_tensor(&dy, 1, &n, 12 + (uint64_t)_i, -1.0f, 1.0f);
        ss_test_tensor(&y, 1, &n, 0, 0, 0);
        ss_test_tensor(&dx, 1, &n, 0, 0, 0);
        ss_exec_t ex = exec_nt(2);
        ss_error_t err;
        ck_assert_int_eq(ss_gelu_fwd(&y, &x, (ss_gelu_approx_t)approx, &ex, &err), SS_OK);
        ck_assert_int_eq(ss_gelu_bwd(&dx, &dy, &x, (ss_gelu_approx_t)approx, &ex, &err), SS_OK);
        double *xd = ss_test_to_f64(&x), *dyd = ss_test_to_f64(&dy), *yr = ss_test_dalloc(n),
               *dxr = ss_test_dalloc(n);
        ss_ref_gelu_fwd(yr, xd, n, approx);
        ss_ref_gelu_bwd(dxr, dyd, xd, n, approx);
        expect_close(ss_tensor_f32(&y), yr, n, 1e-38, 0x1p-23, approx ? "gelu_tanh y" : "gelu y");
        expect_close(ss_tensor_f32(&dx), dxr, n, 1e-9, 0x1p-23,
                     approx ? "gelu_tanh dx" : "gelu dx");
        free(xd);
        free(dyd);
        free(yr);
        free(dxr);
        free(x.data);
        free(y.data);
        free(dy.data);
        free(dx.data);
    }
}
END_TEST

// Dense sweep of the erf GELU over [-14, 14] (1M points): worst error in units of the result's
// float spacing, must be <= 1 (the evaluation error is < 1e-9 relative before the final
// rounding, so the result is the correctly rounded value or its neighbour).
START_TEST(test_gelu_ulp_sweep)
{
    enum { N = 1 << 20 };
    int64_t n = N;
    ss_tensor_t x, y;
    ss_test_tensor(&x, 1, &n, 0, 0, 0);
    ss_test_tensor(&y, 1, &n, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) {
        ss_tensor_f32(&x)[i] = (float)(-14.0 + 28.0 * (double)i / (double)(n - 1));
    }
    ss_exec_t ex = exec_nt(2);
    ck_assert_int_eq(ss_gelu_fwd(&y, &x, SS_GELU_ERF, &ex, NULL), SS_OK);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double xv = ss_tensor_f32(&x)[i], r;
        ss_ref_gelu_fwd(&r, &xv, 1, 0);
        float rf = (float)r;
        double ulp = fabs((double)nextafterf(rf, INFINITY) - (double)rf);
        double e = fabs((double)ss_tensor_f32(&y)[i] - r) / (ulp > 0 ? ulp : 1e-45);
        worst = e > worst ? e : worst;
    }
    ck_assert_msg(worst <= 1.0, "gelu: worst error %g ulp", worst);
    free(x.data);
    free(y.data);
}
END_TEST

// Non-finite and out-of-range inputs: NaN propagates, +inf stays, far tails saturate.
START_TEST(test_gelu_special)
{
    const float in[] = {NAN, INFINITY, 1e30f, -1e30f, -100.0f, 100.0f, 0.0f, -0.0f};
    int64_t n = (int64_t)(sizeof(in) / sizeof(in[0]));
    for (int approx = 0; approx <= 1; approx++) {
        float y[8], dx[8], dy[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        ss_tensor_t tx, ty, tdy, tdx;
        ck_assert_int_eq(ss_tensor_init(&tx, SS_F32, 1, &n, (void *)in, NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_init(&ty, SS_F32, 1, &n, y, NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_init(&tdy, SS_F32, 1, &n, dy, NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_init(&tdx, SS_F32, 1, &n, dx, NULL), SS_OK);
        ss_exec_t ex = exec_nt(1);
        ck_assert_int_eq(ss_gelu_fwd(&ty, &tx, (ss_gelu_approx_t)approx, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_gelu_bwd(&tdx, &tdy, &tx, (ss_gelu_approx_t)approx, &ex, NULL), SS_OK);
        ck_assert(isnan(y[0]) && isnan(dx[0]));
        ck_assert(y[1] == INFINITY && dx[1] == 1.0f);
        ck_assert(y[2] == 1e30f && dx[2] == 1.0f);
        ck_assert(y[3] == 0.0f && dx[3] == 0.0f);
        ck_assert(y[4] == 0.0f && dx[4] == 0.0f);
        ck_assert(y[5] == 100.0f && dx[5] == 1.0f);
        ck_assert(y[6] == 0.0f && dx[6] == 0.5f);
        ck_assert(y[7] == 0.0f && dx[7] == 0.5f);
    }
}
END_TEST

// In place (y = x, dx = dy) gives the same bits as out of place; 1..3 threads give the same bits.
START_TEST(test_gelu_inplace_threads)
{
    int64_t n = 50001;
    ss_tensor_t x, y, dy, dx, t;
    ss_test_tensor(&x, 1, &n, 21, -6.0f, 6.0f);
    ss_test_tensor(&dy, 1, &n, 22, -1.0f, 1.0f);
    ss_test_tensor(&y, 1, &n, 0, 0, 0);
    ss_test_tensor(&dx, 1, &n, 0, 0, 0);
    ss_test_tensor(&t, 1, &n, 0, 0, 0);
    ss_exec_t ex1 = exec_nt(1);
    ck_assert_int_eq(ss_gelu_fwd(&y, &x, SS_GELU_ERF, &ex1, NULL), SS_OK);
    ck_assert_int_eq(ss_gelu_bwd(&dx, &dy, &x, SS_GELU_ERF, &ex1, NULL), SS_OK);
    for (int nt = 2; nt <= MAX_THREADS; nt++) {
        ss_exec_t ex = exec_nt(nt);
        memcpy(t.data, x.data, ss_tensor_nbytes(&x));
        ck_assert_int_eq(ss_gelu_fwd(&t, &t, SS_GELU_ERF, &ex, NULL), SS_OK);
        ck_assert(memcmp(t.data, y.data, ss_tensor_nbytes(&y)) == 0);
        memcpy(t.data, dy.data, ss_tensor_nbytes(&dy));
        ck_assert_int_eq(ss_gelu_bwd(&t, &t, &x, SS_GELU_ERF, &ex, NULL), SS_OK);
        ck_assert(memcmp(t.data, dx.data, ss_tensor_nbytes(&dx)) == 0);
    }
    ss_tensor_t *ts[] = {&x, &y, &dy, &dx, &t};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
}
END_TEST

// ---- finite differences of the reference backward ---------------------------------------------

typedef struct {
    int op; // 0 gelu erf, 1 gelu tanh, 2 leaky relu, 3 softmax
    int64_t n, c, s;
    double *x, *w, *y; // loss = sum(w * y)
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    int64_t ny = c->n * c->c * c->s;
    if (c->op <= 1) {
        ss_ref_gelu_fwd(c->y, c->x, ny, c->op);
    } else if (c->op == 2) {
        ss_ref_leaky_relu_fwd(c->y, c->x, ny, 0.1);
    } else {
        ss_ref_softmax_fwd(c->y, c->x, c->n, c->c, c->s);
    }
    double l = 0;
    for (int64_t i = 0; i < ny; i++) {
        l += c->w[i] * c->y[i];
    }
    return l;
}

static double *rand_f64(int64_t n, uint64_t seed, float lo, float hi)
{
    float *f = malloc(sizeof(float) * (size_t)n);
    double *d = ss_test_dalloc(n);
    ss_test_fill(f, n, seed, lo, hi);
    for (int64_t i = 0; i < n; i++) {
        d[i] = f[i];
    }
    free(f);
    return d;
}

// Central differences, h = 1e-6, on double functions: error below 1e-8; tolerance
// 1e-7 * (1 + |grad|). LeakyReLU inputs stay away from the kink at 0 (|x| >= 0.1 > h).
static void fd_case(int op, int64_t n, int64_t c, int64_t s)
{
    int64_t nx = n * c * s;
    fd_ctx_t ctx = {
        op, n, c, s, rand_f64(nx, 1, -4, 4), rand_f64(nx, 2, -1, 1), ss_test_dalloc(nx)};
    for (int64_t i = 0; i < nx && op == 2; i++) {
        ctx.x[i] += ctx.x[i] >= 0 ? 0.1 : -0.1;
    }
    double *dx = ss_test_dalloc(nx);
    if (op <= 1) {
        ss_ref_gelu_bwd(dx, ctx.w, ctx.x, nx, op);
    } else if (op == 2) {
        ss_ref_leaky_relu_bwd(dx, ctx.w, ctx.x, nx, 0.1);
    } else {
        ss_ref_softmax_fwd(ctx.y, ctx.x, n, c, s);
        ss_ref_softmax_bwd(dx, ctx.w, ctx.y, n, c, s);
    }
    for (int64_t i = 0; i < nx; i++) {
        double fd = ss_test_fd(fd_loss, &ctx, ctx.x, i, 1e-6);
        ck_assert_msg(fabs(fd - dx[i]) <= 1e-7 * (1 + fabs(dx[i])),
                      "op %d dx[%lld]: fd %.12g vs %.12g", op, (long long)i, fd, dx[i]);
    }
    free(ctx.x);
    free(ctx.w);
    free(ctx.y);
    free(dx);
}

START_TEST(test_gelu_ref_fd)
{
    fd_case(0, 1, 1, 40);
    fd_case(1, 1, 1, 40);
}
END_TEST

START_TEST(test_leaky_relu_ref_fd)
{
    fd_case(2, 1, 1, 30);
}
END_TEST

START_TEST(test_softmax_ref_fd)
{
    fd_case(3, 2, 4, 5);
}
END_TEST

// ---- golden values ----------------------------------------------------------------------------

static const char *GOLDEN = "golden_act.h5";

static void golden_tensor(ss_tensor_t *t, const char *cas, const char *key)
{
    char name[128];
    snprintf(name, sizeof(name), "%s/%s", cas, key);
    int64_t shape[8];
    int nd;
    float *data = ss_test_golden(GOLDEN, name, shape, &nd);
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, nd, shape, data, NULL), SS_OK);
}

// rtol 1e-5, atol 1e-6: float kernels against float64 PyTorch on O(1) values.
static void golden_expect(const ss_tensor_t *got, const char *cas, const char *key)
{
    char name[128];
    snprintf(name, sizeof(name), "%s/%s", cas, key);
    int64_t shape[8];
    int nd;
    double *want = ss_test_golden_f64(GOLDEN, name, shape, &nd);
    double e = ss_test_err_f64(ss_tensor_f32(got), want, ss_tensor_numel(got), 1e-6, 1e-5);
    ck_assert_msg(e <= 1.0, "golden %s: error %g of tolerance", name, e);
    free(want);
}

static ss_status_t golden_op(int op,
                             ss_tensor_t *y,
                             ss_tensor_t *dx,
                             const ss_tensor_t *x,
                             const ss_tensor_t *dy,
                             float slope)
{
    ss_exec_t ex = exec_nt(2);
    ss_error_t err;
    switch (op) {
    case 0:
    case 1:
        SS_TRY(ss_gelu_fwd(y, x, (ss_gelu_approx_t)op, &ex, &err));
        return ss_gelu_bwd(dx, dy, x, (ss_gelu_approx_t)op, &ex, &err);
    case 2:
        SS_TRY(ss_relu_fwd(y, x, &ex, &err));
        return ss_relu_bwd(dx, dy, y, &ex, &err);
    case 3:
        SS_TRY(ss_leaky_relu_fwd(y, x, slope, &ex, &err));
        return ss_leaky_relu_bwd(dx, dy, x, slope, &ex, &err);
    default:
        SS_TRY(ss_softmax_fwd(y, x, &ex, &err));
        return ss_softmax_bwd(dx, dy, y, &ex, &err);
    }
}

START_TEST(test_golden)
{
    static const char *CASES[] = {"gelu", "gelu_tanh", "relu", "leaky_relu", "softmax"};
    const char *cas = CASES[_i];
    ss_tensor_t x, dy, y, dx;
    golden_tensor(&x, cas, "x");
    golden_tensor(&dy, cas, "dy");
    ss_test_tensor(&y, x.ndim, x.shape, 0, 0, 0);
    ss_test_tensor(&dx, x.ndim, x.shape, 0, 0, 0);
    float slope = (float)ss_test_golden_attr(GOLDEN, "leaky_slope");
    ck_assert_int_eq(golden_op(_i, &y, &dx, &x, &dy, slope), SS_OK);
    golden_expect(&y, cas, "y");
    golden_expect(&dx, cas, "dx");
    free(x.data);
    free(dy.data);
    free(y.data);
    free(dx.data);
}
END_TEST

// ---- ReLU / LeakyReLU -------------------------------------------------------------------------

// Exact: one float multiply (or none) per element, so the results equal the double reference
// rounded to float. Backward of ReLU from y; of LeakyReLU from x.
START_TEST(test_relu_leaky_vs_ref)
{
    int64_t n = SIZES[_i];
    static const float SLOPES[] = {0.0f, 0.01f, 0.2f, -0.5f};
    for (size_t k = 0; k < sizeof(SLOPES) / sizeof(SLOPES[0]); k++) {
        float slope = SLOPES[k];
        ss_tensor_t x, y, dy, dx;
        ss_test_tensor(&x, 1, &n, 31 + (uint64_t)_i, -3.0f, 3.0f);
        ss_test_tensor(&dy, 1, &n, 32 + (uint64_t)_i, -1.0f, 1.0f);
        ss_test_tensor(&y, 1, &n, 0, 0, 0);
        ss_test_tensor(&dx, 1, &n, 0, 0, 0);
        ss_tensor_f32(&x)[0] = 0.0f; // the kink: gradient is slope (PyTorch: x > 0 is false)
        ss_exec_t ex = exec_nt(2);
        if (slope == 0.0f) {
            ck_assert_int_eq(ss_relu_fwd(&y, &x, &ex, NULL), SS_OK);
            ck_assert_int_eq(ss_relu_bwd(&dx, &dy, &y, &ex, NULL), SS_OK);
        } else {
            ck_assert_int_eq(ss_leaky_relu_fwd(&y, &x, slope, &ex, NULL), SS_OK);
            ck_assert_int_eq(ss_leaky_relu_bwd(&dx, &dy, &x, slope, &ex, NULL), SS_OK);
        }
        double *xd = ss_test_to_f64(&x), *dyd = ss_test_to_f64(&dy), *yr = ss_test_dalloc(n),
               *dxr = ss_test_dalloc(n);
        ss_ref_leaky_relu_fwd(yr, xd, n, slope);
        ss_ref_leaky_relu_bwd(dxr, dyd, xd, n, slope);
        for (int64_t i = 0; i < n; i++) {
            ck_assert_float_eq(ss_tensor_f32(&y)[i], (float)yr[i]);
            ck_assert_float_eq(ss_tensor_f32(&dx)[i], (float)dxr[i]);
        }
        free(xd);
        free(dyd);
        free(yr);
        free(dxr);
        free(x.data);
        free(y.data);
        free(dy.data);
        free(dx.data);
    }
}
END_TEST

// ReLU: NaN propagates forward; backward is exactly 0 where y <= 0 even for infinite dy; in place.
START_TEST(test_relu_special)
{
    float v[4] = {NAN, -1.0f, 2.0f, -0.0f}, dy[4] = {1, INFINITY, 3, NAN};
    int64_t n = 4;
    ss_tensor_t t, tdy;
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, 1, &n, v, NULL), SS_OK);
    ck_assert_int_eq(ss_tensor_init(&tdy, SS_F32, 1, &n, dy, NULL), SS_OK);
    ss_exec_t ex = exec_nt(1);
    ck_assert_int_eq(ss_relu_fwd(&t, &t, &ex, NULL), SS_OK);
    ck_assert(isnan(v[0]) && v[1] == 0.0f && v[2] == 2.0f && v[3] == 0.0f);
    ck_assert_int_eq(ss_relu_bwd(&tdy, &tdy, &t, &ex, NULL), SS_OK);
    ck_assert(dy[1] == 0.0f && dy[2] == 3.0f && dy[3] == 0.0f);
}
END_TEST

START_TEST(test_relu_bad_args)
{
    int64_t n = 6, m = 5;
    ss_tensor_t x, y;
    ss_test_tensor(&x, 1, &n, 1, -1, 1);
    ss_test_tensor(&y, 1, &m, 0, 0, 0);
    ss_exec_t ex = exec_nt(1), bad = exec_nt(0);
    ss_error_t err;
    ck_assert_int_eq(ss_relu_fwd(&y, &x, &ex, &err), SS_ESHAPE);
    ck_assert_int_gt((int)strlen(err.msg), 0);
    ck_assert_int_eq(ss_relu_fwd(&x, &x, &bad, &err), SS_EINVAL);
    ck_assert_int_eq(ss_leaky_relu_fwd(&x, &x, NAN, &ex, &err), SS_EINVAL);
    ck_assert_int_eq(ss_gelu_fwd(&x, &x, (ss_gelu_approx_t)7, &ex, &err), SS_EINVAL);
    ck_assert_int_eq(ss_gelu_bwd(&y, &x, &x, SS_GELU_ERF, &ex, &err), SS_ESHAPE);
    // Non-contiguous: a column slab of a matrix.
    int64_t s2[2] = {3, 4};
    ss_tensor_t mtx, col;
    ss_test_tensor(&mtx, 2, s2, 2, -1, 1);
    ck_assert_int_eq(ss_tensor_view_slab(&col, &mtx, 1, 1, 2, NULL), SS_OK);
    ck_assert_int_eq(ss_leaky_relu_fwd(&col, &col, 0.1f, &ex, &err), SS_ESHAPE);
    free(x.data);
    free(y.data);
    free(mtx.data);
}
END_TEST

// ---- dropout ----------------------------------------------------------------------------------

// The definition: y = x / (1 - p) where u(base + i) >= p, else 0 (against the double reference
// rounded to float: x * float(1/(1-p)) is within 1 ulp of x/(1-p), tolerance rtol 2.4e-7);
// backward applies the same mask and scale; the kept fraction is 1 - p within 5 sigma.
START_TEST(test_dropout_vs_ref)
{
    int64_t n = SIZES[_i];
    static const float PS[] = {0.0f, 0.1f, 0.5f, 1.0f};
    for (size_t k = 0; k < sizeof(PS) / sizeof(PS[0]); k++) {
        ss_dropout_params_t p = {PS[k], ss_rng_make(99, 3), 1000, 0, 0};
        ss_tensor_t x, y, dy, dx;
        ss_test_tensor(&x, 1, &n, 41, 0.5f, 1.5f); // nonzero, so a dropped element is recognisable
        ss_test_tensor(&dy, 1, &n, 42, 0.5f, 1.5f);
        ss_test_tensor(&y, 1, &n, 0, 0, 0);
        ss_test_tensor(&dx, 1, &n, 0, 0, 0);
        ss_exec_t ex = exec_nt(2);
        ck_assert_int_eq(ss_dropout_fwd(&y, &x, &p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_dropout_bwd(&dx, &dy, &p, &ex, NULL), SS_OK);
        double *xd = ss_test_to_f64(&x), *dyd = ss_test_to_f64(&dy), *yr = ss_test_dalloc(n),
               *dxr = ss_test_dalloc(n);
        ss_ref_dropout_fwd(yr, xd, n, PS[k], p.rng, p.base);
        ss_ref_dropout_fwd(dxr, dyd, n, PS[k], p.rng, p.base);
        expect_close(ss_tensor_f32(&y), yr, n, 1e-30, 2.4e-7, "dropout y");
        expect_close(ss_tensor_f32(&dx), dxr, n, 1e-30, 2.4e-7, "dropout dx");
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++) {
            kept += ss_tensor_f32(&y)[i] != 0.0f;
            ck_assert((ss_tensor_f32(&y)[i] != 0.0f) == (ss_tensor_f32(&dx)[i] != 0.0f));
        }
        double mean = (double)n * (1.0 - PS[k]), sd = sqrt((double)n * PS[k] * (1.0 - PS[k]));
        ck_assert_msg(fabs((double)kept - mean) <= 5 * sd + 1e-9, "p %g: kept %lld of %lld",
                      (double)PS[k], (long long)kept, (long long)n);
        free(xd);
        free(dyd);
        free(yr);
        free(dxr);
        free(x.data);
        free(y.data);
        free(dy.data);
        free(dx.data);
    }
}
END_TEST

// A sharded tensor gets the unsharded mask: i-slabs of (N, C, I, J, K) held as contiguous local
// tensors (row mapping), and a contiguous token range (base offset); any thread count.
START_TEST(test_dropout_sharded)
{
    int64_t shp[5] = {2, 3, 7, 5, 6};
    ss_tensor_t x, y;
    ss_test_tensor(&x, 5, shp, 51, 0.5f, 1.5f);
    ss_test_tensor(&y, 5, shp, 0, 0, 0);
    ss_dropout_params_t whole = {0.3f, ss_rng_make(5, 8), 0, 0, 0};
    ss_exec_t ex1 = exec_nt(1);
    ck_assert_int_eq(ss_dropout_fwd(&y, &x, &whole, &ex1, NULL), SS_OK);
    const int64_t cuts[] = {0, 3, 3, 7}; // slabs [0,3), [3,3) (empty), [3,7)
    int64_t jk = shp[3] * shp[4], plane = shp[2] * jk;
    for (int r = 0; r < 3; r++) {
        int64_t i0 = cuts[r], il = cuts[r + 1] - cuts[r];
        int64_t ls[5] = {shp[0], shp[1], il, shp[3], shp[4]};
        ss_tensor_t view, lx, ly;
        ck_assert_int_eq(ss_tensor_view_slab(&view, &x, 2, i0, il, NULL), SS_OK);
        ss_test_tensor(&lx, 5, ls, 0, 0, 0);
        ss_test_tensor(&ly, 5, ls, 0, 0, 0);
        for (int64_t nc = 0; nc < shp[0] * shp[1]; nc++) {
            memcpy(ss_tensor_f32(&lx) + nc * il * jk, ss_tensor_f32(&x) + nc * plane + i0 * jk,
                   (size_t)(il * jk) * sizeof(float));
        }
        ss_dropout_params_t p = whole;
        p.base = (uint64_t)(i0 * jk);
        p.row_len = il * jk;
        p.row_stride = plane;
        ss_exec_t ex = exec_nt(1 + r % MAX_THREADS);
        ck_assert_int_eq(ss_dropout_fwd(&ly, &lx, &p, &ex, NULL), SS_OK);
        for (int64_t nc = 0; nc < shp[0] * shp[1]; nc++) {
            ck_assert(memcmp(ss_tensor_f32(&ly) + nc * il * jk,
                             ss_tensor_f32(&y) + nc * plane + i0 * jk,
                             (size_t)(il * jk) * sizeof(float)) == 0);
        }
        free(lx.data);
        free(ly.data);
    }
    // Token range [40, 100) of the flat tensor: base = 40.
    int64_t len = 60;
    ss_tensor_t tx, ty;
    ck_assert_int_eq(ss_tensor_init(&tx, SS_F32, 1, &len, ss_tensor_f32(&x) + 40, NULL), SS_OK);
    ss_test_tensor(&ty, 1, &len, 0, 0, 0);
    ss_dropout_params_t p = whole;
    p.base = 40;
    ss_exec_t ex2 = exec_nt(2);
    ck_assert_int_eq(ss_dropout_fwd(&ty, &tx, &p, &ex2, NULL), SS_OK);
    ck_assert(memcmp(ty.data, ss_tensor_f32(&y) + 40, (size_t)len * sizeof(float)) == 0);
    free(ty.data);
    free(x.data);
    free(y.data);
}
END_TEST

START_TEST(test_dropout_bad_args)
{
    int64_t n = 10;
    ss_tensor_t x;
    ss_test_tensor(&x, 1, &n, 1, -1, 1);
    ss_exec_t ex = exec_nt(1);
    ss_error_t err;
    ss_dropout_params_t p = {1.5f, ss_rng_make(1, 1), 0, 0, 0};
    ck_assert_int_eq(ss_dropout_fwd(&x, &x, &p, &ex, &err), SS_EINVAL);
    ck_assert_int_gt((int)strlen(err.msg), 0);
    p.p = 0.5f;
    p.row_len = 4;
    p.row_stride = 3;
    ck_assert_int_eq(ss_dropout_bwd(&x, &x, &p, &ex, &err), SS_EINVAL);
    ck_assert_int_eq(ss_dropout_fwd(&x, &x, NULL, &ex, &err), SS_EINVAL);
    free(x.data);
}
END_TEST

// ---- softmax ----------------------------------------------------------------------------------

typedef struct {
    int64_t n, c, i, j, k;
} sshape_t;

// One channel, primes, more positions than one 512 block with a partial last block, many
// channels.
static const sshape_t SSHAPES[] = {
    {1, 1, 1, 1, 1}, {2, 3, 5, 7, 3}, {1, 4, 9, 11, 13}, {3, 2, 1, 1, 1}, {1, 37, 3, 4, 5}};
#define NSSHAPES ((int)(sizeof(SSHAPES) / sizeof(SSHAPES[0])))

// rtol 1e-6, atol 1e-7: double exp and sums, two float roundings per output (exp, then scale).
START_TEST(test_softmax_vs_ref)
{
    const sshape_t *d = &SSHAPES[_i];
    int64_t shp[5] = {d->n, d->c, d->i, d->j, d->k}, s = d->i * d->j * d->k;
    ss_tensor_t x, y, dy, dx;
    ss_test_tensor(&x, 5, shp, 61 + (uint64_t)_i, -8.0f, 8.0f);
    ss_test_tensor(&dy, 5, shp, 62 + (uint64_t)_i, -1.0f, 1.0f);
    ss_test_tensor(&y, 5, shp, 0, 0, 0);
    ss_test_tensor(&dx, 5, shp, 0, 0, 0);
    int64_t nx = ss_tensor_numel(&x);
    ss_exec_t ex = exec_nt(2);
    ck_assert_int_eq(ss_softmax_fwd(&y, &x, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_softmax_bwd(&dx, &dy, &y, &ex, NULL), SS_OK);
    double *xd = ss_test_to_f64(&x), *dyd = ss_test_to_f64(&dy), *yr = ss_test_dalloc(nx),
           *dxr = ss_test_dalloc(nx);
    ss_ref_softmax_fwd(yr, xd, d->n, d->c, s);
    expect_close(ss_tensor_f32(&y), yr, nx, 1e-7, 1e-6, "softmax y");
    // The backward is compared on the kernel's own y (the reference's y differs by rounding).
    double *yf = ss_test_to_f64(&y);
    ss_ref_softmax_bwd(dxr, dyd, yf, d->n, d->c, s);
    expect_close(ss_tensor_f32(&dx), dxr, nx, 1e-7, 1e-6, "softmax dx");
    // Threads and in place: same bits.
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        ss_tensor_t t;
        ss_test_tensor(&t, 5, shp, 0, 0, 0);
        memcpy(t.data, x.data, ss_tensor_nbytes(&x));
        ss_exec_t e = exec_nt(nt);
        ck_assert_int_eq(ss_softmax_fwd(&t, &t, &e, NULL), SS_OK);
        ck_assert(memcmp(t.data, y.data, ss_tensor_nbytes(&y)) == 0);
        memcpy(t.data, dy.data, ss_tensor_nbytes(&dy));
        ck_assert_int_eq(ss_softmax_bwd(&t, &t, &y, &e, NULL), SS_OK);
        ck_assert(memcmp(t.data, dx.data, ss_tensor_nbytes(&dx)) == 0);
        free(t.data);
    }
    double *bufs[] = {xd, dyd, yr, dxr, yf};
    for (size_t k = 0; k < sizeof(bufs) / sizeof(bufs[0]); k++) {
        free(bufs[k]);
    }
    free(x.data);
    free(y.data);
    free(dy.data);
    free(dx.data);
}
END_TEST

// Huge logits do not overflow (max subtraction); an i-slab view computes the same bits as the
// whole tensor (position-local).
START_TEST(test_softmax_stable_and_slab)
{
    int64_t shp[5] = {1, 3, 4, 2, 2};
    ss_tensor_t x, y, ys, xv, yv;
    ss_test_tensor(&x, 5, shp, 71, -1.0f, 1.0f);
    ss_test_tensor(&y, 5, shp, 0, 0, 0);
    ss_test_tensor(&ys, 5, shp, 0, 0, 0);
    float *xp = ss_tensor_f32(&x);
    xp[0] = 1e30f; // channel 0 at position 0 dominates; position 1 spreads over 1e4
    xp[1] = 5000.0f;
    xp[16 + 1] = -5000.0f;
    ss_exec_t ex = exec_nt(2);
    ck_assert_int_eq(ss_softmax_fwd(&y, &x, &ex, NULL), SS_OK);
    float *yp = ss_tensor_f32(&y);
    ck_assert(yp[0] == 1.0f && yp[16] == 0.0f && yp[32] == 0.0f);
    ck_assert(yp[1] == 1.0f && yp[17] == 0.0f);
    for (int64_t i0 = 0; i0 < 4; i0 += 2) {
        ck_assert_int_eq(ss_tensor_view_slab(&xv, &x, 2, i0, 2, NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_view_slab(&yv, &ys, 2, i0, 2, NULL), SS_OK);
        ck_assert_int_eq(ss_softmax_fwd(&yv, &xv, &ex, NULL), SS_OK);
    }
    ck_assert(memcmp(y.data, ys.data, ss_tensor_nbytes(&y)) == 0);
    free(x.data);
    free(y.data);
    free(ys.data);
}
END_TEST

START_TEST(test_softmax_bad_args)
{
    int64_t s5[5] = {1, 3, 4, 2, 2}, s1 = 7;
    ss_tensor_t x, y, v, flat;
    ss_test_tensor(&x, 5, s5, 1, -1, 1);
    ss_test_tensor(&y, 5, s5, 0, 0, 0);
    ss_test_tensor(&flat, 1, &s1, 2, -1, 1);
    ss_exec_t ex = exec_nt(1);
    ss_error_t err;
    ck_assert_int_eq(ss_softmax_fwd(&flat, &flat, &ex, &err), SS_ESHAPE);
    ck_assert_int_gt((int)strlen(err.msg), 0);
    ck_assert_int_eq(ss_tensor_view_slab(&v, &y, 2, 0, 2, NULL), SS_OK);
    ck_assert_int_eq(ss_softmax_fwd(&v, &x, &ex, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_tensor_view_slab(&v, &x, 4, 0, 1, NULL), SS_OK); // k-slab: not contiguous
    ss_tensor_t w;
    ck_assert_int_eq(ss_tensor_view_slab(&w, &y, 4, 0, 1, NULL), SS_OK);
    ck_assert_int_eq(ss_softmax_fwd(&w, &v, &ex, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_softmax_bwd(&y, &x, &flat, &ex, &err), SS_ESHAPE);
    free(x.data);
    free(y.data);
    free(flat.data);
}
END_TEST

static Suite *act_suite(void)
{
    Suite *s = suite_create("act");
    TCase *tc = tcase_create("tc_ss_gelu_fwd");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_gelu_vs_ref, 0, NSIZES);
    tcase_add_test(tc, test_gelu_ulp_sweep);
    tcase_add_test(tc, test_gelu_special);
    tcase_add_loop_test(tc, test_golden, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_gelu_bwd");
    tcase_add_test(tc, test_gelu_ref_fd);
    tcase_add_test(tc, test_gelu_inplace_threads);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_relu_fwd");
    tcase_add_loop_test(tc, test_relu_leaky_vs_ref, 0, NSIZES);
    tcase_add_loop_test(tc, test_golden, 2, 3);
    tcase_add_test(tc, test_relu_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_relu_bwd");
    tcase_add_test(tc, test_relu_special);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_leaky_relu_fwd");
    tcase_add_loop_test(tc, test_golden, 3, 4);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_leaky_relu_bwd");
    tcase_add_test(tc, test_leaky_relu_ref_fd);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_dropout_fwd");
    tcase_add_loop_test(tc, test_dropout_vs_ref, 0, NSIZES);
    tcase_add_test(tc, test_dropout_sharded);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_dropout_bwd");
    tcase_add_test(tc, test_dropout_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_softmax_fwd");
    tcase_add_loop_test(tc, test_softmax_vs_ref, 0, NSSHAPES);
    tcase_add_test(tc, test_softmax_stable_and_slab);
    tcase_add_loop_test(tc, test_golden, 4, 5);
    tcase_add_test(tc, test_softmax_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_softmax_bwd");
    tcase_add_test(tc, test_softmax_ref_fd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(act_suite());
}
