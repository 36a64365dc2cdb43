/* Tokenizer: byte-exact ids against Hugging Face `tokenizers` for the real
 * Qwen3 tokenizer and the fixtures' small one (tokenizer_refs.json from the
 * fixtures, tests/data/tokenizer_extra.json of our own cases), decoding,
 * invalid input, malformed tokenizer files. */
#include "testutil.h"

#include "cslim/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static cslim_tokenizer *g_qwen3, *g_small;

static int setup(void **s) {
  (void)s;
  if (cslim_tokenizer_load(tu_fixture("tokenizer/qwen3-tokenizer.json"), &g_qwen3)) return -1;
  if (cslim_tokenizer_load(tu_fixture("models/tiny-qwen3"), &g_small)) return -1;
  return 0;
}

static int teardown(void **s) {
  (void)s;
  cslim_tokenizer_free(g_qwen3);
  cslim_tokenizer_free(g_small);
  return 0;
}

/* Every case of `file`[name] encodes to its ids; decoding gives back the NFC
 * form of the text. Returns the number of cases checked. */
static int check_cases(const char *file, const char *name, cslim_tokenizer *tok) {
  size_t n;
  char *txt = (char *)tu_read_file(file, &n);
  cJSON *root = cJSON_Parse(txt);
  free(txt);
  assert_non_null(root);
  const cJSON *arr = cJSON_GetObjectItem(root, name);
  assert_true(cJSON_IsArray(arr));
  int count = 0;
  for (const cJSON *c = arr->child; c; c = c->next, count++) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    const cJSON *want = cJSON_GetObjectItem(c, "ids");
    cslim_ids ids = {0};
    assert_int_equal(cslim_tokenizer_encode(tok, text, strlen(text), &ids), CSLIM_OK);
    int m = cJSON_GetArraySize(want);
    if ((int)ids.n != m) fail_msg("%s/%s case %d: %zu ids, want %d", file, name, count, ids.n, m);
    int k = 0;
    for (const cJSON *w = want->child; w; w = w->next, k++)
      if (ids.v[k] != w->valueint)
        fail_msg("%s/%s case %d: id %d is %d, want %d", file, name, count, k, ids.v[k], w->valueint);
    char *dec;
    size_t dl;
    assert_int_equal(cslim_tokenizer_decode(tok, ids.v, ids.n, 0, &dec, &dl), CSLIM_OK);
    char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)text);
    assert_string_equal(dec, nfc);
    free(nfc);
    free(dec);
    cslim_ids_free(&ids);
  }
  cJSON_Delete(root);
  return count;
}

static void test_reference_ids_qwen3(void **s) {
  (void)s;
  assert_int_equal(cslim_tokenizer_size(g_qwen3), 151669);
  assert_int_equal(check_cases(tu_fixture("tokenizer/tokenizer_refs.json"), "qwen3", g_qwen3), 12);
}

static void test_reference_ids_small(void **s) {
  (void)s;
  assert_int_equal(cslim_tokenizer_size(g_small), 4096);
  assert_int_equal(check_cases(tu_fixture("tokenizer/tokenizer_refs.json"), "small", g_small), 12);
}

static void test_extra_cases(void **s) {
  (void)s;
  const char *f = tu_source("tests/data/tokenizer_extra.json");
  assert_int_equal(check_cases(f, "qwen3", g_qwen3), 26);
  assert_int_equal(check_cases(f, "small", g_small), 26);
}

static void test_known_ids_and_lookup(void **s) {
  (void)s;
  cslim_ids ids = {0};
  /* from the Qwen2Tokenizer docstring */
  assert_int_equal(cslim_tokenizer_encode(g_qwen3, "Hello world", 11, &ids), CSLIM_OK);
  assert_int_equal(ids.n, 2);
  assert_int_equal(ids.v[0], 9707);
  assert_int_equal(ids.v[1], 1879);
  ids.n = 0;
  assert_int_equal(cslim_tokenizer_encode(g_qwen3, " Hello world", 12, &ids), CSLIM_OK);
  assert_int_equal(ids.v[0], 21927);
  cslim_ids_free(&ids);
  assert_int_equal(cslim_tokenizer_find(g_qwen3, "<|im_end|>"), 151645);
  assert_int_equal(cslim_tokenizer_find(g_qwen3, "<|image_pad|>"), 151655);
  assert_int_equal(cslim_tokenizer_find(g_qwen3, "<think>"), 151667);
  assert_int_equal(cslim_tokenizer_find(g_qwen3, "\xc4\xa0Hello"), 21927); /* "ĠHello" */
  assert_int_equal(cslim_tokenizer_find(g_qwen3, "<|nope|>"), -1);
  assert_true(cslim_tokenizer_is_special(g_qwen3, 151645));
  assert_false(cslim_tokenizer_is_special(g_qwen3, 151667)); /* <think> is not special */
  assert_false(cslim_tokenizer_is_special(g_qwen3, 9707));
  assert_int_equal(cslim_tokenizer_find(g_small, "<|image_pad|>"), 4082);
  size_t l;
  const char *b = cslim_tokenizer_token_bytes(g_qwen3, 198, &l);
  assert_int_equal(l, 1);
  assert_int_equal(b[0], '\n');
  assert_null(cslim_tokenizer_token_bytes(g_qwen3, 151669, &l));
  assert_null(cslim_tokenizer_token_bytes(g_qwen3, -1, &l));
}

