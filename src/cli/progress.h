// progress.h: a one-line progress bar for long work, drawn only where a person is watching.
//
// It draws on stderr when stderr is a terminal, the rank is 0 and neither CI nor
// SHARDSEG_NO_PROGRESS is set; otherwise every call is a no-op, so logs stay clean when piped,
// redirected to a Slurm output file or run under CI.
#ifndef SS_CLI_PROGRESS_H
#define SS_CLI_PROGRESS_H

#include <stdint.h>

typedef struct {
    int active;     // 1 when drawing
    int64_t total;  // units of work
    double started; // ss_time_now() at start
    double drawn;   // time of the last redraw (redraws are limited to 10 per second)
    char label[32];
} ss_progress_t;

// Decides whether a bar should be drawn here (terminal, rank 0, not CI).
int ss_progress_wanted(int rank);
void ss_progress_start(ss_progress_t *p, const char *label, int64_t total, int rank);
// Redraws with `done` of `total` units finished and an extra note ("loss 0.31  dice 0.72").
void ss_progress_update(ss_progress_t *p, int64_t done, const char *note);
// Clears the bar line.
void ss_progress_finish(ss_progress_t *p);

// Formats seconds as "1h02m", "3m05s" or "12s".
void ss_progress_format_eta(double seconds, char *buf, int len);

#endif
