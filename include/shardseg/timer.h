// timer.h: monotonic wall-clock timers and per-phase accumulators.
// Threading: plain values; use one accumulator per thread or guard it.
#ifndef SS_TIMER_H
#define SS_TIMER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Seconds since an arbitrary fixed point (CLOCK_MONOTONIC).
double ss_time_now(void);

// Accumulates the time of repeated phases (e.g. "forward", "halo wait").
typedef struct {
    double total;   // seconds
    double min;     // shortest interval
    double max;     // longest interval
    int64_t count;  // intervals recorded
    double started; // start of the open interval, < 0 when none is open
} ss_timer_t;

void ss_timer_init(ss_timer_t *t);
void ss_timer_start(ss_timer_t *t);
// Closes the open interval and returns its length in seconds (0 if none was open).
double ss_timer_stop(ss_timer_t *t);
double ss_timer_mean(const ss_timer_t *t);

// Median of n values (sorts a copy in scratch, which must hold n doubles). For benchmarks.
double ss_median(const double *v, int n, double *scratch);

#ifdef __cplusplus
}
#endif
#endif
