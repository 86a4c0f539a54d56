#include "shardseg/loss.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#include "kernels_impl.h"

// Voxels per chunk. Sums are formed per chunk and folded in chunk order, which makes them
// independent of the thread count; 1024 keeps a chunk's C + 5 scratch rows in L1 for C <= 10.
#define CHUNK    1024
#define WS_ALIGN 64
// Voxels summed in float (a few terms per SIMD lane) before a sum joins the chunk's double
// accumulator: converting every term to double cost as much as the exp.
#define SEG 64

// A (n, c) plane of a tensor: base + n * sn + c * sc, then `s` contiguous voxels.
typedef struct {
    int64_t n, c, s; // samples, channels, local voxels per plane
    const float *x;  // logits
    int64_t xsn, xsc;
    const float *t; // target (class map: sc unused)
    int64_t tsn, tsc;
    int map;  // target is a class-index map
    float *d; // dlogits (bwd only)
    int64_t dsn, dsc;
} loss_geom_t;

typedef struct {
    double *oneshot; // sums + coef for the one-shot calls
    double *part;    // per-chunk partial sums
    float *scr;      // per-thread chunk scratch
    size_t scr_len;  // floats per thread
} loss_ws_t;

// ---------------------------------------------------------------------------------------------
// Branch-free float exp/log so that `omp simd` loops vectorise: glibc's expf/logf are scalar
// calls unless the whole file were built with -ffast-math (STYLE.md rule 1). Cephes polynomials,
// about 1-2 ulp; relies on -std=c11 (no FP contraction) for reproducibility across vector widths.

