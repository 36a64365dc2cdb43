/* Test tool: relative error between two float tensors in safetensors files.
 *   st_compare A.safetensors NAME_A B.safetensors NAME_B MAX_REL_ERR
 * Exit 0 when ||a - b|| / ||b|| < MAX_REL_ERR (shapes must match). */
#include "cslim/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: st_compare A NAME_A B NAME_B MAX_REL_ERR\n");
    return 2;
  }
  cslim_st *a, *b;
  if (cslim_st_open(argv[1], &a) || cslim_st_open(argv[3], &b)) {
    fprintf(stderr, "st_compare: %s\n", cslim_errmsg());
    return 2;
  }
  const cslim_tensor *x = cslim_st_find(a, argv[2]), *y = cslim_st_find(b, argv[4]);
  if (!x || !y || x->numel != y->numel) {
    fprintf(stderr, "st_compare: %s missing or sizes differ\n", !x ? argv[2] : !y ? argv[4] : "tensor");
    return 1;
  }
  float *p = malloc((size_t)x->numel * 4), *q = malloc((size_t)y->numel * 4);
  cslim_st_read_f32(a, x, p);
  cslim_st_read_f32(b, y, q);
  double num = 0, den = 0;
  for (int64_t i = 0; i < x->numel; i++) {
    double d = (double)p[i] - q[i];
    num += d * d;
    den += (double)q[i] * q[i];
  }
  double rel = sqrt(num / (den > 0 ? den : 1));
  printf("%s vs %s: relative error %.3g\n", argv[2], argv[4], rel);
  return rel < atof(argv[5]) ? 0 : 1;
}
