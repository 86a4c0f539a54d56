// metrics_log.h: the JSON-lines metrics file of `shardseg train` (metrics.jsonl).
//
// One object per line, the "step" field first:
//   training step:  {"step":S,"loss":L,"dice_loss":D,"ce_loss":C,"lr":R,"ms":M,"data_wait_ms":W,
//                    "peak_mem_bytes":B}
//   validation:     {"step":S,"val_dice_<name>":X,...,"val_dice_mean":X,"val_loss":L}
// Doubles (losses, lr, Dice) are printed with %.17g and timings with %.9g, so two runs can be
// compared bit for bit from the text; a non-finite value is written as null (JSON has no NaN).
// Every line is flushed when written, so a killed run leaves whole lines (at most the last one
// partial).
//
// Resume: opening with last_step >= 0 keeps the lines whose step is <= last_step (in the
// numbering the caller logs with) and cuts the rest, including a partial last line, so that a
// resumed run's file equals an uninterrupted run's. Log steps as "steps done" (1-based) for
// step and validation records alike, and pass the checkpoint's steps done.
//
// Ownership: the log owns its FILE. Threading: one thread.
#ifndef SS_METRICS_LOG_H
#define SS_METRICS_LOG_H

#include <stdint.h>

#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_METRICS_MAX_DICE 8

typedef struct {
    int64_t step;
    double loss, dice_loss, ce_loss;
    double lr;
    double ms, data_wait_ms;
    uint64_t peak_mem_bytes;
} ss_metrics_step_t;

typedef struct {
    int64_t step;
    int ndice;                                  // 0..SS_METRICS_MAX_DICE
    const char *dice_name[SS_METRICS_MAX_DICE]; // "wt", "tc", "et" -> val_dice_wt, ...
    double dice[SS_METRICS_MAX_DICE];
    double dice_mean; // written as val_dice_mean when ndice > 1
    double loss;      // val_loss
} ss_metrics_val_t;

typedef struct ss_metrics_log ss_metrics_log_t;

// Opens path for appending. last_step < 0: a new run (the file is truncated). last_step >= 0:
// a resumed run (see above). SS_EIO naming the file when it cannot be opened or cut.
ss_status_t
ss_metrics_log_open(const char *path, int64_t last_step, ss_metrics_log_t **out, ss_error_t *err);
// Closes the file; accepts NULL; sets *lp = NULL.
void ss_metrics_log_close(ss_metrics_log_t **lp);

ss_status_t ss_metrics_log_step(ss_metrics_log_t *l, const ss_metrics_step_t *s, ss_error_t *err);
ss_status_t ss_metrics_log_val(ss_metrics_log_t *l, const ss_metrics_val_t *v, ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
