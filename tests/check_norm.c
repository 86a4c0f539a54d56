// Tests of norm: instance/group norm and layer norm. Fast float kernels against the double
// reference on odd shapes, finite differences of the reference backward, PyTorch golden values,
// thread-count invariance (bit-for-bit), the sharded (i-slab) pipeline against the one-shot calls,
// and argument validation.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/act.h"
#include "shardseg/norm.h"

#include "ref/norm_ref.h"
#include "testutil.h"

#define MAX_THREADS 3

// ---- helpers ----------------------------------------------------------------------------------

static void *work_alloc(size_t bytes)
{
    void *w = aligned_alloc(64, (bytes + 64) / 64 * 64);
    ck_assert_ptr_nonnull(w);
    return w;
}

// Largest |a - b| / (atol + rtol |b|) of a float result against a double reference.

static double max_of(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        m = a[i] > m ? a[i] : m;
    }
    return m;
}

static void expect_close(const float *got,
                         const double *want,
                         int64_t n,
                         double atol,
                         double rtol,
                         const char *what,
                         int cas)
{
    double e = ss_test_err_f64(got, want, n, atol, rtol);
    ck_assert_msg(e <= 1.0, "case %d: %s error %g of tolerance (atol %g rtol %g)", cas, what, e,
                  atol, rtol);
}

static void expect_same_bits(const ss_tensor_t *a, const ss_tensor_t *b, const char *what, int nt)
{
    ck_assert_msg(memcmp(a->data, b->data, ss_tensor_nbytes(a)) == 0,
                  "%s differs between 1 and %d threads", what, nt);
}

// ---- instance / group norm fixture ------------------------------------------------------------

typedef struct {
    int64_t n, c, g, i, j, k; // g = 0: instance norm
} ishape_t;

// Sizes 1, primes, planes of one voxel, planes spanning several 4096-element chunks with a partial
// last chunk, and group norm with 1 < cpg < C and cpg == C.
static const ishape_t ISHAPES[] = {
    {1, 1, 0, 1, 1, 1},  {1, 1, 0, 2, 1, 1},    {2, 3, 0, 5, 4, 3},
    {3, 5, 0, 7, 1, 13}, {1, 2, 0, 17, 16, 19}, {2, 6, 3, 3, 5, 7},
    {1, 4, 2, 1, 1, 1},  {2, 4, 1, 11, 3, 29},  {1, 3, 0, 64, 8, 9},
};
#define NISHAPES ((int)(sizeof(ISHAPES) / sizeof(ISHAPES[0])))

typedef struct {
    ishape_t d;
    int64_t g, s; // effective groups, plane size
    ss_instnorm_params_t p;
    ss_tensor_t x, y, gamma, beta, mean, rstd, dy, dx, dgamma, dbeta;
    void *work;
    size_t work_bytes;
} ifix_t;

static void ifix_make(ifix_t *f, const ishape_t *d, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->d = *d;
    f->g = d->g ? d->g : d->c;
    f->s = d->i * d->j * d->k;
    f->p = (ss_instnorm_params_t){.groups = d->g, .eps = 1e-5f};
    int64_t xs[5] = {d->n, d->c, d->i, d->j, d->k}, ms[2] = {d->n, f->g};
    ss_test_tensor(&f->x, 5, xs, seed, -0.5f, 1.5f); // off-centre: exercises the mean subtraction
    ss_test_tensor(&f->y, 5, xs, 0, 0, 0);
    ss_test_tensor(&f->dy, 5, xs, seed + 1, -1.0f, 1.0f);
    ss_test_tensor(&f->dx, 5, xs, 0, 0, 0);
    ss_test_tensor(&f->gamma, 1, &d->c, seed + 2, 0.5f, 1.5f);
    ss_test_tensor(&f->beta, 1, &d->c, seed + 3, -1.0f, 1.0f);
    ss_test_tensor(&f->dgamma, 1, &d->c, 0, 0, 0);
    ss_test_tensor(&f->dbeta, 1, &d->c, 0, 0, 0);
    ss_test_tensor(&f->mean, 2, ms, 0, 0, 0);
    ss_test_tensor(&f->rstd, 2, ms, 0, 0, 0);
    f->work_bytes = ss_instnorm_workspace_size(&f->x, &f->p);
    f->work = work_alloc(f->work_bytes);
}

static void ifix_free(ifix_t *f)
{
    ss_tensor_t *ts[] = {&f->x,    &f->y,  &f->gamma, &f->beta,   &f->mean,
                         &f->rstd, &f->dy, &f->dx,    &f->dgamma, &f->dbeta};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
    free(f->work);
}

static ss_exec_t iexec(const ifix_t *f, int nt)
{
    ss_exec_t ex = {nt, f->work, f->work_bytes, NULL};
    return ex;
}

static void ifix_run(ifix_t *f, int nt, int affine)
{
    ss_exec_t ex = iexec(f, nt);
    ss_error_t err;
    const ss_tensor_t *g = affine ? &f->gamma : NULL, *b = affine ? &f->beta : NULL;
    ck_assert_int_eq(ss_instnorm_fwd(&f->y, &f->mean, &f->rstd, &f->x, g, b, &f->p, &ex, &err),
                     SS_OK);
    ck_assert_int_eq(ss_instnorm_bwd(&f->dx, affine ? &f->dgamma : NULL, affine ? &f->dbeta : NULL,
                                     &f->dy, &f->x, g, &f->mean, &f->rstd, &f->p, &ex, &err),
                     SS_OK);
}

// Float kernels vs the double reference. Tolerances: y and dx atol 1e-5 * max(1, max rstd) (a
// float rounding of x - mean is amplified by rstd, large for near-constant groups), rtol 1e-5;
// mean/rstd rtol 1e-6 (double statistics, one float rounding); dgamma/dbeta atol 1e-6 * L with L
// = N * S the reduction length, rtol 1e-5.
START_TEST(test_instnorm_vs_ref)
{
    const ishape_t *d = &ISHAPES[_i];
    for (int affine = 0; affine <= 1; affine++) {
        ifix_t f;
        ifix_make(&f, d, 100 + (uint64_t)_i * 10);
        ifix_run(&f, 2, affine);
        int64_t nx = ss_tensor_numel(&f.x), nm = d->n * f.g;
        double *x = ss_test_to_f64(&f.x), *dy = ss_test_to_f64(&f.dy),
               *gm = ss_test_to_f64(&f.gamma), *bt = ss_test_to_f64(&f.beta);
        double *y = ss_test_dalloc(nx), *dx = ss_test_dalloc(nx), *mean = ss_test_dalloc(nm),
               *rstd = ss_test_dalloc(nm);
        double *dg = ss_test_dalloc(d->c), *db = ss_test_dalloc(d->c);
        ss_ref_groupnorm_fwd(y, mean, rstd, x, affine ? gm : NULL, affine ? bt : NULL, d->n, d->c,
                             f.s, f.g, 1e-5);
        ss_ref_groupnorm_bwd(dx, dg, db, dy, x, affine ? gm : NULL, d->n, d->c, f.s, f.g, 1e-5);
        double amp = fmax(1.0, max_of(rstd, nm));
        expect_close(ss_tensor_f32(&f.y), y, nx, 1e-5 * amp, 1e-5, "y", _i);
        expect_close(ss_tensor_f32(&f.mean), mean, nm, 1e-7, 1e-6, "mean", _i);
        expect_close(ss_tensor_f32(&f.rstd), rstd, nm, 0, 1e-6, "rstd", _i);
        expect_close(ss_tensor_f32(&f.dx), dx, nx, 1e-5 * amp, 1e-5, "dx", _i);
        if (affine) {
            double l = (double)(d->n * f.s);
            expect_close(ss_tensor_f32(&f.dgamma), dg, d->c, 1e-6 * l, 1e-5, "dgamma", _i);
            expect_close(ss_tensor_f32(&f.dbeta), db, d->c, 1e-6 * l, 1e-5, "dbeta", _i);
        }
        double *bufs[] = {x, dy, gm, bt, y, dx, mean, rstd, dg, db};
        for (size_t k = 0; k < sizeof(bufs) / sizeof(bufs[0]); k++) {
            free(bufs[k]);
        }
        ifix_free(&f);
    }
}
END_TEST

