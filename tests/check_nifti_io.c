// check_nifti_io: NIfTI read/write on the real BraTS 2018 cases ($SS_REAL_DATA, skipped when
// absent), round trips of every datatype, layout, version and compression, and every bad input.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardseg/nifti_io.h"

#include "testutil.h"

static char g_tmp[256];

static void setup(void)
{
    ss_test_tmpdir_make(g_tmp, sizeof(g_tmp), "nifti");
}

static void teardown(void)
{
    ss_test_tmpdir_remove(g_tmp);
}

// Path of <case>/<case>_<suffix>.nii.gz under $SS_REAL_DATA, or 0 when the data are absent.
static int real_path(const char *cs, const char *suffix, char *buf, size_t len)
{
    const char *root = getenv("SS_REAL_DATA");
    if (root == NULL) {
        return 0;
    }
    snprintf(buf, len, "%s/%s/%s_%s.nii.gz", root, cs, cs, suffix);
    return access(buf, R_OK) == 0;
}

static ss_nifti_header_t small_header(int64_t nx, int64_t ny, int64_t nz, int64_t nt)
{
    ss_nifti_header_t h;
    memset(&h, 0, sizeof(h));
    h.dim[0] = nx, h.dim[1] = ny, h.dim[2] = nz, h.dim[3] = nt;
    h.spacing[0] = 1.0, h.spacing[1] = 2.0, h.spacing[2] = 3.0;
    // A rotation-free, flipped LPS-like affine as in the BraTS files, with non-unit spacing.
    double a[4][4] = {{-1, 0, 0, 10}, {0, -2, 0, 239}, {0, 0, 3, -5}, {0, 0, 0, 1}};
    memcpy(h.affine, a, sizeof(a));
    h.qform_code = 1, h.sform_code = 1;
    return h;
}

// v(t, i, j, k) = t*1e6 + i*1e4 + j*1e2 + k (exact in float for these sizes).
static float *pattern(const ss_nifti_header_t *h)
{
    int64_t n = h->dim[0] * h->dim[1] * h->dim[2] * h->dim[3];
    float *v = malloc((size_t)n * sizeof(float));
    int64_t q = 0;
    for (int64_t t = 0; t < h->dim[3]; t++)
        for (int64_t i = 0; i < h->dim[0]; i++)
            for (int64_t j = 0; j < h->dim[1]; j++)
                for (int64_t k = 0; k < h->dim[2]; k++)
                    v[q++] = (float)(t * 1000000 + i * 10000 + j * 100 + k);
    return v;
}

// --- real cases -------------------------------------------------------------------------------

static const struct {
    const char *name;
    int seg_datatype;
    int64_t counts[5]; // labels 0..4
    float flair_max;
} g_real[] = {
    {"Brats18_2013_3_1", 4, {8827114, 10430, 67269, 0, 23187}, 422},
    {"Brats18_TCIA01_201_1", 2, {8773492, 25394, 84003, 0, 45111}, 671},
    {"Brats18_TCIA10_628_1", 2, {8770725, 103582, 51717, 0, 1976}, 1440},
};

