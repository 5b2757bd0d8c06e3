import timm
import torch

from edgekit.transforms.broadcast_linear_attention import BroadcastLinearAttention
from tests.transforms.helpers import live


def test_mobilevitv2_attention_is_bit_identical_without_expand():
    model = live(timm.create_model("mobilevitv2_050"))
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        before = model(x)
        assert BroadcastLinearAttention()(model, x) == 9
        after = model(x)
    assert torch.equal(before, after)
    from edgekit.transforms.graph import GraphView

    ops = {GraphView.op(n) for n in GraphView(model, x).nodes}
    assert "expand" not in ops and "expand_as" not in ops