// Chunking is fixed and folds run in a fixed order, so 1, 2 and 3 threads give identical bits.
START_TEST(test_instnorm_threads_bitwise)
{
    ifix_t a, b;
    ifix_make(&a, &ISHAPES[_i], 7);
    ifix_run(&a, 1, 1);
    for (int nt = 2; nt <= MAX_THREADS; nt++) {
        ifix_make(&b, &ISHAPES[_i], 7);
        ifix_run(&b, nt, 1);
        expect_same_bits(&a.y, &b.y, "y", nt);
        expect_same_bits(&a.mean, &b.mean, "mean", nt);
        expect_same_bits(&a.rstd, &b.rstd, "rstd", nt);
        expect_same_bits(&a.dx, &b.dx, "dx", nt);
        expect_same_bits(&a.dgamma, &b.dgamma, "dgamma", nt);
        expect_same_bits(&a.dbeta, &b.dbeta, "dbeta", nt);
        ifix_free(&b);
    }
    ifix_free(&a);
}
END_TEST

// ---- golden values ----------------------------------------------------------------------------

static const char *GOLDEN = "golden_norm.h5";

static void golden_tensor(ss_tensor_t *t, const char *cas, const char *key)
{
    char name[128];
    snprintf(name, sizeof(name), "%s/%s", cas, key);
    int64_t shape[8];
    int nd;
    float *data = ss_test_golden(GOLDEN, name, shape, &nd);
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, nd, shape, data, NULL), SS_OK);
}

// rtol 1e-5, atol 1e-5: the float kernels against float64 PyTorch on O(1) values.
static void golden_expect(const ss_tensor_t *got, const char *cas, const char *key)
{
    char name[128];
    snprintf(name, sizeof(name), "%s/%s", cas, key);
    int64_t shape[8];
    int nd;
    double *want = ss_test_golden_f64(GOLDEN, name, shape, &nd);
    double e = ss_test_err_f64(ss_tensor_f32(got), want, ss_tensor_numel(got), 1e-5, 1e-5);
    ck_assert_msg(e <= 1.0, "golden %s: error %g of tolerance", name, e);
    free(want);
}

static void zeros_like(ss_tensor_t *t, const ss_tensor_t *like)
{
    ss_test_tensor(t, like->ndim, like->shape, 0, 0, 0);
}

