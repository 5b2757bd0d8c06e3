/* Run one kernel of the table on one golden case's inputs (shared by ek_test and ek_count). */
#ifndef EK_RUN_H
#define EK_RUN_H
#include "ek_golden.h"
#include "ek_kernels.h"

static ek_conv2d_shape ek_case_conv_shape(const ek_case *c) {
  ek_conv2d_shape s = {(size_t)ek_int(c, "c"), (size_t)ek_int(c, "h"), (size_t)ek_int(c, "w_in"),
                       (size_t)ek_int(c, "o"), (size_t)ek_int(c, "groups"),
                       (size_t)ek_int(c, "kh"), (size_t)ek_int(c, "kw"), (size_t)ek_int(c, "sh"),
                       (size_t)ek_int(c, "sw"), (size_t)ek_int(c, "ph"), (size_t)ek_int(c, "pw")};
  return s;
}

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
  } else if (!strcmp(c->op, "s8_matmul_requant")) {
    ((ek_s8_matmul_requant_fn)k->fn)(I("m"), I("k"), I("n"), (int)I("a_unsigned"),
                                     ek_get(c, "a")->data, EK_PTR(c, "bt", int8_t),
                                     EK_PTR(c, "mult", int32_t), (int)I("shift"), scratch, NULL,
                                     out);
  } else if (!strcmp(c->op, "s8_conv2d_requant")) {
    const ek_conv2d_shape s = ek_case_conv_shape(c);
    int8_t *packed = malloc(s.o * (ek_s8_conv2d_packed_k(&s) + s.kh * s.kw) + 1);
    ek_s8_conv2d_pack(&s, EK_PTR(c, "w", int8_t), packed);
    ((ek_s8_conv2d_requant_fn)k->fn)(&s, EK_PTR(c, "x", int8_t), packed,
                                     EK_PTR(c, "bias", int32_t), EK_PTR(c, "mult", int32_t),
                                     (int)I("shift"), (int32_t)I("lo"), scratch, NULL, out);
    free(packed);
  } else if (!strcmp(c->op, "s8_mean_requant")) {
    ((ek_s8_mean_requant_fn)k->fn)(I("outer"), I("count"), I("inner"), EK_PTR(c, "x", int8_t),
                                   (int32_t)I("mult"), (int)I("shift"), out);
  } else if (!strcmp(c->op, "x8_transpose")) {
    ((ek_x8_transpose_fn)k->fn)(I("rows"), I("cols"), EK_PTR(c, "x", uint8_t), I("x_stride"),
                                out, I("y_stride"));
  } else if (!strcmp(c->op, "x8_lut")) {
    ((ek_x8_lut_fn)k->fn)(I("count"), EK_PTR(c, "x", uint8_t), EK_PTR(c, "table", uint8_t), out);
  } else {
    fprintf(stderr, "no runner for op %s\n", c->op);
    exit(2);
  }
#undef I
  return 0;
}

/* Scratch (in int32 units) a case needs: the Shiftmax row, the matmul's and conv2d's scratch. */
static size_t ek_scratch_len(const ek_case *c) {
  if (strcmp(c->op, "s8_shiftmax") == 0) return (size_t)ek_int(c, "len");
  if (strcmp(c->op, "s8_matmul_requant") == 0)
    return ek_s8_matmul_scratch(ek_int(c, "m"), ek_int(c, "k"), ek_int(c, "n"),
                                (int)ek_int(c, "a_unsigned")) / 4 + 1;
  if (strcmp(c->op, "s8_conv2d_requant") == 0) {
    const ek_conv2d_shape s = ek_case_conv_shape(c);
    return ek_s8_conv2d_scratch(&s) / 4 + 1;
  }
  return 0;
}
#endif
