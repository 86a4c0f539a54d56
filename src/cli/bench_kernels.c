// shardseg bench kernels: every kernel's forward and backward time on the benchmark shapes of
// issue 4, as GFLOP/s against the sgemm peak measured in the same run (compute-bound ops) or as
// GB/s against memcpy bandwidth measured in the same run (memory-bound ops). Output lines use the
// format of bench/torch_kernels.py, so bench/kernels_vs_torch.sh can put both side by side.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"

// One timed operation: fwd and bwd callbacks over a state the op's setup filled in.
typedef ss_status_t (*bench_fn)(void *state, const ss_exec_t *ex, ss_error_t *err);

typedef struct {
    const char *name;
    const char *shape;
    double fwd_flops, bwd_flops; // 0 for memory-bound ops
    double fwd_bytes, bwd_bytes; // minimum traffic (read + write), for GB/s
} bench_spec_t;

typedef struct {
    int repeats;
    int nthreads;
    double sgemm_gflops; // measured at start
    double memcpy_gbs;   // measured at start, read + write bytes
    ss_arena_t *arena;
    void *work;
    size_t work_bytes;
    const char *only; // comma-separated op names, or NULL
} bench_ctx_t;

static void fill(ss_tensor_t *t, uint64_t stream, float lo, float hi, int nthreads)
{
    ss_rng_fill_uniform(ss_rng_make(42, stream), 0, ss_tensor_numel(t), lo, hi, ss_tensor_f32(t),
                        nthreads);
}

static ss_status_t tensor(bench_ctx_t *b,
                          ss_tensor_t *t,
                          int ndim,
                          const int64_t *shape,
                          uint64_t stream,
                          ss_error_t *err)
{
    SS_TRY(ss_tensor_alloc(t, SS_F32, ndim, shape, b->arena, err));
    fill(t, stream, -1, 1, b->nthreads);
    return SS_OK;
}

// Makes sure the shared workspace holds at least `bytes`.
static ss_status_t need_work(bench_ctx_t *b, size_t bytes, ss_error_t *err)
{
    if (bytes <= b->work_bytes) {
        return SS_OK;
    }
    ss_aligned_free(b->work, b->work_bytes, NULL);
    b->work = NULL;
    b->work_bytes = 0;
    SS_TRY(ss_aligned_alloc(&b->work, bytes, NULL, "bench workspace", err));
    b->work_bytes = bytes;
    return SS_OK;
}

static int wanted(const bench_ctx_t *b, const char *name)
{
    if (b->only == NULL) {
        return 1;
    }
    size_t len = strlen(name);
    for (const char *p = b->only; (p = strstr(p, name)) != NULL; p += len) {
        int starts = p == b->only || p[-1] == ',';
        int ends = p[len] == '\0' || p[len] == ',';
        if (starts && ends) {
            return 1;
        }
    }
    return 0;
}

// Times `repeats` calls of fn into ms[]; a NULL fn (an op without a backward) times as 0.
static ss_status_t
time_fn(bench_fn fn, void *state, const ss_exec_t *ex, int repeats, double *ms, ss_error_t *err)
{
    for (int r = 0; r < repeats; r++) {
        if (fn == NULL) {
            ms[r] = 0;
            continue;
        }
        double t0 = ss_time_now();
        SS_TRY(fn(state, ex, err));
        ms[r] = (ss_time_now() - t0) * 1e3;
    }
    return SS_OK;
}

static double min_of(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) {
        m = v[i] < m ? v[i] : m;
    }
    return m;
}

