/* Small string helpers shared across the library (internal). */
#ifndef CSLIM_CORE_STRUTIL_H
#define CSLIM_CORE_STRUTIL_H

#include <string.h>

/* 1 when s ends with suffix. */
static inline int cslim_ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

#endif
