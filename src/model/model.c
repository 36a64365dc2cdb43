/* Opening a model: config, checkpoint, and a check that every tensor the
 * forward pass needs is present with the shape the config implies. Also the
 * blocks outside the decoder layers: embedding, final norm, lm_head. */
#include "model/model_internal.h"

#include "cslim/inspect.h"
#include "quant/qcheckpoint.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cslim_model_tensor_name(const cslim_model *m, const char *rest, char *buf, size_t cap) {
  snprintf(buf, cap, "%s%s", m->cfg.text_prefix, rest);
}

const cslim_config *cslim_model_config(const cslim_model *m) { return &m->cfg; }
cslim_st *cslim_model_checkpoint(cslim_model *m) { return m->st; }
const char *cslim_model_path(const cslim_model *m) { return m->path; }
int cslim_model_is_quantized(const cslim_model *m) { return m->qdesc != NULL; }

cslim_qtype cslim_model_linear_type(const cslim_model *m, const char *lin) {
  cslim_qtype t = CSLIM_QT_FLOAT;
  if (m->qdesc) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", lin);
    if (cslim_qdesc_label(m->qdesc, name, &t) != 0) t = CSLIM_QT_FLOAT;
  }
  return t;
}

/* ---- validation ---------------------------------------------------------------- */

static int shape_is(const cslim_tensor *t, int nd, int64_t a, int64_t b, int64_t c) {
  if (t->ndim != nd) return 0;
  int64_t want[3] = {a, b, c};
  for (int i = 0; i < nd; i++)
    if (t->shape[i] != want[i]) return 0;
  return 1;
}

static cslim_status need(cslim_model *m, const char *name, int nd, int64_t a, int64_t b, int64_t c,
                         const cslim_tensor **out) {
  const cslim_tensor *t = cslim_st_find(m->st, name);
  if (!t) return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' is missing", m->path, name);
  if (!cslim_dtype_is_float(t->dtype))
    return cslim_error(CSLIM_ERR_UNSUPPORTED,
                       "%s: tensor '%s' is %s, not a float type (a quantized checkpoint?)", m->path,
                       name, cslim_dtype_name(t->dtype));
  if (!shape_is(t, nd, a, b, c)) {
    char got[96], want[96];
    int64_t w[3] = {a, b, c};
    return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' has shape %s; config.json implies %s", m->path,
                       name, cslim_shape_str(t->ndim, t->shape, got, sizeof got),
                       cslim_shape_str(nd, w, want, sizeof want));
  }
  if (out) *out = t;
  return CSLIM_OK;
}

#define TRY(x)                                                                               \
  do {                                                                                       \
    cslim_status rc_ = (x);                                                                  \
    if (rc_) return rc_;                                                                     \
  } while (0)

/* A Linear `lin` of [out, in]: a float weight, or — in a quantized checkpoint —
 * every tensor its label's scheme writes, with the scheme's dtype and shape. */
static cslim_status need_linear(cslim_model *m, const char *lin, int64_t out, int64_t in) {
  char name[256];
  snprintf(name, sizeof name, "%s.weight", lin);
  cslim_qtype t = CSLIM_QT_FLOAT;
  if (m->qdesc && cslim_qdesc_label(m->qdesc, name, &t) != 0)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' has no entry in %s", m->path, name,
                       cslim_qdesc_path(m->qdesc));
  if (t == CSLIM_QT_FLOAT) return need(m, name, 2, out, in, 0, NULL);
  const cslim_scheme *sc = cslim_scheme_get(t);
  int row_chunks = cslim_linear_is_row_parallel(lin) ? 16 : 1;
  for (int i = 0; i < sc->n_tensors; i++) {
    const cslim_scheme_tensor *st = &sc->tensors[i];
    snprintf(name, sizeof name, "%s.%s", lin, st->suffix);
    const cslim_tensor *x = cslim_st_find(m->st, name);
    if (!x && st->per_group_only) continue;
    if (!x) return cslim_error(CSLIM_ERR_FORMAT, "%s: %s linear '%s' lacks '%s'", m->path, sc->label, lin, name);
    int64_t shape[2];
    int nd = cslim_scheme_tensor_shape(st, out, in, 1, row_chunks, shape);
    if (st->shape == CSLIM_SHAPE_NG) continue; /* group count depends on the group size */
    int ok = x->ndim == nd;
    for (int d = 0; ok && d < nd; d++) ok = x->shape[d] == shape[d];
    /* vllm-mindspore's golden-stick layout: the per-tensor input parameters broadcast to [in] */
    if (!ok && st->shape == CSLIM_SHAPE_ONE && x->ndim == 1 && x->shape[0] == in) ok = 1;
    if (!ok) {
      char got[96], want[96];
      return cslim_error(CSLIM_ERR_FORMAT, "%s: '%s' has shape %s; %s expects %s", m->path, name,
                         cslim_shape_str(x->ndim, x->shape, got, sizeof got), sc->label,
                         cslim_shape_str(nd, shape, want, sizeof want));
    }
  }
  return CSLIM_OK;
}

