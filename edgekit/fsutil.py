"""Safe output paths and atomic artifact directories.

An artifact is built in a temp dir beside its final path, fsynced, then swapped in with one
atomic rename (renameat2 RENAME_EXCHANGE when there is an old one), so a reader or a killed
export only ever sees the previous complete artifact or the new complete one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from edgekit.errors import DiskFull, ExportError, UnsafePath

_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
_TMP_MARK = ".tmp-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def safe_component(name: str, *, what: str = "name") -> str:
    """A single path component we are willing to create: no separators, '..', NUL, or >128 chars."""
    if not _SAFE_COMPONENT.match(name) or ".." in name:
        raise UnsafePath(
            f"{what} {name!r} is not a safe file name (letters, digits, '_', '.', '+', '-'; "
            "at most 128 characters; no '/', '..' or NUL)",
            hint=f"choose a plain {what}",
        )
    return name


def child_path(parent: Path, name: str, *, what: str = "name") -> Path:
    """parent/name, guaranteed to stay inside parent (after resolving symlinks)."""
    safe_component(name, what=what)
    parent_resolved = parent.resolve()
    target = (parent_resolved / name).resolve()
    if target.parent != parent_resolved:
        raise UnsafePath(f"{what} {name!r} resolves outside {parent}", path=target,
                         hint="remove the symlink or choose another --out")
    return target


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for fn in filenames:
            fd = os.open(os.path.join(dirpath, fn), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        dfd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2). False when the kernel/libc lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(final: Path) -> list[Path]:
    """Remove temp dirs of earlier exports of `final` whose process is gone."""
    removed = []
    prefix = f".{final.name}{_TMP_MARK}"
    for p in final.parent.glob(f"{prefix}*"):
        try:
            pid = int(p.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def _lock(final: Path) -> Iterator[None]:
    lock_path = final.parent / f".{final.name}.lock"
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temp dir; on clean exit it replaces `final` atomically, on error it is removed.

    Concurrent writers of the same `final` are serialized by an flock, so the manifest's sha256
    always matches the file beside it.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create output directory ({exc.strerror})",
                          path=final.parent, hint="check --out and its permissions") from None
    with _lock(final):
        clean_stale_temps(final)
        tmp = final.parent / f".{final.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            _fsync_tree(tmp)
            if final.exists():
                if not _exchange(tmp, final):
                    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
                    os.rename(final, old)
                    os.rename(tmp, final)
                    tmp = old
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.rename(tmp, final)
            dfd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno == errno.ENOSPC:
                raise DiskFull("no space left on device (ENOSPC) while writing the artifact; "
                               "nothing was left at the final path", path=final,
                               hint="free disk space or choose another --out") from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
