// pool3d.h: 3-D max and average pooling with window == stride (U-Net encoder down-sampling).
//
// PyTorch's max_pool3d(x, k, stride=k) / avg_pool3d(x, k, stride=k) with padding 0, dilation 1,
// ceil_mode False: output sizes are floor(I / k0), floor(J / k1), floor(K / k2), and trailing
// input planes, rows and columns that do not fill a window are ignored (their gradient is 0).
//
//   x: (N, C, I, J, K)   y: (N, C, I / k0, J / k1, K / k2)   (integer division)
//
// Max pooling records, for every output voxel, the position of its maximum inside the window as
// one byte, argmax = a*k1*k2 + b*k2 + c for window offset (a, b, c). Ties go to the first maximum
// in that (row-major) order and a NaN wins over any number (the last NaN of the window), exactly as
// PyTorch's CPU kernel, so gradients match PyTorch's also on ties. The backward pass scatters dy
// through the saved bytes. Saving them rather than recomputing the argmax from x in backward is
// the faster choice: backward then streams dy (1/8 of x) and the bytes (1/32 of x) instead of all
// of x, and forward writes 1/32 of x's bytes more. Measured on x (1, 32, 128^3), 2 threads:
// forward 11.1 ms with argmax (10.0 ms without), backward 9.4 ms from the saved bytes against
// 24 ms recomputing from x; a plain memcpy of x takes 12.9 ms. The argmax buffer is the caller's
// (numel(y) bytes, e.g. from the step arena); pass NULL to the forward pass when no backward will
// follow (inference).
//
// The window {2, 2, 2} has a dedicated vectorised path; any other window with k0*k1*k2 <= 256 is
// supported by a generic path.
//
// Sequence parallelism: LOCAL on i-slabs whose boundaries are multiples of k0 (then input planes
// [i0, i1) map to output planes [i0/k0, i1/k0)); with an odd extent only the last slab may end
// in a partial window, which is ignored as above. No halo, no communication.
//
// Threading: up to ex->nthreads OpenMP threads over (n, c, output plane); no workspace (ex->work
// is ignored). Results are bitwise independent of the thread count (no reductions).
// Ownership: all tensors and the argmax buffer are borrowed. Outputs are OVERWRITTEN: the
// backward functions write every element of dx, zeros included.
#ifndef SS_POOL3D_H
#define SS_POOL3D_H

#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t window[3]; // window == stride along (I, J, K); {2, 2, 2} in the 3D U-Net
} ss_pool3d_params_t;

// y = max over each window of x. argmax: OUT, numel(y) bytes laid out like y, or NULL.
// SS_ESHAPE if y's shape is not floor(x / window); SS_EINVAL on a bad window, aliasing or a
// non-contiguous tensor.
ss_status_t ss_pool3d_max_fwd(ss_tensor_t *y,
                              uint8_t *argmax,
                              const ss_tensor_t *x,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err);

// dx (N, C, I, J, K): dy[n][c][o] at the saved argmax position of window o, 0 elsewhere.
// argmax: IN, as written by ss_pool3d_max_fwd for the same shapes.
ss_status_t ss_pool3d_max_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const uint8_t *argmax,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err);

// y = mean over each window of x (sum in window order, divided by k0*k1*k2).
ss_status_t ss_pool3d_avg_fwd(ss_tensor_t *y,
                              const ss_tensor_t *x,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err);

// dx = dy / (k0*k1*k2) at every position of each window, 0 in the ignored trailing part.
ss_status_t ss_pool3d_avg_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const ss_pool3d_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
