// optim.h: optimizer steps over flat parameter slabs, global-norm gradient clipping and
// learning-rate schedules, with PyTorch's update rules.
//
// Slabs: params p, grads g and optimizer state (m: SGD momentum buffer / Adam exp_avg,
// v: Adam exp_avg_sq) are flat float arrays of n elements (the model's parameter slabs, or any
// contiguous piece of them). Updates are elementwise: a slab may be updated in several pieces
// (e.g. per gradient bucket) with the same state struct, and the result is bit-identical for any
// thread count. Build with -std=c11 (no FP contraction) keeps vector and scalar paths identical.
//
// Step counting: ss_optim_state_t.step is the number of steps completed (PyTorch's
// state['step']). A step function uses t = step + 1 and does NOT advance the counter, so every
// piece of a slab sees the same t; call ss_optim_state_advance() once after the whole step.
//
// Clipping (torch.nn.utils.clip_grad_norm_, norm_type 2):
//   1. ss_optim_sumsq_partial(&s, g_local)   sum of squares in double of this rank's gradients
//   2. all-reduce s with MPI_SUM over ranks holding disjoint gradient pieces (after the gradient
//      all-reduce every rank holds the full gradient: then no reduction is needed). Squares are
//      non-negative, so a plain double sum has no cancellation (DESIGN.md's stable-merge
//      concern is about variances).
//   3. scale = ss_optim_clip_scale(s, max_norm) = min(1, max_norm / (sqrt(s) + 1e-6))
//   4. ss_optim_scale(g, n, scale)
//
// LR schedules are pure functions lr(step) of the 0-based scheduler step t (the value PyTorch's
// scheduler.get_last_lr() reports after t calls of scheduler.step()).
//
// Ownership: all arrays borrowed. Threading: reentrant; ex->nthreads OpenMP threads; no
// workspace. p, g, m, v must not overlap.
#ifndef SS_OPTIM_H
#define SS_OPTIM_H

#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t step; // optimizer steps completed (PyTorch state['step']); 0 before the first
} ss_optim_state_t;

static inline void ss_optim_state_advance(ss_optim_state_t *st)
{
    st->step++;
}

// torch.optim.SGD: d = g + weight_decay * p; with momentum: buf = d on the first step (t == 1),
// else buf = momentum * buf + (1 - dampening) * d; d = nesterov ? d + momentum * buf : buf;
// p -= lr * d.
typedef struct {
    double lr;           // >= 0
    double momentum;     // >= 0; 0 leaves the buffer m untouched (may be NULL)
    double dampening;    // nesterov requires 0
    double weight_decay; // >= 0, L2 added to the gradient
    int nesterov;        // requires momentum > 0 and dampening == 0 (as PyTorch)
} ss_optim_sgd_params_t;

// torch.optim.Adam / AdamW (amsgrad = False, maximize = False):
//   Adam:  g' = g + weight_decay * p             AdamW: p *= 1 - lr * weight_decay; g' = g
//   m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// amsgrad is not implemented (no model here uses it; it would need a third state slab).
typedef struct {
    double lr;           // >= 0
    double beta1, beta2; // in [0, 1)
    double eps;          // >= 0
    double weight_decay; // >= 0
} ss_optim_adam_params_t;

// PyTorch defaults: SGD lr 1e-3 (PyTorch has none), no momentum; Adam lr 1e-3, betas (0.9,
// 0.999), eps 1e-8, weight_decay 0; AdamW the same with weight_decay 1e-2.
ss_optim_sgd_params_t ss_optim_sgd_defaults(void);
ss_optim_adam_params_t ss_optim_adam_defaults(void);
ss_optim_adam_params_t ss_optim_adamw_defaults(void);

// INOUT p, INOUT m (momentum buffer; not read on the first step), IN g; n elements.
ss_status_t ss_optim_sgd_step(float *p,
                              float *m,
                              const float *g,
                              int64_t n,
                              const ss_optim_sgd_params_t *hp,
                              const ss_optim_state_t *st,
                              const ss_exec_t *ex,
                              ss_error_t *err);
// INOUT p, m, v (zero-initialised by the caller before the first step), IN g; n elements.
ss_status_t ss_optim_adam_step(float *p,
                               float *m,
                               float *v,
                               const float *g,
                               int64_t n,
                               const ss_optim_adam_params_t *hp,
                               const ss_optim_state_t *st,
                               const ss_exec_t *ex,
                               ss_error_t *err);
