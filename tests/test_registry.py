import pytest

from edgekit.errors import MissingDependency, UsageError
from edgekit.exporter import EXPORTERS
from edgekit.registry import Registry


def test_register_get_list_and_patterns():
    reg: Registry[int] = Registry("thing")
    reg.register("fast_a", 1)
    reg.register("fast_b", 2)

    @reg.register("slow")
    def slow() -> int:
        return 3

    assert reg.get("fast_a") == 1
    assert reg.get("slow")() == 3
    assert reg.list("fast*") == ["fast_a", "fast_b"]
    assert "slow" in reg and "nope" not in reg


def test_register_twice_raises():
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", 2)


def test_unknown_name_lists_choices():
    with pytest.raises(UsageError, match="unknown exporter 'tflitex'") as info:
        EXPORTERS.get("tflitex")
    assert "onnx" in (info.value.hint or "")


def test_lazy_entry_resolves_and_missing_sdk_names_the_extra():
    reg: Registry[object] = Registry("exporter")
    reg.register("json", "json:dumps")
    reg.register("ghost", "edgekit_no_such_sdk.mod:Thing", extra="ghost")
    import json

    assert reg.get("json") is json.dumps
    with pytest.raises(MissingDependency) as info:
        reg.get("ghost")
    assert "edgekit[ghost]" in (info.value.hint or "")


def test_importing_edgekit_core_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, edgekit, edgekit.cli, edgekit.exporter, edgekit.runtime, "
            "edgekit.artifact, edgekit.models.families; "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
