/* cslim quant-vl, cslim quant-moe: msModelSlim's example scripts
 * (example/multimodal_vlm/Qwen3-VL/quant_qwen3vl.py, example/Qwen3-MOE/
 * quant_qwen_moe_w8a8.py; spec §2.4, §2.5) as subcommands taking the same
 * arguments, so their documented command lines work with `cslim` in front. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/backend.h"
#include "cslim/cslim.h"
#include "cslim/quant.h"
#include "cslim/recipe.h"

#include <stdlib.h>
#include <string.h>

/* a default set's short name, or the path given */
static int resolve(const char *name, char **out) {
  if (cslim_calib_resolve(name, out)) return cli_fail();
  return CLI_EXIT_OK;
}

int cmd_quant_vl(int argc, char **argv) {
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  const char *images = "calibImages", *device = "cpu", *anti_method = "m2", *torch_dtype = "bf16";
  int w_bit = 8, a_bit = 8, act_method = 2, open_outlier = 1, is_dynamic = 0, is_lowbit = 0, co_sparse = 0,
      use_sigma = 0, trust = 0;
  double fraction = 0.01, sigma_factor = 3.0;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &p.model_path, "DIR", "float Qwen3-VL model", 1, 0},
      {"calib_images", CLI_STR, &images, "DIR", "image folder (default: the shipped calibImages)", 0, 0},
      {"save_directory", CLI_STR, &p.save_path, "DIR", "output directory (written atomically)", 1, 0},
      {"part_file_size", CLI_DOUBLE, &p.part_file_size, "GB", "shard the weights at this size", 0, 0},
      {"w_bit", CLI_INT, &w_bit, "N", "weight bits: 8 (default) or 4", 0, 0},
      {"a_bit", CLI_INT, &a_bit, "N", "activation bits: 8 (default) or 16 (weight only)", 0, 0},
      {"device_type", CLI_STR, &device, "DEV", "cpu (default), cuda, cuda:N or cuda:N,M,...", 0, 0},
      {"anti_method", CLI_STR, &anti_method, "M", "outlier suppression: m2 (default), m1, m4, m6", 0, 0},
      {"act_method", CLI_INT, &act_method, "1|2|3", "activation ranges: 2 histogram (default), 1 min-max, 3 auto", 0, 0},
      {"open_outlier", CLI_BOOL, &open_outlier, NULL, "low-bit: separate weight outliers (default True)", 0, 0},
      {"is_dynamic", CLI_BOOL, &is_dynamic, NULL, "per-token activations (W8A8_DYNAMIC / W4A8_DYNAMIC)", 0, 0},
      {"is_lowbit", CLI_BOOL, &is_lowbit, NULL, "with --w_bit 4 --a_bit 8: W8A8S low-bit sparse weights", 0, 0},
      {"co_sparse", CLI_BOOL, &co_sparse, NULL, "W8A8S by the legacy backend (no scale search; off with --is_lowbit)",
       0, 0},
      {"fraction", CLI_DOUBLE, &fraction, "F", "sparse: share of weights kept as outliers, 0.01 .. 0.1", 0, 0},
      {"use_sigma", CLI_BOOL, &use_sigma, NULL, "sparse: outliers beyond mean +- sigma_factor * std", 0, 0},
      {"sigma_factor", CLI_DOUBLE, &sigma_factor, "F", "sparse: 1.0 .. 4.0 (default 3.0)", 0, 0},
      {"torch_dtype", CLI_STR, &torch_dtype, "T", "dtype of the float tensors written: bf16 (default) or fp16", 0, 0},
      {"trust_remote_code", CLI_BOOL, &trust, NULL, "accepted for compatibility; no model code is ever run", 0, 0},
      {"calib_samples", CLI_INT, &p.calib_samples, "N", "images used (default: all)", 0, 0},
      {"holdout", CLI_INT, &p.holdout, "N", "images kept back for the final check (default 0: there are few)", 0, 0},
      {"overwrite", CLI_BOOL, &p.overwrite, NULL, "replace a non-empty save_directory", 0, 0},
      CLI_END,
  };
  cli_command cmd = {
      "quant-vl", "Quantize a Qwen3-VL model the way msModelSlim's Qwen3-VL example script does.",
      "cslim quant-vl --model_path M --calib_images DIR --save_directory OUT [--w_bit 8 --a_bit 8] [options]",
      "The arguments of example/multimodal_vlm/Qwen3-VL/quant_qwen3vl.py. Each image of\n"
      "--calib_images is paired with \"Please describe this picture in detail.\" in the chat\n"
      "template; outliers are suppressed with --anti_method (m2 by default) in the text decoder;\n"
      "the text q/k/v/o/gate/up are quantized and everything else stays float: the whole vision\n"
      "tower and mergers, every text down_proj, lm_head. Activation ranges by histogram\n"
      "(--act_method 2). The output is named as the script names it:\n"
      "quant_model_weight_<type>.safetensors and quant_model_description.json.\n\n"
      "--w_bit 4 --a_bit 8 --is_lowbit True [--fraction F | --use_sigma True --sigma_factor S]\n"
      "gives W8A8S (docs/sparse.md), the input of 'cslim compress' (W8A8SC)."};
  p.holdout = 0;
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  (void)trust;
  if (!strcmp(device, "npu")) return cli_usage_error(&cmd, "--device_type npu: cslim runs on cpu or cuda[:N]");
  if (cslim_device_select(device)) return cli_fail();
  if (cli_scheme_from_bits(&cmd, w_bit, a_bit, is_dynamic, is_lowbit, co_sparse, &p.quant_type)) return CLI_EXIT_USAGE;
  p.sparse.fraction = fraction;
  p.sparse.use_sigma = use_sigma;
  p.sparse.sigma_factor = sigma_factor;
  p.sparse.open_outlier = open_outlier;
  p.sparse.co_sparse = co_sparse && !is_lowbit; /* is_lowbit disables the legacy backend */
  if (cli_check_sparse(&cmd, &p)) return CLI_EXIT_USAGE;
  if (act_method < 1 || act_method > 3) return cli_usage_error(&cmd, "--act_method must be 1, 2 or 3");
  p.act_method = act_method;
  if (cslim_anti_method_parse(anti_method, &p.anti_method) != 0)
    return cli_usage_error(&cmd, "--anti_method: '%s' is not m1, m2, m4 or m6", anti_method);
  if (!strcmp(torch_dtype, "fp16") || !strcmp(torch_dtype, "float16")) p.save_dtype = CSLIM_F16, p.save_dtype_set = 1;
  else if (!strcmp(torch_dtype, "bf16") || !strcmp(torch_dtype, "bfloat16")) p.save_dtype = CSLIM_BF16, p.save_dtype_set = 1;
  else return cli_usage_error(&cmd, "--torch_dtype: '%s' is not bf16 or fp16", torch_dtype);
  static const char *keep_float[] = {"model.language_model.layers.*.mlp.down_proj"};
  p.exclude = keep_float;
  p.n_exclude = 1;
  p.quantize_vision = 0;
  p.legacy_names = 1;
  p.calib_default_text = "Please describe this picture in detail.";
  char *calib = NULL;
  if (resolve(images, &calib)) return CLI_EXIT_FAIL;
  p.calib_data = calib;
  int ret = cli_quant_run(&p);
  free(calib);
  return ret;
}

