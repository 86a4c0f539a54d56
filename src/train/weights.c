// weights: HDF5 weights files (layout in weights.h and docs/models.md), plus the atomic-commit
// and attribute helpers that checkpoint.c shares through train_impl.h.
#include "shardseg/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <hdf5.h>

#include "train_impl.h"

// --- atomic files ------------------------------------------------------------------------------

ss_status_t ss__train_tmp_path(char *tmp, size_t len, const char *path, ss_error_t *err)
{
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    int n = snprintf(tmp, len, "%.*s.%s.tmp.%ld", dirlen, path, path + dirlen, (long)getpid());
    if (n < 0 || (size_t)n >= len) {
        SS_FAIL(err, SS_EINVAL, "%s: path too long; use a shorter output path", path);
    }
    return SS_OK;
}

ss_status_t ss__train_fsync_dir_of(const char *path, ss_error_t *err)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        SS_FAIL_LIB(err, SS_EIO, e, "%s: cannot sync the directory: %s; check the filesystem", dir,
                    strerror(e));
    }
    close(fd);
    return SS_OK;
}

ss_status_t ss__train_commit(const char *tmp, const char *path, ss_error_t *err)
{
    // fsync before rename: otherwise a crash can leave the new name pointing at a file whose
    // blocks never reached the disk (ext4/xfs delayed allocation).
    int fd = open(tmp, O_RDWR);
    int e = 0;
    if (fd < 0 || fsync(fd) != 0) {
        e = errno;
    }
    if (fd >= 0 && close(fd) != 0 && e == 0) {
        e = errno;
    }
    if (e == 0 && rename(tmp, path) != 0) {
        e = errno;
    }
    if (e != 0) {
        unlink(tmp);
        SS_FAIL_LIB(err, SS_EIO, e, "%s: cannot write: %s; check free space and permissions", path,
                    strerror(e));
    }
    return ss__train_fsync_dir_of(path, err);
}

int64_t ss__train_h5_estimate(int64_t data_bytes, int64_t ndatasets)
{
    // Chunk indexes and object headers take a few KiB per dataset; 1/64 covers chunk padding.
    return data_bytes + data_bytes / 64 + 16384 * ndatasets + 65536;
}

static ss_status_t too_big(
    const char *path, int64_t bytes, unsigned long long avail, const char *what, ss_error_t *err)
{
    SS_FAIL_LIB(err, SS_EIO, ENOSPC,
                "%s: needs about %.1f MiB but %s allows %.1f MiB; free "
                "space or choose another output directory",
                path, (double)bytes / 1048576.0, what, (double)avail / 1048576.0);
}

ss_status_t ss__train_space_check(const char *path, int64_t bytes, ss_error_t *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (unsigned long long)bytes > (unsigned long long)rl.rlim_cur) {
        return too_big(path, bytes, (unsigned long long)rl.rlim_cur, "the file size limit", err);
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    struct statvfs v;
    if (statvfs(dir, &v) == 0 &&
        (unsigned long long)v.f_bavail * v.f_frsize < (unsigned long long)bytes) {
        return too_big(path, bytes, (unsigned long long)v.f_bavail * v.f_frsize, "the file system",
                       err);
    }
    return SS_OK;
}

ss_status_t ss__train_reserve(const char *tmp, const char *path, int64_t bytes, ss_error_t *err)
{
    int fd = open(tmp, O_WRONLY);
    int rc = fd < 0 ? errno : posix_fallocate(fd, 0, (off_t)bytes);
    if (fd >= 0) {
        close(fd);
    }
    if (rc != 0 && rc != EINVAL && rc != EOPNOTSUPP) {
        SS_FAIL_LIB(err, SS_EIO, rc,
                    "%s: cannot reserve %lld MiB: %s; free space or choose "
                    "another output directory",
                    path, (long long)(bytes >> 20), strerror(rc));
    }
    return SS_OK;
}

void ss__train_h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static hid_t make_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
                      H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0)) {
        H5Pclose(fapl);
        fapl = -1;
    }
    return fapl;
}

