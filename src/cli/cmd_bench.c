// shardseg bench: measurements printed as ratios taken in one run (STYLE: benchmarks, not timed
// tests). Today: gemm, the machine's sgemm peak that kernel benchmarks compare against.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"

ss_status_t ss_cli_bench_sgemm(
    int64_t n, int repeats, int nthreads, double *gflops, ss_budget_t *budget, ss_error_t *err)
{
    size_t bytes = (size_t)(n * n) * sizeof(float);
    float *a = NULL, *b = NULL, *c = NULL;
    ss_status_t st = ss_aligned_alloc((void **)&a, bytes, budget, "bench gemm A", err);
    if (st == SS_OK) {
        st = ss_aligned_alloc((void **)&b, bytes, budget, "bench gemm B", err);
    }
    if (st == SS_OK) {
        st = ss_aligned_alloc((void **)&c, bytes, budget, "bench gemm C", err);
    }
    if (st != SS_OK) {
        goto out;
    }
    ss_rng_fill_uniform(ss_rng_make(1, 1), 0, n * n, -1, 1, a, nthreads);
    ss_rng_fill_uniform(ss_rng_make(1, 2), 0, n * n, -1, 1, b, nthreads);
    ss_exec_t ex = {nthreads, NULL, 0, NULL};
    for (int r = -1; r < repeats; r++) {
        double t0 = ss_time_now();
        ss_gemm(SS_NO_TRANS, SS_NO_TRANS, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n, &ex);
        double dt = ss_time_now() - t0;
        if (r >= 0) {
            gflops[r] = 2.0 * (double)n * (double)n * (double)n / dt * 1e-9;
        }
    }
out:
    ss_aligned_free(a, bytes, budget);
    ss_aligned_free(b, bytes, budget);
    ss_aligned_free(c, bytes, budget);
    return st;
}

ss_status_t
ss_cli_bench_memcpy(int nthreads, int repeats, double *gbs, ss_budget_t *budget, ss_error_t *err)
{
    const size_t bytes = 256u << 20;
    char *src = NULL, *dst = NULL;
    ss_status_t st = ss_aligned_alloc((void **)&src, bytes, budget, "bench memcpy", err);
    if (st == SS_OK) {
        st = ss_aligned_alloc((void **)&dst, bytes, budget, "bench memcpy", err);
    }
    if (st != SS_OK) {
        goto out;
    }
    memset(src, 1, bytes);
    memset(dst, 0, bytes);
    double best = 0;
    for (int r = -1; r < repeats; r++) {
        double t0 = ss_time_now();
#pragma omp parallel num_threads(nthreads) default(none) shared(src, dst, nthreads)
        {
            int64_t start, len;
            ss_split_range((int64_t)bytes, nthreads, omp_get_thread_num(), &start, &len);
            memcpy(dst + start, src + start, (size_t)len);
        }
        double rate = 2.0 * (double)bytes / (ss_time_now() - t0) * 1e-9;
        if (r >= 0 && rate > best) {
            best = rate;
        }
    }
    *gbs = best;
out:
    ss_aligned_free(src, bytes, budget);
    ss_aligned_free(dst, bytes, budget);
    return st;
}

static int bench_gemm(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    int64_t n = 2048, repeats = 7;
    const ss_cli_opt_t opts[] = {
        {"size", 'n', SS_OPT_INT, &n, "N", "matrix size (default 2048)", 16, 32768},
        {"repeats", 'r', SS_OPT_INT, &repeats, "R", "timed runs after the warm-up (default 7)", 1,
         1000},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        puts("usage: shardseg bench gemm [--size N] [--repeats R]");
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
    ss_budget_t budget;
    ss_budget_init(&budget, ctx->mem_limit);
    double *gf = calloc((size_t)repeats * 2, sizeof(double));
    if (gf == NULL) {
        ss_cli_error(cmd, "out of memory");
        return SS_EXIT_RUNTIME;
    }
    ss_error_t err;
    ss_error_clear(&err);
    if (ss_cli_bench_sgemm(n, (int)repeats, ctx->nthreads, gf, &budget, &err) != SS_OK) {
        rc = ss_cli_fail(cmd, &err);
        goto out;
    }
    double median = ss_median(gf, (int)repeats, gf + repeats);
    double best = gf[0];
    for (int i = 1; i < repeats; i++) {
        best = gf[i] > best ? gf[i] : best;
    }
    // Each rank measures on its own; the slowest rank's median is what collective work sees.
    double slowest = -median;
    if (ss_comm_allreduce_max_f64(ctx->world, &slowest, &err) != SS_OK) {
        rc = ss_cli_fail(cmd, &err);
        goto out;
    }
    if (ctx->rank == 0) {
        char blas[256];
        ss_blas_info(blas, sizeof(blas));
        printf("# sgemm %lld^3, %d threads/rank, %d ranks, %s\n", (long long)n, ctx->nthreads,
               ctx->nranks, blas);
        printf("sgemm_gflops_max=%.1f sgemm_gflops_median=%.1f slowest_rank_median=%.1f "
               "per_thread_median=%.1f\n",
               best, median, -slowest, median / ctx->nthreads);
    }
out:
    free(gf);
    return rc;
}

int ss_cli_cmd_bench(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    if (argc < 1) {
        ss_cli_error(cmd, "which benchmark? give one of: gemm, kernels, data, step");
        return SS_EXIT_USAGE;
    }
    const char *what = argv[0];
    if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0) {
        int n;
        const ss_cli_command_t *cmds = ss_cli_commands(&n);
        for (int i = 0; i < n; i++) {
            if (strcmp(cmds[i].name, "bench") == 0) {
                fputs(cmds[i].usage, stdout);
            }
        }
        return SS_EXIT_OK;
    }
    if (strcmp(what, "gemm") == 0) {
        return bench_gemm(ctx, "bench gemm", argc - 1, argv + 1);
    }
    if (strcmp(what, "kernels") == 0) {
        return ss_cli_bench_kernels(ctx, "bench kernels", argc - 1, argv + 1);
    }
    if (strcmp(what, "data") == 0) {
        return ss_cli_bench_data(ctx, "bench data", argc - 1, argv + 1);
    }
    if (strcmp(what, "step") == 0) {
        return ss_cli_bench_step(ctx, "bench step", argc - 1, argv + 1);
    }
    ss_cli_error(cmd, "'%s': unknown benchmark; give one of: gemm, kernels, data, step", what);
    return SS_EXIT_USAGE;
}
