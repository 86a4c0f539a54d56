// model.c: configuration, parameter registry, memory and the forward/backward entry points.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/rng.h"

#include "model_impl.h"

void ss_model_config_default(ss_model_config_t *c, ss_model_kind_t kind)
{
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->in_channels = 4;
    c->out_channels = 3;
    for (int d = 0; d < 3; d++) {
        c->img_size[d] = 128;
        c->patch_size[d] = 16;
    }
    c->feature_size = 16;
    c->hidden_size = 768;
    c->mlp_dim = 3072;
    c->num_heads = 12;
    c->num_layers = 12;
    c->qkv_bias = 0;
    c->res_block = 1;
    c->conv_block = 1;
    c->dropout_rate = 0.0;
    c->depth = 4;
    c->base_filters = 16;
    c->convs_per_level = 2;
    c->norm = SS_MODEL_NORM_INSTANCE;
}

const char *ss_model_kind_name(ss_model_kind_t kind)
{
    return kind == SS_MODEL_UNET3D ? "unet3d" : "unetr";
}

ss_status_t
ss_model_kind_parse(const char *s, const char *what, ss_model_kind_t *out, ss_error_t *err)
{
    if (s != NULL && strcmp(s, "unetr") == 0) {
        *out = SS_MODEL_UNETR;
    } else if (s != NULL && strcmp(s, "unet3d") == 0) {
        *out = SS_MODEL_UNET3D;
    } else {
        SS_FAIL(err, SS_EINVAL, "%s: unknown model '%s'; use unetr or unet3d", what, s ? s : "");
    }
    return SS_OK;
}

int64_t ss_model_slab_quantum(const ss_model_config_t *c)
{
    return c->kind == SS_MODEL_UNETR ? c->patch_size[0] : (int64_t)1 << (c->depth - 1);
}

static ss_status_t check_positive(const char *name, int64_t v, ss_error_t *err)
{
    if (v < 1) {
        SS_FAIL(err, SS_EINVAL, "%s: %lld must be at least 1; fix the model configuration", name,
                (long long)v);
    }
    return SS_OK;
}

static ss_status_t validate_unetr(const ss_model_config_t *c, ss_error_t *err)
{
    int64_t p = c->patch_size[0];
    if (p != c->patch_size[1] || p != c->patch_size[2] || (p != 4 && p != 8 && p != 16)) {
        SS_FAIL(err, SS_EINVAL,
                "patch_size: %lldx%lldx%lld is not supported; use 16, 8 or 4 in all "
                "three dimensions",
                (long long)c->patch_size[0], (long long)c->patch_size[1],
                (long long)c->patch_size[2]);
    }
    for (int d = 0; d < 3; d++) {
        if (c->img_size[d] % p != 0) {
            SS_FAIL(err, SS_EINVAL,
                    "img_size: %lld is not a multiple of patch_size %lld; pick a "
                    "multiple",
                    (long long)c->img_size[d], (long long)p);
        }
    }
    SS_TRY(check_positive("feature_size", c->feature_size, err));
    SS_TRY(check_positive("hidden_size", c->hidden_size, err));
    SS_TRY(check_positive("mlp_dim", c->mlp_dim, err));
    SS_TRY(check_positive("num_heads", c->num_heads, err));
    if (c->hidden_size % c->num_heads != 0) {
        SS_FAIL(err, SS_EINVAL,
                "hidden_size: %lld is not divisible by num_heads %lld; choose a "
                "multiple",
                (long long)c->hidden_size, (long long)c->num_heads);
    }
    if (c->num_layers < 4) {
        SS_FAIL(err, SS_EINVAL,
                "num_layers: %lld is too few; UNETR taps blocks L/4, L/2, 3L/4, "
                "so use at least 4",
                (long long)c->num_layers);
    }
    if (!c->res_block || !c->conv_block) {
        SS_FAIL(err, SS_EUNSUPPORTED,
                "res_block/conv_block: only the MONAI defaults (1, 1) are "
                "built; set both to 1");
    }
    if (c->dropout_rate != 0.0) {
        SS_FAIL(err, SS_EUNSUPPORTED,
                "dropout_rate: %g is not supported yet (attention-weight "
                "dropout is not built); use 0, MONAI's default",
                c->dropout_rate);
    }
    return SS_OK;
}

static ss_status_t validate_unet(const ss_model_config_t *c, ss_error_t *err)
{
    if (c->depth < 2 || c->depth > 7) {
        SS_FAIL(err, SS_EINVAL, "depth: %lld is outside [2, 7]", (long long)c->depth);
    }
    SS_TRY(check_positive("base_filters", c->base_filters, err));
    SS_TRY(check_positive("convs_per_level", c->convs_per_level, err));
    int64_t q = ss_model_slab_quantum(c);
    for (int d = 0; d < 3; d++) {
        if (c->img_size[d] % q != 0) {
            SS_FAIL(err, SS_EINVAL,
                    "img_size: %lld is not a multiple of 2^(depth-1) = %lld; pick "
                    "a multiple",
                    (long long)c->img_size[d], (long long)q);
        }
    }
    return SS_OK;
}

