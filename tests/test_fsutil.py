import hashlib
import multiprocessing as mp
import os

import pytest

from edgekit.errors import UnsafePath
from edgekit.fsutil import atomic_directory, child_path, clean_stale_temps, safe_component


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/b", "..", "x\0y", "a" * 200, "", ".hidden"])
def test_unsafe_names_rejected(bad):
    with pytest.raises(UnsafePath):
        safe_component(bad)


def test_child_path_refuses_symlink_escape(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "m.fp32.onnx").symlink_to(elsewhere)
    with pytest.raises(UnsafePath, match="outside"):
        child_path(out, "m.fp32.onnx")
    assert child_path(out, "ok.fp32.onnx") == (out / "ok.fp32.onnx").resolve()


def test_atomic_replace_and_failure_keeps_old(tmp_path):
    final = tmp_path / "a.fp32.onnx"
    with atomic_directory(final) as tmp:
        (tmp / "f").write_text("one")
    assert (final / "f").read_text() == "one"
    with atomic_directory(final) as tmp:
        (tmp / "f").write_text("two")
    assert (final / "f").read_text() == "two"
    with pytest.raises(RuntimeError), atomic_directory(final) as tmp:
        (tmp / "f").write_text("three")
        raise RuntimeError("boom")
    assert (final / "f").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.fp32.onnx.lock", "a.fp32.onnx"]


def test_stale_temp_dirs_of_dead_processes_are_removed(tmp_path):
    final = tmp_path / "a.fp32.onnx"
    dead = tmp_path / ".a.fp32.onnx.tmp-999999-deadbeef"
    dead.mkdir()
    alive = tmp_path / f".a.fp32.onnx.tmp-{os.getppid()}-cafebabe"
    alive.mkdir()
    removed = clean_stale_temps(final)
    assert dead in removed and not dead.exists() and alive.exists()


def _writer(final: str, tag: str) -> None:
    from pathlib import Path

    for i in range(20):
        with atomic_directory(Path(final)) as tmp:
            data = f"{tag}{i}" * 1000
            (tmp / "model").write_text(data)
            (tmp / "manifest").write_text(hashlib.sha256(data.encode()).hexdigest())


def test_concurrent_writers_never_mix_files(tmp_path):
    final = tmp_path / "m.fp32.onnx"
    ctx = mp.get_context("spawn")  # fork is unsafe once JAX (via litert-torch) has threads
    procs = [ctx.Process(target=_writer, args=(str(final), t)) for t in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    digest = hashlib.sha256((final / "model").read_bytes()).hexdigest()
    assert (final / "manifest").read_text() == digest
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
