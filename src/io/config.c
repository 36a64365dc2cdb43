/* config.json loader for qwen3, qwen3_moe, qwen3_vl and qwen3_vl_moe, in the
 * transformers 4.x and 5.x spellings. Defaults are those of the
 * transformers configuration classes. */
#include "cslim/config.h"

#include "io/json_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
  cslim_family family;
  const char *model_type;
  const char *arch;
} k_families[] = {
    {CSLIM_FAMILY_QWEN3, "qwen3", "Qwen3ForCausalLM"},
    {CSLIM_FAMILY_QWEN3_MOE, "qwen3_moe", "Qwen3MoeForCausalLM"},
    {CSLIM_FAMILY_QWEN3_VL, "qwen3_vl", "Qwen3VLForConditionalGeneration"},
    {CSLIM_FAMILY_QWEN3_VL_MOE, "qwen3_vl_moe", "Qwen3VLMoeForConditionalGeneration"},
};
#define N_FAMILIES (int)(sizeof k_families / sizeof k_families[0])

const char *cslim_family_name(cslim_family f) {
  return (unsigned)f < N_FAMILIES ? k_families[f].model_type : "?";
}
const char *cslim_family_arch(cslim_family f) {
  return (unsigned)f < N_FAMILIES ? k_families[f].arch : "?";
}
const char *cslim_supported_architectures(void) {
  return "Qwen3ForCausalLM (qwen3), Qwen3MoeForCausalLM (qwen3_moe), "
         "Qwen3VLForConditionalGeneration (qwen3_vl), "
         "Qwen3VLMoeForConditionalGeneration (qwen3_vl_moe)";
}

int cslim_layer_is_moe(const cslim_text_config *t, int layer) {
  if (t->num_experts <= 0) return 0;
  for (int i = 0; i < t->n_mlp_only_layers; i++)
    if (t->mlp_only_layers[i] == layer) return 0;
  int step = t->decoder_sparse_step > 0 ? t->decoder_sparse_step : 1;
  return (layer + 1) % step == 0;
}

/* ---- checked getters -------------------------------------------------------------- */

typedef struct jscope {
  const cJSON *obj;
  const char *src;   /* file name */
  const char *scope; /* "" or "text_config." */
} jscope;

static const cJSON *item(const jscope *s, const char *key) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(s->obj, key);
  return cJSON_IsNull(it) ? NULL : it;
}

static cslim_status get_int(const jscope *s, const char *key, int required, int dflt, int lo,
                            int hi, int *out) {
  const cJSON *it = item(s, key);
  if (!it) {
    if (required)
      return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s is missing", s->src, s->scope, key);
    *out = dflt;
    return CSLIM_OK;
  }
  int64_t v;
  if (cslim_json_as_int(it, lo, hi, &v) != 0)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s must be an integer in [%d, %d]", s->src,
                       s->scope, key, lo, hi);
  *out = (int)v;
  return CSLIM_OK;
}

static cslim_status get_double(const jscope *s, const char *key, int required, double dflt,
                               double lo, double hi, double *out) {
  const cJSON *it = item(s, key);
  if (!it) {
    if (required)
      return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s is missing", s->src, s->scope, key);
    *out = dflt;
    return CSLIM_OK;
  }
  if (!cJSON_IsNumber(it) || !(it->valuedouble >= lo && it->valuedouble <= hi))
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s must be a number in [%g, %g]", s->src,
                       s->scope, key, lo, hi);
  *out = it->valuedouble;
  return CSLIM_OK;
}

static cslim_status get_bool(const jscope *s, const char *key, int dflt, int *out) {
  const cJSON *it = item(s, key);
  if (!it) {
    *out = dflt;
    return CSLIM_OK;
  }
  if (!cJSON_IsBool(it))
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s must be true or false", s->src, s->scope, key);
  *out = cJSON_IsTrue(it);
  return CSLIM_OK;
}

static cslim_status get_str(const jscope *s, const char *key, char *buf, size_t cap) {
  const cJSON *it = item(s, key);
  buf[0] = '\0';
  if (!it) return CSLIM_OK;
  if (!cJSON_IsString(it))
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s must be a string", s->src, s->scope, key);
  snprintf(buf, cap, "%s", it->valuestring);
  return CSLIM_OK;
}