ss_status_t ss_model_config_validate(const ss_model_config_t *c, ss_error_t *err)
{
    SS_TRY(check_positive("in_channels", c->in_channels, err));
    SS_TRY(check_positive("out_channels", c->out_channels, err));
    for (int d = 0; d < 3; d++) {
        SS_TRY(check_positive("img_size", c->img_size[d], err));
    }
    if (c->kind == SS_MODEL_UNETR) {
        return validate_unetr(c, err);
    }
    if (c->kind == SS_MODEL_UNET3D) {
        return validate_unet(c, err);
    }
    SS_FAIL(err, SS_EINVAL, "model: unknown kind %d; use unetr or unet3d", (int)c->kind);
}

// --- registry ----------------------------------------------------------------------------------

ss_status_t model_param_add(ss_model_t *m,
                            int *idx,
                            const char *prefix,
                            const char *suffix,
                            int ndim,
                            const int64_t *shape,
                            ss_init_kind_t init,
                            double scale,
                            ss_error_t *err)
{
    if (m->nparams == m->cap) {
        int cap = m->cap ? 2 * m->cap : 64;
        ss_param_t *p = realloc(m->params, (size_t)cap * sizeof(*p));
        if (p == NULL) {
            SS_FAIL(err, SS_ENOMEM, "model: out of memory for the parameter table");
        }
        m->params = p;
        m->cap = cap;
    }
    ss_param_t *p = &m->params[m->nparams];
    memset(p, 0, sizeof(*p));
    int n = snprintf(p->name, sizeof(p->name), "%s%s%s", prefix, suffix[0] ? "." : "", suffix);
    if (n < 0 || (size_t)n >= sizeof(p->name)) {
        SS_FAIL(err, SS_EINVAL, "model: parameter name %s.%s is too long", prefix, suffix);
    }
    p->ndim = ndim;
    p->numel = 1;
    for (int d = 0; d < ndim; d++) {
        p->shape[d] = shape[d];
        p->numel *= shape[d];
    }
    p->offset = m->numel;
    p->trainable = 1;
    p->init = init;
    p->init_scale = scale;
    // Each parameter starts on a 64-byte line, so kernels see aligned rows.
    m->numel += (p->numel + 15) / 16 * 16;
    *idx = m->nparams++;
    return SS_OK;
}

static ss_tensor_t param_tensor(const ss_model_t *m, float *base, int idx)
{
    const ss_param_t *p = &m->params[idx];
    ss_tensor_t t;
    ss_error_t e;
    ss_tensor_init(&t, SS_F32, p->ndim, p->shape, base + p->offset, &e);
    return t;
}

ss_tensor_t model_w(const ss_model_t *m, int idx)
{
    return param_tensor(m, m->w, idx);
}

ss_tensor_t model_g(const ss_model_t *m, int idx)
{
    return param_tensor(m, m->g, idx);
}

void model_need_work(ss_model_t *m, size_t bytes)
{
    if (bytes > m->work_bytes) {
        m->work_bytes = bytes;
    }
}

static ss_status_t arena_tensor5(
    ss_arena_t *a, ss_tensor_t *t, int64_t n, int64_t c, const int64_t e[3], ss_error_t *err)
{
    int64_t shape[5] = {n, c, e[0], e[1], e[2]};
    return ss_tensor_alloc(t, SS_F32, 5, shape, a, err);
}

ss_status_t
model_act5(ss_model_t *m, ss_tensor_t *t, int64_t n, int64_t c, const int64_t e[3], ss_error_t *err)
{
    return arena_tensor5(m->act, t, n, c, e, err);
}

ss_status_t
model_tmp5(ss_model_t *m, ss_tensor_t *t, int64_t n, int64_t c, const int64_t e[3], ss_error_t *err)
{
    return arena_tensor5(m->tmp, t, n, c, e, err);
}

ss_status_t model_act_like(ss_model_t *m, ss_tensor_t *t, const ss_tensor_t *like, ss_error_t *err)
{
    return ss_tensor_alloc(t, SS_F32, like->ndim, like->shape, m->act, err);
}

ss_status_t model_tmp_like(ss_model_t *m, ss_tensor_t *t, const ss_tensor_t *like, ss_error_t *err)
{
    return ss_tensor_alloc(t, SS_F32, like->ndim, like->shape, m->tmp, err);
}

