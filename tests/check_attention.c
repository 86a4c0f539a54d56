// check_attention: tiled online-softmax attention against the double reference, finite
// differences, PyTorch golden values, the ring-attention block API, thread-count independence
// and argument validation.
//
// Tolerances. The fast kernels compute scores, sums and GEMMs in float32 with a polynomial exp2
// (~1e-7 relative). Scores of magnitude |s| <= ~6 carry ~|s| * 6e-8 absolute rounding, which
// moves P by the same relative amount, and every output is a reduction of length Nk (or Nq)
// over such terms: |err| / (1 + |ref|) measured here is <= 6e-7 for outputs and gradients.
// TOL_F32 = 1e-5 (absolute + relative, ss_test_max_rel_err) leaves a margin of 15x; the
// PyTorch golden comparison uses the same 1e-5 (measured <= 4e-7). The block API recombines
// the same float terms in another grouping: within 1e-6 (measured <= 2.4e-7). Finite differences on
// the double reference: central differences with h = 1e-5 have truncation error ~h^2 and rounding
// ~1e-16 / h, so 1e-8 absolute + 1e-6 relative is tight but safe.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/attention.h"
#include "shardseg/tensor.h"

#include "ref/attention_ref.h"
#include "testutil.h"

#define TOL_F32   1e-5
#define TOL_BLOCK 1e-6
#define GOLDEN    "golden_attention.h5"

// ---- Fixtures ----------------------------------------------------------------------------

// One attention problem: q (B, Nq, H, D), k/v (B, Nk, H, D). With fused, q/k/v are views into
// one [B][N][3][H][D] buffer (Nq == Nk) and dq/dk/dv into another, as MONAI's qkv Linear lays
// them out; pad adds floats to every token row to exercise non-trivial strides.
typedef struct {
    int64_t b, nq, nk, h, d;
    int tq, tk; // tiles (0: default)
    int fused;
    int64_t pad;
} shape_t;

typedef struct {
    shape_t s;
    float *qbuf, *kvbuf, *gqbuf, *gkvbuf; // token rows (fused: qbuf holds all three)
    float *o, *dout, *lse;
    ss_tensor_t q, k, v, dq, dk, dv, to, tdout, tlse;
    ss_attention_params_t p;
    double *qd, *kd, *vd, *dod; // contiguous double copies for the reference
} prob_t;

// (B, N, H, D) view with token stride ld over base.
static void
view4(ss_tensor_t *t, float *base, int64_t b, int64_t n, int64_t h, int64_t d, int64_t ld)
{
    int64_t shape[4] = {b, n, h, d};
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, 4, shape, base, NULL), SS_OK);
    t->stride[0] = n * ld;
    t->stride[1] = ld;
    t->stride[2] = d;
}

static void view3(ss_tensor_t *t, float *base, int64_t b, int64_t h, int64_t n)
{
    int64_t shape[3] = {b, h, n};
    ck_assert_int_eq(ss_tensor_init(t, SS_F32, 3, shape, base, NULL), SS_OK);
}

// Contiguous double copy of a (B, N, H, D) view.
static double *to_double(const ss_tensor_t *t)
{
    int64_t n = ss_tensor_numel(t);
    double *x = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    ck_assert_ptr_nonnull(x);
    int64_t i = 0;
    for (int64_t b = 0; b < t->shape[0]; b++) {
        for (int64_t r = 0; r < t->shape[1]; r++) {
            for (int64_t h = 0; h < t->shape[2]; h++) {
                for (int64_t d = 0; d < t->shape[3]; d++) {
                    int64_t idx[4] = {b, r, h, d};
                    x[i++] = ss_tensor_f32(t)[ss_tensor_offset(t, idx)];
                }
            }
        }
    }
    return x;
}

// Zeroed, so padding between rows (never written by the kernels) compares equal.
static float *falloc(int64_t n)
{
    float *x = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    ck_assert_ptr_nonnull(x);
    return x;
}

static void prob_init(prob_t *pb, const shape_t *s, uint64_t seed)
{
    memset(pb, 0, sizeof(*pb));
    pb->s = *s;
    int64_t hd = s->h * s->d;
    if (s->fused) {
        int64_t row = 3 * hd + s->pad;
        pb->qbuf = falloc(s->b * s->nq * row);
        pb->gqbuf = falloc(s->b * s->nq * row);
        ss_test_fill(pb->qbuf, s->b * s->nq * row, seed, -2.0f, 2.0f);
        view4(&pb->q, pb->qbuf, s->b, s->nq, s->h, s->d, row);
        view4(&pb->k, pb->qbuf + hd, s->b, s->nk, s->h, s->d, row);
        view4(&pb->v, pb->qbuf + 2 * hd, s->b, s->nk, s->h, s->d, row);
        view4(&pb->dq, pb->gqbuf, s->b, s->nq, s->h, s->d, row);
        view4(&pb->dk, pb->gqbuf + hd, s->b, s->nk, s->h, s->d, row);
        view4(&pb->dv, pb->gqbuf + 2 * hd, s->b, s->nk, s->h, s->d, row);
    } else {
        int64_t qrow = hd + s->pad, kvrow = 2 * hd + s->pad;
        pb->qbuf = falloc(s->b * s->nq * qrow);
        pb->gqbuf = falloc(s->b * s->nq * qrow);
        pb->kvbuf = falloc(s->b * s->nk * kvrow);
        pb->gkvbuf = falloc(s->b * s->nk * kvrow);
        ss_test_fill(pb->qbuf, s->b * s->nq * qrow, seed, -2.0f, 2.0f);
        ss_test_fill(pb->kvbuf, s->b * s->nk * kvrow, seed + 1, -2.0f, 2.0f);
        view4(&pb->q, pb->qbuf, s->b, s->nq, s->h, s->d, qrow);
        view4(&pb->k, pb->kvbuf, s->b, s->nk, s->h, s->d, kvrow);
        view4(&pb->v, pb->kvbuf + hd, s->b, s->nk, s->h, s->d, kvrow);
        view4(&pb->dq, pb->gqbuf, s->b, s->nq, s->h, s->d, qrow);
        view4(&pb->dk, pb->gkvbuf, s->b, s->nk, s->h, s->d, kvrow);
        view4(&pb->dv, pb->gkvbuf + hd, s->b, s->nk, s->h, s->d, kvrow);
    }
    int64_t orow = hd + s->pad;
    pb->o = falloc(s->b * s->nq * orow);
    pb->dout = falloc(s->b * s->nq * orow);
    pb->lse = falloc(s->b * s->h * s->nq);
    ss_test_fill(pb->dout, s->b * s->nq * orow, seed + 2, -1.0f, 1.0f);
    view4(&pb->to, pb->o, s->b, s->nq, s->h, s->d, orow);
    view4(&pb->tdout, pb->dout, s->b, s->nq, s->h, s->d, orow);
    view3(&pb->tlse, pb->lse, s->b, s->h, s->nq);
    pb->p.tile_q = s->tq;
    pb->p.tile_k = s->tk;
    pb->qd = to_double(&pb->q);
    pb->kd = to_double(&pb->k);
    pb->vd = to_double(&pb->v);
    pb->dod = to_double(&pb->tdout);
}

