/* The sparse MoE block of Qwen3-MoE / Qwen3-VL-MoE:
 *   p = softmax(x · W_routerᵀ) in float32 over all experts; top-k;
 *   norm_topk_prob: w /= sum(w);  out = Σ_e w_e · down_e(silu(gate_e(x)) * up_e(x))
 * Experts run in ascending id, each on the rows routed to it, and their
 * weighted outputs are added into a zero buffer in that order — the
 * summation order of transformers' eager experts. Expert weights are
 * converted when the expert has tokens and released afterwards. */
#include "model/model_internal.h"
#include "model/routing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

cslim_status cslim_moe_forward(cslim_model *m, cslim_layer *l, const float *x, int rows, float *out,
                               const cslim_hooks *hooks) {
  const cslim_text_config *t = &m->cfg.text;
  const int E = t->num_experts, K = t->num_experts_per_tok, H = t->hidden_size, NI = t->moe_intermediate_size;
  float *logits = malloc((size_t)rows * (size_t)E * sizeof(float));
  int *sel = malloc((size_t)rows * (size_t)K * sizeof(int));
  float *wts = malloc((size_t)rows * (size_t)K * sizeof(float));
  int *count = calloc((size_t)E, sizeof(int));
  int *offs = malloc(((size_t)E + 1) * sizeof(int));
  int *tok = malloc((size_t)rows * (size_t)K * sizeof(int));   /* rows grouped by expert */
  float *tw = malloc((size_t)rows * (size_t)K * sizeof(float)); /* their routing weights */
  cslim_status rc = CSLIM_OK;
  float *xe = NULL, *g = NULL, *u = NULL, *ye = NULL;
  if (!logits || !sel || !wts || !count || !offs || !tok || !tw) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for routing %d rows", rows);
    goto done;
  }
  /* router (kept in float by every recipe, but observable like any linear) */
  if (hooks && hooks->linear_input) {
    cslim_linear_group grp = {l->index, -1, CSLIM_IN_ROUTER, 1, {&l->router, NULL, NULL}};
    /* the router reads the same normed input as the experts: give the hook a copy */
    float *xc = malloc((size_t)rows * (size_t)H * sizeof(float));
    if (!xc) {
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      goto done;
    }
    memcpy(xc, x, (size_t)rows * (size_t)H * sizeof(float));
    rc = hooks->linear_input(hooks->ctx, &grp, xc, rows);
    if (!rc) rc = cslim_linear_forward(&l->router, xc, rows, logits);
    free(xc);
  } else {
    rc = cslim_linear_forward(&l->router, x, rows, logits);
  }
  if (rc) goto done;

#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++)
    cslim_route_token(logits + (size_t)r * (size_t)E, E, K, t->norm_topk_prob, sel + (size_t)r * (size_t)K,
                      wts + (size_t)r * (size_t)K);
  {
    int *fill = malloc((size_t)E * sizeof(int));
    long bad = fill ? cslim_group_by_expert(sel, wts, rows, K, E, count, offs, fill, tok, tw) : -1;
    free(fill);
    if (!fill) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    else if (bad >= 0)
      rc = cslim_error(CSLIM_ERR_NUMERIC, "%s: token %ld was routed to no expert (non-finite router logits)",
                       l->router.name, bad / K);
    if (rc) goto done;
  }
  if (hooks && hooks->routing) hooks->routing(hooks->ctx, l->index, count, E);

  int maxc = 0;
  for (int e = 0; e < E; e++) maxc = count[e] > maxc ? count[e] : maxc;
  memset(out, 0, (size_t)rows * (size_t)H * sizeof(float));
  xe = malloc((size_t)maxc * (size_t)H * sizeof(float) + 1);
  g = malloc((size_t)maxc * (size_t)NI * sizeof(float) + 1);
  u = malloc((size_t)maxc * (size_t)NI * sizeof(float) + 1);
  ye = malloc((size_t)maxc * (size_t)H * sizeof(float) + 1);
  if (!xe || !g || !u || !ye) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for the experts");
    goto done;
  }
  for (int e = 0; e < E && !rc; e++) {
    int n = count[e];
    if (!n) continue;
    if (cslim_interrupted()) {
      rc = cslim_error(CSLIM_ERR_INTERRUPTED, "interrupted");
      break;
    }
    cslim_linear *eg = &l->experts[3 * e], *eu = eg + 1, *ed = eg + 2;
    if ((rc = cslim_linear_materialize(m, eg)) || (rc = cslim_linear_materialize(m, eu)) ||
        (rc = cslim_linear_materialize(m, ed)))
      break;
    const int *rows_e = tok + offs[e];
#pragma omp parallel for schedule(static) if (n > 64)
    for (int i = 0; i < n; i++)
      memcpy(xe + (size_t)i * (size_t)H, x + (size_t)rows_e[i] * (size_t)H, (size_t)H * sizeof(float));
    if (hooks && hooks->linear_input) {
      cslim_linear_group grp = {l->index, e, CSLIM_IN_GATE_UP, 2, {eg, eu, NULL}};
      if ((rc = hooks->linear_input(hooks->ctx, &grp, xe, n))) break;
    }
    if ((rc = cslim_linear_forward(eg, xe, n, g)) || (rc = cslim_linear_forward(eu, xe, n, u))) break;
    cslim_silu_mul(g, u, (size_t)n * (size_t)NI);
    if (hooks && hooks->linear_input) {
      cslim_linear_group grp = {l->index, e, CSLIM_IN_DOWN, 1, {ed, NULL, NULL}};
      if ((rc = hooks->linear_input(hooks->ctx, &grp, g, n))) break;
    }
    if ((rc = cslim_linear_forward(ed, g, n, ye))) break;
    const float *we = tw + offs[e];
    /* out[row] += y * w: the product is rounded before the add, as in transformers */
#pragma omp parallel for schedule(static) if (n > 64)
    for (int i = 0; i < n; i++) {
      float *o = out + (size_t)rows_e[i] * (size_t)H;
      const float *yr = ye + (size_t)i * (size_t)H;
      for (int j = 0; j < H; j++) {
        float p = yr[j] * we[i];
        o[j] += p;
      }
    }
    if (!l->keep_experts) {
      cslim_linear_release(m, eg);
      cslim_linear_release(m, eu);
      cslim_linear_release(m, ed);
    }
  }
done:
  free(logits);
  free(sel);
  free(wts);
  free(count);
  free(offs);
  free(tok);
  free(tw);
  free(xe);
  free(g);
  free(u);
  free(ye);
  return rc;
}
