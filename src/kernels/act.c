#include "shardseg/act.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "shardseg/exec.h"
#include "shardseg/rng.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#include "kernels_impl.h"

// Elements per work item of the elementwise ops (64 KiB of floats): enough to amortise the
// scheduling, small enough to balance two threads on small tensors.
#define BLK 16384
// Spatial positions per softmax work item: the block's C rows stay in L1/L2 between passes.
#define SM_BLK 512

// ---- vectorisable math ------------------------------------------------------------------------
// Written without branches or libm calls so that `omp simd` loops vectorise at -O2 without
// -ffast-math: selects use copysign or integer compares (a float compare feeding a computation
// is not if-converted under -ftrapping-math).

// exp(y) for y in [-708, 0]: y = n ln2 + r, |r| <= ln2/2, degree-9 Taylor polynomial of exp(r)
// (truncation < 1e-11 relative) evaluated by Estrin's scheme (short dependency chains: the loop
// is latency bound with Horner), 2^n assembled in the exponent bits from the rounding shift.
static inline double exp_nonpos(double y)
{
    const double shift = 0x1.8p52; // adding it rounds to an integer held in the low mantissa bits
    double k = y * 0x1.71547652b82fep0 + shift;
    double n = k - shift;
    double r = (y - n * 0x1.62e42fefa39efp-1) - n * 0x1.abc9e3b39803fp-56;
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double p01 = 1.0 + r, p23 = 0.5 + r * (1.0 / 6.0);
    double p45 = 1.0 / 24.0 + r * (1.0 / 120.0), p67 = 1.0 / 720.0 + r * (1.0 / 5040.0);
    double p89 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
    double p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67) + r8 * p89;
    uint64_t kb;
    memcpy(&kb, &k, sizeof(kb));
    uint64_t sb = (kb << 52) + ((uint64_t)1023 << 52); // n's two's complement bits + bias
    double sc;
    memcpy(&sc, &sb, sizeof(sc));
    return p * sc;
}

// erfc(t) for t in [0, 13.9], as u exp(-t^2) P(u) with u = 1 / (1 + 0.3 t): P is a degree-11
// least-squares fit in Chebyshev nodes, weighted for relative error, of erfc(t) exp(t^2) / u over
// u in [1/(1 + 0.3*13.9), 1] mapped to s in [-1, 1]; max relative error 4.9e-10 (checked against
// Python's math.erfc on 4e5 points). Recipe: numpy.polynomial.chebyshev.chebfit(s, f, 11, w=1/f)
// then cheb2poly; evaluated by Estrin's scheme. *e receives exp(-t^2) (GELU's backward reuses it
// for the normal density).
static inline double erfc_nonneg(double t, double *e)
{
    double u = 1.0 / (1.0 + 0.3 * t);
    double s = u * 2.4796163069544366 - 1.4796163069544366;
    double s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
    double q0 = (0.3868476234198342 + s * 0.2972595163100632) +
                s2 * (0.18347417319433507 + s * 0.0897479501163048);
    double q1 = (0.03345285878739473 + s * 0.008569260304532787) +
                s2 * (0.000977503153037134 - s * 0.00022936952579603943);
    double q2 = (-0.00010459219638626785 - s * 1.6165512823083556e-06) +
                s2 * (6.0161428727781204e-06 + s * 6.773304126704812e-07);
    double p = q0 + s4 * q1 + s8 * q2;
    *e = exp_nonpos(-t * t);
    return u * *e * p;
}

// |x| clamped to 19.5, where GELU and its derivative have reached their float limits even after
// multiplying by the unclamped x (Phi(-19.5) * FLT_MAX < 1e-45); NaN stays NaN (so it propagates
// through both passes).
static inline float abs_clamped(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof(b));
    b &= 0x7fffffffu;
    // b in (bits(19.5f), bits(inf)] as one unsigned compare turned into a mask (GCC does not
    // if-convert an && or this select here, and the loop would stay scalar)
    uint32_t big = 0u - (uint32_t)((b - 0x419c0001u) < (0x7f800000u - 0x419c0000u));
    b = (b & ~big) | (0x419c0000u & big);
    float a;
    memcpy(&a, &b, sizeof(a));
    return a;
}

