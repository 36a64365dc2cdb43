/* m2: Outlier Suppression+ (spec §3.11). Per input channel c of a norm
 * subgraph: shift z_c = (max_c + min_c) / 2 and, for a clipping threshold t,
 * scale s_c = max(1, (max_c - min_c) / 2t). The threshold is chosen on the
 * output of the block the subgraph feeds — attention (with Qwen3's q_norm /
 * k_norm, RoPE and grouped-query heads) or the dense MLP — computed from
 * fake-quantized inputs ((x - z)/s per tensor) and weights (W·s per
 * channel) against the float block. The candidates are the os_k = 100
 * thresholds from the largest half-range M down to 1, searched coarse to
 * fine (every 5th, then the neighbours of the best).
 *
 * A candidate's loss is Σ over the rows of each row's squared error in
 * model/repro.h's double lanes, the rows added in order: the same on any
 * machine and thread count, and on the GPU, where the search runs while the
 * layer engine does (gpu_layer.h's os_begin: the sample rows, the targets and
 * the block uploaded once, each candidate scored there in the host's
 * arithmetic; only the row errors come back). */
#include "quant/smoother.h"
#include "backend/gpu_layer.h"
#include "model/repro.h"
#include "quant/gpu_calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OS_K 100

typedef struct osp {
  cslim_model *m;
  cslim_layer *l;
  cslim_input_kind kind;
  const float *X;
  int rows, n;
  const cslim_acts *a;
  const float *z, *r; /* shift, half range per channel */
  cslim_linear *tg[3];
  int nt, gpu, shifted; /* shifted: the candidates' biases carry the shift (else the plain ones) */
  float *xs, *ws[3], *bias[3], *plain[3], *y[3], *out, *ref, *s, *cos_t, *sin_t, *tmp;
  double *row_err;
  int n_seqs, *seq_start; /* the sample rows' sequences (the last one cut at rows) */
} osp;

/* the block after the targets: attention context or MLP output, from y[] */
static cslim_status block_out(osp *o, float *out) {
  const cslim_text_config *t = &o->m->cfg.text;
  const int rows = o->rows;
  if (o->kind == CSLIM_IN_GATE_UP) {
    size_t ni = (size_t)rows * (size_t)o->tg[0]->out;
    memcpy(o->tmp, o->y[0], ni * sizeof(float));
    cslim_silu_mul(o->tmp, o->y[1], ni);
    return cslim_linear_forward(&o->l->down, o->tmp, rows, out);
  }
  const int D = t->head_dim, nh = t->num_heads, nkv = t->num_kv_heads;
  const float eps = (float)t->rms_norm_eps;
  float *q = o->y[0], *k = o->y[1], *v = o->y[2];
  cslim_rmsnorm_rows(q, rows * nh, D, o->l->q_norm, eps, q);
  cslim_rmsnorm_rows(k, rows * nkv, D, o->l->k_norm, eps, k);
  cslim_rope_apply(q, rows, nh, D, o->cos_t, o->sin_t);
  cslim_rope_apply(k, rows, nkv, D, o->cos_t, o->sin_t);
  for (int s = 0; s < o->n_seqs; s++) {
    const int r0 = o->seq_start[s], r1 = o->seq_start[s + 1];
    cslim_status rc = cslim_attention(q + (size_t)r0 * (size_t)(nh * D), k + (size_t)r0 * (size_t)(nkv * D),
                                      v + (size_t)r0 * (size_t)(nkv * D), r1 - r0, r1 - r0, 0, nh, nkv, D,
                                      out + (size_t)r0 * (size_t)(nh * D));
    if (rc) return rc;
  }
  return CSLIM_OK;
}

static size_t out_width(const osp *o) {
  const cslim_text_config *t = &o->m->cfg.text;
  return o->kind == CSLIM_IN_GATE_UP ? (size_t)t->hidden_size : (size_t)t->num_heads * (size_t)t->head_dim;
}