START_TEST(test_instnorm_golden)
{
    static const char *CASES[] = {"instnorm", "instnorm_noaffine", "groupnorm"};
    static const int64_t GROUPS[] = {0, 0, 3};
    const char *cas = CASES[_i];
    int affine = _i != 1;
    ss_tensor_t x, dy, gamma = {0}, beta = {0}, y, dx, dg = {0}, db = {0}, mean, rstd;
    golden_tensor(&x, cas, "x");
    golden_tensor(&dy, cas, "dy");
    if (affine) {
        golden_tensor(&gamma, cas, "gamma");
        golden_tensor(&beta, cas, "beta");
        zeros_like(&dg, &gamma);
        zeros_like(&db, &beta);
    }
    zeros_like(&y, &x);
    zeros_like(&dx, &x);
    ss_instnorm_params_t p = {.groups = GROUPS[_i],
                              .eps = (float)ss_test_golden_attr(GOLDEN, "eps")};
    int64_t ms[2] = {x.shape[0], p.groups ? p.groups : x.shape[1]};
    ss_test_tensor(&mean, 2, ms, 0, 0, 0);
    ss_test_tensor(&rstd, 2, ms, 0, 0, 0);
    size_t wb = ss_instnorm_workspace_size(&x, &p);
    ss_exec_t ex = {2, work_alloc(wb), wb, NULL};
    ss_error_t err;
    const ss_tensor_t *g = affine ? &gamma : NULL, *b = affine ? &beta : NULL;
    ck_assert_int_eq(ss_instnorm_fwd(&y, &mean, &rstd, &x, g, b, &p, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_instnorm_bwd(&dx, affine ? &dg : NULL, affine ? &db : NULL, &dy, &x, g,
                                     &mean, &rstd, &p, &ex, &err),
                     SS_OK);
    golden_expect(&y, cas, "y");
    golden_expect(&dx, cas, "dx");
    if (affine) {
        golden_expect(&dg, cas, "dgamma");
        golden_expect(&db, cas, "dbeta");
    }
    ss_tensor_t *ts[] = {&x, &dy, &gamma, &beta, &y, &dx, &dg, &db, &mean, &rstd};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
    free(ex.work);
}
END_TEST

// ---- finite differences of the reference backward ---------------------------------------------

typedef struct {
    int ln; // 1: layer norm (t = n, c), 0: group norm
    int64_t n, c, s, g;
    double *x, *gamma, *beta, *w, *y; // loss = sum(w * y)
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    int64_t ny = c->n * c->c * c->s;
    if (c->ln) {
        ss_ref_layernorm_fwd(c->y, NULL, NULL, c->x, c->gamma, c->beta, c->n, c->c, 1e-5);
    } else {
        ss_ref_groupnorm_fwd(c->y, NULL, NULL, c->x, c->gamma, c->beta, c->n, c->c, c->s, c->g,
                             1e-5);
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

// Central differences with h = 1e-6 on a double function: truncation O(h^2) and rounding
// O(1e-16 / h) are both below 1e-8, so tolerance 1e-7 * (1 + |grad|).
static void fd_compare(fd_ctx_t *c, double *var, const double *grad, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double fd = ss_test_fd(fd_loss, c, var, i, 1e-6);
        ck_assert_msg(fabs(fd - grad[i]) <= 1e-7 * (1 + fabs(grad[i])),
                      "%s[%lld]: fd %.12g vs %.12g", what, (long long)i, fd, grad[i]);
    }
}

static void fd_case(int ln, int64_t n, int64_t c, int64_t s, int64_t g)
{
    int64_t nx = n * c * s;
    fd_ctx_t ctx = {ln,
                    n,
                    c,
                    s,
                    g,
                    rand_f64(nx, 1, -1, 1),
                    rand_f64(c, 2, 0.5f, 1.5f),
                    rand_f64(c, 3, -1, 1),
                    rand_f64(nx, 4, -1, 1),
                    ss_test_dalloc(nx)};
    double *dx = ss_test_dalloc(nx), *dg = ss_test_dalloc(c), *db = ss_test_dalloc(c);
    if (ln) {
        ss_ref_layernorm_bwd(dx, dg, db, ctx.w, ctx.x, ctx.gamma, n, c, 1e-5);
    } else {
        ss_ref_groupnorm_bwd(dx, dg, db, ctx.w, ctx.x, ctx.gamma, n, c, s, g, 1e-5);
    }
    fd_compare(&ctx, ctx.x, dx, nx, "dx");
    fd_compare(&ctx, ctx.gamma, dg, c, "dgamma");
    fd_compare(&ctx, ctx.beta, db, c, "dbeta");
    double *bufs[] = {ctx.x, ctx.gamma, ctx.beta, ctx.w, ctx.y, dx, dg, db};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        free(bufs[i]);
    }
}

START_TEST(test_instnorm_ref_fd)
{
    fd_case(0, 2, 3, 7, 3); // instance norm
    fd_case(0, 1, 4, 5, 2); // group norm, 2 channels per group
}
END_TEST

// ---- staged API -------------------------------------------------------------------------------

// Moments of the whole set from merged partials: exact in exact arithmetic; 1e-12 relative here.
START_TEST(test_moments_merge)
{
    enum { N = 1000 };
    double v[N];
    float f[N];
    ss_test_fill(f, N, 5, -3.0f, 5.0f);
    for (int i = 0; i < N; i++) {
        v[i] = f[i] + 1e3; // offset: raw sums of squares would cancel badly
    }
    const int cuts[] = {0, 1, 1, 400, 999, 1000}; // includes an empty part
    ss_norm_moments_t acc = {0, 0, 0};
    for (int k = 0; k + 1 < (int)(sizeof(cuts) / sizeof(cuts[0])); k++) {
        ss_norm_moments_t part = {0, 0, 0};
        int len = cuts[k + 1] - cuts[k];
        if (len > 0) {
            double s = 0, q = 0;
            for (int i = cuts[k]; i < cuts[k + 1]; i++) {
                s += v[i];
            }
            for (int i = cuts[k]; i < cuts[k + 1]; i++) {
                q += (v[i] - s / len) * (v[i] - s / len);
            }
            part = (ss_norm_moments_t){len, s / len, q};
        }
        ss_norm_moments_merge(&acc, &part, 1);
    }
    double s = 0, q = 0;
    for (int i = 0; i < N; i++) {
        s += v[i];
    }
    for (int i = 0; i < N; i++) {
        q += (v[i] - s / N) * (v[i] - s / N);
    }
    ck_assert_double_eq(acc.count, N);
    ck_assert_double_eq_tol(acc.mean, s / N, 1e-12 * fabs(s / N));
    ck_assert_double_eq_tol(acc.m2, q, 1e-12 * q);
}
END_TEST

// stats_partial per (n, g) against the two-pass double moments of the group; an empty slab gives
// count 0.
START_TEST(test_stats_partial)
{
    const ishape_t *d = &ISHAPES[_i];
    ifix_t f;
    ifix_make(&f, d, 21);
    ss_exec_t ex = iexec(&f, 2);
    ss_error_t err;
    int64_t nm = d->n * f.g, cpg = d->c / f.g;
    ss_norm_moments_t *st = malloc(sizeof(*st) * (size_t)nm);
    ck_assert_int_eq(ss_instnorm_stats_partial(st, &f.x, &f.p, &ex, &err), SS_OK);
    double *x = ss_test_to_f64(&f.x);
    for (int64_t i = 0; i < nm; i++) {
        int64_t m = cpg * f.s;
        const double *xg = x + i * m; // group i = (n, g) is one run of cpg planes
        double s = 0, q = 0;
        for (int64_t e = 0; e < m; e++) {
            s += xg[e];
        }
        for (int64_t e = 0; e < m; e++) {
            q += (xg[e] - s / m) * (xg[e] - s / m);
        }
        ck_assert_double_eq(st[i].count, (double)m);
        ck_assert_double_eq_tol(st[i].mean, s / m, 1e-12 * (1 + fabs(s / m)));
        ck_assert_double_eq_tol(st[i].m2, q, 1e-12 * (1 + q));
    }
    // An empty i-slab (a rank with no rows): count 0, nothing read.
    ss_tensor_t empty;
    ck_assert_int_eq(ss_tensor_view_slab(&empty, &f.x, 2, 0, 0, NULL), SS_OK);
    ck_assert_int_eq(ss_instnorm_stats_partial(st, &empty, &f.p, &ex, &err), SS_OK);
    for (int64_t i = 0; i < nm; i++) {
        ck_assert_double_eq(st[i].count, 0);
    }
    free(x);
    free(st);
    ifix_free(&f);
}
END_TEST

START_TEST(test_stats_merge)
{
    enum { LEN = 3, P = 4 };
    ss_norm_moments_t parts[P * LEN], want[LEN] = {{0, 0, 0}};
    for (int r = 0; r < P; r++) {
        for (int j = 0; j < LEN; j++) {
            // Part 1 is empty for j == 0: a rank whose slab holds none of the rows.
            double cnt = (r == 1 && j == 0) ? 0 : (double)(r + j + 1);
            parts[r * LEN + j] = (ss_norm_moments_t){cnt, cnt ? r - 0.5 * j : 0, cnt ? 0.1 * r : 0};
            ss_norm_moments_merge(&want[j], &parts[r * LEN + j], 1);
        }
    }
    ss_norm_moments_t out[LEN];
    ss_error_t err;
    ck_assert_int_eq(ss_instnorm_stats_merge(out, parts, P, LEN, &err), SS_OK);
    ck_assert(memcmp(out, want, sizeof(out)) == 0);
    // In place: the result replaces the first part.
    ck_assert_int_eq(ss_instnorm_stats_merge(parts, parts, P, LEN, &err), SS_OK);
    ck_assert(memcmp(parts, want, sizeof(want)) == 0);
    ck_assert_int_eq(ss_instnorm_stats_merge(out, parts, 0, LEN, &err), SS_EINVAL);
    ck_assert_int_gt((int)strlen(err.msg), 0);
}
END_TEST

// The sequence-parallel pipeline on i-slab views (one of them empty) against the one-shot calls
// on the whole tensor: y, mean, rstd, dx, dgamma, dbeta agree within 1e-6 relative (+1e-6 abs;
// only the chunking and merge order differ).
typedef struct {
    int64_t i0, len;
} cut_t;

static void slab(ss_tensor_t *v, const ss_tensor_t *t, cut_t c)
{
    ck_assert_int_eq(ss_tensor_view_slab(v, t, 2, c.i0, c.len, NULL), SS_OK);
}

static void sharded_fwd(
    ifix_t *f, const cut_t *cuts, int nc, ss_tensor_t *y, ss_tensor_t *mean, ss_tensor_t *rstd)
{
    ss_exec_t ex = iexec(f, 2);
    ss_error_t err;
    int64_t nm = f->d.n * f->g;
    ss_norm_moments_t *parts = malloc(sizeof(*parts) * (size_t)(nm * nc));
    for (int r = 0; r < nc; r++) {
        ss_tensor_t xs;
        slab(&xs, &f->x, cuts[r]);
        ck_assert_int_eq(ss_instnorm_stats_partial(parts + r * nm, &xs, &f->p, &ex, &err), SS_OK);
    }
    ss_norm_moments_t *global = malloc(sizeof(*global) * (size_t)nm);
    ck_assert_int_eq(ss_instnorm_stats_merge(global, parts, nc, nm, &err), SS_OK);
    for (int r = 0; r < nc; r++) {
        ss_tensor_t xs, ys;
        slab(&xs, &f->x, cuts[r]);
        slab(&ys, y, cuts[r]);
        ck_assert_int_eq(ss_instnorm_fwd_apply(&ys, mean, rstd, &xs, &f->gamma, &f->beta, global,
                                               &f->p, &ex, &err),
                         SS_OK);
    }
    free(parts);
    free(global);
}

// The fused epilogue (residual add, ReLU / LeakyReLU) against the separate calls it replaces:
// ss_instnorm_fwd, then y += res, then the activation kernel: bit-identical, also in place.
START_TEST(test_instnorm_epilogue)
{
    const ishape_t *d = &ISHAPES[_i];
    static const ss_norm_act_t ACTS[] = {SS_NORM_ACT_NONE, SS_NORM_ACT_RELU, SS_NORM_ACT_LEAKY};
    for (int with_res = 0; with_res <= 1; with_res++) {
        for (int a = 0; a < 3; a++) {
            for (int in_place = 0; in_place <= 1; in_place++) {
                ifix_t f;
                ifix_make(&f, d, 300 + (uint64_t)_i);
                ss_exec_t ex = iexec(&f, 2);
                ss_error_t err;
                ss_tensor_t res, want, x2;
                ss_test_tensor(&res, 5, f.x.shape, 77, -1.0f, 1.0f);
                zeros_like(&want, &f.y);
                ck_assert_int_eq(
                    ss_instnorm_fwd(&want, NULL, NULL, &f.x, &f.gamma, &f.beta, &f.p, &ex, &err),
                    SS_OK);
                int64_t nx = ss_tensor_numel(&f.x);
                for (int64_t i = 0; with_res && i < nx; i++) {
                    ss_tensor_f32(&want)[i] += ss_tensor_f32(&res)[i];
                }
                if (ACTS[a] == SS_NORM_ACT_RELU) {
                    ck_assert_int_eq(ss_relu_fwd(&want, &want, &ex, &err), SS_OK);
                } else if (ACTS[a] == SS_NORM_ACT_LEAKY) {
                    ck_assert_int_eq(ss_leaky_relu_fwd(&want, &want, 0.01f, &ex, &err), SS_OK);
                }
                int64_t nm = d->n * f.g;
                ss_norm_moments_t *st = malloc(sizeof(*st) * (size_t)nm);
                ck_assert_int_eq(ss_instnorm_stats_partial(st, &f.x, &f.p, &ex, &err), SS_OK);
                ss_instnorm_epilogue_t e = {with_res ? &res : NULL, ACTS[a], 0.01f};
                ss_tensor_t *y = &f.y;
                if (in_place) {
                    zeros_like(&x2, &f.x);
                    memcpy(x2.data, f.x.data, ss_tensor_nbytes(&f.x));
                    y = &x2;
                }
                ck_assert_int_eq(ss_instnorm_fwd_apply_act(y, NULL, NULL, in_place ? &x2 : &f.x,
                                                           &f.gamma, &f.beta, st, &f.p, &e, &ex,
                                                           &err),
                                 SS_OK);
                ck_assert_msg(memcmp(y->data, want.data, ss_tensor_nbytes(&want)) == 0,
                              "shape %d res %d act %d in place %d: not the separate calls' y", _i,
                              with_res, a, in_place);
                if (in_place) {
                    free(x2.data);
                }
                free(st);
                free(res.data);
                free(want.data);
                ifix_free(&f);
            }
        }
    }
}
END_TEST

// The epilogue's arguments: a non-finite slope, an unknown activation, res of another shape or
// res being y are refused with a message.
START_TEST(test_instnorm_epilogue_bad)
{
    ishape_t d = {1, 2, 0, 3, 4, 5}, other = {1, 2, 0, 3, 4, 6};
    ifix_t f, g;
    ifix_make(&f, &d, 5);
    ifix_make(&g, &other, 6);
    ss_exec_t ex = iexec(&f, 1);
    ss_error_t err;
    ss_norm_moments_t st[2];
    ck_assert_int_eq(ss_instnorm_stats_partial(st, &f.x, &f.p, &ex, &err), SS_OK);
    ss_instnorm_epilogue_t bad[] = {{NULL, SS_NORM_ACT_LEAKY, NAN},
                                    {NULL, (ss_norm_act_t)7, 0.0f},
                                    {&g.x, SS_NORM_ACT_RELU, 0.0f},
                                    {&f.y, SS_NORM_ACT_NONE, 0.0f}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = 0;
        ck_assert_int_ne(ss_instnorm_fwd_apply_act(&f.y, NULL, NULL, &f.x, NULL, NULL, st, &f.p,
                                                   &bad[i], &ex, &err),
                         SS_OK);
        ck_assert_msg(strlen(err.msg) > 0, "case %zu: no message", i);
    }
    ifix_free(&f);
    ifix_free(&g);
}
END_TEST

static const ishape_t SHARD_SHAPES[] = {{2, 3, 0, 7, 24, 31}, {1, 6, 2, 7, 3, 4}};
static const cut_t SHARD_CUTS[] = {{0, 2}, {2, 0}, {2, 5}};

START_TEST(test_instnorm_sharded_fwd)
{
    ifix_t f;
    ifix_make(&f, &SHARD_SHAPES[_i], 31);
    ifix_run(&f, 2, 1);
    ss_tensor_t y, mean, rstd;
    zeros_like(&y, &f.y);
    zeros_like(&mean, &f.mean);
    zeros_like(&rstd, &f.rstd);
    sharded_fwd(&f, SHARD_CUTS, 3, &y, &mean, &rstd);
    double *want = ss_test_to_f64(&f.y), *wm = ss_test_to_f64(&f.mean),
           *wr = ss_test_to_f64(&f.rstd);
    expect_close(ss_tensor_f32(&y), want, ss_tensor_numel(&y), 1e-6, 1e-6, "sharded y", _i);
    expect_close(ss_tensor_f32(&mean), wm, ss_tensor_numel(&mean), 1e-6, 1e-6, "mean", _i);
    expect_close(ss_tensor_f32(&rstd), wr, ss_tensor_numel(&rstd), 1e-6, 1e-6, "rstd", _i);
    free(want);
    free(wm);
    free(wr);
    free(y.data);
    free(mean.data);
    free(rstd.data);
    ifix_free(&f);
}
END_TEST

START_TEST(test_instnorm_sharded_bwd)
{
    ifix_t f;
    ifix_make(&f, &SHARD_SHAPES[_i], 41);
    ifix_run(&f, 2, 1);
    ss_exec_t ex = iexec(&f, 2);
    ss_error_t err;
    int64_t ns = 3 * f.d.n * f.d.c;
    double *sums = ss_test_dalloc(ns), *local = ss_test_dalloc(ns);
    ss_tensor_t dx, dg, db, dgr, dbr;
    zeros_like(&dx, &f.dx);
    zeros_like(&dg, &f.dgamma);
    zeros_like(&db, &f.dbeta);
    zeros_like(&dgr, &f.dgamma);
    zeros_like(&dbr, &f.dbeta);
    // Stage 1 on every slab, then the all-reduce (a sum) of the sums and of dgamma/dbeta.
    for (int r = 0; r < 3; r++) {
        ss_tensor_t dys, xs;
        slab(&dys, &f.dy, SHARD_CUTS[r]);
        slab(&xs, &f.x, SHARD_CUTS[r]);
        ck_assert_int_eq(ss_instnorm_bwd_partial(local, &dgr, &dbr, &dys, &xs, &f.mean, &f.rstd,
                                                 &f.p, &ex, &err),
                         SS_OK);
        for (int64_t i = 0; i < ns; i++) {
            sums[i] += local[i];
        }
        for (int64_t c = 0; c < f.d.c; c++) {
            ss_tensor_f32(&dg)[c] += ss_tensor_f32(&dgr)[c];
            ss_tensor_f32(&db)[c] += ss_tensor_f32(&dbr)[c];
        }
    }
    for (int r = 0; r < 3; r++) {
        ss_tensor_t dxs, dys, xs;
        slab(&dxs, &dx, SHARD_CUTS[r]);
        slab(&dys, &f.dy, SHARD_CUTS[r]);
        slab(&xs, &f.x, SHARD_CUTS[r]);
        ck_assert_int_eq(ss_instnorm_bwd_apply(&dxs, &dys, &xs, &f.gamma, &f.mean, &f.rstd, sums,
                                               &f.p, &ex, &err),
                         SS_OK);
    }
    double *wdx = ss_test_to_f64(&f.dx), *wdg = ss_test_to_f64(&f.dgamma),
           *wdb = ss_test_to_f64(&f.dbeta);
    expect_close(ss_tensor_f32(&dx), wdx, ss_tensor_numel(&dx), 1e-6, 1e-6, "sharded dx", _i);
    expect_close(ss_tensor_f32(&dg), wdg, f.d.c, 1e-5, 1e-6, "sharded dgamma", _i);
    expect_close(ss_tensor_f32(&db), wdb, f.d.c, 1e-5, 1e-6, "sharded dbeta", _i);
    free(wdx);
    free(wdg);
    free(wdb);
    free(sums);
    free(local);
    ss_tensor_t *ts[] = {&dx, &dg, &db, &dgr, &dbr};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
    ifix_free(&f);
}
END_TEST

// bwd_partial's sums against the reference definitions: sum dy, sum dy * xhat, count per plane.
START_TEST(test_bwd_partial_sums)
{
    const ishape_t *d = &ISHAPES[_i];
    ifix_t f;
    ifix_make(&f, d, 51);
    ifix_run(&f, 2, 1);
    ss_exec_t ex = iexec(&f, 2);
    ss_error_t err;
    int64_t planes = d->n * d->c, cpg = d->c / f.g;
    double *sums = ss_test_dalloc(3 * planes);
    ck_assert_int_eq(
        ss_instnorm_bwd_partial(sums, NULL, NULL, &f.dy, &f.x, &f.mean, &f.rstd, &f.p, &ex, &err),
        SS_OK);
    const float *x = ss_tensor_f32(&f.x), *dy = ss_tensor_f32(&f.dy);
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t gi = (pl / d->c) * f.g + (pl % d->c) / cpg;
        double mu = ss_tensor_f32(&f.mean)[gi], rs = ss_tensor_f32(&f.rstd)[gi], a = 0, b = 0;
        for (int64_t e = pl * f.s; e < (pl + 1) * f.s; e++) {
            a += dy[e];
            b += dy[e] * (x[e] - mu) * rs;
        }
        ck_assert_double_eq_tol(sums[3 * pl], a, 1e-9 * (1 + fabs(a)));
        ck_assert_double_eq_tol(sums[3 * pl + 1], b, 1e-9 * (1 + fabs(b)));
        ck_assert_double_eq(sums[3 * pl + 2], (double)f.s);
    }
    free(sums);
    ifix_free(&f);
}
END_TEST

