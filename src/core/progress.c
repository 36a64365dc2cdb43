/* A progress bar on stderr with elapsed time and ETA. Drawn only when stderr
 * is a terminal and the library is not quiet. */
#include "core/internal.h"
#include "cslim/common.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static _Atomic int g_bar_visible = 0;

void cslim__progress_clear_line(void) {
  if (atomic_exchange(&g_bar_visible, 0)) fputs("\r\033[K", stderr);
}

static void format_seconds(double s, char *buf, size_t n) {
  if (s < 0 || s > 1e7) {
    snprintf(buf, n, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static void progress_draw(cslim_progress *p, int final) {
  uint64_t done = atomic_load((_Atomic uint64_t *)&p->done);
  double now = cslim_now();
  double frac = p->total ? (double)done / (double)p->total : 0.0;
  if (frac > 1.0) frac = 1.0;
  char bar[31];
  int filled = (int)(frac * 30.0);
  for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
  bar[30] = '\0';
  double elapsed = now - p->t_start;
  char el[32], eta[32];
  format_seconds(elapsed, el, sizeof el);
  format_seconds(final ? 0.0 : (frac > 0 ? elapsed * (1.0 - frac) / frac : -1.0), eta,
                 sizeof eta);
  fprintf(stderr, "\r\033[K%s [%s] %llu/%llu %3.0f%% %s ETA %s", p->label, bar,
          (unsigned long long)done, (unsigned long long)p->total, frac * 100.0, el, eta);
  if (final) fputc('\n', stderr);
  atomic_store(&g_bar_visible, final ? 0 : 1);
  fflush(stderr);
  p->t_drawn = now;
}

void cslim_progress_begin(cslim_progress *p, const char *label, uint64_t total) {
  p->label = label;
  p->total = total;
  atomic_store((_Atomic uint64_t *)&p->done, 0);
  p->t_start = cslim_now();
  p->t_drawn = 0;
  p->enabled = !cslim_is_quiet() && isatty(STDERR_FILENO);
  if (p->enabled) progress_draw(p, 0);
}

void cslim_progress_advance(cslim_progress *p, uint64_t n) {
  atomic_fetch_add((_Atomic uint64_t *)&p->done, n);
  if (!p->enabled) return;
  /* Redraw at most ten times a second, and only from the master thread. */
  if (omp_in_parallel() && omp_get_thread_num() != 0) return;
  if (cslim_now() - p->t_drawn < 0.1) return;
  progress_draw(p, 0);
}

void cslim_progress_end(cslim_progress *p) {
  if (p->enabled) progress_draw(p, 1);
  p->enabled = 0;
}
