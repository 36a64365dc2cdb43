/* Layer-wise calibration and quantization (spec §2.2, §3; msModelSlim v1's
 * layer-wise runner).
 *
 * For each decoder layer, with every calibration token:
 *   pass 1 (float): observe the input of every Linear group (min, max,
 *           moments), quantize each Linear's weights the first time its
 *           float weights are seen, count tokens per expert;
 *   (experts with too few tokens are calibrated on all of the layer's tokens;
 *    experts that saw none are weight-quantized data-free)
 *   pass 2 (float, only if a histogram is wanted): exact histograms over the
 *           observed ranges, then PyTorch's L2 range search;
 *   pass 3 (quantized): the layer runs with every quantized Linear replaced by
 *           the serving engine's integer kernel; its output — carrying the
 *           quantization error — is the next layer's input.
 * The layer's tensors are then written and its memory released. */
#include "cslim/quant.h"

#include "cslim/backend.h"
#include "cslim/dataset.h"
#include "cslim/inspect.h"
#include "cslim/staging.h"
#include "cslim/compress.h"
#include "io/json_util.h"
#include "cslim/tokenizer.h"
#include "cslim/vision.h"
#include "export/exporter.h"
#include "model/model_internal.h"
#include "quant/gpu_calib.h"
#include "quant/verify.h"
#include "quant/xform.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PASS_STATS = 0, PASS_HIST = 1 };

typedef struct lin_q {
  cslim_linear *lin;
  cslim_qtype type;
  cslim_wq wq;
  int wq_done;
  int host; /* a Linear outside the decoder layers (the vision tower's): never in the GPU engine */
  float in_scale, in_offset;
  cslim_qlinear *rt;
  double err_num, err_den;
  int64_t sp_codes, sp_wide, sp_bytes; /* W8A8S: codes, codes outside [-8, 7], W8A8SC codec bytes */
} lin_q;

typedef struct group_obs {
  cslim_observer obs;
  int needs_static; /* some Linear of the group stores activation parameters */
  int hist;         /* calibrated with the histogram */
  int fallback;     /* expert calibrated on all tokens */
} group_obs;

typedef struct qctx {
  const cslim_quant_params *p;
  cslim_model *m;
  const cslim_text_config *t;
  cslim_layer *layer;
  int pass;
  int n_slots, n_groups;
  lin_q *lq;
  group_obs *g;
  int *tokens;          /* per expert, this layer */
  float *moe_in;        /* the MoE block's input (all rows), for fallback calibration */
  int moe_rows;
  int need_moe_in;
  double t_hooks;
  cslim_status err;
  cslim_xform *x;   /* rotation / smoothing, or NULL */
  cslim_acts *anti; /* the smoothing statistics set, when separate from the calibration set */
  int gpu;          /* the layers run whole on the GPU (quant/gpu_calib.h) */
} qctx;

/* ---- groups and slots -------------------------------------------------------------------- */

static int group_of(cslim_input_kind kind, int expert) {
  if (expert < 0) return (int)kind;
  return 5 + 2 * expert + (kind == CSLIM_IN_DOWN);
}

static cslim_linear *slot_linear(cslim_layer *l, int s) {
  switch (s) {
  case 0: return &l->q;
  case 1: return &l->k;
  case 2: return &l->v;
  case 3: return &l->o;
  case 4: return l->is_moe ? NULL : &l->gate;
  case 5: return l->is_moe ? NULL : &l->up;
  case 6: return l->is_moe ? NULL : &l->down;
  case 7: return l->is_moe ? &l->router : NULL;
  default: return s - 8 < 3 * l->n_experts ? &l->experts[s - 8] : NULL;
  }
}

/* the group a slot's Linear reads */
static int slot_group(int s) {
  static const int g[8] = {CSLIM_IN_QKV, CSLIM_IN_QKV, CSLIM_IN_QKV, CSLIM_IN_O,
                           CSLIM_IN_GATE_UP, CSLIM_IN_GATE_UP, CSLIM_IN_DOWN, CSLIM_IN_ROUTER};
  if (s < 8) return g[s];
  int e = (s - 8) / 3, j = (s - 8) % 3;
  return group_of(j == 2 ? CSLIM_IN_DOWN : CSLIM_IN_GATE_UP, e);
}

static int act_static(cslim_qtype t) {
  cslim_act_kind a = cslim_scheme_get(t)->act;
  return a == CSLIM_ACT_STATIC || a == CSLIM_ACT_PDMIX;
}

/* ---- weight quantization -------------------------------------------------------------------- */

static cslim_status quantize_weights(qctx *c, lin_q *q) {
  cslim_linear *l = q->lin;
  const cslim_scheme *sc = cslim_scheme_get(q->type);
  cslim_status rc;
  const int gpu = c->gpu && !q->host; /* the Linear's weights are in the GPU engine */
  if (!l->w && !gpu) return cslim_error(CSLIM_ERR_INVALID, "%s: float weights not loaded", l->name);
  if (q->type == CSLIM_QT_W8A8S) { /* on the host; on the GPU path from a float copy made for it, codes then uploaded */
    const int copy = gpu && !l->w;
    rc = copy ? cslim_linear_materialize(c->m, l) : CSLIM_OK;
    if (!rc) rc = cslim_wq_sparse(l->w, l->out, l->in, &c->p->sparse, &q->wq);
    if (copy) cslim_linear_release(c->m, l);
    if (!rc && gpu) rc = cslim_gpu_calib_set_codes(l, &q->wq);
  } else if (sc->w_bits == 4 && c->p->group_size > 0)
    rc = cslim_wq_group(l->w, l->out, l->in, c->p->group_size, &q->wq);
  else if (gpu) /* min-max or SSZ on the GPU, from the weights already there */
    rc = cslim_gpu_calib_quantize_weight(l, sc->w_bits, cslim_quant_plan_wmethod(c->p, l->name, q->type) == CSLIM_WM_SSZ ? 50 : 0,
                                         &q->wq);
  else if (cslim_quant_plan_wmethod(c->p, l->name, q->type) == CSLIM_WM_SSZ)
    rc = cslim_wq_ssz(l->w, l->out, l->in, sc->w_bits, 50, &q->wq);
  else
    rc = cslim_wq_minmax(l->w, l->out, l->in, sc->w_bits, &q->wq);
  if (rc) return cslim_error_context("%s.weight", l->name);
  q->err_num = q->wq.err_sq;
  q->err_den = q->wq.w_sq;
  q->wq_done = 1;
  if (q->type == CSLIM_QT_W8A8S) { /* what the W8A8SC codec makes of the codes (one rank) */
    size_t nzl = cslim_nz_size(l->out, l->in);
    int8_t *nz = malloc(nzl);
    if (!nz) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    cslim_nd2nz(q->wq.q, l->out, l->in, nz);
    q->sp_bytes = (int64_t)cslim_sc_encoded_size(nz, nzl);
    free(nz);
    q->sp_codes = (int64_t)l->out * l->in;
    q->sp_wide = q->wq.n_wide;
  }
  return CSLIM_OK;
}

/* the layer's weight error and W8A8S statistics over its quantized Linears */
static void sum_weight_stats(const qctx *c, cslim_quant_layer_stats *st) {
  double num = 0, den = 0;
  int64_t bytes = 0;
  for (int s = 0; s < c->n_slots; s++) {
    num += c->lq[s].err_num;
    den += c->lq[s].err_den;
    st->sparse_codes += c->lq[s].sp_codes;
    st->sparse_wide += c->lq[s].sp_wide;
    bytes += c->lq[s].sp_bytes;
  }
  st->werr = den > 0 ? sqrt(num / den) : 0;
  st->sparse_bits = st->sparse_codes ? 8.0 * (double)bytes / (double)st->sparse_codes : 0;
}

/* ---- hooks -------------------------------------------------------------------------------------- */

