/* QuaRot and outlier smoothing inside the layer-wise run (spec §3.9–§3.14).
 *
 * Per decoder layer, before calibration:
 *   1. rotation: input_layernorm's γ fused into q/k/v, post_attention_layernorm's
 *      into gate/up (MoE: the router and every expert's gate/up); q, k, v,
 *      gate, up, router ← W·R; o, down ← Rᵀ·W; per head v ← Rᵤᵥᵀ·v and
 *      o ← o·Rᵤᵥ (block-diagonal over heads);
 *   2. smoothing: one float pass over the statistics set observes every
 *      subgraph's input (per-channel min / max, and the first rows for the
 *      searching methods); scales (and shifts) are computed and folded in
 *      the order up-down, ov, norm-linear (spec §3.9):
 *        norm→linears  γ /= s, β = (β − z)/s, W[:,c] *= s_c, b += W·z
 *        v→o           W_o[:,c] *= s_o,c, W_v[r,:] /= s_v,r, b_v /= s_v
 *        up→down       W_down[:,c] *= s_c, W_up[c,:] /= s_c
 * Experts are converted lazily (and again in later passes); the model calls
 * back on every conversion and the expert gets the same treatment then. */
#include "quant/xform.h"

#include "quant/smoother.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cslim_xform {
  cslim_model *m;
  const cslim_quant_params *p;
  cslim_anti_method anti;
  double alpha, scale_min;
  unsigned sg;  /* CSLIM_SG_* subgraph types visited */
  int experts;  /* MoE experts' up-down too */
  int shift;    /* norm subgraphs shift (m2 always) */
  int sample_cap;
  cslim_rotation *R, *Ruv;
  /* the current layer */
  cslim_layer *l;
  float *post_gamma;  /* post_attention_layernorm γ before fusion (MoE experts) */
  float **exp_scale;  /* [E]: up→down scales of each expert, or NULL */
  /* statistics pass */
  int n_groups;
  cslim_chstats *st; /* per group: QKV, O, GATE_UP, DOWN, ROUTER, then per expert (gate/up, down) */
  float **sample;    /* first rows of a group's input */
  int *sample_rows;
  int want_sample;
  const cslim_acts *acts; /* what the statistics pass ran on (sequences and positions of the samples) */
};

static int gidx(cslim_input_kind kind, int expert) {
  return expert < 0 ? (int)kind : 5 + 2 * expert + (kind == CSLIM_IN_DOWN);
}

int cslim_xform_rotates(const cslim_xform *x) { return x && x->R; }
int cslim_xform_smooths(const cslim_xform *x) { return x && x->anti != CSLIM_ANTI_NONE; }

int cslim_xform_shifts(const cslim_xform *x, int is_moe, cslim_input_kind kind) {
  if (!x || !x->shift || !(x->sg & CSLIM_SG_NORM_LINEAR)) return 0;
  return kind == CSLIM_IN_QKV || (kind == CSLIM_IN_GATE_UP && !is_moe);
}

static cslim_status on_expert(void *ctx, cslim_linear *l);