static void prob_free(prob_t *pb)
{
    free(pb->qbuf);
    free(pb->kvbuf);
    free(pb->gqbuf);
    free(pb->gkvbuf);
    free(pb->o);
    free(pb->dout);
    free(pb->lse);
    free(pb->qd);
    free(pb->kd);
    free(pb->vd);
    free(pb->dod);
}

static double scale_of(const prob_t *pb)
{
    return pb->p.scale != 0.0f ? pb->p.scale : 1.0 / sqrt((double)pb->s.d);
}

// Exec with nthreads threads and a workspace sized for pb (caller frees ex.work).
static ss_exec_t make_exec(const prob_t *pb, int nthreads)
{
    size_t bytes = ss_attention_workspace_size(pb->s.b, pb->s.nq, pb->s.h, &pb->p, nthreads);
    ss_exec_t ex = {nthreads, malloc(bytes), bytes, NULL};
    ck_assert_ptr_nonnull(ex.work);
    return ex;
}

// max |a - b| / (atol + rtol |b|) of a (B, N, H, D) view against a contiguous double array.
static double view_err(const ss_tensor_t *t, const double *ref, double tol)
{
    double *x = to_double(t), worst = 0;
    int64_t n = ss_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(x[i] - ref[i]) / (tol + tol * fabs(ref[i]));
        worst = e > worst || isnan(e) ? e : worst;
    }
    free(x);
    return worst;
}

static double array_err(const float *a, const double *ref, int64_t n, double tol)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]) / (tol + tol * fabs(ref[i]));
        worst = e > worst || isnan(e) ? e : worst;
    }
    return worst;
}

// Shapes: sizes 1 and primes, tiles that divide nothing, H = 1 and 3, D = 8, 16, 64, fused
// QKV rows, padded rows, Nq != Nk, the default tiles.
static const shape_t SHAPES[] = {
    {1, 1, 1, 1, 8, 0, 0, 1, 0},      {2, 7, 7, 3, 16, 4, 3, 1, 0},
    {1, 37, 37, 1, 64, 16, 8, 0, 5},  {1, 130, 130, 3, 16, 32, 48, 1, 3},
    {2, 37, 11, 3, 8, 5, 7, 0, 0},    {1, 5, 130, 1, 64, 0, 0, 0, 1},
    {1, 130, 130, 1, 64, 0, 0, 1, 0},
};
#define NSHAPES ((int)(sizeof(SHAPES) / sizeof(SHAPES[0])))

// ---- Reference: finite differences --------------------------------------------------------

typedef struct {
    double *q, *k, *v, *dout, *o;
    int64_t b, nq, nk, h, d;
    double scale;
} fd_ctx_t;

static double fd_loss(void *ctx)
{
    fd_ctx_t *c = ctx;
    ss_ref_attention_fwd(c->o, NULL, c->q, c->k, c->v, c->b, c->nq, c->nk, c->h, c->d, c->scale);
    double l = 0;
    for (int64_t i = 0; i < c->b * c->nq * c->h * c->d; i++) {
        l += c->o[i] * c->dout[i];
    }
    return l;
}

static double *rand_double(int64_t n, uint64_t seed, float lo, float hi)
{
    float *f = falloc(n);
    double *x = malloc(sizeof(double) * (size_t)n);
    ck_assert_ptr_nonnull(x);
    ss_test_fill(f, n, seed, lo, hi);
    for (int64_t i = 0; i < n; i++) {
        x[i] = f[i];
    }
    free(f);
    return x;
}

START_TEST(test_ref_fd)
{
    // L = sum(dout * o); every gradient entry of q, k and v against central differences.
    fd_ctx_t c = {NULL, NULL, NULL, NULL, NULL, 2, 3, 4, 2, 3, 0.7};
    int64_t nq = c.b * c.nq * c.h * c.d, nk = c.b * c.nk * c.h * c.d;
    c.q = rand_double(nq, 11, -2, 2);
    c.k = rand_double(nk, 12, -2, 2);
    c.v = rand_double(nk, 13, -2, 2);
    c.dout = rand_double(nq, 14, -1, 1);
    c.o = malloc(sizeof(double) * (size_t)nq);
    double *dq = malloc(sizeof(double) * (size_t)nq), *dk = malloc(sizeof(double) * (size_t)nk);
    double *dv = malloc(sizeof(double) * (size_t)nk);
    ss_ref_attention_bwd(dq, dk, dv, c.q, c.k, c.v, c.dout, c.b, c.nq, c.nk, c.h, c.d, c.scale);
    double *xs[3] = {c.q, c.k, c.v}, *gs[3] = {dq, dk, dv};
    int64_t ns[3] = {nq, nk, nk};
    for (int t = 0; t < 3; t++) {
        for (int64_t i = 0; i < ns[t]; i++) {
            double fd = ss_test_fd(fd_loss, &c, xs[t], i, 1e-5);
            ck_assert_msg(fabs(fd - gs[t][i]) <= 1e-8 + 1e-6 * fabs(gs[t][i]),
                          "tensor %d elem %lld: fd %.12g analytic %.12g", t, (long long)i, fd,
                          gs[t][i]);
        }
    }
    free(c.q);
    free(c.k);
    free(c.v);
    free(c.dout);
    free(c.o);
    free(dq);
    free(dk);
    free(dv);
}
END_TEST

