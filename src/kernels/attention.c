#include "shardseg/attention.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "shardseg/blas.h"

#include "kernels_impl.h"

#define LOG2EF 1.44269504088896341f
#define LN2F   0.693147180559945309f

enum {
    TILE_DEFAULT = 256, // see ss_attention_params_t
    TILE_MAX = 4096,
    LINE_FLOATS = 16, // per-thread workspace pieces start on their own 64-byte line
    PART_DKDV = 1,
    PART_DQ = 2,
};

typedef union {
    float f;
    uint32_t u;
} bits_t;

// 2^x for x <= 127, 0 below -126 (and for -inf); NaN propagates. Scores are kept in log2 units
// (the log2 e factor rides in the GEMM's alpha), so the online softmax needs 2^(s - max) with
// s - max <= 0. exp2f does not vectorise; this branch-free form does (SSE2 at -O2, and the
// clones below). The shifter 1.5 * 2^23 rounds x to the integer n held in the low mantissa bits
// of t, so f = x - n in [-1/2, 1/2] is exact and 2^n is built in the exponent bits without a
// float-to-int conversion. 2^f: degree-6 polynomial fitted for relative error on [-1/2, 1/2]
// (fit error 2e-9). Max relative error of the whole, measured against exp2() in double over
// [-126, 0]: 1.0e-7 (about 1 ulp). The underflow mask is an integer compare on t's bits
// (negative t reads as a negative integer), because GCC will not if-convert float compares
// under the default -ftrapping-math and the loop would not vectorise.
static inline float exp2_small(float x)
{
    const float shifter = 0x1.8p23f;
    float t = x + shifter;
    float f = x - (t - shifter);
    float p = 0x1.41fbbcp-13f;
    p = p * f + 0x1.5f3e52p-10f;
    p = p * f + 0x1.3b2d4cp-7f;
    p = p * f + 0x1.c6aee8p-5f;
    p = p * f + 0x1.ebfbdcp-3f;
    p = p * f + 0x1.62e430p-1f;
    p = p * f + 1.0f;
    bits_t two_n = {t};
    uint32_t keep = -(uint32_t)((int32_t)two_n.u >= 0x4B400000 - 126); // n >= -126
    two_n.u = (two_n.u + 127u) << 23; // t's bits are 0x4B400000 + n: leaves exponent n + 127
    bits_t y = {p * two_n.f};
    y.u &= keep;
    return y.f;
}

enum { LANES = 16 };

// max(m0, s[0..nb)) in LANES independent lanes: vectorises without reassociating (no omp simd
// reduction, whose per-row lane spill and scalar tail cost more than the row itself).
static inline float row_max(const float *restrict s, int64_t nb, float m0)
{
    float lane[LANES];
    for (int k = 0; k < LANES; k++) {
        lane[k] = m0;
    }
    int64_t j = 0;
    for (; j + LANES <= nb; j += LANES) {
        for (int k = 0; k < LANES; k++) {
            lane[k] = s[j + k] > lane[k] ? s[j + k] : lane[k];
        }
    }
    for (; j < nb; j++) {
        lane[0] = s[j] > lane[0] ? s[j] : lane[0];
    }
    for (int w = LANES / 2; w > 0; w /= 2) {
        for (int k = 0; k < w; k++) {
            lane[k] = lane[k + w] > lane[k] ? lane[k + w] : lane[k];
        }
    }
    return lane[0];
}

// ---- Views -------------------------------------------------------------------------------

// Rows (tokens) of one (b, h) head of a (B, N, H, D) tensor: row n at p + n * ld.
typedef struct {
    float *p;
    int64_t ld;
} rows_t;

static rows_t head_rows(const ss_tensor_t *t, int64_t b, int64_t h)
{
    // With one token the row stride is never used, but BLAS insists on ld >= D.
    rows_t r = {ss_tensor_f32(t) + b * t->stride[0] + h * t->stride[2],
                t->shape[1] > 1 ? t->stride[1] : t->shape[3]};
    return r;
}

// Row vector of (b, h) of a (B, H, N) statistics tensor.
static float *stat_row(const ss_tensor_t *t, int64_t b, int64_t h)
{
    return ss_tensor_f32(t) + b * t->stride[0] + h * t->stride[1];
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static size_t round_line(int64_t n)
{
    return (size_t)((n + LINE_FLOATS - 1) / LINE_FLOATS * LINE_FLOATS);
}

// ---- Plan and parallel driver ------------------------------------------------------------

typedef struct {
    int64_t batch, heads, dim, nq, nk;
    int64_t tq, tk, ntq, ntk; // tile sizes and tile counts along queries and keys
    float scale;              // natural-log scale of the scores (dq, dk GEMMs)
    float scale2;             // scale * log2(e): scores in log2 units for exp2
    int nthreads;
    size_t thread_floats; // per-thread workspace: s, dp tiles, three tq vectors
    float *work;
    const volatile int *cancel;
} plan_t;

static int64_t tile_or_default(int t)
{
    return t > 0 ? t : TILE_DEFAULT;
}

static size_t thread_floats(int64_t tq, int64_t tk)
{
    return 2 * round_line(tq * tk) + 3 * round_line(tq);
}

// Bytes of the per-thread slices (all calls but ss_attention_bwd need only these).
static size_t tile_work_bytes(const ss_attention_params_t *p, int nthreads)
{
    int64_t tq = tile_or_default(p ? p->tile_q : 0), tk = tile_or_default(p ? p->tile_k : 0);
    return (size_t)(nthreads > 0 ? nthreads : 1) * thread_floats(tq, tk) * sizeof(float);
}

static plan_t
make_plan(const ss_tensor_t *q, int64_t nk, const ss_attention_params_t *p, const ss_exec_t *ex)
{
    plan_t pl;
    memset(&pl, 0, sizeof(pl));
    pl.batch = q->shape[0];
    pl.nq = q->shape[1];
    pl.heads = q->shape[2];
    pl.dim = q->shape[3];
    pl.nk = nk;
    pl.tq = tile_or_default(p ? p->tile_q : 0);
    pl.tk = tile_or_default(p ? p->tile_k : 0);
    pl.ntq = (pl.nq + pl.tq - 1) / pl.tq;
    pl.ntk = (nk + pl.tk - 1) / pl.tk;
    pl.scale = p && p->scale != 0.0f ? p->scale : 1.0f / sqrtf((float)pl.dim);
    pl.scale2 = pl.scale * LOG2EF;
    pl.nthreads = ex->nthreads;
    pl.thread_floats = thread_floats(pl.tq, pl.tk);
    pl.work = (float *)ex->work;
    pl.cancel = ex->cancel;
    return pl;
}

typedef void (*unit_fn)(const void *args, int64_t unit, float *ws);

// Runs fn(args, u, ws) for u in [0, nunits) on pl->nthreads threads; ws is the calling thread's
// workspace slice. Units write disjoint outputs, so the schedule does not affect the results.
static ss_status_t run_units(unit_fn fn, const void *args, int64_t nunits, const plan_t *pl)
{
    int cancelled = 0;
    int nt = (int)min64(pl->nthreads, nunits > 0 ? nunits : 1);
#pragma omp parallel num_threads(nt) default(none) shared(fn, args, nunits, pl, cancelled)
    {
        float *ws = pl->work ? pl->work + (size_t)omp_get_thread_num() * pl->thread_floats : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < nunits; u++) {
            if (pl->cancel && *pl->cancel) {
#pragma omp atomic write
                cancelled = 1;
                continue;
            }
            fn(args, u, ws);
        }
    }
    return cancelled ? SS_ECANCELLED : SS_OK;
}

