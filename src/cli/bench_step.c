// shardseg bench step: the time and memory of one training step (batch 1 by default, AdamW,
// Dice+CE with sigmoid, random data of the model's img_size), to set next to PyTorch's
// (bench/step_vs_torch.sh). Last line: ms_per_step=<median> peak_mem_bytes=<peak RSS>.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "shardseg/shardseg.h"
#include "shardseg/step.h"

#include "cli.h"
#include "model_opts.h"
#include "opts.h"

typedef struct {
    ss_model_t *model;
    ss_stepper_t *stepper;
    ss_tensor_t x, target;
} bench_state_t;

static void free_state(bench_state_t *b)
{
    ss_stepper_destroy(&b->stepper);
    ss_model_destroy(&b->model);
    free(b->x.data);
    free(b->target.data);
}

// Random input N(0, 1) and 0/1 targets with ~10% foreground, from the counter-based RNG.
static ss_status_t make_data(
    bench_state_t *b, const ss_model_config_t *c, int64_t batch, int nthreads, ss_error_t *err)
{
    int64_t xs[5] = {batch, c->in_channels, c->img_size[0], c->img_size[1], c->img_size[2]};
    int64_t ts[5] = {batch, c->out_channels, c->img_size[0], c->img_size[1], c->img_size[2]};
    SS_TRY(ss_tensor_init(&b->x, SS_F32, 5, xs, NULL, err));
    SS_TRY(ss_tensor_init(&b->target, SS_F32, 5, ts, NULL, err));
    b->x.data = malloc(ss_tensor_nbytes(&b->x));
    b->target.data = malloc(ss_tensor_nbytes(&b->target));
    if (b->x.data == NULL || b->target.data == NULL) {
        SS_FAIL(err, SS_ENOMEM, "bench step: out of memory for the input");
    }
    ss_rng_fill_normal(ss_rng_make(1, 1), 0, ss_tensor_numel(&b->x), 0.0f, 1.0f, b->x.data,
                       nthreads);
    float *t = b->target.data;
    ss_rng_fill_uniform(ss_rng_make(1, 2), 0, ss_tensor_numel(&b->target), 0.0f, 1.0f, t, nthreads);
    for (int64_t i = 0; i < ss_tensor_numel(&b->target); i++) {
        t[i] = t[i] < 0.1f ? 1.0f : 0.0f;
    }
    return SS_OK;
}

static ss_status_t setup(bench_state_t *b,
                         const ss_model_config_t *c,
                         int64_t batch,
                         int nthreads,
                         double lr,
                         ss_budget_t *budget,
                         ss_error_t *err)
{
    ss_model_plan_t plan = {batch, 0, c->img_size[0], 1, nthreads, NULL};
    SS_TRY(ss_model_create(&b->model, c, &plan, budget, err));
    SS_TRY(ss_model_init_weights(b->model, 1, err));
    ss_step_config_t sc;
    ss_step_config_default(&sc);
    sc.lr.lr0 = lr;
    SS_TRY(ss_stepper_create(&b->stepper, b->model, &sc, budget, err));
    return make_data(b, c, batch, nthreads, err);
}

static ss_status_t run_steps(
    bench_state_t *b, int64_t warmup, int64_t steps, double *ms, double *loss, ss_error_t *err)
{
    for (int64_t i = 0; i < warmup + steps; i++) {
        ss_model_step_t st = {1, i};
        ss_step_result_t r;
        double t0 = ss_time_now();
        SS_TRY(ss_stepper_run(b->stepper, &r, &b->x, &b->target, &st, err));
        double dt = (ss_time_now() - t0) * 1e3;
        if (i >= warmup) {
            ms[i - warmup] = dt;
            loss[i - warmup] = r.loss;
        }
    }
    return SS_OK;
}

static void report(const bench_state_t *b,
                   const ss_model_config_t *c,
                   const double *ms,
                   const double *loss,
                   int64_t steps,
                   int nthreads,
                   const ss_budget_t *budget)
{
    double *tmp = malloc((size_t)steps * sizeof(double)), best = ms[0];
    double med = ss_median(ms, (int)steps, tmp);
    for (int64_t i = 0; i < steps; i++) {
        printf("# step %lld: %.1f ms, loss %.6f\n", (long long)i, ms[i], loss[i]);
        best = ms[i] < best ? ms[i] : best;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int64_t nparam = 0;
    for (int i = 0; i < ss_model_param_count(b->model); i++) {
        nparam += ss_model_param(b->model, i)->numel;
    }
    printf("# %s img %lldx%lldx%lld, %lld parameters, %d threads: min %.1f ms, median %.1f ms, "
           "budget peak %.1f MB\n",
           ss_model_kind_name(c->kind), (long long)c->img_size[0], (long long)c->img_size[1],
           (long long)c->img_size[2], (long long)nparam, nthreads, best, med,
           ss_budget_peak(budget) / 1e6);
    printf("ms_per_step=%.2f peak_mem_bytes=%lld\n", med, (long long)ru.ru_maxrss * 1024);
    free(tmp);
}

int ss_cli_bench_step(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    ss_cli_model_opts_t mo;
    ss_cli_opt_t opts[SS_MODEL_NOPTS + 5];
    ss_cli_model_opts(&mo, opts);
    const char *weights = NULL;
    int64_t steps = 5, warmup = 2, batch = 1;
    double lr = 1e-4;
    const ss_cli_opt_t extra[5] = {
        {"weights", 'w', SS_OPT_STRING, &weights, "FILE", "model from a weights file", 1, 0},
        {"steps", 'n', SS_OPT_INT, &steps, "N", "timed steps (default 5)", 1, 100000},
        {"warmup", 0, SS_OPT_INT, &warmup, "N", "untimed steps first (default 2)", 0, 1000},
        {"batch", 'b', SS_OPT_INT, &batch, "N", "batch size (default 1)", 1, 4096},
        {"lr", 0, SS_OPT_DOUBLE, &lr, "LR", "AdamW learning rate (default 1e-4)", 0, 10},
    };
    memcpy(opts + SS_MODEL_NOPTS, extra, sizeof(extra));
    const int nopts = SS_MODEL_NOPTS + 5;
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        puts("usage: shardseg bench step [--weights W.h5 | model options] [--steps N]");
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (pr == SS_CLI_ERROR) {
        ss_cli_error(cmd, "%s", msg);
        return SS_EXIT_USAGE;
    }
    ss_model_config_t c;
    int rc = ss_cli_model_source(&mo, weights, &c, cmd);
    if (rc != 0 || (rc = ss_cli_start(ctx, cmd)) != 0) {
        return rc;
    }
    ss_budget_t budget;
    ss_budget_init(&budget, ctx->mem_limit);
    bench_state_t b;
    memset(&b, 0, sizeof(b));
    double *ms = calloc((size_t)steps * 2, sizeof(double));
    ss_error_t err;
    ss_error_clear(&err);
    ss_status_t st = ms ? setup(&b, &c, batch, ctx->nthreads, lr, &budget, &err) : SS_ENOMEM;
    if (st == SS_OK && weights != NULL) {
        st = ss_cli_load_weights(weights, b.model, &err);
    }
    if (st == SS_OK) {
        st = run_steps(&b, warmup, steps, ms, ms + steps, &err);
    }
    if (st == SS_OK && ctx->rank == 0) {
        report(&b, &c, ms, ms + steps, steps, ctx->nthreads, &budget);
    }
    rc = st == SS_OK ? SS_EXIT_OK : ms == NULL ? SS_EXIT_RUNTIME : ss_cli_fail(cmd, &err);
    free_state(&b);
    free(ms);
    return rc;
}