// exp(x) for x <= 0 (every caller: x - max, -|x|). The clamp keeps 2^n a normal number:
// exp(x < -87) returns ~1.6e-38 instead of 0, harmless for probabilities.
static inline float vexpf(float x)
{
    x = ss__selectf(x < -87.0f, -87.0f, x);
    float t = x * 1.44269504088896341f + 12582912.0f; // round to nearest via 1.5 * 2^23
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    // NaN stays NaN through y; n = 0 for it keeps the conversion defined.
    int32_t bits = ((int32_t)ss__selectf(n == n, n, 0.0f) + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return y * scale;
}

// log(x) for positive normal x (callers pass x >= 1).
static inline float vlogf(float x)
{
    int32_t i;
    memcpy(&i, &x, sizeof(i));
    int32_t e = ((i >> 23) & 0xff) - 126; // x = m * 2^e, m in [0.5, 1)
    int32_t mi = (i & 0x007fffff) | 0x3f000000;
    float m;
    memcpy(&m, &mi, sizeof(m));
    int small = m < 0.707106781186547524f;
    float fe = (float)(e - small);
    float f = ss__selectf(small, m + m - 1.0f, m - 1.0f);
    float z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    return f + y + 0.693359375f * fe;
}

// log(1 + e) for e in [0, 1], given r = 1 / (1 + e): log(u) of the rounded u = 1 + e plus the
// first-order correction (e - (u - 1)) / u for the rounding (u - 1 is exact).
static inline float vlog1pf(float e, float r)
{
    float u = 1.0f + e;
    return vlogf(u) + (e - (u - 1.0f)) * r;
}

// ---------------------------------------------------------------------------------------------
// Validation

static int planes_ok(const ss_tensor_t *t, int ndim)
{
    // The last three dims form one contiguous plane; N (and C) strides are free (slab views).
    const int64_t *sh = t->shape, *st = t->stride;
    return st[ndim - 1] == 1 && st[ndim - 2] == sh[ndim - 1] &&
           st[ndim - 3] == sh[ndim - 1] * sh[ndim - 2];
}

static ss_status_t tensor_check(const ss_tensor_t *t, const char *name, int ndim, ss_error_t *err)
{
    if (!t || t->dtype != SS_F32 || t->ndim != ndim) {
        SS_FAIL(err, SS_ESHAPE, "%s: expected a float32 tensor of rank %d", name, ndim);
    }
    if (!planes_ok(t, ndim)) {
        SS_FAIL(err, SS_ESHAPE, "%s: each (I, J, K) plane must be contiguous", name);
    }
    return SS_OK;
}

static ss_status_t loss_check(loss_geom_t *g,
                              const ss_tensor_t *dlogits,
                              const ss_tensor_t *x,
                              const ss_tensor_t *t,
                              const ss_loss_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    if (!p || !ex || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "loss: params and an exec with nthreads >= 1 are required");
    }
    SS_TRY(ss_loss_params_validate(p, err));
    SS_TRY(tensor_check(x, "logits", 5, err));
    if (!t || (t->ndim != 4 && t->ndim != 5)) {
        SS_FAIL(err, SS_ESHAPE, "target: expected (N, I, J, K) class map or (N, C, I, J, K)");
    }
    int map = t->ndim == 4;
    SS_TRY(tensor_check(t, "target", t->ndim, err));
    int off = map ? 1 : 0;
    for (int d = 0; d < 5; d++) {
        if (d == 1 && map) {
            continue;
        }
        if (t->shape[d - (d > 1 ? off : 0)] != x->shape[d]) {
            SS_FAIL(err, SS_ESHAPE, "target: dim %d is %lld, logits have %lld", d,
                    (long long)t->shape[d - (d > 1 ? off : 0)], (long long)x->shape[d]);
        }
    }
    if (map && p->act != SS_LOSS_SOFTMAX) {
        SS_FAIL(err, SS_EINVAL, "target: a class map needs softmax; give sigmoid a dense target");
    }
    if (p->act == SS_LOSS_SOFTMAX && x->shape[1] < 2) {
        SS_FAIL(err, SS_EINVAL, "logits: softmax over %lld channel(s); use sigmoid",
                (long long)x->shape[1]);
    }
    if (dlogits) {
        SS_TRY(tensor_check(dlogits, "dlogits", 5, err));
        if (!ss_tensor_same_shape(dlogits, x)) {
            SS_FAIL(err, SS_ESHAPE, "dlogits: shape differs from logits");
        }
    }
    *g = (loss_geom_t){.n = x->shape[0],
                       .c = x->shape[1],
                       .s = x->shape[2] * x->shape[3] * x->shape[4],
                       .x = ss_tensor_f32(x),
                       .xsn = x->stride[0],
                       .xsc = x->stride[1],
                       .t = ss_tensor_f32(t),
                       .tsn = t->stride[0],
                       .tsc = map ? 0 : t->stride[1],
                       .map = map};
    if (dlogits) {
        g->d = ss_tensor_f32(dlogits);
        g->dsn = dlogits->stride[0];
        g->dsc = dlogits->stride[1];
    }
    return SS_OK;
}

void ss_loss_params_init(ss_loss_params_t *p, ss_loss_kind_t kind, ss_loss_act_t act)
{
    *p = (ss_loss_params_t){.act = act,
                            .include_background = 1,
                            .squared_pred = 0,
                            .batch = 0,
                            .smooth_nr = 1e-5,
                            .smooth_dr = 1e-5,
                            .lambda_dice = kind == SS_LOSS_CE ? 0.0 : 1.0,
                            .lambda_ce = kind == SS_LOSS_DICE ? 0.0 : 1.0,
                            .ignore_index = -100};
}

ss_status_t ss_loss_params_validate(const ss_loss_params_t *p, ss_error_t *err)
{
    if (p->act != SS_LOSS_SOFTMAX && p->act != SS_LOSS_SIGMOID) {
        SS_FAIL(err, SS_EINVAL, "loss: unknown activation %d", (int)p->act);
    }
    if (!(p->smooth_nr >= 0) || !(p->smooth_dr >= 0)) {
        SS_FAIL(err, SS_EINVAL, "loss: smooth_nr/smooth_dr must be >= 0");
    }
    if (!(p->lambda_dice >= 0) || !(p->lambda_ce >= 0) ||
        !isfinite(p->lambda_dice + p->lambda_ce)) {
        SS_FAIL(err, SS_EINVAL, "loss: lambda_dice/lambda_ce must be finite and >= 0");
    }
    return SS_OK;
}

size_t ss_loss_sums_len(int64_t n, int64_t c)
{
    return (size_t)(3 * n * c + 2);
}

