/* The edgekit runtime: a defensive .ekr loader, a static arena planned at export time (and
 * re-verified here), and an executor over the kernel table of ek_kernels.h.
 *
 * Every op computes what its IR op's reference() computes (edgekit/intonly/graph.py), bit for
 * bit. The arithmetic runs in the dispatched kernels of EK_KERNELS: linear (gemm), conv2d
 * (depthwise 3x3, or the general im2col + GEMM kernel), matmul (activation × activation), add,
 * shiftmax, layernorm, avgpool, mean, constant add/multiply; ShiftGELU, hardswish, ReLU and a
 * concat input's rescale are 256-entry tables applied by x8_lut; transposes run on x8_transpose.
 * What stays here: quantize/dequantize at the graph's edges, reshape (a view or a move),
 * slice/concat runs, and a mean over axes that are not one contiguous block. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "ek_common.h"
#include "ek_kernels.h"
#include "ekr.h"
#include "ekr_format.h"

#define EKR_MAX_TENSORS 65536u
#define EKR_MAX_OPS 65536u
#define EKR_MAX_DIM (1 << 24)
#define EKR_MAX_NUMEL ((uint64_t)1 << 31)
#define EKR_MAX_ARENA ((uint64_t)1 << 30)
#define EKR_ALIGN 16u
/* int32 accumulators of the gemm: K·128·128 + |bias| must stay below 2^31 */
#define EKR_ACC_LIMIT ((int64_t)1 << 31)

typedef struct {
  int dtype, rank, storage;
  int32_t dims[EKR_MAX_RANK];
  uint64_t offset, nbytes, numel;
  int written;    /* loader: produced by an earlier op (or the graph input) */
  int32_t last;   /* loader: index of the last op reading it (n_ops: the graph output) */
  int32_t first;  /* loader: index of the defining op (-1: graph input, constants) */
} ekr_tensor;

typedef struct {
  uint32_t type, n_inputs;
  uint32_t inputs[EKR_MAX_INPUTS];
  uint32_t output;
  uint64_t scratch_offset, scratch_bytes;
  int64_t p[EKR_MAX_PARAMS];
  int32_t *aux;   /* matmul: the requant multiplier per output column */
  int8_t *aux8;   /* conv2d (im2col): weights packed by ek_s8_conv2d_pack;
                   * elementwise ops of one int8 input: their 256-entry table, by (uint8) x;
                   * concat: one table per input (its rescale) */
} ekr_op;

struct ekr_model {
  uint8_t *file;  /* owned copy of the file */
  uint8_t *arena;
  const uint8_t *data;
  uint64_t arena_bytes, lower_bound;
  uint32_t n_tensors, n_ops, input, output;
  ekr_tensor *tensors;
  ekr_op *ops;
  ek_s8_gemm_requant_fn gemm;
  ek_s8_dwconv3x3_requant_fn dwconv3x3;
  ek_s8_shiftmax_fn shiftmax;
  ek_s8_shiftgelu_fn shiftgelu;
  ek_s8_ilayernorm_fn layernorm;
  ek_s8_avgpool_requant_fn avgpool;
  ek_s8_add_requant_fn add;
  ek_s8_hardswish_fn hardswish;
  ek_s8_addconst_requant_fn addconst;
  ek_s8_mulconst_requant_fn mulconst;
  ek_s8_matmul_requant_fn matmul;
  ek_s8_conv2d_requant_fn conv2d;
  ek_s8_mean_requant_fn mean;
  ek_x8_transpose_fn transpose;
  ek_x8_lut_fn lut;
  char paths[1024];
  struct ekr_pool *pool;  /* NULL: one thread */
  ekr_op_hook *hook;
  void *hook_ctx;
};

/* --- little helpers ---------------------------------------------------------------------- */

static int fail(char *err, size_t n, const char *fmt, ...) {
  if (err && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
  }
  return 1;
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  static uint32_t table[256];
  static int ready;
  if (!ready) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = 1;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static size_t dtype_size(int dtype) {
  switch (dtype) {
    case EKR_F32: case EKR_I32: return 4;
    case EKR_I8: case EKR_U8: return 1;
    case EKR_I64: return 8;
    default: return 0;
  }
}

static const char *op_name(uint32_t type) {
  switch (type) {
#define EKR_NAME(name, code) case code: return #name;
    EKR_OPS(EKR_NAME)
#undef EKR_NAME
    default: return "unknown";
  }
}

static int same_dims(const ekr_tensor *a, const ekr_tensor *b) {
  if (a->rank != b->rank) return 0;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return 0;
  return 1;
}

static int overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn) {
  return an && bn && a < b + bn && b < a + an;
}

#define T(i) (&m->tensors[op->inputs[i]])
#define OUT (&m->tensors[op->output])
#define PTR(t, type) ((type *)((t)->storage == EKR_CONST ? (void *)(m->data + (t)->offset) \
                                                         : (void *)(m->arena + (t)->offset)))
#define SCRATCH(type, at) ((type *)(m->arena + op->scratch_offset + (at)))

/* --- per-op checks (the ranges where the kernels and loops below are exact) ---------------- */

#define CHECK(cond, ...) do { if (!(cond)) return fail(err, en, __VA_ARGS__); } while (0)

static int check_shift(int64_t s, char *err, size_t en) {
  CHECK(s >= 0 && s <= 62, "shift %lld outside 0..62", (long long)s);
  return 0;
}
static int is_const(const ekr_tensor *t, int dtype) {
  return t->storage == EKR_CONST && t->dtype == dtype;
}
static int64_t abs_max(const ekr_model *m, const ekr_tensor *t) {
  int64_t best = 0;
  for (uint64_t i = 0; i < t->numel; i++) {
    int64_t v = t->dtype == EKR_I32 ? PTR(t, const int32_t)[i]
              : t->dtype == EKR_I64 ? PTR(t, const int64_t)[i] : PTR(t, const int8_t)[i];
    if (v == INT64_MIN) return INT64_MAX;
    v = v < 0 ? -v : v;
    if (v > best) best = v;
  }
  return best;
}
static int64_t min_value(const ekr_model *m, const ekr_tensor *t) {
  int64_t best = INT64_MAX;
  for (uint64_t i = 0; i < t->numel; i++) {
    int64_t v = t->dtype == EKR_I32 ? PTR(t, const int32_t)[i] : PTR(t, const int64_t)[i];
    if (v < best) best = v;
  }
  return best;
}
/* a per-channel vector constant: dtype, one dim of length n */
static int check_vector(const ekr_tensor *t, int dtype, int64_t n, const char *what, char *err,
                        size_t en) {
  CHECK(is_const(t, dtype) && t->rank == 1 && t->dims[0] == n,
        "%s must be a constant %s vector of %lld", what, dtype == EKR_I32 ? "int32" : "int64",
        (long long)n);
  return 0;
}
/* a constant broadcast against x: same rank, every dim 1 or x's */
static int check_broadcast(const ekr_tensor *c, const ekr_tensor *x, int dtype, char *err,
                           size_t en) {
  CHECK(c->storage == EKR_CONST && c->dtype == dtype && c->rank == x->rank,
        "the constant operand must be a constant of the tensor's rank");
  for (int i = 0; i < x->rank; i++)
    CHECK(c->dims[i] == 1 || c->dims[i] == x->dims[i], "constant dim %d (%d) does not "
          "broadcast to %d", i, c->dims[i], x->dims[i]);
  return 0;
}
static uint64_t align16(uint64_t n) { return (n + EKR_ALIGN - 1) / EKR_ALIGN * EKR_ALIGN; }

/* bᵀ [n][k] unless b comes transposed, then the kernel's (bias [n] int32, then for uint8 a
 * a − 128 [m][k]: ek_s8_matmul_scratch) */
uint64_t ekr_matmul_scratch(uint64_t m_rows, uint64_t k, uint64_t n, int a_unsigned,
                            int b_transposed) {
  return (b_transposed ? 0 : align16(k * n)) +
         (uint64_t)ek_s8_matmul_scratch((size_t)m_rows, (size_t)k, (size_t)n, a_unsigned);
}

/* a conv2d op's geometry (params: shift, relu, sh, sw, ph, pw, groups) */
static ek_conv2d_shape conv_shape(const ekr_tensor *x, const ekr_tensor *w, const int64_t *p) {
  ek_conv2d_shape s = {(size_t)x->dims[1], (size_t)x->dims[2], (size_t)x->dims[3],
                       (size_t)w->dims[0], (size_t)p[6], (size_t)w->dims[2], (size_t)w->dims[3],
                       (size_t)p[2], (size_t)p[3], (size_t)p[4], (size_t)p[5]};
  return s;
}

