/* Table-driven flag parsing for the cslim subcommands.
 *
 * Flags are written --name VALUE or --name=VALUE; dashes and underscores in a
 * name are interchangeable (--model_path == --model-path), as msModelSlim's
 * users type underscores. Boolean flags take an optional True/False value
 * (--trust_remote_code True). Every subcommand also accepts the common flags
 * --threads, --quiet, --log_level and --help. */
#ifndef CSLIM_CLI_ARGS_H
#define CSLIM_CLI_ARGS_H

#include <stdio.h>

typedef enum cli_kind {
  CLI_STR,    /* const char ** */
  CLI_INT,    /* int * */
  CLI_DOUBLE, /* double * */
  CLI_BOOL,   /* int *: --x, --x True, --x=false */
  CLI_LIST    /* cli_list *: the values up to the next flag (--tag a b c) */
} cli_kind;

typedef struct cli_list {
  const char **v;
  int n;
} cli_list;

typedef struct cli_opt {
  const char *name; /* without the leading dashes, underscore spelling */
  cli_kind kind;
  void *dest;
  const char *metavar;
  const char *help;
  int required;
  int seen; /* set by the parser */
} cli_opt;

typedef struct cli_command {
  const char *name;
  const char *summary;     /* one line */
  const char *usage;       /* e.g. "cslim inspect --model_path DIR [--json]" */
  const char *description; /* paragraphs printed under --help; may be NULL */
} cli_command;

/* Exit codes of the CLI. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Parse argv[1..argc-1] (argv[0] is the subcommand name). Applies the common
 * flags. Returns -1 when --help was printed, CLI_EXIT_USAGE on a bad command
 * line (message printed), 0 otherwise. `positional`, when not NULL, receives
 * the non-flag words (at most *npos of them). */
int cli_parse(const cli_command *cmd, cli_opt *opts, int argc, char **argv,
              const char **positional, int *npos);
void cli_print_help(FILE *f, const cli_command *cmd, const cli_opt *opts);
/* Print "cslim: error: <library message>" and return CLI_EXIT_FAIL. */
int cli_fail(void);
/* Print a usage error about a subcommand and return CLI_EXIT_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parse a boolean word: True/False/true/false/1/0/yes/no/on/off. */
int cli_parse_bool(const char *s, int *out);

#define CLI_END {NULL, CLI_STR, NULL, NULL, NULL, 0, 0}

#endif
