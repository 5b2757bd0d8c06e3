from __future__ import annotations

from pathlib import Path

import pytest

SMALL = "fmnist_levit"  # a trained Fashion-MNIST config: int8 accuracy means something on it
INT8_FORMATS = ("onnx", "tflite", "executorch", "coreml")


@pytest.fixture(scope="session")
def int8_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fmnist_levit exported --quant int8 to all four formats once per session."""
    from edgekit.pipeline import ExportRequest, export_model
    from edgekit.quant.config import QuantConfig
    from tests.conftest import exported_once

    def export(out: Path) -> dict[str, Path]:
        outcomes = export_model(ExportRequest(model=SMALL, formats=INT8_FORMATS, quant="int8",
                                              out=out, quant_config=QuantConfig(calib_n=32)))
        return {o.artifact.manifest.format: o.artifact.path for o in outcomes}

    return exported_once(tmp_path_factory, "int8", export)