// (N, C, L) and (N, C) layouts: any number of spatial dims, same numbers as the 5-D call.
START_TEST(test_instnorm_ndim)
{
    ifix_t f;
    ifix_make(&f, &ISHAPES[2], 61);
    ifix_run(&f, 2, 1);
    ss_tensor_t x3, y3;
    int64_t s3[3] = {f.d.n, f.d.c, f.s};
    ck_assert_int_eq(ss_tensor_view_reshape(&x3, &f.x, 3, s3, NULL), SS_OK);
    zeros_like(&y3, &x3);
    ss_exec_t ex = iexec(&f, 2);
    ss_error_t err;
    ck_assert_int_eq(ss_instnorm_fwd(&y3, NULL, NULL, &x3, &f.gamma, &f.beta, &f.p, &ex, &err),
                     SS_OK);
    ck_assert(memcmp(y3.data, f.y.data, ss_tensor_nbytes(&y3)) == 0);
    // (N, C): one element per plane: y = beta.
    ss_tensor_t x2, y2;
    int64_t s2[2] = {f.d.n, f.d.c * f.s};
    ss_instnorm_params_t p2 = {.groups = 0, .eps = 1e-5f};
    ck_assert_int_eq(ss_tensor_view_reshape(&x2, &f.x, 2, s2, NULL), SS_OK);
    ck_assert_int_eq(ss_tensor_view_reshape(&y2, &y3, 2, s2, NULL), SS_OK);
    size_t wb = ss_instnorm_workspace_size(&x2, &p2);
    ss_exec_t ex2 = {1, work_alloc(wb), wb, NULL};
    ck_assert_int_eq(ss_instnorm_fwd(&y2, NULL, NULL, &x2, NULL, NULL, &p2, &ex2, &err), SS_OK);
    for (int64_t i = 0; i < ss_tensor_numel(&y2); i++) {
        ck_assert_float_eq(ss_tensor_f32(&y2)[i], 0.0f);
    }
    free(ex2.work);
    free(y3.data);
    ifix_free(&f);
}
END_TEST

