// The GPU layer engine (gpu_layer.h): a dense Qwen3 decoder layer, its
// observers, its weight quantizer and the serving engines' integer kernels,
// with the residual stream resident on the GPU.
//
// Arithmetic follows the CPU path operation for operation (the module is
// built with --fmad=false, so no multiply-add is contracted, as the C code is
// built with -ffp-contract=off), and where the order of a sum matters it is
// model/repro.h's: float32 products as ordered fma chains (k_gemm_ordered,
// --gpu_gemm fp32), RMSNorm's double lanes, softmax with cslim_expf and an
// ordered sum, RoPE from the CPU's tables, activations quantized with
// round-half-even and the runtime's reciprocal, int8 x int8 -> int32 GEMMs
// (exact), dequantization and the rounding to the served dtype as
// cslim_qlinear_forward does them. With fp32 GEMMs the checkpoint is the
// CPU's bit for bit; tf32 / bf16 GEMMs (cuBLAS, tensor cores) trade that for
// speed. Built only with -DCSLIM_CUDA=ON.
#include "gpu_layer.h"
#include "cuda_flex.cuh"
#include "gemm_ordered.cuh"
#include "model/repro.h"
#include "model/routing.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- errors and buffers ----------------------------------------------------------------------

static thread_local char g_err[512];

static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  return -1;
}

#define CK(x)                                                                                 \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) return fail("%s (%s:%d)", cudaGetErrorString(e_), __FILE__, __LINE__); \
  } while (0)
#define CB(x)                                                                                 \
  do {                                                                                        \
    cublasStatus_t s_ = (x);                                                                  \
    if (s_ != CUBLAS_STATUS_SUCCESS) return fail("cuBLAS status %d (%s:%d)", (int)s_, __FILE__, __LINE__); \
  } while (0)
#define TRY(x)            \
  do {                    \
    if ((x)) return -1;   \
  } while (0)

typedef struct buf {
  void *p;
  size_t cap;
} buf;

#define F(b) ((float *)(b).p)

// A Linear's serving parameters on the device. A dense Linear passes one set for all its rows; the MoE block a
// table over its experts, each row finding its expert through its chunk of MOE_CHUNK rows (chunk_e[row / MOE_CHUNK]).
#define MOE_CHUNK 128
typedef struct lin_params {
  const int *qbias;                // static
  const float *deq, *wscale, *bias; // static; dynamic, W8A16; the float bias where the kernel adds it (or NULL)
  float r, o;                      // static: the activation's reciprocal scale and offset
} lin_params;
typedef struct lin_sel {
  lin_params one;
  const lin_params *tab; // per expert, or NULL: `one` for every row
  const int *chunk_e;
} lin_sel;

// ---- state ---------------------------------------------------------------------------------------

typedef struct slot {
  int out, in, dtype, has_bias, loaded;
  buf w;      // the checkpoint's bytes
  buf wf;     // float32 weights (fp32 / tf32 GEMMs; W8A16: the dequantized weights)
  buf wb;     // bf16 weights (bf16 GEMMs, when the checkpoint is not bf16)
  buf bias;   // [out]
  buf q;      // int8 codes
  buf deq, qbias, wscale;
  cslim_gpu_qlin p;
  int fresh;  // weights changed since wf / wb were made
} slot;

// The MoE block's plan for one pass (plan_experts): rows grouped by expert on the host, waves of experts, and the tables
// the kernels read (device: one upload into ctx.tab, staged in page-locked h_tab).
typedef struct moe_seg {
  int row0, n, e; // expert e's rows [row0, row0 + n) of its wave's buffers (row0 a multiple of MOE_CHUNK)
} moe_seg;
typedef struct moe_wave {
  int s0, s1, p0, rows; // segments [s0, s1), padded rows [p0, p0 + rows) of the pass
} moe_wave;
typedef struct hist_p {
  double lo, hi;
  int bins;
} hist_p;
typedef struct moe_plan {
  int *h_sel, *h_count, *h_offs, *h_tok, *h_fill, *h_prow; // top-k, rows by expert, each expert's padded row
  float *h_wts, *h_tw;
  char *h_tab;
  size_t h_tab_cap;
  moe_wave *waves;
  moe_seg *segs;
  int n_waves, n_segs, n_chunks, path[3], bias[3]; // path: the kind of each projection (-1: mixed)
  int h_rows;                                        // rows the host arrays above hold (the largest row set)
  int *rowtok, *chunk_e, *pos; // device, in ctx.tab: each padded row's token (-1: padding), each chunk's expert,
  float *pw;                   // each token's padded rows and weights in ascending expert
  moe_seg *d_segs;
  hist_p *hist;
  lin_params *lin; // [3][E]
  void **ptr;      // [3 projections][weights, inputs, outputs][n_chunks]
} moe_plan;

// One GPU's share of the run: its calibration rows (whole sequences), its copy of the layer, its
// buffers. Every function below works on the calling thread's current context (G); the API loops
// over the devices, and runs the passes on one thread per device.
typedef struct ctx {
  int on, dev;
  size_t mem_now, mem_peak;
  cslim_gpu_dims d;
  cublasHandle_t blas;
  cudaStream_t st;
  int total, n_seqs, *seq_start; // host
  int R;                         // rows per group (whole sequences)
  buf h, cos_t, sin_t;
  buf hs, xn, q, k, v, ctx, o, g, u, S, aptr, xq, acc, rs, xb;
  buf norm[6]; // input w, input b, post w, post b, q_norm, k_norm
  int has_norm_b[2];
  slot *s; // [n_slots]
  int n_slots, n_groups, is_moe;
  buf chan; // per-channel min / max of groups 0..3: [4][2][max width]
  buf samp; // the channel pass's first rows of groups 0..3 (m2 / m6 searches): [4][samp_cap][chan_w]
  buf echan; // the channel pass's per-channel min / max of each expert's down input: [E][2][moe_inter] (or none)
  buf ssz;  // SSZ's per-row state
  size_t chan_w;
  int samp_cap; // rows kept per group in this pass: min(rows asked, this device's rows); 0: none
  buf stats, hist, tmp; // stats: min [groups] f32, max [groups] f32, sum [groups] f64, sum of squares [groups] f64
  // the MoE block over all rows: normed input, output, router logits, top-k; a wave's expert rows; the plan
  buf xa, mo, logits, sel, wts, xe, eg, eu, ye, tab;
  moe_plan m;
  buf wt;  // a transposed weight as it arrives (set_weight); a weight converted to float32 (scale_weight)
  buf scl; // scale_weight's column and row scales
  buf ds; // deepstack rows and features (add_rows)
  // m6's search (device 0): X, W, their fake-quantized scaled copies, the product, the reference, s, row errors
  buf fx, fw, fxs, fws, fy, fref, fs, ferr;
  int f_rows, f_n, f_out;
  // m2's search (device 0) besides: z, the biases [reference, plain, shifted][out], down_proj and its bias, the
  // block's output, RoPE tables, q_norm and k_norm, min / max partials; the targets, the rows' sequences (host)
  buf fz, fb, fd, fdb, fo, fcos, fsin, fqk, fmm;
  int f_attn, f_nt, f_outs[3], f_hasb[3], f_has_db, f_nseq, *f_seq;
  // the other row set (the smoothing's, --anti_data) while the passes run on this one: swap_rows exchanges them
  struct {
    int on, cur; // cur: the passes run on the second set now (its rows are above, the calibration rows here)
    int total, n_seqs, *seq_start, R;
    buf h, cos_t, sin_t;
  } alt;
} ctx;

#define MAX_DEV 16
static ctx g_ctx[MAX_DEV];
static int g_ndev = 1, g_dev_ids[MAX_DEV];
static int g_host_merge; // a device named twice (CSLIM_CUDA_SHARES): statistics merged through host memory
static int g_row0[MAX_DEV + 1]; // device i holds rows [g_row0[i], g_row0[i + 1])
static int g_row0_alt[MAX_DEV + 1]; // ... of the other row set
static thread_local ctx *cur = &g_ctx[0];
#define G (*cur)

static void use(int i) {
  cur = &g_ctx[i];
  cudaSetDevice(cur->dev);
}

// at least `bytes` (contents not kept)
static int grow(buf *b, size_t bytes) {
  if (bytes <= b->cap) return 0;
  if (b->p) {
    cudaFree(b->p);
    G.mem_now -= b->cap;
  }
  b->p = NULL;
  b->cap = 0;
  bytes = (bytes + 255) & ~(size_t)255;
  if (cudaMalloc(&b->p, bytes) != cudaSuccess)
    return fail("out of GPU memory on cuda:%d (%.1f MB more, %.1f MB held)", G.dev, bytes / 1e6, G.mem_now / 1e6);
  b->cap = bytes;
  G.mem_now += bytes;
  if (G.mem_now > G.mem_peak) G.mem_peak = G.mem_now;
  return 0;
}

static void drop(buf *b) {
  if (b->p) {
    cudaFree(b->p);
    G.mem_now -= b->cap;
  }
  b->p = NULL;
  b->cap = 0;
}


// ---- kernels --------------------------------------------------------------------------------------

__device__ __forceinline__ float load_w(const void *w, int dtype, size_t i) {
  if (dtype == CSLIM_GPU_BF16) return __bfloat162float(((const __nv_bfloat16 *)w)[i]);
  if (dtype == CSLIM_GPU_F16) return __half2float(((const __half *)w)[i]);
  return ((const float *)w)[i];
}

__device__ __forceinline__ float round_serve(float v, int serve) {
  if (serve == CSLIM_GPU_BF16) return __bfloat162float(__float2bfloat16_rn(v));
  if (serve == CSLIM_GPU_F16) return __half2float(__float2half_rn(v));
  return v;
}

// dst [cols, rows] = src [rows, cols]ᵀ, 32 x 32 tiles (blocks of 32 x 8 threads)
template <typename T> __global__ void k_transpose(const T *src, int rows, int cols, T *dst) {
  __shared__ T tile[32][33];
  const int c0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
  for (int j = threadIdx.y; j < 32; j += 8)
    if (r0 + j < rows && c0 + (int)threadIdx.x < cols) tile[j][threadIdx.x] = src[(size_t)(r0 + j) * cols + c0 + threadIdx.x];
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += 8)
    if (c0 + j < cols && r0 + (int)threadIdx.x < rows) dst[(size_t)(c0 + j) * rows + r0 + threadIdx.x] = tile[threadIdx.x][j];
}

// h[rows[i]][:] += x[i][:] (the CPU's cslim_add_inplace: one float add per element)
__global__ void k_add_rows(float *h, int H, const int *rows, const float *x, int n) {
  const size_t total = (size_t)n * H;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
    h[(size_t)rows[i / H] * H + i % H] += x[i];
}

__global__ void k_to_f32(const void *w, int dtype, size_t n, float *y) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = load_w(w, dtype, i);
}

// w [out, in] · diag(col_mul), then row o times 1 / row_div[o] (either NULL): the host's scale_cols / div_rows
// (quant/transform.c), the same float32 operations
__global__ void k_scale_weight(float *w, int out, int in, const float *col_mul, const float *row_div) {
  const size_t n = (size_t)out * in;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float v = w[i];
    if (col_mul) v *= col_mul[i % in];
    if (row_div) v *= 1.0f / row_div[i / in];
    w[i] = v;
  }
}

__global__ void k_to_bf16(const void *w, int dtype, size_t n, __nv_bfloat16 *y) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = __float2bfloat16_rn(load_w(w, dtype, i));
}

// block-wide reductions (blockDim.x a multiple of 32, at most 1024)
template <typename T, typename Op> __device__ T block_reduce(T v, Op op, T *sh, T identity) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < nw ? sh[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  T r = sh[0];
  __syncthreads();
  return r;
}

struct op_add_d { __device__ double operator()(double a, double b) const { return a + b; } };
struct op_add_f { __device__ float operator()(float a, float b) const { return a + b; } };
struct op_add_l { __device__ long long operator()(long long a, long long b) const { return a + b; } };
struct op_max_f { __device__ float operator()(float a, float b) const { return b > a ? b : a; } };
struct op_min_f { __device__ float operator()(float a, float b) const { return b < a ? b : a; } };
struct op_or_i { __device__ int operator()(int a, int b) const { return a | b; } };

// y = w * (x * inv) per row, inv = 1 / sqrtf((float)(sum x^2 / n) + eps), then + b: a warp per row, the sum of
// squares in model/repro.h's double lanes (lane l adds elements l, l + 32, ...; lanes added in order)
static_assert(CSLIM_SQ_LANES == 32, "a warp's lanes are the sum's lanes");
__global__ void k_rmsnorm(const float *x, int rows, int n, const float *w, const float *b, float eps, float *y) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float *xr = x + (size_t)row * n;
  float *yr = y + (size_t)row * n;
  double part = 0;
  for (int i = lane; i < n; i += CSLIM_SQ_LANES) part = part + (double)xr[i] * (double)xr[i];
  double ss = 0;
  for (int l = 0; l < CSLIM_SQ_LANES; l++) ss = ss + __shfl_sync(0xffffffffu, part, l);
  float var = (float)(ss / n);
  float inv = 1.0f / sqrtf(var + eps);
  for (int i = lane; i < n; i += CSLIM_SQ_LANES) {
    float v = w[i] * (xr[i] * inv);
    if (b) v += b[i];
    yr[i] = v;
  }
}

static void rmsnorm(const float *x, int rows, int n, const float *w, const float *b, float eps, float *y) {
  k_rmsnorm<<<(rows + 7) / 8, 256, 0, G.st>>>(x, rows, n, w, b, eps, y);
}

// x' = x cos + rotate_half(x) sin over rows [rows, n_heads, D]; tables [rows, D/2]
__global__ void k_rope(float *x, int rows, int n_heads, int D, const float *cos_t, const float *sin_t) {
  int half = D / 2;
  size_t n = (size_t)rows * n_heads * half;
  for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
    int i = (int)(t % half);
    size_t rh = t / half;
    size_t r = rh / n_heads;
    float *v = x + rh * D;
    float c = cos_t[r * half + i], s = sin_t[r * half + i];
    float a = v[i], b2 = v[i + half];
    v[i] = a * c + (-b2) * s;
    v[i + half] = b2 * c + a * s;
  }
}

// causal softmax over rows of S: block per row; row r of head-major [nh][m][kn], query i = r % m sees i0 + i + 1 keys.
// cslim_expf; ordered (fp32 GEMMs): one thread sums the row in key order, the CPU's sum (model/repro.h); else (the
// tensor-core modes, which are not the CPU's bits anyway) a parallel sum.
__global__ void k_softmax(float *S, int m, int kn, int i0, int ordered) {
  __shared__ float shf[32];
  int i = blockIdx.x % m;
  float *row = S + (size_t)blockIdx.x * kn;
  int valid = i0 + i + 1;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) mx = row[j] > mx ? row[j] : mx;
  mx = block_reduce(mx, op_max_f(), shf, -INFINITY);
  float part = 0.0f;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) part += row[j] = cslim_expf(row[j] - mx);
  float sum;
  if (ordered) {
    __syncthreads();
    if (threadIdx.x == 0) {
      sum = 0.0f;
      for (int j = 0; j < valid; j++) sum += row[j];
      shf[0] = sum;
    }
    __syncthreads();
    sum = shf[0];
  } else {
    sum = block_reduce(part, op_add_f(), shf, 0.0f);
  }
  for (int j = threadIdx.x; j < kn; j += blockDim.x) row[j] = j < valid ? row[j] / sum : 0.0f;
}

// router probabilities, top-k and weights: one thread per row, the CPU's function (model/routing.h)
__global__ void k_route(float *logits, int rows, int E, int K, int norm, int *sel, float *wts) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < rows) cslim_route_token(logits + (size_t)r * E, E, K, norm, sel + (size_t)r * K, wts + (size_t)r * K);
}

// y[r] = x[idx[r]], or zeros where idx[r] < 0 (an expert's padding)
__global__ void k_gather(const float *x, int H, const int *idx, int n, float *y) {
  size_t total = (size_t)n * H;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const int t = idx[i / H];
    y[i] = t < 0 ? 0.0f : x[(size_t)t * H + i % H];
  }
}

// out[t] += y[p] * w for each of token t's padded rows p (pos[t K ..], ascending expert) inside this wave's rows
// [p0, p1): the product rounded before the add, token by token in expert order, as transformers and the CPU
__global__ void k_combine(const float *y, int H, const int *pos, const float *w, int T, int K, int p0, int p1,
                          float *out) {
  size_t total = (size_t)T * H;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const size_t t = i / H;
    float acc = out[i];
    for (int j = 0; j < K; j++) {
      const int p = pos[t * K + j];
      if (p >= p0 && p < p1) {
        float prod = y[(size_t)(p - p0) * H + i % H] * w[t * K + j];
        acc += prod;
      }
    }
    out[i] = acc;
  }
}

