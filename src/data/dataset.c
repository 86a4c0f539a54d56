// dataset: MSD / BraTS folder discovery and case loading (see dataset.h for the layouts).
#include "shardseg/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shardseg/preprocess.h"
#include "data_impl.h"

// File-name suffixes of each channel (FLAIR, T1, T1ce, T2) and the label, per case-folder layout.
static const char *const g_brats_sfx[5] = {"_flair", "_t1", "_t1ce", "_t2", "_seg"};
static const char *const g_b23_sfx[5] = {"-t2f", "-t1n", "-t1c", "-t2w", "-seg"};
static const char *const g_ext[2] = {".nii.gz", ".nii"};

const char *ss_dataset_layout_name(ss_dataset_layout_t layout)
{
    switch (layout) {
    case SS_DATASET_MSD:
        return "msd";
    case SS_DATASET_BRATS:
        return "brats";
    case SS_DATASET_BRATS2023:
        return "brats2023";
    default:
        return "auto";
    }
}

const char *ss_dataset_layout_labels(ss_dataset_layout_t layout)
{
    switch (layout) {
    case SS_DATASET_MSD:
        return "msd: 0 background, 1 edema, 2 non-enhancing tumour, 3 enhancing";
    case SS_DATASET_BRATS:
        return "brats: 0 background, 1 NCR/NET, 2 ED, 4 ET";
    case SS_DATASET_BRATS2023:
        return "brats2023: 0 background, 1 NCR, 2 ED, 3 ET";
    default:
        return "unknown";
    }
}

ss_status_t
ss_dataset_layout_parse(const char *s, const char *what, ss_dataset_layout_t *out, ss_error_t *err)
{
    const ss_dataset_layout_t all[4] = {SS_DATASET_AUTO, SS_DATASET_MSD, SS_DATASET_BRATS,
                                        SS_DATASET_BRATS2023};
    for (int i = 0; s != NULL && i < 4; i++) {
        if (strcmp(s, ss_dataset_layout_name(all[i])) == 0) {
            *out = all[i];
            return SS_OK;
        }
    }
    SS_FAIL(err, SS_EINVAL, "%s: '%s' is not a layout; use msd, brats, brats2023 or auto",
            what ? what : "layout", s ? s : "(null)");
}

const char *ss_dataset_channel_name(int c)
{
    static const char *const names[SS_DATASET_NCHAN] = {"FLAIR", "T1", "T1ce", "T2"};
    return c >= 0 && c < SS_DATASET_NCHAN ? names[c] : "?";
}

char *ss__dup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s != NULL) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

int ss__is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ss__is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

// Sorted entries of dir (no hidden ones: MSD archives carry macOS "._x" files), keeping those
// that are directories (want_dirs) or regular files ending in ".nii.gz" / ".nii".
static ss_status_t list_dir(const char *dir, int want_dirs, char ***out, int *n, ss_error_t *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot open directory: %s; check --in", dir,
                    strerror(errno));
    }
    char **names = NULL;
    int count = 0, cap = 0;
    ss_status_t rc = SS_OK;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char *full = ss__dup_printf("%s/%s", dir, e->d_name);
        size_t len = strlen(e->d_name);
        int keep = full != NULL &&
                   (want_dirs ? ss__is_dir(full)
                              : ss__is_file(full) &&
                                    ((len > 7 && strcmp(e->d_name + len - 7, ".nii.gz") == 0) ||
                                     (len > 4 && strcmp(e->d_name + len - 4, ".nii") == 0)));
        free(full);
        if (!keep) {
            continue;
        }
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, (size_t)cap * sizeof(*names));
            if (grown == NULL) {
                rc = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__,
                                  "%s: out of memory listing the directory", dir);
                break;
            }
            names = grown;
        }
        names[count] = ss__dup_printf("%s", e->d_name);
        if (names[count++] == NULL) {
            rc = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__,
                              "%s: out of memory listing the directory", dir);
            break;
        }
    }
    closedir(d);
    if (rc != SS_OK) {
        free_names(names, count);
        return rc;
    }
    if (count > 0) {
        qsort(names, (size_t)count, sizeof(*names), cmp_str);
    }
    *out = names;
    *n = count;
    return SS_OK;
}

// Path of <dir>/<case><sfx>.nii.gz (or .nii) if it exists, else NULL.
static char *find_modality(const char *dir, const char *cs, const char *sfx)
{
    for (int e = 0; e < 2; e++) {
        char *p = ss__dup_printf("%s/%s%s%s", dir, cs, sfx, g_ext[e]);
        if (p != NULL && ss__is_file(p)) {
            return p;
        }
        free(p);
    }
    return NULL;
}

