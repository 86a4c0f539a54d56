// shardseg synth: placeholder until the command lands.
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "shardseg/shardseg.h"

int ss_cli_cmd_synth(ss_cli_ctx_t *ctx, const char *cmd, int argc, char **argv)
{
    (void)ctx;
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        puts("usage: shardseg synth ... (not built yet)");
        return SS_EXIT_OK;
    }
    ss_cli_error(cmd, "not built yet in shardseg %s; see README for what works today", ss_version());
    return SS_EXIT_USAGE;
}
