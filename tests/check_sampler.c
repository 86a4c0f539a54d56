// The sampler against direct reads of the HDF5 file: content, flips, slabs, determinism,
// foreground oversampling and the prefetch thread.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/h5data.h"
#include "shardseg/sampler.h"

#include "testutil.h"

enum { NC = 2, NR = 3, I = 21, J = 17, K = 13 };
static char g_dir[] = "/tmp/ss_sampler_XXXXXX";
static char g_path[256];

// Three cases: 0 and 2 hold a tumour cube, 1 none; case 2 is the validation case.
// Runs before the suite, outside Check's test context: failures are reported by hand.
static int make_file(void)
{
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(g_path, sizeof(g_path), "%s/d.h5", g_dir);
    const char *chans[NC] = {"FLAIR", "T1"};
    ss_h5data_meta_t meta = {NC, chans, SS_TARGET_REGIONS, "brats", "test", 1, 0.34, 1, 4, 1};
    (void)meta.gzip;
    ss_h5data_writer_t *w = NULL;
    ss_error_t err;
    if (ss_h5data_create(g_path, &meta, &w, &err) != SS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    static float img[NC * I * J * K];
    static uint8_t lab[NR * I * J * K];
    const char *names[3] = {"case_a", "case_b", "case_c"};
    for (int c = 0; c < 3; c++) {
        ss_test_fill(img, NC * I * J * K, 10 + (uint64_t)c, -2, 2);
        memset(lab, 0, sizeof(lab));
        for (int i = 12; i < 16 && c != 1; i++) {
            for (int j = 3; j < 7; j++) {
                for (int k = 8; k < 11; k++) {
                    lab[(i * J + j) * K + k] = 1; // WT channel only
                }
            }
        }
        ss_h5data_case_t hc;
        memset(&hc, 0, sizeof(hc));
        hc.name = names[c];
        hc.dim[0] = I, hc.dim[1] = J, hc.dim[2] = K;
        hc.image = img;
        hc.label = lab;
        hc.orig_shape[0] = I, hc.orig_shape[1] = J, hc.orig_shape[2] = K;
        hc.crop.end[0] = I, hc.crop.end[1] = J, hc.crop.end[2] = K;
        hc.spacing[0] = hc.spacing[1] = hc.spacing[2] = 1;
        for (int a = 0; a < 4; a++) {
            hc.affine[a][a] = 1;
        }
        for (int ch = 0; ch < NC; ch++) {
            hc.std[ch] = 1;
        }
        if (ss_h5data_write_case(w, &hc, &err) != SS_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return -1;
        }
    }
    int assign[3] = {0, 0, 1};
    if (ss_h5data_write_split(w, names, assign, 3, &err) != SS_OK ||
        ss_h5data_commit(&w, NULL, &err) != SS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static void remove_file(void)
{
    unlink(g_path);
    rmdir(g_dir);
}

static ss_sampler_t *make_sampler(
    ss_h5data_t *d, int flips, float scale, int64_t i0, int64_t len, int prefetch, double fg)
{
    ss_sampler_config_t c;
    ss_sampler_config_init(&c);
    c.patch[0] = 12, c.patch[1] = 20, c.patch[2] = 9; // J patch larger than the volume: padding
    c.slab_i0 = i0, c.slab_len = len;
    c.flip_axes = flips, c.scale = scale, c.shift = scale;
    c.prefetch = prefetch, c.fg_fraction = fg, c.seed = 7;
    ss_sampler_t *s = NULL;
    ss_error_t err;
    ck_assert_msg(ss_sampler_create(d, &c, &s, &err) == SS_OK, "%s", err.msg);
    return s;
}

enum { PI = 12, PJ = 20, PK = 9, PV = PI * PJ * PK };

// Without augmentation a patch is the volume at its origin, zero outside.
START_TEST(test_patch_content)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    ss_sampler_t *s = make_sampler(d, 0, 0, 0, 0, 0, 0.5);
    static float img[NC * PV], vol[NC * I * J * K];
    static uint8_t lab[NR * PV], vlab[NR * I * J * K];
    for (uint64_t k = 0; k < 20; k++) {
        ss_sampler_draw_t dr;
        ss_sampler_draw(s, k, &dr);
        ck_assert_int_ne(dr.case_index, 2); // validation case never drawn
        ck_assert_int_eq(ss_sampler_fill(s, k, img, lab, NULL), SS_OK);
        ck_assert_int_eq(ss_h5data_read_image(d, dr.case_index, 0, I, vol, NULL), SS_OK);
        ck_assert_int_eq(ss_h5data_read_label(d, dr.case_index, 0, I, vlab, NULL), SS_OK);
        ck_assert(dr.origin[0] >= 0 && dr.origin[0] + PI <= I);
        for (int c = 0; c < NC; c++) {
            for (int i = 0; i < PI; i++) {
                for (int j = 0; j < PJ; j++) {
                    for (int q = 0; q < PK; q++) {
                        int64_t vi = dr.origin[0] + i, vj = dr.origin[1] + j, vk = dr.origin[2] + q;
                        int in = vj >= 0 && vj < J;
                        float want = in ? vol[((c * I + vi) * J + vj) * K + vk] : 0.0f;
                        ck_assert_float_eq(img[((c * PI + i) * PJ + j) * PK + q], want);
                        uint8_t wl = in ? vlab[((c * I + vi) * J + vj) * K + vk] : 0;
                        ck_assert_uint_eq(lab[((c * PI + i) * PJ + j) * PK + q], wl);
                    }
                }
            }
        }
    }
    ss_sampler_destroy(&s);
    ss_h5data_close(&d);
}
END_TEST

// Flipped patches are the unflipped ones mirrored; slabs of two ranks tile the whole patch.
START_TEST(test_flips_and_slabs)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    ss_sampler_t *plain = make_sampler(d, 0, 0.2f, 0, 0, 0, 0.5);
    ss_sampler_t *flip = make_sampler(d, 7, 0.2f, 0, 0, 0, 0.5);
    ss_sampler_t *top = make_sampler(d, 7, 0.2f, 0, 5, 0, 0.5);
    ss_sampler_t *bot = make_sampler(d, 7, 0.2f, 5, 7, 0, 0.5);
    static float a[NC * PV], b[NC * PV], t[NC * 5 * PJ * PK], u[NC * 7 * PJ * PK];
    static uint8_t la[NR * PV], lb[NR * PV], lt[NR * 5 * PJ * PK], lu[NR * 7 * PJ * PK];
    int flipped_i = 0;
    for (uint64_t k = 0; k < 24; k++) {
        ss_sampler_draw_t dr;
        ss_sampler_draw(flip, k, &dr);
        flipped_i += dr.flip[0];
        ck_assert_int_eq(ss_sampler_fill(plain, k, a, la, NULL), SS_OK);
        ck_assert_int_eq(ss_sampler_fill(flip, k, b, lb, NULL), SS_OK);
        for (int c = 0; c < NC; c++) {
            for (int i = 0; i < PI; i++) {
                for (int j = 0; j < PJ; j++) {
                    for (int q = 0; q < PK; q++) {
                        int fi = dr.flip[0] ? PI - 1 - i : i, fj = dr.flip[1] ? PJ - 1 - j : j;
                        int fq = dr.flip[2] ? PK - 1 - q : q;
                        ck_assert_float_eq(b[((c * PI + i) * PJ + j) * PK + q],
                                           a[((c * PI + fi) * PJ + fj) * PK + fq]);
                    }
                }
            }
        }
        ck_assert_int_eq(ss_sampler_fill(top, k, t, lt, NULL), SS_OK);
        ck_assert_int_eq(ss_sampler_fill(bot, k, u, lu, NULL), SS_OK);
        for (int c = 0; c < NC; c++) {
            ck_assert_mem_eq(t + c * 5 * PJ * PK, b + c * PV, 5 * PJ * PK * sizeof(float));
            ck_assert_mem_eq(u + c * 7 * PJ * PK, b + c * PV + 5 * PJ * PK,
                             7 * PJ * PK * sizeof(float));
        }
        for (int r = 0; r < NR; r++) {
            ck_assert_mem_eq(lt + r * 5 * PJ * PK, lb + r * PV, 5 * PJ * PK);
            ck_assert_mem_eq(lu + r * 7 * PJ * PK, lb + r * PV + 5 * PJ * PK, 7 * PJ * PK);
        }
    }
    ck_assert_int_gt(flipped_i, 0);
    ck_assert_int_lt(flipped_i, 24);
    // A rank reading 5 of 12 rows reads fewer bytes than one reading the whole patch.
    ck_assert_uint_lt(ss_sampler_bytes_read(top), ss_sampler_bytes_read(flip));
    ss_sampler_destroy(&plain);
    ss_sampler_destroy(&flip);
    ss_sampler_destroy(&top);
    ss_sampler_destroy(&bot);
    ss_h5data_close(&d);
}
END_TEST

enum { RI = 12, RN = 11, RV = RI * RN * RN };

// Cases cached in memory give the very patches that HDF5 reads give (flips, intensity changes,
// quarter turns, padding, an i-slab), and read nothing more from the file; a cache too small
// for the cases leaves the sampler reading HDF5.
START_TEST(test_cache_matches_hdf5)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    const size_t limits[3] = {0, (size_t)1 << 30, 1000};
    for (int slab = 0; slab <= 1; slab++) {
        ss_sampler_t *s[3];
        for (int v = 0; v < 3; v++) {
            ss_sampler_config_t c;
            ss_sampler_config_init(&c);
            c.patch[0] = RI, c.patch[1] = RN, c.patch[2] = RN;
            c.slab_i0 = slab ? 5 : 0, c.slab_len = slab ? 7 : 0;
            c.scale = c.shift = 0.2f;
            c.prefetch = 0, c.fg_fraction = 0.5, c.seed = 13, c.rot90 = 1;
            c.cache_bytes = limits[v];
            ss_error_t err;
            ck_assert_msg(ss_sampler_create(d, &c, &s[v], &err) == SS_OK, "%s", err.msg);
        }
        uint64_t read0 = ss_sampler_bytes_read(s[1]);
        static float a[NC * RV], b[NC * RV];
        static uint8_t la[NR * RV], lb[NR * RV];
        for (uint64_t k = 0; k < 24; k++) {
            for (int v = 1; v < 3; v++) {
                memset(b, 0xff, sizeof(b));
                memset(lb, 0xff, sizeof(lb));
                ck_assert_int_eq(ss_sampler_fill(s[0], k, a, la, NULL), SS_OK);
                ck_assert_int_eq(ss_sampler_fill(s[v], k, b, lb, NULL), SS_OK);
                size_t rows = slab ? 7 : RI; // only the slab's rows are written
                ck_assert_msg(memcmp(a, b, NC * rows * RN * RN * sizeof(float)) == 0,
                              "slab %d limit %zu patch %llu: image", slab, limits[v],
                              (unsigned long long)k);
                ck_assert_msg(memcmp(la, lb, NR * rows * RN * RN) == 0,
                              "slab %d limit %zu patch %llu: label", slab, limits[v],
                              (unsigned long long)k);
            }
        }
        ck_assert_uint_eq(ss_sampler_bytes_read(s[1]), read0);
        ck_assert_uint_gt(ss_sampler_bytes_read(s[2]), 0);
        for (int v = 0; v < 3; v++) {
            ss_sampler_destroy(&s[v]);
        }
    }
    ss_h5data_close(&d);
}
END_TEST