__global__ void k_silu_mul(float *g, const float *u, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float z = g[i];
    g[i] = (z / (1.0f + cslim_expf(-z))) * u[i];
  }
}

__global__ void k_add(float *a, const float *b, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) a[i] += b[i];
}

// the parameters of row `row`'s Linear
__device__ __forceinline__ const lin_params *params_of(const lin_sel &s, size_t row) {
  return s.tab ? &s.tab[s.chunk_e[row / MOE_CHUNK]] : &s.one;
}

__global__ void k_add_bias(float *y, int rows, int n, lin_sel sel) {
  size_t total = (size_t)rows * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const float *b = params_of(sel, i / n)->bias;
    if (b) y[i] += b[i % n];
  }
}

__device__ void atomic_min_f(float *a, float v) {
  int *p = (int *)a, old = *p;
  while (v < __int_as_float(old)) {
    int prev = atomicCAS(p, old, __float_as_int(v));
    if (prev == old) break;
    old = prev;
  }
}

__device__ void atomic_max_f(float *a, float v) {
  int *p = (int *)a, old = *p;
  while (v > __int_as_float(old)) {
    int prev = atomicCAS(p, old, __float_as_int(v));
    if (prev == old) break;
    old = prev;
  }
}

// min (v < a ? v : a, as the CPU observer: a NaN does not move it), max, sum, sum of squares of x[0, n), block b of nb
__device__ void observe_block(const float *x, size_t n, unsigned b, unsigned nb, float *st_mn, float *st_mx,
                              double *st_sum, double *st_sq) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  float mn = INFINITY, mx = -INFINITY;
  double s = 0, q = 0;
  for (size_t i = b * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)nb * blockDim.x) {
    float v = x[i];
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
    s += v;
    q += (double)v * v;
  }
  mn = block_reduce(mn, op_min_f(), shf, INFINITY);
  mx = block_reduce(mx, op_max_f(), shf, -INFINITY);
  s = block_reduce(s, op_add_d(), shd, 0.0);
  q = block_reduce(q, op_add_d(), shd, 0.0);
  if (threadIdx.x == 0) {
    atomic_min_f(st_mn, mn);
    atomic_max_f(st_mx, mx);
    atomicAdd(st_sum, s);
    atomicAdd(st_sq, q);
  }
}

__global__ void k_observe(const float *x, size_t n, float *st_mn, float *st_mx, double *st_sum, double *st_sq) {
  observe_block(x, n, blockIdx.x, gridDim.x, st_mn, st_mx, st_sum, st_sq);
}

// each expert's rows of a wave (segment blockIdx.y) into its group 5 + 2 e + which; stats as in reset_stats
__global__ void k_observe_experts(const float *x, int width, const moe_seg *segs, int which, float *f, double *d, int ng) {
  const moe_seg sg = segs[blockIdx.y];
  const int g = 5 + 2 * sg.e + which;
  observe_block(x + (size_t)sg.row0 * width, (size_t)sg.n * width, blockIdx.x, gridDim.x, f + g, f + ng + g, d + g,
                d + ng + g);
}

// per-channel min / max over rows (threads across channels, blocks in y across rows)
__global__ void k_chstats(const float *x, int rows, int n, float *mn, float *mx) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= n) return;
  float a = INFINITY, b = -INFINITY;
  for (int r = blockIdx.y; r < rows; r += gridDim.y) {
    float v = x[(size_t)r * n + c];
    a = v < a ? v : a;
    b = v > b ? v : b;
  }
  atomic_min_f(&mn[c], a);
  atomic_max_f(&mx[c], b);
}

// per-channel min / max of each expert's rows of a wave (segment blockIdx.y; rows split over blockIdx.z) into
// mn = out + e * 2 * width, mx = mn + width
__global__ void k_chstats_experts(const float *x, int width, const moe_seg *segs, float *out) {
  const moe_seg sg = segs[blockIdx.y];
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= width) return;
  float a = INFINITY, b = -INFINITY;
  for (int r = blockIdx.z; r < sg.n; r += gridDim.z) {
    const float v = x[(size_t)(sg.row0 + r) * width + c];
    a = v < a ? v : a;
    b = v > b ? v : b;
  }
  float *mn = out + (size_t)sg.e * 2 * width;
  atomic_min_f(&mn[c], a);
  atomic_max_f(&mn[width + c], b);
}

__global__ void k_fill(float *p, size_t n, float v) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) p[i] = v;
}

__global__ void k_reset_stats(float *mn, float *mx, double *sum, double *sq, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) mn[i] = INFINITY, mx[i] = -INFINITY, sum[i] = 0.0, sq[i] = 0.0;
}

// torch.histc as cslim_observer_hist_update: bin = (int)((v - lo) * B / w), the maximum in the last bin; x[0, n),
// block b of nb, B bins of shared memory
__device__ void hist_block(const float *x, size_t n, unsigned blk, unsigned nb, double lo, double hi, int B,
                           unsigned long long *counts) {
  extern __shared__ unsigned long long shh[];
  for (int b = threadIdx.x; b < B; b += blockDim.x) shh[b] = 0;
  __syncthreads();
  const double w = hi - lo;
  for (size_t i = blk * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)nb * blockDim.x) {
    double v = x[i];
    if (!(w > 0)) {
      atomicAdd(&shh[0], 1ull);
      continue;
    }
    if (!(v >= lo && v <= hi)) continue;
    int b = (int)((v - lo) * B / w);
    if (b >= B) b = B - 1;
    atomicAdd(&shh[b], 1ull);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < B; b += blockDim.x)
    if (shh[b]) atomicAdd(&counts[b], shh[b]);
}

__global__ void k_hist(const float *x, size_t n, double lo, double hi, int B, unsigned long long *counts) {
  hist_block(x, n, blockIdx.x, gridDim.x, lo, hi, B, counts);
}

// each expert's rows of a wave (segment blockIdx.y) into group 5 + 2 e + which's histogram (none: bins 0)
__global__ void k_hist_experts(const float *x, int width, const moe_seg *segs, int which, const hist_p *hp,
                               unsigned long long *counts) {
  const moe_seg sg = segs[blockIdx.y];
  const int g = 5 + 2 * sg.e + which;
  if (hp[g].bins > 0)
    hist_block(x + (size_t)sg.row0 * width, (size_t)sg.n * width, blockIdx.x, gridDim.x, hp[g].lo, hp[g].hi,
               hp[g].bins, counts + (size_t)g * 2048);
}

// per-channel symmetric min-max: block per row
// per-channel symmetric codes: block per row; scale max|w| / qmax, or given[row] (SSZ's result)
__global__ void k_wquant(const void *w, int dtype, int k, int qmax, const float *given, int8_t *codes, float *scale,
                         long long *rowsum, double *err, double *wsq, int *bad) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  __shared__ long long shl[32];
  __shared__ int shi[32];
  const size_t base = (size_t)blockIdx.x * k;
  float a = 0;
  int nonfinite = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    float v = load_w(w, dtype, base + j);
    if (!isfinite(v)) nonfinite = 1;
    else a = fabsf(v) > a ? fabsf(v) : a;
  }
  a = block_reduce(a, op_max_f(), shf, 0.0f);
  nonfinite = block_reduce(nonfinite, op_or_i(), shi, 0);
  if (nonfinite) {
    if (threadIdx.x == 0) bad[blockIdx.x] = 1;
    return;
  }
  float s = a / (float)qmax;
  if (!(s >= FLT_EPSILON)) s = FLT_EPSILON;
  if (given) s = given[blockIdx.x];
  double e = 0, ww = 0;
  long long sum = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    float v = load_w(w, dtype, base + j);
    float r = rintf(v / s);
    r = r < (float)(-qmax - 1) ? (float)(-qmax - 1) : r > (float)qmax ? (float)qmax : r;
    codes[base + j] = (int8_t)r;
    sum += (long long)r;
    float d = v - r * s;
    e += (double)d * d;
    ww += (double)v * v;
  }
  e = block_reduce(e, op_add_d(), shd, 0.0);
  ww = block_reduce(ww, op_add_d(), shd, 0.0);
  sum = block_reduce(sum, op_add_l(), shl, 0LL);
  if (threadIdx.x == 0) {
    bad[blockIdx.x] = 0;
    scale[blockIdx.x] = s;
    rowsum[blockIdx.x] = sum;
    err[blockIdx.x] = e;
    wsq[blockIdx.x] = ww;
  }
}

// SSZ (cslim_wq_ssz), one iteration for every row: s = <w, q> / <q, q> (a degenerate row keeps its
// scale), codes again, the row's mean squared error, and whether it stopped improving
__global__ void k_ssz_iter(const void *w, int dtype, int k, int qmax, int8_t *q, float *cur_s, const double *best,
                           double *mse, int *not_converged) {
  __shared__ double shd[32];
  const size_t base = (size_t)blockIdx.x * k;
  double wq = 0, qq = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    double v = load_w(w, dtype, base + j), c = q[base + j];
    wq += v * c;
    qq += c * c;
  }
  wq = block_reduce(wq, op_add_d(), shd, 0.0);
  qq = block_reduce(qq, op_add_d(), shd, 0.0);
  double sd = wq / (qq > 1e-30 ? qq : 1e-30);
  const float s = sd >= FLT_EPSILON ? (float)sd : cur_s[blockIdx.x];
  double e = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    float v = load_w(w, dtype, base + j);
    float r = rintf(v / s);
    r = r < (float)(-qmax - 1) ? (float)(-qmax - 1) : r > (float)qmax ? (float)qmax : r;
    q[base + j] = (int8_t)r;
    double d = (double)v - (double)r * (double)s;
    e += d * d;
  }
  e = block_reduce(e, op_add_d(), shd, 0.0);
  if (threadIdx.x == 0) {
    cur_s[blockIdx.x] = s;
    const double m = e / k, b = best[blockIdx.x], gain = b - m;
    mse[blockIdx.x] = m;
    if (!(gain / (b > 1e-4 ? b : 1e-4) < 1e-10 || fabs(gain) < 1e-10)) *not_converged = 1;
  }
}

// the row MSE of codes q at scale s (SSZ's starting point)
__global__ void k_row_mse(const void *w, int dtype, int k, const int8_t *q, const float *s, double *mse) {
  __shared__ double shd[32];
  const size_t base = (size_t)blockIdx.x * k;
  double e = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    double d = (double)load_w(w, dtype, base + j) - (double)q[base + j] * (double)s[blockIdx.x];
    e += d * d;
  }
  e = block_reduce(e, op_add_d(), shd, 0.0);
  if (threadIdx.x == 0) mse[blockIdx.x] = e / k;
}

// keep each row's improvement
__global__ void k_ssz_keep(int n, const double *mse, const float *cur_s, double *best, float *best_s) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < n && mse[r] < best[r]) best[r] = mse[r], best_s[r] = cur_s[r];
}

// npu_quantize: clamp(round(x * r + o)) per tensor, x [rows, k]
__global__ void k_quant_static(const float *x, int rows, int k, lin_sel sel, int8_t *q) {
  size_t n = (size_t)rows * k;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const lin_params *p = params_of(sel, i / k);
    float v = rintf(x[i] * p->r + p->o);
    q[i] = (int8_t)(v < -128.f ? -128.f : v > 127.f ? 127.f : v);
  }
}

// npu_dynamic_quant: per row s = max|x| / 127, q = round(x / s); block per row
__global__ void k_quant_dynamic(const float *x, int k, int8_t *q, float *rs) {
  __shared__ float shf[32];
  const float *xr = x + (size_t)blockIdx.x * k;
  int8_t *qr = q + (size_t)blockIdx.x * k;
  float a = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) a = fabsf(xr[j]) > a ? fabsf(xr[j]) : a;
  a = block_reduce(a, op_max_f(), shf, 0.0f);
  float s = a / 127.0f;
  if (threadIdx.x == 0) rs[blockIdx.x] = s;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    float v = s > 0 ? rintf(xr[j] / s) : 0.0f;
    qr[j] = (int8_t)(v < -128.f ? -128.f : v > 127.f ? 127.f : v);
  }
}

__global__ void k_dequant_static(const int *acc, int rows, int n, lin_sel sel, int serve, float *y) {
  size_t total = (size_t)rows * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const lin_params *p = params_of(sel, i / n);
    int o = (int)(i % n);
    float v = (float)(acc[i] + p->qbias[o]) * p->deq[o];
    if (p->bias) v += p->bias[o];
    y[i] = round_serve(v, serve);
  }
}

__global__ void k_dequant_dynamic(const int *acc, int rows, int n, lin_sel sel, const float *rs, int serve, float *y) {
  size_t total = (size_t)rows * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    int o = (int)(i % n);
    size_t r = i / n;
    const lin_params *p = params_of(sel, r);
    float v = (float)acc[i] * p->wscale[o] * rs[r];
    if (p->bias) v += p->bias[o];
    y[i] = round_serve(v, serve);
  }
}

__global__ void k_bias_round(float *y, int rows, int n, lin_sel sel, int serve) {
  size_t total = (size_t)rows * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const float *b = params_of(sel, i / n)->bias;
    float v = y[i];
    if (b) v += b[i % n];
    y[i] = round_serve(v, serve);
  }
}

// W8A16's weights as the runtime makes them: round_to_dtype(q * scale)
__global__ void k_w8a16_weights(const int8_t *q, int n, int k, const float *wscale, int serve, float *w) {
  size_t total = (size_t)n * k;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
    w[i] = round_serve((float)q[i] * wscale[i / k], serve);
}

// acc[rows, n] = xq[rows, k] . w[n, k]^T, exact; for shapes cuBLAS's int8 path refuses. With pointer tables
// (tab: weights, inputs, outputs, nch each) chunk blockIdx.z's.
__global__ void k_igemm(const int8_t *x, const int8_t *w, int rows, int n, int k, int *acc, void *const *tab, int nch) {
  int o = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y, z = blockIdx.z;
  if (tab) w = (const int8_t *)tab[z], x = (const int8_t *)tab[nch + z], acc = (int *)tab[2 * nch + z];
  if (o >= n) return;
  const int8_t *xr = x + (size_t)r * k, *wr = w + (size_t)o * k;
  int s = 0;
  for (int j = 0; j < k; j++) s += (int)xr[j] * (int)wr[j];
  acc[(size_t)r * n + o] = s;
}

static unsigned grid_for(size_t n) {
  size_t b = (n + 255) / 256;
  return (unsigned)(b > 65535 * 4 ? 65535 * 4 : b ? b : 1);
}

// ---- GEMMs -------------------------------------------------------------------------------------------

