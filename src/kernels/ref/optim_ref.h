// optim_ref.h: naive double-precision twins of the optimizer steps, the gradient norm and the
// LR schedules, for tests and debugging.
//
// Same rules as shardseg/optim.h on double arrays; step = steps completed before this one (the
// update uses t = step + 1). The LR reference follows PyTorch's recursive (chainable) get_lr()
// formulas step by step, an independent check of the closed forms in optim.c.
#ifndef SS_OPTIM_REF_H
#define SS_OPTIM_REF_H

#include <stdint.h>

#include "shardseg/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

void ss_ref_optim_sgd_step(double *p,
                           double *m,
                           const double *g,
                           int64_t n,
                           const ss_optim_sgd_params_t *hp,
                           int64_t step);
// decoupled = 0: Adam (L2 in the gradient); 1: AdamW.
void ss_ref_optim_adam_step(double *p,
                            double *m,
                            double *v,
                            const double *g,
                            int64_t n,
                            const ss_optim_adam_params_t *hp,
                            int64_t step,
                            int decoupled);
double ss_ref_optim_sumsq(const double *g, int64_t n);
// Learning rate after t scheduler steps (t >= 0), by PyTorch's recursion.
double ss_ref_optim_lr(const ss_lr_schedule_t *s, int64_t t);

#ifdef __cplusplus
}
#endif
#endif
