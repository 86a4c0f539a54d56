#include "shardseg/linear.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "shardseg/blas.h"
#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#include "kernels_impl.h"

// Columns per work item of the bias-gradient column sums: 256 doubles of accumulators (2 KiB)
// and 1 KiB of each dy row per step.
#define DB_COLS 256

typedef struct {
    int64_t t, in, out; // tokens, input features, output features
} lin_dims_t;

static ss_status_t f32_contig(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    if (t == NULL || (t->data == NULL && ss_tensor_numel(t) > 0)) {
        SS_FAIL(err, SS_EINVAL, "linear: %s: missing tensor or data", name);
    }
    if (t->dtype != SS_F32) {
        SS_FAIL(err, SS_EINVAL, "linear: %s: dtype must be float32", name);
    }
    if (t->ndim < 1 || !ss_tensor_is_contiguous(t)) {
        SS_FAIL(err, SS_ESHAPE, "linear: %s: must be contiguous with at least one dim", name);
    }
    return SS_OK;
}

// x (..., in), w (out, in), y (..., out) with the same leading dims; fills d.
static ss_status_t dims_check(lin_dims_t *d,
                              const ss_tensor_t *y,
                              const char *yn,
                              const ss_tensor_t *x,
                              const char *xn,
                              const ss_tensor_t *w,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    if (ex == NULL || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "linear: exec with nthreads >= 1 required");
    }
    SS_TRY(f32_contig(y, yn, err));
    SS_TRY(f32_contig(x, xn, err));
    SS_TRY(f32_contig(w, "w", err));
    if (w->ndim != 2) {
        SS_FAIL(err, SS_ESHAPE, "linear: w must be (out, in), got %d dims", w->ndim);
    }
    d->out = w->shape[0];
    d->in = w->shape[1];
    char sx[96], sy[96], sw[96];
    ss_tensor_shape_str(x, sx, sizeof(sx));
    ss_tensor_shape_str(y, sy, sizeof(sy));
    ss_tensor_shape_str(w, sw, sizeof(sw));
    int lead_ok = x->ndim == y->ndim;
    for (int i = 0; lead_ok && i + 1 < x->ndim; i++) {
        lead_ok = x->shape[i] == y->shape[i];
    }
    if (!lead_ok || x->shape[x->ndim - 1] != d->in || y->shape[y->ndim - 1] != d->out) {
        SS_FAIL(err, SS_ESHAPE,
                "linear: %s %s, w %s and %s %s do not match (..., in), (out, in), "
                "(..., out)",
                xn, sx, sw, yn, sy);
    }
    d->t = d->in > 0 ? ss_tensor_numel(x) / d->in : ss_tensor_numel(y) / (d->out ? d->out : 1);
    if (d->t > INT_MAX || d->in > INT_MAX || d->out > INT_MAX) {
        SS_FAIL(err, SS_EUNSUPPORTED,
                "linear: dimensions above 2^31 - 1 exceed the BLAS interface");
    }
    return SS_OK;
}

static ss_status_t bias_check(const ss_tensor_t *b, const char *name, int64_t out, ss_error_t *err)
{
    if (b == NULL) {
        return SS_OK;
    }
    SS_TRY(f32_contig(b, name, err));
    if (ss_tensor_numel(b) != out) {
        SS_FAIL(err, SS_ESHAPE, "linear: %s must have out = %lld elements, got %lld", name,
                (long long)out, (long long)ss_tensor_numel(b));
    }
    return SS_OK;
}

size_t ss_linear_workspace_size(int64_t tokens, int64_t in, int64_t out, int nthreads)
{
    if (tokens < 0 || in < 0 || out < 0 || !ss__lin_small_suits(tokens)) {
        return 0;
    }
    return ss__lin_small_work_bytes(in, out, nthreads < 1 ? 1 : nthreads);
}

// 1 when the small-token kernels take this call: the CPU has them and ex->work holds theirs.
static int small_tokens(const lin_dims_t *d, const ss_exec_t *ex)
{
    return ss__lin_small_suits(d->t) && ex->work != NULL &&
           ex->work_bytes >= ss__lin_small_work_bytes(d->in, d->out, ex->nthreads);
}

// Every row of y (t, out) set to b: the GEMM then accumulates onto it (beta = 1), which costs one
// write pass instead of a separate read-modify-write pass after the GEMM.
static void fill_rows(float *y, const float *b, int64_t t, int64_t out, int nt)
{
#pragma omp parallel for num_threads(nt) schedule(static) default(none) shared(y, b, t, out)
    for (int64_t r = 0; r < t; r++) {
        memcpy(y + r * out, b, (size_t)out * sizeof(float));
    }
}

