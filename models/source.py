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


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def source_from_module(model: Any, example_inputs: Any = None) -> ModelSource:
    """A user's own nn.Module as a source: its weights as they are (nothing randomised), the
    input size from `example_inputs` (a tensor, a tuple of one tensor, or a shape) or from a
    timm-style `pretrained_cfg`; the manifest records the class and a hash of the parameters."""
    import copy
    import hashlib
    import re

    import torch

    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"expected a torch.nn.Module or a model name, got {type(model).__name__}",
                         hint="pass an nn.Module, a timm name or 'module:function'")
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    shape = _example_shape(example_inputs)
    if shape is None and "input_size" not in cfg:
        raise UsageError(f"{type(model).__name__} has no pretrained_cfg to say its input size",
                         hint="pass example_inputs=(torch.randn(1, 3, 224, 224),) or a shape")
    data_config = {"input_size": tuple(shape[1:]) if shape else tuple(cfg["input_size"]),
                   "mean": tuple(cfg.get("mean", IMAGENET_MEAN)),
                   "std": tuple(cfg.get("std", IMAGENET_STD)),
                   "crop_pct": cfg.get("crop_pct", 1.0),
                   "interpolation": cfg.get("interpolation", "bilinear")}
    if len(data_config["input_size"]) != 3:
        raise UsageError(f"example input of shape {shape}: edgekit exports image models "
                         "[batch, channels, height, width]")
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    cls = type(model)
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    model = copy.deepcopy(model).eval()  # the deploy passes fold in place: not the user's
    weights = {"kind": "user-module", "class": f"{cls.__module__}.{cls.__qualname__}",
               "parameters_sha256": digest.hexdigest(),
               "tensors": len(model.state_dict()), "family": None}
    return ModelSource(name=name, spec=f"<module {cls.__module__}.{cls.__qualname__}>",
                       model=model, weights=weights, data_config=data_config)


def _example_shape(example: Any) -> tuple[int, ...] | None:
    import torch

    if example is None:
        return None
    if isinstance(example, (tuple, list)) and example and all(isinstance(d, int)
                                                             for d in example):
        return tuple(example)
    if isinstance(example, (tuple, list)):
        if len(example) != 1:
            raise UsageError(f"{len(example)} example inputs: edgekit exports one-input models")
        example = example[0]
    if isinstance(example, torch.Tensor):
        return tuple(example.shape)
    raise UsageError(f"example_inputs of type {type(example).__name__}",
                     hint="a tensor, a tuple of one tensor, or a shape like (1, 3, 224, 224)")