static ss_sampler_t *make_turning(ss_h5data_t *d, int rot90, int64_t pj, int64_t i0, int64_t len)
{
    ss_sampler_config_t c;
    ss_sampler_config_init(&c);
    c.patch[0] = RI, c.patch[1] = pj, c.patch[2] = RN;
    c.slab_i0 = i0, c.slab_len = len;
    c.scale = c.shift = 0.2f;
    c.prefetch = 0, c.fg_fraction = 0.5, c.seed = 11, c.rot90 = rot90;
    ss_sampler_t *s = NULL;
    ss_error_t err;
    ck_assert_msg(ss_sampler_create(d, &c, &s, &err) == SS_OK, "%s", err.msg);
    return s;
}

// Window position of turned patch position (j, q) for an n x n J-K window (sampler.h).
static void unturn(int rot, int n, int j, int q, int *wj, int *wq)
{
    const int t[4][2] = {{j, q}, {n - 1 - q, j}, {n - 1 - j, n - 1 - q}, {q, n - 1 - j}};
    *wj = t[rot][0];
    *wq = t[rot][1];
}

// Turned patches are the same draw's unturned patch (flips, intensity and origin unchanged)
// turned in the J-K plane; every quarter turn occurs; the i-slabs of two ranks still tile the
// turned patch; a non-square J-K patch is only ever turned by 0 or 180 degrees.
START_TEST(test_rotations)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    ss_sampler_t *plain = make_turning(d, 0, RN, 0, 0), *turn = make_turning(d, 1, RN, 0, 0);
    ss_sampler_t *top = make_turning(d, 1, RN, 0, 5), *bot = make_turning(d, 1, RN, 5, 7);
    static float a[NC * RV], b[NC * RV], t[NC * 5 * RN * RN], u[NC * 7 * RN * RN];
    static uint8_t la[NR * RV], lb[NR * RV], lt[NR * 5 * RN * RN], lu[NR * 7 * RN * RN];
    int seen[4] = {0, 0, 0, 0};
    for (uint64_t k = 0; k < 32; k++) {
        ss_sampler_draw_t dr, d0;
        ss_sampler_draw(turn, k, &dr);
        ss_sampler_draw(plain, k, &d0);
        ck_assert_int_eq(d0.rot, 0);
        ck_assert_mem_eq(dr.origin, d0.origin, sizeof(dr.origin));
        ck_assert_mem_eq(dr.flip, d0.flip, sizeof(dr.flip));
        seen[dr.rot]++;
        ck_assert_int_eq(ss_sampler_fill(plain, k, a, la, NULL), SS_OK);
        ck_assert_int_eq(ss_sampler_fill(turn, k, b, lb, NULL), SS_OK);
        for (int i = 0; i < RI; i++) {
            for (int j = 0; j < RN; j++) {
                for (int q = 0; q < RN; q++) {
                    int wj, wq;
                    unturn(dr.rot, RN, j, q, &wj, &wq);
                    for (int c = 0; c < NC; c++) {
                        ck_assert_float_eq(b[((c * RI + i) * RN + j) * RN + q],
                                           a[((c * RI + i) * RN + wj) * RN + wq]);
                    }
                    for (int r = 0; r < NR; r++) {
                        ck_assert_uint_eq(lb[((r * RI + i) * RN + j) * RN + q],
                                          la[((r * RI + i) * RN + wj) * RN + wq]);
                    }
                }
            }
        }
        ck_assert_int_eq(ss_sampler_fill(top, k, t, lt, NULL), SS_OK);
        ck_assert_int_eq(ss_sampler_fill(bot, k, u, lu, NULL), SS_OK);
        for (int c = 0; c < NC; c++) {
            ck_assert_mem_eq(t + c * 5 * RN * RN, b + c * RV, 5 * RN * RN * sizeof(float));
            ck_assert_mem_eq(u + c * 7 * RN * RN, b + c * RV + 5 * RN * RN,
                             7 * RN * RN * sizeof(float));
        }
    }
    for (int r = 0; r < 4; r++) {
        ck_assert_int_gt(seen[r], 0);
    }
    ss_sampler_t *wide = make_turning(d, 1, 9, 0, 0);
    int half = 0;
    for (uint64_t k = 0; k < 32; k++) {
        ss_sampler_draw_t dr;
        ss_sampler_draw(wide, k, &dr);
        ck_assert(dr.rot == 0 || dr.rot == 2);
        half += dr.rot == 2;
    }
    ck_assert(half > 0 && half < 32);
    ss_sampler_destroy(&wide);
    ss_sampler_destroy(&plain);
    ss_sampler_destroy(&turn);
    ss_sampler_destroy(&top);
    ss_sampler_destroy(&bot);
    ss_h5data_close(&d);
}
END_TEST

