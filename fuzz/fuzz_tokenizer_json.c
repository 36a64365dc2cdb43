/* libFuzzer target: tokenizer.json parsing (the pull scanner and the loader). */
#include "cslim/tokenizer.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cslim_tokenizer *tok = NULL;
  if (cslim_tokenizer_load_memory((const char *)data, size, "fuzz", &tok) == CSLIM_OK) {
    cslim_ids ids = {0};
    cslim_tokenizer_encode(tok, "hello world <|im_end|> 123", 26, &ids);
    cslim_ids_free(&ids);
    cslim_tokenizer_free(tok);
  }
  return 0;
}
