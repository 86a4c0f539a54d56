// shardseg eval: Dice and HD95 (mm) of WT, TC and ET for every prediction in --pred against the
// matching reference label map in --ref (BraTS definitions and empty conventions, metrics.h).
// Writes a CSV row per case and a JSON summary (both atomically) and prints a summary table.
// Today rank 0 does the work; other ranks wait.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/metrics.h"
#include "shardseg/nifti_io.h"
#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"

#define MAX_CASES 4096
static const char *const g_region[3] = {"WT", "TC", "ET"};

typedef struct {
    char name[256];
    double dice[3], hd95[3];
} case_result_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Case name of a prediction file ("<case>.nii.gz" / "<case>.nii"), or 0 if it is not one.
static int case_name(const char *file, char *out, size_t len)
{
    size_t n = strlen(file);
    size_t cut = n > 7 && strcmp(file + n - 7, ".nii.gz") == 0 ? 7
                 : n > 4 && strcmp(file + n - 4, ".nii") == 0  ? 4
                                                               : 0;
    if (cut == 0 || n - cut >= len) {
        return 0;
    }
    snprintf(out, len, "%.*s", (int)(n - cut), file);
    return 1;
}

// The reference label map of a case: REF/<case>/<case>_seg.nii.gz (BraTS 2018-21),
// REF/<case>/<case>-seg.nii.gz (2023), REF/<case>.nii.gz (MSD labelsTr), REF/<case>_seg.nii.gz.
static int find_ref(const char *ref, const char *c, char *path, size_t len)
{
    for (int i = 0; i < 7; i++) {
        switch (i) {
        case 0:
            snprintf(path, len, "%s/%s/%s_seg.nii.gz", ref, c, c);
            break;
        case 1:
            snprintf(path, len, "%s/%s/%s_seg.nii", ref, c, c);
            break;
        case 2:
            snprintf(path, len, "%s/%s/%s-seg.nii.gz", ref, c, c);
            break;
        case 3:
            snprintf(path, len, "%s/%s/%s-seg.nii", ref, c, c);
            break;
        case 4:
            snprintf(path, len, "%s/%s.nii.gz", ref, c);
            break;
        case 5:
            snprintf(path, len, "%s/%s_seg.nii.gz", ref, c);
            break;
        default:
            snprintf(path, len, "%s/%s.nii", ref, c);
            break;
        }
        if (access(path, R_OK) == 0) {
            return 1;
        }
    }
    return 0;
}

static ss_status_t same_geometry(const ss_nifti_header_t *a,
                                 const ss_nifti_header_t *b,
                                 const char *pa,
                                 const char *pb,
                                 ss_error_t *err)
{
    for (int d = 0; d < 3; d++) {
        if (a->dim[d] != b->dim[d]) {
            SS_FAIL(err, SS_ESHAPE,
                    "%s: shape %lldx%lldx%lld differs from %s (%lldx%lldx%lld); "
                    "predict in the reference's geometry (shardseg infer does)",
                    pa, (long long)a->dim[0], (long long)a->dim[1], (long long)a->dim[2], pb,
                    (long long)b->dim[0], (long long)b->dim[1], (long long)b->dim[2]);
        }
    }
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 4; c++) {
            if (fabs(a->affine[r][c] - b->affine[r][c]) > 1e-3 * (1 + fabs(b->affine[r][c]))) {
                SS_FAIL(err, SS_ESHAPE,
                        "%s: affine differs from %s's; predict in the reference's "
                        "geometry",
                        pa, pb);
            }
        }
    }
    return SS_OK;
}

