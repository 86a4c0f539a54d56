// Tests of conv3d: the float kernels against the double reference (odd shapes, every code path:
// gathered tiles, 1x1x1 direct, patch scatter, stride phases, row chunks, several tiles), the
// reference's gradients against finite differences, PyTorch golden values, thread-count
// independence, slab views with halos (sequence parallelism), workspace bounds and bad input.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/conv3d.h"

#include "kernels_impl.h"
#include "ref/conv3d_ref.h"
#include "testutil.h"

#define GOLDEN "golden_conv3d.h5"

typedef struct {
    const char *name;
    int64_t n, cin, cout, in[3];
    ss_conv3d_params_t p;
} conv_case_t;

// Each row exercises a path or an edge of the tiling; sizes are 1, primes and non-multiples.
static const conv_case_t cases[] = {
    {"same3", 1, 3, 5, {7, 6, 5}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"same3 3 tiles", 2, 2, 3, {9, 7, 11}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"aniso asym pad", 2, 2, 3, {5, 1, 6}, {{3, 1, 2}, {2, 1, 1}, {0, 0, 1}, {1, 0, 0}}},
    {"patch k=s", 1, 4, 7, {8, 9, 7}, {{4, 4, 4}, {4, 4, 4}, {0, 0, 0}, {0, 0, 0}}},
    {"patch k=s padded", 2, 3, 2, {5, 4, 3}, {{2, 2, 2}, {2, 2, 2}, {1, 0, 0}, {0, 1, 1}}},
    {"k<s gaps", 1, 2, 3, {7, 5, 6}, {{1, 2, 1}, {2, 3, 2}, {0, 1, 0}, {0, 0, 1}}},
    {"pointwise", 2, 5, 3, {3, 4, 5}, {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}}},
    {"pointwise 2 tiles", 1, 3, 2, {13, 17, 11}, {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}}},
    {"down k3 s2", 1, 3, 2, {11, 7, 13}, {{3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}}},
    {"mixed phases", 1, 2, 3, {6, 7, 5}, {{2, 3, 1}, {3, 2, 2}, {1, 0, 2}, {2, 1, 0}}},
    {"big pad", 1, 2, 2, {2, 3, 1}, {{3, 2, 3}, {1, 2, 1}, {2, 3, 2}, {3, 2, 1}}},
    {"unit", 1, 1, 1, {1, 1, 1}, {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}}},
    {"fwd chunks", 1, 70, 2, {3, 3, 4}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"bwd_data chunks", 1, 2, 130, {5, 4, 3}, {{3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}}},
    // Planes of 256+ output positions (stride 1 along J and K) take the row-shift tiles; on
    // AVX-512 CPUs those with rows of 16+ outputs take the direct kernels instead, and
    // tc_ss_conv3d_gemm_paths below runs them through the tiles. Smaller planes (the cases
    // above) take the gathered tiles, except for the weight gradient.
    {"rowshift", 1, 3, 4, {3, 14, 19}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"rowshift aniso", 2, 2, 3, {5, 8, 33}, {{2, 3, 4}, {2, 1, 1}, {0, 1, 2}, {1, 1, 1}}},
    {"rowshift bwd aniso", 1, 3, 2, {3, 13, 20}, {{1, 2, 3}, {1, 1, 1}, {0, 1, 2}, {0, 0, 1}}},
    {"rowshift big pad", 1, 2, 3, {3, 20, 14}, {{2, 2, 3}, {1, 1, 1}, {2, 0, 3}, {1, 2, 4}}},
    {"rowshift fwd chunks", 1, 120, 2, {2, 16, 17}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"rowshift bwd chunks", 1, 2, 120, {2, 16, 17}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    // Unit stride with rows of 16+ outputs: the direct AVX-512 kernels where the CPU has them
    // (channel tails of 5 and 3, a row tail, asymmetric padding, kJ kK = 6, two source slabs).
    {"direct tails", 2, 3, 13, {4, 5, 37}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"direct narrow", 1, 5, 3, {3, 4, 16}, {{3, 3, 3}, {1, 1, 1}, {2, 0, 1}, {0, 2, 1}}},
    {"direct aniso", 1, 2, 6, {5, 3, 18}, {{1, 3, 2}, {1, 1, 1}, {0, 1, 1}, {0, 1, 0}}},
    {"direct slabs", 1, 64, 5, {12, 30, 33}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    // 3x3x3 over even extents with rows of 32k (or 16) outputs: Winograd F(2,3) on AVX-512 CPUs (a
    // narrow channel block, channels that do not fill the weight gradient's 4 x 4 blocks, a
    // batch, offsets other than 1, slabs of two planes, more than 32 channels on both sides, where
    // only Winograd's weight gradient is taken), the direct loops in
    // tc_ss_conv3d_direct_loops.
    {"winograd", 2, 5, 11, {4, 6, 32}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"winograd valid", 1, 3, 4, {6, 8, 34}, {{3, 3, 3}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}}},
    {"winograd asym pad", 1, 4, 9, {4, 2, 64}, {{3, 3, 3}, {1, 1, 1}, {2, 1, 0}, {0, 1, 2}}},
    {"winograd slabs", 1, 96, 3, {6, 30, 64}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"winograd two rows", 2, 6, 5, {4, 12, 16}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"winograd wide", 1, 37, 34, {4, 4, 32}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
};
#define NWINO  6 // the Winograd cases, last in the table
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

// Host buffers of one case: float inputs, their double copies, shapes.
typedef struct {
    const conv_case_t *c;
    int64_t xs[5], ws[5], ys[5];
    int64_t nx, nw, ny;
    float *x, *w, *b, *dy;
    double *xd, *wd, *bd, *dyd;
} fixture_t;

static double *to_double(const float *f, int64_t n)
{
    double *d = malloc(sizeof(double) * (size_t)(n ? n : 1));
    ck_assert_ptr_nonnull(d);
    for (int64_t i = 0; i < n; i++) {
        d[i] = f[i];
    }
    return d;
}

static float *rand_floats(int64_t n, uint64_t seed, float lo, float hi)
{
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ck_assert_ptr_nonnull(f);
    ss_test_fill(f, n, seed, lo, hi);
    return f;
}

static int64_t prod(const int64_t *s, int nd)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++) {
        n *= s[d];
    }
    return n;
}

