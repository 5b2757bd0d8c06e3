/* The shape helpers of the composite kernels (ek_compose.inc): scratch sizes and the
 * convolution's weight packing, shared by every path, the runtime and the binding. */
#include <stddef.h>
#include <stdint.h>

#include "ek_kernels.h"

static size_t align16(size_t n) { return (n + 15) / 16 * 16; }

/* bias [n] int32, then (uint8 a) a − 128 [m][k] */
size_t ek_s8_matmul_scratch(size_t m, size_t k, size_t n, int a_unsigned) {
  return align16(4 * n) + (a_unsigned ? m * k : 0);
}

int ek_s8_conv2d_is_depthwise(const ek_conv2d_shape *s) {
  return s->groups == s->c && s->o == s->c;
}

size_t ek_s8_conv2d_packed_k(const ek_conv2d_shape *s) {
  return align16(s->c / s->groups * s->kh * s->kw);
}

/* the group's NHWC copy, the im2col rows [oh·ow][k padded to 16], the GEMM's [oh·ow][O/g] */
size_t ek_s8_conv2d_scratch(const ek_conv2d_shape *s) {
  if (ek_s8_conv2d_is_depthwise(s)) return 0;
  const size_t oh = (s->h + 2 * s->ph - s->kh) / s->sh + 1;
  const size_t ow = (s->w + 2 * s->pw - s->kw) / s->sw + 1;
  return align16(s->h * s->w * (s->c / s->groups)) + align16(oh * ow * ek_s8_conv2d_packed_k(s)) +
         oh * ow * (s->o / s->groups);
}

void ek_s8_conv2d_pack(const ek_conv2d_shape *s, const int8_t *w, int8_t *w_packed) {
  const size_t cpg = s->c / s->groups, kp = ek_s8_conv2d_packed_k(s);
  if (ek_s8_conv2d_is_depthwise(s)) { /* direct: the weights as they are */
    for (size_t i = 0; i < s->o * s->kh * s->kw; i++) w_packed[i] = w[i];
    return;
  }
  for (size_t oc = 0; oc < s->o; oc++) {
    int8_t *row = w_packed + oc * kp;
    for (size_t i = 0; i < kp; i++) row[i] = 0;
    for (size_t ci = 0; ci < cpg; ci++)
      for (size_t ky = 0; ky < s->kh; ky++)
        for (size_t kx = 0; kx < s->kw; kx++)
          row[(ky * s->kw + kx) * cpg + ci] = w[((oc * cpg + ci) * s->kh + ky) * s->kw + kx];
  }
}
