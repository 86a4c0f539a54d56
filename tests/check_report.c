// check_report: metrics.jsonl loading (nulls, one-region validations, unknown fields, an
// incomplete last line accepted, any other malformed line an error naming file:line), the
// config.ini key lines, the summary numbers, the moving average and the PNG page.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/report.h"

#include "testutil.h"

static char g_tmp[256], g_path[300];

static void setup(void)
{
    ss_test_tmpdir_make(g_tmp, sizeof(g_tmp), "report");
    snprintf(g_path, sizeof(g_path), "%s/metrics.jsonl", g_tmp);
}

static void teardown(void)
{
    ss_test_tmpdir_remove(g_tmp);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

#define STEP(s, loss, ms, mem)                                                                     \
    "{\"step\":" #s ",\"loss\":" #loss ",\"dice_loss\":0.5,\"ce_loss\":null,\"lr\":0.001,"         \
    "\"ms\":" #ms ",\"data_wait_ms\":0.5,\"peak_mem_bytes\":" #mem "}\n"

static const char g_good[] = STEP(1, 2.0, 10, 100) STEP(
    2,
    null,
    30,
    300) "{\"step\":2,\"val_dice_wt\":0.5,"
         "\"val_dice_tc\":null,\"val_dice_et\":0.25,\"val_dice_mean\":0.375,\"val_loss\":null}\n"
         "\n" STEP(3,
                   1.0,
                   20,
                   200) "{\"step\":3,\"val_dice_wt\":0.75,\"val_dice_tc\":0.5,"
                        "\"val_dice_et\":0.25,\"val_dice_mean\":0.5,\"val_loss\":0.1,\"future_"
                        "field\":\"x\"}\n" STEP(
                            4,
                            0.5,
                            40,
                            150) "{\"step\":4,\"val_dice_wt\":0.75,\"val_dice_tc\":0.5,"
                                 "\"val_dice_et\":0.25,\"val_dice_mean\":0.5,\"val_loss\":0.1}\n";

START_TEST(test_load)
{
    ss_report_t r;
    ss_error_t err;
    ss_report_init(&r);
    write_text(g_path, g_good);
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_OK);
    ck_assert_int_eq(r.nsteps, 4);
    ck_assert_int_eq(r.nval, 3);
    ck_assert_int_eq(r.ndice, 3);
    ck_assert_str_eq(r.dice_name[0], "wt");
    ck_assert_str_eq(r.dice_name[2], "et");
    ck_assert(isnan(r.steps[1].loss));
    ck_assert(isnan(r.steps[0].ce_loss));
    ck_assert_double_eq(r.steps[2].loss, 1.0);
    ck_assert_uint_eq(r.steps[1].peak_mem_bytes, 300);
    ck_assert(isnan(r.vals[0].dice[1]));
    ck_assert_double_eq(r.vals[1].dice_mean, 0.5);
    ck_assert_int_eq(r.partial_last, 0);

    // A killed run's incomplete last line is skipped and flagged.
    char text[4096];
    snprintf(text, sizeof(text), "%s{\"step\":5,\"loss\":0.2", g_good);
    write_text(g_path, text);
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_OK);
    ck_assert_int_eq(r.nsteps, 4);
    ck_assert_int_eq(r.partial_last, 1);
    // A whole last line without its newline is a record.
    snprintf(text, sizeof(text), "%s" STEP(5, 0.2, 10, 1), g_good);
    text[strlen(text) - 1] = '\0';
    write_text(g_path, text);
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_OK);
    ck_assert_int_eq(r.nsteps, 5);
    ck_assert_int_eq(r.partial_last, 0);

    // One region: the writer leaves out val_dice_mean, the region's Dice is the mean.
    write_text(g_path,
               STEP(1, 1.0, 1, 1) "{\"step\":1,\"val_dice_tumour\":0.625,\"val_loss\":1}\n");
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_OK);
    ck_assert_int_eq(r.ndice, 1);
    ck_assert_str_eq(r.dice_name[0], "tumour");
    ck_assert_double_eq(r.vals[0].dice_mean, 0.625);
    ss_report_fini(&r);
    ck_assert_ptr_null(r.steps);
}
END_TEST