// Runs one warm-up of fwd and bwd, then `repeats` timed runs of each; prints one result line.
static ss_status_t measure(
    bench_ctx_t *b, const bench_spec_t *s, bench_fn fwd, bench_fn bwd, void *state, ss_error_t *err)
{
    ss_exec_t ex = {b->nthreads, b->work, b->work_bytes, NULL};
    SS_TRY(fwd(state, &ex, err));
    if (bwd != NULL) {
        SS_TRY(bwd(state, &ex, err));
    }
    double f[64], g[64], scratch[64];
    int n = b->repeats;
    SS_TRY(time_fn(fwd, state, &ex, n, f, err));
    SS_TRY(time_fn(bwd, state, &ex, n, g, err));
    double fm = ss_median(f, n, scratch), gm = ss_median(g, n, scratch);
    double fmin = min_of(f, n), gmin = min_of(g, n);
    printf("op=%s fwd_ms=%.3f fwdbwd_ms=%.3f fwd_min_ms=%.3f fwdbwd_min_ms=%.3f", s->name, fm,
           fm + gm, fmin, fmin + gmin);
    if (s->fwd_flops > 0) {
        double gf_f = s->fwd_flops / (fmin * 1e6);
        double gf_b = gmin > 0 ? s->bwd_flops / (gmin * 1e6) : 0;
        double gf_fb = (s->fwd_flops + s->bwd_flops) / ((fmin + gmin) * 1e6);
        printf(" gflops_fwd=%.1f gflops_bwd=%.1f gflops_fwdbwd=%.1f of_sgemm_peak=%.2f", gf_f, gf_b,
               gf_fb, gf_fb / b->sgemm_gflops);
    } else {
        double gb = (s->fwd_bytes + s->bwd_bytes) / ((fmin + gmin) * 1e6);
        printf(" gbs_fwd=%.1f gbs_bwd=%.1f gbs_fwdbwd=%.1f of_memcpy=%.2f",
               s->fwd_bytes / (fmin * 1e6), gmin > 0 ? s->bwd_bytes / (gmin * 1e6) : 0, gb,
               gb / b->memcpy_gbs);
    }
    printf(" shape=%s\n", s->shape);
    fflush(stdout);
    return SS_OK;
}

// ---- conv3d: decoder 3x3x3, output 1x1x1 head, patch embedding ---------------------------------

typedef struct {
    ss_tensor_t x, w, bias, y, dx, dw, db;
    ss_conv3d_params_t p;
} conv_state_t;

static ss_status_t conv_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    conv_state_t *c = s;
    return ss_conv3d_fwd(&c->y, &c->x, &c->w, &c->bias, &c->p, ex, err);
}

static ss_status_t conv_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    conv_state_t *c = s;
    SS_TRY(ss_conv3d_bwd_data(&c->dx, &c->y, &c->w, &c->p, ex, err));
    return ss_conv3d_bwd_weight(&c->dw, &c->db, &c->x, &c->y, &c->p, ex, err);
}

// One conv benchmark: x (1, cin, n^3), kernel k, stride s, symmetric padding pad.
static ss_status_t bench_conv(bench_ctx_t *b,
                              const char *name,
                              const char *shape,
                              int64_t cin,
                              int64_t cout,
                              int64_t n,
                              int k,
                              int stride,
                              int pad,
                              ss_error_t *err)
{
    conv_state_t c;
    c.p = ss_conv3d_params_cube(k, stride, pad);
    int64_t xs[5] = {1, cin, n, n, n}, ys[5];
    SS_TRY(ss_conv3d_out_shape(ys, xs, cout, &c.p, err));
    SS_TRY(tensor(b, &c.x, 5, xs, 1, err));
    SS_TRY(tensor(b, &c.dx, 5, xs, 2, err));
    SS_TRY(tensor(b, &c.w, 5, (int64_t[]){cout, cin, k, k, k}, 3, err));
    SS_TRY(tensor(b, &c.dw, 5, (int64_t[]){cout, cin, k, k, k}, 4, err));
    SS_TRY(tensor(b, &c.bias, 1, (int64_t[]){cout}, 5, err));
    SS_TRY(tensor(b, &c.db, 1, (int64_t[]){cout}, 6, err));
    SS_TRY(tensor(b, &c.y, 5, ys, 7, err));
    ss_conv3d_shape_t cs = {1, cin, cout, {n, n, n}};
    SS_TRY(need_work(b, ss_conv3d_workspace_size(&c.p, &cs, b->nthreads), err));
    double flops = 2.0 * (double)(ss_tensor_numel(&c.y) * cin * k * k * k);
    bench_spec_t s = {name, shape, flops, 2 * flops, 0, 0};
    if (k == 1) {
        // A 1x1x1 head moves far more bytes than it computes: report it as memory traffic.
        double xb = (double)ss_tensor_nbytes(&c.x), yb = (double)ss_tensor_nbytes(&c.y);
        s = (bench_spec_t){name, shape, 0, 0, xb + yb, 2 * xb + 2 * yb};
    }
    return measure(b, &s, conv_fwd, conv_bwd, &c, err);
}

