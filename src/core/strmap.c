#include "core/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/table_alloc.h"

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h ^ (h >> 29);
}

int cslim_strmap_init(cslim_strmap *m, size_t expected) {
  size_t cap = 16;
  while (cap < expected * 2) cap <<= 1;
  m->e = cslim_table_alloc(cap * sizeof *m->e);
  m->cap = cap;
  m->count = 0;
  if (!m->e) {
    m->cap = 0;
    return -1;
  }
  return 0;
}

void cslim_strmap_free(cslim_strmap *m) {
  free(m->e);
  m->e = NULL;
  m->cap = m->count = 0;
}

static int put_hashed(cslim_strmap *m, const char *key, uint64_t h, int64_t val, int64_t *existing);

static int grow(cslim_strmap *m) {
  cslim_strmap n;
  if (cslim_strmap_init(&n, m->cap) != 0) return -1; /* doubles capacity */
  for (size_t i = 0; i < m->cap; i++)
    if (m->e[i].key) put_hashed(&n, m->e[i].key, m->e[i].hash, m->e[i].val, NULL);
  cslim_strmap_free(m);
  *m = n;
  return 0;
}

static int put_hashed(cslim_strmap *m, const char *key, uint64_t h, int64_t val, int64_t *existing) {
  if ((m->count + 1) * 2 > m->cap && grow(m) != 0) return -1;
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    cslim_strmap_entry *e = &m->e[i];
    if (!e->key) {
      e->key = key;
      e->hash = h;
      e->val = val;
      m->count++;
      return 1;
    }
    if (e->hash == h && strcmp(e->key, key) == 0) {
      if (existing) *existing = e->val;
      return 0;
    }
  }
}

int cslim_strmap_put(cslim_strmap *m, const char *key, int64_t val, int64_t *existing) {
  return put_hashed(m, key, hash_str(key), val, existing);
}

int64_t cslim_strmap_get(const cslim_strmap *m, const char *key) {
  if (!m->cap) return -1;
  size_t mask = m->cap - 1;
  uint64_t h = hash_str(key);
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const cslim_strmap_entry *e = &m->e[i];
    if (!e->key) return -1;
    if (e->hash == h && strcmp(e->key, key) == 0) return e->val;
  }
}
