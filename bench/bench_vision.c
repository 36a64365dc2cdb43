/* bench_vision: the Qwen3-VL image path.
 *
 *   1. preprocessing a 1280x720 JPEG (decode, smart_resize to 1280x704,
 *      bicubic resample, normalise, patch flattening) with Qwen3-VL's
 *      processor settings: images/s, and the pixel bytes per second of each
 *      stage next to the machine's memory bandwidth (a large memcpy);
 *   2. the vision tower with Qwen3-VL-8B's real shapes (27 blocks, hidden
 *      1152, 16 heads, MLP 4304, deepstack mergers at 8/16/24; random
 *      weights) on one image of 1024 patches: achieved GFLOP/s next to the
 *      measured sgemm peak.
 *
 *   bench_vision [--patches 1024] [--reps 5] [--only pre|tower] */
#include "bench_util.h"
#include "synth.h"

#include "cslim/cslim.h"
#include "cslim/image.h"
#include "cslim/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>

/* A 1280x720 photograph-like JPEG (smooth gradients + texture), quality 90. */
static unsigned char *make_jpeg(int w, int h, unsigned long *len) {
  uint8_t *px = malloc((size_t)w * h * 3);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      uint8_t *p = px + ((size_t)y * w + x) * 3;
      p[0] = (uint8_t)((x * 255 / w + (s & 15)) & 255);
      p[1] = (uint8_t)((y * 255 / h + ((s >> 8) & 15)) & 255);
      p[2] = (uint8_t)(((x + y) * 127 / (w + h) + 64 + ((s >> 16) & 31)) & 255);
    }
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char *out = NULL;
  jpeg_mem_dest(&c, &out, len);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = px + (size_t)c.next_scanline * w * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  free(px);
  return out;
}

static double memcpy_gbps(void) {
  size_t n = (size_t)256 << 20;
  char *a = malloc(n), *b = malloc(n);
  memset(a, 1, n);
  memset(b, 2, n);
  double best = 1e30;
  for (int r = 0; r < 4; r++) {
    double t0 = cslim_now();
    memcpy(b, a, n);
    double t = cslim_now() - t0;
    if (r && t < best) best = t;
  }
  free(a);
  free(b);
  return 2.0 * (double)n / best / 1e9; /* read + write */
}

static int bench_pre(int reps) {
  unsigned long len = 0;
  unsigned char *jpg = make_jpeg(1280, 720, &len);
  cslim_image_processor p = {16, 2, 2, 65536, 16777216, 1, 1, 1, 1.0 / 255.0, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
  int h, w;
  if (cslim_smart_resize(&p, 720, 1280, &h, &w)) return 1;
  double t_dec = 1e30, t_res = 1e30, t_all = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = cslim_now();
    cslim_image img, rs;
    if (cslim_image_decode(jpg, len, "bench.jpg", &img)) return 1;
    double t1 = cslim_now();
    if (cslim_image_resize(&img, w, h, &rs)) return 1;
    double t2 = cslim_now();
    cslim_image_free(&rs);
    float *rows;
    int grid[3];
    double t3 = cslim_now();
    if (cslim_image_to_patches(&p, &img, "bench.jpg", &rows, grid)) return 1;
    double t4 = cslim_now();
    free(rows);
    cslim_image_free(&img);
    if (t1 - t0 < t_dec) t_dec = t1 - t0;
    if (t2 - t1 < t_res) t_res = t2 - t1;
    if ((t1 - t0) + (t4 - t3) < t_all) t_all = (t1 - t0) + (t4 - t3);
  }
  double bw = memcpy_gbps();
  const double in_px = 1280.0 * 720 * 3, out_px = (double)w * h * 3;
  printf("preprocess 1280x720 JPEG (%lu bytes) -> %dx%d, %d patches:\n", len, w, h, (w / 16) * (h / 16));
  printf("  decode          %7.2f ms  %6.2f GB/s of pixels written\n", t_dec * 1e3, in_px / t_dec / 1e9);
  printf("  bicubic resize  %7.2f ms  %6.2f GB/s of pixels read\n", t_res * 1e3, in_px / t_res / 1e9);
  printf("  whole processor %7.2f ms  %6.1f images/s (pixel_values %.1f MB)\n", t_all * 1e3, 1.0 / t_all,
         out_px * 2 * 4 / 1e6);
  printf("  memory bandwidth (memcpy, read+write): %.1f GB/s; %d threads\n", bw, cslim_get_threads());
  free(jpg);
  return 0;
}

