// layers.c: the building blocks of the networks, each a thin, slab-aware wrapper over the
// kernels that also registers its parameters and sizes the shared workspace.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "shardseg/act.h"
#include "shardseg/attention.h"
#include "shardseg/layout.h"

#include "model_impl.h"

// A descriptor with shape but no data, for the kernels' workspace-size queries.
static ss_tensor_t shape_only(int ndim, const int64_t *shape)
{
    ss_tensor_t t;
    ss_error_t e;
    ss_tensor_init(&t, SS_F32, ndim, shape, NULL, &e);
    return t;
}

// --- Conv3d --------------------------------------------------------------------------------

ss_status_t conv_init(ss_model_t *m,
                      conv_t *c,
                      const char *prefix,
                      int64_t cin,
                      int64_t cout,
                      int k,
                      int s,
                      int bias,
                      const int64_t in[3],
                      ss_error_t *err)
{
    memset(c, 0, sizeof(*c));
    c->cin = cin;
    c->cout = cout;
    c->p = ss_conv3d_params_cube(k, s, s == 1 ? (k - 1) / 2 : 0);
    // PyTorch's default: kaiming_uniform(a = sqrt(5)) = U(+-1 / sqrt(fan_in)), bias alike.
    double bound = 1.0 / sqrt((double)(cin * k * k * k));
    int64_t ws[5] = {cout, cin, k, k, k};
    SS_TRY(model_param_add(m, &c->w, prefix, "weight", 5, ws, SS_INIT_UNIFORM, bound, err));
    c->b = -1;
    if (bias) {
        SS_TRY(model_param_add(m, &c->b, prefix, "bias", 1, &cout, SS_INIT_UNIFORM, bound, err));
    }
    ss_conv3d_shape_t sh = {m->plan.batch, cin, cout, {in[0], in[1], in[2]}};
    model_need_work(m, ss_conv3d_workspace_size(&c->p, &sh, m->plan.nthreads));
    return SS_OK;
}

ss_status_t
conv_fwd(ss_model_t *m, conv_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    int64_t ys[5];
    SS_TRY(ss_conv3d_out_shape(ys, x->shape, c->cout, &c->p, err));
    SS_TRY(ss_tensor_alloc(y, SS_F32, 5, ys, m->act, err));
    return conv_fwd_into(m, c, y, x, err);
}

ss_status_t
conv_fwd_into(ss_model_t *m, conv_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    ss_tensor_t w = model_w(m, c->w), b;
    if (c->b >= 0) {
        b = model_w(m, c->b);
    }
    SS_TRY(ss_conv3d_fwd(y, x, &w, c->b >= 0 ? &b : NULL, &c->p, &m->ex, err));
    c->x = *x;
    return SS_OK;
}

ss_status_t
conv_bwd(ss_model_t *m, conv_t *c, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err)
{
    ss_tensor_t w = model_w(m, c->w), dw = model_g(m, c->w), db;
    if (dx != NULL) {
        SS_TRY(ss_conv3d_bwd_data(dx, dy, &w, &c->p, &m->ex, err));
    }
    if (c->b >= 0) {
        db = model_g(m, c->b);
    }
    return ss_conv3d_bwd_weight(&dw, c->b >= 0 ? &db : NULL, &c->x, dy, &c->p, &m->ex, err);
}

// --- ConvTranspose3d, kernel = stride = 2 ----------------------------------------------------

static const ss_convt3d_params_t g_up2 = {{2, 2, 2}};

ss_status_t convt_init(ss_model_t *m,
                       convt_t *c,
                       const char *prefix,
                       int64_t cin,
                       int64_t cout,
                       int bias,
                       const int64_t in[3],
                       ss_error_t *err)
{
    memset(c, 0, sizeof(*c));
    c->cin = cin;
    c->cout = cout;
    // PyTorch computes fan_in from weight.size(1) = cout for a transposed conv.
    double bound = 1.0 / sqrt((double)(cout * 8));
    int64_t ws[5] = {cin, cout, 2, 2, 2};
    SS_TRY(model_param_add(m, &c->w, prefix, "weight", 5, ws, SS_INIT_UNIFORM, bound, err));
    c->b = -1;
    if (bias) {
        SS_TRY(model_param_add(m, &c->b, prefix, "bias", 1, &cout, SS_INIT_UNIFORM, bound, err));
    }
    int64_t xs[5] = {m->plan.batch, cin, in[0], in[1], in[2]};
    ss_tensor_t xd = shape_only(5, xs), wd = shape_only(5, ws);
    model_need_work(m, ss_convt3d_workspace_size(&xd, &wd, &g_up2, m->plan.nthreads));
    return SS_OK;
}

