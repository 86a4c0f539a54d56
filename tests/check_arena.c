#include <stdint.h>
#include <string.h>

#include "shardseg/arena.h"

#include "testutil.h"

START_TEST(test_alignment_and_peak)
{
    ss_budget_t b;
    ss_budget_init(&b, 0);
    ss_arena_t *a = NULL;
    ck_assert_int_eq(ss_arena_create(4096, &b, "t", &a, NULL), SS_OK);
    ck_assert_uint_eq(ss_arena_reserved(a), 0); // nothing requested before the first use
    void *p1, *p2, *p3;
    ck_assert_int_eq(ss_arena_alloc(a, 1, &p1, NULL), SS_OK);
    ck_assert_int_eq(ss_arena_alloc(a, 100, &p2, NULL), SS_OK);
    ck_assert_uint_eq((uintptr_t)p1 % SS_ALIGN, 0);
    ck_assert_uint_eq((uintptr_t)p2 % SS_ALIGN, 0);
    ck_assert_uint_eq(ss_arena_live(a), 64 + 128);
    ss_arena_mark_t m = ss_arena_mark(a);
    ck_assert_int_eq(ss_arena_alloc(a, 1000, &p3, NULL), SS_OK);
    ck_assert_uint_eq(ss_arena_live(a), 64 + 128 + 1024);
    ck_assert_uint_eq(ss_arena_peak(a), 64 + 128 + 1024);
    ss_arena_rewind(a, m);
    ck_assert_uint_eq(ss_arena_live(a), 64 + 128);
    void *p4;
    ck_assert_int_eq(ss_arena_alloc(a, 10, &p4, NULL), SS_OK);
    ck_assert_ptr_eq(p4, p3); // rewound space is reused
    ck_assert_uint_eq(ss_arena_peak(a), 64 + 128 + 1024);
    ck_assert_uint_eq(ss_budget_in_use(&b), ss_arena_reserved(a));
    ss_arena_destroy(&a);
    ck_assert_ptr_null(a);
    ck_assert_uint_eq(ss_budget_in_use(&b), 0);
    ss_arena_destroy(&a); // NULL is accepted
}
END_TEST

START_TEST(test_chunks_grow_and_reuse)
{
    ss_budget_t b;
    ss_budget_init(&b, 0);
    ss_arena_t *a = NULL;
    ck_assert_int_eq(ss_arena_create(1024, &b, "t", &a, NULL), SS_OK);
    ss_arena_mark_t start = ss_arena_mark(a);
    void *p[6];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 6; i++) {
            ck_assert_int_eq(ss_arena_alloc(a, 700, &p[i], NULL), SS_OK);
            memset(p[i], i, 700);
        }
        for (int i = 0; i < 6; i++) {
            ck_assert_int_eq(((unsigned char *)p[i])[699], i); // blocks do not overlap
        }
        size_t reserved = ss_arena_reserved(a);
        ss_arena_rewind(a, start);
        ck_assert_uint_eq(ss_arena_live(a), 0);
        if (round > 0) {
            ck_assert_uint_eq(ss_arena_reserved(a), reserved); // no new chunks after round 0
        }
    }
    // A request larger than a chunk gets its own chunk.
    void *big;
    ck_assert_int_eq(ss_arena_alloc(a, 10000, &big, NULL), SS_OK);
    memset(big, 1, 10000);
    ss_arena_destroy(&a);
    ck_assert_uint_eq(ss_budget_in_use(&b), 0);
    ck_assert_uint_gt(ss_budget_peak(&b), 6 * 704);
}
END_TEST

START_TEST(test_budget_refuses_before_allocating)
{
    ss_budget_t b;
    ss_budget_init(&b, 64 * 1024);
    ss_arena_t *a = NULL;
    ck_assert_int_eq(ss_arena_create(16 * 1024, &b, "activations", &a, NULL), SS_OK);
    void *p;
    ck_assert_int_eq(ss_arena_alloc(a, 40 * 1024, &p, NULL), SS_OK);
    size_t before = ss_budget_in_use(&b);
    ss_error_t err;
    ss_error_clear(&err);
    ck_assert_int_eq(ss_arena_alloc(a, 40 * 1024, &p, &err), SS_ENOMEM);
    ck_assert_int_eq(err.code, SS_ENOMEM);
    ck_assert_ptr_nonnull(strstr(err.msg, "--mem-limit"));
    ck_assert_ptr_nonnull(strstr(err.msg, "activations"));
    ck_assert_uint_eq(ss_budget_in_use(&b), before); // nothing charged for the refused request
    ss_arena_destroy(&a);

    void *slab = NULL;
    ck_assert_int_eq(ss_aligned_alloc(&slab, 65 * 1024, &b, "parameters", &err), SS_ENOMEM);
    ck_assert_ptr_null(slab);
    ck_assert_int_eq(ss_aligned_alloc(&slab, 1000, &b, "parameters", &err), SS_OK);
    ck_assert_uint_eq(ss_budget_in_use(&b), 1024);
    ss_aligned_free(slab, 1000, &b);
    ck_assert_uint_eq(ss_budget_in_use(&b), 0);
}
END_TEST

START_TEST(test_bytes_parse)
{
    static const struct {
        const char *s;
        size_t want;
    } ok[] = {
        {"0", 0},
        {"123", 123},
        {"64K", 64 * 1024},
        {"512M", 512ull << 20},
        {"12G", 12ull << 30},
        {"12GiB", 12ull << 30},
        {"1.5G", 3ull << 29},
        {"2t", 2ull << 40},
        {"100B", 100},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        size_t v = 1;
        ck_assert_int_eq(ss_bytes_parse(ok[i].s, "--mem-limit", &v, NULL), SS_OK);
        ck_assert_uint_eq(v, ok[i].want);
    }
    static const char *bad[] = {"", "abc", "12Q", "-1G", "1e400", "12 G", "G", "nan"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t v;
        ss_error_t err;
        ck_assert_int_eq(ss_bytes_parse(bad[i], "--mem-limit", &v, &err), SS_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "--mem-limit"));
    }
    char buf[32];
    ss_bytes_format(3ull << 29, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1.50 GiB");
    ss_bytes_format(17, buf, sizeof(buf));
    ck_assert_str_eq(buf, "17 B");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("tc_ss_arena_alloc");
    tcase_add_test(tc, test_alignment_and_peak);
    tcase_add_test(tc, test_chunks_grow_and_reuse);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_budget_charge");
    tcase_add_test(tc, test_budget_refuses_before_allocating);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_bytes_parse");
    tcase_add_test(tc, test_bytes_parse);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
