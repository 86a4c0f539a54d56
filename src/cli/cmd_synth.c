// shardseg synth: synthetic BraTS-2021-layout cases (synth.h describes how a case is made).
//
// Cases are independent and deterministic by (seed, index), so under mpirun rank r makes cases
// r, r + P, r + 2P, ...; each case is written atomically (temporary folder renamed when complete).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardseg/shardseg.h"
#include "shardseg/synth.h"

#include "cli.h"
#include "opts.h"

static const char g_usage[] =
    "usage: shardseg synth --out DIR --cases N [--seed S] [--size 240x240x155] [--template DIR]\n"
    "Writes N synthetic cases DIR/SynBraTS_NNNNN/SynBraTS_NNNNN_{flair,t1,t1ce,t2,seg}.nii.gz\n"
    "(BraTS 2021 layout: int16 images, uint8 labels 0/1 NCR/2 ED/4 ET, 1 mm BraTS affine at the\n"
    "default size) from the Colin27 template of Debian's mricron-data: random deformation, a\n"
    "tumour with enhancing rim, necrotic core and edema, FLAIR/T1/T1ce/T2 contrasts, bias field\n"
    "and Rician noise. Without the template it uses an analytic head phantom and says so.\n"
    "Deterministic by seed; a smaller --size samples the same 240x240x155 mm field of view.\n\n";

typedef struct {
    const char *out, *template_dir;
    int64_t cases, seed, size[3];
} synth_opts_t;

// Parses and checks the options; 0, or the exit code after printing the one-line error.
static int parse(const char *cmd, int argc, char **argv, synth_opts_t *o)
{
    const ss_cli_opt_t opts[] = {
        {"out", 'o', SS_OPT_STRING, &o->out, "DIR", "output folder (created if missing)", 1, 0},
        {"cases", 'n', SS_OPT_INT, &o->cases, "N", "number of cases (>= 1)", 1, 1000000},
        {"seed", 's', SS_OPT_INT, &o->seed, "S", "random seed (default 0)", 0, 9.0e15},
        {"size", 0, SS_OPT_DIMS3, o->size, "IxJxK", "grid (default 240x240x155; each 16..1024)", 16,
         1024},
        {"template", 0, SS_OPT_STRING, &o->template_dir, "DIR",
         "folder with ch2better.nii.gz and ch2bet.nii.gz (default " SS_SYNTH_TEMPLATE_DIR ")", 1,
         0},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 0, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        fputs(g_usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return -1;
    }
    if (pr == SS_CLI_ERROR) {
        ss_cli_error(cmd, "%s", msg);
        return SS_EXIT_USAGE;
    }
    if (o->out == NULL || o->out[0] == '\0') {
        ss_cli_error(cmd, "--out: missing; give the folder to write the cases to");
        return SS_EXIT_USAGE;
    }
    if (o->cases < 1) {
        ss_cli_error(cmd, "--cases: missing; give the number of cases (>= 1)");
        return SS_EXIT_USAGE;
    }
    return 0;
}

// Creates --out if missing (one level) and checks that it is a writable folder.
static int check_out(const char *cmd, const char *out)
{
    struct stat st;
    if (stat(out, &st) != 0 && mkdir(out, 0777) != 0 && errno != EEXIST) {
        ss_cli_error(cmd, "--out: %s: cannot create: %s; give a writable folder", out,
                     strerror(errno));
        return SS_EXIT_USAGE;
    }
    if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ss_cli_error(cmd, "--out: %s: not a folder; give a writable folder", out);
        return SS_EXIT_USAGE;
    }
    if (access(out, W_OK | X_OK) != 0) {
        ss_cli_error(cmd, "--out: %s: not writable; give a writable folder", out);
        return SS_EXIT_USAGE;
    }
    return 0;
}

// Generates and writes this rank's cases; *made counts them, *secs is the generation+write time.
static ss_status_t run_cases(const ss_cli_ctx_t *ctx,
                             const synth_opts_t *o,
                             ss_synth_t *s,
                             ss_budget_t *b,
                             int *made,
                             double *secs,
                             ss_error_t *err)
{
    ss_synth_case_t c;
    SS_TRY(ss_synth_case_alloc(s, &c, b, err));
    ss_status_t st = SS_OK;
    double t0 = ss_time_now();
    for (int64_t i = ctx->rank; i < o->cases && st == SS_OK; i += ctx->nranks) {
        char name[64];
        ss_synth_case_name(i, name, sizeof(name));
        double t1 = ss_time_now();
        st = ss_synth_generate(s, i, &c, err);
        double t2 = ss_time_now();
        if (st == SS_OK) {
            st = ss_synth_write(&c, o->out, name, err);
        }
        if (st == SS_OK) {
            *made += 1;
            SS_LOG_INFO("synth: %s: generated in %.2f s, written in %.2f s (tumour core %.0f mm)",
                        name, t2 - t1, ss_time_now() - t2, c.core_radius_mm);
        }
    }
    *secs = ss_time_now() - t0;
    ss_synth_case_free(&c, b);
    return st;
}

int ss_cli_cmd_synth(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    synth_opts_t o = {NULL, SS_SYNTH_TEMPLATE_DIR, 0, 0, {240, 240, 155}};
    int rc = parse(cmd, argc, argv, &o);
    if (rc != 0) {
        return rc < 0 ? SS_EXIT_OK : rc;
    }
    if ((rc = check_out(cmd, o.out)) != 0 || (rc = ss_cli_start(ctx, cmd)) != 0) {
        return rc;
    }
    ss_synth_config_t cfg;
    ss_synth_config_default(&cfg);
    memcpy(cfg.size, o.size, sizeof(cfg.size));
    cfg.seed = (uint64_t)o.seed;
    cfg.template_dir = o.template_dir;
    cfg.nthreads = ctx->nthreads;
    if (!ss_synth_template_available(o.template_dir)) {
        SS_LOG_WARN("synth: %s lacks ch2better.nii.gz / ch2bet.nii.gz (Debian package "
                    "mricron-data): using the analytic head phantom instead of Colin27",
                    o.template_dir);
    }
    ss_budget_t budget;
    ss_budget_init(&budget, ctx->mem_limit);
    ss_error_t err;
    ss_error_clear(&err);
    ss_synth_t *s = NULL;
    int made = 0;
    double secs = 0;
    ss_status_t st = ss_synth_create(&cfg, &budget, &s, &err);
    if (st == SS_OK) {
        st = run_cases(ctx, &o, s, &budget, &made, &secs, &err);
    }
    ss_synth_destroy(&s);
    if (st != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    // The slowest rank's time is the run's time.
    double slowest = secs;
    if (ss_comm_allreduce_max_f64(ctx->world, &slowest, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    if (ctx->rank == 0) {
        printf("synth: %lld cases of %lldx%lldx%lld in %s, %d thread(s)/rank, %d rank(s)\n",
               (long long)o.cases, (long long)o.size[0], (long long)o.size[1], (long long)o.size[2],
               o.out, ctx->nthreads, ctx->nranks);
        printf("cases=%lld seconds=%.2f cases_per_s=%.3f s_per_case=%.2f\n", (long long)o.cases,
               slowest, (double)o.cases / slowest, slowest * ctx->nranks / (double)o.cases);
    }
    return SS_EXIT_OK;
}
