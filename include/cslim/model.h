/* The float32 forward pass of Qwen3 / Qwen3-MoE (and the text tower of
 * Qwen3-VL), layer-streamed.
 *
 * A model is a sequence of blocks — embedding, decoder layers 0..L-1, head —
 * whose weights stay in the memory-mapped checkpoint until a block runs:
 * cslim_layer_load() converts one decoder layer's weights to float32 and
 * cslim_layer_free() releases them (and their pages). Routed experts are
 * converted lazily, one at a time, when tokens reach them. A caller can run
 * one layer on a batch of hidden states (cslim_layer_forward), observe and
 * modify the input of every Linear through hooks, and replace any weight
 * (cslim_linear.w) — the quantizer is built on exactly this.
 *
 * Activations are packed: the tokens of all sequences one after another
 * ([total, hidden], row-major), with per-sequence offsets; attention never
 * crosses a sequence boundary, so no padding is computed. */
#ifndef CSLIM_MODEL_H
#define CSLIM_MODEL_H

#include "cslim/config.h"
#include "cslim/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cslim_model cslim_model;

/* ---- linears ----------------------------------------------------------------- */

/* Layout of a weight inside its checkpoint tensor. */
typedef enum cslim_weight_layout {
  CSLIM_W_PLAIN = 0,  /* the tensor is [out, in] (nn.Linear) */
  CSLIM_W_ROWS,       /* rows [row0, row0+out) of expert `expert` of a [E, R, in] tensor */
  CSLIM_W_COLS_T      /* columns [row0, row0+out) of expert `expert` of a [E, in, C] tensor, transposed */
} cslim_weight_layout;

typedef struct cslim_linear cslim_linear;
typedef cslim_status (*cslim_linear_fn)(const cslim_linear *l, const float *x, int rows, float *y);

struct cslim_linear {
  char name[128];       /* module path, e.g. "model.layers.3.self_attn.q_proj" */
  int in, out;
  float *w;             /* [out, in] float32 once materialised, else NULL */
  float *b;             /* [out] bias or NULL */
  const cslim_tensor *src;
  cslim_weight_layout layout;
  int expert, row0;
  /* Replacement compute (e.g. the integer-exact kernel of a quantized
   * checkpoint) with its data; NULL = float GEMM on w. impl_free, when set,
   * releases impl with the linear. */
  cslim_linear_fn forward;
  void *impl;
  void (*impl_free)(void *impl);
  int slot; /* position in its layer: q 0, k 1, v 2, o 3, gate 4, up 5, down 6, router 7, experts 8 + 3e + j */
};

/* y[rows, out] = x[rows, in] · Wᵀ (+ b). */
cslim_status cslim_linear_forward(const cslim_linear *l, const float *x, int rows, float *y);
/* Convert the weight to float32 (no-op when already done). */
cslim_status cslim_linear_materialize(cslim_model *m, cslim_linear *l);
/* Free the float32 weight and drop the checkpoint pages it came from. */
void cslim_linear_release(cslim_model *m, cslim_linear *l);

/* ---- layers ------------------------------------------------------------------------ */

typedef struct cslim_layer {
  int index;
  int is_moe;
  float *input_norm, *post_norm; /* [hidden] */
  float *input_norm_b, *post_norm_b; /* [hidden] RMSNorm + bias (smoothing shifts), or NULL */
  float *q_norm, *k_norm;        /* [head_dim] */
  cslim_linear q, k, v, o;
  cslim_linear gate, up, down;   /* dense MLP (unused when is_moe) */
  cslim_linear router;           /* MoE: mlp.gate [E, hidden] */
  int n_experts;
  cslim_linear *experts;         /* [3 * E]: gate, up, down of expert e at 3e, 3e+1, 3e+2 */
  int keep_experts;              /* keep expert weights after use (default: release) */
} cslim_layer;

cslim_status cslim_layer_load(cslim_model *m, int index, cslim_layer **out);
void cslim_layer_free(cslim_model *m, cslim_layer *l);
/* Ask the kernel to read layer index's tensors from disk ahead (MADV_WILLNEED), while another
 * layer is worked on; an index out of range (-1: none) does nothing. */
void cslim_layer_prefetch(cslim_model *m, int index);

/* ---- activations --------------------------------------------------------------------- */

typedef struct cslim_acts {
  int n_seqs;
  int *seq_start;  /* [n_seqs + 1]: sequence s is rows seq_start[s] .. seq_start[s+1]-1 */
  int total;       /* rows */
  int hidden;
  float *h;        /* [total, hidden]: the residual stream */
  int32_t *ids;    /* [total] token ids */
  int32_t *pos;    /* [3 * total]: position ids on the T, H, W axes (equal for text) */
  /* Qwen3-VL: rows that hold image tokens, and features added to them after
   * the first layers (deepstack). */
  uint8_t *visual;        /* [total] or NULL */
  int n_deepstack;
  float **deepstack;      /* n_deepstack arrays of [n_visual, hidden] */
} cslim_acts;

/* Embed n_seqs sequences of token ids (lengths lens[s], ids concatenated). */
cslim_status cslim_acts_embed(cslim_model *m, const int32_t *ids, const int *lens, int n_seqs,
                              cslim_acts **out);
void cslim_acts_free(cslim_acts *a);

/* ---- hooks ------------------------------------------------------------------------------ */

