// unet3d.c: the 3D U-Net of DistMIS / Cicek et al. (docs/models.md) on this rank's i-slab:
// conv blocks (3x3x3 conv + norm + ReLU) per level, 2x max pooling down, 2x transposed
// convolution up, skips concatenated after the upsampled features, a 1x1x1 output conv.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/layout.h"
#include "shardseg/pool3d.h"

#include "model_impl.h"

#define MAX_DEPTH 7
#define MAX_CONVS 4

typedef struct {
    conv_t conv[MAX_CONVS];
    norm_t norm[MAX_CONVS];
    ss_tensor_t out[MAX_CONVS]; // saved ReLU outputs
    int nb;
} cblock_t;

typedef struct {
    int depth;
    cblock_t down[MAX_DEPTH], upb[MAX_DEPTH];
    convt_t up[MAX_DEPTH];
    conv_t out;
    ss_tensor_t skip[MAX_DEPTH], cat[MAX_DEPTH], pooled[MAX_DEPTH];
    uint8_t *argmax[MAX_DEPTH];
    ss_tensor_t last;
} unet_t;

static const ss_pool3d_params_t g_pool2 = {{2, 2, 2}};

static void extent(const ss_model_t *m, int l, int64_t e[3])
{
    e[0] = m->plan.slab_len >> l;
    e[1] = m->cfg.img_size[1] >> l;
    e[2] = m->cfg.img_size[2] >> l;
}

static ss_status_t cblock_init(ss_model_t *m,
                               cblock_t *c,
                               const char *prefix,
                               int64_t cin,
                               int64_t cout,
                               const int64_t ext[3],
                               ss_error_t *err)
{
    char name[SS_PARAM_NAME_MAX];
    c->nb = (int)m->cfg.convs_per_level;
    int batch = m->cfg.norm == SS_MODEL_NORM_BATCH;
    for (int b = 0; b < c->nb; b++) {
        snprintf(name, sizeof(name), "%s.conv%d", prefix, b);
        SS_TRY(conv_init(m, &c->conv[b], name, b == 0 ? cin : cout, cout, 3, 1, 1, ext, err));
        snprintf(name, sizeof(name), "%s.norm%d", prefix, b);
        SS_TRY(norm_init(m, &c->norm[b], name, cout, 1, batch, ext, err));
    }
    return SS_OK;
}

// conv -> norm -> ReLU, nb times. out: NULL, or (inference) the caller's tensor for the last
// conv's output, where the block's result then is; the other temporaries die on return.
static ss_status_t cblock_run(ss_model_t *m,
                              cblock_t *c,
                              ss_tensor_t *y,
                              const ss_tensor_t *x,
                              ss_tensor_t *out,
                              ss_error_t *err)
{
    ss_tensor_t h = *x, t;
    ss_arena_mark_t mark = ss_arena_mark(m->act);
    for (int b = 0; b < c->nb; b++) {
        if (out != NULL && b == c->nb - 1) {
            t = *out;
            SS_TRY(conv_fwd_into(m, &c->conv[b], &t, &h, err));
        } else {
            SS_TRY(conv_fwd(m, &c->conv[b], &t, &h, err));
        }
        SS_TRY(norm_act_fwd(m, &c->norm[b], &h, &t, NULL, SS_NORM_ACT_RELU, 0.0f, err));
        c->out[b] = h;
    }
    if (out != NULL) {
        ss_arena_rewind(m->act, mark);
    }
    *y = h;
    return SS_OK;
}

// Inference only: into y, allocated by the caller ([n][cout][x's extent]).
static ss_status_t
cblock_fwd_into(ss_model_t *m, cblock_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    ss_tensor_t out = *y;
    return cblock_run(m, c, y, x, &out, err);
}

// In inference the output is allocated first and the temporaries die after it (no move).
static ss_status_t
cblock_fwd(ss_model_t *m, cblock_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    if (m->plan.training) {
        return cblock_run(m, c, y, x, NULL, err);
    }
    SS_TRY(model_act5(m, y, x->shape[0], c->conv[c->nb - 1].cout, x->shape + 2, err));
    return cblock_fwd_into(m, c, y, x, err);
}