static void fixture_init(fixture_t *f, const conv_case_t *c, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->c = c;
    int64_t xs[5] = {c->n, c->cin, c->in[0], c->in[1], c->in[2]};
    int64_t ws[5] = {c->cout, c->cin, c->p.kernel[0], c->p.kernel[1], c->p.kernel[2]};
    memcpy(f->xs, xs, sizeof(xs));
    memcpy(f->ws, ws, sizeof(ws));
    ck_assert_int_eq(ss_conv3d_out_shape(f->ys, f->xs, c->cout, &c->p, NULL), SS_OK);
    f->nx = prod(f->xs, 5);
    f->nw = prod(f->ws, 5);
    f->ny = prod(f->ys, 5);
    f->x = rand_floats(f->nx, seed, -1, 1);
    f->w = rand_floats(f->nw, seed + 1, -1, 1);
    f->b = rand_floats(c->cout, seed + 2, -1, 1);
    f->dy = rand_floats(f->ny, seed + 3, -1, 1);
    f->xd = to_double(f->x, f->nx);
    f->wd = to_double(f->w, f->nw);
    f->bd = to_double(f->b, c->cout);
    f->dyd = to_double(f->dy, f->ny);
}

static void fixture_fini(fixture_t *f)
{
    free(f->x);
    free(f->w);
    free(f->b);
    free(f->dy);
    free(f->xd);
    free(f->wd);
    free(f->bd);
    free(f->dyd);
}

static ss_tensor_t tensor(int nd, const int64_t *shape, float *data)
{
    ss_tensor_t t;
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, nd, shape, data, NULL), SS_OK);
    return t;
}

// An exec with nt threads and a fresh workspace of the size the kernel asks for.
static ss_exec_t exec_for(const fixture_t *f, int nt)
{
    ss_conv3d_shape_t s = {f->c->n, f->c->cin, f->c->cout, {f->c->in[0], f->c->in[1], f->c->in[2]}};
    size_t bytes = ss_conv3d_workspace_size(&f->c->p, &s, nt);
    ss_exec_t ex = {nt, NULL, bytes, NULL};
    if (bytes > 0) {
        ex.work = aligned_alloc(64, (bytes + 63) / 64 * 64);
        ck_assert_ptr_nonnull(ex.work);
    }
    return ex;
}

// Fast float results of one case with nt threads (caller frees the three buffers).
typedef struct {
    float *y, *dx, *dw, *db;
} results_t;

