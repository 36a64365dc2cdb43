/* A decoder layer: loading its weights from the checkpoint (float32), the
 * Linear primitive, and the layer's forward pass:
 *
 *   h = x + o_proj(attention(rope(q_norm(q(n1))), rope(k_norm(k(n1))), v(n1)))   n1 = input_layernorm(x)
 *   y = h + mlp(post_attention_layernorm(h))                                   mlp = SwiGLU or MoE
 *
 * Attention runs per group of whole sequences; the MLP in row chunks (the
 * MoE block sees all rows at once so that each expert is converted once). */
#include "model/model_internal.h"
#include "cslim/backend.h"
#include "quant/qcheckpoint.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per attention group, and floats per dense-MLP chunk: bound the
 * intermediate buffers (64 MB of MLP activations per chunk: 2048 rows of a
 * 3072-wide MLP, 320 rows of Qwen3-32B's 25600-wide one) while keeping the
 * GEMMs large enough to run at the BLAS peak. */
#define MAX_ROWS_ATTN 2048
#define MLP_BUDGET_FLOATS (1u << 24)

/* ---- linears ------------------------------------------------------------------------ */

static cslim_status linear_gemm(const cslim_linear *l, const float *x, int rows, float *y) {
  if (!l->w) return cslim_error(CSLIM_ERR_INVALID, "%s: weight not loaded", l->name);
  /* the ordered product (model/repro.h), the same bits on every machine: on the GPU with --device cuda when the
   * layer engine does not run, else on the CPU */
  if (!cslim_gpu_gemm_nt(x, l->w, rows, l->out, l->in, y)) {
    cslim_status rc = cslim_gemm_ordered(1, rows, l->out, l->in, 1.0f, x, l->in, l->w, l->in, y, l->out,
                                         omp_get_max_threads());
    if (rc) return rc;
  }
  if (l->b) {
#pragma omp parallel for schedule(static) if (rows > 16)
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < l->out; o++) y[(size_t)r * (size_t)l->out + (size_t)o] += l->b[o];
  }
  return CSLIM_OK;
}

cslim_status cslim_linear_forward(const cslim_linear *l, const float *x, int rows, float *y) {
  if (rows == 0) return CSLIM_OK;
  return l->forward ? l->forward(l, x, rows, y) : linear_gemm(l, x, rows, y);
}

void cslim_linear_release_source(cslim_model *m, const cslim_linear *l) {
  const cslim_tensor *t = l->src;
  if (!t) return;
  if (l->layout == CSLIM_W_PLAIN) {
    cslim_st_release(m->st, t);
    return;
  }
  const uint64_t slab = (uint64_t)t->shape[1] * (uint64_t)t->shape[2] * cslim_dtype_size(t->dtype);
  cslim_st_release_range(m->st, t, (uint64_t)l->expert * slab, slab);
}

/* A Linear of a quantized checkpoint: the engine's integer kernel. */
static cslim_status materialize_quantized(cslim_model *m, cslim_linear *l, cslim_qtype qt) {
  cslim_qlinear *q;
  cslim_status rc = cslim_qlinear_from_checkpoint(m->st, l->name, qt, l->out, l->in, m->cfg.dtype, &q);
  if (rc) return cslim_error_context("%s", m->path);
  char bn[256];
  cslim_qtype bt;
  snprintf(bn, sizeof bn, "%s.bias", l->name);
  q->bias_after = m->qdesc && cslim_qdesc_label(m->qdesc, bn, &bt) == 0 && bt == qt; /* vllm-mindspore's layout */
  q->transient = l->expert >= 0; /* experts: no float copy of the codes kept between calls */
  l->forward = cslim_qlinear_forward;
  l->impl = q;
  l->impl_free = (void (*)(void *))cslim_qlinear_free;
  cslim_linear_release_source(m, l);
  return CSLIM_OK;
}

