// Tests of linear: fast float kernels (OpenBLAS) against the double reference on odd shapes,
// finite differences of the reference backward, PyTorch golden values, thread-count invariance,
// the overwrite/accumulate contract (beta), token shards, and argument validation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/linear.h"

#include "kernels_impl.h"
#include "ref/linear_ref.h"
#include "testutil.h"

#define MAX_THREADS 3

typedef struct {
    int64_t t, in, out;
} lshape_t;

// Sizes 1, primes, non-multiples of any BLAS register/cache tile, more columns than one 256-wide
// bias-gradient block.
static const lshape_t SHAPES[] = {{1, 1, 1},      {7, 13, 5}, {33, 17, 65},
                                  {130, 97, 259}, {1, 64, 3}, {64, 1, 300}};
#define NSHAPES ((int)(sizeof(SHAPES) / sizeof(SHAPES[0])))

// Linear layers take inputs in [-1, 1).
static void tens(ss_tensor_t *t, int ndim, const int64_t *shape, uint64_t seed)
{
    ss_test_tensor(t, ndim, shape, seed, -1.0f, 1.0f);
}

static void expect_close(
    const ss_tensor_t *got, const double *want, double atol, double rtol, const char *what, int cas)
{
    double e = ss_test_err_f64(ss_tensor_f32(got), want, ss_tensor_numel(got), atol, rtol);
    ck_assert_msg(e <= 1.0, "case %d: %s error %g of tolerance (atol %g)", cas, what, e, atol);
}

typedef struct {
    lshape_t d;
    ss_tensor_t x, w, b, y, dy, dx, dw, db;
} fix_t;

static void fix_make(fix_t *f, const lshape_t *d, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->d = *d;
    int64_t xs[2] = {d->t, d->in}, ws[2] = {d->out, d->in}, ys[2] = {d->t, d->out};
    tens(&f->x, 2, xs, seed);
    tens(&f->w, 2, ws, seed + 1);
    tens(&f->b, 1, &d->out, seed + 2);
    tens(&f->dy, 2, ys, seed + 3);
    tens(&f->y, 2, ys, 0);
    tens(&f->dx, 2, xs, 0);
    tens(&f->dw, 2, ws, 0);
    tens(&f->db, 1, &d->out, 0);
}

static void fix_free(fix_t *f)
{
    ss_tensor_t *ts[] = {&f->x, &f->w, &f->b, &f->y, &f->dy, &f->dx, &f->dw, &f->db};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
}

static ss_exec_t exec_nt(int nt)
{
    ss_exec_t ex = {nt, NULL, 0, NULL};
    return ex;
}

static void fill_nan(ss_tensor_t *t)
{
    for (int64_t i = 0; i < ss_tensor_numel(t); i++) {
        ss_tensor_f32(t)[i] = NAN;
    }
}

// Tolerance: rtol 1e-5 plus atol 1e-6 * L with L the reduction length (in for y, out for dx,
// t for dw and db): float GEMM summation error grows with L, the reference's is negligible.
START_TEST(test_fwd_vs_ref)
{
    const lshape_t *d = &SHAPES[_i];
    fix_t f;
    fix_make(&f, d, 10 + (uint64_t)_i * 10);
    ss_exec_t ex = exec_nt(2);
    ss_error_t err;
    double *x = ss_test_to_f64(&f.x), *w = ss_test_to_f64(&f.w), *b = ss_test_to_f64(&f.b);
    double *y = ss_test_dalloc(d->t * d->out);
    for (int bias = 0; bias <= 1; bias++) {
        fill_nan(&f.y); // overwritten, never read
        ck_assert_int_eq(ss_linear_fwd(&f.y, &f.x, &f.w, bias ? &f.b : NULL, &ex, &err), SS_OK);
        ss_ref_linear_fwd(y, x, w, bias ? b : NULL, d->t, d->in, d->out);
        expect_close(&f.y, y, 1e-6 * (double)d->in, 1e-5, bias ? "y" : "y (no bias)", _i);
    }
    free(x);
    free(w);
    free(b);
    free(y);
    fix_free(&f);
}
END_TEST

