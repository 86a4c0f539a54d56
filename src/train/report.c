// report: metrics.jsonl and config.ini of a run -> summary numbers and a one-page PNG (report.h).
#include "shardseg/report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/plot.h"
#include "shardseg/timer.h"

void ss_report_init(ss_report_t *r)
{
    memset(r, 0, sizeof(*r));
}

void ss_report_fini(ss_report_t *r)
{
    free(r->steps);
    free(r->vals);
    ss_report_init(r);
}

// --- metrics.jsonl -----------------------------------------------------------------------------

static ss_status_t
grow(void **p, int64_t *cap, int64_t need, size_t elem, const char *path, ss_error_t *err)
{
    if (need <= *cap) {
        return SS_OK;
    }
    int64_t c = *cap > 0 ? 2 * *cap : 256;
    void *q = realloc(*p, (size_t)c * elem);
    if (q == NULL) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory for %lld records", path, (long long)c);
    }
    *p = q;
    *cap = c;
    return SS_OK;
}

static ss_status_t bad_line(ss_error_t *err, const char *path, int64_t line, const char *what)
{
    return ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                        "%s:%lld: %s; fix or delete that line (only the last line of a killed run "
                        "may be incomplete)",
                        path, (long long)line, what);
}

// A number, or NaN for null or an absent key; -1 for any other JSON type.
static int get_num(const json_t *o, const char *key, double *v)
{
    const json_t *j = json_object_get(o, key);
    *v = NAN;
    if (j == NULL || json_is_null(j)) {
        return 0;
    }
    if (!json_is_number(j)) {
        return -1;
    }
    *v = json_number_value(j);
    return 0;
}

static ss_status_t parse_step(
    ss_report_t *r, const json_t *o, int64_t step, const char *path, int64_t line, ss_error_t *err)
{
    static const char *const keys[6] = {"loss", "lr", "dice_loss", "ce_loss", "ms", "data_wait_ms"};
    double v[6];
    for (int i = 0; i < 6; i++) {
        if (get_num(o, keys[i], &v[i]) != 0) {
            char what[64];
            snprintf(what, sizeof(what), "\"%s\" is neither a number nor null", keys[i]);
            return bad_line(err, path, line, what);
        }
    }
    const json_t *mem = json_object_get(o, "peak_mem_bytes");
    if (mem != NULL && !json_is_null(mem) &&
        (!json_is_integer(mem) || json_integer_value(mem) < 0)) {
        return bad_line(err, path, line, "\"peak_mem_bytes\" is not a byte count");
    }
    SS_TRY(grow((void **)&r->steps, &r->cap_steps, r->nsteps + 1, sizeof(*r->steps), path, err));
    ss_metrics_step_t *s = &r->steps[r->nsteps++];
    s->step = step;
    s->loss = v[0];
    s->lr = v[1];
    s->dice_loss = v[2];
    s->ce_loss = v[3];
    s->ms = v[4];
    s->data_wait_ms = v[5];
    s->peak_mem_bytes = json_is_integer(mem) ? (uint64_t)json_integer_value(mem) : 0;
    return SS_OK;
}

// Index of Dice region `name`, added on first sight; -1 when there are too many regions.
static int dice_index(ss_report_t *r, const char *name)
{
    for (int i = 0; i < r->ndice; i++) {
        if (strcmp(r->dice_name[i], name) == 0) {
            return i;
        }
    }
    if (r->ndice == SS_METRICS_MAX_DICE || strlen(name) >= sizeof(r->dice_name[0])) {
        return -1;
    }
    snprintf(r->dice_name[r->ndice], sizeof(r->dice_name[0]), "%s", name);
    return r->ndice++;
}

// The val_dice_<region> fields of o into v->dice; *count gets how many the line has.
static ss_status_t val_dice(ss_report_t *r,
                            const json_t *o,
                            ss_report_val_t *v,
                            int *count,
                            const char *path,
                            int64_t line,
                            ss_error_t *err)
{
    const char *key;
    const json_t *j;
    *count = 0;
    json_object_foreach((json_t *)o, key, j)
    {
        if (strncmp(key, "val_dice_", 9) != 0 || strcmp(key + 9, "mean") == 0) {
            continue;
        }
        int c = dice_index(r, key + 9);
        if (c < 0) {
            return bad_line(err, path, line,
                            "more than 8 Dice regions or a region name over 23 "
                            "characters");
        }
        if (get_num(o, key, &v->dice[c]) != 0) {
            return bad_line(err, path, line, "a \"val_dice_\" field is neither a number nor null");
        }
        (*count)++;
    }
    return SS_OK;
}

