// trainer.c: the training loop (see trainer.h).
#include "shardseg/trainer.h"

#include <stdlib.h>
#include <string.h>

#include "shardseg/h5data.h"
#include "shardseg/metrics.h"
#include "shardseg/timer.h"

struct ss_trainer {
    ss_train_opts_t o;
    ss_budget_t *budget;
    ss_h5data_t *data;     // the sampler's handle
    ss_h5data_t *valdata;  // a second handle for validation reads on the main thread
    ss_sampler_t *sampler;
    ss_model_t *model, *eval; // training model; batch-1 forward-only model for validation
    ss_stepper_t *stepper;
    ss_tensor_t x, target;
    int64_t next_step;
};

void ss_train_opts_default(ss_train_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    ss_model_config_default(&o->model, SS_MODEL_UNETR);
    ss_step_config_default(&o->step);
    ss_sampler_config_init(&o->sampler);
    ss_infer_params_default(&o->val_infer);
    o->steps = 1000;
    o->batch = 1;
    o->val_interval = 0;
    o->seed = 0;
    o->nthreads = 1;
}

static ss_status_t check_data(ss_trainer_t *t, ss_error_t *err)
{
    const ss_model_config_t *c = &t->o.model;
    ss_h5data_info_t info;
    if (ss_h5data_ncases(t->data) < 1) {
        SS_FAIL(err, SS_EINVAL, "%s: no cases; run shardseg prep first", t->o.data);
    }
    SS_TRY(ss_h5data_case_info(t->data, 0, &info, err));
    if (info.nchan != c->in_channels || info.nlabel != c->out_channels) {
        SS_FAIL(err, SS_EINVAL, "%s: %lld image channels and %lld label channels, but the model has "
                "in_channels %lld and out_channels %lld; set model.in_channels/out_channels",
                t->o.data, (long long)info.nchan, (long long)info.nlabel,
                (long long)c->in_channels, (long long)c->out_channels);
    }
    return SS_OK;
}

// Validation cases: fold sampler.val_fold when set, else the file's /split/val.
static int is_val(const ss_trainer_t *t, const ss_h5data_t *d, int i)
{
    int k = t->o.sampler.val_fold;
    return k >= 0 ? ss_h5data_fold(d, i) == k : ss_h5data_is_val(d, i) == 1;
}

// Steps from epochs when steps is 0; the cosine/poly horizon t_max = 0 becomes the run's length
// after warm-up.
static ss_status_t resolve_steps(ss_trainer_t *t, ss_error_t *err)
{
    ss_train_opts_t *o = &t->o;
    if (o->steps == 0) {
        int ntrain = 0;
        for (int i = 0; i < ss_h5data_ncases(t->data); i++) {
            ntrain += !is_val(t, t->data, i);
        }
        o->steps = o->epochs * (o->samples_per_case > 0 ? o->samples_per_case : 1) * ntrain / o->batch;
    }
    if (o->steps < 1) {
        SS_FAIL(err, SS_EINVAL, "train.steps: the run has no steps; set train.steps or train.epochs");
    }
    if (o->step.lr.t_max == 0) {
        int64_t tm = o->steps - o->step.lr.warmup_steps;
        o->step.lr.t_max = tm > 1 ? tm : 1;
    }
    return SS_OK;
}

static ss_status_t alloc_batch(ss_trainer_t *t, ss_error_t *err)
{
    const ss_model_config_t *c = &t->o.model;
    int64_t xs[5] = {t->o.batch, c->in_channels, c->img_size[0], c->img_size[1], c->img_size[2]};
    int64_t ts[5] = {t->o.batch, c->out_channels, c->img_size[0], c->img_size[1], c->img_size[2]};
    SS_TRY(ss_tensor_init(&t->x, SS_F32, 5, xs, NULL, err));
    SS_TRY(ss_tensor_init(&t->target, SS_F32, 5, ts, NULL, err));
    SS_TRY(ss_aligned_alloc(&t->x.data, ss_tensor_nbytes(&t->x), t->budget, "input batch", err));
    return ss_aligned_alloc(&t->target.data, ss_tensor_nbytes(&t->target), t->budget,
                            "target batch", err);
}