static cslim_status on_input(void *ctx, const cslim_linear_group *grp, float *x, int rows) {
  qctx *c = ctx;
  double t0 = cslim_now();
  int gi = group_of(grp->kind, grp->expert);
  group_obs *go = &c->g[gi];
  size_t n = (size_t)rows * (size_t)grp->lin[0]->in;
  cslim_status rc = CSLIM_OK;
  if (c->pass == PASS_STATS) {
    cslim_observer_update(&go->obs, x, n);
    go->obs.rows += rows;
    if (grp->kind == CSLIM_IN_ROUTER && c->need_moe_in) {
      free(c->moe_in);
      c->moe_in = malloc(n * sizeof(float));
      if (c->moe_in) {
        memcpy(c->moe_in, x, n * sizeof(float));
        c->moe_rows = rows;
      }
    }
    for (int i = 0; i < grp->n && !rc; i++) {
      lin_q *q = &c->lq[grp->lin[i]->slot];
      if (q->type != CSLIM_QT_FLOAT && !q->wq_done) rc = quantize_weights(c, q);
    }
  } else if (go->hist) {
    cslim_observer_hist_update(&go->obs, x, n);
  }
  c->t_hooks += cslim_now() - t0;
  return rc;
}

static void on_routing(void *ctx, int layer, const int *counts, int n) {
  qctx *c = ctx;
  (void)layer;
  if (c->pass != PASS_STATS) return;
  for (int e = 0; e < n; e++) c->tokens[e] += counts[e];
}

/* ---- experts without enough data ----------------------------------------------------------------- */

/* Run expert e's gate/up/down on every row of the MoE input in float and
 * observe its two inputs anew (its own tokens were too few). */
static cslim_status calibrate_expert_on_all(qctx *c, int e) {
  cslim_layer *l = c->layer;
  cslim_linear *g = &l->experts[3 * e], *u = g + 1, *d = g + 2;
  cslim_status rc;
  if (c->gpu) {
    group_obs *gu = &c->g[group_of(CSLIM_IN_GATE_UP, e)], *gd = &c->g[group_of(CSLIM_IN_DOWN, e)];
    if ((rc = cslim_gpu_calib_expert_on_all(l, e, &gu->obs, &gd->obs))) return rc;
    gu->fallback = gd->fallback = 1;
    for (int j = 0; j < 3 && !rc; j++) {
      lin_q *q = &c->lq[8 + 3 * e + j];
      if (q->type != CSLIM_QT_FLOAT && !q->wq_done) rc = quantize_weights(c, q);
    }
    return rc;
  }
  if ((rc = cslim_linear_materialize(c->m, g)) || (rc = cslim_linear_materialize(c->m, u)) ||
      (rc = cslim_linear_materialize(c->m, d)))
    return rc;
  int rows = c->moe_rows, I = g->out;
  float *a = malloc((size_t)rows * (size_t)I * sizeof(float)), *b = malloc((size_t)rows * (size_t)I * sizeof(float));
  if (!a || !b) {
    free(a);
    free(b);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  group_obs *gu = &c->g[group_of(CSLIM_IN_GATE_UP, e)], *gd = &c->g[group_of(CSLIM_IN_DOWN, e)];
  cslim_observer_init(&gu->obs);
  cslim_observer_init(&gd->obs);
  cslim_observer_update(&gu->obs, c->moe_in, (size_t)rows * (size_t)g->in);
  rc = cslim_linear_forward(g, c->moe_in, rows, a);
  if (!rc) rc = cslim_linear_forward(u, c->moe_in, rows, b);
  if (!rc) {
    cslim_silu_mul(a, b, (size_t)rows * (size_t)I);
    cslim_observer_update(&gd->obs, a, (size_t)rows * (size_t)I);
  }
  gu->fallback = gd->fallback = 1;
  for (int j = 0; j < 3 && !rc; j++) {
    lin_q *q = &c->lq[8 + 3 * e + j];
    if (q->type != CSLIM_QT_FLOAT && !q->wq_done) rc = quantize_weights(c, q);
  }
  free(a);
  free(b);
  if (!l->keep_experts) {
    cslim_linear_release(c->m, g);
    cslim_linear_release(c->m, u);
    cslim_linear_release(c->m, d);
  }
  return rc;
}

static cslim_status quantize_expert_data_free(qctx *c, int e) {
  cslim_layer *l = c->layer;
  cslim_status rc = CSLIM_OK;
  for (int j = 0; j < 3 && !rc; j++) {
    lin_q *q = &c->lq[8 + 3 * e + j];
    if (q->type == CSLIM_QT_FLOAT || q->wq_done) continue;
    if (!c->gpu && (rc = cslim_linear_materialize(c->m, q->lin))) break; /* on the GPU: there already */
    rc = quantize_weights(c, q);
    if (!l->keep_experts && !c->gpu) cslim_linear_release(c->m, q->lin);
  }
  return rc;
}

/* ---- runtime kernels for the quantized pass ------------------------------------------------------- */

static void rt_free(cslim_qlinear *r) {
  if (!r) return;
  r->wq = NULL; /* borrowed from the lin_q */
  cslim_qlinear_free(r);
}

/* The engine's kernel for what we are about to write (same parameters, same
 * roundings as the evaluation of the written checkpoint). */
static cslim_status rt_build(qctx *c, lin_q *q) {
  cslim_linear *l = q->lin;
  int n = l->out, k = l->in;
  cslim_dtype serve = c->m->cfg.dtype;
  if (q->wq.group_size > 0)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: per-group W4A8 has no integer kernel (engines run it weight-only)",
                       l->name);
  cslim_qlinear *r = calloc(1, sizeof *r);
  if (!r) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  r->type = q->type;
  r->n = n;
  r->k = k;
  r->serve = serve;
  r->wq = q->wq.q;
  r->transient = 1; /* codes -> float per call: no float copy of the layer held during the quantized pass */
  r->wscale = malloc((size_t)n * sizeof(float));
  if (!r->wscale) goto oom;
  for (int o = 0; o < n; o++)
    r->wscale[o] = q->type == CSLIM_QT_W4A8_DYNAMIC ? q->wq.scale[o] : cslim_round_to_dtype(q->wq.scale[o], serve);
  if (l->b) {
    r->bias = malloc((size_t)n * sizeof(float));
    if (!r->bias) goto oom;
    memcpy(r->bias, l->b, (size_t)n * sizeof(float));
  }
  if (act_static(q->type)) {
    r->in_recip = cslim_round_to_dtype(1.0f / cslim_round_to_dtype(q->in_scale, serve), serve);
    r->in_offset = q->in_offset;
    r->deq = malloc((size_t)n * sizeof(float));
    r->qbias = malloc((size_t)n * sizeof(int32_t));
    if (!r->deq || !r->qbias) goto oom;
    for (int o = 0; o < n; o++) {
      r->deq[o] = cslim_deq_scale_of(q->in_scale, q->wq.scale[o]);
      r->qbias[o] = cslim_quant_bias_row(q->wq.q, q->wq.rowsum, o, k, q->in_offset, l->b ? l->b[o] : 0.0f, r->deq[o]);
    }
  }
  q->rt = r;
  return CSLIM_OK;
oom:
  rt_free(r);
  return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
}

/* ---- one layer -------------------------------------------------------------------------------------- */

/* the float passes observe; they must not change the activations */
static cslim_status run_float_pass(qctx *c, cslim_acts *a, int pass) {
  c->pass = pass;
  if (c->gpu) {
    cslim_observer **obs = malloc((size_t)c->n_groups * sizeof *obs);
    if (!obs) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    for (int g = 0; g < c->n_groups; g++) obs[g] = &c->g[g].obs;
    cslim_status rc = cslim_gpu_calib_observe(c->layer, pass == PASS_HIST, obs, c->n_groups, c->tokens);
    free(obs);
    for (int s = 0; s < c->n_slots && !rc && pass == PASS_STATS; s++) { /* what the hooks do on the CPU */
      lin_q *q = &c->lq[s];
      if (q->lin && q->type != CSLIM_QT_FLOAT && !q->wq_done) {
        double t1 = cslim_now();
        rc = quantize_weights(c, q);
        c->t_hooks += cslim_now() - t1;
      }
    }
    return rc;
  }
  cslim_hooks h = {c, on_input, on_routing};
  return cslim_layer_observe(c->m, c->layer, a, &h);
}

