#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/log.h"

#include "testutil.h"

// Captures what one logging call writes with the given configuration.
static void
capture(const ss_log_config_t *cfg, ss_log_level_t level, const char *msg, char *out, size_t len)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ss_log_config_t c = *cfg;
    c.sink = f;
    ss_log_configure(&c);
    ss_log_write(level, "src/core/some_file.c", 42, "%s", msg);
    rewind(f);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    ss_log_config_t off = {SS_LOG_LEVEL_OFF, NULL, 0, 1};
    ss_log_configure(&off);
}

START_TEST(test_silent_until_configured)
{
    ck_assert_int_eq(ss_log_config().level, SS_LOG_LEVEL_OFF);
    ck_assert(!ss_log_enabled(SS_LOG_LEVEL_ERROR));
}
END_TEST

START_TEST(test_levels_and_ranks)
{
    char out[512];
    ss_log_config_t info0 = {SS_LOG_LEVEL_INFO, NULL, 0, 1};
    capture(&info0, SS_LOG_LEVEL_INFO, "training started", out, sizeof(out));
    ck_assert_str_eq(out, "training started\n");
    capture(&info0, SS_LOG_LEVEL_DEBUG, "hidden", out, sizeof(out));
    ck_assert_str_eq(out, "");

    // INFO only on rank 0 by default; warnings and errors on every rank, tagged with it.
    ss_log_config_t info3 = {SS_LOG_LEVEL_INFO, NULL, 3, 1};
    capture(&info3, SS_LOG_LEVEL_INFO, "not shown on rank 3", out, sizeof(out));
    ck_assert_str_eq(out, "");
    capture(&info3, SS_LOG_LEVEL_WARN, "slow halo", out, sizeof(out));
    ck_assert_str_eq(out, "[rank 3] warning: slow halo\n");
    capture(&info3, SS_LOG_LEVEL_ERROR, "bad", out, sizeof(out));
    ck_assert_ptr_nonnull(strstr(out, "[rank 3] [some_file.c:42] error: bad\n"));

    ss_log_config_t all = {SS_LOG_LEVEL_DEBUG, NULL, 1, 0};
    capture(&all, SS_LOG_LEVEL_DEBUG, "detail", out, sizeof(out));
    ck_assert_ptr_nonnull(strstr(out, "[rank 1] [some_file.c:42] debug: detail\n"));
    ck_assert_int_eq(out[0], '[');
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("tc_ss_log_write");
    tcase_add_test(tc, test_silent_until_configured);
    tcase_add_test(tc, test_levels_and_ranks);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
