/* libFuzzer target: the safetensors header parser and validator.
 * Build and run with scripts/fuzz.sh (clang, -fsanitize=fuzzer,address). */
#include "cslim/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cslim_st *st = NULL;
  if (cslim_st_open_memory(data, size, "fuzz", &st) == CSLIM_OK) {
    /* Every view must lie inside the buffer: touch first and last bytes and
     * convert small tensors. */
    float tmp[64];
    for (size_t i = 0; i < cslim_st_count(st); i++) {
      const cslim_tensor *t = cslim_st_at(st, i);
      if (t->nbytes) {
        const uint8_t *p = t->data;
        if (p < data || p + t->nbytes > data + size) abort();
        volatile uint8_t x = p[0] ^ p[t->nbytes - 1];
        (void)x;
      }
      if (t->numel > 0 && t->numel <= 64) cslim_convert_to_f32(t->dtype, t->data, tmp, (size_t)t->numel);
      if (cslim_st_find(st, t->name) != t) abort();
    }
    cslim_st_close(st);
  }
  return 0;
}