void model_add(ss_tensor_t *y, const ss_tensor_t *x, int nthreads)
{
    float *restrict yd = ss_tensor_f32(y);
    const float *restrict xd = ss_tensor_f32(x);
    int64_t n = ss_tensor_numel(y);
#pragma omp parallel for num_threads(nthreads) schedule(static) default(none) shared(yd, xd, n)
    for (int64_t i = 0; i < n; i++) {
        yd[i] += xd[i];
    }
}

void model_transpose(float *dst, const float *src, int64_t n, int64_t a, int64_t b, int nthreads)
{
    enum { TB = 32 };
    int64_t ta = (a + TB - 1) / TB, tb = (b + TB - 1) / TB;
#pragma omp parallel for collapse(3) num_threads(nthreads) schedule(static) default(none)          \
    shared(dst, src, n, a, b, ta, tb)
    for (int64_t s = 0; s < n; s++) {
        for (int64_t ia = 0; ia < ta; ia++) {
            for (int64_t ib = 0; ib < tb; ib++) {
                const float *sp = src + s * a * b;
                float *dp = dst + s * a * b;
                int64_t a1 = ia * TB + TB < a ? ia * TB + TB : a;
                int64_t b1 = ib * TB + TB < b ? ib * TB + TB : b;
                for (int64_t i = ia * TB; i < a1; i++) {
                    for (int64_t j = ib * TB; j < b1; j++) {
                        dp[j * a + i] = sp[i * b + j];
                    }
                }
            }
        }
    }
}

// --- create / destroy --------------------------------------------------------------------------

static ss_status_t check_plan(const ss_model_config_t *c, const ss_model_plan_t *p, ss_error_t *err)
{
    int64_t q = ss_model_slab_quantum(c);
    if (p->batch < 1) {
        SS_FAIL(err, SS_EINVAL, "batch: %lld must be at least 1", (long long)p->batch);
    }
    if (p->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "threads: %d must be at least 1", p->nthreads);
    }
    if (p->slab_len < q || p->slab_start < 0 || p->slab_start % q != 0 || p->slab_len % q != 0 ||
        p->slab_start + p->slab_len > c->img_size[0]) {
        SS_FAIL(err, SS_EINVAL,
                "slab [%lld, %lld) of %lld planes: slabs must be non-empty "
                "multiples of %lld planes; use a rank count that divides img_size[0] / %lld",
                (long long)p->slab_start, (long long)(p->slab_start + p->slab_len),
                (long long)c->img_size[0], (long long)q, (long long)q);
    }
    if (ss_seq_size(p->seq) == 1 && p->slab_len != c->img_size[0]) {
        SS_FAIL(err, SS_EINVAL, "slab: one rank must own all %lld planes",
                (long long)c->img_size[0]);
    }
    return SS_OK;
}

static ss_status_t model_alloc(ss_model_t *m, ss_error_t *err)
{
    m->vec_bytes = (size_t)m->numel * sizeof(float);
    SS_TRY(ss_aligned_alloc((void **)&m->w, m->vec_bytes, m->budget, "parameters", err));
    memset(m->w, 0, m->vec_bytes);
    SS_TRY(ss_aligned_alloc((void **)&m->g, m->vec_bytes, m->budget, "gradients", err));
    memset(m->g, 0, m->vec_bytes);
    if (m->work_bytes > 0) {
        SS_TRY(ss_aligned_alloc(&m->work, m->work_bytes, m->budget, "kernel workspace", err));
    }
    m->ex.nthreads = m->plan.nthreads;
    m->ex.work = m->work;
    m->ex.work_bytes = m->work_bytes;
    return SS_OK;
}

ss_status_t ss_model_create(ss_model_t **out,
                            const ss_model_config_t *cfg,
                            const ss_model_plan_t *plan,
                            ss_budget_t *budget,
                            ss_error_t *err)
{
    *out = NULL;
    SS_TRY(ss_model_config_validate(cfg, err));
    SS_TRY(check_plan(cfg, plan, err));
    ss_model_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        SS_FAIL(err, SS_ENOMEM, "model: out of memory");
    }
    m->cfg = *cfg;
    m->plan = *plan;
    m->budget = budget;
    m->ex = ss_exec_serial();
    m->ex.nthreads = plan->nthreads;
    ss_status_t st = ss_arena_create(64u << 20, budget, "activations", &m->act, err);
    if (st == SS_OK) {
        st = ss_arena_create(64u << 20, budget, "backward temporaries", &m->tmp, err);
    }
    if (st == SS_OK) {
        st = cfg->kind == SS_MODEL_UNETR ? unetr_build(m, err) : unet3d_build(m, err);
    }
    if (st == SS_OK) {
        st = model_alloc(m, err);
    }
    if (st != SS_OK) {
        ss_model_destroy(&m);
        return st;
    }
    *out = m;
    return SS_OK;
}

