/* Recipes ("best practices"): msModelSlim's YAML quantization configs, in its
 * schema (spec §1.3–§1.6), shipped in recipes/<pedigree>/ and found by model
 * type and quant type; a user's own YAML runs the same way.
 *
 *   apiversion: modelslim_v0                 anti_cfg, anti_params, calib_cfg, calib_params,
 *                                            calib_save_params, batch_size, anti_dataset, calib_dataset
 *   apiversion: modelslim_v1                 spec.process: quarot, iter_smooth, smooth_quant,
 *   apiversion: multimodal_vlm_modelslim_v1  flex_smooth_quant, linear_quant, group, dynamic_cache;
 *                                            spec.save, spec.dataset, spec.runner (, default_text)
 *
 * Unknown keys and processors are errors naming the key and the line. A recipe
 * becomes cslim_quant_params (cslim_recipe_apply); processors the quantizer
 * does not have yet (dynamic_cache, adapt_rotation, autoround_quant, ...) load
 * and validate, and are refused, by name and line, when the recipe is run. */
#ifndef CSLIM_RECIPE_H
#define CSLIM_RECIPE_H

#include "cslim/common.h"
#include "cslim/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_recipe_api {
  CSLIM_RECIPE_V0 = 0,  /* modelslim_v0 */
  CSLIM_RECIPE_V1,      /* modelslim_v1 */
  CSLIM_RECIPE_VLM_V1   /* multimodal_vlm_modelslim_v1 */
} cslim_recipe_api;

/* metadata.label, and the label a --quant_type asks for (w8a8, w4a8, w8a8s, w8a8c8, ...) */
typedef struct cslim_recipe_label {
  int w_bit, a_bit, is_sparse, kv_cache, fa_bit; /* fa_bit 0: none */
} cslim_recipe_label;

/* "^w(\d+)a(\d+)((?:c8|f[48])?)(s?)$"; 0 on success */
int cslim_recipe_label_parse(const char *quant_type, cslim_recipe_label *out);

typedef struct cslim_recipe cslim_recipe;

cslim_status cslim_recipe_load(const char *path, cslim_recipe **out);
/* From memory; `name` stands for the file in messages. */
cslim_status cslim_recipe_parse(const char *text, size_t len, const char *name, cslim_recipe **out);
void cslim_recipe_free(cslim_recipe *r);

const char *cslim_recipe_path(const cslim_recipe *r);
const char *cslim_recipe_text(const cslim_recipe *r); /* the YAML as read */
cslim_recipe_api cslim_recipe_apiversion(const cslim_recipe *r);
const char *cslim_recipe_config_id(const cslim_recipe *r);
double cslim_recipe_score(const cslim_recipe *r);
cslim_recipe_label cslim_recipe_get_label(const cslim_recipe *r);
/* The calibration set's short name or path (v0 calib_dataset, v1 spec.dataset), NULL if none;
 * the anti-outlier set (v0 anti_dataset) or NULL. */
const char *cslim_recipe_dataset(const cslim_recipe *r);
const char *cslim_recipe_anti_dataset(const cslim_recipe *r);
/* A one-line summary of what the recipe does ("iter_smooth -> linear_quant W8A8 ..."). */
const char *cslim_recipe_summary(const cslim_recipe *r);

/* 1 when metadata names model_type (verified_model_types, or verified_tags[model_type] with a
 * scenario holding every tag); *standby = 1 when the model is listed but no scenario has the tags. */
int cslim_recipe_matches_model(const cslim_recipe *r, const char *model_type, const char *const *tags, int n_tags,
                               int *standby);

/* Fill p (after cslim_quant_params_default) from the recipe: quant types and per-Linear rules,
 * transforms, observers, saver names and shard size. Strings in p point into r (keep r alive).
 * Refuses, naming the processor and its line, what the quantizer does not implement. */
cslim_status cslim_recipe_apply(const cslim_recipe *r, cslim_quant_params *p);

/* ---- the best-practice lookup (spec §1.2, §1.3) ---------------------------------------------- */

/* model_type ("Qwen3-32B", "Qwen3-VL-8B-Instruct", ...) → pedigree ("qwen3", "qwen3_moe",
 * "qwen3_vl", "qwen3_vl_moe"), or NULL for a model type no adapter lists (then "default"). */
const char *cslim_model_pedigree(const char *model_type);
/* The model types known, comma separated, for messages. */
const char *cslim_model_types(void);

/* Directory of the shipped recipes: $CSLIM_RECIPES, else the source tree's recipes/, else
 * <prefix>/share/cslim/recipes. Likewise the default calibration sets (data/calib). */
const char *cslim_recipes_dir(void);
const char *cslim_calib_dir(void);
/* A calibration set by short name ("mix_calib.jsonl", "calibImages") in cslim_calib_dir(), or a
 * path as given when it exists. The error lists the sets available. Result malloc'd. */
cslim_status cslim_calib_resolve(const char *name, char **path);

typedef struct cslim_practice {
  char *path;          /* the chosen YAML */
  int fallback;        /* 0: verified for this model and quant type; else the step of §1.3 taken */
  char note[512];      /* what was chosen and why, for the fallback announcement */
} cslim_practice;

/* Search recipes_dir in the order of §1.3: (pedigree, quant type) → standby → (default, quant type)
 * → (pedigree, w8a8) → standby → (default, w8a8). Candidates by metadata.score descending, then
 * config_id. A recipe that fails to load is an error (recipes ship validated). */
cslim_status cslim_practice_select(const char *recipes_dir, const char *model_type, const char *quant_type,
                                   const char *const *tags, int n_tags, cslim_practice *out);
void cslim_practice_free(cslim_practice *p);

#ifdef __cplusplus
}
#endif
#endif
