// shardseg train: the training run of a config file (config.h), with metrics.jsonl, atomic
// checkpoints, progress, and exact resumption.
//
// Signals: SIGTERM, SIGINT and SIGUSR1 (Slurm sends one before the time limit with --signal) set
// a flag; the loop finishes the current step, writes a checkpoint and exits with 0 after saying
// how to resume. A second signal of the same kind kills as usual.
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shardseg/checkpoint.h"
#include "shardseg/config.h"
#include "shardseg/metrics_log.h"
#include "shardseg/shardseg.h"
#include "shardseg/trainer.h"
#include "shardseg/weights.h"

#include "cli.h"
#include "opts.h"
#include "progress.h"

static volatile sig_atomic_t g_stop;
static volatile int g_cancel;

static void on_signal(int sig)
{
    g_stop = sig;
    g_cancel = 1;
    signal(sig, SIG_DFL); // a second signal ends the process the usual way
}

typedef struct {
    ss_cli_ctx_t *ctx;
    const ss_train_config_t *cfg;
    ss_trainer_t *tr;
    ss_metrics_log_t *log;
    ss_progress_t bar;
    char dir[4096];
    const char *config_text;
    double best;
    int64_t best_step;
    double last_val;
    int plain_every; // print a plain line every N steps when no bar is drawn
    double t_start;  // when this process started training (train.time_limit counts from here)
    int timed_out;   // stopped by train.time_limit
} run_t;

static ss_status_t hook_step(void *p, const ss_train_event_t *e, ss_error_t *err)
{
    run_t *r = p;
    // train.time_limit: the step that crosses it is the last; it is saved like a SIGTERM stop, so
    // the run continues with --resume. (One rank: with several ranks this decision must become a
    // collective one, in src/dist, before sequence-parallel training lands.)
    if (r->cfg->time_limit > 0 && ss_time_now() - r->t_start >= r->cfg->time_limit) {
        r->timed_out = 1;
        g_cancel = 1;
    }
    ss_metrics_step_t s = {e->step + 1, e->r.loss, e->r.dice,  e->r.ce,
                           e->r.lr,     e->ms,     e->wait_ms, (uint64_t)e->peak_mem};
    if (r->log != NULL) {
        SS_TRY(ss_metrics_log_step(r->log, &s, err));
    }
    char note[128];
    snprintf(note, sizeof(note), "loss %.4f  dice %.3f  %.0f ms/step", e->r.loss,
             isnan(r->last_val) ? 0.0 : r->last_val, e->ms);
    if (r->bar.active) {
        ss_progress_update(&r->bar, e->step + 1, note);
    } else if (r->ctx->rank == 0 && ((e->step + 1) % r->plain_every == 0 || e->step == 0)) {
        printf("step %lld/%lld  loss %.5f  lr %.3g  %.0f ms  (data wait %.1f ms)\n",
               (long long)(e->step + 1), (long long)r->cfg->steps, e->r.loss, e->r.lr, e->ms,
               e->wait_ms);
        fflush(stdout);
    }
    return SS_OK;
}

static const char *region_name(int nregions, int c)
{
    static const char *regions[3] = {"wt", "tc", "et"};
    return nregions == 3 ? regions[c] : nregions == 1 ? "tumour" : "c";
}

static ss_status_t hook_val(void *p, const ss_val_result_t *v, ss_error_t *err)
{
    run_t *r = p;
    ss_metrics_val_t m;
    memset(&m, 0, sizeof(m));
    m.step = v->step;
    m.ndice = v->nregions;
    for (int c = 0; c < v->nregions; c++) {
        m.dice_name[c] = region_name(v->nregions, c);
        m.dice[c] = v->dice[c];
    }
    m.dice_mean = v->mean_dice;
    m.loss = NAN;
    if (r->log != NULL) {
        SS_TRY(ss_metrics_log_val(r->log, &m, err));
    }
    r->last_val = v->mean_dice;
    if (isnan(r->best) || v->mean_dice > r->best) {
        r->best = v->mean_dice;
        r->best_step = v->step;
    }
    if (r->ctx->rank == 0) {
        if (r->bar.active) {
            ss_progress_finish(&r->bar);
        }
        printf("validation at step %lld (%d cases, %.1f s): mean Dice %.4f", (long long)v->step,
               v->ncases, v->ms / 1e3, v->mean_dice);
        for (int c = 0; c < v->nregions; c++) {
            printf("  %s %.4f", region_name(v->nregions, c), v->dice[c]);
        }
        printf("\n");
        fflush(stdout);
    }
    return SS_OK;
}

