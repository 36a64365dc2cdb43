/* Qwen3-VL's vision tower, as transformers computes it:
 *
 *   x = patch_embed(pixel_values) + bilinear(pos_embed, grid)      (merge-block order)
 *   per block: x += proj(attn(rope2d(qkv(LN1(x)))))  (bidirectional, per image frame)
 *              x += fc2(gelu_tanh(fc1(LN2(x))))
 *              block in deepstack_visual_indexes: ds_k = merger_k(x) (shuffle, then LN)
 *   embeds = merger(x)                                               (LN, then shuffle)
 *   merger: fc2(gelu_erf(fc1(.))) over 2x2 blocks of patches concatenated.
 *
 * Each block's weights are converted when it runs and freed after. */
#include "cslim/vision.h"
#include "model/model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- input ----------------------------------------------------------------------------------- */

void cslim_vision_input_free(cslim_vision_input *in) {
  if (!in) return;
  free(in->grid);
  free(in->pixel_values);
  memset(in, 0, sizeof *in);
}

cslim_status cslim_vision_input_add_rows(cslim_vision_input *in, const float *rows, int n_rows, int patch_dim,
                                         const int (*grid)[3], int n_images) {
  if (in->n_images && in->patch_dim != patch_dim)
    return cslim_error(CSLIM_ERR_INVALID, "patch rows of width %d cannot join rows of width %d", patch_dim,
                       in->patch_dim);
  int64_t want = 0;
  for (int i = 0; i < n_images; i++) {
    if (grid[i][0] <= 0 || grid[i][1] <= 0 || grid[i][2] <= 0)
      return cslim_error(CSLIM_ERR_INVALID, "image %d: grid (%d, %d, %d) is not positive", i, grid[i][0], grid[i][1],
                         grid[i][2]);
    want += (int64_t)grid[i][0] * grid[i][1] * grid[i][2];
  }
  if (want != n_rows)
    return cslim_error(CSLIM_ERR_INVALID, "image_grid_thw describes %lld patches but pixel_values has %d rows",
                       (long long)want, n_rows);
  int (*g)[3] = realloc(in->grid, (size_t)(in->n_images + n_images) * sizeof *g);
  if (!g) return cslim_error(CSLIM_ERR_NOMEM, "out of memory");
  in->grid = g;
  float *pv = realloc(in->pixel_values, ((size_t)in->n_patches + (size_t)n_rows) * (size_t)patch_dim * sizeof(float));
  if (!pv) return cslim_error(CSLIM_ERR_NOMEM, "out of memory for %d patches", in->n_patches + n_rows);
  in->pixel_values = pv;
  memcpy(pv + (size_t)in->n_patches * (size_t)patch_dim, rows, (size_t)n_rows * (size_t)patch_dim * sizeof(float));
  memcpy(g + in->n_images, grid, (size_t)n_images * sizeof *g);
  in->n_images += n_images;
  in->n_patches += n_rows;
  in->patch_dim = patch_dim;
  return CSLIM_OK;
}

cslim_status cslim_vision_input_add_image(cslim_vision_input *in, const cslim_image_processor *p,
                                          const cslim_image *img, const char *label) {
  float *rows;
  int grid[3];
  cslim_status rc = cslim_image_to_patches(p, img, label, &rows, grid);
  if (rc) return rc;
  rc = cslim_vision_input_add_rows(in, rows, grid[0] * grid[1] * grid[2], cslim_image_patch_dim(p),
                                   (const int(*)[3])grid, 1);
  free(rows);
  return rc;
}

void cslim_vision_output_free(cslim_vision_output *o) {
  if (!o) return;
  free(o->embeds);
  for (int k = 0; k < o->n_deepstack; k++) free(o->deepstack[k]);
  free(o->deepstack);
  free(o->last_hidden);
  memset(o, 0, sizeof *o);
}

/* ---- weights --------------------------------------------------------------------------------- */

