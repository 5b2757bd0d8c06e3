/* Golden-vector test: every kernel path this CPU can run, on every case of its op, must
 * reproduce the reference output byte for byte.
 *   ek_test GOLDEN [LABEL]   → per-failure lines, the selected path per op, and
 *   "LABEL: N passed, N failed" (exit 1 on any failure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ek_run.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s GOLDEN [LABEL]\n", argv[0]);
    return 2;
  }
  const char *label = argc > 2 ? argv[2] : "host";
  uint32_t ncases;
  ek_case *cases = ek_load_golden(argv[1], &ncases);
  size_t nk;
  const ek_kernel *table = ek_kernel_table(&nk);
  const unsigned isa = ek_cpu_isa();
  int passed = 0, failed = 0, unsupported = 0;
  for (size_t t = 0; t < nk; t++) {
    const ek_kernel *k = &table[t];
    if ((k->isa & ~isa) != 0) {
      unsupported++;
      printf("  %-36s not run: this CPU lacks its ISA\n", k->name);
      continue;
    }
    int kp = 0, kf = 0;
    for (uint32_t i = 0; i < ncases; i++) {
      const ek_case *c = &cases[i];
      if (strcmp(c->op, k->op) != 0) continue;
      const ek_array *want = ek_get(c, "y");
      const size_t bytes = want->count * ek_dtype_size(want->dtype);
      unsigned char *got = malloc(bytes + 64);
      memset(got, 0xA5, bytes + 64); /* canary past the end */
      size_t slen = ek_scratch_len(c);
      int32_t *scratch = malloc((slen ? slen : 1) * sizeof *scratch);
      ek_run_case(k, c, got, scratch);
      size_t bad = bytes;
      for (size_t j = 0; j < bytes; j++)
        if (got[j] != ((unsigned char *)want->data)[j]) {
          bad = j;
          break;
        }
      int overrun = 0;
      for (size_t j = bytes; j < bytes + 64; j++) overrun |= got[j] != 0xA5;
      if (bad == bytes && !overrun) {
        kp++;
      } else {
        kf++;
        if (overrun)
          printf("FAIL %s case %u: wrote past the output\n", k->name, i);
        else
          printf("FAIL %s case %u: byte %zu of %zu: got %d want %d\n", k->name, i, bad, bytes,
                 want->dtype == EK_U8 ? got[bad] : (int8_t)got[bad],
                 want->dtype == EK_U8 ? ((uint8_t *)want->data)[bad]
                                      : ((int8_t *)want->data)[bad]);
      }
      free(got);
      free(scratch);
    }
    printf("  %-36s %d passed, %d failed\n", k->name, kp, kf);
    passed += kp;
    failed += kf;
  }
#define EK_SHOW(op) printf("selected %s: %s\n", #op, ek_select(#op)->path);
  EK_OPS(EK_SHOW)
#undef EK_SHOW
  printf("%s: %d passed, %d failed (%s; isa bits %u; %d kernel(s) not run)\n", label, passed,
         failed, ek_build_info(), isa, unsupported);
  return failed ? 1 : 0;
}
