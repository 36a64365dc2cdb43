/* Calibration datasets: every format, the errors (file and line), and
 * tokenization into right-padded batches. */
#include "testutil.h"

#include "cslim/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CALIB CSLIM_FIXTURES "/../calib"

static const char *calib(const char *name) {
  static char p[4096];
  snprintf(p, sizeof p, "%s/%s", CALIB, name);
  if (access(p, F_OK) != 0) fail_msg("calibration fixture missing: %s", p);
  return p;
}

static void put(const char *dir, const char *name, const char *text) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  tu_write_file(p, text, strlen(text));
}

static void test_text_formats(void **s) {
  (void)s;
  cslim_dataset *ds;
  assert_int_equal(cslim_dataset_load(calib("mix_calib.jsonl"), NULL, &ds), CSLIM_OK);
  assert_int_equal(ds->n, 48);
  assert_int_equal(ds->n_images, 0);
  assert_true(strncmp(ds->samples[0].text, "Question: Kenny is selling his Pokemon cards", 44) == 0);
  cslim_dataset_free(ds);
  assert_int_equal(cslim_dataset_load(calib("qwen3-moe_calib_prompt_50.json"), NULL, &ds), CSLIM_OK);
  assert_int_equal(ds->n, 48);
  cslim_dataset_free(ds);
  cslim_dataset_opts o = {.max_samples = 32};
  assert_int_equal(cslim_dataset_load(calib("wiki.jsonl"), &o, &ds), CSLIM_OK);
  assert_int_equal(ds->n, 32);
  cslim_dataset_free(ds);

  char *dir = tu_tmpdir();
  char p[4096];
  put(dir, "t.jsonl", "{\"text\": \"first\"}\n\n  \n{\"inputs_pretokenized\": \"second\", \"x\": 1}\n");
  snprintf(p, sizeof p, "%s/t.jsonl", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_OK);
  assert_int_equal(ds->n, 2);
  assert_string_equal(ds->samples[1].text, "second");
  cslim_dataset_free(ds);
  put(dir, "o.json", "[\"a\", {\"text\": \"b\"}]");
  snprintf(p, sizeof p, "%s/o.json", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_OK);
  assert_string_equal(ds->samples[1].text, "b");
  cslim_dataset_free(ds);
  tu_rmtree(dir);
  free(dir);
}

