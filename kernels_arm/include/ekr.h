/* edgekit runtime (ekr): loads an integer-only graph (.ekr, written by edgekit/intonly/ekr.py)
 * and runs it on the kernels of ek_kernels.h. No allocation after load; no dependency beyond
 * libc, libm and (for ekr_set_threads) POSIX threads.
 *
 *   ekr_model *m; char err[256];
 *   if (ekr_load(bytes, size, &m, err, sizeof err)) { puts(err); ... }   // untrusted bytes
 *   ekr_run(m, input, ekr_input_count(m), output, ekr_output_count(m), err, sizeof err);
 *   ekr_free(m);
 *
 * The loader range-checks every field of the file (offsets, sizes, shapes, dtypes, parameters
 * inside the ranges where the kernels are exact, the memory plan's non-overlap) and returns a
 * message naming the first violation; a bad file is an error, never a crash. */
#ifndef EKR_H
#define EKR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ekr_model ekr_model;

#define EKR_MAX_RANK 6

/* 0 on success; otherwise non-zero and a message in err (NUL-terminated, truncated to
 * err_size). The bytes are copied: the caller may free them after the call. */
int ekr_load(const void *data, size_t size, ekr_model **model, char *err, size_t err_size);

/* One inference: input float32 [input_count] (the graph's input shape, row-major), output
 * float32 [output_count]. 0 on success. Not reentrant on one model (one arena). */
int ekr_run(ekr_model *model, const float *input, size_t input_count, float *output,
            size_t output_count, char *err, size_t err_size);

void ekr_free(ekr_model *model);

/* Worker threads for the heavy ops (GEMM rows of linear / conv / matmul, depthwise channels):
 * threads - 1 workers start here and wait between runs; 1 (the default) runs on the caller's
 * thread alone. Outputs do not depend on the thread count (every split is of independent
 * rows). 0 on success; EKR_MAX_THREADS at most. */
#define EKR_MAX_THREADS 64
int ekr_set_threads(ekr_model *model, int threads, char *err, size_t err_size);
int ekr_threads(const ekr_model *model);

size_t ekr_input_count(const ekr_model *model);
size_t ekr_output_count(const ekr_model *model);
/* The input/output shape: rank returned, dims written (EKR_MAX_RANK entries). */
int ekr_input_shape(const ekr_model *model, int32_t *dims);
int ekr_output_shape(const ekr_model *model, int32_t *dims);
/* The arena the plan asks for, and its lower bound (largest simultaneously live set). */
uint64_t ekr_arena_bytes(const ekr_model *model);
uint64_t ekr_arena_lower_bound(const ekr_model *model);
uint32_t ekr_op_count(const ekr_model *model);
/* The kernel paths chosen at load ("s8_gemm_requant=neondot ..."). */
const char *ekr_kernel_paths(const ekr_model *model);

/* Profiling: `hook(ctx, op_index, op_type, after)` runs before (after = 0) and after (1) every
 * op of ekr_run; NULL removes it. ekr_op_name(type) names an op type ("linear"). */
typedef void ekr_op_hook(void *ctx, uint32_t op_index, uint32_t op_type, int after);
void ekr_set_op_hook(ekr_model *model, ekr_op_hook *hook, void *ctx);
uint32_t ekr_op_type(const ekr_model *model, uint32_t op_index);
const char *ekr_op_name(uint32_t op_type);

#ifdef __cplusplus
}
#endif
#endif