static ss_status_t eval_case(case_result_t *r,
                             const char *pred,
                             const char *ref,
                             ss_labels_t conv,
                             int nthreads,
                             ss_error_t *err)
{
    ss_nifti_header_t hp, hr;
    float *p = NULL, *q = NULL;
    uint8_t *mp = NULL, *mr = NULL;
    ss_status_t st = ss_nifti_read(pred, &hp, &p, NULL, err);
    if (st == SS_OK) {
        st = ss_nifti_read(ref, &hr, &q, NULL, err);
    }
    if (st == SS_OK) {
        st = same_geometry(&hp, &hr, pred, ref, err);
    }
    int64_t n = hr.dim[0] * hr.dim[1] * hr.dim[2];
    if (st == SS_OK &&
        ((mp = malloc((size_t)(3 * n))) == NULL || (mr = malloc((size_t)(3 * n))) == NULL)) {
        st = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__, "%s: out of memory",
                          pred);
    }
    if (st == SS_OK) {
        ss_regions_from_labels(mp, p, n, conv);
        ss_regions_from_labels(mr, q, n, conv);
    }
    for (int c = 0; st == SS_OK && c < 3; c++) {
        r->dice[c] = ss_dice_u8(mp + c * n, mr + c * n, n);
        st = ss_hd95(&r->hd95[c], mp + c * n, mr + c * n, hr.dim, hr.spacing, nthreads, err);
    }
    if (p != NULL) {
        ss_aligned_free(p, ss_nifti_nbytes(&hp), NULL);
    }
    if (q != NULL) {
        ss_aligned_free(q, ss_nifti_nbytes(&hr), NULL);
    }
    free(mp);
    free(mr);
    return st;
}

// Mean, median and sample standard deviation of every metric over the cases, computed once.
typedef struct {
    const case_result_t *r;
    int n;
    double v[2][3][3]; // [dice, hd95][WT, TC, ET][mean, median, std]
} summary_t;

static void summarize(summary_t *s, const case_result_t *r, int n)
{
    double *x = malloc((size_t)n * sizeof(double)), *t = malloc((size_t)n * sizeof(double));
    s->r = r;
    s->n = n;
    for (int m = 0; m < 2; m++) {
        for (int c = 0; c < 3; c++) {
            double sum = 0, s2 = 0;
            for (int i = 0; i < n; i++) {
                x[i] = m ? r[i].hd95[c] : r[i].dice[c];
                sum += x[i];
            }
            double mean = sum / n;
            for (int i = 0; i < n; i++) {
                s2 += (x[i] - mean) * (x[i] - mean);
            }
            s->v[m][c][0] = mean;
            s->v[m][c][1] = ss_median(x, n, t);
            s->v[m][c][2] = n > 1 ? sqrt(s2 / (n - 1)) : 0.0;
        }
    }
    free(x);
    free(t);
}

// Writes text produced by fn to path atomically (temp + rename).
static ss_status_t write_atomic(const char *path,
                                void (*fn)(FILE *, const summary_t *),
                                const summary_t *s,
                                ss_error_t *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        SS_FAIL(err, SS_EINVAL, "%s: cannot write; check that the directory exists and is writable",
                path);
    }
    fn(f, s);
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        SS_FAIL(err, SS_EIO, "%s: writing failed (disk full?); nothing was written", path);
    }
    return SS_OK;
}

static void write_csv(FILE *f, const summary_t *s)
{
    fprintf(f, "case,dice_wt,dice_tc,dice_et,hd95_wt,hd95_tc,hd95_et\n");
    for (int i = 0; i < s->n; i++) {
        const case_result_t *r = &s->r[i];
        fprintf(f, "%s,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f\n", r->name, r->dice[0], r->dice[1],
                r->dice[2], r->hd95[0], r->hd95[1], r->hd95[2]);
    }
}

static void write_json(FILE *f, const summary_t *s)
{
    fprintf(f, "{\"cases\":%d", s->n);
    for (int m = 0; m < 2; m++) {
        for (int c = 0; c < 3; c++) {
            fprintf(f, ",\"%s_%c%c\":{\"mean\":%.6f,\"median\":%.6f,\"std\":%.6f}",
                    m ? "hd95" : "dice", g_region[c][0] | 32, g_region[c][1] | 32, s->v[m][c][0],
                    s->v[m][c][1], s->v[m][c][2]);
        }
    }
    fprintf(f, "}\n");
}

static void print_summary(const summary_t *s)
{
    printf("%-28s %7s %7s %7s %9s %9s %9s\n", "case", "Dice WT", "TC", "ET", "HD95 WT", "TC", "ET");
    for (int i = 0; i < s->n; i++) {
        const case_result_t *r = &s->r[i];
        printf("%-28s %7.4f %7.4f %7.4f %9.2f %9.2f %9.2f\n", r->name, r->dice[0], r->dice[1],
               r->dice[2], r->hd95[0], r->hd95[1], r->hd95[2]);
    }
    const char *lab[3] = {"mean", "median", "std"};
    for (int k = 0; k < 3; k++) {
        printf("%-28s %7.4f %7.4f %7.4f %9.2f %9.2f %9.2f\n", lab[k], s->v[0][0][k], s->v[0][1][k],
               s->v[0][2][k], s->v[1][0][k], s->v[1][1][k], s->v[1][2][k]);
    }
}

