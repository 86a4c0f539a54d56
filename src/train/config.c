// config: `shardseg train` configuration (INI via libinih + command-line overrides); the key
// table below is the single list that parsing, resolution and writing share.
#include "shardseg/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/weights.h"

#include "train_impl.h"

enum {
    T_STR,
    T_I64,
    T_INT,
    T_U64,
    T_DBL,
    T_BOOL,
    T_SIZE3,
    T_ENUM,
    T_CHOICE,
    T_BETAS,
    T_FLIP,
    T_CONST
};

typedef struct {
    const char *section, *key;
    int type;
    size_t off;
    const char *const *names; // T_ENUM (index = enum value), T_CHOICE, T_CONST (names[0])
    size_t size;              // T_STR, T_CHOICE: buffer size
    int arch;                 // architecture key: taken from model.weights when that is set
} key_def_t;

static const char *const g_kinds[] = {"unetr", "unet3d", NULL};
static const char *const g_norms[] = {"instance", "batch", NULL};
static const char *const g_conv[] = {"conv", NULL};
static const char *const g_optims[] = {"adamw", "adam", "sgd", NULL};
static const char *const g_scheds[] = {"constant", "step", "cosine", "poly", NULL};
static const char *const g_losses[] = {"ce", "dice", "dice_ce", NULL};
static const char *const g_acts[] = {"softmax", "sigmoid", NULL};
static const char *const g_metrics[] = {"dice_mean", "dice_wt", "dice_tc", "dice_et", "loss", NULL};

