#!/usr/bin/env bash
# Sets up everything edgekit needs on a fresh Debian machine: system packages (when missing and
# we are root), a .venv in the checkout, and the project installed editable with its extras.
# Idempotent: a stamp keyed on pyproject.toml skips the pip step when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
VENV="$root/.venv"
EXTRAS="${EDGEKIT_EXTRAS:-torch,onnx,tflite,executorch,coreml,npu,dev}"

# Debian packages the tests rely on (installed only when missing): sshd for the loopback device
# tests, adb for the adb command layer, chromium to render HTML reports headless, the real
# Fashion-MNIST data set for accuracy work, a C compiler for the kernel library, and the aarch64
# cross toolchain + qemu-user for the ARM kernels (kernels_arm/), llvm for llvm-mca.
APT_PACKAGES=(git openssh-client openssh-server adb chromium dataset-fashion-mnist gcc make
              gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user llvm-14)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "bootstrap: missing Debian packages ${missing[*]}; install them with apt-get (as root)" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.edgekit-installed"
# the install compiles the host kernel library: its sources are part of the stamp
want="$(cat pyproject.toml setup.py kernels_arm/include/* kernels_arm/src/* kernels_arm/runtime/* | sha256sum | cut -c1-16)-$EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing edgekit[$EXTRAS] into .venv (first time: a few minutes)"
  # pip's chatter (absent local index folders, setuptools notices) goes to a log shown on failure.
  log="$VENV/pip-install.log"
  if ! { "$VENV/bin/pip" install -q --upgrade pip && "$VENV/bin/pip" install -q -e ".[$EXTRAS]"; } \
      >"$log" 2>&1; then
    grep -v "is ignored" "$log" | tail -n 40 >&2
    echo "bootstrap: pip install failed (full log: $log)" >&2
    exit 1
  fi
  "$VENV/bin/python" -c "import edgekit, edgekit.exporters, edgekit.runtimes, edgekit.models" \
    || { echo "bootstrap: edgekit failed to install" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
