/* libFuzzer target: recipe YAML (libyaml, anchors and merge keys, our schema checks). */
#include "cslim/recipe.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cslim_recipe *r = NULL;
  if (cslim_recipe_parse((const char *)data, size, "fuzz.yaml", &r) == CSLIM_OK) {
    cslim_quant_params p;
    cslim_quant_params_default(&p);
    (void)cslim_recipe_apply(r, &p);
    int standby;
    (void)cslim_recipe_matches_model(r, "Qwen3-8B", NULL, 0, &standby);
    cslim_recipe_free(r);
  }
  return 0;
}