static ss_status_t hook_save(void *p, int64_t steps_done, ss_error_t *err)
{
    run_t *r = p;
    if (r->ctx->rank != 0) {
        return SS_OK;
    }
    ss_stepper_t *s = ss_trainer_stepper(r->tr);
    const float *optim[2] = {ss_stepper_state(s, 0), ss_stepper_state(s, 1)};
    ss_ckpt_state_t st;
    ss_ckpt_state_init(&st);
    st.step = steps_done;
    st.seed = r->cfg->seed;
    st.opt = r->cfg->step;
    st.best_metric = r->best;
    st.best_step = r->best_step;
    st.config = (char *)r->config_text;
    char path[4096];
    SS_TRY(ss_ckpt_save(r->dir, ss_trainer_model(r->tr), optim, ss_stepper_nstate(s), &st,
                        r->cfg->keep_checkpoints, path, sizeof(path), err));
    if (r->bar.active) {
        ss_progress_finish(&r->bar);
    }
    printf("checkpoint %s\n", path);
    fflush(stdout);
    return SS_OK;
}

// Restores weights, optimizer state and the step from the newest good checkpoint of dir.
static ss_status_t resume(run_t *r, int64_t *steps_done, ss_error_t *err)
{
    char path[4096], warn[4096] = "";
    *steps_done = -1;
    SS_TRY(ss_ckpt_find_latest(r->dir, path, sizeof(path), warn, sizeof(warn), err));
    if (warn[0] != '\0' && r->ctx->rank == 0) {
        fprintf(stderr, "shardseg train: %s\n", warn);
    }
    if (path[0] == '\0') {
        SS_FAIL(err, SS_EINVAL, "%s: no checkpoint to resume from; start without --resume", r->dir);
    }
    ss_stepper_t *s = ss_trainer_stepper(r->tr);
    float *optim[2] = {ss_stepper_state(s, 0), ss_stepper_state(s, 1)};
    ss_ckpt_state_t st;
    ss_ckpt_state_init(&st);
    ss_status_t rc = ss_ckpt_load(path, ss_trainer_model(r->tr), r->cfg->step.optim, optim,
                                  ss_stepper_nstate(s), &st, err);
    if (rc == SS_OK) {
        *steps_done = st.step;
        r->best = st.best_metric;
        r->best_step = st.best_step;
        ss_trainer_resume_at(r->tr, st.step);
        if (r->ctx->rank == 0) {
            printf("resuming from %s at step %lld\n", path, (long long)st.step);
        }
    }
    ss_ckpt_state_fini(&st);
    return rc;
}

static ss_status_t make_dir(const char *dir, ss_error_t *err)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot create the output directory: %s", dir,
                    strerror(errno));
    }
    return SS_OK;
}

// The trainer's options from the resolved configuration.
static ss_status_t
opts_from_config(const ss_train_config_t *c, ss_train_opts_t *o, int nthreads, ss_error_t *err)
{
    (void)err;
    ss_train_opts_default(o);
    o->data = c->data;
    o->model = c->model;
    o->step = c->step;
    o->sampler.fg_fraction = c->fg_fraction;
    o->sampler.fg_samples = c->fg_samples;
    o->sampler.flip_axes = c->flip_axes;
    o->sampler.scale = (float)c->intensity_scale;
    o->sampler.shift = (float)c->intensity_shift;
    o->sampler.prefetch = c->prefetch;
    o->sampler.rot90 = c->rot90;
    o->sampler.cache_bytes = (size_t)c->cache_mb << 20;
    o->sampler.spatial_p = c->spatial_p;
    o->sampler.rotate = c->rotate;
    o->sampler.zoom = c->zoom;
    o->sampler.gamma_p = c->gamma_p;
    o->sampler.gamma = c->gamma;
    o->sampler.val_fold = c->fold;
    o->steps = c->steps;
    o->epochs = c->epochs;
    o->samples_per_case = c->samples_per_case;
    o->batch = c->batch;
    o->val_interval = c->val_interval;
    o->val_cases = c->val_cases;
    o->val_infer.overlap = c->val_overlap;
    o->seed = c->seed;
    o->nthreads = c->threads > 0 ? c->threads : nthreads;
    return SS_OK;
}

static ss_status_t start(run_t *r, int resuming, ss_budget_t *budget, ss_error_t *err)
{
    ss_train_opts_t o;
    SS_TRY(opts_from_config(r->cfg, &o, r->ctx->nthreads, err));
    SS_TRY(ss_trainer_create(&r->tr, &o, budget, err));
    if (!resuming && r->cfg->weights[0] != '\0') {
        SS_TRY(ss_weights_load(r->cfg->weights, ss_trainer_model(r->tr), err));
    }
    int64_t done = -1;
    if (resuming) {
        SS_TRY(resume(r, &done, err));
    }
    char path[2 * 4096 + 16];
    if (r->ctx->rank == 0) {
        const char *log = r->cfg->log[0] ? r->cfg->log : "metrics.jsonl";
        if (log[0] == '/') {
            snprintf(path, sizeof(path), "%s", log);
        } else {
            snprintf(path, sizeof(path), "%s/%s", r->dir, log);
        }
        SS_TRY(ss_metrics_log_open(path, done, &r->log, err));
        snprintf(path, sizeof(path), "%s/config.ini", r->dir);
        SS_TRY(ss_train_config_write(path, r->cfg, err));
    }
    return SS_OK;
}

