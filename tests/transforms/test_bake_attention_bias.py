import timm
import torch

from edgekit.transforms.bake_attention_bias import BakeAttentionBias
from edgekit.transforms.graph import GraphView
from tests.transforms.helpers import live, max_rel_change


def _index_ops(model, x):
    return [n for n in GraphView(model, x).nodes if GraphView.op(n) in ("index", "gather")]


def test_levit_bias_gather_becomes_a_constant():
    model = live(timm.create_model("levit_128s"))
    x = torch.randn(1, 3, 224, 224)
    assert _index_ops(model, x), "timm LeViT gathers its attention biases"
    for m in model.modules():  # timm caches the gathered biases in eval: start clean
        if isinstance(getattr(m, "attention_bias_cache", None), dict):
            m.attention_bias_cache.clear()
    before = model(x)
    assert BakeAttentionBias()(model, x) == 11
    assert max_rel_change(before, model(x)) < 1e-6
    assert not _index_ops(model, x)
    # The graph now reads the baked constant, not the table.
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "attention_biases"):
                m.attention_biases.zero_()
    assert max_rel_change(before, model(x)) < 1e-6
