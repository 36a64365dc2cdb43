/* libFuzzer target: the W8A8SC codec's decoder on arbitrary streams and indexes
 * (and a round trip of the input read as codes). */
#include "cslim/compress.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t blocks = 1 + data[0] % 4, ilen = (size_t)(data[1] % 24);
  data += 2, size -= 2;
  if (ilen > size) ilen = size;
  int8_t *nz = malloc(blocks * 512);
  (void)cslim_sc_decode(data + ilen, size - ilen, data, ilen, nz, blocks * 512);
  /* the input as codes: encode, decode, compare */
  memset(nz, 0, blocks * 512);
  memcpy(nz, data, size < blocks * 512 ? size : blocks * 512);
  cslim_sc_stream s;
  if (cslim_sc_encode(nz, blocks * 512, &s) == CSLIM_OK) {
    int8_t *back = malloc(blocks * 512);
    if (cslim_sc_decode(s.data, s.len, s.index, s.index_len, back, blocks * 512) != CSLIM_OK ||
        memcmp(back, nz, blocks * 512))
      abort();
    free(back);
    cslim_sc_stream_free(&s);
  }
  free(nz);
  return 0;
}