static results_t run_fast(const fixture_t *f, int nt)
{
    results_t r = {malloc(sizeof(float) * (size_t)f->ny), malloc(sizeof(float) * (size_t)f->nx),
                   malloc(sizeof(float) * (size_t)f->nw),
                   malloc(sizeof(float) * (size_t)f->c->cout)};
    ss_exec_t ex = exec_for(f, nt);
    int64_t bs[1] = {f->c->cout};
    ss_tensor_t x = tensor(5, f->xs, f->x), w = tensor(5, f->ws, f->w), b = tensor(1, bs, f->b);
    ss_tensor_t y = tensor(5, f->ys, r.y), dy = tensor(5, f->ys, f->dy);
    ss_tensor_t dx = tensor(5, f->xs, r.dx), dw = tensor(5, f->ws, r.dw), db = tensor(1, bs, r.db);
    ss_error_t err;
    // Poison the outputs: the kernels overwrite, they never accumulate into old contents.
    memset(r.dx, 0x7f, sizeof(float) * (size_t)f->nx);
    memset(r.dw, 0x7f, sizeof(float) * (size_t)f->nw);
    ck_assert_msg(ss_conv3d_fwd(&y, &x, &w, &b, &f->c->p, &ex, &err) == SS_OK, "%s", err.msg);
    ck_assert_msg(ss_conv3d_bwd_data(&dx, &dy, &w, &f->c->p, &ex, &err) == SS_OK, "%s", err.msg);
    ck_assert_msg(ss_conv3d_bwd_weight(&dw, &db, &x, &dy, &f->c->p, &ex, &err) == SS_OK, "%s",
                  err.msg);
    free(ex.work);
    return r;
}

static void results_free(results_t *r)
{
    free(r->y);
    free(r->dx);
    free(r->dw);
    free(r->db);
}

// Float result vs double reference. Inputs lie in [-1, 1), so each term of a sum of L terms is
// at most 1 in size; float summation error is below L * 6e-8 per element. atol = 1e-6 * L leaves
// a 16x margin over that bound; rtol = 1e-5.
static void expect_close(const char *what,
                         const char *name,
                         const float *got,
                         const double *want,
                         int64_t n,
                         int64_t reduction)
{
    float *wf = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        wf[i] = (float)want[i];
    }
    double e = ss_test_max_rel_err(got, wf, n, 1e-6 * (double)reduction, 1e-5);
    free(wf);
    ck_assert_msg(e <= 1.0, "%s (%s): error %.3g x tolerance", what, name, e);
}

static int64_t pout(const fixture_t *f)
{
    return f->ys[2] * f->ys[3] * f->ys[4];
}

START_TEST(test_fwd_vs_ref)
{
    fixture_t f;
    fixture_init(&f, &cases[_i], 100 + (uint64_t)_i * 10);
    results_t r = run_fast(&f, 2);
    double *y = malloc(sizeof(double) * (size_t)f.ny);
    ss_ref_conv3d_fwd(y, f.xd, f.wd, f.bd, f.xs, f.c->cout, &f.c->p);
    expect_close("fwd y", f.c->name, r.y, y, f.ny, f.c->cin * prod(f.ws + 2, 3) + 1);
    free(y);
    results_free(&r);
    fixture_fini(&f);
}
END_TEST

START_TEST(test_bwd_data_vs_ref)
{
    fixture_t f;
    fixture_init(&f, &cases[_i], 200 + (uint64_t)_i * 10);
    results_t r = run_fast(&f, 2);
    double *dx = malloc(sizeof(double) * (size_t)f.nx);
    ss_ref_conv3d_bwd_data(dx, f.dyd, f.wd, f.xs, f.c->cout, &f.c->p);
    expect_close("bwd_data dx", f.c->name, r.dx, dx, f.nx, f.c->cout * prod(f.ws + 2, 3));
    free(dx);
    results_free(&r);
    fixture_fini(&f);
}
END_TEST

START_TEST(test_bwd_weight_vs_ref)
{
    fixture_t f;
    fixture_init(&f, &cases[_i], 300 + (uint64_t)_i * 10);
    results_t r = run_fast(&f, 2);
    double *dw = malloc(sizeof(double) * (size_t)f.nw),
           *db = malloc(sizeof(double) * (size_t)f.c->cout);
    ss_ref_conv3d_bwd_weight(dw, db, f.xd, f.dyd, f.xs, f.c->cout, &f.c->p);
    expect_close("bwd_weight dw", f.c->name, r.dw, dw, f.nw, f.c->n * pout(&f));
    expect_close("bwd_weight db", f.c->name, r.db, db, f.c->cout, f.c->n * pout(&f));
    free(dw);
    free(db);
    results_free(&r);
    fixture_fini(&f);
}
END_TEST

