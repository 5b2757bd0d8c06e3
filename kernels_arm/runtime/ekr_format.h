/* The .ekr file layout (version 1): the authority for edgekit/intonly/ekr.py, which writes it.
 * Little-endian; every offset 16-byte aligned.
 *
 *   header  128 B   see EKR_H_* offsets
 *   tensors EKR_TENSOR_BYTES each, from tensors_offset (= 128)
 *   ops     EKR_OP_BYTES each, from ops_offset
 *   data    data_bytes of constants, from data_offset, to the end of the file
 *
 * crc32 (IEEE, zlib's) covers bytes [16, file_bytes). */
#ifndef EKR_FORMAT_H
#define EKR_FORMAT_H

#define EKR_MAGIC "EKR\0"
#define EKR_VERSION 1u
#define EKR_HEADER_BYTES 128u
#define EKR_TENSOR_BYTES 64u
#define EKR_OP_BYTES 192u
#define EKR_MAX_INPUTS 8
#define EKR_MAX_PARAMS 16

/* header field offsets */
enum {
  EKR_H_MAGIC = 0, EKR_H_VERSION = 4, EKR_H_HEADER_BYTES = 8, EKR_H_CRC = 12,
  EKR_H_FILE_BYTES = 16, EKR_H_N_TENSORS = 24, EKR_H_N_OPS = 28, EKR_H_TENSORS = 32,
  EKR_H_OPS = 40, EKR_H_DATA = 48, EKR_H_DATA_BYTES = 56, EKR_H_ARENA = 64,
  EKR_H_LOWER_BOUND = 72, EKR_H_INPUT = 80, EKR_H_OUTPUT = 84, EKR_H_RESERVED = 88
};

/* tensor record: u8 dtype, u8 rank, u8 storage, u8 0, i32 dims[6], u32 0, u64 offset,
 * u64 nbytes, 16 B zero */
enum { EKR_T_DTYPE = 0, EKR_T_RANK = 1, EKR_T_STORAGE = 2, EKR_T_DIMS = 4, EKR_T_OFFSET = 32,
       EKR_T_NBYTES = 40, EKR_T_RESERVED = 48 };
enum { EKR_F32 = 1, EKR_I8 = 2, EKR_U8 = 3, EKR_I32 = 4, EKR_I64 = 5 };
enum { EKR_ARENA = 1, EKR_CONST = 2 };

/* op record: u32 type, u32 n_inputs, u32 inputs[8], u32 output, u32 0, u64 scratch_offset,
 * u64 scratch_bytes, i64 params[16] */
enum { EKR_O_TYPE = 0, EKR_O_N_INPUTS = 4, EKR_O_INPUTS = 8, EKR_O_OUTPUT = 40,
       EKR_O_SCRATCH_OFFSET = 48, EKR_O_SCRATCH_BYTES = 56, EKR_O_PARAMS = 64 };

#define EKR_OPS(X) \
  X(quantize, 1) X(dequantize, 2) X(linear, 3) X(conv2d, 4) X(matmul, 5) X(add, 6) \
  X(shiftmax, 7) X(shiftgelu, 8) X(layernorm, 9) X(reshape, 10) X(transpose, 11) \
  X(slice, 12) X(concat, 13) X(mean, 14) X(relu, 15) X(avgpool, 16) X(mulconst, 17) \
  X(addconst, 18) X(hardswish, 19)

#define EKR_ENUM(name, code) EKR_OP_##name = code,
enum { EKR_OPS(EKR_ENUM) EKR_OP_COUNT };
#undef EKR_ENUM

#endif
