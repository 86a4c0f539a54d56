// check_model.c: the networks. Configuration errors, MONAI parameter names and shapes, gradients
// against central finite differences of the float network (sampled parameters), and batch-norm
// running statistics. The PyTorch comparison lives in check_interop.c.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/model.h"

#include "testutil.h"

static ss_model_config_t tiny_unetr(int64_t patch)
{
    ss_model_config_t c;
    ss_model_config_default(&c, SS_MODEL_UNETR);
    c.in_channels = 2;
    c.out_channels = 2;
    for (int d = 0; d < 3; d++) {
        c.img_size[d] = patch * 2;
        c.patch_size[d] = patch;
    }
    c.img_size[2] = patch; // a non-cubic grid catches transposed axes
    c.feature_size = 2;
    c.hidden_size = 8;
    c.mlp_dim = 12;
    c.num_heads = 2;
    c.num_layers = 4;
    return c;
}

static ss_model_config_t tiny_unet(ss_model_norm_t norm)
{
    ss_model_config_t c;
    ss_model_config_default(&c, SS_MODEL_UNET3D);
    c.in_channels = 2;
    c.out_channels = 2;
    c.img_size[0] = 8, c.img_size[1] = 8, c.img_size[2] = 4;
    c.depth = 3;
    c.base_filters = 2;
    c.convs_per_level = 2;
    c.norm = norm;
    return c;
}

static ss_model_t *make(const ss_model_config_t *c, int64_t batch, int training)
{
    ss_model_plan_t p = {batch, 0, c->img_size[0], training, 1, NULL};
    ss_model_t *m = NULL;
    ss_error_t err;
    ss_status_t st = ss_model_create(&m, c, &p, NULL, &err);
    ck_assert_msg(st == SS_OK, "%s", err.msg);
    ck_assert_int_eq(ss_model_init_weights(m, 7, &err), SS_OK);
    return m;
}

static void expect_invalid(ss_model_config_t c, const char *needle)
{
    ss_error_t err;
    ck_assert_int_ne(ss_model_config_validate(&c, &err), SS_OK);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
}

START_TEST(tc_config_validate)
{
    ss_model_config_t c = tiny_unetr(4);
    ss_error_t err;
    ck_assert_int_eq(ss_model_config_validate(&c, &err), SS_OK);
    c.num_heads = 3;
    expect_invalid(c, "num_heads");
    c = tiny_unetr(4);
    c.patch_size[0] = c.patch_size[1] = c.patch_size[2] = 32;
    expect_invalid(c, "patch_size");
    c = tiny_unetr(4);
    c.img_size[1] = 10;
    expect_invalid(c, "img_size");
    c = tiny_unetr(4);
    c.num_layers = 3;
    expect_invalid(c, "num_layers");
    c = tiny_unetr(4);
    c.dropout_rate = 0.1;
    expect_invalid(c, "dropout_rate");
    c = tiny_unet(SS_MODEL_NORM_INSTANCE);
    c.img_size[2] = 6;
    expect_invalid(c, "img_size");
    c = tiny_unet(SS_MODEL_NORM_INSTANCE);
    c.depth = 1;
    expect_invalid(c, "depth");
}
END_TEST

static void expect_param(const ss_model_t *m, const char *name, int ndim, const int64_t *shape)
{
    int i = ss_model_param_find(m, name);
    ck_assert_msg(i >= 0, "parameter %s missing", name);
    const ss_param_t *p = ss_model_param(m, i);
    ck_assert_int_eq(p->ndim, ndim);
    for (int d = 0; d < ndim; d++) {
        ck_assert_msg(p->shape[d] == shape[d], "%s dim %d: %lld != %lld", name, d,
                      (long long)p->shape[d], (long long)shape[d]);
    }
}