static void test_text_errors(void **s) {
  (void)s;
  char *dir = tu_tmpdir();
  char p[4096];
  cslim_dataset *ds;
  put(dir, "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"broken}\n");
  snprintf(p, sizeof p, "%s/bad.jsonl", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("bad.jsonl:2");
  put(dir, "nokey.jsonl", "{\"text\": \"ok\"}\n{\"prompt\": \"x\"}\n");
  snprintf(p, sizeof p, "%s/nokey.jsonl", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("nokey.jsonl:2: no text");
  put(dir, "arr.jsonl", "[1]\n");
  snprintf(p, sizeof p, "%s/arr.jsonl", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("arr.jsonl:1: expected a JSON object");
  put(dir, "empty.jsonl", "\n\n");
  snprintf(p, sizeof p, "%s/empty.jsonl", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("empty.jsonl: no samples");
  put(dir, "empty.json", "");
  snprintf(p, sizeof p, "%s/empty.json", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("empty.json: empty file");
  put(dir, "obj.json", "{\"a\": 1}");
  snprintf(p, sizeof p, "%s/obj.json", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("expected a JSON array");
  put(dir, "num.json", "[\"a\", 5]");
  snprintf(p, sizeof p, "%s/num.json", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("num.json:[1]: no text");
  put(dir, "data.txt", "hello");
  snprintf(p, sizeof p, "%s/data.txt", dir);
  assert_int_equal(cslim_dataset_load(p, NULL, &ds), CSLIM_ERR_INVALID);
  assert_errmsg_contains(".json or .jsonl");
  assert_int_equal(cslim_dataset_load("/nonexistent/calib.jsonl", NULL, &ds), CSLIM_ERR_IO);
  assert_errmsg_contains("/nonexistent/calib.jsonl");
  tu_rmtree(dir);
  free(dir);
}

static void test_image_folders(void **s) {
  (void)s;
  cslim_dataset *ds;
  assert_int_equal(cslim_dataset_load(calib("images"), NULL, &ds), CSLIM_OK);
  assert_int_equal(ds->n, 2);
  assert_int_equal(ds->n_images, 2);
  assert_string_equal(ds->samples[0].text, "Describe this image in detail.");
  assert_non_null(strstr(ds->samples[0].image, "COCO_train2014_000000577589.jpg"));
  assert_non_null(strstr(ds->samples[1].image, "COCO_train2014_000000577592.jpg"));
  cslim_dataset_free(ds);

  /* a folder with a mapping file */
  char *dir = tu_tmpdir();
  char p[4096], q[4096];
  snprintf(p, sizeof p, "%s/a.png", dir);
  size_t n;
  unsigned char *img = tu_read_file(tu_fixture("images/astronaut_input.png"), &n);
  tu_write_file(p, img, n);
  free(img);
  put(dir, "map.jsonl", "{\"image\": \"a.png\", \"text\": \"What is this?\"}\n{\"text\": \"no image\"}\n");
  assert_int_equal(cslim_dataset_load(dir, NULL, &ds), CSLIM_OK);
  assert_int_equal(ds->n, 2);
  assert_int_equal(ds->n_images, 1);
  assert_string_equal(ds->samples[0].text, "What is this?");
  assert_non_null(strstr(ds->samples[0].image, "/a.png"));
  assert_null(ds->samples[1].image);
  cslim_dataset_free(ds);
  /* a mapping that names a missing image: file and line */
  put(dir, "map.jsonl", "{\"image\": \"a.png\", \"text\": \"x\"}\n{\"image\": \"b.jpg\", \"text\": \"y\"}\n");
  assert_int_equal(cslim_dataset_load(dir, NULL, &ds), CSLIM_ERR_IO);
  assert_errmsg_contains("map.jsonl:2: image");
  assert_errmsg_contains("b.jpg does not exist");
  /* two mappings are ambiguous */
  put(dir, "other.json", "[]");
  assert_int_equal(cslim_dataset_load(dir, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("at most one");
  snprintf(q, sizeof q, "%s/other.json", dir);
  unlink(q);
  snprintf(q, sizeof q, "%s/map.jsonl", dir);
  unlink(q);
  unlink(p);
  assert_int_equal(cslim_dataset_load(dir, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("no images");
  /* images are not allowed in a plain text file */
  put(dir, "t.jsonl", "{\"image\": \"a.png\", \"text\": \"x\"}\n");
  snprintf(q, sizeof q, "%s/t.jsonl", dir);
  assert_int_equal(cslim_dataset_load(q, NULL, &ds), CSLIM_ERR_FORMAT);
  assert_errmsg_contains("t.jsonl:1");
  tu_rmtree(dir);
  free(dir);
}

static cslim_status fake_image_tokens(void *ctx, const char *path, int *n) {
  (void)path;
  *n = *(int *)ctx;
  return CSLIM_OK;
}

static void test_tokenize_batches(void **s) {
  (void)s;
  cslim_tokenizer *tok;
  assert_int_equal(cslim_tokenizer_load(tu_fixture("models/tiny-qwen3"), &tok), CSLIM_OK);
  cslim_dataset *ds;
  cslim_dataset_opts o = {.max_samples = 10};
  assert_int_equal(cslim_dataset_load(calib("mix_calib.jsonl"), &o, &ds), CSLIM_OK);
  cslim_batch_opts bo = {.max_tokens = 64, .batch_size = 4, .pad_id = 4070};
  cslim_batch *b;
  size_t nb;
  assert_int_equal(cslim_dataset_tokenize(ds, tok, &bo, &b, &nb), CSLIM_OK);
  assert_int_equal(nb, 3);
  assert_int_equal(b[0].batch, 4);
  assert_int_equal(b[2].batch, 2);
  assert_int_equal(b[2].first_sample, 8);
  for (size_t k = 0; k < nb; k++) {
    int maxlen = 0;
    for (int i = 0; i < b[k].batch; i++) {
      /* each row equals the sample encoded alone, truncated, then right-padded */
      const char *text = ds->samples[b[k].first_sample + (size_t)i].text;
      cslim_ids ids = {0};
      assert_int_equal(cslim_tokenizer_encode(tok, text, strlen(text), &ids), CSLIM_OK);
      size_t want = ids.n < 64 ? ids.n : 64;
      assert_int_equal(b[k].lengths[i], want);
      for (int t = 0; t < b[k].seq; t++)
        assert_int_equal(b[k].ids[i * b[k].seq + t], (size_t)t < want ? ids.v[t] : 4070);
      if ((int)want > maxlen) maxlen = (int)want;
      cslim_ids_free(&ids);
    }
    assert_int_equal(b[k].seq, maxlen);
  }
  cslim_batches_free(b, nb);
  cslim_dataset_free(ds);

  /* image samples are rendered with the chat template and the pad count */
  assert_int_equal(cslim_dataset_load(calib("images"), NULL, &ds), CSLIM_OK);
  cslim_batch_opts io = {.batch_size = 1, .pad_id = 4070};
  assert_int_equal(cslim_dataset_tokenize(ds, tok, &io, &b, &nb), CSLIM_ERR_INVALID);
  assert_errmsg_contains("need an image processor");
  int pads = 12;
  io.image_tokens = fake_image_tokens;
  io.image_ctx = &pads;
  assert_int_equal(cslim_dataset_tokenize(ds, tok, &io, &b, &nb), CSLIM_OK);
  assert_int_equal(nb, 2);
  int count = 0;
  for (int t = 0; t < b[0].seq; t++) count += b[0].ids[t] == 4082;
  assert_int_equal(count, 12);
  assert_int_equal(b[0].ids[0], 4071); /* <|im_start|> */
  cslim_batches_free(b, nb);
  io.max_tokens = 10; /* an image prompt is never truncated */
  assert_int_equal(cslim_dataset_tokenize(ds, tok, &io, &b, &nb), CSLIM_ERR_INVALID);
  assert_errmsg_contains("more than the limit");
  cslim_dataset_free(ds);
  cslim_tokenizer_free(tok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text_formats),
      cmocka_unit_test(test_text_errors),
      cmocka_unit_test(test_image_folders),
      cmocka_unit_test(test_tokenize_batches),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
