// h5same A.h5 B.h5: exit 0 when the two HDF5 files hold the same objects with the same contents,
// else print the first difference on one line and exit 1 (2 for bad usage or unreadable files).
//
// "Same" is logical, not byte-for-byte: the same groups and datasets under the same names, the
// same attributes (names, types, shapes, values) on every object, and for each dataset the same
// type, shape, chunk shape, filter count and values. Variable-length strings compare by text.
// Storage addresses and insertion order may differ (a merged parallel prep file vs a serial one).
// A stand-in for h5diff, which lives in hdf5-tools and may be missing where the tests run.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#if H5_VERSION_GE(1, 12, 0)
typedef H5L_info2_t link_info_t;
#else
typedef H5L_info_t link_info_t;
#endif

typedef struct {
    hid_t other;      // the object in B to compare with
    const char *path; // where we are, for the message
    int count;        // items seen in A
    int bad;
} walk_t;

static int differ(const char *path, const char *what)
{
    printf("differ: %s: %s\n", path, what);
    return 1;
}

// Compares the values of two datasets or attributes (is_attr) of equal type and shape.
static int same_values(hid_t a, hid_t b, hid_t type, hid_t space, int is_attr, const char *path)
{
    hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n <= 0) {
        return 0;
    }
    int vstr = H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0;
    hid_t mt = vstr ? H5Tcopy(type) : H5Tget_native_type(type, H5T_DIR_ASCEND);
    size_t es = vstr ? sizeof(char *) : H5Tget_size(mt);
    char *ba = calloc((size_t)n, es), *bb = calloc((size_t)n, es);
    int rc = ba && bb ? 0 : differ(path, "out of memory");
    if (rc == 0) {
        int ok = is_attr ? H5Aread(a, mt, ba) >= 0 && H5Aread(b, mt, bb) >= 0
                         : H5Dread(a, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba) >= 0 &&
                               H5Dread(b, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb) >= 0;
        rc = ok ? 0 : differ(path, "cannot read");
        if (ok && vstr) {
            for (hssize_t i = 0; rc == 0 && i < n; i++) {
                const char *sa = ((char **)ba)[i], *sb = ((char **)bb)[i];
                rc = strcmp(sa ? sa : "", sb ? sb : "") == 0 ? 0 : differ(path, "strings differ");
            }
            H5Dvlen_reclaim(mt, space, H5P_DEFAULT, ba);
            H5Dvlen_reclaim(mt, space, H5P_DEFAULT, bb);
        } else if (ok) {
            rc = memcmp(ba, bb, (size_t)n * es) == 0 ? 0 : differ(path, "values differ");
        }
    }
    free(ba);
    free(bb);
    H5Tclose(mt);
    return rc;
}

// Type and shape of a and b (datasets or attributes) agree; then the values.
static int same_data(hid_t a, hid_t b, int is_attr, const char *path)
{
    hid_t ta = is_attr ? H5Aget_type(a) : H5Dget_type(a);
    hid_t tb = is_attr ? H5Aget_type(b) : H5Dget_type(b);
    hid_t sa = is_attr ? H5Aget_space(a) : H5Dget_space(a);
    hid_t sb = is_attr ? H5Aget_space(b) : H5Dget_space(b);
    hsize_t da[8] = {0}, db[8] = {0};
    int ra = H5Sget_simple_extent_dims(sa, da, NULL), rb = H5Sget_simple_extent_dims(sb, db, NULL);
    int rc = 0;
    if (H5Tequal(ta, tb) <= 0) {
        rc = differ(path, "types differ");
    } else if (ra != rb || ra < 0 || ra > 8 || memcmp(da, db, sizeof(da)) != 0) {
        rc = differ(path, "shapes differ");
    } else {
        rc = same_values(a, b, ta, sa, is_attr, path);
    }
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Tclose(tb);
    return rc;
}

static herr_t attr_cb(hid_t obj, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    walk_t *w = op;
    char path[1024];
    snprintf(path, sizeof(path), "%s@%s", w->path, name);
    w->count++;
    if (H5Aexists(w->other, name) <= 0) {
        w->bad = differ(path, "attribute missing in the second file");
        return 1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), b = H5Aopen(w->other, name, H5P_DEFAULT);
    w->bad = a < 0 || b < 0 ? differ(path, "cannot open") : same_data(a, b, 1, path);
    H5Aclose(a);
    H5Aclose(b);
    return w->bad ? 1 : 0;
}

