// infer.c: sliding-window inference with Gaussian blending, and the Dice score.
#include "shardseg/infer.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ss_infer_params_default(ss_infer_params_t *p)
{
    p->overlap = 0.25;
    p->mode = SS_BLEND_GAUSSIAN;
    p->sigma_scale = 0.125;
    p->flips = 0;
}

// Window starts along one dimension of `size` voxels (already padded to at least roi).
static int window_starts(int64_t size, int64_t roi, double overlap, int64_t *starts)
{
    int64_t interval = (int64_t)floor((double)roi * (1.0 - overlap));
    interval = interval < 1 ? 1 : interval;
    int64_t n = size > roi ? (size - roi + interval - 1) / interval + 1 : 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t s = i * interval;
        starts[i] = s + roi > size ? size - roi : s;
    }
    return (int)n;
}

// The importance map of a window [r0][r1][r2] (MONAI compute_importance_map).
static void importance_map(float *w, const int64_t roi[3], const ss_infer_params_t *p)
{
    double *g[3];
    for (int d = 0; d < 3; d++) {
        g[d] = malloc((size_t)roi[d] * sizeof(double));
        double sigma = p->sigma_scale * (double)roi[d], c = ((double)roi[d] - 1) / 2;
        for (int64_t i = 0; i < roi[d]; i++) {
            double x = (double)i - c;
            g[d][i] = p->mode == SS_BLEND_GAUSSIAN ? exp(x * x / (-2 * sigma * sigma)) : 1.0;
        }
    }
    float lo = INFINITY;
    int64_t n = roi[0] * roi[1] * roi[2];
    for (int64_t i = 0; i < n; i++) {
        int64_t a = i / (roi[1] * roi[2]), b = i / roi[2] % roi[1], c = i % roi[2];
        w[i] = (float)(g[0][a] * g[1][b] * g[2][c]);
        lo = w[i] < lo ? w[i] : lo;
    }
    lo = lo > 1e-3f ? lo : 1e-3f;
    for (int64_t i = 0; i < n; i++) {
        w[i] = w[i] < lo ? lo : w[i];
    }
    for (int d = 0; d < 3; d++) {
        free(g[d]);
    }
}

typedef struct {
    int64_t size[3], padded[3], lo[3], roi[3];
    int64_t cin, cout;
} geom_t;

// Copies the window at (padded) origin o of the image into x, zero outside the volume; flips
// mirror the window along the set axes (test-time augmentation).
static void
gather(float *x, const float *image, const geom_t *g, const int64_t o[3], const int flip[3])
{
    int64_t r1 = g->roi[1], r2 = g->roi[2], s1 = g->size[1], s2 = g->size[2];
    for (int64_t c = 0; c < g->cin; c++) {
        for (int64_t a = 0; a < g->roi[0]; a++) {
            for (int64_t b = 0; b < r1; b++) {
                float *dst = x + ((c * g->roi[0] + a) * r1 + b) * r2;
                for (int64_t k = 0; k < r2; k++) {
                    int64_t ia = flip[0] ? g->roi[0] - 1 - a : a, ib = flip[1] ? r1 - 1 - b : b;
                    int64_t ik = flip[2] ? r2 - 1 - k : k;
                    int64_t i = o[0] + ia - g->lo[0], j = o[1] + ib - g->lo[1],
                            kk = o[2] + ik - g->lo[2];
                    int in = i >= 0 && i < g->size[0] && j >= 0 && j < s1 && kk >= 0 && kk < s2;
                    dst[k] = in ? image[((c * g->size[0] + i) * s1 + j) * s2 + kk] : 0.0f;
                }
            }
        }
    }
}