START_TEST(test_read_real_cases)
{
    char path[1024];
    if (!real_path(g_real[_i].name, "seg", path, sizeof(path))) {
        fprintf(stderr, "note: SS_REAL_DATA absent; real-case test skipped\n");
        return;
    }
    ss_nifti_header_t h;
    float *seg = NULL;
    ss_error_t err;
    ss_budget_t b;
    ss_budget_init(&b, 0);
    ck_assert_msg(ss_nifti_read(path, &h, &seg, &b, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(h.dim[0], 240);
    ck_assert_int_eq(h.dim[1], 240);
    ck_assert_int_eq(h.dim[2], 155);
    ck_assert_int_eq(h.dim[3], 1);
    ck_assert_int_eq(h.datatype, g_real[_i].seg_datatype);
    ck_assert_int_eq(h.version, 1);
    for (int d = 0; d < 3; d++) {
        ck_assert(fabs(h.spacing[d] - 1.0) < 1e-6);
    }
    // SOURCES.md: x = -i, y = 239 - j, z = k.
    ck_assert(fabs(h.affine[0][0] + 1) < 1e-6 && fabs(h.affine[1][1] + 1) < 1e-6);
    ck_assert(fabs(h.affine[2][2] - 1) < 1e-6 && fabs(h.affine[1][3] - 239) < 1e-4);
    ck_assert(fabs(h.affine[0][3]) < 1e-4 && fabs(h.affine[2][3]) < 1e-4);
    // No ck_assert inside voxel loops: each one is a message to Check's parent process.
    int64_t counts[5] = {0, 0, 0, 0, 0}, n = 240 * 240 * 155, odd = 0;
    for (int64_t q = 0; q < n; q++) {
        int v = (int)seg[q];
        if (v < 0 || v > 4 || (float)v != seg[q]) {
            odd++;
            continue;
        }
        counts[v]++;
    }
    ck_assert_int_eq(odd, 0);
    for (int l = 0; l < 5; l++) {
        ck_assert_int_eq(counts[l], g_real[_i].counts[l]);
    }
    ss_aligned_free(seg, ss_nifti_nbytes(&h), &b);
    ck_assert_uint_eq(ss_budget_in_use(&b), 0);

    // FLAIR: int16, scl_slope NaN (no scaling), range 0..max; the TCIA10 case has an AFNI
    // extension (vox_offset > 352): a misplaced offset would give garbage and a wrong maximum.
    ck_assert(real_path(g_real[_i].name, "flair", path, sizeof(path)));
    float *fl = NULL;
    ck_assert_msg(ss_nifti_read(path, &h, &fl, NULL, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(h.datatype, 4);
    float lo = fl[0], hi = fl[0];
    for (int64_t q = 0; q < n; q++) {
        lo = fl[q] < lo ? fl[q] : lo;
        hi = fl[q] > hi ? fl[q] : hi;
    }
    ck_assert_float_eq(lo, 0.0f);
    ck_assert_float_eq(hi, g_real[_i].flair_max);
    ss_aligned_free(fl, ss_nifti_nbytes(&h), NULL);
}
END_TEST

START_TEST(test_read_header_real)
{
    char path[1024];
    if (!real_path("Brats18_2013_3_1", "t1ce", path, sizeof(path))) {
        return;
    }
    ss_nifti_header_t h;
    ck_assert_int_eq(ss_nifti_read_header(path, &h, NULL), SS_OK);
    ck_assert_int_eq(h.qform_code, 2);
    ck_assert_int_eq(h.sform_code, 1);
    ck_assert_uint_eq(ss_nifti_nbytes(&h), 240u * 240 * 155 * 4);
}
END_TEST

// --- round trips ----------------------------------------------------------------------------

static void round_trip(const char *name, int datatype, int version, int64_t nt)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_tmp, name);
    ss_nifti_header_t h = small_header(7, 5, 4, nt), r;
    float *v = pattern(&h);
    int64_t n = 7 * 5 * 4 * nt;
    int is_u8 = datatype == 2 || datatype == 256;
    for (int64_t q = 0; q < n; q++) {
        // Keep values inside small integer types while staying position-dependent.
        if (is_u8) {
            v[q] = (float)((int64_t)v[q] % 101) + (datatype == 256 ? -50.0f : 0.0f);
        } else if (datatype == 4 || datatype == 512) {
            v[q] = (float)((int64_t)v[q] % 30011);
        }
    }
    ss_error_t err;
    ck_assert_msg(ss_nifti_write_version(path, &h, v, datatype, version, &err) == SS_OK, "%s",
                  err.msg);
    float *back = NULL;
    ck_assert_msg(ss_nifti_read(path, &r, &back, NULL, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(r.datatype, datatype);
    ck_assert_int_eq(r.version, version);
    for (int d = 0; d < 4; d++) {
        ck_assert_int_eq(r.dim[d], h.dim[d]);
    }
    for (int d = 0; d < 3; d++) {
        ck_assert(fabs(r.spacing[d] - h.spacing[d]) < 1e-6);
    }
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < 4; c++)
            ck_assert_msg(fabs(r.affine[a][c] - h.affine[a][c]) < 1e-5, "affine[%d][%d]", a, c);
    ck_assert_int_eq(memcmp(back, v, (size_t)n * sizeof(float)), 0);
    ss_aligned_free(back, ss_nifti_nbytes(&r), NULL);
    free(v);
}

static const int g_dtypes[] = {2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64};

START_TEST(test_write_read_datatypes)
{
    char name[64];
    snprintf(name, sizeof(name), "dt%d.nii", g_dtypes[_i]);
    round_trip(name, g_dtypes[_i], 1, 1);
    snprintf(name, sizeof(name), "dt%d.nii.gz", g_dtypes[_i]);
    round_trip(name, g_dtypes[_i], 1, 1);
}
END_TEST

START_TEST(test_write_read_4d_and_nifti2)
{
    round_trip("four.nii.gz", 16, 1, 4);
    round_trip("v2.nii", 4, 2, 1);
    round_trip("v2_4d.nii.gz", 16, 2, 3);
    // No leftover temporary files next to the outputs.
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q tmp", g_tmp);
    ck_assert_int_ne(system(cmd), 0);
}
END_TEST

// The file stores i fastest: check the bytes on disk against the NIfTI definition directly.
START_TEST(test_write_file_order)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/order.nii", g_tmp);
    ss_nifti_header_t h = small_header(3, 4, 5, 1);
    float *v = pattern(&h);
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, NULL), SS_OK);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    float disk[60];
    ck_assert_int_eq(fseek(f, 352, SEEK_SET), 0);
    ck_assert_uint_eq(fread(disk, sizeof(float), 60, f), 60);
    fclose(f);
    for (int k = 0; k < 5; k++)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 3; i++)
                ck_assert_float_eq(disk[i + 3 * (j + 4 * k)], (float)(i * 10000 + j * 100 + k));
    free(v);
}
END_TEST

