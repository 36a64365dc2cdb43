/* cslim inspect: architecture summary and the tensor table, grouped by layer. */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/cslim.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct row {
  const cslim_tensor *t;
  cslim_tensor_class k;
  char pattern[256]; /* local name with the expert number replaced by '*' */
} row;

static int group_rank(cslim_group_kind k) {
  switch (k) {
  case CSLIM_GROUP_TEXT: return 0;
  case CSLIM_GROUP_TEXT_LAYER: return 1;
  case CSLIM_GROUP_VISION: return 2;
  case CSLIM_GROUP_VISION_BLOCK: return 3;
  default: return 4;
  }
}

static int cmp_rows(const void *a, const void *b) {
  const row *x = a, *y = b;
  int gx = group_rank(x->k.kind), gy = group_rank(y->k.kind);
  if (gx != gy) return gx - gy;
  if (x->k.index != y->k.index) return x->k.index < y->k.index ? -1 : 1;
  int c = cslim_natural_cmp(x->pattern, y->pattern);
  if (c) return c;
  if (x->k.expert != y->k.expert) return x->k.expert < y->k.expert ? -1 : 1;
  return strcmp(x->t->name, y->t->name);
}

static void make_pattern(row *r) {
  const char *l = r->k.local;
  if (r->k.expert < 0) {
    snprintf(r->pattern, sizeof r->pattern, "%s", l);
    return;
  }
  /* "mlp.experts.<n>.rest" -> "mlp.experts.*.rest" */
  const char *rest = strchr(l + 12, '.');
  snprintf(r->pattern, sizeof r->pattern, "mlp.experts.*%s", rest ? rest : "");
}

static const char *human_bytes(double b, char *buf, size_t cap) {
  const char *u[] = {"B", "kB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000.0 && i < 4) {
    b /= 1000.0;
    i++;
  }
  snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", b, u[i]);
  return buf;
}

static const char *human_count(double n, char *buf, size_t cap) {
  const char *u[] = {"", " K", " M", " B", " T"};
  int i = 0;
  while (n >= 1000.0 && i < 4) {
    n /= 1000.0;
    i++;
  }
  snprintf(buf, cap, i ? "%.2f%s" : "%.0f%s", n, u[i]);
  return buf;
}

static const char *group_title(const row *r, char *buf, size_t cap) {
  switch (r->k.kind) {
  case CSLIM_GROUP_TEXT: return "embeddings, final norm and lm_head";
  case CSLIM_GROUP_TEXT_LAYER: snprintf(buf, cap, "layer %d", r->k.index); return buf;
  case CSLIM_GROUP_VISION: return "vision tower (patch embedding, position table, mergers)";
  case CSLIM_GROUP_VISION_BLOCK: snprintf(buf, cap, "vision block %d", r->k.index); return buf;
  default: return "other";
  }
}

static int same_group(const row *a, const row *b) {
  return a->k.kind == b->k.kind && a->k.index == b->k.index;
}