START_TEST(test_ref_lse)
{
    // lse of the reference is log sum exp of the scaled scores, checked on one row by hand.
    double q[2] = {1.0, -2.0}, k[4] = {0.5, 1.0, -1.0, 3.0}, v[4] = {1, 2, 3, 4}, o[2], lse;
    ss_ref_attention_fwd(o, &lse, q, k, v, 1, 1, 2, 1, 2, 0.5);
    double s0 = 0.5 * (0.5 - 2.0), s1 = 0.5 * (-1.0 - 6.0);
    ck_assert_double_eq_tol(lse, log(exp(s0) + exp(s1)), 1e-14);
    double p0 = exp(s0 - lse), p1 = exp(s1 - lse);
    ck_assert_double_eq_tol(o[0], p0 * 1 + p1 * 3, 1e-14);
    ck_assert_double_eq_tol(o[1], p0 * 2 + p1 * 4, 1e-14);
}
END_TEST

// ---- ss_attention_fwd -----------------------------------------------------------------------

// Forward of pb with nthreads threads; returns the status.
static ss_status_t run_fwd(prob_t *pb, int nthreads)
{
    ss_exec_t ex = make_exec(pb, nthreads);
    ss_error_t err;
    ss_status_t st =
        ss_attention_fwd(&pb->to, &pb->tlse, &pb->q, &pb->k, &pb->v, &pb->p, &ex, &err);
    free(ex.work);
    return st;
}

START_TEST(test_fwd_vs_ref)
{
    for (int c = 0; c < NSHAPES; c++) {
        const shape_t *s = &SHAPES[c];
        prob_t pb;
        prob_init(&pb, s, 100 + (uint64_t)c);
        ck_assert_int_eq(run_fwd(&pb, 2), SS_OK);
        double *o = malloc(sizeof(double) * (size_t)(s->b * s->nq * s->h * s->d));
        double *lse = malloc(sizeof(double) * (size_t)(s->b * s->h * s->nq));
        ss_ref_attention_fwd(o, lse, pb.qd, pb.kd, pb.vd, s->b, s->nq, s->nk, s->h, s->d,
                             scale_of(&pb));
        double eo = view_err(&pb.to, o, TOL_F32);
        double el = array_err(pb.lse, lse, s->b * s->h * s->nq, TOL_F32);
        ck_assert_msg(eo <= 1 && el <= 1, "shape %d: o err %.3g, lse err %.3g (x tol)", c, eo, el);
        free(o);
        free(lse);
        prob_free(&pb);
    }
}
END_TEST

START_TEST(test_fwd_threads_bitwise)
{
    // Units write disjoint rows in a fixed order, so any thread count gives the same bits.
    const shape_t s = {2, 37, 37, 3, 16, 8, 16, 1, 0};
    prob_t pb;
    prob_init(&pb, &s, 7);
    int64_t no = s.b * s.nq * s.h * s.d, nl = s.b * s.h * s.nq;
    float *o1 = falloc(no), *l1 = falloc(nl);
    ck_assert_int_eq(run_fwd(&pb, 1), SS_OK);
    memcpy(o1, pb.o, sizeof(float) * (size_t)no);
    memcpy(l1, pb.lse, sizeof(float) * (size_t)nl);
    for (int t = 2; t <= 3; t++) {
        ck_assert_int_eq(run_fwd(&pb, t), SS_OK);
        ck_assert(memcmp(o1, pb.o, sizeof(float) * (size_t)no) == 0);
        ck_assert(memcmp(l1, pb.lse, sizeof(float) * (size_t)nl) == 0);
    }
    free(o1);
    free(l1);
    prob_free(&pb);
}
END_TEST