/* on the host, with the scales in o->s: the float block into o->ref (fp), or the candidate's row errors against it */
static cslim_status eval_host(osp *o, int fp) {
  const int n = o->n, rows = o->rows;
  /* inputs: (x - z) / s, fake-quantized per tensor */
  if (fp) {
    memcpy(o->xs, o->X, (size_t)rows * (size_t)n * sizeof(float));
  } else {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++)
      for (int c = 0; c < n; c++) o->xs[(size_t)i * n + c] = (o->X[(size_t)i * n + c] - o->z[c]) / o->s[c];
    fq_tensor_asym(o->xs, (size_t)rows * (size_t)n);
  }
  for (int j = 0; j < o->nt; j++) {
    cslim_linear *tl = o->tg[j];
    cslim_linear w = *tl;
    w.forward = NULL;
    w.b = fp ? tl->b : o->shifted ? o->bias[j] : o->plain[j];
    if (!fp) {
#pragma omp parallel for schedule(static)
      for (int r = 0; r < tl->out; r++)
        for (int c = 0; c < n; c++) o->ws[j][(size_t)r * n + c] = tl->w[(size_t)r * n + c] * o->s[c];
      fq_rows_sym(o->ws[j], tl->out, n);
      w.w = o->ws[j];
    }
    cslim_status rc = cslim_linear_forward(&w, o->xs, rows, o->y[j]);
    if (rc) return rc;
  }
  float *dst = fp ? o->ref : o->out;
  cslim_status rc = block_out(o, dst);
  if (rc || fp) return rc;
  const size_t w = out_width(o);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < rows; i++) o->row_err[i] = cslim_sum_squares(o->out + (size_t)i * w, o->ref + (size_t)i * w, (int)w);
  return CSLIM_OK;
}

/* loss of threshold t (t <= 0: the float block, into o->ref): the rows' errors, host or GPU, added in order */
static cslim_status eval(osp *o, double t, double *loss) {
  const int fp = t <= 0;
  for (int c = 0; c < o->n; c++) {
    double v = fp ? 1.0 : o->r[c] / t;
    o->s[c] = (float)(v > 1.0 ? v : 1.0);
  }
  cslim_status rc;
  if (o->gpu && !fp) { /* the reference is the GPU's since os_begin */
    float mn, mx, qs, qo;
    rc = cslim_gpu_calib_os_scale(o->s, o->z, &mn, &mx);
    if (!rc) {
      cslim_qparams_asym(mn, mx, 8, &qs, &qo); /* fq_tensor_asym's parameters */
      rc = cslim_gpu_calib_os_eval(qs, qo, 1.0f / qs, o->shifted, o->row_err);
    }
  } else {
    rc = eval_host(o, fp);
  }
  if (rc || fp) return rc;
  double e = 0;
  for (int i = 0; i < o->rows; i++) e += o->row_err[i];
  *loss = e / (double)o->rows;
  return CSLIM_OK;
}

/* the search on the GPU while the layer engine runs: 1 begun, 0 not, or the error */
static int os_gpu_begin(osp *o) {
  const cslim_text_config *t = &o->m->cfg.text;
  cslim_gpu_os g = {0};
  g.attn = o->kind == CSLIM_IN_QKV;
  g.X = o->X, g.rows = o->rows, g.n = o->n, g.nt = o->nt;
  for (int j = 0; j < o->nt; j++) {
    g.W[j] = o->tg[j]->w, g.outs[j] = o->tg[j]->out, g.bias[j] = o->tg[j]->b;
    g.bias_plain[j] = o->plain[j], g.bias_shift[j] = o->bias[j];
  }
  if (g.attn) {
    g.q_norm = o->l->q_norm, g.k_norm = o->l->k_norm, g.cos_t = o->cos_t, g.sin_t = o->sin_t;
    g.n_seqs = o->n_seqs, g.seq_start = o->seq_start;
  } else {
    if (o->l->down.in != o->tg[0]->out || o->l->down.out != t->hidden_size || !o->l->down.w) return 0;
    g.down_w = o->l->down.w, g.down_b = o->l->down.b;
  }
  return cslim_gpu_calib_os_begin(&g);
}

