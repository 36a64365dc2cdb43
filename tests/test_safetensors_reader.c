/* safetensors reader: real fixtures (single file, sharded + index, directory
 * discovery) and every rejection path, each with the error it must print. */
#include "testutil.h"

#include "cslim/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures ---------------------------------------------------------------- */

static void test_single_file_fixture(void **s) {
  (void)s;
  cslim_st *st;
  assert_int_equal(cslim_st_open(tu_fixture("models/tiny-qwen3/model.safetensors"), &st), CSLIM_OK);
  /* 4 layers x 11 tensors + embed + norm + lm_head */
  assert_int_equal(cslim_st_count(st), 47);
  const cslim_tensor *t = cslim_st_find(st, "model.layers.0.self_attn.k_proj.weight");
  assert_non_null(t);
  assert_int_equal(t->dtype, CSLIM_BF16);
  assert_int_equal(t->ndim, 2);
  assert_int_equal(t->shape[0], 128);
  assert_int_equal(t->shape[1], 256);
  assert_int_equal(t->nbytes, 128 * 256 * 2);
  assert_null(cslim_st_find(st, "model.layers.0.self_attn.k_proj.bias"));
  assert_non_null(cslim_st_findf(st, "model.layers.%d.mlp.down_proj.weight", 3));
  assert_string_equal(cslim_st_metadata(st, "format"), "pt");
  assert_int_equal(cslim_st_file_count(st), 1);
  assert_null(cslim_st_index_path(st));

  /* Conversion equals an independent decode of the raw file bytes. */
  size_t flen;
  unsigned char *raw = tu_read_file(tu_fixture("models/tiny-qwen3/model.safetensors"), &flen);
  float *f = malloc((size_t)t->numel * 4);
  cslim_st_read_f32(st, t, f);
  for (int64_t i = 0; i < t->numel; i++) {
    uint32_t u = (uint32_t)(raw[t->offset + 2 * i] | raw[t->offset + 2 * i + 1] << 8) << 16;
    float want;
    memcpy(&want, &u, 4);
    assert_true(f[i] == want);
  }
  assert_int_equal(cslim_st_bytes_read(st), t->nbytes);
  cslim_st_release(st, t); /* must not invalidate the view */
  cslim_st_read_f32(st, t, f);
  uint32_t u0 = (uint32_t)(raw[t->offset] | raw[t->offset + 1] << 8) << 16;
  float w0;
  memcpy(&w0, &u0, 4);
  assert_true(f[0] == w0);
  /* bytes read are distinct: the second read of t is not counted again; a tensor read in place counts once */
  assert_int_equal(cslim_st_bytes_read(st), t->nbytes);
  const cslim_tensor *d = cslim_st_findf(st, "model.layers.%d.mlp.down_proj.weight", 3);
  cslim_st_note_read(st, d);
  cslim_st_note_read(st, d);
  assert_int_equal(cslim_st_bytes_read(st), t->nbytes + d->nbytes);
  free(f);
  free(raw);
  cslim_st_close(st);
}

static void test_sharded_fixture(void **s) {
  (void)s;
  cslim_st *a, *b;
  /* via the index file, and via the directory (which finds the index) */
  assert_int_equal(cslim_st_open(tu_fixture("models/tiny-qwen3-moe/model.safetensors.index.json"), &a),
                   CSLIM_OK);
  assert_int_equal(cslim_st_open(tu_fixture("models/tiny-qwen3-moe"), &b), CSLIM_OK);
  assert_int_equal(cslim_st_file_count(a), 3);
  assert_int_equal(cslim_st_count(a), cslim_st_count(b));
  assert_non_null(cslim_st_index_path(b));
  const cslim_tensor *t = cslim_st_find(b, "model.layers.3.mlp.experts.7.up_proj.weight");
  assert_non_null(t);
  assert_int_equal(t->shape[0], 128);
  assert_int_equal(t->shape[1], 256);
  const cslim_tensor *g = cslim_st_find(b, "model.layers.0.mlp.gate.weight");
  assert_non_null(g);
  assert_int_equal(g->shape[0], 8);
  /* total bytes match the index's metadata.total_size */
  assert_int_equal(cslim_st_total_bytes(b), 12080640);
  cslim_st_close(a);
  cslim_st_close(b);
}

static void test_refs_fixture_dtypes(void **s) {
  (void)s;
  cslim_st *st;
  assert_int_equal(cslim_st_open(tu_fixture("refs/tiny-qwen3_ref.safetensors"), &st), CSLIM_OK);
  const cslim_tensor *ids = cslim_st_find(st, "input_ids");
  assert_non_null(ids);
  assert_int_equal(ids->dtype, CSLIM_I64);
  assert_int_equal(ids->shape[0], 2);
  assert_int_equal(ids->shape[1], 64);
  const cslim_tensor *lg = cslim_st_find(st, "logits");
  assert_int_equal(lg->dtype, CSLIM_F32);
  assert_int_equal(lg->ndim, 3);
  assert_int_equal(lg->shape[2], 4096);
  cslim_st_close(st);
}

