// step.c: one training step (forward, loss, backward, reduction, clipping, optimizer update).
#include "shardseg/step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t begin, end; // [begin, end) of the flat vectors
} run_t;

struct ss_stepper {
    ss_model_t *m;
    ss_step_config_t cfg;
    ss_budget_t *budget;
    ss_optim_state_t ost;
    float *state[2];
    int nstate;
    size_t state_bytes;
    run_t *runs; // maximal ranges of trainable parameters
    int nruns;
    ss_tensor_t dlogits;
    size_t dlogits_bytes;
    void *work;
    size_t work_bytes;
    double *sums, *coef;
};

void ss_step_config_default(ss_step_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->optim = SS_OPTIM_ADAMW;
    c->adam = ss_optim_adamw_defaults();
    c->adam.weight_decay = 1e-5;
    c->sgd = ss_optim_sgd_defaults();
    c->lr.kind = SS_LR_CONSTANT;
    c->lr.lr0 = 1e-4;
    c->lr.warmup_start_factor = 1.0;
    c->lr.gamma = 0.1;
    c->lr.step_size = 1;
    c->lr.t_max = 1;
    c->lr.power = 0.9;
    c->clip_norm = 0.0;
    ss_loss_params_init(&c->loss, SS_LOSS_DICE_CE, SS_LOSS_SIGMOID);
}

const char *ss_optim_kind_name(ss_optim_kind_t k)
{
    return k == SS_OPTIM_SGD ? "sgd" : k == SS_OPTIM_ADAM ? "adam" : "adamw";
}

ss_status_t ss_step_config_validate(const ss_step_config_t *c, ss_error_t *err)
{
    if (c->optim < SS_OPTIM_ADAMW || c->optim > SS_OPTIM_SGD) {
        SS_FAIL(err, SS_EINVAL, "optim.name: unknown optimizer; use adamw, adam or sgd");
    }
    if (c->clip_norm < 0) {
        SS_FAIL(err, SS_EINVAL, "optim.clip_norm: %g is negative; use 0 (off) or a positive norm",
                c->clip_norm);
    }
    SS_TRY(ss_optim_lr_validate(&c->lr, err));
    return ss_loss_params_validate(&c->loss, err);
}

// Trainable parameters are mostly adjacent: merge them (with the zero alignment gaps between)
// into few runs, so the optimizer runs a handful of long loops.
static ss_status_t build_runs(ss_stepper_t *s, ss_error_t *err)
{
    int n = ss_model_param_count(s->m);
    s->runs = calloc((size_t)(n > 0 ? n : 1), sizeof(*s->runs));
    if (s->runs == NULL) {
        SS_FAIL(err, SS_ENOMEM, "stepper: out of memory");
    }
    for (int i = 0; i < n; i++) {
        const ss_param_t *p = ss_model_param(s->m, i);
        if (!p->trainable) {
            continue;
        }
        int64_t end = p->offset + (p->numel + 15) / 16 * 16;
        if (s->nruns > 0 && s->runs[s->nruns - 1].end == p->offset) {
            s->runs[s->nruns - 1].end = end;
        } else {
            s->runs[s->nruns++] = (run_t){p->offset, end};
        }
    }
    return SS_OK;
}

static ss_status_t alloc_buffers(ss_stepper_t *s, ss_error_t *err)
{
    const ss_model_config_t *c = ss_model_config(s->m);
    const ss_model_plan_t *p = ss_model_plan(s->m);
    s->nstate = s->cfg.optim == SS_OPTIM_SGD ? (s->cfg.sgd.momentum > 0 ? 1 : 0) : 2;
    s->state_bytes = (size_t)ss_model_numel(s->m) * sizeof(float);
    for (int i = 0; i < s->nstate; i++) {
        SS_TRY(ss_aligned_alloc((void **)&s->state[i], s->state_bytes, s->budget, "optimizer state",
                                err));
        memset(s->state[i], 0, s->state_bytes);
    }
    int64_t shape[5] = {p->batch, c->out_channels, p->slab_len, c->img_size[1], c->img_size[2]};
    SS_TRY(ss_tensor_init(&s->dlogits, SS_F32, 5, shape, NULL, err));
    s->dlogits_bytes = ss_tensor_nbytes(&s->dlogits);
    SS_TRY(ss_aligned_alloc(&s->dlogits.data, s->dlogits_bytes, s->budget, "logit gradients", err));
    s->work_bytes = ss_loss_workspace_size(&s->dlogits, p->nthreads);
    if (s->work_bytes > 0) {
        SS_TRY(ss_aligned_alloc(&s->work, s->work_bytes, s->budget, "loss workspace", err));
    }
    s->sums = calloc(ss_loss_sums_len(p->batch, c->out_channels), sizeof(double));
    s->coef = calloc(ss_loss_coef_len(p->batch, c->out_channels), sizeof(double));
    if (s->sums == NULL || s->coef == NULL) {
        SS_FAIL(err, SS_ENOMEM, "stepper: out of memory");
    }
    return SS_OK;
}