static int same_shape(const cslim_tensor *a, const cslim_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

static void print_table(row *rows, size_t n, int full) {
  char b1[64], b2[128], title[64];
  for (size_t i = 0; i < n;) {
    size_t j = i;
    uint64_t gbytes = 0;
    while (j < n && same_group(&rows[i], &rows[j])) gbytes += rows[j++].t->nbytes;
    const char *name_of_group = group_title(&rows[i], title, sizeof title);
    printf("\n  %s (%zu tensors, %s)\n", name_of_group, j - i, human_bytes((double)gbytes, b1, sizeof b1));
    for (size_t a = i; a < j;) {
      size_t e = a + 1;
      if (!full && rows[a].k.expert >= 0)
        while (e < j && strcmp(rows[e].pattern, rows[a].pattern) == 0 &&
               same_shape(rows[e].t, rows[a].t))
          e++;
      uint64_t bytes = 0;
      for (size_t q = a; q < e; q++) bytes += rows[q].t->nbytes;
      char label[320];
      if (e - a > 1) {
        int contiguous = 1;
        for (size_t q = a + 1; q < e; q++)
          contiguous &= rows[q].k.expert == rows[q - 1].k.expert + 1;
        const char *star = strchr(rows[a].pattern, '*');
        if (contiguous)
          snprintf(label, sizeof label, "%.*s{%d..%d}%s", (int)(star - rows[a].pattern),
                   rows[a].pattern, rows[a].k.expert, rows[e - 1].k.expert, star + 1);
        else
          snprintf(label, sizeof label, "%s", rows[a].pattern);
      } else {
        snprintf(label, sizeof label, "%s", rows[a].k.local);
      }
      char count[32] = "";
      if (e - a > 1) snprintf(count, sizeof count, "x%zu", e - a);
      printf("    %-46s %-5s %-20s %6s %12s\n", label, cslim_dtype_name(rows[a].t->dtype),
             cslim_shape_str(rows[a].t->ndim, rows[a].t->shape, b2, sizeof b2), count,
             human_bytes((double)bytes, b1, sizeof b1));
      a = e;
    }
    i = j;
  }
}

static void print_summary(const char *path, const cslim_config *c, const cslim_st *st,
                          const cslim_model_summary *s) {
  char b1[64], b2[64], b3[64];
  const cslim_text_config *t = &c->text;
  printf("%s\n", path);
  printf("  %-14s %s (family %s%s%s)\n", "architecture", c->architecture,
         cslim_family_name(c->family), c->transformers_version[0] ? ", transformers " : "",
         c->transformers_version);
  printf("  %-14s %d layers, hidden %d, intermediate %d, vocab %d\n", "text model", t->num_layers,
         t->hidden_size, t->intermediate_size, t->vocab_size);
  printf("  %-14s %d query heads, %d kv heads, head_dim %d, rope_theta %g%s\n", "attention",
         t->num_heads, t->num_kv_heads, t->head_dim, t->rope_theta,
         t->rope_type == CSLIM_ROPE_YARN ? " (yarn)" : t->rope_type == CSLIM_ROPE_LINEAR ? " (linear)" : "");
  if (t->mrope_section[0] + t->mrope_section[1] + t->mrope_section[2])
    printf("  %-14s mrope_section [%d, %d, %d]%s\n", "", t->mrope_section[0], t->mrope_section[1],
           t->mrope_section[2], t->mrope_interleaved ? ", interleaved" : "");
  if (t->num_experts > 0)
    printf("  %-14s %d per layer, top-%d, moe_intermediate %d, norm_topk_prob %s, %s tensors\n",
           "experts", t->num_experts, t->num_experts_per_tok, t->moe_intermediate_size,
           t->norm_topk_prob ? "true" : "false", cslim_expert_layout_name(s->expert_layout));
  if (c->has_vision) {
    const cslim_vision_config *v = &c->vision;
    printf("  %-14s %d blocks, hidden %d, %d heads, mlp %d, patch %dx%dx%d, merge %dx%d, "
           "deepstack [",
           "vision tower", v->depth, v->hidden_size, v->num_heads, v->intermediate_size,
           v->patch_size, v->patch_size, v->temporal_patch_size, v->spatial_merge_size,
           v->spatial_merge_size);
    for (int i = 0; i < v->n_deepstack; i++) printf(i ? ", %d" : "%d", v->deepstack_indexes[i]);
    printf("]\n");
  }
  printf("  %-14s %s\n", "lm_head",
         t->tie_word_embeddings ? "tied to the embeddings" : "separate (untied)");
  printf("  %-14s %s (", "dtype", c->dtype_name[0] ? c->dtype_name : "unspecified");
  int first = 1;
  for (int d = 0; d < CSLIM_DTYPE_COUNT; d++)
    if (s->dtype_tensors[d]) {
      printf("%s%s: %llu tensors", first ? "" : ", ", cslim_dtype_name((cslim_dtype)d),
             (unsigned long long)s->dtype_tensors[d]);
      first = 0;
    }
  printf(")\n");
  printf("  %-14s %s (text %s, vision %s", "parameters", human_count((double)s->params, b1, sizeof b1),
         human_count((double)s->text_params, b2, sizeof b2),
         human_count((double)s->vision_params, b3, sizeof b3));
  if (s->expert_params)
    printf(", experts %s, active per token %s", human_count((double)s->expert_params, b1, sizeof b1),
           human_count((double)s->active_params, b2, sizeof b2));
  printf(")\n");
  size_t nf = cslim_st_file_count(st);
  printf("  %-14s %s in %zu file%s%s%s\n", "size", human_bytes((double)s->bytes, b1, sizeof b1), nf,
         nf == 1 ? "" : "s", cslim_st_index_path(st) ? " + index " : "",
         cslim_st_index_path(st) ? strrchr(cslim_st_index_path(st), '/') + 1 : "");
  if (s->text_layers_found != t->num_layers)
    printf("  %-14s config says %d layers but the checkpoint has tensors for %d\n", "WARNING",
           t->num_layers, s->text_layers_found);
  if (c->has_vision && s->vision_blocks_found != c->vision.depth)
    printf("  %-14s config says %d vision blocks but the checkpoint has %d\n", "WARNING",
           c->vision.depth, s->vision_blocks_found);
  if (!t->tie_word_embeddings && !s->has_lm_head)
    printf("  %-14s lm_head.weight is missing and tie_word_embeddings is false\n", "WARNING");
}

static cJSON *json_shape(const cslim_tensor *t) {
  cJSON *a = cJSON_CreateArray();
  for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t->shape[d]));
  return a;
}

