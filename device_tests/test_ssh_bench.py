"""`edgekit bench --device ssh://…` against a real sshd on loopback, and its faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.bench.collectors import BenchConfig, BenchFailed, DeviceError, SshCollector
from edgekit.bench.run import run_bench

from .conftest import SshDevice

# The loopback "device" runs the agent with this venv's Python (numpy + runtimes installed).
PY = sys.executable
FAST = BenchConfig(warmup=2, warmup_seconds=0.1, runs=20, min_seconds=0.2, rounds=4,
                   timeout=120, retries=0, python=PY)


def collector(dev, **kw) -> SshCollector:
    return SshCollector(dev.user, "127.0.0.1", dev.port, identity=dev.identity,
                        known_hosts=dev.known_hosts, **kw)


def _parent(pid: int) -> int:
    try:  # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, not ')'
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0  # gone meanwhile


def _agent_processes(device: SshDevice) -> list[str]:
    """Agents this sshd started (descendants of its master): make test runs other files' agents
    (local, qemu) at the same time in another pytest-xdist worker."""
    out = subprocess.run(["pgrep", "-af", r"agent\.py"], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        pid = int(line.split()[0])
        while pid > 1 and pid != device.master_pid:
            pid = _parent(pid)
        if pid == device.master_pid:
            found.append(line)
    return found


def test_full_round_trip_through_the_cli(ssh_device, tiny_artifact, tmp_path):
    out = tmp_path / "results.json"
    before = set(Path("/tmp").glob("edgekit.*"))
    res = subprocess.run([sys.executable, "-m", "edgekit.cli", "bench", str(tiny_artifact),
                          *ssh_device.cli_args(), "--runs", "30", "--min-seconds", "0.3",
                          "--warmup", "3", "--python", PY, "--json", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert row["status"] == "ok" and row["device"] == ssh_device.url
    for key in ("median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "cv", "min_ms", "max_ms",
                "samples_ms", "init_ms", "first_ms", "warmup_ms", "peak_rss_mb", "runtime",
                "validated", "stable", "plausible", "fingerprint"):
        assert key in row, key
    assert len(row["samples_ms"]) == row["iterations"] >= 30
    assert row["validated"] is True and row["min_ms"] > 0
    fp = row["fingerprint"]
    assert fp["cores"] and fp["os"] and fp["artifact_sha256"]
    assert json.loads(out.read_text())[0]["median_ms"] == row["median_ms"]
    assert set(Path("/tmp").glob("edgekit.*")) == before  # remote temp dir removed


def test_unknown_host_key_is_refused_before_auth(ssh_device, tiny_artifact, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    wrong = tmp_path / "known_hosts"
    pub = (tmp_path / "other_key.pub").read_text().split()
    wrong.write_text(f"[127.0.0.1]:{ssh_device.port} {pub[0]} {pub[1]}\n")
    log_before = ssh_device.log.read_text()
    c = SshCollector(ssh_device.user, "127.0.0.1", ssh_device.port,
                     identity=ssh_device.identity, known_hosts=wrong)
    with pytest.raises(DeviceError, match="host key"):
        c.measure([tiny_artifact], FAST)
    new_log = ssh_device.log.read_text()[len(log_before):]
    assert "Accepted publickey" not in new_log
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    c = SshCollector(ssh_device.user, "127.0.0.1", ssh_device.port,
                     identity=ssh_device.identity, known_hosts=empty)
    with pytest.raises(DeviceError, match="refused before authentication") as info:
        c.measure([tiny_artifact], FAST)
    assert "never adds" in (info.value.hint or "")
    assert empty.read_text() == ""  # nothing was auto-added


def test_remote_hang_is_killed_by_the_timeout(ssh_device, tiny_artifact):
    cfg = BenchConfig(warmup=2, warmup_seconds=0.1, runs=10**9, min_seconds=600, rounds=10**6,
                      timeout=6, retries=0, python=PY)
    start = time.monotonic()
    with pytest.raises(BenchFailed, match="timed out") as info:
        collector(ssh_device).measure([tiny_artifact], cfg)
    assert time.monotonic() - start < 60
    assert info.value.partial, "partial samples are kept"
    time.sleep(1)
    assert not _agent_processes(ssh_device), "no agent left running on the device"


def test_connection_drop_keeps_partial_samples_apart(ssh_device, tiny_artifact, tmp_path):
    cfg = BenchConfig(warmup=2, warmup_seconds=0.1, runs=100, min_seconds=60, rounds=10,
                      timeout=120, retries=1, python=PY)
    stop = threading.Event()

    def drop_connections():
        """Whenever an agent runs, let a few rounds stream back, then cut its ssh session."""
        while not stop.is_set():
            if _agent_processes(ssh_device) and ssh_device.sessions():
                # long enough for the runtime's import and a round to stream on a loaded
                # 2-core machine (1.5 s was not: a flaky empty partial); the run lasts 60 s
                time.sleep(4.0)
                for pid in ssh_device.sessions():
                    os.kill(pid, 9)
            time.sleep(0.1)

    killer = threading.Thread(target=drop_connections, daemon=True)
    killer.start()
    try:
        rows = run_bench([tiny_artifact], device=ssh_device.url, cfg=cfg,
                         identity=ssh_device.identity, known_hosts=ssh_device.known_hosts)
    finally:
        stop.set()
        killer.join(5)
    (row,) = rows
    assert row["status"] == "failed" and "median_ms" not in row
    assert "dropped" in row["error"]
    assert len(row["attempts"]) == 2  # bounded retries of the whole repetition
    partial = row["attempts"][0]["partial_samples_ms"]
    assert partial and all(v for v in partial.values())
    deadline = time.monotonic() + 15
    while _agent_processes(ssh_device) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _agent_processes(ssh_device), "agent exits when its connection drops"


def test_full_remote_temp_dir_is_a_clear_error(ssh_device, tiny_artifact, small_tmpfs):
    small = small_tmpfs("32k")
    with pytest.raises(DeviceError, match="no space left"):
        collector(ssh_device, remote_tmp=str(small)).measure([tiny_artifact], FAST)
    assert not list(small.glob("edgekit.*")), "the remote temp dir is removed"


def test_stale_remote_temp_dirs_are_removed_by_age(ssh_device, tiny_artifact, tmp_path):
    base = tmp_path / "remote_tmp"
    base.mkdir()
    stale = base / "edgekit.stale123"
    stale.mkdir()
    old = time.time() - 4 * 3600
    os.utime(stale, (old, old))
    fresh = base / "edgekit.fresh456"
    fresh.mkdir()
    (row,) = collector(ssh_device, remote_tmp=str(base)).measure([tiny_artifact], FAST)
    assert row["status"] == "ok"
    assert not stale.exists() and fresh.exists()


def test_native_tool_over_ssh(ssh_device, tmp_path):
    from pathlib import Path

    import ai_edge_litert

    from edgekit.pipeline import ExportRequest, export_model
    from tests.conftest import TINY

    tool = Path(ai_edge_litert.__file__).parent / "tools" / "benchmark_litert_model.py"
    (o,) = export_model(ExportRequest(model=TINY, formats=("tflite",), out=tmp_path))
    (row,) = run_bench([o.artifact.path], device=ssh_device.url,
                       cfg=BenchConfig(warmup=2, runs=15, timeout=120, retries=0, python=PY),
                       identity=ssh_device.identity, known_hosts=ssh_device.known_hosts,
                       native=str(tool))
    assert row["status"] == "ok" and row["device"] == ssh_device.url
    assert row["iterations"] == 15 and row["median_ms"] > 0


def test_bench_kernels_over_ssh_pushes_ek_bench_and_cleans_up(ssh_device, int_only_artifact):
    """`edgekit bench --kernels` on the loopback device: ek_bench picked by `uname -m`, copied
    with the artifact's shapes, run in a private temp dir that is gone afterwards."""
    subprocess.run(["make", "-C", str(Path(__file__).resolve().parents[1] / "kernels_arm"),
                    f"PYTHON={PY}", "bench"], check=True, capture_output=True, timeout=600)
    before = set(Path("/tmp").glob("edgekit.*"))
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "bench", str(int_only_artifact),
                           "--kernels", "--kernel-paths", "scalar,autovec", "--runs", "3",
                           "--min-seconds", "0", "--json", *ssh_device.cli_args()],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert rows and all(r["status"] == "ok" and r["device"] == ssh_device.url for r in rows)
    assert {r["path"] for r in rows} == {"scalar", "autovec"}
    assert all(r["validated"] is True for r in rows if r["path"] == "autovec")
    assert all(r["fingerprint"]["machine"] == "x86_64" for r in rows)
    assert set(Path("/tmp").glob("edgekit.*")) <= before  # remote temp dir removed


