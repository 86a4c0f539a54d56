// loss.h: segmentation losses (softmax cross-entropy, BCE with logits, soft Dice, Dice+CE),
// forward value and gradient with respect to the logits, written for i-slab sharding.
//
// Semantics (checked against PyTorch and MONAI formulas in tests/golden/make_golden_loss.py):
//   loss = lambda_dice * dice + lambda_ce * ce
//   * act = SS_LOSS_SOFTMAX: p = softmax over C; ce = nn.CrossEntropyLoss(reduction="mean").
//   * act = SS_LOSS_SIGMOID: p = sigmoid(x);     ce = nn.BCEWithLogitsLoss(reduction="mean"),
//     MONAI DiceCELoss(sigmoid=True) (the overlapping BraTS regions WT/TC/ET).
//   * dice = MONAI DiceLoss(include_background, squared_pred, smooth_nr, smooth_dr, batch,
//     reduction="mean"): per group g, f_g = 1 - (2 I_g + smooth_nr) / (T_g + P_g + smooth_dr) with
//     I = sum p t, P = sum p (or p^2), T = sum t (or t^2), the sums over space per (n, c)
//     (batch = 0) or over (n, space) per c (batch = 1); dice = mean of f_g over the groups.
//   With lambda_ce = 0 this is DiceLoss, with lambda_dice = 0 plain CE/BCE (see
//   ss_loss_params_init); both parts are always computed and reported in ss_loss_value_t.
//
// Shapes (float32):
//   logits:  (N, C, I, J, K)
//   target:  either a class-index map (N, I, J, K) holding integer values stored as float
//            (softmax only; MONAI to_onehot_y=True for Dice, class indices for CE; voxels equal to
//            ignore_index count in neither part), or a dense target (N, C, I, J, K): one-hot,
//            multi-label or soft labels (MONAI DiceLoss targets; for softmax CE PyTorch's
//            class-probability form, for sigmoid the BCE target). The rank of `target` selects.
//   dlogits: (N, C, I, J, K), OVERWRITTEN with d loss / d logits.
// Layout: each (n, c) plane [I][J][K] must be contiguous (stride K = 1, J = K, I = J*K); the
// strides of N and C are free, so an i-slab view (ss_tensor_view_slab along dim 2) of a full
// tensor is accepted as it is.
//
// Sharding (sequence parallelism: a rank owns an i-slab of logits, target and dlogits):
//   1. ss_loss_fwd_partial(sums, slab...)    local double sums, ss_loss_sums_len(N, C) values
//   2. all-reduce `sums` with MPI_SUM over the ranks sharing the samples (plain sums of
//      non-negative terms and counts: no cancellation, so summing is exact enough)
//   3. ss_loss_fwd_finalize(val, coef, sums) loss value and gradient coefficients, same on all
//   4. ss_loss_bwd(dlogits_slab, slab..., coef) the exact gradient of the GLOBAL loss on the slab
// Sums layout: sums[3*(n*C + c) + {0,1,2}] = {I, P, T} of (n, c); sums[3*N*C] = CE/BCE sum;
// sums[3*N*C + 1] = CE count (non-ignored voxels for a class map, voxels for a dense softmax
// target, voxels * C for BCE). Coef layout: coef[2*(n*C + c) + {0,1}] = {a, b} with
// d(lambda_dice * dice)/dp = a * t + b * dP/dp (zero for channels outside the Dice), and
// coef[2*N*C] = lambda_ce / count. With data parallelism each rank reduces its own samples and
// the gradient all-reduce averages over data ranks (the mean over equal local batches).
//
// Deterministic: sums are formed per fixed 1024-voxel chunk (64-voxel float segments added into
// double) and folded in chunk order, so results are bit-identical for any thread count; the
// gradient pass is elementwise. A different slab split regroups the float segments: the loss
// then agrees with the single-rank value to ~1e-8 relative, not bit for bit.
// Cost: softmax needs C exp + 1 log per voxel in the forward and C exp again in the backward
// (recomputed, not stored); sigmoid 1 exp + 1 log per element forward, 1 exp backward. The
// transcendental polynomials, not memory, bound these kernels.
// Ownership: everything borrowed. Threading: reentrant; ex->nthreads OpenMP threads; scratch of
// ss_loss_workspace_size() bytes in ex->work.
#ifndef SS_LOSS_H
#define SS_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_LOSS_SOFTMAX = 0, // softmax over channels; CE = softmax cross-entropy
    SS_LOSS_SIGMOID = 1, // independent sigmoid per channel; CE = BCE with logits
} ss_loss_act_t;

