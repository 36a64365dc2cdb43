/* tokenizer.json loading and the encode/decode pipeline:
 *   added tokens (matched on the raw text, longest first) -> NFC -> Qwen split
 *   -> byte-level BPE (cached per word);  decode = concatenated token bytes.
 * The big sections (vocab, merges) are read with the pull scanner; the small
 * ones (normalizer, pre_tokenizer, decoder) with cJSON. */
#include "cslim/tokenizer.h"

#include "core/arena.h"
#include "core/strmap.h"
#include "io/json_scan.h"
#include "io/json_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_TOKEN_ID (1 << 24)

typedef struct added_token {
  char *content;
  size_t len;
  int32_t id;
  int special, lstrip, rstrip;
} added_token;

typedef struct token_entry {
  const char *bytes; /* raw bytes (arena) */
  uint32_t len;
  uint8_t special;
} token_entry;

struct cslim_tokenizer {
  cslim_arena arena;
  cslim_strmap vocab; /* byte-level spelling -> id */
  cslim_strmap added_by_content;
  token_entry *tokens; /* by id */
  size_t n_tokens;     /* largest id + 1 */
  added_token *added;  /* sorted by decreasing length */
  int n_added;
  unsigned char first_byte[256]; /* first bytes of added tokens */
  int nfc;
  cslim_bpe bpe;
};

/* ---- loading ---------------------------------------------------------------------- */

static cslim_status set_token(cslim_tokenizer *t, int64_t id, const char *bytes, size_t len,
                              int special) {
  if (id < 0 || id >= MAX_TOKEN_ID)
    return cslim_error(CSLIM_ERR_FORMAT, "token id %lld out of range", (long long)id);
  if ((size_t)id >= t->n_tokens) {
    size_t n = t->n_tokens ? t->n_tokens : 1024;
    while (n <= (size_t)id) n *= 2;
    token_entry *e = realloc(t->tokens, n * sizeof *e);
    if (!e) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    memset(e + t->n_tokens, 0, (n - t->n_tokens) * sizeof *e);
    t->tokens = e;
    t->n_tokens = n;
  }
  t->tokens[id].bytes = bytes;
  t->tokens[id].len = (uint32_t)len;
  t->tokens[id].special = (uint8_t)special;
  return CSLIM_OK;
}

static cslim_status read_vocab(cslim_tokenizer *t, cslim_jscan *s) {
  int first, r;
  const char *k;
  size_t kl;
  cslim_status rc = cslim_js_obj_begin(s, &first);
  if (rc) return rc;
  unsigned char tmp[1024];
  while ((r = cslim_js_obj_next(s, &first, &k, &kl)) == 1) {
    char *key = cslim_arena_strndup(&t->arena, k, kl);
    int64_t id;
    if (!key) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if ((rc = cslim_js_int(s, &id))) return rc;
    if (kl > sizeof tmp) return cslim_js_error(s, "vocabulary entry too long");
    long bl = cslim_bytelevel_decode(key, kl, tmp);
    if (bl < 0) return cslim_js_error(s, "vocabulary entry is not in byte-level form");
    char *bytes = cslim_arena_strndup(&t->arena, (const char *)tmp, (size_t)bl);
    if (!bytes) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if ((rc = set_token(t, id, bytes, (size_t)bl, 0))) return cslim_js_error(s, cslim_errmsg());
    int p = cslim_strmap_put(&t->vocab, key, id, NULL);
    if (p < 0) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    if (p == 0) return cslim_js_error(s, "duplicate vocabulary entry");
    if (bl == 1) t->bpe.byte_id[tmp[0]] = (int32_t)id;
  }
  return r < 0 ? cslim_errcode() : CSLIM_OK;
}

