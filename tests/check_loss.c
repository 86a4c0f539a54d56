// check_loss: softmax CE, BCE, soft Dice and Dice+CE against the double reference, finite
// differences, PyTorch/MONAI golden values, slab sharding and thread counts.
//
// Tolerances (|a - b| <= atol + rtol |b|):
//   * float kernel vs double ref: loss values rtol 1e-5; dlogits rtol 1e-5 with atol = 1e-5 *
//     max|dlogits| (float exp/log are ~2 ulp, sums are double; absolute error follows from
//     cancellation in p - t and in the softmax Jacobian, so it scales with the largest entry).
//   * ref backward vs central finite differences of the ref forward (h = 1e-6): rtol 1e-6,
//     atol 1e-9 (truncation h^2 f''' ~ 1e-12, rounding eps / h ~ 1e-10).
//   * golden (PyTorch float64 on the same float32 inputs): ref rtol 1e-10; float kernel as above.
//   * sharded (i-slabs) vs one-shot: value rtol 1e-6, dlogits rtol 1e-6 with atol 1e-6 *
//     max|dlogits| (64-voxel float segment sums start at other voxels in a slab: ~1e-8).
//   * thread counts 1, 2, 3: bit-identical sums and gradients (fixed chunks, fixed fold order).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/loss.h"

#include "ref/loss_ref.h"
#include "testutil.h"

enum { T_MAP, T_ONEHOT, T_SOFT, T_BINARY };

typedef struct {
    int64_t shape[5];
    ss_loss_act_t act;
    int target;
    double lambda_dice, lambda_ce;
    int include_background, squared_pred, batch;
    int ignore_every; // class map: every k-th voxel gets ignore_index (0: none)
} loss_case_t;

// Odd shapes: sizes 1, primes, planes longer than one 1024-voxel chunk with a remainder.
static const loss_case_t cases[] = {
    {{1, 2, 1, 1, 1}, SS_LOSS_SOFTMAX, T_MAP, 1, 1, 1, 0, 0, 0},
    {{2, 3, 7, 5, 3}, SS_LOSS_SOFTMAX, T_MAP, 1, 1, 0, 0, 0, 4},
    {{2, 3, 7, 5, 3}, SS_LOSS_SOFTMAX, T_MAP, 0, 1, 1, 1, 1, 3},
    {{3, 5, 2, 11, 13}, SS_LOSS_SOFTMAX, T_ONEHOT, 1, 1, 0, 1, 1, 0},
    {{2, 4, 1, 1, 1031}, SS_LOSS_SOFTMAX, T_SOFT, 0.5, 2, 1, 0, 0, 0},
    {{1, 3, 17, 31, 3}, SS_LOSS_SOFTMAX, T_MAP, 1, 0, 0, 1, 0, 11},
    {{1, 1, 3, 5, 7}, SS_LOSS_SIGMOID, T_BINARY, 1, 1, 0, 0, 0, 0},
    {{2, 3, 7, 5, 3}, SS_LOSS_SIGMOID, T_BINARY, 1, 1, 1, 1, 1, 0},
    {{1, 3, 17, 31, 3}, SS_LOSS_SIGMOID, T_SOFT, 0.7, 1.3, 1, 0, 0, 0},
    {{3, 2, 2, 11, 13}, SS_LOSS_SIGMOID, T_BINARY, 1, 0, 0, 1, 0, 0},
};
#define NCASES      ((int)(sizeof(cases) / sizeof(cases[0])))
#define MAX_THREADS 3

typedef struct {
    loss_case_t cs;
    ss_loss_params_t p;
    int64_t n, c, s, nx, nt;
    float *x, *t, *d;
    double *xd, *td;
    ss_tensor_t tx, tt, tdl;
    void *ws;
    size_t ws_bytes;
} fixture_t;