// y[rows, n] = x[rows, k] . wf[n, k]^T from float32 weights: the ordered product with fp32 GEMMs (the CPU's bits),
// else cuBLAS on TF32 tensor cores
static int product_f32(const float *wf, int n, int k, const float *x, int rows, float *y) {
  if (G.d.gemm == CSLIM_GEMM_FP32) {
    gemm_ordered_launch(G.st, 1, 1, rows, n, k, 1.0f, x, k, 0, wf, k, 0, 1, y, n, 0);
    return 0;
  }
  const float one = 1.0f, zero = 0.0f;
  CB(cublasGemmEx(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &one, wf, CUDA_R_32F, k, x, CUDA_R_32F, k, &zero, y,
                  CUDA_R_32F, n, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
  return 0;
}

// the weights the float GEMMs read: bf16 for bf16 GEMMs, else float32, converted from the checkpoint's dtype once
// per upload (NULL: out of memory)
static const void *float_weights(slot *s) {
  const size_t nw = (size_t)s->out * s->in;
  const void *w = s->w.p;
  if (G.d.gemm == CSLIM_GEMM_BF16) {
    if (s->dtype != CSLIM_GPU_BF16) {
      if ((s->fresh || !s->wb.p) && !grow(&s->wb, nw * 2))
        k_to_bf16<<<grid_for(nw), 256, 0, G.st>>>(s->w.p, s->dtype, nw, (__nv_bfloat16 *)s->wb.p);
      w = s->wb.p;
    }
  } else {
    if ((s->fresh || !s->wf.p) && !grow(&s->wf, nw * 4))
      k_to_f32<<<grid_for(nw), 256, 0, G.st>>>(s->w.p, s->dtype, nw, F(s->wf));
    w = s->wf.p;
  }
  s->fresh = 0;
  return w;
}

// x [n floats] in bf16 (G.xb)
static int to_bf16(const float *x, size_t n) {
  TRY(grow(&G.xb, n * 2));
  k_to_bf16<<<grid_for(n), 256, 0, G.st>>>(x, CSLIM_GPU_F32, n, (__nv_bfloat16 *)G.xb.p);
  return 0;
}

// the parameters a Linear's kernels read around its GEMM (float, or quantized as set_qlinear said): the float bias
// where they add it (a static Linear's is folded into qbias unless bias_after), the quantization parameters
static lin_sel slot_sel(const slot *s, int quantized) {
  const int kind = quantized ? s->p.kind : CSLIM_GPU_LIN_FLOAT;
  const int bias = s->has_bias && (kind != CSLIM_GPU_LIN_STATIC || s->p.bias_after);
  lin_sel r = {{(const int *)s->qbias.p, F(s->deq), F(s->wscale), bias ? F(s->bias) : NULL, s->p.in_recip,
                s->p.in_offset},
               NULL, NULL};
  return r;
}

// y[rows, out] = x[rows, in] . W[out, in]^T in float (fp32, TF32 or bf16 inputs; float32 accumulation)
static int gemm_float(slot *s, const float *x, int rows, float *y) {
  const void *w = float_weights(s);
  if (!w) return -1;
  if (G.d.gemm == CSLIM_GEMM_BF16) {
    const float one = 1.0f, zero = 0.0f;
    TRY(to_bf16(x, (size_t)rows * s->in));
    CB(cublasGemmEx(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, s->out, rows, s->in, &one, w, CUDA_R_16BF, s->in, G.xb.p,
                    CUDA_R_16BF, s->in, &zero, y, CUDA_R_32F, s->out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    TRY(product_f32((const float *)w, s->out, s->in, x, rows, y));
  }
  if (s->has_bias) k_add_bias<<<grid_for((size_t)rows * s->out), 256, 0, G.st>>>(y, rows, s->out, slot_sel(s, 0));
  return 0;
}

static int gemm_int8(const int8_t *xq, const int8_t *w, int rows, int n, int k, int *acc) {
  const int one = 1, zero = 0;
  cublasStatus_t st = CUBLAS_STATUS_NOT_SUPPORTED;
  if (k % 4 == 0)
    st = cublasGemmEx(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &one, w, CUDA_R_8I, k, xq, CUDA_R_8I, k, &zero,
                      acc, CUDA_R_32I, n, CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    dim3 grid((unsigned)((n + 127) / 128), (unsigned)rows);
    k_igemm<<<grid, 128, 0, G.st>>>(xq, w, rows, n, k, acc, NULL, 0);
  }
  return 0;
}

// The kinds of product gemm_tables runs: float weights as the GEMM mode reads them (bf16 inputs in bf16 mode), float32
// weights (W8A16's dequantized ones: ordered, or TF32), int8 codes (exact int32 sums).
enum { GT_FLOAT, GT_F32, GT_INT8 };

// y[c] = x[c] . w[c]^T, [MOE_CHUNK, k] . [n, k]^T, for the nch chunks of the device pointer table t (weights t[c],
// inputs t[nch + c], outputs t[2 nch + c]): one launch
static int gemm_tables(int kind, void *const *t, int nch, int n, int k) {
  const float one = 1.0f, zero = 0.0f;
  if (kind == GT_INT8) {
    const int ione = 1, izero = 0;
    cublasStatus_t st = CUBLAS_STATUS_NOT_SUPPORTED;
    if (k % 4 == 0)
      st = cublasGemmBatchedEx(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, MOE_CHUNK, k, &ione, t, CUDA_R_8I, k, t + nch,
                               CUDA_R_8I, k, &izero, t + 2 * nch, CUDA_R_32I, n, nch, CUBLAS_COMPUTE_32I,
                               CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) {
      dim3 grid((unsigned)((n + 127) / 128), MOE_CHUNK, (unsigned)nch);
      k_igemm<<<grid, 128, 0, G.st>>>(NULL, NULL, MOE_CHUNK, n, k, NULL, t, nch);
    }
    return 0;
  }
  if (kind == GT_FLOAT && G.d.gemm == CSLIM_GEMM_BF16) {
    CB(cublasGemmBatchedEx(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, MOE_CHUNK, k, &one, t, CUDA_R_16BF, k, t + nch,
                           CUDA_R_16BF, k, &zero, t + 2 * nch, CUDA_R_32F, n, nch, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT));
  } else if (G.d.gemm == CSLIM_GEMM_FP32) {
    gemm_ordered_tables(G.st, nch, MOE_CHUNK, n, k, (const float *const *)(t + nch), (const float *const *)t,
                        (float *const *)(t + 2 * nch));
  } else {
    CB(cublasGemmBatchedEx(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, MOE_CHUNK, k, &one, t, CUDA_R_32F, k, t + nch,
                           CUDA_R_32F, k, &zero, t + 2 * nch, CUDA_R_32F, n, nch, CUBLAS_COMPUTE_32F_FAST_TF32,
                           CUBLAS_GEMM_DEFAULT));
  }
  return 0;
}

// The work around a quantized GEMM, shared by one Linear (sel.one) and a wave of experts (sel.tab): x [rows, k] to
// int8 codes in G.xq (static: per tensor; dynamic: per row, scales in G.rs), and the int32 sums in G.acc back to y.
static void quantize_rows(int kind, const float *x, int rows, int k, lin_sel sel) {
  if (kind == CSLIM_GPU_LIN_STATIC)
    k_quant_static<<<grid_for((size_t)rows * k), 256, 0, G.st>>>(x, rows, k, sel, (int8_t *)G.xq.p);
  else
    k_quant_dynamic<<<rows, 256, 0, G.st>>>(x, k, (int8_t *)G.xq.p, F(G.rs));
}

static void dequantize_rows(int kind, int rows, int n, lin_sel sel, float *y) {
  const size_t ny = (size_t)rows * n;
  if (kind == CSLIM_GPU_LIN_STATIC)
    k_dequant_static<<<grid_for(ny), 256, 0, G.st>>>((const int *)G.acc.p, rows, n, sel, G.d.serve, y);
  else
    k_dequant_dynamic<<<grid_for(ny), 256, 0, G.st>>>((const int *)G.acc.p, rows, n, sel, F(G.rs), G.d.serve, y);
}

// the Linear in slot `si` on rows of x: float, or as the serving engine computes it
static int linear(int si, int quantized, const float *x, int rows, float *y) {
  slot *s = &G.s[si];
  if (!s->loaded) return fail("slot %d has no weights", si);
  if (!quantized || s->p.kind == CSLIM_GPU_LIN_FLOAT) return gemm_float(s, x, rows, y);
  const int n = s->out, k = s->in;
  const lin_sel sel = slot_sel(s, 1);
  if (s->p.kind == CSLIM_GPU_LIN_W8A16) {
    TRY(product_f32(F(s->wf), n, k, x, rows, y));
    k_bias_round<<<grid_for((size_t)rows * n), 256, 0, G.st>>>(y, rows, n, sel, G.d.serve);
    return 0;
  }
  TRY(grow(&G.xq, (size_t)rows * k));
  TRY(grow(&G.acc, (size_t)rows * n * 4));
  TRY(grow(&G.rs, (size_t)rows * 4));
  quantize_rows(s->p.kind, x, rows, k, sel);
  TRY(gemm_int8((const int8_t *)G.xq.p, (const int8_t *)s->q.p, rows, n, k, (int *)G.acc.p));
  dequantize_rows(s->p.kind, rows, n, sel, y);
  return 0;
}

// ---- attention ------------------------------------------------------------------------------------------

#define SCORE_BUDGET ((size_t)64 << 20) /* floats of scores at a time (256 MB) */

// The TF32 attention GEMMs' pointer tables for ns sequences x nh heads (z = s nh + h): scores A = K of s's kv head
// h / rep, B = Q of s's head h (from query row i0), C = S[z]; values A = V, B = S[z], C = out (from row i0)
__global__ void k_attn_tables(const float *q, const float *k, const float *v, float *S, float *out, int ns, int nh,
                              int rep, int D, long long sq, long long sk, long long hs, const void **t) {
  const int Z = ns * nh, z = blockIdx.x * blockDim.x + threadIdx.x;
  if (z >= Z) return;
  const int s = z / nh, h = z % nh;
  t[z] = k + s * sk + (size_t)(h / rep) * D;
  t[Z + z] = q + s * sq + (size_t)h * D;
  t[2 * Z + z] = S + z * hs;
  t[3 * Z + z] = v + s * sk + (size_t)(h / rep) * D;
  t[4 * Z + z] = S + z * hs;
  t[5 * Z + z] = out + s * sq + (size_t)h * D;
}

// causal GQA attention of ns sequences of n rows each, one after the other: q [ns n, nh*D], k, v [ns n, nkv*D] ->
// out [ns n, nh*D]; scores [ns][nh][m][kn] for blocks of m queries (ns > 1: the caller keeps whole sequences within
// SCORE_BUDGET). fp32: ordered products, the CPU's bits; else TF32 tensor cores. One launch per product for them all.
static int attention(const float *q, const float *k, const float *v, int n, int ns, float *out) {
  const int D = G.d.head_dim, nh = G.d.n_heads, nkv = G.d.n_kv_heads, rep = nh / nkv, Z = ns * nh;
  const int ldq = nh * D, ldk = nkv * D;
  const long long sq = (long long)n * ldq, sk = (long long)n * ldk;
  const float scale = (float)(1.0 / sqrt((double)D)), one = 1.0f, zero = 0.0f;
  const int ordered = G.d.gemm == CSLIM_GEMM_FP32;
  int qb = n;
  if ((size_t)Z * qb * n > SCORE_BUDGET) qb = (int)(SCORE_BUDGET / ((size_t)Z * n)) > 16 ? (int)(SCORE_BUDGET / ((size_t)Z * n)) : 16;
  TRY(grow(&G.S, (size_t)Z * qb * n * 4));
  if (!ordered) TRY(grow(&G.aptr, (size_t)6 * Z * sizeof(void *)));
  float *S = F(G.S);
  const void **t = (const void **)G.aptr.p;
  for (int i0 = 0; i0 < n; i0 += qb) {
    const int m = n - i0 < qb ? n - i0 : qb, kn = i0 + m;
    const long long hs = (long long)m * kn; // one head's scores
    const float *qi = q + (size_t)i0 * ldq;
    float *oi = out + (size_t)i0 * ldq;
    if (ordered) {
      gemm_ordered_batches(G.st, 1, ns, nh, m, kn, D, scale, qi, ldq, D, sq, k, ldk, D, sk, rep, S, kn, hs, nh * hs);
    } else {
      k_attn_tables<<<(Z + 127) / 128, 128, 0, G.st>>>(qi, k, v, S, oi, ns, nh, rep, D, sq, sk, hs, t);
      CB(cublasGemmBatchedEx(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, kn, m, D, &scale, t, CUDA_R_32F, ldk, t + Z, CUDA_R_32F,
                             ldq, &zero, (void *const *)(t + 2 * Z), CUDA_R_32F, kn, Z, CUBLAS_COMPUTE_32F_FAST_TF32,
                             CUBLAS_GEMM_DEFAULT));
    }
    k_softmax<<<Z * m, 128, 0, G.st>>>(S, m, kn, i0, ordered);
    if (ordered)
      gemm_ordered_batches(G.st, 0, ns, nh, m, D, kn, 1.0f, S, kn, hs, nh * hs, v, ldk, D, sk, rep, oi, ldq, D, sq);
    else
      CB(cublasGemmBatchedEx(G.blas, CUBLAS_OP_N, CUBLAS_OP_N, D, m, kn, &one, t + 3 * Z, CUDA_R_32F, ldk, t + 4 * Z,
                             CUDA_R_32F, kn, &zero, (void *const *)(t + 5 * Z), CUDA_R_32F, ldq, Z,
                             CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
  }
  return 0;
}

// ---- the layer ---------------------------------------------------------------------------------------------

static int group_width(int group) {
  const int w[4] = {G.d.hidden, G.d.n_heads * G.d.head_dim, G.d.hidden, G.d.inter};
  return group < 4 ? w[group] : 0;
}

static int observe(int pass, int group, const float *x, size_t n, cslim_gpu_hist *h) {
  if (pass < 0 || n == 0) return 0; // quantized pass: nothing observed
  if (pass == CSLIM_GPU_PASS_CHANNELS) {
    const int w = group_width(group);
    if (!w) return 0;
    const int rows = (int)(n / (size_t)w);
    float *mn = F(G.chan) + (size_t)group * 2 * G.chan_w, *mx = mn + G.chan_w;
    dim3 grid((unsigned)((w + 255) / 256), (unsigned)(rows < 64 ? rows : 64));
    k_chstats<<<grid, 256, 0, G.st>>>(x, rows, w, mn, mx);
  } else if (pass == CSLIM_GPU_PASS_STATS) {
    const int ng = G.n_groups;
    float *f = (float *)G.stats.p;
    double *d = (double *)((char *)G.stats.p + (size_t)8 * ng);
    k_observe<<<grid_for(n) < 1024 ? grid_for(n) : 1024, 256, 0, G.st>>>(x, n, f + group, f + ng + group, d + group,
                                                                         d + ng + group);
  } else if (h[group].bins > 0) {
    unsigned long long *c = (unsigned long long *)G.hist.p + (size_t)group * 2048;
    k_hist<<<grid_for(n) < 1024 ? grid_for(n) : 1024, 256, (size_t)h[group].bins * 8, G.st>>>(
        x, n, h[group].lo, h[group].hi, h[group].bins, c);
  }
  return 0;
}

// the channel pass keeps the first samp_cap rows of each group's input (this device's rows r0.. of x)
static int keep_sample(int pass, int group, int r0, const float *x, int rows) {
  if (pass != CSLIM_GPU_PASS_CHANNELS || r0 >= G.samp_cap) return 0;
  const int w = group_width(group), n = G.samp_cap - r0 < rows ? G.samp_cap - r0 : rows;
  float *dst = F(G.samp) + ((size_t)group * G.samp_cap + (size_t)r0) * G.chan_w;
  CK(cudaMemcpy2DAsync(dst, G.chan_w * 4, x, (size_t)w * 4, (size_t)w * 4, (size_t)n, cudaMemcpyDeviceToDevice, G.st));
  return 0;
}

// attention of a group of whole sequences s0..s1-1 on the stream hb (the float passes: a copy)
static int attn_rows(int pass, int s0, int s1, float *hb, cslim_gpu_hist *hist) {
  const int H = G.d.hidden, D = G.d.head_dim, nh = G.d.n_heads, nkv = G.d.n_kv_heads;
  const int r0 = G.seq_start[s0], rows = G.seq_start[s1] - r0, quant = pass < 0;
  const size_t nH = (size_t)rows * H;
  float *h = hb + (size_t)r0 * H;
  const float *cs = F(G.cos_t) + (size_t)r0 * (D / 2), *sn = F(G.sin_t) + (size_t)r0 * (D / 2);
  rmsnorm(h, rows, H, F(G.norm[0]), G.has_norm_b[0] ? F(G.norm[1]) : NULL, G.d.eps, F(G.xn));
  TRY(observe(pass, 0, F(G.xn), nH, hist));
  TRY(keep_sample(pass, 0, r0, F(G.xn), rows));
  TRY(linear(0, quant, F(G.xn), rows, F(G.q)));
  TRY(linear(1, quant, F(G.xn), rows, F(G.k)));
  TRY(linear(2, quant, F(G.xn), rows, F(G.v)));
  rmsnorm(F(G.q), rows * nh, D, F(G.norm[4]), NULL, G.d.eps, F(G.q));
  rmsnorm(F(G.k), rows * nkv, D, F(G.norm[5]), NULL, G.d.eps, F(G.k));
  k_rope<<<grid_for((size_t)rows * nh * D / 2), 256, 0, G.st>>>(F(G.q), rows, nh, D, cs, sn);
  k_rope<<<grid_for((size_t)rows * nkv * D / 2), 256, 0, G.st>>>(F(G.k), rows, nkv, D, cs, sn);
  for (int s = s0; s < s1;) { // runs of sequences of one length, as many as the score budget holds at once
    const size_t off = (size_t)(G.seq_start[s] - r0);
    const int n = G.seq_start[s + 1] - G.seq_start[s];
    const size_t fit = SCORE_BUDGET / ((size_t)nh * n * n);
    int e = s + 1;
    while (e < s1 && G.seq_start[e + 1] - G.seq_start[e] == n && (size_t)(e + 1 - s) <= fit) e++;
    TRY(attention(F(G.q) + off * nh * D, F(G.k) + off * nkv * D, F(G.v) + off * nkv * D, n, e - s,
                  F(G.ctx) + off * nh * D));
    s = e;
  }
  TRY(observe(pass, 1, F(G.ctx), (size_t)rows * nh * D, hist));
  TRY(keep_sample(pass, 1, r0, F(G.ctx), rows));
  TRY(linear(3, quant, F(G.ctx), rows, F(G.o)));
  k_add<<<grid_for(nH), 256, 0, G.st>>>(h, F(G.o), nH);
  return 0;
}

// the dense MLP on rows [r0, r0 + rows) of hb
static int mlp_rows(int pass, int r0, int rows, float *hb, cslim_gpu_hist *hist) {
  const int H = G.d.hidden, NI = G.d.inter, quant = pass < 0;
  const size_t nH = (size_t)rows * H;
  float *h = hb + (size_t)r0 * H;
  rmsnorm(h, rows, H, F(G.norm[2]), G.has_norm_b[1] ? F(G.norm[3]) : NULL, G.d.eps, F(G.xn));
  TRY(observe(pass, 2, F(G.xn), nH, hist));
  TRY(keep_sample(pass, 2, r0, F(G.xn), rows));
  TRY(linear(4, quant, F(G.xn), rows, F(G.g)));
  TRY(linear(5, quant, F(G.xn), rows, F(G.u)));
  k_silu_mul<<<grid_for((size_t)rows * NI), 256, 0, G.st>>>(F(G.g), F(G.u), (size_t)rows * NI);
  TRY(observe(pass, 3, F(G.g), (size_t)rows * NI, hist));
  TRY(keep_sample(pass, 3, r0, F(G.g), rows));
  if (quant) { // the float passes need nothing after down_proj's input
    TRY(linear(6, quant, F(G.g), rows, F(G.o)));
    k_add<<<grid_for(nH), 256, 0, G.st>>>(h, F(G.o), nH);
  }
  return 0;
}

// ---- the MoE block -----------------------------------------------------------------------------------------
//
// Experts run grouped. The rows routed to an expert (ascending, as the CPU) are gathered into a segment padded with
// zero rows to whole chunks of MOE_CHUNK; consecutive experts make a wave of about MOE_WAVE_FLOATS / hidden rows (an
// expert with more is a wave of its own), and each projection of a wave is one batched GEMM over the wave's chunks,
// each chunk with a pointer to its own expert's weights. The observers read each expert's real rows only; the weighted
// sum adds each token's experts in ascending id, the CPU's order, so fp32 runs keep the CPU's bits.

#define MOE_WAVE_FLOATS ((size_t)64 << 20) /* a wave's gathered input: rows x hidden floats (256 MB) */

// rows a wave takes: MOE_WAVE_FLOATS / hidden, or CSLIM_GPU_MOE_WAVE (bench/gpu_parity.sh tests several waves with it)
static int wave_rows(void) {
  const char *v = getenv("CSLIM_GPU_MOE_WAVE");
  const long rows = v && atol(v) > 0 ? atol(v) : (long)(MOE_WAVE_FLOATS / G.d.hidden);
  return rows > MOE_CHUNK ? (int)(rows / MOE_CHUNK * MOE_CHUNK) : MOE_CHUNK;
}

// an expert's rows padded to whole chunks
static int padded(int rows) { return (rows + MOE_CHUNK - 1) / MOE_CHUNK * MOE_CHUNK; }

// the slot of expert e's projection j (0 gate, 1 up, 2 down), as gpu_layer.h numbers them
static int expert_slot(int e, int j) { return 8 + 3 * e + j; }

static size_t take(size_t *off, size_t bytes) {
  const size_t at = (*off + 15) & ~(size_t)15;
  *off = at + bytes;
  return at;
}

// the kind of projection j (0 gate, 1 up, 2 down) of every expert with rows in this pass (CSLIM_GPU_LIN_*), or -1
// where they differ (then they run one at a time)
static int experts_kind(int j, int quant) {
  int kind = -2;
  for (int i = 0; i < G.m.n_segs; i++) {
    const slot *s = &G.s[expert_slot(G.m.segs[i].e, j)];
    const int k = quant ? s->p.kind : CSLIM_GPU_LIN_FLOAT;
    if (kind == -2) kind = k;
    else if (k != kind) return -1;
  }
  return kind;
}

// After routing (h_count, h_offs, h_tok, h_tw): the waves, the device buffers for the largest, and the tables,
// built here and uploaded at once.
static int plan_experts(int pass, const cslim_gpu_hist *hist) {
  moe_plan *m = &G.m;
  const int H = G.d.hidden, E = G.d.n_experts, K = G.d.top_k, NI = G.d.moe_inter, T = G.total, quant = pass < 0;
  const int budget = wave_rows();
  int p = 0, most = 0;
  m->n_segs = m->n_waves = 0;
  for (int e = 0; e < E; e++) {
    const int n = G.m.h_count[e], pad = padded(n);
    if (!n) continue;
    moe_wave *w = m->n_waves ? &m->waves[m->n_waves - 1] : NULL;
    if (!w || w->rows + pad > budget) {
      w = &m->waves[m->n_waves++];
      *w = {m->n_segs, m->n_segs, p, 0};
    }
    for (int j = 0; j < 3; j++)
      if (!G.s[expert_slot(e, j)].loaded) return fail("slot %d (expert %d) has no weights", expert_slot(e, j), e);
    m->segs[m->n_segs++] = {w->rows, n, e};
    m->h_prow[e] = p;
    w->s1 = m->n_segs;
    w->rows += pad;
    p += pad;
    if (w->rows / MOE_CHUNK > 65535) // a grid's z extent
      return fail("expert %d: %d rows routed to it, more than the grouped GEMMs take at once (%d)", e, n, 65535 * MOE_CHUNK);
    most = w->rows > most ? w->rows : most;
  }
  const int P = p, nch = P / MOE_CHUNK, ng = G.n_groups, wide = H > NI ? H : NI;
  for (int j = 0; j < 3; j++) m->path[j] = experts_kind(j, quant);
  m->n_chunks = nch;
  // the largest wave's buffers (the pointer tables below hold their addresses)
  const size_t most_in = (size_t)most * wide;
  TRY(grow(&G.xe, (size_t)most * H * 4 + 4));
  TRY(grow(&G.eg, (size_t)most * NI * 4 + 4));
  TRY(grow(&G.eu, (size_t)most * NI * 4 + 4));
  if (quant) TRY(grow(&G.ye, (size_t)most * H * 4 + 4));
  if (G.d.gemm == CSLIM_GEMM_BF16) TRY(grow(&G.xb, most_in * 2 + 4));
  if (quant) {
    TRY(grow(&G.xq, most_in + 4));
    TRY(grow(&G.acc, most_in * 4 + 4));
    TRY(grow(&G.rs, (size_t)most * 4 + 4));
  }
  // the tables
  size_t off = 0;
  const size_t o_rowtok = take(&off, (size_t)P * 4), o_chunk = take(&off, (size_t)nch * 4);
  const size_t o_pos = take(&off, (size_t)T * K * 4), o_pw = take(&off, (size_t)T * K * 4);
  const size_t o_segs = take(&off, (size_t)m->n_segs * sizeof(moe_seg)), o_hist = take(&off, (size_t)ng * sizeof(hist_p));
  const size_t o_lin = take(&off, (size_t)3 * E * sizeof(lin_params)), o_ptr = take(&off, (size_t)9 * nch * sizeof(void *));
  if (off > m->h_tab_cap) {
    if (m->h_tab) cudaFreeHost(m->h_tab);
    m->h_tab = NULL;
    m->h_tab_cap = 0;
    CK(cudaMallocHost((void **)&m->h_tab, off));
    m->h_tab_cap = off;
  }
  char *h = m->h_tab;
  int *rowtok = (int *)(h + o_rowtok), *chunk_e = (int *)(h + o_chunk), *pos = (int *)(h + o_pos);
  float *pw = (float *)(h + o_pw);
  for (int i = 0; i < m->n_waves; i++)
    for (int si = m->waves[i].s0; si < m->waves[i].s1; si++) {
      const moe_seg *sg = &m->segs[si];
      const int p0 = m->waves[i].p0 + sg->row0, pad = padded(sg->n);
      for (int r = 0; r < pad; r++) rowtok[p0 + r] = r < sg->n ? G.m.h_tok[G.m.h_offs[sg->e] + r] : -1;
      for (int c = 0; c < pad / MOE_CHUNK; c++) chunk_e[p0 / MOE_CHUNK + c] = sg->e;
    }
  for (int t = 0; t < T; t++) m->h_fill[t] = 0;
  for (int e = 0; e < E; e++) // each token's rows in ascending expert
    for (int r = 0; r < m->h_count[e]; r++) {
      const int at = m->h_offs[e] + r, t = m->h_tok[at], j = m->h_fill[t]++;
      pos[(size_t)t * K + j] = m->h_prow[e] + r;
      pw[(size_t)t * K + j] = m->h_tw[at];
    }
  memcpy(h + o_segs, m->segs, (size_t)m->n_segs * sizeof(moe_seg));
  hist_p *hp = (hist_p *)(h + o_hist);
  for (int g = 0; g < ng; g++) hp[g] = hist && pass == CSLIM_GPU_PASS_HIST ? hist_p{hist[g].lo, hist[g].hi, hist[g].bins}
                                                                           : hist_p{0, 0, 0};
  lin_params *lin = (lin_params *)(h + o_lin);
  memset(lin, 0, (size_t)3 * E * sizeof(lin_params));
  void **ptr = (void **)(h + o_ptr);
  for (int j = 0; j < 3; j++) {
    const int kind = m->path[j], k = j < 2 ? H : NI, n = j < 2 ? NI : H;
    char *x = (char *)(j < 2 ? G.xe.p : G.eg.p), *y = (char *)(j == 0 ? G.eg.p : j == 1 ? G.eu.p : G.ye.p);
    size_t xs = 4; // bytes of an input element
    if (kind == CSLIM_GPU_LIN_FLOAT && G.d.gemm == CSLIM_GEMM_BF16) x = (char *)G.xb.p, xs = 2;
    if (kind == CSLIM_GPU_LIN_STATIC || kind == CSLIM_GPU_LIN_DYNAMIC) x = (char *)G.xq.p, xs = 1, y = (char *)G.acc.p;
    m->bias[j] = 0;
    for (int i = 0; i < m->n_segs; i++) {
      lin_params *l = &lin[j * E + m->segs[i].e];
      *l = slot_sel(&G.s[expert_slot(m->segs[i].e, j)], quant).one;
      m->bias[j] |= l->bias != NULL;
    }
    if (kind < 0) continue;
    for (int i = 0; i < m->n_waves; i++) {
      const moe_wave *w = &m->waves[i];
      const int c0 = w->p0 / MOE_CHUNK, nw = w->rows / MOE_CHUNK;
      void **t = ptr + ((size_t)j * nch + c0) * 3; // weights, inputs, outputs of the wave's chunks
      for (int si = w->s0; si < w->s1; si++) {
        const moe_seg *sg = &m->segs[si];
        slot *s = &G.s[expert_slot(sg->e, j)];
        const void *wt = kind == CSLIM_GPU_LIN_FLOAT ? float_weights(s) : kind == CSLIM_GPU_LIN_W8A16 ? s->wf.p : s->q.p;
        if (!wt) return -1;
        for (int r = sg->row0; r < sg->row0 + padded(sg->n); r += MOE_CHUNK) {
          const int c = r / MOE_CHUNK;
          t[c] = (void *)wt;
          t[nw + c] = x + (size_t)r * k * xs;
          t[2 * nw + c] = y + (size_t)r * n * 4;
        }
      }
    }
  }
  TRY(grow(&G.tab, off));
  CK(cudaMemcpyAsync(G.tab.p, h, off, cudaMemcpyHostToDevice, G.st));
  char *d = (char *)G.tab.p;
  m->rowtok = (int *)(d + o_rowtok), m->chunk_e = (int *)(d + o_chunk), m->pos = (int *)(d + o_pos);
  m->pw = (float *)(d + o_pw), m->d_segs = (moe_seg *)(d + o_segs), m->hist = (hist_p *)(d + o_hist);
  m->lin = (lin_params *)(d + o_lin), m->ptr = (void **)(d + o_ptr);
  return 0;
}

// the observers of a wave's experts: input `which` (0 gate/up, 1 down) of each, x [rows, width]
static void observe_experts(int pass, const moe_wave *w, int which, const float *x, int width) {
  if (pass < 0) return;
  dim3 grid(32, (unsigned)(w->s1 - w->s0));
  const moe_seg *segs = G.m.d_segs + w->s0;
  if (pass == CSLIM_GPU_PASS_CHANNELS) { // each expert's down input, per channel (every expert's up-down smoothing)
    if (which == 1 && G.echan.p)
      k_chstats_experts<<<dim3((unsigned)((width + 255) / 256), (unsigned)(w->s1 - w->s0), 8), 256, 0, G.st>>>(
          x, width, segs, F(G.echan));
    return;
  }
  if (pass == CSLIM_GPU_PASS_STATS) {
    const int ng = G.n_groups;
    float *f = (float *)G.stats.p;
    double *d = (double *)((char *)G.stats.p + (size_t)8 * ng);
    k_observe_experts<<<grid, 256, 0, G.st>>>(x, width, segs, which, f, d, ng);
  } else {
    k_hist_experts<<<grid, 256, 2048 * 8, G.st>>>(x, width, segs, which, G.m.hist, (unsigned long long *)G.hist.p);
  }
}

// projection j of a wave's experts on its rows: x [rows, in] -> y [rows, out] (the buffers plan_experts tabled)
static int experts_linear(const moe_wave *w, int j, int quant, const float *x, float *y) {
  moe_plan *m = &G.m;
  const int kind = m->path[j], k = j < 2 ? G.d.hidden : G.d.moe_inter, n = j < 2 ? G.d.moe_inter : G.d.hidden;
  const int P = w->rows, c0 = w->p0 / MOE_CHUNK, nw = P / MOE_CHUNK;
  if (kind < 0) { // experts of different kinds: each on its padded rows
    for (int si = w->s0; si < w->s1; si++) {
      const moe_seg *sg = &m->segs[si];
      TRY(linear(expert_slot(sg->e, j), quant, x + (size_t)sg->row0 * k, padded(sg->n), y + (size_t)sg->row0 * n));
    }
    return 0;
  }
  void *const *t = m->ptr + ((size_t)j * m->n_chunks + c0) * 3;
  const lin_sel sel = {{NULL, NULL, NULL, NULL, 0, 0}, m->lin + (size_t)j * G.d.n_experts, m->chunk_e + c0};
  const size_t ny = (size_t)P * n;
  if (kind == CSLIM_GPU_LIN_FLOAT) {
    if (G.d.gemm == CSLIM_GEMM_BF16) TRY(to_bf16(x, (size_t)P * k));
    TRY(gemm_tables(GT_FLOAT, t, nw, n, k));
    if (m->bias[j]) k_add_bias<<<grid_for(ny), 256, 0, G.st>>>(y, P, n, sel);
  } else if (kind == CSLIM_GPU_LIN_W8A16) {
    TRY(gemm_tables(GT_F32, t, nw, n, k));
    k_bias_round<<<grid_for(ny), 256, 0, G.st>>>(y, P, n, sel, G.d.serve);
  } else {
    quantize_rows(kind, x, P, k, sel);
    TRY(gemm_tables(GT_INT8, t, nw, n, k));
    dequantize_rows(kind, P, n, sel, y);
  }
  return 0;
}

// the MoE block on every row of hb at once
static int moe_rows(int pass, float *hb, cslim_gpu_hist *hist, int *tokens) {
  const int H = G.d.hidden, E = G.d.n_experts, K = G.d.top_k, NI = G.d.moe_inter, T = G.total, quant = pass < 0;
  const size_t nT = (size_t)T * H, nk = (size_t)T * K;
  moe_plan *m = &G.m;
  TRY(grow(&G.xa, nT * 4));
  TRY(grow(&G.logits, (size_t)T * E * 4));
  TRY(grow(&G.sel, nk * 4));
  TRY(grow(&G.wts, nk * 4));
  rmsnorm(hb, T, H, F(G.norm[2]), G.has_norm_b[1] ? F(G.norm[3]) : NULL, G.d.eps, F(G.xa));
  TRY(observe(pass, 4, F(G.xa), nT, hist));
  TRY(linear(7, quant, F(G.xa), T, F(G.logits)));
  k_route<<<(T + 127) / 128, 128, 0, G.st>>>(F(G.logits), T, E, K, G.d.norm_topk, (int *)G.sel.p, F(G.wts));
  // rows grouped by expert on the host, ascending within each (as the CPU); arrays for the largest row set yet
  if (m->h_sel && T > m->h_rows) {
    free(m->h_sel), free(m->h_tok), free(m->h_wts), free(m->h_tw), free(m->h_count), free(m->h_offs), free(m->h_fill);
    free(m->h_prow), free(m->waves), free(m->segs);
    m->h_sel = NULL;
  }
  if (!m->h_sel) {
    m->h_rows = T;
    m->h_sel = (int *)malloc(nk * 4), m->h_tok = (int *)malloc(nk * 4), m->h_wts = (float *)malloc(nk * 4);
    m->h_tw = (float *)malloc(nk * 4), m->h_count = (int *)malloc((size_t)E * 4);
    m->h_offs = (int *)malloc((size_t)(E + 1) * 4), m->h_prow = (int *)malloc((size_t)E * 4);
    m->h_fill = (int *)malloc((size_t)(T > E ? T : E) * 4);
    m->waves = (moe_wave *)malloc((size_t)E * sizeof(moe_wave)), m->segs = (moe_seg *)malloc((size_t)E * sizeof(moe_seg));
    if (!m->h_sel || !m->h_tok || !m->h_wts || !m->h_tw || !m->h_count || !m->h_offs || !m->h_prow || !m->h_fill ||
        !m->waves || !m->segs)
      return fail("out of memory");
  }
  CK(cudaMemcpyAsync(m->h_sel, G.sel.p, nk * 4, cudaMemcpyDeviceToHost, G.st));
  CK(cudaMemcpyAsync(m->h_wts, G.wts.p, nk * 4, cudaMemcpyDeviceToHost, G.st));
  CK(cudaStreamSynchronize(G.st));
  long bad = cslim_group_by_expert(m->h_sel, m->h_wts, T, K, E, m->h_count, m->h_offs, m->h_fill, m->h_tok, m->h_tw);
  if (bad >= 0) return fail("token %ld was routed to no expert (non-finite router logits)", bad / K);
  if (tokens) memcpy(tokens, m->h_count, (size_t)E * 4);
  TRY(plan_experts(pass, hist));
  if (quant) {
    TRY(grow(&G.mo, nT * 4));
    CK(cudaMemsetAsync(G.mo.p, 0, nT * 4, G.st));
  }
  for (int i = 0; i < m->n_waves; i++) {
    const moe_wave *w = &m->waves[i];
    k_gather<<<grid_for((size_t)w->rows * H), 256, 0, G.st>>>(F(G.xa), H, m->rowtok + w->p0, w->rows, F(G.xe));
    observe_experts(pass, w, 0, F(G.xe), H);
    TRY(experts_linear(w, 0, quant, F(G.xe), F(G.eg)));
    TRY(experts_linear(w, 1, quant, F(G.xe), F(G.eu)));
    k_silu_mul<<<grid_for((size_t)w->rows * NI), 256, 0, G.st>>>(F(G.eg), F(G.eu), (size_t)w->rows * NI);
    observe_experts(pass, w, 1, F(G.eg), NI);
    if (quant) {
      TRY(experts_linear(w, 2, quant, F(G.eg), F(G.ye)));
      k_combine<<<grid_for(nT), 256, 0, G.st>>>(F(G.ye), H, m->pos, m->pw, T, K, w->p0, w->p0 + w->rows, F(G.mo));
    }
  }
  if (quant) k_add<<<grid_for(nT), 256, 0, G.st>>>(hb, F(G.mo), nT);
  return 0;
}

static int run_layer(int pass, cslim_gpu_hist *hist, int *tokens) {
  float *hb = F(G.h);
  if (pass >= 0) { // the float passes leave the stream as it was
    CK(cudaMemcpyAsync(G.hs.p, G.h.p, (size_t)G.total * G.d.hidden * 4, cudaMemcpyDeviceToDevice, G.st));
    hb = F(G.hs);
  }
  for (int s0 = 0; s0 < G.n_seqs;) {
    int s1 = s0 + 1;
    while (s1 < G.n_seqs && G.seq_start[s1 + 1] - G.seq_start[s0] <= G.R) s1++;
    TRY(attn_rows(pass, s0, s1, hb, hist));
    s0 = s1;
  }
  if (G.is_moe) { // the channel pass runs the block only for the experts' statistics
    if (pass != CSLIM_GPU_PASS_CHANNELS || G.echan.p) TRY(moe_rows(pass, hb, hist, tokens));
  } else {
    for (int r0 = 0; r0 < G.total; r0 += G.R) TRY(mlp_rows(pass, r0, G.total - r0 < G.R ? G.total - r0 : G.R, hb, hist));
  }
  CK(cudaStreamSynchronize(G.st));
  CK(cudaGetLastError());
  return 0;
}

// ---- several GPUs: NCCL, loaded on demand ----------------------------------------------------------------------

// The few NCCL entry points we use, declared here (their ABI is stable) so that the module needs
// neither NCCL's header to build nor the library unless several GPUs are asked for.
typedef struct ncclComm *ncclComm_t;
enum { nccl_u64 = 5, nccl_f32 = 7, nccl_f64 = 8 };
enum { nccl_sum = 0, nccl_max = 2, nccl_min = 3 };
static struct {
  void *lib;
  int (*init_all)(ncclComm_t *, int, const int *);
  int (*all_reduce)(const void *, void *, size_t, int, int, ncclComm_t, cudaStream_t);
  int (*group_start)(void), (*group_end)(void);
  int (*destroy)(ncclComm_t);
  const char *(*error)(int);
  ncclComm_t comm[MAX_DEV];
} N;

static int nccl_open(void) {
  if (!N.lib) {
    const char *names[] = {"libnccl.so.2", "libnccl.so"};
    for (int i = 0; i < 2 && !N.lib; i++) N.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!N.lib) return fail("several GPUs need NCCL, and libnccl.so.2 cannot be loaded (%s)", dlerror());
    *(void **)&N.init_all = dlsym(N.lib, "ncclCommInitAll");
    *(void **)&N.all_reduce = dlsym(N.lib, "ncclAllReduce");
    *(void **)&N.group_start = dlsym(N.lib, "ncclGroupStart");
    *(void **)&N.group_end = dlsym(N.lib, "ncclGroupEnd");
    *(void **)&N.destroy = dlsym(N.lib, "ncclCommDestroy");
    *(void **)&N.error = dlsym(N.lib, "ncclGetErrorString");
    if (!N.init_all || !N.all_reduce || !N.group_start || !N.group_end || !N.destroy || !N.error) {
      dlclose(N.lib);
      N.lib = NULL;
      return fail("libnccl.so.2 lacks the collectives cslim uses");
    }
  }
  int r = N.init_all(N.comm, g_ndev, g_dev_ids);
  if (r) return fail("NCCL: %s", N.error(r));
  return 0;
}

// The statistics of groups [g0, g0 + n) (and, with hist, every group's histogram) summed over the devices, on
// each of them: min and max exactly, counts exactly (integers), sums in double.
static int host_merge(int g0, int n, int hist_groups);
static int nccl_merge(int g0, int n, int hist_groups) {
  if (g_ndev < 2) return 0;
  if (g_host_merge) return host_merge(g0, n, hist_groups);
  int r = N.group_start();
  for (int i = 0; i < g_ndev && !r; i++) {
    ctx *c = &g_ctx[i];
    const int ng = c->n_groups;
    float *f = (float *)c->stats.p;
    double *d = (double *)((char *)c->stats.p + (size_t)8 * ng);
    if (hist_groups) {
      r = N.all_reduce(c->hist.p, c->hist.p, (size_t)hist_groups * 2048, nccl_u64, nccl_sum, N.comm[i], c->st);
      continue;
    }
    if (!r) r = N.all_reduce(f + g0, f + g0, (size_t)n, nccl_f32, nccl_min, N.comm[i], c->st);
    if (!r) r = N.all_reduce(f + ng + g0, f + ng + g0, (size_t)n, nccl_f32, nccl_max, N.comm[i], c->st);
    if (!r) r = N.all_reduce(d + g0, d + g0, (size_t)n, nccl_f64, nccl_sum, N.comm[i], c->st);
    if (!r) r = N.all_reduce(d + ng + g0, d + ng + g0, (size_t)n, nccl_f64, nccl_sum, N.comm[i], c->st);
  }
  int r2 = N.group_end();
  if (r || r2) return fail("NCCL all-reduce: %s", N.error(r ? r : r2));
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    CK(cudaStreamSynchronize(G.st));
  }
  use(0);
  return 0;
}

// The same merge through host memory, for a GPU named more than once (CSLIM_CUDA_SHARES), where NCCL refuses
// to run: each device's slices are read back, combined in device order and written to every device.
static int host_merge(int g0, int n, int hist_groups) {
  const int ng = g_ctx[0].n_groups;
  const size_t nh = (size_t)hist_groups * 2048;
  const size_t bytes = hist_groups ? nh * 8 : (size_t)n * 24;
  char *acc = (char *)malloc(bytes), *one = (char *)malloc(bytes);
  if (!acc || !one) {
    free(acc), free(one);
    return fail("out of memory merging the statistics");
  }
  // the four slices of groups g0.. in the stats buffer (byte offsets, element size), or the histograms
  const size_t off[4] = {(size_t)4 * g0, (size_t)4 * (ng + g0), (size_t)8 * ng + (size_t)8 * g0,
                         (size_t)8 * ng + (size_t)8 * (ng + g0)};
  const size_t len[4] = {(size_t)4 * n, (size_t)4 * n, (size_t)8 * n, (size_t)8 * n};
  int rc = 0;
  for (int i = 0; i < g_ndev && !rc; i++) {
    use(i);
    char *dst = i ? one : acc;
    if (hist_groups) {
      if (cudaMemcpyAsync(dst, G.hist.p, nh * 8, cudaMemcpyDeviceToHost, G.st)) rc = -1;
    } else {
      for (int k = 0, at = 0; k < 4 && !rc; at += (int)len[k], k++)
        if (cudaMemcpyAsync(dst + at, (char *)G.stats.p + off[k], len[k], cudaMemcpyDeviceToHost, G.st)) rc = -1;
    }
    if (!rc && cudaStreamSynchronize(G.st)) rc = -1;
    if (rc || !i) continue;
    if (hist_groups) {
      unsigned long long *a = (unsigned long long *)acc, *b = (unsigned long long *)one;
      for (size_t e = 0; e < nh; e++) a[e] += b[e];
      continue;
    }
    float *amin = (float *)acc, *amax = amin + n, *bmin = (float *)one, *bmax = bmin + n;
    double *asum = (double *)(amax + n), *bsum = (double *)(bmax + n);
    for (int e = 0; e < n; e++) {
      amin[e] = fminf(amin[e], bmin[e]), amax[e] = fmaxf(amax[e], bmax[e]);
      asum[e] += bsum[e], asum[n + e] += bsum[n + e];
    }
  }
  for (int i = 0; i < g_ndev && !rc; i++) {
    use(i);
    if (hist_groups) {
      if (cudaMemcpyAsync(G.hist.p, acc, nh * 8, cudaMemcpyHostToDevice, G.st)) rc = -1;
    } else {
      for (int k = 0, at = 0; k < 4 && !rc; at += (int)len[k], k++)
        if (cudaMemcpyAsync((char *)G.stats.p + off[k], acc + at, len[k], cudaMemcpyHostToDevice, G.st)) rc = -1;
    }
    if (!rc && cudaStreamSynchronize(G.st)) rc = -1;
  }
  use(0);
  free(acc), free(one);
  return rc ? fail("merging the statistics through host memory: %s", cudaGetErrorString(cudaGetLastError())) : 0;
}

// fn on every device at once, one host thread each (the calling thread takes device 0)
typedef struct par_job {
  int i, rc;
  int (*fn)(void *);
  void *arg;
  char err[512];
} par_job;

static void *par_main(void *p) {
  par_job *j = (par_job *)p;
  use(j->i);
  j->rc = j->fn(j->arg);
  if (j->rc) snprintf(j->err, sizeof j->err, "cuda:%d: %s", G.dev, g_err);
  return NULL;
}

static int parallel(int (*fn)(void *), void *args, size_t arg_size) {
  par_job jobs[MAX_DEV];
  pthread_t th[MAX_DEV];
  int started[MAX_DEV] = {0};
  for (int i = 0; i < g_ndev; i++) {
    jobs[i] = {i, 0, fn, (char *)args + (size_t)i * arg_size, ""};
    if (i > 0) started[i] = pthread_create(&th[i], NULL, par_main, &jobs[i]) == 0;
  }
  par_main(&jobs[0]);
  for (int i = 1; i < g_ndev; i++) {
    if (started[i]) pthread_join(th[i], NULL);
    else par_main(&jobs[i]); // no thread: in turn
  }
  use(0);
  for (int i = 0; i < g_ndev; i++)
    if (jobs[i].rc) {
      snprintf(g_err, sizeof g_err, "%s", jobs[i].err);
      return -1;
    }
  return 0;
}

// ---- the API ---------------------------------------------------------------------------------------------------

static const char *api_last_error(void) { return g_err; }

static int api_set_devices(const int *ids, int n) {
  if (n < 1 || n > MAX_DEV) return fail("%d devices: 1 to %d", n, MAX_DEV);
  g_host_merge = 0;
  for (int i = 0; i < n; i++) {
    g_dev_ids[i] = ids[i];
    for (int j = 0; j < i; j++) g_host_merge |= ids[j] == ids[i];
  }
  g_ndev = n;
  return 0;
}

static void dev_end(float *h) {
  if (G.on && h)
    cudaMemcpy(h + (size_t)g_row0[cur - g_ctx] * G.d.hidden, G.h.p,
               (size_t)G.total * G.d.hidden * 4, cudaMemcpyDeviceToHost);
  buf *all[] = {&G.h,  &G.cos_t, &G.sin_t, &G.hs,    &G.xn,  &G.q,   &G.k,    &G.v,   &G.ctx, &G.o,
                &G.g,  &G.u,     &G.S,     &G.aptr, &G.xq,    &G.acc, &G.rs,  &G.xb,   &G.stats, &G.hist, &G.tmp,
                &G.xa, &G.mo,    &G.logits, &G.sel,  &G.wts, &G.xe,  &G.eg,   &G.eu,  &G.ye,  &G.tab, &G.chan, &G.ssz,
                &G.wt, &G.ds,  &G.samp, &G.fx, &G.fw, &G.fxs, &G.fws, &G.fy, &G.fref, &G.fs, &G.ferr, &G.echan, &G.scl,
                &G.fz, &G.fb, &G.fd, &G.fdb, &G.fo, &G.fcos, &G.fsin, &G.fqk, &G.fmm};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
  for (int i = 0; i < 6; i++) drop(&G.norm[i]);
  for (int i = 0; G.s && i < G.n_slots; i++) {
    slot *s = &G.s[i];
    buf *sb[] = {&s->w, &s->wf, &s->wb, &s->bias, &s->q, &s->deq, &s->qbias, &s->wscale};
    for (size_t j = 0; j < sizeof sb / sizeof sb[0]; j++) drop(sb[j]);
  }
  free(G.s);
  if (G.blas) cublasDestroy(G.blas);
  if (G.st) cudaStreamDestroy(G.st);
  free(G.seq_start);
  drop(&G.alt.h), drop(&G.alt.cos_t), drop(&G.alt.sin_t);
  free(G.alt.seq_start);
  free(G.f_seq);
  moe_plan *m = &G.m;
  free(m->h_sel), free(m->h_tok), free(m->h_wts), free(m->h_tw), free(m->h_count), free(m->h_offs), free(m->h_fill);
  free(m->h_prow), free(m->waves), free(m->segs);
  if (m->h_tab) cudaFreeHost(m->h_tab);
  int dev = G.dev;
  memset(&G, 0, sizeof G);
  G.dev = dev;
}

static int api_end(float *h) {
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    dev_end(h);
  }
  if (N.lib && g_ndev > 1)
    for (int i = 0; i < g_ndev; i++)
      if (N.comm[i]) N.destroy(N.comm[i]), N.comm[i] = NULL;
  use(0);
  return 0;
}

// sequences s0..s1-1 of seq_start, rebased to row 0 (malloc'ed; NULL: out of memory)
static int *rebase_seqs(int s0, int s1, const int *seq_start) {
  int *r = (int *)malloc((size_t)(s1 - s0 + 1) * sizeof(int));
  for (int s = 0; r && s <= s1 - s0; s++) r[s] = seq_start[s0 + s] - seq_start[s0];
  return r;
}

// rows per group of a row set: whole sequences, at least 4096 rows (or the longest sequence)
static int group_rows(int n_seqs, const int *seq_start) {
  int longest = 0;
  for (int s = 0; s < n_seqs; s++)
    if (seq_start[s + 1] - seq_start[s] > longest) longest = seq_start[s + 1] - seq_start[s];
  const int total = seq_start[n_seqs];
  return longest > 4096 ? longest : total < 4096 ? total : 4096;
}

// the work buffers of groups of R rows
static int grow_work(size_t R) {
  const cslim_gpu_dims *d = &G.d;
  const size_t H = d->hidden, Q = (size_t)d->n_heads * d->head_dim, KV = (size_t)d->n_kv_heads * d->head_dim;
  TRY(grow(&G.xn, R * H * 4));
  TRY(grow(&G.q, R * Q * 4));
  TRY(grow(&G.k, R * KV * 4));
  TRY(grow(&G.v, R * KV * 4));
  TRY(grow(&G.ctx, R * Q * 4));
  TRY(grow(&G.o, R * H * 4));
  TRY(grow(&G.g, R * d->inter * 4));
  TRY(grow(&G.u, R * d->inter * 4));
  return 0;
}

// device i's share: sequences s0..s1-1 (rows rebased to 0)
static int dev_begin(const cslim_gpu_dims *d, int s0, int s1, const int *seq_start, const float *h, const float *cos_t,
                     const float *sin_t) {
  const int r0 = seq_start[s0], total = seq_start[s1] - r0, n_seqs = s1 - s0;
  G.d = *d;
  G.mem_peak = G.mem_now;
  G.total = total;
  G.n_seqs = n_seqs;
  if (!(G.seq_start = rebase_seqs(s0, s1, seq_start))) return fail("out of memory");
  CK(cudaStreamCreateWithFlags(&G.st, cudaStreamNonBlocking));
  CB(cublasCreate(&G.blas));
  CB(cublasSetStream(G.blas, G.st));
  CB(cublasSetMathMode(G.blas, CUBLAS_DEFAULT_MATH));
  G.on = 1;
  G.n_slots = 8 + 3 * d->n_experts;
  G.n_groups = d->n_experts ? 5 + 2 * d->n_experts : CSLIM_GPU_DENSE_GROUPS;
  G.s = (slot *)calloc((size_t)G.n_slots, sizeof(slot));
  if (!G.s) return fail("out of memory");
  G.R = group_rows(n_seqs, G.seq_start);
  const size_t H = d->hidden, half = d->head_dim / 2;
  TRY(grow(&G.h, (size_t)total * H * 4));
  TRY(grow(&G.cos_t, (size_t)total * half * 4));
  TRY(grow(&G.sin_t, (size_t)total * half * 4));
  TRY(grow(&G.hs, (size_t)total * H * 4)); // the float passes' copy of the stream
  TRY(grow_work((size_t)G.R));
  TRY(grow(&G.stats, (size_t)G.n_groups * 24));
  TRY(grow(&G.hist, (size_t)G.n_groups * 2048 * 8));
  // on the device's stream (non-blocking: a plain cudaMemcpy would not be ordered before its kernels)
  CK(cudaMemcpyAsync(G.h.p, h + (size_t)r0 * H, (size_t)total * H * 4, cudaMemcpyHostToDevice, G.st));
  CK(cudaMemcpyAsync(G.cos_t.p, cos_t + (size_t)r0 * half, (size_t)total * half * 4, cudaMemcpyHostToDevice, G.st));
  CK(cudaMemcpyAsync(G.sin_t.p, sin_t + (size_t)r0 * half, (size_t)total * half * 4, cudaMemcpyHostToDevice, G.st));
  CK(cudaStreamSynchronize(G.st));
  return 0;
}

// whole sequences on each of g_ndev devices, about as many rows on each (each at least one sequence, n_seqs >= g_ndev)
static void split_seqs(int n_seqs, const int *seq_start, int *bounds) {
  int s = 0;
  bounds[0] = 0;
  for (int i = 0; i < g_ndev; i++) {
    const long long target = (long long)seq_start[n_seqs] * (i + 1) / g_ndev;
    int first = s;
    while (s < n_seqs && n_seqs - s > g_ndev - 1 - i && (s == first || seq_start[s + 1] <= target)) s++;
    if (i == g_ndev - 1) s = n_seqs;
    bounds[i + 1] = s;
  }
}

static int api_begin(const cslim_gpu_dims *d, int total, int n_seqs, const int *seq_start, const float *h,
                     const float *cos_t, const float *sin_t) {
  api_end(NULL);
  (void)total;
  const int want = g_ndev;
  g_ndev = n_seqs < want ? n_seqs : want;
  int bounds[MAX_DEV + 1];
  split_seqs(n_seqs, seq_start, bounds);
  for (int i = 0; i <= g_ndev; i++) g_row0[i] = seq_start[bounds[i]];
  for (int i = 0; i < g_ndev; i++) {
    g_ctx[i].dev = g_dev_ids[i];
    use(i);
    if (dev_begin(d, bounds[i], bounds[i + 1], seq_start, h, cos_t, sin_t)) {
      char e[512];
      snprintf(e, sizeof e, "%s", g_err);
      api_end(NULL);
      g_ndev = want;
      return fail("cuda:%d: %s", g_dev_ids[i], e);
    }
  }
  use(0);
  if (g_ndev > 1 && !g_host_merge && nccl_open()) {
    char e[512];
    snprintf(e, sizeof e, "%s", g_err);
    api_end(NULL);
    return fail("%s", e);
  }
  return 0;
}

// device i's share of the other row set: sequences s0..s1-1, uploaded beside the calibration rows; the work
// buffers grow to the larger of the two sets' groups
static int dev_begin_alt(int s0, int s1, const int *seq_start, const float *h, const float *cos_t,
                         const float *sin_t) {
  const int r0 = seq_start[s0], total = seq_start[s1] - r0, n_seqs = s1 - s0;
  G.alt.total = total;
  G.alt.n_seqs = n_seqs;
  if (!(G.alt.seq_start = rebase_seqs(s0, s1, seq_start))) return fail("out of memory");
  G.alt.R = group_rows(n_seqs, G.alt.seq_start);
  const size_t H = G.d.hidden, half = G.d.head_dim / 2;
  TRY(grow(&G.alt.h, (size_t)total * H * 4));
  TRY(grow(&G.alt.cos_t, (size_t)total * half * 4));
  TRY(grow(&G.alt.sin_t, (size_t)total * half * 4));
  TRY(grow(&G.hs, (size_t)total * H * 4)); // grow keeps the larger
  TRY(grow_work((size_t)G.alt.R));
  CK(cudaMemcpyAsync(G.alt.h.p, h + (size_t)r0 * H, (size_t)total * H * 4, cudaMemcpyHostToDevice, G.st));
  CK(cudaMemcpyAsync(G.alt.cos_t.p, cos_t + (size_t)r0 * half, (size_t)total * half * 4, cudaMemcpyHostToDevice, G.st));
  CK(cudaMemcpyAsync(G.alt.sin_t.p, sin_t + (size_t)r0 * half, (size_t)total * half * 4, cudaMemcpyHostToDevice, G.st));
  CK(cudaStreamSynchronize(G.st));
  G.alt.on = 1;
  return 0;
}

static int api_begin_alt(int total, int n_seqs, const int *seq_start, const float *h, const float *cos_t,
                         const float *sin_t) {
  (void)total;
  if (!g_ctx[0].on) return fail("begin_alt before begin");
  if (g_ctx[0].alt.on) return fail("a second row set is already on the device");
  if (n_seqs < g_ndev) return fail("%d sequences in the second row set, fewer than the %d GPUs", n_seqs, g_ndev);
  int bounds[MAX_DEV + 1];
  split_seqs(n_seqs, seq_start, bounds);
  for (int i = 0; i <= g_ndev; i++) g_row0_alt[i] = seq_start[bounds[i]];
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    if (dev_begin_alt(bounds[i], bounds[i + 1], seq_start, h, cos_t, sin_t)) {
      char e[512];
      snprintf(e, sizeof e, "%s", g_err);
      use(0);
      return fail("cuda:%d: %s", g_dev_ids[i], e);
    }
  }
  use(0);
  return 0;
}

// the passes from now on run on the other row set (the statistics set, or back): a swap of handles, nothing moves
static int api_swap_rows(void) {
  if (!g_ctx[0].alt.on) return fail("swap_rows without a second row set");
  for (int i = 0; i < g_ndev; i++) {
    ctx *c = &g_ctx[i];
    const int t = c->total, n = c->n_seqs, r = c->R;
    int *ss = c->seq_start;
    const buf h = c->h, cs = c->cos_t, sn = c->sin_t;
    c->total = c->alt.total, c->n_seqs = c->alt.n_seqs, c->R = c->alt.R, c->seq_start = c->alt.seq_start;
    c->h = c->alt.h, c->cos_t = c->alt.cos_t, c->sin_t = c->alt.sin_t;
    c->alt.total = t, c->alt.n_seqs = n, c->alt.R = r, c->alt.seq_start = ss;
    c->alt.h = h, c->alt.cos_t = cs, c->alt.sin_t = sn;
    c->alt.cur = !c->alt.cur;
  }
  for (int i = 0; i <= g_ndev; i++) {
    const int t = g_row0[i];
    g_row0[i] = g_row0_alt[i], g_row0_alt[i] = t;
  }
  return 0;
}

static int upload_f32(buf *b, const float *v, size_t n) {
  TRY(grow(b, n * 4));
  CK(cudaMemcpyAsync(b->p, v, n * 4, cudaMemcpyHostToDevice, G.st));
  return 0;
}

static int dev_set_norms(const float *in_w, const float *in_b, const float *post_w, const float *post_b,
                         const float *qn, const float *kn, int is_moe) {
  if (is_moe && !G.d.n_experts) return fail("a MoE layer, and the engine was started without experts");
  G.is_moe = is_moe;
  const size_t H = G.d.hidden, D = G.d.head_dim;
  TRY(upload_f32(&G.norm[0], in_w, H));
  TRY(upload_f32(&G.norm[2], post_w, H));
  TRY(upload_f32(&G.norm[4], qn, D));
  TRY(upload_f32(&G.norm[5], kn, D));
  G.has_norm_b[0] = in_b != NULL;
  G.has_norm_b[1] = post_b != NULL;
  if (in_b) TRY(upload_f32(&G.norm[1], in_b, H));
  if (post_b) TRY(upload_f32(&G.norm[3], post_b, H));
  CK(cudaStreamSynchronize(G.st));
  return 0;
}

static int api_set_norms(const float *in_w, const float *in_b, const float *post_w, const float *post_b,
                         const float *qn, const float *kn, int is_moe) {
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    TRY(dev_set_norms(in_w, in_b, post_w, post_b, qn, kn, is_moe));
  }
  use(0);
  return 0;
}

static int dev_set_weight(int si, int dtype, const void *w, int out, int in, size_t ld, int transposed,
                          const float *bias) {
  if (si < 0 || si >= G.n_slots) return fail("slot %d out of range", si);
  slot *s = &G.s[si];
  size_t es = dtype == CSLIM_GPU_F32 ? 4 : 2, n = (size_t)out * in;
  TRY(grow(&s->w, n * es));
  // pageable (the mapped checkpoint), on the layer's stream: ordered before the kernels that read it
  if (!transposed && ld == (size_t)in) {
    CK(cudaMemcpyAsync(s->w.p, w, n * es, cudaMemcpyHostToDevice, G.st));
  } else if (!transposed) {
    CK(cudaMemcpy2DAsync(s->w.p, (size_t)in * es, w, ld * es, (size_t)in * es, (size_t)out, cudaMemcpyHostToDevice, G.st));
  } else { // in rows of out, then [out, in] on the device
    TRY(grow(&G.wt, n * es));
    CK(cudaMemcpy2DAsync(G.wt.p, (size_t)out * es, w, ld * es, (size_t)out * es, (size_t)in, cudaMemcpyHostToDevice,
                         G.st));
    dim3 grid((unsigned)((out + 31) / 32), (unsigned)((in + 31) / 32)), block(32, 8);
    if (es == 4) k_transpose<uint32_t><<<grid, block, 0, G.st>>>((const uint32_t *)G.wt.p, in, out, (uint32_t *)s->w.p);
    else k_transpose<uint16_t><<<grid, block, 0, G.st>>>((const uint16_t *)G.wt.p, in, out, (uint16_t *)s->w.p);
    CK(cudaGetLastError());
  }
  s->out = out;
  s->in = in;
  s->dtype = dtype;
  s->has_bias = bias != NULL;
  if (bias) TRY(upload_f32(&s->bias, bias, (size_t)out));
  s->p.kind = CSLIM_GPU_LIN_FLOAT;
  s->loaded = 1;
  s->fresh = 1;
  CK(cudaStreamSynchronize(G.st));
  return 0;
}

static int api_set_weight(int si, int dtype, const void *w, int out, int in, size_t ld, int transposed,
                          const float *bias) {
  if (ld < (size_t)(transposed ? out : in)) return fail("slot %d: leading dimension %zu below the row", si, ld);
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    TRY(dev_set_weight(si, dtype, w, out, in, ld, transposed, bias));
  }
  use(0);
  return 0;
}

