// check_infer.c: sliding-window blending (identity networks reproduce the input exactly, with
// padding, overlap and flips; window counts as MONAI's scan) and the Dice score.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/infer.h"
#include "shardseg/metrics.h"

#include "testutil.h"

typedef struct {
    int calls;
    float *buf;
    int64_t cout;
} identity_t;

// y = x for the first cout channels (cin >= cout), plus the call count.
static ss_status_t identity(void *ctx, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    identity_t *id = ctx;
    int64_t shape[5] = {1, id->cout, x->shape[2], x->shape[3], x->shape[4]};
    SS_TRY(ss_tensor_init(y, SS_F32, 5, shape, id->buf, err));
    memcpy(id->buf, x->data, ss_tensor_nbytes(y));
    id->calls++;
    return SS_OK;
}

static void check_identity(const int64_t size[3],
                           const int64_t roi[3],
                           double overlap,
                           int mode,
                           int flips,
                           int expect_calls)
{
    identity_t id = {0, malloc((size_t)(roi[0] * roi[1] * roi[2] * 2) * sizeof(float)), 2};
    ss_infer_net_t net = {identity, &id, {roi[0], roi[1], roi[2]}, 3, 2};
    int64_t vol = size[0] * size[1] * size[2];
    float *img = malloc((size_t)(3 * vol) * sizeof(float)),
          *out = malloc((size_t)(2 * vol) * sizeof(float));
    ss_test_fill(img, 3 * vol, 5, -2.0f, 2.0f);
    ss_infer_params_t p;
    ss_infer_params_default(&p);
    p.overlap = overlap;
    p.mode = mode;
    p.flips = flips;
    ss_error_t err;
    ck_assert_int_eq(ss_infer_volume_net(&net, out, img, size, &p, &err), SS_OK);
    ck_assert_double_le(ss_test_max_rel_err(out, img, 2 * vol, 1e-6, 1e-6), 1.0);
    ck_assert_int_eq(id.calls, expect_calls);
    free(id.buf);
    free(img);
    free(out);
}

START_TEST(tc_identity)
{
    // 155 with ROI 32, overlap 0.25: interval 24, ceil(123 / 24) + 1 = 7 windows (MONAI's scan).
    int64_t size[3] = {155, 20, 9}, roi[3] = {32, 16, 16};
    // J: ceil(4 / 12) + 1 = 2; K smaller than the ROI: padded, 1 window.
    check_identity(size, roi, 0.25, SS_BLEND_GAUSSIAN, 0, 7 * 2 * 1);
    check_identity(size, roi, 0.5, SS_BLEND_CONSTANT, 0, 9 * 2 * 1);
    int64_t small[3] = {10, 11, 12}, r2[3] = {8, 8, 8};
    check_identity(small, r2, 0.5, SS_BLEND_GAUSSIAN, 1, 8 * (2 * 2 * 2)); // 8 flips
    check_identity(r2, r2, 0.0, SS_BLEND_GAUSSIAN, 0, 1);
}
END_TEST

typedef struct {
    int calls;
    float *buf;
} stamp_t;

// Every voxel of window k gets the value k: where one window covers a voxel alone the blend must
// return exactly k, between windows a Gaussian-weighted mean strictly between their stamps.
static ss_status_t stamp(void *ctx, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err)
{
    stamp_t *s = ctx;
    int64_t shape[5] = {1, 1, x->shape[2], x->shape[3], x->shape[4]};
    SS_TRY(ss_tensor_init(y, SS_F32, 5, shape, s->buf, err));
    for (int64_t i = 0; i < ss_tensor_numel(y); i++) {
        s->buf[i] = (float)s->calls;
    }
    s->calls++;
    return SS_OK;
}

START_TEST(tc_gaussian_weights)
{
    int64_t size[3] = {24, 1, 1}, roi[3] = {16, 1, 1};
    stamp_t s = {0, malloc(16 * sizeof(float))};
    ss_infer_net_t net = {stamp, &s, {16, 1, 1}, 1, 1};
    float img[24] = {0}, out[24];
    ss_infer_params_t p;
    ss_infer_params_default(&p);
    p.overlap = 0.5; // windows at 0 and 8
    ss_error_t err;
    ck_assert_int_eq(ss_infer_volume_net(&net, out, img, size, &p, &err), SS_OK);
    ck_assert_int_eq(s.calls, 2);
    ck_assert_float_eq(out[0], 0.0f);
    ck_assert_float_eq(out[23], 1.0f);
    // Voxel 12: offset 12 in window 0 and 4 in window 1, centre 7.5, sigma 2: weights
    // exp(-4.5^2 / 8) and exp(-3.5^2 / 8).
    double w0 = exp(-4.5 * 4.5 / 8), w1 = exp(-3.5 * 3.5 / 8);
    ck_assert_double_eq_tol(out[12], w1 / (w0 + w1), 1e-6);
    // Clamping: far tails get at least 1e-3 of the peak.
    (void)roi;
    free(s.buf);
}
END_TEST