// Up level l: *h (the output of the level below) becomes this level's output. In inference that
// output is allocated before the concatenation, which then dies without a move.
static ss_status_t up_fwd(ss_model_t *m, unet_t *u, int l, ss_tensor_t *h, ss_error_t *err)
{
    cblock_t *c = &u->upb[l];
    const ss_tensor_t *sk = &u->skip[l];
    if (m->plan.training) {
        SS_TRY(upsample_concat(m, &u->up[l], &u->cat[l], h, sk, err));
        return cblock_fwd(m, c, h, &u->cat[l], err);
    }
    ss_tensor_t y;
    SS_TRY(model_act5(m, &y, sk->shape[0], c->conv[c->nb - 1].cout, sk->shape + 2, err));
    ss_arena_mark_t mark = ss_arena_mark(m->act);
    SS_TRY(upsample_concat(m, &u->up[l], &u->cat[l], h, sk, err));
    SS_TRY(cblock_fwd_into(m, c, &y, &u->cat[l], err));
    ss_arena_rewind(m->act, mark);
    *h = y;
    return SS_OK;
}

// dx (preallocated, or NULL for the first block) receives the input gradient; dy is scratch.
static ss_status_t
cblock_bwd(ss_model_t *m, cblock_t *c, ss_tensor_t *dx, ss_tensor_t *dy, ss_error_t *err)
{
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    ss_tensor_t d = *dy, prev; // dy is consumed in place
    for (int b = c->nb - 1; b >= 0; b--) {
        SS_TRY(act_bwd(m, &d, &c->out[b], 0.0f, err));
        SS_TRY(norm_bwd(m, &c->norm[b], &d, &d, err));
        if (b == 0) {
            SS_TRY(conv_bwd(m, &c->conv[0], dx, &d, err));
        } else {
            SS_TRY(model_tmp_like(m, &prev, &c->conv[b].x, err));
            SS_TRY(conv_bwd(m, &c->conv[b], &prev, &d, err));
            d = prev;
        }
    }
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

static void unet_destroy(void *p)
{
    free(p);
}

static ss_status_t
unet_fwd(ss_model_t *m, ss_tensor_t *logits, const ss_tensor_t *x, ss_error_t *err);
static ss_status_t unet_bwd(ss_model_t *m, const ss_tensor_t *dlogits, ss_error_t *err);
static const net_ops_t g_unet_ops = {unet_fwd, unet_bwd, unet_destroy};

ss_status_t unet3d_build(ss_model_t *m, ss_error_t *err)
{
    const ss_model_config_t *c = &m->cfg;
    if (c->convs_per_level > MAX_CONVS) {
        SS_FAIL(err, SS_EINVAL, "convs_per_level: %lld is more than %d",
                (long long)c->convs_per_level, MAX_CONVS);
    }
    unet_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        SS_FAIL(err, SS_ENOMEM, "unet3d: out of memory");
    }
    m->net = u;
    m->ops = &g_unet_ops;
    u->depth = (int)c->depth;
    char name[SS_PARAM_NAME_MAX];
    int64_t ext[3];
    for (int l = 0; l < u->depth; l++) {
        extent(m, l, ext);
        snprintf(name, sizeof(name), "down.%d", l);
        int64_t cin = l == 0 ? c->in_channels : c->base_filters << (l - 1);
        SS_TRY(cblock_init(m, &u->down[l], name, cin, c->base_filters << l, ext, err));
    }
    for (int l = u->depth - 2; l >= 0; l--) {
        int64_t cl = c->base_filters << l;
        extent(m, l + 1, ext);
        snprintf(name, sizeof(name), "up.%d.upconv", l);
        SS_TRY(convt_init(m, &u->up[l], name, 2 * cl, cl, 1, ext, err));
        extent(m, l, ext);
        snprintf(name, sizeof(name), "up.%d", l);
        SS_TRY(cblock_init(m, &u->upb[l], name, 2 * cl, cl, ext, err));
    }
    extent(m, 0, ext);
    return conv_init(m, &u->out, "out", c->base_filters, c->out_channels, 1, 1, 1, ext, err);
}

