// model_opts.h: the model hyper-parameter options shared by `weights init` and `bench step`,
// spelled as the weights-file attributes (docs/models.md) with dashes.
#ifndef SS_CLI_MODEL_OPTS_H
#define SS_CLI_MODEL_OPTS_H

#include "shardseg/model.h"

#include "opts.h"

#define SS_MODEL_NOPTS 15

typedef struct {
    const char *model, *norm;
    int64_t img[3], patch[3];
    int64_t in_channels, out_channels, feature, hidden, mlp, heads, layers, qkv_bias;
    int64_t depth, base, convs;
} ss_cli_model_opts_t;

// Fills opts[0..SS_MODEL_NOPTS) with entries writing into o (defaults set here).
void ss_cli_model_opts(ss_cli_model_opts_t *o, ss_cli_opt_t *opts);
// Turns the parsed values into a validated configuration; 0 or the exit code after printing.
int ss_cli_model_config(const ss_cli_model_opts_t *o, ss_model_config_t *c, const char *cmd);

// The configuration from a weights file's attributes when weights is not NULL, else from the
// options. 0 or the exit code after printing.
int ss_cli_model_source(const ss_cli_model_opts_t *o,
                        const char *weights,
                        ss_model_config_t *c,
                        const char *cmd);
// Loads a weights file into a model built from its configuration.
ss_status_t ss_cli_load_weights(const char *path, ss_model_t *m, ss_error_t *err);

#endif