// Golden case name: fused qkv from PyTorch, MONAI's row layout.
static void golden_case(const char *name, int check_bwd)
{
    char key[32];
    int64_t sh[8], shd[8];
    int nd, ndd;
    snprintf(key, sizeof(key), "%s_heads", name);
    int64_t h = (int64_t)ss_test_golden_attr(GOLDEN, key);
    snprintf(key, sizeof(key), "%s_dim", name);
    int64_t d = (int64_t)ss_test_golden_attr(GOLDEN, key);
    snprintf(key, sizeof(key), "%s_scale", name);
    float scale = (float)ss_test_golden_attr(GOLDEN, key);
    snprintf(key, sizeof(key), "%s_qkv", name);
    float *qkv = ss_test_golden(GOLDEN, key, sh, &nd);
    snprintf(key, sizeof(key), "%s_dout", name);
    float *dout = ss_test_golden(GOLDEN, key, shd, &ndd);
    ck_assert_int_eq(nd, 3);
    ck_assert_int_eq(sh[2], 3 * h * d);
    int64_t b = sh[0], n = sh[1], row = 3 * h * d;
    float *o = falloc(b * n * h * d), *lse = falloc(b * h * n), *dqkv = falloc(b * n * row);
    ss_tensor_t q, k, v, dq, dk, dv, to, tdo, tl;
    view4(&q, qkv, b, n, h, d, row);
    view4(&k, qkv + h * d, b, n, h, d, row);
    view4(&v, qkv + 2 * h * d, b, n, h, d, row);
    view4(&dq, dqkv, b, n, h, d, row);
    view4(&dk, dqkv + h * d, b, n, h, d, row);
    view4(&dv, dqkv + 2 * h * d, b, n, h, d, row);
    view4(&to, o, b, n, h, d, h * d);
    view4(&tdo, dout, b, n, h, d, h * d);
    view3(&tl, lse, b, h, n);
    ss_attention_params_t p = {scale, 8, 16};
    size_t bytes = ss_attention_workspace_size(b, n, h, &p, 2);
    ss_exec_t ex = {2, malloc(bytes), bytes, NULL};
    ss_error_t err;
    ck_assert_int_eq(ss_attention_fwd(&to, &tl, &q, &k, &v, &p, &ex, &err), SS_OK);
    const char *outs[3] = {"o", "lse", "dqkv"};
    float *got[3] = {o, lse, dqkv};
    int64_t cnt[3] = {b * n * h * d, b * h * n, b * n * row};
    if (check_bwd) {
        ck_assert_int_eq(ss_attention_bwd(&dq, &dk, &dv, &q, &k, &v, &to, &tdo, &tl, &p, &ex, &err),
                         SS_OK);
    }
    for (int i = 0; i < (check_bwd ? 3 : 2); i++) {
        snprintf(key, sizeof(key), "%s_%s", name, outs[i]);
        float *want = ss_test_golden(GOLDEN, key, sh, &nd);
        double e = ss_test_max_rel_err(got[i], want, cnt[i], TOL_F32, TOL_F32);
        ck_assert_msg(e <= 1, "golden %s: err %.3g x tol", key, e);
        free(want);
    }
    free(ex.work);
    free(qkv);
    free(dout);
    free(o);
    free(lse);
    free(dqkv);
}

START_TEST(test_fwd_golden)
{
    golden_case("a", 0);
    golden_case("b", 0);
}
END_TEST

START_TEST(test_fwd_no_lse_and_cancel)
{
    const shape_t s = {1, 9, 9, 2, 8, 4, 4, 0, 0};
    prob_t pb;
    prob_init(&pb, &s, 3);
    ss_exec_t ex = make_exec(&pb, 2);
    ss_error_t err;
    // lse is optional (inference); o matches the run with lse.
    ck_assert_int_eq(ss_attention_fwd(&pb.to, NULL, &pb.q, &pb.k, &pb.v, &pb.p, &ex, &err), SS_OK);
    float *o1 = falloc(9 * 16);
    memcpy(o1, pb.o, sizeof(float) * 9 * 16);
    ck_assert_int_eq(run_fwd(&pb, 2), SS_OK);
    ck_assert(memcmp(o1, pb.o, sizeof(float) * 9 * 16) == 0);
    // A raised cancel flag stops the kernel.
    volatile int cancel = 1;
    ex.cancel = &cancel;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, NULL, &pb.q, &pb.k, &pb.v, &pb.p, &ex, &err),
                     SS_ECANCELLED);
    free(o1);
    free(ex.work);
    prob_free(&pb);
}
END_TEST

START_TEST(test_fwd_bad_args)
{
    const shape_t s = {1, 6, 6, 2, 8, 0, 0, 0, 0};
    prob_t pb;
    prob_init(&pb, &s, 5);
    ss_exec_t ex = make_exec(&pb, 2);
    ss_error_t err;
    ss_tensor_t t;
    // q of the wrong rank
    t = pb.q;
    t.ndim = 3;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &t, &pb.k, &pb.v, &pb.p, &ex, &err),
                     SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "q"));
    // k with other heads, v with other tokens
    t = pb.k;
    t.shape[2] = 1;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &pb.q, &t, &pb.v, &pb.p, &ex, &err),
                     SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "k"));
    t = pb.v;
    t.shape[1] = 5;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &pb.q, &pb.k, &t, &pb.p, &ex, &err),
                     SS_ESHAPE);
    // o with a strided head dim, o rows overlapping each other
    t = pb.to;
    t.stride[3] = 2;
    ck_assert_int_eq(ss_attention_fwd(&t, &pb.tlse, &pb.q, &pb.k, &pb.v, &pb.p, &ex, &err),
                     SS_ESHAPE);
    t = pb.to;
    t.stride[1] = 4;
    ck_assert_int_eq(ss_attention_fwd(&t, &pb.tlse, &pb.q, &pb.k, &pb.v, &pb.p, &ex, &err),
                     SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "overlap"));
    // lse of the wrong shape
    t = pb.tlse;
    t.shape[2] = 5;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &t, &pb.q, &pb.k, &pb.v, &pb.p, &ex, &err),
                     SS_ESHAPE);
    // o written over q
    t = pb.to;
    t.data = pb.qbuf;
    ck_assert_int_eq(ss_attention_fwd(&t, &pb.tlse, &pb.q, &pb.k, &pb.v, &pb.p, &ex, &err),
                     SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "overlaps"));
    // no keys
    ss_tensor_t k0 = pb.k, v0 = pb.v;
    k0.shape[1] = v0.shape[1] = 0;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &pb.q, &k0, &v0, &pb.p, &ex, &err),
                     SS_ESHAPE);
    // params and exec
    ss_attention_params_t bad = {NAN, 0, 0};
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &pb.q, &pb.k, &pb.v, &bad, &ex, &err),
                     SS_EINVAL);
    bad = (ss_attention_params_t){0, -1, 0};
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &pb.q, &pb.k, &pb.v, &bad, &ex, &err),
                     SS_EINVAL);
    ss_exec_t small = ex;
    small.work_bytes = 64;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &pb.q, &pb.k, &pb.v, &pb.p, &small, &err),
                     SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "workspace"));
    small = ex;
    small.nthreads = 0;
    ck_assert_int_eq(ss_attention_fwd(&pb.to, &pb.tlse, &pb.q, &pb.k, &pb.v, &pb.p, &small, &err),
                     SS_EINVAL);
    free(ex.work);
    prob_free(&pb);
}
END_TEST

