// checkpoint.h: training checkpoints (HDF5), written atomically, verified on reading.
//
// A checkpoint DIR/ckpt-<step>.h5 is a weights file (weights.h: root attributes + one float32
// dataset per parameter, usable as --weights as it is) plus:
//   /optim/<name>   flat float32 [ss_model_numel] optimizer state in the model's flat layout
//                   (alignment gaps included): adam/adamw "exp_avg", "exp_avg_sq"; sgd
//                   "momentum_buffer" (none without momentum). /optim attribute layout_hash
//                   (uint64, FNV-1a over parameter names, shapes and offsets) guards the layout.
//   /state          attributes: step, epoch, seed, best_metric, best_step (int64/uint64/double),
//                   rng (uint64[n], opaque to this module: sampler position, RNG counters),
//                   optim (string adamw|adam|sgd) and every optimizer, schedule, clipping and
//                   loss hyper-parameter (adam.beta1, sgd.momentum, lr.kind, lr.lr0, clip_norm,
//                   loss.smooth_nr, ...), config (the effective INI text), format_version,
//                   and complete = 1, written LAST.
// Every dataset except 0-d buffers is chunked with the fletcher32 checksum and the file uses the
// v1.8 object formats (checksummed metadata), so a flipped byte fails the read instead of
// resuming from garbage; a truncated file fails to open.
//
// Saving: a free-space check (the file system and RLIMIT_FSIZE must hold the estimated size:
// HDF5 1.10 cannot recover from a write error inside H5Dclose/H5Fclose, so the write must not
// fail midway), temp file in DIR with the space reserved (posix_fallocate), all data, then
// /state's `complete`, close, fsync, rename to ckpt-<step>.h5, fsync DIR; only then are older
// checkpoints beyond the newest `keep` deleted (never the new one, never before it is durable),
// so DIR needs room for keep + 1 checkpoints. On failure the temp file is removed and earlier
// checkpoints are untouched. Stale temp files of killed runs (.ckpt-*.tmp.*) are removed.
// Verifying reads every byte (the checksums are checked on read): resuming a UNETR-base run reads
// its ~1.1 GB checkpoint twice.
//
// Ownership: everything borrowed, except ss_ckpt_state_t.config after a successful
// ss_ckpt_load: it stores a malloc'd copy there (overwriting, not freeing, the pointer held
// before), which ss_ckpt_state_fini frees; a failed load leaves config as it was. Threading: one
// thread (HDF5's lock serialises HDF5 calls made by the sampler's prefetch thread meanwhile).
#ifndef SS_CHECKPOINT_H
#define SS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/model.h"
#include "shardseg/status.h"
#include "shardseg/step.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_CKPT_RNG_MAX        16
#define SS_CKPT_FORMAT_VERSION 1

typedef struct {
    int64_t step;         // optimizer steps completed
    int64_t epoch;        // epochs completed
    uint64_t seed;        // run seed
    ss_step_config_t opt; // optimizer kind + hyper-parameters, lr schedule (its state is `step`),
                          // clipping, loss
    int nrng;             // 0..SS_CKPT_RNG_MAX entries of rng used
    uint64_t rng[SS_CKPT_RNG_MAX];
    double best_metric; // best validation metric so far (NaN: none yet)
    int64_t best_step;
    char *config; // effective INI text: borrowed on save (may be NULL), owned after load
} ss_ckpt_state_t;

// Zeroes *s (best_metric NaN, opt = ss_step_config_default).
void ss_ckpt_state_init(ss_ckpt_state_t *s);
// Frees the config text a load allocated.
void ss_ckpt_state_fini(ss_ckpt_state_t *s);

// Number of optimizer state vectors of kind k and their dataset names.
int ss_ckpt_optim_count(ss_optim_kind_t k, double sgd_momentum);
const char *ss_ckpt_optim_name(ss_optim_kind_t k, int i);

// Writes DIR/ckpt-<st->step>.h5 (see above). optim: noptim vectors of ss_model_numel(m) floats
// (ss_stepper_state), named after st->opt.optim. keep >= 1 checkpoints are kept (0: 2).
// OUT path (may be NULL): the file written.
ss_status_t ss_ckpt_save(const char *dir,
                         const ss_model_t *m,
                         const float *const *optim,
                         int noptim,
                         const ss_ckpt_state_t *st,
                         int keep,
                         char *path,
                         size_t path_len,
                         ss_error_t *err);

// Full check of one file: opens, complete == 1, every dataset readable (checksums). Does not
// look at the model.
ss_status_t ss_ckpt_verify(const char *path, ss_error_t *err);

// OUT path: the newest DIR/ckpt-*.h5 that verifies ("" and SS_OK when DIR holds none). Newer
// files that fail are skipped; OUT warn (may be NULL) then gets one line per skipped file
// ("<file>: <why>; skipped"), separated by '\n', for the CLI to print. SS_EFORMAT (naming the
// newest file's problem) when checkpoints exist but none verifies.
ss_status_t ss_ckpt_find_latest(
    const char *dir, char *path, size_t path_len, char *warn, size_t warn_len, ss_error_t *err);

// Loads weights, optimizer state and *st from path into a model built for this run. Refused
// (SS_EINVAL naming the attribute) when the checkpoint's model configuration differs from m's,
// or its optimizer is not `kind` / its state count not noptim; SS_EFORMAT when incomplete or
// corrupt. optim: noptim vectors of ss_model_numel(m) floats, overwritten. On failure weights,
// optim and *st may be partly overwritten: try the next checkpoint or stop.
ss_status_t ss_ckpt_load(const char *path,
                         ss_model_t *m,
                         ss_optim_kind_t kind,
                         float *const *optim,
                         int noptim,
                         ss_ckpt_state_t *st,
                         ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