hid_t ss__train_h5_create(const char *path)
{
    ss__train_h5_quiet();
    hid_t fapl = make_fapl();
    hid_t f = fapl >= 0 ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    if (fapl >= 0) {
        H5Pclose(fapl);
    }
    return f;
}

hid_t ss__train_h5_open(const char *path)
{
    ss__train_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        H5Pclose(fapl);
        fapl = -1;
    }
    hid_t f = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
    if (fapl >= 0) {
        H5Pclose(fapl);
    }
    return f;
}

hid_t ss__train_dcpl(int ndim, const hsize_t *dims, int checksum)
{
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    if (p < 0 || !checksum || ndim == 0) {
        return p; // a scalar dataspace cannot be chunked: it stays contiguous, unchecksummed
    }
    hsize_t chunk[8], slice = 1;
    for (int d = 0; d < ndim; d++) {
        chunk[d] = dims[d] > 0 ? dims[d] : 1;
        slice *= d > 0 ? chunk[d] : 1;
    }
    // Chunks stay far below HDF5's 4 GiB chunk limit and bound the read granularity.
    // Equal chunks: HDF5 stores an edge chunk at full size, so a 2^24 split of a 102M-element
    // optimizer vector would waste most of a chunk (~40 MB).
    hsize_t c0 = ((hsize_t)1 << 24) / slice;
    c0 = c0 < 1 ? 1 : c0;
    hsize_t nchunks = (chunk[0] + c0 - 1) / c0;
    chunk[0] = (chunk[0] + nchunks - 1) / nchunks;
    if (H5Pset_chunk(p, ndim, chunk) < 0 || H5Pset_fletcher32(p) < 0) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

// --- attributes --------------------------------------------------------------------------------

enum { A_I64, A_I64X3, A_FLAG, A_DBL };
enum { K_UNETR = 1, K_UNET = 2, K_BOTH = 3 };

typedef struct {
    const char *name;
    int type, kinds, required;
    size_t off;
} attr_def_t;

#define OFF(f) offsetof(ss_model_config_t, f)
static const attr_def_t g_attrs[] = {
    {"in_channels", A_I64, K_BOTH, 1, OFF(in_channels)},
    {"out_channels", A_I64, K_BOTH, 1, OFF(out_channels)},
    {"img_size", A_I64X3, K_BOTH, 1, OFF(img_size)},
    {"patch_size", A_I64X3, K_UNETR, 1, OFF(patch_size)},
    {"feature_size", A_I64, K_UNETR, 1, OFF(feature_size)},
    {"hidden_size", A_I64, K_UNETR, 1, OFF(hidden_size)},
    {"mlp_dim", A_I64, K_UNETR, 1, OFF(mlp_dim)},
    {"num_heads", A_I64, K_UNETR, 1, OFF(num_heads)},
    {"num_layers", A_I64, K_UNETR, 1, OFF(num_layers)},
    {"conv_block", A_FLAG, K_UNETR, 0, OFF(conv_block)},
    {"res_block", A_FLAG, K_UNETR, 0, OFF(res_block)},
    {"qkv_bias", A_FLAG, K_UNETR, 0, OFF(qkv_bias)},
    {"dropout_rate", A_DBL, K_UNETR, 0, OFF(dropout_rate)},
    {"depth", A_I64, K_UNET, 1, OFF(depth)},
    {"base_filters", A_I64, K_UNET, 1, OFF(base_filters)},
    {"convs_per_level", A_I64, K_UNET, 1, OFF(convs_per_level)},
};
#undef OFF
#define NATTRS ((int)(sizeof(g_attrs) / sizeof(g_attrs[0])))

static int kind_bit(ss_model_kind_t k)
{
    return k == SS_MODEL_UNET3D ? K_UNET : K_UNETR;
}

static int attr_put(hid_t loc, const char *name, hid_t mtype, hid_t ftype, int n, const void *buf)
{
    hsize_t d = (hsize_t)n;
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &d, NULL);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = a >= 0 && H5Awrite(a, mtype, buf) >= 0 ? 0 : -1;
    if (a >= 0) {
        H5Aclose(a);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    return rc;
}

static int attr_put_str(hid_t loc, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    int rc = -1;
    if (t >= 0 && H5Tset_size(t, strlen(s) + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0 &&
        H5Tset_cset(t, H5T_CSET_ASCII) >= 0) {
        rc = attr_put(loc, name, t, t, 0, s);
    }
    if (t >= 0) {
        H5Tclose(t);
    }
    return rc;
}

// Attribute readers: 0 on success, -1 when absent, -2 when of the wrong type or size.
static int attr_open(hid_t loc, const char *name, hid_t *a, hid_t *t, hssize_t *np)
{
    if (H5Aexists(loc, name) <= 0) {
        return -1;
    }
    *a = H5Aopen(loc, name, H5P_DEFAULT);
    *t = *a >= 0 ? H5Aget_type(*a) : -1;
    hid_t s = *a >= 0 ? H5Aget_space(*a) : -1;
    *np = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    if (s >= 0) {
        H5Sclose(s);
    }
    return *t >= 0 ? 0 : -2;
}

static void attr_close(hid_t a, hid_t t)
{
    if (t >= 0) {
        H5Tclose(t);
    }
    if (a >= 0) {
        H5Aclose(a);
    }
}

// Integers (any width; numpy bools are HDF5 enums over int8), n == 1 or 3; a single value is
// accepted for n == 3 (a cube, as MONAI accepts img_size=96).
static int attr_get_ints(hid_t loc, const char *name, int64_t *v, int n)
{
    hid_t a = -1, t = -1;
    hssize_t np = 0;
    int rc = attr_open(loc, name, &a, &t, &np);
    int64_t buf[3] = {0, 0, 0};
    if (rc == 0) {
        H5T_class_t cl = H5Tget_class(t);
        rc = -2;
        if ((np == 1 || np == n) && cl == H5T_INTEGER) {
            rc = H5Aread(a, H5T_NATIVE_INT64, buf) >= 0 ? 0 : -2;
        } else if ((np == 1 || np == n) && cl == H5T_ENUM && H5Tget_size(t) <= 8) {
            hid_t nt = H5Tget_native_type(t, H5T_DIR_ASCEND);
            hid_t base = nt >= 0 ? H5Tget_super(nt) : -1;
            if (base >= 0 && H5Aread(a, nt, buf) >= 0 &&
                H5Tconvert(base, H5T_NATIVE_INT64, (size_t)np, buf, NULL, H5P_DEFAULT) >= 0) {
                rc = 0;
            }
            if (base >= 0) {
                H5Tclose(base);
            }
            if (nt >= 0) {
                H5Tclose(nt);
            }
        }
    }
    attr_close(a, t);
    for (int i = 0; rc == 0 && i < n; i++) {
        v[i] = buf[np == 1 ? 0 : i];
    }
    return rc;
}

static int attr_get_double(hid_t loc, const char *name, double *v)
{
    hid_t a = -1, t = -1;
    hssize_t np = 0;
    int rc = attr_open(loc, name, &a, &t, &np);
    if (rc == 0) {
        H5T_class_t cl = H5Tget_class(t);
        rc = np == 1 && (cl == H5T_FLOAT || cl == H5T_INTEGER) &&
                     H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0
                 ? 0
                 : -2;
    }
    attr_close(a, t);
    return rc;
}

// Fixed-length (any padding) or variable-length strings, as h5py writes str attributes.
static int attr_get_str(hid_t loc, const char *name, char *out, size_t len)
{
    hid_t a = -1, t = -1;
    hssize_t np = 0;
    int rc = attr_open(loc, name, &a, &t, &np);
    if (rc == 0) {
        rc = -2;
        if (np == 1 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0) {
            char *p = NULL;
            hid_t mt = H5Tcopy(t);
            if (mt >= 0 && H5Aread(a, mt, &p) >= 0 && p != NULL && strlen(p) < len) {
                snprintf(out, len, "%s", p);
                rc = 0;
            }
            H5free_memory(p);
            if (mt >= 0) {
                H5Tclose(mt);
            }
        } else if (np == 1 && H5Tget_class(t) == H5T_STRING && H5Tget_size(t) < len) {
            memset(out, 0, len);
            rc = H5Aread(a, t, out) >= 0 ? 0 : -2;
        }
    }
    attr_close(a, t);
    return rc;
}

ss_status_t
ss__weights_write_config(hid_t loc, const ss_model_config_t *c, const char *path, ss_error_t *err)
{
    int bit = kind_bit(c->kind);
    int rc = attr_put_str(loc, "model", ss_model_kind_name(c->kind));
    const char *norm = c->norm == SS_MODEL_NORM_BATCH ? "batch" : "instance";
    rc |= attr_put_str(loc, "norm_name", norm);
    if (bit == K_UNETR) {
        rc |= attr_put_str(loc, "proj_type", "conv");
    }
    for (int i = 0; i < NATTRS; i++) {
        const attr_def_t *d = &g_attrs[i];
        const char *p = (const char *)c + d->off;
        if (!(d->kinds & bit)) {
            continue;
        }
        if (d->type == A_I64 || d->type == A_I64X3) {
            rc |= attr_put(loc, d->name, H5T_NATIVE_INT64, H5T_STD_I64LE, d->type == A_I64 ? 0 : 3,
                           p);
        } else if (d->type == A_FLAG) {
            int64_t v = *(const int *)(const void *)p;
            rc |= attr_put(loc, d->name, H5T_NATIVE_INT64, H5T_STD_I64LE, 0, &v);
        } else {
            rc |= attr_put(loc, d->name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 0, p);
        }
    }
    if (rc != 0) {
        SS_FAIL(err, SS_EHDF5, "%s: cannot write the model attributes; check free space", path);
    }
    return SS_OK;
}

static ss_status_t read_strings(hid_t loc, ss_model_config_t *c, const char *path, ss_error_t *err)
{
    char s[64];
    int rc = attr_get_str(loc, "norm_name", s, sizeof(s));
    if (rc == -2 || (rc == 0 && strcmp(s, "instance") != 0 &&
                     (c->kind == SS_MODEL_UNETR || strcmp(s, "batch") != 0))) {
        SS_FAIL(err, SS_EFORMAT, "%s: attribute norm_name is not %s; only those are built", path,
                c->kind == SS_MODEL_UNETR ? "\"instance\"" : "\"instance\" or \"batch\"");
    }
    c->norm = rc == 0 && strcmp(s, "batch") == 0 ? SS_MODEL_NORM_BATCH : SS_MODEL_NORM_INSTANCE;
    rc = c->kind == SS_MODEL_UNETR ? attr_get_str(loc, "proj_type", s, sizeof(s)) : -1;
    if (rc == -2 || (rc == 0 && strcmp(s, "conv") != 0)) {
        SS_FAIL(err, SS_EFORMAT,
                "%s: attribute proj_type is not \"conv\"; only MONAI's conv patch embedding "
                "is built",
                path);
    }
    return SS_OK;
}

ss_status_t
ss__weights_read_config(hid_t loc, ss_model_config_t *c, const char *path, ss_error_t *err)
{
    char kind[64];
    int rc = attr_get_str(loc, "model", kind, sizeof(kind));
    if (rc != 0) {
        SS_FAIL(err, SS_EFORMAT,
                "%s: attribute model %s; store \"unetr\" or \"unet3d\" (docs/models.md)", path,
                rc == -1 ? "missing" : "is not a string");
    }
    ss_model_kind_t k;
    if (ss_model_kind_parse(kind, "model", &k, err) != SS_OK) {
        return ss_error_prefix(err, "%s: attribute", path);
    }
    ss_model_config_default(c, k);
    for (int i = 0; i < NATTRS; i++) {
        const attr_def_t *d = &g_attrs[i];
        char *p = (char *)c + d->off;
        if (!(d->kinds & kind_bit(k))) {
            continue;
        }
        int64_t v[3];
        if (d->type == A_DBL) {
            rc = attr_get_double(loc, d->name, (double *)(void *)p);
        } else {
            rc = attr_get_ints(loc, d->name, v, d->type == A_I64X3 ? 3 : 1);
        }
        if (rc == -1 && !d->required) {
            continue;
        }
        if (rc != 0) {
            SS_FAIL(err, SS_EFORMAT,
                    "%s: attribute %s %s; write the model hyper-parameters as root attributes "
                    "(docs/models.md)",
                    path, d->name,
                    rc == -1             ? "missing"
                    : d->type == A_DBL   ? "is not a number"
                    : d->type == A_I64X3 ? "is not 1 or 3 integers"
                                         : "is not an integer scalar");
        }
        if (d->type == A_FLAG) {
            *(int *)(void *)p = (int)v[0];
        } else if (d->type != A_DBL) {
            memcpy(p, v, (d->type == A_I64X3 ? 3 : 1) * sizeof(int64_t));
        }
    }
    return read_strings(loc, c, path, err);
}

static void attr_format(const ss_model_config_t *c, const attr_def_t *d, char *buf, size_t len)
{
    const char *p = (const char *)c + d->off;
    const int64_t *v = (const int64_t *)(const void *)p;
    if (d->type == A_I64) {
        snprintf(buf, len, "%lld", (long long)v[0]);
    } else if (d->type == A_I64X3) {
        snprintf(buf, len, "%lldx%lldx%lld", (long long)v[0], (long long)v[1], (long long)v[2]);
    } else if (d->type == A_FLAG) {
        snprintf(buf, len, "%d", *(const int *)(const void *)p);
    } else {
        snprintf(buf, len, "%.17g", *(const double *)(const void *)p);
    }
}

ss_status_t ss__weights_compare(const ss_model_config_t *file,
                                const ss_model_config_t *run,
                                const char *path,
                                const char *fix,
                                ss_error_t *err)
{
    if (file->kind != run->kind) {
        SS_FAIL(err, SS_EINVAL, "%s: model is %s in the file but %s in this run; %s", path,
                ss_model_kind_name(file->kind), ss_model_kind_name(run->kind), fix);
    }
    if (file->norm != run->norm) {
        SS_FAIL(err, SS_EINVAL, "%s: norm_name is %s in the file but %s in this run; %s", path,
                file->norm == SS_MODEL_NORM_BATCH ? "batch" : "instance",
                run->norm == SS_MODEL_NORM_BATCH ? "batch" : "instance", fix);
    }
    for (int i = 0; i < NATTRS; i++) {
        const attr_def_t *d = &g_attrs[i];
        char a[80], b[80];
        if (!(d->kinds & kind_bit(file->kind))) {
            continue;
        }
        attr_format(file, d, a, sizeof(a));
        attr_format(run, d, b, sizeof(b));
        if (strcmp(a, b) != 0) {
            SS_FAIL(err, SS_EINVAL, "%s: %s is %s in the file but %s in this run; %s", path,
                    d->name, a, b, fix);
        }
    }
    return SS_OK;
}

// --- parameters --------------------------------------------------------------------------------

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && o < len; d++) {
        o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    }
    if (o < len) {
        snprintf(buf + o, len - o, "]");
    }
}

