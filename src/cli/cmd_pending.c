/* Subcommands whose issues have not landed yet: they parse and document
 * --help, then say so plainly. */
#include "cli/args.h"
#include "cli/commands.h"

#include <stdio.h>

static int pending(const char *name, const char *usage, const char *summary, int argc,
                   char **argv) {
  cli_command cmd = {name, summary, usage,
                     "This command is not implemented yet in this build of cslim."};
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-' && (argv[i][1] == 'h' || (argv[i][1] == '-' && argv[i][2] == 'h'))) {
      cli_print_help(stdout, &cmd, NULL);
      return CLI_EXIT_OK;
    }
  }
  fprintf(stderr, "cslim %s: error: not implemented yet\n", name);
  return CLI_EXIT_FAIL;
}

#define PENDING(fn, name, usage, summary)                                                  \
  int fn(int argc, char **argv) { return pending(name, usage, summary, argc, argv); }

PENDING(cmd_convert, "convert", "cslim convert --model_path Q --save_path OUT --target T",
        "Re-target a quantized checkpoint to an inference engine.")
PENDING(cmd_check, "check", "cslim check --model_path Q [--target T] [--source FLOAT_DIR]",
        "Validate a quantized checkpoint the way an engine reads it.")