START_TEST(test_bwd_data_vs_ref)
{
    const lshape_t *d = &SHAPES[_i];
    fix_t f;
    fix_make(&f, d, 20 + (uint64_t)_i * 10);
    ss_exec_t ex = exec_nt(2);
    ss_error_t err;
    double *dy = ss_test_to_f64(&f.dy), *w = ss_test_to_f64(&f.w),
           *dx = ss_test_dalloc(d->t * d->in);
    ss_ref_linear_bwd_data(dx, dy, w, d->t, d->in, d->out);
    fill_nan(&f.dx);
    ck_assert_int_eq(ss_linear_bwd_data(&f.dx, &f.dy, &f.w, 0.0f, &ex, &err), SS_OK);
    expect_close(&f.dx, dx, 1e-6 * (double)d->out, 1e-5, "dx", _i);
    // Accumulate: a second call with beta = 1 doubles it.
    ck_assert_int_eq(ss_linear_bwd_data(&f.dx, &f.dy, &f.w, 1.0f, &ex, &err), SS_OK);
    for (int64_t i = 0; i < d->t * d->in; i++) {
        dx[i] *= 2;
    }
    expect_close(&f.dx, dx, 2e-6 * (double)d->out, 1e-5, "dx accumulated", _i);
    free(dy);
    free(w);
    free(dx);
    fix_free(&f);
}
END_TEST

START_TEST(test_bwd_weight_vs_ref)
{
    const lshape_t *d = &SHAPES[_i];
    fix_t f;
    fix_make(&f, d, 30 + (uint64_t)_i * 10);
    ss_exec_t ex = exec_nt(2);
    ss_error_t err;
    double *dy = ss_test_to_f64(&f.dy), *x = ss_test_to_f64(&f.x);
    double *dw = ss_test_dalloc(d->out * d->in), *db = ss_test_dalloc(d->out);
    ss_ref_linear_bwd_weight(dw, db, dy, x, d->t, d->in, d->out);
    fill_nan(&f.dw);
    fill_nan(&f.db);
    ck_assert_int_eq(ss_linear_bwd_weight(&f.dw, &f.db, &f.dy, &f.x, 0.0f, &ex, &err), SS_OK);
    expect_close(&f.dw, dw, 1e-6 * (double)d->t, 1e-5, "dw", _i);
    expect_close(&f.db, db, 1e-6 * (double)d->t, 1e-5, "db", _i);
    // db may be NULL; dw alone is then the same.
    ck_assert_int_eq(ss_linear_bwd_weight(&f.dw, NULL, &f.dy, &f.x, 0.0f, &ex, &err), SS_OK);
    expect_close(&f.dw, dw, 1e-6 * (double)d->t, 1e-5, "dw (no db)", _i);
    free(dy);
    free(x);
    free(dw);
    free(db);
    fix_free(&f);
}
END_TEST

