# The two commands of the README: `make run` and `make test`. Both set everything up first.
VENV := .venv
PY := $(VENV)/bin/python
MODEL ?= efficientformer_l1
OUT ?= artifacts
# pytest-xdist workers for make test (whole files per worker: module fixtures export once)
TEST_JOBS ?= 2

.PHONY: setup arm-device run test test-all lint bench bench-arm count train-fmnist clean

setup:
	@bash scripts/bootstrap.sh
	@bash scripts/arm_device.sh

# The emulated ARM device (aarch64 CPython + the runtimes' aarch64 builds under qemu): qemu://CPU
arm-device:
	@bash scripts/bootstrap.sh
	@bash scripts/arm_device.sh

run: setup
	$(VENV)/bin/edgekit export $(MODEL) --to onnx --out $(OUT)

test: setup lint
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=25

test-all: setup
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile -m "not device and not macos"

lint:
	$(VENV)/bin/ruff check edgekit exporters runtimes models tests bench device_tests
	$(VENV)/bin/mypy edgekit

bench: setup
	cd bench && ../$(PY) reparam_latency.py --update-readme
	cd bench && ../$(PY) format_matrix.py --update-readme
	cd bench && ../$(PY) agent_agreement.py --update-readme
	cd bench && ../$(PY) export_all_models.py --update-readme
	cd bench && ../$(PY) int8_accuracy.py --update-readme
	cd bench && ../$(PY) int8_speed.py --update-readme
	cd bench && ../$(PY) int_only.py --update-readme
	cd bench && ../$(PY) kernels.py --update-readme

# The ARM numerics matrix and cost table on the emulated ARM device (hours: every family)
bench-arm: setup
	cd bench && ../$(PY) arm_device.py --update-readme

# Instructions per call of every ARM kernel path, from qemu-aarch64's logs (one JSON line)
count: setup
	@$(MAKE) -s -C kernels_arm count PYTHON=$(abspath $(PY))

# Retrain the Fashion-MNIST small configs (checkpoints ship in models/fmnist/; seeded)
train-fmnist: setup
	$(PY) bench/train_fmnist.py --force

clean:
	rm -rf $(OUT) .pytest_cache
