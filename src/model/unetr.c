// unetr.c: MONAI's UNETR (docs/models.md) on this rank's i-slab.
//
// Levels: level l has extent (slab_len, J, K) / 2^l; the token grid is level s = log2(patch).
// Encoder e (2..s) maps hidden_states_out[(e-1) L / 4] from the grid to level e-1; decoder d
// (s+1..2) upsamples level d-1 to d-2 and fuses encoder d-1 (encoder1 for d = 2).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/layout.h"

#include "model_impl.h"

#define MAX_STAGES 4

typedef struct {
    convt_t init;
    convt_t up[MAX_STAGES];
    resblock_t res[MAX_STAGES];
    int nl, tap;
    ss_tensor_t in, out; // saved: the projected tokens and the encoder's output
} prup_t;

typedef struct {
    convt_t up;
    resblock_t res;
    ss_tensor_t in, cat;
} upblock_t;

typedef struct {
    int64_t s, hd, tok, tok0, grid[3];
    conv_t patch;
    int pos, lnf_w, lnf_b;
    tblock_t *blocks;
    int nblocks;
    resblock_t enc1;
    prup_t enc[MAX_STAGES + 1];    // index e, 2 <= e <= s
    upblock_t dec[MAX_STAGES + 2]; // index d, 2 <= d <= s + 1
    conv_t out;
    ss_tensor_t *tk; // tokens before block 0 .. after block L-1
    ss_tensor_t fin, fmean, frstd, enc1_out, dec_out;
} unetr_t;

static void level_extent(const ss_model_t *m, int l, int64_t e[3])
{
    e[0] = m->plan.slab_len >> l;
    e[1] = m->cfg.img_size[1] >> l;
    e[2] = m->cfg.img_size[2] >> l;
}

static void unetr_destroy(void *p)
{
    unetr_t *u = p;
    free(u->blocks);
    free(u->tk);
    free(u);
}

static ss_status_t build_vit(ss_model_t *m, unetr_t *u, ss_error_t *err)
{
    const ss_model_config_t *c = &m->cfg;
    char name[SS_PARAM_NAME_MAX];
    int64_t ps[3] = {1, u->grid[0] * u->grid[1] * u->grid[2], u->hd}, in[3];
    level_extent(m, 0, in);
    SS_TRY(model_param_add(m, &u->pos, "vit.patch_embedding.position_embeddings", "", 3, ps,
                           SS_INIT_TRUNC_NORMAL, 0.02, err));
    SS_TRY(conv_init(m, &u->patch, "vit.patch_embedding.patch_embeddings", c->in_channels, u->hd,
                     (int)c->patch_size[0], (int)c->patch_size[0], 1, in, err));
    for (int b = 0; b < u->nblocks; b++) {
        snprintf(name, sizeof(name), "vit.blocks.%d", b);
        SS_TRY(tblock_init(m, &u->blocks[b], name, u->hd, c->mlp_dim, c->num_heads, c->qkv_bias,
                           m->plan.batch, u->tok, err));
    }
    SS_TRY(model_param_add(m, &u->lnf_w, "vit.norm", "weight", 1, &u->hd, SS_INIT_ONE, 0, err));
    SS_TRY(model_param_add(m, &u->lnf_b, "vit.norm", "bias", 1, &u->hd, SS_INIT_ZERO, 0, err));
    return SS_OK;
}

static ss_status_t build_encoder(ss_model_t *m, unetr_t *u, int e, ss_error_t *err)
{
    char name[SS_PARAM_NAME_MAX];
    prup_t *p = &u->enc[e];
    int64_t f = m->cfg.feature_size << (e - 1), ext[3];
    p->nl = (int)u->s - e;
    p->tap = (int)((e - 1) * u->nblocks / 4);
    level_extent(m, (int)u->s, ext);
    snprintf(name, sizeof(name), "encoder%d.transp_conv_init.conv", e);
    SS_TRY(convt_init(m, &p->init, name, u->hd, f, 0, ext, err));
    for (int j = 0; j < p->nl; j++) {
        level_extent(m, (int)u->s - 1 - j, ext);
        snprintf(name, sizeof(name), "encoder%d.blocks.%d.0.conv", e, j);
        SS_TRY(convt_init(m, &p->up[j], name, f, f, 0, ext, err));
        level_extent(m, (int)u->s - 2 - j, ext);
        snprintf(name, sizeof(name), "encoder%d.blocks.%d.1", e, j);
        SS_TRY(resblock_init(m, &p->res[j], name, f, f, ext, err));
    }
    return SS_OK;
}