typedef struct layer_out {
  cslim_quant_layer_stats *st;
  int *tokens, *fallback;
} layer_out;

static cslim_status export_layer(qctx *c, cslim_exporter *ex);

/* Per-layer state: a slot per Linear (8 + 3 per expert), an observer per
 * input group (5 + 2 per expert), token counts per expert; freed by
 * layer_cleanup(). */
static cslim_status layer_state_alloc(qctx *c) {
  int E = c->layer->is_moe ? c->layer->n_experts : 0;
  c->n_slots = 8 + 3 * E;
  c->n_groups = 5 + 2 * E;
  c->lq = calloc((size_t)c->n_slots, sizeof *c->lq);
  c->g = calloc((size_t)c->n_groups, sizeof *c->g);
  c->tokens = calloc((size_t)(E ? E : 1), sizeof(int));
  if (!c->lq || !c->g || !c->tokens) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int i = 0; i < c->n_groups; i++) cslim_observer_init(&c->g[i].obs);
  return CSLIM_OK;
}

static cslim_status calibrate_layer(qctx *c, cslim_acts *a, cslim_exporter *ex, layer_out *out,
                                    cslim_quant_report *rep) {
  cslim_layer *l = c->layer;
  const cslim_quant_params *p = c->p;
  int E = l->is_moe ? l->n_experts : 0;
  cslim_status rc = layer_state_alloc(c);
  if (rc) return rc;
  c->need_moe_in = 0;
  for (int s = 0; s < c->n_slots; s++) {
    lin_q *q = &c->lq[s];
    q->lin = slot_linear(l, s);
    if (!q->lin) continue;
    q->type = cslim_quant_plan_linear(p, q->lin->name);
    if (act_static(q->type)) {
      c->g[slot_group(s)].needs_static = 1;
      if (s >= 8) c->need_moe_in = 1;
    }
  }
  /* pass 1 */
  double t0 = cslim_now();
  c->t_hooks = 0;
  if ((rc = run_float_pass(c, a, PASS_STATS))) return rc;
  rep->t_forward += cslim_now() - t0 - c->t_hooks;
  rep->t_stats += c->t_hooks;
  /* experts: too few tokens / none */
  t0 = cslim_now();
  for (int e = 0; e < E; e++) {
    int need_static = c->g[group_of(CSLIM_IN_GATE_UP, e)].needs_static || c->g[group_of(CSLIM_IN_DOWN, e)].needs_static;
    if (c->tokens[e] < p->expert_min_tokens && need_static && (c->moe_in || c->gpu)) {
      if ((rc = calibrate_expert_on_all(c, e))) return rc;
      out->fallback[e] = 1;
    } else if (c->tokens[e] == 0) {
      if ((rc = quantize_expert_data_free(c, e))) return rc;
      out->fallback[e] = 2;
    }
    if (c->tokens[e] > 0) {
      if ((rc = quantize_expert_data_free(c, e))) return rc; /* any Linear the hooks did not reach */
    }
    out->tokens[e] = c->tokens[e];
  }
  rep->t_stats += cslim_now() - t0;
  /* pass 2: histograms where act_method asks for them */
  int any_hist = 0;
  for (int gi = 0; gi < c->n_groups; gi++) {
    group_obs *go = &c->g[gi];
    if (!go->needs_static || go->fallback || go->obs.count == 0) continue;
    int want = p->act_method == 2 || (p->act_method == 3 && cslim_observer_range_param(&go->obs) <= 50.0);
    if (want) {
      if ((rc = cslim_observer_hist_begin(&go->obs, 2048))) return rc;
      go->hist = 1;
      any_hist = 1;
      out->st->n_hist++;
    }
  }
  if (any_hist) {
    t0 = cslim_now();
    c->t_hooks = 0;
    if ((rc = run_float_pass(c, a, PASS_HIST))) return rc;
    rep->t_forward += cslim_now() - t0 - c->t_hooks;
    rep->t_stats += c->t_hooks;
  }
  /* activation parameters, and the kernels of the quantized pass */
  for (int s = 0; s < c->n_slots; s++) {
    lin_q *q = &c->lq[s];
    if (!q->lin || q->type == CSLIM_QT_FLOAT) continue;
    if (act_static(q->type)) {
      group_obs *go = &c->g[slot_group(s)];
      float mn = go->obs.mn, mx = go->obs.mx;
      if (go->obs.count == 0) { /* no data at all (an expert without tokens and no fallback) */
        return cslim_error(CSLIM_ERR_NUMERIC, "%s: no calibration data reached this Linear, so %s has no "
                           "activation range", q->lin->name, cslim_scheme_get(q->type)->label);
      }
      if (!isfinite(mn) || !isfinite(mx))
        return cslim_error(CSLIM_ERR_NUMERIC, "%s.input_scale: the calibration activations are not finite "
                           "(min %g, max %g); nothing was written", q->lin->name, (double)mn, (double)mx);
      if (go->hist) cslim_observer_hist_range(&go->obs, 256, &mn, &mx);
      cslim_qparams_asym(mn, mx, 8, &q->in_scale, &q->in_offset);
    }
    if ((rc = rt_build(c, q))) return rc;
    if (c->gpu && (rc = cslim_gpu_calib_set_kernel(q->lin, q->rt))) return rc;
    q->lin->forward = cslim_qlinear_forward;
    q->lin->impl = q->rt;
    q->lin->impl_free = NULL; /* owned here */
    free(q->lin->w); /* the float weights are not used any more */
    q->lin->w = NULL;
  }
  /* per-kind ranges for the report */
  for (int k = 0; k < 5; k++) {
    out->st->in_min[k] = INFINITY;
    out->st->in_max[k] = -INFINITY;
  }
  for (int gi = 0; gi < c->n_groups; gi++) {
    int k = gi < 5 ? gi : (gi - 5) % 2 ? CSLIM_IN_DOWN : CSLIM_IN_GATE_UP;
    if (!c->g[gi].obs.count) continue;
    if (c->g[gi].obs.mn < out->st->in_min[k]) out->st->in_min[k] = c->g[gi].obs.mn;
    if (c->g[gi].obs.mx > out->st->in_max[k]) out->st->in_max[k] = c->g[gi].obs.mx;
  }
  sum_weight_stats(c, out->st);
  /* pass 3: the quantized layer; its output feeds the next layer */
  t0 = cslim_now();
  rc = c->gpu ? cslim_gpu_calib_run_quantized(l, a) : cslim_layer_forward(c->m, l, a, NULL, NULL);
  if (!rc && c->anti) /* the smoothing set follows */
    rc = c->gpu ? cslim_gpu_calib_run_quantized_anti(l, c->anti) : cslim_layer_forward(c->m, l, c->anti, NULL, NULL);
  rep->t_forward += cslim_now() - t0;
  return rc; /* then written (write_layer) */
}

/* ---- work on a thread of its own (the writing overlaps the reading and quantizing) --------------------------- */

typedef struct bg_job {
  cslim_status (*fn)(void *arg);
  void *arg;
  pthread_t th;
  int running, threaded;
  cslim_status rc;
  char msg[512]; /* the error message (thread-local where it was raised) */
} bg_job;

static void *bg_main(void *p) {
  bg_job *j = p;
  j->rc = j->fn(j->arg);
  if (j->rc) snprintf(j->msg, sizeof j->msg, "%s", cslim_errmsg());
  return NULL;
}

/* fn(arg) on a thread, or here when no thread can be had */
static void bg_start(bg_job *j, cslim_status (*fn)(void *), void *arg) {
  j->fn = fn;
  j->arg = arg;
  j->rc = CSLIM_OK;
  j->threaded = pthread_create(&j->th, NULL, bg_main, j) == 0;
  if (!j->threaded) bg_main(j);
  j->running = 1;
}

/* Wait for it (the time waited counts as writing); its error, if any, becomes ours. */
static cslim_status bg_wait(bg_job *j, cslim_quant_report *rep) {
  if (!j->running) return CSLIM_OK;
  double t0 = cslim_now();
  if (j->threaded) pthread_join(j->th, NULL);
  j->running = 0;
  rep->t_write += cslim_now() - t0;
  return j->rc ? cslim_error(j->rc, "%s", j->msg) : CSLIM_OK;
}

