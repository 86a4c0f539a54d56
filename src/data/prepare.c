// prepare.c: one raw case -> z-scored, cropped network input (prepare.h), the per-case half of
// `shardseg prep` for inference.
#include "shardseg/prepare.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data_impl.h"

static const char *const g_sfx[2][5] = {
    {"_flair", "_t1", "_t1ce", "_t2", "_seg"}, // BraTS 2018-2021
    {"-t2f", "-t1n", "-t1c", "-t2w", "-seg"},  // BraTS 2023
};
static const char *const g_ext[2] = {".nii.gz", ".nii"};

static int has_nii_suffix(const char *p)
{
    size_t n = strlen(p);
    return (n > 7 && strcmp(p + n - 7, ".nii.gz") == 0) ||
           (n > 4 && strcmp(p + n - 4, ".nii") == 0);
}

// The folder's name without trailing slashes, as a new string ("a/b/" -> "b").
static char *folder_name(const char *dir)
{
    char *s = ss__dup_printf("%s", dir);
    size_t n = s ? strlen(s) : 0;
    while (n > 1 && s[n - 1] == '/') {
        s[--n] = '\0';
    }
    const char *slash = s ? strrchr(s, '/') : NULL;
    char *name = slash ? ss__dup_printf("%s", slash + 1) : s;
    if (slash) {
        free(s);
    }
    return name;
}

// Path of <dir>/<cs><sfx>.nii.gz (or .nii) if it exists, else NULL.
static char *find_file(const char *dir, const char *cs, const char *sfx)
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

// 0 BraTS, 1 BraTS 2023 (the first whose files the folder holds), -1 neither.
static int folder_kind(const char *dir, const char *name)
{
    for (int l = 0; l < 2; l++) {
        for (int f = 0; f < 5; f++) {
            char *p = find_file(dir, name, g_sfx[l][f]);
            free(p);
            if (p != NULL) {
                return l;
            }
        }
    }
    return -1;
}

int ss_prepare_is_case(const char *path)
{
    if (ss__is_file(path)) {
        return has_nii_suffix(path);
    }
    if (!ss__is_dir(path)) {
        return 0;
    }
    char *name = folder_name(path);
    int kind = name ? folder_kind(path, name) : -1;
    free(name);
    return kind >= 0;
}

void ss_prepare_case_free(ss_case_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->name);
    for (int ch = 0; ch < SS_DATASET_NCHAN; ch++) {
        free(c->image[ch]);
    }
    free(c->label);
    memset(c, 0, sizeof(*c));
}

// MSD: one 4D file for all channels; the label, if any, in ../labelsTr/<file>.
static ss_status_t locate_msd(const char *path, ss_case_t *c, ss_error_t *err)
{
    const char *slash = strrchr(path, '/');
    const char *file = slash ? slash + 1 : path;
    size_t n = strlen(file);
    c->name =
        ss__dup_printf("%.*s", (int)(n - (n > 7 && strcmp(file + n - 7, ".gz") == 0 ? 7 : 4)), file);
    c->label = ss__dup_printf("%.*s../labelsTr/%s", (int)(file - path), path, file);
    int ok = c->name != NULL && c->label != NULL;
    for (int ch = 0; ch < SS_DATASET_NCHAN && ok; ch++) {
        ok = (c->image[ch] = ss__dup_printf("%s", path)) != NULL;
    }
    if (!ok) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", path);
    }
    if (!ss__is_file(c->label)) {
        free(c->label);
        c->label = NULL;
    }
    return SS_OK;
}