// Adds weight * logits of a window into acc and weight into wsum (inside the volume only).
static void scatter(float *acc,
                    float *wsum,
                    const float *y,
                    const float *w,
                    const geom_t *g,
                    const int64_t o[3],
                    const int flip[3],
                    int count_weight)
{
    int64_t r1 = g->roi[1], r2 = g->roi[2], s1 = g->size[1], s2 = g->size[2];
    int64_t vol = g->size[0] * s1 * s2, rvol = g->roi[0] * r1 * r2;
    for (int64_t a = 0; a < g->roi[0]; a++) {
        for (int64_t b = 0; b < r1; b++) {
            for (int64_t k = 0; k < r2; k++) {
                int64_t ia = flip[0] ? g->roi[0] - 1 - a : a, ib = flip[1] ? r1 - 1 - b : b;
                int64_t ik = flip[2] ? r2 - 1 - k : k;
                int64_t i = o[0] + ia - g->lo[0], j = o[1] + ib - g->lo[1],
                        kk = o[2] + ik - g->lo[2];
                if (i < 0 || i >= g->size[0] || j < 0 || j >= s1 || kk < 0 || kk >= s2) {
                    continue;
                }
                int64_t src = (a * r1 + b) * r2 + k, dst = (i * s1 + j) * s2 + kk;
                float wt = w[(ia * r1 + ib) * r2 + ik];
                for (int64_t c = 0; c < g->cout; c++) {
                    acc[c * vol + dst] += wt * y[c * rvol + src];
                }
                if (count_weight) {
                    wsum[dst] += wt;
                }
            }
        }
    }
}

static void geometry(const ss_infer_net_t *net, const int64_t size[3], geom_t *g)
{
    memset(g, 0, sizeof(*g));
    g->cin = net->in_channels;
    g->cout = net->out_channels;
    for (int d = 0; d < 3; d++) {
        g->size[d] = size[d];
        g->roi[d] = net->roi[d];
        g->padded[d] = size[d] > g->roi[d] ? size[d] : g->roi[d];
        g->lo[d] = (g->padded[d] - size[d]) / 2;
    }
}

typedef struct {
    float *x, *w, *wsum;
    int64_t *starts[3];
    int n[3];
} scratch_t;

static void scratch_free(scratch_t *s)
{
    free(s->x);
    free(s->w);
    free(s->wsum);
    for (int d = 0; d < 3; d++) {
        free(s->starts[d]);
    }
}

static ss_status_t
scratch_init(scratch_t *s, const geom_t *g, const ss_infer_params_t *p, ss_error_t *err)
{
    memset(s, 0, sizeof(*s));
    int64_t rvol = g->roi[0] * g->roi[1] * g->roi[2];
    s->x = malloc((size_t)(g->cin * rvol) * sizeof(float));
    s->w = malloc((size_t)rvol * sizeof(float));
    s->wsum = calloc((size_t)(g->size[0] * g->size[1] * g->size[2]), sizeof(float));
    int ok = s->x && s->w && s->wsum;
    for (int d = 0; d < 3 && ok; d++) {
        s->starts[d] = malloc((size_t)(g->padded[d] + 1) * sizeof(int64_t));
        ok = s->starts[d] != NULL;
        if (ok) {
            s->n[d] = window_starts(g->padded[d], g->roi[d], p->overlap, s->starts[d]);
        }
    }
    if (!ok) {
        scratch_free(s);
        SS_FAIL(err, SS_ENOMEM, "inference: out of memory for the window buffers");
    }
    importance_map(s->w, g->roi, p);
    return SS_OK;
}

static ss_status_t run_windows(const ss_infer_net_t *net,
                               float *out,
                               const float *image,
                               const geom_t *g,
                               scratch_t *s,
                               const ss_infer_params_t *p,
                               ss_error_t *err)
{
    int64_t rshape[5] = {1, g->cin, g->roi[0], g->roi[1], g->roi[2]};
    ss_tensor_t x, y;
    SS_TRY(ss_tensor_init(&x, SS_F32, 5, rshape, s->x, err));
    int nflip = p->flips ? 8 : 1;
    for (int f = 0; f < nflip; f++) {
        int flip[3] = {f & 1, (f >> 1) & 1, (f >> 2) & 1};
        for (int a = 0; a < s->n[0]; a++) {
            for (int b = 0; b < s->n[1]; b++) {
                for (int c = 0; c < s->n[2]; c++) {
                    int64_t o[3] = {s->starts[0][a], s->starts[1][b], s->starts[2][c]};
                    gather(s->x, image, g, o, flip);
                    SS_TRY(net->fn(net->ctx, &y, &x, err));
                    scatter(out, s->wsum, ss_tensor_f32(&y), s->w, g, o, flip, 1);
                }
            }
        }
    }
    return SS_OK;
}

