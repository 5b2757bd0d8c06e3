"""A real OpenSSH server on a loopback port, with its own host key, client key and known_hosts
made per run (Debian openssh-server, installed by scripts/bootstrap.sh)."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (  # noqa: F401 - shared
    int_only_artifact,
    int_only_artifacts,
    small_tmpfs,
    tiny_artifact,
)

SSHD = "/usr/sbin/sshd"


@dataclass
class SshDevice:
    port: int
    user: str
    identity: Path
    known_hosts: Path
    host_pub: Path
    master_pid: int
    log: Path

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def cli_args(self) -> list[str]:
        return ["--device", self.url, "--identity", str(self.identity),
                "--known-hosts", str(self.known_hosts)]

    def sessions(self) -> list[int]:
        """pids of the per-connection sshd processes (children of the master)."""
        out = subprocess.run(["pgrep", "-P", str(self.master_pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def ssh_device(tmp_path_factory: pytest.TempPathFactory) -> SshDevice:
    assert Path(SSHD).exists() and shutil.which("ssh"), \
        "openssh-server/client missing: run scripts/bootstrap.sh (make test does)"
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile {d}/sshd.pid
LogLevel VERBOSE
""")
    os.makedirs("/run/sshd", exist_ok=True)
    log = d / "sshd.log"
    subprocess.run([SSHD, "-f", str(config), "-E", str(log)], check=True)
    deadline = time.monotonic() + 10
    while not (d / "sshd.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((d / "sshd.pid").read_text())
    host_pub = d / "host_key.pub"
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub.read_text().split(' ', 2)[0]} "
                     f"{host_pub.read_text().split(' ', 2)[1].strip()}\n")
    device = SshDevice(port, getpass.getuser(), d / "client_key", known, host_pub, pid, log)
    yield device
    os.kill(pid, signal.SIGTERM)