// 1 and 2 (and 3) threads: fwd and bwd_data are bit-identical by design (fixed tiles). bwd_weight
// is bit-identical when every thread owns a dw column block (kc >= 64 * threads); otherwise tile
// groups add partial sums in another order, and it agrees within the float tolerance.
START_TEST(test_threads)
{
    fixture_t f;
    fixture_init(&f, &cases[_i], 400 + (uint64_t)_i * 10);
    results_t r1 = run_fast(&f, 1);
    int64_t kc = f.c->cin * prod(f.ws + 2, 3);
    for (int nt = 2; nt <= 3; nt++) {
        results_t rn = run_fast(&f, nt);
        ck_assert_msg(memcmp(r1.y, rn.y, sizeof(float) * (size_t)f.ny) == 0, "fwd %s nt=%d",
                      f.c->name, nt);
        ck_assert_msg(memcmp(r1.dx, rn.dx, sizeof(float) * (size_t)f.nx) == 0, "bwd_data %s nt=%d",
                      f.c->name, nt);
        ck_assert_msg(memcmp(r1.db, rn.db, sizeof(float) * (size_t)f.c->cout) == 0,
                      "dbias %s nt=%d", f.c->name, nt);
        if (kc >= 64 * nt) {
            ck_assert_msg(memcmp(r1.dw, rn.dw, sizeof(float) * (size_t)f.nw) == 0,
                          "bwd_weight %s nt=%d", f.c->name, nt);
        } else {
            double e = ss_test_max_rel_err(rn.dw, r1.dw, f.nw, 1e-6 * f.c->n * pout(&f), 1e-5);
            ck_assert_msg(e <= 1.0, "bwd_weight %s nt=%d: %.3g x tolerance", f.c->name, nt, e);
        }
        results_free(&rn);
    }
    results_free(&r1);
    fixture_fini(&f);
}
END_TEST

// Finite differences of the double reference: L = sum(y * g) is linear in x, w and b, so the
// central difference is exact up to rounding; tolerance 1e-8 relative to the largest gradient.
typedef struct {
    fixture_t *f;
    double *y;
} fd_ctx_t;

static double fd_loss(void *ctx)
{
    fd_ctx_t *c = ctx;
    fixture_t *f = c->f;
    ss_ref_conv3d_fwd(c->y, f->xd, f->wd, f->bd, f->xs, f->c->cout, &f->c->p);
    double s = 0;
    for (int64_t i = 0; i < f->ny; i++) {
        s += c->y[i] * f->dyd[i];
    }
    return s;
}

static void
fd_compare(const char *what, fd_ctx_t *ctx, double *param, const double *grad, int64_t n)
{
    double scale = 1e-300;
    for (int64_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(grad[i]));
    }
    for (int64_t i = 0; i < n; i++) {
        double fd = ss_test_fd(fd_loss, ctx, param, i, 1e-3);
        ck_assert_msg(fabs(fd - grad[i]) <= 1e-8 * scale, "%s (%s) [%lld]: fd %.12g ref %.12g",
                      what, ctx->f->c->name, (long long)i, fd, grad[i]);
    }
}

static const int fd_cases[] = {0, 2, 4, 5, 8, 9, 10, 16};

START_TEST(test_ref_fd)
{
    fixture_t f;
    fixture_init(&f, &cases[fd_cases[_i]], 500 + (uint64_t)_i);
    double *y = malloc(sizeof(double) * (size_t)f.ny), *dx = malloc(sizeof(double) * (size_t)f.nx);
    double *dw = malloc(sizeof(double) * (size_t)f.nw),
           *db = malloc(sizeof(double) * (size_t)f.c->cout);
    ss_ref_conv3d_bwd_data(dx, f.dyd, f.wd, f.xs, f.c->cout, &f.c->p);
    ss_ref_conv3d_bwd_weight(dw, db, f.xd, f.dyd, f.xs, f.c->cout, &f.c->p);
    fd_ctx_t ctx = {&f, y};
    fd_compare("dx", &ctx, f.xd, dx, f.nx);
    fd_compare("dw", &ctx, f.wd, dw, f.nw);
    fd_compare("db", &ctx, f.bd, db, f.c->cout);
    free(y);
    free(dx);
    free(dw);
    free(db);
    fixture_fini(&f);
}
END_TEST

// PyTorch golden values (tests/golden/make_golden_conv3d.py); tolerance 1e-5 relative plus
// 1e-6 * reduction length absolute, as for the reference.
typedef struct {
    const char *name;
    ss_conv3d_params_t p;
} golden_case_t;