static int dev_scale_weight(int si, const float *col_mul, const float *row_div) {
  if (si < 0 || si >= G.n_slots) return fail("slot %d out of range", si);
  slot *s = &G.s[si];
  if (!s->loaded) return fail("slot %d has no weights", si);
  const size_t n = (size_t)s->out * s->in;
  if (s->dtype != CSLIM_GPU_F32) { // as stored (bf16 / f16) -> float32 first: exact, as the host's conversion
    TRY(grow(&G.wt, n * 4));
    k_to_f32<<<grid_for(n), 256, 0, G.st>>>(s->w.p, s->dtype, n, F(G.wt));
    CK(cudaStreamSynchronize(G.st));
    TRY(grow(&s->w, n * 4));
    CK(cudaMemcpyAsync(s->w.p, G.wt.p, n * 4, cudaMemcpyDeviceToDevice, G.st));
    s->dtype = CSLIM_GPU_F32;
  }
  TRY(grow(&G.scl, (size_t)(s->in + s->out) * 4));
  float *cm = col_mul ? F(G.scl) : NULL, *rd = row_div ? F(G.scl) + s->in : NULL;
  if (cm) CK(cudaMemcpyAsync(cm, col_mul, (size_t)s->in * 4, cudaMemcpyHostToDevice, G.st));
  if (rd) CK(cudaMemcpyAsync(rd, row_div, (size_t)s->out * 4, cudaMemcpyHostToDevice, G.st));
  k_scale_weight<<<grid_for(n), 256, 0, G.st>>>(F(s->w), s->out, s->in, cm, rd);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(G.st)); // the host's scales may go once this returns
  s->fresh = 1;
  return 0;
}