/* An int array field into out[cap]; *n receives the count. */
static cslim_status get_int_array(const jscope *s, const char *key, int *out, int cap, int *n,
                                  int lo, int hi) {
  *n = 0;
  const cJSON *it = item(s, key);
  if (!it) return CSLIM_OK;
  if (!cJSON_IsArray(it))
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s must be an array of integers", s->src,
                       s->scope, key);
  for (const cJSON *e = it->child; e; e = e->next) {
    int64_t v;
    if (*n >= cap || cslim_json_as_int(e, lo, hi, &v) != 0)
      return cslim_error(CSLIM_ERR_FORMAT, "%s: %s%s: bad entry (integers in [%d, %d], at most %d)",
                         s->src, s->scope, key, lo, hi, cap);
    out[(*n)++] = (int)v;
  }
  return CSLIM_OK;
}

#define TRY(x)                                                                               \
  do {                                                                                       \
    cslim_status rc_ = (x);                                                                  \
    if (rc_) return rc_;                                                                     \
  } while (0)

/* ---- rope ------------------------------------------------------------------------------ */

/* rope parameters: 5.x `rope_parameters` (theta inside), or 4.x `rope_theta`
 * plus an optional `rope_scaling`. */
static cslim_status parse_rope(const jscope *s, cslim_text_config *t) {
  const cJSON *rp = item(s, "rope_parameters");
  const cJSON *rs = item(s, "rope_scaling");
  jscope sub = *s;
  char scope[64];
  t->rope_type = CSLIM_ROPE_DEFAULT;
  t->rope_factor = 1.0;
  TRY(get_double(s, "rope_theta", 0, 10000.0, 1e-9, 1e12, &t->rope_theta));
  const cJSON *params = NULL;
  if (rp) {
    if (!cJSON_IsObject(rp))
      return cslim_error(CSLIM_ERR_FORMAT, "%s: %srope_parameters must be an object", s->src,
                         s->scope);
    params = rp;
    snprintf(scope, sizeof scope, "%srope_parameters.", s->scope);
    sub.obj = rp;
    sub.scope = scope;
    TRY(get_double(&sub, "rope_theta", 0, t->rope_theta, 1e-9, 1e12, &t->rope_theta));
  } else if (rs) {
    if (!cJSON_IsObject(rs))
      return cslim_error(CSLIM_ERR_FORMAT, "%s: %srope_scaling must be an object or null", s->src,
                         s->scope);
    params = rs;
    snprintf(scope, sizeof scope, "%srope_scaling.", s->scope);
    sub.obj = rs;
    sub.scope = scope;
  }
  if (!params) return CSLIM_OK;
  char type[32];
  TRY(get_str(&sub, "rope_type", type, sizeof type));
  if (!type[0]) TRY(get_str(&sub, "type", type, sizeof type)); /* older 4.x spelling */
  if (!type[0] || strcmp(type, "default") == 0 || strcmp(type, "mrope") == 0) {
    t->rope_type = CSLIM_ROPE_DEFAULT;
  } else if (strcmp(type, "yarn") == 0) {
    t->rope_type = CSLIM_ROPE_YARN;
  } else if (strcmp(type, "linear") == 0) {
    t->rope_type = CSLIM_ROPE_LINEAR;
  } else {
    return cslim_error(CSLIM_ERR_UNSUPPORTED,
                       "%s: %srope_type '%s' is not supported (supported: default, yarn, linear)",
                       s->src, sub.scope, type);
  }
  if (t->rope_type != CSLIM_ROPE_DEFAULT)
    TRY(get_double(&sub, "factor", 1, 1.0, 1e-6, 1e6, &t->rope_factor));
  if (t->rope_type == CSLIM_ROPE_YARN) {
    TRY(get_int(&sub, "original_max_position_embeddings", 0, t->max_position_embeddings, 1,
                1 << 30, &t->rope_original_max_pos));
    TRY(get_double(&sub, "beta_fast", 0, 32.0, 0, 1e6, &t->rope_beta_fast));
    TRY(get_double(&sub, "beta_slow", 0, 1.0, 0, 1e6, &t->rope_beta_slow));
    TRY(get_double(&sub, "attention_factor", 0, 0.0, 0, 1e6, &t->rope_attention_factor));
  }
  int n = 0;
  TRY(get_int_array(&sub, "mrope_section", t->mrope_section, 3, &n, 0, 1 << 16));
  if (n != 0 && n != 3)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %smrope_section must have 3 entries", s->src,
                       sub.scope);
  TRY(get_bool(&sub, "mrope_interleaved", n == 3, &t->mrope_interleaved));
  return CSLIM_OK;
}

