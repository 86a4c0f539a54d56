// linear.h: fully connected layer over tokens, PyTorch nn.Linear layout, forward and backward.
//
//   x:  (..., in)   T = numel / in tokens (rows), contiguous
//   w:  (out, in)   PyTorch weight layout [out][in], contiguous
//   b:  (out) or NULL
//   y:  (..., out)  same leading dims (T rows), contiguous
//   forward:      y  = x w^T + b
//   bwd_data:     dx = beta * dx + dy w
//   bwd_weight:   dw = beta * dw + dy^T x,   db = beta * db + sum over tokens of dy (db may be
//   NULL)
// beta is 0 (OVERWRITE: the default; the old contents are never read, so they may be garbage or
// NaN) or 1 (ACCUMULATE: gradient accumulation over micro-batches, or a tensor feeding several
// consumers); other values scale as written.
//
// Sharding: token-local. A rank holding a contiguous token range (sequence shard) computes its
// rows of y and dx with no communication; its dw/db are the shard's contributions to the parameter
// gradients, summed over sequence ranks by the gradient all-reduce.
// The GEMMs run through ss_gemm with ex->nthreads threads. OpenBLAS splits the output, not the
// reduction, yet only some of its kernels give bit-identical results for every thread count
// (SkylakeX: yes; Haswell/Zen: last-bit differences), so y, dx, dw are thread-count invariant to
// float rounding only. db is a column sum in a fixed per-column order (double accumulators):
// bit-identical for any thread count.
// Workspace (optional): with ex->work of at least ss_linear_workspace_size() bytes, the three
// passes over at most 64 tokens (a ViT on 64^3 volumes, or one rank's slab of a longer
// sequence) run AVX-512 kernels that stream w (and write dw) once, where the CPU has them;
// their y, dx and dw are bit-identical for any thread count. Without it they run on OpenBLAS.
// Ownership: all borrowed. Threading: reentrant; call outside a parallel region.
// Outputs must not overlap inputs.
#ifndef SS_LINEAR_H
#define SS_LINEAR_H

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// Bytes of ex->work that let calls over `tokens` rows of (in, out) features with up to
// `nthreads` threads take the small-token kernels; 0 where they do not apply (more than 64
// tokens, or a CPU without AVX-512).
size_t ss_linear_workspace_size(int64_t tokens, int64_t in, int64_t out, int nthreads);

// OUT y = x w^T + b.
ss_status_t ss_linear_fwd(ss_tensor_t *y,
                          const ss_tensor_t *x,
                          const ss_tensor_t *w,
                          const ss_tensor_t *b,
                          const ss_exec_t *ex,
                          ss_error_t *err);
// INOUT dx = beta * dx + dy w.
ss_status_t ss_linear_bwd_data(ss_tensor_t *dx,
                               const ss_tensor_t *dy,
                               const ss_tensor_t *w,
                               float beta,
                               const ss_exec_t *ex,
                               ss_error_t *err);
// INOUT dw = beta * dw + dy^T x; INOUT db (may be NULL) = beta * db + column sums of dy.
ss_status_t ss_linear_bwd_weight(ss_tensor_t *dw,
                                 ss_tensor_t *db,
                                 const ss_tensor_t *dy,
                                 const ss_tensor_t *x,
                                 float beta,
                                 const ss_exec_t *ex,
                                 ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
