/* Greedy generation with a KV cache. Layer weights stay converted between
 * steps when they fit the cache budget (set by the caller). */
#include "cslim/eval.h"
#include "cslim/vision.h"

#include <stdlib.h>
#include <string.h>

static int32_t argmax(const float *x, int n) {
  int32_t b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

/* Run the rows of `a` (its positions already set) through the layers with
 * the cache; logits of the last row. Takes ownership of `a`. */
static cslim_status run_acts(cslim_model *m, cslim_kv_cache *kv, cslim_acts *a, float *logits) {
  const cslim_config *c = cslim_model_config(m);
  const int n = a->total;
  cslim_status rc = CSLIM_OK;
  for (int l = 0; l < c->text.num_layers && !rc; l++) {
    cslim_layer *layer;
    if ((rc = cslim_model_get_layer(m, l, &layer))) break;
    rc = cslim_layer_forward(m, layer, a, NULL, kv);
    cslim_model_put_layer(m, layer);
  }
  if (!rc) {
    float *last = a->h + (size_t)(n - 1) * (size_t)a->hidden;
    cslim_model_final_norm(m, last, 1, last);
    rc = cslim_model_logits(m, last, 1, logits);
  }
  if (!rc) cslim_kv_cache_advance(kv, n);
  cslim_acts_free(a);
  return rc;
}

/* Run ids[0..n) at cache positions past..past+n-1 (+ rope_delta). */
static cslim_status step(cslim_model *m, cslim_kv_cache *kv, const int32_t *ids, int n, int rope_delta,
                         float *logits) {
  cslim_acts *a;
  cslim_status rc = cslim_acts_embed(m, ids, &n, 1, &a);
  if (rc) return rc;
  int past = cslim_kv_cache_len(kv) + rope_delta;
  for (int i = 0; i < 3 * n; i++) a->pos[i] += past;
  return run_acts(m, kv, a, logits);
}

/* The prompt with its images: vision tower, embedding, MRoPE positions. */
static cslim_status prefill_vision(cslim_model *m, cslim_kv_cache *kv, const int32_t *ids, int n,
                                   const cslim_vision_input *in, int *rope_delta, float *logits) {
  cslim_vision_output vo;
  cslim_status rc = cslim_vision_forward(m, in, NULL, 0, &vo);
  if (rc) return rc;
  cslim_acts *a;
  rc = cslim_acts_embed_vision(m, ids, &n, 1, in, &vo, &a);
  cslim_vision_output_free(&vo);
  if (rc) return rc;
  int32_t mx = -1;
  for (int i = 0; i < 3 * n; i++) mx = a->pos[i] > mx ? a->pos[i] : mx;
  *rope_delta = mx + 1 - n;
  return run_acts(m, kv, a, logits);
}

cslim_status cslim_generate(cslim_model *m, const int32_t *prompt, int n_prompt, const cslim_generate_opts *o,
                            cslim_ids *out) {
  if (n_prompt <= 0) return cslim_error(CSLIM_ERR_INVALID, "empty prompt");
  const cslim_config *c = cslim_model_config(m);
  int maxn = o->max_new_tokens > 0 ? o->max_new_tokens : 64;
  cslim_kv_cache *kv;
  cslim_status rc = cslim_kv_cache_new(m, n_prompt + maxn, &kv);
  if (rc) return rc;
  float *logits = malloc((size_t)c->text.vocab_size * sizeof(float));
  if (!logits) {
    cslim_kv_cache_free(kv);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  int delta = 0;
  rc = o->vision ? prefill_vision(m, kv, prompt, n_prompt, o->vision, &delta, logits)
                 : step(m, kv, prompt, n_prompt, 0, logits);
  for (int i = 0; i < maxn && !rc; i++) {
    int32_t next = argmax(logits, c->text.vocab_size);
    if ((rc = cslim_ids_push(out, next))) break;
    int stop = 0;
    for (int k = 0; k < o->n_stop; k++) stop |= next == o->stop_ids[k];
    if (o->on_token && o->on_token(o->ctx, next)) stop = 1;
    if (stop || i + 1 == maxn) break;
    if (cslim_interrupted()) {
      rc = cslim_error(CSLIM_ERR_INTERRUPTED, "interrupted");
      break;
    }
    rc = step(m, kv, &next, 1, delta, logits);
  }
  free(logits);
  cslim_kv_cache_free(kv);
  return rc;
}
