import timm
import torch
from torch import nn

from edgekit.errors import TransformError
from edgekit.transforms import PASSES, DeployPipeline
from edgekit.transforms.reparameterize import TimmReparameterize
from edgekit.transforms.strip_dropout import StripDropout
from tests.transforms.helpers import live, max_rel_change


def test_strip_dropout_and_droppath():
    model = live(timm.create_model("efficientformer_l1", drop_rate=0.1, drop_path_rate=0.1))
    x = torch.randn(1, 3, 224, 224)
    assert StripDropout()(model, x) > 0
    assert not any(type(m).__name__ in ("Dropout", "DropPath") for m in model.modules())


def test_mobileone_reparameterizes_to_single_convs():
    model = live(timm.create_model("mobileone_s0"))
    x = torch.randn(1, 3, 224, 224)
    before = model(x)
    assert TimmReparameterize()(model, x) > 0
    assert max_rel_change(before, model(x)) < 1e-4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


class _Breaks:
    name = "breaks_things"

    def __call__(self, model, example):
        with torch.no_grad():
            next(model.parameters()).mul_(2)
        return 1


def test_pipeline_names_a_pass_that_changes_outputs():
    PASSES.register("breaks_things", _Breaks)
    model = live(timm.create_model("mobileone_s0"))
    x = torch.randn(1, 3, 224, 224)
    try:
        DeployPipeline(("strip_dropout", "breaks_things")).run(model, x)
    except TransformError as exc:
        assert "breaks_things" in str(exc)
    else:
        raise AssertionError("a pass that changes outputs must fail")
    finally:
        PASSES._entries.pop("breaks_things")
