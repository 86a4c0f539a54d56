#include "shardseg/optim.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>
#if defined(__AVX__) || defined(__SSE2__)
#    include <immintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
#    include <arm_neon.h>
#endif

#include "shardseg/exec.h"
#include "shardseg/status.h"

#include "kernels_impl.h"

#define SS_PI 3.14159265358979323846
// Elements per cache-line-aligned unit: thread ranges start at multiples of it so that no two
// threads write the same line.
#define LINE_ELEMS       16
#define SUMSQ_MAX_BLOCKS 1024
#define SUMSQ_MIN_BLOCK  4096
#define ADAM_BLOCK       512

// Range [lo, hi) of thread t out of nt over n elements, cut at LINE_ELEMS multiples. Any cut
// gives the same result: every element is updated independently.
static void thread_range(int64_t n, int nt, int t, int64_t *lo, int64_t *hi)
{
    int64_t units = (n + LINE_ELEMS - 1) / LINE_ELEMS;
    int64_t per = units / nt, extra = units % nt;
    int64_t u0 = t * per + (t < extra ? t : extra);
    int64_t u1 = u0 + per + (t < extra ? 1 : 0);
    *lo = u0 * LINE_ELEMS < n ? u0 * LINE_ELEMS : n;
    *hi = u1 * LINE_ELEMS < n ? u1 * LINE_ELEMS : n;
}

static ss_status_t
slab_check(const void *p, const void *g, int64_t n, const ss_exec_t *ex, ss_error_t *err)
{
    if (n < 0) {
        SS_FAIL(err, SS_ESHAPE, "optim: negative element count %lld", (long long)n);
    }
    if (!ex || ex->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "optim: an exec with nthreads >= 1 is required");
    }
    if (n > 0 && (!p || !g)) {
        SS_FAIL(err, SS_EINVAL, "optim: NULL parameter or gradient slab");
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// SGD

ss_optim_sgd_params_t ss_optim_sgd_defaults(void)
{
    return (ss_optim_sgd_params_t){.lr = 1e-3};
}

typedef struct {
    float lr, mom, damp1, wd;
    int has_wd, nesterov, first;
} sgd_k_t;

static void sgd_kernel(
    float *restrict p, float *restrict m, const float *restrict g, int64_t n, const sgd_k_t *k)
{
    const float lr = k->lr, mom = k->mom, damp1 = k->damp1, wd = k->wd;
    const int has_wd = k->has_wd, nest = k->nesterov, first = k->first;
    if (!m) { // momentum == 0: no buffer
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = ss__selectf(has_wd, g[i] + wd * p[i], g[i]);
            p[i] = p[i] - lr * d;
        }
        return;
    }
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = ss__selectf(has_wd, g[i] + wd * p[i], g[i]);
        // PyTorch: buf = clone(d) on the first step, else buf * momentum + (1 - dampening) * d
        float b = ss__selectf(first, d, m[i] * mom + damp1 * d);
        m[i] = b;
        d = ss__selectf(nest, d + mom * b, b);
        p[i] = p[i] - lr * d;
    }
}

static ss_status_t sgd_check(const float *p,
                             const float *m,
                             const float *g,
                             int64_t n,
                             const ss_optim_sgd_params_t *hp,
                             const ss_optim_state_t *st,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(slab_check(p, g, n, ex, err));
    if (!hp || !st || st->step < 0) {
        SS_FAIL(err, SS_EINVAL, "sgd: params and a state with step >= 0 are required");
    }
    if (!(hp->lr >= 0) || !(hp->momentum >= 0) || !(hp->weight_decay >= 0) ||
        !isfinite(hp->dampening)) {
        SS_FAIL(err, SS_EINVAL, "sgd: lr, momentum and weight_decay must be >= 0");
    }
    if (hp->nesterov && (hp->momentum <= 0 || hp->dampening != 0)) {
        SS_FAIL(err, SS_EINVAL, "sgd: Nesterov momentum requires a momentum and zero dampening");
    }
    if (hp->momentum > 0 && n > 0 && !m) {
        SS_FAIL(err, SS_EINVAL, "sgd: momentum %g needs a buffer slab", hp->momentum);
    }
    return SS_OK;
}