#define O(f) offsetof(ss_train_config_t, f)
#define S(f) O(f), NULL, sizeof(((ss_train_config_t *)0)->f)
static const key_def_t g_keys[] = {
    {"model", "model", T_ENUM, O(model.kind), g_kinds, 0, 1},
    {"model", "weights", T_STR, S(weights), 0},
    {"model", "in_channels", T_I64, O(model.in_channels), NULL, 0, 1},
    {"model", "out_channels", T_I64, O(model.out_channels), NULL, 0, 1},
    {"model", "img_size", T_SIZE3, O(model.img_size), NULL, 0, 1},
    {"model", "patch_size", T_SIZE3, O(model.patch_size), NULL, 0, 1},
    {"model", "feature_size", T_I64, O(model.feature_size), NULL, 0, 1},
    {"model", "hidden_size", T_I64, O(model.hidden_size), NULL, 0, 1},
    {"model", "mlp_dim", T_I64, O(model.mlp_dim), NULL, 0, 1},
    {"model", "num_heads", T_I64, O(model.num_heads), NULL, 0, 1},
    {"model", "num_layers", T_I64, O(model.num_layers), NULL, 0, 1},
    {"model", "qkv_bias", T_BOOL, O(model.qkv_bias), NULL, 0, 1},
    {"model", "res_block", T_BOOL, O(model.res_block), NULL, 0, 1},
    {"model", "conv_block", T_BOOL, O(model.conv_block), NULL, 0, 1},
    {"model", "dropout_rate", T_DBL, O(model.dropout_rate), NULL, 0, 1},
    {"model", "proj_type", T_CONST, 0, g_conv, 0, 1},
    {"model", "norm_name", T_ENUM, O(model.norm), g_norms, 0, 1},
    {"model", "depth", T_I64, O(model.depth), NULL, 0, 1},
    {"model", "base_filters", T_I64, O(model.base_filters), NULL, 0, 1},
    {"model", "convs_per_level", T_I64, O(model.convs_per_level), NULL, 0, 1},
    {"data", "file", T_STR, S(data), 0},
    {"data", "patch", T_SIZE3, O(patch), NULL, 0, 0},
    {"data", "fold", T_INT, O(fold), NULL, 0, 0},
    {"data", "samples_per_case", T_I64, O(samples_per_case), NULL, 0, 0},
    {"data", "fg_fraction", T_DBL, O(fg_fraction), NULL, 0, 0},
    {"data", "fg_samples", T_INT, O(fg_samples), NULL, 0, 0},
    {"data", "flip", T_FLIP, O(flip_axes), NULL, 0, 0},
    {"data", "intensity_scale", T_DBL, O(intensity_scale), NULL, 0, 0},
    {"data", "intensity_shift", T_DBL, O(intensity_shift), NULL, 0, 0},
    {"data", "prefetch", T_INT, O(prefetch), NULL, 0, 0},
    {"data", "rot90", T_BOOL, O(rot90), NULL, 0, 0},
    {"data", "cache_mb", T_I64, O(cache_mb), NULL, 0, 0},
    {"data", "spatial_p", T_DBL, O(spatial_p), NULL, 0, 0},
    {"data", "rotate", T_DBL, O(rotate), NULL, 0, 0},
    {"data", "zoom", T_DBL, O(zoom), NULL, 0, 0},
    {"data", "gamma_p", T_DBL, O(gamma_p), NULL, 0, 0},
    {"data", "gamma", T_DBL, O(gamma), NULL, 0, 0},
    {"train", "steps", T_I64, O(steps), NULL, 0, 0},
    {"train", "epochs", T_I64, O(epochs), NULL, 0, 0},
    {"train", "batch", T_I64, O(batch), NULL, 0, 0},
    {"train", "seed", T_U64, O(seed), NULL, 0, 0},
    {"train", "threads", T_INT, O(threads), NULL, 0, 0},
    {"train", "val_interval", T_I64, O(val_interval), NULL, 0, 0},
    {"train", "val_metric", T_CHOICE, O(val_metric), g_metrics,
     sizeof(((ss_train_config_t *)0)->val_metric), 0},
    {"train", "val_cases", T_I64, O(val_cases), NULL, 0, 0},
    {"train", "val_overlap", T_DBL, O(val_overlap), NULL, 0, 0},
    {"train", "checkpoint_interval", T_I64, O(checkpoint_interval), NULL, 0, 0},
    {"train", "keep_checkpoints", T_INT, O(keep_checkpoints), NULL, 0, 0},
    {"train", "time_limit", T_DBL, O(time_limit), NULL, 0, 0},
    {"optim", "name", T_ENUM, O(step.optim), g_optims, 0, 0},
    {"optim", "lr", T_DBL, O(step.lr.lr0), NULL, 0, 0},
    {"optim", "weight_decay", T_DBL, O(step.adam.weight_decay), NULL, 0, 0},
    {"optim", "betas", T_BETAS, O(step.adam), NULL, 0, 0},
    {"optim", "eps", T_DBL, O(step.adam.eps), NULL, 0, 0},
    {"optim", "momentum", T_DBL, O(step.sgd.momentum), NULL, 0, 0},
    {"optim", "dampening", T_DBL, O(step.sgd.dampening), NULL, 0, 0},
    {"optim", "nesterov", T_BOOL, O(step.sgd.nesterov), NULL, 0, 0},
    {"optim", "clip_norm", T_DBL, O(step.clip_norm), NULL, 0, 0},
    {"optim", "schedule", T_ENUM, O(step.lr.kind), g_scheds, 0, 0},
    {"optim", "warmup_steps", T_I64, O(step.lr.warmup_steps), NULL, 0, 0},
    {"optim", "warmup_start_factor", T_DBL, O(step.lr.warmup_start_factor), NULL, 0, 0},
    {"optim", "t_max", T_I64, O(step.lr.t_max), NULL, 0, 0},
    {"optim", "eta_min", T_DBL, O(step.lr.eta_min), NULL, 0, 0},
    {"optim", "power", T_DBL, O(step.lr.power), NULL, 0, 0},
    {"optim", "step_size", T_I64, O(step.lr.step_size), NULL, 0, 0},
    {"optim", "gamma", T_DBL, O(step.lr.gamma), NULL, 0, 0},
    {"loss", "name", T_ENUM, O(loss_kind), g_losses, 0, 0},
    {"loss", "act", T_ENUM, O(step.loss.act), g_acts, 0, 0},
    {"loss", "smooth_nr", T_DBL, O(step.loss.smooth_nr), NULL, 0, 0},
    {"loss", "smooth_dr", T_DBL, O(step.loss.smooth_dr), NULL, 0, 0},
    {"loss", "squared_pred", T_BOOL, O(step.loss.squared_pred), NULL, 0, 0},
    {"loss", "include_background", T_BOOL, O(step.loss.include_background), NULL, 0, 0},
    {"loss", "batch", T_BOOL, O(step.loss.batch), NULL, 0, 0},
    {"output", "dir", T_STR, S(out_dir), 0},
    {"output", "log", T_STR, S(log), 0},
};
#undef S
#undef O
#define NKEYS ((int)(sizeof(g_keys) / sizeof(g_keys[0])))
static const char *const g_sections[] = {"model", "data", "train", "optim", "loss", "output", NULL};

void ss_train_config_default(ss_train_config_t *c)
{
    memset(c, 0, sizeof(*c));
    ss_model_config_default(&c->model, SS_MODEL_UNETR);
    memcpy(c->patch, c->model.img_size, sizeof(c->patch));
    c->fold = -1;
    c->samples_per_case = 1;
    c->fg_fraction = 0.33;
    c->fg_samples = 4096;
    c->flip_axes = 7;
    c->intensity_scale = 0.1;
    c->intensity_shift = 0.1;
    c->prefetch = 2;
    c->cache_mb = 2048;
    c->rotate = 30;
    c->zoom = 0.3;
    c->gamma = 0.5;
    c->steps = 1000;
    c->batch = 1;
    c->val_interval = 100;
    snprintf(c->val_metric, sizeof(c->val_metric), "dice_mean");
    c->val_overlap = 0.25;
    c->checkpoint_interval = 100;
    c->keep_checkpoints = 2;
    ss_step_config_default(&c->step);
    c->step.lr.t_max = 0; // resolved by the trainer: the run's length after warm-up
    c->loss_kind = SS_LOSS_DICE_CE;
    snprintf(c->out_dir, sizeof(c->out_dir), "run");
    snprintf(c->log, sizeof(c->log), "metrics.jsonl");
}

