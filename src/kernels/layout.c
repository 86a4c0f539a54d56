#include "shardseg/layout.h"

#include <math.h>
#include <string.h>

#include <omp.h>

// Below this many elements (64 KiB) a parallel region costs more than it saves.
#define PAR_MIN_ELEMS 16384

typedef enum { OP_COPY, OP_ADD, OP_FILL } run_op_t;

// A strided element-wise op reduced to its simplest form: size-1 dimensions dropped and adjacent
// dimensions merged where both operands' strides chain, so the last dimension is the longest
// run that is regular in both.
typedef struct {
    int nd;
    int64_t shape[SS_MAX_DIMS];
    int64_t ds[SS_MAX_DIMS]; // destination strides
    int64_t ss[SS_MAX_DIMS]; // source strides (unused by OP_FILL)
    int64_t numel;
} run_plan_t;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void plan_make(run_plan_t *pl, const ss_tensor_t *dst, const ss_tensor_t *src)
{
    pl->nd = 0;
    pl->numel = 1;
    for (int d = 0; d < dst->ndim; d++) {
        int64_t n = dst->shape[d];
        pl->numel *= n;
        if (n == 1) {
            continue;
        }
        int64_t sst = src != NULL ? src->stride[d] : 0;
        int last = pl->nd - 1;
        if (last >= 0 && pl->ds[last] == dst->stride[d] * n && pl->ss[last] == sst * n) {
            pl->shape[last] *= n;
            pl->ds[last] = dst->stride[d];
            pl->ss[last] = sst;
        } else {
            pl->shape[pl->nd] = n;
            pl->ds[pl->nd] = dst->stride[d];
            pl->ss[pl->nd] = sst;
            pl->nd++;
        }
    }
    if (pl->nd == 0) {
        pl->nd = 1;
        pl->shape[0] = 1;
        pl->ds[0] = pl->ss[0] = 1;
    }
}

static void run_1d(run_op_t op,
                   float *restrict d,
                   int64_t ds,
                   const float *restrict s,
                   int64_t ss,
                   float value,
                   int64_t n)
{
    if (op == OP_COPY && ds == 1 && ss == 1) {
        memcpy(d, s, sizeof(float) * (size_t)n);
    } else if (op == OP_COPY) {
        for (int64_t e = 0; e < n; e++) {
            d[e * ds] = s[e * ss];
        }
    } else if (op == OP_ADD && ds == 1 && ss == 1) {
#pragma omp simd
        for (int64_t e = 0; e < n; e++) {
            d[e] += s[e];
        }
    } else if (op == OP_ADD) {
        for (int64_t e = 0; e < n; e++) {
            d[e * ds] += s[e * ss];
        }
    } else if (ds == 1 && value == 0.0f && !signbit(value)) {
        memset(d, 0, sizeof(float) * (size_t)n);
    } else {
        for (int64_t e = 0; e < n; e++) {
            d[e * ds] = value;
        }
    }
}

// Elements [e0, e1) of the plan in row-major order, walked run by run.
static void plan_range(const run_plan_t *pl,
                       run_op_t op,
                       float *dst,
                       const float *src,
                       float value,
                       int64_t e0,
                       int64_t e1)
{
    const int last = pl->nd - 1;
    const int64_t len_run = pl->shape[last];
    int64_t idx[SS_MAX_DIMS] = {0};
    int64_t r = e0 / len_run, off = e0 % len_run;
    for (int d = last - 1; d >= 0; d--) {
        idx[d] = r % pl->shape[d];
        r /= pl->shape[d];
    }
    for (int64_t e = e0; e < e1;) {
        int64_t len = min64(len_run - off, e1 - e);
        int64_t doff = off * pl->ds[last], soff = off * pl->ss[last];
        for (int d = 0; d < last; d++) {
            doff += idx[d] * pl->ds[d];
            soff += idx[d] * pl->ss[d];
        }
        run_1d(op, dst + doff, pl->ds[last], src != NULL ? src + soff : NULL, pl->ss[last], value,
               len);
        e += len;
        off = 0;
        for (int d = last - 1; d >= 0 && ++idx[d] == pl->shape[d]; d--) {
            idx[d] = 0;
        }
    }
}

