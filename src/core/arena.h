/* A bump allocator: many small allocations, freed all at once. */
#ifndef CSLIM_CORE_ARENA_H
#define CSLIM_CORE_ARENA_H

#include <stddef.h>

typedef struct cslim_arena_block cslim_arena_block;
typedef struct cslim_arena {
  cslim_arena_block *head;
  size_t block_size;
} cslim_arena;

void cslim_arena_init(cslim_arena *a, size_t block_size);
/* NULL when out of memory. Alignment 8. */
void *cslim_arena_alloc(cslim_arena *a, size_t n);
/* Copy n bytes and add a NUL. */
char *cslim_arena_strndup(cslim_arena *a, const char *s, size_t n);
void cslim_arena_free(cslim_arena *a);

#endif
