#include "shardseg/norm.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#include "kernels_impl.h"

// Elements per partial of an (n, c) plane. Fixed, not derived from the thread count, so the chunk
// partials and therefore the folded results are the same bits for any thread count; 4096 floats
// (16 KiB) stay in L1 between the two passes of the statistics.
#define CHUNK 4096
// Layer-norm backward folds dgamma/dbeta over at most this many fixed row chunks.
#define LN_MAX_CHUNKS 64

typedef struct {
    int64_t n, c, g, cpg; // batch, channels, groups, channels per group
    int64_t s, nch;       // elements per (n, c) plane, CHUNK chunks per plane
} geom_t;

static geom_t geom_of(const ss_tensor_t *x, const ss_instnorm_params_t *p)
{
    geom_t q;
    q.n = x->shape[0];
    q.c = x->shape[1];
    q.g = p->groups > 0 ? p->groups : q.c;
    q.cpg = q.g > 0 ? q.c / q.g : 0;
    q.s = 1;
    for (int d = 2; d < x->ndim; d++) {
        q.s *= x->shape[d];
    }
    q.nch = (q.s + CHUNK - 1) / CHUNK;
    return q;
}

static float *plane_of(const ss_tensor_t *t, int64_t n, int64_t c)
{
    return (float *)t->data + n * t->stride[0] + c * t->stride[1];
}

static int64_t chunk_len(const geom_t *q, int64_t ch)
{
    int64_t left = q->s - ch * CHUNK;
    return left < CHUNK ? left : CHUNK;
}

static void moments_merge1(ss_norm_moments_t *a, const ss_norm_moments_t *b)
{
    if (b->count == 0) {
        return;
    }
    if (a->count == 0) {
        *a = *b;
        return;
    }
    double n = a->count + b->count;
    double d = b->mean - a->mean;
    a->mean += d * (b->count / n);
    a->m2 += b->m2 + d * d * (a->count / n * b->count);
    a->count = n;
}

void ss_norm_moments_merge(ss_norm_moments_t *acc, const ss_norm_moments_t *b, int64_t len)
{
    for (int64_t i = 0; i < len; i++) {
        moments_merge1(&acc[i], &b[i]);
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

// (N, C, S...) with each (n, c) plane contiguous.
static ss_status_t volume_check(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    SS_TRY(f32_check(t, name, err));
    if (t->ndim < 2) {
        SS_FAIL(err, SS_ESHAPE, "%s: expected (N, C, spatial...), got %d dims", name, t->ndim);
    }
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 2; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) {
            SS_FAIL(err, SS_ESHAPE, "%s: each (n, c) plane must be contiguous (dim %d stride %lld)",
                    name, d, (long long)t->stride[d]);
        }
        want *= t->shape[d];
    }
    return SS_OK;
}

static ss_status_t same_shape_check(
    const ss_tensor_t *a, const char *an, const ss_tensor_t *b, const char *bn, ss_error_t *err)
{
    if (!ss_tensor_same_shape(a, b)) {
        char sa[96], sb[96];
        ss_tensor_shape_str(a, sa, sizeof(sa));
        ss_tensor_shape_str(b, sb, sizeof(sb));
        SS_FAIL(err, SS_ESHAPE, "%s %s and %s %s must have the same shape", an, sa, bn, sb);
    }
    return SS_OK;
}

// A contiguous float vector of exactly len elements (any shape); optional ones may be NULL.
static ss_status_t
vec_check(const ss_tensor_t *t, int64_t len, int optional, const char *name, ss_error_t *err)
{
    if (t == NULL) {
        if (optional) {
            return SS_OK;
        }
        SS_FAIL(err, SS_EINVAL, "%s: missing tensor", name);
    }
    SS_TRY(f32_check(t, name, err));
    if (ss_tensor_numel(t) != len || !ss_tensor_is_contiguous(t)) {
        SS_FAIL(err, SS_ESHAPE, "%s: expected %lld contiguous elements, got %lld", name,
                (long long)len, (long long)ss_tensor_numel(t));
    }
    return SS_OK;
}

static ss_status_t
params_check(const ss_tensor_t *x, const ss_instnorm_params_t *p, ss_error_t *err)
{
    if (p == NULL || !(p->eps > 0.0f) || !isfinite(p->eps)) {
        SS_FAIL(err, SS_EINVAL, "instnorm: eps must be a positive finite number");
    }
    int64_t c = x->shape[1];
    if (p->groups < 0 || (p->groups > 0 && (p->groups > c || c % p->groups != 0))) {
        SS_FAIL(err, SS_EINVAL,
                "instnorm: groups %lld must be 0 (instance norm) or divide C = %lld",
                (long long)p->groups, (long long)c);
    }
    return SS_OK;
}

