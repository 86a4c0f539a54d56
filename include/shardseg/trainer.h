// trainer.h: the training loop of `shardseg train`: patches from the sampler, training steps,
// validation on whole held-out volumes (sliding windows), and the hooks through which the CLI
// logs metrics, draws progress and writes checkpoints.
//
// Determinism: step t uses patches t*B .. t*B+B-1 of the sampler (a pure function of the seed),
// the learning rate lr(t) and the optimizer state after t steps; weights + optimizer state + t
// are therefore the whole state of a run, and a run resumed from a checkpoint of step t repeats
// the uninterrupted run's losses bit for bit (same thread count and binary).
//
// Ownership: ss_trainer_create opens the data file and owns the model, stepper and buffers.
// Threading: one thread drives the loop (the sampler's prefetch thread works alongside).
#ifndef SS_TRAINER_H
#define SS_TRAINER_H

#include <stdint.h>

#include "shardseg/infer.h"
#include "shardseg/model.h"
#include "shardseg/sampler.h"
#include "shardseg/step.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *data;          // prep'd HDF5 file
    ss_model_config_t model;   // img_size is the training patch
    ss_step_config_t step;     // optimizer, schedule, loss
    ss_sampler_config_t sampler; // patch, slab, seed and nthreads are set by the trainer
    int64_t steps;             // total optimizer steps of the run (0: from epochs)
    int64_t epochs;            // with steps 0: epochs * samples_per_case * training cases / batch
    int64_t samples_per_case;
    int64_t batch;             // patches per step
    int64_t val_interval;      // validate every N steps (0: only at the end)
    int64_t val_cases;         // at most this many validation cases (0: all)
    ss_infer_params_t val_infer;
    uint64_t seed;             // weights init, sampling, dropout
    int nthreads;
} ss_train_opts_t;

void ss_train_opts_default(ss_train_opts_t *o);

typedef struct {
    int64_t step; // 0-based index of the step just taken
    ss_step_result_t r;
    double ms;        // wall time of the step
    double wait_ms;   // part of it spent waiting for the sampler
    size_t peak_mem;  // budget peak so far
} ss_train_event_t;

typedef struct {
    int64_t step; // steps done when validating
    int ncases;
    int nregions;
    double dice[SS_H5DATA_MAX_CHAN]; // mean Dice per label channel (WT, TC, ET)
    double mean_dice;
    double ms;
} ss_val_result_t;

typedef struct {
    void *ctx;
    ss_status_t (*on_step)(void *ctx, const ss_train_event_t *e, ss_error_t *err);
    ss_status_t (*on_val)(void *ctx, const ss_val_result_t *v, ss_error_t *err);
    // Called every checkpoint interval and at the end; steps_done optimizer steps are complete.
    ss_status_t (*save)(void *ctx, int64_t steps_done, ss_error_t *err);
    int64_t save_interval;         // 0: only at the end and on cancel
    const volatile int *cancel;    // non-zero: save and stop after the current step
} ss_train_hooks_t;

typedef struct ss_trainer ss_trainer_t;

ss_status_t ss_trainer_create(ss_trainer_t **out, const ss_train_opts_t *o, ss_budget_t *budget, ss_error_t *err);
void ss_trainer_destroy(ss_trainer_t **t);

ss_model_t *ss_trainer_model(const ss_trainer_t *t);
ss_stepper_t *ss_trainer_stepper(const ss_trainer_t *t);
// The step the next ss_trainer_run starts at (0, or the resumed step).
int64_t ss_trainer_next_step(const ss_trainer_t *t);
// After loading weights and optimizer state of a checkpoint taken after `steps_done` steps.
void ss_trainer_resume_at(ss_trainer_t *t, int64_t steps_done);

// Trains from the next step to opts.steps (or until *hooks->cancel). *stopped is 1 when it
// stopped early on cancel (after saving).
ss_status_t ss_trainer_run(ss_trainer_t *t, const ss_train_hooks_t *hooks, int *stopped, ss_error_t *err);

// Validation of the current weights on the file's validation cases.
ss_status_t ss_trainer_validate(ss_trainer_t *t, ss_val_result_t *v, ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