static int check_op(ekr_model *m, ekr_op *op, char *err, size_t en) {
  const ekr_tensor *out = OUT;
  const int64_t *p = op->p;
  uint64_t need_scratch = 0;
  const uint32_t want_inputs[EKR_OP_COUNT] = {
      [EKR_OP_quantize] = 1, [EKR_OP_dequantize] = 1, [EKR_OP_linear] = 4,
      [EKR_OP_conv2d] = 4, [EKR_OP_matmul] = 2, [EKR_OP_add] = 2, [EKR_OP_shiftmax] = 1,
      [EKR_OP_shiftgelu] = 1, [EKR_OP_layernorm] = 3, [EKR_OP_reshape] = 1,
      [EKR_OP_transpose] = 1, [EKR_OP_slice] = 1, [EKR_OP_concat] = 0, [EKR_OP_mean] = 1,
      [EKR_OP_relu] = 1, [EKR_OP_avgpool] = 2, [EKR_OP_mulconst] = 2, [EKR_OP_addconst] = 2,
      [EKR_OP_hardswish] = 1};
  if (op->type != EKR_OP_concat)
    CHECK(op->n_inputs == want_inputs[op->type], "takes %u inputs, the file gives %u",
          want_inputs[op->type], op->n_inputs);
  const ekr_tensor *x = T(0);
  switch (op->type) {
    case EKR_OP_quantize: {
      double scale;
      memcpy(&scale, &p[0], sizeof scale);
      CHECK(x->dtype == EKR_F32 && out->dtype == EKR_I8 && same_dims(x, out),
            "float32 in, int8 out of the same shape");
      CHECK(isfinite(scale) && scale > 0, "scale must be positive and finite");
      break;
    }
    case EKR_OP_dequantize: {
      float scale;
      uint32_t bits = (uint32_t)p[0];
      memcpy(&scale, &bits, sizeof scale);
      CHECK((x->dtype == EKR_I8 || x->dtype == EKR_U8) && out->dtype == EKR_F32 &&
            same_dims(x, out), "int8 in, float32 out of the same shape");
      CHECK(isfinite(scale) && scale > 0, "scale must be positive and finite");
      break;
    }
    case EKR_OP_linear: {
      const ekr_tensor *w = T(1);
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && x->rank >= 1, "int8 in and out");
      CHECK(is_const(w, EKR_I8) && w->rank == 2 && w->dims[1] == x->dims[x->rank - 1],
            "weight must be a constant int8 [out, %d]", x->dims[x->rank - 1]);
      if (check_vector(T(2), EKR_I32, w->dims[0], "bias", err, en) ||
          check_vector(T(3), EKR_I32, w->dims[0], "mult", err, en) || check_shift(p[0], err, en))
        return 1;
      CHECK(out->rank == x->rank && out->dims[out->rank - 1] == w->dims[0],
            "output shape must be the input's with %d features", w->dims[0]);
      for (int i = 0; i + 1 < x->rank; i++) CHECK(out->dims[i] == x->dims[i], "output shape");
      CHECK(p[1] == 0 || p[1] == 1, "relu flag must be 0 or 1");
      CHECK((int64_t)w->dims[1] * 16384 + abs_max(m, T(2)) < EKR_ACC_LIMIT,
            "int32 accumulator bound exceeded (k %d, bias)", w->dims[1]);
      CHECK(min_value(m, T(3)) >= 0, "multipliers must be >= 0");
      break;
    }
    case EKR_OP_conv2d: {
      const ekr_tensor *w = T(1);
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && x->rank == 4 && out->rank == 4,
            "int8 NCHW in and out");
      CHECK(is_const(w, EKR_I8) && w->rank == 4, "weight must be a constant int8 [O, C/g, kh, kw]");
      const int64_t g = p[6], sh = p[2], sw = p[3], ph = p[4], pw = p[5];
      CHECK(g >= 1 && x->dims[1] % g == 0 && w->dims[0] % g == 0 && w->dims[1] * g == x->dims[1],
            "groups %lld do not split %d input / %d output channels", (long long)g, x->dims[1],
            w->dims[0]);
      CHECK(sh >= 1 && sh <= 64 && sw >= 1 && sw <= 64, "stride outside 1..64");
      CHECK(ph >= 0 && ph < w->dims[2] && pw >= 0 && pw < w->dims[3], "padding outside 0..k-1");
      CHECK(x->dims[2] + 2 * ph >= w->dims[2] && x->dims[3] + 2 * pw >= w->dims[3],
            "input smaller than the kernel");
      const int64_t oh = (x->dims[2] + 2 * ph - w->dims[2]) / sh + 1;
      const int64_t ow = (x->dims[3] + 2 * pw - w->dims[3]) / sw + 1;
      CHECK(out->dims[0] == x->dims[0] && out->dims[1] == w->dims[0] && out->dims[2] == oh &&
            out->dims[3] == ow, "output shape must be [%d, %d, %lld, %lld]", x->dims[0],
            w->dims[0], (long long)oh, (long long)ow);
      if (check_vector(T(2), EKR_I32, w->dims[0], "bias", err, en) ||
          check_vector(T(3), EKR_I32, w->dims[0], "mult", err, en) || check_shift(p[0], err, en))
        return 1;
      CHECK(p[1] == 0 || p[1] == 1, "relu flag must be 0 or 1");
      CHECK((int64_t)w->dims[1] * w->dims[2] * w->dims[3] * 16384 + abs_max(m, T(2)) <
                EKR_ACC_LIMIT, "int32 accumulator bound exceeded");
      CHECK(min_value(m, T(3)) >= 0, "multipliers must be >= 0");
      const ek_conv2d_shape shape = conv_shape(x, w, p);
      need_scratch = ek_s8_conv2d_scratch(&shape);
      break;
    }
    case EKR_OP_matmul: {
      const ekr_tensor *b = T(1);
      const int r = x->rank, bt = (int)p[2];
      CHECK((x->dtype == EKR_I8 || x->dtype == EKR_U8) && b->dtype == EKR_I8 &&
            out->dtype == EKR_I8 && r >= 2 && b->rank == r && out->rank == r,
            "int8|uint8 [..., M, K] @ int8 [..., K, N] of one rank");
      CHECK(b->storage == EKR_ARENA && x->storage == EKR_ARENA, "operands are activations");
      CHECK(bt == 0 || bt == 1, "b-transposed flag must be 0 or 1");
      for (int i = 0; i + 2 < r; i++)
        CHECK(x->dims[i] == b->dims[i] && out->dims[i] == x->dims[i], "batch dims differ");
      const int32_t bk = b->dims[r - 2 + bt], bn = b->dims[r - 1 - bt];
      CHECK(bk == x->dims[r - 1] && out->dims[r - 2] == x->dims[r - 2] && out->dims[r - 1] == bn,
            "matmul shapes do not chain");
      CHECK((int64_t)x->dims[r - 1] * 32768 < EKR_ACC_LIMIT, "int32 accumulator bound (K)");
      CHECK(p[0] >= 0 && p[0] <= INT32_MAX, "multiplier outside int32");
      if (check_shift(p[1], err, en)) return 1;
      need_scratch = ekr_matmul_scratch((uint64_t)x->dims[r - 2], (uint64_t)x->dims[r - 1],
                                        (uint64_t)bn, x->dtype == EKR_U8, bt);
      break;
    }
    case EKR_OP_add:
      CHECK(x->dtype == EKR_I8 && T(1)->dtype == EKR_I8 && out->dtype == EKR_I8 &&
            same_dims(x, T(1)) && same_dims(x, out), "int8 operands of one shape");
      CHECK(p[0] >= INT32_MIN && p[0] <= INT32_MAX && p[1] >= INT32_MIN && p[1] <= INT32_MAX,
            "multipliers outside int32");
      if (check_shift(p[2], err, en)) return 1;
      break;
    case EKR_OP_shiftmax:
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_U8 && same_dims(x, out) && x->rank >= 1,
            "int8 in, uint8 out of the same shape");
      CHECK(p[0] < 0 && p[0] >= -32768, "x0 outside -2^15..-1 (scale >= 2^-15)");
      CHECK(p[1] >= 0 && p[1] <= 15 && p[2] >= 1 && p[2] <= 8, "n 0..15, out_bits 1..8");
      need_scratch = 4 * (uint64_t)x->dims[x->rank - 1];
      break;
    case EKR_OP_shiftgelu:
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && same_dims(x, out), "int8 in and out");
      CHECK(p[0] < 0 && p[0] >= -32768, "x0 outside -2^15..-1");
      CHECK(p[1] >= 0 && p[1] <= 15 && p[2] >= 1 && p[2] <= 8, "n 0..15, sig_bits 1..8");
      CHECK(p[3] >= INT32_MIN && p[3] <= INT32_MAX, "multiplier outside int32");
      if (check_shift(p[4], err, en)) return 1;
      break;
    case EKR_OP_layernorm: {
      const int64_t c = x->dims[x->rank - 1];
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && same_dims(x, out) && x->rank >= 1,
            "int8 in and out");
      CHECK(c < (1 << 17), "width %lld too large (< 2^17)", (long long)c);
      if (check_vector(T(1), EKR_I32, c, "gamma", err, en) ||
          check_vector(T(2), EKR_I64, c, "beta", err, en) || check_shift(p[0], err, en))
        return 1;
      CHECK(abs_max(m, T(1)) < (1 << 24), "gamma outside +-2^24");
      CHECK(abs_max(m, T(2)) < ((int64_t)1 << 61), "beta outside +-2^61");
      break;
    }
    case EKR_OP_reshape:
      CHECK(x->dtype == out->dtype && x->numel == out->numel, "reshape keeps dtype and size");
      CHECK(x->storage == EKR_ARENA, "reshape of an activation");
      break;
    case EKR_OP_transpose: {
      int seen = 0;
      CHECK(x->dtype == out->dtype && dtype_size(x->dtype) == 1 && out->rank == x->rank,
            "transpose of a one-byte tensor, same rank");
      for (int i = 0; i < x->rank; i++) {
        CHECK(p[i] >= 0 && p[i] < x->rank && !(seen & (1 << p[i])), "perm is not a permutation");
        seen |= 1 << p[i];
        CHECK(out->dims[i] == x->dims[p[i]], "output dim %d", i);
      }
      break;
    }
    case EKR_OP_slice: {
      const int64_t axis = p[0], start = p[1], end = p[2], step = p[3];
      CHECK(x->dtype == out->dtype && dtype_size(x->dtype) == 1 && out->rank == x->rank,
            "slice of a one-byte tensor");
      CHECK(axis >= 0 && axis < x->rank, "axis outside the rank");
      CHECK(start >= 0 && start <= end && end <= x->dims[axis] && step >= 1 && step <= x->dims[axis],
            "slice range outside the dim");
      for (int i = 0; i < x->rank; i++)
        CHECK(out->dims[i] == (i == axis ? (end - start + step - 1) / step : x->dims[i]),
              "output dim %d", i);
      break;
    }
    case EKR_OP_concat: {
      const int64_t axis = p[0];
      int64_t total = 0;
      CHECK(op->n_inputs >= 1 && op->n_inputs <= EKR_MAX_INPUTS, "1..8 inputs");
      CHECK(out->dtype == EKR_I8 && axis >= 0 && axis < out->rank, "int8 out, axis in rank");
      if (check_shift(p[1], err, en)) return 1;
      for (uint32_t k = 0; k < op->n_inputs; k++) {
        const ekr_tensor *t = T(k);
        CHECK(t->dtype == EKR_I8 && t->rank == out->rank, "int8 inputs of the output's rank");
        for (int i = 0; i < t->rank; i++)
          if (i != axis) CHECK(t->dims[i] == out->dims[i], "input %u dim %d", k, i);
        CHECK(p[2 + k] >= 0 && p[2 + k] <= INT32_MAX, "multiplier outside int32");
        total += t->dims[axis];
      }
      CHECK(total == out->dims[axis], "concatenated dim");
      break;
    }
    case EKR_OP_mean: {
      const int64_t mask = p[0];
      int64_t count = 1, kept = 1;
      int reduced = 0;
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8, "int8 in and out");
      CHECK(mask > 0 && mask < (1 << x->rank), "axes outside the rank");
      for (int i = 0; i < x->rank; i++) {
        if (mask & (1 << i)) { count *= x->dims[i]; reduced++; }
        else kept *= x->dims[i];
      }
      CHECK(count < (1 << 24), "too many elements per mean");
      CHECK(out->numel == (uint64_t)kept && (out->rank == x->rank || out->rank == x->rank - reduced),
            "output shape");
      for (int i = 0, j = 0; i < x->rank; i++) {
        if (out->rank == x->rank) CHECK(out->dims[i] == ((mask & (1 << i)) ? 1 : x->dims[i]), "dim");
        else if (!(mask & (1 << i))) CHECK(out->dims[j++] == x->dims[i], "dim");
      }
      CHECK(p[1] >= 0 && p[1] <= INT32_MAX, "multiplier outside int32");
      if (check_shift(p[2], err, en)) return 1;
      break;
    }
    case EKR_OP_relu:
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && same_dims(x, out), "int8 in and out");
      break;
    case EKR_OP_avgpool: {
      const int64_t k = p[0], s = p[1], pad = p[2];
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && x->rank == 4 && out->rank == 4,
            "int8 NCHW in and out");
      CHECK(k >= 1 && k <= 16 && s >= 1 && s <= 16 && pad >= 0 && 2 * pad <= k,
            "kernel 1..16, stride 1..16, pad <= kernel/2");
      CHECK(x->dims[2] + 2 * pad >= k && x->dims[3] + 2 * pad >= k, "input smaller than the pool");
      const int64_t oh = (x->dims[2] + 2 * pad - k) / s + 1, ow = (x->dims[3] + 2 * pad - k) / s + 1;
      CHECK(out->dims[0] == x->dims[0] && out->dims[1] == x->dims[1] && out->dims[2] == oh &&
            out->dims[3] == ow, "output shape");
      CHECK(is_const(T(1), EKR_I32) && T(1)->rank == 2 && T(1)->dims[0] == oh &&
            T(1)->dims[1] == ow, "multipliers must be a constant int32 [oh, ow]");
      CHECK(min_value(m, T(1)) >= 0, "multipliers must be >= 0");
      if (check_shift(p[3], err, en)) return 1;
      break;
    }
    case EKR_OP_mulconst:
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && same_dims(x, out) && x->rank >= 1,
            "int8 in and out");
      if (check_broadcast(T(1), x, EKR_I32, err, en) || check_shift(p[0], err, en)) return 1;
      break;
    case EKR_OP_addconst:
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && same_dims(x, out) && x->rank >= 1,
            "int8 in and out");
      if (check_broadcast(T(1), x, EKR_I64, err, en) || check_shift(p[1], err, en)) return 1;
      CHECK(abs_max(m, T(1)) < ((int64_t)1 << 61), "constant outside +-2^61");
      CHECK(p[0] >= INT32_MIN && p[0] <= INT32_MAX, "multiplier outside int32");
      break;
    case EKR_OP_hardswish:
      CHECK(x->dtype == EKR_I8 && out->dtype == EKR_I8 && same_dims(x, out), "int8 in and out");
      CHECK(p[0] >= INT32_MIN && p[0] <= INT32_MAX && p[1] >= 0 && p[1] <= INT32_MAX &&
            p[2] >= INT32_MIN && p[2] <= INT32_MAX, "parameters outside int32");
      CHECK(p[1] * (p[2] < 0 ? -p[2] : p[2]) < ((int64_t)1 << 54), "r6 * mult too large");
      if (check_shift(p[3], err, en)) return 1;
      break;
    default:
      return fail(err, en, "unknown op type %u", op->type);
  }
  CHECK(op->scratch_bytes >= need_scratch, "scratch of %llu bytes, needs %llu",
        (unsigned long long)op->scratch_bytes, (unsigned long long)need_scratch);
  if (op->type == EKR_OP_conv2d && need_scratch) {  /* im2col: weights packed once */
    const ek_conv2d_shape shape = conv_shape(x, T(1), p);
    op->aux8 = malloc(shape.o * ek_s8_conv2d_packed_k(&shape));
    CHECK(op->aux8 != NULL, "out of memory");
    ek_s8_conv2d_pack(&shape, PTR(T(1), const int8_t), op->aux8);
  }
  if (op->type == EKR_OP_matmul) {
    const int64_t n = OUT->dims[OUT->rank - 1];
    op->aux = malloc((size_t)n * sizeof(int32_t));
    CHECK(op->aux != NULL, "out of memory");
    for (int64_t j = 0; j < n; j++) op->aux[j] = (int32_t)p[0];
  }
  return 0;
}