/* One merge: "a b" (older files) or ["a", "b"]. */
static cslim_status read_merges(cslim_tokenizer *t, cslim_jscan *s) {
  int first, r;
  cslim_status rc = cslim_js_arr_begin(s, &first);
  if (rc) return rc;
  uint32_t rank = 0;
  char *buf = NULL;
  size_t cap = 0;
  char left[512];
  while ((r = cslim_js_arr_next(s, &first)) == 1) {
    const char *a, *b;
    size_t al, bl;
    if (cslim_js_peek(s) == '[') {
      int f2;
      if ((rc = cslim_js_arr_begin(s, &f2)) || cslim_js_arr_next(s, &f2) != 1) break;
      if ((rc = cslim_js_string(s, &a, &al))) break;
      if (al >= sizeof left) {
        rc = cslim_js_error(s, "merge part too long");
        break;
      }
      memcpy(left, a, al); /* the next string may reuse the scanner's buffer */
      left[al] = 0;
      if (cslim_js_arr_next(s, &f2) != 1) {
        rc = cslim_js_error(s, "a merge must have two parts");
        break;
      }
      if ((rc = cslim_js_string(s, &b, &bl))) break;
      if (cslim_js_arr_next(s, &f2) != 0) {
        rc = cslim_js_error(s, "a merge must have two parts");
        break;
      }
    } else {
      const char *m;
      size_t ml;
      if ((rc = cslim_js_string(s, &m, &ml))) break;
      const char *sp = memchr(m, ' ', ml);
      if (!sp) {
        rc = cslim_js_error(s, "a merge must be \"a b\"");
        break;
      }
      al = (size_t)(sp - m);
      if (al >= sizeof left) {
        rc = cslim_js_error(s, "merge part too long");
        break;
      }
      memcpy(left, m, al);
      left[al] = 0;
      b = sp + 1;
      bl = ml - al - 1;
    }
    if (al + bl + 1 > cap) {
      cap = (al + bl + 1) * 2 + 64;
      char *nb = realloc(buf, cap);
      if (!nb) {
        rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
        break;
      }
      buf = nb;
    }
    memcpy(buf, b, bl);
    buf[bl] = 0;
    int64_t ib = cslim_strmap_get(&t->vocab, buf);
    int64_t ia = cslim_strmap_get(&t->vocab, left);
    memcpy(buf, left, al);
    memcpy(buf + al, b, bl);
    buf[al + bl] = 0;
    int64_t im = cslim_strmap_get(&t->vocab, buf);
    if (ia < 0 || ib < 0 || im < 0) {
      char msg[256];
      snprintf(msg, sizeof msg, "merge %u (\"%.40s\" + \"%.40s\") names a token missing from the vocabulary",
               rank, left, buf + al);
      rc = cslim_js_error(s, msg);
      break;
    }
    if (cslim_bpe_add_merge(&t->bpe, (int32_t)ia, (int32_t)ib, (int32_t)im, rank) < 0) {
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      break;
    }
    rank++;
  }
  free(buf);
  if (rc) return rc;
  return r < 0 ? cslim_errcode() : CSLIM_OK;
}

static cslim_status read_model(cslim_tokenizer *t, cslim_jscan *s, const char **merges_span,
                               size_t *merges_len, int *have_vocab) {
  int first, r;
  const char *k;
  size_t kl;
  cslim_status rc = cslim_js_obj_begin(s, &first);
  if (rc) return rc;
  while ((r = cslim_js_obj_next(s, &first, &k, &kl)) == 1) {
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(kl < 63 ? kl : 63), k);
    if (!strcmp(key, "vocab")) {
      if ((rc = read_vocab(t, s))) return rc;
      *have_vocab = 1;
    } else if (!strcmp(key, "merges")) {
      if (*have_vocab) {
        if ((rc = read_merges(t, s))) return rc;
      } else if ((rc = cslim_js_span(s, merges_span, merges_len))) {
        return rc;
      }
    } else if (!strcmp(key, "type")) {
      const char *v;
      size_t vl;
      if ((rc = cslim_js_string(s, &v, &vl))) return rc;
      if (vl != 3 || memcmp(v, "BPE", 3))
        return cslim_error(CSLIM_ERR_UNSUPPORTED, "tokenizer model type '%.*s' is not supported (BPE)",
                           (int)vl, v);
    } else if (!strcmp(key, "byte_fallback")) {
      int isnull, truth;
      if ((rc = cslim_js_literal(s, &isnull, &truth))) return rc;
      if (truth) return cslim_error(CSLIM_ERR_UNSUPPORTED, "tokenizer: byte_fallback BPE is not supported");
    } else if (!strcmp(key, "continuing_subword_prefix") || !strcmp(key, "end_of_word_suffix")) {
      if (cslim_js_peek(s) == '"') {
        const char *v;
        size_t vl;
        if ((rc = cslim_js_string(s, &v, &vl))) return rc;
        if (vl)
          return cslim_error(CSLIM_ERR_UNSUPPORTED, "tokenizer: %s is not supported", key);
      } else if ((rc = cslim_js_skip(s))) {
        return rc;
      }
    } else if ((rc = cslim_js_skip(s))) {
      return rc;
    }
  }
  return r < 0 ? cslim_errcode() : CSLIM_OK;
}