static void plan_run(run_op_t op, ss_tensor_t *dst, const ss_tensor_t *src, float value, int nt)
{
    run_plan_t pl;
    plan_make(&pl, dst, src);
    const int64_t total = pl.numel;
    if (total == 0) {
        return;
    }
    float *d = ss_tensor_f32(dst);
    const float *s = src != NULL ? ss_tensor_f32(src) : NULL;
    if (total < PAR_MIN_ELEMS || nt <= 1) {
        plan_range(&pl, op, d, s, value, 0, total);
        return;
    }
#pragma omp parallel num_threads(nt) default(none) shared(pl, d, s) firstprivate(op, value, total)
    {
        int64_t start, len;
        ss_split_range(total, omp_get_num_threads(), omp_get_thread_num(), &start, &len);
        plan_range(&pl, op, d, s, value, start, start + len);
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

static ss_status_t check_f32(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    if (t == NULL) {
        SS_FAIL(err, SS_EINVAL, "layout: %s is NULL", name);
    }
    if (t->dtype != SS_F32 || t->ndim < 1 || t->ndim > SS_MAX_DIMS) {
        SS_FAIL(err, SS_ESHAPE, "layout: %s must be a float32 tensor of rank 1..%d (rank %d)", name,
                SS_MAX_DIMS, t->ndim);
    }
    for (int d = 0; d < t->ndim; d++) {
        if (t->stride[d] < 0 || t->shape[d] < 0) {
            SS_FAIL(err, SS_EINVAL, "layout: %s has a negative stride or extent in dimension %d",
                    name, d);
        }
    }
    if (t->data == NULL && ss_tensor_numel(t) > 0) {
        SS_FAIL(err, SS_EINVAL, "layout: %s has no data", name);
    }
    return SS_OK;
}

// Views may interleave without sharing an element, so overlap is only decidable cheaply for two
// contiguous tensors; views are the caller's responsibility (header).
static int contiguous_overlap(const ss_tensor_t *a, const ss_tensor_t *b)
{
    if (!ss_tensor_is_contiguous(a) || !ss_tensor_is_contiguous(b) || a->data == NULL ||
        b->data == NULL) {
        return 0;
    }
    const char *pa = a->data, *pb = b->data;
    size_t na = ss_tensor_nbytes(a), nb = ss_tensor_nbytes(b);
    return na > 0 && nb > 0 && pa < pb + nb && pb < pa + na;
}

static ss_status_t check_exec(const ss_exec_t *ex, ss_error_t *err)
{
    if (ex == NULL || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "layout: exec must give nthreads >= 1");
    }
    return SS_OK;
}

// dst and src valid, same shape, not overlapping.
static ss_status_t pair_check(const ss_tensor_t *dst,
                              const char *dname,
                              const ss_tensor_t *src,
                              const char *sname,
                              ss_error_t *err)
{
    SS_TRY(check_f32(dst, dname, err));
    SS_TRY(check_f32(src, sname, err));
    if (!ss_tensor_same_shape(dst, src)) {
        char a[96], b[96];
        ss_tensor_shape_str(dst, a, sizeof(a));
        ss_tensor_shape_str(src, b, sizeof(b));
        SS_FAIL(err, SS_ESHAPE, "layout: %s %s and %s %s differ in shape", dname, a, sname, b);
    }
    if (contiguous_overlap(dst, src)) {
        SS_FAIL(err, SS_EINVAL, "layout: %s overlaps %s", dname, sname);
    }
    return SS_OK;
}

ss_status_t
ss_layout_copy(ss_tensor_t *dst, const ss_tensor_t *src, const ss_exec_t *ex, ss_error_t *err)
{
    SS_TRY(check_exec(ex, err));
    SS_TRY(pair_check(dst, "dst", src, "src", err));
    plan_run(OP_COPY, dst, src, 0.0f, ex->nthreads);
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Concatenation along channels.

// The part [c0, c0 + c) of whole's dimension 1 must have part's shape.
static ss_status_t channel_part(ss_tensor_t *view,
                                const ss_tensor_t *whole,
                                const char *wname,
                                const ss_tensor_t *part,
                                const char *pname,
                                int64_t c0,
                                ss_error_t *err)
{
    if (part->ndim != whole->ndim || whole->ndim < 2 || c0 + part->shape[1] > whole->shape[1]) {
        SS_FAIL(err, SS_ESHAPE,
                "layout: %s does not fit in the channels of %s (rank >= 2, "
                "channels in dimension 1)",
                pname, wname);
    }
    SS_TRY(ss_tensor_view_slab(view, whole, 1, c0, part->shape[1], err));
    return SS_OK;
}

static ss_status_t concat_check(ss_tensor_t *va,
                                ss_tensor_t *vb,
                                const ss_tensor_t *whole,
                                const char *wname,
                                const ss_tensor_t *a,
                                const char *aname,
                                const ss_tensor_t *b,
                                const char *bname,
                                ss_error_t *err)
{
    SS_TRY(check_f32(whole, wname, err));
    if (a != NULL) {
        SS_TRY(check_f32(a, aname, err));
    }
    if (b != NULL) {
        SS_TRY(check_f32(b, bname, err));
    }
    int64_t ca = a != NULL ? a->shape[1] : whole->shape[1] - (b != NULL ? b->shape[1] : 0);
    int64_t cb = b != NULL ? b->shape[1] : whole->shape[1] - ca;
    if (whole->ndim < 2 || ca + cb != whole->shape[1] || ca < 0 || cb < 0) {
        SS_FAIL(err, SS_ESHAPE,
                "layout: channels of %s (dimension 1) must be those of %s plus "
                "those of %s",
                wname, aname, bname);
    }
    if (a != NULL) {
        SS_TRY(channel_part(va, whole, wname, a, aname, 0, err));
        SS_TRY(pair_check(va, "the channel part", a, aname, err));
    }
    if (b != NULL) {
        SS_TRY(channel_part(vb, whole, wname, b, bname, ca, err));
        SS_TRY(pair_check(vb, "the channel part", b, bname, err));
    }
    return SS_OK;
}

ss_status_t ss_layout_concat_fwd(ss_tensor_t *y,
                                 const ss_tensor_t *a,
                                 const ss_tensor_t *b,
                                 const ss_exec_t *ex,
                                 ss_error_t *err)
{
    ss_tensor_t ya, yb;
    SS_TRY(check_exec(ex, err));
    if (a == NULL || b == NULL) {
        SS_FAIL(err, SS_EINVAL, "layout: concat needs both inputs");
    }
    SS_TRY(concat_check(&ya, &yb, y, "y", a, "a", b, "b", err));
    plan_run(OP_COPY, &ya, a, 0.0f, ex->nthreads);
    plan_run(OP_COPY, &yb, b, 0.0f, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_layout_concat_bwd(
    ss_tensor_t *da, ss_tensor_t *db, const ss_tensor_t *dy, const ss_exec_t *ex, ss_error_t *err)
{
    ss_tensor_t va, vb;
    SS_TRY(check_exec(ex, err));
    SS_TRY(concat_check(&va, &vb, dy, "dy", da, "da", db, "db", err));
    if (da != NULL) {
        plan_run(OP_COPY, da, &va, 0.0f, ex->nthreads);
    }
    if (db != NULL) {
        plan_run(OP_COPY, db, &vb, 0.0f, ex->nthreads);
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// i-slabs.

static ss_status_t slab_check(ss_tensor_t *view,
                              const ss_tensor_t *full,
                              const ss_tensor_t *slab,
                              int64_t i0,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(check_exec(ex, err));
    SS_TRY(check_f32(full, "full", err));
    SS_TRY(check_f32(slab, "slab", err));
    if (full->ndim != 5 || slab->ndim != 5) {
        SS_FAIL(err, SS_ESHAPE, "layout: slab and full must be rank 5 (N, C, I, J, K)");
    }
    if (i0 < 0 || i0 + slab->shape[2] > full->shape[2]) {
        SS_FAIL(err, SS_ESHAPE, "layout: slab planes [%lld, %lld) outside [0, %lld)", (long long)i0,
                (long long)(i0 + slab->shape[2]), (long long)full->shape[2]);
    }
    SS_TRY(ss_tensor_view_slab(view, full, 2, i0, slab->shape[2], err));
    return pair_check(view, "full's slab", slab, "slab", err);
}

ss_status_t ss_layout_slab_get(
    ss_tensor_t *slab, const ss_tensor_t *full, int64_t i0, const ss_exec_t *ex, ss_error_t *err)
{
    ss_tensor_t v;
    SS_TRY(slab_check(&v, full, slab, i0, ex, err));
    plan_run(OP_COPY, slab, &v, 0.0f, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_layout_slab_put(
    ss_tensor_t *full, const ss_tensor_t *slab, int64_t i0, const ss_exec_t *ex, ss_error_t *err)
{
    ss_tensor_t v;
    SS_TRY(slab_check(&v, full, slab, i0, ex, err));
    plan_run(OP_COPY, &v, slab, 0.0f, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_layout_slab_add(
    ss_tensor_t *full, const ss_tensor_t *slab, int64_t i0, const ss_exec_t *ex, ss_error_t *err)
{
    ss_tensor_t v;
    SS_TRY(slab_check(&v, full, slab, i0, ex, err));
    plan_run(OP_ADD, &v, slab, 0.0f, ex->nthreads);
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Pad / crop, in one pass over y: each output row is a fill, a copy of the covered part of an
// input row, and a fill. (Copying the covered box first and filling around it afterwards would
// touch the rows' cache lines twice.)

typedef struct {
    int64_t b0[3], b1[3]; // covered box of y, [b0, b1) per spatial dim (b0 == b1 if empty)
} pad_box_t;

static void pad_box(pad_box_t *bx, const ss_tensor_t *y, const ss_tensor_t *x, const int64_t *lo)
{
    for (int d = 0; d < 3; d++) {
        int64_t yn = y->shape[2 + d], xn = x->shape[2 + d];
        bx->b0[d] = lo[d] > 0 ? min64(lo[d], yn) : 0;
        bx->b1[d] = min64(lo[d] + xn, yn);
        bx->b1[d] = bx->b1[d] < bx->b0[d] ? bx->b0[d] : bx->b1[d];
    }
}

// Output row (nc, i, j): nc indexes N*C, row pointers from strides.
static void pad_row(const ss_tensor_t *y,
                    const ss_tensor_t *x,
                    const int64_t *lo,
                    const pad_box_t *bx,
                    float value,
                    int64_t row)
{
    const int64_t yj = y->shape[3], yi = y->shape[2], c = y->shape[1];
    const int64_t j = row % yj, i = row / yj % yi, nc = row / (yj * yi);
    const int64_t n = nc / c, ch = nc % c, ks = y->stride[4];
    float *yr = ss_tensor_f32(y) + n * y->stride[0] + ch * y->stride[1] + i * y->stride[2] +
                j * y->stride[3];
    int inside = i >= bx->b0[0] && i < bx->b1[0] && j >= bx->b0[1] && j < bx->b1[1];
    int64_t k0 = inside ? bx->b0[2] : y->shape[4], k1 = inside ? bx->b1[2] : y->shape[4];
    run_1d(OP_FILL, yr, ks, NULL, 0, value, k0);
    if (k1 > k0) {
        const float *xr = ss_tensor_f32(x) + n * x->stride[0] + ch * x->stride[1] +
                          (i - lo[0]) * x->stride[2] + (j - lo[1]) * x->stride[3] +
                          (k0 - lo[2]) * x->stride[4];
        run_1d(OP_COPY, yr + k0 * ks, ks, xr, x->stride[4], 0.0f, k1 - k0);
    }
    run_1d(OP_FILL, yr + k1 * ks, ks, NULL, 0, value, y->shape[4] - k1);
}

static void
pad_apply(const ss_tensor_t *y, const ss_tensor_t *x, const int64_t *lo, float value, int nt)
{
    pad_box_t bx;
    pad_box(&bx, y, x, lo);
    const int64_t rows = y->shape[0] * y->shape[1] * y->shape[2] * y->shape[3];
    if (rows == 0 || y->shape[4] == 0) {
        return;
    }
    const int nt_eff = rows * y->shape[4] < PAR_MIN_ELEMS ? 1 : nt;
#pragma omp parallel for num_threads(nt_eff) schedule(static) default(none) shared(y, x, lo, bx)   \
    firstprivate(value, rows)
    for (int64_t r = 0; r < rows; r++) {
        pad_row(y, x, lo, &bx, value, r);
    }
}

static ss_status_t pad_check(const ss_tensor_t *y,
                             const char *yname,
                             const ss_tensor_t *x,
                             const char *xname,
                             const ss_layout_pad_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(check_exec(ex, err));
    SS_TRY(check_f32(y, yname, err));
    SS_TRY(check_f32(x, xname, err));
    if (p == NULL) {
        SS_FAIL(err, SS_EINVAL, "layout: pad parameters are NULL");
    }
    if (y->ndim != 5 || x->ndim != 5 || y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1]) {
        SS_FAIL(err, SS_ESHAPE, "layout: pad needs rank-5 %s and %s with the same N and C", yname,
                xname);
    }
    if (contiguous_overlap(y, x)) {
        SS_FAIL(err, SS_EINVAL, "layout: %s overlaps %s", yname, xname);
    }
    return SS_OK;
}

ss_status_t ss_layout_pad_fwd(ss_tensor_t *y,
                              const ss_tensor_t *x,
                              const ss_layout_pad_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(pad_check(y, "y", x, "x", p, ex, err));
    pad_apply(y, x, p->lo, p->value, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_layout_pad_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const ss_layout_pad_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(pad_check(dx, "dx", dy, "dy", p, ex, err));
    // The gradient of a pad by lo is the pad (crop) of dy by -lo with zeros.
    const int64_t neg[3] = {-p->lo[0], -p->lo[1], -p->lo[2]};
    pad_apply(dx, dy, neg, 0.0f, ex->nthreads);
    return SS_OK;
}
