// step.h: one training step of a model: forward, loss, backward, gradient reduction, clipping,
// optimizer update. Shared by `shardseg train` and `shardseg bench step`.
//
// The loss is computed on this rank's slab with the staged loss kernels (slab sums -> sum over
// the sequence group -> global value and coefficients -> slab gradient), so a sharded step takes
// exactly the single-rank step. The optimizer works on the model's flat vectors in runs of
// trainable parameters (alignment gaps hold zeros and stay zero; BatchNorm buffers are skipped).
// Its state (exp_avg, exp_avg_sq or the momentum buffer) is owned here and exposed for
// checkpoints.
//
// Ownership: ss_stepper_create borrows the model (it must outlive the stepper) and owns the
// optimizer state and the loss buffers (charged to the budget). Threading: one thread; kernels
// use the model's plan.nthreads.
#ifndef SS_STEP_H
#define SS_STEP_H

#include <stdint.h>

#include "shardseg/loss.h"
#include "shardseg/model.h"
#include "shardseg/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_OPTIM_ADAMW = 0,
    SS_OPTIM_ADAM = 1,
    SS_OPTIM_SGD = 2,
} ss_optim_kind_t;

typedef struct {
    ss_optim_kind_t optim;
    ss_optim_adam_params_t adam; // adam / adamw (lr ignored: the schedule gives it)
    ss_optim_sgd_params_t sgd;   // sgd (lr ignored)
    ss_lr_schedule_t lr;
    double clip_norm; // 0: no clipping
    ss_loss_params_t loss;
} ss_step_config_t;

// AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 1e-5 as MONAI's UNETR tutorial),
// constant lr, no clipping, Dice+CE with sigmoid (the BraTS regions).
void ss_step_config_default(ss_step_config_t *c);
ss_status_t ss_step_config_validate(const ss_step_config_t *c, ss_error_t *err);
const char *ss_optim_kind_name(ss_optim_kind_t k); // "adamw" | "adam" | "sgd"

typedef struct {
    double loss, dice, ce; // the global loss of this step (same on every rank)
    double lr;             // learning rate applied
    double grad_norm;      // global gradient norm before clipping
} ss_step_result_t;

typedef struct ss_stepper ss_stepper_t;

ss_status_t ss_stepper_create(ss_stepper_t **out,
                              ss_model_t *m,
                              const ss_step_config_t *c,
                              ss_budget_t *budget,
                              ss_error_t *err);
void ss_stepper_destroy(ss_stepper_t **s);

// One step on x (the model's input slab) against target (sigmoid: [N][out][slab][J][K] of 0/1;
// softmax: class map [N][slab][J][K]). st->step is the optimizer step index t (0-based): the
// learning rate is the schedule's value at t and AdamW's bias correction uses t + 1.
// SS_ENUMERIC when the loss or the gradient norm is not finite: with clipping (or SGD) before
// any update; Adam / AdamW without clipping sum the norm in the update's own pass, so they have
// applied that update (as torch.optim would), and the model should be reloaded.
ss_status_t ss_stepper_run(ss_stepper_t *s,
                           ss_step_result_t *res,
                           const ss_tensor_t *x,
                           const ss_tensor_t *target,
                           const ss_model_step_t *st,
                           ss_error_t *err);

// Loss of the model's current weights on (x, target) without updating anything.
ss_status_t ss_stepper_eval(ss_stepper_t *s,
                            ss_step_result_t *res,
                            const ss_tensor_t *x,
                            const ss_tensor_t *target,
                            ss_error_t *err);

// Optimizer state for checkpoints: nstate flat vectors of ss_model_numel floats (AdamW/Adam: 2,
// exp_avg and exp_avg_sq; SGD: 1 momentum buffer, 0 without momentum), and the step count.
int ss_stepper_nstate(const ss_stepper_t *s);
float *ss_stepper_state(const ss_stepper_t *s, int i);
int64_t ss_stepper_steps_done(const ss_stepper_t *s);
void ss_stepper_set_steps_done(ss_stepper_t *s, int64_t steps);

#ifdef __cplusplus
}
#endif

#endif
