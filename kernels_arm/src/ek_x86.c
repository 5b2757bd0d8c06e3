/* x86-64 GEMM paths of s8_gemm_requant, exact like every path (the same integer result as the
 * scalar kernel, bit for bit):
 *
 *   avx2        4×16 output blocks on int16 pairs (VPMADDWD: two int8·int8 products summed in
 *               int32, no saturation; VPMADDUBSW is not used: its int16 sums saturate, which
 *               is what broke ORT's int8 on AVX2 hosts without VNNI). Requantized in scalar.
 *   avx512vnni  4×16 blocks with VPDPBUSD on 256-bit vectors (AVX512-VNNI + VL): unsigned
 *               a + 128 times signed w, four products per int32 lane, no saturation; the
 *               128·Σw it adds is taken back through the bias. Requantized in vectors (int64
 *               products, arithmetic shifts and clamps of AVX512-VL).
 *
 * Each 16-column panel of w is packed once per call; panels over EK_X86_PANEL_K of k fall back
 * to the autovec kernel. Selected at run time by CPUID (ek_dispatch.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ek_common.h"
#include "ek_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define EK_X86_PANEL_K 4096

/* The requantization of one output, as the scalar kernel does it. */
EK_INLINE int8_t requant_one(int32_t acc, int32_t mult, int shift, int32_t lo) {
  return (int8_t)ek_clamp(ek_round_shift((int64_t)acc * mult, shift), lo, 127);
}

/* bias16/mult16: the panel's 16 columns (an edge panel repeats a valid column; its outputs
 * are never stored) */
static void panel_params(const int32_t *bias, const int32_t *mult, size_t j, size_t nc,
                         int32_t *bias16, int32_t *mult16) {
  for (size_t c = 0; c < 16; c++) {
    bias16[c] = bias[j + (c < nc ? c : 0)];
    mult16[c] = mult[j + (c < nc ? c : 0)];
  }
}

/* The 4 rows of the block at row i (an edge block repeats the last valid row; only mr rows
 * are stored); returns mr. */
EK_INLINE size_t block_rows(const int8_t *a, size_t k, size_t i, size_t m, const int8_t *ar[4]) {
  const size_t mr = m - i < 4 ? m - i : 4;
  for (size_t r = 0; r < 4; r++) ar[r] = a + (i + (r < mr ? r : mr - 1)) * k;
  return mr;
}

/* ---- AVX2: int16 pairs ---------------------------------------------------------------- */

/* panel[g][c][t] = w[c][2g + t] as int16, 16 columns (nc valid, the rest 0), k2 = k rounded
 * up to 2 (zero-padded) */
static void pack_pairs16(const int8_t *w, size_t k, size_t k2, size_t nc, int16_t *panel) {
  for (size_t g = 0; g < k2 / 2; g++)
    for (size_t c = 0; c < 16; c++)
      for (size_t t = 0; t < 2; t++) {
        const size_t p = 2 * g + t;
        panel[(g * 16 + c) * 2 + t] = (int16_t)(c < nc && p < k ? w[c * k + p] : 0);
      }
}

__attribute__((target("avx2")))
void ek_s8_gemm_requant__avx2(size_t m, size_t k, size_t n, const int8_t *a, const int8_t *w,
                              const int32_t *bias, const int32_t *mult, int shift, int32_t lo,
                              int8_t *y) {
  if (k > EK_X86_PANEL_K || k == 0 || n < 8) {
    ek_s8_gemm_requant__autovec(m, k, n, a, w, bias, mult, shift, lo, y);
    return;
  }
  const size_t k2 = (k + 1) & ~(size_t)1;
  int16_t panel[EK_X86_PANEL_K * 16] __attribute__((aligned(32)));
  int32_t bias16[16], mult16[16], tile[4][16] __attribute__((aligned(32)));
  for (size_t j = 0; j < n; j += 16) {
    const size_t nc = n - j < 16 ? n - j : 16;
    pack_pairs16(w + j * k, k, k2, nc, panel);
    panel_params(bias, mult, j, nc, bias16, mult16);
    const __m256i b0 = _mm256_loadu_si256((const __m256i *)bias16);
    const __m256i b1 = _mm256_loadu_si256((const __m256i *)(bias16 + 8));
    for (size_t i = 0; i < m; i += 4) {
      const int8_t *ar[4];
      const size_t mr = block_rows(a, k, i, m, ar);
      __m256i acc[4][2];
      for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
      for (size_t g = 0; g < k2 / 2; g++) {
        const __m256i w0 = _mm256_load_si256((const __m256i *)(panel + g * 32));
        const __m256i w1 = _mm256_load_si256((const __m256i *)(panel + g * 32 + 16));
        const size_t p = 2 * g;
        for (int r = 0; r < 4; r++) {
          const int32_t hi = p + 1 < k ? ar[r][p + 1] : 0;
          const uint32_t pair = (uint16_t)(int16_t)ar[r][p] | (uint32_t)(uint16_t)(int16_t)hi
                                << 16;
          const __m256i av = _mm256_set1_epi32((int32_t)pair);
          acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, w0));
          acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, w1));
        }
      }
      for (size_t r = 0; r < mr; r++) {
        _mm256_store_si256((__m256i *)tile[r], _mm256_add_epi32(acc[r][0], b0));
        _mm256_store_si256((__m256i *)(tile[r] + 8), _mm256_add_epi32(acc[r][1], b1));
        int8_t *dst = y + (i + r) * n + j;
        for (size_t c = 0; c < nc; c++) dst[c] = requant_one(tile[r][c], mult16[c], shift, lo);
      }
    }
  }
}

