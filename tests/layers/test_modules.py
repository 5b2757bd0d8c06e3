"""layers.json: litert-torch location strings and ONNX Runtime's renames back to module paths,
and a malformed layers.json refused."""

from __future__ import annotations

import json

import pytest

from edgekit.errors import ArtifactError
from edgekit.layers.modules import (
    LAYERS_NAME,
    LayerMap,
    common_prefix,
    fill_from_neighbours,
    litert_locations,
    litert_module,
    nearest_in,
)
from edgekit.layers.onnx_graph import name_variants

KNOWN = {"", "stem", "stem.conv1", "stages", "stages.1", "stages.1.downsample",
         "stages.1.downsample.attn_downsample", "stages.1.downsample.attn_downsample.kv",
         "stages.1.blocks", "stages.1.blocks.0", "stages.1.blocks.0.mlp",
         "stages.1.blocks.0.mlp.ln2", "attn", "attn_downsample"}
ROOT = "timm.models.levit.Levit"


@pytest.mark.parametrize(("location", "path"), [
    (f"{ROOT}/timm.models.levit.Stem16_stem/torch.nn.modules.conv.Conv2d_conv1", "stem.conv1"),
    # attributes with underscores: the split is the one that names a known module
    (f"{ROOT}/torch.nn.modules.container.Sequential_stages/timm.models.levit.LevitStage_1/"
     "timm.models.levit.LevitDownsample_downsample/"
     "timm.models.levit.AttentionDownsample_attn_downsample/torch.nn.modules.linear.Linear_kv",
     "stages.1.downsample.attn_downsample.kv"),
    (ROOT, ""),  # an op of the model's own forward (the head's mean)
])
def test_litert_location_resolves_to_the_module_path(location, path):
    assert litert_module(location, KNOWN) == path


def test_litert_location_of_pt2e_wrapper_has_no_module():
    loc = ("torch.export._trace._non_strict_export.<locals>._tuplify_outputs.<locals>."
           "_aot_export_non_strict.<locals>.Wrapper")
    assert litert_module(loc, KNOWN) is None


def test_tensor_names_split_into_locations():
    a = f"{ROOT}/torch.nn.modules.container.Sequential_stages/timm.models.levit.LevitStage_1"
    b = a + "/torch.nn.modules.container.Sequential_blocks"
    assert litert_locations(f"{a};;{b};17") == [a, b]  # a fused op: both, first is the op's
    assert litert_locations(f"{a};3_int8") == [a]  # the quantizer's suffix
    assert litert_locations("serving_default_output_0_output") == []
    assert litert_locations("arith.constant12") == []


def test_a_module_the_passes_made_is_named_by_its_source_ancestor():
    assert nearest_in("stem.conv1", KNOWN) == "stem.conv1"
    assert nearest_in("stages.1.blocks.0.mlp.reparam_conv", KNOWN) == "stages.1.blocks.0.mlp"
    assert nearest_in("made_up.x", KNOWN) == ""


def test_common_prefix_and_neighbours():
    assert common_prefix(["a.b.c", "a.b.d", None]) == "a.b"
    assert common_prefix(["a.b", "c"]) == ""
    assert common_prefix([None]) is None
    # op 'x' (unlocated) feeds 'y' and 'z' in the same block: it takes their common module
    filled = fill_from_neighbours(["x", "y", "z", "w"], {"y": "s.0.a", "z": "s.0.b"},
                                  consumers={"x": ["y", "z"]}, producers={"w": ["z"]})
    assert filled == {"x": "s.0", "w": "s.0.b"}


@pytest.mark.parametrize(("name", "original"), [
    ("node_MatMul_6/MatMulAddFusion", "node_MatMul_6"),
    ("conv2d_1_nchwc", "conv2d_1"),
    ("val_3_QuantizeLinear", "val_3"),
    ("x_DequantizeLinear/duplicated", "x"),
    ("node_conv2d_token_4", "node_conv2d"),
])
def test_onnx_runtime_renames_are_undone(name, original):
    assert original in name_variants(name)
    assert name_variants(name)[0] == name


def test_missing_layers_json_is_none_and_a_malformed_one_an_error(tmp_path):
    assert LayerMap.load(tmp_path) is None
    (tmp_path / LAYERS_NAME).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        LayerMap.load(tmp_path)
    (tmp_path / LAYERS_NAME).write_text(json.dumps({"schema": 99}))
    with pytest.raises(ArtifactError, match="schema 99"):
        LayerMap.load(tmp_path)
    (tmp_path / LAYERS_NAME).write_text(json.dumps({"schema": 1, "ops": {"0": 3},
                                                    "modules": {}}))
    with pytest.raises(ArtifactError, match="map strings to strings"):
        LayerMap.load(tmp_path)
    good = LayerMap("onnx", "onnx node", {"n0": "stem"}, {"stem": "Stem16", "": "Levit"})
    good.save(tmp_path)
    assert LayerMap.load(tmp_path) == good