// Patches `n` bytes at `off` of an uncompressed file.
static void patch(const char *path, long off, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

START_TEST(test_read_scaling)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/scaled.nii", g_tmp);
    ss_nifti_header_t h = small_header(3, 4, 5, 1), r;
    float *v = pattern(&h);
    for (int q = 0; q < 60; q++) {
        v[q] = (float)(q % 50);
    }
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 4, NULL), SS_OK);
    float *back = NULL;
    const float scl[2] = {2.0f, 3.0f}; // scl_slope, scl_inter at byte 112
    patch(path, 112, scl, sizeof(scl));
    ck_assert_int_eq(ss_nifti_read(path, &r, &back, NULL, NULL), SS_OK);
    for (int q = 0; q < 60; q++) {
        ck_assert_float_eq(back[q], 2.0f * v[q] + 3.0f);
    }
    ss_aligned_free(back, ss_nifti_nbytes(&r), NULL);
    // Slope NaN or 0 means no scaling (the real BraTS files carry NaN).
    const float nan_slope[2] = {NAN, 3.0f}, zero_slope[2] = {0.0f, 3.0f};
    patch(path, 112, nan_slope, sizeof(nan_slope));
    ck_assert_int_eq(ss_nifti_read(path, &r, &back, NULL, NULL), SS_OK);
    ck_assert_int_eq(memcmp(back, v, sizeof(float) * 60), 0);
    ss_aligned_free(back, ss_nifti_nbytes(&r), NULL);
    patch(path, 112, zero_slope, sizeof(zero_slope));
    ck_assert_int_eq(ss_nifti_read(path, &r, &back, NULL, NULL), SS_OK);
    ck_assert_int_eq(memcmp(back, v, sizeof(float) * 60), 0);
    ss_aligned_free(back, ss_nifti_nbytes(&r), NULL);
    free(v);
}
END_TEST

START_TEST(test_read_into_capacity)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/cap.nii.gz", g_tmp);
    ss_nifti_header_t h = small_header(3, 4, 5, 2), r;
    float *v = pattern(&h);
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, NULL), SS_OK);
    float buf[120];
    ss_error_t err;
    ck_assert_int_eq(ss_nifti_read_into(path, &r, buf, 119, &err), SS_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_int_eq(ss_nifti_read_into(path, &r, buf, 120, &err), SS_OK);
    ck_assert_int_eq(memcmp(buf, v, sizeof(buf)), 0);
    free(v);
}
END_TEST

// --- bad inputs -------------------------------------------------------------------------------

