// Tests of convt3d: fast float kernels against the double reference (odd shapes, several tiles and
// channel blocks), finite differences of the reference backward, PyTorch golden values,
// thread-count invariance, slab locality and argument validation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/convt3d.h"

#include "ref/convt3d_ref.h"
#include "testutil.h"

#define MAX_THREADS 3

typedef struct {
    int64_t n, cin, cout, i, j, k, s[3];
} shape_t;

// Sizes 1, primes and non-multiples of every tile; the larger ones span several column tiles
// (runs split inside a k-row), several bwd_weight reduction groups and output-channel blocks.
static const shape_t SHAPES[] = {
    {1, 1, 1, 1, 1, 1, {2, 2, 2}},     {2, 3, 5, 3, 7, 5, {2, 2, 2}},
    {1, 7, 3, 5, 1, 13, {2, 2, 2}},    {3, 4, 19, 3, 5, 7, {2, 2, 2}},
    {1, 3, 5, 13, 11, 19, {2, 2, 2}},  {1, 2, 33, 9, 10, 11, {2, 2, 2}},
    {2, 3, 9, 7, 11, 17, {2, 2, 2}},   {2, 3, 4, 3, 2, 5, {3, 1, 2}},
    {1, 2, 3, 4, 3, 2, {1, 1, 1}},     {1, 64, 32, 3, 4, 5, {2, 2, 2}},
    {1, 300, 160, 5, 6, 7, {2, 2, 2}}, // 1.5 MiB weight: fewer dW groups, two channel blocks
};
#define NSHAPES ((int)(sizeof(SHAPES) / sizeof(SHAPES[0])))

typedef struct {
    shape_t d;
    ss_convt3d_params_t p;
    ss_tensor_t x, w, b, y, dy, dx, dw, db;
    void *work;
    size_t work_bytes;
} fix_t;

static int64_t ss_of(const shape_t *d)
{
    return d->s[0] * d->s[1] * d->s[2];
}

static void make_tensor(ss_tensor_t *t, int ndim, const int64_t *shape, uint64_t seed)
{
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, ndim, shape, NULL, NULL), SS_OK);
    int64_t n = ss_tensor_numel(t);
    t->data = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    ck_assert_ptr_nonnull(t->data);
    if (seed != 0) {
        ss_test_fill(ss_tensor_f32(t), n, seed, -1.0f, 1.0f);
    }
}

static void fix_make(fix_t *f, const shape_t *d, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->d = *d;
    memcpy(f->p.stride, d->s, sizeof(d->s));
    int64_t xs[5] = {d->n, d->cin, d->i, d->j, d->k};
    int64_t ys[5] = {d->n, d->cout, d->i * d->s[0], d->j * d->s[1], d->k * d->s[2]};
    int64_t ws[5] = {d->cin, d->cout, d->s[0], d->s[1], d->s[2]};
    make_tensor(&f->x, 5, xs, seed);
    make_tensor(&f->w, 5, ws, seed + 1);
    make_tensor(&f->b, 1, &d->cout, seed + 2);
    make_tensor(&f->dy, 5, ys, seed + 3);
    make_tensor(&f->y, 5, ys, 0);
    make_tensor(&f->dx, 5, xs, 0);
    make_tensor(&f->dw, 5, ws, 0);
    make_tensor(&f->db, 1, &d->cout, 0);
    f->work_bytes = ss_convt3d_workspace_size(&f->x, &f->w, &f->p, MAX_THREADS);
    ck_assert_uint_gt(f->work_bytes, 0);
    f->work = aligned_alloc(64, (f->work_bytes + 63) / 64 * 64);
    ck_assert_ptr_nonnull(f->work);
}

static void fix_free(fix_t *f)
{
    ss_tensor_t *ts[] = {&f->x, &f->w, &f->b, &f->y, &f->dy, &f->dx, &f->dw, &f->db};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
    free(f->work);
}

