/* Layer-wise calibration on the GPU (--device cuda): the glue between
 * calibrate.c and the GPU layer engine (src/backend/gpu_layer.h). Internal.
 *
 * The engine runs decoder layers whole, dense or MoE (the Hub's fused experts
 * too), on text or image samples: the float passes with their observers and
 * histograms, the routing, the min-max / SSZ weight quantizer (W8A8S's codes
 * come from the host), and the integer pass whose output feeds the next layer;
 * with QuaRot or smoothing, the per-channel statistics and m2 / m6's samples
 * too (the weights are then transformed on the host and uploaded as float32),
 * and m2's and m6's search evaluations. A separate smoothing set (--anti_data,
 * text or images) lives on the GPU beside the calibration rows: the statistics
 * are observed on it, and it is carried through each quantized layer (its image
 * rows' deepstack features added as the calibration rows' are). Runs it cannot
 * take (per-group weights, fewer smoothing samples than GPUs) stay on the CPU,
 * with their float GEMMs offloaded. */
#ifndef CSLIM_QUANT_GPU_CALIB_H
#define CSLIM_QUANT_GPU_CALIB_H

#include "cslim/quant.h"
#include "model/model_internal.h"
#include "quant/xform.h"

/* NULL when the whole run can calibrate on the selected GPU; otherwise why
 * not (for the log). */
const char *cslim_gpu_calib_unsupported(cslim_model *m, const cslim_quant_params *p, const cslim_acts *anti,
                                        const cslim_acts *a);
/* Move the calibration rows (and the smoothing set anti, or NULL) to the GPU; without transforms
 * (xf NULL) cslim_layer_load then maps weights without converting them (the engine reads the
 * checkpoint's bytes). */
cslim_status cslim_gpu_calib_begin(cslim_model *m, const cslim_quant_params *p, const cslim_xform *xf,
                                   const cslim_acts *a, const cslim_acts *anti);
void cslim_gpu_calib_end(cslim_model *m);
/* Upload layer l's norms and weights (once). */
cslim_status cslim_gpu_calib_upload(cslim_model *m, cslim_layer *l);
/* With transforms: rotate / smooth layer l on the host (the smoothing's per-channel statistics, and
 * m2 / m6's samples, from the GPU: of the smoothing set anti when there is one, else of the
 * calibration rows a — the acts for their positions), then upload it (float32). */
cslim_status cslim_gpu_calib_transform(cslim_model *m, cslim_xform *xf, cslim_layer *l, cslim_acts *a,
                                       cslim_acts *anti);
/* Float pass: hist 0 updates the observers' min, max and moments (and adds
 * each expert's rows to tokens[E]); hist 1 the histograms of those with one
 * begun. obs[n_groups] as calibrate.c numbers its groups (kind, or 5 + 2e + down). */
cslim_status cslim_gpu_calib_observe(cslim_layer *l, int hist, cslim_observer **obs, int n_groups, int *tokens);
/* Expert e run in float on every row of the MoE input: its two observers anew. */
cslim_status cslim_gpu_calib_expert_on_all(cslim_layer *l, int e, cslim_observer *gate_up, cslim_observer *down);
/* Per-channel min-max codes of Linear l with row sums; ssz_iters > 0: then SSZ (cslim_wq_ssz). */
cslim_status cslim_gpu_calib_quantize_weight(const cslim_linear *l, int bits, int ssz_iters, cslim_wq *out);
/* Codes quantized on the host (W8A8S: a quantizer the engine lacks) for Linear l's slot. */
cslim_status cslim_gpu_calib_set_codes(const cslim_linear *l, const cslim_wq *wq);
/* The serving kernel of Linear l (slot 0..6), as rt describes it; NULL: float. */
cslim_status cslim_gpu_calib_set_kernel(const cslim_linear *l, const cslim_qlinear *rt);
/* The quantized layer; its output replaces the rows on the GPU (then Qwen3-VL's deepstack features
 * of a's image rows are added, after the first layers). */
cslim_status cslim_gpu_calib_run_quantized(cslim_layer *l, const cslim_acts *a);
/* The smoothing set through the quantized layer too (as the CPU carries it), then its image rows'
 * deepstack features after the first layers. */
cslim_status cslim_gpu_calib_run_quantized_anti(cslim_layer *l, const cslim_acts *anti);
/* Device memory held at most so far (bytes; by any one device). */
size_t cslim_gpu_calib_peak_memory(void);
/* The devices the calibration rows were split over (1, or up to the GPUs named). */
int cslim_gpu_calib_devices(void);

/* m2's search on the GPU while the engine runs (quant/os_plus.c; gpu_layer.h's os_begin): 0 when it
 * does not (the caller searches on the host), 1 when begun, or -1 with the error set. */
struct cslim_gpu_os;
int cslim_gpu_calib_os_begin(const struct cslim_gpu_os *o);
cslim_status cslim_gpu_calib_os_scale(const float *s, const float *z, float *mn, float *mx);
cslim_status cslim_gpu_calib_os_eval(float scale, float offset, float inv, int shifted, double *err_rows);
void cslim_gpu_calib_os_end(void);

/* m6's search evaluations on the GPU while the engine runs (quant/smoother.c): 0 when it does not
 * (the caller scores on the host), 1 when begun (ref_rows filled), or -1 with the error set.
 * See gpu_layer.h's flex_begin / flex_eval. */
int cslim_gpu_calib_flex_begin(const float *X, int rows, int n, const float *const *W, const int *outs, int parts,
                               double *ref_rows);
cslim_status cslim_gpu_calib_flex_eval(const float *s, double *err_rows);
void cslim_gpu_calib_flex_end(void);

#endif