// Phi(x) = m + sign * erfc(|x|/sqrt2)/2 with m = 1 for x >= 0 (then sign = -1), m = 0 for x < 0:
// the tail is never formed as 1 - (something close to 1).
static inline double gauss_cdf(double x, double ax, double *e)
{
    double h = 0.5 * erfc_nonneg(ax * 0.70710678118654752440, e);
    return (0.5 + copysign(0.5, x)) + copysign(h, -x);
}

SS_CLONES static void gelu_erf_fwd_blk(float *y, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double xd = x[i], e;
        y[i] = (float)(xd * gauss_cdf(xd, abs_clamped(x[i]), &e));
    }
}

// d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
SS_CLONES static void gelu_erf_bwd_blk(float *dx, const float *dy, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double xd = x[i], ax = abs_clamped(x[i]), e;
        double cdf = gauss_cdf(xd, ax, &e);
        // x phi(x) with the clamped x: the term is 0 in float beyond the clamp, and inf stays out
        dx[i] = (float)((double)dy[i] * (cdf + copysign(ax, xd) * e * 0.39894228040143267794));
    }
}

// tanh form as x * sigmoid(2a), a = sqrt(2/pi) (x + 0.044715 x^3): with q = exp(-2|a|) <= 1,
// sigmoid(2a) = 1/(1+q) for a >= 0 and q/(1+q) for a < 0, both without cancellation, and
// sigmoid (1 - sigmoid) = q / (1+q)^2.
static inline double tanh_gate(double xc, double *dgate)
{
    const double kb = 0.79788456080286535588, kk = 0.044715;
    double x2 = xc * xc, a = kb * (xc + kk * x2 * xc);
    double q = exp_nonpos(-2.0 * fabs(a));
    double sp = 1.0 / (1.0 + q), m = 0.5 + copysign(0.5, a);
    *dgate = 2.0 * q * sp * sp * kb * (1.0 + 3.0 * kk * x2);
    return sp * (m + (1.0 - m) * q);
}

SS_CLONES static void gelu_tanh_fwd_blk(float *y, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double xc = copysign((double)abs_clamped(x[i]), (double)x[i]), dg;
        y[i] = (float)((double)x[i] * tanh_gate(xc, &dg));
    }
}

SS_CLONES static void gelu_tanh_bwd_blk(float *dx, const float *dy, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double xc = copysign((double)abs_clamped(x[i]), (double)x[i]), dg;
        double g = tanh_gate(xc, &dg);
        dx[i] = (float)((double)dy[i] * (g + xc * dg));
    }
}

// ---- validation -------------------------------------------------------------------------------

static ss_status_t f32_check(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    if (t == NULL || (t->data == NULL && ss_tensor_numel(t) > 0)) {
        SS_FAIL(err, SS_EINVAL, "%s: missing tensor or data", name);
    }
    if (t->dtype != SS_F32) {
        SS_FAIL(err, SS_EINVAL, "%s: dtype must be float32", name);
    }
    return SS_OK;
}

static ss_status_t exec_check(const ss_exec_t *ex, const char *op, ss_error_t *err)
{
    if (ex == NULL || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "%s: exec with nthreads >= 1 required", op);
    }
    return SS_OK;
}

// out, a and (optional) b: contiguous float32 tensors of one shape.
static ss_status_t ew_check(const ss_tensor_t *out,
                            const char *on,
                            const ss_tensor_t *a,
                            const char *an,
                            const ss_tensor_t *b,
                            const char *bn,
                            const ss_exec_t *ex,
                            const char *op,
                            ss_error_t *err)
{
    SS_TRY(exec_check(ex, op, err));
    const ss_tensor_t *ts[3] = {out, a, b};
    const char *names[3] = {on, an, bn};
    for (int i = 0; i < 3; i++) {
        if (ts[i] == NULL && i == 2) {
            continue;
        }
        SS_TRY(f32_check(ts[i], names[i], err));
        if (!ss_tensor_is_contiguous(ts[i])) {
            SS_FAIL(err, SS_ESHAPE, "%s: %s must be contiguous", op, names[i]);
        }
        if (i > 0 && !ss_tensor_same_shape(ts[i], out)) {
            char s0[96], s1[96];
            ss_tensor_shape_str(out, s0, sizeof(s0));
            ss_tensor_shape_str(ts[i], s1, sizeof(s1));
            SS_FAIL(err, SS_ESHAPE, "%s: %s %s and %s %s must have the same shape", op, on, s0,
                    names[i], s1);
        }
    }
    return SS_OK;
}

