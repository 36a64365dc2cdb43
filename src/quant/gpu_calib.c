/* Layer-wise calibration on the GPU: what calibrate.c hands to the GPU
 * layer engine, and what comes back (gpu_calib.h). */
#include "quant/gpu_calib.h"

#include "backend/gpu_layer.h"
#include "cslim/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cslim_gpu_layer_api *eng(void) { return cslim_gpu_layer_engine(); }

static cslim_status engine_error(const char *what) {
  return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s on %s: %s", what, cslim_device_describe(), eng()->last_error());
}

static const char *const g_linears[CSLIM_GPU_DENSE_SLOTS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                       "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                       "mlp.down_proj"};

static int gpu_dtype(cslim_dtype t) { return t == CSLIM_BF16 ? CSLIM_GPU_BF16 : t == CSLIM_F16 ? CSLIM_GPU_F16 : CSLIM_GPU_F32; }

const char *cslim_gpu_calib_unsupported(cslim_model *m, const cslim_quant_params *p, const cslim_acts *anti,
                                        const cslim_acts *a) {
  static char why[256];
  const cslim_text_config *t = &m->cfg.text;
  if (!eng()) return "no GPU layer engine";
  if (!a) return "no calibration rows";
  if (anti) {
    int ids[16], gpus = cslim_device_gpus(ids, 16);
    if (anti->n_seqs < gpus && anti->n_seqs < a->n_seqs) {
      snprintf(why, sizeof why, "%d smoothing samples (--anti_data), fewer than the %d GPUs", anti->n_seqs, gpus);
      return why;
    }
  }
  for (int l = 0; l < t->num_layers; l++) {
    const int moe = cslim_layer_is_moe(t, l), n = moe ? 5 + 3 * t->num_experts : CSLIM_GPU_DENSE_SLOTS;
    for (int s = 0; s < n; s++) {
      /* slot s: q, k, v, o, then gate, up, down (dense) or the router and each expert's three */
      char rest[160], name[192], tensor[224];
      if (s < 4 || !moe) snprintf(rest, sizeof rest, "layers.%d.%s", l, g_linears[s]);
      else if (s == 4) snprintf(rest, sizeof rest, "layers.%d.mlp.gate", l);
      else snprintf(rest, sizeof rest, "layers.%d.mlp.experts.%d.%s", l, (s - 5) / 3, g_linears[4 + (s - 5) % 3] + 4);
      cslim_model_tensor_name(m, rest, name, sizeof name);
      const int fused = s >= 5 && moe && m->fused_experts;
      if (fused) {
        snprintf(rest, sizeof rest, "layers.%d.mlp.experts.%s", l, (s - 5) % 3 == 2 ? "down_proj" : "gate_up_proj");
        cslim_model_tensor_name(m, rest, tensor, sizeof tensor);
      } else {
        snprintf(tensor, sizeof tensor, "%s.weight", name);
      }
      const cslim_tensor *w = cslim_st_find(m->st, tensor);
      if (!w || w->ndim != (fused ? 3 : 2) || (w->dtype != CSLIM_BF16 && w->dtype != CSLIM_F16 && w->dtype != CSLIM_F32)) {
        snprintf(why, sizeof why, "%s is not a bf16/f16/f32 %s", tensor, fused ? "[E, R, in] tensor" : "matrix");
        return why;
      }
      cslim_qtype q = cslim_quant_plan_linear(p, name);
      if (q == CSLIM_QT_FLOAT) continue;
      int ok = q == CSLIM_QT_W8A8 || q == CSLIM_QT_W8A8_DYNAMIC || q == CSLIM_QT_W8A8_MIX || q == CSLIM_QT_W8A16 ||
               (q == CSLIM_QT_W4A8_DYNAMIC && p->group_size == 0) || q == CSLIM_QT_W8A8S;
      if (!ok) {
        snprintf(why, sizeof why, "%s: %s weights with this method are quantized on the CPU", name,
                 cslim_scheme_get(q)->label);
        return why;
      }
    }
  }
  return NULL;
}

static size_t g_peak;
static int g_devices; /* the devices the rows are split over */
static int g_rows; /* calibration rows on the GPU (of the row set the passes run on) */
static int g_anti_rows; /* rows of the smoothing set on the GPU, 0: none */
static int g_running; /* between begin and end */
/* the image tokens' rows (deepstack), ascending, of the calibration rows [0] and the smoothing set [1] */
typedef struct vis_rows {
  int *row, n;
} vis_rows;
static vis_rows g_vis[2];

static void vis_drop(vis_rows *v) {
  free(v->row);
  v->row = NULL;
  v->n = 0;
}

static cslim_status vis_take(vis_rows *v, const cslim_acts *a) {
  vis_drop(v);
  for (int r = 0; a && a->visual && r < a->total; r++) v->n += a->visual[r] != 0;
  if (v->n && !(v->row = malloc((size_t)v->n * sizeof(int)))) {
    v->n = 0;
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  for (int r = 0, k = 0; v->n && r < a->total; r++)
    if (a->visual[r]) v->row[k++] = r;
  return CSLIM_OK;
}

/* Qwen3-VL deepstack: the visual features added to the image rows of the current set after the first
 * layers, as cslim_layer_forward does */
static cslim_status add_deepstack(const vis_rows *v, const cslim_layer *l, const cslim_acts *a) {
  if (!v->n || l->index >= a->n_deepstack) return CSLIM_OK;
  return eng()->add_rows(v->n, v->row, a->deepstack[l->index]) ? engine_error("the deepstack features") : CSLIM_OK;
}
/* Page-locked buffers for the weight codes coming back, one per slot (every
 * expert's too), two sets: a layer's codes are written out while the next
 * layer quantizes into the other set. */
static void **g_pin[2];
static size_t *g_pin_cap[2];
static int g_pin_slots;
static int g_set; /* the set of the layer being calibrated */

/* RoPE tables of a's rows, and a's rows to the engine: begin (the calibration rows) or begin_alt */
static cslim_status begin_rows(cslim_model *m, const cslim_gpu_dims *d, const cslim_acts *a, int alt) {
  const int half = m->cfg.text.head_dim / 2;
  float *cs = malloc((size_t)a->total * (size_t)half * sizeof(float));
  float *sn = malloc((size_t)a->total * (size_t)half * sizeof(float));
  cslim_status rc = cs && sn ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory for the RoPE tables");
  if (!rc) rc = cslim_rope_tables(m, a->pos, a->total, 0, a->total, cs, sn);
  if (!rc && !alt && eng()->begin(d, a->total, a->n_seqs, a->seq_start, a->h, cs, sn))
    rc = engine_error("moving the calibration rows");
  if (!rc && alt && eng()->begin_alt(a->total, a->n_seqs, a->seq_start, a->h, cs, sn))
    rc = engine_error("moving the smoothing set (--anti_data)");
  free(cs);
  free(sn);
  return rc;
}

/* the passes from now on run on the other row set */
static cslim_status swap_rows(void) {
  if (eng()->swap_rows()) return engine_error("switching row sets");
  const int t = g_rows;
  g_rows = g_anti_rows, g_anti_rows = t;
  return CSLIM_OK;
}

cslim_status cslim_gpu_calib_begin(cslim_model *m, const cslim_quant_params *p, const cslim_xform *xf,
                                   const cslim_acts *a, const cslim_acts *anti) {
  const cslim_text_config *t = &m->cfg.text;
  cslim_gpu_dims d = {t->hidden_size, t->intermediate_size, t->num_heads, t->num_kv_heads, t->head_dim,
                      (float)t->rms_norm_eps, gpu_dtype(m->cfg.dtype), p->gpu_gemm, t->num_experts > 0 ? t->num_experts : 0,
                      t->num_experts_per_tok, t->moe_intermediate_size, t->norm_topk_prob};
  int ids[16], n = cslim_device_gpus(ids, 16);
  cslim_status rc = CSLIM_OK;
  if (eng()->set_devices(ids, n > 16 ? 16 : n)) rc = engine_error("choosing the devices");
  if (!rc) rc = begin_rows(m, &d, a, 0);
  g_anti_rows = 0;
  if (!rc && anti) rc = begin_rows(m, &d, anti, 1);
  if (!rc && anti) g_anti_rows = anti->total;
  if (!rc) m->defer_linears = !xf; /* the transforms need the float32 weights on the host */
  const int slots = 8 + 3 * d.n_experts; /* as the engine numbers them (gpu_layer.h) */
  g_pin_slots = 0;
  for (int i = 0; i < 2 && !rc; i++) {
    g_pin[i] = calloc((size_t)slots, sizeof *g_pin[i]);
    g_pin_cap[i] = calloc((size_t)slots, sizeof *g_pin_cap[i]);
    if (!g_pin[i] || !g_pin_cap[i]) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  if (!rc) g_pin_slots = slots;
  if (!rc) rc = vis_take(&g_vis[0], a);
  if (!rc) rc = vis_take(&g_vis[1], anti);
  g_rows = a->total;
  g_peak = 0;
  g_devices = rc ? 0 : eng()->devices();
  g_running = !rc;
  return rc;
}

void cslim_gpu_calib_end(cslim_model *m) {
  for (int i = 0; i < 2; i++) {
    for (int s = 0; g_pin[i] && s < g_pin_slots; s++) eng()->host_free(g_pin[i][s]);
    free(g_pin[i]);
    free(g_pin_cap[i]);
    g_pin[i] = NULL;
    g_pin_cap[i] = NULL;
  }
  g_pin_slots = 0;
  vis_drop(&g_vis[0]);
  vis_drop(&g_vis[1]);
  size_t now = 0, peak = 0;
  eng()->memory(&now, &peak);
  if (peak > g_peak) g_peak = peak;
  eng()->end(NULL);
  g_running = 0;
  g_anti_rows = 0;
  m->defer_linears = 0;
}

int cslim_gpu_calib_flex_begin(const float *X, int rows, int n, const float *const *W, const int *outs, int parts,
                               double *ref_rows) {
  int out = 0;
  for (int p = 0; p < parts; p++) out += outs[p];
  if (!g_running || !eng() || rows <= 0 || n <= 0 || out <= 0) return 0;
  if (eng()->flex_begin(X, rows, n, W, outs, parts, ref_rows)) {
    engine_error("the m6 search");
    return -1;
  }
  return 1;
}

cslim_status cslim_gpu_calib_flex_eval(const float *s, double *err_rows) {
  return eng()->flex_eval(s, err_rows) ? engine_error("the m6 search") : CSLIM_OK;
}

void cslim_gpu_calib_flex_end(void) { eng()->flex_end(); }

int cslim_gpu_calib_os_begin(const cslim_gpu_os *o) {
  if (!g_running || !eng() || o->rows <= 0 || o->n <= 0) return 0;
  if (eng()->os_begin(o)) {
    engine_error("the m2 search");
    return -1;
  }
  return 1;
}

cslim_status cslim_gpu_calib_os_scale(const float *s, const float *z, float *mn, float *mx) {
  return eng()->os_scale(s, z, mn, mx) ? engine_error("the m2 search") : CSLIM_OK;
}

cslim_status cslim_gpu_calib_os_eval(float scale, float offset, float inv, int shifted, double *err_rows) {
  return eng()->os_eval(scale, offset, inv, shifted, err_rows) ? engine_error("the m2 search") : CSLIM_OK;
}

void cslim_gpu_calib_os_end(void) { eng()->os_end(); }

size_t cslim_gpu_calib_peak_memory(void) { return g_peak; }

int cslim_gpu_calib_devices(void) { return g_devices; }

/* One Linear to the GPU: as the checkpoint stores it (m->defer_linears: no transforms; raw: an
 * expert that no transform has changed yet and that is not in host memory), or its float32 host
 * copy (the transforms' output; an expert is converted here, with the transforms' hook, and
 * released again). An expert's checkpoint bytes leave the resident set once up (they stay in the
 * page cache: the smoothing's later reads of down_proj map them again without touching the disk). */
static cslim_status upload_linear(cslim_model *m, cslim_layer *l, cslim_linear *x, int raw) {
  const cslim_tensor *t = x->src;
  if (m->defer_linears || (raw && x->expert >= 0 && !x->w)) {
    const size_t es = cslim_dtype_size(t->dtype);
    const char *data = t->data;
    size_t ld = (size_t)x->in;
    if (x->layout == CSLIM_W_ROWS) { /* rows [row0, row0 + out) of expert `expert` of [E, R, in] */
      data += ((size_t)x->expert * (size_t)t->shape[1] + (size_t)x->row0) * (size_t)x->in * es;
    } else if (x->layout == CSLIM_W_COLS_T) { /* columns [row0, row0 + out) of expert `expert` of [E, in, C] */
      ld = (size_t)t->shape[2];
      data += ((size_t)x->expert * (size_t)x->in * ld + (size_t)x->row0) * es;
    }
    if (eng()->set_weight(x->slot, gpu_dtype(t->dtype), data, x->out, x->in, ld, x->layout == CSLIM_W_COLS_T, x->b))
      return engine_error(x->name);
    cslim_st_note_read(m->st, t);
    /* on the GPU now: the page cache may drop it (a fused tensor's expert slab once its last projection,
     * up or down, is up) */
    if (x->layout == CSLIM_W_PLAIN || (x->slot - 8) % 3 != 0) cslim_linear_release_source(m, x);
    return CSLIM_OK;
  }
  const int had = x->w != NULL;
  cslim_status rc = CSLIM_OK;
  if (!had && x->expert < 0) return cslim_error(CSLIM_ERR_INVALID, "%s: float weights not loaded", x->name);
  if (!had && (rc = cslim_linear_materialize(m, x))) return rc;
  if (eng()->set_weight(x->slot, CSLIM_GPU_F32, x->w, x->out, x->in, (size_t)x->in, 0, x->b)) rc = engine_error(x->name);
  if (!had && !l->keep_experts) cslim_linear_release(m, x);
  return rc;
}

/* The layer's norms and Linears (with_experts 0: attention and a dense MLP only; raw_experts: see
 * upload_linear) */
static cslim_status upload_layer(cslim_model *m, cslim_layer *l, int with_experts, int raw_experts) {
  if (eng()->set_norms(l->input_norm, l->input_norm_b, l->post_norm, l->post_norm_b, l->q_norm, l->k_norm, l->is_moe))
    return engine_error("uploading the norms");
  cslim_linear *dense[CSLIM_GPU_DENSE_SLOTS] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
  cslim_status rc = CSLIM_OK;
  for (int s = 0; s < (l->is_moe ? 4 : CSLIM_GPU_DENSE_SLOTS) && !rc; s++)
    rc = upload_linear(m, l, dense[s], 0);
  for (int i = -1; l->is_moe && with_experts && i < 3 * l->n_experts && !rc; i++)
    rc = upload_linear(m, l, i < 0 ? &l->router : &l->experts[i], raw_experts);
  return rc;
}

cslim_status cslim_gpu_calib_upload(cslim_model *m, cslim_layer *l) {
  g_set = l->index & 1;
  return upload_layer(m, l, 1, 0);
}

static void merge_stats(cslim_observer *o, const cslim_gpu_stats *st, int64_t count, int rows) {
  if (st->mn < o->mn || st->mn != st->mn) o->mn = st->mn;
  if (st->mx > o->mx || st->mx != st->mx) o->mx = st->mx;
  o->sum += st->sum;
  o->sumsq += st->sumsq;
  o->count += count;
  o->rows += rows;
}

typedef struct chan_ctx {
  cslim_model *m;
  int raw_experts; /* no rotation: the experts go up as stored (their scales applied on the GPU after) */
} chan_ctx;

/* cslim_xform_observer: the rotated layer's per-channel input statistics (and m2 / m6's samples),
 * from the GPU */
static cslim_status observe_channels(void *ctx, cslim_layer *l, cslim_chstats *st, int n, float **sample,
                                     int *sample_rows, int cap) {
  chan_ctx *c = ctx;
  float *mn[4] = {0}, *mx[4] = {0};
  for (int g = 0; g < 4 && g < n; g++)
    if (st[g].mn) mn[g] = st[g].mn, mx[g] = st[g].mx;
  /* groups 5 + 2e + 1: expert e's down input (every expert's up-down smoothing), from the MoE block */
  const int E = l->is_moe ? l->n_experts : 0;
  int experts = 0;
  for (int g = 4; g < n; g++) {
    if (!st[g].mn) continue;
    if (g < 5 || g >= 5 + 2 * E || (g - 5) % 2 == 0)
      return cslim_error(CSLIM_ERR_UNSUPPORTED, "layer %d: statistics group %d is not gathered on the GPU", l->index, g);
    experts = 1;
  }
  float **emn = experts ? calloc((size_t)E, sizeof(float *)) : NULL, **emx = experts ? calloc((size_t)E, sizeof(float *)) : NULL;
  int *tok = experts ? calloc((size_t)E, sizeof(int)) : NULL;
  cslim_status rc = !experts || (emn && emx && tok) ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int e = 0; e < E && experts && !rc; e++) {
    cslim_chstats *d = &st[5 + 2 * e + 1];
    if (d->mn) emn[e] = d->mn, emx[e] = d->mx;
  }
  /* the weights as the statistics see them (rotated, not yet smoothed); the experts only when their block runs */
  const double t0 = cslim_now();
  if (!rc) rc = upload_layer(c->m, l, experts, c->raw_experts);
  const double t1 = cslim_now();
  /* sample[0..3] / sample_rows[0..3]: the groups the engine samples (n is 5 + 2E, never fewer) */
  if (!rc && eng()->channel_pass(mn, mx, sample, sample_rows, cap, emn, emx, tok))
    rc = engine_error("the statistics pass");
  CSLIM_DEBUG("layer %d: statistics upload %.3f s, channel pass %.3f s; RSS %.0f MB", l->index, t1 - t0,
              cslim_now() - t1, (double)cslim_current_rss() / 1e6);
  for (int e = 0; e < E && experts && !rc; e++)
    if (emn[e]) st[5 + 2 * e + 1].rows += tok[e];
  free(emn);
  free(emx);
  free(tok);
  if (rc) return rc;
  for (int g = 0; g < 4 && g < n; g++)
    if (st[g].mn) st[g].rows += g_rows;
  return CSLIM_OK;
}

/* After every expert's up-down smoothing: the experts are on the GPU already (uploaded for the
 * statistics as stored, or rotated in float32), so their scales are applied there (gate untouched,
 * up ÷ s, down · s: the same float32 operations as the host's conversion hook). The norms and the
 * attention, which o-v / norm-qkv smoothing changes, are uploaded again; so is the router (E x H,
 * unchanged: a MoE layer's post-attention norm is not smoothed), as the full upload would. */
static cslim_status upload_smoothed_experts(cslim_model *m, cslim_layer *l, const float *const *es) {
  g_set = l->index & 1;
  cslim_status rc = upload_layer(m, l, 0, 0);
  if (!rc) rc = upload_linear(m, l, &l->router, 0);
  for (int e = 0; e < l->n_experts && !rc; e++) {
    if (!es[e]) continue;
    const cslim_linear *up = &l->experts[3 * e + 1], *down = &l->experts[3 * e + 2];
    if (eng()->scale_weight(up->slot, NULL, es[e]) || eng()->scale_weight(down->slot, es[e], NULL))
      rc = engine_error(down->name);
  }
  return rc;
}

cslim_status cslim_gpu_calib_transform(cslim_model *m, cslim_xform *xf, cslim_layer *l, cslim_acts *a,
                                       cslim_acts *anti) {
  chan_ctx c = {m, !cslim_xform_rotates(xf)};
  const double t0 = cslim_now();
  cslim_status rc = anti ? swap_rows() : CSLIM_OK; /* the statistics of the smoothing set */
  if (rc) return rc;
  rc = cslim_xform_layer_observed(xf, l, anti ? anti : a, observe_channels, &c);
  if (anti) { /* back to the calibration rows */
    cslim_status rs = swap_rows();
    if (!rc) rc = rs;
  }
  const double t1 = cslim_now();
  const float *const *es = l->is_moe ? cslim_xform_expert_scales(xf) : NULL;
  if (!rc) rc = es ? upload_smoothed_experts(m, l, es) : cslim_gpu_calib_upload(m, l);
  CSLIM_DEBUG("layer %d: transforms %.3f s, upload of the transformed layer %.3f s; RSS %.0f MB", l->index, t1 - t0,
              cslim_now() - t1, (double)cslim_current_rss() / 1e6);
  return rc;
}

cslim_status cslim_gpu_calib_observe(cslim_layer *l, int hist, cslim_observer **obs, int n_groups, int *tokens) {
  cslim_gpu_stats *st = calloc((size_t)n_groups, sizeof *st);
  cslim_gpu_hist *h = calloc((size_t)n_groups, sizeof *h);
  int *tok = l->is_moe ? calloc((size_t)l->n_experts, sizeof(int)) : NULL;
  cslim_status rc = st && h && (tok || !l->is_moe) ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int g = 0; hist && g < n_groups && !rc; g++) {
    if (!obs[g]->hist) continue;
    h[g].bins = obs[g]->bins;
    h[g].lo = obs[g]->h_min;
    h[g].hi = obs[g]->h_max;
    h[g].counts = calloc((size_t)obs[g]->bins, sizeof(double));
    if (!h[g].counts) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  if (!rc && eng()->float_pass(hist ? CSLIM_GPU_PASS_HIST : CSLIM_GPU_PASS_STATS, st, h, hist ? NULL : tok))
    rc = engine_error("the float pass");
  for (int g = 0; g < n_groups && !rc; g++) {
    cslim_observer *o = obs[g];
    if (hist) {
      for (int b = 0; h[g].counts && b < o->bins; b++) o->hist[b] += h[g].counts[b];
      continue;
    }
    if (l->is_moe ? g == 2 || g == 3 : g >= CSLIM_GPU_DENSE_GROUPS) continue; /* no such group in this layer */
    /* rows that reached the group: all of them, or an expert's */
    int rows = g < 5 ? g_rows : tok[(g - 5) / 2];
    int width = g == 0 || g == 2 || g == 4 ? l->q.in : g == 1 ? l->o.in : g == 3 ? l->down.in
              : (g - 5) % 2 ? l->experts[3 * ((g - 5) / 2) + 2].in : l->q.in;
    if (rows) merge_stats(o, &st[g], (int64_t)rows * width, rows);
  }
  if (!rc && tokens && tok && !hist)
    for (int e = 0; e < l->n_experts; e++) tokens[e] += tok[e];
  for (int g = 0; g < n_groups && h; g++) free(h[g].counts);
  free(st);
  free(h);
  free(tok);
  return rc;
}

cslim_status cslim_gpu_calib_expert_on_all(cslim_layer *l, int e, cslim_observer *gate_up, cslim_observer *down) {
  cslim_gpu_stats st[2];
  if (eng()->expert_on_all(e, st)) return engine_error(l->experts[3 * e].name);
  cslim_observer_init(gate_up);
  cslim_observer_init(down);
  merge_stats(gate_up, &st[0], (int64_t)g_rows * l->experts[3 * e].in, g_rows);
  merge_stats(down, &st[1], (int64_t)g_rows * l->experts[3 * e + 2].in, g_rows);
  return CSLIM_OK;
}

cslim_status cslim_gpu_calib_quantize_weight(const cslim_linear *l, int bits, int ssz_iters, cslim_wq *out) {
  memset(out, 0, sizeof *out);
  out->n = l->out;
  out->k = l->in;
  out->bits = bits;
  size_t nq = (size_t)l->out * (size_t)l->in;
  if (l->slot >= 0 && l->slot < g_pin_slots) { /* page-locked, reused layer after layer */
    void **pin = &g_pin[g_set][l->slot];
    if (g_pin_cap[g_set][l->slot] < nq) {
      eng()->host_free(*pin);
      *pin = eng()->host_alloc(nq);
      g_pin_cap[g_set][l->slot] = *pin ? nq : 0;
    }
    out->q = *pin;
    out->q_borrowed = *pin != NULL;
  }
  if (!out->q) out->q = malloc(nq); /* nothing page-locked to be had: ordinary memory (slower copies) */
  out->scale = malloc((size_t)l->out * sizeof(float));
  out->rowsum = malloc((size_t)l->out * sizeof(int64_t));
  if (!out->q || !out->scale || !out->rowsum) {
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory quantizing a %d x %d weight", l->out, l->in);
  }
  int bad = -1;
  if (eng()->quantize_weight(l->slot, bits, ssz_iters, out->q, out->scale, out->rowsum, &out->err_sq, &out->w_sq, &bad)) {
    cslim_wq_free(out);
    return engine_error("weight quantization");
  }
  if (bad >= 0) {
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NUMERIC, "row %d has a non-finite value (nothing was written)", bad);
  }
  return CSLIM_OK;
}

cslim_status cslim_gpu_calib_set_codes(const cslim_linear *l, const cslim_wq *wq) {
  if (wq->n != l->out || wq->k != l->in) return cslim_error(CSLIM_ERR_INVALID, "%s: codes of another shape", l->name);
  if (eng()->set_codes(l->slot, wq->q)) return engine_error(l->name);
  return CSLIM_OK;
}

cslim_status cslim_gpu_calib_set_kernel(const cslim_linear *l, const cslim_qlinear *rt) {
  cslim_gpu_qlin q = {CSLIM_GPU_LIN_FLOAT, 0, 0, NULL, NULL, NULL, 0};
  if (rt) {
    int is_static = rt->type == CSLIM_QT_W8A8 || rt->type == CSLIM_QT_W8A8S || rt->type == CSLIM_QT_W8A8SC;
    q.kind = rt->type == CSLIM_QT_W8A16 ? CSLIM_GPU_LIN_W8A16 : is_static ? CSLIM_GPU_LIN_STATIC : CSLIM_GPU_LIN_DYNAMIC;
    q.in_recip = rt->in_recip;
    q.in_offset = rt->in_offset;
    q.deq = rt->deq;
    q.qbias = rt->qbias;
    q.wscale = rt->wscale;
    q.bias_after = rt->bias_after;
  }
  if (eng()->set_qlinear(l->slot, &q)) return engine_error(l->name);
  return CSLIM_OK;
}

cslim_status cslim_gpu_calib_run_quantized_anti(cslim_layer *l, const cslim_acts *anti) {
  cslim_status rc = swap_rows();
  if (rc) return rc;
  if (eng()->quant_pass()) rc = engine_error("the quantized pass of the smoothing set");
  if (!rc) rc = add_deepstack(&g_vis[1], l, anti);
  cslim_status rs = swap_rows(); /* back to the calibration rows */
  return rc ? rc : rs;
}

cslim_status cslim_gpu_calib_run_quantized(cslim_layer *l, const cslim_acts *a) {
  if (eng()->quant_pass()) return engine_error("the quantized pass");
  cslim_status rc = add_deepstack(&g_vis[0], l, a);
  if (rc) return rc;
  size_t now = 0, peak = 0;
  eng()->memory(&now, &peak);
  if (peak > g_peak) g_peak = peak;
  return CSLIM_OK;
}