// ---- ss_attention_bwd -----------------------------------------------------------------------

static ss_status_t run_bwd(prob_t *pb, int nthreads)
{
    ss_exec_t ex = make_exec(pb, nthreads);
    ss_error_t err;
    ss_status_t st = ss_attention_bwd(&pb->dq, &pb->dk, &pb->dv, &pb->q, &pb->k, &pb->v, &pb->to,
                                      &pb->tdout, &pb->tlse, &pb->p, &ex, &err);
    free(ex.work);
    return st;
}

// Fills the gradient buffers with NaN: the convenience backward must overwrite every entry.
static void poison_grads(prob_t *pb)
{
    const shape_t *s = &pb->s;
    int64_t hd = s->h * s->d;
    int64_t nq = s->b * s->nq * (s->fused ? 3 * hd + s->pad : hd + s->pad);
    for (int64_t i = 0; i < nq; i++) {
        pb->gqbuf[i] = NAN;
    }
    for (int64_t i = 0; pb->gkvbuf && i < s->b * s->nk * (2 * hd + s->pad); i++) {
        pb->gkvbuf[i] = NAN;
    }
}

START_TEST(test_bwd_vs_ref)
{
    for (int c = 0; c < NSHAPES; c++) {
        const shape_t *s = &SHAPES[c];
        prob_t pb;
        prob_init(&pb, s, 200 + (uint64_t)c);
        poison_grads(&pb);
        ck_assert_int_eq(run_fwd(&pb, 2), SS_OK);
        ck_assert_int_eq(run_bwd(&pb, 2), SS_OK);
        int64_t nq = s->b * s->nq * s->h * s->d, nk = s->b * s->nk * s->h * s->d;
        double *dq = malloc(sizeof(double) * (size_t)nq);
        double *dk = malloc(sizeof(double) * (size_t)nk), *dv = malloc(sizeof(double) * (size_t)nk);
        ss_ref_attention_bwd(dq, dk, dv, pb.qd, pb.kd, pb.vd, pb.dod, s->b, s->nq, s->nk, s->h,
                             s->d, scale_of(&pb));
        double e1 = view_err(&pb.dq, dq, TOL_F32), e2 = view_err(&pb.dk, dk, TOL_F32);
        double e3 = view_err(&pb.dv, dv, TOL_F32);
        ck_assert_msg(e1 <= 1 && e2 <= 1 && e3 <= 1, "shape %d: dq %.3g dk %.3g dv %.3g x tol", c,
                      e1, e2, e3);
        free(dq);
        free(dk);
        free(dv);
        prob_free(&pb);
    }
}
END_TEST

START_TEST(test_bwd_threads_bitwise)
{
    // One head with 1 thread runs the fused schedule, with 2+ the split one (dq recomputed): the
    // tile pairs add the same terms in the same order, so the bits agree. Six heads stay fused
    // for 1, 2 and 3 threads and split on 5.
    const shape_t shapes[2] = {{1, 37, 37, 1, 16, 8, 16, 1, 0}, {2, 37, 37, 3, 16, 16, 8, 1, 0}};
    for (int c = 0; c < 2; c++) {
        prob_t pb;
        prob_init(&pb, &shapes[c], 17 + (uint64_t)c);
        ck_assert_int_eq(run_fwd(&pb, 1), SS_OK);
        int64_t n = shapes[c].b * shapes[c].nq * 3 * shapes[c].h * shapes[c].d;
        ck_assert_int_eq(run_bwd(&pb, 1), SS_OK);
        float *g1 = falloc(n);
        memcpy(g1, pb.gqbuf, sizeof(float) * (size_t)n);
        const int threads[3] = {2, 3, 5};
        for (int t = 0; t < 3; t++) {
            poison_grads(&pb);
            ck_assert_int_eq(run_bwd(&pb, threads[t]), SS_OK);
            ck_assert_msg(memcmp(g1, pb.gqbuf, sizeof(float) * (size_t)n) == 0,
                          "shape %d, %d threads: gradients differ from 1 thread", c, threads[t]);
        }
        free(g1);
        prob_free(&pb);
    }
}
END_TEST

START_TEST(test_bwd_golden)
{
    golden_case("a", 1);
    golden_case("b", 1);
}
END_TEST

START_TEST(test_bwd_bad_args)
{
    const shape_t s = {1, 6, 6, 2, 8, 0, 0, 1, 0};
    prob_t pb;
    prob_init(&pb, &s, 9);
    ck_assert_int_eq(run_fwd(&pb, 1), SS_OK);
    ss_exec_t ex = make_exec(&pb, 2);
    ss_error_t err;
    // dk and dv the same view; dq over q; dout with another head dim
    ck_assert_int_eq(ss_attention_bwd(&pb.dq, &pb.dk, &pb.dk, &pb.q, &pb.k, &pb.v, &pb.to,
                                      &pb.tdout, &pb.tlse, &pb.p, &ex, &err),
                     SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "dk"));
    ck_assert_int_eq(ss_attention_bwd(&pb.q, &pb.dk, &pb.dv, &pb.q, &pb.k, &pb.v, &pb.to, &pb.tdout,
                                      &pb.tlse, &pb.p, &ex, &err),
                     SS_EINVAL);
    ss_tensor_t t = pb.tdout;
    t.shape[3] = 4;
    ck_assert_int_eq(ss_attention_bwd(&pb.dq, &pb.dk, &pb.dv, &pb.q, &pb.k, &pb.v, &pb.to, &t,
                                      &pb.tlse, &pb.p, &ex, &err),
                     SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "dout"));
    // the bwd workspace also holds dvec: the per-thread part alone is too small
    ss_exec_t small = ex;
    small.work_bytes -= sizeof(float);
    ck_assert_int_eq(ss_attention_bwd(&pb.dq, &pb.dk, &pb.dv, &pb.q, &pb.k, &pb.v, &pb.to,
                                      &pb.tdout, &pb.tlse, &pb.p, &small, &err),
                     SS_EINVAL);
    free(ex.work);
    prob_free(&pb);
}
END_TEST