static ss_status_t bench_conv3x3x3(bench_ctx_t *b, ss_error_t *err)
{
    return bench_conv(b, "conv3d_3x3x3", "(1,32->32,64^3)", 32, 32, 64, 3, 1, 1, err);
}

// The decoder's high-resolution convolutions: few channels, many positions (feature size 16).
static ss_status_t bench_conv3x3x3_c4(bench_ctx_t *b, ss_error_t *err)
{
    return bench_conv(b, "conv3d_3x3x3_c4", "(1,4->16,64^3)", 4, 16, 64, 3, 1, 1, err);
}

static ss_status_t bench_conv3x3x3_c16(bench_ctx_t *b, ss_error_t *err)
{
    return bench_conv(b, "conv3d_3x3x3_c16", "(1,16->16,64^3)", 16, 16, 64, 3, 1, 1, err);
}

static ss_status_t bench_conv1x1x1(bench_ctx_t *b, ss_error_t *err)
{
    return bench_conv(b, "conv3d_1x1x1", "(1,32->3,64^3)", 32, 3, 64, 1, 1, 0, err);
}

static ss_status_t bench_patch_embed(bench_ctx_t *b, ss_error_t *err)
{
    return bench_conv(b, "patch_embed_p16", "(1,4->768,128^3,k=s=16)", 4, 768, 128, 16, 16, 0, err);
}

// ---- instance norm (decoder) and layer norm (ViT)
// ------------------------------------------------

typedef struct {
    ss_tensor_t x, y, dx, gamma, beta, dgamma, dbeta, mean, rstd;
    ss_instnorm_params_t ip;
    ss_layernorm_params_t lp;
} norm_state_t;

static ss_status_t inorm_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    norm_state_t *c = s;
    return ss_instnorm_fwd(&c->y, &c->mean, &c->rstd, &c->x, &c->gamma, &c->beta, &c->ip, ex, err);
}

static ss_status_t inorm_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    norm_state_t *c = s;
    return ss_instnorm_bwd(&c->dx, &c->dgamma, &c->dbeta, &c->y, &c->x, &c->gamma, &c->mean,
                           &c->rstd, &c->ip, ex, err);
}

static ss_status_t lnorm_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    norm_state_t *c = s;
    return ss_layernorm_fwd(&c->y, &c->mean, &c->rstd, &c->x, &c->gamma, &c->beta, &c->lp, ex, err);
}

static ss_status_t lnorm_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    norm_state_t *c = s;
    return ss_layernorm_bwd(&c->dx, &c->dgamma, &c->dbeta, &c->y, &c->x, &c->gamma, &c->mean,
                            &c->rstd, &c->lp, ex, err);
}