static cslim_status read_added(cslim_tokenizer *t, const char *span, size_t len, const char *src) {
  cJSON *a = NULL;
  cslim_status rc = cslim_json_parse(span, len, src, &a);
  if (rc) return rc;
  int n = cJSON_GetArraySize(a);
  t->added = calloc((size_t)n + 1, sizeof *t->added);
  if (!t->added) {
    cJSON_Delete(a);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  for (const cJSON *e = a->child; e; e = e->next) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    int64_t v;
    if (!cJSON_IsString(content) || !content->valuestring[0] || cslim_json_as_int(id, 0, MAX_TOKEN_ID - 1, &v)) {
      cJSON_Delete(a);
      return cslim_error(CSLIM_ERR_FORMAT, "%s: added_tokens entry without a valid id and content", src);
    }
    added_token *at = &t->added[t->n_added++];
    at->len = strlen(content->valuestring);
    at->content = cslim_arena_strndup(&t->arena, content->valuestring, at->len);
    at->id = (int32_t)v;
    at->special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
    at->lstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip"));
    at->rstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip"));
    if (!at->content) {
      cJSON_Delete(a);
      return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "normalized")))
      CSLIM_DEBUG("%s: added token '%s' is marked normalized; matched on the raw text", src,
                  at->content);
    t->first_byte[(unsigned char)at->content[0]] = 1;
  }
  cJSON_Delete(a);
  /* longest first: at a position the longest matching token wins */
  for (int i = 1; i < t->n_added; i++)
    for (int j = i; j > 0 && t->added[j - 1].len < t->added[j].len; j--) {
      added_token x = t->added[j];
      t->added[j] = t->added[j - 1];
      t->added[j - 1] = x;
    }
  return CSLIM_OK;
}

/* normalizer: NFC or null (anything else is refused by name). */
static cslim_status check_normalizer(cslim_tokenizer *t, const char *span, size_t len, const char *src) {
  cJSON *n = NULL;
  cslim_status rc = cslim_json_parse(span, len, src, &n);
  if (rc) return rc;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(n, "type");
  if (cJSON_IsNull(n)) {
    t->nfc = 0;
  } else if (cJSON_IsString(type) && !strcmp(type->valuestring, "NFC")) {
    t->nfc = 1;
  } else {
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: normalizer %s is not supported (NFC)", src,
                     cJSON_IsString(type) ? type->valuestring : "?");
  }
  cJSON_Delete(n);
  return rc;
}

/* pre_tokenizer: the Qwen split + ByteLevel(use_regex=false). */
static cslim_status check_pretokenizer(const char *span, size_t len, const char *src) {
  cJSON *p = NULL;
  cslim_status rc = cslim_json_parse(span, len, src, &p);
  if (rc) return rc;
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
  const cJSON *split = cJSON_GetArrayItem(list, 0), *bl = cJSON_GetArrayItem(list, 1);
  const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
  const cJSON *bt = cJSON_GetObjectItemCaseSensitive(bl, "type");
  int ok = cJSON_IsString(pat) && !strcmp(pat->valuestring, CSLIM_QWEN_SPLIT_PATTERN) &&
           cJSON_GetArraySize(list) == 2 && cJSON_IsString(bt) && !strcmp(bt->valuestring, "ByteLevel") &&
           !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(bl, "add_prefix_space"));
  const cJSON *beh = cJSON_GetObjectItemCaseSensitive(split, "behavior");
  ok = ok && cJSON_IsString(beh) && !strcmp(beh->valuestring, "Isolated");
  cJSON_Delete(p);
  if (!ok)
    return cslim_error(CSLIM_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer is not the Qwen2/Qwen3 split + ByteLevel; only the Qwen "
                       "family's tokenizer is supported",
                       src);
  return CSLIM_OK;
}