cslim_status cslim_xform_create(cslim_model *m, const cslim_quant_params *p, cslim_xform **out) {
  *out = NULL;
  if (p->anti_method == CSLIM_ANTI_NONE && !p->rot) return CSLIM_OK;
  const cslim_text_config *t = &m->cfg.text;
  if (p->anti_method != CSLIM_ANTI_NONE && !p->calib_data && !p->anti_data)
    return cslim_error(CSLIM_ERR_INVALID, "--anti_method %s needs calibration data (--calib_data or --anti_data)",
                       cslim_anti_method_name(p->anti_method));
  if (p->anti_alpha <= 0 || p->anti_alpha >= 1)
    return cslim_error(CSLIM_ERR_INVALID, "--alpha %g: must be in (0, 1)", p->anti_alpha);
  if (p->rot) {
    if (m->cfg.text.tie_word_embeddings)
      return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: QuaRot needs separate embed_tokens and lm_head, and this model "
                         "ties them (tie_word_embeddings: true): the embedding is rotated on the input side and "
                         "lm_head on the other", m->path);
    char name[192];
    cslim_model_tensor_name(m, "layers.0.input_layernorm.bias", name, sizeof name);
    if (cslim_st_find(m->st, name))
      return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: %s exists (a smoothed checkpoint): rotate before smoothing, "
                         "from the original model", m->path, name);
  }
  cslim_xform *x = calloc(1, sizeof *x);
  if (!x) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  x->m = m;
  x->p = p;
  x->anti = p->anti_method;
  x->alpha = p->anti_alpha;
  x->scale_min = p->anti_scale_min > 0 ? p->anti_scale_min : 1e-5;
  int ll = x->anti == CSLIM_ANTI_M4 || x->anti == CSLIM_ANTI_M6; /* the methods with ov / up-down rules */
  x->sg = p->anti_subgraphs ? p->anti_subgraphs
                            : CSLIM_SG_NORM_LINEAR | (ll ? CSLIM_SG_OV | CSLIM_SG_UP_DOWN : 0u);
  if (!ll) x->sg &= CSLIM_SG_NORM_LINEAR;
  x->experts = x->anti == CSLIM_ANTI_M4 && p->anti_experts; /* m6 would need expert samples */
  x->shift = x->anti == CSLIM_ANTI_M2 ||
             ((x->anti == CSLIM_ANTI_M1 || x->anti == CSLIM_ANTI_M4) && (p->anti_shift < 0 ? x->anti == CSLIM_ANTI_M4
                                                                                             : p->anti_shift));
  x->sample_cap = p->anti_tokens > 0 ? p->anti_tokens : 512;
  cslim_status rc = CSLIM_OK;
  if (p->rot) {
    rc = cslim_rotation_new(t->hidden_size, p->rot_block_size, p->rot_mode, p->rot_seed, &x->R);
    if (rc) cslim_error_context("--rot: hidden_size %d", t->hidden_size);
    /* per head: Qwen3 dense a full Hadamard of head_dim; MoE and VL the shifted block variant */
    int shifted = t->num_experts > 0 || m->cfg.has_vision;
    if (!rc)
      rc = cslim_rotation_new(t->head_dim, shifted ? 32 : t->head_dim,
                              shifted ? CSLIM_ROT_BLOCK_SHIFTED : CSLIM_ROT_HADAMARD, p->rot_seed + 1, &x->Ruv);
    if (rc && !x->Ruv && x->R) cslim_error_context("--rot: head_dim %d", t->head_dim);
  }
  if (rc) {
    cslim_xform_free(x);
    return rc;
  }
  *out = x;
  return CSLIM_OK;
}

void cslim_xform_free(cslim_xform *x) {
  if (!x) return;
  cslim_xform_layer_done(x);
  cslim_rotation_free(x->R);
  cslim_rotation_free(x->Ruv);
  free(x);
}

/* ---- small algebra ------------------------------------------------------------------------------ */

static void scale_cols(float *w, int out, int in, const float *s) {
#pragma omp parallel for schedule(static) if (out > 64)
  for (int o = 0; o < out; o++)
    for (int c = 0; c < in; c++) w[(size_t)o * in + c] *= s[c];
}

static void div_rows(float *w, int out, int in, const float *s) {
#pragma omp parallel for schedule(static) if (out > 64)
  for (int o = 0; o < out; o++) {
    float inv = 1.0f / s[o];
    for (int c = 0; c < in; c++) w[(size_t)o * in + c] *= inv;
  }
}

/* b += W·v (b allocated as zeros when absent) */
static cslim_status add_wv(cslim_linear *l, const float *v) {
  if (!l->b && !(l->b = calloc((size_t)l->out, sizeof(float))))
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
#pragma omp parallel for schedule(static) if (l->out > 64)
  for (int o = 0; o < l->out; o++) {
    double acc = 0;
    for (int c = 0; c < l->in; c++) acc += (double)l->w[(size_t)o * l->in + c] * v[c];
    l->b[o] += (float)acc;
  }
  return CSLIM_OK;
}

/* signed max over rows of W[:,c] (iter-smooth's target statistic, spec §3.12): of the float32 weight, or of the
 * checkpoint's when it has not been converted */
static cslim_status col_signed_max(cslim_model *m, const cslim_linear *l, float *acc) {
  for (int c = 0; c < l->in; c++) acc[c] = -INFINITY;
  return smooth_linear_col_max(m, l, 0, acc);
}

/* ---- rotation -------------------------------------------------------------------------------------- */

static cslim_status rot_right(const cslim_rotation *R, cslim_linear *l) {
  cslim_rotation_apply_rows(R, l->w, (size_t)l->out);
  return CSLIM_OK;
}

