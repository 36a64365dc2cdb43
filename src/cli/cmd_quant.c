/* cslim quant: quantize a model into the Ascend checkpoint format. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/cslim.h"
#include "cslim/quant.h"
#include "cslim/backend.h"
#include "cslim/deploy.h"
#include "cslim/recipe.h"
#include "cslim/staging.h"
#include "io/json_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mix_cfg: a JSON object {"pattern": "w8a8_dynamic", ...}, in order. */
static cslim_status load_mix(const char *path, cslim_mix_rule **out, int *n, cJSON **keep) {
  cJSON *root = NULL;
  cslim_status rc = cslim_json_load_file(path, &root);
  if (rc) return rc;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return cslim_error(CSLIM_ERR_FORMAT, "%s: mix_cfg must be a JSON object {\"pattern\": \"type\"}", path);
  }
  int cnt = cJSON_GetArraySize(root), i = 0;
  cslim_mix_rule *r = calloc((size_t)cnt + 1, sizeof *r);
  for (const cJSON *e = root->child; e; e = e->next, i++) {
    if (!cJSON_IsString(e) || cslim_scheme_parse(e->valuestring, &r[i].type) != 0) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: mix_cfg entry '%s': type must be one of %s", path, e->string,
                       cslim_scheme_names());
      break;
    }
    r[i].pattern = e->string;
  }
  if (rc) {
    free(r);
    cJSON_Delete(root);
    return rc;
  }
  *out = r;
  *n = cnt;
  *keep = root;
  return CSLIM_OK;
}

static const char *kind_names[5] = {"qkv", "o", "gate/up", "down", "router"};