// Spatial draws with no rotation and no scaling give exactly the plain patches (turns, flips,
// padding and slabs included): the matrix path and the row-copy path agree voxel for voxel.
START_TEST(test_spatial_identity)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    for (int slab = 0; slab <= 1; slab++) {
        ss_sampler_t *s[2];
        for (int v = 0; v < 2; v++) {
            ss_sampler_config_t c;
            ss_sampler_config_init(&c);
            c.patch[0] = RI, c.patch[1] = RN, c.patch[2] = RN;
            c.slab_i0 = slab ? 5 : 0, c.slab_len = slab ? 7 : 0;
            c.scale = c.shift = 0.2f;
            c.prefetch = 0, c.fg_fraction = 0.5, c.seed = 13, c.rot90 = 1;
            c.cache_bytes = (size_t)1 << 30;
            c.spatial_p = v, c.rotate = 0, c.zoom = 0;
            ss_error_t err;
            ck_assert_msg(ss_sampler_create(d, &c, &s[v], &err) == SS_OK, "%s", err.msg);
        }
        static float a[NC * RV], b[NC * RV];
        static uint8_t la[NR * RV], lb[NR * RV];
        int turned = 0, flipped = 0;
        for (uint64_t k = 0; k < 24; k++) {
            ss_sampler_draw_t dr;
            ss_sampler_draw(s[1], k, &dr);
            ck_assert_int_eq(dr.spatial, 1);
            turned += dr.rot != 0;
            flipped += dr.flip[0] || dr.flip[1] || dr.flip[2];
            ck_assert_int_eq(ss_sampler_fill(s[0], k, a, la, NULL), SS_OK);
            ck_assert_int_eq(ss_sampler_fill(s[1], k, b, lb, NULL), SS_OK);
            size_t rows = slab ? 7 : RI;
            ck_assert_msg(memcmp(a, b, NC * rows * RN * RN * sizeof(float)) == 0,
                          "slab %d patch %llu: image", slab, (unsigned long long)k);
            ck_assert_msg(memcmp(la, lb, NR * rows * RN * RN) == 0, "slab %d patch %llu: label",
                          slab, (unsigned long long)k);
        }
        ck_assert_int_gt(turned, 0);
        ck_assert_int_gt(flipped, 0);
        for (int v = 0; v < 2; v++) {
            ss_sampler_destroy(&s[v]);
        }
    }
    ss_h5data_close(&d);
}
END_TEST

