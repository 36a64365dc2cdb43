/* Device selection and the dispatch of the float GEMMs (cslim/backend.h).
 * The CUDA side lives in cuda_gemm.cu, a module of CUDA builds loaded on demand. */
#include "cslim/backend.h"
#include "backend/gpu_layer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CSLIM_HAVE_CUDA
#include <dlfcn.h>
#include <unistd.h>

/* cuda_gemm.cu, built as the module libcslim_cuda.so and loaded on the first --device cuda, so that a CPU
 * run never maps cuBLAS ($CSLIM_CUDA_MODULE, beside the executable, the build tree, the install) */
static int (*cuda_device_count)(void);
static int (*cuda_open)(int index, char *name, size_t cap);
static int (*cuda_gemm_nt)(const float *x, const float *w, int rows, int out, int in, float *y);
static const cslim_gpu_layer_api *cuda_layer;

static int load_module(char *why, size_t cap) {
  if (cuda_gemm_nt) return 0;
  char self[4096] = "", beside[4200] = "";
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(beside, sizeof beside, "%s/libcslim_cuda.so", self);
  }
  const char *cand[] = {getenv("CSLIM_CUDA_MODULE"), beside, CSLIM_CUDA_MODULE_BUILD, CSLIM_CUDA_MODULE_INSTALL};
  void *h = NULL;
  for (int i = 0; i < 4 && !h; i++)
    if (cand[i] && *cand[i] && access(cand[i], F_OK) == 0) {
      h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
      if (!h) snprintf(why, cap, "%s", dlerror());
    }
  if (!h) {
    if (!why[0]) snprintf(why, cap, "libcslim_cuda.so not found (set CSLIM_CUDA_MODULE)");
    return -1;
  }
  *(void **)&cuda_device_count = dlsym(h, "cslim_cuda_device_count");
  *(void **)&cuda_open = dlsym(h, "cslim_cuda_open");
  *(void **)&cuda_gemm_nt = dlsym(h, "cslim_cuda_gemm_nt");
  const cslim_gpu_layer_api *(*layer_api)(void) = NULL;
  *(void **)&layer_api = dlsym(h, "cslim_cuda_layer_api");
  if (layer_api) cuda_layer = layer_api();
  if (cuda_layer && cuda_layer->version != CSLIM_GPU_LAYER_API) cuda_layer = NULL;
  if (!cuda_device_count || !cuda_open || !cuda_gemm_nt || !cuda_layer) {
    snprintf(why, cap, "libcslim_cuda.so lacks its entry points");
    cuda_gemm_nt = NULL;
    return -1;
  }
  return 0;
}
#endif

static int g_gpu = -1; /* selected GPU (the first of several), or -1 */
static int g_gpus[16], g_n_gpus;
static char g_desc[160] = "cpu";