// Each malformed middle line fails naming path:line and what is wrong.
START_TEST(test_load_errors)
{
    static const struct {
        const char *line, *what;
    } cases[] = {
        {"{\"step\":2,\"loss\":0.5,oops}\n", "not JSON"},
        {"[1,2]\n", "not a JSON object"},
        {"{\"loss\":0.5}\n", "no \"step\""},
        {"{\"step\":-1,\"loss\":0.5}\n", "no \"step\""},
        {"{\"step\":2.5,\"loss\":0.5}\n", "no \"step\""},
        {"{\"step\":2,\"loss\":\"big\"}\n", "\"loss\" is neither"},
        {"{\"step\":2,\"loss\":1,\"peak_mem_bytes\":-3}\n", "\"peak_mem_bytes\""},
        {"{\"step\":2,\"val_dice_wt\":true}\n", "a \"val_dice_\" field"},
        {"{\"step\":2,\"lr\":0.1}\n", "neither a training step"},
        {"{\"step\":2,\"loss\":0.5,oops}", NULL}, // last, no newline: skipped
    };
    ss_report_t r;
    ss_error_t err;
    ss_report_init(&r);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024], want[400];
        snprintf(text, sizeof(text), "%s%s%s", STEP(1, 1.0, 1, 1), cases[i].line,
                 cases[i].what ? STEP(3, 1.0, 1, 1) : "");
        write_text(g_path, text);
        ss_status_t st = ss_report_load(&r, g_path, &err);
        if (cases[i].what == NULL) {
            ck_assert_int_eq(st, SS_OK);
            continue;
        }
        ck_assert_msg(st == SS_EFORMAT, "case %zu: status %d", i, st);
        snprintf(want, sizeof(want), "%s:2: %s", g_path, cases[i].what);
        ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "case %zu: %s", i, err.msg);
    }
    write_text(g_path, "");
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no training-step records"));
    write_text(g_path, "{\"step\":1,\"val_dice_wt\":0.5}\n");
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_EFORMAT);
    unlink(g_path);
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, g_path));
    ss_report_fini(&r);
}
END_TEST

START_TEST(test_config)
{
    char ini[320];
    snprintf(ini, sizeof(ini), "%s/config.ini", g_tmp);
    ss_report_t r;
    ss_error_t err;
    ss_report_init(&r);
    ck_assert_int_eq(ss_report_load_config(&r, ini, &err), SS_OK);
    ck_assert_int_eq(r.nconfig, 0);
    write_text(ini, "# effective\n[model]\nmodel = unetr\nweights = \nimg_size = 96x96x96\n"
                    "patch_size = 16x16x16\nhidden_size = 768\nnum_layers = 12\n"
                    "feature_size = 16\n\n[data]\nfile = /data/brats/train.h5\n"
                    "[optim]\nname = adamw\nlr = 0.0001\nschedule = cosine\n[loss]\n"
                    "name = dice_ce\n");
    ck_assert_int_eq(ss_report_load_config(&r, ini, &err), SS_OK);
    ck_assert_int_eq(r.nconfig, 4);
    ck_assert_str_eq(r.config[0].key, "model");
    ck_assert_str_eq(r.config[0].value, "unetr, img_size 96x96x96, patch 16x16x16, hidden 768, "
                                        "layers 12, feature_size 16");
    ck_assert_str_eq(r.config[1].value, "train.h5");
    ck_assert_str_eq(r.config[2].value, "adamw, lr 0.0001, cosine");
    ck_assert_str_eq(r.config[3].value, "dice_ce");
    ss_report_fini(&r);
}
END_TEST

