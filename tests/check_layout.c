// Tests of layout: strided copy, concat, slab get/put/add and pad/crop against the double
// reference (exact: these ops move values without arithmetic, except slab_add whose single
// addition is also exact in the reference comparison below), finite differences of the reference
// backward, PyTorch golden values, thread counts 1..3 and argument validation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/layout.h"

#include "ref/layout_ref.h"
#include "testutil.h"

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

static void expect_exact(const ss_tensor_t *got, const double *want, const char *what, int idx)
{
    for (int64_t e = 0; e < ss_tensor_numel(got); e++) {
        ck_assert_msg((double)ss_tensor_f32(got)[e] == want[e], "%s case %d: [%lld] %g vs %g", what,
                      idx, (long long)e, ss_tensor_f32(got)[e], want[e]);
    }
}

static ss_exec_t exec_n(int nt)
{
    ss_exec_t ex = {nt, NULL, 0, NULL};
    return ex;
}

static void expect_fail(ss_status_t got, ss_status_t want, const ss_error_t *err, const char *word)
{
    ck_assert_int_eq(got, want);
    ck_assert_int_eq(err->code, want);
    ck_assert_msg(strstr(err->msg, word) != NULL, "message '%s' lacks '%s'", err->msg, word);
}

// ---------------------------------------------------------------------------------------------
// ss_layout_copy between strided views: a box of a larger tensor to a contiguous one and back,
// small (serial) and large (threaded), with 1..3 threads.

static const int64_t BOX[][3][5] = {
    // {full shape}, {box start}, {box shape}
    {{2, 3, 5, 6, 7}, {1, 1, 2, 1, 3}, {1, 2, 3, 4, 3}},
    {{1, 4, 40, 33, 31}, {0, 1, 3, 2, 1}, {1, 3, 31, 29, 30}},
    {{3, 2, 9, 1, 17}, {0, 0, 0, 0, 0}, {3, 2, 9, 1, 17}},
    {{1, 2, 3, 4, 5}, {0, 1, 1, 0, 2}, {1, 1, 0, 4, 3}},
};

static void box_of(ss_tensor_t *v, const ss_tensor_t *t, const int64_t *start, const int64_t *len)
{
    *v = *t;
    for (int d = 0; d < 5; d++) {
        ck_assert_int_eq(ss_tensor_view_slab(v, v, d, start[d], len[d], NULL), SS_OK);
    }
}

START_TEST(test_copy_views)
{
    ss_tensor_t full, box, dense, back;
    make_tensor(&full, 5, BOX[_i][0], 1);
    make_tensor(&dense, 5, BOX[_i][2], 0);
    make_tensor(&back, 5, BOX[_i][0], 0);
    box_of(&box, &full, BOX[_i][1], BOX[_i][2]);
    for (int nt = 1; nt <= 3; nt++) {
        ss_exec_t ex = exec_n(nt);
        ck_assert_int_eq(ss_layout_copy(&dense, &box, &ex, NULL), SS_OK);
        int64_t idx[5], n = ss_tensor_numel(&dense);
        for (int64_t e = 0; e < n; e++) {
            int64_t r = e;
            for (int d = 4; d >= 0; d--) {
                idx[d] = r % BOX[_i][2][d];
                r /= BOX[_i][2][d];
            }
            ck_assert(ss_tensor_f32(&dense)[e] == ss_tensor_f32(&box)[ss_tensor_offset(&box, idx)]);
        }
        // Back into a box of a zeroed tensor: the box is restored, the rest stays zero.
        memset(back.data, 0, ss_tensor_nbytes(&back));
        ss_tensor_t bbox;
        box_of(&bbox, &back, BOX[_i][1], BOX[_i][2]);
        ck_assert_int_eq(ss_layout_copy(&bbox, &dense, &ex, NULL), SS_OK);
        double sum_back = 0, sum_dense = 0;
        for (int64_t e = 0; e < ss_tensor_numel(&back); e++) {
            sum_back += fabs(ss_tensor_f32(&back)[e]);
        }
        for (int64_t e = 0; e < n; e++) {
            sum_dense += fabs(ss_tensor_f32(&dense)[e]);
        }
        ck_assert_double_eq_tol(sum_back, sum_dense, 1e-9 * (1 + sum_dense));
    }
    free(full.data);
    free(dense.data);
    free(back.data);
}
END_TEST

