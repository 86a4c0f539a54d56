// check_image.c: the overlay PNG, read back with cairo: views oriented by the affine
// (radiological convention), slice point at the labels' centroid, atomic write, bad paths.
#include <cairo.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/image.h"

#include "testutil.h"

// The page layout of src/train/image.c: three 320-pixel panel boxes, 16 pixels apart, starting
// 16 pixels from the left and 52 from the top (title and caption lines). Each slice is centred in
// its box, so the box's quadrants are the slice's.
enum { PANEL = 320, MARGIN = 16, TOP = 52 };

static const int64_t g_dim[3] = {20, 24, 16};

// A ramp image (so the grey window is not degenerate) and an ET cube at high i, j and k, both
// allocated here (the caller frees them).
static void volume(float **pimg, uint8_t **plab)
{
    const int64_t *d = g_dim, n = d[0] * d[1] * d[2];
    float *img = *pimg = malloc((size_t)n * sizeof(float));
    uint8_t *lab = *plab = malloc((size_t)n);
    ck_assert(img != NULL && lab != NULL);
    for (int64_t i = 0; i < d[0]; i++) {
        for (int64_t j = 0; j < d[1]; j++) {
            for (int64_t k = 0; k < d[2]; k++) {
                int64_t v = (i * d[1] + j) * d[2] + k;
                img[v] = 1.0f + (float)(v % 97);
                lab[v] = i >= 15 && i <= 17 && j >= 17 && j <= 19 && k >= 11 && k <= 13 ? 3 : 0;
            }
        }
    }
}

// Coloured (label) pixels of panel p in each quadrant: q[0] upper-left, q[1] upper-right,
// q[2] lower-left, q[3] lower-right. A grey pixel has R == B; ET blends yellow (R >> B).
static void quadrants(const char *png, int p, int q[4])
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(png);
    ck_assert_int_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
    ck_assert_int_eq(cairo_image_surface_get_width(s), 3 * PANEL + 4 * MARGIN);
    const unsigned char *px = cairo_image_surface_get_data(s);
    const int stride = cairo_image_surface_get_stride(s);
    memset(q, 0, 4 * sizeof(int));
    const int x0 = MARGIN + p * (PANEL + MARGIN);
    for (int y = TOP; y < TOP + PANEL; y++) {
        const uint32_t *row = (const uint32_t *)(px + (size_t)y * (size_t)stride);
        for (int x = x0; x < x0 + PANEL; x++) {
            int r = (int)(row[x] >> 16 & 255), b = (int)(row[x] & 255);
            if (r - b > 80) {
                q[(y >= TOP + PANEL / 2) * 2 + (x >= x0 + PANEL / 2)]++;
            }
        }
    }
    cairo_surface_destroy(s);
}

static void tmp_png(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/check_image_%d.png", (int)getpid());
}

// Identity affine (RAS: i -> right, j -> anterior, k -> superior): the cube is right-anterior-
// superior, so it shows upper-left in the axial and coronal views (right on the left) and in the
// sagittal view (anterior on the left), and nowhere else.
START_TEST(tc_orientation_ras)
{
    float *img;
    uint8_t *lab;
    volume(&img, &lab);
    ss_overlay_t o = {img, lab, {20, 24, 16}, {1, 1, 1}, {{0}}, 0, "ras", {NULL, NULL, NULL}};
    char path[256];
    tmp_png(path, sizeof(path));
    ss_error_t err;
    ck_assert_int_eq(ss_image_overlay_png(path, &o, NULL, &err), SS_OK);
    for (int p = 0; p < 3; p++) {
        int q[4];
        quadrants(path, p, q);
        ck_assert_msg(q[0] > 100 && q[1] == 0 && q[2] == 0 && q[3] == 0,
                      "view %d: label pixels per quadrant %d %d %d %d", p, q[0], q[1], q[2], q[3]);
    }
    unlink(path);
    free(img);
    free(lab);
}
END_TEST