int cslim_cuda_built(void) {
#ifdef CSLIM_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

cslim_status cslim_device_select(const char *spec) {
  if (!spec || !strcmp(spec, "cpu")) {
    g_gpu = -1;
    g_n_gpus = 0;
    snprintf(g_desc, sizeof g_desc, "cpu");
    return CSLIM_OK;
  }
  /* cuda, cuda:N or cuda:N,M,... (distinct) */
  int ids[16], n_ids = 0;
  if (strncmp(spec, "cuda", 4) || (spec[4] && spec[4] != ':'))
    return cslim_error(CSLIM_ERR_INVALID, "--device %s: cpu, cuda, cuda:N or cuda:N,M,...", spec);
  if (!spec[4]) {
    ids[n_ids++] = 0;
  } else {
    const char *q = spec + 5;
    for (;;) {
      char *end;
      long v = strtol(q, &end, 10);
      if (end == q || v < 0 || v > 1024 || n_ids == 16)
        return cslim_error(CSLIM_ERR_INVALID, "--device %s: cpu, cuda, cuda:N or cuda:N,M,...", spec);
      for (int i = 0; i < n_ids; i++)
        if (ids[i] == (int)v) return cslim_error(CSLIM_ERR_INVALID, "--device %s: cuda:%ld named twice", spec, v);
      ids[n_ids++] = (int)v;
      if (!*end) break;
      if (*end != ',') return cslim_error(CSLIM_ERR_INVALID, "--device %s: cpu, cuda, cuda:N or cuda:N,M,...", spec);
      q = end + 1;
    }
  }
  /* CSLIM_CUDA_SHARES=n with one GPU: the several-GPU path (samples split n ways, a context, a thread and the
   * layer's weights per share, statistics merged) run on that one GPU, so that one GPU can test it; the module
   * merges through host memory where a GPU repeats, as NCCL refuses one twice */
  const char *sh = getenv("CSLIM_CUDA_SHARES");
  int shares = 1;
  if (sh && *sh) {
    char *end;
    long v = strtol(sh, &end, 10);
    if (*end || v < 1 || v > 16)
      return cslim_error(CSLIM_ERR_INVALID, "CSLIM_CUDA_SHARES=%s: a count of shares, 1 to 16", sh);
    if (v > 1 && n_ids > 1)
      return cslim_error(CSLIM_ERR_INVALID, "CSLIM_CUDA_SHARES=%s splits one GPU, and --device %s names %d GPUs", sh,
                         spec, n_ids);
    shares = (int)v;
  }
#ifdef CSLIM_HAVE_CUDA
  int index = ids[0];
  char why[512] = "";
  if (load_module(why, sizeof why))
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "--device %s: cannot load the CUDA backend: %s", spec, why);
  int n = cuda_device_count();
  if (n <= 0) return cslim_error(CSLIM_ERR_UNSUPPORTED, "--device %s: no CUDA device is visible", spec);
  for (int i = 0; i < n_ids; i++)
    if (ids[i] >= n)
      return cslim_error(CSLIM_ERR_INVALID, "--device %s: cuda:%d does not exist (%d CUDA device(s): 0 .. %d)", spec,
                         ids[i], n, n - 1);
  char name[128] = "";
  if (cuda_open(index, name, sizeof name))
    return cslim_error(CSLIM_ERR_UNSUPPORTED, "--device %s: cannot initialise the device or cuBLAS", spec);
  for (int i = 1; i < shares; i++) ids[n_ids++] = index;
  g_gpu = index;
  g_n_gpus = n_ids;
  memcpy(g_gpus, ids, (size_t)n_ids * sizeof(int));
  if (shares > 1)
    snprintf(g_desc, sizeof g_desc, "cuda:%d (%s) in %d shares (CSLIM_CUDA_SHARES)", index, name, shares);
  else if (n_ids == 1) snprintf(g_desc, sizeof g_desc, "cuda:%d (%s)", index, name);
  else snprintf(g_desc, sizeof g_desc, "%s (%d x %s)", spec, n_ids, name);
  return CSLIM_OK;
#else
  (void)shares;
  return cslim_error(CSLIM_ERR_UNSUPPORTED, "--device %s: this build has no CUDA backend (configure with "
                     "-DCSLIM_CUDA=ON where nvcc and cuBLAS are installed)", spec);
#endif
}

const char *cslim_device_describe(void) { return g_desc; }
int cslim_device_is_gpu(void) { return g_gpu >= 0; }

int cslim_gpu_gemm_nt(const float *x, const float *w, int rows, int out, int in, float *y) {
#ifdef CSLIM_HAVE_CUDA
  /* below ~16 MFLOP the PCIe transfers cost more than the CPU's GEMM */
  if (g_gpu < 0 || (double)rows * out * in < 8e6) return 0;
  return cuda_gemm_nt(x, w, rows, out, in, y) == 0;
#else
  (void)x, (void)w, (void)rows, (void)out, (void)in, (void)y;
  return 0;
#endif
}

const cslim_gpu_layer_api *cslim_gpu_layer_engine(void) {
#ifdef CSLIM_HAVE_CUDA
  return g_gpu >= 0 ? cuda_layer : NULL;
#else
  return NULL;
#endif
}

int cslim_device_gpus(int *ids, int cap) {
  int n = g_gpu >= 0 ? g_n_gpus : 0;
  for (int i = 0; i < n && i < cap; i++) ids[i] = g_gpus[i];
  return n;
}