// Allocates x, y, dx of `shape`, per-channel affine of `channels` and `rows` saved statistics.
static ss_status_t norm_setup(bench_ctx_t *b,
                              norm_state_t *c,
                              int ndim,
                              const int64_t *shape,
                              int64_t channels,
                              int64_t rows,
                              ss_error_t *err)
{
    SS_TRY(tensor(b, &c->x, ndim, shape, 1, err));
    SS_TRY(tensor(b, &c->y, ndim, shape, 2, err));
    SS_TRY(tensor(b, &c->dx, ndim, shape, 3, err));
    ss_tensor_t *ch[4] = {&c->gamma, &c->beta, &c->dgamma, &c->dbeta};
    for (int i = 0; i < 4; i++) {
        SS_TRY(tensor(b, ch[i], 1, &channels, 4 + (uint64_t)i, err));
    }
    SS_TRY(tensor(b, &c->mean, 1, &rows, 8, err));
    return tensor(b, &c->rstd, 1, &rows, 9, err);
}

static ss_status_t bench_instnorm(bench_ctx_t *b, ss_error_t *err)
{
    norm_state_t c = {.ip = {0, 1e-5f}};
    SS_TRY(norm_setup(b, &c, 5, (int64_t[]){1, 32, 64, 64, 64}, 32, 32, err));
    SS_TRY(need_work(b, ss_instnorm_workspace_size(&c.x, &c.ip), err));
    double v = (double)ss_tensor_nbytes(&c.x);
    // Minimum traffic: fwd reads x twice (statistics, then apply) and writes y; bwd reads dy and
    // x for the sums and again for dx, and writes dx.
    bench_spec_t s = {"instnorm", "(1,32,64^3)", 0, 0, 3 * v, 5 * v};
    return measure(b, &s, inorm_fwd, inorm_bwd, &c, err);
}

static ss_status_t bench_layernorm(bench_ctx_t *b, ss_error_t *err)
{
    norm_state_t c = {.lp = {1e-5f}};
    SS_TRY(norm_setup(b, &c, 2, (int64_t[]){4096, 768}, 768, 4096, err));
    SS_TRY(need_work(b, ss_layernorm_workspace_size(&c.x), err));
    double v = (double)ss_tensor_nbytes(&c.x);
    bench_spec_t s = {"layernorm", "(4096,768)", 0, 0, 2 * v, 3 * v};
    return measure(b, &s, lnorm_fwd, lnorm_bwd, &c, err);
}

// ---- GELU (ViT MLP)
// ------------------------------------------------------------------------------

typedef struct {
    ss_tensor_t x, y, dx;
} gelu_state_t;

static ss_status_t gelu_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    gelu_state_t *c = s;
    return ss_gelu_fwd(&c->y, &c->x, SS_GELU_ERF, ex, err);
}

static ss_status_t gelu_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    gelu_state_t *c = s;
    return ss_gelu_bwd(&c->dx, &c->y, &c->x, SS_GELU_ERF, ex, err);
}

static ss_status_t bench_gelu(bench_ctx_t *b, ss_error_t *err)
{
    gelu_state_t c;
    const int64_t n = 16 * 1024 * 1024;
    SS_TRY(tensor(b, &c.x, 1, &n, 1, err));
    SS_TRY(tensor(b, &c.y, 1, &n, 2, err));
    SS_TRY(tensor(b, &c.dx, 1, &n, 3, err));
    double v = (double)ss_tensor_nbytes(&c.x);
    bench_spec_t s = {"gelu", "16M (erf)", 0, 0, 2 * v, 3 * v};
    return measure(b, &s, gelu_fwd, gelu_bwd, &c, err);
}

// ---- linear (ViT MLP fc1)
// ------------------------------------------------------------------------

typedef struct {
    ss_tensor_t x, w, bias, y, dx, dw, db;
} linear_state_t;

static ss_status_t linear_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    linear_state_t *c = s;
    return ss_linear_fwd(&c->y, &c->x, &c->w, &c->bias, ex, err);
}

static ss_status_t linear_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    linear_state_t *c = s;
    SS_TRY(ss_linear_bwd_data(&c->dx, &c->y, &c->w, 0.0f, ex, err));
    return ss_linear_bwd_weight(&c->dw, &c->db, &c->y, &c->x, 0.0f, ex, err);
}

