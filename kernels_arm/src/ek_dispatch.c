/* The kernel table (from EK_KERNELS), CPU feature detection and run-time selection. */
#include <stdlib.h>
#include <string.h>

#include "ek_kernels.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

#define EK_ROW(op, path, isa) {#op, #path, "ek_" #op "__" #path, (isa), (void (*)(void))ek_##op##__##path},
static const ek_kernel kernels[] = {EK_KERNELS(EK_ROW)};
#undef EK_ROW

const ek_kernel *ek_kernel_table(size_t *count) {
  *count = sizeof kernels / sizeof kernels[0];
  return kernels;
}

unsigned ek_cpu_isa(void) {
  unsigned isa = EK_ISA_NONE;
#if defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  if (hw & HWCAP_ASIMD) isa |= EK_ISA_NEON;
  if (hw & HWCAP_ASIMDDP) isa |= EK_ISA_DOT;
  if (hw2 & HWCAP2_I8MM) isa |= EK_ISA_I8MM;
#elif defined(__x86_64__)
  __builtin_cpu_init();  /* CPUID, and XGETBV for the OS-enabled vector state */
  if (__builtin_cpu_supports("avx2")) isa |= EK_ISA_AVX2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    isa |= EK_ISA_VNNI;
#endif
  const char *mask = getenv("EK_ISA_MASK");
  if (mask && *mask) isa &= (unsigned)strtoul(mask, NULL, 0);
  return isa;
}

const ek_kernel *ek_select(const char *op) {
  size_t count;
  const ek_kernel *table = ek_kernel_table(&count), *best = NULL;
  const unsigned isa = ek_cpu_isa();
  for (size_t i = 0; i < count; i++)
    if (strcmp(table[i].op, op) == 0 && (table[i].isa & ~isa) == 0) best = &table[i];
  return best;
}

#define EK_STR2(x) #x
#define EK_STR(x) EK_STR2(x)
const char *ek_build_info(void) {
  return "gcc " __VERSION__
#if defined(__aarch64__)
         " aarch64"
#elif defined(__x86_64__)
         " x86_64"
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
         " +neon"
#elif defined(__aarch64__)
         " +nosimd"
#endif
      ;
}
