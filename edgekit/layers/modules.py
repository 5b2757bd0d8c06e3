"""Which PyTorch module every op of an artifact came from: `layers.json`, written at export.

    {"schema": 1, "format": "tflite", "key": "tflite op index",
     "ops": {"17": "stages.0.blocks.1.attn.proj", ...},      # op key -> dotted module path
     "modules": {"stages.0.blocks.1.attn.proj": "Linear", ...},  # source named_modules()
     "deployed_only": [...],  # paths the deploy passes created (not in the source model)
     "resolved": {"metadata": 120, "neighbour": 9, "unresolved": 2}}

The module path is the dotted name of `named_modules()` of the *source* model ("" is the model
itself), so a row of `edgekit profile` or `edgekit diff` names the timm module the user knows.
Each format says where its ops came from differently (ONNX: the dynamo exporter's name scopes
in node metadata; TFLite: litert-torch's location strings in tensor names; ExecuTorch: the
edge program's nn_module_stack per debug handle): LAYER_RECORDERS has one entry per format.
Downstream (profile, diff) reads layers.json and the model file only: no torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError
from edgekit.registry import Registry

LAYERS_NAME = "layers.json"
LAYERS_SCHEMA = 1
MAX_LAYERS_BYTES = 64 << 20  # a layers.json is a few hundred KB; refuse absurd files


@dataclass(frozen=True)
class LayerMap:
    format: str
    key: str  # what an ops key names ("onnx node", "tflite op index", ...)
    ops: dict[str, str]
    modules: dict[str, str]  # source model: dotted path -> class name
    deployed_only: tuple[str, ...] = ()
    resolved: dict[str, int] = field(default_factory=dict)

    def module(self, key: str) -> str | None:
        return self.ops.get(key)

    def in_source(self, path: str | None) -> bool:
        return path is not None and path in self.modules

    def to_json(self) -> str:
        return json.dumps({"schema": LAYERS_SCHEMA, "format": self.format, "key": self.key,
                           "ops": self.ops, "modules": self.modules,
                           "deployed_only": list(self.deployed_only),
                           "resolved": self.resolved}, indent=1)

    def save(self, art_dir: Path) -> None:
        (art_dir / LAYERS_NAME).write_text(self.to_json())

    @classmethod
    def load(cls, art_dir: Path) -> LayerMap | None:
        """The artifact's layers.json, or None when it has none (exported before edgekit
        recorded modules). A malformed file is an error, never a silent empty map."""
        path = art_dir / LAYERS_NAME
        if not path.is_file():
            return None
        hint = "re-export the artifact (edgekit export) to rewrite layers.json"
        if path.stat().st_size > MAX_LAYERS_BYTES:
            raise ArtifactError(f"{LAYERS_NAME} is larger than {MAX_LAYERS_BYTES >> 20} MB",
                                path=path, hint=hint)
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{LAYERS_NAME} is unreadable ({exc})", path=path,
                                hint=hint) from exc
        schema = d.get("schema") if isinstance(d, dict) else None
        if schema != LAYERS_SCHEMA:
            raise ArtifactError(f"{LAYERS_NAME} has schema {schema}, this edgekit reads "
                                f"{LAYERS_SCHEMA}", path=path, hint=hint)
        ops, modules = d.get("ops"), d.get("modules")
        if not (_str_map(ops) and _str_map(modules)):
            raise ArtifactError(f"{LAYERS_NAME}: 'ops' and 'modules' must map strings to "
                                "strings", path=path, hint=hint)
        return cls(str(d.get("format")), str(d.get("key")), ops, modules,
                   tuple(str(p) for p in d.get("deployed_only") or ()),
                   {str(k): int(v) for k, v in (d.get("resolved") or {}).items()})


def _str_map(x: Any) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in x.items())


def module_table(model: Any) -> dict[str, str]:
    """named_modules() of a torch module: dotted path -> class name."""
    return {name: type(m).__name__ for name, m in model.named_modules(remove_duplicate=False)}


def nearest_in(path: str, modules: Collection[str]) -> str:
    """`path`, or its nearest ancestor that is one of `modules` ('' = the model)."""
    parts = path.split(".") if path else []
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return ""


def common_prefix(paths: Iterable[str | None]) -> str | None:
    """The longest common dotted prefix of the known paths (None if none is known)."""
    known = [p.split(".") if p else [] for p in paths if p is not None]
    if not known:
        return None
    out: list[str] = []
    for parts in zip(*known, strict=False):
        if len(set(parts)) != 1:
            break
        out.append(parts[0])
    return ".".join(out)


def fill_from_neighbours(keys: list[str], known: dict[str, str],
                         consumers: dict[str, list[str]], producers: dict[str, list[str]]
                         ) -> dict[str, str]:
    """Ops no location names (ops a converter or runtime made: inlined activations, layout
    transposes, the I/O quantize): the common module of their consumers, else their producer's.
    Returns only the newly filled keys."""
    filled: dict[str, str] = {}
    for direction in (consumers, producers):
        changed = True
        while changed:
            changed = False
            for k in keys:
                if k in known or k in filled:
                    continue
                near = [known.get(n, filled.get(n)) for n in direction.get(k, [])]
                guess = (common_prefix(near) if direction is consumers
                         else next((p for p in near if p is not None), None))
                if guess is not None:
                    filled[k] = guess
                    changed = True
    return filled


# ------------------------------------------------------------------- TFLite (litert-torch)

# litert-torch writes each op's nn_module_stack into its output tensor's name:
# 'pkg.Root/pkg.Cls_attr/pkg.Cls_0;17' (';N' makes names unique; fused ops join locations
# with ';;'); ai-edge-quantizer appends '_int8' / '_f32'; signature I/O is 'serving_default_*'.
_UNIQUIFIER = re.compile(r"^\d*(_(f32|int8|int16|fp16))?$")
_QUANT_SUFFIX = re.compile(r"_(f32|int8|int16|fp16)$")


def litert_locations(tensor_name: str) -> list[str]:
    if tensor_name.startswith(("arith.constant", "serving_default_", "pseudo_qconst")):
        return []
    parts = (_QUANT_SUFFIX.sub("", p) for p in tensor_name.split(";"))
    return [p for p in parts if p and not _UNIQUIFIER.match(p)]


def litert_module(location: str, known: Collection[str]) -> str | None:
    """'timm.models.levit.Levit/torch.nn.modules.container.Sequential_stages/...LevitStage_0'
    -> 'stages.0': each segment below the root is '<qualified class>_<attribute>'; the split
    point is the one whose attribute makes a known module path (attributes have underscores
    too: 'AttentionDownsample_attn_downsample'), else the first underscore."""
    if "<locals>" in location:
        return None  # pt2e's wrapper around the graph: no module
    path = ""
    for seg in location.split("/")[1:]:
        tail = seg.rsplit(".", 1)[-1]
        cuts = [i for i, ch in enumerate(tail) if ch == "_"]
        if not cuts:
            return path or None
        options = [tail[i + 1:] for i in cuts]
        attr = next((a for a in options if _join(path, a) in known), options[0])
        path = _join(path, attr)
    return path


def _join(parent: str, attr: str) -> str:
    return f"{parent}.{attr}" if parent else attr


def tflite_layer_ops(model_file: Path, known: Collection[str]) -> tuple[dict[str, str],
                                                                      dict[str, int]]:
    """{op index: module path} for a .tflite, from its tensor names (the output's first
    location, else a weight's), the rest from graph neighbours."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(model_file),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001 - the op list (index, name, tensor ids)
    keys = [str(o["index"]) for o in ops]
    made = {int(t) for o in ops for t in o["outputs"]}
    found: dict[str, str] = {}
    for k, o in zip(keys, ops, strict=True):
        # the output's location, else a weight's (the last op's output is renamed to the
        # signature's, its weights keep the module's name), never the activation it reads
        weights = [t for t in o["inputs"] if int(t) not in made]
        for tensor in [*o["outputs"], *weights]:
            locs = litert_locations(names.get(int(tensor), "")) if tensor >= 0 else []
            path = next((p for p in (litert_module(loc, known) for loc in locs)
                         if p is not None), None)
            if path is not None:
                found[k] = path
                break
    producer = {int(t): k for k, o in zip(keys, ops, strict=True) for t in o["outputs"]}
    consumers: dict[str, list[str]] = {}
    producers: dict[str, list[str]] = {}
    for k, o in zip(keys, ops, strict=True):
        for t in o["inputs"]:
            if int(t) in producer:
                consumers.setdefault(producer[int(t)], []).append(k)
                producers.setdefault(k, []).append(producer[int(t)])
    filled = fill_from_neighbours(keys, found, consumers, producers)
    return ({**found, **filled},
            {"location": len(found), "neighbour": len(filled),
             "unresolved": len(keys) - len(found) - len(filled)})


# ------------------------------------------------------------------------------- recorders

@dataclass(frozen=True)
class LayerRecorder:
    """Per format: `snapshot(file)` right after conversion (before a rewrite such as ONNX
    quantization drops the exporter's metadata), `record(file, snapshot, known)` on the final
    file -> ({op key: module path}, resolution counts)."""

    key: str
    record: Callable[[Path, Any, Collection[str]], tuple[dict[str, str], dict[str, int]]]
    snapshot: Callable[[Path], Any] = lambda file: None


LAYER_RECORDERS: Registry[LayerRecorder] = Registry("layer recorder")
LAYER_RECORDERS.register("tflite", LayerRecorder(
    "tflite op index", lambda file, snap, known: tflite_layer_ops(file, known)))
LAYER_RECORDERS.register("onnx", "edgekit.layers.onnx_graph:RECORDER")