static ss_status_t write_param(hid_t f,
                               const ss_param_t *p,
                               const float *data,
                               int checksum,
                               const char *path,
                               ss_error_t *err)
{
    hsize_t dims[5];
    for (int d = 0; d < p->ndim; d++) {
        dims[d] = (hsize_t)p->shape[d];
    }
    hid_t sp = p->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(p->ndim, dims, NULL);
    hid_t dcpl = ss__train_dcpl(p->ndim, dims, checksum);
    hid_t ds = sp >= 0 && dcpl >= 0
                   ? H5Dcreate2(f, p->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                   : -1;
    int ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    ok = (ds < 0 || H5Dclose(ds) >= 0) && ok;
    if (dcpl >= 0) {
        H5Pclose(dcpl);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (!ok) {
        SS_FAIL(err, SS_EIO, "%s: cannot write parameter %s; check free space", path, p->name);
    }
    return SS_OK;
}

ss_status_t ss__weights_write_params(
    hid_t f, const ss_model_t *m, int checksum, const char *path, ss_error_t *err)
{
    const float *w = ss_model_weights(m);
    for (int i = 0; i < ss_model_param_count(m); i++) {
        const ss_param_t *p = ss_model_param(m, i);
        SS_TRY(write_param(f, p, w + p->offset, checksum, path, err));
    }
    return SS_OK;
}

int ss__train_h5_child(hid_t g, hsize_t i, char *name, size_t len)
{
    ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, len, H5P_DEFAULT);
    return n >= 0 && (size_t)n < len ? 0 : -1;
}

int ss__train_h5_is_dataset(hid_t g, const char *name)
{
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    int yes = o >= 0 && H5Iget_type(o) == H5I_DATASET;
    if (o >= 0) {
        H5Oclose(o);
    }
    return yes;
}

// The first root link named "<prefix>.<want>" (e.g. "module." + want): its prefix in *prefix.
static int find_prefixed(hid_t f, const char *want, char *prefix, size_t len)
{
    H5G_info_t gi;
    size_t w = strlen(want);
    char name[512];
    for (hsize_t i = 0; H5Gget_info(f, &gi) >= 0 && i < gi.nlinks; i++) {
        size_t n = ss__train_h5_child(f, i, name, sizeof(name)) == 0 ? strlen(name) : 0;
        if (n > w && name[n - w - 1] == '.' && strcmp(name + n - w, want) == 0) {
            snprintf(prefix, len, "%.*s", (int)(n - w), name);
            return 1;
        }
    }
    return 0;
}

static ss_status_t missing_param(hid_t f, const ss_param_t *p, const char *path, ss_error_t *err)
{
    char prefix[512];
    if (find_prefixed(f, p->name, prefix, sizeof(prefix))) {
        SS_FAIL(err, SS_EFORMAT,
                "%s: parameter %s is missing but %s%s exists; strip the prefix '%s' from the "
                "state_dict keys (e.g. a DataParallel 'module.') before exporting",
                path, p->name, prefix, p->name, prefix);
    }
    SS_FAIL(err, SS_EFORMAT,
            "%s: parameter %s is missing; the file does not hold this network's weights "
            "(check model and sizes)",
            path, p->name);
}

// Root datasets that are not parameters of m: how many, and the first one's name.
static int count_unexpected(hid_t f, const ss_model_t *m, char *first, size_t len)
{
    H5G_info_t gi;
    char name[512];
    int count = 0;
    for (hsize_t i = 0; H5Gget_info(f, &gi) >= 0 && i < gi.nlinks; i++) {
        if (ss__train_h5_child(f, i, name, sizeof(name)) != 0 ||
            ss_model_param_find(m, name) >= 0 || !ss__train_h5_is_dataset(f, name)) {
            continue;
        }
        if (count++ == 0) {
            snprintf(first, len, "%s", name);
        }
    }
    return count;
}

static ss_status_t
read_param(hid_t f, const ss_param_t *p, float *dst, const char *path, ss_error_t *err)
{
    if (H5Lexists(f, p->name, H5P_DEFAULT) <= 0) {
        return missing_param(f, p, path, err);
    }
    hid_t ds = H5Dopen2(f, p->name, H5P_DEFAULT);
    hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1, t = ds >= 0 ? H5Dget_type(ds) : -1;
    hsize_t dims[8] = {0};
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    H5T_class_t cl = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int64_t found[8];
    int shape_ok = nd == p->ndim;
    if (nd >= 0 && nd <= 8) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
    }
    for (int d = 0; d < nd && d < 8; d++) {
        found[d] = (int64_t)dims[d];
        shape_ok = shape_ok && found[d] == p->shape[d];
    }
    int type_ok = cl == H5T_FLOAT || (cl == H5T_INTEGER && !p->trainable);
    int read_ok = ds >= 0 && shape_ok && type_ok &&
                  H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) >= 0;
    if (t >= 0) {
        H5Tclose(t);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (ds >= 0) {
        H5Dclose(ds);
    }
    if (ds < 0 || nd < 0 || nd > 8) {
        SS_FAIL(err, SS_EFORMAT, "%s: %s is not a readable dataset; the file is damaged", path,
                p->name);
    }
    if (!shape_ok) {
        char a[96], b[96];
        shape_str(a, sizeof(a), p->ndim, p->shape);
        shape_str(b, sizeof(b), nd, found);
        SS_FAIL(
            err, SS_ESHAPE,
            "%s: parameter %s has shape %s in the file, the model expects %s; the file was made "
            "for another configuration",
            path, p->name, b, a);
    }
    if (!type_ok) {
        SS_FAIL(err, SS_EFORMAT,
                "%s: parameter %s is not a float dataset; store float32 or float64", path, p->name);
    }
    if (!read_ok) {
        SS_FAIL(
            err, SS_EFORMAT,
            "%s: parameter %s cannot be read (checksum mismatch or truncated file); the file is "
            "corrupt, use another copy",
            path, p->name);
    }
    return SS_OK;
}

