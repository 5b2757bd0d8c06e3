/* Hand-written Advanced SIMD kernels (armv8-a baseline). Bit-exact with the portable ones:
 * requantization multiplies into 64 bits (SMULL) and rounds with SRSHL by -shift, which is
 * exactly (v + 2^(shift-1)) >> shift; saturating narrows then clamp to the int8 range. */
#if defined(__aarch64__) && defined(__ARM_NEON)
/* Kernels call nothing: gcc would turn the line-buffer fills into memset/memcpy calls, which
 * run outside the kernel's symbol (invisible to the instruction counter) and cost a call. */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#include <arm_neon.h>

#include "ek_common.h"
#include "ek_kernels.h"

/* clamp(round(acc · mult / 2^shift)) for 4 lanes, saturated to int32. */
EK_INLINE int32x4_t requant_s32(int32x4_t acc, int32x4_t mult, int64x2_t neg_shift) {
  const int64x2_t lo = vrshlq_s64(vmull_s32(vget_low_s32(acc), vget_low_s32(mult)), neg_shift);
  const int64x2_t hi = vrshlq_s64(vmull_high_s32(acc, mult), neg_shift);
  return vcombine_s32(vqmovn_s64(lo), vqmovn_s64(hi));
}

/* The same result with 32-bit lanes when shift ≥ 32 and no multiplier is INT32_MIN: SQDMULH
 * gives Q = floor(acc·mult / 2^31) exactly (it saturates only for INT32_MIN²), and writing
 * acc·mult = Q·2^31 + R with 0 ≤ R < 2^31, floor((acc·mult + 2^(shift-1)) / 2^shift) =
 * floor((Q + 2^(s-1) + R/2^31) / 2^s) = floor((Q + 2^(s-1)) / 2^s) for s = shift − 31 ≥ 1
 * (an integer plus a fraction below 1, divided by an integer), which is SRSHL(Q, −s).
 * Two instructions for four outputs instead of six. hi_shift = −(shift − 31). */
EK_INLINE int32x4_t requant_s32_hi(int32x4_t acc, int32x4_t mult, int32x4_t hi_shift) {
  return vrshlq_s32(vqdmulhq_s32(acc, mult), hi_shift);
}

/* Whether requant_s32_hi is exact for this call's shift and multipliers. */
EK_INLINE int requant_hi_ok(int shift, const int32_t *mult, size_t n) {
  if (shift < 32) return 0;
  for (size_t j = 0; j < n; j++)
    if (mult[j] == INT32_MIN) return 0;
  return 1;
}

/* round(v / 2^shift) of 4 int64 pairs → int32 lanes, saturated. */
EK_INLINE int32x4_t round_narrow_s64(int64x2_t lo, int64x2_t hi, int64x2_t neg_shift) {
  return vcombine_s32(vqmovn_s64(vrshlq_s64(lo, neg_shift)), vqmovn_s64(vrshlq_s64(hi, neg_shift)));
}

/* 8 int32 lanes → int8 with saturation. */
EK_INLINE int8x8_t narrow_s32x8(int32x4_t a, int32x4_t b) {
  return vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)));
}

EK_INLINE int8x16_t narrow_s32x16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  return vcombine_s8(narrow_s32x8(a, b), narrow_s32x8(c, d));
}

/* ---- s8 GEMM: 4×4 register blocks over K in steps of 16 --------------------------------- */

/* Row sums of a 4×4 block of int32x4 partial sums: out[i] = (Σacc[i][0], …, Σacc[i][3]). */
EK_INLINE int32x4_t reduce4(int32x4_t c0, int32x4_t c1, int32x4_t c2, int32x4_t c3) {
  return vpaddq_s32(vpaddq_s32(c0, c1), vpaddq_s32(c2, c3));
}

EK_INLINE void store_block_row(int8_t *dst, int32x4_t sums, const int32_t *bias,
                               const int32_t *mult, size_t nc, int64x2_t neg_shift, int8x8_t lo,
                               int hi, int32x4_t hi_shift) {
  int32x4_t b, mu;
  if (nc == 4) {
    b = vld1q_s32(bias);
    mu = vld1q_s32(mult);
  } else { /* an edge block: do not read past the per-channel arrays */
    int32_t bt[4], mt[4];
    for (size_t q = 0; q < 4; q++) {
      bt[q] = bias[q < nc ? q : 0];
      mt[q] = mult[q < nc ? q : 0];
    }
    b = vld1q_s32(bt);
    mu = vld1q_s32(mt);
  }
  const int32x4_t r = hi ? requant_s32_hi(vaddq_s32(sums, b), mu, hi_shift)
                         : requant_s32(vaddq_s32(sums, b), mu, neg_shift);
  const int8x8_t q = vmax_s8(narrow_s32x8(r, r), lo);
  if (nc == 4) {
    const int32_t four = vget_lane_s32(vreinterpret_s32_s8(q), 0);
    __builtin_memcpy(dst, &four, sizeof four); /* an unaligned 4-byte store, no libc call */
  } else {
    vst1_lane_s8(dst, q, 0);
    if (nc > 1) vst1_lane_s8(dst + 1, q, 1);
    if (nc > 2) vst1_lane_s8(dst + 2, q, 2);
  }
}

/* The shared driver: `DOT16(acc, a, b)` accumulates 16 int8 products of a·b into the 4 lanes
 * of acc. Edge blocks reuse the last valid row/column and store only what exists. */
#define EK_GEMM_BODY(DOT16)                                                                   \
  const int64x2_t neg_shift = vdupq_n_s64(-shift);                                           \
  const int hi = requant_hi_ok(shift, mult, n);                                              \
  const int32x4_t hi_shift = vdupq_n_s32(31 - shift);                                        \
  const int8x8_t lo8 = vdup_n_s8((int8_t)lo);                                                \
  const size_t k16 = k & ~(size_t)15;                                                        \
  for (size_t i = 0; i < m; i += 4) {                                                        \
    const size_t mr = m - i < 4 ? m - i : 4;                                                 \
    const int8_t *a0 = a + i * k, *a1 = a + (i + (mr > 1)) * k;                              \
    const int8_t *a2 = a + (i + (mr > 2 ? 2 : mr - 1)) * k;                                  \
    const int8_t *a3 = a + (i + (mr > 3 ? 3 : mr - 1)) * k;                                  \
    for (size_t j = 0; j < n; j += 4) {                                                      \
      const size_t nc = n - j < 4 ? n - j : 4;                                               \
      const int8_t *w0 = w + j * k, *w1 = w + (j + (nc > 1)) * k;                            \
      const int8_t *w2 = w + (j + (nc > 2 ? 2 : nc - 1)) * k;                                \
      const int8_t *w3 = w + (j + (nc > 3 ? 3 : nc - 1)) * k;                                \
      int32x4_t c00 = vdupq_n_s32(0), c01 = c00, c02 = c00, c03 = c00;                       \
      int32x4_t c10 = c00, c11 = c00, c12 = c00, c13 = c00;                                  \
      int32x4_t c20 = c00, c21 = c00, c22 = c00, c23 = c00;                                  \
      int32x4_t c30 = c00, c31 = c00, c32 = c00, c33 = c00;                                  \
      for (size_t p = 0; p < k16; p += 16) {                                                 \
        const int8x16_t va0 = vld1q_s8(a0 + p), va1 = vld1q_s8(a1 + p);                      \
        const int8x16_t va2 = vld1q_s8(a2 + p), va3 = vld1q_s8(a3 + p);                      \
        const int8x16_t vw0 = vld1q_s8(w0 + p), vw1 = vld1q_s8(w1 + p);                      \
        const int8x16_t vw2 = vld1q_s8(w2 + p), vw3 = vld1q_s8(w3 + p);                      \
        DOT16(c00, va0, vw0); DOT16(c01, va0, vw1); DOT16(c02, va0, vw2); DOT16(c03, va0, vw3); \
        DOT16(c10, va1, vw0); DOT16(c11, va1, vw1); DOT16(c12, va1, vw2); DOT16(c13, va1, vw3); \
        DOT16(c20, va2, vw0); DOT16(c21, va2, vw1); DOT16(c22, va2, vw2); DOT16(c23, va2, vw3); \
        DOT16(c30, va3, vw0); DOT16(c31, va3, vw1); DOT16(c32, va3, vw2); DOT16(c33, va3, vw3); \
      }                                                                                      \
      int32x4_t s0 = reduce4(c00, c01, c02, c03), s1 = reduce4(c10, c11, c12, c13);          \
      int32x4_t s2 = reduce4(c20, c21, c22, c23), s3 = reduce4(c30, c31, c32, c33);          \
      if (k16 < k) {                                                                         \
        int32_t t[4][4] = {{0}};                                                             \
        const int8_t *ar[4] = {a0, a1, a2, a3}, *wr[4] = {w0, w1, w2, w3};                   \
        for (int r = 0; r < 4; r++)                                                          \
          for (int q = 0; q < 4; q++)                                                        \
            for (size_t p = k16; p < k; p++) t[r][q] += (int32_t)ar[r][p] * wr[q][p];        \
        s0 = vaddq_s32(s0, vld1q_s32(t[0])); s1 = vaddq_s32(s1, vld1q_s32(t[1]));            \
        s2 = vaddq_s32(s2, vld1q_s32(t[2])); s3 = vaddq_s32(s3, vld1q_s32(t[3]));            \
      }                                                                                      \
      int8_t *yr = y + i * n + j;                                                            \
      store_block_row(yr, s0, bias + j, mult + j, nc, neg_shift, lo8, hi, hi_shift);                    \
      if (mr > 1) store_block_row(yr + n, s1, bias + j, mult + j, nc, neg_shift, lo8, hi, hi_shift);    \
      if (mr > 2) store_block_row(yr + 2 * n, s2, bias + j, mult + j, nc, neg_shift, lo8, hi, hi_shift); \
      if (mr > 3) store_block_row(yr + 3 * n, s3, bias + j, mult + j, nc, neg_shift, lo8, hi, hi_shift); \
    }                                                                                        \
  }

