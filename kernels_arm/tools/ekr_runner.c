/* ekr_runner: the on-device benchmark app of the edgekit runtime. One static binary, nothing
 * else on the device: loads a .ekr graph, runs given inputs to outputs (validation), times
 * runs (first run, warm-up, every timed sample, peak RSS), and brackets counted runs with the
 * instruction-count markers of edgekit/qemu/insncount.c. Prints one JSON line.
 *
 *   ekr_runner MODEL.ekr [--inputs X.f32 --outputs Y.f32] [--warmup N] [--runs N]
 *                        [--threads N] [--count-runs N [--count-op TYPE]]
 *
 * --count-op TYPE marks only the ops of that type inside the counted runs (one pair per op:
 * the plugin sums them), which gives the instructions an op type costs per inference.
 *
 * X.f32 holds N whole inputs (raw little-endian float32, the model's input shape each); Y.f32
 * gets N outputs. Exit codes: 0 ok, 2 usage, 3 the model file is rejected, 4 a run failed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "ek_kernels.h"
#include "ekr.h"

#define MAX_FILE ((long)1 << 30)
#define COUNT_MARK_START 0x6564676B69740001LL
#define COUNT_MARK_STOP 0x6564676B69740002LL

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void count_mark(long long offset) {
  /* fails with EBADF by design: only the counting plugin acts on it */
  (void)lseek(-1, (off_t)offset, SEEK_SET);
}

static uint32_t counted_type;  /* --count-op: the op type whose ops are marked, 0 = all */
static void mark_op(void *ctx, uint32_t index, uint32_t type, int after) {
  (void)ctx;
  (void)index;
  if (type == counted_type) count_mark(after ? COUNT_MARK_STOP : COUNT_MARK_START);
}

/* Peak resident memory of this program: VmHWM of /proc/self/status, which starts afresh at
 * exec (getrusage's ru_maxrss keeps the high-water mark of the process that exec'd us, e.g. a
 * 1 GB Python parent); getrusage where /proc is absent. */
static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  if (f) fclose(f);
  if (kb > 0) return kb;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (long)ru.ru_maxrss;
}

static int usage(const char *msg) {
  fprintf(stderr, "ekr_runner: %s\nusage: ekr_runner MODEL.ekr [--inputs X.f32 --outputs Y.f32] "
          "[--warmup N] [--runs N] [--threads N] [--count-runs N [--count-op TYPE]]\n", msg);
  return 2;
}

static void *read_file(const char *path, long *size, char *err, size_t en) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, en, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  void *buf = NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) >= 0 && *size <= MAX_FILE &&
      fseek(f, 0, SEEK_SET) == 0) {
    buf = malloc(*size ? (size_t)*size : 1);
    if (buf && fread(buf, 1, (size_t)*size, f) != (size_t)*size) {
      free(buf);
      buf = NULL;
    }
  }
  if (!buf) snprintf(err, en, "cannot read %s (at most 1 GiB)", path);
  fclose(f);
  return buf;
}

static void print_ms(const char *key, const double *v, int n) {
  printf(", \"%s\": [", key);
  for (int i = 0; i < n; i++) printf("%s%.6f", i ? ", " : "", v[i]);
  printf("]");
}