static ss_status_t pool_fwd(ss_model_t *m, unet_t *u, int l, const ss_tensor_t *x, ss_error_t *err)
{
    int64_t ext[3] = {x->shape[2] / 2, x->shape[3] / 2, x->shape[4] / 2};
    SS_TRY(model_act5(m, &u->pooled[l], x->shape[0], x->shape[1], ext, err));
    SS_TRY(ss_arena_alloc(m->act, (size_t)ss_tensor_numel(&u->pooled[l]), (void **)&u->argmax[l],
                          err));
    return ss_pool3d_max_fwd(&u->pooled[l], u->argmax[l], x, &g_pool2, &m->ex, err);
}

static ss_status_t
unet_fwd(ss_model_t *m, ss_tensor_t *logits, const ss_tensor_t *x, ss_error_t *err)
{
    unet_t *u = m->net;
    ss_tensor_t h = *x;
    for (int l = 0; l < u->depth; l++) {
        if (l > 0) {
            SS_TRY(pool_fwd(m, u, l, &h, err));
            h = u->pooled[l];
        }
        SS_TRY(cblock_fwd(m, &u->down[l], &u->skip[l], &h, err));
        h = u->skip[l];
    }
    for (int l = u->depth - 2; l >= 0; l--) {
        SS_TRY(up_fwd(m, u, l, &h, err));
    }
    u->last = h;
    return conv_fwd(m, &u->out, logits, &h, err);
}

// Up path: d logits -> d bottleneck output (returned in dh); dskip[l] gets the concat share.
static ss_status_t up_bwd(ss_model_t *m,
                          unet_t *u,
                          ss_tensor_t *dh,
                          ss_tensor_t *dskip,
                          const ss_tensor_t *dlogits,
                          ss_error_t *err)
{
    SS_TRY(model_tmp_like(m, dh, &u->last, err));
    SS_TRY(conv_bwd(m, &u->out, dh, dlogits, err));
    for (int l = 0; l <= u->depth - 2; l++) {
        ss_tensor_t dnext, dcat, dup;
        SS_TRY(model_tmp_like(m, &dskip[l], &u->skip[l], err));
        SS_TRY(model_tmp_like(m, &dnext, &u->up[l].x, err));
        ss_arena_mark_t mark = ss_arena_mark(m->tmp);
        SS_TRY(model_tmp_like(m, &dcat, &u->cat[l], err));
        SS_TRY(cblock_bwd(m, &u->upb[l], &dcat, dh, err));
        SS_TRY(model_tmp_like(m, &dup, &u->skip[l], err));
        SS_TRY(ss_layout_concat_bwd(&dup, &dskip[l], &dcat, &m->ex, err));
        SS_TRY(convt_bwd(m, &u->up[l], &dnext, &dup, err));
        ss_arena_rewind(m->tmp, mark);
        *dh = dnext;
    }
    return SS_OK;
}

static ss_status_t unet_bwd(ss_model_t *m, const ss_tensor_t *dlogits, ss_error_t *err)
{
    unet_t *u = m->net;
    ss_tensor_t d, dskip[MAX_DEPTH];
    SS_TRY(up_bwd(m, u, &d, dskip, dlogits, err));
    for (int l = u->depth - 1; l > 0; l--) {
        ss_tensor_t din, dpre;
        SS_TRY(model_tmp_like(m, &din, &u->pooled[l], err));
        SS_TRY(cblock_bwd(m, &u->down[l], &din, &d, err));
        SS_TRY(model_tmp_like(m, &dpre, &u->skip[l - 1], err));
        SS_TRY(ss_pool3d_max_bwd(&dpre, &din, u->argmax[l], &g_pool2, &m->ex, err));
        model_add(&dskip[l - 1], &dpre, m->plan.nthreads);
        d = dskip[l - 1];
    }
    return cblock_bwd(m, &u->down[0], NULL, &d, err);
}