/* armv8-a: SMULL/SMULL2 to int16 (no overflow: |a·b| <= 2^14), SADALP into int32. */
#define EK_DOT16_NEON(acc, va, vb)                                                       \
  acc = vpadalq_s16(vpadalq_s16(acc, vmull_s8(vget_low_s8(va), vget_low_s8(vb))),     \
                    vmull_high_s8(va, vb))

void ek_s8_gemm_requant__neon(size_t m, size_t k, size_t n, const int8_t *a, const int8_t *w,
                              const int32_t *bias, const int32_t *mult, int shift, int32_t lo,
                              int8_t *y) {
  EK_GEMM_BODY(EK_DOT16_NEON)
}

/* armv8.2-a dot product: one SDOT per 16 products. Compiled for dotprod here only; dispatch
 * calls it only when the CPU reports HWCAP_ASIMDDP. */
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#define EK_DOT16_DOT(acc, va, vb) acc = vdotq_s32(acc, va, vb)
/* 4×16 output blocks, k in groups of 4 (XNNPACK's 4x16c4): each 16-column panel of w is
 * packed once per call as [k/4][16 columns][4 k] (zero-padded to 16 columns and to k rounded
 * up to 16), so one SDOT by element multiplies 4 k of one row into 4 columns at once: the
 * accumulators hold whole outputs (no horizontal reduction) and requantize 4 columns per
 * vector. Panels over EK_DOT_PANEL_K and fewer than 16 columns (half a panel would be
 * padding) fall back to the 4×4 body. */
#define EK_DOT_PANEL_K 4096

/* panel[g][c][t] = w[c][4g + t] for 16 columns of w (nc valid), k valid, kp = k rounded to 16 */
EK_INLINE void pack_panel16(const int8_t *w, size_t k, size_t kp, size_t nc, int8_t *panel) {
  const size_t k16 = k & ~(size_t)15;
  for (size_t c0 = 0; c0 < 16; c0 += 4) {
    const int8_t *r[4];
    for (size_t q = 0; q < 4; q++) r[q] = w + (c0 + q < nc ? c0 + q : nc - 1) * k;
    for (size_t p = 0; p < k16; p += 16) {
      /* 4 columns × 16 k → for each group of 4 k: [c0 t0..3, c1 t0..3, c2 .., c3 ..] */
      const int32x4_t v0 = vreinterpretq_s32_s8(vld1q_s8(r[0] + p));
      const int32x4_t v1 = vreinterpretq_s32_s8(vld1q_s8(r[1] + p));
      const int32x4_t v2 = vreinterpretq_s32_s8(vld1q_s8(r[2] + p));
      const int32x4_t v3 = vreinterpretq_s32_s8(vld1q_s8(r[3] + p));
      const int32x4_t t01l = vzip1q_s32(v0, v1), t01h = vzip2q_s32(v0, v1);
      const int32x4_t t23l = vzip1q_s32(v2, v3), t23h = vzip2q_s32(v2, v3);
      int8_t *dst = panel + (p / 4) * 64 + c0 * 4;
      vst1q_s8(dst, vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s32(t01l),
                                                     vreinterpretq_s64_s32(t23l))));
      vst1q_s8(dst + 64, vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s32(t01l),
                                                          vreinterpretq_s64_s32(t23l))));
      vst1q_s8(dst + 128, vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s32(t01h),
                                                           vreinterpretq_s64_s32(t23h))));
      vst1q_s8(dst + 192, vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s32(t01h),
                                                           vreinterpretq_s64_s32(t23h))));
    }
    for (size_t p = k16; p < kp; p++)
      for (size_t q = 0; q < 4; q++)
        panel[(p / 4) * 64 + (c0 + q) * 4 + p % 4] = p < k ? r[q][p] : 0;
  }
  if (nc < 16) /* columns past the end multiply to zero (their outputs are never stored) */
    for (size_t g = 0; g < kp / 4; g++)
      for (size_t c = nc; c < 16; c++)
        for (size_t t = 0; t < 4; t++) panel[g * 64 + c * 4 + t] = 0;
}

/* One row of a 4×16 block: the accumulators already hold the bias; requantized with the
 * panel's multipliers (in registers for the whole panel), narrowed, clamped, stored. */
EK_INLINE void store_row16(int8_t *dst, const int32x4_t acc[4], const int32x4_t mu[4], size_t nc,
                           int64x2_t neg_shift, int8x16_t lo, int hi, int32x4_t hi_shift) {
  int32x4_t r[4];
  if (hi)
    for (int v = 0; v < 4; v++) r[v] = requant_s32_hi(acc[v], mu[v], hi_shift);
  else
    for (int v = 0; v < 4; v++) r[v] = requant_s32(acc[v], mu[v], neg_shift);
  const int8x16_t q = vmaxq_s8(narrow_s32x16(r[0], r[1], r[2], r[3]), lo);
  if (nc == 16) {
    vst1q_s8(dst, q);
  } else {
    int8_t tmp[16];
    vst1q_s8(tmp, q);
    for (size_t c = 0; c < nc; c++) dst[c] = tmp[c];
  }
}

