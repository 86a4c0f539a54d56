// shardseg bench data: how fast the sampler turns a prep'd HDF5 file into augmented patches, how
// the bytes a rank reads fall with its slab of the patch, and whether the prefetch thread hides
// I/O behind a training step (target: the loop waits on data < 2% of the time).
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shardseg/conv3d.h"
#include "shardseg/h5data.h"
#include "shardseg/sampler.h"
#include "shardseg/shardseg.h"
#include "shardseg/synth.h"

#include "cli.h"
#include "opts.h"
#include "prep.h"

typedef struct {
    ss_h5data_t *d;
    ss_sampler_config_t cfg;
    int64_t steps;
    int nthreads;
} data_bench_t;

// Patches per second drawn synchronously (no prefetch) for a rank holding 1/parts of the patch.
static ss_status_t
time_sampler(data_bench_t *b, int parts, double *rate, double *mb_per_patch, ss_error_t *err)
{
    ss_sampler_config_t c = b->cfg;
    c.prefetch = 0;
    ss_split_range(c.patch[0], parts, 0, &c.slab_i0, &c.slab_len);
    ss_sampler_t *s = NULL;
    SS_TRY(ss_sampler_create(b->d, &c, &s, err));
    const float *img;
    const uint8_t *lab;
    ss_status_t st = ss_sampler_next(s, 0, &img, &lab, NULL, err); // warm-up (page cache)
    uint64_t bytes0 = ss_sampler_bytes_read(s);
    double t0 = ss_time_now();
    for (int64_t k = 1; st == SS_OK && k <= b->steps; k++) {
        st = ss_sampler_next(s, (uint64_t)k, &img, &lab, NULL, err);
    }
    double dt = ss_time_now() - t0;
    *rate = (double)b->steps / dt;
    *mb_per_patch = (double)(ss_sampler_bytes_read(s) - bytes0) / (double)b->steps / 1e6;
    ss_sampler_destroy(&s);
    return st;
}

// A stand-in training step on the patch: a 3x3x3 convolution C -> 32 channels, forward and
// backward (the first layer of the 3D U-Net), so the prefetch thread competes for the cores the
// way it will in training.
typedef struct {
    ss_tensor_t x, w, y, dw;
    ss_conv3d_params_t p;
    ss_exec_t ex;
} step_t;

static ss_status_t
step_init(step_t *st, const ss_sampler_config_t *c, int nchan, int nthreads, ss_error_t *err)
{
    st->p = ss_conv3d_params_cube(3, 1, 1);
    int64_t xs[5] = {1, nchan, c->patch[0], c->patch[1], c->patch[2]};
    int64_t ys[5] = {1, 32, c->patch[0], c->patch[1], c->patch[2]};
    int64_t ws[5] = {32, nchan, 3, 3, 3};
    SS_TRY(ss_tensor_init(&st->x, SS_F32, 5, xs, NULL, err));
    SS_TRY(ss_tensor_init(&st->y, SS_F32, 5, ys, NULL, err));
    SS_TRY(ss_tensor_init(&st->w, SS_F32, 5, ws, NULL, err));
    SS_TRY(ss_tensor_init(&st->dw, SS_F32, 5, ws, NULL, err));
    ss_conv3d_shape_t cs = {1, nchan, 32, {c->patch[0], c->patch[1], c->patch[2]}};
    size_t work = ss_conv3d_workspace_size(&st->p, &cs, nthreads);
    st->ex = (ss_exec_t){nthreads, NULL, work, NULL};
    void *bufs[4] = {NULL, NULL, NULL, NULL};
    size_t sizes[4] = {ss_tensor_nbytes(&st->y), ss_tensor_nbytes(&st->w),
                       ss_tensor_nbytes(&st->dw), work};
    for (int i = 0; i < 4; i++) {
        SS_TRY(ss_aligned_alloc(&bufs[i], sizes[i], NULL, "bench data step", err));
        memset(bufs[i], 0, sizes[i]);
    }
    st->y.data = bufs[0], st->w.data = bufs[1], st->dw.data = bufs[2], st->ex.work = bufs[3];
    return SS_OK;
}