static void fixture_make(fixture_t *f, const loss_case_t *cs, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->cs = *cs;
    ss_loss_params_init(&f->p, SS_LOSS_DICE_CE, cs->act);
    f->p.lambda_dice = cs->lambda_dice;
    f->p.lambda_ce = cs->lambda_ce;
    f->p.include_background = cs->include_background;
    f->p.squared_pred = cs->squared_pred;
    f->p.batch = cs->batch;
    f->n = cs->shape[0];
    f->c = cs->shape[1];
    f->s = cs->shape[2] * cs->shape[3] * cs->shape[4];
    f->nx = f->n * f->c * f->s;
    int map = cs->target == T_MAP;
    f->nt = map ? f->n * f->s : f->nx;
    f->x = malloc((size_t)f->nx * sizeof(float));
    f->d = malloc((size_t)f->nx * sizeof(float));
    f->t = malloc((size_t)f->nt * sizeof(float));
    f->xd = malloc((size_t)f->nx * sizeof(double));
    f->td = malloc((size_t)f->nt * sizeof(double));
    ss_test_fill(f->x, f->nx, seed, -4.0f, 4.0f);
    ss_test_fill(f->t, f->nt, seed + 1, 0.0f, 1.0f);
    for (int64_t i = 0; i < f->nt; i++) {
        float u = f->t[i];
        if (map || cs->target == T_ONEHOT) {
            f->t[i] = floorf(u * (float)f->c);
        } else if (cs->target == T_BINARY) {
            f->t[i] = u < 0.4f ? 1.0f : 0.0f;
        }
        if (map && cs->ignore_every && i % cs->ignore_every == 1) {
            f->t[i] = -100.0f;
        }
    }
    if (cs->target == T_ONEHOT) { // f->t holds labels (N, S) in its first n*s entries
        float *lab = malloc((size_t)(f->n * f->s) * sizeof(float));
        memcpy(lab, f->t, (size_t)(f->n * f->s) * sizeof(float));
        for (int64_t b = 0; b < f->n; b++) {
            for (int64_t k = 0; k < f->c; k++) {
                for (int64_t v = 0; v < f->s; v++) {
                    f->t[(b * f->c + k) * f->s + v] = lab[b * f->s + v] == (float)k ? 1.0f : 0.0f;
                }
            }
        }
        free(lab);
    }
    for (int64_t i = 0; i < f->nx; i++) {
        f->xd[i] = f->x[i];
    }
    for (int64_t i = 0; i < f->nt; i++) {
        f->td[i] = f->t[i];
    }
    int64_t tshape[5] = {cs->shape[0], cs->shape[2], cs->shape[3], cs->shape[4]};
    ck_assert_int_eq(ss_tensor_init(&f->tx, SS_F32, 5, cs->shape, f->x, NULL), SS_OK);
    ck_assert_int_eq(ss_tensor_init(&f->tdl, SS_F32, 5, cs->shape, f->d, NULL), SS_OK);
    ck_assert_int_eq(map ? ss_tensor_init(&f->tt, SS_F32, 4, tshape, f->t, NULL)
                         : ss_tensor_init(&f->tt, SS_F32, 5, cs->shape, f->t, NULL),
                     SS_OK);
    f->ws_bytes = ss_loss_workspace_size(&f->tx, MAX_THREADS);
    f->ws = aligned_alloc(64, (f->ws_bytes + 63) / 64 * 64);
}

static void fixture_free(fixture_t *f)
{
    free(f->x);
    free(f->t);
    free(f->d);
    free(f->xd);
    free(f->td);
    free(f->ws);
}

static ss_exec_t fixture_exec(const fixture_t *f, int nthreads)
{
    ss_exec_t ex = {nthreads, f->ws, f->ws_bytes, NULL};
    return ex;
}

static double max_abs_d(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        m = fmax(m, fabs(a[i]));
    }
    return m;
}

static double max_abs_f(const float *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)a[i]));
    }
    return m;
}

static double rel_err(double a, double b)
{
    return fabs(a - b) / fmax(fabs(b), 1e-300);
}

static float *to_float(const double *a, int64_t n)
{
    float *r = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        r[i] = (float)a[i];
    }
    return r;
}

// ---------------------------------------------------------------------------------------------
// Reference: finite differences

