"""int8 on degenerate tensors: zero / constant / near-constant / non-finite ranges, on every
target × every calibration method it offers (registry-driven), plus the rules themselves.

`make test` runs the matrix on `all_degenerate` (every degenerate pattern in one model, so each
target × method is one export) and the softmax that crashed ONNX Runtime's histogram alone;
`make test-all` runs each pattern alone on every target × method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.quant.config import QuantConfig
from edgekit.quant.ranges import classify_range, safe_range, scan_non_finite
from edgekit.quant.targets import QUANTIZERS
from edgekit.validate import THRESHOLDS
from tests.quant import degenerate_models

MODELS = "tests.quant.degenerate_models"


def _methods_by_format() -> dict[str, tuple[str, ...]]:
    return {fmt: QUANTIZERS.get(fmt).methods for fmt in QUANTIZERS.list()}


def _method_groups() -> dict[str, tuple[str, ...]]:
    """method -> the formats that offer it (one export_model call each)."""
    groups: dict[str, list[str]] = {}
    for fmt, methods in _methods_by_format().items():
        for m in methods:
            groups.setdefault(m, []).append(fmt)
    return {m: tuple(f) for m, f in groups.items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory):
    """Each degenerate model's own state dict as a checkpoint (what a user would pass)."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("degenerate-weights")

    def make(name: str) -> Path:
        path = root / f"{name}.safetensors"
        if not path.exists():
            torch.manual_seed(0)
            model = getattr(degenerate_models, name)()
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return path

    return make


def _export(name: str, formats: tuple[str, ...], method: str, weights_path: Path, out: Path):
    from edgekit.pipeline import ExportRequest, export_model

    return export_model(ExportRequest(
        model=f"{MODELS}:{name}", formats=formats, quant="int8", out=out, weights=weights_path,
        n_golden=32,  # top-1 agreement over 32 inputs: one near-tie cannot fail it alone
        quant_config=QuantConfig(calib_n=32, calib_method=method, plan="all")))


def _check(outcome, method: str) -> None:
    m = outcome.artifact.manifest
    v = m.validation
    assert v is not None and v.validated is not False, (m.format, method, v)
    if v.validated is True:  # Core ML on Linux: structure only
        assert v.cosine >= THRESHOLDS["int8"]["cosine"], (m.format, method, v)
    q = m.exporter["quantization"]
    assert q["calib_method"] == method
    reasons = q["float_reasons"]
    assert set(q["float_sites"]) <= set(reasons), (m.format, q["float_sites"], reasons)
    assert all(isinstance(r, str) and r for r in reasons.values())
    assert "ranges" in q and "findings" in q["ranges"]


# minmax is the only group with Core ML (its quantizer offers minmax only): ~8 min here, so it
# runs in make test-all, as do mse and entropy (ONNX only); make test keeps percentile, the
# group with three targets (onnx, tflite, executorch).
SLOW_METHODS = ("minmax", "mse", "entropy")


@pytest.mark.parametrize("method", [
    pytest.param(m, marks=pytest.mark.slow) if m in SLOW_METHODS else m
    for m in sorted(_method_groups())])
def test_every_target_and_method_survives_every_degenerate_pattern(method, weights, tmp_path):
    formats = _method_groups()[method]
    outcomes = _export("all_degenerate", formats, method, weights("all_degenerate"), tmp_path)
    assert [o.artifact.manifest.format for o in outcomes] == list(formats)
    for o in outcomes:
        _check(o, method)
        q = o.artifact.manifest.exporter["quantization"]
        kinds = {f["kind"] for f in q["ranges"]["findings"]}
        # ORT calibrates the pruned conv's zero output and the 1/N softmax rows (the tensor
        # that crashed its histogram); which tensors a PT2E quantizer observes is its own
        # annotation, and fusions (conv+add) may leave none of the degenerate ones observed.
        if o.artifact.manifest.format == "onnx":
            assert {"zero", "near-constant"} <= kinds, kinds


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(degenerate_models.BODIES))
def test_onnx_histogram_calibration_survives_each_pattern(name, weights, tmp_path):
    for method in QUANTIZERS.get("onnx").methods:
        (o,) = _export(name, ("onnx",), method, weights(name), tmp_path / method)
        _check(o, method)


def test_the_softmax_that_crashed_ort_is_recorded_with_its_module(weights, tmp_path):
    (o,) = _export("identical_logits_softmax", ("onnx",), "percentile",
                   weights("identical_logits_softmax"), tmp_path)
    findings = o.artifact.manifest.exporter["quantization"]["ranges"]["findings"]
    soft = [f for f in findings if f["tensor"].startswith("softmax")]
    assert soft and soft[0]["kind"] == "near-constant" and soft[0]["module"] == "body"
    assert 1 / 64 - 1e-6 < soft[0]["low"] <= soft[0]["high"] < 1 / 64 + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(degenerate_models.BODIES))