static int parse_count(const char *s, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < 0 || v > 1000000) return 1;
  *out = (int)v;
  return 0;
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *inputs_path = NULL, *outputs_path = NULL, *count_op = NULL;
  int warmup = 10, runs = 50, count_runs = -1, threads = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 < argc && strcmp(a, "--inputs") == 0) inputs_path = argv[++i];
    else if (i + 1 < argc && strcmp(a, "--outputs") == 0) outputs_path = argv[++i];
    else if (i + 1 < argc && strcmp(a, "--warmup") == 0) { if (parse_count(argv[++i], &warmup)) return usage("bad --warmup"); }
    else if (i + 1 < argc && strcmp(a, "--runs") == 0) { if (parse_count(argv[++i], &runs)) return usage("bad --runs"); }
    else if (i + 1 < argc && strcmp(a, "--count-runs") == 0) { if (parse_count(argv[++i], &count_runs)) return usage("bad --count-runs"); }
    else if (i + 1 < argc && strcmp(a, "--threads") == 0) { if (parse_count(argv[++i], &threads) || threads < 1) return usage("bad --threads"); }
    else if (i + 1 < argc && strcmp(a, "--count-op") == 0) count_op = argv[++i];
    else if (a[0] == '-') return usage("unknown option");
    else if (!model_path) model_path = a;
    else return usage("one model only");
  }
  if (!model_path) return usage("no model");
  if (!inputs_path != !outputs_path) return usage("--inputs and --outputs go together");

  char err[512];
  long size = 0;
  const double t_read = now_ms();
  void *bytes = read_file(model_path, &size, err, sizeof err);
  if (!bytes) { fprintf(stderr, "ekr_runner: %s\n", err); return 3; }
  ekr_model *m;
  const double t0 = now_ms();
  const int rc = ekr_load(bytes, (size_t)size, &m, err, sizeof err);
  const double load_ms = now_ms() - t0, read_ms = t0 - t_read;
  free(bytes);
  if (rc) { fprintf(stderr, "ekr_runner: %s: %s\n", model_path, err); return 3; }
  if (ekr_set_threads(m, threads, err, sizeof err)) {
    fprintf(stderr, "ekr_runner: --threads %d: %s\n", threads, err);
    return 2;
  }
  const size_t n_in = ekr_input_count(m), n_out = ekr_output_count(m);
  float *x = calloc(n_in, sizeof *x), *y = calloc(n_out, sizeof *y);
  if (!x || !y) { fprintf(stderr, "ekr_runner: out of memory\n"); return 4; }
  /* a fixed pseudo-random input when none is given (the same on every device) */
  uint32_t state = 12345;
  for (size_t i = 0; i < n_in; i++) {
    state = state * 1664525u + 1013904223u;
    x[i] = (float)((int32_t)(state >> 8) % 2000) / 1000.0f;
  }
  long n_inputs = 0;
  if (inputs_path) {
    long in_size = 0;
    float *all = read_file(inputs_path, &in_size, err, sizeof err);
    if (!all) { fprintf(stderr, "ekr_runner: %s\n", err); return 2; }
    if (in_size == 0 || in_size % (long)(n_in * sizeof(float)) != 0) {
      fprintf(stderr, "ekr_runner: %s holds %ld bytes, not a whole number of inputs of %zu "
              "float32 values\n", inputs_path, in_size, n_in);
      return 2;
    }
    n_inputs = in_size / (long)(n_in * sizeof(float));
    FILE *out = fopen(outputs_path, "wb");
    if (!out) { fprintf(stderr, "ekr_runner: cannot write %s\n", outputs_path); return 2; }
    for (long k = 0; k < n_inputs; k++) {
      if (ekr_run(m, all + k * (long)n_in, n_in, y, n_out, err, sizeof err)) {
        fprintf(stderr, "ekr_runner: %s\n", err);
        return 4;
      }
      if (fwrite(y, sizeof *y, n_out, out) != n_out) {
        fprintf(stderr, "ekr_runner: cannot write %s\n", outputs_path);
        return 4;
      }
    }
    fclose(out);
    memcpy(x, all, n_in * sizeof *x);  /* time the first given input */
    free(all);
    if (count_runs < 0) runs = warmup = 0;  /* a validation run: no timing unless asked */
  }
  const double t1 = now_ms();
  if (ekr_run(m, x, n_in, y, n_out, err, sizeof err)) {
    fprintf(stderr, "ekr_runner: %s\n", err);
    return 4;
  }
  const double first_ms = now_ms() - t1;
  double *warm = calloc((size_t)warmup + 1, sizeof *warm);
  double *samples = calloc((size_t)runs + 1, sizeof *samples);
  if (!warm || !samples) { fprintf(stderr, "ekr_runner: out of memory\n"); return 4; }
  if (count_op) {
    for (uint32_t t = 1; t < 64 && !counted_type; t++)
      if (strcmp(ekr_op_name(t), count_op) == 0) counted_type = t;
    if (!counted_type || count_runs < 0) return usage("--count-op needs --count-runs and an op type");
  }
  if (count_runs >= 0) {
    runs = warmup = 0;
    if (counted_type) {
      ekr_set_op_hook(m, mark_op, NULL);
      for (int i = 0; i < count_runs; i++) ekr_run(m, x, n_in, y, n_out, err, sizeof err);
      ekr_set_op_hook(m, NULL, NULL);
    } else {
      count_mark(COUNT_MARK_START);
      for (int i = 0; i < count_runs; i++) ekr_run(m, x, n_in, y, n_out, err, sizeof err);
      count_mark(COUNT_MARK_STOP);
    }
  }
  for (int i = 0; i < warmup; i++) {
    const double t = now_ms();
    ekr_run(m, x, n_in, y, n_out, err, sizeof err);
    warm[i] = now_ms() - t;
  }
  for (int i = 0; i < runs; i++) {
    const double t = now_ms();
    ekr_run(m, x, n_in, y, n_out, err, sizeof err);
    samples[i] = now_ms() - t;
  }
  const long peak_kb = peak_rss_kb();
  struct utsname un;
  const char *machine = uname(&un) == 0 ? un.machine : "unknown";
  int32_t dims[EKR_MAX_RANK];
  const int rank = ekr_input_shape(m, dims);
  printf("{\"runtime\": \"ekr\", \"runtime_version\": \"edgekit runtime (%s)\", "
         "\"machine\": \"%s\", \"kernel_paths\": \"%s\", \"isa\": %u, \"ops\": %u, "
         "\"arena_bytes\": %llu, \"arena_lower_bound\": %llu, \"peak_rss_kb\": %ld, "
         "\"read_ms\": %.6f, \"init_ms\": %.6f, \"first_ms\": %.6f, \"inputs\": %ld, "
         "\"count_runs\": %d, \"threads\": %d, \"input_shape\": [",
         ek_build_info(), machine, ekr_kernel_paths(m), ek_cpu_isa(), ekr_op_count(m),
         (unsigned long long)ekr_arena_bytes(m), (unsigned long long)ekr_arena_lower_bound(m),
         peak_kb, read_ms, load_ms, first_ms, n_inputs, count_runs, ekr_threads(m));
  for (int i = 0; i < rank; i++) printf("%s%d", i ? ", " : "", dims[i]);
  printf("]");
  print_ms("warmup_ms", warm, warmup);
  print_ms("samples_ms", samples, runs);
  printf("}\n");
  free(warm);
  free(samples);
  free(x);
  free(y);
  ekr_free(m);
  return 0;
}
