#include <string.h>

#include "shardseg/tensor.h"

#include "testutil.h"

START_TEST(test_init_strides)
{
    ss_tensor_t t;
    int64_t shape[5] = {2, 4, 5, 6, 7};
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, 5, shape, NULL, NULL), SS_OK);
    const int64_t want[5] = {4 * 5 * 6 * 7, 5 * 6 * 7, 6 * 7, 7, 1};
    for (int d = 0; d < 5; d++) {
        ck_assert_int_eq(t.stride[d], want[d]);
    }
    ck_assert_int_eq(ss_tensor_numel(&t), 2 * 4 * 5 * 6 * 7);
    ck_assert_uint_eq(ss_tensor_nbytes(&t), 4u * 2 * 4 * 5 * 6 * 7);
    ck_assert(ss_tensor_is_contiguous(&t));
    int64_t idx[5] = {1, 2, 3, 4, 5};
    ck_assert_int_eq(ss_tensor_offset(&t, idx),
                     1 * want[0] + 2 * want[1] + 3 * want[2] + 4 * 7 + 5);
    char buf[64];
    ss_tensor_shape_str(&t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "(2, 4, 5, 6, 7)");
}
END_TEST

START_TEST(test_init_rejects_bad_shapes)
{
    ss_tensor_t t;
    ss_error_t err;
    int64_t shape[7] = {1, 1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, 7, shape, NULL, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, -1, shape, NULL, &err), SS_ESHAPE);
    int64_t neg[2] = {3, -2};
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, 2, neg, NULL, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "negative"));
    // A zero-sized dimension is legal (an empty slab on a rank with no rows).
    int64_t empty[2] = {0, 5};
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, 2, empty, NULL, &err), SS_OK);
    ck_assert_int_eq(ss_tensor_numel(&t), 0);
}
END_TEST

START_TEST(test_slab_view)
{
    float data[2 * 3 * 8 * 4 * 5];
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++) {
        data[i] = (float)i;
    }
    ss_tensor_t t, v;
    int64_t shape[5] = {2, 3, 8, 4, 5};
    ck_assert_int_eq(ss_tensor_init(&t, SS_F32, 5, shape, data, NULL), SS_OK);
    // The i-slab [3, 6) of every (n, c): the region a sequence-parallel rank owns.
    ck_assert_int_eq(ss_tensor_view_slab(&v, &t, 2, 3, 3, NULL), SS_OK);
    ck_assert_ptr_eq(v.view_of, &t);
    ck_assert_int_eq(v.shape[2], 3);
    ck_assert(!ss_tensor_is_contiguous(&v));
    for (int64_t n = 0; n < 2; n++) {
        for (int64_t c = 0; c < 3; c++) {
            for (int64_t i = 0; i < 3; i++) {
                for (int64_t j = 0; j < 4; j++) {
                    for (int64_t k = 0; k < 5; k++) {
                        int64_t vi[5] = {n, c, i, j, k};
                        int64_t ti[5] = {n, c, i + 3, j, k};
                        ck_assert_float_eq(ss_tensor_f32(&v)[ss_tensor_offset(&v, vi)],
                                           data[ss_tensor_offset(&t, ti)]);
                    }
                }
            }
        }
    }
    // A slab along N of a contiguous tensor stays contiguous.
    ck_assert_int_eq(ss_tensor_view_slab(&v, &t, 0, 1, 1, NULL), SS_OK);
    ck_assert(ss_tensor_is_contiguous(&v));
    ck_assert_ptr_eq(v.data, data + 3 * 8 * 4 * 5);
    ss_error_t err;
    ck_assert_int_eq(ss_tensor_view_slab(&v, &t, 2, 6, 3, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_tensor_view_slab(&v, &t, 5, 0, 1, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_tensor_view_slab(&v, &t, 2, -1, 1, &err), SS_ESHAPE);
}
END_TEST

START_TEST(test_reshape_view)
{
    float data[24];
    ss_tensor_t t, v, s;
    int64_t shape[3] = {2, 3, 4};
    int64_t flat[2] = {6, 4};
    int64_t wrong[2] = {5, 5};
    ss_tensor_init(&t, SS_F32, 3, shape, data, NULL);
    ck_assert_int_eq(ss_tensor_view_reshape(&v, &t, 2, flat, NULL), SS_OK);
    ck_assert_int_eq(v.stride[0], 4);
    ck_assert_int_eq(ss_tensor_view_reshape(&v, &t, 2, wrong, NULL), SS_ESHAPE);
    ss_tensor_view_slab(&s, &t, 1, 1, 2, NULL);
    ck_assert_int_eq(ss_tensor_view_reshape(&v, &s, 2, flat, NULL), SS_ESHAPE);
}
END_TEST

START_TEST(test_split_range)
{
    // Every n and part count: ranges tile [0, n) in order and differ in length by at most one.
    for (int64_t n = 0; n < 40; n++) {
        for (int parts = 1; parts <= 7; parts++) {
            int64_t next = 0, lo = n, hi = 0;
            for (int p = 0; p < parts; p++) {
                int64_t start, len;
                ss_split_range(n, parts, p, &start, &len);
                ck_assert_int_eq(start, next);
                next = start + len;
                lo = len < lo ? len : lo;
                hi = len > hi ? len : hi;
            }
            ck_assert_int_eq(next, n);
            ck_assert_int_le(hi - lo, 1);
        }
    }
}
END_TEST

START_TEST(test_alloc_from_arena)
{
    ss_arena_t *a = NULL;
    ck_assert_int_eq(ss_arena_create(1 << 16, NULL, "t", &a, NULL), SS_OK);
    ss_tensor_t t;
    int64_t shape[5] = {1, 2, 3, 4, 5};
    ck_assert_int_eq(ss_tensor_alloc(&t, SS_F32, 5, shape, a, NULL), SS_OK);
    ck_assert_ptr_nonnull(t.data);
    memset(t.data, 0, ss_tensor_nbytes(&t));
    ck_assert_uint_ge(ss_arena_live(a), ss_tensor_nbytes(&t));
    ss_arena_destroy(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("tc_ss_tensor_init");
    tcase_add_test(tc, test_init_strides);
    tcase_add_test(tc, test_init_rejects_bad_shapes);
    tcase_add_test(tc, test_alloc_from_arena);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_tensor_view_slab");
    tcase_add_test(tc, test_slab_view);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_tensor_view_reshape");
    tcase_add_test(tc, test_reshape_view);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_split_range");
    tcase_add_test(tc, test_split_range);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