def test_run_over_ssh_writes_the_boards_output(ssh_device, tiny_artifact, tmp_path):
    from edgekit.artifact import Artifact
    from edgekit.run_one import run_artifact

    art = Artifact.open(tiny_artifact)
    x = next(iter(art.load_golden()[0].values()))[:3]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    before = set(Path("/tmp").glob("edgekit.*"))
    res = subprocess.run([sys.executable, "-m", "edgekit.cli", "run", str(tiny_artifact),
                          "--input", str(tmp_path / "x.npy"), *ssh_device.cli_args(),
                          "--python", PY, "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    meta = json.loads(res.stdout)
    assert meta["device"] == f"ssh://{ssh_device.user}@127.0.0.1:{ssh_device.port}"
    assert meta["emulated"] is False and meta["output_shapes"][0][0] == 3
    # the loopback board runs the same x86 runtime build as the host: the same numbers
    host = run_artifact(art, x, "local")["outputs"][0]
    np.testing.assert_array_equal(np.load(out), host)
    assert set(Path("/tmp").glob("edgekit.*")) == before  # remote temp dir removed


def test_run_over_ssh_names_a_runtime_missing_on_the_board(ssh_device, tiny_artifact, tmp_path):
    from edgekit.artifact import Artifact
    from edgekit.run_one import run_artifact

    art = Artifact.open(tiny_artifact)
    x = next(iter(art.load_golden()[0].values()))[:1]
    with pytest.raises(DeviceError, match="could not run the artifact"):
        run_artifact(art, x, ssh_device.url, identity=ssh_device.identity,
                     known_hosts=ssh_device.known_hosts, python="/usr/bin/python3", timeout=120)


def test_ekr_over_ssh_pushes_the_runner_alone_and_is_bit_exact(ssh_device, int_only_artifacts,
                                                               tmp_path):
    """The edgekit runtime on the loopback board: only the static runner and the .ekr go over
    (no agent run, no Python), bench checks the golden outputs bit for bit, validate and run
    use the same runner, and the remote temp dirs are gone afterwards."""
    from edgekit.artifact import Artifact
    from edgekit.kernels.ekr import EkrModel
    from tests.kernels import make_kernels

    assert make_kernels("runner").returncode == 0
    ekr = int_only_artifacts["ekr"]
    before = set(Path("/tmp").glob("edgekit.*"))
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "bench", str(ekr), "--runs", "5",
                           "--warmup", "2", "--threads", "2", "--json",
                           *ssh_device.cli_args()], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(proc.stdout)
    assert row["status"] == "ok" and row["device"] == ssh_device.url, row
    assert row["runtime"] == "ekr" and row["emulated"] is False and row["threads"] == 2
    assert row["validated"] is True and row["bit_exact"] is True
    assert len(row["samples_ms"]) == 5 and len(row["warmup_ms"]) == 2
    assert row["median_ms"] > 0 and row["peak_rss_mb"] > 0
    assert row["arena_bytes"] >= row["arena_lower_bound"] > 0
    assert not _agent_processes(ssh_device)

    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "validate", str(ekr), "--json",
                           *ssh_device.cli_args()], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["validated"] and report["bit_exact"] is True
    assert ssh_device.url in report["runtime"]

    art = Artifact.open(ekr)
    x = next(iter(art.load_golden()[0].values()))[:3]
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "run", str(ekr), "--input",
                           str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"), "--json",
                           *ssh_device.cli_args()], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["runtime"].startswith("edgekit runtime")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"),
                                  EkrModel.from_file(art.model_path).run(x))
    assert set(Path("/tmp").glob("edgekit.*")) <= before  # remote temp dirs removed