static ss_status_t parse_val(
    ss_report_t *r, const json_t *o, int64_t step, const char *path, int64_t line, ss_error_t *err)
{
    ss_report_val_t v;
    v.step = step;
    for (int c = 0; c < SS_METRICS_MAX_DICE; c++) {
        v.dice[c] = NAN;
    }
    int count;
    SS_TRY(val_dice(r, o, &v, &count, path, line, err));
    if (get_num(o, "val_dice_mean", &v.dice_mean) != 0 || get_num(o, "val_loss", &v.loss) != 0) {
        return bad_line(err, path, line, "\"val_dice_mean\" or \"val_loss\" is not a number");
    }
    // The writer omits the mean of a single region: that region's Dice is the mean.
    if (json_object_get(o, "val_dice_mean") == NULL && count == 1) {
        for (int c = 0; c < r->ndice; c++) {
            v.dice_mean = isnan(v.dice_mean) ? v.dice[c] : v.dice_mean;
        }
    }
    SS_TRY(grow((void **)&r->vals, &r->cap_vals, r->nval + 1, sizeof(*r->vals), path, err));
    r->vals[r->nval++] = v;
    return SS_OK;
}

static int has_val_field(const json_t *o)
{
    const char *key;
    const json_t *j;
    json_object_foreach((json_t *)o, key, j)
    {
        if (strncmp(key, "val_", 4) == 0) {
            return 1;
        }
    }
    return 0;
}

static ss_status_t
parse_record(ss_report_t *r, const json_t *o, const char *path, int64_t line, ss_error_t *err)
{
    if (!json_is_object(o)) {
        return bad_line(err, path, line, "not a JSON object");
    }
    const json_t *js = json_object_get(o, "step");
    if (!json_is_integer(js) || json_integer_value(js) < 0) {
        return bad_line(err, path, line, "no \"step\" (a non-negative integer)");
    }
    int64_t step = (int64_t)json_integer_value(js);
    if (json_object_get(o, "loss") != NULL) {
        return parse_step(r, o, step, path, line, err);
    }
    if (has_val_field(o)) {
        return parse_val(r, o, step, path, line, err);
    }
    return bad_line(err, path, line,
                    "neither a training step (\"loss\") nor a validation (\"val_dice_...\")");
}

static int blank(const char *s, size_t n)
{
    return strspn(s, " \t\r\n") == n;
}

// The lines of an open file. A line without its newline is the last one: when it is not valid
// JSON it is a record cut short by a kill, and skipped.
static ss_status_t read_lines(ss_report_t *r, FILE *f, const char *path, ss_error_t *err)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t line = 0;
    ss_status_t st = SS_OK;
    while (st == SS_OK && (n = getline(&buf, &cap, f)) > 0) {
        line++;
        if (blank(buf, (size_t)n)) {
            continue;
        }
        json_error_t je;
        json_t *o = json_loadb(buf, (size_t)n, 0, &je);
        if (o == NULL && buf[n - 1] != '\n') {
            r->partial_last = 1;
            break;
        }
        if (o == NULL) {
            char what[200];
            snprintf(what, sizeof(what), "not JSON (%s at column %d)", je.text, je.column);
            st = bad_line(err, path, line, what);
        } else {
            st = parse_record(r, o, path, line, err);
        }
        json_decref(o);
    }
    free(buf);
    if (st == SS_OK && ferror(f)) {
        st = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                          "%s: read error after line %lld: %s; check the disk", path,
                          (long long)line, strerror(errno));
    }
    return st;
}

ss_status_t ss_report_load(ss_report_t *r, const char *path, ss_error_t *err)
{
    r->nsteps = r->nval = 0;
    r->ndice = 0;
    r->partial_last = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        SS_FAIL_LIB(err, SS_EINVAL, e,
                    "%s: cannot read: %s; give the output directory of a shardseg train run", path,
                    strerror(e));
    }
    ss_status_t st = read_lines(r, f, path, err);
    fclose(f);
    SS_TRY(st);
    if (r->nsteps == 0) {
        SS_FAIL(err, SS_EFORMAT,
                "%s: no training-step records (%s); wait until the run has logged a step", path,
                r->nval > 0 ? "only validations" : "the file is empty");
    }
    return SS_OK;
}

// --- config.ini --------------------------------------------------------------------------------

#define INI_MAX 160

typedef struct {
    char section[16], key[32], value[INI_MAX];
} ini_entry_t;

typedef struct {
    ini_entry_t e[160];
    int n;
} ini_t;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL) {
        s[--n] = '\0';
    }
    return s;
}