/* --- loading ---------------------------------------------------------------------------- */

static int load_tensors(ekr_model *m, const uint8_t *f, uint64_t data_bytes, char *err,
                        size_t en) {
  for (uint32_t i = 0; i < m->n_tensors; i++) {
    const uint8_t *r = f + EKR_HEADER_BYTES + (uint64_t)i * EKR_TENSOR_BYTES;
    ekr_tensor *t = &m->tensors[i];
    t->dtype = r[EKR_T_DTYPE];
    t->rank = r[EKR_T_RANK];
    t->storage = r[EKR_T_STORAGE];
    t->offset = rd64(r + EKR_T_OFFSET);
    t->nbytes = rd64(r + EKR_T_NBYTES);
    t->first = -1;
    t->last = -1;
    const size_t size = dtype_size(t->dtype);
    CHECK(size, "tensor %u: unknown dtype %d", i, t->dtype);
    CHECK(t->rank <= EKR_MAX_RANK, "tensor %u: rank %d > %d", i, t->rank, EKR_MAX_RANK);
    CHECK(t->storage == EKR_ARENA || t->storage == EKR_CONST, "tensor %u: unknown storage", i);
    CHECK(r[3] == 0 && rd32(r + 28) == 0, "tensor %u: reserved bytes are not zero", i);
    for (int k = EKR_T_RESERVED; k < (int)EKR_TENSOR_BYTES; k++)
      CHECK(r[k] == 0, "tensor %u: reserved bytes are not zero", i);
    uint64_t numel = 1;
    for (int d = 0; d < EKR_MAX_RANK; d++) {
      const int32_t v = (int32_t)rd32(r + EKR_T_DIMS + 4 * d);
      if (d < t->rank) {
        CHECK(v >= 1 && v <= EKR_MAX_DIM, "tensor %u: dim %d = %d outside 1..2^24", i, d, v);
        numel *= (uint64_t)v;
        CHECK(numel <= EKR_MAX_NUMEL, "tensor %u: more than 2^31 elements", i);
        t->dims[d] = v;
      } else {
        CHECK(v == 0, "tensor %u: dims past the rank must be 0", i);
        t->dims[d] = 1;
      }
    }
    t->numel = numel;
    CHECK(t->nbytes == numel * size, "tensor %u: %llu bytes for %llu elements", i,
          (unsigned long long)t->nbytes, (unsigned long long)numel);
    CHECK(t->offset % EKR_ALIGN == 0, "tensor %u: offset not 16-byte aligned", i);
    const uint64_t limit = t->storage == EKR_CONST ? data_bytes : m->arena_bytes;
    CHECK(t->offset <= limit && t->nbytes <= limit - t->offset,
          "tensor %u: [%llu, +%llu) outside its %s (%llu bytes)", i,
          (unsigned long long)t->offset, (unsigned long long)t->nbytes,
          t->storage == EKR_CONST ? "data section" : "arena", (unsigned long long)limit);
  }
  return 0;
}

