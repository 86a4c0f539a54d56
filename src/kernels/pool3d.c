#include "shardseg/pool3d.h"

#include <string.h>

// Output rows are processed in chunks of this many voxels when the caller wants no argmax, so the
// one row kernel can write its indices to a stack buffer.
#define ROW_CHUNK 256
// The generic path keeps a table of the window's element offsets (window product <= 256).
#define MAX_WINDOW 256

typedef struct {
    int64_t nc;             // N * C
    int64_t ii, jj, kk;     // input sizes
    int64_t oi, oj, ok;     // output sizes
    int64_t k0, k1, k2, ws; // window and its product
} pool_geom_t;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void geom_init(pool_geom_t *g, const ss_tensor_t *x, const ss_pool3d_params_t *p)
{
    g->nc = x->shape[0] * x->shape[1];
    g->ii = x->shape[2];
    g->jj = x->shape[3];
    g->kk = x->shape[4];
    g->k0 = p->window[0];
    g->k1 = p->window[1];
    g->k2 = p->window[2];
    g->ws = g->k0 * g->k1 * g->k2;
    g->oi = g->ii / g->k0;
    g->oj = g->jj / g->k1;
    g->ok = g->kk / g->k2;
}

static int is_222(const pool_geom_t *g)
{
    return g->k0 == 2 && g->k1 == 2 && g->k2 == 2;
}

// ---------------------------------------------------------------------------------------------
// Validation.

static ss_status_t check_f32(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    if (t == NULL) {
        SS_FAIL(err, SS_EINVAL, "pool3d: %s is NULL", name);
    }
    if (t->dtype != SS_F32 || t->ndim != 5) {
        SS_FAIL(err, SS_ESHAPE, "pool3d: %s must be a rank-5 float32 tensor (rank %d)", name,
                t->ndim);
    }
    if (!ss_tensor_is_contiguous(t)) {
        SS_FAIL(err, SS_EINVAL, "pool3d: %s must be contiguous; copy the view first", name);
    }
    if (t->data == NULL && ss_tensor_numel(t) > 0) {
        SS_FAIL(err, SS_EINVAL, "pool3d: %s has no data", name);
    }
    return SS_OK;
}

static int ranges_overlap(const void *a, size_t na, const void *b, size_t nb)
{
    const char *pa = a, *pb = b;
    return a != NULL && b != NULL && na > 0 && nb > 0 && pa < pb + nb && pb < pa + na;
}