static ss_exec_t exec_of(const fix_t *f, int nt)
{
    ss_exec_t ex = {nt, f->work, f->work_bytes, NULL};
    return ex;
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

static ss_ref_convt3d_dims_t ref_dims(const shape_t *d)
{
    ss_ref_convt3d_dims_t r = {
        d->n, d->cin, d->cout, d->i, d->j, d->k, {d->s[0], d->s[1], d->s[2]}};
    return r;
}

// Largest |a - b| / (atol + rtol |b|) with a float result and a double reference.
static double rel_err_f64(const float *a, const double *b, int64_t n, double atol, double rtol)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        worst = (e > worst || isnan(e)) ? (isnan(e) ? INFINITY : e) : worst;
    }
    return worst;
}

// Float kernels vs the double reference. Tolerance: rtol 1e-5 plus atol 1e-6 * L, where L is the
// reduction length (Cin for y, Cout*S for dx, N*I*J*K for dw and db): float summation error
// grows with L, the reference's is negligible.
START_TEST(test_fwd_vs_ref)
{
    const shape_t *d = &SHAPES[_i];
    fix_t f;
    fix_make(&f, d, 100 + (uint64_t)_i * 10);
    ss_exec_t ex = exec_of(&f, 2);
    ss_error_t err;
    ck_assert_int_eq(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &f.p, &ex, &err), SS_OK);
    double *x = to_f64(&f.x), *w = to_f64(&f.w), *b = to_f64(&f.b);
    double *y = malloc(sizeof(double) * (size_t)ss_tensor_numel(&f.y));
    ss_ref_convt3d_dims_t rd = ref_dims(d);
    ss_ref_convt3d_fwd(y, x, w, b, &rd);
    double e =
        rel_err_f64(ss_tensor_f32(&f.y), y, ss_tensor_numel(&f.y), 1e-6 * (double)d->cin, 1e-5);
    ck_assert_msg(e <= 1.0, "shape %d: y error %g of tolerance", _i, e);
    // Without bias.
    ck_assert_int_eq(ss_convt3d_fwd(&f.y, &f.x, &f.w, NULL, &f.p, &ex, &err), SS_OK);
    ss_ref_convt3d_fwd(y, x, w, NULL, &rd);
    e = rel_err_f64(ss_tensor_f32(&f.y), y, ss_tensor_numel(&f.y), 1e-6 * (double)d->cin, 1e-5);
    ck_assert_msg(e <= 1.0, "shape %d: y (no bias) error %g of tolerance", _i, e);
    free(x);
    free(w);
    free(b);
    free(y);
    fix_free(&f);
}
END_TEST

START_TEST(test_bwd_data_vs_ref)
{
    const shape_t *d = &SHAPES[_i];
    fix_t f;
    fix_make(&f, d, 200 + (uint64_t)_i * 10);
    ss_exec_t ex = exec_of(&f, 2);
    ck_assert_int_eq(ss_convt3d_bwd_data(&f.dx, &f.dy, &f.w, &f.p, &ex, NULL), SS_OK);
    double *dy = to_f64(&f.dy), *w = to_f64(&f.w);
    double *dx = malloc(sizeof(double) * (size_t)ss_tensor_numel(&f.dx));
    ss_ref_convt3d_dims_t rd = ref_dims(d);
    ss_ref_convt3d_bwd_data(dx, dy, w, &rd);
    double e = rel_err_f64(ss_tensor_f32(&f.dx), dx, ss_tensor_numel(&f.dx),
                           1e-6 * (double)(d->cout * ss_of(d)), 1e-5);
    ck_assert_msg(e <= 1.0, "shape %d: dx error %g of tolerance", _i, e);
    free(dy);
    free(w);
    free(dx);
    fix_free(&f);
}
END_TEST