/* ---- text model -------------------------------------------------------------------------- */

static cslim_status parse_text(const jscope *s, cslim_family fam, cslim_text_config *t) {
  const int BIG = 1 << 24;
  TRY(get_int(s, "hidden_size", 1, 0, 1, BIG, &t->hidden_size));
  TRY(get_int(s, "num_hidden_layers", 1, 0, 1, CSLIM_MAX_LAYERS, &t->num_layers));
  TRY(get_int(s, "num_attention_heads", 1, 0, 1, 4096, &t->num_heads));
  TRY(get_int(s, "num_key_value_heads", 0, t->num_heads, 1, 4096, &t->num_kv_heads));
  TRY(get_int(s, "head_dim", 0, t->hidden_size / t->num_heads, 2, 4096, &t->head_dim));
  TRY(get_int(s, "vocab_size", 1, 0, 1, 1 << 26, &t->vocab_size));
  int is_moe = fam == CSLIM_FAMILY_QWEN3_MOE || fam == CSLIM_FAMILY_QWEN3_VL_MOE;
  TRY(get_int(s, "intermediate_size", !is_moe, 0, 0, BIG, &t->intermediate_size));
  TRY(get_int(s, "max_position_embeddings", 0, 32768, 1, 1 << 30, &t->max_position_embeddings));
  TRY(get_double(s, "rms_norm_eps", 0, 1e-6, 0, 1, &t->rms_norm_eps));
  TRY(get_bool(s, "attention_bias", 0, &t->attention_bias));
  if (t->num_heads % t->num_kv_heads != 0)
    return cslim_error(CSLIM_ERR_FORMAT,
                       "%s: %snum_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                       s->src, s->scope, t->num_heads, t->num_kv_heads);
  if (t->head_dim % 2)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %shead_dim (%d) must be even for RoPE", s->src,
                       s->scope, t->head_dim);
  char act[32];
  TRY(get_str(s, "hidden_act", act, sizeof act));
  if (act[0] && strcmp(act, "silu") != 0)
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: %shidden_act '%s' is not supported (silu)",
                       s->src, s->scope, act);
  TRY(parse_rope(s, t));

  if (is_moe) {
    /* 4.x num_experts, 5.x num_local_experts */
    const char *ek = item(s, "num_experts") ? "num_experts" : "num_local_experts";
    TRY(get_int(s, ek, 0, 128, 0, 1 << 16, &t->num_experts));
    TRY(get_int(s, "num_experts_per_tok", 0, 8, 1, 1 << 16, &t->num_experts_per_tok));
    TRY(get_int(s, "moe_intermediate_size", 1, 0, 1, BIG, &t->moe_intermediate_size));
    /* Qwen3-VL-MoE always renormalises top-k (spec §5.3); Qwen3-MoE reads it. */
    TRY(get_bool(s, "norm_topk_prob", fam == CSLIM_FAMILY_QWEN3_VL_MOE, &t->norm_topk_prob));
    if (fam == CSLIM_FAMILY_QWEN3_VL_MOE) t->norm_topk_prob = 1;
    TRY(get_int(s, "decoder_sparse_step", 0, 1, 1, CSLIM_MAX_LAYERS, &t->decoder_sparse_step));
    TRY(get_int_array(s, "mlp_only_layers", t->mlp_only_layers, CSLIM_MAX_LAYERS,
                      &t->n_mlp_only_layers, 0, CSLIM_MAX_LAYERS - 1));
    if (t->num_experts_per_tok > t->num_experts && t->num_experts > 0)
      return cslim_error(CSLIM_ERR_FORMAT,
                         "%s: %snum_experts_per_tok (%d) exceeds the number of experts (%d)",
                         s->src, s->scope, t->num_experts_per_tok, t->num_experts);
    int needs_dense = 0;
    for (int l = 0; l < t->num_layers; l++) needs_dense |= !cslim_layer_is_moe(t, l);
    if (needs_dense && t->intermediate_size <= 0)
      return cslim_error(CSLIM_ERR_FORMAT,
                         "%s: %sintermediate_size is needed for the dense (mlp_only) layers",
                         s->src, s->scope);
  }
  TRY(get_int(s, "bos_token_id", 0, -1, -1, 1 << 30, &t->bos_token_id));
  TRY(get_int(s, "pad_token_id", 0, -1, -1, 1 << 30, &t->pad_token_id));
  const cJSON *eos = item(s, "eos_token_id");
  t->n_eos = 0;
  if (cJSON_IsArray(eos)) {
    TRY(get_int_array(s, "eos_token_id", t->eos_token_ids, 4, &t->n_eos, 0, 1 << 30));
  } else if (eos) {
    TRY(get_int(s, "eos_token_id", 0, -1, 0, 1 << 30, &t->eos_token_ids[0]));
    t->n_eos = 1;
  }
  return CSLIM_OK;
}