static cslim_status rot_left(const cslim_rotation *R, cslim_linear *l) {
  cslim_status rc = cslim_rotation_apply_left(R, l->w, l->in);
  if (!rc && l->b) cslim_rotation_apply_rows(R, l->b, 1);
  return rc;
}

/* γ (and β) of a norm folded into the Linears it feeds; γ ← 1, β ← none */
static cslim_status fuse_norm(float *gamma, float **beta, cslim_linear **tg, int nt, int n) {
  cslim_status rc = CSLIM_OK;
  for (int j = 0; j < nt && !rc; j++) {
    if (*beta) rc = add_wv(tg[j], *beta);
    scale_cols(tg[j]->w, tg[j]->out, tg[j]->in, gamma);
  }
  for (int c = 0; c < n; c++) gamma[c] = 1.0f;
  free(*beta);
  *beta = NULL;
  return rc;
}

static cslim_status rotate_layer(cslim_xform *x, cslim_layer *l) {
  const cslim_text_config *t = &x->m->cfg.text;
  const int H = t->hidden_size, D = t->head_dim, nh = t->num_heads, nkv = t->num_kv_heads;
  cslim_linear *qkv[3] = {&l->q, &l->k, &l->v};
  cslim_status rc = fuse_norm(l->input_norm, &l->input_norm_b, qkv, 3, H);
  for (int j = 0; j < 3 && !rc; j++) rc = rot_right(x->R, qkv[j]);
  if (!rc) rc = rot_left(x->R, &l->o);
  /* per head: v's output and o's input */
  for (int g = 0; g < nkv && !rc; g++) {
    rc = cslim_rotation_apply_left(x->Ruv, l->v.w + (size_t)g * D * H, H);
    if (l->v.b) cslim_rotation_apply_rows(x->Ruv, l->v.b + (size_t)g * D, 1);
  }
  if (!rc) cslim_rotation_apply_rows(x->Ruv, l->o.w, (size_t)l->o.out * (size_t)nh);
  if (rc) return rc;
  if (!l->is_moe) {
    cslim_linear *gu[2] = {&l->gate, &l->up};
    rc = fuse_norm(l->post_norm, &l->post_norm_b, gu, 2, H);
    if (!rc) rc = rot_right(x->R, &l->gate);
    if (!rc) rc = rot_right(x->R, &l->up);
    if (!rc) rc = rot_left(x->R, &l->down);
    return rc;
  }
  /* MoE: the router now; the experts on conversion (with the γ kept here) */
  x->post_gamma = malloc((size_t)H * sizeof(float));
  if (!x->post_gamma) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  memcpy(x->post_gamma, l->post_norm, (size_t)H * sizeof(float));
  cslim_linear *r[1] = {&l->router};
  rc = fuse_norm(l->post_norm, &l->post_norm_b, r, 1, H);
  if (!rc) rc = rot_right(x->R, &l->router);
  return rc;
}

/* an expert was converted: rotate it and apply its up→down scales */
static cslim_status on_expert(void *ctx, cslim_linear *l) {
  cslim_xform *x = ctx;
  if (!x->l || l->slot < 8) return CSLIM_OK;
  int e = (l->slot - 8) / 3, j = (l->slot - 8) % 3;
  cslim_status rc = CSLIM_OK;
  if (x->R) {
    if (j < 2) {
      scale_cols(l->w, l->out, l->in, x->post_gamma);
      rc = rot_right(x->R, l);
    } else {
      rc = rot_left(x->R, l);
    }
  }
  if (!rc && x->exp_scale && x->exp_scale[e]) {
    if (j == 1) div_rows(l->w, l->out, l->in, x->exp_scale[e]);
    if (j == 2) scale_cols(l->w, l->out, l->in, x->exp_scale[e]);
  }
  return rc;
}

cslim_status cslim_xform_acts(cslim_xform *x, cslim_acts *a) {
  if (!x || !x->R || !a) return CSLIM_OK;
  cslim_rotation_apply_rows(x->R, a->h, (size_t)a->total);
  if (a->visual && a->n_deepstack) {
    size_t nv = 0;
    for (int r = 0; r < a->total; r++) nv += a->visual[r] != 0;
    for (int i = 0; i < a->n_deepstack; i++) cslim_rotation_apply_rows(x->R, a->deepstack[i], nv);
  }
  return CSLIM_OK;
}

