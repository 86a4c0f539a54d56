// metrics.c: region masks, HD95 (see metrics.h).
#include "shardseg/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ss_status_t ss_labels_parse(const char *s, const char *what, ss_labels_t *out, ss_error_t *err)
{
    if (s != NULL && strcmp(s, "brats") == 0) {
        *out = SS_LABELS_BRATS;
    } else if (s != NULL && strcmp(s, "brats2023") == 0) {
        *out = SS_LABELS_BRATS2023;
    } else if (s != NULL && strcmp(s, "msd") == 0) {
        *out = SS_LABELS_MSD;
    } else {
        SS_FAIL(err, SS_EINVAL, "%s: '%s' is not a label convention; use brats, brats2023 or msd",
                what, s ? s : "");
    }
    return SS_OK;
}

void ss_regions_from_labels(uint8_t *out, const float *lab, int64_t n, ss_labels_t conv)
{
    // Label values of (tumour core without ET, enhancing).
    float core = conv == SS_LABELS_MSD ? 2.0f : 1.0f;
    float et = conv == SS_LABELS_BRATS ? 4.0f : 3.0f;
    for (int64_t v = 0; v < n; v++) {
        float l = lab[v];
        out[v] = l > 0.5f;
        out[n + v] = l == core || l == et;
        out[2 * n + v] = l == et;
    }
}

double ss_dice_u8(const uint8_t *a, const uint8_t *b, int64_t n)
{
    int64_t inter = 0, sa = 0, sb = 0;
    for (int64_t i = 0; i < n; i++) {
        int x = a[i] != 0, y = b[i] != 0;
        inter += x & y;
        sa += x;
        sb += y;
    }
    return sa + sb == 0 ? 1.0 : 2.0 * (double)inter / (double)(sa + sb);
}

// Surface: mask voxels with a 6-neighbour outside the mask or outside the volume.
static int64_t surface(uint8_t *s, const uint8_t *m, const int64_t d[3])
{
    int64_t cnt = 0;
    for (int64_t i = 0; i < d[0]; i++) {
        for (int64_t j = 0; j < d[1]; j++) {
            for (int64_t k = 0; k < d[2]; k++) {
                int64_t v = (i * d[1] + j) * d[2] + k;
                int in = m[v] != 0;
                int inner = in && i > 0 && i + 1 < d[0] && j > 0 && j + 1 < d[1] && k > 0 &&
                            k + 1 < d[2] && m[v - d[1] * d[2]] && m[v + d[1] * d[2]] &&
                            m[v - d[2]] && m[v + d[2]] && m[v - 1] && m[v + 1];
                s[v] = (uint8_t)(in && !inner);
                cnt += s[v];
            }
        }
    }
    return cnt;
}

// 1-D squared distance transform of f (n samples spaced h apart) into out, with scratch v (n
// ints) and z (n + 1 doubles): the lower envelope of parabolas (Felzenszwalb & Huttenlocher).
static void dt1d(double *out, const double *f, int64_t n, double h, int64_t *v, double *z)
{
    int64_t k = 0;
    int64_t q0 = 0;
    while (q0 < n && isinf(f[q0])) {
        q0++;
    }
    if (q0 == n) {
        for (int64_t q = 0; q < n; q++) {
            out[q] = INFINITY;
        }
        return;
    }
    v[0] = q0;
    z[0] = -INFINITY;
    z[1] = INFINITY;
    for (int64_t q = q0 + 1; q < n; q++) {
        if (isinf(f[q])) {
            continue;
        }
        double xq = (double)q * h, s;
        for (;;) { // z[0] = -inf ends the loop at k = 0 at the latest
            double xv = (double)v[k] * h;
            s = ((f[q] + xq * xq) - (f[v[k]] + xv * xv)) / (2 * xq - 2 * xv);
            if (s > z[k]) {
                break;
            }
            k--;
        }
        k++;
        v[k] = q;
        z[k] = s;
        z[k + 1] = INFINITY;
    }
    k = 0;
    for (int64_t q = 0; q < n; q++) {
        double x = (double)q * h;
        while (z[k + 1] < x) {
            k++;
        }
        double dx = x - (double)v[k] * h;
        out[q] = dx * dx + f[v[k]];
    }
}

