"""TFLite fp16 / w8 / w8a16 (exporters/tflite_precision.py) on the tiny hybrid model (7×7
depthwise conv, hardswish, an attention matmul): what each file stores, run in ai-edge-litert
against the fp32 file, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgekit.exporters.tflite_integer import op_histogram
from edgekit.exporters.tflite_precision import (
    W8_RECIPE,
    export_precision,
    fp32_constants,
    quantize_tflite,
    weight_types,
)

from edgekit.errors import ExportError, UsageError
from tests.conftest import TINY_HYBRID, exported_once


@pytest.fixture(scope="session")
def fp32_tflite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny hybrid model's fp32 .tflite (litert-torch), its golden inputs (photos + noise)
    and 16 calibration photos."""

    def export(out: Path) -> dict[str, Path]:
        import torch
        from edgekit.exporters.tflite import TFLiteExporter
        from edgekit.models.source import load_source

        from edgekit.calibration import calibration_set
        from edgekit.data import golden_inputs
        from edgekit.exporter import ExportOptions

        src = load_source(TINY_HYBRID)
        golden = golden_inputs(src.data_config, 8, seed=0)
        calib = calibration_set("photos", src.data_config, 16).samples
        np.save(out / "golden.npy", golden)
        np.save(out / "calib.npy", calib)
        TFLiteExporter().export(src.model, torch.from_numpy(golden[:1]), ExportOptions(), out)
        return {"fp32": out / "model.tflite", "golden": out / "golden.npy",
                "calib": out / "calib.npy"}

    return exported_once(tmp_path_factory, "tflite-precision", export)


def _run(path: Path, x: np.ndarray, xnnpack: bool = True) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.AUTO if xnnpack
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32  # fp32 I/O kept
    ys = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None].astype(np.float32))
        interp.invoke()
        ys.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(ys)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.fixture(scope="session")