// Splits unit u of a (b, h, tile) loop with ntiles tiles per head.
static void unit_bht(int64_t u, int64_t heads, int64_t ntiles, int64_t *b, int64_t *h, int64_t *t)
{
    *t = u % ntiles;
    *h = (u / ntiles) % heads;
    *b = u / ntiles / heads;
}

// ---- Forward -----------------------------------------------------------------------------

// Online-softmax step of a rows x nb tile of log2-unit scores: row max m and sum l advance,
// s becomes 2^(s - m_new) in place, corr[i] = 2^(m_old - m_new) rescales row i's accumulator (0
// while m_old == -inf, before the first key). The exp loop is written out here rather than in a
// helper so that it is compiled inside every clone (GCC does not inline it into them).
SS_CLONES
static void softmax_tile(float *restrict s,
                         int64_t rows,
                         int64_t nb,
                         float *restrict m,
                         float *restrict l,
                         float *restrict corr)
{
    for (int64_t i = 0; i < rows; i++) {
        float *si = s + i * nb;
        float mx = row_max(si, nb, m[i]);
        float lane[LANES] = {0};
        int64_t j = 0;
        for (; j + LANES <= nb; j += LANES) {
            for (int k = 0; k < LANES; k++) {
                float e = exp2_small(si[j + k] - mx);
                si[j + k] = e;
                lane[k] += e;
            }
        }
        for (; j < nb; j++) {
            float e = exp2_small(si[j] - mx);
            si[j] = e;
            lane[0] += e;
        }
        for (int w = LANES / 2; w > 0; w /= 2) { // fixed tree: same sum for any schedule
            for (int k = 0; k < w; k++) {
                lane[k] += lane[k + w];
            }
        }
        corr[i] = exp2_small(m[i] - mx);
        l[i] = l[i] * corr[i] + lane[0];
        m[i] = mx;
    }
}

// Online-softmax update of one query tile (rows x D at q) of one head with keys [0, nk): per key
// tile S = scale log2(e) Q K^T, then m, l and acc rescaled, and acc += P V. corr: rows floats.
static void fwd_tile(float *acc,
                     int64_t ldacc,
                     float *m,
                     float *l,
                     const float *q,
                     int64_t ldq,
                     int64_t rows,
                     rows_t k,
                     rows_t v,
                     const plan_t *pl,
                     float *s,
                     float *corr)
{
    for (int64_t j0 = 0; j0 < pl->nk; j0 += pl->tk) {
        int64_t nb = min64(pl->tk, pl->nk - j0);
        ss_gemm_serial(SS_NO_TRANS, SS_TRANS, rows, nb, pl->dim, pl->scale2, q, ldq,
                       k.p + j0 * k.ld, k.ld, 0.0f, s, nb);
        softmax_tile(s, rows, nb, m, l, corr);
        for (int64_t i = 0; i < rows; i++) {
            if (corr[i] != 1.0f) {
                float *a = acc + i * ldacc;
                for (int64_t d = 0; d < pl->dim; d++) {
                    a[d] *= corr[i];
                }
            }
        }
        ss_gemm_serial(SS_NO_TRANS, SS_NO_TRANS, rows, pl->dim, nb, 1.0f, s, nb, v.p + j0 * v.ld,
                       v.ld, 1.0f, acc, ldacc);
    }
}

// o = acc / l and lse = (m + log2 l) ln 2 over `rows` rows (lse may be NULL); o may be acc.
static void finalize_rows(float *o,
                          int64_t ldo,
                          float *lse,
                          const float *acc,
                          int64_t ldacc,
                          const float *m,
                          const float *l,
                          int64_t rows,
                          int64_t dim)
{
    for (int64_t i = 0; i < rows; i++) {
        float li = l[i], mi = m[i];
        float inv = li > 0.0f ? 1.0f / li : 0.0f;
        for (int64_t d = 0; d < dim; d++) {
            o[i * ldo + d] = acc[i * ldacc + d] * inv;
        }
        if (lse) {
            lse[i] = li > 0.0f ? (mi + log2f(li)) * LN2F : -INFINITY;
        }
    }
}

typedef struct {
    const plan_t *pl;
    ss_tensor_t *o, *lse; // full forward: outputs; block forward: NULL
    ss_attention_state_t *st;
    const ss_tensor_t *q, *k, *v;
} fwd_args_t;

