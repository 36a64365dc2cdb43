/* Log levels and the quiet switch. Messages go to stderr, one line each. */
#include "core/internal.h"
#include "cslim/common.h"

#include <stdio.h>
#include <strings.h>

static cslim_log_level g_level = CSLIM_LOG_INFO;
static int g_quiet = 0;

void cslim_log_set_level(cslim_log_level level) { g_level = level; }
cslim_log_level cslim_log_get_level(void) { return g_level; }
void cslim_set_quiet(int quiet) { g_quiet = quiet; }
int cslim_is_quiet(void) { return g_quiet; }

int cslim_log_level_parse(const char *s, cslim_log_level *out) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, names[i]) == 0) {
      *out = (cslim_log_level)i;
      return 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = CSLIM_LOG_WARN;
    return 0;
  }
  return -1;
}

void cslim_log(cslim_log_level level, const char *fmt, ...) {
  if (level > g_level) return;
  if (g_quiet && level > CSLIM_LOG_WARN) return;
  static const char *tags[] = {"error", "warning", "info", "debug"};
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  cslim__progress_clear_line();
  fprintf(stderr, "cslim: %s: %s\n", tags[level], buf);
}
