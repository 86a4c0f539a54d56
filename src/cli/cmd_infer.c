// shardseg infer: sliding-window inference of a trained network on whole cases, written as label
// maps in each case's original geometry (same shape and affine: the prediction overlays the input
// in ITK-SNAP or 3D Slicer).
//
// Per case: load and preprocess exactly as prep does (prepare.h: brain mask, crop to the brain's
// bounding box, z-score on brain voxels) or read a prep'd case from data.h5; blend the network's
// logits over sliding windows (infer.h, MONAI semantics); sigmoid > 0.5 (logit > 0) per region;
// regions -> labels of the input's convention; un-crop into the original grid (zeros outside the
// box); write uint8 NIfTI atomically. Many cases are dealt round-robin over the MPI ranks.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardseg/h5data.h"
#include "shardseg/image.h"
#include "shardseg/infer.h"
#include "shardseg/prepare.h"
#include "shardseg/shardseg.h"
#include "shardseg/weights.h"

#include "cli.h"
#include "opts.h"

static const char g_usage[] =
    "usage: shardseg infer --weights W.h5 --input CASE --out pred.nii.gz [--overlap F]\n"
    "                      [--mode gaussian|constant] [--tta] [--keep-largest] [--png "
    "overlay.png]\n"
    "                      [--labels brats|brats2023|msd]\n"
    "       shardseg infer --weights W.h5 --input DIR --out OUTDIR [...]\n"
    "CASE: a BraTS 2018-21 / 2023 case folder, an MSD 4D image (imagesTr/<case>.nii.gz), or\n"
    "data.h5:CASE (a case of a prep'd file). Raw cases are preprocessed as prep does. DIR: a "
    "folder\n"
    "of case folders, an MSD dataset (imagesTr/) or a prep'd data.h5 (all its cases); each case\n"
    "goes to OUTDIR/<case>.nii.gz, cases dealt over the MPI ranks.\n"
    "Output: uint8 labels in the input's convention (brats: 1 NCR, 2 ED, 4 ET; brats2023: 1 NCR,\n"
    "2 ED, 3 ET; msd: 1 edema, 2 non-enhancing, 3 enhancing; a 1-channel network: 1 tumour), in\n"
    "the case's original shape and affine. One line per case on stdout: seconds and peak RSS.\n"
    "--png: three orthogonal slices through the predicted tumour's centre, the segmentation over\n"
    "FLAIR, with a legend (a folder for many cases: PNGDIR/<case>.png).\n";

typedef struct {
    const char *weights, *input, *out, *mode, *png, *labels;
    double overlap;
    int tta;
    int keep_largest;
} infer_opts_t;

typedef struct {
    char *input; // a case path or "data.h5:NAME"
    char *out;   // its output NIfTI
    char *png;   // its overlay picture, or NULL
} infer_item_t;

typedef struct {
    ss_cli_ctx_t *ctx;
    const infer_opts_t *o;
    ss_model_config_t cfg;
    ss_model_t *m;
    ss_infer_params_t p;
    ss_dataset_layout_t labels; // forced convention, AUTO: the input's
    ss_budget_t budget;
    ss_exec_t ex;
    infer_item_t *items;
    int nitems;
    int many; // --input holds many cases: --out and --png are folders
} infer_run_t;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *sfx)
{
    size_t n = strlen(s), m = strlen(sfx);
    return n >= m && strcmp(s + n - m, sfx) == 0;
}

static char *dup_str(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s != NULL) {
        snprintf(s, n, "%s%s%s", a, b, c);
    }
    return s;
}

// Splits "data.h5:NAME" when the part before the last ':' is an existing file (0 otherwise).
static int split_h5(const char *in, char *file, size_t len, const char **name)
{
    const char *colon = strrchr(in, ':');
    if (colon == NULL || (size_t)(colon - in) >= len) {
        return 0;
    }
    snprintf(file, len, "%.*s", (int)(colon - in), in);
    *name = colon + 1;
    return is_file(file);
}