cslim_status cslim_linear_materialize(cslim_model *m, cslim_linear *l) {
  if (l->w || l->forward) return CSLIM_OK;
  cslim_qtype qt = cslim_model_linear_type(m, l->name);
  if (qt != CSLIM_QT_FLOAT) return materialize_quantized(m, l, qt);
  const cslim_tensor *t = l->src;
  size_t n = (size_t)l->out * (size_t)l->in;
  float *w = malloc(n * sizeof(float));
  if (!w) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for %s (%d x %d)", l->name, l->out, l->in);
  size_t es = cslim_dtype_size(t->dtype);
  if (l->layout != CSLIM_W_PLAIN) cslim_st_note_read(m->st, t);
  if (l->layout == CSLIM_W_PLAIN) {
    cslim_st_read_f32(m->st, t, w);
  } else if (l->layout == CSLIM_W_ROWS) {
    /* [E, R, in]: rows row0 .. row0+out of expert e are contiguous */
    size_t off = ((size_t)l->expert * (size_t)t->shape[1] + (size_t)l->row0) * (size_t)l->in;
    cslim_convert_to_f32_mt(t->dtype, (const char *)t->data + off * es, w, n);
  } else {
    /* [E, in, C]: w[o][i] = T[e][i][row0 + o] */
    size_t C = (size_t)t->shape[2];
    const char *base = (const char *)t->data + (size_t)l->expert * (size_t)l->in * C * es;
    float *tmp = malloc((size_t)l->in * C * sizeof(float));
    if (!tmp) {
      free(w);
      return cslim_error(CSLIM_ERR_NOMEM, "out of memory for %s", l->name);
    }
    cslim_convert_to_f32_mt(t->dtype, base, tmp, (size_t)l->in * C);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < l->out; o++)
      for (int i = 0; i < l->in; i++) w[(size_t)o * (size_t)l->in + (size_t)i] = tmp[(size_t)i * C + (size_t)l->row0 + (size_t)o];
    free(tmp);
  }
  l->w = w;
  if (l->expert >= 0 && m->on_convert) {
    cslim_status rc = m->on_convert(m->on_convert_ctx, l);
    if (rc) {
      free(l->w);
      l->w = NULL;
      return rc;
    }
  }
  /* the bf16 pages are not needed any more: keep RSS at the float32 copy */
  cslim_linear_release_source(m, l);
  return CSLIM_OK;
}

void cslim_linear_release(cslim_model *m, cslim_linear *l) {
  free(l->w);
  l->w = NULL;
  if (l->impl_free && l->impl) { /* model-owned kernel (quantized checkpoint) */
    l->impl_free(l->impl);
    l->impl = NULL;
    l->impl_free = NULL;
    l->forward = NULL;
  }
  cslim_linear_release_source(m, l);
}

/* ---- loading -------------------------------------------------------------------------- */

cslim_status cslim_linear_setup(cslim_model *m, cslim_linear *l, const char *module, int out, int in, int load_bias,
                                int slot) {
  char name[192];
  memset(l, 0, sizeof *l);
  snprintf(l->name, sizeof l->name, "%s", module);
  snprintf(name, sizeof name, "%s.weight", l->name);
  l->src = cslim_st_find(m->st, name);
  if (!l->src) return cslim_error(CSLIM_ERR_FORMAT, "%s: tensor '%s' is missing", m->path, name);
  l->in = in;
  l->out = out;
  l->layout = CSLIM_W_PLAIN;
  l->expert = -1;
  l->slot = slot;
  snprintf(name, sizeof name, "%s.bias", l->name);
  if (load_bias || cslim_st_find(m->st, name)) {
    cslim_status rc = cslim_load_vector(m, name, out, &l->b);
    if (rc) return rc;
  }
  return m->defer_linears ? CSLIM_OK : cslim_linear_materialize(m, l);
}

static cslim_status setup_linear(cslim_model *m, cslim_linear *l, int layer, const char *what, int out, int in,
                                 int load_bias, int slot) {
  char rest[160], module[128];
  snprintf(rest, sizeof rest, "layers.%d.%s", layer, what);
  cslim_model_tensor_name(m, rest, module, sizeof module);
  return cslim_linear_setup(m, l, module, out, in, load_bias, slot);
}