static const char *kind_name(cslim_group_kind k) {
  switch (k) {
  case CSLIM_GROUP_TEXT: return "text";
  case CSLIM_GROUP_TEXT_LAYER: return "text_layer";
  case CSLIM_GROUP_VISION: return "vision";
  case CSLIM_GROUP_VISION_BLOCK: return "vision_block";
  default: return "other";
  }
}

static int print_json(const char *path, const cslim_config *c, const cslim_st *st,
                      const cslim_model_summary *s, const row *rows, size_t n) {
  const cslim_text_config *t = &c->text;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model_path", path);
  cJSON_AddStringToObject(o, "architecture", c->architecture);
  cJSON_AddStringToObject(o, "family", cslim_family_name(c->family));
  cJSON_AddStringToObject(o, "dtype", c->dtype_name);
  cJSON_AddStringToObject(o, "transformers_version", c->transformers_version);
  cJSON *tx = cJSON_AddObjectToObject(o, "text");
  cJSON_AddNumberToObject(tx, "num_layers", t->num_layers);
  cJSON_AddNumberToObject(tx, "hidden_size", t->hidden_size);
  cJSON_AddNumberToObject(tx, "intermediate_size", t->intermediate_size);
  cJSON_AddNumberToObject(tx, "num_heads", t->num_heads);
  cJSON_AddNumberToObject(tx, "num_kv_heads", t->num_kv_heads);
  cJSON_AddNumberToObject(tx, "head_dim", t->head_dim);
  cJSON_AddNumberToObject(tx, "vocab_size", t->vocab_size);
  cJSON_AddNumberToObject(tx, "rope_theta", t->rope_theta);
  cJSON_AddBoolToObject(tx, "tie_word_embeddings", t->tie_word_embeddings);
  cJSON_AddNumberToObject(tx, "num_experts", t->num_experts);
  if (t->num_experts) {
    cJSON_AddNumberToObject(tx, "num_experts_per_tok", t->num_experts_per_tok);
    cJSON_AddNumberToObject(tx, "moe_intermediate_size", t->moe_intermediate_size);
    cJSON_AddBoolToObject(tx, "norm_topk_prob", t->norm_topk_prob);
    cJSON_AddStringToObject(tx, "expert_layout", cslim_expert_layout_name(s->expert_layout));
  }
  if (c->has_vision) {
    const cslim_vision_config *v = &c->vision;
    cJSON *vo = cJSON_AddObjectToObject(o, "vision");
    cJSON_AddNumberToObject(vo, "depth", v->depth);
    cJSON_AddNumberToObject(vo, "hidden_size", v->hidden_size);
    cJSON_AddNumberToObject(vo, "num_heads", v->num_heads);
    cJSON_AddNumberToObject(vo, "intermediate_size", v->intermediate_size);
    cJSON_AddNumberToObject(vo, "patch_size", v->patch_size);
    cJSON_AddNumberToObject(vo, "temporal_patch_size", v->temporal_patch_size);
    cJSON_AddNumberToObject(vo, "spatial_merge_size", v->spatial_merge_size);
    cJSON_AddNumberToObject(vo, "out_hidden_size", v->out_hidden_size);
    cJSON *ds = cJSON_AddArrayToObject(vo, "deepstack_visual_indexes");
    for (int i = 0; i < v->n_deepstack; i++)
      cJSON_AddItemToArray(ds, cJSON_CreateNumber(v->deepstack_indexes[i]));
  } else {
    cJSON_AddNullToObject(o, "vision");
  }
  cJSON_AddNumberToObject(o, "parameters", (double)s->params);
  cJSON_AddNumberToObject(o, "text_parameters", (double)s->text_params);
  cJSON_AddNumberToObject(o, "vision_parameters", (double)s->vision_params);
  cJSON_AddNumberToObject(o, "active_parameters", (double)s->active_params);
  cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
  cJSON_AddNumberToObject(o, "tensor_count", (double)n);
  cJSON *files = cJSON_AddArrayToObject(o, "files");
  for (size_t i = 0; i < cslim_st_file_count(st); i++) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "path", cslim_st_file_path(st, i));
    cJSON_AddNumberToObject(f, "size", (double)cslim_st_file_size(st, i));
    cJSON_AddItemToArray(files, f);
  }
  cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
  for (size_t i = 0; i < n; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", rows[i].t->name);
    cJSON_AddStringToObject(e, "dtype", cslim_dtype_name(rows[i].t->dtype));
    cJSON_AddItemToObject(e, "shape", json_shape(rows[i].t));
    cJSON_AddNumberToObject(e, "bytes", (double)rows[i].t->nbytes);
    cJSON_AddNumberToObject(e, "file", rows[i].t->file);
    cJSON_AddStringToObject(e, "group", kind_name(rows[i].k.kind));
    if (rows[i].k.index >= 0) cJSON_AddNumberToObject(e, "index", rows[i].k.index);
    cJSON_AddItemToArray(ts, e);
  }
  char *txt = cJSON_Print(o);
  cJSON_Delete(o);
  if (!txt) return cslim_error(CSLIM_ERR_NOMEM, "out of memory"), cli_fail();
  puts(txt);
  free(txt);
  return CLI_EXIT_OK;
}

