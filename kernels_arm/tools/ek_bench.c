/* ek_bench: time every kernel path this CPU runs at the shapes of a shapes file, print the
 * edgekit bench JSON schema (one row per kernel × shape) on stdout.
 *
 *   ek_bench SHAPES [--runs N] [--warmup-seconds S] [--min-seconds S] [--cpu K]
 *                   [--paths scalar,neon,...] [--label NAME] [--once]
 *
 * SHAPES: one op per line, "op key=value ...", e.g. "s8_gemm_requant m=196 k=128 n=256"
 * (edgekit writes it from an int-only artifact's manifest). Inputs are pseudo-random with
 * realistic requantization parameters. Every non-scalar path's output is compared with the
 * scalar path's on the same input ("validated").
 * --once: call each kernel exactly once, no timing (instruction counting under qemu).
 * Under qemu this is a correctness smoke test: emulated times are not speeds. */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#include "ek_kernels.h"

typedef struct {
  char op[48];
  char text[256]; /* "m=196 k=128 n=256" */
  long v[16];
  char key[16][16];
  int nv;
} shape;

static long get(const shape *s, const char *key, long dflt) {
  for (int i = 0; i < s->nv; i++)
    if (strcmp(s->key[i], key) == 0) return s->v[i];
  return dflt;
}

static uint32_t rng_state = 12345;
static int8_t rnd8(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (int8_t)(rng_state >> 24);
}
static int32_t rnd_range(int32_t lo, int32_t hi) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return lo + (int32_t)((rng_state >> 8) % (uint32_t)(hi - lo + 1));
}

/* Inputs and parameters of one call. */
typedef struct {
  int8_t *a, *b, *w;
  int32_t *bias, *mult, *gamma, *scratch;
  int64_t *beta;
  void *work; /* matmul / conv2d scratch; the lut's table */
  ek_conv2d_shape conv;
  size_t out_bytes;
} buffers;