ss_status_t ss_infer_volume_net(const ss_infer_net_t *net,
                                float *out,
                                const float *image,
                                const int64_t size[3],
                                const ss_infer_params_t *p,
                                ss_error_t *err)
{
    geom_t g;
    scratch_t s;
    if (!(p->overlap >= 0 && p->overlap < 1)) {
        SS_FAIL(err, SS_EINVAL, "overlap: %g is outside [0, 1); use e.g. 0.25 or 0.5", p->overlap);
    }
    geometry(net, size, &g);
    SS_TRY(scratch_init(&s, &g, p, err));
    int64_t vol = g.size[0] * g.size[1] * g.size[2];
    memset(out, 0, (size_t)(g.cout * vol) * sizeof(float));
    ss_status_t st = run_windows(net, out, image, &g, &s, p, err);
    for (int64_t c = 0; st == SS_OK && c < g.cout; c++) {
        for (int64_t i = 0; i < vol; i++) {
            out[c * vol + i] /= s.wsum[i];
        }
    }
    scratch_free(&s);
    return st;
}

static ss_status_t model_window(void *ctx, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    return ss_model_forward(ctx, y, x, NULL, err);
}

ss_status_t ss_infer_volume(ss_model_t *m,
                            float *out,
                            const float *image,
                            const int64_t size[3],
                            const ss_infer_params_t *p,
                            ss_error_t *err)
{
    const ss_model_config_t *c = ss_model_config(m);
    const ss_model_plan_t *pl = ss_model_plan(m);
    if (pl->batch != 1 || pl->slab_len != c->img_size[0]) {
        SS_FAIL(err, SS_EINVAL, "inference: the model must be built for batch 1 and the whole ROI");
    }
    ss_infer_net_t net = {model_window,
                          m,
                          {c->img_size[0], c->img_size[1], c->img_size[2]},
                          c->in_channels,
                          c->out_channels};
    return ss_infer_volume_net(&net, out, image, size, p, err);
}

// Floods the 26-connected component of mask voxel seed with label id, using stack (room for
// every voxel); returns its size.
static int64_t
flood(int32_t *lab, int64_t *stack, const float *wt, const int64_t d[3], int64_t seed, int32_t id)
{
    int64_t top = 0, n = 0;
    lab[seed] = id;
    stack[top++] = seed;
    while (top > 0) {
        int64_t v = stack[--top], i = v / (d[1] * d[2]), j = v / d[2] % d[1], k = v % d[2];
        n++;
        for (int64_t a = i > 0 ? i - 1 : i; a <= i + 1 && a < d[0]; a++) {
            for (int64_t b = j > 0 ? j - 1 : j; b <= j + 1 && b < d[1]; b++) {
                for (int64_t c = k > 0 ? k - 1 : k; c <= k + 1 && c < d[2]; c++) {
                    int64_t u = (a * d[1] + b) * d[2] + c;
                    if (lab[u] == 0 && wt[u] > 0.0f) {
                        lab[u] = id;
                        stack[top++] = u;
                    }
                }
            }
        }
    }
    return n;
}

ss_status_t ss_infer_keep_largest(
    float *logits, int64_t nchan, const int64_t size[3], int64_t *kept, ss_error_t *err)
{
    const int64_t vol = size[0] * size[1] * size[2];
    int32_t *lab = calloc((size_t)vol, sizeof(int32_t));
    int64_t *stack = malloc((size_t)vol * sizeof(int64_t));
    if (lab == NULL || stack == NULL) {
        free(lab);
        free(stack);
        SS_FAIL(err, SS_ENOMEM, "largest component: out of memory for %lld voxels", (long long)vol);
    }
    int32_t id = 0, best = 0;
    int64_t best_n = 0;
    for (int64_t v = 0; v < vol; v++) {
        if (lab[v] == 0 && logits[v] > 0.0f && id < INT32_MAX) {
            int64_t n = flood(lab, stack, logits, size, v, ++id);
            if (n > best_n) {
                best_n = n;
                best = id;
            }
        }
    }
    for (int64_t v = 0; v < vol; v++) {
        if (lab[v] != best) { // outside the kept component (lab 0: no tumour at all)
            for (int64_t c = 0; c < nchan; c++) {
                logits[c * vol + v] = fminf(logits[c * vol + v], -1.0f);
            }
        }
    }
    if (kept != NULL) {
        *kept = best_n;
    }
    free(lab);
    free(stack);
    return SS_OK;
}