// One line of the file: a [section] header, a key = value pair, or something skipped.
static void ini_line(ini_t *ini, char *section, size_t slen, char *line)
{
    char *s = trim(line), *eq = strchr(s, '=');
    if (*s == '[') {
        char *end = strchr(s, ']');
        snprintf(section, slen, "%.*s", end ? (int)(end - s - 1) : 0, s + 1);
        return;
    }
    if (*s == ';' || *s == '#' || eq == NULL ||
        ini->n == (int)(sizeof(ini->e) / sizeof(ini->e[0]))) {
        return;
    }
    *eq = '\0';
    ini_entry_t *e = &ini->e[ini->n++];
    snprintf(e->section, sizeof(e->section), "%s", section);
    snprintf(e->key, sizeof(e->key), "%s", trim(s));
    snprintf(e->value, sizeof(e->value), "%s", trim(eq + 1));
}

static const char *ini_get(const ini_t *ini, const char *section, const char *key)
{
    for (int i = 0; i < ini->n; i++) {
        if (strcmp(ini->e[i].section, section) == 0 && strcmp(ini->e[i].key, key) == 0) {
            return ini->e[i].value;
        }
    }
    return NULL;
}

// Appends "label value" (or the bare value when label is "") of section.key to a line.
static void add_pair(char *out,
                     size_t len,
                     const ini_t *ini,
                     const char *section,
                     const char *key,
                     const char *label)
{
    const char *v = ini_get(ini, section, key);
    size_t n = strlen(out);
    if (v == NULL || v[0] == '\0' || n + 4 >= len) {
        return;
    }
    const char *slash = strrchr(v, '/');
    if (strcmp(key, "file") == 0 && slash != NULL) {
        v = slash + 1; // the data file's name; its folder rarely fits the line
    }
    snprintf(out + n, len - n, "%s%s%s%s", n ? ", " : "", label, label[0] ? " " : "", v);
}

static void add_config_line(ss_report_t *r, const char *key, const char *value)
{
    if (value[0] != '\0' && r->nconfig < SS_REPORT_MAX_LINES) {
        ss_report_line_t *l = &r->config[r->nconfig++];
        snprintf(l->key, sizeof(l->key), "%s", key);
        snprintf(l->value, sizeof(l->value), "%s", value);
    }
}

// One line per section, with the settings that tell runs apart.
static void config_lines(ss_report_t *r, const ini_t *ini)
{
    char v[160] = "";
    const char *model = ini_get(ini, "model", "model");
    add_pair(v, sizeof(v), ini, "model", "model", "");
    add_pair(v, sizeof(v), ini, "model", "img_size", "img_size");
    if (model != NULL && strcmp(model, "unet3d") == 0) {
        add_pair(v, sizeof(v), ini, "model", "depth", "depth");
        add_pair(v, sizeof(v), ini, "model", "base_filters", "base_filters");
    } else {
        add_pair(v, sizeof(v), ini, "model", "patch_size", "patch");
        add_pair(v, sizeof(v), ini, "model", "hidden_size", "hidden");
        add_pair(v, sizeof(v), ini, "model", "num_layers", "layers");
        add_pair(v, sizeof(v), ini, "model", "feature_size", "feature_size");
    }
    add_config_line(r, "model", v);
    // {line, section, key, label}: consecutive rows with the same line make one line.
    static const char *const rest[][4] = {
        {"weights", "model", "weights", ""},
        {"data", "data", "file", ""},
        {"data", "data", "patch", "patch"},
        {"train", "train", "steps", "steps"},
        {"train", "train", "batch", "batch"},
        {"train", "train", "seed", "seed"},
        {"train", "train", "val_interval", "val every"},
        {"optim", "optim", "name", ""},
        {"optim", "optim", "lr", "lr"},
        {"optim", "optim", "schedule", ""},
        {"optim", "optim", "warmup_steps", "warmup"},
        {"optim", "optim", "weight_decay", "weight_decay"},
        {"loss", "loss", "name", ""},
    };
    const int nrest = (int)(sizeof(rest) / sizeof(rest[0]));
    int i = 0;
    while (i < nrest) {
        const char *line = rest[i][0];
        v[0] = '\0';
        for (; i < nrest && strcmp(rest[i][0], line) == 0; i++) {
            add_pair(v, sizeof(v), ini, rest[i][1], rest[i][2], rest[i][3]);
        }
        add_config_line(r, line, v);
    }
}

ss_status_t ss_report_load_config(ss_report_t *r, const char *path, ss_error_t *err)
{
    r->nconfig = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return SS_OK;
        }
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot read: %s; check permissions", path,
                    strerror(errno));
    }
    ini_t *ini = calloc(1, sizeof(*ini));
    if (ini == NULL) {
        fclose(f);
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", path);
    }
    char line[1024], section[16] = "";
    while (fgets(line, sizeof(line), f) != NULL) {
        ini_line(ini, section, sizeof(section), line);
    }
    fclose(f);
    config_lines(r, ini);
    free(ini);
    return SS_OK;
}