/* The vision tower's tensors (Qwen3-VL): under "model.visual." (Hub) or
 * "visual." (older exports). */
static cslim_status validate_vision(cslim_model *m) {
  const cslim_vision_config *v = &m->cfg.vision;
  const int64_t D = v->hidden_size, NI = v->intermediate_size, M2 = (int64_t)v->spatial_merge_size * v->spatial_merge_size;
  const int64_t PD = (int64_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
  char name[192], lin[160];
  const char *prefixes[2] = {"model.visual.", "visual."};
  m->vis_prefix = NULL;
  for (int i = 0; i < 2 && !m->vis_prefix; i++) {
    snprintf(name, sizeof name, "%spatch_embed.proj.weight", prefixes[i]);
    if (cslim_st_find(m->st, name)) m->vis_prefix = prefixes[i];
  }
  if (!m->vis_prefix)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor 'model.visual.patch_embed.proj.weight' is missing", m->path);
  const char *vp = m->vis_prefix;
  int G = (int)(sqrt((double)v->num_position_embeddings) + 0.5);
  if ((int64_t)G * G != v->num_position_embeddings)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: vision_config.num_position_embeddings %d is not a square", m->path,
                       v->num_position_embeddings);
  const cslim_tensor *pe = cslim_st_find(m->st, name);
  if (pe->numel != D * PD || pe->shape[0] != D || !cslim_dtype_is_float(pe->dtype)) {
    char got[96];
    return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' has shape %s; vision_config implies [%lld, %d, %d, %d, %d]",
                       m->path, name, cslim_shape_str(pe->ndim, pe->shape, got, sizeof got), (long long)D,
                       v->in_channels, v->temporal_patch_size, v->patch_size, v->patch_size);
  }
#define VNEED(n, ...)                                                                          \
  do {                                                                                         \
    snprintf(name, sizeof name, __VA_ARGS__);                                                  \
    TRY(need(m, name, 1, n, 0, 0, NULL));                                                      \
  } while (0)
#define VLIN(o, i, ...)                                                                        \
  do {                                                                                         \
    snprintf(lin, sizeof lin, __VA_ARGS__);                                                    \
    TRY(need_linear(m, lin, o, i));                                                            \
    snprintf(name, sizeof name, "%s.bias", lin);                                               \
    TRY(need(m, name, 1, o, 0, 0, NULL));                                                      \
  } while (0)
  VNEED(D, "%spatch_embed.proj.bias", vp);
  snprintf(name, sizeof name, "%spos_embed.weight", vp);
  TRY(need(m, name, 2, v->num_position_embeddings, D, 0, NULL));
  for (int j = 0; j < v->depth; j++) {
    VNEED(D, "%sblocks.%d.norm1.weight", vp, j);
    VNEED(D, "%sblocks.%d.norm1.bias", vp, j);
    VNEED(D, "%sblocks.%d.norm2.weight", vp, j);
    VNEED(D, "%sblocks.%d.norm2.bias", vp, j);
    VLIN(3 * D, D, "%sblocks.%d.attn.qkv", vp, j);
    VLIN(D, D, "%sblocks.%d.attn.proj", vp, j);
    VLIN(NI, D, "%sblocks.%d.mlp.linear_fc1", vp, j);
    VLIN(D, NI, "%sblocks.%d.mlp.linear_fc2", vp, j);
  }
  for (int k = -1; k < v->n_deepstack; k++) {
    char mp[96];
    if (k < 0) snprintf(mp, sizeof mp, "%smerger", vp);
    else snprintf(mp, sizeof mp, "%sdeepstack_merger_list.%d", vp, k);
    VNEED(k < 0 ? D : D * M2, "%s.norm.weight", mp);
    VNEED(k < 0 ? D : D * M2, "%s.norm.bias", mp);
    VLIN(D * M2, D * M2, "%s.linear_fc1", mp);
    VLIN(m->cfg.vision.out_hidden_size, D * M2, "%s.linear_fc2", mp);
  }