typedef struct vis_block {
  float *n1w, *n1b, *n2w, *n2b;
  cslim_linear qkv, proj, fc1, fc2;
} vis_block;

typedef struct vis_merger {
  float *nw, *nb;
  cslim_linear fc1, fc2;
} vis_merger;

static cslim_status load_vec(cslim_model *m, const char *module, const char *what, int n, float **out) {
  char name[192];
  snprintf(name, sizeof name, "%s.%s", module, what);
  return cslim_load_vector(m, name, n, out);
}

static void block_free(cslim_model *m, vis_block *b) {
  free(b->n1w);
  free(b->n1b);
  free(b->n2w);
  free(b->n2b);
  cslim_linear_dispose(m, &b->qkv);
  cslim_linear_dispose(m, &b->proj);
  cslim_linear_dispose(m, &b->fc1);
  cslim_linear_dispose(m, &b->fc2);
  memset(b, 0, sizeof *b);
}

static cslim_status block_load(cslim_model *m, int j, vis_block *b) {
  const cslim_vision_config *v = &m->cfg.vision;
  const int D = v->hidden_size, I = v->intermediate_size;
  char mod[160], sub[192];
  memset(b, 0, sizeof *b);
  snprintf(mod, sizeof mod, "%sblocks.%d", m->vis_prefix, j);
  cslim_status rc = load_vec(m, mod, "norm1.weight", D, &b->n1w);
  if (!rc) rc = load_vec(m, mod, "norm1.bias", D, &b->n1b);
  if (!rc) rc = load_vec(m, mod, "norm2.weight", D, &b->n2w);
  if (!rc) rc = load_vec(m, mod, "norm2.bias", D, &b->n2b);
#define LIN(field, what, o, i)                                                                  \
  if (!rc) {                                                                                    \
    snprintf(sub, sizeof sub, "%s.%s", mod, what);                                             \
    rc = cslim_linear_setup(m, &b->field, sub, o, i, 1, -1);                                                   \
  }
  LIN(qkv, "attn.qkv", 3 * D, D)
  LIN(proj, "attn.proj", D, D)
  LIN(fc1, "mlp.linear_fc1", I, D)
  LIN(fc2, "mlp.linear_fc2", D, I)
#undef LIN
  if (rc) block_free(m, b);
  return rc;
}

static void merger_free(cslim_model *m, vis_merger *g) {
  free(g->nw);
  free(g->nb);
  cslim_linear_dispose(m, &g->fc1);
  cslim_linear_dispose(m, &g->fc2);
  memset(g, 0, sizeof *g);
}

/* k < 0: the main merger; else deepstack merger k */
static cslim_status merger_load(cslim_model *m, int k, vis_merger *g) {
  const cslim_vision_config *v = &m->cfg.vision;
  const int D = v->hidden_size, W = D * v->spatial_merge_size * v->spatial_merge_size;
  char mod[160], sub[192];
  memset(g, 0, sizeof *g);
  if (k < 0) snprintf(mod, sizeof mod, "%smerger", m->vis_prefix);
  else snprintf(mod, sizeof mod, "%sdeepstack_merger_list.%d", m->vis_prefix, k);
  int nn = k < 0 ? D : W;
  cslim_status rc = load_vec(m, mod, "norm.weight", nn, &g->nw);
  if (!rc) rc = load_vec(m, mod, "norm.bias", nn, &g->nb);
  snprintf(sub, sizeof sub, "%s.linear_fc1", mod);
  if (!rc) rc = cslim_linear_setup(m, &g->fc1, sub, W, W, 1, -1);
  snprintf(sub, sizeof sub, "%s.linear_fc2", mod);
  if (!rc) rc = cslim_linear_setup(m, &g->fc2, sub, v->out_hidden_size, W, 1, -1);
  if (rc) merger_free(m, g);
  return rc;
}

/* ---- pieces ---------------------------------------------------------------------------------- */