// big: the input-side tensor (x or dx); small: the output-side one (y or dy).
static ss_status_t pool_check(pool_geom_t *g,
                              const ss_tensor_t *big,
                              const char *bname,
                              const ss_tensor_t *small,
                              const char *sname,
                              const ss_pool3d_params_t *p,
                              int64_t max_window,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(check_f32(big, bname, err));
    SS_TRY(check_f32(small, sname, err));
    if (p == NULL || p->window[0] < 1 || p->window[1] < 1 || p->window[2] < 1) {
        SS_FAIL(err, SS_EINVAL, "pool3d: window must be >= 1 in every dimension");
    }
    if (p->window[0] * p->window[1] * p->window[2] > max_window) {
        SS_FAIL(err, SS_EINVAL,
                "pool3d: window of %lld elements; max pooling stores the argmax "
                "in one byte, so at most %lld",
                (long long)(p->window[0] * p->window[1] * p->window[2]), (long long)max_window);
    }
    if (ex == NULL || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "pool3d: exec must give nthreads >= 1");
    }
    geom_init(g, big, p);
    const int64_t want[5] = {big->shape[0], big->shape[1], g->oi, g->oj, g->ok};
    for (int d = 0; d < 5; d++) {
        if (small->shape[d] != want[d]) {
            char bs[96], ys[96];
            ss_tensor_shape_str(big, bs, sizeof(bs));
            ss_tensor_shape_str(small, ys, sizeof(ys));
            SS_FAIL(err, SS_ESHAPE,
                    "pool3d: %s %s does not match %s %s pooled by (%lld, %lld, "
                    "%lld)",
                    sname, ys, bname, bs, (long long)g->k0, (long long)g->k1, (long long)g->k2);
        }
    }
    if (ranges_overlap(big->data, ss_tensor_nbytes(big), small->data, ss_tensor_nbytes(small))) {
        SS_FAIL(err, SS_EINVAL, "pool3d: %s and %s overlap", bname, sname);
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Window {2, 2, 2}. Candidates are visited in PyTorch's order (a, b, c) with a strict `>` so the
// first maximum wins; `v != v` lets a NaN win (PyTorch: `val > maxval || isnan(val)`). Written
// as unrolled selects so that `omp simd` vectorises the row (the even/odd columns become
// shuffles); a loop over the 8 candidates or a branch defeats the vectoriser.

// One candidate of the unrolled window: v replaces the running maximum (and its index) when it is
// larger or NaN. Inlined into the simd loop, so it stays a pair of selects.
static inline void take_max(float *m, int *idx, float v, int k)
{
    int take = (v > *m) | (v != v);
    *m = take ? v : *m;
    *idx = take ? k : *idx;
}

static void max_row2(float *restrict y,
                     uint8_t *restrict am,
                     const float *restrict r00,
                     const float *restrict r01,
                     const float *restrict r10,
                     const float *restrict r11,
                     int64_t n)
{
#pragma omp simd
    for (int64_t o = 0; o < n; o++) {
        float m = r00[2 * o];
        int idx = 0;
        take_max(&m, &idx, r00[2 * o + 1], 1);
        take_max(&m, &idx, r01[2 * o], 2);
        take_max(&m, &idx, r01[2 * o + 1], 3);
        take_max(&m, &idx, r10[2 * o], 4);
        take_max(&m, &idx, r10[2 * o + 1], 5);
        take_max(&m, &idx, r11[2 * o], 6);
        take_max(&m, &idx, r11[2 * o + 1], 7);
        y[o] = m;
        am[o] = (uint8_t)idx;
    }
}

// Output plane oi of one (n, c): x points at input plane 2*oi.
static void max_fwd_plane2(float *y, uint8_t *am, const float *x, const pool_geom_t *g)
{
    const int64_t kk = g->kk, pl = g->jj * g->kk;
    uint8_t scratch[ROW_CHUNK];
    for (int64_t oj = 0; oj < g->oj; oj++) {
        const float *r00 = x + 2 * oj * kk;
        for (int64_t o0 = 0; o0 < g->ok; o0 += ROW_CHUNK) {
            int64_t len = min64(ROW_CHUNK, g->ok - o0);
            const float *r = r00 + 2 * o0;
            uint8_t *a = am != NULL ? am + oj * g->ok + o0 : scratch;
            max_row2(y + oj * g->ok + o0, a, r, r + kk, r + pl, r + pl + kk, len);
        }
    }
}

// Input rows (a, 0) and (a, 1) of output row o-row: index t = 4a + 2b + c.
static void max_bwd_rows2(float *restrict d0,
                          float *restrict d1,
                          const float *restrict dy,
                          const uint8_t *restrict am,
                          int64_t n,
                          int base)
{
    // Conditional assignments, not `?:` on an int compare: GCC 12 if-converts only this form.
#pragma omp simd
    for (int64_t o = 0; o < n; o++) {
        int t = am[o] - base;
        float v0 = dy[o], v1 = v0, v2 = v0, v3 = v0;
        if (t != 0) {
            v0 = 0.0f;
        }
        if (t != 1) {
            v1 = 0.0f;
        }
        if (t != 2) {
            v2 = 0.0f;
        }
        if (t != 3) {
            v3 = 0.0f;
        }
        d0[2 * o] = v0;
        d0[2 * o + 1] = v1;
        d1[2 * o] = v2;
        d1[2 * o + 1] = v3;
    }
}

// Input planes 2*oi and 2*oi+1 of one (n, c), including the columns and rows no window covers.
static void max_bwd_plane2(float *dx, const float *dy, const uint8_t *am, const pool_geom_t *g)
{
    const int64_t kk = g->kk, pl = g->jj * g->kk, tail = kk - 2 * g->ok;
    for (int64_t a = 0; a < 2; a++) {
        float *plane = dx + a * pl;
        for (int64_t oj = 0; oj < g->oj; oj++) {
            float *d0 = plane + 2 * oj * kk;
            max_bwd_rows2(d0, d0 + kk, dy + oj * g->ok, am + oj * g->ok, g->ok, (int)(4 * a));
            if (tail > 0) {
                memset(d0 + 2 * g->ok, 0, sizeof(float) * (size_t)tail);
                memset(d0 + kk + 2 * g->ok, 0, sizeof(float) * (size_t)tail);
            }
        }
        memset(plane + 2 * g->oj * kk, 0, sizeof(float) * (size_t)((g->jj - 2 * g->oj) * kk));
    }
}

// Average over the window in PyTorch's summation order; * 0.125f is exactly PyTorch's / 8.
static void avg_row2(float *restrict y,
                     const float *restrict r00,
                     const float *restrict r01,
                     const float *restrict r10,
                     const float *restrict r11,
                     int64_t n)
{
#pragma omp simd
    for (int64_t o = 0; o < n; o++) {
        float s = r00[2 * o] + r00[2 * o + 1];
        s += r01[2 * o];
        s += r01[2 * o + 1];
        s += r10[2 * o];
        s += r10[2 * o + 1];
        s += r11[2 * o];
        s += r11[2 * o + 1];
        y[o] = s * 0.125f;
    }
}

static void avg_fwd_plane2(float *y, const float *x, const pool_geom_t *g)
{
    const int64_t kk = g->kk, pl = g->jj * g->kk;
    for (int64_t oj = 0; oj < g->oj; oj++) {
        const float *r = x + 2 * oj * kk;
        avg_row2(y + oj * g->ok, r, r + kk, r + pl, r + pl + kk, g->ok);
    }
}

static void
avg_bwd_rows2(float *restrict d0, float *restrict d1, const float *restrict dy, int64_t n)
{
#pragma omp simd
    for (int64_t o = 0; o < n; o++) {
        float v = dy[o] * 0.125f;
        d0[2 * o] = v;
        d0[2 * o + 1] = v;
        d1[2 * o] = v;
        d1[2 * o + 1] = v;
    }
}

static void avg_bwd_plane2(float *dx, const float *dy, const pool_geom_t *g)
{
    const int64_t kk = g->kk, pl = g->jj * g->kk, tail = kk - 2 * g->ok;
    for (int64_t a = 0; a < 2; a++) {
        float *plane = dx + a * pl;
        for (int64_t oj = 0; oj < g->oj; oj++) {
            float *d0 = plane + 2 * oj * kk;
            avg_bwd_rows2(d0, d0 + kk, dy + oj * g->ok, g->ok);
            if (tail > 0) {
                memset(d0 + 2 * g->ok, 0, sizeof(float) * (size_t)tail);
                memset(d0 + kk + 2 * g->ok, 0, sizeof(float) * (size_t)tail);
            }
        }
        memset(plane + 2 * g->oj * kk, 0, sizeof(float) * (size_t)((g->jj - 2 * g->oj) * kk));
    }
}

// ---------------------------------------------------------------------------------------------
// Any window: a table of the window's element offsets, in (a, b, c) order.

static void window_offsets(int64_t *off, const pool_geom_t *g)
{
    for (int64_t w = 0; w < g->ws; w++) {
        int64_t a = w / (g->k1 * g->k2), b = w / g->k2 % g->k1, c = w % g->k2;
        off[w] = (a * g->jj + b) * g->kk + c;
    }
}

static void
max_fwd_plane(float *y, uint8_t *am, const float *x, const pool_geom_t *g, const int64_t *off)
{
    for (int64_t o = 0; o < g->oj * g->ok; o++) {
        const float *base = x + (o / g->ok) * g->k1 * g->kk + (o % g->ok) * g->k2;
        float m = base[off[0]];
        int64_t idx = 0;
        for (int64_t w = 1; w < g->ws; w++) {
            float v = base[off[w]];
            if (v > m || v != v) {
                m = v;
                idx = w;
            }
        }
        y[o] = m;
        if (am != NULL) {
            am[o] = (uint8_t)idx;
        }
    }
}

// Zeroes the k0 input planes of output plane oi (x points at the first), then scatters.
static void max_bwd_plane(
    float *dx, const float *dy, const uint8_t *am, const pool_geom_t *g, const int64_t *off)
{
    memset(dx, 0, sizeof(float) * (size_t)(g->k0 * g->jj * g->kk));
    for (int64_t o = 0; o < g->oj * g->ok; o++) {
        float *base = dx + (o / g->ok) * g->k1 * g->kk + (o % g->ok) * g->k2;
        base[off[am[o]]] = dy[o];
    }
}

static void avg_fwd_plane(float *y, const float *x, const pool_geom_t *g, const int64_t *off)
{
    const float scale = 1.0f / (float)g->ws;
    const int exact = (g->ws & (g->ws - 1)) == 0; // 1/ws is exact: multiply == PyTorch's divide
    for (int64_t o = 0; o < g->oj * g->ok; o++) {
        const float *base = x + (o / g->ok) * g->k1 * g->kk + (o % g->ok) * g->k2;
        float s = 0.0f;
        for (int64_t w = 0; w < g->ws; w++) {
            s += base[off[w]];
        }
        y[o] = exact ? s * scale : s / (float)g->ws;
    }
}

static void avg_bwd_plane(float *dx, const float *dy, const pool_geom_t *g, const int64_t *off)
{
    memset(dx, 0, sizeof(float) * (size_t)(g->k0 * g->jj * g->kk));
    for (int64_t o = 0; o < g->oj * g->ok; o++) {
        float *base = dx + (o / g->ok) * g->k1 * g->kk + (o % g->ok) * g->k2;
        float v = dy[o] / (float)g->ws;
        for (int64_t w = 0; w < g->ws; w++) {
            base[off[w]] = v;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers: one task per (n*c, output plane oi). The backward task of the last output plane also
// zeroes the trailing input planes that no window covers.

typedef enum { OP_MAX_FWD, OP_MAX_BWD, OP_AVG_FWD, OP_AVG_BWD } pool_op_t;

typedef struct {
    float *out;      // y or dx
    const float *in; // x or dy
    uint8_t *am;     // argmax (written by OP_MAX_FWD, may be NULL there)
    const uint8_t *am_in;
} pool_bufs_t;

static void
run_task(pool_op_t op, const pool_bufs_t *b, const pool_geom_t *g, const int64_t *off, int64_t task)
{
    const int64_t nc = task / g->oi, oi = task % g->oi;
    const int64_t pl = g->jj * g->kk, opl = g->oj * g->ok;
    const int64_t xo = (nc * g->ii + oi * g->k0) * pl, yo = (nc * g->oi + oi) * opl;
    if (op == OP_MAX_FWD) {
        uint8_t *am = b->am != NULL ? b->am + yo : NULL;
        if (is_222(g)) {
            max_fwd_plane2(b->out + yo, am, b->in + xo, g);
        } else {
            max_fwd_plane(b->out + yo, am, b->in + xo, g, off);
        }
    } else if (op == OP_AVG_FWD && is_222(g)) {
        avg_fwd_plane2(b->out + yo, b->in + xo, g);
    } else if (op == OP_AVG_FWD) {
        avg_fwd_plane(b->out + yo, b->in + xo, g, off);
    } else {
        if (op == OP_MAX_BWD && is_222(g)) {
            max_bwd_plane2(b->out + xo, b->in + yo, b->am_in + yo, g);
        } else if (op == OP_MAX_BWD) {
            max_bwd_plane(b->out + xo, b->in + yo, b->am_in + yo, g, off);
        } else if (is_222(g)) {
            avg_bwd_plane2(b->out + xo, b->in + yo, g);
        } else {
            avg_bwd_plane(b->out + xo, b->in + yo, g, off);
        }
        if (oi == g->oi - 1) {
            int64_t rest = g->ii - g->oi * g->k0;
            memset(b->out + (nc * g->ii + g->oi * g->k0) * pl, 0,
                   sizeof(float) * (size_t)(rest * pl));
        }
    }
}

static void run(pool_op_t op, const pool_bufs_t *b, const pool_geom_t *g, int nt)
{
    int64_t off[MAX_WINDOW];
    if (g->ws <= MAX_WINDOW) {
        window_offsets(off, g);
    }
    const int64_t ntask = g->nc * g->oi;
#pragma omp parallel for num_threads(nt) schedule(static) default(none) shared(op, b, g, off)      \
    firstprivate(ntask)
    for (int64_t task = 0; task < ntask; task++) {
        run_task(op, b, g, off, task);
    }
}

// ---------------------------------------------------------------------------------------------
// Public functions.

ss_status_t ss_pool3d_max_fwd(ss_tensor_t *y,
                              uint8_t *argmax,
                              const ss_tensor_t *x,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    pool_geom_t g;
    SS_TRY(pool_check(&g, x, "x", y, "y", p, MAX_WINDOW, ex, err));
    size_t na = (size_t)ss_tensor_numel(y);
    if (ranges_overlap(argmax, na, x->data, ss_tensor_nbytes(x)) ||
        ranges_overlap(argmax, na, y->data, ss_tensor_nbytes(y))) {
        SS_FAIL(err, SS_EINVAL, "pool3d: argmax overlaps x or y");
    }
    if (na == 0) {
        return SS_OK;
    }
    pool_bufs_t b = {ss_tensor_f32(y), ss_tensor_f32(x), argmax, NULL};
    run(OP_MAX_FWD, &b, &g, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_pool3d_max_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const uint8_t *argmax,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    pool_geom_t g;
    SS_TRY(pool_check(&g, dx, "dx", dy, "dy", p, MAX_WINDOW, ex, err));
    size_t na = (size_t)ss_tensor_numel(dy);
    if (argmax == NULL && na > 0) {
        SS_FAIL(err, SS_EINVAL, "pool3d: max backward needs the argmax saved by the forward pass");
    }
    if (ranges_overlap(argmax, na, dx->data, ss_tensor_nbytes(dx))) {
        SS_FAIL(err, SS_EINVAL, "pool3d: argmax overlaps dx");
    }
    if (na == 0) {
        if (dx->data != NULL) {
            memset(dx->data, 0, ss_tensor_nbytes(dx));
        }
        return SS_OK;
    }
    pool_bufs_t b = {ss_tensor_f32(dx), ss_tensor_f32(dy), NULL, argmax};
    run(OP_MAX_BWD, &b, &g, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_pool3d_avg_fwd(ss_tensor_t *y,
                              const ss_tensor_t *x,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    pool_geom_t g;
    SS_TRY(pool_check(&g, x, "x", y, "y", p, MAX_WINDOW, ex, err));
    if (ss_tensor_numel(y) == 0) {
        return SS_OK;
    }
    pool_bufs_t b = {ss_tensor_f32(y), ss_tensor_f32(x), NULL, NULL};
    run(OP_AVG_FWD, &b, &g, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_pool3d_avg_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    pool_geom_t g;
    SS_TRY(pool_check(&g, dx, "dx", dy, "dy", p, MAX_WINDOW, ex, err));
    if (ss_tensor_numel(dy) == 0) {
        if (dx->data != NULL) {
            memset(dx->data, 0, ss_tensor_nbytes(dx));
        }
        return SS_OK;
    }
    pool_bufs_t b = {ss_tensor_f32(dx), ss_tensor_f32(dy), NULL, NULL};
    run(OP_AVG_BWD, &b, &g, ex->nthreads);
    return SS_OK;
}