START_TEST(test_instnorm_bad_args)
{
    ifix_t f;
    ifix_make(&f, &ISHAPES[5], 71); // (2, 6, 3, 5, 7), groups 3
    ss_exec_t ex = iexec(&f, 2);
    ss_error_t err;
    ss_tensor_t *g = &f.gamma, *b = &f.beta;
#define EXPECT(call, code)                                                                         \
    do {                                                                                           \
        memset(&err, 0, sizeof(err));                                                              \
        ck_assert_int_eq((call), (code));                                                          \
        ck_assert_int_gt((int)strlen(err.msg), 0);                                                 \
    } while (0)
    // groups must divide C; eps > 0.
    ss_instnorm_params_t bad = f.p;
    bad.groups = 4;
    EXPECT(ss_instnorm_fwd(&f.y, &f.mean, &f.rstd, &f.x, g, b, &bad, &ex, &err), SS_EINVAL);
    bad = f.p;
    bad.eps = 0;
    EXPECT(ss_instnorm_fwd(&f.y, &f.mean, &f.rstd, &f.x, g, b, &bad, &ex, &err), SS_EINVAL);
    // y of another shape; gamma of the wrong length; mean of the wrong length.
    ss_tensor_t ys;
    ck_assert_int_eq(ss_tensor_view_slab(&ys, &f.y, 2, 0, 2, NULL), SS_OK);
    EXPECT(ss_instnorm_fwd(&ys, &f.mean, &f.rstd, &f.x, g, b, &f.p, &ex, &err), SS_ESHAPE);
    EXPECT(ss_instnorm_fwd(&f.y, &f.mean, &f.rstd, &f.x, &f.dgamma, &f.dx, &f.p, &ex, &err),
           SS_ESHAPE);
    EXPECT(ss_instnorm_fwd(&f.y, &f.x, &f.rstd, &f.x, g, b, &f.p, &ex, &err), SS_ESHAPE);
    // A j-slab view: planes are not contiguous.
    ss_tensor_t xj, yj;
    ck_assert_int_eq(ss_tensor_view_slab(&xj, &f.x, 3, 1, 2, NULL), SS_OK);
    ck_assert_int_eq(ss_tensor_view_slab(&yj, &f.y, 3, 1, 2, NULL), SS_OK);
    EXPECT(ss_instnorm_fwd(&yj, NULL, NULL, &xj, g, b, &f.p, &ex, &err), SS_ESHAPE);
    // 1-D x.
    EXPECT(ss_instnorm_stats_partial((ss_norm_moments_t *)f.work, &f.gamma, &f.p, &ex, &err),
           SS_ESHAPE);
    // Workspace too small.
    ss_exec_t small = ex;
    small.work_bytes = 8;
    EXPECT(ss_instnorm_fwd(&f.y, &f.mean, &f.rstd, &f.x, g, b, &f.p, &small, &err), SS_EINVAL);
    EXPECT(ss_instnorm_bwd(&f.dx, &f.dgamma, &f.dbeta, &f.dy, &f.x, g, &f.mean, &f.rstd, &f.p,
                           &small, &err),
           SS_EINVAL);
    // Merged stats with an empty group.
    ss_norm_moments_t zero[6] = {{0, 0, 0}};
    EXPECT(ss_instnorm_fwd_apply(&f.y, NULL, NULL, &f.x, g, b, zero, &f.p, &ex, &err), SS_EINVAL);
    // Backward without the saved statistics; reduced sums with a zero count.
    EXPECT(ss_instnorm_bwd(&f.dx, NULL, NULL, &f.dy, &f.x, g, NULL, &f.rstd, &f.p, &ex, &err),
           SS_EINVAL);
    double sums[3 * 12] = {0};
    EXPECT(ss_instnorm_bwd_apply(&f.dx, &f.dy, &f.x, g, &f.mean, &f.rstd, sums, &f.p, &ex, &err),
           SS_EINVAL);
#undef EXPECT
    ifix_free(&f);
}
END_TEST