static ss_status_t bench_linear(bench_ctx_t *b, ss_error_t *err)
{
    linear_state_t c;
    const int64_t t = 4096, in = 768, out = 3072;
    SS_TRY(tensor(b, &c.x, 2, (int64_t[]){t, in}, 1, err));
    SS_TRY(tensor(b, &c.dx, 2, (int64_t[]){t, in}, 2, err));
    SS_TRY(tensor(b, &c.w, 2, (int64_t[]){out, in}, 3, err));
    SS_TRY(tensor(b, &c.dw, 2, (int64_t[]){out, in}, 4, err));
    SS_TRY(tensor(b, &c.bias, 1, &out, 5, err));
    SS_TRY(tensor(b, &c.db, 1, &out, 6, err));
    SS_TRY(tensor(b, &c.y, 2, (int64_t[]){t, out}, 7, err));
    double flops = 2.0 * (double)(t * in * out);
    bench_spec_t s = {"linear", "(4096x768->3072)", flops, 2 * flops, 0, 0};
    return measure(b, &s, linear_fwd, linear_bwd, &c, err);
}

// ---- transposed conv k2 s2 -------------------------------------------------------------------

typedef struct {
    ss_tensor_t x, w, bias, y, dx, dw, db;
    ss_convt3d_params_t p;
} convt_state_t;

static ss_status_t convt_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    convt_state_t *c = s;
    return ss_convt3d_fwd(&c->y, &c->x, &c->w, &c->bias, &c->p, ex, err);
}

static ss_status_t convt_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    convt_state_t *c = s;
    SS_TRY(ss_convt3d_bwd_data(&c->dx, &c->y, &c->w, &c->p, ex, err));
    return ss_convt3d_bwd_weight(&c->dw, &c->db, &c->x, &c->y, &c->p, ex, err);
}

static ss_status_t bench_convt3d(bench_ctx_t *b, ss_error_t *err)
{
    convt_state_t c = {.p = {{2, 2, 2}}};
    const int64_t ci = 64, co = 32, n = 32;
    SS_TRY(tensor(b, &c.x, 5, (int64_t[]){1, ci, n, n, n}, 1, err));
    SS_TRY(tensor(b, &c.dx, 5, (int64_t[]){1, ci, n, n, n}, 2, err));
    SS_TRY(tensor(b, &c.w, 5, (int64_t[]){ci, co, 2, 2, 2}, 3, err));
    SS_TRY(tensor(b, &c.dw, 5, (int64_t[]){ci, co, 2, 2, 2}, 4, err));
    SS_TRY(tensor(b, &c.bias, 1, (int64_t[]){co}, 5, err));
    SS_TRY(tensor(b, &c.db, 1, (int64_t[]){co}, 6, err));
    SS_TRY(tensor(b, &c.y, 5, (int64_t[]){1, co, 2 * n, 2 * n, 2 * n}, 7, err));
    SS_TRY(need_work(b, ss_convt3d_workspace_size(&c.x, &c.w, &c.p, b->nthreads), err));
    double flops = 2.0 * (double)(ci * co * 8 * n * n * n);
    bench_spec_t s = {"convt3d_k2", "(1,64->32,32^3->64^3)", flops, 2 * flops, 0, 0};
    return measure(b, &s, convt_fwd, convt_bwd, &c, err);
}

// ---- max pool 2x2x2 --------------------------------------------------------------------------

typedef struct {
    ss_tensor_t x, y, dx;
    uint8_t *argmax;
    ss_pool3d_params_t p;
} pool_state_t;

static ss_status_t pool_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    pool_state_t *c = s;
    return ss_pool3d_max_fwd(&c->y, c->argmax, &c->x, &c->p, ex, err);
}

static ss_status_t pool_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    pool_state_t *c = s;
    return ss_pool3d_max_bwd(&c->dx, &c->y, c->argmax, &c->p, ex, err);
}

