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
  double worst_rel = 0;
  char worst_rel_name[256] = "-";
  int64_t codes = 0, differ = 0;
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
      for (int64_t j = 0; j < x->numel; j++)
        differ += memcmp((const char *)x->data + j * es, (const char *)y->data + j * es, es) != 0;
      if (x->dtype == CSLIM_I8) codes += x->numel;
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
    }
    free(fx), free(fy);
  }
  double share = codes ? (double)differ / (double)codes : 0;
  printf("scales: largest relative difference %.3g (%s); integer elements differing: %lld of %lld int8 codes "
         "(%.4f %%, int32 included in the count)\n",
         worst_rel, worst_rel_name, (long long)differ, (long long)codes, 100 * share);
  int ok = !missing && worst_rel <= max_rel && share <= max_share;
  printf("%s (limits: scales %.3g relative, %.3f %% of codes)\n", ok ? "within the limits" : "OUTSIDE the limits",
         max_rel, 100 * max_share);
  cslim_st_close(a);
  cslim_st_close(b);
  return ok ? 0 : 1;
}