static ss_status_t build(ss_trainer_t *t, ss_error_t *err)
{
    const ss_train_opts_t *o = &t->o;
    SS_TRY(ss_h5data_open(o->data, &t->data, err));
    SS_TRY(ss_h5data_open(o->data, &t->valdata, err));
    SS_TRY(check_data(t, err));
    SS_TRY(resolve_steps(t, err));
    ss_sampler_config_t sc = o->sampler;
    memcpy(sc.patch, o->model.img_size, sizeof(sc.patch));
    sc.slab_i0 = 0;
    sc.slab_len = 0;
    sc.seed = o->seed;
    SS_TRY(ss_sampler_create(t->data, &sc, &t->sampler, err));
    ss_model_plan_t plan = {o->batch, 0, o->model.img_size[0], 1, o->nthreads, NULL};
    SS_TRY(ss_model_create(&t->model, &o->model, &plan, t->budget, err));
    SS_TRY(ss_model_init_weights(t->model, o->seed, err));
    // Validation windows have the training patch size: instance-norm statistics depend on the
    // window, so a larger window (tempting for the fully convolutional U-Net) changes the output.
    ss_model_config_t ec = o->model;
    ss_model_plan_t eplan = {1, 0, ec.img_size[0], 0, o->nthreads, NULL};
    SS_TRY(ss_model_create(&t->eval, &ec, &eplan, t->budget, err));
    SS_TRY(ss_stepper_create(&t->stepper, t->model, &o->step, t->budget, err));
    return alloc_batch(t, err);
}

ss_status_t ss_trainer_create(ss_trainer_t **out, const ss_train_opts_t *o, ss_budget_t *budget, ss_error_t *err)
{
    *out = NULL;
    if (o->steps < 0 || o->batch < 1) {
        SS_FAIL(err, SS_EINVAL, "train.steps must be >= 0 and train.batch >= 1");
    }
    ss_trainer_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        SS_FAIL(err, SS_ENOMEM, "trainer: out of memory");
    }
    t->o = *o;
    t->budget = budget;
    ss_status_t st = build(t, err);
    if (st != SS_OK) {
        ss_trainer_destroy(&t);
        return st;
    }
    *out = t;
    return SS_OK;
}

void ss_trainer_destroy(ss_trainer_t **pt)
{
    ss_trainer_t *t = pt ? *pt : NULL;
    if (t == NULL) {
        return;
    }
    ss_sampler_destroy(&t->sampler);
    ss_stepper_destroy(&t->stepper);
    ss_model_destroy(&t->model);
    ss_model_destroy(&t->eval);
    ss_aligned_free(t->x.data, ss_tensor_nbytes(&t->x), t->budget);
    ss_aligned_free(t->target.data, ss_tensor_nbytes(&t->target), t->budget);
    ss_h5data_close(&t->data);
    ss_h5data_close(&t->valdata);
    free(t);
    *pt = NULL;
}

ss_model_t *ss_trainer_model(const ss_trainer_t *t)
{
    return t->model;
}

ss_stepper_t *ss_trainer_stepper(const ss_trainer_t *t)
{
    return t->stepper;
}

int64_t ss_trainer_next_step(const ss_trainer_t *t)
{
    return t->next_step;
}

void ss_trainer_resume_at(ss_trainer_t *t, int64_t steps_done)
{
    t->next_step = steps_done;
    ss_stepper_set_steps_done(t->stepper, steps_done);
}

// Patches step*B .. step*B+B-1 into the batch tensors; *wait gets the seconds spent waiting.
static ss_status_t load_batch(ss_trainer_t *t, int64_t step, double *wait, ss_error_t *err)
{
    int64_t per_x = ss_tensor_numel(&t->x) / t->o.batch;
    int64_t per_t = ss_tensor_numel(&t->target) / t->o.batch;
    *wait = 0;
    for (int64_t b = 0; b < t->o.batch; b++) {
        const float *img;
        const uint8_t *lab;
        double w;
        SS_TRY(ss_sampler_next(t->sampler, (uint64_t)(step * t->o.batch + b), &img, &lab, &w, err));
        *wait += w;
        memcpy(ss_tensor_f32(&t->x) + b * per_x, img, (size_t)per_x * sizeof(float));
        float *tg = ss_tensor_f32(&t->target) + b * per_t;
        for (int64_t i = 0; i < per_t; i++) {
            tg[i] = (float)lab[i];
        }
    }
    return SS_OK;
}