static ss_status_t work_check(const ss_exec_t *ex, size_t need, const char *op, ss_error_t *err)
{
    if (ex == NULL || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "%s: exec with nthreads >= 1 required", op);
    }
    if (need > 0 && (ex->work == NULL || ex->work_bytes < need)) {
        SS_FAIL(err, SS_EINVAL, "%s: workspace of %zu bytes is smaller than the %zu needed", op,
                ex->work_bytes, need);
    }
    return SS_OK;
}

static ss_status_t
affine_check(const ss_tensor_t *gamma, const ss_tensor_t *beta, int64_t c, ss_error_t *err)
{
    SS_TRY(vec_check(gamma, c, 1, "gamma", err));
    return vec_check(beta, c, 1, "beta", err);
}

// mean/rstd saved by the forward: N*G floats each.
static ss_status_t saved_check(
    const ss_tensor_t *mean, const ss_tensor_t *rstd, int64_t len, int optional, ss_error_t *err)
{
    SS_TRY(vec_check(mean, len, optional, "mean", err));
    return vec_check(rstd, len, optional, "rstd", err);
}

// ---- instance / group norm: inner kernels -----------------------------------------------------

static size_t round64(size_t b)
{
    return (b + 63) / 64 * 64;
}

static int64_t items_of(const geom_t *q)
{
    return q->n * q->c * q->nch;
}

size_t ss_instnorm_workspace_size(const ss_tensor_t *x, const ss_instnorm_params_t *p)
{
    if (x == NULL || p == NULL || x->ndim < 2) {
        return 0;
    }
    geom_t q = geom_of(x, p);
    // Chunk partials (<= 3 doubles each), then the one-shot calls' stats or sums (<= 3 per plane).
    return round64((size_t)items_of(&q) * sizeof(ss_norm_moments_t)) +
           round64((size_t)(q.n * q.c) * 3 * sizeof(double));
}

// Two passes over a chunk that stays in L1: the mean, then squared deviations from it.
SS_CLONES static void chunk_moments(ss_norm_moments_t *m, const float *x, int64_t len)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < len; i++) {
        s += x[i];
    }
    double mean = s / (double)len;
    double q = 0;
#pragma omp simd reduction(+ : q)
    for (int64_t i = 0; i < len; i++) {
        double d = (double)x[i] - mean;
        q += d * d;
    }
    m->count = (double)len;
    m->mean = mean;
    m->m2 = q;
}

static void stats_run(ss_norm_moments_t *stats,
                      const ss_tensor_t *x,
                      const geom_t *q,
                      ss_norm_moments_t *part,
                      int nt)
{
    int64_t items = items_of(q), ngroups = q->n * q->g;
#pragma omp parallel num_threads(nt) default(none) shared(stats, x, q, part, items, ngroups)
    {
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            int64_t pl = it / q->nch, ch = it % q->nch;
            const float *xp = plane_of(x, pl / q->c, pl % q->c) + ch * CHUNK;
            chunk_moments(&part[it], xp, chunk_len(q, ch));
        }
        // A group's planes are consecutive, so its chunk partials are one run of cpg*nch.
#pragma omp for schedule(static)
        for (int64_t ng = 0; ng < ngroups; ng++) {
            int64_t first = ((ng / q->g) * q->c + (ng % q->g) * q->cpg) * q->nch;
            ss_norm_moments_t acc = {0, 0, 0};
            for (int64_t k = 0; k < q->cpg * q->nch; k++) {
                moments_merge1(&acc, &part[first + k]);
            }
            stats[ng] = acc;
        }
    }
}

SS_CLONES static void
chunk_apply(float *y, const float *x, int64_t len, float mu, float sc, float sh)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        y[i] = (x[i] - mu) * sc + sh;
    }
}

static void stat_mean_rstd(const ss_norm_moments_t *m, float eps, float *mu, float *rs)
{
    double var = m->m2 / m->count;
    *mu = (float)m->mean;
    *rs = (float)(1.0 / sqrt(var + (double)eps));
}

SS_CLONES static void chunk_add(float *restrict y, const float *restrict r, int64_t len)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        y[i] += r[i];
    }
}

// The epilogue on a chunk of y that chunk_apply has just written (it is in L1).
static void chunk_epilogue(float *y, const float *res, int64_t len, const ss_instnorm_epilogue_t *e)
{
    if (res != NULL) {
        chunk_add(y, res, len);
    }
    if (e->act == SS_NORM_ACT_RELU) {
        ss__relu_blk(y, y, len);
    } else if (e->act == SS_NORM_ACT_LEAKY) {
        ss__leaky_blk(y, y, len, e->slope);
    }
}

