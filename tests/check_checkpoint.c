// check_checkpoint: checkpoint round trip (weights, optimizer state and /state bit for bit),
// keeping the newest K, skipping a truncated or corrupted newest checkpoint, refusing
// incomplete/corrupt/mismatched ones with a message naming the cause, and a failed write (file
// size limit standing in for a full disk) that leaves the previous checkpoint intact and no
// temp file behind.
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "shardseg/checkpoint.h"
#include "shardseg/weights.h"

#include "testutil.h"

static char g_tmp[256];

static void setup(void)
{
    ss_test_tmpdir_make(g_tmp, sizeof(g_tmp), "ckpt");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void teardown(void)
{
    ss_test_tmpdir_remove(g_tmp);
}

typedef struct {
    ss_model_t *m;
    float *optim[2];
    ss_ckpt_state_t st;
} run_t;

static void run_init(run_t *r, int64_t base, uint64_t seed)
{
    ss_model_config_t c;
    ss_model_config_default(&c, SS_MODEL_UNET3D);
    c.in_channels = 2;
    c.out_channels = 3;
    c.img_size[0] = c.img_size[1] = c.img_size[2] = 8;
    c.depth = 2;
    c.base_filters = base;
    c.convs_per_level = 1;
    c.norm = SS_MODEL_NORM_BATCH;
    ss_model_plan_t p = {1, 0, 8, 0, 1, NULL};
    ss_error_t err;
    ck_assert_msg(ss_model_create(&r->m, &c, &p, NULL, &err) == SS_OK, "%s", err.msg);
    int64_t n = ss_model_numel(r->m);
    for (int i = 0; i < 2; i++) {
        r->optim[i] = calloc((size_t)n, sizeof(float));
        if (seed != 0) {
            ss_test_fill(r->optim[i], n, seed + (uint64_t)i, -1.0f, 1.0f);
        }
    }
    if (seed != 0) {
        ck_assert_int_eq(ss_model_init_weights(r->m, seed, &err), SS_OK);
    }
    ss_ckpt_state_init(&r->st);
    r->st.epoch = 3;
    r->st.seed = 0xfeedfacecafebeefull;
    r->st.nrng = 3;
    r->st.rng[0] = 1;
    r->st.rng[1] = UINT64_MAX;
    r->st.rng[2] = 42;
    r->st.best_metric = 0.8125;
    r->st.best_step = 7;
    r->st.opt.lr.kind = SS_LR_COSINE;
    r->st.opt.lr.t_max = 123;
    r->st.opt.adam.beta2 = 0.99;
    r->st.config = (char *)"[train]\nsteps = 10\n";
}

static void run_fini(run_t *r)
{
    ss_model_destroy(&r->m);
    free(r->optim[0]);
    free(r->optim[1]);
}

static void save(run_t *r, int64_t step, int keep)
{
    ss_error_t err;
    char path[512];
    r->st.step = step;
    ck_assert_msg(ss_ckpt_save(g_tmp, r->m, (const float *const *)r->optim, 2, &r->st, keep, path,
                               sizeof(path), &err) == SS_OK,
                  "%s", err.msg);
    char want[512];
    snprintf(want, sizeof(want), "%s/ckpt-%lld.h5", g_tmp, (long long)step);
    ck_assert_str_eq(path, want);
}

static void ckpt_path(char *buf, size_t len, int64_t step)
{
    snprintf(buf, len, "%s/ckpt-%lld.h5", g_tmp, (long long)step);
}

// Names in the directory, sorted, joined by ' '.
static void listing(char *buf, size_t len)
{
    struct dirent **v;
    int n = scandir(g_tmp, &v, NULL, alphasort);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i]->d_name, ".") && strcmp(v[i]->d_name, "..")) {
            size_t o = strlen(buf);
            snprintf(buf + o, len - o, "%s%s", o ? " " : "", v[i]->d_name);
        }
        free(v[i]);
    }
    free(v);
}