// Options that need more than a range check. 0 or the exit code.
static int check_opts(const infer_opts_t *o, infer_run_t *r, const char *cmd)
{
    ss_error_t err;
    if (o->weights == NULL || o->input == NULL || o->out == NULL) {
        ss_cli_error(cmd, "%s: missing; give --weights W.h5 --input CASE --out pred.nii.gz",
                     o->weights == NULL ? "--weights" : (o->input == NULL ? "--input" : "--out"));
        return SS_EXIT_USAGE;
    }
    if (strcmp(o->mode, "gaussian") != 0 && strcmp(o->mode, "constant") != 0) {
        ss_cli_error(cmd, "--mode: '%s' is not a blending mode; use gaussian or constant", o->mode);
        return SS_EXIT_USAGE;
    }
    r->labels = SS_DATASET_AUTO;
    if (o->labels != NULL &&
        (ss_dataset_layout_parse(o->labels, "--labels", &r->labels, &err) != SS_OK ||
         r->labels == SS_DATASET_AUTO)) {
        ss_cli_error(cmd, "--labels: '%s' is not a label convention; use brats, brats2023 or msd",
                     o->labels);
        return SS_EXIT_USAGE;
    }
    ss_infer_params_default(&r->p);
    r->p.overlap = o->overlap;
    r->p.mode = o->mode[0] == 'g' ? SS_BLEND_GAUSSIAN : SS_BLEND_CONSTANT;
    r->p.flips = o->tta;
    return 0;
}

// Fails unless a file can be created next to path (the output is renamed into place there).
static ss_status_t check_writable(const char *path, const char *opt, ss_error_t *err)
{
    char tmp[4096];
    if (is_dir(path)) {
        SS_FAIL(err, SS_EINVAL, "%s: is a directory; give a file name such as pred.nii.gz", path);
    }
    if (snprintf(tmp, sizeof(tmp), "%s.probe.XXXXXX", path) >= (int)sizeof(tmp)) {
        SS_FAIL(err, SS_EINVAL, "%s: path too long", path);
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        SS_FAIL_LIB(err, SS_EINVAL, errno, "%s: cannot write there: %s; choose a writable %s", path,
                    strerror(errno), opt);
    }
    close(fd);
    unlink(tmp);
    return SS_OK;
}

static ss_status_t add_item(infer_run_t *r, const char *in, const char *out, ss_error_t *err)
{
    infer_item_t *it = realloc(r->items, (size_t)(r->nitems + 1) * sizeof(*it));
    if (it == NULL) {
        SS_FAIL(err, SS_ENOMEM, "out of memory for the case list");
    }
    r->items = it;
    infer_item_t *e = &it[r->nitems++];
    e->input = dup_str(in, "", "");
    e->out = dup_str(out, "", "");
    e->png = NULL;
    if (e->input == NULL || e->out == NULL) {
        SS_FAIL(err, SS_ENOMEM, "out of memory for the case list");
    }
    if (r->o->png != NULL && !r->many) {
        e->png = dup_str(r->o->png, "", "");
    } else if (r->o->png != NULL) {
        // PNGDIR/<case>.png next to OUTDIR/<case>.nii.gz
        const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
        char *p = dup_str(r->o->png, "/", base);
        char *dot = p != NULL ? strstr(p + strlen(r->o->png) + 1, ".nii") : NULL;
        if (dot != NULL) {
            snprintf(dot, 5, ".png");
        }
        e->png = p;
    }
    if (r->o->png != NULL && e->png == NULL) {
        SS_FAIL(err, SS_ENOMEM, "out of memory for the case list");
    }
    return SS_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Sorted names in dir that are cases (a case folder, or a .nii[.gz] image when msd).
static ss_status_t list_cases(const char *dir, int msd, char ***names, int *n, ss_error_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        SS_FAIL_LIB(err, SS_EINVAL, errno, "%s: cannot list: %s; check --input", dir,
                    strerror(errno));
    }
    struct dirent *e;
    *names = NULL;
    *n = 0;
    ss_status_t rc = SS_OK;
    while (rc == SS_OK && (e = readdir(d)) != NULL) {
        char *p = e->d_name[0] == '.' ? NULL : dup_str(dir, "/", e->d_name);
        int ok = p != NULL && (msd ? is_file(p) && (ends_with(p, ".nii.gz") || ends_with(p, ".nii"))
                                   : is_dir(p) && ss_prepare_is_case(p));
        free(p);
        char **grown = ok ? realloc(*names, (size_t)(*n + 1) * sizeof(char *)) : *names;
        if (ok && (grown == NULL || (grown[*n] = dup_str(e->d_name, "", "")) == NULL)) {
            rc = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__, "out of memory");
        }
        *names = grown != NULL ? grown : *names;
        *n += ok && rc == SS_OK;
    }
    closedir(d);
    if (*n > 0) {
        qsort(*names, (size_t)*n, sizeof(char *), cmp_str);
    }
    return rc;
}