// --- Summary -----------------------------------------------------------------------------------

int64_t ss_report_smooth_window(int64_t n)
{
    // Odd, so that the centred window is exactly that many steps wide.
    int64_t w = 2 * (n / 40) + 1;
    return w > 501 ? 501 : w;
}

void ss_report_moving_average(double *out, const double *x, int64_t n, int64_t window)
{
    int64_t h = window > 1 ? window / 2 : 0, lo = 0, hi = -1, cnt = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        while (hi < n - 1 && hi < i + h) {
            hi++;
            if (isfinite(x[hi])) {
                sum += x[hi];
                cnt++;
            }
        }
        while (lo < i - h) {
            if (isfinite(x[lo])) {
                sum -= x[lo];
                cnt--;
            }
            lo++;
        }
        out[i] = cnt > 0 ? sum / (double)cnt : NAN;
    }
}

// Median of the finite values of one double field of the step records.
static double field_median(const ss_report_t *r, size_t off, double *a, double *scratch)
{
    int n = 0;
    for (int64_t i = 0; i < r->nsteps; i++) {
        double v = *(const double *)((const char *)&r->steps[i] + off);
        if (isfinite(v)) {
            a[n++] = v;
        }
    }
    return n > 0 ? ss_median(a, n, scratch) : NAN;
}

static void summarize_val(const ss_report_t *r, ss_report_summary_t *s)
{
    s->nval = r->nval;
    s->best_dice = NAN;
    s->best_step = -1;
    s->last_val = r->nval - 1;
    for (int64_t i = 0; i < r->nval; i++) {
        double d = r->vals[i].dice_mean;
        if (isfinite(d) && (isnan(s->best_dice) || d > s->best_dice)) {
            s->best_dice = d;
            s->best_step = r->vals[i].step;
        }
    }
}

static void summarize_loss(const ss_report_t *r, ss_report_summary_t *s)
{
    s->final_loss = s->final_lr = s->final_loss_avg = NAN;
    s->final_loss_step = -1;
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t i = r->nsteps - 1; i >= 0; i--) {
        const ss_metrics_step_t *m = &r->steps[i];
        if (isnan(s->final_loss) && isfinite(m->loss)) {
            s->final_loss = m->loss;
            s->final_loss_step = m->step;
        }
        if (isnan(s->final_lr) && isfinite(m->lr)) {
            s->final_lr = m->lr;
        }
        if (i >= r->nsteps - s->smooth && isfinite(m->loss)) {
            sum += m->loss;
            cnt++;
        }
    }
    s->final_loss_avg = cnt > 0 ? sum / (double)cnt : NAN;
}

ss_status_t ss_report_summarize(const ss_report_t *r, ss_report_summary_t *s, ss_error_t *err)
{
    memset(s, 0, sizeof(*s));
    if (r->nsteps == 0) {
        SS_FAIL(err, SS_EINVAL, "report: no training steps to summarise");
    }
    s->nsteps = r->nsteps;
    s->first_step = r->steps[0].step;
    s->last_step = r->steps[r->nsteps - 1].step;
    s->smooth = ss_report_smooth_window(r->nsteps);
    for (int64_t i = 0; i < r->nsteps; i++) {
        const ss_metrics_step_t *m = &r->steps[i];
        s->total_ms += isfinite(m->ms) ? m->ms : 0;
        s->peak_mem_bytes =
            m->peak_mem_bytes > s->peak_mem_bytes ? m->peak_mem_bytes : s->peak_mem_bytes;
    }
    double *a = malloc(2 * (size_t)r->nsteps * sizeof(double));
    if (a == NULL) {
        SS_FAIL(err, SS_ENOMEM, "report: out of memory for %lld steps", (long long)r->nsteps);
    }
    s->median_ms = field_median(r, offsetof(ss_metrics_step_t, ms), a, a + r->nsteps);
    s->median_wait_ms =
        field_median(r, offsetof(ss_metrics_step_t, data_wait_ms), a, a + r->nsteps);
    free(a);
    summarize_val(r, s);
    summarize_loss(r, s);
    return SS_OK;
}

static const char *plural(int64_t n)
{
    return n == 1 ? "" : "s";
}

static void fmt_duration(char *buf, size_t len, double ms)
{
    double sec = ms / 1000;
    if (sec < 120) {
        snprintf(buf, len, "%.1f s", sec);
    } else if (sec < 7200) {
        snprintf(buf, len, "%.1f min", sec / 60);
    } else {
        snprintf(buf, len, "%.2f h", sec / 3600);
    }
}

