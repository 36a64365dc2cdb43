#include "core/u64map.h"

#include "core/table_alloc.h"

#include <stdlib.h>
#include <string.h>

int cslim_u64map_init(cslim_u64map *m, size_t expected) {
  size_t cap = 16;
  while (cap < expected * 2) cap <<= 1;
  m->e = cslim_table_alloc(cap * sizeof *m->e);
  m->cap = cap;
  m->count = 0;
  if (!m->e) {
    m->cap = 0;
    return -1;
  }
  for (size_t i = 0; i < cap; i++) m->e[i].key = UINT64_MAX;
  return 0;
}

void cslim_u64map_free(cslim_u64map *m) {
  free(m->e);
  m->e = NULL;
  m->cap = m->count = 0;
}

static int grow(cslim_u64map *m) {
  cslim_u64map n;
  if (cslim_u64map_init(&n, m->cap) != 0) return -1;
  for (size_t i = 0; i < m->cap; i++)
    if (m->e[i].key != UINT64_MAX) cslim_u64map_put(&n, m->e[i].key, m->e[i].val);
  cslim_u64map_free(m);
  *m = n;
  return 0;
}

int cslim_u64map_put(cslim_u64map *m, uint64_t key, uint64_t val) {
  if ((m->count + 1) * 2 > m->cap && grow(m) != 0) return -1;
  size_t mask = m->cap - 1;
  for (size_t i = cslim_u64_hash(key) & mask;; i = (i + 1) & mask) {
    if (m->e[i].key == UINT64_MAX) {
      m->e[i].key = key;
      m->e[i].val = val;
      m->count++;
      return 1;
    }
    if (m->e[i].key == key) return 0;
  }
}