/* ---- in-memory images -------------------------------------------------------------- */

static cslim_status open_img(const char *header, const void *data, size_t dlen, cslim_st **st) {
  size_t n;
  unsigned char *img = tu_st_image(header, data, dlen, &n);
  /* keep the image alive for the view's lifetime: leak it on success (test only) */
  cslim_status rc = cslim_st_open_memory(img, n, "img.safetensors", st);
  if (rc) free(img);
  return rc;
}

static void test_all_dtypes_parse(void **s) {
  (void)s;
  static const char *names[] = {"BOOL", "U8", "I8",  "I16", "U16", "I32", "U32",
                                "I64",  "U64", "F16", "BF16", "F32", "F64"};
  static const int sizes[] = {1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 2, 4, 8};
  for (int i = 0; i < 13; i++) {
    char h[256];
    snprintf(h, sizeof h, "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%d]}}", names[i],
             3 * sizes[i]);
    unsigned char data[24] = {0};
    cslim_st *st;
    assert_int_equal(open_img(h, data, (size_t)(3 * sizes[i]), &st), CSLIM_OK);
    assert_string_equal(cslim_dtype_name(cslim_st_find(st, "t")->dtype), names[i]);
    cslim_st_close(st);
  }
}

static void test_scalar_empty_and_unaligned(void **s) {
  (void)s;
  /* a 0-d scalar, a zero-sized tensor and an F32 at an odd offset */
  const char *h = "{\"__metadata__\":{\"k\":\"v\"},"
                  "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]},"
                  "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[1,1]},"
                  "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
  unsigned char data[9] = {42};
  float v[2] = {1.5f, -2.25f};
  memcpy(data + 1, v, 8);
  cslim_st *st;
  assert_int_equal(open_img(h, data, 9, &st), CSLIM_OK);
  assert_int_equal(cslim_st_find(st, "s")->ndim, 0);
  assert_int_equal(cslim_st_find(st, "s")->numel, 1);
  assert_int_equal(cslim_st_find(st, "z")->numel, 0);
  float out[2];
  cslim_st_read_f32(st, cslim_st_find(st, "f"), out);
  assert_true(out[0] == 1.5f && out[1] == -2.25f);
  assert_string_equal(cslim_st_metadata(st, "k"), "v");
  cslim_st_close(st);
}

typedef struct bad_case {
  const char *what;
  const char *header;
  size_t data_len;
  const char *error; /* substring the message must contain */
} bad_case;

static void test_rejections(void **s) {
  (void)s;
  static const bad_case cases[] = {
      {"invalid JSON", "{\"a\":{\"dtype\":\"F32\",", 0, "invalid JSON"},
      {"trailing garbage", "{}x", 0, "invalid JSON"},
      {"not an object", "[1,2]", 0, "not a JSON object"},
      {"unknown dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
       "unknown dtype 'F8_E4M3'"},
      {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "\"dtype\""},
      {"shape/size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24,
       "needs 24 bytes but data_offsets span 20"},
      {"out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
       "run past the end of the data"},
      {"reversed", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[5,4]}}", 8, "reversed"},
      {"overlap",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
       12, "overlap"},
      {"duplicate name",
       "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
       "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
       2, "duplicate tensor name 'a'"},
      {"negative dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
       "shape entry 0"},
      {"fractional dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0,
       "shape entry 0"},
      {"too many dims",
       "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
       "dimensions"},
      {"offsets not a pair", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1,
       "data_offsets"},
      {"huge shape overflow",
       "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
       "overflows"},
      {"metadata not strings", "{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
      {"entry not object", "{\"a\":5}", 0, "not an object"},
      {"empty name", "{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "empty name"},
  };
  unsigned char data[64] = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cslim_st *st = NULL;
    cslim_status rc = open_img(cases[i].header, data, cases[i].data_len, &st);
    if (rc == CSLIM_OK) fail_msg("case '%s' was accepted", cases[i].what);
    assert_null(st);
    if (!strstr(cslim_errmsg(), cases[i].error))
      fail_msg("case '%s': message '%s' lacks '%s'", cases[i].what, cslim_errmsg(), cases[i].error);
    /* every message names the file */
    assert_non_null(strstr(cslim_errmsg(), "img.safetensors"));
  }
}