static ss_status_t validate_case(ss_trainer_t *t, int i, double *dice, ss_error_t *err)
{
    ss_h5data_info_t info;
    SS_TRY(ss_h5data_case_info(t->valdata, i, &info, err));
    int64_t vol = info.dim[0] * info.dim[1] * info.dim[2], r = info.nlabel;
    float *img = malloc((size_t)(info.nchan * vol) * sizeof(float));
    float *logits = malloc((size_t)(r * vol) * sizeof(float));
    uint8_t *lab = malloc((size_t)(r * vol)), *pred = malloc((size_t)vol);
    ss_status_t st = SS_OK;
    if (img == NULL || logits == NULL || lab == NULL || pred == NULL) {
        st = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__,
                          "validation: out of memory for case %s", ss_h5data_case_name(t->valdata, i));
    }
    if (st == SS_OK) {
        st = ss_h5data_read_image(t->valdata, i, 0, info.dim[0], img, err);
    }
    if (st == SS_OK) {
        st = ss_h5data_read_label(t->valdata, i, 0, info.dim[0], lab, err);
    }
    if (st == SS_OK) {
        st = ss_infer_volume(t->eval, logits, img, info.dim, &t->o.val_infer, err);
    }
    for (int64_t c = 0; st == SS_OK && c < r; c++) {
        for (int64_t v = 0; v < vol; v++) {
            pred[v] = logits[c * vol + v] > 0.0f; // sigmoid(x) > 0.5
        }
        dice[c] = ss_dice_u8(pred, lab + c * vol, vol);
    }
    free(img);
    free(logits);
    free(lab);
    free(pred);
    return st;
}

ss_status_t ss_trainer_validate(ss_trainer_t *t, ss_val_result_t *v, ss_error_t *err)
{
    memset(v, 0, sizeof(*v));
    double t0 = ss_time_now();
    v->step = t->next_step;
    v->nregions = (int)t->o.model.out_channels;
    // The eval model shares nothing with the training model but the weights, copied here.
    memcpy(ss_model_weights(t->eval), ss_model_weights(t->model),
           (size_t)ss_model_numel(t->model) * sizeof(float));
    for (int i = 0; i < ss_h5data_ncases(t->valdata); i++) {
        if (!is_val(t, t->valdata, i) || (t->o.val_cases > 0 && v->ncases >= t->o.val_cases)) {
            continue;
        }
        double d[SS_H5DATA_MAX_CHAN];
        SS_TRY(validate_case(t, i, d, err));
        for (int c = 0; c < v->nregions; c++) {
            v->dice[c] += d[c];
        }
        v->ncases++;
    }
    for (int c = 0; c < v->nregions && v->ncases > 0; c++) {
        v->dice[c] /= v->ncases;
        v->mean_dice += v->dice[c] / v->nregions;
    }
    v->ms = (ss_time_now() - t0) * 1e3;
    return SS_OK;
}

static ss_status_t maybe_validate(ss_trainer_t *t, const ss_train_hooks_t *h, int last, ss_error_t *err)
{
    int64_t iv = t->o.val_interval;
    if (!(last || (iv > 0 && t->next_step % iv == 0))) {
        return SS_OK;
    }
    ss_val_result_t v;
    SS_TRY(ss_trainer_validate(t, &v, err));
    if (v.ncases > 0 && h != NULL && h->on_val != NULL) {
        SS_TRY(h->on_val(h->ctx, &v, err));
    }
    return SS_OK;
}

static ss_status_t one_step(ss_trainer_t *t, const ss_train_hooks_t *h, ss_error_t *err)
{
    ss_train_event_t e;
    memset(&e, 0, sizeof(e));
    e.step = t->next_step;
    double t0 = ss_time_now(), wait;
    SS_TRY(load_batch(t, e.step, &wait, err));
    ss_model_step_t ms = {t->o.seed, e.step};
    SS_TRY(ss_stepper_run(t->stepper, &e.r, &t->x, &t->target, &ms, err));
    t->next_step++;
    e.ms = (ss_time_now() - t0) * 1e3;
    e.wait_ms = wait * 1e3;
    e.peak_mem = t->budget ? ss_budget_peak(t->budget) : 0;
    if (h != NULL && h->on_step != NULL) {
        SS_TRY(h->on_step(h->ctx, &e, err));
    }
    return SS_OK;
}

ss_status_t ss_trainer_run(ss_trainer_t *t, const ss_train_hooks_t *h, int *stopped, ss_error_t *err)
{
    *stopped = 0;
    while (t->next_step < t->o.steps) {
        SS_TRY(one_step(t, h, err));
        int last = t->next_step == t->o.steps;
        int cancel = h != NULL && h->cancel != NULL && *h->cancel;
        int64_t si = h != NULL ? h->save_interval : 0;
        if (h != NULL && h->save != NULL && (last || cancel || (si > 0 && t->next_step % si == 0))) {
            SS_TRY(h->save(h->ctx, t->next_step, err));
        }
        if (cancel && !last) {
            *stopped = 1;
            return SS_OK;
        }
        SS_TRY(maybe_validate(t, h, last, err));
    }
    return SS_OK;
}
