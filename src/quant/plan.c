/* Which scheme each Linear gets (spec §2.2 mix_cfg semantics):
 * never quantized: the MoE router (mlp.gate) and lm_head; then rollback
 * (disable_names, exact) and exclude patterns -> FLOAT; then mix rules: an
 * exact key first, else the first matching pattern in order; vision-tower
 * linears only when asked; otherwise the default scheme. */
#include "cslim/quant.h"

#include "core/strutil.h"
#include "core/glob.h"

#include <string.h>

static int excluded(const cslim_mix_rule *r, const char *name) {
  for (int j = 0; j < r->n_exclude; j++)
    if (cslim_glob_match(r->exclude[j], name)) return 1;
  return 0;
}

/* the mix rule deciding `name` (NULL: none); *fl = 1 when the name is kept float before any rule */
static const cslim_mix_rule *plan_rule(const cslim_quant_params *p, const char *name, int *fl) {
  *fl = 1;
  if (cslim_ends_with(name, ".mlp.gate") || !strcmp(name, "lm_head")) return NULL;
  for (int i = 0; i < p->n_disable; i++)
    if (!strcmp(p->disable_names[i], name)) return NULL;
  for (int i = 0; i < p->n_exclude; i++)
    if (cslim_glob_match(p->exclude[i], name)) return NULL;
  *fl = 0;
  for (int i = 0; i < p->n_mix; i++)
    if (!strcmp(p->mix[i].pattern, name) && !excluded(&p->mix[i], name)) return &p->mix[i];
  for (int i = 0; i < p->n_mix; i++)
    if (cslim_glob_match(p->mix[i].pattern, name) && !excluded(&p->mix[i], name)) return &p->mix[i];
  return NULL;
}

cslim_qtype cslim_quant_plan_linear(const cslim_quant_params *p, const char *name) {
  int fl;
  const cslim_mix_rule *r = plan_rule(p, name, &fl);
  if (fl) return CSLIM_QT_FLOAT;
  if (r) return r->type;
  if (!strncmp(name, "model.visual.", 13) && !p->quantize_vision) return CSLIM_QT_FLOAT;
  return p->quant_type;
}

cslim_wmethod cslim_quant_plan_wmethod(const cslim_quant_params *p, const char *name, cslim_qtype t) {
  int fl;
  const cslim_mix_rule *r = plan_rule(p, name, &fl);
  if (r && r->w_method_set) return r->w_method;
  if (p->w_method_set) return p->w_method;
  return cslim_scheme_get(t)->w_bits == 4 ? CSLIM_WM_SSZ : CSLIM_WM_MINMAX;
}

void cslim_quant_params_default(cslim_quant_params *p) {
  memset(p, 0, sizeof *p);
  p->quant_type = CSLIM_QT_W8A8;
  p->act_method = 1;
  p->holdout = 4;
  p->calib_seq_len = 256;
  p->expert_min_tokens = 8;
  p->anti_alpha = 0.5;
  p->anti_scale_min = 1e-5;
  p->anti_shift = -1;
  p->anti_tokens = 512;
  p->rot_seed = 1234;
  p->sparse.fraction = 0.01;
  p->sparse.sigma_factor = 3.0;
  p->sparse.open_outlier = 1;
}
