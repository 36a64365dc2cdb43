/* Internals of the outlier-suppression and rotation transforms (src/quant). */
#ifndef CSLIM_QUANT_SMOOTHER_H
#define CSLIM_QUANT_SMOOTHER_H

#include "cslim/transform.h"
#include "model/model_internal.h"

/* a[c] = max(|mn_c - z_c|, |mx_c - z_c|) (z = NULL: no shift) */
void smooth_absmax(const cslim_chstats *st, const float *shift, float *a);
/* acc[c] = max(acc[c], max_o |w[o][c]|), or of w[o][c] itself (absolute 0); threaded */
void smooth_col_max(const float *w, int out, int in, int absolute, float *acc);
void smooth_col_absmax(const float *w, int out, int in, float *acc);
/* The same for a Linear: of its float32 weight when it has one, else straight from the checkpoint's tensor (any dtype
 * and layout, converted a few rows at a time: no float32 copy of the weight, and the same maxima, a conversion being
 * exact and a maximum taking any order). The conversion hook (on_convert) is not applied: for weights it would not
 * change yet. */
cslim_status smooth_linear_col_max(cslim_model *m, const cslim_linear *l, int absolute, float *acc);

/* flex smooth's scale: s_c = max(a_c^α / max(w_c, 1e-5)^β, 1e-5); 1 where a_c = 0 */
void smooth_flex_scale(const float *a, const float *w, int n, double alpha, double beta, float *s);

/* Fake quantization in place: symmetric int8 per row (per token / per output
 * channel, amax/127), asymmetric int8 per tensor (min-max, spec §3.4). */
void fq_rows_sym(float *x, int rows, int n);
void fq_tensor_asym(float *x, size_t n);

/* m2 (OS+, spec §3.11): shift z and scale s of a norm subgraph's input
 * channels, searched on the output of the block that follows — attention
 * (q/k/v with q_norm, k_norm, RoPE, GQA; kind CSLIM_IN_QKV) or the dense MLP
 * (kind CSLIM_IN_GATE_UP) — with the inputs fake-quantized per tensor and
 * the weights per channel. X: the first `rows` rows of the layer's normed
 * input (their sequences from `a`, cut at `rows`). */
cslim_status osp_search(cslim_model *m, cslim_layer *l, cslim_input_kind kind, const float *X, int rows,
                        const cslim_acts *a, const cslim_chstats *st, float *s, float *z, double *best_t);

#endif
