/* cslim convert / check: deployment targets (cslim/deploy.h, docs/deploy.md). */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/cslim.h"
#include "cslim/deploy.h"
#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_target(const cli_command *cmd, const char *s, cslim_target *t) {
  if (cslim_target_parse(s, t) != 0)
    return cli_usage_error(cmd, "--target '%s': vllm-ascend, vllm-mindspore or mindie", s);
  return 0;
}

int cmd_convert(int argc, char **argv) {
  cslim_convert_params p = {0};
  const char *target = NULL;
  p.soc = 910;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &p.model_path, "DIR", "a quantized checkpoint (cslim's or msModelSlim's)", 1, 0},
      {"save_path", CLI_STR, &p.save_path, "DIR", "output directory (atomic; the input is never modified)", 1, 0},
      {"target", CLI_STR, &target, "T", "vllm-ascend, vllm-mindspore or mindie", 1, 0},
      {"soc", CLI_INT, &p.soc, "310|910", "vllm-mindspore: the Ascend SoC (default 910)", 0, 0},
      {"source", CLI_STR, &p.source, "DIR", "the original float model: its non-weight files the checkpoint lacks "
       "(tokenizer, chat template, generation / preprocessor configs) are copied", 0, 0},
      {"overwrite", CLI_BOOL, &p.overwrite, NULL, "replace a non-empty save_path", 0, 0},
      CLI_END,
  };
  cli_command cmd = {
      "convert", "Re-target a quantized checkpoint to an inference engine, without re-calibrating.",
      "cslim convert --model_path Q --save_path OUT --target vllm-ascend|vllm-mindspore|mindie [--soc 310|910]",
      "vllm-mindspore (serve with --quantization golden-stick): weights named\n"
      "quant_model_weight_<type>.safetensors, the description quant_model_description.json,\n"
      "model.safetensors.index.json mapping every tensor, input_scale / input_offset expanded\n"
      "to per-input-channel vectors (scale float16; offset float16 on 310, bfloat16 on 910),\n"
      "deq_scale as float32 (from the int64 bit pattern), Linear biases labelled like their\n"
      "Linear and taken out of quant_bias; FLOAT, W8A8 and W8A8S only, no quantized experts.\n"
      "vllm-ascend: msModelSlim's v1 layout (quant_model_weights.safetensors, [1] float32 input\n"
      "parameters, deq_scale float32 for bfloat16 models and int64 for float16 ones, biases FLOAT\n"
      "and folded into quant_bias). mindie: the legacy layout (quant_model_weight_<type>,\n"
      "quant_model_description_<type>.json, config.json 'quantize'). docs/deploy.md explains\n"
      "each step. Run 'cslim check --target T' on the result."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  if (cli_parse_target(&cmd, target, &p.target)) return CLI_EXIT_USAGE;
  if (p.soc != 310 && p.soc != 910) return cli_usage_error(&cmd, "--soc %d: 310 or 910", p.soc);
  cslim_convert_report rep;
  if (cslim_convert(&p, &rep)) return cli_fail();
  printf("converted %s -> %s for %s%s: %d tensors, %d quantized Linears", p.model_path, rep.out_dir,
         cslim_target_name(p.target), p.target == CSLIM_TARGET_VLLM_MINDSPORE ? (p.soc == 310 ? " (310)" : " (910)") : "",
         rep.n_tensors, rep.n_linears);
  if (rep.n_expanded) printf(", %d input parameters expanded per channel", rep.n_expanded);
  if (rep.n_deq_converted) printf(", %d deq_scale converted", rep.n_deq_converted);
  if (rep.n_bias_moved) printf(", %d biases moved between quant_bias and the matmul", rep.n_bias_moved);
  printf(" (%.2f s)\n", rep.seconds);
  if (p.target == CSLIM_TARGET_VLLM_MINDSPORE) printf("  serve with: --quantization golden-stick\n");
  return CLI_EXIT_OK;
}

