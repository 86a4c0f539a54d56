// loss_ref.h: naive double-precision twins of the loss kernels, for tests and debugging.
//
// Whole samples on one rank, no slabs: logits (N, C, S) and target (N, S) class map when map != 0,
// else (N, C, S), S = I*J*K, all contiguous doubles. Same semantics as shardseg/loss.h (MONAI
// DiceLoss / DiceCELoss, PyTorch CrossEntropyLoss / BCEWithLogitsLoss). Straight loops with
// libm exp/log and full Jacobian products, so they can serve as an independent reference.
#ifndef SS_LOSS_REF_H
#define SS_LOSS_REF_H

#include <stdint.h>

#include "shardseg/loss.h"

#ifdef __cplusplus
extern "C" {
#endif

// OUT val: loss, dice and ce parts.
void ss_ref_loss_fwd(ss_loss_value_t *val,
                     const double *logits,
                     const double *target,
                     int map,
                     int64_t n,
                     int64_t c,
                     int64_t s,
                     const ss_loss_params_t *p);
// OUT dlogits (N, C, S), overwritten: d loss / d logits.
void ss_ref_loss_bwd_logits(double *dlogits,
                            const double *logits,
                            const double *target,
                            int map,
                            int64_t n,
                            int64_t c,
                            int64_t s,
                            const ss_loss_params_t *p);

#ifdef __cplusplus
}
#endif
#endif