typedef struct {
    fixture_t *f;
} fd_ctx_t;

static double fd_loss(void *vctx)
{
    fd_ctx_t *ctx = vctx;
    ss_loss_value_t v;
    fixture_t *f = ctx->f;
    ss_ref_loss_fwd(&v, f->xd, f->td, f->cs.target == T_MAP, f->n, f->c, f->s, &f->p);
    return v.loss;
}

START_TEST(test_ref_fd)
{
    // Only the small cases: FD costs 2 forward passes per logit.
    for (int ci = 0; ci < NCASES; ci++) {
        if (cases[ci].shape[0] * cases[ci].shape[1] * cases[ci].shape[2] * cases[ci].shape[3] *
                cases[ci].shape[4] >
            400) {
            continue;
        }
        fixture_t f;
        fixture_make(&f, &cases[ci], 100 + (uint64_t)ci);
        double *g = malloc((size_t)f.nx * sizeof(double));
        ss_ref_loss_bwd_logits(g, f.xd, f.td, f.cs.target == T_MAP, f.n, f.c, f.s, &f.p);
        fd_ctx_t ctx = {&f};
        for (int64_t i = 0; i < f.nx; i++) {
            double fd = ss_test_fd(fd_loss, &ctx, f.xd, i, 1e-6);
            ck_assert_msg(fabs(fd - g[i]) <= 1e-9 + 1e-6 * fabs(fd),
                          "case %d elem %lld: fd %.12g analytic %.12g", ci, (long long)i, fd, g[i]);
        }
        free(g);
        fixture_free(&f);
    }
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Golden (PyTorch / MONAI)

typedef struct {
    const char *name;
    ss_loss_act_t act;
    double lambda_dice, lambda_ce;
    int include_background, squared_pred, batch;
    double smooth_nr, smooth_dr;
} golden_case_t;

// Mirrors the case() calls in tests/golden/make_golden_loss.py.
static const golden_case_t golden_cases[] = {
    {"ce_map", SS_LOSS_SOFTMAX, 0, 1, 1, 0, 0, 1e-5, 1e-5},
    {"ce_soft", SS_LOSS_SOFTMAX, 0, 1, 1, 0, 0, 1e-5, 1e-5},
    {"dice_softmax_map", SS_LOSS_SOFTMAX, 1, 0, 0, 0, 0, 1e-5, 1e-5},
    {"dice_sigmoid", SS_LOSS_SIGMOID, 1, 0, 1, 1, 1, 0.0, 1e-5},
    {"dicece_softmax_map", SS_LOSS_SOFTMAX, 1, 1, 1, 0, 0, 1e-5, 1e-5},
    {"dicece_softmax_onehot", SS_LOSS_SOFTMAX, 1, 1, 0, 1, 1, 1e-5, 1e-5},
    {"dicece_sigmoid", SS_LOSS_SIGMOID, 0.7, 1.3, 1, 0, 0, 1e-5, 1e-5},
};

static void golden_one(const golden_case_t *gc)
{
    char name[128];
    int64_t xs[8], ts[8], vs[8], gs[8];
    int xn, tn, vn, gn;
    snprintf(name, sizeof(name), "%s/logits", gc->name);
    float *x = ss_test_golden("golden_loss.h5", name, xs, &xn);
    snprintf(name, sizeof(name), "%s/target", gc->name);
    float *t = ss_test_golden("golden_loss.h5", name, ts, &tn);
    snprintf(name, sizeof(name), "%s/value", gc->name);
    double *val = ss_test_golden_f64("golden_loss.h5", name, vs, &vn);
    snprintf(name, sizeof(name), "%s/dlogits", gc->name);
    double *grad = ss_test_golden_f64("golden_loss.h5", name, gs, &gn);
    ck_assert_int_eq(xn, 5);
    ss_loss_params_t p;
    ss_loss_params_init(&p, SS_LOSS_DICE_CE, gc->act);
    p.lambda_dice = gc->lambda_dice;
    p.lambda_ce = gc->lambda_ce;
    p.include_background = gc->include_background;
    p.squared_pred = gc->squared_pred;
    p.batch = gc->batch;
    p.smooth_nr = gc->smooth_nr;
    p.smooth_dr = gc->smooth_dr;
    int64_t nx = xs[0] * xs[1] * xs[2] * xs[3] * xs[4], nt = nx / (tn == 4 ? xs[1] : 1);
    int64_t s = xs[2] * xs[3] * xs[4];
    // double reference
    double *xd = malloc((size_t)nx * sizeof(double)), *td = malloc((size_t)nt * sizeof(double));
    double *gd = malloc((size_t)nx * sizeof(double));
    for (int64_t i = 0; i < nx; i++) {
        xd[i] = x[i];
    }
    for (int64_t i = 0; i < nt; i++) {
        td[i] = t[i];
    }
    ss_loss_value_t rv;
    ss_ref_loss_fwd(&rv, xd, td, tn == 4, xs[0], xs[1], s, &p);
    ss_ref_loss_bwd_logits(gd, xd, td, tn == 4, xs[0], xs[1], s, &p);
    ck_assert_msg(rel_err(rv.loss, val[0]) < 1e-10 && rel_err(rv.dice, val[1]) < 1e-10 &&
                      rel_err(rv.ce, val[2]) < 1e-10,
                  "%s: ref %.12g %.12g %.12g torch %.12g %.12g %.12g", gc->name, rv.loss, rv.dice,
                  rv.ce, val[0], val[1], val[2]);
    double gmax = max_abs_d(grad, nx);
    for (int64_t i = 0; i < nx; i++) {
        ck_assert_msg(fabs(gd[i] - grad[i]) <= 1e-12 * gmax + 1e-10 * fabs(grad[i]),
                      "%s: ref grad %lld", gc->name, (long long)i);
    }
    // float kernel
    ss_tensor_t tx, tt, tg;
    float *g = malloc((size_t)nx * sizeof(float));
    ss_tensor_init(&tx, SS_F32, 5, xs, x, NULL);
    ss_tensor_init(&tt, SS_F32, tn, ts, t, NULL);
    ss_tensor_init(&tg, SS_F32, 5, xs, g, NULL);
    size_t wsb = ss_loss_workspace_size(&tx, 2);
    void *ws = aligned_alloc(64, (wsb + 63) / 64 * 64);
    ss_exec_t ex = {2, ws, wsb, NULL};
    ss_loss_value_t v;
    ss_error_t err;
    ck_assert_int_eq(ss_loss_fwd_bwd(&v, &tg, &tx, &tt, &p, &ex, &err), SS_OK);
    ck_assert_msg(rel_err(v.loss, val[0]) < 1e-5 && rel_err(v.dice, val[1]) < 1e-5 &&
                      rel_err(v.ce, val[2]) < 1e-5,
                  "%s: fast %.9g %.9g %.9g torch %.9g %.9g %.9g", gc->name, v.loss, v.dice, v.ce,
                  val[0], val[1], val[2]);
    float *gf = to_float(grad, nx);
    double e = ss_test_max_rel_err(g, gf, nx, 1e-5 * gmax, 1e-5);
    ck_assert_msg(e <= 1, "%s: dlogits error %.3g of tolerance", gc->name, e);
    free(gf);
    free(ws);
    free(g);
    free(xd);
    free(td);
    free(gd);
    free(x);
    free(t);
    free(val);
    free(grad);
}

START_TEST(test_golden)
{
    for (size_t i = 0; i < sizeof(golden_cases) / sizeof(golden_cases[0]); i++) {
        golden_one(&golden_cases[i]);
    }
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Float kernel vs double reference, all cases, 1..3 threads bit-identical

START_TEST(test_fast_vs_ref)
{
    for (int ci = 0; ci < NCASES; ci++) {
        fixture_t f;
        fixture_make(&f, &cases[ci], 200 + (uint64_t)ci);
        int map = f.cs.target == T_MAP;
        ss_loss_value_t rv, v;
        double *gd = malloc((size_t)f.nx * sizeof(double));
        ss_ref_loss_fwd(&rv, f.xd, f.td, map, f.n, f.c, f.s, &f.p);
        ss_ref_loss_bwd_logits(gd, f.xd, f.td, map, f.n, f.c, f.s, &f.p);
        ss_exec_t ex = fixture_exec(&f, 2);
        ss_error_t err;
        ck_assert_int_eq(ss_loss_fwd_bwd(&v, &f.tdl, &f.tx, &f.tt, &f.p, &ex, &err), SS_OK);
        ck_assert_msg(rel_err(v.loss, rv.loss) < 1e-5 && rel_err(v.dice, rv.dice) < 1e-5 &&
                          (rv.ce == 0 ? v.ce == 0 : rel_err(v.ce, rv.ce) < 1e-5),
                      "case %d: fast %.9g %.9g %.9g ref %.9g %.9g %.9g", ci, v.loss, v.dice, v.ce,
                      rv.loss, rv.dice, rv.ce);
        float *gf = to_float(gd, f.nx);
        double e = ss_test_max_rel_err(f.d, gf, f.nx, 1e-5 * max_abs_d(gd, f.nx), 1e-5);
        ck_assert_msg(e <= 1, "case %d: dlogits error %.3g of tolerance", ci, e);
        ss_loss_value_t v1;
        ck_assert_int_eq(ss_loss_fwd(&v1, &f.tx, &f.tt, &f.p, &ex, &err), SS_OK);
        ck_assert(memcmp(&v1, &v, sizeof(v)) == 0);
        free(gf);
        free(gd);
        fixture_free(&f);
    }
}
END_TEST

START_TEST(test_threads_bitwise)
{
    for (int ci = 0; ci < NCASES; ci++) {
        fixture_t f;
        fixture_make(&f, &cases[ci], 300 + (uint64_t)ci);
        size_t ns = ss_loss_sums_len(f.n, f.c);
        double *sums1 = malloc(ns * sizeof(double)), *sums = malloc(ns * sizeof(double));
        float *d1 = malloc((size_t)f.nx * sizeof(float));
        ss_loss_value_t v1, v;
        for (int nt = 1; nt <= MAX_THREADS; nt++) {
            ss_exec_t ex = fixture_exec(&f, nt);
            ck_assert_int_eq(ss_loss_fwd_partial(sums, &f.tx, &f.tt, &f.p, &ex, NULL), SS_OK);
            ck_assert_int_eq(ss_loss_fwd_bwd(&v, &f.tdl, &f.tx, &f.tt, &f.p, &ex, NULL), SS_OK);
            if (nt == 1) {
                memcpy(sums1, sums, ns * sizeof(double));
                memcpy(d1, f.d, (size_t)f.nx * sizeof(float));
                v1 = v;
                continue;
            }
            ck_assert_msg(memcmp(sums1, sums, ns * sizeof(double)) == 0, "case %d sums", ci);
            ck_assert_msg(memcmp(d1, f.d, (size_t)f.nx * sizeof(float)) == 0, "case %d grad", ci);
            ck_assert(memcmp(&v1, &v, sizeof(v)) == 0);
        }
        free(sums1);
        free(sums);
        free(d1);
        fixture_free(&f);
    }
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Sharding: i-slabs on "ranks" -> partial, merge, finalize, local bwd == global loss

static void slab_view(ss_tensor_t *v, const ss_tensor_t *t, int64_t start, int64_t len)
{
    int dim = t->ndim == 4 ? 1 : 2; // I of (N, I, J, K) or (N, C, I, J, K)
    ck_assert_int_eq(ss_tensor_view_slab(v, t, dim, start, len, NULL), SS_OK);
}

START_TEST(test_sharded)
{
    for (int ci = 0; ci < NCASES; ci++) {
        fixture_t f;
        fixture_make(&f, &cases[ci], 400 + (uint64_t)ci);
        ss_loss_value_t v1, v;
        ss_exec_t ex = fixture_exec(&f, 2);
        ck_assert_int_eq(ss_loss_fwd_bwd(&v1, &f.tdl, &f.tx, &f.tt, &f.p, &ex, NULL), SS_OK);
        float *d1 = malloc((size_t)f.nx * sizeof(float));
        memcpy(d1, f.d, (size_t)f.nx * sizeof(float));
        memset(f.d, 0xff, (size_t)f.nx * sizeof(float)); // NaN: every element must be written
        int64_t ni = f.cs.shape[2];
        int parts = 3; // more ranks than planes leaves some ranks an empty slab
        size_t ns = ss_loss_sums_len(f.n, f.c), nc = ss_loss_coef_len(f.n, f.c);
        double *tot = calloc(ns, sizeof(double)), *part = malloc(ns * sizeof(double));
        double *coef = malloc(nc * sizeof(double));
        for (int r = 0; r < parts; r++) {
            int64_t start, len;
            ss_split_range(ni, parts, r, &start, &len);
            ss_tensor_t sx, st;
            slab_view(&sx, &f.tx, start, len);
            slab_view(&st, &f.tt, start, len);
            ck_assert_int_eq(ss_loss_fwd_partial(part, &sx, &st, &f.p, &ex, NULL), SS_OK);
            ss_loss_sums_merge(tot, part, ns); // the all-reduce
        }
        ck_assert_int_eq(ss_loss_fwd_finalize(&v, coef, tot, f.n, f.c, &f.p, NULL), SS_OK);
        ck_assert_msg(rel_err(v.loss, v1.loss) < 1e-6, "case %d: %.17g vs %.17g", ci, v.loss,
                      v1.loss);
        for (int r = 0; r < parts; r++) {
            int64_t start, len;
            ss_split_range(ni, parts, r, &start, &len);
            ss_tensor_t sx, st, sd;
            slab_view(&sx, &f.tx, start, len);
            slab_view(&st, &f.tt, start, len);
            slab_view(&sd, &f.tdl, start, len);
            ck_assert_int_eq(ss_loss_bwd(&sd, &sx, &st, coef, &f.p, &ex, NULL), SS_OK);
        }
        double e = ss_test_max_rel_err(f.d, d1, f.nx, 1e-6 * max_abs_f(d1, f.nx), 1e-6);
        ck_assert_msg(e <= 1, "case %d: sharded grad error %.3g of tolerance", ci, e);
        free(tot);
        free(part);
        free(coef);
        free(d1);
        fixture_free(&f);
    }
}
END_TEST

START_TEST(test_sums_merge)
{
    double acc[3] = {1, 2, 3}, x[3] = {0.5, -1, 4};
    ss_loss_sums_merge(acc, x, 3);
    ck_assert_double_eq(acc[0], 1.5);
    ck_assert_double_eq(acc[1], 1);
    ck_assert_double_eq(acc[2], 7);
    ck_assert_uint_eq(ss_loss_sums_len(2, 3), 20);
    ck_assert_uint_eq(ss_loss_coef_len(2, 3), 13);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Finalize

START_TEST(test_finalize_values)
{
    // One sample, two channels, hand-computed: sums {I, P, T} per channel, CE sum 3 over 4 voxels.
    double sums[8] = {1, 2, 2, 0.5, 2, 1, 3, 4};
    double coef[5];
    ss_loss_params_t p;
    ss_loss_params_init(&p, SS_LOSS_DICE_CE, SS_LOSS_SOFTMAX);
    p.smooth_nr = p.smooth_dr = 0;
    ss_loss_value_t v;
    ck_assert_int_eq(ss_loss_fwd_finalize(&v, coef, sums, 1, 2, &p, NULL), SS_OK);
    double d0 = 1 - 2.0 / 4, d1 = 1 - 1.0 / 3;
    ck_assert_double_eq_tol(v.dice, (d0 + d1) / 2, 1e-15);
    ck_assert_double_eq_tol(v.ce, 0.75, 1e-15);
    ck_assert_double_eq_tol(v.loss, (d0 + d1) / 2 + 0.75, 1e-15);
    ck_assert_double_eq_tol(coef[0], -2.0 / (2 * 4), 1e-15);
    ck_assert_double_eq_tol(coef[1], 2.0 / (2 * 16), 1e-15);
    ck_assert_double_eq_tol(coef[4], 0.25, 1e-15);
    // include_background = 0: channel 0 drops out of the Dice and gets no Dice coefficients.
    p.include_background = 0;
    ck_assert_int_eq(ss_loss_fwd_finalize(&v, coef, sums, 1, 2, &p, NULL), SS_OK);
    ck_assert_double_eq_tol(v.dice, d1, 1e-15);
    ck_assert_double_eq(coef[0], 0);
    ck_assert_double_eq(coef[1], 0);
    // No counted voxel: ce = 0 and no CE gradient instead of PyTorch's NaN.
    sums[7] = 0;
    ck_assert_int_eq(ss_loss_fwd_finalize(&v, coef, sums, 1, 2, &p, NULL), SS_OK);
    ck_assert_double_eq(v.ce, 0);
    ck_assert_double_eq(coef[4], 0);
    // Non-finite loss.
    ss_error_t err;
    sums[3] = NAN;
    ck_assert_int_eq(ss_loss_fwd_finalize(&v, coef, sums, 1, 2, &p, &err), SS_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(err.msg, "NaN"));
    ck_assert_int_eq(ss_loss_fwd_finalize(&v, coef, sums, 1, 0, &p, &err), SS_EINVAL);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Parameters and errors

START_TEST(test_params)
{
    ss_loss_params_t p;
    ss_loss_params_init(&p, SS_LOSS_CE, SS_LOSS_SOFTMAX);
    ck_assert(p.lambda_dice == 0 && p.lambda_ce == 1);
    ss_loss_params_init(&p, SS_LOSS_DICE, SS_LOSS_SIGMOID);
    ck_assert(p.lambda_dice == 1 && p.lambda_ce == 0 && p.act == SS_LOSS_SIGMOID);
    ck_assert(p.smooth_nr == 1e-5 && p.smooth_dr == 1e-5 && p.include_background == 1);
    ck_assert(p.ignore_index == -100 && p.squared_pred == 0 && p.batch == 0);
    ck_assert_int_eq(ss_loss_params_validate(&p, NULL), SS_OK);
    ss_error_t err;
    p.smooth_dr = -1;
    ck_assert_int_eq(ss_loss_params_validate(&p, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "smooth"));
    p.smooth_dr = 0;
    p.lambda_ce = NAN;
    ck_assert_int_eq(ss_loss_params_validate(&p, &err), SS_EINVAL);
    p.lambda_ce = 1;
    p.act = (ss_loss_act_t)7;
    ck_assert_int_eq(ss_loss_params_validate(&p, &err), SS_EINVAL);
}
END_TEST

START_TEST(test_workspace_size)
{
    fixture_t f;
    fixture_make(&f, &cases[1], 7);
    ck_assert_uint_gt(ss_loss_workspace_size(&f.tx, 2), ss_loss_workspace_size(&f.tx, 1));
    ck_assert_uint_eq(ss_loss_workspace_size(&f.tt, 1), 0); // not logits
    ss_exec_t ex = fixture_exec(&f, 2);
    ex.work_bytes = ss_loss_workspace_size(&f.tx, 2) - 1;
    ss_loss_value_t v;
    ss_error_t err;
    ck_assert_int_eq(ss_loss_fwd(&v, &f.tx, &f.tt, &f.p, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "workspace"));
    fixture_free(&f);
}
END_TEST

START_TEST(test_bad_inputs)
{
    fixture_t f;
    fixture_make(&f, &cases[1], 8); // softmax, class map (2, 3, 7, 5, 3)
    ss_exec_t ex = fixture_exec(&f, 2);
    ss_loss_value_t v;
    ss_error_t err;
    double sums[64];
    // target shape mismatch
    ss_tensor_t bad = f.tt;
    bad.shape[2] = 4;
    ck_assert_int_eq(ss_loss_fwd_partial(sums, &f.tx, &bad, &f.p, &ex, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "target"));
    // non-contiguous plane (a J-slab view)
    ss_tensor_t jv;
    ss_tensor_view_slab(&jv, &f.tx, 3, 1, 2, NULL);
    ck_assert_int_eq(ss_loss_fwd(&v, &jv, &f.tt, &f.p, &ex, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "contiguous"));
    // rank
    ss_tensor_t r4 = f.tt;
    ck_assert_int_eq(ss_loss_fwd(&v, &r4, &f.tt, &f.p, &ex, &err), SS_ESHAPE);
    // sigmoid needs a dense target
    ss_loss_params_t ps = f.p;
    ps.act = SS_LOSS_SIGMOID;
    ck_assert_int_eq(ss_loss_fwd(&v, &f.tx, &f.tt, &ps, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "sigmoid"));
    // labels outside [0, C), not integers
    float keep = f.t[5];
    float badv[3] = {3.0f, 1.5f, -1.0f};
    for (int i = 0; i < 3; i++) {
        f.t[5] = badv[i];
        ck_assert_int_eq(ss_loss_fwd_partial(sums, &f.tx, &f.tt, &f.p, &ex, &err), SS_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "class-map"));
    }
    f.t[5] = keep;
    // NaN logits surface as SS_ENUMERIC, in any channel
    for (int64_t at = 0; at < f.nx; at += f.s + 1) {
        float kx = f.x[at];
        f.x[at] = NAN;
        ck_assert_int_eq(ss_loss_fwd(&v, &f.tx, &f.tt, &f.p, &ex, &err), SS_ENUMERIC);
        f.x[at] = kx;
    }
    // dlogits overlapping logits, dlogits shape
    ck_assert_int_eq(ss_loss_fwd_bwd(&v, &f.tx, &f.tx, &f.tt, &f.p, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "overlaps"));
    ss_tensor_t dsh = f.tdl;
    dsh.shape[4] = 2;
    ck_assert_int_eq(ss_loss_fwd_bwd(&v, &dsh, &f.tx, &f.tt, &f.p, &ex, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_loss_bwd(&f.tdl, &f.tx, &f.tt, NULL, &f.p, &ex, &err), SS_EINVAL);
    ex.nthreads = 0;
    ck_assert_int_eq(ss_loss_fwd(&v, &f.tx, &f.tt, &f.p, &ex, &err), SS_EINVAL);
    fixture_free(&f);
    // softmax over one channel
    fixture_make(&f, &cases[6], 9); // sigmoid (1, 1, 3, 5, 7)
    ex = fixture_exec(&f, 1);
    ps = f.p;
    ps.act = SS_LOSS_SOFTMAX;
    ck_assert_int_eq(ss_loss_fwd(&v, &f.tx, &f.tt, &ps, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "channel"));
    fixture_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loss");
    struct {
        const char *name;
        const TTest *test;
    } tcs[] = {
        {"tc_ss_ref_loss_bwd_logits", test_ref_fd},
        {"tc_ss_loss_fwd_bwd", test_golden},
        {"tc_ss_loss_fwd_bwd", test_fast_vs_ref},
        {"tc_ss_loss_fwd_partial", test_threads_bitwise},
        {"tc_ss_loss_bwd", test_sharded},
        {"tc_ss_loss_sums_merge", test_sums_merge},
        {"tc_ss_loss_fwd_finalize", test_finalize_values},
        {"tc_ss_loss_params_validate", test_params},
        {"tc_ss_loss_workspace_size", test_workspace_size},
        {"tc_ss_loss_fwd", test_bad_inputs},
    };
    TCase *tc = NULL;
    for (size_t i = 0; i < sizeof(tcs) / sizeof(tcs[0]); i++) {
        if (i == 0 || strcmp(tcs[i].name, tcs[i - 1].name) != 0) {
            tc = tcase_create(tcs[i].name);
            tcase_set_timeout(tc, 60);
            suite_add_tcase(s, tc);
        }
        tcase_add_test(tc, tcs[i].test);
    }
    return ss_test_run(s);
}
