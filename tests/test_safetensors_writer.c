/* safetensors writer: round trip for every dtype, streaming order, sharding by
 * msModelSlim's rule, the index JSON, alignment, and misuse errors. */
#include "testutil.h"

#include "cslim/safetensors.h"
#include "cslim/staging.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int exists(const char *dir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return access(p, F_OK) == 0;
}

static void test_roundtrip_every_dtype(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  cslim_st_writer *w;
  assert_int_equal(cslim_st_writer_create(dir, "model", 0, &w), CSLIM_OK);
  assert_int_equal(cslim_st_writer_set_metadata(w, "format", "pt"), CSLIM_OK);
  unsigned char *payload[CSLIM_DTYPE_COUNT];
  uint64_t st = 11;
  for (int d = 0; d < CSLIM_DTYPE_COUNT; d++) {
    char name[64];
    snprintf(name, sizeof name, "t.%s", cslim_dtype_name((cslim_dtype)d));
    int64_t shape[3] = {3, 1 + d, 5};
    assert_int_equal(cslim_st_writer_declare(w, name, (cslim_dtype)d, 3, shape), CSLIM_OK);
    size_t nb = (size_t)(3 * (1 + d) * 5) * cslim_dtype_size((cslim_dtype)d);
    payload[d] = malloc(nb);
    for (size_t i = 0; i < nb; i++) payload[d][i] = (unsigned char)tu_rand(&st);
    if (d == CSLIM_BOOL)
      for (size_t i = 0; i < nb; i++) payload[d][i] &= 1;
  }
  int64_t scalar_shape[1];
  assert_int_equal(cslim_st_writer_declare(w, "scalar", CSLIM_F32, 0, scalar_shape), CSLIM_OK);
  assert_int_equal(cslim_st_writer_begin(w), CSLIM_OK);
  assert_int_equal(cslim_st_writer_shard_count(w), 1);
  assert_string_equal(cslim_st_writer_shard_name(w, 0), "model.safetensors");
  /* streaming: write in reverse declaration order */
  float sc = 3.25f;
  assert_int_equal(cslim_st_writer_put(w, "scalar", &sc), CSLIM_OK);
  for (int d = CSLIM_DTYPE_COUNT - 1; d >= 0; d--) {
    char name[64];
    snprintf(name, sizeof name, "t.%s", cslim_dtype_name((cslim_dtype)d));
    assert_int_equal(cslim_st_writer_put(w, name, payload[d]), CSLIM_OK);
  }
  assert_int_equal(cslim_st_writer_finish(w), CSLIM_OK);
  cslim_st_writer_free(w);
  assert_false(exists(dir, "model.safetensors.index.json"));

  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  cslim_st *rd;
  assert_int_equal(cslim_st_open(path, &rd), CSLIM_OK);
  assert_int_equal(cslim_st_count(rd), CSLIM_DTYPE_COUNT + 1);
  assert_string_equal(cslim_st_metadata(rd, "format"), "pt");
  /* header padded so that the data region starts 8-aligned */
  size_t flen;
  unsigned char *raw = tu_read_file(path, &flen);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
  assert_int_equal((8 + hlen) % 8, 0);
  for (int d = 0; d < CSLIM_DTYPE_COUNT; d++) {
    const cslim_tensor *t = cslim_st_findf(rd, "t.%s", cslim_dtype_name((cslim_dtype)d));
    assert_non_null(t);
    assert_int_equal(t->dtype, d);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[1], 1 + d);
    assert_memory_equal(t->data, payload[d], t->nbytes);
    /* natural alignment of every tensor */
    assert_int_equal(t->offset % cslim_dtype_size(t->dtype), 0);
    free(payload[d]);
  }
  const cslim_tensor *t = cslim_st_find(rd, "scalar");
  assert_int_equal(t->ndim, 0);
  float back;
  cslim_st_read_f32(rd, t, &back);
  assert_true(back == 3.25f);
  /* contiguous data with no holes: the file ends exactly at the last tensor */
  uint64_t end = 0;
  for (size_t i = 0; i < cslim_st_count(rd); i++) {
    const cslim_tensor *x = cslim_st_at(rd, i);
    if (x->offset + x->nbytes > end) end = x->offset + x->nbytes;
  }
  assert_int_equal(end, flen);
  free(raw);
  cslim_st_close(rd);
  tu_rmtree(dir);
  free(dir);
}

