// shardseg prep: an MSD / BraTS folder -> one HDF5 training file (h5data.h describes the file).
//
// Per case: read the four channels and the label (dataset.c), brain mask = any channel > 0,
// crop to the bounding box of brain and tumour (or a fixed centred size), z-score each channel
// on brain voxels, labels -> WT/TC/ET (or binary) masks, write. Memory holds one case at a time:
// the float image, the label read as float (reused for uint8 classes), the mask and the region
// masks, about 1.5x the float image of one case.
// Ranks: cases are dealt round-robin and merged by rank 0 (prep.h); the file is the same for any
// rank count.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/dataset.h"
#include "shardseg/h5data.h"
#include "shardseg/preprocess.h"
#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"
#include "prep.h"

typedef struct {
    const char *in, *out, *format, *crop, *target;
    double val_fraction;
    int64_t folds, seed;
    ss_cli_prep_config_t cfg;
} prep_opts_t;

// A rank's state during a run; PART_MAX bounds the part file names rank 0 gathers.
enum { PART_MAX = 4096 };

typedef struct {
    const ss_cli_ctx_t *ctx;
    const ss_cli_prep_config_t *cfg;
    ss_dataset_t *ds;
    ss_h5data_writer_t *w; // rank 0: the output; other ranks: their part until finished
    char part[PART_MAX];   // this rank's finished part file ("" when none)
    ss_budget_t budget;
    ss_exec_t ex;
    ss_cli_prep_stats_t *st;
} prep_run_t;

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
    if (ss_dataset_layout_parse(o->format, "--format", &o->cfg.layout, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    if (strcmp(o->target, "regions") == 0 || strcmp(o->target, "binary") == 0) {
        o->cfg.target = o->target[0] == 'b' ? SS_TARGET_BINARY : SS_TARGET_REGIONS;
    } else {
        ss_cli_error(cmd, "--target: '%s' is not a target; use regions or binary", o->target);
        return SS_EXIT_USAGE;
    }
    o->cfg.crop_brain = strcmp(o->crop, "brain") == 0;
    if (!o->cfg.crop_brain && ss_cli_parse_dims3(o->crop, o->cfg.crop_size, 1, 4096) != 0) {
        ss_cli_error(cmd, "--crop: '%s' is not a size; use brain or IxJxK, e.g. 240x240x152",
                     o->crop);
        return SS_EXIT_USAGE;
    }
    if (o->folds > 1 && o->val_fraction > 0 && o->val_fraction != 0.2) {
        ss_cli_error(cmd, "--folds and --val-fraction exclude each other; give one");
        return SS_EXIT_USAGE;
    }
    o->cfg.in = o->in;
    o->cfg.out = o->out;
    o->cfg.val_fraction = o->val_fraction;
    o->cfg.folds = (int)o->folds;
    o->cfg.seed = (uint64_t)o->seed;
    return 0;
}

// Crop box: brain mask OR tumour (so no labelled voxel is lost), or the fixed centred size.
static ss_status_t choose_box(const ss_cli_prep_config_t *o,
                              uint8_t *mask,
                              const uint8_t *label,
                              const int64_t dim[3],
                              ss_box_t *box,
                              ss_cli_prep_stats_t *st,
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

// Loads, preprocesses and writes case idx into r->w.
static ss_status_t prep_case(prep_run_t *r, int idx, ss_error_t *err)
{
    const ss_cli_prep_config_t *o = r->cfg;
    const ss_dataset_t *ds = r->ds;
    ss_budget_t *b = &r->budget;
    const ss_exec_t *ex = &r->ex;
    ss_cli_prep_stats_t *st = r->st;
    ss_case_data_t cd;
    SS_TRY(ss_dataset_load_case(ds, idx, &cd, b, err));
    st->bytes_read += cd.disk_bytes;
    const int64_t *dim = cd.hdr.dim, vox = dim[0] * dim[1] * dim[2];
    const int nr = ss_target_channels(o->target);
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
    ss_preprocess_regions(regions, cd.label, hc.dim, o->target, ex);
    hc.name = ds->cases[idx].name;
    hc.image = cd.image;
    hc.label = regions;
    memcpy(hc.affine, cd.hdr.affine, sizeof(hc.affine));
    rc = ss_h5data_write_case(r->w, &hc, err);
out:
    ss_aligned_free(mask, (size_t)vox, b);
    ss_aligned_free(regions, (size_t)(vox * nr), b);
    ss_case_data_free(&cd, b);
    return rc;
}

// Every rank must list the same cases (the rounds of prep_cases are collective): a folder that
// changes while the ranks list it, or that differs between nodes, is caught here.
static ss_status_t same_case_count(prep_run_t *r, ss_error_t *err)
{
    double hi = r->ds->ncases, neg_lo = -(double)r->ds->ncases;
    SS_TRY(ss_comm_allreduce_max_f64(r->ctx->world, &hi, err));
    SS_TRY(ss_comm_allreduce_max_f64(r->ctx->world, &neg_lo, err));
    if (hi != -neg_lo) {
        SS_FAIL(err, SS_EINVAL,
                "%s: the ranks found between %.0f and %.0f cases; give every rank the same "
                "folder (a shared file system) and do not change it during prep",
                r->cfg->in, -neg_lo, hi);
    }
    return SS_OK;
}

// Opens the dataset and this rank's writer: the output (rank 0) or a part file (other ranks).
static ss_status_t prep_open(prep_run_t *r, ss_error_t *err)
{
    ss_comm_t *c = r->ctx->world;
    ss_status_t rc = ss_dataset_open(r->cfg->in, r->cfg->layout, &r->ds, err);
    SS_TRY(ss_comm_agree(c, rc, err));
    SS_TRY(same_case_count(r, err));
    const char *names[SS_DATASET_NCHAN];
    for (int ch = 0; ch < SS_DATASET_NCHAN; ch++) {
        names[ch] = ss_dataset_channel_name(ch);
    }
    ss_h5data_meta_t meta = {SS_DATASET_NCHAN,
                             names,
                             r->cfg->target,
                             ss_dataset_layout_name(r->ds->layout),
                             ss_dataset_layout_labels(r->ds->layout),
                             r->cfg->seed,
                             r->cfg->val_fraction,
                             r->cfg->folds,
                             0,
                             0};
    // Parts get the same root attributes; only their /cases groups are used.
    rc = ss_h5data_create(r->cfg->out, &meta, &r->w, err);
    return ss_comm_agree(c, rc, err);
}

// This rank's cases (i % P == rank), one round of P cases at a time. Agreeing after each round
// stops every rank at the first failing round, and the lowest failing rank of that round holds
// the first failing case in case order, the one a serial run reports.
static ss_status_t prep_cases(prep_run_t *r, ss_error_t *err)
{
    const int n = r->ds->ncases, p = r->ctx->nranks, rank = r->ctx->rank;
    for (int round = 0; round * p < n; round++) {
        int i = round * p + rank;
        ss_status_t rc = SS_OK;
        if (i < n) {
            SS_LOG_DEBUG("prep: case %d/%d %s", i + 1, n, r->ds->cases[i].name);
            rc = prep_case(r, i, err);
            r->st->my_cases += rc == SS_OK;
        }
        SS_TRY(ss_comm_agree(r->ctx->world, rc, err));
    }
    ss_status_t rc = SS_OK;
    if (rank != 0) {
        rc = ss_h5data_finish_part(&r->w, r->part, sizeof(r->part), err);
    }
    return ss_comm_agree(r->ctx->world, rc, err);
}

// Rank 0: copies the case groups of every part into the output, writes /split and commits.
static ss_status_t merge_parts(prep_run_t *r, const char *parts, ss_error_t *err)
{
    const int n = r->ds->ncases, p = r->ctx->nranks;
    const char **names = calloc((size_t)n + 1, sizeof(char *));
    int *assign = calloc((size_t)n + 1, sizeof(int));
    ss_status_t rc = names && assign ? SS_OK : SS_ENOMEM;
    if (rc != SS_OK) {
        ss_error_set(err, rc, 0, __FILE__, __LINE__, __func__, "out of memory");
    }
    for (int q = 1; rc == SS_OK && q < p && q < n; q++) {
        int cnt = 0;
        for (int i = q; i < n; i += p) {
            names[cnt++] = r->ds->cases[i].name;
        }
        rc = ss_h5data_copy_cases(r->w, parts + (size_t)q * PART_MAX, names, cnt, err);
    }
    for (int i = 0; i < n; i++) {
        names[i] = r->ds->cases[i].name;
    }
    if (rc == SS_OK) {
        ss_h5data_split(n, r->cfg->val_fraction, r->cfg->folds, r->cfg->seed, assign);
        rc = ss_h5data_write_split(r->w, names, assign, n, err);
    }
    size_t bytes = 0;
    if (rc == SS_OK) {
        rc = ss_h5data_commit(&r->w, &bytes, err);
        r->st->bytes_written = (double)bytes;
    }
    free(names);
    free(assign);
    return rc;
}

// Gathers the part names on rank 0, which merges them while the others wait.
static ss_status_t prep_merge(prep_run_t *r, ss_error_t *err)
{
    ss_comm_t *c = r->ctx->world;
    char *parts = NULL;
    ss_status_t rc = SS_OK;
    if (r->ctx->rank == 0 && (parts = calloc((size_t)r->ctx->nranks, PART_MAX)) == NULL) {
        rc = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__, "out of memory");
    }
    SS_TRY(ss_comm_agree(c, rc, err));
    rc = ss_comm_gather_bytes(c, r->part, PART_MAX, parts, 0, err);
    if (rc == SS_OK && r->ctx->rank == 0) {
        double t0 = ss_time_now();
        rc = merge_parts(r, parts, err);
        SS_LOG_DEBUG("prep: merged %d part file(s), split and commit in %.2f s", r->ctx->nranks - 1,
                     ss_time_now() - t0);
    }
    free(parts);
    return ss_comm_agree(c, rc, err);
}

// Sums the per-rank counters on every rank.
static ss_status_t prep_totals(prep_run_t *r, ss_error_t *err)
{
    ss_cli_prep_stats_t *st = r->st;
    double v[3] = {(double)st->my_cases, st->bytes_read, (double)st->lost_label_voxels};
    SS_TRY(ss_comm_allreduce_sum_f64(r->ctx->world, v, 3, err));
    st->cases = (int)v[0];
    st->bytes_read = v[1];
    st->lost_label_voxels = (int64_t)v[2];
    return SS_OK;
}

ss_status_t ss_cli_prep_run(const ss_cli_ctx_t *ctx,
                            const ss_cli_prep_config_t *cfg,
                            ss_cli_prep_stats_t *st,
                            ss_error_t *err)
{
    prep_run_t r;
    memset(&r, 0, sizeof(r));
    memset(st, 0, sizeof(*st));
    r.ctx = ctx;
    r.cfg = cfg;
    r.st = st;
    st->ranks = ctx->nranks;
    ss_budget_init(&r.budget, ctx->mem_limit);
    r.ex = (ss_exec_t){ctx->nthreads, NULL, 0, NULL};
    double t0 = ss_time_now();
    ss_status_t rc = prep_open(&r, err);
    if (rc == SS_OK) {
        rc = prep_cases(&r, err);
    }
    if (rc == SS_OK) {
        rc = prep_merge(&r, err);
    }
    if (rc == SS_OK) {
        rc = prep_totals(&r, err);
    }
    st->seconds = ss_time_now() - t0;
    ss_h5data_abort(&r.w);
    if (r.part[0] != '\0') {
        remove(r.part);
    }
    // No rank may end (or abort the job) while another still removes its files.
    ss_error_t ignored;
    (void)ss_comm_barrier(ctx->world, &ignored);
    SS_LOG_DEBUG("prep: peak budgeted memory %zu bytes", ss_budget_peak(&r.budget));
    ss_dataset_destroy(&r.ds);
    return rc;
}

// The run's one line on stdout (rank 0), with the throughput figures `bench data` reports too.
static void print_summary(const prep_opts_t *o, const ss_cli_prep_stats_t *st)
{
    if (st->lost_label_voxels > 0) {
        SS_LOG_WARN("prep: --crop %s cut away %lld labelled voxels; use a larger size or brain",
                    o->crop, (long long)st->lost_label_voxels);
    }
    printf("prep: cases=%d mb_read=%.1f mb_written=%.1f seconds=%.2f ranks=%d "
           "cases_per_s_per_rank=%.3f mb_read_per_s=%.1f mb_written_per_s=%.1f out=%s\n",
           st->cases, st->bytes_read / 1e6, st->bytes_written / 1e6, st->seconds, st->ranks,
           st->cases / st->seconds / st->ranks, st->bytes_read / 1e6 / st->seconds,
           st->bytes_written / 1e6 / st->seconds, o->out);
}

int ss_cli_cmd_prep(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    prep_opts_t o;
    memset(&o, 0, sizeof(o));
    o.format = "auto";
    o.crop = "brain";
    o.target = "regions";
    o.val_fraction = 0.2;
    o.seed = 1234;
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
    if (rc != 0) {
        return rc;
    }
    ss_cli_prep_stats_t st;
    ss_error_t err;
    ss_error_clear(&err);
    if (ss_cli_prep_run(ctx, &o.cfg, &st, &err) != SS_OK) {
        // Every rank holds the same record: one line from rank 0, the same exit code everywhere.
        // A NaN voxel is bad input data, not a runtime failure.
        rc = err.code == SS_ENUMERIC ? SS_EXIT_USAGE : ss_cli_exit_code(err.code);
        return ss_cli_fail_agreed(ctx, cmd, &err, rc);
    }
    if (ctx->rank == 0) {
        print_summary(&o, &st);
    }
    return SS_EXIT_OK;
}