static ss_status_t build_decoder(ss_model_t *m, unetr_t *u, int d, ss_error_t *err)
{
    char name[SS_PARAM_NAME_MAX];
    int64_t out = m->cfg.feature_size << (d - 2);
    int64_t in = d == u->s + 1 ? u->hd : m->cfg.feature_size << (d - 1), ext[3];
    level_extent(m, d - 1, ext);
    snprintf(name, sizeof(name), "decoder%d.transp_conv.conv", d);
    SS_TRY(convt_init(m, &u->dec[d].up, name, in, out, 0, ext, err));
    level_extent(m, d - 2, ext);
    snprintf(name, sizeof(name), "decoder%d.conv_block", d);
    return resblock_init(m, &u->dec[d].res, name, 2 * out, out, ext, err);
}

static ss_status_t
unetr_fwd(ss_model_t *m, ss_tensor_t *logits, const ss_tensor_t *x, ss_error_t *err);
static ss_status_t unetr_bwd(ss_model_t *m, const ss_tensor_t *dlogits, ss_error_t *err);
static const net_ops_t g_unetr_ops = {unetr_fwd, unetr_bwd, unetr_destroy};

ss_status_t unetr_build(ss_model_t *m, ss_error_t *err)
{
    const ss_model_config_t *c = &m->cfg;
    unetr_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        SS_FAIL(err, SS_ENOMEM, "unetr: out of memory");
    }
    m->net = u;
    m->ops = &g_unetr_ops;
    int64_t p = c->patch_size[0];
    u->s = p == 16 ? 4 : p == 8 ? 3 : 2;
    u->hd = c->hidden_size;
    for (int d = 0; d < 3; d++) {
        u->grid[d] = c->img_size[d] / p;
    }
    u->tok = m->plan.slab_len / p * u->grid[1] * u->grid[2];
    u->tok0 = m->plan.slab_start / p * u->grid[1] * u->grid[2];
    u->nblocks = (int)c->num_layers;
    u->blocks = calloc((size_t)u->nblocks, sizeof(*u->blocks));
    u->tk = calloc((size_t)u->nblocks + 1, sizeof(*u->tk));
    if (u->blocks == NULL || u->tk == NULL) {
        SS_FAIL(err, SS_ENOMEM, "unetr: out of memory");
    }
    SS_TRY(build_vit(m, u, err));
    int64_t ext[3];
    level_extent(m, 0, ext);
    SS_TRY(resblock_init(m, &u->enc1, "encoder1.layer", c->in_channels, c->feature_size, ext, err));
    for (int e = 2; e <= u->s; e++) {
        SS_TRY(build_encoder(m, u, e, err));
    }
    for (int d = (int)u->s + 1; d >= 2; d--) {
        SS_TRY(build_decoder(m, u, d, err));
    }
    return conv_init(m, &u->out, "out.conv.conv", c->feature_size, c->out_channels, 1, 1, 1, ext,
                     err);
}

// --- forward -------------------------------------------------------------------------------

// tokens [N][tok][hd] -> volume [N][hd][grid rows][gj][gk] (MONAI's proj_feat), from act.
static ss_status_t
proj_feat(ss_model_t *m, unetr_t *u, ss_tensor_t *vol, const ss_tensor_t *t, ss_error_t *err)
{
    int64_t ext[3];
    level_extent(m, (int)u->s, ext);
    SS_TRY(model_act5(m, vol, t->shape[0], u->hd, ext, err));
    model_transpose(ss_tensor_f32(vol), ss_tensor_f32(t), t->shape[0], u->tok, u->hd,
                    m->plan.nthreads);
    return SS_OK;
}

