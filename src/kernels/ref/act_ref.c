#include "act_ref.h"

#include <math.h>

#include "shardseg/rng.h"

#define K_BETA  0.79788456080286535588 // sqrt(2 / pi)
#define K_KAPPA 0.044715

// sigmoid(2a) and its derivative factor s (1 - s), both without overflow or cancellation.
static void sigmoid2(double a, double *s, double *s1s)
{
    double q = exp(-2.0 * fabs(a));
    *s = a >= 0 ? 1.0 / (1.0 + q) : q / (1.0 + q);
    *s1s = q / ((1.0 + q) * (1.0 + q));
}

void ss_ref_gelu_fwd(double *y, const double *x, int64_t n, int tanh_approx)
{
    for (int64_t i = 0; i < n; i++) {
        if (tanh_approx) {
            // 0.5 x (1 + tanh(a)) == x sigmoid(2a)
            double s, s1s;
            sigmoid2(K_BETA * (x[i] + K_KAPPA * x[i] * x[i] * x[i]), &s, &s1s);
            y[i] = x[i] * s;
        } else {
            y[i] = 0.5 * x[i] * erfc(-x[i] / sqrt(2.0));
        }
    }
}

void ss_ref_gelu_bwd(double *dx, const double *dy, const double *x, int64_t n, int tanh_approx)
{
    for (int64_t i = 0; i < n; i++) {
        double d;
        if (tanh_approx) {
            double s, s1s;
            sigmoid2(K_BETA * (x[i] + K_KAPPA * x[i] * x[i] * x[i]), &s, &s1s);
            d = s + x[i] * 2.0 * s1s * K_BETA * (1.0 + 3.0 * K_KAPPA * x[i] * x[i]);
        } else {
            // Phi(x) + x phi(x), 1/sqrt(2 pi) = 0.3989...
            d = 0.5 * erfc(-x[i] / sqrt(2.0)) +
                x[i] * exp(-0.5 * x[i] * x[i]) * 0.39894228040143267794;
        }
        dx[i] = dy[i] * d;
    }
}

void ss_ref_leaky_relu_fwd(double *y, const double *x, int64_t n, double slope)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] > 0 ? x[i] : x[i] * slope;
    }
}

void ss_ref_leaky_relu_bwd(double *dx, const double *dy, const double *x, int64_t n, double slope)
{
    for (int64_t i = 0; i < n; i++) {
        dx[i] = x[i] > 0 ? dy[i] : dy[i] * slope;
    }
}

void ss_ref_dropout_fwd(
    double *y, const double *x, int64_t n, double p, ss_rng_t rng, uint64_t base)
{
    for (int64_t i = 0; i < n; i++) {
        int keep = ss_rng_uniform(rng, base + (uint64_t)i) >= p;
        y[i] = keep && p < 1 ? x[i] / (1.0 - p) : 0.0;
    }
}

void ss_ref_softmax_fwd(double *y, const double *x, int64_t n, int64_t c, int64_t s)
{
    for (int64_t in = 0; in < n; in++) {
        for (int64_t is = 0; is < s; is++) {
            const double *xp = x + in * c * s + is;
            double *yp = y + in * c * s + is;
            double m = xp[0], sum = 0;
            for (int64_t ic = 1; ic < c; ic++) {
                m = fmax(m, xp[ic * s]);
            }
            for (int64_t ic = 0; ic < c; ic++) {
                sum += exp(xp[ic * s] - m);
            }
            for (int64_t ic = 0; ic < c; ic++) {
                yp[ic * s] = exp(xp[ic * s] - m) / sum;
            }
        }
    }
}

void ss_ref_softmax_bwd(
    double *dx, const double *dy, const double *y, int64_t n, int64_t c, int64_t s)
{
    for (int64_t in = 0; in < n; in++) {
        for (int64_t is = 0; is < s; is++) {
            int64_t o = in * c * s + is;
            double dot = 0;
            for (int64_t ic = 0; ic < c; ic++) {
                dot += dy[o + ic * s] * y[o + ic * s];
            }
            for (int64_t ic = 0; ic < c; ic++) {
                dx[o + ic * s] = y[o + ic * s] * (dy[o + ic * s] - dot);
            }
        }
    }
}