static int load_ops(ekr_model *m, const uint8_t *f, uint64_t ops_offset, char *err, size_t en) {
  for (uint32_t i = 0; i < m->n_ops; i++) {
    const uint8_t *r = f + ops_offset + (uint64_t)i * EKR_OP_BYTES;
    ekr_op *op = &m->ops[i];
    op->type = rd32(r + EKR_O_TYPE);
    op->n_inputs = rd32(r + EKR_O_N_INPUTS);
    op->output = rd32(r + EKR_O_OUTPUT);
    op->scratch_offset = rd64(r + EKR_O_SCRATCH_OFFSET);
    op->scratch_bytes = rd64(r + EKR_O_SCRATCH_BYTES);
    for (int k = 0; k < EKR_MAX_PARAMS; k++) op->p[k] = (int64_t)rd64(r + EKR_O_PARAMS + 8 * k);
    CHECK(op->type >= 1 && op->type < EKR_OP_COUNT, "op %u: unknown type %u", i, op->type);
    CHECK(op->n_inputs <= EKR_MAX_INPUTS, "op %u (%s): %u inputs", i, op_name(op->type),
          op->n_inputs);
    CHECK(rd32(r + 44) == 0, "op %u: reserved bytes are not zero", i);
    for (uint32_t k = 0; k < EKR_MAX_INPUTS; k++) {
      op->inputs[k] = rd32(r + EKR_O_INPUTS + 4 * k);
      if (k >= op->n_inputs) {
        CHECK(op->inputs[k] == 0, "op %u: unused input slots must be 0", i);
        continue;
      }
      CHECK(op->inputs[k] < m->n_tensors, "op %u (%s): input %u names tensor %u of %u", i,
            op_name(op->type), k, op->inputs[k], m->n_tensors);
      ekr_tensor *t = &m->tensors[op->inputs[k]];
      CHECK(t->storage == EKR_CONST || t->written, "op %u (%s): reads tensor %u before it is "
            "written", i, op_name(op->type), op->inputs[k]);
      if (t->storage == EKR_ARENA) t->last = (int32_t)i;
    }
    CHECK(op->output < m->n_tensors, "op %u (%s): output names tensor %u of %u", i,
          op_name(op->type), op->output, m->n_tensors);
    ekr_tensor *out = &m->tensors[op->output];
    CHECK(out->storage == EKR_ARENA && !out->written, "op %u (%s): output tensor %u is a "
          "constant or written twice", i, op_name(op->type), op->output);
    CHECK(op->scratch_offset % EKR_ALIGN == 0 && op->scratch_offset <= m->arena_bytes &&
          op->scratch_bytes <= m->arena_bytes - op->scratch_offset,
          "op %u (%s): scratch outside the arena", i, op_name(op->type));
    char why[160];
    if (check_op(m, op, why, sizeof why))
      return fail(err, en, "op %u (%s): %s", i, op_name(op->type), why);
    out->written = 1;
    out->first = (int32_t)i;
    out->last = (int32_t)i;
  }
  return 0;
}

/* The memory plan: no op writes (its output or scratch) over a tensor that is still to be
 * read, except a reshape onto its own input's bytes (a view). */
static int check_plan(ekr_model *m, char *err, size_t en) {
  uint32_t *live = malloc(sizeof(uint32_t) * (m->n_tensors ? m->n_tensors : 1));
  CHECK(live != NULL, "out of memory");
  uint32_t n_live = 0;
  m->tensors[m->input].first = -1;
  m->tensors[m->output].last = (int32_t)m->n_ops;
  live[n_live++] = m->input;
  int bad = 0;
  for (uint32_t i = 0; i < m->n_ops && !bad; i++) {
    const ekr_op *op = &m->ops[i];
    const ekr_tensor *out = &m->tensors[op->output];
    const int view = op->type == EKR_OP_reshape && out->offset == m->tensors[op->inputs[0]].offset;
    for (uint32_t k = 0; k < n_live && !bad; k++) {
      const ekr_tensor *t = &m->tensors[live[k]];
      if (t->last < (int32_t)i) continue;
      if (!view && overlap(out->offset, out->nbytes, t->offset, t->nbytes)) {
        bad = fail(err, en, "op %u (%s): output overlaps tensor %u, still to be read", i,
                   op_name(op->type), live[k]);
      } else if (overlap(op->scratch_offset, op->scratch_bytes, t->offset, t->nbytes) ||
                 overlap(op->scratch_offset, op->scratch_bytes, out->offset, out->nbytes)) {
        bad = fail(err, en, "op %u (%s): scratch overlaps a live tensor", i, op_name(op->type));
      }
    }
    /* drop the dead, add the output */
    uint32_t kept = 0;
    for (uint32_t k = 0; k < n_live; k++)
      if (m->tensors[live[k]].last > (int32_t)i) live[kept++] = live[k];
    n_live = kept;
    live[n_live++] = op->output;
  }
  free(live);
  return bad;
}

/* An elementwise op of one int8 input with scalar parameters is a function of 256 values:
 * its table is the selected kernel run once on every input, so a lookup is bit-exact by
 * construction. */
static int is_table_op(const ekr_op *op) {
  return op->type == EKR_OP_shiftgelu || op->type == EKR_OP_hardswish ||
         op->type == EKR_OP_relu;
}

static void compute_elementwise(const ekr_model *m, const ekr_op *op, size_t count,
                                const int8_t *x, int8_t *y) {
  const int64_t *p = op->p;
  switch (op->type) {
    case EKR_OP_shiftgelu:
      m->shiftgelu(count, x, (int32_t)p[0], (int)p[1], (int)p[2], (int32_t)p[3], (int)p[4], y);
      break;
    case EKR_OP_hardswish:
      m->hardswish(count, x, (int32_t)p[0], (int32_t)p[1], (int32_t)p[2], (int)p[3], y);
      break;
    default:  /* relu */
      for (size_t i = 0; i < count; i++) y[i] = x[i] > 0 ? x[i] : 0;
  }
}

