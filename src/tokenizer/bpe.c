/* BPE over token ids: repeatedly merge the adjacent pair with the lowest
 * rank, leftmost first (a min-heap of (rank, position), stale entries skipped)
 * — the order Hugging Face `tokenizers` applies. */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

typedef struct bpe_cache_entry {
  uint64_t hash; /* 0 = empty */
  uint32_t koff, klen;
  uint32_t ioff, ilen;
} bpe_cache_entry;

#define CACHE_CAP (1u << 16)   /* entries (half used before a reset) */
#define CACHE_MAX_WORD 256     /* longer words are not cached */

cslim_status cslim_ids_push(cslim_ids *ids, int32_t id) {
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? ids->cap * 2 : 64;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    ids->v = v;
    ids->cap = cap;
  }
  ids->v[ids->n++] = id;
  return CSLIM_OK;
}

void cslim_ids_free(cslim_ids *ids) {
  free(ids->v);
  ids->v = NULL;
  ids->n = ids->cap = 0;
}

cslim_status cslim_bpe_init(cslim_bpe *b, size_t n_merges) {
  memset(b, 0, sizeof *b);
  for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
  if (cslim_u64map_init(&b->merges, n_merges) != 0) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  b->cache = calloc(CACHE_CAP, sizeof *b->cache);
  b->cache_cap = CACHE_CAP;
  if (!b->cache) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  return CSLIM_OK;
}

void cslim_bpe_free(cslim_bpe *b) {
  cslim_u64map_free(&b->merges);
  free(b->sym);
  free(b->prev);
  free(b->next);
  free(b->heap);
  free(b->cache);
  free(b->kpool);
  free(b->ipool);
  memset(b, 0, sizeof *b);
}

int cslim_bpe_add_merge(cslim_bpe *b, int32_t left, int32_t right, int32_t merged, uint32_t rank) {
  uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
  int r = cslim_u64map_put(&b->merges, key, (uint64_t)rank << 32 | (uint32_t)merged);
  return r < 0 ? -1 : r == 0;
}

static inline int lookup(const cslim_bpe *b, int32_t l, int32_t r, uint32_t *rank, int32_t *merged) {
  uint64_t v;
  if (!cslim_u64map_get(&b->merges, (uint64_t)(uint32_t)l << 32 | (uint32_t)r, &v)) return 0;
  *rank = (uint32_t)(v >> 32);
  *merged = (int32_t)(uint32_t)v;
  return 1;
}

/* ---- min-heap of (rank << 32 | position) ----------------------------------- */

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p] <= v) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
  uint64_t top = h[0], last = h[--*n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && h[c + 1] < h[c]) c++;
    if (h[c] >= last) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = last;
  return top;
}

static cslim_status reserve(cslim_bpe *b, size_t n) {
  if (n <= b->cap) return CSLIM_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < n) cap *= 2;
  int32_t *s = realloc(b->sym, cap * sizeof *s);
  if (s) b->sym = s;
  int32_t *p = realloc(b->prev, cap * sizeof *p);
  if (p) b->prev = p;
  int32_t *x = realloc(b->next, cap * sizeof *x);
  if (x) b->next = x;
  uint64_t *h = realloc(b->heap, 2 * cap * sizeof *h); /* each merge pushes <= 2 */
  if (h) b->heap = h;
  if (!s || !p || !x || !h) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  b->cap = cap;
  return CSLIM_OK;
}

