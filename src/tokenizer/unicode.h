/* Unicode helpers for the tokenizer: UTF-8 decoding and validation, the
 * character classes of the pre-tokenizer regex, NFC normalisation. */
#ifndef CSLIM_TOKENIZER_UNICODE_H
#define CSLIM_TOKENIZER_UNICODE_H

#include "cslim/common.h"

#include <stddef.h>
#include <stdint.h>

enum {
  CSLIM_UC_L = 1,  /* \p{L}: general category L* */
  CSLIM_UC_N = 2,  /* \p{N}: general category N* */
  CSLIM_UC_WS = 4, /* \s: Unicode White_Space */
  CSLIM_UC_NL = 8  /* \r or \n (also WS) */
};

/* Build the class table of the BMP (idempotent; done by the tokenizer's load
 * so that the hot path needs no synchronisation). */
void cslim_uc_init(void);
unsigned cslim_uc_class_slow(uint32_t cp);

/* Class bits of a code point. Requires cslim_uc_init() to have run. */
static inline unsigned cslim_uc_class(uint32_t cp) {
  extern uint8_t cslim_uc_bmp[65536];
  if (cp < 65536) return cslim_uc_bmp[cp];
  return cslim_uc_class_slow(cp);
}

/* Decode the code point at s[0..n) (n >= 1). The input must be valid UTF-8
 * (checked beforehand with cslim_utf8_validate). */
static inline uint32_t cslim_utf8_decode(const unsigned char *s, size_t n, size_t *len) {
  unsigned c = s[0];
  if (c < 0x80 || n < 2) {
    *len = 1;
    return c;
  }
  if (c < 0xe0) {
    *len = 2;
    return ((c & 0x1fu) << 6) | (s[1] & 0x3fu);
  }
  if (c < 0xf0 || n < 4) {
    *len = 3;
    return ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
  }
  *len = 4;
  return ((c & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
}

/* Returns the byte offset of the first invalid sequence, or n when valid. */
size_t cslim_utf8_validate(const unsigned char *s, size_t n);

/* NFC-normalise s[0..n) into *out (malloc'd, *out_len bytes). ASCII input
 * is returned as a copy without calling into utf8proc. */
cslim_status cslim_nfc(const char *s, size_t n, char **out, size_t *out_len);

#endif
