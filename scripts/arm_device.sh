#!/usr/bin/env bash
# Builds edgekit's emulated ARM device: an aarch64 CPython 3.11 with real aarch64 builds of
# numpy, onnxruntime, ai-edge-litert and the ExecuTorch runtime, run by qemu-aarch64 user-mode
# with a per-CPU /proc/cpuinfo, plus the instruction-counting TCG plugin from edgekit/qemu/.
#
#   bash scripts/arm_device.sh            (make arm-device)   -> .arm-device/ (or $EDGEKIT_ARM_DEVICE)
#
# Nothing is installed into the host's dpkg: arm64 .debs are fetched with a private apt state
# and unpacked with dpkg -x. Idempotent and cached: each step has a stamp keyed on its inputs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="${EDGEKIT_ARM_DEVICE:-$root/.arm-device}"
HOSTPY="${HOSTPY:-$root/.venv/bin/python}"
CPUS=(cortex-a53 cortex-a76 neoverse-n1 max)
# The guest runtimes follow the host's versions, so a difference is ARM code, not a release.
hostver() { "$HOSTPY" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "$2"; }
ORT_VER="${ORT_VER:-$(hostver onnxruntime 1.31.1)}"
LITERT_VER="${LITERT_VER:-$(hostver ai-edge-litert 2.3.0)}"
NUMPY_VER="${NUMPY_VER:-$(hostver numpy 2.4.6)}"
# ExecuTorch's pybindings need an aarch64 libtorch of their ABI; PyPI's aarch64 torch >= 2.11 is
# CUDA-linked, so 2.10.0 (CPU) is the newest that runs, and executorch 1.3.1 the newest runtime
# that works with it (1.4 needs newer pthreadpool symbols, 1.5 a newer TensorImpl layout).
# 1.3.1 asks for torch >= 2.12 in its metadata only: installed with --no-deps.
ET_VER="${ET_VER:-1.3.1}"; ET_TORCH_VER="${ET_TORCH_VER:-2.10.0}"
ET_DEPS=(filelock==4.3.1 typing_extensions==4.16.0 sympy==1.14.0 mpmath==1.3.0 networkx==3.6.1
         jinja2==3.1.6 MarkupSafe==3.0.4 fsspec==2026.9.0 ruamel.yaml==0.19.1 flatbuffers==25.12.19
         tabulate==0.10.0)
say() { echo "arm-device: $*"; }
# qemu -cpu argument per CPU name: `max` only with SVE and SME off (no phone has them on).
cpu_arg() { case "$1" in max) echo "max,sve=off,sme=off";; *) echo "$1";; esac; }
stamp_ok() { [ -f "$DEV/.stamp-$1" ] && [ "$(cat "$DEV/.stamp-$1")" = "$2" ]; }
stamp() { echo "$2" > "$DEV/.stamp-$1"; }
quiet() { local log; log=$(mktemp); if ! "$@" >"$log" 2>&1; then tail -n 30 "$log" >&2; rm -f "$log"; return 1; fi; rm -f "$log"; }

for tool in qemu-aarch64 gcc dpkg apt-get; do
  command -v "$tool" >/dev/null || { echo "arm-device: $tool is missing (apt-get install qemu-user gcc)" >&2; exit 1; }
done
mkdir -p "$DEV"

# 1. aarch64 CPython 3.11 from Debian's arm64 packages, unpacked into a sysroot.
PKGS="python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1
 gcc-12-base libstdc++6 libgomp1 libbz2-1.0 libcrypt1 libdb5.3 libexpat1 libffi8 liblzma5
 libncursesw6 libnsl2 libreadline8 libsqlite3-0 libssl3 libtinfo6 libtirpc3 libtirpc-common
 libuuid1 zlib1g libgssapi-krb5-2 libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0
 libcom-err2 media-types libgdbm6 libgdbm-compat4 readline-common libopenblas0-pthread libgfortran5"
