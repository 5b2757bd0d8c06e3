import torch
from edgekit.models.live_weights import make_live


def live(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    make_live(model, seed)
    return model.eval()


def max_rel_change(before: torch.Tensor, after: torch.Tensor) -> float:
    return float((before - after).abs().max().detach() / before.abs().max().detach())