ss_status_t ss_stepper_create(ss_stepper_t **out,
                              ss_model_t *m,
                              const ss_step_config_t *c,
                              ss_budget_t *budget,
                              ss_error_t *err)
{
    *out = NULL;
    SS_TRY(ss_step_config_validate(c, err));
    ss_stepper_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        SS_FAIL(err, SS_ENOMEM, "stepper: out of memory");
    }
    s->m = m;
    s->cfg = *c;
    s->budget = budget;
    ss_status_t st = build_runs(s, err);
    if (st == SS_OK) {
        st = alloc_buffers(s, err);
    }
    if (st != SS_OK) {
        ss_stepper_destroy(&s);
        return st;
    }
    *out = s;
    return SS_OK;
}

void ss_stepper_destroy(ss_stepper_t **ps)
{
    ss_stepper_t *s = ps ? *ps : NULL;
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        ss_aligned_free(s->state[i], s->state_bytes, s->budget);
    }
    ss_aligned_free(s->dlogits.data, s->dlogits_bytes, s->budget);
    ss_aligned_free(s->work, s->work_bytes, s->budget);
    free(s->runs);
    free(s->sums);
    free(s->coef);
    free(s);
    *ps = NULL;
}

// Forward and the global loss value; leaves *logits and the loss coefficients for backward.
static ss_status_t forward_loss(ss_stepper_t *s,
                                ss_step_result_t *res,
                                ss_tensor_t *logits,
                                const ss_tensor_t *x,
                                const ss_tensor_t *target,
                                const ss_model_step_t *st,
                                ss_error_t *err)
{
    const ss_model_plan_t *p = ss_model_plan(s->m);
    int64_t nc = ss_model_config(s->m)->out_channels;
    ss_exec_t ex = {p->nthreads, s->work, s->work_bytes, NULL};
    SS_TRY(ss_model_forward(s->m, logits, x, st, err));
    SS_TRY(ss_loss_fwd_partial(s->sums, logits, target, &s->cfg.loss, &ex, err));
    SS_TRY(ss_seq_allreduce_sum(p->seq, s->sums, ss_loss_sums_len(p->batch, nc), err));
    ss_loss_value_t v;
    SS_TRY(ss_loss_fwd_finalize(&v, s->coef, s->sums, p->batch, nc, &s->cfg.loss, err));
    res->loss = v.loss;
    res->dice = v.dice;
    res->ce = v.ce;
    return SS_OK;
}

static ss_status_t norm_check(double grad_norm, ss_error_t *err)
{
    if (!(grad_norm == grad_norm) || grad_norm > 1e300) {
        SS_FAIL(err, SS_ENUMERIC,
                "training diverged: the gradient norm is not finite; lower "
                "optim.lr or set optim.clip_norm");
    }
    return SS_OK;
}

static ss_status_t
clip(ss_stepper_t *s, ss_step_result_t *res, const ss_exec_t *ex, ss_error_t *err)
{
    float *g = ss_model_grads(s->m);
    double sumsq = 0;
    for (int i = 0; i < s->nruns; i++) {
        double part;
        SS_TRY(ss_optim_sumsq_partial(&part, g + s->runs[i].begin,
                                      s->runs[i].end - s->runs[i].begin, ex, err));
        sumsq += part;
    }
    res->grad_norm = sqrt(sumsq);
    SS_TRY(norm_check(res->grad_norm, err));
    if (s->cfg.clip_norm > 0) {
        float scale = (float)ss_optim_clip_scale(sumsq, s->cfg.clip_norm);
        for (int i = 0; scale < 1.0f && i < s->nruns; i++) {
            SS_TRY(ss_optim_scale(g + s->runs[i].begin, s->runs[i].end - s->runs[i].begin, scale,
                                  ex, err));
        }
    }
    return SS_OK;
}

