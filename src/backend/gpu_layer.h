/* The GPU layer engine: the interface between the calibration (C) and the
 * CUDA module (cuda_layer.cu). Internal.
 *
 * The residual stream of every calibration token lives on the GPU for the
 * whole run. Per decoder layer the caller uploads the norms and each Linear's
 * weight once, in its checkpoint dtype (bf16 as stored), then runs:
 *   float_pass(STATS)  the float layer, observing each Linear group's input
 *                      (min, max, sum, sum of squares); the residual stream
 *                      is left as it was;
 *   float_pass(HIST)   the same, counting exact histograms over given ranges;
 *   quantize_weight    per-channel symmetric min-max codes, scales, row sums
 *                      (or set_codes: codes quantized on the host);
 *   set_qlinear        the serving kernel's parameters of each Linear;
 *   quant_pass         the layer with every quantized Linear computed as the
 *                      engine does (integer GEMM, same roundings as
 *                      cslim_qlinear_forward); its output replaces the stream;
 *   add_rows           Qwen3-VL: the deepstack features added to the image
 *                      rows after the first layers.
 * Slots (as calibrate.c numbers them): 0 q, 1 k, 2 v, 3 o, 4 gate, 5 up, 6 down,
 * 7 router, 8 + 3e + j expert e's gate (j 0), up (1), down (2). Groups
 * (observed inputs): 0 q/k/v, 1 o, 2 gate/up, 3 down, 4 router input,
 * 5 + 2e expert e's gate/up, 6 + 2e its down. A MoE layer routes as
 * cslim_moe_forward does (softmax, top-k, ties to the lower id, optional
 * renormalisation; experts in ascending id, rows ascending within each).
 * Every function returns 0, or -1 with last_error() set. */
#ifndef CSLIM_BACKEND_GPU_LAYER_H
#define CSLIM_BACKEND_GPU_LAYER_H

#include "cslim/backend.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CSLIM_GPU_DENSE_SLOTS = 7, CSLIM_GPU_DENSE_GROUPS = 4 };
enum { CSLIM_GPU_F32 = 0, CSLIM_GPU_BF16 = 1, CSLIM_GPU_F16 = 2 };         /* weight / served dtypes */
enum { CSLIM_GPU_LIN_FLOAT = 0, CSLIM_GPU_LIN_STATIC, CSLIM_GPU_LIN_DYNAMIC, CSLIM_GPU_LIN_W8A16 };
enum { CSLIM_GPU_PASS_STATS = 0, CSLIM_GPU_PASS_HIST = 1, CSLIM_GPU_PASS_CHANNELS = 2 };

typedef struct cslim_gpu_dims {
  int hidden, inter, n_heads, n_kv_heads, head_dim;
  float eps;
  int serve; /* CSLIM_GPU_*: quantized outputs are rounded to it (F32: not rounded) */
  int gemm;  /* cslim_gemm_precision: the float Linears' GEMMs */
  int n_experts, top_k, moe_inter, norm_topk; /* MoE layers (n_experts 0: none) */
} cslim_gpu_dims;

typedef struct cslim_gpu_stats {
  float mn, mx;
  double sum, sumsq;
} cslim_gpu_stats;

typedef struct cslim_gpu_hist {
  int bins;      /* 0: no histogram for this group */
  double lo, hi; /* torch.histc's range (the observed min and max) */
  double *counts; /* [bins], filled (host) */
} cslim_gpu_hist;

typedef struct cslim_gpu_qlin {
  int kind;                /* CSLIM_GPU_LIN_* */
  float in_recip, in_offset; /* static */
  const float *deq;        /* [out] static */
  const int32_t *qbias;    /* [out] static */
  const float *wscale;     /* [out] dynamic, W8A16: as the runtime applies it */
  int bias_after;          /* static: the float bias added after dequantization */
} cslim_gpu_qlin;