static void test_sharding_rule_and_index(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  cslim_st_writer *w;
  /* limit 100 bytes; U8 tensors of 40, 40, 40, 150 (oversized), 10 bytes:
   * [40+40] [40] [150] [10] (msModelSlim: flush when buffered + next >= limit) */
  assert_int_equal(cslim_st_writer_create(dir, "quant_model_weights", 100, &w), CSLIM_OK);
  const int64_t sizes[5] = {40, 40, 40, 150, 10};
  const char *names[5] = {"w.a", "w.b", "w.c", "w.big", "w.small"};
  for (int i = 0; i < 5; i++)
    assert_int_equal(cslim_st_writer_declare(w, names[i], CSLIM_U8, 1, &sizes[i]), CSLIM_OK);
  assert_int_equal(cslim_st_writer_begin(w), CSLIM_OK);
  assert_int_equal(cslim_st_writer_shard_count(w), 4);
  assert_string_equal(cslim_st_writer_shard_name(w, 0), "quant_model_weights-00001-of-00004.safetensors");
  assert_string_equal(cslim_st_writer_shard_name(w, 3), "quant_model_weights-00004-of-00004.safetensors");
  unsigned char buf[150];
  for (int i = 0; i < 5; i++) {
    memset(buf, 'a' + i, sizeof buf);
    assert_int_equal(cslim_st_writer_put(w, names[i], buf), CSLIM_OK);
  }
  assert_int_equal(cslim_st_writer_finish(w), CSLIM_OK);
  assert_int_equal(cslim_st_writer_bytes_written(w), 280);
  cslim_st_writer_free(w);

  /* the index */
  char p[4096];
  snprintf(p, sizeof p, "%s/quant_model_weights.safetensors.index.json", dir);
  size_t n;
  char *txt = (char *)tu_read_file(p, &n);
  cJSON *root = cJSON_Parse(txt);
  assert_non_null(root);
  cJSON *meta = cJSON_GetObjectItem(root, "metadata");
  assert_int_equal((int)cJSON_GetObjectItem(meta, "total_size")->valuedouble, 280);
  cJSON *wm = cJSON_GetObjectItem(root, "weight_map");
  assert_int_equal(cJSON_GetArraySize(wm), 5);
  assert_string_equal(cJSON_GetObjectItem(wm, "w.a")->valuestring,
                      "quant_model_weights-00001-of-00004.safetensors");
  assert_string_equal(cJSON_GetObjectItem(wm, "w.b")->valuestring,
                      "quant_model_weights-00001-of-00004.safetensors");
  assert_string_equal(cJSON_GetObjectItem(wm, "w.c")->valuestring,
                      "quant_model_weights-00002-of-00004.safetensors");
  assert_string_equal(cJSON_GetObjectItem(wm, "w.big")->valuestring,
                      "quant_model_weights-00003-of-00004.safetensors");
  assert_string_equal(cJSON_GetObjectItem(wm, "w.small")->valuestring,
                      "quant_model_weights-00004-of-00004.safetensors");
  cJSON_Delete(root);
  free(txt);

  /* and the reader takes the whole set back through the index */
  cslim_st *rd;
  assert_int_equal(cslim_st_open(p, &rd), CSLIM_OK);
  assert_int_equal(cslim_st_count(rd), 5);
  for (int i = 0; i < 5; i++) {
    const cslim_tensor *t = cslim_st_find(rd, names[i]);
    assert_int_equal(t->nbytes, sizes[i]);
    assert_int_equal(((const unsigned char *)t->data)[0], 'a' + i);
    assert_int_equal(((const unsigned char *)t->data)[t->nbytes - 1], 'a' + i);
  }
  cslim_st_close(rd);
  tu_rmtree(dir);
  free(dir);
}