static cslim_status parse_tokenizer(cslim_tokenizer *t, const char *text, size_t len, const char *src) {
  cslim_jscan s;
  cslim_js_init(&s, text, len, src);
  int first, r, have_vocab = 0, have_model = 0, have_pre = 0;
  const char *k, *merges_span = NULL;
  size_t kl, merges_len = 0;
  cslim_status rc = cslim_js_obj_begin(&s, &first);
  while (!rc && (r = cslim_js_obj_next(&s, &first, &k, &kl)) == 1) {
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(kl < 63 ? kl : 63), k);
    const char *span;
    size_t sl;
    if (!strcmp(key, "model")) {
      rc = read_model(t, &s, &merges_span, &merges_len, &have_vocab);
      have_model = 1;
    } else if (!strcmp(key, "added_tokens")) {
      if (!(rc = cslim_js_span(&s, &span, &sl))) rc = read_added(t, span, sl, src);
    } else if (!strcmp(key, "normalizer")) {
      if (!(rc = cslim_js_span(&s, &span, &sl))) rc = check_normalizer(t, span, sl, src);
    } else if (!strcmp(key, "pre_tokenizer")) {
      if (!(rc = cslim_js_span(&s, &span, &sl))) rc = check_pretokenizer(span, sl, src);
      have_pre = 1;
    } else {
      rc = cslim_js_skip(&s);
    }
  }
  if (!rc && r < 0) rc = cslim_errcode();
  if (!rc) rc = cslim_js_end(&s);
  if (!rc && merges_span) { /* merges came before the vocabulary */
    cslim_jscan m;
    cslim_js_init(&m, merges_span, merges_len, src);
    rc = read_merges(t, &m);
    cslim_js_free(&m);
  }
  cslim_js_free(&s);
  if (rc) return rc;
  if (!have_model || !have_vocab)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: no \"model\" with a \"vocab\"", src);
  if (!have_pre)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: no pre_tokenizer (expected the Qwen split)", src);
  for (int b = 0; b < 256; b++)
    if (t->bpe.byte_id[b] < 0)
      return cslim_error(CSLIM_ERR_FORMAT, "%s: byte 0x%02x has no single-byte vocabulary entry", src, b);
  for (int i = 0; i < t->n_added; i++) {
    added_token *a = &t->added[i];
    if ((rc = set_token(t, a->id, a->content, a->len, a->special))) return rc;
    if (cslim_strmap_put(&t->added_by_content, a->content, a->id, NULL) < 0)
      return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  /* trim the id table to the largest id + 1 */
  size_t n = t->n_tokens;
  while (n && !t->tokens[n - 1].bytes) n--;
  t->n_tokens = n;
  return CSLIM_OK;
}

cslim_status cslim_tokenizer_load(const char *path, cslim_tokenizer **out) {
  *out = NULL;
  char file[4096];
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(file, sizeof file, "%s/tokenizer.json", path);
  else
    snprintf(file, sizeof file, "%s", path);
  char *text;
  size_t len;
  cslim_status rc = cslim_read_file(file, &text, &len);
  if (rc) return rc;
  rc = cslim_tokenizer_load_memory(text, len, file, out);
  free(text);
  return rc;
}

cslim_status cslim_tokenizer_load_memory(const char *text, size_t len, const char *file,
                                         cslim_tokenizer **out) {
  *out = NULL;
  cslim_status rc;
  cslim_uc_init();
  cslim_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  /* Size the tables from the file: ~75 bytes of JSON per vocabulary entry
   * (with its merge) in Qwen tokenizers; they grow if that is short. */
  size_t expect = len / 64 + 64;
  cslim_arena_init(&t->arena, 1 << 20);
  if (cslim_strmap_init(&t->vocab, expect) || cslim_strmap_init(&t->added_by_content, 64)) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  } else if (!(rc = cslim_bpe_init(&t->bpe, expect))) {
    rc = parse_tokenizer(t, text, len, file);
  }
  if (rc) {
    cslim_tokenizer_free(t);
    return rc;
  }
  *out = t;
  return CSLIM_OK;
}

void cslim_tokenizer_free(cslim_tokenizer *t) {
  if (!t) return;
  cslim_bpe_free(&t->bpe);
  cslim_strmap_free(&t->vocab);
  cslim_strmap_free(&t->added_by_content);
  free(t->tokens);
  free(t->added);
  cslim_arena_free(&t->arena);
  free(t);
}

size_t cslim_tokenizer_size(const cslim_tokenizer *t) { return t->n_tokens; }

int32_t cslim_tokenizer_find(const cslim_tokenizer *t, const char *token) {
  int64_t i = cslim_strmap_get(&t->added_by_content, token);
  if (i >= 0) return (int32_t)i;
  i = cslim_strmap_get(&t->vocab, token);
  return i >= 0 ? (int32_t)i : -1;
}

const char *cslim_tokenizer_token_bytes(const cslim_tokenizer *t, int32_t id, size_t *len) {
  if (id < 0 || (size_t)id >= t->n_tokens || !t->tokens[id].bytes) return NULL;
  *len = t->tokens[id].len;
  return t->tokens[id].bytes;
}

