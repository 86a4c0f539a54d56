#include "shardseg/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ss_status_name(ss_status_t code)
{
    switch (code) {
#define SS_STATUS_NAME(name, value, desc)                                                          \
    case name:                                                                                     \
        return #name;
        SS_STATUS_MAP(SS_STATUS_NAME)
#undef SS_STATUS_NAME
    }
    return "SS_UNKNOWN";
}

const char *ss_status_str(ss_status_t code)
{
    switch (code) {
#define SS_STATUS_DESC(name, value, desc)                                                          \
    case name:                                                                                     \
        return desc;
        SS_STATUS_MAP(SS_STATUS_DESC)
#undef SS_STATUS_DESC
    }
    return "unknown status";
}

void ss_error_clear(ss_error_t *err)
{
    if (err == NULL) {
        return;
    }
    memset(err, 0, sizeof(*err));
    err->code = SS_OK;
}

ss_status_t ss_error_set(ss_error_t *err,
                         ss_status_t code,
                         long lib_code,
                         const char *file,
                         int line,
                         const char *func,
                         const char *fmt,
                         ...)
{
    if (err == NULL) {
        return code;
    }
    err->code = code;
    err->lib_code = lib_code;
    err->file = file;
    err->line = line;
    err->func = func;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

ss_status_t ss_error_prefix(ss_error_t *err, const char *fmt, ...)
{
    if (err == NULL) {
        return SS_OK;
    }
    char prefix[SS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    // Built in a larger buffer, then cut to the record's size: the tail of a long message is the
    // least useful part to lose.
    char joined[2 * SS_ERROR_MSG_MAX + 2];
    snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
    size_t n = strlen(joined);
    n = n < sizeof(err->msg) - 1 ? n : sizeof(err->msg) - 1;
    memcpy(err->msg, joined, n);
    err->msg[n] = '\0';
    return err->code;
}

size_t ss_error_format(const ss_error_t *err, int verbose, char *buf, size_t len)
{
    if (len == 0) {
        return 0;
    }
    int n;
    if (err == NULL || err->code == SS_OK) {
        n = snprintf(buf, len, "no error");
    } else if (verbose && err->file != NULL) {
        n = snprintf(buf, len, "%s [%s at %s:%d]",
                     err->msg[0] ? err->msg : ss_status_str(err->code), ss_status_name(err->code),
                     err->file, err->line);
    } else {
        n = snprintf(buf, len, "%s", err->msg[0] ? err->msg : ss_status_str(err->code));
    }
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n < len ? (size_t)n : len - 1;
}
