import platform

import pytest
from edgekit.exporters.coreml import CoreMLExporter

from edgekit.artifact import Artifact, TensorSpec
from edgekit.inspect import inspect_path
from edgekit.pipeline import ExportRequest, export_model
from edgekit.validate import STRUCTURE_ONLY, validate_artifact
from tests.conftest import TINY


@pytest.fixture(scope="module")
def coreml_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml")
    (o,) = export_model(ExportRequest(model=TINY, formats=("coreml",), out=out))
    return o.artifact


def test_package_structure_checked_on_linux(coreml_artifact):
    m = coreml_artifact.manifest
    assert m.file == "model.mlpackage" and (coreml_artifact.model_path / "Manifest.json").exists()
    assert m.exporter["frontend"] in ("torch.export", "jit.trace")
    assert m.exporter["compute_precision"] == "fp32"
    assert m.inputs[0].name == "input" and m.outputs[0].name == "logits"
    if platform.system() != "Darwin":
        assert m.validation.validated == STRUCTURE_ONLY and m.validation.reason == ""
    info = inspect_path(coreml_artifact.path)
    assert info["ops"].get("conv", 0) == 2 and "CoreML" in info["opsets"][0]


def test_structural_check_catches_spec_mismatch(coreml_artifact):
    m = coreml_artifact.manifest
    wrong = (TensorSpec("input", (1, 3, 64, 64), "float32"),)
    problem = CoreMLExporter.verify_structure(coreml_artifact.model_path, wrong, m.outputs,
                                              "iOS17")
    assert "inputs" in problem and "64" in problem
    too_old = CoreMLExporter.verify_structure(coreml_artifact.model_path, m.inputs, m.outputs,
                                              "iOS15")
    assert "specification version" in too_old


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML prediction needs macOS")
def test_real_prediction_on_macos(coreml_artifact):
    report = validate_artifact(Artifact.open(coreml_artifact.path))
    assert report.validated is True and report.cosine >= 0.9999
