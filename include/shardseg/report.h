// report.h: the learning-curve report of a training run (`shardseg report RUN_DIR`).
//
// ss_report_load reads a run's metrics.jsonl (format in metrics_log.h) into arrays: one record
// per training step and one per validation. A killed run may leave its last line incomplete (no
// newline, not valid JSON): that line is skipped and flagged; any other malformed line is an
// error naming file:line. ss_report_load_config picks the key settings out of the run's
// effective config.ini. ss_report_summarize reduces the records to the numbers people quote
// (best validation Dice and its step, final loss, median step time, total time, peak memory),
// ss_report_summary_lines turns them into the key/value lines that both the CLI's text and the
// picture show, and ss_report_plot_png draws the one-page PNG: training loss (raw and moving
// average, with its Dice and cross-entropy parts), validation Dice per region, the learning rate
// and the summary block.
//
// Ownership: an ss_report_t owns its arrays (ss_report_init / ss_report_fini). Threading: one
// report belongs to one thread. LOCAL: no MPI.
#ifndef SS_REPORT_H
#define SS_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/metrics_log.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_REPORT_MAX_LINES 24

// A validation record; a Dice the line lacks or logged as null is NaN.
typedef struct {
    int64_t step;
    double dice[SS_METRICS_MAX_DICE]; // indexed like ss_report_t.dice_name
    double dice_mean;                 // val_dice_mean; the one Dice when a single region is logged
    double loss;                      // val_loss
} ss_report_val_t;

// One line of the summary or of the configuration: "best val Dice" -> "0.8123 at step 4000".
typedef struct {
    char key[32];
    char value[160];
} ss_report_line_t;

typedef struct {
    ss_metrics_step_t *steps; // training steps in file order; a null value is NaN (memory 0)
    int64_t nsteps;
    ss_report_val_t *vals;
    int64_t nval;
    int ndice;                                    // regions seen in validation records
    char dice_name[SS_METRICS_MAX_DICE][24];      // "wt", "tc", "et", in order of appearance
    int partial_last;                             // 1: an incomplete last line was skipped
    ss_report_line_t config[SS_REPORT_MAX_LINES]; // key settings (ss_report_load_config)
    int nconfig;
    int64_t cap_steps, cap_vals; // allocated records
} ss_report_t;

// An empty report (no allocation).
void ss_report_init(ss_report_t *r);
// Frees the arrays and leaves an empty report.
void ss_report_fini(ss_report_t *r);

// Reads the metrics file at path (replacing any records r holds). Errors: SS_EINVAL when the
// file cannot be opened; SS_EFORMAT "path:line: <what>" for a line that is not a JSON object
// with an integer "step" and numbers (or null) in the known fields, or that is neither a training
// step (it has "loss") nor a validation (a "val_" field); SS_EFORMAT when the file holds no
// training step; SS_ENOMEM; SS_EIO for a read error. Unknown fields are ignored (newer writers).
ss_status_t ss_report_load(ss_report_t *r, const char *path, ss_error_t *err);

// Reads the key settings of an effective config.ini (model and its size, data, steps, optimizer,
// schedule, loss) into r->config as one line per section. A missing file is not an error (no
// lines); SS_EIO when it exists but cannot be read. The file is read as text, not validated.
ss_status_t ss_report_load_config(ss_report_t *r, const char *path, ss_error_t *err);

typedef struct {
    int64_t nsteps, first_step, last_step, nval;
    double best_dice; // best finite val_dice_mean (the first of ties); NaN without one
    int64_t best_step;
    int64_t last_val;                  // index into r->vals of the last validation, -1 without one
    double final_loss, final_loss_avg; // last finite loss; mean of the last smoothing window
    int64_t final_loss_step;
    double final_lr;
    double median_ms, total_ms; // over the steps with a finite "ms"
    double median_wait_ms;      // data_wait_ms
    uint64_t peak_mem_bytes;    // largest peak_mem_bytes
    int64_t smooth;             // moving-average window of the loss curves (steps)
} ss_report_summary_t;

// Summary of the records of r (which holds at least one step). SS_ENOMEM for the median's
// scratch.
ss_status_t ss_report_summarize(const ss_report_t *r, ss_report_summary_t *s, ss_error_t *err);

// The summary as key/value lines, in display order; returns how many were written (<= max).
int ss_report_summary_lines(const ss_report_t *r,
                            const ss_report_summary_t *s,
                            ss_report_line_t *out,
                            int max);

// Moving-average window for n steps: about n / 20, between 1 (no smoothing) and 500.
int64_t ss_report_smooth_window(int64_t n);
// Centred moving average of x over `window` samples (truncated at the ends), skipping NaN:
// out[i] is the mean of the finite x[j] with |i - j| <= window / 2, NaN when there is none.
// out and x do not alias.
void ss_report_moving_average(double *out, const double *x, int64_t n, int64_t window);

typedef enum {
    SS_REPORT_SCALE_AUTO = 0, // log when the positive losses span more than a factor of 10
    SS_REPORT_SCALE_LINEAR,
    SS_REPORT_SCALE_LOG,
} ss_report_scale_t;

typedef struct {
    int width, height; // pixels (0: 1800 x 1200)
    ss_report_scale_t loss_scale;
    const char *title; // page heading, e.g. the run directory; NULL: "training run"
} ss_report_plot_opts_t;

// Draws the one-page report of r and s and writes it to path atomically (ss_plot_write_png's
// errors: SS_EINVAL when path's directory cannot be written to, SS_EIO, SS_ENOMEM). o may be
// NULL for the defaults.
ss_status_t ss_report_plot_png(const ss_report_t *r,
                               const ss_report_summary_t *s,
                               const ss_report_plot_opts_t *o,
                               const char *path,
                               ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
