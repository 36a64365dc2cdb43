#include "synth.h"

#include "cslim/cslim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const synth_spec k_presets[] = {
    {"qwen3-0.6b", 1024, 3072, 28, 16, 8, 128, 151936, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, {0}},
    {"qwen3-8b", 4096, 12288, 36, 32, 8, 128, 151936, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {0}},
    {"qwen3-30b-a3b", 2048, 6144, 48, 32, 4, 128, 151936, 128, 8, 768, 0, 0, 0, 0, 0, 0, 0, {0}},
    {"qwen3-vl-8b", 4096, 12288, 36, 32, 8, 128, 151936, 0, 0, 0, 0, 27, 1152, 16, 4304, 2304, 3, {8, 16, 24}},
    /* Qwen3-VL-MoE: the experts in the Hub's fused layout (gate_up_proj [E, H, 2I], down_proj [E, I, H]) */
    {"qwen3-vl-30b-a3b", 2048, 6144, 48, 32, 4, 128, 151936, 128, 8, 768, 0, 27, 1152, 16, 4304, 2304, 3, {8, 16, 24}},
};

const synth_spec *synth_preset(const char *name) {
  for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++)
    if (!strcmp(k_presets[i].name, name)) return &k_presets[i];
  return NULL;
}

typedef struct wt {
  char name[128];
  int nd;
  int64_t shape[5];
  int is_norm;
} wt;

static size_t wt_numel(const wt *w) {
  size_t k = 1;
  for (int d = 0; d < w->nd; d++) k *= (size_t)w->shape[d];
  return k;
}

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void fill(uint16_t *d, size_t n, uint64_t seed, int is_norm) {
  if (is_norm) {
    for (size_t i = 0; i < n; i++) d[i] = 0x3f80; /* 1.0 */
    return;
  }
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < n; b += 4096) {
    uint64_t s = mix(seed ^ (b * 0x2545f4914f6cdd1dull));
    size_t e = b + 4096 < n ? b + 4096 : n;
    for (size_t i = b; i < e; i++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      float u = (float)(s >> 40) * 0x1p-24f; /* [0, 1) */
      d[i] = cslim_f32_to_bf16((u - 0.5f) * 0.0693f);
    }
  }
}

static int add(wt **v, int *n, int *cap, const char *name, int nd, int64_t a, int64_t b, int norm) {
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 256;
    *v = realloc(*v, (size_t)*cap * sizeof **v);
  }
  wt *w = &(*v)[(*n)++];
  snprintf(w->name, sizeof w->name, "%s", name);
  w->nd = nd;
  w->shape[0] = a;
  w->shape[1] = b;
  w->is_norm = norm;
  return 0;
}

