"""Exporter-level rewrites found by the family × format matrix."""

import timm
import torch
from edgekit.exporters.coreml import _drop_aliases
from edgekit.exporters.executorch import _softmax_after_conv
from torch import nn

from tests.transforms.helpers import live


def _export(model, x):
    return torch.export.export(model.eval(), (x,), strict=False)


def test_softmax_after_conv_is_detected():
    class TalkingHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.th = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.th(x).softmax(dim=-1)

    assert _softmax_after_conv(_export(TalkingHeads(), torch.randn(1, 4, 8, 8)))
    levit = live(timm.create_model("levit_128s"))
    assert not _softmax_after_conv(_export(levit, torch.randn(1, 3, 224, 224)))


def test_alias_nodes_are_removed_without_changing_the_program():
    class Aliased(nn.Module):
        def forward(self, x):
            return torch.ops.aten.alias(x) * 2 + 1

    x = torch.randn(2, 3)
    ep = _export(Aliased(), x).run_decompositions({})
    assert any("alias" in str(n.target) for n in ep.graph.nodes)
    ep = _drop_aliases(ep)
    assert not any("alias" in str(n.target) for n in ep.graph.nodes)
    assert torch.equal(ep.module()(x), x * 2 + 1)