// Gradient accumulation over two micro-batches (token halves, beta = 0 then 1) equals one call on
// all tokens, within the float tolerance.
START_TEST(test_bwd_weight_accumulate)
{
    const lshape_t d = {37, 19, 23};
    fix_t f;
    fix_make(&f, &d, 41);
    ss_exec_t ex = exec_nt(2);
    ss_error_t err;
    ck_assert_int_eq(ss_linear_bwd_weight(&f.dw, &f.db, &f.dy, &f.x, 0.0f, &ex, &err), SS_OK);
    double *dw = ss_test_to_f64(&f.dw), *db = ss_test_to_f64(&f.db);
    fill_nan(&f.dw);
    fill_nan(&f.db);
    const int64_t cut = 17;
    for (int half = 0; half < 2; half++) {
        int64_t r0 = half ? cut : 0, rn = half ? d.t - cut : cut;
        ss_tensor_t xs, dys;
        ck_assert_int_eq(ss_tensor_view_slab(&xs, &f.x, 0, r0, rn, NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_view_slab(&dys, &f.dy, 0, r0, rn, NULL), SS_OK);
        ck_assert_int_eq(
            ss_linear_bwd_weight(&f.dw, &f.db, &dys, &xs, half ? 1.0f : 0.0f, &ex, &err), SS_OK);
    }
    expect_close(&f.dw, dw, 1e-6 * (double)d.t, 1e-5, "dw accumulated", 0);
    expect_close(&f.db, db, 1e-6 * (double)d.t, 1e-5, "db accumulated", 0);
    // No tokens (an empty shard): beta = 0 zeroes the gradients, beta = 1 keeps them.
    ss_tensor_t x0, dy0;
    ck_assert_int_eq(ss_tensor_view_slab(&x0, &f.x, 0, 0, 0, NULL), SS_OK);
    ck_assert_int_eq(ss_tensor_view_slab(&dy0, &f.dy, 0, 0, 0, NULL), SS_OK);
    ck_assert_int_eq(ss_linear_bwd_weight(&f.dw, &f.db, &dy0, &x0, 1.0f, &ex, &err), SS_OK);
    expect_close(&f.dw, dw, 1e-6 * (double)d.t, 1e-5, "dw kept", 0);
    fill_nan(&f.dw);
    ck_assert_int_eq(ss_linear_bwd_weight(&f.dw, &f.db, &dy0, &x0, 0.0f, &ex, &err), SS_OK);
    for (int64_t i = 0; i < d.out * d.in; i++) {
        ck_assert_float_eq(ss_tensor_f32(&f.dw)[i], 0.0f);
    }
    for (int64_t i = 0; i < d.out; i++) {
        ck_assert_float_eq(ss_tensor_f32(&f.db)[i], 0.0f);
    }
    free(dw);
    free(db);
    fix_free(&f);
}
END_TEST

// Thread-count invariance. db folds each column in a fixed order: bit-identical for 1..3 threads.
// The GEMM outputs are bit-identical with OpenBLAS's SkylakeX kernels (this machine) but not with
// its Haswell/Zen kernels (OPENBLAS_CORETYPE=Haswell: y of 130x97x259 differs in the last bits
// between 1 and 2 threads), so y, dx, dw are held to rtol 1e-6 + atol 1e-7 * L instead.
static void
expect_near(const ss_tensor_t *a, const ss_tensor_t *b, double l, const char *what, int nt)
{
    double *ref = ss_test_to_f64(b);
    double e = ss_test_err_f64(ss_tensor_f32(a), ref, ss_tensor_numel(a), 1e-7 * l, 1e-6);
    ck_assert_msg(e <= 1.0, "%s: 1 vs %d threads differ by %g of tolerance", what, nt, e);
    free(ref);
}

START_TEST(test_threads_invariant)
{
    const lshape_t *d = &SHAPES[_i];
    fix_t a, b;
    fix_make(&a, d, 51);
    ss_exec_t ex1 = exec_nt(1);
    ck_assert_int_eq(ss_linear_fwd(&a.y, &a.x, &a.w, &a.b, &ex1, NULL), SS_OK);
    ck_assert_int_eq(ss_linear_bwd_data(&a.dx, &a.dy, &a.w, 0.0f, &ex1, NULL), SS_OK);
    ck_assert_int_eq(ss_linear_bwd_weight(&a.dw, &a.db, &a.dy, &a.x, 0.0f, &ex1, NULL), SS_OK);
    for (int nt = 2; nt <= MAX_THREADS; nt++) {
        fix_make(&b, d, 51);
        ss_exec_t ex = exec_nt(nt);
        ck_assert_int_eq(ss_linear_fwd(&b.y, &b.x, &b.w, &b.b, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_linear_bwd_data(&b.dx, &b.dy, &b.w, 0.0f, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_linear_bwd_weight(&b.dw, &b.db, &b.dy, &b.x, 0.0f, &ex, NULL), SS_OK);
        expect_near(&b.y, &a.y, (double)d->in, "y", nt);
        expect_near(&b.dx, &a.dx, (double)d->out, "dx", nt);
        expect_near(&b.dw, &a.dw, (double)d->t, "dw", nt);
        ck_assert_msg(memcmp(a.db.data, b.db.data, ss_tensor_nbytes(&a.db)) == 0, "db, %d threads",
                      nt);
        fix_free(&b);
    }
    fix_free(&a);
}
END_TEST

// The small-token kernels (ex->work of ss_linear_workspace_size bytes, at most 64 tokens, an
// AVX-512 CPU) against the double reference: bias or none, dx and dw overwritten (NaN before: never
// read) and accumulated (beta 1), widths that do not fill a register block, panel or vector
// (unaligned dw rows), 1-3 threads bit-identical. Where the CPU lacks them the size is 0 and the
// calls take OpenBLAS: the test then checks that path with a workspace present.
START_TEST(test_small_tokens)
{
    static const lshape_t shapes[] = {{1, 1, 1},     {5, 13, 7},    {17, 100, 259},
                                      {64, 65, 131}, {64, 768, 96}, {63, 33, 1}};
    ck_assert_uint_eq(ss_linear_workspace_size(65, 768, 768, 2), 0);
    ck_assert_uint_eq(ss_linear_workspace_size(0, 768, 768, 2), 0);
    const lshape_t *d = &shapes[_i];
    size_t bytes = ss_linear_workspace_size(d->t, d->in, d->out, MAX_THREADS);
    void *work = bytes ? aligned_alloc(64, (bytes + 63) / 64 * 64) : NULL;
    fix_t f, first = {0};
    fix_make(&f, d, 60 + (uint64_t)_i);
    double *x = ss_test_to_f64(&f.x), *w = ss_test_to_f64(&f.w), *b = ss_test_to_f64(&f.b);
    double *dy = ss_test_to_f64(&f.dy), *y = ss_test_dalloc(d->t * d->out);
    double *dw = ss_test_dalloc(d->out * d->in), *db = ss_test_dalloc(d->out);
    ss_ref_linear_fwd(y, x, w, b, d->t, d->in, d->out);
    ss_ref_linear_bwd_weight(dw, db, dy, x, d->t, d->in, d->out);
    double *dx = ss_test_dalloc(d->t * d->in);
    ss_ref_linear_bwd_data(dx, dy, w, d->t, d->in, d->out);
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        ss_exec_t ex = {nt, work, bytes, NULL};
        fill_nan(&f.dx);
        ck_assert_int_eq(ss_linear_bwd_data(&f.dx, &f.dy, &f.w, 0.0f, &ex, NULL), SS_OK);
        expect_close(&f.dx, dx, 1e-6 * (double)d->out, 1e-5, "dx (small tokens)", _i);
        ck_assert_int_eq(ss_linear_bwd_data(&f.dx, &f.dy, &f.w, 1.0f, &ex, NULL), SS_OK);
        for (int64_t i = 0; i < d->t * d->in; i++) {
            dx[i] *= 2;
        }
        expect_close(&f.dx, dx, 2e-6 * (double)d->out, 1e-5, "dx accumulated (small tokens)", _i);
        for (int64_t i = 0; i < d->t * d->in; i++) {
            dx[i] /= 2;
        }
        fill_nan(&f.y);
        fill_nan(&f.dw);
        ck_assert_int_eq(ss_linear_fwd(&f.y, &f.x, &f.w, &f.b, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_linear_bwd_weight(&f.dw, &f.db, &f.dy, &f.x, 0.0f, &ex, NULL), SS_OK);
        expect_close(&f.y, y, 1e-6 * (double)d->in, 1e-5, "y (small tokens)", _i);
        expect_close(&f.dw, dw, 1e-6 * (double)d->t, 1e-5, "dw (small tokens)", _i);
        if (nt == 1) {
            first = f;
            first.y.data = malloc(ss_tensor_nbytes(&f.y));
            first.dw.data = malloc(ss_tensor_nbytes(&f.dw));
            memcpy(first.y.data, f.y.data, ss_tensor_nbytes(&f.y));
            memcpy(first.dw.data, f.dw.data, ss_tensor_nbytes(&f.dw));
        } else if (bytes > 0) {
            ck_assert_msg(memcmp(first.y.data, f.y.data, ss_tensor_nbytes(&f.y)) == 0,
                          "case %d: y differs between 1 and %d threads", _i, nt);
            ck_assert_msg(memcmp(first.dw.data, f.dw.data, ss_tensor_nbytes(&f.dw)) == 0,
                          "case %d: dw differs between 1 and %d threads", _i, nt);
        }
        // Accumulate: beta 1 adds a second dw.
        ck_assert_int_eq(ss_linear_bwd_weight(&f.dw, NULL, &f.dy, &f.x, 1.0f, &ex, NULL), SS_OK);
        for (int64_t i = 0; i < d->out * d->in; i++) {
            dw[i] *= 2;
        }
        expect_close(&f.dw, dw, 2e-6 * (double)d->t, 1e-5, "dw accumulated (small tokens)", _i);
        for (int64_t i = 0; i < d->out * d->in; i++) {
            dw[i] /= 2;
        }
        // Without a bias y is overwritten (NaN before).
        fill_nan(&f.y);
        ck_assert_int_eq(ss_linear_fwd(&f.y, &f.x, &f.w, NULL, &ex, NULL), SS_OK);
        double *y0 = ss_test_dalloc(d->t * d->out);
        ss_ref_linear_fwd(y0, x, w, NULL, d->t, d->in, d->out);
        expect_close(&f.y, y0, 1e-6 * (double)d->in, 1e-5, "y no bias (small tokens)", _i);
        free(y0);
    }
    free(first.y.data);
    free(first.dw.data);
    free(x);
    free(w);
    free(b);
    free(dy);
    free(y);
    free(dw);
    free(db);
    free(dx);
    free(work);
    fix_free(&f);
}
END_TEST

// A token shard's rows of y equal the whole tensor's rows (within the float tolerance: the BLAS
// may block a shorter matrix differently).
START_TEST(test_token_shard)
{
    const lshape_t d = {130, 97, 259};
    fix_t f;
    fix_make(&f, &d, 61);
    ss_exec_t ex = exec_nt(2);
    ck_assert_int_eq(ss_linear_fwd(&f.y, &f.x, &f.w, &f.b, &ex, NULL), SS_OK);
    ss_tensor_t xs, ys;
    ck_assert_int_eq(ss_tensor_view_slab(&xs, &f.x, 0, 40, 50, NULL), SS_OK);
    int64_t shp[2] = {50, d.out};
    tens(&ys, 2, shp, 0);
    ck_assert_int_eq(ss_linear_fwd(&ys, &xs, &f.w, &f.b, &ex, NULL), SS_OK);
    double *want = ss_test_dalloc(50 * d.out);
    for (int64_t i = 0; i < 50 * d.out; i++) {
        want[i] = ss_tensor_f32(&f.y)[40 * d.out + i];
    }
    expect_close(&ys, want, 1e-6 * (double)d.in, 1e-5, "shard y", 0);
    free(want);
    free(ys.data);
    fix_free(&f);
}
END_TEST

// ---- finite differences of the reference backward ---------------------------------------------

typedef struct {
    int64_t t, in, out;
    double *x, *w, *b, *g, *y; // loss = sum(g * y)
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    ss_ref_linear_fwd(c->y, c->x, c->w, c->b, c->t, c->in, c->out);
    double l = 0;
    for (int64_t i = 0; i < c->t * c->out; i++) {
        l += c->g[i] * c->y[i];
    }
    return l;
}

static double *rand_f64(int64_t n, uint64_t seed)
{
    float *f = malloc(sizeof(float) * (size_t)n);
    double *d = ss_test_dalloc(n);
    ss_test_fill(f, n, seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i++) {
        d[i] = f[i];
    }
    free(f);
    return d;
}

// Central differences, h = 1e-6: the loss is linear in each variable, so only rounding
// (~1e-16 * |L| / h) remains; tolerance 1e-7 * (1 + |grad|).
static void fd_compare(fd_ctx_t *c, double *var, const double *grad, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double fd = ss_test_fd(fd_loss, c, var, i, 1e-6);
        ck_assert_msg(fabs(fd - grad[i]) <= 1e-7 * (1 + fabs(grad[i])),
                      "%s[%lld]: fd %.12g vs %.12g", what, (long long)i, fd, grad[i]);
    }
}

START_TEST(test_ref_fd)
{
    fd_ctx_t c = {5,
                  4,
                  3,
                  rand_f64(20, 1),
                  rand_f64(12, 2),
                  rand_f64(3, 3),
                  rand_f64(15, 4),
                  ss_test_dalloc(15)};
    double *dx = ss_test_dalloc(20), *dw = ss_test_dalloc(12), *db = ss_test_dalloc(3);
    ss_ref_linear_bwd_data(dx, c.g, c.w, c.t, c.in, c.out);
    ss_ref_linear_bwd_weight(dw, db, c.g, c.x, c.t, c.in, c.out);
    fd_compare(&c, c.x, dx, 20, "dx");
    fd_compare(&c, c.w, dw, 12, "dw");
    fd_compare(&c, c.b, db, 3, "db");
    double *bufs[] = {c.x, c.w, c.b, c.g, c.y, dx, dw, db};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        free(bufs[i]);
    }
}
END_TEST

// ---- golden values ----------------------------------------------------------------------------

static const char *GOLDEN = "golden_linear.h5";

static void golden_tensor(ss_tensor_t *t, const char *cas, const char *key)
{
    char name[128];
    snprintf(name, sizeof(name), "%s/%s", cas, key);
    int64_t shape[8];
    int nd;
    float *data = ss_test_golden(GOLDEN, name, shape, &nd);
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, nd, shape, data, NULL), SS_OK);
}

