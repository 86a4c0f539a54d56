// opts.h: table-driven command-line parsing for the CLI (argv -> typed fields).
//
// Each command describes its options in a table; ss_cli_parse fills the typed destinations and
// collects positional arguments. Errors name the option and say what a valid value looks like;
// the caller prints them as `shardseg <cmd>: <message>` and exits with 2.
#ifndef SS_CLI_OPTS_H
#define SS_CLI_OPTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SS_OPT_FLAG,   // int, set to 1; takes no value
    SS_OPT_INT,    // int64_t within [min, max]
    SS_OPT_DOUBLE, // double within [min, max]
    SS_OPT_STRING, // const char *, borrowed from argv
    SS_OPT_BYTES,  // size_t, "12G", "512M", ...
    SS_OPT_DIMS3,  // int64_t[3], "128x128x128" or "128" (cube), each within [min, max]
} ss_opt_type_t;

typedef struct {
    const char *name; // long name without the dashes: "steps"
    char short_name;  // 0 for none
    ss_opt_type_t type;
    void *dst;
    const char *metavar; // shown in help: "N", "FILE"
    const char *help;
    double min, max; // for INT, DOUBLE and DIMS3; ignored when min > max
} ss_cli_opt_t;

typedef enum {
    SS_CLI_PARSED = 0, // options filled in
    SS_CLI_HELP = 1,   // --help / -h seen: print help, exit 0
    SS_CLI_ERROR = 2,  // msg holds the one-line error
} ss_cli_result_t;

// Parses argv[0..argc) (argv[0] is the first argument, not the program name). Options may come
// as "--name value", "--name=value" or "-s value"; "--" ends option parsing. Positional arguments
// are stored in pos (borrowed from argv), at most max_pos of them.
ss_cli_result_t ss_cli_parse(int argc,
                             char **argv,
                             const ss_cli_opt_t *opts,
                             int nopts,
                             const char **pos,
                             int max_pos,
                             int *npos,
                             char *msg,
                             size_t msg_len);

// Writes the option table as aligned help lines to f (a FILE *).
void ss_cli_print_options(void *f, const ss_cli_opt_t *opts, int nopts);

// Parses "AxBxC" or "A" into three integers within [min, max]. 0 on success.
int ss_cli_parse_dims3(const char *s, int64_t out[3], double min, double max);

#endif