static cslim_status merge_word(cslim_bpe *b, const unsigned char *w, size_t n, cslim_ids *out) {
  cslim_status rc = reserve(b, n + 1);
  if (rc) return rc;
  int32_t *sym = b->sym, *prev = b->prev, *next = b->next;
  uint64_t *heap = b->heap;
  size_t hn = 0;
  for (size_t i = 0; i < n; i++) {
    sym[i] = b->byte_id[w[i]];
    if (sym[i] < 0)
      return cslim_error(CSLIM_ERR_FORMAT, "tokenizer: byte 0x%02x has no vocabulary entry", w[i]);
    prev[i] = (int32_t)i - 1;
    next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  uint32_t rank;
  int32_t merged;
  for (size_t i = 0; i + 1 < n; i++)
    if (lookup(b, sym[i], sym[i + 1], &rank, &merged)) heap_push(heap, &hn, (uint64_t)rank << 32 | i);
  while (hn) {
    uint64_t top = heap_pop(heap, &hn);
    uint32_t r = (uint32_t)(top >> 32);
    int32_t i = (int32_t)(uint32_t)top;
    if (sym[i] < 0) continue; /* merged away */
    int32_t j = next[i];
    if (j < 0 || !lookup(b, sym[i], sym[j], &rank, &merged) || rank != r) continue; /* stale */
    sym[i] = merged;
    sym[j] = -1;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0 && lookup(b, sym[prev[i]], sym[i], &rank, &merged))
      heap_push(heap, &hn, (uint64_t)rank << 32 | (uint32_t)prev[i]);
    if (next[i] >= 0 && lookup(b, sym[i], sym[next[i]], &rank, &merged))
      heap_push(heap, &hn, (uint64_t)rank << 32 | (uint32_t)i);
  }
  for (int32_t i = 0; i >= 0; i = next[i])
    if ((rc = cslim_ids_push(out, sym[i]))) return rc;
  return CSLIM_OK;
}

/* ---- word cache ---------------------------------------------------------------- */

static uint64_t hash_bytes(const unsigned char *w, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ w[i]) * 0x100000001b3ull;
  return h | 1; /* never 0 */
}

static void cache_reset(cslim_bpe *b) {
  memset(b->cache, 0, b->cache_cap * sizeof *b->cache);
  b->cache_count = 0;
  b->kpool_n = 0;
  b->ipool_n = 0;
}

static int pool_grow(void **p, size_t *cap, size_t need, size_t es) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 1 << 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * es);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

cslim_status cslim_bpe_encode_word(cslim_bpe *b, const unsigned char *w, size_t n, cslim_ids *out) {
  if (n == 1) {
    if (b->byte_id[w[0]] < 0)
      return cslim_error(CSLIM_ERR_FORMAT, "tokenizer: byte 0x%02x has no vocabulary entry", w[0]);
    return cslim_ids_push(out, b->byte_id[w[0]]);
  }
  if (n > CACHE_MAX_WORD) return merge_word(b, w, n, out);
  uint64_t h = hash_bytes(w, n);
  size_t mask = b->cache_cap - 1, slot = h & mask;
  for (;; slot = (slot + 1) & mask) {
    bpe_cache_entry *e = &b->cache[slot];
    if (!e->hash) break;
    if (e->hash == h && e->klen == n && memcmp(b->kpool + e->koff, w, n) == 0) {
      for (uint32_t k = 0; k < e->ilen; k++) {
        cslim_status rc = cslim_ids_push(out, b->ipool[e->ioff + k]);
        if (rc) return rc;
      }
      return CSLIM_OK;
    }
  }
  size_t before = out->n;
  cslim_status rc = merge_word(b, w, n, out);
  if (rc) return rc;
  if (b->cache_count * 2 >= b->cache_cap) {
    cache_reset(b);
    slot = h & mask;
  }
  size_t ilen = out->n - before;
  if (pool_grow((void **)&b->kpool, &b->kpool_cap, b->kpool_n + n, 1) ||
      pool_grow((void **)&b->ipool, &b->ipool_cap, b->ipool_n + ilen, sizeof(int32_t)))
    return CSLIM_OK; /* caching is optional */
  bpe_cache_entry *e = &b->cache[slot];
  e->hash = h;
  e->koff = (uint32_t)b->kpool_n;
  e->klen = (uint32_t)n;
  e->ioff = (uint32_t)b->ipool_n;
  e->ilen = (uint32_t)ilen;
  memcpy(b->kpool + b->kpool_n, w, n);
  memcpy(b->ipool + b->ipool_n, out->v + before, ilen * sizeof(int32_t));
  b->kpool_n += n;
  b->ipool_n += ilen;
  b->cache_count++;
  return CSLIM_OK;
}
