#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/arena.h"

static const ss_cli_opt_t *
find_long(const ss_cli_opt_t *opts, int nopts, const char *name, size_t len)
{
    for (int i = 0; i < nopts; i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

static const ss_cli_opt_t *find_short(const ss_cli_opt_t *opts, int nopts, char c)
{
    for (int i = 0; i < nopts; i++) {
        if (opts[i].short_name != 0 && opts[i].short_name == c) {
            return &opts[i];
        }
    }
    return NULL;
}

static int in_range(const ss_cli_opt_t *o, double v)
{
    return o->min > o->max || (v >= o->min && v <= o->max);
}

static void range_hint(const ss_cli_opt_t *o, char *buf, size_t len)
{
    if (o->min > o->max) {
        buf[0] = '\0';
    } else if (o->max >= 1e18) {
        snprintf(buf, len, " of at least %.15g", o->min);
    } else {
        snprintf(buf, len, " between %.15g and %.15g", o->min, o->max);
    }
}

static int parse_int(const char *s, int64_t *out)
{
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0) {
        return -1;
    }
    *out = v;
    return 0;
}

int ss_cli_parse_dims3(const char *s, int64_t out[3], double min, double max)
{
    int64_t v[3];
    int n = 0;
    const char *p = s;
    for (;;) {
        errno = 0;
        char *end = NULL;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno != 0 || (min <= max && (x < min || x > max))) {
            return -1;
        }
        v[n++] = x;
        if (*end == '\0') {
            break;
        }
        if (n == 3 || (*end != 'x' && *end != 'X' && *end != ',')) {
            return -1;
        }
        p = end + 1;
    }
    if (n == 2) {
        return -1;
    }
    if (n == 1) {
        v[1] = v[2] = v[0];
    }
    memcpy(out, v, sizeof(v));
    return 0;
}

// Stores value into the option's destination; on failure writes the message.
static int store(const ss_cli_opt_t *o, const char *value, char *msg, size_t msg_len)
{
    char hint[64];
    range_hint(o, hint, sizeof(hint));
    switch (o->type) {
    case SS_OPT_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case SS_OPT_STRING:
        *(const char **)o->dst = value;
        return 0;
    case SS_OPT_INT: {
        int64_t v;
        if (parse_int(value, &v) != 0 || !in_range(o, (double)v)) {
            snprintf(msg, msg_len, "--%s: '%s' is not a valid value; give a whole number%s",
                     o->name, value, hint);
            return -1;
        }
        *(int64_t *)o->dst = v;
        return 0;
    }
    case SS_OPT_DOUBLE: {
        errno = 0;
        char *end = NULL;
        double v = strtod(value, &end);
        if (end == value || *end != '\0' || errno != 0 || !isfinite(v) || !in_range(o, v)) {
            snprintf(msg, msg_len, "--%s: '%s' is not a valid value; give a number%s", o->name,
                     value, hint);
            return -1;
        }
        *(double *)o->dst = v;
        return 0;
    }
    case SS_OPT_BYTES: {
        char what[64];
        snprintf(what, sizeof(what), "--%s", o->name);
        ss_error_t e;
        if (ss_bytes_parse(value, what, (size_t *)o->dst, &e) != SS_OK) {
            snprintf(msg, msg_len, "%s", e.msg);
            return -1;
        }
        return 0;
    }
    case SS_OPT_DIMS3:
        if (ss_cli_parse_dims3(value, (int64_t *)o->dst, o->min, o->max) != 0) {
            snprintf(msg, msg_len,
                     "--%s: '%s' is not a valid size; give three whole numbers like 128x128x128%s",
                     o->name, value, hint);
            return -1;
        }
        return 0;
    }
    return -1;
}

static int is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

ss_cli_result_t ss_cli_parse(int argc,
                             char **argv,
                             const ss_cli_opt_t *opts,
                             int nopts,
                             const char **pos,
                             int max_pos,
                             int *npos,
                             char *msg,
                             size_t msg_len)
{
    *npos = 0;
    int only_positional = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const ss_cli_opt_t *o = NULL;
        const char *value = NULL;
        if (!only_positional && strcmp(a, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (!only_positional && is_help(a)) {
            return SS_CLI_HELP;
        }
        if (!only_positional && a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            o = find_long(opts, nopts, a + 2, len);
            if (o == NULL) {
                snprintf(msg, msg_len, "%.*s: unknown option; see --help for the options",
                         (int)(len + 2), a);
                return SS_CLI_ERROR;
            }
            value = eq ? eq + 1 : NULL;
            if (o->type == SS_OPT_FLAG && value != NULL) {
                snprintf(msg, msg_len, "--%s: takes no value", o->name);
                return SS_CLI_ERROR;
            }
        } else if (!only_positional && a[0] == '-' && a[1] != '\0' && a[2] == '\0' &&
                   !(a[1] >= '0' && a[1] <= '9')) {
            o = find_short(opts, nopts, a[1]);
            if (o == NULL) {
                snprintf(msg, msg_len, "%s: unknown option; see --help for the options", a);
                return SS_CLI_ERROR;
            }
        } else {
            if (*npos >= max_pos) {
                snprintf(msg, msg_len, "'%s': unexpected argument; see --help for the usage", a);
                return SS_CLI_ERROR;
            }
            pos[(*npos)++] = a;
            continue;
        }
        if (o->type != SS_OPT_FLAG && value == NULL) {
            if (i + 1 >= argc) {
                snprintf(msg, msg_len, "--%s: missing value; give --%s %s", o->name, o->name,
                         o->metavar ? o->metavar : "VALUE");
                return SS_CLI_ERROR;
            }
            value = argv[++i];
        }
        if (store(o, value, msg, msg_len) != 0) {
            return SS_CLI_ERROR;
        }
    }
    return SS_CLI_PARSED;
}

void ss_cli_print_options(void *fp, const ss_cli_opt_t *opts, int nopts)
{
    FILE *f = fp;
    for (int i = 0; i < nopts; i++) {
        char left[64];
        const char *mv =
            opts[i].type == SS_OPT_FLAG ? "" : (opts[i].metavar ? opts[i].metavar : "X");
        if (opts[i].short_name) {
            snprintf(left, sizeof(left), "-%c, --%s%s%s", opts[i].short_name, opts[i].name,
                     *mv ? " " : "", mv);
        } else {
            snprintf(left, sizeof(left), "    --%s%s%s", opts[i].name, *mv ? " " : "", mv);
        }
        fprintf(f, "  %-28s %s\n", left, opts[i].help);
    }
}
