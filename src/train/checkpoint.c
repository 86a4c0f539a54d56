// checkpoint: HDF5 training checkpoints (layout and guarantees in checkpoint.h).
#include "shardseg/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "train_impl.h"

#define CKPT_FIX "resume with the run's original [model] settings, or use a new output directory"

void ss_ckpt_state_init(ss_ckpt_state_t *s)
{
    memset(s, 0, sizeof(*s));
    ss_step_config_default(&s->opt);
    s->best_metric = NAN;
    s->best_step = -1;
}

void ss_ckpt_state_fini(ss_ckpt_state_t *s)
{
    free(s->config);
    s->config = NULL;
}

int ss_ckpt_optim_count(ss_optim_kind_t k, double sgd_momentum)
{
    return k == SS_OPTIM_SGD ? (sgd_momentum > 0 ? 1 : 0) : 2;
}

const char *ss_ckpt_optim_name(ss_optim_kind_t k, int i)
{
    if (k == SS_OPTIM_SGD) {
        return i == 0 ? "momentum_buffer" : NULL;
    }
    return i == 0 ? "exp_avg" : i == 1 ? "exp_avg_sq" : NULL;
}

// --- /state attributes -------------------------------------------------------------------------

enum { S_I64, S_U64, S_DBL, S_INT };

typedef struct {
    const char *name;
    int type;
    size_t off;
} state_def_t;

#define SO(f) offsetof(ss_ckpt_state_t, f)
static const state_def_t g_state[] = {
    {"step", S_I64, SO(step)},
    {"epoch", S_I64, SO(epoch)},
    {"seed", S_U64, SO(seed)},
    {"best_metric", S_DBL, SO(best_metric)},
    {"best_step", S_I64, SO(best_step)},
    {"adam.beta1", S_DBL, SO(opt.adam.beta1)},
    {"adam.beta2", S_DBL, SO(opt.adam.beta2)},
    {"adam.eps", S_DBL, SO(opt.adam.eps)},
    {"adam.weight_decay", S_DBL, SO(opt.adam.weight_decay)},
    {"sgd.momentum", S_DBL, SO(opt.sgd.momentum)},
    {"sgd.dampening", S_DBL, SO(opt.sgd.dampening)},
    {"sgd.weight_decay", S_DBL, SO(opt.sgd.weight_decay)},
    {"sgd.nesterov", S_INT, SO(opt.sgd.nesterov)},
    {"lr.kind", S_INT, SO(opt.lr.kind)},
    {"lr.lr0", S_DBL, SO(opt.lr.lr0)},
    {"lr.step_size", S_I64, SO(opt.lr.step_size)},
    {"lr.gamma", S_DBL, SO(opt.lr.gamma)},
    {"lr.t_max", S_I64, SO(opt.lr.t_max)},
    {"lr.eta_min", S_DBL, SO(opt.lr.eta_min)},
    {"lr.power", S_DBL, SO(opt.lr.power)},
    {"lr.warmup_steps", S_I64, SO(opt.lr.warmup_steps)},
    {"lr.warmup_start_factor", S_DBL, SO(opt.lr.warmup_start_factor)},
    {"clip_norm", S_DBL, SO(opt.clip_norm)},
    {"loss.act", S_INT, SO(opt.loss.act)},
    {"loss.include_background", S_INT, SO(opt.loss.include_background)},
    {"loss.squared_pred", S_INT, SO(opt.loss.squared_pred)},
    {"loss.batch", S_INT, SO(opt.loss.batch)},
    {"loss.smooth_nr", S_DBL, SO(opt.loss.smooth_nr)},
    {"loss.smooth_dr", S_DBL, SO(opt.loss.smooth_dr)},
    {"loss.lambda_dice", S_DBL, SO(opt.loss.lambda_dice)},
    {"loss.lambda_ce", S_DBL, SO(opt.loss.lambda_ce)},
    {"loss.ignore_index", S_DBL, SO(opt.loss.ignore_index)},
};
#undef SO
#define NSTATE ((int)(sizeof(g_state) / sizeof(g_state[0])))