/* A calibrated layer being written while the next one calibrates. */
static void layer_cleanup(qctx *c);

typedef struct export_job {
  bg_job bg;
  qctx c; /* the layer's state, handed over: layer, slots, observers */
  cslim_exporter *ex;
} export_job;

static cslim_status export_fn(void *arg) {
  export_job *j = arg;
  return export_layer(&j->c, j->ex);
}

/* Wait for the layer in flight and release it. */
static cslim_status export_wait(export_job *j, cslim_quant_report *rep) {
  if (!j->bg.running) return CSLIM_OK;
  cslim_status rc = bg_wait(&j->bg, rep);
  layer_cleanup(&j->c);
  cslim_layer_free(j->c.m, j->c.layer);
  j->c.layer = NULL;
  return rc;
}

/* Hand the calibrated layer in c to the writer (after the previous one is written). */
static cslim_status export_async(qctx *c, export_job *j, cslim_exporter *ex, cslim_quant_report *rep) {
  cslim_status rc = export_wait(j, rep);
  if (rc) return rc;
  j->c = *c;
  j->ex = ex;
  c->lq = NULL; /* now the job's */
  c->g = NULL;
  c->tokens = NULL;
  c->moe_in = NULL;
  c->n_slots = c->n_groups = 0;
  c->layer = NULL;
  bg_start(&j->bg, export_fn, j);
  return CSLIM_OK;
}

/* Write the quantized layer in c: on the writer thread (while the next layer is read and quantized), or
 * here when the writer could not do it alone — with transforms, an expert kept float is converted
 * through the transforms' hook, whose state is this layer's only until the next layer starts. */
static cslim_status write_layer(qctx *c, export_job *j, cslim_exporter *ex, cslim_quant_report *rep) {
  int alone = 1;
  for (int s = 0; c->x && s < c->n_slots; s++) {
    const lin_q *q = &c->lq[s];
    if (q->lin && q->type == CSLIM_QT_FLOAT && q->lin->expert >= 0 && !q->lin->w) alone = 0;
  }
  if (alone) return export_async(c, j, ex, rep);
  double t0 = cslim_now();
  cslim_status rc = export_layer(c, ex);
  rep->t_write += cslim_now() - t0;
  return rc;
}

/* Without calibration data (weight-only and dynamic schemes): no forward at
 * all — each Linear is converted, quantized and written. */
static cslim_status quantize_layer_data_free(qctx *c, cslim_exporter *ex, layer_out *out, cslim_quant_report *rep) {
  cslim_layer *l = c->layer;
  int E = l->is_moe ? l->n_experts : 0;
  cslim_status rc = layer_state_alloc(c);
  if (rc) return rc;
  double t0 = cslim_now();
  for (int s = 0; s < c->n_slots && !rc; s++) {
    lin_q *q = &c->lq[s];
    q->lin = slot_linear(l, s);
    if (!q->lin) continue;
    q->type = cslim_quant_plan_linear(c->p, q->lin->name);
    if (q->type == CSLIM_QT_FLOAT) continue;
    if ((rc = cslim_linear_materialize(c->m, q->lin))) break;
    rc = quantize_weights(c, q);
    /* the codes are what is written; a separate smoothing set still runs the float layer below */
    if (q->lin->expert >= 0 || !c->anti) cslim_linear_release(c->m, q->lin);
  }
  for (int e = 0; e < E; e++) out->fallback[e] = 2;
  sum_weight_stats(c, out->st);
  for (int k = 0; k < 5; k++) {
    out->st->in_min[k] = INFINITY;
    out->st->in_max[k] = -INFINITY;
  }
  rep->t_stats += cslim_now() - t0;
  return rc; /* then written (write_layer) */
}

static void layer_cleanup(qctx *c) {
  for (int s = 0; s < c->n_slots; s++) {
    lin_q *q = &c->lq[s];
    if (q->lin && q->rt) {
      q->lin->forward = NULL;
      q->lin->impl = NULL;
    }
    rt_free(q->rt);
    cslim_wq_free(&q->wq);
  }
  for (int i = 0; i < c->n_groups; i++) cslim_observer_free(&c->g[i].obs);
  free(c->lq);
  free(c->g);
  free(c->tokens);
  free(c->moe_in);
  c->lq = NULL;
  c->g = NULL;
  c->tokens = NULL;
  c->moe_in = NULL;
  c->moe_rows = 0;
}

/* ---- export ---------------------------------------------------------------------------------------------- */

/* Source bytes of a FLOAT tensor, or its float32 values when the source is
 * a fused expert tensor. */
static cslim_status put_float_linear(qctx *c, cslim_exporter *ex, cslim_linear *l) {
  char name[256];
  snprintf(name, sizeof name, "%s.weight", l->name);
  if (l->layout == CSLIM_W_PLAIN && l->src && !c->x) return cslim_exporter_put_tensor(ex, name, c->m->st, l->src);
  if (l->w) return cslim_exporter_put_f32(ex, name, l->w); /* transformed in memory */
  cslim_status rc = cslim_linear_materialize(c->m, l);
  if (!rc) rc = cslim_exporter_put_f32(ex, name, l->w);
  if (l->expert >= 0 && !c->layer->keep_experts) cslim_linear_release(c->m, l);
  return rc;
}

static cslim_status export_layer(qctx *c, cslim_exporter *ex) {
  cslim_layer *l = c->layer;
  cslim_st *st = c->m->st;
  char rest[160], name[256];
  static const char *norms[4] = {"input_layernorm.weight", "post_attention_layernorm.weight",
                                 "self_attn.q_norm.weight", "self_attn.k_norm.weight"};
  const float *vals[4] = {l->input_norm, l->post_norm, l->q_norm, l->k_norm};
  cslim_status rc = CSLIM_OK;
  for (int i = 0; i < 4 && !rc; i++) {
    snprintf(rest, sizeof rest, "layers.%d.%s", l->index, norms[i]);
    cslim_model_tensor_name(c->m, rest, name, sizeof name);
    rc = c->x ? cslim_exporter_put_f32(ex, name, vals[i]) : cslim_exporter_put_tensor(ex, name, st, cslim_st_find(st, name));
  }
  const float *nb[2] = {l->input_norm_b, l->post_norm_b};
  for (int i = 0; i < 2 && !rc; i++) {
    if (!nb[i]) continue;
    snprintf(rest, sizeof rest, "layers.%d.%s", l->index, i ? "post_attention_layernorm.bias" : "input_layernorm.bias");
    cslim_model_tensor_name(c->m, rest, name, sizeof name);
    rc = cslim_exporter_put_f32(ex, name, nb[i]);
  }
  for (int s = 0; s < c->n_slots && !rc; s++) {
    lin_q *q = &c->lq[s];
    if (!q->lin) continue;
    if (q->type == CSLIM_QT_FLOAT) {
      rc = put_float_linear(c, ex, q->lin);
      if (!rc && q->lin->b) {
        snprintf(name, sizeof name, "%s.bias", q->lin->name);
        rc = cslim_exporter_put_f32(ex, name, q->lin->b);
      }
      continue;
    }
    cslim_qresult r = {q->type, q->lin->out, q->lin->in, q->wq.q, q->wq.scale, q->wq.scale2, q->wq.group_size,
                       q->in_scale, q->in_offset, q->lin->b, q->wq.rowsum};
    rc = cslim_exporter_put_linear(ex, q->lin->name, &r);
  }
  return rc;
}

/* ---- the vision tower's Linears ------------------------------------------------------------------ */

/* Every Linear of the vision tower (Qwen3-VL), with the hook coordinates
 * (layer, kind) under which cslim_vision_forward shows its input. */
typedef struct vis_lin {
  char name[160];
  int out, in;
  int layer;
  cslim_input_kind kind;
  cslim_qtype type;
  cslim_observer obs;
} vis_lin;