ss_status_t ss_optim_sgd_step(float *p,
                              float *m,
                              const float *g,
                              int64_t n,
                              const ss_optim_sgd_params_t *hp,
                              const ss_optim_state_t *st,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(sgd_check(p, m, g, n, hp, st, ex, err));
    sgd_k_t k = {(float)hp->lr,
                 (float)hp->momentum,
                 (float)(1 - hp->dampening),
                 (float)hp->weight_decay,
                 hp->weight_decay != 0,
                 hp->nesterov,
                 st->step == 0};
    float *mb = hp->momentum != 0 ? m : NULL;
    int nt = ex->nthreads;
#pragma omp parallel num_threads(nt) default(none) shared(p, mb, g, n, k, nt)
    {
        int64_t lo, hi;
        thread_range(n, nt, omp_get_thread_num(), &lo, &hi);
        sgd_kernel(p + lo, mb ? mb + lo : NULL, g + lo, hi - lo, &k);
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Adam / AdamW

ss_optim_adam_params_t ss_optim_adam_defaults(void)
{
    return (ss_optim_adam_params_t){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

ss_optim_adam_params_t ss_optim_adamw_defaults(void)
{
    ss_optim_adam_params_t hp = ss_optim_adam_defaults();
    hp.weight_decay = 1e-2;
    return hp;
}

typedef struct {
    float b1, omb1, b2, omb2; // beta and 1 - beta
    float neg_step;           // -lr / (1 - beta1^t)
    float rbc2_sqrt;          // 1 / sqrt(1 - beta2^t)
    float eps;
    float l2;    // Adam: weight_decay added to the gradient (0 for AdamW)
    float decay; // AdamW: 1 - lr * weight_decay (1 for Adam)
    int has_l2, decoupled;
} adam_k_t;

// Square roots of a short block in place. GCC never vectorises sqrtf while -fmath-errno (its
// default; the project does not pass -fno-math-errno) is on, which made the Adam step 4x slower
// than memory speed, so use the ISA's vector square root where known. Every path is IEEE
// correctly rounded, hence identical to sqrtf element by element.
static void sqrt_block(float *x, int64_t n)
{
    int64_t i = 0;
#if defined(__AVX__)
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
    }
#elif defined(__SSE2__)
    for (; i + 4 <= n; i += 4) {
        _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
    }
#elif defined(__aarch64__) && defined(__ARM_NEON)
    for (; i + 4 <= n; i += 4) {
        vst1q_f32(x + i, vsqrtq_f32(vld1q_f32(x + i)));
    }
#endif
    for (; i < n; i++) {
        x[i] = sqrtf(x[i]);
    }
}

// Operation order follows torch 1.13 _single_tensor_adam(w): p.mul_(decay); m.mul_(b1).add_(g,
// alpha=1-b1); v.mul_(b2).addcmul_(g, g, value=1-b2); denom = v.sqrt() / bc2_sqrt + eps;
// p.addcdiv_(m, denom, value=-step). Blocks of ADAM_BLOCK stay in L1 between the three passes.
static void adam_kernel(float *restrict p,
                        float *restrict m,
                        float *restrict v,
                        const float *restrict g,
                        int64_t n,
                        const adam_k_t *k)
{
    const float b1 = k->b1, omb1 = k->omb1, b2 = k->b2, omb2 = k->omb2;
    const float neg_step = k->neg_step, rbc2 = k->rbc2_sqrt, eps = k->eps;
    const float l2 = k->l2, decay = k->decay;
    const int has_l2 = k->has_l2, decoupled = k->decoupled;
    float rt[ADAM_BLOCK];
    for (int64_t b0 = 0; b0 < n; b0 += ADAM_BLOCK) {
        int64_t len = n - b0 < ADAM_BLOCK ? n - b0 : ADAM_BLOCK;
        float *restrict pb = p + b0, *restrict mb = m + b0, *restrict vb = v + b0;
        const float *restrict gb = g + b0;
#pragma omp simd
        for (int64_t i = 0; i < len; i++) {
            float pv = ss__selectf(decoupled, pb[i] * decay, pb[i]);
            float gv = ss__selectf(has_l2, gb[i] + l2 * pv, gb[i]);
            float vv = vb[i] * b2 + omb2 * gv * gv;
            pb[i] = pv;
            mb[i] = mb[i] * b1 + omb1 * gv;
            vb[i] = vv;
            rt[i] = vv;
        }
        sqrt_block(rt, len);
#pragma omp simd
        for (int64_t i = 0; i < len; i++) {
            float den = rt[i] * rbc2 + eps;
            pb[i] = pb[i] + neg_step * (mb[i] / den);
        }
    }
}

static double sumsq_portable(const float *restrict g, int64_t n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        s += (double)g[i] * (double)g[i];
    }
    return s;
}

// AVX-512 (chosen at run time): the Adam step of a block in one pass, fused with its sum of
// squares. The portable loops above are vectorised for the baseline ISA only (SSE2: 4 lanes, a
// 4-lane square root and division), which left the step compute-bound at 28 GB/s where this
// machine streams p, m, v, g at 39; summing g's squares in a separate pass cost another 20%.
// Same operations in the same order as adam_kernel (no contraction into fused multiply-adds),
// so p, m and v are bit-identical to it; the sum of squares has its own (fixed) lane order,
// shared with sumsq_avx512 so that the fused and separate sums agree bit for bit.
#if SS_HAVE_AVX512

// acc[0..1] += the squares of x's 16 floats in double, low and high halves apart.
SS_AVX512 static inline void sq_acc(__m512d acc[2], __m512 x)
{
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    acc[0] = _mm512_fmadd_pd(lo, lo, acc[0]);
    acc[1] = _mm512_fmadd_pd(hi, hi, acc[1]);
}

SS_AVX512 static inline double sq_fold(const __m512d acc[2])
{
    return _mm512_reduce_add_pd(_mm512_add_pd(acc[0], acc[1]));
}

SS_AVX512 static double sumsq_avx512(const float *restrict g, int64_t n)
{
    __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    for (int64_t i = 0; i < n; i += 16) {
        sq_acc(acc, _mm512_maskz_loadu_ps(ss__first_lanes(n - i), g + i));
    }
    return sq_fold(acc);
}

SS_AVX512 static double adam_avx512(float *restrict p,
                                    float *restrict m,
                                    float *restrict v,
                                    const float *restrict g,
                                    int64_t n,
                                    const adam_k_t *k)
{
    const __m512 b1 = _mm512_set1_ps(k->b1), omb1 = _mm512_set1_ps(k->omb1);
    const __m512 b2 = _mm512_set1_ps(k->b2), omb2 = _mm512_set1_ps(k->omb2);
    const __m512 neg_step = _mm512_set1_ps(k->neg_step), rbc2 = _mm512_set1_ps(k->rbc2_sqrt);
    const __m512 eps = _mm512_set1_ps(k->eps), l2 = _mm512_set1_ps(k->l2);
    const __m512 decay = _mm512_set1_ps(k->decay);
    __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mk = ss__first_lanes(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(mk, g + i), pv = _mm512_maskz_loadu_ps(mk, p + i);
        __m512 mv = _mm512_maskz_loadu_ps(mk, m + i), vv = _mm512_maskz_loadu_ps(mk, v + i);
        sq_acc(acc, gv);
        if (k->decoupled) {
            pv = _mm512_mul_ps(pv, decay);
        }
        if (k->has_l2) {
            gv = _mm512_add_ps(gv, _mm512_mul_ps(l2, pv));
        }
        vv = _mm512_add_ps(_mm512_mul_ps(vv, b2), _mm512_mul_ps(_mm512_mul_ps(omb2, gv), gv));
        mv = _mm512_add_ps(_mm512_mul_ps(mv, b1), _mm512_mul_ps(omb1, gv));
        __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vv), rbc2), eps);
        pv = _mm512_add_ps(pv, _mm512_mul_ps(neg_step, _mm512_div_ps(mv, den)));
        _mm512_mask_storeu_ps(p + i, mk, pv);
        _mm512_mask_storeu_ps(m + i, mk, mv);
        _mm512_mask_storeu_ps(v + i, mk, vv);
    }
    return sq_fold(acc);
}