// A volume whose channel c is the linear function lin(c, x) and whose label is the half-space
// i + 0.5 j - 0.25 k > 30; trilinear interpolation reproduces a linear function exactly.
enum { LI = 40, LJ = 36, LK = 32, LP = 16, LPV = LP * LP * LP };
static double lin(int c, const double x[3])
{
    return 1 + c + 0.5 * x[0] + 0.25 * x[1] - 0.125 * x[2];
}
static double half_space(const double x[3])
{
    return x[0] + 0.5 * x[1] - 0.25 * x[2] - 30;
}

static void make_linear_file(const char *path)
{
    const char *chans[NC] = {"FLAIR", "T1"};
    ss_h5data_meta_t meta = {NC, chans, SS_TARGET_REGIONS, "brats", "test", 1, 0.0, 1, 4, 1};
    ss_h5data_writer_t *w = NULL;
    ss_error_t err;
    ck_assert_msg(ss_h5data_create(path, &meta, &w, &err) == SS_OK, "%s", err.msg);
    static float img[NC * LI * LJ * LK];
    static uint8_t lab[NR * LI * LJ * LK];
    for (int c = 0; c < NC; c++) {
        for (int i = 0; i < LI; i++) {
            for (int j = 0; j < LJ; j++) {
                for (int q = 0; q < LK; q++) {
                    const double x[3] = {i, j, q};
                    int64_t v = (i * LJ + j) * LK + q;
                    img[c * LI * LJ * LK + v] = (float)lin(c, x);
                    for (int r = 0; r < NR; r++) {
                        lab[r * LI * LJ * LK + v] = half_space(x) > 0;
                    }
                }
            }
        }
    }
    ss_h5data_case_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.name = "linear";
    hc.dim[0] = LI, hc.dim[1] = LJ, hc.dim[2] = LK;
    hc.image = img;
    hc.label = lab;
    hc.orig_shape[0] = LI, hc.orig_shape[1] = LJ, hc.orig_shape[2] = LK;
    hc.crop.end[0] = LI, hc.crop.end[1] = LJ, hc.crop.end[2] = LK;
    hc.spacing[0] = hc.spacing[1] = hc.spacing[2] = 1;
    for (int a = 0; a < 4; a++) {
        hc.affine[a][a] = 1;
    }
    for (int ch = 0; ch < NC; ch++) {
        hc.std[ch] = 1;
    }
    ck_assert_msg(ss_h5data_write_case(w, &hc, &err) == SS_OK, "%s", err.msg);
    ck_assert_msg(ss_h5data_commit(&w, NULL, &err) == SS_OK, "%s", err.msg);
}