static int build_tables(ekr_model *m) {
  int8_t every[256];
  for (int i = 0; i < 256; i++) every[i] = (int8_t)(uint8_t)i;
  for (uint32_t i = 0; i < m->n_ops; i++) {
    ekr_op *op = &m->ops[i];
    if (op->type == EKR_OP_concat) {  /* input k: clamp(round(x · mult_k / 2^shift)) */
      op->aux8 = malloc(256 * (size_t)op->n_inputs);
      if (!op->aux8) return -1;
      for (uint32_t k = 0; k < op->n_inputs; k++)
        for (int q = 0; q < 256; q++)
          op->aux8[256 * k + (uint32_t)q] =
              (int8_t)ek_clamp(ek_round_shift(every[q] * op->p[2 + k], (int)op->p[1]), -128, 127);
      continue;
    }
    if (!is_table_op(op)) continue;
    op->aux8 = malloc(256);
    if (!op->aux8) return -1;
    compute_elementwise(m, op, 256, every, op->aux8);
  }
  return 0;
}

/* ---- the thread pool: workers 1..n-1 wait for a generation bump, run part t of the job,
 * and the caller runs part 0 then waits for the rest ------------------------------------ */
typedef void ekr_job(void *ctx, int part, int parts);
struct ekr_pool;
typedef struct { struct ekr_pool *pool; int part; } pool_arg;

typedef struct ekr_pool {
  int n, started;
  atomic_int stop, pending;
  atomic_uint generation;
  ekr_job *job;
  void *ctx;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  pthread_t workers[EKR_MAX_THREADS];
  pool_arg args[EKR_MAX_THREADS];
} ekr_pool;

/* Between the ops of one inference a job comes every few microseconds: workers and the caller
 * spin a bounded while (a pause per turn) before they sleep on the condition variable, so a
 * split GEMM does not pay a futex wake-up, and an idle pool still sleeps. */
#define EKR_SPIN 20000
static inline void cpu_relax(void) {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static void *pool_worker(void *arg) {
  ekr_pool *pool = ((pool_arg *)arg)->pool;
  const int part = ((pool_arg *)arg)->part;
  unsigned seen = 0;
  for (;;) {
    for (int i = 0; i < EKR_SPIN && atomic_load_explicit(&pool->generation,
                                                          memory_order_acquire) == seen &&
                    !atomic_load_explicit(&pool->stop, memory_order_relaxed); i++)
      cpu_relax();
    if (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen) {
      pthread_mutex_lock(&pool->mu);
      while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->go, &pool->mu);
      pthread_mutex_unlock(&pool->mu);
    }
    if (atomic_load(&pool->stop)) return NULL;
    seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
    pool->job(pool->ctx, part, pool->n);
    if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&pool->mu);
      pthread_cond_signal(&pool->done);
      pthread_mutex_unlock(&pool->mu);
    }
  }
}

static void pool_stop(ekr_pool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->mu);
  atomic_store(&pool->stop, 1);
  pthread_cond_broadcast(&pool->go);
  pthread_mutex_unlock(&pool->mu);
  for (int i = 1; i < pool->started; i++) pthread_join(pool->workers[i], NULL);
  pthread_mutex_destroy(&pool->mu);
  pthread_cond_destroy(&pool->go);
  pthread_cond_destroy(&pool->done);
  free(pool);
}

static void pool_run(ekr_pool *pool, ekr_job *job, void *ctx) {
  if (!pool || pool->n <= 1) {
    job(ctx, 0, 1);
    return;
  }
  pool->job = job;
  pool->ctx = ctx;
  atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
  pthread_mutex_lock(&pool->mu);  /* wakes the workers that went to sleep */
  pthread_cond_broadcast(&pool->go);
  pthread_mutex_unlock(&pool->mu);
  job(ctx, 0, pool->n);
  for (int i = 0; i < EKR_SPIN &&
                  atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; i++)
    cpu_relax();
  if (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
    pthread_mutex_lock(&pool->mu);
    while (atomic_load(&pool->pending) > 0) pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
  }
}

int ekr_set_threads(ekr_model *m, int threads, char *err, size_t en) {
  if (!m) return fail(err, en, "no model");
  if (threads < 1 || threads > EKR_MAX_THREADS)
    return fail(err, en, "%d threads (1..%d)", threads, EKR_MAX_THREADS);
  pool_stop(m->pool);
  m->pool = NULL;
  if (threads == 1) return 0;
  ekr_pool *pool = calloc(1, sizeof *pool);
  if (!pool) return fail(err, en, "out of memory");
  pool->n = threads;
  pool->started = 1;
  pthread_mutex_init(&pool->mu, NULL);
  pthread_cond_init(&pool->go, NULL);
  pthread_cond_init(&pool->done, NULL);
  for (int i = 1; i < threads; i++) {
    pool->args[i].pool = pool;
    pool->args[i].part = i;
    if (pthread_create(&pool->workers[i], NULL, pool_worker, &pool->args[i]) != 0) {
      pool_stop(pool);
      return fail(err, en, "cannot start thread %d of %d", i + 1, threads);
    }
    pool->started = i + 1;
  }
  m->pool = pool;
  return 0;
}

int ekr_threads(const ekr_model *m) { return m && m->pool ? m->pool->n : 1; }

/* GEMM rows split across the pool in blocks of 4 (the kernels' row block); small GEMMs run
 * whole on the caller */
typedef struct {
  ek_s8_gemm_requant_fn gemm;
  size_t rows, k, n;
  const int8_t *a, *w;
  const int32_t *bias, *mult;
  int shift;
  int32_t lo;
  int8_t *y;
} gemm_job;

static void gemm_part(void *arg, int part, int parts) {
  const gemm_job *j = arg;
  const size_t blocks = (j->rows + 3) / 4, per = (blocks + (size_t)parts - 1) / (size_t)parts;
  const size_t r0 = (size_t)part * per * 4;
  size_t r1 = r0 + per * 4;
  if (r1 > j->rows) r1 = j->rows;
  if (r0 < r1)
    j->gemm(r1 - r0, j->k, j->n, j->a + r0 * j->k, j->w, j->bias, j->mult, j->shift, j->lo,
            j->y + r0 * j->n);
}

static void run_gemm(ekr_model *m, size_t rows, size_t k, size_t n, const int8_t *a,
                     const int8_t *w, const int32_t *bias, const int32_t *mult, int shift,
                     int32_t lo, int8_t *y) {
  gemm_job j = {m->gemm, rows, k, n, a, w, bias, mult, shift, lo, y};
  if (!m->pool || rows < 8 || (uint64_t)rows * k * n < ((uint64_t)1 << 17))
    gemm_part(&j, 0, 1);
  else
    pool_run(m->pool, gemm_part, &j);
}

typedef struct {
  ek_s8_dwconv3x3_requant_fn dw;
  size_t c, h, w, plane;
  int stride, pad, shift;
  int32_t lo;
  const int8_t *x, *ws;
  const int32_t *bias, *mult;
  int8_t *y;
} dw_job;

static void dw_part(void *arg, int part, int parts) {
  const dw_job *j = arg;
  const size_t per = (j->c + (size_t)parts - 1) / (size_t)parts, c0 = (size_t)part * per;
  const size_t c1 = c0 + per < j->c ? c0 + per : j->c;
  if (c0 < c1)
    j->dw(c1 - c0, j->h, j->w, j->stride, j->pad, j->x + c0 * j->h * j->w, j->ws + c0 * 9,
          j->bias + c0, j->mult + c0, j->shift, j->lo, j->y + c0 * j->plane);
}

