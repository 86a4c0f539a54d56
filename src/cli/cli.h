// cli.h: what the subcommands of the shardseg executable share (not installed).
//
// The CLI is the only layer that prints to the user or decides the exit code: 0 ok, 1 runtime
// failure, 2 bad usage, configuration or input (DESIGN.md).
#ifndef SS_CLI_H
#define SS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/arena.h"
#include "shardseg/comm.h"
#include "shardseg/status.h"

enum {
    SS_EXIT_OK = 0,
    SS_EXIT_RUNTIME = 1,
    SS_EXIT_USAGE = 2,
};

// Options every command accepts, parsed by main before the command sees argv.
typedef struct {
    ss_comm_t *world; // MPI_COMM_WORLD as a mesh handle (a single rank without mpirun)
    int rank;
    int nranks;
    int nthreads;     // OpenMP threads per rank (--threads, else OMP_NUM_THREADS, else cores)
    size_t mem_limit; // bytes per rank, 0 = unlimited (--mem-limit)
    int verbose;      // --verbose: debug logging on every rank
    int quiet;        // --quiet: warnings and errors only
    int started;      // ss_cli_start has run (MPI is up)
} ss_cli_ctx_t;

typedef int (*ss_cli_run_fn)(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);

typedef struct {
    const char *name;
    const char *summary; // one line for `shardseg --help`
    const char *usage;   // full help text for `shardseg <cmd> --help`
    ss_cli_run_fn run;   // NULL: planned, not built yet
    const char *arrives; // for planned commands: the issue that builds it
} ss_cli_command_t;

// Starts MPI and logging for a command once its options are known to be valid, so a usage error
// costs no MPI start-up. Fills world/rank/nranks. Returns 0, or the exit code after printing.
int ss_cli_start(ss_cli_ctx_t *ctx, const char *cmd);

// The command table, in the order `shardseg --help` lists them.
const ss_cli_command_t *ss_cli_commands(int *n);

// Prints `shardseg <cmd>: <message>` on stderr (every rank that fails says so).
void ss_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prints a failed call's error record and returns the exit code its status maps to.
int ss_cli_fail(const char *cmd, const ss_error_t *err);
// Exit code for a status: input and configuration problems are 2, the rest 1.
int ss_cli_exit_code(ss_status_t st);
// For a failure every rank agreed on (each holds the same error record): rank 0 prints the one
// line, MPI ends normally on every rank (main's ss_dist_abort, meant for a rank that fails alone,
// would add Open MPI's abort banner), and rc is returned.
int ss_cli_fail_agreed(const ss_cli_ctx_t *ctx, const char *cmd, const ss_error_t *err, int rc);

// Subcommands that exist.
int ss_cli_cmd_bench(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_prep(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_synth(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_bench_data(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_eval(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_report(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_train(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_weights(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_forward(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_cmd_infer(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_bench_step(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);
int ss_cli_bench_kernels(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv);

// Reference rates the benchmarks report against, measured in the same run:
// sgemm GFLOP/s of `repeats` n^3 products after a warm-up, into gflops[0..repeats);
ss_status_t ss_cli_bench_sgemm(
    int64_t n, int repeats, int nthreads, double *gflops, ss_budget_t *budget, ss_error_t *err);
// best memcpy bandwidth (bytes read + written per second, in GB/s) of a 256 MiB copy split over
// nthreads threads.
ss_status_t
ss_cli_bench_memcpy(int nthreads, int repeats, double *gbs, ss_budget_t *budget, ss_error_t *err);

#endif
