// act_ref.h: naive double-precision twins of act (GELU, ReLU, LeakyReLU, dropout, channel
// softmax), used by the tests as the reference and for finite-difference gradient checks.
// Formulas straight from include/shardseg/act.h with libm erfc/exp; no blocking, no threads.
//
//   elementwise: x, y, dy, dx of n elements
//   dropout:     element i of the (unsharded) tensor has global index base + i
//   softmax:     x, y, dy, dx (n, c, s), softmax over c
// All arrays are contiguous doubles, borrowed; outputs are overwritten.
#ifndef SS_ACT_REF_H
#define SS_ACT_REF_H

#include <stdint.h>

#include "shardseg/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

// tanh_approx: 0 exact erf GELU, 1 tanh approximation. Backward takes x.
void ss_ref_gelu_fwd(double *y, const double *x, int64_t n, int tanh_approx);
void ss_ref_gelu_bwd(double *dx, const double *dy, const double *x, int64_t n, int tanh_approx);

// slope 0 is ReLU. Backward takes x.
void ss_ref_leaky_relu_fwd(double *y, const double *x, int64_t n, double slope);
void ss_ref_leaky_relu_bwd(double *dx, const double *dy, const double *x, int64_t n, double slope);

// y = x * mask / (1 - p), mask = ss_rng_uniform(rng, base + i) >= p; the backward is the same
// map applied to dy.
void ss_ref_dropout_fwd(
    double *y, const double *x, int64_t n, double p, ss_rng_t rng, uint64_t base);

void ss_ref_softmax_fwd(double *y, const double *x, int64_t n, int64_t c, int64_t s);
void ss_ref_softmax_bwd(
    double *dx, const double *dy, const double *y, int64_t n, int64_t c, int64_t s);

#ifdef __cplusplus
}
#endif
#endif