// rtol 1e-5, atol 1e-5: float GEMMs of length <= 13 against float64 PyTorch.
static void golden_expect(const ss_tensor_t *got, const char *cas, const char *key)
{
    char name[128];
    snprintf(name, sizeof(name), "%s/%s", cas, key);
    int64_t shape[8];
    int nd;
    double *want = ss_test_golden_f64(GOLDEN, name, shape, &nd);
    ck_assert_int_eq(nd, got->ndim);
    double e = ss_test_err_f64(ss_tensor_f32(got), want, ss_tensor_numel(got), 1e-5, 1e-5);
    ck_assert_msg(e <= 1.0, "golden %s: error %g of tolerance", name, e);
    free(want);
}

START_TEST(test_golden)
{
    static const char *CASES[] = {"linear", "linear_nobias"};
    const char *cas = CASES[_i];
    int bias = _i == 0;
    ss_tensor_t x, w, b = {0}, dy, y, dx, dw, db = {0};
    golden_tensor(&x, cas, "x");
    golden_tensor(&w, cas, "w");
    golden_tensor(&dy, cas, "dy");
    if (bias) {
        golden_tensor(&b, cas, "b");
        tens(&db, 1, b.shape, 0);
    }
    tens(&y, dy.ndim, dy.shape, 0);
    tens(&dx, x.ndim, x.shape, 0);
    tens(&dw, 2, w.shape, 0);
    ss_exec_t ex = exec_nt(2);
    ss_error_t err;
    ck_assert_int_eq(ss_linear_fwd(&y, &x, &w, bias ? &b : NULL, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_linear_bwd_data(&dx, &dy, &w, 0.0f, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_linear_bwd_weight(&dw, bias ? &db : NULL, &dy, &x, 0.0f, &ex, &err), SS_OK);
    golden_expect(&y, cas, "y");
    golden_expect(&dx, cas, "dx");
    golden_expect(&dw, cas, "dw");
    if (bias) {
        golden_expect(&db, cas, "db");
    }
    ss_tensor_t *ts[] = {&x, &w, &b, &dy, &y, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
}
END_TEST

START_TEST(test_bad_args)
{
    const lshape_t d = {6, 5, 4};
    fix_t f;
    fix_make(&f, &d, 71);
    ss_exec_t ex = exec_nt(2), bad = exec_nt(0);
    ss_error_t err;
#define EXPECT(call, code)                                                                         \
    do {                                                                                           \
        memset(&err, 0, sizeof(err));                                                              \
        ck_assert_int_eq((call), (code));                                                          \
        ck_assert_int_gt((int)strlen(err.msg), 0);                                                 \
    } while (0)
    // y of (t, in) instead of (t, out); w transposed; b of the wrong length.
    EXPECT(ss_linear_fwd(&f.dx, &f.x, &f.w, NULL, &ex, &err), SS_ESHAPE);
    ss_tensor_t wt;
    int64_t wts[2] = {d.in, d.out};
    ck_assert_int_eq(ss_tensor_init(&wt, SS_F32, 2, wts, f.w.data, NULL), SS_OK);
    EXPECT(ss_linear_fwd(&f.y, &f.x, &wt, NULL, &ex, &err), SS_ESHAPE);
    EXPECT(ss_linear_fwd(&f.y, &f.x, &f.w, &f.x, &ex, &err), SS_ESHAPE);
    EXPECT(ss_linear_fwd(&f.y, &f.x, &f.w, NULL, &bad, &err), SS_EINVAL);
    // Leading dims must match: x (6, 5) against y (2, 3, 4).
    ss_tensor_t y3;
    int64_t y3s[3] = {2, 3, d.out};
    ck_assert_int_eq(ss_tensor_init(&y3, SS_F32, 3, y3s, f.y.data, NULL), SS_OK);
    EXPECT(ss_linear_fwd(&y3, &f.x, &f.w, NULL, &ex, &err), SS_ESHAPE);
    // Non-contiguous x (a column slab).
    ss_tensor_t xc;
    ck_assert_int_eq(ss_tensor_view_slab(&xc, &f.x, 1, 0, 4, NULL), SS_OK);
    EXPECT(ss_linear_bwd_weight(&f.dw, NULL, &f.dy, &xc, 0.0f, &ex, &err), SS_ESHAPE);
    EXPECT(ss_linear_bwd_data(&f.dx, &f.y, &wt, 0.0f, &ex, &err), SS_ESHAPE);
    EXPECT(ss_linear_bwd_weight(&f.dw, &f.dx, &f.dy, &f.x, 0.0f, &ex, &err), SS_ESHAPE);
#undef EXPECT
    fix_free(&f);
}
END_TEST

static Suite *linear_suite(void)
{
    Suite *s = suite_create("linear");
    TCase *tc = tcase_create("tc_ss_linear_fwd");
    tcase_add_loop_test(tc, test_fwd_vs_ref, 0, NSHAPES);
    tcase_add_loop_test(tc, test_golden, 0, 2);
    tcase_add_loop_test(tc, test_threads_invariant, 0, NSHAPES);
    tcase_add_loop_test(tc, test_small_tokens, 0, 6);
    tcase_add_test(tc, test_token_shard);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_linear_bwd_data");
    tcase_add_loop_test(tc, test_bwd_data_vs_ref, 0, NSHAPES);
    tcase_add_test(tc, test_ref_fd);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_linear_bwd_weight");
    tcase_add_loop_test(tc, test_bwd_weight_vs_ref, 0, NSHAPES);
    tcase_add_test(tc, test_bwd_weight_accumulate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(linear_suite());
}
