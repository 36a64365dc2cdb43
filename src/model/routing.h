/* The MoE router's decision for one token, shared by the CPU forward (moe.c)
 * and the GPU engine's kernel (backend/cuda_layer.cu), so that both route —
 * and break ties — the same way:
 *   p = softmax(logits) over the E experts in float32 (in place), cslim_expf and an ordered sum;
 *   top-k by descending p, ties keeping the lower expert id first;
 *   norm_topk_prob: the k weights divided by their sum. */
#ifndef CSLIM_MODEL_ROUTING_H
#define CSLIM_MODEL_ROUTING_H

#include "model/repro.h"

CSLIM_HOST_DEVICE static inline void cslim_route_token(float *p, int E, int K, int norm, int *sel, float *wts) {
  float mx = p[0];
  for (int e = 1; e < E; e++) mx = p[e] > mx ? p[e] : mx;
  float s = 0.0f;
  for (int e = 0; e < E; e++) {
    p[e] = cslim_expf(p[e] - mx);
    s += p[e];
  }
  for (int e = 0; e < E; e++) p[e] /= s;
  for (int k = 0; k < K; k++) {
    int best = -1;
    for (int e = 0; e < E; e++) {
      int taken = 0;
      for (int j = 0; j < k; j++) taken |= sel[j] == e;
      if (!taken && (best < 0 || p[e] > p[best])) best = e;
    }
    sel[k] = best;
    wts[k] = p[best];
  }
  if (norm) {
    float sum = 0.0f;
    for (int k = 0; k < K; k++) sum += wts[k];
    for (int k = 0; k < K; k++) wts[k] /= sum;
  }
}

/* The routed (token, slot) pairs grouped by expert: count[E], offs[E + 1], and for each expert its
 * rows ascending (tok) with their weights (tw) — the order in which both forwards run and sum the
 * experts. sel / wts: [n_tokens * K]; fill: [E] scratch. Returns the first pair routed to no valid
 * expert (non-finite logits), or -1. */
static inline long cslim_group_by_expert(const int *sel, const float *wts, int n_tokens, int K, int E, int *count,
                                         int *offs, int *fill, int *tok, float *tw) {
  const long n = (long)n_tokens * K;
  for (int e = 0; e < E; e++) count[e] = fill[e] = 0;
  for (long i = 0; i < n; i++) {
    if (sel[i] < 0 || sel[i] >= E) return i;
    count[sel[i]]++;
  }
  offs[0] = 0;
  for (int e = 0; e < E; e++) offs[e + 1] = offs[e] + count[e];
  for (long i = 0; i < n; i++) {
    int e = sel[i], at = offs[e] + fill[e]++;
    tok[at] = (int)(i / K);
    tw[at] = wts[i];
  }
  return -1;
}

#endif
