// linear_ref.h: naive double-precision twin of linear (nn.Linear), used by the tests as the
// reference and for finite-difference gradient checks: triple loops, no BLAS, no threads.
//
//   x: (t, in)   w: (out, in)   b: (out) or NULL   y: (t, out)
// All arrays are contiguous row-major doubles, borrowed; outputs are overwritten (beta = 0).
#ifndef SS_LINEAR_REF_H
#define SS_LINEAR_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void ss_ref_linear_fwd(double *y,
                       const double *x,
                       const double *w,
                       const double *b,
                       int64_t t,
                       int64_t in,
                       int64_t out);
// dx = dy w
void ss_ref_linear_bwd_data(
    double *dx, const double *dy, const double *w, int64_t t, int64_t in, int64_t out);
// dw = dy^T x; db (may be NULL) = column sums of dy.
void ss_ref_linear_bwd_weight(
    double *dw, double *db, const double *dy, const double *x, int64_t t, int64_t in, int64_t out);

#ifdef __cplusplus
}
#endif
#endif
