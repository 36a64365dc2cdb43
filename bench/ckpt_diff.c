/* ckpt_diff A B [MAX_SCALE_REL] [MAX_CODE_SHARE]: compare two quantized checkpoints tensor by tensor —
 * integer tensors by the share of differing elements (weight codes), float tensors by the largest
 * relative difference (scales). Prints both and exits 1 when a limit is exceeded
 * (defaults: 1e-3, 0.001 = 0.1 %). Used by bench/gpu_parity.sh. */
#include "cslim/dtype.h"
#include "cslim/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: ckpt_diff A B [MAX_SCALE_REL] [MAX_CODE_SHARE]\n");
    return 2;
  }
  double max_rel = argc > 3 ? atof(argv[3]) : 1e-3, max_share = argc > 4 ? atof(argv[4]) : 1e-3;
  cslim_st *a, *b;
  if (cslim_st_open(argv[1], &a) || cslim_st_open(argv[2], &b)) {
    fprintf(stderr, "ckpt_diff: %s\n", cslim_errmsg());
    return 2;
  }
  double worst_rel = 0, layer_rel[1024] = {0};
  int n_layers = 0;
  char worst_rel_name[256] = "-";
  int64_t codes = 0, differ = 0, ints = 0, ints_differ = 0;
  int missing = 0;
  for (size_t i = 0; i < cslim_st_count(a); i++) {
    const cslim_tensor *x = cslim_st_at(a, i), *y = cslim_st_find(b, x->name);
    if (!y || y->numel != x->numel || y->dtype != x->dtype) {
      fprintf(stderr, "ckpt_diff: %s differs in presence, shape or dtype\n", x->name);
      missing++;
      continue;
    }
    if (x->dtype == CSLIM_I8 || x->dtype == CSLIM_I32) {
      size_t es = cslim_dtype_size(x->dtype);
      int64_t d = 0;
      for (int64_t j = 0; j < x->numel; j++) d += memcmp((const char *)x->data + j * es, (const char *)y->data + j * es, es) != 0;
      if (x->dtype == CSLIM_I8) codes += x->numel, differ += d;
      else ints += x->numel, ints_differ += d;
      continue;
    }
    if (x->dtype == CSLIM_I64) continue;
    if (!strstr(x->name, "scale")) continue; /* float weights of FLOAT tensors are copies */
    float *fx = malloc((size_t)x->numel * 4), *fy = malloc((size_t)x->numel * 4);
    cslim_convert_to_f32(x->dtype, x->data, fx, (size_t)x->numel);
    cslim_convert_to_f32(y->dtype, y->data, fy, (size_t)y->numel);
    for (int64_t j = 0; j < x->numel; j++) {
      double r = fabs((double)fx[j] - fy[j]) / (fabs((double)fx[j]) + 1e-30);
      if (r > worst_rel) worst_rel = r, snprintf(worst_rel_name, sizeof worst_rel_name, "%s", x->name);
      const char *ls = strstr(x->name, "layers.");
      int li = ls ? atoi(ls + 7) : -1;
      if (li >= 0 && li < 1024) {
        if (r > layer_rel[li]) layer_rel[li] = r;
        if (li + 1 > n_layers) n_layers = li + 1;
      }
    }
    free(fx), free(fy);
  }
  double share = codes ? (double)differ / (double)codes : 0;
  printf("scales: largest relative difference %.3g (%s); int8 codes differing: %lld of %lld (%.4f %%); int32 "
         "(quant_bias) differing: %lld of %lld\n",
         worst_rel, worst_rel_name, (long long)differ, (long long)codes, 100 * share, (long long)ints_differ,
         (long long)ints);
  if (n_layers) { /* how the difference grows with depth (each layer calibrates on the previous one's output) */
    printf("largest relative scale difference by layer:");
    for (int l = 0; l < n_layers; l++) printf(" %d:%.2g", l, layer_rel[l]);
    printf("\n");
  }
  int ok = !missing && worst_rel <= max_rel && share <= max_share;
  printf("%s (limits: scales %.3g relative, %.3f %% of codes)\n", ok ? "within the limits" : "OUTSIDE the limits",
         max_rel, 100 * max_share);
  cslim_st_close(a);
  cslim_st_close(b);
  return ok ? 0 : 1;
}
