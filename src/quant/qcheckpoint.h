/* Quantized checkpoints on the reading side (internal). */
#ifndef CSLIM_QUANT_QCHECKPOINT_H
#define CSLIM_QUANT_QCHECKPOINT_H

#include "cslim/quant.h"

typedef struct cslim_qdesc cslim_qdesc;

/* Path of the description in dir ("" when none): quant_model_description.json,
 * else the only quant_model_description_*.json (MindIE's legacy name). */
cslim_status cslim_qdesc_find(const char *dir, char *path, size_t cap);
/* NULL (and OK) when the directory has no description: a float model. */
cslim_status cslim_qdesc_load(const char *dir, cslim_qdesc **out);
void cslim_qdesc_free(cslim_qdesc *d);
/* Label of a tensor; -1 when not described. */
int cslim_qdesc_label(const cslim_qdesc *d, const char *tensor, cslim_qtype *t);
const char *cslim_qdesc_path(const cslim_qdesc *d);
const char *cslim_qdesc_version(const cslim_qdesc *d);
/* model_quant_type; -1 when the description has none (or an unknown one). */
int cslim_qdesc_model_type(const cslim_qdesc *d, cslim_qtype *t);

/* Build the runtime kernel of quantized Linear `lin` ([n, k]) from its
 * tensors, with the engine's handling of each parameter. */
cslim_status cslim_qlinear_from_checkpoint(cslim_st *st, const char *lin, cslim_qtype type, int n, int k,
                                           cslim_dtype serve, cslim_qlinear **out);

#endif
