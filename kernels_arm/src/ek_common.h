/* Scalar helpers shared by every path: the reference's rounding and integer steps. */
#ifndef EK_COMMON_H
#define EK_COMMON_H

#include <stdint.h>

#define EK_INT32_MAX 2147483647
#define EK_INLINE static inline __attribute__((always_inline))

/* round(v / 2^c), half up (reference.shift_round); c >= 0. */
EK_INLINE int64_t ek_round_shift(int64_t v, int c) {
  return c == 0 ? v : (v + ((int64_t)1 << (c - 1))) >> c;
}

EK_INLINE int64_t ek_clamp(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* floor(a / b) for b > 0 (Python's //). */
EK_INLINE int64_t ek_floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* reference.shift_exp for one x <= 0: I-ViT's 2^(x·scale·log2 e) with x0 = floor(-1/scale). */
EK_INLINE int64_t ek_shift_exp(int64_t x, int64_t x0, int n) {
  x = x + (x >> 1) - (x >> 4);
  if (x < n * x0) x = n * x0;
  int64_t q = (-x) / (-x0); /* both >= 0: truncation is floor */
  int64_t r = x - q * x0;
  int64_t e = ((r - 2 * x0) << (n - q)) >> 1;
  return e < 0 ? 0 : e;
}

/* reference.isqrt_newton: 16 integer Newton steps from 2^16. */
EK_INLINE int64_t ek_isqrt_newton(int64_t v) {
  int64_t k = (int64_t)1 << 16;
  for (int i = 0; i < 16; i++) {
    k = (k + v / k) >> 1;
    if (k < 1) k = 1;
  }
  return k;
}

/* The ShiftGELU sigmoid: σ_int of x (reference.shift_gelu), given one = -x0 << n. */
EK_INLINE int64_t ek_shift_sigmoid(int64_t x, int64_t x0, int n, int sig_bits) {
  int64_t one = (-x0) << n;
  int64_t e = ek_shift_exp(x < 0 ? x : -x, x0, n);
  int64_t factor = EK_INT32_MAX / (one + e);
  return ((x >= 0 ? one : e) * factor) >> (32 - sig_bits);
}

/* LayerNorm row statistics: mean (round half up) and the normalising factor
 * floor((2^31 - 1) / isqrt(Σ(x - mean)²)). */
EK_INLINE int64_t ek_ln_mean(int64_t sum, int64_t c) { return ek_floor_div(2 * sum + c, 2 * c); }

#endif
