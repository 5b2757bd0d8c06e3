"""The .ekr backend and edgekit's native runtime: whole integer graphs bit-exact with the numpy
reference on the host and at every kernel level under qemu, the memory plan, the loader's
refusals of malformed files (and a bounded ASan + UBSan mutation fuzz), and the pipeline's
`--to onnx,ekr` / validate / run."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from typing import Any

import numpy as np
import pytest
import torch

from edgekit import fashion_mnist as fm
from edgekit.errors import ArtifactError, UsageError
from edgekit.intonly import ekr
from edgekit.intonly.graph import run_reference
from edgekit.kernels.ekr import EkrModel
from tests.kernels import KERNELS, make_kernels

CONFIGS = ("fmnist_levit", "fmnist_efficientformer", "fmnist_mobilevit")
N_INPUTS = 50


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each trained Fashion-MNIST config as an integer graph, its .ekr file and 50 test images."""
    from edgekit.models.source import load_source

    from edgekit.calibration import calibration_set
    from edgekit.intonly.convert import convert
    from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline

    out = tmp_path_factory.mktemp("ekr")
    images, _ = fm.load("test")
    result = {}
    for name in CONFIGS:
        src = load_source(name)
        cal = calibration_set("fmnist", src.data_config, 32)
        x = torch.from_numpy(cal.samples[:1])
        DeployPipeline(DEFAULT_PASSES).run(src.model, torch.cat([x, x]))
        graph = convert(src.model, x, cal.samples)
        data, info = ekr.to_ekr(graph, x.numpy())
        (out / f"{name}.ekr").write_bytes(data)
        xs = fm.to_model_input(images[:N_INPUTS], src.data_config["input_size"][-1],
                               tuple(src.data_config["mean"]), tuple(src.data_config["std"]))
        want = np.concatenate([run_reference(graph, xs[i:i + 1], kernels=True)
                               for i in range(N_INPUTS)]).astype(np.float32)
        result[name] = {"graph": graph, "data": data, "info": info, "path": out / f"{name}.ekr",
                        "x": xs, "want": want}
    return result


@pytest.mark.parametrize("name", CONFIGS)
def test_runtime_is_bit_exact_with_the_reference_on_the_host(graphs, name):
    g = graphs[name]
    model = EkrModel.from_bytes(g["data"])
    got = model.run(g["x"])
    assert got.dtype == np.float32 and got.shape == g["want"].shape
    assert np.array_equal(got, g["want"]), np.abs(got - g["want"]).max()


def test_threads_split_the_work_without_changing_a_bit(graphs):
    for name, g in graphs.items():
        model = EkrModel.from_bytes(g["data"])
        for threads in (2, 3, 1):
            model.set_threads(threads)
            assert model.threads == threads
            assert np.array_equal(model.run(g["x"][:16]), g["want"][:16]), (name, threads)
    with pytest.raises(UsageError, match="1 to 64"):
        model.set_threads(0)


def test_the_three_configs_cover_every_op_of_the_file_format(graphs):
    used = set().union(*(g["info"]["ops"] for g in graphs.values()))
    assert used == set(ekr.OPS), set(ekr.OPS) - used


@pytest.mark.parametrize("name", CONFIGS)
def test_memory_plan_is_within_1_2x_of_the_live_set_lower_bound(graphs, name):
    info = graphs[name]["info"]
    assert 0 < info["arena_lower_bound"] <= info["arena_bytes"] <= 1.2 * info["arena_lower_bound"]
    model = EkrModel.from_bytes(graphs[name]["data"])
    assert (model.arena_bytes, model.arena_lower_bound) == (info["arena_bytes"],
                                                            info["arena_lower_bound"])


def test_summary_reads_the_file_back(graphs):
    g = graphs["fmnist_levit"]
    s = ekr.summarize(g["data"])
    assert s["ops"] == g["info"]["ops"] and s["input_shape"] == [1, 3, 64, 64]
    assert s["output_shape"] == [1, 10] and s["size_bytes"] == len(g["data"])


# --- malformed files: each a clear error, never a crash -------------------------------------

def _with_crc(data: bytearray) -> bytes:
    data[12:16] = struct.pack("<I", zlib.crc32(bytes(data[16:])))
    return bytes(data)


def _op_record(data: bytes, index: int) -> int:
    (ops_offset,) = struct.unpack_from("<Q", data, 40)
    return ops_offset + ekr.OP_BYTES * index


