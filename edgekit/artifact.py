"""Artifact = a directory `<model>.<quant>.<format>/` with the model file, manifest.json,
golden.npz and (ONNX, TFLite) layers.json, the source module of every op. Everything downstream
of export (validate, inspect, bench, profile, diff, report) reads only this."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ArtifactError

MANIFEST_NAME = "manifest.json"
GOLDEN_NAME = "golden.npz"
GOLDEN_KINDS = "kind"  # golden.npz: what each input is ("photo", "noise", "test-image")
SCHEMA_VERSION = 1
FORMATS = ("onnx", "tflite", "executorch", "coreml")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str | None = None  # "NCHW" / "NHWC" for images, None for logits
    # integer I/O tensors: {"scale": [...], "zero_point": [...]}; real = (q - zero_point) * scale
    quantization: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(d["name"], tuple(int(s) for s in d["shape"]), d["dtype"], d.get("layout"),
                   d.get("quantization"))


@dataclass(frozen=True)
class PassRecord:
    """One deploy pass: how many sites it rewrote and how far it moved the outputs."""

    name: str
    changed: int
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class ValidationReport:
    max_abs: float
    max_rel: float
    cosine: float
    sqnr_db: float
    top1_agreement: float
    n_inputs: int
    validated: bool | str  # True/False, or a qualified state like "structure-only (...)"
    runtime: str
    thresholds: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    # Samples whose top-1 was judged: the rest are near-ties of the reference (see validate.py).
    top1_judged: int = 0
    # Calibrated modes (int8, int-only) are judged on the in-distribution golden inputs; the
    # worst cosine on the noise inputs is reported here, not judged (None: none, or judged).
    cosine_noise: float | None = None
    judged_inputs: int | None = None  # how many golden inputs the verdict is over (None: all)
    # Integer-only artifacts carry the integer reference's outputs (golden.npz "exact."): the
    # runtime must reproduce them bit for bit (None: no exact reference to compare with).
    bit_exact: bool | None = None
    # A dynamic-batch artifact is run at batch 1 and at its bound: each batch's cosine and the
    # largest difference between the two runs' outputs (None: a static batch).
    batches: dict[str, Any] | None = None
    # Companion files (model.ort beside model.onnx), each validated in its runtime.
    files: dict[str, Any] | None = None


@dataclass(frozen=True)
class Manifest:
    format: str
    file: str
    sha256: str
    size_bytes: int
    model: str
    weights: dict[str, Any]
    quant: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    passes: tuple[PassRecord, ...]
    versions: dict[str, str]
    preprocessing: dict[str, Any]
    exporter: dict[str, Any]
    validation: ValidationReport | None = None
    created: str = ""
    flops: int | None = None  # forward FLOPs at the exported batch (bench plausibility gate)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def with_validation(self, report: ValidationReport) -> Manifest:
        return replace(self, validation=report)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        validation = d.get("validation")
        return cls(
            format=d["format"],
            file=d["file"],
            sha256=d["sha256"],
            size_bytes=int(d["size_bytes"]),
            model=d["model"],
            weights=dict(d["weights"]),
            quant=d["quant"],
            inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
            passes=tuple(PassRecord(**p) for p in d["passes"]),
            versions=dict(d["versions"]),
            preprocessing=dict(d.get("preprocessing", {})),
            exporter=dict(d.get("exporter", {})),
            validation=ValidationReport(**validation) if validation else None,
            created=d.get("created", ""),
            flops=d.get("flops"),
            schema=int(d.get("schema", SCHEMA_VERSION)),
        )


def artifact_name(model: str, quant: str, fmt: str) -> str:
    return f"{model}.{quant}.{fmt}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory bundle (e.g. .mlpackage) as sorted (relpath, digest)."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.file

    @property
    def golden_path(self) -> Path:
        return self.path / GOLDEN_NAME

    @classmethod
    def open(cls, path: str | Path, *, verify_hash: bool = True) -> Artifact:
        """Open an artifact directory; refuse anything missing, foreign or inconsistent."""
        root = Path(path)
        if not root.exists():
            raise ArtifactError("no such artifact directory", path=root,
                                hint="pass the directory `edgekit export` wrote "
                                     "(OUT/<model>.<quant>.<format>/)")
        if not root.is_dir():
            raise ArtifactError("an artifact is a directory, this is a file", path=root,
                                hint="pass the directory that holds manifest.json")
        manifest_path = root / MANIFEST_NAME
        try:
            raw = json.loads(manifest_path.read_text())
            manifest = Manifest.from_dict(raw)
        except FileNotFoundError:
            raise ArtifactError("no manifest.json in the artifact directory", path=root,
                                hint="re-export it with `edgekit export`") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"manifest.json is unreadable ({exc})", path=manifest_path,
                                hint="re-export the artifact") from None
        model_file = (root / manifest.file).resolve()
        if root.resolve() not in model_file.parents:
            raise ArtifactError(f"manifest names a file outside the artifact ({manifest.file})",
                                path=manifest_path, hint="do not trust this artifact; re-export")
        if not model_file.exists():
            raise ArtifactError(f"model file {manifest.file} is missing", path=root,
                                hint="re-export the artifact")
        if verify_hash and sha256_path(model_file) != manifest.sha256:
            raise ArtifactError(
                f"sha256 of {manifest.file} does not match the manifest (modified or truncated)",
                path=model_file, hint="re-export the artifact; do not edit files inside it")
        return cls(root, manifest)

    def load_golden(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return load_golden(self.golden_path)

    def golden_kinds(self) -> tuple[str, ...] | None:
        return load_golden_kinds(self.golden_path)

    def golden_exact(self) -> dict[str, np.ndarray]:
        return load_golden_exact(self.golden_path)


def save_golden(path: Path, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                kinds: tuple[str, ...] | None = None,
                exact: dict[str, np.ndarray] | None = None) -> None:
    """Golden inputs, the fp32 reference outputs, what each input is, and (integer-only) the
    outputs the integer reference computes, which a runtime must match bit for bit."""
    arrays = {f"in.{k}": v for k, v in inputs.items()}
    arrays.update({f"out.{k}": v for k, v in outputs.items()})
    arrays.update({f"exact.{k}": v for k, v in (exact or {}).items()})
    if kinds is not None:
        arrays[GOLDEN_KINDS] = np.asarray(kinds, dtype=str)  # unicode, loads without pickle
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def load_golden_kinds(path: Path) -> tuple[str, ...] | None:
    """What each golden input is (data.golden_kinds), or None for an artifact written before
    edgekit recorded it (every input is then judged)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if GOLDEN_KINDS not in data.files:
                return None
            kinds = data[GOLDEN_KINDS]
    except (FileNotFoundError, ValueError, OSError):
        return None  # load_golden reports the file itself
    if kinds.ndim != 1 or kinds.dtype.kind != "U":
        raise ArtifactError("golden.npz holds a malformed input-kind list", path=path,
                            hint="re-export the artifact")
    return tuple(str(k) for k in kinds)


def load_golden_exact(path: Path) -> dict[str, np.ndarray]:
    """The integer reference's outputs on the golden inputs ({} when the artifact has none)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k[6:]: data[k] for k in data.files if k.startswith("exact.")}
    except (FileNotFoundError, ValueError, OSError):
        return {}  # load_golden reports the file itself


def load_golden(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            inputs = {k[3:]: data[k] for k in data.files if k.startswith("in.")}
            outputs = {k[4:]: data[k] for k in data.files if k.startswith("out.")}
    except FileNotFoundError:
        raise ArtifactError("golden.npz is missing", path=path,
                            hint="re-export the artifact") from None
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"golden.npz is unreadable ({exc})", path=path,
                            hint="re-export the artifact") from None
    if not inputs or not outputs:
        raise ArtifactError("golden.npz holds no inputs/outputs", path=path,
                            hint="re-export the artifact")
    return inputs, outputs
