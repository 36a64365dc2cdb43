/* Thread-local error message store (one message, with context, per failure). */
#include "cslim/common.h"

#include <stdio.h>
#include <string.h>

#define ERRMSG_CAP 2048

static _Thread_local char g_msg[ERRMSG_CAP];
static _Thread_local cslim_status g_code = CSLIM_OK;

const char *cslim_version(void) {
#ifdef CSLIM_VERSION_STRING
  return CSLIM_VERSION_STRING;
#else
  return "unknown";
#endif
}

const char *cslim_errmsg(void) { return g_msg; }
cslim_status cslim_errcode(void) { return g_code; }

void cslim_error_clear(void) {
  g_msg[0] = '\0';
  g_code = CSLIM_OK;
}

const char *cslim_status_str(cslim_status s) {
  switch (s) {
  case CSLIM_OK: return "ok";
  case CSLIM_ERR_IO: return "I/O error";
  case CSLIM_ERR_FORMAT: return "format error";
  case CSLIM_ERR_INVALID: return "invalid argument";
  case CSLIM_ERR_UNSUPPORTED: return "unsupported";
  case CSLIM_ERR_NOMEM: return "out of memory";
  case CSLIM_ERR_INTERRUPTED: return "interrupted";
  case CSLIM_ERR_NOT_IMPLEMENTED: return "not implemented";
  case CSLIM_ERR_NUMERIC: return "numeric error";
  }
  return "unknown error";
}

cslim_status cslim_error(cslim_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  g_code = code;
  return code;
}

cslim_status cslim_error_context(const char *fmt, ...) {
  char prefix[ERRMSG_CAP];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  if (n < 0) return g_code;
  char old[ERRMSG_CAP];
  memcpy(old, g_msg, sizeof old);
  snprintf(g_msg, sizeof g_msg, "%s: %s", prefix, old);
  return g_code;
}