/* ---- statistics pass ------------------------------------------------------------------------------- */

static cslim_status stats_hook(void *ctx, const cslim_linear_group *g, float *xin, int rows) {
  cslim_xform *x = ctx;
  int gi = gidx(g->kind, g->expert);
  if (gi >= x->n_groups || !x->st[gi].mn) return CSLIM_OK;
  cslim_chstats_update(&x->st[gi], xin, rows);
  if (x->want_sample && g->expert < 0 && x->sample_rows[gi] < x->sample_cap) {
    int n = g->lin[0]->in, take = x->sample_cap - x->sample_rows[gi];
    take = take < rows ? take : rows;
    if (!x->sample[gi] && !(x->sample[gi] = malloc((size_t)x->sample_cap * (size_t)n * sizeof(float))))
      return cslim_error(CSLIM_ERR_NOMEM, "out of memory for the smoothing samples");
    memcpy(x->sample[gi] + (size_t)x->sample_rows[gi] * n, xin, (size_t)take * (size_t)n * sizeof(float));
    x->sample_rows[gi] += take;
  }
  return CSLIM_OK;
}

static cslim_status stats_pass(cslim_xform *x, cslim_layer *l, cslim_acts *a, cslim_xform_observer observe,
                               void *octx) {
  const cslim_text_config *t = &x->m->cfg.text;
  int E = l->is_moe ? l->n_experts : 0;
  x->n_groups = 5 + 2 * E;
  x->st = calloc((size_t)x->n_groups, sizeof *x->st);
  x->sample = calloc((size_t)x->n_groups, sizeof *x->sample);
  x->sample_rows = calloc((size_t)x->n_groups, sizeof *x->sample_rows);
  if (!x->st || !x->sample || !x->sample_rows) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  x->want_sample = x->anti == CSLIM_ANTI_M2 || x->anti == CSLIM_ANTI_M6;
  const int H = t->hidden_size, Q = t->num_heads * t->head_dim;
  const int norm = (x->sg & CSLIM_SG_NORM_LINEAR) != 0, ud = (x->sg & CSLIM_SG_UP_DOWN) != 0;
  cslim_status rc = norm ? cslim_chstats_init(&x->st[CSLIM_IN_QKV], H) : CSLIM_OK;
  if (!rc && (x->sg & CSLIM_SG_OV)) rc = cslim_chstats_init(&x->st[CSLIM_IN_O], Q);
  if (!l->is_moe) {
    if (!rc && norm) rc = cslim_chstats_init(&x->st[CSLIM_IN_GATE_UP], H);
    if (!rc && ud) rc = cslim_chstats_init(&x->st[CSLIM_IN_DOWN], t->intermediate_size);
  } else if (ud && x->experts) {
    for (int e = 0; e < E && !rc; e++) rc = cslim_chstats_init(&x->st[gidx(CSLIM_IN_DOWN, e)], t->moe_intermediate_size);
  }
  if (rc) return rc;
  if (observe) { /* the observer fills the statistics, and the samples of the groups that have statistics */
    for (int g = 0; x->want_sample && g < x->n_groups && g <= CSLIM_IN_DOWN; g++)
      if (x->st[g].mn && !(x->sample[g] = malloc((size_t)x->sample_cap * (size_t)x->st[g].n * sizeof(float))))
        return cslim_error(CSLIM_ERR_NOMEM, "out of memory for the smoothing samples");
    return observe(octx, l, x->st, x->n_groups, x->want_sample ? x->sample : NULL, x->sample_rows, x->sample_cap);
  }
  cslim_hooks h = {x, stats_hook, NULL};
  return cslim_layer_observe(x->m, l, a, &h);
}

/* ---- folding ------------------------------------------------------------------------------------------ */

/* norm → targets with scale s and shift z (NULL: none) */
static cslim_status fold_norm(float *gamma, float **beta, cslim_linear **tg, int nt, int n, const float *s,
                              const float *z) {
  cslim_status rc = CSLIM_OK;
  for (int j = 0; j < nt && !rc; j++) {
    if (z) rc = add_wv(tg[j], z); /* with the weights before scaling */
    if (!rc) scale_cols(tg[j]->w, tg[j]->out, tg[j]->in, s);
  }
  if (rc) return rc;
  if (z && !*beta && !(*beta = calloc((size_t)n, sizeof(float)))) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int c = 0; c < n; c++) {
    gamma[c] /= s[c];
    if (*beta) (*beta)[c] = ((*beta)[c] - (z ? z[c] : 0.0f)) / s[c];
  }
  return CSLIM_OK;
}