static void print_report(const cslim_quant_params *p, const cslim_quant_report *r) {
  printf("quantized %s -> %s (model_quant_type %s)\n", p->model_path, r->out_dir,
         cslim_scheme_get(r->model_quant_type)->label);
  printf("  linears:");
  for (int t = 0; t < CSLIM_QT_COUNT; t++)
    if (r->n_linear[t]) printf(" %d %s", r->n_linear[t], cslim_scheme_get((cslim_qtype)t)->label);
  printf("\n  calibration: %d samples, %d tokens\n", r->calib_samples, r->calib_tokens);
  if (p->anti_method || p->rot)
    printf("  transforms: %s%s%s (%.2f s)\n", p->rot ? "QuaRot" : "", p->rot && p->anti_method ? " + " : "",
           p->anti_method ? cslim_anti_method_name(p->anti_method) : "", r->t_transform);
  if (r->on_gpu) {
    char split[64] = "";
    if (r->gpu_devices > 1) snprintf(split, sizeof split, "the samples split over %d devices, ", r->gpu_devices);
    printf("  device: %s, decoder layers on the GPU (%s GEMMs, %s%.2f GB of device memory at most%s)\n",
           cslim_device_describe(), p->gpu_gemm == CSLIM_GEMM_BF16 ? "bf16" : p->gpu_gemm == CSLIM_GEMM_TF32 ? "tf32" : "fp32",
           split, (double)r->gpu_peak_bytes / 1e9, r->gpu_devices > 1 ? " on each" : "");
  }
  else if (r->gpu_note[0])
    printf("  device: %s, %s\n", cslim_device_describe(), r->gpu_note);
  else
    printf("  device: %s\n", cslim_device_describe());
  char disk[64] = "";
  if (r->disk_read >= 0) snprintf(disk, sizeof disk, " (%.1f MB from disk)", (double)r->disk_read / 1e6);
  printf("  time %.2f s (read %.2f, forward %.2f, statistics %.2f, write %.2f, check %.2f); peak RSS %.0f MB; "
         "read %.1f MB%s, wrote %.1f MB\n",
         r->seconds, r->t_read, r->t_forward, r->t_stats, r->t_write, r->t_verify, (double)r->peak_rss / 1e6,
         (double)r->bytes_read / 1e6, disk, (double)r->bytes_written / 1e6);
  int64_t sp_codes = 0, sp_wide = 0;
  double sp_bytes = 0;
  for (int l = 0; l < r->n_layers; l++) {
    sp_codes += r->layers[l].sparse_codes;
    sp_wide += r->layers[l].sparse_wide;
    sp_bytes += r->layers[l].sparse_bits * (double)r->layers[l].sparse_codes / 8.0;
  }
  printf("\n  layer  %-22s %-22s %-22s %-22s %9s %4s %7s%s\n", "qkv input", "o input", "gate/up input", "down input",
         "w err", "hist", "time", sp_codes ? "  int8 codes  bits/w (W8A8SC)" : "");
  for (int l = 0; l < r->n_layers; l++) {
    const cslim_quant_layer_stats *s = &r->layers[l];
    printf("  %5d ", l);
    for (int k = 0; k < 4; k++) {
      char b[48];
      if (isfinite(s->in_min[k]))
        snprintf(b, sizeof b, "[%.3g, %.3g]", (double)s->in_min[k], (double)s->in_max[k]);
      else
        snprintf(b, sizeof b, "-");
      printf(" %-22s", b);
    }
    printf(" %9.5f %4d %6.2fs", s->werr, s->n_hist, s->seconds);
    if (sp_codes)
      printf("  %9.3f %%  %6.2f", s->sparse_codes ? 100.0 * (double)s->sparse_wide / (double)s->sparse_codes : 0.0,
             s->sparse_bits);
    printf("\n");
  }
  (void)kind_names;
  if (sp_codes)
    printf("\n  W8A8S: %lld codes, %.3f %% outside [-8, 7] (int8 outliers), %.2f %% in the 4-bit range; the W8A8SC "
           "codec stores them in %.2f bits per weight (%.2fx, before tensor-parallel splitting)\n",
           (long long)sp_codes, 100.0 * (double)sp_wide / (double)sp_codes,
           100.0 - 100.0 * (double)sp_wide / (double)sp_codes, 8.0 * sp_bytes / (double)sp_codes,
           (double)sp_codes / sp_bytes);
  if (r->n_experts && !r->calib_tokens) {
    printf("\n  experts: no calibration data, every expert's weights %s\n",
           r->model_quant_type == CSLIM_QT_FLOAT ? "written as transformed" : "quantized data-free");
  } else if (r->n_experts) {
    int E = r->n_experts, low = 0;
    printf("\n  expert coverage (tokens routed to each expert during calibration; threshold %d):\n",
           r->expert_min_tokens);
    for (int l = 0; l < r->n_layers; l++) {
      const int *tk = r->expert_tokens + (size_t)l * E;
      int mn = tk[0], mx = tk[0];
      for (int e = 1; e < E; e++) {
        mn = tk[e] < mn ? tk[e] : mn;
        mx = tk[e] > mx ? tk[e] : mx;
      }
      printf("    layer %d: min %d, max %d:", l, mn, mx);
      if (E <= 32)
        for (int e = 0; e < E; e++) printf(" %d", tk[e]);
      printf("\n");
      for (int e = 0; e < E; e++) {
        int fb = r->expert_fallback[(size_t)l * E + e];
        if (tk[e] < r->expert_min_tokens) {
          low++;
          printf("      expert %d: %d tokens -> %s\n", e, tk[e],
                 fb == 1   ? "static activation range calibrated on all of the layer's tokens"
                 : fb == 2 ? "no tokens: weights quantized data-free"
                           : "weights are quantized data-free and its activations per token: unaffected");
        }
      }
    }
    if (!low) printf("    every expert saw at least %d tokens\n", r->expert_min_tokens);
  }
  if (r->verified)
    printf("\n  check on held-back samples (%lld tokens, integer-exact): KL(float || quantized) %.5f nats, "
           "top-1 agreement %.2f %%\n",
           (long long)r->verify_tokens, r->kl, 100.0 * r->top1);
}