static void test_force_index_and_f32_conversion(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  cslim_st_writer *w;
  assert_int_equal(cslim_st_writer_create(dir, "model", 1u << 30, &w), CSLIM_OK);
  cslim_st_writer_force_index(w, 1);
  int64_t shape[2] = {300, 1000}; /* > one conversion chunk */
  assert_int_equal(cslim_st_writer_declare(w, "x", CSLIM_BF16, 2, shape), CSLIM_OK);
  assert_int_equal(cslim_st_writer_declare(w, "y", CSLIM_F16, 2, shape), CSLIM_OK);
  assert_int_equal(cslim_st_writer_begin(w), CSLIM_OK);
  size_t n = 300000;
  float *v = malloc(n * 4);
  uint64_t st = 5;
  for (size_t i = 0; i < n; i++) v[i] = tu_randf(&st) * 100.0f;
  assert_int_equal(cslim_st_writer_put_f32(w, "x", v), CSLIM_OK);
  assert_int_equal(cslim_st_writer_put_f32(w, "y", v), CSLIM_OK);
  assert_int_equal(cslim_st_writer_finish(w), CSLIM_OK);
  cslim_st_writer_free(w);
  assert_true(exists(dir, "model-00001-of-00001.safetensors"));
  assert_true(exists(dir, "model.safetensors.index.json"));
  cslim_st *rd;
  assert_int_equal(cslim_st_open(dir, &rd), CSLIM_OK);
  const cslim_tensor *x = cslim_st_find(rd, "x"), *y = cslim_st_find(rd, "y");
  const uint16_t *xb = x->data, *yb = y->data;
  for (size_t i = 0; i < n; i++) {
    uint16_t a, b;
    memcpy(&a, xb + i, 2);
    memcpy(&b, yb + i, 2);
    assert_int_equal(a, cslim_f32_to_bf16(v[i]));
    assert_int_equal(b, cslim_f32_to_f16(v[i]));
  }
  cslim_st_close(rd);
  free(v);
  tu_rmtree(dir);
  free(dir);
}

static void test_parallel_puts(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  cslim_st_writer *w;
  assert_int_equal(cslim_st_writer_create(dir, "model", 4096, &w), CSLIM_OK);
  enum { NT = 64 };
  int64_t shape[1] = {256};
  for (int i = 0; i < NT; i++) {
    char name[32];
    snprintf(name, sizeof name, "t%02d", i);
    assert_int_equal(cslim_st_writer_declare(w, name, CSLIM_F32, 1, shape), CSLIM_OK);
  }
  assert_int_equal(cslim_st_writer_begin(w), CSLIM_OK);
  assert_true(cslim_st_writer_shard_count(w) > 1);
  int failures = 0;
#pragma omp parallel for reduction(+ : failures)
  for (int i = 0; i < NT; i++) {
    float data[256];
    for (int j = 0; j < 256; j++) data[j] = (float)(i * 1000 + j);
    char name[32];
    snprintf(name, sizeof name, "t%02d", i);
    failures += cslim_st_writer_put(w, name, data) != CSLIM_OK;
  }
  assert_int_equal(failures, 0);
  assert_int_equal(cslim_st_writer_finish(w), CSLIM_OK);
  cslim_st_writer_free(w);
  cslim_st *rd;
  assert_int_equal(cslim_st_open(dir, &rd), CSLIM_OK);
  assert_int_equal(cslim_st_count(rd), NT);
  for (int i = 0; i < NT; i++) {
    const cslim_tensor *t = cslim_st_findf(rd, "t%02d", i);
    float f[256];
    cslim_st_read_f32(rd, t, f);
    assert_true(f[0] == (float)(i * 1000) && f[255] == (float)(i * 1000 + 255));
  }
  cslim_st_close(rd);
  tu_rmtree(dir);
  free(dir);
}

