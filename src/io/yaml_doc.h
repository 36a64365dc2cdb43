/* A YAML file loaded whole with libyaml (anchors and aliases resolved by the
 * parser; "<<" merge keys resolved here), walked by node with 1-based line
 * numbers for the errors. Internal to the library. */
#ifndef CSLIM_IO_YAML_DOC_H
#define CSLIM_IO_YAML_DOC_H

#include "cslim/common.h"

#include <yaml.h>

typedef struct cslim_yaml {
  yaml_document_t doc;
  char *path;
  char *text; /* the file as read */
  size_t len;
} cslim_yaml;

/* Parse errors name the file, line and column. An empty file is an error. */
cslim_status cslim_yaml_load(const char *path, cslim_yaml **out);
/* The same from memory; `name` stands for the file in messages. */
cslim_status cslim_yaml_parse(const char *text, size_t len, const char *name, cslim_yaml **out);
void cslim_yaml_free(cslim_yaml *y);

yaml_node_t *cslim_yaml_root(cslim_yaml *y);
static inline int cslim_yaml_line(const yaml_node_t *n) { return n ? (int)n->start_mark.line + 1 : 0; }
int cslim_yaml_is_map(const yaml_node_t *n);
int cslim_yaml_is_seq(const yaml_node_t *n);
int cslim_yaml_is_scalar(const yaml_node_t *n);
/* YAML's null: ~, null, Null, NULL or an empty plain scalar. */
int cslim_yaml_is_null(const yaml_node_t *n);
const char *cslim_yaml_str(const yaml_node_t *n); /* scalar text, NULL otherwise */

/* Mappings: iterate over key/value pairs with the keys of "<<: *anchor"
 * merges included (the mapping's own keys first, merged keys after unless
 * shadowed). it starts at 0; returns 0 at the end. */
typedef struct cslim_yaml_iter {
  int i;        /* position in the mapping's own pairs */
  int mi, mj;   /* merge source index and position in it */
} cslim_yaml_iter;
int cslim_yaml_next(cslim_yaml *y, yaml_node_t *map, cslim_yaml_iter *it, yaml_node_t **key, yaml_node_t **val);
/* value of key `k` (merges included), or NULL */
yaml_node_t *cslim_yaml_get(cslim_yaml *y, yaml_node_t *map, const char *k);
/* Sequence item i, or NULL; count of items. */
int cslim_yaml_len(const yaml_node_t *seq);
yaml_node_t *cslim_yaml_item(cslim_yaml *y, yaml_node_t *seq, int i);

#endif