int cli_scheme_from_bits(const cli_command *cmd, int w_bit, int a_bit, int is_dynamic, int is_lowbit, int co_sparse,
                         cslim_qtype *t) {
  if (co_sparse || (is_lowbit && !is_dynamic)) { /* QuantConfig: co_sparse forces 4/8; is_lowbit with 4/8 is W8A8S */
    if (!co_sparse && !(w_bit == 4 && a_bit == 8))
      return cli_usage_error(cmd, "--is_lowbit needs --w_bit 4 --a_bit 8 (W8A8S); the low-bit auto-precision mode "
                             "of other widths is not implemented");
    *t = CSLIM_QT_W8A8S;
    return 0;
  }
  if (w_bit == 8 && a_bit == 8) *t = is_dynamic ? CSLIM_QT_W8A8_DYNAMIC : CSLIM_QT_W8A8;
  else if (w_bit == 4 && a_bit == 8 && is_dynamic) *t = CSLIM_QT_W4A8_DYNAMIC;
  else if (w_bit == 8 && a_bit == 16) *t = CSLIM_QT_W8A16;
  else
    return cli_usage_error(cmd, "--w_bit %d --a_bit %d%s is not a scheme (w8a8, w8a8 --is_dynamic, w4a8 --is_dynamic, "
                           "w4a8 --is_lowbit, w8a16)", w_bit, a_bit, is_dynamic ? " --is_dynamic" : "");
  return 0;
}

int cli_check_sparse(const cli_command *cmd, const cslim_quant_params *p) {
  if (p->sparse.fraction < 0.01 || p->sparse.fraction > 0.1)
    return cli_usage_error(cmd, "--fraction %g is not in [0.01, 0.1]", p->sparse.fraction);
  if (p->sparse.sigma_factor < 1.0 || p->sparse.sigma_factor > 4.0)
    return cli_usage_error(cmd, "--sigma_factor %g is not in [1.0, 4.0]", p->sparse.sigma_factor);
  return 0;
}

static cslim_target g_target; /* --target: quantize, then convert into save_path */
static int g_soc = 910;

int cli_quant_run(const cslim_quant_params *p) {
  cslim_quant_params q = *p;
  char tmp[4200];
  if (g_target != CSLIM_TARGET_NONE) { /* the quantizer writes beside the target, convert writes the target */
    snprintf(tmp, sizeof tmp, "%s.cslim-quant-%d", p->save_path, (int)getpid());
    q.save_path = tmp;
    q.overwrite = 1;
  }
  cslim_quant_report rep;
  cslim_status rc = cslim_quantize(&q, &rep);
  int ret = rc ? cli_fail() : CLI_EXIT_OK;
  if (!rc && g_target != CSLIM_TARGET_NONE) {
    cslim_convert_params cp = {tmp, p->save_path, g_target, g_soc, p->model_path, p->overwrite};
    cslim_convert_report cr;
    rc = cslim_convert(&cp, &cr);
    if (rc) ret = cli_fail();
    else snprintf(rep.out_dir, sizeof rep.out_dir, "%s (%s layout)", cr.out_dir, cslim_target_name(g_target));
    cslim_remove_tree(tmp);
  }
  if (!rc) print_report(p, &rep);
  cslim_quant_report_free(&rep);
  return ret;
}

/* The flags a recipe run takes; the recipe decides everything else. */
static int recipe_flag(const char *name) {
  static const char *ok[] = {"model_path", "save_path", "model_type", "quant_type", "config_path", "tag", "yes",
                             "trust_remote_code", "device", "gpu_gemm", "calib_data", "calib_samples", "calib_seq_len", "holdout",
                             "overwrite", "expert_min_tokens", "save_dtype", "target", "soc", NULL};
  for (int i = 0; ok[i]; i++)
    if (!strcmp(ok[i], name)) return 1;
  return 0;
}