static void fmt_bytes(char *buf, size_t len, uint64_t b)
{
    double mib = (double)b / (1024.0 * 1024.0);
    if (mib < 1024) {
        snprintf(buf, len, "%.1f MiB", mib);
    } else {
        snprintf(buf, len, "%.2f GiB", mib / 1024);
    }
}

// A region's display name: abbreviations ("wt", "tc", "et") in capitals, words as they are.
static void region_label(char *out, size_t len, const char *s)
{
    size_t i = 0, caps = strlen(s) <= 3;
    for (; s[i] != '\0' && i + 1 < len; i++) {
        out[i] = (char)(caps && s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    }
    out[i] = '\0';
}

// "WT 0.9012, TC 0.8123, ET 0.7012, mean 0.8049 (step 4000)" of validation v.
static void fmt_val(char *buf, size_t len, const ss_report_t *r, const ss_report_val_t *v)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int c = 0; c < r->ndice && n < len; c++) {
        char name[24];
        region_label(name, sizeof(name), r->dice_name[c]);
        n += (size_t)snprintf(buf + n, len - n, "%s %.4f, ", name, v->dice[c]);
    }
    if (n < len && r->ndice > 1) {
        snprintf(buf + n, len - n, "mean %.4f (step %lld)", v->dice_mean, (long long)v->step);
    } else if (n >= 2 && n < len) {
        snprintf(buf + n - 2, len - n + 2, " (step %lld)", (long long)v->step);
    }
}

// x with prec digits ("%.*g" when general, else "%.*f") and unit, or "n/a" when not finite.
static const char *num(char *buf, size_t len, double x, int prec, int general, const char *unit)
{
    if (!isfinite(x)) {
        return "n/a";
    }
    if (general) {
        snprintf(buf, len, "%.*g%s", prec, x, unit);
    } else {
        snprintf(buf, len, "%.*f%s", prec, x, unit);
    }
    return buf;
}

static void put(ss_report_line_t *out, int max, int *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void put(ss_report_line_t *out, int max, int *n, const char *key, const char *fmt, ...)
{
    if (*n >= max) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    snprintf(out[*n].key, sizeof(out[*n].key), "%s", key);
    vsnprintf(out[*n].value, sizeof(out[*n].value), fmt, ap);
    va_end(ap);
    (*n)++;
}

int ss_report_summary_lines(const ss_report_t *r,
                            const ss_report_summary_t *s,
                            ss_report_line_t *out,
                            int max)
{
    int n = 0;
    char a[128], b[128];
    put(out, max, &n, "steps", "%lld (last step %lld)", (long long)s->nsteps,
        (long long)s->last_step);
    if (isfinite(s->best_dice)) {
        char regions[48] = "";
        if (r->ndice > 1) {
            snprintf(regions, sizeof(regions), "mean of %d regions; ", r->ndice);
        }
        put(out, max, &n, "best val Dice", "%.4f at step %lld (%s%lld validation%s)", s->best_dice,
            (long long)s->best_step, regions, (long long)s->nval, plural(s->nval));
        fmt_val(a, sizeof(a), r, &r->vals[s->last_val]);
        put(out, max, &n, "last val Dice", "%s", a);
    } else {
        put(out, max, &n, "best val Dice", "none (%lld validation%s)", (long long)s->nval,
            plural(s->nval));
    }
    if (isnan(s->final_loss)) {
        put(out, max, &n, "final loss", "none (every loss is null)");
    } else if (s->smooth > 1) {
        put(out, max, &n, "final loss", "%.4f at step %lld (mean of the last %lld: %.4f)",
            s->final_loss, (long long)s->final_loss_step, (long long)s->smooth, s->final_loss_avg);
    } else {
        put(out, max, &n, "final loss", "%.4f at step %lld", s->final_loss,
            (long long)s->final_loss_step);
    }
    put(out, max, &n, "final lr", "%s", num(a, sizeof(a), s->final_lr, 4, 1, ""));
    put(out, max, &n, "median step time", "%s (data wait %s)",
        num(a, sizeof(a), s->median_ms, 1, 0, " ms"),
        num(b, sizeof(b), s->median_wait_ms, 1, 0, " ms"));
    fmt_duration(a, sizeof(a), s->total_ms);
    put(out, max, &n, "train time", "%s (sum of step times)", a);
    fmt_bytes(b, sizeof(b), s->peak_mem_bytes);
    put(out, max, &n, "peak memory", "%s", b);
    if (r->partial_last) {
        put(out, max, &n, "note", "the last line was incomplete (run killed?) and was skipped");
    }
    return n;
}

// --- The page ----------------------------------------------------------------------------------

// Columns of the records as plain arrays, the shape ss_plot_series_t wants; one allocation.
typedef struct {
    double *x, *loss, *loss_avg, *dice_avg, *ce_avg, *lr, *tmp;
    double *vx, *vmean, *vdice[SS_METRICS_MAX_DICE];
    double *block;
} columns_t;

static ss_status_t columns_make(columns_t *c, const ss_report_t *r, int64_t smooth, ss_error_t *err)
{
    int64_t n = r->nsteps, nv = r->nval;
    memset(c, 0, sizeof(*c));
    c->block = malloc((size_t)(7 * n + (2 + SS_METRICS_MAX_DICE) * nv + 1) * sizeof(double));
    if (c->block == NULL) {
        SS_FAIL(err, SS_ENOMEM, "report: out of memory for the curves of %lld steps", (long long)n);
    }
    double **cols[7] = {&c->x, &c->loss, &c->loss_avg, &c->dice_avg, &c->ce_avg, &c->lr, &c->tmp};
    for (int k = 0; k < 7; k++) {
        *cols[k] = c->block + k * n;
    }
    c->vx = c->block + 7 * n;
    c->vmean = c->vx + nv;
    for (int d = 0; d < SS_METRICS_MAX_DICE; d++) {
        c->vdice[d] = c->vmean + (1 + d) * nv;
    }
    for (int64_t i = 0; i < n; i++) {
        c->x[i] = (double)r->steps[i].step;
        c->loss[i] = r->steps[i].loss;
        c->lr[i] = r->steps[i].lr;
    }
    ss_report_moving_average(c->loss_avg, c->loss, n, smooth);
    for (int64_t i = 0; i < n; i++) {
        c->tmp[i] = r->steps[i].dice_loss;
    }
    ss_report_moving_average(c->dice_avg, c->tmp, n, smooth);
    for (int64_t i = 0; i < n; i++) {
        c->tmp[i] = r->steps[i].ce_loss;
    }
    ss_report_moving_average(c->ce_avg, c->tmp, n, smooth);
    for (int64_t i = 0; i < nv; i++) {
        c->vx[i] = (double)r->vals[i].step;
        c->vmean[i] = r->vals[i].dice_mean;
        for (int d = 0; d < r->ndice; d++) {
            c->vdice[d][i] = r->vals[i].dice[d];
        }
    }
    return SS_OK;
}

static int any_finite(const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(x[i])) {
            return 1;
        }
    }
    return 0;
}

