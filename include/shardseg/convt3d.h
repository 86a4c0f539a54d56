// convt3d.h: 3-D transposed convolution whose kernel equals its stride (decoder upsampling).
//
// This is the up-sampling of UNETR's UnetrPrUpBlock/UnetrUpBlock (`transp_conv`) and of the 3D
// U-Net up-path: PyTorch's ConvTranspose3d(Cin, Cout, kernel_size=s, stride=s) with padding 0,
// output_padding 0, dilation 1 and groups 1. With kernel == stride every output voxel receives
// exactly one input voxel:
//
//   x: (N, Cin, I, J, K)   w: (Cin, Cout, s0, s1, s2)   (PyTorch ConvTranspose3d weight layout)
//   b: (Cout) or NULL      y: (N, Cout, s0*I, s1*J, s2*K)
//   y[n][co][s0*i+a][s1*j+b][s2*k+c] = b[co] + sum_ci x[n][ci][i][j][k] * w[ci][co][a][b][c]
//
// So the forward pass of one sample is one GEMM, Y8 (Cout*S, I*J*K) = W^T (Cout*S, Cin) x
// X (Cin, I*J*K) with S = s0*s1*s2, followed by a scatter of the S sub-grids of Y8 into the
// interleaved output. The kernels tile the I*J*K columns so that each tile's slice of Y8 stays in
// the cache between the GEMM and the scatter (the bias add is fused into the scatter); backward
// runs the same tiles the other way: gather of dY into a tile, then GEMM.
//
// All tensors are float32, contiguous row-major. Any stride s0, s1, s2 >= 1 is supported;
// {2, 2, 2} is the case the networks use.
//
// Sequence parallelism: the op is LOCAL on i-slabs, no halo: input planes [i0, i1) produce
// output planes [s0*i0, s0*i1) and nothing else, so a rank runs these kernels on its own slab
// tensors. ss_convt3d_bwd_weight then returns the slab's contribution to dW and db; the dist
// layer sums those over the sequence ranks (and N-sums are already inside, over the batch).
//
// Threading and determinism: up to ex->nthreads OpenMP threads; every OpenBLAS call runs on one
// thread inside the kernel's parallel region. Tiles are fixed by the shapes alone (never by the
// thread count) and every y or dx element is produced by exactly one GEMM call. bwd_weight cuts
// the column tiles into a fixed number of groups (up to 8, from the shapes), sums each group's
// tiles in order into its own dW partial and adds the partials in group order, so dw and db are
// bitwise identical for any thread count too.
//
// Workspace: each call needs ex->work_bytes >= ss_convt3d_workspace_size(x, w, p, nthreads)
// (SS_EINVAL otherwise); one size serves all three functions: one tile per thread (Cout*S rows
// by up to 64 Ki / (Cout*S) columns: 256 KiB), plus bwd_weight's extra dW partials (at most
// 8 MiB, fewer groups for larger weights) and Cout doubles per group. Nothing is allocated.
// Ownership: all tensors and the workspace are borrowed for the duration of the call.
// Outputs are OVERWRITTEN (backward functions do not accumulate into dx, dw, db).
//
// Performance (1, 64 -> 32, 32^3 -> 64^3, 2 threads, sgemm peak ~200 GFLOP/s): fwd 8.6 ms
// (124 GFLOP/s), bwd_data 8.8 ms (123), bwd_weight with db 10.7 ms (100). The same product as one
// plain sgemm call, without scatter, takes 6.8 ms: the GEMM's reduction length Cin = 64 keeps
// OpenBLAS below peak, and the scatter adds a pass of writes over y.
#ifndef SS_CONVT3D_H
#define SS_CONVT3D_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t stride[3]; // kernel size == stride along (I, J, K); {2, 2, 2} in UNETR and the U-Net
} ss_convt3d_params_t;

// Bytes of scratch the three functions need for input x (N, Cin, I, J, K), weight w and
// nthreads threads. Only shapes are read; returns 0 for an invalid description.
size_t ss_convt3d_workspace_size(const ss_tensor_t *x,
                                 const ss_tensor_t *w,
                                 const ss_convt3d_params_t *p,
                                 int nthreads);

// y (N, Cout, s0*I, s1*J, s2*K) = convtranspose(x (N, Cin, I, J, K), w (Cin, Cout, s0, s1, s2)) +
// b. b (Cout) may be NULL (no bias). SS_ESHAPE on inconsistent shapes or a weight whose kernel is
// not p->stride, SS_EINVAL on bad parameters, aliasing, or a too small workspace.
ss_status_t ss_convt3d_fwd(ss_tensor_t *y,
                           const ss_tensor_t *x,
                           const ss_tensor_t *w,
                           const ss_tensor_t *b,
                           const ss_convt3d_params_t *p,
                           const ss_exec_t *ex,
                           ss_error_t *err);

// dx (N, Cin, I, J, K) = gradient of the loss w.r.t. x given dy (N, Cout, s0*I, s1*J, s2*K):
// dx[n][ci][i][j][k] = sum_{co,a,b,c} w[ci][co][a][b][c] * dy[n][co][s0*i+a][s1*j+b][s2*k+c].
ss_status_t ss_convt3d_bwd_data(ss_tensor_t *dx,
                                const ss_tensor_t *dy,
                                const ss_tensor_t *w,
                                const ss_convt3d_params_t *p,
                                const ss_exec_t *ex,
                                ss_error_t *err);

// dw (Cin, Cout, s0, s1, s2) = sum over n, i, j, k of x * dy (the matching output voxel) and, if
// db (Cout) is not NULL, db[co] = sum of dy[:, co] (accumulated in double). Both overwritten.
// On an empty slab (N*I*J*K == 0) both are zero.
ss_status_t ss_convt3d_bwd_weight(ss_tensor_t *dw,
                                  ss_tensor_t *db,
                                  const ss_tensor_t *x,
                                  const ss_tensor_t *dy,
                                  const ss_convt3d_params_t *p,
                                  const ss_exec_t *ex,
                                  ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
