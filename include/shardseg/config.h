// config.h: the configuration of `shardseg train`: an INI file (libinih) plus `section.key=value`
// overrides from the command line, resolved into one validated ss_train_config_t.
//
// Sections and keys (defaults and meanings in README.md, "Training configuration"):
//   [model]  model, weights, in_channels, out_channels, img_size, patch_size, feature_size,
//            hidden_size, mlp_dim, num_heads, num_layers, qkv_bias, res_block, conv_block,
//            dropout_rate, proj_type, norm_name, depth, base_filters, convs_per_level
//   [data]   file, patch, fold, samples_per_case, fg_fraction, fg_samples, flip,
//            intensity_scale, intensity_shift, prefetch, rot90, cache_mb, spatial_p, rotate,
//            zoom, gamma_p, gamma
//   [train]  steps, epochs, batch, seed, threads, val_interval, val_metric, val_cases,
//            val_overlap, checkpoint_interval, keep_checkpoints, time_limit
//   [optim]  name, lr, weight_decay, betas, eps, momentum, dampening, nesterov, clip_norm,
//            schedule, warmup_steps, warmup_start_factor, t_max, eta_min, power, step_size, gamma
//   [loss]   name, act, smooth_nr, smooth_dr, squared_pred, include_background, batch
//   [output] dir, log
// Resolution: overrides apply after the file, in order. `model.weights` takes the architecture
// from that weights file (its attributes), so architecture keys may not be set with it. When
// only one of data.patch / model.img_size is set, the other follows it (the network is built for
// patches of img_size); both set must agree. Setting train.epochs without train.steps turns the
// default step count off (steps = 0); both non-zero is an error. The loss name sets
// lambda_dice/lambda_ce; optim.weight_decay applies to whichever optimizer is chosen.
// optim.t_max = 0 means "the run's length after warm-up" and is resolved by the trainer.
//
// Errors are one line naming where and which key: "run.ini:12: optim.lr: 'abc' is not a number;
// write e.g. 1e-4", "command line: optim.lrr: unknown key; did you mean optim.lr?". Unknown
// sections and keys, duplicate keys in the file and out-of-range values are errors (SS_EINVAL);
// an unreadable file is SS_EIO. libinih limits a line to INI_MAX_LINE - 3 characters (197 with
// Debian's build); longer lines are refused rather than cut.
//
// Ownership: plain value struct, no heap. Threading: reentrant (libinih keeps no state).
#ifndef SS_CONFIG_H
#define SS_CONFIG_H

#include <stdint.h>

#include "shardseg/model.h"
#include "shardseg/status.h"
#include "shardseg/step.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_CONFIG_PATH_MAX 1024

typedef struct {
    // [model]
    char weights[SS_CONFIG_PATH_MAX]; // "" = build from the keys below
    ss_model_config_t model;
    // [data]
    char data[SS_CONFIG_PATH_MAX]; // prep'd HDF5 file (`shardseg prep`)
    int64_t patch[3];              // training patch (= model.img_size)
    int fold;                      // -1: the file's /split; k >= 0: fold k is validation
    int64_t samples_per_case;      // patches per training case in one epoch
    double fg_fraction;            // sampler fg_fraction
    int fg_samples;                // sampler fg_samples
    int flip_axes;                 // sampler flip_axes bitmask (1 = i, 2 = j, 4 = k)
    double intensity_scale, intensity_shift;
    int prefetch;
    int rot90;        // sampler quarter turns in the J-K plane
    int64_t cache_mb; // training cases kept decompressed in memory up to this size (0: off)
    double spatial_p, rotate, zoom; // sampler rotation / scaling: probability, degrees, range
    double gamma_p, gamma;          // sampler gamma change: probability per channel, range
    // [train]
    int64_t steps;  // optimizer steps (0: from epochs)
    int64_t epochs; // epochs of samples_per_case patches per training case (0: from steps)
    int64_t batch;
    uint64_t seed;
    int threads;                 // OpenMP threads (0: OMP_NUM_THREADS / all cores)
    int64_t val_interval;        // steps between validations (0: only at the end)
    char val_metric[16];         // dice_mean | dice_wt | dice_tc | dice_et | loss
    int64_t val_cases;           // validation cases used (0: all)
    double val_overlap;          // sliding-window overlap of validation inference
    int64_t checkpoint_interval; // steps between checkpoints (0: only at the end / on signals)
    int keep_checkpoints;        // newest checkpoints kept (>= 1)
    double time_limit;           // seconds of wall time, then checkpoint and stop (0: none)
    // [optim] and [loss]
    ss_step_config_t step; // optimizer, lr schedule (lr0 = optim.lr), clipping, loss
    ss_loss_kind_t loss_kind;
    // [output]
    char out_dir[SS_CONFIG_PATH_MAX];
    char log[SS_CONFIG_PATH_MAX]; // metrics file, relative to out_dir unless absolute
} ss_train_config_t;

// The defaults (README): UNETR with MONAI's defaults, patch = img_size, 1000 steps of batch 1,
// AdamW lr 1e-4 wd 1e-5, Dice+CE with sigmoid, output dir "run", log "metrics.jsonl".
void ss_train_config_default(ss_train_config_t *c);

// Defaults, then path (NULL: none), then the n overrides "section.key=value", resolved and
// validated (see above).
ss_status_t ss_train_config_load(
    const char *path, const char *const *overrides, int n, ss_train_config_t *c, ss_error_t *err);

// Range checks of a resolved configuration (what load runs last); messages name the key.
ss_status_t ss_train_config_validate(const ss_train_config_t *c, ss_error_t *err);

// The effective configuration as INI text that ss_train_config_load reads back to the same
// struct (malloc'd, caller frees). With model.weights set, the architecture keys are written as
// comments. SS_EINVAL if a value cannot be written (a path too long for libinih's line limit).
ss_status_t ss_train_config_format(const ss_train_config_t *c, char **text, ss_error_t *err);
// ss_train_config_format written to path atomically (temp + fsync + rename).
ss_status_t ss_train_config_write(const char *path, const ss_train_config_t *c, ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