START_TEST(test_bwd_weight_vs_ref)
{
    const shape_t *d = &SHAPES[_i];
    fix_t f;
    fix_make(&f, d, 300 + (uint64_t)_i * 10);
    ss_exec_t ex = exec_of(&f, 2);
    ck_assert_int_eq(ss_convt3d_bwd_weight(&f.dw, &f.db, &f.x, &f.dy, &f.p, &ex, NULL), SS_OK);
    double *x = to_f64(&f.x), *dy = to_f64(&f.dy);
    double *dw = malloc(sizeof(double) * (size_t)ss_tensor_numel(&f.dw));
    double *db = malloc(sizeof(double) * (size_t)d->cout);
    ss_ref_convt3d_dims_t rd = ref_dims(d);
    ss_ref_convt3d_bwd_weight(dw, db, x, dy, &rd);
    double len = (double)(d->n * d->i * d->j * d->k);
    double e = rel_err_f64(ss_tensor_f32(&f.dw), dw, ss_tensor_numel(&f.dw), 1e-6 * len, 1e-5);
    ck_assert_msg(e <= 1.0, "shape %d: dw error %g of tolerance", _i, e);
    e = rel_err_f64(ss_tensor_f32(&f.db), db, d->cout, 1e-6 * len * (double)ss_of(d), 1e-5);
    ck_assert_msg(e <= 1.0, "shape %d: db error %g of tolerance", _i, e);
    // db == NULL leaves dw unchanged.
    ck_assert_int_eq(ss_convt3d_bwd_weight(&f.dw, NULL, &f.x, &f.dy, &f.p, &ex, NULL), SS_OK);
    e = rel_err_f64(ss_tensor_f32(&f.dw), dw, ss_tensor_numel(&f.dw), 1e-6 * len, 1e-5);
    ck_assert_msg(e <= 1.0, "shape %d: dw (no db) error %g of tolerance", _i, e);
    free(x);
    free(dy);
    free(dw);
    free(db);
    fix_free(&f);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Finite differences of the double reference: L = sum(y * g). L is linear in each variable, so
// the central difference is exact up to rounding (~1e-16 |L| / h); tolerance 1e-7 abs + rel.

typedef struct {
    ss_ref_convt3d_dims_t d;
    double *x, *w, *b, *g, *y;
    int64_t ny;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    ss_ref_convt3d_fwd(c->y, c->x, c->w, c->b, &c->d);
    double l = 0;
    for (int64_t i = 0; i < c->ny; i++) {
        l += c->y[i] * c->g[i];
    }
    return l;
}

static void fd_compare(fd_ctx_t *c, double *var, const double *grad, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double fd = ss_test_fd(fd_loss, c, var, i, 1e-6);
        ck_assert_msg(fabs(fd - grad[i]) <= 1e-7 * (1 + fabs(grad[i])),
                      "%s[%lld]: fd %.12g vs %.12g", what, (long long)i, fd, grad[i]);
    }
}

static double *rand_f64(int64_t n, uint64_t seed)
{
    float *f = malloc(sizeof(float) * (size_t)n);
    double *d = malloc(sizeof(double) * (size_t)n);
    ss_test_fill(f, n, seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i++) {
        d[i] = f[i];
    }
    free(f);
    return d;
}

START_TEST(test_ref_fd)
{
    static const ss_ref_convt3d_dims_t CASES[] = {{1, 2, 3, 2, 3, 2, {2, 2, 2}},
                                                  {2, 2, 2, 2, 1, 3, {3, 1, 2}}};
    const ss_ref_convt3d_dims_t *d = &CASES[_i];
    int64_t nx = d->n * d->cin * d->i * d->j * d->k,
            nw = d->cin * d->cout * d->s[0] * d->s[1] * d->s[2];
    fd_ctx_t c = {*d, rand_f64(nx, 1), rand_f64(nw, 2), rand_f64(d->cout, 3), NULL, NULL, 0};
    c.ny = d->n * d->cout * d->i * d->j * d->k * d->s[0] * d->s[1] * d->s[2];
    c.g = rand_f64(c.ny, 4);
    c.y = malloc(sizeof(double) * (size_t)c.ny);
    double *dx = malloc(sizeof(double) * (size_t)nx), *dw = malloc(sizeof(double) * (size_t)nw);
    double *db = malloc(sizeof(double) * (size_t)d->cout);
    ss_ref_convt3d_bwd_data(dx, c.g, c.w, d);
    ss_ref_convt3d_bwd_weight(dw, db, c.x, c.g, d);
    fd_compare(&c, c.x, dx, nx, "dx");
    fd_compare(&c, c.w, dw, nw, "dw");
    fd_compare(&c, c.b, db, d->cout, "db");
    double *bufs[] = {c.x, c.w, c.b, c.g, c.y, dx, dw, db};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        free(bufs[i]);
    }
}
END_TEST

// ---------------------------------------------------------------------------------------------
// PyTorch golden values (tests/golden/make_golden_convt3d.py): rtol 1e-5, atol 1e-5 (the inputs
// are rounded to float32, which moves results by ~1e-7 relative to the float64 PyTorch values).