static void apply_run(ss_tensor_t *y,
                      const ss_tensor_t *x,
                      const float *gamma,
                      const float *beta,
                      const ss_norm_moments_t *stats,
                      float eps,
                      const ss_instnorm_epilogue_t *e,
                      const geom_t *q,
                      int nt)
{
    int64_t items = items_of(q);
#pragma omp parallel for num_threads(nt) schedule(static) default(none)                            \
    shared(y, x, gamma, beta, stats, eps, e, q, items)
    for (int64_t it = 0; it < items; it++) {
        int64_t pl = it / q->nch, ch = it % q->nch, n = pl / q->c, c = pl % q->c;
        float mu, rs;
        stat_mean_rstd(&stats[n * q->g + c / q->cpg], eps, &mu, &rs);
        float sc = gamma ? rs * gamma[c] : rs, sh = beta ? beta[c] : 0.0f;
        float *yc = plane_of(y, n, c) + ch * CHUNK;
        const float *rc = e != NULL && e->res != NULL ? plane_of(e->res, n, c) + ch * CHUNK : NULL;
        chunk_apply(yc, plane_of(x, n, c) + ch * CHUNK, chunk_len(q, ch), mu, sc, sh);
        if (e != NULL) {
            chunk_epilogue(yc, rc, chunk_len(q, ch), e);
        }
    }
}

SS_CLONES static void
chunk_dsums(double *out, const float *dy, const float *x, int64_t len, double mu)
{
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < len; i++) {
        double d = dy[i];
        a += d;
        b += d * ((double)x[i] - mu);
    }
    out[0] = a;
    out[1] = b;
}

static void bwd_partial_run(double *sums,
                            const ss_tensor_t *dy,
                            const ss_tensor_t *x,
                            const float *mean,
                            const float *rstd,
                            const geom_t *q,
                            double *part,
                            int nt)
{
    int64_t items = items_of(q), planes = q->n * q->c;
#pragma omp parallel num_threads(nt) default(none)                                                 \
    shared(sums, dy, x, mean, rstd, q, part, items, planes)
    {
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            int64_t pl = it / q->nch, ch = it % q->nch, n = pl / q->c, c = pl % q->c;
            chunk_dsums(&part[2 * it], plane_of(dy, n, c) + ch * CHUNK,
                        plane_of(x, n, c) + ch * CHUNK, chunk_len(q, ch),
                        (double)mean[n * q->g + c / q->cpg]);
        }
#pragma omp for schedule(static)
        for (int64_t pl = 0; pl < planes; pl++) {
            double a = 0, b = 0;
            for (int64_t k = pl * q->nch; k < (pl + 1) * q->nch; k++) {
                a += part[2 * k];
                b += part[2 * k + 1];
            }
            int64_t n = pl / q->c, c = pl % q->c;
            sums[3 * pl] = a;
            sums[3 * pl + 1] = b * (double)rstd[n * q->g + c / q->cpg];
            sums[3 * pl + 2] = (double)q->s;
        }
    }
}

// dgamma[c] = sum_n sum dy*xhat, dbeta[c] = sum_n sum dy, folded over n in order.
static void dparams_from_sums(float *dgamma, float *dbeta, const double *sums, const geom_t *q)
{
    for (int64_t c = 0; c < q->c; c++) {
        double g = 0, b = 0;
        for (int64_t n = 0; n < q->n; n++) {
            b += sums[3 * (n * q->c + c)];
            g += sums[3 * (n * q->c + c) + 1];
        }
        if (dgamma) {
            dgamma[c] = (float)g;
        }
        if (dbeta) {
            dbeta[c] = (float)b;
        }
    }
}

SS_CLONES static void chunk_dx(float *dx,
                               const float *dy,
                               const float *x,
                               int64_t len,
                               float mu,
                               float rs,
                               float k1,
                               float ka,
                               float kb)
{
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        float xh = (x[i] - mu) * rs;
        dx[i] = k1 * dy[i] - (ka + xh * kb);
    }
}

// dx = rstd * (gamma_c dy - (A + xhat B) / M) with A, B the group sums of gamma * sum dy and
// gamma * sum dy*xhat and M the group's element count, all global.
static void bwd_apply_run(ss_tensor_t *dx,
                          const ss_tensor_t *dy,
                          const ss_tensor_t *x,
                          const float *gamma,
                          const float *mean,
                          const float *rstd,
                          const double *sums,
                          const geom_t *q,
                          int nt)
{
    int64_t items = items_of(q);
#pragma omp parallel for num_threads(nt) schedule(static) default(none)                            \
    shared(dx, dy, x, gamma, mean, rstd, sums, q, items)
    for (int64_t it = 0; it < items; it++) {
        int64_t pl = it / q->nch, ch = it % q->nch, n = pl / q->c, c = pl % q->c;
        int64_t g = c / q->cpg;
        double a = 0, b = 0, m = 0;
        for (int64_t cc = g * q->cpg; cc < (g + 1) * q->cpg; cc++) {
            const double *s = &sums[3 * (n * q->c + cc)];
            double gm = gamma ? gamma[cc] : 1.0;
            a += gm * s[0];
            b += gm * s[1];
            m += s[2];
        }
        double rs = rstd[n * q->g + g];
        float k1 = (float)(rs * (gamma ? gamma[c] : 1.0f));
        chunk_dx(plane_of(dx, n, c) + ch * CHUNK, plane_of(dy, n, c) + ch * CHUNK,
                 plane_of(x, n, c) + ch * CHUNK, chunk_len(q, ch), mean[n * q->g + g], (float)rs,
                 k1, (float)(rs * a / m), (float)(rs * b / m));
    }
}