// --- value parsing (type only; ranges are checked once everything is resolved) -----------------

static int parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0) {
        return -1;
    }
    *v = x;
    return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (s[0] == '-' || end == s || *end != '\0' || errno != 0) {
        return -1;
    }
    *v = x;
    return 0;
}

static int parse_dbl(const char *s, double *v)
{
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(x)) {
        return -1;
    }
    *v = x;
    return 0;
}

static int parse_bool(const char *s, int *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *v = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

// "96", "96x96x96" or "96,96,96"; or two doubles "0.9,0.999" (n == 2, as doubles).
static int parse_list(const char *s, int n, int64_t *iv, double *dv)
{
    char buf[128], *save = NULL;
    int k = 0;
    if (strlen(s) >= sizeof(buf)) {
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *t = strtok_r(buf, iv ? "x, " : ", ", &save); t;
         t = strtok_r(NULL, iv ? "x, " : ", ", &save)) {
        if (k == n || (iv ? parse_i64(t, &iv[k]) : parse_dbl(t, &dv[k])) != 0) {
            return -1;
        }
        k++;
    }
    if (iv != NULL && k == 1) {
        iv[1] = iv[2] = iv[0];
        return 0;
    }
    return k == n ? 0 : -1;
}

static int parse_flip(const char *s, int *v)
{
    int m = 0;
    if (strcmp(s, "none") == 0) {
        *v = 0;
        return 0;
    }
    for (const char *p = s; *p; p++) {
        const char *q = strchr("ijk", *p);
        if (*p == '\0' || q == NULL || (m & (1 << (q - "ijk")))) {
            return -1;
        }
        m |= 1 << (q - "ijk");
    }
    *v = m;
    return *s ? 0 : -1;
}

static int find_name(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

// Stores value into the key's field; NULL on success, else why it is not valid.
static const char *apply_value(const key_def_t *k, ss_train_config_t *c, const char *v)
{
    char *p = (char *)c + k->off;
    int64_t i3[3];
    double d2[2];
    int b, e;
    switch (k->type) {
    case T_STR:
        if (strlen(v) >= k->size) {
            return "is too long";
        }
        snprintf(p, k->size, "%s", v);
        return NULL;
    case T_I64:
        return parse_i64(v, (int64_t *)(void *)p) ? "is not an integer; write e.g. 4" : NULL;
    case T_INT:
        if (parse_i64(v, i3) || i3[0] < -2147483647 || i3[0] > 2147483647) {
            return "is not an integer; write e.g. 4";
        }
        *(int *)(void *)p = (int)i3[0];
        return NULL;
    case T_U64:
        return parse_u64(v, (uint64_t *)(void *)p) ? "is not a non-negative integer; write e.g. 42"
                                                   : NULL;
    case T_DBL:
        return parse_dbl(v, (double *)(void *)p) ? "is not a number; write e.g. 1e-4" : NULL;
    case T_BOOL:
        if (parse_bool(v, &b)) {
            return "is not a boolean; write 1/0, true/false, yes/no or on/off";
        }
        *(int *)(void *)p = b;
        return NULL;
    case T_SIZE3:
        if (parse_list(v, 3, i3, NULL)) {
            return "is not a size; write e.g. 96 or 96x96x96";
        }
        memcpy(p, i3, sizeof(i3));
        return NULL;
    case T_BETAS:
        if (parse_list(v, 2, NULL, d2)) {
            return "is not two numbers; write e.g. 0.9,0.999";
        }
        ((ss_optim_adam_params_t *)(void *)p)->beta1 = d2[0];
        ((ss_optim_adam_params_t *)(void *)p)->beta2 = d2[1];
        return NULL;
    case T_FLIP:
        return parse_flip(v, (int *)(void *)p) ? "is not a set of axes; write e.g. ijk, ik or none"
                                               : NULL;
    default:
        e = find_name(k->names, v);
        if (e < 0) {
            return "is not one of the accepted values";
        }
        if (k->type == T_ENUM) {
            *(int *)(void *)p = e;
        } else if (k->type == T_CHOICE) {
            snprintf(p, k->size, "%s", v);
        }
        return NULL;
    }
}

_Static_assert(sizeof(ss_model_kind_t) == sizeof(int) && sizeof(ss_optim_kind_t) == sizeof(int) &&
                   sizeof(ss_lr_kind_t) == sizeof(int) && sizeof(ss_loss_kind_t) == sizeof(int) &&
                   sizeof(ss_loss_act_t) == sizeof(int) && sizeof(ss_model_norm_t) == sizeof(int),
               "enum fields are written through int pointers");

// --- parsing state -----------------------------------------------------------------------------

typedef struct {
    ss_train_config_t *c;
    const char *path;     // the INI file (for messages)
    int line;             // current line of the file; 0 while applying overrides
    int too_long;         // line number of an over-long line
    int file_line[NKEYS]; // where each key was set in the file (0: not in the file)
    unsigned char set[NKEYS];
    FILE *f;
    char *buf;
    size_t cap;
    ss_error_t *err;
    ss_status_t st;
} parse_t;

static void where(const parse_t *p, char *buf, size_t len)
{
    if (p->line > 0) {
        snprintf(buf, len, "%s:%d", p->path, p->line);
    } else {
        snprintf(buf, len, "command line");
    }
}

static void fail(parse_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(parse_t *p, const char *fmt, ...)
{
    if (p->st != SS_OK) {
        return; // the first error is the one reported
    }
    char loc[SS_CONFIG_PATH_MAX + 16], msg[SS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    where(p, loc, sizeof(loc));
    p->st = ss_error_set(p->err, SS_EINVAL, 0, __FILE__, __LINE__, __func__, "%s: %s", loc, msg);
}

static int edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b), d[64];
    if (la > 62 || lb > 62) {
        return 99;
    }
    for (int j = 0; j <= lb; j++) {
        d[j] = j;
    }
    for (int i = 1; i <= la; i++) {
        int prev = d[0];
        d[0] = i;
        for (int j = 1; j <= lb; j++) {
            int cur = d[j], sub = prev + (a[i - 1] != b[j - 1]);
            int del = d[j] + 1, ins = d[j - 1] + 1;
            d[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return d[lb];
}

// "; did you mean optim.lr?" for the closest known key (the same key in another section, or
// within edit distance 2 of "section.key"), else a pointer to the README.
static void suggest(const char *section, const char *key, char *buf, size_t len)
{
    char full[160], cand[160];
    int best = 3, bi = -1;
    snprintf(full, sizeof(full), "%s.%s", section, key);
    for (int i = 0; i < NKEYS; i++) {
        snprintf(cand, sizeof(cand), "%s.%s", g_keys[i].section, g_keys[i].key);
        int d = strcmp(g_keys[i].key, key) == 0 ? 0 : edit_distance(full, cand);
        if (d < best) {
            best = d;
            bi = i;
        }
    }
    if (bi >= 0) {
        snprintf(buf, len, "did you mean %s.%s?", g_keys[bi].section, g_keys[bi].key);
    } else {
        snprintf(buf, len, "see \"Training configuration\" in README.md for the keys");
    }
}

static int find_key(const char *section, const char *key)
{
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(g_keys[i].section, section) == 0 && strcmp(g_keys[i].key, key) == 0) {
            return i;
        }
    }
    return -1;
}

static void unknown(parse_t *p, const char *section, const char *key)
{
    char hint[128];
    if (find_name(g_sections, section) < 0) {
        int best = 3, bi = -1;
        for (int i = 0; g_sections[i]; i++) {
            // A known name that starts the unknown one ("optimizer") is the likely intent.
            int d = strncmp(section, g_sections[i], strlen(g_sections[i])) == 0
                        ? 1
                        : edit_distance(section, g_sections[i]);
            if (d < best) {
                best = d;
                bi = i;
            }
        }
        if (section[0] == '\0') {
            suggest(section, key, hint, sizeof(hint));
            fail(p, "%s: key outside a section; put it under its [section] (%s)", key, hint);
        } else if (bi >= 0) {
            fail(p, "[%s]: unknown section; did you mean [%s]?", section, g_sections[bi]);
        } else {
            fail(p, "[%s]: unknown section; use model, data, train, optim, loss or output",
                 section);
        }
        return;
    }
    suggest(section, key, hint, sizeof(hint));
    fail(p, "%s.%s: unknown key; %s", section, key, hint);
}

// Applies section.key = value from the file (p->line > 0) or an override.
static void set_key(parse_t *p, const char *section, const char *key, const char *value)
{
    int i = find_key(section, key);
    if (i < 0) {
        unknown(p, section, key);
        return;
    }
    if (p->line > 0 && p->file_line[i] > 0) {
        fail(p, "%s.%s: given twice (first on line %d); keep one", section, key, p->file_line[i]);
        return;
    }
    const char *why = apply_value(&g_keys[i], p->c, value);
    if (why != NULL && g_keys[i].names != NULL) {
        char list[128] = "";
        for (int k = 0; g_keys[i].names[k]; k++) {
            size_t o = strlen(list);
            snprintf(list + o, sizeof(list) - o, "%s%s", k ? ", " : "", g_keys[i].names[k]);
        }
        fail(p, "%s.%s: '%s' is not one of %s; use one of them", section, key, value, list);
        return;
    }
    if (why != NULL) {
        fail(p, "%s.%s: '%s' %s", section, key, value, why);
        return;
    }
    p->set[i] = 1;
    if (p->line > 0) {
        p->file_line[i] = p->line;
    }
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_t *p = user;
    set_key(p, section, name, value);
    return p->st == SS_OK;
}

// libinih's reader: one line per call, so p->line is the line the handler sees. Leading blanks
// are stripped (libinih would otherwise read an indented line as a continuation of the previous
// value) and a line longer than libinih's buffer stops the parse instead of being split.
static char *read_line(char *str, int num, void *stream)
{
    parse_t *p = stream;
    ssize_t n = getline(&p->buf, &p->cap, p->f);
    if (n < 0) {
        return NULL;
    }
    p->line++;
    while (n > 0 && (p->buf[n - 1] == '\n' || p->buf[n - 1] == '\r')) {
        p->buf[--n] = '\0';
    }
    const char *s = p->buf + strspn(p->buf, " \t");
    if ((ssize_t)strlen(s) + 3 > num) {
        p->too_long = p->line;
        return NULL;
    }
    snprintf(str, (size_t)num, "%s\n", s);
    return str;
}

static void parse_file(parse_t *p)
{
    p->f = fopen(p->path, "r");
    if (p->f == NULL) {
        p->st =
            ss_error_set(p->err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                         "%s: cannot read: %s; check the --config path", p->path, strerror(errno));
        return;
    }
    int rc = ini_parse_stream(read_line, p, on_key, p);
    fclose(p->f);
    p->f = NULL;
    if (p->st != SS_OK) {
        return;
    }
    if (p->too_long > 0) {
        p->line = p->too_long;
        fail(p,
             "line longer than %d characters (libinih's limit); shorten it, e.g. with a "
             "relative path or a symlink",
             INI_MAX_LINE - 3);
    } else if (rc == -2) {
        p->st = ss_error_set(p->err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__,
                             "%s: out of memory while parsing", p->path);
    } else if (rc > 0) {
        p->line = rc;
        fail(p, "not 'key = value', '[section]' or a comment; fix the line");
    }
}

static void parse_override(parse_t *p, const char *s)
{
    const char *eq = strchr(s, '='), *dot = strchr(s, '.');
    char section[64], key[64], value[SS_CONFIG_PATH_MAX];
    if (eq == NULL || dot == NULL || dot > eq || dot == s || eq == dot + 1 ||
        (size_t)(dot - s) >= sizeof(section) || (size_t)(eq - dot - 1) >= sizeof(key)) {
        fail(p, "'%s': not section.key=value; write e.g. optim.lr=1e-4", s);
        return;
    }
    snprintf(section, sizeof(section), "%.*s", (int)(dot - s), s);
    int klen = (int)(eq - dot - 1);
    while (klen > 0 && (dot[klen] == ' ' || dot[klen] == '\t')) {
        klen--; // "train.batch = 2" as one shell word
    }
    snprintf(key, sizeof(key), "%.*s", klen, dot + 1);
    const char *v = eq + 1;
    v += strspn(v, " \t");
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n >= sizeof(value)) {
        fail(p, "%s.%s: value too long", section, key);
        return;
    }
    snprintf(value, sizeof(value), "%.*s", (int)n, v);
    set_key(p, section, key, value);
}

// Location of key i for a message: its file line, the command line, or the file as a whole.
static void key_where(const parse_t *p, int i, char *buf, size_t len)
{
    if (i >= 0 && p->file_line[i] > 0) {
        snprintf(buf, len, "%s:%d", p->path, p->file_line[i]);
    } else if (i >= 0 && p->set[i]) {
        snprintf(buf, len, "command line");
    } else {
        snprintf(buf, len, "%s", p->path[0] ? p->path : "configuration");
    }
}

static void resolve_weights(parse_t *p)
{
    ss_train_config_t *c = p->c;
    for (int i = 0; i < NKEYS; i++) {
        if (g_keys[i].arch && p->set[i]) {
            p->line = p->file_line[i];
            fail(p,
                 "model.%s: set together with model.weights, whose attributes fix the "
                 "architecture; remove one of them",
                 g_keys[i].key);
            return;
        }
    }
    if (ss_weights_read_config(c->weights, &c->model, p->err) != SS_OK) {
        char loc[SS_CONFIG_PATH_MAX + 16];
        key_where(p, find_key("model", "weights"), loc, sizeof(loc));
        p->st = ss_error_prefix(p->err, "%s: model.weights", loc);
    }
}

static void resolve(parse_t *p)
{
    ss_train_config_t *c = p->c;
    int ii = find_key("model", "img_size"), ip = find_key("data", "patch");
    if (c->weights[0] != '\0') {
        resolve_weights(p);
    }
    int img_set = p->set[ii] || c->weights[0] != '\0';
    if (p->st == SS_OK && p->set[ip] && img_set &&
        memcmp(c->patch, c->model.img_size, sizeof(c->patch)) != 0) {
        p->line = p->file_line[ip];
        fail(p,
             "data.patch: %lldx%lldx%lld differs from model.img_size %lldx%lldx%lld; the "
             "network is built for patches of img_size, so set only one of them",
             (long long)c->patch[0], (long long)c->patch[1], (long long)c->patch[2],
             (long long)c->model.img_size[0], (long long)c->model.img_size[1],
             (long long)c->model.img_size[2]);
    } else if (p->set[ip] && !img_set) {
        memcpy(c->model.img_size, c->patch, sizeof(c->patch));
    } else {
        memcpy(c->patch, c->model.img_size, sizeof(c->patch));
    }
    if (p->set[find_key("train", "epochs")] && !p->set[find_key("train", "steps")] &&
        c->epochs > 0) {
        c->steps = 0;
    }
    c->step.loss.lambda_dice = c->loss_kind == SS_LOSS_CE ? 0.0 : 1.0;
    c->step.loss.lambda_ce = c->loss_kind == SS_LOSS_DICE ? 0.0 : 1.0;
    c->step.sgd.weight_decay = c->step.adam.weight_decay;
    c->step.adam.lr = c->step.sgd.lr = c->step.lr.lr0;
}

// --- validation --------------------------------------------------------------------------------

static ss_status_t
bad(int *key, const char *section, const char *k, ss_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static ss_status_t
bad(int *key, const char *section, const char *k, ss_error_t *err, const char *fmt, ...)
{
    char msg[SS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *key = find_key(section, k);
    return ss_error_set(err, SS_EINVAL, 0, __FILE__, __LINE__, __func__, "%s.%s: %s", section, k,
                        msg);
}

static ss_status_t check_data(const ss_train_config_t *c, int *key, ss_error_t *err)
{
    if (c->data[0] == '\0') {
        return bad(key, "data", "file", err, "not set; name the HDF5 file `shardseg prep` wrote");
    }
    if (c->fold < -1) {
        return bad(key, "data", "fold", err, "%d; use -1 (the file's split) or a fold index",
                   c->fold);
    }
    if (c->samples_per_case < 1) {
        return bad(key, "data", "samples_per_case", err, "%lld must be >= 1",
                   (long long)c->samples_per_case);
    }
    if (!(c->fg_fraction >= 0 && c->fg_fraction <= 1)) {
        return bad(key, "data", "fg_fraction", err, "%g is outside [0, 1]", c->fg_fraction);
    }
    if (c->fg_samples < 0 || c->prefetch < 0) {
        return bad(key, "data", c->prefetch < 0 ? "prefetch" : "fg_samples", err, "must be >= 0");
    }
    if (c->cache_mb < 0 || c->cache_mb > ((int64_t)1 << 40)) {
        return bad(key, "data", "cache_mb", err, "%lld; use 0 (off) or a size in MB",
                   (long long)c->cache_mb);
    }
    if (c->intensity_scale < 0 || c->intensity_shift < 0) {
        return bad(key, "data", c->intensity_scale < 0 ? "intensity_scale" : "intensity_shift", err,
                   "must be >= 0 (0: off)");
    }
    if (!(c->spatial_p >= 0 && c->spatial_p <= 1) || !(c->gamma_p >= 0 && c->gamma_p <= 1)) {
        return bad(key, "data", c->spatial_p >= 0 && c->spatial_p <= 1 ? "gamma_p" : "spatial_p",
                   err, "must be a probability in [0, 1] (0: off)");
    }
    if (!(c->rotate >= 0 && c->rotate <= 180)) {
        return bad(key, "data", "rotate", err, "%g; use degrees in [0, 180]", c->rotate);
    }
    if (!(c->zoom >= 0 && c->zoom < 1)) {
        return bad(key, "data", "zoom", err, "%g; use a scale range in [0, 1)", c->zoom);
    }
    if (!(c->gamma >= 0 && c->gamma <= 10)) {
        return bad(key, "data", "gamma", err, "%g; use a range in [0, 10]", c->gamma);
    }
    return SS_OK;
}

static ss_status_t check_train(const ss_train_config_t *c, int *key, ss_error_t *err)
{
    if (c->steps < 0 || c->epochs < 0 || (c->steps > 0) == (c->epochs > 0)) {
        return bad(key, "train", c->epochs != 0 ? "epochs" : "steps", err,
                   "steps %lld, epochs %lld; set exactly one of them to a positive value",
                   (long long)c->steps, (long long)c->epochs);
    }
    if (c->batch < 1) {
        return bad(key, "train", "batch", err, "%lld must be >= 1", (long long)c->batch);
    }
    if (c->threads < 0) {
        return bad(key, "train", "threads", err, "%d must be >= 0 (0: all cores)", c->threads);
    }
    if (c->val_interval < 0 || c->val_cases < 0 || c->checkpoint_interval < 0) {
        return bad(key, "train",
                   c->val_interval < 0 ? "val_interval"
                   : c->val_cases < 0  ? "val_cases"
                                       : "checkpoint_interval",
                   err, "must be >= 0");
    }
    if (!(c->time_limit >= 0) || !isfinite(c->time_limit)) {
        return bad(key, "train", "time_limit", err,
                   "%g must be a number of seconds >= 0 (0: no limit)", c->time_limit);
    }
    if (find_name(g_metrics, c->val_metric) < 0) {
        return bad(key, "train", "val_metric", err,
                   "'%s' is not one of dice_mean, dice_wt, "
                   "dice_tc, dice_et, loss",
                   c->val_metric);
    }
    if (!(c->val_overlap >= 0 && c->val_overlap < 1)) {
        return bad(key, "train", "val_overlap", err, "%g is outside [0, 1)", c->val_overlap);
    }
    if (c->keep_checkpoints < 1) {
        return bad(key, "train", "keep_checkpoints", err, "%d must be >= 1", c->keep_checkpoints);
    }
    if (c->out_dir[0] == '\0' || c->log[0] == '\0') {
        return bad(key, "output", c->out_dir[0] ? "log" : "dir", err, "is empty; name a path");
    }
    return SS_OK;
}

static ss_status_t check_optim(const ss_train_config_t *c, int *key, ss_error_t *err)
{
    const ss_step_config_t *s = &c->step;
    const char *neg = s->lr.lr0 < 0              ? "lr"
                      : s->adam.weight_decay < 0 ? "weight_decay"
                      : s->adam.eps < 0          ? "eps"
                      : s->sgd.momentum < 0      ? "momentum"
                      : s->sgd.dampening < 0     ? "dampening"
                      : s->clip_norm < 0         ? "clip_norm"
                      : s->lr.warmup_steps < 0   ? "warmup_steps"
                      : s->lr.t_max < 0          ? "t_max"
                      : s->lr.eta_min < 0        ? "eta_min"
                      : s->lr.power < 0          ? "power"
                                                 : NULL;
    if (neg != NULL) {
        return bad(key, "optim", neg, err, "must be >= 0");
    }
    if (!(s->adam.beta1 >= 0 && s->adam.beta1 < 1 && s->adam.beta2 >= 0 && s->adam.beta2 < 1)) {
        return bad(key, "optim", "betas", err, "%g,%g: both must be in [0, 1)", s->adam.beta1,
                   s->adam.beta2);
    }
    if (!(s->lr.warmup_start_factor > 0 && s->lr.warmup_start_factor <= 1)) {
        return bad(key, "optim", "warmup_start_factor", err, "%g is outside (0, 1]",
                   s->lr.warmup_start_factor);
    }
    if (s->lr.kind == SS_LR_STEP && (s->lr.step_size < 1 || !(s->lr.gamma > 0))) {
        return bad(key, "optim", s->lr.step_size < 1 ? "step_size" : "gamma", err,
                   "the step schedule needs step_size >= 1 and gamma > 0");
    }
    if (s->optim == SS_OPTIM_SGD && s->sgd.nesterov &&
        !(s->sgd.momentum > 0 && s->sgd.dampening == 0)) {
        return bad(key, "optim", "nesterov", err,
                   "needs momentum > 0 and dampening 0 (as PyTorch)");
    }
    if (!(s->loss.smooth_nr >= 0 && s->loss.smooth_dr >= 0)) {
        return bad(key, "loss", s->loss.smooth_nr < 0 ? "smooth_nr" : "smooth_dr", err,
                   "must be >= 0");
    }
    ss_step_config_t copy = *s; // t_max 0 ("the run's length") is resolved by the trainer
    copy.lr.t_max = copy.lr.t_max > 0 ? copy.lr.t_max : 1;
    if (ss_step_config_validate(&copy, err) != SS_OK) {
        *key = -1;
        return ss_error_prefix(err, "[optim]/[loss]");
    }
    return SS_OK;
}

static ss_status_t check(const ss_train_config_t *c, int *key, ss_error_t *err)
{
    *key = -1;
    ss_status_t st = ss_model_config_validate(&c->model, err);
    if (st != SS_OK) {
        // Its messages start with the attribute name, which is also the [model] key.
        char msg[SS_ERROR_MSG_MAX] = "", attr[64] = "";
        if (err != NULL) {
            snprintf(msg, sizeof(msg), "%s", err->msg);
            sscanf(msg, "%63[a-z_]", attr);
            *key = find_key("model", attr);
        }
        if (c->weights[0] != '\0') {
            return ss_error_prefix(err, "model.weights %s", c->weights);
        }
        return ss_error_set(err, st, 0, __FILE__, __LINE__, __func__, "model.%s", msg);
    }
    if (c->model.kind == SS_MODEL_UNETR && c->model.norm == SS_MODEL_NORM_BATCH) {
        return bad(key, "model", "norm_name", err, "batch is built for unet3d only; use instance");
    }
    SS_TRY(check_data(c, key, err));
    SS_TRY(check_train(c, key, err));
    return check_optim(c, key, err);
}

ss_status_t ss_train_config_validate(const ss_train_config_t *c, ss_error_t *err)
{
    int key;
    return check(c, &key, err);
}

ss_status_t ss_train_config_load(
    const char *path, const char *const *overrides, int n, ss_train_config_t *c, ss_error_t *err)
{
    ss_train_config_default(c);
    parse_t p;
    memset(&p, 0, sizeof(p));
    p.c = c;
    p.err = err;
    p.path = path != NULL ? path : "";
    if (path != NULL) {
        parse_file(&p);
    }
    p.line = 0;
    for (int i = 0; i < n && p.st == SS_OK; i++) {
        parse_override(&p, overrides[i]);
    }
    if (p.st == SS_OK) {
        resolve(&p);
    }
    free(p.buf);
    SS_TRY(p.st);
    int key = -1;
    if (check(c, &key, err) != SS_OK) {
        char loc[SS_CONFIG_PATH_MAX + 16];
        key_where(&p, key, loc, sizeof(loc));
        return ss_error_prefix(err, "%s", loc);
    }
    return SS_OK;
}

// --- writing -----------------------------------------------------------------------------------

// Shortest of %.15g..%.17g that reads back to the same double: exact and readable (0.33, not
// 0.33000000000000002).
static void fmt_double(char *buf, size_t len, double x)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) {
            return;
        }
    }
}

static void format_value(const key_def_t *k, const ss_train_config_t *c, char *buf, size_t len)
{
    const char *p = (const char *)c + k->off;
    const int64_t *i3 = (const int64_t *)(const void *)p;
    int v = *(const int *)(const void *)p, n = 0;
    switch (k->type) {
    case T_STR:
    case T_CHOICE:
        snprintf(buf, len, "%s", p);
        break;
    case T_I64:
        snprintf(buf, len, "%lld", (long long)i3[0]);
        break;
    case T_INT:
    case T_BOOL:
        snprintf(buf, len, "%d", v);
        break;
    case T_U64:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)(const void *)p);
        break;
    case T_DBL:
        fmt_double(buf, len, *(const double *)(const void *)p);
        break;
    case T_SIZE3:
        snprintf(buf, len, "%lldx%lldx%lld", (long long)i3[0], (long long)i3[1], (long long)i3[2]);
        break;
    case T_BETAS:
        fmt_double(buf, len / 2, ((const ss_optim_adam_params_t *)(const void *)p)->beta1);
        n = (int)strlen(buf);
        buf[n++] = ',';
        fmt_double(buf + n, len - (size_t)n,
                   ((const ss_optim_adam_params_t *)(const void *)p)->beta2);
        break;
    case T_FLIP:
        for (int a = 0; a < 3; a++) {
            if (v & (1 << a)) {
                buf[n++] = "ijk"[a];
            }
        }
        snprintf(buf + n, len - (size_t)n, "%s", n ? "" : "none");
        break;
    case T_CONST:
        snprintf(buf, len, "%s", k->names[0]);
        break;
    default:
        while (n <= v && k->names[n] != NULL) {
            n++;
        }
        snprintf(buf, len, "%s", n > v ? k->names[v] : "?");
    }
}

