#include "io/yaml_doc.h"

#include "io/json_util.h"

#include <stdlib.h>
#include <string.h>

cslim_status cslim_yaml_parse(const char *text, size_t len, const char *name, cslim_yaml **out) {
  *out = NULL;
  cslim_yaml *y = calloc(1, sizeof *y);
  if (!y || !(y->path = strdup(name)) || !(y->text = malloc(len + 1))) {
    if (y) free(y->path);
    free(y);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  memcpy(y->text, text, len);
  y->text[len] = '\0';
  y->len = len;
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    free(y->text), free(y->path), free(y);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)y->text, y->len);
  if (!yaml_parser_load(&parser, &y->doc)) {
    yaml_mark_t m = parser.problem_mark;
    cslim_status rc = cslim_error(CSLIM_ERR_FORMAT, "%s:%zu:%zu: invalid YAML: %s%s%s", name, m.line + 1,
                                  m.column + 1, parser.problem ? parser.problem : "parse error",
                                  parser.context ? " " : "", parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    free(y->text), free(y->path), free(y);
    return rc;
  }
  yaml_parser_delete(&parser);
  if (!yaml_document_get_root_node(&y->doc)) {
    cslim_yaml_free(y);
    return cslim_error(CSLIM_ERR_FORMAT, "%s: empty YAML file", name);
  }
  *out = y;
  return CSLIM_OK;
}

cslim_status cslim_yaml_load(const char *path, cslim_yaml **out) {
  *out = NULL;
  char *text;
  size_t len;
  cslim_status rc = cslim_read_file(path, &text, &len);
  if (rc) return rc;
  rc = cslim_yaml_parse(text, len, path, out);
  free(text);
  return rc;
}

void cslim_yaml_free(cslim_yaml *y) {
  if (!y) return;
  yaml_document_delete(&y->doc);
  free(y->text);
  free(y->path);
  free(y);
}

yaml_node_t *cslim_yaml_root(cslim_yaml *y) { return yaml_document_get_root_node(&y->doc); }
int cslim_yaml_is_map(const yaml_node_t *n) { return n && n->type == YAML_MAPPING_NODE; }
int cslim_yaml_is_seq(const yaml_node_t *n) { return n && n->type == YAML_SEQUENCE_NODE; }
int cslim_yaml_is_scalar(const yaml_node_t *n) { return n && n->type == YAML_SCALAR_NODE; }

const char *cslim_yaml_str(const yaml_node_t *n) {
  return cslim_yaml_is_scalar(n) ? (const char *)n->data.scalar.value : NULL;
}

int cslim_yaml_is_null(const yaml_node_t *n) {
  if (!cslim_yaml_is_scalar(n)) return 0;
  if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *s = cslim_yaml_str(n);
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int is_merge_key(const yaml_node_t *k) {
  return cslim_yaml_is_scalar(k) && !strcmp(cslim_yaml_str(k), "<<");
}

/* own key k of map (merges excluded) */
static yaml_node_t *own_get(cslim_yaml *y, yaml_node_t *map, const char *k) {
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *key = yaml_document_get_node(&y->doc, p->key);
    if (cslim_yaml_is_scalar(key) && !strcmp(cslim_yaml_str(key), k)) return yaml_document_get_node(&y->doc, p->value);
  }
  return NULL;
}

/* the i-th mapping merged into map ("<<: *a" or "<<: [*a, *b]"), or NULL */
static yaml_node_t *merge_source(cslim_yaml *y, yaml_node_t *map, int i) {
  yaml_node_t *m = NULL;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
    if (is_merge_key(yaml_document_get_node(&y->doc, p->key))) m = yaml_document_get_node(&y->doc, p->value);
  if (cslim_yaml_is_map(m)) return i == 0 ? m : NULL;
  if (cslim_yaml_is_seq(m)) {
    yaml_node_t *s = cslim_yaml_item(y, m, i);
    return cslim_yaml_is_map(s) ? s : NULL;
  }
  return NULL;
}

int cslim_yaml_next(cslim_yaml *y, yaml_node_t *map, cslim_yaml_iter *it, yaml_node_t **key, yaml_node_t **val) {
  if (!cslim_yaml_is_map(map)) return 0;
  int own = (int)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
  while (it->i < own) {
    yaml_node_pair_t *p = map->data.mapping.pairs.start + it->i++;
    yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
    if (is_merge_key(k)) continue;
    *key = k;
    *val = yaml_document_get_node(&y->doc, p->value);
    return 1;
  }
  for (yaml_node_t *src; (src = merge_source(y, map, it->mi)) != NULL; it->mi++, it->mj = 0) {
    int n = (int)(src->data.mapping.pairs.top - src->data.mapping.pairs.start);
    while (it->mj < n) {
      yaml_node_pair_t *p = src->data.mapping.pairs.start + it->mj++;
      yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
      if (!cslim_yaml_is_scalar(k) || is_merge_key(k) || own_get(y, map, cslim_yaml_str(k))) continue;
      *key = k;
      *val = yaml_document_get_node(&y->doc, p->value);
      return 1;
    }
  }
  return 0;
}

yaml_node_t *cslim_yaml_get(cslim_yaml *y, yaml_node_t *map, const char *k) {
  if (!cslim_yaml_is_map(map)) return NULL;
  yaml_node_t *v = own_get(y, map, k);
  for (int i = 0; !v; i++) {
    yaml_node_t *src = merge_source(y, map, i);
    if (!src) break;
    v = own_get(y, src, k);
  }
  return v;
}

int cslim_yaml_len(const yaml_node_t *seq) {
  return cslim_yaml_is_seq(seq) ? (int)(seq->data.sequence.items.top - seq->data.sequence.items.start) : 0;
}

yaml_node_t *cslim_yaml_item(cslim_yaml *y, yaml_node_t *seq, int i) {
  if (i < 0 || i >= cslim_yaml_len(seq)) return NULL;
  return yaml_document_get_node(&y->doc, seq->data.sequence.items.start[i]);
}
