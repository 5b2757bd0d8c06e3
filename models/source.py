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
from edgekit.errors import ModelNotFound, UsageError, WeightsError

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
    base, _, tag = name.partition(".")
    if tag and base in known:  # a pretrained tag (levit_128s.fb_dist_in1k): same architecture
        if timm.models.get_pretrained_cfg(name) is None:
            tags = timm.list_pretrained(f"{base}.*")
            raise ModelNotFound(f"timm has no pretrained tag '{name}'",
                                hint="tags of this model: " + (", ".join(tags) or "none"))
        return timm.create_model(name, pretrained=False)
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


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache as huggingface_hub resolves it, read from the environment at
    call time: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


# What timm reads from a timm/… hub repository, preferred first (timm prefers safetensors).
_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def pretrained_file(name: str) -> tuple[Path, dict[str, Any]]:
    """The cached file of timm's pretrained weights for `name` (a timm name, optionally with
    its tag), found in the local Hugging Face cache only — never the network: with nothing
    cached it fails at once with the directory it looked in and how to fill it."""
    cache = hf_hub_cache()
    base = name.partition(".")[0]
    pattern = f"models--timm--{name if '.' in name else base + '.*'}"
    if not any(cache.glob(pattern)):  # a certain miss, answered before importing torch/timm
        raise WeightsError(
            f"no cached pretrained weights for '{name}': edgekit reads the local Hugging Face "
            f"cache only and {cache} has no {pattern}", path=cache,
            hint=f"on a machine with network run timm.create_model('{name}', pretrained=True) "
                 f"(or `hf download timm/<{base}.tag>`), then copy its models--timm--… folder "
                 f"into {cache}, or point HF_HOME/HF_HUB_CACHE at a cache that has it")
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise WeightsError(f"timm publishes no pretrained weights for '{name}' on the hub",
                           hint="pass --weights FILE, or drop --pretrained for live weights")
    repo, _, revision = cfg.hf_hub_id.partition("@")
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_FILES
    for filename in files:
        found = try_to_load_from_cache(repo, filename, cache_dir=str(cache),
                                       revision=revision or None)
        if isinstance(found, str):
            return Path(found), {"hf_hub_id": cfg.hf_hub_id, "tag": cfg.tag,
                                 "hub_file": filename}
    looked = cache / f"models--{repo.replace('/', '--')}"
    raise WeightsError(
        f"no cached pretrained weights for '{name}' ({repo}: {' or '.join(files)}); edgekit "
        f"reads the local Hugging Face cache only and looked in {looked}", path=looked,
        hint=f"on a machine with network run `hf download {repo}` (or "
             f"timm.create_model('{name}', pretrained=True)), then copy "
             f"{looked.name} into {cache} here, or point HF_HOME/HF_HUB_CACHE at a cache "
             "that has it")


def load_source(spec: str, *, weights: Path | None = None, seed: int = 0,
                pretrained: bool = False) -> ModelSource:
    """Build the model in eval mode with user weights, timm's pretrained weights from the local
    Hugging Face cache, or live random weights."""
    import torch
    from edgekit.models import fmnist
    from edgekit.models.live_weights import make_live

    if pretrained and weights is not None:
        raise UsageError("--pretrained and --weights both say where the weights come from",
                         hint="pass one of them")
    if pretrained and (":" in spec or fmnist.is_small_config(spec)):
        raise UsageError(f"--pretrained loads timm's published weights; {spec} has its own",
                         hint="drop --pretrained, or pass --weights FILE")
    if fmnist.is_small_config(spec):
        return _load_small_config(spec, weights)
    if ":" in spec and not _FACTORY.match(spec):
        raise UsageError(f"'{spec}' is neither a timm name nor module:function",
                         hint="e.g. `efficientformer_l1` or `mypkg.nets:build_model`")
    if pretrained:  # the cache is looked up first: a miss fails before building the model
        path, hub = pretrained_file(spec)
    # Seed the constructor's init too, so "live-random" weights are reproducible from
    # (model, seed, timm version) alone, without shipping them.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        name, model = _create_factory(spec) if ":" in spec else (spec.partition(".")[0],
                                                                        _create_timm(spec))
    if pretrained:
        loaded = _load_pretrained(model, spec, path)
        info: dict[str, Any] = {"kind": "pretrained", **hub, "path": str(path),
                                "sha256": sha256_file(path), "tensors": loaded}
    elif weights is not None:
        loaded_file = load_weights(model, Path(weights))
        info = {"kind": "file", "path": str(Path(weights).resolve()),
                "sha256": sha256_file(Path(weights)), **loaded_file.to_dict()}
    else:
        n = make_live(model, seed=seed)
        info = {"kind": "live-random", "seed": seed, "perturbed_tensors": n,
                "note": "torch.manual_seed(seed) init, then every norm scale/shift, running "
                        "statistic, layer scale and attention bias perturbed so no block "
                        "folds away"}
    model.eval()
    fam = family_of(name.partition(".")[0]) if ":" not in spec else None
    info["family"] = fam.name if fam else None
    if info["kind"] == "live-random" and fam is not None and fam.live_bn_from_data:
        from edgekit.models.live_weights import batchnorm_stats_from_data

        size = tuple(_resolve_data_config(model)["input_size"])
        info["batchnorm_stats_from_data"] = batchnorm_stats_from_data(model, size, seed=seed)
        info["note"] += "; BatchNorm running statistics then set from a seeded data pass"
    return ModelSource(name=name, spec=spec, model=model, weights=info,
                       data_config=_resolve_data_config(model))


def _load_pretrained(model: Any, name: str, path: Path) -> int:
    """Load the cached file the way timm.create_model(name, pretrained=True) does (its
    checkpoint filter and classifier handling), by pointing timm's pretrained config at it."""
    import timm

    try:
        loaded = timm.create_model(name, pretrained=True,
                                   pretrained_cfg_overlay={"file": str(path)})
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"timm could not load the cached pretrained weights ({exc})",
                           path=path, hint="the cache entry may be incomplete: download it "
                                           "again") from None
    state = loaded.state_dict()
    model.load_state_dict(state, strict=True)
    return len(state)


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
    n = load_weights(model, path).tensors
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