START_TEST(test_instnorm_workspace_size)
{
    ifix_t f;
    ifix_make(&f, &ISHAPES[4], 81); // 5168-element planes: two chunks each
    // Chunk partials (2 planes x 2 chunks x 24 B) and the one-shot stats/sums (2 planes x 24 B).
    ck_assert_uint_ge(f.work_bytes, 4 * 24 + 2 * 24);
    ck_assert_uint_eq(ss_instnorm_workspace_size(NULL, &f.p), 0);
    // Independent of the thread count: the same buffer works for 1..3 threads.
    for (int nt = 1; nt <= MAX_THREADS; nt++) {
        ifix_run(&f, nt, 1);
    }
    ifix_free(&f);
}
END_TEST

// ---- layer norm -------------------------------------------------------------------------------

typedef struct {
    int64_t t, c;
} lshape_t;

// One token, one feature (variance 0), primes, more rows than the 64 backward chunks (partial last
// chunk) and the ViT width.
static const lshape_t LSHAPES[] = {{1, 1}, {1, 7}, {5, 13}, {67, 31}, {197, 97}, {70, 768}};
#define NLSHAPES ((int)(sizeof(LSHAPES) / sizeof(LSHAPES[0])))

typedef struct {
    lshape_t d;
    ss_layernorm_params_t p;
    ss_tensor_t x, y, gamma, beta, mean, rstd, dy, dx, dgamma, dbeta;
    void *work;
    size_t work_bytes;
} lfix_t;

static void lfix_make(lfix_t *f, const lshape_t *d, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->d = *d;
    f->p.eps = 1e-5f;
    int64_t xs[2] = {d->t, d->c};
    ss_test_tensor(&f->x, 2, xs, seed, -0.5f, 1.5f);
    ss_test_tensor(&f->y, 2, xs, 0, 0, 0);
    ss_test_tensor(&f->dy, 2, xs, seed + 1, -1.0f, 1.0f);
    ss_test_tensor(&f->dx, 2, xs, 0, 0, 0);
    ss_test_tensor(&f->gamma, 1, &d->c, seed + 2, 0.5f, 1.5f);
    ss_test_tensor(&f->beta, 1, &d->c, seed + 3, -1.0f, 1.0f);
    ss_test_tensor(&f->dgamma, 1, &d->c, 0, 0, 0);
    ss_test_tensor(&f->dbeta, 1, &d->c, 0, 0, 0);
    ss_test_tensor(&f->mean, 1, &d->t, 0, 0, 0);
    ss_test_tensor(&f->rstd, 1, &d->t, 0, 0, 0);
    f->work_bytes = ss_layernorm_workspace_size(&f->x);
    f->work = work_alloc(f->work_bytes);
}