START_TEST(tc_names_unetr)
{
    // MONAI's default UNETR shapes (feature 16, hidden 768, mlp 3072, heads 12) at 96^3.
    ss_model_config_t c;
    ss_model_config_default(&c, SS_MODEL_UNETR);
    c.img_size[0] = c.img_size[1] = c.img_size[2] = 96;
    ss_model_plan_t p = {1, 0, 96, 0, 1, NULL};
    ss_model_t *m = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_model_create(&m, &c, &p, NULL, &err), SS_OK);
    int64_t pos[3] = {1, 216, 768}, pe[5] = {768, 4, 16, 16, 16}, qkv[2] = {2304, 768};
    int64_t fc1[2] = {3072, 768}, e2[5] = {768, 32, 2, 2, 2}, e2b[5] = {32, 32, 2, 2, 2};
    int64_t d5c3[5] = {128, 256, 1, 1, 1}, d2c1[5] = {16, 32, 3, 3, 3}, out[1] = {3};
    int64_t e1c1[5] = {16, 4, 3, 3, 3}, hd[1] = {768};
    expect_param(m, "vit.patch_embedding.position_embeddings", 3, pos);
    expect_param(m, "vit.patch_embedding.patch_embeddings.weight", 5, pe);
    expect_param(m, "vit.blocks.11.attn.qkv.weight", 2, qkv);
    expect_param(m, "vit.blocks.0.mlp.linear1.weight", 2, fc1);
    expect_param(m, "vit.blocks.0.attn.out_proj.bias", 1, hd);
    expect_param(m, "vit.norm.weight", 1, hd);
    expect_param(m, "encoder1.layer.conv1.conv.weight", 5, e1c1);
    expect_param(m, "encoder2.transp_conv_init.conv.weight", 5, e2);
    expect_param(m, "encoder2.blocks.1.0.conv.weight", 5, e2b);
    expect_param(m, "decoder5.conv_block.conv3.conv.weight", 5, d5c3);
    expect_param(m, "decoder2.conv_block.conv1.conv.weight", 5, d2c1);
    expect_param(m, "out.conv.conv.bias", 1, out);
    ck_assert_int_lt(ss_model_param_find(m, "vit.blocks.0.attn.qkv.bias"), 0);
    ck_assert_int_lt(ss_model_param_find(m, "encoder2.blocks.2.0.conv.weight"), 0);
    ck_assert_int_lt(ss_model_param_find(m, "encoder4.blocks.0.0.conv.weight"), 0);
    ss_model_destroy(&m);
}
END_TEST

START_TEST(tc_names_patch8)
{
    ss_model_config_t c = tiny_unetr(8);
    ss_model_t *m = make(&c, 1, 0);
    ck_assert_int_ge(ss_model_param_find(m, "decoder4.transp_conv.conv.weight"), 0);
    ck_assert_int_ge(ss_model_param_find(m, "encoder3.transp_conv_init.conv.weight"), 0);
    ck_assert_int_ge(ss_model_param_find(m, "encoder2.blocks.0.1.conv1.conv.weight"), 0);
    ck_assert_int_lt(ss_model_param_find(m, "decoder5.transp_conv.conv.weight"), 0);
    ck_assert_int_lt(ss_model_param_find(m, "encoder4.transp_conv_init.conv.weight"), 0);
    int64_t d4[5] = {8, 8, 2, 2, 2};
    expect_param(m, "decoder4.transp_conv.conv.weight", 5, d4);
    ss_model_destroy(&m);
}
END_TEST

// --- determinism and modes --------------------------------------------------------------------
// Gradients against an independent reference (PyTorch, float64) are checked by check_interop.