/* A fallback recipe is used only after a yes: --yes, or y on an interactive terminal. */
static int accept_fallback(const char *note, int yes) {
  fprintf(stderr, "cslim quant: %s\n", note);
  if (yes) return 1;
  if (!isatty(STDIN_FILENO)) {
    fprintf(stderr, "cslim quant: error: a fallback recipe needs confirmation: pass --yes to accept it, or --config_path "
                    "to name a recipe\n");
    return 0;
  }
  fprintf(stderr, "continue with it? [y/N] ");
  char line[16];
  return fgets(line, sizeof line, stdin) && (line[0] == 'y' || line[0] == 'Y');
}

/* --model_type / --config_path: the recipe's run (spec §1.3). */
static int run_recipe(const cli_command *cmd, cslim_quant_params *p, const char *model_type, const char *quant_type,
                      const char *config_path, const cli_list *tags, int yes) {
  if (!model_type) return cli_usage_error(cmd, "--config_path needs --model_type (it names the output's "
                                                "<model_type>_best_practice.yaml)");
  if (config_path && quant_type)
    return cli_usage_error(cmd, "--quant_type and --config_path exclude each other: the recipe names the scheme");
  const char *ped = cslim_model_pedigree(model_type);
  cslim_config cfg;
  if (cslim_config_load(p->model_path, &cfg)) return cli_fail();
  if (ped && strcmp(ped, cslim_family_name(cfg.family)))
    return cli_usage_error(cmd, "--model_type %s is a %s model, but %s is %s (config.json)", model_type, ped,
                           p->model_path, cslim_family_name(cfg.family));
  cslim_practice pr = {0};
  const char *path = config_path;
  if (!path) {
    if (cslim_practice_select(cslim_recipes_dir(), model_type, quant_type ? quant_type : "w8a8", tags->v, tags->n, &pr))
      return cli_fail();
    path = pr.path;
    if (pr.fallback && !accept_fallback(pr.note, yes)) {
      cslim_practice_free(&pr);
      return CLI_EXIT_FAIL;
    }
  }
  cslim_recipe *r = NULL;
  char *calib = NULL, *anti = NULL, name[160];
  int ret = CLI_EXIT_FAIL;
  if (cslim_recipe_load(path, &r) || cslim_recipe_apply(r, p)) goto done;
  if (!p->calib_data && cslim_recipe_dataset(r)) {
    if (cslim_calib_resolve(cslim_recipe_dataset(r), &calib)) goto done;
    p->calib_data = calib;
  }
  if (!p->anti_data && cslim_recipe_anti_dataset(r)) {
    if (cslim_calib_resolve(cslim_recipe_anti_dataset(r), &anti)) goto done;
    p->anti_data = anti;
  }
  snprintf(name, sizeof name, "%s_best_practice.yaml", model_type);
  p->extra_name = name;
  p->extra_text = cslim_recipe_text(r);
  cslim_log(CSLIM_LOG_INFO, "recipe %s (%s): %s; calibration data %s", path, cslim_recipe_config_id(r),
            cslim_recipe_summary(r), p->calib_data ? p->calib_data : "none");
  ret = cli_quant_run(p);
  goto out;
done:
  ret = cli_fail();
out:
  cslim_recipe_free(r);
  cslim_practice_free(&pr);
  free(calib);
  free(anti);
  return ret;
}

