/* Atomic output directories. */
#include "testutil.h"

#include "cslim/staging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  tu_write_file(p, text, strlen(text));
}

static int has(const char *dir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return access(p, F_OK) == 0;
}

static int count_entries(const char *dir) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
  FILE *f = popen(cmd, "r");
  int n = -1;
  if (fscanf(f, "%d", &n) != 1) n = -1;
  pclose(f);
  return n;
}

static void test_commit_abort_overwrite(void **s) {
  (void)s;
  char *root = tu_tmpdir();
  char target[4096];
  snprintf(target, sizeof target, "%s/out/", root); /* trailing slash is tolerated */
  cslim_staging *sg;
  assert_int_equal(cslim_staging_open(target, 0, &sg), CSLIM_OK);
  /* the staging dir lives beside the target, hidden */
  assert_non_null(strstr(cslim_staging_path(sg), "/.out.cslim-tmp-"));
  put(cslim_staging_path(sg), "a.txt", "one");
  cslim_staging_abort(sg);
  assert_int_equal(count_entries(root), 0); /* nothing left behind */

  assert_int_equal(cslim_staging_open(target, 0, &sg), CSLIM_OK);
  put(cslim_staging_path(sg), "a.txt", "one");
  assert_int_equal(cslim_staging_commit(sg), CSLIM_OK);
  snprintf(target, sizeof target, "%s/out", root);
  assert_true(has(target, "a.txt"));

  /* a non-empty target is refused without overwrite, and left untouched */
  assert_int_equal(cslim_staging_open(target, 0, &sg), CSLIM_ERR_INVALID);
  assert_errmsg_contains("exists and is not empty");
  assert_true(has(target, "a.txt"));

  /* with overwrite the old content is replaced as a whole */
  assert_int_equal(cslim_staging_open(target, 1, &sg), CSLIM_OK);
  put(cslim_staging_path(sg), "b.txt", "two");
  assert_true(has(target, "a.txt")); /* still the old one until commit */
  assert_int_equal(cslim_staging_commit(sg), CSLIM_OK);
  assert_false(has(target, "a.txt"));
  assert_true(has(target, "b.txt"));
  assert_int_equal(count_entries(root), 1);

  /* an existing empty directory is fine */
  char empty[4096];
  snprintf(empty, sizeof empty, "%s/empty", root);
  mkdir(empty, 0755);
  assert_int_equal(cslim_staging_open(empty, 0, &sg), CSLIM_OK);
  assert_int_equal(cslim_staging_commit(sg), CSLIM_OK);

  /* abort_all removes every open staging dir (the CLI's atexit path) */
  cslim_staging *a, *b;
  char t1[4096], t2[4096];
  snprintf(t1, sizeof t1, "%s/x1", root);
  snprintf(t2, sizeof t2, "%s/x2", root);
  assert_int_equal(cslim_staging_open(t1, 0, &a), CSLIM_OK);
  assert_int_equal(cslim_staging_open(t2, 0, &b), CSLIM_OK);
  cslim_staging_abort_all();
  assert_int_equal(count_entries(root), 2); /* out, empty */

  /* errors */
  assert_int_equal(cslim_staging_open("/nonexistent-parent/out", 0, &sg), CSLIM_ERR_IO);
  assert_errmsg_contains("parent directory");
  char file[4096];
  snprintf(file, sizeof file, "%s/out/b.txt", root);
  assert_int_equal(cslim_staging_open(file, 1, &sg), CSLIM_ERR_INVALID);
  assert_errmsg_contains("not a directory");
  tu_rmtree(root);
  free(root);
}

static void test_copy_file(void **s) {
  (void)s;
  char *root = tu_tmpdir();
  char a[4096], b[4096];
  snprintf(a, sizeof a, "%s/a", root);
  snprintf(b, sizeof b, "%s/b", root);
  unsigned char big[200000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7);
  tu_write_file(a, big, sizeof big);
  assert_int_equal(cslim_copy_file(a, b), CSLIM_OK);
  size_t n;
  unsigned char *back = tu_read_file(b, &n);
  assert_int_equal(n, sizeof big);
  assert_memory_equal(back, big, n);
  free(back);
  assert_int_equal(cslim_copy_file("/nonexistent", b), CSLIM_ERR_IO);
  tu_rmtree(root);
  free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_commit_abort_overwrite),
      cmocka_unit_test(test_copy_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
