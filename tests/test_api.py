"""The Python API (edgekit/api.py): the README's example on a user nn.Module and on a model name,
manifests identical to the CLI's, and `import edgekit` staying cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import edgekit
from edgekit.cli import cli
from edgekit.errors import UsageError

TINY = "tests.tiny_models:tiny_convnet"


class MyNet(nn.Module):
    """A user's own module: conv-BN-ReLU, pooled, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def test_the_readme_example_on_a_user_module(tmp_path):
    torch.manual_seed(0)
    model = MyNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    arts = edgekit.export(model, example_inputs=(torch.randn(1, 3, 32, 32),),
                          to=("onnx", "tflite"), out=tmp_path)
    assert [a.manifest.format for a in arts] == ["onnx", "tflite"]
    assert all(a.manifest.validation.validated is True for a in arts)
    w = arts[0].manifest.weights
    assert w["kind"] == "user-module" and w["class"].endswith("MyNet")
    assert len(w["parameters_sha256"]) == 64
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    a = edgekit.load(arts[0].path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(a.run(x), want, atol=1e-4)
    assert a.validate().validated is True
    r = a.bench(runs=5, warmup=1, min_seconds=0.05, rounds=2)
    assert r.median_ms and r.median_ms > 0 and r.runtime == "onnxruntime"
    (support,) = edgekit.check(model, example_inputs=(1, 3, 32, 32), to="onnx")
    assert support.format == "onnx" and not support.unsupported


def test_api_and_cli_write_the_same_manifest(tmp_path):
    (api_art,) = edgekit.export(TINY, to="onnx", out=tmp_path / "api")
    res = CliRunner().invoke(cli, ["export", TINY, "--to", "onnx", "--out",
                                   str(tmp_path / "cli"), "--json"])
    assert res.exit_code == 0, res.output
    cli_manifest = json.loads((tmp_path / "cli" / api_art.path.name / "manifest.json")
                              .read_text())
    api_manifest = json.loads((api_art.path / "manifest.json").read_text())
    for m in (cli_manifest, api_manifest):
        m.pop("created")
        # onnxruntime's ORT-format writer lays its opset table out from a hash map: the same
        # model serializes to different bytes run to run (same size, same operators)
        (ort,) = m["exporter"]["companions"]
        assert len(ort.pop("sha256")) == 64
    assert api_manifest == cli_manifest


def test_bad_api_input_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="input size"):
        edgekit.export(MyNet(), out=tmp_path)  # no example_inputs, no pretrained_cfg
    with pytest.raises(UsageError, match="unknown export option"):
        edgekit.export(TINY, out=tmp_path, colour="red")
    with pytest.raises(UsageError, match="one-input"):
        edgekit.export(MyNet(), example_inputs=(torch.zeros(1), torch.zeros(1)), out=tmp_path)


def test_importing_edgekit_stays_cheap():
    code = ("import sys, edgekit; assert 'torch' not in sys.modules and 'numpy' not in "
            "sys.modules, sorted(sys.modules); assert callable(edgekit.export)")
    subprocess.run([sys.executable, "-c", code], check=True)