START_TEST(test_summarize)
{
    ss_report_t r;
    ss_report_summary_t s;
    ss_error_t err;
    ss_report_init(&r);
    write_text(g_path, g_good);
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_OK);
    ck_assert_int_eq(ss_report_summarize(&r, &s, &err), SS_OK);
    ck_assert_int_eq(s.nsteps, 4);
    ck_assert_int_eq(s.last_step, 4);
    // Ties: the first best validation counts.
    ck_assert_double_eq(s.best_dice, 0.5);
    ck_assert_int_eq(s.best_step, 3);
    ck_assert_double_eq(s.final_loss, 0.5);
    ck_assert_int_eq(s.final_loss_step, 4);
    ck_assert_double_eq(s.median_ms, 25); // (20 + 30) / 2
    ck_assert_double_eq(s.total_ms, 100);
    ck_assert_uint_eq(s.peak_mem_bytes, 300);
    ck_assert_double_eq(s.final_lr, 0.001);
    ss_report_line_t l[SS_REPORT_MAX_LINES];
    int n = ss_report_summary_lines(&r, &s, l, SS_REPORT_MAX_LINES);
    ck_assert_int_ge(n, 6);
    ck_assert_str_eq(l[1].key, "best val Dice");
    ck_assert_ptr_nonnull(strstr(l[1].value, "0.5000 at step 3"));
    ck_assert_str_eq(l[2].value, "WT 0.7500, TC 0.5000, ET 0.2500, mean 0.5000 (step 4)");
    ck_assert_int_eq(ss_report_summary_lines(&r, &s, l, 2), 2);
    ss_report_fini(&r);
}
END_TEST

START_TEST(test_moving_average)
{
    const double x[6] = {1, 2, NAN, 4, 5, 6};
    double y[6];
    ss_report_moving_average(y, x, 6, 3);
    ck_assert_double_eq_tol(y[0], 1.5, 1e-12);
    ck_assert_double_eq_tol(y[1], 1.5, 1e-12); // NaN skipped
    ck_assert_double_eq_tol(y[2], 3.0, 1e-12);
    ck_assert_double_eq_tol(y[3], 4.5, 1e-12);
    ck_assert_double_eq_tol(y[5], 5.5, 1e-12);
    ss_report_moving_average(y, x, 6, 1);
    ck_assert(isnan(y[2]));
    ck_assert_double_eq(y[4], 5);
    ck_assert_int_eq(ss_report_smooth_window(10), 1);
    ck_assert_int_eq(ss_report_smooth_window(400), 21);
    ck_assert_int_eq(ss_report_smooth_window(1000000), 501);
}
END_TEST

// The page is a PNG of the asked size; a folder that does not exist is SS_EINVAL and leaves
// nothing behind.
START_TEST(test_plot_png)
{
    ss_report_t r;
    ss_report_summary_t s;
    ss_error_t err;
    ss_report_init(&r);
    write_text(g_path, g_good);
    ck_assert_int_eq(ss_report_load(&r, g_path, &err), SS_OK);
    ck_assert_int_eq(ss_report_summarize(&r, &s, &err), SS_OK);
    char png[320];
    snprintf(png, sizeof(png), "%s/r.png", g_tmp);
    ss_report_plot_opts_t o = {900, 600, SS_REPORT_SCALE_LOG, "test"};
    ck_assert_int_eq(ss_report_plot_png(&r, &s, &o, png, &err), SS_OK);
    unsigned char h[24];
    FILE *f = fopen(png, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(h, 1, 24, f), 24);
    fclose(f);
    ck_assert_int_eq(memcmp(h, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), 0);
    ck_assert_int_eq((h[16] << 24) | (h[17] << 16) | (h[18] << 8) | h[19], 900);
    ck_assert_int_eq((h[20] << 24) | (h[21] << 16) | (h[22] << 8) | h[23], 600);
    snprintf(png, sizeof(png), "%s/no/r.png", g_tmp);
    ck_assert_int_eq(ss_report_plot_png(&r, &s, NULL, png, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot write"));
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep -v metrics.jsonl | grep -v r.png)\"",
             g_tmp);
    ck_assert_int_eq(system(cmd), 0);
    ss_report_fini(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("report");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"tc_ss_report_load", test_load},
        {"tc_ss_report_load", test_load_errors},
        {"tc_ss_report_load_config", test_config},
        {"tc_ss_report_summarize", test_summarize},
        {"tc_ss_report_moving_average", test_moving_average},
        {"tc_ss_report_plot_png", test_plot_png},
    };
    TCase *t = NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (i == 0 || strcmp(cases[i].name, cases[i - 1].name) != 0) {
            t = tcase_create(cases[i].name);
            tcase_add_checked_fixture(t, setup, teardown);
            suite_add_tcase(s, t);
        }
        tcase_add_test(t, cases[i].test);
    }
    return s;
}

int main(void)
{
    return ss_test_run(suite());
}
