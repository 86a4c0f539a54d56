#include "conv3d_ref.h"

#include <string.h>

int64_t ss_ref_conv3d_out_dim(int64_t in, int k, int s, int lo, int hi)
{
    return (in + lo + hi - k) / s + 1;
}

// Shapes and the visitor shared by the three passes: every (n, co, output position, ci, tap)
// pair with an in-range input position is visited once, with the flat offsets of x, y and w.
typedef struct {
    int64_t n, cin, cout, in[3], out[3];
    const ss_conv3d_params_t *p;
} ref_geom_t;

typedef void (*ref_visit_fn)(void *ctx, int64_t xi, int64_t yi, int64_t wi, int64_t co);

static ref_geom_t ref_geom(const int64_t xshape[5], int64_t cout, const ss_conv3d_params_t *p)
{
    ref_geom_t g = {xshape[0], xshape[1], cout, {xshape[2], xshape[3], xshape[4]}, {0}, p};
    for (int d = 0; d < 3; d++) {
        g.out[d] =
            ss_ref_conv3d_out_dim(g.in[d], p->kernel[d], p->stride[d], p->pad_lo[d], p->pad_hi[d]);
    }
    return g;
}

// Input index along dim d for output o and tap a, or -1 when it falls in the padding.
static int64_t ref_src(const ref_geom_t *g, int d, int64_t o, int64_t a)
{
    int64_t i = o * g->p->stride[d] - g->p->pad_lo[d] + a;
    return i >= 0 && i < g->in[d] ? i : -1;
}

static void ref_taps(const ref_geom_t *g,
                     ref_visit_fn f,
                     void *ctx,
                     int64_t n,
                     int64_t co,
                     const int64_t o[3],
                     int64_t yi)
{
    const int *k = g->p->kernel;
    for (int64_t ci = 0; ci < g->cin; ci++) {
        for (int64_t a = 0; a < k[0]; a++) {
            for (int64_t b = 0; b < k[1]; b++) {
                for (int64_t c = 0; c < k[2]; c++) {
                    int64_t i = ref_src(g, 0, o[0], a), j = ref_src(g, 1, o[1], b),
                            l = ref_src(g, 2, o[2], c);
                    if (i < 0 || j < 0 || l < 0) {
                        continue;
                    }
                    int64_t xi = (((n * g->cin + ci) * g->in[0] + i) * g->in[1] + j) * g->in[2] + l;
                    int64_t wi = (((co * g->cin + ci) * k[0] + a) * k[1] + b) * k[2] + c;
                    f(ctx, xi, yi, wi, co);
                }
            }
        }
    }
}

static void ref_visit(const ref_geom_t *g, ref_visit_fn f, void *ctx)
{
    int64_t yi = 0;
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t co = 0; co < g->cout; co++) {
            int64_t o[3];
            for (o[0] = 0; o[0] < g->out[0]; o[0]++) {
                for (o[1] = 0; o[1] < g->out[1]; o[1]++) {
                    for (o[2] = 0; o[2] < g->out[2]; o[2]++) {
                        ref_taps(g, f, ctx, n, co, o, yi++);
                    }
                }
            }
        }
    }
}

typedef struct {
    double *out;
    const double *a, *b;
} ref_ctx_t;

static void visit_fwd(void *ctx, int64_t xi, int64_t yi, int64_t wi, int64_t co)
{
    ref_ctx_t *c = ctx;
    (void)co;
    c->out[yi] += c->a[xi] * c->b[wi];
}

static void visit_bwd_data(void *ctx, int64_t xi, int64_t yi, int64_t wi, int64_t co)
{
    ref_ctx_t *c = ctx;
    (void)co;
    c->out[xi] += c->a[yi] * c->b[wi];
}

static void visit_bwd_weight(void *ctx, int64_t xi, int64_t yi, int64_t wi, int64_t co)
{
    ref_ctx_t *c = ctx;
    (void)co;
    c->out[wi] += c->a[yi] * c->b[xi];
}

static int64_t ref_out_numel(const ref_geom_t *g)
{
    return g->n * g->cout * g->out[0] * g->out[1] * g->out[2];
}

void ss_ref_conv3d_fwd(double *y,
                       const double *x,
                       const double *w,
                       const double *bias,
                       const int64_t xshape[5],
                       int64_t cout,
                       const ss_conv3d_params_t *p)
{
    ref_geom_t g = ref_geom(xshape, cout, p);
    int64_t per_c = g.out[0] * g.out[1] * g.out[2];
    for (int64_t e = 0; e < ref_out_numel(&g); e++) {
        y[e] = bias ? bias[(e / per_c) % cout] : 0.0;
    }
    ref_ctx_t c = {y, x, w};
    ref_visit(&g, visit_fwd, &c);
}

void ss_ref_conv3d_bwd_data(double *dx,
                            const double *dy,
                            const double *w,
                            const int64_t xshape[5],
                            int64_t cout,
                            const ss_conv3d_params_t *p)
{
    ref_geom_t g = ref_geom(xshape, cout, p);
    memset(dx, 0, sizeof(double) * (size_t)(g.n * g.cin * g.in[0] * g.in[1] * g.in[2]));
    ref_ctx_t c = {dx, dy, w};
    ref_visit(&g, visit_bwd_data, &c);
}

void ss_ref_conv3d_bwd_weight(double *dw,
                              double *dbias,
                              const double *x,
                              const double *dy,
                              const int64_t xshape[5],
                              int64_t cout,
                              const ss_conv3d_params_t *p)
{
    ref_geom_t g = ref_geom(xshape, cout, p);
    const int *k = p->kernel;
    memset(dw, 0, sizeof(double) * (size_t)(cout * g.cin * k[0] * k[1] * k[2]));
    ref_ctx_t c = {dw, dy, x};
    ref_visit(&g, visit_bwd_weight, &c);
    if (dbias == NULL) {
        return;
    }
    int64_t per_c = g.out[0] * g.out[1] * g.out[2];
    memset(dbias, 0, sizeof(double) * (size_t)cout);
    for (int64_t e = 0; e < ref_out_numel(&g); e++) {
        dbias[(e / per_c) % cout] += dy[e];
    }
}