static int vision_linears(cslim_model *m, const cslim_quant_params *p, vis_lin **out) {
  *out = NULL;
  if (!m->cfg.has_vision || !m->vis_prefix) return 0;
  const cslim_vision_config *v = &m->cfg.vision;
  const int D = v->hidden_size, NI = v->intermediate_size, W = D * v->spatial_merge_size * v->spatial_merge_size;
  int n = 4 * v->depth + 2 * (1 + v->n_deepstack), k = 0;
  vis_lin *L = calloc((size_t)n, sizeof *L);
  if (!L) return -1;
#define VL(lay, kd, o, i, ...)                                                                  \
  do {                                                                                          \
    snprintf(L[k].name, sizeof L[k].name, __VA_ARGS__);                                         \
    L[k].out = o, L[k].in = i, L[k].layer = lay, L[k].kind = kd;                                \
    L[k].type = cslim_quant_plan_linear(p, L[k].name);                                          \
    cslim_observer_init(&L[k].obs);                                                             \
    k++;                                                                                        \
  } while (0)
  for (int j = 0; j < v->depth; j++) {
    VL(j, CSLIM_IN_VIS_QKV, 3 * D, D, "%sblocks.%d.attn.qkv", m->vis_prefix, j);
    VL(j, CSLIM_IN_VIS_PROJ, D, D, "%sblocks.%d.attn.proj", m->vis_prefix, j);
    VL(j, CSLIM_IN_VIS_FC1, NI, D, "%sblocks.%d.mlp.linear_fc1", m->vis_prefix, j);
    VL(j, CSLIM_IN_VIS_FC2, D, NI, "%sblocks.%d.mlp.linear_fc2", m->vis_prefix, j);
  }
  VL(-1, CSLIM_IN_MERGER_FC1, W, W, "%smerger.linear_fc1", m->vis_prefix);
  VL(-1, CSLIM_IN_MERGER_FC2, v->out_hidden_size, W, "%smerger.linear_fc2", m->vis_prefix);
  for (int d = 0; d < v->n_deepstack; d++) {
    VL(1000 + d, CSLIM_IN_MERGER_FC1, W, W, "%sdeepstack_merger_list.%d.linear_fc1", m->vis_prefix, d);
    VL(1000 + d, CSLIM_IN_MERGER_FC2, v->out_hidden_size, W, "%sdeepstack_merger_list.%d.linear_fc2", m->vis_prefix, d);
  }
#undef VL
  *out = L;
  return k;
}

static void vision_linears_free(vis_lin *L, int n) {
  for (int i = 0; i < n; i++) cslim_observer_free(&L[i].obs);
  free(L);
}

/* A tensor that a quantized vision Linear replaces (its float weight and bias). */
static int replaced_by_vision_linear(const vis_lin *L, int n, const char *tensor) {
  for (int i = 0; i < n; i++) {
    size_t k = strlen(L[i].name);
    if (L[i].type != CSLIM_QT_FLOAT && !strncmp(tensor, L[i].name, k) &&
        (!strcmp(tensor + k, ".weight") || !strcmp(tensor + k, ".bias")))
      return 1;
  }
  return 0;
}

typedef struct vis_obs_ctx {
  vis_lin *L;
  int n;
} vis_obs_ctx;

static cslim_status vis_observe(void *ctx, const cslim_linear_group *g, float *x, int rows) {
  vis_obs_ctx *c = ctx;
  for (int i = 0; i < c->n; i++)
    if (c->L[i].layer == g->layer && c->L[i].kind == g->kind) {
      if (act_static(c->L[i].type)) cslim_observer_update(&c->L[i].obs, x, (size_t)rows * (size_t)c->L[i].in);
      break;
    }
  return CSLIM_OK;
}

/* Quantize and write the vision Linears the plan includes: weights as the
 * text Linears'; static activation ranges by min-max over the calibration
 * images run through the float tower (no error propagation inside it). */
static cslim_status quantize_vision_linears(qctx *c, vis_lin *L, int n, const cslim_vision_input *vin,
                                            cslim_exporter *ex, cslim_quant_report *rep) {
  int any = 0, need_static = 0;
  for (int i = 0; i < n; i++) {
    any |= L[i].type != CSLIM_QT_FLOAT;
    need_static |= act_static(L[i].type);
  }
  if (!any) return CSLIM_OK;
  cslim_status rc = CSLIM_OK;
  double t0 = cslim_now();
  if (need_static) { /* image samples present: checked before the run */
    vis_obs_ctx oc = {L, n};
    cslim_hooks h = {&oc, vis_observe, NULL};
    cslim_vision_output vo;
    rc = cslim_vision_forward(c->m, vin, &h, 0, &vo);
    cslim_vision_output_free(&vo);
    if (rc) return rc;
  }
  rep->t_forward += cslim_now() - t0;
  for (int i = 0; i < n && !rc; i++) {
    if (L[i].type == CSLIM_QT_FLOAT) continue;
    char name[192];
    cslim_linear lin = {0};
    snprintf(lin.name, sizeof lin.name, "%s", L[i].name);
    lin.out = L[i].out;
    lin.in = L[i].in;
    lin.expert = -1;
    lin.w = malloc((size_t)lin.out * (size_t)lin.in * sizeof(float));
    snprintf(name, sizeof name, "%s.weight", L[i].name);
    const cslim_tensor *wt = cslim_st_find(c->m->st, name);
    if (!lin.w) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for %s", name);
    if (!rc) {
      cslim_st_read_f32(c->m->st, wt, lin.w);
      cslim_st_release(c->m->st, wt);
      snprintf(name, sizeof name, "%s.bias", L[i].name);
      rc = cslim_load_vector(c->m, name, lin.out, &lin.b);
    }
    if (!rc) rc = cslim_xform_vision_linear(c->x, &lin);
    lin_q q = {0};
    q.lin = &lin;
    q.type = L[i].type;
    q.host = 1;
    if (!rc) rc = quantize_weights(c, &q);
    if (!rc && act_static(q.type)) {
      if (L[i].obs.count == 0) rc = cslim_error(CSLIM_ERR_NUMERIC, "%s: no activations observed", L[i].name);
      else cslim_qparams_asym(L[i].obs.mn, L[i].obs.mx, 8, &q.in_scale, &q.in_offset);
    }
    if (!rc) {
      cslim_qresult r = {q.type, lin.out, lin.in, q.wq.q, q.wq.scale, q.wq.scale2, q.wq.group_size,
                         q.in_scale, q.in_offset, lin.b, NULL};
      double t1 = cslim_now();
      rc = cslim_exporter_put_linear(ex, L[i].name, &r);
      rep->t_write += cslim_now() - t1;
    }
    if (q.wq_done) cslim_wq_free(&q.wq);
    free(lin.w);
    free(lin.b);
  }
  return rc;
}

/* Declare every output tensor, in layer order. */
/* Whether Linear `name` is written with a bias: the checkpoint has one, or
 * a smoothing shift creates one. */
static int linear_has_bias(cslim_model *m, const cslim_xform *x, const char *name, int is_moe, cslim_input_kind kind) {
  char b[300];
  snprintf(b, sizeof b, "%s.bias", name);
  return cslim_st_find(m->st, b) != NULL || cslim_xform_shifts(x, is_moe, kind);
}

