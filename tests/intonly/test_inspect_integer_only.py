"""`edgekit inspect --integer-only` on a real integer-only ONNX file and on float ones."""

from __future__ import annotations

import json

import onnx
from click.testing import CliRunner

from edgekit.cli import cli
from edgekit.intonly.graph import to_onnx

from .test_graph import _attention_block


def test_integer_only_file_passes(tmp_path):
    path = tmp_path / "block.onnx"
    onnx.save(to_onnx(_attention_block()), str(path))
    res = CliRunner().invoke(cli, ["inspect", str(path), "--integer-only", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"file": str(path), "integer_only": True, "violations": []}


def test_float_model_fails_naming_its_float_tensors(tiny_artifact):
    res = CliRunner().invoke(cli, ["inspect", str(tiny_artifact), "--integer-only"])
    assert res.exit_code == 3
    assert "float tensor(s) between entry and exit" in res.output
    assert "(Conv " in res.output  # the offending tensor and its node are named
