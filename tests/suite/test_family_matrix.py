"""Registry-driven matrix: the smallest member of every family exports to ONNX, validates in
onnxruntime, and is profiled and diffed layer by layer on every run; every other registered
format is `slow` (make test-all, and the README matrix from bench/format_matrix.py), as are the
largest members."""

import pytest
from edgekit.models.families import FAMILIES

from edgekit.exporter import EXPORTERS
from edgekit.pipeline import IMPLEMENTED_QUANTS, ExportRequest, export_model

SMALLEST = [FAMILIES.get(f).smallest for f in FAMILIES.list()]
LARGEST = ["efficientformer_l7", "levit_384", "fastvit_sa36", "mobilevit_s", "repvit_m2_3",
           "mobileone_s4", "efficientvit_b3", "nextvit_base"]
FORMATS = [f for f in EXPORTERS.list() if "fp32" in IMPLEMENTED_QUANTS.get(f, ())]
OTHER_FORMATS = [f for f in FORMATS if f != "onnx"]


def _export_and_check(model, fmt, tmp_path, **request):
    (outcome,) = export_model(ExportRequest(model=model, formats=(fmt,), out=tmp_path,
                                            n_golden=4, **request))
    v = outcome.validation
    assert v is not None
    assert v.validated is not False, f"{model} {fmt}: {v.reason}"
    if v.validated is True:
        assert v.cosine >= 0.9999 and v.top1_agreement == 1.0
    if fmt == "onnx":  # the ORT format beside it, validated in onnxruntime on the same inputs
        ort = v.files["model.ort"]
        assert ort["validated"] is True and ort["cosine"] >= 0.9999, ort
        assert (outcome.artifact.path / "model.required_operators_and_types.config").is_file()
    if fmt in ("onnx", "tflite"):
        _profile_and_diff(outcome.artifact.path)
    return v


def _profile_and_diff(path):
    """`edgekit profile` ties ≥ 90 % of the time to modules of the timm model, and `edgekit
    diff` finds the fp32 artifact equal to timm at every layer it compares."""
    from edgekit.layers.diff import diff_artifact
    from edgekit.layers.profile import profile_artifact

    p = profile_artifact(path, runs=3, warmup=1, threads=1)
    assert p["module_coverage"] >= 0.9, (path.name, p["module_coverage"])
    d = diff_artifact(path)
    assert d["compared"] >= 10 and d["first_below"] is None, (path.name, d["first_below"])


@pytest.mark.parametrize("model", SMALLEST)
def test_smallest_of_every_family_onnx(model, tmp_path):
    _export_and_check(model, "onnx", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", OTHER_FORMATS)
@pytest.mark.parametrize("model", SMALLEST)
def test_smallest_of_every_family_other_formats(model, fmt, tmp_path):
    _export_and_check(model, fmt, tmp_path)


# ExecuTorch's lowering narrows torch.export's batch range [1, 4] to [2, 3] for this model
NARROWED_BY_EXECUTORCH = {("efficientvit_m0", "executorch")}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "executorch"])
@pytest.mark.parametrize("model", SMALLEST)
def test_smallest_of_every_family_dynamic_batch(model, fmt, tmp_path):
    if (model, fmt) in NARROWED_BY_EXECUTORCH:  # refused at export, with the range it kept
        from edgekit.errors import ExportError

        with pytest.raises(ExportError, match=r"kept the batch as \[2, 3\]"):
            _export_and_check(model, fmt, tmp_path, dynamic_batch=4)
        return
    v = _export_and_check(model, fmt, tmp_path, dynamic_batch=4)
    assert v.batches["1"]["validated"] is True and v.batches["4"]["validated"] is True


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", LARGEST)
def test_large_members(model, fmt, tmp_path):
    _export_and_check(model, fmt, tmp_path)


INT8_FORMATS = [f for f in EXPORTERS.list() if "int8" in IMPLEMENTED_QUANTS.get(f, ())]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", INT8_FORMATS)
@pytest.mark.parametrize("model", SMALLEST)
def test_smallest_of_every_family_int8(model, fmt, tmp_path):
    """int8 of live-weight models (calibrated on the built-in photos) exports and validates
    (cosine ≥ 0.98 worst-case, top-1 agreement ≥ 90 % vs timm fp32), or is structure-checked."""
    from edgekit.quant.config import QuantConfig

    (outcome,) = export_model(ExportRequest(model=model, formats=(fmt,), out=tmp_path,
                                            quant="int8", n_golden=4,
                                            quant_config=QuantConfig(calib_n=16)))
    v = outcome.validation
    assert v is not None and v.validated is not False, f"{model} {fmt} int8: {v.reason}"