// Full forward of one (b, h, query tile): running m, l in the workspace, acc in o itself.
static void fwd_full_unit(const void *args, int64_t u, float *ws)
{
    const fwd_args_t *a = args;
    const plan_t *pl = a->pl;
    int64_t b, h, t;
    unit_bht(u, pl->heads, pl->ntq, &b, &h, &t);
    int64_t i0 = t * pl->tq, rows = min64(pl->tq, pl->nq - i0);
    rows_t o = head_rows(a->o, b, h), q = head_rows(a->q, b, h);
    float *s = ws, *m = ws + 2 * round_line(pl->tq * pl->tk), *l = m + round_line(pl->tq);
    float *corr = l + round_line(pl->tq), *acc = o.p + i0 * o.ld;
    for (int64_t i = 0; i < rows; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
        memset(acc + i * o.ld, 0, sizeof(float) * (size_t)pl->dim);
    }
    fwd_tile(acc, o.ld, m, l, q.p + i0 * q.ld, q.ld, rows, head_rows(a->k, b, h),
             head_rows(a->v, b, h), pl, s, corr);
    float *lse = a->lse ? stat_row(a->lse, b, h) + i0 : NULL;
    finalize_rows(acc, o.ld, lse, acc, o.ld, m, l, rows, pl->dim);
}

// One K/V block folded into the state rows of one (b, h, query tile).
static void fwd_block_unit(const void *args, int64_t u, float *ws)
{
    const fwd_args_t *a = args;
    const plan_t *pl = a->pl;
    int64_t b, h, t;
    unit_bht(u, pl->heads, pl->ntq, &b, &h, &t);
    int64_t i0 = t * pl->tq, rows = min64(pl->tq, pl->nq - i0);
    rows_t acc = head_rows(&a->st->acc, b, h), q = head_rows(a->q, b, h);
    fwd_tile(acc.p + i0 * acc.ld, acc.ld, stat_row(&a->st->m, b, h) + i0,
             stat_row(&a->st->l, b, h) + i0, q.p + i0 * q.ld, q.ld, rows, head_rows(a->k, b, h),
             head_rows(a->v, b, h), pl, ws, ws + 2 * round_line(pl->tq * pl->tk));
}

// ---- Backward ----------------------------------------------------------------------------

typedef struct {
    rows_t q, k, v, dout, dq, dk, dv;
    const float *lse, *dvec;
} bwd_head_t;

typedef struct {
    const plan_t *pl;
    ss_tensor_t *dq, *dk, *dv;
    const ss_tensor_t *q, *k, *v, *o, *dout, *lse, *dvec;
} bwd_args_t;

static bwd_head_t bwd_head(const bwd_args_t *a, int64_t b, int64_t h)
{
    bwd_head_t hd = {head_rows(a->q, b, h),    head_rows(a->k, b, h),  head_rows(a->v, b, h),
                     head_rows(a->dout, b, h), head_rows(a->dq, b, h), head_rows(a->dk, b, h),
                     head_rows(a->dv, b, h),   stat_row(a->lse, b, h), stat_row(a->dvec, b, h)};
    return hd;
}

// P = 2^(S - lse log2 e) in place, rows x nb, S in log2 units.
SS_CLONES
static void probs_rows(float *restrict s, int64_t rows, int64_t nb, const float *restrict lse)
{
    for (int64_t i = 0; i < rows; i++) {
        float li = lse[i] * LOG2EF;
        float *si = s + i * nb;
#pragma omp simd
        for (int64_t j = 0; j < nb; j++) {
            si[j] = exp2_small(si[j] - li);
        }
    }
}

// dS = P (dP - dvec) in place of dP, rows x nb.
SS_CLONES
static void dscores_rows(float *restrict dp,
                         const float *restrict p,
                         int64_t rows,
                         int64_t nb,
                         const float *restrict dvec)
{
    for (int64_t i = 0; i < rows; i++) {
        float di = dvec[i];
#pragma omp simd
        for (int64_t j = 0; j < nb; j++) {
            dp[i * nb + j] = p[i * nb + j] * (dp[i * nb + j] - di);
        }
    }
}

// Query tile [i0, i0 + ni) against key tile [j0, j0 + nj) of one head: recomputes P and dS and
// accumulates the parts asked for into dk/dv (PART_DKDV) and dq (PART_DQ). P and dS depend only
// on the tile pair, so the fused and the split schedules add bit-identical terms in one order.
static void bwd_pair(const bwd_head_t *hd,
                     const plan_t *pl,
                     int64_t i0,
                     int64_t ni,
                     int64_t j0,
                     int64_t nj,
                     int parts,
                     float *s,
                     float *dp)
{
    const int64_t dim = pl->dim;
    const float *qi = hd->q.p + i0 * hd->q.ld, *doi = hd->dout.p + i0 * hd->dout.ld;
    const float *kj = hd->k.p + j0 * hd->k.ld, *vj = hd->v.p + j0 * hd->v.ld;
    ss_gemm_serial(SS_NO_TRANS, SS_TRANS, ni, nj, dim, pl->scale2, qi, hd->q.ld, kj, hd->k.ld, 0.0f,
                   s, nj);
    probs_rows(s, ni, nj, hd->lse + i0);
    ss_gemm_serial(SS_NO_TRANS, SS_TRANS, ni, nj, dim, 1.0f, doi, hd->dout.ld, vj, hd->v.ld, 0.0f,
                   dp, nj);
    dscores_rows(dp, s, ni, nj, hd->dvec + i0);
    if (parts & PART_DKDV) {
        ss_gemm_serial(SS_TRANS, SS_NO_TRANS, nj, dim, ni, 1.0f, s, nj, doi, hd->dout.ld, 1.0f,
                       hd->dv.p + j0 * hd->dv.ld, hd->dv.ld);
        ss_gemm_serial(SS_TRANS, SS_NO_TRANS, nj, dim, ni, pl->scale, dp, nj, qi, hd->q.ld, 1.0f,
                       hd->dk.p + j0 * hd->dk.ld, hd->dk.ld);
    }
    if (parts & PART_DQ) {
        ss_gemm_serial(SS_NO_TRANS, SS_NO_TRANS, ni, dim, nj, pl->scale, dp, nj, kj, hd->k.ld, 1.0f,
                       hd->dq.p + i0 * hd->dq.ld, hd->dq.ld);
    }
}