// Forward + backward of L = sum(logits * r); returns a malloc'd copy of logits then grads.
static float *run_step(const ss_model_config_t *c, int64_t batch, int threads, int64_t *len)
{
    ss_model_plan_t p = {batch, 0, c->img_size[0], 1, threads, NULL};
    ss_model_t *m = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_model_create(&m, c, &p, NULL, &err), SS_OK);
    ck_assert_int_eq(ss_model_init_weights(m, 7, &err), SS_OK);
    ss_tensor_t x, r, y;
    int64_t xs[5] = {batch, c->in_channels, c->img_size[0], c->img_size[1], c->img_size[2]};
    int64_t ys[5] = {batch, c->out_channels, c->img_size[0], c->img_size[1], c->img_size[2]};
    ss_test_tensor(&x, 5, xs, 11, -1.0f, 1.0f);
    ss_test_tensor(&r, 5, ys, 12, -1.0f, 1.0f);
    ck_assert_int_eq(ss_model_forward(m, &y, &x, NULL, &err), SS_OK);
    ck_assert_int_eq(ss_model_backward(m, &r, &err), SS_OK);
    int64_t ny = ss_tensor_numel(&y), ng = ss_model_numel(m);
    float *out = malloc((size_t)(ny + ng) * sizeof(float));
    memcpy(out, y.data, (size_t)ny * sizeof(float));
    memcpy(out + ny, ss_model_grads(m), (size_t)ng * sizeof(float));
    *len = ny + ng;
    free(x.data);
    free(r.data);
    ss_model_destroy(&m);
    return out;
}

// The same step twice (arenas reused) and with 1 and 2 threads: logits and gradients agree.
static void check_repeatable(const ss_model_config_t *c)
{
    int64_t n1, n2, n3;
    float *a = run_step(c, 2, 1, &n1), *b = run_step(c, 2, 1, &n2), *d = run_step(c, 2, 2, &n3);
    ck_assert_int_eq(n1, n2);
    ck_assert_int_eq(n1, n3);
    ck_assert_msg(memcmp(a, b, (size_t)n1 * sizeof(float)) == 0, "two identical runs differ");
    // Linear layers use OpenBLAS, whose sgemm may round differently with the thread count.
    ck_assert_double_le(ss_test_max_rel_err(d, a, n1, 1e-5, 1e-4), 1.0);
    free(a);
    free(b);
    free(d);
}

START_TEST(tc_repeatable_unetr)
{
    ss_model_config_t c = tiny_unetr(4);
    check_repeatable(&c);
}
END_TEST

START_TEST(tc_repeatable_unet)
{
    ss_model_config_t c = tiny_unet(SS_MODEL_NORM_BATCH);
    check_repeatable(&c);
}
END_TEST

// Inference places each block's output before its temporaries and normalises in place; its
// logits are the training forward's bit for bit (instance norm), twice in a row (arena reuse).
static float *logits_of(const ss_model_config_t *c, int training, int64_t *len)
{
    ss_model_plan_t p = {2, 0, c->img_size[0], training, 2, NULL};
    ss_model_t *m = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_model_create(&m, c, &p, NULL, &err), SS_OK);
    ck_assert_int_eq(ss_model_init_weights(m, 7, &err), SS_OK);
    ss_tensor_t x, y;
    int64_t xs[5] = {2, c->in_channels, c->img_size[0], c->img_size[1], c->img_size[2]};
    ss_test_tensor(&x, 5, xs, 11, -1.0f, 1.0f);
    ck_assert_int_eq(ss_model_forward(m, &y, &x, NULL, &err), SS_OK);
    *len = ss_tensor_numel(&y);
    float *out = malloc((size_t)*len * sizeof(float));
    memcpy(out, y.data, (size_t)*len * sizeof(float));
    ck_assert_int_eq(ss_model_forward(m, &y, &x, NULL, &err), SS_OK);
    ck_assert_msg(memcmp(out, y.data, (size_t)*len * sizeof(float)) == 0,
                  "a second forward differs");
    free(x.data);
    ss_model_destroy(&m);
    return out;
}

START_TEST(tc_inference_matches_training)
{
    ss_model_config_t cs[3] = {tiny_unetr(4), tiny_unetr(8), tiny_unet(SS_MODEL_NORM_INSTANCE)};
    for (int i = 0; i < 3; i++) {
        int64_t na, nb;
        float *a = logits_of(&cs[i], 1, &na), *b = logits_of(&cs[i], 0, &nb);
        ck_assert_int_eq(na, nb);
        ck_assert_msg(memcmp(a, b, (size_t)na * sizeof(float)) == 0,
                      "model %d: inference logits differ from training's", i);
        free(a);
        free(b);
    }
}
END_TEST