int cmd_quant_moe(int argc, char **argv) {
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  const char *anti_ds = "qwen3-moe_anti_prompt_50.json", *calib_ds = "qwen3-moe_calib_prompt_50.json";
  int layer_count = 0, batch_size = 4, trust = 0;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &p.model_path, "DIR", "float Qwen3-MoE model", 1, 0},
      {"save_path", CLI_STR, &p.save_path, "DIR", "output directory (written atomically)", 1, 0},
      {"layer_count", CLI_INT, &layer_count, "N", "debug runs on the first N layers (0 = all; only 0 is supported)", 0, 0},
      {"anti_dataset", CLI_STR, &anti_ds, "F", "anti-outlier prompts (default: the shipped qwen3-moe_anti_prompt_50.json)",
       0, 0},
      {"calib_dataset", CLI_STR, &calib_ds, "F",
       "calibration prompts (default: the shipped qwen3-moe_calib_prompt_50.json)", 0, 0},
      {"batch_size", CLI_INT, &batch_size, "N", "1 .. 16 (default 4); samples run one by one here, same result", 0, 0},
      {"mindie_format", CLI_BOOL, &p.mindie_format, NULL,
       "MindIE's legacy layout: quant_model_description_<type>.json, config.json 'quantize'", 0, 0},
      {"trust_remote_code", CLI_BOOL, &trust, NULL, "accepted for compatibility; no model code is ever run", 0, 0},
      {"rot", CLI_BOOL, &p.rot, NULL, "QuaRot: fuse the norms and rotate by a random Hadamard matrix first", 0, 0},
      {"calib_samples", CLI_INT, &p.calib_samples, "N", "calibration prompts used (default: all)", 0, 0},
      {"holdout", CLI_INT, &p.holdout, "N", "prompts kept back for the final check (default 4)", 0, 0},
      {"overwrite", CLI_BOOL, &p.overwrite, NULL, "replace a non-empty save_path", 0, 0},
      CLI_END,
  };
  cli_command cmd = {
      "quant-moe", "Quantize a Qwen3-MoE model W8A8 the way msModelSlim's Qwen3-MoE script does.",
      "cslim quant-moe --model_path M --save_path OUT [--rot] [--mindie_format] [options]",
      "The arguments of example/Qwen3-MOE/quant_qwen_moe_w8a8.py. Optional QuaRot (--rot),\n"
      "then iterative smoothing (m4) of input_layernorm -> q/k/v and v -> o on the anti-outlier\n"
      "prompts (experts are not smoothed), then W8A8 mixed: attention W8A8 with static\n"
      "activation ranges (min-max), experts W8A8_DYNAMIC; routers and lm_head stay float.\n"
      "Written as quant_model_weight_<type>*.safetensors in shards of 4 GB."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  (void)trust;
  if (layer_count < 0) return cli_usage_error(&cmd, "--layer_count must not be negative");
  if (layer_count > 0)
    return cli_usage_error(&cmd, "--layer_count %d: debug runs on part of the model are not supported; quantize the "
                           "whole model (--layer_count 0)", layer_count);
  if (batch_size < 1 || batch_size > 16) return cli_usage_error(&cmd, "--batch_size %d is not in 1 .. 16", batch_size);
  static const cslim_mix_rule mix[] = {{"*.mlp.*", CSLIM_QT_W8A8_DYNAMIC, NULL, 0, 0, CSLIM_WM_MINMAX},
                                       {"*", CSLIM_QT_W8A8, NULL, 0, 0, CSLIM_WM_MINMAX}};
  p.mix = mix;
  p.n_mix = 2;
  p.anti_method = CSLIM_ANTI_M4;
  p.act_method = 1;
  p.legacy_names = 1;
  p.part_file_size = 4;
  char *anti = NULL, *calib = NULL;
  int ret = resolve(anti_ds, &anti);
  if (!ret) ret = resolve(calib_ds, &calib);
  if (!ret) {
    p.anti_data = anti;
    p.calib_data = calib;
    ret = cli_quant_run(&p);
  }
  free(anti);
  free(calib);
  return ret;
}
