/* cslim: command-line entry point. Dispatches to src/cli/cmd_*.c. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/cslim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_entry k_commands[] = {
    {"inspect", "summarise a checkpoint: architecture, sizes, tensor table", cmd_inspect},
    {"tokenize", "encode text with the model's tokenizer and print the ids", cmd_tokenize},
    {"forward", "run the float32 forward pass and write logits", cmd_forward},
    {"eval", "evaluate a model (perplexity)", cmd_eval},
    {"generate", "greedy generation from a prompt", cmd_generate},
    {"quant", "quantize a model (W8A8, W8A8_DYNAMIC, W4A8_DYNAMIC, W8A16, ...), by flags or by recipe", cmd_quant},
    {"quant-vl", "quantize Qwen3-VL with the arguments of msModelSlim's Qwen3-VL script", cmd_quant_vl},
    {"quant-moe", "quantize Qwen3-MoE W8A8 with the arguments of msModelSlim's Qwen3-MoE script", cmd_quant_moe},
    {"compress", "compress a W8A8S checkpoint into W8A8SC (tensor-parallel split, open codec)", cmd_compress},
    {"decompress", "restore the W8A8S checkpoint of a W8A8SC directory", cmd_decompress},
    {"convert", "re-target a quantized checkpoint to an inference engine", cmd_convert},
    {"check", "validate a quantized checkpoint the way an engine reads it", cmd_check},
};
#define N_COMMANDS (int)(sizeof k_commands / sizeof k_commands[0])

static void usage(FILE *f) {
  fprintf(f,
          "usage: cslim <command> [options]\n\n"
          "Post-training quantization for Qwen3, Qwen3-MoE, Qwen3-VL and Qwen3-VL-MoE.\n\n"
          "commands:\n");
  for (int i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-11s %s\n", k_commands[i].name, k_commands[i].summary);
  fprintf(f, "\n'cslim <command> --help' describes a command's options.\n"
             "'cslim --version' prints the version.\n");
}

#if defined(__AVX2__) && (defined(__x86_64__) || defined(__i386__))
static int cpu_ok(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
  fprintf(stderr, "cslim: error: this build needs an x86-64-v3 CPU (AVX2, FMA); rebuild with "
                  "-DCSLIM_ARCH=portable\n");
  return 0;
}
#else
static int cpu_ok(void) { return 1; }
#endif

int main(int argc, char **argv) {
  if (!cpu_ok()) return CLI_EXIT_FAIL;
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *c = argv[1];
  if (strcmp(c, "-h") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "help") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(c, "--version") == 0 || strcmp(c, "version") == 0) {
    printf("cslim %s\n", cslim_version());
    return CLI_EXIT_OK;
  }
  cslim_install_signal_handlers();
  atexit(cslim_staging_abort_all);
  for (int i = 0; i < N_COMMANDS; i++)
    if (strcmp(c, k_commands[i].name) == 0) return k_commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "cslim: error: unknown command '%s'\n\n", c);
  usage(stderr);
  return CLI_EXIT_USAGE;
}