ss_status_t
ss__weights_read_params(hid_t f, ss_model_t *m, int strict, const char *path, ss_error_t *err)
{
    float *w = ss_model_weights(m);
    for (int i = 0; i < ss_model_param_count(m); i++) {
        const ss_param_t *p = ss_model_param(m, i);
        SS_TRY(read_param(f, p, w + p->offset, path, err));
    }
    if (strict) {
        char first[512];
        int n = count_unexpected(f, m, first, sizeof(first));
        if (n > 0) {
            SS_FAIL(err, SS_EFORMAT,
                    "%s: dataset %s is not a parameter of this network (%d unexpected datasets); "
                    "check the state_dict's names (prefixes such as 'module.')",
                    path, first, n);
        }
    }
    return SS_OK;
}

// --- public API --------------------------------------------------------------------------------

ss_status_t ss_weights_read_config(const char *path, ss_model_config_t *cfg, ss_error_t *err)
{
    hid_t f = ss__train_h5_open(path);
    if (f < 0) {
        SS_FAIL(err, SS_EIO, "%s: cannot open as HDF5; check the path (a weights file is .h5)",
                path);
    }
    ss_status_t st = ss__weights_read_config(f, cfg, path, err);
    H5Fclose(f);
    if (st == SS_OK && ss_model_config_validate(cfg, err) != SS_OK) {
        return ss_error_prefix(err, "%s", path);
    }
    return st;
}

