import numpy as np
import pytest
from edgekit.exporters.tflite import TFLiteExporter

from edgekit.artifact import Artifact
from edgekit.errors import ArtifactError
from edgekit.inspect import inspect_path
from edgekit.pipeline import ExportRequest, export_model
from tests.conftest import TINY


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_tiny_tflite_validates_in_litert(tmp_path, layout):
    (o,) = export_model(ExportRequest(model=TINY, formats=("tflite",), out=tmp_path,
                                      layout=layout))
    m = o.artifact.manifest
    assert m.validation.validated is True and m.validation.cosine >= 0.99999
    want = (1, 3, 32, 32) if layout == "nchw" else (1, 32, 32, 3)
    assert m.inputs[0].shape == want and m.inputs[0].layout == layout.upper()
    inputs, _ = o.artifact.load_golden()
    assert next(iter(inputs.values())).shape[1:] == want[1:]
    d = m.exporter["delegation"]
    assert d["total"] > 0 and 0 < d["share"] <= 1 and d["delegate"].startswith("XNNPACK")
    info = inspect_path(o.artifact.path)
    assert info["ops"].get("CONV_2D", 0) == 2 and info["params"] > 1000


def test_sniff_rejects_foreign_files(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError, match="not a TFLite file"):
        TFLiteExporter.sniff(bad)
    with pytest.raises(ArtifactError):
        inspect_path(bad)


def test_nhwc_only_where_supported(tmp_path):
    from edgekit.errors import UsageError

    with pytest.raises(UsageError, match="--layout nhwc"):
        export_model(ExportRequest(model=TINY, formats=("onnx",), out=tmp_path, layout="nhwc"))


def test_truncated_tflite_is_refused(tmp_path):
    (o,) = export_model(ExportRequest(model=TINY, formats=("tflite",), out=tmp_path))
    path = Artifact.open(o.artifact.path).model_path
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(Exception) as info:
        inspect_path(cut)
    assert type(info.value).__name__ in ("ArtifactError", "RuntimeCrash")
    assert np.isfinite(o.artifact.manifest.validation.cosine)