void ss_model_destroy(ss_model_t **pm)
{
    ss_model_t *m = pm ? *pm : NULL;
    if (m == NULL) {
        return;
    }
    if (m->ops != NULL && m->net != NULL) {
        m->ops->destroy(m->net);
    }
    ss_aligned_free(m->w, m->vec_bytes, m->budget);
    ss_aligned_free(m->g, m->vec_bytes, m->budget);
    ss_aligned_free(m->work, m->work_bytes, m->budget);
    ss_arena_destroy(&m->act);
    ss_arena_destroy(&m->tmp);
    free(m->params);
    free(m);
    *pm = NULL;
}

const ss_model_config_t *ss_model_config(const ss_model_t *m)
{
    return &m->cfg;
}

const ss_model_plan_t *ss_model_plan(const ss_model_t *m)
{
    return &m->plan;
}

int ss_model_param_count(const ss_model_t *m)
{
    return m->nparams;
}

const ss_param_t *ss_model_param(const ss_model_t *m, int i)
{
    return i >= 0 && i < m->nparams ? &m->params[i] : NULL;
}

int ss_model_param_find(const ss_model_t *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++) {
        if (strcmp(m->params[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

int64_t ss_model_numel(const ss_model_t *m)
{
    return m->numel;
}

float *ss_model_weights(const ss_model_t *m)
{
    return m->w;
}

float *ss_model_grads(const ss_model_t *m)
{
    return m->g;
}

size_t ss_model_param_bytes(const ss_model_t *m)
{
    return 2 * m->vec_bytes;
}

size_t ss_model_activation_peak(const ss_model_t *m)
{
    return ss_arena_reserved(m->act) + ss_arena_reserved(m->tmp) + m->work_bytes;
}

ss_status_t ss_model_init_weights(ss_model_t *m, uint64_t seed, ss_error_t *err)
{
    (void)err;
    memset(m->w, 0, m->vec_bytes);
    for (int i = 0; i < m->nparams; i++) {
        const ss_param_t *p = &m->params[i];
        float *w = m->w + p->offset;
        // One stream per parameter, keyed by its index: the same values for any rank count.
        uint64_t ids[2] = {0x1417u, (uint64_t)i};
        ss_rng_t r = ss_rng_make(seed, ss_rng_stream(ids, 2));
        float s = (float)p->init_scale;
        switch (p->init) {
        case SS_INIT_ZERO:
            break;
        case SS_INIT_ONE:
            for (int64_t j = 0; j < p->numel; j++) {
                w[j] = 1.0f;
            }
            break;
        case SS_INIT_UNIFORM:
            ss_rng_fill_uniform(r, 0, p->numel, -s, s, w, m->plan.nthreads);
            break;
        case SS_INIT_TRUNC_NORMAL:
            ss_rng_fill_trunc_normal(r, 0, p->numel, 0.0f, s, -2.0f, 2.0f, w, m->plan.nthreads);
            break;
        }
    }
    return SS_OK;
}

static ss_status_t check_input(const ss_model_t *m, const ss_tensor_t *x, ss_error_t *err)
{
    const ss_model_config_t *c = &m->cfg;
    int64_t want[5] = {m->plan.batch, c->in_channels, m->plan.slab_len, c->img_size[1],
                       c->img_size[2]};
    int ok = x->ndim == 5 && ss_tensor_is_contiguous(x);
    for (int d = 0; ok && d < 5; d++) {
        ok = x->shape[d] == want[d];
    }
    if (!ok) {
        char got[96];
        ss_tensor_shape_str(x, got, sizeof(got));
        SS_FAIL(err, SS_ESHAPE,
                "input: shape %s does not match the model's (%lld, %lld, %lld, %lld, "
                "%lld); check in_channels and img_size",
                got, (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3],
                (long long)want[4]);
    }
    return SS_OK;
}

ss_status_t ss_model_forward(ss_model_t *m,
                             ss_tensor_t *logits,
                             const ss_tensor_t *x,
                             const ss_model_step_t *st,
                             ss_error_t *err)
{
    SS_TRY(check_input(m, x, err));
    static const ss_model_step_t zero;
    m->step = st ? st : &zero;
    m->have_forward = 0;
    ss_arena_rewind(m->act, (ss_arena_mark_t){0});
    ss_arena_rewind(m->tmp, (ss_arena_mark_t){0});
    SS_TRY(m->ops->forward(m, logits, x, err));
    m->have_forward = m->plan.training;
    return SS_OK;
}

ss_status_t ss_model_backward(ss_model_t *m, const ss_tensor_t *dlogits, ss_error_t *err)
{
    if (!m->have_forward) {
        SS_FAIL(err, SS_EINVAL,
                "model backward: no training forward to differentiate; run "
                "ss_model_forward with plan.training = 1 first");
    }
    ss_arena_rewind(m->tmp, (ss_arena_mark_t){0});
    SS_TRY(m->ops->backward(m, dlogits, err));
    m->have_forward = 0;
    return SS_OK;
}