static cslim_status hook(const cslim_hooks *h, int layer, cslim_input_kind kind, cslim_linear *lin, float *x,
                         int rows) {
  if (!h || !h->linear_input) return CSLIM_OK;
  cslim_linear_group g = {layer, -1, kind, 1, {lin, NULL, NULL}};
  return h->linear_input(h->ctx, &g, x, rows);
}

/* Row r of an image's patch sequence (merge-block order) -> its (row, col) in
 * the patch grid of width gw. */
static void patch_rc(int r, int gw, int M, int *row, int *col) {
  int hw = r, mw = hw % M, mh = hw / M % M, blk = hw / (M * M), bw = blk % (gw / M), bh = blk / (gw / M);
  *row = bh * M + mh;
  *col = bw * M + mw;
}

/* x += bilinear (align_corners) resampling of the G x G position table to
 * each image's grid, in merge-block order. */
static cslim_status add_pos_embed(cslim_model *m, const cslim_vision_input *in, float *x) {
  const cslim_vision_config *v = &m->cfg.vision;
  const int D = v->hidden_size, M = v->spatial_merge_size;
  const int G = (int)(sqrt((double)v->num_position_embeddings) + 0.5);
  float *P;
  char name[192];
  snprintf(name, sizeof name, "%spos_embed.weight", m->vis_prefix);
  cslim_status rc = cslim_load_vector(m, name, v->num_position_embeddings * D, &P);
  if (rc) return rc;
  size_t base = 0;
  for (int i = 0; i < in->n_images; i++) {
    const int t = in->grid[i][0], h = in->grid[i][1], w = in->grid[i][2];
    const int hw = h * w;
#pragma omp parallel for schedule(static) if (hw * t > 64)
    for (int r = 0; r < hw * t; r++) {
      int row, col;
      patch_rc(r % hw, w, M, &row, &col);
      /* src = i (G-1) / (n-1), float32; floor/ceil neighbours, fractional weights */
      float sh = h > 1 ? (float)row * ((float)(G - 1) / (float)(h - 1)) : 0.0f;
      float sw = w > 1 ? (float)col * ((float)(G - 1) / (float)(w - 1)) : 0.0f;
      int h0 = (int)sh, w0 = (int)sw;
      int h1 = h0 + 1 < G ? h0 + 1 : G - 1, w1 = w0 + 1 < G ? w0 + 1 : G - 1;
      float dh = sh - (float)h0, dw = sw - (float)w0;
      float c00 = (1.0f - dh) * (1.0f - dw), c01 = (1.0f - dh) * dw, c10 = dh * (1.0f - dw), c11 = dh * dw;
      const float *p00 = P + ((size_t)h0 * G + w0) * D, *p01 = P + ((size_t)h0 * G + w1) * D,
                  *p10 = P + ((size_t)h1 * G + w0) * D, *p11 = P + ((size_t)h1 * G + w1) * D;
      float *xr = x + (base + (size_t)r) * D;
      for (int d = 0; d < D; d++) xr[d] += ((p00[d] * c00 + p01[d] * c01) + p10[d] * c10) + p11[d] * c11;
    }
    base += (size_t)hw * t;
  }
  free(P);
  return CSLIM_OK;
}

/* cos/sin [n_patches][Dv/2] of the 2-D rotary embedding: the first half of
 * the frequencies turn with the patch row, the second with the column. */