static int64_t nblocks(int64_t n)
{
    return (n + BLK - 1) / BLK;
}

static int64_t blk_len(int64_t n, int64_t b)
{
    return n - b * BLK < BLK ? n - b * BLK : BLK;
}

// ---- GELU -------------------------------------------------------------------------------------

ss_status_t ss_gelu_fwd(ss_tensor_t *y,
                        const ss_tensor_t *x,
                        ss_gelu_approx_t approx,
                        const ss_exec_t *ex,
                        ss_error_t *err)
{
    SS_TRY(ew_check(y, "y", x, "x", NULL, NULL, ex, "gelu", err));
    if (approx != SS_GELU_ERF && approx != SS_GELU_TANH) {
        SS_FAIL(err, SS_EINVAL, "gelu: unknown approximation %d", (int)approx);
    }
    float *yp = ss_tensor_f32(y);
    const float *xp = ss_tensor_f32(x);
    int64_t n = ss_tensor_numel(x), nb = nblocks(n);
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(yp, xp, n, nb, approx)
    for (int64_t b = 0; b < nb; b++) {
        if (approx == SS_GELU_ERF) {
            gelu_erf_fwd_blk(yp + b * BLK, xp + b * BLK, blk_len(n, b));
        } else {
            gelu_tanh_fwd_blk(yp + b * BLK, xp + b * BLK, blk_len(n, b));
        }
    }
    return SS_OK;
}

ss_status_t ss_gelu_bwd(ss_tensor_t *dx,
                        const ss_tensor_t *dy,
                        const ss_tensor_t *x,
                        ss_gelu_approx_t approx,
                        const ss_exec_t *ex,
                        ss_error_t *err)
{
    SS_TRY(ew_check(dx, "dx", dy, "dy", x, "x", ex, "gelu", err));
    if (approx != SS_GELU_ERF && approx != SS_GELU_TANH) {
        SS_FAIL(err, SS_EINVAL, "gelu: unknown approximation %d", (int)approx);
    }
    float *dxp = ss_tensor_f32(dx);
    const float *dyp = ss_tensor_f32(dy), *xp = ss_tensor_f32(x);
    int64_t n = ss_tensor_numel(x), nb = nblocks(n);
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(dxp, dyp, xp, n, nb, approx)
    for (int64_t b = 0; b < nb; b++) {
        if (approx == SS_GELU_ERF) {
            gelu_erf_bwd_blk(dxp + b * BLK, dyp + b * BLK, xp + b * BLK, blk_len(n, b));
        } else {
            gelu_tanh_bwd_blk(dxp + b * BLK, dyp + b * BLK, xp + b * BLK, blk_len(n, b));
        }
    }
    return SS_OK;
}

// ---- ReLU / LeakyReLU -------------------------------------------------------------------------

// 1 where x > 0, else slope (PyTorch's x > 0 test: +0, -0, negatives and NaN take slope),
// selected with integer masks (a float compare feeding a multiply is not if-converted for SSE2).
static inline float leaky_factor(float x, float slope)
{
    uint32_t xb, sb, one = 0x3f800000u;
    memcpy(&xb, &x, sizeof(xb));
    memcpy(&sb, &slope, sizeof(sb));
    uint32_t use_slope = (uint32_t)((xb - 1u) < 0x7f800000u) - 1u; // 0 for x in (0, +inf]
    uint32_t fb = one ^ ((one ^ sb) & use_slope);
    float f;
    memcpy(&f, &fb, sizeof(f));
    return f;
}

SS_CLONES void ss__leaky_blk(float *y, const float *x, int64_t n, float slope)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] * leaky_factor(x[i], slope);
    }
}

// `x < 0 ? 0 : x` keeps NaN (PyTorch clamp_min semantics).
SS_CLONES void ss__relu_blk(float *y, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
    }
}

SS_CLONES static void
leaky_bwd_blk(float *dx, const float *dy, const float *x, int64_t n, float slope)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        dx[i] = dy[i] * leaky_factor(x[i], slope);
    }
}

ss_status_t ss_relu_fwd(ss_tensor_t *y, const ss_tensor_t *x, const ss_exec_t *ex, ss_error_t *err)
{
    SS_TRY(ew_check(y, "y", x, "x", NULL, NULL, ex, "relu", err));
    float *yp = ss_tensor_f32(y);
    const float *xp = ss_tensor_f32(x);
    int64_t n = ss_tensor_numel(x), nb = nblocks(n);
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(yp, xp, n, nb)
    for (int64_t b = 0; b < nb; b++) {
        ss__relu_blk(yp + b * BLK, xp + b * BLK, blk_len(n, b));
    }
    return SS_OK;
}

