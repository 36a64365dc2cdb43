/* bench_quant: a random-weight checkpoint with the shapes of Qwen3-0.6B,
 *   1. W8A8 with 32 samples x 256 tokens: wall time split into read /
 *      forward / statistics / write, peak RSS, and the forward part's GFLOP/s
 *      next to the sgemm peak;
 *   2. data-free W8A8_DYNAMIC: GB/s of checkpoint read next to `cat` on the
 *      same files.
 *
 *   bench_quant [--samples 32] [--seq 256] [--layers 28] [--keep] */
#include "bench_util.h"
#include "synth.h"

#include "cslim/cslim.h"
#include "cslim/quant.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* write + fsync of `bytes` to a file in dir: the disk's write limit */
static double write_seconds(const char *dir, uint64_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/write-probe", dir);
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t chunk = 1 << 22;
  char *buf = calloc(1, chunk);
  double t0 = cslim_now();
  for (uint64_t o = 0; o < bytes; o += chunk) fwrite(buf, 1, chunk, f);
  fflush(f);
  fsync(fileno(f));
  fclose(f);
  double t = cslim_now() - t0;
  free(buf);
  unlink(path);
  return t;
}

static double cat_seconds(const char *dir) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cat '%s'/*.safetensors > /dev/null", dir);
  if (system(cmd) != 0) return -1; /* warm */
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    double t0 = cslim_now();
    if (system(cmd) != 0) return -1;
    double t = cslim_now() - t0;
    if (t < best) best = t;
  }
  return best;
}

static int run(const char *dir, double peak, double tcat, uint64_t file_bytes, int samples, int seq, int layers,
               int mode);

int main(int argc, char **argv) {
  int samples = 32, seq = 256, layers = 28, keep = 0, mode = 0;
  const char *run_dir = NULL;
  double peak_arg = 0, cat_arg = 0;
  unsigned long long bytes_arg = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--keep")) keep = 1;
    else if (i + 1 < argc && !strcmp(argv[i], "--samples")) samples = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--seq")) seq = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--layers")) layers = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--run")) run_dir = argv[++i], mode = 1;
    else if (i + 1 < argc && !strcmp(argv[i], "--run-dynamic")) run_dir = argv[++i], mode = 2;
    else if (i + 1 < argc && !strcmp(argv[i], "--peak")) peak_arg = atof(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--cat")) cat_arg = atof(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--bytes")) bytes_arg = strtoull(argv[++i], NULL, 10);
  }
  cslim_set_threads(0);
  cslim_set_quiet(1);
  if (run_dir) { /* a child run: W8A8, then the data-free run in a process of its own */
    if (mode == 2) return run(run_dir, peak_arg, cat_arg, bytes_arg, samples, seq, layers, 2);
    int rc = run(run_dir, peak_arg, cat_arg, bytes_arg, samples, seq, layers, 1);
    fflush(stdout);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' --run-dynamic '%s' --peak %.6f --cat %.6f --bytes %llu --layers %d", argv[0],
             run_dir, peak_arg, cat_arg, bytes_arg, layers);
    return rc || system(cmd) != 0;
  }
  const char *base = getenv("TMPDIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/bench-quant-model-%d", base && *base ? base : "/tmp", (int)getpid());
  synth_spec s = *synth_preset("qwen3-0.6b");
  s.layers = layers;
  printf("writing a random-weight checkpoint with Qwen3-0.6B's shapes (%d layers) to %s\n", layers, dir);
  if (synth_write(&s, dir, 0, 3, CSLIM_SHARED "/fixtures/tokenizer/qwen3-tokenizer.json")) {
    fprintf(stderr, "bench_quant: %s\n", cslim_errmsg());
    return 1;
  }
  double peak = bench_sgemm_peak();
  double tcat = cat_seconds(dir);
  uint64_t file_bytes = 0;
  {
    cslim_st *st;
    if (cslim_st_open(dir, &st) == CSLIM_OK) {
      for (size_t i = 0; i < cslim_st_file_count(st); i++) file_bytes += cslim_st_file_size(st, i);
      cslim_st_close(st);
    }
  }
  printf("sgemm peak %.1f GFLOP/s (%d threads); cat of the %.2f GB checkpoint: %.2f GB/s (page cache warm)\n",
         peak, cslim_get_threads(), (double)file_bytes / 1e9, (double)file_bytes / tcat / 1e9);

  /* each run in a fresh process (this program, re-executed), so that its
   * peak RSS is its own: the synthetic checkpoint's writer above used a
   * large buffer, and OpenMP does not survive fork() */
  fflush(stdout);
  char cmd[16384];
  snprintf(cmd, sizeof cmd, "'%s' --run '%s' --peak %.6f --cat %.6f --bytes %llu --samples %d --seq %d --layers %d",
           argv[0], dir, peak, tcat, (unsigned long long)file_bytes, samples, seq, layers);
  int st = system(cmd);
  if (!keep) cslim_remove_tree(dir);
  return st == 0 ? 0 : 1;
}