int cmd_check(int argc, char **argv) {
  cslim_check_params p = {0};
  const char *target = NULL;
  int json = 0;
  p.soc = 910;
  p.prompts = 4;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &p.model_path, "DIR", "the quantized checkpoint (cslim's or msModelSlim's)", 1, 0},
      {"target", CLI_STR, &target, "T", "vllm-ascend, vllm-mindspore or mindie (default: the rules every engine "
       "shares)", 0, 0},
      {"soc", CLI_INT, &p.soc, "310|910", "vllm-mindspore: the Ascend SoC (default 910)", 0, 0},
      {"source", CLI_STR, &p.source, "DIR", "the float model: per-Linear weight error and an end-to-end check on a "
       "few prompts", 0, 0},
      {"prompts", CLI_INT, &p.prompts, "N", "prompts of the end-to-end check (1 .. 6, default 4)", 0, 0},
      {"json", CLI_BOOL, &json, NULL, "print the report as JSON", 0, 0},
      CLI_END,
  };
  cli_command cmd = {
      "check", "Validate a quantized checkpoint the way an engine reads it.",
      "cslim check --model_path Q [--target T] [--source FLOAT_DIR] [--json]",
      "Files (the description by name, config.json without quantization_config, the index\n"
      "against the shards), description <-> tensors, a key for every module the engine builds\n"
      "(vision blocks, mergers, router, experts, lm_head), fused q/k/v and gate/up with one\n"
      "label and identical input_scale / input_offset, the tensor set, dtypes and shapes of\n"
      "each scheme for the target (no [] scalars, deq_scale's dtype by served dtype, zero\n"
      "weight offsets), integer ranges, the quant_bias / deq_scale / scale_bias definitions,\n"
      "finite and positive scales, bias labels per target. --source adds the per-Linear weight\n"
      "error and an end-to-end logits comparison (a checkpoint that loads but answers garbage).\n"
      "One line per problem; exit status 1 when there is an error, 0 otherwise (warnings too)."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  if (target && cli_parse_target(&cmd, target, &p.target)) return CLI_EXIT_USAGE;
  if (p.soc != 310 && p.soc != 910) return cli_usage_error(&cmd, "--soc %d: 310 or 910", p.soc);
  if (p.prompts < 1 || p.prompts > 6) return cli_usage_error(&cmd, "--prompts %d is not in 1 .. 6", p.prompts);
  cslim_check_report rep;
  if (cslim_check(&p, &rep)) return cli_fail();
  if (json) {
    cJSON *j = cJSON_CreateObject(), *items = NULL;
    cJSON_AddStringToObject(j, "model_path", p.model_path);
    cJSON_AddStringToObject(j, "target", cslim_target_name(p.target));
    cJSON_AddBoolToObject(j, "ok", rep.n_errors == 0);
    cJSON_AddNumberToObject(j, "errors", rep.n_errors);
    cJSON_AddNumberToObject(j, "warnings", rep.n_warnings);
    cJSON_AddNumberToObject(j, "tensors", rep.n_tensors);
    cJSON_AddNumberToObject(j, "quantized_linears", rep.n_linears);
    if (rep.compared) {
      cJSON_AddNumberToObject(j, "kl", rep.kl);
      cJSON_AddNumberToObject(j, "top1", rep.top1);
      cJSON_AddNumberToObject(j, "max_weight_error", rep.max_werr);
    }
    items = cJSON_AddArrayToObject(j, "problems");
    for (int i = 0; i < rep.n; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "level", rep.items[i].error ? "error" : "warning");
      cJSON_AddStringToObject(o, "where", rep.items[i].where);
      cJSON_AddStringToObject(o, "what", rep.items[i].what);
      cJSON_AddItemToArray(items, o);
    }
    char *s = cslim_json_dump(j, 2);
    printf("%s", s ? s : "{}\n");
    free(s);
    cJSON_Delete(j);
  } else {
    for (int i = 0; i < rep.n; i++)
      printf("%s %s: %s\n", rep.items[i].error ? "error:  " : "warning:", rep.items[i].where, rep.items[i].what);
    printf("%s: %s for %s: %d tensors, %d quantized Linears; %d error%s, %d warning%s", p.model_path,
           rep.n_errors ? "FAILED" : "ok", cslim_target_name(p.target), rep.n_tensors, rep.n_linears, rep.n_errors,
           rep.n_errors == 1 ? "" : "s", rep.n_warnings, rep.n_warnings == 1 ? "" : "s");
    if (rep.compared)
      printf("; against %s: largest weight error %.2f %% (%s), KL %.5f nats, top-1 %.1f %%", p.source,
             100 * rep.max_werr, rep.max_werr_linear, rep.kl, 100 * rep.top1);
    printf("\n");
  }
  int ret = rep.n_errors ? CLI_EXIT_FAIL : CLI_EXIT_OK;
  cslim_check_report_free(&rep);
  return ret;
}
