// shardseg bench data: how fast the sampler turns a prep'd HDF5 file into augmented patches, how
// the bytes a rank reads fall with its slab of the patch, and whether the prefetch thread hides
// I/O behind a training step (target: the loop waits on data < 2% of the time).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/conv3d.h"
#include "shardseg/h5data.h"
#include "shardseg/sampler.h"
#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"

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

int ss_cli_bench_data(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    const char *path = NULL;
    int64_t steps = 20, patch[3] = {128, 128, 128}, prefetch = 2;
    const ss_cli_opt_t opts[] = {
        {"data", 'd', SS_OPT_STRING, &path, "FILE", "HDF5 file written by shardseg prep", 0, -1},
        {"patch", 0, SS_OPT_DIMS3, patch, "IxJxK", "patch size (default 128x128x128)", 8, 1024},
        {"steps", 0, SS_OPT_INT, &steps, "N", "patches per measurement (default 20)", 1, 100000},
        {"prefetch", 0, SS_OPT_INT, &prefetch, "N", "patches prepared ahead (default 2)", 1, 64},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        puts(
            "usage: shardseg bench data --data data.h5 [--patch IxJxK] [--steps N] [--prefetch N]");
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (pr == SS_CLI_ERROR || path == NULL) {
        ss_cli_error(cmd, "%s", pr == SS_CLI_ERROR ? msg : "--data: missing; give --data data.h5");
        return SS_EXIT_USAGE;
    }
    int rc = ss_cli_start(ctx, cmd);
    if (rc != 0) {
        return rc;
    }
    data_bench_t b;
    memset(&b, 0, sizeof(b));
    b.steps = steps;
    b.nthreads = ctx->nthreads;
    ss_sampler_config_init(&b.cfg);
    memcpy(b.cfg.patch, patch, sizeof(patch));
    b.cfg.prefetch = (int)prefetch;
    ss_error_t err;
    ss_error_clear(&err);
    ss_status_t st = ss_h5data_open(path, &b.d, &err);
    printf("# sampler on %s, patch %lldx%lldx%lld, %lld patches per figure, %d threads\n", path,
           (long long)patch[0], (long long)patch[1], (long long)patch[2], (long long)steps,
           ctx->nthreads);
    for (int parts = 1; st == SS_OK && parts <= 4; parts *= 2) {
        double rate, mb;
        st = time_sampler(&b, parts, &rate, &mb, &err);
        if (st == SS_OK) {
            printf("sampler slab=1/%d patches_per_s=%.1f mb_read_per_patch=%.2f\n", parts, rate,
                   mb);
        }
    }
    double frac = 0, step_ms = 0;
    if (st == SS_OK) {
        st = time_overlap(&b, &frac, &step_ms, &err);
    }
    if (st == SS_OK) {
        printf("overlap prefetch=%lld step_ms=%.1f data_wait_fraction=%.4f\n", (long long)prefetch,
               step_ms, frac);
    }
    ss_h5data_close(&b.d);
    return st == SS_OK ? SS_EXIT_OK : ss_cli_fail(cmd, &err);
}