// Squared distance (mm^2) of every voxel to the nearest set voxel of s, in place in g.
static void edt(double *g, const uint8_t *s, const int64_t d[3], const double sp[3], int nthreads)
{
    int64_t n = d[0] * d[1] * d[2];
    for (int64_t v = 0; v < n; v++) {
        g[v] = s[v] ? 0.0 : INFINITY;
    }
    int64_t stride[3] = {d[1] * d[2], d[2], 1};
    for (int ax = 2; ax >= 0; ax--) {
        int64_t len = d[ax], lines = n / len;
        int a1 = ax == 0 ? 1 : 0, a2 = ax == 2 ? 1 : 2;
#pragma omp parallel num_threads(nthreads) default(none)                                           \
    shared(g, d, sp, stride, ax, len, lines, a1, a2)
        {
            double *f = malloc((size_t)len * sizeof(double)),
                   *o = malloc((size_t)len * sizeof(double));
            double *z = malloc((size_t)(len + 1) * sizeof(double));
            int64_t *vv = malloc((size_t)len * sizeof(int64_t));
#pragma omp for schedule(static)
            for (int64_t l = 0; l < lines; l++) {
                int64_t p = l / d[a2], q = l % d[a2];
                int64_t base = p * stride[a1] + q * stride[a2];
                for (int64_t t = 0; t < len; t++) {
                    f[t] = g[base + t * stride[ax]];
                }
                dt1d(o, f, len, sp[ax], vv, z);
                for (int64_t t = 0; t < len; t++) {
                    g[base + t * stride[ax]] = o[t];
                }
            }
            free(f);
            free(o);
            free(z);
            free(vv);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// numpy.percentile(x, 95) with linear interpolation (sorts x).
static double p95(double *x, int64_t n)
{
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    double r = 0.95 * (double)(n - 1);
    int64_t lo = (int64_t)floor(r);
    int64_t hi = lo + 1 < n ? lo + 1 : lo;
    return x[lo] + (r - (double)lo) * (x[hi] - x[lo]);
}

// 95th percentile of the distances from the surface sa to the surface sb.
static double directed(const uint8_t *sa,
                       int64_t na,
                       const uint8_t *sb,
                       const int64_t d[3],
                       const double sp[3],
                       double *g,
                       double *buf,
                       int nthreads)
{
    edt(g, sb, d, sp, nthreads);
    int64_t n = d[0] * d[1] * d[2], c = 0;
    for (int64_t v = 0; v < n; v++) {
        if (sa[v]) {
            buf[c++] = sqrt(g[v]);
        }
    }
    return p95(buf, na);
}

ss_status_t ss_hd95(double *hd,
                    const uint8_t *a,
                    const uint8_t *b,
                    const int64_t dim[3],
                    const double spacing[3],
                    int nthreads,
                    ss_error_t *err)
{
    int64_t n = dim[0] * dim[1] * dim[2];
    uint8_t *sa = malloc((size_t)n), *sb = malloc((size_t)n);
    double *g = malloc((size_t)n * sizeof(double)), *buf = malloc((size_t)n * sizeof(double));
    if (sa == NULL || sb == NULL || g == NULL || buf == NULL) {
        free(sa), free(sb), free(g), free(buf);
        SS_FAIL(err, SS_ENOMEM, "hd95: out of memory for a %lld-voxel volume", (long long)n);
    }
    int64_t na = surface(sa, a, dim), nb = surface(sb, b, dim);
    if (na == 0 || nb == 0) {
        *hd = na == 0 && nb == 0 ? 0.0 : SS_HD95_EMPTY;
    } else {
        double ab = directed(sa, na, sb, dim, spacing, g, buf, nthreads);
        double ba = directed(sb, nb, sa, dim, spacing, g, buf, nthreads);
        *hd = ab > ba ? ab : ba;
    }
    free(sa), free(sb), free(g), free(buf);
    return SS_OK;
}