/* ---- AVX512-VNNI: VPDPBUSD on bytes ---------------------------------------------------- */

#define EK_VNNI_TARGET __attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni")))

/* panel[g][c][t] = w[c][4g + t], 16 columns (nc valid, the rest 0), k4 = k rounded up to 4,
 * 16 k at a time as a 4×4 transpose of int32 quads; corr[c] = 128·Σ_p w[c][p], what a + 128
 * adds to column c (VPDPBUSD of the panel with ones) */
EK_VNNI_TARGET static void pack_quads16(const int8_t *w, size_t k, size_t k4, size_t nc,
                                        int8_t *panel, int32_t *corr) {
  const size_t k16 = k & ~(size_t)15;
  for (size_t c0 = 0; c0 < 16; c0 += 4) {
    const int8_t *r[4];
    for (size_t q = 0; q < 4; q++) r[q] = w + (c0 + q < nc ? c0 + q : nc - 1) * k;
    for (size_t p = 0; p < k16; p += 16) {
      const __m128i v0 = _mm_loadu_si128((const __m128i *)(r[0] + p));
      const __m128i v1 = _mm_loadu_si128((const __m128i *)(r[1] + p));
      const __m128i v2 = _mm_loadu_si128((const __m128i *)(r[2] + p));
      const __m128i v3 = _mm_loadu_si128((const __m128i *)(r[3] + p));
      const __m128i t01l = _mm_unpacklo_epi32(v0, v1), t01h = _mm_unpackhi_epi32(v0, v1);
      const __m128i t23l = _mm_unpacklo_epi32(v2, v3), t23h = _mm_unpackhi_epi32(v2, v3);
      int8_t *dst = panel + (p / 4 * 16 + c0) * 4;
      _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi64(t01l, t23l));
      _mm_storeu_si128((__m128i *)(dst + 64), _mm_unpackhi_epi64(t01l, t23l));
      _mm_storeu_si128((__m128i *)(dst + 128), _mm_unpacklo_epi64(t01h, t23h));
      _mm_storeu_si128((__m128i *)(dst + 192), _mm_unpackhi_epi64(t01h, t23h));
    }
    for (size_t p = k16; p < k4; p++)
      for (size_t q = 0; q < 4; q++)
        panel[(p / 4 * 16 + c0 + q) * 4 + p % 4] = p < k ? r[q][p] : 0;
  }
  if (nc < 16)  /* columns past the end multiply to zero (their outputs are never stored) */
    for (size_t g = 0; g < k4 / 4; g++) memset(panel + (g * 16 + nc) * 4, 0, (16 - nc) * 4);
  const __m256i ones = _mm256_set1_epi8(1);
  __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
  for (size_t g = 0; g < k4 / 4; g++) {
    s0 = _mm256_dpbusd_epi32(s0, ones, _mm256_load_si256((const __m256i *)(panel + g * 64)));
    s1 = _mm256_dpbusd_epi32(s1, ones,
                             _mm256_load_si256((const __m256i *)(panel + g * 64 + 32)));
  }
  _mm256_storeu_si256((__m256i *)corr, _mm256_slli_epi32(s0, 7));
  _mm256_storeu_si256((__m256i *)(corr + 8), _mm256_slli_epi32(s1, 7));
}

EK_INLINE int32_t load_quad(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* y = clamp(round((acc + bias)·mult / 2^shift), lo, 127) for 8 int32 lanes → 8 int8 */
EK_VNNI_TARGET static inline __m128i requant8(__m256i x, __m256i mult, __m256i round,
                                              __m128i count, __m256i lo, __m256i hi) {
  __m256i even = _mm256_mul_epi32(x, mult);
  __m256i odd = _mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(mult, 32));
  even = _mm256_sra_epi64(_mm256_add_epi64(even, round), count);
  odd = _mm256_sra_epi64(_mm256_add_epi64(odd, round), count);
  even = _mm256_min_epi64(_mm256_max_epi64(even, lo), hi);
  odd = _mm256_min_epi64(_mm256_max_epi64(odd, lo), hi);
  return _mm256_cvtepi32_epi8(_mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA));
}