static void choose_kernels(ekr_model *m) {
#define EKR_PICK(field, op)                                     \
  do {                                                          \
    const ek_kernel *k = ek_select(#op);                        \
    m->field = (ek_##op##_fn)k->fn;                             \
    size_t used = strlen(m->paths);                             \
    snprintf(m->paths + used, sizeof m->paths - used, "%s%s=%s", used ? " " : "", #op, \
             k->path);                                          \
  } while (0)
  m->paths[0] = 0;
  EKR_PICK(gemm, s8_gemm_requant);
  EKR_PICK(dwconv3x3, s8_dwconv3x3_requant);
  EKR_PICK(shiftmax, s8_shiftmax);
  EKR_PICK(shiftgelu, s8_shiftgelu);
  EKR_PICK(layernorm, s8_ilayernorm);
  EKR_PICK(avgpool, s8_avgpool_requant);
  EKR_PICK(add, s8_add_requant);
  EKR_PICK(hardswish, s8_hardswish);
  EKR_PICK(addconst, s8_addconst_requant);
  EKR_PICK(mulconst, s8_mulconst_requant);
  EKR_PICK(matmul, s8_matmul_requant);
  EKR_PICK(conv2d, s8_conv2d_requant);
  EKR_PICK(mean, s8_mean_requant);
  EKR_PICK(transpose, x8_transpose);
  EKR_PICK(lut, x8_lut);
#undef EKR_PICK
}

int ekr_load(const void *data, size_t size, ekr_model **model, char *err, size_t en) {
  *model = NULL;
  const uint8_t *f = data;
  CHECK(data != NULL && size >= EKR_HEADER_BYTES, "not an .ekr file: %zu bytes, the header "
        "alone is %u", size, EKR_HEADER_BYTES);
  CHECK(memcmp(f, EKR_MAGIC, 4) == 0, "not an .ekr file (magic bytes)");
  CHECK(rd32(f + EKR_H_VERSION) == EKR_VERSION, ".ekr version %u; this runtime reads %u: "
        "re-export the model with this edgekit", rd32(f + EKR_H_VERSION), EKR_VERSION);
  CHECK(rd32(f + EKR_H_HEADER_BYTES) == EKR_HEADER_BYTES, "header size %u",
        rd32(f + EKR_H_HEADER_BYTES));
  const uint64_t file_bytes = rd64(f + EKR_H_FILE_BYTES);
  CHECK(file_bytes == size, "truncated or padded: the header says %llu bytes, the file has %zu",
        (unsigned long long)file_bytes, size);
  CHECK(crc32_ieee(f + 16, size - 16) == rd32(f + EKR_H_CRC), "checksum mismatch: the file is "
        "corrupt (re-export or re-copy it)");
  for (uint32_t k = EKR_H_RESERVED; k < EKR_HEADER_BYTES; k++)
    CHECK(f[k] == 0, "reserved header bytes are not zero");
  ekr_model *m = calloc(1, sizeof *m);
  CHECK(m != NULL, "out of memory");
  m->n_tensors = rd32(f + EKR_H_N_TENSORS);
  m->n_ops = rd32(f + EKR_H_N_OPS);
  m->arena_bytes = rd64(f + EKR_H_ARENA);
  m->lower_bound = rd64(f + EKR_H_LOWER_BOUND);
  m->input = rd32(f + EKR_H_INPUT);
  m->output = rd32(f + EKR_H_OUTPUT);
  const uint64_t tensors = rd64(f + EKR_H_TENSORS), ops = rd64(f + EKR_H_OPS);
  const uint64_t data_at = rd64(f + EKR_H_DATA), data_bytes = rd64(f + EKR_H_DATA_BYTES);
  int rc = 0;
#define LOAD_CHECK(cond, ...) do { if (!rc && !(cond)) rc = fail(err, en, __VA_ARGS__); } while (0)
  LOAD_CHECK(m->n_tensors >= 2 && m->n_tensors <= EKR_MAX_TENSORS, "%u tensors (2..%u)",
             m->n_tensors, EKR_MAX_TENSORS);
  LOAD_CHECK(m->n_ops >= 1 && m->n_ops <= EKR_MAX_OPS, "%u ops (1..%u)", m->n_ops, EKR_MAX_OPS);
  LOAD_CHECK(tensors == EKR_HEADER_BYTES, "tensor table at %llu, expected %u",
             (unsigned long long)tensors, EKR_HEADER_BYTES);
  LOAD_CHECK(ops == tensors + (uint64_t)m->n_tensors * EKR_TENSOR_BYTES, "op table offset");
  LOAD_CHECK(data_at % EKR_ALIGN == 0 && data_at >= ops + (uint64_t)m->n_ops * EKR_OP_BYTES &&
             data_at <= size && data_bytes == size - data_at, "data section offset/size");
  LOAD_CHECK(m->arena_bytes <= EKR_MAX_ARENA && m->lower_bound <= m->arena_bytes,
             "arena of %llu bytes (lower bound %llu): at most 1 GiB, bound <= arena",
             (unsigned long long)m->arena_bytes, (unsigned long long)m->lower_bound);
  LOAD_CHECK(m->input < m->n_tensors && m->output < m->n_tensors && m->input != m->output,
             "graph input/output tensor ids");
  if (!rc) {
    /* exact sizes (malloc aligns to 16, all the loader needs): a sanitizer build then
     * catches any access past the file or the arena */
    m->file = malloc(size);
    m->tensors = calloc(m->n_tensors, sizeof *m->tensors);
    m->ops = calloc(m->n_ops, sizeof *m->ops);
    m->arena = malloc(m->arena_bytes ? (size_t)m->arena_bytes : 1);
    LOAD_CHECK(m->file && m->tensors && m->ops && m->arena, "out of memory (arena %llu bytes)",
               (unsigned long long)m->arena_bytes);
  }
  if (!rc) {
    memcpy(m->file, f, size);
    m->data = m->file + data_at;
    rc = load_tensors(m, m->file, data_bytes, err, en);
  }
  if (!rc) {
    ekr_tensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
    LOAD_CHECK(in->storage == EKR_ARENA && in->dtype == EKR_F32 && out->storage == EKR_ARENA &&
               out->dtype == EKR_F32, "graph input and output must be float32 activations");
    in->written = 1;
  }
  if (!rc) rc = load_ops(m, m->file, ops, err, en);
  LOAD_CHECK(m->tensors[m->output].written, "no op writes the graph output");
  if (!rc) rc = check_plan(m, err, en);
#undef LOAD_CHECK
  if (rc) {
    ekr_free(m);
    return rc;
  }
  choose_kernels(m);
  if (build_tables(m) != 0) {
    ekr_free(m);
    return fail(err, en, "out of memory");
  }
  *model = m;
  return 0;
}

void ekr_free(ekr_model *m) {
  if (!m) return;
  pool_stop(m->pool);
  if (m->ops)
    for (uint32_t i = 0; i < m->n_ops; i++) {
      free(m->ops[i].aux);
      free(m->ops[i].aux8);
    }
  free(m->ops);
  free(m->tensors);
  free(m->arena);
  free(m->file);
  free(m);
}

/* --- execution --------------------------------------------------------------------------- */

static int64_t outer_count(const ekr_tensor *t, int axis) {
  int64_t n = 1;
  for (int i = 0; i < axis; i++) n *= t->dims[i];
  return n;
}
static int64_t inner_count(const ekr_tensor *t, int axis) {
  int64_t n = 1;
  for (int i = axis + 1; i < t->rank; i++) n *= t->dims[i];
  return n;
}
static int8_t sat8(int64_t v) { return (int8_t)ek_clamp(v, -128, 127); }

/* the pool as the kernels' ek_threads */
static void threads_run(void *pool, ek_task *task, void *ctx) { pool_run(pool, task, ctx); }

static void run_conv2d(ekr_model *m, const ekr_op *op) {
  const ekr_tensor *x = T(0), *w = T(1), *y = OUT;
  const int8_t *xs = PTR(x, const int8_t), *ws = PTR(w, const int8_t);
  const int32_t *bias = PTR(T(2), const int32_t), *mult = PTR(T(3), const int32_t);
  int8_t *ys = PTR(y, int8_t);
  const int shift = (int)op->p[0];
  const int32_t lo = op->p[1] ? 0 : -128;
  const ek_conv2d_shape s = conv_shape(x, w, op->p);
  const size_t image = s.c * s.h * s.w, out_image = (size_t)(y->numel / (uint64_t)x->dims[0]);
  const int dw3x3 = ek_s8_conv2d_is_depthwise(&s) && s.kh == 3 && s.kw == 3 && s.sh == s.sw &&
                    (s.sh == 1 || s.sh == 2) && s.ph == s.pw && s.ph <= 1;
  const ek_threads threads = {threads_run, m->pool};
  for (int64_t b = 0; b < x->dims[0]; b++) {
    const int8_t *xb = xs + (size_t)b * image;
    int8_t *yb = ys + (size_t)b * out_image;
    if (dw3x3) {
      dw_job j = {m->dwconv3x3, s.c, s.h, s.w, out_image / s.c, (int)s.sh, (int)s.ph, shift, lo,
                  xb, ws, bias, mult, yb};
      pool_run(m->pool, dw_part, &j);
    } else {
      m->conv2d(&s, xb, op->aux8 ? op->aux8 : ws, bias, mult, shift, lo, SCRATCH(void, 0),
                &threads, yb);
    }
  }
}

static void run_matmul(ekr_model *m, const ekr_op *op) {
  const ekr_tensor *a = T(0), *b = T(1), *y = OUT;
  const int r = a->rank, bt = (int)op->p[2];
  const int64_t rows = a->dims[r - 2], k = a->dims[r - 1], n = y->dims[r - 1];
  const int64_t batches = (int64_t)(a->numel / (uint64_t)(rows * k));
  const int is_u8 = a->dtype == EKR_U8;
  /* scratch: bᵀ [n][k] unless b comes transposed, then the kernel's */
  int8_t *bt_buf = SCRATCH(int8_t, 0);
  void *kernel_scratch = SCRATCH(uint8_t, bt ? 0 : align16((uint64_t)(k * n)));
  const ek_threads threads = {threads_run, m->pool};
  for (int64_t bi = 0; bi < batches; bi++) {
    const int8_t *w = PTR(b, const int8_t) + bi * k * n;
    if (!bt) {  /* the kernel takes b as [n][k] */
      m->transpose((size_t)k, (size_t)n, (const uint8_t *)w, (size_t)n, (uint8_t *)bt_buf,
                   (size_t)k);
      w = bt_buf;
    }
    m->matmul((size_t)rows, (size_t)k, (size_t)n, is_u8,
              PTR(a, const uint8_t) + bi * rows * k, w, op->aux, (int)op->p[1], kernel_scratch,
              &threads, PTR(y, int8_t) + bi * rows * n);
  }
}

static void run_transpose(ekr_model *m, const ekr_op *op) {
  const ekr_tensor *x = T(0), *y = OUT;
  const uint8_t *src = PTR(x, const uint8_t);
  uint8_t *dst = PTR(y, uint8_t);
  int64_t in_stride[EKR_MAX_RANK], stride[EKR_MAX_RANK], idx[EKR_MAX_RANK] = {0};
  int r = x->rank;
  int64_t s = 1;
  for (int i = r - 1; i >= 0; i--) { in_stride[i] = s; s *= x->dims[i]; }
  /* trailing axes that stay in place move as contiguous runs */
  int64_t run = 1;
  while (r > 0 && op->p[r - 1] == r - 1) run *= x->dims[--r];
  if (r == 0) { memcpy(dst, src, (size_t)x->nbytes); return; }
  for (int i = 0; i < r; i++) stride[i] = in_stride[op->p[i]];
  const int64_t last = y->dims[r - 1], step = stride[r - 1];
  const int64_t outer = (int64_t)y->numel / (run * last);
  int64_t at = 0;
  if (run == 1 && r >= 2 && stride[r - 2] == 1) {
    /* the input's innermost axis becomes the second-last output axis: a batch of 2-D
     * transposes [last][d] → [d][last], in register tiles */
    const int64_t d = y->dims[r - 2];
    for (int64_t o = 0; o < outer; o += d) {
      m->transpose((size_t)last, (size_t)d, src + at, (size_t)step, dst, (size_t)last);
      dst += d * last;
      for (int i = r - 3; i >= 0; i--) {
        at += stride[i];
        if (++idx[i] < y->dims[i]) break;
        at -= stride[i] * y->dims[i];
        idx[i] = 0;
      }
    }
    return;
  }
  for (int64_t o = 0; o < outer; o++) {
    if (run == 1) {
      for (int64_t j = 0; j < last; j++) dst[j] = src[at + j * step];
    } else {
      for (int64_t j = 0; j < last; j++)
        memcpy(dst + j * run, src + at + j * step, (size_t)run);
    }
    dst += last * run;
    for (int i = r - 2; i >= 0; i--) {  /* odometer over the outer output axes */
      at += stride[i];
      if (++idx[i] < y->dims[i]) break;
      at -= stride[i] * y->dims[i];
      idx[i] = 0;
    }
  }
}

/* y[e] = f(x[e], c[broadcast e]) over an output of x's shape, in blocks: the trailing axes
 * where c matches x run element by element, or where c is 1 run on one constant value */
#define EKR_RUN_FILL 1024 /* a scalar run shorter than this: the value repeated, then RUN */
#define BROADCAST_LOOP(ctype, BODY, RUN)                                                \
  do {                                                                                  \
    const ekr_tensor *x = T(0), *cst = T(1);                                            \
    const int8_t *xs = PTR(x, const int8_t);                                            \
    const ctype *cs = PTR(cst, const ctype);                                            \
    int8_t *ys = PTR(OUT, int8_t);                                                      \
    int64_t cstride[EKR_MAX_RANK], idx[EKR_MAX_RANK] = {0}, s = 1, inner = 1;           \
    for (int i = x->rank - 1; i >= 0; i--) {                                            \
      cstride[i] = cst->dims[i] == 1 ? 0 : s;                                           \
      s *= cst->dims[i];                                                                \
    }                                                                                   \
    int split = x->rank;                                                                \
    const int scalar_run = cst->dims[split - 1] == 1;                                   \
    while (split > 0 && (scalar_run ? cst->dims[split - 1] == 1                          \
                                    : cst->dims[split - 1] == x->dims[split - 1]))      \
      inner *= x->dims[--split];                                                        \
    int64_t at = 0;                                                                     \
    for (uint64_t e = 0; e < x->numel; e += (uint64_t)inner) {                          \
      if (scalar_run && inner >= EKR_RUN_FILL) { /* a long run on one value: a table */  \
        const int64_t c = cs[at];                                                       \
        int8_t table[256];                                                              \
        for (int q = 0; q < 256; q++) {                                                 \
          const int64_t v = (int8_t)(uint8_t)q;                                         \
          table[q] = (BODY);                                                            \
        }                                                                               \
        m->lut((size_t)inner, (const uint8_t *)(xs + e), (const uint8_t *)table, (uint8_t *)(ys + e));                              \
      } else if (scalar_run) { /* a short run on one value: repeated, then the kernel */  \
        ctype fill[EKR_RUN_FILL];                                                       \
        for (int64_t q = 0; q < inner; q++) fill[q] = cs[at];                           \
        RUN(xs + e, fill, inner, ys + e);                                               \
      } else {                                                                          \
        RUN(xs + e, cs + at, inner, ys + e);                                            \
      }                                                                                 \
      for (int i = split - 1; i >= 0; i--) {                                            \
        at += cstride[i];                                                               \
        if (++idx[i] < x->dims[i]) break;                                               \
        at -= cstride[i] * x->dims[i];                                                  \
        idx[i] = 0;                                                                     \
      }                                                                                 \
    }                                                                                   \
  } while (0)

static void run_mean(ekr_model *m, const ekr_op *op) {
  const ekr_tensor *x = T(0);
  const int8_t *xs = PTR(x, const int8_t);
  int8_t *ys = PTR(OUT, int8_t);
  const int64_t mask = op->p[0], mult = op->p[1];
  const int shift = (int)op->p[2];
  int64_t stride[EKR_MAX_RANK], s = 1;
  int kept[EKR_MAX_RANK], red[EKR_MAX_RANK], nk = 0, nr = 0;
  for (int i = x->rank - 1; i >= 0; i--) { stride[i] = s; s *= x->dims[i]; }
  for (int i = 0; i < x->rank; i++) {
    if (mask & (1 << i)) red[nr++] = i; else kept[nk++] = i;
  }
  int64_t count = 1;
  for (int i = 0; i < nr; i++) count *= x->dims[red[i]];
  for (uint64_t o = 0; o < OUT->numel; o++) {
    int64_t base = 0, rest = (int64_t)o;
    for (int i = nk - 1; i >= 0; i--) {
      base += rest % x->dims[kept[i]] * stride[kept[i]];
      rest /= x->dims[kept[i]];
    }
    int64_t total = 0;
    for (int64_t q = 0; q < count; q++) {
      int64_t at = base, r = q;
      for (int i = nr - 1; i >= 0; i--) {
        at += r % x->dims[red[i]] * stride[red[i]];
        r /= x->dims[red[i]];
      }
      total += xs[at];
    }
    ys[o] = sat8(ek_round_shift(total * mult, shift));
  }
}

static void run_op(ekr_model *m, const ekr_op *op) {
  const ekr_tensor *x = T(0), *y = OUT;
  const int64_t *p = op->p;
  switch (op->type) {
    case EKR_OP_quantize: {
      double scale;
      memcpy(&scale, &p[0], sizeof scale);
      const float *xs = PTR(x, const float);
      int8_t *ys = PTR(y, int8_t);
      uint64_t i = 0;
#if defined(__aarch64__) && defined(__ARM_NEON)
      /* two lanes of float64: x / scale, round half to even, clamp (NaN stays NaN and
       * converts to 0, as the scalar tail below), convert */
      const float64x2_t vs = vdupq_n_f64(scale), vlo = vdupq_n_f64(-128.0), vhi = vdupq_n_f64(127.0);
      for (; i + 4 <= x->numel; i += 4) {
        const float32x4_t v = vld1q_f32(xs + i);
        const float64x2_t a = vminq_f64(vmaxq_f64(vrndnq_f64(vdivq_f64(vcvt_f64_f32(vget_low_f32(v)), vs)), vlo), vhi);
        const float64x2_t b = vminq_f64(vmaxq_f64(vrndnq_f64(vdivq_f64(vcvt_high_f64_f32(v), vs)), vlo), vhi);
        const int32x4_t q = vcombine_s32(vmovn_s64(vcvtq_s64_f64(a)), vmovn_s64(vcvtq_s64_f64(b)));
        const int16x4_t h = vmovn_s32(q);
        ys[i] = (int8_t)vget_lane_s16(h, 0);
        ys[i + 1] = (int8_t)vget_lane_s16(h, 1);
        ys[i + 2] = (int8_t)vget_lane_s16(h, 2);
        ys[i + 3] = (int8_t)vget_lane_s16(h, 3);
      }
#endif
      for (; i < x->numel; i++) {
        const double v = nearbyint((double)xs[i] / scale);  /* half to even, as np.rint */
        ys[i] = v != v ? 0 : v <= -128 ? -128 : v >= 127 ? 127 : (int8_t)v;
      }
      break;
    }
    case EKR_OP_dequantize: {
      float scale;
      uint32_t bits = (uint32_t)p[0];
      memcpy(&scale, &bits, sizeof scale);
      float *ys = PTR(y, float);
      if (x->dtype == EKR_U8)
        for (uint64_t i = 0; i < x->numel; i++) ys[i] = (float)PTR(x, const uint8_t)[i] * scale;
      else
        for (uint64_t i = 0; i < x->numel; i++) ys[i] = (float)PTR(x, const int8_t)[i] * scale;
      break;
    }
    case EKR_OP_linear: {
      const int64_t k = x->dims[x->rank - 1], n = T(1)->dims[0];
      run_gemm(m, (size_t)(x->numel / (uint64_t)k), (size_t)k, (size_t)n, PTR(x, const int8_t),
              PTR(T(1), const int8_t), PTR(T(2), const int32_t), PTR(T(3), const int32_t),
              (int)p[0], p[1] ? 0 : -128, PTR(y, int8_t));
      break;
    }
    case EKR_OP_conv2d: run_conv2d(m, op); break;
    case EKR_OP_matmul: run_matmul(m, op); break;
    case EKR_OP_add:
      m->add((size_t)x->numel, PTR(x, const int8_t), PTR(T(1), const int8_t), (int32_t)p[0],
             (int32_t)p[1], (int)p[2], PTR(y, int8_t));
      break;
    case EKR_OP_shiftmax: {
      const int64_t len = x->dims[x->rank - 1];
      m->shiftmax((size_t)(x->numel / (uint64_t)len), (size_t)len, PTR(x, const int8_t),
                  (int32_t)p[0], (int)p[1], (int)p[2], SCRATCH(int32_t, 0), PTR(y, uint8_t));
      break;
    }
    case EKR_OP_shiftgelu:
    case EKR_OP_hardswish:
    case EKR_OP_relu:
      m->lut((size_t)x->numel, PTR(x, const uint8_t), (const uint8_t *)op->aux8, PTR(y, uint8_t));
      break;
    case EKR_OP_layernorm: {
      const int64_t c = x->dims[x->rank - 1];
      m->layernorm((size_t)(x->numel / (uint64_t)c), (size_t)c, PTR(x, const int8_t),
                   PTR(T(1), const int32_t), PTR(T(2), const int64_t), (int)p[0], PTR(y, int8_t));
      break;
    }
    case EKR_OP_reshape:
      if (x->offset != y->offset) memmove(PTR(y, uint8_t), PTR(x, const uint8_t), x->nbytes);
      break;
    case EKR_OP_transpose: run_transpose(m, op); break;
    case EKR_OP_slice: {
      const int axis = (int)p[0];
      const int64_t outer = outer_count(x, axis), inner = inner_count(x, axis);
      const int64_t dim = x->dims[axis], take = y->dims[axis];
      const uint8_t *src = PTR(x, const uint8_t);
      uint8_t *dst = PTR(y, uint8_t);
      if (p[3] == 1) {  /* one contiguous run per outer index */
        for (int64_t o = 0; o < outer; o++)
          memcpy(dst + o * take * inner, src + (o * dim + p[1]) * inner, (size_t)(take * inner));
      } else if (inner == 1) {
        for (int64_t o = 0; o < outer; o++)
          for (int64_t j = 0; j < take; j++) dst[o * take + j] = src[o * dim + p[1] + j * p[3]];
      } else {
        for (int64_t o = 0; o < outer; o++)
          for (int64_t j = 0; j < take; j++)
            memcpy(dst + (o * take + j) * inner, src + (o * dim + p[1] + j * p[3]) * inner,
                   (size_t)inner);
      }
      break;
    }
    case EKR_OP_concat: {
      const int axis = (int)p[0];
      const int64_t outer = outer_count(y, axis), row = y->dims[axis] * inner_count(y, axis);
      int64_t at = 0;
      for (uint32_t k = 0; k < op->n_inputs; k++) {
        const ekr_tensor *t = T(k);
        const int64_t part = t->dims[axis] * inner_count(t, axis);
        const int8_t *src = PTR(t, const int8_t);
        int8_t *dst = PTR(y, int8_t) + at;
        for (int64_t o = 0; o < outer; o++)
          for (int64_t j = 0; j < part; j++)
            dst[o * row + j] = sat8(ek_round_shift(src[o * part + j] * p[2 + k], (int)p[1]));
        at += part;
      }
      break;
    }
    case EKR_OP_mean: run_mean(m, op); break;
    case EKR_OP_avgpool:
      m->avgpool((size_t)(x->dims[0] * x->dims[1]), (size_t)x->dims[2], (size_t)x->dims[3],
                 (int)p[0], (int)p[1], (int)p[2], PTR(x, const int8_t), PTR(T(1), const int32_t),
                 (int)p[3], PTR(y, int8_t));
      break;
    case EKR_OP_mulconst: {
      const int shift = (int)p[0];
#define EKR_MUL_RUN(xp, cp, n, yp) m->mulconst((size_t)(n), xp, cp, shift, yp)
      BROADCAST_LOOP(int32_t, sat8(ek_round_shift(v * c, shift)), EKR_MUL_RUN);
#undef EKR_MUL_RUN
      break;
    }
    case EKR_OP_addconst: {
      const int64_t mult = p[0];
      const int shift = (int)p[1];
#define EKR_ADD_RUN(xp, cp, n, yp) m->addconst((size_t)(n), xp, (int32_t)mult, cp, shift, yp)
      BROADCAST_LOOP(int64_t, sat8(ek_round_shift(v * mult + c, shift)), EKR_ADD_RUN);
#undef EKR_ADD_RUN
      break;
    }
    default: break;  /* the loader admits no other type */
  }
}

int ekr_run(ekr_model *m, const float *input, size_t input_count, float *output,
            size_t output_count, char *err, size_t en) {
  CHECK(m != NULL && input != NULL && output != NULL, "no model or buffers");
  const ekr_tensor *in = &m->tensors[m->input], *out = &m->tensors[m->output];
  CHECK(input_count == in->numel, "input has %zu values, the model takes %llu", input_count,
        (unsigned long long)in->numel);
  CHECK(output_count == out->numel, "output buffer of %zu values, the model gives %llu",
        output_count, (unsigned long long)out->numel);
  memcpy(m->arena + in->offset, input, in->nbytes);
  if (m->hook) {
    for (uint32_t i = 0; i < m->n_ops; i++) {
      m->hook(m->hook_ctx, i, m->ops[i].type, 0);
      run_op(m, &m->ops[i]);
      m->hook(m->hook_ctx, i, m->ops[i].type, 1);
    }
  } else {
    for (uint32_t i = 0; i < m->n_ops; i++) run_op(m, &m->ops[i]);
  }
  memcpy(output, m->arena + out->offset, out->nbytes);
  return 0;
}

size_t ekr_input_count(const ekr_model *m) { return (size_t)m->tensors[m->input].numel; }
size_t ekr_output_count(const ekr_model *m) { return (size_t)m->tensors[m->output].numel; }
static int shape_of(const ekr_tensor *t, int32_t *dims) {
  for (int i = 0; i < EKR_MAX_RANK; i++) dims[i] = i < t->rank ? t->dims[i] : 0;
  return t->rank;
}
int ekr_input_shape(const ekr_model *m, int32_t *dims) { return shape_of(&m->tensors[m->input], dims); }
int ekr_output_shape(const ekr_model *m, int32_t *dims) { return shape_of(&m->tensors[m->output], dims); }
uint64_t ekr_arena_bytes(const ekr_model *m) { return m->arena_bytes; }
uint64_t ekr_arena_lower_bound(const ekr_model *m) { return m->lower_bound; }
uint32_t ekr_op_count(const ekr_model *m) { return m->n_ops; }
const char *ekr_kernel_paths(const ekr_model *m) { return m->paths; }
void ekr_set_op_hook(ekr_model *m, ekr_op_hook *hook, void *ctx) {
  m->hook = hook;
  m->hook_ctx = ctx;
}
uint32_t ekr_op_type(const ekr_model *m, uint32_t i) { return i < m->n_ops ? m->ops[i].type : 0; }
const char *ekr_op_name(uint32_t type) { return op_name(type); }
