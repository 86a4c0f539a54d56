// check_config: `shardseg train` configuration: INI parsing with overrides, resolution rules
// (patch/img_size, steps/epochs, loss name, weights file), one-line errors naming file:line and
// key (bad numbers, unknown keys with suggestions, unknown sections, duplicates, over-long lines,
// conflicts), and the effective-config round trip (write, reload, identical struct).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/config.h"
#include "shardseg/weights.h"

#include "testutil.h"

static char g_tmp[256];

static void setup(void)
{
    ss_test_tmpdir_make(g_tmp, sizeof(g_tmp), "config");
}

static void teardown(void)
{
    ss_test_tmpdir_remove(g_tmp);
}

// Writes text to <tmp>/<name> and returns the path (static buffer).
static const char *ini(const char *name, const char *text)
{
    static char path[300];
    snprintf(path, sizeof(path), "%s/%s", g_tmp, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *const k_full = "; a comment\n"
                                  "# another\n"
                                  "[model]\n"
                                  "model = unet3d\n"
                                  "in_channels = 4\n"
                                  "out_channels = 3\n"
                                  "depth = 3\n"
                                  "base_filters = 8\n"
                                  "norm_name = batch\n"
                                  "\n"
                                  "[data]\n"
                                  "  file = data.h5   ; inline comment\n"
                                  "patch = 64x64x32\n"
                                  "fold = 2\n"
                                  "flip = ik\n"
                                  "[train]\n"
                                  "epochs = 20\n"
                                  "seed = 18446744073709551615\n"
                                  "val_metric = dice_et\n"
                                  "[optim]\n"
                                  "name = sgd\n"
                                  "lr = 0.01\n"
                                  "momentum = 0.99\n"
                                  "nesterov = yes\n"
                                  "weight_decay = 3e-5\n"
                                  "betas = 0.8, 0.95\n"
                                  "schedule = poly\n"
                                  "[loss]\n"
                                  "name = dice\n"
                                  "act = softmax\n"
                                  "[output]\n"
                                  "dir = out/run1\n";

START_TEST(test_load_full)
{
    ss_train_config_t c;
    ss_error_t err;
    const char *ov[] = {"optim.lr=0.02", "train.batch = 2"};
    ck_assert_msg(ss_train_config_load(ini("run.ini", k_full), ov, 2, &c, &err) == SS_OK, "%s",
                  err.msg);
    ck_assert_int_eq(c.model.kind, SS_MODEL_UNET3D);
    ck_assert_int_eq(c.model.depth, 3);
    ck_assert_int_eq(c.model.norm, SS_MODEL_NORM_BATCH);
    ck_assert_str_eq(c.data, "data.h5");
    ck_assert(c.patch[0] == 64 && c.patch[2] == 32 && c.model.img_size[0] == 64 &&
              c.model.img_size[2] == 32); // img_size follows the patch
    ck_assert_int_eq(c.fold, 2);
    ck_assert_int_eq(c.flip_axes, 5);
    ck_assert(c.epochs == 20 && c.steps == 0); // epochs given: the default step count is off
    ck_assert(c.seed == UINT64_MAX);
    ck_assert_int_eq(c.batch, 2);
    ck_assert_str_eq(c.val_metric, "dice_et");
    ck_assert_int_eq(c.step.optim, SS_OPTIM_SGD);
    ck_assert(c.step.lr.lr0 == 0.02 && c.step.sgd.momentum == 0.99 && c.step.sgd.nesterov == 1);
    ck_assert(c.step.sgd.weight_decay == 3e-5 && c.step.adam.weight_decay == 3e-5);
    ck_assert(c.step.adam.beta1 == 0.8 && c.step.adam.beta2 == 0.95);
    ck_assert_int_eq(c.step.lr.kind, SS_LR_POLY);
    ck_assert(c.step.loss.lambda_dice == 1.0 && c.step.loss.lambda_ce == 0.0);
    ck_assert_int_eq(c.step.loss.act, SS_LOSS_SOFTMAX);
    ck_assert_str_eq(c.out_dir, "out/run1");
    ck_assert_str_eq(c.log, "metrics.jsonl");
}
END_TEST

START_TEST(test_defaults_only_overrides)
{
    ss_train_config_t c;
    ss_error_t err;
    ck_assert_int_eq(ss_train_config_load(NULL, NULL, 0, &c, &err), SS_EINVAL);
    ck_assert_msg(strstr(err.msg, "data.file: not set;") != NULL, "%s", err.msg);
    const char *ov[] = {"data.file=x.h5", "model.img_size=96"};
    ck_assert_msg(ss_train_config_load(NULL, ov, 2, &c, &err) == SS_OK, "%s", err.msg);
    ck_assert(c.patch[1] == 96 && c.steps == 1000 && c.model.kind == SS_MODEL_UNETR);
    ck_assert(c.step.loss.lambda_dice == 1.0 && c.step.loss.lambda_ce == 1.0);
}
END_TEST

typedef struct {
    const char *text;     // INI file (NULL: none)
    const char *override; // one override (NULL: none)
    const char *want;     // expected start of the message (after the tmp dir for files)
} bad_case_t;

static const bad_case_t k_bad[] = {
    {"[data]\nfile=a.h5\n\n[optim]\nlr = abc\n", NULL,
     "/run.ini:5: optim.lr: 'abc' is not a number; write e.g. 1e-4"},
    {"[data]\nfile=a.h5\n[optim]\nlrr = 1\n", NULL,
     "/run.ini:4: optim.lrr: unknown key; did you mean optim.lr?"},
    {"[data]\nfile=a.h5\n[train]\nlr = 1\n", NULL,
     "/run.ini:4: train.lr: unknown key; did you mean optim.lr?"},
    {"[optimizer]\nlr = 1\n", NULL,
     "/run.ini:2: [optimizer]: unknown section; did you mean [optim]?"},
    {"lr = 1\n", NULL, "/run.ini:1: lr: key outside a section;"},
    {"[data]\nfile=a.h5\nfile=b.h5\n", NULL,
     "/run.ini:3: data.file: given twice (first on line 2); keep one"},
    {"[data]\nfile=a.h5\nthis is not ini\n", NULL, "/run.ini:3: not 'key = value'"},
    {"[data]\nfile=a.h5\n[model]\nmodel = vit\n", NULL,
     "/run.ini:4: model.model: 'vit' is not one of unetr, unet3d;"},
    {"[data]\nfile=a.h5\n[model]\nhidden_size = 100\n", NULL,
     "/run.ini:4: model.hidden_size: 100 is not divisible by num_heads 12"},
    {"[data]\nfile=a.h5\npatch=64\n[model]\nimg_size = 96\n", NULL,
     "/run.ini:3: data.patch: 64x64x64 differs from model.img_size 96x96x96;"},
    {"[data]\nfile=a.h5\n[train]\nsteps=5\nepochs=3\n", NULL,
     "/run.ini:5: train.epochs: steps 5, epochs 3;"},
    {"[data]\nfile=a.h5\n[train]\nbatch = 0\n", NULL, "/run.ini:4: train.batch: 0 must be >= 1"},
    {"[data]\nfile=a.h5\nspatial_p = 1.5\n", NULL,
     "/run.ini:3: data.spatial_p: must be a probability in [0, 1] (0: off)"},
    {"[data]\nfile=a.h5\n", "data.zoom=1",
     "command line: data.zoom: 1; use a scale range in [0, 1)"},
    {"[data]\nfile=a.h5\n", "optim.lr=abc", "command line: optim.lr: 'abc' is not a number;"},
    {"[data]\nfile=a.h5\n", "optim.betas=0.9",
     "command line: optim.betas: '0.9' is not two numbers;"},
    {"[data]\nfile=a.h5\n", "lr=1", "command line: 'lr=1': not section.key=value;"},
    {"[data]\nfile=a.h5\n", "data.flip=ijx",
     "command line: data.flip: 'ijx' is not a set of axes;"},
    {"[data]\nfile=a.h5\n", "model.weights=/nonexistent/w.h5",
     "command line: model.weights: /nonexistent/w.h5: cannot open"},
};

START_TEST(test_errors)
{
    const bad_case_t *b = &k_bad[_i];
    ss_train_config_t c;
    ss_error_t err;
    const char *path = b->text ? ini("run.ini", b->text) : NULL;
    ck_assert_int_ne(ss_train_config_load(path, &b->override, b->override ? 1 : 0, &c, &err),
                     SS_OK);
    const char *msg = err.msg;
    if (b->want[0] == '/') {
        ck_assert_msg(strncmp(msg, g_tmp, strlen(g_tmp)) == 0, "%s", msg);
        msg += strlen(g_tmp);
    }
    ck_assert_msg(strncmp(msg, b->want, strlen(b->want)) == 0, "case %d: got '%s', want '%s'", _i,
                  err.msg, b->want);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
}
END_TEST

START_TEST(test_long_line)
{
    char value[301], text[400], over[400];
    memset(value, 'a', 300);
    value[300] = '\0';
    snprintf(text, sizeof(text), "[data]\nfile = %s\n", value);
    ss_train_config_t c;
    ss_error_t err;
    ck_assert_int_eq(ss_train_config_load(ini("run.ini", text), NULL, 0, &c, &err), SS_EINVAL);
    ck_assert_msg(strstr(err.msg, "/run.ini:2: line longer than") != NULL, "%s", err.msg);
    // The same value from the command line is fine, but cannot be written back for libinih.
    snprintf(over, sizeof(over), "data.file=%s", value);
    const char *ov[] = {over};
    ck_assert_msg(ss_train_config_load(NULL, ov, 1, &c, &err) == SS_OK, "%s", err.msg);
    char *t = NULL;
    ck_assert_int_eq(ss_train_config_format(&c, &t, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "data.file"));
}
END_TEST

static void round_trip(const char *path, const char *const *ov, int n)
{
    ss_train_config_t a, b;
    ss_error_t err;
    ck_assert_msg(ss_train_config_load(path, ov, n, &a, &err) == SS_OK, "%s", err.msg);
    char out[300];
    snprintf(out, sizeof(out), "%s/effective.ini", g_tmp);
    ck_assert_msg(ss_train_config_write(out, &a, &err) == SS_OK, "%s", err.msg);
    ck_assert_msg(ss_train_config_load(out, NULL, 0, &b, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
}

START_TEST(test_round_trip)
{
    const char *ov[] = {"optim.lr=0.1234567890123",
                        "loss.smooth_nr=1e-7",
                        "train.seed=99",
                        "optim.schedule=cosine",
                        "optim.t_max=500",
                        "optim.warmup_steps=10",
                        "optim.warmup_start_factor=0.1",
                        "data.intensity_shift=0",
                        "data.spatial_p=0.25",
                        "data.rotate=15",
                        "data.gamma_p=0.3"};
    round_trip(ini("run.ini", k_full), ov, 11);
    const char *ov2[] = {"data.file=x.h5"};
    round_trip(NULL, ov2, 1);
}
END_TEST

START_TEST(test_weights)
{
    ss_model_config_t mc;
    ss_model_config_default(&mc, SS_MODEL_UNET3D);
    mc.in_channels = 1;
    mc.out_channels = 2;
    mc.img_size[0] = mc.img_size[1] = mc.img_size[2] = 16;
    mc.depth = 2;
    mc.base_filters = 2;
    mc.convs_per_level = 1;
    ss_model_plan_t p = {1, 0, 16, 0, 1, NULL};
    ss_model_t *m = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_model_create(&m, &mc, &p, NULL, &err), SS_OK);
    char w[300], ov[400];
    snprintf(w, sizeof(w), "%s/w.h5", g_tmp);
    ck_assert_msg(ss_weights_save(w, m, &err) == SS_OK, "%s", err.msg);
    ss_model_destroy(&m);
    snprintf(ov, sizeof(ov), "model.weights=%s", w);
    const char *ovs[] = {"data.file=x.h5", ov};
    ss_train_config_t c;
    ck_assert_msg(ss_train_config_load(NULL, ovs, 2, &c, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(memcmp(&c.model, &mc, sizeof(mc)), 0);
    ck_assert_int_eq(c.patch[0], 16);
    round_trip(NULL, ovs, 2);
    const char *conflict[] = {"data.file=x.h5", ov, "model.hidden_size=64"};
    ck_assert_int_eq(ss_train_config_load(NULL, conflict, 3, &c, &err), SS_EINVAL);
    ck_assert_msg(strstr(err.msg, "command line: model.hidden_size: set together with "
                                  "model.weights") != NULL,
                  "%s", err.msg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("tc_ss_train_config_load");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_load_full);
    tcase_add_test(t, test_defaults_only_overrides);
    tcase_add_loop_test(t, test_errors, 0, (int)(sizeof(k_bad) / sizeof(k_bad[0])));
    tcase_add_test(t, test_long_line);
    tcase_add_test(t, test_weights);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_train_config_write");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_round_trip);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ss_test_run(suite());
}