static ss_status_t locate_folder(const char *dir, int kind, ss_case_t *c, ss_error_t *err)
{
    c->name = folder_name(dir);
    if (c->name == NULL) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory", dir);
    }
    for (int f = 0; f < SS_DATASET_NCHAN; f++) {
        c->image[f] = find_file(dir, c->name, g_sfx[kind][f]);
        if (c->image[f] == NULL) {
            SS_FAIL(err, SS_EFORMAT,
                    "%s/%s%s.nii.gz: missing %s file of case %s; add it (inference needs all "
                    "four modalities)",
                    dir, c->name, g_sfx[kind][f], ss_dataset_channel_name(f), c->name);
        }
    }
    c->label = find_file(dir, c->name, g_sfx[kind][4]);
    return SS_OK;
}

ss_status_t ss_prepare_locate(const char *path,
                              ss_dataset_layout_t layout,
                              ss_case_t *c,
                              ss_dataset_layout_t *found,
                              ss_error_t *err)
{
    memset(c, 0, sizeof(*c));
    ss_status_t rc;
    if (ss__is_file(path) && has_nii_suffix(path) &&
        (layout == SS_DATASET_AUTO || layout == SS_DATASET_MSD)) {
        *found = SS_DATASET_MSD;
        rc = locate_msd(path, c, err);
    } else if (ss__is_dir(path) && layout != SS_DATASET_MSD) {
        char *name = folder_name(path);
        int kind = name ? folder_kind(path, name) : -1;
        free(name);
        kind = layout == SS_DATASET_BRATS ? 0 : (layout == SS_DATASET_BRATS2023 ? 1 : kind);
        if (kind < 0) {
            SS_FAIL(err, SS_EINVAL,
                    "%s: not a case folder (no <case>_flair.nii.gz or <case>-t2f.nii.gz named "
                    "after the folder); give a BraTS case folder, an MSD image or data.h5:CASE",
                    path);
        }
        *found = kind == 0 ? SS_DATASET_BRATS : SS_DATASET_BRATS2023;
        rc = locate_folder(path, kind, c, err);
    } else {
        SS_FAIL_LIB(err, SS_EINVAL, ss__is_file(path) || ss__is_dir(path) ? 0 : ENOENT,
                    "%s: neither a case folder nor a NIfTI image; give a BraTS case folder, an "
                    "MSD imagesTr/<case>.nii.gz or data.h5:CASE",
                    path);
    }
    if (rc != SS_OK) {
        ss_prepare_case_free(c);
    }
    return rc;
}

ss_status_t ss_prepare_image(float *image,
                             int64_t nchan,
                             const int64_t dim[3],
                             uint8_t *label,
                             ss_box_t *box,
                             double *mean,
                             double *std,
                             const ss_exec_t *ex,
                             ss_budget_t *b,
                             ss_error_t *err)
{
    const int64_t vox = dim[0] * dim[1] * dim[2];
    uint8_t *mask = NULL;
    SS_TRY(ss_aligned_alloc((void **)&mask, (size_t)vox, b, "brain mask", err));
    ss_preprocess_brain_mask(mask, image, nchan, dim, NULL, ex);
    // The box covers the tumour too (as prep): mask | label, computed in place then undone.
    for (int64_t v = 0; label != NULL && v < vox; v++) {
        mask[v] |= (uint8_t)((label[v] != 0) << 1);
    }
    ss_status_t rc = ss_preprocess_bbox(box, mask, dim, err);
    for (int64_t v = 0; label != NULL && v < vox; v++) {
        mask[v] &= 1;
    }
    int64_t cdim[3];
    for (int a = 0; a < 3; a++) {
        cdim[a] = box->end[a] - box->start[a];
    }
    if (rc == SS_OK) {
        ss_preprocess_crop(image, sizeof(float), nchan, dim, box);
        ss_preprocess_crop(mask, 1, 1, dim, box);
        if (label != NULL) {
            ss_preprocess_crop(label, 1, 1, dim, box);
        }
        rc = ss_preprocess_zscore(image, nchan, cdim, mask, mean, std, ex, err);
    }
    ss_aligned_free(mask, (size_t)vox, b);
    return rc;
}

