#include "linear_ref.h"

void ss_ref_linear_fwd(double *y,
                       const double *x,
                       const double *w,
                       const double *b,
                       int64_t t,
                       int64_t in,
                       int64_t out)
{
    for (int64_t r = 0; r < t; r++) {
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < in; i++) {
                s += x[r * in + i] * w[o * in + i];
            }
            y[r * out + o] = s;
        }
    }
}

void ss_ref_linear_bwd_data(
    double *dx, const double *dy, const double *w, int64_t t, int64_t in, int64_t out)
{
    for (int64_t r = 0; r < t; r++) {
        for (int64_t i = 0; i < in; i++) {
            double s = 0;
            for (int64_t o = 0; o < out; o++) {
                s += dy[r * out + o] * w[o * in + i];
            }
            dx[r * in + i] = s;
        }
    }
}

void ss_ref_linear_bwd_weight(
    double *dw, double *db, const double *dy, const double *x, int64_t t, int64_t in, int64_t out)
{
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < in; i++) {
            double s = 0;
            for (int64_t r = 0; r < t; r++) {
                s += dy[r * out + o] * x[r * in + i];
            }
            dw[o * in + i] = s;
        }
        if (db) {
            double s = 0;
            for (int64_t r = 0; r < t; r++) {
                s += dy[r * out + o];
            }
            db[o] = s;
        }
    }
}
