#include <time.h>

#include "shardseg/timer.h"

#include "testutil.h"

START_TEST(test_timer_accumulates)
{
    ss_timer_t t;
    ss_timer_init(&t);
    ck_assert_double_eq(ss_timer_stop(&t), 0); // nothing open
    for (int i = 0; i < 3; i++) {
        ss_timer_start(&t);
        struct timespec ts = {0, 2000000}; // 2 ms
        nanosleep(&ts, NULL);
        double dt = ss_timer_stop(&t);
        ck_assert(dt >= 0.0019);
    }
    ck_assert_int_eq(t.count, 3);
    ck_assert(t.min <= t.max);
    ck_assert(t.total >= 3 * 0.0019);
    ck_assert_double_eq_tol(ss_timer_mean(&t), t.total / 3, 1e-12);
    ck_assert(ss_time_now() > 0);
}
END_TEST

START_TEST(test_median)
{
    double scratch[5];
    double odd[5] = {5, 1, 4, 2, 3};
    ck_assert_double_eq(ss_median(odd, 5, scratch), 3);
    double even[4] = {10, 1, 3, 2};
    ck_assert_double_eq(ss_median(even, 4, scratch), 2.5);
    ck_assert_double_eq(odd[0], 5); // input untouched
    ck_assert_double_eq(ss_median(odd, 0, scratch), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("tc_ss_timer");
    tcase_add_test(tc, test_timer_accumulates);
    tcase_add_test(tc, test_median);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
