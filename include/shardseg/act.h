// act.h: activations, dropout and channel softmax, forward and backward.
//
// Elementwise ops (GELU, ReLU, LeakyReLU, dropout): x, y, dy, dx are float32 tensors of any shape,
// contiguous, all with the same shape. Each element is computed on its own, so results do not
// depend on the thread count or on how a tensor is sharded (dropout: see below).
//
//   GELU, PyTorch F.gelu(x, approximate="none" | "tanh"):
//     SS_GELU_ERF:  y = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, computed as erfc(|x|/sqrt
//     2)
//                   so the negative tail keeps full relative precision (the 1 + erf form loses it).
//     SS_GELU_TANH: y = x / 2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
//     Backward takes x (the forward input). Evaluated in double with a vectorised erfc (relative
//     error < 5e-10) and exp: y is within 1 ulp of the exact value (max relative error 6e-8),
//     dx within 6e-8 * |dy| absolute (the derivative has a root near x = -0.75).
//   ReLU: y = max(x, 0) (NaN propagates). Backward takes y (or x: y > 0 exactly when x > 0), so
//     the forward may run in place and x need not be kept: dx = dy where y > 0, else 0.
//   LeakyReLU(slope): y = x if x > 0 else slope * x. Backward takes x (y works too when slope > 0):
//     dx = dy if x > 0 else slope * dy (PyTorch leaky_relu_backward).
//   Dropout(p), training mode: y = x * mask / (1 - p) with mask = (u >= p) for the counter-based
//     uniform u = ss_rng_uniform(rng, g) of the element's GLOBAL index g; p == 1 gives y = 0.
//     Backward regenerates the mask from the same params (no mask is stored):
//     dx = dy * mask / (1 - p). Inference (eval mode) is the identity: do not call it.
//     Global index: local element i (row-major) of the local tensor has
//       g = base + i                                    when row_len == 0 (a contiguous shard,
//                                                        e.g. a token range: base = t0 * C), else
//       g = base + (i / row_len) * row_stride + i % row_len   (rows of a slab).
//     For an i-slab [i0, i0 + Il) of a global (N, C, I, J, K) tensor held as a contiguous local
//     (N, C, Il, J, K): row_len = Il*J*K, row_stride = I*J*K, base = i0*J*K. Every rank count and
//     thread count then draws the same mask as the unsharded tensor.
//
// Softmax over the channel dim (dim 1) of (N, C, S...), e.g. segmentation logits (N, C, I, J, K):
//   y[n, c, s] = exp(x[n, c, s] - max_c x) / sum_c exp(...). Backward takes y:
//   dx = y * (dy - sum_c dy * y). Each spatial position is independent, so an i-slab needs no
//   communication. Layout: every (n, c) plane contiguous, N and C strides free (i-slab views OK).
//
// Outputs are OVERWRITTEN. y may be x and dx may be dy (in place); no other overlap is allowed.
// Ownership: all borrowed. Threading: reentrant; ex->nthreads OpenMP threads, no workspace; call
// outside a parallel region.
#ifndef SS_ACT_H
#define SS_ACT_H

#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/rng.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_GELU_ERF = 0,  // exact (PyTorch default, approximate="none")
    SS_GELU_TANH = 1, // approximate="tanh"
} ss_gelu_approx_t;

typedef struct {
    float p;            // drop probability in [0, 1]
    ss_rng_t rng;       // seed and stream of this dropout site at this step (ss_rng_stream)
    uint64_t base;      // global index of local element 0
    int64_t row_len;    // 0: contiguous global range; else local elements per row (> 0)
    int64_t row_stride; // global index distance between consecutive rows (>= row_len)
} ss_dropout_params_t;

ss_status_t ss_gelu_fwd(ss_tensor_t *y,
                        const ss_tensor_t *x,
                        ss_gelu_approx_t approx,
                        const ss_exec_t *ex,
                        ss_error_t *err);
ss_status_t ss_gelu_bwd(ss_tensor_t *dx,
                        const ss_tensor_t *dy,
                        const ss_tensor_t *x,
                        ss_gelu_approx_t approx,
                        const ss_exec_t *ex,
                        ss_error_t *err);

ss_status_t ss_relu_fwd(ss_tensor_t *y, const ss_tensor_t *x, const ss_exec_t *ex, ss_error_t *err);
ss_status_t ss_relu_bwd(ss_tensor_t *dx,
                        const ss_tensor_t *dy,
                        const ss_tensor_t *y,
                        const ss_exec_t *ex,
                        ss_error_t *err);

// slope: PyTorch negative_slope (default 0.01), finite.
ss_status_t ss_leaky_relu_fwd(
    ss_tensor_t *y, const ss_tensor_t *x, float slope, const ss_exec_t *ex, ss_error_t *err);
ss_status_t ss_leaky_relu_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const ss_tensor_t *x,
                              float slope,
                              const ss_exec_t *ex,
                              ss_error_t *err);

// SS_EINVAL for p outside [0, 1], a negative row_len or row_stride < row_len.
ss_status_t ss_dropout_fwd(ss_tensor_t *y,
                           const ss_tensor_t *x,
                           const ss_dropout_params_t *p,
                           const ss_exec_t *ex,
                           ss_error_t *err);
ss_status_t ss_dropout_bwd(ss_tensor_t *dx,
                           const ss_tensor_t *dy,
                           const ss_dropout_params_t *p,
                           const ss_exec_t *ex,
                           ss_error_t *err);

// x, y: (N, C, S...) with ndim >= 2.
ss_status_t
ss_softmax_fwd(ss_tensor_t *y, const ss_tensor_t *x, const ss_exec_t *ex, ss_error_t *err);
ss_status_t ss_softmax_bwd(ss_tensor_t *dx,
                           const ss_tensor_t *dy,
                           const ss_tensor_t *y,
                           const ss_exec_t *ex,
                           ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