static cslim_status rope2d_tables(const cslim_model *m, const cslim_vision_input *in, float **cos_out,
                                  float **sin_out) {
  const cslim_vision_config *v = &m->cfg.vision;
  const int Dv = v->hidden_size / v->num_heads, half = Dv / 2, q = half / 2, M = v->spatial_merge_size;
  float inv[512];
  if (q > 512) return cslim_error(CSLIM_ERR_UNSUPPORTED, "vision head_dim %d too large", Dv);
  /* the rotary module is built on half the head: 1 / theta^(arange(0, half, 2) / half) */
  cslim_rope_inv_freq(v->rope_theta, half, m->cfg.dtype, inv);
  float *c = malloc((size_t)in->n_patches * half * sizeof(float));
  float *s = malloc((size_t)in->n_patches * half * sizeof(float));
  if (!c || !s) {
    free(c);
    free(s);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory for vision rotary tables");
  }
  size_t base = 0;
  for (int i = 0; i < in->n_images; i++) {
    const int t = in->grid[i][0], w = in->grid[i][2], hw = in->grid[i][1] * w;
#pragma omp parallel for schedule(static) if (hw * t > 64)
    for (int r = 0; r < hw * t; r++) {
      int row, col;
      patch_rc(r % hw, w, M, &row, &col);
      float *cr = c + (base + (size_t)r) * half, *sr = s + (base + (size_t)r) * half;
      for (int k = 0; k < q; k++) {
        float fr = (float)row * inv[k], fc = (float)col * inv[k];
        cr[k] = cosf(fr);
        sr[k] = sinf(fr);
        cr[q + k] = cosf(fc);
        sr[q + k] = sinf(fc);
      }
    }
    base += (size_t)hw * t;
  }
  *cos_out = c;
  *sin_out = s;
  return CSLIM_OK;
}

/* One block on all patches: per-frame segments attend within themselves. */
static cslim_status block_forward(cslim_model *m, vis_block *b, int j, const cslim_vision_input *in, float *x,
                                  const float *cos_t, const float *sin_t, const cslim_hooks *hooks) {
  const cslim_vision_config *v = &m->cfg.vision;
  const int D = v->hidden_size, NH = v->num_heads, HD = D / NH, I = v->intermediate_size;
  const int N = in->n_patches;
  const float eps = 1e-6f;
  float *xn = malloc((size_t)N * D * sizeof(float));
  float *qkv = malloc((size_t)N * 3 * D * sizeof(float));
  float *q = malloc((size_t)N * D * sizeof(float));
  float *k = malloc((size_t)N * D * sizeof(float));
  float *vv = malloc((size_t)N * D * sizeof(float));
  float *o = malloc((size_t)N * D * sizeof(float));
  cslim_status rc = CSLIM_OK;
  if (!xn || !qkv || !q || !k || !vv || !o) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory in vision block %d", j);
  if (!rc) {
    cslim_layernorm_rows(x, N, D, b->n1w, b->n1b, eps, xn);
    rc = hook(hooks, j, CSLIM_IN_VIS_QKV, &b->qkv, xn, N);
  }
  if (!rc) rc = cslim_linear_forward(&b->qkv, xn, N, qkv);
  if (!rc) {
    /* rows of qkv: [q (NH x HD) | k | v] */
#pragma omp parallel for schedule(static) if (N > 64)
    for (int r = 0; r < N; r++) {
      memcpy(q + (size_t)r * D, qkv + (size_t)r * 3 * D, (size_t)D * sizeof(float));
      memcpy(k + (size_t)r * D, qkv + (size_t)r * 3 * D + D, (size_t)D * sizeof(float));
      memcpy(vv + (size_t)r * D, qkv + (size_t)r * 3 * D + 2 * D, (size_t)D * sizeof(float));
    }
    cslim_rope_apply(q, N, NH, HD, cos_t, sin_t);
    cslim_rope_apply(k, N, NH, HD, cos_t, sin_t);
    size_t base = 0;
    for (int i = 0; i < in->n_images && !rc; i++) {
      const int seg = in->grid[i][1] * in->grid[i][2];
      for (int f = 0; f < in->grid[i][0] && !rc; f++, base += (size_t)seg)
        rc = cslim_attention_full(q + base * D, k + base * D, vv + base * D, seg, NH, NH, HD, o + base * D);
    }
  }
  if (!rc) rc = hook(hooks, j, CSLIM_IN_VIS_PROJ, &b->proj, o, N);
  if (!rc) rc = cslim_linear_forward(&b->proj, o, N, xn);
  if (!rc) {
    cslim_add_inplace(x, xn, (size_t)N * D);
    cslim_layernorm_rows(x, N, D, b->n2w, b->n2b, eps, xn);
    rc = hook(hooks, j, CSLIM_IN_VIS_FC1, &b->fc1, xn, N);
  }
  free(qkv);
  free(q);
  free(k);
  free(vv);
  /* MLP in row chunks: the intermediate is I wide */
  const int chunk = N < 4096 ? N : 4096;
  float *u = rc ? NULL : malloc((size_t)chunk * I * sizeof(float));
  if (!rc && !u) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory in vision block %d", j);
  for (int r0 = 0; r0 < N && !rc; r0 += chunk) {
    int n = N - r0 < chunk ? N - r0 : chunk;
    rc = cslim_linear_forward(&b->fc1, xn + (size_t)r0 * D, n, u);
    if (!rc) {
      cslim_gelu_tanh(u, (size_t)n * I);
      rc = hook(hooks, j, CSLIM_IN_VIS_FC2, &b->fc2, u, n);
    }
    if (!rc) rc = cslim_linear_forward(&b->fc2, u, n, o + (size_t)r0 * D);
  }
  if (!rc) cslim_add_inplace(x, o, (size_t)N * D);
  free(u);
  free(xn);
  free(o);
  return rc;
}

