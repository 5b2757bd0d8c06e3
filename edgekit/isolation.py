"""Run untrusted-artifact work (parsing, loading into a runtime) in a child process.

Runtimes have known out-of-bounds reads and hangs on crafted files; a native crash or hang in the
child becomes a RuntimeCrash here and the CLI survives.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from edgekit.errors import EdgekitError, RuntimeCrash

R = TypeVar("R")


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except EdgekitError as exc:
        conn.send(("edgekit", exc))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


@contextlib.contextmanager
def _main_not_rerun(fn: Callable[..., Any]) -> Iterator[None]:
    """A spawned child re-runs the parent's main script unless it is guarded by
    `if __name__ == "__main__":`; a user's notebook-style script calling edgekit.export() then
    recursed into itself and hung. When fn does not live in __main__, the child does not need
    that script: hide its path while the child starts."""
    main = sys.modules.get("__main__")
    if main is None or getattr(fn, "__module__", None) == "__main__":
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    for key in saved:
        setattr(main, key, None) if key == "__spec__" else delattr(main, key)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)


def run_isolated(fn: Callable[..., R], *args: Any, what: str, path: str | None = None,
                 timeout: float = 600.0) -> R:
    """fn(*args) in a spawned child; its EdgekitErrors are re-raised, crashes/hangs reported."""
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child_conn, fn, args), daemon=True)
    with _main_not_rerun(fn):
        proc.start()
    child_conn.close()
    try:
        ready = parent_conn.poll(timeout)
        if not ready:
            proc.kill()
            proc.join(5)
            raise RuntimeCrash(f"{what} did not finish within {timeout:.0f} s (killed)", path=path,
                               hint="the file may be crafted or corrupt; re-export it, "
                                    "or raise the timeout for very large models")
        try:
            message = parent_conn.recv()
        except EOFError:
            proc.join(5)
            code = proc.exitcode
            if code is not None and code < 0:
                try:
                    sig = signal.Signals(-code).name
                except ValueError:
                    sig = str(-code)
                detail = f"crashed with {sig}"
            else:
                detail = f"exited with code {code} without a result"
            raise RuntimeCrash(f"{what} {detail} in the isolated child process", path=path,
                               hint="the file is probably corrupt or crafted; re-export it"
                               ) from None
    finally:
        parent_conn.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    kind = message[0]
    if kind == "ok":
        return message[1]  # type: ignore[no-any-return]
    if kind == "edgekit":
        raise message[1]
    raise RuntimeCrash(f"{what} failed: {message[1]}", path=path,
                       hint="run with --debug for the child's traceback") from _ChildTraceback(
                           message[2])


class _ChildTraceback(Exception):
    """Carries the child's formatted traceback so --debug can show it."""