static int put_attr(hid_t loc, const char *name, hid_t mt, hid_t ft, hsize_t n, const void *buf)
{
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = a >= 0 && H5Awrite(a, mt, buf) >= 0 ? 0 : -1;
    if (a >= 0) {
        H5Aclose(a);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    return rc;
}

static int put_str(hid_t loc, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    int rc = t >= 0 && H5Tset_size(t, strlen(s) + 1) >= 0 ? put_attr(loc, name, t, t, 0, s) : -1;
    if (t >= 0) {
        H5Tclose(t);
    }
    return rc;
}

static int write_state(hid_t g, const ss_ckpt_state_t *st)
{
    int rc = 0;
    for (int i = 0; i < NSTATE; i++) {
        const char *p = (const char *)st + g_state[i].off;
        int64_t v;
        switch (g_state[i].type) {
        case S_I64:
            rc |= put_attr(g, g_state[i].name, H5T_NATIVE_INT64, H5T_STD_I64LE, 0, p);
            break;
        case S_U64:
            rc |= put_attr(g, g_state[i].name, H5T_NATIVE_UINT64, H5T_STD_U64LE, 0, p);
            break;
        case S_DBL:
            rc |= put_attr(g, g_state[i].name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 0, p);
            break;
        default:
            v = *(const int *)(const void *)p;
            rc |= put_attr(g, g_state[i].name, H5T_NATIVE_INT64, H5T_STD_I64LE, 0, &v);
        }
    }
    int64_t ver = SS_CKPT_FORMAT_VERSION;
    rc |= put_attr(g, "format_version", H5T_NATIVE_INT64, H5T_STD_I64LE, 0, &ver);
    rc |= put_str(g, "optim", ss_optim_kind_name(st->opt.optim));
    rc |= put_str(g, "config", st->config ? st->config : "");
    if (st->nrng > 0) {
        rc |= put_attr(g, "rng", H5T_NATIVE_UINT64, H5T_STD_U64LE, (hsize_t)st->nrng, st->rng);
    }
    return rc;
}

// 0 ok, -1 absent or unreadable.
static int get_attr(hid_t loc, const char *name, hid_t mt, void *buf, hssize_t want)
{
    if (H5Aexists(loc, name) <= 0) {
        return -1;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int rc = n >= 1 && (want < 0 || n == want) && H5Aread(a, mt, buf) >= 0 ? 0 : -1;
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (a >= 0) {
        H5Aclose(a);
    }
    return rc;
}

// malloc'd copy of a fixed-length string attribute, or NULL.
static char *get_str(hid_t loc, const char *name)
{
    if (H5Aexists(loc, name) <= 0) {
        return NULL;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    size_t n =
        t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) ? H5Tget_size(t) : 0;
    char *s = n > 0 ? calloc(n + 1, 1) : NULL;
    if (s != NULL && H5Aread(a, t, s) < 0) {
        free(s);
        s = NULL;
    }
    if (t >= 0) {
        H5Tclose(t);
    }
    if (a >= 0) {
        H5Aclose(a);
    }
    return s;
}

static ss_status_t read_state(hid_t g, ss_ckpt_state_t *st, const char *path, ss_error_t *err)
{
    for (int i = 0; i < NSTATE; i++) {
        char *p = (char *)st + g_state[i].off;
        int64_t v = 0;
        int t = g_state[i].type, rc;
        rc = t == S_U64   ? get_attr(g, g_state[i].name, H5T_NATIVE_UINT64, p, 1)
             : t == S_DBL ? get_attr(g, g_state[i].name, H5T_NATIVE_DOUBLE, p, 1)
             : t == S_I64 ? get_attr(g, g_state[i].name, H5T_NATIVE_INT64, p, 1)
                          : get_attr(g, g_state[i].name, H5T_NATIVE_INT64, &v, 1);
        if (rc != 0) {
            SS_FAIL(err, SS_EFORMAT,
                    "%s: /state attribute %s missing or unreadable; the "
                    "checkpoint is damaged, use an older one",
                    path, g_state[i].name);
        }
        if (t == S_INT) {
            *(int *)(void *)p = (int)v;
        }
    }
    char *kind = get_str(g, "optim");
    int ok = kind != NULL;
    st->opt.optim = !ok || strcmp(kind, "adamw") == 0 ? SS_OPTIM_ADAMW
                    : strcmp(kind, "adam") == 0       ? SS_OPTIM_ADAM
                    : strcmp(kind, "sgd") == 0        ? SS_OPTIM_SGD
                                                      : (ok = 0, SS_OPTIM_ADAMW);
    free(kind);
    hsize_t n = 0;
    if (H5Aexists(g, "rng") > 0) {
        hid_t a = H5Aopen(g, "rng", H5P_DEFAULT), sp = a >= 0 ? H5Aget_space(a) : -1;
        n = sp >= 0 ? (hsize_t)H5Sget_simple_extent_npoints(sp) : 0;
        H5Sclose(sp);
        H5Aclose(a);
        ok = ok && n <= SS_CKPT_RNG_MAX &&
             get_attr(g, "rng", H5T_NATIVE_UINT64, st->rng, (hssize_t)n) == 0;
    }
    st->nrng = (int)n;
    char *text = get_str(g, "config");
    if (!ok || text == NULL) {
        free(text);
        SS_FAIL(err, SS_EFORMAT,
                "%s: /state optim, rng or config unreadable; the checkpoint is "
                "damaged, use an older one",
                path);
    }
    st->config = text; // the caller's previous pointer is not ours to free
    return SS_OK;
}

// FNV-1a over the registry: a checkpoint's flat optimizer vectors only make sense for the exact
// parameter layout they were written with (names, shapes, offsets).
static uint64_t layout_hash(const ss_model_t *m)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < ss_model_param_count(m); i++) {
        const ss_param_t *p = ss_model_param(m, i);
        int64_t nums[7] = {p->ndim,     p->offset,   p->shape[0], p->shape[1],
                           p->shape[2], p->shape[3], p->shape[4]};
        for (const char *c = p->name; *c; c++) {
            h = (h ^ (uint8_t)*c) * 1099511628211ull;
        }
        for (int k = 0; k < 7; k++) {
            for (int b = 0; b < 8; b++) {
                h = (h ^ (uint8_t)((uint64_t)nums[k] >> (8 * b))) * 1099511628211ull;
            }
        }
    }
    return h ^ (uint64_t)ss_model_numel(m);
}

