/* edgekit integer-only kernels: the arithmetic of edgekit/intonly/reference.py, bit for bit.
 *
 * Names follow XNNPACK: ek_<dtype>_<op>__<path>.  Paths:
 *   scalar   portable C, auto-vectorization disabled (the true scalar reference)
 *   autovec  the same C with the compiler's vectorizer on (what -O3 gives for free)
 *   neon     hand-written Advanced SIMD, armv8-a baseline (aarch64 only)
 *   neondot  armv8.2-a dot product (SDOT), chosen at run time when HWCAP_ASIMDDP is set
 *   i8mm     armv8.6-a int8 matrix multiply (SMMLA), chosen when HWCAP2_I8MM is set (and
 *            dotprod, which every i8mm core has: its fallback for k > 8192)
 *
 * Rounding everywhere is the reference's: round(v / 2^c) = (v + 2^(c-1)) >> c with an
 * arithmetic shift (round half up), then saturation to the output range.
 *
 * EK_OPS is the one op list; EK_KERNELS the one kernel list (op, path, required ISA). Dispatch,
 * the golden-vector tests, instruction counting, benchmarks and the Python binding all walk
 * ek_kernel_table(), which is generated from EK_KERNELS. */
#ifndef EK_KERNELS_H
#define EK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- op signatures ----------------------------------------------------------------------- */

/* y[i][j] = clamp(round((sum_k a[i][k]·w[j][k] + bias[j]) · mult[j] / 2^shift), lo, 127);
 * a int8 [m][k], w int8 [n][k] (PyTorch Linear layout), bias/mult per output channel; lo is
 * -128, or 0 for a fused ReLU. The int32 accumulator must not overflow (the converter checks). */
typedef void ek_s8_gemm_requant_t(size_t m, size_t k, size_t n, const int8_t *a,
                                      const int8_t *w, const int32_t *bias,
                                      const int32_t *mult, int shift, int32_t lo, int8_t *y);

/* Depthwise 3x3, NCHW, zero padding `pad` (0 or 1), stride 1 or 2; w int8 [c][9];
 * requantized per channel like the GEMM. */
typedef void ek_s8_dwconv3x3_requant_t(size_t c, size_t h, size_t w_in, int stride, int pad,
                                           const int8_t *x, const int8_t *w,
                                           const int32_t *bias, const int32_t *mult, int shift,
                                           int32_t lo, int8_t *y);

/* Shiftmax over rows of `len` int8 logits (reference.shiftmax): x0 = floor(-1/scale) < 0,
 * n = 15; out uint8 in [0, 2^(out_bits-1)]. scratch: `len` int32. */
typedef void ek_s8_shiftmax_t(size_t rows, size_t len, const int8_t *x, int32_t x0, int n,
                                  int out_bits, int32_t *scratch, uint8_t *y);

/* ShiftGELU / SiLU (reference.shift_gelu), then requantized: y = clamp(round(x·σ · mult /
 * 2^shift)); x0 = floor(-1/(scale·alpha)) < 0. */
typedef void ek_s8_shiftgelu_t(size_t count, const int8_t *x, int32_t x0, int n,
                                   int sig_bits, int32_t mult, int shift, int8_t *y);

/* I-LayerNorm over rows of c (reference.i_layernorm_core), then y = clamp(round((y'·gamma[j] +
 * beta[j]) / 2^shift)); gamma < 2^24. */
typedef void ek_s8_ilayernorm_t(size_t rows, size_t c, const int8_t *x,
                                    const int32_t *gamma, const int64_t *beta, int shift,
                                    int8_t *y);

/* k×k average pool, NCHW, zero padding, count_include_pad=False: window sums times a
 * per-position multiplier mult[oh][ow] (= s_in / (s_out · count) · 2^shift). */
typedef void ek_s8_avgpool_requant_t(size_t c, size_t h, size_t w_in, int kernel,
                                         int stride, int pad, const int8_t *x,
                                         const int32_t *mult, int shift, int8_t *y);

/* Residual add: y = clamp(round((a·mult_a + b·mult_b) / 2^shift)). */
typedef void ek_s8_add_requant_t(size_t count, const int8_t *a, const int8_t *b,
                                     int32_t mult_a, int32_t mult_b, int shift, int8_t *y);

