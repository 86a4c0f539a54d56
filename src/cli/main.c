// shardseg: entry point. Decides how the process starts (MPI, threads, logging, memory budget)
// and how it ends (exit code, MPI abort when one rank fails while others may wait).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"

static void print_version(void)
{
    char build[256], blas[256];
    ss_build_info(build, sizeof(build));
    ss_blas_info(blas, sizeof(blas));
    printf("shardseg %s\n  build: %s\n  blas:  %s\n", ss_version(), build, blas);
}

static void print_usage(FILE *f)
{
    fprintf(f, "usage: shardseg [--version] [--help] <command> [options]\n"
               "       mpirun -np P shardseg <command> [options]\n\n"
               "3D brain-tumour segmentation (UNETR, 3D U-Net) trained and run on CPU clusters,\n"
               "with sequence parallelism for long token sequences and experiment parallelism for\n"
               "hyper-parameter sweeps.\n\ncommands:\n");
    int n;
    const ss_cli_command_t *cmds = ss_cli_commands(&n);
    for (int i = 0; i < n; i++) {
        fprintf(f, "  %-9s %s%s\n", cmds[i].name, cmds[i].summary,
                cmds[i].run ? "" : " (not built yet)");
    }
    fprintf(f,
            "\noptions accepted by every command:\n"
            "  -v, --verbose        debug logging, on every rank\n"
            "  -q, --quiet          warnings and errors only\n"
            "      --threads N      OpenMP threads per rank (default: OMP_NUM_THREADS or cores)\n"
            "      --mem-limit SIZE memory budget per rank, e.g. 12G; refused before use\n\n"
            "`shardseg <command> --help` describes each command. Exit codes: 0 ok, 1 runtime\n"
            "failure, 2 bad usage, configuration or input.\n");
}

static const ss_cli_command_t *find_command(const char *name)
{
    int n;
    const ss_cli_command_t *cmds = ss_cli_commands(&n);
    for (int i = 0; i < n; i++) {
        if (strcmp(cmds[i].name, name) == 0) {
            return &cmds[i];
        }
    }
    return NULL;
}

// Takes the options shared by all commands out of argv (wherever they appear, so
// `shardseg train --mem-limit 12G` and `shardseg --mem-limit 12G train` both work) and leaves the
// rest, in order, for the command. Returns 0, or 2 after printing the error.
static int take_common_options(int *argc, char **argv, ss_cli_ctx_t *ctx)
{
    int64_t threads = 0;
    int verbose = 0, quiet = 0;
    size_t mem_limit = 0;
    const ss_cli_opt_t common[] = {
        {"verbose", 'v', SS_OPT_FLAG, &verbose, NULL, "", 0, -1},
        {"quiet", 'q', SS_OPT_FLAG, &quiet, NULL, "", 0, -1},
        {"threads", 0, SS_OPT_INT, &threads, "N", "", 1, 4096},
        {"mem-limit", 0, SS_OPT_BYTES, &mem_limit, "SIZE", "", 0, -1},
    };
    const int ncommon = (int)(sizeof(common) / sizeof(common[0]));
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < *argc) {
                argv[out++] = argv[i++];
            }
            break;
        }
        int takes_value = 0, match = 0;
        for (int k = 0; k < ncommon; k++) {
            size_t len = strlen(common[k].name);
            int is_long = strncmp(a, "--", 2) == 0 && strncmp(a + 2, common[k].name, len) == 0 &&
                          (a[2 + len] == '\0' || a[2 + len] == '=');
            int is_short =
                common[k].short_name && a[0] == '-' && a[1] == common[k].short_name && a[2] == '\0';
            if (is_long || is_short) {
                match = 1;
                takes_value = common[k].type != SS_OPT_FLAG && strchr(a, '=') == NULL;
                break;
            }
        }
        if (!match) {
            argv[out++] = argv[i];
            continue;
        }
        int n = takes_value && i + 1 < *argc ? 2 : 1;
        const char *pos[1];
        int npos;
        char msg[256];
        if (ss_cli_parse(n, argv + i, common, ncommon, pos, 0, &npos, msg, sizeof(msg)) !=
            SS_CLI_PARSED) {
            ss_cli_error(NULL, "%s", msg);
            return SS_EXIT_USAGE;
        }
        i += n - 1;
    }
    *argc = out;
    ctx->verbose = verbose;
    ctx->quiet = quiet;
    ctx->mem_limit = mem_limit;
    ctx->nthreads = threads > 0 ? (int)threads : ss_exec_default_threads();
    return 0;
}

