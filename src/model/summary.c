/* Tensor classification and checkpoint totals (the data behind `inspect`). */
#include "cslim/inspect.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* If `s` starts with `prefix` followed by digits and '.', return the number
 * and set *rest past the dot; else -1. */
static int numbered(const char *s, const char *prefix, const char **rest) {
  size_t n = strlen(prefix);
  if (strncmp(s, prefix, n) != 0 || !isdigit((unsigned char)s[n])) return -1;
  char *end;
  long v = strtol(s + n, &end, 10);
  if (*end != '.' || v > 1 << 30) return -1;
  *rest = end + 1;
  return (int)v;
}

void cslim_classify_tensor(const cslim_config *c, const char *name, cslim_tensor_class *out) {
  out->kind = CSLIM_GROUP_OTHER;
  out->index = -1;
  out->local = name;
  out->expert = -1;
  char lp[64];
  snprintf(lp, sizeof lp, "%slayers.", c->text_prefix);
  const char *rest;
  int i;
  if ((i = numbered(name, lp, &rest)) >= 0) {
    out->kind = CSLIM_GROUP_TEXT_LAYER;
    out->index = i;
    out->local = rest;
    const char *r2;
    int e = numbered(rest, "mlp.experts.", &r2);
    if (e >= 0) out->expert = e;
    return;
  }
  if ((i = numbered(name, "model.visual.blocks.", &rest)) >= 0) {
    out->kind = CSLIM_GROUP_VISION_BLOCK;
    out->index = i;
    out->local = rest;
    return;
  }
  if (strncmp(name, "model.visual.", 13) == 0) {
    out->kind = CSLIM_GROUP_VISION;
    out->local = name + 13;
    return;
  }
  if (strncmp(name, c->text_prefix, strlen(c->text_prefix)) == 0 ||
      strncmp(name, "lm_head.", 8) == 0)
    out->kind = CSLIM_GROUP_TEXT;
}

const char *cslim_expert_layout_name(cslim_expert_layout l) {
  switch (l) {
  case CSLIM_EXPERTS_PER_EXPERT: return "per-expert";
  case CSLIM_EXPERTS_FUSED: return "fused";
  default: return "none";
  }
}

void cslim_model_summarize(const cslim_config *c, const cslim_st *st, cslim_model_summary *s) {
  memset(s, 0, sizeof *s);
  int max_layer = -1, max_block = -1;
  size_t n = cslim_st_count(st);
  s->tensors = n;
  for (size_t i = 0; i < n; i++) {
    const cslim_tensor *t = cslim_st_at(st, i);
    cslim_tensor_class k;
    cslim_classify_tensor(c, t->name, &k);
    uint64_t p = (uint64_t)t->numel;
    s->params += p;
    s->bytes += t->nbytes;
    s->dtype_tensors[t->dtype]++;
    s->dtype_params[t->dtype] += p;
    if (k.kind == CSLIM_GROUP_VISION || k.kind == CSLIM_GROUP_VISION_BLOCK)
      s->vision_params += p;
    else
      s->text_params += p;
    if (k.kind == CSLIM_GROUP_TEXT_LAYER && k.index > max_layer) max_layer = k.index;
    if (k.kind == CSLIM_GROUP_VISION_BLOCK && k.index > max_block) max_block = k.index;
    if (k.kind == CSLIM_GROUP_TEXT_LAYER && strncmp(k.local, "mlp.experts.", 12) == 0) {
      s->expert_params += p;
      s->expert_layout = k.expert >= 0 ? CSLIM_EXPERTS_PER_EXPERT : CSLIM_EXPERTS_FUSED;
    }
    if (strcmp(t->name, "lm_head.weight") == 0) s->has_lm_head = 1;
  }
  s->text_layers_found = max_layer + 1;
  s->vision_blocks_found = max_block + 1;
  s->active_params = s->params;
  if (c->text.num_experts > 0 && s->expert_params)
    s->active_params = s->params - s->expert_params +
                       s->expert_params * (uint64_t)c->text.num_experts_per_tok /
                           (uint64_t)c->text.num_experts;
}

int cslim_natural_cmp(const char *a, const char *b) {
  while (*a && *b) {
    if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
      const char *a0 = a, *b0 = b;
      while (*a == '0') a++;
      while (*b == '0') b++;
      const char *as = a, *bs = b;
      while (isdigit((unsigned char)*a)) a++;
      while (isdigit((unsigned char)*b)) b++;
      size_t la = (size_t)(a - as), lb = (size_t)(b - bs);
      if (la != lb) return la < lb ? -1 : 1;
      int c = strncmp(as, bs, la);
      if (c) return c;
      if ((a - a0) != (b - b0)) return (a - a0) < (b - b0) ? -1 : 1;
      continue;
    }
    if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
    a++;
    b++;
  }
  return (unsigned char)*a - (unsigned char)*b;
}