// A value libinih reads back unchanged: no surrounding blanks, newline or inline comment.
static int ini_safe(const char *v)
{
    size_t n = strlen(v);
    return strchr(v, '\n') == NULL && strstr(v, " ;") == NULL && strstr(v, "\t;") == NULL &&
           (n == 0 || (v[0] != ' ' && v[0] != '\t' && v[n - 1] != ' ' && v[n - 1] != '\t'));
}

static ss_status_t format_to(FILE *f, const ss_train_config_t *c, ss_error_t *err)
{
    const char *section = "";
    fprintf(f, "# shardseg train: effective configuration (reload with --config)\n");
    for (int i = 0; i < NKEYS; i++) {
        const key_def_t *k = &g_keys[i];
        char v[SS_CONFIG_PATH_MAX + 64];
        format_value(k, c, v, sizeof(v));
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
        }
        if (!ini_safe(v) || strlen(k->key) + 3 + strlen(v) + 3 > INI_MAX_LINE) {
            SS_FAIL(err, SS_EINVAL,
                    "%s.%s: '%s' cannot be written to an INI file (blanks at the "
                    "ends, ' ;' or longer than libinih's %d-character lines); shorten it",
                    k->section, k->key, v, INI_MAX_LINE - 3);
        }
        // With model.weights the architecture comes from the file: kept as a comment for people.
        int comment = k->arch && c->weights[0] != '\0';
        fprintf(f, "%s%s = %s\n", comment ? "; " : "", k->key, v);
    }
    return SS_OK;
}

