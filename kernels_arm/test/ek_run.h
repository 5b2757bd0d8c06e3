/* Run one kernel of the table on one golden case's inputs (shared by ek_test and ek_count). */
#ifndef EK_RUN_H
#define EK_RUN_H
#include "ek_golden.h"
#include "ek_kernels.h"

/* Runs `k` on case `c`, writing into `out` (at least the size of the case's "y"). Returns 0, or
 * -1 when the case is not for this kernel's op. */
static int ek_run_case(const ek_kernel *k, const ek_case *c, void *out, int32_t *scratch) {
  if (strcmp(k->op, c->op) != 0) return -1;
#define I(key) ek_int(c, key)
  if (!strcmp(c->op, "s8_gemm_requant")) {
    ((ek_s8_gemm_requant_fn)k->fn)(I("m"), I("k"), I("n"), EK_PTR(c, "a", int8_t),
                                   EK_PTR(c, "w", int8_t), EK_PTR(c, "bias", int32_t),
                                   EK_PTR(c, "mult", int32_t), (int)I("shift"), (int32_t)I("lo"),
                                   out);
  } else if (!strcmp(c->op, "s8_dwconv3x3_requant")) {
    ((ek_s8_dwconv3x3_requant_fn)k->fn)(I("c"), I("h"), I("w_in"), (int)I("stride"), (int)I("pad"),
                                        EK_PTR(c, "x", int8_t), EK_PTR(c, "w", int8_t),
                                        EK_PTR(c, "bias", int32_t), EK_PTR(c, "mult", int32_t),
                                        (int)I("shift"), (int32_t)I("lo"), out);
  } else if (!strcmp(c->op, "s8_shiftmax")) {
    ((ek_s8_shiftmax_fn)k->fn)(I("rows"), I("len"), EK_PTR(c, "x", int8_t), (int32_t)I("x0"),
                               (int)I("n"), (int)I("out_bits"), scratch, out);
  } else if (!strcmp(c->op, "s8_shiftgelu")) {
    ((ek_s8_shiftgelu_fn)k->fn)(I("count"), EK_PTR(c, "x", int8_t), (int32_t)I("x0"), (int)I("n"),
                                (int)I("sig_bits"), (int32_t)I("mult"), (int)I("shift"), out);
  } else if (!strcmp(c->op, "s8_ilayernorm")) {
    ((ek_s8_ilayernorm_fn)k->fn)(I("rows"), I("c"), EK_PTR(c, "x", int8_t),
                                 EK_PTR(c, "gamma", int32_t), EK_PTR(c, "beta", int64_t),
                                 (int)I("shift"), out);
  } else if (!strcmp(c->op, "s8_avgpool_requant")) {
    ((ek_s8_avgpool_requant_fn)k->fn)(I("c"), I("h"), I("w_in"), (int)I("kernel"),
                                      (int)I("stride"), (int)I("pad"), EK_PTR(c, "x", int8_t),
                                      EK_PTR(c, "mult", int32_t), (int)I("shift"), out);
  } else if (!strcmp(c->op, "s8_add_requant")) {
    ((ek_s8_add_requant_fn)k->fn)(I("count"), EK_PTR(c, "a", int8_t), EK_PTR(c, "b", int8_t),
                                  (int32_t)I("mult_a"), (int32_t)I("mult_b"), (int)I("shift"), out);
  } else if (!strcmp(c->op, "s8_hardswish")) {
    ((ek_s8_hardswish_fn)k->fn)(I("count"), EK_PTR(c, "x", int8_t), (int32_t)I("r3"),
                                (int32_t)I("r6"), (int32_t)I("mult"), (int)I("shift"), out);
  } else if (!strcmp(c->op, "s8_addconst_requant")) {
    ((ek_s8_addconst_requant_fn)k->fn)(I("count"), EK_PTR(c, "x", int8_t), (int32_t)I("mult"),
                                       EK_PTR(c, "c", int64_t), (int)I("shift"), out);
  } else if (!strcmp(c->op, "s8_mulconst_requant")) {
    ((ek_s8_mulconst_requant_fn)k->fn)(I("count"), EK_PTR(c, "x", int8_t),
                                       EK_PTR(c, "m", int32_t), (int)I("shift"), out);
  } else {
    fprintf(stderr, "no runner for op %s\n", c->op);
    exit(2);
  }
#undef I
  return 0;
}

/* Largest scratch (int32) any case needs: the Shiftmax row length. */
static size_t ek_scratch_len(const ek_case *c) {
  return strcmp(c->op, "s8_shiftmax") == 0 ? (size_t)ek_int(c, "len") : 0;
}
#endif