void ek_s8_gemm_requant__neondot(size_t m, size_t k, size_t n, const int8_t *a,
                                 const int8_t *w, const int32_t *bias, const int32_t *mult,
                                 int shift, int32_t lo, int8_t *y) {
  if (k > EK_DOT_PANEL_K || k == 0 || n < 16) {
    EK_GEMM_BODY(EK_DOT16_DOT)
    return;
  }
  const size_t kp = (k + 15) & ~(size_t)15, k16 = k & ~(size_t)15;
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const int hi = requant_hi_ok(shift, mult, n);
  const int32x4_t hi_shift = vdupq_n_s32(31 - shift);
  const int8x16_t lo16 = vdupq_n_s8((int8_t)lo);
  int8_t panel[EK_DOT_PANEL_K * 16] __attribute__((aligned(16)));
  for (size_t j = 0; j < n; j += 16) {
    const size_t nc = n - j < 16 ? n - j : 16;
    pack_panel16(w + j * k, k, kp, nc, panel);
    int32_t bias16[16], mult16[16];
    const int32_t *bj = bias + j, *mj = mult + j;
    if (nc < 16) { /* an edge panel: do not read past the per-channel arrays */
      for (size_t c = 0; c < 16; c++) {
        bias16[c] = bias[j + (c < nc ? c : 0)];
        mult16[c] = mult[j + (c < nc ? c : 0)];
      }
      bj = bias16;
      mj = mult16;
    }
    const int32x4_t b16[4] = {vld1q_s32(bj), vld1q_s32(bj + 4), vld1q_s32(bj + 8),
                              vld1q_s32(bj + 12)};
    const int32x4_t mu16[4] = {vld1q_s32(mj), vld1q_s32(mj + 4), vld1q_s32(mj + 8),
                               vld1q_s32(mj + 12)};
    for (size_t i = 0; i < m; i += 4) {
      const size_t mr = m - i < 4 ? m - i : 4;
      const int8_t *ar[4];
      for (size_t r = 0; r < 4; r++) ar[r] = a + (i + (r < mr ? r : mr - 1)) * k;
      int32x4_t acc[4][4];  /* the bias is the accumulators' start */
      for (int r = 0; r < 4; r++)
        for (int v = 0; v < 4; v++) acc[r][v] = b16[v];
#define EK_DOT_GROUP(g)                                                               \
        {                                                                             \
          const int8x16_t w0 = vld1q_s8(pw + 64 * (g)), w1 = vld1q_s8(pw + 64 * (g) + 16);  \
          const int8x16_t w2 = vld1q_s8(pw + 64 * (g) + 32), w3 = vld1q_s8(pw + 64 * (g) + 48); \
          for (int r = 0; r < 4; r++) {                                               \
            acc[r][0] = vdotq_laneq_s32(acc[r][0], w0, va[r], g);                     \
            acc[r][1] = vdotq_laneq_s32(acc[r][1], w1, va[r], g);                     \
            acc[r][2] = vdotq_laneq_s32(acc[r][2], w2, va[r], g);                     \
            acc[r][3] = vdotq_laneq_s32(acc[r][3], w3, va[r], g);                     \
          }                                                                           \
        }
      const int8_t *pw = panel;
      for (size_t p = 0; p < k16; p += 16, pw += 256) {
        const int8x16_t va[4] = {vld1q_s8(ar[0] + p), vld1q_s8(ar[1] + p), vld1q_s8(ar[2] + p),
                                 vld1q_s8(ar[3] + p)};
        EK_DOT_GROUP(0) EK_DOT_GROUP(1) EK_DOT_GROUP(2) EK_DOT_GROUP(3)
      }
      if (k16 < kp) { /* the last partial 16 of k: zero-padded copies of the rows' tails */
        int8_t tail[4][16];
        for (int r = 0; r < 4; r++)
          for (size_t t = 0; t < 16; t++) tail[r][t] = k16 + t < k ? ar[r][k16 + t] : 0;
        const int8x16_t va[4] = {vld1q_s8(tail[0]), vld1q_s8(tail[1]), vld1q_s8(tail[2]),
                                 vld1q_s8(tail[3])};
        EK_DOT_GROUP(0) EK_DOT_GROUP(1) EK_DOT_GROUP(2) EK_DOT_GROUP(3)
      }
#undef EK_DOT_GROUP
      for (size_t r = 0; r < mr; r++)
        store_row16(y + (i + r) * n + j, acc[r], mu16, nc, neg_shift, lo16, hi, hi_shift);
    }
  }
}
#pragma GCC pop_options

/* armv8.6-a int8 matrix multiply: SMMLA multiplies a 2×8 by an 8×2 int8 block into a 2×2
 * int32 block (32 products per instruction, twice SDOT's). 8×4 output blocks: the 4 weight
 * columns are packed once per panel into column pairs interleaved every 8 k (no zips in the
 * inner loop), the 8 input rows are paired with ZIP1/ZIP2. Chosen when HWCAP2_I8MM is set. */
#define EK_I8MM_MAX_K 8192
#pragma GCC push_options
#pragma GCC target("arch=armv8.6-a+i8mm")
void ek_s8_gemm_requant__i8mm(size_t m, size_t k, size_t n, const int8_t *a, const int8_t *w,
                              const int32_t *bias, const int32_t *mult, int shift, int32_t lo,
                              int8_t *y) {
  if (k > EK_I8MM_MAX_K) {
    ek_s8_gemm_requant__neondot(m, k, n, a, w, bias, mult, shift, lo, y);
    return;
  }
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const int hi = requant_hi_ok(shift, mult, n);
  const int32x4_t hi_shift = vdupq_n_s32(31 - shift);
  const int8x8_t lo8 = vdup_n_s8((int8_t)lo);
  const size_t k16 = k & ~(size_t)15;
  /* panel[0]: columns 0,1 as [w0[p..p+8), w1[p..p+8)] for p = 0, 8, …; panel[1]: columns 2,3 */
  int8_t panel[2][2 * EK_I8MM_MAX_K] __attribute__((aligned(16)));
  for (size_t j = 0; j < n; j += 4) {
    const size_t nc = n - j < 4 ? n - j : 4;
    const int8_t *wc[4];
    for (size_t q = 0; q < 4; q++) wc[q] = w + (j + (q < nc ? q : nc - 1)) * k;
    for (size_t p = 0; p < k16; p += 8) {
      vst1q_s8(panel[0] + 2 * p, vcombine_s8(vld1_s8(wc[0] + p), vld1_s8(wc[1] + p)));
      vst1q_s8(panel[1] + 2 * p, vcombine_s8(vld1_s8(wc[2] + p), vld1_s8(wc[3] + p)));
    }
    for (size_t i = 0; i < m; i += 8) {
      const size_t mr = m - i < 8 ? m - i : 8;
      const int8_t *ar[8];
      for (size_t r = 0; r < 8; r++) ar[r] = a + (i + (r < mr ? r : mr - 1)) * k;
      int32x4_t acc[4][2];
      for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = vdupq_n_s32(0);
      for (size_t p = 0; p < k16; p += 16) {
        const int8x16_t w01a = vld1q_s8(panel[0] + 2 * p), w01b = vld1q_s8(panel[0] + 2 * p + 16);
        const int8x16_t w23a = vld1q_s8(panel[1] + 2 * p), w23b = vld1q_s8(panel[1] + 2 * p + 16);
        for (int r = 0; r < 4; r++) {
          const int64x2_t r0 = vreinterpretq_s64_s8(vld1q_s8(ar[2 * r] + p));
          const int64x2_t r1 = vreinterpretq_s64_s8(vld1q_s8(ar[2 * r + 1] + p));
          const int8x16_t pa = vreinterpretq_s8_s64(vzip1q_s64(r0, r1)); /* k p..p+8 */
          const int8x16_t pb = vreinterpretq_s8_s64(vzip2q_s64(r0, r1)); /* k p+8..p+16 */
          acc[r][0] = vmmlaq_s32(vmmlaq_s32(acc[r][0], pa, w01a), pb, w01b);
          acc[r][1] = vmmlaq_s32(vmmlaq_s32(acc[r][1], pa, w23a), pb, w23b);
        }
      }
      for (int r = 0; r < 4; r++) {
        /* acc[r][c] = [row 2r · col 2c, row 2r · col 2c+1, row 2r+1 · col 2c, row 2r+1 · col 2c+1] */
        int32x4_t s0 = vcombine_s32(vget_low_s32(acc[r][0]), vget_low_s32(acc[r][1]));
        int32x4_t s1 = vcombine_s32(vget_high_s32(acc[r][0]), vget_high_s32(acc[r][1]));
        if (k16 < k) {
          int32_t t[2][4] = {{0}};
          for (int h = 0; h < 2; h++)
            for (int q = 0; q < 4; q++)
              for (size_t p = k16; p < k; p++) t[h][q] += (int32_t)ar[2 * r + h][p] * wc[q][p];
          s0 = vaddq_s32(s0, vld1q_s32(t[0]));
          s1 = vaddq_s32(s1, vld1q_s32(t[1]));
        }
        const size_t row = 2 * (size_t)r;
        int8_t *yr = y + (i + row) * n + j;
        if (row < mr) store_block_row(yr, s0, bias + j, mult + j, nc, neg_shift, lo8, hi, hi_shift);
        if (row + 1 < mr) store_block_row(yr + n, s1, bias + j, mult + j, nc, neg_shift, lo8, hi, hi_shift);
      }
    }
  }
}
#pragma GCC pop_options