// ---- Block API (ring attention) -------------------------------------------------------------

// K/V of pb split into three uneven blocks [0, c1), [c1, c2), [c2, Nk) (one may be empty).
static void split_kv(const prob_t *pb,
                     int64_t c1,
                     int64_t c2,
                     ss_tensor_t *k,
                     ss_tensor_t *v,
                     ss_tensor_t *dk,
                     ss_tensor_t *dv)
{
    int64_t cut[4] = {0, c1, c2, pb->s.nk};
    for (int i = 0; i < 3; i++) {
        ss_tensor_t *dst[4] = {&k[i], &v[i], &dk[i], &dv[i]};
        const ss_tensor_t *src[4] = {&pb->k, &pb->v, &pb->dk, &pb->dv};
        for (int j = 0; j < 4; j++) {
            // Views along N: with B > 1 the batch stride stays that of the whole sequence.
            ck_assert_int_eq(
                ss_tensor_view_slab(dst[j], src[j], 1, cut[i], cut[i + 1] - cut[i], NULL), SS_OK);
        }
    }
}

// State over storage of pb's query shape: acc (B, Nq, H, D) contiguous, m and l (B, H, Nq).
static void state_alloc(ss_attention_state_t *st, const prob_t *pb, float **buf)
{
    const shape_t *s = &pb->s;
    int64_t na = s->b * s->nq * s->h * s->d, nl = s->b * s->h * s->nq;
    *buf = falloc(na + 2 * nl);
    view4(&st->acc, *buf, s->b, s->nq, s->h, s->d, s->h * s->d);
    view3(&st->m, *buf + na, s->b, s->h, s->nq);
    view3(&st->l, *buf + na + nl, s->b, s->h, s->nq);
}

static const int ORDERS[3][3] = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}};

START_TEST(test_fwd_block_orders)
{
    // Blocks in any order give the whole-sequence O and lse within 1e-6; the last order runs
    // the state in place over o and lse (acc = o, m = lse).
    const shape_t s = {2, 37, 37, 3, 16, 8, 5, 1, 2};
    prob_t pb;
    prob_init(&pb, &s, 21);
    ck_assert_int_eq(run_fwd(&pb, 2), SS_OK);
    int64_t no = s.b * s.nq * (s.h * s.d + s.pad), nl = s.b * s.h * s.nq;
    float *o_all = falloc(no), *lse_all = falloc(nl), *buf;
    memcpy(o_all, pb.o, sizeof(float) * (size_t)no);
    memcpy(lse_all, pb.lse, sizeof(float) * (size_t)nl);
    ss_tensor_t k[3], v[3], dk[3], dv[3];
    split_kv(&pb, 10, 11, k, v, dk, dv);
    ss_exec_t ex = make_exec(&pb, 2);
    ss_error_t err;
    ss_attention_state_t st;
    state_alloc(&st, &pb, &buf);
    for (int ord = 0; ord < 3; ord++) {
        ss_attention_state_t use = st;
        if (ord == 2) {
            use.acc = pb.to;
            use.m = pb.tlse;
        }
        memset(pb.o, 0, sizeof(float) * (size_t)no);
        ck_assert_int_eq(ss_attention_fwd_init(&use, &ex, &err), SS_OK);
        for (int i = 0; i < 3; i++) {
            int blk = ORDERS[ord][i];
            ck_assert_int_eq(
                ss_attention_fwd_block(&use, &pb.q, &k[blk], &v[blk], &pb.p, &ex, &err), SS_OK);
        }
        ck_assert_int_eq(ss_attention_fwd_finalize(&pb.to, &pb.tlse, &use, &ex, &err), SS_OK);
        ck_assert_msg(ss_test_max_rel_err(pb.o, o_all, no, TOL_BLOCK, TOL_BLOCK) <= 1,
                      "order %d: o", ord);
        ck_assert_msg(ss_test_max_rel_err(pb.lse, lse_all, nl, TOL_BLOCK, TOL_BLOCK) <= 1,
                      "order %d: lse", ord);
    }
    // An empty block changes nothing.
    ss_tensor_t k0, v0;
    ss_tensor_view_slab(&k0, &pb.k, 1, 0, 0, NULL);
    ss_tensor_view_slab(&v0, &pb.v, 1, 0, 0, NULL);
    ck_assert_int_eq(ss_attention_fwd_block(&st, &pb.q, &k0, &v0, &pb.p, &ex, &err), SS_OK);
    // The state must not overlap q.
    ss_attention_state_t bad = st;
    bad.acc.data = pb.qbuf;
    bad.acc.stride[0] = pb.q.stride[0];
    bad.acc.stride[1] = pb.q.stride[1];
    ck_assert_int_eq(ss_attention_fwd_block(&bad, &pb.q, &k[0], &v[0], &pb.p, &ex, &err),
                     SS_EINVAL);
    free(buf);
    free(o_all);
    free(lse_all);
    free(ex.work);
    prob_free(&pb);
}
END_TEST

START_TEST(test_fwd_init_values)
{
    const shape_t s = {1, 3, 3, 2, 4, 0, 0, 0, 0};
    prob_t pb;
    prob_init(&pb, &s, 1);
    float *buf;
    ss_attention_state_t st;
    state_alloc(&st, &pb, &buf);
    ss_test_fill(buf, 3 * 8 + 2 * 6, 4, -1, 1);
    ss_exec_t ex = ss_exec_serial();
    ss_error_t err;
    ck_assert_int_eq(ss_attention_fwd_init(&st, &ex, &err), SS_OK);
    for (int i = 0; i < 24; i++) {
        ck_assert_float_eq(buf[i], 0.0f);
    }
    for (int i = 0; i < 6; i++) {
        ck_assert(isinf(buf[24 + i]) && buf[24 + i] < 0);
        ck_assert_float_eq(buf[30 + i], 0.0f);
    }
    // m and l sharing storage is rejected.
    ss_attention_state_t bad = st;
    bad.l = bad.m;
    ck_assert_int_eq(ss_attention_fwd_init(&bad, &ex, &err), SS_EINVAL);
    free(buf);
    prob_free(&pb);
}
END_TEST