static cslim_status declare_all(cslim_model *m, const cslim_quant_params *p, const cslim_xform *xf, const vis_lin *VLs,
                                int nvl, cslim_exporter *ex) {
  const cslim_text_config *t = &m->cfg.text;
  cslim_st *st = m->st;
  char name[256], rest[160];
  cslim_status rc = CSLIM_OK;
  int H = t->hidden_size, D = t->head_dim, Q = t->num_heads * D, KV = t->num_kv_heads * D;
  /* anything outside the text layers (embedding, final norm, vision tower) */
  cslim_config *cfg = &m->cfg;
  for (size_t i = 0; i < cslim_st_count(st) && !rc; i++) {
    const cslim_tensor *x = cslim_st_at(st, i);
    cslim_tensor_class k;
    cslim_classify_tensor(cfg, x->name, &k);
    if (k.kind == CSLIM_GROUP_TEXT_LAYER || !strcmp(x->name, "lm_head.weight")) continue;
    if (replaced_by_vision_linear(VLs, nvl, x->name)) continue;
    rc = cslim_exporter_add_float(ex, x->name, x->ndim, x->shape);
  }
  for (int i = 0; i < nvl && !rc; i++)
    if (VLs[i].type != CSLIM_QT_FLOAT)
      rc = cslim_exporter_add_linear(ex, VLs[i].name, VLs[i].type, VLs[i].out, VLs[i].in, 1, p->group_size);
  for (int l = 0; l < t->num_layers && !rc; l++) {
    static const char *norms[4] = {"input_layernorm.weight", "post_attention_layernorm.weight",
                                   "self_attn.q_norm.weight", "self_attn.k_norm.weight"};
    for (int i = 0; i < 4 && !rc; i++) {
      snprintf(rest, sizeof rest, "layers.%d.%s", l, norms[i]);
      cslim_model_tensor_name(m, rest, name, sizeof name);
      const cslim_tensor *x = cslim_st_find(st, name);
      rc = cslim_exporter_add_float(ex, name, x->ndim, x->shape);
    }
    int moe = cslim_layer_is_moe(t, l);
    for (int i = 0; i < 2 && !rc; i++) /* RMSNorm + bias after a shift */
      if (cslim_xform_shifts(xf, moe, i ? CSLIM_IN_GATE_UP : CSLIM_IN_QKV)) {
        int64_t hs[1] = {H};
        snprintf(rest, sizeof rest, "layers.%d.%s", l, i ? "post_attention_layernorm.bias" : "input_layernorm.bias");
        cslim_model_tensor_name(m, rest, name, sizeof name);
        rc = cslim_exporter_add_float(ex, name, 1, hs);
      }
#define LINEAR(what, out, in, kind)                                                                 \
  if (!rc) {                                                                                        \
    snprintf(rest, sizeof rest, "layers.%d.%s", l, what);                                           \
    cslim_model_tensor_name(m, rest, name, sizeof name);                                            \
    rc = cslim_exporter_add_linear(ex, name, cslim_quant_plan_linear(p, name), out, in,             \
                                   t->attention_bias && (int)kind <= CSLIM_IN_O ? 1 :               \
                                   linear_has_bias(m, xf, name, moe, kind), p->group_size);         \
  }
    LINEAR("self_attn.q_proj", Q, H, CSLIM_IN_QKV)
    LINEAR("self_attn.k_proj", KV, H, CSLIM_IN_QKV)
    LINEAR("self_attn.v_proj", KV, H, CSLIM_IN_QKV)
    LINEAR("self_attn.o_proj", H, Q, CSLIM_IN_O)
    if (!moe) {
      LINEAR("mlp.gate_proj", t->intermediate_size, H, CSLIM_IN_GATE_UP)
      LINEAR("mlp.up_proj", t->intermediate_size, H, CSLIM_IN_GATE_UP)
      LINEAR("mlp.down_proj", H, t->intermediate_size, CSLIM_IN_DOWN)
    } else {
      LINEAR("mlp.gate", t->num_experts, H, CSLIM_IN_ROUTER)
      for (int e = 0; e < t->num_experts; e++) {
        char what[96];
        int NI = t->moe_intermediate_size;
        snprintf(what, sizeof what, "mlp.experts.%d.gate_proj", e);
        LINEAR(what, NI, H, CSLIM_IN_ROUTER)
        snprintf(what, sizeof what, "mlp.experts.%d.up_proj", e);
        LINEAR(what, NI, H, CSLIM_IN_ROUTER)
        snprintf(what, sizeof what, "mlp.experts.%d.down_proj", e);
        LINEAR(what, H, NI, CSLIM_IN_ROUTER)
      }
    }
#undef LINEAR
  }
  /* lm_head: written even when tied (two copies, as msModelSlim v1 does) */
  if (!rc) {
    int64_t sh[2] = {t->vocab_size, H};
    rc = cslim_exporter_add_float(ex, "lm_head.weight", 2, sh);
  }
  return rc;
}

static cslim_status write_outer(cslim_model *m, cslim_xform *xf, const vis_lin *VLs, int nvl, cslim_exporter *ex) {
  cslim_st *st = m->st;
  cslim_status rc = CSLIM_OK;
  int done = 0;
  for (size_t i = 0; i < cslim_st_count(st) && !rc; i++) {
    const cslim_tensor *x = cslim_st_at(st, i);
    cslim_tensor_class k;
    cslim_classify_tensor(&m->cfg, x->name, &k);
    if (k.kind == CSLIM_GROUP_TEXT_LAYER || !strcmp(x->name, "lm_head.weight")) continue;
    if (replaced_by_vision_linear(VLs, nvl, x->name)) continue;
    rc = cslim_xform_put_outer(xf, ex, x, &done); /* rotated embedding, final norm, merger outputs */
    if (!rc && !done) rc = cslim_exporter_put_tensor(ex, x->name, st, x);
    cslim_st_release(st, x);
  }
  if (!rc) rc = cslim_xform_put_outer(xf, ex, m->lm_head, &done);
  if (!rc && !done) rc = cslim_exporter_put_tensor(ex, "lm_head.weight", st, m->lm_head);
  cslim_st_release(st, m->lm_head);
  return rc;
}

/* write_outer as a job of its own: the copy of the embedding and lm_head overlaps the layers */
typedef struct outer_job {
  bg_job bg;
  cslim_model *m;
  cslim_xform *xf;
  const vis_lin *VLs;
  int nvl;
  cslim_exporter *ex;
} outer_job;

static cslim_status outer_fn(void *arg) {
  outer_job *j = arg;
  return write_outer(j->m, j->xf, j->VLs, j->nvl, j->ex);
}

/* ---- calibration data ------------------------------------------------------------------------------------- */

typedef struct calib_set {
  int32_t *ids;
  int *lens;
  int n;
  int total;
  cslim_vision_input vin; /* the images of the image samples, in order (Qwen3-VL) */
} calib_set;

static void calib_free(calib_set *s) {
  free(s->ids);
  free(s->lens);
  cslim_vision_input_free(&s->vin);
  memset(s, 0, sizeof *s);
}



/* pr: how image samples become prompts; NULL for a model without a vision tower */
static cslim_status tokenize_samples(cslim_tokenizer *tok, const cslim_prompter *pr, const cslim_dataset *ds,
                                     size_t first, size_t count, int max_len, calib_set *out) {
  memset(out, 0, sizeof *out);
  out->lens = calloc(count ? count : 1, sizeof(int));
  size_t cap = 0;
  cslim_status rc = out->lens ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (size_t i = first; i < first + count && !rc; i++) {
    const cslim_sample *s = &ds->samples[i];
    if (s->image && !pr) {
      rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: sample %zu has an image, and this model has no vision tower",
                       ds->source, i + 1);
      break;
    }
    cslim_ids ids = {0};
    if (s->image) {
      /* a user turn with the image, then the text; never truncated (a cut
       * inside the image's pad run would orphan its embeddings) */
      const char *img[1] = {s->image};
      cslim_vision_prompt vp = {img, 1, s->text, NULL, 1, 1};
      rc = cslim_vision_prompt_build(tok, pr, &vp, &ids, &out->vin);
    } else {
      rc = cslim_tokenizer_encode(tok, s->text, strlen(s->text), &ids);
    }
    if (rc) {
      cslim_ids_free(&ids);
      cslim_error_context("%s: sample %zu", ds->source, i + 1);
      break;
    }
    int n = (int)ids.n;
    if (max_len > 0 && n > max_len && !s->image) n = max_len;
    if (n > 0) {
      if ((size_t)(out->total + n) > cap) {
        cap = (size_t)(out->total + n) * 2;
        int32_t *g = realloc(out->ids, cap * sizeof(int32_t));
        if (!g) {
          cslim_ids_free(&ids);
          rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
          break;
        }
        out->ids = g;
      }
      memcpy(out->ids + out->total, ids.v, (size_t)n * sizeof(int32_t));
      out->lens[out->n++] = n;
      out->total += n;
    }
    cslim_ids_free(&ids);
  }
  if (!rc && out->n == 0) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: no non-empty samples", ds->source);
  if (rc) calib_free(out);
  return rc;
}

