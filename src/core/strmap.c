#include "core/strmap.h"

#include <stdlib.h>
#include <string.h>

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
  m->keys = calloc(cap, sizeof *m->keys);
  m->vals = malloc(cap * sizeof *m->vals);
  m->cap = cap;
  m->count = 0;
  if (!m->keys || !m->vals) {
    cslim_strmap_free(m);
    return -1;
  }
  return 0;
}

void cslim_strmap_free(cslim_strmap *m) {
  free(m->keys);
  free(m->vals);
  m->keys = NULL;
  m->vals = NULL;
  m->cap = m->count = 0;
}

static int grow(cslim_strmap *m) {
  cslim_strmap n;
  if (cslim_strmap_init(&n, m->cap) != 0) return -1; /* doubles capacity */
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i]) cslim_strmap_put(&n, m->keys[i], m->vals[i], NULL);
  cslim_strmap_free(m);
  *m = n;
  return 0;
}

int cslim_strmap_put(cslim_strmap *m, const char *key, int64_t val, int64_t *existing) {
  if ((m->count + 1) * 2 > m->cap && grow(m) != 0) return -1;
  size_t mask = m->cap - 1;
  for (size_t i = hash_str(key) & mask;; i = (i + 1) & mask) {
    if (!m->keys[i]) {
      m->keys[i] = key;
      m->vals[i] = val;
      m->count++;
      return 1;
    }
    if (strcmp(m->keys[i], key) == 0) {
      if (existing) *existing = m->vals[i];
      return 0;
    }
  }
}

int64_t cslim_strmap_get(const cslim_strmap *m, const char *key) {
  if (!m->cap) return -1;
  size_t mask = m->cap - 1;
  for (size_t i = hash_str(key) & mask;; i = (i + 1) & mask) {
    if (!m->keys[i]) return -1;
    if (strcmp(m->keys[i], key) == 0) return m->vals[i];
  }
}