START_TEST(test_round_trip)
{
    run_t a, b;
    run_init(&a, 2, 11);
    run_init(&b, 2, 0);
    save(&a, 10, 2);
    char path[512];
    ss_error_t err;
    ck_assert_msg(ss_ckpt_find_latest(g_tmp, path, sizeof(path), NULL, 0, &err) == SS_OK, "%s",
                  err.msg);
    ckpt_path(path, sizeof(path), 10);
    ss_ckpt_state_t st;
    ss_ckpt_state_init(&st);
    ck_assert_msg(ss_ckpt_load(path, b.m, SS_OPTIM_ADAMW, b.optim, 2, &st, &err) == SS_OK, "%s",
                  err.msg);
    size_t bytes = (size_t)ss_model_numel(a.m) * sizeof(float);
    ck_assert_int_eq(memcmp(ss_model_weights(a.m), ss_model_weights(b.m), bytes), 0);
    ck_assert_int_eq(memcmp(a.optim[0], b.optim[0], bytes), 0);
    ck_assert_int_eq(memcmp(a.optim[1], b.optim[1], bytes), 0);
    ck_assert_int_eq(st.step, 10);
    ck_assert_int_eq(st.epoch, 3);
    ck_assert(st.seed == a.st.seed);
    ck_assert_int_eq(st.nrng, 3);
    ck_assert_int_eq(memcmp(st.rng, a.st.rng, 3 * sizeof(uint64_t)), 0);
    ck_assert(st.best_metric == 0.8125 && st.best_step == 7);
    ck_assert_int_eq(memcmp(&st.opt, &a.st.opt, sizeof(st.opt)), 0);
    ck_assert_str_eq(st.config, a.st.config);
    ss_ckpt_state_fini(&st);
    // The checkpoint is also a weights file.
    ss_model_config_t c;
    ck_assert_msg(ss_weights_read_config(path, &c, &err) == SS_OK, "%s", err.msg);
    run_fini(&a);
    run_fini(&b);
}
END_TEST

START_TEST(test_keep)
{
    run_t a;
    run_init(&a, 2, 11);
    char names[512], path[512];
    ss_error_t err;
    ck_assert_int_eq(ss_ckpt_find_latest(g_tmp, path, sizeof(path), NULL, 0, &err), SS_OK);
    ck_assert_str_eq(path, ""); // nothing to resume
    for (int s = 1; s <= 3; s++) {
        save(&a, s * 5, 2);
    }
    FILE *stale = fopen(strcat(strcpy(path, g_tmp), "/.ckpt-99.h5.tmp.1"), "w");
    fclose(stale);
    save(&a, 20, 2);
    listing(names, sizeof(names));
    ck_assert_str_eq(names, "ckpt-15.h5 ckpt-20.h5");
    ck_assert_int_eq(ss_ckpt_find_latest(g_tmp, path, sizeof(path), NULL, 0, &err), SS_OK);
    char want[512];
    ckpt_path(want, sizeof(want), 20);
    ck_assert_str_eq(path, want);
    run_fini(&a);
}
END_TEST

static void truncate_half(const char *path)
{
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size / 2), 0);
}

// Flips one byte in the middle of the first chunk of /optim/exp_avg.
static void corrupt(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "optim/exp_avg", H5P_DEFAULT);
    haddr_t addr = 0;
    hsize_t size = 0;
    hid_t sp = H5Dget_space(ds);
    ck_assert_int_ge(H5Dget_chunk_info(ds, sp, 0, NULL, NULL, &addr, &size), 0);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    FILE *fp = fopen(path, "r+b");
    ck_assert_int_eq(fseek(fp, (long)(addr + size / 2), SEEK_SET), 0);
    int c = fgetc(fp);
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    fputc(c ^ 0x5a, fp);
    fclose(fp);
}

