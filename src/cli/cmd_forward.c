// shardseg forward: logits of a network for the tensor /image [N][C][I][J][K] of an HDF5 file,
// written as /logits [N][out][I][J][K]. Under mpirun the batch is split over the ranks (each
// runs its samples; a sum-reduction assembles the logits on rank 0, which writes the file).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/shardseg.h"
#include "shardseg/tensor_io.h"
#include "shardseg/weights.h"

#include "cli.h"
#include "opts.h"

static const char g_usage[] =
    "usage: shardseg forward --weights W.h5 --input X.h5 --output Y.h5\n"
    "X holds /image float [N][C][I][J][K] with (I, J, K) = the network's img_size; Y gets /logits\n"
    "[N][out_channels][I][J][K]. Under mpirun the N samples are split over the ranks.\n";

static ss_status_t check_input(const ss_tensor_t *x, const ss_model_config_t *c, const char *path, ss_error_t *err)
{
    if (x->ndim != 5 || x->shape[1] != c->in_channels || x->shape[2] != c->img_size[0] ||
        x->shape[3] != c->img_size[1] || x->shape[4] != c->img_size[2]) {
        char s[96];
        ss_tensor_shape_str(x, s, sizeof(s));
        SS_FAIL(err, SS_ESHAPE, "%s: /image has shape %s but the network takes (N, %lld, %lld, %lld, "
                "%lld); use shardseg infer for whole volumes of other sizes", path, s,
                (long long)c->in_channels, (long long)c->img_size[0], (long long)c->img_size[1],
                (long long)c->img_size[2]);
    }
    return SS_OK;
}

// Forward of samples [n0, n0 + nn) into the matching rows of y (zero elsewhere).
static ss_status_t run_part(const char *weights, const ss_model_config_t *c, const ss_tensor_t *x, ss_tensor_t *y, int64_t n0, int64_t nn, int nthreads, ss_error_t *err)
{
    ss_model_t *m = NULL;
    ss_model_plan_t p = {nn, 0, c->img_size[0], 0, nthreads, NULL};
    SS_TRY(ss_model_create(&m, c, &p, NULL, err));
    ss_status_t st = ss_weights_load(weights, m, err);
    ss_tensor_t xs, ys, out;
    if (st == SS_OK) {
        st = ss_tensor_view_slab(&xs, x, 0, n0, nn, err);
    }
    if (st == SS_OK) {
        st = ss_model_forward(m, &out, &xs, NULL, err);
    }
    if (st == SS_OK) {
        st = ss_tensor_view_slab(&ys, y, 0, n0, nn, err);
    }
    if (st == SS_OK) {
        memcpy(ys.data, out.data, ss_tensor_nbytes(&out));
    }
    ss_model_destroy(&m);
    return st;
}

static ss_status_t forward(ss_cli_ctx_t *ctx, const char *weights, const char *in, const char *outp, ss_error_t *err)
{
    ss_model_config_t c;
    ss_tensor_t x, y;
    SS_TRY(ss_weights_read_config(weights, &c, err));
    SS_TRY(ss_tensor_file_read(in, "image", &x, err));
    ss_status_t st = check_input(&x, &c, in, err);
    int64_t ys[5] = {x.shape[0], c.out_channels, x.shape[2], x.shape[3], x.shape[4]};
    y.data = NULL;
    if (st == SS_OK) {
        st = ss_tensor_init(&y, SS_F32, 5, ys, NULL, err);
    }
    if (st == SS_OK && (y.data = calloc((size_t)ss_tensor_numel(&y), sizeof(float))) == NULL) {
        st = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__, "forward: out of memory");
    }
    int64_t n0, nn;
    ss_split_range(x.shape[0], ctx->nranks, ctx->rank, &n0, &nn);
    if (st == SS_OK && nn > 0) {
        st = run_part(weights, &c, &x, &y, n0, nn, ctx->nthreads, err);
    }
    if (st == SS_OK && ctx->nranks > 1) {
        st = ss_comm_allreduce_sum_f32(ctx->world, y.data, (size_t)ss_tensor_numel(&y), err);
    }
    if (st == SS_OK && ctx->rank == 0) {
        st = ss_tensor_file_write(outp, "logits", &y, err);
    }
    free(x.data);
    free(y.data);
    return st;
}

int ss_cli_cmd_forward(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    const char *weights = NULL, *in = NULL, *out = NULL;
    const ss_cli_opt_t opts[] = {
        {"weights", 'w', SS_OPT_STRING, &weights, "W.h5", "weights file", 1, 0},
        {"input", 'i', SS_OPT_STRING, &in, "X.h5", "HDF5 file with /image", 1, 0},
        {"output", 'o', SS_OPT_STRING, &out, "Y.h5", "HDF5 file to write /logits to", 1, 0},
    };
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    int npos;
    char msg[256];
    ss_cli_result_t r = ss_cli_parse(argc, argv, opts, nopts, NULL, 0, &npos, msg, sizeof(msg));
    if (r == SS_CLI_HELP) {
        fputs(g_usage, stdout);
        ss_cli_print_options(stdout, opts, nopts);
        return SS_EXIT_OK;
    }
    if (r == SS_CLI_ERROR || weights == NULL || in == NULL || out == NULL) {
        ss_cli_error(cmd, "%s", r == SS_CLI_ERROR ? msg : "give --weights, --input and --output");
        return SS_EXIT_USAGE;
    }
    int rc = ss_cli_start(ctx, cmd);
    if (rc != 0) {
        return rc;
    }
    ss_error_t err;
    ss_error_clear(&err);
    if (forward(ctx, weights, in, out, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    return SS_EXIT_OK;
}