static ss_status_t load(const char *path, ss_model_t *m, int strict, ss_error_t *err)
{
    ss_model_config_t c;
    hid_t f = ss__train_h5_open(path);
    if (f < 0) {
        SS_FAIL(err, SS_EIO, "%s: cannot open as HDF5; check the path (a weights file is .h5)",
                path);
    }
    ss_status_t st = ss__weights_read_config(f, &c, path, err);
    if (st == SS_OK) {
        st = ss__weights_compare(&c, ss_model_config(m), path,
                                 "build the model from the file's attributes", err);
    }
    if (st == SS_OK) {
        st = ss__weights_read_params(f, m, strict, path, err);
    }
    H5Fclose(f);
    return st;
}

ss_status_t ss_weights_load(const char *path, ss_model_t *m, ss_error_t *err)
{
    return load(path, m, 0, err);
}

ss_status_t ss_weights_load_strict(const char *path, ss_model_t *m, ss_error_t *err)
{
    return load(path, m, 1, err);
}

ss_status_t ss_weights_save(const char *path, const ss_model_t *m, ss_error_t *err)
{
    char tmp[4096];
    SS_TRY(ss__train_tmp_path(tmp, sizeof(tmp), path, err));
    int64_t est =
        ss__train_h5_estimate(ss_model_numel(m) * (int64_t)sizeof(float), ss_model_param_count(m));
    SS_TRY(ss__train_space_check(path, est, err));
    hid_t f = ss__train_h5_create(tmp);
    if (f < 0) {
        int e = errno;
        SS_FAIL_LIB(err, SS_EIO, e,
                    "%s: cannot create: %s; check that the directory exists and is "
                    "writable",
                    path, strerror(e));
    }
    ss_status_t st = ss__train_reserve(tmp, path, est, err);
    if (st == SS_OK) {
        st = ss__weights_write_config(f, ss_model_config(m), path, err);
    }
    if (st == SS_OK) {
        st = ss__weights_write_params(f, m, 0, path, err);
    }
    if (H5Fclose(f) < 0 && st == SS_OK) {
        st = ss_error_set(err, SS_EIO, 0, __FILE__, __LINE__, __func__,
                          "%s: cannot finish writing; check free space", path);
    }
    if (st != SS_OK) {
        unlink(tmp);
        return st;
    }
    return ss__train_commit(tmp, path, err);
}