static cslim_status parse_vision(const jscope *s, cslim_vision_config *v) {
  const int BIG = 1 << 20;
  TRY(get_int(s, "depth", 1, 0, 1, 1024, &v->depth));
  TRY(get_int(s, "hidden_size", 1, 0, 1, BIG, &v->hidden_size));
  TRY(get_int(s, "intermediate_size", 1, 0, 1, BIG, &v->intermediate_size));
  TRY(get_int(s, "num_heads", 1, 0, 1, 1024, &v->num_heads));
  TRY(get_int(s, "in_channels", 0, 3, 1, 16, &v->in_channels));
  TRY(get_int(s, "patch_size", 0, 16, 1, 1024, &v->patch_size));
  TRY(get_int(s, "temporal_patch_size", 0, 2, 1, 64, &v->temporal_patch_size));
  TRY(get_int(s, "spatial_merge_size", 0, 2, 1, 64, &v->spatial_merge_size));
  TRY(get_int(s, "out_hidden_size", 1, 0, 1, BIG, &v->out_hidden_size));
  TRY(get_int(s, "num_position_embeddings", 0, 2304, 1, 1 << 24, &v->num_position_embeddings));
  TRY(get_int_array(s, "deepstack_visual_indexes", v->deepstack_indexes, CSLIM_MAX_DEEPSTACK,
                    &v->n_deepstack, 0, 1023));
  for (int i = 0; i < v->n_deepstack; i++)
    if (v->deepstack_indexes[i] >= v->depth)
      return cslim_error(CSLIM_ERR_FORMAT,
                         "%s: %sdeepstack_visual_indexes[%d] = %d is not below depth %d", s->src,
                         s->scope, i, v->deepstack_indexes[i], v->depth);
  if (v->hidden_size % v->num_heads)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: %shidden_size %d is not a multiple of num_heads %d",
                       s->src, s->scope, v->hidden_size, v->num_heads);
  TRY(get_str(s, "hidden_act", v->hidden_act, sizeof v->hidden_act));
  if (!v->hidden_act[0]) snprintf(v->hidden_act, sizeof v->hidden_act, "gelu_pytorch_tanh");
  v->rope_theta = 10000.0;
  const cJSON *rp = item(s, "rope_parameters");
  if (cJSON_IsObject(rp)) {
    jscope sub = {rp, s->src, "vision_config.rope_parameters."};
    TRY(get_double(&sub, "rope_theta", 0, 10000.0, 1e-9, 1e12, &v->rope_theta));
  }
  return CSLIM_OK;
}