typedef enum {
    SS_LOSS_CE = 0,      // lambda_dice = 0, lambda_ce = 1
    SS_LOSS_DICE = 1,    // lambda_dice = 1, lambda_ce = 0
    SS_LOSS_DICE_CE = 2, // lambda_dice = 1, lambda_ce = 1
} ss_loss_kind_t;

typedef struct {
    ss_loss_act_t act;
    int include_background; // MONAI include_background (ignored, i.e. kept, when C == 1)
    int squared_pred;       // MONAI squared_pred: P = sum p^2, T = sum t^2
    int batch;              // MONAI batch: Dice sums over n too, one ratio per channel
    double smooth_nr;       // >= 0, MONAI default 1e-5
    double smooth_dr;       // >= 0, MONAI default 1e-5
    double lambda_dice;     // >= 0
    double lambda_ce;       // >= 0
    double ignore_index;    // class-map value skipped by CE and Dice (PyTorch default -100)
} ss_loss_params_t;

typedef struct {
    double loss; // lambda_dice * dice + lambda_ce * ce
    double dice; // mean Dice loss (1 - soft Dice), computed whatever lambda_dice is
    double ce;   // mean CE (softmax) or BCE (sigmoid); 0 when no voxel counts
} ss_loss_value_t;

// MONAI/PyTorch defaults for `kind` with activation `act`: include_background = 1,
// squared_pred = 0, batch = 0, smooth_nr = smooth_dr = 1e-5, ignore_index = -100.
void ss_loss_params_init(ss_loss_params_t *p, ss_loss_kind_t kind, ss_loss_act_t act);
// SS_EINVAL for an unknown act, a negative smoothing or lambda.
ss_status_t ss_loss_params_validate(const ss_loss_params_t *p, ss_error_t *err);

// Number of doubles in the sums buffer (3*N*C + 2) and in the coef buffer (2*N*C + 1).
size_t ss_loss_sums_len(int64_t n, int64_t c);
size_t ss_loss_coef_len(int64_t n, int64_t c);
// Scratch bytes ss_loss_fwd_partial / ss_loss_bwd / the one-shot calls need in ex->work for
// these logits (local slab) and thread count.
size_t ss_loss_workspace_size(const ss_tensor_t *logits, int nthreads);

// OUT sums (ss_loss_sums_len doubles, overwritten): this slab's sums. SS_EINVAL if a class-map
// value is not an integer in [0, C) nor ignore_index.
ss_status_t ss_loss_fwd_partial(double *sums,
                                const ss_tensor_t *logits,
                                const ss_tensor_t *target,
                                const ss_loss_params_t *p,
                                const ss_exec_t *ex,
                                ss_error_t *err);
// acc[i] += x[i] for len doubles: the merge (what MPI_SUM does), for single-process callers.
void ss_loss_sums_merge(double *acc, const double *x, size_t len);
// OUT val, OUT coef (ss_loss_coef_len doubles, may be NULL) from the GLOBAL sums of n samples and
// c channels. A zero CE count gives ce = 0 and no CE gradient (PyTorch would return NaN).
// SS_ENUMERIC if the loss is not finite (e.g. NaN logits, or zero smoothing on an empty group).
ss_status_t ss_loss_fwd_finalize(ss_loss_value_t *val,
                                 double *coef,
                                 const double *sums,
                                 int64_t n,
                                 int64_t c,
                                 const ss_loss_params_t *p,
                                 ss_error_t *err);
// OUT dlogits (overwritten, must not overlap logits/target): gradient on this slab from the
// global coefficients of ss_loss_fwd_finalize.
ss_status_t ss_loss_bwd(ss_tensor_t *dlogits,
                        const ss_tensor_t *logits,
                        const ss_tensor_t *target,
                        const double *coef,
                        const ss_loss_params_t *p,
                        const ss_exec_t *ex,
                        ss_error_t *err);

// One rank holding whole samples: partial + finalize (+ bwd).
ss_status_t ss_loss_fwd(ss_loss_value_t *val,
                        const ss_tensor_t *logits,
                        const ss_tensor_t *target,
                        const ss_loss_params_t *p,
                        const ss_exec_t *ex,
                        ss_error_t *err);
ss_status_t ss_loss_fwd_bwd(ss_loss_value_t *val,
                            ss_tensor_t *dlogits,
                            const ss_tensor_t *logits,
                            const ss_tensor_t *target,
                            const ss_loss_params_t *p,
                            const ss_exec_t *ex,
                            ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