#undef VNEED
#undef VLIN
  if (v->out_hidden_size != m->cfg.text.hidden_size)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: vision_config.out_hidden_size %d differs from the text hidden size %d",
                       m->path, v->out_hidden_size, m->cfg.text.hidden_size);
  for (int k = 0; k < v->n_deepstack; k++)
    if (v->deepstack_indexes[k] < 0 || v->deepstack_indexes[k] >= v->depth)
      return cslim_error(CSLIM_ERR_FORMAT, "%s: deepstack_visual_indexes[%d] = %d is not a block (depth %d)", m->path,
                         k, v->deepstack_indexes[k], v->depth);
  return CSLIM_OK;
}

/* Fused experts: [E, H, 2I] + [E, I, H] (Hub Qwen3-VL-MoE, applied as x·W) or
 * [E, 2I, H] + [E, H, I] (transformers 5). The two tensors' shapes decide;
 * only if both were ambiguous would transformers_version (>= 5: transposed). */
static cslim_status check_fused_experts(cslim_model *m, int layer) {
  const cslim_text_config *t = &m->cfg.text;
  int64_t E = t->num_experts, H = t->hidden_size, NI = t->moe_intermediate_size;
  char gu[192], dn[192], rest[128];
  snprintf(rest, sizeof rest, "layers.%d.mlp.experts.gate_up_proj", layer);
  cslim_model_tensor_name(m, rest, gu, sizeof gu);
  snprintf(rest, sizeof rest, "layers.%d.mlp.experts.down_proj", layer);
  cslim_model_tensor_name(m, rest, dn, sizeof dn);
  const cslim_tensor *a = cslim_st_find(m->st, gu), *b = cslim_st_find(m->st, dn);
  if (!a || !b)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: layer %d has neither per-expert tensors nor both '%s' and '%s'",
                       m->path, layer, gu, dn);
  int a_hub = shape_is(a, 3, E, H, 2 * NI), a_v5 = shape_is(a, 3, E, 2 * NI, H);
  int b_hub = shape_is(b, 3, E, NI, H), b_v5 = shape_is(b, 3, E, H, NI);
  int hub = a_hub && b_hub, v5 = a_v5 && b_v5;
  if (!hub && !v5) {
    char s1[96], s2[96];
    return cslim_error(CSLIM_ERR_FORMAT,
                       "%s: fused experts of layer %d have shapes %s and %s; expected [%lld, %lld, %lld] "
                       "and [%lld, %lld, %lld] (or transposed)",
                       m->path, layer, cslim_shape_str(a->ndim, a->shape, s1, sizeof s1),
                       cslim_shape_str(b->ndim, b->shape, s2, sizeof s2), (long long)E, (long long)H,
                       (long long)(2 * NI), (long long)E, (long long)NI, (long long)H);
  }
  int transposed = hub && v5 ? m->cfg.transformers_major >= 5 : v5;
  if (layer > 0 && transposed != m->fused_transposed)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: fused experts of layer %d are laid out unlike layer 0", m->path,
                       layer);
  m->fused_transposed = transposed;
  if (!cslim_dtype_is_float(a->dtype) || !cslim_dtype_is_float(b->dtype))
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: fused experts of layer %d are not float", m->path, layer);
  return CSLIM_OK;
}

