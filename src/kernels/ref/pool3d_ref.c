#include "pool3d_ref.h"

#include <math.h>
#include <stddef.h>

static int64_t out_numel(const ss_ref_pool3d_dims_t *d)
{
    return d->n * d->c * (d->i / d->w[0]) * (d->j / d->w[1]) * (d->k / d->w[2]);
}

// Index into x of window element t (a, b, c in row-major order) of output voxel e.
static int64_t x_index(const ss_ref_pool3d_dims_t *d, int64_t e, int64_t t)
{
    int64_t oi = d->i / d->w[0], oj = d->j / d->w[1], ok = d->k / d->w[2];
    int64_t k = e % ok, j = e / ok % oj, i = e / (ok * oj) % oi, nc = e / (ok * oj * oi);
    int64_t c = t % d->w[2], b = t / d->w[2] % d->w[1], a = t / (d->w[2] * d->w[1]);
    return ((nc * d->i + i * d->w[0] + a) * d->j + j * d->w[1] + b) * d->k + k * d->w[2] + c;
}

// PyTorch's loop: maxval = -inf, index = first element; update on `v > maxval || isnan(v)`.
static int64_t window_argmax(const double *x, const ss_ref_pool3d_dims_t *d, int64_t e)
{
    double m = -INFINITY;
    int64_t best = 0;
    for (int64_t t = 0; t < d->w[0] * d->w[1] * d->w[2]; t++) {
        double v = x[x_index(d, e, t)];
        if (v > m || isnan(v)) {
            m = v;
            best = t;
        }
    }
    return best;
}

static void zero(double *a, int64_t n)
{
    for (int64_t e = 0; e < n; e++) {
        a[e] = 0;
    }
}

void ss_ref_maxpool3d_fwd(double *y,
                          uint8_t *argmax,
                          const double *x,
                          const ss_ref_pool3d_dims_t *d)
{
    for (int64_t e = 0; e < out_numel(d); e++) {
        int64_t t = window_argmax(x, d, e);
        y[e] = x[x_index(d, e, t)];
        if (argmax != NULL) {
            argmax[e] = (uint8_t)t;
        }
    }
}

void ss_ref_maxpool3d_bwd(double *dx,
                          const double *dy,
                          const double *x,
                          const ss_ref_pool3d_dims_t *d)
{
    zero(dx, d->n * d->c * d->i * d->j * d->k);
    for (int64_t e = 0; e < out_numel(d); e++) {
        dx[x_index(d, e, window_argmax(x, d, e))] += dy[e];
    }
}

void ss_ref_avgpool3d_fwd(double *y, const double *x, const ss_ref_pool3d_dims_t *d)
{
    int64_t ws = d->w[0] * d->w[1] * d->w[2];
    for (int64_t e = 0; e < out_numel(d); e++) {
        double s = 0;
        for (int64_t t = 0; t < ws; t++) {
            s += x[x_index(d, e, t)];
        }
        y[e] = s / (double)ws;
    }
}

void ss_ref_avgpool3d_bwd(double *dx, const double *dy, const ss_ref_pool3d_dims_t *d)
{
    int64_t ws = d->w[0] * d->w[1] * d->w[2];
    zero(dx, d->n * d->c * d->i * d->j * d->k);
    for (int64_t e = 0; e < out_numel(d); e++) {
        for (int64_t t = 0; t < ws; t++) {
            dx[x_index(d, e, t)] += dy[e] / (double)ws;
        }
    }
}