static void step_fini(step_t *st)
{
    ss_aligned_free(st->y.data, ss_tensor_nbytes(&st->y), NULL);
    ss_aligned_free(st->w.data, ss_tensor_nbytes(&st->w), NULL);
    ss_aligned_free(st->dw.data, ss_tensor_nbytes(&st->dw), NULL);
    ss_aligned_free(st->ex.work, st->ex.work_bytes, NULL);
}

static ss_status_t step_run(step_t *st, const float *image, ss_error_t *err)
{
    st->x.data = (void *)image;
    SS_TRY(ss_conv3d_fwd(&st->y, &st->x, &st->w, NULL, &st->p, &st->ex, err));
    return ss_conv3d_bwd_weight(&st->dw, NULL, &st->x, &st->y, &st->p, &st->ex, err);
}

// The training loop with the prefetch thread: fraction of wall time spent waiting for patches.
static ss_status_t
time_overlap(data_bench_t *b, double *wait_frac, double *step_ms, ss_error_t *err)
{
    ss_sampler_t *s = NULL;
    SS_TRY(ss_sampler_create(b->d, &b->cfg, &s, err));
    step_t st;
    memset(&st, 0, sizeof(st));
    ss_status_t rc = step_init(&st, &b->cfg, ss_sampler_nchan(s), b->nthreads, err);
    const float *img;
    const uint8_t *lab;
    double waited_total = 0, t0 = 0;
    for (int64_t k = 0; rc == SS_OK && k <= b->steps; k++) {
        double waited;
        rc = ss_sampler_next(s, (uint64_t)k, &img, &lab, &waited, err);
        if (k == 0) {
            t0 = ss_time_now(); // step 0 fills the pipeline: not counted
        } else {
            waited_total += waited;
        }
        if (rc == SS_OK) {
            rc = step_run(&st, img, err);
        }
    }
    double wall = ss_time_now() - t0;
    *wait_frac = waited_total / wall;
    *step_ms = wall / (double)b->steps * 1e3;
    step_fini(&st);
    ss_sampler_destroy(&s);
    return rc;
}

// --- prep throughput: synthetic cases (and optionally a real folder) in a scratch folder ---

enum { WORK_MAX = 4096 };

typedef struct {
    int64_t ncases, size[3];
    const char *real_dir;
    char work[WORK_MAX];      // scratch folder ("" until made), removed at the end
    char cases[WORK_MAX + 8]; // work/cases: the synthetic cases
} prep_bench_t;

// Removes path and everything under it (best effort; symbolic links are removed, not followed).
static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        return;
    }
    DIR *d = S_ISDIR(sb.st_mode) ? opendir(path) : NULL;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                char sub[WORK_MAX + 512];
                snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
                remove_tree(sub);
            }
        }
        closedir(d);
    }
    remove(path);
}

// Rank 0 makes the scratch folder in $TMPDIR (or /tmp) and tells the others its name.
static ss_status_t make_work(const ss_cli_ctx_t *ctx, prep_bench_t *pb, ss_error_t *err)
{
    ss_status_t rc = SS_OK;
    if (ctx->rank == 0) {
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(pb->work, sizeof(pb->work), "%s/shardseg-bench-XXXXXX", base);
        if (mkdtemp(pb->work) == NULL) {
            rc = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                              "%s: cannot make a scratch folder: %s; set TMPDIR to a writable one",
                              base, strerror(errno));
            pb->work[0] = '\0';
        }
    }
    SS_TRY(ss_comm_agree(ctx->world, rc, err));
    SS_TRY(ss_comm_bcast(ctx->world, pb->work, sizeof(pb->work), 0, err));
    // The cases get a folder of their own: prep's output must not sit among its input.
    snprintf(pb->cases, sizeof(pb->cases), "%s/cases", pb->work);
    if (ctx->rank == 0 && mkdir(pb->cases, 0777) != 0) {
        rc = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                          "%s: cannot make a folder: %s", pb->cases, strerror(errno));
    }
    return ss_comm_agree(ctx->world, rc, err);
}

