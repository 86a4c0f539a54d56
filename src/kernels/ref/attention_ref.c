#include "attention_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Element (b, n, h, d) of a contiguous (B, N, H, D) array.
static int64_t
at(int64_t b, int64_t n, int64_t h, int64_t d, int64_t len, int64_t heads, int64_t dim)
{
    return ((b * len + n) * heads + h) * dim + d;
}

// P (nq, nk) = softmax of the scaled scores of head (b, h); writes lse (nq) when not NULL.
static void ref_probs(double *p,
                      double *lse,
                      const double *q,
                      const double *k,
                      int64_t b,
                      int64_t h,
                      int64_t nq,
                      int64_t nk,
                      int64_t heads,
                      int64_t dim,
                      double scale)
{
    for (int64_t i = 0; i < nq; i++) {
        double *row = p + i * nk;
        double mx = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
            double s = 0;
            for (int64_t d = 0; d < dim; d++) {
                s += q[at(b, i, h, d, nq, heads, dim)] * k[at(b, j, h, d, nk, heads, dim)];
            }
            row[j] = scale * s;
            mx = row[j] > mx ? row[j] : mx;
        }
        double sum = 0;
        for (int64_t j = 0; j < nk; j++) {
            row[j] = exp(row[j] - mx);
            sum += row[j];
        }
        for (int64_t j = 0; j < nk; j++) {
            row[j] /= sum;
        }
        if (lse) {
            lse[i] = mx + log(sum);
        }
    }
}

void ss_ref_attention_fwd(double *o,
                          double *lse,
                          const double *q,
                          const double *k,
                          const double *v,
                          int64_t batch,
                          int64_t nq,
                          int64_t nk,
                          int64_t heads,
                          int64_t dim,
                          double scale)
{
    double *p = malloc(sizeof(double) * (size_t)(nq * nk > 0 ? nq * nk : 1));
    if (!p) {
        return; // test-only code: the caller sees untouched outputs and fails its comparison
    }
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t h = 0; h < heads; h++) {
            ref_probs(p, lse ? lse + (b * heads + h) * nq : NULL, q, k, b, h, nq, nk, heads, dim,
                      scale);
            for (int64_t i = 0; i < nq; i++) {
                for (int64_t d = 0; d < dim; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < nk; j++) {
                        acc += p[i * nk + j] * v[at(b, j, h, d, nk, heads, dim)];
                    }
                    o[at(b, i, h, d, nq, heads, dim)] = acc;
                }
            }
        }
    }
    free(p);
}

// dP_ij = dout_i . v_j, then dS_ij = P_ij (dP_ij - sum_l P_il dP_il) in place of dP.
static void ref_dscores(double *ds,
                        const double *p,
                        const double *v,
                        const double *dout,
                        int64_t b,
                        int64_t h,
                        int64_t nq,
                        int64_t nk,
                        int64_t heads,
                        int64_t dim)
{
    for (int64_t i = 0; i < nq; i++) {
        double dot = 0;
        for (int64_t j = 0; j < nk; j++) {
            double s = 0;
            for (int64_t d = 0; d < dim; d++) {
                s += dout[at(b, i, h, d, nq, heads, dim)] * v[at(b, j, h, d, nk, heads, dim)];
            }
            ds[i * nk + j] = s;
            dot += p[i * nk + j] * s;
        }
        for (int64_t j = 0; j < nk; j++) {
            ds[i * nk + j] = p[i * nk + j] * (ds[i * nk + j] - dot);
        }
    }
}

// dq, dk, dv of head (b, h) from P and dS.
static void ref_grads(double *dq,
                      double *dk,
                      double *dv,
                      const double *p,
                      const double *ds,
                      const double *q,
                      const double *k,
                      const double *dout,
                      int64_t b,
                      int64_t h,
                      int64_t nq,
                      int64_t nk,
                      int64_t heads,
                      int64_t dim,
                      double scale)
{
    for (int64_t d = 0; d < dim; d++) {
        for (int64_t i = 0; i < nq; i++) {
            double acc = 0;
            for (int64_t j = 0; j < nk; j++) {
                acc += ds[i * nk + j] * k[at(b, j, h, d, nk, heads, dim)];
            }
            dq[at(b, i, h, d, nq, heads, dim)] = scale * acc;
        }
        for (int64_t j = 0; j < nk; j++) {
            double ak = 0, av = 0;
            for (int64_t i = 0; i < nq; i++) {
                ak += ds[i * nk + j] * q[at(b, i, h, d, nq, heads, dim)];
                av += p[i * nk + j] * dout[at(b, i, h, d, nq, heads, dim)];
            }
            dk[at(b, j, h, d, nk, heads, dim)] = scale * ak;
            dv[at(b, j, h, d, nk, heads, dim)] = av;
        }
    }
}

void ss_ref_attention_bwd(double *dq,
                          double *dk,
                          double *dv,
                          const double *q,
                          const double *k,
                          const double *v,
                          const double *dout,
                          int64_t batch,
                          int64_t nq,
                          int64_t nk,
                          int64_t heads,
                          int64_t dim,
                          double scale)
{
    size_t n = (size_t)(nq * nk > 0 ? nq * nk : 1);
    double *p = malloc(sizeof(double) * n);
    double *ds = malloc(sizeof(double) * n);
    if (p && ds) {
        for (int64_t b = 0; b < batch; b++) {
            for (int64_t h = 0; h < heads; h++) {
                ref_probs(p, NULL, q, k, b, h, nq, nk, heads, dim, scale);
                ref_dscores(ds, p, v, dout, b, h, nq, nk, heads, dim);
                ref_grads(dq, dk, dv, p, ds, q, k, dout, b, h, nq, nk, heads, dim, scale);
            }
        }
    }
    free(p);
    free(ds);
}
