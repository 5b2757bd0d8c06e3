"""One error hierarchy for every user-facing failure.

Each error names the stage that failed, the file involved and how to fix it; the CLI prints
`render()` as one paragraph and exits with `exit_code` (no traceback unless --debug).
"""

from __future__ import annotations

import os
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of a third-party error, without terminal colour codes."""
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class EdgekitError(Exception):
    code = "EK000"
    stage = "edgekit"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        hint: str | None = None,
        stage: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        self.hint = hint
        if stage is not None:
            self.stage = stage

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        where = f" [{self.path}]" if self.path else ""
        fix = f" Fix: {self.hint}" if self.hint else ""
        return f"error {self.code} ({self.stage}){where}: {self.message}.{fix}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "stage": self.stage,
            "message": self.message,
            "path": self.path,
            "hint": self.hint,
        }


class UsageError(EdgekitError):
    code, stage, exit_code = "EK100", "usage", 2


class ModelNotFound(EdgekitError):
    code, stage, exit_code = "EK101", "source", 2


class WeightsError(EdgekitError):
    code, stage, exit_code = "EK102", "weights", 2


class UnsafeCheckpoint(WeightsError):
    code = "EK103"


class UnsafePath(EdgekitError):
    code, stage, exit_code = "EK104", "output", 2


class MissingDependency(EdgekitError):
    code, stage, exit_code = "EK105", "setup", 2


class TransformError(EdgekitError):
    code, stage = "EK200", "transform"


class ExportError(EdgekitError):
    code, stage = "EK300", "export"


class DiskFull(ExportError):
    code = "EK301"


class CompileError(EdgekitError):
    """A device compiler (Vela for Ethos-U) refused or failed on a model file."""

    code, stage = "EK310", "compile"


class ArtifactError(EdgekitError):
    """The artifact or model file is missing, foreign, truncated or inconsistent."""

    code, stage, exit_code = "EK400", "artifact", 2


class RuntimeCrash(EdgekitError):
    """A runtime crashed or hung in the isolated child process."""

    code, stage, exit_code = "EK401", "runtime", 4


class InputMismatch(EdgekitError):
    code, stage, exit_code = "EK402", "runtime", 2


class ValidationFailed(EdgekitError):
    code, stage, exit_code = "EK500", "validate", 3
