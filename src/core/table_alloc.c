#include "core/table_alloc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *cslim_table_alloc(size_t bytes) {
  const size_t huge = 2u << 20;
  if (bytes < huge) return calloc(1, bytes);
  void *p = NULL;
  if (posix_memalign(&p, huge, bytes) != 0) return NULL;
  madvise(p, bytes, MADV_HUGEPAGE);
  memset(p, 0, bytes);
  return p;
}
