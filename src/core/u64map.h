/* A uint64 -> uint64 hash map (open addressing, no deletion; key and value
 * side by side so that a probe touches one cache line). Key UINT64_MAX is
 * reserved. Used for BPE merges ((left << 32 | right) -> (rank << 32 | merged)). */
#ifndef CSLIM_CORE_U64MAP_H
#define CSLIM_CORE_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cslim_u64map_entry {
  uint64_t key, val;
} cslim_u64map_entry;

typedef struct cslim_u64map {
  cslim_u64map_entry *e;
  size_t cap, count;
} cslim_u64map;

int cslim_u64map_init(cslim_u64map *m, size_t expected);
void cslim_u64map_free(cslim_u64map *m);
/* 1 inserted, 0 present (value unchanged), -1 out of memory. */
int cslim_u64map_put(cslim_u64map *m, uint64_t key, uint64_t val);

static inline uint64_t cslim_u64_hash(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/* Returns 1 and sets *val when present. */
static inline int cslim_u64map_get(const cslim_u64map *m, uint64_t key, uint64_t *val) {
  size_t mask = m->cap - 1;
  for (size_t i = cslim_u64_hash(key) & mask;; i = (i + 1) & mask) {
    if (m->e[i].key == key) {
      *val = m->e[i].val;
      return 1;
    }
    if (m->e[i].key == UINT64_MAX) return 0;
  }
}

#endif
