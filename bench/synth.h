/* Random-weight checkpoints with the real shapes of Qwen3-family models, for
 * benchmarks (bench_forward, bench_quant, the GPU benchmark). */
#ifndef CSLIM_BENCH_SYNTH_H
#define CSLIM_BENCH_SYNTH_H

#include "cslim/common.h"

typedef struct synth_spec {
  const char *name;
  int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab;
  int experts, top_k, moe_intermediate; /* experts == 0: dense */
  int tie;
  /* Qwen3-VL vision tower (vis_depth == 0: a text model) */
  int vis_depth, vis_hidden, vis_heads, vis_intermediate, vis_pos;
  int n_deepstack, deepstack[3];
} synth_spec;

/* Presets: qwen3-0.6b, qwen3-8b, qwen3-30b-a3b, qwen3-vl-8b, qwen3-vl-30b-a3b (the VL-MoE's experts
 * fused as the Hub stores them; full shapes; override layers and vocab to make a one-layer
 * benchmark model). NULL when unknown. */
const synth_spec *synth_preset(const char *name);
/* Write DIR/config.json (transformers 4 spelling), DIR/model*.safetensors
 * (sharded at shard_gb) with bf16 weights ~ U(-0.035, 0.035) (std 0.02),
 * norms 1.0. A tokenizer.json to copy may be given (NULL: none). */
cslim_status synth_write(const synth_spec *s, const char *dir, double shard_gb, uint64_t seed,
                         const char *tokenizer_json);

#endif