START_TEST(test_fwd_merge)
{
    // Two states over disjoint key sets merge to the whole; merging an empty state is exact.
    const shape_t s = {1, 37, 37, 3, 8, 16, 8, 0, 0};
    prob_t pb;
    prob_init(&pb, &s, 31);
    ck_assert_int_eq(run_fwd(&pb, 2), SS_OK);
    int64_t no = s.nq * s.h * s.d, nl = s.h * s.nq;
    float *o_all = falloc(no), *lse_all = falloc(nl), *b1, *b2, *b3;
    memcpy(o_all, pb.o, sizeof(float) * (size_t)no);
    memcpy(lse_all, pb.lse, sizeof(float) * (size_t)nl);
    ss_tensor_t k[3], v[3], dk[3], dv[3];
    split_kv(&pb, 20, 30, k, v, dk, dv);
    ss_exec_t ex = make_exec(&pb, 2);
    ss_error_t err;
    ss_attention_state_t st1, st2, st3;
    state_alloc(&st1, &pb, &b1);
    state_alloc(&st2, &pb, &b2);
    state_alloc(&st3, &pb, &b3);
    ck_assert_int_eq(ss_attention_fwd_init(&st1, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_init(&st2, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_init(&st3, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_block(&st1, &pb.q, &k[1], &v[1], &pb.p, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_block(&st2, &pb.q, &k[0], &v[0], &pb.p, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_block(&st2, &pb.q, &k[2], &v[2], &pb.p, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_merge(&st1, &st3, &ex, &err), SS_OK); // empty: no-op
    ck_assert_int_eq(ss_attention_fwd_merge(&st1, &st2, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_finalize(&pb.to, &pb.tlse, &st1, &ex, &err), SS_OK);
    ck_assert(ss_test_max_rel_err(pb.o, o_all, no, TOL_BLOCK, TOL_BLOCK) <= 1);
    ck_assert(ss_test_max_rel_err(pb.lse, lse_all, nl, TOL_BLOCK, TOL_BLOCK) <= 1);
    ck_assert_int_eq(ss_attention_fwd_merge(&st1, &st1, &ex, &err), SS_EINVAL);
    free(b1);
    free(b2);
    free(b3);
    free(o_all);
    free(lse_all);
    free(ex.work);
    prob_free(&pb);
}
END_TEST

START_TEST(test_fwd_finalize)
{
    // A row that saw no key finalizes to o = 0, lse = -inf; lse over acc (not m) is rejected.
    const shape_t s = {1, 4, 4, 1, 4, 0, 0, 0, 0};
    prob_t pb;
    prob_init(&pb, &s, 2);
    float *buf;
    ss_attention_state_t st;
    state_alloc(&st, &pb, &buf);
    ss_exec_t ex = ss_exec_serial();
    ss_error_t err;
    ck_assert_int_eq(ss_attention_fwd_init(&st, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_finalize(&pb.to, &pb.tlse, &st, &ex, &err), SS_OK);
    for (int i = 0; i < 16; i++) {
        ck_assert_float_eq(pb.o[i], 0.0f);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert(isinf(pb.lse[i]) && pb.lse[i] < 0);
    }
    // In place (o = acc, lse = m) is allowed; lse written over acc is not.
    ss_tensor_t lse_over_acc;
    view3(&lse_over_acc, buf, 1, 1, 4);
    ck_assert_int_eq(ss_attention_fwd_finalize(&st.acc, &st.m, &st, &ex, &err), SS_OK);
    ck_assert_int_eq(ss_attention_fwd_finalize(&st.acc, &lse_over_acc, &st, &ex, &err), SS_EINVAL);
    ck_assert_int_eq(ss_attention_fwd_finalize(&pb.to, &lse_over_acc, &st, &ex, &err), SS_EINVAL);
    free(buf);
    prob_free(&pb);
}
END_TEST

START_TEST(test_bwd_prep)
{
    const shape_t s = {2, 13, 13, 3, 8, 4, 4, 0, 3};
    prob_t pb;
    prob_init(&pb, &s, 41);
    ck_assert_int_eq(run_fwd(&pb, 1), SS_OK);
    float *dvec = falloc(s.b * s.h * s.nq);
    ss_tensor_t tdvec;
    view3(&tdvec, dvec, s.b, s.h, s.nq);
    ss_exec_t ex = {2, NULL, 0, NULL};
    ss_error_t err;
    ck_assert_int_eq(ss_attention_bwd_prep(&tdvec, &pb.to, &pb.tdout, &ex, &err), SS_OK);
    double *od = to_double(&pb.to);
    for (int64_t b = 0; b < s.b; b++) {
        for (int64_t h = 0; h < s.h; h++) {
            for (int64_t n = 0; n < s.nq; n++) {
                double want = 0;
                for (int64_t d = 0; d < s.d; d++) {
                    int64_t i = ((b * s.nq + n) * s.h + h) * s.d + d;
                    want += od[i] * pb.dod[i];
                }
                ck_assert_double_eq_tol(dvec[(b * s.h + h) * s.nq + n], want, 1e-6);
            }
        }
    }
    ck_assert_int_eq(ss_attention_bwd_prep(&pb.tlse, &pb.to, &pb.tdout, &ex, &err), SS_OK);
    ss_tensor_t bad;
    view3(&bad, dvec, s.b, s.h, s.nq - 1);
    ck_assert_int_eq(ss_attention_bwd_prep(&bad, &pb.to, &pb.tdout, &ex, &err), SS_ESHAPE);
    free(od);
    free(dvec);
    prob_free(&pb);
}
END_TEST

START_TEST(test_bwd_block)
{
    // Backward by K/V blocks in any order: dq accumulates over the blocks and each block's
    // dk/dv over its call; results match ss_attention_bwd within 1e-6. The outputs start at 1
    // to check that the block call adds instead of overwriting.
    const shape_t s = {2, 37, 37, 3, 16, 8, 5, 0, 1};
    prob_t pb;
    prob_init(&pb, &s, 51);
    ck_assert_int_eq(run_fwd(&pb, 2), SS_OK);
    ck_assert_int_eq(run_bwd(&pb, 2), SS_OK);
    int64_t nqg = s.b * s.nq * (s.h * s.d + s.pad), nkg = s.b * s.nk * (2 * s.h * s.d + s.pad);
    float *gq = falloc(nqg), *gkv = falloc(nkg), *dvec = falloc(s.b * s.h * s.nq);
    memcpy(gq, pb.gqbuf, sizeof(float) * (size_t)nqg);
    memcpy(gkv, pb.gkvbuf, sizeof(float) * (size_t)nkg);
    for (int64_t i = 0; i < nqg; i++) {
        gq[i] += 1.0f;
    }
    for (int64_t i = 0; i < nkg; i++) {
        gkv[i] += 1.0f;
    }
    ss_tensor_t tdvec, k[3], v[3], dk[3], dv[3];
    view3(&tdvec, dvec, s.b, s.h, s.nq);
    ss_exec_t ex = make_exec(&pb, 2);
    ss_error_t err;
    ck_assert_int_eq(ss_attention_bwd_prep(&tdvec, &pb.to, &pb.tdout, &ex, &err), SS_OK);
    split_kv(&pb, 30, 31, k, v, dk, dv);
    for (int ord = 0; ord < 3; ord++) {
        for (int64_t i = 0; i < nqg; i++) {
            pb.gqbuf[i] = 1.0f;
        }
        for (int64_t i = 0; i < nkg; i++) {
            pb.gkvbuf[i] = 1.0f;
        }
        for (int i = 0; i < 3; i++) {
            int blk = ORDERS[ord][i];
            ck_assert_int_eq(ss_attention_bwd_block(&pb.dq, &dk[blk], &dv[blk], &pb.q, &k[blk],
                                                    &v[blk], &pb.tdout, &pb.tlse, &tdvec, &pb.p,
                                                    &ex, &err),
                             SS_OK);
        }
        ck_assert_msg(ss_test_max_rel_err(pb.gqbuf, gq, nqg, TOL_BLOCK, TOL_BLOCK) <= 1,
                      "order %d: dq", ord);
        ck_assert_msg(ss_test_max_rel_err(pb.gkvbuf, gkv, nkg, TOL_BLOCK, TOL_BLOCK) <= 1,
                      "order %d: dk, dv", ord);
    }
    // dvec aliasing dq's storage is rejected.
    ss_tensor_t bad;
    view3(&bad, pb.gqbuf, s.b, s.h, s.nq);
    ck_assert_int_eq(ss_attention_bwd_block(&pb.dq, &dk[0], &dv[0], &pb.q, &k[0], &v[0], &pb.tdout,
                                            &pb.tlse, &bad, &pb.p, &ex, &err),
                     SS_EINVAL);
    free(gq);
    free(gkv);
    free(dvec);
    free(ex.work);
    prob_free(&pb);
}
END_TEST

START_TEST(test_workspace_size)
{
    // Grows with threads and tiles, not with the key count; the bwd part is B*H*Nq floats.
    ss_attention_params_t p = {0, 64, 32};
    size_t w1 = ss_attention_workspace_size(2, 100, 3, &p, 1);
    size_t w2 = ss_attention_workspace_size(2, 100, 3, &p, 2);
    size_t w0 = ss_attention_workspace_size(2, 0, 3, &p, 1);
    ck_assert_uint_gt(w2, w1);
    ck_assert_uint_ge(w1 - w0, 2 * 3 * 100 * sizeof(float));
    ck_assert_uint_ge(w0, 2 * 64 * 32 * sizeof(float));
    ck_assert_uint_eq(
        ss_attention_workspace_size(2, 100, 3, NULL, 1),
        ss_attention_workspace_size(2, 100, 3, &(ss_attention_params_t){0, 256, 256}, 1));
}
END_TEST

static Suite *attention_suite(void)
{
    Suite *s = suite_create("attention");
    struct {
        const char *name;
        const TTest *tests[4];
    } cases[] = {
        {"tc_ref", {test_ref_fd, test_ref_lse}},
        {"tc_ss_attention_fwd",
         {test_fwd_vs_ref, test_fwd_threads_bitwise, test_fwd_golden, test_fwd_bad_args}},
        {"tc_ss_attention_fwd_misc", {test_fwd_no_lse_and_cancel}},
        {"tc_ss_attention_bwd",
         {test_bwd_vs_ref, test_bwd_threads_bitwise, test_bwd_golden, test_bwd_bad_args}},
        {"tc_ss_attention_fwd_init", {test_fwd_init_values}},
        {"tc_ss_attention_fwd_block", {test_fwd_block_orders}},
        {"tc_ss_attention_fwd_merge", {test_fwd_merge}},
        {"tc_ss_attention_fwd_finalize", {test_fwd_finalize}},
        {"tc_ss_attention_bwd_prep", {test_bwd_prep}},
        {"tc_ss_attention_bwd_block", {test_bwd_block}},
        {"tc_ss_attention_workspace_size", {test_workspace_size}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        for (int j = 0; j < 4 && cases[i].tests[j]; j++) {
            tcase_add_test(tc, cases[i].tests[j]);
        }
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return ss_test_run(attention_suite());
}