static herr_t count_attr(hid_t obj, const char *name, const H5A_info_t *info, void *op)
{
    (void)obj, (void)name, (void)info;
    ++*(int *)op;
    return 0;
}

static int same_attrs(hid_t a, hid_t b, const char *path)
{
    walk_t w = {b, path, 0, 0};
    hsize_t idx = 0;
    H5Aiterate2(a, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &w);
    if (w.bad) {
        return 1;
    }
    int nb = 0;
    idx = 0;
    H5Aiterate2(b, H5_INDEX_NAME, H5_ITER_INC, &idx, count_attr, &nb);
    return nb == w.count ? 0 : differ(path, "the second file has more attributes");
}

// Chunk shape and number of filters of two datasets.
static int same_layout(hid_t a, hid_t b, const char *path)
{
    hid_t pa = H5Dget_create_plist(a), pb = H5Dget_create_plist(b);
    hsize_t ca[8] = {0}, cb[8] = {0};
    int rc = 0;
    if (H5Pget_layout(pa) != H5Pget_layout(pb)) {
        rc = differ(path, "storage layouts differ");
    } else if (H5Pget_layout(pa) == H5D_CHUNKED &&
               (H5Pget_chunk(pa, 8, ca) != H5Pget_chunk(pb, 8, cb) ||
                memcmp(ca, cb, sizeof(ca)) != 0)) {
        rc = differ(path, "chunk shapes differ");
    } else if (H5Pget_nfilters(pa) != H5Pget_nfilters(pb)) {
        rc = differ(path, "filters differ");
    }
    H5Pclose(pa);
    H5Pclose(pb);
    return rc;
}

static int same_group(hid_t a, hid_t b, const char *path);

static herr_t link_cb(hid_t g, const char *name, const link_info_t *info, void *op)
{
    (void)info;
    walk_t *w = op;
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", strcmp(w->path, "/") == 0 ? "" : w->path, name);
    w->count++;
    if (H5Lexists(w->other, name, H5P_DEFAULT) <= 0) {
        w->bad = differ(path, "missing in the second file");
        return 1;
    }
    hid_t a = H5Oopen(g, name, H5P_DEFAULT), b = H5Oopen(w->other, name, H5P_DEFAULT);
    H5I_type_t ta = a >= 0 ? H5Iget_type(a) : H5I_BADID, tb = b >= 0 ? H5Iget_type(b) : H5I_BADID;
    if (ta == H5I_BADID || ta != tb) {
        w->bad = differ(path, "object kinds differ");
    } else if (ta == H5I_GROUP) {
        w->bad = same_group(a, b, path);
    } else if (ta == H5I_DATASET) {
        w->bad = same_layout(a, b, path) || same_data(a, b, 0, path) || same_attrs(a, b, path);
    }
    H5Oclose(a);
    H5Oclose(b);
    return w->bad ? 1 : 0;
}

static herr_t count_link(hid_t g, const char *name, const link_info_t *info, void *op)
{
    (void)g, (void)name, (void)info;
    ++*(int *)op;
    return 0;
}

static int same_group(hid_t a, hid_t b, const char *path)
{
    if (same_attrs(a, b, path)) {
        return 1;
    }
    walk_t w = {b, path, 0, 0};
    hsize_t idx = 0;
    H5Literate(a, H5_INDEX_NAME, H5_ITER_INC, &idx, link_cb, &w);
    if (w.bad) {
        return 1;
    }
    int nb = 0;
    idx = 0;
    H5Literate(b, H5_INDEX_NAME, H5_ITER_INC, &idx, count_link, &nb);
    return nb == w.count ? 0 : differ(path, "the second file has more members");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: h5same A.h5 B.h5\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t a = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t b = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (a < 0 || b < 0) {
        fprintf(stderr, "h5same: %s: cannot open as HDF5\n", a < 0 ? argv[1] : argv[2]);
        return 2;
    }
    hid_t ga = H5Gopen2(a, "/", H5P_DEFAULT), gb = H5Gopen2(b, "/", H5P_DEFAULT);
    int rc = same_group(ga, gb, "/");
    H5Gclose(ga);
    H5Gclose(gb);
    H5Fclose(a);
    H5Fclose(b);
    if (rc == 0) {
        printf("same: %s %s\n", argv[1], argv[2]);
    }
    return rc ? 1 : 0;
}