def reference(fp32_tflite: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    golden = np.load(fp32_tflite["golden"])
    return golden, _run(fp32_tflite["fp32"], golden)


def test_fp16_stores_half_weights_and_xnnpack_computes_in_fp32(fp32_tflite, reference,
                                                               tmp_path):
    golden, ref = reference
    out = tmp_path / "fp16.tflite"
    details = quantize_tflite(fp32_tflite["fp32"], out, "fp16")
    weights = weight_types(out)
    assert weights == {"CONV_2D": {"FLOAT16": 2}, "DEPTHWISE_CONV_2D": {"FLOAT16": 1},
                       "FULLY_CONNECTED": {"FLOAT16": 3}}  # the 4th FC is attn @ v
    assert details["weights"] == weights and details["io"]["inputs"] == ["float32"]
    assert op_histogram(out)["DEQUANTIZE"] == 6  # one per fp16 weight
    # what FLOAT_CASTING cannot cast stays fp32 and is listed: biases, the attention scale
    assert set(details["fp32_constants"]) == {"CONV_2D", "DEPTHWISE_CONV_2D",
                                              "FULLY_CONNECTED", "MUL"}
    assert details["fp32_constants"] == fp32_constants(out)
    assert out.stat().st_size < 0.6 * fp32_tflite["fp32"].stat().st_size
    y = _run(out, golden)
    assert _min_cosine(y, ref) >= 0.99999
    # XNNPACK unpacks the fp16 weights and computes in fp32: it matches TFLite's builtin fp32
    # kernels on the same file to float rounding (fp16 arithmetic would be ~1e-3 off)
    builtin = _run(out, golden, xnnpack=False)
    assert np.abs(y - builtin).max() <= 1e-5 * np.abs(builtin).max()
    assert details["xnnpack"]["compute"] == "fp32"
    assert details["xnnpack"]["reduced_precision_support"] is False


def test_w8_default_is_weight_only_int8(fp32_tflite, reference, tmp_path):
    golden, ref = reference
    out = tmp_path / "w8.tflite"
    details = quantize_tflite(fp32_tflite["fp32"], out, "w8")
    assert details["quantizer_recipe"] == W8_RECIPE == "weight_only_wi8_afp32"
    assert weight_types(out) == {"CONV_2D": {"INT8": 2}, "DEPTHWISE_CONV_2D": {"INT8": 1},
                                 "FULLY_CONNECTED": {"INT8": 3}}
    assert op_histogram(out)["DEQUANTIZE"] == 6  # int8 weight → DEQUANTIZE → fp32 op
    assert out.stat().st_size < 0.4 * fp32_tflite["fp32"].stat().st_size
    assert _min_cosine(_run(out, golden), ref) >= 0.999


def test_w8_dynamic_range_keeps_int8_weights_in_the_ops(fp32_tflite, reference, tmp_path):
    from edgekit.exporters.tflite import delegation

    golden, ref = reference
    out = tmp_path / "w8dyn.tflite"
    details = quantize_tflite(fp32_tflite["fp32"], out, "w8", w8_recipe="dynamic_wi8_afp32")
    assert "DEQUANTIZE" not in op_histogram(out)  # the ops read int8 weights themselves
    assert weight_types(out)["FULLY_CONNECTED"] == {"INT8": 3}
    assert details["why"] == "chosen by the caller"
    assert _min_cosine(_run(out, golden), ref) >= 0.999
    # one reason it is not the default: XNNPACK has no dynamic-range depthwise conv
    assert delegation(out)["not_delegated"].get("DEPTHWISE_CONV_2D") == 1


def test_w8a16_int16_activations_int8_weights_fp32_io(fp32_tflite, reference, tmp_path):
    from edgekit.exporters.tflite import delegation
    from edgekit.exporters.tflite_integer import _Flatbuffer

    golden, ref = reference
    out = tmp_path / "w8a16.tflite"
    steps: list[str] = []
    details = quantize_tflite(fp32_tflite["fp32"], out, "w8a16", np.load(fp32_tflite["calib"]),
                              steps.append)
    assert any("calibrating" in s and "16 samples" in s for s in steps)
    assert weight_types(out) == {"CONV_2D": {"INT8": 2}, "DEPTHWISE_CONV_2D": {"INT8": 1},
                                 "FULLY_CONNECTED": {"INT8": 3}}
    fb = _Flatbuffer(out)
    ops = fb.sg.operators
    assert fb.op_name(ops[0]) == "QUANTIZE" and fb.op_name(ops[-1]) == "DEQUANTIZE"
    assert fb.type_name(ops[0].outputs[0]) == "INT16"
    conv = next(op for op in ops if fb.op_name(op) == "CONV_2D")
    assert [fb.type_name(t) for t in conv.inputs] == ["INT16", "INT8", "INT64"]  # 16x8
    assert details["activations"]["int16"] > 20 and details["fp32_constants"] == {}
    # HARD_SWISH is not in the 16x8 op list: the one op left float, between DEQUANTIZE and QUANTIZE
    assert details["float_ops"] == ["HARD_SWISH"]
    assert details["ranges"].startswith("per-sample extremes, percentiles 10/90")
    assert _min_cosine(_run(out, golden), ref) >= 0.995
    # XNNPACK has no int16 kernels: it takes the two float HARD_SWISH islands and nothing else
    d = delegation(out)
    assert d["delegated"] == 2 and d["partitions"] == 2
    assert d["not_delegated"]["FULLY_CONNECTED"] == 4


def test_refusals_are_usage_errors_before_any_work(fp32_tflite, tmp_path):
    out = tmp_path / "never.tflite"
    with pytest.raises(UsageError, match="int8"):
        quantize_tflite(fp32_tflite["fp32"], out, "int8")
    with pytest.raises(UsageError, match="calibration samples"):
        quantize_tflite(fp32_tflite["fp32"], out, "w8a16")
    with pytest.raises(UsageError, match="entropy"):
        quantize_tflite(fp32_tflite["fp32"], out, "w8a16", np.load(fp32_tflite["calib"]),
                        method="entropy")
    with pytest.raises(UsageError, match="w8 recipe"):
        quantize_tflite(fp32_tflite["fp32"], out, "w8", w8_recipe="dynamic_wi4_afp32")
    assert not out.exists()


def test_quantizer_failures_and_weightless_models_are_export_errors(fp32_tflite, tmp_path):
    import torch
    from edgekit.exporters.tflite import TFLiteExporter

    from edgekit.exporter import ExportOptions

    broken = tmp_path / "broken.tflite"
    good = fp32_tflite["fp32"].read_bytes()
    broken.write_bytes(good[:8] + b"\0" * 64)
    with pytest.raises(ExportError, match="ai-edge-quantizer could not quantize") as err:
        quantize_tflite(broken, tmp_path / "out.tflite", "fp16")
    assert err.value.hint

    class NoWeights(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.hardswish(x).mean((2, 3))

    TFLiteExporter().export(NoWeights().eval(), torch.randn(1, 3, 8, 8), ExportOptions(),
                            tmp_path)
    with pytest.raises(ExportError, match="quantized no weight to float16"):
        quantize_tflite(tmp_path / "model.tflite", tmp_path / "out.tflite", "fp16")


def test_export_precision_nhwc_w8a16_end_to_end(tmp_path):
    import torch
    from edgekit.models.source import load_source

    from edgekit.calibration import calibration_set
    from edgekit.exporter import ExportOptions

    src = load_source(TINY_HYBRID)
    samples = calibration_set("photos", src.data_config, 8).samples  # NCHW, as the pipeline
    steps: list[str] = []
    result = export_precision(src.model, torch.from_numpy(samples[:1]), samples,
                              ExportOptions(layout="nhwc"), tmp_path, "w8a16", steps.append)
    assert result.file == "model.tflite" and (tmp_path / "model.tflite").exists()
    (inp,), (out,) = result.inputs, result.outputs
    assert inp.dtype == "float32" and inp.layout == "NHWC" and tuple(inp.shape) == (1, 32, 32, 3)
    assert out.dtype == "float32" and tuple(out.shape) == (1, 10)
    precision = result.details["precision"]
    assert precision["mode"] == "w8a16" and precision["calibration_samples"] == 8
    assert result.details["delegation"]["delegated"] == 2
    assert result.versions["ai-edge-quantizer"]
    assert steps[0].startswith("converting the fp32 TFLite file")
    with torch.no_grad():
        want = src.model(torch.from_numpy(samples)).numpy()
    got = _run(tmp_path / "model.tflite", np.ascontiguousarray(samples.transpose(0, 2, 3, 1)))
    assert _min_cosine(got, want) >= 0.995