static cslim_status validate(cslim_model *m) {
  const cslim_text_config *t = &m->cfg.text;
  int64_t H = t->hidden_size, D = t->head_dim, Q = (int64_t)t->num_heads * D, KV = (int64_t)t->num_kv_heads * D;
  char name[192], rest[160];
  cslim_model_tensor_name(m, "embed_tokens.weight", name, sizeof name);
  TRY(need(m, name, 2, t->vocab_size, H, 0, &m->embed));
  cslim_model_tensor_name(m, "norm.weight", name, sizeof name);
  TRY(need(m, name, 1, H, 0, 0, &m->final_norm_t));
  if (t->tie_word_embeddings) {
    m->lm_head = m->embed;
  } else {
    TRY(need(m, "lm_head.weight", 2, t->vocab_size, H, 0, &m->lm_head));
  }
  /* per-expert or fused: decided by layer 0's first sparse layer */
  m->fused_experts = -1;
  for (int l = 0; l < t->num_layers; l++) {
#define NEED(fmt, nd, a, b, c)                                                                \
  do {                                                                                        \
    snprintf(rest, sizeof rest, fmt, l);                                                      \
    cslim_model_tensor_name(m, rest, name, sizeof name);                                      \
    TRY(need(m, name, nd, a, b, c, NULL));                                                    \
  } while (0)
#define LIN(fmt, a, b)                                                                        \
  do {                                                                                        \
    snprintf(rest, sizeof rest, fmt, l);                                                      \
    cslim_model_tensor_name(m, rest, name, sizeof name);                                      \
    TRY(need_linear(m, name, a, b));                                                          \
  } while (0)
    NEED("layers.%d.input_layernorm.weight", 1, H, 0, 0);
    NEED("layers.%d.post_attention_layernorm.weight", 1, H, 0, 0);
    LIN("layers.%d.self_attn.q_proj", Q, H);
    LIN("layers.%d.self_attn.k_proj", KV, H);
    LIN("layers.%d.self_attn.v_proj", KV, H);
    LIN("layers.%d.self_attn.o_proj", H, Q);
    NEED("layers.%d.self_attn.q_norm.weight", 1, D, 0, 0);
    NEED("layers.%d.self_attn.k_norm.weight", 1, D, 0, 0);
    if (t->attention_bias) {
      NEED("layers.%d.self_attn.q_proj.bias", 1, Q, 0, 0);
      NEED("layers.%d.self_attn.k_proj.bias", 1, KV, 0, 0);
      NEED("layers.%d.self_attn.v_proj.bias", 1, KV, 0, 0);
      NEED("layers.%d.self_attn.o_proj.bias", 1, H, 0, 0);
    }
    if (!cslim_layer_is_moe(t, l)) {
      int64_t NI = t->intermediate_size;
      LIN("layers.%d.mlp.gate_proj", NI, H);
      LIN("layers.%d.mlp.up_proj", NI, H);
      LIN("layers.%d.mlp.down_proj", H, NI);
      continue;
    }
    int64_t E = t->num_experts, NI = t->moe_intermediate_size;
    LIN("layers.%d.mlp.gate", E, H);
    snprintf(rest, sizeof rest, "layers.%d.mlp.experts.0.gate_proj.weight", l);
    cslim_model_tensor_name(m, rest, name, sizeof name);
    int fused = cslim_st_find(m->st, name) == NULL;
    if (m->fused_experts >= 0 && fused != m->fused_experts)
      return cslim_error(CSLIM_ERR_FORMAT, "%s: layer %d stores its experts unlike the layers before it",
                         m->path, l);
    m->fused_experts = fused;
    if (fused) {
      TRY(check_fused_experts(m, l));
      continue;
    }
    for (int e = 0; e < E; e++) {
      char r2[160];
      snprintf(r2, sizeof r2, "layers.%%d.mlp.experts.%d.gate_proj", e);
      LIN(r2, NI, H);
      snprintf(r2, sizeof r2, "layers.%%d.mlp.experts.%d.up_proj", e);
      LIN(r2, NI, H);
      snprintf(r2, sizeof r2, "layers.%%d.mlp.experts.%d.down_proj", e);
      LIN(r2, H, NI);
    }
#undef NEED
#undef LIN
  }
  if (m->fused_experts < 0) m->fused_experts = 0;
  if (m->cfg.has_vision) TRY(validate_vision(m));
  return CSLIM_OK;
}

