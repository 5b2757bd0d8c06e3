"""Weights users have: timm/HF files, training-checkpoint wrappers, prefixes, and timm's
pretrained weights from a real on-disk Hugging Face cache (never the network)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from edgekit.models.source import load_source

from edgekit.artifact import sha256_file
from edgekit.errors import WeightsError
from tests.conftest import TINY
from tests.tiny_models import tiny_convnet


def _trained_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    return {k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v
            for k, v in tiny_convnet().state_dict().items()}


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return model(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("layout", ["pytorch_model.bin", "ckpt.pth:state_dict",
                                    "ckpt.pth:model", "ckpt.pth:model_ema+state_dict",
                                    "ddp.pt:module.", "compiled.pth:_orig_mod."])
def test_checkpoint_layouts_load_the_same_weights(tmp_path, layout):
    state = _trained_state()
    name, _, how = layout.partition(":")
    path = tmp_path / name
    if how == "module." or how == "_orig_mod.":
        torch.save({how + k: v for k, v in state.items()}, path)
    elif how == "model_ema+state_dict":  # timm's rule: the EMA weights are the ones to deploy
        torch.save({"state_dict": {k: torch.zeros_like(v) for k, v in state.items()},
                    "model_ema": state, "epoch": 3, "arch": "tiny"}, path)
    elif how:
        torch.save({how: state, "optimizer": {"lr": 0.1}}, path)
    else:
        torch.save(state, path)
    src = load_source(TINY, weights=path)
    want = tiny_convnet()
    want.load_state_dict(state)
    want.eval()
    assert torch.equal(_outputs(src.model), _outputs(want))
    w = src.weights
    assert w["kind"] == "file" and w["sha256"] == sha256_file(path)
    assert w["wrapper_key"] == {"state_dict": "state_dict", "model": "model",
                                "model_ema+state_dict": "model_ema"}.get(how)
    assert w["stripped_prefixes"] == ([how] if how.endswith(".") else [])


def test_unmatched_keys_are_all_named(tmp_path):
    from safetensors.torch import save_file

    state = _trained_state()
    state["head.extra"] = torch.zeros(3)
    del state["stem.0.weight"]
    path = tmp_path / "model.safetensors"
    save_file(state, path)
    with pytest.raises(WeightsError) as err:
        load_source(TINY, weights=path)
    msg = err.value.message
    assert "1 missing from the file: stem.0.weight" in msg
    assert "1 unexpected in the file: head.extra" in msg


def _hf_cache(root: Path, repo: str, filename: str, state: dict[str, torch.Tensor]) -> Path:
    """The layout huggingface_hub writes: blobs, a snapshot per commit, refs/main."""
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / "hub" / f"models--{repo.replace('/', '--')}"
    blob = repo_dir / "blobs" / "weights-blob"
    blob.parent.mkdir(parents=True)
    if filename.endswith(".safetensors"):
        save_file(state, blob)
    else:
        torch.save(state, blob)
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / filename).symlink_to(os.path.relpath(blob, snap))
    (snap / "config.json").write_text(json.dumps({"architecture": repo.split("/")[1]}))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snap / filename


def test_pretrained_comes_from_the_local_hf_cache_like_timm(tmp_path, monkeypatch):
    import timm

    name = "efficientvit_m0"
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id
    torch.manual_seed(3)
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in timm.create_model(name).state_dict().items()}
    cached = _hf_cache(tmp_path, repo, "model.safetensors", state)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    src = load_source(name, pretrained=True)
    w = src.weights
    assert w["kind"] == "pretrained" and w["hf_hub_id"] == repo
    assert w["sha256"] == sha256_file(cached) and w["hub_file"] == "model.safetensors"
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = src.model(x)
    # timm itself, offline, from the same cache, in a fresh interpreter
    ref_path = tmp_path / "timm_out.pt"
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys, torch, timm; m = timm.create_model(sys.argv[1], pretrained=True)"
            ".eval(); x = torch.load(sys.argv[2]);\nwith torch.no_grad(): "
            "torch.save(m(x), sys.argv[3])")
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code, name, str(tmp_path / "x.pt"), str(ref_path)],
                   check=True, env=env, timeout=300)
    assert torch.equal(ours, torch.load(ref_path))


def test_pretrained_with_an_empty_cache_fails_at_once_with_the_path(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty")}
    env.pop("HF_HUB_CACHE", None)
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", "levit_128s",
                          "--pretrained", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.monotonic() - started
    assert res.returncode == 2, res.stderr
    assert "EK102" in res.stderr and str(tmp_path / "empty" / "hub") in res.stderr
    assert "models--timm--levit_128s" in res.stderr and "HF_HOME" in res.stderr
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert not (tmp_path / "out").exists()


def test_pretrained_refuses_ambiguous_sources(tmp_path):
    with pytest.raises(Exception, match="--pretrained and --weights"):
        load_source(TINY, weights=tmp_path / "w.pth", pretrained=True)
    with pytest.raises(Exception, match="has its own"):
        load_source(TINY, pretrained=True)


def test_original_checkpoints_are_remapped_by_timms_filter(tmp_path):
    """Older checkpoints of timm's EfficientViT (MSRA) carry `attention_bias_idxs` buffers the
    model no longer has; timm's checkpoint_filter_fn drops them, and so does --weights."""
    import timm
    from safetensors.torch import save_file

    state = dict(timm.create_model("efficientvit_m0").state_dict())
    biases = [k for k in state if k.endswith("attention_biases")]
    for k in biases:
        state[k.replace("attention_biases", "attention_bias_idxs")] = torch.zeros(4, 4).long()
    path = tmp_path / "old.safetensors"
    save_file(state, path)
    src = load_source("efficientvit_m0", weights=path)
    assert src.weights["remapped_by"] == "timm.models.efficientvit_msra.checkpoint_filter_fn"
    assert src.weights["tensors"] == len(state) - len(biases)