/* ---- top level ----------------------------------------------------------------------------- */

static int family_from_model_type(const char *mt, cslim_family *f) {
  for (int i = 0; i < N_FAMILIES; i++)
    if (strcmp(mt, k_families[i].model_type) == 0) {
      *f = k_families[i].family;
      return 0;
    }
  return -1;
}

static int family_from_arch(const char *a, cslim_family *f) {
  for (int i = 0; i < N_FAMILIES; i++)
    if (strcmp(a, k_families[i].arch) == 0) {
      *f = k_families[i].family;
      return 0;
    }
  return -1;
}

static cslim_status parse_dtype(const char *name, const char *src, cslim_config *c) {
  snprintf(c->dtype_name, sizeof c->dtype_name, "%s", name);
  if (!name[0] || strcmp(name, "bfloat16") == 0 || strcmp(name, "auto") == 0)
    c->dtype = CSLIM_BF16;
  else if (strcmp(name, "float16") == 0 || strcmp(name, "half") == 0)
    c->dtype = CSLIM_F16;
  else if (strcmp(name, "float32") == 0 || strcmp(name, "float") == 0)
    c->dtype = CSLIM_F32;
  else
    return cslim_error(CSLIM_ERR_UNSUPPORTED,
                       "%s: dtype '%s' is not supported (bfloat16, float16, float32)", src, name);
  return CSLIM_OK;
}