/* Hardswish: t = clamp(x + r3, 0, r6); y = clamp(round(x·t · mult / 2^shift)). */
typedef void ek_s8_hardswish_t(size_t count, const int8_t *x, int32_t r3, int32_t r6,
                                   int32_t mult, int shift, int8_t *y);

/* Constant add (LeViT's attention bias, a folded shift): y = clamp(round((x·mult + c[i]) /
 * 2^shift)), one int64 c per element (|c| < 2^61). */
typedef void ek_s8_addconst_requant_t(size_t count, const int8_t *x, int32_t mult,
                                      const int64_t *c, int shift, int8_t *y);

/* Constant multiply (a LayerScale γ): y = clamp(round(x·m[i] / 2^shift)), one m per element. */
typedef void ek_s8_mulconst_requant_t(size_t count, const int8_t *x, const int32_t *m, int shift,
                                      int8_t *y);

/* --- the kernels that split their work, and the layout kernels ---------------------------- */

/* Threads for the kernels that split work (matmul, conv2d): run(pool, task, ctx) calls
 * task(ctx, part, parts) once for every part of [0, parts) — on worker threads or inline — and
 * returns when all are done. A NULL ek_threads runs everything inline, as part 0 of 1. */
typedef void ek_task(void *ctx, int part, int parts);
typedef struct {
  void (*run)(void *pool, ek_task *task, void *ctx);
  void *pool;
} ek_threads;

/* Activation × activation (attention Q·Kᵀ, softmax·V): y[i][j] = clamp(round(Σ_p a[i][p]·bt[j][p]
 * · mult[j] / 2^shift), -128, 127). a int8 [m][k], or uint8 when a_unsigned (softmax
 * probabilities: they enter the GEMM as a − 128 with 128·Σ_p bt[j][p] through the bias, exact);
 * bt int8 [n][k] (for Q·Kᵀ that is K itself; V goes through x8_transpose). |Σ| < 2^31 is the
 * caller's bound (k·2^15). scratch: ek_s8_matmul_scratch(m, k, n, a_unsigned) bytes, 16-aligned. */
typedef void ek_s8_matmul_requant_t(size_t m, size_t k, size_t n, int a_unsigned, const void *a,
                                    const int8_t *bt, const int32_t *mult, int shift,
                                    void *scratch, const ek_threads *threads, int8_t *y);

/* A convolution's geometry: one NCHW image [c][h][w] → [o][oh][ow], `groups` groups, kernel
 * kh×kw, stride sh×sw, zero padding ph×pw. */
typedef struct {
  size_t c, h, w, o, groups, kh, kw, sh, sw, ph, pw;
} ek_conv2d_shape;

/* General convolution of one int8 NCHW image (strided stems, grouped, pointwise, depthwise of any
 * kernel), requantized per output channel like the GEMM: im2col over an NHWC copy of each group
 * (taps ordered ky, kx, c; k padded to 16) times the weights packed by ek_s8_conv2d_pack, then
 * back to NCHW; depthwise convolutions run direct. scratch: ek_s8_conv2d_scratch(s) bytes. */
typedef void ek_s8_conv2d_requant_t(const ek_conv2d_shape *s, const int8_t *x,
                                    const int8_t *w_packed, const int32_t *bias,
                                    const int32_t *mult, int shift, int32_t lo, void *scratch,
                                    const ek_threads *threads, int8_t *y);

/* Mean (global pool, token mean): x as [outer][count][inner]; y[o][i] = clamp(round(Σ_q
 * x[o][q][i] · mult / 2^shift)), mult >= 0, count < 2^24. */
typedef void ek_s8_mean_requant_t(size_t outer, size_t count, size_t inner, const int8_t *x,
                                  int32_t mult, int shift, int8_t *y);

/* Layout: y[c·y_stride + r] = x[r·x_stride + c] for a rows × cols matrix of bytes (int8 or
 * uint8); reshape is a view and slice/concat are contiguous runs, no kernel needed. */
typedef void ek_x8_transpose_t(size_t rows, size_t cols, const uint8_t *x, size_t x_stride,
                               uint8_t *y, size_t y_stride);

/* y[i] = table[x[i]]: any function of one byte (ReLU; the ShiftGELU and hardswish tables the
 * runtime builds from their kernels at load; a concat input's rescale). */
