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