// --- writing -----------------------------------------------------------------------------------

static ss_status_t write_optim(hid_t f,
                               const ss_model_t *m,
                               const float *const *optim,
                               int noptim,
                               ss_optim_kind_t kind,
                               const char *path,
                               ss_error_t *err)
{
    hid_t g = H5Gcreate2(f, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = (hsize_t)ss_model_numel(m);
    uint64_t h = layout_hash(m);
    int ok = g >= 0 && put_attr(g, "layout_hash", H5T_NATIVE_UINT64, H5T_STD_U64LE, 0, &h) == 0;
    for (int i = 0; ok && i < noptim; i++) {
        hid_t sp = H5Screate_simple(1, &n, NULL), dcpl = ss__train_dcpl(1, &n, 1);
        hid_t ds = sp >= 0 && dcpl >= 0 ? H5Dcreate2(g, ss_ckpt_optim_name(kind, i), H5T_IEEE_F32LE,
                                                     sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                                        : -1;
        ok =
            ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, optim[i]) >= 0;
        ok = (ds < 0 || H5Dclose(ds) >= 0) && ok;
        H5Pclose(dcpl);
        H5Sclose(sp);
    }
    ok = (g < 0 || H5Gclose(g) >= 0) && ok;
    if (!ok) {
        SS_FAIL(err, SS_EIO, "%s: cannot write the optimizer state; check free space", path);
    }
    return SS_OK;
}

static ss_status_t write_all(hid_t f,
                             const ss_model_t *m,
                             const float *const *optim,
                             int noptim,
                             const ss_ckpt_state_t *st,
                             const char *path,
                             ss_error_t *err)
{
    SS_TRY(ss__weights_write_config(f, ss_model_config(m), path, err));
    SS_TRY(ss__weights_write_params(f, m, 1, path, err));
    SS_TRY(write_optim(f, m, optim, noptim, st->opt.optim, path, err));
    hid_t g = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = g >= 0 ? write_state(g, st) : -1;
    // `complete` goes last, after everything else has been handed to the file system.
    int64_t one = 1;
    if (rc == 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0) {
        rc = put_attr(g, "complete", H5T_NATIVE_INT64, H5T_STD_I64LE, 0, &one);
    } else {
        rc = -1;
    }
    if (g >= 0 && H5Gclose(g) < 0) {
        rc = -1;
    }
    if (rc != 0) {
        SS_FAIL(err, SS_EIO, "%s: cannot write /state; check free space", path);
    }
    return SS_OK;
}

typedef struct {
    int64_t step;
    char name[64];
} entry_t;

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = ((const entry_t *)a)->step, y = ((const entry_t *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

// Checkpoints of dir, newest step first (malloc'd, *n entries); removes stale temp files when
// clean_tmp is set.
static ss_status_t
list_ckpts(const char *dir, int clean_tmp, entry_t **out, int *n, ss_error_t *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        SS_FAIL_LIB(err, SS_EIO, errno,
                    "%s: cannot open the checkpoint directory: %s; check the "
                    "path",
                    dir, strerror(errno));
    }
    int cap = 0;
    entry_t *v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long step;
        int end = 0;
        if (clean_tmp && strncmp(e->d_name, ".ckpt-", 6) == 0 && strstr(e->d_name, ".tmp.")) {
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
            continue;
        }
        if (sscanf(e->d_name, "ckpt-%lld.h5%n", &step, &end) != 1 || e->d_name[end] != '\0' ||
            strlen(e->d_name) >= sizeof(v->name)) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            entry_t *nv = realloc(v, (size_t)cap * sizeof(*v));
            if (nv == NULL) {
                break;
            }
            v = nv;
        }
        v[*n].step = step;
        snprintf(v[*n].name, sizeof(v->name), "%s", e->d_name);
        (*n)++;
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof(*v), cmp_desc);
    *out = v;
    return SS_OK;
}