static ss_status_t bench_maxpool(bench_ctx_t *b, ss_error_t *err)
{
    pool_state_t c = {.p = {{2, 2, 2}}};
    const int64_t ch = 32, n = 128;
    SS_TRY(tensor(b, &c.x, 5, (int64_t[]){1, ch, n, n, n}, 1, err));
    SS_TRY(tensor(b, &c.dx, 5, (int64_t[]){1, ch, n, n, n}, 2, err));
    SS_TRY(tensor(b, &c.y, 5, (int64_t[]){1, ch, n / 2, n / 2, n / 2}, 3, err));
    SS_TRY(ss_arena_alloc(b->arena, (size_t)ss_tensor_numel(&c.y), (void **)&c.argmax, err));
    double vin = (double)ss_tensor_nbytes(&c.x), vout = (double)ss_tensor_nbytes(&c.y);
    bench_spec_t s = {"maxpool", "(1,32,128^3)",        0,
                      0,         vin + vout + vout / 4, vout + vout / 4 + vin};
    return measure(b, &s, pool_fwd, pool_bwd, &c, err);
}

// ---- channel concat (decoder skips) ----------------------------------------------------------

typedef struct {
    ss_tensor_t a, bb, y;
} cat_state_t;

static ss_status_t cat_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    cat_state_t *c = s;
    return ss_layout_concat_fwd(&c->y, &c->a, &c->bb, ex, err);
}

static ss_status_t cat_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    cat_state_t *c = s;
    return ss_layout_concat_bwd(&c->a, &c->bb, &c->y, ex, err);
}

static ss_status_t bench_concat(bench_ctx_t *b, ss_error_t *err)
{
    cat_state_t c;
    SS_TRY(tensor(b, &c.a, 5, (int64_t[]){1, 32, 64, 64, 64}, 1, err));
    SS_TRY(tensor(b, &c.bb, 5, (int64_t[]){1, 32, 64, 64, 64}, 2, err));
    SS_TRY(tensor(b, &c.y, 5, (int64_t[]){1, 64, 64, 64, 64}, 3, err));
    double bytes = 2.0 * (double)ss_tensor_nbytes(&c.y);
    bench_spec_t s = {"concat", "2x(1,32,64^3)", 0, 0, bytes, bytes};
    return measure(b, &s, cat_fwd, cat_bwd, &c, err);
}

// ---- Dice + CE (sigmoid, BraTS regions) ------------------------------------------------------

typedef struct {
    ss_tensor_t logits, target, dlogits;
    ss_loss_params_t p;
    ss_loss_value_t val;
    double *sums, *coef;
} loss_state_t;

// Forward = local sums + finalize (what each rank does around the sums all-reduce); backward =
// the gradient pass from the finalized coefficients.
static ss_status_t loss_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    loss_state_t *c = s;
    SS_TRY(ss_loss_fwd_partial(c->sums, &c->logits, &c->target, &c->p, ex, err));
    return ss_loss_fwd_finalize(&c->val, c->coef, c->sums, c->logits.shape[0], c->logits.shape[1],
                                &c->p, err);
}

static ss_status_t loss_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    loss_state_t *c = s;
    return ss_loss_bwd(&c->dlogits, &c->logits, &c->target, c->coef, &c->p, ex, err);
}

static ss_status_t bench_dice_ce(bench_ctx_t *b, ss_error_t *err)
{
    loss_state_t c;
    const int64_t shape[5] = {1, 3, 128, 128, 128};
    SS_TRY(tensor(b, &c.logits, 5, shape, 1, err));
    SS_TRY(tensor(b, &c.dlogits, 5, shape, 2, err));
    SS_TRY(ss_tensor_alloc(&c.target, SS_F32, 5, shape, b->arena, err));
    float *t = ss_tensor_f32(&c.target);
    for (int64_t i = 0; i < ss_tensor_numel(&c.target); i++) {
        t[i] = ss_rng_bernoulli(ss_rng_make(42, 9), (uint64_t)i, 0.2f) ? 1.0f : 0.0f;
    }
    ss_loss_params_init(&c.p, SS_LOSS_DICE_CE, SS_LOSS_SIGMOID);
    SS_TRY(
        ss_arena_alloc(b->arena, ss_loss_sums_len(1, 3) * sizeof(double), (void **)&c.sums, err));
    SS_TRY(
        ss_arena_alloc(b->arena, ss_loss_coef_len(1, 3) * sizeof(double), (void **)&c.coef, err));
    SS_TRY(need_work(b, ss_loss_workspace_size(&c.logits, b->nthreads), err));
    double bytes = (double)ss_tensor_nbytes(&c.logits);
    bench_spec_t s = {"dice_ce_sigmoid", "(1,3,128^3)", 0, 0, 2 * bytes, 3 * bytes};
    return measure(b, &s, loss_fwd, loss_bwd, &c, err);
}

