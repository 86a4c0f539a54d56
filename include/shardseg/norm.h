// norm.h: instance / group normalisation of volumes and layer normalisation of tokens, forward and
// backward, written for sequence parallelism (a rank owns an i-slab of every volume).
//
// Instance and group norm (one code path: instance norm is group norm with one channel per group)
//   x, y, dy, dx: (N, C, S...) with any number (>= 0) of spatial dims S..., usually (N, C, I, J,
//   K). gamma, beta:  (C) or NULL (NULL gamma = 1, NULL beta = 0; both NULL = affine=False). mean,
//   rstd:   (N, G) (any shape with N*G elements, contiguous): saved by the forward for the
//                 backward; G = p->groups, or C when p->groups == 0.
//   Semantics: PyTorch InstanceNorm3d(C, eps, affine, track_running_stats=False) when groups == 0
//   (or == C), GroupNorm(groups, C, eps, affine) otherwise: per (n, group) the mean and the BIASED
//   variance over the group's channels and all spatial elements, y = (x - mean) * rstd * gamma[c] +
//   beta[c], rstd = 1 / sqrt(var + eps). No running statistics.
//   Layout: every (n, c) plane of S elements must be contiguous (row-major spatial dims); the N and
//   C strides are free, so an i-slab view (ss_tensor_view_slab along dim 2) is accepted as it is.
//
// Sharding. The statistics are global over the whole volume, so each stage is split:
//   forward
//     1. ss_instnorm_stats_partial(part, slab x)  per (n, g): count, mean, M2 of the local slab,
//                                                 in double, two-pass per 4096-element chunk and
//                                                 merged (Chan et al.) in chunk order
//     2. the dist layer all-gathers the N*G ss_norm_moments_t (3 doubles each) and calls
//        ss_instnorm_stats_merge(global, gathered, P, N*G) in rank order (so every rank gets the
//        same bits), or reduces them with ss_norm_moments_merge as a user-defined MPI reduction.
//        Never merge by summing raw sums of squares: M2 merging does not cancel catastrophically.
//     3. ss_instnorm_fwd_apply(y, mean, rstd, slab x, global stats)
//   backward
//     1. ss_instnorm_bwd_partial(sums, dgamma, dbeta, slab dy, slab x, mean, rstd): per (n, c) the
//        local sums[3*(n*C + c) + {0, 1, 2}] = {sum dy, sum dy * xhat, element count} (doubles),
//        plus this slab's dgamma/dbeta contribution (parameter gradients: the gradient
//        all-reduce sums them over the sequence ranks like every other parameter gradient).
//     2. the dist layer all-reduces sums (3*N*C doubles) with MPI_SUM.
//     3. ss_instnorm_bwd_apply(dx, slab dy, slab x, gamma, mean, rstd, global sums).
//   ss_instnorm_fwd / ss_instnorm_bwd run the stages on one rank that holds whole planes.
//   A rank with an empty slab (S == 0) contributes count 0 and is handled.
//
// Layer norm (PyTorch LayerNorm(C, eps, elementwise_affine)) over the last dim of tokens:
//   x, y, dy, dx: (..., C), contiguous; T = numel / C rows.   gamma, beta: (C), both or neither.
//   mean, rstd: T elements, contiguous (e.g. (T) or x's leading shape).
//   Token-local: a token shard needs no communication; dgamma/dbeta are this shard's parameter
//   gradient contribution (summed by the gradient all-reduce).
//
// Outputs of every call are OVERWRITTEN (never accumulated). y may be x and dx may be dy (in
// place); no other overlap is allowed.
// Determinism: every reduction is formed over fixed chunks (independent of ex->nthreads) and
// folded in a fixed order, so results are bit-identical for any thread count.
// Workspace: ex->work of at least ss_instnorm_workspace_size() / ss_layernorm_workspace_size()
// bytes (SS_EINVAL if smaller); the apply stages need none.
// Ownership: all tensors and arrays borrowed. Threading: reentrant, ex->nthreads OpenMP threads,
// call outside a parallel region.
#ifndef SS_NORM_H
#define SS_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// Moments of a set of values: all doubles, so an array of them is 3*len MPI_DOUBLEs.
typedef struct {
    double count; // number of values (exact up to 2^53)
    double mean;
    double m2; // sum of squared deviations from mean
} ss_norm_moments_t;

typedef struct {
    int64_t groups; // 0: instance norm (G = C); otherwise G, which must divide C (GroupNorm)
    float eps;      // > 0 (PyTorch default 1e-5)
} ss_instnorm_params_t;

typedef struct {
    float eps; // > 0 (PyTorch default 1e-5)
} ss_layernorm_params_t;

// acc[i] = acc[i] merged with b[i] for i in [0, len) (Chan et al.; exact for empty sets).
void ss_norm_moments_merge(ss_norm_moments_t *acc, const ss_norm_moments_t *b, int64_t len);

