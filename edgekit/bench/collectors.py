"""Collectors carry the agent and the artifacts to a device, run it, and read its JSON back.

local: the agent in a subprocess of this Python.   ssh://user@host[:port]: OpenSSH client,
BatchMode, host key checked against known_hosts (never added), ConnectTimeout,
ServerAliveInterval, a private remote temp dir removed on exit (stale ones by age), a remote
`timeout` plus the agent's stdin watchdog so nothing keeps running after a drop.
adb://SERIAL: `adb -s SERIAL` always; exit codes echoed explicitly (old adb loses them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from edgekit.errors import EdgekitError, UsageError

AGENT = Path(__file__).with_name("agent.py")
# Shipped beside the agent: the per-op profilers of its --profile mode.
AGENT_PROFILER = Path(__file__).with_name("agent_profile.py")
RESULT_BEGIN, RESULT_END, PARTIAL = "EDGEKIT-RESULT-BEGIN", "EDGEKIT-RESULT-END", "EDGEKIT-PARTIAL"


# What the OpenSSH client prints when the connection itself went away (vs the remote command
# dying from a signal, which also makes ssh exit 255).
_DROPPED = ("closed by remote host", "Broken pipe", "Connection reset", "not responding",
            "Connection closed", "Connection timed out")


class DeviceError(EdgekitError):
    code, stage, exit_code = "EK600", "device", 5


class BenchFailed(EdgekitError):
    """The run failed; partial samples (never spliced with another run) travel with it."""

    code, stage, exit_code = "EK601", "bench", 5

    def __init__(self, message: str, *, partial: dict[str, list[float]] | None = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial = partial or {}


@dataclass(frozen=True)
class BenchConfig:
    threads: int | None = None
    warmup: int = 10
    warmup_seconds: float = 0.5
    runs: int = 50
    min_seconds: float = 2.0
    rounds: int = 10
    timeout: float = 900.0
    retries: int = 1
    python: str = "python3"  # interpreter on the device
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    batch: int | None = None  # images per run (a dynamic-batch artifact; default its own)

    def agent_args(self, remote_dirs: list[str]) -> list[str]:
        args = []
        for d in remote_dirs:
            args += ["--artifact", d]
        args += ["--warmup", str(self.warmup), "--warmup-seconds", str(self.warmup_seconds),
                 "--runs", str(self.runs), "--min-seconds", str(self.min_seconds),
                 "--rounds", str(self.rounds)]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.batch:
            args += ["--batch", str(self.batch)]
        return args + list(self.extra_args)


def profile_args(cfg: BenchConfig, art: str) -> list[str]:
    """The agent's --profile mode: cfg.runs unprofiled then cfg.runs profiled runs."""
    args = ["--artifact", art, "--profile", str(cfg.runs), "--warmup", str(cfg.warmup)]
    if cfg.threads:
        args += ["--threads", str(cfg.threads)]
    if cfg.batch:
        args += ["--batch", str(cfg.batch)]
    return args


def parse_profile(out: str, err: str, code: int | None, device: str) -> dict[str, Any]:
    """The agent's --profile JSON line, or a DeviceError with the device's own message."""
    got = _agent_json(out, err, code, f"profiling on {device} failed",
                      "`edgekit bench` on the same device checks the runtime runs the "
                      "artifact at all")
    if not isinstance(got.get("ops"), list) or not isinstance(got.get("end_to_end_ms"), list):
        raise DeviceError(f"the profile {device} printed has no ops/end_to_end_ms",
                          hint="the device's agent is older than this edgekit: rerun")
    return got


def _agent_json(out: str, err: str, code: int | None, failed: str, hint: str
                ) -> dict[str, Any]:
    """The last JSON line an agent mode printed, or a DeviceError ending with its stderr."""
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if code != 0 or not lines:
        tail = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        raise DeviceError(f"{failed}: {tail[:400]}", hint=hint)
    try:
        got: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise DeviceError(f"{failed}: its output is not JSON ({exc})",
                          hint="rerun; a truncated line means the connection dropped") from None
    return got


