// check_metrics_log: metrics.jsonl lines (exact text, %.17g doubles, null for non-finite), and
// resume truncation: a run killed mid-line and resumed from an earlier step yields a file equal
// byte for byte to the uninterrupted run's.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/metrics_log.h"

#include "testutil.h"

static char g_tmp[256], g_path[300];

static void setup(void)
{
    ss_test_tmpdir_make(g_tmp, sizeof(g_tmp), "mlog");
    snprintf(g_path, sizeof(g_path), "%s/metrics.jsonl", g_tmp);
}

static void teardown(void)
{
    ss_test_tmpdir_remove(g_tmp);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

// Logs steps [from, to] (1-based steps done) with a validation after every even step.
static void log_steps(ss_metrics_log_t *l, int from, int to)
{
    ss_error_t err;
    for (int s = from; s <= to; s++) {
        ss_metrics_step_t st = {s,        1.0 / s, 0.5 / s, 0.5 / s,
                                1e-4 * s, 12.5,    0.25,    1000u * (uint64_t)s};
        ck_assert_int_eq(ss_metrics_log_step(l, &st, &err), SS_OK);
        if (s % 2 == 0) {
            ss_metrics_val_t v = {s, 3, {"wt", "tc", "et"}, {0.9, 0.8, 0.7}, 0.8, 0.1 * s};
            ck_assert_int_eq(ss_metrics_log_val(l, &v, &err), SS_OK);
        }
    }
}

START_TEST(test_format)
{
    ss_metrics_log_t *l = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_metrics_log_open(g_path, -1, &l, &err), SS_OK);
    ss_metrics_step_t st = {7, 0.1, NAN, INFINITY, 1e-4, 1.5, 0.0, 123456789012ull};
    ck_assert_int_eq(ss_metrics_log_step(l, &st, &err), SS_OK);
    ss_metrics_val_t v = {8, 1, {"tumor"}, {0.25}, 0, 0.5};
    ck_assert_int_eq(ss_metrics_log_val(l, &v, &err), SS_OK);
    // Flushed per line: readable before close.
    ck_assert_str_eq(
        slurp(g_path),
        "{\"step\":7,\"loss\":0.10000000000000001,\"dice_loss\":null,\"ce_loss\":null,"
        "\"lr\":0.0001,\"ms\":1.5,\"data_wait_ms\":0,\"peak_mem_bytes\":123456789012}\n"
        "{\"step\":8,\"val_dice_tumor\":0.25,\"val_loss\":0.5}\n");
    ss_metrics_log_close(&l);
    ck_assert_ptr_null(l);
    // A new run truncates.
    ck_assert_int_eq(ss_metrics_log_open(g_path, -1, &l, &err), SS_OK);
    ss_metrics_log_close(&l);
    ck_assert_str_eq(slurp(g_path), "");
    snprintf(g_path, sizeof(g_path), "%s/no/such/dir.jsonl", g_tmp);
    ck_assert_int_eq(ss_metrics_log_open(g_path, -1, &l, &err), SS_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "no/such/dir.jsonl"));
}
END_TEST

START_TEST(test_resume)
{
    ss_metrics_log_t *l = NULL;
    ss_error_t err;
    char want[8192];
    ck_assert_int_eq(ss_metrics_log_open(g_path, -1, &l, &err), SS_OK);
    log_steps(l, 1, 9);
    ss_metrics_log_close(&l);
    snprintf(want, sizeof(want), "%s", slurp(g_path));

    // Killed after step 7 in the middle of a line; the last checkpoint is at step 4.
    ck_assert_int_eq(ss_metrics_log_open(g_path, -1, &l, &err), SS_OK);
    log_steps(l, 1, 7);
    ss_metrics_log_close(&l);
    FILE *f = fopen(g_path, "a");
    fputs("{\"step\":8,\"loss\":0.12", f);
    fclose(f);
    ck_assert_int_eq(ss_metrics_log_open(g_path, 4, &l, &err), SS_OK);
    log_steps(l, 5, 9);
    ss_metrics_log_close(&l);
    ck_assert_str_eq(slurp(g_path), want);

    // Resuming at the end keeps everything; resuming without a file starts one.
    ck_assert_int_eq(ss_metrics_log_open(g_path, 9, &l, &err), SS_OK);
    ss_metrics_log_close(&l);
    ck_assert_str_eq(slurp(g_path), want);
    unlink(g_path);
    ck_assert_int_eq(ss_metrics_log_open(g_path, 3, &l, &err), SS_OK);
    ss_metrics_log_close(&l);
    ck_assert_str_eq(slurp(g_path), "");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics_log");
    TCase *t = tcase_create("tc_ss_metrics_log_step");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_format);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_metrics_log_open");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_resume);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ss_test_run(suite());
}