// Scratch bytes any ss_instnorm_* call needs for x (the local slab). Independent of threads.
size_t ss_instnorm_workspace_size(const ss_tensor_t *x, const ss_instnorm_params_t *p);

// OUT stats (N*G, overwritten): moments of the local slab per (n, g).
ss_status_t ss_instnorm_stats_partial(ss_norm_moments_t *stats,
                                      const ss_tensor_t *x,
                                      const ss_instnorm_params_t *p,
                                      const ss_exec_t *ex,
                                      ss_error_t *err);
// OUT out[j] (len entries) = parts[0*len + j] merged with parts[1*len + j], ... in part order.
// out may be parts (the first part is then replaced).
ss_status_t ss_instnorm_stats_merge(ss_norm_moments_t *out,
                                    const ss_norm_moments_t *parts,
                                    int nparts,
                                    int64_t len,
                                    ss_error_t *err);
// OUT y (may be x itself: the update is elementwise); OUT mean, rstd (N*G floats each, may be
// NULL) from the GLOBAL stats (N*G).
// SS_EINVAL if a group of the global stats is empty.
ss_status_t ss_instnorm_fwd_apply(ss_tensor_t *y,
                                  ss_tensor_t *mean,
                                  ss_tensor_t *rstd,
                                  const ss_tensor_t *x,
                                  const ss_tensor_t *gamma,
                                  const ss_tensor_t *beta,
                                  const ss_norm_moments_t *stats,
                                  const ss_instnorm_params_t *p,
                                  const ss_exec_t *ex,
                                  ss_error_t *err);
// What ss_instnorm_fwd_apply_act does to each normalised chunk while it is in cache:
// y = act(norm(x) + res), bit for bit what the separate add and activation calls would give, in
// one pass over memory instead of three (a residual block's norm, add and LeakyReLU).
typedef enum {
    SS_NORM_ACT_NONE,
    SS_NORM_ACT_RELU,  // x < 0 ? 0 : x (keeps NaN), as ss_relu_fwd
    SS_NORM_ACT_LEAKY, // as ss_leaky_relu_fwd with `slope`
} ss_norm_act_t;

typedef struct {
    const ss_tensor_t *res; // x's shape (a slab view is fine), added first; NULL: none
    ss_norm_act_t act;
    float slope; // SS_NORM_ACT_LEAKY only; finite
} ss_instnorm_epilogue_t;

// ss_instnorm_fwd_apply followed by the epilogue e (NULL: none). y may be x; e->res must not
// overlap y.
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
                                      ss_error_t *err);
// OUT sums (3*N*C doubles, layout above); OUT dgamma, dbeta ((C), each may be NULL): this slab's
// contribution. mean, rstd: from the forward.
ss_status_t ss_instnorm_bwd_partial(double *sums,
                                    ss_tensor_t *dgamma,
                                    ss_tensor_t *dbeta,
                                    const ss_tensor_t *dy,
                                    const ss_tensor_t *x,
                                    const ss_tensor_t *mean,
                                    const ss_tensor_t *rstd,
                                    const ss_instnorm_params_t *p,
                                    const ss_exec_t *ex,
                                    ss_error_t *err);
// OUT dx from the GLOBAL sums (3*N*C doubles). gamma (C) or NULL as in the forward.
ss_status_t ss_instnorm_bwd_apply(ss_tensor_t *dx,
                                  const ss_tensor_t *dy,
                                  const ss_tensor_t *x,
                                  const ss_tensor_t *gamma,
                                  const ss_tensor_t *mean,
                                  const ss_tensor_t *rstd,
                                  const double *sums,
                                  const ss_instnorm_params_t *p,
                                  const ss_exec_t *ex,
                                  ss_error_t *err);

// Whole planes on one rank: stats_partial + fwd_apply. mean, rstd may be NULL (inference).
ss_status_t ss_instnorm_fwd(ss_tensor_t *y,
                            ss_tensor_t *mean,
                            ss_tensor_t *rstd,
                            const ss_tensor_t *x,
                            const ss_tensor_t *gamma,
                            const ss_tensor_t *beta,
                            const ss_instnorm_params_t *p,
                            const ss_exec_t *ex,
                            ss_error_t *err);
// Whole planes on one rank: bwd_partial + bwd_apply. dgamma, dbeta may be NULL.
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
                            ss_error_t *err);

// Scratch bytes ss_layernorm_bwd needs for x (0 for the forward). Independent of threads.
size_t ss_layernorm_workspace_size(const ss_tensor_t *x);

// OUT y; OUT mean, rstd (T floats each, may be NULL for inference).
ss_status_t ss_layernorm_fwd(ss_tensor_t *y,
                             ss_tensor_t *mean,
                             ss_tensor_t *rstd,
                             const ss_tensor_t *x,
                             const ss_tensor_t *gamma,
                             const ss_tensor_t *beta,
                             const ss_layernorm_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err);
// OUT dx; OUT dgamma, dbeta ((C) each, or NULL; must be NULL when gamma is NULL), summed over this
// shard's tokens.
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
                             ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