static cslim_status smooth_norm(cslim_xform *x, cslim_layer *l, cslim_input_kind kind) {
  const cslim_text_config *t = &x->m->cfg.text;
  const int n = t->hidden_size;
  cslim_linear *tg[3];
  int nt;
  float *gamma, **beta;
  if (kind == CSLIM_IN_QKV) {
    tg[0] = &l->q, tg[1] = &l->k, tg[2] = &l->v, nt = 3, gamma = l->input_norm, beta = &l->input_norm_b;
  } else {
    tg[0] = &l->gate, tg[1] = &l->up, nt = 2, gamma = l->post_norm, beta = &l->post_norm_b;
  }
  const cslim_chstats *st = &x->st[kind];
  if (st->rows == 0) return CSLIM_OK;
  float *s = malloc((size_t)n * sizeof(float)), *z = NULL, *a = malloc((size_t)n * sizeof(float)),
        *w = calloc((size_t)n, sizeof(float));
  cslim_status rc = s && a && w ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int j = 0; j < nt && !rc; j++) smooth_col_absmax(tg[j]->w, tg[j]->out, tg[j]->in, w);
  if (!rc) switch (x->anti) {
    case CSLIM_ANTI_M1:
    case CSLIM_ANTI_M4:
      if (cslim_xform_shifts(x, l->is_moe, kind)) {
        if (!(z = malloc((size_t)n * sizeof(float)))) {
          rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
          break;
        }
        for (int c = 0; c < n; c++) z[c] = 0.5f * (st->mn[c] + st->mx[c]);
      }
      smooth_absmax(st, z, a);
      cslim_smooth_scale(a, w, n, x->alpha, x->scale_min, s);
      break;
    case CSLIM_ANTI_M2: {
      if (!(z = malloc((size_t)n * sizeof(float)))) {
        rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
        break;
      }
      rc = osp_search(x->m, l, kind, x->sample[kind], x->sample_rows[kind], x->acts, st, s, z, NULL);
      break;
    }
    case CSLIM_ANTI_M6: {
      const float *W[3];
      int outs[3];
      for (int j = 0; j < nt; j++) W[j] = tg[j]->w, outs[j] = tg[j]->out;
      double al, be, err;
      smooth_absmax(st, NULL, a);
      rc = cslim_flex_search_parts(x->sample[kind], x->sample_rows[kind], n, W, outs, nt, a, w, &al, &be, &err);
      if (!rc) smooth_flex_scale(a, w, n, al, be, s);
      break;
    }
    default: break;
    }
  if (!rc) rc = fold_norm(gamma, beta, tg, nt, n, s, z);
  free(s), free(z), free(a), free(w);
  return rc;
}