// ---- instance / group norm: public stages -----------------------------------------------------

static ss_status_t x_check(const ss_tensor_t *x, const ss_instnorm_params_t *p, ss_error_t *err)
{
    SS_TRY(volume_check(x, "x", err));
    return params_check(x, p, err);
}

ss_status_t ss_instnorm_stats_partial(ss_norm_moments_t *stats,
                                      const ss_tensor_t *x,
                                      const ss_instnorm_params_t *p,
                                      const ss_exec_t *ex,
                                      ss_error_t *err)
{
    SS_TRY(x_check(x, p, err));
    geom_t q = geom_of(x, p);
    SS_TRY(work_check(ex, (size_t)items_of(&q) * sizeof(ss_norm_moments_t), "instnorm", err));
    if (stats == NULL) {
        SS_FAIL(err, SS_EINVAL, "instnorm: stats output is NULL");
    }
    memset(stats, 0, (size_t)(q.n * q.g) * sizeof(*stats));
    if (q.s == 0 || q.n * q.c == 0) {
        return SS_OK; // an empty slab contributes count 0
    }
    stats_run(stats, x, &q, ex->work, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_instnorm_stats_merge(ss_norm_moments_t *out,
                                    const ss_norm_moments_t *parts,
                                    int nparts,
                                    int64_t len,
                                    ss_error_t *err)
{
    if (nparts < 1 || len < 0 || out == NULL || (parts == NULL && len > 0)) {
        SS_FAIL(err, SS_EINVAL, "instnorm merge: need nparts >= 1 (got %d), len >= 0 and arrays",
                nparts);
    }
    for (int64_t j = 0; j < len; j++) {
        ss_norm_moments_t acc = parts[j];
        for (int r = 1; r < nparts; r++) {
            moments_merge1(&acc, &parts[(int64_t)r * len + j]);
        }
        out[j] = acc;
    }
    return SS_OK;
}

static ss_status_t apply_check(const ss_tensor_t *y,
                               const ss_tensor_t *mean,
                               const ss_tensor_t *rstd,
                               const ss_tensor_t *x,
                               const ss_tensor_t *gamma,
                               const ss_tensor_t *beta,
                               const ss_norm_moments_t *stats,
                               const ss_instnorm_params_t *p,
                               const ss_exec_t *ex,
                               ss_error_t *err)
{
    SS_TRY(x_check(x, p, err));
    SS_TRY(volume_check(y, "y", err));
    SS_TRY(same_shape_check(y, "y", x, "x", err));
    geom_t q = geom_of(x, p);
    SS_TRY(affine_check(gamma, beta, q.c, err));
    SS_TRY(saved_check(mean, rstd, q.n * q.g, 1, err));
    SS_TRY(work_check(ex, 0, "instnorm", err));
    if (stats == NULL && q.n * q.g > 0) {
        SS_FAIL(err, SS_EINVAL, "instnorm: stats input is NULL");
    }
    for (int64_t i = 0; i < q.n * q.g; i++) {
        if (!(stats[i].count > 0)) {
            SS_FAIL(err, SS_EINVAL, "instnorm: group %lld has no elements in the merged stats",
                    (long long)i);
        }
    }
    return SS_OK;
}

static void apply_stage(ss_tensor_t *y,
                        ss_tensor_t *mean,
                        ss_tensor_t *rstd,
                        const ss_tensor_t *x,
                        const ss_tensor_t *gamma,
                        const ss_tensor_t *beta,
                        const ss_norm_moments_t *stats,
                        const ss_instnorm_params_t *p,
                        const ss_instnorm_epilogue_t *e,
                        const ss_exec_t *ex)
{
    geom_t q = geom_of(x, p);
    for (int64_t i = 0; i < q.n * q.g; i++) {
        float mu, rs;
        stat_mean_rstd(&stats[i], p->eps, &mu, &rs);
        if (mean) {
            ss_tensor_f32(mean)[i] = mu;
            ss_tensor_f32(rstd)[i] = rs;
        }
    }
    if (q.s > 0 && q.n * q.c > 0) {
        apply_run(y, x, gamma ? ss_tensor_f32(gamma) : NULL, beta ? ss_tensor_f32(beta) : NULL,
                  stats, p->eps, e, &q, ex->nthreads);
    }
}

static ss_status_t epilogue_check(const ss_instnorm_epilogue_t *e,
                                  const ss_tensor_t *y,
                                  const ss_tensor_t *x,
                                  ss_error_t *err)
{
    if (e == NULL) {
        return SS_OK;
    }
    if (e->act != SS_NORM_ACT_NONE && e->act != SS_NORM_ACT_RELU && e->act != SS_NORM_ACT_LEAKY) {
        SS_FAIL(err, SS_EINVAL, "instnorm: unknown epilogue activation %d", (int)e->act);
    }
    if (e->act == SS_NORM_ACT_LEAKY && !isfinite(e->slope)) {
        SS_FAIL(err, SS_EINVAL, "instnorm: the epilogue's leaky slope must be finite");
    }
    if (e->res != NULL) {
        SS_TRY(volume_check(e->res, "res", err));
        SS_TRY(same_shape_check(e->res, "res", x, "x", err));
        if (e->res->data == y->data) {
            SS_FAIL(err, SS_EINVAL, "instnorm: the epilogue's res must not be y");
        }
    }
    return SS_OK;
}

ss_status_t ss_instnorm_fwd_apply_act(ss_tensor_t *y,
                                      ss_tensor_t *mean,
                                      ss_tensor_t *rstd,
                                      const ss_tensor_t *x,
                                      const ss_tensor_t *gamma,
                                      const ss_tensor_t *beta,
                                      const ss_norm_moments_t *stats,
                                      const ss_instnorm_params_t *p,
                                      const ss_instnorm_epilogue_t *e,
                                      const ss_exec_t *ex,
                                      ss_error_t *err)
{
    SS_TRY(apply_check(y, mean, rstd, x, gamma, beta, stats, p, ex, err));
    if ((mean == NULL) != (rstd == NULL)) {
        SS_FAIL(err, SS_EINVAL, "instnorm: give both mean and rstd, or neither");
    }
    SS_TRY(epilogue_check(e, y, x, err));
    apply_stage(y, mean, rstd, x, gamma, beta, stats, p, e, ex);
    return SS_OK;
}

ss_status_t ss_instnorm_fwd_apply(ss_tensor_t *y,
                                  ss_tensor_t *mean,
                                  ss_tensor_t *rstd,
                                  const ss_tensor_t *x,
                                  const ss_tensor_t *gamma,
                                  const ss_tensor_t *beta,
                                  const ss_norm_moments_t *stats,
                                  const ss_instnorm_params_t *p,
                                  const ss_exec_t *ex,
                                  ss_error_t *err)
{
    return ss_instnorm_fwd_apply_act(y, mean, rstd, x, gamma, beta, stats, p, NULL, ex, err);
}

// The one-shot calls keep their global stats (forward) or sums (backward) in the workspace, after
// the per-chunk partials that the staged functions use.
static void *work_tail(const ss_exec_t *ex, const geom_t *q)
{
    return (char *)ex->work + round64((size_t)items_of(q) * sizeof(ss_norm_moments_t));
}

ss_status_t ss_instnorm_fwd(ss_tensor_t *y,
                            ss_tensor_t *mean,
                            ss_tensor_t *rstd,
                            const ss_tensor_t *x,
                            const ss_tensor_t *gamma,
                            const ss_tensor_t *beta,
                            const ss_instnorm_params_t *p,
                            const ss_exec_t *ex,
                            ss_error_t *err)
{
    SS_TRY(x_check(x, p, err));
    geom_t q = geom_of(x, p);
    SS_TRY(work_check(ex, ss_instnorm_workspace_size(x, p), "instnorm", err));
    ss_norm_moments_t *stats = work_tail(ex, &q);
    SS_TRY(ss_instnorm_stats_partial(stats, x, p, ex, err));
    return ss_instnorm_fwd_apply(y, mean, rstd, x, gamma, beta, stats, p, ex, err);
}

static ss_status_t bwd_check(const ss_tensor_t *dy,
                             const ss_tensor_t *x,
                             const ss_tensor_t *mean,
                             const ss_tensor_t *rstd,
                             const ss_instnorm_params_t *p,
                             ss_error_t *err)
{
    SS_TRY(x_check(x, p, err));
    SS_TRY(volume_check(dy, "dy", err));
    SS_TRY(same_shape_check(dy, "dy", x, "x", err));
    geom_t q = geom_of(x, p);
    return saved_check(mean, rstd, q.n * q.g, 0, err);
}

ss_status_t ss_instnorm_bwd_partial(double *sums,
                                    ss_tensor_t *dgamma,
                                    ss_tensor_t *dbeta,
                                    const ss_tensor_t *dy,
                                    const ss_tensor_t *x,
                                    const ss_tensor_t *mean,
                                    const ss_tensor_t *rstd,
                                    const ss_instnorm_params_t *p,
                                    const ss_exec_t *ex,
                                    ss_error_t *err)
{
    SS_TRY(bwd_check(dy, x, mean, rstd, p, err));
    geom_t q = geom_of(x, p);
    SS_TRY(vec_check(dgamma, q.c, 1, "dgamma", err));
    SS_TRY(vec_check(dbeta, q.c, 1, "dbeta", err));
    SS_TRY(work_check(ex, (size_t)items_of(&q) * 2 * sizeof(double), "instnorm", err));
    if (sums == NULL) {
        SS_FAIL(err, SS_EINVAL, "instnorm: sums output is NULL");
    }
    memset(sums, 0, (size_t)(3 * q.n * q.c) * sizeof(double));
    if (q.s > 0 && q.n * q.c > 0) {
        bwd_partial_run(sums, dy, x, ss_tensor_f32(mean), ss_tensor_f32(rstd), &q, ex->work,
                        ex->nthreads);
    }
    dparams_from_sums(dgamma ? ss_tensor_f32(dgamma) : NULL, dbeta ? ss_tensor_f32(dbeta) : NULL,
                      sums, &q);
    return SS_OK;
}

ss_status_t ss_instnorm_bwd_apply(ss_tensor_t *dx,
                                  const ss_tensor_t *dy,
                                  const ss_tensor_t *x,
                                  const ss_tensor_t *gamma,
                                  const ss_tensor_t *mean,
                                  const ss_tensor_t *rstd,
                                  const double *sums,
                                  const ss_instnorm_params_t *p,
                                  const ss_exec_t *ex,
                                  ss_error_t *err)
{
    SS_TRY(bwd_check(dy, x, mean, rstd, p, err));
    SS_TRY(volume_check(dx, "dx", err));
    SS_TRY(same_shape_check(dx, "dx", x, "x", err));
    geom_t q = geom_of(x, p);
    SS_TRY(vec_check(gamma, q.c, 1, "gamma", err));
    SS_TRY(work_check(ex, 0, "instnorm", err));
    if (q.s == 0 || q.n * q.c == 0) {
        return SS_OK;
    }
    if (sums == NULL) {
        SS_FAIL(err, SS_EINVAL, "instnorm: sums input is NULL");
    }
    for (int64_t pl = 0; pl < q.n * q.c; pl++) {
        if (!(sums[3 * pl + 2] > 0)) {
            SS_FAIL(err, SS_EINVAL, "instnorm: plane %lld has count 0 in the reduced sums",
                    (long long)pl);
        }
    }
    bwd_apply_run(dx, dy, x, gamma ? ss_tensor_f32(gamma) : NULL, ss_tensor_f32(mean),
                  ss_tensor_f32(rstd), sums, &q, ex->nthreads);
    return SS_OK;
}

ss_status_t ss_instnorm_bwd(ss_tensor_t *dx,
                            ss_tensor_t *dgamma,
                            ss_tensor_t *dbeta,
                            const ss_tensor_t *dy,
                            const ss_tensor_t *x,
                            const ss_tensor_t *gamma,
                            const ss_tensor_t *mean,
                            const ss_tensor_t *rstd,
                            const ss_instnorm_params_t *p,
                            const ss_exec_t *ex,
                            ss_error_t *err)
{
    SS_TRY(x_check(x, p, err));
    geom_t q = geom_of(x, p);
    SS_TRY(work_check(ex, ss_instnorm_workspace_size(x, p), "instnorm", err));
    double *sums = work_tail(ex, &q);
    SS_TRY(ss_instnorm_bwd_partial(sums, dgamma, dbeta, dy, x, mean, rstd, p, ex, err));
    return ss_instnorm_bwd_apply(dx, dy, x, gamma, mean, rstd, sums, p, ex, err);
}

// ---- layer norm -------------------------------------------------------------------------------

typedef struct {
    int64_t t, c;       // rows, features
    int64_t rows, nchk; // rows per backward chunk, chunks
} ln_geom_t;

static ln_geom_t ln_geom_of(const ss_tensor_t *x)
{
    ln_geom_t g;
    g.c = x->ndim > 0 ? x->shape[x->ndim - 1] : 1;
    g.t = g.c > 0 ? ss_tensor_numel(x) / g.c : 0;
    g.rows = (g.t + LN_MAX_CHUNKS - 1) / LN_MAX_CHUNKS;
    g.rows = g.rows > 0 ? g.rows : 1;
    g.nchk = (g.t + g.rows - 1) / g.rows;
    return g;
}

size_t ss_layernorm_workspace_size(const ss_tensor_t *x)
{
    if (x == NULL || x->ndim < 1) {
        return 0;
    }
    ln_geom_t g = ln_geom_of(x);
    return (size_t)(g.nchk * 2 * g.c) * sizeof(double);
}

static ss_status_t ln_tokens_check(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    SS_TRY(f32_check(t, name, err));
    if (t->ndim < 1 || t->shape[t->ndim - 1] < 1) {
        SS_FAIL(err, SS_ESHAPE, "%s: expected (..., C) with C >= 1", name);
    }
    if (!ss_tensor_is_contiguous(t)) {
        SS_FAIL(err, SS_ESHAPE, "%s: must be contiguous", name);
    }
    return SS_OK;
}

// out and the optional second input `in` have x's shape; gamma (C) or NULL.
static ss_status_t ln_check(const ss_tensor_t *out,
                            const char *on,
                            const ss_tensor_t *in,
                            const char *in_name,
                            const ss_tensor_t *x,
                            const ss_tensor_t *gamma,
                            const ss_layernorm_params_t *p,
                            ss_error_t *err)
{
    SS_TRY(ln_tokens_check(x, "x", err));
    SS_TRY(ln_tokens_check(out, on, err));
    SS_TRY(same_shape_check(out, on, x, "x", err));
    if (in) {
        SS_TRY(ln_tokens_check(in, in_name, err));
        SS_TRY(same_shape_check(in, in_name, x, "x", err));
    }
    if (p == NULL || !(p->eps > 0.0f) || !isfinite(p->eps)) {
        SS_FAIL(err, SS_EINVAL, "layernorm: eps must be a positive finite number");
    }
    int64_t c = x->shape[x->ndim - 1];
    return vec_check(gamma, c, 1, "gamma", err);
}

SS_CLONES static void ln_row_fwd(float *y,
                                 float *mean,
                                 float *rstd,
                                 const float *x,
                                 const float *gamma,
                                 const float *beta,
                                 int64_t c,
                                 float eps)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < c; j++) {
        s += x[j];
    }
    double m = s / (double)c, q = 0;
#pragma omp simd reduction(+ : q)
    for (int64_t j = 0; j < c; j++) {
        double d = (double)x[j] - m;
        q += d * d;
    }
    float mu = (float)m, rs = (float)(1.0 / sqrt(q / (double)c + (double)eps));
    *mean = mu;
    *rstd = rs;
    if (gamma) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            y[j] = (x[j] - mu) * rs * gamma[j] + beta[j];
        }
    } else {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            y[j] = (x[j] - mu) * rs;
        }
    }
}