/* ---- depthwise 3×3: rows copied into zero-padded line buffers, 8 outputs per step ------- */

#define EK_MAX_ROW 4096 /* wider rows go through the portable kernel */

/* Stores the first n (<= 8) lanes of q. */
EK_INLINE void store_partial8(int8_t *dst, int8x8_t q, long n) {
  if (n == 8) {
    vst1_s8(dst, q);
    return;
  }
  int8_t tmp[8];
  vst1_s8(tmp, q);
  for (long i = 0; i < n; i++) dst[i] = tmp[i];
}

/* dst[0..pad) = 0, dst[pad..pad+w) = src, then 32 zero bytes (the loads' slack). */
EK_INLINE void pad_row(int8_t *dst, const int8_t *src, long w, int pad) {
  for (int i = 0; i < pad; i++) dst[i] = 0;
  long i = 0;
  for (; i + 16 <= w; i += 16) vst1q_s8(dst + pad + i, vld1q_s8(src + i));
  for (; i < w; i++) dst[pad + i] = src[i];
  vst1q_s8(dst + pad + w, vdupq_n_s8(0));
  vst1q_s8(dst + pad + w + 16, vdupq_n_s8(0));
}

void ek_s8_dwconv3x3_requant__neon(size_t c, size_t h, size_t w_in, int stride, int pad,
                                   const int8_t *x, const int8_t *w, const int32_t *bias,
                                   const int32_t *mult, int shift, int32_t lo, int8_t *y) {
  if (w_in > EK_MAX_ROW) {
    ek_s8_dwconv3x3_requant__scalar(c, h, w_in, stride, pad, x, w, bias, mult, shift, lo, y);
    return;
  }
  const long H = (long)h, W = (long)w_in;
  const long oh = (H + 2 * pad - 3) / stride + 1, ow = (W + 2 * pad - 3) / stride + 1;
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const int8x8_t lo8 = vdup_n_s8((int8_t)lo);
  /* loads reach padded column 2·(ow-1) + 2 + 15 <= W + 2·pad + 14 */
  /* a ring of 3 padded rows: input row iy lives in slot iy % 3 and is padded once */
  int8_t rows[3][EK_MAX_ROW + 48] __attribute__((aligned(16)));
  for (size_t ch = 0; ch < c; ch++) {
    const int8_t *plane = x + ch * h * w_in, *taps = w + ch * 9;
    const int32x4_t mv = vdupq_n_s32(mult[ch]), bv = vdupq_n_s32(bias[ch]);
    long held[3] = {-1, -1, -1};
    for (long oy = 0; oy < oh; oy++) {
      int valid[3];
      const int8_t *row[3];
      for (int ky = 0; ky < 3; ky++) {
        const long iy = oy * stride - pad + ky;
        valid[ky] = iy >= 0 && iy < H;
        if (!valid[ky]) continue;
        const int slot = (int)(iy % 3);
        if (held[slot] != iy) {
          pad_row(rows[slot], plane + iy * W, W, pad);
          held[slot] = iy;
        }
        row[ky] = rows[slot];
      }
      int8_t *out = y + (ch * oh + oy) * ow;
      for (long ox = 0; ox < ow; ox += 8) {
        int32x4_t acc_lo = bv, acc_hi = bv;
        for (int ky = 0; ky < 3; ky++) {
          if (!valid[ky]) continue;
          const int8_t *src = row[ky] + ox * stride;
          int16x8_t t0, t1, t2;
          if (stride == 1) {
            t0 = vmovl_s8(vld1_s8(src));
            t1 = vmovl_s8(vld1_s8(src + 1));
            t2 = vmovl_s8(vld1_s8(src + 2));
          } else {
            const int8x8x2_t p01 = vld2_s8(src), p2 = vld2_s8(src + 2);
            t0 = vmovl_s8(p01.val[0]);
            t1 = vmovl_s8(p01.val[1]);
            t2 = vmovl_s8(p2.val[0]);
          }
          const int8_t *tk = taps + ky * 3;
          acc_lo = vmlal_n_s16(acc_lo, vget_low_s16(t0), tk[0]);
          acc_hi = vmlal_high_n_s16(acc_hi, t0, tk[0]);
          acc_lo = vmlal_n_s16(acc_lo, vget_low_s16(t1), tk[1]);
          acc_hi = vmlal_high_n_s16(acc_hi, t1, tk[1]);
          acc_lo = vmlal_n_s16(acc_lo, vget_low_s16(t2), tk[2]);
          acc_hi = vmlal_high_n_s16(acc_hi, t2, tk[2]);
        }
        const int8x8_t q = narrow_s32x8(requant_s32(acc_lo, mv, neg_shift),
                                        requant_s32(acc_hi, mv, neg_shift));
        store_partial8(out + ox, vmax_s8(q, lo8), ow - ox < 8 ? ow - ox : 8);
      }
    }
  }
}

/* ---- shift-exp on int32 lanes (Shiftmax, ShiftGELU) ------------------------------------- */

/* Constants of shift_exp for one x0: q = floor(u / d) by a multiply-high (exact for
 * u <= n·d when 2 <= d < 2^14; callers fall back to the portable code otherwise). */
typedef struct {
  int32x4_t n_x0;  /* n·x0, the clamp */
  int32x4_t d;     /* -x0 > 0 */
  int32x4_t n;
  uint32x4_t magic; /* ceil(2^32 / d) */
} shift_exp_k;

EK_INLINE int shift_exp_vector_ok(int32_t x0) { return x0 <= -2 && x0 > -(1 << 14); }

EK_INLINE shift_exp_k shift_exp_constants(int32_t x0, int n) {
  shift_exp_k k;
  const uint64_t d = (uint64_t)(-(int64_t)x0);
  k.n_x0 = vdupq_n_s32(n * x0);
  k.d = vdupq_n_s32((int32_t)d);
  k.n = vdupq_n_s32(n);
  k.magic = vdupq_n_u32((uint32_t)(((1ull << 32) + d - 1) / d));
  return k;
}

/* exp_int of 4 lanes x <= 0 (reference.shift_exp). */
EK_INLINE int32x4_t shift_exp_s32(int32x4_t x, const shift_exp_k *k) {
  int32x4_t t = vsubq_s32(vaddq_s32(x, vshrq_n_s32(x, 1)), vshrq_n_s32(x, 4));
  t = vmaxq_s32(t, k->n_x0);
  const uint32x4_t u = vreinterpretq_u32_s32(vnegq_s32(t));
  const uint32x4_t q = vuzp2q_u32(vreinterpretq_u32_u64(vmull_u32(vget_low_u32(u),
                                                                   vget_low_u32(k->magic))),
                                  vreinterpretq_u32_u64(vmull_high_u32(u, k->magic)));
  const int32x4_t qs = vreinterpretq_s32_u32(q);
  /* r - 2·x0 = (q + 2)·d - u, in (d, 2d] */
  const int32x4_t base = vsubq_s32(vmulq_s32(vaddq_s32(qs, vdupq_n_s32(2)), k->d),
                                   vreinterpretq_s32_u32(u));
  return vshrq_n_s32(vshlq_s32(base, vsubq_s32(k->n, qs)), 1);
}

/* ---- Shiftmax ----------------------------------------------------------------------------- */

