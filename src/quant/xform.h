/* The transforms of a quantization run, layer by layer (src/quant/transform.c):
 * QuaRot rotation and outlier smoothing folded into each decoder layer's
 * float weights before it is calibrated, the residual stream rotated once
 * after the embedding, and the tensors outside the layers (embedding,
 * final norm, lm_head, the vision mergers' output Linears) rewritten on
 * export. Internal to the library. */
#ifndef CSLIM_QUANT_XFORM_H
#define CSLIM_QUANT_XFORM_H

#include "cslim/quant.h"
#include "cslim/transform.h"
#include "export/exporter.h"

typedef struct cslim_xform cslim_xform;

/* *out = NULL when the parameters ask for no transform. Checks what the
 * model allows (tied embeddings refuse rotation; sizes need a Hadamard
 * transform). */
cslim_status cslim_xform_create(cslim_model *m, const cslim_quant_params *p, cslim_xform **out);
void cslim_xform_free(cslim_xform *x);
int cslim_xform_rotates(const cslim_xform *x);
int cslim_xform_smooths(const cslim_xform *x);
/* 1 when the norm subgraph read by `kind` (CSLIM_IN_QKV or CSLIM_IN_GATE_UP)
 * of a (MoE or dense) layer gets a shift: its norm and target Linears gain
 * biases. */
int cslim_xform_shifts(const cslim_xform *x, int is_moe, cslim_input_kind kind);

/* Rotate the residual stream (and Qwen3-VL's deepstack features) after the
 * embedding. */
cslim_status cslim_xform_acts(cslim_xform *x, cslim_acts *a);
/* Transform a freshly loaded layer: rotation, then smoothing with statistics
 * from a float pass over `stats` (left unchanged; NULL without smoothing).
 * Experts are transformed whenever they are converted, until
 * cslim_xform_layer_done(). */
cslim_status cslim_xform_layer(cslim_xform *x, cslim_layer *l, cslim_acts *stats);
/* The same with the statistics gathered by `observe` (the GPU engine) instead of a CPU float pass:
 * it fills st[g] (min, max per channel and rows) for every group g < n whose arrays are set —
 * the inputs of the rotated, not yet smoothed layer: groups CSLIM_IN_QKV..CSLIM_IN_DOWN, and
 * 5 + 2e + 1 for expert e's down input (every expert's up-down smoothing) — and, when sample is
 * not NULL (m2 / m6), sample[g] (allocated, cap rows) with the group's input on the first
 * calibration rows and sample_rows[g] with their number, for the non-expert groups
 * (g <= CSLIM_IN_DOWN) that have statistics. `rows` are the calibration rows observed (their
 * sequences and positions, for m2's attention; their activations are not read). */
typedef cslim_status (*cslim_xform_observer)(void *ctx, cslim_layer *l, cslim_chstats *st, int n, float **sample,
                                             int *sample_rows, int cap);
cslim_status cslim_xform_layer_observed(cslim_xform *x, cslim_layer *l, cslim_acts *rows, cslim_xform_observer observe,
                                        void *ctx);
void cslim_xform_layer_done(cslim_xform *x);
/* Every expert's up→down scales of the current layer (s[e] [moe_inter], NULL for an expert left as
 * it is), or NULL when the layer has none. Expert e's up rows are divided by s[e], its down columns
 * multiplied (on conversion, or by whoever holds the weights: the GPU engine). */
const float *const *cslim_xform_expert_scales(const cslim_xform *x);

/* Write a tensor outside the decoder layers that the transforms change
 * (embedding, final norm, lm_head, merger output Linears); *done = 0 when it
 * is not one of them. */
cslim_status cslim_xform_put_outer(cslim_xform *x, cslim_exporter *ex, const cslim_tensor *src, int *done);
/* Rotate a vision Linear read for quantization when it writes into the
 * residual stream (the mergers' linear_fc2). */
cslim_status cslim_xform_vision_linear(cslim_xform *x, cslim_linear *l);
/* Hand the global rotation to the exporter (optional/quarot.safetensors). */
cslim_status cslim_xform_export_rotation(cslim_xform *x, cslim_exporter *ex);

#endif