/* m2's search set (os_begin): the subgraph's sample rows and the block they feed. */
typedef struct cslim_gpu_os {
  int attn;                 /* 1: q, k, v into attention; 0: gate, up into SwiGLU and down_proj */
  const float *X;           /* [rows, n] */
  int rows, n, nt;          /* nt targets: 3 (q, k, v) or 2 (gate, up) */
  const float *W[3];        /* [outs[j], n] */
  int outs[3];
  const float *bias[3];     /* the float bias (NULL: none): the reference's */
  const float *bias_plain[3], *bias_shift[3]; /* [outs[j]]: the candidates' without / with the shift folded in */
  const float *down_w, *down_b; /* MLP: down_proj [hidden, outs[0]], its bias or NULL */
  const float *q_norm, *k_norm; /* attention: [head_dim] */
  const float *cos_t, *sin_t;   /* attention: the rows' RoPE tables [rows, head_dim / 2] */
  int n_seqs;                   /* attention: the rows' sequences, seq_start[n_seqs] = rows */
  const int *seq_start;
} cslim_gpu_os;

typedef struct cslim_gpu_layer_api {
  int version; /* CSLIM_GPU_LAYER_API */
  const char *(*last_error)(void);
  /* the CUDA devices to use (before begin); with several, the calibration rows are split between
   * them (whole sequences) and the statistics merged through NCCL (loaded on demand) */
  int (*set_devices)(const int *ids, int n);
  /* rows [total, hidden] of n_seqs sequences (seq_start[n_seqs + 1]); RoPE
   * tables [total, head_dim / 2]. Copies everything it needs. */
  int (*begin)(const cslim_gpu_dims *d, int total, int n_seqs, const int *seq_start, const float *h,
               const float *cos_t, const float *sin_t);
  /* The residual stream back (h may be NULL); frees every device buffer. */
  int (*end)(float *h);
  /* starts a layer: its norms, and whether its MLP is the MoE block */
  int (*set_norms)(const float *input_w, const float *input_b, const float *post_w, const float *post_b,
                   const float *q_norm, const float *k_norm, int is_moe);
  /* weight [out, in] in dtype (CSLIM_GPU_*), bias [out] or NULL. Row-major with leading dimension ld
   * (elements): out rows of in (ld >= in), or with transposed set, in rows of out (ld >= out) holding
   * the weight's transpose (the Hub's fused [E, H, 2I] experts, applied as x·W) */
  int (*set_weight)(int slot, int dtype, const void *w, int out, int in, size_t ld, int transposed, const float *bias);
  /* STATS: st[groups]; HIST: h[groups] (bins 0 for a group without one); groups = 4 for a dense
   * layer, 5 + 2 E for a MoE one. tokens[E]: rows routed to each expert (STATS, MoE), or NULL. */
  int (*float_pass)(int pass, cslim_gpu_stats *st, cslim_gpu_hist *h, int *tokens);
  /* Float pass collecting per-channel min and max of the inputs of groups 0..3 (q/k/v, o, gate/up,
   * down): mn[g], mx[g] host arrays of the group's width, or NULL. With sample (NULL: none),
   * sample[g] (host, cap rows of the group's width, or NULL) gets the group's input on the first
   * rows of the calibration set, at most cap; sample_rows[g] how many (the m2 / m6 searches'
   * samples, as the CPU's statistics pass keeps them). A MoE layer's block runs only with emn / emx
   * (every expert's up-down smoothing; the experts' weights set): emn[e], emx[e] (moe_inter wide, or
   * NULL) get expert e's down input's per-channel min and max over the rows routed to it, tokens[e]
   * their number. */
  int (*channel_pass)(float *const *mn, float *const *mx, float *const *sample, int *sample_rows, int cap,
                      float *const *emn, float *const *emx, int *tokens);
  /* MoE, after float_pass(STATS): expert e run in float on every row of the block's input,
   * st[0] its gate/up input, st[1] its down input (for experts that saw too few tokens) */
  int (*expert_on_all)(int e, cslim_gpu_stats *st);
  /* per output channel: scale = max|w| / (2^(bits-1) - 1) (at least FLT_EPSILON), codes
   * round-half-even(w / scale) clamped; with ssz_iters > 0 then SSZ's least-squares scale search
   * (cslim_wq_ssz, the same iterations and stopping rule); codes [out, in], scale [out], row sums
   * of the codes [out], sum (w - q*scale)^2 and sum w^2. *bad_row: the first row with a
   * non-finite value, or -1. */
  int (*quantize_weight)(int slot, int bits, int ssz_iters, int8_t *codes, float *scale, int64_t *rowsum,
                         double *err, double *wsq, int *bad_row);
  /* codes [out, in] quantized on the host, by a quantizer the engine lacks (W8A8S), for the slot's
   * uploaded weight */
  int (*set_codes)(int slot, const int8_t *codes);
  int (*set_qlinear)(int slot, const cslim_gpu_qlin *q);
  int (*quant_pass)(void);
  /* adds x[i] ([n, hidden]) to the residual stream's row rows[i] (ascending): Qwen3-VL's deepstack
   * features, after the first layers */
  int (*add_rows)(int n, const int *rows, const float *x);
  /* page-locked host memory (fast copies from the device), and its release */
  void *(*host_alloc)(size_t bytes);
  void (*host_free)(void *p);
  /* bytes of device memory held now, and the most held so far (on the busiest device) */
  int (*memory)(size_t *now, size_t *peak);
  /* m6's α / β search on the first device (quant/smoother.c): X [rows, n] and W [out, n] (host,
   * float32; W in parts W[p] [outs[p], n], stacked on the device) uploaded, ref = X·Wᵀ kept (the ordered product), ref_rows[r] = Σ_c ref² (double
   * lanes, model/repro.h). flex_eval(s [n]): xs = X / s, ws = W · s per column, each fake-quantized
   * per row (symmetric int8, fq_rows_sym), y = xs·wsᵀ (ordered), err_rows[r] = Σ_c (y − ref)²
   * (double lanes). flex_end frees what flex_begin took. */
  int (*flex_begin)(const float *X, int rows, int n, const float *const *W, const int *outs, int parts,
                    double *ref_rows);
  int (*flex_eval)(const float *s, double *err_rows);
  void (*flex_end)(void);
  /* a set weight, in place on every device: w[o][c] · col_mul[c], then · (1 / row_div[o]) (either
   * NULL; the bias is left as it is) — the host's scale_cols / div_rows, the same float32 operations.
   * A weight set as stored (bf16 / f16) is converted to float32 first. Every expert's up-down
   * smoothing applies its scales this way instead of converting and uploading the experts again. */
  int (*scale_weight)(int slot, const float *col_mul, const float *row_div);
  /* A second row set beside the calibration rows (the smoothing's statistics set, --anti_data), after
   * begin and as begin takes its rows (split over the devices by whole sequences: at least one a
   * device). swap_rows: every pass from then on runs on the other set — the channel pass observes
   * the statistics set, a quant_pass carries it through the quantized layer — until swapped back;
   * end reads back whichever is current. A quant_pass leaves the layer's weights for the next pass
   * only with a second set, on the calibration rows: that set's pass follows, then the next layer
   * uploads its own. */
  int (*begin_alt)(int total, int n_seqs, const int *seq_start, const float *h, const float *cos_t,
                   const float *sin_t);
  int (*swap_rows)(void);
  /* The devices the calibration rows are split over since begin: the GPUs named, or fewer where
   * there are fewer sequences. */
  int (*devices)(void);
  /* m2's threshold search on the first device (quant/os_plus.c; os_begin takes a cslim_gpu_os):
   * X, the targets' float32 weights and biases (and the MLP's down_proj, or q_norm / k_norm and
   * the rows' RoPE tables) uploaded once, the float block's output kept as the reference.
   * os_scale(s, z): xs = (X − z) / s per column, its minimum and maximum back to the host (which
   * turns them into the per-tensor asymmetric int8 parameters); os_eval(scale, offset, inv,
   * shifted): xs fake-quantized with them, each W · s fake-quantized per row, the targets' ordered
   * products plus the shifted biases (shifted) or the plain ones, the block (q_norm / k_norm, RoPE,
   * causal attention per sequence; or SwiGLU and down_proj) in the CPU's arithmetic, and
   * err_rows[r] = Σ_c (out − ref)² (double lanes). Always the ordered products, whatever
   * --gpu_gemm. os_end frees what os_begin took. */
  int (*os_begin)(const cslim_gpu_os *o);
  int (*os_scale)(const float *s, const float *z, float *mn, float *mx);
  int (*os_eval)(float scale, float offset, float inv, int shifted, double *err_rows);
  void (*os_end)(void);
} cslim_gpu_layer_api;

#define CSLIM_GPU_LAYER_API 14

/* The module's entry point (dlsym'ed by src/backend/device.c). */
const cslim_gpu_layer_api *cslim_cuda_layer_api(void);
/* The engine of the selected GPU, or NULL on the CPU (src/backend/device.c). */
const cslim_gpu_layer_api *cslim_gpu_layer_engine(void);

#ifdef __cplusplus
}
#endif
#endif
