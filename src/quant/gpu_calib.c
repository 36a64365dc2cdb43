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

static const char *const g_linears[CSLIM_GPU_SLOTS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                       "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                       "mlp.down_proj"};

static int gpu_dtype(cslim_dtype t) { return t == CSLIM_BF16 ? CSLIM_GPU_BF16 : t == CSLIM_F16 ? CSLIM_GPU_F16 : CSLIM_GPU_F32; }

const char *cslim_gpu_calib_unsupported(cslim_model *m, const cslim_quant_params *p, int has_xform, int has_anti,
                                        const cslim_acts *a) {
  static char why[256];
  const cslim_text_config *t = &m->cfg.text;
  if (!eng()) return "no GPU layer engine";
  if (has_xform || has_anti) return "outlier suppression and rotation run on the CPU";
  if (!a || a->visual) return "image samples run on the CPU";
  for (int l = 0; l < t->num_layers; l++) {
    if (cslim_layer_is_moe(t, l)) return "MoE layers run on the CPU";
    for (int s = 0; s < CSLIM_GPU_SLOTS; s++) {
      char rest[160], name[192];
      snprintf(rest, sizeof rest, "layers.%d.%s", l, g_linears[s]);
      cslim_model_tensor_name(m, rest, name, sizeof name);
      const cslim_tensor *w;
      snprintf(rest, sizeof rest, "%s.weight", name);
      if (!(w = cslim_st_find(m->st, rest)) || w->ndim != 2 ||
          (w->dtype != CSLIM_BF16 && w->dtype != CSLIM_F16 && w->dtype != CSLIM_F32)) {
        snprintf(why, sizeof why, "%s is not a bf16/f16/f32 matrix", rest);
        return why;
      }
      cslim_qtype q = cslim_quant_plan_linear(p, name);
      if (q == CSLIM_QT_FLOAT) continue;
      int ok = q == CSLIM_QT_W8A8 || q == CSLIM_QT_W8A8_DYNAMIC || q == CSLIM_QT_W8A8_MIX || q == CSLIM_QT_W8A16 ||
               (q == CSLIM_QT_W4A8_DYNAMIC && p->group_size == 0);
      if (!ok || cslim_quant_plan_wmethod(p, name, q) != CSLIM_WM_MINMAX) {
        snprintf(why, sizeof why, "%s: %s weights with this method are quantized on the CPU", name,
                 cslim_scheme_get(q)->label);
        return why;
      }
    }
  }
  return NULL;
}

static size_t g_peak;
static int g_rows; /* calibration rows on the GPU */
/* Page-locked buffers for the weight codes coming back, two sets: a layer's
 * codes are written out while the next layer quantizes into the other set. */
static void *g_pin[2][CSLIM_GPU_SLOTS];
static size_t g_pin_cap[2][CSLIM_GPU_SLOTS];
static int g_set; /* the set of the layer being calibrated */

cslim_status cslim_gpu_calib_begin(cslim_model *m, const cslim_quant_params *p, const cslim_acts *a) {
  const cslim_text_config *t = &m->cfg.text;
  const int half = t->head_dim / 2;
  cslim_gpu_dims d = {t->hidden_size, t->intermediate_size, t->num_heads, t->num_kv_heads, t->head_dim,
                      (float)t->rms_norm_eps, gpu_dtype(m->cfg.dtype), p->gpu_gemm};
  float *cs = malloc((size_t)a->total * (size_t)half * sizeof(float));
  float *sn = malloc((size_t)a->total * (size_t)half * sizeof(float));
  cslim_status rc = cs && sn ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory for the RoPE tables");
  if (!rc) rc = cslim_rope_tables(m, a->pos, a->total, 0, a->total, cs, sn);
  if (!rc && eng()->begin(&d, a->total, a->n_seqs, a->seq_start, a->h, cs, sn)) rc = engine_error("moving the calibration rows");
  free(cs);
  free(sn);
  if (!rc) m->defer_linears = 1;
  g_rows = a->total;
  g_peak = 0;
  return rc;
}

void cslim_gpu_calib_end(cslim_model *m) {
  for (int i = 0; i < 2; i++)
    for (int s = 0; s < CSLIM_GPU_SLOTS; s++) {
      eng()->host_free(g_pin[i][s]);
      g_pin[i][s] = NULL;
      g_pin_cap[i][s] = 0;
    }
  size_t now = 0, peak = 0;
  eng()->memory(&now, &peak);
  if (peak > g_peak) g_peak = peak;
  eng()->end(NULL);
  m->defer_linears = 0;
}

size_t cslim_gpu_calib_peak_memory(void) { return g_peak; }

static cslim_linear *slot_lin(cslim_layer *l, int s) {
  cslim_linear *all[CSLIM_GPU_SLOTS] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
  return all[s];
}

cslim_status cslim_gpu_calib_upload(cslim_model *m, cslim_layer *l, int next) {
  g_set = l->index & 1;
  if (next >= 0) /* the kernel reads the next layer from disk while this one computes */
    for (int s = 0; s < CSLIM_GPU_SLOTS; s++) {
      char rest[160], name[192];
      snprintf(rest, sizeof rest, "layers.%d.%s.weight", next, g_linears[s]);
      cslim_model_tensor_name(m, rest, name, sizeof name);
      const cslim_tensor *t = cslim_st_find(m->st, name);
      if (t) cslim_st_prefetch(m->st, t);
    }
  if (eng()->set_norms(l->input_norm, l->input_norm_b, l->post_norm, l->post_norm_b, l->q_norm, l->k_norm))
    return engine_error("uploading the norms");
  for (int s = 0; s < CSLIM_GPU_SLOTS; s++) {
    cslim_linear *x = slot_lin(l, s);
    const cslim_tensor *t = x->src;
    if (eng()->set_weight(s, gpu_dtype(t->dtype), t->data, x->out, x->in, x->b))
      return engine_error(x->name);
    cslim_st_release(m->st, t); /* on the GPU now: the page cache may drop it */
  }
  return CSLIM_OK;
}

cslim_status cslim_gpu_calib_observe(cslim_layer *l, int hist, cslim_observer *obs[4]) {
  cslim_gpu_stats st[CSLIM_GPU_GROUPS];
  cslim_gpu_hist h[CSLIM_GPU_GROUPS];
  memset(h, 0, sizeof h);
  double *counts[CSLIM_GPU_GROUPS] = {0};
  cslim_status rc = CSLIM_OK;
  for (int g = 0; hist && g < CSLIM_GPU_GROUPS && !rc; g++) {
    if (!obs[g]->hist) continue;
    h[g].bins = obs[g]->bins;
    h[g].lo = obs[g]->h_min;
    h[g].hi = obs[g]->h_max;
    h[g].counts = counts[g] = calloc((size_t)obs[g]->bins, sizeof(double));
    if (!counts[g]) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  if (!rc && eng()->float_pass(hist ? CSLIM_GPU_PASS_HIST : CSLIM_GPU_PASS_STATS, st, h))
    rc = engine_error("the float pass");
  const int width[CSLIM_GPU_GROUPS] = {l->q.in, l->o.in, l->gate.in, l->down.in};
  for (int g = 0; g < CSLIM_GPU_GROUPS && !rc; g++) {
    cslim_observer *o = obs[g];
    if (hist) {
      if (counts[g])
        for (int b = 0; b < o->bins; b++) o->hist[b] += counts[g][b];
      continue;
    }
    if (st[g].mn < o->mn || st[g].mn != st[g].mn) o->mn = st[g].mn;
    if (st[g].mx > o->mx || st[g].mx != st[g].mx) o->mx = st[g].mx;
    o->sum += st[g].sum;
    o->sumsq += st[g].sumsq;
    o->count += (int64_t)g_rows * width[g];
    o->rows += g_rows;
  }
  for (int g = 0; g < CSLIM_GPU_GROUPS; g++) free(counts[g]);
  return rc;
}

cslim_status cslim_gpu_calib_quantize_weight(const cslim_linear *l, int bits, cslim_wq *out) {
  memset(out, 0, sizeof *out);
  out->n = l->out;
  out->k = l->in;
  out->bits = bits;
  size_t nq = (size_t)l->out * (size_t)l->in;
  void **pin = &g_pin[g_set][l->slot];
  if (g_pin_cap[g_set][l->slot] < nq) {
    eng()->host_free(*pin);
    *pin = eng()->host_alloc(nq);
    g_pin_cap[g_set][l->slot] = *pin ? nq : 0;
  }
  out->q = *pin;
  out->q_borrowed = 1;
  out->scale = malloc((size_t)l->out * sizeof(float));
  out->rowsum = malloc((size_t)l->out * sizeof(int64_t));
  if (!out->q || !out->scale || !out->rowsum) {
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory quantizing a %d x %d weight", l->out, l->in);
  }
  int bad = -1;
  if (eng()->quantize_weight(l->slot, bits, out->q, out->scale, out->rowsum, &out->err_sq, &out->w_sq, &bad)) {
    cslim_wq_free(out);
    return engine_error("weight quantization");
  }
  if (bad >= 0) {
    cslim_wq_free(out);
    return cslim_error(CSLIM_ERR_NUMERIC, "row %d has a non-finite value (nothing was written)", bad);
  }
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

cslim_status cslim_gpu_calib_run_quantized(cslim_layer *l) {
  if (eng()->quant_pass()) return engine_error("the quantized pass");
  size_t now = 0, peak = 0;
  eng()->memory(&now, &peak);
  if (peak > g_peak) g_peak = peak;
  (void)l;
  return CSLIM_OK;
}
