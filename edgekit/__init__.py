"""edgekit: efficient vision transformers from PyTorch to phones and boards.

Importing edgekit is cheap: exporters, runtimes and models are registered lazily, and the
Python API (edgekit/api.py) is imported on first use:

    import edgekit
    arts = edgekit.export("levit_128s", to=("onnx", "tflite"), quant="int8", out="artifacts")
    a = edgekit.load(arts[0].path); y = a.run(x); a.validate(); a.bench(runs=100)
    edgekit.check(model, example_inputs=(torch.randn(1, 3, 224, 224),), to="all")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["export", "load", "check", "LoadedArtifact", "BenchResult", "EdgekitError",
           "__version__"]
_API = ("export", "load", "check", "LoadedArtifact", "BenchResult")


def __getattr__(name: str) -> Any:
    if name in _API:
        from edgekit import api

        return getattr(api, name)
    if name == "EdgekitError":  # every error edgekit raises (errors.py: codes, hints)
        from edgekit.errors import EdgekitError

        return EdgekitError
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
