// shardseg report: the learning curves and summary of a training run as one PNG page (report.h),
// and the same summary as text on stdout. Local files only: no MPI start-up.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shardseg/report.h"
#include "shardseg/shardseg.h"

#include "cli.h"
#include "opts.h"

static const char g_usage[] =
    "usage: shardseg report RUN_DIR [--out FILE.png] [--metrics FILE] [--loss-scale "
    "auto|linear|log]\n"
    "Reads RUN_DIR/metrics.jsonl and RUN_DIR/config.ini (written by shardseg train) and draws one\n"
    "page: training loss (per step and moving average, with its Dice and cross-entropy parts),\n"
    "validation Dice per region, learning rate, and a summary (best validation Dice and its step,\n"
    "final loss, median step time, total time, peak memory, key settings). Writes the PNG\n"
    "atomically (default RUN_DIR/report.png) and prints the summary. A run killed mid-line is\n"
    "fine: an incomplete last line is skipped.\n\n";

typedef struct {
    const char *dir, *out, *metrics, *scale;
    ss_report_scale_t loss_scale;
} report_opts_t;

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

// Parses and checks the options; 0, -1 after --help, or the exit code after the one-line error.
static int parse(const char *cmd, int argc, char **argv, report_opts_t *o)
{
    const ss_cli_opt_t opts[] = {
        {"out", 'o', SS_OPT_STRING, &o->out, "FILE.png", "picture (default RUN_DIR/report.png)", 1,
         0},
        {"metrics", 0, SS_OPT_STRING, &o->metrics, "FILE",
         "metrics log (default RUN_DIR/metrics.jsonl)", 1, 0},
        {"loss-scale", 0, SS_OPT_STRING, &o->scale, "SCALE",
         "loss axis: auto (log when the loss spans 10x), linear or log", 1, 0},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    const char *pos[1];
    int npos;
    char msg[256];
    ss_cli_result_t pr = ss_cli_parse(argc, argv, opts, nopts, pos, 1, &npos, msg, sizeof(msg));
    if (pr == SS_CLI_HELP) {
        fputs(g_usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return -1;
    }
    if (pr == SS_CLI_ERROR || npos != 1) {
        ss_cli_error(cmd, "%s", pr == SS_CLI_ERROR ? msg : "give RUN_DIR, the output.dir of a run");
        return SS_EXIT_USAGE;
    }
    o->dir = pos[0];
    static const char *const scales[3] = {"auto", "linear", "log"};
    for (int i = 0; i < 3; i++) {
        o->loss_scale = strcmp(o->scale, scales[i]) == 0 ? (ss_report_scale_t)i : o->loss_scale;
    }
    if (strcmp(o->scale, scales[o->loss_scale]) != 0) {
        ss_cli_error(cmd, "--loss-scale: '%s' is not a scale; give auto, linear or log", o->scale);
        return SS_EXIT_USAGE;
    }
    struct stat sb;
    int e = stat(o->dir, &sb) == 0 ? 0 : errno;
    if (e != 0 || !S_ISDIR(sb.st_mode)) {
        ss_cli_error(cmd, "%s: %s; give the output directory of a shardseg train run", o->dir,
                     e != 0 ? strerror(e) : "not a directory");
        return SS_EXIT_USAGE;
    }
    if (o->out != NULL && is_dir(o->out)) {
        ss_cli_error(cmd, "--out: %s is a directory; give a file name such as %s/report.png",
                     o->out, o->out);
        return SS_EXIT_USAGE;
    }
    return 0;
}

static void print_lines(const ss_report_line_t *l, int n)
{
    for (int i = 0; i < n; i++) {
        printf("%-17s %s\n", l[i].key, l[i].value);
    }
}

static int run_report(const char *cmd, const report_opts_t *o)
{
    char dir[4096], metrics[4200], config[4200], out[4200];
    snprintf(dir, sizeof(dir), "%s", o->dir);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) {
        dir[n - 1] = '\0'; // "run/" names files run/metrics.jsonl, not run//metrics.jsonl
    }
    snprintf(metrics, sizeof(metrics), "%s/metrics.jsonl", dir);
    snprintf(config, sizeof(config), "%s/config.ini", dir);
    snprintf(out, sizeof(out), "%s/report.png", dir);
    const char *mpath = o->metrics ? o->metrics : metrics, *opath = o->out ? o->out : out;
    ss_report_t r;
    ss_report_summary_t s;
    ss_error_t err;
    ss_error_clear(&err);
    ss_report_init(&r);
    ss_report_plot_opts_t po = {0, 0, o->loss_scale, dir};
    int rc = SS_EXIT_OK;
    if (ss_report_load(&r, mpath, &err) != SS_OK ||
        ss_report_load_config(&r, config, &err) != SS_OK ||
        ss_report_summarize(&r, &s, &err) != SS_OK ||
        ss_report_plot_png(&r, &s, &po, opath, &err) != SS_OK) {
        rc = ss_cli_fail(cmd, &err);
    }
    if (rc == SS_EXIT_OK) {
        ss_report_line_t lines[SS_REPORT_MAX_LINES];
        printf("%-17s %s\n", "run", dir);
        print_lines(lines, ss_report_summary_lines(&r, &s, lines, SS_REPORT_MAX_LINES));
        print_lines(r.config, r.nconfig);
        printf("%-17s %s\n", "report", opath);
    }
    ss_report_fini(&r);
    return rc;
}

int ss_cli_cmd_report(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    (void)ctx;
    report_opts_t o = {NULL, NULL, NULL, "auto", SS_REPORT_SCALE_AUTO};
    int rc = parse(cmd, argc, argv, &o);
    return rc < 0 ? SS_EXIT_OK : rc != 0 ? rc : run_report(cmd, &o);
}
