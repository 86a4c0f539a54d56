#include "shardseg/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

// The single mutable global of the library (STYLE.md rule 18). Off until the CLI configures it.
static ss_log_config_t g_log = {SS_LOG_LEVEL_OFF, NULL, 0, 1};

void ss_log_configure(const ss_log_config_t *cfg)
{
    g_log = *cfg;
}

ss_log_config_t ss_log_config(void)
{
    return g_log;
}

int ss_log_enabled(ss_log_level_t level)
{
    if (level == SS_LOG_LEVEL_OFF || level > g_log.level) {
        return 0;
    }
    if (level >= SS_LOG_LEVEL_INFO && g_log.rank0_only && g_log.rank != 0) {
        return 0;
    }
    return 1;
}

static const char *level_tag(ss_log_level_t level)
{
    switch (level) {
    case SS_LOG_LEVEL_ERROR:
        return "error";
    case SS_LOG_LEVEL_WARN:
        return "warning";
    case SS_LOG_LEVEL_INFO:
        return "info";
    case SS_LOG_LEVEL_DEBUG:
        return "debug";
    default:
        return "";
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void ss_log_write(ss_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    if (!ss_log_enabled(level)) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    // Build the whole line first and write it with one call, so lines from threads and ranks
    // sharing a terminal do not interleave mid-line.
    char out[1400];
    if (level == SS_LOG_LEVEL_DEBUG || level == SS_LOG_LEVEL_ERROR) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(out, sizeof(out), "[%02d:%02d:%02d.%03ld] [rank %d] [%s:%d] %s: %s\n", tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, g_log.rank, base_name(file), line,
                 level_tag(level), msg);
    } else if (level == SS_LOG_LEVEL_WARN) {
        snprintf(out, sizeof(out), "[rank %d] %s: %s\n", g_log.rank, level_tag(level), msg);
    } else {
        snprintf(out, sizeof(out), "%s\n", msg);
    }
    FILE *sink = g_log.sink ? g_log.sink : stderr;
    fputs(out, sink);
    fflush(sink);
}
