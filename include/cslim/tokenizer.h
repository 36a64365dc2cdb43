/* Byte-level BPE tokenizer (the Qwen2/Qwen3 tokenizer.json format), byte-exact
 * with Hugging Face `tokenizers`: added/special tokens matched first (never
 * split), NFC, the Qwen pre-tokenizer split, byte-to-unicode mapping, merges
 * by rank. */
#ifndef CSLIM_TOKENIZER_H
#define CSLIM_TOKENIZER_H

#include "cslim/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A growable list of token ids. */
typedef struct cslim_ids {
  int32_t *v;
  size_t n, cap;
} cslim_ids;

cslim_status cslim_ids_push(cslim_ids *ids, int32_t id);
void cslim_ids_free(cslim_ids *ids);

typedef struct cslim_tokenizer cslim_tokenizer;

/* Load DIR/tokenizer.json or a tokenizer.json path. */
cslim_status cslim_tokenizer_load(const char *path, cslim_tokenizer **out);
/* Parse tokenizer.json text held in memory; `name` is used in errors. */
cslim_status cslim_tokenizer_load_memory(const char *text, size_t len, const char *name,
                                         cslim_tokenizer **out);
void cslim_tokenizer_free(cslim_tokenizer *tok);

/* Number of ids (largest id + 1), as len(tokenizer) in transformers. */
size_t cslim_tokenizer_size(const cslim_tokenizer *tok);
/* The id of an added token ("<|im_end|>") or of a vocabulary entry in its
 * byte-level spelling ("Ġhello"); -1 when absent. */
int32_t cslim_tokenizer_find(const cslim_tokenizer *tok, const char *token);
/* Raw bytes of a token (added tokens: their content). NULL for bad ids. */
const char *cslim_tokenizer_token_bytes(const cslim_tokenizer *tok, int32_t id, size_t *len);
/* Added token flagged "special" (skipped by decode with skip_special). */
int cslim_tokenizer_is_special(const cslim_tokenizer *tok, int32_t id);

/* Append the ids of UTF-8 text[0..len) to *out. Added tokens in the text are
 * matched as whole tokens (split_special_tokens = false, as in
 * transformers' default). Invalid UTF-8 is an error naming the byte offset.
 * Not thread-safe (a per-tokenizer word cache): use one tokenizer per thread. */
cslim_status cslim_tokenizer_encode(cslim_tokenizer *tok, const char *text, size_t len,
                                    cslim_ids *out);
/* Decode ids to UTF-8 (malloc'd, NUL-terminated). Invalid byte sequences
 * (a token cut inside a character) become U+FFFD, as errors="replace". */
cslim_status cslim_tokenizer_decode(const cslim_tokenizer *tok, const int32_t *ids, size_t n,
                                    int skip_special, char **out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
