// layout_ref.h: naive double-precision twins of layout (concat, slab copy, pad/crop), used by
// the tests as the reference and for finite-difference gradient checks. Index-by-index loops over
// contiguous row-major arrays; all arrays borrowed, outputs overwritten (slab add accumulates).
#ifndef SS_LAYOUT_REF_H
#define SS_LAYOUT_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// y (n, ca + cb, inner) = cat(a (n, ca, inner), b (n, cb, inner)) along dimension 1.
void ss_ref_concat_fwd(
    double *y, const double *a, const double *b, int64_t n, int64_t ca, int64_t cb, int64_t inner);
void ss_ref_concat_bwd(
    double *da, double *db, const double *dy, int64_t n, int64_t ca, int64_t cb, int64_t inner);

// full (nc, ni, plane), slab (nc, len, plane) = full[:, i0 : i0 + len]. add: slab_put adds.
void ss_ref_slab_get(double *slab,
                     const double *full,
                     int64_t nc,
                     int64_t ni,
                     int64_t plane,
                     int64_t i0,
                     int64_t len);
void ss_ref_slab_put(double *full,
                     const double *slab,
                     int64_t nc,
                     int64_t ni,
                     int64_t plane,
                     int64_t i0,
                     int64_t len,
                     int add);

typedef struct {
    int64_t nc;    // N * C
    int64_t x[3];  // input spatial sizes
    int64_t y[3];  // output spatial sizes
    int64_t lo[3]; // output offset of the input's first voxel (negative crops)
    double value;  // fill outside the input
} ss_ref_pad_dims_t;

// y[c][i][j][k] = x[c][i - lo0][j - lo1][k - lo2] inside x, else value.
void ss_ref_pad_fwd(double *y, const double *x, const ss_ref_pad_dims_t *d);
// dx (x sizes) = sum of dy over the y voxels that read each x voxel.
void ss_ref_pad_bwd(double *dx, const double *dy, const ss_ref_pad_dims_t *d);

#ifdef __cplusplus
}
#endif
#endif