static const golden_case_t golden_cases[] = {
    {"same3", {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
    {"aniso", {{3, 2, 1}, {2, 1, 3}, {1, 0, 0}, {0, 1, 2}}},
    {"patch", {{4, 4, 4}, {4, 4, 4}, {0, 0, 0}, {0, 0, 0}}},
    {"down", {{3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}}},
    {"point", {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}}},
    {"rows16", {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}, // row-shift tiles
};

static float *golden(const char *group, const char *name, int64_t *shape)
{
    char path[128];
    int nd;
    snprintf(path, sizeof(path), "/%s/%s", group, name);
    return ss_test_golden(GOLDEN, path, shape, &nd);
}

static void
golden_expect(const char *group, const char *name, const float *got, int64_t n, int64_t reduction)
{
    int64_t shape[8];
    float *want = golden(group, name, shape);
    double e = ss_test_max_rel_err(got, want, n, 1e-6 * (double)reduction, 1e-5);
    free(want);
    ck_assert_msg(e <= 1.0, "golden %s/%s: %.3g x tolerance", group, name, e);
}

START_TEST(test_golden)
{
    const golden_case_t *g = &golden_cases[_i];
    int64_t xs[8], ws[8], bs[8], ys[8];
    float *x = golden(g->name, "x", xs), *w = golden(g->name, "w", ws);
    float *b = golden(g->name, "b", bs), *dy = golden(g->name, "dy", ys);
    conv_case_t c = {g->name, xs[0], xs[1], ws[0], {xs[2], xs[3], xs[4]}, g->p};
    fixture_t f = {.c = &c, .x = x, .w = w, .b = b, .dy = dy};
    memcpy(f.xs, xs, sizeof(f.xs));
    memcpy(f.ws, ws, sizeof(f.ws));
    memcpy(f.ys, ys, sizeof(f.ys));
    f.nx = prod(xs, 5);
    f.nw = prod(ws, 5);
    f.ny = prod(ys, 5);
    results_t r = run_fast(&f, 2);
    int64_t kc = xs[1] * prod(ws + 2, 3);
    golden_expect(g->name, "y", r.y, f.ny, kc + 1);
    golden_expect(g->name, "dx", r.dx, f.nx, ws[0] * prod(ws + 2, 3));
    golden_expect(g->name, "dw", r.dw, f.nw, xs[0] * pout(&f));
    golden_expect(g->name, "db", r.db, ws[0], xs[0] * pout(&f));
    results_free(&r);
    free(x);
    free(w);
    free(b);
    free(dy);
}
END_TEST

// Sequence parallelism: an i-slab of y computed from a slab view of x with one halo plane per
// side and pad 0 on the interior sides equals those planes of the full conv; dw of two slabs sums
// to the full dw; dx of a slab (with halo) summed over slabs equals the full dx.
// K = 16: the slabs run the direct kernels on AVX-512 CPUs, the row-shift tiles otherwise (and
// in tc_ss_conv3d_gemm_paths). K = 32 with even slabs: Winograd for the forward and the weight
// gradient (bwd_data's halo slabs have odd extents: the direct loops).
static const struct {
    conv_case_t c;
    int64_t own[2][2]; // planes [start, start + len) per rank
} slab_cases[] = {
    {{"slab", 1, 3, 4, {8, 5, 16}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}, {{0, 3}, {3, 5}}},
    {{"slab winograd", 1, 3, 4, {8, 4, 32}, {{3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
     {{0, 2}, {2, 6}}},
};

START_TEST(test_slab_views)
{
    const conv_case_t c = slab_cases[_i].c;
    const int64_t plane = c.in[1] * c.in[2], chan = c.in[0] * plane;
    fixture_t f;
    fixture_init(&f, &c, 600);
    results_t full = run_fast(&f, 2);
    ss_exec_t ex = exec_for(&f, 2);
    float *y = calloc((size_t)f.ny, sizeof(float)), *dx = calloc((size_t)f.nx, sizeof(float));
    float *dw = calloc((size_t)f.nw, sizeof(float)), *dws = malloc(sizeof(float) * (size_t)f.nw);
    float *dxs = malloc(sizeof(float) * (size_t)f.nx);
    ss_tensor_t x = tensor(5, f.xs, f.x), yt = tensor(5, f.ys, y), w = tensor(5, f.ws, f.w);
    ss_tensor_t dyt = tensor(5, f.ys, f.dy), dwt = tensor(5, f.ws, dws);
    const int64_t(*own)[2] = slab_cases[_i].own;
    for (int r = 0; r < 2; r++) {
        ss_conv3d_params_t p = c.p;
        int64_t lo = own[r][0] > 0 ? own[r][0] - 1 : 0;
        int64_t hi = own[r][0] + own[r][1] < c.in[0] ? own[r][0] + own[r][1] + 1 : c.in[0];
        p.pad_lo[0] = own[r][0] == 0 ? 1 : 0; // volume boundary: the layer's padding
        p.pad_hi[0] = own[r][0] + own[r][1] == c.in[0] ? 1 : 0;
        ss_tensor_t xv, yv, dyv, dxv, dxfull = tensor(5, f.xs, dxs);
        ck_assert_int_eq(ss_tensor_view_slab(&xv, &x, 2, lo, hi - lo, NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_view_slab(&yv, &yt, 2, own[r][0], own[r][1], NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_view_slab(&dyv, &dyt, 2, own[r][0], own[r][1], NULL), SS_OK);
        ck_assert_int_eq(ss_tensor_view_slab(&dxv, &dxfull, 2, lo, hi - lo, NULL), SS_OK);
        ck_assert_int_eq(ss_conv3d_fwd(&yv, &xv, &w, NULL, &p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_conv3d_bwd_weight(&dwt, NULL, &xv, &dyv, &p, &ex, NULL), SS_OK);
        ck_assert_int_eq(ss_conv3d_bwd_data(&dxv, &dyv, &w, &p, &ex, NULL), SS_OK);
        for (int64_t i = 0; i < f.nw; i++) {
            dw[i] += dws[i];
        }
        for (int64_t ch = 0; ch < c.cin; ch++) { // reverse halo exchange: add the slab's dx
            for (int64_t e = lo * plane; e < hi * plane; e++) {
                dx[ch * chan + e] += dxs[ch * chan + e];
            }
        }
    }
    // y from bias-free slabs vs the full conv with bias: add the bias back.
    for (int64_t i = 0; i < f.ny; i++) {
        y[i] += f.b[i / chan];
    }
    ck_assert_msg(ss_test_max_rel_err(y, full.y, f.ny, 1e-6 * (double)(c.cin * 27 + 1), 1e-5) <=
                      1.0,
                  "y (%s)", c.name);
    ck_assert_msg(ss_test_max_rel_err(dw, full.dw, f.nw, 1e-6 * (double)chan, 1e-5) <= 1.0,
                  "dw (%s)", c.name);
    ck_assert_msg(ss_test_max_rel_err(dx, full.dx, f.nx, 1e-6 * (double)(c.cout * 27), 1e-5) <= 1.0,
                  "dx (%s)", c.name);
    free(y);
    free(dx);
    free(dw);
    free(dws);
    free(dxs);
    free(ex.work);
    results_free(&full);
    fixture_fini(&f);
}
END_TEST

START_TEST(test_out_shape)
{
    int64_t xs[5] = {2, 3, 64, 65, 7}, ys[5];
    ss_conv3d_params_t p = ss_conv3d_params_cube(3, 1, 1);
    ck_assert_int_eq(ss_conv3d_out_shape(ys, xs, 8, &p, NULL), SS_OK);
    const int64_t same[5] = {2, 8, 64, 65, 7};
    ck_assert_mem_eq(ys, same, sizeof(same));
    p = ss_conv3d_params_cube(16, 16, 0);
    int64_t big[5] = {1, 4, 128, 128, 130};
    ck_assert_int_eq(ss_conv3d_out_shape(ys, big, 768, &p, NULL), SS_OK);
    const int64_t patches[5] = {1, 768, 8, 8, 8};
    ck_assert_mem_eq(ys, patches, sizeof(patches));
    ss_conv3d_params_t q = {{3, 2, 1}, {2, 1, 3}, {1, 0, 0}, {0, 1, 2}};
    int64_t odd[5] = {1, 2, 7, 5, 6};
    ck_assert_int_eq(ss_conv3d_out_shape(ys, odd, 3, &q, NULL), SS_OK);
    ck_assert_int_eq(ys[2], 3);
    ck_assert_int_eq(ys[3], 5);
    ck_assert_int_eq(ys[4], 3);
    ss_error_t err;
    int64_t small[5] = {1, 1, 2, 5, 5};
    ck_assert_int_eq(ss_conv3d_out_shape(ys, small, 1, &p, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "smaller than the kernel"));
    q.stride[1] = 0;
    ck_assert_int_eq(ss_conv3d_out_shape(ys, odd, 3, &q, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "stride"));
    ck_assert_int_eq(ss_conv3d_out_shape(ys, odd, 0, &p, &err), SS_EINVAL);
}
END_TEST

// The workspace is bounded: GEMM tiles hold whole rows along K, the direct kernels' source slab
// about 4 MB of padded planes and Winograd's transformed tiles ~1 MB per thread at 32 channels,
// so it is the same for every batch and I extent, stays a few MB for larger planes, is smaller
// for a volume below one tile, and a kernel refuses a smaller buffer.
START_TEST(test_workspace_size)
{
    ss_conv3d_params_t p = ss_conv3d_params_cube(3, 1, 1);
    ss_conv3d_shape_t s64 = {1, 32, 32, {64, 64, 64}}, s128 = {2, 32, 32, {128, 64, 64}};
    ss_conv3d_shape_t wide = {1, 32, 32, {64, 96, 96}};
    ss_conv3d_shape_t tiny = {1, 32, 32, {2, 3, 4}};
    size_t a = ss_conv3d_workspace_size(&p, &s64, 2);
    ck_assert_uint_gt(a, 0);
    ck_assert_uint_eq(a, ss_conv3d_workspace_size(&p, &s128, 2));
    ck_assert_uint_lt(ss_conv3d_workspace_size(&p, &wide, 2), 8u << 20);
    ck_assert_uint_lt(ss_conv3d_workspace_size(&p, &tiny, 2), a);
    ck_assert_uint_lt(a, 8u << 20); // a few col tiles, nothing like the 906 MB im2col matrix
    ss_conv3d_params_t pw = ss_conv3d_params_cube(1, 1, 0);
    // 1x1x1 multiplies x in place: no col tile, only dw accumulators and a dy tile copy.
    ck_assert_uint_lt(ss_conv3d_workspace_size(&pw, &s64, 2), a);
    ss_conv3d_params_t bad = ss_conv3d_params_cube(3, 0, 1);
    ck_assert_uint_eq(ss_conv3d_workspace_size(&bad, &s64, 2), 0);

    fixture_t f;
    fixture_init(&f, &cases[0], 700);
    ss_exec_t ex = exec_for(&f, 2);
    ck_assert_uint_gt(ex.work_bytes, 0);
    size_t full = ex.work_bytes;
    ex.work_bytes = 64; // each kernel needs its own share; far less than one col tile
    ss_tensor_t x = tensor(5, f.xs, f.x), w = tensor(5, f.ws, f.w), dy = tensor(5, f.ys, f.dy);
    float *out = malloc(sizeof(float) * (size_t)(f.ny + f.nx));
    ss_tensor_t y = tensor(5, f.ys, out), dx = tensor(5, f.xs, out);
    ss_error_t err;
    ck_assert_int_eq(ss_conv3d_fwd(&y, &x, &w, NULL, &f.c->p, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "ss_conv3d_workspace_size"));
    ck_assert_int_eq(ss_conv3d_bwd_data(&dx, &dy, &w, &f.c->p, &ex, &err), SS_EINVAL);
    ck_assert_int_eq(ss_conv3d_fwd(&y, &x, &w, NULL, &f.c->p, NULL, &err), SS_EINVAL);
    // A raised cancel flag stops a kernel with SS_ECANCELLED.
    volatile int stop = 1;
    ex.work_bytes = full;
    ex.cancel = &stop;
    ck_assert_int_eq(ss_conv3d_fwd(&y, &x, &w, NULL, &f.c->p, &ex, &err), SS_ECANCELLED);
    free(out);
    free(ex.work);
    fixture_fini(&f);
}
END_TEST

START_TEST(test_bad_input)
{
    fixture_t f;
    fixture_init(&f, &cases[0], 800);
    ss_exec_t ex = exec_for(&f, 2);
    float *out = malloc(sizeof(float) * (size_t)(f.ny + f.nx + f.nw));
    ss_tensor_t x = tensor(5, f.xs, f.x), w = tensor(5, f.ws, f.w), dy = tensor(5, f.ys, f.dy);
    ss_tensor_t y = tensor(5, f.ys, out), dw = tensor(5, f.ws, out);
    ss_error_t err;
    ss_conv3d_params_t p = f.c->p;
    // Channel mismatch between x and w.
    int64_t ws2[5] = {5, 4, 3, 3, 3};
    ss_tensor_t w2 = tensor(5, ws2, f.w);
    ck_assert_int_eq(ss_conv3d_fwd(&y, &x, &w2, NULL, &p, &ex, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "w has shape"));
    // Wrong output extent.
    int64_t ys2[5] = {1, 5, 7, 6, 4};
    ss_tensor_t y2 = tensor(5, ys2, out);
    ck_assert_int_eq(ss_conv3d_fwd(&y2, &x, &w, NULL, &p, &ex, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "y has shape"));
    ck_assert_int_eq(ss_conv3d_bwd_data(&x, &y2, &w, &p, &ex, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_conv3d_bwd_weight(&dw, NULL, &x, &y2, &p, &ex, &err), SS_ESHAPE);
    // Kernel of w differs from the params.
    p.kernel[2] = 2;
    ck_assert_int_eq(ss_conv3d_fwd(&y, &x, &w, NULL, &p, &ex, &err), SS_ESHAPE);
    p = f.c->p;
    p.pad_lo[1] = -1;
    ck_assert_int_eq(ss_conv3d_fwd(&y, &x, &w, NULL, &p, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "padding"));
    p = f.c->p;
    // Bias of the wrong length.
    int64_t bs[1] = {4};
    ss_tensor_t b = tensor(1, bs, f.b);
    ck_assert_int_eq(ss_conv3d_fwd(&y, &x, &w, &b, &p, &ex, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "bias"));
    // Output aliasing an input.
    ss_tensor_t yalias = tensor(5, f.ys, f.x);
    ck_assert_int_eq(ss_conv3d_fwd(&yalias, &x, &w, NULL, &p, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "overlaps"));
    // Non-dense spatial strides (a view along K).
    ss_tensor_t xv;
    ck_assert_int_eq(ss_tensor_view_slab(&xv, &x, 4, 0, 4, NULL), SS_OK);
    ck_assert_int_eq(ss_conv3d_fwd(&y, &xv, &w, NULL, &p, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "strides"));
    // Wrong rank.
    ss_tensor_t x4 = tensor(4, f.xs + 1, f.x);
    ck_assert_int_eq(ss_conv3d_bwd_weight(&dw, NULL, &x4, &dy, &p, &ex, &err), SS_ESHAPE);
    free(out);
    free(ex.work);
    fixture_fini(&f);
}
END_TEST

// An empty batch is a no-op for fwd / bwd_data and gives zero gradients.
START_TEST(test_empty_batch)
{
    conv_case_t c = cases[0];
    c.n = 0;
    fixture_t f;
    fixture_init(&f, &c, 900);
    ss_exec_t ex = exec_for(&f, 2);
    float dw[5 * 3 * 27], db[5];
    int64_t bs[1] = {5};
    ss_tensor_t x = tensor(5, f.xs, f.x), dy = tensor(5, f.ys, f.dy);
    ss_tensor_t dwt = tensor(5, f.ws, dw), dbt = tensor(1, bs, db);
    memset(dw, 0x7f, sizeof(dw));
    memset(db, 0x7f, sizeof(db));
    ck_assert_int_eq(ss_conv3d_bwd_weight(&dwt, &dbt, &x, &dy, &c.p, &ex, NULL), SS_OK);
    for (int i = 0; i < 5 * 3 * 27; i++) {
        ck_assert_float_eq(dw[i], 0.0f);
    }
    ck_assert_float_eq(db[4], 0.0f);
    free(ex.work);
    fixture_fini(&f);
}
END_TEST

static void direct_off(void)
{
    ss__dconv_enable(0);
}

static void direct_on(void)
{
    ss__dconv_enable(1);
}

static void wino_off(void)
{
    ss__dconv_wino_enable(0);
}

static void wino_on(void)
{
    ss__dconv_wino_enable(1);
}

static Suite *conv3d_suite(void)
{
    Suite *s = suite_create("conv3d");
    TCase *tc = tcase_create("tc_ss_conv3d_out_shape");
    tcase_add_test(tc, test_out_shape);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_conv3d_workspace_size");
    tcase_add_test(tc, test_workspace_size);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_conv3d_fwd");
    tcase_add_loop_test(tc, test_fwd_vs_ref, 0, NCASES);
    tcase_add_loop_test(tc, test_golden, 0, (int)(sizeof(golden_cases) / sizeof(golden_cases[0])));
    tcase_add_loop_test(tc, test_threads, 0, NCASES);
    tcase_add_loop_test(tc, test_slab_views, 0, (int)(sizeof(slab_cases) / sizeof(slab_cases[0])));
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_conv3d_bwd_data");
    tcase_add_loop_test(tc, test_bwd_data_vs_ref, 0, NCASES);
    tcase_add_loop_test(tc, test_ref_fd, 0, (int)(sizeof(fd_cases) / sizeof(fd_cases[0])));
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_conv3d_bwd_weight");
    tcase_add_loop_test(tc, test_bwd_weight_vs_ref, 0, NCASES);
    tcase_add_test(tc, test_empty_batch);
    suite_add_tcase(s, tc);
    // The same cases through the GEMM paths, which the direct kernels replace on AVX-512 CPUs.
    tc = tcase_create("tc_ss_conv3d_gemm_paths");
    tcase_add_unchecked_fixture(tc, direct_off, direct_on);
    tcase_add_loop_test(tc, test_fwd_vs_ref, 0, NCASES);
    tcase_add_loop_test(tc, test_bwd_data_vs_ref, 0, NCASES);
    tcase_add_loop_test(tc, test_bwd_weight_vs_ref, 0, NCASES);
    tcase_add_loop_test(tc, test_threads, 0, NCASES);
    tcase_add_loop_test(tc, test_slab_views, 0, (int)(sizeof(slab_cases) / sizeof(slab_cases[0])));
    suite_add_tcase(s, tc);
    // The direct loops on the shapes that Winograd takes by default.
    tc = tcase_create("tc_ss_conv3d_direct_loops");
    tcase_add_unchecked_fixture(tc, wino_off, wino_on);
    tcase_add_loop_test(tc, test_fwd_vs_ref, NCASES - NWINO, NCASES);
    tcase_add_loop_test(tc, test_bwd_data_vs_ref, NCASES - NWINO, NCASES);
    tcase_add_loop_test(tc, test_bwd_weight_vs_ref, NCASES - NWINO, NCASES);
    tcase_add_loop_test(tc, test_threads, NCASES - NWINO, NCASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(conv3d_suite());
}