static ss_status_t embed_fwd(ss_model_t *m, unetr_t *u, const ss_tensor_t *x, ss_error_t *err)
{
    ss_tensor_t pe;
    int64_t n = x->shape[0], ts[3] = {n, u->tok, u->hd};
    SS_TRY(conv_fwd(m, &u->patch, &pe, x, err));
    SS_TRY(ss_tensor_alloc(&u->tk[0], SS_F32, 3, ts, m->act, err));
    float *t = ss_tensor_f32(&u->tk[0]);
    model_transpose(t, ss_tensor_f32(&pe), n, u->hd, u->tok, m->plan.nthreads);
    const float *pos = m->w + m->params[u->pos].offset + u->tok0 * u->hd;
    for (int64_t i = 0; i < n; i++) {
        ss_tensor_t row, prow;
        int64_t rs[1] = {u->tok * u->hd};
        ss_error_t e;
        ss_tensor_init(&row, SS_F32, 1, rs, t + i * rs[0], &e);
        ss_tensor_init(&prow, SS_F32, 1, rs, (void *)pos, &e);
        model_add(&row, &prow, m->plan.nthreads);
    }
    return SS_OK;
}

static ss_status_t
vit_fwd(ss_model_t *m, unetr_t *u, ss_tensor_t *dec_in, const ss_tensor_t *x, ss_error_t *err)
{
    SS_TRY(embed_fwd(m, u, x, err));
    for (int b = 0; b < u->nblocks; b++) {
        SS_TRY(tblock_fwd(m, &u->blocks[b], &u->tk[b + 1], &u->tk[b], err));
    }
    int64_t r = x->shape[0] * u->tok;
    ss_layernorm_params_t lp = {1e-5f};
    ss_tensor_t g = model_w(m, u->lnf_w), b = model_w(m, u->lnf_b);
    SS_TRY(ss_tensor_alloc(&u->fin, SS_F32, 3, u->tk[0].shape, m->act, err));
    SS_TRY(ss_tensor_alloc(&u->fmean, SS_F32, 1, &r, m->act, err));
    SS_TRY(ss_tensor_alloc(&u->frstd, SS_F32, 1, &r, m->act, err));
    SS_TRY(ss_layernorm_fwd(&u->fin, &u->fmean, &u->frstd, &u->tk[u->nblocks], &g, &b, &lp, &m->ex,
                            err));
    return proj_feat(m, u, dec_in, &u->fin, err);
}

static ss_status_t encoder_fwd(ss_model_t *m, unetr_t *u, int e, ss_error_t *err)
{
    prup_t *p = &u->enc[e];
    ss_tensor_t h, v;
    SS_TRY(proj_feat(m, u, &p->in, &u->tk[p->tap + 1], err));
    SS_TRY(convt_fwd(m, &p->init, &h, &p->in, err));
    for (int j = 0; j < p->nl; j++) {
        SS_TRY(convt_fwd(m, &p->up[j], &v, &h, err));
        SS_TRY(resblock_fwd(m, &p->res[j], &h, &v, err));
    }
    p->out = h;
    return SS_OK;
}

static const ss_tensor_t *skip_of(unetr_t *u, int d)
{
    return d == 2 ? &u->enc1_out : &u->enc[d - 1].out;
}

static ss_status_t
decoder_fwd(ss_model_t *m, unetr_t *u, int d, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    upblock_t *b = &u->dec[d];
    if (m->plan.training) {
        SS_TRY(upsample_concat(m, &b->up, &b->cat, x, skip_of(u, d), err));
        b->in = *x;
        return resblock_fwd(m, &b->res, y, &b->cat, err);
    }
    // Inference: the output first, so that the concatenation dies after it without a move.
    const ss_tensor_t *sk = skip_of(u, d);
    SS_TRY(model_act5(m, y, x->shape[0], b->res.conv2.cout, sk->shape + 2, err));
    ss_arena_mark_t mark = ss_arena_mark(m->act);
    SS_TRY(upsample_concat(m, &b->up, &b->cat, x, sk, err));
    b->in = *x;
    SS_TRY(resblock_fwd_into(m, &b->res, y, &b->cat, err));
    ss_arena_rewind(m->act, mark);
    return SS_OK;
}