def parse_agent_output(stdout: str) -> tuple[list[dict[str, Any]] | None,
                                             dict[str, list[float]]]:
    """(results or None, partial samples per artifact) from the agent's stdout."""
    partial: dict[str, list[float]] = {}
    results = None
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(PARTIAL + " "):
            try:
                row = json.loads(line[len(PARTIAL) + 1:])
            except ValueError:
                continue
            partial.setdefault(row["artifact"], []).extend(row["samples_ms"])
        elif line == RESULT_BEGIN and i + 2 < len(lines) and lines[i + 2] == RESULT_END:
            results = json.loads(lines[i + 1])
    return results, partial


class Collector(Protocol):
    name: str

    def measure(self, artifacts: list[Path], cfg: BenchConfig) -> list[dict[str, Any]]: ...

    def outputs(self, art: Path, x: Any, cfg: BenchConfig) -> dict[str, Any]:
        """{outputs, runtime, device, machine, emulated} of one batch `x` (`edgekit run`)."""
        ...


def _stream(proc: subprocess.Popen[bytes], timeout: float) -> tuple[str, str, bool]:
    """Collect stdout/stderr until exit or timeout (then kill). Returns (out, err, timed_out)."""
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []

    def pump(stream: Any, sink: list[bytes]) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            sink.append(chunk)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err_chunks), daemon=True)]
    for t in threads:
        t.start()
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    for t in threads:
        t.join(5)
    return (b"".join(out_chunks).decode(errors="replace"),
            b"".join(err_chunks).decode(errors="replace"), timed_out)


def _finish(device: str, out: str, err: str, code: int | None, timed_out: bool,
            timeout: float) -> list[dict[str, Any]]:
    results, partial = parse_agent_output(out)
    if results is not None and code == 0:
        for r in results:
            r["device"] = device
            r["status"] = "ok"
        return results
    if timed_out:
        reason = f"timed out after {timeout:.0f} s (remote process killed)"
    elif results is None and code == 0:
        reason = "the agent exited 0 without a results block (treated as a failure)"
    else:
        tail = err.strip().splitlines()[-1] if err.strip() else f"exit code {code}"
        reason = f"the agent failed: {tail[:300]}"
    raise BenchFailed(f"benchmark on {device} {reason}", partial=partial,
                      hint="partial samples are kept separately in the failure record; "
                           "rerun, and check the device with `edgekit doctor` there")


def _agent_env() -> dict[str, str]:
    """The local agent's environment: the host's edgekit runtime library for .ekr artifacts."""
    import os

    env = dict(os.environ)
    try:
        from edgekit.kernels import _library_file

        env["EDGEKIT_EKR_LIB"] = str(_library_file())
    except Exception:  # noqa: BLE001 - not built: .ekr targets then fail with the agent's message
        env.pop("EDGEKIT_EKR_LIB", None)
    return env


