/* Function-preserving transforms applied before quantization (spec §2.3,
 * §3.9–§3.14): outlier suppression by per-channel smoothing (m1, m2, m4,
 * m6) and QuaRot's Hadamard rotation of the residual stream. Each folds into
 * the weights (and into new norm / linear biases), so the float model
 * computes the same function while its activations become easier to
 * quantize. Exposed for tests and benchmarks; cslim_quantize drives them. */
#ifndef CSLIM_TRANSFORM_H
#define CSLIM_TRANSFORM_H

#include "cslim/common.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Hadamard matrices and rotations (spec §3.14) ----------------------------------- */

/* A ±1 Hadamard matrix of order n (H·Hᵀ = n·I) into h[n*n]: Sylvester for
 * powers of two, Paley I (q prime, q ≡ 3 mod 4: order q+1) and Paley II
 * (q prime, q ≡ 1 mod 4: order 2(q+1)), and Sylvester doublings of those
 * (12, 20, 28, 36, 40, 44, 60, ...). CSLIM_ERR_UNSUPPORTED when none of the
 * constructions gives order n. */
cslim_status cslim_hadamard_matrix(int n, int8_t *h);
/* 1 when a Hadamard transform of size n exists here (n = K·2^m with K a
 * base order above). */
int cslim_hadamard_supported(int n);

typedef enum cslim_rot_mode {
  CSLIM_ROT_HADAMARD = 0,      /* one random Hadamard rotation of the whole size (or of block_size blocks) */
  CSLIM_ROT_BLOCK_SHIFTED      /* B·P·B: block rotation, cyclic shift by half a block, block rotation */
} cslim_rot_mode;

/* R = blockdiag(D_ε·T, ...): ε random signs (seeded), T the orthonormal
 * Hadamard transform of the block, applied by fast butterflies (K·2^m:
 * m radix-2 stages, then the K-point base). */
typedef struct cslim_rotation cslim_rotation;

/* block_size <= 0: one block of size n (HADAMARD) or 32 (BLOCK_SHIFTED). */
cslim_status cslim_rotation_new(int n, int block_size, cslim_rot_mode mode, uint64_t seed, cslim_rotation **out);
void cslim_rotation_free(cslim_rotation *r);
int cslim_rotation_size(const cslim_rotation *r);
/* x[rows][n] ← x·R, row by row (threaded). */
void cslim_rotation_apply_rows(const cslim_rotation *r, float *x, size_t rows);
/* W ← Rᵀ·W for W [n][cols]: the output side of a Linear (rows = output channels). */
cslim_status cslim_rotation_apply_left(const cslim_rotation *r, float *w, int cols);
/* The dense matrix R [n][n] (row i = e_i·R). */
cslim_status cslim_rotation_matrix(const cslim_rotation *r, float *out);

/* ---- smoothing (spec §3.9–§3.13) ------------------------------------------------------------ */

typedef enum cslim_anti_method {
  CSLIM_ANTI_NONE = 0,
  CSLIM_ANTI_M1,  /* SmoothQuant: s = a^α / w^(1-α), norm → linears */
  CSLIM_ANTI_M2,  /* Outlier Suppression+: shift z = (max+min)/2, scale by a grid search on the block output */
  CSLIM_ANTI_M4,  /* iterative smooth: a^α / w^(1-α) ≥ scale_min, shift on norm subgraphs, ov and up-down */
  CSLIM_ANTI_M6   /* flex smooth: α, β searched on the fake-quantized output error */
} cslim_anti_method;

/* Subgraph types a smoothing method visits (cslim_quant_params.anti_subgraphs; 0 = the method's
 * legacy set: m1/m2 norm-linear; m4/m6 norm-linear, ov, up-down). Qwen3 has no linear-linear pair
 * outside ov, so that type is accepted and matches nothing. */
enum {
  CSLIM_SG_NORM_LINEAR = 1,
  CSLIM_SG_OV = 2,
  CSLIM_SG_UP_DOWN = 4,
  CSLIM_SG_LINEAR_LINEAR = 8
};

/* "m1" .. "m6" (m3/m5 are not implemented); 0 on success. */
int cslim_anti_method_parse(const char *s, cslim_anti_method *out);
const char *cslim_anti_method_name(cslim_anti_method m);

/* Per-channel statistics of a Linear group's input. */
typedef struct cslim_chstats {
  int n;            /* channels */
  float *mn, *mx;   /* [n] running min / max */
  int64_t rows;
} cslim_chstats;

cslim_status cslim_chstats_init(cslim_chstats *s, int n);
void cslim_chstats_update(cslim_chstats *s, const float *x, int rows);
void cslim_chstats_free(cslim_chstats *s);

/* SmoothQuant / iter-smooth scale: s_c = max(a_c^α / max(w_c, 1e-5)^(1-α), smin)
 * (a_c = 0 channels get s_c = 1). */
void cslim_smooth_scale(const float *a, const float *w, int n, double alpha, double smin, float *s);

/* m6: α, β searched on X [rows][n] and the targets' W [out][n] (spec §3.13);
 * error = ||Q(X/s)·Q(W·s)ᵀ − X·Wᵀ|| / ||X·Wᵀ|| with per-token / per-row
 * symmetric int8 fake quantization. */
cslim_status cslim_flex_search(const float *X, int rows, int n, const float *W, int out, const float *a,
                               const float *w, double *alpha, double *beta, double *err);
/* The same with the targets' weights in parts (q, k, v; gate, up): W[p] [outs[p]][n], as if stacked
 * one after the other — the same α, β and error, without the stacked copy. */
cslim_status cslim_flex_search_parts(const float *X, int rows, int n, const float *const *W, const int *outs, int parts,
                                     const float *a, const float *w, double *alpha, double *beta, double *err);

#ifdef __cplusplus
}
#endif
#endif
