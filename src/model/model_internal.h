/* Internals shared by src/model (not part of the public API). */
#ifndef CSLIM_MODEL_INTERNAL_H
#define CSLIM_MODEL_INTERNAL_H

#include "cslim/model.h"
#include "cslim/quant.h"

struct cslim_qdesc;

struct cslim_model {
  char *path;
  struct cslim_qdesc *qdesc; /* quantized checkpoint: its description; NULL for a float model */
  cslim_config cfg;
  cslim_st *st;
  const cslim_tensor *embed, *lm_head, *final_norm_t;
  float *final_norm; /* [hidden] */
  int fused_experts;     /* mlp.experts.gate_up_proj / down_proj */
  int fused_transposed;  /* [E, 2I, H] / [E, H, I] (transformers 5) rather than [E, H, 2I] / [E, I, H] */
  float *inv_freq;       /* [head_dim / 2] */
  const char *vis_prefix; /* Qwen3-VL: "model.visual." or "visual."; NULL without a vision tower */
  int vis_tf32_conv;      /* round the patch-embedding inputs to TF32 (cslim_vision_set_tf32_conv) */
  /* called after a routed expert's weights are converted to float32 (the
   * quantizer's transforms rotate and rescale them there) */
  cslim_status (*on_convert)(void *ctx, cslim_linear *l);
  void *on_convert_ctx;
  int defer_linears; /* cslim_layer_load leaves dense Linears unconverted (the GPU engine reads their bytes) */
  /* layer cache (generation) */
  uint64_t cache_budget, cache_used;
  cslim_layer **cache;   /* [num_layers] */
};

struct cslim_kv_cache {
  int max_tokens, len;
  int layers, width; /* width = num_kv_heads * head_dim */
  float *k, *v;      /* [layers][max_tokens][width] */
};

/* Label of Linear `lin` ("<module>") in a quantized checkpoint (FLOAT for a float model). */
cslim_qtype cslim_model_linear_type(const cslim_model *m, const char *lin);

/* src/model/layer.c */
/* A Linear reading "<module>.weight" ([out, in], plain layout) and, with
 * load_bias, "<module>.bias"; its weight materialised. */
cslim_status cslim_linear_setup(cslim_model *m, cslim_linear *l, const char *module, int out, int in, int load_bias,
                                int slot);
/* Release a Linear's weight, kernel and bias. */
void cslim_linear_dispose(cslim_model *m, cslim_linear *l);
/* Drop the checkpoint bytes a Linear reads from RSS (the whole tensor, or its expert's slab of a fused
 * [E, R, C] tensor); the page cache keeps them. */
void cslim_linear_release_source(cslim_model *m, const cslim_linear *l);
/* cslim_layer_forward, also copying the layer's output — before the deepstack
 * features are added, as transformers records hidden states — to `output`
 * when not NULL. */
cslim_status cslim_layer_forward_ex(cslim_model *m, cslim_layer *l, cslim_acts *a, const cslim_hooks *hooks,
                                    cslim_kv_cache *kv, float *output);

/* Run layer l with hooks for what they observe, leaving a->h as it was
 * (calibration and smoothing statistics passes). */
cslim_status cslim_layer_observe(cslim_model *m, cslim_layer *l, cslim_acts *a, const cslim_hooks *hooks);

/* src/model/ops.c */
void cslim_rmsnorm_rows(const float *x, int rows, int n, const float *w, float eps, float *y);
void cslim_silu_mul(float *g, const float *u, size_t n); /* g = silu(g) * u */
void cslim_add_inplace(float *a, const float *b, size_t n);
void cslim_add_bias_rows(float *x, int rows, int n, const float *b); /* x[r][:] += b */
cslim_status cslim_load_vector(cslim_model *m, const char *name, int n, float **out);
void cslim_layernorm_rows(const float *x, int rows, int n, const float *w, const float *b, float eps, float *y);
void cslim_gelu_tanh(float *x, size_t n); /* gelu_pytorch_tanh, in place */
void cslim_gelu_erf(float *x, size_t n);  /* exact GELU, in place */

/* src/model/rope.c */
/* inv_freq[i] = 1 / theta^(2i / dim), i < dim/2, in float32, then rounded to
 * the checkpoint's dtype: transformers keeps it in a floating buffer that a
 * model.to(bfloat16) rounds, and the references are computed that way. */
void cslim_rope_inv_freq(double theta, int dim, cslim_dtype dt, float *inv);
/* cos/sin for every row and frequency: [rows][head_dim/2] each. */
cslim_status cslim_rope_tables(const cslim_model *m, const int32_t *pos, int total, int rows0, int rows,
                               float *cos_t, float *sin_t);
/* Rotate rows of x ([rows][n_heads * head_dim]) in place. */
void cslim_rope_apply(float *x, int rows, int n_heads, int head_dim, const float *cos_t,
                      const float *sin_t);

/* src/model/attention.c */
/* Causal attention of nq query rows (absolute positions past..past+nq-1 of
 * one sequence) over nk = past + nq key rows. q: [nq][Hq*D], k/v: [nk][Hkv*D],
 * out: [nq][Hq*D]. */
cslim_status cslim_attention(const float *q, const float *k, const float *v, int nq, int nk, int past,
                             int n_heads, int n_kv_heads, int head_dim, float *out);
/* Bidirectional attention of n rows over themselves (vision tower). */
cslim_status cslim_attention_full(const float *q, const float *k, const float *v, int n, int n_heads,
                                  int n_kv_heads, int head_dim, float *out);

/* src/model/repro_gemm.c: C = alpha * A·B (B[j][t] when trans_b, else B[t][j]) with every element one ordered
 * chain of fmas (model/repro.h): the same bits on any machine, thread count and the GPU engine. C [m][ldc],
 * A [m][lda]; threads: 1 inside a parallel region. Fails only for want of memory. */
cslim_status cslim_gemm_ordered(int trans_b, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                                int ldb, float *C, int ldc, int threads);

/* src/model/moe.c */
cslim_status cslim_moe_forward(cslim_model *m, cslim_layer *l, const float *x, int rows, float *out,
                               const cslim_hooks *hooks);

#endif
