// conv3d.h: 3D convolution, forward and backward (data and weight), with bias.
//
// Shapes (PyTorch layout, so MONAI weights load as-is):
//   x:    (N, Cin, I, J, K)            input volume or an i-slab of it (halo planes included)
//   w:    (Cout, Cin, kI, kJ, kK)      weight
//   bias: (Cout)                       optional (NULL)
//   y:    (N, Cout, I', J', K')        with I' = (I + pad_lo + pad_hi - kI) / stride + 1 (floor),
//                                      likewise J', K'; see ss_conv3d_out_shape.
// Out-of-range input positions read as zero. Padding is given per side so that a sequence-parallel
// rank can run the kernel on its i-slab plus halo planes received from its neighbours: on a side
// where a neighbour supplied the halo, pad_lo[0] / pad_hi[0] is 0; on the volume's true boundary it
// is the layer's padding. The same trick computes the interior planes of a slab while the halos are
// in flight: pass an i-slab view of x and of y (ss_tensor_view_slab) with pad 0 on both i sides.
//
// Layout: float32. w, dw and bias are contiguous. Volume tensors (x, y, dx, dy) need a dense
// spatial block (strides (J*K, K, 1) over (I, J, K)); their N and C strides are free, so slab views
// along I are accepted without a copy.
//
// Algorithm: on CPUs with AVX-512F, unit-stride convolutions with rows of 16+ outputs and
// kJ kK <= 9 (the decoders' 3x3x3 layers) run direct kernels (kernels/conv3d_direct.c): the
// source is copied once into zero-padded slabs of planes (about 4 MB, at most 16 MB), and register
// blocks of 8 channels x 48 positions (4 x 96 for a narrow channel tail) accumulate every
// (source channel, tap) product with fused multiply-adds; bwd_data is the same kernel on dy with
// the flipped kernel, bwd_weight (only with <= 32 channels on one side, where it beats the GEMMs)
// accumulates 3 channels x 9 taps over whole planes. Everything else, and every CPU without AVX-512, takes GEMMs on tiles of output
// positions; the im2col matrix of a volume never exists.
//  - fwd, stride 1 along J and K ("plane tiles" of a few output rows of one output plane): per
//    (ci, a) the x rows that the tile reads for all kJ taps are consecutive rows of one plane,
//    gathered once unpadded; tap b is the column offset b * K of that block (kJ GEMMs read it in
//    place, K = Cin kI), and the kK taps along K are stacked along M (one GEMM gives Cout x kK
//    rows, the store adds them shifted by c). No padding column is computed, each x element is
//    copied ~(rows + kJ - 1) / rows times per kI tap, and OpenBLAS packs each gathered block for
//    kK Cout uses instead of Cout.
//  - other fwd: gather an im2col tile (Cin*kI*kJ*kK rows in chunks of <= 1024, <= 256 columns)
//    and multiply by w. A patch embedding (kernel == stride) is this gather, a permutation of x.
//  - 1x1x1, stride 1, no padding: x is multiplied in place (no gather).
//  - bwd_data with unit stride: the plane-tile forward of dy by the flipped, transposed kernel.
//    With kernel <= stride in every dim (patch embedding): dcol = w^T dy per tile, scattered to
//    non-overlapping dx patches. Otherwise per stride phase (dx positions with equal
//    (i + pad_lo) mod stride see the same taps): gather dy, GEMM, scatter; no zero taps multiplied.
//  - bwd_weight: dw^T += col_tile * dy_tile^T with the forward's tiles; for plane tiles the col
//    rows are (ci, a, b) (one copy of consecutive x rows each) and the kK taps along K are kK
//    shifted copies of the dy tile stacked along N.
// Tiles run on ex->nthreads OpenMP threads, one serial OpenBLAS GEMM per tile (measured faster than
// threaded GEMMs on whole volumes: M = Cout is small and the tiles stay in L2).
// bwd_weight splits the weight's columns (Cin*kI*kJ*kK) among threads when there are >= 64 per
// thread, so each dw element is summed by one thread in tile order (plane tiles split whole
// blocks of (ci, a) units: max(ceil(Cin kI / 64), min(Cin kI, 4)) blocks, each one GEMM shape
// whatever the thread count); for narrower weights or more threads than twice the blocks, thread
// groups sum disjoint tile ranges into partial copies of dw that are added in group order.
//
// Determinism: fwd and bwd_data give bit-identical results for any thread count (tiles are fixed
// by the shapes, each output element is written by one GEMM or one register block). The direct
// kernels' bwd_weight is bit-identical for any thread count too (a dw element is one thread's). bwd_weight is bit-reproducible for a
// given thread count, and identical across thread counts as long as Cin*kI*kJ*kK >= 64 * threads
// (with plane tiles also threads < 2 x the number of unit blocks above: up to 7 threads for 32
// channels and a 3x3x3 kernel).
//
// Sequence parallelism: conv3d has no global statistic. dw and dbias of a rank's slab are partial
// sums over its own output positions; the dist layer sums them over the sequence ranks (with the
// rest of the gradient slab). dx of a slab with halo has halo planes that belong to the neighbours:
// the dist layer sends them back and adds them (reverse halo exchange).
//
// Workspace: ss_conv3d_workspace_size() bytes in ex->work (one size serves all three functions);
// it depends on the channels, kernel and thread count, and on the volume only through the length
// of one row along K (a tile holds whole rows) or while the volume is smaller than one tile; for
// the direct kernels also through the plane size (J x K), about 4 MB in all.
// SS_EINVAL if ex->work is smaller. About 1.1 MB for 32 -> 32 channels, 3x3x3, 64^3, 2 threads
// through the GEMM paths, 4 MB through the direct kernels.
// Threading: ex->nthreads OpenMP threads (ex may be NULL: one thread, no workspace). Must not be
// called from inside an OpenMP parallel region. Ownership: all pointers borrowed; outputs must not
// overlap inputs. Backward functions OVERWRITE dx, dw and dbias (they do not accumulate).
#ifndef SS_CONV3D_H
#define SS_CONV3D_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// Per dimension (i, j, k): kernel extent >= 1, stride >= 1, zero padding >= 0 before / after.
typedef struct {
    int kernel[3];
    int stride[3];
    int pad_lo[3];
    int pad_hi[3];
} ss_conv3d_params_t;