static ss_status_t
convt_run(ss_model_t *m, convt_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    ss_tensor_t w = model_w(m, c->w), b;
    if (c->b >= 0) {
        b = model_w(m, c->b);
    }
    SS_TRY(ss_convt3d_fwd(y, x, &w, c->b >= 0 ? &b : NULL, &g_up2, &m->ex, err));
    c->x = *x;
    return SS_OK;
}

ss_status_t
convt_fwd(ss_model_t *m, convt_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    int64_t e[3] = {2 * x->shape[2], 2 * x->shape[3], 2 * x->shape[4]};
    SS_TRY(model_act5(m, y, x->shape[0], c->cout, e, err));
    return convt_run(m, c, y, x, err);
}

ss_status_t upsample_concat(ss_model_t *m,
                            convt_t *c,
                            ss_tensor_t *cat,
                            const ss_tensor_t *x,
                            const ss_tensor_t *skip,
                            ss_error_t *err)
{
    int64_t n = x->shape[0], e[3] = {2 * x->shape[2], 2 * x->shape[3], 2 * x->shape[4]};
    int64_t vol = e[0] * e[1] * e[2], cs = skip->shape[1];
    SS_TRY(model_act5(m, cat, n, c->cout + cs, e, err));
    ss_tensor_t up;
    if (n == 1) {
        // One sample: the upsampled channels are the first block of cat, so the transposed
        // convolution writes there directly and only the skip is copied.
        int64_t us[5] = {1, c->cout, e[0], e[1], e[2]};
        SS_TRY(ss_tensor_init(&up, SS_F32, 5, us, cat->data, err));
        SS_TRY(convt_run(m, c, &up, x, err));
        memcpy(ss_tensor_f32(cat) + c->cout * vol, skip->data, (size_t)(cs * vol) * sizeof(float));
        return SS_OK;
    }
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    SS_TRY(model_tmp5(m, &up, n, c->cout, e, err));
    SS_TRY(convt_run(m, c, &up, x, err));
    SS_TRY(ss_layout_concat_fwd(cat, &up, skip, &m->ex, err));
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

ss_status_t
convt_bwd(ss_model_t *m, convt_t *c, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err)
{
    ss_tensor_t w = model_w(m, c->w), dw = model_g(m, c->w), db;
    if (dx != NULL) {
        SS_TRY(ss_convt3d_bwd_data(dx, dy, &w, &g_up2, &m->ex, err));
    }
    if (c->b >= 0) {
        db = model_g(m, c->b);
    }
    return ss_convt3d_bwd_weight(&dw, c->b >= 0 ? &db : NULL, &c->x, dy, &g_up2, &m->ex, err);
}

// --- Instance / batch norm -------------------------------------------------------------------

static const ss_instnorm_params_t g_inorm = {0, 1e-5f};

ss_status_t norm_init(ss_model_t *m,
                      norm_t *nm,
                      const char *prefix,
                      int64_t c,
                      int affine,
                      int batch,
                      const int64_t in[3],
                      ss_error_t *err)
{
    memset(nm, 0, sizeof(*nm));
    nm->c = c;
    nm->batch = batch;
    nm->gamma = nm->beta = nm->rmean = nm->rvar = nm->nbt = -1;
    if (affine || batch) {
        SS_TRY(model_param_add(m, &nm->gamma, prefix, "weight", 1, &c, SS_INIT_ONE, 0, err));
        SS_TRY(model_param_add(m, &nm->beta, prefix, "bias", 1, &c, SS_INIT_ZERO, 0, err));
    }
    if (batch) {
        int64_t one = 1;
        SS_TRY(model_param_add(m, &nm->rmean, prefix, "running_mean", 1, &c, SS_INIT_ZERO, 0, err));
        SS_TRY(model_param_add(m, &nm->rvar, prefix, "running_var", 1, &c, SS_INIT_ONE, 0, err));
        SS_TRY(model_param_add(m, &nm->nbt, prefix, "num_batches_tracked", 0, &one, SS_INIT_ZERO, 0,
                               err));
        m->params[nm->rmean].trainable = 0;
        m->params[nm->rvar].trainable = 0;
        m->params[nm->nbt].trainable = 0;
    }
    int64_t xs[5] = {m->plan.batch, c, in[0], in[1], in[2]};
    ss_tensor_t xd = shape_only(5, xs);
    model_need_work(m, ss_instnorm_workspace_size(&xd, &g_inorm));
    return SS_OK;
}

// BatchNorm: per-channel moments over the batch (merged in n order), copied to every n so the
// instance-norm apply stage normalises with them; then PyTorch's running-statistics update
// (momentum 0.1, unbiased variance).
static void batch_moments(ss_model_t *m, norm_t *nm, ss_norm_moments_t *st, int64_t n)
{
    int64_t c = nm->c;
    for (int64_t i = 1; i < n; i++) {
        ss_norm_moments_merge(st, st + i * c, c);
    }
    for (int64_t i = 1; i < n; i++) {
        memcpy(st + i * c, st, (size_t)c * sizeof(*st));
    }
    float *rm = m->w + m->params[nm->rmean].offset, *rv = m->w + m->params[nm->rvar].offset;
    for (int64_t j = 0; j < c; j++) {
        double unbiased = st[j].count > 1 ? st[j].m2 / (st[j].count - 1) : 0.0;
        rm[j] = (float)(0.9 * rm[j] + 0.1 * st[j].mean);
        rv[j] = (float)(0.9 * rv[j] + 0.1 * unbiased);
    }
    m->w[m->params[nm->nbt].offset] += 1.0f;
}

// BatchNorm in eval mode normalises with the running statistics.
static void running_moments(const ss_model_t *m, const norm_t *nm, ss_norm_moments_t *st, int64_t n)
{
    const float *rm = m->w + m->params[nm->rmean].offset, *rv = m->w + m->params[nm->rvar].offset;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < nm->c; j++) {
            ss_norm_moments_t mo = {1.0, rm[j], rv[j]};
            st[i * nm->c + j] = mo;
        }
    }
}

