/* Checkpoint summaries: which part of the model a tensor belongs to, and
 * totals (parameters, bytes, dtypes) for `cslim inspect`. */
#ifndef CSLIM_INSPECT_H
#define CSLIM_INSPECT_H

#include "cslim/config.h"
#include "cslim/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_group_kind {
  CSLIM_GROUP_TEXT = 0,     /* embeddings, final norm, lm_head */
  CSLIM_GROUP_TEXT_LAYER,   /* <text prefix>layers.N.* */
  CSLIM_GROUP_VISION,       /* model.visual.* outside the blocks */
  CSLIM_GROUP_VISION_BLOCK, /* model.visual.blocks.N.* */
  CSLIM_GROUP_OTHER         /* anything else (e.g. quantization extras) */
} cslim_group_kind;

typedef struct cslim_tensor_class {
  cslim_group_kind kind;
  int index;         /* layer or block number, else -1 */
  const char *local; /* the name inside its group (points into the name) */
  int expert;        /* expert number for per-expert tensors, else -1 */
} cslim_tensor_class;

void cslim_classify_tensor(const cslim_config *c, const char *name, cslim_tensor_class *out);

typedef enum cslim_expert_layout {
  CSLIM_EXPERTS_NONE = 0,
  CSLIM_EXPERTS_PER_EXPERT, /* mlp.experts.E.{gate,up,down}_proj.weight (Qwen3-MoE Hub) */
  CSLIM_EXPERTS_FUSED       /* mlp.experts.gate_up_proj / down_proj (Qwen3-VL-MoE Hub, v5) */
} cslim_expert_layout;

typedef struct cslim_model_summary {
  uint64_t tensors;
  uint64_t params, bytes;
  uint64_t text_params, vision_params;
  uint64_t expert_params; /* routed experts only */
  uint64_t active_params; /* per token: non-expert + top_k/num_experts of the experts */
  uint64_t dtype_tensors[CSLIM_DTYPE_COUNT];
  uint64_t dtype_params[CSLIM_DTYPE_COUNT];
  int text_layers_found;
  int vision_blocks_found;
  cslim_expert_layout expert_layout;
  int has_lm_head; /* lm_head.weight present (not tied) */
} cslim_model_summary;

void cslim_model_summarize(const cslim_config *c, const cslim_st *st, cslim_model_summary *out);
const char *cslim_expert_layout_name(cslim_expert_layout l);

/* strcmp that orders digit runs by value ("layers.2" < "layers.10"). */
int cslim_natural_cmp(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