cslim_status synth_write(const synth_spec *s, const char *dir, double shard_gb, uint64_t seed,
                         const char *tokenizer_json) {
  mkdir(dir, 0755);
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) return cslim_error(CSLIM_ERR_IO, "%s: cannot create", path);
  const int vl = s->vis_depth > 0;
  if (vl) /* Qwen3-VL: the text model nested in text_config (transformers 5 spelling) */
    fprintf(f,
            "{\n  \"architectures\": [\"Qwen3VL%sForConditionalGeneration\"],\n  \"model_type\": \"qwen3_vl%s\",\n"
            "  \"image_token_id\": %d,\n  \"video_token_id\": %d,\n  \"vision_start_token_id\": %d,\n"
            "  \"vision_end_token_id\": %d,\n  \"tie_word_embeddings\": %s,\n  \"dtype\": \"bfloat16\",\n"
            "  \"transformers_version\": \"5.0.0\",\n"
            "  \"vision_config\": {\"depth\": %d, \"hidden_size\": %d, \"num_heads\": %d, \"intermediate_size\": %d,"
            " \"hidden_act\": \"gelu_pytorch_tanh\", \"in_channels\": 3, \"patch_size\": 16, \"temporal_patch_size\": 2,"
            " \"spatial_merge_size\": 2, \"out_hidden_size\": %d, \"num_position_embeddings\": %d,"
            " \"deepstack_visual_indexes\": [%d, %d, %d]},\n  \"text_config\": {\n",
            s->experts ? "Moe" : "", s->experts ? "_moe" : "", s->vocab - 4, s->vocab - 3, s->vocab - 6, s->vocab - 5,
            s->tie ? "true" : "false", s->vis_depth,
            s->vis_hidden, s->vis_heads, s->vis_intermediate, s->hidden, s->vis_pos, s->deepstack[0], s->deepstack[1],
            s->deepstack[2]);
  fprintf(f,
          "%s  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"hidden_size\": %d,\n"
          "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
          "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n"
          "  \"rms_norm_eps\": 1e-06,\n  \"rope_theta\": 1000000,\n  \"max_position_embeddings\": 40960,\n"
          "  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"bfloat16\",\n  \"hidden_act\": \"silu\",\n"
          "  \"bos_token_id\": 151643,\n  \"eos_token_id\": 151645,\n  \"transformers_version\": \"4.51.0\"",
          vl ? "" : "{\n",
          vl ? (s->experts ? "Qwen3VLMoeTextModel" : "Qwen3VLTextModel") : s->experts ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM",
          vl ? (s->experts ? "qwen3_vl_moe_text" : "qwen3_vl_text") : s->experts ? "qwen3_moe" : "qwen3", s->hidden, s->intermediate, s->layers, s->heads,
          s->kv_heads, s->head_dim, s->vocab, s->tie ? "true" : "false");
  if (s->experts)
    fprintf(f,
            ",\n  \"num_experts\": %d,\n  \"num_experts_per_tok\": %d,\n  \"moe_intermediate_size\": %d,\n"
            "  \"norm_topk_prob\": true,\n  \"decoder_sparse_step\": 1,\n  \"mlp_only_layers\": []",
            s->experts, s->top_k, s->moe_intermediate);
  if (vl)
    fprintf(f, ",\n  \"rope_scaling\": {\"rope_type\": \"default\", \"mrope_section\": [%d, %d, %d], "
               "\"mrope_interleaved\": true}\n  }",
            s->head_dim / 2 - 2 * (s->head_dim / 2 * 5 / 16), s->head_dim / 2 * 5 / 16, s->head_dim / 2 * 5 / 16);
  fprintf(f, "\n}\n");
  fclose(f);
  if (tokenizer_json) {
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cslim_status rc = cslim_copy_file(tokenizer_json, path);
    if (rc) return rc;
  }

  wt *v = NULL;
  int n = 0, cap = 0;
  int64_t H = s->hidden, D = s->head_dim, Q = (int64_t)s->heads * D, KV = (int64_t)s->kv_heads * D;
  char nm[160];
  const char *tp = vl ? "model.language_model." : "model.";
  snprintf(nm, sizeof nm, "%sembed_tokens.weight", tp);
  add(&v, &n, &cap, nm, 2, s->vocab, H, 0);
  for (int l = 0; l < s->layers; l++) {
#define A(fmt, nd, a, b, norm)                                                                  \
  do {                                                                                          \
    snprintf(nm, sizeof nm, "%slayers.%d." fmt, tp, l);                                          \
    add(&v, &n, &cap, nm, nd, a, b, norm);                                                      \
  } while (0)
    A("input_layernorm.weight", 1, H, 0, 1);
    A("post_attention_layernorm.weight", 1, H, 0, 1);
    A("self_attn.q_proj.weight", 2, Q, H, 0);
    A("self_attn.k_proj.weight", 2, KV, H, 0);
    A("self_attn.v_proj.weight", 2, KV, H, 0);
    A("self_attn.o_proj.weight", 2, H, Q, 0);
    A("self_attn.q_norm.weight", 1, D, 0, 1);
    A("self_attn.k_norm.weight", 1, D, 0, 1);
    if (!s->experts) {
      A("mlp.gate_proj.weight", 2, s->intermediate, H, 0);
      A("mlp.up_proj.weight", 2, s->intermediate, H, 0);
      A("mlp.down_proj.weight", 2, H, s->intermediate, 0);
    } else {
      A("mlp.gate.weight", 2, s->experts, H, 0);
      if (vl) { /* the Hub's fused layout, applied as x·W */
        A("mlp.experts.gate_up_proj", 3, s->experts, H, 0);
        v[n - 1].shape[2] = 2 * (int64_t)s->moe_intermediate;
        A("mlp.experts.down_proj", 3, s->experts, s->moe_intermediate, 0);
        v[n - 1].shape[2] = H;
      }
      for (int e = 0; e < s->experts && !vl; e++) {
        snprintf(nm, sizeof nm, "%slayers.%d.mlp.experts.%d.gate_proj.weight", tp, l, e);
        add(&v, &n, &cap, nm, 2, s->moe_intermediate, H, 0);
        snprintf(nm, sizeof nm, "%slayers.%d.mlp.experts.%d.up_proj.weight", tp, l, e);
        add(&v, &n, &cap, nm, 2, s->moe_intermediate, H, 0);
        snprintf(nm, sizeof nm, "%slayers.%d.mlp.experts.%d.down_proj.weight", tp, l, e);
        add(&v, &n, &cap, nm, 2, H, s->moe_intermediate, 0);
      }
    }
#undef A
  }
  snprintf(nm, sizeof nm, "%snorm.weight", tp);
  add(&v, &n, &cap, nm, 1, H, 0, 1);
  if (!s->tie) add(&v, &n, &cap, "lm_head.weight", 2, s->vocab, H, 0);
  if (vl) {
    const int64_t VD = s->vis_hidden, VI = s->vis_intermediate, MW = 4 * VD;
    add(&v, &n, &cap, "model.visual.patch_embed.proj.weight", 2, VD, 3 * 2 * 16 * 16, 0);
    v[n - 1].nd = 5; /* [D, 3, 2, 16, 16] */
    v[n - 1].shape[1] = 3, v[n - 1].shape[2] = 2, v[n - 1].shape[3] = 16, v[n - 1].shape[4] = 16;
    add(&v, &n, &cap, "model.visual.patch_embed.proj.bias", 1, VD, 0, 0);
    add(&v, &n, &cap, "model.visual.pos_embed.weight", 2, s->vis_pos, VD, 0);
    for (int j = 0; j < s->vis_depth; j++) {
#define VB(fmt, nd, a, b, norm)                                                                 \
  do {                                                                                          \
    snprintf(nm, sizeof nm, "model.visual.blocks.%d." fmt, j);                                   \
    add(&v, &n, &cap, nm, nd, a, b, norm);                                                      \
  } while (0)
      VB("norm1.weight", 1, VD, 0, 1);
      VB("norm1.bias", 1, VD, 0, 0);
      VB("norm2.weight", 1, VD, 0, 1);
      VB("norm2.bias", 1, VD, 0, 0);
      VB("attn.qkv.weight", 2, 3 * VD, VD, 0);
      VB("attn.qkv.bias", 1, 3 * VD, 0, 0);
      VB("attn.proj.weight", 2, VD, VD, 0);
      VB("attn.proj.bias", 1, VD, 0, 0);
      VB("mlp.linear_fc1.weight", 2, VI, VD, 0);
      VB("mlp.linear_fc1.bias", 1, VI, 0, 0);
      VB("mlp.linear_fc2.weight", 2, VD, VI, 0);
      VB("mlp.linear_fc2.bias", 1, VD, 0, 0);
#undef VB
    }
    for (int k = -1; k < s->n_deepstack; k++) {
      char mp[96];
      if (k < 0) snprintf(mp, sizeof mp, "model.visual.merger");
      else snprintf(mp, sizeof mp, "model.visual.deepstack_merger_list.%d", k);
#define VM(fmt, nd, a, b, norm)                                                                 \
  do {                                                                                          \
    snprintf(nm, sizeof nm, "%s." fmt, mp);                                                      \
    add(&v, &n, &cap, nm, nd, a, b, norm);                                                      \
  } while (0)
      VM("norm.weight", 1, k < 0 ? VD : MW, 0, 1);
      VM("norm.bias", 1, k < 0 ? VD : MW, 0, 0);
      VM("linear_fc1.weight", 2, MW, MW, 0);
      VM("linear_fc1.bias", 1, MW, 0, 0);
      VM("linear_fc2.weight", 2, H, MW, 0);
      VM("linear_fc2.bias", 1, H, 0, 0);
#undef VM
    }
  }

  cslim_st_writer *w;
  cslim_status rc = cslim_st_writer_create(dir, "model", shard_gb > 0 ? (uint64_t)(shard_gb * (1u << 30)) : 0, &w);
  if (rc) return rc;
  cslim_st_writer_set_metadata(w, "format", "pt");
  for (int i = 0; i < n && !rc; i++) rc = cslim_st_writer_declare(w, v[i].name, CSLIM_BF16, v[i].nd, v[i].shape);
  if (!rc) rc = cslim_st_writer_begin(w);
  size_t maxn = 0;
  for (int i = 0; i < n; i++)
    if (wt_numel(&v[i]) > maxn) maxn = wt_numel(&v[i]);
  uint16_t *buf = malloc(maxn * 2);
  cslim_progress p;
  cslim_progress_begin(&p, "synthetic checkpoint", (uint64_t)n);
  for (int i = 0; i < n && !rc; i++) {
    size_t k = wt_numel(&v[i]);
    fill(buf, k, seed * 1000003u + (uint64_t)i, v[i].is_norm);
    rc = cslim_st_writer_put(w, v[i].name, buf);
    cslim_progress_advance(&p, 1);
  }
  cslim_progress_end(&p);
  if (!rc) rc = cslim_st_writer_finish(w);
  cslim_st_writer_free(w);
  free(buf);
  free(v);
  return rc;
}
