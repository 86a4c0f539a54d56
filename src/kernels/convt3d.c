#include "shardseg/convt3d.h"

#include <limits.h>
#include <string.h>

#include <omp.h>

#include "shardseg/blas.h"

// Tile budget in floats. A tile holds Cout*S rows of Y8 (or dY8) for `tile` columns: 64 Ki
// floats (256 KiB) stay in a core's L2 between the GEMM that writes them and the scatter that
// reads them (or the gather and the GEMM), which keeps the op at one pass over y.
#define TILE_FLOATS 65536
#define MIN_TILE    16
#define MAX_TILE    8192
// bwd_weight reduces over all columns. To run in parallel with a result that does not depend on
// the thread count, the column tiles are cut into a fixed number of groups (from the shapes
// alone), each summed into its own dW partial, and the partials are added in group order at the
// end. Up to WGT_GROUPS groups, as long as their partials fit in WGT_PARTIAL_BYTES.
#define WGT_GROUPS        8
#define WGT_PARTIAL_BYTES ((int64_t)8 << 20)
// When few groups fit (large weights), each group is further split over output-channel blocks
// of at least WGT_MIN_COLS GEMM columns, so that there are still ~WGT_GROUPS work items.
#define WGT_MIN_COLS 64

typedef struct {
    int64_t n, cin, cout, ii, jj, kk; // input sizes
    int64_t s0, s1, s2, ss;           // stride (== kernel) per dim and s0*s1*s2
    int64_t p;                        // ii*jj*kk columns per sample
    int64_t rows;                     // cout*ss rows of Y8
    int64_t tile;                     // columns per tile
    int64_t ntask;                    // n * tiles per sample
    int64_t groups;                   // bwd_weight reduction groups (>= 1)
    int64_t cob;                      // bwd_weight output channels per block
    size_t slice;                     // floats of tile scratch per thread
} cvt_geom_t;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t tile_cols(int64_t budget, int64_t rows, int64_t p)
{
    int64_t t = budget / (rows > 0 ? rows : 1) / MIN_TILE * MIN_TILE;
    t = t < MIN_TILE ? MIN_TILE : (t > MAX_TILE ? MAX_TILE : t);
    return min64(t, p > 0 ? p : 1);
}

// Derives every size from x's (N, Cin, I, J, K), w's (Cin, Cout, ...) and the stride. Tiles,
// groups and blocks depend on shapes only, never on the thread count, which is what makes the
// results thread-invariant.
static void
geom_init(cvt_geom_t *g, const int64_t *xs, const ss_tensor_t *w, const ss_convt3d_params_t *p)
{
    g->n = xs[0];
    g->cin = xs[1];
    g->ii = xs[2];
    g->jj = xs[3];
    g->kk = xs[4];
    g->cout = w->shape[1];
    g->s0 = p->stride[0];
    g->s1 = p->stride[1];
    g->s2 = p->stride[2];
    g->ss = g->s0 * g->s1 * g->s2;
    g->p = g->ii * g->jj * g->kk;
    g->rows = g->cout * g->ss;
    g->tile = tile_cols(TILE_FLOATS, g->rows, g->p);
    g->ntask = g->n * ((g->p + g->tile - 1) / g->tile);
    int64_t wbytes = g->cin * g->rows * (int64_t)sizeof(float);
    int64_t fit = WGT_PARTIAL_BYTES / (wbytes > 0 ? wbytes : 1);
    g->groups = min64(min64(WGT_GROUPS, fit > 1 ? fit : 1), g->ntask > 1 ? g->ntask : 1);
    int64_t nblk = min64((WGT_GROUPS + g->groups - 1) / g->groups,
                         (g->rows + WGT_MIN_COLS - 1) / WGT_MIN_COLS);
    g->cob = (g->cout + nblk - 1) / (nblk > 0 ? nblk : 1);
    g->slice = (size_t)(g->rows * g->tile + 15) / 16 * 16; // 64-byte multiple per thread
}

// Workspace layout: [db partials: groups * Cout doubles][dW partials of groups 1.. (group 0 sums
// straight into dw)][one tile slice per thread], each part a multiple of 64 bytes.
static size_t dbacc_bytes(const cvt_geom_t *g)
{
    return ((size_t)(g->groups * g->cout) * sizeof(double) + 63) / 64 * 64;
}

