"""`--quant int-only --finetune-steps N --data fmnist`: a short quantization-aware fine-tune."""

from __future__ import annotations

import pytest

from edgekit.accuracy import evaluate_artifact
from edgekit.errors import UsageError
from edgekit.pipeline import ExportRequest, export_model

MODEL = "fmnist_levit"


def test_finetune_is_recorded_validated_against_the_tuned_model_and_keeps_top1(tmp_path):
    from edgekit.models.fmnist import SMALL_CONFIGS, evaluate_torch
    from edgekit.models.source import load_source

    (o,) = export_model(ExportRequest(model=MODEL, formats=("onnx",), quant="int-only",
                                      out=tmp_path, finetune_steps=30, finetune_data="fmnist"))
    m = o.artifact.manifest
    tuned = m.exporter["quantization"]["finetune"]
    assert tuned["steps"] == 30 and tuned["data"] == "fmnist" and tuned["tensors_updated"] > 10
    assert tuned["loss_first_10pct"] > 0 and tuned["loss_last_10pct"] > 0
    assert m.validation.validated is True, m.validation.reason
    fp32 = 100 * evaluate_torch(load_source(MODEL).model, SMALL_CONFIGS.get(MODEL), limit=1000)
    assert abs(evaluate_artifact(o.artifact.path, limit=1000).top1 - fp32) <= 1.0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"finetune_steps": 10}, "needs --data"),
    ({"finetune_steps": 10, "finetune_data": "fmnist", "quant": "int8"}, "int-only"),
    ({"finetune_steps": -1, "finetune_data": "fmnist"}, "out of range"),
])
def test_bad_finetune_requests_are_refused_before_anything_is_written(tmp_path, kwargs, match):
    req = {"model": MODEL, "formats": ("onnx",), "quant": "int-only", "out": tmp_path, **kwargs}
    with pytest.raises(UsageError, match=match):
        export_model(ExportRequest(**req))
    assert not any(tmp_path.iterdir())


def test_finetune_refuses_a_model_not_trained_on_the_data(tmp_path):
    from tests.conftest import TINY

    with pytest.raises(UsageError, match="not trained on fmnist"):
        export_model(ExportRequest(model=TINY, formats=("onnx",), quant="int-only", out=tmp_path,
                                   finetune_steps=5, finetune_data="fmnist"))
    assert not any(p.name.endswith(".onnx") for p in tmp_path.iterdir())
