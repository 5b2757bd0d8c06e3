/* edgekit's instruction counter: a QEMU TCG plugin (plugin API v1, qemu 7.2) that counts every
 * guest instruction executed. Debian's qemu-user accepts -plugin but ships no plugin and no
 * qemu-plugin.h, so this file declares the few API entry points it uses itself.
 *
 *   qemu-aarch64 -plugin ./insncount.so,out=FILE ...
 *     -> FILE: "insns: N\ntbs: M\nmarked: K\nmarks: P\n"
 *
 * insns counts the whole process. marked counts only between marker pairs: the guest calls
 * lseek(-1, MARK_START) before the region it wants counted and lseek(-1, MARK_STOP) after
 * (EBADF, no effect in the guest; edgekit's agent does this around its N inferences), so one
 * process measures its inferences without start-up, whose count varies by a few million run to
 * run. P is the number of completed pairs.
 *
 * Inline adds are not atomic: exact for one guest thread (edgekit runs runtimes with 1 thread
 * when counting). Built by scripts/arm_device.sh; tested by tests/device_qemu (a known loop). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct {
  const char *target_name;
  struct { int min; int cur; } version;
  bool system_emulation;
} qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb_t)(qemu_plugin_id_t, void *);
typedef void (*syscall_cb_t)(qemu_plugin_id_t, unsigned int, int64_t, uint64_t, uint64_t,
                             uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t, syscall_cb_t);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
                                              void *, uint64_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb_t, void *);
void qemu_plugin_outs(const char *);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insns, tbs;
static uint64_t marked, marks, mark_start;
static bool in_mark;
static char outpath[4096];

/* aarch64 lseek; the offsets spell "edgekit" and fit a positive off_t */
#define SYS_LSEEK 62
#define MARK_FD UINT64_MAX
#define MARK_START 0x6564676b69740001ULL
#define MARK_STOP 0x6564676b69740002ULL

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                           qemu_plugin_tb_n_insns(tb));
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &tbs, 1);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8) {
  (void)id; (void)vcpu; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
  if (num != SYS_LSEEK || a1 != MARK_FD) return;
  if (a2 == MARK_START) {
    mark_start = insns;
    in_mark = true;
  } else if (a2 == MARK_STOP && in_mark) {
    marked += insns - mark_start;
    marks++;
    in_mark = false;
  }
}

static void on_exit(qemu_plugin_id_t id, void *p) {
  (void)id; (void)p;
  char buf[256];
  snprintf(buf, sizeof buf, "insns: %llu\ntbs: %llu\nmarked: %llu\nmarks: %llu\n",
           (unsigned long long)insns, (unsigned long long)tbs, (unsigned long long)marked,
           (unsigned long long)marks);
  if (outpath[0]) {
    FILE *f = fopen(outpath, "w");
    if (f) { fputs(buf, f); fclose(f); }
  } else {
    qemu_plugin_outs(buf);
  }
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++)
    if (!strncmp(argv[i], "out=", 4)) snprintf(outpath, sizeof outpath, "%s", argv[i] + 4);
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_atexit_cb(id, on_exit, NULL);
  return 0;
}
