#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/progress.h"
#include "testutil.h"

START_TEST(test_quiet_when_not_watched)
{
    // stderr redirected to a file (as under `make check` or Slurm): never draw.
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
    ck_assert_int_eq(ss_progress_wanted(0), 0);
    setenv("CI", "true", 1);
    ck_assert_int_eq(ss_progress_wanted(0), 0);
    ck_assert_int_eq(ss_progress_wanted(1), 0);
    ss_progress_t p;
    ss_progress_start(&p, "train", 10, 0);
    ck_assert_int_eq(p.active, 0);
    ss_progress_update(&p, 5, "loss 0.3"); // a no-op, must not crash or print
    ss_progress_finish(&p);
}
END_TEST

START_TEST(test_eta_format)
{
    char buf[16];
    ss_progress_format_eta(12.7, buf, sizeof(buf));
    ck_assert_str_eq(buf, "12s");
    ss_progress_format_eta(185, buf, sizeof(buf));
    ck_assert_str_eq(buf, "3m05s");
    ss_progress_format_eta(3720, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1h02m");
    ss_progress_format_eta(-1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "--");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("tc_ss_progress");
    tcase_add_test(tc, test_quiet_when_not_watched);
    tcase_add_test(tc, test_eta_format);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