static int bench_tower(int patches, int reps) {
  const synth_spec *p = synth_preset("qwen3-vl-8b");
  synth_spec s = *p;
  s.layers = 1;
  s.vocab = 1024;
  char dir[] = "/tmp/cslim-bench-vision-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  printf("writing a Qwen3-VL-8B vision tower (random weights) to %s ...\n", dir);
  if (synth_write(&s, dir, 0, 1, NULL)) {
    fprintf(stderr, "%s\n", cslim_errmsg());
    return 1;
  }
  cslim_model *m;
  if (cslim_model_open(dir, &m)) {
    fprintf(stderr, "%s\n", cslim_errmsg());
    return 1;
  }
  /* one image: a 32 x (patches/32) grid */
  int gw = patches / 32 > 0 ? patches / 32 : 2;
  int grid[1][3] = {{1, 32, gw}};
  int N = 32 * gw, PD = 3 * 2 * 16 * 16;
  float *pv = malloc((size_t)N * PD * sizeof(float));
  for (size_t i = 0; i < (size_t)N * PD; i++) pv[i] = (float)((i * 2654435761u) % 255) / 127.5f - 1.0f;
  cslim_vision_input in = {0};
  if (cslim_vision_input_add_rows(&in, pv, N, PD, (const int(*)[3])grid, 1)) return 1;
  const double D = s.vis_hidden, NI = s.vis_intermediate, MW = 4 * D, OH = s.hidden;
  double flops_block = 2.0 * N * (4 * D * D + 2 * D * NI) + 4.0 * N * (double)N * D;
  double flops_merger = 2.0 * (N / 4.0) * (MW * MW + MW * OH);
  double flops = 2.0 * N * PD * D + s.vis_depth * flops_block + (1 + s.n_deepstack) * flops_merger;
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    cslim_vision_output o;
    double t0 = cslim_now();
    if (cslim_vision_forward(m, &in, NULL, 0, &o)) {
      fprintf(stderr, "%s\n", cslim_errmsg());
      return 1;
    }
    double t = cslim_now() - t0;
    cslim_vision_output_free(&o);
    if (t < best) best = t;
  }
  double peak = bench_sgemm_peak();
  printf("vision tower, Qwen3-VL-8B shapes (depth %d, hidden %d), %d patches -> %d tokens:\n", s.vis_depth,
         s.vis_hidden, N, N / 4);
  printf("  %.2f s (best of %d, weights converted from bf16 included), %.1f GFLOP -> %.1f GFLOP/s = %.0f %% of the "
         "sgemm peak %.1f GFLOP/s; peak RSS %.0f MB\n",
         best, reps, flops / 1e9, flops / best / 1e9, 100.0 * flops / best / 1e9 / peak, peak,
         (double)cslim_peak_rss() / 1e6);
  cslim_model_close(m);
  cslim_vision_input_free(&in);
  free(pv);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return 0;
}

int main(int argc, char **argv) {
  int patches = 1024, reps = 5;
  const char *only = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--patches")) patches = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
  }
  if (reps < 1) reps = 1;
  cslim_log_set_level(CSLIM_LOG_WARN);
  int rc = 0;
  if (!only || !strcmp(only, "pre")) rc |= bench_pre(reps * 4);
  if (!only || !strcmp(only, "tower")) rc |= bench_tower(patches, reps < 3 ? reps : 3);
  return rc;
}