ss_status_t ss_layernorm_fwd(ss_tensor_t *y,
                             ss_tensor_t *mean,
                             ss_tensor_t *rstd,
                             const ss_tensor_t *x,
                             const ss_tensor_t *gamma,
                             const ss_tensor_t *beta,
                             const ss_layernorm_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(ln_check(y, "y", NULL, NULL, x, gamma, p, err));
    ln_geom_t g = ln_geom_of(x);
    SS_TRY(vec_check(beta, g.c, 1, "beta", err));
    if ((gamma == NULL) != (beta == NULL)) {
        SS_FAIL(err, SS_EINVAL, "layernorm: give both gamma and beta, or neither");
    }
    SS_TRY(saved_check(mean, rstd, g.t, 1, err));
    if ((mean == NULL) != (rstd == NULL)) {
        SS_FAIL(err, SS_EINVAL, "layernorm: give both mean and rstd, or neither");
    }
    SS_TRY(work_check(ex, 0, "layernorm", err));
    float *yp = ss_tensor_f32(y), *mp = mean ? ss_tensor_f32(mean) : NULL;
    float *rp = rstd ? ss_tensor_f32(rstd) : NULL;
    const float *xp = ss_tensor_f32(x), *gp = gamma ? ss_tensor_f32(gamma) : NULL;
    const float *bp = beta ? ss_tensor_f32(beta) : NULL;
    float eps = p->eps;
#pragma omp parallel for num_threads(ex->nthreads) schedule(static) default(none)                  \
    shared(yp, mp, rp, xp, gp, bp, g, eps)
    for (int64_t t = 0; t < g.t; t++) {
        float mu, rs;
        ln_row_fwd(yp + t * g.c, &mu, &rs, xp + t * g.c, gp, bp, g.c, eps);
        if (mp) {
            mp[t] = mu;
            rp[t] = rs;
        }
    }
    return SS_OK;
}