// Adds case `name` of folder `where` (an MSD image when msd) with output outdir/<case>.nii.gz.
// Its files are located now: a broken case stops the run before any output is written.
static ss_status_t add_dir_case(infer_run_t *r,
                                const char *where,
                                const char *name,
                                int msd,
                                const char *outdir,
                                ss_error_t *err)
{
    char stem[1024], in[4096], out[4096];
    snprintf(stem, sizeof(stem), "%s", name);
    char *dot = strstr(stem, ".nii");
    if (msd && dot != NULL) {
        *dot = '\0';
    }
    if (snprintf(in, sizeof(in), "%s/%s", where, name) >= (int)sizeof(in) ||
        snprintf(out, sizeof(out), "%s/%s.nii.gz", outdir, stem) >= (int)sizeof(out)) {
        SS_FAIL(err, SS_EINVAL, "%s/%s: path too long", where, name);
    }
    ss_case_t c;
    ss_dataset_layout_t found;
    SS_TRY(ss_prepare_locate(in, SS_DATASET_AUTO, &c, &found, err));
    ss_prepare_case_free(&c);
    return add_item(r, in, out, err);
}

// One item per case of a folder of cases (BraTS folders, an MSD root or its imagesTr).
static ss_status_t
items_of_dir(infer_run_t *r, const char *dir, const char *outdir, ss_error_t *err)
{
    char *imgs = dup_str(dir, "/imagesTr", "");
    int msd = imgs != NULL && is_dir(imgs);
    const char *where = msd ? imgs : dir;
    char **names = NULL;
    int n = 0;
    ss_status_t rc = imgs ? list_cases(where, msd, &names, &n, err) : SS_ENOMEM;
    if (rc == SS_OK && n == 0 && !msd) {
        msd = 1; // an imagesTr folder itself
        rc = list_cases(where, 1, &names, &n, err);
    }
    if (rc == SS_OK && n == 0) {
        rc = ss_error_set(err, SS_EINVAL, 0, __FILE__, __LINE__, __func__,
                          "%s: no cases found (case folders, MSD imagesTr/ or .nii.gz images); "
                          "check --input",
                          dir);
    }
    for (int i = 0; i < n; i++) {
        rc = rc == SS_OK ? add_dir_case(r, where, names[i], msd, outdir, err) : rc;
        free(names[i]);
    }
    free(names);
    free(imgs);
    return rc;
}

// One item per case of a prep'd file.
static ss_status_t
items_of_h5(infer_run_t *r, const char *file, const char *outdir, ss_error_t *err)
{
    ss_h5data_t *d = NULL;
    SS_TRY(ss_h5data_open(file, &d, err));
    ss_status_t rc = SS_OK;
    for (int i = 0; i < ss_h5data_ncases(d) && rc == SS_OK; i++) {
        const char *name = ss_h5data_case_name(d, i);
        char *in = dup_str(file, ":", name), *o1 = dup_str(outdir, "/", name);
        char *out = o1 ? dup_str(o1, ".nii.gz", "") : NULL;
        rc = in && out ? add_item(r, in, out, err) : SS_ENOMEM;
        free(in);
        free(o1);
        free(out);
    }
    ss_h5data_close(&d);
    return rc;
}

