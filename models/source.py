"""Where a model comes from: a timm name of a supported family or `module:function`."""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.models.families import family_of, supported_models

from edgekit.artifact import sha256_file
from edgekit.checkpoint import load_weights
from edgekit.errors import ModelNotFound, UsageError

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class ModelSource:
    name: str  # used in artifact names
    spec: str  # what the user asked for
    model: Any  # torch.nn.Module, eval mode
    weights: dict[str, Any]
    data_config: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.data_config["input_size"])  # type: ignore[return-value]


def _resolve_data_config(model: Any) -> dict[str, Any]:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def _create_timm(name: str) -> Any:
    import timm

    known = supported_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
        hint = (f"did you mean {', '.join(close)}?" if close else
                "run `edgekit models` for the list, or pass module:function for your own model")
        if timm.is_model(name):
            raise ModelNotFound(f"'{name}' is a timm model outside the supported families",
                                hint=hint)
        raise ModelNotFound(f"unknown model '{name}'", hint=hint)
    return timm.create_model(name, pretrained=False)


def _create_factory(spec: str) -> tuple[str, Any]:
    import torch

    module_name, _, fn_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelNotFound(f"cannot import module '{module_name}' ({exc})",
                            hint="check PYTHONPATH and the module:function spelling") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ModelNotFound(f"module '{module_name}' has no function '{fn_name}'",
                            hint="pass module:function where function() returns an nn.Module")
    model = fn()
    if not isinstance(model, torch.nn.Module):
        raise ModelNotFound(f"{spec} returned {type(model).__name__}, not a torch.nn.Module",
                            hint="make the function return the model")
    return fn_name, model


def load_source(spec: str, *, weights: Path | None = None, seed: int = 0) -> ModelSource:
    """Build the model in eval mode with user weights, or live random weights."""
    import torch
    from edgekit.models import fmnist
    from edgekit.models.live_weights import make_live

    if fmnist.is_small_config(spec):
        return _load_small_config(spec, weights)
    if ":" in spec and not _FACTORY.match(spec):
        raise UsageError(f"'{spec}' is neither a timm name nor module:function",
                         hint="e.g. `efficientformer_l1` or `mypkg.nets:build_model`")
    # Seed the constructor's init too, so "live-random" weights are reproducible from
    # (model, seed, timm version) alone, without shipping them.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        name, model = _create_factory(spec) if ":" in spec else (spec, _create_timm(spec))
    if weights is not None:
        n = load_weights(model, Path(weights))
        info: dict[str, Any] = {"kind": "file", "path": str(Path(weights).resolve()),
                                "sha256": sha256_file(Path(weights)), "tensors": n}
    else:
        n = make_live(model, seed=seed)
        info = {"kind": "live-random", "seed": seed, "perturbed_tensors": n,
                "note": "torch.manual_seed(seed) init, then every norm scale/shift, running "
                        "statistic, layer scale and attention bias perturbed so no block "
                        "folds away"}
    model.eval()
    fam = family_of(name) if ":" not in spec else None
    info["family"] = fam.name if fam else None
    if weights is None and fam is not None and fam.live_bn_from_data:
        from edgekit.models.live_weights import batchnorm_stats_from_data

        size = tuple(_resolve_data_config(model)["input_size"])
        info["batchnorm_stats_from_data"] = batchnorm_stats_from_data(model, size, seed=seed)
        info["note"] += "; BatchNorm running statistics then set from a seeded data pass"
    return ModelSource(name=name, spec=spec, model=model, weights=info,
                       data_config=_resolve_data_config(model))


def _load_small_config(spec: str, weights: Path | None) -> ModelSource:
    """A Fashion-MNIST small config with its trained checkpoint (or the user's --weights)."""
    from edgekit.models import fmnist

    from edgekit.errors import WeightsError

    cfg = fmnist.SMALL_CONFIGS.get(spec)
    model = fmnist.build(cfg)
    path = Path(weights) if weights is not None else cfg.checkpoint
    if weights is None and not path.is_file():
        raise WeightsError(f"{spec} has no trained checkpoint", path=path,
                           hint=f"train it: python bench/train_fmnist.py {spec}")
    n = load_weights(model, path)
    info: dict[str, Any] = {"kind": "trained-fmnist" if weights is None else "file",
                            "path": str(path.resolve()), "sha256": sha256_file(path),
                            "tensors": n, "family": cfg.family,
                            "training": fmnist.training_record(cfg) if weights is None else None}
    model.eval()
    return ModelSource(name=spec, spec=spec, model=model, weights=info,
                       data_config=cfg.data_config)