static float *golden(const char *cas, const char *key, int64_t *shape, int *ndim)
{
    char name[64];
    snprintf(name, sizeof(name), "%s_%s", cas, key);
    return ss_test_golden("golden_convt3d.h5", name, shape, ndim);
}

static void golden_tensor(ss_tensor_t *t, const char *cas, const char *key)
{
    int64_t shape[8];
    int nd;
    float *data = golden(cas, key, shape, &nd);
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
    static const char *CASES[] = {"s2", "s312"};
    static const int64_t STRIDES[][3] = {{2, 2, 2}, {3, 1, 2}};
    const char *cas = CASES[_i];
    ss_tensor_t x, w, b, gy, y, gx, gw, gb;
    golden_tensor(&x, cas, "x");
    golden_tensor(&w, cas, "w");
    golden_tensor(&b, cas, "b");
    golden_tensor(&gy, cas, "gy");
    ss_convt3d_params_t p = {{STRIDES[_i][0], STRIDES[_i][1], STRIDES[_i][2]}};
    size_t wb = ss_convt3d_workspace_size(&x, &w, &p, 2);
    void *work = malloc(wb);
    ss_exec_t ex = {2, work, wb, NULL};
    make_tensor(&y, 5, gy.shape, 0);
    make_tensor(&gx, 5, x.shape, 0);
    make_tensor(&gw, 5, w.shape, 0);
    make_tensor(&gb, 1, b.shape, 0);
    ck_assert_int_eq(ss_convt3d_fwd(&y, &x, &w, &b, &p, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_convt3d_bwd_data(&gx, &gy, &w, &p, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_convt3d_bwd_weight(&gw, &gb, &x, &gy, &p, &ex, NULL), SS_OK);
    golden_expect(&y, cas, "y");
    golden_expect(&gx, cas, "gx");
    golden_expect(&gw, cas, "gw");
    golden_expect(&gb, cas, "gb");
    ss_tensor_t *ts[] = {&x, &w, &b, &gy, &y, &gx, &gw, &gb};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
    free(work);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Thread-count invariance: tiles and channel blocks are fixed by the shapes, so 1, 2 and 3
// threads must give the same bits.

static void *copy_bytes(const ss_tensor_t *t)
{
    void *c = malloc(ss_tensor_nbytes(t) + 1);
    memcpy(c, t->data, ss_tensor_nbytes(t));
    return c;
}

START_TEST(test_threads_bitwise)
{
    const shape_t *d = &SHAPES[_i];
    fix_t f;
    fix_make(&f, d, 400 + (uint64_t)_i);
    void *want[4] = {NULL};
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        ss_exec_t ex = exec_of(&f, nt);
        ck_assert_int_eq(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &f.p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_convt3d_bwd_data(&f.dx, &f.dy, &f.w, &f.p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_convt3d_bwd_weight(&f.dw, &f.db, &f.x, &f.dy, &f.p, &ex, NULL), SS_OK);
        const ss_tensor_t *outs[4] = {&f.y, &f.dx, &f.dw, &f.db};
        for (int o = 0; o < 4; o++) {
            if (nt == 1) {
                want[o] = copy_bytes(outs[o]);
            } else {
                ck_assert_msg(memcmp(want[o], outs[o]->data, ss_tensor_nbytes(outs[o])) == 0,
                              "shape %d output %d differs with %d threads", _i, o, nt);
            }
        }
    }
    for (int o = 0; o < 4; o++) {
        free(want[o]);
    }
    fix_free(&f);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Slab locality (sequence parallelism): running on input planes [i0, i1) gives output planes
// [2 i0, 2 i1) of the full result bit for bit, and the slabs' dW partials sum to the full dW.

static void slab_of(ss_tensor_t *slab, const ss_tensor_t *full, int64_t i0, int64_t len)
{
    int64_t shape[5] = {full->shape[0], full->shape[1], len, full->shape[3], full->shape[4]};
    make_tensor(slab, 5, shape, 0);
    int64_t plane = full->shape[3] * full->shape[4];
    for (int64_t nc = 0; nc < full->shape[0] * full->shape[1]; nc++) {
        memcpy(ss_tensor_f32(slab) + nc * len * plane,
               ss_tensor_f32(full) + (nc * full->shape[2] + i0) * plane,
               sizeof(float) * (size_t)(len * plane));
    }
}

START_TEST(test_slab_local)
{
    const shape_t d = {2, 3, 5, 5, 4, 3, {2, 2, 2}};
    fix_t f;
    fix_make(&f, &d, 77);
    ss_exec_t ex = exec_of(&f, 2);
    ck_assert_int_eq(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &f.p, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_convt3d_bwd_weight(&f.dw, &f.db, &f.x, &f.dy, &f.p, &ex, NULL), SS_OK);
    const int64_t cuts[] = {0, 2, 2, 5}; // includes an empty slab
    double dwsum[3 * 5 * 8] = {0};
    for (int s = 0; s < 3; s++) {
        int64_t i0 = cuts[s], len = cuts[s + 1] - cuts[s];
        ss_tensor_t xs, ys, dys, want, dw;
        slab_of(&xs, &f.x, i0, len);
        slab_of(&dys, &f.dy, 2 * i0, 2 * len);
        slab_of(&want, &f.y, 2 * i0, 2 * len);
        make_tensor(&ys, 5, want.shape, 0);
        make_tensor(&dw, 5, f.w.shape, 9); // garbage: must be overwritten
        ck_assert_int_eq(ss_convt3d_fwd(&ys, &xs, &f.w, &f.b, &f.p, &ex, NULL), SS_OK);
        ck_assert(memcmp(ys.data, want.data, ss_tensor_nbytes(&ys)) == 0);
        ck_assert_int_eq(ss_convt3d_bwd_weight(&dw, NULL, &xs, &dys, &f.p, &ex, NULL), SS_OK);
        for (int e = 0; e < 3 * 5 * 8; e++) {
            dwsum[e] += ss_tensor_f32(&dw)[e];
        }
        free(xs.data);
        free(ys.data);
        free(dys.data);
        free(want.data);
        free(dw.data);
    }
    for (int e = 0; e < 3 * 5 * 8; e++) {
        ck_assert_double_eq_tol(dwsum[e], ss_tensor_f32(&f.dw)[e], 1e-5);
    }
    fix_free(&f);
}
END_TEST

START_TEST(test_empty_slab_zeroes_grads)
{
    const shape_t d = {1, 3, 4, 0, 2, 2, {2, 2, 2}};
    fix_t f;
    fix_make(&f, &d, 5);
    ss_test_fill(ss_tensor_f32(&f.dw), ss_tensor_numel(&f.dw), 6, 1.0f, 2.0f);
    ss_test_fill(ss_tensor_f32(&f.db), 4, 7, 1.0f, 2.0f);
    ss_exec_t ex = exec_of(&f, 2);
    ck_assert_int_eq(ss_convt3d_bwd_weight(&f.dw, &f.db, &f.x, &f.dy, &f.p, &ex, NULL), SS_OK);
    for (int64_t e = 0; e < ss_tensor_numel(&f.dw); e++) {
        ck_assert_float_eq(ss_tensor_f32(&f.dw)[e], 0.0f);
    }
    for (int64_t e = 0; e < 4; e++) {
        ck_assert_float_eq(ss_tensor_f32(&f.db)[e], 0.0f);
    }
    ck_assert_int_eq(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &f.p, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_convt3d_bwd_data(&f.dx, &f.dy, &f.w, &f.p, &ex, NULL), SS_OK);
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
    const shape_t d = {1, 2, 3, 2, 3, 4, {2, 2, 2}};
    fix_t f;
    fix_make(&f, &d, 11);
    ss_exec_t ex = exec_of(&f, 2);
    ss_error_t err;
    ss_tensor_t t;
    // Output of the wrong size.
    t = f.y;
    t.shape[4] = 7;
    t.stride[3] = 7;
    t.stride[2] = 7 * t.shape[3];
    t.stride[1] = t.stride[2] * t.shape[2];
    t.stride[0] = t.stride[1] * t.shape[1];
    expect_fail(ss_convt3d_fwd(&t, &f.x, &f.w, &f.b, &f.p, &ex, &err), SS_ESHAPE, &err, "y");
    expect_fail(ss_convt3d_bwd_data(&f.dx, &t, &f.w, &f.p, &ex, &err), SS_ESHAPE, &err, "dy");
    // Kernel != stride.
    ss_convt3d_params_t p3 = {{3, 2, 2}};
    expect_fail(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &p3, &ex, &err), SS_ESHAPE, &err, "w");
    ss_convt3d_params_t p0 = {{0, 2, 2}};
    expect_fail(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &p0, &ex, &err), SS_EINVAL, &err, "stride");
    // Channel mismatch between x and w.
    t = f.x;
    t.shape[1] = 1;
    t.stride[0] = t.stride[1];
    expect_fail(ss_convt3d_fwd(&f.y, &t, &f.w, &f.b, &f.p, &ex, &err), SS_ESHAPE, &err, "w");
    // Bias of the wrong length, wrong rank.
    t = f.b;
    t.shape[0] = 2;
    expect_fail(ss_convt3d_fwd(&f.y, &f.x, &f.w, &t, &f.p, &ex, &err), SS_ESHAPE, &err, "b");
    ss_tensor_view_reshape(&t, &f.x, 4, (int64_t[]){2, 2, 3, 4}, NULL);
    expect_fail(ss_convt3d_fwd(&f.y, &t, &f.w, &f.b, &f.p, &ex, &err), SS_ESHAPE, &err, "x");
    // A non-contiguous view.
    ss_tensor_view_slab(&t, &f.x, 4, 0, 2, NULL);
    expect_fail(ss_convt3d_bwd_weight(&f.dw, &f.db, &t, &f.dy, &f.p, &ex, &err), SS_EINVAL, &err,
                "contiguous");
    // Workspace too small, bad thread count.
    ss_exec_t small = ex;
    small.work_bytes = 16;
    expect_fail(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &f.p, &small, &err), SS_EINVAL, &err,
                "workspace");
    small = ex;
    small.nthreads = 0;
    expect_fail(ss_convt3d_fwd(&f.y, &f.x, &f.w, &f.b, &f.p, &small, &err), SS_EINVAL, &err,
                "nthreads");
    // Output aliasing an input.
    t = f.dx;
    t.data = f.dy.data;
    expect_fail(ss_convt3d_bwd_data(&t, &f.dy, &f.w, &f.p, &ex, &err), SS_EINVAL, &err, "overlap");
    t = f.y;
    t.data = f.x.data;
    expect_fail(ss_convt3d_fwd(&t, &f.x, &f.w, &f.b, &f.p, &ex, &err), SS_EINVAL, &err, "overlap");
    fix_free(&f);
}
END_TEST

START_TEST(test_workspace_size)
{
    const shape_t d = {2, 64, 32, 8, 8, 8, {2, 2, 2}};
    fix_t f;
    fix_make(&f, &d, 3);
    size_t one = ss_convt3d_workspace_size(&f.x, &f.w, &f.p, 1);
    size_t two = ss_convt3d_workspace_size(&f.x, &f.w, &f.p, 2);
    ck_assert_uint_gt(one, 0);
    ck_assert_uint_gt(two, one);
    // A tile of Y8 is bounded (256 KiB per thread plus the db accumulator), whatever the volume.
    ck_assert_uint_le(two - one, 300u * 1024u);
    ck_assert_uint_eq(ss_convt3d_workspace_size(NULL, &f.w, &f.p, 1), 0);
    ss_convt3d_params_t p0 = {{2, 0, 2}};
    ck_assert_uint_eq(ss_convt3d_workspace_size(&f.x, &f.w, &p0, 1), 0);
    fix_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("convt3d");
    TCase *tc = tcase_create("tc_ss_convt3d_fwd");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_fwd_vs_ref, 0, NSHAPES);
    tcase_add_loop_test(tc, test_golden, 0, 2);
    tcase_add_loop_test(tc, test_threads_bitwise, 0, NSHAPES);
    tcase_add_test(tc, test_slab_local);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_convt3d_bwd_data");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bwd_data_vs_ref, 0, NSHAPES);
    tcase_add_loop_test(tc, test_ref_fd, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_convt3d_bwd_weight");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bwd_weight_vs_ref, 0, NSHAPES);
    tcase_add_test(tc, test_empty_slab_zeroes_grads);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_convt3d_workspace_size");
    tcase_add_test(tc, test_workspace_size);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
