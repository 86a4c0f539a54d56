#include "shardseg/timer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double ss_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ss_timer_init(ss_timer_t *t)
{
    t->total = 0;
    t->min = 0;
    t->max = 0;
    t->count = 0;
    t->started = -1;
}

void ss_timer_start(ss_timer_t *t)
{
    t->started = ss_time_now();
}

double ss_timer_stop(ss_timer_t *t)
{
    if (t->started < 0) {
        return 0;
    }
    double dt = ss_time_now() - t->started;
    t->started = -1;
    t->total += dt;
    if (t->count == 0 || dt < t->min) {
        t->min = dt;
    }
    if (dt > t->max) {
        t->max = dt;
    }
    t->count++;
    return dt;
}

double ss_timer_mean(const ss_timer_t *t)
{
    return t->count ? t->total / (double)t->count : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ss_median(const double *v, int n, double *scratch)
{
    if (n <= 0) {
        return 0;
    }
    memcpy(scratch, v, (size_t)n * sizeof(double));
    qsort(scratch, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? scratch[n / 2] : 0.5 * (scratch[n / 2 - 1] + scratch[n / 2]);
}