// Which case-folder layout the folder `sub` of root follows: BRATS, BRATS2023 or AUTO (neither).
static ss_dataset_layout_t folder_layout(const char *root, const char *sub)
{
    char *dir = ss__dup_printf("%s/%s", root, sub);
    ss_dataset_layout_t l = SS_DATASET_AUTO;
    char *p = NULL;
    if (dir != NULL && (p = find_modality(dir, sub, g_brats_sfx[0])) != NULL) {
        l = SS_DATASET_BRATS;
    } else if (dir != NULL && (p = find_modality(dir, sub, g_b23_sfx[0])) != NULL) {
        l = SS_DATASET_BRATS2023;
    }
    free(p);
    free(dir);
    return l;
}

static ss_status_t detect_layout(const char *root, ss_dataset_layout_t *out, ss_error_t *err)
{
    char *json = ss__dup_printf("%s/dataset.json", root), *imgs = ss__dup_printf("%s/imagesTr", root);
    int msd = json && imgs && ss__is_file(json) && ss__is_dir(imgs);
    free(json);
    free(imgs);
    char **subs = NULL;
    int nsub = 0, nb = 0, n23 = 0;
    SS_TRY(list_dir(root, 1, &subs, &nsub, err));
    const char *first_b = NULL, *first_23 = NULL;
    for (int i = 0; i < nsub; i++) {
        ss_dataset_layout_t l = folder_layout(root, subs[i]);
        nb += l == SS_DATASET_BRATS;
        n23 += l == SS_DATASET_BRATS2023;
        first_b = l == SS_DATASET_BRATS && !first_b ? subs[i] : first_b;
        first_23 = l == SS_DATASET_BRATS2023 && !first_23 ? subs[i] : first_23;
    }
    ss_status_t rc = SS_OK;
    if ((msd && (nb || n23)) || (nb && n23)) {
        rc = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                          "%s: mixed layouts (%s%s%s%s%s); keep one dataset per folder or pass "
                          "--format",
                          root, msd ? "MSD imagesTr/ " : "", nb ? "BraTS case " : "",
                          nb ? first_b : "", n23 ? " BraTS-2023 case " : "", n23 ? first_23 : "");
    } else if (!msd && !nb && !n23) {
        rc = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                          "%s: no cases found (expected MSD dataset.json + imagesTr/, or one "
                          "folder per case with <case>_flair.nii.gz or <case>-t2f.nii.gz); check "
                          "--in",
                          root);
    } else {
        *out = msd ? SS_DATASET_MSD : (nb ? SS_DATASET_BRATS : SS_DATASET_BRATS2023);
    }
    free_names(subs, nsub);
    return rc;
}

static void free_case(ss_case_t *c)
{
    free(c->name);
    for (int ch = 0; ch < SS_DATASET_NCHAN; ch++) {
        free(c->image[ch]);
    }
    free(c->label);
    memset(c, 0, sizeof(*c));
}

// Strips ".nii.gz" / ".nii" from an MSD file name into a new string.
static char *stem(const char *file)
{
    char *s = ss__dup_printf("%s", file);
    size_t n = s ? strlen(s) : 0;
    if (n > 7 && strcmp(s + n - 7, ".nii.gz") == 0) {
        s[n - 7] = '\0';
    } else if (n > 4 && strcmp(s + n - 4, ".nii") == 0) {
        s[n - 4] = '\0';
    }
    return s;
}

static ss_status_t msd_case(const char *root, const char *file, ss_case_t *c, ss_error_t *err)
{
    c->name = stem(file);
    c->label = ss__dup_printf("%s/labelsTr/%s", root, file);
    for (int ch = 0; ch < SS_DATASET_NCHAN; ch++) {
        c->image[ch] = ss__dup_printf("%s/imagesTr/%s", root, file);
        if (c->image[ch] == NULL) {
            SS_FAIL(err, SS_ENOMEM, "%s: out of memory", root);
        }
    }
    if (c->name == NULL || c->label == NULL) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", root);
    }
    if (!ss__is_file(c->label)) {
        SS_FAIL(err, SS_EFORMAT, "%s: case %s has no label file %s; add it or remove the case",
                root, c->name, c->label);
    }
    return SS_OK;
}