START_TEST(tc_bad_overlap)
{
    identity_t id = {0, NULL, 1};
    ss_infer_net_t net = {identity, &id, {4, 4, 4}, 1, 1};
    int64_t size[3] = {4, 4, 4};
    float img[64], out[64];
    ss_infer_params_t p;
    ss_infer_params_default(&p);
    p.overlap = 1.0;
    ss_error_t err;
    ck_assert_int_eq(ss_infer_volume_net(&net, out, img, size, &p, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "overlap"));
}
END_TEST

START_TEST(tc_dice)
{
    uint8_t a[8] = {0}, b[8] = {0};
    ck_assert_double_eq(ss_dice_u8(a, b, 8), 1.0); // both empty
    b[0] = 1;
    ck_assert_double_eq(ss_dice_u8(a, b, 8), 0.0);
    a[0] = a[1] = 1;
    b[2] = 1;
    ck_assert_double_eq_tol(ss_dice_u8(a, b, 8), 2.0 * 1 / (2 + 2), 1e-12);
}
END_TEST

// Two tumour blobs (27 and 8 voxels, touching only diagonally inside each one) plus a TC voxel
// in the small blob: only the large blob survives, and with it only its own TC voxels.
START_TEST(tc_keep_largest)
{
    const int64_t d[3] = {6, 7, 8}, vol = 6 * 7 * 8;
    float lg[2 * 6 * 7 * 8];
    for (int64_t v = 0; v < 2 * vol; v++) {
        lg[v] = -2.0f;
    }
#define AT(i, j, k) (((i)*d[1] + (j)) * d[2] + (k))
    for (int i = 0; i < 3; i++) { // the large blob: a 3x3x3 cube at the origin
        for (int j = 0; j < 3; j++) {
            for (int k = 0; k < 3; k++) {
                lg[AT(i, j, k)] = 1.0f;
            }
        }
    }
    lg[vol + AT(1, 1, 1)] = 3.0f; // TC inside the large blob
    const int64_t small[8][3] = {{4, 4, 5}, {5, 5, 6}, {4, 5, 6}, {5, 4, 5}, // diagonal chain
                                 {4, 4, 6}, {5, 5, 7}, {4, 6, 7}, {5, 6, 7}};
    for (int s = 0; s < 8; s++) {
        lg[AT(small[s][0], small[s][1], small[s][2])] = 0.5f;
    }
    lg[vol + AT(4, 4, 5)] = 2.0f; // TC inside the small blob
    int64_t kept = 0;
    ss_error_t err;
    ck_assert_int_eq(ss_infer_keep_largest(lg, 2, d, &kept, &err), SS_OK);
    ck_assert_int_eq(kept, 27);
    int64_t wt = 0;
    for (int64_t v = 0; v < vol; v++) {
        wt += lg[v] > 0.0f;
    }
    ck_assert_int_eq(wt, 27);
    ck_assert(lg[AT(4, 4, 5)] < 0.0f && lg[vol + AT(4, 4, 5)] < 0.0f);
    ck_assert(lg[vol + AT(1, 1, 1)] == 3.0f && lg[AT(2, 2, 2)] == 1.0f);
    // The small blob is one component under 26-connectivity: kept when the cube is gone.
    for (int64_t v = 0; v < vol; v++) {
        lg[v] = -2.0f;
    }
    for (int s = 0; s < 8; s++) {
        lg[AT(small[s][0], small[s][1], small[s][2])] = 0.5f;
    }
#undef AT
    ck_assert_int_eq(ss_infer_keep_largest(lg, 1, d, &kept, &err), SS_OK);
    ck_assert_int_eq(kept, 8);
}
END_TEST

static Suite *infer_suite(void)
{
    Suite *s = suite_create("infer");
    TCase *tc = tcase_create("infer");
    tcase_add_test(tc, tc_identity);
    tcase_add_test(tc, tc_gaussian_weights);
    tcase_add_test(tc, tc_bad_overlap);
    tcase_add_test(tc, tc_dice);
    tcase_add_test(tc, tc_keep_largest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(infer_suite());
}
