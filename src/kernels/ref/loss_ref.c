#include "loss_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Probabilities (N, C, S), one-hot/dense target (N, C, S) and voxel weights (N, S): 0 for
// ignored class-map voxels, else 1.
typedef struct {
    double *prob, *tgt, *w;
} ref_act_t;

static int ref_act(ref_act_t *r,
                   const double *x,
                   const double *t,
                   int map,
                   int64_t n,
                   int64_t c,
                   int64_t s,
                   const ss_loss_params_t *p)
{
    r->prob = malloc((size_t)(n * c * s + 1) * sizeof(double));
    r->tgt = malloc((size_t)(n * c * s + 1) * sizeof(double));
    r->w = malloc((size_t)(n * s + 1) * sizeof(double));
    if (!r->prob || !r->tgt || !r->w) {
        return -1;
    }
    for (int64_t b = 0; b < n; b++) {
        for (int64_t v = 0; v < s; v++) {
            double mx = -INFINITY, z = 0;
            for (int64_t k = 0; k < c; k++) {
                mx = fmax(mx, x[(b * c + k) * s + v]);
            }
            for (int64_t k = 0; k < c; k++) {
                z += exp(x[(b * c + k) * s + v] - mx);
            }
            double y = map ? t[b * s + v] : 0;
            r->w[b * s + v] = map && y == p->ignore_index ? 0 : 1;
            for (int64_t k = 0; k < c; k++) {
                int64_t i = (b * c + k) * s + v;
                r->prob[i] = p->act == SS_LOSS_SOFTMAX ? exp(x[i] - mx) / z : 1 / (1 + exp(-x[i]));
                r->tgt[i] = map ? (double)(r->w[b * s + v] != 0 && y == (double)k) : t[i];
            }
        }
    }
    return 0;
}

static void ref_act_free(ref_act_t *r)
{
    free(r->prob);
    free(r->tgt);
    free(r->w);
}

// Per-(n, c) Dice sums I, P, T into sums[3 * (n * C + c) + k].
static void ref_dice_sums(
    double *sums, const ref_act_t *r, int64_t n, int64_t c, int64_t s, const ss_loss_params_t *p)
{
    for (int64_t b = 0; b < n; b++) {
        for (int64_t k = 0; k < c; k++) {
            double si = 0, sp = 0, st = 0;
            for (int64_t v = 0; v < s; v++) {
                int64_t i = (b * c + k) * s + v;
                double pv = r->prob[i] * r->w[b * s + v], tv = r->tgt[i];
                si += pv * tv;
                sp += p->squared_pred ? pv * pv : pv;
                st += p->squared_pred ? tv * tv : tv;
            }
            sums[3 * (b * c + k)] = si;
            sums[3 * (b * c + k) + 1] = sp;
            sums[3 * (b * c + k) + 2] = st;
        }
    }
}

static int64_t ref_first_channel(int64_t c, const ss_loss_params_t *p)
{
    return p->include_background || c == 1 ? 0 : 1;
}

void ss_ref_loss_fwd(ss_loss_value_t *val,
                     const double *x,
                     const double *t,
                     int map,
                     int64_t n,
                     int64_t c,
                     int64_t s,
                     const ss_loss_params_t *p)
{
    ref_act_t r;
    double *sums = malloc((size_t)(3 * n * c + 1) * sizeof(double));
    if (!sums || ref_act(&r, x, t, map, n, c, s, p) != 0) {
        val->loss = val->dice = val->ce = NAN;
        free(sums);
        return;
    }
    ref_dice_sums(sums, &r, n, c, s, p);
    int64_t c0 = ref_first_channel(c, p), groups = 0;
    double dice = 0;
    for (int64_t b = 0; b < (p->batch ? 1 : n); b++) {
        for (int64_t k = c0; k < c; k++) {
            double si = 0, sp = 0, st = 0;
            for (int64_t bb = p->batch ? 0 : b; bb < (p->batch ? n : b + 1); bb++) {
                si += sums[3 * (bb * c + k)];
                sp += sums[3 * (bb * c + k) + 1];
                st += sums[3 * (bb * c + k) + 2];
            }
            dice += 1 - (2 * si + p->smooth_nr) / (st + sp + p->smooth_dr);
            groups++;
        }
    }
    double ce = 0, cnt = 0;
    for (int64_t b = 0; b < n; b++) {
        for (int64_t v = 0; v < s; v++) {
            for (int64_t k = 0; k < c; k++) {
                int64_t i = (b * c + k) * s + v;
                if (p->act == SS_LOSS_SOFTMAX) {
                    ce -= r.tgt[i] * log(r.prob[i]);
                } else {
                    ce += fmax(x[i], 0) - x[i] * t[i] + log1p(exp(-fabs(x[i])));
                    cnt += 1;
                }
            }
            cnt += p->act == SS_LOSS_SOFTMAX ? r.w[b * s + v] : 0;
        }
    }
    val->dice = groups ? dice / (double)groups : 0;
    val->ce = cnt > 0 ? ce / cnt : 0;
    val->loss = p->lambda_dice * val->dice + p->lambda_ce * val->ce;
    ref_act_free(&r);
    free(sums);
}

