#include "tokenizer/unicode.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Class of every BMP code point, computed once (65536 lookups, < 1 ms). */
uint8_t cslim_uc_bmp[65536];
#define g_bmp cslim_uc_bmp
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int is_white_space(uint32_t cp) {
  /* The Unicode White_Space property (what \s matches in the regex engines
   * the reference tokenizers use). */
  return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
         cp == 0x205f || cp == 0x3000;
}

static unsigned classify(uint32_t cp) {
  unsigned k = 0;
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) k |= CSLIM_UC_L;
  if (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) k |= CSLIM_UC_N;
  if (is_white_space(cp)) k |= CSLIM_UC_WS;
  if (cp == '\r' || cp == '\n') k |= CSLIM_UC_NL;
  return k;
}

static void init_bmp(void) {
  for (uint32_t cp = 0; cp < 65536; cp++) g_bmp[cp] = (uint8_t)classify(cp);
}

void cslim_uc_init(void) { pthread_once(&g_once, init_bmp); }

unsigned cslim_uc_class_slow(uint32_t cp) {
  if (cp < 65536) {
    pthread_once(&g_once, init_bmp);
    return g_bmp[cp];
  }
  return classify(cp);
}



size_t cslim_utf8_validate(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      min = 0x10000;
    } else {
      return i;
    }
    if (i + len > n) return i;
    uint32_t cp = c & (0x7fu >> len);
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return n;
}

/* NFC only needs to look at non-ASCII runs: ASCII characters are starters
 * that never decompose, never reorder and are never the second element of a
 * canonical composition. A run is normalised together with the ASCII
 * character before it, which may compose with a following combining mark
 * ("e" + U+0301 -> U+00E9). Everything else is copied. */
cslim_status cslim_nfc(const char *s, size_t n, char **out, size_t *out_len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t cap = n + n / 4 + 16, o = 0, i = 0;
  char *res = malloc(cap);
  if (!res) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  while (i < n) {
    size_t p = i;
    while (p < n && u[p] < 0x80) p++;
    if (p == n) {
      memcpy(res + o, s + i, n - i);
      o += n - i;
      break;
    }
    size_t start = p > i ? p - 1 : p; /* the ASCII starter before the run */
    size_t q = p;
    while (q < n && u[q] >= 0x80) q++;
    memcpy(res + o, s + i, start - i);
    o += start - i;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map(u + start, (utf8proc_ssize_t)(q - start), &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) {
      free(res);
      return cslim_error(CSLIM_ERR_INVALID, "NFC normalisation failed: %s", utf8proc_errmsg(r));
    }
    if (o + (size_t)r + (n - q) + 1 > cap) {
      cap = (o + (size_t)r + (n - q) + 1) * 2;
      char *g = realloc(res, cap);
      if (!g) {
        free(dst);
        free(res);
        return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      }
      res = g;
    }
    memcpy(res + o, dst, (size_t)r);
    o += (size_t)r;
    free(dst);
    i = q;
  }
  if (o + 1 > cap) {
    char *g = realloc(res, o + 1);
    if (!g) {
      free(res);
      return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    }
    res = g;
  }
  res[o] = 0;
  *out = res;
  *out_len = o;
  return CSLIM_OK;
}