/* ---- open / close ------------------------------------------------------------------ */

cslim_status cslim_model_open(const char *dir, cslim_model **out) {
  *out = NULL;
  cslim_model *m = calloc(1, sizeof *m);
  if (!m) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  m->path = strdup(dir);
  cslim_status rc = cslim_config_load(dir, &m->cfg);
  if (!rc) rc = cslim_qdesc_load(dir, &m->qdesc);
  if (!rc) rc = cslim_st_open(dir, &m->st);
  if (!rc) rc = validate(m);
  const cslim_text_config *t = &m->cfg.text;
  if (!rc && t->rope_type != CSLIM_ROPE_DEFAULT)
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: rope_type %s is not implemented in the forward pass yet",
                     dir, t->rope_type == CSLIM_ROPE_YARN ? "yarn" : "linear");
  if (!rc) {
    char name[192];
    cslim_model_tensor_name(m, "norm.weight", name, sizeof name);
    rc = cslim_load_vector(m, name, t->hidden_size, &m->final_norm);
  }
  if (!rc) {
    /* transformers: inv_freq = 1 / base ** (float32(arange(0, D, 2)) / D), in
     * float32 — then rounded to the checkpoint's dtype, because inv_freq is a
     * floating buffer: a model cast to its dtype (model.to(bfloat16)) and back
     * to float32 carries the rounded values, and that is how the reference
     * logits of a bf16 checkpoint are computed (docs/model.md: 5e-4 relative
     * difference in the hidden states otherwise). */
    int half = t->head_dim / 2;
    m->inv_freq = malloc((size_t)half * sizeof(float));
    m->cache = calloc((size_t)t->num_layers, sizeof *m->cache);
    if (!m->inv_freq || !m->cache) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if (!rc) cslim_rope_inv_freq(t->rope_theta, t->head_dim, m->cfg.dtype, m->inv_freq);
  }
  if (rc) {
    cslim_model_close(m);
    return rc;
  }
  *out = m;
  return CSLIM_OK;
}

void cslim_model_close(cslim_model *m) {
  if (!m) return;
  if (m->cache) {
    for (int i = 0; i < m->cfg.text.num_layers; i++)
      if (m->cache[i]) cslim_layer_free(m, m->cache[i]);
    free(m->cache);
  }
  free(m->final_norm);
  free(m->inv_freq);
  cslim_qdesc_free(m->qdesc);
  cslim_st_close(m->st);
  free(m->path);
  free(m);
}

/* ---- layer cache -------------------------------------------------------------------- */

uint64_t cslim_model_layer_bytes(const cslim_model *m, int index) {
  const cslim_text_config *t = &m->cfg.text;
  uint64_t H = (uint64_t)t->hidden_size, D = (uint64_t)t->head_dim;
  uint64_t n = H * D * (uint64_t)(2 * t->num_heads + 2 * t->num_kv_heads);
  if (cslim_layer_is_moe(t, index))
    n += H * (uint64_t)t->num_experts * (1 + 3 * (uint64_t)t->moe_intermediate_size);
  else
    n += 3 * H * (uint64_t)t->intermediate_size;
  return 4 * n;
}

void cslim_model_set_layer_cache(cslim_model *m, uint64_t bytes) { m->cache_budget = bytes; }

cslim_status cslim_model_get_layer(cslim_model *m, int index, cslim_layer **out) {
  if (m->cache[index]) {
    *out = m->cache[index];
    return CSLIM_OK;
  }
  cslim_status rc = cslim_layer_load(m, index, out);
  if (rc) return rc;
  uint64_t b = cslim_model_layer_bytes(m, index);
  if (m->cache_used + b <= m->cache_budget) {
    (*out)->keep_experts = 1;
    m->cache[index] = *out;
    m->cache_used += b;
  }
  return CSLIM_OK;
}

void cslim_model_put_layer(cslim_model *m, cslim_layer *l) {
  if (m->cache[l->index] == l) return;
  cslim_layer_free(m, l);
}