// BatchNorm: training updates the running statistics as PyTorch does (momentum 0.1, unbiased
// variance) and eval mode normalises with them.
START_TEST(tc_batchnorm_running)
{
    ss_model_config_t c = tiny_unet(SS_MODEL_NORM_BATCH);
    ss_model_t *m = make(&c, 2, 1);
    ss_tensor_t x, y;
    int64_t xs[5] = {2, 2, 8, 8, 4};
    ss_test_tensor(&x, 5, xs, 5, 2.0f, 4.0f); // mean 3, variance 1/3
    ss_error_t err;
    ck_assert_int_eq(ss_model_forward(m, &y, &x, NULL, &err), SS_OK);
    const ss_param_t *rm = ss_model_param(m, ss_model_param_find(m, "down.0.norm0.running_mean"));
    const ss_param_t *nb =
        ss_model_param(m, ss_model_param_find(m, "down.0.norm0.num_batches_tracked"));
    const ss_param_t *w = ss_model_param(m, ss_model_param_find(m, "down.0.conv0.weight"));
    const ss_param_t *b = ss_model_param(m, ss_model_param_find(m, "down.0.conv0.bias"));
    ck_assert(!rm->trainable && nb->ndim == 0);
    ck_assert_float_eq(ss_model_weights(m)[nb->offset], 1.0f);
    // Channel 0 of conv0's output, recomputed here: its batch mean drives running_mean[0].
    const float *W = ss_model_weights(m) + w->offset, *X = ss_tensor_f32(&x);
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t n = 0; n < 2; n++) {
        for (int64_t i = 0; i < 8; i++) {
            for (int64_t j = 0; j < 8; j++) {
                for (int64_t k = 0; k < 4; k++) {
                    double acc = ss_model_weights(m)[b->offset];
                    for (int64_t ci = 0; ci < 2; ci++) {
                        for (int t = 0; t < 27; t++) {
                            int64_t ii = i + t / 9 - 1, jj = j + t / 3 % 3 - 1, kk = k + t % 3 - 1;
                            if (ii >= 0 && ii < 8 && jj >= 0 && jj < 8 && kk >= 0 && kk < 4) {
                                acc += (double)W[ci * 27 + t] *
                                       X[(((n * 2 + ci) * 8 + ii) * 8 + jj) * 4 + kk];
                            }
                        }
                    }
                    sum += acc;
                    cnt++;
                }
            }
        }
    }
    ck_assert_double_eq_tol(ss_model_weights(m)[rm->offset], 0.1 * sum / (double)cnt, 1e-5);
    free(x.data);
    ss_model_destroy(&m);
}
END_TEST

START_TEST(tc_backward_needs_forward)
{
    ss_model_config_t c = tiny_unet(SS_MODEL_NORM_INSTANCE);
    ss_model_t *m = make(&c, 1, 0);
    ss_tensor_t x, y;
    int64_t xs[5] = {1, 2, 8, 8, 4};
    ss_test_tensor(&x, 5, xs, 3, -1.0f, 1.0f);
    ss_error_t err;
    ck_assert_int_eq(ss_model_forward(m, &y, &x, NULL, &err), SS_OK);
    ck_assert_int_eq(ss_model_backward(m, &y, &err), SS_EINVAL);
    int64_t bad[5] = {1, 3, 8, 8, 4};
    ss_tensor_t xb;
    ss_test_tensor(&xb, 5, bad, 3, -1.0f, 1.0f);
    ck_assert_int_eq(ss_model_forward(m, &y, &xb, NULL, &err), SS_ESHAPE);
    ck_assert_msg(strstr(err.msg, "in_channels") != NULL, "%s", err.msg);
    free(x.data);
    free(xb.data);
    ss_model_destroy(&m);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, tc_config_validate);
    tcase_add_test(tc, tc_names_unetr);
    tcase_add_test(tc, tc_names_patch8);
    tcase_add_test(tc, tc_repeatable_unetr);
    tcase_add_test(tc, tc_repeatable_unet);
    tcase_add_test(tc, tc_inference_matches_training);
    tcase_add_test(tc, tc_batchnorm_running);
    tcase_add_test(tc, tc_backward_needs_forward);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(model_suite());
}