typedef enum cslim_input_kind {
  CSLIM_IN_QKV = 0,  /* input_layernorm output -> q, k, v */
  CSLIM_IN_O,        /* attention output -> o_proj */
  CSLIM_IN_GATE_UP,  /* post_attention_layernorm output -> gate, up (dense or one expert) */
  CSLIM_IN_DOWN,     /* silu(gate) * up -> down (dense or one expert) */
  CSLIM_IN_ROUTER,   /* post_attention_layernorm output -> mlp.gate (router) */
  /* vision tower (cslim/vision.h) */
  CSLIM_IN_VIS_QKV,    /* norm1 output -> attn.qkv */
  CSLIM_IN_VIS_PROJ,   /* attention output -> attn.proj */
  CSLIM_IN_VIS_FC1,    /* norm2 output -> mlp.linear_fc1 */
  CSLIM_IN_VIS_FC2,    /* gelu(fc1) -> mlp.linear_fc2 */
  CSLIM_IN_MERGER_FC1, /* normed, merged patches -> merger linear_fc1 */
  CSLIM_IN_MERGER_FC2  /* gelu(fc1) -> merger linear_fc2 */
} cslim_input_kind;

/* Linears that read the same input. */
typedef struct cslim_linear_group {
  int layer;
  int expert; /* -1 outside the routed experts */
  cslim_input_kind kind;
  int n;
  cslim_linear *lin[3];
} cslim_linear_group;

typedef struct cslim_hooks {
  void *ctx;
  /* Called with a group's input x[rows, in] right before its linears run.
   * The hook may observe x, modify it in place (fake quantization) and
   * modify the group's weights. A non-OK status stops the forward pass. */
  cslim_status (*linear_input)(void *ctx, const cslim_linear_group *g, float *x, int rows);
  /* MoE routing: how many tokens reached each expert of a layer (counts[E]). */
  void (*routing)(void *ctx, int layer, const int *counts, int n_experts);
} cslim_hooks;

/* ---- running ----------------------------------------------------------------------------- */

/* KV cache of one sequence, for incremental decoding. */
typedef struct cslim_kv_cache cslim_kv_cache;
cslim_status cslim_kv_cache_new(cslim_model *m, int max_tokens, cslim_kv_cache **out);
void cslim_kv_cache_free(cslim_kv_cache *c);
int cslim_kv_cache_len(const cslim_kv_cache *c);

/* Run decoder layer l on the activations (in place). With a KV cache
 * (single sequence only) the new tokens attend to the cached ones and are
 * appended; cslim_kv_cache_advance() must then be called once per step. */
cslim_status cslim_layer_forward(cslim_model *m, cslim_layer *l, cslim_acts *a, const cslim_hooks *hooks,
                                 cslim_kv_cache *kv);
void cslim_kv_cache_advance(cslim_kv_cache *c, int n);

/* Final RMSNorm of rows of the residual stream (out may alias h). */
cslim_status cslim_model_final_norm(cslim_model *m, const float *h, int rows, float *out);
/* logits[rows, vocab] = normed · lm_headᵀ, converting lm_head in row blocks. */
cslim_status cslim_model_logits(cslim_model *m, const float *normed, int rows, float *logits);
/* Sum over rows of -log softmax(logits)[target] without materialising the
 * logits (online log-sum-exp over vocabulary blocks); targets < 0 skipped. */
cslim_status cslim_model_nll(cslim_model *m, const float *normed, int rows, const int32_t *targets,
                             double *nll_sum, int64_t *count);

/* Run all layers (streaming each from the checkpoint) and the final norm;
 * a->h holds the final-normed hidden states afterwards unless hidden_out is
 * given. hidden_out, when not NULL, receives L+1 arrays [total, hidden]:
 * hidden.0 = embeddings, hidden.i = output of layer i-1 (the input of layer
 * i, except that Qwen3-VL's deepstack features are added after it is
 * recorded, as transformers does), the last one after the final norm
 * (transformers' output_hidden_states). */
cslim_status cslim_model_forward(cslim_model *m, cslim_acts *a, float **hidden_out, const cslim_hooks *hooks);

/* ---- the model ------------------------------------------------------------------------------ */

/* Open a float checkpoint, or a quantized one (a directory with
 * quant_model_description.json), whose quantized Linears then run the
 * serving engine's integer kernels (cslim/quant.h). */
cslim_status cslim_model_open(const char *dir, cslim_model **out);
/* 1 when the model is a quantized checkpoint. */
int cslim_model_is_quantized(const cslim_model *m);
void cslim_model_close(cslim_model *m);
const cslim_config *cslim_model_config(const cslim_model *m);
cslim_st *cslim_model_checkpoint(cslim_model *m);
const char *cslim_model_path(const cslim_model *m);
/* Keep up to `bytes` of float32 layer weights between uses (generation
 * re-runs every layer per token); 0 (default) streams every layer. */
void cslim_model_set_layer_cache(cslim_model *m, uint64_t bytes);
/* A layer, from the cache when present (release with cslim_model_put_layer). */
cslim_status cslim_model_get_layer(cslim_model *m, int index, cslim_layer **out);
void cslim_model_put_layer(cslim_model *m, cslim_layer *l);
/* float32 bytes of one decoder layer (all experts), for budgeting. */
uint64_t cslim_model_layer_bytes(const cslim_model *m, int index);
/* Name of a text-model tensor: "<prefix>" + rest (e.g. "layers.0.mlp.gate.weight"). */
void cslim_model_tensor_name(const cslim_model *m, const char *rest, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
