/* Reader of the golden-vector file written by edgekit/kernels/golden.py:
 *   "EKGOLD01" u32 ncases, then per case: u32 len + op name, u32 narrays, and per array
 *   u32 len + key, u8 dtype (1 int8, 2 uint8, 3 int32, 4 int64), u64 count, raw data (LE). */
#ifndef EK_GOLDEN_H
#define EK_GOLDEN_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EK_I8 = 1, EK_U8 = 2, EK_I32 = 3, EK_I64 = 4 };

typedef struct {
  char key[32];
  int dtype;
  uint64_t count;
  void *data;
} ek_array;

typedef struct {
  char op[64];
  uint32_t narrays;
  ek_array arrays[24];
} ek_case;

static size_t ek_dtype_size(int dtype) {
  return dtype == EK_I8 || dtype == EK_U8 ? 1 : dtype == EK_I32 ? 4 : 8;
}

static void ek_die(const char *what) {
  fprintf(stderr, "golden file: %s\n", what);
  exit(2);
}

static void ek_read(FILE *f, void *dst, size_t n) {
  if (fread(dst, 1, n, f) != n) ek_die("truncated");
}

static void ek_read_str(FILE *f, char *dst, size_t cap) {
  uint32_t len;
  ek_read(f, &len, 4);
  if (len >= cap) ek_die("name too long");
  ek_read(f, dst, len);
  dst[len] = 0;
}

/* All cases of the file; *ncases set. */
static ek_case *ek_load_golden(const char *path, uint32_t *ncases) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  char magic[8];
  ek_read(f, magic, 8);
  if (memcmp(magic, "EKGOLD01", 8) != 0) ek_die("bad magic (regenerate it)");
  ek_read(f, ncases, 4);
  ek_case *cases = calloc(*ncases, sizeof *cases);
  for (uint32_t i = 0; i < *ncases; i++) {
    ek_read_str(f, cases[i].op, sizeof cases[i].op);
    ek_read(f, &cases[i].narrays, 4);
    if (cases[i].narrays > 24) ek_die("too many arrays");
    for (uint32_t j = 0; j < cases[i].narrays; j++) {
      ek_array *a = &cases[i].arrays[j];
      uint8_t dtype;
      ek_read_str(f, a->key, sizeof a->key);
      ek_read(f, &dtype, 1);
      a->dtype = dtype;
      ek_read(f, &a->count, 8);
      const size_t bytes = a->count * ek_dtype_size(dtype);
      a->data = malloc(bytes ? bytes : 1);
      ek_read(f, a->data, bytes);
    }
  }
  fclose(f);
  return cases;
}

static const ek_array *ek_get(const ek_case *c, const char *key) {
  for (uint32_t j = 0; j < c->narrays; j++)
    if (strcmp(c->arrays[j].key, key) == 0) return &c->arrays[j];
  fprintf(stderr, "golden case %s has no array '%s'\n", c->op, key);
  exit(2);
}

static int64_t ek_int(const ek_case *c, const char *key) {
  const ek_array *a = ek_get(c, key);
  if (a->dtype != EK_I64 || a->count != 1) ek_die("scalar must be one int64");
  return *(const int64_t *)a->data;
}

#define EK_PTR(c, key, type) ((const type *)ek_get((c), (key))->data)
#endif