static cslim_status setup_experts(cslim_model *m, cslim_layer *l) {
  const cslim_text_config *t = &m->cfg.text;
  int E = t->num_experts, NI = t->moe_intermediate_size, H = t->hidden_size;
  l->n_experts = E;
  l->experts = calloc(3 * (size_t)E, sizeof *l->experts);
  if (!l->experts) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  static const char *names[3] = {"gate_proj", "up_proj", "down_proj"};
  const cslim_tensor *gu = NULL, *dn = NULL;
  if (m->fused_experts) {
    char rest[160], name[192];
    snprintf(rest, sizeof rest, "layers.%d.mlp.experts.gate_up_proj", l->index);
    cslim_model_tensor_name(m, rest, name, sizeof name);
    gu = cslim_st_find(m->st, name);
    snprintf(rest, sizeof rest, "layers.%d.mlp.experts.down_proj", l->index);
    cslim_model_tensor_name(m, rest, name, sizeof name);
    dn = cslim_st_find(m->st, name);
  }
  for (int e = 0; e < E; e++) {
    for (int k = 0; k < 3; k++) {
      cslim_linear *x = &l->experts[3 * e + k];
      char rest[160];
      snprintf(rest, sizeof rest, "layers.%d.mlp.experts.%d.%s", l->index, e, names[k]);
      cslim_model_tensor_name(m, rest, x->name, sizeof x->name);
      x->in = k == 2 ? NI : H;
      x->out = k == 2 ? H : NI;
      x->expert = e;
      x->slot = 8 + 3 * e + k;
      if (!m->fused_experts) {
        char name[192];
        snprintf(name, sizeof name, "%s.weight", x->name);
        x->src = cslim_st_find(m->st, name);
        x->layout = CSLIM_W_PLAIN;
        x->expert = e;
        continue;
      }
      x->src = k == 2 ? dn : gu;
      x->row0 = k == 1 ? NI : 0; /* gate first, up second */
      /* transformers 5 [E, 2I, H] / [E, H, I] hold [out, in] rows; the Hub's
       * [E, H, 2I] / [E, I, H] are applied as x·W: take columns, transposed */
      x->layout = m->fused_transposed ? CSLIM_W_ROWS : CSLIM_W_COLS_T;
    }
  }
  return CSLIM_OK;
}

void cslim_layer_prefetch(cslim_model *m, int index) {
  if (index < 0 || index >= m->cfg.text.num_layers) return;
  char pre[160], name[192];
  snprintf(pre, sizeof pre, "layers.%d.", index);
  cslim_model_tensor_name(m, pre, name, sizeof name);
  size_t k = strlen(name);
  for (size_t i = 0; i < cslim_st_count(m->st); i++) {
    const cslim_tensor *t = cslim_st_at(m->st, i);
    if (!strncmp(t->name, name, k)) cslim_st_prefetch(m->st, t);
  }
}