static int g_vector_off;

static int use_avx512(void)
{
    return ss__cpu_avx512() && !g_vector_off;
}
#endif

void ss__optim_vector_enable(int on)
{
#if SS_HAVE_AVX512
    g_vector_off = !on;
#else
    (void)on;
#endif
}

static double sumsq_block(const float *restrict g, int64_t n)
{
#if SS_HAVE_AVX512
    if (use_avx512()) {
        return sumsq_avx512(g, n);
    }
#endif
    return sumsq_portable(g, n);
}

// One block's Adam step; with sq != NULL also *sq = the sum of g's squares (as sumsq_block).
static void adam_block(float *restrict p,
                       float *restrict m,
                       float *restrict v,
                       const float *restrict g,
                       int64_t n,
                       const adam_k_t *k,
                       double *sq)
{
#if SS_HAVE_AVX512
    if (use_avx512()) {
        double s = adam_avx512(p, m, v, g, n, k);
        if (sq != NULL) {
            *sq = s;
        }
        return;
    }
#endif
    if (sq != NULL) {
        *sq = sumsq_portable(g, n);
    }
    adam_kernel(p, m, v, g, n, k);
}

static ss_status_t adam_check(const float *p,
                              const float *m,
                              const float *v,
                              const float *g,
                              int64_t n,
                              const ss_optim_adam_params_t *hp,
                              const ss_optim_state_t *st,
                              const ss_exec_t *ex,
                              ss_error_t *err)
{
    SS_TRY(slab_check(p, g, n, ex, err));
    if (n > 0 && (!m || !v)) {
        SS_FAIL(err, SS_EINVAL, "adam: NULL state slab");
    }
    if (!hp || !st || st->step < 0) {
        SS_FAIL(err, SS_EINVAL, "adam: params and a state with step >= 0 are required");
    }
    if (!(hp->lr >= 0) || !(hp->eps >= 0) || !(hp->weight_decay >= 0) || !isfinite(hp->lr)) {
        SS_FAIL(err, SS_EINVAL, "adam: lr, eps and weight_decay must be finite and >= 0");
    }
    if (!(hp->beta1 >= 0 && hp->beta1 < 1) || !(hp->beta2 >= 0 && hp->beta2 < 1)) {
        SS_FAIL(err, SS_EINVAL, "adam: betas (%g, %g) must lie in [0, 1)", hp->beta1, hp->beta2);
    }
    return SS_OK;
}

