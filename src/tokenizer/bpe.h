/* BPE merging of one pre-token, with a cache of recent words. */
#ifndef CSLIM_TOKENIZER_BPE_H
#define CSLIM_TOKENIZER_BPE_H

#include "core/u64map.h"
#include "cslim/tokenizer.h"

typedef struct cslim_bpe {
  cslim_u64map merges; /* (left << 32 | right) -> (rank << 32 | merged) */
  int32_t byte_id[256];
  /* scratch for one word */
  int32_t *sym, *prev, *next;
  uint64_t *heap;
  size_t cap;
  /* word cache: open addressing over (hash, offsets into two pools) */
  struct bpe_cache_entry *cache;
  size_t cache_cap, cache_count;
  unsigned char *kpool;
  size_t kpool_n, kpool_cap;
  int32_t *ipool;
  size_t ipool_n, ipool_cap;
} cslim_bpe;

cslim_status cslim_bpe_init(cslim_bpe *b, size_t n_merges);
void cslim_bpe_free(cslim_bpe *b);
/* Register merge (left, right) -> merged with the given rank. Returns 0, or
 * 1 if the pair was already present (the first rank wins). */
int cslim_bpe_add_merge(cslim_bpe *b, int32_t left, int32_t right, int32_t merged, uint32_t rank);
/* Append the ids of the byte string w[0..n). */
cslim_status cslim_bpe_encode_word(cslim_bpe *b, const unsigned char *w, size_t n, cslim_ids *out);

#endif