// Fused schedule: one unit is a whole head; key tiles outer (dk/dv tile stays in cache), query
// tiles inner, dq accumulated in key-tile order.
static void bwd_fused_unit(const void *args, int64_t u, float *ws)
{
    const bwd_args_t *a = args;
    const plan_t *pl = a->pl;
    bwd_head_t hd = bwd_head(a, u / pl->heads, u % pl->heads);
    float *dp = ws + round_line(pl->tq * pl->tk);
    for (int64_t j0 = 0; j0 < pl->nk; j0 += pl->tk) {
        for (int64_t i0 = 0; i0 < pl->nq; i0 += pl->tq) {
            bwd_pair(&hd, pl, i0, min64(pl->tq, pl->nq - i0), j0, min64(pl->tk, pl->nk - j0),
                     PART_DKDV | PART_DQ, ws, dp);
        }
    }
}

// Split schedule: units [0, B*H*ntk) own one key tile (dk, dv over all query tiles); the rest
// own one query tile (dq over all key tiles), recomputing P and dS (7 GEMMs per pair, not 5).
static void bwd_split_unit(const void *args, int64_t u, float *ws)
{
    const bwd_args_t *a = args;
    const plan_t *pl = a->pl;
    float *dp = ws + round_line(pl->tq * pl->tk);
    int64_t b, h, t, nkv = pl->batch * pl->heads * pl->ntk;
    if (u < nkv) {
        unit_bht(u, pl->heads, pl->ntk, &b, &h, &t);
        bwd_head_t hd = bwd_head(a, b, h);
        int64_t j0 = t * pl->tk, nj = min64(pl->tk, pl->nk - j0);
        for (int64_t i0 = 0; i0 < pl->nq; i0 += pl->tq) {
            bwd_pair(&hd, pl, i0, min64(pl->tq, pl->nq - i0), j0, nj, PART_DKDV, ws, dp);
        }
        return;
    }
    unit_bht(u - nkv, pl->heads, pl->ntq, &b, &h, &t);
    bwd_head_t hd = bwd_head(a, b, h);
    int64_t i0 = t * pl->tq, ni = min64(pl->tq, pl->nq - i0);
    for (int64_t j0 = 0; j0 < pl->nk; j0 += pl->tk) {
        bwd_pair(&hd, pl, i0, ni, j0, min64(pl->tk, pl->nk - j0), PART_DQ, ws, dp);
    }
}

// The fused schedule does 5 GEMMs per tile pair but has only B*H units; the split one does 7
// over many units. Pick the shorter critical path (both give the same bits).
static ss_status_t bwd_run(const bwd_args_t *a)
{
    const plan_t *pl = a->pl;
    int64_t bh = pl->batch * pl->heads, t = pl->nthreads;
    if (5 * ((bh + t - 1) / t) * t <= 7 * bh) {
        return run_units(bwd_fused_unit, a, bh, pl);
    }
    return run_units(bwd_split_unit, a, bh * (pl->ntk + pl->ntq), pl);
}

// dvec rows of one (b, h, query tile); with zero_dq also clears those dq rows (ss_attention_bwd).
static void prep_rows(const bwd_args_t *a, int64_t u, int zero_dq)
{
    const plan_t *pl = a->pl;
    int64_t b, h, t;
    unit_bht(u, pl->heads, pl->ntq, &b, &h, &t);
    int64_t i0 = t * pl->tq, rows = min64(pl->tq, pl->nq - i0);
    rows_t o = head_rows(a->o, b, h), dout = head_rows(a->dout, b, h);
    float *dvec = stat_row(a->dvec, b, h) + i0;
    for (int64_t i = i0; i < i0 + rows; i++) {
        const float *oi = o.p + i * o.ld, *di = dout.p + i * dout.ld;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t d = 0; d < pl->dim; d++) {
            acc += oi[d] * di[d];
        }
        dvec[i - i0] = acc;
    }
    if (zero_dq) {
        rows_t dq = head_rows(a->dq, b, h);
        for (int64_t i = i0; i < i0 + rows; i++) {
            memset(dq.p + i * dq.ld, 0, sizeof(float) * (size_t)pl->dim);
        }
    }
}

static void prep_unit(const void *args, int64_t u, float *ws)
{
    (void)ws;
    prep_rows(args, u, 0);
}

// ss_attention_bwd's first pass: dvec and zeroed dq per query tile, zeroed dk/dv per key tile.
static void bwd_init_unit(const void *args, int64_t u, float *ws)
{
    const bwd_args_t *a = args;
    const plan_t *pl = a->pl;
    (void)ws;
    int64_t nqu = pl->batch * pl->heads * pl->ntq;
    if (u < nqu) {
        prep_rows(a, u, 1);
        return;
    }
    int64_t b, h, t;
    unit_bht(u - nqu, pl->heads, pl->ntk, &b, &h, &t);
    rows_t dk = head_rows(a->dk, b, h), dv = head_rows(a->dv, b, h);
    for (int64_t j = t * pl->tk; j < min64((t + 1) * pl->tk, pl->nk); j++) {
        memset(dk.p + j * dk.ld, 0, sizeof(float) * (size_t)pl->dim);
        memset(dv.p + j * dv.ld, 0, sizeof(float) * (size_t)pl->dim);
    }
}

// ---- State init / merge / finalize -------------------------------------------------------

typedef struct {
    const plan_t *pl;
    ss_attention_state_t *st;        // written (init, merge)
    const ss_attention_state_t *src; // read (merge: the other state; finalize: the state)
    ss_tensor_t *o, *lse;            // finalize outputs
} state_args_t;