cslim_status cslim_layer_load(cslim_model *m, int index, cslim_layer **out) {
  *out = NULL;
  const cslim_text_config *t = &m->cfg.text;
  if (index < 0 || index >= t->num_layers)
    return cslim_error(CSLIM_ERR_INVALID, "layer %d out of range (0..%d)", index, t->num_layers - 1);
  cslim_layer *l = calloc(1, sizeof *l);
  if (!l) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  l->index = index;
  l->is_moe = cslim_layer_is_moe(t, index);
  int H = t->hidden_size, D = t->head_dim, Q = t->num_heads * D, KV = t->num_kv_heads * D;
  char rest[160], name[192];
  cslim_status rc = CSLIM_OK;
#define VEC(dst, what, n)                                                                      \
  if (!rc) {                                                                                   \
    snprintf(rest, sizeof rest, "layers.%d.%s", index, what);                                  \
    cslim_model_tensor_name(m, rest, name, sizeof name);                                       \
    rc = cslim_load_vector(m, name, n, &l->dst);                                               \
  }
  VEC(input_norm, "input_layernorm.weight", H)
  VEC(post_norm, "post_attention_layernorm.weight", H)
  VEC(q_norm, "self_attn.q_norm.weight", D)
  VEC(k_norm, "self_attn.k_norm.weight", D)
#undef VEC
  /* norm biases: written by smoothing with a shift (spec §3.9) */
  static const char *nb[2] = {"input_layernorm.bias", "post_attention_layernorm.bias"};
  for (int i = 0; i < 2 && !rc; i++) {
    snprintf(rest, sizeof rest, "layers.%d.%s", index, nb[i]);
    cslim_model_tensor_name(m, rest, name, sizeof name);
    if (cslim_st_find(m->st, name)) rc = cslim_load_vector(m, name, H, i ? &l->post_norm_b : &l->input_norm_b);
  }
  int ab = t->attention_bias;
  if (!rc) rc = setup_linear(m, &l->q, index, "self_attn.q_proj", Q, H, ab, 0);
  if (!rc) rc = setup_linear(m, &l->k, index, "self_attn.k_proj", KV, H, ab, 1);
  if (!rc) rc = setup_linear(m, &l->v, index, "self_attn.v_proj", KV, H, ab, 2);
  if (!rc) rc = setup_linear(m, &l->o, index, "self_attn.o_proj", H, Q, ab, 3);
  if (!rc && !l->is_moe) {
    int NI = t->intermediate_size;
    rc = setup_linear(m, &l->gate, index, "mlp.gate_proj", NI, H, 0, 4);
    if (!rc) rc = setup_linear(m, &l->up, index, "mlp.up_proj", NI, H, 0, 5);
    if (!rc) rc = setup_linear(m, &l->down, index, "mlp.down_proj", H, NI, 0, 6);
  } else if (!rc) {
    rc = setup_linear(m, &l->router, index, "mlp.gate", t->num_experts, H, 0, 7);
    if (!rc) rc = setup_experts(m, l);
  }
  if (rc) {
    cslim_layer_free(m, l);
    return rc;
  }
  *out = l;
  return CSLIM_OK;
}

void cslim_linear_dispose(cslim_model *m, cslim_linear *l) {
  if (l->w || l->src || l->impl) cslim_linear_release(m, l);
  free(l->b);
  l->b = NULL;
}

void cslim_layer_free(cslim_model *m, cslim_layer *l) {
  if (!l) return;
  free(l->input_norm);
  free(l->post_norm);
  free(l->input_norm_b);
  free(l->post_norm_b);
  free(l->q_norm);
  free(l->k_norm);
  cslim_linear *all[] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down, &l->router};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cslim_linear_dispose(m, all[i]);
  for (int i = 0; i < 3 * l->n_experts; i++) cslim_linear_dispose(m, &l->experts[i]);
  free(l->experts);
  free(l);
}

/* ---- hooks ---------------------------------------------------------------------------- */

static cslim_status call_hook(const cslim_hooks *h, int layer, int expert, cslim_input_kind kind, float *x,
                              int rows, cslim_linear *a, cslim_linear *b, cslim_linear *c) {
  if (!h || !h->linear_input || rows == 0) return CSLIM_OK;
  cslim_linear_group g = {layer, expert, kind, 0, {a, b, c}};
  g.n = c ? 3 : b ? 2 : 1;
  return h->linear_input(h->ctx, &g, x, rows);
}

/* ---- attention block -------------------------------------------------------------------- */

typedef struct attn_bufs {
  float *xn, *q, *k, *v, *ctx, *o, *cos_t, *sin_t;
} attn_bufs;

static void attn_free(attn_bufs *b) {
  free(b->xn);
  free(b->q);
  free(b->k);
  free(b->v);
  free(b->ctx);
  free(b->o);
  free(b->cos_t);
  free(b->sin_t);
}

