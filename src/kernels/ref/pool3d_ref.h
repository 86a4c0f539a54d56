// pool3d_ref.h: naive double-precision twins of pool3d (window == stride max/avg pooling), used
// by the tests as the reference and for finite-difference gradient checks. PyTorch semantics:
// floor output sizes, ties to the first maximum in window order (a, b, c), NaN wins.
//
//   x: (n, c, i, j, k)   y: (n, c, i / w0, j / w1, k / w2)
// All arrays are contiguous row-major, borrowed; outputs are overwritten.
#ifndef SS_POOL3D_REF_H
#define SS_POOL3D_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t n, c, i, j, k; // input sizes
    int64_t w[3];          // window == stride
} ss_ref_pool3d_dims_t;

// argmax (numel(y) bytes, window offset a*w1*w2 + b*w2 + c) may be NULL.
void ss_ref_maxpool3d_fwd(double *y,
                          uint8_t *argmax,
                          const double *x,
                          const ss_ref_pool3d_dims_t *d);
// Recomputes the argmax from x (independent of the fast kernel's saved bytes).
void ss_ref_maxpool3d_bwd(double *dx,
                          const double *dy,
                          const double *x,
                          const ss_ref_pool3d_dims_t *d);
void ss_ref_avgpool3d_fwd(double *y, const double *x, const ss_ref_pool3d_dims_t *d);
void ss_ref_avgpool3d_bwd(double *dx, const double *dy, const ss_ref_pool3d_dims_t *d);

#ifdef __cplusplus
}
#endif
#endif