// Rotated and scaled patches: A is a rotation times a zoom in range, every voxel whose
// neighbourhood lies inside the volume shows lin() at origin + c + A (p - c), and labels are the
// half-space wherever the point is more than the nearest-voxel rounding away from its plane.
START_TEST(test_spatial_linear)
{
    char dir[256], path[300];
    ss_test_tmpdir_make(dir, sizeof(dir), "sampler_linear");
    snprintf(path, sizeof(path), "%s/lin.h5", dir);
    make_linear_file(path);
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(path, &d, NULL), SS_OK);
    ss_sampler_config_t cfg;
    ss_sampler_config_init(&cfg);
    cfg.patch[0] = cfg.patch[1] = cfg.patch[2] = LP;
    cfg.scale = cfg.shift = 0;
    cfg.prefetch = 0, cfg.seed = 5, cfg.rot90 = 1;
    cfg.cache_bytes = (size_t)1 << 30;
    cfg.spatial_p = 1, cfg.rotate = 30, cfg.zoom = 0.3;
    ss_sampler_t *s = NULL;
    ss_error_t err;
    ck_assert_msg(ss_sampler_create(d, &cfg, &s, &err) == SS_OK, "%s", err.msg);
    static float img[NC * LPV];
    static uint8_t lab[NR * LPV];
    int64_t checked = 0, labelled = 0;
    double zmin = 2, zmax = 0;
    for (uint64_t k = 0; k < 16; k++) {
        ss_sampler_draw_t dr;
        ss_sampler_draw(s, k, &dr);
        ck_assert_int_eq(dr.spatial, 1);
        // A^T A = z^2 I: a rotation (or reflection) times an isotropic zoom.
        double z2 = 0;
        for (int a = 0; a < 3; a++) {
            z2 += dr.A[a][0] * dr.A[a][0];
        }
        for (int u = 0; u < 3; u++) {
            for (int v = 0; v < 3; v++) {
                double dot = 0;
                for (int a = 0; a < 3; a++) {
                    dot += dr.A[a][u] * dr.A[a][v];
                }
                ck_assert_double_eq_tol(dot, u == v ? z2 : 0, 1e-12);
            }
        }
        double z = sqrt(z2);
        ck_assert(z >= 0.7 - 1e-12 && z <= 1.3 + 1e-12);
        zmin = z < zmin ? z : zmin, zmax = z > zmax ? z : zmax;
        ck_assert_int_eq(ss_sampler_fill(s, k, img, lab, NULL), SS_OK);
        const double c = (LP - 1) / 2.0;
        for (int i = 0; i < LP; i++) {
            for (int j = 0; j < LP; j++) {
                for (int q = 0; q < LP; q++) {
                    const double p[3] = {i - c, j - c, q - c};
                    double x[3];
                    int inner = 1;
                    for (int a = 0; a < 3; a++) {
                        x[a] = (double)dr.origin[a] + c + dr.A[a][0] * p[0] + dr.A[a][1] * p[1] +
                               dr.A[a][2] * p[2];
                        int64_t dim = a == 0 ? LI : (a == 1 ? LJ : LK);
                        inner &= x[a] >= 0 && x[a] <= dim - 1;
                    }
                    int64_t v = (i * LP + j) * LP + q;
                    for (int ch = 0; inner && ch < NC; ch++) {
                        ck_assert_msg(fabs(img[ch * LPV + v] - lin(ch, x)) < 1e-4,
                                      "patch %llu voxel (%d,%d,%d) channel %d: %g, want %g",
                                      (unsigned long long)k, i, j, q, ch, img[ch * LPV + v],
                                      lin(ch, x));
                    }
                    checked += inner;
                    // Rounding moves the point at most sqrt(3)/2 voxels; |grad| = 1.146.
                    if (inner && fabs(half_space(x)) > 1.0) {
                        for (int r = 0; r < NR; r++) {
                            ck_assert_uint_eq(lab[r * LPV + v], half_space(x) > 0);
                        }
                        labelled++;
                    }
                }
            }
        }
    }
    ck_assert_int_gt(checked, 16 * LPV / 2);
    ck_assert_int_gt(labelled, 16 * LPV / 4);
    ck_assert(zmin < 0.9 && zmax > 1.1); // the zoom range is used
    ss_sampler_destroy(&s);
    ss_h5data_close(&d);
    unlink(path);
    ss_test_tmpdir_remove(dir);
}
END_TEST