// PyTorch threshold_backward: exactly 0 where y <= 0, even for an infinite dy.
SS_CLONES static void relu_bwd_blk(float *dx, const float *dy, const float *y, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

static void
leaky_bwd_run(float *dxp, const float *dyp, const float *xp, int64_t n, float slope, int nt)
{
    int64_t nb = nblocks(n);
#pragma omp parallel for num_threads(nt) schedule(static) default(none)                            \
    shared(dxp, dyp, xp, n, nb, slope)
    for (int64_t b = 0; b < nb; b++) {
        leaky_bwd_blk(dxp + b * BLK, dyp + b * BLK, xp + b * BLK, blk_len(n, b), slope);
    }
}

ss_status_t ss_relu_bwd(ss_tensor_t *dx,
                        const ss_tensor_t *dy,
                        const ss_tensor_t *y,
                        const ss_exec_t *ex,
                        ss_error_t *err)
{
    SS_TRY(ew_check(dx, "dx", dy, "dy", y, "y", ex, "relu", err));
    float *dxp = ss_tensor_f32(dx);
    const float *dyp = ss_tensor_f32(dy), *yp = ss_tensor_f32(y);
    int64_t n = ss_tensor_numel(y), nb = nblocks(n);
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(dxp, dyp, yp, n, nb)
    for (int64_t b = 0; b < nb; b++) {
        relu_bwd_blk(dxp + b * BLK, dyp + b * BLK, yp + b * BLK, blk_len(n, b));
    }
    return SS_OK;
}

ss_status_t ss_leaky_relu_fwd(
    ss_tensor_t *y, const ss_tensor_t *x, float slope, const ss_exec_t *ex, ss_error_t *err)
{
    SS_TRY(ew_check(y, "y", x, "x", NULL, NULL, ex, "leaky_relu", err));
    if (!isfinite(slope)) {
        SS_FAIL(err, SS_EINVAL, "leaky_relu: slope must be finite");
    }
    float *yp = ss_tensor_f32(y);
    const float *xp = ss_tensor_f32(x);
    int64_t n = ss_tensor_numel(x), nb = nblocks(n);
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(yp, xp, n, nb, slope)
    for (int64_t b = 0; b < nb; b++) {
        ss__leaky_blk(yp + b * BLK, xp + b * BLK, blk_len(n, b), slope);
    }
    return SS_OK;
}

ss_status_t ss_leaky_relu_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const ss_tensor_t *x,
                              float slope,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(ew_check(dx, "dx", dy, "dy", x, "x", ex, "leaky_relu", err));
    if (!isfinite(slope)) {
        SS_FAIL(err, SS_EINVAL, "leaky_relu: slope must be finite");
    }
    leaky_bwd_run(ss_tensor_f32(dx), ss_tensor_f32(dy), ss_tensor_f32(x), ss_tensor_numel(x), slope,
                  ex->nthreads);
    return SS_OK;
}

// ---- dropout ----------------------------------------------------------------------------------

static ss_status_t dropout_params_check(const ss_dropout_params_t *p, ss_error_t *err)
{
    if (p == NULL || !(p->p >= 0.0f && p->p <= 1.0f)) {
        SS_FAIL(err, SS_EINVAL, "dropout: p must be in [0, 1]");
    }
    if (p->row_len < 0 || (p->row_len > 0 && p->row_stride < p->row_len)) {
        SS_FAIL(err, SS_EINVAL, "dropout: row_len %lld must be >= 0 and row_stride %lld >= row_len",
                (long long)p->row_len, (long long)p->row_stride);
    }
    return SS_OK;
}

// out[i] = in[i] * scale where u(global index of i) >= p, else 0, for local i in [i0, i0 + n).
static void dropout_blk(
    float *out, const float *in, int64_t i0, int64_t n, const ss_dropout_params_t *p, float scale)
{
    int64_t rl = p->row_len > 0 ? p->row_len : INT64_MAX;
    int64_t row = i0 / rl, col = i0 % rl;
    for (int64_t i = 0; i < n; i++) {
        uint64_t g = p->base + (uint64_t)row * (uint64_t)p->row_stride + (uint64_t)col;
        out[i] = ss_rng_uniform(p->rng, g) >= p->p ? in[i] * scale : 0.0f;
        if (++col == rl) {
            col = 0;
            row++;
        }
    }
}