void ek_s8_shiftmax__neon(size_t rows, size_t len, const int8_t *x, int32_t x0, int n,
                          int out_bits, int32_t *scratch, uint8_t *y) {
  if (!shift_exp_vector_ok(x0)) {
    ek_s8_shiftmax__scalar(rows, len, x, x0, n, out_bits, scratch, y);
    return;
  }
  const shift_exp_k k = shift_exp_constants(x0, n);
  const int32x4_t out_shift = vdupq_n_s32(-(32 - out_bits));
  const size_t len16 = len & ~(size_t)15;
  for (size_t r = 0; r < rows; r++) {
    const int8_t *row = x + r * len;
    uint8_t *out = y + r * len;
    int8x16_t vmax = vdupq_n_s8(-128);
    for (size_t j = 0; j < len16; j += 16) vmax = vmaxq_s8(vmax, vld1q_s8(row + j));
    int32_t max = vmaxvq_s8(vmax);
    for (size_t j = len16; j < len; j++) max = row[j] > max ? row[j] : max;
    const int8x8_t m8 = vdup_n_s8((int8_t)max);
    uint64x2_t sum = vdupq_n_u64(0);
    for (size_t j = 0; j < len16; j += 16) {
      const int8x16_t v = vld1q_s8(row + j);
      const int16x8_t d0 = vsubl_s8(vget_low_s8(v), m8), d1 = vsubl_s8(vget_high_s8(v), m8);
      const int32x4_t e0 = shift_exp_s32(vmovl_s16(vget_low_s16(d0)), &k);
      const int32x4_t e1 = shift_exp_s32(vmovl_high_s16(d0), &k);
      const int32x4_t e2 = shift_exp_s32(vmovl_s16(vget_low_s16(d1)), &k);
      const int32x4_t e3 = shift_exp_s32(vmovl_high_s16(d1), &k);
      vst1q_s32(scratch + j, e0);
      vst1q_s32(scratch + j + 4, e1);
      vst1q_s32(scratch + j + 8, e2);
      vst1q_s32(scratch + j + 12, e3);
      sum = vpadalq_u32(sum, vreinterpretq_u32_s32(vaddq_s32(vaddq_s32(e0, e1),
                                                             vaddq_s32(e2, e3))));
    }
    int64_t total = (int64_t)vaddvq_u64(sum);
    for (size_t j = len16; j < len; j++) {
      scratch[j] = (int32_t)ek_shift_exp((int64_t)row[j] - max, x0, n);
      total += scratch[j];
    }
    if (total > EK_INT32_MAX) total = EK_INT32_MAX;
    const int32_t factor = (int32_t)(EK_INT32_MAX / total);
    const int32x4_t fv = vdupq_n_s32(factor);
    for (size_t j = 0; j < len16; j += 16) {
      /* exp · factor <= 2^31 - 1 (exp <= total), so 32-bit products are exact; vrshl rounds
       * half up with the carry kept (no overflow near 2^31), as reference.shiftmax */
      const uint32x4_t o0 = vreinterpretq_u32_s32(vrshlq_s32(vmulq_s32(vld1q_s32(scratch + j), fv), out_shift));
      const uint32x4_t o1 = vreinterpretq_u32_s32(vrshlq_s32(vmulq_s32(vld1q_s32(scratch + j + 4), fv), out_shift));
      const uint32x4_t o2 = vreinterpretq_u32_s32(vrshlq_s32(vmulq_s32(vld1q_s32(scratch + j + 8), fv), out_shift));
      const uint32x4_t o3 = vreinterpretq_u32_s32(vrshlq_s32(vmulq_s32(vld1q_s32(scratch + j + 12), fv), out_shift));
      const uint16x8_t h0 = vcombine_u16(vmovn_u32(o0), vmovn_u32(o1));
      const uint16x8_t h1 = vcombine_u16(vmovn_u32(o2), vmovn_u32(o3));
      vst1q_u8(out + j, vcombine_u8(vmovn_u16(h0), vmovn_u16(h1)));
    }
    for (size_t j = len16; j < len; j++)
      out[j] = (uint8_t)(((int64_t)scratch[j] * factor + ((int64_t)1 << (31 - out_bits)))
                         >> (32 - out_bits));
  }
}

/* ---- ShiftGELU ---------------------------------------------------------------------------- */

/* floor((2^31 - 1) / den) for 0 < den < 2^31, exactly: a float estimate (within ±1) fixed up
 * by the integer remainder. */
EK_INLINE int32x4_t div_int32_max(int32x4_t den) {
  const uint32x4_t est = vcvtq_u32_f32(vdivq_f32(vdupq_n_f32(2147483647.0f),
                                                 vcvtq_f32_s32(den)));
  int32x4_t q = vreinterpretq_s32_u32(est);
  /* r = (2^31 - 1) - q·den, wrapping (unsigned lanes): the true r is small */
  int32x4_t r = vreinterpretq_s32_u32(vsubq_u32(
      vdupq_n_u32(EK_INT32_MAX), vmulq_u32(est, vreinterpretq_u32_s32(den))));
  const uint32x4_t neg = vcltq_s32(r, vdupq_n_s32(0));
  q = vaddq_s32(q, vreinterpretq_s32_u32(neg)); /* −1 where r < 0 */
  r = vaddq_s32(r, vandq_s32(den, vreinterpretq_s32_u32(neg)));
  const uint32x4_t big = vcgeq_s32(r, den);
  return vsubq_s32(q, vreinterpretq_s32_u32(big)); /* +1 where r >= den */
}

EK_INLINE int32x4_t shiftgelu_s32(int32x4_t v, const shift_exp_k *k, int32x4_t one,
                                  int32x4_t sig_shift, int32x4_t mult, int64x2_t neg_shift) {
  const int32x4_t e = shift_exp_s32(vnegq_s32(vabsq_s32(v)), k);
  const int32x4_t factor = div_int32_max(vaddq_s32(one, e));
  const int32x4_t pick = vbslq_s32(vcgezq_s32(v), one, e);
  const int32x4_t sig = vshlq_s32(vmulq_s32(pick, factor), sig_shift);
  return requant_s32(vmulq_s32(v, sig), mult, neg_shift);
}

void ek_s8_shiftgelu__neon(size_t count, const int8_t *x, int32_t x0, int n, int sig_bits,
                           int32_t mult, int shift, int8_t *y) {
  /* one + e <= 2^(n+1)·|x0| must stay below 2^31 for the 32-bit lanes */
  if (!shift_exp_vector_ok(x0) || n > 15) {
    ek_s8_shiftgelu__scalar(count, x, x0, n, sig_bits, mult, shift, y);
    return;
  }
  const shift_exp_k k = shift_exp_constants(x0, n);
  const int32x4_t one = vdupq_n_s32((int32_t)(-x0) << n);
  const int32x4_t sig_shift = vdupq_n_s32(-(32 - sig_bits)), mv = vdupq_n_s32(mult);
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const int8x16_t v = vld1q_s8(x + i);
    const int16x8_t h0 = vmovl_s8(vget_low_s8(v)), h1 = vmovl_high_s8(v);
    vst1q_s8(y + i, narrow_s32x16(
        shiftgelu_s32(vmovl_s16(vget_low_s16(h0)), &k, one, sig_shift, mv, neg_shift),
        shiftgelu_s32(vmovl_high_s16(h0), &k, one, sig_shift, mv, neg_shift),
        shiftgelu_s32(vmovl_s16(vget_low_s16(h1)), &k, one, sig_shift, mv, neg_shift),
        shiftgelu_s32(vmovl_high_s16(h1), &k, one, sig_shift, mv, neg_shift)));
  }
  if (i < count) ek_s8_shiftgelu__scalar(count - i, x + i, x0, n, sig_bits, mult, shift, y + i);
}

/* ---- I-LayerNorm -------------------------------------------------------------------------- */