// Gamma: brain (non-zero) voxels follow lo + (hi - lo) ((x - lo) / (hi - lo))^g with the case's
// channel range, background stays 0, g lies in [1 / (1 + gamma), 1 + gamma].
START_TEST(test_gamma)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    ss_sampler_t *s[2];
    for (int v = 0; v < 2; v++) {
        ss_sampler_config_t c;
        ss_sampler_config_init(&c);
        c.patch[0] = RI, c.patch[1] = RN, c.patch[2] = RN;
        c.scale = c.shift = 0;
        c.prefetch = 0, c.seed = 3;
        c.cache_bytes = (size_t)1 << 30;
        c.gamma_p = v ? 0.5 : 0, c.gamma = 0.5;
        ss_error_t err;
        ck_assert_msg(ss_sampler_create(d, &c, &s[v], &err) == SS_OK, "%s", err.msg);
    }
    static float a[NC * RV], b[NC * RV], vol[NC * I * J * K];
    static uint8_t la[NR * RV];
    int changed = 0, kept = 0;
    for (uint64_t k = 0; k < 16; k++) {
        ss_sampler_draw_t dr;
        ss_sampler_draw(s[1], k, &dr);
        ck_assert_int_eq(ss_h5data_read_image(d, dr.case_index, 0, I, vol, NULL), SS_OK);
        ck_assert_int_eq(ss_sampler_fill(s[0], k, a, la, NULL), SS_OK);
        ck_assert_int_eq(ss_sampler_fill(s[1], k, b, la, NULL), SS_OK);
        for (int c = 0; c < NC; c++) {
            double g = dr.gamma[c];
            ck_assert(g >= 1 / 1.5 - 1e-6 && g <= 1.5 + 1e-6);
            changed += g != 1, kept += g == 1;
            float lo = 0, hi = 0;
            for (int64_t v = 0; v < I * J * K; v++) {
                float x = vol[c * I * J * K + v];
                lo = v == 0 || x < lo ? x : lo;
                hi = v == 0 || x > hi ? x : hi;
            }
            for (int64_t v = 0; v < RV; v++) {
                double x = a[c * RV + v];
                double want = x == 0 ? 0 : lo + (hi - lo) * pow((x - lo) / (hi - lo), g);
                ck_assert_msg(fabs(b[c * RV + v] - want) < 1e-5 * (hi - lo),
                              "patch %llu channel %d: %g -> %g, want %g", (unsigned long long)k, c,
                              x, b[c * RV + v], want);
            }
        }
    }
    ck_assert_int_gt(changed, 0);
    ck_assert_int_gt(kept, 0);
    for (int v = 0; v < 2; v++) {
        ss_sampler_destroy(&s[v]);
    }
    ss_h5data_close(&d);
}
END_TEST