static ss_status_t
unetr_fwd(ss_model_t *m, ss_tensor_t *logits, const ss_tensor_t *x, ss_error_t *err)
{
    unetr_t *u = m->net;
    ss_tensor_t h, next;
    SS_TRY(vit_fwd(m, u, &h, x, err));
    SS_TRY(resblock_fwd(m, &u->enc1, &u->enc1_out, x, err));
    for (int e = 2; e <= u->s; e++) {
        SS_TRY(encoder_fwd(m, u, e, err));
    }
    for (int d = (int)u->s + 1; d >= 2; d--) {
        SS_TRY(decoder_fwd(m, u, d, &next, &h, err));
        h = next;
    }
    u->dec_out = h;
    return conv_fwd(m, &u->out, logits, &h, err);
}

// --- backward ------------------------------------------------------------------------------

// Decoder d: dy (gradient of its output) -> dx (its input), dskip (its skip input).
static ss_status_t decoder_bwd(ss_model_t *m,
                               unetr_t *u,
                               int d,
                               ss_tensor_t *dx,
                               ss_tensor_t *dskip,
                               ss_tensor_t *dy,
                               ss_error_t *err)
{
    upblock_t *b = &u->dec[d];
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    ss_tensor_t dcat, dup;
    SS_TRY(model_tmp_like(m, &dcat, &b->cat, err));
    SS_TRY(resblock_bwd(m, &b->res, &dcat, dy, err));
    int64_t ext[3] = {dcat.shape[2], dcat.shape[3], dcat.shape[4]};
    SS_TRY(model_tmp5(m, &dup, dcat.shape[0], dcat.shape[1] - dskip->shape[1], ext, err));
    SS_TRY(ss_layout_concat_bwd(&dup, dskip, &dcat, &m->ex, err));
    SS_TRY(convt_bwd(m, &b->up, dx, &dup, err));
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

// Encoder e: gradient of its output -> gradient of its tap's tokens, added into dtok.
static ss_status_t
encoder_bwd(ss_model_t *m, unetr_t *u, int e, ss_tensor_t *dtok, ss_tensor_t *dy, ss_error_t *err)
{
    prup_t *p = &u->enc[e];
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    ss_tensor_t dh = *dy, dv, din, t;
    for (int j = p->nl - 1; j >= 0; j--) {
        SS_TRY(model_tmp_like(m, &dv, &p->res[j].conv1.x, err));
        SS_TRY(resblock_bwd(m, &p->res[j], &dv, &dh, err));
        SS_TRY(model_tmp_like(m, &dh, &p->up[j].x, err));
        SS_TRY(convt_bwd(m, &p->up[j], &dh, &dv, err));
    }
    SS_TRY(model_tmp_like(m, &din, &p->in, err));
    SS_TRY(convt_bwd(m, &p->init, &din, &dh, err));
    SS_TRY(model_tmp_like(m, &t, dtok, err));
    model_transpose(ss_tensor_f32(&t), ss_tensor_f32(&din), t.shape[0], u->hd, u->tok,
                    m->plan.nthreads);
    model_add(dtok, &t, m->plan.nthreads);
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

// The decoder chain from d logits down to d(dec_in); dskip[e] receives encoder e's gradient.
static ss_status_t decoders_bwd(ss_model_t *m,
                                unetr_t *u,
                                ss_tensor_t *ddec_in,
                                ss_tensor_t *dskip,
                                const ss_tensor_t *dlogits,
                                ss_error_t *err)
{
    ss_tensor_t dh, dnext;
    SS_TRY(model_tmp_like(m, &dh, &u->dec_out, err));
    SS_TRY(conv_bwd(m, &u->out, &dh, dlogits, err));
    for (int d = 2; d <= u->s + 1; d++) {
        SS_TRY(model_tmp_like(m, &dskip[d - 1], skip_of(u, d), err));
        SS_TRY(model_tmp_like(m, &dnext, &u->dec[d].in, err));
        SS_TRY(decoder_bwd(m, u, d, &dnext, &dskip[d - 1], &dh, err));
        dh = dnext;
    }
    *ddec_in = dh;
    return SS_OK;
}

// d(position embeddings) = sum over the batch of d(tokens after embedding); then the patch conv.
static ss_status_t embed_bwd(ss_model_t *m, unetr_t *u, const ss_tensor_t *dt, ss_error_t *err)
{
    int64_t n = dt->shape[0], len = u->tok * u->hd;
    float *gp = m->g + m->params[u->pos].offset;
    const float *d = ss_tensor_f32(dt);
    // Rows outside this slab get no gradient here; the gradient reduction sums the slabs.
    memset(gp, 0, (size_t)m->params[u->pos].numel * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < len; j++) {
            gp[u->tok0 * u->hd + j] += d[i * len + j];
        }
    }
    ss_tensor_t dpe;
    int64_t ext[3];
    level_extent(m, (int)u->s, ext);
    SS_TRY(model_tmp5(m, &dpe, n, u->hd, ext, err));
    model_transpose(ss_tensor_f32(&dpe), d, n, u->tok, u->hd, m->plan.nthreads);
    return conv_bwd(m, &u->patch, NULL, &dpe, err);
}

static ss_status_t
vit_bwd(ss_model_t *m, unetr_t *u, ss_tensor_t *dtap, const ss_tensor_t *ddec_in, ss_error_t *err)
{
    ss_tensor_t dfin, dt[2];
    SS_TRY(model_tmp_like(m, &dfin, &u->fin, err));
    SS_TRY(model_tmp_like(m, &dt[0], &u->fin, err));
    SS_TRY(model_tmp_like(m, &dt[1], &u->fin, err));
    model_transpose(ss_tensor_f32(&dfin), ss_tensor_f32(ddec_in), dfin.shape[0], u->hd, u->tok,
                    m->plan.nthreads);
    ss_layernorm_params_t lp = {1e-5f};
    ss_tensor_t g = model_w(m, u->lnf_w), dg = model_g(m, u->lnf_w), db = model_g(m, u->lnf_b);
    SS_TRY(ss_layernorm_bwd(&dt[0], &dg, &db, &dfin, &u->tk[u->nblocks], &g, &u->fmean, &u->frstd,
                            &lp, &m->ex, err));
    int cur = 0;
    for (int b = u->nblocks - 1; b >= 0; b--) {
        for (int e = 2; e <= u->s; e++) {
            if (u->enc[e].tap == b) {
                model_add(&dt[cur], &dtap[e], m->plan.nthreads);
            }
        }
        SS_TRY(tblock_bwd(m, &u->blocks[b], &dt[1 - cur], &dt[cur], err));
        cur = 1 - cur;
    }
    return embed_bwd(m, u, &dt[cur], err);
}

static ss_status_t unetr_bwd(ss_model_t *m, const ss_tensor_t *dlogits, ss_error_t *err)
{
    unetr_t *u = m->net;
    ss_tensor_t dskip[MAX_STAGES + 1], dtap[MAX_STAGES + 1], ddec_in;
    SS_TRY(decoders_bwd(m, u, &ddec_in, dskip, dlogits, err));
    SS_TRY(resblock_bwd(m, &u->enc1, NULL, &dskip[1], err));
    for (int e = 2; e <= u->s; e++) {
        SS_TRY(model_tmp_like(m, &dtap[e], &u->fin, err));
        memset(dtap[e].data, 0, ss_tensor_nbytes(&dtap[e]));
        SS_TRY(encoder_bwd(m, u, e, &dtap[e], &dskip[e], err));
    }
    return vit_bwd(m, u, dtap, &ddec_in, err);
}
