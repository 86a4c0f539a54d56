#include "layout_ref.h"

void ss_ref_concat_fwd(
    double *y, const double *a, const double *b, int64_t n, int64_t ca, int64_t cb, int64_t inner)
{
    for (int64_t e = 0; e < n * (ca + cb) * inner; e++) {
        int64_t s = e % inner, c = e / inner % (ca + cb), m = e / (inner * (ca + cb));
        y[e] = c < ca ? a[(m * ca + c) * inner + s] : b[(m * cb + c - ca) * inner + s];
    }
}

void ss_ref_concat_bwd(
    double *da, double *db, const double *dy, int64_t n, int64_t ca, int64_t cb, int64_t inner)
{
    for (int64_t e = 0; e < n * (ca + cb) * inner; e++) {
        int64_t s = e % inner, c = e / inner % (ca + cb), m = e / (inner * (ca + cb));
        if (c < ca) {
            da[(m * ca + c) * inner + s] = dy[e];
        } else {
            db[(m * cb + c - ca) * inner + s] = dy[e];
        }
    }
}

void ss_ref_slab_get(double *slab,
                     const double *full,
                     int64_t nc,
                     int64_t ni,
                     int64_t plane,
                     int64_t i0,
                     int64_t len)
{
    for (int64_t e = 0; e < nc * len * plane; e++) {
        int64_t s = e % plane, i = e / plane % len, c = e / (plane * len);
        slab[e] = full[(c * ni + i0 + i) * plane + s];
    }
}

void ss_ref_slab_put(double *full,
                     const double *slab,
                     int64_t nc,
                     int64_t ni,
                     int64_t plane,
                     int64_t i0,
                     int64_t len,
                     int add)
{
    for (int64_t e = 0; e < nc * len * plane; e++) {
        int64_t s = e % plane, i = e / plane % len, c = e / (plane * len);
        double *dst = &full[(c * ni + i0 + i) * plane + s];
        *dst = add ? *dst + slab[e] : slab[e];
    }
}

// Index into x of y voxel e, or -1 if it falls outside x.
static int64_t pad_source(const ss_ref_pad_dims_t *d, int64_t e)
{
    int64_t k = e % d->y[2], j = e / d->y[2] % d->y[1], i = e / (d->y[2] * d->y[1]) % d->y[0];
    int64_t c = e / (d->y[2] * d->y[1] * d->y[0]);
    int64_t xi = i - d->lo[0], xj = j - d->lo[1], xk = k - d->lo[2];
    if (xi < 0 || xi >= d->x[0] || xj < 0 || xj >= d->x[1] || xk < 0 || xk >= d->x[2]) {
        return -1;
    }
    return ((c * d->x[0] + xi) * d->x[1] + xj) * d->x[2] + xk;
}

void ss_ref_pad_fwd(double *y, const double *x, const ss_ref_pad_dims_t *d)
{
    for (int64_t e = 0; e < d->nc * d->y[0] * d->y[1] * d->y[2]; e++) {
        int64_t s = pad_source(d, e);
        y[e] = s >= 0 ? x[s] : d->value;
    }
}

void ss_ref_pad_bwd(double *dx, const double *dy, const ss_ref_pad_dims_t *d)
{
    for (int64_t e = 0; e < d->nc * d->x[0] * d->x[1] * d->x[2]; e++) {
        dx[e] = 0;
    }
    for (int64_t e = 0; e < d->nc * d->y[0] * d->y[1] * d->y[2]; e++) {
        int64_t s = pad_source(d, e);
        if (s >= 0) {
            dx[s] += dy[e];
        }
    }
}