/* ---- the run ------------------------------------------------------------------------------------------------ */

/* The residual stream of a tokenized set; image samples get their embeddings
 * and deepstack features from the float vision tower. */
static cslim_status embed_set(cslim_model *m, calib_set *s, const char *what, cslim_acts **a, cslim_quant_report *rep) {
  if (!s->vin.n_images) return cslim_acts_embed(m, s->ids, s->lens, s->n, a);
  double t0 = cslim_now();
  cslim_vision_output vo;
  cslim_status rc = cslim_vision_forward(m, &s->vin, NULL, 0, &vo);
  if (!rc) rc = cslim_acts_embed_vision(m, s->ids, s->lens, s->n, &s->vin, &vo, a);
  cslim_vision_output_free(&vo);
  rep->t_forward += cslim_now() - t0;
  CSLIM_INFO("%d %s images through the vision tower (%d patches)", s->vin.n_images, what, s->vin.n_patches);
  return rc;
}

void cslim_quant_report_free(cslim_quant_report *r) {
  free(r->layers);
  free(r->expert_tokens);
  free(r->expert_fallback);
  memset(r, 0, sizeof *r);
}

cslim_status cslim_quantize(const cslim_quant_params *p, cslim_quant_report *rep) {
  memset(rep, 0, sizeof *rep);
  double t_start = cslim_now();
  const int64_t disk0 = cslim_disk_bytes_read();
  if (!p->model_path || !p->save_path) return cslim_error(CSLIM_ERR_INVALID, "model and save paths are required");
  if (!p->calib_data) {
    /* data-free: only weight-only and dynamic schemes */
    if (act_static(p->quant_type))
      return cslim_error(CSLIM_ERR_INVALID, "%s needs calibration data (--calib_data)",
                         cslim_scheme_get(p->quant_type)->label);
    for (int i = 0; i < p->n_mix; i++)
      if (act_static(p->mix[i].type))
        return cslim_error(CSLIM_ERR_INVALID, "mix rule '%s' -> %s needs calibration data (--calib_data)",
                           p->mix[i].pattern, cslim_scheme_get(p->mix[i].type)->label);
  }
  if (p->group_size && (p->group_size < 32 || p->group_size > 256 || (p->group_size & (p->group_size - 1))))
    return cslim_error(CSLIM_ERR_INVALID, "group size %d: use 32, 64, 128 or 256", p->group_size);
  /* calibration runs each quantized Linear as the engine does; per-group W4A8 has no such kernel */
  int w4 = p->quant_type == CSLIM_QT_W4A8_DYNAMIC;
  for (int i = 0; i < p->n_mix; i++) w4 |= p->mix[i].type == CSLIM_QT_W4A8_DYNAMIC;
  if (w4 && p->group_size > 0 && p->calib_data)
    return cslim_error(CSLIM_ERR_INVALID, "--group_size %d with --calib_data: per-group W4A8 has no integer kernel to "
                       "calibrate through (the engines that load it run it weight-only); quantize it without "
                       "--calib_data (smoothing statistics may come from --anti_data) or per channel (--group_size 0)",
                       p->group_size);
  cslim_model *m = NULL;
  cslim_tokenizer *tok = NULL;
  cslim_dataset *ds = NULL;
  cslim_staging *sg = NULL;
  cslim_exporter *ex = NULL;
  cslim_acts *a = NULL;
  calib_set cal = {0}, hold = {0}, anti_set = {0};
  cslim_dataset *ads = NULL;
  cslim_acts *anti = NULL;
  cslim_xform *xf = NULL;
  qctx c = {0};
  cslim_prompter pr;
  const cslim_prompter *prp = NULL;
  int hub = p->quant_type == CSLIM_QT_FLOAT && p->n_mix == 0; /* a float checkpoint: the transforms only */
  cslim_status rc = cslim_model_open(p->model_path, &m);
  if (!rc && cslim_model_is_quantized(m))
    rc = cslim_error(CSLIM_ERR_INVALID, "%s is already a quantized checkpoint", p->model_path);
  int sparse = p->quant_type == CSLIM_QT_W8A8S;
  for (int i = 0; i < p->n_mix; i++) sparse |= p->mix[i].type == CSLIM_QT_W8A8S;
  if (!rc && sparse && p->act_method == 3)
    rc = cslim_error(CSLIM_ERR_INVALID, "act_method 3 is not allowed with W8A8S (is_lowbit): use 1 or 2");
  if (!rc && sparse && (p->sparse.fraction < 0.01 - 1e-12 || p->sparse.fraction > 0.1 + 1e-12))
    rc = cslim_error(CSLIM_ERR_INVALID, "fraction %g is not in [0.01, 0.1]", p->sparse.fraction);
  if (!rc && sparse && p->sparse.use_sigma && (p->sparse.sigma_factor < 1.0 || p->sparse.sigma_factor > 4.0))
    rc = cslim_error(CSLIM_ERR_INVALID, "sigma_factor %g is not in [1.0, 4.0]", p->sparse.sigma_factor);
  if (!rc) rc = cslim_xform_create(m, p, &xf);
  const cslim_text_config *t = m ? &m->cfg.text : NULL;
  if (!rc && m->cfg.has_vision && (p->calib_data || p->anti_data)) {
    prp = &pr;
    rc = cslim_prompter_load(m->path, &m->cfg, &pr);
  }
  /* calibration data: the first calib_samples samples; the next `holdout` for the final check */
  if (!rc && (p->calib_data || (p->anti_data && xf))) rc = cslim_tokenizer_load(p->model_path, &tok);
  cslim_dataset_opts dso = {0, p->calib_default_text};
  if (!rc && p->calib_data) rc = cslim_dataset_load(p->calib_data, &dso, &ds);
  if (!rc && ds) {
    size_t nc = p->calib_samples > 0 && (size_t)p->calib_samples < ds->n ? (size_t)p->calib_samples : ds->n;
    size_t nh = (size_t)(p->holdout > 0 ? p->holdout : 0);
    size_t h0 = nc;
    if (nc + nh > ds->n) { /* not enough spare samples: check on the last calibration ones */
      if (nc == ds->n && nh) CSLIM_WARN("%s: every sample is used for calibration; the final check reuses the last %zu",
                                        ds->source, nh < nc ? nh : nc);
      nh = nh < ds->n ? nh : ds->n;
      h0 = ds->n - nh;
    }
    rc = tokenize_samples(tok, prp, ds, 0, nc, p->calib_seq_len, &cal);
    if (!rc && nh) rc = tokenize_samples(tok, prp, ds, h0, nh, p->calib_seq_len, &hold);
  }
  /* a separate statistics set for the smoothing */
  if (!rc && p->anti_data && cslim_xform_smooths(xf)) {
    rc = cslim_dataset_load(p->anti_data, &dso, &ads);
    size_t na = p->anti_samples > 0 && (size_t)p->anti_samples < ads->n ? (size_t)p->anti_samples : ads->n;
    if (!rc) rc = tokenize_samples(tok, prp, ads, 0, na, p->calib_seq_len, &anti_set);
  }
  if (!rc) rc = cslim_staging_open(p->save_path, p->overwrite, &sg);
  cslim_export_opts eo = {0};
  if (!rc) {
    eo.dir = cslim_staging_path(sg);
    eo.model_dir = p->model_path;
    eo.model_dtype = p->save_dtype_set ? p->save_dtype : m->cfg.dtype;
    eo.part_file_size = p->part_file_size;
    eo.saver = hub ? CSLIM_SAVER_HUB : p->mindie_format ? CSLIM_SAVER_MINDIE : p->legacy_names ? CSLIM_SAVER_V0
                                                                                            : CSLIM_SAVER_V1;
    eo.group_size = p->group_size;
    rc = cslim_exporter_create(&eo, &ex);
  }
  vis_lin *VLs = NULL;
  int nvl = 0;
  if (!rc && (nvl = vision_linears(m, p, &VLs)) < 0) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int i = 0; i < nvl && !rc; i++)
    if (act_static(VLs[i].type) && !cal.vin.n_images)
      rc = cslim_error(CSLIM_ERR_INVALID, "%s: static activation quantization of the vision tower needs image "
                       "calibration samples (or a dynamic scheme for model.visual.*)", VLs[i].name);
  if (!rc) rc = declare_all(m, p, xf, VLs, nvl, ex);
  if (!rc) rc = cslim_exporter_begin(ex);
  if (!rc) {
    rep->model_quant_type = cslim_exporter_model_type(ex);
    memcpy(rep->n_linear, cslim_exporter_linear_counts(ex), sizeof rep->n_linear);
    rep->n_layers = t->num_layers;
    rep->layers = calloc((size_t)t->num_layers, sizeof *rep->layers);
    rep->n_experts = t->num_experts;
    rep->expert_min_tokens = p->expert_min_tokens;
    size_t ne = (size_t)t->num_layers * (size_t)(t->num_experts ? t->num_experts : 1);
    rep->expert_tokens = calloc(ne, sizeof(int));
    rep->expert_fallback = calloc(ne, sizeof(int));
    rep->calib_tokens = cal.total;
    rep->calib_samples = cal.n;
    if (!rep->layers || !rep->expert_tokens || !rep->expert_fallback) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  outer_job outer = {.m = m, .xf = xf, .VLs = VLs, .nvl = nvl, .ex = ex};
  if (!rc) bg_start(&outer.bg, outer_fn, &outer); /* the rotation it may apply is read-only */
  if (!rc && ds) rc = embed_set(m, &cal, "calibration", &a, rep);
  if (!rc && anti_set.n) rc = embed_set(m, &anti_set, "anti-outlier", &anti, rep);
  if (!rc) rc = cslim_xform_acts(xf, a);
  if (!rc && anti) rc = cslim_xform_acts(xf, anti);
  c.p = p;
  c.m = m;
  c.t = t;
  c.x = xf;
  c.anti = anti;
  if (!rc && !ds && cslim_device_is_gpu())
    snprintf(rep->gpu_note, sizeof rep->gpu_note, "unused (no calibration data: weights are quantized on the CPU)");
  if (!rc && ds && cslim_device_is_gpu()) { /* the whole layer on the GPU, when it can take the run */
    const char *why = cslim_gpu_calib_unsupported(m, p, anti, a);
    if (why) {
      snprintf(rep->gpu_note, sizeof rep->gpu_note, "float GEMMs only (%s)", why);
      CSLIM_INFO("%s: float GEMMs only on the GPU (%s)", cslim_device_describe(), why);
    } else {
      double t0 = cslim_now();
      rc = cslim_gpu_calib_begin(m, p, xf, a, anti);
      rep->t_forward += cslim_now() - t0;
      c.gpu = rep->on_gpu = !rc;
    }
  }
  export_job job = {0};
  cslim_progress prog;
  int prog_on = !rc;
  if (prog_on) cslim_progress_begin(&prog, "quantizing layers", (uint64_t)t->num_layers);
  for (int l = 0; !rc && l < t->num_layers; l++) {
    if (cslim_interrupted()) {
      rc = cslim_error(CSLIM_ERR_INTERRUPTED, "interrupted: %s was not written", p->save_path);
      break;
    }
    double t0 = cslim_now();
    if ((rc = cslim_layer_load(m, l, &c.layer))) break;
    const int next = l + 1 < t->num_layers ? l + 1 : -1;
    cslim_layer_prefetch(m, next); /* the kernel reads the next layer while this one is worked on */
    if (!rc && c.gpu && !xf) rc = cslim_gpu_calib_upload(m, c.layer);
    rep->t_read += cslim_now() - t0;
    t0 = cslim_now();
    if (!rc && c.gpu && xf) rc = cslim_gpu_calib_transform(m, xf, c.layer, a, anti); /* statistics from the GPU */
    else if (!rc) rc = cslim_xform_layer(xf, c.layer, anti ? anti : a);
    rep->t_transform += cslim_now() - t0;
    int E = t->num_experts;
    layer_out lo = {&rep->layers[l], rep->expert_tokens + (size_t)l * (size_t)(E ? E : 1),
                    rep->expert_fallback + (size_t)l * (size_t)(E ? E : 1)};
    CSLIM_DEBUG("layer %d: loaded and transformed; RSS %.0f MB", l, (double)cslim_current_rss() / 1e6);
    if (!rc) rc = ds ? calibrate_layer(&c, a, ex, &lo, rep) : quantize_layer_data_free(&c, ex, &lo, rep);
    CSLIM_DEBUG("layer %d: calibrated and quantized; RSS %.0f MB", l, (double)cslim_current_rss() / 1e6);
    if (!rc && !ds && anti) rc = cslim_layer_forward(m, c.layer, anti, NULL, NULL); /* float: nothing quantized ran */
    if (!rc) rc = write_layer(&c, &job, ex, rep);
    layer_cleanup(&c);
    cslim_xform_layer_done(xf);
    cslim_layer_free(m, c.layer);
    c.layer = NULL;
    rep->layers[l].seconds = cslim_now() - t0;
    CSLIM_DEBUG("layer %d: done in %.3f s; RSS %.0f MB (peak %.0f MB)", l, rep->layers[l].seconds,
                (double)cslim_current_rss() / 1e6, (double)cslim_peak_rss() / 1e6);
    cslim_progress_advance(&prog, 1);
  }
  cslim_status wrc = export_wait(&job, rep);
  if (!rc) rc = wrc;
  wrc = bg_wait(&outer.bg, rep);
  if (!rc) rc = wrc;
  if (prog_on) cslim_progress_end(&prog);
  if (c.gpu) {
    cslim_gpu_calib_end(m);
    rep->gpu_peak_bytes = cslim_gpu_calib_peak_memory();
    rep->gpu_devices = cslim_gpu_calib_devices();
  }
  if (!rc) rc = quantize_vision_linears(&c, VLs, nvl, &cal.vin, ex, rep);
  if (!rc) rc = cslim_xform_export_rotation(xf, ex);
  if (!rc) {
    double t0 = cslim_now();
    rc = cslim_exporter_finish(ex);
    rep->t_write += cslim_now() - t0;
    rep->bytes_written = cslim_exporter_bytes_written(ex);
  }
  /* the written checkpoint, evaluated as the engine computes it */
  if (!rc && hold.n) {
    double t0 = cslim_now();
    rc = cslim_verify_checkpoint(m, cslim_staging_path(sg), hold.ids, hold.lens, hold.n, &hold.vin, &rep->kl,
                                 &rep->top1, &rep->verify_tokens);
    rep->verified = !rc;
    rep->t_verify = cslim_now() - t0;
  }
  if (!rc && p->extra_name && p->extra_text) {
    char path[4352];
    snprintf(path, sizeof path, "%s/%s", cslim_staging_path(sg), p->extra_name);
    rc = cslim_write_text(path, p->extra_text);
  }
  if (!rc && cslim_interrupted()) rc = cslim_error(CSLIM_ERR_INTERRUPTED, "interrupted: %s was not written", p->save_path);
  if (!rc) {
    snprintf(rep->out_dir, sizeof rep->out_dir, "%s", cslim_staging_target(sg));
    rc = cslim_staging_commit(sg);
    sg = NULL;
  }
  if (sg) cslim_staging_abort(sg);
  if (m) rep->bytes_read = cslim_st_bytes_read(m->st);
  cslim_exporter_free(ex);
  vision_linears_free(VLs, nvl > 0 ? nvl : 0);
  cslim_acts_free(a);
  cslim_acts_free(anti);
  cslim_xform_free(xf);
  calib_free(&cal);
  calib_free(&hold);
  calib_free(&anti_set);
  cslim_dataset_free(ds);
  cslim_dataset_free(ads);
  cslim_tokenizer_free(tok);
  cslim_model_close(m);
  rep->seconds = cslim_now() - t_start;
  rep->peak_rss = cslim_peak_rss();
  const int64_t disk1 = cslim_disk_bytes_read();
  rep->disk_read = disk0 >= 0 && disk1 >= disk0 ? disk1 - disk0 : -1;
  return rc;
}
