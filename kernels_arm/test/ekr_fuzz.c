/* A bounded mutation fuzz of the .ekr loader (built with ASan + UBSan by `make fuzz`).
 *
 *   ekr_fuzz SEED.ekr [SEED.ekr ...] [--cases N] [--seed S]
 *
 * From each valid seed file: truncations at every section boundary (and at spread points),
 * random bit flips, and structured overwrites of header / tensor / op fields with absurd or
 * boundary values, each both with the checksum left stale and recomputed (so the checks behind
 * the checksum are reached). Every case must be either rejected with a message or loaded and
 * run; any crash, sanitizer report or read outside the file aborts the process (non-zero exit).
 * Prints one summary line per seed. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekr.h"
#include "ekr_format.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  static uint32_t table[256];
  if (!table[1])
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void fix_crc(uint8_t *f, size_t n) {
  if (n >= EKR_HEADER_BYTES) wr32(f + EKR_H_CRC, crc32_ieee(f + 16, n - 16));
}

typedef struct { long rejected, ran; } tally;

/* One case: load a private exact-size copy (so ASan sees the file's end), run if it loads. */
static void try_case(const uint8_t *bytes, size_t n, tally *t) {
  uint8_t *copy = malloc(n ? n : 1);
  if (!copy) abort();
  memcpy(copy, bytes, n);
  char err[256];
  ekr_model *m = NULL;
  if (ekr_load(copy, n, &m, err, sizeof err) != 0) {
    if (m != NULL || err[0] == 0) { fprintf(stderr, "rejected without a message\n"); abort(); }
    t->rejected++;
  } else {
    const size_t ni = ekr_input_count(m), no = ekr_output_count(m);
    float *x = calloc(ni, sizeof *x), *y = calloc(no, sizeof *y);
    if (!x || !y) abort();
    for (size_t i = 0; i < ni; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 250.0f;
    if (ekr_run(m, x, ni, y, no, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); abort(); }
    free(x);
    free(y);
    ekr_free(m);
    t->ran++;
  }
  free(copy);
}

/* absurd and boundary values for a field */
static const uint64_t NASTY[] = {0, 1, 2, 3, 7, 15, 16, 17, 63, 64, 127, 128, 255, 256, 4095,
                                 65535, 65536, 0x7FFFFFFFull, 0x80000000ull, 0xFFFFFFFFull,
                                 0x100000000ull, 0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull,
                                 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFF0ull};
#define N_NASTY (sizeof NASTY / sizeof NASTY[0])

static void mutate_field(uint8_t *f, size_t n, size_t at, int width) {
  if (at + (size_t)width > n) return;
  uint64_t v = NASTY[rnd() % N_NASTY];
  switch (rnd() % 4) {
    case 0: break;
    case 1: v = (width == 8 ? rd64(f + at) : rd32(f + at)) + (rnd() % 3) - 1; break;
    case 2: v = (width == 8 ? rd64(f + at) : rd32(f + at)) ^ (1ull << (rnd() % (8 * width))); break;
    default: v = rnd(); break;
  }
  if (width == 8) wr64(f + at, v);
  else if (width == 4) wr32(f + at, (uint32_t)v);
  else f[at] = (uint8_t)v;
}

static int fuzz_seed(const char *path, long cases) {
  FILE *fp = fopen(path, "rb");
  if (!fp) { fprintf(stderr, "cannot open %s\n", path); return 1; }
  fseek(fp, 0, SEEK_END);
  const long size = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *seed = malloc((size_t)size), *work = malloc((size_t)size);
  if (!seed || !work || fread(seed, 1, (size_t)size, fp) != (size_t)size) return 1;
  fclose(fp);
  tally t = {0, 0};
  char err[256];
  ekr_model *m;
  if (ekr_load(seed, (size_t)size, &m, err, sizeof err)) {
    fprintf(stderr, "%s: the seed itself is rejected: %s\n", path, err);
    return 1;
  }
  ekr_free(m);
  const uint32_t n_tensors = rd32(seed + EKR_H_N_TENSORS), n_ops = rd32(seed + EKR_H_N_OPS);
  const uint64_t ops_at = rd64(seed + EKR_H_OPS), data_at = rd64(seed + EKR_H_DATA);
  /* 1. truncations at every section boundary and record edge, plus spread points */
  size_t cuts[64];
  int n_cuts = 0;
  const size_t marks[] = {0, 1, 4, 15, 16, 17, 127, EKR_HEADER_BYTES, EKR_HEADER_BYTES + 1,
                          EKR_HEADER_BYTES + EKR_TENSOR_BYTES, (size_t)ops_at - 1, (size_t)ops_at,
                          (size_t)ops_at + EKR_OP_BYTES, (size_t)data_at - 1, (size_t)data_at,
                          (size_t)data_at + 1, (size_t)size - 1};
  for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) cuts[n_cuts++] = marks[i];
  for (int i = 1; i < 32; i++) cuts[n_cuts++] = (size_t)size * (size_t)i / 32;
  for (int i = 0; i < n_cuts; i++) {
    if (cuts[i] >= (size_t)size) continue;
    memcpy(work, seed, cuts[i]);
    try_case(work, cuts[i], &t);
    fix_crc(work, cuts[i]);
    try_case(work, cuts[i], &t);
  }
  /* 2. random bit flips (1-8 per case), checksum stale or recomputed */
  for (long c = 0; c < cases / 3; c++) {
    memcpy(work, seed, (size_t)size);
    const int flips = 1 + (int)(rnd() % 8);
    for (int k = 0; k < flips; k++) {
      /* mostly the tables, where a flip changes meaning; sometimes anywhere */
      const size_t span = rnd() % 4 ? (size_t)data_at : (size_t)size;
      const size_t at = rnd() % span;
      work[at] ^= (uint8_t)(1u << (rnd() % 8));
    }
    if (rnd() % 4) fix_crc(work, (size_t)size);
    try_case(work, (size_t)size, &t);
  }
  /* 3. structured overwrites of fields with absurd / boundary values, checksum recomputed */
  for (long c = 0; c < cases - cases / 3; c++) {
    memcpy(work, seed, (size_t)size);
    const int edits = 1 + (int)(rnd() % 3);
    for (int k = 0; k < edits; k++) {
      switch (rnd() % 3) {
        case 0: {  /* header */
          static const int fields[][2] = {{EKR_H_VERSION, 4}, {EKR_H_FILE_BYTES, 8},
              {EKR_H_N_TENSORS, 4}, {EKR_H_N_OPS, 4}, {EKR_H_TENSORS, 8}, {EKR_H_OPS, 8},
              {EKR_H_DATA, 8}, {EKR_H_DATA_BYTES, 8}, {EKR_H_ARENA, 8}, {EKR_H_LOWER_BOUND, 8},
              {EKR_H_INPUT, 4}, {EKR_H_OUTPUT, 4}};
          const int *fd = fields[rnd() % (sizeof fields / sizeof fields[0])];
          mutate_field(work, (size_t)size, (size_t)fd[0], fd[1]);
          break;
        }
        case 1: {  /* a tensor record */
          const size_t rec = EKR_HEADER_BYTES + (rnd() % n_tensors) * EKR_TENSOR_BYTES;
          static const int fields[][2] = {{EKR_T_DTYPE, 1}, {EKR_T_RANK, 1}, {EKR_T_STORAGE, 1},
              {EKR_T_DIMS, 4}, {EKR_T_DIMS + 4, 4}, {EKR_T_DIMS + 8, 4}, {EKR_T_DIMS + 12, 4},
              {EKR_T_DIMS + 20, 4}, {EKR_T_OFFSET, 8}, {EKR_T_NBYTES, 8}};
          const int *fd = fields[rnd() % (sizeof fields / sizeof fields[0])];
          mutate_field(work, (size_t)size, rec + (size_t)fd[0], fd[1]);
          break;
        }
        default: {  /* an op record: type, input ids, output, scratch, any parameter */
          const size_t rec = (size_t)ops_at + (rnd() % n_ops) * EKR_OP_BYTES;
          const int pick = (int)(rnd() % 6);
          if (pick == 0) mutate_field(work, (size_t)size, rec + EKR_O_TYPE, 4);
          else if (pick == 1) mutate_field(work, (size_t)size, rec + EKR_O_N_INPUTS, 4);
          else if (pick == 2)
            mutate_field(work, (size_t)size, rec + EKR_O_INPUTS + 4 * (rnd() % EKR_MAX_INPUTS), 4);
          else if (pick == 3) mutate_field(work, (size_t)size, rec + EKR_O_OUTPUT, 4);
          else if (pick == 4)
            mutate_field(work, (size_t)size, rec + EKR_O_SCRATCH_OFFSET + 8 * (rnd() % 2), 8);
          else
            mutate_field(work, (size_t)size, rec + EKR_O_PARAMS + 8 * (rnd() % EKR_MAX_PARAMS), 8);
          break;
        }
      }
    }
    fix_crc(work, (size_t)size);
    try_case(work, (size_t)size, &t);
  }
  printf("%s: %ld cases, %ld rejected with an error, %ld loaded and ran, 0 crashes\n", path,
         t.rejected + t.ran, t.rejected, t.ran);
  free(seed);
  free(work);
  return 0;
}

int main(int argc, char **argv) {
  long cases = 3000;
  int rc = 0, seeds = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--cases") == 0 && i + 1 < argc) cases = atol(argv[++i]);
    else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) rng_state ^= (uint64_t)atoll(argv[++i]) * 0x2545F4914F6CDD1Dull;
    else { rc |= fuzz_seed(argv[i], cases); seeds++; }
  }
  if (!seeds) { fprintf(stderr, "usage: ekr_fuzz SEED.ekr... [--cases N] [--seed S]\n"); return 2; }
  return rc;
}