// The blocks of a sum of squares over n elements: they depend on n only, so that the fold has
// one order for every thread count. Returns their number, *bs their size.
static int64_t sumsq_blocks(int64_t n, int64_t *bs)
{
    int64_t b = (n + SUMSQ_MAX_BLOCKS - 1) / SUMSQ_MAX_BLOCKS;
    b = b < SUMSQ_MIN_BLOCK ? SUMSQ_MIN_BLOCK : (b + LINE_ELEMS - 1) / LINE_ELEMS * LINE_ELEMS;
    *bs = b;
    return (n + b - 1) / b;
}

static double fold(const double *part, int64_t nb)
{
    double s = 0;
    for (int64_t b = 0; b < nb; b++) {
        s += part[b];
    }
    return s;
}

static adam_k_t
adam_coefs(const ss_optim_adam_params_t *hp, const ss_optim_state_t *st, int decoupled)
{
    double t = (double)(st->step + 1);
    double bc1 = 1 - pow(hp->beta1, t), bc2 = 1 - pow(hp->beta2, t);
    adam_k_t k = {.b1 = (float)hp->beta1,
                  .omb1 = (float)(1 - hp->beta1),
                  .b2 = (float)hp->beta2,
                  .omb2 = (float)(1 - hp->beta2),
                  .neg_step = (float)(-hp->lr / bc1),
                  .rbc2_sqrt = (float)(1 / sqrt(bc2)),
                  .eps = (float)hp->eps,
                  .l2 = decoupled ? 0.0f : (float)hp->weight_decay,
                  .decay = decoupled ? (float)(1 - hp->lr * hp->weight_decay) : 1.0f,
                  .has_l2 = !decoupled && hp->weight_decay != 0,
                  .decoupled = decoupled};
    return k;
}

static ss_status_t adam_step(float *p,
                             float *m,
                             float *v,
                             const float *g,
                             int64_t n,
                             const ss_optim_adam_params_t *hp,
                             const ss_optim_state_t *st,
                             int decoupled,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    SS_TRY(adam_check(p, m, v, g, n, hp, st, ex, err));
    adam_k_t k = adam_coefs(hp, st, decoupled);
    int nt = ex->nthreads;
#pragma omp parallel num_threads(nt) default(none) shared(p, m, v, g, n, k, nt)
    {
        int64_t lo, hi;
        thread_range(n, nt, omp_get_thread_num(), &lo, &hi);
        adam_block(p + lo, m + lo, v + lo, g + lo, hi - lo, &k, NULL);
    }
    return SS_OK;
}