static int api_scale_weight(int si, const float *col_mul, const float *row_div) {
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    TRY(dev_scale_weight(si, col_mul, row_div));
  }
  use(0);
  return 0;
}

static int reset_stats(int g0, int n) {
  const int ng = G.n_groups;
  float *f = (float *)G.stats.p;
  double *d = (double *)((char *)G.stats.p + (size_t)8 * ng);
  k_reset_stats<<<(n + 127) / 128, 128, 0, G.st>>>(f + g0, f + ng + g0, d + g0, d + ng + g0, n);
  return 0;
}

// device 0's (merged) statistics of groups [g0, g0 + n)
static int read_stats(int g0, int n, cslim_gpu_stats *st) {
  use(0);
  const int ng = G.n_groups;
  char *r = (char *)malloc((size_t)ng * 24);
  if (!r) return fail("out of memory");
  if (cudaMemcpy(r, G.stats.p, (size_t)ng * 24, cudaMemcpyDeviceToHost) != cudaSuccess) {
    free(r);
    return fail("copying statistics back");
  }
  const float *f = (const float *)r;
  const double *d = (const double *)(r + (size_t)8 * ng);
  for (int i = 0; i < n; i++) st[i] = {f[g0 + i], f[ng + g0 + i], d[g0 + i], d[ng + g0 + i]};
  free(r);
  return 0;
}

