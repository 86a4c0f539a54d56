// metrics_log: metrics.jsonl writer (format in metrics_log.h).
#include "shardseg/metrics_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ss_metrics_log {
    FILE *f;
    char *path;
};

// Byte length of the leading whole lines whose "step" is <= last_step.
static ss_status_t kept_bytes(const char *path, int64_t last_step, off_t *keep, ss_error_t *err)
{
    *keep = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return SS_OK;
        }
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot read: %s; check permissions", path,
                    strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        char *end = NULL;
        long long step = -1;
        if (strncmp(line, "{\"step\":", 8) == 0) {
            step = strtoll(line + 8, &end, 10);
        }
        // A partial line (killed mid-write) or a foreign one ends what is kept.
        if (line[n - 1] != '\n' || end == NULL || end == line + 8 || step > last_step) {
            break;
        }
        *keep += (off_t)n;
    }
    free(line);
    fclose(f);
    return SS_OK;
}

ss_status_t
ss_metrics_log_open(const char *path, int64_t last_step, ss_metrics_log_t **out, ss_error_t *err)
{
    *out = NULL;
    off_t keep = 0;
    if (last_step >= 0) {
        SS_TRY(kept_bytes(path, last_step, &keep, err));
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, keep) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        SS_FAIL_LIB(err, SS_EIO, e, "%s: cannot open for writing: %s; check the output directory",
                    path, strerror(e));
    }
    ss_metrics_log_t *l = calloc(1, sizeof(*l));
    FILE *f = fdopen(fd, "a");
    char *p = l != NULL ? strdup(path) : NULL;
    if (f == NULL || p == NULL) {
        f != NULL ? fclose(f) : close(fd);
        free(l);
        free(p);
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory opening the metrics log", path);
    }
    l->f = f;
    l->path = p;
    *out = l;
    return SS_OK;
}

void ss_metrics_log_close(ss_metrics_log_t **lp)
{
    if (lp == NULL || *lp == NULL) {
        return;
    }
    fclose((*lp)->f);
    free((*lp)->path);
    free(*lp);
    *lp = NULL;
}

static const char *num(char *buf, size_t len, double x, int digits)
{
    if (!isfinite(x)) {
        return "null";
    }
    snprintf(buf, len, "%.*g", digits, x);
    return buf;
}

static ss_status_t finish(ss_metrics_log_t *l, int rc, ss_error_t *err)
{
    if (rc < 0 || fflush(l->f) != 0) {
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot write: %s; check free space", l->path,
                    strerror(errno));
    }
    return SS_OK;
}

ss_status_t ss_metrics_log_step(ss_metrics_log_t *l, const ss_metrics_step_t *s, ss_error_t *err)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    int rc = fprintf(l->f,
                     "{\"step\":%" PRId64 ",\"loss\":%s,\"dice_loss\":%s,\"ce_loss\":%s,\"lr\":%s,"
                     "\"ms\":%s,\"data_wait_ms\":%s,\"peak_mem_bytes\":%" PRIu64 "}\n",
                     s->step, num(a, sizeof(a), s->loss, 17), num(b, sizeof(b), s->dice_loss, 17),
                     num(c, sizeof(c), s->ce_loss, 17), num(d, sizeof(d), s->lr, 17),
                     num(e, sizeof(e), s->ms, 9), num(f, sizeof(f), s->data_wait_ms, 9),
                     s->peak_mem_bytes);
    return finish(l, rc, err);
}

ss_status_t ss_metrics_log_val(ss_metrics_log_t *l, const ss_metrics_val_t *v, ss_error_t *err)
{
    if (v->ndice < 0 || v->ndice > SS_METRICS_MAX_DICE) {
        SS_FAIL(err, SS_EINVAL, "%s: %d Dice values; at most %d are logged", l->path, v->ndice,
                SS_METRICS_MAX_DICE);
    }
    char buf[32];
    int rc = fprintf(l->f, "{\"step\":%" PRId64, v->step);
    for (int i = 0; i < v->ndice && rc >= 0; i++) {
        rc = fprintf(l->f, ",\"val_dice_%s\":%s", v->dice_name[i] ? v->dice_name[i] : "x",
                     num(buf, sizeof(buf), v->dice[i], 17));
    }
    if (rc >= 0 && v->ndice > 1) {
        rc = fprintf(l->f, ",\"val_dice_mean\":%s", num(buf, sizeof(buf), v->dice_mean, 17));
    }
    if (rc >= 0) {
        rc = fprintf(l->f, ",\"val_loss\":%s}\n", num(buf, sizeof(buf), v->loss, 17));
    }
    return finish(l, rc, err);
}