// dg[j] += sum_t dy[t][j] * xhat[t][j], db[j] += sum_t dy[t][j] over `rows` rows: four rows are
// combined in float, then added to the double accumulators, so the accumulators are read and
// written and converted once per four rows (one row at a time in double doubled the backward's
// time).
SS_CLONES static void ln_chunk_dparams(double *dg,
                                       double *db,
                                       const float *dy,
                                       const float *x,
                                       const float *mean,
                                       const float *rstd,
                                       int64_t rows,
                                       int64_t c)
{
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *y0 = dy + r * c, *y1 = y0 + c, *y2 = y1 + c, *y3 = y2 + c;
        const float *x0 = x + r * c, *x1 = x0 + c, *x2 = x1 + c, *x3 = x2 + c;
        float m0 = mean[r], m1 = mean[r + 1], m2 = mean[r + 2], m3 = mean[r + 3];
        float s0 = rstd[r], s1 = rstd[r + 1], s2 = rstd[r + 2], s3 = rstd[r + 3];
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            float h0 = (x0[j] - m0) * s0, h1 = (x1[j] - m1) * s1;
            float h2 = (x2[j] - m2) * s2, h3 = (x3[j] - m3) * s3;
            dg[j] += (double)((y0[j] * h0 + y1[j] * h1) + (y2[j] * h2 + y3[j] * h3));
            db[j] += (double)((y0[j] + y1[j]) + (y2[j] + y3[j]));
        }
    }
    for (; r < rows; r++) {
        const float *y0 = dy + r * c, *x0 = x + r * c;
        float m0 = mean[r], s0 = rstd[r];
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            dg[j] += (double)y0[j] * ((x0[j] - m0) * s0);
            db[j] += y0[j];
        }
    }
}