// The case list: one case (--out is a file) or every case of a folder / prep'd file (--out is a
// folder, created when missing).
static ss_status_t make_items(infer_run_t *r, ss_error_t *err)
{
    const char *in = r->o->input, *out = r->o->out;
    char file[4096];
    const char *name = NULL;
    int one = split_h5(in, file, sizeof(file), &name) || ss_prepare_is_case(in);
    if (one) {
        SS_TRY(check_writable(out, "--out", err));
        if (r->o->png != NULL) {
            SS_TRY(check_writable(r->o->png, "--png", err));
        }
        return add_item(r, in, out, err);
    }
    r->many = 1;
    int h5 = is_file(in) && (ends_with(in, ".h5") || ends_with(in, ".hdf5"));
    if (!h5 && !is_dir(in)) {
        SS_FAIL_LIB(err, SS_EINVAL, ENOENT,
                    "%s: neither a case (BraTS case folder, MSD .nii.gz image, data.h5:CASE) nor "
                    "a folder of cases; check --input",
                    in);
    }
    if (ends_with(out, ".nii.gz") || ends_with(out, ".nii")) {
        SS_FAIL(err, SS_EINVAL, "%s: --input %s holds many cases; give an output folder as --out",
                out, in);
    }
    SS_TRY(h5 ? items_of_h5(r, in, out, err) : items_of_dir(r, in, out, err));
    // The folder is made only once the cases are known, so bad input leaves nothing behind.
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        SS_FAIL_LIB(err, SS_EINVAL, errno,
                    "%s: cannot create the output folder: %s; choose a writable --out", out,
                    strerror(errno));
    }
    char probe[4096];
    snprintf(probe, sizeof(probe), "%s/.infer", out);
    SS_TRY(check_writable(probe, "--out", err));
    if (r->o->png == NULL) {
        return SS_OK;
    }
    if (mkdir(r->o->png, 0777) != 0 && errno != EEXIST) {
        SS_FAIL_LIB(err, SS_EINVAL, errno,
                    "%s: cannot create the picture folder: %s; choose a writable --png", r->o->png,
                    strerror(errno));
    }
    snprintf(probe, sizeof(probe), "%s/.infer", r->o->png);
    return check_writable(probe, "--png", err);
}

// Reads case `name` of the prep'd file (already cropped and z-scored) into *pc, with the
// original grid's geometry from its attributes.
static ss_status_t
load_h5(infer_run_t *r, const char *file, const char *name, ss_prepared_t *pc, ss_error_t *err)
{
    ss_h5data_t *d = NULL;
    SS_TRY(ss_h5data_open(file, &d, err));
    int idx = -1;
    for (int i = 0; i < ss_h5data_ncases(d) && idx < 0; i++) {
        idx = strcmp(ss_h5data_case_name(d, i), name) == 0 ? i : -1;
    }
    ss_h5data_info_t info;
    ss_status_t rc = idx >= 0 ? ss_h5data_case_info(d, idx, &info, err)
                              : ss_error_set(err, SS_EINVAL, 0, __FILE__, __LINE__, __func__,
                                             "%s: no case '%s' (%d cases); check --input FILE:CASE",
                                             file, name, ss_h5data_ncases(d));
    if (rc == SS_OK && info.nchan != r->cfg.in_channels) {
        rc = ss_error_set(err, SS_ESHAPE, 0, __FILE__, __LINE__, __func__,
                          "%s: the network takes %lld input channel(s) but case %s of %s has "
                          "%lld; use weights trained on %lld-channel cases",
                          r->o->weights, (long long)r->cfg.in_channels, name, file,
                          (long long)info.nchan, (long long)info.nchan);
    }
    if (rc == SS_OK) {
        memset(pc, 0, sizeof(*pc));
        pc->layout = SS_DATASET_BRATS; // prep's file does not say; --labels overrides
        pc->crop = info.crop;
        for (int a = 0; a < 3; a++) {
            pc->dim[a] = info.dim[a];
            pc->hdr.dim[a] = info.orig_shape[a];
            pc->hdr.spacing[a] = info.spacing[a];
        }
        pc->hdr.dim[3] = 1;
        pc->hdr.version = 1;
        memcpy(pc->hdr.affine, info.affine, sizeof(info.affine));
        pc->image_bytes = (size_t)(info.nchan * info.dim[0] * info.dim[1] * info.dim[2]) * 4;
        rc = ss_aligned_alloc((void **)&pc->image, pc->image_bytes, &r->budget, name, err);
    }
    if (rc == SS_OK) {
        rc = ss_h5data_read_image(d, idx, 0, info.dim[0], pc->image, err);
    }
    ss_h5data_close(&d);
    return rc;
}