class LocalCollector:
    name = "local"

    def outputs(self, art: Path, x: Any, cfg: BenchConfig) -> dict[str, Any]:
        """`edgekit run` on the host: the x86 runtime, in an isolated child process."""
        import numpy as np

        from edgekit.artifact import Artifact
        from edgekit.isolation import run_isolated
        from edgekit.validate import DEFAULT_RUNTIME, run_golden

        artifact = Artifact.open(art)
        fmt = artifact.manifest.format
        runtime = DEFAULT_RUNTIME.get(fmt)
        if runtime is None:
            raise UsageError(f"no runtime runs {fmt} here", hint="see `edgekit doctor`")
        batch = max(1, int(artifact.manifest.inputs[0].shape[0]))
        name = artifact.manifest.inputs[0].name
        n = len(x)
        padded = np.concatenate([x, np.repeat(x[-1:], -n % batch, 0)]) if n % batch else x
        got = run_isolated(run_golden, fmt, runtime, str(artifact.model_path), {name: padded},
                           batch, cfg.threads, what=f"{runtime} running {artifact.manifest.file}",
                           path=str(artifact.model_path), timeout=cfg.timeout)
        return {"outputs": [np.asarray(v)[:n] for v in got.values()], "runtime": runtime,
                "device": "local", "machine": platform.machine(), "emulated": False}

    def profile(self, art: Path, cfg: BenchConfig) -> dict[str, Any]:
        cmd = [sys.executable, str(AGENT), *profile_args(cfg, str(art.resolve()))]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=_agent_env())
        out, err, timed_out = _stream(proc, cfg.timeout)
        if timed_out:
            raise DeviceError(f"profiling timed out after {cfg.timeout:.0f} s",
                              hint="use fewer --runs or raise --timeout")
        return {**parse_profile(out, err, proc.returncode, "local"), "device": "local",
                "emulated": False}

    def measure(self, artifacts: list[Path], cfg: BenchConfig) -> list[dict[str, Any]]:
        cmd = [sys.executable, str(AGENT), *cfg.agent_args([str(a.resolve()) for a in artifacts])]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=_agent_env())
        out, err, timed_out = _stream(proc, cfg.timeout)
        return _finish("local", out, err, proc.returncode, timed_out, cfg.timeout)


def _native_row(device: str, art: Path, tool: str, out: str, err: str, code: int | None,
                timed_out: bool) -> dict[str, Any]:
    from edgekit.bench.native import driver_for, to_schema

    driver = driver_for(tool)
    manifest = json.loads((art / "manifest.json").read_text())
    if timed_out or code != 0:
        tail = err.strip().splitlines()[-1] if err.strip() else f"exit code {code}"
        raise BenchFailed(f"native tool {driver.name} failed on {device}: "
                          f"{'timed out' if timed_out else tail[:300]}",
                          hint="check the tool path and that it runs on the device")
    try:
        parsed = driver.parse(out)
    except ValueError as exc:
        raise BenchFailed(f"native tool {driver.name} on {device}: {exc}",
                          hint="a crash with no results block is a failure, never 0 ms") from None
    row = to_schema(parsed, driver, manifest, out)
    row.update({"device": device, "status": "ok", "threads": None, "fingerprint": {}})
    return row


def run_native_local(tool: str, art: Path, cfg: BenchConfig) -> dict[str, Any]:
    from edgekit.bench.native import driver_for

    driver = driver_for(tool)
    manifest = json.loads((art / "manifest.json").read_text())
    if manifest["format"] not in driver.formats:
        raise UsageError(f"{driver.name} benchmarks {', '.join(driver.formats)}, not "
                         f"{manifest['format']}", path=art)
    cmd = driver.command(tool, str(art / manifest["file"]), cfg, sys.executable)
    proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out, err, timed_out = _stream(proc, cfg.timeout)
    return _native_row("local", art, tool, out, err, proc.returncode, timed_out)


def _without_companions(art: Path, arcname: str) -> Any:
    """A tar filter leaving out the companion files (model.ort, its operator config) the agent
    never loads: the device gets the model file, manifest and golden I/O only."""
    try:
        manifest = json.loads((art / "manifest.json").read_text())
        skip: set[str] = set()
        for c in manifest.get("exporter", {}).get("companions", []):
            skip.update(str(c.get(k)) for k in ("file", "operator_config") if c.get(k))
    except (OSError, ValueError):
        skip = set()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if info.name.removeprefix(arcname + "/") in skip else info

    return keep


