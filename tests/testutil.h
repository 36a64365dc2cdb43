/* Helpers shared by the cmocka tests. */
#ifndef CSLIM_TESTUTIL_H
#define CSLIM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Path of a file under the fixtures directory; fails the test if missing. */
const char *tu_fixture(const char *rel);
/* Path of a file under the source tree. */
const char *tu_source(const char *rel);
/* A fresh temporary directory (caller frees the string and removes it). */
char *tu_tmpdir(void);
void tu_rmtree(const char *path);
/* Write a file; fails the test on error. */
void tu_write_file(const char *path, const void *buf, size_t len);
/* Read a whole file (caller frees). */
unsigned char *tu_read_file(const char *path, size_t *len);
/* A safetensors image: 8-byte length + header + data (caller frees). */
unsigned char *tu_st_image(const char *header, const void *data, size_t data_len, size_t *out_len);
/* ||a - b|| / ||b|| */
double tu_rel_err(const float *a, const float *b, size_t n);
/* Deterministic pseudo-random numbers. */
uint64_t tu_rand(uint64_t *state);
float tu_randf(uint64_t *state); /* uniform in [-1, 1) */
/* Assert that the library's last error message contains `needle`. */
#define assert_errmsg_contains(needle) tu_assert_errmsg(needle, __FILE__, __LINE__)
void tu_assert_errmsg(const char *needle, const char *file, int line);

#endif

/* ---- rewriting checkpoints (for tests that need a variant of a fixture) ---- */
#include "cslim/safetensors.h"

typedef struct tu_writer tu_writer;
/* Emit a tensor: called twice per tensor (declare pass, then data pass);
 * data may be NULL in the declare pass. */
void tu_emit(tu_writer *w, const char *name, cslim_dtype dt, int ndim, const int64_t *shape, const void *data);
/* Called for every tensor of the source; emit what the copy should hold
 * (tu_emit(w, t->name, t->dtype, t->ndim, t->shape, t->data) keeps it). */
typedef void (*tu_transform)(tu_writer *w, const cslim_tensor *t, void *ctx);
/* Copy model directory src to dst (created), rewriting the tensors with fn
 * and config.json with the (from, to) string replacements (NULL-terminated
 * list of pairs). Other files are copied. */
void tu_rewrite_model(const char *src, const char *dst, tu_transform fn, void *ctx, const char *const *config_edits);
/* A tu_transform fusing tiny-qwen3-moe's per-expert tensors into gate_up_proj / down_proj (ctx: an int):
 * 0: the Hub's Qwen3-VL-MoE layout [E, H, 2I] + [E, I, H] (x·W); 1: transformers 5's [E, 2I, H] + [E, H, I]. */
void tu_fuse_experts(tu_writer *w, const cslim_tensor *t, void *ctx);
