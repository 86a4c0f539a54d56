// layout.h: data movement between tensors: strided copy, channel concatenation (decoder skip
// connections) and its backward split, i-slab get/put/add (halo planes, gathering slabs in
// tests), and spatial zero-pad/crop (inference tiles).
//
// These ops do no arithmetic except slab_add, so they are memory-bound: every one of them is
// reduced to a set of contiguous runs (adjacent dimensions whose strides chain are merged first,
// so a contiguous tensor is a single run) and the runs' elements are split evenly over the
// threads, each copying its share with memcpy. Results are exact and independent of the thread
// count.
//
// Tensors are float32 of any rank (rank 5, (N, C, I, J, K), where stated) and may be views with
// any non-negative strides, e.g. from ss_tensor_view_slab: a skip connection can be written
// straight into its part of a preallocated concat output, or a halo plane copied out of a slab.
// Destination and source must not overlap (checked when both are contiguous, SS_EINVAL).
//
// Sequence parallelism: all ops are LOCAL. On i-slabs, concat and pad act plane by plane along
// J and K (pad's lo[0] then only applies on the rank owning the volume's first planes).
//
// Performance: concat of two (1, 32, 64^3) runs at memcpy speed (3.2 ms, 42 GB/s read + write
// on 2 threads, memcpy 41 GB/s in the same run); pad 60^3 -> 64^3 of 32 channels is one pass.
//
// Threading: up to ex->nthreads OpenMP threads; small copies (< 64 KiB) run on the calling
// thread. No workspace. Ownership: all tensors are borrowed; outputs are OVERWRITTEN, except by
// ss_layout_slab_add, which accumulates into `full` by design.
#ifndef SS_LAYOUT_H
#define SS_LAYOUT_H

#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// dst = src, elementwise; same shape (SS_ESHAPE otherwise), any strides.
ss_status_t
ss_layout_copy(ss_tensor_t *dst, const ss_tensor_t *src, const ss_exec_t *ex, ss_error_t *err);

// y (N, Ca + Cb, ...) = cat(a (N, Ca, ...), b (N, Cb, ...)) along dimension 1 (channels), as
// torch.cat([a, b], dim=1). Any rank >= 2; the dimensions other than 1 must agree.
ss_status_t ss_layout_concat_fwd(ss_tensor_t *y,
                                 const ss_tensor_t *a,
                                 const ss_tensor_t *b,
                                 const ss_exec_t *ex,
                                 ss_error_t *err);

// Backward of concat: da = dy[:, :Ca], db = dy[:, Ca:]. Either of da, db may be NULL (that
// input needs no gradient); Ca is then taken from the other one and dy's channel count.
ss_status_t ss_layout_concat_bwd(
    ss_tensor_t *da, ss_tensor_t *db, const ss_tensor_t *dy, const ss_exec_t *ex, ss_error_t *err);

// slab (N, C, L, J, K) = full[:, :, i0 : i0 + L] of full (N, C, I, J, K). SS_ESHAPE if the range
// leaves [0, I) or the other dimensions differ.
ss_status_t ss_layout_slab_get(
    ss_tensor_t *slab, const ss_tensor_t *full, int64_t i0, const ss_exec_t *ex, ss_error_t *err);

// full[:, :, i0 : i0 + L] = slab; the rest of full is untouched.
ss_status_t ss_layout_slab_put(
    ss_tensor_t *full, const ss_tensor_t *slab, int64_t i0, const ss_exec_t *ex, ss_error_t *err);

// full[:, :, i0 : i0 + L] += slab (the backward of a halo copy: gradients of halo planes are
// added to the planes they were copied from).
ss_status_t ss_layout_slab_add(
    ss_tensor_t *full, const ss_tensor_t *slab, int64_t i0, const ss_exec_t *ex, ss_error_t *err);

typedef struct {
    int64_t lo[3]; // output offset of the input's first voxel along (I, J, K); negative crops
    float value;   // value of output voxels outside the input (0 for zero padding)
} ss_layout_pad_params_t;

// y (N, C, Yi, Yj, Yk) from x (N, C, Xi, Xj, Xk): y[.., i, j, k] = x[.., i - lo0, j - lo1, k - lo2]
// where that is inside x, else p->value. y's shape sets the far side, so any mix of padding and
// cropping per side is expressible; as torch.nn.functional.pad(x, (lo2, Yk - Xk - lo2, lo1,
// Yj - Xj - lo1, lo0, Yi - Xi - lo0), value=value), negative amounts included.
ss_status_t ss_layout_pad_fwd(ss_tensor_t *y,
                              const ss_tensor_t *x,
                              const ss_layout_pad_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err);

// Backward of pad: dx (N, C, Xi, Xj, Xk) = dy[.., i + lo0, j + lo1, k + lo2] where that is inside
// dy, else 0 (a crop of dy; p->value is ignored).
ss_status_t ss_layout_pad_bwd(ss_tensor_t *dx,
                              const ss_tensor_t *dy,
                              const ss_layout_pad_params_t *p,
                              const ss_exec_t *ex,
                              ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