static void
dropout_run(float *out, const float *in, int64_t n, const ss_dropout_params_t *p, int nt)
{
    // PyTorch scales by 1/(1 - p) in float; p == 1 drops everything (scale unused).
    float scale = p->p < 1.0f ? (float)(1.0 / (1.0 - (double)p->p)) : 0.0f;
    int64_t nb = nblocks(n);
#pragma omp parallel for num_threads(nt) schedule(static) default(none)                            \
    shared(out, in, n, nb, p, scale)
    for (int64_t b = 0; b < nb; b++) {
        dropout_blk(out + b * BLK, in + b * BLK, b * BLK, blk_len(n, b), p, scale);
    }
}

ss_status_t ss_dropout_fwd(ss_tensor_t *y,
                           const ss_tensor_t *x,
                           const ss_dropout_params_t *p,
                           const ss_exec_t *ex,
                           ss_error_t *err)
{
    SS_TRY(ew_check(y, "y", x, "x", NULL, NULL, ex, "dropout", err));
    SS_TRY(dropout_params_check(p, err));
    dropout_run(ss_tensor_f32(y), ss_tensor_f32(x), ss_tensor_numel(x), p, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_dropout_bwd(ss_tensor_t *dx,
                           const ss_tensor_t *dy,
                           const ss_dropout_params_t *p,
                           const ss_exec_t *ex,
                           ss_error_t *err)
{
    SS_TRY(ew_check(dx, "dx", dy, "dy", NULL, NULL, ex, "dropout", err));
    SS_TRY(dropout_params_check(p, err));
    // The mask is a function of the global index: regenerating it costs less than storing it.
    dropout_run(ss_tensor_f32(dx), ss_tensor_f32(dy), ss_tensor_numel(dy), p, ex->nthreads);
    return SS_OK;
}

// ---- softmax over channels --------------------------------------------------------------------

typedef struct {
    int64_t n, c, s, nsb; // batch, channels, spatial size, spatial blocks
} sm_geom_t;

static ss_status_t volume_check(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    SS_TRY(f32_check(t, name, err));
    if (t->ndim < 2) {
        SS_FAIL(err, SS_ESHAPE, "softmax: %s: expected (N, C, spatial...), got %d dims", name,
                t->ndim);
    }
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 2; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) {
            SS_FAIL(err, SS_ESHAPE, "softmax: %s: each (n, c) plane must be contiguous", name);
        }
        want *= t->shape[d];
    }
    return SS_OK;
}

static ss_status_t sm_check(const ss_tensor_t *out,
                            const char *on,
                            const ss_tensor_t *a,
                            const char *an,
                            const ss_tensor_t *b,
                            const char *bn,
                            const ss_exec_t *ex,
                            ss_error_t *err)
{
    SS_TRY(exec_check(ex, "softmax", err));
    SS_TRY(volume_check(out, on, err));
    SS_TRY(volume_check(a, an, err));
    if (!ss_tensor_same_shape(out, a)) {
        SS_FAIL(err, SS_ESHAPE, "softmax: %s and %s must have the same shape", on, an);
    }
    if (b) {
        SS_TRY(volume_check(b, bn, err));
        if (!ss_tensor_same_shape(out, b)) {
            SS_FAIL(err, SS_ESHAPE, "softmax: %s and %s must have the same shape", on, bn);
        }
    }
    return SS_OK;
}

static sm_geom_t sm_geom_of(const ss_tensor_t *x)
{
    sm_geom_t g = {x->shape[0], x->shape[1], 1, 0};
    for (int d = 2; d < x->ndim; d++) {
        g.s *= x->shape[d];
    }
    g.nsb = (g.s + SM_BLK - 1) / SM_BLK;
    return g;
}

static float *plane_of(const ss_tensor_t *t, int64_t n, int64_t c)
{
    return (float *)t->data + n * t->stride[0] + c * t->stride[1];
}

SS_CLONES static void sm_max(float *m, const float *x, int64_t len)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        m[i] = x[i] > m[i] ? x[i] : m[i];
    }
}