def _tar_payload(artifacts: list[Path], extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(AGENT, arcname="agent.py")
        tar.add(AGENT_PROFILER, arcname="agent_profile.py")
        for i, art in enumerate(artifacts):
            tar.add(art, arcname=f"a{i}", filter=_without_companions(art, f"a{i}"))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# `edgekit run` on a device: the agent's --outputs mode, its npz read back without pickle.
MAX_OUTPUTS_BYTES = 1 << 30


def npy_bytes(x: Any) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def read_outputs_npz(data: bytes, device: str) -> list[Any]:
    """The outputs (out.0, out.1, ...) a device sent back; a malformed file is a DeviceError."""
    import zipfile

    import numpy as np

    if len(data) > MAX_OUTPUTS_BYTES:
        raise DeviceError(f"{device} sent back {len(data)} bytes of outputs (limit "
                          f"{MAX_OUTPUTS_BYTES})", hint="run fewer inputs at once")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = [f"out.{k}" for k in range(len(npz.files))]
            if sorted(names) != sorted(npz.files):
                raise ValueError(f"unexpected arrays {npz.files}")
            return [np.asarray(npz[n]) for n in names]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DeviceError(f"the outputs {device} sent back are not a valid .npz ({exc})",
                          hint="rerun; check the device's disk is not full") from None


def _outputs_info(out: str, err: str, code: int, device: str) -> dict[str, Any]:
    """The agent's --outputs JSON line, or a DeviceError with the device's own message."""
    return _agent_json(out, err, code, f"the agent on {device} could not run the artifact",
                       "`edgekit bench --device` on the same device lists its runtimes; the "
                       "artifact's runtime must be installed there")


def _outputs_row(outputs: list[Any], info: dict[str, Any], device: str) -> dict[str, Any]:
    return {"outputs": outputs, "runtime": f"{info['runtime']} {info['runtime_version']}",
            "device": device, "machine": info["machine"], "emulated": False}


@dataclass
class SshCollector:
    user: str
    host: str
    port: int = 22
    identity: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 5
    remote_tmp: str = "/tmp"
    stale_minutes: int = 120
    name: str = "ssh"

    @property
    def device(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def _ssh(self) -> list[str]:
        cmd = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
               "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3",
               "-o", "LogLevel=ERROR"]
        if self.known_hosts:
            cmd += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity:
            cmd += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return cmd + [f"{self.user}@{self.host}"]

    def run(self, remote: str, *, stdin: bytes | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = subprocess.run(self._ssh() + [remote], input=stdin, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"ssh command timed out after {timeout:.0f} s on {self.device}",
                              hint="check the device is responsive") from None
        if proc.returncode == 255:
            err = proc.stderr.decode(errors="replace").strip()
            if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION" in err \
                    or "No ED25519 host key is known" in err or "host key" in err.lower():
                raise DeviceError(f"host key of {self.device} is not in known_hosts or changed; "
                                  "refused before authentication",
                                  hint="verify the device's host key and add it to known_hosts "
                                       "yourself (edgekit never adds keys)")
            raise DeviceError(f"cannot reach {self.device}: {err[-300:] or 'ssh exit 255'}",
                              hint="check host, port, key (BatchMode: no passwords) and network")
        return proc

    @contextlib.contextmanager
    def remote_dir_with(self, artifacts: list[Path], cfg: BenchConfig,
                        extra: dict[str, bytes] | None = None
                        ) -> Iterator[tuple[str, str | None]]:
        """A private remote temp dir holding the agent and artifacts as a0, a1, …; stale dirs
        of killed runs are removed by age first, this one on exit. Yields (dir, boot id)."""
        base = shlex.quote(self.remote_tmp)
        made = self.run(f"find {base} -maxdepth 1 -name 'edgekit.*' -type d "
                        f"-mmin +{self.stale_minutes} -exec rm -rf {{}} + 2>/dev/null; "
                        f"mktemp -d {base}/edgekit.XXXXXXXX && "
                        "cat /proc/sys/kernel/random/boot_id 2>/dev/null || true")
        if made.returncode != 0:
            raise DeviceError(f"cannot create a temp dir on {self.device}: "
                              f"{made.stderr.decode(errors='replace').strip()[-200:]}",
                              hint="check the remote temp dir is writable")
        lines = made.stdout.decode().split()
        remote_dir, boot_before = lines[0], (lines[1] if len(lines) > 1 else None)
        rdir = shlex.quote(remote_dir)
        try:
            pushed = self.run(f"tar -xf - -C {rdir}", stdin=_tar_payload(artifacts, extra),
                              timeout=max(60.0, cfg.timeout / 4))
            if pushed.returncode != 0:
                err = pushed.stderr.decode(errors="replace")
                if "No space left" in err:
                    raise DeviceError(f"no space left in {remote_dir} on {self.device} while "
                                      "copying the artifacts", hint="free space on the device "
                                      "or pass --remote-tmp DIR on a larger filesystem")
                raise DeviceError(f"copying the artifacts to {self.device} failed: "
                                  f"{err.strip()[-200:]}", hint="check the remote temp dir")
            yield remote_dir, boot_before
        finally:
            try:
                self.run(f"rm -rf {rdir}", timeout=30)
            except DeviceError:
                pass  # unreachable now: removed by age on the next run

    def measure(self, artifacts: list[Path], cfg: BenchConfig) -> list[dict[str, Any]]:
        with self.remote_dir_with(artifacts, cfg) as (remote_dir, boot_before):
            return self._run_agent(artifacts, cfg, remote_dir, boot_before)

    def _run_agent(self, artifacts: list[Path], cfg: BenchConfig, remote_dir: str,
                   boot_before: str | None) -> list[dict[str, Any]]:
        rdir = shlex.quote(remote_dir)
        agent_args = " ".join(shlex.quote(a) for a in cfg.agent_args(
            [f"{remote_dir}/a{i}" for i in range(len(artifacts))]))
        remote = (f"cd {rdir} && exec timeout -k 5 {int(cfg.timeout)} "
                  f"{shlex.quote(cfg.python)} agent.py --watch-stdin "
                  f"--cache-dir {rdir}/../.edgekit-cache {agent_args}")
        proc = subprocess.Popen(self._ssh() + [remote], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err, timed_out = _stream(proc, cfg.timeout + 30)
        if proc.stdin:
            proc.stdin.close()
        if proc.returncode == 255 and not timed_out and any(m in err for m in _DROPPED):
            _, partial = parse_agent_output(out)
            rebooted = self._rebooted(boot_before)
            raise BenchFailed(f"connection to {self.device} dropped mid-run"
                              + (" (the device rebooted)" if rebooted else ""),
                              partial=partial, hint="partial samples are kept separately; "
                              "the run is retried as a whole, never spliced")
        if proc.returncode == 124 or proc.returncode == 137:
            timed_out = True
        results = _finish(self.device, out, err, proc.returncode, timed_out, cfg.timeout)
        for r in results:
            r["local_dir"] = str(artifacts[int(r["artifact"].rsplit("/a", 1)[1])])
        return results

    def outputs(self, art: Path, x: Any, cfg: BenchConfig) -> dict[str, Any]:
        """`edgekit run`: the artifact's outputs on `x`, computed on the board."""
        with self.remote_dir_with([art], cfg, {"inputs.npy": npy_bytes(x)}) as (remote_dir, _):
            rdir = shlex.quote(remote_dir)
            proc = self.run(f"cd {rdir} && timeout -k 5 {int(cfg.timeout)} "
                            f"{shlex.quote(cfg.python)} agent.py --artifact a0 --outputs "
                            f"out.npz --inputs inputs.npy", timeout=cfg.timeout + 30)
            info = _outputs_info(proc.stdout.decode(errors="replace"),
                                 proc.stderr.decode(errors="replace"), proc.returncode,
                                 self.device)
            got = self.run(f"cat {rdir}/out.npz", timeout=max(60.0, cfg.timeout / 4))
            if got.returncode != 0:
                raise DeviceError(f"reading the outputs back from {self.device} failed",
                                  hint="check the remote temp dir")
            return _outputs_row(read_outputs_npz(got.stdout, self.device), info, self.device)

    def profile(self, art: Path, cfg: BenchConfig) -> dict[str, Any]:
        with self.remote_dir_with([art], cfg) as (remote_dir, _):
            rdir = shlex.quote(remote_dir)
            args = " ".join(shlex.quote(a) for a in profile_args(cfg, "a0"))
            proc = self.run(f"cd {rdir} && timeout -k 5 {int(cfg.timeout)} "
                            f"{shlex.quote(cfg.python)} agent.py {args}",
                            timeout=cfg.timeout + 30)
            return {**parse_profile(proc.stdout.decode(errors="replace"),
                                    proc.stderr.decode(errors="replace"), proc.returncode,
                                    self.device), "device": self.device, "emulated": False}

    def measure_native(self, tool: str, art: Path, cfg: BenchConfig) -> dict[str, Any]:
        from edgekit.bench.native import driver_for

        driver = driver_for(tool)
        manifest = json.loads((art / "manifest.json").read_text())
        with self.remote_dir_with([art], cfg) as (remote_dir, _):
            cmd = driver.command(tool, f"{remote_dir}/a0/{manifest['file']}", cfg, cfg.python)
            proc = subprocess.Popen(self._ssh() + [f"timeout -k 5 {int(cfg.timeout)} {cmd}"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            out, err, timed_out = _stream(proc, cfg.timeout + 30)
            return _native_row(self.device, art, tool, out, err, proc.returncode, timed_out)

    def _rebooted(self, boot_before: str | None) -> bool | None:
        try:
            now = self.run("cat /proc/sys/kernel/random/boot_id", timeout=15)
        except DeviceError:
            return None
        return bool(boot_before) and now.stdout.decode().strip() != boot_before


@dataclass
class AdbCollector:
    serial: str | None
    adb: str = "adb"
    name: str = "adb"

    def _adb(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [self.adb] + (["-s", self.serial] if self.serial else []) + list(args)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise DeviceError("adb is not installed", hint="apt-get install adb") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"adb {' '.join(args[:2])} timed out after {timeout:.0f} s",
                              hint="check the device connection") from None

    def devices(self) -> list[str]:
        proc = subprocess.run([self.adb, "devices"], capture_output=True, text=True, timeout=60)
        rows = [ln.split() for ln in proc.stdout.splitlines()[1:] if ln.strip()]
        return [r[0] for r in rows if len(r) >= 2 and r[1] == "device"]

    def resolve(self) -> str:
        """The serial to use: refuse to guess among several devices or a missing one."""
        attached = self.devices()
        if self.serial is None:
            if not attached:
                raise DeviceError("no adb device attached", hint="connect a device and check "
                                  "`adb devices`, then pass adb://SERIAL")
            if len(attached) > 1:
                raise DeviceError(f"several adb devices attached ({', '.join(attached)}); "
                                  "refusing to guess", hint="pass adb://SERIAL")
            self.serial = attached[0]
        elif self.serial not in attached:
            raise DeviceError(f"adb device '{self.serial}' is not attached (attached: "
                              f"{', '.join(attached) or 'none'})", hint="check `adb devices`")
        return self.serial

    def shell(self, command: str, timeout: float = 60) -> tuple[int, str, str]:
        """Run a shell command; the exit code is echoed, since old adb drops it."""
        proc = self._adb("shell", f"{command}; echo EDGEKIT_RC=$?", timeout=timeout)
        out = proc.stdout
        marker = out.rfind("EDGEKIT_RC=")
        if marker < 0:
            raise DeviceError(f"adb shell lost the exit code ({proc.stderr.strip()[-200:]})",
                              hint="the device disconnected or the shell crashed")
        code = int(out[marker + len("EDGEKIT_RC="):].split()[0])
        return code, out[:marker], proc.stderr

    @contextlib.contextmanager
    def remote_dir_with(self, artifacts: list[Path]) -> Iterator[tuple[str, str]]:
        """(device, dir) on the phone holding the agent and the artifacts as a0, a1, …;
        removed on exit."""
        device = f"adb://{self.resolve()}"
        base = f"/data/local/tmp/edgekit.{os.getpid()}.{int(time.time())}"
        code, _, err = self.shell(f"mkdir -p {base}")
        if code != 0:
            raise DeviceError(f"cannot create {base} on {device}: {err.strip()}")
        try:
            self.push(AGENT, f"{base}/agent.py")
            self.push(AGENT_PROFILER, f"{base}/agent_profile.py")
            for i, art in enumerate(artifacts):
                self.push(art, f"{base}/a{i}")
            yield device, base
        finally:
            self.shell(f"rm -rf {base}", timeout=60)

    def measure(self, artifacts: list[Path], cfg: BenchConfig) -> list[dict[str, Any]]:
        with self.remote_dir_with(artifacts) as (device, base):
            args = " ".join(shlex.quote(a) for a in cfg.agent_args(
                [f"{base}/a{i}" for i in range(len(artifacts))]))
            code, out, err = self.shell(f"cd {base} && timeout {int(cfg.timeout)} "
                                        f"{cfg.python} agent.py --cache-dir {base}/.cache {args}",
                                        timeout=cfg.timeout + 30)
            return _finish(device, out, err, code, False, cfg.timeout)

    def outputs(self, art: Path, x: Any, cfg: BenchConfig) -> dict[str, Any]:
        """`edgekit run`: the artifact's outputs on `x`, computed on the phone."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="edgekit-adb-") as tmp, \
                self.remote_dir_with([art]) as (device, base):
            (Path(tmp) / "inputs.npy").write_bytes(npy_bytes(x))
            self.push(Path(tmp) / "inputs.npy", f"{base}/inputs.npy")
            code, out, err = self.shell(
                f"cd {base} && timeout {int(cfg.timeout)} {cfg.python} agent.py "
                f"--artifact a0 --outputs out.npz --inputs inputs.npy", timeout=cfg.timeout + 30)
            info = _outputs_info(out, err, code, device)
            pulled = self._adb("pull", f"{base}/out.npz", str(Path(tmp) / "out.npz"),
                               timeout=600)
            if pulled.returncode != 0:
                raise DeviceError(f"adb pull of the outputs failed: "
                                  f"{pulled.stderr.strip()[-200:]}")
            data = (Path(tmp) / "out.npz").read_bytes()
        return _outputs_row(read_outputs_npz(data, device), info, device)

    def profile(self, art: Path, cfg: BenchConfig) -> dict[str, Any]:
        with self.remote_dir_with([art]) as (device, base):
            args = " ".join(shlex.quote(a) for a in profile_args(cfg, "a0"))
            code, out, err = self.shell(f"cd {base} && timeout {int(cfg.timeout)} "
                                        f"{cfg.python} agent.py {args}",
                                        timeout=cfg.timeout + 30)
            return {**parse_profile(out, err, code, device), "device": device,
                    "emulated": False}

    def push(self, src: Path, dst: str) -> None:
        proc = self._adb("push", str(src), dst, timeout=600)
        if proc.returncode != 0:
            raise DeviceError(f"adb push {src.name} failed: {proc.stderr.strip()[-200:]}",
                              hint="check space in /data/local/tmp")


@dataclass
class QemuCollector:
    """qemu://CPU: the emulated ARM device (edgekit/qemu). Each artifact is validated on the
    aarch64 build of its runtime and costed in guest instructions per inference; qemu's wall
    time is not a speed, so the timing fields stay empty and the row says `emulated`."""

    url: str
    name: str = "qemu"

    def outputs(self, art: Path, x: Any, cfg: BenchConfig) -> dict[str, Any]:
        """`edgekit run` on the emulated CPU: the runtime's aarch64 build under qemu."""
        from edgekit.artifact import Artifact
        from edgekit.qemu import QemuDevice
        from edgekit.qemu.run import run_outputs

        dev = QemuDevice.from_url(self.url)
        run = run_outputs(dev, Artifact.open(art), x, timeout=cfg.timeout)
        return {"outputs": run.outputs, "runtime": run.runtime_version, "device": dev.url,
                "machine": run.machine, "emulated": True}

    def profile(self, art: Path, cfg: BenchConfig) -> dict[str, Any]:
        """The runtime's aarch64 profiler under qemu: per-op shares of emulated time (not a
        speed), and the whole model's guest instructions per inference (the counter sees no
        op boundaries inside the runtime)."""
        from edgekit.artifact import Artifact
        from edgekit.qemu import QemuDevice
        from edgekit.qemu.run import count_instructions, guest_profile

        dev = QemuDevice.from_url(self.url)
        artifact = Artifact.open(art)
        got = guest_profile(dev, artifact, runs=cfg.runs, warmup=min(cfg.warmup, 2),
                            timeout=cfg.timeout)
        count = count_instructions(dev, artifact, runs=max(1, min(cfg.runs, 3)),
                                   timeout=cfg.timeout)
        return {**got, "device": dev.url, "emulated": True, "instructions": count}

    def measure(self, artifacts: list[Path], cfg: BenchConfig) -> list[dict[str, Any]]:
        from edgekit.artifact import Artifact
        from edgekit.qemu import QemuDevice
        from edgekit.qemu.run import count_instructions, validate_on

        dev = QemuDevice.from_url(self.url)
        rows = []
        for path in artifacts:
            art = Artifact.open(path)
            try:
                report = validate_on(dev, art, timeout=cfg.timeout)
                count = count_instructions(dev, art, runs=max(1, min(cfg.runs, 5)),
                                           timeout=cfg.timeout)
            except DeviceError as exc:
                raise BenchFailed(exc.message, hint=exc.hint) from None
            m = art.manifest
            rows.append({
                "artifact": str(path), "model": m.model, "format": m.format, "quant": m.quant,
                "device": dev.url, "status": "ok", "emulated": True, "machine": "aarch64",
                **count,  # runtime as the agent names it everywhere, version, cpu, counts
                "median_ms": None, "p90_ms": None, "p99_ms": None, "min_ms": None,
                "max_ms": None, "cv": None, "iterations": count["count_runs"],
                "samples_ms": [], "init_ms": None, "first_ms": None, "peak_rss_mb": None,
                "stable": None, "plausible": None, "validated": bool(report.validated),
                "validation_cosine": report.cosine, "validation": report.__dict__,
                "size_bytes": m.size_bytes, "input_shape": list(m.inputs[0].shape),
                "fingerprint": {"artifact_sha256": m.sha256, "device": dev.info()},
            })
        return rows


def collector_for(device: str, *, identity: Path | None = None,
                  known_hosts: Path | None = None, remote_tmp: str = "/tmp") -> Any:
    if device in ("", "local"):
        return LocalCollector()
    url = urlparse(device)
    if url.scheme == "ssh":
        if not url.hostname or not url.username:
            raise UsageError(f"bad ssh device '{device}'", hint="use ssh://user@host[:port]")
        return SshCollector(url.username, url.hostname, url.port or 22, identity=identity,
                            known_hosts=known_hosts, remote_tmp=remote_tmp)
    if url.scheme == "adb":
        return AdbCollector(url.netloc or None)
    if url.scheme == "qemu":
        from edgekit.qemu import QemuDevice

        return QemuCollector(QemuDevice.from_url(device).url)
    if url.scheme == "vela":
        from edgekit.npu import VelaCollector

        return VelaCollector(url.netloc)
    raise UsageError(f"unknown device '{device}'",
                     hint="use local, ssh://user@host[:port], adb://SERIAL, qemu://CPU or "
                          "vela://ethos-u55-128 (Vela's estimate)")