size_t ss_loss_coef_len(int64_t n, int64_t c)
{
    return (size_t)(2 * n * c + 1);
}

static size_t round_up(size_t b)
{
    return (b + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
}

// Workspace: [sums + coef | chunk partials | per-thread scratch]; fills w when base != NULL.
static size_t ws_layout(loss_ws_t *w, void *base, int64_t n, int64_t c, int64_t s, int nt)
{
    int64_t nq = (s + CHUNK - 1) / CHUNK;
    size_t b_one = round_up((ss_loss_sums_len(n, c) + ss_loss_coef_len(n, c)) * sizeof(double));
    size_t b_part = round_up((size_t)(n * nq * (3 * c + 2)) * sizeof(double));
    size_t scr_len = (size_t)(c + 5) * CHUNK;
    if (base && w) {
        w->oneshot = (double *)base;
        w->part = (double *)((char *)base + b_one);
        w->scr = (float *)((char *)base + b_one + b_part);
        w->scr_len = scr_len;
    }
    return b_one + b_part + (size_t)nt * scr_len * sizeof(float);
}

size_t ss_loss_workspace_size(const ss_tensor_t *logits, int nthreads)
{
    if (!logits || logits->ndim != 5) {
        return 0;
    }
    const int64_t *sh = logits->shape;
    return ws_layout(NULL, NULL, sh[0], sh[1], sh[2] * sh[3] * sh[4], nthreads < 1 ? 1 : nthreads);
}

static ss_status_t
ws_check(loss_ws_t *w, const loss_geom_t *g, const ss_exec_t *ex, ss_error_t *err)
{
    size_t need = ws_layout(NULL, NULL, g->n, g->c, g->s, ex->nthreads);
    if (ex->work_bytes < need || !ex->work) {
        SS_FAIL(err, SS_EINVAL, "loss: workspace is %zu bytes, ss_loss_workspace_size says %zu",
                ex->work_bytes, need);
    }
    ws_layout(w, ex->work, g->n, g->c, g->s, ex->nthreads);
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Chunk kernels. Scratch rows: prob[C][CHUNK], then mx, lsum, rcp, lab, wgt rows of CHUNK.

// Softmax of voxels [s0, s0 + len) of sample n: prob rows, max, and (want_log) log of the
// exp-sum, which only the forward needs.
static void
softmax_chunk(float *scr, const loss_geom_t *g, int64_t n, int64_t s0, int64_t len, int want_log)
{
    float *restrict prob = scr, *restrict mx = scr + g->c * CHUNK;
    float *restrict lsum = mx + CHUNK, *restrict rcp = lsum + CHUNK;
    const float *x0 = g->x + n * g->xsn + s0;
    memcpy(mx, x0, (size_t)len * sizeof(float));
    for (int64_t c = 1; c < g->c; c++) {
        const float *restrict xc = x0 + c * g->xsc;
#pragma omp simd
        for (int64_t v = 0; v < len; v++) {
            mx[v] = xc[v] > mx[v] ? xc[v] : mx[v];
        }
    }
    memset(rcp, 0, (size_t)len * sizeof(float));
    for (int64_t c = 0; c < g->c; c++) {
        const float *restrict xc = x0 + c * g->xsc;
        float *restrict pc = prob + c * CHUNK;
#pragma omp simd
        for (int64_t v = 0; v < len; v++) {
            pc[v] = vexpf(xc[v] - mx[v]);
            rcp[v] += pc[v];
        }
    }
    if (want_log) {
#pragma omp simd
        for (int64_t v = 0; v < len; v++) {
            lsum[v] = vlogf(rcp[v]);
        }
    }
#pragma omp simd
    for (int64_t v = 0; v < len; v++) {
        rcp[v] = 1.0f / rcp[v];
    }
    for (int64_t c = 0; c < g->c; c++) {
        float *restrict pc = prob + c * CHUNK;
#pragma omp simd
        for (int64_t v = 0; v < len; v++) {
            pc[v] *= rcp[v];
        }
    }
}

// Class map of the chunk into lab (ignored voxels -> -1) and wgt (1 valid, 0 ignored); returns
// the number of values that are neither an integer in [0, C) nor ignore_index.
static int64_t
labels_chunk(float *scr, const loss_geom_t *g, int64_t n, int64_t s0, int64_t len, float ignore)
{
    float *restrict lab = scr + (g->c + 3) * CHUNK, *restrict wgt = lab + CHUNK;
    const float *restrict y = g->t + n * g->tsn + s0;
    float cf = (float)g->c;
    int32_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (int64_t v = 0; v < len; v++) {
        float yv = y[v];
        int32_t ign = yv == ignore;
        // 0.5 stands in for out-of-range values, so the conversion below is always defined
        float yc = ss__selectf((yv >= 0.0f) & (yv < cf), yv, 0.5f);
        bad += (1 - ign) & (yc != (float)(int32_t)yc);
        wgt[v] = ss__selectf(ign, 0.0f, 1.0f);
        lab[v] = ss__selectf(ign, -1.0f, yv);
    }
    return bad;
}

static void fill_ones(float *restrict w, int64_t len)
{
#pragma omp simd
    for (int64_t v = 0; v < len; v++) {
        w[v] = 1.0f;
    }
}

// Target row of channel c for the chunk: the dense plane, or the one-hot of lab into `row`.
static const float *target_row(float *row,
                               const float *scr,
                               const loss_geom_t *g,
                               int64_t n,
                               int64_t c,
                               int64_t s0,
                               int64_t len)
{
    if (!g->map) {
        return g->t + n * g->tsn + c * g->tsc + s0;
    }
    const float *restrict lab = scr + (g->c + 3) * CHUNK;
    float cf = (float)c;
#pragma omp simd
    for (int64_t v = 0; v < len; v++) {
        row[v] = lab[v] == cf ? 1.0f : 0.0f;
    }
    return row;
}

// Softmax chunk sums into part[3C + 2]; returns the bad-label count.
static int64_t fwd_softmax_chunk(double *part,
                                 float *scr,
                                 const loss_geom_t *g,
                                 int64_t n,
                                 int64_t s0,
                                 int64_t len,
                                 const ss_loss_params_t *p)
{
    int64_t bad = 0;
    double cnt = (double)len;
    softmax_chunk(scr, g, n, s0, len, 1);
    const float *restrict mx = scr + g->c * CHUNK, *restrict lsum = mx + CHUNK;
    const float *restrict wgt = scr + (g->c + 4) * CHUNK;
    if (g->map) {
        bad = labels_chunk(scr, g, n, s0, len, (float)p->ignore_index);
        cnt = 0;
#pragma omp simd reduction(+ : cnt)
        for (int64_t v = 0; v < len; v++) {
            cnt += wgt[v];
        }
    } else {
        fill_ones(scr + (g->c + 4) * CHUNK, len);
    }
    float *row = scr + (g->c + 2) * CHUNK; // the rcp row is free once prob is normalised
    float sqf = p->squared_pred ? 1.0f : 0.0f, lin = 1.0f - sqf; // P = sum p * (sqf p + lin)
    for (int64_t c = 0; c < g->c; c++) {
        const float *restrict pc = scr + c * CHUNK;
        const float *restrict xc = g->x + n * g->xsn + c * g->xsc + s0;
        const float *restrict tc = target_row(row, scr, g, n, c, s0, len);
        for (int64_t v0 = 0; v0 < len; v0 += SEG) {
            int64_t v1 = v0 + SEG < len ? v0 + SEG : len;
            float si = 0, sp = 0, st = 0, ce = 0;
#pragma omp simd reduction(+ : si, sp, st, ce)
            for (int64_t v = v0; v < v1; v++) {
                float pv = pc[v] * wgt[v];
                float tv = tc[v];
                si += pv * tv;
                sp += pv * (sqf * pv + lin);
                st += tv * (sqf * tv + lin);
                ce += tv * (lsum[v] - (xc[v] - mx[v])); // -log p without cancellation at p ~ 1
            }
            part[3 * c] += si;
            part[3 * c + 1] += sp;
            part[3 * c + 2] += st;
            part[3 * g->c] += ce;
        }
    }
    part[3 * g->c + 1] = cnt;
    return bad;
}

// Sigmoid chunk sums (Dice terms and BCE with logits) into part[3C + 2].
static void fwd_sigmoid_chunk(double *part,
                              const loss_geom_t *g,
                              int64_t n,
                              int64_t s0,
                              int64_t len,
                              const ss_loss_params_t *p)
{
    float sqf = p->squared_pred ? 1.0f : 0.0f, lin = 1.0f - sqf; // P = sum p * (sqf p + lin)
    for (int64_t c = 0; c < g->c; c++) {
        const float *restrict xc = g->x + n * g->xsn + c * g->xsc + s0;
        const float *restrict tc = g->t + n * g->tsn + c * g->tsc + s0;
        for (int64_t v0 = 0; v0 < len; v0 += SEG) {
            int64_t v1 = v0 + SEG < len ? v0 + SEG : len;
            float si = 0, sp = 0, st = 0, ce = 0;
#pragma omp simd reduction(+ : si, sp, st, ce)
            for (int64_t v = v0; v < v1; v++) {
                float xv = xc[v], tv = tc[v];
                float e = vexpf(-fabsf(xv));
                float r = 1.0f / (1.0f + e);
                float pv = ss__selectf(xv >= 0.0f, r, e * r);
                si += pv * tv;
                sp += pv * (sqf * pv + lin);
                st += tv * (sqf * tv + lin);
                ce += ss__selectf(xv > 0.0f, xv, 0.0f) - xv * tv + vlog1pf(e, r);
            }
            part[3 * c] += si;
            part[3 * c + 1] += sp;
            part[3 * c + 2] += st;
            part[3 * g->c] += ce;
        }
    }
    part[3 * g->c + 1] = (double)(len * g->c);
}

// ---------------------------------------------------------------------------------------------
// Forward partial sums

static int64_t fwd_chunks(double *part,
                          float *scr0,
                          size_t scr_len,
                          const loss_geom_t *g,
                          int64_t nq,
                          const ss_loss_params_t *p,
                          int nt)
{
    int64_t bad = 0, nchunks = g->n * nq, np = 3 * g->c + 2;
#pragma omp parallel num_threads(nt) default(none) shared(part, scr0, scr_len, g, nq, p, \
                                                              nchunks, np) reduction(+ : bad)
    {
        float *scr = scr0 + (size_t)omp_get_thread_num() * scr_len;
#pragma omp for schedule(static)
        for (int64_t q = 0; q < nchunks; q++) {
            int64_t n = q / nq, s0 = (q % nq) * CHUNK;
            int64_t len = g->s - s0 < CHUNK ? g->s - s0 : CHUNK;
            double *pq = part + q * np;
            memset(pq, 0, (size_t)np * sizeof(double));
            if (p->act == SS_LOSS_SOFTMAX) {
                bad += fwd_softmax_chunk(pq, scr, g, n, s0, len, p);
            } else {
                fwd_sigmoid_chunk(pq, g, n, s0, len, p);
            }
        }
    }
    return bad;
}

static void fold_chunks(double *sums, const double *part, const loss_geom_t *g, int64_t nq)
{
    int64_t nc = g->c, np = 3 * nc + 2;
    double *tail = sums + 3 * g->n * nc;
    for (int64_t q = 0; q < g->n * nq; q++) {
        const double *pq = part + q * np;
        double *sn = sums + 3 * nc * (q / nq);
        for (int64_t k = 0; k < 3 * nc; k++) {
            sn[k] += pq[k];
        }
        tail[0] += pq[3 * nc];
        tail[1] += pq[3 * nc + 1];
    }
}

ss_status_t ss_loss_fwd_partial(double *sums,
                                const ss_tensor_t *logits,
                                const ss_tensor_t *target,
                                const ss_loss_params_t *p,
                                const ss_exec_t *ex,
                                ss_error_t *err)
{
    loss_geom_t g;
    loss_ws_t w;
    SS_TRY(loss_check(&g, NULL, logits, target, p, ex, err));
    if (!sums) {
        SS_FAIL(err, SS_EINVAL, "loss: sums buffer is NULL");
    }
    memset(sums, 0, ss_loss_sums_len(g.n, g.c) * sizeof(double));
    if (g.n * g.s == 0) {
        return SS_OK; // an empty slab contributes nothing
    }
    SS_TRY(ws_check(&w, &g, ex, err));
    int64_t nq = (g.s + CHUNK - 1) / CHUNK;
    int64_t bad = fwd_chunks(w.part, w.scr, w.scr_len, &g, nq, p, ex->nthreads);
    if (bad) {
        SS_FAIL(err, SS_EINVAL,
                "target: %lld class-map values are neither integers in [0, %lld) nor ignore_index "
                "%g; check the label conversion",
                (long long)bad, (long long)g.c, p->ignore_index);
    }
    fold_chunks(sums, w.part, &g, nq);
    return SS_OK;
}

void ss_loss_sums_merge(double *acc, const double *x, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        acc[i] += x[i];
    }
}