static void prune(const char *dir, const char *keep_path, int keep)
{
    entry_t *v = NULL;
    int n = 0;
    if (list_ckpts(dir, 0, &v, &n, NULL) != SS_OK) {
        return;
    }
    int removed = 0;
    for (int i = keep; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", dir, v[i].name);
        if (strcmp(p, keep_path) != 0 && unlink(p) == 0) {
            removed = 1;
        }
    }
    if (removed) {
        ss__train_fsync_dir_of(keep_path, NULL);
    }
    free(v);
}

ss_status_t ss_ckpt_save(const char *dir,
                         const ss_model_t *m,
                         const float *const *optim,
                         int noptim,
                         const ss_ckpt_state_t *st,
                         int keep,
                         char *path,
                         size_t path_len,
                         ss_error_t *err)
{
    char final[4096], tmp[4096];
    if (noptim != ss_ckpt_optim_count(st->opt.optim, st->opt.sgd.momentum) || st->nrng < 0 ||
        st->nrng > SS_CKPT_RNG_MAX) {
        SS_FAIL(err, SS_EINVAL,
                "%s: %d optimizer vectors / %d rng words do not fit optimizer %s; "
                "this is a bug in the caller",
                dir, noptim, st->nrng, ss_optim_kind_name(st->opt.optim));
    }
    snprintf(final, sizeof(final), "%s/ckpt-%lld.h5", dir, (long long)st->step);
    SS_TRY(ss__train_tmp_path(tmp, sizeof(tmp), final, err));
    entry_t *v = NULL;
    int n = 0;
    SS_TRY(list_ckpts(dir, 1, &v, &n, err)); // also clears temp files of killed runs
    free(v);
    int64_t est = ss__train_h5_estimate((1 + noptim) * ss_model_numel(m) * (int64_t)sizeof(float) +
                                            (int64_t)(st->config ? strlen(st->config) : 0),
                                        ss_model_param_count(m) + noptim + 2);
    SS_TRY(ss__train_space_check(final, est, err));
    hid_t f = ss__train_h5_create(tmp);
    if (f < 0) {
        int e = errno;
        SS_FAIL_LIB(err, SS_EIO, e,
                    "%s: cannot create: %s; check that the directory is "
                    "writable",
                    tmp, strerror(e));
    }
    ss_status_t rc = ss__train_reserve(tmp, final, est, err);
    if (rc == SS_OK) {
        rc = write_all(f, m, optim, noptim, st, final, err);
    }
    if (H5Fclose(f) < 0 && rc == SS_OK) {
        rc = ss_error_set(err, SS_EIO, 0, __FILE__, __LINE__, __func__,
                          "%s: cannot finish writing; check free space", final);
    }
    if (rc != SS_OK) {
        unlink(tmp);
        return rc;
    }
    SS_TRY(ss__train_commit(tmp, final, err));
    prune(dir, final, keep > 0 ? keep : 2);
    if (path != NULL && path_len > 0) {
        snprintf(path, path_len, "%s", final);
    }
    return SS_OK;
}

// --- reading -----------------------------------------------------------------------------------

