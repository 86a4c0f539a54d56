// check_trainer.c: the training loop on a tiny synthetic data file: a small network overfits
// (loss falls below a stated threshold and validation Dice is high), two runs give identical
// losses, and a run continued from another run's state after k steps repeats the uninterrupted
// run's losses bit for bit (the in-memory core of checkpoint resumption; the file round trip is
// tests/train.sh).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/h5data.h"
#include "shardseg/trainer.h"
#include "testutil.h"

static char g_dir[256];
static const char *const g_chan[4] = {"FLAIR", "T1", "T1ce", "T2"};

// Case c: a 24^3 volume with a ball (WT) around a smaller ball (TC) around a core (ET), centre
// shifted per case; the four channels see the regions with different contrasts plus noise.
static void make_case(int c, float *img, uint8_t *lab)
{
    const int64_t n = 24, vox = n * n * n;
    double cx = 10 + c % 3, cy = 12 - c % 2, cz = 11 + c % 4;
    for (int64_t i = 0; i < vox; i++) {
        double x = (double)(i / (n * n)) - cx, y = (double)(i / n % n) - cy, z = (double)(i % n) - cz;
        double r = sqrt(x * x + y * y + z * z);
        int wt = r < 7, tc = r < 4.5, et = r < 2.5;
        lab[i] = (uint8_t)wt, lab[vox + i] = (uint8_t)tc, lab[2 * vox + i] = (uint8_t)et;
        float noise[4];
        ss_test_fill(noise, 4, (uint64_t)(c * vox + i + 1), -0.3f, 0.3f);
        img[i] = (float)(wt * 1.5 - tc * 0.5) + noise[0];
        img[vox + i] = (float)(-tc * 1.0) + noise[1];
        img[2 * vox + i] = (float)(et * 2.0 + tc * 0.5) + noise[2];
        img[3 * vox + i] = (float)(wt * 1.0) + noise[3];
    }
}

static void make_file(const char *path, int ncases, int folds)
{
    ss_h5data_meta_t m = {4, g_chan, SS_TARGET_REGIONS, "brats", "synthetic", 3, 0.25, folds, 8, 1};
    ss_h5data_writer_t *w = NULL;
    ss_error_t err;
    ck_assert_msg(ss_h5data_create(path, &m, &w, &err) == SS_OK, "%s", err.msg);
    float *img = malloc(4 * 24 * 24 * 24 * sizeof(float));
    uint8_t *lab = malloc(3 * 24 * 24 * 24);
    char names[8][8];
    const char *np[8];
    for (int c = 0; c < ncases; c++) {
        make_case(c, img, lab);
        snprintf(names[c], sizeof(names[c]), "c%d", c);
        np[c] = names[c];
        ss_h5data_case_t hc = {names[c],   {24, 24, 24}, img, lab,
                               {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}},
                               {24, 24, 24}, {{0, 0, 0}, {24, 24, 24}}, {1, 1, 1},
                               {0, 0, 0, 0}, {1, 1, 1, 1}};
        ck_assert_msg(ss_h5data_write_case(w, &hc, &err) == SS_OK, "%s", err.msg);
    }
    int assign[8];
    ss_h5data_split(ncases, m.val_fraction, folds, m.split_seed, assign);
    ck_assert_int_eq(ss_h5data_write_split(w, np, assign, ncases, &err), SS_OK);
    ck_assert_msg(ss_h5data_commit(&w, NULL, &err) == SS_OK, "%s", err.msg);
    free(img);
    free(lab);
}

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/ss_trainer_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/d.h5", g_dir);
    make_file(path, 4, 0);
    snprintf(path, sizeof(path), "%s/f.h5", g_dir);
    make_file(path, 4, 2);
}

static void teardown(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/d.h5", g_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/f.h5", g_dir);
    unlink(path);
    rmdir(g_dir);
}

static ss_train_opts_t tiny_opts(const char *data, int64_t steps)
{
    ss_train_opts_t o;
    ss_train_opts_default(&o);
    o.data = data;
    ss_model_config_default(&o.model, SS_MODEL_UNET3D);
    o.model.img_size[0] = o.model.img_size[1] = o.model.img_size[2] = 16;
    o.model.depth = 3;
    o.model.base_filters = 8;
    o.step.lr.lr0 = 1e-2;
    o.steps = steps;
    o.batch = 2;
    o.seed = 5;
    o.nthreads = 2;
    o.sampler.fg_fraction = 0.5;
    o.sampler.prefetch = 1;
    return o;
}

typedef struct {
    double loss[256];
    int n;
} losses_t;

