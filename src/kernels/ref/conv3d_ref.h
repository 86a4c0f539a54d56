// conv3d_ref.h: naive double-precision twins of the conv3d kernels, for tests.
//
// Straight loops over every output element and kernel tap, no tiling, no BLAS: slow and obviously
// right. Arrays are contiguous row-major: x (N, Cin, I, J, K), w (Cout, Cin, kI, kJ, kK),
// y (N, Cout, I', J', K') with the output extent computed here independently of the fast kernel.
// Outputs are overwritten. Parameters are assumed valid. Threading: serial, reentrant.
#ifndef SS_CONV3D_REF_H
#define SS_CONV3D_REF_H

#include <stdint.h>

#include "shardseg/conv3d.h"

#ifdef __cplusplus
extern "C" {
#endif

// Output extent along one dimension: floor((in + lo + hi - k) / s) + 1.
int64_t ss_ref_conv3d_out_dim(int64_t in, int k, int s, int lo, int hi);

// y = conv(x, w) + bias (bias may be NULL).
void ss_ref_conv3d_fwd(double *y,
                       const double *x,
                       const double *w,
                       const double *bias,
                       const int64_t xshape[5],
                       int64_t cout,
                       const ss_conv3d_params_t *p);
// dx = dL/dx from dy.
void ss_ref_conv3d_bwd_data(double *dx,
                            const double *dy,
                            const double *w,
                            const int64_t xshape[5],
                            int64_t cout,
                            const ss_conv3d_params_t *p);
// dw = dL/dw, dbias = dL/dbias (may be NULL) from x and dy.
void ss_ref_conv3d_bwd_weight(double *dw,
                              double *dbias,
                              const double *x,
                              const double *dy,
                              const int64_t xshape[5],
                              int64_t cout,
                              const ss_conv3d_params_t *p);

#ifdef __cplusplus
}
#endif
#endif