// The prediction files of dir, sorted.
static int list_preds(const char *dir, char **names, int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    struct dirent *e;
    char c[256];
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] != '.' && case_name(e->d_name, c, sizeof(c))) {
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    return n;
}

static int run_eval(ss_cli_ctx_t *ctx,
                    const char *cmd,
                    const char *pdir,
                    const char *rdir,
                    const char *csv,
                    const char *json,
                    ss_labels_t conv)
{
    char **names = calloc(MAX_CASES, sizeof(char *));
    case_result_t *res = calloc(MAX_CASES, sizeof(case_result_t));
    int n = names && res ? list_preds(pdir, names, MAX_CASES) : -1, rc = SS_EXIT_OK;
    ss_error_t err;
    ss_error_clear(&err);
    if (n <= 0) {
        ss_cli_error(cmd, "%s: %s; give the folder shardseg infer wrote", pdir,
                     n < 0 ? "cannot read the folder" : "no .nii/.nii.gz predictions");
        rc = SS_EXIT_USAGE;
    }
    for (int i = 0; rc == SS_EXIT_OK && i < n; i++) {
        char pred[4096], ref[4096];
        case_name(names[i], res[i].name, sizeof(res[i].name));
        snprintf(pred, sizeof(pred), "%s/%s", pdir, names[i]);
        if (!find_ref(rdir, res[i].name, ref, sizeof(ref))) {
            ss_cli_error(cmd,
                         "%s: no reference for case %s in %s (looked for <case>/<case>_seg.nii.gz, "
                         "<case>-seg, <case>.nii.gz); check --ref",
                         pred, res[i].name, rdir);
            rc = SS_EXIT_USAGE;
        } else if (eval_case(&res[i], pred, ref, conv, ctx->nthreads, &err) != SS_OK) {
            rc = ss_cli_fail(cmd, &err);
        }
    }
    summary_t sum;
    if (rc == SS_EXIT_OK) {
        summarize(&sum, res, n);
    }
    if (rc == SS_EXIT_OK && csv != NULL && write_atomic(csv, write_csv, &sum, &err) != SS_OK) {
        rc = ss_cli_fail(cmd, &err);
    }
    if (rc == SS_EXIT_OK && json != NULL && write_atomic(json, write_json, &sum, &err) != SS_OK) {
        rc = ss_cli_fail(cmd, &err);
    }
    if (rc == SS_EXIT_OK) {
        print_summary(&sum);
    }
    for (int i = 0; names && i < n; i++) {
        free(names[i]);
    }
    free(names);
    free(res);
    return rc;
}

int ss_cli_cmd_eval(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    const char *pred = NULL, *ref = NULL, *csv = NULL, *json = NULL, *labels = "brats";
    const ss_cli_opt_t opts[] = {
        {"pred", 'p', SS_OPT_STRING, &pred, "DIR", "predictions (<case>.nii.gz)", 1, 0},
        {"ref", 'r', SS_OPT_STRING, &ref, "DIR", "reference label maps (BraTS/MSD folder)", 1, 0},
        {"csv", 0, SS_OPT_STRING, &csv, "FILE", "per-case CSV", 1, 0},
        {"json", 0, SS_OPT_STRING, &json, "FILE", "summary JSON", 1, 0},
        {"labels", 0, SS_OPT_STRING, &labels, "NAME", "brats (default), brats2023 or msd", 1, 0},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, NULL, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        puts(
            "usage: shardseg eval --pred DIR --ref DIR [--csv FILE] [--json FILE] [--labels NAME]");
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    ss_labels_t conv;
    ss_error_t err;
    if (pr == SS_CLI_ERROR || pred == NULL || ref == NULL) {
        ss_cli_error(cmd, "%s", pr == SS_CLI_ERROR ? msg : "give --pred DIR and --ref DIR");
        return SS_EXIT_USAGE;
    }
    if (ss_labels_parse(labels, "--labels", &conv, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    int rc = ss_cli_start(ctx, cmd);
    if (rc != 0) {
        return rc;
    }
    if (ctx->rank == 0) {
        rc = run_eval(ctx, cmd, pred, ref, csv, json, conv);
    }
    return rc;
}
