"""The precision ladder as registry recipes: every mode × format is a recipe or a refusal the
CLI gives before anything is written; the pipeline has no per-mode branches."""

import ast
import inspect

import pytest
from click.testing import CliRunner

from edgekit import pipeline
from edgekit.cli import cli
from edgekit.errors import UsageError
from edgekit.quant.config import QuantConfig
from edgekit.quant.modes import MODES
from edgekit.quant.recipes import RECIPES, WHY_NOT, implemented, recipe_for
from edgekit.validate import THRESHOLDS

TARGETS = ("onnx", "tflite", "executorch", "coreml")
TINY = "tests.tiny_models:tiny_hybrid"


@pytest.mark.parametrize("fmt", TARGETS)
@pytest.mark.parametrize("mode", list(MODES))
def test_every_cell_is_a_recipe_or_a_reason(mode, fmt):
    if f"{mode}/{fmt}" in RECIPES:
        recipe = recipe_for(mode, fmt)
        assert recipe.mode == mode and recipe.format == fmt
        assert recipe.how
    else:
        assert WHY_NOT.get((fmt, mode)), f"{mode}/{fmt}: neither a recipe nor a reason"
        with pytest.raises(UsageError) as info:
            recipe_for(mode, fmt)
        assert WHY_NOT[(fmt, mode)] in info.value.message
        assert ", ".join(implemented(fmt)) in (info.value.hint or "")


def test_the_ladder_is_implemented_where_the_issue_asks():
    for mode in ("fp16", "w8"):
        assert {"onnx", "tflite", "executorch", "coreml"} <= {
            f for f in TARGETS if mode in implemented(f)}
    assert {"onnx", "tflite"} <= {f for f in TARGETS if "w8a16" in implemented(f)}
    assert pipeline.IMPLEMENTED_QUANTS["ekr"] == ("int-only",)


def test_validation_thresholds_follow_the_modes():
    assert THRESHOLDS["fp16"]["cosine"] == 0.999
    assert THRESHOLDS["w8"]["cosine"] == 0.999
    assert THRESHOLDS["w8a16"]["cosine"] == 0.995
    assert MODES["w8a16"].calibrated and not MODES["w8"].calibrated


@pytest.mark.parametrize("fmt", ["coreml", "executorch"])
def test_cli_refuses_w8a16_with_the_reason_and_writes_nothing(tmp_path, fmt):
    res = CliRunner().invoke(cli, ["export", TINY, "--to", fmt, "--quant", "w8a16",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert WHY_NOT[(fmt, "w8a16")][:40] in res.output.replace("\n", " ")
    assert not list(tmp_path.iterdir())


def test_calibration_options_are_refused_for_uncalibrated_modes(tmp_path):
    res = CliRunner().invoke(cli, ["export", TINY, "--to", "onnx", "--quant", "w8",
                                   "--calib-n", "16", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "calibrated modes" in res.output and "w8a16, int8, int-only" in res.output


def test_mixed_is_validated():
    assert QuantConfig(mixed="int16").mixed == "int16"
    with pytest.raises(UsageError, match="--mixed"):
        QuantConfig(mixed="bf16")


def _mode_literals(fn):
    """String constants naming a mode that a function compares against (==, !=, in)."""
    tree = ast.parse(inspect.getsource(fn))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for part in (node.left, *node.comparators):
                for const in ast.walk(part):
                    if isinstance(const, ast.Constant) and const.value in MODES:
                        found.append(const.value)
    return found


@pytest.mark.parametrize("fn", [pipeline.export_model, pipeline._export_format])
def test_the_pipeline_has_no_per_mode_branches(fn):
    assert _mode_literals(fn) == []
    assert "req.quant ==" not in inspect.getsource(fn)