static cslim_status attn_alloc(const cslim_text_config *t, int rows, attn_bufs *b) {
  size_t r = (size_t)rows, H = (size_t)t->hidden_size, D = (size_t)t->head_dim;
  size_t Q = (size_t)t->num_heads * D, KV = (size_t)t->num_kv_heads * D;
  memset(b, 0, sizeof *b);
  b->xn = malloc(r * H * sizeof(float));
  b->q = malloc(r * Q * sizeof(float));
  b->k = malloc(r * KV * sizeof(float));
  b->v = malloc(r * KV * sizeof(float));
  b->ctx = malloc(r * Q * sizeof(float));
  b->o = malloc(r * H * sizeof(float));
  b->cos_t = malloc(r * D / 2 * sizeof(float));
  b->sin_t = malloc(r * D / 2 * sizeof(float));
  if (!b->xn || !b->q || !b->k || !b->v || !b->ctx || !b->o || !b->cos_t || !b->sin_t) {
    attn_free(b);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for attention over %d rows", rows);
  }
  return CSLIM_OK;
}

/* Attention over rows [r0, r0+rows) holding whole sequences s0..s1-1. */
static cslim_status attention_block(cslim_model *m, cslim_layer *l, cslim_acts *a, int s0, int s1,
                                    const cslim_hooks *hooks, cslim_kv_cache *kv, attn_bufs *b) {
  const cslim_text_config *t = &m->cfg.text;
  const int H = t->hidden_size, D = t->head_dim, nh = t->num_heads, nkv = t->num_kv_heads;
  const int r0 = a->seq_start[s0], rows = a->seq_start[s1] - r0;
  const float eps = (float)t->rms_norm_eps;
  float *h = a->h + (size_t)r0 * (size_t)H;
  cslim_status rc;

  cslim_rmsnorm_rows(h, rows, H, l->input_norm, eps, b->xn);
  if (l->input_norm_b) cslim_add_bias_rows(b->xn, rows, H, l->input_norm_b);
  if ((rc = call_hook(hooks, l->index, -1, CSLIM_IN_QKV, b->xn, rows, &l->q, &l->k, &l->v))) return rc;
  if ((rc = cslim_linear_forward(&l->q, b->xn, rows, b->q))) return rc;
  if ((rc = cslim_linear_forward(&l->k, b->xn, rows, b->k))) return rc;
  if ((rc = cslim_linear_forward(&l->v, b->xn, rows, b->v))) return rc;
  /* per-head RMSNorm on q and k, before RoPE */
  cslim_rmsnorm_rows(b->q, rows * nh, D, l->q_norm, eps, b->q);
  cslim_rmsnorm_rows(b->k, rows * nkv, D, l->k_norm, eps, b->k);
  if ((rc = cslim_rope_tables(m, a->pos, a->total, r0, rows, b->cos_t, b->sin_t))) return rc;
  cslim_rope_apply(b->q, rows, nh, D, b->cos_t, b->sin_t);
  cslim_rope_apply(b->k, rows, nkv, D, b->cos_t, b->sin_t);

  for (int s = s0; s < s1; s++) {
    int off = a->seq_start[s] - r0, n = a->seq_start[s + 1] - a->seq_start[s];
    const float *k = b->k + (size_t)off * (size_t)(nkv * D), *v = b->v + (size_t)off * (size_t)(nkv * D);
    int past = 0;
    if (kv) {
      size_t W = (size_t)kv->width;
      past = kv->len;
      if (past + n > kv->max_tokens)
        return cslim_error(CSLIM_ERR_INVALID, "KV cache full (%d tokens)", kv->max_tokens);
      float *kc = kv->k + ((size_t)l->index * (size_t)kv->max_tokens) * W;
      float *vc = kv->v + ((size_t)l->index * (size_t)kv->max_tokens) * W;
      memcpy(kc + (size_t)past * W, k, (size_t)n * W * sizeof(float));
      memcpy(vc + (size_t)past * W, v, (size_t)n * W * sizeof(float));
      k = kc;
      v = vc;
    }
    rc = cslim_attention(b->q + (size_t)off * (size_t)(nh * D), k, v, n, past + n, past, nh, nkv, D,
                         b->ctx + (size_t)off * (size_t)(nh * D));
    if (rc) return rc;
  }
  if ((rc = call_hook(hooks, l->index, -1, CSLIM_IN_O, b->ctx, rows, &l->o, NULL, NULL))) return rc;
  if ((rc = cslim_linear_forward(&l->o, b->ctx, rows, b->o))) return rc;
  cslim_add_inplace(h, b->o, (size_t)rows * (size_t)H);
  return CSLIM_OK;
}

