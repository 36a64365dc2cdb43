/* Deployment targets: re-targeting a quantized checkpoint to an engine's
 * layout (cslim convert) and validating a checkpoint the way each engine
 * reads it (cslim check). ../shared/docs/engines.md; docs/deploy.md. */
#ifndef CSLIM_DEPLOY_H
#define CSLIM_DEPLOY_H

#include "cslim/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_target {
  CSLIM_TARGET_NONE = 0,
  CSLIM_TARGET_VLLM_ASCEND,    /* msModelSlim's v1 layout: quant_model_weights*.safetensors */
  CSLIM_TARGET_VLLM_MINDSPORE, /* golden-stick: per-input-channel input_scale / input_offset, ... (--soc) */
  CSLIM_TARGET_MINDIE          /* the legacy layout: quant_model_weight_<type>, quant_model_description_<type>.json */
} cslim_target;

/* "vllm-ascend", "vllm-mindspore", "mindie"; 0 on success */
int cslim_target_parse(const char *s, cslim_target *out);
const char *cslim_target_name(cslim_target t);

typedef struct cslim_convert_params {
  const char *model_path; /* a quantized checkpoint (any of the layouts) */
  const char *save_path;  /* written atomically; never the input */
  cslim_target target;
  int soc;                /* vllm-mindspore: 310 or 910 (default 910) */
  const char *source;     /* the original float model: its non-weight files that the output lacks are copied */
  int overwrite;
} cslim_convert_params;

typedef struct cslim_convert_report {
  int n_tensors, n_linears, n_expanded, n_deq_converted, n_bias_moved;
  char out_dir[4096];
  double seconds;
} cslim_convert_report;

/* Re-target: vllm-mindspore (engines.md §3): weights quant_model_weight_<type>.safetensors, description
 * quant_model_description.json, model.safetensors.index.json mapping every tensor, input_scale [k] float16
 * (rounded to the served dtype first, so the engine computes what it did before) and input_offset [k]
 * (float16 on 310, bfloat16 on 910), deq_scale float32 (from the int64 bit pattern), linear biases labelled
 * like their Linear and taken out of quant_bias (golden-stick adds them after the matmul); only FLOAT,
 * W8A8 and W8A8S are accepted. vllm-ascend: the v1 layout (input_scale / input_offset [1] float32,
 * deq_scale by the served dtype, biases FLOAT and folded into quant_bias). mindie: the legacy layout. */
cslim_status cslim_convert(const cslim_convert_params *p, cslim_convert_report *r);

/* ---- the checker --------------------------------------------------------------------------------- */

typedef struct cslim_check_item {
  int error;   /* 1: the engine fails or computes garbage; 0: a warning */
  char *where; /* file or tensor */
  char *what;
} cslim_check_item;

typedef struct cslim_check_params {
  const char *model_path;
  cslim_target target; /* NONE: the checks common to every engine */
  int soc;             /* vllm-mindspore: 310 / 910 */
  const char *source;  /* the float model: per-Linear reconstruction error and an end-to-end logits check */
  int prompts;         /* prompts of the end-to-end check (default 4) */
} cslim_check_params;

typedef struct cslim_check_report {
  cslim_check_item *items;
  int n, n_errors, n_warnings;
  int n_tensors, n_linears;
  double max_werr;          /* with source: the largest per-Linear relative weight error */
  char max_werr_linear[256];
  int compared;             /* with source: the end-to-end check ran */
  double kl, top1;          /* float vs quantized on the prompts */
} cslim_check_report;

/* Runs every check; problems go into the report (one item each). Returns an error status only when the
 * check itself cannot run (out of memory). */
cslim_status cslim_check(const cslim_check_params *p, cslim_check_report *r);
void cslim_check_report_free(cslim_check_report *r);

#ifdef __cplusplus
}
#endif
#endif
