#include "io/json_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JS_MAX_DEPTH 512

void cslim_js_init(cslim_jscan *s, const char *text, size_t len, const char *src) {
  s->base = s->p = text;
  s->end = text + len;
  s->src = src;
  s->buf = NULL;
  s->cap = 0;
}

void cslim_js_free(cslim_jscan *s) {
  free(s->buf);
  s->buf = NULL;
  s->cap = 0;
}

cslim_status cslim_js_error(cslim_jscan *s, const char *what) {
  int line = 1, col = 1;
  for (const char *q = s->base; q < s->p && q < s->end; q++) {
    if (*q == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  return cslim_error(CSLIM_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", s->src, line, col,
                     what);
}

static inline void ws(cslim_jscan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

int cslim_js_peek(cslim_jscan *s) {
  ws(s);
  return s->p < s->end ? (unsigned char)*s->p : -1;
}

static int reserve(cslim_jscan *s, size_t n) {
  if (n <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 256;
  while (cap < n) cap *= 2;
  char *b = realloc(s->buf, cap);
  if (!b) return -1;
  s->buf = b;
  s->cap = cap;
  return 0;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xc0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xe0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | cp >> 18);
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

cslim_status cslim_js_string(cslim_jscan *s, const char **out, size_t *len) {
  ws(s);
  if (s->p >= s->end || *s->p != '"') return cslim_js_error(s, "expected a string");
  const char *b = ++s->p;
  const char *q = b;
  while (q < s->end && *q != '"' && *q != '\\') {
    if ((unsigned char)*q < 0x20) {
      s->p = q;
      return cslim_js_error(s, "control character in a string");
    }
    q++;
  }
  if (q >= s->end) {
    s->p = q;
    return cslim_js_error(s, "unterminated string");
  }
  if (*q == '"') { /* fast path: no escapes */
    *out = b;
    *len = (size_t)(q - b);
    s->p = q + 1;
    return CSLIM_OK;
  }
  /* with escapes: decode into the buffer (output never longer than input) */
  size_t o = (size_t)(q - b);
  if (reserve(s, (size_t)(s->end - b) + 4) != 0) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  memcpy(s->buf, b, o);
  while (q < s->end && *q != '"') {
    unsigned char c = (unsigned char)*q;
    if (c < 0x20) {
      s->p = q;
      return cslim_js_error(s, "control character in a string");
    }
    if (c != '\\') {
      s->buf[o++] = (char)c;
      q++;
      continue;
    }
    if (q + 1 >= s->end) break;
    char e = q[1];
    q += 2;
    switch (e) {
    case '"': s->buf[o++] = '"'; break;
    case '\\': s->buf[o++] = '\\'; break;
    case '/': s->buf[o++] = '/'; break;
    case 'b': s->buf[o++] = '\b'; break;
    case 'f': s->buf[o++] = '\f'; break;
    case 'n': s->buf[o++] = '\n'; break;
    case 'r': s->buf[o++] = '\r'; break;
    case 't': s->buf[o++] = '\t'; break;
    case 'u': {
      unsigned cp;
      if (q + 4 > s->end || hex4(q, &cp) != 0) {
        s->p = q;
        return cslim_js_error(s, "bad \\u escape");
      }
      q += 4;
      if (cp >= 0xd800 && cp < 0xdc00) { /* high surrogate: expect the low one */
        unsigned lo;
        if (q + 6 <= s->end && q[0] == '\\' && q[1] == 'u' && hex4(q + 2, &lo) == 0 && lo >= 0xdc00 &&
            lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          q += 6;
        } else {
          cp = 0xfffd;
        }
      } else if (cp >= 0xdc00 && cp < 0xe000) {
        cp = 0xfffd;
      }
      o += put_utf8(s->buf + o, cp);
      break;
    }
    default:
      s->p = q - 1;
      return cslim_js_error(s, "bad escape");
    }
  }
  if (q >= s->end) {
    s->p = q;
    return cslim_js_error(s, "unterminated string");
  }
  s->p = q + 1;
  *out = s->buf;
  *len = o;
  return CSLIM_OK;
}

cslim_status cslim_js_int(cslim_jscan *s, int64_t *out) {
  ws(s);
  const char *q = s->p;
  int neg = 0;
  if (q < s->end && *q == '-') {
    neg = 1;
    q++;
  }
  if (q >= s->end || *q < '0' || *q > '9') return cslim_js_error(s, "expected an integer");
  int64_t v = 0;
  while (q < s->end && *q >= '0' && *q <= '9') {
    if (v > (INT64_MAX - 9) / 10) return cslim_js_error(s, "integer too large");
    v = v * 10 + (*q - '0');
    q++;
  }
  if (q < s->end && (*q == '.' || *q == 'e' || *q == 'E')) {
    s->p = q;
    return cslim_js_error(s, "expected an integer");
  }
  s->p = q;
  *out = neg ? -v : v;
  return CSLIM_OK;
}

static cslim_status skip_number(cslim_jscan *s) {
  const char *q = s->p;
  if (q < s->end && *q == '-') q++;
  const char *d = q;
  while (q < s->end && *q >= '0' && *q <= '9') q++;
  if (q == d) return cslim_js_error(s, "bad number");
  if (q < s->end && *q == '.') {
    q++;
    d = q;
    while (q < s->end && *q >= '0' && *q <= '9') q++;
    if (q == d) return cslim_js_error(s, "bad number");
  }
  if (q < s->end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < s->end && (*q == '+' || *q == '-')) q++;
    d = q;
    while (q < s->end && *q >= '0' && *q <= '9') q++;
    if (q == d) return cslim_js_error(s, "bad number");
  }
  s->p = q;
  return CSLIM_OK;
}

cslim_status cslim_js_literal(cslim_jscan *s, int *is_null, int *truth) {
  ws(s);
  size_t left = (size_t)(s->end - s->p);
  *is_null = 0;
  *truth = 0;
  if (left >= 4 && memcmp(s->p, "null", 4) == 0) {
    *is_null = 1;
    s->p += 4;
  } else if (left >= 4 && memcmp(s->p, "true", 4) == 0) {
    *truth = 1;
    s->p += 4;
  } else if (left >= 5 && memcmp(s->p, "false", 5) == 0) {
    s->p += 5;
  } else {
    return cslim_js_error(s, "expected true, false or null");
  }
  return CSLIM_OK;
}

static cslim_status skip_value(cslim_jscan *s, int depth) {
  if (depth > JS_MAX_DEPTH) return cslim_js_error(s, "nested too deeply");
  int c = cslim_js_peek(s);
  const char *k;
  size_t kl;
  int first, r, a, b;
  cslim_status rc;
  switch (c) {
  case '"':
    return cslim_js_string(s, &k, &kl);
  case '{':
    if ((rc = cslim_js_obj_begin(s, &first))) return rc;
    while ((r = cslim_js_obj_next(s, &first, &k, &kl)) == 1)
      if ((rc = skip_value(s, depth + 1))) return rc;
    return r < 0 ? cslim_errcode() : CSLIM_OK;
  case '[':
    if ((rc = cslim_js_arr_begin(s, &first))) return rc;
    while ((r = cslim_js_arr_next(s, &first)) == 1)
      if ((rc = skip_value(s, depth + 1))) return rc;
    return r < 0 ? cslim_errcode() : CSLIM_OK;
  case 't':
  case 'f':
  case 'n':
    return cslim_js_literal(s, &a, &b);
  case -1:
    return cslim_js_error(s, "unexpected end of input");
  default:
    if (c == '-' || (c >= '0' && c <= '9')) return skip_number(s);
    return cslim_js_error(s, "unexpected character");
  }
}

cslim_status cslim_js_skip(cslim_jscan *s) { return skip_value(s, 0); }

cslim_status cslim_js_span(cslim_jscan *s, const char **begin, size_t *len) {
  ws(s);
  const char *b = s->p;
  cslim_status rc = skip_value(s, 0);
  if (rc) return rc;
  *begin = b;
  *len = (size_t)(s->p - b);
  return CSLIM_OK;
}

cslim_status cslim_js_obj_begin(cslim_jscan *s, int *first) {
  if (cslim_js_peek(s) != '{') return cslim_js_error(s, "expected an object");
  s->p++;
  *first = 1;
  return CSLIM_OK;
}

int cslim_js_obj_next(cslim_jscan *s, int *first, const char **key, size_t *klen) {
  int c = cslim_js_peek(s);
  if (c == '}') {
    s->p++;
    return 0;
  }
  if (!*first) {
    if (c != ',') return cslim_js_error(s, "expected ',' or '}'"), -1;
    s->p++;
  }
  *first = 0;
  if (cslim_js_string(s, key, klen) != CSLIM_OK) return -1;
  if (cslim_js_peek(s) != ':') return cslim_js_error(s, "expected ':'"), -1;
  s->p++;
  return 1;
}

cslim_status cslim_js_arr_begin(cslim_jscan *s, int *first) {
  if (cslim_js_peek(s) != '[') return cslim_js_error(s, "expected an array");
  s->p++;
  *first = 1;
  return CSLIM_OK;
}

int cslim_js_arr_next(cslim_jscan *s, int *first) {
  int c = cslim_js_peek(s);
  if (c == ']') {
    s->p++;
    return 0;
  }
  if (!*first) {
    if (c != ',') return cslim_js_error(s, "expected ',' or ']'"), -1;
    s->p++;
    if (cslim_js_peek(s) == ']') return cslim_js_error(s, "trailing comma"), -1;
  }
  if (c == -1) return cslim_js_error(s, "unexpected end of input"), -1;
  *first = 0;
  return 1;
}

cslim_status cslim_js_end(cslim_jscan *s) {
  if (cslim_js_peek(s) != -1) return cslim_js_error(s, "trailing data");
  return CSLIM_OK;
}
