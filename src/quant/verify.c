/* Float model vs the written checkpoint: KL divergence and top-1 agreement
 * on held-back samples — a garbled checkpoint shows here, before it ships. */
#include "quant/verify.h"

#include "cslim/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 64

static cslim_status final_hidden(cslim_model *m, const int32_t *ids, const int *lens, int n,
                                 const cslim_vision_input *vin, cslim_acts **out) {
  cslim_status rc;
  *out = NULL;
  if (vin && vin->n_images) {
    cslim_vision_output vo;
    rc = cslim_vision_forward(m, vin, NULL, 0, &vo);
    if (!rc) rc = cslim_acts_embed_vision(m, ids, lens, n, vin, &vo, out);
    cslim_vision_output_free(&vo);
  } else {
    rc = cslim_acts_embed(m, ids, lens, n, out);
  }
  if (!rc) rc = cslim_model_forward(m, *out, NULL, NULL); /* leaves the final-normed states */
  if (rc) {
    cslim_acts_free(*out);
    *out = NULL;
  }
  return rc;
}

/* log-softmax of one row, in double */
static void log_softmax(const float *x, int V, double *out) {
  double mx = x[0];
  for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
  double s = 0;
  for (int i = 0; i < V; i++) s += exp((double)x[i] - mx);
  double lse = mx + log(s);
  for (int i = 0; i < V; i++) out[i] = (double)x[i] - lse;
}

cslim_status cslim_verify_checkpoint(cslim_model *fm, const char *qdir, const int32_t *ids, const int *lens,
                                     int n, const cslim_vision_input *vin, double *kl, double *top1,
                                     int64_t *tokens) {
  cslim_model *qm = NULL;
  cslim_acts *fa = NULL, *qa = NULL;
  cslim_status rc = cslim_model_open(qdir, &qm);
  if (rc) return cslim_error_context("re-reading the written checkpoint");
  if (!rc) rc = final_hidden(fm, ids, lens, n, vin, &fa);
  if (!rc) rc = final_hidden(qm, ids, lens, n, vin, &qa);
  const int V = cslim_model_config(fm)->text.vocab_size, H = cslim_model_config(fm)->text.hidden_size;
  float *lf = malloc((size_t)ROWS * V * sizeof(float)), *lq = malloc((size_t)ROWS * V * sizeof(float));
  double *pf = malloc((size_t)V * sizeof(double)), *pq = malloc((size_t)V * sizeof(double));
  if (!rc && (!lf || !lq || !pf || !pq)) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  double sum_kl = 0;
  int64_t agree = 0, count = 0;
  for (int r0 = 0; !rc && r0 < fa->total; r0 += ROWS) {
    int rows = fa->total - r0 < ROWS ? fa->total - r0 : ROWS;
    rc = cslim_model_logits(fm, fa->h + (size_t)r0 * H, rows, lf);
    if (!rc) rc = cslim_model_logits(qm, qa->h + (size_t)r0 * H, rows, lq);
    for (int r = 0; !rc && r < rows; r++) {
      const float *a = lf + (size_t)r * V, *b = lq + (size_t)r * V;
      log_softmax(a, V, pf);
      log_softmax(b, V, pq);
      double k = 0;
      int ia = 0, ib = 0;
      for (int i = 0; i < V; i++) {
        k += exp(pf[i]) * (pf[i] - pq[i]);
        if (a[i] > a[ia]) ia = i;
        if (b[i] > b[ib]) ib = i;
      }
      sum_kl += k;
      agree += ia == ib;
      count++;
    }
  }
  if (!rc) {
    *kl = sum_kl / (double)count;
    *top1 = (double)agree / (double)count;
    *tokens = count;
  }
  free(lf);
  free(lq);
  free(pf);
  free(pq);
  cslim_acts_free(fa);
  cslim_acts_free(qa);
  cslim_model_close(qm);
  return rc;
}