static ss_plot_color_t alpha(ss_plot_color_t c, double a)
{
    c.a = a;
    return c;
}

static ss_plot_series_t series(const double *x,
                               const double *y,
                               int64_t n,
                               ss_plot_color_t color,
                               double width,
                               const char *label)
{
    ss_plot_series_t s = {x, y, n, color, width, 0, label};
    return s;
}

static int loss_log_scale(const columns_t *c, int64_t n, ss_report_scale_t scale)
{
    if (scale != SS_REPORT_SCALE_AUTO) {
        return scale == SS_REPORT_SCALE_LOG;
    }
    double lo = INFINITY, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(c->loss[i]) && c->loss[i] > 0) {
            lo = fmin(lo, c->loss[i]);
            hi = fmax(hi, c->loss[i]);
        }
    }
    return hi > 10 * lo;
}

static void draw_loss(ss_plot_t *p,
                      ss_plot_axes_t *ax,
                      const columns_t *c,
                      const ss_report_t *r,
                      const ss_report_summary_t *s,
                      ss_report_scale_t scale)
{
    ss_plot_series_t sr[4];
    int ns = 0;
    char avg[64];
    int64_t n = r->nsteps;
    int smooth = s->smooth > 1;
    snprintf(avg, sizeof(avg), "loss, mean of %lld", (long long)s->smooth);
    if (smooth) {
        sr[ns++] = series(c->x, c->loss, n, alpha(ss_plot_palette(0), 0.3), 1, "loss per step");
    }
    sr[ns++] = series(c->x, smooth ? c->loss_avg : c->loss, n, ss_plot_palette(0), 2.5,
                      smooth ? avg : "loss");
    // The parts are drawn smoothed only: their raw lines would hide the total's.
    if (any_finite(c->dice_avg, n)) {
        sr[ns++] = series(c->x, c->dice_avg, n, ss_plot_palette(1), 1.8, "Dice loss");
    }
    if (any_finite(c->ce_avg, n)) {
        sr[ns++] = series(c->x, c->ce_avg, n, ss_plot_palette(2), 1.8, "CE loss");
    }
    ax->title = "Training loss";
    ax->legend = SS_PLOT_LEGEND_ABOVE;
    ax->ylog = loss_log_scale(c, n, scale);
    ax->ylabel = ax->ylog ? "loss (log scale)" : "loss";
    ss_plot_panel(p, ax, sr, ns);
}

