/* The cslim subcommands. Each is a short file in src/cli that parses its
 * flags into a params struct and calls the public API. */
#ifndef CSLIM_CLI_COMMANDS_H
#define CSLIM_CLI_COMMANDS_H

typedef struct cli_entry {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} cli_entry;

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_quant(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_quant_vl(int argc, char **argv);
int cmd_quant_moe(int argc, char **argv);
int cmd_compress(int argc, char **argv);
int cmd_decompress(int argc, char **argv);

#include "cli/args.h"
#include "cslim/quant.h"

/* Run the quantizer and print its report; returns the exit code. */
int cli_quant_run(const cslim_quant_params *p);
/* msModelSlim's QuantConfig flags → scheme (spec §2.1); a usage error (returned) when none fits. */
int cli_scheme_from_bits(const cli_command *cmd, int w_bit, int a_bit, int is_dynamic, int is_lowbit, int co_sparse,
                         cslim_qtype *t);
/* --target T → *t; a usage error (returned) for an unknown name. */
#include "cslim/deploy.h"
int cli_parse_target(const cli_command *cmd, const char *s, cslim_target *t);
/* --fraction / --sigma_factor in range; a usage error (returned) otherwise. */
int cli_check_sparse(const cli_command *cmd, const cslim_quant_params *p);

#endif
