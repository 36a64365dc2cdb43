/* Evaluations on a model: perplexity and greedy generation. */
#ifndef CSLIM_EVAL_H
#define CSLIM_EVAL_H

#include "cslim/model.h"
#include "cslim/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cslim_ppl_opts {
  int seq;            /* window length (default 256) */
  int windows;        /* at most this many windows; 0 = all */
  int windows_per_pass; /* windows run through the layers together (default 64) */
} cslim_ppl_opts;

typedef struct cslim_ppl_result {
  double ppl;
  double nll;          /* mean negative log-likelihood, nats per token */
  int64_t tokens;      /* predictions scored */
  int windows;
  int64_t text_tokens; /* tokens in the whole text */
  double seconds;
} cslim_ppl_result;

/* Perplexity over consecutive, non-overlapping windows of `seq` tokens of the
 * tokenized text (no special tokens added); each window scores its seq-1
 * next-token predictions. Layers are streamed once per pass. */
cslim_status cslim_eval_perplexity(cslim_model *m, const int32_t *ids, size_t n_ids, const cslim_ppl_opts *o,
                                   cslim_ppl_result *out);

/* Called with each generated token; return non-zero to stop. */
typedef int (*cslim_token_cb)(void *ctx, int32_t id);

typedef struct cslim_generate_opts {
  int max_new_tokens;
  const int32_t *stop_ids; /* generation ends after emitting one of these */
  int n_stop;
  cslim_token_cb on_token;
  void *ctx;
  /* Qwen3-VL: the images of the prompt (its <|image_pad|> runs), or NULL */
  const struct cslim_vision_input *vision;
} cslim_generate_opts;

/* Greedy decoding with a KV cache: prefill the prompt, then one token at a
 * time. The generated ids are appended to *out. With images, the prefill
 * carries the vision tower's embeddings, MRoPE positions and deepstack
 * features; each new token then sits at position n + rope_delta. */
cslim_status cslim_generate(cslim_model *m, const int32_t *prompt, int n_prompt, const cslim_generate_opts *o,
                            cslim_ids *out);

#ifdef __cplusplus
}
#endif
#endif
