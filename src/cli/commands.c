#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

// Help for every command, including the planned ones, so users can see where the tool is going.
// A planned command prints its help and, when run, says honestly that it is not built yet.
static const ss_cli_command_t g_commands[] = {
    {"synth", "synthesise BraTS-like cases (for the demo and tests)",
     "usage: shardseg synth --out DIR --cases N [--seed S] [--size 240x240x155] [--template DIR]\n"
     "Builds realistic BraTS-2021-layout cases from the Colin27 template of Debian's mricron-data\n"
     "(random deformation, tumour with enhancing rim, necrosis and edema, four contrasts, noise "
     "and\n"
     "bias field). Deterministic by seed.\n",
     ss_cli_cmd_synth, NULL},
    {"prep", "convert MSD Task01 / BraTS folders to one HDF5 training file",
     "usage: shardseg prep --in DIR --out data.h5 [--format msd|brats|brats2023]\n"
     "                     [--crop 240x240x152|brain] [--target regions|binary]\n"
     "                     [--val-fraction F] [--folds K] [--seed S]\n"
     "Reads NIfTI-1/2 (.nii, .nii.gz), z-scores each modality on brain voxels, writes chunked,\n"
     "compressed [C][I][J][K] volumes plus labels, affine and crop box. Cases spread over ranks.\n",
     ss_cli_cmd_prep, NULL},
    {"train", "train a UNETR or 3D U-Net (single rank, data or sequence parallel)",
     "usage: shardseg train --config run.ini [key=value ...] [--resume DIR] [--mem-limit SIZE]\n"
     "Writes the effective config, metrics.jsonl and atomic HDF5 checkpoints; SIGTERM, SIGINT and\n"
     "SIGUSR1 checkpoint before stopping, and --resume continues bit for bit.\n",
     ss_cli_cmd_train, NULL},
    {"infer", "sliding-window inference to NIfTI in the case's original geometry",
     "usage: shardseg infer --weights W.h5 --input CASE|DIR --out pred.nii.gz|OUTDIR [--overlap F]\n"
     "                      [--mode gaussian|constant] [--tta] [--labels brats|brats2023|msd]\n",
     ss_cli_cmd_infer, NULL},
    {"eval", "Dice and HD95 for WT/TC/ET against reference labels",
     "usage: shardseg eval --pred DIR --ref DIR [--csv FILE] [--json FILE] [--labels NAME]\n",
     ss_cli_cmd_eval, NULL},
    {"report", "learning curves and a summary page from a run directory",
     "usage: shardseg report RUN_DIR [--out FILE.png] [--metrics FILE] [--loss-scale SCALE]\n"
     "Draws RUN_DIR/metrics.jsonl (loss, validation Dice, learning rate) and a summary on one\n"
     "PNG page (default RUN_DIR/report.png) and prints the summary.\n",
     ss_cli_cmd_report, NULL},
    {"forward", "run a network's forward pass on an HDF5 tensor",
     "usage: shardseg forward --weights W.h5 --input X.h5 --output Y.h5\n"
     "X holds /image [N][C][I][J][K]; Y gets /logits. Works under mpirun -np P.\n",
     ss_cli_cmd_forward, NULL},
    {"weights", "export, import or initialise PyTorch/MONAI-compatible weights",
     "usage: shardseg weights init --out W.h5 [model options] [--seed S]\n"
     "       shardseg weights export CKPT.h5|RUN_DIR --out W.h5\n"
     "       shardseg weights import STATE_DICT.h5 --out W.h5\n"
     "       shardseg weights info W.h5\n",
     ss_cli_cmd_weights, NULL},
    {"tune", "hyper-parameter sweeps over rank groups (grid, random, ASHA)",
     "usage: shardseg tune --space sweep.ini --journal DIR [--groups G]\n", NULL,
     "the experiment-parallel tuning issue"},
    {"bench", "benchmarks: gemm (sgemm peak), kernels, data, step",
     "usage: shardseg bench gemm [--size N] [--repeats R]\n"
     "       shardseg bench kernels [--repeats R] [--only OP,OP]\n"
     "       shardseg bench data --data data.h5 [--patch IxJxK] [--steps N]\n"
     "       shardseg bench step [--weights W.h5 | model options] [--steps N]\n"
     "gemm: OpenBLAS sgemm GFLOP/s on N x N x N, min/median over R timed runs after a warm-up;\n"
     "the peak that kernel benchmarks report their ratios against.\n"
     "kernels: forward and backward time of every kernel on the issue's benchmark shapes, as\n"
     "GFLOP/s and fraction of the sgemm peak (compute-bound ops) or GB/s and fraction of memcpy\n"
     "bandwidth (memory-bound ops), all measured in the same run.\n"
     "data: sampler patches/s and MB read per rank for 1/1, 1/2, 1/4 of the patch, and the\n"
     "fraction of a training loop spent waiting for data with the prefetch thread.\n",
     ss_cli_cmd_bench, NULL},
    {"plan", "memory and communication plan of a run before it starts",
     "usage: shardseg plan --config run.ini [--ranks P]\n", NULL, "the sequence-parallel issue"},
};

const ss_cli_command_t *ss_cli_commands(int *n)
{
    *n = (int)(sizeof(g_commands) / sizeof(g_commands[0]));
    return g_commands;
}

void ss_cli_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cmd != NULL) {
        fprintf(stderr, "shardseg %s: %s\n", cmd, msg);
    } else {
        fprintf(stderr, "shardseg: %s\n", msg);
    }
}

int ss_cli_exit_code(ss_status_t st)
{
    switch (st) {
    case SS_OK:
        return SS_EXIT_OK;
    case SS_EINVAL:
    case SS_EFORMAT:
    case SS_ESHAPE:
    case SS_ENIFTI:
    case SS_EUNSUPPORTED:
        return SS_EXIT_USAGE;
    default:
        return SS_EXIT_RUNTIME;
    }
}

int ss_cli_fail(const char *cmd, const ss_error_t *err)
{
    char line[512];
    ss_error_format(err, 0, line, sizeof(line));
    ss_cli_error(cmd, "%s", line);
    return ss_cli_exit_code(err->code);
}