// One row: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma.
SS_CLONES static void ln_row_bwd(
    float *dx, const float *dy, const float *x, const float *gamma, int64_t c, float mu, float rs)
{
    double s1 = 0, s2 = 0;
    if (gamma) {
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t j = 0; j < c; j++) {
            float xh = (x[j] - mu) * rs, g = dy[j] * gamma[j];
            s1 += g;
            s2 += (double)g * xh;
        }
    } else {
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t j = 0; j < c; j++) {
            float xh = (x[j] - mu) * rs;
            s1 += dy[j];
            s2 += (double)dy[j] * xh;
        }
    }
    float a = (float)(s1 / (double)c), b = (float)(s2 / (double)c);
    if (gamma) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            float xh = (x[j] - mu) * rs;
            dx[j] = rs * (dy[j] * gamma[j] - a - xh * b);
        }
    } else {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            float xh = (x[j] - mu) * rs;
            dx[j] = rs * (dy[j] - a - xh * b);
        }
    }
}

static void ln_bwd_run(float *dx,
                       float *dgamma,
                       float *dbeta,
                       const float *dy,
                       const float *x,
                       const float *gamma,
                       const float *mean,
                       const float *rstd,
                       const ln_geom_t *g,
                       double *part,
                       int nt)
{
    int want = dgamma != NULL || dbeta != NULL;
#pragma omp parallel num_threads(nt) default(none)                                                 \
    shared(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, g, part, want)
    {
#pragma omp for schedule(static)
        for (int64_t k = 0; k < g->nchk; k++) {
            int64_t t0 = k * g->rows, end = t0 + g->rows < g->t ? t0 + g->rows : g->t;
            // Parameter partials first: dx may overwrite dy (in place).
            if (want) {
                double *dg = part + 2 * k * g->c;
                memset(dg, 0, (size_t)(2 * g->c) * sizeof(double));
                ln_chunk_dparams(dg, dg + g->c, dy + t0 * g->c, x + t0 * g->c, mean + t0, rstd + t0,
                                 end - t0, g->c);
            }
            for (int64_t t = t0; t < end; t++) {
                ln_row_bwd(dx + t * g->c, dy + t * g->c, x + t * g->c, gamma, g->c, mean[t],
                           rstd[t]);
            }
        }
        if (want) {
#pragma omp for schedule(static)
            for (int64_t j = 0; j < g->c; j++) {
                double sg = 0, sb = 0;
                for (int64_t k = 0; k < g->nchk; k++) {
                    sg += part[2 * k * g->c + j];
                    sb += part[(2 * k + 1) * g->c + j];
                }
                if (dgamma) {
                    dgamma[j] = (float)sg;
                }
                if (dbeta) {
                    dbeta[j] = (float)sb;
                }
            }
        }
    }
}

