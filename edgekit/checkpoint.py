"""Loading user weights safely: .safetensors, or torch checkpoints with weights_only=True.

A pickle is never unpickled with arbitrary globals: torch's weights_only unpickler refuses any
`__reduce__` payload, and we report that as an UnsafeCheckpoint instead of executing it.

What users have, all accepted: timm/Hugging Face `model.safetensors` and `pytorch_model.bin`,
training checkpoints (`.pth`/`.pt`/`.ckpt`) that wrap the weights in `state_dict_ema`,
`model_ema`, `state_dict`, `model` or `model_state_dict` (EMA first, as timm loads them),
`module.` (DataParallel/DDP) and `_orig_mod.` (torch.compile) prefixes, and original-repository
checkpoints that timm's own `checkpoint_filter_fn` for the model remaps.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import UnsafeCheckpoint, WeightsError

# Wrappers of a state dict inside a training checkpoint, in the order timm prefers them.
_STATE_DICT_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


@dataclass
class LoadedWeights:
    """What was loaded into the model (for the manifest's `weights`)."""
    tensors: int
    wrapper_key: str | None = None  # e.g. "state_dict_ema"
    stripped_prefixes: list[str] = field(default_factory=list)
    remapped_by: str | None = None  # e.g. "timm.models.levit.checkpoint_filter_fn"

    def to_dict(self) -> dict[str, Any]:
        return {"tensors": self.tensors, "wrapper_key": self.wrapper_key,
                "stripped_prefixes": self.stripped_prefixes, "remapped_by": self.remapped_by}


def read_state_dict(path: Path) -> tuple[dict[str, Any], str | None]:
    """(state dict, the wrapper key it was found under) from a weights file."""
    import torch

    if not path.is_file():
        raise WeightsError("weights file not found", path=path, hint="check the --weights path")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path))), None
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"not a readable .safetensors file ({exc})", path=path,
                               hint="re-save it with safetensors.torch.save_file") from None
    if path.suffix not in TORCH_SUFFIXES:
        raise WeightsError(f"unsupported weights format '{path.suffix}'", path=path,
                           hint="use .safetensors (preferred) or a torch .pt/.pth/.bin "
                                "state dict")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpoint(
            f"refused to unpickle: the checkpoint contains Python objects beyond tensors "
            f"({first[:200]}); nothing in it was executed", path=path,
            hint="convert it to .safetensors on a trusted machine, or save only model.state_dict()",
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"not a readable torch checkpoint ({str(exc)[:200]})", path=path,
                           hint="check the file is complete; prefer .safetensors") from None
    key = None
    if isinstance(obj, dict):
        for candidate in _STATE_DICT_KEYS:
            if isinstance(obj.get(candidate), dict) and obj[candidate]:
                key, obj = candidate, obj[candidate]
                break
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise WeightsError(f"checkpoint holds a {type(obj).__name__}, not a state dict", path=path,
                           hint="save model.state_dict()")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError("checkpoint has no tensors at its top level or under "
                           + "/".join(_STATE_DICT_KEYS), path=path,
                           hint="save model.state_dict()")
    return tensors, key


def _strip_prefixes(state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    stripped = []
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            stripped.append(prefix)
    return state, stripped


def _mismatch(own: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """Every problem of loading `state` strictly, each kind with the keys named."""
    import torch

    def named(keys: list[str], limit: int = 12) -> str:
        more = f", … (+{len(keys) - limit} more)" if len(keys) > limit else ""
        return ", ".join(keys[:limit]) + more

    shapes = [f"{k} (file {tuple(v.shape)} vs model {tuple(own[k].shape)})"
              for k, v in state.items()
              if k in own and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = []
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {named(shapes, 6)}")
    if missing:
        problems.append(f"{len(missing)} missing from the file: {named(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected in the file: {named(unexpected)}")
    return problems


def _timm_filter(model: Any) -> tuple[Any, str] | None:
    """timm's `checkpoint_filter_fn` of the model's module (remaps original-repo checkpoints)."""
    module_name = type(model).__module__
    if not module_name.startswith("timm.models."):
        return None
    fn = getattr(importlib.import_module(module_name), "checkpoint_filter_fn", None)
    return (fn, f"{module_name}.checkpoint_filter_fn") if callable(fn) else None


def load_weights(model: Any, path: Path) -> LoadedWeights:
    """Load a state dict strictly; names every missing, unexpected or mis-shaped tensor."""
    state, key = read_state_dict(path)
    state, stripped = _strip_prefixes(state)
    own = model.state_dict()
    problems = _mismatch(own, state)
    remapped_by = None
    if problems and (remap := _timm_filter(model)) is not None:
        try:
            remapped = remap[0](dict(state), model)
        except Exception:  # noqa: BLE001 - a filter that cannot read this file: report as is
            remapped = None
        if remapped is not None and not _mismatch(own, remapped):
            state, problems, remapped_by = remapped, [], remap[1]
    if problems:
        raise WeightsError("weights do not fit the model: " + " | ".join(problems), path=path,
                           hint="use the checkpoint of exactly this model variant and config "
                                "(timm name, num_classes, img_size)")
    model.load_state_dict(state, strict=True)
    for module in model.modules():  # timm attention-bias caches derive from the parameters
        cache = getattr(module, "attention_bias_cache", None)
        if isinstance(cache, dict):
            cache.clear()
    return LoadedWeights(len(state), key, stripped, remapped_by)