// Every rank writes its share of the synthetic cases (case i on rank i % P) into the folder.
static ss_status_t synth_cases(const ss_cli_ctx_t *ctx, const prep_bench_t *pb, ss_error_t *err)
{
    ss_synth_config_t cfg;
    ss_synth_config_default(&cfg);
    memcpy(cfg.size, pb->size, sizeof(cfg.size));
    cfg.nthreads = ctx->nthreads;
    ss_synth_t *s = NULL;
    ss_synth_case_t c;
    memset(&c, 0, sizeof(c));
    ss_status_t rc = ss_synth_create(&cfg, NULL, &s, err);
    if (rc == SS_OK) {
        rc = ss_synth_case_alloc(s, &c, NULL, err);
    }
    for (int64_t i = ctx->rank; rc == SS_OK && i < pb->ncases; i += ctx->nranks) {
        char name[64];
        ss_synth_case_name(i, name, sizeof(name));
        rc = ss_synth_generate(s, i, &c, err);
        if (rc == SS_OK) {
            rc = ss_synth_write(&c, pb->cases, name, err);
        }
    }
    ss_synth_case_free(&c, NULL);
    ss_synth_destroy(&s);
    return ss_comm_agree(ctx->world, rc, err);
}

// Preps dir into the scratch folder and prints the throughput line (rank 0).
static ss_status_t
time_prep(const ss_cli_ctx_t *ctx, const prep_bench_t *pb, const char *dir, ss_error_t *err)
{
    char out[WORK_MAX + 16];
    snprintf(out, sizeof(out), "%s/prep.h5", pb->work);
    ss_cli_prep_config_t cfg = {dir, out, SS_DATASET_AUTO, SS_TARGET_REGIONS, 1, {0, 0, 0}, 0.2,
                                0,   1234};
    ss_cli_prep_stats_t st;
    SS_TRY(ss_cli_prep_run(ctx, &cfg, &st, err));
    if (ctx->rank == 0) {
        printf("prep source=%s cases=%d ranks=%d seconds=%.2f cases_per_s_per_rank=%.3f "
               "mb_read=%.1f mb_written=%.1f mb_read_per_s=%.1f mb_written_per_s=%.1f\n",
               dir == pb->real_dir ? "real" : "synth", st.cases, st.ranks, st.seconds,
               st.cases / st.seconds / st.ranks, st.bytes_read / 1e6, st.bytes_written / 1e6,
               st.bytes_read / 1e6 / st.seconds, st.bytes_written / 1e6 / st.seconds);
    }
    remove(out);
    return SS_OK;
}

// COLLECTIVE. Synthesises pb->ncases cases, preps them (and pb->real_dir when given), removes the
// scratch folder. Returns the agreed status.
static ss_status_t bench_prep(const ss_cli_ctx_t *ctx, prep_bench_t *pb, ss_error_t *err)
{
    ss_status_t rc = make_work(ctx, pb, err);
    if (rc == SS_OK && ctx->rank == 0) {
        printf("# prep on %lld synthetic cases of %lldx%lldx%lld%s%s, %d threads/rank, %d "
               "rank(s)\n",
               (long long)pb->ncases, (long long)pb->size[0], (long long)pb->size[1],
               (long long)pb->size[2], pb->real_dir ? " and on " : "",
               pb->real_dir ? pb->real_dir : "", ctx->nthreads, ctx->nranks);
        fflush(stdout);
    }
    if (rc == SS_OK && pb->ncases > 0) {
        rc = synth_cases(ctx, pb, err);
    }
    if (rc == SS_OK && pb->ncases > 0) {
        rc = time_prep(ctx, pb, pb->cases, err);
    }
    if (rc == SS_OK && pb->real_dir != NULL) {
        rc = time_prep(ctx, pb, pb->real_dir, err);
    }
    ss_error_t ignored;
    (void)ss_comm_barrier(ctx->world, &ignored); // every rank is done with the folder
    if (ctx->rank == 0 && pb->work[0] != '\0') {
        remove_tree(pb->work);
    }
    return rc;
}