@pytest.mark.parametrize("method", sorted(_method_groups()))
def test_each_pattern_on_every_target_and_method(name, method, weights, tmp_path):
    formats = _method_groups()[method]
    for o in _export(name, formats, method, weights(name), tmp_path):
        _check(o, method)


# ---- the rules -----------------------------------------------------------------------------

@pytest.mark.parametrize(("low", "high", "kind"), [
    (0.0, 0.0, "zero"), (-1e-35, 1e-36, "zero"), (0.25, 0.25, "constant"),
    (-3.0, -3.0, "constant"), (0.06249999, 0.0625, "near-constant"), (-1.0, 1.0, None),
    (0.0, 1e-20, None), (float("nan"), 1.0, "non-finite"), (0.0, float("inf"), "non-finite"),
])
def test_classify_range(low, high, kind):
    assert classify_range(low, high) == kind


@pytest.mark.parametrize("c", [0.25, -3.0, 1e-6, 7.5])
def test_a_constant_range_makes_the_constant_an_exact_uint8_level(c):
    lo, hi = safe_range(c, c)
    scale = (hi - lo) / 255.0
    zero_point = round(-lo / scale)
    q = np.clip(np.round(np.float32(c) / scale) + zero_point, 0, 255)
    assert abs((q - zero_point) * scale - c) <= 1e-6 * abs(c)


