/* Errors, log levels, the progress bar (terminal vs pipe vs --quiet), threads,
 * interruption. */
#include "testutil.h"

#include "cslim/common.h"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run fn with stderr redirected to fd; return what was written (via a file). */
static char *capture_stderr(void (*fn)(void), int use_pty) {
  fflush(stderr);
  int saved = dup(2);
  char path[] = "/tmp/cslim-stderr-XXXXXX";
  int fd = mkstemp(path);
  int master = -1, slave = -1;
  if (use_pty) {
    if (openpty(&master, &slave, NULL, NULL, NULL) != 0) fail_msg("openpty failed");
    dup2(slave, 2);
  } else {
    dup2(fd, 2);
  }
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char *buf = calloc(1, 65536);
  if (use_pty) {
    close(slave);
    ssize_t n, o = 0;
    fcntl(master, F_SETFL, O_NONBLOCK);
    while ((n = read(master, buf + o, 65535 - (size_t)o)) > 0) o += n;
    close(master);
  } else {
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, 65535);
    (void)n;
  }
  close(fd);
  unlink(path);
  return buf;
}

static void work_with_progress(void) {
  cslim_progress p;
  cslim_progress_begin(&p, "layers", 4);
  for (int i = 0; i < 4; i++) cslim_progress_advance(&p, 1);
  cslim_progress_end(&p);
}

static void test_progress_bar(void **s) {
  (void)s;
  cslim_set_quiet(0);
  char *pipe_out = capture_stderr(work_with_progress, 0);
  assert_string_equal(pipe_out, ""); /* not a terminal: nothing */
  free(pipe_out);
  char *tty_out = capture_stderr(work_with_progress, 1);
  assert_non_null(strstr(tty_out, "layers ["));
  assert_non_null(strstr(tty_out, "4/4 100%"));
  free(tty_out);
  cslim_set_quiet(1);
  char *quiet_out = capture_stderr(work_with_progress, 1);
  assert_null(strstr(quiet_out, "layers ["));
  free(quiet_out);
  cslim_set_quiet(0);
}

static void log_all(void) {
  cslim_log(CSLIM_LOG_ERROR, "e%d", 1);
  cslim_log(CSLIM_LOG_WARN, "w%d", 2);
  cslim_log(CSLIM_LOG_INFO, "i%d", 3);
  cslim_log(CSLIM_LOG_DEBUG, "d%d", 4);
}

static void test_log_levels(void **s) {
  (void)s;
  cslim_log_set_level(CSLIM_LOG_INFO);
  char *o = capture_stderr(log_all, 0);
  assert_non_null(strstr(o, "cslim: error: e1\n"));
  assert_non_null(strstr(o, "cslim: warning: w2\n"));
  assert_non_null(strstr(o, "cslim: info: i3\n"));
  assert_null(strstr(o, "d4"));
  free(o);
  cslim_log_set_level(CSLIM_LOG_DEBUG);
  cslim_set_quiet(1); /* quiet keeps warnings and errors only */
  o = capture_stderr(log_all, 0);
  assert_non_null(strstr(o, "w2"));
  assert_null(strstr(o, "i3"));
  free(o);
  cslim_set_quiet(0);
  cslim_log_level lv;
  assert_int_equal(cslim_log_level_parse("DEBUG", &lv), 0);
  assert_int_equal(lv, CSLIM_LOG_DEBUG);
  assert_int_not_equal(cslim_log_level_parse("chatty", &lv), 0);
  cslim_log_set_level(CSLIM_LOG_INFO);
}

static void test_errors_and_context(void **s) {
  (void)s;
  cslim_error_clear();
  assert_string_equal(cslim_errmsg(), "");
  assert_int_equal(cslim_error(CSLIM_ERR_FORMAT, "tensor '%s': bad", "x"), CSLIM_ERR_FORMAT);
  assert_int_equal(cslim_error_context("%s", "model.safetensors"), CSLIM_ERR_FORMAT);
  assert_string_equal(cslim_errmsg(), "model.safetensors: tensor 'x': bad");
  assert_int_equal(cslim_errcode(), CSLIM_ERR_FORMAT);
  assert_string_equal(cslim_status_str(CSLIM_ERR_IO), "I/O error");
}

static void test_threads_and_interrupt(void **s) {
  (void)s;
  cslim_set_threads(1);
  assert_int_equal(cslim_get_threads(), 1);
  cslim_set_threads(0);
  assert_true(cslim_get_threads() >= 1);
  assert_false(cslim_interrupted());
  cslim_set_interrupted(1);
  assert_true(cslim_interrupted());
  cslim_set_interrupted(0);
  cslim_install_signal_handlers();
  raise(SIGINT); /* the handler sets the flag instead of killing us */
  assert_true(cslim_interrupted());
  cslim_set_interrupted(0);
  assert_true(cslim_peak_rss() > 0);
}

/* the resident set follows touched memory; the kernel's disk count never goes back */
static void test_memory_and_io(void **s) {
  (void)s;
  const uint64_t r0 = cslim_current_rss();
  assert_true(r0 > 0);
  const size_t n = (size_t)64 << 20;
  volatile char *p = malloc(n);
  assert_non_null(p);
  for (size_t i = 0; i < n; i += 4096) p[i] = (char)i;
  const uint64_t r1 = cslim_current_rss();
  assert_true(r1 >= r0 + ((uint64_t)48 << 20));
  assert_true(cslim_peak_rss() >= r1 - ((uint64_t)1 << 20)); /* ru_maxrss is in kB */
  free((void *)p);
  const int64_t d0 = cslim_disk_bytes_read();
  FILE *f = fopen(tu_fixture("models/tiny-qwen3/config.json"), "rb");
  assert_non_null(f);
  char buf[256];
  while (fread(buf, 1, sizeof buf, f) > 0) {
  }
  fclose(f);
  const int64_t d1 = cslim_disk_bytes_read();
  assert_true(d0 == -1 ? d1 == -1 : d1 >= d0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_progress_bar),
      cmocka_unit_test(test_log_levels),
      cmocka_unit_test(test_errors_and_context),
      cmocka_unit_test(test_threads_and_interrupt),
      cmocka_unit_test(test_memory_and_io),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