def test_ekr_over_ssh_reports_a_rejected_model_file(ssh_device, int_only_artifacts, tmp_path):
    """A .ekr damaged after export: the artifact's sha256 check refuses it before anything is
    copied; a file the runner itself rejects comes back as a failure record, not 0 ms."""
    import shutil

    from edgekit.artifact import Artifact, sha256_path
    from edgekit.bench import ekr_device
    from edgekit.errors import ArtifactError

    bad = tmp_path / "bad.int-only.ekr"
    shutil.copytree(int_only_artifacts["ekr"], bad)
    model = bad / Artifact.open(bad).manifest.file
    model.write_bytes(model.read_bytes()[:4096])
    with pytest.raises(ArtifactError, match="sha256"):
        run_bench([bad], device=ssh_device.url, cfg=FAST, identity=ssh_device.identity,
                  known_hosts=ssh_device.known_hosts)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["sha256"] = sha256_path(model)  # a consistent artifact holding a bad file
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BenchFailed, match="rejects the model file.*truncated"):
        ekr_device.measure(bad, collector(ssh_device), FAST)


def test_validate_over_ssh_runs_the_golden_check_on_the_board(ssh_device, tiny_artifact):
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "validate", str(tiny_artifact),
                           "--python", PY, "--json", *ssh_device.cli_args()],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["validated"] and report["cosine"] > 0.9999
    assert ssh_device.url in report["runtime"] and "onnxruntime" in report["runtime"].lower()


def test_profile_over_ssh_maps_the_boards_ops_and_cleans_up(ssh_device, tiny_artifact):
    """`edgekit profile --device ssh://`: the agent and its profilers go to the board with the
    artifact, the per-op rows come back tied to the model's modules, nothing is left behind."""
    before = set(Path("/tmp").glob("edgekit.*"))
    res = subprocess.run([sys.executable, "-m", "edgekit.cli", "profile", str(tiny_artifact),
                          *ssh_device.cli_args(), "--python", PY, "--runs", "3", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    p = json.loads(res.stdout)
    assert p["device"] == ssh_device.url and p["runtime"] == "onnxruntime"
    assert p["rows"] and p["module_coverage"] >= 0.9
    assert sum(r["share"] for r in p["rows"]) == pytest.approx(1.0)
    assert set(Path("/tmp").glob("edgekit.*")) == before  # remote temp dir removed
