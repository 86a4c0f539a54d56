// model_opts.c: model hyper-parameters from the command line.
#include "model_opts.h"

#include <string.h>

#include "shardseg/weights.h"

#include "cli.h"

void ss_cli_model_opts(ss_cli_model_opts_t *o, ss_cli_opt_t *opts)
{
    ss_model_config_t d;
    ss_model_config_default(&d, SS_MODEL_UNETR);
    memset(o, 0, sizeof(*o));
    o->model = "unetr";
    o->norm = "instance";
    memcpy(o->img, d.img_size, sizeof(o->img));
    memcpy(o->patch, d.patch_size, sizeof(o->patch));
    o->in_channels = d.in_channels, o->out_channels = d.out_channels;
    o->feature = d.feature_size, o->hidden = d.hidden_size, o->mlp = d.mlp_dim;
    o->heads = d.num_heads, o->layers = d.num_layers, o->qkv_bias = d.qkv_bias;
    o->depth = d.depth, o->base = d.base_filters, o->convs = d.convs_per_level;
    const ss_cli_opt_t t[SS_MODEL_NOPTS] = {
        {"model", 0, SS_OPT_STRING, &o->model, "NAME", "unetr (default) or unet3d", 1, 0},
        {"in-channels", 0, SS_OPT_INT, &o->in_channels, "N", "input channels (4)", 1, 1024},
        {"out-channels", 0, SS_OPT_INT, &o->out_channels, "N", "output channels (3)", 1, 1024},
        {"img-size", 0, SS_OPT_DIMS3, o->img, "IxJxK", "network input size (128)", 1, 4096},
        {"patch-size", 0, SS_OPT_DIMS3, o->patch, "P", "UNETR patch: 16, 8 or 4", 1, 64},
        {"feature-size", 0, SS_OPT_INT, &o->feature, "F", "UNETR decoder width (16)", 1, 4096},
        {"hidden-size", 0, SS_OPT_INT, &o->hidden, "H", "UNETR ViT width (768)", 1, 65536},
        {"mlp-dim", 0, SS_OPT_INT, &o->mlp, "M", "UNETR MLP width (3072)", 1, 262144},
        {"num-heads", 0, SS_OPT_INT, &o->heads, "N", "UNETR attention heads (12)", 1, 1024},
        {"num-layers", 0, SS_OPT_INT, &o->layers, "L", "UNETR transformer blocks (12)", 1, 1024},
        {"qkv-bias", 0, SS_OPT_INT, &o->qkv_bias, "0|1", "UNETR qkv bias (0)", 0, 1},
        {"depth", 0, SS_OPT_INT, &o->depth, "D", "U-Net levels incl. bottleneck (4)", 2, 7},
        {"base-filters", 0, SS_OPT_INT, &o->base, "F", "U-Net first-level width (16)", 1, 4096},
        {"convs-per-level", 0, SS_OPT_INT, &o->convs, "B", "U-Net convs per block (2)", 1, 4},
        {"norm", 0, SS_OPT_STRING, &o->norm, "NAME", "U-Net norm: instance or batch", 1, 0},
    };
    memcpy(opts, t, sizeof(t));
}

int ss_cli_model_config(const ss_cli_model_opts_t *o, ss_model_config_t *c, const char *cmd)
{
    ss_error_t err;
    ss_model_kind_t kind;
    if (ss_model_kind_parse(o->model, "--model", &kind, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    ss_model_config_default(c, kind);
    memcpy(c->img_size, o->img, sizeof(c->img_size));
    memcpy(c->patch_size, o->patch, sizeof(c->patch_size));
    c->in_channels = o->in_channels, c->out_channels = o->out_channels;
    c->feature_size = o->feature, c->hidden_size = o->hidden, c->mlp_dim = o->mlp;
    c->num_heads = o->heads, c->num_layers = o->layers, c->qkv_bias = (int)o->qkv_bias;
    c->depth = o->depth, c->base_filters = o->base, c->convs_per_level = o->convs;
    if (strcmp(o->norm, "instance") == 0 || strcmp(o->norm, "batch") == 0) {
        c->norm = o->norm[0] == 'b' ? SS_MODEL_NORM_BATCH : SS_MODEL_NORM_INSTANCE;
    } else {
        ss_cli_error(cmd, "--norm: '%s' is not a norm; use instance or batch", o->norm);
        return SS_EXIT_USAGE;
    }
    if (ss_model_config_validate(c, &err) != SS_OK) {
        return ss_cli_fail(cmd, &err);
    }
    return SS_EXIT_OK;
}

int ss_cli_model_source(const ss_cli_model_opts_t *o, const char *weights, ss_model_config_t *c,
                        const char *cmd)
{
    if (weights != NULL) {
        ss_error_t err;
        if (ss_weights_read_config(weights, c, &err) != SS_OK) {
            return ss_cli_fail(cmd, &err);
        }
        return SS_EXIT_OK;
    }
    return ss_cli_model_config(o, c, cmd);
}

ss_status_t ss_cli_load_weights(const char *path, ss_model_t *m, ss_error_t *err)
{
    return ss_weights_load(path, m, err);
}
