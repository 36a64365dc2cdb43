/* Threads, interruption and clocks. */
#include "cslim/common.h"

#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* OpenBLAS exports this; declared here so that the public headers do not
 * depend on cblas.h. */
extern void openblas_set_num_threads(int num_threads);

static int g_threads = 0;
static volatile sig_atomic_t g_interrupted = 0;

double cslim_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t cslim_peak_rss(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports kilobytes */
}

uint64_t cslim_current_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  const long ps = sysconf(_SC_PAGESIZE);
  return n == 2 && ps > 0 ? (uint64_t)resident * (uint64_t)ps : 0;
}

int64_t cslim_disk_bytes_read(void) {
  FILE *f = fopen("/proc/self/io", "r");
  if (!f) return -1;
  char line[128];
  long long v = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "read_bytes: %lld", &v) == 1) break;
  fclose(f);
  return v;
}

void cslim_set_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int cslim_get_threads(void) { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

static void on_signal(int sig) {
  if (g_interrupted) {
    /* Second Ctrl-C: the user insists. Restore the default and re-raise. */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  g_interrupted = 1;
}

void cslim_install_signal_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int cslim_interrupted(void) { return g_interrupted != 0; }
void cslim_set_interrupted(int on) { g_interrupted = on ? 1 : 0; }