// WT green, TC orange, ET red (as in most BraTS figures), further regions from the palette.
static ss_plot_color_t region_color(int d)
{
    static const int idx[3] = {2, 1, 3};
    return ss_plot_palette(d < 3 ? idx[d] : d + 1);
}

static void draw_dice(ss_plot_t *p,
                      ss_plot_axes_t *ax,
                      const columns_t *c,
                      const ss_report_t *r,
                      const ss_report_summary_t *s)
{
    ss_plot_series_t sr[SS_METRICS_MAX_DICE + 1];
    char names[SS_METRICS_MAX_DICE][24], mean[64], best[48] = "";
    int ns = 0, markers = r->nval <= 60;
    if (isfinite(s->best_dice)) {
        snprintf(best, sizeof(best), " (best %.3f at %lld)", s->best_dice, (long long)s->best_step);
    }
    // With one region the mean is that region: one line.
    for (int d = 0; d < r->ndice && r->ndice > 1; d++) {
        region_label(names[d], sizeof(names[d]), r->dice_name[d]);
        sr[ns] = series(c->vx, c->vdice[d], r->nval, region_color(d), 2, names[d]);
        sr[ns++].markers = markers;
    }
    char one[24];
    region_label(one, sizeof(one), r->ndice == 1 ? r->dice_name[0] : "mean");
    snprintf(mean, sizeof(mean), "%s%s", one, best);
    ss_plot_color_t dark = {0.1, 0.1, 0.1, 1};
    sr[ns] = series(c->vx, c->vmean, r->nval, dark, 3, mean);
    sr[ns++].markers = markers;
    ax->title = "Validation Dice";
    ax->ylabel = "Dice";
    ax->legend = SS_PLOT_LEGEND_ABOVE;
    ax->ymin = 0;
    ax->ymax = 1;
    ss_plot_panel(p, ax, sr, ns);
}

static void draw_lr(ss_plot_t *p, ss_plot_axes_t *ax, const columns_t *c, const ss_report_t *r)
{
    ss_plot_series_t sr = series(c->x, c->lr, r->nsteps, ss_plot_palette(4), 2.2, NULL);
    ax->title = "Learning rate";
    ax->ylabel = "learning rate";
    ax->ymin = 0;
    ax->legend = SS_PLOT_LEGEND_NONE;
    ss_plot_panel(p, ax, &sr, 1);
}

// Shortens text with an ellipsis until it fits width pixels.
static void fit(ss_plot_t *p, char *text, double size, int flags, double width)
{
    size_t n = strlen(text);
    while (n > 3 && ss_plot_text_width(p, size, flags, text) > width) {
        n--;
        while (n > 0 && (text[n] & 0xC0) == 0x80) {
            n--; // never cut a UTF-8 sequence in two
        }
        memcpy(text + n, "\xe2\x80\xa6", 4);
    }
}

// A heading and key/value rows from y on, rows `step` pixels apart; returns the y after them.
static double draw_lines(ss_plot_t *p,
                         double x,
                         double y,
                         double w,
                         double step,
                         const char *heading,
                         const ss_report_line_t *l,
                         int n)
{
    const ss_plot_color_t ink = {0.15, 0.15, 0.15, 1}, key = {0.38, 0.38, 0.38, 1};
    double size = fmin(16, 0.64 * step);
    ss_plot_text(p, x, y, size + 1, SS_PLOT_TEXT_BOLD, ink, heading);
    y += 1.2 * step;
    for (int i = 0; i < n; i++) {
        char v[sizeof(l[i].value) + 4];
        snprintf(v, sizeof(v), "%s", l[i].value);
        fit(p, v, size, 0, w - 180);
        ss_plot_text(p, x, y, size, 0, key, l[i].key);
        ss_plot_text(p, x + 170, y, size, 0, ink, v);
        y += step;
    }
    return y + 0.5 * step;
}