static void lfix_free(lfix_t *f)
{
    ss_tensor_t *ts[] = {&f->x,    &f->y,  &f->gamma, &f->beta,   &f->mean,
                         &f->rstd, &f->dy, &f->dx,    &f->dgamma, &f->dbeta};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
    free(f->work);
}

static void lfix_run(lfix_t *f, int nt, int affine)
{
    ss_exec_t ex = {nt, f->work, f->work_bytes, NULL};
    ss_error_t err;
    const ss_tensor_t *g = affine ? &f->gamma : NULL, *b = affine ? &f->beta : NULL;
    ck_assert_int_eq(ss_layernorm_fwd(&f->y, &f->mean, &f->rstd, &f->x, g, b, &f->p, &ex, &err),
                     SS_OK);
    ck_assert_int_eq(ss_layernorm_bwd(&f->dx, affine ? &f->dgamma : NULL, affine ? &f->dbeta : NULL,
                                      &f->dy, &f->x, g, &f->mean, &f->rstd, &f->p, &ex, &err),
                     SS_OK);
}

// Same tolerances as instance norm; dgamma/dbeta reduce over L = T tokens.
START_TEST(test_layernorm_vs_ref)
{
    const lshape_t *d = &LSHAPES[_i];
    for (int affine = 0; affine <= 1; affine++) {
        lfix_t f;
        lfix_make(&f, d, 200 + (uint64_t)_i * 10);
        lfix_run(&f, 2, affine);
        int64_t nx = d->t * d->c;
        double *x = ss_test_to_f64(&f.x), *dy = ss_test_to_f64(&f.dy),
               *gm = ss_test_to_f64(&f.gamma), *bt = ss_test_to_f64(&f.beta);
        double *y = ss_test_dalloc(nx), *dx = ss_test_dalloc(nx), *mean = ss_test_dalloc(d->t),
               *rstd = ss_test_dalloc(d->t);
        double *dg = ss_test_dalloc(d->c), *db = ss_test_dalloc(d->c);
        ss_ref_layernorm_fwd(y, mean, rstd, x, affine ? gm : NULL, affine ? bt : NULL, d->t, d->c,
                             1e-5);
        ss_ref_layernorm_bwd(dx, dg, db, dy, x, affine ? gm : NULL, d->t, d->c, 1e-5);
        double amp = fmax(1.0, max_of(rstd, d->t));
        expect_close(ss_tensor_f32(&f.y), y, nx, 1e-5 * amp, 1e-5, "y", _i);
        expect_close(ss_tensor_f32(&f.mean), mean, d->t, 1e-7, 1e-6, "mean", _i);
        expect_close(ss_tensor_f32(&f.rstd), rstd, d->t, 0, 1e-6, "rstd", _i);
        expect_close(ss_tensor_f32(&f.dx), dx, nx, 1e-5 * amp, 1e-5, "dx", _i);
        if (affine) {
            expect_close(ss_tensor_f32(&f.dgamma), dg, d->c, 1e-6 * (double)d->t, 1e-5, "dgamma",
                         _i);
            expect_close(ss_tensor_f32(&f.dbeta), db, d->c, 1e-6 * (double)d->t, 1e-5, "dbeta", _i);
        }
        double *bufs[] = {x, dy, gm, bt, y, dx, mean, rstd, dg, db};
        for (size_t k = 0; k < sizeof(bufs) / sizeof(bufs[0]); k++) {
            free(bufs[k]);
        }
        lfix_free(&f);
    }
}
END_TEST

START_TEST(test_layernorm_threads_bitwise)
{
    lfix_t a, b;
    lfix_make(&a, &LSHAPES[_i], 9);
    lfix_run(&a, 1, 1);
    for (int nt = 2; nt <= MAX_THREADS; nt++) {
        lfix_make(&b, &LSHAPES[_i], 9);
        lfix_run(&b, nt, 1);
        expect_same_bits(&a.y, &b.y, "y", nt);
        expect_same_bits(&a.rstd, &b.rstd, "rstd", nt);
        expect_same_bits(&a.dx, &b.dx, "dx", nt);
        expect_same_bits(&a.dgamma, &b.dgamma, "dgamma", nt);
        expect_same_bits(&a.dbeta, &b.dbeta, "dbeta", nt);
        lfix_free(&b);
    }
    lfix_free(&a);
}
END_TEST

START_TEST(test_layernorm_golden)
{
    const char *cas = "layernorm";
    ss_tensor_t x, dy, gamma, beta, y, dx, dg, db, mean, rstd;
    golden_tensor(&x, cas, "x");
    golden_tensor(&dy, cas, "dy");
    golden_tensor(&gamma, cas, "gamma");
    golden_tensor(&beta, cas, "beta");
    zeros_like(&y, &x);
    zeros_like(&dx, &x);
    zeros_like(&dg, &gamma);
    zeros_like(&db, &beta);
    ss_test_tensor(&mean, 1, &x.shape[0], 0, 0, 0);
    ss_test_tensor(&rstd, 1, &x.shape[0], 0, 0, 0);
    ss_layernorm_params_t p = {.eps = (float)ss_test_golden_attr(GOLDEN, "eps")};
    size_t wb = ss_layernorm_workspace_size(&x);
    ss_exec_t ex = {2, work_alloc(wb), wb, NULL};
    ss_error_t err;
    ck_assert_int_eq(ss_layernorm_fwd(&y, &mean, &rstd, &x, &gamma, &beta, &p, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_layernorm_bwd(&dx, &dg, &db, &dy, &x, &gamma, &mean, &rstd, &p, &ex, &err),
                     SS_OK);
    golden_expect(&y, cas, "y");
    golden_expect(&dx, cas, "dx");
    golden_expect(&dg, cas, "dgamma");
    golden_expect(&db, cas, "dbeta");
    ss_tensor_t *ts[] = {&x, &dy, &gamma, &beta, &y, &dx, &dg, &db, &mean, &rstd};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        free(ts[i]->data);
    }
    free(ex.work);
}
END_TEST

START_TEST(test_layernorm_ref_fd)
{
    fd_case(1, 3, 5, 1, 0);
    fd_case(1, 2, 1, 1, 0); // one feature: y = beta, dx = 0
}
END_TEST