static void configure_logging(const ss_cli_ctx_t *ctx)
{
    ss_log_config_t cfg = {SS_LOG_LEVEL_INFO, NULL, ctx->rank, 1};
    if (ctx->verbose) {
        cfg.level = SS_LOG_LEVEL_DEBUG;
        cfg.rank0_only = 0;
    } else if (ctx->quiet) {
        cfg.level = SS_LOG_LEVEL_WARN;
    }
    ss_log_configure(&cfg);
}

int ss_cli_start(ss_cli_ctx_t *ctx, const char *cmd)
{
    ss_error_t err;
    ss_error_clear(&err);
    if (ss_dist_init(NULL, NULL, &ctx->world, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    ctx->started = 1;
    ctx->rank = ss_comm_rank(ctx->world);
    ctx->nranks = ss_comm_size(ctx->world);
    configure_logging(ctx);
    return 0;
}

static int run_command(const ss_cli_command_t *cmd, int argc, char **argv)
{
    ss_cli_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    int rc = take_common_options(&argc, argv, &ctx);
    if (rc != 0) {
        return rc;
    }
    if (cmd->run == NULL) {
        for (int i = 0; i < argc; i++) {
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                fputs(cmd->usage, stdout);
                printf("\nstatus: not built yet in shardseg %s; it arrives with %s.\n",
                       ss_version(), cmd->arrives);
                return SS_EXIT_OK;
            }
        }
        ss_cli_error(cmd->name,
                     "not built yet in shardseg %s (it arrives with %s); "
                     "see README for what works today",
                     ss_version(), cmd->arrives);
        return SS_EXIT_USAGE;
    }
    ctx.nranks = 1;
    rc = cmd->run(&ctx, cmd->name, argc, argv);
    if (ctx.started) {
        if (rc != SS_EXIT_OK && ctx.nranks > 1) {
            // Other ranks may be waiting in a collective for this one: end them all.
            ss_dist_abort(rc);
        }
        ss_dist_finalize();
    }
    return rc;
}

int ss_cli_fail_agreed(const ss_cli_ctx_t *ctx, const char *cmd, const ss_error_t *err, int rc)
{
    if (ctx->rank == 0) {
        ss_cli_fail(cmd, err);
    }
    if (ctx->nranks > 1) {
        ss_dist_finalize();
    }
    return rc;
}

// OpenBLAS chooses its kernels when it is loaded, from OPENBLAS_CORETYPE or the CPU model; on a
// CPU newer than the library it falls back to SSE3 kernels (blas.h). The only remedy is to run
// again with OPENBLAS_CORETYPE set, before anything else happens (MPI is not started yet). A
// value the user set is never touched, and the re-run sees it set, so this happens at most once.
static void run_with_better_blas_core(char **argv)
{
    const char *core = getenv("OPENBLAS_CORETYPE") == NULL ? ss_blas_better_core() : NULL;
    if (core == NULL || getenv("SHARDSEG_NO_BLAS_REEXEC") != NULL) {
        return;
    }
    setenv("OPENBLAS_CORETYPE", core, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); // exec failed: carry on with the core OpenBLAS chose
}

int main(int argc, char **argv)
{
    run_with_better_blas_core(argv);
    if (argc < 2) {
        ss_cli_error(NULL, "no command given; run shardseg --help for the list");
        return SS_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 || strcmp(first, "help") == 0) {
        print_usage(stdout);
        return SS_EXIT_OK;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        print_version();
        return SS_EXIT_OK;
    }
    // Common options may precede the command: find the first word that is not one of them.
    int ci = 1;
    while (ci < argc && argv[ci][0] == '-') {
        int has_value =
            (strcmp(argv[ci], "--threads") == 0 || strcmp(argv[ci], "--mem-limit") == 0);
        ci += has_value ? 2 : 1;
    }
    if (ci >= argc) {
        ss_cli_error(NULL, "no command given; run shardseg --help for the list");
        return SS_EXIT_USAGE;
    }
    const ss_cli_command_t *cmd = find_command(argv[ci]);
    if (cmd == NULL) {
        ss_cli_error(NULL, "'%s': unknown command; run shardseg --help for the list", argv[ci]);
        return SS_EXIT_USAGE;
    }
    // Hand the command everything but the program name and the command word.
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (i != ci) {
            argv[n++] = argv[i];
        }
    }
    return run_command(cmd, n, argv);
}
