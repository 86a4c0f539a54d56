#include "norm_ref.h"

#include <math.h>

// Mean and 1/sqrt(biased var + eps) of m consecutive values (the elements of group (n, g) are cpg
// consecutive planes of s values, i.e. one run of cpg*s).
static void stats(const double *x, int64_t m, double eps, double *mean, double *rstd)
{
    double s = 0;
    for (int64_t i = 0; i < m; i++) {
        s += x[i];
    }
    double mu = s / (double)m, v = 0;
    for (int64_t i = 0; i < m; i++) {
        v += (x[i] - mu) * (x[i] - mu);
    }
    *mean = mu;
    *rstd = 1.0 / sqrt(v / (double)m + eps);
}

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
                          double eps)
{
    int64_t cpg = c / g;
    for (int64_t in = 0; in < n; in++) {
        for (int64_t ig = 0; ig < g; ig++) {
            int64_t off = (in * c + ig * cpg) * s;
            double mu, rs;
            stats(x + off, cpg * s, eps, &mu, &rs);
            if (mean) {
                mean[in * g + ig] = mu;
            }
            if (rstd) {
                rstd[in * g + ig] = rs;
            }
            for (int64_t ic = ig * cpg; ic < (ig + 1) * cpg; ic++) {
                for (int64_t i = 0; i < s; i++) {
                    int64_t e = (in * c + ic) * s + i;
                    double xh = (x[e] - mu) * rs;
                    y[e] = xh * (gamma ? gamma[ic] : 1.0) + (beta ? beta[ic] : 0.0);
                }
            }
        }
    }
}

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
                          double eps)
{
    int64_t cpg = c / g;
    double m = (double)(cpg * s);
    for (int64_t ic = 0; ic < c; ic++) {
        if (dgamma) {
            dgamma[ic] = 0;
        }
        if (dbeta) {
            dbeta[ic] = 0;
        }
    }
    for (int64_t in = 0; in < n; in++) {
        for (int64_t ig = 0; ig < g; ig++) {
            int64_t off = (in * c + ig * cpg) * s;
            double mu, rs;
            stats(x + off, cpg * s, eps, &mu, &rs);
            // dxhat = dy * gamma; dx = rs * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
            double a = 0, b = 0;
            for (int64_t ic = ig * cpg; ic < (ig + 1) * cpg; ic++) {
                double gm = gamma ? gamma[ic] : 1.0;
                for (int64_t i = 0; i < s; i++) {
                    int64_t e = (in * c + ic) * s + i;
                    double xh = (x[e] - mu) * rs;
                    a += dy[e] * gm;
                    b += dy[e] * gm * xh;
                    if (dgamma) {
                        dgamma[ic] += dy[e] * xh;
                    }
                    if (dbeta) {
                        dbeta[ic] += dy[e];
                    }
                }
            }
            for (int64_t ic = ig * cpg; ic < (ig + 1) * cpg; ic++) {
                double gm = gamma ? gamma[ic] : 1.0;
                for (int64_t i = 0; i < s; i++) {
                    int64_t e = (in * c + ic) * s + i;
                    double xh = (x[e] - mu) * rs;
                    dx[e] = rs * (dy[e] * gm - a / m - xh * b / m);
                }
            }
        }
    }
}

void ss_ref_layernorm_fwd(double *y,
                          double *mean,
                          double *rstd,
                          const double *x,
                          const double *gamma,
                          const double *beta,
                          int64_t t,
                          int64_t c,
                          double eps)
{
    // A layer norm row is a group norm with one group of c elements.
    for (int64_t it = 0; it < t; it++) {
        double mu, rs;
        stats(x + it * c, c, eps, &mu, &rs);
        if (mean) {
            mean[it] = mu;
        }
        if (rstd) {
            rstd[it] = rs;
        }
        for (int64_t j = 0; j < c; j++) {
            double xh = (x[it * c + j] - mu) * rs;
            y[it * c + j] = xh * (gamma ? gamma[j] : 1.0) + (beta ? beta[j] : 0.0);
        }
    }
}

void ss_ref_layernorm_bwd(double *dx,
                          double *dgamma,
                          double *dbeta,
                          const double *dy,
                          const double *x,
                          const double *gamma,
                          int64_t t,
                          int64_t c,
                          double eps)
{
    for (int64_t j = 0; j < c; j++) {
        if (dgamma) {
            dgamma[j] = 0;
        }
        if (dbeta) {
            dbeta[j] = 0;
        }
    }
    for (int64_t it = 0; it < t; it++) {
        const double *xr = x + it * c, *dyr = dy + it * c;
        double mu, rs, a = 0, b = 0;
        stats(xr, c, eps, &mu, &rs);
        for (int64_t j = 0; j < c; j++) {
            double xh = (xr[j] - mu) * rs, gd = dyr[j] * (gamma ? gamma[j] : 1.0);
            a += gd;
            b += gd * xh;
            if (dgamma) {
                dgamma[j] += dyr[j] * xh;
            }
            if (dbeta) {
                dbeta[j] += dyr[j];
            }
        }
        for (int64_t j = 0; j < c; j++) {
            double xh = (xr[j] - mu) * rs, gd = dyr[j] * (gamma ? gamma[j] : 1.0);
            dx[it * c + j] = rs * (gd - a / (double)c - xh * b / (double)c);
        }
    }
}
