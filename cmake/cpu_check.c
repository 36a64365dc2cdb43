/* Configure-time probe: can this machine run x86-64-v3 code? */
int main(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
          __builtin_cpu_supports("bmi2")) ? 0 : 1;
#else
  return 1;
#endif
}