static ss_status_t folder_case(
    const char *root, const char *sub, ss_dataset_layout_t layout, ss_case_t *c, ss_error_t *err)
{
    const char *const *sfx = layout == SS_DATASET_BRATS ? g_brats_sfx : g_b23_sfx;
    c->name = ss__dup_printf("%s", sub);
    char *dir = ss__dup_printf("%s/%s", root, sub);
    if (c->name == NULL || dir == NULL) {
        free(dir);
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", root);
    }
    ss_status_t rc = SS_OK;
    for (int f = 0; f < 5 && rc == SS_OK; f++) {
        char *p = find_modality(dir, sub, sfx[f]);
        if (p == NULL) {
            rc = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                              "%s/%s%s.nii.gz: missing %s file of case %s; add it or remove the "
                              "case",
                              dir, sub, sfx[f], f < 4 ? ss_dataset_channel_name(f) : "label", sub);
        } else if (f < 4) {
            c->image[f] = p;
        } else {
            c->label = p;
        }
    }
    free(dir);
    return rc;
}

// 1 if folder root/sub holds any file (modality or label) of the case-folder layout.
static int folder_has_any(const char *root, const char *sub, ss_dataset_layout_t layout)
{
    const char *const *sfx = layout == SS_DATASET_BRATS ? g_brats_sfx : g_b23_sfx;
    char *dir = ss__dup_printf("%s/%s", root, sub);
    int any = 0;
    for (int f = 0; f < 5 && dir != NULL && !any; f++) {
        char *p = find_modality(dir, sub, sfx[f]);
        any = p != NULL;
        free(p);
    }
    free(dir);
    return any;
}

static ss_status_t list_cases(ss_dataset_t *ds, ss_error_t *err)
{
    int msd = ds->layout == SS_DATASET_MSD;
    char *where = msd ? ss__dup_printf("%s/imagesTr", ds->root) : ss__dup_printf("%s", ds->root);
    if (where == NULL) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", ds->root);
    }
    char **names = NULL;
    int n = 0;
    ss_status_t rc = list_dir(where, !msd, &names, &n, err);
    free(where);
    if (rc != SS_OK) {
        return rc;
    }
    // A forced case-folder layout skips folders of no layout (e.g. "logs/") but not broken cases.
    ds->cases = calloc(n > 0 ? (size_t)n : 1, sizeof(ss_case_t));
    if (ds->cases == NULL) {
        free_names(names, n);
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", ds->root);
    }
    for (int i = 0; i < n && rc == SS_OK; i++) {
        if (!msd && !folder_has_any(ds->root, names[i], ds->layout)) {
            continue;
        }
        ss_case_t *c = &ds->cases[ds->ncases++];
        rc = msd ? msd_case(ds->root, names[i], c, err)
                 : folder_case(ds->root, names[i], ds->layout, c, err);
    }
    free_names(names, n);
    if (rc == SS_OK && ds->ncases == 0) {
        rc = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                          "%s: no %s cases found; check --in and --format", ds->root,
                          ss_dataset_layout_name(ds->layout));
    }
    return rc;
}

ss_status_t
ss_dataset_open(const char *dir, ss_dataset_layout_t layout, ss_dataset_t **out, ss_error_t *err)
{
    if (dir == NULL || out == NULL) {
        SS_FAIL(err, SS_EINVAL, "ss_dataset_open: NULL argument");
    }
    *out = NULL;
    if (!ss__is_dir(dir)) {
        SS_FAIL_LIB(err, SS_EINVAL, errno, "%s: not a directory; check --in", dir);
    }
    ss_dataset_t *ds = calloc(1, sizeof(*ds));
    if (ds == NULL || (ds->root = ss__dup_printf("%s", dir)) == NULL) {
        free(ds);
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", dir);
    }
    ds->layout = layout;
    ss_status_t rc = layout == SS_DATASET_AUTO ? detect_layout(dir, &ds->layout, err) : SS_OK;
    if (rc == SS_OK) {
        rc = list_cases(ds, err);
    }
    if (rc != SS_OK) {
        ss_dataset_destroy(&ds);
        return rc;
    }
    *out = ds;
    return SS_OK;
}

void ss_dataset_destroy(ss_dataset_t **pds)
{
    if (pds == NULL || *pds == NULL) {
        return;
    }
    ss_dataset_t *ds = *pds;
    for (int i = 0; i < ds->ncases; i++) {
        free_case(&ds->cases[i]);
    }
    free(ds->cases);
    free(ds->root);
    free(ds);
    *pds = NULL;
}

