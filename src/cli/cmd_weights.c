// shardseg weights init|export|import|info: weights files in the PyTorch/MONAI layout.
//   init    a freshly initialised network (MONAI's schemes, from the counter-based RNG)
//   export  the weights of a checkpoint (or a run directory's newest one) as a plain weights file
//   import  a state_dict written from PyTorch (root datasets named by key + attributes): checked
//           strictly (every parameter present with its shape, nothing foreign) and rewritten
//   info    the hyper-parameters and parameter count of a weights file
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shardseg/checkpoint.h"
#include "shardseg/shardseg.h"
#include "shardseg/weights.h"

#include "cli.h"
#include "model_opts.h"
#include "opts.h"

// A model with no activation use (batch 1, forward-only plan) to hold weights.
static ss_status_t holder(ss_model_t **m, const ss_model_config_t *c, int nthreads, ss_error_t *err)
{
    ss_model_plan_t p = {1, 0, c->img_size[0], 0, nthreads, NULL};
    return ss_model_create(m, c, &p, NULL, err);
}

static int64_t count_params(const ss_model_t *m)
{
    int64_t n = 0;
    for (int i = 0; i < ss_model_param_count(m); i++) {
        n += ss_model_param(m, i)->numel;
    }
    return n;
}

static int parse(const char *cmd, int argc, char **argv, const ss_cli_opt_t *opts, int nopts, const char **pos, int maxpos, int *npos, const char *usage)
{
    char msg[256];
    ss_cli_result_t r = ss_cli_parse(argc, argv, opts, nopts, pos, maxpos, npos, msg, sizeof(msg));
    if (r == SS_CLI_HELP) {
        fputs(usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return -1;
    }
    if (r == SS_CLI_ERROR) {
        ss_cli_error(cmd, "%s", msg);
        return SS_EXIT_USAGE;
    }
    return 0;
}

static int weights_init(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    ss_cli_model_opts_t mo;
    ss_cli_opt_t opts[SS_MODEL_NOPTS + 2];
    ss_cli_model_opts(&mo, opts);
    const char *out = NULL;
    int64_t seed = 0;
    ss_cli_opt_t extra[2] = {
        {"out", 'o', SS_OPT_STRING, &out, "W.h5", "weights file to write", 1, 0},
        {"seed", 0, SS_OPT_INT, &seed, "S", "initialisation seed (default 0)", 0, 9.0e18},
    };
    memcpy(opts + SS_MODEL_NOPTS, extra, sizeof(extra));
    int npos, rc = parse(cmd, argc, argv, opts, SS_MODEL_NOPTS + 2, NULL, 0, &npos,
                         "usage: shardseg weights init --out W.h5 [model options] [--seed S]\n");
    if (rc != 0) {
        return rc < 0 ? SS_EXIT_OK : rc;
    }
    if (out == NULL) {
        ss_cli_error(cmd, "--out: missing; give the weights file to write");
        return SS_EXIT_USAGE;
    }
    ss_model_config_t c;
    if ((rc = ss_cli_model_config(&mo, &c, cmd)) != 0 || (rc = ss_cli_start(ctx, cmd)) != 0) {
        return rc;
    }
    ss_model_t *m = NULL;
    ss_error_t err;
    ss_error_clear(&err);
    ss_status_t st = holder(&m, &c, ctx->nthreads, &err);
    if (st == SS_OK) {
        st = ss_model_init_weights(m, (uint64_t)seed, &err);
    }
    if (st == SS_OK && ctx->rank == 0) {
        st = ss_weights_save(out, m, &err);
    }
    if (st == SS_OK && ctx->rank == 0) {
        printf("%s: %s, %lld parameters\n", out, ss_model_kind_name(c.kind),
               (long long)count_params(m));
    }
    rc = st == SS_OK ? SS_EXIT_OK : ss_cli_fail(cmd, &err);
    ss_model_destroy(&m);
    return rc;
}

// Loads `in` (a weights file or checkpoint; strict for imports) and writes it to `out`.
static ss_status_t convert(const char *in, const char *out, int strict, int nthreads, int64_t *nparam, ss_error_t *err)
{
    ss_model_config_t c;
    ss_model_t *m = NULL;
    SS_TRY(ss_weights_read_config(in, &c, err));
    SS_TRY(holder(&m, &c, nthreads, err));
    ss_status_t st = strict ? ss_weights_load_strict(in, m, err) : ss_weights_load(in, m, err);
    if (st == SS_OK) {
        st = ss_weights_save(out, m, err);
    }
    *nparam = count_params(m);
    ss_model_destroy(&m);
    return st;
}

static int weights_convert(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv, int import)
{
    const char *out = NULL, *pos[1];
    ss_cli_opt_t opts[1] = {{"out", 'o', SS_OPT_STRING, &out, "W.h5", "weights file to write", 1, 0}};
    int npos, rc = parse(cmd, argc, argv, opts, 1, pos, 1, &npos,
                         import ? "usage: shardseg weights import STATE_DICT.h5 --out W.h5\n"
                                : "usage: shardseg weights export CKPT.h5|RUN_DIR --out W.h5\n");
    if (rc != 0) {
        return rc < 0 ? SS_EXIT_OK : rc;
    }
    if (npos != 1 || out == NULL) {
        ss_cli_error(cmd, "%s; give one input file and --out FILE",
                     npos != 1 ? "missing input" : "--out: missing");
        return SS_EXIT_USAGE;
    }
    if ((rc = ss_cli_start(ctx, cmd)) != 0 || ctx->rank != 0) {
        return rc;
    }
    char path[4096], warn[2048] = "";
    ss_error_t err;
    ss_error_clear(&err);
    ss_status_t st = SS_OK;
    struct stat sb;
    snprintf(path, sizeof(path), "%s", pos[0]);
    if (!import && stat(pos[0], &sb) == 0 && S_ISDIR(sb.st_mode)) {
        st = ss_ckpt_find_latest(pos[0], path, sizeof(path), warn, sizeof(warn), &err);
        if (st == SS_OK && path[0] == '\0') {
            ss_cli_error(cmd, "%s: no checkpoint in this directory; give a ckpt-*.h5 file", pos[0]);
            return SS_EXIT_USAGE;
        }
        if (warn[0] != '\0') {
            fprintf(stderr, "shardseg %s: %s\n", cmd, warn);
        }
    }
    int64_t n = 0;
    if (st == SS_OK) {
        st = convert(path, out, import, ctx->nthreads, &n, &err);
    }
    if (st != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    printf("%s: %lld parameters from %s\n", out, (long long)n, path);
    return SS_EXIT_OK;
}

static int weights_info(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    const char *pos[1];
    int npos, rc = parse(cmd, argc, argv, NULL, 0, pos, 1, &npos, "usage: shardseg weights info W.h5\n");
    if (rc != 0) {
        return rc < 0 ? SS_EXIT_OK : rc;
    }
    if (npos != 1) {
        ss_cli_error(cmd, "give one weights file");
        return SS_EXIT_USAGE;
    }
    (void)ctx;
    ss_model_config_t c;
    ss_error_t err;
    ss_model_t *m = NULL;
    if (ss_weights_read_config(pos[0], &c, &err) != SS_OK || holder(&m, &c, 1, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    printf("model=%s in_channels=%lld out_channels=%lld img_size=%lldx%lldx%lld parameters=%lld\n",
           ss_model_kind_name(c.kind), (long long)c.in_channels, (long long)c.out_channels,
           (long long)c.img_size[0], (long long)c.img_size[1], (long long)c.img_size[2],
           (long long)count_params(m));
    ss_model_destroy(&m);
    return SS_EXIT_OK;
}

int ss_cli_cmd_weights(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    const char *what = argc > 0 ? argv[0] : "";
    if (strcmp(what, "init") == 0) {
        return weights_init(ctx, "weights init", argc - 1, argv + 1);
    }
    if (strcmp(what, "export") == 0 || strcmp(what, "import") == 0) {
        return weights_convert(ctx, what[0] == 'e' ? "weights export" : "weights import", argc - 1,
                               argv + 1, what[0] == 'i');
    }
    if (strcmp(what, "info") == 0) {
        return weights_info(ctx, "weights info", argc - 1, argv + 1);
    }
    if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0) {
        puts("usage: shardseg weights init --out W.h5 [model options] [--seed S]\n"
             "       shardseg weights export CKPT.h5|RUN_DIR --out W.h5\n"
             "       shardseg weights import STATE_DICT.h5 --out W.h5\n"
             "       shardseg weights info W.h5");
        return SS_EXIT_OK;
    }
    ss_cli_error(cmd, "'%s': give one of init, export, import, info", what);
    return SS_EXIT_USAGE;
}
