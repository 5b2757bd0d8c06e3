/* edgekit's instruction counter: a QEMU TCG plugin (plugin API v1, qemu 7.2) that counts every
 * guest instruction executed. Debian's qemu-user accepts -plugin but ships no plugin and no
 * qemu-plugin.h, so this file declares the few API entry points it uses itself.
 *
 *   qemu-aarch64 -plugin ./insncount.so,out=FILE ...   -> FILE: "insns: N\ntbs: M\n"
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
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
                                              void *, uint64_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb_t, void *);
void qemu_plugin_outs(const char *);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insns, tbs;
static char outpath[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                           qemu_plugin_tb_n_insns(tb));
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &tbs, 1);
}

static void on_exit(qemu_plugin_id_t id, void *p) {
  (void)id; (void)p;
  char buf[128];
  snprintf(buf, sizeof buf, "insns: %llu\ntbs: %llu\n", (unsigned long long)insns,
           (unsigned long long)tbs);
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
  qemu_plugin_register_atexit_cb(id, on_exit, NULL);
  return 0;
}
