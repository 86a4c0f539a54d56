// check_weights: weights files: bit-exact round trip for a UNETR and a BatchNorm U-Net, the
// h5py encodings the reader must accept (int32, numpy-bool enums, variable-length strings,
// float64 datasets, a scalar img_size), and the one-line errors for missing/ill-typed attributes,
// missing parameters (with the 'module.' hint), wrong shapes, a configuration mismatch, strict
// mode, and an unwritable destination (no partial output).
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "shardseg/weights.h"

#include "testutil.h"

static char g_tmp[256];

static void setup(void)
{
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/ss_weights_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_tmp));
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
    ck_assert_int_eq(system(cmd), 0);
}

static void tiny_unet(ss_model_config_t *c, int64_t base)
{
    ss_model_config_default(c, SS_MODEL_UNET3D);
    c->in_channels = 2;
    c->out_channels = 3;
    c->img_size[0] = c->img_size[1] = c->img_size[2] = 8;
    c->depth = 2;
    c->base_filters = base;
    c->convs_per_level = 1;
    c->norm = SS_MODEL_NORM_BATCH; // running stats + a 0-d num_batches_tracked buffer
}

static void tiny_unetr(ss_model_config_t *c)
{
    ss_model_config_default(c, SS_MODEL_UNETR);
    c->in_channels = 1;
    c->out_channels = 2;
    for (int d = 0; d < 3; d++) {
        c->img_size[d] = 16;
        c->patch_size[d] = 8;
    }
    c->feature_size = 4;
    c->hidden_size = 16;
    c->mlp_dim = 32;
    c->num_heads = 2;
    c->num_layers = 4;
    c->qkv_bias = 1;
}

static ss_model_t *make(const ss_model_config_t *c, uint64_t seed)
{
    ss_model_plan_t p = {1, 0, c->img_size[0], 0, 1, NULL};
    ss_model_t *m = NULL;
    ss_error_t err;
    ck_assert_msg(ss_model_create(&m, c, &p, NULL, &err) == SS_OK, "%s", err.msg);
    if (seed != 0) {
        ck_assert_int_eq(ss_model_init_weights(m, seed, &err), SS_OK);
    }
    return m;
}

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_tmp, name);
}

// Number of directory entries besides . and .. (temp files included).
static int dir_entries(void)
{
    DIR *d = opendir(g_tmp);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    }
    closedir(d);
    return n;
}