// A token shard (contiguous rows) computes the same rows as the whole tensor: row-local.
START_TEST(test_layernorm_token_shard)
{
    lfix_t f;
    lfix_make(&f, &LSHAPES[4], 11);
    lfix_run(&f, 2, 1);
    ss_tensor_t xs, ys, ms, rs;
    ck_assert_int_eq(ss_tensor_view_slab(&xs, &f.x, 0, 50, 60, NULL), SS_OK);
    int64_t shp[2] = {60, f.d.c};
    ss_test_tensor(&ys, 2, shp, 0, 0, 0);
    ss_test_tensor(&ms, 1, &shp[0], 0, 0, 0);
    ss_test_tensor(&rs, 1, &shp[0], 0, 0, 0);
    ss_exec_t ex = {2, NULL, 0, NULL};
    ss_error_t err;
    ck_assert_int_eq(ss_layernorm_fwd(&ys, &ms, &rs, &xs, &f.gamma, &f.beta, &f.p, &ex, &err),
                     SS_OK);
    ck_assert(memcmp(ys.data, ss_tensor_f32(&f.y) + 50 * f.d.c, ss_tensor_nbytes(&ys)) == 0);
    free(ys.data);
    free(ms.data);
    free(rs.data);
    lfix_free(&f);
}
END_TEST

START_TEST(test_layernorm_bad_args)
{
    lfix_t f;
    lfix_make(&f, &LSHAPES[3], 13);
    ss_exec_t ex = {2, f.work, f.work_bytes, NULL};
    ss_error_t err;
#define EXPECT(call, code)                                                                         \
    do {                                                                                           \
        memset(&err, 0, sizeof(err));                                                              \
        ck_assert_int_eq((call), (code));                                                          \
        ck_assert_int_gt((int)strlen(err.msg), 0);                                                 \
    } while (0)
    ss_tensor_t ys;
    ck_assert_int_eq(ss_tensor_view_slab(&ys, &f.y, 0, 0, 3, NULL), SS_OK);
    EXPECT(ss_layernorm_fwd(&ys, NULL, NULL, &f.x, &f.gamma, &f.beta, &f.p, &ex, &err), SS_ESHAPE);
    EXPECT(ss_layernorm_fwd(&f.y, NULL, NULL, &f.x, &f.mean, &f.beta, &f.p, &ex, &err), SS_ESHAPE);
    EXPECT(ss_layernorm_fwd(&f.y, NULL, NULL, &f.x, &f.gamma, NULL, &f.p, &ex, &err), SS_EINVAL);
    EXPECT(ss_layernorm_fwd(&f.y, &f.gamma, &f.rstd, &f.x, NULL, NULL, &f.p, &ex, &err), SS_ESHAPE);
    ss_layernorm_params_t bad = {.eps = -1};
    EXPECT(ss_layernorm_fwd(&f.y, NULL, NULL, &f.x, NULL, NULL, &bad, &ex, &err), SS_EINVAL);
    // Non-contiguous x (a column slab).
    ss_tensor_t xc, yc;
    ck_assert_int_eq(ss_tensor_view_slab(&xc, &f.x, 1, 0, 5, NULL), SS_OK);
    ck_assert_int_eq(ss_tensor_view_slab(&yc, &f.y, 1, 0, 5, NULL), SS_OK);
    EXPECT(ss_layernorm_fwd(&yc, NULL, NULL, &xc, NULL, NULL, &f.p, &ex, &err), SS_ESHAPE);
    // Backward: saved stats required; dgamma without gamma; workspace too small.
    EXPECT(ss_layernorm_bwd(&f.dx, NULL, NULL, &f.dy, &f.x, NULL, NULL, &f.rstd, &f.p, &ex, &err),
           SS_EINVAL);
    EXPECT(ss_layernorm_bwd(&f.dx, &f.dgamma, NULL, &f.dy, &f.x, NULL, &f.mean, &f.rstd, &f.p, &ex,
                            &err),
           SS_EINVAL);
    ss_exec_t small = ex;
    small.work_bytes = 16;
    EXPECT(ss_layernorm_bwd(&f.dx, &f.dgamma, &f.dbeta, &f.dy, &f.x, &f.gamma, &f.mean, &f.rstd,
                            &f.p, &small, &err),
           SS_EINVAL);
#undef EXPECT
    lfix_free(&f);
}
END_TEST

START_TEST(test_layernorm_workspace_size)
{
    lfix_t f;
    lfix_make(&f, &LSHAPES[4], 15); // 197 rows: 4 rows per chunk, 50 chunks
    ck_assert_uint_eq(f.work_bytes, 50u * 2 * 97 * sizeof(double));
    ck_assert_uint_eq(ss_layernorm_workspace_size(NULL), 0);
    // Without parameter gradients the backward needs no workspace.
    ss_exec_t ex = {2, NULL, 0, NULL};
    ss_error_t err;
    ck_assert_int_eq(ss_layernorm_fwd(&f.y, &f.mean, &f.rstd, &f.x, NULL, NULL, &f.p, &ex, &err),
                     SS_OK);
    ck_assert_int_eq(
        ss_layernorm_bwd(&f.dx, NULL, NULL, &f.dy, &f.x, NULL, &f.mean, &f.rstd, &f.p, &ex, &err),
        SS_OK);
    lfix_free(&f);
}
END_TEST

static Suite *norm_suite(void)
{
    Suite *s = suite_create("norm");
    TCase *tc = tcase_create("tc_ss_norm_moments_merge");
    tcase_add_test(tc, test_moments_merge);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_workspace_size");
    tcase_add_test(tc, test_instnorm_workspace_size);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_stats_partial");
    tcase_add_loop_test(tc, test_stats_partial, 0, NISHAPES);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_stats_merge");
    tcase_add_test(tc, test_stats_merge);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_fwd_apply");
    tcase_add_loop_test(tc, test_instnorm_sharded_fwd, 0, 2);
    tcase_add_loop_test(tc, test_instnorm_epilogue, 0, NISHAPES);
    tcase_add_test(tc, test_instnorm_epilogue_bad);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_bwd_partial");
    tcase_add_loop_test(tc, test_bwd_partial_sums, 0, NISHAPES);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_bwd_apply");
    tcase_add_loop_test(tc, test_instnorm_sharded_bwd, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_fwd");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_instnorm_vs_ref, 0, NISHAPES);
    tcase_add_loop_test(tc, test_instnorm_golden, 0, 3);
    tcase_add_test(tc, test_instnorm_ndim);
    tcase_add_test(tc, test_instnorm_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_instnorm_bwd");
    tcase_add_loop_test(tc, test_instnorm_threads_bitwise, 0, NISHAPES);
    tcase_add_test(tc, test_instnorm_ref_fd);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layernorm_workspace_size");
    tcase_add_test(tc, test_layernorm_workspace_size);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layernorm_fwd");
    tcase_add_loop_test(tc, test_layernorm_vs_ref, 0, NLSHAPES);
    tcase_add_test(tc, test_layernorm_golden);
    tcase_add_test(tc, test_layernorm_token_shard);
    tcase_add_test(tc, test_layernorm_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_layernorm_bwd");
    tcase_add_loop_test(tc, test_layernorm_threads_bitwise, 0, NLSHAPES);
    tcase_add_test(tc, test_layernorm_ref_fd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(norm_suite());
}
