import pytest
from edgekit.models.families import FAMILIES, family_of, supported_models
from edgekit.models.source import load_source

from edgekit.errors import ModelNotFound, UsageError


def test_families_cover_the_product_list():
    expected = {"efficientformer", "efficientformerv2", "levit", "levit_conv", "fastvit",
                "mobilevit", "mobilevitv2", "efficientvit_msra", "efficientvit_mit", "repvit",
                "mobileone", "nextvit"}
    assert set(FAMILIES.list()) == expected
    names = supported_models()
    for fam in FAMILIES.list():
        assert FAMILIES.get(fam).smallest in names


def test_family_of_prefers_the_specific_pattern():
    assert family_of("levit_conv_128s").name == "levit_conv"
    assert family_of("levit_128s").name == "levit"
    assert family_of("efficientvit_b0").name == "efficientvit_mit"
    assert family_of("resnet50") is None


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelNotFound) as info:
        load_source("efficientformer_l2")
    assert "efficientformer_l1" in (info.value.hint or "")


def test_timm_model_outside_families_is_refused():
    with pytest.raises(ModelNotFound, match="outside the supported families"):
        load_source("resnet18")


def test_factory_models():
    src = load_source("tests.tiny_models:tiny_convnet")
    assert src.name == "tiny_convnet" and src.input_size == (3, 32, 32)
    assert src.weights["kind"] == "live-random" and not src.model.training
    with pytest.raises(ModelNotFound, match="not a torch.nn.Module"):
        load_source("tests.tiny_models:not_a_module")
    with pytest.raises(ModelNotFound, match="cannot import"):
        load_source("no_such_pkg.mod:fn")
    with pytest.raises(UsageError):
        load_source("a:b:c")