void ek_s8_ilayernorm__neon(size_t rows, size_t c, const int8_t *x, const int32_t *gamma,
                            const int64_t *beta, int shift, int8_t *y) {
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const size_t c16 = c & ~(size_t)15;
  for (size_t r = 0; r < rows; r++) {
    const int8_t *row = x + r * c;
    int8_t *out = y + r * c;
    int32x4_t vsum = vdupq_n_s32(0);
    for (size_t j = 0; j < c16; j += 16) vsum = vpadalq_s16(vsum, vpaddlq_s8(vld1q_s8(row + j)));
    int64_t sum = vaddlvq_s32(vsum);
    for (size_t j = c16; j < c; j++) sum += row[j];
    const int64_t mean = ek_ln_mean(sum, (int64_t)c);
    const int16x8_t mv = vdupq_n_s16((int16_t)mean);
    /* |x - mean| <= 255: squares fit int32 lanes for c < 2^17 */
    int32x4_t vvar = vdupq_n_s32(0);
    for (size_t j = 0; j < c16; j += 16) {
      const int8x16_t v = vld1q_s8(row + j);
      const int16x8_t d0 = vsubq_s16(vmovl_s8(vget_low_s8(v)), mv);
      const int16x8_t d1 = vsubq_s16(vmovl_high_s8(v), mv);
      vvar = vmlal_s16(vvar, vget_low_s16(d0), vget_low_s16(d0));
      vvar = vmlal_high_s16(vvar, d0, d0);
      vvar = vmlal_s16(vvar, vget_low_s16(d1), vget_low_s16(d1));
      vvar = vmlal_high_s16(vvar, d1, d1);
    }
    int64_t var = vaddlvq_s32(vvar);
    for (size_t j = c16; j < c; j++) var += (row[j] - mean) * (row[j] - mean);
    const int64_t factor = EK_INT32_MAX / ek_isqrt_newton(var);
    /* |x - mean| <= isqrt >= floor(sqrt(var)), so (x - mean)·factor fits int32 exactly */
    const int32x4_t fv = vdupq_n_s32((int32_t)factor);
    for (size_t j = 0; j < c16; j += 16) {
      const int8x16_t v = vld1q_s8(row + j);
      const int16x8_t d0 = vsubq_s16(vmovl_s8(vget_low_s8(v)), mv);
      const int16x8_t d1 = vsubq_s16(vmovl_high_s8(v), mv);
      const int32x4_t dd[4] = {vmovl_s16(vget_low_s16(d0)), vmovl_high_s16(d0),
                               vmovl_s16(vget_low_s16(d1)), vmovl_high_s16(d1)};
      int32x4_t o[4];
      for (int q = 0; q < 4; q++) {
        const int32x4_t yn = vshrq_n_s32(vmulq_s32(dd[q], fv), 1);
        const int32x4_t g = vld1q_s32(gamma + j + 4 * q);
        const int64x2_t lo = vmlal_s32(vld1q_s64(beta + j + 4 * q), vget_low_s32(yn), vget_low_s32(g));
        const int64x2_t hi = vmlal_high_s32(vld1q_s64(beta + j + 4 * q + 2), yn, g);
        o[q] = round_narrow_s64(lo, hi, neg_shift);
      }
      vst1q_s8(out + j, narrow_s32x16(o[0], o[1], o[2], o[3]));
    }
    for (size_t j = c16; j < c; j++) {
      const int64_t yn = ((row[j] - mean) * factor) >> 1;
      out[j] = (int8_t)ek_clamp(ek_round_shift(yn * gamma[j] + beta[j], shift), -128, 127);
    }
  }
}

/* ---- average pool: separable window sums (column sums over the valid rows, then k taps
 * along the row) on a zero-padded int16 line; count_include_pad=False lives in the per-position
 * multipliers. */

void ek_s8_avgpool_requant__neon(size_t c, size_t h, size_t w_in, int kernel, int stride,
                                 int pad, const int8_t *x, const int32_t *mult, int shift,
                                 int8_t *y) {
  /* int16 window sums need kernel² · 128 < 2^15 */
  if (stride != 1 || kernel > 15 || w_in > EK_MAX_ROW) {
    ek_s8_avgpool_requant__scalar(c, h, w_in, kernel, stride, pad, x, mult, shift, y);
    return;
  }
  const long H = (long)h, W = (long)w_in;
  const long oh = H + 2 * pad - kernel + 1, ow = W + 2 * pad - kernel + 1;
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const int hi = requant_hi_ok(shift, mult, (size_t)(oh * ow));
  const int32x4_t hi_shift = vdupq_n_s32(31 - shift);
  /* column sums at padded positions 0 .. ow + kernel - 1 + 8 (slack for the last chunk) */
  int16_t cols[EK_MAX_ROW + 64] __attribute__((aligned(16)));
  const long span = ow + kernel + 8;
  for (size_t ch = 0; ch < c; ch++) {
    const int8_t *plane = x + ch * h * w_in;
    for (long oy = 0; oy < oh; oy++) {
      for (long i = 0; i < span; i += 8) vst1q_s16(cols + i, vdupq_n_s16(0));
      const long y0 = oy - pad < 0 ? 0 : oy - pad;
      const long y1 = oy - pad + kernel > H ? H : oy - pad + kernel;
      long i = 0;
      for (; i + 8 <= W; i += 8) {
        int16x8_t sum = vdupq_n_s16(0);
        for (long iy = y0; iy < y1; iy++) sum = vaddw_s8(sum, vld1_s8(plane + iy * W + i));
        vst1q_s16(cols + pad + i, sum);
      }
      if (i < W && W >= 8) {  /* the last columns: one chunk ending at W, overlapping */
        i = W - 8;
        int16x8_t sum = vdupq_n_s16(0);
        for (long iy = y0; iy < y1; iy++) sum = vaddw_s8(sum, vld1_s8(plane + iy * W + i));
        vst1q_s16(cols + pad + i, sum);
        i = W;
      }
      for (; i < W; i++) {
        int16_t sum = 0;
        for (long iy = y0; iy < y1; iy++) sum += plane[iy * W + i];
        cols[pad + i] = sum;
      }
      int8_t *out = y + (ch * oh + oy) * ow;
      const int32_t *mrow = mult + oy * ow;
      for (long ox = 0; ox < ow; ox += 8) {
        int16x8_t total = vld1q_s16(cols + ox);
        for (int kx = 1; kx < kernel; kx++) total = vaddq_s16(total, vld1q_s16(cols + ox + kx));
        const long n = ow - ox < 8 ? ow - ox : 8;
        int32_t tail[8];
        const int32_t *mu = mrow + ox;
        if (n < 8) { /* the last chunk: do not read past the multipliers */
          for (long q = 0; q < 8; q++) tail[q] = mrow[ox + (q < n ? q : 0)];
          mu = tail;
        }
        const int32x4_t t0 = vmovl_s16(vget_low_s16(total)), t1 = vmovl_high_s16(total);
        const int32x4_t r0 = hi ? requant_s32_hi(t0, vld1q_s32(mu), hi_shift)
                                : requant_s32(t0, vld1q_s32(mu), neg_shift);
        const int32x4_t r1 = hi ? requant_s32_hi(t1, vld1q_s32(mu + 4), hi_shift)
                                : requant_s32(t1, vld1q_s32(mu + 4), neg_shift);
        store_partial8(out + ox, narrow_s32x8(r0, r1), n);
      }
    }
  }
}

/* ---- constant add / multiply: 8 elements per step in int64 lanes (SMULL, SRSHL), narrowed
 * with saturation (SQXTN) -------------------------------------------------------------------- */

/* 8 int64 pairs → int8, saturated, rounded by SRSHL (−shift): the scalar ek_round_shift */
EK_INLINE int8x8_t round_narrow8(int64x2_t v0, int64x2_t v1, int64x2_t v2, int64x2_t v3,
                                 int64x2_t neg_shift) {
  const int32x4_t lo = round_narrow_s64(v0, v1, neg_shift);
  const int32x4_t hi = round_narrow_s64(v2, v3, neg_shift);
  return narrow_s32x8(lo, hi);
}

void ek_s8_addconst_requant__neon(size_t count, const int8_t *x, int32_t mult, const int64_t *c,
                                  int shift, int8_t *y) {
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const int32x2_t m = vdup_n_s32(mult);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const int16x8_t x16 = vmovl_s8(vld1_s8(x + i));
    const int32x4_t a = vmovl_s16(vget_low_s16(x16)), b = vmovl_high_s16(x16);
    const int64x2_t v0 = vaddq_s64(vmull_s32(vget_low_s32(a), m), vld1q_s64(c + i));
    const int64x2_t v1 = vaddq_s64(vmull_s32(vget_high_s32(a), m), vld1q_s64(c + i + 2));
    const int64x2_t v2 = vaddq_s64(vmull_s32(vget_low_s32(b), m), vld1q_s64(c + i + 4));
    const int64x2_t v3 = vaddq_s64(vmull_s32(vget_high_s32(b), m), vld1q_s64(c + i + 6));
    vst1_s8(y + i, round_narrow8(v0, v1, v2, v3, neg_shift));
  }
  for (; i < count; i++)
    y[i] = (int8_t)ek_clamp(ek_round_shift((int64_t)x[i] * mult + c[i], shift), -128, 127);
}

