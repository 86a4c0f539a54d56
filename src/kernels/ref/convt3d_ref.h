// convt3d_ref.h: naive double-precision twin of convt3d (kernel == stride transposed conv), used
// by the tests as the reference and for finite-difference gradient checks. Straight loops over
// the definition in include/shardseg/convt3d.h; no tiling, no BLAS, no threads.
//
//   x: (n, cin, i, j, k)   w: (cin, cout, s0, s1, s2)   bias: (cout) or NULL
//   y: (n, cout, s0*i, s1*j, s2*k)
// All arrays are contiguous row-major doubles, borrowed; outputs are overwritten.
#ifndef SS_CONVT3D_REF_H
#define SS_CONVT3D_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t n, cin, cout, i, j, k; // input sizes and output channels
    int64_t s[3];                  // kernel == stride
} ss_ref_convt3d_dims_t;

void ss_ref_convt3d_fwd(double *y,
                        const double *x,
                        const double *w,
                        const double *bias,
                        const ss_ref_convt3d_dims_t *d);
void ss_ref_convt3d_bwd_data(double *dx,
                             const double *dy,
                             const double *w,
                             const ss_ref_convt3d_dims_t *d);
// db may be NULL.
void ss_ref_convt3d_bwd_weight(
    double *dw, double *db, const double *x, const double *dy, const ss_ref_convt3d_dims_t *d);

#ifdef __cplusplus
}
#endif
#endif