static void test_decode(void **s) {
  (void)s;
  cslim_ids ids = {0};
  const char *t = "<|im_start|>user\nHi \xe4\xb8\xad<|im_end|>";
  assert_int_equal(cslim_tokenizer_encode(g_qwen3, t, strlen(t), &ids), CSLIM_OK);
  char *d;
  size_t dl;
  assert_int_equal(cslim_tokenizer_decode(g_qwen3, ids.v, ids.n, 1, &d, &dl), CSLIM_OK);
  assert_string_equal(d, "user\nHi \xe4\xb8\xad"); /* specials skipped */
  free(d);
  cslim_ids_free(&ids);
  /* a token that is half of a character decodes to U+FFFD, as errors="replace" */
  ids.n = 0;
  assert_int_equal(cslim_tokenizer_encode(g_small, "\xe4\xb8\xad", 3, &ids), CSLIM_OK);
  assert_true(ids.n >= 2); /* the small vocabulary splits this character */
  assert_int_equal(cslim_tokenizer_decode(g_small, ids.v, 1, 0, &d, &dl), CSLIM_OK);
  assert_string_equal(d, "\xef\xbf\xbd");
  free(d);
  int32_t bad = 999999;
  assert_int_equal(cslim_tokenizer_decode(g_small, &bad, 1, 0, &d, &dl), CSLIM_ERR_INVALID);
  assert_errmsg_contains("token id 999999");
  cslim_ids_free(&ids);
}

static void test_invalid_utf8(void **s) {
  (void)s;
  static const struct {
    const char *bytes;
    size_t len, offset;
  } cases[] = {
      {"ab\xff", 3, 2},            /* invalid byte */
      {"\xc0\xaf", 2, 0},          /* overlong */
      {"x\xed\xa0\x80", 4, 1},     /* surrogate */
      {"ok\xe4\xb8", 4, 2},        /* truncated */
      {"\x80z", 2, 0},             /* lone continuation */
      {"\xf4\x90\x80\x80", 4, 0},  /* beyond U+10FFFF */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cslim_ids ids = {0};
    assert_int_equal(cslim_tokenizer_encode(g_qwen3, cases[i].bytes, cases[i].len, &ids), CSLIM_ERR_INVALID);
    char want[64];
    snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", cases[i].offset);
    assert_errmsg_contains(want);
    cslim_ids_free(&ids);
  }
  /* NUL bytes are valid text */
  cslim_ids ids = {0};
  assert_int_equal(cslim_tokenizer_encode(g_qwen3, "a\0b", 3, &ids), CSLIM_OK);
  assert_int_equal(ids.n, 3);
  cslim_ids_free(&ids);
}

static void write_tok(const char *dir, const char *json) {
  char p[4096];
  snprintf(p, sizeof p, "%s/tokenizer.json", dir);
  tu_write_file(p, json, strlen(json));
}

static void test_malformed_tokenizer_files(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  cslim_tokenizer *t;
  assert_int_equal(cslim_tokenizer_load(dir, &t), CSLIM_ERR_IO);
  assert_errmsg_contains("tokenizer.json");
  write_tok(dir, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}}}");
  assert_int_equal(cslim_tokenizer_load(dir, &t), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("invalid JSON at line 1");
  write_tok(dir, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
  assert_int_equal(cslim_tokenizer_load(dir, &t), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("WordPiece");
  write_tok(dir, "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}");
  assert_int_equal(cslim_tokenizer_load(dir, &t), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("normalizer NFKC");
  write_tok(dir, "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}");
  assert_int_equal(cslim_tokenizer_load(dir, &t), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("Qwen2/Qwen3 split");
  /* a merge naming a token that is not in the vocabulary */
  char *real;
  size_t n;
  real = (char *)tu_read_file(tu_fixture("models/tiny-qwen3/tokenizer.json"), &n);
  char *m = strstr(real, "\"merges\"");
  assert_non_null(m);
  char *q = strchr(m, '[');
  q = strchr(q + 1, '[');
  /* first merge is ["Ġ", "Ġ"]: rename its first part */
  char *quote = strchr(q, '"');
  memcpy(quote + 1, "QQ", 2); /* "Ġ" is 2 bytes in UTF-8 */
  write_tok(dir, real);
  free(real);
  assert_int_equal(cslim_tokenizer_load(dir, &t), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("missing from the vocabulary");
  tu_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_ids_qwen3),
      cmocka_unit_test(test_reference_ids_small),
      cmocka_unit_test(test_extra_cases),
      cmocka_unit_test(test_known_ids_and_lookup),
      cmocka_unit_test(test_decode),
      cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_malformed_tokenizer_files),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