def _first_op(data: bytes, kind: str) -> int:
    (n_ops,) = struct.unpack_from("<I", data, 28)
    for i in range(n_ops):
        (code,) = struct.unpack_from("<I", data, _op_record(data, i))
        if code == ekr.OPS[kind]:
            return _op_record(data, i)
    raise AssertionError(kind)


def _rejects(data: bytes, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        EkrModel.from_bytes(data)


def test_loader_rejects_truncation_at_every_section_boundary(graphs):
    data = graphs["fmnist_efficientformer"]["data"]
    ops_offset, data_offset = struct.unpack_from("<QQ", data, 40)
    for cut in (0, 3, 16, ekr.HEADER_BYTES - 1, ekr.HEADER_BYTES, ops_offset - 1, ops_offset,
                data_offset - 1, data_offset, len(data) - 1):
        _rejects(data[:cut], "the header alone|truncated|magic")
        if cut >= ekr.HEADER_BYTES:  # the same cut with the size and checksum made consistent
            short = bytearray(data[:cut])
            short[16:24] = struct.pack("<Q", cut)
            _rejects(_with_crc(short), "offset|outside|section|size")


def test_loader_rejects_corruption_version_and_bad_fields(graphs):
    data = graphs["fmnist_levit"]["data"]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    _rejects(bytes(flipped), "checksum mismatch")
    _rejects(b"ONNX" + data[4:], "magic")
    newer = bytearray(data)
    newer[4:8] = struct.pack("<I", 2)
    _rejects(bytes(newer), "version 2; this runtime reads 1")

    def edited(at: int, fmt: str, value: int) -> bytes:
        d = bytearray(data)
        struct.pack_into(fmt, d, at, value)
        return _with_crc(d)

    linear = _first_op(data, "linear")
    _rejects(edited(linear, "<I", 99), "unknown type 99")
    _rejects(edited(linear + 8, "<I", 10_000), "input 0 names tensor 10000")
    _rejects(edited(linear + 64, "<q", 63), "shift 63 outside 0..62")
    _rejects(edited(_first_op(data, "shiftmax") + 64 + 8, "<q", 16), "n 0..15")
    tensor = ekr.HEADER_BYTES + ekr.TENSOR_BYTES * 1
    _rejects(edited(tensor + 4, "<i", 1 << 25), "outside 1..2\\^24")
    _rejects(edited(tensor + 32, "<Q", 1 << 40), "outside its arena")
    _rejects(edited(80, "<I", 1 << 20), "input/output tensor ids")
    _rejects(edited(64, "<Q", 1 << 31), "arena of")


def test_loader_rejects_an_overlapping_memory_plan(graphs):
    """A plan that puts an op's output over a tensor still to be read is refused."""
    data = bytearray(graphs["fmnist_levit"]["data"])
    record = _first_op(bytes(data), "add")
    a, _b = struct.unpack_from("<II", data, record + 8)
    (out,) = struct.unpack_from("<I", data, record + 40)
    t_in = ekr.HEADER_BYTES + ekr.TENSOR_BYTES * a
    t_out = ekr.HEADER_BYTES + ekr.TENSOR_BYTES * out
    (offset,) = struct.unpack_from("<Q", data, t_in + 32)
    struct.pack_into("<Q", data, t_out + 32, offset)
    _rejects(_with_crc(data), "overlaps")


def test_mutation_fuzz_under_asan_and_ubsan(graphs):
    """Thousands of truncated, bit-flipped and field-overwritten files per seed: every one is
    rejected with a message or loads and runs; any crash or sanitizer report fails the run."""
    build = make_kernels("build/san/ekr_fuzz")
    assert build.returncode == 0, build.stderr[-3000:]
    seeds = [str(graphs[n]["path"]) for n in CONFIGS]
    proc = subprocess.run([str(KERNELS / "build/san/ekr_fuzz"), *seeds, "--cases", "1500"],
                          capture_output=True, text=True, timeout=900,
                          env={"ASAN_OPTIONS": "detect_leaks=1:allocator_may_return_null=1",
                               "UBSAN_OPTIONS": "halt_on_error=1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(seeds)
    for line in lines:
        cases, rejected, ran, crashes = (int(w) for w in
                                         line.split(": ")[1].replace(",", "").split()
                                         if w.isdigit())
        assert cases >= 1500 and rejected > 0 and ran > 0 and rejected + ran == cases, line
        assert crashes == 0, line


# --- under qemu: the static aarch64 runner at each kernel level -----------------------------

# (runner build, qemu CPU, the gemm path it must pick)
LEVELS = (("nosimd", "cortex-a53", "autovec"), ("a64", "cortex-a53", "neon"),
          ("a64", "cortex-a76", "neondot"), ("a64", "max", "i8mm"))


@pytest.mark.parametrize(("build", "cpu", "gemm"), LEVELS)
def test_runner_is_bit_exact_at_every_kernel_level_under_qemu(graphs, tmp_path, build, cpu,
                                                              gemm):
    from edgekit.qemu import QemuDevice

    made = make_kernels(f"build/{build}/ekr_runner")
    assert made.returncode == 0, made.stderr[-3000:]
    dev = QemuDevice.from_url(f"qemu://{cpu}")
    for name in CONFIGS:
        g = graphs[name]
        src, dst = tmp_path / f"{name}.in", tmp_path / f"{name}.out"
        g["x"][:8].astype("<f4").tofile(src)
        threads = "2" if gemm == "neondot" else "1"  # workers under qemu, at one level
        cmd = dev.command(str(g["path"]), "--inputs", str(src), "--outputs", str(dst),
                          "--threads", threads, binary=KERNELS / f"build/{build}/ekr_runner")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert f"s8_gemm_requant={gemm}" in report["kernel_paths"], report["kernel_paths"]
        assert report["machine"] == "aarch64" and report["inputs"] == 8
        assert report["threads"] == int(threads)
        got = np.fromfile(dst, dtype="<f4").reshape(g["want"][:8].shape)
        assert np.array_equal(got, g["want"][:8]), (name, np.abs(got - g["want"][:8]).max())


def test_runner_reports_a_bad_file_and_wrong_input_size(graphs, tmp_path):
    made = make_kernels("build/host/ekr_runner")
    assert made.returncode == 0, made.stderr[-3000:]
    runner = str(KERNELS / "build/host/ekr_runner")
    bad = tmp_path / "bad.ekr"
    bad.write_bytes(graphs["fmnist_levit"]["data"][:1000])
    proc = subprocess.run([runner, str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "truncated" in proc.stderr
    wrong = tmp_path / "x.f32"
    np.zeros(100, "<f4").tofile(wrong)
    proc = subprocess.run([runner, str(graphs["fmnist_levit"]["path"]), "--inputs", str(wrong),
                           "--outputs", str(tmp_path / "y.f32")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "not a whole number of inputs" in proc.stderr
    proc = subprocess.run([runner, str(graphs["fmnist_levit"]["path"]), "--runs", "5",
                           "--warmup", "2"], capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stdout)
    assert len(report["samples_ms"]) == 5 and len(report["warmup_ms"]) == 2
    assert report["peak_rss_kb"] > 0 and report["arena_bytes"] >= report["arena_lower_bound"]


# --- the pipeline: --to onnx,ekr, validate, run ----------------------------------------------

def test_export_writes_one_integer_graph_as_onnx_and_ekr(int_only_artifacts):
    from edgekit.artifact import Artifact

    onnx_art, ekr_art = (Artifact.open(int_only_artifacts[f]) for f in ("onnx", "ekr"))
    for art in (onnx_art, ekr_art):
        v = art.manifest.validation
        assert v.validated is True and v.bit_exact is True, v.reason
    assert ekr_art.path.name == "fmnist_levit.int-only.ekr"
    assert ekr_art.manifest.exporter["int_ops"] == onnx_art.manifest.exporter["int_ops"]
    assert ekr_art.manifest.validation.cosine == onnx_art.manifest.validation.cosine
    (ekr_exact,), (onnx_exact,) = (a.golden_exact().values() for a in (ekr_art, onnx_art))
    assert np.array_equal(ekr_exact, onnx_exact)  # the one graph's reference outputs


def test_run_gives_exactly_what_onnxruntime_gives_on_the_integer_onnx(int_only_artifacts,
                                                                      tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import cli

    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for fmt, device in (("onnx", "local"), ("ekr", "local"), ("ekr", "qemu://cortex-a76")):
        out = tmp_path / f"{fmt}-{device.replace('://', '-')}.npy"
        res = CliRunner().invoke(cli, ["run", str(int_only_artifacts[fmt]), "--input",
                                       str(tmp_path / "x.npy"), "--device", device, "--out",
                                       str(out)])
        assert res.exit_code == 0, res.output
        outs[(fmt, device)] = np.load(out)
    first = outs[("onnx", "local")]
    assert all(np.array_equal(first, y) for y in outs.values())


def test_validate_on_qemu_is_bit_exact(int_only_artifacts):
    from edgekit.artifact import Artifact
    from edgekit.qemu import QemuDevice
    from edgekit.qemu.run import validate_on

    report = validate_on(QemuDevice.from_url("qemu://cortex-a76"),
                         Artifact.open(int_only_artifacts["ekr"]))
    assert report.validated is True and report.bit_exact is True, report.reason
    assert "qemu://cortex-a76" in report.runtime and "aarch64" in report.runtime


def test_a_tampered_golden_exact_output_fails_validation(int_only_artifacts, tmp_path):
    """The bit-exact check is real: one changed reference value fails the artifact."""
    import shutil

    from edgekit.artifact import Artifact, load_golden, load_golden_kinds, save_golden
    from edgekit.validate import validate_artifact

    copy = tmp_path / "copy.int-only.ekr"
    shutil.copytree(int_only_artifacts["ekr"], copy)
    art = Artifact.open(copy)
    inputs, outputs = load_golden(art.golden_path)
    exact = art.golden_exact()
    name = next(iter(exact))
    exact[name] = exact[name].copy()
    exact[name].flat[0] += np.float32(0.5)
    save_golden(art.golden_path, inputs, outputs, load_golden_kinds(art.golden_path), exact)
    report = validate_artifact(art)
    assert report.validated is False and report.bit_exact is False
    assert "differs from the integer reference in 1 of" in report.reason


def test_bench_counts_ekr_instructions_under_qemu(int_only_artifacts):
    from edgekit.bench.run import run_bench

    (row,) = run_bench([int_only_artifacts["ekr"]], device="qemu://cortex-a76")
    assert row["status"] == "ok" and row["validated"] is True and row["emulated"] is True
    assert row["runtime"] == "ekr" and row["count_method"] == "markers"
    assert row["instructions_per_inference"] > 1e5


def test_ekr_is_refused_for_other_quant_modes(tmp_path):
    from edgekit.errors import UsageError
    from edgekit.pipeline import ExportRequest, export_model

    with pytest.raises(UsageError, match="int8 is not available for ekr"):
        export_model(ExportRequest(model="fmnist_levit", formats=("ekr",), quant="int8",
                                   out=tmp_path))



def test_per_op_type_counts_add_up_to_the_whole(int_only_artifacts):
    from edgekit.artifact import Artifact
    from edgekit.qemu import QemuDevice
    from edgekit.qemu.run import count_instructions, count_op_types

    art = Artifact.open(int_only_artifacts["ekr"])
    dev = QemuDevice.from_url("qemu://cortex-a76")
    per_type = count_op_types(dev, art)
    assert set(per_type) == set(ekr.summarize(art.model_path.read_bytes())["ops"])
    whole = count_instructions(dev, art)["instructions_per_inference"]
    # the op types partition the run; the rest is the executor's loop and the output copy
    assert 0.9 * whole < sum(per_type.values()) <= whole, (per_type, whole)
    counts = list(per_type.values())
    assert counts == sorted(counts, reverse=True) and counts[-1] >= 0  # heaviest first
    assert set(list(per_type)[:2]) == {"conv2d", "linear"}  # the stem and the MLPs


def test_thread_pool_is_race_free_under_thread_sanitizer(graphs, tmp_path):
    made = make_kernels("build/tsan/ekr_runner")
    assert made.returncode == 0, made.stderr[-3000:]
    g = graphs["fmnist_efficientformer"]
    src, dst = tmp_path / "x.f32", tmp_path / "y.f32"
    g["x"][:6].astype("<f4").tofile(src)
    proc = subprocess.run([str(KERNELS / "build/tsan/ekr_runner"), str(g["path"]), "--inputs",
                           str(src), "--outputs", str(dst), "--threads", "3"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "ThreadSanitizer" not in proc.stderr, proc.stderr[-3000:]
    got = np.fromfile(dst, dtype="<f4").reshape(g["want"][:6].shape)
    assert np.array_equal(got, g["want"][:6])