static int run(const char *dir, double peak, double tcat, uint64_t file_bytes, int samples, int seq, int layers,
               int mode) {
  char out[4096];
  const char *base = getenv("TMPDIR");
  snprintf(out, sizeof out, "%s/bench-quant-out-%d", base && *base ? base : "/tmp", (int)getpid());
  synth_spec s = *synth_preset("qwen3-0.6b");
  s.layers = layers;
  cslim_quant_params p;
  cslim_quant_params_default(&p);
  cslim_quant_report r;
  if (mode == 2) goto dynamic;
  /* 1. W8A8 with calibration */
  p.model_path = dir;
  p.save_path = out;
  p.quant_type = CSLIM_QT_W8A8;
  p.calib_data = CSLIM_SHARED "/calib/wiki.jsonl";
  p.calib_samples = samples;
  p.calib_seq_len = seq;
  p.holdout = 0;
  if (cslim_quantize(&p, &r)) {
    fprintf(stderr, "bench_quant: %s\n", cslim_errmsg());
    return 1;
  }
  /* forward FLOPs: two passes per layer (float statistics, quantized output) */
  double H = s.hidden, D = s.head_dim, T = r.calib_tokens;
  double lin = 2 * s.heads * D * H + 2 * s.kv_heads * D * H + 3 * H * s.intermediate;
  double per_pass = 2 * T * lin + 2.0 * T * seq * D * s.heads; /* + causal attention of seq-long samples */
  double flops = 2 * per_pass * layers;
  printf("\nW8A8, %d samples x %d tokens (%d tokens): %.2f s\n", r.calib_samples, seq, r.calib_tokens, r.seconds);
  printf("  read %.2f s | forward %.2f s (%.1f GFLOP/s = %.0f %% of sgemm peak) | statistics %.2f s | write %.2f s\n",
         r.t_read, r.t_forward, flops / r.t_forward / 1e9, 100 * flops / r.t_forward / 1e9 / peak, r.t_stats, r.t_write);
  printf("  peak RSS %.0f MB (one layer of float32 weights: %.0f MB); read %.2f GB, wrote %.2f GB\n",
         (double)r.peak_rss / 1e6, 4 * lin / 1e6, (double)r.bytes_read / 1e9, (double)r.bytes_written / 1e9);
  cslim_quant_report_free(&r);
  cslim_remove_tree(out);
  return 0;

dynamic:
  /* 2. data-free W8A8_DYNAMIC */
  p.model_path = dir;
  p.save_path = out;
  p.quant_type = CSLIM_QT_W8A8_DYNAMIC;
  p.calib_data = NULL;
  if (cslim_quantize(&p, &r)) {
    fprintf(stderr, "bench_quant: %s\n", cslim_errmsg());
    return 1;
  }
  double tw = write_seconds(dir, r.bytes_written);
  printf("\ndata-free W8A8_DYNAMIC: %.2f s = %.2f GB/s of checkpoint read (cat: %.2f GB/s); wrote %.2f GB\n",
         r.seconds, (double)file_bytes / r.seconds / 1e9, (double)file_bytes / tcat / 1e9,
         (double)r.bytes_written / 1e9);
  printf("  limit: reading at cat speed %.2f s, writing %.2f GB with fsync %.2f s (%.2f GB/s): %.2f s overlapped "
         "(the run writes a layer while it reads the next), %.2f s where one disk serves both in turn\n",
         tcat, (double)r.bytes_written / 1e9, tw, (double)r.bytes_written / tw / 1e9, tcat > tw ? tcat : tw, tcat + tw);
  printf("  read %.2f s | forward %.2f s | statistics (weight quantization) %.2f s | write %.2f s; peak RSS %.0f MB\n",
         r.t_read, r.t_forward, r.t_stats, r.t_write, (double)r.peak_rss / 1e6);
  cslim_quant_report_free(&r);
  cslim_remove_tree(out);
  return 0;
}