// The sampler figures on the prep'd file path (each rank measures on its own; rank 0 prints).
static ss_status_t
bench_sampler(const ss_cli_ctx_t *ctx, data_bench_t *b, const char *path, ss_error_t *err)
{
    ss_status_t st = ss_h5data_open(path, &b->d, err);
    const int64_t *patch = b->cfg.patch;
    const int say = ctx->rank == 0;
    if (say) {
        printf("# sampler on %s, patch %lldx%lldx%lld, %lld patches per figure, %d threads\n", path,
               (long long)patch[0], (long long)patch[1], (long long)patch[2], (long long)b->steps,
               ctx->nthreads);
    }
    for (int parts = 1; st == SS_OK && parts <= 4; parts *= 2) {
        double rate, mb;
        st = time_sampler(b, parts, &rate, &mb, err);
        if (st == SS_OK && say) {
            printf("sampler slab=1/%d patches_per_s=%.1f mb_read_per_patch=%.2f\n", parts, rate,
                   mb);
        }
    }
    double frac = 0, step_ms = 0;
    if (st == SS_OK) {
        st = time_overlap(b, &frac, &step_ms, err);
    }
    if (st == SS_OK && say) {
        printf("overlap prefetch=%d step_ms=%.1f data_wait_fraction=%.4f\n", b->cfg.prefetch,
               step_ms, frac);
    }
    ss_h5data_close(&b->d);
    return st;
}

static const char g_bench_data_usage[] =
    "usage: shardseg bench data [--data data.h5] [--patch IxJxK] [--steps N] [--prefetch N]\n"
    "                           [--synth-cases N] [--synth-size IxJxK] [--prep-in DIR]\n"
    "Prep throughput (cases/s per rank, MB/s read and written) on N synthetic cases made in a\n"
    "scratch folder under $TMPDIR (and on the dataset folder DIR), then, with --data, the\n"
    "sampler's rate and how much of a training loop waits on data. Runs under mpirun: prep\n"
    "spreads the cases over the ranks.\n";

int ss_cli_bench_data(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    const char *path = NULL;
    int64_t steps = 20, patch[3] = {128, 128, 128}, prefetch = 2;
    prep_bench_t pb;
    memset(&pb, 0, sizeof(pb));
    pb.ncases = 4;
    pb.size[0] = 240, pb.size[1] = 240, pb.size[2] = 155;
    const ss_cli_opt_t opts[] = {
        {"data", 'd', SS_OPT_STRING, &path, "FILE", "HDF5 file written by shardseg prep", 0, -1},
        {"patch", 0, SS_OPT_DIMS3, patch, "IxJxK", "patch size (default 128x128x128)", 8, 1024},
        {"steps", 0, SS_OPT_INT, &steps, "N", "patches per measurement (default 20)", 1, 100000},
        {"prefetch", 0, SS_OPT_INT, &prefetch, "N", "patches prepared ahead (default 2)", 1, 64},
        {"synth-cases", 0, SS_OPT_INT, &pb.ncases, "N",
         "synthetic cases to prep (default 4, 0: none)", 0, 100000},
        {"synth-size", 0, SS_OPT_DIMS3, pb.size, "IxJxK",
         "grid of the synthetic cases (default 240x240x155)", 16, 1024},
        {"prep-in", 0, SS_OPT_STRING, &pb.real_dir, "DIR", "also prep this dataset folder", 0, -1},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        fputs(g_bench_data_usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (pr == SS_CLI_ERROR) {
        ss_cli_error(cmd, "%s", msg);
        return SS_EXIT_USAGE;
    }
    int rc = ss_cli_start(ctx, cmd);
    if (rc != 0) {
        return rc;
    }
    ss_error_t err;
    ss_error_clear(&err);
    ss_status_t st = SS_OK;
    if (pb.ncases > 0 || pb.real_dir != NULL) {
        st = bench_prep(ctx, &pb, &err);
        if (st != SS_OK) {
            return ss_cli_fail_agreed(ctx, cmd, &err, ss_cli_exit_code(err.code));
        }
    }
    if (path != NULL) {
        data_bench_t b;
        memset(&b, 0, sizeof(b));
        b.steps = steps;
        b.nthreads = ctx->nthreads;
        ss_sampler_config_init(&b.cfg);
        memcpy(b.cfg.patch, patch, sizeof(patch));
        b.cfg.prefetch = (int)prefetch;
        st = bench_sampler(ctx, &b, path, &err);
    }
    return st == SS_OK ? SS_EXIT_OK : ss_cli_fail(cmd, &err);
}