/* merger(x) -> out [N / M^2, out_hidden]. postshuffle: LN over the merged
 * 4D-wide rows (deepstack); else LN per patch first (main merger). */
static cslim_status merger_forward(cslim_model *m, vis_merger *g, int layer, int postshuffle, const float *x, int N,
                                   const cslim_hooks *hooks, float *out) {
  const cslim_vision_config *v = &m->cfg.vision;
  const int D = v->hidden_size, M2 = v->spatial_merge_size * v->spatial_merge_size, W = D * M2, T = N / M2;
  float *y = malloc((size_t)N * D * sizeof(float));
  float *h = malloc((size_t)T * W * sizeof(float));
  cslim_status rc = CSLIM_OK;
  if (!y || !h) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory in the vision merger");
  if (!rc) {
    if (postshuffle) cslim_layernorm_rows(x, T, W, g->nw, g->nb, 1e-6f, y);
    else cslim_layernorm_rows(x, N, D, g->nw, g->nb, 1e-6f, y);
    rc = hook(hooks, layer, CSLIM_IN_MERGER_FC1, &g->fc1, y, T);
  }
  if (!rc) rc = cslim_linear_forward(&g->fc1, y, T, h);
  if (!rc) {
    cslim_gelu_erf(h, (size_t)T * W);
    rc = hook(hooks, layer, CSLIM_IN_MERGER_FC2, &g->fc2, h, T);
  }
  if (!rc) rc = cslim_linear_forward(&g->fc2, h, T, out);
  free(y);
  free(h);
  return rc;
}

/* ---- the tower ------------------------------------------------------------------------------ */

void cslim_vision_set_tf32_conv(cslim_model *m, int on) { m->vis_tf32_conv = on; }

/* float32 -> the nearest TF32 value (kept in a float): 13 low mantissa bits
 * rounded away, ties to even */
static float round_tf32(float x) {
  uint32_t b;
  memcpy(&b, &x, 4);
  if ((b & 0x7F800000u) != 0x7F800000u) b = (b + 0xFFFu + ((b >> 13) & 1u)) & ~0x1FFFu;
  memcpy(&x, &b, 4);
  return x;
}