EK_VNNI_TARGET
void ek_s8_gemm_requant__avx512vnni(size_t m, size_t k, size_t n, const int8_t *a,
                                    const int8_t *w, const int32_t *bias, const int32_t *mult,
                                    int shift, int32_t lo, int8_t *y) {
  if (k > EK_X86_PANEL_K || k == 0 || n < 8) {
    ek_s8_gemm_requant__autovec(m, k, n, a, w, bias, mult, shift, lo, y);
    return;
  }
  const size_t k4 = (k + 3) & ~(size_t)3, kfull = k & ~(size_t)3;
  int8_t panel[EK_X86_PANEL_K * 16] __attribute__((aligned(32)));
  int32_t bias16[16], mult16[16], corr[16];
  const __m256i round = _mm256_set1_epi64x(shift > 0 ? (int64_t)1 << (shift - 1) : 0);
  const __m128i count = _mm_cvtsi32_si128(shift);
  const __m256i lo64 = _mm256_set1_epi64x(lo), hi64 = _mm256_set1_epi64x(127);
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  for (size_t j = 0; j < n; j += 16) {
    const size_t nc = n - j < 16 ? n - j : 16;
    pack_quads16(w + j * k, k, k4, nc, panel, corr);
    panel_params(bias, mult, j, nc, bias16, mult16);
    for (size_t c = 0; c < 16; c++) bias16[c] -= corr[c];  /* Σ(a+128)w − 128Σw = Σaw */
    const __m256i b0 = _mm256_loadu_si256((const __m256i *)bias16);
    const __m256i b1 = _mm256_loadu_si256((const __m256i *)(bias16 + 8));
    const __m256i m0 = _mm256_loadu_si256((const __m256i *)mult16);
    const __m256i m1 = _mm256_loadu_si256((const __m256i *)(mult16 + 8));
    for (size_t i = 0; i < m; i += 4) {
      const int8_t *ar[4];
      const size_t mr = block_rows(a, k, i, m, ar);
      __m256i acc[4][2];
      for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
#define EK_VNNI_GROUP(g, QUAD)                                                          \
      {                                                                                 \
        const __m256i w0 = _mm256_load_si256((const __m256i *)(panel + (g) * 64));      \
        const __m256i w1 = _mm256_load_si256((const __m256i *)(panel + (g) * 64 + 32)); \
        for (int r = 0; r < 4; r++) {                                                   \
          const __m256i av = _mm256_xor_si256(_mm256_set1_epi32(QUAD), flip);           \
          acc[r][0] = _mm256_dpbusd_epi32(acc[r][0], av, w0);                           \
          acc[r][1] = _mm256_dpbusd_epi32(acc[r][1], av, w1);                           \
        }                                                                               \
      }
      for (size_t g = 0; g < kfull / 4; g++) EK_VNNI_GROUP(g, load_quad(ar[r] + 4 * g))
      if (kfull < k) {  /* the last partial group: zero bytes (their weights are 0) */
        int32_t tail[4] = {0, 0, 0, 0};
        for (int r = 0; r < 4; r++) memcpy(&tail[r], ar[r] + kfull, k - kfull);
        EK_VNNI_GROUP(kfull / 4, tail[r])
      }
#undef EK_VNNI_GROUP
      for (size_t r = 0; r < mr; r++) {
        const __m128i q0 = requant8(_mm256_add_epi32(acc[r][0], b0), m0, round, count, lo64,
                                    hi64);
        const __m128i q1 = requant8(_mm256_add_epi32(acc[r][1], b1), m1, round, count, lo64,
                                    hi64);
        const __m128i q = _mm_unpacklo_epi64(q0, q1);
        int8_t *dst = y + (i + r) * n + j;
        if (nc == 16) {
          _mm_storeu_si128((__m128i *)dst, q);
        } else {
          int8_t tmp[16];
          _mm_storeu_si128((__m128i *)tmp, q);
          memcpy(dst, tmp, nc);
        }
      }
    }
  }
}

/* matmul and convolution on the two GEMM paths (transposes: the autovec kernel) */
#define EK_COMPOSE_SUFFIX __avx2
#define EK_COMPOSE_IM2COL ek_s8_im2col_nchw__autovec
#define EK_COMPOSE_GEMM ek_s8_gemm_requant__avx2
#define EK_COMPOSE_TRANSPOSE ek_x8_transpose__autovec
#include "ek_compose.inc"
#define EK_COMPOSE_SUFFIX __avx512vnni
#define EK_COMPOSE_IM2COL ek_s8_im2col_nchw__autovec
#define EK_COMPOSE_GEMM ek_s8_gemm_requant__avx512vnni
#define EK_COMPOSE_TRANSPOSE ek_x8_transpose__autovec
#include "ek_compose.inc"
#else
typedef int ek_x86_unused; /* not an x86-64 build: no kernels here */
#endif