ss_status_t ss_train_config_format(const ss_train_config_t *c, char **text, ss_error_t *err)
{
    size_t len = 0;
    *text = NULL;
    FILE *f = open_memstream(text, &len);
    if (f == NULL) {
        SS_FAIL(err, SS_ENOMEM, "configuration: out of memory formatting it");
    }
    ss_status_t st = format_to(f, c, err);
    if (fclose(f) != 0 && st == SS_OK) {
        st = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__,
                          "configuration: out of memory formatting it");
    }
    if (st != SS_OK) {
        free(*text);
        *text = NULL;
    }
    return st;
}

ss_status_t ss_train_config_write(const char *path, const ss_train_config_t *c, ss_error_t *err)
{
    char tmp[SS_CONFIG_PATH_MAX + 64], *text = NULL;
    SS_TRY(ss__train_tmp_path(tmp, sizeof(tmp), path, err));
    SS_TRY(ss_train_config_format(c, &text, err));
    FILE *f = fopen(tmp, "w");
    size_t n = strlen(text);
    int ok = f != NULL && fwrite(text, 1, n, f) == n;
    int e = errno;
    if (f != NULL && fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    free(text);
    if (!ok) {
        unlink(tmp);
        SS_FAIL_LIB(err, SS_EIO, e, "%s: cannot write: %s; check the output directory", path,
                    strerror(e));
    }
    return ss__train_commit(tmp, path, err);
}