// ---------------------------------------------------------------------------------------------
// Finalize: global sums -> value and per-(n, c) gradient coefficients

// Dice over the groups; writes {a, b} for every (n, c) of a group when coef != NULL.
static double
dice_groups(double *coef, const double *sums, int64_t n, int64_t c, const ss_loss_params_t *p)
{
    int64_t c0 = p->include_background || c == 1 ? 0 : 1, cd = c - c0;
    int64_t groups = (p->batch ? 1 : n) * cd;
    double dice = 0;
    for (int64_t gi = 0; gi < groups; gi++) {
        int64_t ch = c0 + gi % cd;
        int64_t n0 = p->batch ? 0 : gi / cd, n1 = p->batch ? n : n0 + 1;
        double si = 0, sp = 0, st = 0;
        for (int64_t k = n0; k < n1; k++) {
            const double *s = sums + 3 * (k * c + ch);
            si += s[0];
            sp += s[1];
            st += s[2];
        }
        double den = st + sp + p->smooth_dr, num = 2 * si + p->smooth_nr;
        dice += 1 - num / den;
        for (int64_t k = n0; coef && k < n1; k++) {
            // d f / d p = -2 t / den + num / den^2 * dP/dp, scaled by lambda_dice / groups
            coef[2 * (k * c + ch)] = -2 * p->lambda_dice / ((double)groups * den);
            coef[2 * (k * c + ch) + 1] = p->lambda_dice * num / ((double)groups * den * den);
        }
    }
    return groups ? dice / (double)groups : 0;
}