static ss_status_t open_complete(const char *path, hid_t *f, hid_t *g, ss_error_t *err)
{
    *g = -1;
    *f = ss__train_h5_open(path);
    if (*f < 0) {
        SS_FAIL(err, SS_EFORMAT, "%s: cannot open (truncated or not HDF5)", path);
    }
    int64_t complete = 0;
    *g = H5Lexists(*f, "state", H5P_DEFAULT) > 0 ? H5Gopen2(*f, "state", H5P_DEFAULT) : -1;
    if (*g < 0 || get_attr(*g, "complete", H5T_NATIVE_INT64, &complete, 1) != 0 || complete != 1) {
        if (*g >= 0) {
            H5Gclose(*g);
        }
        H5Fclose(*f);
        SS_FAIL(err, SS_EFORMAT, "%s: incomplete checkpoint (no /state complete=1)", path);
    }
    return SS_OK;
}

// Reads a dataset in pieces of at most 2^24 elements along dim 0 so that every chunk's
// fletcher32 checksum is checked without holding the dataset in memory.
static int read_through(hid_t ds, float *buf)
{
    hid_t sp = H5Dget_space(ds);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[8] = {0}, slice = 1;
    int ok = nd >= 0 && nd <= 8 && H5Sget_simple_extent_dims(sp, dims, NULL) >= 0;
    for (int d = 1; ok && d < nd; d++) {
        slice *= dims[d];
    }
    hsize_t step = nd > 0 && slice > 0 ? ((hsize_t)1 << 24) / slice : 1;
    step = step < 1 ? 1 : step;
    for (hsize_t i0 = 0; ok && (nd == 0 ? i0 < 1 : i0 < dims[0]); i0 += step) {
        hsize_t start[8] = {0}, count[8];
        memcpy(count, dims, sizeof(count));
        start[0] = i0;
        count[0] = nd == 0 ? 1 : (dims[0] - i0 < step ? dims[0] - i0 : step);
        hid_t ms = nd == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(nd, count, NULL);
        if (nd > 0) {
            H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
        }
        ok = ms >= 0 && H5Dread(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, buf) >= 0;
        H5Sclose(ms);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    return ok;
}

// Reads every numeric dataset directly in g; 0 when all read back (checksums included).
static int verify_group(hid_t g, float *buf)
{
    H5G_info_t gi;
    char name[512];
    int bad = H5Gget_info(g, &gi) < 0;
    for (hsize_t i = 0; !bad && i < gi.nlinks; i++) {
        if (ss__train_h5_child(g, i, name, sizeof(name)) != 0) {
            bad = 1;
            break;
        }
        if (!ss__train_h5_is_dataset(g, name)) {
            continue;
        }
        hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
        hid_t t = ds >= 0 ? H5Dget_type(ds) : -1;
        H5T_class_t cl = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
        bad = ds < 0 || t < 0 || ((cl == H5T_FLOAT || cl == H5T_INTEGER) && !read_through(ds, buf));
        if (t >= 0) {
            H5Tclose(t);
        }
        if (ds >= 0) {
            H5Dclose(ds);
        }
    }
    return bad ? -1 : 0;
}

ss_status_t ss_ckpt_verify(const char *path, ss_error_t *err)
{
    hid_t f, g;
    SS_TRY(open_complete(path, &f, &g, err));
    H5Gclose(g);
    float *buf = malloc(((size_t)1 << 24) * sizeof(float) + 64);
    hid_t o = H5Lexists(f, "optim", H5P_DEFAULT) > 0 ? H5Gopen2(f, "optim", H5P_DEFAULT) : -1;
    int bad = buf == NULL || verify_group(f, buf) != 0 || (o >= 0 && verify_group(o, buf) != 0);
    if (o >= 0) {
        H5Gclose(o);
    }
    free(buf);
    H5Fclose(f);
    if (bad) {
        SS_FAIL(err, SS_EFORMAT, "%s: a dataset fails to read (checksum mismatch or truncation)",
                path);
    }
    return SS_OK;
}

ss_status_t ss_ckpt_find_latest(
    const char *dir, char *path, size_t path_len, char *warn, size_t warn_len, ss_error_t *err)
{
    path[0] = '\0';
    if (warn != NULL && warn_len > 0) {
        warn[0] = '\0';
    }
    DIR *d = opendir(dir);
    if (d == NULL && errno == ENOENT) {
        return SS_OK; // no output directory yet: nothing to resume
    }
    if (d != NULL) {
        closedir(d);
    }
    entry_t *v = NULL;
    int n = 0;
    SS_TRY(list_ckpts(dir, 0, &v, &n, err));
    ss_error_t first = {0};
    for (int i = 0; i < n; i++) {
        char p[4096];
        ss_error_t e;
        snprintf(p, sizeof(p), "%s/%s", dir, v[i].name);
        if (ss_ckpt_verify(p, &e) == SS_OK) {
            snprintf(path, path_len, "%s", p);
            break;
        }
        if (i == 0) {
            first = e;
        }
        size_t o = warn != NULL ? strlen(warn) : 0;
        if (warn != NULL && o + 1 < warn_len) {
            snprintf(warn + o, warn_len - o, "%s%s; skipped", o ? "\n" : "", e.msg);
        }
    }
    free(v);
    if (n > 0 && path[0] == '\0') {
        SS_FAIL(err, SS_EFORMAT, "%s; no usable checkpoint in %s, start a new run without --resume",
                first.msg, dir);
    }
    return SS_OK;
}

static ss_status_t read_optim(hid_t f,
                              const ss_model_t *m,
                              ss_optim_kind_t kind,
                              float *const *optim,
                              int noptim,
                              const char *path,
                              ss_error_t *err)
{
    hid_t g = H5Lexists(f, "optim", H5P_DEFAULT) > 0 ? H5Gopen2(f, "optim", H5P_DEFAULT) : -1;
    uint64_t h = 0;
    int ok = g >= 0 && get_attr(g, "layout_hash", H5T_NATIVE_UINT64, &h, 1) == 0;
    if (ok && h != layout_hash(m)) {
        H5Gclose(g);
        SS_FAIL(err, SS_EINVAL,
                "%s: the parameter layout differs from this build's (another "
                "shardseg version?); start from its weights instead: --weights %s",
                path, path);
    }
    for (int i = 0; ok && i < noptim; i++) {
        hid_t ds = H5Dopen2(g, ss_ckpt_optim_name(kind, i), H5P_DEFAULT);
        hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
        hsize_t n = 0;
        ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
             H5Sget_simple_extent_dims(sp, &n, NULL) == 1 && n == (hsize_t)ss_model_numel(m) &&
             H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, optim[i]) >= 0;
        if (sp >= 0) {
            H5Sclose(sp);
        }
        if (ds >= 0) {
            H5Dclose(ds);
        }
    }
    if (g >= 0) {
        H5Gclose(g);
    }
    if (!ok) {
        SS_FAIL(err, SS_EFORMAT,
                "%s: optimizer state missing, of the wrong size or corrupt; use "
                "an older checkpoint",
                path);
    }
    return SS_OK;
}

