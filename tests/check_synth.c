// check_synth: the synthetic case generator on a small grid, in memory (and one folder write).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardseg/synth.h"

#include "testutil.h"

// Tests run on the analytic phantom (always there) and on Colin27 when mricron-data is installed.
static ss_synth_t *make(int use_template, uint64_t seed, int nthreads)
{
    ss_synth_config_t cfg;
    ss_synth_config_default(&cfg);
    cfg.size[0] = 64;
    cfg.size[1] = 64;
    cfg.size[2] = 48;
    cfg.seed = seed;
    cfg.nthreads = nthreads;
    cfg.template_dir = use_template ? SS_SYNTH_TEMPLATE_DIR : NULL;
    ss_synth_t *s = NULL;
    ss_error_t err;
    ck_assert_msg(ss_synth_create(&cfg, NULL, &s, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(ss_synth_uses_template(s), use_template);
    return s;
}

static int have_template(void)
{
    if (!ss_synth_template_available(SS_SYNTH_TEMPLATE_DIR)) {
        fprintf(stderr, "note: %s absent (mricron-data): template half skipped\n",
                SS_SYNTH_TEMPLATE_DIR);
        return 0;
    }
    return 1;
}

START_TEST(test_config_validate)
{
    ss_synth_config_t cfg;
    ss_synth_config_default(&cfg);
    ck_assert_int_eq(cfg.size[0], 240);
    ck_assert_int_eq(cfg.size[2], 155);
    ss_error_t err;
    ck_assert_int_eq(ss_synth_config_validate(&cfg, &err), SS_OK);
    cfg.size[1] = 0;
    ck_assert_int_eq(ss_synth_config_validate(&cfg, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--size"));
    ss_synth_t *s = (ss_synth_t *)&cfg;
    ck_assert_int_eq(ss_synth_create(&cfg, NULL, &s, &err), SS_EINVAL);
    ck_assert_ptr_null(s);
    ss_synth_config_default(&cfg);
    cfg.nthreads = 0;
    ck_assert_int_eq(ss_synth_config_validate(&cfg, &err), SS_EINVAL);
}
END_TEST

START_TEST(test_template_available)
{
    ck_assert_int_eq(ss_synth_template_available(NULL), 0);
    ck_assert_int_eq(ss_synth_template_available("/nonexistent/dir"), 0);
    char name[64];
    ss_synth_case_name(7, name, sizeof(name));
    ck_assert_str_eq(name, "SynBraTS_00007");
}
END_TEST

static void generate(const ss_synth_t *s, int64_t idx, ss_synth_case_t *c)
{
    ss_error_t err;
    ck_assert_int_eq(ss_synth_case_alloc(s, c, NULL, &err), SS_OK);
    ck_assert_msg(ss_synth_generate(s, idx, c, &err) == SS_OK, "%s", err.msg);
}

static size_t nvox(const ss_synth_case_t *c)
{
    return (size_t)(c->hdr.dim[0] * c->hdr.dim[1] * c->hdr.dim[2]);
}

static void check_determinism(int use_template)
{
    // s2 uses one thread: the result must not depend on the thread count.
    ss_synth_t *s = make(use_template, 11, 2), *s2 = make(use_template, 11, 1);
    ss_synth_t *s3 = make(use_template, 12, 2);
    ss_synth_case_t a, b, c, d;
    generate(s, 3, &a);
    generate(s2, 3, &b); // a second generator, same seed, 1 thread: bit-identical
    generate(s, 4, &c);
    generate(s3, 3, &d);
    size_t bytes = nvox(&a) * (SS_SYNTH_NCHAN + 1) * sizeof(float);
    ck_assert_int_eq(memcmp(a.image, b.image, bytes), 0);
    ck_assert_int_eq(memcmp(a.brain, b.brain, nvox(&a)), 0);
    ck_assert_int_ne(memcmp(a.image, c.image, bytes), 0);
    ck_assert_int_ne(memcmp(a.label, c.label, nvox(&a) * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(a.image, d.image, bytes), 0);
    ss_synth_case_free(&a, NULL);
    ss_synth_case_free(&b, NULL);
    ss_synth_case_free(&c, NULL);
    ss_synth_case_free(&d, NULL);
    ss_synth_destroy(&s);
    ss_synth_destroy(&s2);
    ss_synth_destroy(&s3);
    ck_assert_ptr_null(s);
}

START_TEST(test_determinism)
{
    check_determinism(0);
    if (have_template()) {
        check_determinism(1);
    }
}
END_TEST

// Mean of channel m over voxels with label l (l < 0: normal brain with T1 in [lo, hi) quantile
// band of normal brain), and count.
typedef struct {
    double sum, n;
} acc_t;

static double mean(acc_t a)
{
    return a.n > 0 ? a.sum / a.n : NAN;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// T1 value at quantile q of the normal (label 0) brain voxels.
static float t1_quantile(const ss_synth_case_t *c, double q)
{
    size_t n = nvox(c), m = 0;
    float *v = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++) {
        if (c->brain[i] && c->label[i] == 0) {
            v[m++] = c->image[n + i];
        }
    }
    qsort(v, m, sizeof(float), cmp_float);
    float r = v[(size_t)(q * (double)(m - 1))];
    free(v);
    return r;
}

static void check_case(const ss_synth_case_t *c)
{
    size_t n = nvox(c);
    int64_t count[5] = {0};
    acc_t z[SS_SYNTH_NCHAN] = {{0, 0}}, zz[SS_SYNTH_NCHAN] = {{0, 0}};
    // Check's ck_assert logs every call, so per-voxel conditions are counted, then asserted once.
    int64_t bad_label = 0, outside = 0, bad_value = 0;
    for (size_t i = 0; i < n; i++) {
        int l = (int)c->label[i];
        if (!(l == 0 || l == 1 || l == 2 || l == 4)) {
            bad_label++;
            continue;
        }
        count[l]++;
        outside += l != 0 && !c->brain[i]; // tumour lies inside the brain
        for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
            float v = c->image[m * n + i];
            bad_value +=
                !(v == floorf(v) && v >= 0 && v <= 32767 && (c->brain[i] ? v > 0 : v == 0));
            if (c->brain[i]) {
                z[m].sum += v, z[m].n += 1, zz[m].sum += (double)v * v;
            }
        }
    }
    ck_assert_int_eq(bad_label, 0);
    ck_assert_int_eq(outside, 0);
    ck_assert_int_eq(bad_value, 0);
    ck_assert_msg(count[1] > 0 && count[2] > 0 && count[4] > 0, "labels 1/2/4: %lld %lld %lld",
                  (long long)count[1], (long long)count[2], (long long)count[4]);
    // Normal tissue by its T1: CSF = darkest 10 %, WM = brightest 30 % of label-0 brain voxels.
    float csf_hi = t1_quantile(c, 0.10), wm_lo = t1_quantile(c, 0.70);
    acc_t ed[4] = {{0, 0}}, et[4] = {{0, 0}}, ncr[4] = {{0, 0}}, wm[4] = {{0, 0}},
          csf[4] = {{0, 0}}, tum[4] = {{0, 0}};
    for (size_t i = 0; i < n; i++) {
        if (!c->brain[i]) {
            continue;
        }
        int l = (int)c->label[i];
        float t1 = c->image[n + i];
        for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
            double v = c->image[m * n + i];
            acc_t *a = l == 1 ? &ncr[m] : l == 2 ? &ed[m] : l == 4 ? &et[m] : NULL;
            if (a == NULL && t1 >= wm_lo) {
                a = &wm[m];
            } else if (a == NULL && t1 <= csf_hi) {
                a = &csf[m];
            }
            if (a != NULL) {
                a->sum += v, a->n += 1;
            }
            if (l == 1 || l == 4) {
                tum[m].sum += v, tum[m].n += 1;
            }
        }
    }
    ck_assert_double_gt(mean(ed[0]), mean(wm[0]));  // FLAIR: edema bright
    ck_assert_double_lt(mean(tum[1]), mean(wm[1])); // T1: tumour core hypo-intense
    ck_assert_double_gt(mean(et[2]), mean(ncr[2])); // T1ce: enhancing rim over necrosis
    ck_assert_double_gt(mean(csf[3]), mean(wm[3])); // T2: CSF bright
    ck_assert_double_lt(mean(csf[0]), mean(wm[0])); // FLAIR: CSF dark
    // After per-channel z-scoring on the brain, ET is far brighter on T1ce than on T1.
    double zt[2];
    for (int k = 0; k < 2; k++) {
        int m = k + 1;
        double mu = mean(z[m]), sd = sqrt(zz[m].sum / z[m].n - mu * mu);
        zt[k] = (mean(et[m]) - mu) / sd;
    }
    ck_assert_msg(zt[1] > zt[0] + 1.0, "z(ET): T1 %.2f T1ce %.2f", zt[0], zt[1]);
}

// Noise: white matter is not piecewise constant (many distinct values, non-zero spread between
// neighbours).
static void check_noise(const ss_synth_case_t *c)
{
    size_t n = nvox(c);
    int64_t nk = c->hdr.dim[2], diff = 0, pairs = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if ((int64_t)(i % (size_t)nk) != nk - 1 && c->brain[i] && c->brain[i + 1] &&
            c->label[i] == 0 && c->label[i + 1] == 0) {
            pairs++;
            diff += c->image[i] != c->image[i + 1];
        }
    }
    ck_assert_int_gt(pairs, 1000);
    ck_assert_msg(diff > pairs * 9 / 10, "neighbours differ in %lld of %lld pairs", (long long)diff,
                  (long long)pairs);
}

static void check_generate(int use_template)
{
    ss_synth_t *s = make(use_template, 5, 2);
    for (int64_t idx = 0; idx < 3; idx++) {
        ss_synth_case_t c;
        generate(s, idx, &c);
        check_case(&c);
        check_noise(&c);
        ck_assert_double_gt(c.core_radius_mm, 5);
        ss_synth_case_free(&c, NULL);
        ck_assert_ptr_null(c.image);
    }
    ss_synth_destroy(&s);
}

START_TEST(test_generate_phantom)
{
    check_generate(0);
}
END_TEST

START_TEST(test_generate_template)
{
    if (have_template()) {
        check_generate(1);
    }
}
END_TEST

START_TEST(test_generate_rejects)
{
    ss_synth_t *s = make(0, 1, 1);
    ss_synth_case_t c;
    ss_error_t err;
    generate(s, 0, &c);
    ck_assert_int_eq(ss_synth_generate(s, -1, &c, &err), SS_EINVAL);
    c.hdr.dim[0] = 32; // a buffer of another grid
    ck_assert_int_eq(ss_synth_generate(s, 0, &c, &err), SS_EINVAL);
    c.hdr.dim[0] = 64;
    ss_synth_case_free(&c, NULL);
    ss_synth_case_free(&c, NULL); // twice is harmless
    ss_synth_destroy(&s);
    ss_synth_destroy(&s); // NULL is accepted
}
END_TEST

static int exists(const char *dir, const char *name, const char *suffix)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s/%s_%s.nii.gz", dir, name, name, suffix);
    return access(p, R_OK) == 0;
}

static int count_entries(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

START_TEST(test_write)
{
    char dir[64];
    ss_test_tmpdir_make(dir, sizeof(dir), "synth");
    ss_synth_t *s = make(0, 2, 2);
    ss_synth_case_t c;
    ss_error_t err;
    generate(s, 0, &c);
    ck_assert_msg(ss_synth_write(&c, dir, "SynBraTS_00000", &err) == SS_OK, "%s", err.msg);
    ck_assert_msg(ss_synth_write(&c, dir, "SynBraTS_00000", &err) == SS_OK, "%s", err.msg);
    const char *sfx[] = {"flair", "t1", "t1ce", "t2", "seg"};
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(exists(dir, "SynBraTS_00000", sfx[i]), "missing %s", sfx[i]);
    }
    ck_assert_int_eq(count_entries(dir), 1); // no temporary or replaced folder left
    char p[1024];
    snprintf(p, sizeof(p), "%s/SynBraTS_00000/SynBraTS_00000_seg.nii.gz", dir);
    ss_nifti_header_t h;
    float *v = NULL;
    ck_assert_msg(ss_nifti_read(p, &h, &v, NULL, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(h.datatype, 2);
    ck_assert_int_eq(h.dim[0], 64);
    ck_assert_int_eq(h.dim[2], 48);
    ck_assert_double_eq_tol(h.affine[0][0], -240.0 / 64, 1e-5);
    ck_assert_double_eq_tol(h.affine[1][3], 240.0 / 64 * 63, 1e-4);
    ck_assert_double_eq_tol(h.affine[2][2], 155.0 / 48, 1e-5);
    ck_assert_int_eq(memcmp(v, c.label, nvox(&c) * sizeof(float)), 0);
    ss_aligned_free(v, ss_nifti_nbytes(&h), NULL);
    snprintf(p, sizeof(p), "%s/SynBraTS_00000/SynBraTS_00000_t1ce.nii.gz", dir);
    ck_assert_msg(ss_nifti_read(p, &h, &v, NULL, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(h.datatype, 4);
    ck_assert_int_eq(memcmp(v, c.image + 2 * nvox(&c), nvox(&c) * sizeof(float)), 0);
    ss_aligned_free(v, ss_nifti_nbytes(&h), NULL);
    // A folder that does not exist: an error naming it, nothing created.
    snprintf(p, sizeof(p), "%s/missing", dir);
    ck_assert_int_eq(ss_synth_write(&c, p, "x", &err), SS_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing"));
    ck_assert_int_eq(count_entries(dir), 1);
    ss_synth_case_free(&c, NULL);
    ss_synth_destroy(&s);
    ss_test_tmpdir_remove(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("tc_ss_synth_config_validate");
    tcase_add_test(tc, test_config_validate);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_synth_template_available");
    tcase_add_test(tc, test_template_available);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_synth_generate");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_generate_phantom);
    tcase_add_test(tc, test_generate_template);
    tcase_add_test(tc, test_generate_rejects);
    suite_add_tcase(s, tc);
    tc = tcase_create("tc_ss_synth_write");
    tcase_add_test(tc, test_write);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