static void test_truncation(void **s) {
  (void)s;
  cslim_st *st;
  unsigned char tiny[5] = {1, 2, 3, 4, 5};
  assert_int_equal(cslim_st_open_memory(tiny, 5, "t.safetensors", &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("truncated");
  /* header length far past the end */
  unsigned char big[16] = {0xff, 0xff, 0xff, 0, 0, 0, 0, 0, '{', '}'};
  assert_int_equal(cslim_st_open_memory(big, 16, "t.safetensors", &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("runs past the end of the file");
  /* a real file cut short: the last tensor's data is missing */
  size_t n;
  unsigned char *img = tu_read_file(tu_fixture("models/tiny-qwen3/model.safetensors"), &n);
  assert_int_equal(cslim_st_open_memory(img, n - 100, "cut.safetensors", &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("run past the end of the data");
  /* cut inside the header */
  assert_int_equal(cslim_st_open_memory(img, 200, "cut2.safetensors", &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("header length");
  free(img);
  /* empty file on disk */
  char *dir = tu_tmpdir();
  char p[4096];
  snprintf(p, sizeof p, "%s/empty.safetensors", dir);
  tu_write_file(p, "", 0);
  assert_int_equal(cslim_st_open(p, &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("empty.safetensors");
  assert_errmsg_contains("truncated");
  assert_int_equal(cslim_st_open("/nonexistent/x.safetensors", &st), CSLIM_ERR_IO);
  assert_errmsg_contains("/nonexistent/x.safetensors");
  tu_rmtree(dir);
  free(dir);
}

/* ---- sharded checkpoints on disk ---------------------------------------------------- */

static void write_shard(const char *dir, const char *name, const char *header, size_t dlen) {
  unsigned char data[64] = {0};
  size_t n;
  unsigned char *img = tu_st_image(header, data, dlen, &n);
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  tu_write_file(p, img, n);
  free(img);
}

static void write_text(const char *dir, const char *name, const char *text) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  tu_write_file(p, text, strlen(text));
}

static const char *H_A = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}";
static const char *H_B = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}";

static void test_index_errors(void **s) {
  (void)s;
  cslim_st *st;
  char *dir = tu_tmpdir();
  write_shard(dir, "m-1.safetensors", H_A, 2);
  write_shard(dir, "m-2.safetensors", H_B, 2);

  /* good */
  write_text(dir, "model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":4},\"weight_map\":{\"a\":\"m-1.safetensors\","
             "\"b\":\"m-2.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_OK);
  assert_int_equal(cslim_st_count(st), 2);
  cslim_st_close(st);

  /* a tensor named in the index but missing */
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\","
             "\"c\":\"m-2.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("tensor 'c' is named in the index but missing from m-2.safetensors");

  /* a shard file that does not exist */
  write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"m-9.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_IO);
  assert_errmsg_contains("m-9.safetensors");

  /* mapped to the wrong shard */
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"m-2.safetensors\",\"b\":\"m-2.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("tensor 'a' is named in the index but missing from m-2.safetensors");

  /* path traversal */
  write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"../m-1.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("not a plain file name");

  /* invalid JSON in the index, with its position */
  write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\n\"a\": }}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("invalid JSON at line 2");
  assert_errmsg_contains("model.safetensors.index.json");

  /* the same tensor in two shards */
  write_shard(dir, "m-2.safetensors", H_A, 2);
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"x\":\"m-2.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("tensor 'a' appears in both");

  /* a listed key twice */
  write_shard(dir, "m-2.safetensors", H_B, 2);
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"a\":\"m-1.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("listed twice");

  /* a corrupt shard is reported with its path */
  write_shard(dir, "m-2.safetensors", "{\"b\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}");
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_UNSUPPORTED);
  assert_errmsg_contains("m-2.safetensors: tensor 'b': unknown dtype 'Q4'");

  tu_rmtree(dir);
  free(dir);
}

static void test_directory_without_index(void **s) {
  (void)s;
  cslim_st *st;
  char *dir = tu_tmpdir();
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_ERR_IO);
  assert_errmsg_contains("no .safetensors files");
  /* all *.safetensors are loaded when there is neither index nor model.safetensors */
  write_shard(dir, "quant_model_weights-1.safetensors", H_A, 2);
  write_shard(dir, "quant_model_weights-2.safetensors", H_B, 2);
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_OK);
  assert_int_equal(cslim_st_count(st), 2);
  assert_int_equal(cslim_st_file_count(st), 2);
  cslim_st_close(st);
  /* model.safetensors wins when present */
  write_shard(dir, "model.safetensors", H_A, 2);
  assert_int_equal(cslim_st_open(dir, &st), CSLIM_OK);
  assert_int_equal(cslim_st_count(st), 1);
  cslim_st_close(st);
  tu_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_single_file_fixture),
      cmocka_unit_test(test_sharded_fixture),
      cmocka_unit_test(test_refs_fixture_dtypes),
      cmocka_unit_test(test_all_dtypes_parse),
      cmocka_unit_test(test_scalar_empty_and_unaligned),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_index_errors),
      cmocka_unit_test(test_directory_without_index),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
