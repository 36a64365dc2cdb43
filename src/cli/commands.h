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

struct cslim_quant_params;
/* Run the quantizer and print its report; returns the exit code. */
int cli_quant_run(const struct cslim_quant_params *p);

#endif
