/* libFuzzer target: PNG / JPEG decoding (libpng, libjpeg-turbo, our EXIF
 * reader and orientation), then the processor's resize and patch
 * flattening on what decoded. */
#include "cslim/image.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cslim_image img;
  if (cslim_image_decode(data, size, "fuzz", &img) != CSLIM_OK) return 0;
  /* small processor limits keep each run fast */
  cslim_image_processor p = {16, 2, 2, 32 * 32, 128 * 128, 1, 1, 1, 1.0 / 255.0, {0.5f, 0.5f, 0.5f},
                             {0.5f, 0.5f, 0.5f}};
  float *rows = NULL;
  int grid[3];
  if (cslim_image_to_patches(&p, &img, "fuzz", &rows, grid) == CSLIM_OK) free(rows);
  cslim_image_free(&img);
  return 0;
}