typedef void ek_x8_lut_t(size_t count, const uint8_t *x, const uint8_t *table, uint8_t *y);

/* Scratch bytes of the kernels above, and the convolution's weight packing: w [o][c/g][kh][kw]
 * → [o][ek_s8_conv2d_packed_k(s)] (taps ky, kx, c; zero padded). Depthwise needs neither. */
size_t ek_s8_matmul_scratch(size_t m, size_t k, size_t n, int a_unsigned);
int ek_s8_conv2d_is_depthwise(const ek_conv2d_shape *s);
size_t ek_s8_conv2d_packed_k(const ek_conv2d_shape *s);
size_t ek_s8_conv2d_scratch(const ek_conv2d_shape *s);
void ek_s8_conv2d_pack(const ek_conv2d_shape *s, const int8_t *w, int8_t *w_packed);

/* X(op) for every op. */
#define EK_OPS(X) \
  X(s8_gemm_requant) X(s8_dwconv3x3_requant) X(s8_shiftmax) X(s8_shiftgelu) \
  X(s8_ilayernorm) X(s8_avgpool_requant) X(s8_add_requant) X(s8_hardswish) \
  X(s8_addconst_requant) X(s8_mulconst_requant) X(s8_matmul_requant) X(s8_conv2d_requant) \
  X(s8_mean_requant) X(x8_transpose) X(x8_lut)

/* ISA bits a kernel needs (ek_cpu_isa() reports what the CPU has). */
enum { EK_ISA_NONE = 0, EK_ISA_NEON = 1, EK_ISA_DOT = 2, EK_ISA_I8MM = 4, EK_ISA_AVX2 = 8,
       EK_ISA_VNNI = 16 /* AVX512-VNNI with AVX512-F/BW/VL */ };

#define EK_PORTABLE_KERNELS(X) \
  X(s8_gemm_requant, scalar, EK_ISA_NONE) X(s8_gemm_requant, autovec, EK_ISA_NONE) \
  X(s8_dwconv3x3_requant, scalar, EK_ISA_NONE) X(s8_dwconv3x3_requant, autovec, EK_ISA_NONE) \
  X(s8_shiftmax, scalar, EK_ISA_NONE) X(s8_shiftmax, autovec, EK_ISA_NONE) \
  X(s8_shiftgelu, scalar, EK_ISA_NONE) X(s8_shiftgelu, autovec, EK_ISA_NONE) \
  X(s8_ilayernorm, scalar, EK_ISA_NONE) X(s8_ilayernorm, autovec, EK_ISA_NONE) \
  X(s8_avgpool_requant, scalar, EK_ISA_NONE) X(s8_avgpool_requant, autovec, EK_ISA_NONE) \
  X(s8_add_requant, scalar, EK_ISA_NONE) X(s8_add_requant, autovec, EK_ISA_NONE) \
  X(s8_hardswish, scalar, EK_ISA_NONE) X(s8_hardswish, autovec, EK_ISA_NONE) \
  X(s8_addconst_requant, scalar, EK_ISA_NONE) X(s8_addconst_requant, autovec, EK_ISA_NONE) \
  X(s8_mulconst_requant, scalar, EK_ISA_NONE) X(s8_mulconst_requant, autovec, EK_ISA_NONE) \
  X(s8_matmul_requant, scalar, EK_ISA_NONE) X(s8_matmul_requant, autovec, EK_ISA_NONE) \
  X(s8_conv2d_requant, scalar, EK_ISA_NONE) X(s8_conv2d_requant, autovec, EK_ISA_NONE) \
  X(s8_mean_requant, scalar, EK_ISA_NONE) X(s8_mean_requant, autovec, EK_ISA_NONE) \
  X(x8_transpose, scalar, EK_ISA_NONE) X(x8_transpose, autovec, EK_ISA_NONE) \
  X(x8_lut, scalar, EK_ISA_NONE) X(x8_lut, autovec, EK_ISA_NONE)