/* ---- embedding ------------------------------------------------------------------------ */

cslim_status cslim_acts_embed(cslim_model *m, const int32_t *ids, const int *lens, int n_seqs, cslim_acts **out) {
  *out = NULL;
  const cslim_text_config *t = &m->cfg.text;
  int total = 0;
  for (int s = 0; s < n_seqs; s++) {
    if (lens[s] <= 0) return cslim_error(CSLIM_ERR_INVALID, "sequence %d is empty", s);
    total += lens[s];
  }
  for (int i = 0; i < total; i++)
    if (ids[i] < 0 || ids[i] >= t->vocab_size)
      return cslim_error(CSLIM_ERR_INVALID, "token id %d at position %d is outside the vocabulary (%d)", ids[i], i,
                         t->vocab_size);
  cslim_acts *a = calloc(1, sizeof *a);
  if (!a) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  a->n_seqs = n_seqs;
  a->total = total;
  a->hidden = t->hidden_size;
  a->seq_start = malloc((size_t)(n_seqs + 1) * sizeof(int));
  a->h = malloc((size_t)total * (size_t)t->hidden_size * sizeof(float));
  a->ids = malloc((size_t)total * sizeof(int32_t));
  a->pos = malloc(3 * (size_t)total * sizeof(int32_t));
  if (!a->seq_start || !a->h || !a->ids || !a->pos) {
    cslim_acts_free(a);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for %d tokens", total);
  }
  memcpy(a->ids, ids, (size_t)total * sizeof(int32_t));
  int o = 0;
  for (int s = 0; s < n_seqs; s++) {
    a->seq_start[s] = o;
    for (int i = 0; i < lens[s]; i++) a->pos[o + i] = a->pos[total + o + i] = a->pos[2 * total + o + i] = i;
    o += lens[s];
  }
  a->seq_start[n_seqs] = o;
  const cslim_tensor *e = m->embed;
  size_t es = cslim_dtype_size(e->dtype), H = (size_t)t->hidden_size;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < total; i++)
    cslim_convert_to_f32(e->dtype, (const char *)e->data + (size_t)ids[i] * H * es, a->h + (size_t)i * H, H);
  /* scattered rows fault in their neighbourhood (fault-around, readahead): drop
   * the table's pages again, or a 150k-row embedding stays resident */
  cslim_st_release(m->st, e);
  *out = a;
  return CSLIM_OK;
}

void cslim_acts_free(cslim_acts *a) {
  if (!a) return;
  free(a->seq_start);
  free(a->h);
  free(a->ids);
  free(a->pos);
  free(a->visual);
  for (int i = 0; i < a->n_deepstack; i++) free(a->deepstack[i]);
  free(a->deepstack);
  free(a);
}

/* ---- head ---------------------------------------------------------------------------------- */

cslim_status cslim_model_final_norm(cslim_model *m, const float *h, int rows, float *out) {
  cslim_rmsnorm_rows(h, rows, m->cfg.text.hidden_size, m->final_norm, (float)m->cfg.text.rms_norm_eps, out);
  return CSLIM_OK;
}

/* lm_head is converted in blocks of rows so that a 150k x 4096 head never
 * needs 2.5 GB of float32 at once. */
#define HEAD_BLOCK 8192

typedef cslim_status (*head_block_fn)(void *ctx, const float *logits, int rows, int v0, int nv);

static cslim_status head_blocks(cslim_model *m, const float *x, int rows, head_block_fn fn, void *ctx) {
  const cslim_tensor *w = m->lm_head;
  int V = m->cfg.text.vocab_size, H = m->cfg.text.hidden_size;
  int bv = V < HEAD_BLOCK ? V : HEAD_BLOCK;
  float *wb = malloc((size_t)bv * (size_t)H * sizeof(float));
  float *lb = malloc((size_t)rows * (size_t)bv * sizeof(float));
  if (!wb || !lb) {
    free(wb);
    free(lb);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for the lm_head");
  }
  size_t es = cslim_dtype_size(w->dtype);
  cslim_st_note_read(m->st, w);
  cslim_status rc = CSLIM_OK;
  for (int v0 = 0; v0 < V && !rc; v0 += bv) {
    int nv = V - v0 < bv ? V - v0 : bv;
    cslim_convert_to_f32_mt(w->dtype, (const char *)w->data + (size_t)v0 * (size_t)H * es, wb, (size_t)nv * (size_t)H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nv, H, 1.0f, x, H, wb, H, 0.0f, lb, nv);
    rc = fn(ctx, lb, rows, v0, nv);
  }
  free(wb);
  free(lb);
  return rc;
}