static size_t partial_floats(const cvt_geom_t *g)
{
    return (size_t)(g->cin * g->rows + 15) / 16 * 16;
}

static size_t tiles_offset(const cvt_geom_t *g)
{
    return dbacc_bytes(g) + (size_t)(g->groups - 1) * partial_floats(g) * sizeof(float);
}

static size_t geom_work_bytes(const cvt_geom_t *g, int nthreads)
{
    return tiles_offset(g) + (size_t)(nthreads > 0 ? nthreads : 1) * g->slice * sizeof(float);
}

static int params_ok(const ss_convt3d_params_t *p)
{
    return p != NULL && p->stride[0] >= 1 && p->stride[1] >= 1 && p->stride[2] >= 1;
}

size_t ss_convt3d_workspace_size(const ss_tensor_t *x,
                                 const ss_tensor_t *w,
                                 const ss_convt3d_params_t *p,
                                 int nthreads)
{
    if (x == NULL || w == NULL || !params_ok(p) || x->ndim != 5 || w->ndim != 5) {
        return 0;
    }
    cvt_geom_t g;
    geom_init(&g, x->shape, w, p);
    return geom_work_bytes(&g, nthreads);
}

// ---------------------------------------------------------------------------------------------
// Validation.

static ss_status_t check_f32(const ss_tensor_t *t, const char *name, int ndim, ss_error_t *err)
{
    if (t == NULL) {
        SS_FAIL(err, SS_EINVAL, "convt3d: %s is NULL", name);
    }
    if (t->dtype != SS_F32 || t->ndim != ndim) {
        SS_FAIL(err, SS_ESHAPE, "convt3d: %s must be a rank-%d float32 tensor (rank %d)", name,
                ndim, t->ndim);
    }
    if (!ss_tensor_is_contiguous(t)) {
        SS_FAIL(err, SS_EINVAL, "convt3d: %s must be contiguous; copy the view first", name);
    }
    if (t->data == NULL && ss_tensor_numel(t) > 0) {
        SS_FAIL(err, SS_EINVAL, "convt3d: %s has no data", name);
    }
    return SS_OK;
}

static int overlaps(const ss_tensor_t *a, const ss_tensor_t *b)
{
    if (a == NULL || b == NULL || a->data == NULL || b->data == NULL) {
        return 0;
    }
    const char *pa = a->data, *pb = b->data;
    return pa < pb + ss_tensor_nbytes(b) && pb < pa + ss_tensor_nbytes(a);
}

static ss_status_t
expect_shape(const ss_tensor_t *t, const char *name, const int64_t *want, int ndim, ss_error_t *err)
{
    for (int d = 0; d < ndim; d++) {
        if (t->shape[d] != want[d]) {
            char got[96];
            ss_tensor_shape_str(t, got, sizeof(got));
            SS_FAIL(err, SS_ESHAPE, "convt3d: %s has shape %s; dimension %d should be %lld", name,
                    got, d, (long long)want[d]);
        }
    }
    return SS_OK;
}

// Checks w against the stride and the input channels, fills g from the input-side shape xs,
// checks the output-side tensor ys (y or dy) and the workspace.
static ss_status_t geom_check(cvt_geom_t *g,
                              const int64_t *xs,
                              const ss_tensor_t *w,
                              const ss_tensor_t *ys,
                              const char *yname,
                              const ss_convt3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(check_f32(w, "w", 5, err));
    if (!params_ok(p)) {
        SS_FAIL(err, SS_EINVAL, "convt3d: stride must be >= 1 in every dimension");
    }
    if (ex == NULL || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "convt3d: exec must give nthreads >= 1");
    }
    int64_t wshape[5] = {xs[1], w->shape[1], p->stride[0], p->stride[1], p->stride[2]};
    SS_TRY(expect_shape(w, "w (Cin, Cout, s0, s1, s2)", wshape, 5, err));
    if (xs[1] < 1 || w->shape[1] < 1) {
        SS_FAIL(err, SS_ESHAPE, "convt3d: Cin and Cout must be >= 1");
    }
    geom_init(g, xs, w, p);
    if (g->p > INT_MAX || g->rows > INT_MAX || g->cin > INT_MAX) {
        SS_FAIL(err, SS_EUNSUPPORTED, "convt3d: %lld voxels per sample exceed BLAS int indexing",
                (long long)g->p);
    }
    int64_t yshape[5] = {g->n, g->cout, g->ii * g->s0, g->jj * g->s1, g->kk * g->s2};
    SS_TRY(expect_shape(ys, yname, yshape, 5, err));
    size_t need = geom_work_bytes(g, ex->nthreads);
    if (ex->work_bytes < need || (need > 0 && ex->work == NULL)) {
        SS_FAIL(err, SS_EINVAL,
                "convt3d: workspace of %zu bytes, %zu needed; size it with "
                "ss_convt3d_workspace_size()",
                ex->work_bytes, need);
    }
    return SS_OK;
}