typedef struct pass_arg {
  int pass;
  cslim_gpu_hist *h;
  int *tokens; // this device's
  int e;       // expert_on_all
} pass_arg;

static int dev_float_pass(void *p) {
  pass_arg *a = (pass_arg *)p;
  const int ng = G.is_moe ? G.n_groups : CSLIM_GPU_DENSE_GROUPS;
  if (a->pass == CSLIM_GPU_PASS_STATS) TRY(reset_stats(0, ng));
  else CK(cudaMemsetAsync(G.hist.p, 0, (size_t)ng * 2048 * 8, G.st));
  return run_layer(a->pass, a->h, a->tokens);
}

static int api_float_pass(int pass, cslim_gpu_stats *st, cslim_gpu_hist *h, int *tokens) {
  use(0);
  const int ng = G.is_moe ? G.n_groups : CSLIM_GPU_DENSE_GROUPS, E = G.d.n_experts;
  if (pass != CSLIM_GPU_PASS_STATS)
    for (int i = 0; i < ng; i++)
      if (h[i].bins > 2048) return fail("at most 2048 histogram bins");
  pass_arg args[MAX_DEV];
  int *tok = tokens ? (int *)calloc((size_t)g_ndev * (E ? E : 1), sizeof(int)) : NULL;
  if (tokens && !tok) return fail("out of memory");
  for (int i = 0; i < g_ndev; i++) args[i] = {pass, h, tok ? tok + (size_t)i * (E ? E : 1) : NULL, 0};
  int rc = parallel(dev_float_pass, args, sizeof args[0]);
  if (!rc && tokens)
    for (int e = 0; e < E; e++) {
      tokens[e] = 0;
      for (int i = 0; i < g_ndev; i++) tokens[e] += tok[(size_t)i * E + e];
    }
  free(tok);
  TRY(rc);
  if (pass == CSLIM_GPU_PASS_STATS) {
    TRY(nccl_merge(0, ng, 0));
    return read_stats(0, ng, st);
  }
  TRY(nccl_merge(0, 0, ng));
  unsigned long long *c = (unsigned long long *)malloc((size_t)ng * 2048 * 8);
  if (!c) return fail("out of memory");
  if (cudaMemcpy(c, G.hist.p, (size_t)ng * 2048 * 8, cudaMemcpyDeviceToHost) != cudaSuccess) {
    free(c);
    return fail("copying histograms back");
  }
  for (int i = 0; i < ng; i++)
    for (int b = 0; b < h[i].bins; b++) h[i].counts[b] = (double)c[(size_t)i * 2048 + b];
  free(c);
  return 0;
}