cslim_status osp_search(cslim_model *m, cslim_layer *l, cslim_input_kind kind, const float *X, int rows,
                        const cslim_acts *a, const cslim_chstats *st, float *s, float *z, double *best_t) {
  const cslim_text_config *t = &m->cfg.text;
  const int n = t->hidden_size;
  osp o = {0};
  o.m = m, o.l = l, o.kind = kind, o.X = X, o.rows = rows, o.n = n, o.a = a;
  if (kind == CSLIM_IN_QKV) {
    o.tg[0] = &l->q, o.tg[1] = &l->k, o.tg[2] = &l->v, o.nt = 3;
  } else {
    o.tg[0] = &l->gate, o.tg[1] = &l->up, o.nt = 2;
  }
  float *r = malloc((size_t)n * sizeof(float));
  double M = 0;
  for (int c = 0; c < n; c++) {
    z[c] = 0.5f * (st->mn[c] + st->mx[c]);
    r[c] = 0.5f * (st->mx[c] - st->mn[c]);
    M = r[c] > M ? r[c] : M;
  }
  o.z = z, o.r = r;
  const int D = t->head_dim;
  size_t ow = out_width(&o), maxo = 0;
  for (int j = 0; j < o.nt; j++) maxo = (size_t)o.tg[j]->out > maxo ? (size_t)o.tg[j]->out : maxo;
  cslim_status rc = CSLIM_OK;
  o.s = malloc((size_t)n * sizeof(float));
  o.cos_t = malloc((size_t)rows * (size_t)(D / 2) * sizeof(float));
  o.sin_t = malloc((size_t)rows * (size_t)(D / 2) * sizeof(float));
  o.row_err = malloc((size_t)(rows > 0 ? rows : 1) * sizeof(double));
  o.seq_start = malloc((size_t)(a->n_seqs + 1) * sizeof(int));
  int ok = r && o.s && o.cos_t && o.sin_t && o.row_err && o.seq_start;
  for (int j = 0; j < o.nt && ok; j++) {
    cslim_linear *tl = o.tg[j];
    o.bias[j] = malloc((size_t)tl->out * sizeof(float));
    o.plain[j] = malloc((size_t)tl->out * sizeof(float));
    if (!(ok = o.bias[j] && o.plain[j])) break;
    /* b + W·z: the shift moved into the bias; the plain bias (b, or zeros) for the untransformed candidate */
    float *bs = o.bias[j], *bp = o.plain[j];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < tl->out; i++) {
      double acc = tl->b ? tl->b[i] : 0.0;
      for (int c = 0; c < n; c++) acc += (double)tl->w[(size_t)i * n + c] * z[c];
      bs[i] = (float)acc;
      bp[i] = tl->b ? tl->b[i] : 0.0f;
    }
  }
  if (!ok) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for the m2 search (%d rows)", rows);
  /* the sequences the sample rows cover, the last cut at rows */
  for (int q = 0; ok && q < a->n_seqs && a->seq_start[q] < rows; q++) {
    o.seq_start[q] = a->seq_start[q];
    o.seq_start[q + 1] = a->seq_start[q + 1] < rows ? a->seq_start[q + 1] : rows;
    o.n_seqs = q + 1;
  }
  o.shifted = 1;
  if (!rc && kind == CSLIM_IN_QKV) rc = cslim_rope_tables(m, a->pos, a->total, 0, rows, o.cos_t, o.sin_t);
  const double t0 = cslim_now();
  if (!rc) {
    int g = os_gpu_begin(&o);
    if (g < 0) rc = cslim_errcode();
    o.gpu = g > 0;
  }
  if (!rc && !o.gpu) { /* the host's buffers */
    o.xs = malloc((size_t)rows * (size_t)n * sizeof(float));
    o.out = malloc((size_t)rows * ow * sizeof(float));
    o.ref = malloc((size_t)rows * ow * sizeof(float));
    o.tmp = malloc((size_t)rows * maxo * sizeof(float));
    ok = o.xs && o.out && o.ref && o.tmp;
    for (int j = 0; j < o.nt && ok; j++) {
      o.ws[j] = malloc((size_t)o.tg[j]->out * (size_t)n * sizeof(float));
      o.y[j] = malloc((size_t)rows * (size_t)o.tg[j]->out * sizeof(float));
      ok = o.ws[j] && o.y[j];
    }
    if (!ok) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for the m2 search (%d rows)", rows);
  }
  double dummy;
  if (!rc && !o.gpu) rc = eval(&o, 0.0, &dummy);
  const double t1 = cslim_now();
  int n_eval = 0;
  /* thresholds t_k = M - (M - lo) k / (OS_K - 1), k = 0..OS_K-1 */
  double lo = M > 1.0 ? 1.0 : M, best = INFINITY;
  int bk = 0;
  double losses[OS_K];
  for (int k = 0; k < OS_K; k++) losses[k] = -1;
  for (int pass = 0; pass < 2 && !rc; pass++) {
    int k0 = 0, k1 = OS_K - 1, step = 5;
    if (pass == 1) k0 = bk - 4 > 0 ? bk - 4 : 0, k1 = bk + 4 < OS_K - 1 ? bk + 4 : OS_K - 1, step = 1;
    for (int k = k0; k <= k1 && !rc; k += step) {
      if (losses[k] >= 0) continue;
      double tk = M - (M - lo) * k / (OS_K - 1);
      if (!(tk > 0)) continue;
      rc = eval(&o, tk, &losses[k]);
      n_eval++;
      if (!rc && losses[k] < best) best = losses[k], bk = k;
    }
    if (M <= lo) break; /* one candidate */
  }
  /* the untransformed input (no shift, no scale) competes too: the fold is
   * skipped when nothing beats it */
  double none = INFINITY;
  if (!rc) {
    const float *zs = o.z;
    float *zero = calloc((size_t)n, sizeof(float));
    float *rr = calloc((size_t)n, sizeof(float));
    if (!zero || !rr) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    o.z = zero, o.r = rr, o.shifted = 0;
    if (!rc) rc = eval(&o, 1.0, &none); /* r = 0: s = 1 everywhere */
    o.z = zs, o.r = r, o.shifted = 1;
    n_eval++;
    free(zero), free(rr);
  }
  if (o.gpu) cslim_gpu_calib_os_end();
  CSLIM_DEBUG("m2 search [%d x %d] (%s)%s: set-up %.3f s, %d candidates %.3f s", rows, n,
              kind == CSLIM_IN_QKV ? "attention" : "MLP", o.gpu ? " on the GPU" : "", t1 - t0, n_eval, cslim_now() - t1);
  double tb = M - (M - lo) * bk / (OS_K - 1);
  if (best_t) *best_t = none <= best ? 0.0 : tb;
  if (!rc && none <= best) { /* keep the layer as it is */
    for (int c = 0; c < n; c++) s[c] = 1.0f, z[c] = 0.0f;
    goto done;
  }
  for (int c = 0; c < n; c++) {
    double v = tb > 0 ? r[c] / tb : 1.0;
    s[c] = (float)(v > 1.0 ? v : 1.0);
  }
done:
  free(r);
  free(o.xs), free(o.out), free(o.ref), free(o.s), free(o.tmp), free(o.cos_t), free(o.sin_t), free(o.row_err);
  free(o.seq_start);
  for (int j = 0; j < 3; j++) free(o.ws[j]), free(o.y[j]), free(o.bias[j]), free(o.plain[j]);
  return rc;
}