static int8_t *rand8(size_t n) {
  int8_t *p = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) p[i] = rnd8();
  return p;
}
static int32_t *rand32(size_t n, int32_t lo, int32_t hi) {
  int32_t *p = malloc((n ? n : 1) * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = rnd_range(lo, hi);
  return p;
}

static long out_hw(long in, long k, long stride, long pad) { return (in + 2 * pad - k) / stride + 1; }

/* Allocates inputs for shape `s`; returns 0, or -1 for an unknown op or bad shape. */
static int prepare(const shape *s, buffers *b) {
  memset(b, 0, sizeof *b);
  if (!strcmp(s->op, "s8_gemm_requant")) {
    const long m = get(s, "m", 0), k = get(s, "k", 0), n = get(s, "n", 0);
    if (m < 1 || k < 1 || n < 1) return -1;
    b->a = rand8(m * k);
    b->w = rand8(n * k);
    b->bias = rand32(n, -4096, 4096);
    b->mult = rand32(n, 1 << 29, 1 << 30);
    b->out_bytes = m * n;
  } else if (!strcmp(s->op, "s8_dwconv3x3_requant")) {
    const long c = get(s, "c", 0), h = get(s, "h", 0), w = get(s, "w_in", 0);
    const long st = get(s, "stride", 1), p = get(s, "pad", 1);
    if (c < 1 || out_hw(h, 3, st, p) < 1 || out_hw(w, 3, st, p) < 1) return -1;
    b->a = rand8(c * h * w);
    b->w = rand8(c * 9);
    b->bias = rand32(c, -2048, 2048);
    b->mult = rand32(c, 1 << 29, 1 << 30);
    b->out_bytes = c * out_hw(h, 3, st, p) * out_hw(w, 3, st, p);
  } else if (!strcmp(s->op, "s8_shiftmax")) {
    const long rows = get(s, "rows", 0), len = get(s, "len", 0);
    if (rows < 1 || len < 1) return -1;
    b->a = rand8(rows * len);
    b->scratch = malloc(len * sizeof *b->scratch);
    b->out_bytes = rows * len;
  } else if (!strcmp(s->op, "s8_ilayernorm")) {
    const long rows = get(s, "rows", 0), c = get(s, "c", 0);
    if (rows < 1 || c < 1) return -1;
    b->a = rand8(rows * c);
    b->gamma = rand32(c, 1 << 22, 1 << 23);
    b->beta = malloc(c * sizeof *b->beta);
    for (long i = 0; i < c; i++) b->beta[i] = (int64_t)rnd_range(-(1 << 20), 1 << 20) << 16;
    b->out_bytes = rows * c;
  } else if (!strcmp(s->op, "s8_avgpool_requant")) {
    const long c = get(s, "c", 0), h = get(s, "h", 0), w = get(s, "w_in", 0);
    const long k = get(s, "kernel", 3), st = get(s, "stride", 1), p = get(s, "pad", 1);
    const long oh = out_hw(h, k, st, p), ow = out_hw(w, k, st, p);
    if (c < 1 || oh < 1 || ow < 1) return -1;
    b->a = rand8(c * h * w);
    b->mult = rand32(oh * ow, 1 << 29, 1 << 30);
    b->out_bytes = c * oh * ow;
  } else if (!strcmp(s->op, "s8_add_requant")) {
    const long n = get(s, "count", 0);
    if (n < 1) return -1;
    b->a = rand8(n);
    b->b = rand8(n);
    b->out_bytes = n;
  } else if (!strcmp(s->op, "s8_shiftgelu") || !strcmp(s->op, "s8_hardswish")) {
    const long n = get(s, "count", 0);
    if (n < 1) return -1;
    b->a = rand8(n);
    b->out_bytes = n;
  } else if (!strcmp(s->op, "s8_addconst_requant") || !strcmp(s->op, "s8_mulconst_requant")) {
    const long n = get(s, "count", 0);
    if (n < 1) return -1;
    b->a = rand8(n);
    b->mult = rand32(n, 1 << 29, 1 << 30);
    b->beta = malloc((size_t)n * sizeof *b->beta);
    for (long i = 0; i < n; i++) b->beta[i] = (int64_t)rnd_range(-(1 << 30), 1 << 30) << 4;
    b->out_bytes = n;
  } else if (!strcmp(s->op, "s8_matmul_requant")) {
    /* "m=196 k=196 n=32 a_unsigned=1": softmax(u8)·V; a_unsigned=0 for Q·Kᵀ */
    const long m = get(s, "m", 0), k = get(s, "k", 0), n = get(s, "n", 0);
    if (m < 1 || k < 1 || n < 1) return -1;
    b->a = rand8(m * k);
    if (get(s, "a_unsigned", 0))
      for (long i = 0; i < m * k; i++) b->a[i] = (int8_t)((uint8_t)b->a[i] >> 1); /* 0..127 */
    b->w = rand8(n * k);
    b->mult = rand32(n, 1 << 29, 1 << 29);
    b->work = malloc(ek_s8_matmul_scratch(m, k, n, (int)get(s, "a_unsigned", 0)) + 16);
    b->out_bytes = m * n;
  } else if (!strcmp(s->op, "s8_conv2d_requant")) {
    /* "c=3 h=224 w_in=224 o=16 kh=3 kw=3 sh=2 sw=2 ph=1 pw=1 groups=1" (k, stride, pad: both
     * axes at once) */
    const long c = get(s, "c", 0), h = get(s, "h", 0), w = get(s, "w_in", 0), o = get(s, "o", 0);
    const long kh = get(s, "kh", get(s, "k", 3)), kw = get(s, "kw", get(s, "k", 3));
    const long sh = get(s, "sh", get(s, "stride", 1)), sw = get(s, "sw", get(s, "stride", 1));
    const long ph = get(s, "ph", get(s, "pad", 0)), pw = get(s, "pw", get(s, "pad", 0));
    const long g = get(s, "groups", 1);
    if (c < 1 || o < 1 || g < 1 || c % g || o % g || kh < 1 || kw < 1 || sh < 1 || sw < 1 ||
        ph < 0 || pw < 0 || out_hw(h, kh, sh, ph) < 1 || out_hw(w, kw, sw, pw) < 1)
      return -1;
    const ek_conv2d_shape cs = {(size_t)c, (size_t)h, (size_t)w, (size_t)o, (size_t)g,
                                (size_t)kh, (size_t)kw, (size_t)sh, (size_t)sw, (size_t)ph,
                                (size_t)pw};
    b->conv = cs;
    b->a = rand8(c * h * w);
    int8_t *raw = rand8(o * (c / g) * kh * kw);
    b->w = malloc(o * (ek_s8_conv2d_packed_k(&cs) + kh * kw) + 1);
    ek_s8_conv2d_pack(&cs, raw, b->w);
    free(raw);
    b->bias = rand32(o, -4096, 4096);
    b->mult = rand32(o, 1 << 29, 1 << 30);
    b->work = malloc(ek_s8_conv2d_scratch(&cs) + 16);
    b->out_bytes = o * out_hw(h, kh, sh, ph) * out_hw(w, kw, sw, pw);
  } else if (!strcmp(s->op, "s8_mean_requant")) {
    const long outer = get(s, "outer", 1), count = get(s, "count", 0), inner = get(s, "inner", 1);
    if (outer < 1 || count < 1 || inner < 1) return -1;
    b->a = rand8(outer * count * inner);
    b->out_bytes = outer * inner;
  } else if (!strcmp(s->op, "x8_transpose")) {
    const long rows = get(s, "rows", 0), cols = get(s, "cols", 0);
    if (rows < 1 || cols < 1) return -1;
    b->a = rand8(rows * cols);
    b->out_bytes = rows * cols;
  } else if (!strcmp(s->op, "x8_lut")) {
    const long n = get(s, "count", 0);
    if (n < 1) return -1;
    b->a = rand8(n);
    b->work = rand8(256);
    b->out_bytes = n;
  } else {
    return -1;
  }
  return 0;
}

static void run(const ek_kernel *k, const shape *s, const buffers *b, void *y) {
  if (!strcmp(s->op, "s8_gemm_requant")) {
    ((ek_s8_gemm_requant_fn)k->fn)(get(s, "m", 0), get(s, "k", 0), get(s, "n", 0), b->a, b->w,
                                   b->bias, b->mult, 44, get(s, "relu", 0) ? 0 : -128, y);
  } else if (!strcmp(s->op, "s8_dwconv3x3_requant")) {
    ((ek_s8_dwconv3x3_requant_fn)k->fn)(get(s, "c", 0), get(s, "h", 0), get(s, "w_in", 0),
                                        (int)get(s, "stride", 1), (int)get(s, "pad", 1), b->a,
                                        b->w, b->bias, b->mult, 40, -128, y);
  } else if (!strcmp(s->op, "s8_shiftmax")) {
    ((ek_s8_shiftmax_fn)k->fn)(get(s, "rows", 0), get(s, "len", 0), b->a,
                               (int32_t)get(s, "x0", -13), 15, 8, b->scratch, y);
  } else if (!strcmp(s->op, "s8_shiftgelu")) {
    ((ek_s8_shiftgelu_fn)k->fn)(get(s, "count", 0), b->a, (int32_t)get(s, "x0", -12), 15, 8,
                                1932735283, 31 + 8, y);
  } else if (!strcmp(s->op, "s8_ilayernorm")) {
    ((ek_s8_ilayernorm_fn)k->fn)(get(s, "rows", 0), get(s, "c", 0), b->a, b->gamma, b->beta,
                                 36, y);
  } else if (!strcmp(s->op, "s8_avgpool_requant")) {
    ((ek_s8_avgpool_requant_fn)k->fn)(get(s, "c", 0), get(s, "h", 0), get(s, "w_in", 0),
                                      (int)get(s, "kernel", 3), (int)get(s, "stride", 1),
                                      (int)get(s, "pad", 1), b->a, b->mult, 33, y);
  } else if (!strcmp(s->op, "s8_add_requant")) {
    ((ek_s8_add_requant_fn)k->fn)(get(s, "count", 0), b->a, b->b, 1288490189, 1717986918, 31,
                                  y);
  } else if (!strcmp(s->op, "s8_hardswish")) {
    ((ek_s8_hardswish_fn)k->fn)(get(s, "count", 0), b->a, 60, 120, 1431655765, 37, y);
  } else if (!strcmp(s->op, "s8_addconst_requant")) {
    ((ek_s8_addconst_requant_fn)k->fn)(get(s, "count", 0), b->a, 1431655765, b->beta, 37, y);
  } else if (!strcmp(s->op, "s8_mulconst_requant")) {
    ((ek_s8_mulconst_requant_fn)k->fn)(get(s, "count", 0), b->a, b->mult, 36, y);
  } else if (!strcmp(s->op, "s8_matmul_requant")) {
    ((ek_s8_matmul_requant_fn)k->fn)(get(s, "m", 0), get(s, "k", 0), get(s, "n", 0),
                                     (int)get(s, "a_unsigned", 0), b->a, b->w, b->mult, 40,
                                     b->work, NULL, y);
  } else if (!strcmp(s->op, "s8_conv2d_requant")) {
    ((ek_s8_conv2d_requant_fn)k->fn)(&b->conv, b->a, b->w, b->bias, b->mult, 40, -128, b->work,
                                     NULL, y);
  } else if (!strcmp(s->op, "s8_mean_requant")) {
    ((ek_s8_mean_requant_fn)k->fn)(get(s, "outer", 1), get(s, "count", 0), get(s, "inner", 1),
                                   b->a, 1431655765, 36, y);
  } else if (!strcmp(s->op, "x8_transpose")) {
    const size_t rows = get(s, "rows", 0), cols = get(s, "cols", 0);
    ((ek_x8_transpose_fn)k->fn)(rows, cols, (const uint8_t *)b->a, cols, y, rows);
  } else if (!strcmp(s->op, "x8_lut")) {
    ((ek_x8_lut_fn)k->fn)(get(s, "count", 0), (const uint8_t *)b->a, b->work, y);
  }
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *sorted, int n, double q) {
  const double k = (n - 1) * q / 100.0;
  const int lo = (int)k, hi = lo + 1 < n ? lo + 1 : n - 1;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (k - lo);
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char buf[256];
  char *r = fgets(buf, sizeof buf, f);
  fclose(f);
  if (!r) return NULL;
  buf[strcspn(buf, "\n")] = 0;
  return buf;
}

static void json_str(const char *key, const char *v, int comma) {
  printf("\"%s\": ", key);
  if (!v) {
    printf("null");
  } else {
    putchar('"');
    for (const char *p = v; *p; p++) {
      if (*p == '"' || *p == '\\') putchar('\\');
      putchar(*p);
    }
    putchar('"');
  }
  if (comma) printf(", ");
}

/* --once: executed right before each kernel call, so an instruction counter reading an
 * execution trace can attribute everything up to the next mark (fallback calls into another
 * kernel included) to the kernel called. */
__attribute__((noinline)) void ek_count_mark(void) { __asm__ volatile("" ::: "memory"); }

static int path_wanted(const char *paths, const char *path) {
  if (!paths) return 1;
  const size_t n = strlen(path);
  for (const char *p = paths; (p = strstr(p, path)) != NULL; p += n)
    if ((p == paths || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
  return 0;
}

int main(int argc, char **argv) {
  const char *shapes_path = NULL, *paths = NULL, *label = "kernels";
  int runs = 50, once = 0, cpu = -1;
  double warmup_s = 0.5, min_s = 1.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--warmup-seconds") && i + 1 < argc) warmup_s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--min-seconds") && i + 1 < argc) min_s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) cpu = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--paths") && i + 1 < argc) paths = argv[++i];
    else if (!strcmp(argv[i], "--label") && i + 1 < argc) label = argv[++i];
    else if (!strcmp(argv[i], "--once")) once = 1;
    else if (argv[i][0] != '-' && !shapes_path) shapes_path = argv[i];
    else {
      fprintf(stderr, "ek_bench: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (!shapes_path || runs < 1) {
    fprintf(stderr, "usage: ek_bench SHAPES [--runs N] [--warmup-seconds S] [--min-seconds S] "
                    "[--cpu K] [--paths a,b] [--label NAME] [--once]\n");
    return 2;
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      perror("ek_bench: sched_setaffinity");
      return 2;
    }
  }
  FILE *f = fopen(shapes_path, "r");
  if (!f) {
    perror(shapes_path);
    return 2;
  }
  shape shapes[256];
  int nshapes = 0;
  char line[512];
  while (fgets(line, sizeof line, f) && nshapes < 256) {
    line[strcspn(line, "\r\n#")] = 0;
    shape *s = &shapes[nshapes];
    memset(s, 0, sizeof *s);
    char *tok = strtok(line, " \t");
    if (!tok) continue;
    snprintf(s->op, sizeof s->op, "%s", tok);
    size_t used = 0;
    while ((tok = strtok(NULL, " \t")) && s->nv < 16) {
      char *eq = strchr(tok, '=');
      if (!eq) {
        fprintf(stderr, "ek_bench: %s: expected key=value, got '%s'\n", s->op, tok);
        return 2;
      }
      *eq = 0;
      snprintf(s->key[s->nv], sizeof s->key[0], "%s", tok);
      s->v[s->nv++] = atol(eq + 1);
      used += snprintf(s->text + used, sizeof s->text - used, "%s%s=%s", used ? " " : "", tok,
                       eq + 1);
      if (used >= sizeof s->text) used = sizeof s->text - 1;
    }
    nshapes++;
  }
  fclose(f);

  size_t nk;
  const ek_kernel *table = ek_kernel_table(&nk);
  const unsigned isa = ek_cpu_isa();
  struct utsname un;
  uname(&un);
  char cur_khz[64] = "", max_khz[64] = "", governor[64] = "";
  const char *t;
  if ((t = read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"))) snprintf(cur_khz, sizeof cur_khz, "%s", t);
  if ((t = read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))) snprintf(max_khz, sizeof max_khz, "%s", t);
  if ((t = read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"))) snprintf(governor, sizeof governor, "%s", t);

  int rows = 0;
  if (!once) printf("[");
  for (int si = 0; si < nshapes; si++) {
    const shape *s = &shapes[si];
    buffers b;
    if (prepare(s, &b) != 0) {
      fprintf(stderr, "ek_bench: unknown op or bad shape: %s %s\n", s->op, s->text);
      return 2;
    }
    unsigned char *ref = NULL, *y = malloc(b.out_bytes + 1);
    for (size_t ki = 0; ki < nk; ki++) {
      const ek_kernel *k = &table[ki];
      if (strcmp(k->op, s->op) != 0 || (k->isa & ~isa) != 0) continue;
      if (!once && !strcmp(k->path, "scalar")) { /* the reference output for "validated" */
        ref = malloc(b.out_bytes + 1);
        run(k, s, &b, ref);
      }
      if (!path_wanted(paths, k->path)) continue;
      if (once) {
        fprintf(stderr, "ran %s %s\n", k->name, s->text);
        ek_count_mark();
        run(k, s, &b, y);
        continue;
      }
      /* warm-up ≥ warmup_s, and size batches so one sample is ≥ 1 ms of work */
      const double first0 = now_ms();
      run(k, s, &b, y);
      const double first_ms = now_ms() - first0;
      double t0 = now_ms();
      long calls = 0;
      while (now_ms() - t0 < warmup_s * 1e3 || calls < 3) {
        run(k, s, &b, y);
        calls++;
      }
      const double per_call = (now_ms() - t0) / calls;
      long reps = per_call > 0 ? (long)ceil(1.0 / per_call) : 1;
      if (reps < 1) reps = 1;
      int cap = 64, n = 0;
      double *samples = malloc(cap * sizeof *samples);
      const double start = now_ms();
      while (n < runs || now_ms() - start < min_s * 1e3) {
        const double s0 = now_ms();
        for (long r = 0; r < reps; r++) run(k, s, &b, y);
        if (n == cap) samples = realloc(samples, (cap *= 2) * sizeof *samples);
        samples[n++] = (now_ms() - s0) / reps;
        if (n >= 100000) break;
      }
      double *sorted = malloc(n * sizeof *sorted);
      memcpy(sorted, samples, n * sizeof *sorted);
      qsort(sorted, n, sizeof *sorted, cmp_double);
      double mean = 0, var = 0;
      for (int i = 0; i < n; i++) mean += samples[i];
      mean /= n;
      for (int i = 0; i < n; i++) var += (samples[i] - mean) * (samples[i] - mean);
      const double std = n > 1 ? sqrt(var / (n - 1)) : 0.0, cv = mean > 0 ? std / mean : 0.0;
      const char *validated = !strcmp(k->path, "scalar") || !ref ? "null"
                              : memcmp(ref, y, b.out_bytes) == 0 ? "true" : "false";
      struct rusage ru;
      getrusage(RUSAGE_SELF, &ru);
      printf("%s\n{", rows++ ? "," : "");
      char artifact[512];
      snprintf(artifact, sizeof artifact, "%s#%s[%s]", label, k->name, s->text);
      json_str("artifact", artifact, 1);
      json_str("kernel", k->name, 1);
      json_str("op", k->op, 1);
      json_str("path", k->path, 1);
      json_str("shape", s->text, 1);
      json_str("runtime", "edgekit-kernels", 1);
      json_str("runtime_version", ek_build_info(), 1);
      printf("\"threads\": 1, \"median_ms\": %.6g, \"p90_ms\": %.6g, \"p95_ms\": %.6g, "
             "\"p99_ms\": %.6g, \"mean_ms\": %.6g, \"std_ms\": %.6g, \"cv\": %.6g, "
             "\"min_ms\": %.6g, \"max_ms\": %.6g, \"iterations\": %d, \"calls_per_sample\": %ld, "
             "\"first_ms\": %.6g, \"init_ms\": null, \"warmup_ms\": [], \"validated\": %s, "
             "\"validation\": \"output identical to the scalar path on the same input\", "
             "\"stable\": %s, \"plausible\": null, \"peak_rss_mb\": %.3f, \"samples_ms\": [",
             pct(sorted, n, 50), pct(sorted, n, 90), pct(sorted, n, 95), pct(sorted, n, 99),
             mean, std, cv, sorted[0], sorted[n - 1], n, reps, first_ms, validated,
             cv <= 0.10 && sorted[n - 1] / (sorted[0] > 0 ? sorted[0] : 1e-12) <= 3 ? "true"
                                                                                    : "false",
             ru.ru_maxrss / 1024.0);
      for (int i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", samples[i]);
      printf("], \"fingerprint\": {");
      json_str("machine", un.machine, 1);
      json_str("kernel_release", un.release, 1);
      printf("\"cpu_isa\": %u, \"pinned_cpu\": %d, ", isa, cpu);
      json_str("cpu_cur_khz", cur_khz[0] ? cur_khz : NULL, 1);
      json_str("cpu_max_khz", max_khz[0] ? max_khz : NULL, 1);
      json_str("governor", governor[0] ? governor : NULL, 0);
      printf("}, \"config\": {\"runs\": %d, \"warmup_seconds\": %g, \"min_seconds\": %g}}",
             runs, warmup_s, min_s);
      fflush(stdout);
      free(samples);
      free(sorted);
    }
    free(ref);
    free(y);
  }
  if (!once) printf("\n]\n");
  return 0;
}
