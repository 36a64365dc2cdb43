/* Grouped-query attention of one sequence, head by head: S = (Q Kᵀ) * D^-0.5,
 * mask, softmax in float32, O = P V, in the reproducible order of
 * model/repro.h (ordered dot products, cslim_expf, ordered sums) so that the
 * GPU engine's quantized pass gives the same bits. Query head h
 * reads key/value head h / (n_heads / n_kv_heads). The text model's
 * attention is causal; the vision tower's is bidirectional. Queries run in
 * blocks so that a thread's score matrix stays within SCORE_BUDGET floats
 * (a 64k-patch image would otherwise need 16 GB of scores per head). */
#include "model/model_internal.h"
#include "model/repro.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#define SCORE_BUDGET (1 << 22)

static cslim_status attend(const float *q, const float *k, const float *v, int nq, int nk, int past, int causal,
                           int n_heads, int n_kv_heads, int head_dim, float *out) {
  const int D = head_dim, rep = n_heads / n_kv_heads;
  const int ldq = n_heads * D, ldk = n_kv_heads * D;
  const float scale = (float)(1.0 / sqrt((double)D)); /* head_dim ** -0.5 */
  const int nt = omp_get_max_threads();
  int qb = nq;
  if ((size_t)qb * (size_t)nk > SCORE_BUDGET) qb = SCORE_BUDGET / nk > 16 ? SCORE_BUDGET / nk : 16;
  const size_t per = (size_t)qb * (size_t)nk;
  float *Sall = malloc((size_t)nt * per * sizeof(float));
  if (!Sall) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for attention scores (%d x %d)", qb, nk);
  const int nblocks = (nq + qb - 1) / qb;
  int failed = 0;
#pragma omp parallel num_threads(nt)
  {
    float *S = Sall + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int h = 0; h < n_heads; h++)
      for (int blk = 0; blk < nblocks; blk++) {
        const int g = h / rep, i0 = blk * qb, m = nq - i0 < qb ? nq - i0 : qb;
        /* keys a block can see: all (bidirectional) or up to its last row (causal) */
        const int kn = causal ? past + i0 + m : nk;
        if (cslim_gemm_ordered(1, m, kn, D, scale, q + (size_t)i0 * ldq + (size_t)h * D, ldq, k + (size_t)g * D, ldk, S,
                               kn, 1)) {
#pragma omp atomic write
          failed = 1;
          continue;
        }
        for (int i = 0; i < m; i++) {
          float *row = S + (size_t)i * (size_t)kn;
          int valid = causal ? past + i0 + i + 1 : kn;
          float mx = row[0];
          for (int j = 1; j < valid; j++) mx = row[j] > mx ? row[j] : mx;
          for (int j = 0; j < valid; j++) row[j] = cslim_expf(row[j] - mx);
          float sum = 0.0f;
          for (int j = 0; j < valid; j++) sum += row[j];
          for (int j = 0; j < valid; j++) row[j] /= sum;
          for (int j = valid; j < kn; j++) row[j] = 0.0f;
        }
        if (cslim_gemm_ordered(0, m, D, kn, 1.0f, S, kn, v + (size_t)g * D, ldk, out + (size_t)i0 * ldq + (size_t)h * D,
                               ldq, 1)) {
#pragma omp atomic write
          failed = 1;
        }
      }
  }
  free(Sall);
  if (failed) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for attention (%d x %d scores)", qb, nk);
  return CSLIM_OK;
}

cslim_status cslim_attention(const float *q, const float *k, const float *v, int nq, int nk, int past,
                             int n_heads, int n_kv_heads, int head_dim, float *out) {
  return attend(q, k, v, nq, nk, past, 1, n_heads, n_kv_heads, head_dim, out);
}

cslim_status cslim_attention_full(const float *q, const float *k, const float *v, int n, int n_heads,
                                  int n_kv_heads, int head_dim, float *out) {
  return attend(q, k, v, n, n, 0, 0, n_heads, n_kv_heads, head_dim, out);
}
