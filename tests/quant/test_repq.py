"""RepQ-ViT LayerNorm reparameterization: exact in fp32, evens out per-channel ranges, and
reaches across MobileViT's attention→conv bridge."""

from __future__ import annotations

import torch
from edgekit.models.source import load_source

from edgekit.calibration import calibration_set
from edgekit.quant.repq import reparameterize_layernorms
from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline


def _channel_spread(model, ln_name, x):
    out = {}
    h = model.get_submodule(ln_name).register_forward_hook(
        lambda _m, _i, o: out.setdefault("y", o.detach().reshape(-1, o.shape[-1])))
    with torch.no_grad():
        model(x)
    h.remove()
    y = out["y"]
    span = y.max(0).values.clamp(min=0) - y.min(0).values.clamp(max=0)
    return float(span.max() / span.mean())


def test_mobilevit_layernorms_and_bridges_are_reparameterized_exactly():
    src = load_source("fmnist_mobilevit")
    model = src.model
    cal = calibration_set("fmnist", src.data_config, 32)
    x = torch.from_numpy(cal.samples)
    DeployPipeline(DEFAULT_PASSES).run(model, x[:2])
    with torch.no_grad():
        before = model(x)
    spread_before = _channel_spread(model, "stages.2.1.norm", x)
    info = reparameterize_layernorms(model, cal.samples, x[:1])
    with torch.no_grad():
        after = model(x)
    assert info["layernorms"] == 8 and not info["skipped_not_identity"]
    assert info["bridge_convs"] == ["stages.1.1.conv_proj.conv", "stages.2.1.conv_proj.conv"]
    assert float((after - before).abs().max() / before.abs().max()) < 1e-5
    # the whole point: per-channel ranges become (nearly) equal, so one per-tensor scale fits
    spread_after = _channel_spread(model, "stages.2.1.norm", x)
    assert spread_after < 1.05 < spread_before


def test_models_without_layernorm_are_left_alone():
    src = load_source("fmnist_levit")
    cal = calibration_set("fmnist", src.data_config, 8)
    x = torch.from_numpy(cal.samples)
    DeployPipeline(DEFAULT_PASSES).run(src.model, x[:2])
    assert reparameterize_layernorms(src.model, cal.samples, x[:1]) == {"layernorms": 0}