void ek_s8_mulconst_requant__neon(size_t count, const int8_t *x, const int32_t *m, int shift,
                                  int8_t *y) {
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const int16x8_t x16 = vmovl_s8(vld1_s8(x + i));
    const int32x4_t a = vmovl_s16(vget_low_s16(x16)), b = vmovl_high_s16(x16);
    const int32x4_t ma = vld1q_s32(m + i), mb = vld1q_s32(m + i + 4);
    vst1_s8(y + i, round_narrow8(vmull_s32(vget_low_s32(a), vget_low_s32(ma)),
                                 vmull_high_s32(a, ma),
                                 vmull_s32(vget_low_s32(b), vget_low_s32(mb)),
                                 vmull_high_s32(b, mb), neg_shift));
  }
  for (; i < count; i++)
    y[i] = (int8_t)ek_clamp(ek_round_shift((int64_t)x[i] * m[i], shift), -128, 127);
}

/* ---- residual add, Hardswish ------------------------------------------------------------- */

void ek_s8_add_requant__neon(size_t count, const int8_t *a, const int8_t *b, int32_t mult_a,
                             int32_t mult_b, int shift, int8_t *y) {
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const int32x4_t ma = vdupq_n_s32(mult_a), mb = vdupq_n_s32(mult_b);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const int8x16_t va = vld1q_s8(a + i), vb = vld1q_s8(b + i);
    const int16x8_t a0 = vmovl_s8(vget_low_s8(va)), a1 = vmovl_high_s8(va);
    const int16x8_t b0 = vmovl_s8(vget_low_s8(vb)), b1 = vmovl_high_s8(vb);
    const int32x4_t av[4] = {vmovl_s16(vget_low_s16(a0)), vmovl_high_s16(a0),
                             vmovl_s16(vget_low_s16(a1)), vmovl_high_s16(a1)};
    const int32x4_t bv[4] = {vmovl_s16(vget_low_s16(b0)), vmovl_high_s16(b0),
                             vmovl_s16(vget_low_s16(b1)), vmovl_high_s16(b1)};
    int32x4_t o[4];
    for (int q = 0; q < 4; q++) {
      const int64x2_t lo = vmlal_s32(vmull_s32(vget_low_s32(av[q]), vget_low_s32(ma)),
                                     vget_low_s32(bv[q]), vget_low_s32(mb));
      const int64x2_t hi = vmlal_high_s32(vmull_high_s32(av[q], ma), bv[q], mb);
      o[q] = round_narrow_s64(lo, hi, neg_shift);
    }
    vst1q_s8(y + i, narrow_s32x16(o[0], o[1], o[2], o[3]));
  }
  if (i < count) ek_s8_add_requant__scalar(count - i, a + i, b + i, mult_a, mult_b, shift, y + i);
}

void ek_s8_hardswish__neon(size_t count, const int8_t *x, int32_t r3, int32_t r6, int32_t mult,
                           int shift, int8_t *y) {
  const int64x2_t neg_shift = vdupq_n_s64(-shift);
  const int32x4_t v3 = vdupq_n_s32(r3), v6 = vdupq_n_s32(r6), zero = vdupq_n_s32(0);
  const int32x4_t mv = vdupq_n_s32(mult);
  /* x·t must fit int32: |x| <= 128, so r6 < 2^24 */
  if (r6 >= (1 << 24) || r6 < 0 || r3 > (1 << 24) || r3 < -(1 << 24)) {
    ek_s8_hardswish__scalar(count, x, r3, r6, mult, shift, y);
    return;
  }
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const int8x16_t v = vld1q_s8(x + i);
    const int16x8_t h0 = vmovl_s8(vget_low_s8(v)), h1 = vmovl_high_s8(v);
    const int32x4_t xv[4] = {vmovl_s16(vget_low_s16(h0)), vmovl_high_s16(h0),
                             vmovl_s16(vget_low_s16(h1)), vmovl_high_s16(h1)};
    int32x4_t o[4];
    for (int q = 0; q < 4; q++) {
      const int32x4_t t = vminq_s32(vmaxq_s32(vaddq_s32(xv[q], v3), zero), v6);
      o[q] = requant_s32(vmulq_s32(xv[q], t), mv, neg_shift);
    }
    vst1q_s8(y + i, narrow_s32x16(o[0], o[1], o[2], o[3]));
  }
  if (i < count) ek_s8_hardswish__scalar(count - i, x + i, r3, r6, mult, shift, y + i);
}


/* A 16×16 byte tile in registers, transposed in four TRN stages (bytes, halves, words,
 * doublewords): register j ends as column j. */
EK_INLINE void transpose16x16(uint8x16_t v[16]) {
  for (int i = 0; i < 16; i += 2) {
    const uint8x16_t a = v[i], b = v[i + 1];
    v[i] = vtrn1q_u8(a, b);
    v[i + 1] = vtrn2q_u8(a, b);
  }
  for (int i = 0; i < 16; i++) {
    if (i & 2) continue;
    const uint16x8_t a = vreinterpretq_u16_u8(v[i]), b = vreinterpretq_u16_u8(v[i + 2]);
    v[i] = vreinterpretq_u8_u16(vtrn1q_u16(a, b));
    v[i + 2] = vreinterpretq_u8_u16(vtrn2q_u16(a, b));
  }
  for (int i = 0; i < 16; i++) {
    if (i & 4) continue;
    const uint32x4_t a = vreinterpretq_u32_u8(v[i]), b = vreinterpretq_u32_u8(v[i + 4]);
    v[i] = vreinterpretq_u8_u32(vtrn1q_u32(a, b));
    v[i + 4] = vreinterpretq_u8_u32(vtrn2q_u32(a, b));
  }
  for (int i = 0; i < 8; i++) {
    const uint64x2_t a = vreinterpretq_u64_u8(v[i]), b = vreinterpretq_u64_u8(v[i + 8]);
    v[i] = vreinterpretq_u8_u64(vtrn1q_u64(a, b));
    v[i + 8] = vreinterpretq_u8_u64(vtrn2q_u64(a, b));
  }
}

/* One 16×16 tile of x8_transpose at (r, c): all 16 columns stored, or only the last `keep`. */
EK_INLINE void transpose_tile(const uint8_t *x, size_t x_stride, uint8_t *y, size_t y_stride,
                              size_t r, size_t c, int keep) {
  uint8x16_t v[16];
  for (int i = 0; i < 16; i++) v[i] = vld1q_u8(x + (r + (size_t)i) * x_stride + c);
  transpose16x16(v);
  for (int j = 16 - keep; j < 16; j++) vst1q_u8(y + (c + (size_t)j) * y_stride + r, v[j]);
}

/* x8_transpose: 16×16 tiles in registers. A matrix of at least 16 × 16 ends on tiles that
 * overlap the last full ones (the last 16 rows / columns): rewritten bytes get the same
 * values, so nothing runs element by element; smaller matrices go through the scalar kernel. */
void ek_x8_transpose__neon(size_t rows, size_t cols, const uint8_t *x, size_t x_stride,
                           uint8_t *y, size_t y_stride) {
  if (rows < 16 || cols < 16) {
    ek_x8_transpose__scalar(rows, cols, x, x_stride, y, y_stride);
    return;
  }
  const size_t c16 = cols & ~(size_t)15;
  const int tail = (int)(cols - c16);
  for (size_t r = 0;; r += 16) {
    if (r + 16 > rows) r = rows - 16; /* the overlapping last block of rows */
    for (size_t c = 0; c < c16; c += 16) transpose_tile(x, x_stride, y, y_stride, r, c, 16);
    if (tail) transpose_tile(x, x_stride, y, y_stride, r, cols - 16, tail);
    if (r + 16 == rows) break;
  }
}