static ss_status_t fwd_check(cvt_geom_t *g,
                             const ss_tensor_t *y,
                             const ss_tensor_t *x,
                             const ss_tensor_t *w,
                             const ss_tensor_t *b,
                             const ss_convt3d_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(check_f32(y, "y", 5, err));
    SS_TRY(check_f32(x, "x", 5, err));
    SS_TRY(geom_check(g, x->shape, w, y, "y", p, ex, err));
    if (b != NULL) {
        SS_TRY(check_f32(b, "b", 1, err));
        SS_TRY(expect_shape(b, "b (Cout)", &g->cout, 1, err));
    }
    if (overlaps(y, x) || overlaps(y, w) || overlaps(y, b)) {
        SS_FAIL(err, SS_EINVAL, "convt3d: y overlaps an input");
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Tile scatter and gather. A tile holds rows r = co*S + (a*s1 + b)*s2 + c of Y8 for the columns
// [p0, p1) of one sample, with leading dimension ldt. The columns are walked as runs along k that
// stay inside one (i, j) row, so each run maps to s0*s1 output rows per channel.

typedef struct {
    int64_t i, j, k0, len;
} cvt_run_t;

static cvt_run_t next_run(const cvt_geom_t *g, int64_t p, int64_t p1)
{
    cvt_run_t r;
    r.i = p / (g->jj * g->kk);
    r.j = p / g->kk % g->jj;
    r.k0 = p % g->kk;
    r.len = min64(g->kk - r.k0, p1 - p);
    return r;
}

static int64_t
out_off(const cvt_geom_t *g, int64_t n, int64_t co, int64_t oi, int64_t oj, int64_t ok)
{
    int64_t o0 = g->ii * g->s0, o1 = g->jj * g->s1, o2 = g->kk * g->s2;
    return (((n * g->cout + co) * o0 + oi) * o1 + oj) * o2 + ok;
}

static void put_row(float *restrict dst,
                    const float *restrict src,
                    int64_t ldt,
                    int64_t len,
                    int64_t s2,
                    float bias)
{
    if (s2 == 2) {
        const float *restrict src1 = src + ldt;
#pragma omp simd
        for (int64_t k = 0; k < len; k++) {
            dst[2 * k] = src[k] + bias;
            dst[2 * k + 1] = src1[k] + bias;
        }
        return;
    }
    for (int64_t c = 0; c < s2; c++) {
        for (int64_t k = 0; k < len; k++) {
            dst[k * s2 + c] = src[c * ldt + k] + bias;
        }
    }
}

static void
get_row(float *restrict dst, int64_t ldt, const float *restrict src, int64_t len, int64_t s2)
{
    if (s2 == 2) {
        float *restrict dst1 = dst + ldt;
#pragma omp simd
        for (int64_t k = 0; k < len; k++) {
            dst[k] = src[2 * k];
            dst1[k] = src[2 * k + 1];
        }
        return;
    }
    for (int64_t c = 0; c < s2; c++) {
        for (int64_t k = 0; k < len; k++) {
            dst[c * ldt + k] = src[k * s2 + c];
        }
    }
}

static void scatter_tile(float *y,
                         const float *t,
                         int64_t ldt,
                         const float *bias,
                         const cvt_geom_t *g,
                         int64_t n,
                         int64_t p0,
                         int64_t p1)
{
    for (int64_t p = p0; p < p1;) {
        cvt_run_t r = next_run(g, p, p1);
        for (int64_t co = 0; co < g->cout; co++) {
            float bv = bias != NULL ? bias[co] : 0.0f;
            for (int64_t a = 0; a < g->s0; a++) {
                for (int64_t b = 0; b < g->s1; b++) {
                    float *dst =
                        y + out_off(g, n, co, r.i * g->s0 + a, r.j * g->s1 + b, r.k0 * g->s2);
                    const float *src = t + (co * g->ss + (a * g->s1 + b) * g->s2) * ldt + p - p0;
                    put_row(dst, src, ldt, r.len, g->s2, bv);
                }
            }
        }
        p += r.len;
    }
}

// Gathers channels [co0, co1) of dy into tile rows (co - co0)*S + (a*s1 + b)*s2 + c.
static void gather_tile(float *t,
                        int64_t ldt,
                        const float *dy,
                        const cvt_geom_t *g,
                        int64_t n,
                        int64_t p0,
                        int64_t p1,
                        int64_t co0,
                        int64_t co1)
{
    for (int64_t p = p0; p < p1;) {
        cvt_run_t r = next_run(g, p, p1);
        for (int64_t co = co0; co < co1; co++) {
            for (int64_t a = 0; a < g->s0; a++) {
                for (int64_t b = 0; b < g->s1; b++) {
                    const float *src =
                        dy + out_off(g, n, co, r.i * g->s0 + a, r.j * g->s1 + b, r.k0 * g->s2);
                    float *dst = t + ((co - co0) * g->ss + (a * g->s1 + b) * g->s2) * ldt + p - p0;
                    get_row(dst, ldt, src, r.len, g->s2);
                }
            }
        }
        p += r.len;
    }
}

// One GEMM on the calling thread. Inside an active team ss_gemm_serial is single-threaded; a
// team of one is not an active parallel region, so there OpenBLAS would fall back to its global
// thread count: pinning it to one thread through ss_gemm keeps the nthreads == 1 path identical.
static void tile_gemm(ss_trans_t ta,
                      ss_trans_t tb,
                      int64_t m,
                      int64_t n,
                      int64_t k,
                      const float *a,
                      int64_t lda,
                      const float *b,
                      int64_t ldb,
                      float beta,
                      float *c,
                      int64_t ldc,
                      int in_team)
{
    if (in_team) {
        ss_gemm_serial(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    } else {
        ss_exec_t one = ss_exec_serial();
        ss_gemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc, &one);
    }
}

// ---------------------------------------------------------------------------------------------
// Forward and bwd_data: independent (sample, column tile) tasks.

static void fwd_tiles(float *y,
                      const float *x,
                      const float *w,
                      const float *bias,
                      const cvt_geom_t *g,
                      float *work,
                      int nt)
{
    const int64_t ntile = (g->p + g->tile - 1) / g->tile;
#pragma omp parallel num_threads(nt) default(none) shared(y, x, w, bias, g, work)                  \
    firstprivate(nt, ntile)
    {
        float *t = work + (size_t)omp_get_thread_num() * g->slice;
#pragma omp for schedule(static)
        for (int64_t task = 0; task < g->ntask; task++) {
            int64_t n = task / ntile;
            int64_t p0 = task % ntile * g->tile;
            int64_t len = min64(g->tile, g->p - p0);
            // Y8 tile (Cout*S, len) = W^T (Cout*S, Cin) x X[n][:, p0:p0+len]
            tile_gemm(SS_TRANS, SS_NO_TRANS, g->rows, len, g->cin, w, g->rows,
                      x + n * g->cin * g->p + p0, g->p, 0.0f, t, len, nt > 1);
            scatter_tile(y, t, len, bias, g, n, p0, p0 + len);
        }
    }
}

static void
bwd_data_tiles(float *dx, const float *dy, const float *w, const cvt_geom_t *g, float *work, int nt)
{
    const int64_t ntile = (g->p + g->tile - 1) / g->tile;
#pragma omp parallel num_threads(nt) default(none) shared(dx, dy, w, g, work)                      \
    firstprivate(nt, ntile)
    {
        float *t = work + (size_t)omp_get_thread_num() * g->slice;
#pragma omp for schedule(static)
        for (int64_t task = 0; task < g->ntask; task++) {
            int64_t n = task / ntile;
            int64_t p0 = task % ntile * g->tile;
            int64_t len = min64(g->tile, g->p - p0);
            gather_tile(t, len, dy, g, n, p0, p0 + len, 0, g->cout);
            // dX[n][:, p0:p0+len] (Cin, len) = W (Cin, Cout*S) x dY8 tile (Cout*S, len)
            tile_gemm(SS_NO_TRANS, SS_NO_TRANS, g->cin, len, g->rows, w, g->rows, t, len, 0.0f,
                      dx + n * g->cin * g->p + p0, g->p, nt > 1);
        }
    }
}

ss_status_t ss_convt3d_fwd(ss_tensor_t *y,
                           const ss_tensor_t *x,
                           const ss_tensor_t *w,
                           const ss_tensor_t *b,
                           const ss_convt3d_params_t *p,
                           const ss_exec_t *ex,
                           ss_error_t *err)
{
    cvt_geom_t g;
    SS_TRY(fwd_check(&g, y, x, w, b, p, ex, err));
    if (ss_tensor_numel(y) == 0) {
        return SS_OK;
    }
    float *work = (float *)((char *)ex->work + tiles_offset(&g));
    fwd_tiles(ss_tensor_f32(y), ss_tensor_f32(x), ss_tensor_f32(w),
              b != NULL ? ss_tensor_f32(b) : NULL, &g, work, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_convt3d_bwd_data(ss_tensor_t *dx,
                                const ss_tensor_t *dy,
                                const ss_tensor_t *w,
                                const ss_convt3d_params_t *p,
                                const ss_exec_t *ex,
                                ss_error_t *err)
{
    cvt_geom_t g;
    SS_TRY(check_f32(dx, "dx", 5, err));
    SS_TRY(check_f32(dy, "dy", 5, err));
    SS_TRY(geom_check(&g, dx->shape, w, dy, "dy", p, ex, err));
    if (overlaps(dx, dy) || overlaps(dx, w)) {
        SS_FAIL(err, SS_EINVAL, "convt3d: dx overlaps an input");
    }
    if (ss_tensor_numel(dx) == 0) {
        return SS_OK;
    }
    float *work = (float *)((char *)ex->work + tiles_offset(&g));
    bwd_data_tiles(ss_tensor_f32(dx), ss_tensor_f32(dy), ss_tensor_f32(w), &g, work, ex->nthreads);
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// bwd_weight: dW (Cin, Cout*S) = sum over tiles of X tile (Cin, len) x dY8 tile^T (len, Cout*S).
// Work item (group, channel block) sums its group's tiles, in order, into the block's columns of
// the group's partial; the partials are then added in group order. Every dW and db element is
// thus accumulated in the same order for any thread count.

// Adds the sums of channels [co0, co1) of a gathered tile to acc. Eight independent double
// lanes, combined in a fixed order: one serial chain of dependent adds would cost ~4 cycles per
// element, as much as the tile's GEMM.
#define SUM_LANES 8

static void sum_rows(
    double *acc, const float *t, int64_t ldt, int64_t len, int64_t co0, int64_t co1, int64_t ss)
{
    for (int64_t co = co0; co < co1; co++) {
        double lane[SUM_LANES] = {0};
        for (int64_t r = 0; r < ss; r++) {
            const float *row = t + ((co - co0) * ss + r) * ldt;
            int64_t k = 0;
            for (; k + SUM_LANES <= len; k += SUM_LANES) {
                for (int l = 0; l < SUM_LANES; l++) {
                    lane[l] += row[k + l];
                }
            }
            for (; k < len; k++) {
                lane[k % SUM_LANES] += row[k];
            }
        }
        double s = 0;
        for (int l = 0; l < SUM_LANES; l++) {
            s += lane[l];
        }
        acc[co] += s;
    }
}

typedef struct {
    float *dw;       // group 0's partial (the output)
    float *partials; // groups 1.. partials, partial_floats() apart
    double *dbacc;   // groups * cout, or NULL when db is not wanted
    float *tiles;    // per-thread tile scratch
} wgt_bufs_t;

static void wgt_item(const wgt_bufs_t *bu,
                     const float *x,
                     const float *dy,
                     const cvt_geom_t *g,
                     int64_t grp,
                     int64_t blk,
                     float *t,
                     int in_team)
{
    int64_t co0 = blk * g->cob, co1 = min64(g->cout, co0 + g->cob);
    int64_t first, count;
    ss_split_range(g->ntask, (int)g->groups, (int)grp, &first, &count);
    float *dst = grp == 0 ? bu->dw : bu->partials + (size_t)(grp - 1) * partial_floats(g);
    const int64_t ntile = (g->p + g->tile - 1) / g->tile;
    for (int64_t task = first; task < first + count; task++) {
        int64_t n = task / ntile, p0 = task % ntile * g->tile;
        int64_t len = min64(g->tile, g->p - p0);
        gather_tile(t, len, dy, g, n, p0, p0 + len, co0, co1);
        if (bu->dbacc != NULL) {
            sum_rows(bu->dbacc + grp * g->cout, t, len, len, co0, co1, g->ss);
        }
        tile_gemm(SS_NO_TRANS, SS_TRANS, g->cin, (co1 - co0) * g->ss, len,
                  x + n * g->cin * g->p + p0, g->p, t, len, task == first ? 0.0f : 1.0f,
                  dst + co0 * g->ss, g->rows, in_team);
    }
}

static void
bwd_weight_items(const wgt_bufs_t *bu, const float *x, const float *dy, const cvt_geom_t *g, int nt)
{
    const int64_t nblk = (g->cout + g->cob - 1) / g->cob;
    const int64_t nitem = g->groups * nblk;
    const int64_t nw = g->cin * g->rows;
#pragma omp parallel num_threads(nt) default(none) shared(bu, x, dy, g)                            \
    firstprivate(nt, nblk, nitem, nw)
    {
        float *t = bu->tiles + (size_t)omp_get_thread_num() * g->slice;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < nitem; item++) {
            wgt_item(bu, x, dy, g, item / nblk, item % nblk, t, nt > 1);
        }
        // The implicit barrier above completes every partial before they are added.
#pragma omp for schedule(static)
        for (int64_t e = 0; e < nw; e++) {
            float s = bu->dw[e];
            for (int64_t grp = 1; grp < g->groups; grp++) {
                s += bu->partials[(size_t)(grp - 1) * partial_floats(g) + (size_t)e];
            }
            bu->dw[e] = s;
        }
    }
}

static ss_status_t bwd_weight_check(cvt_geom_t *g,
                                    const ss_tensor_t *dw,
                                    const ss_tensor_t *db,
                                    const ss_tensor_t *x,
                                    const ss_tensor_t *dy,
                                    const ss_convt3d_params_t *p,
                                    const ss_exec_t *ex,
                                    ss_error_t *err)
{
    SS_TRY(check_f32(x, "x", 5, err));
    SS_TRY(check_f32(dy, "dy", 5, err));
    SS_TRY(geom_check(g, x->shape, dw, dy, "dy", p, ex, err));
    if (db != NULL) {
        SS_TRY(check_f32(db, "db", 1, err));
        SS_TRY(expect_shape(db, "db (Cout)", &g->cout, 1, err));
    }
    if (overlaps(dw, x) || overlaps(dw, dy) || overlaps(db, x) || overlaps(db, dy) ||
        overlaps(dw, db)) {
        SS_FAIL(err, SS_EINVAL, "convt3d: dw or db overlaps another tensor");
    }
    return SS_OK;
}

ss_status_t ss_convt3d_bwd_weight(ss_tensor_t *dw,
                                  ss_tensor_t *db,
                                  const ss_tensor_t *x,
                                  const ss_tensor_t *dy,
                                  const ss_convt3d_params_t *p,
                                  const ss_exec_t *ex,
                                  ss_error_t *err)
{
    cvt_geom_t g;
    SS_TRY(bwd_weight_check(&g, dw, db, x, dy, p, ex, err));
    wgt_bufs_t bu = {ss_tensor_f32(dw), (float *)((char *)ex->work + dbacc_bytes(&g)),
                     db != NULL ? (double *)ex->work : NULL,
                     (float *)((char *)ex->work + tiles_offset(&g))};
    if (bu.dbacc != NULL) {
        memset(bu.dbacc, 0, (size_t)(g.groups * g.cout) * sizeof(double));
    }
    if (g.ntask == 0) {
        memset(dw->data, 0, ss_tensor_nbytes(dw));
    } else {
        bwd_weight_items(&bu, ss_tensor_f32(x), ss_tensor_f32(dy), &g, ex->nthreads);
    }
    for (int64_t co = 0; bu.dbacc != NULL && co < g.cout; co++) {
        double s = 0;
        for (int64_t grp = 0; grp < g.groups; grp++) {
            s += bu.dbacc[grp * g.cout + co];
        }
        ss_tensor_f32(db)[co] = (float)s;
    }
    return SS_OK;
}