// expert e in float on every row of the MoE input (G.xa, as the last float pass left it), in row chunks
static int dev_expert_on_all(void *p) {
  const int e = ((pass_arg *)p)->e;
  if (!G.is_moe || e < 0 || e >= G.d.n_experts || !G.xa.p) return fail("expert %d: no MoE input on the GPU", e);
  const int H = G.d.hidden, NI = G.d.moe_inter, T = G.total, R = G.R;
  const int g0 = 5 + 2 * e;
  TRY(reset_stats(g0, 2));
  TRY(grow(&G.eg, (size_t)R * NI * 4));
  TRY(grow(&G.eu, (size_t)R * NI * 4));
  for (int r0 = 0; r0 < T; r0 += R) {
    int n = T - r0 < R ? T - r0 : R;
    const float *x = F(G.xa) + (size_t)r0 * H;
    TRY(observe(CSLIM_GPU_PASS_STATS, g0, x, (size_t)n * H, NULL));
    TRY(linear(expert_slot(e, 0), 0, x, n, F(G.eg)));
    TRY(linear(expert_slot(e, 1), 0, x, n, F(G.eu)));
    k_silu_mul<<<grid_for((size_t)n * NI), 256, 0, G.st>>>(F(G.eg), F(G.eu), (size_t)n * NI);
    TRY(observe(CSLIM_GPU_PASS_STATS, g0 + 1, F(G.eg), (size_t)n * NI, NULL));
  }
  CK(cudaStreamSynchronize(G.st));
  return 0;
}

static int dev_channel_pass(void *p) {
  const pass_arg *a = (const pass_arg *)p; // pass: 1 for the experts' statistics too; e: sample rows per group
  const int cap = a->e;
  drop(&G.echan);
  if (a->pass && G.is_moe) { // the experts' down inputs too
    const size_t ne = (size_t)G.d.n_experts * 2 * G.d.moe_inter;
    TRY(grow(&G.echan, ne * 4));
    for (int e = 0; e < G.d.n_experts; e++) {
      k_fill<<<grid_for(G.d.moe_inter), 256, 0, G.st>>>(F(G.echan) + (size_t)e * 2 * G.d.moe_inter, G.d.moe_inter, INFINITY);
      k_fill<<<grid_for(G.d.moe_inter), 256, 0, G.st>>>(F(G.echan) + (size_t)e * 2 * G.d.moe_inter + G.d.moe_inter,
                                                       G.d.moe_inter, -INFINITY);
    }
  }
  size_t w = 0;
  for (int g = 0; g < 4; g++) w = (size_t)group_width(g) > w ? (size_t)group_width(g) : w;
  TRY(grow(&G.chan, 4 * 2 * w * 4));
  G.chan_w = w;
  G.samp_cap = cap < G.total ? cap : G.total;
  if (G.samp_cap > 0) TRY(grow(&G.samp, 4 * (size_t)G.samp_cap * w * 4));
  for (int g = 0; g < 4; g++) {
    k_fill<<<grid_for(w), 256, 0, G.st>>>(F(G.chan) + (size_t)g * 2 * w, w, INFINITY);
    k_fill<<<grid_for(w), 256, 0, G.st>>>(F(G.chan) + (size_t)g * 2 * w + w, w, -INFINITY);
  }
  return run_layer(CSLIM_GPU_PASS_CHANNELS, NULL, a->tokens);
}

// one device's per-channel min a[n] and max b[n] into the host's (first: copied)
static void merge_minmax(float *mn, float *mx, const float *a, const float *b, int n, int first) {
  for (int j = 0; j < n; j++) {
    if (first || a[j] < mn[j]) mn[j] = a[j];
    if (first || b[j] > mx[j]) mx[j] = b[j];
  }
}

// every device on its rows; min / max combined here (exact in any order); the samples are the first
// rows of the whole set, so device 0's, then device 1's, ... up to cap
static int api_channel_pass(float *const *mn, float *const *mx, float *const *sample, int *sample_rows, int cap,
                            float *const *emn, float *const *emx, int *tokens) {
  pass_arg args[MAX_DEV];
  int want = 0, experts = emn && emx && g_ctx[0].is_moe;
  const int E = g_ctx[0].d.n_experts, NI = g_ctx[0].d.moe_inter;
  for (int g = 0; sample && g < 4; g++) want |= sample[g] != NULL;
  int *tok = experts ? (int *)calloc((size_t)g_ndev * E, sizeof(int)) : NULL;
  if (experts && !tok) return fail("out of memory");
  for (int i = 0; i < g_ndev; i++) args[i] = {experts, NULL, experts ? tok + (size_t)i * E : NULL, want ? cap : 0};
  if (parallel(dev_channel_pass, args, sizeof args[0])) {
    free(tok);
    return -1;
  }
  if (experts) { // min / max over the devices (exact), token counts summed
    float *c = (float *)malloc((size_t)E * 2 * NI * 4);
    int bad = !c;
    for (int e = 0; e < E; e++) tokens[e] = 0;
    for (int i = 0; i < g_ndev && !bad; i++) {
      use(i);
      bad = cudaMemcpyAsync(c, G.echan.p, (size_t)E * 2 * NI * 4, cudaMemcpyDeviceToHost, G.st) != cudaSuccess ||
            cudaStreamSynchronize(G.st) != cudaSuccess;
      for (int e = 0; e < E && !bad; e++) {
        tokens[e] += tok[(size_t)i * E + e];
        const float *a = c + (size_t)e * 2 * NI;
        if (emn[e]) merge_minmax(emn[e], emx[e], a, a + NI, NI, i == 0);
      }
      drop(&G.echan);
    }
    free(c);
    free(tok);
    use(0);
    if (bad) return fail("copying the experts' channel statistics back");
  }
  int taken = 0;
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    const size_t w = G.chan_w;
    float *c = (float *)malloc(4 * 2 * w * 4);
    if (!c) return fail("out of memory");
    if (cudaMemcpyAsync(c, G.chan.p, 4 * 2 * w * 4, cudaMemcpyDeviceToHost, G.st) != cudaSuccess ||
        cudaStreamSynchronize(G.st) != cudaSuccess) {
      free(c);
      return fail("copying channel statistics back");
    }
    for (int g = 0; g < 4; g++) {
      const float *a = c + (size_t)g * 2 * w;
      if (mn[g]) merge_minmax(mn[g], mx[g], a, a + w, group_width(g), i == 0);
    }
    free(c);
    const int rows = want && taken < cap ? (cap - taken < G.samp_cap ? cap - taken : G.samp_cap) : 0;
    for (int g = 0; g < 4 && rows > 0; g++) {
      if (!sample[g]) continue;
      const size_t n = (size_t)group_width(g);
      CK(cudaMemcpy2DAsync(sample[g] + (size_t)taken * n, n * 4, F(G.samp) + (size_t)g * G.samp_cap * w, w * 4,
                           n * 4, (size_t)rows, cudaMemcpyDeviceToHost, G.st));
    }
    CK(cudaStreamSynchronize(G.st));
    taken += rows;
  }
  for (int g = 0; sample_rows && g < 4; g++) sample_rows[g] = sample && sample[g] ? taken : 0;
  use(0);
  return 0;
}

static int api_expert_on_all(int e, cslim_gpu_stats *st) {
  pass_arg args[MAX_DEV];
  for (int i = 0; i < g_ndev; i++) args[i] = {0, NULL, NULL, e};
  TRY(parallel(dev_expert_on_all, args, sizeof args[0]));
  TRY(nccl_merge(5 + 2 * e, 2, 0));
  return read_stats(5 + 2 * e, 2, st);
}

// SSZ on device 0 from the min-max codes and scales in s->q / scale (device): best_s gets the result
static int ssz(slot *s, int bits, int max_iter, float *scale_dev, float *best_s) {
  const int n = s->out, k = s->in, qmax = (1 << (bits - 1)) - 1;
  buf *t = &G.ssz;
  TRY(grow(t, (size_t)n * (4 + 8 + 8) + (size_t)n * k + 16));
  float *cur_s = (float *)t->p;
  double *best = (double *)((char *)t->p + (size_t)n * 4 + 8 - ((size_t)n * 4) % 8), *mse = best + n;
  int8_t *cur_q = (int8_t *)(mse + n);
  int *flag = (int *)(cur_q + (size_t)n * k + 4 - ((size_t)n * k) % 4);
  CK(cudaMemcpyAsync(cur_s, scale_dev, (size_t)n * 4, cudaMemcpyDeviceToDevice, G.st));
  CK(cudaMemcpyAsync(best_s, scale_dev, (size_t)n * 4, cudaMemcpyDeviceToDevice, G.st));
  CK(cudaMemcpyAsync(cur_q, s->q.p, (size_t)n * k, cudaMemcpyDeviceToDevice, G.st));
  k_row_mse<<<n, 256, 0, G.st>>>(s->w.p, s->dtype, k, (const int8_t *)s->q.p, scale_dev, best);
  for (int it = 0; it < max_iter; it++) {
    int nc = 0;
    CK(cudaMemsetAsync(flag, 0, 4, G.st));
    k_ssz_iter<<<n, 256, 0, G.st>>>(s->w.p, s->dtype, k, qmax, cur_q, cur_s, best, mse, flag);
    CK(cudaMemcpyAsync(&nc, flag, 4, cudaMemcpyDeviceToHost, G.st));
    CK(cudaStreamSynchronize(G.st));
    if (!nc) break; // every row converged: this iteration's results are not kept (as the CPU)
    k_ssz_keep<<<(n + 255) / 256, 256, 0, G.st>>>(n, mse, cur_s, best, best_s);
  }
  return 0;
}

static int put_codes(int si, const int8_t *codes, int first);

// Codes on device 0 (min-max, then max_iter SSZ iterations when > 0), read back, and copied to the others
static int api_quantize_weight(int si, int bits, int max_iter, int8_t *codes, float *scale, int64_t *rowsum,
                               double *err, double *wsq, int *bad_row) {
  use(0);
  if (si < 0 || si >= G.n_slots) return fail("slot %d out of range", si);
  slot *s = &G.s[si];
  if (!s->loaded) return fail("slot %d has no weights", si);
  const int n = s->out, k = s->in, qmax = (1 << (bits - 1)) - 1;
  const size_t per = 40; // scale, rowsum, err, wsq, bad, SSZ scale: [0, 4n) [8n, 16n) [16n, 24n) [24n, 32n) [32n, 36n) [36n, 40n)
  TRY(grow(&s->q, (size_t)n * k));
  TRY(grow(&G.tmp, (size_t)n * per));
  char *t = (char *)G.tmp.p;
  float *d_scale = (float *)t, *d_best = (float *)(t + (size_t)n * 36);
  long long *d_sum = (long long *)(t + (size_t)n * 8);
  double *d_err = (double *)(t + (size_t)n * 16), *d_wsq = (double *)(t + (size_t)n * 24);
  int *d_bad = (int *)(t + (size_t)n * 32);
  k_wquant<<<n, 256, 0, G.st>>>(s->w.p, s->dtype, k, qmax, NULL, (int8_t *)s->q.p, d_scale, d_sum, d_err, d_wsq, d_bad);
  char *hbuf = (char *)malloc((size_t)n * per);
  if (!hbuf) return fail("out of memory");
  int rc = 0;
  if (max_iter > 0) { // non-finite rows first: SSZ would only spread them
    CK(cudaMemcpyAsync(hbuf, t, (size_t)n * per, cudaMemcpyDeviceToHost, G.st));
    CK(cudaStreamSynchronize(G.st));
    int any_bad = 0;
    for (int r = 0; r < n; r++) any_bad |= ((const int *)(hbuf + (size_t)n * 32))[r];
    if (!any_bad && !(rc = ssz(s, bits, max_iter, d_scale, d_best)))
      k_wquant<<<n, 256, 0, G.st>>>(s->w.p, s->dtype, k, qmax, d_best, (int8_t *)s->q.p, d_scale, d_sum, d_err, d_wsq,
                                    d_bad);
  }
  cudaMemcpyAsync(hbuf, t, (size_t)n * per, cudaMemcpyDeviceToHost, G.st);
  cudaMemcpyAsync(codes, s->q.p, (size_t)n * k, cudaMemcpyDeviceToHost, G.st);
  cudaError_t e = cudaStreamSynchronize(G.st);
  if (rc || e != cudaSuccess) {
    free(hbuf);
    return rc ? rc : fail("weight quantization: %s", cudaGetErrorString(e));
  }
  const int *hb = (const int *)(hbuf + (size_t)n * 32);
  *bad_row = -1;
  for (int r = 0; r < n; r++)
    if (hb[r]) {
      *bad_row = r;
      break;
    }
  memcpy(scale, hbuf, (size_t)n * 4);
  const long long *hs = (const long long *)(hbuf + (size_t)n * 8);
  const double *he = (const double *)(hbuf + (size_t)n * 16), *hw = (const double *)(hbuf + (size_t)n * 24);
  double es = 0, ws = 0;
  for (int r = 0; r < n; r++) {
    rowsum[r] = (int64_t)hs[r];
    es += he[r];
    ws += hw[r];
  }
  *err = es;
  *wsq = ws;
  free(hbuf);
  return put_codes(si, codes, 1); // device 0 made them
}

// host codes [out, in] to slot si on devices first.. (the same codes on every device)
static int put_codes(int si, const int8_t *codes, int first) {
  for (int i = first; i < g_ndev; i++) {
    use(i);
    slot *s = &G.s[si];
    const size_t nq = (size_t)s->out * s->in;
    TRY(grow(&s->q, nq));
    CK(cudaMemcpyAsync(s->q.p, codes, nq, cudaMemcpyHostToDevice, G.st));
    CK(cudaStreamSynchronize(G.st));
  }
  use(0);
  return 0;
}

static int api_set_codes(int si, const int8_t *codes) {
  use(0);
  if (si < 0 || si >= G.n_slots) return fail("slot %d out of range", si);
  if (!G.s[si].loaded) return fail("slot %d has no weights", si);
  return put_codes(si, codes, 0);
}

static int dev_set_qlinear(int si, const cslim_gpu_qlin *q) {
  if (si < 0 || si >= G.n_slots) return fail("slot %d out of range", si);
  slot *s = &G.s[si];
  const size_t n = (size_t)s->out;
  s->p = *q;
  if (q->kind == CSLIM_GPU_LIN_FLOAT) return 0;
  if (!s->q.p) return fail("slot %d: weights not quantized", si);
  if (q->kind == CSLIM_GPU_LIN_STATIC) {
    TRY(upload_f32(&s->deq, q->deq, n));
    TRY(grow(&s->qbias, n * 4));
    CK(cudaMemcpyAsync(s->qbias.p, q->qbias, n * 4, cudaMemcpyHostToDevice, G.st));
  } else {
    TRY(upload_f32(&s->wscale, q->wscale, n));
  }
  if (q->kind == CSLIM_GPU_LIN_W8A16) {
    TRY(grow(&s->wf, n * s->in * 4));
    k_w8a16_weights<<<grid_for(n * s->in), 256, 0, G.st>>>((const int8_t *)s->q.p, s->out, s->in, F(s->wscale),
                                                           G.d.serve, F(s->wf));
    s->fresh = 1; // wf no longer holds the float weights
  }
  CK(cudaStreamSynchronize(G.st));
  s->p.deq = NULL;
  s->p.qbias = NULL;
  s->p.wscale = NULL;
  return 0;
}

static int api_set_qlinear(int si, const cslim_gpu_qlin *q) {
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    TRY(dev_set_qlinear(si, q));
  }
  use(0);
  return 0;
}

static int dev_quant_pass(void *p) {
  (void)p;
  TRY(run_layer(-1, NULL, NULL));
  // the next layer uploads its own — after the second row set's pass when there is one (it follows the first's)
  if (!G.alt.on || G.alt.cur)
    for (int i = 0; i < G.n_slots; i++) G.s[i].loaded = 0;
  return 0;
}