static void init_unit(const void *args, int64_t u, float *ws)
{
    const state_args_t *a = args;
    const plan_t *pl = a->pl;
    int64_t b, h, t;
    (void)ws;
    unit_bht(u, pl->heads, pl->ntq, &b, &h, &t);
    int64_t i0 = t * pl->tq, rows = min64(pl->tq, pl->nq - i0);
    rows_t acc = head_rows(&a->st->acc, b, h);
    float *m = stat_row(&a->st->m, b, h) + i0, *l = stat_row(&a->st->l, b, h) + i0;
    for (int64_t i = 0; i < rows; i++) {
        memset(acc.p + (i0 + i) * acc.ld, 0, sizeof(float) * (size_t)pl->dim);
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
}

static void merge_unit(const void *args, int64_t u, float *ws)
{
    const state_args_t *a = args;
    const plan_t *pl = a->pl;
    int64_t b, h, t;
    (void)ws;
    unit_bht(u, pl->heads, pl->ntq, &b, &h, &t);
    int64_t i0 = t * pl->tq, rows = min64(pl->tq, pl->nq - i0);
    rows_t acc = head_rows(&a->st->acc, b, h), acc2 = head_rows(&a->src->acc, b, h);
    float *m = stat_row(&a->st->m, b, h) + i0, *l = stat_row(&a->st->l, b, h) + i0;
    const float *m2 = stat_row(&a->src->m, b, h) + i0, *l2 = stat_row(&a->src->l, b, h) + i0;
    for (int64_t i = 0; i < rows; i++) {
        float mx = m[i] > m2[i] ? m[i] : m2[i];
        if (mx == -INFINITY) {
            continue; // neither side has seen a key
        }
        float c1 = exp2f(m[i] - mx), c2 = exp2f(m2[i] - mx);
        float *ai = acc.p + (i0 + i) * acc.ld;
        const float *bi = acc2.p + (i0 + i) * acc2.ld;
        for (int64_t d = 0; d < pl->dim; d++) {
            ai[d] = ai[d] * c1 + bi[d] * c2;
        }
        l[i] = l[i] * c1 + l2[i] * c2;
        m[i] = mx;
    }
}

static void finalize_unit(const void *args, int64_t u, float *ws)
{
    const state_args_t *a = args;
    const plan_t *pl = a->pl;
    int64_t b, h, t;
    (void)ws;
    unit_bht(u, pl->heads, pl->ntq, &b, &h, &t);
    int64_t i0 = t * pl->tq, rows = min64(pl->tq, pl->nq - i0);
    rows_t o = head_rows(a->o, b, h), acc = head_rows(&a->src->acc, b, h);
    finalize_rows(o.p + i0 * o.ld, o.ld, a->lse ? stat_row(a->lse, b, h) + i0 : NULL,
                  acc.p + i0 * acc.ld, acc.ld, stat_row(&a->src->m, b, h) + i0,
                  stat_row(&a->src->l, b, h) + i0, rows, pl->dim);
}

// ---- Validation --------------------------------------------------------------------------

// Element offset one past the last element (0 for an empty tensor).
static int64_t extent(const ss_tensor_t *t)
{
    int64_t e = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) {
            return 0;
        }
        e += (t->shape[d] - 1) * t->stride[d];
    }
    return e;
}

// Dimensions of size > 1 sorted by stride, descending, into dims; returns their count.
static int sorted_dims(const ss_tensor_t *t, int *dims)
{
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] > 1) {
            int i = n++;
            for (; i > 0 && t->stride[dims[i - 1]] < t->stride[d]; i--) {
                dims[i] = dims[i - 1];
            }
            dims[i] = d;
        }
    }
    return n;
}

// 1 if no two indices address one element: sorted by stride, each stride is at least the extent
// of the dimensions inside it (row-major, head-major and fused-QKV views all qualify).
static int nested(const ss_tensor_t *t)
{
    int dims[SS_MAX_DIMS];
    int n = sorted_dims(t, dims);
    int64_t inner = 1;
    for (int i = n - 1; i >= 0; i--) {
        int64_t s = t->stride[dims[i]];
        if (s < inner) {
            return 0;
        }
        inner += (t->shape[dims[i]] - 1) * s;
    }
    return 1;
}

// 1 if an index difference e (|e_d| < shape[d]) of the nested layout has offset rem. Nesting
// bounds the inner dimensions' reach below the current stride, so e_d is floor or ceil.
static int lattice_hit(const ss_tensor_t *t, const int *dims, int i, int n, int64_t rem)
{
    if (i == n) {
        return rem == 0;
    }
    int64_t s = t->stride[dims[i]], lim = t->shape[dims[i]] - 1;
    int64_t q = rem >= 0 ? rem / s : -((-rem + s - 1) / s);
    for (int64_t e = q; e <= q + 1; e++) {
        if (e >= -lim && e <= lim && lattice_hit(t, dims, i + 1, n, rem - e * s)) {
            return 1;
        }
    }
    return 0;
}

// 1 if a and b may share an element: exact for equal shapes and nested strides (disjoint views
// into one fused buffer pass), by address ranges otherwise.
static int may_overlap(const ss_tensor_t *a, const ss_tensor_t *b)
{
    int64_t ea = extent(a), eb = extent(b);
    uintptr_t pa = (uintptr_t)a->data, pb = (uintptr_t)b->data;
    if (ea == 0 || eb == 0 || pa + (uintptr_t)ea * 4 <= pb || pb + (uintptr_t)eb * 4 <= pa) {
        return 0;
    }
    int same = a->ndim == b->ndim && (pb > pa ? pb - pa : pa - pb) % 4 == 0;
    for (int d = 0; same && d < a->ndim; d++) {
        same = a->shape[d] == b->shape[d] && a->stride[d] == b->stride[d];
    }
    if (!same || !nested(a)) {
        return 1;
    }
    int dims[SS_MAX_DIMS];
    int n = sorted_dims(a, dims);
    int64_t delta = pb > pa ? (int64_t)((pb - pa) / 4) : -(int64_t)((pa - pb) / 4);
    return lattice_hit(a, dims, 0, n, delta);
}

typedef struct {
    const ss_tensor_t *t;
    const char *name;
} named_t;

