/* A string -> int64 hash map (open addressing, one array of entries so that a
 * probe touches one cache line). Keys are borrowed: they must outlive the map.
 * Used for tensor-name lookups and the tokenizer vocabulary (150k entries). */
#ifndef CSLIM_CORE_STRMAP_H
#define CSLIM_CORE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cslim_strmap_entry {
  uint64_t hash; /* compared before the key: strcmp only on a hash match */
  const char *key;
  int64_t val;
} cslim_strmap_entry;

typedef struct cslim_strmap {
  cslim_strmap_entry *e;
  size_t cap; /* power of two */
  size_t count;
} cslim_strmap;

/* Returns 0, or -1 when out of memory. */
int cslim_strmap_init(cslim_strmap *m, size_t expected);
void cslim_strmap_free(cslim_strmap *m);
/* Insert key -> val. Returns 1 if inserted, 0 if the key was already present
 * (its value is left unchanged and stored in *existing when non-NULL), -1 on
 * allocation failure. */
int cslim_strmap_put(cslim_strmap *m, const char *key, int64_t val, int64_t *existing);
/* The value, or -1 when absent. */
int64_t cslim_strmap_get(const cslim_strmap *m, const char *key);

#endif
