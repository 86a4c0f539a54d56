#include <string.h>

#include "../src/cli/opts.h"
#include "testutil.h"

typedef struct {
    int64_t steps;
    double lr;
    const char *out;
    int flag;
    size_t mem;
    int64_t patch[3];
} fields_t;

static int parse(fields_t *f, int argc, char **argv, char *msg, const char **pos, int *npos)
{
    memset(f, 0, sizeof(*f));
    const ss_cli_opt_t opts[] = {
        {"steps", 's', SS_OPT_INT, &f->steps, "N", "steps", 1, 1e9},
        {"lr", 0, SS_OPT_DOUBLE, &f->lr, "X", "learning rate", 0, 10},
        {"out", 'o', SS_OPT_STRING, &f->out, "DIR", "output", 0, -1},
        {"flip", 0, SS_OPT_FLAG, &f->flag, NULL, "flag", 0, -1},
        {"mem-limit", 0, SS_OPT_BYTES, &f->mem, "SIZE", "budget", 0, -1},
        {"patch", 0, SS_OPT_DIMS3, f->patch, "AxBxC", "patch", 1, 1024},
    };
    return ss_cli_parse(argc, argv, opts, 6, pos, 2, npos, msg, 256);
}

START_TEST(test_good_values)
{
    char *argv[] = {"--steps",     "12", "--lr=0.5", "-o",       "run", "a.h5", "--flip",
                    "--mem-limit", "1G", "--patch",  "64x32x16", "--",  "--odd"};
    fields_t f;
    char msg[256];
    const char *pos[2];
    int npos;
    ck_assert_int_eq(parse(&f, 13, argv, msg, pos, &npos), SS_CLI_PARSED);
    ck_assert_int_eq(f.steps, 12);
    ck_assert_double_eq(f.lr, 0.5);
    ck_assert_str_eq(f.out, "run");
    ck_assert_int_eq(f.flag, 1);
    ck_assert_uint_eq(f.mem, 1ull << 30);
    ck_assert_int_eq(f.patch[0], 64);
    ck_assert_int_eq(f.patch[1], 32);
    ck_assert_int_eq(f.patch[2], 16);
    ck_assert_int_eq(npos, 2);
    ck_assert_str_eq(pos[0], "a.h5");
    ck_assert_str_eq(pos[1], "--odd");
    char *cube[] = {"--patch", "96"};
    ck_assert_int_eq(parse(&f, 2, cube, msg, pos, &npos), SS_CLI_PARSED);
    ck_assert_int_eq(f.patch[2], 96);
}
END_TEST

// Each bad command line must fail and the message must name the option at fault.
START_TEST(test_bad_values_name_the_option)
{
    static const struct {
        int argc;
        char *argv[3];
        const char *must_contain;
    } cases[] = {
        {1, {"--bogus"}, "--bogus: unknown option"},
        {2, {"--bogus=3"}, "--bogus: unknown option"},
        {1, {"-z"}, "-z: unknown option"},
        {1, {"--steps"}, "--steps: missing value"},
        {2, {"--steps", "abc"}, "--steps: 'abc' is not a valid value"},
        {2, {"--steps", "12x"}, "--steps"},
        {2, {"--steps", "0"}, "between 1 and 1000000000"},
        {2, {"--lr", "nan"}, "--lr"},
        {2, {"--lr", "11"}, "between 0 and 10"},
        {2, {"--mem-limit", "12Q"}, "--mem-limit"},
        {2, {"--patch", "64x64"}, "--patch"},
        {2, {"--patch", "64x64x64x64"}, "--patch"},
        {2, {"--patch", "0x64x64"}, "--patch"},
        {1, {"--flip=1"}, "--flip: takes no value"},
        {3, {"a", "b", "c"}, "'c': unexpected argument"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fields_t f;
        char msg[256] = "";
        const char *pos[2];
        int npos;
        ck_assert_msg(parse(&f, cases[i].argc, (char **)cases[i].argv, msg, pos, &npos) ==
                          SS_CLI_ERROR,
                      "case %zu accepted", i);
        ck_assert_msg(strstr(msg, cases[i].must_contain) != NULL, "case %zu: '%s' lacks '%s'", i,
                      msg, cases[i].must_contain);
    }
}
END_TEST

START_TEST(test_help)
{
    char *argv[] = {"--steps", "3", "--help"};
    fields_t f;
    char msg[256];
    const char *pos[2];
    int npos;
    ck_assert_int_eq(parse(&f, 3, argv, msg, pos, &npos), SS_CLI_HELP);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("opts");
    TCase *tc = tcase_create("tc_ss_cli_parse");
    tcase_add_test(tc, test_good_values);
    tcase_add_test(tc, test_bad_values_name_the_option);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