ss_status_t ss_optim_adamw_step(float *p,
                                float *m,
                                float *v,
                                const float *g,
                                int64_t n,
                                const ss_optim_adam_params_t *hp,
                                const ss_optim_state_t *st,
                                const ss_exec_t *ex,
                                ss_error_t *err);

// The same steps that also return *sumsq, bit for bit ss_optim_sumsq_partial(sumsq, g, n), read
// in the same pass over memory: for a step without clipping, where the update does not depend
// on the norm (one read of g from memory instead of two: 400 MB per step for a 100M-parameter
// UNETR).
ss_status_t ss_optim_adam_step_sumsq(float *p,
                                     float *m,
                                     float *v,
                                     const float *g,
                                     int64_t n,
                                     const ss_optim_adam_params_t *hp,
                                     const ss_optim_state_t *st,
                                     double *sumsq,
                                     const ss_exec_t *ex,
                                     ss_error_t *err);
ss_status_t ss_optim_adamw_step_sumsq(float *p,
                                      float *m,
                                      float *v,
                                      const float *g,
                                      int64_t n,
                                      const ss_optim_adam_params_t *hp,
                                      const ss_optim_state_t *st,
                                      double *sumsq,
                                      const ss_exec_t *ex,
                                      ss_error_t *err);

// OUT *sumsq = sum of g[i]^2 in double over n elements; bit-identical for any thread count (the
// slab is cut into at most 1024 fixed blocks whose sums are added in block order).
ss_status_t ss_optim_sumsq_partial(
    double *sumsq, const float *g, int64_t n, const ss_exec_t *ex, ss_error_t *err);
// min(1, max_norm / (sqrt(total_sumsq) + 1e-6)), clip_grad_norm_'s clip_coef_clamped. NaN if
// total_sumsq is NaN (PyTorch's error_if_nonfinite=False behaviour).
double ss_optim_clip_scale(double total_sumsq, double max_norm);
// INOUT g: g[i] *= scale.
ss_status_t ss_optim_scale(float *g, int64_t n, float scale, const ss_exec_t *ex, ss_error_t *err);
// One rank holding all gradients: clip_grad_norm_(max_norm). OUT *total_norm (may be NULL) is
// the norm before clipping. SS_ENUMERIC, gradients untouched, if the norm is not finite
// (PyTorch's error_if_nonfinite=True).
ss_status_t ss_optim_clip_grad_norm(
    double *total_norm, float *g, int64_t n, double max_norm, const ss_exec_t *ex, ss_error_t *err);

typedef enum {
    SS_LR_CONSTANT = 0, // lr0
    SS_LR_STEP = 1,     // StepLR: lr0 * gamma^floor(t / step_size)
    SS_LR_COSINE = 2,   // CosineAnnealingLR: eta_min + (lr0 - eta_min) (1 + cos(pi t / t_max)) / 2
    SS_LR_POLY = 3,     // nnU-Net / PolynomialLR: lr0 * (1 - min(t, t_max) / t_max)^power
} ss_lr_kind_t;

// Linear warm-up (warmup_steps > 0) is PyTorch's SequentialLR([LinearLR(start_factor,
// end_factor=1, total_iters=warmup_steps), main], milestones=[warmup_steps]): for t < W,
// lr0 * (f0 + (1 - f0) t / W); for t >= W the main schedule at t - W (t_max counts from there).
typedef struct {
    ss_lr_kind_t kind;
    double lr0;
    int64_t step_size;          // SS_LR_STEP, >= 1
    double gamma;               // SS_LR_STEP
    int64_t t_max;              // SS_LR_COSINE, SS_LR_POLY: >= 1
    double eta_min;             // SS_LR_COSINE
    double power;               // SS_LR_POLY (nnU-Net: 0.9)
    int64_t warmup_steps;       // 0: none
    double warmup_start_factor; // in (0, 1]
} ss_lr_schedule_t;

// SS_EINVAL for an unknown kind or an out-of-range field.
ss_status_t ss_optim_lr_validate(const ss_lr_schedule_t *s, ss_error_t *err);
// Learning rate at 0-based step t >= 0 (t < 0 is treated as 0). s must be valid.
double ss_optim_lr(const ss_lr_schedule_t *s, int64_t t);

#ifdef __cplusplus
}
#endif
#endif
