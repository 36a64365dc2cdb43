/* Model configuration (config.json) for the Qwen3 family.
 *
 * Both spellings found in the wild are accepted:
 *   transformers 4.x: rope_theta, rope_scaling, torch_dtype, num_experts
 *   transformers 5.x: rope_parameters, dtype, num_local_experts
 * Qwen3-VL(-MoE) nest the language model in `text_config` and the vision
 * tower in `vision_config`. */
#ifndef CSLIM_CONFIG_H
#define CSLIM_CONFIG_H

#include "cslim/common.h"
#include "cslim/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_family {
  CSLIM_FAMILY_QWEN3 = 0,   /* Qwen3ForCausalLM */
  CSLIM_FAMILY_QWEN3_MOE,   /* Qwen3MoeForCausalLM */
  CSLIM_FAMILY_QWEN3_VL,    /* Qwen3VLForConditionalGeneration */
  CSLIM_FAMILY_QWEN3_VL_MOE /* Qwen3VLMoeForConditionalGeneration */
} cslim_family;

#define CSLIM_MAX_LAYERS 1024
#define CSLIM_MAX_DEEPSTACK 8

typedef enum cslim_rope_type { CSLIM_ROPE_DEFAULT = 0, CSLIM_ROPE_YARN, CSLIM_ROPE_LINEAR } cslim_rope_type;

typedef struct cslim_text_config {
  int hidden_size;
  int intermediate_size;
  int num_layers;
  int num_heads;
  int num_kv_heads;
  int head_dim;
  int vocab_size;
  int max_position_embeddings;
  double rms_norm_eps;
  double rope_theta;
  cslim_rope_type rope_type;
  double rope_factor;           /* yarn / linear */
  int rope_original_max_pos;    /* yarn */
  double rope_beta_fast, rope_beta_slow, rope_attention_factor; /* yarn; attention_factor 0 = default */
  int mrope_section[3];         /* VL only; all zero for text models */
  int mrope_interleaved;
  int attention_bias;
  int tie_word_embeddings;
  /* MoE (num_experts == 0 for dense) */
  int num_experts;
  int num_experts_per_tok;
  int moe_intermediate_size;
  int norm_topk_prob;
  int decoder_sparse_step;
  int n_mlp_only_layers;
  int mlp_only_layers[CSLIM_MAX_LAYERS];
  /* special tokens (-1 when absent) */
  int bos_token_id;
  int eos_token_ids[4];
  int n_eos;
  int pad_token_id;
} cslim_text_config;

typedef struct cslim_vision_config {
  int depth;
  int hidden_size;
  int intermediate_size;
  int num_heads;
  int in_channels;
  int patch_size;
  int temporal_patch_size;
  int spatial_merge_size;
  int out_hidden_size;
  int num_position_embeddings;
  int n_deepstack;
  int deepstack_indexes[CSLIM_MAX_DEEPSTACK];
  double rope_theta; /* 10000 unless given */
  char hidden_act[32];
} cslim_vision_config;

typedef struct cslim_config {
  cslim_family family;
  char architecture[96];        /* architectures[0] */
  char model_type[48];          /* top-level model_type */
  char dtype_name[24];          /* "bfloat16", "float16", "float32" ... */
  cslim_dtype dtype;            /* BF16/F16/F32 (BF16 when unspecified) */
  char transformers_version[24];
  int transformers_major;       /* 4, 5, ... ; 0 when unknown */
  cslim_text_config text;
  int has_vision;
  cslim_vision_config vision;
  int image_token_id, video_token_id, vision_start_token_id, vision_end_token_id; /* -1 if absent */
  /* Tensor-name prefix of the language model ("model." or "model.language_model."). */
  char text_prefix[32];
} cslim_config;

/* Load DIR/config.json (or a path to a .json file). */
cslim_status cslim_config_load(const char *path, cslim_config *out);
/* Parse config JSON text; `source` names it in errors. */
cslim_status cslim_config_parse(const char *json, size_t len, const char *source, cslim_config *out);

const char *cslim_family_name(cslim_family f);   /* "qwen3", "qwen3_moe", ... */
const char *cslim_family_arch(cslim_family f);   /* "Qwen3ForCausalLM", ... */
/* Comma-separated supported architectures, for error messages. */
const char *cslim_supported_architectures(void);
/* Layer i uses the sparse MoE block (transformers' rule). */
int cslim_layer_is_moe(const cslim_text_config *t, int layer);

#ifdef __cplusplus
}
#endif
#endif