// adam_step over the sum-of-squares blocks: each block's g is summed, then updated while it is
// still in cache (a block is at most n / 1024 elements: 400 KB for 100M parameters).
static ss_status_t adam_step_sumsq(float *p,
                                   float *m,
                                   float *v,
                                   const float *g,
                                   int64_t n,
                                   const ss_optim_adam_params_t *hp,
                                   const ss_optim_state_t *st,
                                   int decoupled,
                                   double *sumsq,
                                   const ss_exec_t *ex,
                                   ss_error_t *err)
{
    SS_TRY(adam_check(p, m, v, g, n, hp, st, ex, err));
    if (!sumsq) {
        SS_FAIL(err, SS_EINVAL, "adam: sumsq output is NULL");
    }
    adam_k_t k = adam_coefs(hp, st, decoupled);
    int64_t bs, nb = sumsq_blocks(n, &bs);
    double part[SUMSQ_MAX_BLOCKS];
    int nt = ex->nthreads;
#pragma omp parallel for num_threads(nt) schedule(static) default(none)                            \
    shared(p, m, v, g, n, k, bs, nb, part)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * bs, len = n - lo < bs ? n - lo : bs;
        adam_block(p + lo, m + lo, v + lo, g + lo, len, &k, &part[b]);
    }
    *sumsq = fold(part, nb);
    return SS_OK;
}

ss_status_t ss_optim_adam_step(float *p,
                               float *m,
                               float *v,
                               const float *g,
                               int64_t n,
                               const ss_optim_adam_params_t *hp,
                               const ss_optim_state_t *st,
                               const ss_exec_t *ex,
                               ss_error_t *err)
{
    return adam_step(p, m, v, g, n, hp, st, 0, ex, err);
}

ss_status_t ss_optim_adamw_step(float *p,
                                float *m,
                                float *v,
                                const float *g,
                                int64_t n,
                                const ss_optim_adam_params_t *hp,
                                const ss_optim_state_t *st,
                                const ss_exec_t *ex,
                                ss_error_t *err)
{
    return adam_step(p, m, v, g, n, hp, st, 1, ex, err);
}

ss_status_t ss_optim_adam_step_sumsq(float *p,
                                     float *m,
                                     float *v,
                                     const float *g,
                                     int64_t n,
                                     const ss_optim_adam_params_t *hp,
                                     const ss_optim_state_t *st,
                                     double *sumsq,
                                     const ss_exec_t *ex,
                                     ss_error_t *err)
{
    return adam_step_sumsq(p, m, v, g, n, hp, st, 0, sumsq, ex, err);
}

ss_status_t ss_optim_adamw_step_sumsq(float *p,
                                      float *m,
                                      float *v,
                                      const float *g,
                                      int64_t n,
                                      const ss_optim_adam_params_t *hp,
                                      const ss_optim_state_t *st,
                                      double *sumsq,
                                      const ss_exec_t *ex,
                                      ss_error_t *err)
{
    return adam_step_sumsq(p, m, v, g, n, hp, st, 1, sumsq, ex, err);
}

// ---------------------------------------------------------------------------------------------
// Gradient clipping

ss_status_t ss_optim_sumsq_partial(
    double *sumsq, const float *g, int64_t n, const ss_exec_t *ex, ss_error_t *err)
{
    SS_TRY(slab_check(g, g, n, ex, err));
    if (!sumsq) {
        SS_FAIL(err, SS_EINVAL, "sumsq: output is NULL");
    }
    int64_t bs, nb = sumsq_blocks(n, &bs);
    double part[SUMSQ_MAX_BLOCKS];
    int nt = ex->nthreads;
#pragma omp parallel for num_threads(nt) schedule(static) default(none) shared(g, n, bs, nb, part)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * bs, len = n - lo < bs ? n - lo : bs;
        part[b] = sumsq_block(g + lo, len);
    }
    *sumsq = fold(part, nb);
    return SS_OK;
}

double ss_optim_clip_scale(double total_sumsq, double max_norm)
{
    double c = max_norm / (sqrt(total_sumsq) + 1e-6);
    return c > 1 ? 1 : c; // NaN stays NaN, as torch.clamp(max=1)
}

static void scale_kernel(float *restrict g, int64_t n, float s)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        g[i] *= s;
    }
}

