// h5data: the prep'd HDF5 training file (layout in h5data.h), serial HDF5.
// memfd_create (discard_file) is a GNU extension.
#define _GNU_SOURCE
#include "shardseg/h5data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "shardseg/rng.h"

struct ss_h5data_writer {
    hid_t file, cases;
    char *path, *tmp;
    ss_h5data_meta_t meta;
};

struct ss_h5data {
    hid_t file;
    char *path;
    int n;
    char **names;
    int *is_val, *fold;
    ss_target_t target;
};

static void quiet_hdf5(void)
{
    // HDF5 prints its error stack on stderr by default; errors reach the user as one line each.
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

void ss_h5data_split(int n, double val_fraction, int folds, uint64_t seed, int *assign)
{
    int *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (perm == NULL) {
        for (int i = 0; i < n; i++) {
            assign[i] = folds > 1 ? i % folds : 0;
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        perm[i] = i;
    }
    // Fisher-Yates from the counter-based RNG: the same seed gives the same split anywhere.
    ss_rng_t r = ss_rng_make(seed, 0x5b117);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)ss_rng_below(r, (uint64_t)i, (uint32_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int nval = (int)floor(val_fraction * n + 0.5);
    for (int p = 0; p < n; p++) {
        assign[perm[p]] = folds > 1 ? p % folds : (p < nval ? 1 : 0);
    }
    free(perm);
}

// --- attribute helpers (all return 0 on success) ---

static int
attr_write(hid_t obj, const char *name, hid_t type, int rank, const hsize_t *dims, const void *buf)
{
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t a = sp >= 0 ? H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = a >= 0 && H5Awrite(a, type, buf) >= 0 ? 0 : -1;
    if (a >= 0) {
        H5Aclose(a);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    return rc;
}

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0) {
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
    }
    return t;
}

static int attr_strs(hid_t obj, const char *name, const char *const *s, int n)
{
    hid_t t = vlen_str_type();
    hsize_t d = (hsize_t)n;
    int rc = t >= 0 ? attr_write(obj, name, t, n < 0 ? 0 : 1, &d, s) : -1;
    H5Tclose(t);
    return rc;
}

static int attr_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = vlen_str_type();
    int rc = t >= 0 ? attr_write(obj, name, t, 0, NULL, &s) : -1;
    H5Tclose(t);
    return rc;
}

static int root_attrs(hid_t f, const ss_h5data_meta_t *m)
{
    const int version = SS_H5DATA_FORMAT_VERSION, nl = ss_target_channels(m->target);
    const char *labels[3];
    for (int r = 0; r < nl; r++) {
        labels[r] = ss_target_channel_name(m->target, r);
    }
    hsize_t one = 1;
    int rc = attr_write(f, "format_version", H5T_NATIVE_INT, 0, NULL, &version);
    rc |= attr_strs(f, "channel_names", m->channel_names, m->nchan);
    rc |= attr_strs(f, "label_names", labels, nl);
    rc |= attr_str(f, "target", ss_target_name(m->target));
    rc |= attr_str(f, "source_layout", m->source_layout ? m->source_layout : "");
    rc |= attr_str(f, "label_convention", m->label_convention ? m->label_convention : "");
    rc |= attr_write(f, "split_seed", H5T_NATIVE_UINT64, 1, &one, &m->split_seed);
    rc |= attr_write(f, "val_fraction", H5T_NATIVE_DOUBLE, 0, NULL, &m->val_fraction);
    rc |= attr_write(f, "folds", H5T_NATIVE_INT, 0, NULL, &m->folds);
    return rc;
}

ss_status_t ss_h5data_create(const char *path,
                             const ss_h5data_meta_t *meta,
                             ss_h5data_writer_t **out,
                             ss_error_t *err)
{
    if (path == NULL || meta == NULL || out == NULL || meta->nchan < 1 ||
        meta->nchan > SS_H5DATA_MAX_CHAN) {
        SS_FAIL(err, SS_EINVAL, "ss_h5data_create: bad arguments");
    }
    *out = NULL;
    quiet_hdf5();
    ss_h5data_writer_t *w = calloc(1, sizeof(*w));
    size_t n = strlen(path) + 16;
    if (w == NULL || (w->tmp = malloc(n)) == NULL || (w->path = dup_str(path)) == NULL) {
        if (w) {
            free(w->tmp);
        }
        free(w);
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", path);
    }
    w->file = w->cases = -1;
    w->meta = *meta;
    w->meta.chunk_i = meta->chunk_i > 0 ? meta->chunk_i : 8;
    w->meta.gzip = meta->gzip > 0 ? meta->gzip : 1;
    snprintf(w->tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        int e = errno;
        w->tmp[0] = '\0';
        ss_h5data_abort(&w);
        SS_FAIL_LIB(err, SS_EINVAL, e,
                    "%s: cannot create the output there: %s; choose a "
                    "writable directory",
                    path, strerror(e));
    }
    (void)fchmod(fd, 0644); // mkstemp creates 0600
    close(fd);
    // STRONG close: aborting after a failed write (disk full) must not leave objects for HDF5's
    // exit handler, which then crashes trying to flush them again.
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) {
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    }
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (fapl >= 0) {
        H5Pclose(fapl);
    }
    if (w->file >= 0) {
        w->cases = H5Gcreate2(w->file, "cases", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    }
    if (w->file < 0 || w->cases < 0 || root_attrs(w->file, &w->meta) != 0) {
        ss_h5data_abort(&w);
        SS_FAIL(err, SS_EHDF5, "%s: HDF5 could not create the file; check free space", path);
    }
    *out = w;
    return SS_OK;
}

// Creates a chunked, shuffled, deflated dataset name in g of shape (nc, dim) and writes buf.
static int write_volume(const ss_h5data_writer_t *w,
                        hid_t g,
                        const char *name,
                        hid_t type,
                        int64_t nc,
                        const int64_t dim[3],
                        const void *buf)
{
    hsize_t dims[4] = {(hsize_t)nc, (hsize_t)dim[0], (hsize_t)dim[1], (hsize_t)dim[2]};
    hsize_t chunk[4] = {1, (hsize_t)(w->meta.chunk_i < dim[0] ? w->meta.chunk_i : dim[0]),
                        (hsize_t)dim[1], (hsize_t)dim[2]};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    int rc = sp >= 0 && pl >= 0 && H5Pset_chunk(pl, 4, chunk) >= 0 && H5Pset_shuffle(pl) >= 0 &&
                     H5Pset_deflate(pl, (unsigned)w->meta.gzip) >= 0
                 ? 0
                 : -1;
    hid_t ds = rc == 0 ? H5Dcreate2(g, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT) : -1;
    if (ds < 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = -1;
    }
    if (ds >= 0 && H5Dclose(ds) < 0) {
        rc = -1;
    }
    if (pl >= 0) {
        H5Pclose(pl);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    return rc;
}

static int case_attrs(const ss_h5data_writer_t *w, hid_t g, const ss_h5data_case_t *c)
{
    hsize_t d44[2] = {4, 4}, d3 = 3, dc = (hsize_t)w->meta.nchan;
    int rc = attr_write(g, "affine", H5T_NATIVE_DOUBLE, 2, d44, c->affine);
    rc |= attr_write(g, "original_shape", H5T_NATIVE_INT64, 1, &d3, c->orig_shape);
    rc |= attr_write(g, "crop_start", H5T_NATIVE_INT64, 1, &d3, c->crop.start);
    rc |= attr_write(g, "crop_end", H5T_NATIVE_INT64, 1, &d3, c->crop.end);
    rc |= attr_write(g, "spacing", H5T_NATIVE_DOUBLE, 1, &d3, c->spacing);
    rc |= attr_write(g, "zscore_mean", H5T_NATIVE_DOUBLE, 1, &dc, c->mean);
    rc |= attr_write(g, "zscore_std", H5T_NATIVE_DOUBLE, 1, &dc, c->std);
    rc |= attr_str(g, "source_layout", w->meta.source_layout ? w->meta.source_layout : "");
    rc |= attr_str(g, "label_convention", w->meta.label_convention ? w->meta.label_convention : "");
    return rc;
}

ss_status_t ss_h5data_write_case(ss_h5data_writer_t *w, const ss_h5data_case_t *c, ss_error_t *err)
{
    if (w == NULL || c == NULL || c->name == NULL || c->image == NULL || c->label == NULL) {
        SS_FAIL(err, SS_EINVAL, "ss_h5data_write_case: NULL argument");
    }
    if (c->name[0] == '\0' || strchr(c->name, '/') != NULL || strcmp(c->name, ".") == 0) {
        SS_FAIL(err, SS_EINVAL, "%s: case name '%s' cannot be an HDF5 group name", w->path,
                c->name);
    }
    if (H5Lexists(w->cases, c->name, H5P_DEFAULT) > 0) {
        SS_FAIL(err, SS_EINVAL, "%s: case %s appears twice; give each case a unique name", w->path,
                c->name);
    }
    hid_t g = H5Gcreate2(w->cases, c->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = g >= 0 ? 0 : -1;
    if (rc == 0) {
        rc = write_volume(w, g, "image", H5T_NATIVE_FLOAT, w->meta.nchan, c->dim, c->image);
    }
    if (rc == 0) {
        rc = write_volume(w, g, "label", H5T_NATIVE_UINT8, ss_target_channels(w->meta.target),
                          c->dim, c->label);
    }
    if (rc == 0) {
        rc = case_attrs(w, g, c);
    }
    if (g >= 0 && H5Gclose(g) < 0) {
        rc = -1;
    }
    if (rc != 0) {
        SS_FAIL(err, SS_EHDF5, "%s: writing case %s failed (HDF5); check free space", w->path,
                c->name);
    }
    return SS_OK;
}

static int write_names(hid_t g, const char *name, const char *const *names, int n)
{
    hid_t t = vlen_str_type();
    hsize_t d = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    hid_t ds =
        t >= 0 && sp >= 0 ? H5Dcreate2(g, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc =
        ds >= 0 && (n == 0 || H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, names) >= 0) ? 0 : -1;
    if (ds >= 0) {
        H5Dclose(ds);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (t >= 0) {
        H5Tclose(t);
    }
    return rc;
}

ss_status_t ss_h5data_write_split(
    ss_h5data_writer_t *w, const char *const *names, const int *assign, int n, ss_error_t *err)
{
    const char **lists = malloc((size_t)(n > 0 ? 2 * n : 1) * sizeof(*lists));
    if (lists == NULL) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", w->path);
    }
    int nt = 0, nv = 0, folds = w->meta.folds;
    for (int i = 0; i < n; i++) {
        // With folds, fold 0 is the validation fold of /split/train and /split/val.
        int val = folds > 1 ? assign[i] == 0 : assign[i] == 1;
        if (val) {
            lists[n + nv++] = names[i];
        } else {
            lists[nt++] = names[i];
        }
    }
    hid_t g = H5Gcreate2(w->file, "split", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc =
        g >= 0 ? write_names(g, "train", lists, nt) | write_names(g, "val", lists + n, nv) : -1;
    if (rc == 0 && folds > 1) {
        hsize_t d = (hsize_t)n;
        hid_t sp = H5Screate_simple(1, &d, NULL);
        hid_t ds =
            H5Dcreate2(g, "fold", H5T_NATIVE_INT32, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = ds >= 0 && (n == 0 ||
                         H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, assign) >= 0)
                 ? 0
                 : -1;
        if (ds >= 0) {
            H5Dclose(ds);
        }
        H5Sclose(sp);
    }
    if (g >= 0) {
        H5Gclose(g);
    }
    free(lists);
    if (rc != 0) {
        SS_FAIL(err, SS_EHDF5, "%s: writing /split failed (HDF5); check free space", w->path);
    }
    return SS_OK;
}

// A descriptor that takes any write and truncation: an anonymous memory file on Linux (what the
// close of a discarded file flushes is its metadata, small), else -1.
static int scratch_descriptor(void)
{
#ifdef __linux__
    return memfd_create("shardseg-discard", MFD_CLOEXEC);
#else
    return -1;
#endif
}

// Closes (if open) and deletes the temporary file. After a failed write (disk full) H5Fclose
// cannot flush and leaves the file open, and HDF5's exit handler then crashes closing it again
// (a failed H5Fclose leaves a dangling ID in HDF5 1.10 and must not be retried). The content is
// discarded anyway, so the file's descriptor is pointed at an anonymous memory file first: the
// one close then flushes there and succeeds. Elsewhere the file is emptied first, which frees
// its space, but on a disk shared with other writers (MPI ranks) they may fill it again.
static void discard_file(ss_h5data_writer_t *w)
{
    int have_tmp = w->tmp != NULL && w->tmp[0] != '\0';
    if (w->file >= 0) {
        void *handle = NULL;
        int scratch = scratch_descriptor();
        if (scratch >= 0 && H5Fget_vfd_handle(w->file, H5P_DEFAULT, &handle) >= 0 &&
            handle != NULL) {
            (void)dup2(scratch, *(int *)handle); // the sec2 driver's handle is its descriptor
        } else if (have_tmp) {
            (void)truncate(w->tmp, 0);
        }
        if (scratch >= 0) {
            close(scratch);
        }
        H5Fclose(w->file);
    }
    w->file = -1;
    if (have_tmp) {
        unlink(w->tmp);
    }
}

static void writer_free(ss_h5data_writer_t *w)
{
    free(w->path);
    free(w->tmp);
    free(w);
}

ss_status_t ss_h5data_commit(ss_h5data_writer_t **pw, size_t *bytes, ss_error_t *err)
{
    ss_h5data_writer_t *w = *pw;
    *pw = NULL;
    int rc = H5Gclose(w->cases) < 0 ? -1 : 0;
    w->cases = -1;
    // Flushing first: a failure (disk full) is handled by discard_file, whereas a failed
    // H5Fclose cannot be cleaned up (see discard_file).
    if (rc != 0 || H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
        rc = -1;
    } else if (H5Fclose(w->file) < 0) {
        rc = -1;
    } else {
        w->file = -1;
    }
    ss_status_t st = SS_OK;
    if (rc != 0) {
        st = ss_error_set(err, SS_EHDF5, 0, __FILE__, __LINE__, __func__,
                          "%s: HDF5 could not finish the file; check free space", w->path);
    } else if (rename(w->tmp, w->path) != 0) {
        st = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                          "%s: cannot rename the finished file into place: %s", w->path,
                          strerror(errno));
    }
    if (st != SS_OK) {
        discard_file(w);
    } else if (bytes != NULL) {
        struct stat sb;
        *bytes = stat(w->path, &sb) == 0 ? (size_t)sb.st_size : 0;
    }
    writer_free(w);
    return st;
}

ss_status_t ss_h5data_finish_part(ss_h5data_writer_t **pw, char *part, size_t len, ss_error_t *err)
{
    ss_h5data_writer_t *w = *pw;
    *pw = NULL;
    if (part != NULL && len > 0) {
        part[0] = '\0';
    }
    int rc = H5Gclose(w->cases) < 0 ? -1 : 0;
    w->cases = -1;
    ss_status_t st = SS_OK;
    // Flush before close, for the reason given in ss_h5data_commit.
    if (rc != 0 || H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0 || H5Fclose(w->file) < 0) {
        st = ss_error_set(err, SS_EHDF5, 0, __FILE__, __LINE__, __func__,
                          "%s: HDF5 could not finish a part file; check free space", w->path);
    } else {
        w->file = -1;
        if (part == NULL || strlen(w->tmp) >= len) {
            st = ss_error_set(err, SS_EINVAL, 0, __FILE__, __LINE__, __func__,
                              "%s: part file name too long", w->path);
        } else {
            memcpy(part, w->tmp, strlen(w->tmp) + 1);
        }
    }
    if (st != SS_OK) {
        discard_file(w);
    }
    writer_free(w);
    return st;
}

ss_status_t ss_h5data_copy_cases(
    ss_h5data_writer_t *w, const char *part, const char *const *names, int n, ss_error_t *err)
{
    if (w == NULL || part == NULL || (n > 0 && names == NULL)) {
        SS_FAIL(err, SS_EINVAL, "ss_h5data_copy_cases: NULL argument");
    }
    quiet_hdf5();
    hid_t f = H5Fopen(part, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t src = f >= 0 ? H5Gopen2(f, "cases", H5P_DEFAULT) : -1;
    ss_status_t st = SS_OK;
    if (src < 0) {
        st = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                          "%s: part file has no readable /cases; run shardseg prep again", part);
    }
    for (int i = 0; st == SS_OK && i < n; i++) {
        if (H5Lexists(w->cases, names[i], H5P_DEFAULT) > 0) {
            st = ss_error_set(err, SS_EINVAL, 0, __FILE__, __LINE__, __func__,
                              "%s: case %s appears twice; give each case a unique name", w->path,
                              names[i]);
        } else if (H5Lexists(src, names[i], H5P_DEFAULT) <= 0) {
            st = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                              "%s: part file lacks case %s; run shardseg prep again", part,
                              names[i]);
        } else if (H5Ocopy(src, names[i], w->cases, names[i], H5P_DEFAULT, H5P_DEFAULT) < 0) {
            st = ss_error_set(err, SS_EHDF5, 0, __FILE__, __LINE__, __func__,
                              "%s: copying case %s failed (HDF5); check free space", w->path,
                              names[i]);
        }
    }
    if (src >= 0) {
        H5Gclose(src);
    }
    if (f >= 0) {
        H5Fclose(f);
    }
    return st;
}

void ss_h5data_abort(ss_h5data_writer_t **pw)
{
    if (pw == NULL || *pw == NULL) {
        return;
    }
    ss_h5data_writer_t *w = *pw;
    if (w->cases >= 0) {
        H5Gclose(w->cases);
    }
    discard_file(w);
    writer_free(w);
    *pw = NULL;
}

// --- reader ---

typedef struct {
    char **names;
    int n, cap;
} name_list_t;

#if H5_VERSION_GE(1, 12, 0)
typedef H5L_info2_t ss_h5_linfo_t;
#else
typedef H5L_info_t ss_h5_linfo_t;
#endif

static herr_t collect_name(hid_t g, const char *name, const ss_h5_linfo_t *info, void *op)
{
    (void)g;
    (void)info;
    name_list_t *l = op;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        char **grown = realloc(l->names, (size_t)l->cap * sizeof(char *));
        if (grown == NULL) {
            return -1;
        }
        l->names = grown;
    }
    l->names[l->n] = dup_str(name);
    return l->names[l->n++] == NULL ? -1 : 0;
}

static int find_case(const ss_h5data_t *d, const char *name)
{
    for (int i = 0; i < d->n; i++) {
        if (strcmp(d->names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

// Marks the cases listed in /split/val (1) and /split/train (0); missing /split leaves -1.
static int read_split(ss_h5data_t *d)
{
    const char *lists[2] = {"/split/train", "/split/val"};
    for (int l = 0; l < 2; l++) {
        if (H5Lexists(d->file, "/split", H5P_DEFAULT) <= 0 ||
            H5Lexists(d->file, lists[l], H5P_DEFAULT) <= 0) {
            continue;
        }
        hid_t ds = H5Dopen2(d->file, lists[l], H5P_DEFAULT);
        hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
        hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        hid_t t = vlen_str_type();
        char **s = n > 0 ? calloc((size_t)n, sizeof(char *)) : NULL;
        int rc = ds >= 0 && n >= 0 ? 0 : -1;
        if (rc == 0 && n > 0) {
            rc = s != NULL && H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) >= 0 ? 0 : -1;
            for (hssize_t q = 0; rc == 0 && q < n; q++) {
                int c = find_case(d, s[q]);
                if (c >= 0) {
                    d->is_val[c] = l;
                }
            }
            if (rc == 0) {
                H5Dvlen_reclaim(t, sp, H5P_DEFAULT, s);
            }
        }
        free(s);
        H5Tclose(t);
        if (sp >= 0) {
            H5Sclose(sp);
        }
        if (ds >= 0) {
            H5Dclose(ds);
        }
        if (rc != 0) {
            return -1;
        }
    }
    if (H5Lexists(d->file, "/split", H5P_DEFAULT) > 0 &&
        H5Lexists(d->file, "/split/fold", H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(d->file, "/split/fold", H5P_DEFAULT);
        int rc = ds >= 0 && H5Dread(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->fold) >= 0
                     ? 0
                     : -1;
        if (ds >= 0) {
            H5Dclose(ds);
        }
        return rc;
    }
    return 0;
}

static ss_target_t read_target(hid_t f)
{
    ss_target_t t = SS_TARGET_REGIONS;
    if (H5Aexists(f, "target") <= 0) {
        return t;
    }
    hid_t a = H5Aopen(f, "target", H5P_DEFAULT);
    hid_t ty = vlen_str_type();
    char *s = NULL;
    if (a >= 0 && H5Aread(a, ty, &s) >= 0 && s != NULL) {
        t = strcmp(s, "binary") == 0 ? SS_TARGET_BINARY : SS_TARGET_REGIONS;
        H5free_memory(s);
    }
    H5Tclose(ty);
    if (a >= 0) {
        H5Aclose(a);
    }
    return t;
}

ss_status_t ss_h5data_open(const char *path, ss_h5data_t **out, ss_error_t *err)
{
    if (path == NULL || out == NULL) {
        SS_FAIL(err, SS_EINVAL, "ss_h5data_open: NULL argument");
    }
    *out = NULL;
    quiet_hdf5();
    if (access(path, R_OK) != 0) {
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot open: %s; run shardseg prep first", path,
                    strerror(errno));
    }
    ss_h5data_t *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->path = dup_str(path)) == NULL) {
        free(d);
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", path);
    }
    d->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    name_list_t l = {NULL, 0, 0};
    hsize_t idx = 0;
    int rc = d->file >= 0 && H5Lexists(d->file, "cases", H5P_DEFAULT) > 0 ? 0 : -1;
    if (rc == 0) {
        rc = H5Literate_by_name(d->file, "cases", H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name,
                                &l, H5P_DEFAULT) < 0
                 ? -1
                 : 0;
    }
    d->names = l.names;
    d->n = l.n;
    d->is_val = malloc((size_t)(l.n + 1) * sizeof(int));
    d->fold = malloc((size_t)(l.n + 1) * sizeof(int));
    for (int i = 0; d->is_val && d->fold && i < l.n; i++) {
        d->is_val[i] = -1;
        d->fold[i] = -1;
    }
    if (rc == 0 && (d->is_val == NULL || d->fold == NULL || read_split(d) != 0)) {
        rc = -1;
    }
    if (rc != 0) {
        ss_h5data_close(&d);
        SS_FAIL(err, SS_EFORMAT,
                "%s: not a shardseg prep file (no readable /cases); run "
                "shardseg prep to make one",
                path);
    }
    d->target = read_target(d->file);
    *out = d;
    return SS_OK;
}

void ss_h5data_close(ss_h5data_t **pd)
{
    if (pd == NULL || *pd == NULL) {
        return;
    }
    ss_h5data_t *d = *pd;
    if (d->file >= 0) {
        H5Fclose(d->file);
    }
    for (int i = 0; i < d->n; i++) {
        free(d->names[i]);
    }
    free(d->names);
    free(d->is_val);
    free(d->fold);
    free(d->path);
    free(d);
    *pd = NULL;
}

int ss_h5data_ncases(const ss_h5data_t *d)
{
    return d->n;
}

const char *ss_h5data_case_name(const ss_h5data_t *d, int i)
{
    return i >= 0 && i < d->n ? d->names[i] : NULL;
}

int ss_h5data_is_val(const ss_h5data_t *d, int i)
{
    return i >= 0 && i < d->n ? d->is_val[i] : -1;
}

int ss_h5data_fold(const ss_h5data_t *d, int i)
{
    return i >= 0 && i < d->n ? d->fold[i] : -1;
}

ss_target_t ss_h5data_target(const ss_h5data_t *d)
{
    return d->target;
}

static int attr_read(hid_t obj, const char *name, hid_t type, void *buf)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int rc = a >= 0 && H5Aread(a, type, buf) >= 0 ? 0 : -1;
    if (a >= 0) {
        H5Aclose(a);
    }
    return rc;
}

// Dims of dataset <case>/<what> into d4; 0 on success.
static int volume_dims(hid_t g, const char *what, hsize_t d4[4])
{
    hid_t ds = H5Dopen2(g, what, H5P_DEFAULT);
    hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
    int rc = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 4 &&
                     H5Sget_simple_extent_dims(sp, d4, NULL) == 4
                 ? 0
                 : -1;
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (ds >= 0) {
        H5Dclose(ds);
    }
    return rc;
}

static hid_t open_case(const ss_h5data_t *d, int i)
{
    char where[1024];
    snprintf(where, sizeof(where), "cases/%s", d->names[i]);
    return H5Gopen2(d->file, where, H5P_DEFAULT);
}

ss_status_t
ss_h5data_case_info(const ss_h5data_t *d, int i, ss_h5data_info_t *info, ss_error_t *err)
{
    if (i < 0 || i >= d->n) {
        SS_FAIL(err, SS_EINVAL, "%s: case index %d outside [0, %d)", d->path, i, d->n);
    }
    memset(info, 0, sizeof(*info));
    hid_t g = open_case(d, i);
    hsize_t di[4], dl[4];
    int rc = g >= 0 ? 0 : -1;
    rc |= rc == 0 ? volume_dims(g, "image", di) | volume_dims(g, "label", dl) : -1;
    if (rc == 0) {
        rc |= attr_read(g, "affine", H5T_NATIVE_DOUBLE, info->affine);
        rc |= attr_read(g, "original_shape", H5T_NATIVE_INT64, info->orig_shape);
        rc |= attr_read(g, "crop_start", H5T_NATIVE_INT64, info->crop.start);
        rc |= attr_read(g, "crop_end", H5T_NATIVE_INT64, info->crop.end);
        rc |= attr_read(g, "spacing", H5T_NATIVE_DOUBLE, info->spacing);
    }
    if (g >= 0) {
        H5Gclose(g);
    }
    if (rc != 0 || di[1] != dl[1] || di[2] != dl[2] || di[3] != dl[3]) {
        SS_FAIL(err, SS_EFORMAT, "%s: case %s is incomplete or malformed; run shardseg prep again",
                d->path, d->names[i]);
    }
    info->nchan = (int64_t)di[0];
    info->nlabel = (int64_t)dl[0];
    for (int a = 0; a < 3; a++) {
        info->dim[a] = (int64_t)di[a + 1];
    }
    return SS_OK;
}

// Reads rows [i0, i1) of <case>/<what> (all channels) into dst as mem_type.
static ss_status_t read_slab(const ss_h5data_t *d,
                             int i,
                             const char *what,
                             hid_t mem_type,
                             int64_t i0,
                             int64_t i1,
                             void *dst,
                             ss_error_t *err)
{
    if (i < 0 || i >= d->n) {
        SS_FAIL(err, SS_EINVAL, "%s: case index %d outside [0, %d)", d->path, i, d->n);
    }
    hid_t g = open_case(d, i);
    hid_t ds = g >= 0 ? H5Dopen2(g, what, H5P_DEFAULT) : -1;
    hid_t fs = ds >= 0 ? H5Dget_space(ds) : -1;
    hsize_t dims[4] = {0, 0, 0, 0};
    ss_status_t st = SS_OK;
    if (fs < 0 || H5Sget_simple_extent_dims(fs, dims, NULL) != 4) {
        st = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                          "%s: case %s has no readable %s; run shardseg prep again", d->path,
                          d->names[i], what);
    } else if (i0 < 0 || i1 <= i0 || (hsize_t)i1 > dims[1]) {
        st = ss_error_set(err, SS_ESHAPE, 0, __FILE__, __LINE__, __func__,
                          "%s: slab [%lld, %lld) outside the %llu rows of case %s", d->path,
                          (long long)i0, (long long)i1, (unsigned long long)dims[1], d->names[i]);
    } else {
        hsize_t start[4] = {0, (hsize_t)i0, 0, 0};
        hsize_t count[4] = {dims[0], (hsize_t)(i1 - i0), dims[2], dims[3]};
        hid_t ms = H5Screate_simple(4, count, NULL);
        if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(ds, mem_type, ms, fs, H5P_DEFAULT, dst) < 0) {
            st = ss_error_set(err, SS_EHDF5, 0, __FILE__, __LINE__, __func__,
                              "%s: reading %s of case %s failed (HDF5); check the file", d->path,
                              what, d->names[i]);
        }
        if (ms >= 0) {
            H5Sclose(ms);
        }
    }
    if (fs >= 0) {
        H5Sclose(fs);
    }
    if (ds >= 0) {
        H5Dclose(ds);
    }
    if (g >= 0) {
        H5Gclose(g);
    }
    return st;
}

ss_status_t ss_h5data_read_image(
    const ss_h5data_t *d, int i, int64_t i0, int64_t i1, float *dst, ss_error_t *err)
{
    return read_slab(d, i, "image", H5T_NATIVE_FLOAT, i0, i1, dst, err);
}

ss_status_t ss_h5data_read_label(
    const ss_h5data_t *d, int i, int64_t i0, int64_t i1, uint8_t *dst, ss_error_t *err)
{
    return read_slab(d, i, "label", H5T_NATIVE_UINT8, i0, i1, dst, err);
}