// ---- AdamW step --------------------------------------------------------------------------------

typedef struct {
    float *p, *g, *m, *v;
    int64_t n;
    ss_optim_adam_params_t hp;
    ss_optim_state_t st;
} adamw_state_t;

static ss_status_t adamw_step(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    adamw_state_t *c = s;
    return ss_optim_adamw_step(c->p, c->m, c->v, c->g, c->n, &c->hp, &c->st, ex, err);
}

static ss_status_t bench_adamw(bench_ctx_t *b, ss_error_t *err)
{
    adamw_state_t c = {.n = 16 * 1024 * 1024, .st = {0}};
    c.hp = ss_optim_adamw_defaults();
    float **bufs[4] = {&c.p, &c.g, &c.m, &c.v};
    for (int i = 0; i < 4; i++) {
        SS_TRY(ss_arena_calloc(b->arena, (size_t)c.n * sizeof(float), (void **)bufs[i], err));
    }
    ss_rng_fill_uniform(ss_rng_make(42, 1), 0, c.n, -1, 1, c.p, b->nthreads);
    ss_rng_fill_uniform(ss_rng_make(42, 2), 0, c.n, -1, 1, c.g, b->nthreads);
    bench_spec_t s = {"adamw", "16M params", 0, 0, 28.0 * (double)c.n, 0};
    return measure(b, &s, adamw_step, NULL, &c, err);
}

// ---- multi-head attention (flash-style, never an N x N matrix) ---------------------------------

typedef struct {
    ss_tensor_t q, k, v, o, lse, dout, dq, dk, dv;
} attn_state_t;

static ss_status_t attn_fwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    attn_state_t *c = s;
    return ss_attention_fwd(&c->o, &c->lse, &c->q, &c->k, &c->v, NULL, ex, err);
}

static ss_status_t attn_bwd(void *s, const ss_exec_t *ex, ss_error_t *err)
{
    attn_state_t *c = s;
    return ss_attention_bwd(&c->dq, &c->dk, &c->dv, &c->q, &c->k, &c->v, &c->o, &c->dout, &c->lse,
                            NULL, ex, err);
}

static ss_status_t bench_attention(bench_ctx_t *b, ss_error_t *err)
{
    attn_state_t c;
    const int64_t n = 4096, h = 12, d = 64;
    const int64_t tok[4] = {1, n, h, d};
    ss_tensor_t *bufs[] = {&c.q, &c.k, &c.v, &c.o, &c.dout, &c.dq, &c.dk, &c.dv};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        SS_TRY(tensor(b, bufs[i], 4, tok, 10 + i, err));
    }
    SS_TRY(tensor(b, &c.lse, 3, (int64_t[]){1, h, n}, 20, err));
    SS_TRY(need_work(b, ss_attention_workspace_size(1, n, h, NULL, b->nthreads), err));
    // Forward 2 GEMMs (QK^T, PV), backward 5 (recomputed S, dV, dP, dQ, dK): 2 N^2 D flops each.
    double gemm = 2.0 * (double)(n * n * d * h);
    bench_spec_t s = {"attention", "(B1,N4096,H12,D64)", 2 * gemm, 5 * gemm, 0, 0};
    return measure(b, &s, attn_fwd, attn_bwd, &c, err);
}

