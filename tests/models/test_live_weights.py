import timm
import torch
from edgekit.models.live_weights import make_live
from torch import nn


def _constant(t: torch.Tensor) -> bool:
    return bool((t == t.flatten()[0]).all())


def test_every_norm_and_scale_is_perturbed_deterministically():
    a = timm.create_model("efficientformer_l1")
    b = timm.create_model("efficientformer_l1")
    b.load_state_dict(a.state_dict())
    assert make_live(a, seed=3) == make_live(b, seed=3) > 100
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    for name, module in a.named_modules():
        if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
            assert not _constant(module.weight), name
        if isinstance(module, nn.BatchNorm2d):
            assert not _constant(module.running_var), name
    gammas = [p for n, p in a.named_parameters() if n.endswith("gamma")]
    assert gammas and all(p.min() >= 0.2 for p in gammas)  # no 1e-5 LayerScale left


def test_levit_residual_branches_are_live():
    """Default init zeroes LeViT's residual BN gammas: blocks would fold away."""
    model = timm.create_model("levit_128s")
    zero_init = [m for m in model.modules()
                 if isinstance(m, nn.BatchNorm1d) and float(m.weight.detach().abs().max()) == 0]
    assert zero_init, "timm's init zeroes some residual-branch BN scales"
    make_live(model)
    assert all(float(m.weight.detach().abs().min()) >= 0.5 for m in zero_init)
    biases = [p for n, p in model.named_parameters() if n.endswith("attention_biases")]
    assert biases and all(p.abs().max() > 0 for p in biases)


def test_plain_bn_chains_get_their_statistics_from_data():
    """MobileOne is a plain conv-BN-ReLU chain: perturbed running statistics that do not match
    the inputs compound block after block (logits 4.7e16); its family re-estimates them."""
    from edgekit.models.live_weights import batchnorm_stats_from_data
    from edgekit.models.source import load_source

    src = load_source("mobileone_s0")
    assert src.weights["batchnorm_stats_from_data"] > 100
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = src.model(x)
    assert torch.isfinite(y).all() and 0.01 < float(y.std()) < 10, float(y.std())
    # the perturbed gammas/betas are kept: only the statistics moved, and deterministically
    gammas = [m.weight.clone() for m in src.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert gammas and not all(_constant(g) for g in gammas)
    again = load_source("mobileone_s0").model
    with torch.no_grad():
        assert torch.equal(again(x), y)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    net[1].running_var.fill_(1e-6)
    assert batchnorm_stats_from_data(net, (3, 16, 16)) == 1 and not net.training
    assert float(net[1].running_var.min()) > 1e-3 and net[1].momentum == 0.1