// Outputs must not overlap inputs nor each other. NULL entries are skipped.
static ss_status_t
check_disjoint(const named_t *outs, int nout, const named_t *ins, int nin, ss_error_t *err)
{
    for (int i = 0; i < nout; i++) {
        for (int j = 0; outs[i].t && j < nin + nout; j++) {
            const named_t *x = j < nin ? &ins[j] : &outs[j - nin];
            if (x->t && (j < nin || j - nin > i) && may_overlap(outs[i].t, x->t)) {
                SS_FAIL(err, SS_EINVAL, "attention: output %s overlaps %s; give it its own storage",
                        outs[i].name, x->name);
            }
        }
    }
    return SS_OK;
}

// A (B, N, H, D) float32 tensor with stride[3] == 1 and a non-overlapping layout.
static ss_status_t check_rows(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    if (!t) {
        SS_FAIL(err, SS_EINVAL, "attention: %s is NULL", name);
    }
    if (t->dtype != SS_F32 || t->ndim != 4) {
        SS_FAIL(err, SS_ESHAPE, "attention: %s must be float32 (B, N, H, D), got ndim %d", name,
                t->ndim);
    }
    if (t->shape[3] < 1) {
        SS_FAIL(err, SS_ESHAPE, "attention: %s head dim D = %lld, needs D >= 1", name,
                (long long)t->shape[3]);
    }
    if ((t->shape[3] > 1 && t->stride[3] != 1) || !nested(t)) {
        SS_FAIL(err, SS_ESHAPE,
                "attention: %s strides (%lld, %lld, %lld, %lld) overlap or stride[3] != 1", name,
                (long long)t->stride[0], (long long)t->stride[1], (long long)t->stride[2],
                (long long)t->stride[3]);
    }
    if (!t->data && ss_tensor_numel(t) > 0) {
        SS_FAIL(err, SS_EINVAL, "attention: %s has no data", name);
    }
    return SS_OK;
}

// t has the (B, H, D) of ref and n tokens (n < 0: any).
static ss_status_t check_like(
    const ss_tensor_t *t, const char *name, const ss_tensor_t *ref, int64_t n, ss_error_t *err)
{
    SS_TRY(check_rows(t, name, err));
    if (t->shape[0] != ref->shape[0] || t->shape[2] != ref->shape[2] ||
        t->shape[3] != ref->shape[3] || (n >= 0 && t->shape[1] != n)) {
        char a[64], b[64];
        ss_tensor_shape_str(t, a, sizeof(a));
        ss_tensor_shape_str(ref, b, sizeof(b));
        SS_FAIL(err, SS_ESHAPE, "attention: %s %s does not match q %s", name, a, b);
    }
    return SS_OK;
}

// A (B, H, N) float32 statistics tensor with stride[2] == 1 matching q's B, H, Nq.
static ss_status_t
check_stats(const ss_tensor_t *t, const char *name, const ss_tensor_t *q, ss_error_t *err)
{
    if (!t) {
        SS_FAIL(err, SS_EINVAL, "attention: %s is NULL", name);
    }
    if (t->dtype != SS_F32 || t->ndim != 3 || t->shape[0] != q->shape[0] ||
        t->shape[1] != q->shape[2] || t->shape[2] != q->shape[1]) {
        SS_FAIL(err, SS_ESHAPE, "attention: %s must be float32 (B, H, Nq) = (%lld, %lld, %lld)",
                name, (long long)q->shape[0], (long long)q->shape[2], (long long)q->shape[1]);
    }
    if ((t->shape[2] > 1 && t->stride[2] != 1) || !nested(t)) {
        SS_FAIL(err, SS_ESHAPE, "attention: %s needs stride[2] == 1 and no overlap", name);
    }
    if (!t->data && ss_tensor_numel(t) > 0) {
        SS_FAIL(err, SS_EINVAL, "attention: %s has no data", name);
    }
    return SS_OK;
}

// Params, exec and (when need_work) the workspace for queries shaped like q.
static ss_status_t check_exec(const ss_tensor_t *q,
                              const ss_attention_params_t *p,
                              const ss_exec_t *ex,
                              int need_work,
                              ss_error_t *err)
{
    if (p && (!isfinite(p->scale) || p->tile_q < 0 || p->tile_q > TILE_MAX || p->tile_k < 0 ||
              p->tile_k > TILE_MAX)) {
        SS_FAIL(err, SS_EINVAL,
                "attention: params scale %g, tile_q %d, tile_k %d; need a finite scale and tiles "
                "in [0, %d]",
                (double)p->scale, p->tile_q, p->tile_k, TILE_MAX);
    }
    if (!ex || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "attention: exec is NULL or has nthreads < 1");
    }
    if (need_work) {
        // need_work == 2: ss_attention_bwd, which also keeps dvec in the workspace.
        size_t need = need_work == 2 ? ss_attention_workspace_size(q->shape[0], q->shape[1],
                                                                   q->shape[2], p, ex->nthreads)
                                     : tile_work_bytes(p, ex->nthreads);
        if (!ex->work || ex->work_bytes < need) {
            SS_FAIL(err, SS_EINVAL,
                    "attention: workspace of %zu bytes, needs %zu; size it with "
                    "ss_attention_workspace_size()",
                    ex->work ? ex->work_bytes : (size_t)0, need);
        }
    }
    return SS_OK;
}

static ss_status_t check_state(const ss_attention_state_t *st, const char *name, ss_error_t *err)
{
    if (!st) {
        SS_FAIL(err, SS_EINVAL, "attention: %s is NULL", name);
    }
    SS_TRY(check_rows(&st->acc, "state acc", err));
    SS_TRY(check_stats(&st->m, "state m", &st->acc, err));
    SS_TRY(check_stats(&st->l, "state l", &st->acc, err));
    named_t outs[3] = {{&st->acc, "state acc"}, {&st->m, "state m"}, {&st->l, "state l"}};
    return check_disjoint(outs, 3, NULL, 0, err);
}