class _InfInside(torch.nn.Module):
    """A causal attention mask of -inf (finite after the softmax) and, with `nan_out`, an
    output that is NaN for every input (0 · inf)."""

    def __init__(self, nan_out: bool = False) -> None:
        super().__init__()
        self.pretrained_cfg = dict(degenerate_models.CFG)
        self.conv = torch.nn.Conv2d(3, 8, 4, 4)
        self.head = torch.nn.Linear(8, 4)
        self.nan_out = nan_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)  # (B, 64, 8)
        scores = t @ t.transpose(1, 2)
        mask = torch.ones(64, 64, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        y = self.head((scores.softmax(-1) @ t).mean(1))
        return y * (scores.min() * 0) if self.nan_out else y  # -inf · 0 = NaN


def inf_inside() -> torch.nn.Module:
    return _InfInside()


def nan_output() -> torch.nn.Module:
    return _InfInside(nan_out=True)


def test_scan_names_the_first_non_finite_tensor_and_its_module():
    model = _InfInside().eval()
    scan = scan_non_finite(model, np.random.default_rng(0).normal(
        size=(4, 3, 32, 32)).astype(np.float32))
    assert not scan.output_non_finite and scan.sample == 0
    first = scan.findings[0]
    assert first.kind == "non-finite" and first.low == float("-inf")
    assert "masked_fill" in (first.op or "") and first.module == "<model>"


def test_nan_from_the_model_itself_is_an_error_naming_tensor_and_module(tmp_path):
    from edgekit.calibration import CalibrationError
    from edgekit.pipeline import ExportRequest, export_model

    with pytest.raises(CalibrationError) as info:
        export_model(ExportRequest(model="tests.quant.test_degenerate_ranges:nan_output",
                                   formats=("onnx",), quant="int8", out=tmp_path,
                                   quant_config=QuantConfig(calib_n=16)))
    msg = str(info.value)
    assert "the fp32 model itself produces NaN/Inf" in msg and "masked_fill" in msg, msg
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", ["tflite", "executorch"])
def test_pt2e_keeps_an_inf_tensor_float_and_says_why(fmt, tmp_path):
    from edgekit.pipeline import ExportRequest, export_model

    (o,) = export_model(ExportRequest(model="tests.quant.test_degenerate_ranges:inf_inside",
                                      formats=(fmt,), quant="int8", out=tmp_path,
                                      quant_config=QuantConfig(calib_n=16, plan="all")))
    m = o.artifact.manifest
    assert m.validation is not None and m.validation.validated is True, m.validation
    q = m.exporter["quantization"]
    assert "masked_fill" in q["non_finite_fp32"][0]["op"]
    non_finite = [f for f in q["ranges"]["findings"] if f["kind"] == "non-finite"]
    if non_finite:  # the target observed the masked scores: they stay float, with a reason
        assert any("non-finite" in r for r in q["float_reasons"].values()), q["float_reasons"]


def test_one_failing_format_keeps_the_others_and_exits_non_zero(tmp_path):
    """logcumsumexp has an ONNX lowering and no litert-torch one."""
    import json

    from click.testing import CliRunner

    from edgekit.cli import cli

    result = CliRunner().invoke(cli, ["export", "tests.quant.test_degenerate_ranges:logcumsum",
                                      "--to", "onnx,tflite", "--out", str(tmp_path), "--json"])
    assert result.exit_code != 0
    rows = json.loads(result.stdout)
    by_format = {r["format"]: r for r in rows}
    assert by_format["onnx"]["ok"] is True and by_format["onnx"]["validated"] is True
    assert by_format["tflite"]["ok"] is False and "logcumsumexp" in json.dumps(
        by_format["tflite"]["error"])
    assert (tmp_path / "logcumsum.fp32.onnx" / "manifest.json").exists()
    assert not (tmp_path / "logcumsum.fp32.tflite").exists()


class _LogCumSum(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pretrained_cfg = dict(degenerate_models.CFG)
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logcumsumexp(self.conv(x), -1).mean((2, 3))


def logcumsum() -> torch.nn.Module:
    return _LogCumSum()


@pytest.mark.parametrize("name", ["zero_residual_branch", "zero_weight_conv",
                                  "zero_param_added", "identical_logits_softmax"])
def test_integer_only_converts_zero_and_near_constant_tensors(name, weights, tmp_path):
    """Zero weights / a branch scaled to 0 / a 1e-6 softmax input used to crash the
    integer-only converter (ratio 0, shift out of range, shift-exp scale); the 1e-6 softmax
    then summed its uniform rows to 1/32 (Σ exp saturated int32) and every row's floor lost
    attention mass. Now each validates at the integer-only thresholds."""
    from edgekit.pipeline import ExportRequest, export_model

    (o,) = export_model(ExportRequest(model=f"{MODELS}:{name}", formats=("onnx",),
                                      quant="int-only", out=tmp_path, weights=weights(name),
                                      quant_config=QuantConfig(calib_n=16)))
    v = o.artifact.manifest.validation
    assert v is not None and v.validated is True, v
    assert v.cosine >= THRESHOLDS["int-only"]["cosine"], v


def _checkpoint(state: dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _export_int8_checks(name: str, weights: Path, method: str, formats: tuple[str, ...],
                        out: Path) -> None:
    from edgekit.pipeline import ExportRequest, export_model

    outcomes = export_model(ExportRequest(model=name, formats=formats, quant="int8", out=out,
                                          weights=weights,
                                          quant_config=QuantConfig(calib_method=method)))
    for o in outcomes:
        v = o.artifact.manifest.validation
        assert v is not None and v.validated is True and v.cosine >= 0.99, (
            o.artifact.manifest.format, v)
        assert v.judged_inputs is not None and v.cosine_noise is not None


@pytest.mark.slow
@pytest.mark.parametrize(("name", "method"), [
    ("levit_128s", "auto"), ("levit_128s", "minmax"), ("levit_128s", "percentile"),
    ("efficientformer_l1", "auto")])
def test_full_size_checkpoints_with_zero_attention_biases_export_int8(name, method, tmp_path):
    """The issue's checkpoint: non-degenerate weights whose attention biases are zero, as
    timm.create_model leaves them (edgekit's live init perturbs them, which is why the suite
    never saw the crash): onnx, tflite and executorch with the defaults (and LeViT with the two
    methods every target offers), each validated in its runtime at cosine ≥ 0.99 vs the fp32
    model on the photos (the noise inputs are reported)."""
    from edgekit.models.source import load_source

    state = load_source(name).model.state_dict()
    biases = [k for k in state if "attention_bias" in k and "idx" not in k]
    assert biases, f"{name} has no attention biases: the test lost its point"
    for k in biases:
        state[k] = torch.zeros_like(state[k])
    _export_int8_checks(name, _checkpoint(state, tmp_path / f"{name}.safetensors"), method,
                        ("onnx", "tflite", "executorch"), tmp_path / "out")


@pytest.mark.slow
def test_timms_untrained_init_exports_int8_onnx(tmp_path):
    """timm.create_model's whole init, untrained: besides the zero attention biases, every
    residual branch ends in a BatchNorm of weight 0, so the logits come from the stem and the
    head alone. ONNX Runtime's int8 holds 0.99 on it (minmax: 0.991, percentile: 0.995); the
    PT2E targets reach 0.88 (their sensitivity search runs out of its quarter-of-the-sites
    budget at hold-out 0.946), an open finding of issue 13, not asserted here."""
    import timm

    torch.manual_seed(0)
    state = timm.create_model("levit_128s", pretrained=False).state_dict()
    zero = [k for k, v in state.items() if "attention_bias" in k and not v.abs().max()]
    assert zero, "timm's init no longer leaves zero attention biases: the test lost its point"
    _export_int8_checks("levit_128s", _checkpoint(state, tmp_path / "levit.safetensors"),
                        "auto", ("onnx",), tmp_path / "out")