static cslim_status smooth_ov(cslim_xform *x, cslim_layer *l) {
  const cslim_text_config *t = &x->m->cfg.text;
  const int D = t->head_dim, nh = t->num_heads, nkv = t->num_kv_heads, G = nh / nkv, Q = nh * D, KV = nkv * D;
  const cslim_chstats *st = &x->st[CSLIM_IN_O];
  if (st->rows == 0) return CSLIM_OK;
  float *a = malloc((size_t)Q * sizeof(float)), *w = calloc((size_t)Q, sizeof(float));
  float *sq = malloc((size_t)Q * sizeof(float)), *sv = calloc((size_t)KV, sizeof(float));
  float *so = malloc((size_t)Q * sizeof(float));
  cslim_status rc = a && w && sq && sv && so ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  if (!rc) smooth_absmax(st, NULL, a);
  if (!rc && x->anti == CSLIM_ANTI_M4) {
    rc = col_signed_max(x->m, &l->o, w);
    if (!rc) cslim_smooth_scale(a, w, Q, x->alpha, x->scale_min, sq);
    for (int h = 0; !rc && h < nh; h++) /* mean over the G query heads of a kv head */
      for (int i = 0; i < D; i++) sv[(h / G) * D + i] += sq[h * D + i] / (float)G;
  } else if (!rc) { /* m6: a and w reduced per kv head by max, then the search */
    smooth_col_absmax(l->o.w, l->o.out, l->o.in, w);
    float *akv = calloc((size_t)KV, sizeof(float)), *wkv = calloc((size_t)KV, sizeof(float));
    if (!akv || !wkv) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    for (int h = 0; !rc && h < nh; h++)
      for (int i = 0; i < D; i++) {
        int g = (h / G) * D + i;
        akv[g] = a[h * D + i] > akv[g] ? a[h * D + i] : akv[g];
        wkv[g] = w[h * D + i] > wkv[g] ? w[h * D + i] : wkv[g];
      }
    for (int h = 0; !rc && h < nh; h++)
      for (int i = 0; i < D; i++) a[h * D + i] = akv[(h / G) * D + i], w[h * D + i] = wkv[(h / G) * D + i];
    double al, be, err;
    if (!rc) rc = cslim_flex_search(x->sample[CSLIM_IN_O], x->sample_rows[CSLIM_IN_O], Q, l->o.w, l->o.out, a, w, &al, &be, &err);
    if (!rc) smooth_flex_scale(akv, wkv, KV, al, be, sv);
    free(akv), free(wkv);
  }
  if (!rc) {
    for (int h = 0; h < nh; h++)
      for (int i = 0; i < D; i++) so[h * D + i] = sv[(h / G) * D + i];
    scale_cols(l->o.w, l->o.out, l->o.in, so);
    div_rows(l->v.w, l->v.out, l->v.in, sv);
    if (l->v.b)
      for (int r = 0; r < KV; r++) l->v.b[r] /= sv[r];
  }
  free(a), free(w), free(sq), free(sv), free(so);
  return rc;
}

/* up → down of the dense MLP, or of expert e (its weights already converted) */
static cslim_status updown_scale(cslim_xform *x, const cslim_chstats *st, const float *sample, int srows,
                                 cslim_linear *down, float *s) {
  const int n = down->in;
  float *a = malloc((size_t)n * sizeof(float)), *w = calloc((size_t)n, sizeof(float));
  cslim_status rc = a && w ? CSLIM_OK : cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  if (!rc) smooth_absmax(st, NULL, a);
  if (!rc && x->anti == CSLIM_ANTI_M4) {
    rc = col_signed_max(x->m, down, w);
    if (!rc) cslim_smooth_scale(a, w, n, x->alpha, x->scale_min, s);
  } else if (!rc) {
    double al, be, err;
    smooth_col_absmax(down->w, down->out, down->in, w);
    rc = cslim_flex_search(sample, srows, n, down->w, down->out, a, w, &al, &be, &err);
    if (!rc) smooth_flex_scale(a, w, n, al, be, s);
  }
  free(a), free(w);
  return rc;
}

static cslim_status smooth_layer(cslim_xform *x, cslim_layer *l) {
  cslim_status rc = CSLIM_OK;
  const double tud = cslim_now();
  /* up-down */
  if ((x->sg & CSLIM_SG_UP_DOWN) && !l->is_moe && x->st[CSLIM_IN_DOWN].rows) {
    float *s = malloc((size_t)l->down.in * sizeof(float));
    if (!s) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    rc = updown_scale(x, &x->st[CSLIM_IN_DOWN], x->sample[CSLIM_IN_DOWN], x->sample_rows[CSLIM_IN_DOWN], &l->down, s);
    if (!rc) {
      scale_cols(l->down.w, l->down.out, l->down.in, s);
      div_rows(l->up.w, l->up.out, l->up.in, s);
    }
    free(s);
  } else if ((x->sg & CSLIM_SG_UP_DOWN) && x->experts && l->is_moe) {
    int E = l->n_experts;
    if (!(x->exp_scale = calloc((size_t)E, sizeof(float *)))) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    for (int e = 0; e < E && !rc; e++) {
      const cslim_chstats *st = &x->st[gidx(CSLIM_IN_DOWN, e)];
      if (!st->rows) continue; /* no tokens: left as is */
      cslim_linear *down = &l->experts[3 * e + 2];
      float *s = malloc((size_t)down->in * sizeof(float));
      if (!s) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      int had = down->w != NULL;
      /* its column maxima straight from the checkpoint unless the rotation changes them first (on conversion) */
      if (x->R || cslim_model_linear_type(x->m, down->name) != CSLIM_QT_FLOAT) rc = cslim_linear_materialize(x->m, down);
      if (!rc) rc = updown_scale(x, st, NULL, 0, down, s);
      if (!rc && had) { /* kept in memory: apply now (a later conversion applies it via on_expert) */
        scale_cols(down->w, down->out, down->in, s);
        if (l->experts[3 * e + 1].w) div_rows(l->experts[3 * e + 1].w, down->in, down->out, s);
      }
      if (!had) cslim_linear_release(x->m, down);
      x->exp_scale[e] = s;
    }
  }
  const double t0 = cslim_now();
  /* ov */
  if (!rc && (x->sg & CSLIM_SG_OV)) rc = smooth_ov(x, l);
  const double t1 = cslim_now();
  /* norm-linear */
  if (!rc && (x->sg & CSLIM_SG_NORM_LINEAR)) rc = smooth_norm(x, l, CSLIM_IN_QKV);
  const double t2 = cslim_now();
  if (!rc && (x->sg & CSLIM_SG_NORM_LINEAR) && !l->is_moe) rc = smooth_norm(x, l, CSLIM_IN_GATE_UP);
  CSLIM_DEBUG("layer %d: up-down %.3f s, o-v %.3f s, norm-qkv %.3f s, norm-gate/up %.3f s", l->index, t0 - tud, t1 - t0,
              t2 - t1, cslim_now() - t2);
  return rc;
}