// ---- Public API --------------------------------------------------------------------------

size_t ss_attention_workspace_size(
    int64_t batch, int64_t nq, int64_t heads, const ss_attention_params_t *p, int nthreads)
{
    return tile_work_bytes(p, nthreads) + round_line(batch * heads * nq) * sizeof(float);
}

static ss_status_t fwd_check(const ss_tensor_t *o,
                             const ss_tensor_t *lse,
                             const ss_tensor_t *q,
                             const ss_tensor_t *k,
                             const ss_tensor_t *v,
                             const ss_attention_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(check_rows(q, "q", err));
    SS_TRY(check_like(k, "k", q, -1, err));
    SS_TRY(check_like(v, "v", q, k->shape[1], err));
    SS_TRY(check_like(o, "o", q, q->shape[1], err));
    if (lse) {
        SS_TRY(check_stats(lse, "lse", q, err));
    }
    if (k->shape[1] < 1 && ss_tensor_numel(q) > 0) {
        SS_FAIL(err, SS_ESHAPE,
                "attention: k and v have no tokens; softmax needs at least one key");
    }
    SS_TRY(check_exec(q, p, ex, 1, err));
    named_t outs[2] = {{o, "o"}, {lse, "lse"}};
    named_t ins[3] = {{q, "q"}, {k, "k"}, {v, "v"}};
    return check_disjoint(outs, 2, ins, 3, err);
}

ss_status_t ss_attention_fwd(ss_tensor_t *o,
                             ss_tensor_t *lse,
                             const ss_tensor_t *q,
                             const ss_tensor_t *k,
                             const ss_tensor_t *v,
                             const ss_attention_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(fwd_check(o, lse, q, k, v, p, ex, err));
    plan_t pl = make_plan(q, k->shape[1], p, ex);
    fwd_args_t a = {&pl, o, lse, NULL, q, k, v};
    SS_TRY(run_units(fwd_full_unit, &a, pl.batch * pl.heads * pl.ntq, &pl));
    return SS_OK;
}

ss_status_t ss_attention_fwd_init(ss_attention_state_t *st, const ss_exec_t *ex, ss_error_t *err)
{
    SS_TRY(check_state(st, "state", err));
    SS_TRY(check_exec(&st->acc, NULL, ex, 0, err));
    plan_t pl = make_plan(&st->acc, 0, NULL, ex);
    pl.work = NULL;
    state_args_t a = {&pl, st, NULL, NULL, NULL};
    return run_units(init_unit, &a, pl.batch * pl.heads * pl.ntq, &pl);
}

ss_status_t ss_attention_fwd_block(ss_attention_state_t *st,
                                   const ss_tensor_t *q,
                                   const ss_tensor_t *k,
                                   const ss_tensor_t *v,
                                   const ss_attention_params_t *p,
                                   const ss_exec_t *ex,
                                   ss_error_t *err)
{
    SS_TRY(check_state(st, "state", err));
    SS_TRY(check_rows(q, "q", err));
    SS_TRY(check_like(&st->acc, "state acc", q, q->shape[1], err));
    SS_TRY(check_like(k, "k", q, -1, err));
    SS_TRY(check_like(v, "v", q, k->shape[1], err));
    SS_TRY(check_exec(q, p, ex, 1, err));
    named_t outs[3] = {{&st->acc, "state acc"}, {&st->m, "state m"}, {&st->l, "state l"}};
    named_t ins[3] = {{q, "q"}, {k, "k"}, {v, "v"}};
    SS_TRY(check_disjoint(outs, 3, ins, 3, err));
    if (k->shape[1] == 0) {
        return SS_OK;
    }
    plan_t pl = make_plan(q, k->shape[1], p, ex);
    fwd_args_t a = {&pl, NULL, NULL, st, q, k, v};
    return run_units(fwd_block_unit, &a, pl.batch * pl.heads * pl.ntq, &pl);
}

ss_status_t ss_attention_fwd_merge(ss_attention_state_t *st,
                                   const ss_attention_state_t *other,
                                   const ss_exec_t *ex,
                                   ss_error_t *err)
{
    SS_TRY(check_state(st, "state", err));
    SS_TRY(check_state(other, "other state", err));
    SS_TRY(check_like(&other->acc, "other acc", &st->acc, st->acc.shape[1], err));
    SS_TRY(check_exec(&st->acc, NULL, ex, 0, err));
    named_t outs[3] = {{&st->acc, "state acc"}, {&st->m, "state m"}, {&st->l, "state l"}};
    named_t ins[3] = {{&other->acc, "other acc"}, {&other->m, "other m"}, {&other->l, "other l"}};
    SS_TRY(check_disjoint(outs, 3, ins, 3, err));
    plan_t pl = make_plan(&st->acc, 0, NULL, ex);
    pl.work = NULL;
    state_args_t a = {&pl, st, other, NULL, NULL};
    return run_units(merge_unit, &a, pl.batch * pl.heads * pl.ntq, &pl);
}

// 1 if a and b are the same view (same data, shape and strides).
static int same_view(const ss_tensor_t *a, const ss_tensor_t *b)
{
    if (a->data != b->data || a->ndim != b->ndim) {
        return 0;
    }
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] != b->shape[d] || a->stride[d] != b->stride[d]) {
            return 0;
        }
    }
    return 1;
}