// y = exp(x - m), sum += y; x - m is clamped to -700 (exp_nonpos's range; exp(-700) is 0 in
// float anyway).
SS_CLONES static void sm_exp(float *y, double *sum, const float *x, const float *m, int64_t len)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        float d = x[i] - m[i]; // <= 0; exact unless the spread exceeds the float exponent range
        uint32_t b;
        memcpy(&b, &d, sizeof(b));
        b &= 0x7fffffffu;
        b = b < 0x442f0000u ? b : 0x442f0000u; // bits of 700.0f
        float a;
        memcpy(&a, &b, sizeof(a));
        double e = exp_nonpos(-(double)a);
        y[i] = (float)e;
        sum[i] += e;
    }
}

SS_CLONES static void sm_scale(float *y, const double *inv, int64_t len)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        y[i] = (float)((double)y[i] * inv[i]);
    }
}

static void sm_fwd_item(ss_tensor_t *y, const ss_tensor_t *x, const sm_geom_t *g, int64_t it)
{
    float m[SM_BLK];
    double sum[SM_BLK];
    int64_t n = it / g->nsb, s0 = (it % g->nsb) * SM_BLK;
    int64_t len = g->s - s0 < SM_BLK ? g->s - s0 : SM_BLK;
    memcpy(m, plane_of(x, n, 0) + s0, (size_t)len * sizeof(float));
    for (int64_t c = 1; c < g->c; c++) {
        sm_max(m, plane_of(x, n, c) + s0, len);
    }
    memset(sum, 0, (size_t)len * sizeof(double));
    for (int64_t c = 0; c < g->c; c++) {
        sm_exp(plane_of(y, n, c) + s0, sum, plane_of(x, n, c) + s0, m, len);
    }
    for (int64_t i = 0; i < len; i++) {
        sum[i] = 1.0 / sum[i];
    }
    for (int64_t c = 0; c < g->c; c++) {
        sm_scale(plane_of(y, n, c) + s0, sum, len);
    }
}

ss_status_t
ss_softmax_fwd(ss_tensor_t *y, const ss_tensor_t *x, const ss_exec_t *ex, ss_error_t *err)
{
    SS_TRY(sm_check(y, "y", x, "x", NULL, NULL, ex, err));
    sm_geom_t g = sm_geom_of(x);
    if (g.c == 0) {
        return SS_OK;
    }
    int64_t items = g.n * g.nsb;
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(y, x, g, items)
    for (int64_t it = 0; it < items; it++) {
        sm_fwd_item(y, x, &g, it);
    }
    return SS_OK;
}

SS_CLONES static void sm_dot(double *dot, const float *dy, const float *y, int64_t len)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        dot[i] += (double)dy[i] * y[i];
    }
}

SS_CLONES static void
sm_dx(float *dx, const float *dy, const float *y, const double *dot, int64_t len)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        dx[i] = (float)((double)y[i] * ((double)dy[i] - dot[i]));
    }
}

static void sm_bwd_item(
    ss_tensor_t *dx, const ss_tensor_t *dy, const ss_tensor_t *y, const sm_geom_t *g, int64_t it)
{
    double dot[SM_BLK];
    int64_t n = it / g->nsb, s0 = (it % g->nsb) * SM_BLK;
    int64_t len = g->s - s0 < SM_BLK ? g->s - s0 : SM_BLK;
    memset(dot, 0, (size_t)len * sizeof(double));
    for (int64_t c = 0; c < g->c; c++) {
        sm_dot(dot, plane_of(dy, n, c) + s0, plane_of(y, n, c) + s0, len);
    }
    for (int64_t c = 0; c < g->c; c++) {
        sm_dx(plane_of(dx, n, c) + s0, plane_of(dy, n, c) + s0, plane_of(y, n, c) + s0, dot, len);
    }
}

ss_status_t ss_softmax_bwd(ss_tensor_t *dx,
                           const ss_tensor_t *dy,
                           const ss_tensor_t *y,
                           const ss_exec_t *ex,
                           ss_error_t *err)
{
    SS_TRY(sm_check(dx, "dx", dy, "dy", y, "y", ex, err));
    sm_geom_t g = sm_geom_of(y);
    int64_t items = g.n * g.nsb;
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(dx, dy, y, g, items)
    for (int64_t it = 0; it < items; it++) {
        sm_bwd_item(dx, dy, y, &g, it);
    }
    return SS_OK;
}
