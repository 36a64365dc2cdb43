#include "tokenizer/byte_level.h"

#include "tokenizer/unicode.h"

static int is_direct(unsigned b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

uint32_t cslim_bytelevel_char(unsigned b) {
  if (is_direct(b)) return b;
  unsigned k = 0;
  for (unsigned x = 0; x < b; x++) k += !is_direct(x);
  return 256 + k;
}

long cslim_bytelevel_decode(const char *s, size_t n, unsigned char *out) {
  static int init;
  static int16_t inv[256 + 68];
  if (!init) { /* idempotent: benign if two threads race */
    for (unsigned b = 0; b < 256; b++) inv[cslim_bytelevel_char(b)] = (int16_t)b;
    init = 1;
  }
  const unsigned char *p = (const unsigned char *)s;
  long o = 0;
  size_t i = 0;
  while (i < n) {
    size_t l;
    uint32_t cp = cslim_utf8_decode(p + i, n - i, &l);
    if (cp >= 256 + 68 || (cp < 256 && !is_direct(cp))) return -1;
    out[o++] = (unsigned char)inv[cp];
    i += l;
  }
  return o;
}