static void free_stats(cslim_xform *x) {
  for (int i = 0; i < x->n_groups; i++) {
    if (x->st) cslim_chstats_free(&x->st[i]);
    if (x->sample) free(x->sample[i]);
  }
  free(x->st);
  free(x->sample);
  free(x->sample_rows);
  x->st = NULL;
  x->sample = NULL;
  x->sample_rows = NULL;
  x->n_groups = 0;
}

static cslim_status xform_layer(cslim_xform *x, cslim_layer *l, cslim_acts *stats, cslim_xform_observer observe,
                                void *octx) {
  if (!x) return CSLIM_OK;
  cslim_xform_layer_done(x);
  x->l = l;
  x->m->on_convert = on_expert;
  x->m->on_convert_ctx = x;
  cslim_status rc = CSLIM_OK;
  if (x->R) rc = rotate_layer(x, l);
  if (!rc && x->anti != CSLIM_ANTI_NONE && (stats || observe)) {
    x->acts = stats;
    const double t0 = cslim_now();
    rc = stats_pass(x, l, stats, observe, octx);
    const double t1 = cslim_now();
    if (!rc) rc = smooth_layer(x, l);
    CSLIM_DEBUG("layer %d: smoothing statistics %.3f s, scales and fold %.3f s", l->index, t1 - t0, cslim_now() - t1);
    free_stats(x);
  }
  if (rc) cslim_error_context("layer %d", l->index);
  return rc;
}

cslim_status cslim_xform_layer(cslim_xform *x, cslim_layer *l, cslim_acts *stats) {
  return xform_layer(x, l, stats, NULL, NULL);
}

cslim_status cslim_xform_layer_observed(cslim_xform *x, cslim_layer *l, cslim_acts *rows, cslim_xform_observer observe,
                                       void *ctx) {
  return xform_layer(x, l, rows, observe, ctx);
}

const float *const *cslim_xform_expert_scales(const cslim_xform *x) {
  return x ? (const float *const *)x->exp_scale : NULL;
}

void cslim_xform_layer_done(cslim_xform *x) {
  if (!x) return;
  if (x->m->on_convert_ctx == x) {
    x->m->on_convert = NULL;
    x->m->on_convert_ctx = NULL;
  }
  if (x->exp_scale && x->l)
    for (int e = 0; e < x->l->n_experts; e++) free(x->exp_scale[e]);
  free(x->exp_scale);
  x->exp_scale = NULL;
  free(x->post_gamma);
  x->post_gamma = NULL;
  free_stats(x);
  x->l = NULL;
}

/* ---- tensors outside the layers ------------------------------------------------------------------------- */

/* [rows][cols] source rows → (· diag(colscale)) · R, written in pieces of 16 MB of float32 (it runs on a
 * thread of its own beside the layers: its RSS adds to theirs) */
