#include <string.h>

#include "shardseg/status.h"

#include "testutil.h"

static ss_status_t fails_with_context(ss_error_t *err)
{
    SS_FAIL(err, SS_EIO, "open %s: %s", "data.h5", "No such file or directory");
}

static ss_status_t propagates(ss_error_t *err)
{
    SS_TRY(fails_with_context(err));
    return SS_OK;
}

START_TEST(test_status_names)
{
    ck_assert_str_eq(ss_status_name(SS_OK), "SS_OK");
    ck_assert_str_eq(ss_status_name(SS_ESHAPE), "SS_ESHAPE");
    ck_assert_str_eq(ss_status_name(SS_ECANCELLED), "SS_ECANCELLED");
    ck_assert_str_eq(ss_status_str(SS_ENOMEM), "out of memory or over the memory budget");
    ck_assert_str_eq(ss_status_name((ss_status_t)-999), "SS_UNKNOWN");
    ck_assert_int_lt(SS_EINVAL, 0);
}
END_TEST

START_TEST(test_fail_records_context)
{
    ss_error_t err;
    ss_error_clear(&err);
    ck_assert_int_eq(propagates(&err), SS_EIO);
    ck_assert_int_eq(err.code, SS_EIO);
    ck_assert_str_eq(err.msg, "open data.h5: No such file or directory");
    ck_assert_str_eq(err.func, "fails_with_context");
    ck_assert_ptr_nonnull(strstr(err.file, "check_status.c"));
    ck_assert_int_gt(err.line, 0);
}
END_TEST

START_TEST(test_fail_with_null_err)
{
    ck_assert_int_eq(propagates(NULL), SS_EIO);
}
END_TEST

START_TEST(test_prefix_and_format)
{
    ss_error_t err;
    ss_error_clear(&err);
    fails_with_context(&err);
    ck_assert_int_eq(ss_error_prefix(&err, "--data %s", "x.h5"), SS_EIO);
    ck_assert_str_eq(err.msg, "--data x.h5: open data.h5: No such file or directory");
    char line[512];
    size_t n = ss_error_format(&err, 0, line, sizeof(line));
    ck_assert_uint_eq(n, strlen(line));
    ck_assert_str_eq(line, "--data x.h5: open data.h5: No such file or directory");
    ss_error_format(&err, 1, line, sizeof(line));
    ck_assert_ptr_nonnull(strstr(line, "[SS_EIO at "));
    // Truncation keeps the string terminated and reports what was written.
    char tiny[8];
    n = ss_error_format(&err, 0, tiny, sizeof(tiny));
    ck_assert_uint_eq(n, 7);
    ck_assert_str_eq(tiny, "--data ");
}
END_TEST

START_TEST(test_long_message_truncated)
{
    ss_error_t err;
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ss_error_set(&err, SS_EINVAL, 7, "f.c", 1, "fn", "%s", big);
    ck_assert_uint_eq(strlen(err.msg), SS_ERROR_MSG_MAX - 1);
    ck_assert_int_eq(err.lib_code, 7);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("tc_ss_status_name");
    tcase_add_test(tc, test_status_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_error_set");
    tcase_add_test(tc, test_fail_records_context);
    tcase_add_test(tc, test_fail_with_null_err);
    tcase_add_test(tc, test_long_message_truncated);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_error_format");
    tcase_add_test(tc, test_prefix_and_format);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
