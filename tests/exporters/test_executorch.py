from edgekit.inspect import inspect_path
from edgekit.pipeline import ExportRequest, export_model
from tests.conftest import TINY


def test_tiny_executorch_validates_and_records_delegation(tmp_path):
    (o,) = export_model(ExportRequest(model=TINY, formats=("executorch",), out=tmp_path))
    m = o.artifact.manifest
    assert m.file == "model.pte"
    assert m.validation.validated is True and m.validation.cosine >= 0.99999
    d = m.exporter["delegation"]
    assert d["delegated"] > 0 and d["total"] >= d["delegated"] and d["partitions"] >= 1
    assert "getitem" not in d["not_delegated"]
    info = inspect_path(o.artifact.path)
    assert info["ops"].get("delegate:XnnpackBackend", 0) == d["partitions"]
    assert info["inputs"][0]["shape"] == [1, 3, 32, 32] and info["inputs"][0]["dtype"] == "float32"
