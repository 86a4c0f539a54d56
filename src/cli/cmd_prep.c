// shardseg prep: an MSD / BraTS folder -> one HDF5 training file (h5data.h describes the file).
//
// Per case: read the four channels and the label (dataset.c), brain mask = any channel > 0,
// crop to the bounding box of brain and tumour (or a fixed centred size), z-score each channel
// on brain voxels, labels -> WT/TC/ET (or binary) masks, write. Memory holds one case at a time:
// the float image, the label read as float (reused for uint8 classes), the mask and the region
// masks, about 1.5x the float image of one case.
// Ranks: prep is serial today; under mpirun, rank 0 does all the work and the others wait.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/dataset.h"
#include "shardseg/h5data.h"
#include "shardseg/preprocess.h"
#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"

typedef struct {
    const char *in, *out, *format, *crop, *target;
    double val_fraction;
    int64_t folds, seed;
    ss_dataset_layout_t layout;
    ss_target_t tgt;
    int crop_brain;
    int64_t crop_size[3];
} prep_opts_t;

typedef struct {
    int cases;
    size_t bytes_read, bytes_written;
    int64_t lost_label_voxels; // tumour voxels cut away by a fixed crop
} prep_stats_t;

static const char g_usage[] =
    "usage: shardseg prep --in DIR --out data.h5 [--format msd|brats|brats2023]\n"
    "                     [--crop brain|IxJxK] [--target regions|binary]\n"
    "                     [--val-fraction F] [--folds K] [--seed S]\n"
    "Reads an MSD Task01 folder or BraTS 2018-2021 / 2023 case folders (NIfTI-1/2, .nii[.gz]),\n"
    "z-scores each modality on brain voxels, crops, and writes one HDF5 file: /cases/<name>/image\n"
    "float32 [4][I][J][K] (FLAIR, T1, T1ce, T2), /cases/<name>/label uint8 [R][I][J][K] (WT, TC,\n"
    "ET or one tumour mask), affine / original shape / crop box attributes, and /split.\n"
    "The output appears only when complete (temporary file + rename).\n";

