/* bench_io: read every tensor of a sharded checkpoint and convert it to
 * float32; print GB/s next to `cat FILES > /dev/null` on the same files with
 * the page cache warm (the machine's limit for reading them). Goal: >= 80 %.
 *
 *   bench_io [--model DIR] [--gb G] [--shard_gb S] [--threads N] [--reps R]
 *
 * Without --model a synthetic bf16 checkpoint of G GB (default 1) in shards of
 * S GB (default 0.25) is written to $TMPDIR and removed afterwards (kept with
 * --keep). */
#include "cslim/cslim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double time_cat(cslim_st *st) {
  size_t cap = 1 << 16, o = 0;
  char *cmd = malloc(cap);
  o += (size_t)snprintf(cmd, cap, "cat");
  for (size_t i = 0; i < cslim_st_file_count(st); i++) {
    const char *p = cslim_st_file_path(st, i);
    if (o + strlen(p) + 8 >= cap) cmd = realloc(cmd, cap *= 2);
    o += (size_t)snprintf(cmd + o, cap - o, " '%s'", p);
  }
  snprintf(cmd + o, cap - o, " > /dev/null");
  double t0 = cslim_now();
  if (system(cmd) != 0) fprintf(stderr, "bench_io: cat failed\n");
  double t = cslim_now() - t0;
  free(cmd);
  return t;
}

static double time_read(cslim_st *st, float *buf, double *checksum) {
  double t0 = cslim_now();
  double sum = 0;
  for (size_t i = 0; i < cslim_st_count(st); i++) {
    const cslim_tensor *t = cslim_st_at(st, i);
    cslim_st_read_f32(st, t, buf);
    sum += buf[0] + buf[t->numel - 1];
    cslim_st_release(st, t);
  }
  *checksum = sum;
  return cslim_now() - t0;
}

static int make_synthetic(const char *dir, double gb, double shard_gb) {
  cslim_st_writer *w;
  if (cslim_st_writer_create(dir, "model", (uint64_t)(shard_gb * (1u << 30)), &w)) return -1;
  const int64_t shape[2] = {4096, 4096}; /* 32 MiB in bf16, a Qwen3-8B q_proj */
  int n = (int)(gb * (1u << 30) / (4096.0 * 4096 * 2) + 0.5);
  if (n < 1) n = 1;
  for (int i = 0; i < n; i++) {
    char name[64];
    snprintf(name, sizeof name, "model.layers.%d.weight", i);
    if (cslim_st_writer_declare(w, name, CSLIM_BF16, 2, shape)) return -1;
  }
  if (cslim_st_writer_begin(w)) return -1;
  uint16_t *data = malloc(4096 * 4096 * 2);
  uint64_t s = 1;
  for (size_t i = 0; i < 4096 * 4096; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    data[i] = (uint16_t)(0x3c00 + ((s >> 33) & 0x7ff)); /* finite bf16 values */
  }
  for (int i = 0; i < n; i++) {
    char name[64];
    snprintf(name, sizeof name, "model.layers.%d.weight", i);
    data[0] = (uint16_t)i;
    if (cslim_st_writer_put(w, name, data)) return -1;
  }
  free(data);
  int rc = cslim_st_writer_finish(w) ? -1 : 0;
  cslim_st_writer_free(w);
  return rc;
}

int main(int argc, char **argv) {
  const char *model = NULL;
  double gb = 1.0, shard_gb = 0.25;
  int threads = 0, reps = 3, keep = 0;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--keep")) {
      keep = 1;
      memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof *argv);
      argc--;
    }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!strcmp(argv[i], "--gb")) gb = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--shard_gb")) shard_gb = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: bench_io [--model DIR] [--gb G] [--shard_gb S] [--threads N] [--reps R] [--keep]\n");
      return 2;
    }
  }
  cslim_set_threads(threads);
  char tmpl[4096] = "";
  if (!model) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/bench-io-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) return perror("mkdtemp"), 1;
    printf("writing a %.2f GB synthetic bf16 checkpoint (shards of %.2f GB) to %s\n", gb, shard_gb, tmpl);
    if (make_synthetic(tmpl, gb, shard_gb)) {
      fprintf(stderr, "bench_io: %s\n", cslim_errmsg());
      return 1;
    }
    model = tmpl;
  }
  cslim_st *st;
  if (cslim_st_open(model, &st)) {
    fprintf(stderr, "bench_io: %s\n", cslim_errmsg());
    return 1;
  }
  uint64_t bytes = 0, max_numel = 1;
  for (size_t i = 0; i < cslim_st_file_count(st); i++) bytes += cslim_st_file_size(st, i);
  for (size_t i = 0; i < cslim_st_count(st); i++)
    if ((uint64_t)cslim_st_at(st, i)->numel > max_numel) max_numel = (uint64_t)cslim_st_at(st, i)->numel;
  float *buf = malloc(max_numel * 4);

  time_cat(st); /* warm the page cache */
  double best_cat = 1e30, best_read = 1e30, sum = 0;
  for (int r = 0; r < reps; r++) {
    double c = time_cat(st);
    if (c < best_cat) best_cat = c;
    double t = time_read(st, buf, &sum);
    if (t < best_read) best_read = t;
  }
  double gbs_cat = (double)bytes / best_cat / 1e9, gbs = (double)bytes / best_read / 1e9;
  printf("checkpoint: %zu files, %zu tensors, %.3f GB (page cache warm), %d threads\n",
         cslim_st_file_count(st), cslim_st_count(st), (double)bytes / 1e9, cslim_get_threads());
  printf("cat > /dev/null        : %7.2f GB/s  (limit)\n", gbs_cat);
  printf("cslim read -> float32  : %7.2f GB/s  = %5.1f %% of cat  (goal >= 80 %%; writes %.2f GB/s of float32)\n",
         gbs, 100.0 * gbs / gbs_cat, gbs * (double)cslim_st_total_bytes(st) / (double)bytes * 2.0);
  if (sum == 12345.678) printf("(checksum)\n");
  free(buf);
  cslim_st_close(st);
  if (tmpl[0] && !keep) cslim_remove_tree(tmpl);
  if (tmpl[0] && keep) printf("kept %s\n", tmpl);
  return 0;
}
