"""Name -> object registries with lazy "module:attr" entries.

A lazy entry is imported on first `get`, so a missing optional SDK breaks only that entry, and
importing edgekit never imports torch-heavy packages.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from edgekit.errors import MissingDependency, UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class _Lazy:
    target: str  # "package.module:attr"
    extra: str | None  # pip extra that provides the dependency


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | _Lazy] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T | str, *, extra: str | None = None) -> T | str: ...

    def register(self, name: str, obj: T | str | None = None, *, extra: str | None = None):  # type: ignore[no-untyped-def]
        """`@REG.register("x")` on a class/function, or `REG.register("x", "mod:attr")`."""

        def add(value: T | str) -> T | str:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            stored = _Lazy(value, extra) if isinstance(value, str) else value
            self._entries[name] = stored
            return value

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UsageError(
                f"unknown {self.kind} '{name}'", hint=f"choose one of: {known}"
            ) from None
        if isinstance(entry, _Lazy):
            module_name, _, attr = entry.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                extra = f"pip install 'edgekit[{entry.extra}]'" if entry.extra else "reinstall"
                raise MissingDependency(
                    f"{self.kind} '{name}' needs a package that is not installed ({exc})",
                    hint=f"{extra} (or run `edgekit doctor`)",
                ) from exc
            resolved: T = getattr(module, attr)
            self._entries[name] = resolved
            return resolved
        return entry

    def extra(self, name: str) -> str | None:
        entry = self._entries.get(name)
        return entry.extra if isinstance(entry, _Lazy) else None

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.list())