START_TEST(test_foreground_oversampling)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    ss_sampler_t *s = make_sampler(d, 0, 0, 0, 0, 0, 1.0);
    static float img[NC * PV];
    static uint8_t lab[NR * PV];
    int fg_patches = 0;
    for (uint64_t k = 0; k < 30; k++) {
        ss_sampler_draw_t dr;
        ss_sampler_draw(s, k, &dr);
        // fg_fraction 1: every draw of the case with a tumour is centred on it.
        ck_assert_int_eq(dr.foreground, dr.case_index == 0);
        ck_assert_int_eq(ss_sampler_fill(s, k, img, lab, NULL), SS_OK);
        int any = 0;
        for (int v = 0; v < PV; v++) {
            any |= lab[v];
        }
        fg_patches += any;
        ck_assert(!dr.foreground || any);
    }
    ck_assert_int_gt(fg_patches, 0);
    ss_sampler_destroy(&s);
    ss_h5data_close(&d);
}
END_TEST

// The prefetch thread hands out exactly what ss_sampler_fill computes, in order and after jumps.
START_TEST(test_prefetch_matches_fill)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    ss_sampler_t *s = make_sampler(d, 7, 0.1f, 2, 6, 3, 0.5);
    ss_sampler_t *ref = make_sampler(d, 7, 0.1f, 2, 6, 0, 0.5);
    static float want[NC * 6 * PJ * PK];
    static uint8_t wl[NR * 6 * PJ * PK];
    uint64_t ks[] = {5, 6, 7, 8, 9, 10, 11, 100, 101, 102, 3, 4};
    for (size_t n = 0; n < sizeof(ks) / sizeof(ks[0]); n++) {
        const float *img;
        const uint8_t *lab;
        double waited = -1;
        ss_error_t err;
        ck_assert_int_eq(ss_sampler_next(s, ks[n], &img, &lab, &waited, &err), SS_OK);
        ck_assert(waited >= 0);
        ck_assert_int_eq(ss_sampler_next(ref, ks[n], &img == NULL ? NULL : &img, &lab, NULL, &err),
                         SS_OK);
        ck_assert_int_eq(ss_sampler_fill(ref, ks[n], want, wl, &err), SS_OK);
        const float *got;
        const uint8_t *gotl;
        // Asking again for the same k is a jump: the worker restarts there and gives it again.
        ck_assert_int_eq(ss_sampler_next(s, ks[n], &got, &gotl, NULL, &err), SS_OK);
        ck_assert_mem_eq(got, want, sizeof(want));
        ck_assert_mem_eq(gotl, wl, sizeof(wl));
    }
    ck_assert_int_eq(ss_sampler_nchan(s), NC);
    ck_assert_int_eq(ss_sampler_nlabel(s), NR);
    ss_sampler_destroy(&s);
    ss_sampler_destroy(&ref);
    ss_h5data_close(&d);
}
END_TEST

