/* The final check of a quantization run (internal). */
#ifndef CSLIM_QUANT_VERIFY_H
#define CSLIM_QUANT_VERIFY_H

#include "cslim/model.h"
#include "cslim/vision.h"

/* Run the float model and the quantized checkpoint in `qdir` (integer-exact
 * kernels) on the given sequences; mean KL(float || quantized) of the
 * next-token distributions and the share of positions whose top-1 token
 * agrees. `vin`, when it holds images, gives the sequences' images (Qwen3-VL:
 * both models run their vision tower). */
cslim_status cslim_verify_checkpoint(cslim_model *float_model, const char *qdir, const int32_t *ids,
                                     const int *lens, int n_seqs, const cslim_vision_input *vin, double *kl,
                                     double *top1, int64_t *tokens);

#endif
