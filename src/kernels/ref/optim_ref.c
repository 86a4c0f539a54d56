#include "optim_ref.h"

#include <math.h>

#define REF_PI 3.14159265358979323846

void ss_ref_optim_sgd_step(
    double *p, double *m, const double *g, int64_t n, const ss_optim_sgd_params_t *hp, int64_t step)
{
    for (int64_t i = 0; i < n; i++) {
        double d = g[i];
        if (hp->weight_decay != 0) {
            d += hp->weight_decay * p[i];
        }
        if (hp->momentum != 0) {
            m[i] = step == 0 ? d : hp->momentum * m[i] + (1 - hp->dampening) * d;
            d = hp->nesterov ? d + hp->momentum * m[i] : m[i];
        }
        p[i] -= hp->lr * d;
    }
}

void ss_ref_optim_adam_step(double *p,
                            double *m,
                            double *v,
                            const double *g,
                            int64_t n,
                            const ss_optim_adam_params_t *hp,
                            int64_t step,
                            int decoupled)
{
    double t = (double)(step + 1);
    double bc1 = 1 - pow(hp->beta1, t), bc2 = 1 - pow(hp->beta2, t);
    for (int64_t i = 0; i < n; i++) {
        double gi = g[i];
        if (decoupled) {
            p[i] *= 1 - hp->lr * hp->weight_decay;
        } else {
            gi += hp->weight_decay * p[i];
        }
        m[i] = hp->beta1 * m[i] + (1 - hp->beta1) * gi;
        v[i] = hp->beta2 * v[i] + (1 - hp->beta2) * gi * gi;
        double mhat = m[i] / bc1, denom = sqrt(v[i]) / sqrt(bc2) + hp->eps;
        p[i] -= hp->lr * mhat / denom;
    }
}

double ss_ref_optim_sumsq(const double *g, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += g[i] * g[i];
    }
    return s;
}

// One recursive step of the main schedule from lr (at step k - 1) to step k >= 1.
static double ref_main_next(const ss_lr_schedule_t *s, double lr, int64_t k)
{
    switch (s->kind) {
    case SS_LR_STEP:
        return k % s->step_size == 0 ? lr * s->gamma : lr;
    case SS_LR_COSINE: {
        double tm = (double)s->t_max;
        if ((k - 1 - s->t_max) % (2 * s->t_max) == 0) {
            return lr + (s->lr0 - s->eta_min) * (1 - cos(REF_PI / tm)) / 2;
        }
        return (1 + cos(REF_PI * (double)k / tm)) / (1 + cos(REF_PI * (double)(k - 1) / tm)) *
                   (lr - s->eta_min) +
               s->eta_min;
    }
    case SS_LR_POLY: {
        if (k > s->t_max) {
            return lr;
        }
        double f = (1 - (double)k / (double)s->t_max) / (1 - (double)(k - 1) / (double)s->t_max);
        return lr * pow(f, s->power);
    }
    default:
        return lr;
    }
}

double ss_ref_optim_lr(const ss_lr_schedule_t *s, int64_t t)
{
    int64_t w = s->warmup_steps;
    double lr;
    if (w > 0) {
        // LinearLR recursion: lr_k = lr_{k-1} * (1 + (1 - f0) / (W f0 + (k - 1)(1 - f0)))
        double f0 = s->warmup_start_factor;
        lr = s->lr0 * f0;
        for (int64_t k = 1; k <= t && k < w; k++) {
            lr *= 1 + (1 - f0) / ((double)w * f0 + (double)(k - 1) * (1 - f0));
        }
        if (t < w) {
            return lr;
        }
    }
    lr = s->lr0;
    for (int64_t k = 1; k <= t - (w > 0 ? w : 0); k++) {
        lr = ref_main_next(s, lr, k);
    }
    return lr;
}
