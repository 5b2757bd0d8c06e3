"""Loading user weights safely: .safetensors, or torch checkpoints with weights_only=True.

A pickle is never unpickled with arbitrary globals: torch's weights_only unpickler refuses any
`__reduce__` payload, and we report that as an UnsafeCheckpoint instead of executing it.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from edgekit.errors import UnsafeCheckpoint, WeightsError

_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema")


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise WeightsError("weights file not found", path=path, hint="check the --weights path")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"not a readable .safetensors file ({exc})", path=path,
                               hint="re-save it with safetensors.torch.save_file") from None
    if path.suffix not in (".pt", ".pth", ".bin", ".ckpt"):
        raise WeightsError(f"unsupported weights format '{path.suffix}'", path=path,
                           hint="use .safetensors (preferred) or a torch .pt/.pth state dict")
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
    if isinstance(obj, dict):
        for key in _STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise WeightsError(f"checkpoint holds a {type(obj).__name__}, not a state dict", path=path,
                           hint="save model.state_dict()")
    return obj


def load_weights(model: Any, path: Path) -> int:
    """Load a state dict strictly; names every missing, unexpected or mis-shaped tensor."""
    import torch

    state = _read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = []
    if mismatched:
        problems.append("shape mismatch " + "; ".join(mismatched[:5]))
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if problems:
        raise WeightsError("weights do not fit the model: " + " | ".join(problems), path=path,
                           hint="use the checkpoint of exactly this model variant and config")
    model.load_state_dict(state, strict=True)
    return len(state)