/* ---- MLP block ---------------------------------------------------------------------------- */

static cslim_status dense_mlp(cslim_model *m, cslim_layer *l, float *h, int rows, const cslim_hooks *hooks) {
  const cslim_text_config *t = &m->cfg.text;
  const int H = t->hidden_size, NI = t->intermediate_size;
  size_t chunk = MLP_BUDGET_FLOATS / (2 * (size_t)NI + 2 * (size_t)H);
  if (chunk < 64) chunk = 64;
  if (chunk > (size_t)rows) chunk = (size_t)rows;
  float *xn = malloc(chunk * (size_t)H * sizeof(float));
  float *g = malloc(chunk * (size_t)NI * sizeof(float));
  float *u = malloc(chunk * (size_t)NI * sizeof(float));
  float *y = malloc(chunk * (size_t)H * sizeof(float));
  cslim_status rc = CSLIM_OK;
  if (!xn || !g || !u || !y) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for the MLP");
  for (size_t r0 = 0; !rc && r0 < (size_t)rows; r0 += chunk) {
    int n = (int)((size_t)rows - r0 < chunk ? (size_t)rows - r0 : chunk);
    float *hr = h + r0 * (size_t)H;
    cslim_rmsnorm_rows(hr, n, H, l->post_norm, (float)t->rms_norm_eps, xn);
    if (l->post_norm_b) cslim_add_bias_rows(xn, n, H, l->post_norm_b);
    if ((rc = call_hook(hooks, l->index, -1, CSLIM_IN_GATE_UP, xn, n, &l->gate, &l->up, NULL))) break;
    if ((rc = cslim_linear_forward(&l->gate, xn, n, g))) break;
    if ((rc = cslim_linear_forward(&l->up, xn, n, u))) break;
    cslim_silu_mul(g, u, (size_t)n * (size_t)NI);
    if ((rc = call_hook(hooks, l->index, -1, CSLIM_IN_DOWN, g, n, &l->down, NULL, NULL))) break;
    if ((rc = cslim_linear_forward(&l->down, g, n, y))) break;
    cslim_add_inplace(hr, y, (size_t)n * (size_t)H);
  }
  free(xn);
  free(g);
  free(u);
  free(y);
  return rc;
}

static cslim_status moe_mlp(cslim_model *m, cslim_layer *l, float *h, int rows, const cslim_hooks *hooks) {
  const int H = m->cfg.text.hidden_size;
  float *xn = malloc((size_t)rows * (size_t)H * sizeof(float));
  float *y = malloc((size_t)rows * (size_t)H * sizeof(float));
  cslim_status rc = CSLIM_OK;
  if (!xn || !y) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for the MoE block");
  if (!rc) {
    cslim_rmsnorm_rows(h, rows, H, l->post_norm, (float)m->cfg.text.rms_norm_eps, xn);
    if (l->post_norm_b) cslim_add_bias_rows(xn, rows, H, l->post_norm_b);
    rc = cslim_moe_forward(m, l, xn, rows, y, hooks);
  }
  if (!rc) cslim_add_inplace(h, y, (size_t)rows * (size_t)H);
  free(xn);
  free(y);
  return rc;
}

/* ---- the layer -------------------------------------------------------------------------------- */