START_TEST(test_read_missing_file)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/nope.nii.gz", g_tmp);
    ss_nifti_header_t h;
    float *d = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_nifti_read(path, &h, &d, NULL, &err), SS_EIO);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_ptr_nonnull(strstr(err.msg, "No such file"));
    ck_assert_int_eq(ss_nifti_read_header(g_tmp, &h, &err), SS_EINVAL); // a directory
}
END_TEST

// Copies the first `keep` bytes of src to dst.
static void truncated_copy(const char *src, const char *dst, long keep)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    ck_assert(in && out);
    char *buf = malloc((size_t)keep);
    ck_assert_uint_eq(fread(buf, 1, (size_t)keep, in), (size_t)keep);
    ck_assert_uint_eq(fwrite(buf, 1, (size_t)keep, out), (size_t)keep);
    free(buf);
    fclose(in);
    fclose(out);
}

START_TEST(test_read_truncated)
{
    char src[1024], dst[512];
    // A real .nii.gz cut in half, or a written one when the real data are absent.
    if (!real_path("Brats18_TCIA10_628_1", "t2", src, sizeof(src))) {
        snprintf(src, sizeof(src), "%s/whole.nii.gz", g_tmp);
        ss_nifti_header_t h = small_header(40, 40, 40, 1);
        float *v = pattern(&h);
        ck_assert_int_eq(ss_nifti_write(src, &h, v, 16, NULL), SS_OK);
        free(v);
    }
    struct stat st;
    ck_assert_int_eq(stat(src, &st), 0);
    ss_nifti_header_t h;
    float *d = NULL;
    ss_error_t err;
    snprintf(dst, sizeof(dst), "%s/half.nii.gz", g_tmp);
    truncated_copy(src, dst, (long)st.st_size / 2);
    ck_assert_int_eq(ss_nifti_read(dst, &h, &d, NULL, &err), SS_EFORMAT);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(err.msg, dst));
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
    // Cut inside the header: libnifti cannot parse it at all.
    snprintf(dst, sizeof(dst), "%s/stub.nii.gz", g_tmp);
    truncated_copy(src, dst, 60);
    ck_assert_int_eq(ss_nifti_read(dst, &h, &d, NULL, &err), SS_ENIFTI);
    ck_assert_ptr_nonnull(strstr(err.msg, dst));
    // Uncompressed, cut in the voxel data.
    snprintf(src, sizeof(src), "%s/whole.nii", g_tmp);
    ss_nifti_header_t w = small_header(10, 10, 10, 1);
    float *v = pattern(&w);
    ck_assert_int_eq(ss_nifti_write(src, &w, v, 16, NULL), SS_OK);
    free(v);
    snprintf(dst, sizeof(dst), "%s/cut.nii", g_tmp);
    truncated_copy(src, dst, 352 + 1000);
    ck_assert_int_eq(ss_nifti_read(dst, &h, &d, NULL, &err), SS_EFORMAT);
}
END_TEST

START_TEST(test_read_wrong_magic)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/magic.nii", g_tmp);
    ss_nifti_header_t h = small_header(3, 4, 5, 1);
    float *v = pattern(&h);
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, NULL), SS_OK);
    free(v);
    patch(path, 344, "xyz", 4);
    ss_error_t err;
    float *d = NULL;
    ck_assert_int_eq(ss_nifti_read(path, &h, &d, NULL, &err), SS_ENIFTI);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_ptr_nonnull(strstr(err.msg, "magic"));
    // Not an image at all.
    FILE *f = fopen(path, "wb");
    fputs("hello, this is not a NIfTI file\n", f);
    fclose(f);
    ck_assert_int_eq(ss_nifti_read_header(path, &h, &err), SS_ENIFTI);
}
END_TEST

START_TEST(test_read_2d)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/flat.nii", g_tmp);
    ss_nifti_header_t h = small_header(6, 5, 1, 1);
    float *v = pattern(&h);
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, NULL), SS_OK);
    ss_error_t err;
    float *d = NULL;
    ck_assert_int_eq(ss_nifti_read(path, &h, &d, NULL, &err), SS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "2D"));
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    // dim[0] = 2 in the header: a true 2D file.
    h = small_header(6, 5, 2, 1);
    free(v);
    v = pattern(&h);
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, NULL), SS_OK);
    const int16_t ndim = 2;
    patch(path, 40, &ndim, sizeof(ndim));
    ck_assert_int_eq(ss_nifti_read_header(path, &h, &err), SS_EFORMAT);
    free(v);
}
END_TEST

