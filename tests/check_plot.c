// check_plot: nice tick steps (1, 2, 2.5, 5 times a power of ten, at most max_ticks, decimals
// that print them exactly), page size limits, and a page with panels (data, no data, log axis,
// NaN gaps) written as a PNG of the asked size.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/plot.h"

#include "testutil.h"

START_TEST(test_nice_ticks)
{
    static const struct {
        double lo, hi;
        int max;
        double first, step;
        int n, decimals;
    } cases[] = {
        {0, 1, 6, 0, 0.2, 6, 1},         {0, 40, 9, 0, 5, 9, 0},    {0, 600, 7, 0, 100, 7, 0},
        {0.42, 1.9, 6, 0.5, 0.25, 6, 2}, {-1, 1, 5, -1, 0.5, 5, 1}, {1, 3, 12, 1, 0.2, 11, 1},
        {0, 1e-3, 6, 0, 2e-4, 6, 4},     {5, 5, 4, 5, 0.5, 3, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ss_plot_ticks_t t;
        ss_plot_nice_ticks(cases[i].lo, cases[i].hi, cases[i].max, &t);
        ck_assert_msg(
            fabs(t.step - cases[i].step) < 1e-12 && fabs(t.first - cases[i].first) < 1e-12 &&
                t.n == cases[i].n && t.decimals == cases[i].decimals,
            "case %zu: first %g step %g n %d decimals %d", i, t.first, t.step, t.n, t.decimals);
        ck_assert_int_le(t.n, cases[i].max > 2 ? cases[i].max : 2);
    }
}
END_TEST

START_TEST(test_create)
{
    ss_plot_t *p = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_plot_create(10, 600, &p, &err), SS_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(ss_plot_create(640, 480, &p, &err), SS_OK);
    ck_assert_double_gt(ss_plot_text_width(p, 16, 0, "step"), 10);
    ck_assert_double_gt(ss_plot_text_width(p, 16, SS_PLOT_TEXT_BOLD, "step"),
                        ss_plot_text_width(p, 16, 0, "st"));
    ss_plot_destroy(&p);
    ck_assert_ptr_null(p);
    ss_plot_destroy(&p);
}
END_TEST

START_TEST(test_panel_png)
{
    char dir[64], path[96];
    ss_test_tmpdir_make(dir, sizeof(dir), "plot");
    snprintf(path, sizeof(path), "%s/p.png", dir);
    double x[50], y[50], z[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i;
        y[i] = i == 20 ? NAN : exp(-0.1 * i);
        z[i] = -1; // not drawable on a log axis
    }
    ss_plot_t *p = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_plot_create(800, 300, &p, &err), SS_OK);
    ss_plot_series_t s[2] = {{x, y, 50, ss_plot_palette(0), 2, 1, "decay"},
                             {x, z, 50, ss_plot_palette(1), 0, 0, "negative"}};
    ss_plot_axes_t ax;
    ss_plot_axes_init(&ax, 0, 0, 400, 300);
    ax.title = "log";
    ax.xlabel = "step";
    ax.ylabel = "value";
    ax.ylog = 1;
    ax.legend = SS_PLOT_LEGEND_ABOVE;
    ss_plot_panel(p, &ax, s, 2);
    ss_plot_axes_init(&ax, 400, 0, 400, 300);
    ax.title = "empty";
    ss_plot_panel(p, &ax, s, 0);
    ck_assert_int_eq(ss_plot_write_png(p, path, &err), SS_OK);
    ss_plot_destroy(&p);
    FILE *f = fopen(path, "rb");
    unsigned char h[24];
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(h, 1, 24, f), 24);
    fclose(f);
    ck_assert_int_eq(memcmp(h + 12, "IHDR", 4), 0);
    ck_assert_int_eq((h[18] << 8) | h[19], 800);
    ck_assert_int_eq((h[22] << 8) | h[23], 300);
    ss_test_tmpdir_remove(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("plot");
    TCase *t = tcase_create("tc_ss_plot_nice_ticks");
    tcase_add_test(t, test_nice_ticks);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_plot_create");
    tcase_add_test(t, test_create);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_plot_panel");
    tcase_add_test(t, test_panel_png);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ss_test_run(suite());
}