key="$(echo $PKGS | sha256sum | cut -c1-16)"
if ! stamp_ok sysroot "$key"; then
  say "aarch64 CPython 3.11 sysroot from Debian arm64 packages (host dpkg untouched)"
  A="$DEV/apt"; rm -rf "$A" "$DEV/debs" "$DEV/sysroot"
  mkdir -p "$A/state/lists/partial" "$A/cache/archives/partial" "$A/etc/preferences.d" "$A/etc/sources.d"
  touch "$A/state/status"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed '/^Types:/a Architectures: arm64' "$f" > "$A/etc/sources.d/$(basename "$f")"
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -E 's/^deb (\[[^]]*\] )?/deb [arch=arm64] /' /etc/apt/sources.list > "$A/etc/sources.list"
  else : > "$A/etc/sources.list"; fi
  APTOPTS=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o "Dir::State=$A/state"
    -o "Dir::State::status=$A/state/status" -o "Dir::Cache=$A/cache" -o "Dir::Etc::SourceList=$A/etc/sources.list"
    -o "Dir::Etc::SourceParts=$A/etc/sources.d" -o "Dir::Etc::Preferences=$A/etc/prefs"
    -o "Dir::Etc::PreferencesParts=$A/etc/preferences.d")
  quiet apt-get "${APTOPTS[@]}" -qq update
  mkdir -p "$DEV/debs" "$DEV/sysroot"
  (cd "$DEV/debs" && quiet apt-get "${APTOPTS[@]}" -qq download $PKGS)
  for d in "$DEV"/debs/*.deb; do dpkg -x "$d" "$DEV/sysroot"; done
  rm -rf "$DEV/debs" "$A"
  qemu-aarch64 -L "$DEV/sysroot" "$DEV/sysroot/usr/bin/python3.11" -c 'import ssl, sqlite3, ctypes'
  stamp sysroot "$key"
fi

# 2. Per-CPU overlays: the same sysroot with an aarch64 /proc/cpuinfo of that core.
key="$(sha256sum "$root/edgekit/qemu/mk_cpuinfo.py" | cut -c1-16)-${CPUS[*]}"
if ! stamp_ok cpus "$key"; then
  say "per-CPU /proc/cpuinfo overlays: ${CPUS[*]}"
  for c in "${CPUS[@]}"; do
    o="$DEV/cpu-$c"; rm -rf "$o"; mkdir -p "$o/proc"
    for d in etc lib usr; do ln -sfn ../sysroot/$d "$o/$d"; done
    qemu-aarch64 -cpu "$(cpu_arg "$c")" \
      -L "$DEV/sysroot" "$DEV/sysroot/usr/bin/python3.11" "$root/edgekit/qemu/mk_cpuinfo.py" "$c" > "$o/proc/cpuinfo"
    # the MIDR ExecuTorch's and XNNPACK's cpuinfo read from sysfs, per emulated core
    m=$(qemu-aarch64 -cpu "$(cpu_arg "$c")" -L "$DEV/sysroot" "$DEV/sysroot/usr/bin/python3.11" \
        "$root/edgekit/qemu/mk_cpuinfo.py" "$c" --midr)
    n=$(grep -c '^processor' "$o/proc/cpuinfo")
    for ((i = 0; i < n; i++)); do
      mkdir -p "$o/sys/devices/system/cpu/cpu$i/regs/identification"
      echo "$m" > "$o/sys/devices/system/cpu/cpu$i/regs/identification/midr_el1"
    done
  done
  stamp cpus "$key"
fi

# 3. aarch64 wheels of the runtimes.
PL=(--platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_27_aarch64
    --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all:)
PIP=("$HOSTPY" -m pip)
[ -x "$HOSTPY" ] || PIP=(python3 -m pip)
key="ort=$ORT_VER litert=$LITERT_VER numpy=$NUMPY_VER"
if ! stamp_ok site "$key"; then
  say "aarch64 wheels: onnxruntime $ORT_VER, ai-edge-litert $LITERT_VER, numpy $NUMPY_VER"
  rm -rf "$DEV/wheels" "$DEV/site"
  quiet "${PIP[@]}" download -q "${PL[@]}" -d "$DEV/wheels" "onnxruntime==$ORT_VER" \
    "ai-edge-litert==$LITERT_VER" "numpy==$NUMPY_VER"
  quiet "${PIP[@]}" install -q --no-deps --no-index --target "$DEV/site" "${PL[@]}" "$DEV"/wheels/*.whl
  rm -rf "$DEV/wheels"
  stamp site "$key"
fi
key="et=$ET_VER torch=$ET_TORCH_VER ${ET_DEPS[*]}"
if [ "${EDGEKIT_ARM_EXECUTORCH:-1}" = 1 ] && ! stamp_ok site-et "$key"; then
  say "aarch64 ExecuTorch runtime $ET_VER with torch $ET_TORCH_VER (CPU) (about 600 MB)"
  rm -rf "$DEV/wheels-et" "$DEV/site-et"
  quiet "${PIP[@]}" download -q --no-deps "${PL[@]}" -d "$DEV/wheels-et" "executorch==$ET_VER" \
    "torch==$ET_TORCH_VER" "${ET_DEPS[@]}"
  quiet "${PIP[@]}" install -q --no-deps --no-index --target "$DEV/site-et" "${PL[@]}" "$DEV"/wheels-et/*.whl
  rm -rf "$DEV/wheels-et"
  stamp site-et "$key"
fi

# 4. The instruction counter (edgekit/qemu/insncount.c).
src="$root/edgekit/qemu/insncount.c"
key="$(sha256sum "$src" | cut -c1-16)"
if ! stamp_ok plugin "$key"; then
  say "building the instruction-count plugin"
  gcc -O2 -shared -fPIC -Wall -o "$DEV/insncount.so" "$src"
  stamp plugin "$key"
fi

# 4b. The edgekit runtime's on-device app: one static aarch64 binary (kernels_arm/tools).
key="$(cat "$root"/kernels_arm/src/* "$root"/kernels_arm/include/* "$root"/kernels_arm/runtime/* \
  "$root"/kernels_arm/tools/ekr_runner.c "$root"/kernels_arm/Makefile | sha256sum | cut -c1-16)"
if ! stamp_ok runner "$key" || [ ! -x "$DEV/ekr_runner" ]; then
  say "building the edgekit runtime's aarch64 runner"
  make -s -C "$root/kernels_arm" build/a64/ekr_runner build/host/ekr_runner
  cp "$root/kernels_arm/build/a64/ekr_runner" "$DEV/ekr_runner.tmp"
  mv "$DEV/ekr_runner.tmp" "$DEV/ekr_runner"
  stamp runner "$key"
fi

# 5. What is on the device (edgekit doctor reads it): versions as the guest itself reports them.
key="$(cat "$DEV"/.stamp-{sysroot,cpus,site,site-et,plugin} 2>/dev/null | sha256sum | cut -c1-16)"
if ! stamp_ok info "$key"; then
  say "checking the runtimes on the device (cortex-a76)"
  PYTHONPATH="$DEV/site:$DEV/site-et" qemu-aarch64 -cpu cortex-a76 -L "$DEV/cpu-cortex-a76" \
    "$DEV/sysroot/usr/bin/python3.11" - > "$DEV/device.json.tmp" <<'PY'
import importlib, importlib.metadata as md, json, platform, sys
info = {"machine": platform.machine(), "python": sys.version.split()[0], "runtimes": {}}
for module, dist in (("numpy", "numpy"), ("onnxruntime", "onnxruntime"),
                     ("ai_edge_litert.interpreter", "ai-edge-litert"), ("executorch.runtime", "executorch"),
                     ("torch", "torch")):
    try:
        importlib.import_module(module)
        info["runtimes"][dist] = md.version(dist)
    except Exception as exc:  # recorded, not fatal: the others still work
        info["runtimes"][dist] = None
        info.setdefault("errors", {})[dist] = f"{type(exc).__name__}: {exc}"[:300]
print(json.dumps(info))
PY
  mv "$DEV/device.json.tmp" "$DEV/device.json"
  stamp info "$key"
fi
say "ready: $DEV ($(cat "$DEV/device.json"))"
