/* Post-training quantization: layer-wise calibration, the weight and
 * activation quantizers, the Ascend checkpoint format, and the
 * integer-exact evaluation of what was written. Spec §2–§3, §5. */
#ifndef CSLIM_QUANT_H
#define CSLIM_QUANT_H

#include "cslim/model.h"
#include "cslim/scheme.h"
#include "cslim/transform.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- observers and quantizers (exposed for tests and tools) ------------------ */

/* Asymmetric parameters of [mn, mx] (extended to include 0), b bits:
 * s = max(mx/(2^b-1) - mn/(2^b-1), eps), o = round(-mn/s) - 2^(b-1). */
void cslim_qparams_asym(float mn, float mx, int bits, float *scale, float *offset);
/* Symmetric: s = max(max(-mn, mx) / (2^(b-1) - 1), eps). */
float cslim_qparams_sym(float mn, float mx, int bits);

typedef struct cslim_observer {
  float mn, mx;
  double sum, sumsq;
  int64_t count;
  int64_t rows;
  /* histogram over [h_min, h_max] (exact: built on a second pass once the
   * range is known) */
  double *hist;
  int bins;
  float h_min, h_max;
} cslim_observer;

void cslim_observer_init(cslim_observer *o);
void cslim_observer_free(cslim_observer *o);
/* min, max, sum and sum of squares of n values (threaded). */
void cslim_observer_update(cslim_observer *o, const float *x, size_t n);
/* max(|min|, |max|) / std: act_method 3 picks the histogram when <= 50. */
double cslim_observer_range_param(const cslim_observer *o);
/* Start a histogram of `bins` bins over the observed [mn, mx]. */
cslim_status cslim_observer_hist_begin(cslim_observer *o, int bins);
void cslim_observer_hist_update(cslim_observer *o, const float *x, size_t n);
/* PyTorch HistogramObserver's L2 search (_non_linear_param_search): the
 * clipping range for dst_bins quantization levels. */
void cslim_observer_hist_range(const cslim_observer *o, int dst_bins, float *clip_min, float *clip_max);

typedef enum cslim_wmethod { CSLIM_WM_MINMAX = 0, CSLIM_WM_SSZ } cslim_wmethod;

/* Quantized weights of one Linear [n, k]. */
typedef struct cslim_wq {
  int n, k, bits;
  int8_t *q;       /* [n, k] codes (int4 codes held in int8) */
  float *scale;    /* [n] per output channel */
  int group_size;  /* > 0: two-stage per group (v0 W4A8 per-group) */
  float *scale2;   /* [n, k / group_size] second-stage scales */
  double err_sq;   /* sum (W - Ŵ)^2 */
  double w_sq;     /* sum W^2 */
  int64_t n_wide;  /* W8A8S: codes outside [-8, 7] (the protected outliers) */
  int64_t *rowsum; /* [n] sums of each row's codes, or NULL (computed where needed) */
  int q_borrowed;  /* q belongs to someone else (the GPU engine's pinned buffers): not freed here */
} cslim_wq;

/* W8A8S: low-bit sparse weights with int8 outliers (spec §3.15). */
typedef struct cslim_sparse_params {
  double fraction;     /* share of each output channel kept as int8 outliers, 0.01 .. 0.1 (default 0.01) */
  int use_sigma;       /* outliers: |w - mean| > sigma_factor * std of the channel instead */
  double sigma_factor; /* 1.0 .. 4.0 (default 3.0) */
  int open_outlier;    /* 1 (default): outliers keep int8 codes; 0: every code in [-8, 7] */
  int co_sparse;       /* legacy backend: scale = inlier max / 7, no search */
} cslim_sparse_params;

/* All quantizers refuse a weight with a non-finite value (CSLIM_ERR_NUMERIC,
 * naming the row). */
/* Per-channel symmetric min-max (spec §3.3). */
cslim_status cslim_wq_minmax(const float *w, int n, int k, int bits, cslim_wq *out);
/* SSZ: iterative least-squares scale per channel (spec §3.7). */
cslim_status cslim_wq_ssz(const float *w, int n, int k, int bits, int max_iter, cslim_wq *out);
/* Two-stage per-group int4: per-channel int8, then int4 per group of the int8
 * codes (spec §3.8, v0). */