ss_status_t norm_act_fwd(ss_model_t *m,
                         norm_t *nm,
                         ss_tensor_t *y,
                         const ss_tensor_t *x,
                         const ss_tensor_t *res,
                         ss_norm_act_t act,
                         float slope,
                         ss_error_t *err)
{
    int64_t n = x->shape[0], nc = n * nm->c;
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    ss_norm_moments_t *st;
    SS_TRY(ss_arena_alloc(m->tmp, (size_t)nc * sizeof(*st), (void **)&st, err));
    if (nm->batch && !m->plan.training) {
        running_moments(m, nm, st, n);
    } else {
        SS_TRY(ss_instnorm_stats_partial(st, x, &g_inorm, &m->ex, err));
        SS_TRY(ss_seq_merge_moments(m->plan.seq, st, nc, err));
        if (nm->batch) {
            batch_moments(m, nm, st, n);
        }
    }
    int64_t ms[2] = {n, nm->c};
    SS_TRY(ss_tensor_alloc(&nm->mean, SS_F32, 2, ms, m->act, err));
    SS_TRY(ss_tensor_alloc(&nm->rstd, SS_F32, 2, ms, m->act, err));
    if (m->plan.training) {
        SS_TRY(model_act_like(m, y, x, err));
    } else {
        *y = *x; // inference: normalise in place, every caller's x is a conv output read only here
    }
    ss_tensor_t g, b;
    if (nm->gamma >= 0) {
        g = model_w(m, nm->gamma);
        b = model_w(m, nm->beta);
    }
    ss_instnorm_epilogue_t e = {res, act, slope};
    SS_TRY(ss_instnorm_fwd_apply_act(y, &nm->mean, &nm->rstd, x, nm->gamma >= 0 ? &g : NULL,
                                     nm->gamma >= 0 ? &b : NULL, st, &g_inorm, &e, &m->ex, err));
    nm->x = *x;
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

ss_status_t
norm_fwd(ss_model_t *m, norm_t *nm, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    return norm_act_fwd(m, nm, y, x, NULL, SS_NORM_ACT_NONE, 0.0f, err);
}

// BatchNorm backward: the per-(n, c) sums are summed over n and shared by every n.
static void batch_sums(double *sums, int64_t n, int64_t c)
{
    for (int64_t i = 1; i < n; i++) {
        for (int64_t j = 0; j < 3 * c; j++) {
            sums[j] += sums[i * 3 * c + j];
        }
    }
    for (int64_t i = 1; i < n; i++) {
        memcpy(sums + i * 3 * c, sums, (size_t)(3 * c) * sizeof(double));
    }
}

ss_status_t
norm_bwd(ss_model_t *m, norm_t *nm, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err)
{
    int64_t n = dy->shape[0];
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    double *sums;
    SS_TRY(ss_arena_alloc(m->tmp, (size_t)(3 * n * nm->c) * sizeof(double), (void **)&sums, err));
    ss_tensor_t g, dg, db;
    if (nm->gamma >= 0) {
        g = model_w(m, nm->gamma);
        dg = model_g(m, nm->gamma);
        db = model_g(m, nm->beta);
    }
    int aff = nm->gamma >= 0;
    SS_TRY(ss_instnorm_bwd_partial(sums, aff ? &dg : NULL, aff ? &db : NULL, dy, &nm->x, &nm->mean,
                                   &nm->rstd, &g_inorm, &m->ex, err));
    if (nm->batch) {
        batch_sums(sums, n, nm->c);
    }
    SS_TRY(ss_seq_allreduce_sum(m->plan.seq, sums, (size_t)(3 * n * nm->c), err));
    SS_TRY(ss_instnorm_bwd_apply(dx, dy, &nm->x, aff ? &g : NULL, &nm->mean, &nm->rstd, sums,
                                 &g_inorm, &m->ex, err));
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

// --- activations ---------------------------------------------------------------------------

ss_status_t
act_bwd(ss_model_t *m, ss_tensor_t *dy, const ss_tensor_t *y, float slope, ss_error_t *err)
{
    // With slope > 0 the output has the input's sign, so y serves as x for the leaky backward.
    if (slope == 0.0f) {
        return ss_relu_bwd(dy, dy, y, &m->ex, err);
    }
    return ss_leaky_relu_bwd(dy, dy, y, slope, &m->ex, err);
}

// --- UnetResBlock ----------------------------------------------------------------------------

static const float g_lrelu = 0.01f;

ss_status_t resblock_init(ss_model_t *m,
                          resblock_t *r,
                          const char *prefix,
                          int64_t cin,
                          int64_t cout,
                          const int64_t in[3],
                          ss_error_t *err)
{
    char name[SS_PARAM_NAME_MAX];
    memset(r, 0, sizeof(*r));
    r->down = cin != cout;
    snprintf(name, sizeof(name), "%s.conv1.conv", prefix);
    SS_TRY(conv_init(m, &r->conv1, name, cin, cout, 3, 1, 0, in, err));
    snprintf(name, sizeof(name), "%s.conv2.conv", prefix);
    SS_TRY(conv_init(m, &r->conv2, name, cout, cout, 3, 1, 0, in, err));
    if (r->down) {
        snprintf(name, sizeof(name), "%s.conv3.conv", prefix);
        SS_TRY(conv_init(m, &r->conv3, name, cin, cout, 1, 1, 0, in, err));
    }
    SS_TRY(norm_init(m, &r->norm1, prefix, cout, 0, 0, in, err));
    SS_TRY(norm_init(m, &r->norm2, prefix, cout, 0, 0, in, err));
    if (r->down) {
        SS_TRY(norm_init(m, &r->norm3, prefix, cout, 0, 0, in, err));
    }
    return SS_OK;
}

// The block. out: NULL (allocated here), or (inference) the caller's tensor for conv2's output,
// where norm2 then works in place and the block's result is; the other temporaries die on
// return.
static ss_status_t resblock_run(ss_model_t *m,
                                resblock_t *r,
                                ss_tensor_t *y,
                                const ss_tensor_t *x,
                                const ss_tensor_t *out,
                                ss_error_t *err)
{
    ss_tensor_t h1, a1, h2, s;
    ss_arena_mark_t mark = ss_arena_mark(m->act);
    SS_TRY(conv_fwd(m, &r->conv1, &h1, x, err));
    SS_TRY(norm_act_fwd(m, &r->norm1, &a1, &h1, NULL, SS_NORM_ACT_LEAKY, g_lrelu, err));
    if (out != NULL) {
        h2 = *out;
        SS_TRY(conv_fwd_into(m, &r->conv2, &h2, &a1, err));
    } else {
        SS_TRY(conv_fwd(m, &r->conv2, &h2, &a1, err));
    }
    ss_tensor_t res = *x, h3;
    if (r->down) {
        SS_TRY(conv_fwd(m, &r->conv3, &h3, x, err));
        SS_TRY(norm_fwd(m, &r->norm3, &res, &h3, err));
    }
    SS_TRY(norm_act_fwd(m, &r->norm2, &s, &h2, &res, SS_NORM_ACT_LEAKY, g_lrelu, err));
    if (out != NULL) {
        ss_arena_rewind(m->act, mark);
    }
    r->a1 = a1;
    r->out = s;
    *y = s;
    return SS_OK;
}

ss_status_t resblock_fwd_into(
    ss_model_t *m, resblock_t *r, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    ss_tensor_t out = *y;
    return resblock_run(m, r, y, x, &out, err);
}

ss_status_t
resblock_fwd(ss_model_t *m, resblock_t *r, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    if (m->plan.training) {
        return resblock_run(m, r, y, x, NULL, err);
    }
    SS_TRY(model_act5(m, y, x->shape[0], r->conv2.cout, x->shape + 2, err));
    return resblock_fwd_into(m, r, y, x, err);
}

// The residual branch's gradient: through conv3/norm3, or the identity. Overwrites dx.
static ss_status_t resblock_bwd_skip(
    ss_model_t *m, resblock_t *r, ss_tensor_t *dx, const ss_tensor_t *ds, ss_error_t *err)
{
    if (!r->down) {
        if (dx != NULL) {
            memcpy(dx->data, ds->data, ss_tensor_nbytes(ds));
        }
        return SS_OK;
    }
    ss_tensor_t dh3;
    SS_TRY(model_tmp_like(m, &dh3, ds, err));
    SS_TRY(norm_bwd(m, &r->norm3, &dh3, ds, err));
    return conv_bwd(m, &r->conv3, dx, &dh3, err);
}

ss_status_t
resblock_bwd(ss_model_t *m, resblock_t *r, ss_tensor_t *dx, ss_tensor_t *dy, ss_error_t *err)
{
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    ss_tensor_t *ds = dy, da1; // dy is consumed in place
    SS_TRY(act_bwd(m, ds, &r->out, g_lrelu, err));
    SS_TRY(resblock_bwd_skip(m, r, dx, ds, err));
    SS_TRY(norm_bwd(m, &r->norm2, ds, ds, err));
    SS_TRY(model_tmp_like(m, &da1, &r->a1, err));
    SS_TRY(conv_bwd(m, &r->conv2, &da1, ds, err));
    SS_TRY(act_bwd(m, &da1, &r->a1, g_lrelu, err));
    SS_TRY(norm_bwd(m, &r->norm1, &da1, &da1, err));
    if (dx != NULL) {
        ss_tensor_t t;
        SS_TRY(model_tmp_like(m, &t, dx, err));
        SS_TRY(conv_bwd(m, &r->conv1, &t, &da1, err));
        model_add(dx, &t, m->plan.nthreads);
    } else {
        SS_TRY(conv_bwd(m, &r->conv1, NULL, &da1, err));
    }
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

// --- transformer block -----------------------------------------------------------------------

static const ss_layernorm_params_t g_lnorm = {1e-5f};

ss_status_t tblock_init(ss_model_t *m,
                        tblock_t *t,
                        const char *prefix,
                        int64_t hidden,
                        int64_t mlp,
                        int64_t heads,
                        int qkv_bias,
                        int64_t batch,
                        int64_t tokens,
                        ss_error_t *err)
{
    char name[SS_PARAM_NAME_MAX];
    memset(t, 0, sizeof(*t));
    t->hidden = hidden;
    t->mlp = mlp;
    t->heads = heads;
    int64_t h3 = 3 * hidden, wq[2] = {h3, hidden}, wo[2] = {hidden, hidden};
    int64_t w1[2] = {mlp, hidden}, w2[2] = {hidden, mlp};
    // MONAI's transformer Linear layers keep PyTorch's default init, U(+-1/sqrt(in)) for weight
    // and bias (only the position embeddings get trunc_normal(0.02)); LayerNorm weight 1, bias 0.
    double bh = 1.0 / sqrt((double)hidden), bm = 1.0 / sqrt((double)mlp);
    snprintf(name, sizeof(name), "%s.norm1", prefix);
    SS_TRY(model_param_add(m, &t->ln1_w, name, "weight", 1, &hidden, SS_INIT_ONE, 0, err));
    SS_TRY(model_param_add(m, &t->ln1_b, name, "bias", 1, &hidden, SS_INIT_ZERO, 0, err));
    snprintf(name, sizeof(name), "%s.attn.qkv", prefix);
    SS_TRY(model_param_add(m, &t->qkv_w, name, "weight", 2, wq, SS_INIT_UNIFORM, bh, err));
    t->qkv_b = -1;
    if (qkv_bias) {
        SS_TRY(model_param_add(m, &t->qkv_b, name, "bias", 1, &h3, SS_INIT_UNIFORM, bh, err));
    }
    snprintf(name, sizeof(name), "%s.attn.out_proj", prefix);
    SS_TRY(model_param_add(m, &t->proj_w, name, "weight", 2, wo, SS_INIT_UNIFORM, bh, err));
    SS_TRY(model_param_add(m, &t->proj_b, name, "bias", 1, &hidden, SS_INIT_UNIFORM, bh, err));
    snprintf(name, sizeof(name), "%s.norm2", prefix);
    SS_TRY(model_param_add(m, &t->ln2_w, name, "weight", 1, &hidden, SS_INIT_ONE, 0, err));
    SS_TRY(model_param_add(m, &t->ln2_b, name, "bias", 1, &hidden, SS_INIT_ZERO, 0, err));
    snprintf(name, sizeof(name), "%s.mlp.linear1", prefix);
    SS_TRY(model_param_add(m, &t->fc1_w, name, "weight", 2, w1, SS_INIT_UNIFORM, bh, err));
    SS_TRY(model_param_add(m, &t->fc1_b, name, "bias", 1, &mlp, SS_INIT_UNIFORM, bh, err));
    snprintf(name, sizeof(name), "%s.mlp.linear2", prefix);
    SS_TRY(model_param_add(m, &t->fc2_w, name, "weight", 2, w2, SS_INIT_UNIFORM, bm, err));
    SS_TRY(model_param_add(m, &t->fc2_b, name, "bias", 1, &hidden, SS_INIT_UNIFORM, bm, err));
    int64_t xs[2] = {batch * tokens, hidden};
    ss_tensor_t xd = shape_only(2, xs);
    ss_attention_params_t ap = {0};
    model_need_work(m, ss_layernorm_workspace_size(&xd));
    model_need_work(m, ss_attention_workspace_size(batch, tokens, heads, &ap, m->plan.nthreads));
    int64_t rows = batch * tokens, widest = mlp > 3 * hidden ? mlp : 3 * hidden;
    model_need_work(m, ss_linear_workspace_size(rows, widest, widest, m->plan.nthreads));
    return SS_OK;
}

// Q, K or V (which = 0, 1, 2) of a fused [B][T][3][H][D] buffer as a (B, T, H, D) view.
static ss_tensor_t qkv_view(const ss_tensor_t *qkv, int which, int64_t heads)
{
    ss_tensor_t v = *qkv;
    int64_t b = qkv->shape[0], t = qkv->shape[1], row = qkv->shape[2], d = row / 3 / heads;
    v.ndim = 4;
    v.shape[0] = b, v.shape[1] = t, v.shape[2] = heads, v.shape[3] = d;
    v.stride[0] = t * row, v.stride[1] = row, v.stride[2] = d, v.stride[3] = 1;
    v.data = ss_tensor_f32(qkv) + which * heads * d;
    v.view_of = qkv;
    return v;
}

// A [batch][tokens][c] token tensor from arena a.
static ss_status_t
tokens3(ss_tensor_t *t, const ss_tensor_t *like, int64_t c, ss_arena_t *a, ss_error_t *err)
{
    int64_t s[3] = {like->shape[0], like->shape[1], c};
    return ss_tensor_alloc(t, SS_F32, 3, s, a, err);
}

static ss_status_t
tblock_attn_fwd(ss_model_t *m, tblock_t *t, const ss_tensor_t *x, ss_error_t *err)
{
    int64_t b = x->shape[0], n = x->shape[1], r = b * n, hd = t->hidden;
    ss_tensor_t w, bias;
    SS_TRY(tokens3(&t->a1, x, hd, m->act, err));
    SS_TRY(ss_tensor_alloc(&t->mean1, SS_F32, 1, &r, m->act, err));
    SS_TRY(ss_tensor_alloc(&t->rstd1, SS_F32, 1, &r, m->act, err));
    ss_tensor_t g = model_w(m, t->ln1_w), be = model_w(m, t->ln1_b);
    SS_TRY(ss_layernorm_fwd(&t->a1, &t->mean1, &t->rstd1, x, &g, &be, &g_lnorm, &m->ex, err));
    int64_t qs[3] = {b, n, 3 * hd}, os[3] = {b, n, hd}, ls[3] = {b, t->heads, n};
    SS_TRY(ss_tensor_alloc(&t->qkv, SS_F32, 3, qs, m->act, err));
    w = model_w(m, t->qkv_w);
    if (t->qkv_b >= 0) {
        bias = model_w(m, t->qkv_b);
    }
    SS_TRY(ss_linear_fwd(&t->qkv, &t->a1, &w, t->qkv_b >= 0 ? &bias : NULL, &m->ex, err));
    SS_TRY(ss_tensor_alloc(&t->o, SS_F32, 3, os, m->act, err));
    SS_TRY(ss_tensor_alloc(&t->lse, SS_F32, 3, ls, m->act, err));
    ss_tensor_t q = qkv_view(&t->qkv, 0, t->heads), k = qkv_view(&t->qkv, 1, t->heads);
    ss_tensor_t v = qkv_view(&t->qkv, 2, t->heads), o4 = qkv_view(&t->qkv, 0, t->heads);
    o4.data = t->o.data;
    o4.stride[0] = n * hd, o4.stride[1] = hd;
    ss_attention_params_t ap = {0};
    SS_TRY(ss_seq_attention_fwd(m->plan.seq, &o4, &t->lse, &q, &k, &v, &ap, &m->ex, err));
    SS_TRY(ss_tensor_alloc(&t->x1, SS_F32, 3, os, m->act, err));
    w = model_w(m, t->proj_w);
    bias = model_w(m, t->proj_b);
    SS_TRY(ss_linear_fwd(&t->x1, &t->o, &w, &bias, &m->ex, err));
    model_add(&t->x1, x, m->plan.nthreads);
    return SS_OK;
}

ss_status_t
tblock_fwd(ss_model_t *m, tblock_t *t, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    int64_t r = x->shape[0] * x->shape[1];
    t->x0 = *x;
    SS_TRY(tblock_attn_fwd(m, t, x, err));
    SS_TRY(tokens3(&t->a2, x, t->hidden, m->act, err));
    SS_TRY(ss_tensor_alloc(&t->mean2, SS_F32, 1, &r, m->act, err));
    SS_TRY(ss_tensor_alloc(&t->rstd2, SS_F32, 1, &r, m->act, err));
    ss_tensor_t g = model_w(m, t->ln2_w), be = model_w(m, t->ln2_b);
    SS_TRY(ss_layernorm_fwd(&t->a2, &t->mean2, &t->rstd2, &t->x1, &g, &be, &g_lnorm, &m->ex, err));
    SS_TRY(tokens3(&t->h1, x, t->mlp, m->act, err));
    SS_TRY(tokens3(&t->h2, x, t->mlp, m->act, err));
    ss_tensor_t w = model_w(m, t->fc1_w), b = model_w(m, t->fc1_b);
    SS_TRY(ss_linear_fwd(&t->h1, &t->a2, &w, &b, &m->ex, err));
    SS_TRY(ss_gelu_fwd(&t->h2, &t->h1, SS_GELU_ERF, &m->ex, err));
    SS_TRY(ss_tensor_alloc(y, SS_F32, 3, x->shape, m->act, err));
    w = model_w(m, t->fc2_w);
    b = model_w(m, t->fc2_b);
    SS_TRY(ss_linear_fwd(y, &t->h2, &w, &b, &m->ex, err));
    model_add(y, &t->x1, m->plan.nthreads);
    return SS_OK;
}

// MLP half: dy -> dx1 (gradient at the attention residual's output), allocated by the caller.
static ss_status_t
tblock_mlp_bwd(ss_model_t *m, tblock_t *t, ss_tensor_t *dx1, const ss_tensor_t *dy, ss_error_t *err)
{
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    ss_tensor_t dh, da2, w, dw, db, g, dg, dbe;
    SS_TRY(tokens3(&dh, dy, t->mlp, m->tmp, err));
    SS_TRY(tokens3(&da2, dy, t->hidden, m->tmp, err));
    const ss_tensor_t *dy2 = dy;
    w = model_w(m, t->fc2_w), dw = model_g(m, t->fc2_w), db = model_g(m, t->fc2_b);
    SS_TRY(ss_linear_bwd_data(&dh, dy2, &w, 0.0f, &m->ex, err));
    SS_TRY(ss_linear_bwd_weight(&dw, &db, dy2, &t->h2, 0.0f, &m->ex, err));
    SS_TRY(ss_gelu_bwd(&dh, &dh, &t->h1, SS_GELU_ERF, &m->ex, err));
    w = model_w(m, t->fc1_w), dw = model_g(m, t->fc1_w), db = model_g(m, t->fc1_b);
    SS_TRY(ss_linear_bwd_data(&da2, &dh, &w, 0.0f, &m->ex, err));
    SS_TRY(ss_linear_bwd_weight(&dw, &db, &dh, &t->a2, 0.0f, &m->ex, err));
    g = model_w(m, t->ln2_w), dg = model_g(m, t->ln2_w), dbe = model_g(m, t->ln2_b);
    SS_TRY(ss_layernorm_bwd(dx1, &dg, &dbe, &da2, &t->x1, &g, &t->mean2, &t->rstd2, &g_lnorm,
                            &m->ex, err));
    model_add(dx1, dy, m->plan.nthreads);
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}

ss_status_t
tblock_bwd(ss_model_t *m, tblock_t *t, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err)
{
    int64_t n = dy->shape[1], hd = t->hidden;
    ss_arena_mark_t mark = ss_arena_mark(m->tmp);
    ss_tensor_t dx1, dout, dqkv, da1, w, dw, db;
    SS_TRY(ss_tensor_alloc(&dx1, SS_F32, 3, dy->shape, m->tmp, err));
    SS_TRY(tblock_mlp_bwd(m, t, &dx1, dy, err));
    SS_TRY(ss_tensor_alloc(&dout, SS_F32, 3, dy->shape, m->tmp, err));
    w = model_w(m, t->proj_w), dw = model_g(m, t->proj_w), db = model_g(m, t->proj_b);
    SS_TRY(ss_linear_bwd_data(&dout, &dx1, &w, 0.0f, &m->ex, err));
    SS_TRY(ss_linear_bwd_weight(&dw, &db, &dx1, &t->o, 0.0f, &m->ex, err));
    SS_TRY(ss_tensor_alloc(&dqkv, SS_F32, 3, t->qkv.shape, m->tmp, err));
    ss_tensor_t q = qkv_view(&t->qkv, 0, t->heads), k = qkv_view(&t->qkv, 1, t->heads);
    ss_tensor_t v = qkv_view(&t->qkv, 2, t->heads);
    ss_tensor_t dq = qkv_view(&dqkv, 0, t->heads), dk = qkv_view(&dqkv, 1, t->heads);
    ss_tensor_t dv = qkv_view(&dqkv, 2, t->heads), o4 = q, do4 = q;
    o4.data = t->o.data, do4.data = dout.data;
    o4.stride[0] = do4.stride[0] = n * hd;
    o4.stride[1] = do4.stride[1] = hd;
    ss_attention_params_t ap = {0};
    SS_TRY(ss_seq_attention_bwd(m->plan.seq, &dq, &dk, &dv, &q, &k, &v, &o4, &do4, &t->lse, &ap,
                                &m->ex, err));
    SS_TRY(tokens3(&da1, dy, hd, m->tmp, err));
    w = model_w(m, t->qkv_w), dw = model_g(m, t->qkv_w);
    if (t->qkv_b >= 0) {
        db = model_g(m, t->qkv_b);
    }
    SS_TRY(ss_linear_bwd_data(&da1, &dqkv, &w, 0.0f, &m->ex, err));
    SS_TRY(ss_linear_bwd_weight(&dw, t->qkv_b >= 0 ? &db : NULL, &dqkv, &t->a1, 0.0f, &m->ex, err));
    ss_tensor_t g = model_w(m, t->ln1_w), dg = model_g(m, t->ln1_w), dbe = model_g(m, t->ln1_b);
    SS_TRY(ss_layernorm_bwd(dx, &dg, &dbe, &da1, &t->x0, &g, &t->mean1, &t->rstd1, &g_lnorm, &m->ex,
                            err));
    model_add(dx, &dx1, m->plan.nthreads);
    ss_arena_rewind(m->tmp, mark);
    return SS_OK;
}
