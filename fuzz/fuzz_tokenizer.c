/* libFuzzer target: encoding arbitrary bytes with the fixtures' tokenizer
 * (valid UTF-8 must encode, decode back to its NFC form without crashing;
 * invalid UTF-8 must be refused). */
#include "cslim/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static cslim_tokenizer *tok;
  if (!tok && cslim_tokenizer_load(CSLIM_FUZZ_TOKENIZER, &tok)) abort();
  cslim_ids ids = {0};
  if (cslim_tokenizer_encode(tok, (const char *)data, size, &ids) == CSLIM_OK) {
    char *out;
    size_t n;
    if (cslim_tokenizer_decode(tok, ids.v, ids.n, 0, &out, &n) != CSLIM_OK) abort();
    free(out);
  }
  cslim_ids_free(&ids);
  return 0;
}