static int train(ss_cli_ctx_t *ctx,
                 const char *cmd,
                 const ss_train_config_t *cfg,
                 const char *text,
                 int resuming)
{
    run_t r;
    memset(&r, 0, sizeof(r));
    r.ctx = ctx;
    r.cfg = cfg;
    r.config_text = text;
    r.best = NAN;
    r.last_val = NAN;
    r.t_start = ss_time_now();
    r.plain_every = cfg->steps >= 100 ? (int)(cfg->steps / 50) : 1;
    snprintf(r.dir, sizeof(r.dir), "%s", cfg->out_dir);
    ss_budget_t budget;
    ss_budget_init(&budget, ctx->mem_limit);
    ss_error_t err;
    ss_error_clear(&err);
    ss_status_t st = make_dir(r.dir, &err);
    if (st == SS_OK) {
        st = start(&r, resuming, &budget, &err);
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGUSR1, on_signal);
    int stopped = 0;
    if (st == SS_OK) {
        ss_progress_start(&r.bar, "train", cfg->steps, ctx->rank);
        ss_train_hooks_t h = {&r,       hook_step, hook_val, hook_save, cfg->checkpoint_interval,
                              &g_cancel};
        st = ss_trainer_run(r.tr, &h, &stopped, &err);
        ss_progress_finish(&r.bar);
    }
    int rc = st == SS_OK ? SS_EXIT_OK : ss_cli_fail(cmd, &err);
    if (st == SS_OK && ctx->rank == 0) {
        if (stopped && r.timed_out) {
            printf("stopped at train.time_limit (%g s) after step %lld; continue with: shardseg "
                   "train --config %s/config.ini --resume %s\n",
                   cfg->time_limit, (long long)ss_trainer_next_step(r.tr), r.dir, r.dir);
        } else if (stopped) {
            printf("stopped by signal %d after step %lld; continue with: shardseg train --config "
                   "%s/config.ini --resume %s\n",
                   (int)g_stop, (long long)ss_trainer_next_step(r.tr), r.dir, r.dir);
        } else if (!isnan(r.best)) {
            printf("done: best mean validation Dice %.4f at step %lld\n", r.best,
                   (long long)r.best_step);
        }
    }
    ss_metrics_log_close(&r.log);
    ss_trainer_destroy(&r.tr);
    return rc;
}

static const char g_usage[] =
    "usage: shardseg train --config run.ini [section.key=value ...] [--resume DIR]\n"
    "Trains the model of the config on its prep'd HDF5 data. Writes DIR/config.ini (the effective\n"
    "configuration), DIR/metrics.jsonl and DIR/ckpt-<step>.h5 (output.dir). SIGTERM, SIGINT or\n"
    "SIGUSR1 write a checkpoint and stop; --resume DIR continues bit for bit.\n";

int ss_cli_cmd_train(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    const char *config = NULL, *resume_dir = NULL, *pos[64];
    const ss_cli_opt_t opts[] = {
        {"config", 'c', SS_OPT_STRING, &config, "FILE", "INI configuration", 1, 0},
        {"resume", 'r', SS_OPT_STRING, &resume_dir, "DIR", "continue the run in DIR", 1, 0},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 64, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        fputs(g_usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (pr == SS_CLI_ERROR || (config == NULL && resume_dir == NULL)) {
        ss_cli_error(cmd, "%s", pr == SS_CLI_ERROR ? msg : "--config: missing; give run.ini");
        return SS_EXIT_USAGE;
    }
    char path[4200];
    if (config == NULL) {
        snprintf(path, sizeof(path), "%s/config.ini", resume_dir);
        config = path;
    }
    ss_train_config_t cfg;
    ss_error_t err;
    if (ss_train_config_load(config, pos, npos, &cfg, &err) != SS_OK) {
        // An unreadable config file is the user's input, not a runtime failure.
        int rc = ss_cli_fail(cmd, &err);
        return err.code == SS_EIO ? SS_EXIT_USAGE : rc;
    }
    if (resume_dir != NULL) {
        snprintf(cfg.out_dir, sizeof(cfg.out_dir), "%s", resume_dir);
    }
    int rc = ss_cli_start(ctx, cmd);
    if (rc != 0) {
        return rc;
    }
    char *text = NULL;
    if (ss_train_config_format(&cfg, &text, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    rc = train(ctx, cmd, &cfg, text, resume_dir != NULL);
    free(text);
    return rc;
}
