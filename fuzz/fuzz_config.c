/* libFuzzer target: config.json parsing (cJSON + our checked getters). */
#include "cslim/config.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cslim_config c;
  (void)cslim_config_parse((const char *)data, size, "fuzz", &c);
  return 0;
}