// Headers of the case's distinct image files, checked for shape and shared geometry.
static ss_status_t image_headers(const ss_case_t *c,
                                 int msd,
                                 ss_nifti_header_t *hdrs,
                                 const char **paths,
                                 int *n,
                                 ss_error_t *err)
{
    *n = msd ? 1 : SS_DATASET_NCHAN;
    for (int f = 0; f < *n; f++) {
        paths[f] = c->image[f];
        SS_TRY(ss_nifti_read_header(paths[f], &hdrs[f], err));
        int64_t want_t = msd ? SS_DATASET_NCHAN : 1;
        if (hdrs[f].dim[3] != want_t) {
            SS_FAIL(err, SS_ESHAPE,
                    "%s: %lld volume(s), expected %lld (%s); give a case with all four "
                    "modalities",
                    paths[f], (long long)hdrs[f].dim[3], (long long)want_t,
                    msd ? "MSD 4D image" : "one modality per file");
        }
    }
    return ss_preprocess_check_geometry(hdrs, paths, *n, err);
}

// Moves the cropped image into a buffer of its own size: the brain box is typically a third of
// a BraTS volume, and the uncropped buffer would otherwise stay allocated through inference.
static ss_status_t shrink(ss_prepared_t *p, ss_budget_t *b, ss_error_t *err)
{
    size_t bytes = (size_t)(SS_DATASET_NCHAN * p->dim[0] * p->dim[1] * p->dim[2]) * sizeof(float);
    float *small = NULL;
    if (bytes == p->image_bytes) {
        return SS_OK;
    }
    SS_TRY(ss_aligned_alloc((void **)&small, bytes, b, "cropped case", err));
    memcpy(small, p->image, bytes);
    ss_aligned_free(p->image, p->image_bytes, b);
    p->image = small;
    p->image_bytes = bytes;
    return SS_OK;
}

ss_status_t ss_prepare_load(const ss_case_t *c,
                            ss_dataset_layout_t layout,
                            ss_prepared_t *out,
                            const ss_exec_t *ex,
                            ss_budget_t *b,
                            ss_error_t *err)
{
    memset(out, 0, sizeof(*out));
    ss_nifti_header_t hdrs[SS_DATASET_NCHAN], h;
    const char *paths[SS_DATASET_NCHAN];
    int n = 0;
    const int msd = layout == SS_DATASET_MSD;
    SS_TRY(image_headers(c, msd, hdrs, paths, &n, err));
    const int64_t vox = hdrs[0].dim[0] * hdrs[0].dim[1] * hdrs[0].dim[2];
    out->hdr = hdrs[0];
    out->hdr.dim[3] = 1;
    out->layout = layout;
    out->image_bytes = (size_t)(vox * SS_DATASET_NCHAN) * sizeof(float);
    ss_status_t rc = ss_aligned_alloc((void **)&out->image, out->image_bytes, b, c->name, err);
    // MSD: the 4D file fills all channels at once (T = 4 is the channel axis).
    for (int f = 0; f < n && rc == SS_OK; f++) {
        rc = ss_nifti_read_into(paths[f], &h, out->image + f * vox, vox * (msd ? 4 : 1), err);
    }
    if (rc == SS_OK) {
        rc = ss_prepare_image(out->image, SS_DATASET_NCHAN, out->hdr.dim, NULL, &out->crop,
                              out->mean, out->std, ex, b, err);
    }
    if (rc == SS_OK) {
        for (int a = 0; a < 3; a++) {
            out->dim[a] = out->crop.end[a] - out->crop.start[a];
        }
        rc = shrink(out, b, err);
    }
    if (rc != SS_OK) {
        ss_error_prefix(err, "case %s", c->name);
        ss_prepare_free(out, b);
    }
    return rc;
}

void ss_prepare_free(ss_prepared_t *p, ss_budget_t *b)
{
    if (p == NULL) {
        return;
    }
    ss_aligned_free(p->image, p->image_bytes, b);
    p->image = NULL;
}