ss_status_t ss_linear_fwd(ss_tensor_t *y,
                          const ss_tensor_t *x,
                          const ss_tensor_t *w,
                          const ss_tensor_t *b,
                          const ss_exec_t *ex,
                          ss_error_t *err)
{
    lin_dims_t d;
    SS_TRY(dims_check(&d, y, "y", x, "x", w, ex, err));
    SS_TRY(bias_check(b, "b", d.out, err));
    if (d.t == 0 || d.out == 0) {
        return SS_OK;
    }
    float *yp = ss_tensor_f32(y);
    if (b) {
        fill_rows(yp, ss_tensor_f32(b), d.t, d.out, ex->nthreads);
    } else if (d.in == 0) {
        memset(yp, 0, (size_t)(d.t * d.out) * sizeof(float));
    }
    if (d.in > 0 && small_tokens(&d, ex)) {
        ss__lin_small_fwd(yp, ss_tensor_f32(x), ss_tensor_f32(w), d.t, d.in, d.out, b ? 1.0f : 0.0f,
                          ex->work, ex->nthreads);
    } else if (d.in > 0) {
        ss_gemm(SS_NO_TRANS, SS_TRANS, d.t, d.out, d.in, 1.0f, ss_tensor_f32(x), d.in,
                ss_tensor_f32(w), d.in, b ? 1.0f : 0.0f, yp, d.out, ex);
    }
    return SS_OK;
}

// c = beta * c with beta == 0 writing zeros (never reading c): for empty reductions.
static void scale_or_zero(float *c, int64_t n, float beta)
{
    for (int64_t i = 0; i < n; i++) {
        c[i] = beta == 0.0f ? 0.0f : beta * c[i];
    }
}

ss_status_t ss_linear_bwd_data(ss_tensor_t *dx,
                               const ss_tensor_t *dy,
                               const ss_tensor_t *w,
                               float beta,
                               const ss_exec_t *ex,
                               ss_error_t *err)
{
    lin_dims_t d;
    SS_TRY(dims_check(&d, dy, "dy", dx, "dx", w, ex, err));
    if (d.t == 0 || d.in == 0) {
        return SS_OK;
    }
    if (d.out == 0) {
        scale_or_zero(ss_tensor_f32(dx), d.t * d.in, beta);
        return SS_OK;
    }
    if (small_tokens(&d, ex)) {
        ss__lin_small_dx(ss_tensor_f32(dx), ss_tensor_f32(dy), ss_tensor_f32(w), d.t, d.in, d.out,
                         beta, ex->work, ex->nthreads);
        return SS_OK;
    }
    // dx (t, in) = dy (t, out) * w (out, in)
    ss_gemm(SS_NO_TRANS, SS_NO_TRANS, d.t, d.in, d.out, 1.0f, ss_tensor_f32(dy), d.out,
            ss_tensor_f32(w), d.in, beta, ss_tensor_f32(dx), d.in, ex);
    return SS_OK;
}

// acc[j] = sum_r a[r * ld + j] for j < nj (<= DB_COLS), rows in order, in double.
SS_CLONES static void col_sums(double *acc, const float *a, int64_t rows, int64_t ld, int64_t nj)
{
    memset(acc, 0, (size_t)nj * sizeof(double));
    for (int64_t r = 0; r < rows; r++) {
        const float *row = a + r * ld;
#pragma omp simd
        for (int64_t j = 0; j < nj; j++) {
            acc[j] += row[j];
        }
    }
}

// db[j] = beta * db[j] + sum_t dy[t][j]: each column block is summed by one thread over all rows
// in order, in double, so the result does not depend on the thread count.
static void bias_grad(float *db, const float *dy, int64_t t, int64_t out, float beta, int nt)
{
    int64_t nblk = (out + DB_COLS - 1) / DB_COLS;
#pragma omp parallel for num_threads(nt) schedule(static) default(none)                            \
    shared(db, dy, t, out, beta, nblk)
    for (int64_t k = 0; k < nblk; k++) {
        double acc[DB_COLS];
        int64_t j0 = k * DB_COLS, nj = out - j0 < DB_COLS ? out - j0 : DB_COLS;
        col_sums(acc, dy + j0, t, out, nj);
        for (int64_t j = 0; j < nj; j++) {
            double old = beta == 0.0f ? 0.0 : (double)beta * db[j0 + j];
            db[j0 + j] = (float)(old + acc[j]);
        }
    }
}

ss_status_t ss_linear_bwd_weight(ss_tensor_t *dw,
                                 ss_tensor_t *db,
                                 const ss_tensor_t *dy,
                                 const ss_tensor_t *x,
                                 float beta,
                                 const ss_exec_t *ex,
                                 ss_error_t *err)
{
    lin_dims_t d;
    SS_TRY(dims_check(&d, dy, "dy", x, "x", dw, ex, err));
    SS_TRY(bias_check(db, "db", d.out, err));
    if (d.out == 0) {
        return SS_OK;
    }
    if (d.t == 0) {
        scale_or_zero(ss_tensor_f32(dw), d.out * d.in, beta);
    } else if (d.in > 0 && small_tokens(&d, ex)) {
        ss__lin_small_dw(ss_tensor_f32(dw), ss_tensor_f32(dy), ss_tensor_f32(x), d.t, d.in, d.out,
                         beta, ex->work, ex->nthreads);
    } else if (d.in > 0) {
        // dw (out, in) = dy^T (out, t) * x (t, in)
        ss_gemm(SS_TRANS, SS_NO_TRANS, d.out, d.in, d.t, 1.0f, ss_tensor_f32(dy), d.out,
                ss_tensor_f32(x), d.in, beta, ss_tensor_f32(dw), d.in, ex);
    }
    if (db) {
        bias_grad(ss_tensor_f32(db), ss_tensor_f32(dy), d.t, d.out, beta, ex->nthreads);
    }
    return SS_OK;
}