START_TEST(test_copy_ranks_and_errors)
{
    ss_exec_t ex = exec_n(2);
    ss_error_t err;
    // Rank 1 and rank 6, contiguous (one run), large enough to be threaded.
    int64_t s1[1] = {100003}, s6[6] = {2, 3, 5, 7, 11, 13};
    ss_tensor_t a, b;
    make_tensor(&a, 1, s1, 3);
    make_tensor(&b, 1, s1, 0);
    ck_assert_int_eq(ss_layout_copy(&b, &a, &ex, NULL), SS_OK);
    ck_assert(memcmp(a.data, b.data, ss_tensor_nbytes(&a)) == 0);
    free(a.data);
    free(b.data);
    make_tensor(&a, 6, s6, 4);
    make_tensor(&b, 6, s6, 0);
    ck_assert_int_eq(ss_layout_copy(&b, &a, &ex, NULL), SS_OK);
    ck_assert(memcmp(a.data, b.data, ss_tensor_nbytes(&a)) == 0);
    // Shape mismatch, negative stride, overlap, NULL, bad exec.
    ss_tensor_t v = b;
    v.shape[5] = 12;
    expect_fail(ss_layout_copy(&v, &a, &ex, &err), SS_ESHAPE, &err, "shape");
    v = b;
    v.stride[5] = -1;
    expect_fail(ss_layout_copy(&v, &a, &ex, &err), SS_EINVAL, &err, "negative");
    expect_fail(ss_layout_copy(&a, &a, &ex, &err), SS_EINVAL, &err, "overlap");
    expect_fail(ss_layout_copy(NULL, &a, &ex, &err), SS_EINVAL, &err, "NULL");
    ss_exec_t bad = exec_n(0);
    expect_fail(ss_layout_copy(&b, &a, &bad, &err), SS_EINVAL, &err, "nthreads");
    free(a.data);
    free(b.data);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Concatenation.

static const int64_t CAT[][6] = {
    // n, ca, cb, i, j, k
    {1, 1, 1, 1, 1, 1},  {2, 3, 5, 3, 7, 5}, {1, 32, 32, 9, 8, 7},
    {3, 1, 4, 2, 1, 13}, {2, 2, 3, 0, 4, 4},
};
#define NCAT ((int)(sizeof(CAT) / sizeof(CAT[0])))

typedef struct {
    ss_tensor_t a, b, y;
    int64_t n, ca, cb, inner;
} cat_fix_t;

static void cat_make(cat_fix_t *f, const int64_t *c, uint64_t seed)
{
    int64_t as[5] = {c[0], c[1], c[3], c[4], c[5]}, bs[5] = {c[0], c[2], c[3], c[4], c[5]};
    int64_t ys[5] = {c[0], c[1] + c[2], c[3], c[4], c[5]};
    make_tensor(&f->a, 5, as, seed);
    make_tensor(&f->b, 5, bs, seed + 1);
    make_tensor(&f->y, 5, ys, seed + 2);
    f->n = c[0];
    f->ca = c[1];
    f->cb = c[2];
    f->inner = c[3] * c[4] * c[5];
}

static void cat_free(cat_fix_t *f)
{
    free(f->a.data);
    free(f->b.data);
    free(f->y.data);
}

START_TEST(test_concat_fwd_vs_ref)
{
    cat_fix_t f;
    cat_make(&f, CAT[_i], 10 + (uint64_t)_i * 3);
    double *a = to_f64(&f.a), *b = to_f64(&f.b);
    double *y = malloc(sizeof(double) * (size_t)(ss_tensor_numel(&f.y) + 1));
    ss_ref_concat_fwd(y, a, b, f.n, f.ca, f.cb, f.inner);
    for (int nt = 1; nt <= 3; nt++) {
        ss_exec_t ex = exec_n(nt);
        memset(f.y.data, 0, ss_tensor_nbytes(&f.y));
        ck_assert_int_eq(ss_layout_concat_fwd(&f.y, &f.a, &f.b, &ex, NULL), SS_OK);
        expect_exact(&f.y, y, "concat y", _i);
    }
    free(a);
    free(b);
    free(y);
    cat_free(&f);
}
END_TEST

START_TEST(test_concat_bwd_vs_ref)
{
    cat_fix_t f;
    cat_make(&f, CAT[_i], 20 + (uint64_t)_i * 3);
    double *dy = to_f64(&f.y);
    double *da = malloc(sizeof(double) * (size_t)(ss_tensor_numel(&f.a) + 1));
    double *db = malloc(sizeof(double) * (size_t)(ss_tensor_numel(&f.b) + 1));
    ss_ref_concat_bwd(da, db, dy, f.n, f.ca, f.cb, f.inner);
    for (int nt = 1; nt <= 3; nt++) {
        ss_exec_t ex = exec_n(nt);
        ck_assert_int_eq(ss_layout_concat_bwd(&f.a, &f.b, &f.y, &ex, NULL), SS_OK);
        expect_exact(&f.a, da, "concat da", _i);
        expect_exact(&f.b, db, "concat db", _i);
        // One input without gradient.
        memset(f.b.data, 0, ss_tensor_nbytes(&f.b));
        ck_assert_int_eq(ss_layout_concat_bwd(NULL, &f.b, &f.y, &ex, NULL), SS_OK);
        expect_exact(&f.b, db, "concat db alone", _i);
        memset(f.a.data, 0, ss_tensor_nbytes(&f.a));
        ck_assert_int_eq(ss_layout_concat_bwd(&f.a, NULL, &f.y, &ex, NULL), SS_OK);
        expect_exact(&f.a, da, "concat da alone", _i);
    }
    free(dy);
    free(da);
    free(db);
    cat_free(&f);
}
END_TEST

START_TEST(test_concat_rank2_and_errors)
{
    ss_exec_t ex = exec_n(2);
    ss_error_t err;
    ss_tensor_t a, b, y, t;
    make_tensor(&a, 2, (int64_t[]){5, 3}, 1);
    make_tensor(&b, 2, (int64_t[]){5, 4}, 2);
    make_tensor(&y, 2, (int64_t[]){5, 7}, 0);
    ck_assert_int_eq(ss_layout_concat_fwd(&y, &a, &b, &ex, NULL), SS_OK);
    for (int r = 0; r < 5; r++) {
        for (int c = 0; c < 7; c++) {
            float want = c < 3 ? ss_tensor_f32(&a)[r * 3 + c] : ss_tensor_f32(&b)[r * 4 + c - 3];
            ck_assert(ss_tensor_f32(&y)[r * 7 + c] == want);
        }
    }
    // Channel counts that do not add up; other dimensions differing; rank 1; missing input.
    t = y;
    t.shape[1] = 6;
    expect_fail(ss_layout_concat_fwd(&t, &a, &b, &ex, &err), SS_ESHAPE, &err, "channels");
    t = b;
    t.shape[0] = 4;
    expect_fail(ss_layout_concat_fwd(&y, &a, &t, &ex, &err), SS_ESHAPE, &err, "shape");
    ss_tensor_view_reshape(&t, &y, 1, (int64_t[]){35}, NULL);
    expect_fail(ss_layout_concat_bwd(&a, &b, &t, &ex, &err), SS_ESHAPE, &err, "channels");
    expect_fail(ss_layout_concat_fwd(&y, &a, NULL, &ex, &err), SS_EINVAL, &err, "both");
    free(a.data);
    free(b.data);
    free(y.data);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Slabs.

static const int64_t SLAB[][7] = {
    // n, c, I, J, K, i0, len
    {1, 1, 1, 1, 1, 0, 1}, {2, 3, 7, 5, 3, 2, 3}, {1, 8, 40, 23, 29, 13, 17},
    {2, 2, 5, 4, 6, 5, 0}, {1, 3, 6, 1, 7, 0, 6},
};
#define NSLAB ((int)(sizeof(SLAB) / sizeof(SLAB[0])))

typedef enum { SLAB_GET, SLAB_PUT, SLAB_ADD } slab_op_t;

static void slab_case(int idx, slab_op_t op)
{
    const int64_t *c = SLAB[idx];
    int64_t fs[5] = {c[0], c[1], c[2], c[3], c[4]}, ss[5] = {c[0], c[1], c[6], c[3], c[4]};
    int64_t nc = c[0] * c[1], plane = c[3] * c[4];
    for (int nt = 1; nt <= 3; nt++) {
        ss_tensor_t full, slab;
        make_tensor(&full, 5, fs, 30 + (uint64_t)idx);
        make_tensor(&slab, 5, ss, 40 + (uint64_t)idx);
        double *fd = to_f64(&full), *sd = to_f64(&slab);
        ss_exec_t ex = exec_n(nt);
        if (op == SLAB_GET) {
            ck_assert_int_eq(ss_layout_slab_get(&slab, &full, c[5], &ex, NULL), SS_OK);
            ss_ref_slab_get(sd, fd, nc, c[2], plane, c[5], c[6]);
            expect_exact(&slab, sd, "slab_get", idx);
        } else {
            ss_status_t st = op == SLAB_PUT ? ss_layout_slab_put(&full, &slab, c[5], &ex, NULL)
                                            : ss_layout_slab_add(&full, &slab, c[5], &ex, NULL);
            ck_assert_int_eq(st, SS_OK);
            ss_ref_slab_put(fd, sd, nc, c[2], plane, c[5], c[6], op == SLAB_ADD);
            // The float sum a + b rounds once, as the double sum of two floats rounded to float.
            for (int64_t e = 0; e < ss_tensor_numel(&full); e++) {
                ck_assert(ss_tensor_f32(&full)[e] == (float)fd[e]);
            }
        }
        free(full.data);
        free(slab.data);
        free(fd);
        free(sd);
    }
}

START_TEST(test_slab_get)
{
    slab_case(_i, SLAB_GET);
}
END_TEST

START_TEST(test_slab_put)
{
    slab_case(_i, SLAB_PUT);
}
END_TEST

START_TEST(test_slab_add)
{
    slab_case(_i, SLAB_ADD);
}
END_TEST

START_TEST(test_slab_roundtrip_and_errors)
{
    ss_exec_t ex = exec_n(2);
    ss_error_t err;
    ss_tensor_t full, copy, slab;
    int64_t fs[5] = {2, 3, 9, 4, 5}, ss[5] = {2, 3, 3, 4, 5};
    make_tensor(&full, 5, fs, 5);
    make_tensor(&copy, 5, fs, 0);
    make_tensor(&slab, 5, ss, 0);
    // Gathering slabs [0, 3), [3, 6), [6, 9) into a zeroed tensor rebuilds the full one.
    for (int64_t i0 = 0; i0 < 9; i0 += 3) {
        ck_assert_int_eq(ss_layout_slab_get(&slab, &full, i0, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_layout_slab_put(&copy, &slab, i0, &ex, NULL), SS_OK);
    }
    ck_assert(memcmp(full.data, copy.data, ss_tensor_nbytes(&full)) == 0);
    expect_fail(ss_layout_slab_get(&slab, &full, 7, &ex, &err), SS_ESHAPE, &err, "outside");
    expect_fail(ss_layout_slab_put(&full, &slab, -1, &ex, &err), SS_ESHAPE, &err, "outside");
    ss_tensor_t t = slab;
    t.shape[4] = 4;
    expect_fail(ss_layout_slab_add(&full, &t, 0, &ex, &err), SS_ESHAPE, &err, "shape");
    ss_tensor_view_reshape(&t, &slab, 4, (int64_t[]){6, 3, 4, 5}, NULL);
    expect_fail(ss_layout_slab_get(&t, &full, 0, &ex, &err), SS_ESHAPE, &err, "rank 5");
    free(full.data);
    free(copy.data);
    free(slab.data);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Pad / crop.

typedef struct {
    int64_t n, c, x[3], y[3], lo[3];
    float value;
} pad_case_t;

static const pad_case_t PADS[] = {
    {1, 1, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 0.0f},       // identity
    {2, 3, {4, 5, 6}, {6, 7, 7}, {0, -1, 2}, 0.0f},      // mixed pad and crop
    {1, 2, {5, 3, 4}, {6, 5, 1}, {-2, 1, -1}, 1.5f},     // crop to one column, value
    {1, 1, {3, 3, 3}, {4, 4, 4}, {5, 0, 0}, -2.0f},      // input entirely outside
    {1, 4, {30, 29, 31}, {37, 33, 32}, {3, 2, 1}, 0.0f}, // threaded
    {2, 1, {7, 6, 5}, {3, 2, 3}, {-2, -3, -1}, 0.0f},    // pure crop (inference tile)
    {1, 2, {2, 3, 4}, {2, 0, 4}, {0, 0, 0}, 0.0f},       // empty output
};
#define NPADS ((int)(sizeof(PADS) / sizeof(PADS[0])))

static ss_ref_pad_dims_t pad_dims(const pad_case_t *c)
{
    ss_ref_pad_dims_t d = {c->n * c->c,
                           {c->x[0], c->x[1], c->x[2]},
                           {c->y[0], c->y[1], c->y[2]},
                           {c->lo[0], c->lo[1], c->lo[2]},
                           c->value};
    return d;
}

START_TEST(test_pad_fwd_vs_ref)
{
    const pad_case_t *c = &PADS[_i];
    ss_tensor_t x, y;
    make_tensor(&x, 5, (int64_t[]){c->n, c->c, c->x[0], c->x[1], c->x[2]}, 50 + (uint64_t)_i);
    make_tensor(&y, 5, (int64_t[]){c->n, c->c, c->y[0], c->y[1], c->y[2]}, 0);
    double *xd = to_f64(&x), *yd = malloc(sizeof(double) * (size_t)(ss_tensor_numel(&y) + 1));
    ss_ref_pad_dims_t d = pad_dims(c);
    ss_ref_pad_fwd(yd, xd, &d);
    ss_layout_pad_params_t p = {{c->lo[0], c->lo[1], c->lo[2]}, c->value};
    for (int nt = 1; nt <= 3; nt++) {
        ss_exec_t ex = exec_n(nt);
        ss_test_fill(ss_tensor_f32(&y), ss_tensor_numel(&y), 7, 5.0f, 6.0f); // must be overwritten
        ck_assert_int_eq(ss_layout_pad_fwd(&y, &x, &p, &ex, NULL), SS_OK);
        expect_exact(&y, yd, "pad y", _i);
    }
    free(x.data);
    free(y.data);
    free(xd);
    free(yd);
}
END_TEST

START_TEST(test_pad_bwd_vs_ref)
{
    const pad_case_t *c = &PADS[_i];
    ss_tensor_t dx, dy;
    make_tensor(&dy, 5, (int64_t[]){c->n, c->c, c->y[0], c->y[1], c->y[2]}, 60 + (uint64_t)_i);
    make_tensor(&dx, 5, (int64_t[]){c->n, c->c, c->x[0], c->x[1], c->x[2]}, 0);
    double *dyd = to_f64(&dy), *dxd = malloc(sizeof(double) * (size_t)(ss_tensor_numel(&dx) + 1));
    ss_ref_pad_dims_t d = pad_dims(c);
    ss_ref_pad_bwd(dxd, dyd, &d);
    ss_layout_pad_params_t p = {{c->lo[0], c->lo[1], c->lo[2]}, c->value};
    for (int nt = 1; nt <= 3; nt++) {
        ss_exec_t ex = exec_n(nt);
        ss_test_fill(ss_tensor_f32(&dx), ss_tensor_numel(&dx), 8, 5.0f, 6.0f);
        ck_assert_int_eq(ss_layout_pad_bwd(&dx, &dy, &p, &ex, NULL), SS_OK);
        expect_exact(&dx, dxd, "pad dx", _i);
    }
    free(dx.data);
    free(dy.data);
    free(dxd);
    free(dyd);
}
END_TEST

// x and y as boxes of larger tensors (strided views) give the same values as contiguous ones.
START_TEST(test_pad_views)
{
    const pad_case_t *c = &PADS[1];
    int64_t xs[5] = {c->n, c->c, c->x[0], c->x[1], c->x[2]};
    int64_t ys[5] = {c->n, c->c, c->y[0], c->y[1], c->y[2]};
    int64_t xbig[5] = {c->n + 1, c->c + 2, c->x[0] + 3, c->x[1] + 1, c->x[2] + 2};
    int64_t ybig[5] = {c->n, c->c + 1, c->y[0] + 2, c->y[1] + 2, c->y[2] + 3};
    int64_t xat[5] = {1, 1, 2, 0, 1}, yat[5] = {0, 1, 1, 2, 0};
    ss_tensor_t x, y, xb, yb, xv, yv;
    make_tensor(&xb, 5, xbig, 3);
    make_tensor(&yb, 5, ybig, 0);
    make_tensor(&x, 5, xs, 0);
    make_tensor(&y, 5, ys, 0);
    box_of(&xv, &xb, xat, xs);
    box_of(&yv, &yb, yat, ys);
    ss_exec_t ex = exec_n(2);
    ss_layout_pad_params_t p = {{c->lo[0], c->lo[1], c->lo[2]}, 0.5f};
    ck_assert_int_eq(ss_layout_copy(&x, &xv, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_layout_pad_fwd(&y, &x, &p, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_layout_pad_fwd(&yv, &xv, &p, &ex, NULL), SS_OK);
    double *want = to_f64(&y);
    ss_tensor_t got;
    make_tensor(&got, 5, ys, 0);
    ck_assert_int_eq(ss_layout_copy(&got, &yv, &ex, NULL), SS_OK);
    expect_exact(&got, want, "pad views", 0);
    free(want);
    ss_tensor_t *ts[] = {&x, &y, &xb, &yb, &got};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
}
END_TEST

START_TEST(test_pad_errors)
{
    ss_exec_t ex = exec_n(2);
    ss_error_t err;
    ss_tensor_t x, y, t;
    make_tensor(&x, 5, (int64_t[]){1, 2, 3, 3, 3}, 1);
    make_tensor(&y, 5, (int64_t[]){1, 3, 4, 4, 4}, 0);
    ss_layout_pad_params_t p = {{1, 1, 1}, 0.0f};
    expect_fail(ss_layout_pad_fwd(&y, &x, &p, &ex, &err), SS_ESHAPE, &err, "same N and C");
    expect_fail(ss_layout_pad_fwd(&y, &x, NULL, &ex, &err), SS_EINVAL, &err, "NULL");
    ss_tensor_view_reshape(&t, &x, 4, (int64_t[]){2, 3, 3, 3}, NULL);
    expect_fail(ss_layout_pad_bwd(&t, &y, &p, &ex, &err), SS_ESHAPE, &err, "rank-5");
    free(x.data);
    free(y.data);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Finite differences of the reference backward (concat and pad are linear: central differences
// are exact up to rounding; tolerance 1e-8 abs + rel with h = 1e-6).

typedef struct {
    int pad;
    ss_ref_pad_dims_t pd;
    int64_t n, ca, cb, inner;
    double *x, *x2, *g, *y;
    int64_t ny;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    if (c->pad) {
        ss_ref_pad_fwd(c->y, c->x, &c->pd);
    } else {
        ss_ref_concat_fwd(c->y, c->x, c->x2, c->n, c->ca, c->cb, c->inner);
    }
    double l = 0;
    for (int64_t i = 0; i < c->ny; i++) {
        l += c->y[i] * c->g[i];
    }
    return l;
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

static void fd_check(fd_ctx_t *c, double *var, const double *grad, int64_t n)
{
    for (int64_t e = 0; e < n; e++) {
        double fd = ss_test_fd(fd_loss, c, var, e, 1e-6);
        ck_assert_msg(fabs(fd - grad[e]) <= 1e-8 * (1 + fabs(grad[e])), "[%lld] fd %g vs %g",
                      (long long)e, fd, grad[e]);
    }
}

START_TEST(test_concat_ref_fd)
{
    fd_ctx_t c = {0};
    c.n = 2, c.ca = 2, c.cb = 3, c.inner = 6;
    c.ny = c.n * (c.ca + c.cb) * c.inner;
    c.x = rand_f64(c.n * c.ca * c.inner, 1);
    c.x2 = rand_f64(c.n * c.cb * c.inner, 2);
    c.g = rand_f64(c.ny, 3);
    c.y = malloc(sizeof(double) * (size_t)c.ny);
    double *da = malloc(sizeof(double) * (size_t)(c.n * c.ca * c.inner));
    double *db = malloc(sizeof(double) * (size_t)(c.n * c.cb * c.inner));
    ss_ref_concat_bwd(da, db, c.g, c.n, c.ca, c.cb, c.inner);
    fd_check(&c, c.x, da, c.n * c.ca * c.inner);
    fd_check(&c, c.x2, db, c.n * c.cb * c.inner);
    free(c.x);
    free(c.x2);
    free(c.g);
    free(c.y);
    free(da);
    free(db);
}
END_TEST

START_TEST(test_pad_ref_fd)
{
    fd_ctx_t c = {0};
    c.pad = 1;
    c.pd = pad_dims(&PADS[_i < 4 ? _i : 5]); // all but the large threaded case
    int64_t nx = c.pd.nc * c.pd.x[0] * c.pd.x[1] * c.pd.x[2];
    c.ny = c.pd.nc * c.pd.y[0] * c.pd.y[1] * c.pd.y[2];
    c.x = rand_f64(nx, 4);
    c.g = rand_f64(c.ny, 5);
    c.y = malloc(sizeof(double) * (size_t)c.ny);
    double *dx = malloc(sizeof(double) * (size_t)nx);
    ss_ref_pad_bwd(dx, c.g, &c.pd);
    fd_check(&c, c.x, dx, nx);
    free(c.x);
    free(c.g);
    free(c.y);
    free(dx);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// PyTorch golden values (tests/golden/make_golden_layout.py): rtol 1e-5, atol 1e-5 (only the
// float32 rounding of the inputs separates them).

static void golden_tensor(ss_tensor_t *t, const char *name)
{
    int64_t shape[8];
    int nd;
    float *data = ss_test_golden("golden_layout.h5", name, shape, &nd);
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, nd, shape, data, NULL), SS_OK);
}

static void golden_expect(const ss_tensor_t *got, const char *name)
{
    ss_tensor_t want;
    golden_tensor(&want, name);
    ck_assert(ss_tensor_same_shape(got, &want));
    double e = ss_test_max_rel_err(ss_tensor_f32(got), ss_tensor_f32(&want), ss_tensor_numel(got),
                                   1e-5, 1e-5);
    ck_assert_msg(e <= 1.0, "golden %s: error %g of tolerance", name, e);
    free(want.data);
}

START_TEST(test_concat_golden)
{
    ss_tensor_t a, b, gy, y, ga, gb;
    golden_tensor(&a, "cat_a");
    golden_tensor(&b, "cat_b");
    golden_tensor(&gy, "cat_gy");
    make_tensor(&y, 5, gy.shape, 0);
    make_tensor(&ga, 5, a.shape, 0);
    make_tensor(&gb, 5, b.shape, 0);
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_layout_concat_fwd(&y, &a, &b, &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_layout_concat_bwd(&ga, &gb, &gy, &ex, NULL), SS_OK);
    golden_expect(&y, "cat_y");
    golden_expect(&ga, "cat_ga");
    golden_expect(&gb, "cat_gb");
    ss_tensor_t *ts[] = {&a, &b, &gy, &y, &ga, &gb};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
}
END_TEST

START_TEST(test_pad_golden)
{
    // F.pad tuples (k_lo, k_hi, j_lo, j_hi, i_lo, i_hi) of make_golden_layout.py -> lo per dim.
    static const char *CASES[] = {"pad0", "pad1"};
    static const ss_layout_pad_params_t P[] = {{{0, -1, 2}, 0.0f}, {{-2, 1, -1}, 1.5f}};
    char name[32];
    ss_tensor_t x, gy, y, gx;
    snprintf(name, sizeof(name), "%s_x", CASES[_i]);
    golden_tensor(&x, name);
    snprintf(name, sizeof(name), "%s_gy", CASES[_i]);
    golden_tensor(&gy, name);
    make_tensor(&y, 5, gy.shape, 0);
    make_tensor(&gx, 5, x.shape, 0);
    ss_exec_t ex = exec_n(2);
    ck_assert_int_eq(ss_layout_pad_fwd(&y, &x, &P[_i], &ex, NULL), SS_OK);
    ck_assert_int_eq(ss_layout_pad_bwd(&gx, &gy, &P[_i], &ex, NULL), SS_OK);
    snprintf(name, sizeof(name), "%s_y", CASES[_i]);
    golden_expect(&y, name);
    snprintf(name, sizeof(name), "%s_gx", CASES[_i]);
    golden_expect(&gx, name);
    free(x.data);
    free(gy.data);
    free(y.data);
    free(gx.data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("tc_ss_layout_copy");
    tcase_add_loop_test(tc, test_copy_views, 0, (int)(sizeof(BOX) / sizeof(BOX[0])));
    tcase_add_test(tc, test_copy_ranks_and_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layout_concat_fwd");
    tcase_add_loop_test(tc, test_concat_fwd_vs_ref, 0, NCAT);
    tcase_add_test(tc, test_concat_rank2_and_errors);
    tcase_add_test(tc, test_concat_golden);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layout_concat_bwd");
    tcase_add_loop_test(tc, test_concat_bwd_vs_ref, 0, NCAT);
    tcase_add_test(tc, test_concat_ref_fd);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layout_slab_get");
    tcase_add_loop_test(tc, test_slab_get, 0, NSLAB);
    tcase_add_test(tc, test_slab_roundtrip_and_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layout_slab_put");
    tcase_add_loop_test(tc, test_slab_put, 0, NSLAB);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layout_slab_add");
    tcase_add_loop_test(tc, test_slab_add, 0, NSLAB);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layout_pad_fwd");
    tcase_add_loop_test(tc, test_pad_fwd_vs_ref, 0, NPADS);
    tcase_add_loop_test(tc, test_pad_golden, 0, 2);
    tcase_add_test(tc, test_pad_views);
    tcase_add_test(tc, test_pad_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layout_pad_bwd");
    tcase_add_loop_test(tc, test_pad_bwd_vs_ref, 0, NPADS);
    tcase_add_loop_test(tc, test_pad_ref_fd, 0, 5);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