ss_status_t ss_loss_fwd_finalize(ss_loss_value_t *val,
                                 double *coef,
                                 const double *sums,
                                 int64_t n,
                                 int64_t c,
                                 const ss_loss_params_t *p,
                                 ss_error_t *err)
{
    if (!val || !sums || !p || n < 0 || c < 1) {
        SS_FAIL(err, SS_EINVAL, "loss finalize: need val, sums, params, n >= 0 and c >= 1");
    }
    SS_TRY(ss_loss_params_validate(p, err));
    if (coef) {
        memset(coef, 0, ss_loss_coef_len(n, c) * sizeof(double));
    }
    double ce_sum = sums[3 * n * c], cnt = sums[3 * n * c + 1];
    val->dice = dice_groups(coef, sums, n, c, p);
    val->ce = cnt > 0 ? ce_sum / cnt : 0;
    val->loss = p->lambda_dice * val->dice + p->lambda_ce * val->ce;
    if (coef) {
        coef[2 * n * c] = cnt > 0 ? p->lambda_ce / cnt : 0;
    }
    if (!isfinite(val->loss)) {
        SS_FAIL(err, SS_ENUMERIC,
                "loss is %g: NaN/Inf logits, or an empty Dice group with smooth_dr = 0", val->loss);
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Backward

// Sum over channels of a dense target, into row.
static const float *
target_sum(float *restrict row, const loss_geom_t *g, int64_t n, int64_t s0, int64_t len)
{
    memset(row, 0, (size_t)len * sizeof(float));
    for (int64_t c = 0; c < g->c; c++) {
        const float *restrict tc = g->t + n * g->tsn + c * g->tsc + s0;
#pragma omp simd
        for (int64_t v = 0; v < len; v++) {
            row[v] += tc[v];
        }
    }
    return row;
}

static void bwd_softmax_chunk(float *scr,
                              const loss_geom_t *g,
                              const double *coef,
                              int64_t n,
                              int64_t s0,
                              int64_t len,
                              const ss_loss_params_t *p)
{
    softmax_chunk(scr, g, n, s0, len, 0);
    float *restrict dot = scr + g->c * CHUNK; // the max row is free after the softmax
    float *row = scr + (g->c + 2) * CHUNK;
    const float *restrict wgt = scr + (g->c + 4) * CHUNK;
    // CE gradient p_c * sum_k t_k - t_c: sum_k t_k is the voxel weight for a class map, and
    // not necessarily 1 for soft labels (kept in the then unused label row).
    const float *restrict tsum = wgt;
    if (g->map) {
        labels_chunk(scr, g, n, s0, len, (float)p->ignore_index);
    } else {
        fill_ones(scr + (g->c + 4) * CHUNK, len);
        tsum = target_sum(scr + (g->c + 3) * CHUNK, g, n, s0, len);
    }
    float wce = (float)coef[2 * g->n * g->c];
    float sq2 = p->squared_pred ? 2.0f : 0.0f, lin = p->squared_pred ? 0.0f : 1.0f; // dP/dp
    memset(dot, 0, (size_t)len * sizeof(float));
    // Softmax Jacobian: dx_c = p_c (gp_c - sum_k p_k gp_k) with gp = d dice / d p.
    for (int64_t pass = 0; pass < 2; pass++) {
        for (int64_t c = 0; c < g->c; c++) {
            const float *restrict pc = scr + c * CHUNK;
            const float *restrict tc = target_row(row, scr, g, n, c, s0, len);
            float *restrict dc = g->d + n * g->dsn + c * g->dsc + s0;
            float a = (float)coef[2 * (n * g->c + c)], b = (float)coef[2 * (n * g->c + c) + 1];
            if (pass == 0) {
#pragma omp simd
                for (int64_t v = 0; v < len; v++) {
                    float gp = wgt[v] * (a * tc[v] + b * (sq2 * pc[v] + lin));
                    dot[v] += pc[v] * gp;
                }
            } else {
#pragma omp simd
                for (int64_t v = 0; v < len; v++) {
                    float gp = wgt[v] * (a * tc[v] + b * (sq2 * pc[v] + lin));
                    dc[v] = pc[v] * (gp - dot[v]) + wce * (tsum[v] * pc[v] - tc[v]);
                }
            }
        }
    }
}

static void bwd_sigmoid_chunk(const loss_geom_t *g,
                              const double *coef,
                              int64_t n,
                              int64_t s0,
                              int64_t len,
                              const ss_loss_params_t *p)
{
    float wce = (float)coef[2 * g->n * g->c];
    float sq2 = p->squared_pred ? 2.0f : 0.0f, lin = p->squared_pred ? 0.0f : 1.0f; // dP/dp
    for (int64_t c = 0; c < g->c; c++) {
        const float *restrict xc = g->x + n * g->xsn + c * g->xsc + s0;
        const float *restrict tc = g->t + n * g->tsn + c * g->tsc + s0;
        float *restrict dc = g->d + n * g->dsn + c * g->dsc + s0;
        float a = (float)coef[2 * (n * g->c + c)], b = (float)coef[2 * (n * g->c + c) + 1];
#pragma omp simd
        for (int64_t v = 0; v < len; v++) {
            float xv = xc[v], tv = tc[v];
            float e = vexpf(-fabsf(xv));
            float r = 1.0f / (1.0f + e);
            float pv = ss__selectf(xv >= 0.0f, r, e * r);
            float gp = a * tv + b * (sq2 * pv + lin);
            dc[v] = gp * (e * r * r) + wce * (pv - tv); // p (1 - p) = e / (1 + e)^2
        }
    }
}

static void bwd_chunks(float *scr0,
                       size_t scr_len,
                       const loss_geom_t *g,
                       const double *coef,
                       int64_t nq,
                       const ss_loss_params_t *p,
                       int nt)
{
    int64_t nchunks = g->n * nq;
#pragma omp parallel num_threads(nt) default(none) shared(scr0, scr_len, g, coef, nq, p, nchunks)
    {
        float *scr = scr0 + (size_t)omp_get_thread_num() * scr_len;
#pragma omp for schedule(static)
        for (int64_t q = 0; q < nchunks; q++) {
            int64_t n = q / nq, s0 = (q % nq) * CHUNK;
            int64_t len = g->s - s0 < CHUNK ? g->s - s0 : CHUNK;
            if (p->act == SS_LOSS_SOFTMAX) {
                bwd_softmax_chunk(scr, g, coef, n, s0, len, p);
            } else {
                bwd_sigmoid_chunk(g, coef, n, s0, len, p);
            }
        }
    }
}

// Address range [lo, hi) a tensor's elements occupy.
static void span(const ss_tensor_t *t, const char **lo, const char **hi)
{
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++) {
        last += (t->shape[d] - 1) * t->stride[d];
    }
    *lo = (const char *)t->data;
    *hi = *lo + (last + 1) * (int64_t)sizeof(float);
}

static int overlaps(const ss_tensor_t *a, const ss_tensor_t *b)
{
    const char *alo, *ahi, *blo, *bhi;
    span(a, &alo, &ahi);
    span(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

ss_status_t ss_loss_bwd(ss_tensor_t *dlogits,
                        const ss_tensor_t *logits,
                        const ss_tensor_t *target,
                        const double *coef,
                        const ss_loss_params_t *p,
                        const ss_exec_t *ex,
                        ss_error_t *err)
{
    loss_geom_t g;
    loss_ws_t w;
    SS_TRY(loss_check(&g, dlogits, logits, target, p, ex, err));
    if (!coef) {
        SS_FAIL(err, SS_EINVAL, "loss bwd: coef is NULL (from ss_loss_fwd_finalize)");
    }
    if (g.n * g.s == 0) {
        return SS_OK;
    }
    if (overlaps(dlogits, logits) || overlaps(dlogits, target)) {
        SS_FAIL(err, SS_EINVAL, "dlogits: overlaps logits or target");
    }
    SS_TRY(ws_check(&w, &g, ex, err));
    bwd_chunks(w.scr, w.scr_len, &g, coef, (g.s + CHUNK - 1) / CHUNK, p, ex->nthreads);
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// One-shot calls

ss_status_t ss_loss_fwd(ss_loss_value_t *val,
                        const ss_tensor_t *logits,
                        const ss_tensor_t *target,
                        const ss_loss_params_t *p,
                        const ss_exec_t *ex,
                        ss_error_t *err)
{
    loss_geom_t g;
    loss_ws_t w;
    SS_TRY(loss_check(&g, NULL, logits, target, p, ex, err));
    SS_TRY(ws_check(&w, &g, ex, err));
    double *sums = w.oneshot, *coef = sums + ss_loss_sums_len(g.n, g.c);
    SS_TRY(ss_loss_fwd_partial(sums, logits, target, p, ex, err));
    return ss_loss_fwd_finalize(val, coef, sums, g.n, g.c, p, err);
}

ss_status_t ss_loss_fwd_bwd(ss_loss_value_t *val,
                            ss_tensor_t *dlogits,
                            const ss_tensor_t *logits,
                            const ss_tensor_t *target,
                            const ss_loss_params_t *p,
                            const ss_exec_t *ex,
                            ss_error_t *err)
{
    loss_geom_t g;
    loss_ws_t w;
    SS_TRY(loss_check(&g, dlogits, logits, target, p, ex, err));
    SS_TRY(ws_check(&w, &g, ex, err));
    double *sums = w.oneshot, *coef = sums + ss_loss_sums_len(g.n, g.c);
    SS_TRY(ss_loss_fwd_partial(sums, logits, target, p, ex, err));
    SS_TRY(ss_loss_fwd_finalize(val, coef, sums, g.n, g.c, p, err));
    return ss_loss_bwd(dlogits, logits, target, coef, p, ex, err);
}