// The summary and configuration lines in a shaded box that lines up with the frame of the
// panel beside it; the rows close up when there are many.
static void
draw_summary(ss_plot_t *p, ss_plot_axes_t *box, const ss_report_t *r, const ss_report_summary_t *s)
{
    ss_report_line_t lines[SS_REPORT_MAX_LINES];
    int n = ss_report_summary_lines(r, s, lines, SS_REPORT_MAX_LINES);
    const ss_plot_color_t bg = {0.975, 0.975, 0.975, 1}, edge = {0.55, 0.55, 0.55, 1};
    const ss_plot_color_t ink = {0.15, 0.15, 0.15, 1};
    double top, bottom, x = box->x + 10, w = box->w - 26;
    box->title = "Summary";
    ss_plot_frame_rows(box, &top, &bottom);
    ss_plot_text(p, x, box->y + 24, 19, SS_PLOT_TEXT_BOLD, ink, box->title);
    ss_plot_rect(p, floor(x) + 0.5, floor(top) + 0.5, floor(w), floor(bottom - top), bg, edge, 1);
    // Rows, headings (1.2 rows) and the gap after each block (0.5), in units of one row.
    double units = n + r->nconfig + 1.7 * (1 + (r->nconfig > 0)) + 1;
    double step = fmin(26, (bottom - top - 20) / units);
    double y = draw_lines(p, x + 20, top + 20 + step, w - 40, step, "Run", lines, n);
    if (r->nconfig > 0) {
        draw_lines(p, x + 20, y, w - 40, step, "Configuration (config.ini)", r->config, r->nconfig);
    }
}

static void draw_header(ss_plot_t *p, int width, const char *title, const ss_report_t *r)
{
    const ss_plot_color_t ink = {0.1, 0.1, 0.1, 1}, grey = {0.4, 0.4, 0.4, 1};
    char sub[256], t[512];
    snprintf(t, sizeof(t), "shardseg training report \xe2\x80\x94 %s", title);
    fit(p, t, 26, SS_PLOT_TEXT_BOLD, width - 80);
    ss_plot_text(p, 40, 50, 26, SS_PLOT_TEXT_BOLD, ink, t);
    snprintf(sub, sizeof(sub), "%lld training step%s and %lld validation%s from metrics.jsonl%s",
             (long long)r->nsteps, plural(r->nsteps), (long long)r->nval, plural(r->nval),
             r->partial_last ? " (an incomplete last line was skipped)" : "");
    ss_plot_text(p, 40, 78, 16, 0, grey, sub);
    ss_plot_color_t rule = {0.8, 0.8, 0.8, 1};
    ss_plot_rect(p, 40, 94, width - 80, 1, rule, rule, 0);
}

// Steps shared by all panels, so that they line up: from 0 when the log starts near it.
static void step_range(const ss_report_t *r, double *lo, double *hi)
{
    *lo = (double)r->steps[0].step;
    *hi = (double)r->steps[r->nsteps - 1].step;
    for (int64_t i = 0; i < r->nval; i++) {
        *lo = fmin(*lo, (double)r->vals[i].step);
        *hi = fmax(*hi, (double)r->vals[i].step);
    }
    *lo = *lo <= 0.05 * *hi ? 0 : *lo;
}

static void draw_page(ss_plot_t *p,
                      int w,
                      int h,
                      const columns_t *c,
                      const ss_report_t *r,
                      const ss_report_summary_t *s,
                      const ss_report_plot_opts_t *o)
{
    const double top = 104, gap = 24, side = 24;
    double pw = (w - 2 * side - gap) / 2, ph = (h - top - side - gap) / 2;
    double lo, hi;
    step_range(r, &lo, &hi);
    draw_header(p, w, o->title ? o->title : "training run", r);
    ss_plot_axes_t ax[4];
    for (int i = 0; i < 4; i++) {
        ss_plot_axes_init(&ax[i], side + (i % 2) * (pw + gap), top + (i / 2) * (ph + gap), pw, ph);
        ax[i].xmin = lo;
        ax[i].xmax = hi;
        ax[i].xinteger = 1;
        ax[i].xlabel = "step";
    }
    draw_loss(p, &ax[0], c, r, s, o->loss_scale);
    draw_dice(p, &ax[1], c, r, s);
    draw_lr(p, &ax[2], c, r);
    draw_summary(p, &ax[3], r, s);
}

ss_status_t ss_report_plot_png(const ss_report_t *r,
                               const ss_report_summary_t *s,
                               const ss_report_plot_opts_t *o,
                               const char *path,
                               ss_error_t *err)
{
    ss_report_plot_opts_t d = {0, 0, SS_REPORT_SCALE_AUTO, NULL};
    o = o != NULL ? o : &d;
    int w = o->width > 0 ? o->width : 1800, h = o->height > 0 ? o->height : 1200;
    if (r->nsteps == 0) {
        SS_FAIL(err, SS_EINVAL, "%s: no training steps to plot", path);
    }
    columns_t c;
    SS_TRY(columns_make(&c, r, s->smooth, err));
    ss_plot_t *p = NULL;
    ss_status_t st = ss_plot_create(w, h, &p, err);
    if (st == SS_OK) {
        draw_page(p, w, h, &c, r, s, o);
        st = ss_plot_write_png(p, path, err);
    }
    ss_plot_destroy(&p);
    free(c.block);
    return st;
}