// Validates the option values that need more than a range check. 0 or the exit code.
static int check_opts(prep_opts_t *o, const char *cmd)
{
    ss_error_t err;
    if (o->in == NULL || o->out == NULL) {
        ss_cli_error(cmd, "%s: missing; give --in DIR --out FILE.h5",
                     o->in == NULL ? "--in" : "--out");
        return SS_EXIT_USAGE;
    }
    if (ss_dataset_layout_parse(o->format, "--format", &o->layout, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    if (strcmp(o->target, "regions") == 0 || strcmp(o->target, "binary") == 0) {
        o->tgt = o->target[0] == 'b' ? SS_TARGET_BINARY : SS_TARGET_REGIONS;
    } else {
        ss_cli_error(cmd, "--target: '%s' is not a target; use regions or binary", o->target);
        return SS_EXIT_USAGE;
    }
    o->crop_brain = strcmp(o->crop, "brain") == 0;
    if (!o->crop_brain && ss_cli_parse_dims3(o->crop, o->crop_size, 1, 4096) != 0) {
        ss_cli_error(cmd, "--crop: '%s' is not a size; use brain or IxJxK, e.g. 240x240x152",
                     o->crop);
        return SS_EXIT_USAGE;
    }
    if (o->folds > 1 && o->val_fraction > 0 && o->val_fraction != 0.2) {
        ss_cli_error(cmd, "--folds and --val-fraction exclude each other; give one");
        return SS_EXIT_USAGE;
    }
    return 0;
}

// Crop box: brain mask OR tumour (so no labelled voxel is lost), or the fixed centred size.
static ss_status_t choose_box(const prep_opts_t *o,
                              uint8_t *mask,
                              const uint8_t *label,
                              const int64_t dim[3],
                              ss_box_t *box,
                              prep_stats_t *st,
                              ss_error_t *err)
{
    const int64_t vox = dim[0] * dim[1] * dim[2];
    if (!o->crop_brain) {
        SS_TRY(ss_preprocess_center_box(box, dim, o->crop_size, err));
        for (int64_t i = 0; i < dim[0]; i++)
            for (int64_t j = 0; j < dim[1]; j++)
                for (int64_t k = 0; k < dim[2]; k++) {
                    int in = i >= box->start[0] && i < box->end[0] && j >= box->start[1] &&
                             j < box->end[1] && k >= box->start[2] && k < box->end[2];
                    st->lost_label_voxels += !in && label[(i * dim[1] + j) * dim[2] + k] != 0;
                }
        return SS_OK;
    }
    uint8_t *both = malloc((size_t)vox);
    if (both == NULL) {
        SS_FAIL(err, SS_ENOMEM, "out of memory for the crop mask");
    }
    for (int64_t v = 0; v < vox; v++) {
        both[v] = mask[v] | (label[v] != 0);
    }
    ss_status_t rc = ss_preprocess_bbox(box, both, dim, err);
    free(both);
    return rc;
}

// Loads, preprocesses and writes case idx.
static ss_status_t prep_case(const prep_opts_t *o,
                             const ss_dataset_t *ds,
                             int idx,
                             ss_h5data_writer_t *w,
                             ss_budget_t *b,
                             const ss_exec_t *ex,
                             prep_stats_t *st,
                             ss_error_t *err)
{
    ss_case_data_t cd;
    SS_TRY(ss_dataset_load_case(ds, idx, &cd, b, err));
    st->bytes_read += cd.disk_bytes;
    const int64_t *dim = cd.hdr.dim, vox = dim[0] * dim[1] * dim[2];
    const int nr = ss_target_channels(o->tgt);
    uint8_t *mask = NULL, *regions = NULL;
    ss_h5data_case_t hc;
    memset(&hc, 0, sizeof(hc));
    ss_status_t rc = ss_aligned_alloc((void **)&mask, (size_t)vox, b, "brain mask", err);
    if (rc == SS_OK) {
        rc = ss_aligned_alloc((void **)&regions, (size_t)(vox * nr), b, "label regions", err);
    }
    if (rc == SS_OK) {
        ss_preprocess_brain_mask(mask, cd.image, SS_DATASET_NCHAN, dim, NULL, ex);
        rc = choose_box(o, mask, cd.label, dim, &hc.crop, st, err);
    }
    if (rc != SS_OK) {
        goto out;
    }
    for (int a = 0; a < 3; a++) {
        hc.dim[a] = hc.crop.end[a] - hc.crop.start[a];
        hc.orig_shape[a] = dim[a];
        hc.spacing[a] = cd.hdr.spacing[a];
    }
    ss_preprocess_crop(cd.image, sizeof(float), SS_DATASET_NCHAN, dim, &hc.crop);
    ss_preprocess_crop(cd.label, 1, 1, dim, &hc.crop);
    ss_preprocess_crop(mask, 1, 1, dim, &hc.crop);
    rc = ss_preprocess_zscore(cd.image, SS_DATASET_NCHAN, hc.dim, mask, hc.mean, hc.std, ex, err);
    if (rc != SS_OK) {
        ss_error_prefix(err, "case %s", ds->cases[idx].name);
        goto out;
    }
    ss_preprocess_regions(regions, cd.label, hc.dim, o->tgt, ex);
    hc.name = ds->cases[idx].name;
    hc.image = cd.image;
    hc.label = regions;
    memcpy(hc.affine, cd.hdr.affine, sizeof(hc.affine));
    rc = ss_h5data_write_case(w, &hc, err);
out:
    ss_aligned_free(mask, (size_t)vox, b);
    ss_aligned_free(regions, (size_t)(vox * nr), b);
    ss_case_data_free(&cd, b);
    return rc;
}

static ss_status_t
run_prep(const prep_opts_t *o, const ss_cli_ctx_t *ctx, prep_stats_t *st, ss_error_t *err)
{
    ss_dataset_t *ds = NULL;
    SS_TRY(ss_dataset_open(o->in, o->layout, &ds, err));
    const char *names[SS_DATASET_NCHAN];
    for (int c = 0; c < SS_DATASET_NCHAN; c++) {
        names[c] = ss_dataset_channel_name(c);
    }
    ss_h5data_meta_t meta = {SS_DATASET_NCHAN,
                             names,
                             o->tgt,
                             ss_dataset_layout_name(ds->layout),
                             ss_dataset_layout_labels(ds->layout),
                             (uint64_t)o->seed,
                             o->val_fraction,
                             (int)o->folds,
                             0,
                             0};
    ss_h5data_writer_t *w = NULL;
    int *assign = calloc((size_t)ds->ncases, sizeof(int));
    const char **cnames = calloc((size_t)ds->ncases, sizeof(char *));
    ss_budget_t budget;
    ss_budget_init(&budget, ctx->mem_limit);
    ss_exec_t ex = {ctx->nthreads, NULL, 0, NULL};
    ss_status_t rc = assign && cnames ? SS_OK : SS_ENOMEM;
    if (rc != SS_OK) {
        ss_error_set(err, rc, 0, __FILE__, __LINE__, __func__, "out of memory");
    } else {
        rc = ss_h5data_create(o->out, &meta, &w, err);
    }
    for (int i = 0; rc == SS_OK && i < ds->ncases; i++) {
        SS_LOG_DEBUG("prep: case %d/%d %s", i + 1, ds->ncases, ds->cases[i].name);
        rc = prep_case(o, ds, i, w, &budget, &ex, st, err);
        st->cases += rc == SS_OK;
        cnames[i] = ds->cases[i].name;
    }
    if (rc == SS_OK) {
        ss_h5data_split(ds->ncases, o->val_fraction, (int)o->folds, (uint64_t)o->seed, assign);
        rc = ss_h5data_write_split(w, cnames, assign, ds->ncases, err);
    }
    if (rc == SS_OK) {
        rc = ss_h5data_commit(&w, &st->bytes_written, err);
    }
    ss_h5data_abort(&w);
    SS_LOG_DEBUG("prep: peak budgeted memory %zu bytes", ss_budget_peak(&budget));
    free(assign);
    free(cnames);
    ss_dataset_destroy(&ds);
    return rc;
}

int ss_cli_cmd_prep(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    prep_opts_t o = {NULL, NULL, "auto",          "brain",           "regions", 0.2,
                     0,    1234, SS_DATASET_AUTO, SS_TARGET_REGIONS, 1,         {0, 0, 0}};
    const ss_cli_opt_t opts[] = {
        {"in", 'i', SS_OPT_STRING, &o.in, "DIR", "dataset folder (MSD Task01 or BraTS)", 0, -1},
        {"out", 'o', SS_OPT_STRING, &o.out, "FILE", "output HDF5 file", 0, -1},
        {"format", 0, SS_OPT_STRING, &o.format, "F", "msd|brats|brats2023|auto (default auto)", 0,
         -1},
        {"crop", 0, SS_OPT_STRING, &o.crop, "C", "brain (bounding box) or IxJxK centred", 0, -1},
        {"target", 0, SS_OPT_STRING, &o.target, "T", "regions (WT,TC,ET) or binary", 0, -1},
        {"val-fraction", 0, SS_OPT_DOUBLE, &o.val_fraction, "F",
         "validation fraction (default 0.2)", 0, 1},
        {"folds", 0, SS_OPT_INT, &o.folds, "K", "K-fold assignment instead (K >= 2)", 0, 1000},
        {"seed", 0, SS_OPT_INT, &o.seed, "S", "split seed (default 1234)", 0, 9.0e18},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        fputs(g_usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (pr == SS_CLI_ERROR) {
        ss_cli_error(cmd, "%s", msg);
        return SS_EXIT_USAGE;
    }
    int rc = check_opts(&o, cmd);
    if (rc == 0) {
        rc = ss_cli_start(ctx, cmd);
    }
    if (rc != 0 || ctx->rank != 0) {
        return rc;
    }
    prep_stats_t st = {0, 0, 0, 0};
    ss_error_t err;
    ss_error_clear(&err);
    double t0 = ss_time_now();
    if (run_prep(&o, ctx, &st, &err) != SS_OK) {
        // A NaN voxel is bad input data, not a runtime failure.
        return err.code == SS_ENUMERIC ? (ss_cli_fail(cmd, &err), SS_EXIT_USAGE)
                                       : ss_cli_fail(cmd, &err);
    }
    if (st.lost_label_voxels > 0) {
        SS_LOG_WARN("prep: --crop %s cut away %lld labelled voxels; use a larger size or brain",
                    o.crop, (long long)st.lost_label_voxels);
    }
    printf("prep: cases=%d mb_read=%.1f mb_written=%.1f seconds=%.2f out=%s\n", st.cases,
           (double)st.bytes_read / 1e6, (double)st.bytes_written / 1e6, ss_time_now() - t0, o.out);
    return SS_EXIT_OK;
}