ss_status_t ss_attention_fwd_finalize(ss_tensor_t *o,
                                      ss_tensor_t *lse,
                                      const ss_attention_state_t *st,
                                      const ss_exec_t *ex,
                                      ss_error_t *err)
{
    SS_TRY(check_state(st, "state", err));
    SS_TRY(check_like(o, "o", &st->acc, st->acc.shape[1], err));
    if (lse) {
        SS_TRY(check_stats(lse, "lse", &st->acc, err));
    }
    SS_TRY(check_exec(&st->acc, NULL, ex, 0, err));
    // In place is fine (row by row), so the exact aliases o == acc and lse == m are allowed.
    int o_acc = same_view(o, &st->acc), lse_m = lse && same_view(lse, &st->m);
    named_t outs[2] = {{o, "o"}, {lse, "lse"}};
    named_t ins[3] = {{o_acc ? NULL : &st->acc, "state acc"},
                      {lse_m ? NULL : &st->m, "state m"},
                      {&st->l, "state l"}};
    SS_TRY(check_disjoint(outs, 2, ins, 3, err));
    if (o_acc && lse && may_overlap(lse, &st->acc)) {
        SS_FAIL(err, SS_EINVAL,
                "attention: output lse overlaps state acc; give it its own storage");
    }
    plan_t pl = make_plan(&st->acc, 0, NULL, ex);
    pl.work = NULL;
    state_args_t a = {&pl, NULL, st, o, lse};
    return run_units(finalize_unit, &a, pl.batch * pl.heads * pl.ntq, &pl);
}

static ss_status_t bwd_block_check(const ss_tensor_t *dq,
                                   const ss_tensor_t *dk,
                                   const ss_tensor_t *dv,
                                   const ss_tensor_t *q,
                                   const ss_tensor_t *k,
                                   const ss_tensor_t *v,
                                   const ss_tensor_t *dout,
                                   const ss_tensor_t *lse,
                                   const ss_tensor_t *dvec,
                                   ss_error_t *err)
{
    SS_TRY(check_rows(q, "q", err));
    SS_TRY(check_like(k, "k", q, -1, err));
    SS_TRY(check_like(v, "v", q, k->shape[1], err));
    SS_TRY(check_like(dout, "dout", q, q->shape[1], err));
    SS_TRY(check_like(dq, "dq", q, q->shape[1], err));
    SS_TRY(check_like(dk, "dk", q, k->shape[1], err));
    SS_TRY(check_like(dv, "dv", q, k->shape[1], err));
    SS_TRY(check_stats(lse, "lse", q, err));
    if (dvec) { // NULL from ss_attention_bwd, which makes its own
        SS_TRY(check_stats(dvec, "dvec", q, err));
    }
    named_t outs[3] = {{dq, "dq"}, {dk, "dk"}, {dv, "dv"}};
    named_t ins[6] = {{q, "q"}, {k, "k"}, {v, "v"}, {dout, "dout"}, {lse, "lse"}, {dvec, "dvec"}};
    return check_disjoint(outs, 3, ins, 6, err);
}

ss_status_t ss_attention_bwd_block(ss_tensor_t *dq,
                                   ss_tensor_t *dk,
                                   ss_tensor_t *dv,
                                   const ss_tensor_t *q,
                                   const ss_tensor_t *k,
                                   const ss_tensor_t *v,
                                   const ss_tensor_t *dout,
                                   const ss_tensor_t *lse,
                                   const ss_tensor_t *dvec,
                                   const ss_attention_params_t *p,
                                   const ss_exec_t *ex,
                                   ss_error_t *err)
{
    SS_TRY(bwd_block_check(dq, dk, dv, q, k, v, dout, lse, dvec, err));
    SS_TRY(check_exec(q, p, ex, 1, err));
    plan_t pl = make_plan(q, k->shape[1], p, ex);
    if (pl.nk == 0 || pl.nq == 0) {
        return SS_OK;
    }
    bwd_args_t a = {&pl, dq, dk, dv, q, k, v, NULL, dout, lse, dvec};
    return bwd_run(&a);
}

ss_status_t ss_attention_bwd_prep(ss_tensor_t *dvec,
                                  const ss_tensor_t *o,
                                  const ss_tensor_t *dout,
                                  const ss_exec_t *ex,
                                  ss_error_t *err)
{
    SS_TRY(check_rows(o, "o", err));
    SS_TRY(check_like(dout, "dout", o, o->shape[1], err));
    SS_TRY(check_stats(dvec, "dvec", o, err));
    SS_TRY(check_exec(o, NULL, ex, 0, err));
    named_t outs[1] = {{dvec, "dvec"}};
    named_t ins[2] = {{o, "o"}, {dout, "dout"}};
    SS_TRY(check_disjoint(outs, 1, ins, 2, err));
    plan_t pl = make_plan(o, 0, NULL, ex);
    pl.work = NULL;
    bwd_args_t a = {&pl, NULL, NULL, NULL, NULL, NULL, NULL, o, dout, NULL, dvec};
    return run_units(prep_unit, &a, pl.batch * pl.heads * pl.ntq, &pl);
}

ss_status_t ss_attention_bwd(ss_tensor_t *dq,
                             ss_tensor_t *dk,
                             ss_tensor_t *dv,
                             const ss_tensor_t *q,
                             const ss_tensor_t *k,
                             const ss_tensor_t *v,
                             const ss_tensor_t *o,
                             const ss_tensor_t *dout,
                             const ss_tensor_t *lse,
                             const ss_attention_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(bwd_block_check(dq, dk, dv, q, k, v, dout, lse, NULL, err));
    SS_TRY(check_like(o, "o", q, q->shape[1], err));
    named_t outs[3] = {{dq, "dq"}, {dk, "dk"}, {dv, "dv"}};
    named_t ins[1] = {{o, "o"}};
    SS_TRY(check_disjoint(outs, 3, ins, 1, err));
    SS_TRY(check_exec(q, p, ex, 2, err));
    plan_t pl = make_plan(q, k->shape[1], p, ex);
    // dvec lives after the per-thread slices: (B, H, Nq) contiguous.
    ss_tensor_t dvec;
    int64_t shape[3] = {pl.batch, pl.heads, pl.nq};
    ss_tensor_init(&dvec, SS_F32, 3, shape, pl.work + (size_t)pl.nthreads * pl.thread_floats, NULL);
    bwd_args_t a = {&pl, dq, dk, dv, q, k, v, o, dout, lse, &dvec};
    int64_t bh = pl.batch * pl.heads;
    SS_TRY(run_units(bwd_init_unit, &a, bh * (pl.ntq + pl.ntk), &pl));
    if (pl.nk == 0 || pl.nq == 0) {
        return SS_OK;
    }
    return bwd_run(&a);
}