ss_status_t ss_optim_scale(float *g, int64_t n, float scale, const ss_exec_t *ex, ss_error_t *err)
{
    SS_TRY(slab_check(g, g, n, ex, err));
    int nt = ex->nthreads;
#pragma omp parallel num_threads(nt) default(none) shared(g, n, scale, nt)
    {
        int64_t lo, hi;
        thread_range(n, nt, omp_get_thread_num(), &lo, &hi);
        scale_kernel(g + lo, hi - lo, scale);
    }
    return SS_OK;
}

ss_status_t ss_optim_clip_grad_norm(
    double *total_norm, float *g, int64_t n, double max_norm, const ss_exec_t *ex, ss_error_t *err)
{
    if (!(max_norm > 0)) {
        SS_FAIL(err, SS_EINVAL, "clip_grad_norm: max_norm %g must be > 0", max_norm);
    }
    double s;
    SS_TRY(ss_optim_sumsq_partial(&s, g, n, ex, err));
    if (total_norm) {
        *total_norm = sqrt(s);
    }
    if (!isfinite(s)) {
        SS_FAIL(err, SS_ENUMERIC, "clip_grad_norm: gradient norm is %g; gradients left as they are",
                sqrt(s));
    }
    double c = ss_optim_clip_scale(s, max_norm);
    if (c < 1) { // PyTorch multiplies by 1.0 too, which changes nothing
        SS_TRY(ss_optim_scale(g, n, (float)c, ex, err));
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// LR schedules

ss_status_t ss_optim_lr_validate(const ss_lr_schedule_t *s, ss_error_t *err)
{
    if (!s || s->kind < SS_LR_CONSTANT || s->kind > SS_LR_POLY) {
        SS_FAIL(err, SS_EINVAL, "lr schedule: unknown kind");
    }
    if (!(s->lr0 >= 0) || !isfinite(s->lr0)) {
        SS_FAIL(err, SS_EINVAL, "lr schedule: lr0 %g must be finite and >= 0", s->lr0);
    }
    if (s->kind == SS_LR_STEP && (s->step_size < 1 || !(s->gamma > 0))) {
        SS_FAIL(err, SS_EINVAL, "lr schedule: step needs step_size >= 1 and gamma > 0");
    }
    if ((s->kind == SS_LR_COSINE || s->kind == SS_LR_POLY) && s->t_max < 1) {
        SS_FAIL(err, SS_EINVAL, "lr schedule: t_max %lld must be >= 1", (long long)s->t_max);
    }
    if (s->kind == SS_LR_COSINE && !(s->eta_min >= 0)) {
        SS_FAIL(err, SS_EINVAL, "lr schedule: eta_min must be >= 0");
    }
    if (s->kind == SS_LR_POLY && !(s->power >= 0)) {
        SS_FAIL(err, SS_EINVAL, "lr schedule: power must be >= 0");
    }
    if (s->warmup_steps < 0 ||
        (s->warmup_steps > 0 && !(s->warmup_start_factor > 0 && s->warmup_start_factor <= 1))) {
        SS_FAIL(err, SS_EINVAL, "lr schedule: warm-up needs steps >= 0 and a factor in (0, 1]");
    }
    return SS_OK;
}

static double lr_main(const ss_lr_schedule_t *s, int64_t t)
{
    switch (s->kind) {
    case SS_LR_STEP:
        return s->lr0 * pow(s->gamma, (double)(t / s->step_size));
    case SS_LR_COSINE:
        // CosineAnnealingLR's closed form; past t_max it rises again, as PyTorch's does.
        return s->eta_min +
               (s->lr0 - s->eta_min) * (1 + cos(SS_PI * (double)t / (double)s->t_max)) / 2;
    case SS_LR_POLY:
        return t >= s->t_max ? 0.0 : s->lr0 * pow(1 - (double)t / (double)s->t_max, s->power);
    default:
        return s->lr0;
    }
}

double ss_optim_lr(const ss_lr_schedule_t *s, int64_t t)
{
    t = t < 0 ? 0 : t;
    int64_t w = s->warmup_steps;
    if (w > 0 && t < w) {
        double f0 = s->warmup_start_factor;
        return s->lr0 * (f0 + (1 - f0) * (double)t / (double)w);
    }
    return lr_main(s, w > 0 ? t - w : t);
}
