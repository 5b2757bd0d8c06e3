import pytest

from edgekit.errors import UsageError
from edgekit.quant.config import QuantConfig


@pytest.mark.parametrize("kwargs, message", [
    ({"calib_method": "kl"}, "unknown --calib-method"),
    ({"calib_n": 1}, "--calib-n 1 is out of range"),
    ({"keep_float": ("softmax", "layernorm")}, "unknown op kind"),
    ({"keep_float": "some"}, "is not understood"),
    ({"percentile": 100.0}, "percentile 100.0 is out of range"),
])
def test_bad_options_are_refused_with_a_fix(kwargs, message):
    with pytest.raises(UsageError, match=message) as exc:
        QuantConfig(**kwargs)
    assert exc.value.hint


def test_keep_float_parsing_and_manifest_form():
    assert QuantConfig.parse_keep_float(" Softmax, add ") == ("softmax", "add")
    assert QuantConfig.parse_keep_float("AUTO") == "auto"
    cfg = QuantConfig(keep_float=("softmax", "add"))
    assert cfg.kept_kinds == ("softmax", "add")
    assert cfg.to_dict()["keep_float"] == ["softmax", "add"]
    assert QuantConfig().kept_kinds == ()


def test_calibration_options_need_int8(tmp_path):
    from edgekit.pipeline import ExportRequest, export_model

    with pytest.raises(UsageError, match="apply to calibrated modes"):
        export_model(ExportRequest(model="fmnist_levit", quant="fp32", out=tmp_path,
                                   quant_config=QuantConfig(calib_n=8)))
    assert not any(tmp_path.iterdir())