static void round_trip(const ss_model_config_t *c)
{
    char path[300];
    ss_error_t err;
    path_in(path, sizeof(path), "w.h5");
    ss_model_t *a = make(c, 7), *b = make(c, 0);
    ck_assert_msg(ss_weights_save(path, a, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(dir_entries(), 1);
    ss_model_config_t rc;
    ck_assert_msg(ss_weights_read_config(path, &rc, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(memcmp(&rc, c, sizeof(rc)), 0);
    ck_assert_msg(ss_weights_load_strict(path, b, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(
        memcmp(ss_model_weights(a), ss_model_weights(b), (size_t)ss_model_numel(a) * sizeof(float)),
        0);
    ss_model_destroy(&a);
    ss_model_destroy(&b);
}

START_TEST(test_round_trip)
{
    ss_model_config_t c;
    tiny_unet(&c, 2);
    round_trip(&c);
    tiny_unetr(&c);
    round_trip(&c);
}
END_TEST

START_TEST(test_save_unwritable)
{
    ss_model_config_t c;
    tiny_unet(&c, 2);
    ss_model_t *m = make(&c, 1);
    char path[300];
    ss_error_t err;
    path_in(path, sizeof(path), "nodir/w.h5");
    ck_assert_int_eq(ss_weights_save(path, m, &err), SS_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "nodir/w.h5"));
    ck_assert_int_eq(dir_entries(), 0);
    ss_model_destroy(&m);
}
END_TEST

// --- h5py-style files ---------------------------------------------------------------------------

static void put(hid_t f, const char *name, hid_t type, int n, const void *v)
{
    hsize_t d = (hsize_t)n;
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &d, NULL);
    hid_t a = H5Acreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Awrite(a, type, v), 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void put_vstr(hid_t f, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    put(f, name, t, 0, &s);
    H5Tclose(t);
}

// The attributes as h5py writes them from Python values: str -> variable-length UTF-8,
// int -> int64 (int32 here, as numpy.int32 values give), bool -> enum over int8, img_size=16.
static hid_t h5py_like(const char *path, int skip_hidden, int hidden_as_string)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int32_t one = 1, two = 2, four = 4, sixteen = 16, p8[3] = {8, 8, 8}, mlp = 32;
    double dr = 0.0;
    put_vstr(f, "model", "unetr");
    put_vstr(f, "proj_type", "conv");
    put_vstr(f, "norm_name", "instance");
    put(f, "in_channels", H5T_NATIVE_INT32, 0, &one);
    put(f, "out_channels", H5T_NATIVE_INT32, 0, &two);
    put(f, "img_size", H5T_NATIVE_INT32, 0, &sixteen);
    put(f, "patch_size", H5T_NATIVE_INT32, 3, p8);
    put(f, "feature_size", H5T_NATIVE_INT32, 0, &four);
    if (hidden_as_string) {
        put_vstr(f, "hidden_size", "16");
    } else if (!skip_hidden) {
        put(f, "hidden_size", H5T_NATIVE_INT32, 0, &sixteen);
    }
    put(f, "mlp_dim", H5T_NATIVE_INT32, 0, &mlp);
    put(f, "num_heads", H5T_NATIVE_INT32, 0, &two);
    put(f, "num_layers", H5T_NATIVE_INT32, 0, &four);
    put(f, "dropout_rate", H5T_NATIVE_DOUBLE, 0, &dr);
    hid_t e = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t no = 0, yes = 1;
    H5Tenum_insert(e, "FALSE", &no);
    H5Tenum_insert(e, "TRUE", &yes);
    put(f, "qkv_bias", e, 0, &yes);
    H5Tclose(e);
    return f;
}

START_TEST(test_read_config_h5py)
{
    char path[300];
    ss_error_t err;
    path_in(path, sizeof(path), "py.h5");
    H5Fclose(h5py_like(path, 0, 0));
    ss_model_config_t c, want;
    ck_assert_msg(ss_weights_read_config(path, &c, &err) == SS_OK, "%s", err.msg);
    tiny_unetr(&want);
    ck_assert_int_eq(memcmp(&c, &want, sizeof(c)), 0);

    H5Fclose(h5py_like(path, 1, 0));
    ck_assert_int_eq(ss_weights_read_config(path, &c, &err), SS_EFORMAT);
    ck_assert_msg(strstr(err.msg, "py.h5: attribute hidden_size missing;") != NULL, "%s", err.msg);
    H5Fclose(h5py_like(path, 0, 1));
    ck_assert_int_eq(ss_weights_read_config(path, &c, &err), SS_EFORMAT);
    ck_assert_msg(strstr(err.msg, "attribute hidden_size is not an integer") != NULL, "%s",
                  err.msg);
    path_in(path, sizeof(path), "absent.h5");
    ck_assert_int_eq(ss_weights_read_config(path, &c, &err), SS_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "absent.h5"));
}
END_TEST

// A file holding m's weights in float64 (as torch.float64 state_dicts export) loads exactly.
START_TEST(test_load_float64)
{
    ss_model_config_t c;
    tiny_unetr(&c);
    ss_model_t *a = make(&c, 3), *b = make(&c, 0);
    char path[300];
    ss_error_t err;
    path_in(path, sizeof(path), "py.h5");
    hid_t f = h5py_like(path, 0, 0);
    const float *w = ss_model_weights(a);
    for (int i = 0; i < ss_model_param_count(a); i++) {
        const ss_param_t *p = ss_model_param(a, i);
        hsize_t dims[5];
        double *v = malloc((size_t)p->numel * sizeof(double));
        for (int d = 0; d < p->ndim; d++) {
            dims[d] = (hsize_t)p->shape[d];
        }
        for (int64_t k = 0; k < p->numel; k++) {
            v[k] = w[p->offset + k];
        }
        hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
        hid_t ds =
            H5Dcreate2(f, p->name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
        H5Dclose(ds);
        H5Sclose(sp);
        free(v);
    }
    H5Fclose(f);
    ck_assert_msg(ss_weights_load(path, b, &err) == SS_OK, "%s", err.msg);
    ck_assert_int_eq(memcmp(w, ss_model_weights(b), (size_t)ss_model_numel(a) * sizeof(float)), 0);
    ss_model_destroy(&a);
    ss_model_destroy(&b);
}
END_TEST

static void saved(ss_model_t **m, char *path, size_t len)
{
    ss_model_config_t c;
    ss_error_t err;
    tiny_unet(&c, 2);
    *m = make(&c, 5);
    path_in(path, len, "w.h5");
    ck_assert_msg(ss_weights_save(path, *m, &err) == SS_OK, "%s", err.msg);
}

START_TEST(test_load_errors)
{
    ss_model_t *m;
    char path[300];
    ss_error_t err;
    saved(&m, path, sizeof(path));
    const char *victim = ss_model_param(m, 0)->name;
    char moved[200];
    snprintf(moved, sizeof(moved), "module.%s", victim);

    // Config mismatch names the attribute.
    ss_model_config_t c;
    tiny_unet(&c, 4);
    ss_model_t *other = make(&c, 0);
    ck_assert_int_eq(ss_weights_load(path, other, &err), SS_EINVAL);
    ck_assert_msg(strstr(err.msg, "base_filters is 2 in the file but 4 in this run") != NULL, "%s",
                  err.msg);
    ss_model_destroy(&other);

    // Extra dataset: ignored, except in strict mode.
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(H5Lcopy(f, victim, f, moved, H5P_DEFAULT, H5P_DEFAULT), 0);
    H5Fclose(f);
    ck_assert_int_eq(ss_weights_load(path, m, &err), SS_OK);
    ck_assert_int_eq(ss_weights_load_strict(path, m, &err), SS_EFORMAT);
    ck_assert_msg(strstr(err.msg, moved) != NULL, "%s", err.msg);

    // Missing parameter, with the prefix hint.
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(H5Ldelete(f, victim, H5P_DEFAULT), 0);
    H5Fclose(f);
    ck_assert_int_eq(ss_weights_load(path, m, &err), SS_EFORMAT);
    ck_assert_msg(strstr(err.msg, "is missing but module.") && strstr(err.msg, "'module.'"), "%s",
                  err.msg);

    // Wrong shape.
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t d = 3;
    float z[3] = {0, 0, 0};
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(f, victim, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    ck_assert_int_eq(ss_weights_load(path, m, &err), SS_ESHAPE);
    ck_assert_msg(strstr(err.msg, "has shape [3] in the file, the model expects [") != NULL, "%s",
                  err.msg);
    ss_model_destroy(&m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("weights");
    TCase *t = tcase_create("tc_ss_weights_save");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_round_trip);
    tcase_add_test(t, test_save_unwritable);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_weights_read_config");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_read_config_h5py);
    suite_add_tcase(s, t);
    t = tcase_create("tc_ss_weights_load");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_load_float64);
    tcase_add_test(t, test_load_errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ss_test_run(suite());
}
