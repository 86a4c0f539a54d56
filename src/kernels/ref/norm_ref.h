// norm_ref.h: naive double-precision twins of norm (instance/group norm, layer norm), used by the
// tests as the reference and for finite-difference gradient checks. Straight loops over the
// definitions in include/shardseg/norm.h: textbook two-pass statistics over the whole group, no
// chunking, no staging, no threads.
//
//   group norm: x, y, dy, dx (n, c, s) with s the flattened spatial size; g groups dividing c
//               (instance norm: g == c); gamma, beta (c) or NULL; mean, rstd (n, g)
//   layer norm: x, y, dy, dx (t, c); gamma, beta (c) or NULL; mean, rstd (t)
// All arrays are contiguous row-major doubles, borrowed; outputs are overwritten; optional
// outputs (mean, rstd, dgamma, dbeta) may be NULL.
#ifndef SS_NORM_REF_H
#define SS_NORM_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void ss_ref_groupnorm_fwd(double *y,
                          double *mean,
                          double *rstd,
                          const double *x,
                          const double *gamma,
                          const double *beta,
                          int64_t n,
                          int64_t c,
                          int64_t s,
                          int64_t g,
                          double eps);
// Recomputes the statistics from x (independent of the forward's saved values).
void ss_ref_groupnorm_bwd(double *dx,
                          double *dgamma,
                          double *dbeta,
                          const double *dy,
                          const double *x,
                          const double *gamma,
                          int64_t n,
                          int64_t c,
                          int64_t s,
                          int64_t g,
                          double eps);

void ss_ref_layernorm_fwd(double *y,
                          double *mean,
                          double *rstd,
                          const double *x,
                          const double *gamma,
                          const double *beta,
                          int64_t t,
                          int64_t c,
                          double eps);
void ss_ref_layernorm_bwd(double *dx,
                          double *dgamma,
                          double *dbeta,
                          const double *dy,
                          const double *x,
                          const double *gamma,
                          int64_t t,
                          int64_t c,
                          double eps);

#ifdef __cplusplus
}
#endif
#endif