// The BraTS affine diag(-1, -1, 1) (LPS voxel axes): high i is the patient's left, high j
// posterior. The cube is now left-posterior-superior: lower-right in the axial view (left on the
// right, anterior up), upper-right in the coronal and sagittal views (posterior on the right).
START_TEST(tc_orientation_lps)
{
    float *img;
    uint8_t *lab;
    volume(&img, &lab);
    ss_overlay_t o = {img, lab, {20, 24, 16}, {1, 1, 2}, {{0}}, 0, "lps", {NULL, NULL, NULL}};
    double a[4][4] = {{-1, 0, 0, 0}, {0, -1, 0, 239}, {0, 0, 2, 0}, {0, 0, 0, 1}};
    memcpy(o.affine, a, sizeof(a));
    char path[256];
    tmp_png(path, sizeof(path));
    ss_error_t err;
    ck_assert_int_eq(ss_image_overlay_png(path, &o, NULL, &err), SS_OK);
    for (int p = 0; p < 3; p++) {
        int q[4];
        quadrants(path, p, q);
        int want = p == 0 ? 3 : 1, others = q[0] + q[1] + q[2] + q[3] - q[want];
        ck_assert_msg(q[want] > 100 && others == 0,
                      "view %d: label pixels per quadrant %d %d %d %d", p, q[0], q[1], q[2], q[3]);
    }
    unlink(path);
    free(img);
    free(lab);
}
END_TEST

START_TEST(tc_centre)
{
    float *img;
    uint8_t *lab;
    volume(&img, &lab);
    ss_overlay_t o = {img, lab, {20, 24, 16}, {1, 1, 1}, {{0}}, 0, NULL, {NULL, NULL, NULL}};
    int64_t c[3];
    ss_image_overlay_centre(&o, c);
    ck_assert_int_eq(c[0], 16);
    ck_assert_int_eq(c[1], 18);
    ck_assert_int_eq(c[2], 12);
    o.labels = NULL;
    ss_image_overlay_centre(&o, c);
    ck_assert_int_eq(c[0], 10);
    ck_assert_int_eq(c[1], 12);
    ck_assert_int_eq(c[2], 8);
    // A slice point away from the cube: no label pixel in any view.
    char path[256];
    tmp_png(path, sizeof(path));
    o.labels = lab;
    int64_t away[3] = {2, 2, 2};
    ss_error_t err;
    ck_assert_int_eq(ss_image_overlay_png(path, &o, away, &err), SS_OK);
    for (int p = 0; p < 3; p++) {
        int q[4];
        quadrants(path, p, q);
        ck_assert_int_eq(q[0] + q[1] + q[2] + q[3], 0);
    }
    unlink(path);
    free(img);
    free(lab);
}
END_TEST

static int tmp_files_in(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".tmp") != NULL;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

START_TEST(tc_bad_args)
{
    float img[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ss_overlay_t o = {img, NULL, {2, 2, 2}, {1, 1, 1}, {{0}}, 0, NULL, {NULL, NULL, NULL}};
    ss_error_t err;
    ck_assert_int_eq(ss_image_overlay_png("/nonexistent-dir/x.png", &o, NULL, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent-dir/x.png"));
    int64_t outside[3] = {0, 2, 0};
    ck_assert_int_eq(ss_image_overlay_png("/tmp/never.png", &o, outside, &err), SS_EINVAL);
    ck_assert_int_eq(access("/tmp/never.png", F_OK), -1);
    o.image = NULL;
    ck_assert_int_eq(ss_image_overlay_png("/tmp/never.png", &o, NULL, &err), SS_EINVAL);
    // A successful write leaves only the picture (the temporary name is renamed).
    o.image = img;
    char path[256];
    tmp_png(path, sizeof(path));
    ck_assert_int_eq(ss_image_overlay_png(path, &o, NULL, &err), SS_OK);
    ck_assert_int_eq(access(path, R_OK), 0);
    ck_assert_int_eq(tmp_files_in("/tmp", "check_image_"), 0);
    unlink(path);
}
END_TEST

static Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("overlay");
    tcase_add_test(tc, tc_orientation_ras);
    tcase_add_test(tc, tc_orientation_lps);
    tcase_add_test(tc, tc_centre);
    tcase_add_test(tc, tc_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ss_test_run(image_suite());
}
