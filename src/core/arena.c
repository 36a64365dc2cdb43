#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

struct cslim_arena_block {
  cslim_arena_block *next;
  size_t used, cap;
  _Alignas(8) unsigned char data[];
};

void cslim_arena_init(cslim_arena *a, size_t block_size) {
  a->head = NULL;
  a->block_size = block_size ? block_size : 1 << 16;
}

void *cslim_arena_alloc(cslim_arena *a, size_t n) {
  n = (n + 7) & ~(size_t)7;
  cslim_arena_block *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > a->block_size ? n : a->block_size;
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->used = 0;
    b->cap = cap;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

char *cslim_arena_strndup(cslim_arena *a, const char *s, size_t n) {
  char *p = cslim_arena_alloc(a, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void cslim_arena_free(cslim_arena *a) {
  cslim_arena_block *b = a->head;
  while (b) {
    cslim_arena_block *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
}
