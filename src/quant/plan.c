/* Which scheme each Linear gets (spec §2.2 mix_cfg semantics):
 * never quantized: the MoE router (mlp.gate) and lm_head; then rollback
 * (disable_names, exact) and exclude patterns -> FLOAT; then mix rules: an
 * exact key first, else the first matching pattern in order; vision-tower
 * linears only when asked; otherwise the default scheme. */
#include "cslim/quant.h"

#include "core/glob.h"

#include <string.h>

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

cslim_qtype cslim_quant_plan_linear(const cslim_quant_params *p, const char *name) {
  if (ends_with(name, ".mlp.gate") || !strcmp(name, "lm_head")) return CSLIM_QT_FLOAT;
  for (int i = 0; i < p->n_disable; i++)
    if (!strcmp(p->disable_names[i], name)) return CSLIM_QT_FLOAT;
  for (int i = 0; i < p->n_exclude; i++)
    if (cslim_glob_match(p->exclude[i], name)) return CSLIM_QT_FLOAT;
  for (int i = 0; i < p->n_mix; i++)
    if (!strcmp(p->mix[i].pattern, name)) return p->mix[i].type;
  for (int i = 0; i < p->n_mix; i++)
    if (cslim_glob_match(p->mix[i].pattern, name)) return p->mix[i].type;
  if (!strncmp(name, "model.visual.", 13) && !p->quantize_vision) return CSLIM_QT_FLOAT;
  return p->quant_type;
}

void cslim_quant_params_default(cslim_quant_params *p) {
  memset(p, 0, sizeof *p);
  p->quant_type = CSLIM_QT_W8A8;
  p->act_method = 1;
  p->holdout = 4;
  p->calib_seq_len = 256;
  p->expert_min_tokens = 8;
  p->anti_alpha = 0.5;
  p->anti_tokens = 512;
  p->rot_seed = 1234;
}