ss_status_t ss_dataset_map_labels(ss_dataset_layout_t layout,
                                  const float *raw,
                                  int64_t n,
                                  uint8_t *out,
                                  const char *path,
                                  ss_error_t *err)
{
    // Source value -> internal class (0 bg, 1 NCR/NET, 2 ED, 3 ET); 255 = not in the set.
    static const uint8_t msd[5] = {0, 2, 1, 3, 255}, brats[5] = {0, 1, 2, 255, 3},
                         b23[5] = {0, 1, 2, 3, 255};
    const uint8_t *map =
        layout == SS_DATASET_MSD ? msd : (layout == SS_DATASET_BRATS ? brats : b23);
    if (layout == SS_DATASET_AUTO) {
        SS_FAIL(err, SS_EINVAL, "%s: label convention unknown (layout auto)", path);
    }
    // Sequential on purpose: out may alias raw (byte q is written after float q was read).
    for (int64_t q = 0; q < n; q++) {
        float v = raw[q];
        int iv = v >= 0.0f && v <= 4.0f ? (int)v : -1;
        uint8_t m = iv >= 0 && (float)iv == v ? map[iv] : 255;
        if (m == 255) {
            SS_FAIL(err, SS_EFORMAT,
                    "%s: label value %g is not in the %s set; fix the label file or pass the "
                    "right --format",
                    path, (double)v, ss_dataset_layout_labels(layout));
        }
        out[q] = m;
    }
    return SS_OK;
}

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

// Headers of the case's distinct files (images then label) and their geometry check.
static ss_status_t case_headers(const ss_dataset_t *ds,
                                const ss_case_t *c,
                                ss_nifti_header_t *hdrs,
                                const char **paths,
                                int *n,
                                ss_error_t *err)
{
    int msd = ds->layout == SS_DATASET_MSD;
    *n = 0;
    for (int ch = 0; ch < (msd ? 1 : SS_DATASET_NCHAN); ch++) {
        paths[(*n)++] = c->image[ch];
    }
    paths[(*n)++] = c->label;
    for (int f = 0; f < *n; f++) {
        SS_TRY(ss_nifti_read_header(paths[f], &hdrs[f], err));
        int64_t want_t = msd && f == 0 ? SS_DATASET_NCHAN : 1;
        if (hdrs[f].dim[3] != want_t) {
            SS_FAIL(err, SS_ESHAPE, "%s: %lld volumes, expected %lld (%s layout); check the file",
                    paths[f], (long long)hdrs[f].dim[3], (long long)want_t,
                    ss_dataset_layout_name(ds->layout));
        }
    }
    return ss_preprocess_check_geometry(hdrs, paths, *n, err);
}

ss_status_t ss_dataset_load_case(
    const ss_dataset_t *ds, int idx, ss_case_data_t *out, ss_budget_t *b, ss_error_t *err)
{
    if (ds == NULL || out == NULL || idx < 0 || idx >= ds->ncases) {
        SS_FAIL(err, SS_EINVAL, "ss_dataset_load_case: bad case index %d", idx);
    }
    memset(out, 0, sizeof(*out));
    const ss_case_t *c = &ds->cases[idx];
    ss_nifti_header_t hdrs[SS_DATASET_NCHAN + 1], h;
    const char *paths[SS_DATASET_NCHAN + 1];
    int nfiles = 0;
    SS_TRY(case_headers(ds, c, hdrs, paths, &nfiles, err));
    const int64_t vox = hdrs[0].dim[0] * hdrs[0].dim[1] * hdrs[0].dim[2];
    out->hdr = hdrs[0];
    out->hdr.dim[3] = 1;
    out->image_bytes = (size_t)(vox * SS_DATASET_NCHAN) * sizeof(float);
    out->label_bytes = (size_t)vox * sizeof(float);
    ss_status_t rc = ss_aligned_alloc((void **)&out->image, out->image_bytes, b, c->name, err);
    if (rc == SS_OK) {
        rc = ss_aligned_alloc((void **)&out->label, out->label_bytes, b, c->name, err);
    }
    // MSD: the 4D file fills all channels at once (T = 4 is the channel axis).
    for (int f = 0; f < nfiles - 1 && rc == SS_OK; f++) {
        rc = ss_nifti_read_into(paths[f], &h, out->image + f * vox, vox * (nfiles == 2 ? 4 : 1),
                                err);
        out->disk_bytes += file_size(paths[f]);
    }
    if (rc == SS_OK) {
        rc = ss_nifti_read_into(c->label, &h, (float *)(void *)out->label, vox, err);
        out->disk_bytes += file_size(c->label);
    }
    if (rc == SS_OK) {
        rc = ss_dataset_map_labels(ds->layout, (const float *)(void *)out->label, vox, out->label,
                                   c->label, err);
    }
    if (rc != SS_OK) {
        ss_case_data_free(out, b);
    }
    return rc;
}

void ss_case_data_free(ss_case_data_t *cd, ss_budget_t *b)
{
    if (cd == NULL) {
        return;
    }
    ss_aligned_free(cd->image, cd->image_bytes, b);
    ss_aligned_free(cd->label, cd->label_bytes, b);
    cd->image = NULL;
    cd->label = NULL;
}