// ---- driver ------------------------------------------------------------------------------------

typedef ss_status_t (*bench_op_fn)(bench_ctx_t *b, ss_error_t *err);

static const struct {
    const char *name;
    bench_op_fn run;
} g_ops[] = {
    {"conv3d_3x3x3", bench_conv3x3x3},
    {"conv3d_3x3x3_c4", bench_conv3x3x3_c4},
    {"conv3d_3x3x3_c16", bench_conv3x3x3_c16},
    {"conv3d_1x1x1", bench_conv1x1x1},
    {"patch_embed_p16", bench_patch_embed},
    {"convt3d_k2", bench_convt3d},
    {"attention", bench_attention},
    {"instnorm", bench_instnorm},
    {"layernorm", bench_layernorm},
    {"gelu", bench_gelu},
    {"linear", bench_linear},
    {"maxpool", bench_maxpool},
    {"concat", bench_concat},
    {"dice_ce_sigmoid", bench_dice_ce},
    {"adamw", bench_adamw},
};

int ss_cli_bench_kernels(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    int64_t repeats = 5;
    const char *only = NULL;
    const ss_cli_opt_t opts[] = {
        {"repeats", 'r', SS_OPT_INT, &repeats, "R", "timed runs per op after a warm-up (default 5)",
         1, 64},
        {"only", 0, SS_OPT_STRING, &only, "OPS", "comma-separated op names to run", 0, -1},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        puts("usage: shardseg bench kernels [--repeats R] [--only OP,OP]");
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (pr == SS_CLI_ERROR) {
        ss_cli_error(cmd, "%s", msg);
        return SS_EXIT_USAGE;
    }
    int rc = ss_cli_start(ctx, cmd);
    if (rc != 0) {
        return rc;
    }
    bench_ctx_t b = {(int)repeats, ctx->nthreads, 0, 0, NULL, NULL, 0, only};
    ss_budget_t budget;
    ss_budget_init(&budget, ctx->mem_limit);
    ss_error_t err;
    ss_error_clear(&err);
    double gf[8];
    ss_status_t st = ss_cli_bench_sgemm(2048, 5, ctx->nthreads, gf, &budget, &err);
    if (st == SS_OK) {
        // The peak is the best run: on a shared machine a median measures the neighbours.
        b.sgemm_gflops = gf[0];
        for (int i = 1; i < 5; i++) {
            b.sgemm_gflops = gf[i] > b.sgemm_gflops ? gf[i] : b.sgemm_gflops;
        }
        st = ss_cli_bench_memcpy(ctx->nthreads, 5, &b.memcpy_gbs, &budget, &err);
    }
    if (st == SS_OK) {
        st = ss_arena_create(64u << 20, &budget, "bench kernels", &b.arena, &err);
    }
    if (st == SS_OK) {
        char blas[256];
        ss_blas_info(blas, sizeof(blas));
        printf("# shardseg %s, %d threads, %s\n", ss_version(), ctx->nthreads, blas);
        printf("peak sgemm_gflops=%.1f memcpy_gbs=%.1f\n", b.sgemm_gflops, b.memcpy_gbs);
    }
    for (size_t i = 0; st == SS_OK && i < sizeof(g_ops) / sizeof(g_ops[0]); i++) {
        if (!wanted(&b, g_ops[i].name)) {
            continue;
        }
        ss_arena_mark_t mark = ss_arena_mark(b.arena);
        st = g_ops[i].run(&b, &err);
        if (st != SS_OK) {
            ss_error_prefix(&err, "%s", g_ops[i].name);
        }
        ss_arena_rewind(b.arena, mark);
    }
    ss_arena_destroy(&b.arena);
    ss_aligned_free(b.work, b.work_bytes, NULL);
    return st == SS_OK ? SS_EXIT_OK : ss_cli_fail(cmd, &err);
}