// What the workspace depends on: batch, channels and input extent (I, J, K) of x.
typedef struct {
    int64_t n;
    int64_t cin;
    int64_t cout;
    int64_t in[3];
} ss_conv3d_shape_t;

// The same kernel k, stride s and padding pad (both sides) in all three dims, e.g. (3, 1, 1) for a
// "same" 3x3x3 conv or (16, 16, 0) for a 16^3 patch embedding.
ss_conv3d_params_t ss_conv3d_params_cube(int k, int s, int pad);

// yshape (OUT, 5) = (N, cout, I', J', K') for xshape (IN, 5) = (N, Cin, I, J, K).
// SS_EINVAL for a bad kernel/stride/padding or cout < 1, SS_ESHAPE if an input extent plus its
// padding is smaller than the kernel.
ss_status_t ss_conv3d_out_shape(int64_t yshape[5],
                                const int64_t xshape[5],
                                int64_t cout,
                                const ss_conv3d_params_t *p,
                                ss_error_t *err);

// Bytes of ex->work needed by ss_conv3d_fwd, _bwd_data and _bwd_weight for these shapes and
// nthreads threads (the maximum of the three). 0 when none is needed; 0 also for invalid input,
// which the kernels themselves then reject.
size_t
ss_conv3d_workspace_size(const ss_conv3d_params_t *p, const ss_conv3d_shape_t *s, int nthreads);

// y (OUT, overwritten) = conv(x, w) + bias. bias may be NULL.
ss_status_t ss_conv3d_fwd(ss_tensor_t *y,
                          const ss_tensor_t *x,
                          const ss_tensor_t *w,
                          const ss_tensor_t *bias,
                          const ss_conv3d_params_t *p,
                          const ss_exec_t *ex,
                          ss_error_t *err);

// dx (OUT, overwritten, shape of x) = dL/dx given dy = dL/dy (shape of y) and w.
ss_status_t ss_conv3d_bwd_data(ss_tensor_t *dx,
                               const ss_tensor_t *dy,
                               const ss_tensor_t *w,
                               const ss_conv3d_params_t *p,
                               const ss_exec_t *ex,
                               ss_error_t *err);

// dw (OUT, overwritten, shape of w) = dL/dw and dbias (OUT, overwritten, (Cout), may be NULL) =
// dL/dbias, summed over the batch and all output positions, from x and dy.
ss_status_t ss_conv3d_bwd_weight(ss_tensor_t *dw,
                                 ss_tensor_t *dbias,
                                 const ss_tensor_t *x,
                                 const ss_tensor_t *dy,
                                 const ss_conv3d_params_t *p,
                                 const ss_exec_t *ex,
                                 ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