START_TEST(test_bad_config)
{
    ss_h5data_t *d = NULL;
    ck_assert_int_eq(ss_h5data_open(g_path, &d, NULL), SS_OK);
    ss_sampler_config_t c;
    ss_sampler_config_init(&c);
    c.slab_i0 = 100;
    ss_sampler_t *s = NULL;
    ss_error_t err;
    ck_assert_int_eq(ss_sampler_create(d, &c, &s, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "slab"));
    ck_assert_ptr_null(s);
    ss_sampler_config_init(&c);
    c.patch[1] = 0;
    ck_assert_int_eq(ss_sampler_create(d, &c, &s, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--patch"));
    ss_sampler_config_init(&c);
    c.rotate = 181;
    ck_assert_int_eq(ss_sampler_create(d, &c, &s, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "rotate"));
    ss_sampler_config_init(&c); // spatial draws cut from the cache: without it, say so
    c.patch[0] = c.patch[1] = c.patch[2] = 8;
    c.spatial_p = 0.5;
    ck_assert_int_eq(ss_sampler_create(d, &c, &s, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "data.cache_mb"));
    ck_assert_ptr_null(s);
    ss_sampler_destroy(&s); // NULL accepted
    ss_h5data_close(&d);
}
END_TEST

int main(void)
{
    if (make_file() != 0) {
        return EXIT_FAILURE;
    }
    Suite *su = suite_create("sampler");
    TCase *tc = tcase_create("tc_ss_sampler_fill");
    tcase_add_test(tc, test_patch_content);
    tcase_add_test(tc, test_flips_and_slabs);
    tcase_add_test(tc, test_rotations);
    tcase_add_test(tc, test_cache_matches_hdf5);
    tcase_add_test(tc, test_spatial_identity);
    tcase_add_test(tc, test_spatial_linear);
    tcase_add_test(tc, test_gamma);
    tcase_add_test(tc, test_foreground_oversampling);
    suite_add_tcase(su, tc);
    tc = tcase_create("tc_ss_sampler_next");
    tcase_add_test(tc, test_prefetch_matches_fill);
    suite_add_tcase(su, tc);
    tc = tcase_create("tc_ss_sampler_create");
    tcase_add_test(tc, test_bad_config);
    suite_add_tcase(su, tc);
    int rc = ss_test_run(su);
    remove_file();
    return rc;
}