// d loss / d prob for the Dice part into gp (N, C, S).
static void ref_dice_dprob(
    double *gp, const ref_act_t *r, int64_t n, int64_t c, int64_t s, const ss_loss_params_t *p)
{
    double *sums = malloc((size_t)(3 * n * c + 1) * sizeof(double));
    if (!sums) {
        return;
    }
    ref_dice_sums(sums, r, n, c, s, p);
    int64_t c0 = ref_first_channel(c, p);
    double groups = (double)((p->batch ? 1 : n) * (c - c0));
    memset(gp, 0, (size_t)(n * c * s) * sizeof(double));
    for (int64_t b = 0; b < n; b++) {
        for (int64_t k = c0; k < c; k++) {
            double si = 0, sp = 0, st = 0;
            for (int64_t bb = p->batch ? 0 : b; bb < (p->batch ? n : b + 1); bb++) {
                si += sums[3 * (bb * c + k)];
                sp += sums[3 * (bb * c + k) + 1];
                st += sums[3 * (bb * c + k) + 2];
            }
            double num = 2 * si + p->smooth_nr, den = st + sp + p->smooth_dr;
            for (int64_t v = 0; v < s; v++) {
                int64_t i = (b * c + k) * s + v;
                double w = r->w[b * s + v], pv = r->prob[i] * w;
                // f = 1 - num / den; d num / d p = 2 t w; d den / d p = w (or 2 p w)
                double dden = p->squared_pred ? 2 * pv * w : w;
                gp[i] =
                    p->lambda_dice / groups * (-2 * r->tgt[i] * w / den + num / (den * den) * dden);
            }
        }
    }
    free(sums);
}

void ss_ref_loss_bwd_logits(double *dx,
                            const double *x,
                            const double *t,
                            int map,
                            int64_t n,
                            int64_t c,
                            int64_t s,
                            const ss_loss_params_t *p)
{
    ref_act_t r;
    double *gp = malloc((size_t)(n * c * s + 1) * sizeof(double));
    if (!gp || ref_act(&r, x, t, map, n, c, s, p) != 0) {
        free(gp);
        return;
    }
    ref_dice_dprob(gp, &r, n, c, s, p);
    double cnt = 0;
    for (int64_t b = 0; b < n * s; b++) {
        cnt += p->act == SS_LOSS_SOFTMAX ? r.w[b] : (double)c;
    }
    double wce = cnt > 0 ? p->lambda_ce / cnt : 0;
    for (int64_t b = 0; b < n; b++) {
        for (int64_t v = 0; v < s; v++) {
            for (int64_t k = 0; k < c; k++) {
                int64_t i = (b * c + k) * s + v;
                double pk = r.prob[i], g = 0;
                if (p->act == SS_LOSS_SOFTMAX) {
                    // full Jacobian: d p_j / d x_k = p_j (delta_jk - p_k)
                    for (int64_t j = 0; j < c; j++) {
                        int64_t ij = (b * c + j) * s + v;
                        g += gp[ij] * r.prob[ij] * ((j == k) - pk);
                        g -= wce * r.tgt[ij] * ((j == k) - pk); // d(-t_j log p_j)/dx_k
                    }
                } else {
                    g = gp[i] * pk * (1 - pk) + wce * (pk - t[i]);
                }
                dx[i] = g;
            }
        }
    }
    free(gp);
    ref_act_free(&r);
}
