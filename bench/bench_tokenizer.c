/* bench_tokenizer: load time of a tokenizer.json and single-core encoding
 * throughput (MB/s of UTF-8 input) on a calibration file.
 *
 *   bench_tokenizer [--tokenizer FILE] [--data FILE.jsonl] [--reps N]
 *
 * Defaults: the real Qwen3 tokenizer and wiki.jsonl from ../shared.
 * Goals (issue 3): load < 150 ms, >= 20 MB/s on one core. The machine limit
 * printed beside it is memcpy bandwidth of the same text. */
#include "cslim/cslim.h"
#include "cslim/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *tok_path = CSLIM_SHARED "/fixtures/tokenizer/qwen3-tokenizer.json";
  const char *data = CSLIM_SHARED "/calib/wiki.jsonl";
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--tokenizer")) tok_path = argv[i + 1];
    else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
  }
  cslim_set_threads(1);
  enum { NLOAD = 15 };
  double lt[NLOAD];
  cslim_tokenizer *tok = NULL;
  for (int i = 0; i < NLOAD; i++) {
    double t0 = cslim_now();
    if (cslim_tokenizer_load(tok_path, &tok)) {
      fprintf(stderr, "bench_tokenizer: %s\n", cslim_errmsg());
      return 1;
    }
    lt[i] = (cslim_now() - t0) * 1e3;
    if (i + 1 < NLOAD) cslim_tokenizer_free(tok);
  }
  qsort(lt, NLOAD, sizeof *lt, cmpd);
  printf("tokenizer %s: %zu ids\n", tok_path, cslim_tokenizer_size(tok));
  printf("load time: median %.1f ms, min %.1f ms over %d loads (goal < 150 ms)\n", lt[NLOAD / 2], lt[0], NLOAD);

  /* the calibration texts, concatenated per line as separate encodes */
  FILE *f = fopen(data, "rb");
  if (!f) {
    fprintf(stderr, "bench_tokenizer: cannot open %s\n", data);
    return 1;
  }
  char **texts = NULL;
  size_t nt = 0, bytes = 0;
  char line[1 << 16];
  char *big = NULL;
  size_t cap = 0, len = 0;
  int ch;
  while ((ch = fgetc(f)) != EOF) {
    if (len + 1 >= cap) big = realloc(big, cap = cap ? 2 * cap : 1 << 16);
    if (ch != '\n') {
      big[len++] = (char)ch;
      continue;
    }
    big[len] = 0;
    cJSON *o = cJSON_Parse(big);
    const cJSON *s = cJSON_GetObjectItem(o, "inputs_pretokenized");
    if (!s) s = cJSON_GetObjectItem(o, "text");
    if (cJSON_IsString(s)) {
      texts = realloc(texts, (nt + 1) * sizeof *texts);
      texts[nt++] = strdup(s->valuestring);
      bytes += strlen(s->valuestring);
    }
    cJSON_Delete(o);
    len = 0;
  }
  fclose(f);
  (void)line;
  double best = 1e30, first = 0;
  size_t ntok = 0;
  for (int r = 0; r < reps; r++) {
    if (getenv("BENCH_COLD")) { /* cold word cache each repetition */
      cslim_tokenizer_free(tok);
      cslim_tokenizer_load(tok_path, &tok);
    }
    double t0 = cslim_now();
    ntok = 0;
    for (size_t i = 0; i < nt; i++) {
      cslim_ids ids = {0};
      cslim_tokenizer_encode(tok, texts[i], strlen(texts[i]), &ids);
      ntok += ids.n;
      cslim_ids_free(&ids);
    }
    double t = cslim_now() - t0;
    if (t < best) best = t;
    if (r == 0) first = t;
  }
  /* memcpy of the same bytes, for scale */
  char *dst = malloc(bytes + 1);
  double t0 = cslim_now();
  for (int r = 0; r < 20; r++) {
    size_t o = 0;
    for (size_t i = 0; i < nt; i++) {
      size_t l = strlen(texts[i]);
      memcpy(dst + o, texts[i], l);
      o += l;
    }
  }
  double tm = (cslim_now() - t0) / 20;
  printf("encode %s: %zu texts, %.2f MB -> %zu tokens (%.2f bytes/token)\n", data, nt, bytes / 1e6, ntok,
         (double)bytes / (double)ntok);
  printf("encode throughput, first pass (cold word cache): %.1f MB/s on one core (goal >= 20 MB/s)\n",
         bytes / first / 1e6);
  printf("encode throughput, best of %d passes (warm cache): %.1f MB/s; memcpy of the same text: %.0f MB/s\n",
         reps, bytes / best / 1e6, bytes / tm / 1e6);
  for (size_t i = 0; i < nt; i++) free(texts[i]);
  free(texts);
  free(big);
  free(dst);
  cslim_tokenizer_free(tok);
  return 0;
}
