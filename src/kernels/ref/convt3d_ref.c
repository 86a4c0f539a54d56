#include "convt3d_ref.h"

#include <stddef.h>

// Indices of y[n][co][oi][oj][ok], w[ci][co][a][b][c] and x[n][ci][i][j][k]. for_each_term
// enumerates the (input voxel, kernel offset) pairs, which for kernel == stride cover every output
// voxel exactly once.
static int64_t
y_idx(const ss_ref_convt3d_dims_t *d, int64_t n, int64_t co, int64_t oi, int64_t oj, int64_t ok)
{
    return (((n * d->cout + co) * d->i * d->s[0] + oi) * d->j * d->s[1] + oj) * d->k * d->s[2] + ok;
}

static int64_t
w_idx(const ss_ref_convt3d_dims_t *d, int64_t ci, int64_t co, int64_t a, int64_t b, int64_t c)
{
    return (((ci * d->cout + co) * d->s[0] + a) * d->s[1] + b) * d->s[2] + c;
}

static int64_t
x_idx(const ss_ref_convt3d_dims_t *d, int64_t n, int64_t ci, int64_t i, int64_t j, int64_t k)
{
    return (((n * d->cin + ci) * d->i + i) * d->j + j) * d->k + k;
}

// Calls visit(ctx, x index, w index, y index) for every term of the sum.
typedef void (*term_fn)(void *ctx, int64_t xi, int64_t wi, int64_t yi);

static void for_each_term(const ss_ref_convt3d_dims_t *d, term_fn visit, void *ctx)
{
    const int64_t nx = d->n * d->cin * d->i * d->j * d->k;
    const int64_t nk = d->cout * d->s[0] * d->s[1] * d->s[2];
    for (int64_t e = 0; e < nx; e++) {
        int64_t k = e % d->k, j = e / d->k % d->j, i = e / (d->k * d->j) % d->i;
        int64_t ci = e / (d->k * d->j * d->i) % d->cin, n = e / (d->k * d->j * d->i * d->cin);
        for (int64_t f = 0; f < nk; f++) {
            int64_t c = f % d->s[2], b = f / d->s[2] % d->s[1];
            int64_t a = f / (d->s[2] * d->s[1]) % d->s[0], co = f / (d->s[2] * d->s[1] * d->s[0]);
            visit(ctx, x_idx(d, n, ci, i, j, k), w_idx(d, ci, co, a, b, c),
                  y_idx(d, n, co, i * d->s[0] + a, j * d->s[1] + b, k * d->s[2] + c));
        }
    }
}

typedef struct {
    double *out;
    const double *u, *v;
} term_ctx_t;

static void fwd_term(void *ctx, int64_t xi, int64_t wi, int64_t yi)
{
    term_ctx_t *t = ctx;
    t->out[yi] += t->u[xi] * t->v[wi];
}

static void bwd_data_term(void *ctx, int64_t xi, int64_t wi, int64_t yi)
{
    term_ctx_t *t = ctx;
    t->out[xi] += t->u[yi] * t->v[wi];
}

static void bwd_weight_term(void *ctx, int64_t xi, int64_t wi, int64_t yi)
{
    term_ctx_t *t = ctx;
    t->out[wi] += t->u[xi] * t->v[yi];
}

static int64_t y_numel_per_channel(const ss_ref_convt3d_dims_t *d)
{
    return d->i * d->s[0] * d->j * d->s[1] * d->k * d->s[2];
}

void ss_ref_convt3d_fwd(
    double *y, const double *x, const double *w, const double *bias, const ss_ref_convt3d_dims_t *d)
{
    int64_t per = y_numel_per_channel(d);
    for (int64_t e = 0; e < d->n * d->cout * per; e++) {
        y[e] = bias != NULL ? bias[e / per % d->cout] : 0.0;
    }
    term_ctx_t t = {y, x, w};
    for_each_term(d, fwd_term, &t);
}

void ss_ref_convt3d_bwd_data(double *dx,
                             const double *dy,
                             const double *w,
                             const ss_ref_convt3d_dims_t *d)
{
    for (int64_t e = 0; e < d->n * d->cin * d->i * d->j * d->k; e++) {
        dx[e] = 0;
    }
    term_ctx_t t = {dx, dy, w};
    for_each_term(d, bwd_data_term, &t);
}

void ss_ref_convt3d_bwd_weight(
    double *dw, double *db, const double *x, const double *dy, const ss_ref_convt3d_dims_t *d)
{
    for (int64_t e = 0; e < d->cin * d->cout * d->s[0] * d->s[1] * d->s[2]; e++) {
        dw[e] = 0;
    }
    term_ctx_t t = {dw, x, dy};
    for_each_term(d, bwd_weight_term, &t);
    if (db == NULL) {
        return;
    }
    int64_t per = y_numel_per_channel(d);
    for (int64_t co = 0; co < d->cout; co++) {
        db[co] = 0;
    }
    for (int64_t e = 0; e < d->n * d->cout * per; e++) {
        db[e / per % d->cout] += dy[e];
    }
}