static void test_misuse(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  cslim_st_writer *w;
  assert_int_equal(cslim_st_writer_create(dir, "model", 0, &w), CSLIM_OK);
  int64_t shape[1] = {4};
  assert_int_equal(cslim_st_writer_declare(w, "a", CSLIM_F32, 1, shape), CSLIM_OK);
  assert_int_equal(cslim_st_writer_declare(w, "b", CSLIM_F32, 1, shape), CSLIM_OK);
  assert_int_equal(cslim_st_writer_declare(w, "a", CSLIM_F32, 1, shape), CSLIM_ERR_INVALID);
  assert_errmsg_contains("declared twice");
  float d[4] = {0};
  assert_int_equal(cslim_st_writer_put(w, "a", d), CSLIM_ERR_INVALID); /* before begin */
  assert_int_equal(cslim_st_writer_begin(w), CSLIM_OK);
  assert_int_equal(cslim_st_writer_declare(w, "c", CSLIM_F32, 1, shape), CSLIM_ERR_INVALID);
  assert_int_equal(cslim_st_writer_put(w, "zzz", d), CSLIM_ERR_INVALID);
  assert_errmsg_contains("'zzz' was not declared");
  assert_int_equal(cslim_st_writer_put(w, "a", d), CSLIM_OK);
  assert_int_equal(cslim_st_writer_put(w, "a", d), CSLIM_ERR_INVALID);
  assert_errmsg_contains("written twice");
  assert_int_equal(cslim_st_writer_finish(w), CSLIM_ERR_INVALID);
  assert_errmsg_contains("never written, first 'b'");
  /* freeing an unfinished writer removes its partial shard */
  cslim_st_writer_free(w);
  assert_false(exists(dir, "model.safetensors"));
  assert_int_equal(cslim_st_writer_create(dir, "a/b", 0, &w), CSLIM_ERR_INVALID);
  tu_rmtree(dir);
  free(dir);
}

static void test_atomic_with_staging(void **s) {
  (void)s;
  char *root = tu_tmpdir();
  char target[4096];
  snprintf(target, sizeof target, "%s/out", root);
  for (int commit = 0; commit < 2; commit++) {
    cslim_staging *sg;
    assert_int_equal(cslim_staging_open(target, 0, &sg), CSLIM_OK);
    cslim_st_writer *w;
    assert_int_equal(cslim_st_writer_create(cslim_staging_path(sg), "model", 0, &w), CSLIM_OK);
    int64_t shape[1] = {2};
    assert_int_equal(cslim_st_writer_declare(w, "a", CSLIM_F32, 1, shape), CSLIM_OK);
    assert_int_equal(cslim_st_writer_begin(w), CSLIM_OK);
    float d[2] = {1, 2};
    assert_int_equal(cslim_st_writer_put(w, "a", d), CSLIM_OK);
    /* nothing is visible at the target while writing */
    assert_int_not_equal(access(target, F_OK), 0);
    assert_int_equal(cslim_st_writer_finish(w), CSLIM_OK);
    cslim_st_writer_free(w);
    if (!commit) {
      cslim_staging_abort(sg);
      assert_int_not_equal(access(target, F_OK), 0);
    } else {
      assert_int_equal(cslim_staging_commit(sg), CSLIM_OK);
      assert_true(exists(target, "model.safetensors"));
    }
  }
  tu_rmtree(root);
  free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_every_dtype),
      cmocka_unit_test(test_sharding_rule_and_index),
      cmocka_unit_test(test_force_index_and_f32_conversion),
      cmocka_unit_test(test_parallel_puts),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_atomic_with_staging),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
