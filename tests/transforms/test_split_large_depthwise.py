"""split_large_depthwise: exact, only where XNNPACK needs it, only for XNNPACK formats."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from edgekit.transforms.split_large_depthwise import (
    MAX_FAST_TAPS,
    BandedDepthwiseConv2d,
    SplitLargeDepthwise,
    column_bands,
)


@pytest.mark.parametrize("kernel", [(7, 7), (9, 9), (11, 11), (6, 6), (7, 5), (3, 13)])
def test_bands_cover_every_column_once_within_the_fast_tap_budget(kernel):
    kh, kw = kernel
    bands = column_bands(kh, kw)
    columns = [c for first, width in bands for c in range(first, first + width)]
    assert columns == list(range(kw))
    assert all(kh * width <= MAX_FAST_TAPS for _, width in bands)


@pytest.mark.parametrize(("k", "stride", "width", "mult", "padding"), [
    (k, s, w, m, p) for k, s, w, m, p in itertools.product(
        (6, 7, 9), (1, 2, 3), (5, 8, 13), (1, 2), (0, 1, 3, 4))
    if w + 2 * p >= k])  # an input at least one kernel wide
def test_banded_conv_equals_the_conv(k, stride, width, mult, padding):
    torch.manual_seed(k * 100 + width)
    conv = nn.Conv2d(4, 4 * mult, k, stride=stride, padding=padding, groups=4)
    x = torch.randn(2, 4, width + 3, width)
    banded = BandedDepthwiseConv2d(conv)
    assert len(banded.bands) > 1
    torch.testing.assert_close(banded(x), conv(x), rtol=1e-5, atol=1e-5)


def test_pass_rewrites_only_large_plain_depthwise_convs():
    class Same(nn.Conv2d):  # a subclass with its own forward (timm's Conv2dSame)
        pass

    model = nn.Sequential(
        nn.Conv2d(8, 8, 7, padding=3, groups=8),  # rewritten
        nn.Conv2d(8, 8, 5, padding=2, groups=8),  # 25 taps: already fast
        nn.Conv2d(8, 8, 7, padding=3),  # dense
        nn.Conv2d(8, 8, 7, padding=6, dilation=2, groups=8),  # dilated
        Same(8, 8, 7, padding=3, groups=8),
        nn.Conv2d(8, 16, 7, stride=2, padding=3, groups=8),  # depth multiplier 2: rewritten
    ).eval()
    x = torch.randn(1, 8, 20, 20)
    before = model(x)
    assert SplitLargeDepthwise()(model, x) == 2
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["BandedDepthwiseConv2d", "Conv2d", "Conv2d", "Conv2d", "Same",
                     "BandedDepthwiseConv2d"]
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)


def test_only_xnnpack_formats_get_the_rewrite(tmp_path):
    from edgekit.pipeline import ExportRequest, export_model
    from tests.conftest import TINY_HYBRID

    outcomes = export_model(ExportRequest(model=TINY_HYBRID, formats=("onnx", "tflite"),
                                          out=tmp_path))
    passes = {o.artifact.manifest.format: {p.name: p.changed for p in o.artifact.manifest.passes}
              for o in outcomes}
    assert passes["tflite"]["split_large_depthwise"] == 1
    assert "split_large_depthwise" not in passes["onnx"]
    for o in outcomes:
        assert o.artifact.manifest.validation.validated is True
    ops = outcomes[1].artifact.manifest.exporter["ops"]
    assert ops.get("DEPTHWISE_CONV_2D", 0) == 3  # 7 columns: bands of 3, 3 and 1
