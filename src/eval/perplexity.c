/* Perplexity over consecutive windows, layer-streamed: a pass converts each
 * layer once for many windows. */
#include "cslim/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NLL_ROWS 512 /* rows sent through the lm_head at a time */

cslim_status cslim_eval_perplexity(cslim_model *m, const int32_t *ids, size_t n_ids, const cslim_ppl_opts *o,
                                   cslim_ppl_result *out) {
  memset(out, 0, sizeof *out);
  int seq = o && o->seq > 0 ? o->seq : 256;
  int per = o && o->windows_per_pass > 0 ? o->windows_per_pass : 64;
  if (seq < 2) return cslim_error(CSLIM_ERR_INVALID, "window length must be at least 2");
  size_t avail = n_ids > 0 ? (n_ids - 1) / (size_t)seq : 0;
  int nw = (int)avail;
  if (o && o->windows > 0 && o->windows < nw) nw = o->windows;
  if (nw <= 0)
    return cslim_error(CSLIM_ERR_INVALID, "the text has %zu tokens: not enough for one window of %d", n_ids, seq);
  out->text_tokens = (int64_t)n_ids;
  double t0 = cslim_now(), nll = 0;
  int64_t count = 0;
  const int L = cslim_model_config(m)->text.num_layers, H = cslim_model_config(m)->text.hidden_size;
  cslim_progress prog;
  int passes = (nw + per - 1) / per;
  cslim_progress_begin(&prog, "perplexity", (uint64_t)passes * (uint64_t)L);
  cslim_status rc = CSLIM_OK;
  int32_t *targets = malloc((size_t)per * (size_t)seq * sizeof(int32_t));
  int *lens = malloc((size_t)per * sizeof(int));
  if (!targets || !lens) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  for (int w0 = 0; w0 < nw && !rc; w0 += per) {
    int nb = nw - w0 < per ? nw - w0 : per;
    for (int i = 0; i < nb; i++) lens[i] = seq;
    cslim_acts *a;
    if ((rc = cslim_acts_embed(m, ids + (size_t)w0 * (size_t)seq, lens, nb, &a))) break;
    for (int l = 0; l < L && !rc; l++) {
      if (cslim_interrupted()) {
        rc = cslim_error(CSLIM_ERR_INTERRUPTED, "interrupted");
        break;
      }
      cslim_layer *layer;
      if ((rc = cslim_model_get_layer(m, l, &layer))) break;
      rc = cslim_layer_forward(m, layer, a, NULL, NULL);
      cslim_model_put_layer(m, layer);
      cslim_progress_advance(&prog, 1);
    }
    if (!rc) rc = cslim_model_final_norm(m, a->h, a->total, a->h);
    for (int i = 0; i < nb; i++)
      for (int t = 0; t < seq; t++)
        targets[(size_t)i * (size_t)seq + (size_t)t] =
            t + 1 < seq ? ids[(size_t)(w0 + i) * (size_t)seq + (size_t)t + 1] : -1;
    for (int r = 0; r < a->total && !rc; r += NLL_ROWS) {
      int n = a->total - r < NLL_ROWS ? a->total - r : NLL_ROWS;
      rc = cslim_model_nll(m, a->h + (size_t)r * (size_t)H, n, targets + r, &nll, &count);
    }
    cslim_acts_free(a);
  }
  cslim_progress_end(&prog);
  free(targets);
  free(lens);
  if (rc) return rc;
  out->windows = nw;
  out->tokens = count;
  out->nll = nll / (double)count;
  out->ppl = exp(out->nll);
  out->seconds = cslim_now() - t0;
  return CSLIM_OK;
}