static void check_fallback(void (*damage)(const char *), const char *why)
{
    run_t a, b;
    run_init(&a, 2, 11);
    run_init(&b, 2, 0);
    save(&a, 1, 2);
    save(&a, 2, 2);
    char newest[512], older[512], path[512], warn[1024];
    ckpt_path(newest, sizeof(newest), 2);
    ckpt_path(older, sizeof(older), 1);
    damage(newest);
    ss_error_t err;
    ck_assert_int_eq(ss_ckpt_verify(newest, &err), SS_EFORMAT);
    ck_assert_int_ne(ss_ckpt_load(newest, b.m, SS_OPTIM_ADAMW, b.optim, 2, &b.st, &err), SS_OK);
    ck_assert_msg(strstr(err.msg, why) != NULL, "%s", err.msg);
    ck_assert_int_eq(ss_ckpt_find_latest(g_tmp, path, sizeof(path), warn, sizeof(warn), &err),
                     SS_OK);
    ck_assert_str_eq(path, older);
    ck_assert_msg(strstr(warn, "ckpt-2.h5") && strstr(warn, "skipped"), "%s", warn);
    ck_assert_int_eq(ss_ckpt_load(path, b.m, SS_OPTIM_ADAMW, b.optim, 2, &b.st, &err), SS_OK);
    ck_assert_str_eq(b.st.config, a.st.config);
    ss_ckpt_state_fini(&b.st);
    // Both damaged: an error, not a silent fresh start.
    damage(older);
    ck_assert_int_eq(ss_ckpt_find_latest(g_tmp, path, sizeof(path), warn, sizeof(warn), &err),
                     SS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no usable checkpoint"));
    run_fini(&a);
    run_fini(&b);
}

START_TEST(test_truncated)
{
    check_fallback(truncate_half, "cannot open (truncated");
}
END_TEST

START_TEST(test_corrupt)
{
    check_fallback(corrupt, "corrupt");
}
END_TEST

static void drop_complete(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(H5Adelete_by_name(f, "state", "complete", H5P_DEFAULT), 0);
    H5Fclose(f);
}

START_TEST(test_incomplete)
{
    check_fallback(drop_complete, "incomplete checkpoint");
}
END_TEST

START_TEST(test_mismatch)
{
    run_t a, b;
    run_init(&a, 2, 11);
    run_init(&b, 4, 0);
    save(&a, 5, 2);
    char path[512];
    ss_error_t err;
    ckpt_path(path, sizeof(path), 5);
    ck_assert_int_eq(ss_ckpt_load(path, b.m, SS_OPTIM_ADAMW, b.optim, 2, &b.st, &err), SS_EINVAL);
    ck_assert_msg(strstr(err.msg, "base_filters is 2 in the file but 4 in this run") != NULL, "%s",
                  err.msg);
    run_fini(&b);
    run_init(&b, 2, 0);
    ck_assert_int_eq(ss_ckpt_load(path, b.m, SS_OPTIM_SGD, b.optim, 1, &b.st, &err), SS_EINVAL);
    ck_assert_msg(strstr(err.msg, "optim is adamw in the file but sgd in this run") != NULL, "%s",
                  err.msg);
    run_fini(&a);
    run_fini(&b);
}
END_TEST

// SGD with momentum keeps one vector, /optim/momentum_buffer; a run without momentum is refused.
START_TEST(test_sgd)
{
    run_t a, b;
    run_init(&a, 2, 11);
    run_init(&b, 2, 0);
    a.st.opt.optim = SS_OPTIM_SGD;
    a.st.opt.sgd.momentum = 0.9;
    ss_error_t err;
    ck_assert_int_eq(
        ss_ckpt_save(g_tmp, a.m, (const float *const *)a.optim, 2, &a.st, 2, NULL, 0, &err),
        SS_EINVAL);
    ck_assert_msg(ss_ckpt_save(g_tmp, a.m, (const float *const *)a.optim, 1, &a.st, 2, NULL, 0,
                               &err) == SS_OK,
                  "%s", err.msg);
    char path[512];
    ckpt_path(path, sizeof(path), 0);
    ss_ckpt_state_t st;
    ss_ckpt_state_init(&st);
    ck_assert_msg(ss_ckpt_load(path, b.m, SS_OPTIM_SGD, b.optim, 1, &st, &err) == SS_OK, "%s",
                  err.msg);
    ck_assert_int_eq(memcmp(a.optim[0], b.optim[0], (size_t)ss_model_numel(a.m) * sizeof(float)),
                     0);
    ck_assert(st.opt.sgd.momentum == 0.9 && st.opt.optim == SS_OPTIM_SGD);
    ss_ckpt_state_fini(&st);
    ck_assert_int_eq(ss_ckpt_load(path, b.m, SS_OPTIM_SGD, b.optim, 0, &st, &err), SS_EINVAL);
    ck_assert_msg(strstr(err.msg, "1 optimizer state vectors, this run has 0") != NULL, "%s",
                  err.msg);
    ss_ckpt_state_fini(&st);
    run_fini(&a);
    run_fini(&b);
}
END_TEST

// A full disk, simulated by RLIMIT_FSIZE (writes past it fail with EFBIG; SIGXFSZ ignored):
// no root or tmpfs needed, and deterministic.
START_TEST(test_disk_full)
{
    run_t a;
    run_init(&a, 2, 11);
    save(&a, 1, 1);
    char old[512], names[512];
    ckpt_path(old, sizeof(old), 1);
    struct stat sb;
    ck_assert_int_eq(stat(old, &sb), 0);
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = (rlim_t)sb.st_size / 2;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ss_error_t err;
    a.st.step = 2;
    ss_status_t rc =
        ss_ckpt_save(g_tmp, a.m, (const float *const *)a.optim, 2, &a.st, 1, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, prev);
    ck_assert_int_ne(rc, SS_OK);
    ck_assert_msg(strstr(err.msg, "ckpt-2.h5") != NULL, "%s", err.msg);
    listing(names, sizeof(names));
    ck_assert_str_eq(names, "ckpt-1.h5");
    ck_assert_msg(ss_ckpt_verify(old, &err) == SS_OK, "%s", err.msg);
    run_fini(&a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *t = tcase_create("tc_ss_ckpt_save");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_round_trip);
    tcase_add_test(t, test_keep);
    tcase_add_test(t, test_sgd);
    tcase_add_test(t, test_disk_full);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_ckpt_find_latest");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_truncated);
    tcase_add_test(t, test_corrupt);
    tcase_add_test(t, test_incomplete);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_ckpt_load");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_mismatch);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ss_test_run(suite());
}