START_TEST(test_read_nonfinite)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/nan.nii.gz", g_tmp);
    ss_nifti_header_t h = small_header(3, 4, 5, 1);
    float *v = pattern(&h);
    v[(2 * 4 + 1) * 5 + 3] = NAN; // i=2 j=1 k=3
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, NULL), SS_OK);
    ss_error_t err;
    float *d = NULL;
    ck_assert_int_eq(ss_nifti_read(path, &h, &d, NULL, &err), SS_ENUMERIC);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_ptr_nonnull(strstr(err.msg, "i=2 j=1 k=3"));
    v[(2 * 4 + 1) * 5 + 3] = INFINITY;
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 64, NULL), SS_OK);
    ck_assert_int_eq(ss_nifti_read(path, &h, &d, NULL, &err), SS_ENUMERIC);
    free(v);
}
END_TEST

START_TEST(test_write_bad)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/range.nii.gz", g_tmp);
    ss_nifti_header_t h = small_header(3, 4, 5, 1);
    float *v = pattern(&h);
    ss_error_t err;
    // 20403 does not fit uint8: refused, and no file (final or temporary) is left.
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 2, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "uint8"));
    ck_assert_int_ne(access(path, F_OK), 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", g_tmp);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 32, &err), SS_EUNSUPPORTED); // complex64
    ck_assert_int_eq(ss_nifti_write("/proc/nope.nii", &h, v, 16, &err), SS_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/proc/nope.nii"));
    snprintf(path, sizeof(path), "%s/missing_dir/x.nii", g_tmp);
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, &err), SS_EIO);
    h.dim[2] = 0;
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, &err), SS_ESHAPE);
    // Overwriting an existing file replaces it atomically.
    snprintf(path, sizeof(path), "%s/again.nii", g_tmp);
    h.dim[2] = 5;
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, &err), SS_OK);
    v[0] = 42.0f;
    ck_assert_int_eq(ss_nifti_write(path, &h, v, 16, &err), SS_OK);
    float *back = NULL;
    ck_assert_int_eq(ss_nifti_read(path, &h, &back, NULL, &err), SS_OK);
    ck_assert_float_eq(back[0], 42.0f);
    ss_aligned_free(back, ss_nifti_nbytes(&h), NULL);
    free(v);
}
END_TEST

START_TEST(test_datatype_name)
{
    ck_assert_str_eq(ss_nifti_datatype_name(4), "int16");
    ck_assert_str_eq(ss_nifti_datatype_name(2), "uint8");
    ck_assert_str_eq(ss_nifti_datatype_name(16), "float32");
    ck_assert_str_eq(ss_nifti_datatype_name(12345), "unknown");
}
END_TEST

static TCase *tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("nifti_io");
    TCase *tc = tcase("tc_ss_nifti_read");
    tcase_add_loop_test(tc, test_read_real_cases, 0, 3);
    tcase_add_test(tc, test_read_scaling);
    tcase_add_test(tc, test_read_missing_file);
    tcase_add_test(tc, test_read_truncated);
    tcase_add_test(tc, test_read_wrong_magic);
    tcase_add_test(tc, test_read_2d);
    tcase_add_test(tc, test_read_nonfinite);
    suite_add_tcase(s, tc);
    tc = tcase("tc_ss_nifti_read_header");
    tcase_add_test(tc, test_read_header_real);
    suite_add_tcase(s, tc);
    tc = tcase("tc_ss_nifti_read_into");
    tcase_add_test(tc, test_read_into_capacity);
    suite_add_tcase(s, tc);
    tc = tcase("tc_ss_nifti_write");
    tcase_add_loop_test(tc, test_write_read_datatypes, 0, 10);
    tcase_add_test(tc, test_write_file_order);
    tcase_add_test(tc, test_write_bad);
    suite_add_tcase(s, tc);
    tc = tcase("tc_ss_nifti_write_version");
    tcase_add_test(tc, test_write_read_4d_and_nifti2);
    suite_add_tcase(s, tc);
    tc = tcase("tc_ss_nifti_datatype_name");
    tcase_add_test(tc, test_datatype_name);
    suite_add_tcase(s, tc);
    return ss_test_run(s);
}
