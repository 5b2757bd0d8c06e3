import torch
from torch import nn

from edgekit.exporter import EXPORTERS
from edgekit.support import check_model
from tests.tiny_models import tiny_convnet


def test_tiny_model_is_supported_everywhere():
    model = tiny_convnet().eval()
    results = check_model(model, torch.randn(1, 3, 32, 32), EXPORTERS.list())
    assert [r.format for r in results] == EXPORTERS.list()
    for r in results:
        assert r.ok, (r.format, r.unsupported)
        assert r.ops.get("conv2d", 0) + r.ops.get("convolution", 0) == 2, (r.format, r.ops)
    et = next(r for r in results if r.format == "executorch")
    assert "mean" in "".join(et.fallback)  # global mean pool runs on portable kernels


@torch.library.custom_op("edgekit_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@mystery.register_fake
def _(x):
    return torch.empty_like(x)


class UsesMystery(nn.Module):
    """A model with an operator no converter has ever heard of."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return mystery(self.fc(x))


def test_unsupported_ops_are_named_per_target():
    results = {r.format: r for r in check_model(UsesMystery().eval(), torch.randn(1, 8),
                                                EXPORTERS.list())}
    for fmt in ("onnx", "tflite", "coreml"):
        assert not results[fmt].ok and "mystery" in results[fmt].unsupported, results[fmt]
    assert "mystery" in results["executorch"].fallback


def test_export_failure_names_the_op_and_target(tmp_path, monkeypatch):
    import sys
    import types

    import pytest

    from edgekit.errors import ExportError
    from edgekit.pipeline import ExportRequest, export_model

    module = types.ModuleType("edgekit_test_models")
    module.build = lambda: UsesMysteryImage()
    monkeypatch.setitem(sys.modules, "edgekit_test_models", module)
    with pytest.raises(ExportError) as info:
        export_model(ExportRequest(model="edgekit_test_models:build", formats=("onnx",),
                                   out=tmp_path))
    assert "mystery" in str(info.value) and "onnx" in str(info.value)
    assert not (tmp_path / "build.fp32.onnx").exists()


class UsesMysteryImage(nn.Module):
    def __init__(self):
        super().__init__()
        self.pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                               "crop_pct": 1.0, "interpolation": "bilinear"}
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return mystery(self.conv(x)).mean((2, 3))