int cslim_tokenizer_is_special(const cslim_tokenizer *t, int32_t id) {
  return id >= 0 && (size_t)id < t->n_tokens && t->tokens[id].special;
}

/* ---- encoding ------------------------------------------------------------------------ */

static cslim_status encode_segment(cslim_tokenizer *t, const char *seg, size_t n, cslim_ids *out) {
  if (!n) return CSLIM_OK;
  char *norm = NULL;
  size_t nl = n;
  const unsigned char *s = (const unsigned char *)seg;
  if (t->nfc) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = s[i] < 0x80;
    if (!ascii) {
      cslim_status rc = cslim_nfc(seg, n, &norm, &nl);
      if (rc) return rc;
      s = (const unsigned char *)norm;
    }
  }
  cslim_status rc = CSLIM_OK;
  for (size_t pos = 0; pos < nl && !rc;) {
    size_t end = cslim_pretok_next(s, nl, pos);
    rc = cslim_bpe_encode_word(&t->bpe, s + pos, end - pos, out);
    pos = end;
  }
  free(norm);
  return rc;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

cslim_status cslim_tokenizer_encode(cslim_tokenizer *t, const char *text, size_t len, cslim_ids *out) {
  const unsigned char *s = (const unsigned char *)text;
  size_t bad = cslim_utf8_validate(s, len);
  if (bad < len)
    return cslim_error(CSLIM_ERR_INVALID, "invalid UTF-8 at byte %zu of the input text", bad);
  size_t seg = 0;
  cslim_status rc = CSLIM_OK;
  for (size_t i = 0; i < len && !rc; i++) {
    if (!t->first_byte[s[i]]) continue;
    for (int a = 0; a < t->n_added; a++) {
      const added_token *at = &t->added[a];
      if (at->len > len - i || memcmp(s + i, at->content, at->len) != 0) continue;
      size_t b = i, e = i + at->len;
      if (at->lstrip)
        while (b > seg && is_space(s[b - 1])) b--;
      if (at->rstrip)
        while (e < len && is_space(s[e])) e++;
      rc = encode_segment(t, text + seg, b - seg, out);
      if (!rc) rc = cslim_ids_push(out, at->id);
      seg = e;
      i = e - 1;
      break;
    }
  }
  if (!rc) rc = encode_segment(t, text + seg, len - seg, out);
  return rc;
}

/* ---- decoding ------------------------------------------------------------------------ */

/* Length of the "maximal subpart" of an ill-formed sequence at s (Unicode
 * §3.9, what Rust's from_utf8_lossy and Python's errors="replace" replace
 * by one U+FFFD). */
static size_t maximal_subpart(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  unsigned lo = 0x80, hi = 0xbf;
  size_t need;
  if (c >= 0xc2 && c <= 0xdf) need = 1;
  else if (c >= 0xe0 && c <= 0xef) {
    need = 2;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 3;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 1;
  }
  size_t k = 1;
  while (k <= need && k < n) {
    unsigned x = s[k];
    if (x < lo || x > hi) break;
    lo = 0x80;
    hi = 0xbf;
    k++;
  }
  return k;
}

cslim_status cslim_tokenizer_decode(const cslim_tokenizer *t, const int32_t *ids, size_t n,
                                    int skip_special, char **out, size_t *out_len) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || (size_t)ids[i] >= t->n_tokens || !t->tokens[ids[i]].bytes)
      return cslim_error(CSLIM_ERR_INVALID, "token id %d is not in the vocabulary (size %zu)", ids[i],
                         t->n_tokens);
    total += t->tokens[ids[i]].len;
  }
  unsigned char *raw = malloc(total + 1);
  if (!raw) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    const token_entry *e = &t->tokens[ids[i]];
    if (skip_special && e->special) continue;
    memcpy(raw + o, e->bytes, e->len);
    o += e->len;
  }
  /* invalid sequences -> U+FFFD (3 bytes each; at most 3x growth) */
  char *res = malloc(3 * o + 1);
  if (!res) {
    free(raw);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  size_t r = 0, i = 0;
  while (i < o) {
    size_t ok = cslim_utf8_validate(raw + i, o - i);
    memcpy(res + r, raw + i, ok);
    r += ok;
    i += ok;
    if (i < o) {
      memcpy(res + r, "\xEF\xBF\xBD", 3);
      r += 3;
      i += maximal_subpart(raw + i, o - i);
    }
  }
  res[r] = 0;
  free(raw);
  *out = res;
  if (out_len) *out_len = r;
  return CSLIM_OK;
}