// Loads item it as network input: a prep'd case, or a raw case preprocessed as prep does.
static ss_status_t
load_case(infer_run_t *r, const infer_item_t *it, ss_prepared_t *pc, ss_error_t *err)
{
    char file[4096];
    const char *name = NULL;
    memset(pc, 0, sizeof(*pc));
    if (split_h5(it->input, file, sizeof(file), &name)) {
        ss_status_t rc = load_h5(r, file, name, pc, err);
        if (rc != SS_OK) {
            ss_prepare_free(pc, &r->budget);
        }
        return rc;
    }
    ss_case_t c;
    ss_dataset_layout_t layout;
    SS_TRY(ss_prepare_locate(it->input, SS_DATASET_AUTO, &c, &layout, err));
    ss_status_t rc = SS_OK;
    if (r->cfg.in_channels != SS_DATASET_NCHAN) {
        rc = ss_error_set(err, SS_ESHAPE, 0, __FILE__, __LINE__, __func__,
                          "%s: the network takes %lld input channel(s) but case %s has %d "
                          "modalities (FLAIR, T1, T1ce, T2); use weights trained on 4-channel "
                          "cases",
                          r->o->weights, (long long)r->cfg.in_channels, c.name, SS_DATASET_NCHAN);
    }
    if (rc == SS_OK) {
        rc = ss_prepare_load(&c, layout, pc, &r->ex, &r->budget, err);
    }
    ss_prepare_case_free(&c);
    return rc;
}

// Label of a voxel from its region logits (sigmoid > 0.5 <=> logit > 0): ET = et, NCR / non-
// enhancing = tc & !et, ED = wt & !tc, in the convention's values lab[ET], lab[NCR], lab[ED].
static void regions_to_labels(float *full,
                              const float *logits,
                              const ss_prepared_t *pc,
                              int64_t cout,
                              ss_dataset_layout_t conv)
{
    static const float brats[3] = {4, 1, 2}, b23[3] = {3, 1, 2}, msd[3] = {3, 2, 1};
    const float *lab = conv == SS_DATASET_MSD ? msd : (conv == SS_DATASET_BRATS2023 ? b23 : brats);
    const int64_t *d = pc->dim, *o = pc->hdr.dim, *s = pc->crop.start;
    const int64_t vol = d[0] * d[1] * d[2];
    memset(full, 0, (size_t)(o[0] * o[1] * o[2]) * sizeof(float));
    for (int64_t i = 0; i < d[0]; i++) {
        for (int64_t j = 0; j < d[1]; j++) {
            for (int64_t k = 0; k < d[2]; k++) {
                int64_t v = (i * d[1] + j) * d[2] + k;
                int wt = logits[v] > 0.0f;
                int tc = cout == 3 && logits[vol + v] > 0.0f;
                int et = cout == 3 && logits[2 * vol + v] > 0.0f;
                float l = cout == 1 ? (float)wt : (et ? lab[0] : (tc ? lab[1] : (wt ? lab[2] : 0)));
                full[((i + s[0]) * o[1] + j + s[1]) * o[2] + k + s[2]] = l;
            }
        }
    }
}

// Internal classes (0, 1 NCR, 2 ED, 3 ET; a 1-channel network: 0/1) of the cropped case.
static void regions_to_classes(uint8_t *cls, const float *logits, int64_t vol, int64_t cout)
{
    for (int64_t v = 0; v < vol; v++) {
        int wt = logits[v] > 0.0f;
        int tc = cout == 3 && logits[vol + v] > 0.0f;
        int et = cout == 3 && logits[2 * vol + v] > 0.0f;
        cls[v] = (uint8_t)(cout == 1 ? wt : (et ? 3 : (tc ? 1 : (wt ? 2 : 0))));
    }
}

// The overlay of the cropped case: its FLAIR channel (z-scored, 0 outside the brain) with the
// predicted classes, through the prediction's centre.
static ss_status_t write_overlay(const infer_item_t *it,
                                 const ss_prepared_t *pc,
                                 const float *logits,
                                 int64_t cout,
                                 ss_budget_t *b,
                                 ss_error_t *err)
{
    const int64_t vol = pc->dim[0] * pc->dim[1] * pc->dim[2];
    uint8_t *cls = NULL;
    SS_TRY(ss_aligned_alloc((void **)&cls, (size_t)vol, b, "overlay classes", err));
    regions_to_classes(cls, logits, vol, cout);
    // The case's name: after "data.h5:", or the last component of its path.
    const char *name = strrchr(it->input, ':') ? strrchr(it->input, ':') + 1 : it->input;
    size_t len = strlen(name);
    while (len > 1 && name[len - 1] == '/') {
        len--;
    }
    const char *base = name + len;
    while (base > name && base[-1] != '/') {
        base--;
    }
    char title[512];
    snprintf(title, sizeof(title), "%.*s: prediction over FLAIR", (int)(name + len - base), base);
    ss_overlay_t ov = {pc->image,
                       cls,
                       {pc->dim[0], pc->dim[1], pc->dim[2]},
                       {pc->hdr.spacing[0], pc->hdr.spacing[1], pc->hdr.spacing[2]},
                       {{0}},
                       cout == 1,
                       title,
                       {NULL, NULL, NULL}};
    memcpy(ov.affine, pc->hdr.affine, sizeof(ov.affine));
    ss_status_t rc = ss_image_overlay_png(it->png, &ov, NULL, err);
    ss_aligned_free(cls, (size_t)vol, b);
    return rc;
}