static int api_quant_pass(void) {
  pass_arg args[MAX_DEV];
  return parallel(dev_quant_pass, args, sizeof args[0]);
}

// each device adds the rows it holds (rows ascending: one run of them per device)
static int api_add_rows(int n, const int *rows, const float *x) {
  int j = 0;
  for (int i = 0; i < g_ndev; i++) {
    use(i);
    const int r0 = g_row0[i], r1 = g_row0[i + 1], H = G.d.hidden;
    while (j < n && rows[j] < r0) j++;
    int j1 = j;
    while (j1 < n && rows[j1] < r1) j1++;
    const int k = j1 - j;
    if (!k) continue;
    int *local = (int *)malloc((size_t)k * sizeof(int));
    if (!local) return fail("out of memory");
    for (int t = 0; t < k; t++) local[t] = rows[j + t] - r0;
    const size_t xb = (size_t)k * H * 4;
    if (grow(&G.ds, xb + (size_t)k * 4)) {
      free(local);
      return -1;
    }
    float *dx = F(G.ds);
    int *drows = (int *)((char *)G.ds.p + xb);
    int bad = cudaMemcpyAsync(dx, x + (size_t)j * H, xb, cudaMemcpyHostToDevice, G.st) != cudaSuccess ||
              cudaMemcpyAsync(drows, local, (size_t)k * 4, cudaMemcpyHostToDevice, G.st) != cudaSuccess;
    if (!bad) {
      k_add_rows<<<grid_for((size_t)k * H), 256, 0, G.st>>>(F(G.h), H, drows, dx, k);
      bad = cudaGetLastError() != cudaSuccess || cudaStreamSynchronize(G.st) != cudaSuccess;
    }
    free(local);
    if (bad) return fail("cuda:%d: adding the deepstack rows", G.dev);
    j = j1;
  }
  use(0);
  return 0;
}

// ---- m6's search: X and W stay on device 0 while the candidates are scored ----------------------------------------

static void flex_drop(void) {
  buf *all[] = {&G.fx, &G.fw, &G.fxs, &G.fws, &G.fy, &G.fref, &G.fs, &G.ferr};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
}

static int flex_begin(const float *X, int rows, int n, const float *const *W, const int *outs, int parts,
                      double *ref_rows) {
  int out = 0;
  for (int p = 0; p < parts; p++) out += outs[p];
  const size_t nx = (size_t)rows * n, nw = (size_t)out * n, ny = (size_t)rows * out;
  TRY(grow(&G.fx, nx * 4));
  TRY(grow(&G.fxs, nx * 4));
  TRY(grow(&G.fw, nw * 4));
  TRY(grow(&G.fws, nw * 4));
  TRY(grow(&G.fy, ny * 4));
  TRY(grow(&G.fref, ny * 4));
  TRY(grow(&G.fs, (size_t)n * 4));
  TRY(grow(&G.ferr, (size_t)rows * 8));
  G.f_rows = rows, G.f_n = n, G.f_out = out;
  CK(cudaMemcpyAsync(G.fx.p, X, nx * 4, cudaMemcpyHostToDevice, G.st));
  for (int p = 0, o0 = 0; p < parts; o0 += outs[p++])
    CK(cudaMemcpyAsync(F(G.fw) + (size_t)o0 * n, W[p], (size_t)outs[p] * n * 4, cudaMemcpyHostToDevice, G.st));
  gemm_ordered_launch(G.st, 1, 1, rows, out, n, 1.0f, F(G.fx), n, 0, F(G.fw), n, 0, 1, F(G.fref), out, 0);
  cslim_cuda_flex_err(G.st, F(G.fref), NULL, rows, out, (double *)G.ferr.p);
  CK(cudaGetLastError());
  CK(cudaMemcpyAsync(ref_rows, G.ferr.p, (size_t)rows * 8, cudaMemcpyDeviceToHost, G.st));
  CK(cudaStreamSynchronize(G.st));
  return 0;
}

static int api_flex_begin(const float *X, int rows, int n, const float *const *W, const int *outs, int parts,
                          double *ref_rows) {
  use(0);
  if (!G.on) return fail("the m6 search needs the layer engine started");
  if (flex_begin(X, rows, n, W, outs, parts, ref_rows)) {
    flex_drop();
    return -1;
  }
  return 0;
}

static int api_flex_eval(const float *s, double *err_rows) {
  use(0);
  const int rows = G.f_rows, n = G.f_n, out = G.f_out;
  if (!G.fx.p) return fail("flex_eval without flex_begin");
  CK(cudaMemcpyAsync(G.fs.p, s, (size_t)n * 4, cudaMemcpyHostToDevice, G.st));
  cslim_cuda_flex_fq(G.st, F(G.fx), F(G.fs), 0, rows, n, F(G.fxs));
  cslim_cuda_flex_fq(G.st, F(G.fw), F(G.fs), 1, out, n, F(G.fws));
  gemm_ordered_launch(G.st, 1, 1, rows, out, n, 1.0f, F(G.fxs), n, 0, F(G.fws), n, 0, 1, F(G.fy), out, 0);
  cslim_cuda_flex_err(G.st, F(G.fy), F(G.fref), rows, out, (double *)G.ferr.p);
  CK(cudaGetLastError());
  CK(cudaMemcpyAsync(err_rows, G.ferr.p, (size_t)rows * 8, cudaMemcpyDeviceToHost, G.st));
  CK(cudaStreamSynchronize(G.st));
  return 0;
}

static void api_flex_end(void) {
  use(0);
  flex_drop();
}

// ---- m2's search: the sample rows, the targets and the block they feed stay on device 0 ----------------------------

static void os_drop(void) {
  flex_drop();
  buf *all[] = {&G.fz, &G.fb, &G.fd, &G.fdb, &G.fo, &G.fcos, &G.fsin, &G.fqk, &G.fmm};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
  free(G.f_seq);
  G.f_seq = NULL;
}

// the block after the targets, from their outputs in G.fy (quant/os_plus.c's block_out): q_norm / k_norm, RoPE and
// causal attention per sequence, or SwiGLU and down_proj; the ordered products whatever --gpu_gemm
static int os_block(float *dst) {
  const int rows = G.f_rows, D = G.d.head_dim, nh = G.d.n_heads, nkv = G.d.n_kv_heads;
  float *y0 = F(G.fy), *y1 = y0 + (size_t)rows * G.f_outs[0], *y2 = y1 + (size_t)rows * G.f_outs[1];
  if (!G.f_attn) {
    const int inter = G.f_outs[0], H = G.d.hidden;
    k_silu_mul<<<grid_for((size_t)rows * inter), 256, 0, G.st>>>(y0, y1, (size_t)rows * inter);
    gemm_ordered_launch(G.st, 1, 1, rows, H, inter, 1.0f, y0, inter, 0, F(G.fd), inter, 0, 1, dst, H, 0);
    if (G.f_has_db) cslim_cuda_os_bias(G.st, dst, rows, H, F(G.fdb));
    return 0;
  }
  rmsnorm(y0, rows * nh, D, F(G.fqk), NULL, G.d.eps, y0);
  rmsnorm(y1, rows * nkv, D, F(G.fqk) + D, NULL, G.d.eps, y1);
  k_rope<<<grid_for((size_t)rows * nh * D / 2), 256, 0, G.st>>>(y0, rows, nh, D, F(G.fcos), F(G.fsin));
  k_rope<<<grid_for((size_t)rows * nkv * D / 2), 256, 0, G.st>>>(y1, rows, nkv, D, F(G.fcos), F(G.fsin));
  const int keep = G.d.gemm;
  G.d.gemm = CSLIM_GEMM_FP32; // attention's ordered products and sums
  int rc = 0;
  for (int s = 0; s < G.f_nseq && !rc; s++) {
    const size_t r0 = (size_t)G.f_seq[s];
    rc = attention(y0 + r0 * nh * D, y1 + r0 * nkv * D, y2 + r0 * nkv * D, G.f_seq[s + 1] - G.f_seq[s], 1,
                   dst + r0 * nh * D);
  }
  G.d.gemm = keep;
  return rc;
}

// the targets' products of x (weights w, stacked) into G.fy, plus the biases of set b (-1: the reference's, where
// there are), then the block into dst and each row's squared error against G.fref (ref: dst is the reference)
static int os_run(const float *x, const float *w, int b, float *dst, int ref, double *err_rows) {
  const int rows = G.f_rows, n = G.f_n;
  for (int j = 0, o0 = 0; j < G.f_nt; o0 += G.f_outs[j++]) {
    float *y = F(G.fy) + (size_t)rows * o0;
    gemm_ordered_launch(G.st, 1, 1, rows, G.f_outs[j], n, 1.0f, x, n, 0, w + (size_t)o0 * n, n, 0, 1, y, G.f_outs[j],
                        0);
    if (b >= 0 || G.f_hasb[j])
      cslim_cuda_os_bias(G.st, y, rows, G.f_outs[j], F(G.fb) + (size_t)(b + 1) * G.f_out + o0);
  }
  TRY(os_block(dst));
  if (!ref) {
    const int width = G.f_attn ? G.d.n_heads * G.d.head_dim : G.d.hidden;
    cslim_cuda_flex_err(G.st, dst, F(G.fref), rows, width, (double *)G.ferr.p);
    CK(cudaMemcpyAsync(err_rows, G.ferr.p, (size_t)rows * 8, cudaMemcpyDeviceToHost, G.st));
  }
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(G.st));
  return 0;
}

static int os_begin(const cslim_gpu_os *o) {
  const int rows = o->rows, n = o->n, D = G.d.head_dim;
  int out = 0;
  for (int j = 0; j < o->nt; j++) out += o->outs[j];
  const int width = o->attn ? G.d.n_heads * D : G.d.hidden;
  const size_t nx = (size_t)rows * n, nw = (size_t)out * n;
  G.f_rows = rows, G.f_n = n, G.f_out = out, G.f_attn = o->attn, G.f_nt = o->nt;
  for (int j = 0; j < o->nt; j++) G.f_outs[j] = o->outs[j], G.f_hasb[j] = o->bias[j] != NULL;
  TRY(grow(&G.fx, nx * 4));
  TRY(grow(&G.fxs, nx * 4));
  TRY(grow(&G.fw, nw * 4));
  TRY(grow(&G.fws, nw * 4));
  TRY(grow(&G.fy, (size_t)rows * out * 4));
  TRY(grow(&G.fref, (size_t)rows * width * 4));
  TRY(grow(&G.fo, (size_t)rows * width * 4));
  TRY(grow(&G.fs, (size_t)n * 4));
  TRY(grow(&G.fz, (size_t)n * 4));
  TRY(grow(&G.fb, (size_t)3 * out * 4));
  TRY(grow(&G.ferr, (size_t)rows * 8));
  TRY(grow(&G.fmm, cslim_cuda_os_mm_floats() * 4));
  CK(cudaMemcpyAsync(G.fx.p, o->X, nx * 4, cudaMemcpyHostToDevice, G.st));
  for (int j = 0, o0 = 0; j < o->nt; o0 += o->outs[j++]) {
    CK(cudaMemcpyAsync(F(G.fw) + (size_t)o0 * n, o->W[j], (size_t)o->outs[j] * n * 4, cudaMemcpyHostToDevice, G.st));
    const float *sets[3] = {o->bias[j], o->bias_plain[j], o->bias_shift[j]};
    for (int k = 0; k < 3; k++)
      if (sets[k])
        CK(cudaMemcpyAsync(F(G.fb) + (size_t)k * out + o0, sets[k], (size_t)o->outs[j] * 4, cudaMemcpyHostToDevice,
                           G.st));
  }
  if (o->attn) {
    if (!(G.f_seq = (int *)malloc((size_t)(o->n_seqs + 1) * sizeof(int)))) return fail("out of memory");
    memcpy(G.f_seq, o->seq_start, (size_t)(o->n_seqs + 1) * sizeof(int));
    G.f_nseq = o->n_seqs;
    const size_t nt = (size_t)rows * (D / 2);
    TRY(grow(&G.fcos, nt * 4));
    TRY(grow(&G.fsin, nt * 4));
    TRY(grow(&G.fqk, (size_t)2 * D * 4));
    CK(cudaMemcpyAsync(G.fcos.p, o->cos_t, nt * 4, cudaMemcpyHostToDevice, G.st));
    CK(cudaMemcpyAsync(G.fsin.p, o->sin_t, nt * 4, cudaMemcpyHostToDevice, G.st));
    CK(cudaMemcpyAsync(G.fqk.p, o->q_norm, (size_t)D * 4, cudaMemcpyHostToDevice, G.st));
    CK(cudaMemcpyAsync(F(G.fqk) + D, o->k_norm, (size_t)D * 4, cudaMemcpyHostToDevice, G.st));
  } else {
    const size_t nd = (size_t)G.d.hidden * o->outs[0];
    TRY(grow(&G.fd, nd * 4));
    CK(cudaMemcpyAsync(G.fd.p, o->down_w, nd * 4, cudaMemcpyHostToDevice, G.st));
    G.f_has_db = o->down_b != NULL;
    if (o->down_b) {
      TRY(grow(&G.fdb, (size_t)G.d.hidden * 4));
      CK(cudaMemcpyAsync(G.fdb.p, o->down_b, (size_t)G.d.hidden * 4, cudaMemcpyHostToDevice, G.st));
    }
  }
  return os_run(F(G.fx), F(G.fw), -1, F(G.fref), 1, NULL); // the float block: the reference
}

static int api_os_begin(const cslim_gpu_os *o) {
  use(0);
  if (!G.on) return fail("the m2 search needs the layer engine started");
  if (o->nt < 1 || o->nt > 3 || (!o->attn && o->nt != 2)) return fail("the m2 search: %d targets", o->nt);
  if (os_begin(o)) {
    os_drop();
    return -1;
  }
  return 0;
}

static int api_os_scale(const float *s, const float *z, float *mn, float *mx) {
  use(0);
  if (!G.fx.p || !G.fz.p) return fail("os_scale without os_begin");
  const int n = G.f_n;
  CK(cudaMemcpyAsync(G.fs.p, s, (size_t)n * 4, cudaMemcpyHostToDevice, G.st));
  CK(cudaMemcpyAsync(G.fz.p, z, (size_t)n * 4, cudaMemcpyHostToDevice, G.st));
  cslim_cuda_os_shift(G.st, F(G.fx), F(G.fz), F(G.fs), G.f_rows, n, F(G.fxs), F(G.fmm));
  float mm[2];
  CK(cudaMemcpyAsync(mm, G.fmm.p, sizeof mm, cudaMemcpyDeviceToHost, G.st));
  CK(cudaStreamSynchronize(G.st));
  *mn = mm[0], *mx = mm[1];
  return 0;
}

static int api_os_eval(float scale, float offset, float inv, int shifted, double *err_rows) {
  use(0);
  if (!G.fx.p || !G.fz.p) return fail("os_eval without os_begin");
  cslim_cuda_os_fq(G.st, F(G.fxs), (size_t)G.f_rows * G.f_n, scale, offset, inv);
  cslim_cuda_flex_fq(G.st, F(G.fw), F(G.fs), 1, G.f_out, G.f_n, F(G.fws));
  return os_run(F(G.fxs), F(G.fws), shifted ? 1 : 0, F(G.fo), 0, err_rows);
}

static void api_os_end(void) {
  use(0);
  os_drop();
}

// per device: the most held by any one
static int api_memory(size_t *now, size_t *peak) {
  *now = *peak = 0;
  for (int i = 0; i < g_ndev; i++) {
    if (g_ctx[i].mem_now > *now) *now = g_ctx[i].mem_now;
    if (g_ctx[i].mem_peak > *peak) *peak = g_ctx[i].mem_peak;
  }
  return 0;
}

static int api_devices(void) { return g_ndev; }

static void *api_host_alloc(size_t bytes) {
  void *p = NULL;
  return cudaMallocHost(&p, bytes) == cudaSuccess ? p : NULL;
}

static void api_host_free(void *p) {
  if (p) cudaFreeHost(p);
}

static const cslim_gpu_layer_api g_api = {
    CSLIM_GPU_LAYER_API, api_last_error,      api_set_devices, api_begin,       api_end,        api_set_norms,
    api_set_weight,      api_float_pass,      api_channel_pass, api_expert_on_all, api_quantize_weight, api_set_codes,
    api_set_qlinear,     api_quant_pass,      api_add_rows,    api_host_alloc,  api_host_free,  api_memory,
    api_flex_begin,      api_flex_eval,       api_flex_end,    api_scale_weight, api_begin_alt, api_swap_rows,
    api_devices,         api_os_begin,        api_os_scale,    api_os_eval,      api_os_end};

extern "C" const cslim_gpu_layer_api *cslim_cuda_layer_api(void) { return &g_api; }