cslim_status cslim_wq_group(const float *w, int n, int k, int group_size, cslim_wq *out);
/* W8A8S (spec §3.15), per output channel: outliers (the fraction largest |w|, or beyond
 * mean ± sigma_factor·std) keep int8 codes, the others are held to [-8, 7]; the scale is
 * searched to minimise the channel's error (docs/sparse.md). Codes int8, bits = 8. */
cslim_status cslim_wq_sparse(const float *w, int n, int k, const cslim_sparse_params *sp, cslim_wq *out);
/* w[n, k] = q * scale (* scale2 for per-group). */
void cslim_wq_dequant(const cslim_wq *q, float *w);
void cslim_wq_free(cslim_wq *q);

/* ---- the integer-exact runtime kernels ------------------------------------------------- */

/* A quantized Linear as the serving engine computes it (engines.md §2):
 * W8A8/W8A8S: x_q = clamp(round(x * rd(1/rd(s)) + o)); y = (x_q·Wqᵀ + quant_bias) · deq_scale (+ bias when
 *   bias_after)
 * W8A8_DYNAMIC / W8A8_MIX (prefill) / W4A8_DYNAMIC: per-token s_t = max|x|/127;
 *   y = (x_q·Wqᵀ) · s_t · weight_scale (+ bias)
 * W8A16: y = x · (Wq · rd(s))ᵀ (+ bias)
 * int32 accumulation is exact (float GEMMs over k-blocks whose partial sums
 * stay below 2^24); outputs are rounded to the serving dtype, as the NPU
 * kernels return it. */
typedef struct cslim_qlinear {
  cslim_qtype type;
  int n, k;
  int8_t *wq;        /* [n, k] codes */
  float *wscale;     /* [n] as the engine holds it */
  float in_recip;    /* static: rd(1 / rd(input_scale)) */
  float in_offset;   /* static: integer-valued */
  float *deq;        /* static: [n] */
  int32_t *qbias;    /* static: [n] */
  float *bias;       /* [n] float bias, or NULL */
  int bias_after;    /* static schemes: the bias is added after the dequantization (vllm-mindspore's
                        convention: the bias carries the Linear's label and quant_bias excludes it);
                        otherwise a static scheme's bias is already folded into quant_bias */
  cslim_dtype serve; /* serving dtype: BF16 / F16 / F32 */
  float *wf;         /* codes (or dequantized weights for W8A16) as float, cached */
  int transient;     /* free wf after every call (experts) */
} cslim_qlinear;

cslim_status cslim_qlinear_forward(const cslim_linear *l, const float *x, int rows, float *y);
void cslim_qlinear_free(cslim_qlinear *q);

/* ---- the quantization run ----------------------------------------------------------------- */

typedef struct cslim_mix_rule {
  const char *pattern; /* glob over module names: "*.mlp.*", "model.layers.{0,1}.mlp.down_proj" */
  cslim_qtype type;
  const char *const *exclude; /* names matching one of these fall through to the next rule */
  int n_exclude;
  int w_method_set;           /* weight quantizer of this rule (else the run's) */
  cslim_wmethod w_method;
} cslim_mix_rule;