// Blends the network over the case and writes the label map in the original grid.
static ss_status_t
predict(infer_run_t *r, const infer_item_t *it, const ss_prepared_t *pc, ss_error_t *err)
{
    const int64_t cout = r->cfg.out_channels;
    const int64_t vol = pc->dim[0] * pc->dim[1] * pc->dim[2];
    const int64_t ovol = pc->hdr.dim[0] * pc->hdr.dim[1] * pc->hdr.dim[2];
    const size_t lbytes = (size_t)(cout * vol) * sizeof(float);
    const size_t fbytes = (size_t)ovol * sizeof(float);
    float *logits = NULL, *full = NULL;
    ss_status_t rc = ss_aligned_alloc((void **)&logits, lbytes, &r->budget, "logits", err);
    if (rc == SS_OK) {
        rc = ss_infer_volume(r->m, logits, pc->image, pc->dim, &r->p, err);
    }
    if (rc == SS_OK && r->o->keep_largest) {
        rc = ss_infer_keep_largest(logits, cout, pc->dim, NULL, err);
    }
    if (rc == SS_OK) {
        rc = ss_aligned_alloc((void **)&full, fbytes, &r->budget, "label map", err);
    }
    if (rc == SS_OK) {
        ss_dataset_layout_t conv = r->labels != SS_DATASET_AUTO ? r->labels : pc->layout;
        regions_to_labels(full, logits, pc, cout, conv);
        ss_nifti_header_t h = pc->hdr;
        h.dim[3] = 1;
        rc = ss_nifti_write(it->out, &h, full, 2, err);
    }
    if (rc == SS_OK && it->png != NULL) {
        rc = write_overlay(it, pc, logits, cout, &r->budget, err);
    }
    ss_aligned_free(logits, lbytes, &r->budget);
    ss_aligned_free(full, fbytes, &r->budget);
    return rc;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

static ss_status_t infer_item(infer_run_t *r, const infer_item_t *it, ss_error_t *err)
{
    ss_prepared_t pc;
    double t0 = ss_time_now();
    SS_TRY(load_case(r, it, &pc, err));
    double t1 = ss_time_now();
    ss_status_t rc = predict(r, it, &pc, err);
    double t2 = ss_time_now();
    if (rc == SS_OK) {
        printf("infer: case=%s shape=%lldx%lldx%lld crop=%lldx%lldx%lld load_s=%.2f infer_s=%.2f "
               "seconds=%.2f peak_rss_mb=%.1f rank=%d out=%s\n",
               it->input, (long long)pc.hdr.dim[0], (long long)pc.hdr.dim[1],
               (long long)pc.hdr.dim[2], (long long)pc.dim[0], (long long)pc.dim[1],
               (long long)pc.dim[2], t1 - t0, t2 - t1, t2 - t0, peak_rss_mb(), r->ctx->rank,
               it->out);
        fflush(stdout);
    }
    SS_LOG_DEBUG("infer: model parameters %zu bytes, activation peak %zu bytes, case buffers "
                 "peak %zu bytes",
                 ss_model_param_bytes(r->m), ss_model_activation_peak(r->m),
                 ss_budget_peak(&r->budget));
    ss_prepare_free(&pc, &r->budget);
    return rc;
}

// The network for batch 1 and the whole ROI, with the file's weights.
static ss_status_t open_model(infer_run_t *r, ss_error_t *err)
{
    SS_TRY(ss_weights_read_config(r->o->weights, &r->cfg, err));
    if (r->cfg.out_channels != 3 && r->cfg.out_channels != 1) {
        SS_FAIL(err, SS_ESHAPE,
                "%s: %lld output channels; infer takes networks with 3 (WT, TC, ET) or 1 (tumour) "
                "sigmoid outputs",
                r->o->weights, (long long)r->cfg.out_channels);
    }
    ss_model_plan_t p = {1, 0, r->cfg.img_size[0], 0, r->ctx->nthreads, NULL};
    SS_TRY(ss_model_create(&r->m, &r->cfg, &p, NULL, err));
    SS_TRY(ss_weights_load(r->o->weights, r->m, err));
    return SS_OK;
}

// This rank's items (i % P == rank), a round of P at a time; every round ends agreed, so the
// first failure stops all ranks and every rank reports the same (first, in case order) error.
static ss_status_t run_items(infer_run_t *r, ss_error_t *err)
{
    const int p = r->ctx->nranks, rank = r->ctx->rank;
    for (int round = 0; round * p < r->nitems; round++) {
        int i = round * p + rank;
        ss_status_t rc = i < r->nitems ? infer_item(r, &r->items[i], err) : SS_OK;
        SS_TRY(ss_comm_agree(r->ctx->world, rc, err));
    }
    return SS_OK;
}

static ss_status_t infer_run(infer_run_t *r, ss_error_t *err)
{
    ss_status_t rc = open_model(r, err);
    SS_TRY(ss_comm_agree(r->ctx->world, rc, err));
    rc = make_items(r, err);
    SS_TRY(ss_comm_agree(r->ctx->world, rc, err));
    return run_items(r, err);
}

static void run_free(infer_run_t *r)
{
    for (int i = 0; i < r->nitems; i++) {
        free(r->items[i].input);
        free(r->items[i].out);
        free(r->items[i].png);
    }
    free(r->items);
    ss_model_destroy(&r->m);
}

// Runs the command once MPI is up; every rank returns the same exit code, rank 0 prints the
// error. After an agreed failure no rank waits for another, so MPI ends normally (main's
// ss_dist_abort would add Open MPI's abort banner to the one error line).
static int infer_main(ss_cli_ctx_t *ctx, const char *cmd, infer_run_t *r)
{
    r->ctx = ctx;
    ss_budget_init(&r->budget, ctx->mem_limit);
    r->ex = (ss_exec_t){ctx->nthreads, NULL, 0, NULL};
    ss_error_t err, ignored;
    ss_error_clear(&err);
    ss_status_t st = infer_run(r, &err);
    run_free(r);
    (void)ss_comm_barrier(ctx->world, &ignored);
    if (st == SS_OK) {
        return SS_EXIT_OK;
    }
    return ss_cli_fail_agreed(ctx, cmd, &err, ss_cli_exit_code(err.code));
}

int ss_cli_cmd_infer(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    infer_opts_t o;
    memset(&o, 0, sizeof(o));
    o.mode = "gaussian";
    o.overlap = 0.5;
    const ss_cli_opt_t opts[] = {
        {"weights", 'w', SS_OPT_STRING, &o.weights, "W.h5", "weights file (shardseg weights)", 1,
         0},
        {"input", 'i', SS_OPT_STRING, &o.input, "CASE",
         "case folder, MSD image, data.h5:CASE or a "
         "folder of cases",
         1, 0},
        {"out", 'o', SS_OPT_STRING, &o.out, "PATH", "output .nii.gz (a folder for many cases)", 1,
         0},
        {"overlap", 0, SS_OPT_DOUBLE, &o.overlap, "F", "window overlap in [0, 1) (default 0.5)", 0,
         0.99},
        {"mode", 0, SS_OPT_STRING, &o.mode, "M", "gaussian (default) or constant blending", 1, 0},
        {"tta", 0, SS_OPT_FLAG, &o.tta, NULL, "also average the 7 flipped versions", 1, 0},
        {"keep-largest", 0, SS_OPT_FLAG, &o.keep_largest, NULL,
         "keep only the largest connected tumour (WT) component", 1, 0},
        {"png", 0, SS_OPT_STRING, &o.png, "FILE", "overlay PNG (a folder for many cases)", 1, 0},
        {"labels", 0, SS_OPT_STRING, &o.labels, "C", "brats|brats2023|msd (default: the input's)",
         1, 0},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, NULL, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        fputs(g_usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (pr == SS_CLI_ERROR) {
        ss_cli_error(cmd, "%s", msg);
        return SS_EXIT_USAGE;
    }
    infer_run_t r;
    memset(&r, 0, sizeof(r));
    int rc = check_opts(&o, &r, cmd);
    if (rc == 0) {
        rc = ss_cli_start(ctx, cmd);
    }
    if (rc != 0) {
        return rc;
    }
    r.o = &o;
    return infer_main(ctx, cmd, &r);
}
