#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode.h"

const char *const CSLIM_QWEN_SPLIT_PATTERN =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ASCII fast path for the class lookup. */
static inline unsigned cls_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
  uint32_t cp = cslim_utf8_decode(s + i, n - i, len);
  return cslim_uc_class(cp);
}

/* Case-folded ASCII letter for the contraction alternative ((?i:...)). The
 * long s U+017F folds to 's' under Unicode case-insensitive matching. */
static inline int fold_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
  uint32_t cp = cslim_utf8_decode(s + i, n - i, len);
  if (cp >= 'A' && cp <= 'Z') return (int)(cp + 32);
  if (cp == 0x17f) return 's';
  return cp < 128 ? (int)cp : -1;
}

static size_t skip_letters(const unsigned char *s, size_t n, size_t j) {
  while (j < n) {
    size_t l;
    if (!(cls_at(s, n, j, &l) & CSLIM_UC_L)) break;
    j += l;
  }
  return j;
}

#define OTHER(k) (((k) & (CSLIM_UC_L | CSLIM_UC_N | CSLIM_UC_WS)) == 0)

size_t cslim_pretok_next(const unsigned char *s, size_t n, size_t i) {
  size_t l0;
  uint32_t cp0 = cslim_utf8_decode(s + i, n - i, &l0);
  unsigned c0 = cslim_uc_class(cp0);

  /* 1. (?i:'s|'t|'re|'ve|'m|'ll|'d) */
  if (cp0 == '\'' && i + 1 < n) {
    size_t l1, l2;
    int a = fold_at(s, n, i + 1, &l1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 1 + l1;
    if ((a == 'r' || a == 'v' || a == 'l') && i + 1 + l1 < n) {
      int b = fold_at(s, n, i + 1 + l1, &l2);
      if ((a != 'l' && b == 'e') || (a == 'l' && b == 'l')) return i + 1 + l1 + l2;
    }
  }
  /* 2. [^\r\n\p{L}\p{N}]?\p{L}+ */
  if (c0 & CSLIM_UC_L) return skip_letters(s, n, i + l0);
  if (!(c0 & (CSLIM_UC_L | CSLIM_UC_N | CSLIM_UC_NL)) && i + l0 < n) {
    size_t l1;
    if (cls_at(s, n, i + l0, &l1) & CSLIM_UC_L) return skip_letters(s, n, i + l0 + l1);
  }
  /* 3. \p{N} */
  if (c0 & CSLIM_UC_N) return i + l0;
  /* 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*` */
  size_t k = n; /* start of the [^\s\p{L}\p{N}]+ run, n = no match */
  if (OTHER(c0)) {
    k = i;
  } else if (cp0 == ' ' && i + 1 < n) {
    size_t l1;
    if (OTHER(cls_at(s, n, i + 1, &l1))) k = i + 1;
  }
  if (k < n) {
    size_t j = k, l;
    while (j < n && OTHER(cls_at(s, n, j, &l))) j += l;
    while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
    return j;
  }
  /* c0 is white space here. Scan the run [i, j), remembering the last
   * newline and where the run's last character starts. */
  size_t j = i, last_nl = n, last_start = i;
  while (j < n) {
    size_t l;
    unsigned k2 = cls_at(s, n, j, &l);
    if (!(k2 & CSLIM_UC_WS)) break;
    if (k2 & CSLIM_UC_NL) last_nl = j;
    last_start = j;
    j += l;
  }
  /* 5. \s*[\r\n]+ : up to and including the last newline of the run */
  if (last_nl < n) return last_nl + 1;
  /* 6. \s+(?!\S) : the run, minus its last character if text follows */
  if (j == n) return j;
  if (last_start > i) return last_start;
  /* 7. \s+ */
  return j;
}
