/* cslim — post-training quantization for the Qwen3 family. Umbrella header. */
#ifndef CSLIM_CSLIM_H
#define CSLIM_CSLIM_H

#include "cslim/common.h"
#include "cslim/config.h"
#include "cslim/dtype.h"
#include "cslim/inspect.h"
#include "cslim/safetensors.h"
#include "cslim/staging.h"

#endif