// The optimizer step. With sumsq (Adam / AdamW without clipping) the gradients' sum of squares
// is taken in the same pass, equal to clip()'s.
static ss_status_t
update(ss_stepper_t *s, double lr, double *sumsq, const ss_exec_t *ex, ss_error_t *err)
{
    float *w = ss_model_weights(s->m), *g = ss_model_grads(s->m);
    ss_optim_adam_params_t a = s->cfg.adam;
    ss_optim_sgd_params_t sg = s->cfg.sgd;
    a.lr = sg.lr = lr;
    if (sumsq != NULL) {
        *sumsq = 0;
    }
    for (int i = 0; i < s->nruns; i++) {
        int64_t b = s->runs[i].begin, n = s->runs[i].end - b;
        float *m0 = s->nstate > 0 ? s->state[0] + b : NULL,
              *v0 = s->nstate > 1 ? s->state[1] + b : NULL;
        double part = 0;
        if (s->cfg.optim == SS_OPTIM_ADAMW) {
            SS_TRY(sumsq ? ss_optim_adamw_step_sumsq(w + b, m0, v0, g + b, n, &a, &s->ost, &part,
                                                     ex, err)
                         : ss_optim_adamw_step(w + b, m0, v0, g + b, n, &a, &s->ost, ex, err));
        } else if (s->cfg.optim == SS_OPTIM_ADAM) {
            SS_TRY(sumsq ? ss_optim_adam_step_sumsq(w + b, m0, v0, g + b, n, &a, &s->ost, &part, ex,
                                                    err)
                         : ss_optim_adam_step(w + b, m0, v0, g + b, n, &a, &s->ost, ex, err));
        } else {
            SS_TRY(ss_optim_sgd_step(w + b, m0, g + b, n, &sg, &s->ost, ex, err));
        }
        if (sumsq != NULL) {
            *sumsq += part;
        }
    }
    ss_optim_state_advance(&s->ost);
    return SS_OK;
}

ss_status_t ss_stepper_run(ss_stepper_t *s,
                           ss_step_result_t *res,
                           const ss_tensor_t *x,
                           const ss_tensor_t *target,
                           const ss_model_step_t *st,
                           ss_error_t *err)
{
    const ss_model_plan_t *p = ss_model_plan(s->m);
    ss_exec_t ex = {p->nthreads, s->work, s->work_bytes, NULL};
    ss_tensor_t logits;
    memset(res, 0, sizeof(*res));
    SS_TRY(forward_loss(s, res, &logits, x, target, st, err));
    if (!(res->loss == res->loss)) {
        SS_FAIL(err, SS_ENUMERIC, "training diverged: the loss is NaN at step %lld; lower optim.lr",
                (long long)(st ? st->step : 0));
    }
    SS_TRY(ss_loss_bwd(&s->dlogits, &logits, target, s->coef, &s->cfg.loss, &ex, err));
    SS_TRY(ss_model_backward(s->m, &s->dlogits, err));
    SS_TRY(ss_seq_allreduce_grads(p->seq, ss_model_grads(s->m), ss_model_numel(s->m), err));
    ex.work = NULL, ex.work_bytes = 0;
    res->lr = ss_optim_lr(&s->cfg.lr, s->ost.step);
    if (s->cfg.clip_norm == 0 && s->cfg.optim != SS_OPTIM_SGD) {
        // Nothing waits for the norm: it is summed in the update's pass over the gradients.
        double sumsq;
        SS_TRY(update(s, res->lr, &sumsq, &ex, err));
        res->grad_norm = sqrt(sumsq);
        return norm_check(res->grad_norm, err);
    }
    SS_TRY(clip(s, res, &ex, err));
    return update(s, res->lr, NULL, &ex, err);
}

ss_status_t ss_stepper_eval(ss_stepper_t *s,
                            ss_step_result_t *res,
                            const ss_tensor_t *x,
                            const ss_tensor_t *target,
                            ss_error_t *err)
{
    ss_tensor_t logits;
    memset(res, 0, sizeof(*res));
    return forward_loss(s, res, &logits, x, target, NULL, err);
}

int ss_stepper_nstate(const ss_stepper_t *s)
{
    return s->nstate;
}

float *ss_stepper_state(const ss_stepper_t *s, int i)
{
    return i >= 0 && i < s->nstate ? s->state[i] : NULL;
}

int64_t ss_stepper_steps_done(const ss_stepper_t *s)
{
    return s->ost.step;
}

void ss_stepper_set_steps_done(ss_stepper_t *s, int64_t steps)
{
    s->ost.step = steps;
}
