#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/timer.h"

int ss_progress_wanted(int rank)
{
    if (rank != 0 || !isatty(STDERR_FILENO)) {
        return 0;
    }
    const char *ci = getenv("CI");
    if (ci != NULL && *ci != '\0' && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0) {
        return 0;
    }
    const char *off = getenv("SHARDSEG_NO_PROGRESS");
    const char *term = getenv("TERM");
    return (off == NULL || *off == '\0') && !(term != NULL && strcmp(term, "dumb") == 0);
}

void ss_progress_start(ss_progress_t *p, const char *label, int64_t total, int rank)
{
    memset(p, 0, sizeof(*p));
    p->active = ss_progress_wanted(rank);
    p->total = total > 0 ? total : 1;
    p->started = ss_time_now();
    p->drawn = -1;
    snprintf(p->label, sizeof(p->label), "%s", label ? label : "");
}

void ss_progress_format_eta(double s, char *buf, int len)
{
    if (!(s >= 0) || s > 360000) {
        snprintf(buf, (size_t)len, "--");
    } else if (s >= 3600) {
        snprintf(buf, (size_t)len, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    } else if (s >= 60) {
        snprintf(buf, (size_t)len, "%dm%02ds", (int)(s / 60), (int)s % 60);
    } else {
        snprintf(buf, (size_t)len, "%ds", (int)s);
    }
}

void ss_progress_update(ss_progress_t *p, int64_t done, const char *note)
{
    if (!p->active) {
        return;
    }
    double now = ss_time_now();
    if (done < p->total && p->drawn >= 0 && now - p->drawn < 0.1) {
        return;
    }
    p->drawn = now;
    enum { WIDTH = 24 };
    double frac = (double)done / (double)p->total;
    frac = frac < 0 ? 0 : (frac > 1 ? 1 : frac);
    char bar[WIDTH + 1];
    int fill = (int)(frac * WIDTH);
    for (int i = 0; i < WIDTH; i++) {
        bar[i] = i < fill ? '#' : '.';
    }
    bar[WIDTH] = '\0';
    char eta[16];
    double elapsed = now - p->started;
    ss_progress_format_eta(done > 0 ? elapsed * (double)(p->total - done) / (double)done : -1, eta,
                           sizeof(eta));
    fprintf(stderr, "\r\033[K%s [%s] %3d%%  %lld/%lld  eta %s  %s", p->label, bar,
            (int)(frac * 100), (long long)done, (long long)p->total, eta, note ? note : "");
    fflush(stderr);
}

void ss_progress_finish(ss_progress_t *p)
{
    if (p->active) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->active = 0;
}