#if defined(__aarch64__) && defined(__ARM_NEON)
#define EK_NEON_KERNELS(X) \
  X(s8_gemm_requant, neon, EK_ISA_NEON) X(s8_gemm_requant, neondot, EK_ISA_NEON | EK_ISA_DOT) \
  X(s8_gemm_requant, i8mm, EK_ISA_NEON | EK_ISA_DOT | EK_ISA_I8MM) \
  X(s8_dwconv3x3_requant, neon, EK_ISA_NEON) X(s8_shiftmax, neon, EK_ISA_NEON) \
  X(s8_shiftgelu, neon, EK_ISA_NEON) X(s8_ilayernorm, neon, EK_ISA_NEON) \
  X(s8_avgpool_requant, neon, EK_ISA_NEON) X(s8_add_requant, neon, EK_ISA_NEON) \
  X(s8_hardswish, neon, EK_ISA_NEON) X(s8_addconst_requant, neon, EK_ISA_NEON) \
  X(s8_mulconst_requant, neon, EK_ISA_NEON) \
  X(s8_matmul_requant, neon, EK_ISA_NEON) X(s8_matmul_requant, neondot, EK_ISA_NEON | EK_ISA_DOT) \
  X(s8_matmul_requant, i8mm, EK_ISA_NEON | EK_ISA_DOT | EK_ISA_I8MM) \
  X(s8_conv2d_requant, neon, EK_ISA_NEON) X(s8_conv2d_requant, neondot, EK_ISA_NEON | EK_ISA_DOT) \
  X(s8_conv2d_requant, i8mm, EK_ISA_NEON | EK_ISA_DOT | EK_ISA_I8MM) \
  X(s8_mean_requant, neon, EK_ISA_NEON) X(x8_transpose, neon, EK_ISA_NEON) \
  X(x8_lut, neon, EK_ISA_NEON)
#else
#define EK_NEON_KERNELS(X)
#endif

#if defined(__x86_64__)
#define EK_X86_KERNELS(X) \
  X(s8_gemm_requant, avx2, EK_ISA_AVX2) \
  X(s8_gemm_requant, avx512vnni, EK_ISA_AVX2 | EK_ISA_VNNI) \
  X(s8_matmul_requant, avx2, EK_ISA_AVX2) \
  X(s8_matmul_requant, avx512vnni, EK_ISA_AVX2 | EK_ISA_VNNI) \
  X(s8_conv2d_requant, avx2, EK_ISA_AVX2) \
  X(s8_conv2d_requant, avx512vnni, EK_ISA_AVX2 | EK_ISA_VNNI)
#else
#define EK_X86_KERNELS(X)
#endif

/* X(op, path, isa) for every kernel compiled into this build, slowest first per op. */
#define EK_KERNELS(X) EK_PORTABLE_KERNELS(X) EK_NEON_KERNELS(X) EK_X86_KERNELS(X)

/* Pointer types ek_<op>_fn, and a prototype for every kernel of the build. */
#define EK_POINTER(op) typedef ek_##op##_t *ek_##op##_fn;
EK_OPS(EK_POINTER)
#undef EK_POINTER
#define EK_DECLARE(op, path, isa) ek_##op##_t ek_##op##__##path;
EK_KERNELS(EK_DECLARE)
#undef EK_DECLARE

typedef struct {
  const char *op;    /* "s8_gemm_requant" */
  const char *path;  /* "neondot" */
  const char *name;  /* "ek_s8_gemm_requant__neondot" */
  unsigned isa;      /* EK_ISA_* bits required */
  void (*fn)(void);  /* cast to ek_<op>_fn */
} ek_kernel;

/* Every kernel of this build (EK_KERNELS order), and their number. */
const ek_kernel *ek_kernel_table(size_t *count);
/* ISA bits of this CPU (getauxval on Linux/aarch64, CPUID on x86-64; EK_ISA_NONE elsewhere). EK_ISA_MASK in the
 * environment (an integer) masks them, to test fallbacks on a capable CPU. */
unsigned ek_cpu_isa(void);
/* The fastest kernel for `op` that this CPU runs (last in table order), or NULL. */
const ek_kernel *ek_select(const char *op);
/* Build description: compiler, -march, ISA bits compiled in. */
const char *ek_build_info(void);

/* The dispatched kernel of an op, typed: EK_SELECT(s8_gemm_requant)(m, k, n, ...). */
#define EK_SELECT(op) ((ek_##op##_fn)ek_select(#op)->fn)

#ifdef __cplusplus
}
#endif
#endif