cslim_status cslim_config_parse(const char *json, size_t len, const char *source, cslim_config *c) {
  memset(c, 0, sizeof *c);
  cJSON *root = NULL;
  TRY(cslim_json_parse(json, len, source, &root));
  cslim_status rc = CSLIM_OK;
  jscope top = {root, source, ""};
  if (!cJSON_IsObject(root)) {
    rc = cslim_error(CSLIM_ERR_FORMAT, "%s: not a JSON object", source);
    goto done;
  }
  if ((rc = get_str(&top, "model_type", c->model_type, sizeof c->model_type))) goto done;
  const cJSON *arch = item(&top, "architectures");
  if (cJSON_IsArray(arch) && cJSON_IsString(arch->child))
    snprintf(c->architecture, sizeof c->architecture, "%s", arch->child->valuestring);

  cslim_family fam_mt, fam_arch;
  int have_mt = c->model_type[0] && family_from_model_type(c->model_type, &fam_mt) == 0;
  int have_arch = c->architecture[0] && family_from_arch(c->architecture, &fam_arch) == 0;
  if (c->architecture[0] && !have_arch) {
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported; supported: %s",
                     source, c->architecture, cslim_supported_architectures());
    goto done;
  }
  if (c->model_type[0] && !have_mt) {
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported; supported: %s",
                     source, c->model_type, cslim_supported_architectures());
    goto done;
  }
  if (!have_mt && !have_arch) {
    rc = cslim_error(CSLIM_ERR_FORMAT,
                     "%s: neither \"model_type\" nor \"architectures\" says what model this is; "
                     "supported: %s",
                     source, cslim_supported_architectures());
    goto done;
  }
  if (have_mt && have_arch && fam_mt != fam_arch) {
    rc = cslim_error(CSLIM_ERR_FORMAT,
                     "%s: model_type '%s' contradicts architecture '%s'", source, c->model_type,
                     c->architecture);
    goto done;
  }
  c->family = have_mt ? fam_mt : fam_arch;
  if (!c->model_type[0])
    snprintf(c->model_type, sizeof c->model_type, "%s", cslim_family_name(c->family));
  if (!c->architecture[0])
    snprintf(c->architecture, sizeof c->architecture, "%s", cslim_family_arch(c->family));

  if ((rc = get_str(&top, "transformers_version", c->transformers_version,
                    sizeof c->transformers_version)))
    goto done;
  c->transformers_major = atoi(c->transformers_version);

  int is_vl = c->family == CSLIM_FAMILY_QWEN3_VL || c->family == CSLIM_FAMILY_QWEN3_VL_MOE;
  jscope text = top;
  if (is_vl) {
    const cJSON *tc = item(&top, "text_config");
    const cJSON *vc = item(&top, "vision_config");
    if (!cJSON_IsObject(tc) || !cJSON_IsObject(vc)) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: a %s config needs \"text_config\" and "
                       "\"vision_config\" objects", source, c->model_type);
      goto done;
    }
    text.obj = tc;
    text.scope = "text_config.";
    jscope vis = {vc, source, "vision_config."};
    if ((rc = parse_vision(&vis, &c->vision))) goto done;
    c->has_vision = 1;
    snprintf(c->text_prefix, sizeof c->text_prefix, "model.language_model.");
  } else {
    snprintf(c->text_prefix, sizeof c->text_prefix, "model.");
  }
  if ((rc = parse_text(&text, c->family, &c->text))) goto done;

  /* tie_word_embeddings: top level (all families), else text_config */
  const cJSON *tie = item(&top, "tie_word_embeddings");
  if (tie || !is_vl)
    rc = get_bool(&top, "tie_word_embeddings", 0, &c->text.tie_word_embeddings);
  else
    rc = get_bool(&text, "tie_word_embeddings", 0, &c->text.tie_word_embeddings);
  if (rc) goto done;

  /* dtype: 5.x `dtype`, 4.x `torch_dtype`; top level, else text_config */
  char dt[24] = "";
  if ((rc = get_str(&top, "dtype", dt, sizeof dt))) goto done;
  if (!dt[0] && (rc = get_str(&top, "torch_dtype", dt, sizeof dt))) goto done;
  if (!dt[0] && is_vl && (rc = get_str(&text, "dtype", dt, sizeof dt))) goto done;
  if (!dt[0] && is_vl && (rc = get_str(&text, "torch_dtype", dt, sizeof dt))) goto done;
  if ((rc = parse_dtype(dt, source, c))) goto done;

  if ((rc = get_int(&top, "image_token_id", 0, -1, -1, 1 << 30, &c->image_token_id))) goto done;
  if ((rc = get_int(&top, "video_token_id", 0, -1, -1, 1 << 30, &c->video_token_id))) goto done;
  if ((rc = get_int(&top, "vision_start_token_id", 0, -1, -1, 1 << 30, &c->vision_start_token_id)))
    goto done;
  if ((rc = get_int(&top, "vision_end_token_id", 0, -1, -1, 1 << 30, &c->vision_end_token_id)))
    goto done;
  if (is_vl) {
    if (c->text.mrope_section[0] + c->text.mrope_section[1] + c->text.mrope_section[2] == 0) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: text_config has no mrope_section", source);
      goto done;
    }
    if (2 * (c->text.mrope_section[0] + c->text.mrope_section[1] + c->text.mrope_section[2]) !=
        c->text.head_dim) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: mrope_section [%d, %d, %d] must sum to head_dim/2 = %d",
                       source, c->text.mrope_section[0], c->text.mrope_section[1],
                       c->text.mrope_section[2], c->text.head_dim / 2);
      goto done;
    }
    if (c->vision.out_hidden_size != c->text.hidden_size) {
      rc = cslim_error(CSLIM_ERR_FORMAT,
                       "%s: vision_config.out_hidden_size %d differs from the text hidden_size %d",
                       source, c->vision.out_hidden_size, c->text.hidden_size);
      goto done;
    }
    if (c->image_token_id < 0) {
      rc = cslim_error(CSLIM_ERR_FORMAT, "%s: image_token_id is missing", source);
      goto done;
    }
  }
done:
  cJSON_Delete(root);
  return rc;
}

cslim_status cslim_config_load(const char *path, cslim_config *out) {
  struct stat sb;
  char buf[4096];
  const char *file = path;
  size_t n = strlen(path);
  int is_json = n >= 5 && strcmp(path + n - 5, ".json") == 0;
  if ((stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) || !is_json) {
    snprintf(buf, sizeof buf, "%s/config.json", path);
    file = buf;
  }
  char *text;
  size_t len;
  TRY(cslim_read_file(file, &text, &len));
  cslim_status rc = cslim_config_parse(text, len, file, out);
  free(text);
  return rc;
}
