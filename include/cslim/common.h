/* cslim — common definitions: status codes, error messages, logging,
 * threads, progress reporting and interruption.
 *
 * Error convention (after SQLite): every function that can fail returns a
 * cslim_status. On failure the library stores one message with its context
 * (file, tensor, line) in a thread-local buffer; the caller prints it once,
 * at the top (cslim_errmsg()). The library never calls exit().
 */
#ifndef CSLIM_COMMON_H
#define CSLIM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cslim_status {
  CSLIM_OK = 0,
  CSLIM_ERR_IO = 1,              /* a file could not be opened, read or written */
  CSLIM_ERR_FORMAT = 2,          /* an input file is malformed */
  CSLIM_ERR_INVALID = 3,         /* a bad argument, flag or option value */
  CSLIM_ERR_UNSUPPORTED = 4,     /* well-formed, but not something we handle */
  CSLIM_ERR_NOMEM = 5,           /* out of memory */
  CSLIM_ERR_INTERRUPTED = 6,     /* SIGINT/SIGTERM received */
  CSLIM_ERR_NOT_IMPLEMENTED = 7, /* a feature that has not landed yet */
  CSLIM_ERR_NUMERIC = 8          /* a non-finite or degenerate numeric result */
} cslim_status;

const char *cslim_version(void);

/* ---- errors ------------------------------------------------------------ */

/* The message of the last failure on this thread ("" if none). */
const char *cslim_errmsg(void);
/* The status of the last failure on this thread. */
cslim_status cslim_errcode(void);
/* Short name of a status ("format error", ...). */
const char *cslim_status_str(cslim_status s);
/* Record a failure; returns `code` so that `return cslim_error(...)` works. */
cslim_status cslim_error(cslim_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepend context to the current message: "ctx: <previous message>".
 * Returns the current code. */
cslim_status cslim_error_context(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void cslim_error_clear(void);

/* ---- logging ------------------------------------------------------------ */

typedef enum cslim_log_level {
  CSLIM_LOG_ERROR = 0,
  CSLIM_LOG_WARN = 1,
  CSLIM_LOG_INFO = 2,
  CSLIM_LOG_DEBUG = 3
} cslim_log_level;

void cslim_log_set_level(cslim_log_level level);
cslim_log_level cslim_log_get_level(void);
/* Parse "error|warn|info|debug" (case-insensitive). Returns 0 on success. */
int cslim_log_level_parse(const char *s, cslim_log_level *out);
void cslim_log(cslim_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define CSLIM_WARN(...) cslim_log(CSLIM_LOG_WARN, __VA_ARGS__)
#define CSLIM_INFO(...) cslim_log(CSLIM_LOG_INFO, __VA_ARGS__)
/* its arguments (timings, the RSS read from /proc) are evaluated only when debug messages are on */
#define CSLIM_DEBUG(...)                                                                                      \
  do {                                                                                                        \
    if (cslim_log_get_level() >= CSLIM_LOG_DEBUG) cslim_log(CSLIM_LOG_DEBUG, __VA_ARGS__);                    \
  } while (0)

/* ---- threads -------------------------------------------------------------- */

/* n <= 0 means all cores. Applies to OpenMP and to the BLAS library. */
void cslim_set_threads(int n);
int cslim_get_threads(void);

/* ---- progress ------------------------------------------------------------- */

/* A progress bar on stderr. Drawn only when stderr is a terminal and the
 * library is not quiet; otherwise every call is a cheap no-op. Thread-safe
 * for cslim_progress_advance(). */
typedef struct cslim_progress {
  const char *label;
  uint64_t total;
  uint64_t done; /* atomically updated */
  double t_start;
  double t_drawn;
  int enabled;
} cslim_progress;

void cslim_set_quiet(int quiet);
int cslim_is_quiet(void);
void cslim_progress_begin(cslim_progress *p, const char *label, uint64_t total);
void cslim_progress_advance(cslim_progress *p, uint64_t n);
void cslim_progress_end(cslim_progress *p);

/* ---- interruption ------------------------------------------------------- */

/* Install SIGINT/SIGTERM handlers that set a flag; long-running library
 * loops poll cslim_interrupted() and return CSLIM_ERR_INTERRUPTED, so that
 * the caller can remove partial output. */
void cslim_install_signal_handlers(void);
int cslim_interrupted(void);
/* For tests: raise or clear the flag by hand. */
void cslim_set_interrupted(int on);

/* Monotonic wall clock in seconds. */
double cslim_now(void);
/* Peak resident set size of this process, bytes (0 if unknown). */
uint64_t cslim_peak_rss(void);
/* Resident set size now, bytes (0 if unknown). */
uint64_t cslim_current_rss(void);
/* Bytes this process has had the kernel fetch from storage so far (Linux /proc/self/io read_bytes:
 * reads and page faults that missed the page cache, all threads); -1 if unknown. */
int64_t cslim_disk_bytes_read(void);

#ifdef __cplusplus
}
#endif
#endif /* CSLIM_COMMON_H */