cslim_status cslim_layer_forward_ex(cslim_model *m, cslim_layer *l, cslim_acts *a, const cslim_hooks *hooks,
                                    cslim_kv_cache *kv, float *output) {
  const cslim_text_config *t = &m->cfg.text;
  if (kv && a->n_seqs != 1) return cslim_error(CSLIM_ERR_INVALID, "a KV cache serves a single sequence");
  /* attention: groups of whole sequences of at most MAX_ROWS_ATTN rows */
  int max_rows = 0;
  for (int s = 0; s < a->n_seqs; s++) {
    int n = a->seq_start[s + 1] - a->seq_start[s];
    if (n > max_rows) max_rows = n;
  }
  int cap = max_rows > MAX_ROWS_ATTN ? max_rows : (a->total < MAX_ROWS_ATTN ? a->total : MAX_ROWS_ATTN);
  attn_bufs b;
  cslim_status rc = attn_alloc(t, cap, &b);
  if (rc) return rc;
  for (int s0 = 0; s0 < a->n_seqs && !rc;) {
    int s1 = s0 + 1;
    while (s1 < a->n_seqs && a->seq_start[s1 + 1] - a->seq_start[s0] <= cap) s1++;
    rc = attention_block(m, l, a, s0, s1, hooks, kv, &b);
    s0 = s1;
  }
  attn_free(&b);
  if (rc) return rc;
  rc = l->is_moe ? moe_mlp(m, l, a->h, a->total, hooks) : dense_mlp(m, l, a->h, a->total, hooks);
  if (rc) return rc;
  if (output) memcpy(output, a->h, (size_t)a->total * (size_t)a->hidden * sizeof(float));
  /* Qwen3-VL deepstack: visual features added after the first layers */
  if (a->visual && l->index < a->n_deepstack) {
    const float *f = a->deepstack[l->index];
    size_t H = (size_t)a->hidden, k = 0;
    for (int r = 0; r < a->total; r++)
      if (a->visual[r]) {
        cslim_add_inplace(a->h + (size_t)r * H, f + k * H, H);
        k++;
      }
  }
  return CSLIM_OK;
}

cslim_status cslim_layer_forward(cslim_model *m, cslim_layer *l, cslim_acts *a, const cslim_hooks *hooks,
                                 cslim_kv_cache *kv) {
  return cslim_layer_forward_ex(m, l, a, hooks, kv, NULL);
}

cslim_status cslim_layer_observe(cslim_model *m, cslim_layer *l, cslim_acts *a, const cslim_hooks *hooks) {
  size_t n = (size_t)a->total * (size_t)a->hidden;
  float *save = malloc(n * sizeof(float));
  if (!save) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for a copy of the activations");
  memcpy(save, a->h, n * sizeof(float));
  cslim_status rc = cslim_layer_forward(m, l, a, hooks, NULL);
  memcpy(a->h, save, n * sizeof(float));
  free(save);
  return rc;
}

/* ---- KV cache ---------------------------------------------------------------------------------- */

cslim_status cslim_kv_cache_new(cslim_model *m, int max_tokens, cslim_kv_cache **out) {
  const cslim_text_config *t = &m->cfg.text;
  cslim_kv_cache *c = calloc(1, sizeof *c);
  if (!c) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  c->max_tokens = max_tokens;
  c->layers = t->num_layers;
  c->width = t->num_kv_heads * t->head_dim;
  size_t n = (size_t)c->layers * (size_t)max_tokens * (size_t)c->width;
  c->k = malloc(n * sizeof(float));
  c->v = malloc(n * sizeof(float));
  if (!c->k || !c->v) {
    cslim_kv_cache_free(c);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for a KV cache of %d tokens", max_tokens);
  }
  *out = c;
  return CSLIM_OK;
}

void cslim_kv_cache_free(cslim_kv_cache *c) {
  if (!c) return;
  free(c->k);
  free(c->v);
  free(c);
}

int cslim_kv_cache_len(const cslim_kv_cache *c) { return c->len; }
void cslim_kv_cache_advance(cslim_kv_cache *c, int n) { c->len += n; }