typedef struct logits_ctx {
  float *out;
  int V;
} logits_ctx;

static cslim_status copy_block(void *ctx, const float *l, int rows, int v0, int nv) {
  logits_ctx *c = ctx;
  for (int r = 0; r < rows; r++)
    memcpy(c->out + (size_t)r * (size_t)c->V + (size_t)v0, l + (size_t)r * (size_t)nv, (size_t)nv * sizeof(float));
  return CSLIM_OK;
}

cslim_status cslim_model_logits(cslim_model *m, const float *normed, int rows, float *logits) {
  logits_ctx c = {logits, m->cfg.text.vocab_size};
  return head_blocks(m, normed, rows, copy_block, &c);
}

typedef struct nll_ctx {
  const int32_t *targets;
  double *max, *sum, *target_logit;
} nll_ctx;

/* Online log-sum-exp per row across vocabulary blocks. */
static cslim_status nll_block(void *ctx, const float *l, int rows, int v0, int nv) {
  nll_ctx *c = ctx;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const float *x = l + (size_t)r * (size_t)nv;
    double mx = c->max[r];
    for (int j = 0; j < nv; j++) mx = x[j] > mx ? x[j] : mx;
    double s = c->sum[r] * exp(c->max[r] - mx);
    for (int j = 0; j < nv; j++) s += exp((double)x[j] - mx);
    c->max[r] = mx;
    c->sum[r] = s;
    int tg = c->targets[r];
    if (tg >= v0 && tg < v0 + nv) c->target_logit[r] = x[tg - v0];
  }
  return CSLIM_OK;
}

cslim_status cslim_model_nll(cslim_model *m, const float *normed, int rows, const int32_t *targets,
                             double *nll_sum, int64_t *count) {
  double *buf = malloc(3 * (size_t)rows * sizeof(double));
  if (!buf) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  nll_ctx c = {targets, buf, buf + rows, buf + 2 * rows};
  for (int r = 0; r < rows; r++) {
    c.max[r] = -INFINITY;
    c.sum[r] = 0;
    c.target_logit[r] = 0;
  }
  cslim_status rc = head_blocks(m, normed, rows, nll_block, &c);
  if (!rc) {
    double s = 0;
    int64_t n = 0;
    for (int r = 0; r < rows; r++) {
      if (targets[r] < 0) continue;
      s += (c.max[r] + log(c.sum[r])) - c.target_logit[r];
      n++;
    }
    *nll_sum += s;
    *count += n;
  }
  free(buf);
  return rc;
}

/* ---- whole-model forward ---------------------------------------------------------------------- */

cslim_status cslim_model_forward(cslim_model *m, cslim_acts *a, float **hidden_out, const cslim_hooks *hooks) {
  const cslim_text_config *t = &m->cfg.text;
  size_t n = (size_t)a->total * (size_t)a->hidden;
  if (hidden_out) memcpy(hidden_out[0], a->h, n * sizeof(float));
  for (int l = 0; l < t->num_layers; l++) {
    if (cslim_interrupted()) return cslim_error(CSLIM_ERR_INTERRUPTED, "interrupted");
    cslim_layer *layer;
    cslim_status rc = cslim_model_get_layer(m, l, &layer);
    if (rc) return rc;
    float *out = hidden_out && l + 1 < t->num_layers ? hidden_out[l + 1] : NULL;
    rc = cslim_layer_forward_ex(m, layer, a, hooks, NULL, out);
    cslim_model_put_layer(m, layer);
    if (rc) return rc;
  }
  float *last = hidden_out ? hidden_out[t->num_layers] : a->h;
  return cslim_model_final_norm(m, a->h, a->total, last);
}