int cmd_inspect(int argc, char **argv) {
  const char *model_path = NULL;
  int json = 0, full = 0;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &model_path, "DIR", "model directory (config.json + safetensors)", 1, 0},
      {"json", CLI_BOOL, &json, NULL, "print machine-readable JSON instead of text", 0, 0},
      {"full", CLI_BOOL, &full, NULL, "list every expert tensor instead of one row per kind", 0, 0},
      CLI_END,
  };
  cli_command cmd = {
      "inspect", "Summarise a checkpoint: architecture, sizes and the tensor table by layer.",
      "cslim inspect --model_path DIR [--json] [--full]",
      "Reads config.json (transformers 4.x or 5.x spelling) and every safetensors file\n"
      "(single or sharded), validating both. Expert tensors of one kind are shown as one\n"
      "row (mlp.experts.{0..127}.gate_proj.weight x128) unless --full is given."};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;

  cslim_config cfg;
  if (cslim_config_load(model_path, &cfg)) return cli_fail();
  cslim_st *st;
  if (cslim_st_open(model_path, &st)) return cli_fail();
  cslim_model_summary sum;
  cslim_model_summarize(&cfg, st, &sum);

  size_t n = cslim_st_count(st);
  row *rows = calloc(n ? n : 1, sizeof *rows);
  if (!rows) {
    cslim_st_close(st);
    cslim_error(CSLIM_ERR_NOMEM, "out of memory");
    return cli_fail();
  }
  for (size_t i = 0; i < n; i++) {
    rows[i].t = cslim_st_at(st, i);
    cslim_classify_tensor(&cfg, rows[i].t->name, &rows[i].k);
    make_pattern(&rows[i]);
  }
  qsort(rows, n, sizeof *rows, cmp_rows);
  int rc = CLI_EXIT_OK;
  if (json) {
    rc = print_json(model_path, &cfg, st, &sum, rows, n);
  } else {
    print_summary(model_path, &cfg, st, &sum);
    printf("\ntensors (%zu), grouped by layer:\n", n);
    print_table(rows, n, full);
  }
  free(rows);
  cslim_st_close(st);
  return rc;
}