typedef struct cslim_quant_params {
  const char *model_path, *save_path;
  cslim_qtype quant_type;   /* scheme of every quantized Linear unless mix rules say otherwise */
  int act_method;           /* 1 min-max, 2 histogram, 3 per Linear (histogram if range <= 50) */
  cslim_wmethod w_method;   /* default: SSZ for 4-bit weights, min-max for 8-bit */
  int w_method_set;
  int group_size;           /* 0 = per channel; 32..256 per group (W4A8_DYNAMIC, W8A16) */
  const char *const *disable_names; /* module names kept float */
  int n_disable;
  const cslim_mix_rule *mix; /* ordered: the first matching rule wins (exact names first) */
  int n_mix;
  const char *const *exclude; /* glob patterns kept float */
  int n_exclude;
  int quantize_vision;      /* include the vision tower's linears (VL models) */
  const char *calib_data;   /* .json / .jsonl / image folder */
  int calib_samples;        /* 0 = all */
  int calib_seq_len;        /* tokens per sample (0 = no limit) */
  int holdout;              /* samples kept back for the final check (default 4) */
  int expert_min_tokens;    /* experts that saw fewer tokens are calibrated on all tokens */
  double part_file_size;    /* GB (2^30) per shard; 0 = one file */
  int legacy_names;         /* quant_model_weight_<type>*.safetensors (the v0 saver) */
  int mindie_format;        /* legacy description name + config.json "quantize" */
  int overwrite;
  const char *calib_default_text; /* prompt paired with the images of a bare image folder (default: "Describe ...") */
  const char *extra_name, *extra_text; /* a text file written beside the checkpoint (the recipe), or NULL */
  /* function-preserving transforms before quantization (cslim/transform.h) */
  cslim_anti_method anti_method; /* outlier suppression (default none) */
  double anti_alpha;        /* migration strength α of m1 / m4 (default 0.5) */
  double anti_scale_min;    /* lower bound of m1 / m4 scales (default 1e-5) */
  unsigned anti_subgraphs;  /* CSLIM_SG_* set (0: the method's legacy set) */
  int anti_experts;         /* MoE: up-down of every expert too (v1 processors; legacy m4 skips experts) */
  int anti_shift;           /* shift z on norm subgraphs: -1 the method's default (m2, m4 yes), 0 no, 1 yes */
  const char *anti_data;    /* statistics set for the smoothing (default: the calibration samples) */
  int anti_samples;         /* samples of anti_data used (0 = all) */
  int anti_tokens;          /* rows of each subgraph's input the m2 / m6 searches score on (default 512) */
  int rot;                  /* QuaRot: Hadamard rotation of the residual stream */
  int rot_block_size;       /* <= 0: one rotation of the whole hidden size; else block-diagonal */
  cslim_rot_mode rot_mode;
  uint64_t rot_seed;        /* random signs of the rotation (default 1234) */
  cslim_dtype save_dtype;   /* --quant_type float: dtype of the written tensors (default: the model's) */
  int save_dtype_set;
  cslim_sparse_params sparse; /* W8A8S weights */
  int gpu_gemm;             /* cslim_gemm_precision of the float GEMMs with --device cuda (default float32) */
} cslim_quant_params;

void cslim_quant_params_default(cslim_quant_params *p);

typedef struct cslim_quant_layer_stats {
  float in_min[5], in_max[5]; /* per input kind (QKV, O, GATE_UP, DOWN, ROUTER) over the layer */
  double werr;                /* ||W - Ŵ|| / ||W|| over the layer's quantized linears */
  int64_t sparse_codes, sparse_wide; /* W8A8S codes of the layer, and those outside [-8, 7] */
  double sparse_bits;         /* W8A8S: bits per weight after the W8A8SC codec */
  int n_hist;                 /* groups calibrated with the histogram */
  double seconds;
} cslim_quant_layer_stats;

typedef struct cslim_quant_report {
  double seconds, t_read, t_forward, t_stats, t_write, t_verify, t_transform;
  int on_gpu;               /* the decoder layers ran whole on the GPU */
  uint64_t gpu_peak_bytes;  /* device memory held at most (by any one device) */
  int gpu_devices;          /* the devices the samples were split over */
  char gpu_note[320];       /* when a GPU was selected and the layers did not run on it: what ran there, and why */
  uint64_t peak_rss, bytes_written;
  uint64_t bytes_read;      /* distinct checkpoint bytes the run read (each tensor once) */
  int64_t disk_read;        /* of all the process's reads, what the kernel fetched from storage (-1: unknown) */
  int calib_tokens, calib_samples;
  cslim_qtype model_quant_type;
  int n_linear[CSLIM_QT_COUNT];
  int n_layers;
  cslim_quant_layer_stats *layers;
  int n_experts;            /* per layer, 0 for dense */
  int *expert_tokens;       /* [n_layers * n_experts] */
  int *expert_fallback;     /* [n_layers * n_experts]: 0 none, 1 calibrated on all tokens, 2 data-free */
  int expert_min_tokens;
  int verified;
  double kl, top1;          /* float vs the written checkpoint on the held-back samples */
  int64_t verify_tokens;
  char out_dir[4096];
} cslim_quant_report;

cslim_status cslim_quantize(const cslim_quant_params *p, cslim_quant_report *r);
void cslim_quant_report_free(cslim_quant_report *r);

/* The scheme chosen for Linear `name` (rollback, exact mix key, first
 * matching mix pattern, default). */
cslim_qtype cslim_quant_plan_linear(const cslim_quant_params *p, const char *name);
/* The weight quantizer for Linear `name` of scheme t: its rule's, else --w_method, else SSZ for
 * 4-bit weights and min-max for 8-bit. */
cslim_wmethod cslim_quant_plan_wmethod(const cslim_quant_params *p, const char *name, cslim_qtype t);

#ifdef __cplusplus
}
#endif
#endif