/* Tap t (ordered ky, kx, c) of 16 output pixels from (oy, ox0) of an NCHW group: one load
 * when the 16 (stride 1) or 32 (stride 2, LD2's even lanes) source bytes lie inside the image
 * row; else lane by lane, zero outside the image and past the n valid pixels. */
EK_INLINE uint8x16_t im2col_tap16(const ek_conv2d_shape *s, const int8_t *x, size_t cpg, size_t t,
                                  long oy, long ox0, size_t n) {
  const size_t c = t % cpg, kx = t / cpg % s->kw, ky = t / cpg / s->kw;
  const long iy = oy * (long)s->sh - (long)s->ph + (long)ky;
  if (iy < 0 || iy >= (long)s->h) return vdupq_n_u8(0);
  const uint8_t *row = (const uint8_t *)x + (c * s->h + (size_t)iy) * s->w;
  const long ix0 = ox0 * (long)s->sw - (long)s->pw + (long)kx, w = (long)s->w;
  if (ix0 >= 0 && s->sw == 1 && ix0 + 16 <= w) return vld1q_u8(row + ix0);
  if (ix0 >= 0 && s->sw == 2 && ix0 + 32 <= w) return vld2q_u8(row + ix0).val[0];
  uint8_t lane[16];
  for (size_t p = 0; p < 16; p++) {
    const long ix = ix0 + (long)p * (long)s->sw;
    lane[p] = p < n && ix >= 0 && ix < w ? row[ix] : 0;
  }
  return vld1q_u8(lane);
}

/* im2col rows of output pixels [p0, p1) straight from an NCHW group (few channels: the RGB
 * stem), 16 pixels × 16 taps at a time: the taps' pixel vectors, transposed in registers into
 * the pixels' rows of taps. */
void ek_s8_im2col_nchw__neon(const ek_conv2d_shape *s, const int8_t *x, size_t p0, size_t p1,
                             size_t kp, int8_t *cols) {
  const size_t cpg = s->c / s->groups, kk = cpg * s->kh * s->kw;
  const size_t ow = (s->w + 2 * s->pw - s->kw) / s->sw + 1;
  for (size_t px = p0; px < p1;) {
    const size_t oy = px / ow, ox0 = px % ow;
    size_t n = ow - ox0 < 16 ? ow - ox0 : 16;
    if (n > p1 - px) n = p1 - px;
    for (size_t t0 = 0; t0 < kp; t0 += 16) {
      uint8x16_t v[16];
      for (size_t i = 0; i < 16; i++)
        v[i] = t0 + i < kk ? im2col_tap16(s, x, cpg, t0 + i, (long)oy, (long)ox0, n)
                           : vdupq_n_u8(0);
      transpose16x16(v);
      for (size_t p = 0; p < n; p++) vst1q_u8((uint8_t *)cols + (px + p) * kp + t0, v[p]);
    }
    px += n;
  }
}

/* x8_lut: four 64-byte TBL/TBX lookups per 16 bytes. */
void ek_x8_lut__neon(size_t count, const uint8_t *x, const uint8_t *table, uint8_t *y) {
  const uint8x16x4_t t0 = vld1q_u8_x4(table), t1 = vld1q_u8_x4(table + 64);
  const uint8x16x4_t t2 = vld1q_u8_x4(table + 128), t3 = vld1q_u8_x4(table + 192);
  const uint8x16_t step = vdupq_n_u8(64);
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    uint8x16_t v = vld1q_u8(x + i);
    uint8x16_t r = vqtbl4q_u8(t0, v);
    v = vsubq_u8(v, step);
    r = vqtbx4q_u8(r, t1, v);
    v = vsubq_u8(v, step);
    r = vqtbx4q_u8(r, t2, v);
    v = vsubq_u8(v, step);
    r = vqtbx4q_u8(r, t3, v);
    vst1q_u8(y + i, r);
  }
  if (i < count) ek_x8_lut__scalar(count - i, x + i, table, y + i);
}

/* s8_mean_requant: sums in int16 lanes, flushed to int32 before they can overflow (a lane
 * takes at most 2 values of |x| <= 128 per step: 127 steps; or one value per row: 256 rows).
 * inner == 1 (a global pool's contiguous planes): SADALP of 16 bytes per step; wider inner
 * axes (a token mean over [tokens][channels]): SADDW of whole rows, 16 columns at a time. The
 * few outputs requantize in scalar. */
void ek_s8_mean_requant__neon(size_t outer, size_t count, size_t inner, const int8_t *x,
                              int32_t mult, int shift, int8_t *y) {
  if (inner == 1) {
    for (size_t o = 0; o < outer; o++) {
      const int8_t *row = x + o * count;
      int32x4_t acc = vdupq_n_s32(0);
      size_t q = 0;
      while (q + 16 <= count) {
        int16x8_t part = vdupq_n_s16(0);
        for (int step = 0; step < 127 && q + 16 <= count; step++, q += 16)
          part = vpadalq_s8(part, vld1q_s8(row + q));
        acc = vpadalq_s16(acc, part);
      }
      int64_t total = vaddvq_s32(acc);
      for (; q < count; q++) total += row[q];
      y[o] = (int8_t)ek_clamp(ek_round_shift(total * mult, shift), -128, 127);
    }
    return;
  }
  const size_t i16 = inner & ~(size_t)15;
  for (size_t o = 0; o < outer; o++) {
    const int8_t *block = x + o * count * inner;
    for (size_t i = 0; i < i16; i += 16) {
      int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
      size_t q = 0;
      while (q < count) {
        int16x8_t lo = vdupq_n_s16(0), hi = lo;
        for (int step = 0; step < 256 && q < count; step++, q++) {
          const int8x16_t v = vld1q_s8(block + q * inner + i);
          lo = vaddw_s8(lo, vget_low_s8(v));
          hi = vaddw_high_s8(hi, v);
        }
        a0 = vaddw_s16(a0, vget_low_s16(lo));
        a1 = vaddw_high_s16(a1, lo);
        a2 = vaddw_s16(a2, vget_low_s16(hi));
        a3 = vaddw_high_s16(a3, hi);
      }
      int32_t total[16];
      vst1q_s32(total, a0);
      vst1q_s32(total + 4, a1);
      vst1q_s32(total + 8, a2);
      vst1q_s32(total + 12, a3);
      for (int l = 0; l < 16; l++)
        y[o * inner + i + (size_t)l] =
            (int8_t)ek_clamp(ek_round_shift((int64_t)total[l] * mult, shift), -128, 127);
    }
    for (size_t i = i16; i < inner; i++) {
      int32_t total = 0;
      for (size_t q = 0; q < count; q++) total += block[q * inner + i];
      y[o * inner + i] = (int8_t)ek_clamp(ek_round_shift((int64_t)total * mult, shift), -128, 127);
    }
  }
}

/* matmul and convolution on each GEMM path, with the NEON transposes */
#define EK_COMPOSE_SUFFIX __neon
#define EK_COMPOSE_IM2COL ek_s8_im2col_nchw__neon
#define EK_COMPOSE_GEMM ek_s8_gemm_requant__neon
#define EK_COMPOSE_TRANSPOSE ek_x8_transpose__neon
#include "ek_compose.inc"
#define EK_COMPOSE_SUFFIX __neondot
#define EK_COMPOSE_IM2COL ek_s8_im2col_nchw__neon
#define EK_COMPOSE_GEMM ek_s8_gemm_requant__neondot
#define EK_COMPOSE_TRANSPOSE ek_x8_transpose__neon
#include "ek_compose.inc"
#define EK_COMPOSE_SUFFIX __i8mm
#define EK_COMPOSE_IM2COL ek_s8_im2col_nchw__neon
#define EK_COMPOSE_GEMM ek_s8_gemm_requant__i8mm
#define EK_COMPOSE_TRANSPOSE ek_x8_transpose__neon
#include "ek_compose.inc"

#endif /* __aarch64__ && __ARM_NEON */