ss_status_t ss_layernorm_bwd(ss_tensor_t *dx,
                             ss_tensor_t *dgamma,
                             ss_tensor_t *dbeta,
                             const ss_tensor_t *dy,
                             const ss_tensor_t *x,
                             const ss_tensor_t *gamma,
                             const ss_tensor_t *mean,
                             const ss_tensor_t *rstd,
                             const ss_layernorm_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(ln_check(dx, "dx", dy, "dy", x, gamma, p, err));
    ln_geom_t g = ln_geom_of(x);
    SS_TRY(saved_check(mean, rstd, g.t, 0, err));
    SS_TRY(vec_check(dgamma, g.c, 1, "dgamma", err));
    SS_TRY(vec_check(dbeta, g.c, 1, "dbeta", err));
    if (gamma == NULL && (dgamma != NULL || dbeta != NULL)) {
        SS_FAIL(err, SS_EINVAL, "layernorm: dgamma/dbeta requested without gamma");
    }
    int want = dgamma != NULL || dbeta != NULL;
    SS_TRY(work_check(ex, want ? ss_layernorm_workspace_size(x) : 0, "layernorm", err));
    ln_bwd_run(ss_tensor_f32(dx), dgamma ? ss_tensor_f32(dgamma) : NULL,
               dbeta ? ss_tensor_f32(dbeta) : NULL, ss_tensor_f32(dy), ss_tensor_f32(x),
               gamma ? ss_tensor_f32(gamma) : NULL, ss_tensor_f32(mean), ss_tensor_f32(rstd), &g,
               ex->work, ex->nthreads);
    return SS_OK;
}