cslim_status cslim_vision_forward(cslim_model *m, const cslim_vision_input *in, const cslim_hooks *hooks,
                                  int keep_last_hidden, cslim_vision_output *out) {
  memset(out, 0, sizeof *out);
  if (!m->cfg.has_vision || !m->vis_prefix)
    return cslim_error(CSLIM_ERR_INVALID, "%s: %s has no vision tower", m->path, m->cfg.architecture);
  const cslim_vision_config *v = &m->cfg.vision;
  const int D = v->hidden_size, M = v->spatial_merge_size, M2 = M * M, N = in->n_patches;
  const int PD = v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
  if (in->n_images == 0 || N == 0) return cslim_error(CSLIM_ERR_INVALID, "no images");
  if (in->patch_dim != PD)
    return cslim_error(CSLIM_ERR_INVALID, "pixel_values rows are %d wide; the vision tower takes %d", in->patch_dim,
                       PD);
  for (int i = 0; i < in->n_images; i++)
    if (in->grid[i][1] % M || in->grid[i][2] % M)
      return cslim_error(CSLIM_ERR_INVALID, "image %d: grid %dx%d is not a multiple of the merge size %d", i,
                         in->grid[i][1], in->grid[i][2], M);
  const int T = N / M2, OH = v->out_hidden_size;
  out->n_tokens = T;
  out->hidden = OH;
  out->n_patches = N;
  out->vision_hidden = D;
  float *x = malloc((size_t)N * D * sizeof(float));
  out->embeds = malloc((size_t)T * OH * sizeof(float));
  out->deepstack = calloc((size_t)(v->n_deepstack ? v->n_deepstack : 1), sizeof(float *));
  float *cos_t = NULL, *sin_t = NULL;
  cslim_status rc = CSLIM_OK;
  if (!x || !out->embeds || !out->deepstack) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for %d patches", N);
  out->n_deepstack = v->n_deepstack;
  for (int k = 0; k < v->n_deepstack && !rc; k++)
    if (!(out->deepstack[k] = malloc((size_t)T * OH * sizeof(float))))
      rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for deepstack features");
  /* patch embedding: the Conv3d with kernel = stride is a GEMM on the flattened rows */
  if (!rc) {
    cslim_linear pe;
    char mod[160];
    snprintf(mod, sizeof mod, "%spatch_embed.proj", m->vis_prefix);
    rc = cslim_linear_setup(m, &pe, mod, D, PD, 1, -1);
    const float *pv = in->pixel_values;
    float *rounded = NULL;
    if (!rc && m->vis_tf32_conv) {
      size_t n = (size_t)N * PD;
      if (!(rounded = malloc(n * sizeof(float)))) rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory");
      for (size_t i = 0; !rc && i < n; i++) rounded[i] = round_tf32(pv[i]);
      pv = rounded;
    }
    if (!rc) rc = cslim_linear_forward(&pe, pv, N, x);
    free(rounded);
    cslim_linear_dispose(m, &pe);
  }
  if (!rc) rc = add_pos_embed(m, in, x);
  if (!rc) rc = rope2d_tables(m, in, &cos_t, &sin_t);
  int produced = 0; /* deepstack features in block order, as transformers appends them */
  for (int j = 0; j < v->depth && !rc; j++) {
    if (cslim_interrupted()) {
      rc = cslim_error(CSLIM_ERR_INTERRUPTED, "interrupted");
      break;
    }
    vis_block b;
    if ((rc = block_load(m, j, &b))) break;
    rc = block_forward(m, &b, j, in, x, cos_t, sin_t, hooks);
    block_free(m, &b);
    for (int k = 0; k < v->n_deepstack && !rc; k++) {
      if (v->deepstack_indexes[k] != j) continue;
      vis_merger g;
      if ((rc = merger_load(m, k, &g))) break;
      rc = merger_forward(m, &g, 1000 + k, 1, x, N, hooks, out->deepstack[produced++]);
      merger_free(m, &g);
    }
  }
  if (!rc) {
    vis_merger g;
    rc = merger_load(m, -1, &g);
    if (!rc) rc = merger_forward(m, &g, -1, 0, x, N, hooks, out->embeds);
    merger_free(m, &g);
  }
  free(cos_t);
  free(sin_t);
  if (!rc && keep_last_hidden) {
    out->last_hidden = x;
    x = NULL;
  }
  free(x);
  if (rc) cslim_vision_output_free(out);
  return rc;
}