static ss_status_t record(void *ctx, const ss_train_event_t *e, ss_error_t *err)
{
    (void)err;
    losses_t *l = ctx;
    l->loss[l->n++] = e->r.loss;
    return SS_OK;
}

static void train(ss_trainer_t *t, losses_t *l)
{
    ss_train_hooks_t h = {l, record, NULL, NULL, 0, NULL};
    int stopped;
    ss_error_t err;
    ck_assert_msg(ss_trainer_run(t, &h, &stopped, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(stopped, 0);
}

START_TEST(tc_overfit)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/d.h5", g_dir);
    ss_train_opts_t o = tiny_opts(path, 80);
    ss_trainer_t *t = NULL;
    ss_error_t err;
    ck_assert_msg(ss_trainer_create(&t, &o, NULL, &err) == SS_OK, "%s", err.msg);
    losses_t l = {{0}, 0};
    train(t, &l);
    double first = (l.loss[0] + l.loss[1]) / 2, last = (l.loss[78] + l.loss[79]) / 2;
    // Dice + BCE starts near 1.6 (Dice ~0.9 + BCE ~0.7); the easy spheres are learnt.
    ck_assert_msg(last < 0.35 && last < 0.3 * first, "loss %.4f -> %.4f", first, last);
    ss_val_result_t v;
    ck_assert_msg(ss_trainer_validate(t, &v, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(v.ncases, 1);
    ck_assert_msg(v.dice[0] > 0.85, "validation WT Dice %.3f", v.dice[0]);
    ss_trainer_destroy(&t);
}
END_TEST

START_TEST(tc_resume_exact)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/d.h5", g_dir);
    ss_train_opts_t o = tiny_opts(path, 8);
    ss_trainer_t *a = NULL, *b = NULL;
    ss_error_t err;
    losses_t la = {{0}, 0}, lb = {{0}, 0};
    // Uninterrupted: 8 steps.
    ck_assert_int_eq(ss_trainer_create(&a, &o, NULL, &err), SS_OK);
    train(a, &la);
    ss_trainer_destroy(&a);
    // Interrupted after 5: a second trainer takes weights + optimizer state + step, as a
    // checkpoint restores them, and runs steps 5..7.
    o.steps = 5;
    ck_assert_int_eq(ss_trainer_create(&a, &o, NULL, &err), SS_OK);
    train(a, &lb);
    o.steps = 8;
    o.seed = 5;
    ck_assert_int_eq(ss_trainer_create(&b, &o, NULL, &err), SS_OK);
    size_t bytes = (size_t)ss_model_numel(ss_trainer_model(a)) * sizeof(float);
    memcpy(ss_model_weights(ss_trainer_model(b)), ss_model_weights(ss_trainer_model(a)), bytes);
    for (int i = 0; i < ss_stepper_nstate(ss_trainer_stepper(a)); i++) {
        memcpy(ss_stepper_state(ss_trainer_stepper(b), i), ss_stepper_state(ss_trainer_stepper(a), i),
               bytes);
    }
    ss_trainer_resume_at(b, 5);
    train(b, &lb);
    ck_assert_int_eq(lb.n, 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(la.loss[i] == lb.loss[i], "step %d: %.17g vs %.17g", i, la.loss[i], lb.loss[i]);
    }
    ss_trainer_destroy(&a);
    ss_trainer_destroy(&b);
}
END_TEST

// data.fold: fold k is held out (validated on), the others are trained on; a file without folds
// is refused naming the key.
START_TEST(tc_folds)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/f.h5", g_dir);
    ss_train_opts_t o = tiny_opts(path, 1);
    o.sampler.val_fold = 1;
    ss_trainer_t *t = NULL;
    ss_error_t err;
    ck_assert_msg(ss_trainer_create(&t, &o, NULL, &err) == SS_OK, "%s", err.msg);
    ss_val_result_t v;
    ck_assert_int_eq(ss_trainer_validate(t, &v, &err), SS_OK);
    ck_assert_int_eq(v.ncases, 2); // 4 cases in 2 folds
    ss_trainer_destroy(&t);
    snprintf(path, sizeof(path), "%s/d.h5", g_dir);
    o = tiny_opts(path, 1);
    o.sampler.val_fold = 0;
    ck_assert_int_ne(ss_trainer_create(&t, &o, NULL, &err), SS_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, "data.fold"));
}
END_TEST

static Suite *trainer_suite(void)
{
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("trainer");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, tc_overfit);
    tcase_add_test(tc, tc_resume_exact);
    tcase_add_test(tc, tc_folds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(trainer_suite());
}