int cmd_quant(int argc, char **argv) {
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  const char *quant_type = NULL, *w_method = NULL, *mix_cfg = NULL, *device = "cpu", *gpu_gemm = NULL;
  const char *anti_method = NULL, *rot_mode = "hadamard", *save_dtype = NULL;
  const char *model_type = NULL, *config_path = NULL, *target = NULL;
  int rot_seed = 1234, yes = 0, trust_remote_code = 0, w_bit = 0, a_bit = 0, is_lowbit = 0, co_sparse = 0;
  cli_list disable = {0}, exclude = {0}, tags = {0};
  cli_opt opts[] = {
      {"model_path", CLI_STR, &p.model_path, "DIR", "float model (Hugging Face layout)", 1, 0},
      {"save_path", CLI_STR, &p.save_path, "DIR", "output directory (written atomically)", 1, 0},
      {"model_type", CLI_STR, &model_type, "T",
       "run the recipe for this model (Qwen3-32B, Qwen3-30B, Qwen3-VL-8B-Instruct, ...; see below)", 0, 0},
      {"quant_type", CLI_STR, &quant_type, "Q",
       "with --model_type: the recipe label (w8a8 default, w4a8, w8a8s, w8a16, w8a8c8, ...); without: the scheme, "
       "w8a8 (default), w8a8_dynamic, w8a8_mix, w8a16, w4a8, w8a8s, float (transforms only)", 0, 0},
      {"config_path", CLI_STR, &config_path, "YAML", "run this recipe (msModelSlim schema) instead of looking one up", 0, 0},
      {"tag", CLI_LIST, &tags, "TAG", "scenario tags a recipe must be verified for (MindIE Atlas_A2_Inference, "
       "vLLM_Ascend, ...)", 0, 0},
      {"yes", CLI_BOOL, &yes, NULL, "accept a fallback recipe without asking", 0, 0},
      {"trust_remote_code", CLI_BOOL, &trust_remote_code, NULL,
       "accepted for msModelSlim compatibility; cslim never executes code from the model directory", 0, 0},
      {"calib_data", CLI_STR, &p.calib_data, "F|DIR", ".json / .jsonl file or image folder (static schemes need it)", 0, 0},
      {"calib_samples", CLI_INT, &p.calib_samples, "N", "calibration samples (default: all)", 0, 0},
      {"calib_seq_len", CLI_INT, &p.calib_seq_len, "N", "tokens per sample, longer ones truncated (default 256)", 0, 0},
      {"act_method", CLI_INT, &p.act_method, "1|2|3", "1 min-max (default), 2 histogram, 3 per Linear", 0, 0},
      {"w_method", CLI_STR, &w_method, "M", "minmax or ssz (default: ssz for 4-bit weights, minmax for 8-bit)", 0, 0},
      {"group_size", CLI_INT, &p.group_size, "N", "per-group 4-bit weights (32, 64, 128, 256); 0 = per channel", 0, 0},
      {"disable_names", CLI_LIST, &disable, "NAME", "Linears kept float (module names, e.g. model.layers.0.mlp.down_proj)", 0, 0},
      {"exclude", CLI_LIST, &exclude, "GLOB", "Linears kept float by pattern (*, ?, [..], {a,b})", 0, 0},
      {"mix_cfg", CLI_STR, &mix_cfg, "FILE", "JSON {\"pattern\": \"type\"}: per-Linear schemes, first match wins", 0, 0},
      {"part_file_size", CLI_DOUBLE, &p.part_file_size, "GB", "shard the weights at this size (2^30 bytes)", 0, 0},
      {"holdout", CLI_INT, &p.holdout, "N", "samples kept back for the final float-vs-quantized check (default 4)", 0, 0},
      {"expert_min_tokens", CLI_INT, &p.expert_min_tokens, "N",
       "experts seeing fewer calibration tokens get ranges from all tokens (default 8)", 0, 0},
      {"legacy_names", CLI_BOOL, &p.legacy_names, NULL, "v0 saver names: quant_model_weight_<type>*.safetensors", 0, 0},
      {"mindie_format", CLI_BOOL, &p.mindie_format, NULL,
       "MindIE legacy layout: quant_model_description_<type>.json, config.json 'quantize'", 0, 0},
      {"quantize_vision", CLI_BOOL, &p.quantize_vision, NULL,
       "Qwen3-VL: quantize the vision tower's Linears too (default: kept float unless a mix_cfg pattern names them)",
       0, 0},
      {"anti_method", CLI_STR, &anti_method, "M",
       "outlier suppression before quantizing: m1 SmoothQuant, m2 OS+ (shift + searched scale), m4 iterative "
       "smooth, m6 flex smooth (alpha/beta search)", 0, 0},
      {"alpha", CLI_DOUBLE, &p.anti_alpha, "A", "migration strength of m1 / m4 (default 0.5)", 0, 0},
      {"anti_data", CLI_STR, &p.anti_data, "F|DIR",
       "statistics set for --anti_method (default: the calibration samples)", 0, 0},
      {"anti_batch_size", CLI_INT, &p.anti_samples, "N", "samples of the anti-outlier set used (default: all)", 0, 0},
      {"anti_tokens", CLI_INT, &p.anti_tokens, "N", "input rows the m2 / m6 searches score on (default 512)", 0, 0},
      {"rot", CLI_BOOL, &p.rot, NULL, "QuaRot: fuse the norms and rotate the residual stream by a random Hadamard matrix",
       0, 0},
      {"rot_mode", CLI_STR, &rot_mode, "M", "hadamard (default) or block_shifted (block rotation, shift by half a "
       "block, block rotation)", 0, 0},
      {"rot_block_size", CLI_INT, &p.rot_block_size, "N", "block-diagonal rotation of N-sized blocks (default: one "
       "block of the hidden size; 32 for block_shifted)", 0, 0},
      {"rot_seed", CLI_INT, &rot_seed, "S", "seed of the rotation's random signs (default 1234)", 0, 0},
      {"w_bit", CLI_INT, &w_bit, "N", "msModelSlim's spelling of the scheme, with --a_bit (and --is_lowbit): 8/8 "
       "W8A8, 8/16 W8A16, 4/8 --is_lowbit W8A8S", 0, 0},
      {"a_bit", CLI_INT, &a_bit, "N", "activation bits (with --w_bit)", 0, 0},
      {"is_lowbit", CLI_BOOL, &is_lowbit, NULL, "with --w_bit 4 --a_bit 8: W8A8S low-bit sparse weights (= --quant_type "
       "w8a8s)", 0, 0},
      {"co_sparse", CLI_BOOL, &co_sparse, NULL, "W8A8S by the legacy backend: no scale search (off with --is_lowbit)", 0,
       0},
      {"fraction", CLI_DOUBLE, &p.sparse.fraction, "F", "W8A8S: share of each channel kept as int8 outliers, 0.01 .. 0.1 "
       "(default 0.01)", 0, 0},
      {"use_sigma", CLI_BOOL, &p.sparse.use_sigma, NULL, "W8A8S: outliers are |w - mean| > sigma_factor * std instead", 0,
       0},
      {"sigma_factor", CLI_DOUBLE, &p.sparse.sigma_factor, "F", "W8A8S: 1.0 .. 4.0 (default 3.0)", 0, 0},
      {"open_outlier", CLI_BOOL, &p.sparse.open_outlier, NULL, "W8A8S: keep outliers in int8 (default True; False: "
       "every code in [-8, 7])", 0, 0},
      {"target", CLI_STR, &target, "T", "write the layout of vllm-ascend, vllm-mindspore or mindie (as 'cslim convert' "
       "does; default: msModelSlim's)", 0, 0},
      {"soc", CLI_INT, &g_soc, "310|910", "with --target vllm-mindspore: the SoC (default 910)", 0, 0},
      {"save_dtype", CLI_STR, &save_dtype, "T", "dtype of the float tensors written: bfloat16, float16 or float32 "
       "(default: the model's; config.json follows)", 0, 0},
      {"overwrite", CLI_BOOL, &p.overwrite, NULL, "replace a non-empty save_path", 0, 0},
      {"device", CLI_STR, &device, "DEV", "cpu (default), cuda, cuda:N or cuda:N,M,... (CUDA builds): decoder layers (dense "
       "or MoE, text or images, with QuaRot and any smoothing) calibrate whole on the GPU(s), several splitting the "
       "samples with statistics merged through NCCL, an --anti_data set beside them (one of images: the CPU path, "
       "float GEMMs on the first GPU; docs/performance.md)", 0, 0},
      {"gpu_gemm", CLI_STR, &gpu_gemm, "P", "float GEMMs on the GPU: fp32 (default; ordered float32 products, the CPU's "
       "checkpoint bit for bit), tf32 or bf16 (tensor cores, float32 accumulation; faster, activation ranges move ~1 %)", 0, 0},
      CLI_END,
  };
  cli_command cmd = {
      "quant", "Quantize a model into the Ascend checkpoint format (vLLM-Ascend / MindIE).",
      "cslim quant --model_path M --save_path OUT --quant_type Q --calib_data F [options]",
      "Layer by layer: every calibration sample runs through the layer in float to observe the\n"
      "input of each Linear, weights and activation ranges are quantized, and the layer is run\n"
      "again with the serving engine's integer kernels so that the next layer calibrates on\n"
      "what the deployed model will feed it. The router (mlp.gate), lm_head, norms and\n"
      "embeddings stay float. The run ends with a check of the written checkpoint against\n"
      "the float model on held-back samples (KL divergence, top-1 agreement).\n\n"
      "--anti_method (m1, m2, m4, m6) and --rot first fold outlier smoothing and a Hadamard\n"
      "rotation into each layer's weights without changing the float function;\n"
      "--quant_type float writes only that, as a float checkpoint in the Hub's layout.\n\n"
      "Recipes (msModelSlim's one-click mode): --model_type picks the recipe family\n"
      "(Qwen3-8B/14B/32B: qwen3; Qwen3-30B/235B/Coder-480B-A35B: qwen3_moe; Qwen3-VL-4B/8B/32B-\n"
      "Instruct: qwen3_vl; Qwen3-VL-30B-A3B/235B-A22B: qwen3_vl_moe) and --quant_type the label;\n"
      "without a recipe verified for both, the fallback order is: other scenarios, the default\n"
      "recipe, then W8A8 the same way; a fallback is announced and needs --yes (or y on a\n"
      "terminal). --config_path runs a YAML of your own. The recipe names its calibration set\n"
      "(found in data/calib, or give --calib_data) and is copied into the output as\n"
      "<model_type>_best_practice.yaml. Recipes ship in recipes/ ($CSLIM_RECIPES overrides).\n"
      "--trust_remote_code is accepted and ignored: cslim reads config.json, tokenizer and\n"
      "safetensors only and never runs Python from the model directory."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  (void)trust_remote_code;
  if (target && cli_parse_target(&cmd, target, &g_target)) return CLI_EXIT_USAGE;
  if (g_soc != 310 && g_soc != 910) return cli_usage_error(&cmd, "--soc %d: 310 or 910", g_soc);
  if (cslim_device_select(device)) return cli_fail();
  if (gpu_gemm) {
    if (!strcmp(gpu_gemm, "fp32")) p.gpu_gemm = CSLIM_GEMM_FP32;
    else if (!strcmp(gpu_gemm, "tf32")) p.gpu_gemm = CSLIM_GEMM_TF32;
    else if (!strcmp(gpu_gemm, "bf16")) p.gpu_gemm = CSLIM_GEMM_BF16;
    else return cli_usage_error(&cmd, "--gpu_gemm %s: fp32, tf32 or bf16", gpu_gemm);
    if (!cslim_device_is_gpu()) return cli_usage_error(&cmd, "--gpu_gemm needs --device cuda");
  }
  if (save_dtype) {
    if (!strcmp(save_dtype, "bfloat16") || !strcmp(save_dtype, "bf16"))
      p.save_dtype = CSLIM_BF16;
    else if (!strcmp(save_dtype, "float16") || !strcmp(save_dtype, "f16"))
      p.save_dtype = CSLIM_F16;
    else if (!strcmp(save_dtype, "float32") || !strcmp(save_dtype, "f32"))
      p.save_dtype = CSLIM_F32;
    else
      return cli_usage_error(&cmd, "--save_dtype: '%s' is not bfloat16, float16 or float32", save_dtype);
    p.save_dtype_set = 1;
  }
  if (model_type || config_path) {
    for (const cli_opt *o = opts; o->name; o++)
      if (o->seen && !recipe_flag(o->name))
        return cli_usage_error(&cmd, "--%s: the recipe decides this; copy the recipe, edit it and pass it with "
                               "--config_path", o->name);
    r = run_recipe(&cmd, &p, model_type, quant_type, config_path, &tags, yes);
    free(tags.v);
    return r;
  }
  if (tags.n || yes) return cli_usage_error(&cmd, "--tag and --yes choose a recipe: they need --model_type");
  int bits_seen = 0;
  for (const cli_opt *o = opts; o->name; o++)
    bits_seen |= o->seen && (!strcmp(o->name, "w_bit") || !strcmp(o->name, "a_bit") || !strcmp(o->name, "is_lowbit") ||
                             !strcmp(o->name, "co_sparse"));
  if (bits_seen) {
    if (quant_type) return cli_usage_error(&cmd, "--quant_type and --w_bit/--a_bit/--is_lowbit name the scheme twice");
    if (cli_scheme_from_bits(&cmd, w_bit ? w_bit : 8, a_bit ? a_bit : 8, 0, is_lowbit, co_sparse, &p.quant_type))
      return CLI_EXIT_USAGE;
    p.sparse.co_sparse = co_sparse && !is_lowbit;
  } else if (cslim_scheme_parse(quant_type ? quant_type : "w8a8", &p.quant_type) != 0 ||
             p.quant_type == CSLIM_QT_W8A8SC)
    return cli_usage_error(&cmd, "--quant_type: '%s' is not one of %s", quant_type, cslim_scheme_names());
  if (cli_check_sparse(&cmd, &p)) return CLI_EXIT_USAGE;
  if (p.act_method < 1 || p.act_method > 3) return cli_usage_error(&cmd, "--act_method must be 1, 2 or 3");
  if (w_method) {
    p.w_method_set = 1;
    if (!strcmp(w_method, "minmax") || !strcmp(w_method, "MinMax"))
      p.w_method = CSLIM_WM_MINMAX;
    else if (!strcmp(w_method, "ssz"))
      p.w_method = CSLIM_WM_SSZ;
    else
      return cli_usage_error(&cmd, "--w_method: '%s' is not minmax or ssz", w_method);
  }
  if (anti_method && cslim_anti_method_parse(anti_method, &p.anti_method) != 0)
    return cli_usage_error(&cmd, "--anti_method: '%s' is not m1, m2, m4 or m6", anti_method);
  if (!strcmp(rot_mode, "hadamard"))
    p.rot_mode = CSLIM_ROT_HADAMARD;
  else if (!strcmp(rot_mode, "block_shifted"))
    p.rot_mode = CSLIM_ROT_BLOCK_SHIFTED;
  else
    return cli_usage_error(&cmd, "--rot_mode: '%s' is not hadamard or block_shifted", rot_mode);
  p.rot_seed = (uint64_t)(unsigned)rot_seed;
  if (p.anti_samples < 0 || p.anti_tokens < 1) return cli_usage_error(&cmd, "--anti_batch_size / --anti_tokens must be positive");
  if (p.calib_seq_len < 0 || p.calib_samples < 0 || p.holdout < 0 || p.part_file_size < 0)
    return cli_usage_error(&cmd, "sizes and counts must not be negative");
  p.disable_names = disable.v;
  p.n_disable = disable.n;
  p.exclude = exclude.v;
  p.n_exclude = exclude.n;
  cJSON *mix_root = NULL;
  cslim_mix_rule *mix = NULL;
  if (mix_cfg && load_mix(mix_cfg, &mix, &p.n_mix, &mix_root)) return cli_fail();
  p.mix = mix;
  int ret = cli_quant_run(&p);
  free(mix);
  cJSON_Delete(mix_root);
  free(disable.v);
  free(exclude.v);
  return ret;
}