static ss_status_t load_all(hid_t f,
                            hid_t g,
                            const char *path,
                            ss_model_t *m,
                            ss_optim_kind_t kind,
                            float *const *optim,
                            int noptim,
                            ss_ckpt_state_t *st,
                            ss_error_t *err)
{
    ss_model_config_t c;
    SS_TRY(ss__weights_read_config(f, &c, path, err));
    SS_TRY(ss__weights_compare(&c, ss_model_config(m), path, CKPT_FIX, err));
    SS_TRY(read_state(g, st, path, err));
    if (st->opt.optim != kind) {
        SS_FAIL(err, SS_EINVAL, "%s: optim is %s in the file but %s in this run; %s", path,
                ss_optim_kind_name(st->opt.optim), ss_optim_kind_name(kind),
                "resume with the run's original [optim] name, or use a new output directory");
    }
    int want = ss_ckpt_optim_count(st->opt.optim, st->opt.sgd.momentum);
    if (want != noptim) {
        SS_FAIL(err, SS_EINVAL,
                "%s: the file holds %d optimizer state vectors, this run has %d "
                "(sgd momentum on/off); resume with the original [optim] settings",
                path, want, noptim);
    }
    SS_TRY(read_optim(f, m, kind, optim, noptim, path, err));
    return ss__weights_read_params(f, m, 0, path, err);
}

ss_status_t ss_ckpt_load(const char *path,
                         ss_model_t *m,
                         ss_optim_kind_t kind,
                         float *const *optim,
                         int noptim,
                         ss_ckpt_state_t *st,
                         ss_error_t *err)
{
    hid_t f, g;
    SS_TRY(open_complete(path, &f, &g, err));
    char *prev = st->config;
    ss_status_t rc = load_all(f, g, path, m, kind, optim, noptim, st, err);
    if (rc != SS_OK && st->config != prev) {
        free(st->config); // a failed load leaves config as it was
        st->config = prev;
    }
    H5Gclose(g);
    H5Fclose(f);
    return rc;
}