static cslim_status put_rotated_rows(cslim_xform *x, cslim_exporter *ex, const cslim_tensor *src,
                                     const float *colscale) {
  const cslim_st *st = cslim_model_checkpoint(x->m);
  cslim_st_note_read(st, src);
  const size_t rows = (size_t)src->shape[0], cols = (size_t)src->shape[1], es = cslim_dtype_size(src->dtype);
  size_t chunk = ((size_t)4 << 20) / cols;
  chunk = chunk ? chunk : 1;
  float *buf = malloc(chunk * cols * sizeof(float));
  if (!buf) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_status rc = CSLIM_OK;
  for (size_t r0 = 0; r0 < rows && !rc; r0 += chunk) {
    size_t n = rows - r0 < chunk ? rows - r0 : chunk;
    cslim_convert_to_f32_mt(src->dtype, (const char *)src->data + r0 * cols * es, buf, n * cols);
    cslim_st_release_range(st, src, r0 * cols * es, n * cols * es);
    if (colscale) scale_cols(buf, (int)n, (int)cols, colscale);
    cslim_rotation_apply_rows(x->R, buf, n);
    rc = cslim_exporter_put_f32_range(ex, src->name, r0 * cols, n * cols, buf);
  }
  free(buf);
  return rc;
}

static int is_merger_fc2(const cslim_xform *x, const char *name, const char *suffix) {
  const char *vp = x->m->vis_prefix;
  if (!vp || strncmp(name, vp, strlen(vp))) return 0;
  const char *r = name + strlen(vp);
  char want[96];
  snprintf(want, sizeof want, "merger.linear_fc2%s", suffix);
  if (!strcmp(r, want)) return 1;
  int d, k = 0;
  char tail[64];
  if (sscanf(r, "deepstack_merger_list.%d.%n", &d, &k) == 1 && k > 0) {
    snprintf(tail, sizeof tail, "linear_fc2%s", suffix);
    return !strcmp(r + k, tail);
  }
  return 0;
}

cslim_status cslim_xform_put_outer(cslim_xform *x, cslim_exporter *ex, const cslim_tensor *src, int *done) {
  *done = 0;
  if (!x || !x->R) return CSLIM_OK;
  cslim_model *m = x->m;
  const int H = m->cfg.text.hidden_size;
  cslim_status rc = CSLIM_OK;
  if (src == m->embed) {
    *done = 1;
    return put_rotated_rows(x, ex, src, NULL);
  }
  if (src == m->lm_head) {
    *done = 1;
    return put_rotated_rows(x, ex, src, m->final_norm);
  }
  if (src == m->final_norm_t) {
    float *one = malloc((size_t)H * sizeof(float));
    if (!one) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < H; i++) one[i] = 1.0f;
    rc = cslim_exporter_put_f32(ex, src->name, one);
    free(one);
    *done = 1;
    return rc;
  }
  int w = is_merger_fc2(x, src->name, ".weight"), b = is_merger_fc2(x, src->name, ".bias");
  if (!w && !b) return CSLIM_OK;
  *done = 1;
  float *f = malloc((size_t)src->numel * sizeof(float));
  if (!f) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_convert_to_f32_mt(src->dtype, src->data, f, (size_t)src->numel);
  cslim_st_note_read(cslim_model_checkpoint(x->m), src);
  if (w) rc = cslim_rotation_apply_left(x->R, f, (int)src->shape[1]);
  else cslim_rotation_apply_rows(x->R, f, 1);
  if (!rc) rc = cslim_exporter_put_f32(ex, src->name, f);
  free(f);
  return rc;
}

cslim_status cslim_xform_vision_linear(cslim_xform *x, cslim_linear *l) {
  char name[192];
  if (!x || !x->R) return CSLIM_OK;
  snprintf(name, sizeof name, "%s.weight", l->name);
  if (!is_merger_fc2(x, name, ".weight")) return CSLIM_OK;
  return rot_left(x->R, l);
}

cslim_status cslim_xform_export_rotation(cslim_xform *x, cslim_exporter *ex) {
  if (!x || !x->R) return CSLIM_OK;
  int n = cslim_rotation_size(x->R);
  float *R = malloc((size_t)n * (size_t)n * sizeof(float));
  if (!R) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  cslim_status rc = cslim_rotation_matrix(x->R, R);
  if (!rc) rc = cslim_exporter_set_rotation(ex, R, n);
  free(R);
  return rc;
}
